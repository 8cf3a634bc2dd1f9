/*
 * Thread churn target: spawners create short-lived threads nonstop (each
 * calls work() once and exits), so threads are born and die while hpatch
 * stops the process. work() differs in v1 and v2 (-DV=1/2); every result
 * is checked. Prints "churn: ready", then "stats v1=A v2=B" every 200 ms.
 * usage: churn SPAWNERS
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static atomic_long seen[3];

__attribute__((noinline)) long work(long x)
{
#if V == 1
	return x * 10 + 1;
#else
	return x * 10 + 2;
#endif
}

static void *once(void *arg)
{
	const long x = (long)arg, r = work(x);

	if (r != x * 10 + 1 && r != x * 10 + 2) {
		fprintf(stderr, "churn: work(%ld) = %ld: WRONG\n", x, r);
		abort();
	}
	atomic_fetch_add(&seen[r - x * 10], 1);
	return NULL;
}

static void *spawner(void *arg)
{
	for (long x = (long)arg;; x++) {
		pthread_t t;

		if (!pthread_create(&t, NULL, once, (void *)x))
			pthread_join(t, NULL);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const int n = argc > 1 ? atoi(argv[1]) : 4;
	const struct timespec tick = { 0, 200 * 1000 * 1000 };
	pthread_t t;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (long i = 0; i < n; i++)
		pthread_create(&t, NULL, spawner, (void *)(i * 1000000));
	printf("churn: ready pid=%d\n", (int)getpid());
	for (;;) {
		nanosleep(&tick, NULL);
		printf("stats v1=%ld v2=%ld\n", atomic_load(&seen[1]),
		       atomic_load(&seen[2]));
	}
}
