/* v2 changes a function that is shorter than the 5-byte jump. */
#include <stdio.h>

__attribute__((noinline)) int one(void)
{
#if V == 1
	return 0;
#else
	return 7;
#endif
}

int main(void)
{
	printf("%d\n", one());
	return 0;
}
