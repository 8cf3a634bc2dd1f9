/*
 * Stopping the world (the checks made while it is stopped are rt_check.c).
 *
 * Stop: seize and interrupt every thread listed in /proc/PID/task, wait for
 * each, then count the process's threads (the link count of /proc/PID/task):
 * as many as we hold stopped, and every thread is stopped (a stopped thread
 * creates none, and a thread born since the listing adds to the count).
 * Otherwise list again: a thread born meanwhile is caught by the next round,
 * until a listing shows no new thread. Counting is one fstat; listing 256
 * threads costs 70-300 us inside the pause. The loader runs SCHED_FIFO for
 * the window where it may: resuming many spinning threads at normal priority
 * costs 50x more (docs/DESIGN.md figures).
 */
#include "runtime/runtime_int.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_util.h"
#include "common/hp_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <sched.h>
#include <signal.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HP_LOG_PREFIX "rt: "
/*
 * The longest a stop waits for every thread to reach it: interrupts reach
 * a running or sleeping thread in microseconds, but each thread must
 * first get a turn on a CPU, behind everything else runnable on the host.
 * So a stop waits HP_STOP_MAX_US, or HP_STOP_TURN_US per turn that the
 * runnable tasks (from /proc/loadavg, read before the window) and the
 * target's threads need of the loader's CPUs, if longer (512 threads at a
 * load of 300 on 2 CPUs: 406 turns, 1.2 s), but never past the caller's
 * deadline (--timeout). A thread still not stopped sleeps where no
 * interrupt wakes it: every thread is let go, and the switch retries
 * until --timeout (hp_switch).
 */
#define HP_STOP_TURN_US 3000 /* a scheduler slice, at most */
/* Threads enough for their stacks (~4 KiB each) to be read on two CPUs. */
#define HP_HELPER_MIN_THREADS 48
/* Threads enough for a second tracer to pay (see "Two tracers"): the
 * pause of a checked stop on a 2-CPU VM, one tracer -> two, was 116-133 ->
 * 131-149 us at 16 threads, 227-230 -> 220-229 at 32, 302-304 -> 274-276
 * at 48, 348-382 -> 325-361 at 64, 647 -> 522 at 128. */
#define HP_SPLIT_MIN_THREADS 48
/*
 * The most threads the helper lets go by its end (hp_helper_end): the
 * kernel lets go of them all under the task list lock, interrupts off on
 * that CPU, fork, exit and wait held up everywhere; ~1.2 us a thread on a
 * 2-CPU VM (a bare program: 160 us for 128, 370 for 256, 770 for 512).
 * A larger part is detached a thread at a time, the lock let go between.
 */
#define HP_END_MOST 128

uint64_t hp_world_stop_bound(const struct hp_world *w)
{
	const uint64_t cpus = w->nr_cpus > 0 ? (uint64_t)w->nr_cpus : 1;
	const uint64_t turns =
		((uint64_t)w->nr_runnable + w->nr_threads + cpus - 1) / cpus;
	uint64_t bound = turns * HP_STOP_TURN_US;

	if (bound < HP_STOP_MAX_US)
		bound = HP_STOP_MAX_US;
	if (w->until && w->stopped_at + bound > w->until)
		bound = w->until > w->stopped_at + HP_STOP_MAX_US
				? w->until - w->stopped_at
				: HP_STOP_MAX_US;
	return bound;
}

/*
 * Is @tid known? A listing comes in the order of the previous one, so
 * *@hint (where the last match was found, plus one) is almost always right:
 * a round costs one pass, not one pass per thread.
 */
static bool known_thread(const struct hp_world *w, pid_t tid, size_t *hint)
{
	for (size_t k = 0; k < w->nr_threads; k++) {
		const size_t i = (*hint + k) % w->nr_threads;

		if (w->threads[i].tid == tid) {
			*hint = i + 1;
			return true;
		}
	}
	return false;
}

