/*
 * Benchmark target: N threads spin calling ten functions that v1 and v2
 * (-DV=1/2) differ in, so the patch redirects ten functions while every
 * thread is busy running them; with "outside", they spin in code the patch
 * leaves alone, so a stop that checks every stack finds none busy.
 * usage: spin N [outside]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile long sink;

__attribute__((noinline)) long f0(long x)
{
	long acc = x;

	for (int i = 0; i < 16; i++)
		acc = acc * 3 + 0 + V;
	return acc;
}

__attribute__((noinline)) long f1(long x)
{
	long acc = x;

	for (int i = 0; i < 16; i++)
		acc = acc * 3 + 1 + V;
	return acc;
}

__attribute__((noinline)) long f2(long x)
{
	long acc = x;

	for (int i = 0; i < 16; i++)
		acc = acc * 3 + 2 + V;
	return acc;
}

__attribute__((noinline)) long f3(long x)
{
	long acc = x;

	for (int i = 0; i < 16; i++)
		acc = acc * 3 + 3 + V;
	return acc;
}

__attribute__((noinline)) long f4(long x)
{
	long acc = x;

	for (int i = 0; i < 16; i++)
		acc = acc * 3 + 4 + V;
	return acc;
}

__attribute__((noinline)) long f5(long x)
{
	long acc = x;

	for (int i = 0; i < 16; i++)
		acc = acc * 3 + 5 + V;
	return acc;
}

__attribute__((noinline)) long f6(long x)
{
	long acc = x;

	for (int i = 0; i < 16; i++)
		acc = acc * 3 + 6 + V;
	return acc;
}

__attribute__((noinline)) long f7(long x)
{
	long acc = x;

	for (int i = 0; i < 16; i++)
		acc = acc * 3 + 7 + V;
	return acc;
}

__attribute__((noinline)) long f8(long x)
{
	long acc = x;

	for (int i = 0; i < 16; i++)
		acc = acc * 3 + 8 + V;
	return acc;
}

__attribute__((noinline)) long f9(long x)
{
	long acc = x;

	for (int i = 0; i < 16; i++)
		acc = acc * 3 + 9 + V;
	return acc;
}

/* The same in every version. */
__attribute__((noinline)) long g(long x)
{
	long acc = x;

	for (int i = 0; i < 160; i++)
		acc = acc * 5 + 1;
	return acc;
}

static void *spin_outside(void *arg)
{
	for (long x = (long)arg;; x++)
		sink = g(x);
	return NULL;
}

static void *spin(void *arg)
{
	long x = (long)arg;

	/* A new argument each round, or gcc hoists the pure calls out of
	 * the loop and the threads spin outside the patched functions. */
	for (;; x++)
		sink = f0(x) + f1(x) + f2(x) + f3(x) + f4(x) + f5(x) + f6(x) +
		       f7(x) + f8(x) + f9(x);
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1;
	void *(*body)(void *) =
		argc > 2 && !strcmp(argv[2], "outside") ? spin_outside : spin;
	pthread_t t;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (long i = 1; i < n; i++)
		if (pthread_create(&t, NULL, body, (void *)i))
			return 1;
	printf("spin: ready pid=%d threads=%d\n", (int)getpid(), n);
	body(NULL);
}
