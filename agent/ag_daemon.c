/*
 * hpatchd's loop: keeps every process reconciled with the patch store.
 * Wakes on the store changing (inotify), on every exec (the kernel's
 * process-event connector), on a patched library being opened (inotify,
 * for dlopen), on signals (signalfd) and on its own timers; never mid-way
 * through an apply: signals are read between operations, so a SIGTERM
 * never leaves a process stopped or half-patched.
 *
 * Per process it keeps a due time; per (process, patch) a track: applied,
 * or pending / busy / refused with the reason, the tries so far and the
 * time of the next one (the policy's retry schedule), then the fallback,
 * at most once (remembered across restarts by pid and start time).
 * Its tables are in ag_table.c, its tries in ag_attempt.c, its inotify
 * watches in ag_watch.c, the fallbacks in ag_fallback.c, the process
 * events in ag_procev.c.
 */
#include "agent/agent.h"
#include "agent/agent_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

/* How often threads left attached are asked after: the longest a thread
 * thawed waits stopped for hpatchd. */
#define HP_LEFT_POLL_US 20000
#define HP_LOG_PREFIX "hpatchd: "

/* After an exec, look again for libraries ld.so maps (the exec event
 * comes before it runs): these delays after the event, in us. */
static const uint64_t exec_rescans_us[] = { 3000, 30000, 300000 };
#define HP_LOCK_RETRY_US 50000	/* the CLI holds the store's lock */
#define HP_EXIT_LOOK_US 10000	/* a leader's exit: the process's too? */
#define HP_VIEW_EVERY_US 100000 /* view and metrics rewrites */

/* Which patches to apply @pid maps the build of: d->mapped, *@nr_hit. */
static int match(struct ag_daemon *d, pid_t pid, size_t *nr_hit)
{
	const int rc = ag_match(pid, d->wanted, d->store.nr, d->mapped, nr_hit);

	if (rc != -EAGAIN)
		return rc;
	return hp_rt_match(pid, d->wanted, d->store.nr, d->mapped, nr_hit);
}

/* Every process, due now (start, store change, SIGHUP, missed events). */
static void full_scan(struct ag_daemon *d, uint64_t now)
{
	const uint64_t seq = d->ev.seq; /* events read before the listing */
	pid_t *pids = NULL;
	size_t nr = 0;

	d->next_full_us = now + (uint64_t)d->pol.rescan_ms * 1000;
	/* Directories missing at the last try may exist now. */
	memset(d->watched, 0, sizeof(d->watched));
	if (hp_agent_pids(&pids, &nr))
		return;
	/* Events may have been lost (this scan's cause, often): an exit
	 * unseen, a pid reused. Every process is known by its start time
	 * again. */
	for (size_t i = 0; i < d->nr_procs; i++) {
		d->procs[i].seen = false;
		d->procs[i].fresh = false;
	}
	for (size_t i = 0; i < nr; i++) {
		struct ag_proc *pr = ag_add_proc(d, pids[i]);

		if (pr) {
			pr->seen = true;
			ag_schedule(pr, now);
		}
	}
	ag_events_prune(&d->ev, seq, pids, nr);
	free(pids);
	hp_dbg(HP_DBG_TIMING, "full scan: %zu processes", nr);
	/* Gone without an exit event (lost: ENOBUFS in a storm). */
	for (size_t i = 0; i < d->nr_procs;) {
		if (d->procs[i].seen) {
			i++;
			continue;
		}
		ag_forget_proc(d, d->procs[i].pid); /* the last moves to i */
	}
	d->sweep_marks = d->store.nr_uninstalled > 0;
	d->sweep_failed = false;
	d->sweep_lists = 0;
}

/* Exec'd so recently that more rescans are still to come? */
bool ag_is_starting(const struct ag_proc *pr, uint64_t now)
{
	return pr->exec_us && pr->rescans < HP_ARRAY_SIZE(exec_rescans_us) &&
	       now - pr->exec_us <
		       exec_rescans_us[HP_ARRAY_SIZE(exec_rescans_us) - 1];
}

