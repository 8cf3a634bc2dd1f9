/* v2 adds a helper function and a new global (initialised and zeroed)
 * used by the changed function. */
#include <stdio.h>

#if V == 2
int audit_calls = 0;
const char *audit_tag = "audited";

static __attribute__((noinline)) int clamp(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}
#endif

int checked_add(int a, int b)
{
#if V == 1
	return a + b;
#else
	audit_calls++;
	return clamp(a + b, -1000, 1000);
#endif
}

/* Keeps the short function above from being last in .text. */
int neighbour(int x)
{
	return x * 3 + 11;
}

int main(int argc, char **argv)
{
	(void)argv;
	printf("%d %d\n", checked_add(argc, 2), neighbour(argc));
	return 0;
}
