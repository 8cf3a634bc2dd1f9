/* v2 behaves as if three lines were added above (#line). step() inlines
 * trace(), declared above it, so step's code holds trace's __LINE__,
 * which moved with both: step changed in line numbers alone. */
#include <stdio.h>

#if V == 2
#line 11
#endif
static inline void trace(const char *what, int v)
{
	fprintf(stderr, "%s:%d: %s %d\n", __FILE__, __LINE__, what, v);
}

__attribute__((noinline)) int step(int v)
{
	trace("step", v);
	return v * 3;
}

int main(int argc, char **argv)
{
	(void)argv;
	return step(argc);
}