bool ag_at_exec(const struct ag_proc *pr, uint64_t now)
{
	return pr->exec_us && !pr->rescans &&
	       now - pr->exec_us < exec_rescans_us[0];
}

/* Its executable, whole, for the policy (NULL: pr->exe_errno). */
static void read_exe(struct ag_proc *pr)
{
	free(pr->exe);
	pr->exe = hp_agent_exe(pr->pid);
	pr->exe_errno = pr->exe ? 0 : errno;
	if (pr->exe_errno == ENAMETOOLONG)
		hp_log(HP_LOG_WARN,
		       "pid %d: executable path longer than PATH_MAX: not "
		       "patched where a rule names executables",
		       (int)pr->pid);
}

/* A new image of @pr (first sight, an exec, a reused pid): what was known
 * of the old one goes (its executable is read by the caller). */
static void new_image(struct ag_daemon *d, struct ag_proc *pr)
{
	ag_drop_tracks(d, pr->pid);
	pr->unit_read = false;
	pr->dirs_watched = false;
}

/* Events were lost: a process may have exec'd unseen, its start time the
 * same, its executable another. Read again: another is a new image. */
static void check_exe(struct ag_daemon *d, struct ag_proc *pr)
{
	char *was = pr->exe;
	const int was_errno = pr->exe_errno;

	pr->exe_check = false;
	pr->exe = NULL;
	read_exe(pr);
	if ((was && pr->exe && strcmp(was, pr->exe)) || !was != !pr->exe ||
	    was_errno != pr->exe_errno)
		new_image(d, pr);
	free(was);
}

/*
 * Who @pr is now: its executable (what the policy matches), read once per
 * image, and what tells a reused pid, its start time. An image whose exec
 * was seen needs no start time until it maps a patched build (tracks and
 * fallbacks are kept by it): its exit comes before its pid is another's,
 * and most execs on a host are of programs no patch is for (three system
 * calls less for each look at one). An exec unseen (events lost, or none
 * followed: no patch to apply then) has its executable read again.
 * Return: false when it is gone.
 */
static bool identify(struct ag_daemon *d, struct ag_proc *pr)
{
	uint64_t start = 0;

	/* No live thread since its leader's exit: the group's exit. */
	if (pr->exit_seen) {
		pr->exit_seen = false;
		if (hp_proc_live_tid(pr->pid) == pr->pid)
			return false;
	}
	if (pr->fresh) {
		if (!pr->exe_read) {
			new_image(d, pr);
			read_exe(pr);
			pr->exe_read = true;
		}
		/* None: exited, a zombie. */
		return pr->exe ||
		       (pr->exe_errno != ENOENT && pr->exe_errno != ESRCH);
	}
	start = hp_agent_start_time(pr->pid);
	if (!start)
		return false;
	if (pr->start_time != start) { /* first sight, or a reused pid */
		pr->start_time = start;
		pr->exe_check = false;
		new_image(d, pr);
		read_exe(pr);
	} else if (pr->exe_check) {
		check_exe(d, pr);
	}
	return true;
}

