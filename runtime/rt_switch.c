/*
 * The switch: stop the world, check that no thread is in the way of what
 * changes, write (or restore) the jumps, resume; busy means back off and
 * retry until the timeout.
 */
#include "runtime/rt_lifecycle.h"
#include "common/hp_arch_x86_64.h"
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

/* One attempt: the world stopped, and what the checks found. */
struct attempt {
	struct hp_world w;
	struct hp_who who; /* --allow-active: threads left in old code */
	struct hp_busy_range *sites; /* room for every record's jump site */
	const struct hp_busy_range *busy;
	pid_t busy_tid;
	uint64_t t_stop, t_check, t_write; /* hp_now_us() after each phase */
	uint64_t deadline;		   /* --timeout, as hp_now_us() */
	bool dry_run; /* HP_RT_DRY_RUN: check, write nothing */
	bool sharing; /* busy: a process sharing the memory came since */
};

/* No instruction pointer on any jump site: one check for all of them. */
static int check_sites(struct attempt *a, const struct hp_proc *proc,
		       const struct hp_switch *sw)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < sw->nr_recs; i++)
		if (sw->recs[i].old_addr)
			a->sites[n++] = (struct hp_busy_range){
				sw->recs[i].old_addr,
				sw->recs[i].old_addr + HP_X86_JMP_REL32_SIZE,
				sw->recs[i].name,
				true,
				sw->undo ? sw->recs[i].jump : sw->recs[i].orig,
			};
	return hp_world_step_out(&a->w, a->sites, n, &a->busy_tid, &a->busy)
		       ?: hp_world_check(&a->w, proc, a->sites, n, &a->busy_tid,
					 &a->busy);
}

/*
 * With --allow-active: record in a->who the threads that will go on in
 * old code (for the warning after the switch, not per try), then check
 * only that no thread is in the way of the jump sites themselves.
 */
static int note_old_code(struct attempt *a, const struct hp_proc *proc,
			 const struct hp_switch *sw)
{
	size_t before = a->who.n;
	int rc = 0;

	if (!a->w.ip_only)
		rc = hp_world_check(&a->w, proc, sw->ranges, sw->nr_ranges,
				    &a->busy_tid, &a->busy);
	if (rc && rc != -HP_E_BUSY)
		return rc;
	hp_world_who_ips(&a->w, sw->ranges, sw->nr_ranges, &a->who);
	if (rc && a->who.n == before) /* found on a stack */
		hp_who_add(&a->who, a->busy_tid, a->busy->name, HP_WHO_BELOW);
	return check_sites(a, proc, sw);
}

/* Still stopped after the writes: which kept regions are referenced? */
static void note_referenced(struct attempt *a, const struct hp_proc *proc,
			    const struct hp_switch *sw)
{
	for (size_t k = 0; k < sw->nr_keep; k++) {
		pid_t tid;
		const struct hp_busy_range *hit = NULL;

		sw->referenced[k] = hp_world_check(&a->w, proc, &sw->keep[k], 1,
						   &tid, &hit) != 0 ||
				    hp_world_regs_point(&a->w, &sw->keep[k]);
	}
}

/*
 * Inside the window: check, write the jumps, look at what stays
 * referenced. Return: 0, -HP_E_BUSY (a->busy says where), -errno.
 */
static int switch_stopped(struct attempt *a, struct hp_proc *proc,
			  const struct hp_switch *sw, bool active)
{
	/* Stacks read in the window need every stack's mapping
	 * (else after it, for the warning). */
	int rc = a->w.ip_only ? 0 : hp_world_fresh_maps(&a->w, proc);

	a->t_stop = hp_now_us();
	if (!rc)
		rc = hp_rt_fault("stop");
	/* Without regions to keep, the stacks are checked once. */
	a->w.stacks_once = !active && !sw->nr_keep;
	if (!rc && !active)
		rc = hp_world_check(&a->w, proc, sw->ranges, sw->nr_ranges,
				    &a->busy_tid, &a->busy);
	else if (!rc)
		rc = note_old_code(a, proc, sw);
	a->t_check = hp_now_us();
	if (!rc && !a->dry_run)
		rc = hp_jumps_write(proc, sw->recs, sw->nr_recs, sw->undo);
	a->t_write = hp_now_us();
	if (!rc)
		note_referenced(a, proc, sw);
	return rc;
}

