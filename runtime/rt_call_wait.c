/*
 * An injected call's wait (hp_pt_call): the steps up to its first lock,
 * which prove it holds nothing yet, and the bounded wait for its return,
 * after which it is abandoned only where it provably holds nothing.
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
#include <sys/syscall.h>
#include <sys/wait.h>

#define HP_LOG_PREFIX "rt: "

/* Where the return of a call's first lock faults (hp_pt_call): taken. */
#define HP_CALL_LOCKED 8
/* Instructions stepped at most before a call's first lock (libgcc 12's
 * registration takes it after 26, its deregistration after 19). Each
 * step leaves the thread stopped with its trap flag set, which a loader
 * killed (-9) there leaves it with (see hp_pt_park): a few, then. */
#define HP_CALL_STEPS_MAX 256

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
 * HP_CALL_LOCKED (hp_pt_wait_call puts it back on its way). Anything else ends
 * the steps with nothing proven. Return: 0 (@t stopped, or running when
 * @running), -HP_E_INJECT (it faulted: *@regs, *@status), -ESRCH, -errno.
 */
int hp_pt_first_lock(struct hp_thread *t, struct hp_call_locks *cl,
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
		if (r == 0) { /* in the kernel: the wait takes its trap */
			*running = true;
			return 0;
		}
		if (r < 0)
			return -errno;
		rc = hp_pt_call_stopped(t, *status, regs, &sig);
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
 * woken, in its first lock's futex (hp_pt_first_lock)? */
static bool holds_nothing(const struct hp_call_locks *cl,
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
int hp_pt_wait_call(struct hp_thread *t, struct hp_call_locks *cl,
		    uint64_t since, struct user_regs_struct *regs, int *status)
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
		rc = hp_pt_call_stopped(t, *status, regs, &sig);
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
 * hp_pt_wait_call's), or 0 (no fault).
 */
int hp_pt_call_fault(struct hp_thread *t, uint64_t timeout_us)
{
	if (!hp_rt_fault("fn-left"))
		return 0;
	if (ptrace(PTRACE_CONT, t->tid, 0, 0) < 0)
		return -errno;
	hp_pt_until_reported(t, hp_now_us() + timeout_us);
	t->stopped = false;
	hp_pt_fault_leave = true;
	return -EINPROGRESS;
}
