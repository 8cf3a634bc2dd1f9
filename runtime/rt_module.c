/*
 * Which image a process maps, by its GNU build-id: read from the ELF
 * header mapped at each file's first page, for the apply (one process) and
 * for a scan of every process of the host (hp_rt_find_targets), which
 * learns what it found for the next process that maps the same file.
 */
#include "runtime/runtime_int.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_util.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* What the header of an ELF image mapped in a process says of it. */
struct module_id {
	uint8_t id[HP_BUILD_ID_MAX]; /* GNU build-id */
	uint32_t id_len;
	hp_raddr_t bias; /* load bias */
	/* Where its (first) executable segment would be if it were loaded:
	 * at @text, from page offset @text_off of the file. */
	hp_raddr_t text;
	uint64_t text_off;
};

/* A copy of @len bytes of a process's memory read at @at. */
struct mem_copy {
	const uint8_t *bytes;
	hp_raddr_t at;
	size_t len;
};

/*
 * @len bytes at @addr of @proc into @buf: from @page, a copy read
 * before, when they lie in it, else read (no @proc: -EAGAIN).
 */
static int read_in_page(const struct hp_proc *proc, const struct mem_copy *page,
			hp_raddr_t addr, void *buf, size_t len)
{
	if (addr >= page->at && len <= page->len &&
	    addr - page->at <= page->len - len) {
		memcpy(buf, page->bytes + (addr - page->at), len);
		return 0;
	}
	return proc ? hp_proc_read(proc, addr, buf, len) : -EAGAIN;
}

/*
 * Parse @out from @page, the first page of the ELF image mapped at @m
 * (@page_len bytes of it): it holds the ELF header, the program headers
 * and mostly the notes. What lies beyond it is read from @proc's memory
 * (no @proc: -EAGAIN). Return: 0, or -ENOENT: no ELF image with a
 * build-id.
 */
static int parse_module_id(const struct hp_proc *proc, const struct hp_map *m,
			   const uint8_t *page, size_t page_len,
			   struct module_id *out)
{
	uint8_t *id = out->id;
	uint32_t *id_len = &out->id_len;
	hp_raddr_t *bias = &out->bias, *text = &out->text;
	uint64_t *text_off = &out->text_off;
	Elf64_Ehdr eh;
	Elf64_Phdr ph[64];
	const struct mem_copy copy = { page, m->start, page_len };
	hp_raddr_t first_load = (hp_raddr_t)-1;
	int rc;

	if (page_len < sizeof(eh))
		return -ENOENT;
	memcpy(&eh, page, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
	    eh.e_phnum > HP_ARRAY_SIZE(ph))
		return -ENOENT;
	rc = read_in_page(proc, &copy, m->start + eh.e_phoff, ph,
			  eh.e_phnum * sizeof(ph[0]));
	if (rc)
		return rc == -EAGAIN ? rc : -ENOENT;
	for (int i = 0; i < eh.e_phnum; i++)
		if (ph[i].p_type == PT_LOAD && ph[i].p_offset == 0)
			first_load = ph[i].p_vaddr & ~(HP_X86_PAGE_SIZE - 1);
	if (first_load == (hp_raddr_t)-1)
		return -ENOENT;
	*bias = m->start - first_load;
	*text = 0;
	for (int i = eh.e_phnum - 1; i >= 0; i--)
		if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_X)) {
			*text = *bias +
				(ph[i].p_vaddr & ~(HP_X86_PAGE_SIZE - 1));
			*text_off = ph[i].p_offset & ~(HP_X86_PAGE_SIZE - 1);
		}
	for (int i = 0; i < eh.e_phnum; i++) {
		uint8_t notes[1024];
		size_t len = ph[i].p_filesz;

		if (ph[i].p_type != PT_NOTE)
			continue;
		if (len > sizeof(notes))
			len = sizeof(notes);
		rc = read_in_page(proc, &copy, *bias + ph[i].p_vaddr, notes,
				  len);
		if (rc == -EAGAIN)
			return rc;
		if (rc)
			continue;
		*id_len = hp_note_build_id(notes, len, id, HP_BUILD_ID_MAX);
		if (*id_len)
			return 0;
	}
	return -ENOENT;
}

/* The first page of @m, read at once (a scan reads every module of every
 * process of the host: one read, where it was three or four). */
static int read_module_id(const struct hp_proc *proc, const struct hp_map *m,
			  struct module_id *out)
{
	uint8_t page[HP_X86_PAGE_SIZE];
	const size_t page_len = m->end - m->start < sizeof(page)
					? (size_t)(m->end - m->start)
					: sizeof(page);

