/*
 * What the unwinder call needs to know of a target: which libgcc_s to
 * tell and its functions, the allocator's locking functions and the lock
 * libgcc takes first (for the choice of a thread and the call's proof),
 * the C library's signal return.
 */
#include "runtime/rt_unwind.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <link.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/seccomp.h>
#include <sys/mman.h>

#define HP_LOG_PREFIX "rt: "
#define HP_UNWIND_VERSION "GCC_3.0"

/* Is @m a mapping of libgcc_s? Its basename, as ld.so loads it. */
static bool is_libgcc(const struct hp_map *m)
{
	const char *slash = strrchr(m->path, '/');

	return slash && !strncmp(slash + 1, "libgcc_s.so", 11);
}

static bool match_libgcc(const struct hp_proc *proc, const struct hp_map *m,
			 void *arg)
{
	(void)proc;
	(void)arg;
	return is_libgcc(m);
}

/*
 * Of several copies of libgcc_s mapped, the one whose registry the
 * program's exceptions search: the first in the link map of the
 * program's namespace (hp_unwind_linked_first). Within that namespace
 * any copy's __register_frame_info reaches the first one's (it calls
 * __register_frame_info_bases through its PLT, and the global scope
 * comes first); a copy dlmopen'd into a namespace of its own keeps a
 * registry of its own, which the program never searches, at whatever
 * address it was mapped (often below the program's own). Its first
 * mapping, or NULL when it cannot be told (a static program, no
 * DT_DEBUG, a link map being changed, no libgcc_s in that namespace).
 */
static const struct hp_map *linked_libgcc(const struct hp_proc *proc)
{
	return hp_unwind_linked_first(proc, match_libgcc, NULL);
}

/*
 * The libgcc_s to register with: the one mapped; of several copies, the
 * program's (linked_libgcc), else the lowest. Its first mapping, or NULL
 * (none mapped).
 */
const struct hp_map *hp_unwind_find_libgcc(const struct hp_proc *proc)
{
	const struct hp_map *first = NULL;

	for (size_t i = 0; i < proc->nr_maps; i++) {
		const struct hp_map *m = &proc->maps[i];

		if (m->offset || !is_libgcc(m))
			continue;
		if (first)
			return linked_libgcc(proc) ?: first;
		first = m;
	}
	return first;
}

/*
 * The C library's functions that take the allocator's locks and may wait
 * in a system call while they hold one: glibc's malloc and free (sysmalloc
 * and the trims map, unmap, brk and madvise under the arena's lock),
 * malloc_stats (writes to stderr under it), fork (holds every arena's
 * lock across the clone), and the rest of the family. Every path from
 * them into the kernel leaves a return address inside one of them (or
 * the thread's pc). The allocator is whoever defines free for the program
 * (first_definer): the program itself for one linked with its own, a
 * library preloaded (jemalloc, tcmalloc), else the C library.
 */
static const char *const alloc_fns[HP_ALLOC_FNS] = {
	"free",		"malloc",    "calloc",	      "realloc",
	"reallocarray", "memalign",  "aligned_alloc", "posix_memalign",
	"valloc",	"pvalloc",   "malloc_trim",   "malloc_stats",
	"malloc_info",	"mallinfo2", "mallopt",	      "fork",
};

/* A function looked for (first_definer). */
struct definer {
	const char *name;
	hp_raddr_t *at;
	uint64_t *size;
};

static bool match_definer(const struct hp_proc *proc, const struct hp_map *m,
			  void *arg)
{
	const struct definer *d = arg;

	return m->path[0] == '/' && (m->prot & PROT_READ) &&
	       !hp_module_find_function(proc, m, d->name, NULL, d->at, d->size);
}

/*
 * The module (its first mapping) that defines function @name for the
 * program, its address in *@at and size in *@size; or NULL: the first in
 * its link map (hp_unwind_linked_first), as ld.so binds the name (an allocator
 * preloaded, mapped above libc.so.6, defines the program's free), else,
 * with no link map to read (a static program), the first in the maps.
 */
static const struct hp_map *first_definer(const struct hp_proc *proc,
					  const char *name, hp_raddr_t *at,
					  uint64_t *size)
{
	struct definer d = { .name = name, .at = at, .size = size };
	const struct hp_map *linked =
		hp_unwind_linked_first(proc, match_definer, &d);

	if (linked)
		return linked;
	for (size_t i = 0; i < proc->nr_maps; i++) {
		const struct hp_map *m = &proc->maps[i];

		if (!m->offset && m->path[0] == '/' && (m->prot & PROT_READ) &&
		    !hp_module_find_function(proc, m, name, NULL, at, size))
			return m;
	}
	return NULL;
}

