/*
 * Benchmark target for hpatchd (bench/agent.sh): a short-lived process
 * that reports how long after its exec its patched function first runs
 * the new code, then exits. argv[1] is the spawner's CLOCK_MONOTONIC time
 * just before execve, in ns. With argv[2], a library path: the time
 * counts from just before dlopen()ing it, and the new code is the
 * library's (libtlslib's tl_step() stepping by 2). Prints one line,
 * "exec LATENCY_US" / "dlopen LATENCY_US", or "... missed" after 10 s.
 * usage: quick T0_NS [LIBRARY]
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

__attribute__((noinline)) int version(void)
{
	return V;
}

int main(int argc, char **argv)
{
	const struct timespec nap = { 0, 100000 }; /* 0.1 ms between looks */
	long long t0 = argc > 1 ? atoll(argv[1]) : now_ns();
	long (*step)(void) = NULL;
	const char *what = "exec";

	if (argc > 2) {
		void *h = NULL;

		what = "dlopen";
		t0 = now_ns();
		h = dlopen(argv[2], RTLD_NOW);
		step = h ? (long (*)(void))dlsym(h, "tl_step") : NULL;
		if (!step) {
			printf("%s error %s\n", what, dlerror());
			return 1;
		}
	}
	while (now_ns() - t0 < 10000000000LL) {
		const long long t = now_ns();
		int is_new;

		if (step) {
			long a = step();

			is_new = step() - a == 2;
		} else {
			is_new = version() == 2;
		}
		if (is_new) {
			printf("%s %lld\n", what, (t - t0) / 1000);
			return 0;
		}
		nanosleep(&nap, NULL);
	}
	printf("%s missed\n", what);
	return 0;
}
