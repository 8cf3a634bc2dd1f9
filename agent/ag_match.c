/*
 * Which installed patches a process maps the build of, cheaply: hpatchd
 * asks this at every exec on the host, most of them of programs no patch
 * is for. The runtime's hp_rt_match reads each mapped file's ELF header,
 * program headers and build-id note from the process's memory (three
 * reads of /proc/PID/mem per file, every time). Here the process's maps
 * are read once, and what each mapped file's headers say is cached, read
 * once from the file itself.
 *
 * A cached file is known by the device and inode its mappings show, and
 * watched (inotify, an instance of its own): a write, a change of its
 * attributes (ctime) or its removal drops it. The watch's events are read
 * after the process's maps and before the cache is asked: whatever was
 * done to a file before the process mapped it is known by then, and a
 * process's look costs the maps and one read of the events, no system
 * call per file. (While a watch holds it, a removed file's inode number
 * is not given to another before its removal's event is queued.)
 * A file that cannot be watched (no watch left, a file system whose
 * inodes stat() shows on another device than the mappings, such as
 * overlayfs) is known as before by stat() of its path at each look:
 * (device, inode, size, mtime, ctime).
 *
 * When the path no longer names the mapped inode (a file replaced or
 * deleted since it was mapped) the answer is "unknown" and the caller
 * asks the runtime, which reads the process's memory. Each apply checks
 * the build-id and every function's bytes in memory again anyway.
 *
 * Only what the file says is a verdict. A file that cannot be opened or
 * read now (a lease: EWOULDBLOCK; EMFILE, ENFILE, ENOMEM, EIO) is not
 * cached: "unknown" for this look, the file tried again at the next. One
 * hpatchd may not read (EACCES, EPERM: a 0700 program of another user
 * where hpatchd runs without CAP_DAC_OVERRIDE, or an LSM's refusal) is
 * cached as "unknown" until it changes: the memory is asked, never an
 * open per look in vain.
 */
#include "agent/agent_int.h"
#include "common/hp_err.h"
#include "common/hp_util.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define AG_FILES_MAX 4096      /* cached files; then the cache restarts */
#define AG_MAPS_MAX (4u << 20) /* bytes of /proc/PID/maps read at most */
/* What drops a watched file from the cache. */
#define AG_FILE_EVENTS (IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF)

/* What a mapped file's ELF headers say, as ld.so would load it. */
struct ag_file {
	dev_t dev;
	ino_t ino; /* 0: dropped */
	int wd;	   /* its watch, -1: none (stat() at each look) */
	off_t size;
	struct timespec mtime, ctime;
	bool elf;	 /* an ELF image with a build-id */
	bool unreadable; /* not ours to read (EACCES): ask the memory */
	uint8_t build_id[HP_BUILD_ID_MAX];
	uint32_t build_id_len;
	uint64_t first_load; /* page of the PT_LOAD at file offset 0 */
	uint64_t text_vaddr; /* page of its first executable PT_LOAD */
	uint64_t text_off;   /* ... and its file offset */
};

static struct ag_file *files;
static size_t nr_files;
static int watch_fd = -1; /* the files' inotify instance; -1: none yet */

void ag_match_reset(void)
{
	free(files);
	files = NULL;
	nr_files = 0;
	if (watch_fd >= 0)
		close(watch_fd); /* and every watch with it */
	watch_fd = -1;
}

/* The cache's file changed or went: read again at its next look. */
static void drop_watched(int wd, bool removed)
{
	for (size_t i = 0; i < nr_files; i++) {
		if (files[i].wd != wd)
			continue;
		files[i].ino = 0;
		files[i].wd = -1;
		if (!removed)
			inotify_rm_watch(watch_fd, wd);
	}
}

