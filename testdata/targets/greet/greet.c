/*
 * libgreet: a shared library built -fPIC, in v1 and v2 (-DV=1/2). v2
 * changes greet_reply(), which uses a file-local counter, an exported
 * (interposable, so GOT-addressed) global, snprintf through the PLT, and
 * two globals of hidden visibility, which the linked library holds as local
 * symbols: one here and one in greet_name.c.
 */
#include <stdio.h>

int greet_style = 1;
static int calls;

const char *greet_name(const char *name) __attribute__((visibility("hidden")));

int greet_calls(void)
{
	return calls;
}

__attribute__((visibility("hidden"), noinline)) int greet_count(void)
{
	return ++calls;
}

int greet_reply(char *buf, size_t cap, const char *name)
{
	int n = greet_count();

	name = greet_name(name);
#if V == 1
	return snprintf(buf, cap, "hello %s (lib v1, call %d, style %d)", name,
			n, greet_style);
#else
	return snprintf(buf, cap, "HELLO %s (lib v2, call %d, style %d)", name,
			n, greet_style);
#endif
}
