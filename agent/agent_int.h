/*
 * hpatchd internals: the daemon's state, shared by its loop (ag_daemon.c),
 * its tables (ag_table.c), inotify watches (ag_watch.c), the process-event
 * connector (ag_procev.c), fallbacks (ag_fallback.c) and what it publishes
 * (ag_metrics.c).
 */
#ifndef HP_AGENT_INT_H
#define HP_AGENT_INT_H

#include "agent/agent.h"

#include <poll.h>

/* A process hpatchd looks at. */
struct ag_proc {
	pid_t pid;
	uint64_t start_time;   /* clock ticks since boot; 0: not yet read */
	uint64_t due_us;       /* next reconcile (CLOCK_MONOTONIC), 0: none */
	uint64_t exec_us;      /* when its exec was seen (0: found by a scan) */
	uint8_t rescans;       /* post-exec rescans scheduled so far */
	uint8_t loading_looks; /* looks while it holds a library open */
	uint8_t undecided;     /* looks in a row that could not tell what
				* it maps (no fd left, ...) */
	int undecided_rc;      /* why, the last of them */
	uint64_t loading_us;   /* since when (0: it holds none) */
	bool gone;
	bool unit_read; /* unit read (only when a rule or fallback needs it) */
	bool unit_host; /* ... a unit of the host's systemd (hp_agent_unit) */
	bool seen;	/* listed by the last full scan */
	/* An image whose exec was seen, and no event lost since: its exit
	 * will be seen too, before its pid is another's. Its start time is
	 * read only once it maps a patched build (0 until then). */
	bool fresh;
	bool exe_read; /* exe read for this image */
	/* Events lost since its exe was read: an exec unseen? (identify) */
	bool exe_check;
	/* Its leader's exit seen while threads of its own lived on: its
	 * next look tells whether the process did too (ag_on_exit). */
	bool exit_seen;
	/* Its apply waited at its exec for ld.so (ag_at_exec): its first
	 * rescan is its first look, with nothing of ours in it unless the
	 * exec's look applied another patch (then query_first). */
	bool deferred;
	/* Its first look asks (on_exec), or its first rescan (attempt). */
	bool query_first;
	bool dirs_watched; /* its library directories watched */
	/* A patch applied to it, in this image or one before an exec: its
	 * perf map is collected after it exits (ag_perfmap.c). */
	bool perf_map;
	const struct hp_rule *excluded; /* borrowed from the policy */
	/* Excluded, with an uninstalled patch in place: said once. */
	bool keeps_removed;
	char *exe; /* malloc'd; NULL: not read, or not whole (exe_errno) */
	int exe_errno;
	char unit[HP_UNIT_MAX];
};

struct ag_track {
	struct hp_track t;
	uint64_t due_us;  /* next try after a failure */
	uint64_t busy_us; /* the current try's slices found it busy for */
	/* Gave up: the length of t.reason before what its fallback did
	 * (told again as a command ends, ag_reap_commands). */
	uint8_t why_len;
};

/*
 * A fallback already run: never again for this process and patch; and
 * what it did, said by hpatch list and status until the process exits
 * (STATE_DIR/hpatchd.fallbacks, a line each: "PID START ID", then, since
 * the outcome is kept, " RESULT WHAT", RESULT a hp_fallback_result_name).
 */
struct ag_done {
	pid_t pid;
	uint64_t start_time;
	char patch_id[HP_PATCH_ID_MAX];
	enum hp_fallback_result result;
	char what[HP_FALLBACK_MAX]; /* "command exited with status 3" */
};

/*
 * What the kernel's process events tell of one process (ag_procev.c), by
 * the order of the events: when it was created (fork), when it last
 * exec'd, when its leader exited. A process shares the memory an exec
 * made only if it was created after that exec, by clone(CLONE_VM), and
 * has not exec'd since.
 */
struct ag_pidinfo {
	pid_t pid;	   /* 0: a free slot */
	uint64_t born_seq; /* its fork event; 0: not seen */
	uint64_t exec_seq; /* its last exec event; 0: none since its fork */
	uint64_t exit_seq; /* its leader's exit (threads may live on); 0 */
};

/* An exec or an exit, read while an apply ran: for the loop, in order. */
struct ag_event {
	pid_t pid;
	bool exec;
	uint64_t at_us;
};

struct ag_events {
	int fd;	      /* the netlink socket */
	uint64_t seq; /* events read so far */
	bool lost;    /* some were lost (ENOBUFS): the loop rescans */
	/* Every process created or exec'd since hpatchd listens, and alive
	 * (open addressing by pid, cap a power of 2): a few MB for a host
	 * of 100,000 processes. */
	struct ag_pidinfo *tab;
	size_t nr_tab, cap_tab;
	struct ag_event *queue;
	size_t nr_queue, cap_queue;
	struct hp_rt_births births; /* over this, for hp_rt_sharers_follow */
};

