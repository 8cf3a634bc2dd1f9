/*
 * A call of one of the target's functions in a stopped thread while the
 * others run (hp_pt_call): its setup, its outcome and what is said of it.
 * Its wait is rt_call_wait.c's, its being left to finish rt_call_left.c's.
 */
#include "runtime/rt_inject.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define HP_LOG_PREFIX "rt: "

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

/* One injected call (hp_pt_call) and what it has shown so far. */
struct injected_call {
	struct hp_thread *t;
	hp_raddr_t fn;
	const struct hp_call_guard *g;
	struct hp_call_locks cl;
	struct user_regs_struct saved, regs; /* the thread's; the call's */
	uint64_t mask, since;
	struct hp_call_fpu fp;
	struct hp_call_frame f;
	int status;
};

/* Set @c's call of @args going in its stopped thread: the call's frame
 * below the red zone, returning to address 0. Return: 0 or -errno. */
static int call_start(struct injected_call *c, const long args[2])
{
	const uint64_t zero = 0;
	int rc = hp_pt_fpu_state(c->t, &c->fp);

	if (rc)
		return rc;
	hp_pt_inject_regs(&c->regs, &c->saved, c->fn, 0);
	c->since = hp_now_us();
	hp_pt_call_frame_at(&c->f, c->saved.rsp, c->fp.len);
	c->regs.rsp = c->f.slot; /* as after a call */
	c->regs.rdi = (unsigned long long)args[0];
	c->regs.rsi = (unsigned long long)args[1];
	if (ptrace(PTRACE_POKEDATA, c->t->tid, (void *)c->regs.rsp,
		   (void *)zero) < 0 ||
	    ptrace(PTRACE_SETREGS, c->t->tid, 0, &c->regs) < 0)
		return -errno;
	return 0;
}

/* Run @c's call up to its return or its bounds: the steps to its first
 * lock, then the wait. Return: as hp_pt_wait_call. */
static int call_run(struct injected_call *c)
{
	bool running = false;
	int rc = hp_pt_call_fault(c->t, c->g->bound_us);

	if (!rc)
		rc = hp_pt_first_lock(c->t, &c->cl, c->since + c->g->bound_us,
				      &running, &c->regs, &c->status);
	if (!rc && !c->cl.returned && !running &&
	    ptrace(PTRACE_CONT, c->t->tid, 0, 0) < 0)
		rc = -errno;
	if (!rc && !c->cl.returned)
		rc = hp_pt_wait_call(c->t, &c->cl, c->since, &c->regs,
				     &c->status);
	return rc;
}

/* Milliseconds since @c's call started. */
static unsigned long long call_ms(const struct injected_call *c)
{
	return (unsigned long long)((hp_now_us() - c->since) / 1000);
}

/*
 * @c's call, stopped at its last bound, may hold a lock: left to finish
 * on its own (hp_pt_leave_call) where the C library's signal return is
 * found, else abandoned. Return: -HP_E_BUSY (left: t->left_in_call), or
 * -ETIMEDOUT (to be abandoned, registers restored); said.
 */
static int call_leave(struct injected_call *c)
{
	struct hp_thread *t = c->t;
	const struct hp_call_guard *g = c->g;
	hp_raddr_t restorer = 0;
	char state[80];
	int rc;

	call_where(&c->regs, state, sizeof(state));
	/* Inside its first lock still (woken, say): its own return
	 * back, or taking the lock would fault with nobody to catch
	 * it. */
	if (c->cl.armed && ptrace(PTRACE_POKEDATA, t->tid, (void *)c->cl.slot,
				  (void *)c->cl.site) < 0)
		restorer = 0;
	else
		restorer = g->restorer ? g->restorer(g->arg) : 0;
	if (restorer &&
	    !hp_pt_leave_call(t, &c->f, &c->saved, c->mask, &c->fp, restorer)) {
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

/* Say why @c's call, ended with @rc (-ETIMEDOUT: before its first lock,
 * or -HP_E_INJECT), is abandoned. */
static void call_abandoned(const struct injected_call *c, int rc)
{
	if (rc == -ETIMEDOUT)
		hp_error(rc,
			 "tid %d: the injected call of 0x%llx waited %llu ms "
			 "for its first lock, held elsewhere (at 0x%llx); "
			 "abandoned before taking it, registers restored",
			 (int)c->t->tid, (unsigned long long)c->fn, call_ms(c),
			 c->regs.rip);
	else if (rc == -HP_E_INJECT)
		hp_error(rc,
			 "tid %d: the injected call of 0x%llx faulted at "
			 "0x%llx (signal %d, not delivered); its registers "
			 "are restored",
			 (int)c->t->tid, (unsigned long long)c->fn, c->regs.rip,
			 WSTOPSIG(c->status));
}

/*
 * A function call in stopped @t while the process's other threads run:
 * @fn(@args[0], @args[1]) on the thread's stack below its red zone,
 * returning to address 0, whose fault (never delivered) ends the call.
 * Every register is restored after, so an interrupted system call of the
 * thread restarts as after any stop (orig_rax = -1 keeps the kernel from
 * restarting it into our call). Signals wait, blocked, as for a system
 * call. Bounded by @g (hp_pt_wait_call): abandoned, registers restored, only
 * where it provably holds no lock; one that may is waited for, then left
 * to finish on its own (hp_pt_leave_call) where the C library's signal return
 * is found, else abandoned and said.
 * Return: 0 with *@ret the function's rax, -HP_E_INJECT (it faulted),
 * -ETIMEDOUT, -HP_E_BUSY (left inside: t->left_in_call), -ESRCH, -errno.
 */
int hp_pt_call(struct hp_thread *t, hp_raddr_t fn, const long args[2],
	       const struct hp_call_guard *g, long *ret)
{
	struct injected_call c = { .t = t, .fn = fn, .g = g, .cl = { .g = g } };
	int rc = hp_pt_save_thread(t, &c.saved, &c.mask), rrc;

	if (rc)
		return rc;
	rc = call_start(&c, args);
	if (rc)
		goto out_restore;
	rc = call_run(&c);
	if (rc == -EINPROGRESS)
		return hp_pt_owed(t, &c.saved, c.mask, "injected call",
				  c.since);
	if (rc == -EDEADLK) {
		rc = call_leave(&c);
		if (rc == -HP_E_BUSY)
			return rc;
		goto out_restore;
	}
	if (rc && rc != -ETIMEDOUT && rc != -HP_E_INJECT)
		return rc;
	if (!rc)
		*ret = (long)c.regs.rax;
	call_abandoned(&c, rc);
out_restore:
	rrc = hp_pt_restore_thread(t, &c.saved, &c.mask);
	rc = rc ?: rrc;
	rrc = hp_pt_park(t);
	return rc ?: (rrc == -ESRCH ? 0 : rrc);
}
