/* v2 behaves as if four lines were added above (#line). gcc inlines the
 * early return of report() into its callers and moves the rest out of
 * line as report.part.0, which DWARF knows only as report(): that part
 * differs in __LINE__ alone. Reported, not patched. */
#include <stdio.h>

#if V == 2
#line 13
#endif
static int report(const char *what, int n)
{
	if (!what)
		return 0;
	for (int i = 0; i < n; i++)
		fprintf(stderr, "%s:%d: %s %d of %d\n", __FILE__, __LINE__,
			what, i, n);
	fflush(stderr);
	for (int i = 0; i < n; i++)
		printf("%s:%d: %s %d of %d\n", __FILE__, __LINE__, what, i, n);
	return n;
}

int report_once(const char *what, int n)
{
	return report(what, n) + 1;
}

int report_twice(const char *what, int n)
{
	return report(what, n) + report(what, n + 1);
}

int main(int argc, char **argv)
{
	return report_once(argv[1], argc) + report_twice(argv[0], argc);
}
