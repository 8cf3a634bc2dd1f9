/*
 * Host for libtlslib: two threads call tl_step() and print
 * "tls T VALUE STEPS" lines (VALUE = count + 1000, STEPS = calls so far).
 * usage: tls_host   prints "tls_host: ready pid=N".
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

long tl_step(void);
long tl_steps_seen(void);

static void *run(void *arg)
{
	const struct timespec tick = { 0, 20 * 1000 * 1000 };

	for (;;) {
		long v = tl_step();

		printf("tls %ld %ld %ld\n", (long)arg, v, tl_steps_seen());
		nanosleep(&tick, NULL);
	}
	return NULL;
}

int main(void)
{
	pthread_t t;

	setvbuf(stdout, NULL, _IOLBF, 0);
	pthread_create(&t, NULL, run, (void *)1L);
	printf("tls_host: ready pid=%d\n", (int)getpid());
	run((void *)0L);
}
