/*
 * Apply: everything that does not need the target stopped happens before
 * the stop (finding the module by build-id, checking the original bytes,
 * choosing the hole, relocating, mapping and writing the image through one
 * briefly stopped thread); the world is stopped only to check that no
 * thread is inside the functions and to write the jumps. A process of one
 * thread is stopped once for both (map_all).
 */
#include "runtime/rt_lifecycle.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"
#include "signing/signing.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP_LOG_PREFIX "rt: "

void hp_prep_release(struct hp_prep *pr)
{
	free(pr->buf);
	free(pr->ranges);
	free(pr->sym_addrs);
	free(pr->heads);
	free(pr->restores);
	*pr = (struct hp_prep){ 0 };
}

/*
 * The loader's own priority for a whole operation (struct hp_prio): its
 * work is short and bounded, so SCHED_FIFO where allowed.
 */
void hp_rt_boost(void)
{
	struct hp_prio pr;

	hp_prio_forget();      /* a fork's child: at another since */
	hp_prio_raise(0, &pr); /* kept until the process exits */
}

/*
 * After a failed apply: does any site still jump into @pr's region (an
 * undo write that failed)? Then the region must stay. Unreadable counts.
 */
static bool jumps_into(const struct hp_proc *proc, const struct hp_prep *pr)
{
	for (uint32_t i = 0; i < pr->nr_recs; i++) {
		const struct hp_rt_func *f = &pr->recs[i];
		uint8_t cur[HP_X86_JMP_REL32_SIZE];

		if (!f->old_addr || f->kind != HP_RT_REC_REDIRECT)
			continue;
		if (hp_proc_read(proc, f->old_addr, cur, sizeof(cur)) ||
		    !memcmp(cur, f->jump, sizeof(cur)))
			return true;
	}
	return false;
}

/*
 * Switch every prepared module in one stop, so that a patch for a program
 * and its library takes effect (or fails) as one.
 */
static int switch_all(struct hp_proc *proc, const struct hp_rt_opts *opts,
		      struct hp_prep *prs, uint32_t nr, struct hp_world *held,
		      struct hp_rt_result *res)
{
	struct hp_busy_range *ranges = NULL;
	struct hp_rt_func *recs = NULL;
	size_t nr_ranges = 0, nr_recs = 0;
	int rc;

	if (nr == 1)
		return hp_switch(proc, opts,
				 &(struct hp_switch){
					 .ranges = prs[0].ranges,
					 .nr_ranges = prs[0].nr_ranges,
					 .recs = prs[0].recs,
					 .nr_recs = prs[0].nr_recs,
					 .held = held,
				 },
				 res);
	for (uint32_t i = 0; i < nr; i++) {
		nr_ranges += prs[i].nr_ranges;
		nr_recs += prs[i].nr_recs;
	}
	ranges = calloc(nr_ranges + 1, sizeof(*ranges));
	recs = calloc(nr_recs + 1, sizeof(*recs));
	if (!ranges || !recs) {
		free(ranges);
		free(recs);
		return -ENOMEM;
	}
	nr_ranges = nr_recs = 0;
	for (uint32_t i = 0; i < nr; i++) {
		memcpy(ranges + nr_ranges, prs[i].ranges,
		       prs[i].nr_ranges * sizeof(*ranges));
		nr_ranges += prs[i].nr_ranges;
		memcpy(recs + nr_recs, prs[i].recs,
		       prs[i].nr_recs * sizeof(*recs));
		nr_recs += prs[i].nr_recs;
	}
	rc = hp_switch(proc, opts,
		       &(struct hp_switch){ .ranges = ranges,
					    .nr_ranges = nr_ranges,
					    .recs = recs,
					    .nr_recs = (uint32_t)nr_recs,
					    .held = held },
		       res);
	free(ranges);
	free(recs);
	return rc;
}

