/*
 * Deciding whether it is safe to switch, with every thread stopped: no
 * instruction pointer inside a range being replaced, no return address
 * into one on a thread's stack (read from the stack pointer to the end of
 * its mapping in one read), and after the window, who still runs old code.
 */
#include "runtime/runtime_int.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_util.h"
#include "common/hp_log.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/uio.h>

#define HP_LOG_PREFIX "rt: "
#define HP_STACK_SCAN_MAX (8u << 20)
#define HP_IOV_BATCH 512 /* ranges per process_vm_readv, under IOV_MAX */
/* Below this, a second thread costs more than it saves (~30 us to start). */
#define HP_STACKS_SPLIT_MIN (256u << 10)

/*
 * Does a system-call instruction (syscall, sysenter, int 0x80) start @off
 * bytes into jump site @r? One that may run past the site counts.
 */
static bool syscall_at(const struct hp_busy_range *r, uint64_t off)
{
	const uint8_t *b = r->bytes;
	const uint64_t last = HP_X86_JMP_REL32_SIZE - 1;

	if (!b || off > last)
		return false;
	return hp_x86_is_syscall(b + off, off == last ? 1 : 2);
}

/*
 * Is @v (an instruction pointer with @ip, else a word of a stack) inside a
 * range? A stack word equal to a function's first byte is no return
 * address (a call returns past itself, inside its caller) but a function
 * pointer, a callback say, and must not keep the function busy forever.
 */
static const struct hp_busy_range *in_ranges(const struct hp_busy_range *r,
					     size_t nr, uint64_t v, bool ip)
{
	for (size_t i = 0; i < nr; i++) {
		if ((ip || (!r[i].ip_only && v != r[i].start)) &&
		    v >= r[i].start && v < r[i].end)
			return &r[i];
		/* Just past a system call that ends the site: a thread
		 * blocked there restarts it at end - 2, inside the jump. */
		if (ip && v == r[i].end && syscall_at(&r[i], 3))
			return &r[i];
	}
	return NULL;
}

/* Bytes of each thread's stack to scan: from its stack pointer to the end
 * of the mapping holding it (at most HP_STACK_SCAN_MAX). */
static size_t stack_span(const struct hp_proc *proc, uint64_t sp)
{
	const struct hp_map *m = hp_proc_find_map(proc, sp);
	size_t len;

	if (!m)
		return 0;
	len = m->end - (sp & ~7ULL);
	return len > HP_STACK_SCAN_MAX ? HP_STACK_SCAN_MAX : len;
}

int hp_world_fresh_maps(const struct hp_world *w, struct hp_proc *proc)
{
	for (size_t i = 0; i < w->nr_threads; i++)
		if (!hp_proc_find_map(proc, w->threads[i].regs.rsp))
			return hp_proc_read_maps(proc);
	return 0;
}

/*
 * The stacks of threads [from, to) of one stop, read into buf + off and
 * scanned: one share of the check, for one CPU.
 */
struct stack_job {
	const struct hp_proc *proc;
	const struct hp_world *w;
	const struct hp_busy_range *ranges;
	size_t nr_ranges;
	size_t from, to;
	uint8_t *buf;
	const size_t *lens;
	size_t off;
	bool cached; /* buf holds the stacks already: scan only */
	size_t hit;  /* the first thread with a return into a range, or to */
	const struct hp_busy_range *busy;
	int rc;
};

/*
 * Read the job's stacks: one process_vm_readv per HP_IOV_BATCH threads
 * (one system call instead of one per thread), falling back to a pread
 * each if any range cannot be read whole.
 */
static int read_stacks(const struct stack_job *j)
{
	struct iovec local[HP_IOV_BATCH], remote[HP_IOV_BATCH];
	size_t off = j->off;
	int rc = 0;

	for (size_t i = j->from; i < j->to && !rc;) {
		size_t n = 0, want = 0;
		ssize_t got;

		for (; i < j->to && n < HP_IOV_BATCH; i++) {
			local[n] = (struct iovec){ j->buf + off, j->lens[i] };
			remote[n] = (struct iovec){
				(void *)(uintptr_t)(j->w->threads[i].regs.rsp &
						    ~7ULL),
				j->lens[i],
			};
			off += j->lens[i];
			want += j->lens[i];
			n++;
		}
		got = process_vm_readv(j->proc->pid, local, n, remote, n, 0);
		if (got == (ssize_t)want)
			continue;
		/* Fall back: one pread per range of this batch. */
		for (size_t k = 0; k < n && !rc; k++)
			rc = hp_proc_read(j->proc,
					  (uintptr_t)remote[k].iov_base,
					  local[k].iov_base, local[k].iov_len);
	}
	return rc;
}

