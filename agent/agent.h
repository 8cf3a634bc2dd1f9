/*
 * The host agent: a store of verified patches (the host's truth), the
 * policy that says what hpatchd may do on its own, and the reconciling of
 * each process with the store. Used by hpatchd and by hpatch's install,
 * uninstall, list and check. Uses the runtime only through runtime.h.
 */
#ifndef HP_AGENT_H
#define HP_AGENT_H

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "common/hp_out.h"
#include "packer/packer.h"
#include "common/hp_log.h"
#include "runtime/runtime.h"

#define HP_STORE_DIR_DEFAULT "/var/lib/hpatch/patches"
#define HP_CONFIG_DEFAULT "/etc/hpatch/hpatch.conf"
#define HP_AGENT_STATE_DIR_DEFAULT "/run/hpatch"
/* The daemon's view, in its state directory (see hp_agent_view_*). */
#define HP_AGENT_VIEW_FILE "hpatchd.view"
#define HP_PATCH_ID_MAX 64

/*
 * hp_agent_read_patch() - read @path, verify its signature against the
 * keys of @trust_dir (@flags: enum hp_pack_read_flags), parse it, and
 * refuse it once expired. *@out is new (caller frees).
 * Return: 0, -errno, -HP_E_* of hp_pack_read, -HP_E_EXPIRED. Reports.
 */
int hp_agent_read_patch(const char *path, const char *trust_dir,
			unsigned int flags, struct hp_patch **out)
	__attribute__((warn_unused_result));

/* ---- ag_store.c: the patch store ---- */

/* One installed patch: DIR/<id>.hpatch. */
struct hp_store_entry {
	char id[HP_PATCH_ID_MAX];
	char path[PATH_MAX + NAME_MAX + 2];
	struct hp_patch *p; /* NULL when it no longer verifies (then rc) */
	int rc;
	/* Past its expiry (rc -HP_E_EXPIRED, p NULL): applied no more, but
	 * it supersedes the older patches of its builds still. */
	struct hp_patch *expired;
	/* Another installed patch for one of its builds has a higher
	 * sequence: that one is applied (replacing this one), not this. */
	bool superseded;
	char key_id[HP_KEY_ID_STR_BYTES];
};

/*
 * The store's content. DIR/<id>.uninstalled marks a patch uninstalled
 * whose reverts may not all have happened yet: hpatchd reverts it where it
 * is still in place, then removes the mark.
 */
struct hp_store {
	char dir[PATH_MAX];
	struct hp_store_entry *entries;
	size_t nr;
	char (*uninstalled)[HP_PATCH_ID_MAX];
	size_t nr_uninstalled;
};

enum hp_store_flags {
	HP_STORE_ALLOW_DOWNGRADE = 1 << 0,
};

/*
 * hp_store_load() - read and verify every patch of @dir against
 * @trust_dir (a patch that no longer verifies or has expired is listed
 * with its rc and never applied). A missing @dir is an empty store.
 * Release with hp_store_release(). Return: 0 or -errno (reported).
 */
int hp_store_load(struct hp_store *s, const char *dir, const char *trust_dir)
	__attribute__((warn_unused_result));
void hp_store_release(struct hp_store *s);
const struct hp_store_entry *hp_store_find(const struct hp_store *s,
					   const char *id);
bool hp_store_is_uninstalled(const struct hp_store *s, const char *id);

/*
 * hp_store_install() - verify @file (signature, trusted key, expiry) and
 * refuse it if older (sequence) than an installed patch for one of its
 * builds, unless @flags allow; then copy it into @dir as <id>.hpatch
 * through a temporary file and rename(), so hpatchd never sees half a
 * file. Its id is copied to @id (HP_PATCH_ID_MAX).
 * Return: 0, -HP_E_APPLIED (the same patch is installed), -HP_E_DOWNGRADE,
 * the refusals of hp_agent_read_patch, -errno. Reports.
 */
