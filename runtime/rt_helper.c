/*
 * The stop's second CPU: one thread, kept from stop to stop, that reads
 * and scans stacks alongside the loader, each taking the next chunk of
 * them until none is left (rt_check.c), and in a large world traces half
 * of its threads (rt_transition.c, "Two tracers"), and ends to let go of
 * them (hp_helper_end), or when it may still trace one it could not let
 * go (hp_helper_retire): the next stop starts another.
 *
 * Starting a thread in the window cost the pause 80-150 us on a 2-CPU VM
 * (the new thread ran its first instruction 80-95 us after
 * pthread_create); a sleeping one wakes in ~45 us, and is woken when the
 * check begins (hp_helper_wake), so its wake-up overlaps the work before
 * the read; it then waits for its job spinning, a bounded time. It runs
 * at the loader's policy and priority, set at each wake: the loader runs
 * SCHED_FIFO in the window with SCHED_RESET_ON_FORK, so a thread it starts
 * would run at normal priority, behind every runnable task of a busy
 * host. Every signal is blocked in it (SIGCHLD aside while it traces:
 * see rt_transition.c). A child forked since has no helper: it starts its
 * own (helper.owner).
 */
#include "runtime/runtime_int.h"
#include "common/hp_util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* pidfd_open's flag for a thread's pidfd (linux/pidfd.h, Linux 6.9). */
#define HP_PIDFD_THREAD O_EXCL

/* How long a woken helper waits for its job spinning, then sleeps. */
#define HP_HELPER_SPIN_US 2000

enum { HELPER_SLEEP, HELPER_AWAKE, HELPER_GO, HELPER_DONE, HELPER_EXIT };

static struct {
	pid_t owner; /* the process it runs in; 0: none */
	pthread_t th;
	pid_t tid;  /* its thread id (a tracer's: see hp_helper_retire) */
	int policy; /* as last set */
	int prio;
	void (*fn)(void *);
	void *arg;
	uint32_t state;
	int pidfd; /* hp_helper_end_ready's, or -1 */
} helper = { .pidfd = -1 };

static uint32_t state_get(void)
{
	return __atomic_load_n(&helper.state, __ATOMIC_ACQUIRE);
}

