/*
 * Our instructions in a stopped thread: single steps out of a jump site,
 * one system call through a "syscall" instruction of the target, a call
 * of one of its functions; each bounded, its signals held meanwhile, its
 * registers and mask put back (or owed, when the bound passes while the
 * thread is in the kernel). The waits are rt_ptrace.c's.
 */
#include "runtime/runtime_int.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <cpuid.h>
#include <elf.h>
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
 * has passed; "call-left": so, and the thread is then left attached
 * (hp_pt_fault_leave), as one that stayed inside the call. Return: 1 (the
 * bound has passed; the step runs, or ran), 0 (no fault: step as usual),
 * -errno.
 */
static int step_fault(struct hp_thread *t)
{
	const uint64_t deadline = hp_now_us() + hp_pt_call_max_us;
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
	    ptrace(PTRACE_SINGLESTEP, t->tid, 0, 0) < 0)
		return -errno;
	until_reported(t, deadline); /* back from the kernel, stopped */
	return 1;
}

/*
 * A step or an injected call ends within microseconds, or sleeps in the
 * kernel (a lock, a hung file system) for as long as its bound lets it.
 * One not back after this is looked at first: in a frozen cgroup (cgroup
 * v2's freezer lets a thread stop for its tracer, but not run), it runs
 * nothing until thawed.
 */
#define HP_STEP_LOOK_US 20000

/* @t, in a step or call, reported @status: its registers, and the signal that
 * stopped it (0: a stop for no signal). Return: 0, -ESRCH, -errno. */
static int call_stopped(struct hp_thread *t, int status,
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
	int rc = call_stopped(t, status, regs, sig);

	if (rc)
		return rc;
	return *sig && *sig != SIGTRAP ? -HP_E_INJECT : 0;
}

static int frozen_busy(const struct hp_thread *t)
{
	return hp_error(-HP_E_BUSY,
			"tid %d: its cgroup is frozen (docker pause, "
			"systemctl freeze): it runs nothing until thawed; "
			"nothing changed",
			(int)t->tid);
}

/*
 * @t, resumed for our instruction, sits in a frozen cgroup instead: back
 * to a stop before it runs it, within the bound of a thread's stop that
 * the operation set (hp_pt_stop_max_us: its --timeout, if shorter; the
 * 10 ms of hpatchd's slices). v1's freezer stops it for nothing until
 * thawed. Return: -HP_E_BUSY (reported), or as step_once when it stops
 * otherwise (it ran after all, or not in time).
 */
static int frozen_step(struct hp_thread *t, struct user_regs_struct *regs,
		       int *sig)
{
	int status, rc;
	pid_t r;

	if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0)
		return errno == ESRCH ? -ESRCH : -errno;
	r = hp_pt_wait_resumed(t, &status, hp_now_us() + hp_pt_stop_max_us);
	hp_pt_wake_disarm();
	if (r == 0) {
		t->stopped = false;
		return -ETIMEDOUT;
	}
	if (r < 0)
		return -errno;
	rc = step_stopped(t, status, regs, sig);
	if (rc || *sig) /* its step's trap: it ran, thawed meanwhile */
		return rc;
	return frozen_busy(t);
}

/*
 * One single step of @t. Return: 0 (stopped by the step's trap, or by a
 * stop that ran nothing), -ESRCH, -errno, -HP_E_BUSY (frozen, reported),
 * or -HP_E_INJECT with *@sig the signal the step raised.
 */