static int add_thread(struct hp_world *w, pid_t tid, struct hp_thread **out)
{
	if (hp_grow(&w->threads, &w->cap_threads, w->nr_threads,
		    sizeof(*w->threads), 32))
		return -ENOMEM;
	w->threads[w->nr_threads] =
		(struct hp_thread){ .tid = tid, .leader = tid == w->pid };
	*out = &w->threads[w->nr_threads++];
	return 0;
}

/* Every register of stopped @t, read once per stop. */
int hp_thread_need_regs(struct hp_thread *t)
{
	int rc;

	/* Never asked of a split world's (hp_world_prepare_split). */
	HP_BUG_ON(t->by_helper && !t->has_regs);
	rc = t->has_regs ? 0 : hp_pt_get_regs(t);

	t->has_regs = !rc;
	return rc;
}

/* The instruction pointer of stopped @t, read once per stop. */
int hp_thread_need_ip(struct hp_thread *t)
{
	int rc;

	HP_BUG_ON(t->by_helper && !t->has_regs && !t->has_ip);
	rc = t->has_regs || t->has_ip ? 0 : hp_pt_get_ip(t);

	t->has_ip = !rc;
	return rc;
}

/*
 * Wait for @t's stop and read what every check needs at once, its
 * instruction and stack pointers: while this thread's are read, later
 * threads are still on their way to their stop, so the reads cost the
 * pause little beyond the wait itself. Every register is read only where
 * needed (stepping a thread, running a system call through it).
 */
static int split_wait(struct hp_thread *t);

static int wait_and_read(struct hp_world *w, struct hp_thread *t)
{
	/* (The helper reads its own threads' pointers after the waits.) */
	int rc = t->by_helper ? split_wait(t) : hp_pt_wait_stop(t);

	if (rc == -ETIMEDOUT) {
		/* It sleeps where no interrupt reaches it: let every thread
		 * go now rather than freeze them while it sleeps. */
		w->stuck_tid = t->tid;
		return -HP_E_BUSY;
	}
	if (!rc && !t->by_helper)
		rc = w->want_regs ? hp_thread_need_regs(t)
				  : hp_thread_need_ip(t);
	return rc;
}

void hp_world_stuck_state(const struct hp_world *w, char *buf, size_t size)
{
	hp_task_state(w->stuck_tid, buf, size);
}

/*
 * The kernel's count of the process's threads ("Threads:" in
 * /proc/PID/status, which the kernel keeps as a number, where /proc/PID/stat
 * walks every thread to sum their times), or -1.
 */
static long status_threads(const struct hp_world *w)
{
	char buf[4096], *p = NULL;
	ssize_t n = w->status_fd >= 0
			    ? pread(w->status_fd, buf, sizeof(buf) - 1, 0)
			    : -1;

	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strstr(buf, "\nThreads:");
	return p ? strtol(p + 9, NULL, 10) : -1;
}

/*
 * The same count for a tenth of the cost inside the window: the link count
 * of /proc/PID/task is 2 plus the number of threads (so since Linux 2.6).
 * Trusted only after it agreed with the status count outside the window;
 * where it never does, the status count is read instead.
 */
static void check_task_links(struct hp_world *w)
{
	struct stat before, after;
	long n;

	for (int i = 0; i < 3 && w->task_fd >= 0; i++) {
		if (fstat(w->task_fd, &before))
			break;
		n = status_threads(w);
		if (fstat(w->task_fd, &after))
			break;
		if (before.st_nlink == after.st_nlink && n > 0 &&
		    (long)after.st_nlink == n + 2)
			return;
	}
	if (w->task_fd >= 0)
		close(w->task_fd);
	w->task_fd = -1;
}

static long count_threads(const struct hp_world *w)
{
	struct stat st;

	if (w->task_fd < 0)
		return status_threads(w);
	return fstat(w->task_fd, &st) ? -1 : (long)st.st_nlink - 2;
}

