/*
 * A target whose patched function is interrupted by a signal handled on
 * an alternate stack (sigaltstack, SA_ONSTACK): the function's frames are
 * then on the usual stack only, below the signal frame. Commands on stdin
 * (read by a thread that takes no signal): "work" starts work() on the
 * main thread, which waits until "stop"; "release" lets a handler that
 * waits return. SIGUSR1 runs the handler, which sleeps until "release".
 * Every line it prints ends in the version (-DV=1/2) of the code that
 * printed it; main() and the handler are the same in both.
 * usage: altstack
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t go, stop, release;
volatile long sink;

/* The same in both versions: sleeps until "stop". A signal interrupts
 * it here, below work(), whose return address only the usual stack
 * holds (the saved registers of the signal frame do not). */
__attribute__((noinline)) void wait_stop(void)
{
	const struct timespec ms = { 0, 1000000 };

	while (!stop)
		nanosleep(&ms, NULL);
}

/* The patched function. */
__attribute__((noinline)) long work(long x)
{
	printf("work v%d\n", V);
	wait_stop();
	printf("work done v%d\n", V);
	return x * 3 + V;
}

static void on_usr1(int sig)
{
	static const char in[] = "handler in\n", out[] = "handler out\n";
	const struct timespec ms = { 0, 1000000 };

	(void)sig;
	if (write(1, in, sizeof(in) - 1) < 0)
		return;
	while (!release)
		nanosleep(&ms, NULL); /* async-signal-safe */
	release = 0;
	if (write(1, out, sizeof(out) - 1) < 0)
		return;
}

static void *control(void *arg)
{
	char line[64];

	(void)arg;
	while (fgets(line, sizeof(line), stdin)) {
		if (!strcmp(line, "work\n")) {
			stop = 0;
			go = 1;
		} else if (!strcmp(line, "stop\n")) {
			stop = 1;
		} else if (!strcmp(line, "release\n")) {
			release = 1;
		}
	}
	exit(0);
}

int main(void)
{
	const size_t size = 64 << 10;
	stack_t ss = { .ss_size = size };
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_ONSTACK };
	sigset_t usr1;
	pthread_t t;

	setvbuf(stdout, NULL, _IOLBF, 0);
	/* A mapping of its own, away from every thread's stack. */
	ss.ss_sp = mmap(NULL, size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ss.ss_sp == MAP_FAILED || sigaltstack(&ss, NULL) ||
	    sigaction(SIGUSR1, &sa, NULL))
		return 1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	/* The control thread never takes SIGUSR1: main does. */
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	if (pthread_create(&t, NULL, control, NULL))
		return 1;
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	printf("altstack: ready pid=%d\n", (int)getpid());
	for (;;) {
		while (!go)
			usleep(1000);
		go = 0;
		sink = work(sink);
	}
}
