/*
 * Thread-local state across a patch: two threads each count in their own
 * __thread counter (local-exec access) and read a thread-local defined in
 * another file (initial-exec access). v2 (-DV=2) steps by 2 instead of 1;
 * the counters must continue, not restart. Prints "tls T N" lines.
 * usage: tls
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

__thread long tls_count;
extern __thread long tls_base; /* tls_base.c: initial-exec from here */

__attribute__((noinline)) long tls_step(void)
{
#if V == 1
	tls_count += 1;
#else
	tls_count += 2;
#endif
	return tls_count + tls_base;
}

static void *run(void *arg)
{
	const struct timespec tick = { 0, 20 * 1000 * 1000 };

	for (;;) {
		printf("tls %ld %ld\n", (long)arg, tls_step());
		nanosleep(&tick, NULL);
	}
	return NULL;
}

int main(void)
{
	pthread_t t;

	setvbuf(stdout, NULL, _IOLBF, 0);
	pthread_create(&t, NULL, run, (void *)1L);
	printf("tls: ready pid=%d\n", (int)getpid());
	run((void *)0L);
}
