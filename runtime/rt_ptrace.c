/*
 * ptrace primitives: seize and interrupt threads without signals
 * (PTRACE_SEIZE + PTRACE_INTERRUPT leave no trace a program can see), wait
 * for their stop within a bound, and let them go. Running our own
 * instructions in a stopped thread is rt_inject.h's files.
 */
#include "runtime/runtime_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define HP_LOG_PREFIX "rt: "

/*
 * Every wait for a tracee has a bound: by default HP_PT_WAIT_MAX_US from
 * its start, or the deadline a caller set for a whole stop
 * (hp_pt_set_deadline). A thread in a wait no interrupt ends (a vfork
 * child's, a hung file system's) would otherwise keep every other
 * thread stopped for as long as it sleeps.
 */
#define HP_PT_WAIT_MAX_US 2000000
static uint64_t pt_deadline; /* CLOCK_MONOTONIC us, 0: the default */

/*
 * A bounded wait costs one blocking waitpid, as an unbounded one: the
 * kernel wakes a waiter for one pid only when that pid reports, and a
 * timer (CLOCK_MONOTONIC, HP_PT_WAKE_SIG to this thread alone, a handler
 * that does nothing, installed without SA_RESTART) ends the wait with
 * EINTR at the deadline. It is armed once per deadline, not per wait.
 * Between the decision to block (the timer armed, or found armed for
 * sooner) and the waitpid, the loader can be held up (preempted, a
 * loaded VM's steal time) past the expiry: the signal is then taken
 * there, and a timer that fired once would leave the waitpid without a
 * bound (a thread that never reports held it for good: issue 12, 14
 * minutes). So once expired it fires again every HP_PT_WAKE_REFIRE_US,
 * until re-armed or disarmed: a signal lost so delays a wait by that
 * much, at the same cost (the interval comes with the one timer_settime).
 * Blocking the signal and unblocking it atomically with the wait would
 * close the gap outright, but waitpid takes no mask (ppoll on a pidfd
 * sees exits, not ptrace stops).
 * (A sigtimedwait on SIGCHLD, the first bounded design, woke the loader
 * at every thread's stop, not only the one it waited for: 256 threads
 * stopped in 1.5x the time; and it took SIGCHLD from a daemon waiting for
 * children of its own.) The signal's disposition and this thread's mask
 * are hpatch's only while a wait needs them (hp_pt_wake_release).
 */
#define HP_PT_WAKE_SIG (SIGRTMAX - 3)
#define HP_PT_WAKE_REFIRE_US 1000

static struct {
	bool installed; /* handler and mask ours; timer created */
	struct sigaction old_action;
	bool was_blocked; /* HP_PT_WAKE_SIG, in this thread's mask before */
	timer_t timer;
	/* CLOCK_MONOTONIC us it first fires at (then every
	 * HP_PT_WAKE_REFIRE_US), 0: disarmed */
	uint64_t armed;
} wake;

/*
 * A run of waits for one thread's steps (hp_pt_wake_keep): the timer, once
 * armed, stays armed for the next wait, unless that wait must end sooner.
 * Armed for sooner (an earlier wait's bound, not yet passed), it ends a
 * wait early at worst, which the wait takes as any wake. A step takes
 * microseconds: re-arming and disarming around each, two system calls,
 * cost more than the step's own wait. While kept, a sleep of the loader
 * may end early (EINTR), and once the expiry has passed, every
 * HP_PT_WAKE_REFIRE_US until the next wait arms it anew: nothing between
 * the steps of a session sleeps but hp_rt_fault's test delays, which
 * sleep on. The session's end disarms it (hp_pt_wake_keep(false)), and
 * so does every operation's (hp_rt_apply, hp_rt_revert).
 */
static bool wake_kept;

void (*hp_pt_wait_gap)(void); /* for tests: see runtime_int.h */

static void wake_nop(int sig)
{
	(void)sig;
}

