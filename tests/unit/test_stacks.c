/*
 * Unit tests for reading and checking every stack in the stop
 * (rt_check.c): which bytes are read, which words keep a function busy
 * (compared word for word with the plain rule on random ranges), an
 * unreadable stack, and process_vm_readv refused by a seccomp filter.
 */
#include "hp_test.h"

#include "common/hp_log.h"
#include "runtime/runtime_int.h"
#include "common/hp_arch_x86_64.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/ucontext.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

enum { MAX_THREADS = 320, SPAN = 8192 };

/* Made-up threads, each with a stack mapping of SPAN bytes at a fake
 * address, read through the memory seam. */
static struct {
	uint8_t *mem;
	struct hp_map maps[MAX_THREADS];
	struct hp_thread t[MAX_THREADS];
	struct hp_proc proc;
	struct hp_world w;
	size_t nr;
	int nr_reads;
	int unreadable; /* thread whose stack cannot be read, or -1 */
	hp_raddr_t read_at[MAX_THREADS];
	size_t read_len[MAX_THREADS];
	/* Reads made at a normal (not real-time) priority, and by a thread
	 * other than the test's. */
	int reads_not_fifo, reads_elsewhere;
	pid_t test_tid;
	uint64_t read_us; /* each read takes as long, as a real one would */
	uint64_t other_read_us; /* ... on a thread other than the test's */
	/* The test's thread waits for the other's first read (up to 5 s). */
	bool await_other;
} fk;

#define FAKE_BASE 0x7e0000000000ULL
/* A made-up C library's signal restorer. */
#define RESTORER 0x7e7f00001230ULL

static hp_raddr_t map_start(size_t i)
{
	return FAKE_BASE + i * 2 * SPAN; /* a gap between mappings */
}

static int fake_read(const struct hp_proc *proc, hp_raddr_t addr, void *buf,
		     size_t len)
{
	const bool mine = (pid_t)syscall(SYS_gettid) == fk.test_tid;
	uint64_t until = hp_now_us() + (mine ? fk.read_us : fk.other_read_us);

	(void)proc;
	while (hp_now_us() < until)
		;
	/* (sched_yield: a real-time thread on the other's CPU lets it run.) */
	until = hp_now_us() + 5000000;
	while (mine && fk.await_other && hp_now_us() < until &&
	       !__atomic_load_n(&fk.reads_elsewhere, __ATOMIC_RELAXED))
		sched_yield();
	if ((sched_getscheduler(0) & ~SCHED_RESET_ON_FORK) != SCHED_FIFO)
		__atomic_fetch_add(&fk.reads_not_fifo, 1, __ATOMIC_RELAXED);
	if ((pid_t)syscall(SYS_gettid) != fk.test_tid)
		__atomic_fetch_add(&fk.reads_elsewhere, 1, __ATOMIC_RELAXED);
	for (size_t i = 0; i < fk.nr; i++) {
		if (addr < map_start(i) || addr + len > map_start(i) + SPAN)
			continue;
		if ((int)i == fk.unreadable)
			return -EIO;
		/* (Called on two threads at once.) */
		const int k =
			__atomic_fetch_add(&fk.nr_reads, 1, __ATOMIC_RELAXED);

		if (k < MAX_THREADS) {
			fk.read_at[k] = addr;
			fk.read_len[k] = len;
		}
		memcpy(buf, fk.mem + i * SPAN + (addr - map_start(i)), len);
		return 0;
	}
	return -EIO;
}

static const struct hp_mem_ops fake_ops = { fake_read, NULL };

/* @nr threads, each stopped with its stack pointer @sp_off bytes into its
 * mapping, every stack word zero; @nr_cpus for the split in two. */
static void fake_world(size_t nr, size_t sp_off, int nr_cpus)
{
	free(fk.mem);
	fk.mem = calloc(nr, SPAN);
	assert_non_null(fk.mem);
	fk.nr = nr;
	fk.nr_reads = 0;
	fk.unreadable = -1;
	for (size_t i = 0; i < nr; i++) {
		fk.maps[i] = (struct hp_map){ .start = map_start(i),
					      .end = map_start(i) + SPAN,
					      .prot = PROT_READ | PROT_WRITE };
		fk.t[i] = (struct hp_thread){ .tid = 1000 + (pid_t)i,
					      .has_ip = true };
		fk.t[i].regs.rsp = map_start(i) + sp_off;
		fk.t[i].regs.rip = 0x1000;
	}
	fk.proc = (struct hp_proc){
		.pid = 1, .maps = fk.maps, .nr_maps = nr, .mem = &fake_ops
	};
	fk.w = (struct hp_world){
		.pid = 1, .threads = fk.t, .nr_threads = nr, .nr_cpus = nr_cpus
	};
}

static void put_word(size_t thread, size_t off, uint64_t v)
{
	memcpy(fk.mem + thread * SPAN + off, &v, sizeof(v));
}

/* One stop's check of every stack; the stacks are dropped after it. */
static int check(const struct hp_busy_range *r, size_t nr, pid_t *tid,
		 const struct hp_busy_range **busy)
{
	int rc;

	*tid = 0;
	*busy = NULL;
	rc = hp_world_check(&fk.w, &fk.proc, r, nr, tid, busy);
	hp_world_drop_stacks(&fk.w);
	return rc;
}

static void quiet(enum hp_log_level l, const char *m, void *c)
{
	(void)l;
	(void)m;
	(void)c;
}

static int teardown(void **state)
{
	(void)state;
	free(fk.mem);
	fk.mem = NULL;
	return 0;
}

