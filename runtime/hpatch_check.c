/*
 * hpatch check: what an apply would do, changing nothing. This host's
 * fitness to be patched, and with a patch, every process of its build and
 * what hpatchd's policy holds back: a fleet tool's dry run.
 */
#include "agent/agent.h"
#include "common/exit.h"
#include "common/hp_cli.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_out.h"
#include "runtime/hpatch_cmds.h"
#include "runtime/runtime.h"
#include "signing/signing.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* A capability in this process's effective set (/proc/self/status). */
static bool has_cap(int cap)
{
	FILE *fp = fopen("/proc/self/status", "re");
	char line[256];
	unsigned long long eff = 0;

	if (!fp)
		return false;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	fclose(fp);
	return eff & (1ull << cap);
}

/* The first line of a small file, "" if unreadable. */
static void read_line(const char *path, char *out, size_t cap)
{
	FILE *fp = fopen(path, "re");

	out[0] = 0;
	if (fp && fgets(out, (int)cap, fp))
		out[strcspn(out, "\n")] = 0;
	if (fp)
		fclose(fp);
}

struct host_check {
	struct hp_out *o;
	int nr_problems;
};

static void problem(struct host_check *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void problem(struct host_check *h, const char *fmt, ...)
{
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	hp_out_str(h->o, NULL, "%s", text);
	h->nr_problems++;
}

/*
 * This host: can hpatch patch processes here at all? Each problem is one
 * line of "problems"; the facts are listed either way.
 */
static int check_host(struct hp_out *o, const char *state_dir)
{
	struct host_check h = { .o = o };
	const bool ptrace_cap = has_cap(19); /* CAP_SYS_PTRACE */
	const bool dac_cap = has_cap(1);     /* CAP_DAC_OVERRIDE */
	char scope[16], lsm[256], selinux[16], deny[16], execmem[16];
	struct utsname u;
	int major = 0, minor = 0;

	uname(&u);
	sscanf(u.release, "%d.%d", &major, &minor);
	read_line("/proc/sys/kernel/yama/ptrace_scope", scope, sizeof(scope));
	read_line("/sys/kernel/security/lsm", lsm, sizeof(lsm));
	read_line("/sys/fs/selinux/enforce", selinux, sizeof(selinux));
	read_line("/sys/fs/selinux/booleans/deny_ptrace", deny, sizeof(deny));
	read_line("/sys/fs/selinux/booleans/deny_execmem", execmem,
		  sizeof(execmem));
	hp_out_begin_object(o, "host");
	hp_out_str(o, "kernel", "%s", u.release);
	hp_out_str(o, "arch", "%s", u.machine);
	hp_out_str(o, "ptrace_scope", "%s", scope[0] ? scope : "no yama");
	hp_out_bool(o, "cap_sys_ptrace", ptrace_cap);
	hp_out_bool(o, "cap_dac_override", dac_cap);
	hp_out_bool(o, "cap_sys_nice", has_cap(23));
	hp_out_bool(o, "cap_net_admin", has_cap(12));
	hp_out_str(o, "lsm", "%s", lsm);
	hp_out_str(o, "selinux", "%s",
		   !selinux[0]		   ? "off"
		   : !strcmp(selinux, "1") ? "enforcing"
					   : "permissive");
	hp_out_bool(o, "hpatchd_running", hpatch_daemon_running(state_dir));
	hp_out_begin_array(o, "problems");
	if (strcmp(u.machine, "x86_64"))
		problem(&h, "architecture %s: hpatch patches x86-64 only",
			u.machine);
	if (major < 4 || (major == 4 && minor < 17))
		problem(&h, "kernel %s: MAP_FIXED_NOREPLACE needs 4.17",
			u.release);
	if (!strcmp(scope, "3"))
		problem(&h, "yama ptrace_scope 3: no process can be attached "
			    "until reboot");
	else if (!strcmp(scope, "2") && !ptrace_cap)
		problem(&h, "yama ptrace_scope 2: attaching needs "
			    "CAP_SYS_PTRACE");
	if (!ptrace_cap)
		problem(&h, "no CAP_SYS_PTRACE: only this user's processes "
			    "can be patched");
	/* The kernel checks /proc/PID/mem's mode (0600, the process's
	 * user's) before ptrace's rights: CAP_SYS_PTRACE alone opens
	 * only root's processes' memory. */
	else if (!dac_cap)
		problem(&h, "no CAP_DAC_OVERRIDE: other users' processes "
			    "cannot be read (/proc/PID/mem is theirs, mode "
			    "0600), so neither patched nor told apart");
	if (!strcmp(selinux, "1") && deny[0] == '1')
		problem(&h, "SELinux deny_ptrace is on: ptrace is refused to "
			    "every process");
	if (!strcmp(selinux, "1") && execmem[0] == '1')
		problem(&h,
			"SELinux deny_execmem is on: no process may map the "
			"patch's code executable");
	hp_out_end_array(o);
	hp_out_bool(o, "eligible", h.nr_problems == 0);
	hp_out_end_object(o);
	return h.nr_problems;
}

/* The Seccomp: mode of /proc/PID/status (2: a filter), -1 unreadable. */
static int seccomp_mode(pid_t pid)
{
	char path[64], line[128];
	FILE *fp = NULL;
	int mode = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fp = fopen(path, "re");
	while (fp && fgets(line, sizeof(line), fp))
		if (sscanf(line, "Seccomp: %d", &mode) == 1)
			break;
	if (fp)
		fclose(fp);
	return mode;
}

static const char *outcome(int rc)
{
	switch (rc) {
	case 0:
		return "would apply";
	case -HP_E_APPLIED:
		return "already applied";
	case -HP_E_BUSY:
	case -HP_E_LOADING:
		return "busy";
	default:
		return "refused";
	}
}

/*
 * @pid's object begun in @o: its pid, executable and unit. Return: the
 * policy's rule that excludes it (its object then ended, "excluded"), or
 * NULL.
 */
static const struct hp_rule *begin_process(struct hp_out *o, pid_t pid,
					   const struct hp_policy *pol)
{
	char *exe = hp_agent_exe(pid), unit[HP_UNIT_MAX];
	const struct hp_rule *excl = NULL;

	hp_agent_unit(pid, unit, sizeof(unit));
	excl = hp_policy_excluded(pol, exe, unit);
	hp_out_begin_object(o, NULL);
	hp_out_i64(o, "pid", pid);
	hp_out_str(o, "executable", "%s", exe ? exe : "");
	free(exe);
	hp_out_str(o, "unit", "%s", unit);
	if (excl) {
		hp_out_str(o, "result", "excluded");
		hp_out_str(o, "reason", "policy: %s", excl->pattern);
		hp_out_end_object(o);
	}
	return excl;
}

/* Every process that maps @p's build: what an apply would do now. */
static int check_processes(struct hp_out *o, const struct hp_patch *p,
			   const struct hp_rt_opts *opts,
			   const struct hp_policy *pol)
{
	struct hp_rt_targets found;
	const pid_t *pids = NULL;
	size_t nr_checked = 0;
	int status = HP_EXIT_OK;

	if (hp_rt_find_targets(p, &found))
		return HP_EXIT_ERROR;
	pids = found.pids;
	hp_out_begin_array(o, "processes");
	for (size_t i = 0; i < found.nr; i++) {
		struct hp_rt_result res;
		int rc;

		if (begin_process(o, pids[i], pol))
			continue;
		rc = hp_rt_apply(p, pids[i], opts, &res);
		hp_out_str(o, "result", "%s", outcome(rc));
		hp_out_str(o, "reason", "%s", hp_rt_reason(&res, rc));
		if (rc)
			hp_out_str(o, "error", "%s", hp_err_name(rc));
		if (rc == -HP_E_BUSY) {
			hp_out_i64(o, "busy_tid", res.busy_tid);
			hp_out_str(o, "busy_function", "%s", res.busy_func);
		}
		hp_out_u64(o, "functions", res.nr_funcs);
		hp_out_u64(o, "threads", res.nr_threads);
		/* The dry run injects nothing: say what may refuse it. */
		if (seccomp_mode(pids[i]) == 2)
			hp_out_str(o, "warning",
				   "a seccomp filter: the mmap and mprotect "
				   "hpatch injects are run through it at "
				   "apply time (MemoryDenyWriteExecute= "
				   "allows them)");
		hp_out_end_object(o);
		status = hpatch_combine(status, rc);
		nr_checked++;
	}
	/* Not told: as apply --all reports them, never as none. */
	for (size_t i = 0; i < found.nr_unknown; i++) {
		const struct hp_rt_unknown *u = &found.unknown[i];

		/* One the policy excludes: hpatchd would not touch it. */
		if (begin_process(o, u->pid, pol))
			continue;
		hp_out_str(o, "result", "unknown");
		hp_out_str(o, "reason",
			   "cannot tell whether it maps the build: %s",
			   hp_strerror(u->rc));
		hp_out_str(o, "error", "%s", hp_err_name(u->rc));
		hp_out_end_object(o);
		status = hpatch_combine(status, u->rc);
		nr_checked++;
	}
	hp_out_end_array(o);
	hp_rt_targets_free(&found);
	/* As apply --all: none to patch (excluded ones are not). */
	return nr_checked ? status : HP_EXIT_NOTARGET;
}

/* "HH:MM" of @minutes of the day. */
static void hhmm(char *buf, size_t size, int minutes)
{
	snprintf(buf, size, "%02d:%02d", minutes / 60, minutes % 60);
}

/*
 * What of hpatchd's policy keeps it from applying a patch signed by
 * @key (its id, "" if unsigned) on its own at @now, as a "policy" array
 * (none: an empty one). apply itself heeds none of it; the processes
 * the policy excludes are told each.
 */
static void policy_notes(struct hp_out *o, const struct hp_policy *pol,
			 const char *key, time_t now)
{
	hp_out_begin_array(o, "policy");
	if (!pol->auto_apply)
		hp_out_str(o, NULL,
			   "automatic apply is off (automatic = no): hpatchd "
			   "applies nothing on its own; hpatch apply does");
	if (!hp_policy_key_allowed(pol, key))
		hp_out_str(o, NULL,
			   "signer %s not in trusted_keys: hpatchd will not "
			   "apply it",
			   key[0] ? key : "(none)");
	if (!hp_policy_in_window(pol, now)) {
		char from[16], to[16];

		hhmm(from, sizeof(from), pol->window_start);
		hhmm(to, sizeof(to), pol->window_end);
		hp_out_str(o, NULL,
			   "outside the maintenance window %s-%s (local "
			   "time): hpatchd applies it from %s",
			   from, to, from);
	}
	hp_out_end_array(o);
}

int hpatch_cmd_check(int argc, char **argv)
{
	const char *trust = HP_TRUST_DIR_DEFAULT,
		   *state_dir = hpatch_state_dir();
	const char *config = NULL;
	struct hp_rt_opts opts = { .flags = HP_RT_DRY_RUN };
	struct hp_policy pol;
	struct hp_patch *p = NULL;
	bool json = false, allow_active = false;
	struct hp_out o;
	int first, rc, status;
	const struct hp_opt table[] = {
		OPT_TRUST(trust),
		OPT_STATE_DIR(state_dir),
		{ "config", 0, HP_OPT_STR, &config, "FILE",
		  "hpatchd's policy: its exclusions, signers, window "
		  "(default " HP_CONFIG_DEFAULT ")" },
		{ "timeout", 0, HP_OPT_LONG, &opts.timeout_ms, "MS",
		  "retry a busy process for MS (default 0: one look)" },
		{ "allow-active", 0, HP_OPT_FLAG, &allow_active, NULL,
		  "as apply --allow-active would" },
		{ "json", 0, HP_OPT_FLAG, &json, NULL, "JSON output" },
		{ 0 },
	};

	rc = hp_cli_parse("check", "[FILE]", table, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first < argc - 1)
		return hp_cli_usage_error("check", "expected at most one FILE");
	if (opts.timeout_ms < 0)
		return hp_cli_usage_error("check",
					  "--timeout must not be negative");
	opts.flags |= allow_active ? HP_RT_ALLOW_ACTIVE : 0;
	opts.state_dir = state_dir;
	if (hp_policy_load(&pol, config ? config : HP_CONFIG_DEFAULT, !config))
		return HP_EXIT_ERROR;
	if (first == argc - 1) {
		rc = hp_agent_read_patch(argv[first], trust, 0, &p);
		if (rc) {
			hp_policy_release(&pol);
			return hpatch_exit_for(rc);
		}
	}
	hp_rt_boost();
	hp_out_init(&o, stdout, json);
	status = check_host(&o, state_dir) ? HP_EXIT_ERROR : HP_EXIT_OK;
	if (p) {
		char key[HP_KEY_ID_STR_BYTES] = "";

		if (p->info.is_signed)
			hp_sign_key_id_str(key, p->info.key_id);
		hp_out_str(&o, "patch_id", "%s", p->id);
		policy_notes(&o, &pol, key, time(NULL));
		rc = check_processes(&o, p, &opts, &pol);
		if (status == HP_EXIT_OK)
			status = rc;
	}
	hp_out_finish(&o);
	hp_patch_free(p);
	hp_policy_release(&pol);
	return status;
}
