/*
 * The patch store: verified patch files in one directory, one per patch
 * id, written by `hpatch install` through a temporary file and rename() so
 * that hpatchd, watching the directory, never reads half a file.
 */
#include "agent/agent.h"
#include "agent/agent_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"
#include "signing/signing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define HP_PATCH_FILE_MAX (256u << 20)
#define HP_PATCH_SUFFIX ".hpatch"
#define HP_REMOVED_SUFFIX ".uninstalled"

/* @path's patch, verified and parsed in *@out, whatever its expiry. */
static int read_verified(const char *path, const char *trust_dir,
			 unsigned int flags, struct hp_patch **out)
{
	struct hp_trust trust = { 0 };
	uint8_t *data = NULL;
	size_t len = 0;
	int rc;

	rc = hp_read_file(path, HP_PATCH_FILE_MAX, &data, &len);
	if (rc == -EINVAL)
		return hp_error(rc, "'%s': not a regular file", path);
	if (rc)
		return hp_error_rc(rc, "'%s'", path);
	rc = hp_trust_load(&trust, trust_dir);
	if (!rc)
		rc = hp_pack_read(path, data, len, &trust, flags, out);
	hp_trust_release(&trust);
	free(data);
	return rc;
}

/* Is @p (of @path) past its expiry? Return: -HP_E_EXPIRED, said; or 0. */
static int check_expiry(const char *path, const struct hp_patch *p)
{
	if (!hp_expired(p->expires))
		return 0;
	return hp_error(-HP_E_EXPIRED,
			"'%s': patch expired at %" PRIu64 " (unix time)", path,
			p->expires);
}

int hp_agent_read_patch(const char *path, const char *trust_dir,
			unsigned int flags, struct hp_patch **out)
{
	int rc = read_verified(path, trust_dir, flags, out);

	if (!rc && (rc = check_expiry(path, *out))) {
		hp_patch_free(*out);
		*out = NULL;
	}
	return rc;
}

/* A patch id names a file in the store: no '/', no leading '.'. */
static bool is_valid_id(const char *id)
{
	if (!*id || *id == '.' || strlen(id) >= HP_PATCH_ID_MAX)
		return false;
	for (const char *c = id; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || strchr("._+@-", *c)))
			return false;
	return true;
}

static bool has_suffix(const char *name, const char *suffix)
{
	const size_t n = strlen(name), m = strlen(suffix);

	return n > m && !strcmp(name + n - m, suffix);
}

static bool shares_build(const struct hp_patch *a, const struct hp_patch *b)
{
	for (uint32_t i = 0; i < a->nr_modules; i++)
		for (uint32_t j = 0; j < b->nr_modules; j++)
			if (a->modules[i].build_id_len ==
				    b->modules[j].build_id_len &&
			    !memcmp(a->modules[i].build_id,
				    b->modules[j].build_id,
				    a->modules[i].build_id_len))
				return true;
	return false;
}

/* Is @a newer than @b for a build they share (ties: by id, so exactly
 * one of two equal sequences wins)? */
static bool is_newer(const struct hp_store_entry *a,
		     const struct hp_store_entry *b)
{
	const struct hp_patch *pa = a->p ?: a->expired,
			      *pb = b->p ?: b->expired;

	if (pa->sequence != pb->sequence)
		return pa->sequence > pb->sequence;
	return strcmp(a->id, b->id) > 0;
}

/* A patch past its expiry still supersedes the older ones of its builds:
 * wanted again, each would be tried where it has its place, and refused
 * as a rollback (the host's record), then its fallback run, for every
 * process of the build. */
static void mark_superseded(struct hp_store *s)
{
	for (size_t i = 0; i < s->nr; i++)
		for (size_t j = 0; s->entries[i].p && j < s->nr; j++) {
			const struct hp_patch *newer =
				s->entries[j].p ?: s->entries[j].expired;

			if (j != i && newer &&
			    shares_build(s->entries[i].p, newer) &&
			    is_newer(&s->entries[j], &s->entries[i]))
				s->entries[i].superseded = true;
		}
}