/* Whether the @len bytes at @stack hold a return into one of @ranges. */
static const struct hp_busy_range *scan_stack(const uint8_t *stack, size_t len,
					      const struct hp_busy_range *r,
					      size_t nr)
{
	const struct hp_busy_range *hit = NULL;
	uint64_t lo = UINT64_MAX, hi = 0;

	/* Nearly every word (data, stack and library addresses) lies
	 * outside the span of all ranges: two compares rule it out. */
	for (size_t i = 0; i < nr; i++) {
		lo = r[i].start < lo ? r[i].start : lo;
		hi = r[i].end > hi ? r[i].end : hi;
	}
	for (size_t j = 0; j + sizeof(uint64_t) <= len && !hit;
	     j += sizeof(uint64_t)) {
		uint64_t v;

		memcpy(&v, stack + j, sizeof(v));
		if (v >= lo && v < hi)
			hit = in_ranges(r, nr, v, false);
	}
	return hit;
}

static void *run_job(void *arg)
{
	struct stack_job *j = arg;
	size_t off = j->off;

	j->hit = j->to;
	j->rc = j->cached ? 0 : read_stacks(j);
	for (size_t i = j->from; i < j->to && !j->rc && !j->busy; i++) {
		j->busy = scan_stack(j->buf + off, j->lens[i], j->ranges,
				     j->nr_ranges);
		j->hit = i;
		off += j->lens[i];
	}
	return NULL;
}

/*
 * Each stack's length (from its stack pointer to the end of its mapping),
 * into @lens. Return: the total, or 0 with a thread's stack in no mapping
 * (reported: hp_world_fresh_maps ran after the stop, so it cannot be).
 */
static size_t stack_lens(const struct hp_proc *proc, const struct hp_world *w,
			 size_t *lens)
{
	size_t total = 0;

	for (size_t i = 0; i < w->nr_threads; i++) {
		total += lens[i] = stack_span(proc, w->threads[i].regs.rsp);
		if (!lens[i]) {
			hp_error(-EFAULT,
				 "pid %d: tid %d: stack pointer 0x%llx lies in "
				 "no mapping; cannot check its stack, so "
				 "nothing is switched: retry",
				 (int)w->pid, (int)w->threads[i].tid,
				 w->threads[i].regs.rsp);
			return 0;
		}
	}
	return total;
}

/*
 * Where the stacks are read to: one buffer kept from stop to stop, its
 * pages touched before the window (hp_world_reserve_stacks). A buffer
 * allocated in the window took a page fault, and the zeroing of a page,
 * for every 4 KiB of stack read (256 threads: ~1 MiB, 275 faults), and
 * was unmapped again after each stop.
 */
static struct {
	uint8_t *buf;
	size_t cap;
	bool in_use;
} arena;

#define HP_STACK_GUESS (8u << 10) /* bytes per thread, reserved ahead */
#define HP_ARENA_MAX (64u << 20)

void hp_world_reserve_stacks(size_t nr_threads)
{
	size_t want = nr_threads * HP_STACK_GUESS;
	uint8_t *buf = NULL;

	if (want > HP_ARENA_MAX)
		want = HP_ARENA_MAX;
	if (arena.in_use || want <= arena.cap)
		return;
	buf = malloc(want);
	if (!buf)
		return;	      /* the window allocates its own */
	memset(buf, 0, want); /* fault every page in now */
	free(arena.buf);
	arena.buf = buf;
	arena.cap = want;
}

static uint8_t *stacks_get(size_t size)
{
	if (arena.in_use || size > arena.cap)
		return malloc(size);
	arena.in_use = true;
	return arena.buf;
}

static void stacks_put(uint8_t *buf)
{
	if (buf && buf == arena.buf)
		arena.in_use = false;
	else
		free(buf);
}

/* Room for every stack of @w, and their lengths. Return: 0 or -errno. */
static int alloc_stacks(const struct hp_proc *proc, const struct hp_world *w,
			uint8_t **stacks, size_t **lens, size_t *total)
{
	*lens = calloc(w->nr_threads + 1, sizeof(**lens));
	if (!*lens)
		return -ENOMEM;
	*total = stack_lens(proc, w, *lens);
	*stacks = *total ? stacks_get(*total) : NULL;
	if (*stacks)
		return 0;
	free(*lens);
	*lens = NULL;
	return *total ? -ENOMEM : -EFAULT;
}

void hp_world_drop_stacks(struct hp_world *w)
{
	stacks_put(w->stacks);
	free(w->stack_lens);
	w->stacks = NULL;
	w->stack_lens = NULL;
	w->stacks_total = 0;
}

/*
 * Read and scan every stack: on a host with several CPUs (and stacks
 * enough to pay for a thread), half of them on a second thread, since the
 * read (page walks and copies, ~0.4 us per page) is most of the check and
 * every thread of the target is stopped, its CPUs idle.
 */