static int wake_install(void)
{
	struct sigaction sa = { .sa_handler = wake_nop };
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID,
				.sigev_signo = HP_PT_WAKE_SIG };
	sigset_t set, old;

	if (wake.installed)
		return 0;
	sev._sigev_un._tid =
		(pid_t)syscall(SYS_gettid); /* sigev_notify_thread_id */
	if (timer_create(CLOCK_MONOTONIC, &sev, &wake.timer) < 0)
		return -errno;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&set);
	sigaddset(&set, HP_PT_WAKE_SIG);
	sigaction(HP_PT_WAKE_SIG, &sa, &wake.old_action);
	pthread_sigmask(SIG_UNBLOCK, &set, &old);
	wake.was_blocked = sigismember(&old, HP_PT_WAKE_SIG) == 1;
	wake.installed = true;
	wake.armed = 0;
	return 0;
}

void hp_pt_wake_release(void)
{
	sigset_t set;

	if (!wake.installed)
		return;
	/* Deleted first: a signal it raised was delivered by the time the
	 * call returns (it is not blocked), never after the restore. Only
	 * the signal's own bit of the mask is put back: the rest may have
	 * changed since (a run of operations holds signals around each). */
	timer_delete(wake.timer);
	wake_kept = false;
	sigemptyset(&set);
	sigaddset(&set, HP_PT_WAKE_SIG);
	if (wake.was_blocked)
		pthread_sigmask(SIG_BLOCK, &set, NULL);
	sigaction(HP_PT_WAKE_SIG, &wake.old_action, NULL);
	wake.installed = false;
}

/* Interrupt this thread's blocking call at @at_us (@now_us: the time).
 * Return: 0 or -errno. */
static int wake_at(uint64_t at_us, uint64_t now_us)
{
	struct itimerspec its = { 0 };
	int rc = wake_install();

	if (rc)
		return rc;
	/* Armed for @at_us, or (kept) for sooner: it fires in time. Once
	 * passed it refires every HP_PT_WAKE_REFIRE_US: armed anew, lest it
	 * wake this wait at each until @at_us. */
	if (wake.armed > now_us &&
	    (wake.armed == at_us || (wake_kept && wake.armed < at_us)))
		return 0;
	its.it_value.tv_sec = (time_t)(at_us / 1000000);
	its.it_value.tv_nsec = (long)(at_us % 1000000) * 1000;
	its.it_interval.tv_nsec = HP_PT_WAKE_REFIRE_US * 1000L;
	if (timer_settime(wake.timer, TIMER_ABSTIME, &its, NULL) < 0)
		return -errno;
	wake.armed = at_us;
	return 0;
}

/* No signal of ours after this: it would end a sleep of someone else's
 * (a backoff's usleep) with EINTR. */
void hp_pt_wake_disarm(void)
{
	const struct itimerspec off = { 0 };

	if (!wake_kept && wake.armed &&
	    !timer_settime(wake.timer, 0, &off, NULL))
		wake.armed = 0;
}

void hp_pt_wake_keep(bool on)
{
	wake_kept = on;
	hp_pt_wake_disarm();
}

void hp_pt_set_deadline(uint64_t deadline_us)
{
	pt_deadline = deadline_us;
	if (!deadline_us)
		hp_pt_wake_disarm();
}

/*
 * The bound of a wait for our own instructions (an injected system call,
 * a single step), which normally take microseconds: a call can sleep in
 * the kernel (mmap waiting for the address-space lock that a thread
 * faulting on a hung file system holds), and a bound shorter than the
 * operation's --timeout would give up on it sooner than the operator said.
 */
uint64_t hp_pt_call_max_us = HP_PT_WAIT_MAX_US;
uint64_t hp_pt_stop_max_us = HP_STOP_MAX_US;

