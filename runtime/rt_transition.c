/*
 * Stopping the world and deciding whether it is safe to switch.
 *
 * Stop: seize and interrupt every thread listed in /proc/PID/task, wait for
 * each, then list again: a thread born meanwhile is caught by the next
 * round; once a listing shows no new thread, every thread is stopped (a
 * stopped thread creates none). The loader runs SCHED_FIFO for the window
 * where it may: resuming many spinning threads at normal priority costs
 * 50x more (docs/DESIGN.md figures).
 * Check: no thread's instruction pointer inside a range being replaced, and
 * no return address into one on its stack (read from the stack pointer to
 * the end of its mapping in one read).
 */
#include "runtime/runtime_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define HP_LOG_PREFIX "rt: "
#define HP_STACK_SCAN_MAX (8u << 20)

static struct hp_thread *find_thread(struct hp_world *w, pid_t tid)
{
	for (size_t i = 0; i < w->nr_threads; i++)
		if (w->threads[i].tid == tid)
			return &w->threads[i];
	return NULL;
}

static int add_thread(struct hp_world *w, pid_t tid, struct hp_thread **out)
{
	if (w->nr_threads == w->cap_threads) {
		size_t cap = w->cap_threads ? 2 * w->cap_threads : 32;
		struct hp_thread *t = realloc(w->threads, cap * sizeof(*t));

		if (!t)
			return -ENOMEM;
		w->threads = t;
		w->cap_threads = cap;
	}
	w->threads[w->nr_threads] = (struct hp_thread){ .tid = tid };
	*out = &w->threads[w->nr_threads++];
	return 0;
}

static void raise_priority(struct hp_world *w)
{
	struct sched_param sp = { .sched_priority = 1 };

	w->old_policy = sched_getscheduler(0);
	sched_getparam(0, &w->old_param);
	w->raised = sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
}

static void restore_priority(struct hp_world *w)
{
	if (w->raised)
		sched_setscheduler(0, w->old_policy, &w->old_param);
	w->raised = false;
}

/* One round: seize and interrupt threads not seen before. */
static int stop_round(struct hp_world *w, size_t *nr_new)
{
	pid_t *tids = NULL;
	size_t nr = 0, first = w->nr_threads;
	int rc;

	*nr_new = 0;
	rc = hp_proc_list_tasks(w->pid, &tids, &nr);
	if (rc)
		return rc;
	for (size_t i = 0; i < nr && !rc; i++) {
		struct hp_thread *t = NULL;

		if (find_thread(w, tids[i]))
			continue;
		rc = add_thread(w, tids[i], &t);
		if (rc)
			break;
		rc = hp_pt_seize(t);
		if (!rc)
			rc = hp_pt_interrupt(t);
		if (rc == -ESRCH) {
			/* Exited between listing and seizing: forget it. */
			w->nr_threads--;
			rc = 0;
		} else if (rc) {
			hp_error_rc(rc, "pid %d: tid %d: cannot stop thread",
				    (int)w->pid, (int)tids[i]);
			if (rc == -EPERM)
				hp_hint("is another debugger attached? check "
					"'TracerPid' in /proc/%d/status",
					(int)w->pid);
		}
	}
	free(tids);
	/* Wait for this round's threads after interrupting them all. */
	for (size_t i = first; i < w->nr_threads; i++) {
		struct hp_thread *t = &w->threads[i];
		int wrc;

		if (!t->seized)
			continue;
		wrc = hp_pt_wait_stop(t);
		if (wrc == -ESRCH)
			continue; /* exited while stopping: nothing to check */
		if (wrc && !rc)
			rc = wrc;
		(*nr_new)++;
	}
	return rc;
}

int hp_world_stop(struct hp_world *w, pid_t pid)
{
	size_t nr_new = 0;
	int rc, rounds = 0;

	*w = (struct hp_world){ .pid = pid };
	raise_priority(w);
	do {
		rc = stop_round(w, &nr_new);
		if (++rounds > 100 && !rc)
			rc = hp_error(-EAGAIN,
				      "pid %d: threads keep appearing; "
				      "cannot stop them all",
				      (int)pid);
	} while (!rc && nr_new);
	if (rc) {
		hp_world_resume(w);
		return rc;
	}
	/* Drop threads that exited; keep the stopped ones. */
	for (size_t i = 0; i < w->nr_threads;) {
		if (!w->threads[i].seized)
			w->threads[i] = w->threads[--w->nr_threads];
		else
			i++;
	}
	if (!w->nr_threads) {
		hp_world_resume(w);
		return -HP_E_GONE;
	}
	return 0;
}

void hp_world_resume(struct hp_world *w)
{
	for (size_t i = 0; i < w->nr_threads; i++)
		hp_pt_release(&w->threads[i]);
	restore_priority(w);
	free(w->threads);
	w->threads = NULL;
	w->nr_threads = w->cap_threads = 0;
}

int hp_world_syscall(struct hp_world *w, const struct hp_proc *proc, long nr,
		     const long args[6], long *ret)
{
	hp_raddr_t insn;
	int rc = hp_proc_find_syscall_insn(proc, &insn);

	if (rc)
		return rc;
	for (size_t i = 0; i < w->nr_threads; i++) {
		rc = hp_pt_syscall(&w->threads[i], insn, nr, args, ret);
		if (rc != -ESRCH)
			return rc;
	}
	return -HP_E_GONE;
}

static const struct hp_busy_range *in_ranges(const struct hp_busy_range *r,
					     size_t nr, uint64_t v, bool ip)
{
	for (size_t i = 0; i < nr; i++)
		if ((ip || !r[i].ip_only) && v >= r[i].start && v < r[i].end)
			return &r[i];
	return NULL;
}

int hp_world_check(struct hp_world *w, const struct hp_proc *proc,
		   const struct hp_busy_range *ranges, size_t nr_ranges,
		   pid_t *busy_tid, const struct hp_busy_range **busy)
{
	uint64_t *stack = NULL;
	size_t cap = 0;
	int rc = 0;

	for (size_t i = 0; i < w->nr_threads && !rc; i++) {
		struct hp_thread *t = &w->threads[i];
		const struct hp_map *m = NULL;
		size_t len, n;

		rc = hp_pt_get_regs(t);
		if (rc)
			break;
		*busy = in_ranges(ranges, nr_ranges, t->regs.rip, true);
		if (*busy) {
			*busy_tid = t->tid;
			rc = -HP_E_BUSY;
			break;
		}
		m = hp_proc_find_map(proc, t->regs.rsp);
		if (!m)
			continue;
		len = m->end - (t->regs.rsp & ~7ULL);
		if (len > HP_STACK_SCAN_MAX)
			len = HP_STACK_SCAN_MAX;
		if (len > cap) {
			uint64_t *s = realloc(stack, len);

			if (!s) {
				rc = -ENOMEM;
				break;
			}
			stack = s;
			cap = len;
		}
		rc = hp_proc_read(proc, t->regs.rsp & ~7ULL, stack, len);
		if (rc)
			break;
		n = len / sizeof(*stack);
		for (size_t j = 0; j < n; j++) {
			*busy = in_ranges(ranges, nr_ranges, stack[j], false);
			if (*busy) {
				*busy_tid = t->tid;
				rc = -HP_E_BUSY;
				break;
			}
		}
	}
	free(stack);
	return rc;
}