	if (hp_proc_read(proc, m->start, page, page_len))
		return -ENOENT;
	return parse_module_id(proc, m, page, page_len, out);
}

static uint64_t dev_of(dev_t dev)
{
	return (uint64_t)major(dev) << 32 | minor(dev);
}

/*
 * @m's image as its file says: the file's own pages, which every process
 * that maps it shares (a process's changed copy of its header is its own
 * business). The path the map names is opened O_PATH, which opens no
 * device, and read only once it proves to be the mapped file itself, a
 * regular file (device and inode). Return: 0 (@out->id_len 0: no image
 * with a build-id), or -errno when the file cannot be read so.
 */
static int file_module_id(const struct hp_map *m, struct module_id *out)
{
	uint8_t page[HP_X86_PAGE_SIZE];
	const size_t page_len = m->end - m->start < sizeof(page)
					? (size_t)(m->end - m->start)
					: sizeof(page);
	struct stat st;
	ssize_t n = -1;
	int fd = hp_open_regular(m->path, &st), rc;

	if (fd < 0)
		return fd;
	if (st.st_ino != m->inode || dev_of(st.st_dev) != m->dev) {
		close(fd);
		return -ESTALE;
	}
	n = pread(fd, page, page_len, 0);
	close(fd);
	if (n < 0)
		return -EIO;
	*out = (struct module_id){ 0 };
	rc = parse_module_id(NULL, m, page, (size_t)n, out);
	if (rc == -ENOENT)
		out->id_len = 0;
	return rc == -ENOENT ? 0 : rc;
}

/*
 * Is the text of the image whose header is @m loaded: an executable
 * mapping of the same file, at the address and file offset its segment
 * says? A process that merely maps the file (Python's mmap, libelf, gdb,
 * perf) has its header and a copy of its code, but runs none of it:
 * patching that copy would report "ok" for a process that was never a
 * running instance.
 */
static bool text_loaded(const struct hp_proc *proc, const struct hp_map *m,
			const struct module_id *mi)
{
	const struct hp_map *x =
		mi->text ? hp_proc_find_map(proc, mi->text) : NULL;

	return x && x->start == mi->text && (x->prot & PROT_EXEC) &&
	       !x->shared && x->offset == mi->text_off &&
	       !strcmp(x->path, m->path);
}

/*
 * What a scan learned of one file (device, inode), in an open-addressed
 * table. Its identity is read from the file itself, once (file_module_id):
 * what every process that maps the file shares, so a miss there is a
 * miss for each of them. When the file cannot be read so (gone from its
 * path, another file there, another file system's view of it), each
 * process's memory is read as before, and only a match is remembered: a
 * process that changed its own copy of a header can make itself no
 * target, never hide another.
 */
struct hp_id_hit {
	uint64_t dev, inode; /* inode 0: a free slot */
	bool from_file;	     /* @mi is the file's: a miss is a miss */
	bool tried_file;
	bool target;	     /* a process runs it as a module looked for */
	hp_raddr_t start;    /* where the image was mapped when read */
	struct module_id mi; /* id_len 0: none known */
};

void hp_id_hits_release(struct hp_id_hits *h)
{
	free(h->v);
	*h = (struct hp_id_hits){ 0 };
}

static size_t slot_of(const struct hp_id_hits *h, uint64_t dev, uint64_t inode)
{
	uint64_t k =
		(dev ^ inode * 0x9e3779b97f4a7c15ull) * 0xff51afd7ed558ccdull;
	size_t i = (size_t)(k >> 32) & (h->cap - 1);

	while (h->v[i].inode && (h->v[i].inode != inode || h->v[i].dev != dev))
		i = (i + 1) & (h->cap - 1);
	return i;
}

static const struct hp_id_hit *find_file(const struct hp_id_hits *h,
					 uint64_t dev, uint64_t inode)
{
	const struct hp_id_hit *e = NULL;

	if (!h || !h->cap || !inode)
		return NULL;
	e = &h->v[slot_of(h, dev, inode)];
	return e->inode ? e : NULL;
}

/* The entry of @m's file, added if new. NULL: no table, or no memory. */
static struct hp_id_hit *file_entry(struct hp_id_hits *h,
				    const struct hp_map *m)
{
	struct hp_id_hit *e = NULL;

	if (!h || !m->inode)
		return NULL;
	if ((h->nr + 1) * 2 > h->cap) {
		const struct hp_id_hits old = *h;
		const size_t cap = old.cap ? old.cap * 2 : 64;

		h->v = calloc(cap, sizeof(*h->v));
		if (!h->v) {
			*h = old;
			return NULL; /* (a cache: none is as good) */
		}
		h->cap = cap;
		for (size_t i = 0; i < old.cap; i++)
			if (old.v[i].inode)
				h->v[slot_of(h, old.v[i].dev, old.v[i].inode)] =
					old.v[i];
		free(old.v);
	}
	e = &h->v[slot_of(h, m->dev, m->inode)];
	if (!e->inode) {
		*e = (struct hp_id_hit){ .dev = m->dev, .inode = m->inode };
		h->nr++;
	}
	return e;
}

