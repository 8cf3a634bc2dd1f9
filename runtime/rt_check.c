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
#include <sched.h>
#include <sys/mman.h>
#include <sys/uio.h>

#define HP_LOG_PREFIX "rt: "
#define HP_IOV_BATCH 512 /* ranges per process_vm_readv, under IOV_MAX */
/* Stacks read per system call, then scanned while in the CPU's cache. */
#define HP_STACK_CHUNK (64u << 10)
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

/* Is instruction pointer @ip inside a range? */
const struct hp_busy_range *hp_in_ranges(const struct hp_busy_range *r,
					 size_t nr, uint64_t ip)
{
	for (size_t i = 0; i < nr; i++) {
		if (ip >= r[i].start && ip < r[i].end)
			return &r[i];
		/* Just past a system call that ends the site: a thread
		 * blocked there restarts it at end - 2, inside the jump. */
		if (ip == r[i].end && syscall_at(&r[i], 3))
			return &r[i];
	}
	return NULL;
}

/*
 * The mapping holding stack pointer @sp, looked for first next to *@near
 * (the one found for the thread before, or any index): threads come in
 * the order they were created, and each new stack was mapped just below
 * the last one, so a thread's stack is nearly always two mappings (its
 * guard's and its own) from the last; else the binary search. 256
 * searches of the maps of a 256-thread process, ~800 mappings of 304
 * bytes (a cache miss a step) cost ~18 us in the window, twice.
 */
const struct hp_map *hp_stack_map(const struct hp_proc *proc, uint64_t sp,
				  size_t *near)
{
	const struct hp_map *m = NULL;
	const size_t from = *near > 3 ? *near - 3 : 0;

	for (size_t i = from; i < proc->nr_maps && i <= *near + 3; i++)
		if (sp >= proc->maps[i].start && sp < proc->maps[i].end) {
			*near = i;
			return &proc->maps[i];
		}
	m = hp_proc_find_map(proc, sp);
	if (m)
		*near = (size_t)(m - proc->maps);
	return m;
}

/* A thread stack's guard, as the C libraries make them, at most: glibc
 * one page (pthread_attr_setguardsize rounds up to pages), musl 8 KiB. */
#define HP_GUARD_MAX (64u << 10)

bool hp_stack_room(const struct hp_proc *proc, uint64_t sp, uint64_t low)
{
	const struct hp_map *m = hp_proc_find_map(proc, sp);
	const struct hp_map *g = NULL;

	if (!m || low > sp || low < m->start)
		return false;
	if (!strcmp(m->path, "[stack]"))
		return true;
	if (m->path[0] || m->shared || m->prot != (PROT_READ | PROT_WRITE) ||
	    m == proc->maps)
		return false;
	g = m - 1;
	return g->end == m->start && g->prot == PROT_NONE && !g->path[0] &&
	       g->end - g->start <= HP_GUARD_MAX;
}

/* Bytes of a thread's stack to scan: from its stack pointer @sp to the
 * end of the mapping holding it (at most HP_STACK_SCAN_MAX). */
size_t hp_stack_span(const struct hp_proc *proc, uint64_t sp, size_t *near)
{
	const struct hp_map *m = hp_stack_map(proc, sp, near);
	size_t len;

	if (!m)
		return 0;
	len = m->end - (sp & ~7ULL);
	return len > HP_STACK_SCAN_MAX ? HP_STACK_SCAN_MAX : len;
}

/* The restorers of @proc (none in tests that make up a world alone). */
static void index_restorers(struct range_index *x, const struct hp_proc *proc)
{
	x->nr_restorers = proc ? proc->nr_restorers : 0;
	for (size_t k = 0; k < x->nr_restorers; k++)
		x->restorers[k] = proc->restorers[k];
}

int hp_world_fresh_maps(const struct hp_world *w, struct hp_proc *proc)
{
	size_t near = 0;

	for (size_t i = 0; i < w->nr_threads; i++)
		if (!hp_stack_map(proc, w->threads[i].regs.rsp, &near))
			return hp_proc_read_maps(proc);
	return 0;
}

/*
 * A run of threads whose stacks are read with one system call: threads
 * [from, to), at buf + off when every stack is kept.
 */
struct stack_chunk {
	size_t from, to, off;
};

/*
 * One stop's check of the stacks, shared by the CPUs that run it: each
 * takes the next chunk, reads it and scans it while it is in its cache,
 * so that a CPU that starts late or runs slower takes fewer (a fixed
 * half each left the loader waiting for the helper 66 us, median of a
 * 256-thread stop; 144 us, 9th decile).
 */