/* After the window: say who runs on in old code, and what it cost. */
static void report_attempt(const struct attempt *a, const struct hp_proc *proc,
			   const struct hp_rt_result *res, int rc)
{
	const uint64_t t0 = a->w.stopped_at;

	if (!rc && a->who.n) {
		char text[2048];

		hp_who_format(&a->who, text, sizeof(text));
		hp_warn("pid %d: applied anyway (--allow-active); %zu "
			"thread%s still in old code, finishing there: %s",
			(int)proc->pid, a->who.n, a->who.n == 1 ? "" : "s",
			text);
	}
	hp_dbg(HP_DBG_TIMING,
	       "pid %d: %zu threads: stop %llu us, check %llu us, "
	       "write %llu us, resume %llu us",
	       (int)proc->pid, (size_t)res->nr_threads,
	       (unsigned long long)(a->t_stop - t0),
	       (unsigned long long)(a->t_check - a->t_stop),
	       (unsigned long long)(a->t_write - a->t_check),
	       (unsigned long long)(t0 + res->pause_us - a->t_write));
}

/* The world the caller stopped (once: later tries stop their own). */
static void take_held(struct attempt *a, struct hp_world *held)
{
	a->w = *held;
	*held = (struct hp_world){ .pid = held->pid,
				   .status_fd = -1,
				   .task_fd = -1 };
}

/* Stop, switch, resume: one try. */
static int try_switch(struct attempt *a, struct hp_proc *proc,
		      const struct hp_rt_opts *opts, const struct hp_switch *sw,
		      struct hp_rt_result *res)
{
	const bool active = opts->flags & HP_RT_ALLOW_ACTIVE;
	const bool held = sw->held && sw->held->nr_threads;
	int rc = 0;

	res->nr_tries++;
	a->who = (struct hp_who){ 0 };
	a->busy = NULL;
	a->busy_tid = 0;
	if (held)
		take_held(a, sw->held);
	else if (active) /* threads may be stepped: one tracer */
		rc = hp_world_prepare(&a->w, proc->pid, a->deadline);
	else
		rc = hp_world_prepare_split(&a->w, proc->pid, a->deadline);
	/* Threads may stay in the functions: then, without old patch
	 * regions to keep, the stop reads each thread's instruction and
	 * stack pointers alone, and the stacks are searched for returns
	 * into the functions after it, outside the pause. With regions to
	 * keep, every thread's registers are looked at (note_referenced):
	 * read in the stop, each by its tracer, unless threads may be in
	 * the functions, where the first thread often points into a region
	 * and the rest need not be read. */
	a->w.ip_only = active && !sw->nr_keep;
	a->w.want_regs = sw->nr_keep && !active;
	if (!rc && !held)
		rc = hp_world_stop(&a->w);
	if (rc)
		return rc;
	rc = hp_proc_check_since(proc->pid, proc->checked_last, false);
	a->sharing = rc == -HP_E_BUSY;
	if (!rc)
		rc = switch_stopped(a, proc, sw, active);
	res->nr_threads = (uint32_t)a->w.nr_threads;
	hp_world_release(&a->w);
	res->pause_us = a->w.resumed_at - a->w.stopped_at;
	if (!rc && a->w.ip_only && !hp_world_fresh_maps(&a->w, proc))
		hp_world_find_below(&a->w, proc, sw->ranges, sw->nr_ranges,
				    &a->who);
	hp_world_free(&a->w);
	report_attempt(a, proc, res, rc);
	return rc;
}

/*
 * After a busy try: is the thread in the way, the one that would not
 * stop or the one in a function, in a frozen cgroup? v1's freezer (which
 * takes threads alone) keeps it from any stop, v2's lets it stop but not
 * run: either way nothing changes until it is thawed, which no backoff
 * brings. Said at once, as for a process frozen whole (whose mapping
 * finds no thread to stop): retried, every other thread stood stopped a
 * stop's bound at each try until --timeout, or one left in a function
 * was said to be in use, not why. Return: true (said).
 */
