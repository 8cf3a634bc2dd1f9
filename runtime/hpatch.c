/*
 * hpatch: the operator's tool on production hosts. Applies signed patches to
 * running processes, reverts them, and reports what is applied where.
 */
#include "agent/agent.h"
#include "common/exit.h"
#include "common/hp_cli.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_out.h"
#include "packer/packer.h"
#include "runtime/hpatch_cmds.h"
#include "runtime/runtime.h"
#include "signing/signing.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HP_PATCH_FILE_MAX (256u << 20)
/* A day: more is a typo, and microseconds of it must not overflow. */
#define HP_TIMEOUT_MAX_MS 86400000L

/* --timeout: a usage error unless 0 <= ms <= a day. */
static bool timeout_ok(const char *cmd, long ms)
{
	if (ms >= 0 && ms <= HP_TIMEOUT_MAX_MS)
		return true;
	hp_cli_usage_error(cmd,
			   "--timeout must be at least 0 and at most %ld ms "
			   "(a day)",
			   HP_TIMEOUT_MAX_MS);
	return false;
}

/*
 * The environment the tool reads, and only the tool (the runtime library
 * reads none): HPATCH_STATE_DIR, HPATCH_AUDIT_LOG (under --audit-log),
 * and for tests HPATCH_FAULT and HPATCH_DELAY (hp_rt_set_faults).
 */
static void from_env(struct hp_rt_opts *opts, const char **audit_path)
{
	opts->state_dir = getenv("HPATCH_STATE_DIR");
	if (!*audit_path)
		*audit_path = getenv("HPATCH_AUDIT_LOG");
}

void hpatch_from_env(struct hp_rt_opts *opts, const char **audit_path)
{
	from_env(opts, audit_path);
}

static int parse_pids(const struct hp_strlist *l, pid_t **out, size_t *nr)
{
	pid_t *pids = calloc(l->nr ? l->nr : 1, sizeof(*pids));

	if (!pids)
		return -ENOMEM;
	for (int i = 0; i < l->nr; i++) {
		char *end = NULL;
		long v = strtol(l->items[i], &end, 10);

		if (!*l->items[i] || *end || v <= 0 || v > 0x7fffffff) {
			free(pids);
			return -EINVAL;
		}
		pids[i] = (pid_t)v;
	}
	*out = pids;
	*nr = (size_t)l->nr;
	return 0;
}

/* Read, verify and parse a patch file; refuse expired ones. */
static int load_patch(const char *path, const char *trust_dir,
		      unsigned int flags, struct hp_patch **out)
{
	return hp_agent_read_patch(path, trust_dir, flags, out);
}

static int exit_for(int rc)
{
	switch (rc) {
	case 0:
		return HP_EXIT_OK;
	case -HP_E_APPLIED:
	case -HP_E_NOTAPPLIED:
		return HP_EXIT_NOTHING;
	case -HP_E_BUSY:
	case -HP_E_LOADING: /* ld.so loads the unwinder, or may */
	case -EAGAIN:	    /* threads kept appearing (rt_transition.c) */
		return HP_EXIT_BUSY;
	case -HP_E_UNSIGNED:
		return HP_EXIT_UNSIGNED;
	case -HP_E_UNTRUSTED:
		return HP_EXIT_UNTRUSTED;
	case -HP_E_BADSIG:
		return HP_EXIT_BADSIG;
	case -HP_E_EXPIRED:
		return HP_EXIT_EXPIRED;
	case -HP_E_NOTARGET:
		return HP_EXIT_NOTARGET;
	case -HP_E_DOWNGRADE:
		return HP_EXIT_DOWNGRADE;
	default:
		return HP_EXIT_ERROR;
	}
}

static int exit_rank(int status)
{
	return status == HP_EXIT_OK	   ? 0
	       : status == HP_EXIT_NOTHING ? 1
	       : status == HP_EXIT_BUSY	   ? 2
					   : 3;
}

/*
 * Worst result over several processes: a refusal or error outranks busy,
 * busy outranks "nothing to do", which outranks success.
 */
static int combine(int status, int rc)
{
	const int next = exit_for(rc);

	return exit_rank(next) > exit_rank(status) ? next : status;
}

