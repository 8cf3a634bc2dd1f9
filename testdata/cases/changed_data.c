/* v2 changes an initialised global: the running process keeps the old
 * value, so hpdiff must refuse with HP_E_CHANGED_DATA. */
#include <stdio.h>

#if V == 1
int limit = 100;
#else
int limit = 200;
#endif

int over_limit(int v)
{
	return v > limit;
}

int main(int argc, char **argv)
{
	(void)argv;
	printf("%d\n", over_limit(argc));
	return 0;
}