/* Each stack is read once, from its stack pointer (rounded down to a
 * word) to the end of its mapping: never below, never past. */
static void test_read_span(void **state)
{
	const struct hp_busy_range r = { 0x5000, 0x6000, "f", false, NULL };
	const struct hp_busy_range *busy = NULL;
	pid_t tid = 0;

	(void)state;
	fake_world(3, 4108, 1);
	assert_hp_ok(check(&r, 1, &tid, &busy));
	assert_int_equal(fk.nr_reads, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fk.read_at[i], map_start((size_t)i) + 4104);
		assert_int_equal(fk.read_len[i], SPAN - 4104);
	}
	/* A return just below the stack pointer is no longer on the stack;
	 * one in the last word of the mapping is. */
	put_word(1, 4096, 0x5010);
	assert_hp_ok(check(&r, 1, &tid, &busy));
	put_word(2, SPAN - 8, 0x5010);
	assert_hp_err(check(&r, 1, &tid, &busy), HP_E_BUSY);
	assert_int_equal(tid, 1002);
	assert_ptr_equal(busy, &r);
}

/* Which words keep a function busy: inside it, not its first byte (a
 * function pointer), not its end; never a jump site (ip_only). The lowest
 * such word on the stack is named, with the first of overlapping ranges
 * in the caller's order. */
static void test_word_rule(void **state)
{
	const struct hp_busy_range r[] = {
		{ 0x9000, 0x9100, "late", false, NULL },
		{ 0x5000, 0x6000, "f", false, NULL },
		{ 0x7000, 0x7005, "site", true, NULL },
		{ 0x5800, 0x5900, "inner", false, NULL },
	};
	const struct hp_busy_range inner_first[] = { r[3], r[1] };
	const struct hp_busy_range *busy = NULL;
	pid_t tid = 0;

	(void)state;
	fake_world(2, 0, 1);
	put_word(0, 0, 0x5000);	 /* f's first byte */
	put_word(0, 8, 0x6000);	 /* just past f */
	put_word(0, 16, 0x7002); /* inside the jump site */
	put_word(0, 24, 0x4fff); /* just before f */
	put_word(0, 32, 0x9100); /* just past late */
	put_word(0, 40, UINT64_MAX);
	assert_hp_ok(check(r, 4, &tid, &busy));
	put_word(1, 4000, 0x5fff); /* f's last byte */
	assert_hp_err(check(r, 4, &tid, &busy), HP_E_BUSY);
	assert_int_equal(tid, 1001);
	assert_ptr_equal(busy, &r[1]);
	put_word(1, 4000, 0x5810); /* in f and in inner */
	assert_hp_err(check(r, 4, &tid, &busy), HP_E_BUSY);
	assert_ptr_equal(busy, &r[1]);
	assert_hp_err(check(inner_first, 2, &tid, &busy), HP_E_BUSY);
	assert_ptr_equal(busy, &inner_first[0]);
	put_word(1, 3992, 0x9001); /* lower on the stack: late */
	assert_hp_err(check(r, 4, &tid, &busy), HP_E_BUSY);
	assert_ptr_equal(busy, &r[0]);
	/* inner's first byte is no call into inner, but a return into f. */
	put_word(1, 3992, 0);
	put_word(1, 4000, 0x5800);
	assert_hp_err(check(r, 4, &tid, &busy), HP_E_BUSY);
	assert_ptr_equal(busy, &r[1]);
	assert_hp_ok(check(&r[3], 1, &tid, &busy));
	/* The first thread with one is named. */
	put_word(0, 48, 0x9080);
	assert_hp_err(check(r, 4, &tid, &busy), HP_E_BUSY);
	assert_int_equal(tid, 1000);
	assert_ptr_equal(busy, &r[0]);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* The plain rule, word by word: the first thread, its lowest word, and
 * that word's first range (in the caller's order). */
static const struct hp_busy_range *reference(const struct hp_busy_range *r,
					     size_t nr, pid_t *tid)
{
	for (size_t i = 0; i < fk.nr; i++)
		for (size_t off = (fk.t[i].regs.rsp & ~7ULL) - map_start(i);
		     off < SPAN; off += 8) {
			uint64_t v;

			memcpy(&v, fk.mem + i * SPAN + off, sizeof(v));
			for (size_t k = 0; k < nr && v; k++)
				if (!r[k].ip_only && v != r[k].start &&
				    v >= r[k].start && v < r[k].end) {
					*tid = fk.t[i].tid;
					return &r[k];
				}
		}
	return NULL;
}

/*
 * Random functions (overlapping, jump sites among them, in no order) and
 * random stacks, on one CPU and two, across the read's chunks, with the
 * vector loop (where the CPU has AVX2) and the plain one: the check finds
 * exactly what the plain rule finds, and names the same.
 */
