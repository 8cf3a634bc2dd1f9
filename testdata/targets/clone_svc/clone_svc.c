/*
 * A line server whose answers come from functions gcc clones (see
 * testdata/CMakeLists.txt for the two builds): tier_price() specialised
 * per constant tier (.constprop.N, with a .cold part each), weight() and
 * reorder() given the fields they read instead of the pointer (.isra.N),
 * checksum() split into an inlined early-out and the loop (.part.N).
 * v2 (-DV=2) fixes two clones' bodies: weight() counts nothing for an item
 * over its limit (one more field passed, so the caller changes too) and
 * checksum() stops at the end of the name; and it adds a staff tier, whose
 * new clone gcc numbers before the other tiers' (renumbering them).
 * Requests, one per line, each answered with one line:
 *   basic N, gold N, staff N -> price of N units (staff: v2 only)
 *   ship A B                 -> weight of stock items A..B in grams
 *   need I                   -> units of item I to reorder
 *   sum I N                  -> checksum of N bytes of item I's name
 *   text S                   -> checksum of S
 *   version                  -> v1 or v2
 * usage: clone_svc   reads requests on stdin, answers on stdout, after a
 * first line "clone_svc: ready pid=N".
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct item {
	char name[24];
	int qty;
	int unit_g;
	int max_qty;
	int reorder_at;
};

static struct item stock[] = {
	{ "bolt", 40, 12, 50, 10 },
	{ "nut", 100, 5, 80, 120 },
	{ "gear", 7, 300, 5, 2 },
	{ "shaft", 2, 2500, 4, 1 },
};

#define NR_STOCK ((int)(sizeof(stock) / sizeof(stock[0])))

__attribute__((cold, noinline)) void log_bad_qty(int qty)
{
	fprintf(stderr, "clone_svc: bad quantity %d\n", qty);
}

/* Called with constant tiers only: one clone per tier. */
static __attribute__((noinline)) int tier_price(int qty, int tier)
{
	int p = 0;

	if (qty < 0) {
		log_bad_qty(qty); /* cold: moved to the clone's .cold part */
		return 0;
	}
	for (int i = 0; i < tier; i++)
		p += qty * (10 - i);
	switch (tier) {
	case 0:
		return qty * 12;
	case 1:
		return p;
	case 2:
		return p - p / 20;
	default:
		return p - p / 10;
	}
}

__attribute__((noinline)) int price_basic(int qty)
{
	return tier_price(qty, 1);
}

__attribute__((noinline)) int price_gold(int qty)
{
	return tier_price(qty, 3);
}

#if V == 2
__attribute__((noinline)) int price_staff(int qty)
{
	return tier_price(qty, 0);
}
#endif

/* Reads two fields (three in v2): IPA-SRA passes them by value. */
static __attribute__((noinline)) long weight(const struct item *it)
{
	long w = (long)it->qty * it->unit_g;

#if V == 2
	if (it->qty > it->max_qty)
		return 0;
#endif
	return w;
}

__attribute__((noinline)) long shipment_weight(int first, int last)
{
	long w = 0;

	for (int i = first; i <= last && i < NR_STOCK; i++)
		w += weight(&stock[i]);
	return w;
}

/* Always called with batch 12, reads two fields: .constprop.0.isra.0. */
static __attribute__((noinline)) int reorder(const struct item *it, int batch)
{
	int short_by = it->reorder_at - it->qty;

	if (short_by <= 0)
		return 0;
	return (short_by + batch - 1) / batch * batch;
}

__attribute__((noinline)) int need(int i)
{
	if (i < 0 || i >= NR_STOCK)
		return -1;
	return reorder(&stock[i], 12);
}

/* The early-out is inlined into the callers, the loop is checksum.part.0. */
static int checksum(const char *s, int len)
{
	unsigned h = 2166136261u;

	if (!s || !*s)
		return 0;
#if V == 2
	if (len > (int)strlen(s))
		len = (int)strlen(s);
#endif
	for (int i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
		if (s[i] == '!')
			h = h * 3 + 1;
		else if (s[i] == '?')
			h ^= h >> 13;
		else if (s[i] >= 'A' && s[i] <= 'Z')
			h += (unsigned)(s[i] - 'A') * 2654435761u;
	}
	if (h % 97 == 0)
		printf("clone_svc: rare checksum %u\n", h);
	return (int)(h & 0x7fffffff);
}

__attribute__((noinline)) int name_sum(int i, int len)
{
	if (i < 0 || i >= NR_STOCK || len > (int)sizeof(stock[i].name))
		return -1;
	return checksum(stock[i].name, len);
}

__attribute__((noinline)) int text_sum(const char *s, int len)
{
	return checksum(s, len);
}

/* One request, one answer: never on a stack between requests. */
__attribute__((noinline)) void answer(const char *req, char *out, size_t cap)
{
	int a = 0, b = 0;

	if (sscanf(req, "basic %d", &a) == 1)
		snprintf(out, cap, "%d", price_basic(a));
	else if (sscanf(req, "gold %d", &a) == 1)
		snprintf(out, cap, "%d", price_gold(a));
#if V == 2
	else if (sscanf(req, "staff %d", &a) == 1)
		snprintf(out, cap, "%d", price_staff(a));
#endif
	else if (sscanf(req, "ship %d %d", &a, &b) == 2)
		snprintf(out, cap, "%ld", shipment_weight(a, b));
	else if (sscanf(req, "need %d", &a) == 1)
		snprintf(out, cap, "%d", need(a));
	else if (sscanf(req, "sum %d %d", &a, &b) == 2)
		snprintf(out, cap, "%d", name_sum(a, b));
	else if (!strncmp(req, "text ", 5))
		snprintf(out, cap, "%d",
			 text_sum(req + 5, (int)strlen(req + 5)));
	else if (!strcmp(req, "version"))
		snprintf(out, cap, "v%d", V);
	else
		snprintf(out, cap, "?");
}

int main(void)
{
	char req[128], out[128];

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("clone_svc: ready pid=%d\n", (int)getpid());
	while (fgets(req, sizeof(req), stdin)) {
		req[strcspn(req, "\n")] = 0;
		answer(req, out, sizeof(out));
		printf("%s\n", out);
	}
	return 0;
}