static int add_entry(struct hp_store *s, const char *name,
		     const char *trust_dir)
{
	struct hp_store_entry *e = NULL;
	struct hp_store_entry *grown =
		realloc(s->entries, (s->nr + 1) * sizeof(*grown));

	if (!grown)
		return -ENOMEM;
	s->entries = grown;
	e = &s->entries[s->nr++];
	*e = (struct hp_store_entry){ 0 };
	snprintf(e->id, sizeof(e->id), "%.*s",
		 (int)(strlen(name) - strlen(HP_PATCH_SUFFIX)), name);
	snprintf(e->path, sizeof(e->path), "%s/%s", s->dir, name);
	e->rc = read_verified(e->path, trust_dir, 0, &e->p);
	if (!e->rc && strcmp(e->p->id, e->id)) {
		/* Renamed by hand: the file name must say what it holds. */
		e->rc = hp_error(-HP_E_BADFORMAT,
				 "'%s': holds patch '%s', not '%s'", e->path,
				 e->p->id, e->id);
		hp_patch_free(e->p);
		e->p = NULL;
	}
	if (e->p && (e->rc = check_expiry(e->path, e->p))) {
		e->expired = e->p; /* applied no more; still the newer */
		e->p = NULL;
	}
	if (e->p && e->p->info.is_signed)
		hp_sign_key_id_str(e->key_id, e->p->info.key_id);
	return 0;
}

static int add_removed(struct hp_store *s, const char *name)
{
	char(*grown)[HP_PATCH_ID_MAX] = realloc(
		s->uninstalled, (s->nr_uninstalled + 1) * sizeof(*grown));

	if (!grown)
		return -ENOMEM;
	s->uninstalled = grown;
	snprintf(s->uninstalled[s->nr_uninstalled++], HP_PATCH_ID_MAX, "%.*s",
		 (int)(strlen(name) - strlen(HP_REMOVED_SUFFIX)), name);
	return 0;
}

static int by_id(const void *a, const void *b)
{
	return strcmp(((const struct hp_store_entry *)a)->id,
		      ((const struct hp_store_entry *)b)->id);
}

int hp_store_load(struct hp_store *s, const char *dir, const char *trust_dir)
{
	DIR *d = NULL;
	struct dirent *de = NULL;
	int rc = 0;

	*s = (struct hp_store){ 0 };
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	d = opendir(dir);
	if (!d && errno == ENOENT)
		return 0;
	if (!d)
		return hp_error_rc(-errno, "store '%s'", dir);
	while (!rc && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (has_suffix(de->d_name, HP_PATCH_SUFFIX))
			rc = add_entry(s, de->d_name, trust_dir);
		else if (has_suffix(de->d_name, HP_REMOVED_SUFFIX))
			rc = add_removed(s, de->d_name);
	}
	closedir(d);
	if (rc) {
		hp_store_release(s);
		return hp_error_rc(rc, "store '%s'", dir);
	}
	if (s->nr)
		qsort(s->entries, s->nr, sizeof(*s->entries), by_id);
	mark_superseded(s);
	return 0;
}

void hp_store_release(struct hp_store *s)
{
	for (size_t i = 0; i < s->nr; i++) {
		hp_patch_free(s->entries[i].p);
		hp_patch_free(s->entries[i].expired);
	}
	free(s->entries);
	free(s->uninstalled);
	*s = (struct hp_store){ 0 };
}

const struct hp_store_entry *hp_store_find(const struct hp_store *s,
					   const char *id)
{
	for (size_t i = 0; i < s->nr; i++)
		if (!strcmp(s->entries[i].id, id))
			return &s->entries[i];
	return NULL;
}

bool hp_store_is_uninstalled(const struct hp_store *s, const char *id)
{
	for (size_t i = 0; i < s->nr_uninstalled; i++)
		if (!strcmp(s->uninstalled[i], id))
			return !hp_store_find(s, id);
	return false;
}

static int make_store_dir(const char *dir)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		int rc = hp_error_rc(-errno, "store '%s'", dir);

		hp_hint("create it, or choose another with --store DIR");
		return rc;
	}
	return 0;
}