static void test_same_as_plain_rule(void **state)
{
	enum { NR = 300 };
	static struct hp_busy_range r[NR];
	uint64_t seed = 0x9e3779b97f4a7c15ULL;

	(void)state;
	for (int round = 0; round < 80; round++) {
		const struct hp_busy_range *busy = NULL, *want = NULL;
		const size_t nr = 1 + rnd(&seed) % NR;
		pid_t tid = 0, want_tid = 0;
		int rc;

		fake_world(MAX_THREADS, (size_t)round * 12, round % 2 ? 2 : 1);
		for (size_t k = 0; k < nr; k++) {
			const uint64_t start =
				0x400000 + (rnd(&seed) % 0x100000) * 16;

			r[k] = (struct hp_busy_range){
				start, start + 1 + rnd(&seed) % 0x2000, "fn",
				rnd(&seed) % 8 == 0, NULL
			};
		}
		/* Mostly words far from the functions, a few near or at
		 * their edges, on a few stacks. */
		for (int n = 0; n < 64; n++) {
			const size_t th = rnd(&seed) % MAX_THREADS;
			const size_t off = (rnd(&seed) % (SPAN / 8)) * 8;
			const struct hp_busy_range *k = &r[rnd(&seed) % nr];
			const uint64_t pick[] = { k->start, k->end, k->end - 1,
						  k->start - 1,
						  0x7fff00000000 + off };
			const size_t j = rnd(&seed) % 5;

			put_word(th, off,
				 round % 4 == 3 && j < 4 ? pick[4] : pick[j]);
		}
		want = reference(r, nr, &want_tid);
		/* Restorer words, their frames not the kernel's, change
		 * nothing: every word after them is scanned all the same. */
		for (int n = 0; round % 2 && n < 64; n++) {
			const size_t th = rnd(&seed) % MAX_THREADS;
			const size_t off = (rnd(&seed) % (SPAN / 8)) * 8;
			uint64_t v;

			memcpy(&v, fk.mem + th * SPAN + off, sizeof(v));
			if (v || off + HP_X86_SIGFRAME_SIZE > SPAN)
				continue;
			put_word(th, off, RESTORER);
			memcpy(&v,
			       fk.mem + th * SPAN + off +
				       HP_X86_SIGFRAME_FPSTATE,
			       sizeof(v));
			if (!v)
				put_word(th, off + HP_X86_SIGFRAME_FPSTATE, 1);
		}
		fk.proc.restorers[0] = RESTORER;
		fk.proc.nr_restorers = round % 2;
		hp_stack_scan_plain = round >= 40;
		rc = check(r, nr, &tid, &busy);
		hp_stack_scan_plain = false;
		if (!want) {
			assert_hp_ok(rc);
			continue;
		}
		assert_hp_err(rc, HP_E_BUSY);
		assert_int_equal(tid, want_tid);
		assert_ptr_equal(busy, want);
	}
}

/*
 * A return into the function in any word of a stack is found, from the
 * stack pointer to the last word of the mapping (the deepest frame), at
 * every place in the scan's blocks of words and in the tail after them
 * (stack pointers 0 to 120 bytes past a block), by either loop; so is an
 * instruction pointer inside the function, with a clean stack.
 */
static void test_every_word(void **state)
{
	const struct hp_busy_range r = { 0x5000, 0x6000, "f", false, NULL };
	const struct hp_busy_range *busy = NULL;
	pid_t tid = 0;

	(void)state;
	for (int plain = 0; plain < 2; plain++) {
		hp_stack_scan_plain = plain;
		for (size_t sp = 0; sp < 128; sp += 8) {
			fake_world(2, SPAN - 512 + sp, 1);
			assert_hp_ok(check(&r, 1, &tid, &busy));
			for (size_t off = SPAN - 512 + sp; off < SPAN;
			     off += 8) {
				put_word(1, off, 0x5abc);
				assert_hp_err(check(&r, 1, &tid, &busy),
					      HP_E_BUSY);
				assert_int_equal(tid, 1001);
				assert_ptr_equal(busy, &r);
				put_word(1, off, 0x4fff);
				assert_hp_ok(check(&r, 1, &tid, &busy));
			}
			fk.t[0].regs.rip = 0x5001;
			assert_hp_err(check(&r, 1, &tid, &busy), HP_E_BUSY);
			assert_int_equal(tid, 1000);
			assert_ptr_equal(busy, &r);
		}
	}
	hp_stack_scan_plain = false;
}

/*
 * The stop's one check (stacks_once) reads chunk after chunk to the same
 * room: a return into the function on any stack, in the deepest word or
 * just above the stack pointer, in a chunk of either CPU, and an IP in
 * it, are found as when every stack is kept, and the first thread with
 * one is named; nothing is kept for a later check, and after a return
 * the rest is not read.
 */
static void test_checked_once(void **state)
{
	const struct hp_busy_range r = { 0x5000, 0x6000, "f", false, NULL };
	const size_t at[] = {
		0, 7, 8, 100, 159, 160, 161, 250, MAX_THREADS - 1
	};
	const struct hp_busy_range *busy = NULL;
	pid_t tid = 0;

	(void)state;
	for (int cpus = 1; cpus <= 2; cpus++) {
		fake_world(MAX_THREADS, 24, cpus);
		fk.w.stacks_once = true;
		assert_hp_ok(
			hp_world_check(&fk.w, &fk.proc, &r, 1, &tid, &busy));
		assert_null(fk.w.stacks);
		assert_int_equal(fk.nr_reads, MAX_THREADS);
		for (size_t k = 0; k < sizeof(at) / sizeof(at[0]); k++) {
			for (int deep = 0; deep < 2; deep++) {
				const size_t off = deep ? SPAN - 8 : 24;

				put_word(at[k], off, 0x5010);
				fk.nr_reads = 0;
				assert_hp_err(hp_world_check(&fk.w, &fk.proc,
							     &r, 1, &tid,
							     &busy),
					      HP_E_BUSY);
				assert_int_equal(tid, 1000 + (pid_t)at[k]);
				assert_ptr_equal(busy, &r);
				assert_null(fk.w.stacks);
				if (cpus == 1 && at[k] < 100)
					assert_true(fk.nr_reads < MAX_THREADS);
				put_word(at[k], off, 0);
			}
		}
		/* Two: the first is named. */
		put_word(250, SPAN - 8, 0x5010);
		put_word(3, SPAN - 8, 0x5010);
		assert_hp_err(
			hp_world_check(&fk.w, &fk.proc, &r, 1, &tid, &busy),
			HP_E_BUSY);
		assert_int_equal(tid, 1003);
		put_word(250, SPAN - 8, 0);
		put_word(3, SPAN - 8, 0);
		fk.t[200].regs.rip = 0x5abc;
		assert_hp_err(
			hp_world_check(&fk.w, &fk.proc, &r, 1, &tid, &busy),
			HP_E_BUSY);
		assert_int_equal(tid, 1200);
	}
}

