/*
 * hpatch's loader: applies a verified patch to live processes through
 * ptrace and /proc/PID/mem, reverts it, and reports what is applied. Links
 * only libc (plus packer/ and signing/ to read patches).
 */
#ifndef HP_RUNTIME_H
#define HP_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/hp_err.h"
#include "common/hp_out.h"
#include "packer/packer.h"

enum hp_rt_flags {
	HP_RT_ALLOW_ACTIVE = 1 << 0, /* apply even if old code is running */
	/* apply a patch older than one applied before (anti-rollback) */
	HP_RT_ALLOW_DOWNGRADE = 1 << 1,
	/* keep earlier patches' other functions (default: replace them) */
	HP_RT_STACK = 1 << 2,
	/*
	 * Change nothing (hpatch check): every check of an apply, the plan
	 * and the hole, then one stop to see whether a thread is in the
	 * way; nothing is mapped, no jump written, no state recorded.
	 */
	HP_RT_DRY_RUN = 1 << 3,
	/*
	 * The pid came from a scan (apply --all): a process that exits
	 * before or while it is patched had nothing left to patch, which is
	 * no error (said at info level; the result is still -HP_E_GONE).
	 */
	HP_RT_SCANNED = 1 << 4,
	/*
	 * One of a run of operations (apply --all): what every operation
	 * sets up the same way (the timer and signal that bound its waits)
	 * stays for the next, until hp_rt_batch_end().
	 */
	HP_RT_BATCH = 1 << 5,
	/*
	 * Notes on a process that are no failure (a module patched while
	 * no unwinder is loaded: hp_rt_result.no_unwinder) go to the
	 * result, not to the log: a caller that patches every process of
	 * a build (hpatchd) says them once, not once per process.
	 */
	HP_RT_QUIET_NOTES = 1 << 6,
};

#define HP_STATE_DIR_DEFAULT "/run/hpatch"

struct hp_rt_sharers; /* hp_rt_sharers_new */

struct hp_rt_opts {
	unsigned int flags; /* enum hp_rt_flags */
	long timeout_ms;    /* consistency retries give up after this */
	/* Anti-rollback state of the host (NULL: HP_STATE_DIR_DEFAULT). */
	const char *state_dir;
	/* Which processes share an address space, for a run over many
	 * (hp_rt_sharers_new); NULL: each apply or revert asks the host. */
	struct hp_rt_sharers *sharers;
};

/* What happened to one process; filled even on failure. */
struct hp_rt_result {
	pid_t pid;
	int rc;		   /* 0 or -errno / -HP_E_* */
	char module[256];  /* path of the patched module */
	uint64_t pause_us; /* time every thread was stopped (last try) */
	uint32_t nr_threads;
	uint32_t nr_funcs;
	uint32_t nr_tries;
	char busy_func[128]; /* with -HP_E_BUSY: the function in use */
	pid_t busy_tid;	     /* ... and the thread using it */
	/* With -HP_E_BUSY and neither: why ("its memory shared with pid
	 * N...", "no thread waits in a system call..."), or "". */
	char busy_why[192];
	uint64_t region; /* address of the patch region */
	/* The process's start time (clock ticks since boot) as the apply's
	 * lock read it, before it opened the process: who was patched (a
	 * reused pid is another start time). 0: gone, or not read. */
	uint64_t start_time;
	/* For the audit log: what was (to be) applied or reverted. */
	char build_id[2 * HP_BUILD_ID_MAX + 1];
	char patch_id[64];
	char key_id[HP_KEY_ID_STR_BYTES]; /* the signer's, "" if unsigned */
	uint64_t sequence;
	char functions[1024]; /* names, comma-separated */
	/* The process's executable, set by a caller that knew it before
	 * the apply (hpatchd, at the exec); "": the audit record reads it
	 * (a process that exited since has none left to read). */
	char exe[256];
	/* A module was patched while the process had no unwinder loaded
	 * (libgcc_s): patched frames stay opaque to one loaded later. */
	bool no_unwinder;
};