/* Read what the watches say: every change queued so far. */
static void read_watch(void)
{
	char buf[4096]
		__attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	while (watch_fd >= 0 && (n = read(watch_fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;

			if (ev->mask & IN_Q_OVERFLOW) {
				ag_match_reset(); /* which file is not known */
				return;
			}
			drop_watched(ev->wd,
				     ev->mask & (IN_DELETE_SELF | IN_IGNORED));
			p += sizeof(*ev) + ev->len;
		}
	}
}

/* Watch the file open as @fd. Return: its watch, or -1. */
static int watch(int fd)
{
	char self[64];

	if (watch_fd < 0)
		watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (watch_fd < 0)
		return -1;
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	return inotify_add_watch(watch_fd, self, AG_FILE_EVENTS);
}

static bool same_file(const struct ag_file *f, const struct stat *st)
{
	return f->dev == st->st_dev && f->ino == st->st_ino &&
	       f->size == st->st_size &&
	       !memcmp(&f->mtime, &st->st_mtim, sizeof(f->mtime)) &&
	       !memcmp(&f->ctime, &st->st_ctim, sizeof(f->ctime));
}

/* @len bytes at @off of open file @fd. Return: 1, 0 when the file ends
 * before (or @off is beyond any file), -errno. */
static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t n;

	if (off > INT64_MAX)
		return 0;
	do
		n = pread(fd, buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len;
}

/* The build-id note among @ph's PT_NOTEs of open file @fd. Return: 0
 * (f->elf: found), -errno. */
static int read_build_id(int fd, const Elf64_Phdr *ph, int nr,
			 struct ag_file *f)
{
	for (int i = 0; i < nr && !f->elf; i++) {
		uint8_t notes[1024];
		const size_t len = ph[i].p_filesz < sizeof(notes)
					   ? ph[i].p_filesz
					   : sizeof(notes);
		int rc = 0;

		if (ph[i].p_type != PT_NOTE)
			continue;
		rc = read_at(fd, notes, len, ph[i].p_offset);
		if (rc < 0)
			return rc;
		if (!rc)
			continue;
		f->build_id_len = hp_note_build_id(notes, len, f->build_id,
						   sizeof(f->build_id));
		f->elf = f->build_id_len > 0;
	}
	return 0;
}

/* What open file @fd's ELF headers say, into @f. Return: 0, -errno. */
static int read_headers(int fd, struct ag_file *f)
{
	Elf64_Phdr ph[64];
	Elf64_Ehdr eh;
	bool first = false, text = false;
	int rc = read_at(fd, &eh, sizeof(eh), 0);

	if (rc <= 0)
		return rc; /* 0: too short, not an image */
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || !eh.e_phnum ||
	    eh.e_phnum > HP_ARRAY_SIZE(ph))
		return 0;
	rc = read_at(fd, ph, eh.e_phnum * sizeof(ph[0]), eh.e_phoff);
	if (rc <= 0)
		return rc;
	for (int i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		if (ph[i].p_offset == 0) {
			f->first_load = ph[i].p_vaddr & ~4095ULL;
			first = true;
		}
		if ((ph[i].p_flags & PF_X) && !text) {
			f->text_vaddr = ph[i].p_vaddr & ~4095ULL;
			f->text_off = ph[i].p_offset & ~4095ULL;
			text = true;
		}
	}
	return first && text ? read_build_id(fd, ph, eh.e_phnum, f) : 0;
}

/*
 * Read @path's ELF headers into @f (f->elf false: not an image of ours;
 * f->unreadable: not ours to read), if it is still the file @f names;
 * and with @watched, watch it first: a change meanwhile drops what was
 * read. Return: 0; -ESTALE when the path names another file now; another
 * -errno when the file cannot be read now, which says nothing of it.
 */
static int read_file(const char *path, struct ag_file *f, bool watched)
{
	struct stat st = { 0 };
	const int fd = hp_open_regular(path, &st);
	int rc = 0;

	/* Refused by its mode (or an LSM) on an inode stat() showed, as
	 * long as it does not change: the O_PATH open saw it (st). */
	if ((fd == -EACCES || fd == -EPERM) && st.st_ino == f->ino &&
	    st.st_dev == f->dev) {
		f->unreadable = true;
		return 0;
	}
	if (fd < 0)
		return fd;
	if (st.st_dev != f->dev || st.st_ino != f->ino) {
		close(fd);
		return -ESTALE;
	}
	f->wd = watched ? watch(fd) : -1;
	rc = read_headers(fd, f);
	close(fd);
	return rc;
}

/* A new entry of the cache (emptied when full), or NULL. */
static struct ag_file *new_file(void)
{
	struct ag_file *grown = NULL;

	if (nr_files == AG_FILES_MAX)
		ag_match_reset(); /* a host with more: start again */
	grown = files ? files : malloc(AG_FILES_MAX * sizeof(*grown));
	if (!grown)
		return NULL;
	files = grown;
	return &files[nr_files++];
}

/* The cached identity of the file mapped as @m (its path @path): NULL
 * when the path names another file now (replaced, deleted), or the file
 * cannot be read now (a lease, no fd left): nothing is cached. */
