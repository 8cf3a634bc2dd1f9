/*
 * Host state for anti-rollback: per target build-id, the highest patch
 * sequence number ever applied on this host since boot, one small file per
 * build-id under the state directory (default /run/hpatch, a tmpfs: it
 * resets with the processes it describes). Reverting does not lower it: a
 * revert is not permission to apply an older patch. The directory and its
 * files must be root's alone (common/hp_secure.h), else nothing applies.
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
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static const char *state_dir(const char *dir)
{
	return dir && *dir ? dir : HP_STATE_DIR_DEFAULT;
}

static void state_path(char *out, size_t cap, const char *dir,
		       const char *build_id_hex)
{
	snprintf(out, cap, "%s/%s.seq", state_dir(dir), build_id_hex);
}

/*
 * Whoever can write the state decides every later apply: pin a build's
 * sequence to the maximum (every patch refused) or lower it (rollback).
 * Return: 0, -ENOENT (nothing recorded yet), or an error (reported).
 */
static int check_dir(const char *dir)
{
	int rc = hp_secure_dir(state_dir(dir), "state directory");

	if (rc && rc != -ENOENT && rc != -HP_E_INSECURE)
		return hp_error_rc(rc, "state directory '%s'", state_dir(dir));
	return rc;
}

/* Bytes and inodes an apply's records need, with a margin: an audit line
 * is under 2 KiB, a state file one block, written through a temporary. */
#define HP_ROOM_BYTES (64u << 10)
#define HP_ROOM_INODES 16

/*
 * Room for the records of an apply on the file system of @fd: else the
 * audit line or the anti-rollback state would be lost after the process
 * was patched. Return: 0, or -ENOSPC reported naming @what and @path.
 */
static int room(int fd, const char *what, const char *path)
{
	struct statvfs sv;
	uint64_t bytes;

	if (fstatvfs(fd, &sv) < 0)
		return 0; /* cannot tell: the write will say */
	bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (bytes >= HP_ROOM_BYTES &&
	    (!sv.f_files || sv.f_favail >= HP_ROOM_INODES))
		return 0;
	hp_error(-ENOSPC,
		 "%s '%s': no space left for the record of an apply (%" PRIu64
		 " bytes, %llu inodes free); nothing patched",
		 what, path, bytes, (unsigned long long)sv.f_favail);
	hp_hint("free some space there: every apply is recorded before it "
		"is made");
	return -ENOSPC;
}

int hp_rt_records_ready(const struct hp_rt_audit *a, const char *dir)
{
	int fd, rc;

	if (a->fd >= 0) {
		rc = room(a->fd, "audit log", a->path);
		if (rc)
			return rc;
	}
	if (mkdir(state_dir(dir), 0700) < 0 && errno != EEXIST)
		return hp_error_rc(-errno, "state directory '%s'",
				   state_dir(dir));
	rc = check_dir(dir);
	if (rc)
		return rc == -ENOENT ? hp_error_rc(rc, "state directory '%s'",
						   state_dir(dir))
				     : rc;
	fd = open(state_dir(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return hp_error_rc(-errno, "state directory '%s'",
				   state_dir(dir));
	rc = room(fd, "state directory", state_dir(dir));
	close(fd);
	return rc;
}

/*
 * The state file read last, and its number: a run over many processes of
 * one build reads the same file before and after each. While the path
 * still names that very file (a record renames a new one over it: a new
 * inode; the directory is checked as ever), one lstat replaces the open,
 * checks and read.
 */
static struct {
	char path[512];
	struct stat st;
	uint64_t seq;
} last_read;

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       a->st_mode == b->st_mode && a->st_uid == b->st_uid &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	       a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

int hp_rt_state_sequence(const char *dir, const char *build_id_hex,
			 uint64_t *seq)
{
	char path[512], text[32];
	char *end = NULL;
	struct stat st;
	ssize_t n;
	int fd, rc;

	*seq = 0;
	rc = check_dir(dir);
	if (rc)
		return rc == -ENOENT ? 0 : rc;
	state_path(path, sizeof(path), dir, build_id_hex);
	if (!strcmp(path, last_read.path) && !lstat(path, &st) &&
	    same_file(&st, &last_read.st)) {
		*seq = last_read.seq;
		return 0;
	}
	last_read.path[0] = 0;
	fd = hp_secure_open(path, O_RDONLY, 0, "state file", HP_LOG_ERROR,
			    false);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	n = read(fd, text, sizeof(text) - 1);
	rc = n < 0 ? -errno : 0;
	if (!rc && fstat(fd, &st))
		st.st_ino = 0; /* (never the same again) */
	close(fd);
	if (rc)
		return hp_error_rc(rc, "state file '%s'", path);
	text[n] = 0;
	errno = 0;
	*seq = strtoull(text, &end, 10);
	if (end == text || (*end && *end != '\n') || errno)
		return hp_error(-HP_E_INSECURE,
				"state file '%s': not a sequence number", path);
	if (st.st_ino) {
		snprintf(last_read.path, sizeof(last_read.path), "%s", path);
		last_read.st = st;
		last_read.seq = *seq;
	}
	return 0;
}

int hp_rt_state_record(const char *dir, const char *build_id_hex,
		       uint64_t sequence)
{
	char path[512], text[32];
	uint64_t seen = 0;
	int rc;

	/* Recorded already (each process of a run after the first): the
	 * directory is there, and was checked. */
	rc = hp_rt_state_sequence(dir, build_id_hex, &seen);
	if (rc || seen >= sequence)
		return rc;
	/* Made if missing, then checked as it is now. */
	if (mkdir(state_dir(dir), 0700) < 0 && errno != EEXIST)
		return hp_error_rc(-errno, "state directory '%s'",
				   state_dir(dir));
	rc = hp_rt_state_sequence(dir, build_id_hex, &seen);
	if (rc || seen >= sequence)
		return rc;
	state_path(path, sizeof(path), dir, build_id_hex);
	snprintf(text, sizeof(text), "%" PRIu64 "\n", sequence);
	/* A new file renamed over the old: never written through a link. */
	rc = hp_write_file(path, text, strlen(text), 0600, 0);
	if (rc)
		return hp_error_rc(rc, "state file '%s'", path);
	return 0;
}
