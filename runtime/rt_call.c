/*
 * A call of one of the target's functions in a stopped thread while the
 * others run (hp_pt_call): its setup, its wait, its end and what is said
 * of it. The signal frame it returns through is rt_call_left.c's.
 */
#include "runtime/rt_inject.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define HP_LOG_PREFIX "rt: "

/* One injected call (hp_pt_call) and what it has shown so far. */
struct injected_call {
	struct hp_thread *t;
	hp_raddr_t fn;
	const struct hp_call_guard *g;
	/* Where it returns: the C library's signal return, over a frame of
	 * the thread's own state; 0 (none found), address 0, whose fault
	 * ends it. */
	hp_raddr_t restorer;
	struct user_regs_struct saved, regs; /* the thread's; the call's */
	uint64_t mask, since;
	struct hp_call_fpu fp;
	struct hp_call_frame f;
	int status;
};

/* Where a call stopped at @regs is, in words. */
static void call_where(const struct user_regs_struct *regs, char *buf,
		       size_t size)
{
	if (regs->orig_rax == SYS_futex)
		snprintf(buf, size, "waiting on the futex at 0x%llx",
			 regs->rdi);
	else if ((long long)regs->orig_rax >= 0)
		snprintf(buf, size, "in system call %lld",
			 (long long)regs->orig_rax);
	else
		snprintf(buf, size, "running");
}

/*
 * Set @c's call of @args going in its stopped thread: the call's frame
 * below the red zone, returning through the signal frame above it
 * (hp_pt_sigreturn_frame), written before the thread runs any of it: a
 * loader killed (-9) from here on lets the thread go inside the call,
 * which then ends by giving the thread back its own registers, signal
 * mask and FPU state. No signal return found: to address 0. The test
 * delay "call-start" holds hpatch here, the call set and not yet run.
 * Return: 0 or -errno.
 */
static int call_start(struct injected_call *c, const long args[2])
{
	const struct hp_call_guard *g = c->g;
	const uint64_t zero = 0;
	int rc = hp_pt_fpu_state(c->t, &c->fp);

	if (rc)
		return rc;
	c->restorer = g->restorer ? g->restorer(g->arg) : 0;
	hp_pt_inject_regs(&c->regs, &c->saved, c->fn, 0);
	c->since = hp_now_us();
	hp_pt_call_frame_at(&c->f, c->saved.rsp, c->fp.len);
	c->regs.rsp = c->f.slot; /* as after a call */
	c->regs.rdi = (unsigned long long)args[0];
	c->regs.rsi = (unsigned long long)args[1];
	if (c->restorer)
		rc = hp_pt_sigreturn_frame(c->t, &c->f, &c->saved, c->mask,
					   &c->fp, c->restorer);
	else if (ptrace(PTRACE_POKEDATA, c->t->tid, (void *)c->f.slot,
			(void *)zero) < 0)
		rc = -errno;
	if (!rc && ptrace(PTRACE_SETREGS, c->t->tid, 0, &c->regs) < 0)
		rc = -errno;
	if (!rc)
		rc = hp_rt_fault("call-start");
	return rc;
}

/*
 * Has @c's call, stopped for @sig at c->regs, returned: stopped at the
 * entry of its signal return's rt_sigreturn, or faulted at address 0?
 */
static bool call_returned(const struct injected_call *c, int sig)
{
	if (!c->restorer)
		return sig == SIGSEGV && c->regs.rip == 0;
	return sig == HP_SYSCALL_STOP && c->regs.orig_rax == SYS_rt_sigreturn &&
	       c->regs.rip == c->restorer + HP_X86_RESTORER_SIZE;
}

/*
 * For tests (hp_rt_set_faults): "fn-left", @c's call (resumed here)
 * outlives its bound, asleep in the kernel, and so is left attached;
 * it returns meanwhile, having done its work (its end's stop reported,
 * not waited for). Return: -EINPROGRESS (as call_wait's), 0 (no fault),
 * -errno.
 */
static int call_fault(struct injected_call *c, int resume)
{
	struct hp_thread *t = c->t;

	if (!hp_rt_fault("fn-left"))
		return 0;
	if (ptrace(resume, t->tid, 0, 0) < 0)
		return -errno;
	hp_pt_until_reported(t, hp_now_us() + c->g->bound_us);
	t->stopped = false;
	hp_pt_fault_leave = !c->restorer;
	return -EINPROGRESS;
}

