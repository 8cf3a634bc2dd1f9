/*
 * The unwinder's call in the target: the thread it is made in (one that
 * cannot hold a lock the call takes, in a process none of whose threads
 * is stopped by a signal or another tracer), and its bounds.
 */
#include "runtime/rt_unwind.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <link.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/seccomp.h>
#include <sys/mman.h>

#define HP_LOG_PREFIX "rt: "

/* Stack words scanned for a return into the unwinder, from the SP. */
#define HP_UNWIND_SCAN_BYTES (512u << 10)
/* Threads unfit for the call named in the error, at most. */
#define HP_UNFIT_LISTED 4
/* Stack the call may take below its thread's stack pointer: the red zone,
 * the signal frame it returns through (its XSAVE area up to ~11 KiB with
 * AMX), the unwinder's and free()'s frames, and lazy binding's, which
 * saves the vector state again. */
#define HP_UNWIND_STACK_NEED (32u << 10)

/*
 * Can stopped @t make the call? It must wait in a system call (a thread
 * interrupted while running might hold the object mutex, or the malloc
 * lock free() in deregistration takes) and hold no return address into
 * the unwinder nor into the allocator's locking functions on its stack
 * (conservative: every word that looks like one counts, so a thread
 * blocked under a lookup is never chosen, nor one that waits in the
 * kernel holding an arena's lock: malloc_stats writing to a full pipe,
 * sysmalloc's mmap, fork's clone; free() in the call would wait for its
 * own thread). Not one in seccomp strict mode: the call's first
 * allocation would kill it. Not one whose stack cannot take the call
 * (hp_stack_room): it would write past that stack's end. Unfit: @why
 * (@size bytes) says why.
 */
bool hp_unwind_fit_to_call(const struct hp_proc *proc, struct hp_thread *t,
			   const struct hp_unwinder *u, char *why, size_t size)
{
	const struct hp_map *stack = NULL;
	const char *in = NULL;
	uint64_t *words = NULL;
	size_t len, at = 0;

	const bool strict = t->has_seccomp_mode
				    ? t->seccomp_mode == SECCOMP_MODE_STRICT
				    : hp_seccomp_strict(t->tid);

	if (strict || hp_pt_get_regs(t) || (long long)t->regs.orig_rax < 0) {
		snprintf(why, size, "tid %d %s", (int)t->tid,
			 strict ? "in seccomp's strict mode"
				: "not waiting in a system call");
		return false;
	}
	in = hp_unwind_locking_code(u, t->regs.rip);
	if (in) {
		snprintf(why, size, "tid %d stopped in %s", (int)t->tid, in);
		return false;
	}
	if (!hp_stack_room(proc, t->regs.rsp,
			   t->regs.rsp - HP_UNWIND_STACK_NEED)) {
		snprintf(why, size,
			 "tid %d: its stack pointer 0x%llx is not in a thread "
			 "stack with %u KiB free below it",
			 (int)t->tid, t->regs.rsp, HP_UNWIND_STACK_NEED >> 10);
		return false;
	}
	stack = hp_proc_find_map(proc, t->regs.rsp);
	len = stack ? stack->end - t->regs.rsp : 0;
	if (len > HP_UNWIND_SCAN_BYTES)
		len = HP_UNWIND_SCAN_BYTES;
	len &= ~(size_t)7;
	words = len ? malloc(len + 8) : NULL;
	if (!words || hp_proc_read(proc, t->regs.rsp, words, len)) {
		free(words);
		snprintf(why, size, "tid %d: its stack not read", (int)t->tid);
		return false;
	}
	for (; at < len / 8 && !in; at++)
		in = hp_unwind_locking_code(u, words[at]);
	if (in)
		snprintf(why, size,
			 "tid %d: the word at sp+0x%zx points into %s (a "
			 "frame, or a leftover of one)",
			 (int)t->tid, (at - 1) * 8, in);
	free(words);
	return !in;
}