/* The code ranges of alloc_fns in @proc, into @u (none when it cannot be
 * told: a static program). */
static void find_allocator(const struct hp_proc *proc, struct hp_unwinder *u)
{
	hp_raddr_t at = 0;
	uint64_t size = 0;
	const struct hp_map *lib =
		first_definer(proc, alloc_fns[0], &at, &size);

	u->nr_alloc = 0;
	for (size_t k = 0; lib && k < HP_ARRAY_SIZE(alloc_fns); k++) {
		if (hp_module_find_function(proc, lib, alloc_fns[k], NULL, &at,
					    &size))
			continue;
		u->alloc[u->nr_alloc].lo = at;
		u->alloc[u->nr_alloc].hi = at + (size ? size : 1);
		u->alloc[u->nr_alloc].name = alloc_fns[k];
		u->nr_alloc++;
	}
}

/* The end of the mappings of the module whose first mapping is @m. */
static hp_raddr_t module_end(const struct hp_proc *proc, const struct hp_map *m)
{
	hp_raddr_t hi = m->end;

	for (size_t i = (size_t)(m - proc->maps) + 1;
	     i < proc->nr_maps && proc->maps[i].offset &&
	     !strcmp(proc->maps[i].path, m->path);
	     i++)
		hi = proc->maps[i].end;
	return hi;
}

/*
 * The C library's signal return in @arg (the process), the code that
 * returns from every handler installed through it: the one restorer
 * found before the stop (hp_proc_find_restorers, searched once per file
 * in a run) within the module defining pthread_mutex_lock, and only if
 * there is one there. Return: its address, or 0.
 */
hp_raddr_t hp_unwind_find_restorer(const void *arg)
{
	const struct hp_proc *proc = arg;
	hp_raddr_t at = 0, found = 0, hi = 0;
	uint64_t size = 0;
	const struct hp_map *lib =
		first_definer(proc, "pthread_mutex_lock", &at, &size);
	int seen = 0;

	if (lib)
		hi = module_end(proc, lib);
	for (size_t k = 0; lib && k < proc->nr_restorers; k++)
		if (proc->restorers[k] >= lib->start &&
		    proc->restorers[k] < hi && ++seen == 1)
			found = proc->restorers[k];
	return seen == 1 ? found : 0;
}

/*
 * What @addr points into: the unwinder's module ("libgcc_s"), one of the
 * allocator's locking functions (find_allocator: its name), or NULL. Not
 * an allocator function's entry: no call returns there (it returns past
 * a call instruction, inside the caller), so a word holding one is a
 * function pointer (pthread_cleanup_push(free, p) at -O0, a unique_ptr
 * with free as its deleter), not a frame inside it; refused for that,
 * such a thread was.
 */
const char *hp_unwind_locking_code(const struct hp_unwinder *u, uint64_t addr)
{
	if (addr >= u->lo && addr < u->hi)
		return "libgcc_s";
	for (size_t k = 0; k < u->nr_alloc; k++)
		if (addr > u->alloc[k].lo && addr < u->alloc[k].hi)
			return u->alloc[k].name;
	return NULL;
}

/*
 * The unwinder of @proc: the functions of that very copy of libgcc_s
 * (another copy's registry may be one the program never searches), and
 * the range of its mappings, for the choice of a thread to call them in
 * (hp_unwind_fit_to_call: the lock they take is that copy's). Return:
 * 0, 1 (none loaded), -HP_E_NOSYM.
 */
int hp_unwind_find_unwinder(const struct hp_proc *proc, struct hp_unwinder *u)
{
	static const char *const names[] = { "__register_frame_info",
					     "__deregister_frame_info" };
	const struct hp_map *lib = hp_unwind_find_libgcc(proc);
	hp_raddr_t *const addrs[] = { &u->reg, &u->dereg };

	*u = (struct hp_unwinder){ 0 };
	if (!lib)
		return 1;
	for (size_t k = 0; k < HP_ARRAY_SIZE(names); k++)
		if (hp_module_find_symbol(proc, lib, names[k],
					  HP_UNWIND_VERSION, addrs[k]))
			return hp_error(-HP_E_NOSYM,
					"pid %d: '%s' does not define '%s@%s'",
					(int)proc->pid, lib->path, names[k],
					HP_UNWIND_VERSION);
	snprintf(u->path, sizeof(u->path), "%s", lib->path);
	find_allocator(proc, u);
	u->lo = lib->start;
	u->hi = module_end(proc, lib);
	return 0;
}
