/*
 * ptrace primitives: seize and interrupt threads without signals
 * (PTRACE_SEIZE + PTRACE_INTERRUPT leave no trace a program can see), wait
 * for their stop, and run one system call through a stopped thread.
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
 * (A sigtimedwait on SIGCHLD, the first bounded design, woke the loader
 * at every thread's stop, not only the one it waited for: 256 threads
 * stopped in 1.5x the time; and it took SIGCHLD from a daemon waiting for
 * children of its own.) The signal's disposition and this thread's mask
 * are hpatch's only while a wait needs them (hp_pt_wake_release).
 */
#define HP_PT_WAKE_SIG (SIGRTMAX - 3)

static struct {
	bool installed; /* handler and mask ours; timer created */
	struct sigaction old_action;
	bool was_blocked; /* HP_PT_WAKE_SIG, in this thread's mask before */
	timer_t timer;
	uint64_t armed; /* CLOCK_MONOTONIC us it fires at, 0: disarmed */
} wake;

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
	sigemptyset(&set);
	sigaddset(&set, HP_PT_WAKE_SIG);
	if (wake.was_blocked)
		pthread_sigmask(SIG_BLOCK, &set, NULL);
	sigaction(HP_PT_WAKE_SIG, &wake.old_action, NULL);
	wake.installed = false;
}

/* Interrupt this thread's blocking call at @at_us. Return: 0 or -errno. */
static int wake_at(uint64_t at_us)
{
	struct itimerspec its = { 0 };
	int rc = wake_install();

	if (rc || wake.armed == at_us)
		return rc;
	its.it_value.tv_sec = (time_t)(at_us / 1000000);
	its.it_value.tv_nsec = (long)(at_us % 1000000) * 1000;
	if (timer_settime(wake.timer, TIMER_ABSTIME, &its, NULL) < 0)
		return -errno;
	wake.armed = at_us;
	return 0;
}

/* No signal of ours after this: it would end a sleep of someone else's
 * (a backoff's usleep) with EINTR. */
static void wake_disarm(void)
{
	const struct itimerspec off = { 0 };

	if (wake.armed && !timer_settime(wake.timer, 0, &off, NULL))
		wake.armed = 0;
}

void hp_pt_set_deadline(uint64_t deadline_us)
{
	pt_deadline = deadline_us;
	if (!deadline_us)
		wake_disarm();
}

/*
 * The bound of a wait for our own instructions (an injected system call,
 * a single step), which normally take microseconds: a call can sleep in
 * the kernel (mmap waiting for the address-space lock that a thread
 * faulting on a hung file system holds), and a bound shorter than the
 * operation's --timeout would give up on it sooner than the operator said.
 */
static uint64_t pt_call_max_us = HP_PT_WAIT_MAX_US;

void hp_pt_set_call_bound(long bound_ms)
{
	const uint64_t us = bound_ms > 0 ? (uint64_t)bound_ms * 1000 : 0;

	pt_call_max_us = us > HP_PT_WAIT_MAX_US ? us : HP_PT_WAIT_MAX_US;
}

/*
 * waitpid(@tid) until @deadline: one WNOHANG (most waits of a stop find
 * the thread stopped already: every thread was interrupted first), else
 * one blocking waitpid that the timer ends. A leader that exited while
 * others live never reports: it is looked at after 1 ms without a
 * report, then every 10 ms (not before each wait: reading its state costs
 * more than the wait). Without a timer (timer_create refused) the wait
 * polls every 100 us. Return: the pid, 0 at the deadline, -1 with errno.
 */
