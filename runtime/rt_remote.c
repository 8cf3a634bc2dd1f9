/*
 * System calls run in the target through one briefly stopped thread.
 */
#include "runtime/rt_lifecycle.h"
#include "runtime/arch_x86_64.h"
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

int hp_remote_begin(const struct hp_proc *proc, struct hp_remote *r)
{
	const pid_t tid = hp_proc_live_tid(proc->pid);
	int rc;

	*r = (struct hp_remote){ .t = { .tid = tid,
					.leader = tid == proc->pid } };
	rc = hp_proc_find_syscall_insn(proc, &r->insn);
	if (!rc)
		rc = hp_pt_seize(&r->t);
	if (!rc) {
		/* Raised first, it also reaches the stop without waiting. */
		hp_prio_raise(r->t.tid, &r->prio);
		rc = hp_pt_interrupt(&r->t);
	}
	if (!rc)
		rc = hp_pt_wait_stop(&r->t);
	if (rc) {
		hp_prio_restore(r->t.tid, &r->prio);
		hp_pt_release(&r->t);
		hp_pt_reap(&r->t, 1);
		return rc == -ESRCH ? -HP_E_GONE : rc;
	}
	r->open = true;
	return 0;
}

/* Return: 0 with *@ret the raw result (-errno on failure), or -HP_E_*. */
int hp_remote_call(struct hp_remote *r, long nr, const long args[6], long *ret)
{
	int rc = hp_pt_syscall(&r->t, r->insn, nr, args, ret);

	return rc == -ESRCH ? -HP_E_GONE : rc;
}

void hp_remote_end(struct hp_remote *r)
{
	if (r->open) {
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
