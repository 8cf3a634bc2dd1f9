/*
 * hpatchd's tables: the processes it looks at, each with its due time, and
 * per (process, patch) a track of what became of the patch there.
 */
#include "agent/agent.h"
#include "agent/agent_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct ag_proc *ag_find_proc(struct ag_daemon *d, pid_t pid)
{
	for (size_t i = 0; i < d->nr_procs; i++)
		if (d->procs[i].pid == pid)
			return &d->procs[i];
	return NULL;
}

struct ag_proc *ag_add_proc(struct ag_daemon *d, pid_t pid)
{
	struct ag_proc *pr = ag_find_proc(d, pid);

	if (pr)
		return pr;
	if (hp_grow(&d->procs, &d->cap_procs, d->nr_procs, sizeof(*d->procs),
		    64))
		return NULL;
	pr = &d->procs[d->nr_procs++];
	*pr = (struct ag_proc){ .pid = pid };
	return pr;
}

void ag_drop_tracks(struct ag_daemon *d, pid_t pid)
{
	size_t n = 0;

	for (size_t i = 0; i < d->nr_tracks; i++)
		if (d->tracks[i].t.pid != pid)
			d->tracks[n++] = d->tracks[i];
	if (n != d->nr_tracks)
		d->view_dirty = true;
	d->nr_tracks = n;
}

bool ag_has_tracks(const struct ag_daemon *d, pid_t pid)
{
	for (size_t i = 0; i < d->nr_tracks; i++)
		if (d->tracks[i].t.pid == pid)
			return true;
	return false;
}

/* An exited process is forgotten, so memory stays flat. */
void ag_forget_proc(struct ag_daemon *d, pid_t pid)
{
	struct ag_proc *pr = ag_find_proc(d, pid);

	/* Patched, now or before an exec or a revert: its perf map is kept
	 * for a while, then removed. */
	bool mapped = pr && pr->perf_map;

	for (size_t i = 0; i < d->nr_tracks && !mapped; i++)
		mapped = d->tracks[i].t.pid == pid &&
			 d->tracks[i].t.state == HP_TRACK_APPLIED;
	if (mapped)
		ag_perfmap_exited(d, pid, hp_now_us());
	ag_drop_tracks(d, pid);
	ag_forget_fallbacks(d, pid);
	if (pr && pr->undecided)
		d->view_dirty = true;
	if (pr) {
		free(pr->exe);
		*pr = d->procs[--d->nr_procs];
	}
	if (d->nr_procs < d->cap_procs / 4 && d->cap_procs > 64) {
		struct ag_proc *shrunk =
			realloc(d->procs, d->cap_procs / 2 * sizeof(*shrunk));

		if (shrunk) {
			d->procs = shrunk;
			d->cap_procs /= 2;
		}
	}
}

static struct ag_track *find_track(struct ag_daemon *d, pid_t pid,
				   const char *id)
{
	for (size_t i = 0; i < d->nr_tracks; i++)
		if (d->tracks[i].t.pid == pid &&
		    !strcmp(d->tracks[i].t.patch_id, id))
			return &d->tracks[i];
	return NULL;
}

struct ag_track *ag_add_track(struct ag_daemon *d, pid_t pid, const char *id)
{
	struct ag_track *t = find_track(d, pid, id);

	if (t)
		return t;
	if (hp_grow(&d->tracks, &d->cap_tracks, d->nr_tracks,
		    sizeof(*d->tracks), 64))
		return NULL;
	t = &d->tracks[d->nr_tracks++];
	*t = (struct ag_track){ .t.pid = pid, .t.state = HP_TRACK_PENDING };
	snprintf(t->t.patch_id, sizeof(t->t.patch_id), "%s", id);
	d->view_dirty = true;
	return t;
}

void ag_set_track(struct ag_daemon *d, struct ag_track *t,
		  enum hp_track_state st, const char *fmt, ...)
{
	char reason[sizeof(t->t.reason)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (t->t.state != st || strcmp(t->t.reason, reason))
		d->view_dirty = true;
	if (st == HP_TRACK_APPLIED) {
		struct ag_proc *pr = ag_find_proc(d, t->t.pid);

		if (pr)
			pr->perf_map = true;
	}
	t->t.state = st;
	snprintf(t->t.reason, sizeof(t->t.reason), "%s", reason);
}

void ag_schedule(struct ag_proc *pr, uint64_t at)
{
	if (!pr->due_us || at < pr->due_us)
		pr->due_us = at;
}