/* Everything before any stop for one module: checks, plan, region. */
static int prepare_module(const struct hp_patch *p, struct hp_proc *proc,
			  const struct hp_rt_opts *opts, struct hp_prep *pr)
{
	const bool say = !(opts->flags & HP_RT_QUIET_NOTES);
	int rc;

	pr->stack = opts->flags & HP_RT_STACK;
	/* First: an apply that must wait for ld.so reads nothing more. */
	if (pr->m->eh_size && !(opts->flags & HP_RT_DRY_RUN)) {
		rc = hp_unwind_ready(proc, say);
		if (rc)
			return rc;
	}
	rc = hp_plan_prior(p, proc, opts, pr);
	if (rc == -HP_E_APPLIED)
		return rc;
	if (!rc)
		rc = hp_plan_rollback(p, proc->pid, pr, opts);
	if (!rc)
		rc = hp_prep_plan(p, proc, pr->m, pr);
	if (!rc && !(opts->flags & HP_RT_DRY_RUN))
		rc = hp_unwind_find(proc, pr, say);
	return rc;
}

/*
 * Map every module's region through one stopped thread. When that thread
 * is its process's only one (most services; a process hpatchd meets at
 * its exec), it stays stopped: *@held is the world of the switch, which
 * then stops nothing itself (one stop where there were two). Else it
 * runs on, and the switch stops every thread, briefly. A thread that would
 * not stop: -HP_E_BUSY, with it in *@stuck.
 */
static int map_all(const struct hp_patch *p, struct hp_proc *proc,
		   struct hp_prep *prs, uint32_t nr, struct hp_world *held,
		   pid_t *stuck)
{
	struct hp_remote rm = { .open = false };
	int rc = 0;

	for (uint32_t k = 0; k < nr && !rc; k++) {
		/* Before the stop for the first: a delay there (tests) keeps
		 * no thread stopped. */
		rc = hp_rt_fault("mmap");
		if (!rc && !rm.open)
			rc = hp_remote_begin(proc, &rm);
		if (!rc)
			rc = hp_region_map(p, proc, &prs[k], &rm);
	}
	if (rc == -HP_E_BUSY) /* would not stop, or frozen once stopped */
		*stuck = rm.stuck_tid ?: rm.t.tid;
	if (!rc && rm.nr_threads == 1 && !hp_remote_to_world(&rm, held))
		hp_dbg(HP_DBG_PTRACE,
		       "pid %d: one thread: mapped, and switched in the same "
		       "stop",
		       (int)proc->pid);
	hp_remote_end(&rm);
	return rc;
}

/*
 * Before the switch, so that the unwinder knows the code before any thread
 * can run it: through the held thread, or (none, or unfit: then it is let
 * go) a thread stopped for the call while the others run.
 */
static int register_all(struct hp_proc *proc, struct hp_prep *prs, uint32_t nr,
			struct hp_world *held)
{
	int rc = 0;

	for (uint32_t k = 0; k < nr && !rc; k++) {
		struct hp_thread *t =
			held->nr_threads ? &held->threads[0] : NULL;

		if (!prs[k].mapped)
			continue; /* a dry run */
		rc = hp_unwind_register(proc, &prs[k], t);
		if (rc == 1) {
			hp_world_resume(held);
			rc = hp_unwind_register(proc, &prs[k], NULL);
		} else if (!rc && t && prs[k].unwind_registered &&
			   hp_task_status_field(t->tid, "Threads:") != 1) {
			/* The target's own code ran in it: it may have
			 * started a thread, which the held world would not
			 * hold. The switch stops every thread. */
			hp_world_resume(held);
		}
	}
	return rc;
}

/* Every module of the patch that this process maps, in the patch's order. */
static int find_modules(const struct hp_patch *p, const struct hp_proc *proc,
			struct hp_prep *prs, uint32_t *nr)
{
	char hex[2 * HP_BUILD_ID_MAX + 1];

	for (uint32_t i = 0; i < p->nr_modules; i++)
		if (!hp_proc_find_module(proc, p->modules[i].build_id,
					 p->modules[i].build_id_len,
					 &prs[*nr].mod))
			prs[(*nr)++].m = &p->modules[i];
	if (*nr)
		return 0;
	hp_hex(hex, p->modules[0].build_id, p->modules[0].build_id_len);
	return hp_error(-HP_E_NOTARGET,
			"pid %d: maps no module with build-id %s ('%s')%s",
			(int)proc->pid, hex, p->modules[0].name,
			p->nr_modules > 1 ? " nor any other of the patch's"
					  : "");
}

