/*
 * Benchmark target (bench/patched.sh): one thread calls a small function
 * in a dependent chain and prints the time per call for each batch. v1 and
 * v2 (-DV=1/2) differ only in a constant of that function, so the patched
 * program runs the same instructions: what it costs is the redirection.
 * usage: callcost [CALLS_PER_BATCH]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

volatile long sink;

__attribute__((noinline)) long step(long x)
{
	long acc = x;

	for (int i = 0; i < 4; i++)
		acc = acc * 3 + V;
	return acc;
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	const long calls = argc > 1 ? atol(argv[1]) : 20000000;
	long acc = 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");
	for (;;) {
		const double t0 = now_ns();

		for (long i = 0; i < calls; i++)
			acc = step(acc);
		sink = acc;
		printf("ns_per_call=%.3f\n", (now_ns() - t0) / (double)calls);
	}
}
