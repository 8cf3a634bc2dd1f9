/*
 * Ownership and mode checks for the files hpatch trusts, the way sshd
 * (StrictModes, safe_path) and sudo (sudo_secure_path) check theirs. A user
 * who can write the trust store signs any patch; one who can write the
 * state directory pins or rolls back every sequence; one who can plant a
 * symbolic link makes root append to any file.
 */
#include "common/hp_secure.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Root always; the user we run as for their own files (sshd allows both). */
static bool trusted_owner(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

/*
 * The problem with @st (of @culprit, which @path is or lies under), or
 * none. @sticky_ok: group/other write is harmless on a sticky directory
 * above an entry we own.
 */
static int judge(const struct stat *st, const char *what, const char *path,
		 const char *culprit, bool sticky_ok, enum hp_log_level level)
{
	const char *tail = level == HP_LOG_ERROR ? "" : "; ignored";

	if (!trusted_owner(st->st_uid)) {
		hp_log(level, "%s '%s': '%s' is owned by uid %u, not root%s%s",
		       what, path, culprit, (unsigned int)st->st_uid,
		       geteuid() ? " nor us" : "", tail);
		hp_hint("run 'chown root %s' (and check what it holds)",
			culprit);
		return -HP_E_INSECURE;
	}
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) &&
	    !(sticky_ok && (st->st_mode & S_ISVTX))) {
		hp_log(level,
		       "%s '%s': '%s' is writable by group or others (mode "
		       "%04o)%s",
		       what, path, culprit, (unsigned int)(st->st_mode & 07777),
		       tail);
		hp_hint("run 'chmod go-w %s' (and check what it holds)",
			culprit);
		return -HP_E_INSECURE;
	}
	return 0;
}

/*
 * A directory found secure is not walked again for HP_SECURE_TTL_US while
 * one stat of it finds the same directory (device, inode) with the same
 * owner and mode: a run over many processes checks its lock and state
 * directories once, not twice per process (a walk is a readlink and a
 * stat per component), and a chmod or a replaced directory is still seen
 * at once. Not seen for up to that long: a change of mode higher up,
 * which only root or the owner could make (the walk found every directory
 * above theirs and writable by nobody else).
 */
#define HP_SECURE_TTL_US 1000000
#define HP_SECURE_SEEN 4

static struct seen_dir {
	char dir[256];
	struct stat st;
	uint64_t until;
} seen[HP_SECURE_SEEN];

static struct seen_dir *seen_find(const char *dir, const struct stat *st)
{
	for (size_t i = 0; i < HP_SECURE_SEEN; i++) {
		struct seen_dir *d = &seen[i];

		if (!strcmp(d->dir, dir) && d->st.st_dev == st->st_dev &&
		    d->st.st_ino == st->st_ino && d->st.st_uid == st->st_uid &&
		    d->st.st_mode == st->st_mode)
			return d;
	}
	return NULL;
}

static void seen_add(const char *dir, const struct stat *st, uint64_t now)
{
	struct seen_dir *oldest = &seen[0];

	if (strlen(dir) >= sizeof(oldest->dir))
		return;
	for (size_t i = 1; i < HP_SECURE_SEEN; i++)
		if (seen[i].until < oldest->until)
			oldest = &seen[i];
	snprintf(oldest->dir, sizeof(oldest->dir), "%s", dir);
	oldest->st = *st;
	oldest->until = now + HP_SECURE_TTL_US;
}

static int walk_dir(const char *dir, const char *what);

int hp_secure_dir(const char *dir, const char *what)
{
	const uint64_t now = hp_now_us();
	const struct seen_dir *d = NULL;
	struct stat st;
	int rc;

	if (stat(dir, &st) < 0)
		return -errno;
	d = seen_find(dir, &st);
	if (d && now < d->until)
		return 0;
	rc = walk_dir(dir, what);
	if (!rc)
		seen_add(dir, &st, now);
	return rc;
}

static int walk_dir(const char *dir, const char *what)
{
	char real[PATH_MAX];
	char *slash = NULL;
	bool leaf = true;

	if (!realpath(dir, real))
		return -errno;
	/* From @dir up to "/": the leaf itself may not be sticky-writable
	 * (anyone could add a file), a directory above may. */
	for (;;) {
		struct stat st;
		int rc;

		if (lstat(real[0] ? real : "/", &st) < 0)
			return -errno;
		if (leaf && !S_ISDIR(st.st_mode))
			return hp_error(-HP_E_INSECURE,
					"%s '%s': not a directory", what, dir);
		rc = judge(&st, what, dir, real[0] ? real : "/", !leaf,
			   HP_LOG_ERROR);
		if (rc || !real[0])
			return rc;
		leaf = false;
		slash = strrchr(real, '/');
		*slash = 0; /* "/a/b" -> "/a" -> "" (the root) */
	}
}

int hp_secure_open(const char *path, int flags, unsigned int mode,
		   const char *what, enum hp_log_level level,
		   bool report_missing)
{
	const char *tail = level == HP_LOG_ERROR ? "" : "; ignored";
	struct stat st;
	int fd, rc;

	fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ELOOP) {
			hp_log(level, "%s '%s': is a symbolic link%s", what,
			       path, tail);
			hp_hint("replace the link with the file itself: a "
				"link lets whoever owns its target choose "
				"the contents");
		} else if (rc != -ENOENT || report_missing) {
			hp_log(level, "%s '%s': %s%s", what, path,
			       hp_strerror(rc), tail);
		}
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		hp_log(level, "%s '%s': %s%s", what, path, hp_strerror(rc),
		       tail);
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		hp_log(level, "%s '%s': not a regular file%s", what, path,
		       tail);
		close(fd);
		return -HP_E_INSECURE;
	}
	rc = judge(&st, what, path, path, false, level);
	if (rc) {
		close(fd);
		return rc;
	}
	/* Back to blocking I/O for the caller's reads and writes. */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}