int hpatch_exit_for(int rc)
{
	return exit_for(rc);
}

int hpatch_combine(int status, int rc)
{
	return combine(status, rc);
}

/* --on-refuse: run the operator's fallback for a process not patched. */
static void run_fallback(const char *cmd, const char *file,
			 const struct hp_rt_result *res)
{
	char pid[16], reason[256];
	sigset_t held, old;
	int st;

	snprintf(pid, sizeof(pid), "%d", (int)res->pid);
	snprintf(reason, sizeof(reason), "%s: %s", hp_err_name(res->rc),
		 hp_rt_reason(res, res->rc));
	setenv("HPATCH_PID", pid, 1);
	setenv("HPATCH_PATCH", file, 1);
	setenv("HPATCH_REASON", reason, 1);
	hp_log(HP_LOG_INFO, "pid %d: not patched (%s); running fallback '%s'",
	       (int)res->pid, reason, cmd);
	fflush(stdout);
	/* Blocked signals stay blocked across exec: the command gets them
	 * as hpatch did, and one held meanwhile acts now (no process is
	 * held while a result is reported). */
	hpatch_held_signals(&held);
	sigprocmask(SIG_UNBLOCK, &held, &old);
	st = system(cmd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (st != 0)
		hp_warn("pid %d: fallback '%s' exited with status %d",
			(int)res->pid, cmd,
			WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	unsetenv("HPATCH_PID");
	unsetenv("HPATCH_PATCH");
	unsetenv("HPATCH_REASON");
}

static void print_result(struct hp_out *o, const char *action,
			 const struct hp_rt_result *r)
{
	hp_out_begin_object(o, NULL);
	hp_out_i64(o, "pid", r->pid);
	hp_out_str(o, "action", "%s", action);
	hp_out_str(o, "result", "%s", r->rc ? hp_err_name(r->rc) : "ok");
	if (r->rc)
		hp_out_str(o, "reason", "%s", hp_rt_reason(r, r->rc));
	if (r->patch_id[0])
		hp_out_str(o, "patch", "%s", r->patch_id);
	hp_out_str(o, "module", "%s", r->module);
	hp_out_u64(o, "functions", r->nr_funcs);
	hp_out_u64(o, "threads", r->nr_threads);
	hp_out_u64(o, "pause_us", r->pause_us);
	hp_out_u64(o, "tries", r->nr_tries);
	if (r->rc == -HP_E_BUSY) {
		hp_out_i64(o, "busy_tid", r->busy_tid);
		hp_out_str(o, "busy_function", "%s", r->busy_func);
	}
	hp_out_end_object(o);
}

/* --jobs: at most this many worker processes; not given: the default. */
#define HPATCH_JOBS_MAX 64
#define HPATCH_JOBS_AUTO (-1L)

/* One apply command's run: where its results go. */
struct apply_run {
	struct hp_out o;
	struct hp_rt_audit audit;
	const char *file;
	const char *on_refuse; /* --on-refuse CMD, or NULL */
	struct hp_rt_opts opts;
	const struct hp_patch *p;
	const pid_t *pids; /* the run's processes */
	/* --all: processes that could not be told (reported, not tried) */
	const struct hp_rt_unknown *unknown;
	size_t nr_unknown;
	long jobs;  /* --jobs, or HPATCH_JOBS_AUTO */
	int status; /* the exit so far */
};

/*
 * The file was refused before any process was touched: each process named
 * is recorded, and, when the file itself is refused (not a mistyped
 * path), gets the fallback. (With --all none is: an unverified file must
 * not choose which services restart.)
 */
static void refuse_file(struct apply_run *run, const pid_t *pids, size_t nr,
			int lrc)
{
	const bool refused = lrc == -HP_E_UNSIGNED || lrc == -HP_E_UNTRUSTED ||
			     lrc == -HP_E_BADSIG || lrc == -HP_E_EXPIRED ||
			     lrc == -HP_E_BADFORMAT;

	for (size_t i = 0; i < nr; i++) {
		const struct hp_rt_result res = { .pid = pids[i], .rc = lrc };

		hp_rt_audit_record(&run->audit, "apply", run->file, NULL, &res,
				   lrc);
		if (run->on_refuse && refused)
			run_fallback(run->on_refuse, run->file, &res);
	}
	if (!nr)
		hp_rt_audit_record(&run->audit, "apply", run->file, NULL, NULL,
				   lrc);
}

/* --all: every process that maps a module of the patch. Return: exit. */
static int find_all(struct apply_run *run, struct hp_rt_targets *t)
{
	if (hp_rt_find_targets(run->p, t))
		return HP_EXIT_ERROR;
	run->unknown = t->unknown;
	run->nr_unknown = t->nr_unknown;
	if (t->nr || t->nr_unknown)
		return HP_EXIT_OK;
	hp_error(-HP_E_NOTARGET,
		 "'%s': no running process maps its target ('%s')", run->file,
		 run->p->modules[0].name);
	hp_rt_audit_record(&run->audit, "apply", run->file, run->p, NULL,
			   -HP_E_NOTARGET);
	return HP_EXIT_NOTARGET;
}

/*
 * The processes --all could not tell about: each reported and recorded
 * as not patched, with why, and in the exit (a run that says nothing of
 * them would say "done" while one may run the flaw). No fallback: it may
 * not be a target at all.
 */
static void report_unknown(struct apply_run *run)
{
	size_t nr = 0;

	for (size_t i = 0; i < run->nr_unknown; i++) {
		struct hp_rt_result res = { .pid = run->unknown[i].pid,
					    .rc = run->unknown[i].rc };

		/* Exited since the scan: nothing left to patch, as for a
		 * target that exited (report_apply). */
		if (!hp_agent_start_time(res.pid))
			continue;
		nr++;
		/* As every other result of the run (lost_apply's too). */
		snprintf(res.patch_id, sizeof(res.patch_id), "%s", run->p->id);
		hp_error(res.rc,
			 "pid %d: cannot tell whether it runs the target of "
			 "'%s': %s; not patched",
			 (int)res.pid, run->file, hp_strerror(res.rc));
		print_result(&run->o, "apply", &res);
		hp_rt_audit_record(&run->audit, "apply", run->file, run->p,
				   &res, res.rc);
		run->status = combine(run->status, res.rc);
	}
	if (nr)
		hp_hint("run hpatch as root with CAP_SYS_PTRACE and "
			"CAP_DAC_OVERRIDE, with file descriptors to spare, "
			"or 'hpatch apply -p PID' for each");
}

/* Apply to process @i of the run and record it (signals held). */
static int attempt_apply(void *ctx, size_t i, struct hp_rt_result *res)
{
	struct apply_run *run = ctx;
	const int arc = hp_rt_apply(run->p, run->pids[i], &run->opts, res);

	hp_rt_audit_record(&run->audit, "apply", run->file, run->p, res, arc);
	return arc;
}

/* Print process @i's result, hint, fall back; its rc into the status. */
static void report_apply(void *ctx, size_t i, const struct hp_rt_result *res,
			 int arc)
{
	struct apply_run *run = ctx;
	const pid_t pid = run->pids[i];

	print_result(&run->o, "apply", res);
	/* Found by --all, exited since: nothing was there to patch (a
	 * service's short-lived children), no failure. */
	if (arc == -HP_E_GONE && (run->opts.flags & HP_RT_SCANNED))
		arc = 0;
	if (arc == -HP_E_BUSY && res->busy_func[0]) {
		hp_hint("pid %d: retry later, raise --timeout, or use "
			"--allow-active",
			(int)pid);
		/* A thread's main loop never returns (dnsmasq's DHCP helper
		 * lives in create_helper): no retry helps, and
		 * --allow-active leaves it old. */
		hp_hint("if '%s' never returns (a thread's main loop), only a "
			"restart applies the fix there (see --on-refuse)",
			res->busy_func);
	}
	if (arc && arc != -HP_E_APPLIED && run->on_refuse)
		run_fallback(run->on_refuse, run->file, res);
	run->status = combine(run->status, arc);
}

/* Process @i's worker died: recorded and reported here. */
static void lost_apply(void *ctx, size_t i, const struct hp_rt_result *res)
{
	struct apply_run *run = ctx;
	struct hp_rt_result r = *res;

	snprintf(r.patch_id, sizeof(r.patch_id), "%s", run->p->id);
	hp_rt_audit_record(&run->audit, "apply", run->file, run->p, &r, r.rc);
	report_apply(ctx, i, &r, r.rc);
}

/*
 * For a run over many processes, one index of which processes share an
 * address space: building it costs about log2(host processes) kcmp calls
 * per process of the host, where each target checked alone costs one per
 * process, so it pays from about 8 targets. NULL: each asks the host.
 */
#define HPATCH_SHARERS_MIN_TARGETS 8

static struct hp_rt_sharers *sharers_for(size_t nr_targets)
{
	struct hp_rt_sharers *s = NULL;

	if (nr_targets < HPATCH_SHARERS_MIN_TARGETS || hp_rt_sharers_new(&s))
		return NULL;
	return s;
}

/*
 * Apply to every one of @pids, output in one array, by --jobs worker
 * processes at once. Return: the exit.
 */
static int apply_each(struct apply_run *run, const pid_t *pids, size_t nr)
{
	const struct hpatch_jobs j = {
		.nr = nr,
		.pids = pids,
		.attempt = attempt_apply,
		.report = report_apply,
		.lost = lost_apply,
		.ctx = run,
	};

	run->pids = pids;
	run->status = HP_EXIT_OK;
	run->opts.sharers = sharers_for(nr);
	hp_out_str(&run->o, "patch_id", "%s", run->p->id);
	hp_out_begin_array(&run->o, "processes");
	/* What each apply would set up the same way stays for the next. */
	if (nr > 1)
		run->opts.flags |= HP_RT_BATCH;
	hpatch_jobs_run(&j, run->jobs == HPATCH_JOBS_AUTO
				    ? hpatch_jobs_default()
				    : (unsigned int)run->jobs);
	hp_rt_batch_end();
	report_unknown(run);
	hp_out_finish(&run->o);
	hp_rt_sharers_free(run->opts.sharers);
	run->opts.sharers = NULL;
	return run->status;
}

/* The rest of apply's usage checks. Return: 0, or HP_EXIT_USAGE. */
static int apply_usage(int first, int argc, const struct hp_strlist *pid_args,
		       bool all, const struct apply_run *run)
{
	if (first != argc - 1)
		return hp_cli_usage_error("apply", "expected one patch FILE");
	if (!pid_args->nr == !all)
		return hp_cli_usage_error("apply", "give -p PID or --all");
	if (run->jobs != HPATCH_JOBS_AUTO &&
	    (run->jobs < 1 || run->jobs > HPATCH_JOBS_MAX))
		return hp_cli_usage_error("apply",
					  "--jobs must be at least 1 and at "
					  "most %d",
					  HPATCH_JOBS_MAX);
	return timeout_ok("apply", run->opts.timeout_ms) ? 0 : HP_EXIT_USAGE;
}

/*
 * Apply run->file, checked against @trust_dir, to @pids (or, with
 * HP_RT_SCANNED, to every process mapping its build), with the audit log
 * at @audit_path. Return: the exit code.
 */
static int apply_file(struct apply_run *run, const char *trust_dir,
		      const char *audit_path, bool json, const pid_t *pids,
		      size_t nr)
{
	const bool all = run->opts.flags & HP_RT_SCANNED;
	struct hp_rt_targets found = { 0 };
	struct hp_patch *p = NULL;
	int rc = HP_EXIT_ERROR, lrc;

	if (hp_rt_audit_open(&run->audit, audit_path) ||
	    hp_rt_records_ready(&run->audit, run->opts.state_dir))
		goto out;
	lrc = load_patch(run->file, trust_dir, 0, &p);
	if (lrc) {
		refuse_file(run, pids, nr, lrc);
		rc = exit_for(lrc);
		goto out;
	}
	run->p = p;
	rc = all ? find_all(run, &found) : HP_EXIT_OK;
	if (rc)
		goto out;
	hp_out_init(&run->o, stdout, json);
	rc = all ? apply_each(run, found.pids, found.nr)
		 : apply_each(run, pids, nr);
out:
	hp_rt_audit_close(&run->audit);
	hp_patch_free(p);
	hp_rt_targets_free(&found);
	return rc;
}

static int cmd_apply(int argc, char **argv)
{
	struct hp_strlist pid_args = { 0 };
	const char *trust_dir = HP_TRUST_DIR_DEFAULT, *audit_path = NULL;
	struct apply_run run = {
		.audit = { .fd = -1 },
		.opts = { .timeout_ms = HP_TIMEOUT_DEFAULT_MS },
		.jobs = HPATCH_JOBS_AUTO,
	};
	bool all = false, json = false, allow_active = false;
	bool allow_downgrade = false, stack = false;
	pid_t *pids = NULL;
	size_t nr = 0;
	int first, rc;
	const struct hp_opt table[] = {
		{ "pid", 'p', HP_OPT_LIST, &pid_args, "PID",
		  "process to patch" },
		{ "all", 0, HP_OPT_FLAG, &all, NULL,
		  "every process that maps the target build" },
		{ "trust", 0, HP_OPT_STR, &trust_dir, "DIR",
		  "trusted public keys (default " HP_TRUST_DIR_DEFAULT ")" },
		{ "timeout", 0, HP_OPT_LONG, &run.opts.timeout_ms, "MS",
		  "give up on busy functions after MS "
		  "(default " HP_TIMEOUT_DEFAULT_TEXT ")" },
		{ "allow-active", 0, HP_OPT_FLAG, &allow_active, NULL,
		  "apply even while old code runs on a stack" },
		{ "stack", 0, HP_OPT_FLAG, &stack, NULL,
		  "keep earlier patches' other functions (default: the new "
		  "patch replaces them)" },
		{ "allow-downgrade", 0, HP_OPT_FLAG, &allow_downgrade, NULL,
		  "apply even if older than a patch applied before" },
		{ "jobs", 'j', HP_OPT_LONG, &run.jobs, "N",
		  "patch N processes at once (default: one per CPU, at most "
		  "4)" },
		{ "on-refuse", 0, HP_OPT_STR, &run.on_refuse, "CMD",
		  "run CMD for each process not patched (HPATCH_PID, "
		  "HPATCH_PATCH, HPATCH_REASON set)" },
		{ "audit-log", 0, HP_OPT_STR, &audit_path, "FILE",
		  "audit log (default " HP_AUDIT_LOG_DEFAULT ")" },
		{ "json", 0, HP_OPT_FLAG, &json, NULL, "JSON output" },
		{ 0 },
	};

	rc = hp_cli_parse("apply", "FILE", table, argc, argv, &first);
	if (rc >= 0)
		goto out;
	hp_rt_boost();
	rc = apply_usage(first, argc, &pid_args, all, &run);
	if (!rc && parse_pids(&pid_args, &pids, &nr))
		rc = hp_cli_usage_error("apply", "-p: not a process id");
	if (rc)
		goto out;
	run.file = argv[first];
	run.opts.flags = (allow_active ? HP_RT_ALLOW_ACTIVE : 0) |
			 (allow_downgrade ? HP_RT_ALLOW_DOWNGRADE : 0) |
			 (stack ? HP_RT_STACK : 0) | (all ? HP_RT_SCANNED : 0);
	from_env(&run.opts, &audit_path);
	rc = apply_file(&run, trust_dir, audit_path, json, pids, nr);
out:
	free(pids);
	hp_strlist_release(&pid_args);
	return rc;
}

static int cmd_revert(int argc, char **argv)
{
	struct hp_strlist pid_args = { 0 };
	struct hp_rt_opts opts = { .timeout_ms = HP_TIMEOUT_DEFAULT_MS };
	struct hp_rt_audit audit = { .fd = -1 };
	const char *audit_path = NULL;
	bool json = false, allow_active = false;
	pid_t *pids = NULL;
	size_t nr = 0;
	struct hp_out o;
	int first, rc, status = HP_EXIT_OK;
	const struct hp_opt table[] = {
		{ "pid", 'p', HP_OPT_LIST, &pid_args, "PID",
		  "process to revert" },
		{ "timeout", 0, HP_OPT_LONG, &opts.timeout_ms, "MS",
		  "give up on busy functions after MS "
		  "(default " HP_TIMEOUT_DEFAULT_TEXT ")" },
		{ "allow-active", 0, HP_OPT_FLAG, &allow_active, NULL,
		  "revert even while the patch's code runs (it stays mapped "
		  "until unused)" },
		{ "audit-log", 0, HP_OPT_STR, &audit_path, "FILE",
		  "audit log (default " HP_AUDIT_LOG_DEFAULT ")" },
		{ "json", 0, HP_OPT_FLAG, &json, NULL, "JSON output" },
		{ 0 },
	};

	rc = hp_cli_parse("revert", "", table, argc, argv, &first);
	if (rc >= 0)
		goto out;
	hp_rt_boost();
	rc = HP_EXIT_USAGE;
	if (first != argc || !pid_args.nr) {
		hp_cli_usage_error("revert", "give -p PID and no other "
					     "argument");
		goto out;
	}
	if (parse_pids(&pid_args, &pids, &nr)) {
		hp_cli_usage_error("revert", "-p: not a process id");
		goto out;
	}
	if (!timeout_ok("revert", opts.timeout_ms))
		goto out;
	opts.flags = allow_active ? HP_RT_ALLOW_ACTIVE : 0;
	rc = HP_EXIT_ERROR;
	from_env(&opts, &audit_path);
	if (hp_rt_audit_open(&audit, audit_path))
		goto out;
	hp_out_init(&o, stdout, json);
	hp_out_begin_array(&o, "processes");
	opts.sharers = sharers_for(nr);
	for (size_t i = 0; i < nr; i++) {
		struct hp_rt_result res;
		struct hpatch_hold h;
		int rrc;

		hpatch_hold_begin(&h);
		rrc = hp_rt_revert(pids[i], &opts, &res);
		hp_rt_audit_record(&audit, "revert", NULL, NULL, &res, rrc);
		hpatch_hold_end(&h);
		print_result(&o, "revert", &res);
		status = combine(status, rrc);
	}
	hp_out_finish(&o);
	hp_rt_sharers_free(opts.sharers);
	rc = status;
out:
	hp_rt_audit_close(&audit);
	free(pids);
	hp_strlist_release(&pid_args);
	return rc;
}

static int cmd_status(int argc, char **argv)
{
	long pid = 0;
	bool json = false;
	const char *state_dir = hpatch_state_dir();
	struct hp_out o;
	int first, rc;
	const struct hp_opt table[] = {
		{ "pid", 'p', HP_OPT_LONG, &pid, "PID",
		  "only this process (default: all)" },
		{ "state-dir", 0, HP_OPT_STR, &state_dir, "DIR",
		  "hpatchd's state directory, for its view" },
		{ "json", 0, HP_OPT_FLAG, &json, NULL, "JSON output" },
		{ 0 },
	};

	rc = hp_cli_parse("status", "", table, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first != argc || pid < 0 || pid > 0x7fffffff)
		return hp_cli_usage_error("status", "unexpected argument");
	hp_out_init(&o, stdout, json);
	rc = hp_rt_status((pid_t)pid, &o);
	hp_view_out(&o, state_dir); /* what hpatchd has pending, and why */
	hp_out_finish(&o);
	return rc ? HP_EXIT_ERROR : HP_EXIT_OK;
}

static int cmd_inspect(int argc, char **argv)
{
	const char *trust_dir = HP_TRUST_DIR_DEFAULT;
	bool json = false, trusted = false, unverified = false;
	struct hp_patch *p = NULL;
	char key[HP_KEY_ID_STR_BYTES];
	struct hp_out o;
	int first, rc;
	const struct hp_opt table[] = {
		{ "trust", 0, HP_OPT_STR, &trust_dir, "DIR",
		  "trusted public keys (default " HP_TRUST_DIR_DEFAULT ")" },
		{ "unverified", 0, HP_OPT_FLAG, &unverified, NULL,
		  "parse even without a trusted signature (hostile input!)" },
		{ "json", 0, HP_OPT_FLAG, &json, NULL, "JSON output" },
		{ 0 },
	};

	rc = hp_cli_parse("inspect", "FILE", table, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first != argc - 1)
		return hp_cli_usage_error("inspect", "expected one FILE");
	/* Nothing is parsed before its signature verifies, unless asked. */
	rc = load_patch(argv[first], trust_dir,
			unverified ? HP_PACK_ALLOW_UNTRUSTED | HP_PACK_NO_VERIFY
				   : 0,
			&p);
	if (rc) {
		if (rc == -HP_E_UNTRUSTED || rc == -HP_E_UNSIGNED)
			hp_hint("'hpatch inspect --unverified' parses it "
				"anyway");
		return exit_for(rc);
	}
	/* Verified against the trust store unless --unverified skipped it. */
	trusted = !unverified;
	hp_sign_key_id_str(key, p->info.key_id);
	hp_out_init(&o, stdout, json);
	hp_out_str(&o, "patch_id", "%s", p->id);
	hp_out_str(&o, "description", "%s", p->description);
	hp_out_str(&o, "creator", "%s", p->creator);
	hp_out_u64(&o, "sequence", p->sequence);
	hp_out_u64(&o, "created", p->created);
	hp_out_u64(&o, "expires", p->expires);
	hp_out_bool(&o, "signed", p->info.is_signed);
	hp_out_str(&o, "key_id", "%s", p->info.is_signed ? key : "");
	hp_out_bool(&o, "trusted", trusted);
	hp_out_u64(&o, "file_size", p->info.file_size);
	hp_out_u64(&o, "payload_compressed", p->info.payload_csize);
	hp_out_u64(&o, "payload_uncompressed", p->info.payload_usize);
	hp_out_begin_array(&o, "modules");
	for (uint32_t i = 0; i < p->nr_modules; i++) {
		const struct hp_module *m = &p->modules[i];

		hp_out_begin_object(&o, NULL);
		hp_out_str(&o, "name", "%s", m->name);
		hp_out_hex(&o, "build_id", m->build_id, m->build_id_len);
		hp_out_u64(&o, "relocations", m->nr_relocs);
		hp_out_u64(&o, "text_size", m->text_size);
		hp_out_u64(&o, "data_size", m->data_size);
		hp_out_u64(&o, "bss_size", m->bss_size);
		hp_out_begin_array(&o, "functions");
		for (uint32_t j = 0; j < m->nr_funcs; j++) {
			hp_out_begin_object(&o, NULL);
			hp_out_str(&o, "name", "%s", m->funcs[j].name);
			hp_out_u64(&o, "old_size", m->funcs[j].old_size);
			hp_out_u64(&o, "new_size", m->funcs[j].new_size);
			hp_out_bool(&o, "new", m->funcs[j].flags & HP_FUNC_NEW);
			hp_out_end_object(&o);
		}
		hp_out_end_array(&o);
		hp_out_end_object(&o);
	}
	hp_out_finish(&o);
	hp_patch_free(p);
	return HP_EXIT_OK;
}

static const struct hp_cmd commands[] = {
	{ "apply", "apply a patch to running processes", cmd_apply },
	{ "revert", "undo the latest patch of a process", cmd_revert },
	{ "status", "list applied patches", cmd_status },
	{ "inspect", "show what a patch file contains", cmd_inspect },
	{ "install", "verify a patch and add it to the store",
	  hpatch_cmd_install },
	{ "uninstall", "remove a patch from the store, revert it everywhere",
	  hpatch_cmd_uninstall },
	{ "list", "installed patches and the processes they reach",
	  hpatch_cmd_list },
	{ "check", "can this host and a patch be applied now? changes nothing",
	  hpatch_cmd_check },
	{ 0 },
};

int main(int argc, char **argv)
{
	int rc;

	hp_log_set_prog("hpatch");
	hp_rt_set_faults(getenv("HPATCH_FAULT"), getenv("HPATCH_DELAY"));
	if (hp_sign_init())
		return HP_EXIT_ERROR;
	rc = hp_cli_dispatch("Apply signed live patches to running "
			     "processes.",
			     commands, argc, argv);
	/* Exiting lets every thread still attached go as it is: one left
	 * inside our call and back by now gets its registers and mask
	 * first, not ours and every signal blocked. */
	(void)hp_rt_release_left();
	return rc;
}
