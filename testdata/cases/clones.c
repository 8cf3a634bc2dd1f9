/* A new call site with a new constant. Where gcc specialises scale() per
 * constant (scale.constprop.N), the new clone shifts the others' numbers
 * and hpdiff pairs clones by content, not number; gcc 12 -O2 keeps one
 * scale() here. Either way only api() (and a new clone) may change. */
#include <stdio.h>

static __attribute__((noinline)) int scale(int x, int k)
{
	return x * k + (x >> k);
}

int api(int x)
{
#if V == 2
	x += scale(x, 2);
#endif
	return scale(x, 5) + scale(x, 9);
}

int main(int argc, char **argv)
{
	(void)argv;
	printf("%d\n", api(argc));
	return 0;
}
