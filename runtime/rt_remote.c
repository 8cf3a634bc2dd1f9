/*
 * The remote-call session: system calls run in the target through a
 * stopped thread, either one we stop for the purpose (mapping a region
 * before the switch, unmapping after a revert) or any thread of a world
 * already stopped (collecting retired regions).
 */
#include "runtime/rt_lifecycle.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"
#include <linux/seccomp.h>
#include <sys/syscall.h>

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP_LOG_PREFIX "rt: "

/*
 * The thread of @pid to run system calls through: the first alive that is
 * not in seccomp strict mode (a main thread that entered it while threads
 * of its own serve, say), else the first alive (refused, named, by
 * hp_pt_syscall). Strict mode is a thread's own; filters, which are
 * normally the whole process's, are checked call by call.
 */
static pid_t call_tid(pid_t pid)
{
	pid_t *tids = NULL, tid = hp_proc_live_tid(pid);
	size_t nr = 0;

	if (!hp_seccomp_strict(tid) || hp_proc_list_tasks(pid, &tids, &nr))
		return tid;
	for (size_t i = 0; i < nr; i++)
		if (!hp_task_gone(tids[i]) && !hp_seccomp_strict(tids[i])) {
			tid = tids[i];
			break;
		}
	free(tids);
	return tid;
}

/* Let go of the thread a session stopped (not one of a borrowed world). */
static void let_go(struct hp_remote *r)
{
	hp_pt_wake_keep(false);
	hp_prio_restore(r->t.tid, &r->prio);
	hp_pt_release(&r->t);
	hp_pt_reap(&r->t, 1);
}

/* The session's thread did not stop within its bound: said, named. */
static int would_not_stop(struct hp_remote *r)
{
	char state[160];

	r->stuck_tid = r->t.tid;
	hp_task_state(r->t.tid, state, sizeof(state));
	hp_error(-HP_E_BUSY,
		 "pid %d: tid %d would not stop (%s) within %llu ms; "
		 "nothing changed",
		 (int)r->pid, (int)r->t.tid, state,
		 (unsigned long long)(hp_pt_stop_max_us / 1000));
	hp_task_stuck_hint(r->t.tid);
	return -HP_E_BUSY;
}

/*
 * Stop @tid for a session, and read once, stopped, its seccomp mode (for
 * every call's check) and its process's count of threads (one alone is
 * the whole process: hp_remote_to_world). Return: 0, -ESRCH, -errno.
 */
static int hold(struct hp_remote *r, pid_t tid)
{
	static const char *const keys[] = { "Seccomp:", "Threads:" };
	long vals[2];
	int rc;

	r->t = (struct hp_thread){ .tid = tid, .leader = tid == r->pid };
	rc = hp_pt_seize(&r->t);
	if (!rc) {
		/* Raised first, it also reaches the stop without waiting. */
		hp_prio_raise(r->t.tid, &r->prio);
		hp_pt_wake_keep(true);
		r->stopped_at = hp_now_us();
		hp_pt_set_deadline(r->stopped_at + hp_pt_stop_max_us);
		rc = hp_pt_interrupt(&r->t);
	}
	if (!rc)
		rc = hp_pt_wait_stop(&r->t);
	hp_pt_set_deadline(0);
	if (rc == -ETIMEDOUT)
		rc = would_not_stop(r);
	/* The thread's registers and mask, read once for every call. */
	if (!rc)
		rc = hp_pt_inject_begin(&r->t);
	if (rc) {
		let_go(r);
		return rc;
	}
	/* Stopped, it creates no thread: a count of one stays one. */
	hp_task_status_fields(tid, keys, vals, 2);
	r->t.seccomp_mode = (int)vals[0];
	r->t.has_seccomp_mode = true;
	r->nr_threads = vals[1];
	return 0;
}

/* Other threads tried when the session's is busy: each may cost a stop's
 * bound (hp_pt_stop_max_us), so a few. */
#define HP_REMOTE_MAX_OTHERS 4

/*
 * The session's thread @busy would not stop, or is still inside an
 * earlier try's injected call (hp_pt_seize): the calls of a session act
 * on the whole process, so another thread serves as well (the unmap of an
 * apply's undo, which otherwise leaves the region mapped for good). Up to
 * HP_REMOTE_MAX_OTHERS live threads, fit for calls (not in seccomp strict
 * mode, see call_tid; not in a frozen cgroup, where none stops), each
 * within a stop's bound; what each refusal says is dropped. Return: 0
 * (held), or -HP_E_BUSY.
 */
static int hold_another(struct hp_remote *r, pid_t busy)
{
	pid_t *tids = NULL;
	size_t nr = 0, tried = 0;
	int rc = -HP_E_BUSY;

	if (hp_proc_list_tasks(r->pid, &tids, &nr))
		return rc;
	for (size_t i = 0; i < nr && rc && tried < HP_REMOTE_MAX_OTHERS; i++) {
		size_t mark;

		if (tids[i] == busy || hp_task_gone(tids[i]) ||
		    hp_seccomp_strict(tids[i]) || hp_task_frozen(tids[i]))
			continue;
		tried++;
		mark = hp_log_hold();
		rc = hold(r, tids[i]);
		hp_log_release(mark, false);
	}
	free(tids);
	return rc ? -HP_E_BUSY : 0;
}

