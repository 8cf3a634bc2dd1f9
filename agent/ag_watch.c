/*
 * What hpatchd watches with inotify for a dlopen(): the library
 * directories and the files of patched libraries, their events, and a
 * loader followed until it closes the library it maps.
 */
#include "agent/agent.h"
#include "agent/agent_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define HP_STORE_SETTLE_US 20000   /* debounce of store changes */
#define HP_OPEN_SWEEP_US 100000	   /* at most one library sweep per */
#define HP_LOADING_MAX_US 10000000 /* a library held open, looked at for */
#define HP_LOADING_LOOK_MAX 7	   /* ... every 1, 2, 4 ... 128 ms */

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/*
 * Is @name the file name of a library module of a patch to apply? Names
 * of programs do not count: each exec opens its program, and the exec
 * event already brings the process to look at.
 */
static bool is_module_name(const struct ag_daemon *d, const char *name)
{
	if (!strstr(name, ".so"))
		return false;
	for (size_t i = 0; i < d->store.nr; i++)
		for (uint32_t j = 0;
		     d->wanted[i] && j < d->wanted[i]->nr_modules; j++) {
			const char *m = d->wanted[i]->modules[j].name;
			const char *base = m ? strrchr(m, '/') : NULL;

			if (m && !strcmp(base ? base + 1 : m, name))
				return true;
		}
	return false;
}

/*
 * Does @pid hold open a file named as a patch's library module? A loader
 * (ld.so for dlopen) opens the library, maps its segments, then closes
 * it: while it holds it open, the mapping may be partial or not there
 * yet (on a loaded host, long after the open that woke us); once closed,
 * every segment is mapped. So such a process is looked at again until it
 * closes the file (no close event helps: the mapping keeps the file open
 * in the kernel, and inotify says nothing until it is unmapped).
 */
