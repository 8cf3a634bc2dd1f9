/*
 * hpatchd: the host agent. Keeps every process reconciled with the patch
 * store: installed patches are applied to each process that maps their
 * build, now and when it starts later; uninstalled ones are reverted.
 */
#include "agent/agent.h"
#include "runtime/runtime.h"
#include "common/exit.h"
#include "common/hp_cli.h"
#include "common/hp_log.h"
#include "signing/signing.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#define HP_AGENT_NICE (-10)
/*
 * malloc's thresholds, fixed: each apply allocates and frees a few hundred
 * KiB (the target's maps, its text and lines); at glibc's defaults, which
 * move with what was freed so far, the heap's top was given back at the
 * end of most applies and taken again at the next (brk down and up, or
 * mmap and munmap, and every page faulted in again: 4 % of hpatchd's CPU
 * time in a storm of new processes). Up to HP_HEAP_KEEP of free heap stays
 * for the next apply; blocks under HP_HEAP_MMAP_MIN come from the heap.
 */
#define HP_HEAP_KEEP (8 << 20)
#define HP_HEAP_MMAP_MIN (4 << 20)

static void journal_sink(enum hp_log_level level, const char *msg, void *ctx)
{
	static const int prio[] = {
		[HP_LOG_ERROR] = LOG_ERR,
		[HP_LOG_WARN] = LOG_WARNING,
		[HP_LOG_INFO] = LOG_INFO,
		[HP_LOG_DEBUG] = LOG_DEBUG,
	};

	(void)ctx;
	sd_journal_print(prio[level], "%s", msg);
}

int main(int argc, char **argv)
{
	struct hp_agent_conf conf = {
		.store_dir = HP_STORE_DIR_DEFAULT,
		.trust_dir = HP_TRUST_DIR_DEFAULT,
		.state_dir = HP_AGENT_STATE_DIR_DEFAULT,
		.audit_path = HP_AUDIT_LOG_DEFAULT,
		.config_path = NULL,
	};
	bool foreground = false;
	int first, rc;
	const struct hp_opt table[] = {
		{ "store", 0, HP_OPT_STR, &conf.store_dir, "DIR",
		  "installed patches (default " HP_STORE_DIR_DEFAULT ")" },
		{ "trust", 0, HP_OPT_STR, &conf.trust_dir, "DIR",
		  "trusted public keys (default " HP_TRUST_DIR_DEFAULT ")" },
		{ "state-dir", 0, HP_OPT_STR, &conf.state_dir, "DIR",
		  "anti-rollback state and the daemon's view "
		  "(default " HP_AGENT_STATE_DIR_DEFAULT ")" },
		{ "audit-log", 0, HP_OPT_STR, &conf.audit_path, "FILE",
		  "audit log (default " HP_AUDIT_LOG_DEFAULT ")" },
		{ "config", 0, HP_OPT_STR, &conf.config_path, "FILE",
		  "policy (default " HP_CONFIG_DEFAULT ")" },
		{ "foreground", 0, HP_OPT_FLAG, &foreground, NULL,
		  "log to stderr, not to the journal" },
		{ 0 },
	};

	hp_log_set_prog("hpatchd");
	rc = hp_cli_parse(NULL, "", table, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first != argc)
		return hp_cli_usage_error(NULL, "unexpected argument '%s'",
					  argv[first]);
	if (hp_sign_init())
		return HP_EXIT_ERROR;
	conf.config_optional = !conf.config_path;
	if (!conf.config_path)
		conf.config_path = HP_CONFIG_DEFAULT;
	conf.journal = !foreground;
	if (conf.journal)
		conf.log_sink = journal_sink;
	hp_log_set_sink(conf.log_sink, NULL);
	/* A new process must be patched before it serves: on a saturated
	 * host, a daemon of normal priority waits behind the very load it
	 * patches (measured: exec to patched p99 230 ms at load 230).
	 * Where permitted (CAP_SYS_NICE); each apply is SCHED_FIFO anyway. */
	if (setpriority(PRIO_PROCESS, 0, HP_AGENT_NICE) < 0)
		hp_log(HP_LOG_DEBUG, "nice %d: %s", HP_AGENT_NICE,
		       strerror(errno));
	if (!mallopt(M_TRIM_THRESHOLD, HP_HEAP_KEEP) ||
	    !mallopt(M_MMAP_THRESHOLD, HP_HEAP_MMAP_MIN))
		hp_log(HP_LOG_DEBUG, "mallopt: thresholds left as they are");
	/* Test hooks, read by the tool as hpatch reads them. */
	hp_rt_set_faults(getenv("HPATCH_FAULT"), getenv("HPATCH_DELAY"));
	rc = hp_agent_run(&conf);
	return rc ? HP_EXIT_ERROR : HP_EXIT_OK;
}
