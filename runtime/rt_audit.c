/*
 * The audit log: who applied or reverted what, where, when, with what
 * result and how long the process was paused. One JSON object per line,
 * appended with a single write() so concurrent hpatch runs never interleave
 * within a line; the same line goes to syslog (authpriv).
 */
#include "runtime/runtime.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_out.h"
#include "common/hp_secure.h"
#include "common/hp_util.h"
#include "signing/signing.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <paths.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

int hp_rt_audit_open(struct hp_rt_audit *a, const char *path)
{
	char dir[256];
	char *slash = NULL;
	int rc;

	snprintf(a->path, sizeof(a->path), "%s",
		 path && *path ? path : HP_AUDIT_LOG_DEFAULT);
	snprintf(dir, sizeof(dir), "%s", a->path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = 0;
	else
		snprintf(dir, sizeof(dir), "%s", slash ? "/" : ".");
	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		hp_error_rc(-errno, "audit log: cannot create '%s'", dir);
		hp_hint("choose another file with --audit-log FILE");
		return -EACCES;
	}
	/* Root appends to it: a link or a directory another user can write
	 * would let them choose which file grows, or rewrite the record. */
	rc = hp_secure_dir(dir, "audit log directory");
	if (rc && rc != -HP_E_INSECURE)
		hp_error_rc(rc, "audit log directory '%s'", dir);
	if (!rc)
		rc = hp_secure_open(a->path, O_WRONLY | O_APPEND | O_CREAT,
				    0640, "audit log", HP_LOG_ERROR, true);
	if (rc < 0) {
		hp_hint("every attempt must be recorded: fix the permissions "
			"or use --audit-log FILE");
		return rc;
	}
	a->fd = rc;
	return 0;
}

void hp_rt_audit_close(struct hp_rt_audit *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
}

static void put_functions(struct hp_out *o, const char *list)
{
	char buf[sizeof(((struct hp_rt_result *)0)->functions)];
	char *save = NULL;

	snprintf(buf, sizeof(buf), "%s", list);
	hp_out_begin_array(o, "functions");
	for (char *f = strtok_r(buf, ",", &save); f;
	     f = strtok_r(NULL, ",", &save))
		hp_out_str(o, NULL, "%s", f);
	hp_out_end_array(o);
}

/*
 * The name of the user we run as, looked up once per uid: a run over
 * many processes writes a line for each, and each lookup reads
 * /etc/nsswitch.conf and /etc/passwd.
 */
static const char *user_name(uid_t uid)
{
	static char name[64];
	static uid_t named = (uid_t)-1;
	const struct passwd *pw = NULL;

	if (uid == named)
		return name;
	pw = getpwuid(uid);
	if (!pw)
		return "?";
	snprintf(name, sizeof(name), "%s", pw->pw_name);
	named = uid;
	return name;
}

/*
 * Whether syslog() may reach a logger now. Where no daemon listens on
 * /dev/log (a container, a host without journald or rsyslog), glibc's
 * syslog() opens a socket and fails to connect it at every call: three
 * calls per record of a run over many processes, for nothing. So its
 * socket is tried here first, and a failure is believed for
 * HP_SYSLOG_RETRY_US: a logger that starts meanwhile misses at most
 * that long of records, which the audit file holds anyway. Once it
 * connects, glibc keeps its own connection, and is called every time.
 */
#define HP_SYSLOG_RETRY_US (10 * 1000000ull)

static bool syslog_up(void)
{
	static bool up;
	static uint64_t retry_at;
	const uint64_t now = hp_now_us();
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (up)
		return true;
	if (now < retry_at)
		return false;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", _PATH_LOG);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	up = fd >= 0 && !connect(fd, (const struct sockaddr *)&sa, sizeof(sa));
	if (fd >= 0)
		close(fd);
	if (!up)
		retry_at = now + HP_SYSLOG_RETRY_US;
	return up;
}

void hp_rt_audit_record(struct hp_rt_audit *a, const char *action,
			const char *file, const struct hp_patch *p,
			const struct hp_rt_result *res, int rc)
{
	/* Ours for the whole run: hpatch and hpatchd never change it. */
	static uid_t uid = (uid_t)-1;
	char *line = NULL, exe[PATH_MAX] = "", link[64], when[32];
	char key[HP_KEY_ID_STR_BYTES] = "";
	size_t len = 0;
	struct hp_out o;
	struct tm tm;
	time_t now = time(NULL);
	FILE *fp = open_memstream(&line, &len);

	if (!fp)
		return;
	if (uid == (uid_t)-1)
		uid = getuid();
	if (res && res->exe[0]) {
		snprintf(exe, sizeof(exe), "%s", res->exe);
	} else if (res) {
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/%d/exe", (int)res->pid);
		n = readlink(link, exe, sizeof(exe) - 1);
		exe[n > 0 ? n : 0] = 0;
	}
	if (res && res->key_id[0])
		snprintf(key, sizeof(key), "%s", res->key_id);
	else if (p && p->info.is_signed)
		hp_sign_key_id_str(key, p->info.key_id);
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	hp_out_init(&o, fp, true);
	hp_out_str(&o, "time", "%s", when);
	hp_out_str(&o, "user", "%s", user_name(uid));
	hp_out_u64(&o, "uid", uid);
	hp_out_str(&o, "action", "%s", action);
	hp_out_i64(&o, "pid", res ? res->pid : 0);
	hp_out_str(&o, "executable", "%s", exe);
	hp_out_str(&o, "module", "%s", res ? res->module : "");
	hp_out_str(&o, "build_id", "%s", res ? res->build_id : "");
	hp_out_str(&o, "patch_file", "%s", file ? file : "");
	hp_out_str(&o, "patch_id", "%s",
		   p && p->id ? p->id
		   : res      ? res->patch_id
			      : "");
	hp_out_str(&o, "key_id", "%s", key);
	hp_out_u64(&o, "sequence", p ? p->sequence : res ? res->sequence : 0);
	hp_out_str(&o, "result", "%s", rc ? hp_err_name(rc) : "ok");
	hp_out_str(&o, "reason", "%s",
		   res	? hp_rt_reason(res, rc)
		   : rc ? hp_strerror(rc)
			: "");
	hp_out_u64(&o, "pause_us", res ? res->pause_us : 0);
	hp_out_u64(&o, "threads", res ? res->nr_threads : 0);
	put_functions(&o, res ? res->functions : "");
	hp_out_finish(&o);
	fclose(fp);
	if (a->fd >= 0 && write(a->fd, line, len) != (ssize_t)len)
		hp_warn("audit log '%s': write failed: %s", a->path,
			strerror(errno));
	line[len ? len - 1 : 0] = 0;
	if (syslog_up())
		syslog(LOG_AUTHPRIV | (rc ? LOG_WARNING : LOG_NOTICE),
		       "hpatch: %s", line);
	free(line);
}