void hp_pt_set_call_bound(long bound_ms)
{
	const uint64_t us = bound_ms > 0 ? (uint64_t)bound_ms * 1000 : 0;

	hp_pt_call_max_us = us > HP_PT_WAIT_MAX_US ? us : HP_PT_WAIT_MAX_US;
	hp_pt_stop_max_us = us && us < HP_STOP_MAX_US ? us : HP_STOP_MAX_US;
}

/*
 * waitpid(@tid) until @deadline: with @poll one WNOHANG first (most waits
 * of a stop find the thread stopped already: every thread was interrupted
 * first), then blocking waitpids that the timer ends. A leader that
 * exited while others live never reports: it is looked at after 1 ms
 * without a report, then every 10 ms (not before each wait: reading its
 * state costs more than the wait). Without a timer (timer_create refused)
 * the wait polls every 100 us. Return: the pid, 0 at the deadline, -1
 * with errno.
 */
static pid_t wait_until(const struct hp_thread *t, int *status,
			uint64_t deadline, bool poll)
{
	pid_t r = poll ? waitpid(t->tid, status, __WALL | WNOHANG) : 0;
	uint64_t look_at = 0; /* a leader's next look at its state */

	while (r == 0 || (r < 0 && errno == EINTR)) {
		const uint64_t now = hp_now_us();
		uint64_t until = deadline;

		if (now >= deadline)
			return 0;
		if (t->leader && !look_at) {
			look_at = now + 1000;
		} else if (t->leader && now >= look_at) {
			if (hp_task_gone(t->tid)) {
				errno = ESRCH;
				return -1;
			}
			look_at = now + 10000;
		}
		if (t->leader && until > look_at)
			until = look_at;
		if (wake_at(until, now)) {
			usleep(100);
			r = waitpid(t->tid, status, __WALL | WNOHANG);
			continue;
		}
		if (hp_pt_wait_gap)
			hp_pt_wait_gap();
		r = waitpid(t->tid, status, __WALL);
	}
	return r;
}

pid_t hp_pt_wait_until(const struct hp_thread *t, int *status,
		       uint64_t deadline)
{
	return wait_until(t, status, deadline, true);
}

pid_t hp_pt_wait_resumed(const struct hp_thread *t, int *status,
			 uint64_t deadline)
{
	return wait_until(t, status, deadline, false);
}

/* A wait within a stop's deadline (the timer stays armed for the next
 * wait, disarmed by hp_pt_set_deadline(0)), or alone. */
static pid_t wait_bounded(const struct hp_thread *t, int *status)
{
	pid_t r;

	if (pt_deadline)
		return hp_pt_wait_until(t, status, pt_deadline);
	r = hp_pt_wait_until(t, status, hp_now_us() + HP_PT_WAIT_MAX_US);
	hp_pt_wake_disarm();
	return r;
}

/*
 * The threads left attached (hp_pt_release), each with what it is owed:
 * hp_rt_release_left lets each go once it stops, a later try that meets
 * it adopts it or (owed, and stopped since) lets it go first (adopt).
 */
static struct {
	struct hp_thread *v;
	size_t nr, cap;
} left_attached;

static bool own_signal(const struct hp_thread *t, int sig);

bool hp_pt_fault_leave;

static void leave(const struct hp_thread *t)
{
	if (hp_grow(&left_attached.v, &left_attached.cap, left_attached.nr,
		    sizeof(*left_attached.v), 4)) {
		hp_warn("tid %d: left attached, untracked (no memory)",
			(int)t->tid);
		return;
	}
	left_attached.v[left_attached.nr] = *t;
	left_attached.v[left_attached.nr].stopped = false;
	left_attached.nr++;
}

/*
 * The left thread at @i, if it has stopped since (back from our
 * instruction) or exited: no longer left. Only looked at (WNOWAIT):
 * stopped, it is let go as at the end of any session (hp_pt_release),
 * with what it is owed, where a signal of the program's goes on with it,
 * and the trap of our own step, still queued behind our interrupt's stop,
 * is taken and dropped before its mask is given back (delivered, it kills
 * the target); exited, it is reaped. Return: true if it is no longer left
 * (@i now holds another).
 */
