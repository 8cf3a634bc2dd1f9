/* Moving code swaps the numbers gcc gives same-named static locals: v1
 * has next_b's counter as count.0 and next_a's as count.1, v2 moves next_b
 * above next_a and makes next_a step by 5, and the numbers swap. The new
 * next_a must count on in the running program's next_a counter, count.1,
 * not next_b's; next_b, unchanged, stays out. */
#include <stdio.h>

#if V == 1
__attribute__((noinline)) int next_a(void)
{
	static int count;

	return ++count;
}
#endif

__attribute__((noinline)) int next_b(void)
{
	static int count;

	return count += 2;
}

#if V == 2
__attribute__((noinline)) int next_a(void)
{
	static int count;

	return count += 5;
}
#endif

int main(void)
{
	printf("%d %d\n", next_a(), next_b());
	return 0;
}