/* One round: seize and interrupt threads not seen before. */
static int stop_round(struct hp_world *w, size_t *nr_new)
{
	pid_t *tids = NULL;
	size_t nr = 0, first = w->nr_threads, hint = 0;
	int rc;

	*nr_new = 0;
	rc = hp_proc_list_tasks(w->pid, &tids, &nr);
	if (rc)
		return rc;
	for (size_t i = 0; i < nr && !rc; i++) {
		struct hp_thread *t = NULL;

		if (known_thread(w, tids[i], &hint))
			continue;
		/* New, even if it exits at once: it may have started a
		 * thread first, so this round cannot be the last. */
		(*nr_new)++;
		rc = add_thread(w, tids[i], &t);
		if (rc)
			break;
		rc = hp_pt_seize(t);
		if (!rc)
			rc = hp_pt_interrupt(t);
		else if (rc != -ESRCH) {
			/* Reported. Inside an earlier try's call: it would
			 * not stop, as one asleep (hp_switch retries). */
			if (rc == -HP_E_BUSY)
				w->stuck_tid = t->tid;
			break;
		}
		if (rc == -ESRCH) {
			/* Exited between listing and stopping: kept known
			 * (not held), so a later listing does not count it
			 * new. */
			t->seized = false;
			rc = 0;
		} else if (rc) {
			hp_error_rc(rc, "pid %d: tid %d: cannot stop thread",
				    (int)w->pid, (int)tids[i]);
		}
	}
	free(tids);
	/* Wait for this round's threads after interrupting them all. */
	for (size_t i = first; i < w->nr_threads; i++) {
		struct hp_thread *t = &w->threads[i];
		int wrc;

		if (!t->seized)
			continue;
		wrc = wait_and_read(w, t);
		if (wrc == -ESRCH)
			continue; /* exited while stopping: nothing to check */
		if (wrc && !rc)
			rc = wrc;
	}
	return rc;
}

/* Seize @t for @w: 0, or an error reported (-ESRCH: exited, not held). */
static int seize_one(struct hp_world *w, struct hp_thread *t)
{
	int rc = hp_pt_seize(t);

	/* Reported. Inside an earlier try's call: it would not stop, as one
	 * asleep (hp_switch retries). */
	if (rc == -HP_E_BUSY)
		w->stuck_tid = t->tid;
	if (rc == -ESRCH) {
		/* Exited meanwhile: kept known, not held. A leader gone
		 * before the rest stays counted. */
		t->seized = false;
		w->leader_gone |= t->leader;
		rc = 0;
	}
	return rc;
}

/*
 * Two tracers. Each ptrace request for a thread must come from the thread
 * that seized it, and a stop of many threads is mostly such requests, one
 * after another: interrupt, read the instruction and stack pointers, and
 * at the end detach (~2 us each). On two CPUs or more, the helper thread
 * (rt_helper.c) seizes the first half of a large world's threads before
 * the window, interrupts them and, once they are stopped, reads their
 * pointers, then lets them go, while the loader does the same for the
 * rest (the leader among them, and every thread born during the stop).
 * The waits are the loader's alone, for every thread: a wait from any
 * thread of a tracer's process sees its tracees (no __WNOTHREAD). The
 * threads need a CPU to reach their stop, and a tracer busy at SCHED_FIFO
 * keeps them off its own: with the helper waiting for its part, each
 * tracer's wait for a thread queued behind the other held it 100-300 us
 * (the stop took 1000 us where the loader alone takes 700); the helper
 * sleeps instead while the loader waits, and reads its part's pointers
 * once the loader has waited for them (they come first in the list),
 * while the loader waits on for its own.
 *
 * 256 threads spinning on a 2-CPU VM (bench/pause.sh, stacks checked),
 * per apply: stop 620-800 -> 530-730 us, let go 450-500 -> 340-370 us
 * (see split_detach for the minutes when it is not so).
 *
 * Nothing else is ever asked of the helper's threads: a split world is
 * made only for a stop that reads no more than the pointers, or every
 * register (w->want_regs: read as the pointers are, each thread by its
 * tracer), and no step, no injected call (hp_world_prepare_split); the
 * loader's reads say so (HP_BUG_ON). What is not plain:
 * - a thread the helper cannot seize is seized by the loader after it,
 *   which reports as for any thread (traced by another, left attached by
 *   an earlier try: adopted, exited: not held);
 * - a signal that stops a thread of its part before our interrupt: the
 *   helper delivers it from that stop, at the loader's request, as the
 *   loader would (hp_pt_wait_stop), and the loader waits on;
 * - a thread that does not stop within the bound ends the stop as one of
 *   the loader's (-HP_E_BUSY, w->stuck_tid); an exit, an exec, an error
 *   likewise end it or go on as on the loader's side;
 * - at the release the helper thread ends, and the kernel lets go of
 *   every thread it traces, as a detach does, in one pass (hp_helper_end:
 *   the let-go of 256 threads 320-390 us, where detaches took 334-544),
 *   waited for on the helper's pidfd. Where there is no thread pidfd
 *   (before Linux 6.9), the helper detaches each of its threads that
 *   stopped; if any of its part was not plainly stopped and detached (not
 *   stopped, exited: an exec makes a thread of it the leader, under a tid
 *   the helper never saw), it ends all the same (hp_helper_retire).
 *   No thread of the helper's is left attached for a later try to adopt;
 *   the next stop starts a new helper (before the window).
 * The helper logs nothing: what it found, the loader says.
 */
