/*
 * Revert goes back exactly one step; a reverted region is unmapped, or
 * kept retired while a thread may still use it and collected by a later
 * hpatch once nothing points into it.
 */
#include "runtime/rt_lifecycle.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"
#include "signing/signing.h"
#include <sys/syscall.h>

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP_LOG_PREFIX "rt: "

/*
 * After a revert: unmap the region, or when a thread still points into it
 * (a return address, or a pointer to its data), keep it and mark it
 * retired so a later hpatch unmaps it once nothing does.
 */
static void release_region(struct hp_proc *proc, const struct hp_rt_region *r,
			   bool referenced)
{
	/* Unmapped only once the unwinder forgot it (docs/UNWIND.md); a
	 * failed deregistration keeps it, retired, for a later try. */
	if (referenced ||
	    hp_unwind_deregister(proc, r->addr, &r->hdr, &r->unwind))
		hp_region_retire(proc, r);
	else
		hp_remote_munmap(proc, r->addr, r->hdr.region_size);
}

/* After a revert: patches it had replaced are in effect again. */
void hp_revive_superseded(const struct hp_proc *proc,
			  const struct hp_rt_region *reverted)
{
	struct hp_rt_region *regions = NULL;
	size_t nr = 0;

	if (hp_rt_find_regions(proc, &regions, &nr))
		return;
	for (size_t i = 0; i < nr; i++)
		if (regions[i].addr != reverted->addr && regions[i].active &&
		    (regions[i].hdr.flags & HP_RT_SUPERSEDED))
			hp_region_set_flag(proc, &regions[i], HP_RT_SUPERSEDED,
					   false);
	hp_rt_regions_free(regions, nr);
}

/*
 * Of @regions' collectable ones (@unused), those a thread of stopped @w
 * still points into (a return address, a pointer on its stack or in a
 * register) stay, for a later hpatch.
 */
static void keep_referenced(struct hp_world *w, const struct hp_proc *proc,
			    const struct hp_rt_region *regions, size_t nr,
			    bool *unused)
{
	for (size_t i = 0; i < nr; i++) {
		const struct hp_busy_range keep = hp_busy_region(&regions[i]);
		const struct hp_busy_range *hit = NULL;
		pid_t tid = 0;
		int rc;

		if (!unused[i])
			continue;
		rc = hp_world_check(w, proc, &keep, 1, &tid, &hit);
		if (!rc && hp_world_regs_point(w, &keep))
			rc = -HP_E_BUSY;
		if (!rc)
			continue;
		unused[i] = false;
		if (rc == -HP_E_BUSY)
			hp_dbg(HP_DBG_PTRACE,
			       "pid %d: unused region '%s' kept: thread %d "
			       "points into it",
			       (int)proc->pid, regions[i].hdr.patch_id,
			       (int)tid);
		else
			hp_dbg(HP_DBG_PTRACE,
			       "pid %d: unused region '%s' kept: stacks not "
			       "read: %s",
			       (int)proc->pid, regions[i].hdr.patch_id,
			       hp_strerror(rc));
	}
}

/* Unmap collectable regions that no thread points into any more. */
void hp_collect_retired(struct hp_proc *proc)
{
	struct hp_rt_region *regions = NULL;
	struct hp_world w;
	struct hp_remote rm = { 0 };
	bool *unused = NULL;
	size_t nr = 0, nr_retired = 0;
	int site = -ENOENT;

	if (hp_rt_find_regions(proc, &regions, &nr))
		return;
	unused = calloc(nr + 1, sizeof(*unused));
	nr_retired = unused ? hp_plan_retired(regions, nr, unused) : 0;
	if (!nr_retired || !unused)
		goto out;
	/* Where its system calls run, found before the stop: a first search
	 * of libc for its "syscall; ret" reads ~400 KiB of it. */
	site = hp_remote_borrow(&w, proc, &rm);
	if (hp_world_prepare(&w, proc->pid, 0) || hp_world_stop(&w)) {
		hp_dbg(HP_DBG_PTRACE,
		       "pid %d: %zu unused region(s) kept: not stopped",
		       (int)proc->pid, nr_retired);
		goto out;
	}
	if (hp_world_fresh_maps(&w, proc) ||
	    hp_proc_check_since(proc->pid, proc->checked_last, true)) {
		hp_dbg(HP_DBG_PTRACE,
		       "pid %d: %zu unused region(s) kept: its memory map "
		       "not read, or a task created since may share it",
		       (int)proc->pid, nr_retired);
		hp_world_resume(&w);
		goto out;
	}
	keep_referenced(&w, proc, regions, nr, unused);
	/*
	 * Unmap while stopped: this stop is no patch's pause. A registered
	 * unwind table is deregistered first, which needs the other threads
	 * running: those regions wait until after the resume.
	 */
	if (!site)
		for (size_t i = 0; i < nr; i++) {
			if (regions[i].unwind.deregister)
				continue;
			const long args[6] = {
				(long)regions[i].addr,
				(long)regions[i].hdr.region_size,
			};
			long ret = -1;

			if (unused[i] &&
			    !hp_remote_call(&rm, SYS_munmap, args, &ret) &&
			    !ret)
				hp_log(HP_LOG_INFO,
				       "pid %d: unmapped unused patch region "
				       "'%s'",
				       (int)proc->pid, regions[i].hdr.patch_id);
		}
	hp_remote_end(&rm);
	hp_world_resume(&w);
	hp_dbg(HP_DBG_TIMING, "pid %d: collection: stopped %llu us",
	       (int)proc->pid,
	       (unsigned long long)(w.resumed_at - w.stopped_at));
	/* No jump leads into a collected region: nothing enters it again. */
	for (size_t i = 0; i < nr; i++)
		if (unused[i] && regions[i].unwind.deregister &&
		    !hp_unwind_deregister(proc, regions[i].addr,
					  &regions[i].hdr, &regions[i].unwind))
			hp_remote_munmap(proc, regions[i].addr,
					 regions[i].hdr.region_size);
	if (hp_proc_read_maps(proc))
		hp_warn("pid %d: cannot re-read the memory map",
			(int)proc->pid);
out:
	free(unused);
	hp_rt_regions_free(regions, nr);
}

