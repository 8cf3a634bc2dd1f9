/*
 * The target's perf map (/tmp/perf-PID.map, the convention JITs use so
 * that perf names code no ELF file describes): one line per patched
 * function's new code, "START SIZE name [hpatch:ID]". Written by root from
 * outside into a world-writable directory, so it never follows a link and
 * never writes a file someone else planted there.
 *
 * Spare maps. hpatchd removes the maps of processes that exited a while
 * ago (agent/ag_perfmap.c), at the rate they start in a storm of
 * short-lived ones; an unlinked inode costs every later create on an ext4
 * without a journal (its allocator skips each free inode deleted in the
 * last 60-360 s, reading its table block: 200-450 us a create measured in
 * such a /tmp, 24 us elsewhere on that disk), and an alloc and a free
 * ~30-40 us with one. So hpatchd's clean-up moves a map into the spare
 * directory, /tmp/.hpatch-perfmap-spares.EUID, instead (at most
 * HP_PERFMAP_SLOTS there, named by slot; beyond that, unlinked), and a new
 * map takes a spare when there is one. The rules:
 * - The directory is inside /tmp: a rename across mounts fails (systemd
 *   gives a service its own /tmp mount). Made 0700 by the effective user,
 *   opened O_DIRECTORY|O_NOFOLLOW and used only if fstat says it is a
 *   directory of that user with no group or other permission; another
 *   one there (planted: /tmp is everyone's) turns spares off for the run,
 *   with one warning, and maps are created as before.
 * - Made only by hp_rt_perfmap_forget, after all its checks, with
 *   RENAME_NOREPLACE (unsupported: spares off), then checked again by
 *   dev/ino and link count under its new name: the map's owner may have
 *   put another file at its path, or linked it, in between; what is not
 *   the inode checked goes back to its path (else is removed).
 * - Taken for a process whose user owns the spare, and no other: the old
 *   process's user may still hold it open (or linked through
 *   /proc/self/fd), so it is only ever that user's again. A spare is
 *   claimed first: renamed to a name of the taking process's own in the
 *   directory, "claim.PID.NONCE" (hpatch apply takes spares too, from
 *   other processes: one rename wins), so that the file opened is the
 *   one renamed after. The pid alone is not the process's own: hpatch
 *   processes in two pid namespaces may share /tmp, and one that took
 *   the other's claim for a dead one's would place, under its path, a
 *   spare the other had checked for another user; hence 64 random bits.
 *   A claim older than HP_PERFMAP_CLAIM_NS is one its process left
 *   (killed between two renames): removed when seen.
 *   Opened O_NOFOLLOW|O_NONBLOCK (a lease never blocks hpatchd), used only
 *   if fstat says regular, one link, that user's (another user's: put
 *   back for that user; anything else: removed), its mode narrowed to at
 *   most 0644, written over from the start and cut to the new lines
 *   (never emptied: see open_map), and only then renamed to its path with
 *   RENAME_NOREPLACE: a map never shows old lines. A map at that path, or
 *   any failure: the spare goes back, and the map is made as before. (A
 *   lock on the directory instead of the claim: a holder preempted on a
 *   loaded host made the others go without, and one stopped would stop
 *   hpatchd if waited for.)
 * - Found among the spares this process made (hpatchd's list, by user: no
 *   look at the disk), else in the directory (getdents64), looking at
 *   HP_PERFMAP_LOOKS at most, until a look finds none (spares left by an
 *   earlier hpatchd, or for hpatch apply): a host whose directory holds
 *   only other users' spares pays for one look.
 */
#include "runtime/rt_lifecycle.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define HP_LOG_PREFIX "rt: "
#define HP_PERFMAP_DIR "/tmp"

/* Where the maps go; a unit test points it elsewhere. */
static const char *perfmap_dir = HP_PERFMAP_DIR;

/* The spare maps' directory, under perfmap_dir, ".EUID" after it. */
#define HP_PERFMAP_SPARES ".hpatch-perfmap-spares"
/* At most this many spares (a 4 KiB block and an inode each): two
 * seconds of a storm of 2,000 new processes a second. */
