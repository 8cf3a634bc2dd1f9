/* v2 adds a function before the old ones, which renumbers the .LC labels
 * and shifts the string table; greet() itself is unchanged and must not
 * be reported. */
#include <stdio.h>

#if V == 2
void banner(void)
{
	puts("banner: new in v2");
}
#endif

void greet(const char *who)
{
	printf("hello, %s\n", who);
	puts("goodbye");
}

int main(void)
{
	greet("world");
	return 0;
}
