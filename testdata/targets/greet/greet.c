/*
 * libgreet: a shared library built -fPIC, in v1 and v2 (-DV=1/2). v2
 * changes greet_reply(), which uses a file-local counter, an exported
 * (interposable, so GOT-addressed) global and snprintf through the PLT.
 */
#include <stdio.h>

int greet_style = 1;
static int calls;

int greet_calls(void)
{
	return calls;
}

int greet_reply(char *buf, size_t cap, const char *name)
{
	calls++;
#if V == 1
	return snprintf(buf, cap, "hello %s (lib v1, call %d, style %d)", name,
			calls, greet_style);
#else
	return snprintf(buf, cap, "HELLO %s (lib v2, call %d, style %d)", name,
			calls, greet_style);
#endif
}