static void describe_revert(struct hp_rt_result *res,
			    const struct hp_revert_plan *rp)
{
	const struct hp_rt_region *r = rp->newest;

	res->sequence = r->hdr.sequence;
	snprintf(res->patch_id, sizeof(res->patch_id), "%s", r->hdr.patch_id);
	if (memcmp(r->hdr.key_id, (uint8_t[HP_KEY_ID_BYTES]){ 0 },
		   HP_KEY_ID_BYTES))
		hp_sign_key_id_str(res->key_id, r->hdr.key_id);
	hp_result_build_id(res, r->hdr.build_id,
			   r->hdr.build_id_len <= HP_BUILD_ID_MAX
				   ? r->hdr.build_id_len
				   : 0);
	res->region = r->addr;
	for (size_t g = 0; g < rp->nr_group; g++) {
		const struct hp_rt_region *q = rp->group[g];

		hp_list_add(res->module, sizeof(res->module), q->hdr.module);
		res->nr_funcs += q->hdr.nr_funcs;
		for (uint32_t i = 0; i < q->hdr.nr_funcs; i++)
			hp_result_add_function(res, q->funcs[i].name);
	}
}

static int revert_one(pid_t pid, const struct hp_rt_opts *opts,
		      struct hp_rt_result *res)
{
	struct hp_rt_region *regions = NULL;
	struct hp_revert_plan rp = { 0 };
	struct hp_proc proc;
	struct hp_rt_lock lk = { .fd = -1 };
	size_t nr = 0;
	pid_t last;
	int rc;

	*res = (struct hp_rt_result){ .pid = pid };
	rc = hp_rt_lock(opts->state_dir, pid, opts->timeout_ms, &lk);
	last = hp_last_pid();
	if (!rc)
		rc = hp_proc_check_alone(pid, opts->sharers);
	if (rc)
		goto out;
	rc = hp_proc_open(pid, &proc, false);
	if (rc)
		goto out;
	proc.checked_last = last;
	hp_world_raise_early(hp_task_status_field(pid, "Threads:"));
	hp_proc_find_restorers(&proc); /* its stacks will be read */
	hp_collect_retired(&proc);
	rc = hp_rt_find_regions(&proc, &regions, &nr);
	if (!rc)
		rc = hp_plan_revert(regions, nr, &rp);
	if (rc == -HP_E_NOTAPPLIED)
		rc = hp_error(rc, "pid %d: no patch is applied", (int)pid);
	if (rc)
		goto out_free;
	describe_revert(res, &rp);
	rc = hp_switch(&proc, opts,
		       &(struct hp_switch){ .ranges = rp.ranges,
					    .nr_ranges = rp.nr_ranges,
					    .recs = rp.recs,
					    .nr_recs = rp.nr_recs,
					    .undo = true,
					    .keep = rp.keep,
					    .nr_keep = rp.nr_group,
					    .referenced = rp.referenced },
		       res);
	for (size_t g = 0; !rc && g < rp.nr_group; g++) {
		release_region(&proc, rp.group[g], rp.referenced[g]);
		hp_revive_superseded(&proc, rp.group[g]);
	}
out_free:
	hp_revert_plan_release(&rp);
	hp_rt_regions_free(regions, nr);
	hp_proc_close(&proc);
out:
	hp_rt_unlock(&lk);
	res->rc = rc;
	return rc;
}

int hp_rt_revert(pid_t pid, const struct hp_rt_opts *opts,
		 struct hp_rt_result *res)
{
	struct hp_prio pr;
	int rc;

	hp_prio_raise(0, &pr);
	hp_pt_set_call_bound(opts->timeout_ms);
	rc = revert_one(pid, opts, res);
	hp_rt_op_end(opts);
	hp_prio_restore(0, &pr);
	return rc;
}
