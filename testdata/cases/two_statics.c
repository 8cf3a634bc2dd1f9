/* Same-named static functions in two files: only a.c's changes; the
 * patch must name and redirect a.c's copy, never b.c's. */
#include <stdio.h>

int a_value(int x);
int b_value(int x);

int main(int argc, char **argv)
{
	(void)argv;
	printf("%d %d\n", a_value(argc), b_value(argc));
	return 0;
}