/*
 * The CPUs share the stacks as they go: with one of them much slower (a
 * helper woken late, a CPU busy elsewhere), or the loader the slower, the
 * check answers as one pass in order would: the first thread with a
 * return, early or late in the list, kept or not, is named.
 */
static void test_uneven_cpus(void **state)
{
	const struct hp_busy_range r = { 0x5000, 0x6000, "f", false, NULL };
	const size_t at[][2] = { { 5, 300 }, { 300, 310 }, { 150, 160 } };
	const struct hp_busy_range *busy = NULL;
	pid_t tid = 0;

	(void)state;
	fk.test_tid = (pid_t)syscall(SYS_gettid);
	for (int round = 0; round < 4; round++) {
		fake_world(MAX_THREADS, 16, 2);
		fk.w.stacks_once = round % 2;
		fk.read_us = round < 2 ? 0 : 40;
		fk.other_read_us = round < 2 ? 40 : 0;
		for (size_t k = 0; k < sizeof(at) / sizeof(at[0]); k++) {
			put_word(at[k][1], SPAN - 8, 0x5010);
			put_word(at[k][0], 16, 0x5abc);
			assert_hp_err(check(&r, 1, &tid, &busy), HP_E_BUSY);
			assert_int_equal(tid, 1000 + (pid_t)at[k][0]);
			put_word(at[k][0], 16, 0);
			assert_hp_err(check(&r, 1, &tid, &busy), HP_E_BUSY);
			assert_int_equal(tid, 1000 + (pid_t)at[k][1]);
			put_word(at[k][1], SPAN - 8, 0);
			assert_hp_ok(check(&r, 1, &tid, &busy));
		}
	}
	fk.read_us = fk.other_read_us = 0;
}

/*
 * A thread's stack mapping is looked for next to the last thread's first:
 * threads whose stacks lie in the maps in any order (reversed, shuffled,
 * a few neighbours apart) each get their own mapping, read from their
 * stack pointer to its end, and a return there is theirs.
 */
static void test_stacks_any_order(void **state)
{
	enum { N = 64 };
	const struct hp_busy_range r = { 0x5000, 0x6000, "f", false, NULL };
	const struct hp_busy_range *busy = NULL;
	uint64_t seed = 0x2545f4914f6cdd1dULL;
	size_t perm[N];
	pid_t tid = 0;

	(void)state;
	for (int round = 0; round < 4; round++) {
		fake_world(N, 0, 1);
		for (size_t i = 0; i < N; i++)
			perm[i] = round == 0   ? N - 1 - i
				  : round == 1 ? (i * 5) % N
					       : i;
		for (size_t i = N - 1; round >= 2 && i > 0; i--) {
			const size_t j = rnd(&seed) % (i + 1), v = perm[i];

			perm[i] = perm[j];
			perm[j] = v;
		}
		for (size_t i = 0; i < N; i++)
			fk.t[i].regs.rsp = map_start(perm[i]) + 8 * i;
		assert_hp_ok(check(&r, 1, &tid, &busy));
		assert_int_equal(fk.nr_reads, N);
		for (size_t i = 0; i < N; i++) {
			assert_int_equal(fk.read_at[i],
					 map_start(perm[i]) + 8 * i);
			assert_int_equal(fk.read_len[i], SPAN - 8 * i);
		}
		put_word(perm[37], SPAN - 8, 0x5010);
		assert_hp_err(check(&r, 1, &tid, &busy), HP_E_BUSY);
		assert_int_equal(tid, 1037);
	}
}

/* A stack that cannot be read never counts as clean. */
static void test_unreadable_is_not_clean(void **state)
{
	const struct hp_busy_range r = { 0x5000, 0x6000, "f", false, NULL };
	const struct hp_busy_range *busy = NULL;
	pid_t tid = 0;

	(void)state;
	hp_log_set_sink(quiet, NULL);
	for (int cpus = 1; cpus <= 2; cpus++) {
		fake_world(MAX_THREADS, 64, cpus);
		fk.unreadable = MAX_THREADS - 3;
		assert_int_equal(check(&r, 1, &tid, &busy), -EIO);
		fk.unreadable = 0;
		assert_int_equal(check(&r, 1, &tid, &busy), -EIO);
	}
	hp_log_set_sink(NULL, NULL);
}

/*
 * The check's second thread runs at the loader's real-time priority, as
 * the first does: started at normal priority (SCHED_RESET_ON_FORK), it
 * waited behind every runnable task of a busy host while the first half
 * waited for it.
 */