static pid_t wait_until(const struct hp_thread *t, int *status,
			uint64_t deadline)
{
	pid_t r = waitpid(t->tid, status, __WALL | WNOHANG);
	uint64_t slice = 1000;

	while (r == 0 || (r < 0 && errno == EINTR)) {
		const uint64_t now = hp_now_us();
		uint64_t until = deadline;

		if (now >= deadline)
			return 0;
		if (t->leader && slice > 1000 && hp_task_gone(t->tid)) {
			errno = ESRCH;
			return -1;
		}
		if (t->leader && until > now + slice)
			until = now + slice;
		if (t->leader)
			slice = 10000;
		if (wake_at(until)) {
			usleep(100);
			r = waitpid(t->tid, status, __WALL | WNOHANG);
			continue;
		}
		r = waitpid(t->tid, status, __WALL);
	}
	return r;
}

/* A wait within a stop's deadline (the timer stays armed for the next
 * wait, disarmed by hp_pt_set_deadline(0)), or alone. */
static pid_t wait_bounded(const struct hp_thread *t, int *status)
{
	pid_t r;

	if (pt_deadline)
		return wait_until(t, status, pt_deadline);
	r = wait_until(t, status, hp_now_us() + HP_PT_WAIT_MAX_US);
	wake_disarm();
	return r;
}

static void restore_signals(const struct hp_thread *t, uint64_t *saved);