/*
 * Why @res (its apply returned @rc) did not go through, in words: a busy
 * one's own reason (the process shares its memory, a thread would not
 * stop...) where HP_E_BUSY's text, "function is in use by a thread",
 * would be wrong; else hp_strerror(@rc). "" for 0.
 */
const char *hp_rt_reason(const struct hp_rt_result *res, int rc);

/* A passing state of the target, to retry (exit 4): a thread in the way
 * (-HP_E_BUSY), or its dynamic linker loading objects (-HP_E_LOADING). */
static inline bool hp_rt_busy(int rc)
{
	return rc == -HP_E_BUSY || rc == -HP_E_LOADING;
}

/* The audit log: one JSON line per attempt, to a file and to syslog. */
struct hp_rt_audit {
	int fd;
	char path[256];
};

#define HP_AUDIT_LOG_DEFAULT "/var/log/hpatch/audit.log"

/*
 * hp_rt_audit_open() - open (create, append) the audit log at @path, or
 * when NULL or "" at HP_AUDIT_LOG_DEFAULT, creating its directory (0750).
 * The file (never a symbolic link) and every directory above it must be
 * root's (or ours) alone (common/hp_secure.h).
 * Return: 0, -HP_E_INSECURE or -errno (reported, with a hint).
 */
int hp_rt_audit_open(struct hp_rt_audit *a, const char *path)
	__attribute__((warn_unused_result));
/*
 * hp_rt_audit_record() - record one attempt with result @rc: the
 * attempt's own (@res->rc), or what came of it (a fallback's). @res may
 * be NULL for a refusal before any process was touched. @p may be NULL when
 * the patch could not be read. Never fails the caller: a write error is
 * reported as a warning.
 */
void hp_rt_audit_record(struct hp_rt_audit *a, const char *action,
			const char *file, const struct hp_patch *p,
			const struct hp_rt_result *res, int rc);
void hp_rt_audit_close(struct hp_rt_audit *a);

/*
 * hp_rt_records_ready() - before applying anything: room for the audit
 * line in @a's file system, and an anti-rollback state directory
 * @state_dir (NULL: HP_STATE_DIR_DEFAULT; created if missing) that is root's alone and has room for the record. An apply
 * the host would forget or could not audit is not made. (A revert is
 * never held back so: it takes code out.)
 * Return: 0, -HP_E_INSECURE, -ENOSPC or -errno (reported).
 */
int hp_rt_records_ready(const struct hp_rt_audit *a, const char *state_dir)
	__attribute__((warn_unused_result));

/* hp_rt_batch_end() - after a run of HP_RT_BATCH operations: give back
 * what they kept (the calling thread's timer, signal handler and mask). */
void hp_rt_batch_end(void);

/*
 * hp_rt_apply() - apply @p to process @pid: find the module by build-id,
 * check every function's original bytes, map and relocate the new code near
 * it, then redirect each old function while no thread can be inside it.
 * On any failure the process is left exactly as it was.
 * Return: 0, -HP_E_NOTARGET, -HP_E_MISMATCH, -HP_E_APPLIED, -HP_E_BUSY,
 * -HP_E_GONE, -HP_E_NOHOLE, -HP_E_RANGE, -errno. Reports its own errors.
 */
int hp_rt_apply(const struct hp_patch *p, pid_t pid,
		const struct hp_rt_opts *opts, struct hp_rt_result *res)
	__attribute__((warn_unused_result));

/*
 * hp_rt_revert() - undo the most recent patch applied to @pid: restore the
 * original bytes under the same safety check, then unmap its code.
 * Return: 0, -HP_E_NOTAPPLIED, -HP_E_BUSY, -errno. Reports its own errors.
 */
int hp_rt_revert(pid_t pid, const struct hp_rt_opts *opts,
		 struct hp_rt_result *res) __attribute__((warn_unused_result));

/*
 * hp_rt_perfmap_forget() - remove the perf map (/tmp/perf-PID.map) hpatch
 * wrote for @pid, a process that exited at @exited_ns (CLOCK_REALTIME),
 * when the file is a regular one with one link, holds hpatch's lines alone
 * (no JIT's) and was not written since, and no process has that pid now:
 * maps outlive their process, and a host where short-lived processes are
 * patched would fill /tmp with them. Removed is moved into the spare
 * directory, when it has room, for a later map to take (rt_perfmap.c).
 * Return: 0 removed (or none there), 1 kept (not hpatch's alone), 2 kept
 * while a process has that pid (a zombie not yet reaped: ask again later),
 * or -errno.
 */
