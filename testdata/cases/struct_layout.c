/* v2 inserts a member in the middle of a struct the changed function
 * reads: objects in the running process have the old layout. Refused. */
#include <stdio.h>

struct conn {
	int fd;
#if V == 2
	int flags;
#endif
	int state;
	char name[16];
};

__attribute__((noinline)) int conn_state(const struct conn *c)
{
	return c->state;
}

int main(void)
{
	struct conn c = { .fd = 3, .state = 1 };

	printf("%d\n", conn_state(&c));
	return 0;
}
