/*
 * hpatch install, uninstall and list: the operator's side of the patch
 * store that hpatchd keeps every process reconciled with (check:
 * hpatch_check.c).
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
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* The state directory hpatchd was given (the tests' and the runtime's). */
const char *hpatch_state_dir(void)
{
	const char *d = getenv("HPATCH_STATE_DIR");

	return d && *d ? d : HP_AGENT_STATE_DIR_DEFAULT;
}

bool hpatch_daemon_running(const char *state_dir)
{
	char path[PATH_MAX];
	struct hp_view v;
	const bool running = (snprintf(path, sizeof(path), "%s/%s", state_dir,
				       HP_AGENT_VIEW_FILE),
			      hp_view_read(&v, path) == 0);

	hp_view_release(&v);
	return running;
}

int hpatch_cmd_install(int argc, char **argv)
{
	const char *store = HP_STORE_DIR_DEFAULT, *trust = HP_TRUST_DIR_DEFAULT;
	const char *audit_path = NULL, *state_dir = hpatch_state_dir();
	struct hp_rt_audit audit = { .fd = -1 };
	bool json = false, downgrade = false;
	struct hp_patch *p = NULL;
	char id[HP_PATCH_ID_MAX] = "";
	struct hp_out o;
	int first, rc, lock;
	const struct hp_opt table[] = {
		OPT_STORE(store),
		OPT_TRUST(trust),
		{ "allow-downgrade", 0, HP_OPT_FLAG, &downgrade, NULL,
		  "install even if older than an installed patch" },
		OPT_AUDIT_LOG(audit_path),
		OPT_STATE_DIR(state_dir),
		{ "json", 0, HP_OPT_FLAG, &json, NULL, "JSON output" },
		{ 0 },
	};

	rc = hp_cli_parse("install", "FILE", table, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first != argc - 1)
		return hp_cli_usage_error("install", "expected one patch FILE");
	hpatch_from_env(&(struct hp_rt_opts){ 0 }, &audit_path);
	if (hp_rt_audit_open(&audit, audit_path))
		return HP_EXIT_ERROR;
	rc = hp_agent_read_patch(argv[first], trust, 0, &p);
	/* Under the store's lock: hpatchd reads the store afresh after. */
	lock = rc ? -1 : hp_store_lock(store, false);
	if (!rc && lock < 0)
		rc = hp_error_rc(lock, "store '%s': lock", store);
	if (!rc)
		rc = hp_store_install(store, argv[first], trust,
				      downgrade ? HP_STORE_ALLOW_DOWNGRADE : 0,
				      id);
	if (lock >= 0)
		close(lock);
	hp_rt_audit_record(&audit, "install", argv[first], p, NULL, rc);
	hp_rt_audit_close(&audit);
	if (rc && rc != -HP_E_APPLIED) {
		hp_patch_free(p);
		return hpatch_exit_for(rc);
	}
	hp_out_init(&o, stdout, json);
	hp_out_str(&o, "patch_id", "%s", id);
	hp_out_u64(&o, "sequence", p->sequence);
	hp_out_str(&o, "store", "%s", store);
	hp_out_str(&o, "result", "%s", rc ? "already installed" : "installed");
	hp_out_bool(&o, "hpatchd_running", hpatch_daemon_running(state_dir));
	hp_out_finish(&o);
	if (!hpatch_daemon_running(state_dir))
		hp_hint("hpatchd is not running: it applies the store when it "
			"starts ('hpatch apply --all FILE' applies it now)");
	hp_patch_free(p);
	return rc ? HP_EXIT_NOTHING : HP_EXIT_OK;
}

/* A process met by revert_everywhere: a pid, and its start time (a pid
 * reused is another process). */
struct met {
	pid_t pid;
	uint64_t start;
};