static const char stopped_by_signal[] =
	"stopped by a signal (SIGSTOP, job control)";

/* Thread @tid of @proc cannot run (all_can_run), @why, in @state: said,
 * with what to do. Return: -HP_E_BUSY. */
static int cannot_run(const struct hp_proc *proc, pid_t tid, const char *why,
		      const char *state)
{
	hp_error(-HP_E_BUSY,
		 "pid %d: tid %d is %s (%s): a lock it holds stays held, "
		 "which hpatch's call of the unwinder could wait for; not "
		 "called",
		 (int)proc->pid, (int)tid, why, state);
	if (why == stopped_by_signal)
		hp_hint("continue it (kill -CONT, fg) and retry");
	else if (!strncmp(why, "its cgroup", 10))
		hp_hint("thaw it (docker unpause, systemctl thaw) and retry");
	else
		hp_hint("let the debugger continue it, or detach it, and "
			"retry");
	return hp_rt_busy_why("tid %d %s, to call its unwinder", (int)tid, why);
}

/*
 * Can every thread of @proc (@tids, @nr of them) run? One stopped by a
 * signal (SIGSTOP, job control: state T), stopped by a tracer other than
 * hpatch, or in a frozen cgroup holds whatever lock it held when it
 * stopped (libgcc's object_mutex in a throw, an arena's in malloc) for as
 * long as it stays so, and the call would wait for it there, past its
 * first lock (the frozen one aside, none of them may run either while
 * the call runs: the process was stopped on purpose). A group stop that
 * hpatch itself just broke (its threads detached, on their way back into
 * it) shows no T: the thread seized for the call says so
 * (hp_unwind_call_in_target).
 * Return: 0, or -HP_E_BUSY (said, naming the thread and what to do).
 */
static int all_can_run(const struct hp_proc *proc, const pid_t *tids, size_t nr)
{
	for (size_t i = 0; i < nr; i++) {
		const pid_t tracer = hp_task_tracer(tids[i]);
		char state[160], comm[32], by[96];

		hp_task_state(tids[i], state, sizeof(state));
		if (hp_task_frozen(tids[i]))
			return cannot_run(proc, tids[i], "its cgroup is frozen",
					  state);
		if (state[6] == 'T' && tracer <= 0)
			return cannot_run(proc, tids[i], stopped_by_signal,
					  state);
		if ((state[6] == 'T' || state[6] == 't') && tracer > 0 &&
		    tracer != hp_self_pid()) {
			hp_task_comm(tracer, comm, sizeof(comm));
			snprintf(by, sizeof(by),
				 "stopped by its tracer, pid %d ('%s')",
				 (int)tracer, comm);
			return cannot_run(proc, tids[i], by, state);
		}
	}
	return 0;
}

/*
 * The bounds of a call of the unwinder in @proc (hp_pt_call): it may hold
 * a lock, so it is waited for within the operation's bound (its
 * --timeout), then left to finish on its own, through the C library's
 * signal return it returns through from its start.
 */
struct hp_call_guard hp_unwind_call_guard(const struct hp_proc *proc)
{
	return (struct hp_call_guard){ .bound_us = hp_pt_call_max_us,
				       .restorer = hp_unwind_find_restorer,
				       .arg = proc };
}

int hp_unwind_region_magic(const struct hp_proc *proc, hp_raddr_t region,
			   bool on)
{
	static const uint8_t zero[sizeof(((struct hp_rt_header *)0)->magic)];
	const void *magic = on ? (const void *)HP_RT_MAGIC : zero;
	const int rc = hp_proc_write(proc, region, magic, sizeof(zero));

	if (rc)
		hp_error_rc(rc,
			    "pid %d: cannot %s the header of region 0x%" PRIx64,
			    (int)proc->pid, on ? "restore" : "clear", region);
	return rc;
}

