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
 * before, when they lie in it, else read.
 */
static int read_in_page(const struct hp_proc *proc, const struct mem_copy *page,
			hp_raddr_t addr, void *buf, size_t len)
{
	if (addr >= page->at && len <= page->len &&
	    addr - page->at <= page->len - len) {
		memcpy(buf, page->bytes + (addr - page->at), len);
		return 0;
	}
	return hp_proc_read(proc, addr, buf, len);
}

/*
 * Read @out from the ELF image whose header is mapped at @m. The first
 * page is read at once: it holds the ELF header, the program headers and
 * mostly the notes, which were three or four reads (a scan reads every
 * module of every process of the host). What lies beyond it is read
 * apart, as ever.
 */
static int read_module_id(const struct hp_proc *proc, const struct hp_map *m,
			  struct module_id *out)
{
	uint8_t *id = out->id;
	uint32_t *id_len = &out->id_len;
	hp_raddr_t *bias = &out->bias, *text = &out->text;
	uint64_t *text_off = &out->text_off;
	uint8_t page[HP_X86_PAGE_SIZE];
	const size_t page_len = m->end - m->start < sizeof(page)
					? (size_t)(m->end - m->start)
					: sizeof(page);
	Elf64_Ehdr eh;
	Elf64_Phdr ph[64];
	const struct mem_copy copy = { page, m->start, page_len };
	hp_raddr_t first_load = (hp_raddr_t)-1;
	int rc;

	rc = hp_proc_read(proc, m->start, page, page_len);
	if (rc || page_len < sizeof(eh))
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
		return -ENOENT;
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
		if (read_in_page(proc, &copy, *bias + ph[i].p_vaddr, notes,
				 len))
			continue;
		*id_len = hp_note_build_id(notes, len, id, HP_BUILD_ID_MAX);
		if (*id_len)
			return 0;
	}
	return -ENOENT;
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

struct hp_id_hit {
	uint64_t dev, inode;
	hp_raddr_t start; /* where the image was mapped when read */
	struct module_id mi;
};

void hp_id_hits_release(struct hp_id_hits *h)
{
	free(h->v);
	*h = (struct hp_id_hits){ 0 };
}

bool hp_id_hits_exe(const struct hp_id_hits *h, pid_t pid)
{
	char path[48];
	struct stat st;

	if (!h->nr)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if (stat(path, &st))
		return false;
	for (size_t i = 0; i < h->nr; i++)
		if (h->v[i].inode == st.st_ino &&
		    h->v[i].dev == ((uint64_t)major(st.st_dev) << 32 |
				    minor(st.st_dev)))
			return true;
	return false;
}

/* @m's image as read at another address: the same, moved. */
static bool find_hit(const struct hp_id_hits *h, const struct hp_map *m,
		     const uint8_t *build_id, uint32_t build_id_len,
		     struct module_id *mi)
{
	for (size_t i = 0; h && m->inode && i < h->nr; i++) {
		const struct hp_id_hit *e = &h->v[i];

		if (e->dev != m->dev || e->inode != m->inode ||
		    e->mi.id_len != build_id_len ||
		    memcmp(e->mi.id, build_id, build_id_len))
			continue;
		*mi = e->mi;
		mi->bias += m->start - e->start;
		if (mi->text)
			mi->text += m->start - e->start;
		return true;
	}
	return false;
}

static void add_hit(struct hp_id_hits *h, const struct hp_map *m,
		    const struct module_id *mi)
{
	if (!h || !m->inode)
		return;
	if (hp_grow(&h->v, &h->cap, h->nr, sizeof(*h->v), 8))
		return; /* (a cache: none is as good) */
	h->v[h->nr++] = (struct hp_id_hit){
		.dev = m->dev, .inode = m->inode, .start = m->start, .mi = *mi
	};
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
	for (size_t i = 0; i < proc->nr_maps; i++) {
		const struct hp_map *m = &proc->maps[i];
		struct module_id mi = { 0 };
		bool hit = false;

		if (m->offset != 0 || m->path[0] != '/' ||
		    !(m->prot & PROT_READ))
			continue;
		hit = find_hit(hits, m, build_id, build_id_len, &mi);
		if (!hit && (need_mem(proc) || read_module_id(proc, m, &mi) ||
			     mi.id_len != build_id_len ||
			     memcmp(mi.id, build_id, mi.id_len)))
			continue;
		if (!text_loaded(proc, m, &mi))
			continue;
		if (!hit)
			add_hit(hits, m, &mi);
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
	return -HP_E_NOTARGET;
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
