/*
 * Fallbacks for a process the patch could not reach, as the policy names
 * them: restart its systemd unit (over D-Bus with libsystemd's sd-bus, the
 * same call `systemctl restart` makes, without a shell or a child
 * process), or run the operator's command with HPATCH_* set; at most once
 * per process and patch, remembered across restarts of hpatchd.
 */
#include "agent/agent_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

int ag_restart_unit(const char *unit, char *why, size_t cap)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	sd_bus *bus = NULL;
	int rc;

	rc = sd_bus_open_system(&bus);
	if (rc < 0) {
		snprintf(why, cap, "system bus: %s", strerror(-rc));
		return hp_error_rc(rc, "fallback: restart '%s': system bus",
				   unit);
	}
	rc = sd_bus_call_method(
		bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
		"org.freedesktop.systemd1.Manager", "RestartUnit", &err, &reply,
		"ss", unit, "replace");
	if (rc < 0) {
		snprintf(why, cap, "%s",
			 err.message ? err.message : strerror(-rc));
		hp_error(rc, "fallback: restart '%s': %s", unit, why);
	} else {
		hp_log(HP_LOG_INFO, "fallback: restart of '%s' queued", unit);
	}
	sd_bus_error_free(&err);
	sd_bus_message_unref(reply);
	sd_bus_flush_close_unref(bus);
	return rc < 0 ? rc : 0;
}

/*
 * The command is hpatchd's child, reaped as the loop's poll of its pidfd
 * says it ended: its end, and how it ended, is known without a wait that
 * a hung command would hold, and with no SIGCHLD taken (the kernel sends
 * one at every stop of a target hpatchd traces: each apply would wake the
 * loop once more, for system calls that reap nothing). Without a pidfd
 * (pidfd_open: Linux 5.3; hpatch runs from 4.17) the loop looks at it
 * each tick instead: a child never reaped stayed a zombie for good.
 */
pid_t ag_run_command(const char *cmd, pid_t pid, const char *patch,
		     const char *unit, const char *reason, int *pidfd)
{
	char num[16];
	pid_t child;
	int null;

	*pidfd = -1;
	snprintf(num, sizeof(num), "%d", (int)pid);
	hp_log(HP_LOG_INFO, "pid %d: not patched (%s); running fallback '%s'",
	       (int)pid, reason, cmd);
	/* Its stdin; and, closed once it is forked, the pidfd's place (no
	 * fd left: nothing run, rather than a child never reaped). */
	null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null < 0)
		return hp_error_rc(-errno, "fallback '%s': /dev/null", cmd);
	child = fork();
	if (child < 0) {
		close(null);
		return hp_error_rc(-errno, "fallback '%s': fork", cmd);
	}
	if (child == 0) {
		sigset_t none;

		/* The daemon's blocked signals must not stay blocked. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(null, 0);
		setenv("HPATCH_PID", num, 1);
		setenv("HPATCH_PATCH", patch, 1);
		setenv("HPATCH_UNIT", unit, 1);
		setenv("HPATCH_REASON", reason, 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(null);
	*pidfd = (int)syscall(SYS_pidfd_open, child, 0);
	if (*pidfd < 0)
		hp_log(HP_LOG_DEBUG,
		       "fallback '%s': pid %d: no pidfd (%s): looked at each "
		       "tick",
		       cmd, (int)child, strerror(errno));
	return child;
}

int ag_command_status(pid_t child, char *how, size_t cap)
{
	siginfo_t si = { 0 };

	/* By its pid (our child, not reaped: no other's): waitid of a
	 * pidfd (P_PIDFD) needs Linux 5.4. */
	if (waitid(P_PID, (id_t)child, &si, WEXITED | WNOHANG) < 0)
		return -errno;
	if (!si.si_pid)
		return -EAGAIN;
	if (si.si_code == CLD_EXITED && !si.si_status)
		return 0;
	snprintf(how, cap, "%s %d",
		 si.si_code == CLD_EXITED ? "exited with status"
					  : "killed by signal",
		 si.si_status);
	return -HP_E_FALLBACK;
}

