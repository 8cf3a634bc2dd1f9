/* v2 changes a parameter's type; the caller's code is byte-identical
 * (it passes a constant), so it is not in the patch and would call the
 * new code with the old convention. Refused. */
#include <stdio.h>

#if V == 1
__attribute__((noinline)) int scale(int x)
{
	return x * 3;
}
#else
__attribute__((noinline)) int scale(unsigned int x)
{
	return (int)(x * 5u);
}
#endif

__attribute__((noinline)) int use(void)
{
	return scale(7);
}

int main(void)
{
	printf("%d\n", use());
	return 0;
}