/*
 * Run @c's call until it returns (call_returned), faults, or outlives its
 * bound (c->g->bound_us), at which it is stopped where it is: it may hold
 * a lock of the target (libgcc 12's __deregister_frame_info calls free()
 * holding its object mutex), so it is never abandoned for having taken
 * long. Resumed under PTRACE_SYSCALL when it returns through a signal
 * frame, to see that return's system call; the test delay "call-run"
 * holds hpatch first, the call running. c->regs as it stopped. Return: 0,
 * -HP_E_INJECT, -EDEADLK (stopped at its bound), -EINPROGRESS
 * (interrupted, it would not stop: still in the kernel), -ESRCH, -errno.
 */
static int call_wait(struct injected_call *c)
{
	struct hp_thread *t = c->t;
	const uint64_t deadline = c->since + c->g->bound_us;
	const int resume = c->restorer ? PTRACE_SYSCALL : PTRACE_CONT;
	int rc = call_fault(c, resume);

	if (rc)
		return rc;
	if (ptrace(resume, t->tid, 0, 0) < 0)
		return -errno;
	if (hp_rt_fault("call-run")) { /* (a fault: as one not back) */
		t->stopped = false;
		return -EINPROGRESS;
	}
	for (;;) {
		/* One blocking wait, ended by the call's stop or the bound. */
		pid_t r = hp_pt_wait_until(t, &c->status, deadline);
		bool late = r == 0;
		int sig = 0;

		hp_pt_wake_disarm();
		if (r < 0)
			return -errno;
		if (late) {
			/* Too long: stop it where it is, within a bound too
			 * (asleep in the kernel, it stops only on its way
			 * out). */
			if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0)
				return -errno;
			r = hp_pt_wait_until(t, &c->status,
					     hp_now_us() + hp_pt_call_max_us);
			hp_pt_wake_disarm();
			if (r < 0)
				return -errno;
			if (r == 0) {
				t->stopped = false;
				return -EINPROGRESS;
			}
		}
		rc = hp_pt_call_stopped(t, c->status, &c->regs, &sig);
		if (rc)
			return rc;
		if (call_returned(c, sig))
			return 0; /* returned, even as its bound passed */
		if (sig && sig != SIGTRAP && sig != HP_SYSCALL_STOP &&
		    sig != SIGSTOP)
			return -HP_E_INJECT;
		if (late)
			return -EDEADLK;
		/* A group stop or event, a system call: it goes on. */
		if (ptrace(resume, t->tid, 0, 0) < 0)
			return -errno;
	}
}

/*
 * @c's call returned to its signal return, stopped at the entry of its
 * rt_sigreturn: the thread's own signal mask back, then its registers,
 * the system call it was interrupted in made again as a restart would
 * (hp_pt_restart_nr), rt_sigreturn not made. A loader killed before the
 * registers are set lets rt_sigreturn restore the thread from its frame;
 * after, the thread makes its own system call: either way it goes on as
 * it was. Return: 0 or -errno.
 */
static int call_end(struct injected_call *c)
{
	struct user_regs_struct regs;
	int frc;

	/* Its result kept, no system call made (nor a restart due). */
	hp_pt_own_regs(&c->saved, &regs);
	/* Its vector state first: the call's code may have changed it
	 * (free()'s memset: zmm16), which the system call it was stopped in
	 * keeps for it. (A loader killed after: rt_sigreturn restores it
	 * from the frame all the same.) */
	frc = hp_pt_fpu_restore(c->t, &c->fp);
	if (frc)
		hp_warn("tid %d: its FPU and vector state not restored after "
			"hpatch's call (%s): code of its that keeps vector "
			"values across a system call may see them changed; "
			"restart the process if it misbehaves",
			(int)c->t->tid, strerror(-frc));
	hp_pt_restore_signals(c->t, &c->mask);
	if (ptrace(PTRACE_SETREGS, c->t->tid, 0, &regs) < 0)
		return -errno;
	return 0;
}

/* Milliseconds since @c's call started. */
static unsigned long long call_ms(const struct injected_call *c)
{
	return (unsigned long long)((hp_now_us() - c->since) / 1000);
}