static void reconcile(struct ag_daemon *d, struct ag_proc *pr, uint64_t now)
{
	size_t nr_hit = 0;
	int rc;

	if (!identify(d, pr)) {
		pr->gone = true;
		return;
	}
	if (hp_policy_uses_units(&d->pol))
		ag_read_unit(pr);
	pr->excluded = hp_policy_excluded(&d->pol, pr->exe, pr->unit);
	if (pr->excluded) {
		if (d->store.nr_uninstalled)
			ag_marks_hold(d, pr, now);
		return;
	}
	if (!pr->dirs_watched && pr->exe) {
		pr->dirs_watched = true;
		ag_watch_lib_dirs(d, pr->exe);
	}
	if (d->store.nr_uninstalled)
		ag_marks_revert(d, pr, now);
	if (!d->nr_wanted)
		return;
	rc = match(d, pr->pid, &nr_hit);
	if (rc == -HP_E_GONE) {
		pr->gone = true;
		return;
	}
	if (rc) {
		/* Neither its maps nor its memory could be read now (no fd
		 * left, ENOMEM): not one of no patch, not gone either. Its
		 * tracks are kept, and it is looked at again, on the retry
		 * schedule (the full scan's period bounds it). */
		if (pr->undecided < UINT8_MAX)
			pr->undecided++;
		/* Said in the view: hpatch list, status, the metrics. */
		if (pr->undecided == 1 || pr->undecided_rc != rc)
			d->view_dirty = true;
		pr->undecided_rc = rc;
		hp_log(pr->undecided == 1 ? HP_LOG_INFO : HP_LOG_DEBUG,
		       "pid %d: which builds it maps cannot be told now: %s",
		       (int)pr->pid, hp_strerror(rc));
		ag_schedule(pr, ag_retry_at(d, now, pr->undecided));
		return;
	}
	if (pr->undecided)
		d->view_dirty = true;
	pr->undecided = 0;
	if (!nr_hit) {
		ag_drop_tracks(d, pr->pid);
		return;
	}
	/*
	 * From now on, known by its start time too: read after the match,
	 * as the apply's lock reads it before it opens the process (the
	 * same proof of who it is: a reused pid shows another start time).
	 * So the first apply's read is taken (attempt), and this process
	 * read only where none ran: two reads of /proc/PID/stat were one.
	 */
	ag_reconcile_patches(d, pr, d->mapped, now);
	/* (At its exec an apply may wait for ld.so, attempt: the one of
	 * its first rescan reads it then, fresh as it is until then.) */
	if (pr->fresh && !pr->gone && !ag_at_exec(pr, now)) {
		pr->start_time = hp_agent_start_time(pr->pid);
		pr->fresh = false;
		pr->gone = !pr->start_time;
	}
}

/* Policy exclusions, shown in the view for processes that map a patch. */
static void note_excluded(struct ag_daemon *d, struct ag_proc *pr)
{
	size_t nr_hit = 0;

	if (!d->nr_wanted || match(d, pr->pid, &nr_hit))
		return;
	for (size_t i = 0; i < d->store.nr; i++) {
		struct ag_track *t = NULL;

		if (!d->wanted[i] || !d->mapped[i])
			continue;
		t = ag_add_track(d, pr->pid, d->store.entries[i].id);
		if (t)
			ag_set_track(d, t, HP_TRACK_EXCLUDED,
				     "policy: excluded by %s",
				     pr->excluded->pattern);
	}
}

static bool store_changed(const struct ag_daemon *d);
static bool store_expired(const struct ag_daemon *d);
static int reload_store(struct ag_daemon *d);