static bool holds_module(const struct ag_daemon *d, pid_t pid)
{
	char path[64], fd_path[64 + sizeof(((struct dirent *)0)->d_name)];
	char link[PATH_MAX];
	struct dirent *de = NULL;
	DIR *dir = NULL;
	bool found = false;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	while (dir && !found && (de = readdir(dir))) {
		const char *base = NULL;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(fd_path, sizeof(fd_path), "%s/%s", path, de->d_name);
		n = readlink(fd_path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		base = strrchr(link, '/');
		found = base && is_module_name(d, base + 1);
	}
	if (dir)
		closedir(dir);
	return found;
}

/* After a library's open woke a sweep: look at @pr again soon while it
 * holds one open (checked before its mappings are read: a close after
 * the check means the mapping read next is whole). */
void ag_follow_loader(struct ag_daemon *d, struct ag_proc *pr, uint64_t now)
{
	if (!d->sweep_fds && !pr->loading_us)
		return;
	if (!holds_module(d, pr->pid)) {
		pr->loading_us = 0;
		pr->loading_looks = 0;
		return;
	}
	if (!pr->loading_us)
		pr->loading_us = now;
	if (now - pr->loading_us < HP_LOADING_MAX_US) {
		ag_schedule(pr, now + (1000ULL << pr->loading_looks));
		if (pr->loading_looks < HP_LOADING_LOOK_MAX)
			pr->loading_looks++;
	}
}

/* Watch @dir/@name for opens, if @name is a library module's. */
static void watch_name(struct ag_daemon *d, const char *dir, const char *name)
{
	char path[PATH_MAX];

	if (!is_module_name(d, name) ||
	    snprintf(path, sizeof(path), "%s/%s", dir, name) >=
		    (int)sizeof(path))
		return;
	if (inotify_add_watch(d->in_fd, path, IN_OPEN) >= 0)
		hp_dbg(HP_DBG_TIMING, "watching '%s'", path);
}

/* Watch the files in @dir named as a library module of a patch. */
static void watch_names_in(struct ag_daemon *d, const char *dir)
{
	for (size_t i = 0; i < d->store.nr; i++)
		for (uint32_t j = 0;
		     d->wanted[i] && j < d->wanted[i]->nr_modules; j++) {
			const char *m = d->wanted[i]->modules[j].name;
			const char *base = m ? strrchr(m, '/') : NULL;

			if (m)
				watch_name(d, dir, base ? base + 1 : m);
		}
}

void ag_watch_names(struct ag_daemon *d)
{
	for (size_t i = 0; i < d->nr_dirs; i++)
		watch_names_in(d, d->dirs[i].path);
}

static struct ag_dir *find_dir(struct ag_daemon *d, int wd)
{
	for (size_t i = 0; i < d->nr_dirs; i++)
		if (d->dirs[i].wd == wd)
			return &d->dirs[i];
	return NULL;
}

static void forget_dir(struct ag_daemon *d, int wd)
{
	struct ag_dir *dir = find_dir(d, wd);

	if (!dir)
		return;
	free(dir->path);
	*dir = d->dirs[--d->nr_dirs];
}

void ag_watch_release(struct ag_daemon *d)
{
	for (size_t i = 0; i < d->nr_dirs; i++)
		free(d->dirs[i].path);
	free(d->dirs);
	d->dirs = NULL;
	d->nr_dirs = 0;
}

/*
 * Watch the files in @dir named as a patch's library module, for a
 * library dlopen()ed for the first time on this host, before any process
 * had it patched (whose file is watched then too); and @dir itself for
 * such files created or moved in (rare), not for every open in it: each
 * process on the host opens its libraries in the default directories.
 */
static void watch_dir(struct ag_daemon *d, const char *dir)
{
	const uint64_t h = ag_hash(0, dir);
	struct ag_dir *grown = NULL;
	int wd;

	for (size_t i = 0; i < HP_ARRAY_SIZE(d->watched); i++)
		if (d->watched[i] == h)
			return;
	/* Remembered even when it failed (no such directory, as ../lib
	 * beside most programs): not tried again at each exec, until the
	 * next full scan forgets them all. */
	d->watched[d->next_watched++ % HP_ARRAY_SIZE(d->watched)] = h;
	wd = inotify_add_watch(d->in_fd, dir,
			       IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
	if (wd < 0) {
		hp_dbg(HP_DBG_TIMING, "watch '%s': %s", dir, strerror(errno));
		return;
	}
	if (find_dir(d, wd))
		return; /* its files are watched already */
	grown = realloc(d->dirs, (d->nr_dirs + 1) * sizeof(*grown));
	if (!grown)
		return;
	d->dirs = grown;
	d->dirs[d->nr_dirs] = (struct ag_dir){ .wd = wd, .path = strdup(dir) };
	if (!d->dirs[d->nr_dirs].path)
		return;
	watch_names_in(d, d->dirs[d->nr_dirs++].path);
}

/* The default library directories, and those a program's $ORIGIN
 * RUNPATH usually names: beside it, and ../lib. */
void ag_watch_lib_dirs(struct ag_daemon *d, const char *exe)
{
	static const char *const lib_dirs[] = {
		"/lib",
		"/lib64",
		"/usr/lib",
		"/usr/lib64",
		"/usr/local/lib",
		"/lib/x86_64-linux-gnu",
		"/usr/lib/x86_64-linux-gnu",
	};
	char dir[PATH_MAX + 8];
	char *slash = NULL;

	if (!exe) {
		for (size_t i = 0; i < HP_ARRAY_SIZE(lib_dirs); i++)
			watch_dir(d, lib_dirs[i]);
		return;
	}
	snprintf(dir, sizeof(dir), "%s", exe);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return;
	*slash = 0;
	watch_dir(d, dir);
	snprintf(slash, sizeof(dir) - (size_t)(slash - dir), "/../lib");
	watch_dir(d, dir);
}

/* Watch a patched library's file: its opens are dlopen()s to look at
 * (not the program @exe: its opens are execs, which have their event). */
void ag_watch_modules(struct ag_daemon *d, const char *modules, const char *exe)
{
	char buf[sizeof(((struct hp_rt_result *)0)->module)], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", modules);
	for (char *m = strtok_r(buf, ",", &save); m;
	     m = strtok_r(NULL, ",", &save)) {
		while (*m == ' ')
			m++;
		if (*m == '/' && (!exe || strcmp(m, exe)) &&
		    inotify_add_watch(d->in_fd, m, IN_OPEN) < 0)
			hp_dbg(HP_DBG_PTRACE, "watch '%s': %s", m,
			       strerror(errno));
	}
}

void ag_on_inotify(struct ag_daemon *d, uint64_t now)
{
	char buf[4096]
		__attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n = (ssize_t)sizeof(buf);

	/* Until a read leaves room for another event: the queue was empty
	 * then (no read for EAGAIN; and opens that keep coming, faster
	 * than one event per read, never hold the loop here). */
	while (n > (ssize_t)(sizeof(buf) - sizeof(struct inotify_event) -
			     NAME_MAX - 1) &&
	       (n = read(d->in_fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (void *)p;

			/* A watch gone (its directory removed): any may be
			 * added again. */
			if (ev->mask & IN_IGNORED) {
				memset(d->watched, 0, sizeof(d->watched));
				forget_dir(d, ev->wd);
			}
			/* A library file new in a directory watched. */
			if ((ev->mask & (IN_CREATE | IN_MOVED_TO)) && ev->len &&
			    ev->wd != d->store_wd && find_dir(d, ev->wd))
				watch_name(d, find_dir(d, ev->wd)->path,
					   ev->name);

			if (ev->wd == d->store_wd) {
				/* Only patches and marks: not the lock, not
				 * an install's temporary file. */
				if (ev->len &&
				    hp_store_is_entry_name(ev->name) &&
				    !d->store_due_us)
					d->store_due_us =
						now + HP_STORE_SETTLE_US;
			} else if ((ev->mask & IN_OPEN) &&
				   !(ev->mask & IN_ISDIR) &&
				   (!ev->len || is_module_name(d, ev->name))) {
				/* A patched library opened (its own watch,
				 * patched or named as a module in a library
				 * directory): a dlopen, or a program starting
				 * (its exec rescans cover that). A sweep soon, at most
				 * one per interval: an open meanwhile waits
				 * for the next, it is never dropped. */
				if (!d->sweep_due_us)
					d->sweep_due_us = max_u64(
						now + 2000,
						d->last_sweep_us +
							HP_OPEN_SWEEP_US);
			}
			p += sizeof(*ev) + ev->len;
		}
	}
}
