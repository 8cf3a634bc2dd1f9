/*
 * The patch's unwind table in the target's unwinder (docs/UNWIND.md):
 * registered with libgcc's __register_frame_info before the switch makes
 * the code reachable, deregistered before the region is unmapped. Both
 * take libgcc's object mutex, so the call runs in one thread while the
 * others run (never in a stopped world), in a thread that cannot hold it.
 */
#include "runtime/rt_lifecycle.h"
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
/* A call takes microseconds; a holder of the mutex releases it as soon. */
#define HP_UNWIND_CALL_US 1000000
/* Stack words scanned for a return into the unwinder, from the SP. */
#define HP_UNWIND_SCAN_BYTES (512u << 10)
/* Threads unfit for the call named in the error, at most. */
#define HP_UNFIT_LISTED 4
#define HP_UNWIND_VERSION "GCC_3.0"

#define HP_PHDRS_MAX 64

/*
 * Has ld.so relocated the object whose @n program headers are @ph, loaded
 * at @bias? It makes the object's PT_GNU_RELRO pages read-only once done
 * (glibc's _dl_relocate_object, musl's reloc_all); until then its GOT
 * holds link-time values, and a call into it jumps nowhere. Read-only is
 * not enough: ld.so maps the whole span first, from file offset 0 with
 * the first segment's protection (read-only), then each segment over it,
 * so until the data segment is mapped the RELRO pages are read-only too,
 * mapped from the wrong file offset. Return: 1 done, 0 not yet, -1
 * cannot tell (no RELRO, or one within a page, which nothing protects).
 */
static int relro_done(const struct hp_proc *proc, const Elf64_Phdr *ph,
		      size_t n, hp_raddr_t bias)
{
	for (size_t i = 0; i < n; i++) {
		const hp_raddr_t page = HP_X86_PAGE_SIZE;
		hp_raddr_t lo, hi;
		const struct hp_map *m;

		if (ph[i].p_type != PT_GNU_RELRO)
			continue;
		lo = (bias + ph[i].p_vaddr) & ~(page - 1);
		hi = (bias + ph[i].p_vaddr + ph[i].p_memsz) & ~(page - 1);
		if (lo >= hi)
			return -1;
		m = hp_proc_find_map(proc, lo);
		return m && !(m->prot & PROT_WRITE) &&
		       m->offset + (lo - m->start) ==
			       (ph[i].p_offset & ~(page - 1));
	}
	return -1;
}

/* Is libgcc_s, mapped from @lo on, relocated? (As relro_done.) */
static int unwinder_relocated(const struct hp_proc *proc, hp_raddr_t lo)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[HP_PHDRS_MAX];

	if (hp_proc_read(proc, lo, &eh, sizeof(eh)) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) || !eh.e_phnum ||
	    eh.e_phnum > HP_PHDRS_MAX || eh.e_phentsize != sizeof(Elf64_Phdr) ||
	    hp_proc_read(proc, lo + eh.e_phoff, ph, eh.e_phnum * sizeof(ph[0])))
		return -1;
	for (size_t i = 0; i < eh.e_phnum; i++)
		if (ph[i].p_type == PT_LOAD && ph[i].p_offset == 0)
			return relro_done(
				proc, ph, eh.e_phnum,
				lo - (ph[i].p_vaddr & ~(HP_X86_PAGE_SIZE - 1)));
	return -1;
}

static int take_debug(const Elf64_Dyn *e, void *out)
{
	if (e->d_tag != DT_DEBUG)
		return 0;
	*(uint64_t *)out = e->d_un.d_ptr;
	return 1;
}

/* The value of DT_DEBUG in the dynamic section at @dyn (@size bytes), in
 * *@out. Return: 0, or -ENOENT (none, unreadable). */
static int dt_debug(const struct hp_proc *proc, hp_raddr_t dyn, uint64_t size,
		    uint64_t *out)
{
	return hp_proc_each_dyn(proc, dyn, size, take_debug, out) == 1
		       ? 0
		       : -ENOENT;
}

/* Is ld.so loading objects, by the program's dynamic section at @dyn
 * (@size bytes): its DT_DEBUG not yet set, or its r_debug not
 * RT_CONSISTENT? False when done, or when it cannot be told. */