int hp_store_install(const char *dir, const char *file, const char *trust_dir,
		     unsigned int flags, char *id)
	__attribute__((warn_unused_result));

/*
 * hp_store_uninstall() - remove patch @id from @dir and leave the mark
 * that it is to be reverted. Return: 0, -HP_E_NOTAPPLIED (not installed),
 * -errno. Reports.
 */
int hp_store_uninstall(const char *dir, const char *id)
	__attribute__((warn_unused_result));

/* Does @name (in a store directory) name a patch or a mark? */
bool hp_store_is_entry_name(const char *name);

/* Remove the uninstall mark of @id (every process is reverted). */
void hp_store_drop_mark(const char *dir, const char *id);

/* hp_store_lock() - take @dir's lock (exclusive, blocking unless @try):
 * one writer of processes at a time. The lock is that of the file at
 * STORE/.lock when it returns: a file removed or renamed over while we
 * took its lock is dropped and the new one locked. Return: an fd to
 * close, or -errno (-EWOULDBLOCK with @try; -EAGAIN also when the file
 * kept being replaced). */
int hp_store_lock(const char *dir, bool try);

/* ---- ag_policy.c: /etc/hpatch/hpatch.conf ---- */

enum hp_rule_kind {
	HP_RULE_EXCLUDE,	  /* never touch */
	HP_RULE_INCLUDE,	  /* when any: touch only what one matches */
	HP_RULE_FALLBACK_RESTART, /* restart the owning systemd unit */
	HP_RULE_FALLBACK_COMMAND, /* run a command */
	HP_RULE_FALLBACK_NONE,	  /* explicitly nothing */
};

/* A rule on a process, by its systemd unit or its executable (fnmatch). */
struct hp_rule {
	enum hp_rule_kind kind;
	bool by_unit; /* else by executable path */
	char *pattern;
	/* An exe rule's path through symbolic links resolved, as
	 * /proc/PID/exe names it, when it differs: matched too. */
	char *real_pattern;
	char *command; /* HP_RULE_FALLBACK_COMMAND */
};

#define HP_RETRY_MAX 16
struct hp_policy {
	bool auto_apply;
	char (*keys)[HP_KEY_ID_STR_BYTES]; /* allowed signers; none: any */
	size_t nr_keys;
	uint32_t retry_ms[HP_RETRY_MAX]; /* delays between attempts */
	size_t nr_retry;
	long attempt_timeout_ms;      /* one attempt's consistency timeout */
	long rescan_ms;		      /* full rescan (dlopen, missed events) */
	int window_start, window_end; /* minutes of the local day, -1: none */
	char metrics_path[PATH_MAX];  /* "" : no metrics file */
	/* The perf maps of processes it patched, once they exit: kept this
	 * long (-1: for ever), and at most this many (the oldest go). */
	long perf_keep_ms;
	uint32_t perf_max_exited;
	struct hp_rule *rules; /* in file order: first match wins */
	size_t nr_rules;
	struct hp_rule not_included; /* what hp_policy_excluded returns for
				      * a process no [include] matches */
	struct hp_rule exe_unknown;  /* ... for one whose executable path
				      * cannot be read whole, when a rule
				      * names executables */
	bool from_file;		     /* read from a file, not the defaults */
};

/* The built-in defaults (what an empty file means). */
void hp_policy_init(struct hp_policy *pol);
/*
 * hp_policy_load() - read @path over the defaults. A missing file is the
 * defaults when @optional. Every bad line is reported, then it fails.
 * Return: 0, -EINVAL, -errno.
 */
int hp_policy_load(struct hp_policy *pol, const char *path, bool optional)
	__attribute__((warn_unused_result));
void hp_policy_release(struct hp_policy *pol);
/* The rule that puts a process out of hpatchd's reach (an [exclude]
 * match, or no [include] match when there are any), or NULL. @exe NULL
 * (not readable whole) is out of reach of any policy naming executables. */
