/* v2 swaps two members: same size, different offsets. Refused. */
#include <stdio.h>

typedef struct {
#if V == 1
	int lo;
	int hi;
#else
	int hi;
	int lo;
#endif
} range_t;

__attribute__((noinline)) int range_width(range_t *r)
{
	return r->hi - r->lo;
}

int main(void)
{
	range_t r = { 0 };

	printf("%d\n", range_width(&r));
	return 0;
}