#define HP_PERFMAP_SLOTS 4096
/* Slots tried for a new spare, spares claimed for a new map, and spares
 * looked at for one of its user's. */
#define HP_PERFMAP_PROBES 8
#define HP_PERFMAP_LOOKS 32
/* A claim lives for a write of a few lines; one this old was left. (A
 * process stopped that long finds its claim gone: no map placed.) */
#define HP_PERFMAP_CLAIM_NS (60 * 1000000000LL)

/* This process's state of the spares (each forked process has its own
 * copy; maps are written from one thread, the loader's; see the header
 * comment): off for the run (a planted directory, no RENAME_NOREPLACE);
 * the directory looked through once for nothing (none there, or none of
 * the user's in HP_PERFMAP_LOOKS): not again, a create then costs no
 * look; the spares it made, by slot and user, most recent last (some
 * may be taken since). */
static bool spares_off;
static bool spares_none;
static struct hp_spare {
	uint32_t slot;
	uid_t uid;
} spares_made[HP_PERFMAP_SLOTS];
static uint32_t nr_spares_made;
/* How old a claim must be to be removed; a unit test sets it to 0. */
static int64_t claim_stale_ns = HP_PERFMAP_CLAIM_NS;

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

/* Spares off for the run, said once: @path is not the directory hpatch
 * made. Return: -EPERM. */
static int spares_planted(const char *path, const char *why)
{
	if (!spares_off)
		hp_warn("'%s': %s: perf maps not recycled", path, why);
	spares_off = true;
	return -EPERM;
}

/*
 * Open the spare directory (made first if @make and missing), checked:
 * a directory of the effective user, no group or other permission.
 * Return: an fd, or -errno (-ENOENT: none; -EPERM: spares off).
 */
static int open_spares(bool make)
{
	const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	const uid_t euid = geteuid();
	char path[96];
	struct stat st;
	int fd;

	if (spares_off)
		return -EPERM;
	snprintf(path, sizeof(path), "%s/" HP_PERFMAP_SPARES ".%u", perfmap_dir,
		 (unsigned)euid);
	fd = open(path, flags);
	if (fd < 0 && errno == ENOENT && make &&
	    (mkdir(path, 0700) == 0 || errno == EEXIST))
		fd = open(path, flags);
	if (fd < 0)
		return errno == ELOOP || errno == ENOTDIR
			       ? spares_planted(path, "not a directory")
			       : -errno;
	if (fstat(fd, &st) < 0) {
		const int err = -errno;

		close(fd);
		return err;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != euid || (st.st_mode & 077)) {
		close(fd);
		return spares_planted(path, "not a private directory of "
					    "hpatch's user");
	}
	return fd;
}

/* Unsupported RENAME_NOREPLACE, or the directory on another mount than
 * the maps: spares off, quietly (maps are made and removed as before).
 * Return: -@err. */
static int rename_failed(int err)
{
	if (err == EINVAL || err == EXDEV)
		spares_off = true;
	return -err;
}

/*
 * Make the map at @path, @st (checked by the caller), a spare: moved into
 * a free slot of the spare directory. Return: 0 (moved, or what was moved
 * was not that map: put back or removed, as an unlink would have), or
 * -errno (full, spares off, none at @path: the caller unlinks it).
 */