int hp_pt_seize(struct hp_thread *t)
{
	pid_t tracer;
	int rc;

	/* TRACEEXEC: a thread of ours that execs reports an event stop,
	 * not the SIGTRAP the kernel otherwise sends it (which, delivered,
	 * would kill the new program). */
	if (!ptrace(PTRACE_SEIZE, t->tid, 0, (void *)PTRACE_O_TRACEEXEC)) {
		t->seized = true;
		return 0;
	}
	rc = -errno;
	/* The kernel refuses a thread that is exiting with EPERM, as it
	 * refuses one that another tracer holds: tell them apart. */
	if (rc == -ESRCH || (rc == -EPERM && hp_task_gone(t->tid)))
		return -ESRCH;
	tracer = rc == -EPERM ? hp_task_tracer(t->tid) : 0;
	/* Ours still: a thread an earlier try could not stop in time
	 * (hp_pt_release left it attached). */
	if (tracer == getpid()) {
		t->seized = true;
		return 0;
	}
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
		if (status >> 16 == 0) {
			/* The trap of our own step (or the return of our own
			 * call to address 0), come in after its bound: the
			 * stop we wait for. Detaching from it drops it. */
			if (own_signal(t, WSTOPSIG(status))) {
				t->stopped = true;
				return 0;
			}
			if (ptrace(PTRACE_CONT, t->tid, 0,
				   (void *)(long)WSTOPSIG(status)) < 0)
				return errno == ESRCH ? -ESRCH : -errno;
			continue;
		}
		t->stopped = true;
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

static int peek_user(pid_t tid, size_t off, unsigned long long *out)
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
	return peek_user(t->tid, offsetof(struct user_regs_struct, rip),
			 &t->regs.rip)
		       ?: peek_user(t->tid,
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
	if (!t->seized)
		return;
	hp_pt_inject_end(t);
	/* Only a stopped thread can be detached: a running one gives ESRCH
	 * and stays ours until we exit (and cannot be seized again, to undo
	 * a failed apply say). A thread seized but not stopped, on a failure
	 * path, is stopped first; one that exited meanwhile is done. */
	if (!t->stopped) {
		const uint64_t saved = pt_deadline;
		int rc = hp_pt_interrupt(t);

		/* A thread that did not stop in time is not waited for
		 * again: if it stops now, it is let go; else it stays
		 * attached, its interrupt pending, until a later try stops
		 * it or hpatch exits (the kernel lets it go then). */
		/* One left inside our instruction gets longer: caught on
		 * its way back, it gets its own registers again. */
		pt_deadline = hp_now_us() + (t->owes_mask ? 500000 : 10000);
		if (!rc)
			rc = hp_pt_wait_stop(t);
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
			t->seized = false;
			return;
		}
		/* Back from our call at last: its own registers again. */
		if (!rc && t->owes_regs &&
		    ptrace(PTRACE_SETREGS, t->tid, 0, &t->owed_regs) < 0)
			hp_warn("tid %d: cannot restore registers: %s",
				(int)t->tid, strerror(errno));
		if (!rc && t->owes_mask)
			restore_signals(t, &t->owed_mask);
		t->owes_regs = t->owes_mask = false;
		if (rc) {
			t->dead = t->seized; /* not reaped yet */
			t->seized = false;
			return;
		}
	}
	/* Detaching resumes the thread and cancels any pending interrupt.
	 * ESRCH: killed while stopped (SIGKILL needs no tracer), to reap. */
	if (ptrace(PTRACE_DETACH, t->tid, 0, 0) < 0) {
		if (errno == ESRCH)
			t->dead = true;
		else
			hp_warn("tid %d: detach: %s", (int)t->tid,
				strerror(errno));
	}
	t->seized = false;
	t->stopped = false;
	t->has_regs = false;
	t->has_seccomp_mode = false;
	t->has_ip = false;
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

/*
 * While a thread runs only our instructions (an injected call, steps out
 * of a jump site), every signal sent to it waits, queued as it was sent
 * (real-time ones not merged, each with its siginfo): its mask blocks all
 * (PTRACE_SETSIGMASK, SIGKILL and SIGSTOP aside) and is restored after.
 * A signal the steps themselves raise (SIGSEGV, SIGILL, SIGBUS: the code
 * was not what we took it for, or an exec replaced it) is hpatch's doing,
 * not the program's: it is never delivered (we resume with signal 0).
 */
static int block_signals(const struct hp_thread *t, uint64_t *saved)
{
	uint64_t all = ~0ULL;

	if (ptrace(PTRACE_GETSIGMASK, t->tid, (void *)sizeof(*saved), saved) <
		    0 ||
	    ptrace(PTRACE_SETSIGMASK, t->tid, (void *)sizeof(all), &all) < 0)
		return -errno;
	return 0;
}

static void restore_signals(const struct hp_thread *t, uint64_t *saved)
{
	if (ptrace(PTRACE_SETSIGMASK, t->tid, (void *)sizeof(*saved), saved) <
		    0 &&
	    errno != ESRCH)
		hp_warn("tid %d: cannot restore its signal mask: %s",
			(int)t->tid, strerror(errno));
}

/* Whether the instruction at @t's rip is a syscall (0f 05). */
static bool at_syscall(const struct hp_thread *t)
{
	unsigned long long ip = 0;
	long word;

	if (peek_user(t->tid, offsetof(struct user_regs_struct, rip), &ip))
		return false;
	errno = 0;
	word = ptrace(PTRACE_PEEKTEXT, t->tid, (void *)ip, 0);
	return !errno && (word & 0xffff) == 0x050f;
}

/* Until @t has a stop to report (seen, not waited for: it stays to be
 * reported), or @deadline. */
static void until_reported(const struct hp_thread *t, uint64_t deadline)
{
	siginfo_t si = { 0 };

	while (!waitid(P_PID, (id_t)t->tid, &si,
		       WSTOPPED | WEXITED | WNOWAIT | WNOHANG | __WALL) &&
	       !si.si_pid && hp_now_us() < deadline)
		usleep(100);
}

/*
 * For tests (hp_rt_set_faults): start the step of @t as one that outlives
 * its bound. "call": the bound passes at once, the step just started;
 * "call-late": it passes just after the step ended, its trap reported
 * but not yet waited for; "call-queued" (a system call's step): it passes
 * while the call runs in the kernel, so that the step's trap is queued
 * behind the interrupt's stop, reported (not waited for) when the bound
 * has passed. Return: 1 (the bound has passed; the step runs, or ran),
 * 0 (no fault: step as usual), -errno.
 */
static int step_fault(struct hp_thread *t)
{
	const uint64_t deadline = hp_now_us() + pt_call_max_us;
	int status;
	pid_t r;

	if (hp_rt_fault("call"))
		return ptrace(PTRACE_SINGLESTEP, t->tid, 0, 0) < 0 ? -errno : 1;
	if (hp_rt_fault("call-late")) {
		if (ptrace(PTRACE_SINGLESTEP, t->tid, 0, 0) < 0)
			return -errno;
		until_reported(t, deadline);
		return 1;
	}
	if (!hp_rt_fault("call-queued"))
		return 0;
	if (!at_syscall(t))
		return -EINVAL; /* no call to hold at its entry */
	/* Held at the call's entry, the interrupt is pending before the
	 * call runs: it stops the thread on its way out, ahead of the
	 * step's trap, which the call's end queues. */
	if (ptrace(PTRACE_SYSCALL, t->tid, 0, 0) < 0)
		return -errno;
	r = wait_until(t, &status, deadline);
	wake_disarm();
	if (r <= 0)
		return r < 0 ? -errno : -ETIMEDOUT;
	if (!WIFSTOPPED(status) || (WSTOPSIG(status) & 0x7f) != SIGTRAP)
		return -EPROTO;
	if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0 ||
	    ptrace(PTRACE_SINGLESTEP, t->tid, 0, 0) < 0)
		return -errno;
	until_reported(t, deadline); /* back from the kernel, stopped */
	return 1;
}

