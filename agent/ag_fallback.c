/*
 * Fallbacks for a process the patch could not reach, as the policy names
 * them: restart its systemd unit (over D-Bus with libsystemd's sd-bus, the
 * same call `systemctl restart` makes, without a shell or a child
 * process), or run the operator's command with HPATCH_* set.
 */
#include "agent/agent_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

int ag_restart_unit(const char *unit)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	sd_bus *bus = NULL;
	const size_t len = strlen(unit);
	int rc;

	if (len < 9 || strcmp(unit + len - 8, ".service")) {
		hp_error(-EINVAL,
			 "fallback: process belongs to no service "
			 "('%s'): nothing to restart",
			 unit);
		return -EINVAL;
	}
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

int ag_run_command(const char *cmd, pid_t pid, const char *patch,
		   const char *unit, const char *reason)
{
	char num[16];
	pid_t child;

	snprintf(num, sizeof(num), "%d", (int)pid);
	hp_log(HP_LOG_INFO, "pid %d: not patched (%s); running fallback '%s'",
	       (int)pid, reason, cmd);
	child = fork();
	if (child < 0)
		return hp_error_rc(-errno, "fallback '%s': fork", cmd);
	if (child == 0) {
		sigset_t none;
		int null = open("/dev/null", O_RDONLY);

		/* The daemon's blocked signals must not stay blocked. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (null >= 0)
			dup2(null, 0);
		setenv("HPATCH_PID", num, 1);
		setenv("HPATCH_PATCH", patch, 1);
		setenv("HPATCH_UNIT", unit, 1);
		setenv("HPATCH_REASON", reason, 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return 0; /* reaped on SIGCHLD */
}