static void run_due(struct ag_daemon *d, uint64_t now)
{
	bool any = false;
	size_t nr_done = 0;

	for (size_t i = 0; i < d->nr_procs && !any; i++)
		any = d->procs[i].due_us && d->procs[i].due_us <= now;
	if (!any)
		return;
	if (ag_store_lock(&d->store_lock, d->conf->store_dir) < 0) {
		/* `hpatch uninstall` is reverting: come back shortly. */
		for (size_t i = 0; i < d->nr_procs; i++)
			if (d->procs[i].due_us && d->procs[i].due_us <= now)
				d->procs[i].due_us = now + HP_LOCK_RETRY_US;
		return;
	}
	/*
	 * Under the lock, the store is what the CLI left: an uninstall
	 * not yet read (its inotify event waits in the queue, or is
	 * debounced) would have us apply the patch it just reverted. A
	 * patch past its expiry is refused as a read refuses it. While the
	 * store cannot be read (no fd left), the one read before may hold
	 * a patch uninstalled since: nothing is applied from it.
	 */
	if ((store_changed(d) || d->store_unread || store_expired(d)) &&
	    !reload_store(d))
		full_scan(d, now);
	if (d->store_unread || store_expired(d)) {
		for (size_t i = 0; i < d->nr_procs; i++)
			if (d->procs[i].due_us && d->procs[i].due_us <= now)
				d->procs[i].due_us = now + HP_LOCK_RETRY_US;
		ag_store_unlock(&d->store_lock);
		return;
	}
	d->sweep_reverted = 0;
	for (size_t i = 0; i < d->nr_procs;) {
		struct ag_proc *pr = &d->procs[i];
		const bool was_excluded = pr->excluded;
		const uint64_t start = pr->start_time;

		if (!pr->due_us || pr->due_us > now) {
			i++;
			continue;
		}
		pr->due_us = 0;
		nr_done++;
		ag_follow_loader(d, pr, now);
		reconcile(d, pr, now);
		/* Once per process: excluded ones are not looked at again. */
		if (!pr->gone && pr->excluded &&
		    (!was_excluded || start != pr->start_time))
			note_excluded(d, pr);
		if (pr->gone) {
			ag_forget_proc(d, pr->pid);
			continue; /* the last one moved here */
		}
		if (pr->rescans < HP_ARRAY_SIZE(exec_rescans_us) &&
		    pr->exec_us) {
			ag_schedule(pr,
				    pr->exec_us + exec_rescans_us[pr->rescans]);
			pr->rescans++;
		}
		i++;
	}
	ag_store_unlock(&d->store_lock);
	d->sweep_fds = false;
	hp_dbg(HP_DBG_TIMING, "%zu processes looked at in %" PRIu64 " us",
	       nr_done, hp_now_us() - now);
	if (d->sweep_marks && ag_marks_sweep_end(d, now))
		d->sweep_marks = false;
}

/* The store directory's change times: any add, remove or rename. */
static void store_stamp(const struct ag_daemon *d, struct timespec st[2])
{
	struct stat sb;

	if (stat(d->conf->store_dir, &sb) < 0)
		sb = (struct stat){ 0 };
	st[0] = sb.st_mtim;
	st[1] = sb.st_ctim;
}

/* Is a patch read past its expiry (hp_agent_read_patch refuses it)? */
static bool store_expired(const struct ag_daemon *d)
{
	return hp_expired(d->store_expires);
}

/* Has the store changed since it was read? */
static bool store_changed(const struct ag_daemon *d)
{
	struct timespec now[2];

	store_stamp(d, now);
	return memcmp(now, d->store_stamp, sizeof(now)) != 0;
}

/* A patch of @s not read for want of a resource of hpatchd's (no fd
 * left, no memory), not for what its file holds. Return: its rc, or 0. */
static int unread_entry(const struct hp_store *s)
{
	for (size_t i = 0; i < s->nr; i++)
		if (hp_agent_ran_short(s->entries[i].rc))
			return s->entries[i].rc;
	return 0;
}