bool hp_id_hits_exe(const struct hp_id_hits *h, pid_t pid)
{
	const struct hp_id_hit *e = NULL;
	char path[48];
	struct stat st;

	if (!h->nr)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if (stat(path, &st))
		return false;
	e = find_file(h, dev_of(st.st_dev), st.st_ino);
	return e && e->target;
}

static bool same_id(const struct module_id *mi, const uint8_t *build_id,
		    uint32_t build_id_len)
{
	return mi->id_len == build_id_len &&
	       !memcmp(mi->id, build_id, build_id_len);
}

/*
 * @m's image as the scan knows it: 1 it is @build_id (*@mi, moved to
 * where @m maps it), 0 the file says it is not, -1 unknown.
 */
static int known_id(struct hp_id_hit *e, const struct hp_map *m,
		    const uint8_t *build_id, uint32_t build_id_len,
		    struct module_id *mi)
{
	if (!e)
		return -1;
	if (!e->tried_file) {
		e->tried_file = true;
		e->from_file = !file_module_id(m, &e->mi);
		e->start = m->start;
		if (!e->from_file)
			e->mi.id_len = 0;
	}
	if (!same_id(&e->mi, build_id, build_id_len))
		return e->from_file ? 0 : -1;
	*mi = e->mi;
	mi->bias += m->start - e->start;
	if (mi->text)
		mi->text += m->start - e->start;
	return 1;
}

/* /proc/TID/mem of a process opened for a scan, when first needed. */
static int need_mem(const struct hp_proc *proc)
{
	struct hp_proc *p = (struct hp_proc *)(uintptr_t)proc;
	char path[64];

	if (proc->mem_fd >= 0 || proc->mem)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)proc->tid);
	p->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
	return p->mem_fd < 0 ? -errno : 0;
}

static int find_module(const struct hp_proc *proc, struct hp_id_hits *hits,
		       const uint8_t *build_id, uint32_t build_id_len,
		       struct hp_rmodule *mod)
{
	int unread = 0; /* why an image could not be read, if one */

	for (size_t i = 0; i < proc->nr_maps; i++) {
		const struct hp_map *m = &proc->maps[i];
		struct module_id mi = { 0 };
		struct hp_id_hit *e = NULL;
		int known, rc;

		if (m->offset != 0 || m->path[0] != '/' ||
		    !(m->prot & PROT_READ))
			continue;
		e = file_entry(hits, m);
		known = known_id(e, m, build_id, build_id_len, &mi);
		if (!known)
			continue;
		/* Its file told nothing, and its memory cannot be opened:
		 * the image may be the build (one replaced on disk since). */
		rc = known < 0 ? need_mem(proc) : 0;
		if (rc) {
			unread = unread ?: rc;
			continue;
		}
		if (known < 0 && (read_module_id(proc, m, &mi) ||
				  !same_id(&mi, build_id, build_id_len)))
			continue;
		if (!text_loaded(proc, m, &mi))
			continue;
		if (e && known < 0) { /* a match in memory: remembered */
			e->mi = mi;
			e->start = m->start;
		}
		if (e)
			e->target = true;
		*mod = (struct hp_rmodule){ .bias = mi.bias,
					    .start = m->start,
					    .end = m->end };
		snprintf(mod->path, sizeof(mod->path), "%s", m->path);
		/* The module's other segments follow with the same path. */
		for (size_t j = i + 1; j < proc->nr_maps; j++) {
			if (strcmp(proc->maps[j].path, m->path) ||
			    !proc->maps[j].offset)
				break;
			mod->end = proc->maps[j].end;
		}
		return 0;
	}
	if (unread == -ENOENT || unread == -ESRCH)
		return -HP_E_GONE;
	return unread ?: -HP_E_NOTARGET;
}

int hp_proc_find_module(const struct hp_proc *proc, const uint8_t *build_id,
			uint32_t build_id_len, struct hp_rmodule *mod)
{
	return find_module(proc, NULL, build_id, build_id_len, mod);
}

int hp_proc_find_module_in(struct hp_proc *proc, struct hp_id_hits *hits,
			   const uint8_t *build_id, uint32_t build_id_len,
			   struct hp_rmodule *mod)
{
	return find_module(proc, hits, build_id, build_id_len, mod);
}
