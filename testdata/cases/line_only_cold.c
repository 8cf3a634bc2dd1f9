/* v2 behaves as if lines were added above (#line). gcc moves the calls to
 * the cold die() into fetch.cold and store.cold. fetch() changes only in
 * the __LINE__ in its .cold part: reported, not patched. store() has its
 * __LINE__ moved in the hot part and a real change in the cold one: it
 * must be patched. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((cold, noreturn, noinline)) void die(const char *file, int line,
						   const char *msg)
{
	fprintf(stderr, "%s:%d: %s\n", file, line, msg);
	exit(1);
}

#if V == 2
#line 30
#endif
__attribute__((noinline)) int fetch(const int *a, int n, int k)
{
	int sum = 0;

	for (int i = 0; i < n; i++) {
		if (a[i] < 0)
			die(__FILE__, __LINE__, "negative item");
		sum += a[i] * k;
	}
	return sum;
}

__attribute__((noinline)) int store(int *a, int n, int v)
{
	printf("%s:%d: store %d\n", __FILE__, __LINE__, v);
	for (int i = 0; i < n; i++) {
		if (a[i] < 0)
#if V == 1
			die("store", 0, "negative item");
#else
			die("store", 0, "negative item: refusing to store");
#endif
		a[i] += v;
	}
	return n;
}

int main(int argc, char **argv)
{
	int a[4] = { 1, 2, 3, 4 };

	(void)argv;
	return fetch(a, 4, argc) + store(a, 4, argc);
}