static const struct ag_file *lookup(const char *path,
				    const struct ag_maps_line *m)
{
	struct stat st;
	struct ag_file *f = NULL;

	for (size_t i = 0; i < nr_files; i++)
		if (files[i].wd >= 0 && files[i].ino == m->ino &&
		    files[i].dev == m->dev)
			return &files[i];
	if (stat(path, &st) < 0 || st.st_ino != m->ino)
		return NULL;
	for (size_t i = 0; i < nr_files; i++)
		if (files[i].wd < 0 && same_file(&files[i], &st))
			return &files[i];
	f = new_file();
	if (!f)
		return NULL;
	*f = (struct ag_file){ .dev = st.st_dev,
			       .ino = st.st_ino,
			       .wd = -1,
			       .size = st.st_size,
			       .mtime = st.st_mtim,
			       .ctime = st.st_ctim };
	if (!S_ISREG(st.st_mode))
		return f; /* a device: no image of ours */
	/* Watched only where its mappings show the device stat() shows. */
	if (read_file(path, f, st.st_dev == m->dev) < 0) {
		if (f->wd >= 0)
			inotify_rm_watch(watch_fd, f->wd);
		nr_files--;
		return NULL;
	}
	return f;
}

int ag_maps_parse_line(const char *line, struct ag_maps_line *m)
{
	unsigned long long start, end, off, major, minor, ino;
	const char *p = line, *perms = NULL;

	*m = (struct ag_maps_line){ 0 };
	p = hp_parse_num(p, 16, '-', &start);
	p = p ? hp_parse_num(p, 16, ' ', &end) : NULL;
	if (!p || strnlen(p, 5) < 5 || p[4] != ' ')
		return -EINVAL;
	perms = p;
	p = hp_parse_num(p + 5, 16, ' ', &off);
	p = p ? hp_parse_num(p, 16, ':', &major) : NULL; /* the device */
	p = p ? hp_parse_num(p, 16, ' ', &minor) : NULL;
	p = p ? hp_parse_num(p, 10, 0, &ino) : NULL;
	if (!p || major > 0xffffffffu || minor > 0xffffffffu)
		return -EINVAL;
	if (p[-1] == '\n')
		p--; /* no path: the line ends there */
	*m = (struct ag_maps_line){ .start = start,
				    .end = end,
				    .offset = off,
				    .dev = makedev(major, minor),
				    .ino = ino,
				    .readable = perms[0] == 'r',
				    .exec = perms[2] == 'x',
				    .shared = perms[3] == 's' };
	while (*p == ' ')
		p++;
	m->path = p;
	m->path_len = strcspn(p, "\n");
	return 0;
}

/* A maps file, whole and NUL-terminated, in *@out (malloc'd). Return: 0;
 * -HP_E_GONE: none, or empty; -errno when it cannot be read now (EMFILE),
 * or not whole (over AG_MAPS_MAX, no memory), which says nothing. */
static int read_maps_at(const char *path, char **out)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, rc = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH ? -HP_E_GONE : -errno;
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			char *grown =
				cap < AG_MAPS_MAX
					? realloc(buf, cap ? 2 * cap : 16384)
					: NULL;

			/* Cut short, a module past the cut would be
			 * missed: the memory is asked instead. */
			if (!grown) {
				rc = -EAGAIN;
				break;
			}
			buf = grown;
			cap = cap ? 2 * cap : 16384;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = errno == ESRCH ? -HP_E_GONE : -errno;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (rc || !len) {
		free(buf);
		return rc ? rc : -HP_E_GONE;
	}
	buf[len] = 0;
	*out = buf;
	return 0;
}

/* /proc/PID/maps as read_maps_at; empty (a kernel thread, a zombie, or a
 * leader gone while its threads run on: pthread_exit in main), a live
 * thread's. */
static int read_maps(pid_t pid, char **out)
{
	char path[64];
	int rc;
	pid_t tid;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	rc = read_maps_at(path, out);
	if (rc != -HP_E_GONE)
		return rc;
	tid = hp_proc_live_tid(pid);
	if (tid == pid)
		return rc;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/maps", (int)pid,
		 (int)tid);
	return read_maps_at(path, out);
}

/* Is @f's text loaded where its header @hdr says (not merely the file
 * mapped: a reader's mmap, gdb's)? As the runtime's text_loaded. */