static int reload_store(struct ag_daemon *d)
{
	const struct hp_patch **wanted = NULL;
	uint32_t *mapped = NULL;
	struct hp_store s;
	int rc;

	/* Stamped before reading: a change meanwhile shows next time. */
	store_stamp(d, d->store_stamp);
	rc = hp_store_load(&s, d->conf->store_dir, d->conf->trust_dir);
	if (!rc)
		rc = unread_entry(&s);
	if (!rc) {
		wanted = calloc(s.nr ? s.nr : 1, sizeof(*wanted));
		mapped = calloc(s.nr ? s.nr : 1, sizeof(*mapped));
		rc = wanted && mapped ? 0 : -ENOMEM;
	}
	if (rc) {
		/* What it read says nothing of the store (a patch file
		 * not opened is not one that no longer verifies): the one
		 * read before is kept, used for nothing until it is read. */
		free(wanted);
		free(mapped);
		hp_store_release(&s);
		d->store_unread = true;
		hp_warn("store '%s' not read (%s): read again before "
			"anything is applied",
			d->conf->store_dir, strerror(-rc));
		return rc;
	}
	d->store_unread = false;
	hp_store_release(&d->store);
	d->store = s;
	free(d->wanted);
	free(d->mapped);
	d->wanted = wanted;
	d->mapped = mapped;
	d->nr_wanted = 0;
	d->nr_at_exec = 0;
	d->store_expires = 0;
	for (size_t i = 0; i < s.nr; i++) {
		const uint64_t expires =
			s.entries[i].p ? s.entries[i].p->expires : 0;

		if (expires &&
		    (!d->store_expires || expires < d->store_expires))
			d->store_expires = expires;
	}
	for (size_t i = 0; i < s.nr; i++)
		if (s.entries[i].p && !s.entries[i].superseded) {
			d->wanted[i] = s.entries[i].p;
			d->nr_wanted++;
			d->nr_at_exec += !ag_has_unwind(s.entries[i].p);
		}
	/* Tracks of patches no longer wanted go; retries start afresh. */
	for (size_t i = 0; i < d->nr_tracks;) {
		const struct hp_store_entry *e =
			hp_store_find(&s, d->tracks[i].t.patch_id);

		if (!e || !e->p || e->superseded) {
			d->tracks[i] = d->tracks[--d->nr_tracks];
			continue;
		}
		i++;
	}
	ag_watch_names(d); /* the libraries of patches new to the store */
	d->view_dirty = true;
	hp_log(HP_LOG_INFO, "store '%s': %zu patch%s installed, %zu to apply",
	       s.dir, s.nr, s.nr == 1 ? "" : "es", d->nr_wanted);
	return 0;
}

static int reload_policy(struct ag_daemon *d)
{
	struct hp_policy pol;
	int rc;

	/* The window is in local time, and glibc reads the zone once
	 * (localtime_r never again): one changed since (timedatectl
	 * set-timezone) is read now. */
	tzset();
	/* The default file, read before and gone since (a move, a package
	 * purged): not the defaults, which apply everywhere and exclude
	 * nothing, but an error, and the policy read stays in force. */
	rc = hp_policy_load(&pol, d->conf->config_path,
			    d->conf->config_optional && !d->pol.from_file);
	if (rc)
		return rc; /* the old policy stays */
	hp_policy_release(&d->pol);
	d->pol = pol;
	return 0;
}

static void on_exec(struct ag_daemon *d, pid_t pid, uint64_t now)
{
	struct ag_proc *pr = NULL;

	if (!d->nr_wanted) {
		/* Nothing to apply, nothing looked at; but a known image is
		 * another now: its next look reads it as at first sight. */
		pr = ag_find_proc(d, pid);
		if (pr) {
			pr->start_time = 0;
			pr->fresh = false;
		}
		return;
	}
	pr = ag_add_proc(d, pid);
	if (!pr)
		return;
	/*
	 * Tracks of this pid: a look at it made them, and that look may
	 * have come after this exec, its event read only since (a pass's
	 * applies read the socket, and queue the exec for after the pass):
	 * the image may be patched already. Its first look asks, rather
	 * than apply again to be told "already applied" (an error). The
	 * answer is read from the process: a new image has nothing of ours.
	 */
	pr->query_first = ag_has_tracks(d, pid);
	pr->start_time = 0; /* a new image: look afresh */
	pr->fresh = true;
	pr->exe_read = false;
	pr->excluded = NULL;
	pr->exec_us = now;
	pr->rescans = 0;
	pr->exit_seen = false;
	pr->deferred = false;
	if (!d->nr_at_exec) {
		/* Every patch waits for ld.so (attempt): the first look is
		 * the first rescan's, as if the exec's had waited. Its look
		 * would read the executable and the maps for nothing. */
		pr->deferred = true;
		pr->rescans = 1;
		/* Not ag_schedule's earliest: an earlier due time was the old
		 * image's (a wrapper's exec just before: env, nice, sh -c
		 * 'exec ...'), and would look while ld.so still loads. */
		pr->due_us = now + exec_rescans_us[0];
		return;
	}
	ag_schedule(pr, now);
}

