/*
 * Stress target: N threads call chain() and check every result while the
 * patch is applied and reverted under them. step() tags its result with
 * the version that ran (1 or 2); chain() calls step() twice, so a call that
 * starts in one version and continues in the other is still checked. Any
 * wrong result aborts the process. Every 200 ms prints
 * "stats v1=A v2=B mixed=C bad=0".  usage: stress N
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static atomic_long seen[4]; /* [0] mixed, [1] v1 only, [2] v2 only */
/* Workers start together once all exist: spinning ones would starve the
 * thread creating the rest (512 took 16 s on 2 vCPUs). */
static pthread_barrier_t start;

__attribute__((noinline)) long step(long x)
{
#if V == 1
	return x * 16 + 1;
#else
	return (x << 4) + 2;
#endif
}

__attribute__((noinline)) long chain(long x)
{
#if V == 1
	return step(x) + step(x + 1);
#else
	long b = step(x + 1);

	return b + step(x);
#endif
}

static void *worker(void *arg)
{
	long x = (long)arg * 1000003;

	pthread_barrier_wait(&start);
	for (;;) {
		const long r = chain(x);
		const long tags = r - 16 * (2 * x + 1);

		/* tags: 2 = v1+v1, 4 = v2+v2, 3 = one of each */
		if (tags < 2 || tags > 4) {
			fprintf(stderr, "stress: chain(%ld) = %ld: WRONG\n", x,
				r);
			abort();
		}
		atomic_fetch_add(&seen[tags == 3 ? 0 : tags / 2], 1);
		x++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const int n = argc > 1 ? atoi(argv[1]) : 64;
	const struct timespec tick = { 0, 200 * 1000 * 1000 };
	pthread_t t;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (n < 1 || pthread_barrier_init(&start, NULL, (unsigned int)n + 1))
		return 1;
	for (long i = 0; i < n; i++)
		if (pthread_create(&t, NULL, worker, (void *)i))
			return 1;
	pthread_barrier_wait(&start);
	printf("stress: ready pid=%d threads=%d\n", (int)getpid(), n);
	for (;;) {
		nanosleep(&tick, NULL);
		printf("stats v1=%ld v2=%ld mixed=%ld bad=0\n",
		       atomic_load(&seen[1]), atomic_load(&seen[2]),
		       atomic_load(&seen[0]));
	}
}