static int step_once(struct hp_thread *t, struct user_regs_struct *regs,
		     int *sig)
{
	const uint64_t deadline = hp_now_us() + hp_pt_call_max_us;
	const uint64_t look = hp_now_us() + HP_STEP_LOOK_US;
	int status, rc = step_fault(t);
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
static int owed(struct hp_thread *t, const struct user_regs_struct *regs,
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
static int park(struct hp_thread *t)
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

/* One system call through the "syscall" at @insn, from the registers
 * and mask saved in @t; the caller restores. */
static int syscall_once(struct hp_thread *t, hp_raddr_t insn, long nr,
			const long args[6], long *ret)
{
	const struct user_regs_struct *saved = &t->inj_regs;
	const uint64_t since = hp_now_us();
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
		return owed(t, saved, t->inj_mask, "injected system call",
			    since);
	if (rc == -HP_E_INJECT)
		hp_error(rc,
			 "tid %d: the injected system call %ld %s at 0x%llx "
			 "(signal %d, not delivered); its registers are "
			 "restored",
			 (int)t->tid, nr, sig ? "faulted" : "went astray",
			 regs.rip, sig);
	else if (rc && rc != -ESRCH && rc != -HP_E_BUSY)
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
	/* Frozen while we held it stopped (v1's freezer freezes a thread in
	 * its stop for us): resumed, it would run nothing and stop for
	 * nothing until thawed, and be let go inside our call, with our
	 * registers and every signal blocked, as hpatch exits. Not resumed. */
	if (!rc && hp_task_frozen_in_stop(t->tid))
		rc = frozen_busy(t);
	if (!rc &&
	    ptrace(PTRACE_SETSIGMASK, t->tid, (void *)sizeof(all), &all) < 0)
		rc = -errno;
	if (rc)
		goto out;
	rc = syscall_once(t, insn, nr, args, ret);
	if (rc == -ESRCH || t->owes_mask) {
		t->injecting = false;
		return rc;
	}
	rrc = restore_thread(t, &t->inj_regs, &t->inj_mask);
	rc = rc ?: rrc;
	/* (Exited since: the call's result stands.) */
	rrc = park(t);
	rc = rc ?: (rrc == -ESRCH ? 0 : rrc);
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
		rc = step_once(t, &t->regs, &sig);
		if (rc == -ETIMEDOUT)
			return owed(t, NULL, mask, "single step", since);
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
	rrc = park(t);
	return rc ?: (rrc == -ESRCH ? 0 : rrc);
}

/* Where the return of a call's first lock faults (hp_pt_call): taken. */
#define HP_CALL_LOCKED 8
/* Instructions stepped at most before a call's first lock (libgcc 12's
 * registration takes it after 26, its deregistration after 19). Each
 * step leaves the thread stopped with its trap flag set, which a loader
 * killed (-9) there leaves it with (see park): a few, then. */
#define HP_CALL_STEPS_MAX 256

/* What an injected call has shown of its locks so far. */
struct call_locks {
	const struct hp_call_guard *g;
	bool armed;	 /* inside its first lock's call, which returns to
			  * HP_CALL_LOCKED: it holds nothing yet */
	hp_raddr_t site; /* that call's own return address */
	hp_raddr_t slot; /* where it is on the stack */
	bool returned;	 /* the whole call returned during the steps */
};

/*
 * Is the instruction at @code an atomic read-modify-write, the way a lock
 * is taken without a call (a LOCK prefix, or XCHG with memory)?
 */
static bool atomic_insn(const uint8_t code[16])
{
	size_t i = 0;

	for (; i < 15; i++) {
		const uint8_t b = code[i];

		if (b == 0xf0)
			return true;
		if (!(b == 0xf2 || b == 0xf3 || b == 0x2e || b == 0x36 ||
		      b == 0x3e || b == 0x26 || b == 0x64 || b == 0x65 ||
		      b == 0x66 || b == 0x67 || (b >= 0x40 && b <= 0x4f)))
			break;
	}
	return (code[i] == 0x86 || code[i] == 0x87) && i < 15 &&
	       (code[i + 1] >> 6) != 3;
}

/* Is @t's instruction at @ip an atomic one (atomic_insn)? Unreadable:
 * taken for one. */
static bool atomic_at(const struct hp_thread *t, uint64_t ip)
{
	union {
		long w[2];
		uint8_t b[16];
	} code;

	for (int k = 0; k < 2; k++) {
		errno = 0;
		code.w[k] = ptrace(PTRACE_PEEKTEXT, t->tid,
				   (void *)(ip + 8 * (unsigned)k), 0);
		if (errno)
			return true;
	}
	return atomic_insn(code.b);
}

/*
 * Step the call just started in @t up to the entry of its first lock
 * (@cl->g->lock_fn), called from the module [lo, hi) with no atomic
 * instruction of that module and no call out of it on the way: then
 * nothing is held, and the lock's call is made to return to
 * HP_CALL_LOCKED (wait_call puts it back on its way). Anything else ends
 * the steps with nothing proven. Return: 0 (@t stopped, or running when
 * @running), -HP_E_INJECT (it faulted: *@regs, *@status), -ESRCH, -errno.
 */
static int first_lock(struct hp_thread *t, struct call_locks *cl,
		      uint64_t deadline, bool *running,
		      struct user_regs_struct *regs, int *status)
{
	const struct hp_call_guard *g = cl->g;

	*running = false;
	for (int n = 0; g->lock_fn && n < HP_CALL_STEPS_MAX; n++) {
		uint64_t site = 0;
		pid_t r;
		int sig = 0, rc;

		if (ptrace(PTRACE_SINGLESTEP, t->tid, 0, 0) < 0)
			return -errno;
		r = hp_pt_wait_until(t, status, deadline);
		hp_pt_wake_disarm();
		if (r == 0) { /* in the kernel: wait_call takes its trap */
			*running = true;
			return 0;
		}
		if (r < 0)
			return -errno;
		rc = call_stopped(t, *status, regs, &sig);
		if (rc)
			return rc;
		if (sig == SIGSEGV && regs->rip == 0) {
			cl->returned = true;
			return 0;
		}
		if (sig && sig != SIGTRAP && sig != SIGSTOP)
			return -HP_E_INJECT;
		if (regs->rip == g->lock_fn) {
			errno = 0;
			site = (uint64_t)ptrace(PTRACE_PEEKDATA, t->tid,
						(void *)regs->rsp, 0);
			if (errno || site < g->lo || site >= g->hi ||
			    ptrace(PTRACE_POKEDATA, t->tid, (void *)regs->rsp,
				   (void *)HP_CALL_LOCKED) < 0)
				return 0;
			cl->armed = true;
			cl->site = site;
			cl->slot = regs->rsp;
			hp_dbg(HP_DBG_PTRACE,
			       "tid %d: in its first lock after %d steps",
			       (int)t->tid, n + 1);
			return 0;
		}
		/* A call out before any lock (ld.so binding the lock
		 * function lazily, too), or an atomic: nothing proven. */
		if (regs->rip < g->lo || regs->rip >= g->hi ||
		    atomic_at(t, regs->rip))
			return 0;
	}
	return 0;
}

/* Stopped at @regs, does the call provably hold no lock: waiting, not
 * woken, in its first lock's futex (first_lock)? */
static bool holds_nothing(const struct call_locks *cl,
			  const struct user_regs_struct *regs)
{
	return cl->armed && regs->orig_rax == SYS_futex &&
	       (long long)regs->rax == -512 /* -ERESTARTSYS */;
}

/*
 * Until the call hp_pt_call started in @t (at @since) returns (to address
 * 0), faults, or outlives its bounds: at the first (g->bound_us) it is
 * abandoned if it holds nothing (holds_nothing); else it is waited for
 * until the last (g->last_us). *@regs as it stopped. Return: 0,
 * -HP_E_INJECT, -ETIMEDOUT (abandon it: nothing held), -EDEADLK (stopped
 * at the last bound, it may hold a lock), -EINPROGRESS (interrupted, it
 * would not stop: still in the kernel), -ESRCH, -errno (a ptrace or wait
 * failure).
 */
static int wait_call(struct hp_thread *t, struct call_locks *cl, uint64_t since,
		     struct user_regs_struct *regs, int *status)
{
	const uint64_t last =
		since + (cl->g->last_us > cl->g->bound_us ? cl->g->last_us
							  : cl->g->bound_us);
	uint64_t deadline = since + cl->g->bound_us;

	for (;;) {
		/* One blocking wait, ended by the call's stop or the bound. */
		pid_t r = hp_pt_wait_until(t, status, deadline);
		bool late = r == 0;
		int sig = 0, rc;

		hp_pt_wake_disarm();
		if (r < 0)
			return -errno;
		if (late) {
			/* Too long: stop it where it is, within a bound too
			 * (asleep in the kernel, it stops only on its way
			 * out). */
			if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0)
				return -errno;
			r = hp_pt_wait_until(t, status,
					     hp_now_us() + hp_pt_call_max_us);
			hp_pt_wake_disarm();
			if (r < 0)
				return -errno;
			if (r == 0) {
				t->stopped = false;
				return -EINPROGRESS;
			}
		}
		rc = call_stopped(t, *status, regs, &sig);
		if (rc)
			return rc;
		if (sig == SIGSEGV && regs->rip == 0)
			return 0; /* returned, even as its bound passed */
		if (sig == SIGSEGV && regs->rip == HP_CALL_LOCKED &&
		    cl->armed) {
			/* Its first lock taken: on its way, holding it. */
			cl->armed = false;
			regs->rip = cl->site;
			if (ptrace(PTRACE_SETREGS, t->tid, 0, regs) < 0)
				return -errno;
		} else if (sig && sig != SIGTRAP && sig != SIGSTOP) {
			return -HP_E_INJECT;
		}
		if (late && holds_nothing(cl, regs))
			return -ETIMEDOUT;
		if (late && deadline >= last)
			return -EDEADLK;
		if (late)
			deadline = last;
		/* A group stop or event, or a lock taken: the call goes on. */
		if (ptrace(PTRACE_CONT, t->tid, 0, 0) < 0)
			return -errno;
	}
}

/*
 * For tests (hp_rt_set_faults): "fn-left", the call of @t (resumed here)
 * outlives its bound, asleep in the kernel, and so is left attached, owed
 * (hp_pt_fault_leave); it returns meanwhile, having done its work (its
 * stop at address 0 reported, not waited for). Return: -EINPROGRESS (as
 * wait_call's), or 0 (no fault).
 */
static int call_fault(struct hp_thread *t, uint64_t timeout_us)
{
	if (!hp_rt_fault("fn-left"))
		return 0;
	if (ptrace(PTRACE_CONT, t->tid, 0, 0) < 0)
		return -errno;
	until_reported(t, hp_now_us() + timeout_us);
	t->stopped = false;
	hp_pt_fault_leave = true;
	return -EINPROGRESS;
}

/*
 * The kernel's frame for rt_sigreturn on x86-64 (struct ucontext with its
 * struct sigcontext), from the word after the return address.
 */
struct sigreturn_frame {
	uint64_t uc_flags, uc_link;
	uint64_t ss_sp;
	int32_t ss_flags, ss_pad;
	uint64_t ss_size;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15, rdi, rsi, rbp, rbx, rdx,
		rax, rcx, rsp, rip, eflags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2, fpstate;
	uint64_t reserved[8];
	uint64_t sigmask;
};
_Static_assert(sizeof(struct sigreturn_frame) == 304, "kernel ucontext");

/* A thread's FPU and extended state as a signal frame holds it. */
struct call_fpu {
	size_t len; /* bytes to write: the area, then magic2 if XSAVE's */
	union {
		uint8_t b[HP_X86_XSTATE_MAX + 8];
		uint64_t align;
	} u;
};

/* The kernel's struct _fpx_sw_bytes, in fxsave's sw_reserved. */
struct fx_sw_bytes {
	uint32_t magic1, extended_size;
	uint64_t xfeatures;
	uint32_t xstate_size, padding[7];
};
_Static_assert(sizeof(struct fx_sw_bytes) ==
		       HP_X86_FXSAVE_SIZE - HP_X86_FX_SW_OFF,
	       "kernel _fpx_sw_bytes");

/*
 * The end of the XSAVE area (standard format) that holds the components
 * of @xcr0 that are in use (@in_use) or always there: a component enabled
 * on first use (XFD: AMX's tiles) and unused is in no frame the kernel
 * would take back for the thread (over its fpstate's user_size), and is
 * left out of *@features, so reset, as it is. At least the header's end.
 */
static uint32_t xstate_end(uint64_t xcr0, uint64_t in_use, uint64_t *features)
{
	uint32_t end = HP_X86_FXSAVE_SIZE + HP_X86_XSAVE_HDR_SIZE;

	*features = xcr0;
	for (unsigned i = 2; i < 64; i++) {
		unsigned size = 0, off = 0, flags = 0, edx = 0;

		if (!(xcr0 >> i & 1))
			continue;
		__cpuid_count(0xd, i, size, off, flags, edx);
		if ((flags & 4) && !(in_use >> i & 1)) {
			*features &= ~(1ULL << i);
			continue;
		}
		if (off + size > end)
			end = off + size;
	}
	return end;
}

/*
 * @t's FPU and extended state into @fp, as rt_sigreturn takes it back:
 * ptrace's XSAVE area, its sw_reserved made a frame's and magic2 after
 * it. Without XSAVE (or an area past @fp's room), fxsave's, which
 * restores the x87 and SSE state only. Return: 0, -errno.
 */
static int fpu_state(const struct hp_thread *t, struct call_fpu *fp)
{
	struct iovec io = { fp->u.b, HP_X86_XSTATE_MAX };
	const uint32_t magic2 = HP_X86_FP_XSTATE_MAGIC2;
	struct fx_sw_bytes sw = { .magic1 = HP_X86_FP_XSTATE_MAGIC1 };
	uint64_t xcr0 = 0, bv = 0;

	if (ptrace(PTRACE_GETREGSET, t->tid, (void *)NT_X86_XSTATE, &io) < 0 ||
	    io.iov_len < HP_X86_FXSAVE_SIZE + HP_X86_XSAVE_HDR_SIZE) {
		if (ptrace(PTRACE_GETFPREGS, t->tid, 0, fp->u.b) < 0)
			return -errno;
		memset(fp->u.b + HP_X86_FX_SW_OFF, 0, sizeof(sw));
		fp->len = HP_X86_FXSAVE_SIZE;
		return 0;
	}
	memcpy(&xcr0, fp->u.b + HP_X86_FX_SW_OFF, sizeof(xcr0));
	memcpy(&bv, fp->u.b + HP_X86_FXSAVE_SIZE, sizeof(bv));
	xcr0 |= 3; /* x87, SSE */
	/* PKRU's value is there even with its bit clear (kept apart from
	 * the XSAVE buffer since Linux 5.14): loaded, not reset to 0. */
	bv |= xcr0 & (1ULL << HP_X86_XFEATURE_PKRU);
	sw.xstate_size = xstate_end(xcr0, bv, &sw.xfeatures);
	sw.extended_size = sw.xstate_size + sizeof(magic2);
	if (sw.xstate_size > io.iov_len) {
		memset(fp->u.b + HP_X86_FX_SW_OFF, 0, sizeof(sw));
		fp->len = HP_X86_FXSAVE_SIZE;
		return 0;
	}
	memcpy(fp->u.b + HP_X86_FX_SW_OFF, &sw, sizeof(sw));
	memcpy(fp->u.b + HP_X86_FXSAVE_SIZE, &bv, sizeof(bv));
	memcpy(fp->u.b + sw.xstate_size, &magic2, sizeof(magic2));
	fp->len = sw.extended_size;
	return 0;
}

/* Where a call's frame lies on the thread's stack, below its red zone:
 * its return address at @slot, a sigreturn frame after it, the FPU state
 * (@fp_len bytes, 64-aligned for XRSTOR) above that. */
struct call_frame {
	hp_raddr_t slot, uc, fx;
};

static void call_frame_at(struct call_frame *f, uint64_t rsp, size_t fp_len)
{
	f->fx = (rsp - 128 - fp_len) & ~(HP_X86_FPSTATE_ALIGN - 1ULL);
	f->uc = (f->fx - sizeof(struct sigreturn_frame)) & ~15ULL;
	f->slot = f->uc - 8;
}

/* Write @len bytes of @buf (a multiple of 8) at @addr of stopped @t. */
static int poke_words(const struct hp_thread *t, hp_raddr_t addr,
		      const void *buf, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t w;

		memcpy(&w, (const uint8_t *)buf + i, 8);
		if (ptrace(PTRACE_POKEDATA, t->tid, (void *)(addr + i),
			   (void *)w) < 0)
			return -errno;
	}
	return 0;
}

