/*
 * libgreet's name check, in its own object: a global of hidden visibility,
 * which the linked library holds as a local symbol, called from greet.c.
 */
#include <stddef.h>

__attribute__((visibility("hidden"))) const char *greet_name(const char *name)
{
	return name && *name ? name : "nobody";
}