static bool settle_left(size_t i)
{
	struct hp_thread t = left_attached.v[i];
	siginfo_t si = { 0 };
	int status;

	if (!waitid(P_PID, (id_t)t.tid, &si,
		    WSTOPPED | WEXITED | WNOHANG | WNOWAIT | __WALL) &&
	    !si.si_pid)
		return false;
	left_attached.v[i] = left_attached.v[--left_attached.nr];
	if (!si.si_pid) /* no longer ours */
		return true;
	if (si.si_code != CLD_TRAPPED && si.si_code != CLD_STOPPED) {
		/* Exited: a traced thread stays a zombie for us. */
		(void)waitpid(t.tid, &status, __WALL | WNOHANG);
		return true;
	}
	t.seized = true;
	t.stopped = false;
	hp_pt_release(&t);
	hp_pt_reap(&t, 1);
	hp_log(HP_LOG_INFO,
	       "tid %d: stopped at last (left attached when it would not "
	       "stop); let go",
	       (int)t.tid);
	return true;
}

/*
 * A thread left attached, met again by a later try: one left with only
 * our interrupt pending is the new session's. One left inside an injected
 * call is not: its registers are ours until it stops, and a session would
 * take them for its own (its pc, its stack) and let it go with them.
 * Stopped since, it is given what it is owed and let go first, to be
 * seized anew (a retry of the same operation, the undo of a failed apply,
 * meets it there: hp_rt_release_left runs only between operations, or as
 * hpatch exits). Still inside, the try is busy.
 * Return: 0, -EAGAIN (let go: seize it again), -HP_E_BUSY (reported).
 */
static int adopt(struct hp_thread *t)
{
	for (size_t i = 0; i < left_attached.nr; i++) {
		const struct hp_thread *l = &left_attached.v[i];

		if (l->tid != t->tid)
			continue;
		if (!l->owes_regs && !l->owes_mask) {
			left_attached.v[i] =
				left_attached.v[--left_attached.nr];
			break;
		}
		if (settle_left(i))
			return -EAGAIN;
		hp_error(-HP_E_BUSY,
			 "tid %d: still inside hpatch's injected call of an "
			 "earlier try; nothing changed",
			 (int)t->tid);
		hp_hint("it gets its own registers back when it returns: "
			"retry then");
		return -HP_E_BUSY;
	}
	return 0;
}

size_t hp_rt_release_left(void)
{
	const size_t before = left_attached.nr;

	for (size_t i = 0; i < left_attached.nr;)
		if (!settle_left(i))
			i++;
	/* As after any operation: no timer of its waits left armed (it
	 * would end the caller's next wait, hpatchd's poll, with EINTR). */
	if (left_attached.nr < before)
		hp_pt_wake_release();
	return left_attached.nr;
}

/* Whether @tid is a thread of this process. */
static bool hp_own_thread(pid_t tid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/task/%d", (int)tid);
	return !access(path, F_OK);
}

int hp_pt_seize_quiet(struct hp_thread *t)
{
	/* TRACEEXEC: a thread of ours that execs reports an event stop,
	 * not the SIGTRAP the kernel otherwise sends it (which, delivered,
	 * would kill the new program). TRACESYSGOOD: a system-call stop
	 * (an injected call's, rt_call.c) reports SIGTRAP | 0x80, which is
	 * no signal: a loader killed (-9) there leaves the thread none, where
	 * the kernel would send it the plain SIGTRAP it reported (the exit
	 * code no tracer cleared: ptrace_report_syscall), which kills it. */
	/* Never PTRACE_O_EXITKILL: the helper thread lets go of its part of
	 * a world by its end (hp_helper_end). */
	if (ptrace(PTRACE_SEIZE, t->tid, 0,
		   (void *)(PTRACE_O_TRACEEXEC | PTRACE_O_TRACESYSGOOD)) < 0)
		return -errno;
	t->seized = true;
	return 0;
}

