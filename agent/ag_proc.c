/*
 * Facts about one process that the policy decides on (its executable, its
 * systemd unit, its start time), and the revert of uninstalled patches.
 */
#include "agent/agent.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HP_REVERT_ROUNDS 16

int hp_agent_pids(pid_t **out, size_t *nr_out)
{
	DIR *dir = opendir("/proc");
	struct dirent *de = NULL;
	pid_t *pids = NULL;
	size_t nr = 0, cap = 0;

	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		char *end = NULL;
		const long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0 || pid == hp_self_pid())
			continue;
		if (hp_grow(&pids, &cap, nr, sizeof(*pids), 256)) {
			free(pids);
			closedir(dir);
			return -ENOMEM;
		}
		pids[nr++] = (pid_t)pid;
	}
	closedir(dir);
	*out = pids;
	*nr_out = nr;
	return 0;
}

/* /proc/@pid/@name, or, its leader gone (a zombie while its threads run
 * on: no memory, no executable, no maps of its own), a live thread's. */
static void proc_file(pid_t pid, const char *name, char *path, size_t size)
{
	const pid_t tid = hp_proc_live_tid(pid);

	if (tid == pid)
		snprintf(path, size, "/proc/%d/%s", (int)pid, name);
	else
		snprintf(path, size, "/proc/%d/task/%d/%s", (int)pid, (int)tid,
			 name);
}