/*
 * One single step of @t. Return: 0 (stopped by the step's trap, or by a
 * stop that ran nothing), -ESRCH, -errno, or -HP_E_INJECT with *@sig the
 * signal the step raised.
 */
static int step_once(struct hp_thread *t, struct user_regs_struct *regs,
		     int *sig)
{
	const uint64_t deadline = hp_now_us() + pt_call_max_us;
	int status, rc = step_fault(t);
	pid_t r;

	if (rc < 0)
		return rc;
	if (!rc && ptrace(PTRACE_SINGLESTEP, t->tid, 0, 0) < 0)
		return -errno;
	r = !rc ? wait_until(t, &status, deadline) : 0;
	wake_disarm();
	if (r == 0) {
		/* Still running our instruction, in the kernel: it stops
		 * on its way back to user space, if we are still there. */
		t->stopped = false;
		return ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0 &&
				       errno == ESRCH
			       ? -ESRCH
			       : -ETIMEDOUT;
	}
	if (r < 0)
		return -errno;
	if (WIFEXITED(status) || WIFSIGNALED(status)) {
		t->seized = false;
		return -ESRCH;
	}
	if (ptrace(PTRACE_GETREGS, t->tid, 0, regs) < 0)
		return -errno;
	*sig = WIFSTOPPED(status) && status >> 16 == 0 ? WSTOPSIG(status) : 0;
	return *sig && *sig != SIGTRAP ? -HP_E_INJECT : 0;
}

/*
 * A call or step that outlived its bound: the thread sleeps in the kernel
 * inside our instruction, and only a stopped thread's registers and mask
 * can be set. It stays attached with an interrupt pending; should it come
 * back before hpatch lets go (hp_pt_release waits half a second more for
 * it), @regs (NULL: its registers are its own, a step's) and @mask are put
 * back. Else, once hpatch exits, it
 * runs on from our instruction with our registers (the injected call's
 * result lost) and every signal blocked: said, naming it, as busy (exit 4),
 * never waited for without end.
 */
static int owed(struct hp_thread *t, const struct user_regs_struct *regs,
		uint64_t mask, const char *what)
{
	char state[160];

	t->owes_regs = regs != NULL;
	if (regs)
		t->owed_regs = *regs;
	t->owes_mask = true;
	t->owed_mask = mask;
	hp_task_state(t->tid, state, sizeof(state));
	hp_error(-HP_E_BUSY,
		 "tid %d: still inside hpatch's %s after %llu ms (%s); its "
		 "registers and signal mask are put back only if it returns "
		 "before hpatch exits",
		 (int)t->tid, what, (unsigned long long)(pt_call_max_us / 1000),
		 state);
	hp_hint("it waits in the kernel (a hung file system, memory "
		"pressure?): if it returns after hpatch has exited, it runs "
		"on with hpatch's registers; restart the process then");
	return -HP_E_BUSY;
}

