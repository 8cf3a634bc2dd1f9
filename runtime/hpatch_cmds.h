/*
 * hpatch's subcommands for the patch store and the host agent
 * (hpatch_agent.c, hpatch_check.c), and what they share with the others
 * (hpatch.c).
 */
#ifndef HP_HPATCH_CMDS_H
#define HP_HPATCH_CMDS_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* How long apply, revert and uninstall try while functions are busy
 * (--timeout), in ms, and as the help says it. */
#define HP_TIMEOUT_DEFAULT_MS 5000
#define HP_TEXT_OF_(x) #x
#define HP_TEXT_OF(x) HP_TEXT_OF_(x)
#define HP_TIMEOUT_DEFAULT_TEXT HP_TEXT_OF(HP_TIMEOUT_DEFAULT_MS)

/* The exit status for a result (common/exit.h), and the worse of two. */
int hpatch_exit_for(int rc);
int hpatch_combine(int status, int rc);

struct hp_rt_opts;
/* What the tool reads from the environment (the runtime reads none):
 * the state directory into @opts, the audit log unless given. */
void hpatch_from_env(struct hp_rt_opts *opts, const char **audit_path);

/* hpatchd's state directory: $HPATCH_STATE_DIR, else the default. */
const char *hpatch_state_dir(void);
/* Does the hpatchd of @state_dir run (its view says so)? */
bool hpatch_daemon_running(const char *state_dir);

/* Options every store subcommand has. */
#define OPT_STORE(var)                                                 \
	{                                                              \
		"store", 0, HP_OPT_STR, &(var), "DIR",                 \
			"the store (default " HP_STORE_DIR_DEFAULT ")" \
	}
#define OPT_TRUST(var)                                                       \
	{                                                                    \
		"trust", 0, HP_OPT_STR, &(var), "DIR",                       \
			"trusted public keys (default " HP_TRUST_DIR_DEFAULT \
			")"                                                  \
	}
#define OPT_STATE_DIR(var)                                         \
	{                                                          \
		"state-dir", 0, HP_OPT_STR, &(var), "DIR",         \
			"hpatchd's state directory "               \
			"(default " HP_AGENT_STATE_DIR_DEFAULT ")" \
	}
#define OPT_AUDIT_LOG(var)                                             \
	{                                                              \
		"audit-log", 0, HP_OPT_STR, &(var), "FILE",            \
			"audit log (default " HP_AUDIT_LOG_DEFAULT ")" \
	}

/*
 * hpatch_hold_begin() - hold back the signals that end a session, and the
 * OOM killer, while this process holds a target (hpatch_jobs.c says why);
 * hpatch_hold_end() lets them act.
 */
struct hpatch_hold {
	sigset_t old;
	char oom[16]; /* oom_score_adj before, "" if unknown */
};
void hpatch_hold_begin(struct hpatch_hold *h);
void hpatch_hold_end(struct hpatch_hold *h);
/* The signals held, in @set. */
void hpatch_held_signals(sigset_t *set);

struct hp_rt_result;
/*
 * A run over many processes (hpatch_jobs.c): @attempt patches process @i
 * (and records it) in a worker process, or in this one, with the signals
 * held; @report prints it here, in the order of the list, from its
 * result. A process whose worker died before it was done (or that no
 * worker lived to begin) goes to @lost instead, with res.rc
 * -HP_E_WORKER, after a message that says which.
 */
struct hpatch_jobs {
	size_t nr;
	const pid_t *pids; /* the @nr processes, in the order reported */
	int (*attempt)(void *ctx, size_t i, struct hp_rt_result *res);
	void (*report)(void *ctx, size_t i, const struct hp_rt_result *res,
		       int rc);
	void (*lost)(void *ctx, size_t i, const struct hp_rt_result *res);
	void *ctx;
};

/* One worker per CPU this process may run on, at most 4. */
unsigned int hpatch_jobs_default(void);
/*
 * hpatch_jobs_run() - run @j in @nr_workers forked processes (when that
 * is more than one, and they can be started; else here). Returns when
 * every process is reported. A signal that ends a session ends the run
 * once the workers' current processes are done and reported: then this
 * process dies of it, as it would have alone.
 */
void hpatch_jobs_run(const struct hpatch_jobs *j, unsigned int nr_workers);

int hpatch_cmd_install(int argc, char **argv);
int hpatch_cmd_uninstall(int argc, char **argv);
int hpatch_cmd_list(int argc, char **argv);
int hpatch_cmd_check(int argc, char **argv);

#endif