char *hp_agent_exe(pid_t pid)
{
	char link[64], path[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	n = readlink(link, path, sizeof(path));
	if (n < 0 && errno == ENOENT) { /* a zombie leader, or gone */
		proc_file(pid, "exe", link, sizeof(link));
		n = readlink(link, path, sizeof(path));
	}
	if (n <= 0) {
		errno = n < 0 ? errno : ENOENT;
		return NULL;
	}
	/* Filled: perhaps cut short, and a cut path may match a rule the
	 * whole one does not (or miss an exclusion it matches). */
	if ((size_t)n >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	path[n] = 0;
	return strdup(path);
}

static bool is_unit_name(const char *s, size_t len)
{
	static const char *const kinds[] = { ".service", ".scope" };

	for (size_t i = 0; i < HP_ARRAY_SIZE(kinds); i++) {
		const size_t k = strlen(kinds[i]);

		if (len > k && !memcmp(s + len - k, kinds[i], k))
			return true;
	}
	return false;
}

static bool is_slice_name(const char *s, size_t len)
{
	return len > 6 && !memcmp(s + len - 6, ".slice", 6);
}

/*
 * The deepest path component that names a service or scope, on the
 * unified (v2) line "0::/system.slice/nginx.service" or, on a v1 host, the
 * name=systemd line. "" when the process belongs to no unit. Whether it is
 * a unit of the host's systemd: only slices above it, as systemd itself
 * tells a process's unit (a container's manager, or a user's, runs one
 * below a unit: "/machine.slice/libpod-1.scope/system.slice/sshd.service"
 * is no sshd.service of the host's).
 */
bool hp_agent_unit_of(const char *text, char *out, size_t cap)
{
	const char *line = text;
	bool host = false;

	out[0] = 0;
	while (line && *line) {
		const char *end = strchr(line, '\n');
		const size_t len = end ? (size_t)(end - line) : strlen(line);
		const bool v2 = !strncmp(line, "0::", 3);
		const bool v1 = memmem(line, len, ":name=systemd:", 14) != NULL;

		if (v2 || (v1 && !out[0])) {
			const char *path = memchr(line + (v2 ? 3 : 0), '/',
						  len - (v2 ? 3 : 0));
			bool slices = true; /* only slices so far */

			for (const char *c = path; c && c < line + len;) {
				const char *next =
					memchr(c + 1, '/', line + len - c - 1);
				/* systemd's escape of a cgroup name
				 * (cg_escape: "_cpu.service" for
				 * cpu.service, "__x.service" for
				 * _x.service) taken off: the unit's name,
				 * which rules name, RestartUnit takes. */
				const char *name = c + 1 + (c[1] == '_');
				const size_t n =
					(size_t)((next ? next : line + len) -
						 name);

				/* Too long: none, never the unit above
				 * (a user's whole manager, say). */
				if (is_unit_name(name, n) && n >= cap) {
					out[0] = 0;
					return false;
				}
				if (is_unit_name(name, n)) {
					memcpy(out, name, n);
					out[n] = 0;
					host = slices;
				}
				slices &= is_slice_name(name, n);
				c = next;
			}
		}
		line = end ? end + 1 : NULL;
	}
	return out[0] && host;
}

/* A /proc file of @pid (@live: or of a live thread, its leader gone),
 * NUL-terminated (they report no size: no hp_read_file). Return: the
 * length, or -1. */
static ssize_t read_proc(pid_t pid, const char *name, bool live, char *buf,
			 size_t cap)
{
	char path[64];
	size_t done = 0;
	int fd;

	if (live)
		proc_file(pid, name, path, sizeof(path));
	else
		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (done < cap - 1) {
		const ssize_t n = read(fd, buf + done, cap - 1 - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
		/* A short read that ends a line: the whole file (these
		 * are made whole at the first read), no read for EOF. */
		if (done < cap - 1 && buf[done - 1] == '\n')
			break;
	}
	close(fd);
	buf[done] = 0;
	return done ? (ssize_t)done : -1;
}

bool hp_agent_unit(pid_t pid, char *out, size_t cap)
{
	char text[4096];

	out[0] = 0;
	return read_proc(pid, "cgroup", true, text, sizeof(text)) > 0 &&
	       hp_agent_unit_of(text, out, cap);
}

uint64_t hp_agent_start_time(pid_t pid)
{
	char text[1024];
	unsigned long long t = 0;
	const char *p = NULL;

	if (read_proc(pid, "stat", false, text, sizeof(text)) < 0 ||
	    !hp_stat_field(text, 22, &t))
		return 0;
	/* A zombie (state Z, X) has nothing left to patch: gone; unless it
	 * is a leader whose threads run on (pthread_exit in main). */
	p = strrchr(text, ')');
	if ((p[2] == 'Z' || p[2] == 'X') && hp_proc_live_tid(pid) == pid)
		return 0;
	return t;
}

uint64_t hp_agent_now_ticks(void)
{
	const long hz = sysconf(_SC_CLK_TCK);
	struct timespec ts;

	if (hz <= 0 || clock_gettime(CLOCK_BOOTTIME, &ts))
		return UINT64_MAX;
	return (uint64_t)ts.tv_sec * (uint64_t)hz +
	       (uint64_t)ts.tv_nsec / (1000000000u / (uint64_t)hz);
}

int hp_agent_find_removed(const struct hp_store *s, pid_t pid,
			  char id[HP_PATCH_ID_MAX])
{
	struct hp_rt_applied *list = NULL;
	size_t nr = 0;
	int rc = hp_rt_query(pid, &list, &nr);

	id[0] = 0;
	for (size_t i = 0; !rc && i < nr && !id[0]; i++)
		if (list[i].in_place &&
		    hp_store_is_uninstalled(s, list[i].patch_id))
			snprintf(id, HP_PATCH_ID_MAX, "%s", list[i].patch_id);
	free(list);
	return rc;
}

int hp_agent_revert_removed(const struct hp_store *s, pid_t pid,
			    const struct hp_rt_opts *opts,
			    struct hp_rt_audit *audit)
{
	int nr_reverted = 0;

	for (int round = 0; round < HP_REVERT_ROUNDS; round++) {
		struct hp_rt_result res;
		char id[HP_PATCH_ID_MAX];
		int rc = hp_agent_find_removed(s, pid, id);

		/* No fd or memory left to read it: not known, not none. */
		if (hp_agent_ran_short(rc))
			return rc;
		/* Unreadable (a kernel thread, gone): nothing of ours. */
		if (rc || !id[0])
			return nr_reverted;
		rc = hp_rt_revert(pid, opts, &res);
		if (audit)
			hp_rt_audit_record(audit, "revert", NULL, NULL, &res,
					   rc);
		/* In place but not fully (a newer patch replaced part of
		 * it): that newer patch's revert brings it back first. */
		if (rc)
			return rc;
		nr_reverted++;
	}
	return nr_reverted;
}