const struct hp_rule *hp_policy_excluded(const struct hp_policy *pol,
					 const char *exe, const char *unit);
/* Does a rule name units (else a process's unit need not be read)? */
bool hp_policy_uses_units(const struct hp_policy *pol);
/* The first [fallback] rule matching the process, or NULL. */
const struct hp_rule *hp_policy_fallback(const struct hp_policy *pol,
					 const char *exe, const char *unit);
/* Inside the maintenance window (always, when none is set)? */
bool hp_policy_in_window(const struct hp_policy *pol, time_t now);
bool hp_policy_key_allowed(const struct hp_policy *pol, const char *key_id);
/* Parse "500ms", "5s", "2m", "1h" (a bare number: seconds). */
int hp_policy_parse_duration(const char *text, long *ms)
	__attribute__((warn_unused_result));

/* ---- ag_proc.c: facts about a process ---- */

/* Every process but this one; *@pids is malloc'd. Return: 0 or -errno. */
int hp_agent_pids(pid_t **pids, size_t *nr) __attribute__((warn_unused_result));
/*
 * The process's executable path, whole (malloc'd); or NULL with errno:
 * ENOENT (exited, a zombie, a kernel thread), ENAMETOOLONG (a path longer
 * than PATH_MAX, which the policy's rules cannot be checked against).
 */
char *hp_agent_exe(pid_t pid);
/* Room for any unit name (a cgroup directory: at most NAME_MAX bytes). */
#define HP_UNIT_MAX 256
/* The systemd unit owning @pid, from /proc/PID/cgroup ("" if none).
 * Return: true when it is a unit of the host's systemd (only slices above
 * it), not one of a container's or a user's manager below a unit. */
bool hp_agent_unit(pid_t pid, char *out, size_t cap);
/* The unit in one cgroup file's text (for tests); return as above. */
bool hp_agent_unit_of(const char *cgroup_text, char *out, size_t cap);
/* Start time of @pid in clock ticks since boot (0 if gone or a zombie):
 * with the pid, it names one process across pid reuse. */
uint64_t hp_agent_start_time(pid_t pid);
/* Did @rc come of this process's own resources running short (no fd
 * left, no memory), not of what it read? Then nothing is known of it. */
static inline bool hp_agent_ran_short(int rc)
{
	return rc == -EMFILE || rc == -ENFILE || rc == -ENOMEM;
}

/* Now, on the clock of hp_agent_start_time (UINT64_MAX: not known): a
 * process that started later has a greater start time. */
uint64_t hp_agent_now_ticks(void);

/* A patch marked uninstalled in @s still in place in @pid: its id in @id
 * ("": none). Return: 0, or the query's failure (hp_agent_ran_short). */
int hp_agent_find_removed(const struct hp_store *s, pid_t pid,
			  char id[HP_PATCH_ID_MAX])
	__attribute__((warn_unused_result));

/*
 * hp_agent_revert_removed() - in @pid, revert every patch still in place
 * whose id is marked uninstalled in @s (and not installed): reverting is
 * newest first, so a later patch above it is reverted too (hpatchd
 * applies that one again). Each revert is recorded in @audit. A process
 * whose memory cannot be read (a kernel thread, gone) has none; one not
 * read for want of an fd or memory (hp_agent_ran_short) is a failure.
 * Return: the number reverted, or -errno / -HP_E_* of the first failure.
 */
int hp_agent_revert_removed(const struct hp_store *s, pid_t pid,
			    const struct hp_rt_opts *opts,
			    struct hp_rt_audit *audit);

/* ---- ag_view.c: the daemon's view, for hpatch list / status ---- */

enum hp_track_state {
	HP_TRACK_APPLIED,
	HP_TRACK_PENDING,  /* not yet tried, or waiting (window, policy) */
	HP_TRACK_BUSY,	   /* tried, busy; retried */
	HP_TRACK_REFUSED,  /* tried, refused; retried */
	HP_TRACK_GAVE_UP,  /* retries exhausted (fallback run, if any) */
	HP_TRACK_EXCLUDED, /* policy: never touched */
	HP_TRACK_NR
};
const char *hp_track_state_name(enum hp_track_state st);

