/*
 * Our instructions in a stopped thread: single steps out of a jump site,
 * one system call through a "syscall" instruction of the target, a call
 * of one of its functions; each bounded, its signals held meanwhile, its
 * registers and mask put back (or owed, when the bound passes while the
 * thread is in the kernel). The waits are rt_ptrace.c's, the single
 * step rt_step.c's, the system call at the C library's "syscall; ret"
 * rt_sysret.c's (a step through a "syscall" only where it has none),
 * the call rt_call.c's.
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
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#define HP_LOG_PREFIX "rt: "

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

void hp_pt_restore_signals(const struct hp_thread *t, uint64_t *saved)
{
	if (ptrace(PTRACE_SETSIGMASK, t->tid, (void *)sizeof(*saved), saved) <
		    0 &&
	    errno != ESRCH)
		hp_warn("tid %d: cannot restore its signal mask: %s",
			(int)t->tid, strerror(errno));
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
 * never waited for without end. @since: when we began to wait for it (the
 * bound that passed is the call's, or a stop's for a frozen step).
 */
static int owe(struct hp_thread *t, const struct user_regs_struct *regs,
	       uint64_t mask, const char *what, uint64_t since)
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
		 (int)t->tid, what,
		 (unsigned long long)((hp_now_us() - since) / 1000), state);
	return -HP_E_BUSY;
}

int hp_pt_owed(struct hp_thread *t, const struct user_regs_struct *regs,
	       uint64_t mask, const char *what, uint64_t since)
{
	const int rc = owe(t, regs, mask, what, since);

	hp_hint("it waits in the kernel (a hung file system, memory "
		"pressure?): if it returns after hpatch has exited, it runs "
		"on with hpatch's registers; restart the process then");
	return rc;
}

int hp_pt_owed_framed(struct hp_thread *t, const struct user_regs_struct *regs,
		      uint64_t mask, uint64_t since)
{
	const int rc = owe(t, regs, mask, "injected system call", since);

	hp_hint("it waits in the kernel (a hung file system, memory "
		"pressure?): if it returns after hpatch has exited, a signal "
		"frame of its own state written before the call gives it "
		"back its registers and signal mask");
	return rc;
}

/*
 * Before our instructions run in @t: its registers and signal mask set
 * aside, its signals blocked. Return: 0 or -errno.
 */
int hp_pt_save_thread(struct hp_thread *t, struct user_regs_struct *saved,
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
int hp_pt_restore_thread(struct hp_thread *t,
			 const struct user_regs_struct *saved, uint64_t *mask)
{
	int rc = 0;

	if (ptrace(PTRACE_SETREGS, t->tid, 0, saved) < 0 && errno != ESRCH)
		rc = hp_error_rc(-errno, "tid %d: cannot restore registers",
				 (int)t->tid);
	hp_pt_restore_signals(t, mask);
	return rc;
}

/*
 * After our steps, @t waits in the stop of a step's trap (or of a call's
 * return), its trap flag still set: only a resume clears it. A loader
 * killed (-9) there lets it go so, and its next instruction, or the end
 * of the system call it restarts (accept() returning, say), traps again:
 * a SIGTRAP with no tracer, which kills the process (killed_anywhere.sh).
 * Resumed with an interrupt pending, it runs none of its own code: the
 * interrupt stops it on its way out of the signal stop (before any signal
 * is taken), its flag cleared, in the stop a seized thread waits in
 * before our first call, which a dead tracer's end leaves as it was.
 * Return: 0, -ESRCH, -errno.
 */
int hp_pt_park(struct hp_thread *t)
{
	if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0 ||
	    ptrace(PTRACE_CONT, t->tid, 0, 0) < 0)
		return errno == ESRCH ? -ESRCH : -errno;
	t->stopped = false;
	return hp_pt_wait_stop(t);
}

/*
 * The registers that run our instructions at @ip: @saved's, with
 * orig_rax = -1, which keeps the kernel from "restarting" our injected
 * call when the thread was stopped inside a system call of its own;
 * restoring every register afterwards (orig_rax and rax = -ERESTART*
 * included) lets the kernel restart that call exactly as after any stop.
 */
void hp_pt_inject_regs(struct user_regs_struct *regs,
		       const struct user_regs_struct *saved, hp_raddr_t ip,
		       unsigned long long rax)
{
	*regs = *saved;
	regs->rip = ip;
	regs->rax = rax;
	regs->orig_rax = (unsigned long long)-1;
}