static struct split {
	struct hp_world *w; /* the world split now, NULL: none */
	int rc;
	struct hp_thread *cont; /* to resume with its signal */
	bool plain;	  /* every thread of the part stopped and let go */
	bool loader_done; /* the loader's part let go */
	bool by_end;	  /* its part let go by its end (hp_helper_end) */
} split;

/*
 * The kernel sends the tracer's process a SIGCHLD at each stop of a
 * tracee, discarded as sent if the tracer thread has it at its default
 * action (or ignored) and unblocked; blocked there (the helper blocks
 * every signal), it was kept pending and woke the loader from each wait,
 * to discard it then (a stop of 256 threads took 1050 us, not 700). So
 * the helper unblocks it while it holds threads, where no handler is
 * installed (world_prepare) to run on it.
 */
static bool sigchld_unhandled(void)
{
	struct sigaction sa;

	return !sigaction(SIGCHLD, NULL, &sa) && !(sa.sa_flags & SA_SIGINFO) &&
	       (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN);
}

static void helper_sigchld(int how)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	pthread_sigmask(how, &set, NULL);
}

/* Seize the helper's part; a thread it cannot is the loader's. */
static void split_seize(void *unused)
{
	struct hp_world *w = split.w;

	(void)unused;
	helper_sigchld(SIG_UNBLOCK);
	for (size_t i = 0; i < w->nr_threads; i++) {
		struct hp_thread *t = &w->threads[i];

		if (t->by_helper && hp_pt_seize_quiet(t))
			t->by_helper = false;
	}
}

static void split_interrupt(void *unused)
{
	struct hp_world *w = split.w;

	(void)unused;
	for (size_t i = 0; i < w->nr_threads; i++) {
		struct hp_thread *t = &w->threads[i];

		if (t->by_helper && t->seized && hp_pt_interrupt(t)) {
			t->seized = false; /* exited (or exec'd) */
			split.plain = false;
		}
	}
}

static void split_cont(void *unused)
{
	(void)unused;
	split.rc = hp_pt_cont(split.cont, split.cont->stop_sig);
}

/* Read the pointers (or every register) of the helper's part, every
 * thread stopped. */
static void split_read(void *unused)
{
	struct hp_world *w = split.w;
	int rc = 0;

	(void)unused;
	for (size_t i = 0; i < w->nr_threads && !rc; i++) {
		struct hp_thread *t = &w->threads[i];

		if (!t->by_helper || !t->seized)
			continue;
		if (w->want_regs) {
			rc = hp_pt_get_regs(t);
			t->has_regs = !rc;
		} else {
			rc = hp_pt_get_ip(t);
			t->has_ip = !rc;
		}
	}
	if (rc)
		split.plain = false;
	split.rc = rc;
}

