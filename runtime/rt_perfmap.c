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
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#define HP_LOG_PREFIX "rt: "
#define HP_PERFMAP_DIR "/tmp"

/* Where the maps go; a unit test points it elsewhere. */
static const char *perfmap_dir = HP_PERFMAP_DIR;

/* A map this big is not one that hpatch alone wrote. */
#define HP_PERFMAP_OURS_MAX 4096
/* How much older than its process a map must be to be an earlier one's:
 * the clocks compared are not the same (see stale_map). */
#define HP_PERFMAP_STALE_NS 1000000000LL

/* Does @fd (@size bytes) hold hpatch's lines and nothing else? */
static bool only_ours(int fd, size_t size)
{
	char buf[HP_PERFMAP_OURS_MAX + 1];
	const char *line = buf;

	if (!size || size > HP_PERFMAP_OURS_MAX ||
	    pread(fd, buf, size, 0) != (ssize_t)size)
		return false;
	buf[size] = 0;
	while (*line) {
		const char *eol = strchr(line, '\n');
		const char *tag =
			eol ? memmem(line, (size_t)(eol - line), " [hpatch:", 9)
			    : NULL;

		if (!tag || eol[-1] != ']')
			return false;
		line = eol + 1;
	}
	return true;
}

static int64_t ns_of(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

/*
 * Is the map @st older than its process, started @start clock ticks after
 * boot: an earlier process's of the same pid (pids are reused; 32768 of
 * them by default), whose lines name code this one does not have at those
 * addresses? The start is on the boot clock and a file's time on the wall
 * clock: compared across their difference now, with a second's margin
 * (a wall clock stepped forward since may make a map look older than it
 * is: only maps of hpatch's lines alone are ever emptied, see open_map).
 */
static bool stale_map(const struct stat *st, uint64_t start)
{
	const long hz = sysconf(_SC_CLK_TCK);
	struct timespec real, boot;
	int64_t started;

	if (!start || hz <= 0 || clock_gettime(CLOCK_REALTIME, &real) ||
	    clock_gettime(CLOCK_BOOTTIME, &boot))
		return false;
	started = ns_of(&real) - ns_of(&boot) +
		  (int64_t)(start / (uint64_t)hz) * 1000000000LL +
		  (int64_t)(start % (uint64_t)hz) * (1000000000LL / hz);
	return ns_of(&st->st_mtim) + HP_PERFMAP_STALE_NS < started;
}

/*
 * Open the map for appending: created (exclusively, owned by the process's
 * user, as its own JIT would create it), or an existing one that is a
 * regular file of that user with a single link. When that is an earlier
 * process's (stale_map) holding hpatch's lines alone (a JIT's lines are
 * never removed), it is opened for writing over instead: *@old_size is
 * its size then, else -1. Return: an fd, or -errno.
 */
static int open_map(const struct hp_proc *proc, const char *path,
		    off_t *old_size)
{
	/* O_NONBLOCK: a map its owner holds a lease on would block the open
	 * until the lease breaks, 45 s by default (writes to a regular file
	 * ignore the flag). */
	const int flags = O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
	struct stat proc_st, st;
	char proc_path[32];
	int fd;

	*old_size = -1;
	snprintf(proc_path, sizeof(proc_path), "/proc/%d", (int)proc->pid);
	if (stat(proc_path, &proc_st) < 0)
		return -errno;
	fd = open(path, O_WRONLY | flags | O_CREAT | O_EXCL, 0644);
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
	fd = open(path, O_RDWR | flags);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    (st.st_uid != proc_st.st_uid && st.st_uid != geteuid())) {
		close(fd);
		return -EPERM;
	}
	/* (Written over, not emptied: a file cut to nothing frees its block
	 * and is flushed at its close, ext4's auto_da_alloc; measured at a
	 * tenth of an apply's CPU time.) */
	if (stale_map(&st, proc->start) && only_ours(fd, (size_t)st.st_size) &&
	    !fcntl(fd, F_SETFL, 0)) /* (O_APPEND off) */
		*old_size = st.st_size;
	return fd;
}

void hp_perfmap_add(const struct hp_proc *proc, const char *patch_id,
		    const struct hp_prep *pr)
{
	char path[64], line[512];
	struct hp_buf out = { 0 };
	off_t old_size = -1;
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/perf-%d.map", perfmap_dir,
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
	fd = open_map(proc, path, &old_size);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	/* One write of whole lines: O_APPEND keeps them apart from the
	 * process's own (a JIT's) lines. An earlier process's map is
	 * written over from its start, and cut after. */
	errno = 0;
	if (old_size < 0)
		rc = write(fd, out.data, out.len) == (ssize_t)out.len ? 0 : -1;
	else if (pwrite(fd, out.data, out.len, 0) != (ssize_t)out.len)
		rc = -1;
	else if (old_size > (off_t)out.len)
		rc = ftruncate(fd, (off_t)out.len);
	if (rc)
		rc = errno ? -errno : -EIO;
	close(fd);
out:
	if (rc)
		hp_warn("pid %d: '%s': perf map not written: %s",
			(int)proc->pid, path, strerror(-rc));
	hp_buf_release(&out);
}

int hp_rt_perfmap_forget(pid_t pid, int64_t exited_ns)
{
	char path[64];
	struct stat st;
	int fd, rc = 1;

	snprintf(path, sizeof(path), "%s/perf-%d.map", perfmap_dir, (int)pid);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : (errno == ELOOP ? 1 : -errno);
	/* Written since the exit, or not hpatch's alone (a JIT's lines, a
	 * planted file, a second link): someone else's to keep. */
	if (fstat(fd, &st) < 0) {
		rc = -errno;
	} else if (S_ISREG(st.st_mode) && st.st_nlink == 1 &&
		   ns_of(&st.st_mtim) <= exited_ns &&
		   only_ours(fd, (size_t)st.st_size)) {
		/* A process of that number now (a zombie not yet reaped, or
		 * a new one): its map, or soon written over (open_map). */
		if (kill(pid, 0) == 0 || errno != ESRCH)
			rc = 2;
		else
			rc = unlink(path) < 0 && errno != ENOENT ? -errno : 0;
	}
	close(fd);
	return rc;
}