/*
 * Leave the call of stopped @t to finish on its own (it may hold a lock:
 * abandoned, the lock would stay held for good): its return goes to the
 * C library's signal return @restorer, through a frame of the thread's
 * own registers (@saved: a system call it was interrupted in restarts as
 * after a signal, a sleep's with EINTR), signal mask @mask and FPU and
 * extended state @fp (fpu_state), whether hpatch is still there or not.
 * Return: 0 or -errno.
 */
static int leave_call(struct hp_thread *t, const struct call_frame *f,
		      const struct user_regs_struct *saved, uint64_t mask,
		      const struct call_fpu *fp, hp_raddr_t restorer)
{
	struct sigreturn_frame sf = {
		.ss_flags = -1, /* invalid: its alternate stack unchanged */
		.r8 = saved->r8,
		.r9 = saved->r9,
		.r10 = saved->r10,
		.r11 = saved->r11,
		.r12 = saved->r12,
		.r13 = saved->r13,
		.r14 = saved->r14,
		.r15 = saved->r15,
		.rdi = saved->rdi,
		.rsi = saved->rsi,
		.rbp = saved->rbp,
		.rbx = saved->rbx,
		.rdx = saved->rdx,
		.rax = saved->rax,
		.rcx = saved->rcx,
		.rsp = saved->rsp,
		.rip = saved->rip,
		.eflags = saved->eflags,
		.cs = (uint16_t)saved->cs,
		.ss = (uint16_t)saved->ss,
		.fpstate = f->fx,
		.sigmask = mask,
	};
	const long long err = (long long)saved->rax;
	int rc;

	/* The kernel restarts an interrupted call only on its way out of
	 * the stop; the frame's return does it. */
	if ((long long)saved->orig_rax >= 0 && err >= -516 && err <= -512 &&
	    err != -515) {
		sf.rax = err == -516 ? SYS_restart_syscall : saved->orig_rax;
		sf.rip -= 2;
	}
	rc = poke_words(t, f->fx, fp->u.b, (fp->len + 7) & ~(size_t)7);
	rc = rc ?: poke_words(t, f->uc, &sf, sizeof(sf));
	if (!rc && ptrace(PTRACE_POKEDATA, t->tid, (void *)f->slot,
			  (void *)restorer) < 0)
		rc = -errno;
	return rc;
}

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
 * call. Bounded by @g (wait_call): abandoned, registers restored, only
 * where it provably holds no lock; one that may is waited for, then left
 * to finish on its own (leave_call) where the C library's signal return
 * is found, else abandoned and said.
 * Return: 0 with *@ret the function's rax, -HP_E_INJECT (it faulted),
 * -ETIMEDOUT, -HP_E_BUSY (left inside: t->left_in_call), -ESRCH, -errno.
 */