/*
 * Detaches from two threads at once took 2.5 us each on a 2-CPU VM for
 * minutes at a time, and 4.5-5 us for minutes at others (a bare program
 * with two tracers showed the same), where one thread's take 1.8-1.9 us:
 * then the helper, after SPLIT_PROBE detaches, waits for the loader to
 * finish before it goes on, as one tracer would (the let-go of 256
 * threads, 600-650 us then, took 420 with the wait forced).
 */
#define SPLIT_PROBE 16
#define SPLIT_DETACH_MAX_NS 3500

/* Let go of the helper's part: each stopped thread is detached. */
static void split_detach(void *unused)
{
	struct hp_world *w = split.w;
	const uint64_t t0 = hp_now_us();
	size_t n = 0;

	(void)unused;
	for (size_t i = 0; i < w->nr_threads; i++) {
		struct hp_thread *t = &w->threads[i];

		if (!t->by_helper || !t->seized)
			continue;
		if (!t->stopped || hp_pt_detach(t))
			split.plain = false;
		if (++n == SPLIT_PROBE &&
		    (hp_now_us() - t0) * 1000 >
			    SPLIT_PROBE * SPLIT_DETACH_MAX_NS)
			while (!__atomic_load_n(&split.loader_done,
						__ATOMIC_ACQUIRE))
				__builtin_ia32_pause();
	}
	helper_sigchld(SIG_BLOCK);
}

/* Run @fn on the helper and wait for it. Return: 0, -EAGAIN (no helper). */
static int split_job(void (*fn)(void *))
{
	if (hp_helper_start(fn, NULL))
		return -EAGAIN;
	hp_helper_join();
	return 0;
}

/*
 * Before the window: give the helper the first half of @w's threads (the
 * leader is last: never among them) and seize both halves at once; with
 * no helper, the loader seizes them all. Return: 0 or the first error.
 */
static int split_prepare(struct hp_world *w)
{
	const size_t half = w->nr_threads / 2;
	size_t from = 0;
	int rc = 0;

	split = (struct split){ .w = w, .plain = true };
	for (size_t i = 0; i < half; i++)
		w->threads[i].by_helper = true;
	hp_helper_wake(); /* at our priority */
	w->split = !hp_helper_start(split_seize, NULL);
	if (w->split) {
		from = half;
	} else {
		split.w = NULL;
		for (size_t i = 0; i < half; i++)
			w->threads[i].by_helper = false;
	}
	for (size_t i = from; i < w->nr_threads && !rc; i++)
		rc = seize_one(w, &w->threads[i]);
	if (w->split) {
		hp_helper_join_awake(); /* the interrupts follow */
		split.by_end = half <= HP_END_MOST && !hp_helper_end_ready();
		hp_dbg(HP_DBG_PTRACE,
		       "pid %d: %zu threads, the helper thread traces %zu%s",
		       (int)w->pid, w->nr_threads, half,
		       split.by_end ? ", lets go of them as it ends" : "");
	}
	/* What the helper could not seize: the loader's, as if alone. */
	for (size_t i = 0; i < from && !rc; i++)
		if (!w->threads[i].by_helper)
			rc = seize_one(w, &w->threads[i]);
	return rc;
}

/*
 * The loader's wait for a thread of the helper's: a signal that stopped it
 * first is delivered by the helper from that stop, and the interrupt
 * stops it right after (see hp_pt_wait_stop). Return: as that.
 */
static int split_wait(struct hp_thread *t)
{
	int rc;

	while ((rc = hp_pt_wait_stop(t)) == -EXDEV) {
		split.cont = t;
		rc = split_job(split_cont) ?: split.rc;
		if (rc)
			break;
	}
	if (rc || !t->seized)
		split.plain = false;
	return rc;
}

/* After it: what the helper still traces let go (@retire), the world
 * whole again. */
