/* v2 behaves as if four lines were added above log_state (#line): its
 * code differs in the __LINE__ constant alone. Reported, not patched. */
#include <stdio.h>

#if V == 2
#line 11
#endif
__attribute__((noinline)) void log_state(int s)
{
	fprintf(stderr, "%s:%d: state %d\n", __FILE__, __LINE__, s);
}

int main(void)
{
	log_state(1);
	return 0;
}