int hp_pt_seize(struct hp_thread *t)
{
	pid_t tracer;
	int rc = hp_pt_seize_quiet(t);

	if (!rc)
		return 0;
	/* The kernel refuses a thread that is exiting with EPERM, as it
	 * refuses one that another tracer holds: tell them apart. */
	if (rc == -ESRCH || (rc == -EPERM && hp_task_gone(t->tid)))
		return -ESRCH;
	tracer = rc == -EPERM ? hp_task_tracer(t->tid) : 0;
	/* Ours still: a thread an earlier try could not stop in time
	 * (hp_pt_release left it attached). */
	if (tracer == hp_self_pid()) {
		rc = adopt(t);
		if (rc == -EAGAIN) /* let go: detached, seized anew */
			return hp_pt_seize(t);
		t->seized = !rc;
		return rc;
	}
	/* Another thread of ours: the helper (rt_transition.c, "Two
	 * tracers"), whose thread exec'd, and took the leader's tid. */
	if (tracer > 0 && tracer != (pid_t)syscall(SYS_gettid) &&
	    hp_own_thread(tracer))
		return -HP_E_EXEC;
	if (tracer > 0) {
		char comm[32];

		hp_task_comm(tracer, comm, sizeof(comm));
		hp_error(rc, "tid %d: traced by pid %d ('%s'); cannot attach",
			 (int)t->tid, (int)tracer, comm);
		hp_hint("a debugger, strace or another patcher holds it: "
			"detach it (or let it finish) and retry");
		return rc;
	}
	hp_error_rc(rc, "tid %d: cannot attach", (int)t->tid);
	if (rc == -EPERM)
		hp_hint("run as root or as the process's user; check "
			"/proc/sys/kernel/yama/ptrace_scope");
	return rc;
}

int hp_pt_interrupt(struct hp_thread *t)
{
	if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0)
		return -errno;
	return 0;
}

/*
 * A seized thread stops with PTRACE_EVENT_STOP (status >> 16) for our
 * interrupt, or first in a signal-delivery-stop (status >> 16 is 0) when a
 * signal raced us. That signal is delivered at once, from that very stop
 * (PTRACE_CONT with it: the kernel keeps its siginfo, si_value and
 * si_code), and the interrupt, still pending, stops the thread right
 * after, at its handler. Keeping it for later lost it or its siginfo (a
 * detach from another stop re-sends it as from the tracer), and several
 * kept ones were merged into one of each number. A leader that exited
 * while others live would never report: see wait_bounded.
 */
/* Whether @sig, stopping a thread owed back from an injected step or
 * call, is of hpatch's making: that step's trap, that call's return (a
 * fault at 0) or fault. All else is blocked while it is owed: only a
 * signal its own instruction forces on it (which unblocks it) or SIGSTOP
 * can stop it. */
static bool own_signal(const struct hp_thread *t, int sig)
{
	return t->owes_mask && sig != SIGSTOP;
}

