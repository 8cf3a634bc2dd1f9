/*
 * hpdiff case: a fix adds a function h with an assert() that also inlines
 * helper(), itself asserting. gcc numbers each function's
 * __PRETTY_FUNCTION__ string per file ("__PRETTY_FUNCTION__.N"), so the
 * numbers shift, and helper's string gains a referrer (h): only its bytes
 * tell which old string it is. Expected: h new, main changed; f, g and
 * check_b unchanged; nothing refused.
 */
#undef NDEBUG /* asserts on, as Debian builds most programs */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

static inline int helper(int x)
{
	assert(x != 42);
	return x * 3;
}

__attribute__((noinline)) int f(int x)
{
	return helper(x) + 1;
}

__attribute__((noinline)) int g(int x)
{
	return helper(x) + 2;
}

#if V == 2
__attribute__((noinline)) int h(int x)
{
	assert(x > -5);
	return helper(x) + 3;
}
#endif

__attribute__((noinline)) int check_b(int x)
{
	assert(x < 1000);
	return x * 2;
}

int main(int argc, char **argv)
{
	const int x = argc > 1 ? atoi(argv[1]) : 3;

#if V == 2
	printf("%d %d %d %d\n", f(x), g(x), h(x), check_b(x));
#else
	printf("%d %d %d\n", f(x), g(x), check_b(x));
#endif
	return 0;
}