static bool program_loading(const struct hp_proc *proc, hp_raddr_t dyn,
			    uint64_t size)
{
	uint64_t debug = 0;
	int state = RT_CONSISTENT;

	if (!dyn || dt_debug(proc, dyn, size, &debug))
		return false;
	if (!debug)
		return true; /* ld.so has not come so far */
	if (hp_proc_read(proc, debug + offsetof(struct r_debug, r_state),
			 &state, sizeof(state)))
		return false;
	return state != RT_CONSISTENT;
}

/*
 * ld.so run as the program (`ld.so ./prog`), or a static one: the auxv
 * (the kernel's) describes the object the kernel mapped, ld.so itself,
 * which maps the program and then its libraries. Its _r_debug leads to
 * the program (r_map, first) and so to its DT_DEBUG, which tells as in
 * loader_busy: not yet set, or its r_debug not RT_CONSISTENT. False when
 * done, or when it cannot be told (a static program: no such symbol;
 * another ld.so; a program without DT_DEBUG).
 */
static bool ldso_run_busy(const struct hp_proc *proc, hp_raddr_t phdr)
{
	const struct hp_map *m = hp_proc_find_map(proc, phdr);
	hp_raddr_t at = 0;
	struct r_debug r;
	struct link_map lm;

	if (!m || m->path[0] != '/')
		return false;
	for (size_t i = 0; i < proc->nr_maps; i++)
		if (proc->maps[i].offset == 0 &&
		    !strcmp(proc->maps[i].path, m->path)) {
			m = &proc->maps[i];
			break;
		}
	if (hp_module_find_symbol(proc, m, "_r_debug", NULL, &at) ||
	    hp_proc_read(proc, at, &r, sizeof(r)))
		return false;
	if (!r.r_version || !r.r_map)
		return true; /* not set up yet: the program not even mapped */
	/* (Its size unknown: up to its mapping's end, not past it.) */
	if (hp_proc_read(proc, (hp_raddr_t)(uintptr_t)r.r_map, &lm,
			 sizeof(lm)) ||
	    !(m = hp_proc_find_map(proc, (hp_raddr_t)(uintptr_t)lm.l_ld)))
		return false;
	return program_loading(proc, (hp_raddr_t)(uintptr_t)lm.l_ld,
			       m->end - (hp_raddr_t)(uintptr_t)lm.l_ld);
}

/*
 * The program's headers, as its auxv (the kernel's) gives them: where
 * they are (*@phdr), its PT_DYNAMIC (*@dyn and *@dyn_size, 0 if none)
 * and whether it names an interpreter (*@interp). Return: 0, or -ENOENT
 * (no auxv, the headers unreadable).
 */
static int program_headers(const struct hp_proc *proc, hp_raddr_t *phdr,
			   hp_raddr_t *dyn, uint64_t *dyn_size, bool *interp)
{
	char path[48], *aux = NULL;
	size_t len = 0;
	uint64_t phnum = 0;
	hp_raddr_t bias = 0;
	Elf64_Phdr ph[HP_PHDRS_MAX];
	bool has_bias = false;

	*phdr = *dyn = 0;
	*dyn_size = 0;
	*interp = false;
	snprintf(path, sizeof(path), "/proc/%d/auxv", (int)proc->tid);
	if (hp_read_proc_file(path, &aux, &len))
		return -ENOENT;
	for (size_t i = 0; i + 2 * sizeof(uint64_t) <= len;
	     i += 2 * sizeof(uint64_t)) {
		uint64_t kv[2];

		memcpy(kv, aux + i, sizeof(kv));
		if (kv[0] == AT_PHDR)
			*phdr = kv[1];
		else if (kv[0] == AT_PHNUM)
			phnum = kv[1];
	}
	free(aux);
	if (!*phdr || !phnum || phnum > HP_PHDRS_MAX ||
	    hp_proc_read(proc, *phdr, ph, phnum * sizeof(ph[0])))
		return -ENOENT;
	for (size_t i = 0; i < phnum; i++) {
		if (ph[i].p_type == PT_PHDR) {
			bias = *phdr - ph[i].p_vaddr;
			has_bias = true;
		}
		*interp |= ph[i].p_type == PT_INTERP;
	}
	for (size_t i = 0; i < phnum && has_bias; i++)
		if (ph[i].p_type == PT_DYNAMIC) {
			*dyn = bias + ph[i].p_vaddr;
			*dyn_size = ph[i].p_memsz;
		}
	return 0;
}