static void split_end(struct hp_world *w, bool retire)
{
	if (retire)
		hp_helper_retire(); /* the kernel lets go of what it holds */
	for (size_t i = 0; i < w->nr_threads; i++) {
		struct hp_thread *t = &w->threads[i];

		if (t->by_helper && t->seized)
			*t = (struct hp_thread){ .tid = t->tid,
						 .leader = t->leader };
		t->by_helper = false;
	}
	w->split = false;
	split.w = NULL;
}

/*
 * Outside the window: raise our priority and seize every listed thread
 * (PTRACE_SEIZE does not stop it), so the window holds only interrupts,
 * waits and the work that needs the threads stopped.
 */
static int world_prepare(struct hp_world *w, pid_t pid, uint64_t until,
			 bool split_ok)
{
	pid_t *tids = NULL;
	size_t nr = 0;
	char path[64];
	int rc;

	*w = (struct hp_world){ .pid = pid, .until = until };
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	w->status_fd = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	w->task_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	check_task_links(w);
	hp_host_load(&w->nr_cpus, &w->nr_runnable);
	hp_prio_raise(0, &w->prio);
	rc = hp_proc_list_tasks(pid, &tids, &nr);
	split_ok &= !rc && w->nr_cpus > 1 && nr >= HP_SPLIT_MIN_THREADS &&
		    !split.w && sigchld_unhandled();
	for (size_t i = 0; i < nr && !rc; i++) {
		struct hp_thread *t = NULL;

		rc = add_thread(w, tids[i], &t);
		if (!rc && !split_ok)
			rc = seize_one(w, t);
	}
	free(tids);
	hp_world_raise_early((long)w->nr_threads); /* (before the touch) */
	hp_world_reserve_stacks(w->nr_threads);
	/* Started here, not in the window, where the check wakes it (and
	 * where a split world's ended it, the next world starts another). */
	if (w->nr_cpus > 1)
		(void)hp_helper_ready();
	/* The leader last: by its wait it has stopped like the others, and
	 * the check that it has not exited meanwhile costs nothing. */
	for (size_t i = 0; i + 1 < w->nr_threads; i++)
		if (w->threads[i].leader) {
			const struct hp_thread t = w->threads[i];

			w->threads[i] = w->threads[w->nr_threads - 1];
			w->threads[w->nr_threads - 1] = t;
			break;
		}
	if (!rc && split_ok)
		rc = split_prepare(w);
	if (!rc)
		rc = hp_rt_fault("seize");
	if (rc)
		hp_world_resume(w);
	return rc;
}

int hp_world_prepare(struct hp_world *w, pid_t pid, uint64_t until)
{
	return world_prepare(w, pid, until, false);
}

int hp_world_prepare_split(struct hp_world *w, pid_t pid, uint64_t until)
{
	return world_prepare(w, pid, until, true);
}

/*
 * Interrupt every listed thread, wait for each and read its pointers. In a
 * split world the helper interrupts its part meanwhile, and reads their
 * pointers once they are stopped (they come first in the list), while the
 * loader waits on for the rest.
 */
static int stop_listed(struct hp_world *w)
{
	const bool two = w->split && !hp_helper_start(split_interrupt, NULL);
	size_t last = 0; /* after the helper's last thread */
	bool reading = false;
	int rc = w->split && !two ? -EAGAIN : 0;

	for (size_t i = 0; i < w->nr_threads; i++) {
		struct hp_thread *t = &w->threads[i];
		int irc = !t->by_helper && t->seized ? hp_pt_interrupt(t) : 0;

		/* Not ours, yet there: a thread of the helper's exec'd, and
		 * took the leader's tid (see hp_pt_seize). */
		if (irc == -ESRCH && w->split && t->leader &&
		    !hp_task_gone(t->tid))
			irc = -HP_E_EXEC;
		if (irc == -ESRCH)
			t->seized = false;
		else if (irc && !rc)
			rc = irc;
		if (t->by_helper)
			last = i + 1;
	}
	if (two)
		hp_helper_join();
	for (size_t i = 0; i < w->nr_threads && !rc; i++) {
		struct hp_thread *t = &w->threads[i];
		int wrc = t->seized ? wait_and_read(w, t) : 0;

		if (wrc && wrc != -ESRCH)
			rc = wrc;
		if (!rc && two && i + 1 == last) {
			reading = !hp_helper_start(split_read, NULL);
			rc = reading ? 0 : -EAGAIN;
		}
	}
	if (reading) {
		hp_helper_join();
		rc = rc ?: split.rc;
	}
	return rc;
}