/* Prepare every module; one applied already is left out. */
static int prepare_all(const struct hp_patch *p, struct hp_proc *proc,
		       const struct hp_rt_opts *opts, struct hp_prep *prs,
		       uint32_t *nr)
{
	int rc = 0;

	for (uint32_t k = 0; k < *nr && !rc;) {
		rc = prepare_module(p, proc, opts, &prs[k]);
		if (rc != -HP_E_APPLIED) {
			k++;
			continue;
		}
		/* Applied to this module already (say the library was
		 * loaded since): apply the rest. */
		hp_log(HP_LOG_INFO, "pid %d: %s: patch '%s' already applied",
		       (int)proc->pid, prs[k].mod.path, p->id);
		hp_rt_regions_free(prs[k].prior, prs[k].nr_prior);
		hp_prep_release(&prs[k]);
		memmove(&prs[k], &prs[k + 1], (*nr - k - 1) * sizeof(*prs));
		prs[--*nr] = (struct hp_prep){ 0 };
		rc = *nr ? 0
			 : hp_error(-HP_E_APPLIED,
				    "pid %d: patch '%s' is already applied",
				    (int)proc->pid, p->id);
	}
	return rc;
}

/* The apply under way's busy_why (hp_rt_busy_why), "" at its start. */
static char busy_why[sizeof(((struct hp_rt_result *)0)->busy_why)];

int hp_rt_busy_why(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(busy_why, sizeof(busy_why), fmt, ap);
	va_end(ap);
	return -HP_E_BUSY;
}

const char *hp_rt_reason(const struct hp_rt_result *res, int rc)
{
	if (!rc)
		return "";
	if (rc != -HP_E_BUSY || res->busy_func[0])
		return hp_strerror(rc);
	if (res->busy_why[0])
		return res->busy_why;
	return res->busy_tid ? "a thread would not stop" : hp_strerror(rc);
}

static void describe_patch(struct hp_rt_result *res, const struct hp_patch *p)
{
	*res = (struct hp_rt_result){ .pid = res->pid,
				      .sequence = p->sequence };
	snprintf(res->patch_id, sizeof(res->patch_id), "%s", p->id);
	if (p->info.is_signed)
		hp_sign_key_id_str(res->key_id, p->info.key_id);
	hp_result_build_id(res, p->modules[0].build_id,
			   p->modules[0].build_id_len);
}

static void describe_modules(struct hp_rt_result *res,
			     const struct hp_prep *prs, uint32_t nr)
{
	if (nr)
		hp_result_build_id(res, prs[0].m->build_id,
				   prs[0].m->build_id_len);
	for (uint32_t k = 0; k < nr; k++) {
		res->no_unwinder |= prs[k].no_unwinder;
		hp_list_add(res->module, sizeof(res->module), prs[k].mod.path);
		res->nr_funcs += prs[k].m->nr_funcs;
		for (uint32_t i = 0; i < prs[k].m->nr_funcs; i++)
			hp_result_add_function(res, prs[k].m->funcs[i].name);
	}
}

/* After the switch: earlier patches superseded, the host's state. */
static void commit_all(const struct hp_patch *p, const struct hp_proc *proc,
		       const struct hp_rt_opts *opts, const struct hp_prep *prs,
		       uint32_t nr)
{
	for (uint32_t k = 0; k < nr; k++) {
		char hex[2 * HP_BUILD_ID_MAX + 1];

		hp_prep_supersede(proc, &prs[k]);
		hp_perfmap_add(proc, p->id, &prs[k]);
		/* Recorded already (every process of a build after the
		 * first): the plan's read of this very operation said so,
		 * through the same checks of the directory and the file. A
		 * state replaced since is seen by the next operation's
		 * read, as one replaced after a record is. */
		if (prs[k].recorded >= p->sequence)
			continue;
		hp_hex(hex, prs[k].m->build_id, prs[k].m->build_id_len);
		if (hp_rt_state_record(opts->state_dir, hex, p->sequence))
			hp_warn("pid %d: patched, but the anti-rollback state "
				"of %s was not recorded",
				(int)proc->pid, prs[k].mod.path);
	}
}

/*
 * The thread that registered @pr's unwind table was left inside the call
 * (asleep in the kernel past its bound): the table may be the unwinder's
 * by now, or become so, its object linked in the unwinder's list. Unmapped,
 * the unwinder's next walk (an exception, a cancellation, a backtrace)
 * reads unmapped memory; asked to forget a table it does not know, libgcc
 * aborts. So the region stays, and no later hpatch may take it for an
 * unused one to unmap: its header's magic is cleared.
 */
