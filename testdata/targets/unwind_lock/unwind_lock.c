/*
 * A C program whose v2 changes 200 functions, each with an FDE, so that
 * the table libgcc sorts for the patch (at the first lookup after its
 * registration) is an array of 200 pointers: 1.6 KB, more than malloc's
 * per-thread cache takes, which libgcc 12's __deregister_frame_info
 * frees holding its object_mutex, under the arena's lock
 * (tests/e2e/unwind_lock_*.sh, docs/UNWIND.md).
 *
 * main: each round calls every function and backtrace() (a lookup in
 * libgcc's registry, under object_mutex) and prints "round N sum=S
 * frames=F". A pointer into libgcc_s stays on its stack: hpatch never
 * calls the unwinder in it. Once the file FIFO.go (FIFO: argv[1]) exists,
 * it starts the holder.
 * holder: opens FIFO as its stderr, fills it, says "held tid=T" and calls
 * malloc_stats(), which writes to stderr holding the main arena's lock:
 * it waits in write() until the FIFO is read, then says "released".
 * sleeper: sleeps in nanosleep, allocating nothing; with argv[2] "self" it
 * exits once FIFO.go exists (the holder is then the only thread waiting
 * in a system call, main aside). With argv[2] "vec" it sleeps through a
 * "syscall" of its own with a value in ymm15's upper half (and in k1 and
 * zmm31 with AVX-512), which the kernel keeps across a system call, as
 * code with inlined system calls relies on (musl's): says "vec tid=T"
 * once, "vec lost" if the value changed. With "fnptr" it keeps a pointer
 * to free on its stack as it sleeps, as pthread_cleanup_push(free, p) at
 * -O0 or a C++ unique_ptr with free as its deleter do.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <execinfo.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <unwind.h>
#include <sys/syscall.h>

#ifndef V
#define V 1
#endif

/* M(a, b, c) for every c, then every b, of a (clang-format 14 never
 * settles on these lines). */
/* clang-format off */
#define R10(M, a, b)                                                      \
	M(a, b, 0)                                                        \
	M(a, b, 1) M(a, b, 2) M(a, b, 3) M(a, b, 4) M(a, b, 5) M(a, b, 6) \
		M(a, b, 7) M(a, b, 8) M(a, b, 9)
#define R100(M, a)                                                       \
	R10(M, a, 0)                                                     \
	R10(M, a, 1) R10(M, a, 2) R10(M, a, 3) R10(M, a, 4) R10(M, a, 5) \
		R10(M, a, 6) R10(M, a, 7) R10(M, a, 8) R10(M, a, 9)
/* clang-format on */

#define F(a, b, c)                                     \
	__attribute__((noipa)) long f##a##b##c(long x) \
	{                                              \
		return x * 3 + 0x##a##b##c + V * 4096; \
	}
R100(F, 0)
R100(F, 1)

#define C(a, b, c) s += f##a##b##c(x);

__attribute__((noipa)) static long call_all(long x)
{
	long s = 0;

	R100(C, 0)
	R100(C, 1)
	return s;
}

static const char *fifo;
static char go[4096];
static bool self, vec, fnptr;

/* printf's work in a buffer of our own, one write: no allocation. */
static void say(const char *fmt, ...)
{
	char buf[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && write(1, buf, (size_t)n) < 0)
		_exit(1);
}

static void *holder(void *arg)
{
	static char buf[4096];
	int fd = open(fifo, O_WRONLY | O_NONBLOCK);

	(void)arg;
	if (fd < 0)
		_exit(2);
	memset(buf, '.', sizeof(buf));
	while (write(fd, buf, sizeof(buf)) > 0)
		;
	while (write(fd, buf, 1) > 0)
		;
	fcntl(fd, F_SETFL, 0);
	dup2(fd, 2);
	say("held tid=%d\n", (int)gettid());
	malloc_stats(); /* waits in write(), the main arena locked */
	say("released\n");
	for (;;)
		pause();
	return NULL;
}

static const uint64_t vec_in[8] = {
	1, 2, 0x1111, 0x2222, 5, 6, 0x7777, 0x8888
};

/* nanosleep(@ts) by a syscall of our own, ymm15 holding a value across
 * it: is it still there after? */
