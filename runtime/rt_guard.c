/*
 * What a killed loader would leave behind in a target. The kernel lets a
 * dead tracer's threads go, and every injected call restores registers
 * and signal mask before the next, but a thread raised to SCHED_FIFO for
 * a session (rt_remote.c) or a stop (hp_world_raise) would stay real-time
 * for good: a service of normal priority made able to starve the host's
 * other work.
 *
 * So a guard process is forked the first time a target's thread is to be
 * raised: it holds the read end of a pipe whose write end only the loader
 * holds (close-on-exec, closed in a fork's child), and blocks reading it.
 * However the loader ends (kill -9, a crash, the OOM killer), the read
 * returns 0 and the guard gives each thread still listed its policy back,
 * then exits. The list is a shared page the loader writes without a
 * system call: an entry before the raise, cleared after the restore. A
 * thread whose policy is no longer the raised one (changed since by
 * another) is left alone. Without a guard (no process or memory left),
 * no thread is raised: slower, never worse.
 */
#include "runtime/runtime_int.h"
#include "common/hp_log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define HP_LOG_PREFIX "rt: "
/* Threads listed at once: a world's (HP_WORLD_RAISE_MAX) and a
 * session's. */
#define HP_GUARD_SLOTS 128

struct guard_slot {
	atomic_int used; /* written last on listing, first on clearing */
	pid_t tid;
	int policy;
	struct sched_param param;
};

static struct {
	struct guard_slot *slots; /* the shared page; NULL: no guard */
	int wfd;		  /* the pipe's write end */
	pid_t pid;		  /* the guard's */
	bool failed;		  /* could not make one: not tried again */
	bool atfork;
} guard = { .wfd = -1 };

/* The guard's work at the loader's end: give back what is listed. */
static void give_back(const struct guard_slot *slots)
{
	for (int i = 0; i < HP_GUARD_SLOTS; i++) {
		const struct guard_slot *s = &slots[i];
		const int now = s->tid ? sched_getscheduler(s->tid) : -1;
		char msg[160];
		int len;

		if (!atomic_load(&s->used) || now != HP_PRIO_RAISED ||
		    sched_setscheduler(s->tid, s->policy, &s->param))
			continue;
		/* (Not hp_log: in a fork of a process with threads, stdio's
		 * locks may be held for good.) */
		len = snprintf(msg, sizeof(msg),
			       "hpatch: warning: tid %d: its patcher ended "
			       "while it ran raised; scheduling policy %d "
			       "given back\n",
			       (int)s->tid, s->policy);
		if (len > 0 && write(2, msg, (size_t)len) < 0)
			break;
	}
}

/* The guard process: never returns. */
static void guard_main(int rfd, const struct guard_slot *slots)
{
	char c;
	ssize_t n;

	/* Out of the loader's session: a terminal's ^C is the loader's. */
	setsid();
	prctl(PR_SET_NAME, "hpatch-guard");
	/* No descriptor of the loader's kept open (a lock, a target's
	 * memory) but the pipe's end, on 3, and stdout/err for the log. */
	if (rfd != 3 && dup2(rfd, 3) == 3)
		rfd = 3;
	if (syscall(SYS_close_range, rfd + 1, ~0U, 0))
		for (int fd = rfd + 1; fd < 1024; fd++)
			close(fd);
	do
		n = read(rfd, &c, 1);
	while (n > 0 || (n < 0 && errno == EINTR));
	give_back(slots);
	_exit(0);
}

/* A fork's child (an --all worker) makes its own guard if it needs one:
 * the parent's watches the parent. */
static void forget_guard(void)
{
	if (guard.slots)
		munmap(guard.slots, sizeof(struct guard_slot) * HP_GUARD_SLOTS);
	if (guard.wfd >= 0)
		close(guard.wfd);
	guard.slots = NULL;
	guard.wfd = -1;
	guard.failed = false;
}

/* A guard forked to watch @slots, on guard.wfd. Return: whether one was. */
static bool spawn_guard(struct guard_slot *slots)
{
	int fds[2];
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC))
		return false;
	pid = fork();
	if (pid == 0) {
		close(fds[1]);
		guard_main(fds[0], slots);
	}
	close(fds[0]);
	if (pid < 0) {
		hp_log(HP_LOG_DEBUG,
		       "no guard process (%s): threads not raised",
		       strerror(errno));
		close(fds[1]);
		return false;
	}
	guard.pid = pid;
	guard.wfd = fds[1];
	return true;
}