static void test_helper_priority(void **state)
{
	const struct hp_busy_range r = { 0x5000, 0x6000, "f", false, NULL };
	const struct sched_param fifo = { .sched_priority = 1 };
	const struct sched_param normal = { .sched_priority = 0 };
	const struct hp_busy_range *busy = NULL;
	pid_t tid = 0;
	int rc;

	(void)state;
	fake_world(MAX_THREADS, 0, 2); /* 2.5 MB: read on two threads */
	fk.test_tid = (pid_t)syscall(SYS_gettid);
	fk.reads_not_fifo = fk.reads_elsewhere = 0;
	fk.read_us = 10; /* 3.2 ms in all: the helper takes its share */
	/* On a loaded host (the suite's other tests, some at real-time
	 * priority too) it may get a CPU only after all of it: waited for,
	 * so that its reads are there to be looked at. */
	fk.await_other = true;
	/* As hp_prio_raise does for the window (the suite runs as root). */
	assert_int_equal(
		sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &fifo),
		0);
	rc = check(&r, 1, &tid, &busy);
	assert_int_equal(sched_setscheduler(0, SCHED_OTHER, &normal), 0);
	assert_hp_ok(rc);
	assert_int_equal(fk.nr_reads, MAX_THREADS);
	assert_true(fk.reads_elsewhere > 0);
	assert_int_equal(fk.reads_not_fifo, 0);
	fk.read_us = 0;
	fk.await_other = false;
}

static pid_t job_tid;

static void note_tid(void *arg)
{
	(void)arg;
	job_tid = (pid_t)syscall(SYS_gettid);
}

/*
 * The helper runs each job on a thread of its own, whether woken ahead or
 * not, and a woken one told there is no job after all takes the next.
 */
static void test_helper_jobs(void **state)
{
	const pid_t self = (pid_t)syscall(SYS_gettid);

	(void)state;
	for (int round = 0; round < 3; round++) {
		job_tid = 0;
		if (round == 1)
			hp_helper_wake();
		if (round == 2) {
			hp_helper_wake();
			hp_helper_rest();
		}
		assert_int_equal(hp_helper_start(note_tid, NULL), 0);
		hp_helper_join();
		assert_true(job_tid > 0 && job_tid != self);
	}
}

/* @n made-up threads of this very process: each stack SPAN bytes of
 * @mem, the stack pointer 64 bytes in. */
static void self_threads(uint8_t *mem, struct hp_thread *t, struct hp_map *maps,
			 int n)
{
	for (int i = 0; i < n; i++) {
		const hp_raddr_t at = (uintptr_t)(mem + (size_t)i * SPAN);

		maps[i] = (struct hp_map){ .start = at, .end = at + SPAN };
		t[i] = (struct hp_thread){ .tid = 1000 + i, .has_ip = true };
		t[i].regs.rsp = at + 64;
		t[i].regs.rip = 0x1000;
	}
}

/*
 * Every stack is checked, whichever CPU reads it: 300 made-up threads of
 * this very process, 8 KiB of stack each (2.4 MB: read on two threads),
 * a return into the range on one stack, then on two (the first reported).
 */
static void test_stacks_checked(void **state)
{
	enum { N = 300 };
	const struct hp_busy_range range = { 0x5000, 0x6000, "f", false, NULL };
	uint8_t *mem = calloc(N, SPAN);
	struct hp_thread *t = calloc(N, sizeof(*t));
	struct hp_map *maps = calloc(N, sizeof(*maps));
	struct hp_proc proc = { .pid = getpid(), .maps = maps, .nr_maps = N };
	struct hp_world w = {
		.pid = getpid(), .threads = t, .nr_threads = N, .nr_cpus = 2
	};
	const struct hp_busy_range *busy = NULL;
	const uint64_t ret = 0x5010;
	pid_t tid = 0;

	(void)state;
	assert_non_null(mem);
	self_threads(mem, t, maps, N);
	assert_hp_ok(hp_world_check(&w, &proc, &range, 1, &tid, &busy));
	hp_world_drop_stacks(&w); /* a new stop, stacks changed */
	memcpy(mem + 250 * SPAN + 4096, &ret, sizeof(ret));
	assert_hp_err(hp_world_check(&w, &proc, &range, 1, &tid, &busy),
		      HP_E_BUSY);
	assert_int_equal(tid, 1250);
	hp_world_drop_stacks(&w);
	memcpy(mem + 3 * SPAN + 128, &ret, sizeof(ret));
	assert_hp_err(hp_world_check(&w, &proc, &range, 1, &tid, &busy),
		      HP_E_BUSY);
	assert_int_equal(tid, 1003);
	hp_world_drop_stacks(&w);
	memset(mem + 3 * SPAN + 128, 0, sizeof(ret));
	w.nr_cpus = 1; /* one CPU: the same answer */
	assert_hp_err(hp_world_check(&w, &proc, &range, 1, &tid, &busy),
		      HP_E_BUSY);
	assert_int_equal(tid, 1250);
	/* Later checks of the same stop scan what was read, for a range
	 * of their own: a word planted since is not seen. */
	memcpy(mem + 3 * SPAN + 128, &ret, sizeof(ret));
	assert_hp_err(hp_world_check(&w, &proc, &range, 1, &tid, &busy),
		      HP_E_BUSY);
	assert_int_equal(tid, 1250);
	hp_world_drop_stacks(&w);
	free(maps);
	free(t);
	free(mem);
}

