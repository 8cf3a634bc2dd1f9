/* Data only, no functions: the table data_only.c walks; v2 adds an entry. */
const char *handlers[] = {
	"core",
	"http",
#if V == 2
	"header_count",
#endif
	0,
};