static int check_stacks(struct stack_job *all)
{
	struct stack_job half = *all;
	size_t part = 0, total = all->off;
	pthread_t helper;
	bool two = false;

	all->off = 0;
	if (all->w->nr_cpus > 1 && total >= HP_STACKS_SPLIT_MIN) {
		while (half.from < all->to && 2 * part < total)
			part += all->lens[half.from++];
		half.off = part;
		all->to = half.from;
		two = !pthread_create(&helper, NULL, run_job, &half);
		if (!two) /* no thread: one after the other */
			run_job(&half);
	}
	run_job(all);
	if (two)
		pthread_join(helper, NULL);
	if (half.from != all->from && (all->rc || !all->busy))
		*all = (struct stack_job){ .rc = all->rc ?: half.rc,
					   .busy = all->rc ? NULL : half.busy,
					   .hit = half.hit };
	return all->rc;
}

void hp_who_add(struct hp_who *who, pid_t tid, const char *func,
		enum hp_who_kind kind)
{
	if (who->n < HP_WHO_LISTED) {
		who->e[who->n].tid = tid;
		who->e[who->n].func = func;
		who->e[who->n].kind = kind;
	}
	who->n++;
}

void hp_who_format(const struct hp_who *who, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = 0;
	for (size_t i = 0; i < who->n && i < HP_WHO_LISTED && used < size;
	     i++) {
		snprintf(buf + used, size - used, "%stid %d %s '%s'%s",
			 i ? ", " : "", (int)who->e[i].tid,
			 who->e[i].kind == HP_WHO_IN ? "in" : "below",
			 who->e[i].func,
			 who->e[i].kind == HP_WHO_BLOCKED
				 ? " (blocked in a system call)"
				 : "");
		used += strlen(buf + used);
	}
	if (who->n > HP_WHO_LISTED && used < size)
		snprintf(buf + used, size - used, ", ...");
}

/* Is @tid blocked in a system call ("NR ARG1..ARG6 SP PC" in
 * /proc/PID/task/TID/syscall, where "-1 SP PC" or "running" says not)? */
static bool in_syscall(pid_t pid, pid_t tid)
{
	char path[64], line[32] = "";
	FILE *f = NULL;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int)pid,
		 (int)tid);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (!fgets(line, sizeof(line), f))
		line[0] = 0;
	fclose(f);
	return line[0] >= '0' && line[0] <= '9';
}

void hp_world_find_below(const struct hp_world *w, const struct hp_proc *proc,
			 const struct hp_busy_range *ranges, size_t nr_ranges,
			 struct hp_who *who)
{
	const size_t first = who->n;
	uint8_t *stack = NULL;
	size_t cap = 0;
	bool waited = false;

	for (size_t i = 0; i < w->nr_threads; i++) {
		const struct hp_thread *t = &w->threads[i];
		const struct hp_busy_range *hit = NULL;
		const size_t len = stack_span(proc, t->regs.rsp);

		/* (Registers not read at the stop are zero: no stack.) */
		if (!len || in_ranges(ranges, nr_ranges, t->regs.rip, true))
			continue;
		if (len > cap) {
			free(stack);
			cap = len;
			stack = malloc(cap);
			if (!stack)
				break;
		}
		if (!hp_proc_read(proc, t->regs.rsp & ~7ULL, stack, len))
			hit = scan_stack(stack, len, ranges, nr_ranges);
		if (hit)
			hp_who_add(who, t->tid, hit->name,
				   in_syscall(w->pid, t->tid) ? HP_WHO_BLOCKED
							      : HP_WHO_BELOW);
	}
	free(stack);
	/* A thread the stop interrupted in a sleep is restarting it just
	 * now and reads as running: look once more, a moment later. */
	for (size_t i = first; i < who->n && i < HP_WHO_LISTED; i++) {
		if (who->e[i].kind != HP_WHO_BELOW)
			continue;
		if (!waited) {
			usleep(2000);
			waited = true;
		}
		if (in_syscall(w->pid, who->e[i].tid))
			who->e[i].kind = HP_WHO_BLOCKED;
	}
}

void hp_world_who_ips(struct hp_world *w, const struct hp_busy_range *ranges,
		      size_t nr_ranges, struct hp_who *who)
{
	for (size_t i = 0; i < w->nr_threads; i++) {
		struct hp_thread *t = &w->threads[i];
		const struct hp_busy_range *hit = NULL;

		if (hp_thread_need_ip(t))
			continue;
		hit = in_ranges(ranges, nr_ranges, t->regs.rip, true);
		if (hit)
			hp_who_add(who, t->tid, hit->name, HP_WHO_IN);
	}
}

