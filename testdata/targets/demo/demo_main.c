/*
 * hpatch demo service: worker threads log a quote every 100 ms, and a TCP
 * server on 127.0.0.1 answers each line "N" with a quote for N. Both use
 * format_quote(), which v2 changes: a live patch shows in the log and on an
 * open connection at once.
 *
 * usage: demo [PORT] [WORKERS]   (PORT 0 picks a free one; printed on ready)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"

int unit_price = 10;

static void *worker(void *arg)
{
	const int id = (int)(long)arg;
	const struct timespec tick = { 0, 100 * 1000 * 1000 };
	char line[128];

	for (;;) {
		format_quote(line, sizeof(line), id + 1);
		printf("worker %d: %s\n", id, line);
		nanosleep(&tick, NULL);
	}
	return NULL;
}

static void *serve(void *arg)
{
	FILE *conn = fdopen((int)(long)arg, "r+");
	char req[64], reply[128];

	if (!conn)
		return NULL;
	setvbuf(conn, NULL, _IOLBF, 0);
	while (fgets(req, sizeof(req), conn)) {
		format_quote(reply, sizeof(reply), atoi(req));
		fprintf(conn, "%s\n", reply);
	}
	fclose(conn);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	int port = argc > 1 ? atoi(argv[1]) : 0;
	int workers = argc > 2 ? atoi(argv[2]) : 3;
	pthread_t t;
	int one = 1, srv;

	setvbuf(stdout, NULL, _IOLBF, 0);
	srv = socket(AF_INET, SOCK_STREAM, 0);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = htons((unsigned short)port);
	setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (srv < 0 || bind(srv, (struct sockaddr *)&addr, sizeof(addr)) ||
	    listen(srv, 16) ||
	    getsockname(srv, (struct sockaddr *)&addr, &len)) {
		perror("demo: listen");
		return 1;
	}
	for (long i = 0; i < workers; i++)
		pthread_create(&t, NULL, worker, (void *)i);
	printf("demo: ready pid=%d port=%d\n", (int)getpid(),
	       ntohs(addr.sin_port));
	for (;;) {
		int fd = accept(srv, NULL, NULL);

		if (fd >= 0 &&
		    pthread_create(&t, NULL, serve, (void *)(long)fd))
			close(fd);
	}
}