static void sweep_libraries(struct ag_daemon *d, uint64_t now)
{
	d->sweep_due_us = 0;
	d->last_sweep_us = now;
	d->sweep_fds = true;
	full_scan(d, now);
	d->next_full_us = now + (uint64_t)d->pol.rescan_ms * 1000;
}

static bool on_signal(struct ag_daemon *d, uint64_t now)
{
	struct signalfd_siginfo si;
	bool stop = false;

	while (read(d->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			stop = true;
			break;
		case SIGHUP:
			sd_notify(0, "RELOADING=1");
			hp_log(HP_LOG_INFO,
			       "SIGHUP: reloading '%s' and the store",
			       d->conf->config_path);
			if (reload_policy(d))
				hp_warn("policy not reloaded: the previous one "
					"stays in force");
			if (reload_store(d))
				hp_warn("store not reloaded");
			full_scan(d, now);
			sd_notify(0, "READY=1");
			break;
		default:
			break;
		}
	}
	return stop;
}

/* A fallback command runs that has no pidfd (ag_run_command)? */
static bool commands_unpolled(const struct ag_daemon *d)
{
	for (size_t i = 0; i < d->nr_cmds; i++)
		if (d->cmds[i].pidfd < 0)
			return true;
	return false;
}

static int next_timeout_ms(const struct ag_daemon *d, uint64_t now)
{
	uint64_t next = d->next_full_us;

	if (d->ev.nr_queue)
		return 0;
	for (size_t i = 0; i < d->nr_procs; i++)
		if (d->procs[i].due_us && d->procs[i].due_us < next)
			next = d->procs[i].due_us;
	if (d->store_due_us && d->store_due_us < next)
		next = d->store_due_us;
	if (d->sweep_due_us && d->sweep_due_us < next)
		next = d->sweep_due_us;
	if (d->view_dirty && d->view_due_us < next)
		next = d->view_due_us;
	if (ag_perfmap_due(d) && ag_perfmap_due(d) < next)
		next = ag_perfmap_due(d);
	if (d->nr_left && now + HP_LEFT_POLL_US < next)
		next = now + HP_LEFT_POLL_US;
	if (commands_unpolled(d) && now + HP_CMD_TICK_US < next)
		next = now + HP_CMD_TICK_US;
	if (next <= now)
		return 0;
	return (int)((next - now + 999) / 1000);
}

static void publish(struct ag_daemon *d, uint64_t now)
{
	if (!d->view_dirty || now < d->view_due_us)
		return;
	d->view_dirty = false;
	d->view_due_us = now + HP_VIEW_EVERY_US;
	ag_publish(d);
}

/* The loop's fds in d->pfds (room for 8 from setup): signals, inotify,
 * process events, then a pidfd per fallback command running (as many as
 * there is room for: the others are reaped with them; -1, ignored by
 * poll, for one without). Return: how many. */
static size_t poll_fds(struct ag_daemon *d)
{
	size_t n = 3;

	while (d->cap_pfds < 3 + d->nr_cmds &&
	       !hp_grow(&d->pfds, &d->cap_pfds, d->cap_pfds, sizeof(*d->pfds),
			8))
		;
	d->pfds[0] = (struct pollfd){ d->sig_fd, POLLIN, 0 };
	d->pfds[1] = (struct pollfd){ d->in_fd, POLLIN, 0 };
	d->pfds[2] = (struct pollfd){ d->ev.fd, POLLIN, 0 };
	for (size_t i = 0; i < d->nr_cmds && n < d->cap_pfds; i++)
		d->pfds[n++] = (struct pollfd){ d->cmds[i].pidfd, POLLIN, 0 };
	return n;
}