/*
 * Before our instructions run in @t: its registers and signal mask set
 * aside, its signals blocked. Return: 0 or -errno.
 */
static int save_thread(struct hp_thread *t, struct user_regs_struct *saved,
		       uint64_t *mask)
{
	if (ptrace(PTRACE_GETREGS, t->tid, 0, saved) < 0)
		return -errno;
	return block_signals(t, mask);
}

/*
 * After them: every register and the mask as they were. An exited thread
 * needs neither. Return: 0 or -errno, reported.
 */
static int restore_thread(struct hp_thread *t,
			  const struct user_regs_struct *saved, uint64_t *mask)
{
	int rc = 0;

	if (ptrace(PTRACE_SETREGS, t->tid, 0, saved) < 0 && errno != ESRCH)
		rc = hp_error_rc(-errno, "tid %d: cannot restore registers",
				 (int)t->tid);
	restore_signals(t, mask);
	return rc;
}

/*
 * The registers that run our instructions at @ip: @saved's, with
 * orig_rax = -1, which keeps the kernel from "restarting" our injected
 * call when the thread was stopped inside a system call of its own;
 * restoring every register afterwards (orig_rax and rax = -ERESTART*
 * included) lets the kernel restart that call exactly as after any stop.
 */
static void inject_regs(struct user_regs_struct *regs,
			const struct user_regs_struct *saved, hp_raddr_t ip,
			unsigned long long rax)
{
	*regs = *saved;
	regs->rip = ip;
	regs->rax = rax;
	regs->orig_rax = (unsigned long long)-1;
}

int hp_pt_inject_begin(struct hp_thread *t)
{
	if (t->injecting)
		return 0;
	if (ptrace(PTRACE_GETREGS, t->tid, 0, &t->inj_regs) < 0 ||
	    ptrace(PTRACE_GETSIGMASK, t->tid, (void *)sizeof(t->inj_mask),
		   &t->inj_mask) < 0)
		return -errno;
	t->injecting = true;
	return 0;
}

void hp_pt_inject_end(struct hp_thread *t)
{
	t->injecting = false;
}

/* One system call through the "syscall" at @insn; the caller restores. */
static int syscall_once(struct hp_thread *t,
			const struct user_regs_struct *saved, uint64_t mask,
			hp_raddr_t insn, long nr, const long args[6], long *ret)
{
	struct user_regs_struct regs;
	int rc, sig = 0, tries = 0;

	inject_regs(&regs, saved, insn, (unsigned long long)nr);
	regs.rdi = (unsigned long long)args[0];
	regs.rsi = (unsigned long long)args[1];
	regs.rdx = (unsigned long long)args[2];
	regs.r10 = (unsigned long long)args[3];
	regs.r8 = (unsigned long long)args[4];
	regs.r9 = (unsigned long long)args[5];
	if (ptrace(PTRACE_SETREGS, t->tid, 0, &regs) < 0)
		return -errno;
	/* A stop that ran nothing (a group stop) leaves rip at insn. */
	while (!(rc = step_once(t, &regs, &sig)) && regs.rip != insn + 2)
		if (regs.rip != insn || ++tries > 16) {
			rc = -HP_E_INJECT;
			break;
		}
	if (rc == -ETIMEDOUT)
		return owed(t, saved, mask, "injected system call");
	if (rc == -HP_E_INJECT)
		hp_error(rc,
			 "tid %d: the injected system call %ld %s at 0x%llx "
			 "(signal %d, not delivered); its registers are "
			 "restored",
			 (int)t->tid, nr, sig ? "faulted" : "went astray",
			 regs.rip, sig);
	else if (rc && rc != -ESRCH)
		hp_error_rc(rc, "tid %d: injected system call %ld", (int)t->tid,
			    nr);
	if (!rc)
		*ret = (long)regs.rax;
	hp_dbg(HP_DBG_PTRACE, "tid %d: syscall %ld -> %ld (rc %d)", (int)t->tid,
	       nr, rc ? 0 : *ret, rc);
	return rc;
}

