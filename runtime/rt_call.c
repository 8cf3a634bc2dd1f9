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
	struct hp_call_locks cl = { .g = g };
	struct user_regs_struct saved, regs;
	struct hp_call_fpu fp;
	struct hp_call_frame f;
	uint64_t mask = 0, zero = 0, since = 0;
	int rc = hp_pt_save_thread(t, &saved, &mask), rrc, status = 0;
	bool running = false;
	hp_raddr_t restorer = 0;

	if (rc)
		return rc;
	rc = hp_pt_fpu_state(t, &fp);
	if (rc)
		goto out_restore;
	hp_pt_inject_regs(&regs, &saved, fn, 0);
	since = hp_now_us();
	hp_pt_call_frame_at(&f, saved.rsp, fp.len);
	regs.rsp = f.slot; /* as after a call */
	regs.rdi = (unsigned long long)args[0];
	regs.rsi = (unsigned long long)args[1];
	if (ptrace(PTRACE_POKEDATA, t->tid, (void *)regs.rsp, (void *)zero) <
		    0 ||
	    ptrace(PTRACE_SETREGS, t->tid, 0, &regs) < 0) {
		rc = -errno;
		goto out_restore;
	}
	rc = hp_pt_call_fault(t, g->bound_us);
	if (!rc)
		rc = hp_pt_first_lock(t, &cl, since + g->bound_us, &running,
				      &regs, &status);
	if (!rc && !cl.returned && !running &&
	    ptrace(PTRACE_CONT, t->tid, 0, 0) < 0)
		rc = -errno;
	if (!rc && !cl.returned)
		rc = hp_pt_wait_call(t, &cl, since, &regs, &status);
	if (rc == -EINPROGRESS)
		return hp_pt_owed(t, &saved, mask, "injected call", since);
	if (rc == -EDEADLK) {
		char state[80];

		call_where(&regs, state, sizeof(state));
		/* Inside its first lock still (woken, say): its own return
		 * back, or taking the lock would fault with nobody to catch
		 * it. */
		if (cl.armed && ptrace(PTRACE_POKEDATA, t->tid, (void *)cl.slot,
				       (void *)cl.site) < 0)
			restorer = 0;
		else
			restorer = g->restorer ? g->restorer(g->arg) : 0;
		if (restorer &&
		    !hp_pt_leave_call(t, &f, &saved, mask, &fp, restorer)) {
			t->left_in_call = true;
			return hp_error(
				-HP_E_BUSY,
				"tid %d: hpatch's call of 0x%llx still runs "
				"after %llu ms (at 0x%llx, %s), maybe holding "
				"a lock: left to finish on its own; as it "
				"returns, the thread goes on where it was, its "
				"registers and signal mask its own",
				(int)t->tid, (unsigned long long)fn,
				(unsigned long long)((hp_now_us() - since) /
						     1000),
				regs.rip, state);
		}
		rc = hp_error(
			-ETIMEDOUT,
			"tid %d: hpatch's call of 0x%llx still runs "
			"after %llu ms (at 0x%llx, %s), maybe holding a "
			"lock, and no signal return to leave it with: "
			"abandoned, registers restored; a lock it took "
			"stays held",
			(int)t->tid, (unsigned long long)fn,
			(unsigned long long)((hp_now_us() - since) / 1000),
			regs.rip, state);
		hp_hint("the process may wait for ever for that lock: "
			"restart it");
		goto out_restore;
	}
	if (rc && rc != -ETIMEDOUT && rc != -HP_E_INJECT)
		return rc;
	if (rc == -ETIMEDOUT)
		hp_error(rc,
			 "tid %d: the injected call of 0x%llx waited %llu ms "
			 "for its first lock, held elsewhere (at 0x%llx); "
			 "abandoned before taking it, registers restored",
			 (int)t->tid, (unsigned long long)fn,
			 (unsigned long long)((hp_now_us() - since) / 1000),
			 regs.rip);
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
	rrc = hp_pt_restore_thread(t, &saved, &mask);
	rc = rc ?: rrc;
	rrc = hp_pt_park(t);
	return rc ?: (rrc == -ESRCH ? 0 : rrc);
}
