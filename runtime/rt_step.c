/*
 * One single step of a stopped thread, bounded: a thread that stays in
 * the kernel is interrupted, one in a frozen cgroup told; and the test
 * faults that make a step outlive its bound (rt_inject.h).
 */
#include "runtime/rt_inject.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#define HP_LOG_PREFIX "rt: "

/* Whether the instruction at @t's rip is a syscall (0f 05). */
static bool at_syscall(const struct hp_thread *t)
{
	unsigned long long ip = 0;
	long word;

	if (hp_pt_peek_user(t->tid, offsetof(struct user_regs_struct, rip),
			    &ip))
		return false;
	errno = 0;
	word = ptrace(PTRACE_PEEKTEXT, t->tid, (void *)ip, 0);
	return !errno && (word & 0xffff) == 0x050f;
}

/* Until @t has a stop to report (seen, not waited for: it stays to be
 * reported), or @deadline. */
void hp_pt_until_reported(const struct hp_thread *t, uint64_t deadline)
{
	siginfo_t si = { 0 };

	while (!waitid(P_PID, (id_t)t->tid, &si,
		       WSTOPPED | WEXITED | WNOWAIT | WNOHANG | __WALL) &&
	       !si.si_pid && hp_now_us() < deadline)
		usleep(100);
}

/*
 * For tests (hp_rt_set_faults): start the step (or system call) of @t as
 * one that outlives its bound, resumed with @first. "call": the bound
 * passes at once, just resumed; "call-late": it passes just after the
 * step ended (a call's entry), its stop reported but not yet waited for;
 * "call-queued" (a system call's): it passes while the call runs in the
 * kernel: held at its entry, resumed with @then and an interrupt
 * pending, so that its end (a step's trap) is queued behind the
 * interrupt's stop, or that stop comes, reported (not waited for) when
 * the bound has passed; "call-left": so, and the thread is then left
 * attached (hp_pt_fault_leave), as one that stayed inside the call.
 * Return: 1 (the bound has passed; it runs, or ran), 0 (no fault: as
 * usual), -errno.
 */
int hp_pt_bound_fault(struct hp_thread *t, int first, int then)
{
	const uint64_t deadline = hp_now_us() + hp_pt_call_max_us;
	int status;
	pid_t r;

	if (hp_rt_fault("call"))
		return ptrace(first, t->tid, 0, 0) < 0 ? -errno : 1;
	if (hp_rt_fault("call-late")) {
		if (ptrace(first, t->tid, 0, 0) < 0)
			return -errno;
		hp_pt_until_reported(t, deadline);
		return 1;
	}
	hp_pt_fault_leave = hp_rt_fault("call-left") != 0;
	if (!hp_pt_fault_leave && !hp_rt_fault("call-queued"))
		return 0;
	if (!at_syscall(t))
		return -EINVAL; /* no call to hold at its entry */
	/* Held at the call's entry, the interrupt is pending before the
	 * call runs: it stops the thread on its way out, ahead of the
	 * step's trap, which the call's end queues. */
	if (ptrace(PTRACE_SYSCALL, t->tid, 0, 0) < 0)
		return -errno;
	r = hp_pt_wait_until(t, &status, deadline);
	hp_pt_wake_disarm();
	if (r <= 0)
		return r < 0 ? -errno : -ETIMEDOUT;
	if (!WIFSTOPPED(status) || (WSTOPSIG(status) & 0x7f) != SIGTRAP)
		return -EPROTO;
	if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0 ||
	    ptrace(then, t->tid, 0, 0) < 0)
		return -errno;
	hp_pt_until_reported(t, deadline); /* back from the kernel, stopped */
	return 1;
}

/* @t, in a step or call, reported @status: its registers, and the signal that
 * stopped it (0: a stop for no signal). Return: 0, -ESRCH, -errno. */
int hp_pt_call_stopped(struct hp_thread *t, int status,
		       struct user_regs_struct *regs, int *sig)
{
	if (WIFEXITED(status) || WIFSIGNALED(status)) {
		t->seized = false;
		return -ESRCH;
	}
	if (ptrace(PTRACE_GETREGS, t->tid, 0, regs) < 0)
		return -errno;
	*sig = WIFSTOPPED(status) && status >> 16 == 0 ? WSTOPSIG(status) : 0;
	return 0;
}

/* @t reported @status after a step: its registers, and the signal that
 * stopped it, if one (a trap, or a fault: -HP_E_INJECT). */
static int step_stopped(struct hp_thread *t, int status,
			struct user_regs_struct *regs, int *sig)
{
	int rc = hp_pt_call_stopped(t, status, regs, sig);

	if (rc)
		return rc;
	return *sig && *sig != SIGTRAP ? -HP_E_INJECT : 0;
}

int hp_pt_frozen_busy(const struct hp_thread *t)
{
	return hp_error(-HP_E_BUSY,
			"tid %d: its cgroup is frozen (docker pause, "
			"systemctl freeze): it runs nothing until thawed; "
			"nothing changed",
			(int)t->tid);
}

int hp_pt_frozen_wait(struct hp_thread *t, int *status)
{
	int err = hp_pt_interrupt(t);
	pid_t r;

	if (err)
		return err;
	r = hp_pt_wait_resumed(t, status, hp_now_us() + hp_pt_stop_max_us);
	err = errno;
	hp_pt_wake_disarm();
	if (r == 0)
		return -ETIMEDOUT;
	return r < 0 ? -err : 0;
}

/*
 * @t, resumed for our instruction, sits in a frozen cgroup instead: back
 * to a stop before it runs it (hp_pt_frozen_wait). v1's freezer stops it
 * for nothing until thawed. Return: -HP_E_BUSY (reported), or as
 * hp_pt_step_once when it stops otherwise (it ran after all, or not in
 * time).
 */
static int frozen_step(struct hp_thread *t, struct user_regs_struct *regs,
		       int *sig)
{
	int status, rc = hp_pt_frozen_wait(t, &status);

	if (rc == -ETIMEDOUT)
		t->stopped = false;
	if (rc)
		return rc;
	rc = step_stopped(t, status, regs, sig);
	if (rc || *sig) /* its step's trap: it ran, thawed meanwhile */
		return rc;
	return hp_pt_frozen_busy(t);
}

/*
 * One single step of @t. Return: 0 (stopped by the step's trap, or by a
 * stop that ran nothing), -ESRCH, -errno, -HP_E_BUSY (frozen, reported),
 * or -HP_E_INJECT with *@sig the signal the step raised.
 */
int hp_pt_step_once(struct hp_thread *t, struct user_regs_struct *regs,
		    int *sig)
{
	const uint64_t deadline = hp_now_us() + hp_pt_call_max_us;
	const uint64_t look = hp_now_us() + HP_STEP_LOOK_US;
	int status,
		rc = hp_pt_bound_fault(t, PTRACE_SINGLESTEP, PTRACE_SINGLESTEP);
	pid_t r;

	if (rc < 0)
		return rc;
	if (!rc && ptrace(PTRACE_SINGLESTEP, t->tid, 0, 0) < 0)
		return -errno;
	r = !rc ? hp_pt_wait_resumed(t, &status, look) : 0;
	if (r == 0 && !rc) {
		if (hp_task_frozen(t->tid)) {
			hp_pt_wake_disarm();
			return frozen_step(t, regs, sig);
		}
		r = hp_pt_wait_resumed(t, &status, deadline);
	}
	hp_pt_wake_disarm();
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
	return step_stopped(t, status, regs, sig);
}
