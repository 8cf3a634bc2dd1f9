/*
 * One patcher per process at a time: a byte of one file under the state
 * directory, "locks/targets", locked with fcntl(F_SETLK) for the whole
 * apply or revert, at the offset PID << 32 | STARTTIME (the start time,
 * field 22 of /proc/PID/stat in clock ticks since boot, modulo 2^32: 497
 * days at 100 Hz) so that a reused pid is another lock. A record lock
 * dies with its holder, so a killed hpatch never leaves a process locked,
 * and the kernel names its holder (F_GETLK), so a second hpatch (or
 * hpatchd) can say who.
 *
 * Where a file per process was created, flock()ed and unlinked, this is
 * two fcntl calls per process and no inode made and freed (on ext4 that
 * made every create search the recently deleted inodes: a tenth of a run
 * over 200 processes). The file is opened once per process and kept: a
 * record lock is the process's own, so a fork (hpatch's workers) locks
 * apart from its parent, and it would be let go by the close of any fd
 * of the file, which only this file opens. It stays empty.
 */
#include "runtime/runtime_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_secure.h"
#include "common/hp_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HP_LOG_PREFIX "rt: "
#define HP_LOCK_POLL_US 2000

/*
 * Start time of @pid in clock ticks since boot, 0 if gone; *@live: its
 * state was neither zombie nor dead (what hp_task_gone asks, in the same
 * read: the apply's next steps take it from here).
 */
static uint64_t start_time(pid_t pid, bool *live)
{
	char path[48], buf[1024], *p = NULL;
	unsigned long long t = 0;
	ssize_t n;
	int fd;

	*live = false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* The state is field 3, the start time field 22. */
	if (!hp_stat_field(buf, 22, &t))
		return 0;
	p = strrchr(buf, ')');
	*live = p[2] != 'Z' && p[2] != 'X';
	return t;
}

/* Who holds @at's byte of @fd: "COMM (pid N)". */
static void holder(int fd, off_t at, char *buf, size_t size)
{
	struct flock fl = { .l_type = F_WRLCK,
			    .l_whence = SEEK_SET,
			    .l_start = at,
			    .l_len = 1 };
	char comm[64];

	snprintf(buf, size, "another process");
	if (fcntl(fd, F_GETLK, &fl) < 0 || fl.l_type == F_UNLCK ||
	    fl.l_pid <= 0)
		return;
	hp_task_comm(fl.l_pid, comm, sizeof(comm));
	snprintf(buf, size, "%s (pid %d)",
		 strcmp(comm, "?") ? comm : "a process", (int)fl.l_pid);
}

/*
 * Make and check the lock directory @locks in @dir, and open its file
 * once for the run: a run over many processes locks each in turn. The
 * directory made and found root's (or ours) alone, no one else can have
 * planted a link, a FIFO or another's file in it; hp_secure_open is
 * asked only when the plain open fails, for its message. A file unlinked
 * since (the state directory removed) locks nothing anyone else sees: a
 * link count of 0, and it is opened again.
 */
static struct {
	char dir[256]; /* the lock directory @fd is in */
	int fd;
} kept = { .fd = -1 };

static int lock_file(const char *dir, const char *locks)
{
	char path[320];
	struct stat st;
	int fd, rc;

	if (kept.fd >= 0 && !strcmp(kept.dir, locks) && !fstat(kept.fd, &st) &&
	    st.st_nlink > 0)
		return kept.fd;
	if (kept.fd >= 0)
		close(kept.fd);
	kept.fd = -1;
	if ((mkdir(dir, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(locks, 0700) < 0 && errno != EEXIST))
		return hp_error_rc(-errno, "state directory '%s'", dir);
	rc = hp_secure_dir(locks, "lock directory");
	if (rc)
		return rc == -HP_E_INSECURE
			       ? rc
			       : hp_error_rc(rc, "lock directory '%s'", locks);
	snprintf(path, sizeof(path), "%s/targets", locks);
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		fd = hp_secure_open(path, O_RDWR | O_CREAT, 0600, "lock file",
				    HP_LOG_ERROR, true);
	if (fd < 0)
		return fd;
	snprintf(kept.dir, sizeof(kept.dir), "%s", locks);
	kept.fd = fd;
	return fd;
}

/* Lock @at's byte of @fd, or -EWOULDBLOCK while another holds it. */
static int try_lock(int fd, off_t at)
{
	const struct flock fl = { .l_type = F_WRLCK,
				  .l_whence = SEEK_SET,
				  .l_start = at,
				  .l_len = 1 };

	if (fcntl(fd, F_SETLK, &fl) == 0)
		return 0;
	return errno == EACCES || errno == EAGAIN ? -EWOULDBLOCK : -errno;
}

int hp_rt_lock(const char *state_dir, pid_t pid, long timeout_ms,
	       struct hp_rt_lock *lk)
{
	const char *dir =
		state_dir && *state_dir ? state_dir : HP_STATE_DIR_DEFAULT;
	const uint64_t deadline = hp_now_us() + (uint64_t)timeout_ms * 1000;
	bool live = false;
	const uint64_t since = start_time(pid, &live);
	const off_t at = (off_t)((uint64_t)pid << 32 | (since & 0xffffffffu));
	char locks[256], who[128];
	int fd, rc;

	*lk = (struct hp_rt_lock){ .fd = -1, .live = live, .start = since };
	if (!since)
		return 0; /* gone: the apply itself says so */
	snprintf(locks, sizeof(locks), "%s/locks", dir);
	fd = lock_file(dir, locks);
	if (fd < 0)
		return fd;
	while ((rc = try_lock(fd, at)) == -EWOULDBLOCK &&
	       hp_now_us() < deadline)
		usleep(HP_LOCK_POLL_US);
	if (rc == -EWOULDBLOCK) {
		holder(fd, at, who, sizeof(who));
		hp_error(-HP_E_BUSY, "pid %d: held by %s; gave up after %ld ms",
			 (int)pid, who, timeout_ms);
		hp_hint("one patcher at a time: retry when it is done, or "
			"raise --timeout");
		return -HP_E_BUSY;
	}
	if (rc)
		return hp_error_rc(rc, "pid %d: lock in '%s/targets'", (int)pid,
				   locks);
	lk->fd = fd;
	lk->at = at;
	return 0;
}

void hp_rt_unlock(struct hp_rt_lock *lk)
{
	const struct flock fl = { .l_type = F_UNLCK,
				  .l_whence = SEEK_SET,
				  .l_start = lk->at,
				  .l_len = 1 };

	if (lk->fd < 0)
		return;
	/* (The fd stays open for the next: lock_file.) */
	if (fcntl(lk->fd, F_SETLK, &fl) < 0)
		hp_warn("lock of pid %d: cannot let go: %s",
			(int)(lk->at >> 32), strerror(errno));
	lk->fd = -1;
}