/* A fallback's audit line: the try's facts (@res), the fallback's own
 * result (@rc; 0: the try's, why it ran). */
static void audit_fallback(struct ag_daemon *d, const char *action,
			   const char *path, const struct hp_patch *p,
			   const struct hp_rt_result *res, int rc)
{
	hp_rt_audit_record(&d->audit, action, path, p, res, rc ? rc : res->rc);
}

static void save_fallbacks(const struct ag_daemon *d);
static void tell_fallback(struct ag_daemon *d, struct ag_track *t,
			  const char *why, const struct ag_done *f);

static struct ag_done *find_done(struct ag_daemon *d, pid_t pid, uint64_t start,
				 const char *id)
{
	for (size_t i = 0; i < d->nr_done; i++)
		if (d->done[i].pid == pid && d->done[i].start_time == start &&
		    !strcmp(d->done[i].patch_id, id))
			return &d->done[i];
	return NULL;
}

/*
 * What the fallback of (@pid, @start, @id) did: kept with its record, on
 * disk too, and told on its track (if the process is still the one it
 * ran for). A failure is counted.
 */
static void set_outcome(struct ag_daemon *d, pid_t pid, uint64_t start,
			const char *id, enum hp_fallback_result result,
			const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static void set_outcome(struct ag_daemon *d, pid_t pid, uint64_t start,
			const char *id, enum hp_fallback_result result,
			const char *fmt, ...)
{
	struct ag_done *f = find_done(d, pid, start, id);
	const struct ag_proc *pr = ag_find_proc(d, pid);
	va_list ap;

	if (result == HP_FALLBACK_FAILED)
		d->view.fallbacks_failed++;
	if (!f) /* none kept (out of memory), or its process gone */
		return;
	f->result = result;
	va_start(ap, fmt);
	vsnprintf(f->what, sizeof(f->what), fmt, ap);
	va_end(ap);
	f->what[strcspn(f->what, "\n")] = 0;
	save_fallbacks(d);
	for (size_t i = 0; pr && pr->start_time == start && i < d->nr_tracks;
	     i++) {
		struct ag_track *t = &d->tracks[i];
		char why[sizeof(t->t.reason)];

		if (t->t.pid != pid || strcmp(t->t.patch_id, id))
			continue;
		snprintf(why, sizeof(why), "%.*s", (int)t->why_len,
			 t->t.reason);
		tell_fallback(d, t, why, f);
	}
}

void ag_reap_commands(struct ag_daemon *d, bool all)
{
	for (size_t i = d->nr_cmds; i-- > 0;) {
		struct ag_cmd *c = &d->cmds[i];
		char how[64] = "";
		int rc = ag_command_status(c->pid, how, sizeof(how));

		if (rc == -EAGAIN && !all)
			continue;
		if (rc == -EAGAIN)
			hp_log(HP_LOG_INFO,
			       "pid %d: its fallback command still runs as "
			       "hpatchd stops",
			       (int)c->res.pid);
		else if (rc)
			hp_warn("pid %d: fallback command %s", (int)c->res.pid,
				how[0] ? how : hp_strerror(rc));
		if (rc == -EAGAIN)
			set_outcome(d, c->res.pid, c->start_time,
				    c->res.patch_id, HP_FALLBACK_UNKNOWN,
				    "command still ran as hpatchd stopped: "
				    "its end not seen");
		else if (rc)
			set_outcome(d, c->res.pid, c->start_time,
				    c->res.patch_id, HP_FALLBACK_FAILED,
				    "command %s",
				    how[0] ? how : hp_strerror(rc));
		else
			set_outcome(d, c->res.pid, c->start_time,
				    c->res.patch_id, HP_FALLBACK_OK,
				    "command ran and exited with status 0");
		audit_fallback(d, "fallback-command", c->path, NULL, &c->res,
			       rc == -EAGAIN ? -EINPROGRESS : rc);
		if (c->pidfd >= 0)
			close(c->pidfd);
		*c = d->cmds[--d->nr_cmds];
	}
}

/* Audited as it ends (ag_reap_commands). Return: 0 or -ENOMEM. */
static int follow_command(struct ag_daemon *d, pid_t child, int pidfd,
			  uint64_t start, const struct hp_store_entry *e,
			  const struct hp_rt_result *res)
{
	struct ag_cmd *c = NULL;

	if (hp_grow(&d->cmds, &d->cap_cmds, d->nr_cmds, sizeof(*d->cmds), 4))
		return -ENOMEM;
	c = &d->cmds[d->nr_cmds++];
	c->pid = child;
	c->pidfd = pidfd;
	c->start_time = start;
	c->res = *res;
	/* The patch's facts, kept: a store reload may free it meanwhile. */
	snprintf(c->res.patch_id, sizeof(c->res.patch_id), "%s", e->p->id);
	c->res.sequence = e->p->sequence;
	if (e->key_id[0])
		snprintf(c->res.key_id, sizeof(c->res.key_id), "%s", e->key_id);
	snprintf(c->path, sizeof(c->path), "%s", e->path);
	return 0;
}

/* Rewrite the record of fallbacks run with those of d->done alone (a
 * crash meanwhile loses nothing: a line of a process gone is skipped at
 * the next load). */
static void save_fallbacks(const struct ag_daemon *d)
{
	/* pid, start, id, result, what */
	const size_t line_max = 60 + HP_PATCH_ID_MAX + HP_FALLBACK_MAX;
	char *text = malloc(d->nr_done * line_max + 1);
	size_t len = 0;
	int rc;

	if (!text)
		return;
	for (size_t i = 0; i < d->nr_done; i++) {
		const struct ag_done *f = &d->done[i];

		len += (size_t)snprintf(
			text + len, line_max, "%d %" PRIu64 " %s %s %s\n",
			(int)f->pid, f->start_time, f->patch_id,
			hp_fallback_result_name(f->result), f->what);
	}
	rc = hp_write_file(d->fallbacks_path, text, len, 0600, HP_WRITE_NOSYNC);
	if (rc)
		hp_warn("'%s': %s", d->fallbacks_path, strerror(-rc));
	free(text);
}

/* A record's " RESULT WHAT" into @f; an older hpatchd's line has none.
 * Return: true when it said running (no longer so: to rewrite). */
static bool read_outcome(struct ag_done *f, const char *rest)
{
	char name[16] = "";
	int used = 0;

	rest += strspn(rest, " ");
	f->result = HP_FALLBACK_UNKNOWN;
	snprintf(f->what, sizeof(f->what),
		 "run by an earlier hpatchd: its outcome not recorded");
	if (sscanf(rest, "%15s %n", name, &used) < 1 || !used)
		return false;
	for (int r = HP_FALLBACK_UNKNOWN; r < HP_FALLBACK_NR; r++)
		if (!strcmp(name, hp_fallback_result_name(r)))
			f->result = (enum hp_fallback_result)r;
	snprintf(f->what, sizeof(f->what), "%.*s",
		 (int)strcspn(rest + used, "\n"), rest + used);
	/* Started by an hpatchd that stopped (a crash) before it saw the
	 * end: not running as far as anyone knows. */
	if (f->result != HP_FALLBACK_RUNNING)
		return false;
	f->result = HP_FALLBACK_UNKNOWN;
	snprintf(f->what, sizeof(f->what), "%s",
		 "started, its end not seen: hpatchd stopped meanwhile");
	return true;
}

void ag_load_fallbacks(struct ag_daemon *d)
{
	FILE *fp = fopen(d->fallbacks_path, "re");
	char line[512];
	size_t nr_lines = 0;
	bool rewrite = false;

	if (!fp)
		return;
	while (fgets(line, sizeof(line), fp)) {
		struct ag_done f = { 0 }, *grown = NULL;
		int pid, used = 0;

		nr_lines++;
		if (sscanf(line, "%d %" SCNu64 " %63s%n", &pid, &f.start_time,
			   f.patch_id, &used) != 3 ||
		    !used)
			continue;
		f.pid = pid;
		/* Only processes still running matter. */
		if (hp_agent_start_time(f.pid) != f.start_time)
			continue;
		rewrite |= read_outcome(&f, line + used);
		grown = realloc(d->done, (d->nr_done + 1) * sizeof(*grown));
		if (!grown)
			break;
		d->done = grown;
		d->done[d->nr_done++] = f;
	}
	fclose(fp);
	/* The lines of processes gone go, or the file grew for ever; and
	 * a command said running is no longer. */
	if (nr_lines > d->nr_done || rewrite)
		save_fallbacks(d);
}

void ag_forget_fallbacks(struct ag_daemon *d, pid_t pid)
{
	size_t n = 0;

	for (size_t i = 0; i < d->nr_done; i++)
		if (d->done[i].pid != pid)
			d->done[n++] = d->done[i];
	if (n == d->nr_done)
		return;
	d->nr_done = n;
	save_fallbacks(d);
}

/*
 * Remember it before running it, as running @what: a crash must not run
 * it twice (its record then says its end was not seen). The outcome
 * replaces @what once known (set_outcome).
 */
static void note_fallback(struct ag_daemon *d, pid_t pid, uint64_t start,
			  const char *id, const char *what)
{
	struct ag_done *grown =
		realloc(d->done, (d->nr_done + 1) * sizeof(*grown));
	int fd;

	if (grown) {
		struct ag_done *f = &grown[d->nr_done++];

		d->done = grown;
		*f = (struct ag_done){ .pid = pid,
				       .start_time = start,
				       .result = HP_FALLBACK_RUNNING };
		snprintf(f->patch_id, sizeof(f->patch_id), "%s", id);
		snprintf(f->what, sizeof(f->what), "%s", what);
	}
	fd = open(d->fallbacks_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		  0600);
	if (fd < 0 ||
	    dprintf(fd, "%d %" PRIu64 " %s %s %s\n", (int)pid, start, id,
		    hp_fallback_result_name(HP_FALLBACK_RUNNING), what) < 0 ||
	    fsync(fd) < 0)
		hp_warn("'%s': %s", d->fallbacks_path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/*
 * @t's fallback ran (@f): what it did, and that it is not run again; if
 * it gave up (the try's reason @why: the first why_len bytes of its
 * reason), said after why.
 */
static void tell_fallback(struct ag_daemon *d, struct ag_track *t,
			  const char *why, const struct ag_done *f)
{
	if (t->t.fallback_result != f->result || strcmp(t->t.fallback, f->what))
		d->view_dirty = true;
	t->t.fallback_result = f->result;
	snprintf(t->t.fallback, sizeof(t->t.fallback), "%s", f->what);
	if (t->t.state != HP_TRACK_GAVE_UP)
		return; /* its reason is another's now (the window...) */
	ag_set_track(d, t, HP_TRACK_GAVE_UP, "%s; fallback %s; not run again",
		     why, f->what);
}

/* The process's unit, read once per image, when first needed (a rule
 * that names units, a fallback): most processes never need it. */
void ag_read_unit(struct ag_proc *pr)
{
	if (pr->unit_read)
		return;
	pr->unit_host = hp_agent_unit(pr->pid, pr->unit, sizeof(pr->unit));
	pr->unit_read = true;
}

/* Why @pr's unit is not to be restarted, or NULL. */
static const char *restart_refused(const struct ag_proc *pr)
{
	const size_t len = strlen(pr->unit);

	if (len < 9 || strcmp(pr->unit + len - 8, ".service"))
		return "the process belongs to no service";
	/* A container's or a user's manager runs it: the host's unit of
	 * that name, if any, is another program's. */
	if (!pr->unit_host)
		return "not a unit of the host's systemd";
	return NULL;
}

/* Run the fallback @r for @pr: its outcome set (set_outcome), or left
 * running (a command, followed). Return: 0, or the failure audited. */
static int run_rule(struct ag_daemon *d, struct ag_proc *pr,
		    const struct hp_rule *r, const struct hp_store_entry *e,
		    const struct hp_rt_result *res, const char *reason)
{
	const uint64_t start = pr->start_time;
	const char *refused = NULL;
	char why[HP_FALLBACK_MAX] = "";
	int rc, pidfd = -1;
	pid_t child;

	if (r->kind == HP_RULE_FALLBACK_RESTART) {
		refused = restart_refused(pr);
		if (refused) {
			rc = hp_error(-HP_E_FALLBACK,
				      "fallback: pid %d: unit '%s': %s: "
				      "nothing restarted",
				      (int)pr->pid, pr->unit, refused);
			set_outcome(d, pr->pid, start, e->id,
				    HP_FALLBACK_FAILED,
				    "restart refused: %s: nothing restarted",
				    refused);
		} else {
			rc = ag_restart_unit(pr->unit, why, sizeof(why));
			set_outcome(d, pr->pid, start, e->id,
				    rc ? HP_FALLBACK_FAILED : HP_FALLBACK_OK,
				    "restart of '%s' %s%s", pr->unit,
				    rc ? "refused: " : "queued", why);
		}
		return rc;
	}
	child = ag_run_command(r->command, pr->pid, e->path, pr->unit, reason,
			       &pidfd);
	if (child < 0) {
		set_outcome(d, pr->pid, start, e->id, HP_FALLBACK_FAILED,
			    "command could not start: %s", hp_strerror(child));
		return child;
	}
	if (follow_command(d, child, pidfd, start, e, res)) {
		if (pidfd >= 0) /* its end unknown: said run */
			close(pidfd);
		set_outcome(d, pr->pid, start, e->id, HP_FALLBACK_UNKNOWN,
			    "command started, its end not followed (out of "
			    "memory)");
		audit_fallback(d, "fallback-command", e->path, e->p, res, 0);
	}
	return 0; /* audited as it ends (ag_reap_commands) */
}

void ag_run_fallback(struct ag_daemon *d, struct ag_proc *pr,
		     struct ag_track *t, const struct hp_store_entry *e,
		     const struct hp_rt_result *res)
{
	const struct hp_rule *r = NULL;
	const struct ag_done *f = NULL;
	char reason[sizeof(t->t.reason)];
	int rc;

	snprintf(reason, sizeof(reason), "%s", t->t.reason);
	t->why_len = (uint8_t)strlen(reason);
	/* Run once, whatever the policy says now: what it did is said
	 * until the process exits. */
	f = find_done(d, pr->pid, pr->start_time, e->id);
	if (f) {
		t->t.state = HP_TRACK_GAVE_UP;
		tell_fallback(d, t, reason, f);
		return;
	}
	ag_read_unit(pr);
	r = hp_policy_fallback(&d->pol, pr->exe, pr->unit);
	if (!r || r->kind == HP_RULE_FALLBACK_NONE) {
		ag_set_track(d, t, HP_TRACK_GAVE_UP,
			     "%s; no fallback in the policy", reason);
		return;
	}
	note_fallback(d, pr->pid, pr->start_time, e->id,
		      r->kind == HP_RULE_FALLBACK_RESTART
			      ? "restart asked"
			      : "command started, still running");
	d->view.fallbacks++;
	t->t.state = HP_TRACK_GAVE_UP; /* its outcome told as it is set */
	rc = run_rule(d, pr, r, e, res, reason);
	if (r->kind == HP_RULE_FALLBACK_RESTART || rc)
		audit_fallback(d,
			       r->kind == HP_RULE_FALLBACK_RESTART
				       ? "fallback-restart"
				       : "fallback-command",
			       e->path, e->p, res, rc);
	f = find_done(d, pr->pid, pr->start_time, e->id);
	if (f)
		tell_fallback(d, t, reason, f);
	else /* not kept (out of memory): said so once */
		ag_set_track(d, t, HP_TRACK_GAVE_UP, "%s; fallback run",
			     reason);
}