static bool text_loaded(const struct ag_maps_line *maps, size_t nr,
			const struct ag_maps_line *hdr, const struct ag_file *f)
{
	const uint64_t text = hdr->start - f->first_load + f->text_vaddr;

	for (size_t i = 0; i < nr; i++)
		if (maps[i].start == text && maps[i].exec && !maps[i].shared &&
		    maps[i].offset == f->text_off && maps[i].ino == hdr->ino &&
		    maps[i].path_len == hdr->path_len &&
		    !memcmp(maps[i].path, hdr->path, hdr->path_len))
			return true;
	return false;
}

/* Has the file of @hdr an executable mapping? Only such a file can be a
 * loaded module: the rest (locale archives, data files the program maps)
 * costs no system call. */
static bool has_exec_mapping(const struct ag_maps_line *maps, size_t nr,
			     const struct ag_maps_line *hdr)
{
	for (size_t i = 0; i < nr; i++)
		if (maps[i].exec && maps[i].ino == hdr->ino &&
		    maps[i].path_len == hdr->path_len &&
		    !memcmp(maps[i].path, hdr->path, hdr->path_len))
			return true;
	return false;
}

/* Count in @mapped[i] the modules of @patches[i] that @f is, loaded. */
static void count_modules(const struct hp_patch *const *patches, size_t nr,
			  const struct ag_file *f,
			  const struct ag_maps_line *maps, size_t nr_maps,
			  const struct ag_maps_line *hdr, uint32_t *mapped)
{
	for (size_t i = 0; i < nr; i++)
		for (uint32_t j = 0; patches[i] && j < patches[i]->nr_modules;
		     j++) {
			const struct hp_module *m = &patches[i]->modules[j];

			if (m->build_id_len == f->build_id_len &&
			    !memcmp(m->build_id, f->build_id,
				    f->build_id_len) &&
			    text_loaded(maps, nr_maps, hdr, f))
				mapped[i]++;
		}
}

/* The lines of @text parsed (malloc'd). Return: their number, -ENOMEM. */
static ssize_t parse_maps(const char *text, struct ag_maps_line **out)
{
	size_t nr = 0, cap = 1;

	for (const char *c = text; *c; c++)
		cap += *c == '\n';
	*out = malloc(cap * sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (const char *l = text; l && *l;) {
		const char *next = strchr(l, '\n');

		if (!ag_maps_parse_line(l, &(*out)[nr]))
			nr++;
		l = next ? next + 1 : NULL;
	}
	return (ssize_t)nr;
}

int ag_match(pid_t pid, const struct hp_patch *const *patches, size_t nr,
	     uint32_t *mapped, size_t *nr_hit)
{
	char *text = NULL;
	struct ag_maps_line *maps = NULL;
	const int read_rc = read_maps(pid, &text);
	const ssize_t nr_maps = text ? parse_maps(text, &maps) : read_rc;
	/* A map not read now (EMFILE) says nothing: the memory is asked. */
	int rc = nr_maps >= 0		 ? 0
		 : nr_maps == -HP_E_GONE ? -HP_E_GONE
					 : -EAGAIN;

	/* After the maps: every change to a file made before the process
	 * mapped it is queued by now. */
	read_watch();
	*nr_hit = 0;
	memset(mapped, 0, nr * sizeof(*mapped));
	for (ssize_t i = 0; !rc && i < nr_maps; i++) {
		const struct ag_maps_line *m = &maps[i];
		const struct ag_file *f = NULL;
		char path[PATH_MAX];

		if (m->offset || !m->ino || !m->readable || m->path[0] != '/' ||
		    m->path_len >= sizeof(path) ||
		    !has_exec_mapping(maps, (size_t)nr_maps, m))
			continue;
		memcpy(path, m->path, m->path_len);
		path[m->path_len] = 0;
		f = lookup(path, m);
		if (!f || f->unreadable)
			rc = -EAGAIN; /* the process's memory knows */
		else if (f->elf)
			count_modules(patches, nr, f, maps, (size_t)nr_maps, m,
				      mapped);
	}
	free(maps);
	free(text);
	for (size_t i = 0; !rc && i < nr; i++) {
		/* A module loaded twice (dlmopen) counts once, as the
		 * runtime counts it. */
		if (patches[i] && mapped[i] > patches[i]->nr_modules)
			mapped[i] = patches[i]->nr_modules;
		*nr_hit += mapped[i] > 0;
	}
	return rc;
}
