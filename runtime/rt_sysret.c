/*
 * An injected system call that no kill of hpatch can make harm the
 * thread it runs in (hp_pt_sysret): made at the "syscall; ret" of the
 * target's C library, returning to its signal restorer over a frame of
 * the thread's own state (rt_call_left.c's), run under PTRACE_SYSCALL,
 * never single-stepped.
 */
#include "runtime/rt_inject.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#define HP_LOG_PREFIX "rt: "

/*
 * From any stop of its system call, @t goes on with its own registers,
 * orig_rax the call it was stopped in as a restart makes it again
 * (hp_pt_own_regs; -1: none due). At the call's entry stop, the kernel
 * makes orig_rax's call (-1: none, rax kept: arch/x86/entry/common.c,
 * do_syscall_64); at an interrupt's stop (or any other, with our
 * interrupt's signal work pending), arch_do_signal_or_restart
 * (arch/x86/kernel/signal.c) restarts it as after any stop.
 */

/*
 * End @t's system call, stopped at its entry (a fault, a test's) or at a
 * stop that ran nothing: its mask, then, with an interrupt pending, its
 * registers (hp_pt_own_regs), then parked (as hp_pt_park) in the stop it was
 * seized in. The interrupt comes first: it sets TIF_SIGPENDING
 * (kernel/ptrace.c, ptrace_request: ptrace_signal_wake_up), which a
 * tracer's death does not clear (__ptrace_unlink clears the trap alone)
 * and without which the return from a system call skips the restart
 * (kernel/entry/common.c, exit_to_user_mode_loop). Return: 0, -ESRCH,
 * -errno.
 */
static int sys_end(struct hp_thread *t)
{
	struct user_regs_struct regs;

	hp_pt_own_regs(&t->inj_regs, &regs);
	hp_pt_restore_signals(t, &t->inj_mask);
	if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0 ||
	    ptrace(PTRACE_SETREGS, t->tid, 0, &regs) < 0 ||
	    ptrace(PTRACE_CONT, t->tid, 0, 0) < 0)
		return errno == ESRCH ? -ESRCH : -errno;
	t->stopped = false;
	return hp_pt_wait_stop(t);
}

/*
 * @t, resumed for its system call, not back within HP_STEP_LOOK_US and in
 * a frozen cgroup (hp_pt_frozen_wait). Stopped without having entered the
 * call: -HP_E_BUSY (said). Return: that, 0 with *@status its stop (it
 * ran, thawed meanwhile), -ETIMEDOUT, -errno.
 */
static int sys_frozen(struct hp_thread *t, int *status)
{
	const int rc = hp_pt_frozen_wait(t, status);

	if (!rc && WIFSTOPPED(*status) && *status >> 16 == PTRACE_EVENT_STOP)
		return hp_pt_frozen_busy(t);
	return rc;
}

/* A system call made at the "syscall; ret" at @at: call @nr. */
struct sys_at {
	hp_raddr_t at;
	long nr;
};

/*
 * @t, resumed for its system call @c, stopped: its registers and the
 * stop's signal into @regs, @sig. Its entry (@entry: its system-call stop
 * at c->at + 2, orig_rax c->nr) or end (else: an interrupt's stop, or a
 * group stop's, there): 1; before its entry, another stop (a group stop):
 * resumed again (PTRACE_SYSCALL), 0; else (a signal: its code faulted)
 * -HP_E_INJECT.
 */
static int sys_stopped(struct hp_thread *t, int status, bool entry,
		       const struct sys_at *c, struct user_regs_struct *regs,
		       int *sig)
{
	int rc = hp_pt_call_stopped(t, status, regs, sig);

	if (rc)
		return rc;
	if (entry && *sig == HP_SYSCALL_STOP && regs->rip == c->at + 2 &&
	    (long)regs->orig_rax == c->nr)
		return 1;
	if (!entry) { /* (nothing else can stop it: all is blocked) */
		if (status >> 16 != PTRACE_EVENT_STOP || regs->rip != c->at + 2)
			return -HP_E_INJECT;
		t->stopped = true;
		t->group_stop = WSTOPSIG(status) != SIGTRAP;
		return 1;
	}
	if (*sig && *sig != SIGTRAP && *sig != SIGSTOP)
		return -HP_E_INJECT;
	if (ptrace(PTRACE_SYSCALL, t->tid, 0, 0) < 0)
		return errno == ESRCH ? -ESRCH : -errno;
	return 0;
}

/*
 * Run @t, set at the "syscall; ret" at @at for system call @nr, within the
 * bound of a call: under PTRACE_SYSCALL to its entry's stop, then on
 * (PTRACE_CONT) with an interrupt pending, which stops it on its way out
 * of the call, before it runs an instruction (kernel/signal.c,
 * get_signal: do_jobctl_trap), in the stop a seized thread waits in (as
 * hp_pt_park's): no stop at its exit, none to park it after. The test
 * delay "sys-run" holds hpatch at the entry's stop. The call's own
 * interruptible sleeps (none in mmap, mprotect, munmap: their
 * mmap_write_lock_killable waits for a fatal signal only) would end at
 * once with the interrupt's TIF_SIGPENDING. Return: 0 (@regs: back from
 * it, stopped), -ETIMEDOUT (the bound passed: interrupted, not stopped),
 * -HP_E_BUSY (frozen, said), -HP_E_INJECT (stopped by signal @sig),
 * -ESRCH, -errno.
 */