void hp_pt_syscall_regs(struct user_regs_struct *regs,
			const struct user_regs_struct *saved, hp_raddr_t ip,
			long nr, const long args[6])
{
	hp_pt_inject_regs(regs, saved, ip, (unsigned long long)nr);
	regs->rdi = (unsigned long long)args[0];
	regs->rsi = (unsigned long long)args[1];
	regs->rdx = (unsigned long long)args[2];
	regs->r10 = (unsigned long long)args[3];
	regs->r8 = (unsigned long long)args[4];
	regs->r9 = (unsigned long long)args[5];
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

/* One system call through the "syscall" at @insn, from the registers
 * and mask saved in @t; the caller restores. */
static int syscall_once(struct hp_thread *t, hp_raddr_t insn, long nr,
			const long args[6], long *ret)
{
	const struct user_regs_struct *saved = &t->inj_regs;
	const uint64_t since = hp_now_us();
	struct user_regs_struct regs;
	int rc, sig = 0, tries = 0;

	hp_pt_syscall_regs(&regs, saved, insn, nr, args);
	if (ptrace(PTRACE_SETREGS, t->tid, 0, &regs) < 0)
		return -errno;
	/* (The test delays of rt_sysret.c's call, where a kill is not
	 * survived: docs/AGENT.md, "Killed".) */
	rc = hp_rt_fault("sys-start");
	/* A stop that ran nothing (a group stop) leaves rip at insn. */
	while (!rc && !(rc = hp_pt_step_once(t, &regs, &sig)) &&
	       regs.rip != insn + 2)
		if (regs.rip != insn || ++tries > 16) {
			rc = -HP_E_INJECT;
			break;
		}
	if (!rc)
		rc = hp_rt_fault("sys-exit");
	if (rc == -ETIMEDOUT)
		return hp_pt_owed(t, saved, t->inj_mask, "injected system call",
				  since);
	if (rc == -HP_E_INJECT)
		hp_error(rc,
			 "tid %d: the injected system call %ld %s at 0x%llx "
			 "(signal %d, not delivered); its registers are "
			 "restored",
			 (int)t->tid, nr, sig ? "faulted" : "went astray",
			 regs.rip, sig);
	else if (rc && rc != -ESRCH && rc != -HP_E_BUSY && rc != -HP_E_FAULT)
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
int hp_pt_syscall(struct hp_thread *t, const struct hp_sys_site *s, long nr,
		  const long args[6], long *ret)
{
	const bool run = t->injecting;
	const uint64_t all = ~0ULL;
	const hp_raddr_t insn = s->sysret ? s->sysret : s->insn;
	int rc = hp_seccomp_check(t, insn, nr, args), rrc;
	bool stepped;

	if (!rc)
		rc = hp_pt_inject_begin(t);
	/* Frozen while we held it stopped (v1's freezer freezes a thread in
	 * its stop for us): resumed, it would run nothing and stop for
	 * nothing until thawed, and be let go inside our call, with our
	 * registers and every signal blocked, as hpatch exits. Not resumed. */
	if (!rc && hp_task_frozen_in_stop(t->tid))
		rc = hp_pt_frozen_busy(t);
	if (!rc &&
	    ptrace(PTRACE_SETSIGMASK, t->tid, (void *)sizeof(all), &all) < 0)
		rc = -errno;
	if (rc)
		goto out;
	/* Through the C library's "syscall; ret": it ends itself, the
	 * thread's state back. Else (none, or no frame could be written),
	 * stepped through a "syscall". */
	rc = s->sysret ? hp_pt_sysret(t, s, nr, args, ret) : 1;
	stepped = rc == 1;
	if (stepped)
		rc = syscall_once(t, s->insn, nr, args, ret);
	if (rc == -ESRCH || t->owes_mask) {
		t->injecting = false;
		return rc;
	}
	if (stepped) { /* (the other puts its state back itself) */
		rrc = hp_pt_restore_thread(t, &t->inj_regs, &t->inj_mask);
		rc = rc ?: rrc;
		/* (Exited since: the call's result stands.) */
		rrc = hp_pt_park(t);
		rc = rc ?: (rrc == -ESRCH ? 0 : rrc);
	}
out:
	if (!run)
		hp_pt_inject_end(t);
	return rc;
}

int hp_pt_step(struct hp_thread *t)
{
	const uint64_t since = hp_now_us();
	uint64_t mask = 0;
	int rc = block_signals(t, &mask), rrc, sig = 0;

	if (rc)
		return rc;
	/* A stop that ran nothing (a group stop) is stepped again. */
	for (int tries = 0; tries < 16; tries++) {
		rc = hp_pt_step_once(t, &t->regs, &sig);
		if (rc == -ETIMEDOUT)
			return hp_pt_owed(t, NULL, mask, "single step", since);
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
	if (rc == -ESRCH)
		return rc;
	hp_pt_restore_signals(t, &mask);
	rrc = hp_pt_park(t);
	return rc ?: (rrc == -ESRCH ? 0 : rrc);
}