int hp_rt_perfmap_forget(pid_t pid, int64_t exited_ns);

/* A live thread of @pid: the leader, unless it is exiting or has exited
 * (pthread_exit in main lets go of its memory, then leaves it a zombie,
 * while the others run on). @pid when none is. */
pid_t hp_proc_live_tid(pid_t pid);
/* Whether process @pid is gone whole: reaped, or a zombie leader with no
 * other thread left (one read of its stat; false when unsure). */
bool hp_proc_gone_whole(pid_t pid);

/* A perf map whose pid no process has (hp_rt_perfmap_left). */
struct hp_rt_perfmap_left {
	pid_t pid;
	int64_t mtime_ns; /* CLOCK_REALTIME */
};

/*
 * hp_rt_perfmap_left() - the regular files /tmp/perf-PID.map whose pid no
 * process has, oldest first, into *@out (malloc'd, *@nr of them): maps of
 * processes patched before hpatchd (re)started, or by the hpatch command,
 * for hp_rt_perfmap_forget to judge. Return: 0 or -errno.
 */
int hp_rt_perfmap_left(struct hp_rt_perfmap_left **out, size_t *nr)
	__attribute__((warn_unused_result));

/*
 * hp_rt_status() - list the patches applied to @pid (0: every process) as
 * an array "processes" in @o; for every process, also an array "unknown"
 * of those it cannot tell about ({pid, reason}: its memory closed to this
 * hpatch, no file descriptor left), each reported. Return: 0, or -errno
 * (with every process: the first unknown's).
 */
int hp_rt_status(pid_t pid, struct hp_out *o)
	__attribute__((warn_unused_result));

/*
 * hp_rt_boost() - run the calling process SCHED_FIFO from now on, where
 * permitted (silently not otherwise). For tools whose whole run is short:
 * on a saturated host a normal-priority loader waits for CPU behind the
 * very threads it is about to stop.
 */
void hp_rt_boost(void);

/*
 * hp_rt_set_faults() - for tests only, set by a tool's main: make a step of
 * apply or revert fail, or wait there. @fault is "STEP" (fail the first
 * time STEP is reached) or "STEP:N" (the N-th time, to fail after some
 * jumps were written); @delay is "STEP:MS" (wait MS milliseconds there
 * first, for a test to act meanwhile: kill the target, say). Steps, in
 * order: mmap, mprotect, write, seize (threads attached, none stopped),
 * stop (all stopped), jump, unjump. And the bound of an injected system
 * call's step passing: call (at once), call-late (just after the step's
 * trap stop), call-queued (while the call runs in the kernel). NULL or
 * "": none. Parsed here, once, so the stop window only compares a step's
 * name. Not thread-safe.
 */
void hp_rt_set_faults(const char *fault, const char *delay);

/*
 * hp_rt_sharers_new() - an index of the host's processes by address
 * space, for a run over many: each apply or revert given it in
 * hp_rt_opts.sharers finds the processes sharing its target's memory (a
 * vfork child, a clone(CLONE_VM) child) in a few kcmp calls, where alone
 * it asks every process of the host. Build it when the targets are
 * known: a process that starts sharing memory with a target after that
 * is not in it (a vfork parent then waits in the kernel, where no stop
 * reaches it: the bounded stop says so). Return: 0 or -errno.
 */
int hp_rt_sharers_new(struct hp_rt_sharers **out)
	__attribute__((warn_unused_result));