/*
 * @c's call, stopped at its bound (@rc -EDEADLK) or asleep in the kernel
 * (-EINPROGRESS), may hold a lock: left to finish on its own, whether
 * hpatch is still there or not, through its signal frame. Without one:
 * -EINPROGRESS owes the thread its registers and mask (hp_pt_owed), and
 * -EDEADLK abandons the call (-ETIMEDOUT: registers to be restored). Return:
 * -HP_E_BUSY (left: t->left_in_call), or as said; said.
 */
static int call_leave(struct injected_call *c, int rc)
{
	struct hp_thread *t = c->t;
	char state[160];

	if (rc == -EINPROGRESS && !c->restorer)
		return hp_pt_owed(t, &c->saved, c->mask, "injected call",
				  c->since);
	if (rc == -EINPROGRESS) {
		hp_task_state(t->tid, state, sizeof(state));
		t->left_in_call = true;
		return hp_error(-HP_E_BUSY,
				"tid %d: still inside hpatch's injected call "
				"after %llu ms (%s): left to finish on its "
				"own; as it returns, the thread goes on where "
				"it was, its registers and signal mask its own",
				(int)t->tid, call_ms(c), state);
	}
	call_where(&c->regs, state, sizeof(state));
	if (c->restorer) {
		t->left_in_call = true;
		return hp_error(-HP_E_BUSY,
				"tid %d: hpatch's call of 0x%llx still runs "
				"after %llu ms (at 0x%llx, %s), maybe holding "
				"a lock: left to finish on its own; as it "
				"returns, the thread goes on where it was, its "
				"registers and signal mask its own",
				(int)t->tid, (unsigned long long)c->fn,
				call_ms(c), c->regs.rip, state);
	}
	rc = hp_error(-ETIMEDOUT,
		      "tid %d: hpatch's call of 0x%llx still runs "
		      "after %llu ms (at 0x%llx, %s), maybe holding a "
		      "lock, and no signal return to leave it with: "
		      "abandoned, registers restored; a lock it took "
		      "stays held",
		      (int)t->tid, (unsigned long long)c->fn, call_ms(c),
		      c->regs.rip, state);
	hp_hint("the process may wait for ever for that lock: "
		"restart it");
	return rc;
}

/*
 * A function call in stopped @t while the process's other threads run:
 * @fn(@args[0], @args[1]) on the thread's stack below its red zone,
 * returning through a signal frame of the thread's own state (call_start)
 * to the C library's signal return, where its end is seen and the
 * thread's registers and mask are put back (call_end): an interrupted
 * system call of the thread restarts as after any stop (orig_rax = -1
 * keeps the kernel from restarting it into our call). Signals wait,
 * blocked, as for a system call. A call is never abandoned once it runs
 * (it may hold a lock): one still running at @g's bound is left to finish
 * on its own (call_leave). A loader killed (-9) at any point leaves the
 * thread to end the call so, or as it was. Return: 0, -HP_E_INJECT (it
 * faulted), -HP_E_BUSY (left inside: t->left_in_call), -ETIMEDOUT
 * (abandoned: no signal return), -ESRCH, -errno.
 */
int hp_pt_call(struct hp_thread *t, hp_raddr_t fn, const long args[2],
	       const struct hp_call_guard *g)
{
	struct injected_call c = { .t = t, .fn = fn, .g = g };
	int rc = hp_pt_save_thread(t, &c.saved, &c.mask), rrc;

	if (rc)
		return rc;
	rc = call_start(&c, args);
	if (rc)
		goto out_restore;
	rc = call_wait(&c);
	if (rc == -EINPROGRESS || rc == -EDEADLK) {
		rc = call_leave(&c, rc);
		if (rc != -ETIMEDOUT)
			return rc;
		goto out_restore;
	}
	if (rc && rc != -HP_E_INJECT)
		return rc;
	if (rc == -HP_E_INJECT)
		hp_error(rc,
			 "tid %d: the injected call of 0x%llx faulted at "
			 "0x%llx (signal %d, not delivered); its registers "
			 "are restored",
			 (int)t->tid, (unsigned long long)fn, c.regs.rip,
			 WSTOPSIG(c.status));
	if (!rc && c.restorer) {
		rc = call_end(&c);
		rrc = hp_pt_park(t);
		return rc ?: (rrc == -ESRCH ? 0 : rrc);
	}
out_restore:
	rrc = hp_pt_restore_thread(t, &c.saved, &c.mask);
	rc = rc ?: rrc;
	rrc = hp_pt_park(t);
	return rc ?: (rrc == -ESRCH ? 0 : rrc);
}
