/*
 * The demo's business logic: the one function that v1 and v2 differ in.
 * Built twice, with -DDEMO_VERSION=1 and 2, from this same file.
 */
#include <stdio.h>

#include "demo.h"

#ifndef DEMO_VERSION
#define DEMO_VERSION 1
#endif

int format_quote(char *buf, size_t cap, int qty)
{
#if DEMO_VERSION == 1
	return snprintf(buf, cap, "quote for %d: %d EUR (v1)", qty,
			qty * unit_price);
#else
	/* v2: the fix applies a 10% volume discount. */
	return snprintf(buf, cap, "quote for %d: %d EUR (v2, 10%% off)", qty,
			qty * unit_price * 9 / 10);
#endif
}