/* The perf map of a patched process that exited (ag_perfmap.c). */
struct ag_gone_map {
	pid_t pid;
	uint32_t tries;	   /* asked while its pid was in use */
	int64_t exited_ns; /* CLOCK_REALTIME */
	uint64_t due_us;   /* CLOCK_MONOTONIC */
};

/* Oldest first, from head. */
struct ag_gone_maps {
	struct ag_gone_map *v;
	size_t head, nr, cap;
};

/*
 * The store's lock as hpatchd takes it: at every pass over the processes
 * due (one pass per new process in a storm of them), so its file is kept
 * open from one pass to the next (ag_store.c).
 */
struct ag_store_lock {
	int fd;	   /* STORE/.lock, -1: none open */
	dev_t dev; /* the file @fd is (kept open: no other gets its inode) */
	ino_t ino;
};

/* A fallback command still running: audited as it ends, with its exit
 * status (ag_fallback.c). */
struct ag_cmd {
	pid_t pid;
	int pidfd; /* -1: none (before Linux 5.3), looked at each tick */
	uint64_t start_time; /* of the target, res.pid: its ag_done */
	/* The try that gave up (the target, the patch): the audit's facts. */
	struct hp_rt_result res;
	char path[PATH_MAX + NAME_MAX + 2]; /* the patch's store file */
};

struct ag_daemon {
	const struct hp_agent_conf *conf;
	struct hp_policy pol;
	struct hp_store store;
	struct ag_store_lock store_lock;
	struct timespec store_stamp[2]; /* its directory's mtime, ctime */
	/* The first expiry of a patch read (unix seconds; 0: none): past
	 * it, the store is read again before anything is applied. */
	uint64_t store_expires;
	/* The store changed and could not be read (no fd left, no
	 * memory): read again before anything is applied (run_due). */
	bool store_unread;
	/* Per store entry: the patch to apply (NULL: superseded or not
	 * verified), and how many of its modules a process maps. */
	const struct hp_patch **wanted;
	uint32_t *mapped;
	size_t nr_wanted;
	/* Of them, those without unwind tables: applied at an exec's own
	 * look, the others only once ld.so is done (ag_has_unwind). */
	size_t nr_at_exec;
	struct hp_rt_audit audit;
	struct ag_events ev;
	/* Who shares a target's memory: asked of ev (a few kcmp calls), or
	 * of the host when ev cannot tell (a target found by a scan). */
	struct hp_rt_sharers *sharers;
	int in_fd, sig_fd, store_wd;
	struct ag_proc *procs;
	size_t nr_procs, cap_procs;
	struct ag_track *tracks;
	size_t nr_tracks, cap_tracks;
	struct ag_done *done;
	size_t nr_done;
	struct ag_cmd *cmds;
	size_t nr_cmds, cap_cmds;
	struct pollfd *pfds; /* the loop's, one per command after its own */
	size_t cap_pfds;
	uint64_t next_full_us; /* periodic rescan of every process */
	uint64_t store_due_us; /* reload after the store changed */
	uint64_t sweep_due_us; /* rescan after a patched library opened */
	uint64_t last_sweep_us;
	bool sweep_fds; /* this pass looks for libraries held open */
	/* Threads an apply left attached, not stopped in time (asleep in a
	 * frozen cgroup, say): asked after every HP_LEFT_POLL_US until each
	 * stops and is let go (hp_rt_release_left). */
	size_t nr_left;
	/* Directories recently watched (FNV-1a hashes of their paths): an
	 * exec of the same program watches nothing again. */
	uint64_t watched[64];
	size_t next_watched;
	/* Notes said once per patch and build, not per process (hashes of
	 * both): "no unwinder loaded". */
	uint64_t noted[64];
	size_t next_noted;
	/* Library directories watched for files created or moved in (their
	 * paths, for the files named as a patch's module in them). */
	struct ag_dir {
		int wd;
		char *path;
	} * dirs;
	size_t nr_dirs;
	bool sweep_marks;  /* this scan may drop the uninstall marks */
	bool sweep_failed; /* ... unless a revert failed */
	/* ... or processes it did not list (forked since) are still to be
	 * looked at: the lists of them made so far (sweep_newcomers). */
	uint8_t sweep_lists;
	/* Reverts of uninstalled patches in this pass: only a process that
	 * had one can have forked one that has it (sweep_newcomers). */
	uint32_t sweep_reverted;
	bool stopping; /* its last publish: the metrics say it is down */
	bool view_dirty;
	uint64_t view_due_us;
	struct hp_view view; /* counters; tracks filled when published */
	char view_path[PATH_MAX];
	char fallbacks_path[PATH_MAX];
	struct ag_gone_maps gone_maps;
};