/*
 * Is @proc's dynamic linker loading objects: starting the program (it has
 * not yet pointed the program's DT_DEBUG at its struct r_debug, or says
 * RT_ADD there), or inside a dlopen (RT_ADD while it maps)? Then an
 * unwinder may be on its way: a C++ program's libgcc_s, mapped after the
 * program at its exec, where hpatchd first looks at it. False when done,
 * or when it cannot be told (a static program, no DT_DEBUG, an auxv not
 * readable). ld.so run as the program: ldso_run_busy.
 */
static bool loader_busy(const struct hp_proc *proc)
{
	hp_raddr_t phdr = 0, dyn = 0;
	uint64_t dyn_size = 0;
	bool interp = false;

	if (program_headers(proc, &phdr, &dyn, &dyn_size, &interp))
		return false;
	if (!interp)
		return ldso_run_busy(proc, phdr);
	return program_loading(proc, dyn, dyn_size);
}

/* Is @m a mapping of libgcc_s? Its basename, as ld.so loads it. */
static bool is_libgcc(const struct hp_map *m)
{
	const char *slash = strrchr(m->path, '/');

	return slash && !strncmp(slash + 1, "libgcc_s.so", 11);
}

/* The first mapping (file offset 0) of the module that @m is part of:
 * a module's mappings are one span of its file, in order. */
static const struct hp_map *module_base(const struct hp_proc *proc,
					const struct hp_map *m)
{
	for (size_t i = (size_t)(m - proc->maps) + 1; i-- > 0;) {
		if (strcmp(proc->maps[i].path, m->path))
			break;
		if (!proc->maps[i].offset)
			return &proc->maps[i];
	}
	return NULL;
}

/* Objects of a link map read at most: a process has a few hundred. */
#define HP_LINK_MAP_MAX 4096

/* What linked_first looks for in a module (its first mapping). */
typedef bool module_match_fn(const struct hp_proc *proc, const struct hp_map *m,
			     void *arg);

/*
 * The first module of the link map of the program's namespace (r_debug's
 * r_map, through its DT_DEBUG: the program, the libraries it loaded at
 * its start in order, LD_PRELOAD's first, then what dlopen added) that
 * @match takes: the order in which ld.so binds a symbol in the global
 * scope, which the order of the maps (by address) is not. Its first
 * mapping, or NULL when none or it cannot be told (a static program, no
 * DT_DEBUG, a link map being changed).
 */