/* Install a filter making process_vm_readv fail with @err. */
static int refuse_vm_readv(int err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_process_vm_readv, 0,
			 1),
		BPF_STMT(BPF_RET | BPF_K,
			 SECCOMP_RET_ERRNO | ((unsigned int)err & 0xffff)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/*
 * In a child under a filter that refuses process_vm_readv with @err: the
 * stacks of made-up threads in the child's own memory, read through
 * /proc/self/mem instead, give the same answers (on two CPUs too: the
 * child starts a helper of its own, its parent's not being there). Return: the child's
 * failing step, 0 if none.
 */
static int child_checks(int err)
{
	enum { N = 300 };
	const struct hp_busy_range r = { 0x5000, 0x6000, "f", false, NULL };
	const struct hp_busy_range *busy = NULL;
	uint8_t *mem = calloc(N, SPAN), byte = 0;
	struct hp_thread *t = calloc(N, sizeof(*t));
	struct hp_map *maps = calloc(N, sizeof(*maps));
	struct hp_proc proc = { .pid = getpid(), .maps = maps, .nr_maps = N };
	struct hp_world w = { .pid = getpid(), .threads = t, .nr_threads = N };
	const uint64_t ret = 0x5010;
	struct iovec l = { &byte, 1 }, rem = { &byte, 1 };
	pid_t tid = 0;

	if (!mem || !t || !maps || refuse_vm_readv(err))
		return 1;
	if (process_vm_readv(getpid(), &l, 1, &rem, 1, 0) != -1 || errno != err)
		return 2; /* the filter is not in the way: no test */
	proc.mem_fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	if (proc.mem_fd < 0)
		return 3;
	self_threads(mem, t, maps, N);
	for (int cpus = 1; cpus <= 2; cpus++) {
		w.nr_cpus = cpus;
		memset(mem, 0, (size_t)N * SPAN);
		if (hp_world_check(&w, &proc, &r, 1, &tid, &busy))
			return 4;
		hp_world_drop_stacks(&w);
		memcpy(mem + 250 * SPAN + 4096, &ret, sizeof(ret));
		if (hp_world_check(&w, &proc, &r, 1, &tid, &busy) !=
			    -HP_E_BUSY ||
		    tid != 1250 || busy != &r)
			return 5;
		hp_world_drop_stacks(&w);
	}
	return 0;
}

static void test_vm_readv_refused(void **state)
{
	const int errs[] = { EPERM, ENOSYS };

	(void)state;
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		int status = 0;
		const pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0)
			_exit(child_checks(errs[i]));
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
}

/* A signal frame at @off of @thread's stack, as the kernel writes it: the
 * interrupted stack pointer @rsp and instruction pointer @rip, of 64-bit
 * code, its FPU state just above it, aligned. */
static void put_frame(size_t thread, size_t off, uint64_t rsp, uint64_t rip)
{
	put_word(thread, off, RESTORER);
	put_word(thread, off + HP_X86_SIGFRAME_RSP, rsp);
	put_word(thread, off + HP_X86_SIGFRAME_RIP, rip);
	put_word(thread, off + HP_X86_SIGFRAME_CSGSFS, HP_X86_USER_CS);
	put_word(thread, off + HP_X86_SIGFRAME_FPSTATE,
		 (map_start(thread) + off + 512 + 63) & ~63ULL);
}

/* One thread, running on the stack of mapping 0 (its sigaltstack), its
 * usual stack in mapping 1 and more mappings for @nr_maps; the process's
 * C library has RESTORER. */
static void altstack_world(size_t nr_maps)
{
	fake_world(nr_maps, 4096, 1);
	fk.w.nr_threads = 1;
	fk.proc.restorers[0] = RESTORER;
	fk.proc.nr_restorers = 1;
}

/*
 * A thread in a handler on its sigaltstack: the frame the kernel pushed
 * there names the stack it interrupted, on which a return into the
 * function keeps it busy (above the interrupted stack pointer only), and
 * the instruction it interrupted, which counts as a thread's (its first
 * byte too); by either loop. Not the kernel's frame (its FPU state
 * elsewhere), or its stack in no mapping: nothing more is read.
 */
static void test_sigframe_followed(void **state)
{
	const struct hp_busy_range r = { 0x5000, 0x6000, "f", false, NULL };
	const struct hp_busy_range *busy = NULL;
	const uint64_t usual = map_start(1) + 1000;
	pid_t tid = 0;

	(void)state;
	for (int plain = 0; plain < 2; plain++) {
		hp_stack_scan_plain = plain;
		altstack_world(2);
		put_word(1, 3000, 0x5010); /* work()'s return, below */
		put_frame(0, 4200, usual, 0x1234);
		assert_hp_err(check(&r, 1, &tid, &busy), HP_E_BUSY);
		assert_int_equal(tid, 1000);
		assert_ptr_equal(busy, &r);
		assert_int_equal(fk.nr_reads, 2);
		assert_int_equal(fk.read_at[1], usual);
		assert_int_equal(fk.read_len[1], SPAN - 1000);
		/* Its restorer unknown (a program's own): not followed. */
		fk.proc.nr_restorers = 0;
		assert_hp_ok(check(&r, 1, &tid, &busy));
		fk.proc.nr_restorers = 1;
		/* Below the interrupted stack pointer: no frame of it. */
		put_word(1, 3000, 0);
		put_word(1, 992, 0x5010);
		assert_hp_ok(check(&r, 1, &tid, &busy));
		/* The interrupted instruction, the first of f. */
		put_frame(0, 4200, usual, 0x5000);
		assert_hp_err(check(&r, 1, &tid, &busy), HP_E_BUSY);
		assert_ptr_equal(busy, &r);
		/* Not the kernel's frame (a copy of the restorer's address
		 * left in a stack word): its FPU state elsewhere, none,
		 * not aligned, or not 64-bit code's. Not followed. */
		put_word(1, 3000, 0x5010);
		for (int bad = 0; bad < 4; bad++) {
			const size_t fp = 4200 + HP_X86_SIGFRAME_FPSTATE;

			put_frame(0, 4200, usual, 0x1234);
			if (bad == 0)
				put_word(0, fp, map_start(0));
			else if (bad == 1)
				put_word(0, fp, 0);
			else if (bad == 2)
				put_word(0, fp, map_start(0) + 4200 + 520);
			else
				put_word(0, 4200 + HP_X86_SIGFRAME_CSGSFS,
					 0x23);
			fk.nr_reads = 0;
			assert_hp_ok(check(&r, 1, &tid, &busy));
			assert_int_equal(fk.nr_reads, 1);
		}
		/* The handler returned, its thread on the restorer (the
		 * frame's restorer word just popped, below the stack
		 * pointer): the frame is followed all the same. */
		put_word(0, 4200, 0);
		put_frame(0, 4088, usual, 0x1234);
		for (uint64_t ip = RESTORER; ip < RESTORER + 10; ip++) {
			fk.t[0].regs.rip = ip;
			fk.nr_reads = 0;
			if (ip < RESTORER + HP_X86_RESTORER_SIZE) {
				assert_hp_err(check(&r, 1, &tid, &busy),
					      HP_E_BUSY);
				assert_int_equal(fk.nr_reads, 3);
			} else {
				assert_hp_ok(check(&r, 1, &tid, &busy));
			}
		}
		fk.t[0].regs.rip = 0x1000;
		put_frame(0, 4200, usual, 0x1234);
		/* Its stack pointer in no mapping, or past the end of it. */
		put_frame(0, 4200, map_start(1) + SPAN + 8, 0x1234);
		assert_hp_ok(check(&r, 1, &tid, &busy));
		put_frame(0, SPAN - 8, usual, 0x1234);
		assert_hp_ok(check(&r, 1, &tid, &busy));
	}
	hp_stack_scan_plain = false;
}

