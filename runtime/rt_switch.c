/*
 * The switch: stop the world, check that no thread is in the way of what
 * changes, write (or restore) the jumps, resume; busy means back off and
 * retry until the timeout.
 */
#include "runtime/rt_lifecycle.h"
#include "runtime/arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"
#include <unistd.h>

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP_LOG_PREFIX "rt: "

/*
 * No instruction pointer on any jump site: one check for all of them.
 * @sites has room for @nr ranges.
 */
static int check_sites(struct hp_world *w, const struct hp_proc *proc,
		       const struct hp_rt_func *recs, uint32_t nr, bool undo,
		       struct hp_busy_range *sites, pid_t *busy_tid,
		       const struct hp_busy_range **busy)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < nr; i++)
		if (recs[i].old_addr)
			sites[n++] = (struct hp_busy_range){
				recs[i].old_addr,
				recs[i].old_addr + HP_X86_JMP_REL32_SIZE,
				recs[i].name,
				true,
				undo ? recs[i].jump : recs[i].orig,
			};
	return hp_world_step_out(w, sites, n, busy_tid, busy)
		       ?: hp_world_check(w, proc, sites, n, busy_tid, busy);
}

/*
 * With --allow-active: record in @who the threads that will go on in old
 * code (for the warning after the switch, not per try), then check only
 * that no thread is in the way of the jump sites themselves.
 */
static int note_old_code(struct hp_world *w, const struct hp_proc *proc,
			 const struct hp_busy_range *ranges, size_t nr_ranges,
			 const struct hp_rt_func *recs, uint32_t nr_recs,
			 bool undo, struct hp_busy_range *sites,
			 struct hp_who *who, pid_t *busy_tid,
			 const struct hp_busy_range **busy)
{
	size_t before = who->n;
	int rc = 0;

	if (!w->ip_only)
		rc = hp_world_check(w, proc, ranges, nr_ranges, busy_tid, busy);
	if (rc && rc != -HP_E_BUSY)
		return rc;
	hp_world_who_ips(w, ranges, nr_ranges, who);
	if (rc && who->n == before) /* found on a stack */
		hp_who_add(who, *busy_tid, (*busy)->name, HP_WHO_BELOW);
	return check_sites(w, proc, recs, nr_recs, undo, sites, busy_tid, busy);
}

/*
 * Stop the world until no thread is in the way of @ranges, then write (or
 * with @undo restore) the jumps. Busy: resume, back off (1 ms doubling to
 * 64 ms), retry until the timeout. With @keep (@nr_keep ranges), still
 * stopped after the writes, referenced[i] says whether any thread's
 * registers or stack point into keep[i] (then its memory must stay mapped).
 */
int hp_switch(struct hp_proc *proc, const struct hp_rt_opts *opts,
	      const struct hp_busy_range *ranges, size_t nr_ranges,
	      struct hp_rt_func *recs, uint32_t nr_recs, bool undo,
	      const struct hp_busy_range *keep, size_t nr_keep,
	      bool *referenced, struct hp_rt_result *res)
{
	const uint64_t deadline =
		hp_now_us() + (uint64_t)opts->timeout_ms * 1000;
	const bool active = opts->flags & HP_RT_ALLOW_ACTIVE;
	/* Threads may stay in the functions: then, without old patch regions
	 * to keep, the stop reads each thread's instruction and stack
	 * pointers alone, and the stacks are searched for returns into the
	 * functions after it, outside the pause. */
	const bool ip_only = active && !nr_keep;
	struct hp_who who;
	uint64_t backoff = 1000;
	struct hp_world w;
	struct hp_busy_range *sites = NULL;
	int rc;

	sites = calloc(nr_recs + 1, sizeof(*sites));
	if (!sites)
		return -ENOMEM;
	for (;;) {
		const struct hp_busy_range *busy = NULL;
		pid_t busy_tid = 0;
		uint64_t t0, t_stop, t_check, t_write;

		res->nr_tries++;
		rc = hp_world_prepare(&w, proc->pid);
		w.ip_only = ip_only;
		if (!rc)
			rc = hp_world_stop(&w);
		if (rc)
			break;
		t0 = w.stopped_at;
		/* Stacks read in the window need every stack's mapping
		 * (else after it, for the warning). */
		rc = ip_only ? 0 : hp_world_fresh_maps(&w, proc);
		t_stop = hp_now_us();
		if (!rc)
			rc = hp_rt_fault("stop");
		who = (struct hp_who){ 0 };
		if (!rc && !active)
			rc = hp_world_check(&w, proc, ranges, nr_ranges,
					    &busy_tid, &busy);
		else if (!rc)
			rc = note_old_code(&w, proc, ranges, nr_ranges, recs,
					   nr_recs, undo, sites, &who,
					   &busy_tid, &busy);
		t_check = hp_now_us();
		if (!rc)
			rc = hp_jumps_write(proc, recs, nr_recs, undo);
		t_write = hp_now_us();
		for (size_t k = 0; !rc && k < nr_keep; k++) {
			pid_t tid;
			const struct hp_busy_range *hit = NULL;

			referenced[k] = hp_world_check(&w, proc, &keep[k], 1,
						       &tid, &hit) != 0 ||
					hp_world_regs_point(&w, &keep[k]);
		}

		res->nr_threads = (uint32_t)w.nr_threads;
		hp_world_release(&w);
		res->pause_us = w.resumed_at - t0;
		if (!rc && ip_only && !hp_world_fresh_maps(&w, proc))
			hp_world_find_below(&w, proc, ranges, nr_ranges, &who);
		hp_world_free(&w);
		if (!rc && who.n) {
			char text[2048];

			hp_who_format(&who, text, sizeof(text));
			hp_warn("pid %d: applied anyway (--allow-active); %zu "
				"thread%s still in old code, finishing there: "
				"%s",
				(int)proc->pid, who.n, who.n == 1 ? "" : "s",
				text);
		}
		hp_dbg(HP_DBG_TIMING,
		       "pid %d: %zu threads: stop %llu us, check %llu us, "
		       "write %llu us, resume %llu us",
		       (int)proc->pid, (size_t)res->nr_threads,
		       (unsigned long long)(t_stop - t0),
		       (unsigned long long)(t_check - t_stop),
		       (unsigned long long)(t_write - t_check),
		       (unsigned long long)(t0 + res->pause_us - t_write));
		if (rc != -HP_E_BUSY)
			break;
		res->busy_tid = busy_tid;
		snprintf(res->busy_func, sizeof(res->busy_func), "%s",
			 busy->name);
		if (hp_now_us() + backoff > deadline) {
			rc = hp_error(-HP_E_BUSY,
				      "pid %d: tid %d: '%s' still in use "
				      "after %ld ms (%u tries)",
				      (int)proc->pid, (int)busy_tid, busy->name,
				      opts->timeout_ms, res->nr_tries);
			break;
		}
		usleep((useconds_t)backoff);
		if (backoff < 64000)
			backoff *= 2;
	}
	free(sites);
	return rc;
}