struct stack_work {
	const struct hp_proc *proc;
	const struct hp_world *w;
	const struct range_index *x;
	uint8_t *buf;
	const size_t *lens;
	const struct stack_chunk *chunks;
	size_t nr_chunks;
	bool cached; /* buf holds the stacks already: scan only */
	bool reuse;  /* each CPU reads to a room of its own: nothing kept */
	size_t next; /* the next chunk to take (atomic) */
	size_t hit;  /* the first thread with a return found yet (atomic) */
};

/* One CPU's part: its room (with reuse), what it found. */
struct stack_job {
	struct stack_work *work;
	size_t room;
	size_t hit; /* the first thread with a return it found, or none */
	const struct hp_busy_range *busy;
	int rc;
};

/* Set once process_vm_readv is refused (a seccomp filter, a hardened
 * kernel): every later stack is read through /proc/PID/mem. */
static int vm_readv_refused;

/*
 * Read the stacks of threads [from, to) to buf + off: one process_vm_readv
 * for all of them, else (refused, or a range not readable whole) through
 * the memory seam, one read each, so an unreadable stack is an error,
 * never a stack found clean.
 */
static int read_stacks(const struct stack_work *j, size_t from, size_t to,
		       size_t off)
{
	struct iovec local[HP_IOV_BATCH], remote[HP_IOV_BATCH];
	const size_t n = to - from;
	size_t want = 0;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		local[i] = (struct iovec){ j->buf + off + want,
					   j->lens[from + i] };
		remote[i] = (struct iovec){
			(void *)(uintptr_t)(j->w->threads[from + i].regs.rsp &
					    ~7ULL),
			j->lens[from + i],
		};
		want += j->lens[from + i];
	}
	/* Tests read through a seam of their own: every read goes there. */
	if (!j->proc->mem &&
	    !__atomic_load_n(&vm_readv_refused, __ATOMIC_RELAXED)) {
		const ssize_t got =
			process_vm_readv(j->proc->pid, local, n, remote, n, 0);

		if (got == (ssize_t)want)
			return 0;
		if (got < 0 && (errno == EPERM || errno == ENOSYS)) {
			__atomic_store_n(&vm_readv_refused, 1,
					 __ATOMIC_RELAXED);
			hp_dbg(HP_DBG_TIMING,
			       "pid %d: process_vm_readv refused (%s): stacks "
			       "are read through /proc/PID/mem",
			       (int)j->proc->pid, strerror(errno));
		}
	}
	for (size_t k = 0; k < n && !rc; k++)
		rc = hp_proc_read(j->proc, (uintptr_t)remote[k].iov_base,
				  local[k].iov_base, local[k].iov_len);
	return rc;
}

/* Lower *@at to @v, if @v is lower. */
static void lower_to(size_t *at, size_t v)
{
	size_t cur = __atomic_load_n(at, __ATOMIC_RELAXED);

	while (v < cur &&
	       !__atomic_compare_exchange_n(at, &cur, v, true, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED))
		;
}

/*
 * Take chunk after chunk: read, then scan while the chunk is still in the
 * CPU's cache. Chunks are taken in order, so once a return is found no
 * chunk taken later can name an earlier thread: the rest is read all the
 * same, for the later checks of this stop, but not scanned; or, with
 * nothing kept (reuse), not even read. What is found is what one pass
 * over the threads in order finds: the first thread with a return.
 */