static bool frozen_in_way(const struct attempt *a, const struct hp_proc *proc)
{
	const pid_t tid = a->busy ? a->busy_tid : a->w.stuck_tid;
	char state[160];

	if (!tid || !hp_task_frozen(tid))
		return false;
	if (a->busy) {
		hp_error(-HP_E_BUSY,
			 "pid %d: tid %d: '%s' in use, and its cgroup is "
			 "frozen; nothing changed",
			 (int)proc->pid, (int)tid, a->busy->name);
	} else {
		hp_world_stuck_state(&a->w, state, sizeof(state));
		hp_error(-HP_E_BUSY,
			 "pid %d: tid %d would not stop (%s): its cgroup is "
			 "frozen; every thread was let go, nothing changed",
			 (int)proc->pid, (int)tid, state);
	}
	hp_task_stuck_hint(tid);
	return true;
}

int hp_switch(struct hp_proc *proc, const struct hp_rt_opts *opts,
	      const struct hp_switch *sw, struct hp_rt_result *res)
{
	const uint64_t deadline =
		hp_now_us() + (uint64_t)opts->timeout_ms * 1000;
	uint64_t backoff = 1000;
	struct attempt a = { .dry_run = opts->flags & HP_RT_DRY_RUN,
			     .deadline = deadline };
	int rc;

	a.sites = calloc(sw->nr_recs + 1, sizeof(*a.sites));
	if (!a.sites) {
		if (sw->held && sw->held->nr_threads)
			hp_world_resume(sw->held);
		return -ENOMEM;
	}
	/* What a try says (a sharer, a thread still inside an earlier
	 * call) is said once, not at every try; the outcome once, after. */
	hp_log_quiet_repeats(true);
	while ((rc = try_switch(&a, proc, opts, sw, res)) == -HP_E_BUSY) {
		res->busy_tid = a.busy ? a.busy_tid : a.w.stuck_tid;
		snprintf(res->busy_func, sizeof(res->busy_func), "%s",
			 a.busy ? a.busy->name : "");
		if (a.sharing && hp_now_us() + backoff > deadline) {
			rc = hp_error(-HP_E_BUSY,
				      "pid %d: still shares its memory with "
				      "another process after %ld ms (%u "
				      "tries); every thread was let go, "
				      "nothing changed",
				      (int)proc->pid, opts->timeout_ms,
				      res->nr_tries);
			break;
		}
		if (frozen_in_way(&a, proc))
			break;
		if (!a.busy && hp_now_us() + backoff > deadline) {
			const pid_t sharer =
				hp_proc_vfork_sharer(proc->pid, a.w.stuck_tid);
			char state[160], why[96] = "";

			hp_world_stuck_state(&a.w, state, sizeof(state));
			/* Begun since the check for sharers, or missed by an
			 * index built before it. */
			if (sharer)
				snprintf(why, sizeof(why),
					 ": it waits for pid %d, its vfork "
					 "child, which shares its memory",
					 (int)sharer);
			rc = hp_error(-HP_E_BUSY,
				      "pid %d: tid %d would not stop (%s) "
				      "within %ld ms (%u tries)%s; every "
				      "thread was let go, nothing changed",
				      (int)proc->pid, (int)a.w.stuck_tid, state,
				      opts->timeout_ms, res->nr_tries, why);
			hp_task_stuck_hint(a.w.stuck_tid);
			break;
		}
		if (hp_now_us() + backoff > deadline) {
			rc = hp_error(-HP_E_BUSY,
				      "pid %d: tid %d: '%s' still in use "
				      "after %ld ms (%u tries)",
				      (int)proc->pid, (int)a.busy_tid,
				      a.busy->name, opts->timeout_ms,
				      res->nr_tries);
			break;
		}
		usleep((useconds_t)backoff);
		if (backoff < 64000)
			backoff *= 2;
	}
	hp_log_quiet_repeats(false);
	free(a.sites);
	return rc;
}