/*
 * Every call restores the thread's registers and mask at once, in a run
 * too: a loader killed (-9) between two calls leaves the thread as it
 * was, never running on with ours (hpatchd_crash.sh). A run saves only
 * reading them again.
 */
int hp_pt_syscall(struct hp_thread *t, hp_raddr_t insn, long nr,
		  const long args[6], long *ret)
{
	const bool run = t->injecting;
	const uint64_t all = ~0ULL;
	int rc = hp_seccomp_check(t, insn, nr, args), rrc;

	if (!rc)
		rc = hp_pt_inject_begin(t);
	if (!rc &&
	    ptrace(PTRACE_SETSIGMASK, t->tid, (void *)sizeof(all), &all) < 0)
		rc = -errno;
	if (rc)
		goto out;
	rc = syscall_once(t, &t->inj_regs, t->inj_mask, insn, nr, args, ret);
	if (rc == -ESRCH || t->owes_mask) {
		t->injecting = false;
		return rc;
	}
	rrc = restore_thread(t, &t->inj_regs, &t->inj_mask);
	rc = rc ?: rrc;
out:
	if (!run)
		hp_pt_inject_end(t);
	return rc;
}

int hp_pt_step(struct hp_thread *t)
{
	uint64_t mask = 0;
	int rc = block_signals(t, &mask), sig = 0;

	if (rc)
		return rc;
	/* A stop that ran nothing (a group stop) is stepped again. */
	for (int tries = 0; tries < 16; tries++) {
		rc = step_once(t, &t->regs, &sig);
		if (rc == -ETIMEDOUT)
			return owed(t, NULL, mask, "single step");
		t->has_regs = !rc;
		if (rc || sig == SIGTRAP)
			break;
		rc = -HP_E_INJECT;
	}
	if (rc == -HP_E_INJECT)
		hp_error(rc,
			 "tid %d: stepping out of a jump site %s at 0x%llx "
			 "(signal %d, not delivered)",
			 (int)t->tid, sig ? "faulted" : "made no progress",
			 t->regs.rip, sig);
	if (rc != -ESRCH)
		restore_signals(t, &mask);
	return rc;
}

/*
 * Until the call hp_pt_call started in @t returns (to address 0), faults,
 * or runs past @timeout_us (and, unless then waiting on a futex, ten times
 * that); *@regs as it stopped. Return: 0, -HP_E_INJECT, -ETIMEDOUT,
 * -EINPROGRESS (interrupted, it would not stop either: still in the
 * kernel), -ESRCH, -errno (a ptrace or wait failure).
 */
static int wait_call(struct hp_thread *t, uint64_t timeout_us,
		     struct user_regs_struct *regs, int *status)
{
	uint64_t deadline = hp_now_us() + timeout_us;
	bool extended = false;
	int rc = 0;

