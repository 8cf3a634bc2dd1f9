/*
 * The uninstall marks (DIR/<id>.uninstalled, hpatch uninstall's): each
 * process looked at while there are some has the patches they name
 * reverted, and a sweep of every process drops them once none is left
 * with one, those forked during its pass too.
 */
#include "agent/agent_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <inttypes.h>
#include <stdlib.h>

/* Lists of processes a sweep of the uninstall marks makes, at most, for
 * those it did not list before; then the marks wait for the next scan. */
#define HP_SWEEP_LISTS 16

/*
 * A sweep's pass reverted the uninstalled patches in every process its
 * scan listed; but a process forked meanwhile (hpatchd looks at no fork)
 * from one reverted after has them in its copy of the memory, a server's
 * worker say. Those the host has now that hpatchd does not know, started
 * before now (a process started since is the fork of one reverted, or a
 * new image), are due now, and the marks wait for their look: the next
 * list, after it, looks only at the few started during it, and none is
 * made once a look at them reverted nothing (only a process that had a
 * patch can have forked one that has it). Return: how many, or 1 when
 * the host's processes cannot be listed now.
 */
static size_t sweep_newcomers(struct ag_daemon *d, uint64_t now)
{
	const uint64_t end = hp_agent_now_ticks(); /* the pass's end */
	pid_t *pids = NULL;
	size_t nr = 0, n = 0;

	d->sweep_lists++;
	if (hp_agent_pids(&pids, &nr))
		return 1;
	for (size_t i = 0; i < nr; i++) {
		struct ag_proc *pr = NULL;
		uint64_t start;

		if (ag_find_proc(d, pids[i]))
			continue;
		start = hp_agent_start_time(pids[i]);
		if (!start || start > end)
			continue;
		pr = ag_add_proc(d, pids[i]);
		if (pr) {
			pr->seen = true;
			ag_schedule(pr, now);
		}
		n++;
	}
	free(pids);
	if (n)
		hp_dbg(HP_DBG_TIMING,
		       "uninstall marks: %zu processes not listed before", n);
	return n;
}

void ag_marks_revert(struct ag_daemon *d, struct ag_proc *pr, uint64_t now)
{
	const struct hp_rt_opts opts = ag_attempt_opts(d);
	const int rc =
		hp_agent_revert_removed(&d->store, pr->pid, &opts, &d->audit);

	if (rc > 0) {
		d->view.reverted += (uint64_t)rc;
		d->sweep_reverted++;
		hp_log(HP_LOG_INFO, "pid %d: reverted %d uninstalled patch%s",
		       (int)pr->pid, rc, rc > 1 ? "es" : "");
	} else if (rc < 0 &&
		   (hp_agent_ran_short(rc) || hp_agent_start_time(pr->pid))) {
		d->sweep_failed = true;
		d->view.failures++;
		ag_schedule(pr, ag_retry_at(d, now, 1));
	}
}

/*
 * An excluded process is never reverted by hpatchd, an uninstalled patch
 * no more than any: while one keeps a patch marked uninstalled (an
 * `hpatch uninstall` that found it busy, or was killed), the marks stay,
 * for `hpatch uninstall` again (it reverts everywhere) or the process's
 * exit, and it is said once. Dropped, the patch would stay for good
 * with nothing to tell of it.
 */
void ag_marks_hold(struct ag_daemon *d, struct ag_proc *pr, uint64_t now)
{
	char id[HP_PATCH_ID_MAX];
	const int rc = hp_agent_find_removed(&d->store, pr->pid, id);

	if (hp_agent_ran_short(rc)) {
		d->sweep_failed = true;
		ag_schedule(pr, ag_retry_at(d, now, 1));
		return;
	}
	if (rc || !id[0]) {
		pr->keeps_removed = false;
		return;
	}
	d->sweep_failed = true;
	if (pr->keeps_removed)
		return;
	pr->keeps_removed = true;
	hp_warn("pid %d (%s): keeps uninstalled patch '%s': excluded by the "
		"policy (%s), hpatchd does not revert it",
		(int)pr->pid, pr->exe ? pr->exe : "?", id,
		pr->excluded->pattern);
	hp_hint("'hpatch uninstall %s' again reverts it, or 'hpatch revert "
		"-p %d'",
		id, (int)pr->pid);
}

bool ag_marks_sweep_end(struct ag_daemon *d, uint64_t now)
{
	if (d->sweep_failed)
		return true;
	/* (Not until a list shows none new: a busy host starts processes
	 * all the time, a build server hundreds a second.) */
	if ((d->sweep_lists && !d->sweep_reverted) ||
	    !sweep_newcomers(d, now)) {
		ag_drop_marks(d);
		return true;
	}
	return d->sweep_lists >= HP_SWEEP_LISTS;
}

void ag_drop_marks(struct ag_daemon *d)
{
	for (size_t i = 0; i < d->store.nr_uninstalled; i++)
		if (!hp_store_find(&d->store, d->store.uninstalled[i]))
			hp_store_drop_mark(d->store.dir,
					   d->store.uninstalled[i]);
}
