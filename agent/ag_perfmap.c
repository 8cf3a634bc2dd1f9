/*
 * The perf maps of the processes hpatchd patched, after they exit. Each
 * patched process gets /tmp/perf-PID.map (runtime/rt_perfmap.c), which
 * perf reads at report time, so it outlives the process as a JIT's does.
 * A host where short-lived processes of a patched build start all the time
 * would gather one per pid in /tmp, up to pid_max of them: so a map is
 * removed once the process has been gone for the policy's [perf]
 * keep_exited, and at most [perf] max_exited are kept, the oldest going
 * first. Only hpatch's own lines, unwritten since, of a pid no process has
 * now (hp_rt_perfmap_forget); a zombie not yet reaped is asked again.
 * Removed is mostly moved: kept as a spare for a later map (a storm's
 * unlinks would make every create slow on an ext4 without a journal).
 */
#include "agent/agent.h"
#include "agent/agent_int.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HP_LOG_PREFIX "hpatchd: "

/* A pid still in use at the time: asked again after this, this often. */
#define HP_GONE_RETRY_US 1000000
#define HP_GONE_TRIES 30

static void push(struct ag_daemon *d, const struct ag_gone_map *g)
{
	struct ag_gone_maps *q = &d->gone_maps;

	if (q->nr == q->cap && q->head) {
		memmove(q->v, q->v + q->head,
			(q->nr - q->head) * sizeof(*q->v));
		q->nr -= q->head;
		q->head = 0;
	}
	if (hp_grow(&q->v, &q->cap, q->nr, sizeof(*q->v), 64))
		return; /* (out of memory: that map stays) */
	q->v[q->nr++] = *g;
}

/* Remove the oldest one's map now, or ask again later. */
static void forget_oldest(struct ag_daemon *d, uint64_t now)
{
	struct ag_gone_maps *q = &d->gone_maps;
	struct ag_gone_map g = q->v[q->head++];
	const int rc = hp_rt_perfmap_forget(g.pid, g.exited_ns);

	if (q->head == q->nr)
		q->head = q->nr = 0;
	if (rc == 2 && ++g.tries < HP_GONE_TRIES) {
		g.due_us = now + HP_GONE_RETRY_US;
		push(d, &g);
	} else if (rc < 0) {
		hp_warn("pid %d: perf map not removed: %s", (int)g.pid,
			strerror(-rc));
	}
}

/* Over the bound: the oldest go now (one asked again later while its
 * pid is in use stays over the bound until then). */
static void bound(struct ag_daemon *d, uint64_t now)
{
	for (size_t n = d->gone_maps.nr - d->gone_maps.head;
	     n > d->pol.perf_max_exited; n--)
		forget_oldest(d, now);
}

void ag_perfmap_exited(struct ag_daemon *d, pid_t pid, uint64_t now)
{
	const struct hp_policy *pol = &d->pol;
	struct ag_gone_map g = { .pid = pid };
	struct timespec real;

	if (pol->perf_keep_ms < 0 || clock_gettime(CLOCK_REALTIME, &real))
		return;
	g.exited_ns = (int64_t)real.tv_sec * 1000000000LL + real.tv_nsec;
	g.due_us = now + (uint64_t)pol->perf_keep_ms * 1000;
	push(d, &g);
	bound(d, now);
}

/*
 * A map written this recently may be in another hpatch's hands (an
 * apply's, another hpatchd's queue, a test's): left to it. Those of
 * processes gone within it before a restart are left until the next.
 */
#define HP_SWEEP_MIN_AGE_NS (60 * 1000000000LL)

void ag_perfmap_sweep(struct ag_daemon *d, uint64_t now)
{
	const int64_t keep_ns = d->pol.perf_keep_ms * 1000000LL;
	struct hp_rt_perfmap_left *v = NULL;
	struct timespec real;
	int64_t real_ns;
	size_t nr = 0, queued = 0;

	if (d->pol.perf_keep_ms < 0 || clock_gettime(CLOCK_REALTIME, &real) ||
	    hp_rt_perfmap_left(&v, &nr))
		return;
	real_ns = (int64_t)real.tv_sec * 1000000000LL + real.tv_nsec;
	/* Its process's exit is not known: the map's last write stands for
	 * it (a later one keeps it). Oldest first, as the queue goes. */
	for (size_t i = 0; i < nr; i++) {
		const int64_t age_ns = real_ns - v[i].mtime_ns;
		const struct ag_gone_map g = {
			.pid = v[i].pid,
			.exited_ns = v[i].mtime_ns,
			.due_us = age_ns >= keep_ns
					  ? now
					  : now + (uint64_t)(keep_ns - age_ns) /
							    1000,
		};

		if (age_ns < HP_SWEEP_MIN_AGE_NS)
			continue;
		push(d, &g);
		queued++;
	}
	if (queued)
		hp_log(HP_LOG_INFO,
		       "%zu perf map%s of processes gone before this start: "
		       "removed after [perf] keep_exited",
		       queued, queued == 1 ? "" : "s");
	bound(d, now);
	free(v);
}

uint64_t ag_perfmap_due(const struct ag_daemon *d)
{
	const struct ag_gone_maps *q = &d->gone_maps;

	return q->head < q->nr ? q->v[q->head].due_us : 0;
}

void ag_perfmap_run(struct ag_daemon *d, uint64_t now)
{
	while (ag_perfmap_due(d) && ag_perfmap_due(d) <= now)
		forget_oldest(d, now);
}

void ag_perfmap_release(struct ag_daemon *d)
{
	free(d->gone_maps.v);
	d->gone_maps = (struct ag_gone_maps){ 0 };
}