	for (;;) {
		/* One blocking wait, ended by the call's stop or the bound. */
		pid_t r = wait_until(t, status, deadline);

		wake_disarm();
		if (r < 0)
			return -errno;
		if (r == 0) {
			/* Too long: stop it where it is, within a bound too
			 * (asleep in the kernel, it stops only on its way
			 * out). */
			if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0)
				return -errno;
			r = wait_until(t, status, hp_now_us() + pt_call_max_us);
			wake_disarm();
			if (r < 0)
				return -errno;
			if (r == 0) {
				t->stopped = false;
				return -EINPROGRESS;
			}
			rc = -ETIMEDOUT;
		}
		if (WIFEXITED(*status) || WIFSIGNALED(*status)) {
			t->seized = false;
			return -ESRCH;
		}
		if (ptrace(PTRACE_GETREGS, t->tid, 0, regs) < 0)
			return -errno;
		/* Midway through the call, not waiting for a lock: abandoning
		 * it could leave one held. It gets ten times longer. */
		if (rc == -ETIMEDOUT && regs->orig_rax != SYS_futex &&
		    !extended) {
			extended = true;
			deadline = hp_now_us() + 10 * timeout_us;
			rc = 0;
			if (ptrace(PTRACE_CONT, t->tid, 0, 0) < 0)
				return -errno;
			continue;
		}
		if (rc == -ETIMEDOUT)
			return rc;
		if (WIFSTOPPED(*status) && WSTOPSIG(*status) == SIGSEGV &&
		    regs->rip == 0)
			return 0; /* returned */
		if (WIFSTOPPED(*status) && *status >> 16 == 0 &&
		    WSTOPSIG(*status) != SIGTRAP &&
		    WSTOPSIG(*status) != SIGSTOP)
			return -HP_E_INJECT;
		/* A group stop or event: let the call go on. */
		if (ptrace(PTRACE_CONT, t->tid, 0, 0) < 0)
			return -errno;
	}
}

/*
 * A function call in stopped @t while the process's other threads run:
 * @fn(@args[0], @args[1]) on the thread's stack below its red zone,
 * returning to address 0, whose fault (never delivered) ends the call.
 * Every register is restored after, so an interrupted system call of the
 * thread restarts as after any stop (orig_rax = -1 keeps the kernel from
 * restarting it into our call). Signals wait, blocked, as for a system
 * call. Bounded by @timeout_us: a call still running then is interrupted
 * and, unless it was waiting on a futex (a lock it does not hold yet),
 * left to finish by letting the thread go with its registers.
 * Return: 0 with *@ret the function's rax, -HP_E_INJECT (it faulted),
 * -ETIMEDOUT, -ESRCH, -errno.
 */
int hp_pt_call(struct hp_thread *t, hp_raddr_t fn, const long args[2],
	       uint64_t timeout_us, long *ret)
{
	struct user_regs_struct saved, regs;
	uint64_t mask = 0, zero = 0;
	int rc = save_thread(t, &saved, &mask), rrc, status = 0;

	if (rc)
		return rc;
	inject_regs(&regs, &saved, fn, 0);
	regs.rsp = ((saved.rsp - 256) & ~15ULL) - 8; /* as after a call */
	regs.rdi = (unsigned long long)args[0];
	regs.rsi = (unsigned long long)args[1];
	if (ptrace(PTRACE_POKEDATA, t->tid, (void *)regs.rsp, (void *)zero) <
		    0 ||
	    ptrace(PTRACE_SETREGS, t->tid, 0, &regs) < 0 ||
	    ptrace(PTRACE_CONT, t->tid, 0, 0) < 0) {
		rc = -errno;
		goto out_restore;
	}
	rc = wait_call(t, timeout_us, &regs, &status);
	if (rc == -EINPROGRESS)
		return owed(t, &saved, mask, "injected call");
	if (rc && rc != -ETIMEDOUT && rc != -HP_E_INJECT)
		return rc;
	if (rc == -ETIMEDOUT)
		hp_error(rc,
			 "tid %d: the injected call of 0x%llx did not return "
			 "(at 0x%llx%s); abandoned, registers restored",
			 (int)t->tid, (unsigned long long)fn, regs.rip,
			 regs.orig_rax == SYS_futex ? ", waiting for a lock"
						    : ", running");
	if (!rc)
		*ret = (long)regs.rax;
	else if (rc == -HP_E_INJECT)
		hp_error(rc,
			 "tid %d: the injected call of 0x%llx faulted at "
			 "0x%llx (signal %d, not delivered); its registers "
			 "are restored",
			 (int)t->tid, (unsigned long long)fn, regs.rip,
			 WSTOPSIG(status));
out_restore:
	rrc = restore_thread(t, &saved, &mask);
	return rc ?: rrc;
}