/* The installed patch that makes @p a downgrade, if any. */
static const struct hp_store_entry *newer_installed(const struct hp_store *s,
						    const struct hp_patch *p)
{
	for (size_t i = 0; i < s->nr; i++)
		if (s->entries[i].p && strcmp(s->entries[i].id, p->id) &&
		    s->entries[i].p->sequence > p->sequence &&
		    shares_build(s->entries[i].p, p))
			return &s->entries[i];
	return NULL;
}

int hp_store_install(const char *dir, const char *file, const char *trust_dir,
		     unsigned int flags, char *id)
{
	const struct hp_store_entry *old = NULL;
	struct hp_store s = { 0 };
	struct hp_patch *p = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	char path[PATH_MAX];
	int rc;

	rc = hp_agent_read_patch(file, trust_dir, 0, &p);
	if (rc)
		return rc;
	snprintf(id, HP_PATCH_ID_MAX, "%s", p->id);
	if (!is_valid_id(p->id)) {
		rc = hp_error(-HP_E_BADFORMAT,
			      "'%s': patch id '%s' cannot name a file in the "
			      "store",
			      file, p->id);
		hp_hint("ids use letters, digits and ._+@- (hpdiff --id)");
		goto out;
	}
	rc = make_store_dir(dir);
	if (!rc)
		rc = hp_store_load(&s, dir, trust_dir);
	if (rc)
		goto out;
	old = hp_store_find(&s, p->id);
	if (old && old->p && old->p->sequence == p->sequence &&
	    old->p->info.file_size == p->info.file_size) {
		rc = -HP_E_APPLIED; /* the caller says it */
		goto out;
	}
	if (old && old->p && old->p->sequence > p->sequence &&
	    !(flags & HP_STORE_ALLOW_DOWNGRADE)) {
		rc = hp_error(-HP_E_DOWNGRADE,
			      "'%s': patch '%s' sequence %" PRIu64
			      " is older than the installed one (%" PRIu64 ")",
			      file, p->id, p->sequence, old->p->sequence);
		hp_hint("use --allow-downgrade to install it on purpose");
		goto out;
	}
	old = newer_installed(&s, p);
	if (old && !(flags & HP_STORE_ALLOW_DOWNGRADE)) {
		rc = hp_error(-HP_E_DOWNGRADE,
			      "'%s': patch '%s' (sequence %" PRIu64
			      ") is older than installed '%s' (%" PRIu64
			      ") for the same build",
			      file, p->id, p->sequence, old->id,
			      old->p->sequence);
		hp_hint("use --allow-downgrade to install it on purpose");
		goto out;
	}
	/* Re-read: what is verified is exactly what is stored. */
	rc = hp_read_file(file, HP_PATCH_FILE_MAX, &data, &len);
	if (rc) {
		hp_error_rc(rc, "'%s'", file);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s" HP_PATCH_SUFFIX, dir, p->id);
	rc = hp_write_file(path, data, len, 0644, 0);
	if (rc) {
		hp_error_rc(rc, "store: '%s'", path);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s" HP_REMOVED_SUFFIX, dir, p->id);
	if (unlink(path) < 0 && errno != ENOENT)
		hp_warn("store: '%s': %s", path, strerror(errno));
out:
	free(data);
	hp_store_release(&s);
	hp_patch_free(p);
	return rc;
}

int hp_store_uninstall(const char *dir, const char *id)
{
	char path[PATH_MAX], mark[PATH_MAX];
	int rc;

	if (!is_valid_id(id))
		return hp_error(-HP_E_NOTAPPLIED,
				"store '%s': no patch '%s' is installed", dir,
				id);
	snprintf(path, sizeof(path), "%s/%s" HP_PATCH_SUFFIX, dir, id);
	snprintf(mark, sizeof(mark), "%s/%s" HP_REMOVED_SUFFIX, dir, id);
	if (access(path, F_OK) < 0 && errno == ENOENT) {
		rc = hp_error(-HP_E_NOTAPPLIED,
			      "store '%s': no patch '%s' is installed", dir,
			      id);
		hp_hint("'hpatch list --store %s' shows what is installed",
			dir);
		return rc;
	}
	/* The mark first: a crash in between leaves the patch installed
	 * and marked, which the next install or uninstall settles. */
	rc = hp_write_file(mark, id, strlen(id), 0644, 0);
	if (rc)
		return hp_error_rc(rc, "store: '%s'", mark);
	if (unlink(path) < 0)
		return hp_error_rc(-errno, "store: '%s'", path);
	return 0;
}

bool hp_store_is_entry_name(const char *name)
{
	return name[0] != '.' && (has_suffix(name, HP_PATCH_SUFFIX) ||
				  has_suffix(name, HP_REMOVED_SUFFIX));
}

void hp_store_drop_mark(const char *dir, const char *id)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s" HP_REMOVED_SUFFIX, dir, id);
	if (unlink(path) < 0 && errno != ENOENT)
		hp_warn("store: '%s': %s", path, strerror(errno));
}

/* Tries of hp_store_lock() at a lock file replaced under it: each try
 * needs the file removed or renamed over again, which hpatch never does. */
#define HP_STORE_LOCK_TRIES 16

/* Open (and make, with the store, when missing) @path. */
static int open_lock_file(const char *dir, const char *path)
{
	int fd;

	/* Read-only: the close of a file opened for writing would wake
	 * hpatchd's own inotify watch of the store (IN_CLOSE_WRITE) at
	 * every lock it takes. The store is made only when missing:
	 * hpatchd locks it at every pass over the processes due. */
	fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT) {
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return -errno;
		fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
	}
	return fd < 0 ? -errno : fd;
}