static int by_pid_start(const void *a, const void *b)
{
	const struct met *x = a, *y = b;

	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Rounds of revert_everywhere before it leaves the rest to hpatchd. */
#define HP_REVERT_ROUNDS 16

/*
 * Revert every patch marked uninstalled in @s, in every process; then in
 * those the host has that were not listed and started before the list
 * (a worker a server forked meanwhile, from a parent not reverted yet,
 * has the patch in its copy of the memory; the fork of a reverted one,
 * or a new image, has none), until a list's new processes had none: only
 * one that had it can have forked one that has it. (Not until a list
 * shows none new: a busy host starts processes all the time, a build
 * server hundreds a second.) Processes with it that keep so appearing
 * beyond HP_REVERT_ROUNDS lists make it busy: the mark stays, hpatchd
 * looks at them.
 */
static int revert_everywhere(const struct hp_store *s,
			     const struct hp_rt_opts *opts,
			     struct hp_rt_audit *audit, struct hp_out *o)
{
	struct met *met = NULL;
	size_t nr_met = 0, cap_met = 0, nr_had = 1;
	int status = HP_EXIT_OK;

	hp_out_begin_array(o, "processes");
	for (int round = 0; nr_had && round < HP_REVERT_ROUNDS; round++) {
		const size_t nr_before = nr_met;
		/* Every process that could have the patch now, the rest of
		 * the host reverted before, started before this. */
		const uint64_t now = round ? hp_agent_now_ticks() : UINT64_MAX;
		pid_t *pids = NULL;
		size_t nr = 0;

		if (hp_agent_pids(&pids, &nr)) {
			status = HP_EXIT_ERROR;
			break;
		}
		nr_had = 0;
		for (size_t i = 0; i < nr; i++) {
			const struct met m = { pids[i],
					       hp_agent_start_time(pids[i]) };
			struct hpatch_hold h;
			int rc;

			if (m.start > now ||
			    bsearch(&m, met, nr_before, sizeof(*met),
				    by_pid_start))
				continue;
			if (!hp_grow(&met, &cap_met, nr_met, sizeof(*met), 256))
				met[nr_met++] = m;
			/* As apply and revert: a ^C or SIGTERM acts once the
			 * process is reverted and recorded, never in its
			 * stop. */
			hpatch_hold_begin(&h);
			rc = hp_agent_revert_removed(s, pids[i], opts, audit);
			hpatch_hold_end(&h);

			if (rc == 0 || rc == -HP_E_GONE ||
			    (rc < 0 && !hp_agent_ran_short(rc) &&
			     !hp_agent_start_time(pids[i])))
				continue;
			nr_had++;
			hp_out_begin_object(o, NULL);
			hp_out_i64(o, "pid", pids[i]);
			hp_out_str(o, "result", "%s",
				   rc > 0 ? "ok" : hp_err_name(rc));
			if (rc > 0)
				hp_out_u64(o, "reverted", (uint64_t)rc);
			else
				hp_out_str(o, "reason", "%s", hp_strerror(rc));
			hp_out_end_object(o);
			if (rc < 0)
				status = hpatch_combine(status, rc);
		}
		free(pids);
		qsort(met, nr_met, sizeof(*met), by_pid_start);
	}
	hp_out_end_array(o);
	free(met);
	if (nr_had && status == HP_EXIT_OK)
		status = hpatch_combine(
			status, hp_error(-HP_E_BUSY,
					 "processes with the patch kept "
					 "starting: not all looked at after %d "
					 "lists of them",
					 HP_REVERT_ROUNDS));
	return status;
}

int hpatch_cmd_uninstall(int argc, char **argv)
{
	const char *store = HP_STORE_DIR_DEFAULT, *trust = HP_TRUST_DIR_DEFAULT;
	const char *audit_path = NULL;
	struct hp_rt_opts opts = { .timeout_ms = HP_TIMEOUT_DEFAULT_MS };
	struct hp_rt_audit audit = { .fd = -1 };
	struct hp_store s = { 0 };
	struct hp_rt_result res = { 0 };
	bool json = false, allow_active = false;
	struct hp_out o;
	int first, rc, lock = -1, status;
	const struct hp_opt table[] = {
		OPT_STORE(store),
		OPT_TRUST(trust),
		{ "timeout", 0, HP_OPT_LONG, &opts.timeout_ms, "MS",
		  "give up on busy functions after MS "
		  "(default " HP_TIMEOUT_DEFAULT_TEXT ")" },
		{ "allow-active", 0, HP_OPT_FLAG, &allow_active, NULL,
		  "revert even while the patch's code runs" },
		OPT_AUDIT_LOG(audit_path),
		{ "json", 0, HP_OPT_FLAG, &json, NULL, "JSON output" },
		{ 0 },
	};

	rc = hp_cli_parse("uninstall", "ID", table, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first != argc - 1)
		return hp_cli_usage_error("uninstall", "expected one patch ID");
	if (opts.timeout_ms < 0)
		return hp_cli_usage_error("uninstall",
					  "--timeout must not be negative");
	opts.flags = allow_active ? HP_RT_ALLOW_ACTIVE : 0;
	hpatch_from_env(&opts, &audit_path);
	hp_rt_boost();
	if (hp_rt_audit_open(&audit, audit_path))
		return HP_EXIT_ERROR;
	/* hpatchd waits while we revert: one writer per process. */
	lock = hp_store_lock(store, false);
	if (lock < 0) {
		hp_error_rc(lock, "store '%s': lock", store);
		status = HP_EXIT_ERROR;
		goto out;
	}
	rc = hp_store_uninstall(store, argv[first]);
	if (!rc || rc == -HP_E_NOTAPPLIED)
		rc = hp_store_load(&s, store, trust) ? -EIO : rc;
	/* Not installed, but marked: a revert left to finish. */
	if (rc == -HP_E_NOTAPPLIED && hp_store_is_uninstalled(&s, argv[first]))
		rc = 0;
	res.rc = rc;
	snprintf(res.patch_id, sizeof(res.patch_id), "%s", argv[first]);
	hp_rt_audit_record(&audit, "uninstall", NULL, NULL, &res, rc);
	if (rc) {
		status = hpatch_exit_for(rc);
		goto out;
	}
	hp_out_init(&o, stdout, json);
	hp_out_str(&o, "patch_id", "%s", argv[first]);
	status = revert_everywhere(&s, &opts, &audit, &o);
	hp_out_finish(&o);
	if (status == HP_EXIT_OK)
		hp_store_drop_mark(store, argv[first]);
	else
		hp_hint("hpatchd retries the reverts; 'hpatch uninstall %s' "
			"does too",
			argv[first]);
out:
	if (lock >= 0)
		close(lock);
	hp_store_release(&s);
	hp_rt_audit_close(&audit);
	return status;
}

static const struct hp_track *find_track(const struct hp_view *v, pid_t pid,
					 const char *id)
{
	for (size_t i = 0; i < v->nr_tracks; i++)
		if (v->tracks[i].pid == pid &&
		    !strcmp(v->tracks[i].patch_id, id))
			return &v->tracks[i];
	return NULL;
}

static bool is_applied_in(pid_t pid, const struct hp_patch *p)
{
	struct hp_rt_applied *list = NULL;
	size_t nr = 0;
	bool yes = false;

	if (hp_rt_query(pid, &list, &nr))
		return false;
	for (size_t i = 0; i < nr; i++)
		yes |= list[i].active && list[i].sequence == p->sequence &&
		       !strcmp(list[i].patch_id, p->id);
	free(list);
	return yes;
}

/* The processes a scan could not tell about, with why: "unknown". */
static void list_unknown(struct hp_out *o, const struct hp_rt_targets *t)
{
	for (size_t i = 0; i < t->nr_unknown; i++) {
		hp_out_begin_object(o, NULL);
		hp_out_i64(o, "pid", t->unknown[i].pid);
		hp_out_str(o, "state", "unknown");
		hp_out_str(o, "reason",
			   "cannot tell whether it maps the build: %s",
			   hp_strerror(t->unknown[i].rc));
		hp_out_end_object(o);
	}
}

/* Each process mapping @e's build: applied, or pending and why. */
static void list_processes(struct hp_out *o, const struct hp_store_entry *e,
			   const struct hp_view *v, bool running)
{
	struct hp_rt_targets found;

	hp_out_begin_array(o, "processes");
	if (e->p && !hp_rt_find_targets(e->p, &found)) {
		const pid_t *pids = found.pids;

		for (size_t i = 0; i < found.nr; i++) {
			const struct hp_track *t =
				find_track(v, pids[i], e->id);
			const struct hp_undecided *u =
				t ? NULL : hp_view_undecided(v, pids[i]);
			const bool applied = is_applied_in(pids[i], e->p);

			hp_out_begin_object(o, NULL);
			hp_out_i64(o, "pid", pids[i]);
			hp_out_str(o, "state", "%s",
				   applied ? "applied"
				   : t	   ? hp_track_state_name(t->state)
					   : "pending");
			if (applied || t || !running || e->superseded || !u)
				hp_out_str(o, "reason", "%s",
					   applied    ? ""
					   : t	      ? t->reason
					   : !running ? "hpatchd is not running"
					   : e->superseded
						   ? "superseded by a newer "
						     "installed patch"
						   : "not yet seen by hpatchd");
			else
				hp_out_str(o, "reason",
					   "hpatchd cannot tell which builds "
					   "it maps: %s",
					   u->reason);
			if (t)
				hp_out_u64(o, "tries", t->tries);
			/* Run once at most, however it ended: said until the
			 * process exits, not only in the audit log. */
			if (t)
				hp_track_out_fallback(o, t);
			hp_out_end_object(o);
		}
		list_unknown(o, &found);
		hp_rt_targets_free(&found);
	}
	hp_out_end_array(o);
}

int hpatch_cmd_list(int argc, char **argv)
{
	const char *store = HP_STORE_DIR_DEFAULT, *trust = HP_TRUST_DIR_DEFAULT;
	const char *state_dir = hpatch_state_dir();
	char path[PATH_MAX];
	struct hp_store s = { 0 };
	struct hp_view v = { 0 };
	bool json = false, running;
	struct hp_out o;
	int first, rc;
	const struct hp_opt table[] = {
		OPT_STORE(store),
		OPT_TRUST(trust),
		OPT_STATE_DIR(state_dir),
		{ "json", 0, HP_OPT_FLAG, &json, NULL, "JSON output" },
		{ 0 },
	};

	rc = hp_cli_parse("list", "", table, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first != argc)
		return hp_cli_usage_error("list", "unexpected argument");
	rc = hp_store_load(&s, store, trust);
	if (rc)
		return HP_EXIT_ERROR;
	snprintf(path, sizeof(path), "%s/%s", state_dir, HP_AGENT_VIEW_FILE);
	running = hp_view_read(&v, path) == 0;
	hp_out_init(&o, stdout, json);
	hp_out_str(&o, "store", "%s", store);
	hp_out_bool(&o, "hpatchd_running", running);
	hp_out_begin_array(&o, "patches");
	for (size_t i = 0; i < s.nr; i++) {
		const struct hp_store_entry *e = &s.entries[i];

		hp_out_begin_object(&o, NULL);
		hp_out_str(&o, "patch_id", "%s", e->id);
		hp_out_str(&o, "file", "%s", e->path);
		hp_out_str(&o, "state", "%s",
			   e->rc	   ? hp_err_name(e->rc)
			   : e->superseded ? "superseded"
					   : "installed");
		if (e->rc)
			hp_out_str(&o, "reason", "%s", hp_strerror(e->rc));
		if (e->p) {
			hp_out_u64(&o, "sequence", e->p->sequence);
			hp_out_str(&o, "key_id", "%s", e->key_id);
			hp_out_begin_array(&o, "modules");
			for (uint32_t j = 0; j < e->p->nr_modules; j++)
				hp_out_str(&o, NULL, "%s",
					   e->p->modules[j].name);
			hp_out_end_array(&o);
		}
		list_processes(&o, e, &v, running);
		hp_out_end_object(&o);
	}
	hp_out_end_array(&o);
	hp_out_begin_array(&o, "uninstalled_pending");
	for (size_t i = 0; i < s.nr_uninstalled; i++)
		if (hp_store_is_uninstalled(&s, s.uninstalled[i]))
			hp_out_str(&o, NULL, "%s", s.uninstalled[i]);
	hp_out_end_array(&o);
	hp_out_finish(&o);
	hp_view_release(&v);
	hp_store_release(&s);
	return HP_EXIT_OK;
}