/* Where @proc's system calls run: a "syscall" always (the fallback), and
 * its C library's "syscall; ret" and restorer if it has them. */
static int find_site(const struct hp_proc *proc, struct hp_sys_site *s)
{
	*s = (struct hp_sys_site){ .proc = proc };
	if (hp_proc_find_sysret(proc, &s->sysret, &s->restorer))
		s->sysret = s->restorer = 0;
	return hp_proc_find_syscall_insn(proc, &s->insn);
}

int hp_remote_begin(const struct hp_proc *proc, struct hp_remote *r)
{
	/* The thread found live when the process was opened, unless it has
	 * exited since or is in strict mode: then one fit for calls
	 * (call_tid); busy, another (hold_another). */
	pid_t tid = proc->tid ? proc->tid : hp_proc_live_tid(proc->pid);
	/* Its refusal is the session's only if no other thread serves. */
	const size_t mark = hp_log_hold();
	pid_t stuck = 0;
	bool other = false;
	int rc;

	*r = (struct hp_remote){ .pid = proc->pid };
	rc = find_site(proc, &r->site);
	if (!rc)
		rc = hold(r, tid);
	if (!rc && r->t.seccomp_mode == SECCOMP_MODE_STRICT &&
	    (tid = call_tid(proc->pid)) != r->t.tid) {
		let_go(r);
		rc = hold(r, tid);
	} else if (rc == -ESRCH && (tid = call_tid(proc->pid)) != r->t.tid) {
		rc = hold(r, tid);
	}
	if (rc == -HP_E_BUSY) {
		stuck = r->stuck_tid ?: r->t.tid;
		rc = hold_another(r, stuck);
		other = !rc;
		r->stuck_tid = rc ? stuck : 0;
	}
	hp_log_release(mark, !other);
	if (other)
		hp_dbg(HP_DBG_PTRACE,
		       "pid %d: tid %d busy; calls through tid %d", (int)r->pid,
		       (int)stuck, (int)r->t.tid);
	if (rc)
		return rc == -ESRCH ? -HP_E_GONE : rc;
	r->open = true;
	return 0;
}

int hp_remote_to_world(struct hp_remote *r, struct hp_world *w)
{
	struct hp_thread *t = NULL;

	HP_BUG_ON(!r->open || r->w || r->nr_threads != 1);
	t = malloc(sizeof(*t));
	if (!t)
		return -ENOMEM;
	/* Its own priority again: from here it runs only to step out of a
	 * jump site, or for an unwind registration, as in any stop. */
	hp_pt_wake_keep(false);
	hp_prio_restore(r->t.tid, &r->prio);
	*t = r->t;
	t->regs = t->inj_regs;
	t->has_regs = true;
	*w = (struct hp_world){ .pid = r->pid,
				.threads = t,
				.nr_threads = 1,
				.cap_threads = 1,
				.stopped_at = r->stopped_at,
				.status_fd = -1,
				.task_fd = -1 };
	hp_world_reserve_stacks(1);
	r->open = false;
	return 0;
}

int hp_remote_borrow(struct hp_world *w, const struct hp_proc *proc,
		     struct hp_remote *r)
{
	*r = (struct hp_remote){ .w = w };
	return find_site(proc, &r->site);
}

int hp_remote_call(struct hp_remote *r, long nr, const long args[6], long *ret)
{
	int rc = -ESRCH;

	if (!r->w)
		rc = hp_pt_syscall(&r->t, &r->site, nr, args, ret);
	if (r->w) /* a thread runs: its stack may change */
		hp_world_drop_stacks(r->w);
	/* A borrowed world: any thread of it that has not exited, one in
	 * seccomp strict mode last (see call_tid). */
	for (int strict = 0; r->w && strict < 2 && rc == -ESRCH; strict++)
		for (size_t i = 0; i < r->w->nr_threads && rc == -ESRCH; i++)
			if (hp_seccomp_strict(r->w->threads[i].tid) == strict)
				rc = hp_pt_syscall(&r->w->threads[i], &r->site,
						   nr, args, ret);
	return rc == -ESRCH ? -HP_E_GONE : rc;
}

void hp_remote_end(struct hp_remote *r)
{
	if (r->open && !r->w) {
		hp_pt_inject_end(&r->t);
		let_go(r);
	}
	r->open = false;
}

/* Run one system call in the target with only one thread stopped. */
static int one_thread_syscall(const struct hp_proc *proc, long nr,
			      const long args[6], long *ret)
{
	struct hp_remote r;
	int rc = hp_remote_begin(proc, &r);

	if (!rc)
		rc = hp_remote_call(&r, nr, args, ret);
	hp_remote_end(&r);
	return rc;
}

int hp_remote_munmap(const struct hp_proc *proc, hp_raddr_t addr, uint64_t len)
{
	const long args[6] = { (long)addr, (long)len };
	long ret = 0;
	int rc = one_thread_syscall(proc, SYS_munmap, args, &ret);

	if (!rc && ret)
		rc = (int)ret;
	if (rc)
		hp_warn("pid %d: cannot unmap patch region 0x%" PRIx64 ": %s",
			(int)proc->pid, addr, hp_strerror(rc));
	return rc;
}