/*
 * struct hp_rt_births - the processes created since a process's exec, as a
 * caller that follows every process creation on the host knows them
 * (hpatchd, from the kernel's process events). A process shares a target's
 * memory only if it was created by clone(CLONE_VM) after the exec that
 * made that memory, and has not exec'd since: these few are all to ask,
 * where alone each apply asks every process of the host.
 * since_exec(arg, pid, &pids, &nr): every live process created since
 * @pid's last exec, and not exec'd since, as known when it is asked (it
 * reads the events still queued first); *pids malloc'd, freed by the
 * caller. Return: 0 (none missing), 1 (it cannot tell: @pid's exec was
 * not seen, or events were lost since: the host is asked), or -errno.
 */
struct hp_rt_births {
	int (*since_exec)(void *arg, pid_t pid, pid_t **pids, size_t *nr);
	void *arg;
};

/*
 * hp_rt_sharers_follow() - an index that asks @b (borrowed, it must outlive
 * the index) for each target, and the host when @b cannot tell. It stays
 * valid for as long as @b follows the host: build it once. Return: 0 or
 * -ENOMEM.
 */
int hp_rt_sharers_follow(struct hp_rt_sharers **out,
			 const struct hp_rt_births *b)
	__attribute__((warn_unused_result));
void hp_rt_sharers_free(struct hp_rt_sharers *s);

/*
 * hp_rt_release_left() - let go of the threads an operation could not stop
 * in time (asleep where no interrupt reaches them: a frozen cgroup, a hung
 * file system) and left attached, their interrupt pending: each that has
 * stopped since gets what it is owed (its registers and signal mask, if
 * it was left inside an injected call) and is detached; one that exited
 * is reaped. hpatch calls it as it exits, and before a signal it held
 * back ends it (hpatch_hold_end): the kernel lets a thread go as its
 * tracer exits, one owed with hpatch's registers and every signal
 * blocked. hpatchd calls it between operations, lest a thread thawed wait
 * stopped for its next try. Return: how many are still left.
 */
size_t hp_rt_release_left(void);

/* A process a scan could not tell about, and why (-errno / -HP_E_*). */
struct hp_rt_unknown {
	pid_t pid;
	int rc;
};

/* What a scan of the host found: both arrays malloc'd. */
struct hp_rt_targets {
	pid_t *pids; /* every process that maps a module of the patch */
	size_t nr;
	/* Processes that may map one, whose map was read but not what it
	 * maps: memory not opened (root without CAP_DAC_OVERRIDE, and the
	 * program replaced on disk), no fd or memory left. Not counted:
	 * processes gone, and those whose map is closed to this hpatch
	 * (other users' for a user who is not root). */
	struct hp_rt_unknown *unknown;
	size_t nr_unknown;
};

/*
 * hp_rt_find_targets() - every process (but this one) that maps a module of
 * @p, and those that cannot be told. Release @t with hp_rt_targets_free.
 * Return: 0 or -errno.
 */
int hp_rt_find_targets(const struct hp_patch *p, struct hp_rt_targets *t)
	__attribute__((warn_unused_result));
void hp_rt_targets_free(struct hp_rt_targets *t);

/*
 * hp_rt_match() - how many modules of each of the @nr @patches (NULL
 * entries skipped) @pid maps, by build-id read from its memory, in
 * @mapped[i]; *@nr_hit counts the patches with any. Quiet: made for scans
 * of every process. Return: 0, -HP_E_GONE, -errno.
 */
int hp_rt_match(pid_t pid, const struct hp_patch *const *patches, size_t nr,
		uint32_t *mapped, size_t *nr_hit)
	__attribute__((warn_unused_result));

/* One patch region found in a process (what `hpatch status` lists). */
struct hp_rt_applied {
	char patch_id[64];
	char module[120];
	char build_id[2 * HP_BUILD_ID_MAX + 1];
	uint64_t sequence;
	uint64_t applied_at; /* unix seconds */
	uint32_t order;	     /* larger: applied later in this process */
	bool active;	     /* every jump of it in place */
	bool in_place;	     /* at least one jump in place */
};

/*
 * hp_rt_query() - the patch regions of @pid, without output. *@out is
 * malloc'd (caller frees), NULL when none. Quiet.
 * Return: 0, -HP_E_GONE, -errno.
 */
int hp_rt_query(pid_t pid, struct hp_rt_applied **out, size_t *nr)
	__attribute__((warn_unused_result));

#endif
