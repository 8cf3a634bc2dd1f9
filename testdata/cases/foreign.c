/*
 * The binary proof (differ/diff_proof.c): tests/cli/binary_proof.sh builds
 * this program several ways (-O1, -O2, with one more struct member, with
 * and without function sections) and gives hpdiff objects of one build
 * and the binary of another. v2 changes limit_of(); -DEXTRA inserts a
 * member before 'limit', so a binary built with it reads another field.
 */
#include <stdio.h>
#include <stdlib.h>

struct config {
	int port;
#ifdef EXTRA
	int extra;
#endif
	int limit;
};

static struct config cfg = {
	.port = 1000,
#ifdef EXTRA
	.extra = 1001,
#endif
	.limit = 1002,
};

__attribute__((noinline)) int limit_of(const struct config *c)
{
	if (!c || c->port < 0)
		abort();
#if V == 1
	return c->limit;
#else
	return c->limit > 2000 ? 2000 : c->limit;
#endif
}

static __attribute__((noinline)) int scaled(int n)
{
	return n * 3 + (int)(random() & 1);
}

/*
 * A tail call to a neighbour: built without function sections, the
 * assembler resolves it to a short jmp; with them, a near jmp with a
 * relocation. The same code, which the proof must accept.
 */
__attribute__((noinline)) int scaled_next(int n)
{
	return scaled(n + 1);
}

/* An ifunc: called through a PLT stub whose GOT slot has no name, only
 * an IRELATIVE relocation the loader fills from the resolver. */
static int add_one(int n)
{
	return n + 1;
}

static int (*pick_add(void))(int)
{
	return add_one;
}

int add(int n) __attribute__((ifunc("pick_add")));

int main(int argc, char **argv)
{
	const int n = add(argc > 1 ? atoi(argv[1]) : 0);

	printf("limit %d scaled %d %d\n", limit_of(&cfg), scaled(n) / 3,
	       scaled_next(n) / 3);
	return 0;
}
