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
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

int ag_restart_unit(const char *unit)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	sd_bus *bus = NULL;
	int rc;

	rc = sd_bus_open_system(&bus);
	if (rc < 0)
		return hp_error_rc(rc, "fallback: restart '%s': system bus",
				   unit);
	rc = sd_bus_call_method(
		bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
		"org.freedesktop.systemd1.Manager", "RestartUnit", &err, &reply,
		"ss", unit, "replace");
	if (rc < 0)
		hp_error(rc, "fallback: restart '%s': %s", unit,
			 err.message ? err.message : strerror(-rc));
	else
		hp_log(HP_LOG_INFO, "fallback: restart of '%s' queued", unit);
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
		audit_fallback(d, "fallback-command", c->path, NULL, &c->res,
			       rc == -EAGAIN ? -EINPROGRESS : rc);
		if (c->pidfd >= 0)
			close(c->pidfd);
		*c = d->cmds[--d->nr_cmds];
	}
}

/* Audited as it ends (ag_reap_commands). Return: 0 or -ENOMEM. */
static int follow_command(struct ag_daemon *d, pid_t child, int pidfd,
			  const struct hp_store_entry *e,
			  const struct hp_rt_result *res)
{
	struct ag_cmd *c = NULL;

	if (hp_grow(&d->cmds, &d->cap_cmds, d->nr_cmds, sizeof(*d->cmds), 4))
		return -ENOMEM;
	c = &d->cmds[d->nr_cmds++];
	c->pid = child;
	c->pidfd = pidfd;
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
	const size_t line_max = 40 + HP_PATCH_ID_MAX; /* pid, start, id */
	char *text = malloc(d->nr_done * line_max + 1);
	size_t len = 0;
	int rc;

	if (!text)
		return;
	for (size_t i = 0; i < d->nr_done; i++)
		len += (size_t)snprintf(
			text + len, line_max, "%d %" PRIu64 " %s\n",
			(int)d->done[i].pid, d->done[i].start_time,
			d->done[i].patch_id);
	rc = hp_write_file(d->fallbacks_path, text, len, 0600, HP_WRITE_NOSYNC);
	if (rc)
		hp_warn("'%s': %s", d->fallbacks_path, strerror(-rc));
	free(text);
}

void ag_load_fallbacks(struct ag_daemon *d)
{
	FILE *fp = fopen(d->fallbacks_path, "re");
	char line[256];
	size_t nr_lines = 0;

	if (!fp)
		return;
	while (fgets(line, sizeof(line), fp)) {
		struct ag_done f = { 0 }, *grown = NULL;
		int pid;

		nr_lines++;
		if (sscanf(line, "%d %" SCNu64 " %63s", &pid, &f.start_time,
			   f.patch_id) != 3)
			continue;
		f.pid = pid;
		/* Only processes still running matter. */
		if (hp_agent_start_time(f.pid) != f.start_time)
			continue;
		grown = realloc(d->done, (d->nr_done + 1) * sizeof(*grown));
		if (!grown)
			break;
		d->done = grown;
		d->done[d->nr_done++] = f;
	}
	fclose(fp);
	/* The lines of processes gone go, or the file grew for ever. */
	if (nr_lines > d->nr_done)
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

static bool fallback_done(const struct ag_daemon *d, pid_t pid, uint64_t start,
			  const char *id)
{
	for (size_t i = 0; i < d->nr_done; i++)
		if (d->done[i].pid == pid && d->done[i].start_time == start &&
		    !strcmp(d->done[i].patch_id, id))
			return true;
	return false;
}

/* Remember it before running it: a crash must not run it twice. */
static void note_fallback(struct ag_daemon *d, pid_t pid, uint64_t start,
			  const char *id)
{
	struct ag_done *grown =
		realloc(d->done, (d->nr_done + 1) * sizeof(*grown));
	int fd;

	if (grown) {
		d->done = grown;
		d->done[d->nr_done] =
			(struct ag_done){ .pid = pid, .start_time = start };
		snprintf(d->done[d->nr_done++].patch_id, HP_PATCH_ID_MAX, "%s",
			 id);
	}
	fd = open(d->fallbacks_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		  0600);
	if (fd < 0 ||
	    dprintf(fd, "%d %" PRIu64 " %s\n", (int)pid, start, id) < 0 ||
	    fsync(fd) < 0)
		hp_warn("'%s': %s", d->fallbacks_path, strerror(errno));
	if (fd >= 0)
		close(fd);
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

void ag_run_fallback(struct ag_daemon *d, struct ag_proc *pr,
		     struct ag_track *t, const struct hp_store_entry *e,
		     const struct hp_rt_result *res)
{
	const struct hp_rule *r = NULL;
	char reason[sizeof(t->t.reason)];
	const char *refused = NULL;
	int rc = 0, pidfd = -1;

	ag_read_unit(pr);
	r = hp_policy_fallback(&d->pol, pr->exe, pr->unit);
	snprintf(reason, sizeof(reason), "%s", t->t.reason);
	if (!r || r->kind == HP_RULE_FALLBACK_NONE) {
		ag_set_track(d, t, HP_TRACK_GAVE_UP,
			     "%s; no fallback in the policy", reason);
		return;
	}
	if (fallback_done(d, pr->pid, pr->start_time, e->id)) {
		t->t.fallback_done = true;
		ag_set_track(d, t, HP_TRACK_GAVE_UP, "%s; fallback already run",
			     reason);
		return;
	}
	note_fallback(d, pr->pid, pr->start_time, e->id);
	t->t.fallback_done = true;
	d->view.fallbacks++;
	if (r->kind == HP_RULE_FALLBACK_RESTART)
		refused = restart_refused(pr);
	if (refused)
		rc = hp_error(-HP_E_FALLBACK,
			      "fallback: pid %d: unit '%s': %s: nothing "
			      "restarted",
			      (int)pr->pid, pr->unit, refused);
	else if (r->kind == HP_RULE_FALLBACK_RESTART)
		rc = ag_restart_unit(pr->unit);
	else
		rc = ag_run_command(r->command, pr->pid, e->path, pr->unit,
				    reason, &pidfd);
	if (rc >= 0 && r->kind == HP_RULE_FALLBACK_COMMAND) {
		if (follow_command(d, rc, pidfd, e, res)) {
			if (pidfd >= 0) /* its end unknown: said run */
				close(pidfd);
			audit_fallback(d, "fallback-command", e->path, e->p,
				       res, 0);
		}
		rc = 0;
	} else {
		audit_fallback(d,
			       r->kind == HP_RULE_FALLBACK_RESTART
				       ? "fallback-restart"
				       : "fallback-command",
			       e->path, e->p, res, rc);
	}
	ag_set_track(d, t, HP_TRACK_GAVE_UP, "%s; fallback %s%s%s%s", reason,
		     r->kind == HP_RULE_FALLBACK_RESTART ? "restart of "
							 : "command for ",
		     r->kind == HP_RULE_FALLBACK_RESTART ? pr->unit : "it",
		     rc ? " failed: " : "",
		     refused ? refused
		     : rc    ? hp_strerror(rc)
			     : "");
}