static int make_spare(const char *path, const struct stat *st)
{
	const int dirfd = open_spares(true);
	char slot[16];
	struct stat moved = { 0 };
	int rc = -EEXIST;
	uint32_t k = 0;

	if (dirfd < 0)
		return dirfd;
	for (unsigned i = 0; i < HP_PERFMAP_PROBES && rc == -EEXIST; i++) {
		k = (uint32_t)((st->st_ino + i) % HP_PERFMAP_SLOTS);
		snprintf(slot, sizeof(slot), "%u", k);
		rc = renameat2(AT_FDCWD, path, dirfd, slot, RENAME_NOREPLACE)
			     ? rename_failed(errno)
			     : 0;
	}
	if (rc)
		goto out;
	/* Its owner may have put another file at its path since it was
	 * checked, or linked it: that one goes back (else is removed). */
	if (fstatat(dirfd, slot, &moved, AT_SYMLINK_NOFOLLOW) < 0 ||
	    moved.st_dev != st->st_dev || moved.st_ino != st->st_ino ||
	    moved.st_nlink != 1 || !S_ISREG(moved.st_mode)) {
		if (renameat2(dirfd, slot, AT_FDCWD, path, RENAME_NOREPLACE))
			unlinkat(dirfd, slot,
				 S_ISDIR(moved.st_mode) ? AT_REMOVEDIR : 0);
		goto out;
	}
	if (nr_spares_made == HP_PERFMAP_SLOTS) {
		/* (Some taken by others since: the older half forgotten.) */
		memmove(spares_made, spares_made + HP_PERFMAP_SLOTS / 2,
			HP_PERFMAP_SLOTS / 2 * sizeof(*spares_made));
		nr_spares_made = HP_PERFMAP_SLOTS / 2;
	}
	spares_made[nr_spares_made++] =
		(struct hp_spare){ .slot = k, .uid = moved.st_uid };
out:
	close(dirfd);
	return rc;
}

/*
 * This process's name for a spare it claims, in @buf (@cap bytes): its
 * pid and a nonce drawn once per process (a forked child draws its own).
 * The pid is hp_self_pid()'s: a getpid() a map is a system call each
 * (tests/e2e/hpatchd_calls.sh counts them).
 * Return: 0, or -errno (no random bytes: no spare taken).
 */
static int claim_name(char *buf, size_t cap)
{
	static pid_t drawn_by;
	static uint64_t nonce;
	const pid_t self = hp_self_pid();

	if (drawn_by != self) {
		errno = 0;
		if (getrandom(&nonce, sizeof(nonce), GRND_NONBLOCK) !=
		    (ssize_t)sizeof(nonce))
			return errno ? -errno : -EIO;
		drawn_by = self;
	}
	snprintf(buf, cap, "claim.%d.%016" PRIx64, (int)self, nonce);
	return 0;
}

/* Is the entry @name, @st, a claim its process left (see the header)? */
static bool is_claim_left(const char *name, const struct stat *st)
{
	struct timespec now;

	return !strncmp(name, "claim.", 6) && S_ISREG(st->st_mode) &&
	       !clock_gettime(CLOCK_REALTIME, &now) &&
	       ns_of(&st->st_ctim) + claim_stale_ns <= ns_of(&now);
}

/* Put the spare claimed as @claim back as @slot, else remove it. */
static void put_back(int dirfd, const char *claim, const char *slot)
{
	if (renameat2(dirfd, claim, dirfd, slot, RENAME_NOREPLACE))
		unlinkat(dirfd, claim, 0);
}

/*
 * Use the spare @slot for @path, the map of a process of @proc_st's user,
 * holding @out. Return: 0 done, -EAGAIN not there or not usable (try
 * another), or -errno (the caller makes the map as before).
 */
