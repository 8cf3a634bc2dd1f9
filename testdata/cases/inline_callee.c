/* A changed static inline callee: every function it was inlined into is
 * in the patch. */
#include <stdio.h>

static inline int weight(int x)
{
#if V == 1
	return x * 2;
#else
	return x * 4;
#endif
}

int total_a(int x)
{
	return weight(x) + 1;
}

int total_b(int x)
{
	return weight(x) - 1;
}

int untouched(int x)
{
	return x + 42;
}

int main(int argc, char **argv)
{
	(void)argv;
	printf("%d %d %d\n", total_a(argc), total_b(argc), untouched(argc));
	return 0;
}
