/* A changed function with a function-local static: the patched code must
 * keep counting in the running process's variable, not a fresh copy. */
#include <stdio.h>

int next_ticket(void)
{
	static int counter;

#if V == 1
	return ++counter;
#else
	counter += 1;
	return counter * 100;
#endif
}

int main(void)
{
	printf("%d\n", next_ticket());
	return 0;
}