static const struct hp_map *linked_first(const struct hp_proc *proc,
					 module_match_fn *match, void *arg)
{
	hp_raddr_t phdr = 0, dyn = 0, at = 0;
	uint64_t dyn_size = 0, debug = 0;
	bool interp = false;
	struct r_debug r;

	if (program_headers(proc, &phdr, &dyn, &dyn_size, &interp) || !dyn ||
	    dt_debug(proc, dyn, dyn_size, &debug) || !debug ||
	    hp_proc_read(proc, debug, &r, sizeof(r)))
		return NULL;
	at = (hp_raddr_t)(uintptr_t)r.r_map;
	for (int n = 0; at && n < HP_LINK_MAP_MAX; n++) {
		const struct hp_map *m = NULL;
		struct link_map lm;

		if (hp_proc_read(proc, at, &lm, sizeof(lm)))
			return NULL;
		m = hp_proc_find_map(proc, (hp_raddr_t)(uintptr_t)lm.l_ld);
		m = m ? module_base(proc, m) : NULL;
		if (m && match(proc, m, arg))
			return m;
		at = (hp_raddr_t)(uintptr_t)lm.l_next;
	}
	return NULL;
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
 * program's namespace (linked_first). Within that namespace any copy's
 * __register_frame_info reaches the first one's (it calls
 * __register_frame_info_bases through its PLT, and the global scope
 * comes first); a copy dlmopen'd into a namespace of its own keeps a
 * registry of its own, which the program never searches, at whatever
 * address it was mapped (often below the program's own). Its first
 * mapping, or NULL when it cannot be told (a static program, no
 * DT_DEBUG, a link map being changed, no libgcc_s in that namespace).
 */
static const struct hp_map *linked_libgcc(const struct hp_proc *proc)
{
	return linked_first(proc, match_libgcc, NULL);
}

/*
 * The libgcc_s to register with: the one mapped; of several copies, the
 * program's (linked_libgcc), else the lowest. Its first mapping, or NULL
 * (none mapped).
 */
static const struct hp_map *find_libgcc(const struct hp_proc *proc)
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
 * its link map (linked_first), as ld.so binds the name (an allocator
 * preloaded, mapped above libc.so.6, defines the program's free), else,
 * with no link map to read (a static program), the first in the maps.
 */
static const struct hp_map *first_definer(const struct hp_proc *proc,
					  const char *name, hp_raddr_t *at,
					  uint64_t *size)
{
	struct definer d = { .name = name, .at = at, .size = size };
	const struct hp_map *linked = linked_first(proc, match_definer, &d);

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

/* The lock libgcc takes first, for hp_pt_call's proof. */
static void find_lock(const struct hp_proc *proc, struct hp_unwinder *u)
{
	uint64_t size = 0;

	if (!first_definer(proc, "pthread_mutex_lock", &u->lock_fn, &size))
		u->lock_fn = 0;
}

/*
 * The C library's signal return in @arg (the process), the code that
 * returns from every handler installed through it: the one restorer
 * found before the stop (hp_proc_find_restorers, searched once per file
 * in a run) within the module defining pthread_mutex_lock, and only if
 * there is one there. Return: its address, or 0.
 */
static hp_raddr_t find_restorer(const void *arg)
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
static const char *locking_code(const struct hp_unwinder *u, uint64_t addr)
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
 * (fit_to_call: the lock they take is that copy's). Return: 0, 1 (none
 * loaded), -HP_E_NOSYM.
 */
static int find_unwinder(const struct hp_proc *proc, struct hp_unwinder *u)
{
	static const char *const names[] = { "__register_frame_info",
					     "__deregister_frame_info" };
	const struct hp_map *lib = find_libgcc(proc);
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
	find_lock(proc, u);
	u->lo = lib->start;
	u->hi = module_end(proc, lib);
	return 0;
}

/*
 * Can stopped @t make the call? It must wait in a system call (a thread
 * interrupted while running might hold the object mutex, or the malloc
 * lock free() in deregistration takes) and hold no return address into
 * the unwinder nor into the allocator's locking functions on its stack
 * (conservative: every word that looks like one counts, so a thread
 * blocked under a lookup is never chosen, nor one that waits in the
 * kernel holding an arena's lock: malloc_stats writing to a full pipe,
 * sysmalloc's mmap, fork's clone; free() in the call would wait for its
 * own thread). Not one in seccomp strict mode: the call's first
 * allocation would kill it. Unfit: @why (@size bytes) says why.
 */
static bool fit_to_call(const struct hp_proc *proc, struct hp_thread *t,
			const struct hp_unwinder *u, char *why, size_t size)
{
	const struct hp_map *stack = NULL;
	const char *in = NULL;
	uint64_t *words = NULL;
	size_t len, at = 0;

	const bool strict = t->has_seccomp_mode
				    ? t->seccomp_mode == SECCOMP_MODE_STRICT
				    : hp_seccomp_strict(t->tid);

	if (strict || hp_pt_get_regs(t) || (long long)t->regs.orig_rax < 0) {
		snprintf(why, size, "tid %d %s", (int)t->tid,
			 strict ? "in seccomp's strict mode"
				: "not waiting in a system call");
		return false;
	}
	in = locking_code(u, t->regs.rip);
	if (in) {
		snprintf(why, size, "tid %d stopped in %s", (int)t->tid, in);
		return false;
	}
	stack = hp_proc_find_map(proc, t->regs.rsp);
	len = stack ? stack->end - t->regs.rsp : 0;
	if (len > HP_UNWIND_SCAN_BYTES)
		len = HP_UNWIND_SCAN_BYTES;
	len &= ~(size_t)7;
	words = len ? malloc(len + 8) : NULL;
	if (!words || hp_proc_read(proc, t->regs.rsp, words, len)) {
		free(words);
		snprintf(why, size, "tid %d: its stack not read", (int)t->tid);
		return false;
	}
	for (; at < len / 8 && !in; at++)
		in = locking_code(u, words[at]);
	if (in)
		snprintf(why, size,
			 "tid %d: the word at sp+0x%zx points into %s (a "
			 "frame, or a leftover of one)",
			 (int)t->tid, (at - 1) * 8, in);
	free(words);
	return !in;
}

static const char stopped_by_signal[] =
	"stopped by a signal (SIGSTOP, job control)";

/* Thread @tid of @proc cannot run (all_can_run), @why, in @state: said,
 * with what to do. Return: -HP_E_BUSY. */
static int cannot_run(const struct hp_proc *proc, pid_t tid, const char *why,
		      const char *state)
{
	hp_error(-HP_E_BUSY,
		 "pid %d: tid %d is %s (%s): a lock it holds stays held, "
		 "which hpatch's call of the unwinder could wait for; not "
		 "called",
		 (int)proc->pid, (int)tid, why, state);
	if (why == stopped_by_signal)
		hp_hint("continue it (kill -CONT, fg) and retry");
	else if (!strncmp(why, "its cgroup", 10))
		hp_hint("thaw it (docker unpause, systemctl thaw) and retry");
	else
		hp_hint("let the debugger continue it, or detach it, and "
			"retry");
	return hp_rt_busy_why("tid %d %s, to call its unwinder", (int)tid, why);
}

/*
 * Can every thread of @proc (@tids, @nr of them) run? One stopped by a
 * signal (SIGSTOP, job control: state T), stopped by a tracer other than
 * hpatch, or in a frozen cgroup holds whatever lock it held when it
 * stopped (libgcc's object_mutex in a throw, an arena's in malloc) for as
 * long as it stays so, and the call would wait for it there, past its
 * first lock (the frozen one aside, none of them may run either while
 * the call runs: the process was stopped on purpose). A group stop that
 * hpatch itself just broke (its threads detached, on their way back into
 * it) shows no T: the thread seized for the call says so (call_in_target).
 * Return: 0, or -HP_E_BUSY (said, naming the thread and what to do).
 */
static int all_can_run(const struct hp_proc *proc, const pid_t *tids, size_t nr)
{
	for (size_t i = 0; i < nr; i++) {
		const pid_t tracer = hp_task_tracer(tids[i]);
		char state[160], comm[32], by[96];

		hp_task_state(tids[i], state, sizeof(state));
		if (hp_task_frozen(tids[i]))
			return cannot_run(proc, tids[i], "its cgroup is frozen",
					  state);
		if (state[6] == 'T' && tracer <= 0)
			return cannot_run(proc, tids[i], stopped_by_signal,
					  state);
		if ((state[6] == 'T' || state[6] == 't') && tracer > 0 &&
		    tracer != hp_self_pid()) {
			hp_task_comm(tracer, comm, sizeof(comm));
			snprintf(by, sizeof(by),
				 "stopped by its tracer, pid %d ('%s')",
				 (int)tracer, comm);
			return cannot_run(proc, tids[i], by, state);
		}
	}
	return 0;
}

/*
 * The bounds of a call of @u's in @proc (hp_pt_call): abandoned after
 * HP_UNWIND_CALL_US only if it waits to take its first lock; one that may
 * hold it is waited for within the operation's bound (its --timeout),
 * then left to finish on its own.
 */
static struct hp_call_guard call_guard(const struct hp_proc *proc,
				       const struct hp_unwinder *u)
{
	return (struct hp_call_guard){ .bound_us = HP_UNWIND_CALL_US,
				       .last_us = hp_pt_call_max_us,
				       .lock_fn = u->lock_fn,
				       .lo = u->lo,
				       .hi = u->hi,
				       .restorer = find_restorer,
				       .arg = proc };
}

/*
 * @fn(@args) in the first thread fit to call it (fit_to_call), while
 * every other thread runs; *@left (if not NULL) says whether that thread
 * was left inside the call (it outlived its bound, asleep in the kernel).
 * Return: 0, -HP_E_BUSY (none fit, or left inside: reported), -HP_E_GONE,
 * -errno.
 */
static int call_in_target(struct hp_proc *proc, const struct hp_unwinder *u,
			  hp_raddr_t fn, const long args[2], long *ret,
			  bool *left)
{
	const struct hp_call_guard g = call_guard(proc, u);
	char unfit[HP_UNFIT_LISTED * 160] = "";
	size_t unfit_len = 0, nr_unfit = 0;
	pid_t *tids = NULL;
	size_t nr = 0;
	int rc = hp_proc_read_maps(proc);

	rc = rc ?: hp_proc_list_tasks(proc->pid, &tids, &nr);
	if (rc)
		return rc;
	rc = all_can_run(proc, tids, nr);
	if (rc) {
		free(tids);
		return rc;
	}
	rc = 1;
	for (size_t i = 0; i < nr && rc == 1; i++) {
		struct hp_thread t = { .tid = tids[i],
				       .leader = tids[i] == proc->pid };
		char why[160] = "";
		int stop;

		if (hp_pt_seize(&t))
			continue;
		stop = hp_pt_interrupt(&t) ?: hp_pt_wait_stop(&t);
		if (!stop && t.group_stop) {
			char state[160];

			hp_task_state(t.tid, state, sizeof(state));
			rc = cannot_run(proc, t.tid, stopped_by_signal, state);
		} else if (!stop &&
			   fit_to_call(proc, &t, u, why, sizeof(why))) {
			rc = hp_pt_call(&t, fn, args, &g, ret);
		} else if (!stop && nr_unfit++ < HP_UNFIT_LISTED) {
			unfit_len += (size_t)snprintf(
				unfit + unfit_len, sizeof(unfit) - unfit_len,
				"%s%s", unfit_len ? "; " : "", why);
		}
		if (left && (t.owes_regs || t.left_in_call))
			*left = true;
		hp_pt_release(&t);
		hp_pt_reap(&t, 1);
	}
	free(tids);
	if (rc == 1) {
		rc = hp_error(-HP_E_BUSY,
			      "pid %d: no thread waits in a system call clear "
			      "of '%s' and of the allocator, to call its "
			      "unwinder: %s%s",
			      (int)proc->pid, u->path, unfit,
			      nr_unfit > HP_UNFIT_LISTED ? "; ..." : "");
		hp_hint("patch code carries unwind tables, registered through "
			"a thread blocked in a system call (read, poll, "
			"sleep, a lock...) whose stack has no word pointing "
			"into the unwinder or the allocator (a word left from "
			"an earlier call counts: it cannot be told from a "
			"frame): try again when one is");
		rc = hp_rt_busy_why("no thread waits in a system call, to "
				    "call its unwinder");
	}
	return rc == -ESRCH ? -HP_E_GONE : rc;
}

int hp_unwind_ready(const struct hp_proc *proc, bool say)
{
	const struct hp_map *lib = find_libgcc(proc);
	/* Mapped and not yet relocated (ld.so loads it: at the start, or a
	 * dlopen): its functions would run with link-time GOT entries (a
	 * jump nowhere, a lock taken and never released). Or not mapped
	 * while ld.so loads objects: it may be coming, and a table not
	 * registered now never is, so an exception thrown through patched
	 * code would end the process. Either way: later. (hpatchd meets
	 * every program so at its exec, and looks again: said in its view
	 * of the process, not logged each time.) */
	if (lib && !unwinder_relocated(proc, lib->start))
		hp_log(say ? HP_LOG_ERROR : HP_LOG_DEBUG,
		       "pid %d: its unwinder '%s' is being loaded (not "
		       "relocated yet): nothing changed",
		       (int)proc->pid, lib->path);
	else if (!lib && loader_busy(proc))
		hp_log(say ? HP_LOG_ERROR : HP_LOG_DEBUG,
		       "pid %d: its dynamic linker is loading objects (the "
		       "program starts, or a dlopen): an unwinder may come, "
		       "which would not know the patch's unwind table; "
		       "nothing changed",
		       (int)proc->pid);
	else
		return 0;
	if (say)
		hp_hint("try again in a moment");
	return -HP_E_LOADING;
}

int hp_unwind_find(const struct hp_proc *proc, struct hp_prep *pr, bool say)
{
	int rc;

	pr->has_unwinder = false;
	if (!pr->unwind)
		return 0;
	rc = find_unwinder(proc, &pr->unwinder);
	if (rc == 1) {
		pr->no_unwinder = true;
		if (say)
			hp_log(HP_LOG_INFO,
			       "pid %d: no unwinder loaded (libgcc_s): patched "
			       "frames "
			       "stay opaque to one loaded later",
			       (int)proc->pid);
		return 0;
	}
	pr->has_unwinder = !rc;
	return rc ? hp_error_rc(rc,
				"pid %d: cannot register the patch's unwind "
				"table",
				(int)proc->pid)
		  : 0;
}

int hp_unwind_register(struct hp_proc *proc, struct hp_prep *pr,
		       struct hp_thread *held)
{
	const long args[2] = { pr->unwind ? (long)pr->unwind->eh_addr : 0,
			       pr->unwind ? (long)pr->unwind->obj_addr : 0 };
	const struct hp_unwinder u = pr->unwinder;
	char why[160];
	size_t at;
	long ret = 0;
	int rc;

	if (!pr->unwind || !pr->has_unwinder)
		return 0;
	at = (size_t)((uint8_t *)pr->unwind - pr->buf);
	rc = hp_rt_fault("unwind");
	/* The process's one thread, held: fit, or the caller lets it go and
	 * asks again (the next stop may find it waiting). */
	if (!rc && held && !fit_to_call(proc, held, &u, why, sizeof(why))) {
		hp_dbg(HP_DBG_PTRACE, "pid %d: %s", (int)proc->pid, why);
		return 1;
	}
	if (!rc && held) {
		/* The process's only thread: no other can hold a lock the
		 * call would wait for (its own are ruled out above), so there
		 * is nothing to prove by stepping to its first lock, which
		 * took ~26 steps inside the held stop. */
		struct hp_call_guard g = call_guard(proc, &u);

		g.lock_fn = 0;

		rc = hp_pt_call(held, u.reg, args, &g, &ret);
		rc = rc == -ESRCH ? -HP_E_GONE : rc;
		pr->unwind_left = held->owes_regs || held->left_in_call;
	} else if (!rc) {
		rc = call_in_target(proc, &u, u.reg, args, &ret,
				    &pr->unwind_left);
	}
	if (rc)
		return hp_error_rc(rc,
				   "pid %d: cannot register the patch's "
				   "unwind table",
				   (int)proc->pid);
	pr->unwind_registered = true;
	pr->unwind->deregister = u.dereg;
	rc = hp_proc_write(proc,
			   pr->region + at +
				   offsetof(struct hp_rt_unwind, deregister),
			   &u.dereg, sizeof(u.dereg));
	if (rc)
		return hp_error_rc(rc,
				   "pid %d: cannot record the unwind "
				   "registration",
				   (int)proc->pid);
	hp_dbg(HP_DBG_PTRACE, "pid %d: unwind table 0x%" PRIx64 " registered",
	       (int)proc->pid, pr->unwind->eh_addr);
	return 0;
}

int hp_unwind_deregister(struct hp_proc *proc, hp_raddr_t addr,
			 const struct hp_rt_header *hdr,
			 const struct hp_rt_unwind *u)
{
	const hp_raddr_t field = addr + sizeof(*hdr) +
				 hdr->nr_funcs * sizeof(struct hp_rt_func) +
				 offsetof(struct hp_rt_unwind, deregister);
	const uint64_t zero = 0;
	static const uint8_t magic[sizeof(hdr->magic)];
	const long args[2] = { (long)u->eh_addr };
	struct hp_unwinder uw;
	bool left = false;
	long ret = 0;
	int rc;

	if (!(hdr->flags & HP_RT_UNWIND) || !u->deregister)
		return 0;
	rc = find_unwinder(proc, &uw);
	/* libgcc aborts the process on a table it does not know: only the
	 * function it was registered with may be asked. */
	if (rc == 1 || (!rc && uw.dereg != u->deregister))
		rc = hp_error(-HP_E_NOSYM,
			      "pid %d: the unwinder patch '%s' registered with "
			      "is gone",
			      (int)proc->pid, hdr->patch_id);
	rc = rc ?: call_in_target(proc, &uw, uw.dereg, args, &ret, &left);
	if (left) {
		/* Forgotten by now or later, or never: the region stays, and
		 * no later hpatch asks again (libgcc aborts on a table it
		 * does not know) nor unmaps it (a table it still knows). */
		if (hp_proc_write(proc, addr, magic, sizeof(magic)))
			hp_warn("pid %d: cannot clear the header of region "
				"0x%" PRIx64,
				(int)proc->pid, addr);
		return hp_error(-HP_E_BUSY,
				"pid %d: the region of patch '%s' at 0x%" PRIx64
				" stays mapped, unused: a thread left inside "
				"the deregistration of its unwind table may "
				"yet deregister it",
				(int)proc->pid, hdr->patch_id, addr);
	}
	if (!rc && (hp_raddr_t)ret != u->obj_addr)
		hp_warn("pid %d: the unwinder returned 0x%lx for patch '%s', "
			"not its object 0x%" PRIx64,
			(int)proc->pid, (unsigned long)ret, hdr->patch_id,
			u->obj_addr);
	if (!rc)
		rc = hp_proc_write(proc, field, &zero, sizeof(zero));
	if (rc)
		return hp_error_rc(rc,
				   "pid %d: cannot deregister the unwind "
				   "table of patch '%s'; its region stays "
				   "mapped",
				   (int)proc->pid, hdr->patch_id);
	return 0;
}
