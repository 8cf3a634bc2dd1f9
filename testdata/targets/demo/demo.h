#ifndef DEMO_H
#define DEMO_H

#include <stddef.h>

extern int unit_price;

int format_quote(char *buf, size_t cap, int qty);

#endif