/*
 * Frames from the target are untrusted: frames naming each other's
 * stacks, or their own, read each stack once; a chain longer than the
 * bound is busy, after a bounded number of reads; a stack made of
 * restorer words is scanned once.
 */
static void test_sigframe_bounds(void **state)
{
	const struct hp_busy_range r = { 0x5000, 0x6000, "f", false, NULL };
	const struct hp_busy_range *busy = NULL;
	pid_t tid = 0;

	(void)state;
	altstack_world(2);
	put_frame(0, 4200, map_start(1) + 100, 0x1234);
	put_frame(1, 200, map_start(0) + 4300, 0x1234);
	put_frame(1, 400, map_start(1) + 300, 0x1234);
	assert_hp_ok(check(&r, 1, &tid, &busy));
	assert_int_equal(fk.nr_reads, 2);
	altstack_world(12);
	for (size_t i = 0; i + 1 < 12; i++)
		put_frame(i, 4200, map_start(i + 1) + 4100, 0x1234);
	assert_hp_err(check(&r, 1, &tid, &busy), HP_E_BUSY);
	assert_int_equal(tid, 1000);
	assert_string_equal(busy->name, "signal frames beyond the bound");
	assert_in_range(fk.nr_reads, 2, 6);
	altstack_world(1);
	for (size_t off = 0; off < SPAN; off += 8)
		put_word(0, off, RESTORER);
	assert_hp_ok(check(&r, 1, &tid, &busy));
	assert_int_equal(fk.nr_reads, 1);
}

static volatile sig_atomic_t frame_seen;
static uint64_t frame_restorer, frame_rsp, frame_rip, real_rsp, real_rip;
static bool frame_kernels;

static void on_signal(int sig, siginfo_t *si, void *ctx)
{
	const ucontext_t *uc = ctx;
	const uint8_t *frame = (const uint8_t *)ctx - sizeof(uint64_t);
	struct hp_sigframe f;

	(void)sig;
	(void)si;
	memcpy(&frame_restorer, frame, sizeof(frame_restorer));
	frame_kernels = hp_sigframe_read(frame, (uintptr_t)frame, &f);
	frame_rsp = f.rsp;
	frame_rip = f.rip;
	real_rsp = (uint64_t)uc->uc_mcontext.gregs[REG_RSP];
	real_rip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
	frame_seen = 1;
}

/*
 * The layout read is the kernel's and the C library's: a real signal on
 * a sigaltstack, in this process. The word below the ucontext is the
 * restorer hp_proc_find_restorers finds in the C library, its bytes
 * "mov $15,%rax; syscall"; the frame read gives the interrupted stack
 * and instruction pointers the handler is given.
 */
static void test_sigframe_layout(void **state)
{
	static const uint8_t want[] = HP_X86_RESTORER_BYTES;
	const size_t size = 64 << 10;
	uint8_t *alt = malloc(size);
	stack_t ss = { .ss_sp = alt, .ss_size = size }, old_ss;
	struct sigaction sa = { .sa_sigaction = on_signal,
				.sa_flags = SA_SIGINFO | SA_ONSTACK },
			 old_sa;
	struct hp_proc proc;
	bool listed = false;

	(void)state;
	assert_int_equal(HP_X86_SIGFRAME_RSP,
			 8 + offsetof(ucontext_t, uc_mcontext.gregs) +
				 REG_RSP * 8);
	assert_int_equal(HP_X86_SIGFRAME_RIP,
			 8 + offsetof(ucontext_t, uc_mcontext.gregs) +
				 REG_RIP * 8);
	assert_int_equal(HP_X86_SIGFRAME_FPSTATE,
			 8 + offsetof(ucontext_t, uc_mcontext.fpregs));
	assert_non_null(alt);
	assert_int_equal(sigaltstack(&ss, &old_ss), 0);
	assert_int_equal(sigaction(SIGUSR2, &sa, &old_sa), 0);
	raise(SIGUSR2);
	assert_int_equal(sigaction(SIGUSR2, &old_sa, NULL), 0);
	assert_int_equal(sigaltstack(&old_ss, NULL), 0);
	assert_true(frame_seen);
	assert_true(frame_kernels);
	assert_int_equal(frame_rsp, real_rsp);
	assert_int_equal(frame_rip, real_rip);
	/* It interrupted this stack, not the alternate one. */
	assert_true(frame_rsp < (uintptr_t)alt ||
		    frame_rsp >= (uintptr_t)alt + size);
	assert_memory_equal((const void *)(uintptr_t)frame_restorer, want,
			    sizeof(want));
	assert_hp_ok(hp_proc_open(getpid(), &proc, true));
	/* Opened (status, a scan, hpatchd's match): nothing searched. Only
	 * an apply or a revert, whose stacks are read, look for them. */
	assert_int_equal(proc.nr_restorers, 0);
	hp_proc_find_restorers(&proc);
	for (size_t k = 0; k < proc.nr_restorers; k++)
		listed |= proc.restorers[k] == frame_restorer;
	hp_proc_close(&proc);
	assert_true(listed);
	free(alt);
}