static void *run_job(void *arg)
{
	struct stack_job *job = arg;
	struct stack_work *wk = job->work;

	job->hit = SIZE_MAX;
	while (!job->rc) {
		const size_t c =
			__atomic_fetch_add(&wk->next, 1, __ATOMIC_RELAXED);
		const struct stack_chunk *ch = NULL;
		size_t off = 0;

		if (c >= wk->nr_chunks)
			break;
		ch = &wk->chunks[c];
		if (wk->reuse &&
		    ch->from > __atomic_load_n(&wk->hit, __ATOMIC_RELAXED))
			break;
		off = wk->reuse ? job->room : ch->off;
		if (!wk->cached)
			job->rc = read_stacks(wk, ch->from, ch->to, off);
		for (size_t i = ch->from; i < ch->to && !job->rc;
		     off += wk->lens[i++]) {
			const struct hp_busy_range *b = NULL;

			if (i > __atomic_load_n(&wk->hit, __ATOMIC_RELAXED))
				break;
			b = hp_scan_thread(wk->proc, wk->x, wk->buf + off,
					   wk->lens[i],
					   wk->w->threads[i].regs.rsp,
					   wk->w->threads[i].regs.rip);
			if (b) {
				job->hit = i;
				job->busy = b;
				lower_to(&wk->hit, i);
				break;
			}
		}
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
	size_t total = 0, near = 0;

	for (size_t i = 0; i < w->nr_threads; i++) {
		total += lens[i] =
			hp_stack_span(proc, w->threads[i].regs.rsp, &near);
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

/*
 * Forks of this process (the guard, rt_guard.c; an --all worker): parent
 * and child share the buffer's pages until written, and the first write
 * of each then copies it, a fault per page. So after a fork the buffer
 * is written once more, in both, before the window: the first stop after
 * the guard's fork read 4 stacks in 45-55 us, 12 without.
 */
static unsigned int nr_forks;

static void count_fork(void)
{
	nr_forks++;
}

void hp_world_reserve_stacks(size_t nr_threads)
{
	static bool counting;
	static unsigned int touched_at;
	size_t want = nr_threads * HP_STACK_GUESS;
	uint8_t *buf = NULL;

	if (!counting)
		counting = !pthread_atfork(NULL, count_fork, count_fork);
	if (want > HP_ARENA_MAX)
		want = HP_ARENA_MAX;
	if (arena.in_use)
		return;
	if (want <= arena.cap && touched_at != nr_forks)
		memset(arena.buf, 0, arena.cap);
	touched_at = nr_forks;
	if (want <= arena.cap)
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

/*
 * Room for every stack of @w, and their lengths; or, when the stacks are
 * checked once in this stop (w->stacks_once), room for one chunk per CPU,
 * *@room bytes each, read to again and again (else *@room is 0). The
 * stacks of 256 threads, 1.1 MiB, went through the CPUs' caches into a
 * buffer as large, every line of it a miss; a chunk's room stays in the
 * cache: the read of a 256-thread stop, 366 -> 336 us on one CPU.
 * Return: 0 or -errno.
 */
static int alloc_stacks(const struct hp_proc *proc, const struct hp_world *w,
			uint8_t **stacks, size_t **lens, size_t *total,
			size_t *room)
{
	size_t longest = 0, size;

	*lens = calloc(w->nr_threads + 1, sizeof(**lens));
	if (!*lens)
		return -ENOMEM;
	*total = size = stack_lens(proc, w, *lens);
	for (size_t i = 0; i < w->nr_threads; i++)
		longest = (*lens)[i] > longest ? (*lens)[i] : longest;
	*room = longest > HP_STACK_CHUNK ? longest : HP_STACK_CHUNK;
	if (w->stacks_once && 2 * *room < *total)
		size = 2 * *room; /* one for each CPU of check_stacks */
	else
		*room = 0;
	*stacks = *total ? stacks_get(size) : NULL;
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
 * The threads in runs read with one system call each: at most
 * HP_IOV_BATCH stacks and HP_STACK_CHUNK bytes (or one longer stack), a
 * quarter of that in the last HP_STACK_TAIL bytes, so that the CPU that
 * runs out of runs first waits less for the other's last one (a 64 KiB
 * run: ~25 us). Return: how many runs, in @c.
 */
#define HP_STACK_TAIL (4 * HP_STACK_CHUNK)

static size_t make_chunks(const size_t *lens, size_t nr, size_t total,
			  struct stack_chunk *c)
{
	size_t n = 0, off = 0;

	for (size_t i = 0; i < nr;) {
		const size_t most = total - off > HP_STACK_TAIL
					    ? HP_STACK_CHUNK
					    : HP_STACK_CHUNK / 4;
		size_t end = i, bytes = 0;

		while (end < nr && end - i < HP_IOV_BATCH &&
		       (end == i || bytes + lens[end] <= most))
			bytes += lens[end++];
		c[n++] = (struct stack_chunk){ i, end, off };
		off += bytes;
		i = end;
	}
	return n;
}

/*
 * Read and scan every stack: on a host with several CPUs (and stacks
 * enough to pay for a thread), on a second thread too, since the read
 * (page walks and copies, ~0.4 us per page) is most of the check and
 * every thread of the target is stopped, its CPUs idle. Return: 0 or
 * -errno; *@hit and *@busy, the first thread with a return (or
 * *@busy NULL).
 */
static void run_other(void *job)
{
	run_job(job);
}

static int check_stacks(struct stack_work *wk, size_t total, size_t room,
			size_t *hit, const struct hp_busy_range **busy)
{
	struct stack_job mine = { .work = wk, .hit = SIZE_MAX };
	struct stack_job other = { .work = wk, .hit = SIZE_MAX };
	bool two = false;

	if (wk->w->nr_cpus > 1 && total >= HP_STACKS_SPLIT_MIN) {
		other.room = room;
		two = !hp_helper_start(run_other, &other);
	} else {
		hp_helper_rest();
	}
	run_job(&mine);
	if (two)
		hp_helper_join();
	if (mine.rc || other.rc)
		return mine.rc ?: other.rc;
	*busy = other.hit < mine.hit ? other.busy : mine.busy;
	*hit = other.hit < mine.hit ? other.hit : mine.hit;
	return 0;
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

/* Is @tid blocked in a system call? */
static bool in_syscall(pid_t pid, pid_t tid)
{
	return hp_task_syscall_nr(pid, tid) >= 0;
}

void hp_world_find_below(const struct hp_world *w, const struct hp_proc *proc,
			 const struct hp_busy_range *ranges, size_t nr_ranges,
			 struct hp_who *who)
{
	const size_t first = who->n;
	struct range_index x;
	uint8_t *stack = NULL;
	size_t cap = 0, near = 0;

	if (hp_index_ranges(ranges, nr_ranges, &x))
		return; /* no memory: the warning lists fewer threads */
	index_restorers(&x, proc);
	for (size_t i = 0; i < w->nr_threads; i++) {
		const struct hp_thread *t = &w->threads[i];
		const struct hp_busy_range *hit = NULL;
		const size_t len = hp_stack_span(proc, t->regs.rsp, &near);

		/* (Registers not read at the stop are zero: no stack.) */
		if (!len || hp_in_ranges(ranges, nr_ranges, t->regs.rip))
			continue;
		if (len > cap) {
			free(stack);
			cap = len;
			stack = malloc(cap);
			if (!stack)
				break;
		}
		if (!hp_proc_read(proc, t->regs.rsp & ~7ULL, stack, len))
			hit = hp_scan_thread(proc, &x, stack, len, t->regs.rsp,
					     t->regs.rip);
		if (hit)
			hp_who_add(who, t->tid, hit->name, HP_WHO_BELOW);
	}
	free(stack);
	free(x.e);
	hp_who_settle(who, first, w->pid, HP_WHO_SETTLE_US);
}

void hp_who_settle(struct hp_who *who, size_t first, pid_t pid,
		   uint64_t bound_us)
{
	const uint64_t end = hp_now_us() + bound_us;

	for (;;) {
		size_t running = 0;

		for (size_t i = first; i < who->n && i < HP_WHO_LISTED; i++) {
			if (who->e[i].kind != HP_WHO_BELOW)
				continue;
			if (in_syscall(pid, who->e[i].tid))
				who->e[i].kind = HP_WHO_BLOCKED;
			else
				running++;
		}
		if (!running || hp_now_us() >= end)
			return;
		usleep(1000);
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
		hit = hp_in_ranges(ranges, nr_ranges, t->regs.rip);
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
		*busy = hp_in_ranges(ranges, nr_ranges, t->regs.rip);
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
	size_t *lens = w->stack_lens, total = w->stacks_total, room = 0;
	const bool cached = stacks;
	struct stack_work wk;
	struct stack_chunk *chunks = NULL;
	const struct hp_busy_range *found = NULL;
	size_t hit = SIZE_MAX;
	struct range_index x = { 0 };
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
	if (!cached && w->nr_cpus > 1)
		hp_helper_wake(); /* while we get ready (no-op if awake) */
	rc = rc ?: hp_index_ranges(ranges, nr_ranges, &x);
	if (!rc)
		index_restorers(&x, proc);
	if (!rc) {
		chunks = calloc(w->nr_threads + 1, sizeof(*chunks));
		rc = chunks ? 0 : -ENOMEM;
	}
	if (!cached)
		rc = rc ?: alloc_stacks(proc, w, &stacks, &lens, &total, &room);
	if (rc) {
		hp_helper_rest();
		free(chunks);
		free(x.e);
		return rc;
	}
	wk = (struct stack_work){
		.proc = proc,
		.w = w,
		.x = &x,
		.buf = stacks,
		.lens = lens,
		.chunks = chunks,
		.nr_chunks = make_chunks(lens, w->nr_threads, total, chunks),
		.cached = cached,
		.reuse = room != 0,
		.hit = SIZE_MAX,
	};
	t0 = hp_now_us();
	rc = check_stacks(&wk, total, room, &hit, &found);
	free(chunks);
	free(x.e);
	hp_dbg(HP_DBG_TIMING, "pid %d: %zu stacks, %zu bytes: %s %llu us",
	       (int)w->pid, w->nr_threads, total,
	       cached ? "scan" : "read and scan",
	       (unsigned long long)(hp_now_us() - t0));
	/* Kept for the other checks of this stop (regions to keep after a
	 * revert, say): stopped threads' stacks do not change. */
	if (!cached && !rc && !room) {
		w->stacks = stacks;
		w->stack_lens = lens;
		w->stacks_total = total;
	} else if (!cached) {
		stacks_put(stacks);
		free(lens);
	}
	if (!rc && found) {
		*busy = found;
		*busy_tid = w->threads[hit].tid;
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
		while ((*busy = hp_in_ranges(sites, nr_sites, t->regs.rip))) {
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
