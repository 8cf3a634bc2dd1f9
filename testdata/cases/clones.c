/* Moving code swaps gcc's clone numbers. Built with -fipa-cp-clone, gcc
 * makes one tier_price.constprop.N per constant tier, numbered in the order
 * it meets the callers: v1 has .0 for gold (tier 3) and .1 for basic; v2
 * moves price_gold above price_basic, which swaps the numbers, and fixes
 * tier_price (a negative quantity costs nothing). Each new clone must
 * replace the old clone of its own tier, whatever its number; the callers
 * are byte-identical and call the same tier's clone, so they stay out. */
#include <stdio.h>
#include <stdlib.h>

static __attribute__((noinline)) int tier_price(int qty, int tier)
{
	int p = 0;

#if V == 2
	if (qty < 0)
		return 0;
#endif
	for (int i = 0; i < tier; i++)
		p += qty * (10 - i);
	return tier > 2 ? p - p / 10 : p;
}

#if V == 1
__attribute__((noinline)) int price_basic(int qty)
{
	return tier_price(qty, 1);
}
#endif

__attribute__((noinline)) int price_gold(int qty)
{
	return tier_price(qty, 3);
}

#if V == 2
__attribute__((noinline)) int price_basic(int qty)
{
	return tier_price(qty, 1);
}
#endif

int main(int argc, char **argv)
{
	const int qty = argc > 1 ? atoi(argv[1]) : 7;

	printf("%d %d\n", price_basic(qty), price_gold(qty));
	return 0;
}
