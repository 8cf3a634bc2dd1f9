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

int hp_remote_begin(const struct hp_proc *proc, struct hp_remote *r)
{
	/* The thread found live when the process was opened, unless it is
	 * in strict mode, else one fit for calls (call_tid). */
	pid_t tid = proc->tid && !hp_seccomp_strict(proc->tid)
			    ? proc->tid
			    : call_tid(proc->pid);
	int rc;

	*r = (struct hp_remote){ .t = { .tid = tid,
					.leader = tid == proc->pid } };
	rc = hp_proc_find_syscall_insn(proc, &r->insn);
	if (!rc)
		rc = hp_pt_seize(&r->t);
	if (rc == -ESRCH && (tid = call_tid(proc->pid)) != r->t.tid) {
		r->t = (struct hp_thread){ .tid = tid,
					   .leader = tid == proc->pid };
		rc = hp_pt_seize(&r->t);
	}
	if (!rc) {
		/* Raised first, it also reaches the stop without waiting. */
		hp_prio_raise(r->t.tid, &r->prio);
		rc = hp_pt_interrupt(&r->t);
	}
	if (!rc)
		rc = hp_pt_wait_stop(&r->t);
	/* The thread's registers and mask, read once for every call. */
	if (!rc)
		rc = hp_pt_inject_begin(&r->t);
	if (rc) {
		hp_prio_restore(r->t.tid, &r->prio);
		hp_pt_release(&r->t);
		hp_pt_reap(&r->t, 1);
		return rc == -ESRCH ? -HP_E_GONE : rc;
	}
	r->open = true;
	return 0;
}

int hp_remote_borrow(struct hp_world *w, const struct hp_proc *proc,
		     struct hp_remote *r)
{
	*r = (struct hp_remote){ .w = w };
	return hp_proc_find_syscall_insn(proc, &r->insn);
}

int hp_remote_call(struct hp_remote *r, long nr, const long args[6], long *ret)
{
	int rc = -ESRCH;

	if (!r->w)
		rc = hp_pt_syscall(&r->t, r->insn, nr, args, ret);
	if (r->w) /* a thread runs: its stack may change */
		hp_world_drop_stacks(r->w);
	/* A borrowed world: any thread of it that has not exited, one in
	 * seccomp strict mode last (see call_tid). */
	for (int strict = 0; r->w && strict < 2 && rc == -ESRCH; strict++)
		for (size_t i = 0; i < r->w->nr_threads && rc == -ESRCH; i++)
			if (hp_seccomp_strict(r->w->threads[i].tid) == strict)
				rc = hp_pt_syscall(&r->w->threads[i], r->insn,
						   nr, args, ret);
	return rc == -ESRCH ? -HP_E_GONE : rc;
}

void hp_remote_end(struct hp_remote *r)
{
	if (r->open && !r->w) {
		hp_pt_inject_end(&r->t);
		hp_prio_restore(r->t.tid, &r->prio);
		hp_pt_release(&r->t);
		hp_pt_reap(&r->t, 1);
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