static int setup(struct ag_daemon *d)
{
	sigset_t set;
	int rc;

	snprintf(d->fallbacks_path, sizeof(d->fallbacks_path),
		 "%s/hpatchd.fallbacks", d->conf->state_dir);
	snprintf(d->view_path, sizeof(d->view_path), "%s/%s",
		 d->conf->state_dir, HP_AGENT_VIEW_FILE);
	if (mkdir(d->conf->state_dir, 0755) < 0 && errno != EEXIST)
		return hp_error_rc(-errno, "state directory '%s'",
				   d->conf->state_dir);
	if (mkdir(d->conf->store_dir, 0755) < 0 && errno != EEXIST)
		return hp_error_rc(-errno, "store '%s'", d->conf->store_dir);
	rc = hp_rt_audit_open(&d->audit, d->conf->audit_path);
	if (rc)
		return rc;
	rc = reload_policy(d);
	if (rc)
		return rc;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	/* Not SIGCHLD: the kernel sends one at every stop of a traced
	 * target, and none is needed (ag_run_command). At its default
	 * action it is discarded as sent, and never wakes the loop. */
	signal(SIGCHLD, SIG_DFL);
	d->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	d->in_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (d->sig_fd < 0 || d->in_fd < 0)
		return hp_error_rc(-errno, "signalfd/inotify");
	d->store_wd =
		inotify_add_watch(d->in_fd, d->conf->store_dir,
				  IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
					  IN_DELETE | IN_CREATE);
	if (d->store_wd < 0)
		return hp_error_rc(-errno, "store '%s': inotify",
				   d->conf->store_dir);
	ag_watch_lib_dirs(d, NULL);
	rc = ag_events_open(&d->ev);
	if (!rc)
		rc = hp_rt_sharers_follow(&d->sharers, &d->ev.births);
	if (rc)
		return rc;
	ag_load_fallbacks(d);
	if (hp_grow(&d->pfds, &d->cap_pfds, 0, sizeof(*d->pfds), 8))
		return -ENOMEM;
	/* The lock file exists before the store is stamped: creating it
	 * later would read as a change of the store. */
	if (!ag_store_lock(&d->store_lock, d->conf->store_dir))
		ag_store_unlock(&d->store_lock);
	return reload_store(d);
}

static void teardown(struct ag_daemon *d)
{
	hp_rt_batch_end();
	ag_store_lock_release(&d->store_lock);
	ag_watch_release(d);
	hp_rt_sharers_free(d->sharers);
	ag_events_close(&d->ev);
	if (d->in_fd >= 0)
		close(d->in_fd);
	if (d->sig_fd >= 0)
		close(d->sig_fd);
	ag_reap_commands(d, true);
	hp_rt_audit_close(&d->audit);
	hp_store_release(&d->store);
	hp_policy_release(&d->pol);
	for (size_t i = 0; i < d->nr_procs; i++)
		free(d->procs[i].exe);
	free(d->procs);
	free(d->tracks);
	free(d->wanted);
	free(d->mapped);
	free(d->done);
	free(d->cmds);
	free(d->pfds);
	ag_match_reset();
	ag_perfmap_release(d);
}

