/*
 * Is the target's dynamic linker done (docs/UNWIND.md, "Never while
 * ld.so loads"): the unwinder relocated, no object being loaded; and the
 * program's link map, read in the order ld.so binds symbols.
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

/*
 * The first module of the link map of the program's namespace (r_debug's
 * r_map, through its DT_DEBUG: the program, the libraries it loaded at
 * its start in order, LD_PRELOAD's first, then what dlopen added) that
 * @match takes: the order in which ld.so binds a symbol in the global
 * scope, which the order of the maps (by address) is not. Its first
 * mapping, or NULL when none or it cannot be told (a static program, no
 * DT_DEBUG, a link map being changed).
 */
const struct hp_map *hp_unwind_linked_first(const struct hp_proc *proc,
					    hp_unwind_module_match_fn *match,
					    void *arg)
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

int hp_unwind_ready(const struct hp_proc *proc, bool say)
{
	const struct hp_map *lib = hp_unwind_find_libgcc(proc);
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
