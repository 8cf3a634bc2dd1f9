/*
 * hpatchd's tries: one (process, patch) track at a time, in slices so a
 * busy target holds the loop at most HP_BUSY_SLICE_MS; the result kept
 * on the track (applied, or pending / busy / refused with the reason and
 * the time of the next try, by the policy's retry schedule), then the
 * fallback, at most once. The loop that calls them is ag_daemon.c.
 */
#include "agent/agent.h"
#include "agent/agent_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define HP_LOG_PREFIX "hpatchd: "
#define HP_WINDOW_RECHECK_US 60000000
#define HP_BUSY_SLICE_MS 10 /* a busy target holds the loop at most */
#define HP_BUSY_GAP_US 1000 /* between two slices: others go first */

/* How one try runs: the policy's timeout, the daemon's state directory. */
struct hp_rt_opts ag_attempt_opts(const struct ag_daemon *d)
{
	/* A run of operations: the timer and signal handler that bound a
	 * try's waits stay set up for the next (hp_rt_batch_end() at the
	 * end), instead of six system calls more for each process. Each
	 * operation ends with the timer disarmed: no signal of it wakes
	 * the loop's poll or a fallback's sd-bus call; a fallback's
	 * command execs, which resets the handler. The note of
	 * a missing unwinder comes back in the result, said once a build. */
	return (struct hp_rt_opts){ .flags = HP_RT_BATCH | HP_RT_QUIET_NOTES,
				    .timeout_ms = d->pol.attempt_timeout_ms,
				    .state_dir = d->conf->state_dir,
				    .sharers = d->sharers };
}

/* Is every module of @p that the process maps patched by @p now? */
static bool is_applied(const struct hp_patch *p, uint32_t mapped,
		       const struct hp_rt_applied *list, size_t nr)
{
	uint32_t n = 0;

	for (size_t i = 0; i < nr; i++)
		n += list[i].active && list[i].sequence == p->sequence &&
		     !strcmp(list[i].patch_id, p->id);
	return n >= mapped;
}

/* The wait after the @tries-th failed try. */
static uint32_t ag_retry_delay_ms(const struct hp_policy *pol, uint32_t tries)
{
	if (!pol->nr_retry)
		return (uint32_t)pol->rescan_ms;
	return pol->retry_ms[tries <= pol->nr_retry ? tries - 1
						    : pol->nr_retry - 1];
}

uint64_t ag_retry_at(const struct ag_daemon *d, uint64_t now, uint32_t tries)
{
	return now + (uint64_t)ag_retry_delay_ms(&d->pol, tries) * 1000;
}

/* Messages of a slice that may not be its try's last: held until its
 * result says whether they are the try's verdict. */
struct ag_held {
	enum hp_log_level level[8];
	char msg[8][512];
	size_t nr;
};

static void hold_msg(enum hp_log_level level, const char *msg, void *ctx)
{
	struct ag_held *h = ctx;

	if (h->nr < HP_ARRAY_SIZE(h->msg)) {
		h->level[h->nr] = level;
		snprintf(h->msg[h->nr++], sizeof(h->msg[0]), "%s", msg);
	}
}

/*
 * One slice of a try of @e on @pid: the apply bound to HP_BUSY_SLICE_MS of
 * the try's attempt_timeout, so that a target kept busy holds the loop
 * (and every new process waiting behind it) one slice, not the whole
 * timeout; the try goes on in its next slice, from the schedule, once the
 * processes due meanwhile had their turn. Only the try's last slice is
 * its verdict: a busy one before it is neither logged nor audited.
 * Return: as hp_rt_apply, or 1: busy (a function in use, or the
 * process's dynamic linker loading objects), the try goes on.
 */
static int apply_slice(struct ag_daemon *d, struct ag_track *t,
		       const struct hp_store_entry *e, pid_t pid,
		       struct hp_rt_result *res)
{
	static struct ag_held held;
	const uint64_t budget_us = (uint64_t)d->pol.attempt_timeout_ms * 1000;
	const uint64_t left_us =
		budget_us > t->busy_us ? budget_us - t->busy_us : 0;
	const bool last = left_us <= HP_BUSY_SLICE_MS * 1000;
	const uint64_t t0 = hp_now_us();
	struct hp_rt_opts opts = ag_attempt_opts(d);
	int rc;

	opts.timeout_ms = last ? (long)(left_us / 1000) : HP_BUSY_SLICE_MS;
	if (opts.timeout_ms < 1)
		opts.timeout_ms = 1;
	held.nr = 0;
	if (!last)
		hp_log_set_sink(hold_msg, &held);
	rc = hp_rt_apply(e->p, pid, &opts, res);
	if (last) {
		t->busy_us = 0;
		return rc;
	}
	hp_log_set_sink(d->conf->log_sink, NULL);
	if (hp_rt_busy(rc)) {
		t->busy_us += hp_now_us() - t0;
		return 1;
	}
	t->busy_us = 0;
	for (size_t i = 0; i < held.nr; i++)
		hp_log(held.level[i], "%s", held.msg[i]);
	return rc;
}

