/*
 * One patcher per process at a time: a lock file per target under the
 * state directory, "locks/PID-STARTTIME.lock", held with flock() for the
 * whole apply or revert. The start time (field 22 of /proc/PID/stat, in
 * clock ticks since boot) makes a reused pid another lock; flock() dies
 * with its holder, so a killed hpatch never leaves a process locked; the
 * kernel names its holder (/proc/locks), so a second hpatch (or hpatchd)
 * can say who.
 */
#include "runtime/runtime_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_secure.h"
#include "common/hp_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define HP_LOG_PREFIX "rt: "
#define HP_LOCK_POLL_US 2000

/* Start time of @pid in clock ticks since boot, 0 if gone. */
static uint64_t start_time(pid_t pid)
{
	char path[48], buf[1024], *p = NULL;
	unsigned long long t = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* After the command name (which may hold spaces and ')'): state is
	 * field 3, start time field 22. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2,
			 "%*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
			 "%*s %*s %*s %*s %*s %*s %*s %*s %llu",
			 &t) != 1)
		return 0;
	return t;
}

/*
 * Who holds the lock: the process /proc/locks names for the file's inode,
 * as "COMM (pid N)". The file itself stays empty: a page written to it
 * would make its unlink wait for that page's writeback on a disk-backed
 * state directory (hundreds of ms on a busy disk, at every apply).
 */
static void holder(int fd, char *buf, size_t size)
{
	FILE *fp = fopen("/proc/locks", "re");
	char line[256], comm[64] = "";
	struct stat sb;
	int pid = 0;

	snprintf(buf, size, "another process");
	if (!fp)
		return;
	while (!pid && !fstat(fd, &sb) && fgets(line, sizeof(line), fp)) {
		char kind[16];
		unsigned int maj, min;
		unsigned long ino;
		int who;

		if (sscanf(line, "%*d: %15s %*s %*s %d %x:%x:%lu", kind, &who,
			   &maj, &min, &ino) == 5 &&
		    !strcmp(kind, "FLOCK") && ino == sb.st_ino &&
		    maj == major(sb.st_dev) && min == minor(sb.st_dev))
			pid = who;
	}
	fclose(fp);
	if (pid <= 0)
		return;
	snprintf(line, sizeof(line), "/proc/%d/comm", pid);
	fp = fopen(line, "re");
	if (fp && fgets(comm, sizeof(comm), fp))
		comm[strcspn(comm, "\n")] = 0;
	if (fp)
		fclose(fp);
	snprintf(buf, size, "%s (pid %d)", comm[0] ? comm : "a process", pid);
}

/*
 * Open the lock file, and lock it unless another holds it (-EWOULDBLOCK).
 * A file unlinked by its last holder meanwhile is no lock: open again.
 * @report_missing: say so if its directory is missing.
 *
 * Three calls where a run over many processes makes one lock each: the
 * directory was found root's (or ours) alone (lock_dir), so no one else
 * can have planted a link, a FIFO or another's file in it, and the
 * checks hp_secure_open makes of the file itself are asked only when
 * the plain open fails (for its message). Unlinked since it was opened
 * is a link count of 0: nobody links a lock file again, so a live link
 * is the path's own file.
 */
static int try_lock(const char *path, int *fd_out, bool report_missing)
{
	for (int tries = 0; tries < 16; tries++) {
		struct stat st;
		int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
			      0600);

		if (fd < 0)
			fd = hp_secure_open(path, O_RDWR | O_CREAT, 0600,
					    "lock file", HP_LOG_ERROR,
					    report_missing);
		if (fd < 0)
			return fd;
		*fd_out = fd;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0)
			return errno == EWOULDBLOCK ? -EWOULDBLOCK : -errno;
		if (!fstat(fd, &st) && st.st_nlink > 0)
			return 0;
		close(fd);
	}
	return -EAGAIN;
}

/*
 * Make and check the lock directory @locks in @dir. A run over many
 * processes locks each in turn: the directory made and found root's
 * alone (only root can change that) is looked at again only when the
 * lock file cannot be opened (hp_rt_lock forgets it then).
 */
static char checked_dir[256];

static int lock_dir(const char *dir, const char *locks)
{
	int rc;

	if (!strcmp(checked_dir, locks))
		return 0;
	if ((mkdir(dir, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(locks, 0700) < 0 && errno != EEXIST))
		return hp_error_rc(-errno, "state directory '%s'", dir);
	rc = hp_secure_dir(locks, "lock directory");
	if (rc)
		return rc == -HP_E_INSECURE
			       ? rc
			       : hp_error_rc(rc, "lock directory '%s'", locks);
	snprintf(checked_dir, sizeof(checked_dir), "%s", locks);
	return 0;
}

int hp_rt_lock(const char *state_dir, pid_t pid, long timeout_ms,
	       struct hp_rt_lock *lk)
{
	const char *dir =
		state_dir && *state_dir ? state_dir : HP_STATE_DIR_DEFAULT;
	const uint64_t deadline = hp_now_us() + (uint64_t)timeout_ms * 1000;
	const uint64_t since = start_time(pid);
	char locks[256], who[128];
	bool fresh = false;
	int fd = -1, rc;

	*lk = (struct hp_rt_lock){ .fd = -1 };
	if (!since)
		return 0; /* gone: the apply itself says so */
	snprintf(locks, sizeof(locks), "%s/locks", dir);
	fresh = strcmp(checked_dir, locks) != 0;
	rc = lock_dir(dir, locks);
	if (rc)
		return rc;
	snprintf(lk->path, sizeof(lk->path), "%s/%d-%" PRIu64 ".lock", locks,
		 (int)pid, since);
	for (;;) {
		rc = try_lock(lk->path, &fd, fresh);
		/* The directory went since it was checked: made again. */
		if (rc == -ENOENT && !fresh) {
			fresh = true;
			checked_dir[0] = 0;
			rc = lock_dir(dir, locks);
			if (rc)
				return rc;
			continue;
		}
		if (rc != -EWOULDBLOCK || hp_now_us() >= deadline)
			break;
		close(fd);
		usleep(HP_LOCK_POLL_US);
	}
	if (rc == -EWOULDBLOCK) {
		holder(fd, who, sizeof(who));
		close(fd);
		hp_error(-HP_E_BUSY, "pid %d: held by %s; gave up after %ld ms",
			 (int)pid, who, timeout_ms);
		hp_hint("one patcher at a time: retry when it is done, or "
			"raise --timeout");
		return -HP_E_BUSY;
	}
	if (rc) {
		checked_dir[0] = 0;
		return rc == -EAGAIN ? hp_error_rc(rc, "'%s'", lk->path) : rc;
	}
	lk->fd = fd;
	return 0;
}

void hp_rt_unlock(struct hp_rt_lock *lk)
{
	if (lk->fd < 0)
		return;
	/* Unlinked while held: whoever opened it meanwhile sees a stale
	 * inode after its flock and opens the path again (try_lock). */
	unlink(lk->path);
	close(lk->fd);
	lk->fd = -1;
}
