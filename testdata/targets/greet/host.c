/*
 * Host program for libgreet: answers each line NAME on a TCP connection
 * with greet_reply(NAME), through answer(). Built in v1 and v2 (-DV=1/2):
 * v2 changes answer(), so one patch can fix the program and the library.
 * usage: greet_host   prints "greet_host: ready pid=N port=P".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int greet_reply(char *buf, size_t cap, const char *name);

__attribute__((noinline)) void answer(FILE *conn, const char *reply)
{
#if V == 1
	fprintf(conn, "%s\n", reply);
#else
	fprintf(conn, "%s [host v2]\n", reply);
#endif
}

int main(void)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	int srv = socket(AF_INET, SOCK_STREAM, 0);
	char line[128], reply[256];

	setvbuf(stdout, NULL, _IOLBF, 0);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (srv < 0 || bind(srv, (struct sockaddr *)&addr, sizeof(addr)) ||
	    listen(srv, 4) || getsockname(srv, (struct sockaddr *)&addr, &len))
		return 1;
	printf("greet_host: ready pid=%d port=%d\n", (int)getpid(),
	       ntohs(addr.sin_port));
	for (;;) {
		FILE *conn = fdopen(accept(srv, NULL, NULL), "r+");

		if (!conn)
			continue;
		setvbuf(conn, NULL, _IOLBF, 0);
		while (fgets(line, sizeof(line), conn)) {
			line[strcspn(line, "\r\n")] = 0;
			greet_reply(reply, sizeof(reply), line);
			answer(conn, reply);
		}
		fclose(conn);
	}
}