/*
 * What an apply noted of a process (hp_rt_result: no unwinder loaded),
 * said once per patch and build: in a storm of new processes of one
 * build, each would say it again, hundreds of lines a second.
 */
static void say_notes(struct ag_daemon *d, const struct hp_rt_result *res)
{
	const uint64_t h = ag_hash(ag_hash(0, res->patch_id), res->build_id);

	if (!res->no_unwinder)
		return;
	for (size_t i = 0; i < HP_ARRAY_SIZE(d->noted); i++)
		if (d->noted[i] == h)
			return;
	d->noted[d->next_noted++ % HP_ARRAY_SIZE(d->noted)] = h;
	hp_log(HP_LOG_INFO,
	       "pid %d: no unwinder loaded (libgcc_s): patched frames stay "
	       "opaque to one loaded later (said once for patch '%s' on "
	       "build %s)",
	       (int)res->pid, res->patch_id, res->build_id);
}

/* Busy: a function in use by a thread, a thread that would not stop
 * (asleep where no interrupt reaches it: a frozen cgroup, say), or what
 * the apply's result says (hp_rt_reason: a loading dynamic linker, a
 * process sharing its memory...). */
static void set_busy(struct ag_daemon *d, struct ag_track *t,
		     const struct hp_rt_result *res)
{
	if (res->busy_func[0])
		ag_set_track(d, t, HP_TRACK_BUSY, "%s in use by thread %d",
			     res->busy_func, (int)res->busy_tid);
	else if (res->rc == -HP_E_BUSY && res->busy_tid && !res->busy_why[0])
		ag_set_track(d, t, HP_TRACK_BUSY,
			     "thread %d would not stop (asleep where no "
			     "interrupt reaches it)",
			     (int)res->busy_tid);
	else
		ag_set_track(d, t, HP_TRACK_BUSY, "%s",
			     hp_rt_reason(res, res->rc));
}

bool ag_has_unwind(const struct hp_patch *p)
{
	for (uint32_t i = 0; i < p->nr_modules; i++)
		if (p->modules[i].eh_size)
			return true;
	return false;
}

/* @e applied to @pr by a try begun at @now, as @res says. */
static void say_applied(struct ag_daemon *d, const struct ag_proc *pr,
			const struct hp_store_entry *e,
			const struct hp_rt_result *res, uint64_t now)
{
	say_notes(d, res);
	d->view.applied++;
	d->view.last_pause_us = res->pause_us;
	if (pr->exec_us)
		hp_dbg(HP_DBG_TIMING,
		       "pid %d: exec seen %" PRIu64
		       " us ago, apply took %" PRIu64 " us",
		       (int)pr->pid, hp_now_us() - pr->exec_us,
		       hp_now_us() - now);
	hp_log(HP_LOG_INFO,
	       "pid %d: applied '%s' to %s (paused %" PRIu64 " us)",
	       (int)pr->pid, e->id, res->module, res->pause_us);
}