__attribute__((target("avx"))) static bool avx_sleep(const struct timespec *ts)
{
	uint64_t out[4] = { 0 }, nr = SYS_nanosleep;

	__asm__ volatile("vmovdqu %[in], %%ymm15\n\t"
			 "syscall\n\t"
			 "vmovdqu %%ymm15, %[out]"
			 : "+a"(nr), [out] "=m"(out)
			 : [in] "m"(*(const uint64_t(*)[4])vec_in), "D"(ts),
			   "S"(NULL)
			 : "rcx", "r11", "xmm15", "memory");
	return !memcmp(vec_in, out, sizeof(out));
}

/* So, with zmm31, zmm16 (the first register glibc's EVEX string
 * functions use) and k1 too. */
__attribute__((target("avx512f"))) static bool
avx512_sleep(const struct timespec *ts)
{
	uint64_t out[4] = { 0 }, out8[8] = { 0 }, out16[8] = { 0 }, k = 0,
		 nr = SYS_nanosleep;

	__asm__ volatile(
		"vmovdqu %[in], %%ymm15\n\t"
		"vmovdqu64 %[in8], %%zmm31\n\t"
		"vmovdqu64 %[in8], %%zmm16\n\t"
		"movl $0x5a5a, %%ecx\n\t"
		"kmovw %%ecx, %%k1\n\t"
		"syscall\n\t"
		"vmovdqu %%ymm15, %[out]\n\t"
		"vmovdqu64 %%zmm31, %[out8]\n\t"
		"vmovdqu64 %%zmm16, %[out16]\n\t"
		"kmovw %%k1, %%ecx\n\t"
		"mov %%rcx, %[k]"
		: "+a"(nr), [out] "=m"(out), [out8] "=m"(out8),
		  [out16] "=m"(out16), [k] "=m"(k)
		: [in] "m"(*(const uint64_t(*)[4])vec_in), [in8] "m"(vec_in),
		  "D"(ts), "S"(NULL)
		: "rcx", "r11", "xmm15", "xmm16", "xmm31", "k1", "memory");
	return !memcmp(vec_in, out, sizeof(out)) &&
	       !memcmp(vec_in, out8, sizeof(out8)) &&
	       !memcmp(vec_in, out16, sizeof(out16)) && k == 0x5a5a;
}

static bool vec_sleep(const struct timespec *ts)
{
	if (__builtin_cpu_supports("avx512f"))
		return avx512_sleep(ts);
	if (__builtin_cpu_supports("avx"))
		return avx_sleep(ts);
	nanosleep(ts, NULL);
	return true;
}

static void *sleeper(void *arg)
{
	void (*volatile keep_free)(void *) = fnptr ? free : NULL;

	(void)arg;
	if (keep_free)
		say("fnptr %p\n", (void *)keep_free);
	if (vec)
		say("vec tid=%d\n", (int)gettid());
	for (;;) {
		struct timespec ts = { 0, 10000000 };

		if (self && !access(go, F_OK))
			return NULL;
		if (!vec)
			nanosleep(&ts, NULL);
		else if (!vec_sleep(&ts))
			say("vec lost\n");
	}
}

int main(int argc, char **argv)
{
	/* On the stack for good: hpatch takes it for a return into the
	 * unwinder, and never calls it in this thread. */
	void *volatile keep = (void *)_Unwind_Backtrace;
	bool held = false;
	pthread_t thr;

	if (argc < 2)
		return 2;
	fifo = argv[1];
	snprintf(go, sizeof(go), "%s.go", fifo);
	self = argc > 2 && !strcmp(argv[2], "self");
	vec = argc > 2 && !strcmp(argv[2], "vec");
	fnptr = argc > 2 && !strcmp(argv[2], "fnptr");
	setvbuf(stdout, NULL, _IOLBF, 0);
	pthread_create(&thr, NULL, sleeper, NULL);
	printf("ready pid=%d keep=%p\n", (int)getpid(), keep);
	for (unsigned long round = 0;; round++) {
		void *frames[16];
		long s = call_all(1);
		int n = backtrace(frames, 16);

		printf("round %lu sum=%ld frames=%d\n", round, s, n);
		if (!held && !access(go, F_OK))
			held = !pthread_create(&thr, NULL, holder, NULL);
		usleep(20000);
	}
}