/* FNV-1a of @s, on from @h (0: a new hash). */
static inline uint64_t ag_hash(uint64_t h, const char *s)
{
	if (!h)
		h = 0xcbf29ce484222325ULL;
	for (const char *c = s; *c; c++)
		h = (h ^ (uint8_t)*c) * 0x100000001b3ULL;
	return h;
}

/* ag_store.c: take @l (never waits), as hp_store_lock(@dir, true) takes
 * the lock, on the file at STORE/.lock when it returns. Return: 0, or
 * -errno (-EWOULDBLOCK: another holds it). */
int ag_store_lock(struct ag_store_lock *l, const char *dir)
	__attribute__((warn_unused_result));
/* Let go of @l's lock; its file stays open for the next. */
void ag_store_unlock(struct ag_store_lock *l);
/* Close @l's file (none open: nothing). */
void ag_store_lock_release(struct ag_store_lock *l);

/* ag_match.c: which patches a process maps, from its maps and a cache of
 * each mapped file's build-id. */
struct ag_maps_line {
	uint64_t start, end, offset;
	dev_t dev; /* as the mapped inode's file system says */
	unsigned long ino;
	bool readable, exec, shared;
	const char *path; /* into the line, not NUL-terminated */
	size_t path_len;
};
/* One line of /proc/PID/maps. Return: 0 or -EINVAL. */
int ag_maps_parse_line(const char *line, struct ag_maps_line *m);
/* As hp_rt_match. Return: 0, -HP_E_GONE, or -EAGAIN when the maps or a
 * mapped file say nothing now (a file replaced or deleted, not ours to
 * read, leased; no fd left): ask hp_rt_match. A file not read is never
 * taken for one of no patch. */
int ag_match(pid_t pid, const struct hp_patch *const *patches, size_t nr,
	     uint32_t *mapped, size_t *nr_hit);
/* Forget every cached file. */
void ag_match_reset(void);

/* ag_procev.c: the netlink process-event connector. */
int ag_events_open(struct ag_events *ev) __attribute__((warn_unused_result));
void ag_events_close(struct ag_events *ev);
/* Read every event the socket holds into ev's table; execs and exits are
 * queued for ag_procev_read. */
void ag_events_drain(struct ag_events *ev, uint64_t now);
/* hp_rt_births.since_exec over a struct ag_events. */
int ag_events_since_exec(void *ev, pid_t pid, pid_t **pids, size_t *nr);
/* Forget processes whose leader exited before event @seq and that are not
 * among @pids (the host's, listed after @seq): exited since, all threads. */
void ag_events_prune(struct ag_events *ev, uint64_t seq, pid_t *pids,
		     size_t nr);
/* Read every pending event and hand execs and exits to the daemon.
 * Return: 0, or -ENOBUFS when some were lost (the caller rescans every
 * process). */
int ag_procev_read(struct ag_daemon *d, uint64_t now);

/* ag_daemon.c, for ag_procev.c */
void ag_on_exec(struct ag_daemon *d, pid_t pid, uint64_t now);
void ag_on_exit(struct ag_daemon *d, pid_t pid);
/* ... and for ag_attempt.c: exec'd so recently that more rescans (for
 * libraries ld.so maps) are still to come? */
bool ag_is_starting(const struct ag_proc *pr, uint64_t now);
/* Looked at as its exec is seen, before its first rescan is due: ld.so
 * has not run yet, or has only begun. */
bool ag_at_exec(const struct ag_proc *pr, uint64_t now);
/* Does @p carry unwind tables (applied only once ld.so is done)? */
bool ag_has_unwind(const struct hp_patch *p);

/* ag_attempt.c: the tries. How one runs (the policy's timeout, the
 * daemon's state directory); the delay before try @tries + 1; each
 * installed patch @pr maps the build of (@mapped, per patch) tried or
 * held, as its track says. */
struct hp_rt_opts ag_attempt_opts(const struct ag_daemon *d);
/* When to try again after the @tries-th failed try, at @now. */
uint64_t ag_retry_at(const struct ag_daemon *d, uint64_t now, uint32_t tries);
void ag_reconcile_patches(struct ag_daemon *d, struct ag_proc *pr,
			  const uint32_t *mapped, uint64_t now);