int hp_pt_wait_stop(struct hp_thread *t)
{
	int status = 0;

	for (;;) {
		pid_t r = wait_bounded(t, &status);

		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0 && errno == ESRCH && t->leader) {
			t->seized = false;
			return -ESRCH;
		}
		if (r < 0)
			return -errno;
		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			t->seized = false;
			return -ESRCH;
		}
		if (!WIFSTOPPED(status))
			continue;
		if (status >> 16 == 0 && WSTOPSIG(status) == (SIGTRAP | 0x80)) {
			/* A system-call stop: only ever our call's. */
			t->stopped = true;
			return 0;
		}
		if (status >> 16 == 0) {
			/* The trap of our own step (or the return of our own
			 * call to address 0), come in after its bound: the
			 * stop we wait for. Detaching from it drops it. */
			if (own_signal(t, WSTOPSIG(status))) {
				t->stopped = true;
				return 0;
			}
			/* Not ours to resume: its tracer's (rt_transition.c,
			 * "Two tracers"). */
			if (t->by_helper) {
				t->stop_sig = WSTOPSIG(status);
				return -EXDEV;
			}
			if (ptrace(PTRACE_CONT, t->tid, 0,
				   (void *)(long)WSTOPSIG(status)) < 0)
				return errno == ESRCH ? -ESRCH : -errno;
			continue;
		}
		t->stopped = true;
		/* A seized thread in a group stop (or on its way into one)
		 * reports it with the stop signal; our interrupt, SIGTRAP. */
		t->group_stop = status >> 16 == PTRACE_EVENT_STOP &&
				WSTOPSIG(status) != SIGTRAP;
		if (status >> 16 == PTRACE_EVENT_EXEC)
			return -HP_E_EXEC; /* stopped: let go as any other */
		hp_dbg(HP_DBG_PTRACE, "tid %d stopped (status 0x%x)",
		       (int)t->tid, status);
		return 0;
	}
}

int hp_pt_get_regs(struct hp_thread *t)
{
	if (ptrace(PTRACE_GETREGS, t->tid, 0, &t->regs) < 0)
		return -errno;
	return 0;
}

int hp_pt_peek_user(pid_t tid, size_t off, unsigned long long *out)
{
	long v;

	errno = 0;
	v = ptrace(PTRACE_PEEKUSER, tid, off, 0);
	if (v == -1 && errno)
		return -errno;
	*out = (unsigned long long)v;
	return 0;
}

int hp_pt_get_ip(struct hp_thread *t)
{
	/* The head of struct ptrace_syscall_info, filled at any stop. */
	struct {
		uint8_t op;
		uint8_t pad[3];
		uint32_t arch;
		uint64_t ip;
		uint64_t sp;
	} si;

	if (ptrace(PTRACE_GET_SYSCALL_INFO, t->tid, (void *)sizeof(si), &si) >=
	    0) {
		t->regs.rip = si.ip;
		t->regs.rsp = si.sp;
		return 0;
	}
	if (errno != EIO && errno != EINVAL)
		return -errno;
	/* Before Linux 5.3: a word at a time. */
	return hp_pt_peek_user(t->tid, offsetof(struct user_regs_struct, rip),
			       &t->regs.rip)
		       ?: hp_pt_peek_user(
				  t->tid,
				  offsetof(struct user_regs_struct, rsp),
				  &t->regs.rsp);
}

/* Whether @t, owed and stopped, has a signal of hpatch's making pending
 * (see own_signal): one pending and not blocked, SIGKILL and SIGSTOP
 * aside. A signal of the program's, blocked, waits for its own mask. */
static bool own_pending(const struct hp_thread *t)
{
	const uint64_t kill_stop =
		(1ULL << (SIGKILL - 1)) | (1ULL << (SIGSTOP - 1));
	uint64_t blocked = 0;

	if (ptrace(PTRACE_GETSIGMASK, t->tid, (void *)sizeof(blocked),
		   &blocked) < 0)
		return false;
	return hp_task_status_mask(t->tid, "SigPnd:") & ~blocked & ~kill_stop;
}

