/*
 * The target's perf map (/tmp/perf-PID.map, the convention JITs use so
 * that perf names code no ELF file describes): one line per patched
 * function's new code, "START SIZE name [hpatch:ID]". Written by root from
 * outside into a world-writable directory, so it never follows a link and
 * never writes a file someone else planted there.
 */
#include "runtime/rt_lifecycle.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HP_LOG_PREFIX "rt: "
#define HP_PERFMAP_DIR "/tmp"

/*
 * Open the map for appending: created (exclusively, owned by the process's
 * user, as its own JIT would create it), or an existing one that is a
 * regular file of that user with a single link. Return: an fd, or -errno.
 */
static int open_map(pid_t pid, const char *path)
{
	const int flags = O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC;
	struct stat proc_st, st;
	char proc_path[32];
	int fd;

	snprintf(proc_path, sizeof(proc_path), "/proc/%d", (int)pid);
	if (stat(proc_path, &proc_st) < 0)
		return -errno;
	fd = open(path, flags | O_CREAT | O_EXCL, 0644);
	if (fd >= 0) {
		if (fchown(fd, proc_st.st_uid, proc_st.st_gid) < 0 &&
		    errno != EPERM) {
			int err = -errno;

			close(fd);
			return err;
		}
		return fd;
	}
	if (errno != EEXIST)
		return -errno;
	fd = open(path, flags);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    (st.st_uid != proc_st.st_uid && st.st_uid != geteuid())) {
		close(fd);
		return -EPERM;
	}
	return fd;
}

void hp_perfmap_add(const struct hp_proc *proc, const char *patch_id,
		    const struct hp_prep *pr)
{
	char path[64], line[512];
	struct hp_buf out = { 0 };
	int fd, rc = 0;

	snprintf(path, sizeof(path), HP_PERFMAP_DIR "/perf-%d.map",
		 (int)proc->pid);
	/* The patch's own names: the records keep 55 bytes of them. */
	for (uint32_t i = 0; i < pr->m->nr_funcs && !rc; i++) {
		const struct hp_rt_func *f = &pr->recs[i];
		int n = snprintf(line, sizeof(line),
				 "%" PRIx64 " %x %s [hpatch:%s]\n", f->new_addr,
				 f->new_size, pr->m->funcs[i].name, patch_id);

		if (n >= (int)sizeof(line)) /* cut, but still a line */
			line[(n = sizeof(line) - 1) - 1] = '\n';
		rc = hp_buf_append(&out, line, (size_t)n);
	}
	if (rc || !out.len)
		goto out;
	fd = open_map(proc->pid, path);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	/* One write of whole lines: O_APPEND keeps them apart from the
	 * process's own (a JIT's) lines. */
	if (write(fd, out.data, out.len) != (ssize_t)out.len)
		rc = errno ? -errno : -EIO;
	close(fd);
out:
	if (rc)
		hp_warn("pid %d: '%s': perf map not written: %s",
			(int)proc->pid, path, strerror(-rc));
	hp_buf_release(&out);
}