static int sys_wait(struct hp_thread *t, hp_raddr_t at, long nr,
		    struct user_regs_struct *regs, int *sig)
{
	const uint64_t deadline = hp_now_us() + hp_pt_call_max_us;
	const struct sys_at c = { at, nr };
	uint64_t look = hp_now_us() + HP_STEP_LOOK_US;
	bool entry = true;
	/* (Tests: past its bound; hp_pt_bound_fault.) */
	int rc = hp_pt_bound_fault(t, PTRACE_SYSCALL, PTRACE_CONT), status;

	if (rc < 0)
		return rc;
	if (!rc && ptrace(PTRACE_SYSCALL, t->tid, 0, 0) < 0)
		return -errno;
	if (rc)
		goto late;
	for (;;) {
		pid_t r =
			hp_pt_wait_resumed(t, &status, look ? look : deadline);

		hp_pt_wake_disarm();
		if (r == 0 && look && entry && hp_task_frozen(t->tid)) {
			rc = sys_frozen(t, &status);
			if (rc == -ETIMEDOUT)
				goto late;
			if (rc)
				return rc;
			r = t->tid;
		}
		if (r == 0 && look) {
			look = 0;
			continue;
		}
		if (r == 0)
			goto late;
		if (r < 0)
			return -errno;
		rc = sys_stopped(t, status, entry, &c, regs, sig);
		if (rc < 0)
			return rc;
		if (rc && !entry)
			return 0;
		if (rc) {
			rc = hp_rt_fault("sys-run");
			if (rc)
				return rc;
			if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0 ||
			    ptrace(PTRACE_CONT, t->tid, 0, 0) < 0)
				return errno == ESRCH ? -ESRCH : -errno;
			entry = false;
			look = 0;
		}
	}
late:
	/* Still inside, in the kernel: it stops on its way back to user
	 * space, if we are still there; else its frame returns it. */
	t->stopped = false;
	return ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0 && errno == ESRCH
		       ? -ESRCH
		       : -ETIMEDOUT;
}

/* Is @rax an error the kernel restarts a call for, never a result
 * (-ERESTARTSYS .. -ERESTART_RESTARTBLOCK)? Ours, interrupted. */
static bool restart_due(unsigned long long rax)
{
	return (long long)rax >= -516 && (long long)rax <= -512;
}

/*
 * @t, back from its system call in our interrupt's stop: its mask, then
 * its registers, as they were. That stop is the one it was parked in:
 * resumed, it restarts a system call of its own as after any (kernel/
 * signal.c, get_signal, then arch_do_signal_or_restart). A loader
 * killed before the registers are set lets it return through its frame.
 * Return: 0, -ESRCH, -errno.
 */
static int sys_back(struct hp_thread *t)
{
	hp_pt_restore_signals(t, &t->inj_mask);
	if (ptrace(PTRACE_SETREGS, t->tid, 0, &t->inj_regs) < 0)
		return errno == ESRCH ? -ESRCH : -errno;
	return 0;
}

int hp_pt_sysret(struct hp_thread *t, const struct hp_sys_site *s, long nr,
		 const long args[6], long *ret)
{
	const struct user_regs_struct *saved = &t->inj_regs;
	const uint64_t since = hp_now_us();
	struct user_regs_struct regs;
	struct hp_call_frame f;
	struct hp_call_fpu fp;
	int rc = hp_pt_fpu_state(t, &fp), rrc, sig = 0;

	if (rc)
		return rc == -ESRCH ? rc : 1;
	hp_pt_call_frame_at(&f, saved->rsp, fp.len);
	/* Not on a stack whose end is known to lie below the frame (a
	 * goroutine's, a signal stack in .bss): stepped, writing nothing. */
	if (!s->proc || !hp_stack_room(s->proc, saved->rsp, f.slot))
		return 1;
	if (hp_pt_sigreturn_frame(t, &f, saved, t->inj_mask, &fp, s->restorer))
		return 1; /* (its stack not writable there: stepped) */
	hp_pt_syscall_regs(&regs, saved, s->sysret, nr, args);
	regs.rsp = f.slot; /* the restorer on top, as after a call */
	if (ptrace(PTRACE_SETREGS, t->tid, 0, &regs) < 0)
		return errno == ESRCH ? -ESRCH : -errno;
	rc = hp_rt_fault("sys-start");
	if (!rc)
		rc = sys_wait(t, s->sysret, nr, &regs, &sig);
	if (rc == -ETIMEDOUT) {
		hp_pt_own_regs(&t->inj_regs, &regs);
		return hp_pt_owed_framed(t, &regs, t->inj_mask, since);
	}
	if (rc == -ESRCH)
		return rc;
	/* (Back, in the interrupt's stop.) */
	if (!rc)
		rc = hp_rt_fault("sys-exit");
	if (rc == -HP_E_INJECT)
		hp_error(rc,
			 "tid %d: the injected system call %ld stopped at "
			 "0x%llx (signal %d, not delivered); its registers are "
			 "restored",
			 (int)t->tid, nr, regs.rip, sig);
	else if (rc && rc != -HP_E_BUSY && rc != -HP_E_FAULT)
		hp_error_rc(rc, "tid %d: injected system call %ld", (int)t->tid,
			    nr);
	if (!rc)
		*ret = restart_due(regs.rax) ? -EINTR : (long)regs.rax;
	hp_dbg(HP_DBG_PTRACE, "tid %d: syscall %ld -> %ld (rc %d)", (int)t->tid,
	       nr, rc ? 0 : *ret, rc);
	if (rc)
		rrc = sys_end(t);
	else
		rrc = sys_back(t);
	return rc ?: (rrc == -ESRCH ? 0 : rrc);
}