/*
 * What came of the policy's fallback for one process and patch, run at
 * most once: the view's number for it is the file's (0 and 1 are what an
 * older hpatchd wrote as "fallback_done").
 */
enum hp_fallback_result {
	HP_FALLBACK_NONE,    /* none run */
	HP_FALLBACK_UNKNOWN, /* run, its end not seen (hpatchd stopped
			      * meanwhile; an older hpatchd's record) */
	HP_FALLBACK_RUNNING, /* its command still runs */
	HP_FALLBACK_OK,	     /* the command exited 0; the restart queued */
	HP_FALLBACK_FAILED,  /* exit status, signal, could not start,
			      * restart refused */
	HP_FALLBACK_NR
};
const char *hp_fallback_result_name(enum hp_fallback_result r);
/* Room for what a fallback did ("command exited with status 3"). */
#define HP_FALLBACK_MAX 128

/* One (process, patch) as the daemon sees it. */
struct hp_track {
	pid_t pid;
	char patch_id[HP_PATCH_ID_MAX];
	enum hp_track_state state;
	uint32_t tries;
	enum hp_fallback_result fallback_result;
	char fallback[HP_FALLBACK_MAX]; /* what it did ("": none run) */
	char reason[160];
};

struct hp_view {
	pid_t daemon_pid;
	uint64_t started; /* unix seconds */
	uint64_t updated; /* unix seconds */
	uint64_t applied; /* counters since start */
	uint64_t reverted;
	uint64_t failures;
	uint64_t fallbacks;
	uint64_t fallbacks_failed; /* ... of which failed */
	uint64_t last_pause_us;
	struct hp_track *tracks;
	size_t nr_tracks;
	/* Processes whose builds hpatchd cannot tell now (so it does not
	 * know whether a patch is for them), with why. */
	struct hp_undecided *undecided;
	size_t nr_undecided;
};

struct hp_undecided {
	pid_t pid;
	char reason[96];
};

/* The process @pid of @v's undecided ones, or NULL. */
const struct hp_undecided *hp_view_undecided(const struct hp_view *v,
					     pid_t pid);

/* Write @v to @path atomically. Return: 0 or -errno. */
int hp_view_write(const struct hp_view *v, const char *path)
	__attribute__((warn_unused_result));
/* Read it back; a daemon no longer running gives -ESRCH (with *v read).
 * Release with hp_view_release(). Return: 0, -ENOENT, -ESRCH, -EINVAL. */
int hp_view_read(struct hp_view *v, const char *path)
	__attribute__((warn_unused_result));
void hp_view_release(struct hp_view *v);
/* @t's fallback in @o: whether one ran (it never runs again for that
 * process and patch), how it ended, what it did. */
void hp_track_out_fallback(struct hp_out *o, const struct hp_track *t);
/* The daemon's view as the object "daemon" in @o (running or not). */
void hp_view_out(struct hp_out *o, const char *state_dir);

/* ---- ag_daemon.c: hpatchd ---- */

struct hp_agent_conf {
	const char *store_dir;
	const char *trust_dir;
	const char *state_dir;
	const char *audit_path;
	const char *config_path;
	bool config_optional; /* the default path: a missing file is ok */
	bool journal;	      /* log to journald, notify systemd */
	/* Where hp_log's messages go (NULL: stderr), as set by main. */
	hp_log_sink_fn *log_sink;
};

/*
 * hp_agent_run() - hpatchd's loop until SIGTERM/SIGINT: keep every process
 * reconciled with the store. Return: 0 on a clean shutdown, -errno.
 */
int hp_agent_run(const struct hp_agent_conf *conf)
	__attribute__((warn_unused_result));

#endif