static void keep_unknown(const struct hp_proc *proc, const struct hp_prep *pr)
{
	static const uint8_t zero[sizeof(((struct hp_rt_header *)0)->magic)];

	if (hp_proc_write(proc, pr->region, zero, sizeof(zero)))
		hp_warn("pid %d: cannot clear the header of region 0x%" PRIx64,
			(int)proc->pid, pr->region);
	hp_error(-HP_E_BUSY,
		 "pid %d: the patch region at 0x%" PRIx64 " stays mapped, "
		 "unused: a thread left inside the registration of its "
		 "unwind table may have registered it",
		 (int)proc->pid, pr->region);
	hp_hint("its pages go with the process: restart it to free them");
}

/* After a failure: unmap what was mapped, unless a jump still uses it. */
static int undo_all(struct hp_proc *proc, const struct hp_prep *prs,
		    uint32_t nr, bool scanned, int rc)
{
	/* (Even found by a scan: the new program may be the old build.) */
	if (hp_proc_execd(proc)) {
		hp_error(-HP_E_EXEC,
			 "pid %d: executed a new program during the apply; "
			 "the image prepared for went with it, nothing to undo "
			 "and nothing changed in the new one",
			 (int)proc->pid);
		hp_hint("apply again to patch the new program");
		return -HP_E_EXEC;
	}
	if (hp_proc_gone(proc->pid)) {
		/* (Found by a scan: nothing was left to patch, no error.) */
		hp_log(scanned ? HP_LOG_INFO : HP_LOG_ERROR,
		       "pid %d: the process exited during the apply; nothing "
		       "to undo",
		       (int)proc->pid);
		return -HP_E_GONE;
	}
	for (uint32_t k = 0; k < nr; k++) {
		if (!prs[k].mapped)
			continue;
		if (!jumps_into(proc, &prs[k])) {
			const struct hp_rt_header *hdr =
				(const struct hp_rt_header *)prs[k].buf;

			/* Deregistered first, or kept (never a stale FDE). */
			if (prs[k].unwind_registered &&
			    hp_unwind_deregister(proc, prs[k].region, hdr,
						 prs[k].unwind))
				continue;
			if (prs[k].unwind_left) {
				keep_unknown(proc, &prs[k]);
				continue;
			}
			hp_remote_munmap(proc, prs[k].region,
					 prs[k].region_size);
			continue;
		}
		hp_error(-EIO,
			 "pid %d: a jump into the patch region at 0x%" PRIx64
			 " could not be undone; the region stays mapped",
			 (int)proc->pid, prs[k].region);
		hp_hint("the process may run part of the patch: restart it, "
			"or check with 'hpatch status -p %d'",
			(int)proc->pid);
	}
	return rc;
}

/*
 * Open locked process @pid into @proc once no other process shares its
 * memory (the first of the two looks: docs/LIFECYCLE.md). Return: 0, or
 * -errno / -HP_E_* with @proc closed.
 */
static int open_alone(pid_t pid, const struct hp_rt_opts *opts,
		      const struct hp_rt_lock *lk, struct hp_proc *proc)
{
	const bool scanned = opts->flags & HP_RT_SCANNED;
	pid_t last = hp_last_pid();
	int rc;

	/* The lock's read of /proc/PID/stat saw whether the leader lives:
	 * the check and the open ask no more (two reads less). */
	rc = lk->live ? hp_proc_check_alone_live(pid, opts->sharers)
		      : hp_proc_check_alone(pid, opts->sharers);
	if (rc)
		return rc;
	rc = lk->live ? hp_proc_open_live(pid, proc, scanned)
		      : hp_proc_open(pid, proc, scanned);
	if (!rc && lk->live && proc->tid != pid) {
		/* The leader lost its memory after it was seen live (it
		 * exited, the others run on): the check may have asked
		 * through no memory at all. Again, through a live thread. */
		last = hp_last_pid();
		rc = hp_proc_check_alone(pid, opts->sharers);
		if (rc)
			hp_proc_close(proc);
	}
	if (rc)
		return rc;
	proc->checked_last = last;
	proc->start = lk->start;
	/* Its stacks will be read: signal frames to follow (before any
	 * stop; searched once per C library of a run). */
	hp_proc_find_restorers(proc);
	return 0;
}