/* Is @fd's file the one at @path? Return: 1, 0 (another file, or none),
 * or -errno. */
static int is_file_at(int fd, const char *path)
{
	struct stat held, now;

	if (fstat(fd, &held) < 0)
		return -errno;
	if (stat(path, &now) < 0)
		return errno == ENOENT ? 0 : -errno;
	return held.st_dev == now.st_dev && held.st_ino == now.st_ino;
}

int hp_store_lock(const char *dir, bool try)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/.lock", dir);
	for (int i = 0; i < HP_STORE_LOCK_TRIES; i++) {
		const int fd = open_lock_file(dir, path);
		int rc = 0;

		if (fd < 0)
			return fd;
		while (!rc && flock(fd, LOCK_EX | (try ? LOCK_NB : 0)) < 0)
			rc = errno == EINTR ? 0 : -errno;
		/*
		 * The file may have been removed or renamed over between
		 * the open and the flock (or while we waited): its lock
		 * then keeps out no one, as the others lock the file now at
		 * the path. Only a lock of the file at the path counts.
		 */
		if (!rc)
			rc = is_file_at(fd, path);
		if (rc == 1)
			return fd;
		close(fd);
		if (rc < 0)
			return rc;
	}
	return -EAGAIN;
}

/*
 * Three system calls where hp_store_lock() takes six (open, flock, fstat,
 * stat, and close at the end): the file held open has an inode no other
 * file can be given, so the one at the path is ours while stat() shows
 * its device and inode; else (renamed over, removed) it is closed, and
 * the file at the path taken as hp_store_lock() takes it.
 */
int ag_store_lock(struct ag_store_lock *l, const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/.lock", dir);
	if (l->fd >= 0) {
		while (flock(l->fd, LOCK_EX | LOCK_NB) < 0 && !rc)
			rc = errno == EINTR ? 0 : -errno;
		if (!stat(path, &st) && st.st_dev == l->dev &&
		    st.st_ino == l->ino)
			return rc; /* held by another (busy), or ours */
		/* Another file at the path now: its lock is the one. */
		ag_store_lock_release(l);
	}
	rc = hp_store_lock(dir, true);
	if (rc < 0)
		return rc;
	l->fd = rc;
	if (fstat(l->fd, &st) < 0) {
		rc = -errno;
		ag_store_lock_release(l);
		return rc;
	}
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	return 0;
}

void ag_store_unlock(struct ag_store_lock *l)
{
	if (l->fd >= 0 && flock(l->fd, LOCK_UN) < 0)
		ag_store_lock_release(l); /* (a close lets go too) */
}

void ag_store_lock_release(struct ag_store_lock *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}