/* ag_table.c: the processes and tracks of struct ag_daemon. */
struct ag_proc *ag_find_proc(struct ag_daemon *d, pid_t pid);
/* @pid's entry, added if new. Return: NULL when out of memory. */
struct ag_proc *ag_add_proc(struct ag_daemon *d, pid_t pid);
void ag_drop_tracks(struct ag_daemon *d, pid_t pid);
bool ag_has_tracks(const struct ag_daemon *d, pid_t pid);
/* An exited process is forgotten, so memory stays flat. */
void ag_forget_proc(struct ag_daemon *d, pid_t pid);
/* ag_perfmap.c: the perf map of @pid, patched and gone, is removed in
 * the policy's while (ag_perfmap_run once ag_perfmap_due, 0: none). */
void ag_perfmap_exited(struct ag_daemon *d, pid_t pid, uint64_t now);
/* At start: the maps of processes gone before it (hpatchd restarted, or
 * the hpatch command's), queued as if they had exited at their last
 * write. */
void ag_perfmap_sweep(struct ag_daemon *d, uint64_t now);
uint64_t ag_perfmap_due(const struct ag_daemon *d);
void ag_perfmap_run(struct ag_daemon *d, uint64_t now);
void ag_perfmap_release(struct ag_daemon *d);
/* The track of (@pid, @id), added if new. Return: NULL when out of
 * memory. */
struct ag_track *ag_add_track(struct ag_daemon *d, pid_t pid, const char *id);
void ag_set_track(struct ag_daemon *d, struct ag_track *t,
		  enum hp_track_state st, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Look at @pr at @at, or earlier if it is due earlier already. */
void ag_schedule(struct ag_proc *pr, uint64_t at);

/* ag_watch.c: inotify, for dlopen()s and the store. */
void ag_follow_loader(struct ag_daemon *d, struct ag_proc *pr, uint64_t now);
/* @exe's directory and ../lib; NULL: the default library directories. */
void ag_watch_lib_dirs(struct ag_daemon *d, const char *exe);
void ag_watch_modules(struct ag_daemon *d, const char *modules,
		      const char *exe);
/* Read the inotify events: set d->store_due_us, d->sweep_due_us. */
void ag_on_inotify(struct ag_daemon *d, uint64_t now);
/* After the store changed: watch the files its patches' libraries are
 * named in each directory watched. */
void ag_watch_names(struct ag_daemon *d);
void ag_watch_release(struct ag_daemon *d);

/* ag_fallback.c: after the last retry, the policy's fallback, once. */
void ag_load_fallbacks(struct ag_daemon *d);
/* @pid exited: its fallbacks run are forgotten (a pid reused is another
 * start time), in memory and on disk. */
void ag_forget_fallbacks(struct ag_daemon *d, pid_t pid);
void ag_read_unit(struct ag_proc *pr);
void ag_run_fallback(struct ag_daemon *d, struct ag_proc *pr,
		     struct ag_track *t, const struct hp_store_entry *e,
		     const struct hp_rt_result *res);
/* Return: 0 or -errno / -HP_E_* (reported; why, in @why). */
int ag_restart_unit(const char *unit, char *why, size_t cap);
/* Start @cmd for @pid. Return: the command's pid, to reap
 * (ag_command_status), or -errno (reported); *@pidfd: a pidfd of it to
 * poll, or -1 (none: a kernel before 5.3; look at it each tick). */
pid_t ag_run_command(const char *cmd, pid_t pid, const char *patch,
		     const char *unit, const char *reason, int *pidfd);
/* Reap the command @child (its pidfd polled readable, or a tick).
 * Return: 0 (exit 0), -HP_E_FALLBACK (another end, said in @how), -EAGAIN
 * (still running). */
int ag_command_status(pid_t child, char *how, size_t cap);
/* How often a command without a pidfd is looked at. */
#define HP_CMD_TICK_US 250000
/* The commands that ended: audited, forgotten; all of them with @all
 * (hpatchd stops: those still running are said so). */
void ag_reap_commands(struct ag_daemon *d, bool all);

/* ag_metrics.c: the view file and the Prometheus textfile. */
void ag_publish(struct ag_daemon *d);

/* ag_marks.c: the uninstall marks. In @pr (looked at while there are
 * marks): revert the patches they name; excluded by the policy, keep the
 * marks while it has one (said once). */
void ag_marks_revert(struct ag_daemon *d, struct ag_proc *pr, uint64_t now);
void ag_marks_hold(struct ag_daemon *d, struct ag_proc *pr, uint64_t now);
/* After a pass of a sweep of the marks: drop them if no process is left
 * with one, else list those forked meanwhile for the next pass. Return:
 * whether the sweep is over (false: the marks wait for that pass). */
bool ag_marks_sweep_end(struct ag_daemon *d, uint64_t now);
/* Remove the uninstall marks: every process is reverted. */
void ag_drop_marks(struct ag_daemon *d);

#endif