int hp_agent_run(const struct hp_agent_conf *conf)
{
	struct ag_daemon d = { .conf = conf,
			       .ev = { .fd = -1 },
			       .store_lock = { .fd = -1 },
			       .in_fd = -1,
			       .sig_fd = -1,
			       .audit = { .fd = -1 } };
	int rc;

	hp_policy_init(&d.pol);
	d.view.daemon_pid = hp_self_pid();
	d.view.started = (uint64_t)time(NULL);
	rc = setup(&d);
	if (rc) {
		teardown(&d);
		return rc;
	}
	full_scan(&d, hp_now_us());
	ag_perfmap_sweep(&d, hp_now_us());
	ag_publish(&d); /* hpatch install says whether hpatchd runs */
	sd_notifyf(0, "READY=1\nSTATUS=%zu patches to apply", d.nr_wanted);
	hp_log(HP_LOG_INFO, "ready: store '%s', state '%s'", conf->store_dir,
	       conf->state_dir);
	for (;;) {
		const size_t nr_fds = poll_fds(&d);
		struct pollfd *fds = d.pfds;
		uint64_t now = hp_now_us();
		bool ended = false;

		if (poll(fds, nr_fds, next_timeout_ms(&d, now)) < 0 &&
		    errno != EINTR) {
			rc = hp_error_rc(-errno, "poll");
			break;
		}
		now = hp_now_us();
		ended = commands_unpolled(&d); /* no pidfd: each tick */
		for (size_t i = 3; i < nr_fds && !ended; i++)
			ended = fds[i].revents != 0;
		if (ended)
			ag_reap_commands(&d, false);
		if ((fds[0].revents & POLLIN) && on_signal(&d, now))
			break;
		if (fds[1].revents & POLLIN)
			ag_on_inotify(&d, now);
		/* Events read during the applies wait in the queue. */
		if ((fds[2].revents & POLLIN || d.ev.nr_queue) &&
		    ag_procev_read(&d, now) < 0) {
			/* Events lost: look at all, execs unseen too. */
			for (size_t i = 0; i < d.nr_procs; i++)
				d.procs[i].exe_check = true;
			full_scan(&d, now);
		}
		if (d.store_due_us && now >= d.store_due_us) {
			d.store_due_us = 0;
			if (!reload_store(&d))
				full_scan(&d, now);
		}
		if (d.sweep_due_us && now >= d.sweep_due_us)
			sweep_libraries(&d, now);
		if (now >= d.next_full_us)
			full_scan(&d, now);
		run_due(&d, now);
		/* Thawed, one would wait stopped for its next try. */
		d.nr_left = hp_rt_release_left();
		ag_perfmap_run(&d, now);
		publish(&d, hp_now_us());
	}
	sd_notify(0, "STOPPING=1");
	hp_log(HP_LOG_INFO, "stopping: no process is stopped or half-patched");
	d.stopping = true;
	d.view_dirty = true;
	d.view_due_us = 0;
	publish(&d, hp_now_us());
	teardown(&d);
	return rc;
}

void ag_on_exec(struct ag_daemon *d, pid_t pid, uint64_t now)
{
	on_exec(d, pid, now);
}

void ag_on_exit(struct ag_daemon *d, pid_t pid)
{
	struct ag_proc *pr = ag_find_proc(d, pid);

	if (!pr)
		return;
	/* Its leader's exit while threads of its own live on: pthread_exit
	 * in main, the process lives (one still to patch, at its exec's
	 * rescans, stays known), or the whole group's exit not done yet.
	 * A look shortly tells (it forgets a process gone). Gone whole,
	 * as most are: one read of its stat says so. */
	if (!hp_proc_gone_whole(pid) && hp_proc_live_tid(pid) != pid) {
		pr->exit_seen = true;
		/* The exit of its last thread comes with no event (only a
		 * leader's is heard): its pid may be another's without our
		 * knowing, so a fresh image is told by its start time from
		 * now on (0 where its executable is not read yet: the next
		 * look reads both). */
		if (pr->fresh) {
			pr->start_time =
				pr->exe_read ? hp_agent_start_time(pid) : 0;
			pr->fresh = false;
		}
		ag_schedule(pr, hp_now_us() + HP_EXIT_LOOK_US);
		return;
	}
	ag_forget_proc(d, pid);
}