/* Check the instruction pointers alone: hp_world_check without stacks. */
static int check_ips(struct hp_world *w, const struct hp_busy_range *ranges,
		     size_t nr_ranges, pid_t *busy_tid,
		     const struct hp_busy_range **busy)
{
	for (size_t i = 0; i < w->nr_threads; i++) {
		struct hp_thread *t = &w->threads[i];
		int rc = hp_thread_need_ip(t);

		if (rc)
			return rc;
		*busy = in_ranges(ranges, nr_ranges, t->regs.rip, true);
		if (*busy) {
			*busy_tid = t->tid;
			return -HP_E_BUSY;
		}
	}
	return 0;
}

static bool regs_point(const struct user_regs_struct *g,
		       const struct hp_busy_range *r)
{
	const unsigned long long v[] = {
		g->rax, g->rbx, g->rcx, g->rdx, g->rsi, g->rdi,
		g->rbp, g->rsp, g->r8,	g->r9,	g->r10, g->r11,
		g->r12, g->r13, g->r14, g->r15, g->rip,
	};

	for (size_t k = 0; k < HP_ARRAY_SIZE(v); k++)
		if (v[k] >= r->start && v[k] < r->end)
			return true;
	return false;
}

bool hp_world_regs_point(struct hp_world *w, const struct hp_busy_range *r)
{
	for (size_t i = 0; i < w->nr_threads; i++)
		if (hp_thread_need_regs(&w->threads[i]) ||
		    regs_point(&w->threads[i].regs, r))
			return true;
	return false;
}

int hp_world_check(struct hp_world *w, const struct hp_proc *proc,
		   const struct hp_busy_range *ranges, size_t nr_ranges,
		   pid_t *busy_tid, const struct hp_busy_range **busy)
{
	uint8_t *stacks = w->stacks;
	size_t *lens = w->stack_lens, total = w->stacks_total;
	const bool cached = stacks;
	struct stack_job job;
	bool ip_only = true;
	uint64_t t0;
	int rc = check_ips(w, ranges, nr_ranges, busy_tid, busy);

	if (rc)
		return rc;
	for (size_t i = 0; i < nr_ranges; i++)
		ip_only &= ranges[i].ip_only;
	if (ip_only)
		return 0; /* jump sites: no stack to read */
	for (size_t i = 0; i < w->nr_threads && !rc && !cached; i++)
		rc = hp_thread_need_ip(&w->threads[i]); /* the stack pointers */
	if (!cached)
		rc = rc ?: alloc_stacks(proc, w, &stacks, &lens, &total);
	if (rc)
		return rc;
	job = (struct stack_job){ .proc = proc,
				  .w = w,
				  .ranges = ranges,
				  .nr_ranges = nr_ranges,
				  .to = w->nr_threads,
				  .buf = stacks,
				  .lens = lens,
				  .off = total,
				  .cached = cached };
	t0 = hp_now_us();
	rc = check_stacks(&job);
	hp_dbg(HP_DBG_TIMING, "pid %d: %zu stacks, %zu bytes: %s %llu us",
	       (int)w->pid, w->nr_threads, total,
	       cached ? "scan" : "read and scan",
	       (unsigned long long)(hp_now_us() - t0));
	/* Kept for the other checks of this stop (regions to keep after a
	 * revert, say): stopped threads' stacks do not change. */
	if (!cached && !rc) {
		w->stacks = stacks;
		w->stack_lens = lens;
		w->stacks_total = total;
	} else if (!cached) {
		stacks_put(stacks);
		free(lens);
	}
	if (!rc && job.busy) {
		*busy = job.busy;
		*busy_tid = w->threads[job.hit].tid;
		rc = -HP_E_BUSY;
	}
	return rc;
}

int hp_world_step_out(struct hp_world *w, const struct hp_busy_range *sites,
		      size_t nr_sites, pid_t *busy_tid,
		      const struct hp_busy_range **busy)
{
	for (size_t i = 0; i < w->nr_threads; i++) {
		struct hp_thread *t = &w->threads[i];
		int steps = 0, rc;

		rc = hp_thread_need_ip(t);
		if (rc)
			return rc;
		while ((*busy = in_ranges(sites, nr_sites, t->regs.rip,
					  true))) {
			*busy_tid = t->tid;
			rc = hp_thread_need_regs(t);
			if (rc)
				return rc;
			/* In a system call there, or about to make one,
			 * stepping would block with every thread stopped. */
			if ((long long)t->regs.orig_rax != -1 ||
			    syscall_at(*busy, t->regs.rip - (*busy)->start) ||
			    ++steps > 64)
				return -HP_E_BUSY;
			hp_world_drop_stacks(w); /* stepping may push */
			rc = hp_pt_step(t);
			if (rc == -ESRCH)
				break;
			if (rc)
				return rc;
		}
		hp_dbg(HP_DBG_PTRACE, "tid %d: stepped %d instructions",
		       (int)t->tid, steps);
	}
	*busy = NULL;
	return 0;
}