int hp_pt_call(struct hp_thread *t, hp_raddr_t fn, const long args[2],
	       const struct hp_call_guard *g, long *ret)
{
	struct call_locks cl = { .g = g };
	struct user_regs_struct saved, regs;
	struct call_fpu fp;
	struct call_frame f;
	uint64_t mask = 0, zero = 0, since = 0;
	int rc = save_thread(t, &saved, &mask), rrc, status = 0;
	bool running = false;
	hp_raddr_t restorer = 0;

	if (rc)
		return rc;
	rc = fpu_state(t, &fp);
	if (rc)
		goto out_restore;
	inject_regs(&regs, &saved, fn, 0);
	since = hp_now_us();
	call_frame_at(&f, saved.rsp, fp.len);
	regs.rsp = f.slot; /* as after a call */
	regs.rdi = (unsigned long long)args[0];
	regs.rsi = (unsigned long long)args[1];
	if (ptrace(PTRACE_POKEDATA, t->tid, (void *)regs.rsp, (void *)zero) <
		    0 ||
	    ptrace(PTRACE_SETREGS, t->tid, 0, &regs) < 0) {
		rc = -errno;
		goto out_restore;
	}
	rc = call_fault(t, g->bound_us);
	if (!rc)
		rc = first_lock(t, &cl, since + g->bound_us, &running, &regs,
				&status);
	if (!rc && !cl.returned && !running &&
	    ptrace(PTRACE_CONT, t->tid, 0, 0) < 0)
		rc = -errno;
	if (!rc && !cl.returned)
		rc = wait_call(t, &cl, since, &regs, &status);
	if (rc == -EINPROGRESS)
		return owed(t, &saved, mask, "injected call", since);
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
		    !leave_call(t, &f, &saved, mask, &fp, restorer)) {
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
	rrc = restore_thread(t, &saved, &mask);
	rc = rc ?: rrc;
	rrc = park(t);
	return rc ?: (rrc == -ESRCH ? 0 : rrc);
}