/* A made-up C library: 64 KiB of code at LIBC_AT, then 64 KiB of data,
 * read through a seam that counts the bytes read. */
#define LIBC_AT 0x7e7f00000000ULL
#define LIBC_CODE (64u << 10)
static uint8_t libc_text[2 * LIBC_CODE];
static size_t libc_read;

static int libc_read_fn(const struct hp_proc *proc, hp_raddr_t addr, void *buf,
			size_t len)
{
	(void)proc;
	if (addr < LIBC_AT || addr + len > LIBC_AT + sizeof(libc_text))
		return -EIO;
	memcpy(buf, libc_text + (addr - LIBC_AT), len);
	libc_read += len;
	return 0;
}

static const struct hp_mem_ops libc_ops = { libc_read_fn, NULL };

/*
 * The restorers are found in the C library's code, read until one is,
 * once per file: a second process (or map read) with the same file reads
 * 9 bytes, to see they are still there; a file whose inode was reused
 * with other content is searched again. The library's data mapping, and
 * another library, are not searched.
 */
static void test_restorers_found_once(void **state)
{
	static const uint8_t code[] = HP_X86_RESTORER_BYTES;
	struct hp_map maps[] = {
		{ .start = 0x400000,
		  .end = 0x401000,
		  .prot = PROT_READ | PROT_EXEC,
		  .dev = 8,
		  .inode = 77,
		  .path = "/bin/prog" },
		{ .start = LIBC_AT,
		  .end = LIBC_AT + LIBC_CODE,
		  .prot = PROT_READ | PROT_EXEC,
		  .dev = 8,
		  .inode = 99,
		  .path = "/lib/x86_64-linux-gnu/libc.so.6" },
		{ .start = LIBC_AT + LIBC_CODE,
		  .end = LIBC_AT + 2 * LIBC_CODE,
		  .prot = PROT_READ | PROT_WRITE,
		  .dev = 8,
		  .inode = 99,
		  .path = "/lib/x86_64-linux-gnu/libc.so.6" },
	};
	struct hp_proc proc = {
		.pid = 1, .maps = maps, .nr_maps = 3, .mem = &libc_ops
	};

	(void)state;
	memset(libc_text, 0xcc, sizeof(libc_text));
	memcpy(libc_text + LIBC_CODE + 64, code, sizeof(code)); /* data */
	memcpy(libc_text + 0x1230, code, sizeof(code));
	libc_read = 0;
	hp_proc_find_restorers(&proc);
	assert_int_equal(proc.nr_restorers, 1);
	assert_int_equal(proc.restorers[0], LIBC_AT + 0x1230);
	assert_true(libc_read < LIBC_CODE); /* no further once found */
	libc_read = 0;
	hp_proc_find_restorers(&proc);
	assert_int_equal(proc.nr_restorers, 1);
	assert_int_equal(proc.restorers[0], LIBC_AT + 0x1230);
	assert_int_equal(libc_read, sizeof(code));
	/* Another file on the same inode, after an upgrade. */
	memset(libc_text + 0x1230, 0x90, sizeof(code));
	memcpy(libc_text + 0x2468, code, sizeof(code));
	hp_proc_find_restorers(&proc);
	assert_int_equal(proc.nr_restorers, 1);
	assert_int_equal(proc.restorers[0], LIBC_AT + 0x2468);
	/* No C library: the executable's code (a static program). */
	maps[1].path[0] = 0;
	maps[1].inode = 0;
	libc_read = 0;
	hp_proc_find_restorers(&proc);
	assert_int_equal(proc.nr_restorers, 0);
	assert_int_equal(libc_read, 0); /* the executable: not in the seam */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_read_span, teardown),
		cmocka_unit_test_teardown(test_stacks_any_order, teardown),
		cmocka_unit_test_teardown(test_word_rule, teardown),
		cmocka_unit_test_teardown(test_same_as_plain_rule, teardown),
		cmocka_unit_test_teardown(test_every_word, teardown),
		cmocka_unit_test_teardown(test_checked_once, teardown),
		cmocka_unit_test_teardown(test_uneven_cpus, teardown),
		cmocka_unit_test_teardown(test_unreadable_is_not_clean,
					  teardown),
		cmocka_unit_test_teardown(test_helper_priority, teardown),
		cmocka_unit_test(test_helper_jobs),
		cmocka_unit_test(test_stacks_checked),
		cmocka_unit_test(test_vm_readv_refused),
		cmocka_unit_test_teardown(test_sigframe_followed, teardown),
		cmocka_unit_test_teardown(test_sigframe_bounds, teardown),
		cmocka_unit_test(test_sigframe_layout),
		cmocka_unit_test(test_restorers_found_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