void hp_pt_release(struct hp_thread *t)
{
	int rc;

	if (!t->seized)
		return;
	hp_pt_inject_end(t);
	/* Only a stopped thread can be detached: a running one gives ESRCH
	 * and stays ours until we exit (and cannot be seized again, to undo
	 * a failed apply say). A thread seized but not stopped, on a failure
	 * path, is stopped first; one that exited meanwhile is done. */
	if (!t->stopped) {
		const uint64_t saved = pt_deadline;

		rc = hp_pt_interrupt(t);

		/* A thread that did not stop in time is not waited for
		 * again: if it stops now, it is let go; else it stays
		 * attached, its interrupt pending, until a later try stops
		 * it or hpatch exits (the kernel lets it go then). */
		/* One left inside our instruction gets longer: caught on
		 * its way back, it gets its own registers again. */
		pt_deadline = hp_now_us() + (t->owes_mask ? 500000 : 10000);
		if (!rc && t->owes_mask && hp_pt_fault_leave)
			rc = -ETIMEDOUT; /* tests: as if it stayed inside */
		else if (!rc)
			rc = hp_pt_wait_stop(t);
		hp_pt_fault_leave = false;
		/* Our step's trap, queued but not yet taken when the
		 * interrupt stopped it: taken now (and dropped), lest it
		 * be delivered after the detach. An interrupt of ours
		 * that came while it was stopped stops it once more first
		 * (the kernel keeps one pending stop): a few turns. */
		for (int turn = 0;
		     !rc && t->owes_mask && turn < 4 && own_pending(t);
		     turn++) {
			rc = ptrace(PTRACE_CONT, t->tid, 0, 0) < 0 ? -errno : 0;
			t->stopped = false;
			if (!rc)
				rc = hp_pt_wait_stop(t);
		}
		hp_pt_set_deadline(saved); /* (0: disarmed) */
		if (rc == -ETIMEDOUT) {
			hp_dbg(HP_DBG_PTRACE,
			       "tid %d: not stopped; left attached",
			       (int)t->tid);
			leave(t);
			t->seized = false;
			return;
		}
		/* Back from our call at last: its own registers again. */
		if (!rc && t->owes_regs &&
		    ptrace(PTRACE_SETREGS, t->tid, 0, &t->owed_regs) < 0)
			hp_warn("tid %d: cannot restore registers: %s",
				(int)t->tid, strerror(errno));
		if (!rc && t->owes_mask)
			hp_pt_restore_signals(t, &t->owed_mask);
		t->owes_regs = t->owes_mask = false;
		if (rc) {
			t->dead = t->seized; /* not reaped yet */
			t->seized = false;
			return;
		}
	}
	rc = hp_pt_detach(t);
	if (rc && rc != -ESRCH)
		hp_warn("tid %d: detach: %s", (int)t->tid, strerror(-rc));
}

int hp_pt_detach(struct hp_thread *t)
{
	/* Detaching resumes the thread and cancels any pending interrupt.
	 * ESRCH: killed while stopped (SIGKILL needs no tracer), to reap. */
	const int rc = ptrace(PTRACE_DETACH, t->tid, 0, 0) < 0 ? -errno : 0;

	if (rc == -ESRCH)
		t->dead = true;
	t->seized = false;
	t->stopped = false;
	t->has_regs = false;
	t->has_seccomp_mode = false;
	t->has_ip = false;
	return rc;
}

int hp_pt_cont(struct hp_thread *t, int sig)
{
	if (ptrace(PTRACE_CONT, t->tid, 0, (void *)(long)sig) < 0)
		return -errno;
	return 0;
}

void hp_pt_reap(struct hp_thread *threads, size_t nr)
{
	size_t left = 0;

	for (size_t i = 0; i < nr; i++)
		left += threads[i].dead;
	/* A dying thread reports its exit within moments; a leader only
	 * after the others are reaped: a few passes, 100 ms at most. */
	for (int pass = 0; left && pass < 100; pass++) {
		if (pass)
			usleep(1000);
		for (size_t i = 0; i < nr; i++) {
			struct hp_thread *t = &threads[i];
			int status;
			pid_t r;

			if (!t->dead)
				continue;
			r = waitpid(t->tid, &status, __WALL | WNOHANG);
			if (r < 0 || (r > 0 && (WIFEXITED(status) ||
						WIFSIGNALED(status)))) {
				t->dead = false;
				left--;
			}
		}
	}
}