/*
 * Whether the guard has ended: its pipe's write end has no reader left.
 * hpatchd's lives as long as hpatchd, and may be killed first (the OOM
 * killer counts the memory it shares with hpatchd as its own; an
 * operator's pkill): reaped then, for the caller to fork another.
 */
static bool guard_lost(void)
{
	struct pollfd pfd = { .fd = guard.wfd, .events = POLLOUT };

	if (poll(&pfd, 1, 0) != 1 || !(pfd.revents & POLLERR))
		return false;
	hp_log(HP_LOG_DEBUG, "guard process %d has ended", (int)guard.pid);
	close(guard.wfd);
	guard.wfd = -1;
	/* (It has closed its files: it is exiting.) */
	while (waitpid(guard.pid, NULL, 0) < 0 && errno == EINTR)
		;
	return true;
}

static bool have_guard(void)
{
	const size_t len = sizeof(struct guard_slot) * HP_GUARD_SLOTS;
	struct guard_slot *slots = guard.slots;

	if (slots && !guard_lost())
		return true;
	if (guard.failed)
		return false;
	guard.failed = true;
	if (!guard.atfork && pthread_atfork(NULL, NULL, forget_guard))
		return false;
	guard.atfork = true;
	/* A lost guard's page is the next one's: what it lists stays. */
	if (!slots)
		slots = mmap(NULL, len, PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (slots == MAP_FAILED)
		return false;
	/* NULL across the fork: the child's handler would unmap the page. */
	guard.slots = NULL;
	if (!spawn_guard(slots)) {
		munmap(slots, len);
		return false;
	}
	guard.slots = slots;
	guard.failed = false;
	return true;
}

int hp_guard_list(pid_t tid, const struct hp_prio *pr)
{
	if (!have_guard())
		return -1;
	for (int i = 0; i < HP_GUARD_SLOTS; i++) {
		struct guard_slot *s = &guard.slots[i];

		if (atomic_load(&s->used))
			continue;
		s->tid = tid;
		s->policy = pr->policy;
		s->param = pr->param;
		atomic_store(&s->used, 1);
		return i;
	}
	return -1;
}

void hp_guard_unlist(int slot)
{
	if (guard.slots && slot >= 0 && slot < HP_GUARD_SLOTS)
		atomic_store(&guard.slots[slot].used, 0);
}

/*
 * A thread interrupted for a stop must get a CPU to reach it: on a busy
 * host, behind the tasks runnable there (a wakeup preempts them mostly,
 * not always). Raised for the stop, as a session's thread is
 * (rt_remote.c), it runs at once; the loader, a step above, is never
 * kept off a CPU by one let go still raised, before hp_world_lower.
 * bench/loaded.sh (7 threads asleep, 4 loops spinning on 2 CPUs): apply
 * pause p50/p90/max 213-460/1272-5012/5139-7007 -> 125-176/162-187/
 * 167-223 us; 61 threads: 681/5931/8519 -> 626/651/867. Raised as the
 * stop begins, not when the world is made: threads that spin, raised,
 * keep every task of normal priority off the CPUs until stopped (the
 * split unit tests, holding 64 so for seconds, starved the suite's
 * other tests). Only a world of at most HP_WORLD_RAISE_MAX threads: each
 * costs 4 system calls as the stop begins (~3 us) and one after, and a
 * guard slot; 64 spinning threads are raised in ~200 us.
 */
#define HP_WORLD_RAISE_MAX 64

struct hp_raised {
	pid_t tid;
	struct hp_prio prio;
};

void hp_world_raise_early(long nr_threads)
{
	if (nr_threads > 0 && nr_threads <= HP_WORLD_RAISE_MAX)
		(void)have_guard();
}

void hp_world_raise(struct hp_world *w)
{
	if (w->nr_threads > HP_WORLD_RAISE_MAX || w->raised)
		return;
	w->raised = calloc(w->nr_threads, sizeof(*w->raised));
	for (size_t i = 0; w->raised && i < w->nr_threads; i++) {
		struct hp_raised *r = &w->raised[w->nr_raised];

		r->tid = w->threads[i].tid;
		hp_prio_raise(r->tid, &r->prio);
		w->nr_raised += r->prio.raised;
	}
}

void hp_world_lower(struct hp_world *w)
{
	for (size_t i = 0; i < w->nr_raised; i++)
		hp_prio_restore(w->raised[i].tid, &w->raised[i].prio);
	free(w->raised);
	w->raised = NULL;
	w->nr_raised = 0;
}