int hp_world_stop(struct hp_world *w)
{
	size_t nr_new = 0, held = 0;
	bool complete = false;
	int rc, rounds = 0;

	hp_world_raise(w);
	w->stopped_at = hp_now_us();
	hp_pt_set_deadline(w->stopped_at + hp_world_stop_bound(w));
	rc = stop_listed(w);
	/* All counted and stopped: no thread was born since the listing. */
	for (size_t i = 0; i < w->nr_threads; i++)
		held += w->threads[i].seized;
	if (!rc) {
		const long counted = count_threads(w);

		complete = counted == (long)held + w->leader_gone;
		hp_dbg(HP_DBG_PTRACE, "pid %d: %ld threads, %zu stopped%s",
		       (int)w->pid, counted, held,
		       complete ? "" : ": listing again");
	}
	/* Else catch threads born since the listing, round after round. */
	while (!rc && !complete) {
		rc = stop_round(w, &nr_new);
		if (!rc && !nr_new)
			break;
		if (++rounds > 100 && !rc)
			rc = hp_error(-EAGAIN,
				      "pid %d: threads keep appearing; "
				      "cannot stop them all",
				      (int)w->pid);
	}
	hp_pt_set_deadline(0);
	if (rc) {
		hp_world_resume(w);
		return rc;
	}
	/* Drop threads that exited; keep the stopped ones. */
	for (size_t i = 0; i < w->nr_threads;) {
		if (!w->threads[i].seized)
			w->threads[i] = w->threads[--w->nr_threads];
		else
			i++;
	}
	if (!w->nr_threads) {
		hp_world_resume(w);
		return -HP_E_GONE;
	}
	/* The check will read stacks on two CPUs: wake the second now, so
	 * that it is up by then (rt_helper.c). */
	if (!w->ip_only && w->nr_cpus > 1 &&
	    w->nr_threads >= HP_HELPER_MIN_THREADS)
		hp_helper_wake();
	return 0;
}

void hp_world_release(struct hp_world *w)
{
	/* A split world's parts are let go at once, each by its tracer: the
	 * helper's by its end where that can be waited for. */
	const bool split_world = w->split;
	const bool ends = split_world && split.by_end;
	const bool two =
		split_world && !ends && !hp_helper_start(split_detach, NULL);

	if (ends)
		hp_helper_end();
	for (size_t i = 0; i < w->nr_threads; i++)
		if (!w->threads[i].by_helper)
			hp_pt_release(&w->threads[i]);
	__atomic_store_n(&split.loader_done, true, __ATOMIC_RELEASE);
	if (two)
		hp_helper_join();
	if (ends)
		hp_helper_end_wait();
	/* The window ends here, not after we drop to normal priority, when
	 * the spinning threads we let go may run before we read the clock. */
	w->resumed_at = hp_now_us();
	hp_world_lower(w);
	if (split_world)
		split_end(w, !ends && (!two || !split.plain));
	hp_helper_rest();
	hp_world_drop_stacks(w);
	hp_pt_reap(w->threads, w->nr_threads);
	hp_prio_restore(0, &w->prio);
	if (w->status_fd >= 0)
		close(w->status_fd);
	if (w->task_fd >= 0)
		close(w->task_fd);
	w->status_fd = w->task_fd = -1;
}

void hp_world_free(struct hp_world *w)
{
	hp_world_drop_stacks(w);
	free(w->threads);
	w->threads = NULL;
	w->nr_threads = w->cap_threads = 0;
}

void hp_world_resume(struct hp_world *w)
{
	hp_world_release(w);
	hp_world_free(w);
}