/*
 * @fn(@args) in @t, fit to make the call (hp_unwind_fit_to_call), the
 * header's magic of the region at @region cleared first: a loader killed
 * (-9) inside the call leaves the table registered or not, which no
 * later hpatch could tell from the region's record, so it takes the
 * region for none and leaves it mapped (it neither unmaps a table the
 * unwinder may know nor asks it to forget one it may not: it aborts).
 * The caller puts the magic back once the record says what the call did.
 * Return: as hp_pt_call, or -errno.
 */
int hp_unwind_call(struct hp_proc *proc, struct hp_thread *t, hp_raddr_t fn,
		   const long args[2], hp_raddr_t region)
{
	const struct hp_call_guard g = hp_unwind_call_guard(proc);
	const int rc = hp_unwind_region_magic(proc, region, false);

	return rc ?: hp_pt_call(t, fn, args, &g);
}

/*
 * @fn(@args) in the first thread fit to call it (hp_unwind_fit_to_call),
 * while every other thread runs, for the region at @region
 * (hp_unwind_call); *@left (if not NULL) says whether that thread was
 * left inside the call (it outlived its bound).
 * Return: 0, -HP_E_BUSY (none fit, or left inside: reported), -HP_E_GONE,
 * -errno.
 */
int hp_unwind_call_in_target(struct hp_proc *proc, const struct hp_unwinder *u,
			     hp_raddr_t fn, const long args[2],
			     hp_raddr_t region, bool *left)
{
	char unfit[HP_UNFIT_LISTED * 160] = "";
	size_t unfit_len = 0, nr_unfit = 0;
	pid_t *tids = NULL;
	size_t nr = 0;
	int rc = hp_proc_read_maps(proc);

	rc = rc ?: hp_proc_list_tasks(proc->pid, &tids, &nr);
	if (rc)
		return rc;
	rc = all_can_run(proc, tids, nr);
	if (rc) {
		free(tids);
		return rc;
	}
	rc = 1;
	for (size_t i = 0; i < nr && rc == 1; i++) {
		struct hp_thread t = { .tid = tids[i],
				       .leader = tids[i] == proc->pid };
		char why[160] = "";
		int stop;

		if (hp_pt_seize(&t))
			continue;
		stop = hp_pt_interrupt(&t) ?: hp_pt_wait_stop(&t);
		if (!stop && t.group_stop) {
			char state[160];

			hp_task_state(t.tid, state, sizeof(state));
			rc = cannot_run(proc, t.tid, stopped_by_signal, state);
		} else if (!stop && hp_unwind_fit_to_call(proc, &t, u, why,
							  sizeof(why))) {
			rc = hp_unwind_call(proc, &t, fn, args, region);
		} else if (!stop && nr_unfit++ < HP_UNFIT_LISTED) {
			unfit_len += (size_t)snprintf(
				unfit + unfit_len, sizeof(unfit) - unfit_len,
				"%s%s", unfit_len ? "; " : "", why);
		}
		if (left && (t.owes_regs || t.left_in_call))
			*left = true;
		hp_pt_release(&t);
		hp_pt_reap(&t, 1);
	}
	free(tids);
	if (rc == 1) {
		rc = hp_error(-HP_E_BUSY,
			      "pid %d: no thread waits in a system call clear "
			      "of '%s' and of the allocator, to call its "
			      "unwinder: %s%s",
			      (int)proc->pid, u->path, unfit,
			      nr_unfit > HP_UNFIT_LISTED ? "; ..." : "");
		hp_hint("patch code carries unwind tables, registered through "
			"a thread blocked in a system call (read, poll, "
			"sleep, a lock...) whose stack has no word pointing "
			"into the unwinder or the allocator (a word left from "
			"an earlier call counts: it cannot be told from a "
			"frame): try again when one is");
		rc = hp_rt_busy_why("no thread waits in a system call, to "
				    "call its unwinder");
	}
	return rc == -ESRCH ? -HP_E_GONE : rc;
}
