/* v2 adds a member at the front of struct conn, in the padding before
 * 'bytes', so the size stays 48 and only 'state' moves. The only code that
 * changes is conn_account.part.0, the part gcc splits off conn_account (the
 * early-outs, inlined into the callers, only test the arguments): the
 * running process holds conns laid out the old way. Refused, found through
 * the clone's DWARF, which is conn_account's. */
#include <stdio.h>
#include <stdlib.h>

struct conn {
#if V == 2
	int flags;
#endif
	int state;
	long bytes;
	char name[32];
};

static int conn_account(struct conn *c, long n)
{
	if (!c)
		return -1;
	if (!n)
		return 0;
	c->bytes += n;
	if (c->bytes > 1000000) {
		printf("conn %s: %ld bytes\n", c->name, c->bytes);
		c->bytes = 0;
	}
	for (int i = 0; i < 31 && c->name[i]; i++) {
		if (c->name[i] == ' ')
			c->name[i] = '_';
		else if (c->name[i] == '/')
			c->name[i] = '.';
		else if (c->name[i] >= 'a' && c->name[i] <= 'z')
			c->name[i] = (char)(c->name[i] - 32);
	}
	if (c->state == 3)
		printf("conn %s: closed\n", c->name);
	c->state = c->bytes > 4096 ? 2 : 1;
	return c->state;
}

int conn_read(struct conn *c, long n)
{
	return conn_account(c, n);
}

int conn_write(struct conn *c, long n)
{
	return conn_account(c, -n);
}

int conn_skip(struct conn *c, long n)
{
	return conn_account(c, n / 2) + 1;
}

size_t conn_size(void)
{
	return sizeof(struct conn);
}

int main(int argc, char **argv)
{
	struct conn *c = calloc(1, conn_size());

	(void)argv;
	printf("%d %d\n", conn_read(c, argc), conn_write(c, 1));
	return 0;
}