static int apply_one(const struct hp_patch *p, pid_t pid,
		     const struct hp_rt_opts *opts, struct hp_rt_result *res)
{
	struct hp_proc proc;
	struct hp_rt_lock lk = { .fd = -1 };
	/* The process's only thread, stopped to map the patch (map_all). */
	struct hp_world held = { .status_fd = -1, .task_fd = -1 };
	struct hp_prep *prs = calloc(p->nr_modules, sizeof(*prs));
	const bool scanned = opts->flags & HP_RT_SCANNED;
	uint32_t nr = 0;
	int rc;
	uint64_t t[4] = { hp_now_us() };

	res->pid = pid;
	describe_patch(res, p);
	busy_why[0] = 0;
	if (!prs) {
		rc = -ENOMEM;
		goto out;
	}
	rc = hp_rt_lock(opts->state_dir, pid, opts->timeout_ms, &lk);
	res->start_time = lk.start;
	if (!rc)
		rc = open_alone(pid, opts, &lk, &proc);
	if (rc == -HP_E_GONE && scanned)
		hp_log(HP_LOG_INFO, "pid %d: exited before it was patched",
		       (int)pid);
	if (rc)
		goto out;
	if (!(opts->flags & HP_RT_DRY_RUN))
		hp_collect_retired(&proc);
	rc = find_modules(p, &proc, prs, &nr);
	t[1] = hp_now_us();
	if (!rc)
		rc = prepare_all(p, &proc, opts, prs, &nr);
	if (!rc && !(opts->flags & HP_RT_DRY_RUN))
		rc = map_all(p, &proc, prs, nr, &held, &res->busy_tid);
	if (!rc)
		rc = register_all(&proc, prs, nr, &held);
	/* (Mapping may have moved it, to a hole found free again.) */
	if (nr && (!rc || prs[0].mapped))
		res->region = prs[0].region;
	t[2] = hp_now_us();
	describe_modules(res, prs, nr);
	if (!rc)
		rc = switch_all(&proc, opts, prs, nr, &held, res);
	/* Not taken by a switch (a failure before): let go before the undo. */
	if (held.nr_threads)
		hp_world_resume(&held);
	t[3] = hp_now_us();
	hp_dbg(HP_DBG_TIMING,
	       "pid %d: apply: open %llu us, prepare and map %llu us, "
	       "switch %llu us",
	       (int)pid, (unsigned long long)(t[1] - t[0]),
	       (unsigned long long)(t[2] - t[1]),
	       (unsigned long long)(t[3] - t[2]));
	if (!rc && !(opts->flags & HP_RT_DRY_RUN))
		commit_all(p, &proc, opts, prs, nr);
	else if (nr)
		rc = undo_all(&proc, prs, nr, scanned, rc);
	for (uint32_t k = 0; k < nr; k++) {
		hp_rt_regions_free(prs[k].prior, prs[k].nr_prior);
		hp_prep_release(&prs[k]);
	}
	hp_proc_close(&proc);
out:
	hp_rt_unlock(&lk);
	free(prs);
	res->rc = rc;
	if (rc == -HP_E_BUSY && !res->busy_tid && !res->busy_func[0])
		snprintf(res->busy_why, sizeof(res->busy_why), "%s", busy_why);
	return rc;
}

int hp_rt_apply(const struct hp_patch *p, pid_t pid,
		const struct hp_rt_opts *opts, struct hp_rt_result *res)
{
	struct hp_prio pr;
	int rc;

	hp_prio_raise(0, &pr);
	hp_pt_set_call_bound(opts->timeout_ms);
	rc = apply_one(p, pid, opts, res);
	hp_rt_op_end(opts);
	hp_prio_restore(0, &pr);
	return rc;
}

/*
 * An operation ends with no timer of ours armed, whatever its path: kept
 * for the next operation of a batch, an armed one (refiring, once
 * expired) would end the caller's next wait with EINTR (hpatchd's poll,
 * a fallback's waitpid, an sd-bus call), for nothing. One timer_settime,
 * and only if armed.
 */
void hp_rt_op_end(const struct hp_rt_opts *opts)
{
	if (opts->flags & HP_RT_BATCH)
		hp_pt_wake_keep(false);
	else
		hp_pt_wake_release();
}

void hp_rt_batch_end(void)
{
	hp_pt_wake_release();
}
