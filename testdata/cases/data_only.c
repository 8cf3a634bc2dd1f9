/* v2 changes a function and grows a table that lives alone in an object
 * with no functions (data_only_table.c, like nginx's generated
 * ngx_modules.c): the running table keeps its old size, so hpdiff must
 * refuse with HP_E_CHANGED_DATA although that object has no code. */
#include <stdio.h>

extern const char *handlers[];

int count_handlers(void)
{
	int n = 0;

	while (handlers[n])
		n++;
#if V == 2
	n += 0x100;
#endif
	return n;
}

int main(void)
{
	printf("%d\n", count_handlers());
	return 0;
}