static int use_spare(int dirfd, const char *slot, const struct stat *proc_st,
		     const char *path, const struct hp_buf *out)
{
	char claim[48];
	struct stat st;
	int fd, rc = claim_name(claim, sizeof(claim));

	if (rc)
		return rc;
	if (renameat2(dirfd, slot, dirfd, claim, RENAME_NOREPLACE))
		return errno == ENOENT ? -EAGAIN : rename_failed(errno);
	fd = openat(dirfd, claim,
		    O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_nlink != 1) {
		unlinkat(dirfd, claim, 0); /* (no map: hpatch's never) */
		rc = -EAGAIN;
		goto out;
	}
	if (st.st_uid != proc_st->st_uid) {
		put_back(dirfd, claim, slot); /* (that user's again, later) */
		rc = -EAGAIN;
		goto out;
	}
	errno = 0;
	if ((st.st_gid != proc_st->st_gid &&
	     fchown(fd, proc_st->st_uid, proc_st->st_gid) < 0 &&
	     errno != EPERM) ||
	    ((st.st_mode & 07777 & ~0644) && fchmod(fd, st.st_mode & 0644)) ||
	    pwrite(fd, out->data, out->len, 0) != (ssize_t)out->len ||
	    (st.st_size > (off_t)out->len && ftruncate(fd, (off_t)out->len)))
		rc = errno ? -errno : -EIO;
	else if (renameat2(dirfd, claim, AT_FDCWD, path, RENAME_NOREPLACE))
		rc = rename_failed(errno);
	if (rc)
		put_back(dirfd, claim, slot);
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Take one of the spares this process made, of @proc_st's user. Return:
 * as use_spare, -ENOENT when there is none. */
static int take_made(int dirfd, const struct stat *proc_st, const char *path,
		     const struct hp_buf *out)
{
	char slot[16];
	int rc = -ENOENT;

	for (uint32_t i = nr_spares_made; i-- > 0 && rc == -ENOENT;) {
		if (spares_made[i].uid != proc_st->st_uid)
			continue;
		snprintf(slot, sizeof(slot), "%u", spares_made[i].slot);
		rc = use_spare(dirfd, slot, proc_st, path, out);
		if (rc && rc != -EAGAIN)
			break; /* (kept, for another) */
		spares_made[i] = spares_made[--nr_spares_made];
		rc = rc ? -ENOENT : 0;
	}
	return rc;
}

/* Take a spare of @proc_st's user found in the directory. Return: as
 * take_made. */
static int take_found(int dirfd, const struct stat *proc_st, const char *path,
		      const struct hp_buf *out)
{
	char buf[4096] __attribute__((aligned(8)));
	unsigned looks = 0, tries = 0;
	struct stat st;
	ssize_t n = 0;
	int rc = -ENOENT;

	while (rc == -ENOENT && tries < HP_PERFMAP_PROBES &&
	       looks < HP_PERFMAP_LOOKS &&
	       (n = getdents64(dirfd, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0;
		     off < n && rc == -ENOENT && tries < HP_PERFMAP_PROBES;) {
			const struct dirent64 *de = (void *)(buf + off);

			off += de->d_reclen;
			if (de->d_name[0] == '.')
				continue;
			/* (Another user's: skipped at the cost of a look;
			 * use_spare checks the one it opens.) */
			if (looks++ >= HP_PERFMAP_LOOKS)
				break;
			if (fstatat(dirfd, de->d_name, &st,
				    AT_SYMLINK_NOFOLLOW))
				continue;
			if (is_claim_left(de->d_name, &st))
				unlinkat(dirfd, de->d_name, 0);
			if (de->d_name[0] < '0' || de->d_name[0] > '9' ||
			    st.st_uid != proc_st->st_uid)
				continue;
			tries++;
			rc = use_spare(dirfd, de->d_name, proc_st, path, out);
			if (rc == -EAGAIN)
				rc = -ENOENT;
		}
	}
	if (rc == -ENOENT)
		spares_none = true;
	return rc;
}

/*
 * A new map at @path for a process of @proc_st's user, holding @out, made
 * of a spare of that user's. Return: 0 done, or -errno (none, a file at
 * @path, any failure: the caller makes the map as before).
 */
static int take_spare(const struct stat *proc_st, const char *path,
		      const struct hp_buf *out)
{
	uint32_t i = nr_spares_made;
	int dirfd, rc;

	while (i > 0 && spares_made[i - 1].uid != proc_st->st_uid)
		i--;
	if (spares_off || (spares_none && !i))
		return -ENOENT;
	/* (A map already at @path, rare for a new process, is found by the
	 * rename: no look first.) */
	dirfd = open_spares(false);
	if (dirfd < 0) {
		spares_none |= dirfd == -ENOENT;
		return dirfd;
	}
	rc = take_made(dirfd, proc_st, path, out);
	if (rc == -ENOENT && !spares_none)
		rc = take_found(dirfd, proc_st, path, out);
	close(dirfd);
	return rc;
}

/*
 * Open the map for appending: created (exclusively, owned by the process's
 * user, as its own JIT would create it), or an existing one that is a
 * regular file of that user with a single link. When that is an earlier
 * process's (stale_map) holding hpatch's lines alone (a JIT's lines are
 * never removed), it is opened for writing over instead: *@old_size is
 * its size then, else -1. Return: an fd, or -errno.
 */
static int open_map(const struct hp_proc *proc, const struct stat *proc_st,
		    const char *path, off_t *old_size)
{
	/* O_NONBLOCK: a map its owner holds a lease on would block the open
	 * until the lease breaks, 45 s by default (writes to a regular file
	 * ignore the flag). */
	const int flags = O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
	struct stat st;
	int fd;

	*old_size = -1;
	fd = open(path, O_WRONLY | flags | O_CREAT | O_EXCL, 0644);
	if (fd >= 0) {
		/* Made ours: the process's user's, unless that is us (root
		 * patching root's: most). An fstat costs a file system no
		 * change; fchown a journal entry on ext4. */
		if (!fstat(fd, &st) && st.st_uid == proc_st->st_uid &&
		    st.st_gid == proc_st->st_gid)
			return fd;
		if (fchown(fd, proc_st->st_uid, proc_st->st_gid) < 0 &&
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
	    (st.st_uid != proc_st->st_uid && st.st_uid != geteuid())) {
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
	char path[64], proc_path[32], line[512];
	struct hp_buf out = { 0 };
	struct stat proc_st;
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
	snprintf(proc_path, sizeof(proc_path), "/proc/%d", (int)proc->pid);
	if (stat(proc_path, &proc_st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!take_spare(&proc_st, path, &out))
		goto out;
	fd = open_map(proc, &proc_st, path, &old_size);
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

static int cmp_left(const void *a, const void *b)
{
	const struct hp_rt_perfmap_left *x = a, *y = b;

	return x->mtime_ns < y->mtime_ns ? -1 : x->mtime_ns > y->mtime_ns;
}

int hp_rt_perfmap_left(struct hp_rt_perfmap_left **out, size_t *nr)
{
	DIR *dir = opendir(perfmap_dir);
	struct hp_rt_perfmap_left *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	int rc = 0;

	*out = NULL;
	*nr = 0;
	if (!dir)
		return -errno;
	while (!rc && (e = readdir(dir))) {
		struct stat st;
		unsigned long pid = 0;
		const char *p = e->d_name + 5;
		char *end = NULL;

		/* "perf-PID.map", the pid in decimal, no sign, no zeros. */
		if (strncmp(e->d_name, "perf-", 5) || *p < '1' || *p > '9')
			continue;
		pid = strtoul(p, &end, 10);
		if (strcmp(end, ".map") || pid > INT32_MAX)
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue; /* a process has it (a zombie, a new one) */
		if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
		    !S_ISREG(st.st_mode))
			continue;
		rc = hp_grow(&v, &cap, n, sizeof(*v), 64);
		if (!rc)
			v[n++] = (struct hp_rt_perfmap_left){
				(pid_t)pid, ns_of(&st.st_mtim)
			};
	}
	closedir(dir);
	if (rc) {
		free(v);
		return rc;
	}
	qsort(v, n, sizeof(*v), cmp_left);
	*out = v;
	*nr = n;
	return 0;
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
		/* One its group or others could write: any of them may
		 * hold it open for writing still, into a later process's
		 * map. Removed, never a spare. */
		else if (!(st.st_mode & 022) && make_spare(path, &st) == 0)
			rc = 0;
		else
			rc = unlink(path) < 0 && errno != ENOENT ? -errno : 0;
	}
	close(fd);
	return rc;
}