static void state_set(uint32_t s)
{
	__atomic_store_n(&helper.state, s, __ATOMIC_RELEASE);
	syscall(SYS_futex, &helper.state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Sleep while the state is @s. */
static void state_wait(uint32_t s)
{
	while (state_get() == s)
		syscall(SYS_futex, &helper.state, FUTEX_WAIT_PRIVATE, s, NULL,
			NULL, 0);
}

/*
 * Between jobs it spins: woken (AWAKE), or done and not yet taken back
 * (DONE: the next job of a stop often follows at once, see
 * hp_helper_join_awake).
 */
static void *helper_main(void *unused)
{
	(void)unused;
	__atomic_store_n(&helper.tid, (pid_t)syscall(SYS_gettid),
			 __ATOMIC_RELEASE);
	for (;;) {
		const uint64_t until = hp_now_us() + HP_HELPER_SPIN_US;
		uint32_t s;

		while (((s = state_get()) == HELPER_AWAKE ||
			s == HELPER_DONE) &&
		       hp_now_us() < until)
			__builtin_ia32_pause();
		if (s == HELPER_EXIT)
			return NULL;
		if (s != HELPER_GO) {
			/* SLEEP, DONE (not taken back yet), AWAKE too long */
			syscall(SYS_futex, &helper.state, FUTEX_WAIT_PRIVATE, s,
				NULL, NULL, 0);
			continue;
		}
		helper.fn(helper.arg);
		state_set(HELPER_DONE);
	}
	return NULL;
}

int hp_helper_ready(void)
{
	struct sched_param param = { 0 };
	sigset_t all, old;
	int rc, policy = SCHED_OTHER;

	if (helper.owner == hp_self_pid())
		return 0;
	/* Forked since (or never started): this process has none. */
	if (helper.pidfd >= 0)
		close(helper.pidfd); /* (a forked child's: its parent's) */
	helper.pidfd = -1;
	helper.state = HELPER_SLEEP;
	helper.tid = 0;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&helper.th, NULL, helper_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return -rc;
	pthread_getschedparam(helper.th, &policy, &param);
	helper.policy = policy & ~SCHED_RESET_ON_FORK;
	helper.prio = param.sched_priority;
	helper.owner = hp_self_pid();
	return 0;
}

void hp_helper_wake(void)
{
	const int policy = sched_getscheduler(0) & ~SCHED_RESET_ON_FORK;
	struct sched_param param = { 0 };

	if (hp_helper_ready())
		return;
	if (policy >= 0 && !sched_getparam(0, &param) &&
	    (policy != helper.policy || param.sched_priority != helper.prio) &&
	    !pthread_setschedparam(helper.th, policy, &param)) {
		helper.policy = policy;
		helper.prio = param.sched_priority;
	}
	if (state_get() == HELPER_SLEEP)
		state_set(HELPER_AWAKE);
}

int hp_helper_start(void (*fn)(void *), void *arg)
{
	int rc = hp_helper_ready();

	if (rc)
		return rc;
	helper.fn = fn;
	helper.arg = arg;
	state_set(HELPER_GO);
	return 0;
}

void hp_helper_join(void)
{
	state_wait(HELPER_GO);
	__atomic_store_n(&helper.state, HELPER_SLEEP, __ATOMIC_RELEASE);
}

void hp_helper_join_awake(void)
{
	state_wait(HELPER_GO);
	__atomic_store_n(&helper.state, HELPER_AWAKE, __ATOMIC_RELEASE);
}

/*
 * A thread's tracees are let go by the kernel when it exits (exit_ptrace,
 * as for a detach: a stop pending or in effect is cancelled), after the
 * futex wake that ends pthread_join and before the thread's /proc entry
 * goes: waited for that, up to a second.
 */
void hp_helper_retire(void)
{
	char path[64];
	struct stat st;

	if (helper.owner != hp_self_pid())
		return;
	state_set(HELPER_EXIT);
	pthread_join(helper.th, NULL);
	snprintf(path, sizeof(path), "/proc/self/task/%d", (int)helper.tid);
	for (int i = 0; i < 10000 && helper.tid && !stat(path, &st); i++)
		usleep(100);
	helper.owner = 0;
}

/*
 * Its end as the let-go of what it traces: the kernel lets go of a
 * thread's tracees as it exits, all in one pass under the lock that each
 * detach takes anew (exit_ptrace), and says the exit is done, the
 * tracees let go, on a thread's pidfd (Linux 6.9, PIDFD_THREAD). 128
 * threads of 256 so let go while the loader detached the others: 365 us
 * on a 2-CPU VM, in minutes when two tracers' detaches at once contend,
 * where detaches took 470-490 one tracer after the other and 650-840
 * both at once (a bare program); bench_pause's let-go, alternated with
 * the build before, 320-389 us against 334-544.
 */
bool hp_helper_no_end;

int hp_helper_end_ready(void)
{
	static bool no_thread_pidfd; /* EINVAL once: before Linux 6.9 */
	const pid_t tid = __atomic_load_n(&helper.tid, __ATOMIC_ACQUIRE);

	if (helper.owner != hp_self_pid() || !tid)
		return -ESRCH;
	if (no_thread_pidfd || hp_helper_no_end)
		return -EINVAL;
	if (helper.pidfd < 0)
		helper.pidfd =
			(int)syscall(SYS_pidfd_open, tid, HP_PIDFD_THREAD);
	if (helper.pidfd >= 0)
		return 0;
	no_thread_pidfd = errno == EINVAL;
	return -errno;
}

void hp_helper_end(void)
{
	state_wait(HELPER_GO); /* a job ends first (none runs now) */
	state_set(HELPER_EXIT);
}

void hp_helper_end_wait(void)
{
	const uint64_t until = hp_now_us() + 1000000;
	struct pollfd pf = { .fd = helper.pidfd, .events = POLLIN };
	int n;

	/* Bounded: past it, the join waits for the thread's end as
	 * hp_helper_retire does. */
	do {
		const uint64_t now = hp_now_us();

		n = poll(&pf, 1, now < until ? (int)((until - now) / 1000) : 0);
	} while (n < 0 && errno == EINTR);
	if (n != 1)
		hp_helper_retire();
	else
		pthread_join(helper.th, NULL);
	close(helper.pidfd);
	helper.pidfd = -1;
	helper.owner = 0;
}

void hp_helper_rest(void)
{
	if (helper.owner == hp_self_pid() && state_get() == HELPER_AWAKE)
		__atomic_store_n(&helper.state, HELPER_SLEEP, __ATOMIC_RELEASE);
}
