/* v2 calls a library function (getppid) that v1 never called: the patch
 * binds it by name at apply time. */
#define _GNU_SOURCE
#include <stdio.h>
#include <unistd.h>

long parent_info(void)
{
#if V == 1
	return 0;
#else
	return (long)getppid();
#endif
}

/* Keeps the short function above from being last in .text. */
int neighbour(int x)
{
	return x * 3 + 11;
}

int main(void)
{
	printf("%ld %d\n", parent_info(), neighbour(1));
	return 0;
}