static void attempt(struct ag_daemon *d, struct ag_proc *pr, struct ag_track *t,
		    const struct hp_store_entry *e, uint64_t now)
{
	struct hp_rt_result res;
	int rc;

	/* ld.so has not loaded the program's libraries yet: such an apply
	 * waits for it (-HP_E_LOADING, hp_unwind_ready), after an open, a lock,
	 * the maps read: the first rescan, 3 ms on, is when it can. */
	if (ag_has_unwind(e->p) && ag_at_exec(pr, now)) {
		pr->deferred = true;
		ag_set_track(d, t, HP_TRACK_PENDING,
			     "process starting: its libraries still load");
		return;
	}
	rc = apply_slice(d, t, e, pr->pid, &res);

	/* Its first apply read its start time, after the match: known by
	 * it from now on (reconcile). */
	if (pr->fresh && res.start_time) {
		pr->start_time = res.start_time;
		pr->fresh = false;
	}
	if (rc == 1) {
		set_busy(d, t, &res);
		t->due_us = hp_now_us() + HP_BUSY_GAP_US;
		ag_schedule(pr, t->due_us);
		return;
	}
	if (rc == -HP_E_GONE || (rc && hp_agent_start_time(pr->pid) == 0)) {
		pr->gone = true;
		return;
	}
	if (rc == -HP_E_LOADING && ag_is_starting(pr, now)) {
		/* ld.so still loads its objects, as at every exec, and the
		 * patch's unwinder may be among them: nothing was done (no
		 * stop), the rescans after the exec look again. Neither
		 * audited nor logged for each of a storm of new processes. */
		ag_set_track(d, t, HP_TRACK_PENDING,
			     "process starting: its libraries still load");
		return;
	}
	/* Read at its exec (identify), for the policy: what the audit
	 * would read again, after the apply, when the process may have
	 * exited already. (A path too long for it is read there.) */
	if (pr->exe && strlen(pr->exe) < sizeof(res.exe) - 1)
		snprintf(res.exe, sizeof(res.exe), "%s", pr->exe);
	if (rc != -HP_E_APPLIED)
		hp_rt_audit_record(&d->audit, "apply", e->path, e->p, &res, rc);
	if (!rc || rc == -HP_E_APPLIED) {
		pr->query_first |= !pr->rescans; /* the exec's look: deferred */
		if (!rc)
			say_applied(d, pr, e, &res, now);
		ag_watch_modules(d, res.module, pr->exe);
		ag_set_track(d, t, HP_TRACK_APPLIED, "%s", "");
		return;
	}
	if (ag_is_starting(pr, now) && rc != -HP_E_BUSY) {
		/* ld.so may not have mapped what the patch binds to yet
		 * (a library, a symbol): not a failure, the rescans after
		 * the exec look again. */
		ag_set_track(d, t, HP_TRACK_PENDING, "process starting: %s",
			     hp_strerror(rc));
		return;
	}
	d->view.failures++;
	t->t.tries++;
	if (hp_rt_busy(rc))
		set_busy(d, t, &res);
	else
		ag_set_track(d, t, HP_TRACK_REFUSED, "%s: %s", hp_err_name(rc),
			     hp_strerror(rc));
	/* After the schedule, the fallback (once); then still a try every
	 * last delay: a busy function may return one day. */
	t->due_us = ag_retry_at(d, now, t->t.tries);
	ag_schedule(pr, t->due_us);
	if (t->t.tries > d->pol.nr_retry)
		ag_run_fallback(d, pr, t, e, &res);
}

/* What the policy keeps from applying @e to @pr now, or NULL. */
static bool held_by_policy(struct ag_daemon *d, struct ag_proc *pr,
			   struct ag_track *t, const struct hp_store_entry *e,
			   uint64_t now)
{
	if (!d->pol.auto_apply) {
		ag_set_track(d, t, HP_TRACK_PENDING,
			     "automatic apply is off in the policy");
		return true;
	}
	if (!hp_policy_key_allowed(&d->pol, e->key_id)) {
		ag_set_track(d, t, HP_TRACK_REFUSED,
			     "signer %s is not in the policy's trusted_keys",
			     e->key_id[0] ? e->key_id : "(none)");
		return true;
	}
	if (!hp_policy_in_window(&d->pol, time(NULL))) {
		ag_set_track(d, t, HP_TRACK_PENDING,
			     "outside the maintenance window");
		ag_schedule(pr, now + HP_WINDOW_RECHECK_US);
		return true;
	}
	return false;
}

void ag_reconcile_patches(struct ag_daemon *d, struct ag_proc *pr,
			  const uint32_t *mapped, uint64_t now)
{
	struct hp_rt_applied *list = NULL;
	size_t nr = 0;

	/* The first look at a new image (or its first rescan, where the
	 * apply waited at the exec for ld.so): nothing of ours in it yet
	 * (should another patcher have been faster, apply says so); no
	 * query, unless we may have been there since the exec (on_exec). */
	const bool first = !pr->rescans || (pr->rescans == 1 && pr->deferred);

	if (!(pr->exec_us && first && !pr->query_first) &&
	    hp_rt_query(pr->pid, &list, &nr)) {
		/* Not gone, not readable now (a thread mid-exit, no fd
		 * left): looked at again on the retry schedule, not left
		 * until the next full scan. */
		pr->gone = hp_agent_start_time(pr->pid) == 0;
		if (!pr->gone)
			ag_schedule(pr, ag_retry_at(d, now, 1));
		return;
	}
	for (size_t i = 0; i < d->store.nr && !pr->gone; i++) {
		const struct hp_store_entry *e = &d->store.entries[i];
		struct ag_track *t = NULL;

		if (!d->wanted[i] || !mapped[i])
			continue;
		t = ag_add_track(d, pr->pid, e->id);
		if (!t)
			break;
		if (is_applied(e->p, mapped[i], list, nr)) {
			ag_set_track(d, t, HP_TRACK_APPLIED, "%s", "");
			continue;
		}
		if (t->t.state == HP_TRACK_APPLIED)
			/* Reverted by hand, or a library loaded since. */
			t->t.state = HP_TRACK_PENDING;
		if (held_by_policy(d, pr, t, e, now))
			continue;
		if (t->due_us > now) {
			ag_schedule(pr, t->due_us);
			continue;
		}
		attempt(d, pr, t, e, now);
	}
	free(list);
}
