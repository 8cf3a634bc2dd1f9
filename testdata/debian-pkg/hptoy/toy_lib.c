/*
 * libhptoy: a table of slots, one of them secret. toy_get() is the
 * "vulnerability" hpatch-deb's test fixes live: its bounds check lets the
 * index one past the public slots read the secret.
 */
#include "toy.h"

#include <stddef.h>

static const char *const slots[TOY_SLOTS + 1] = {
	"alpha", "beta", "gamma", "delta", "SECRET",
};

const char *toy_get(int idx)
{
	if (idx < 0 || idx > TOY_SLOTS)
		return NULL;
	return slots[idx];
}

int toy_version(void)
{
	return 1;
}
