/*
 * Binding external symbols by name, as the dynamic linker would: search the
 * modules in load order (the executable first) through each one's GNU hash
 * table and dynamic symbol table, read from the process's own memory. Used
 * only for functions the old program never referenced; everything else was
 * resolved by hpdiff or goes through the program's own GOT.
 *
 * An IFUNC (most of libc's string and memory functions) binds to the
 * implementation its resolver chose for this process, never to the
 * resolver: see bind_ifunc and docs/LIFECYCLE.md, "Library functions".
 */
#include "runtime/runtime_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <elf.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#define HP_LOG_PREFIX "rt: "
#define HP_SYM_NAME_MAX 256
#define HP_CHAIN_MAX 4096 /* longest hash chain we follow */

struct dynmod {
	hp_raddr_t bias;
	hp_raddr_t start;
	hp_raddr_t symtab;
	hp_raddr_t strtab;
	uint64_t strsz;
	hp_raddr_t gnu_hash;
	hp_raddr_t versym;
	hp_raddr_t verdef;
	uint64_t verdefnum;
	hp_raddr_t rela, jmprel; /* .rela.dyn, .rela.plt */
	uint64_t relasz, pltrelsz;
};

#define HP_ENVIRON_MAX 65536   /* bytes of /proc/PID/environ we read */
#define HP_RELA_MAX (1U << 20) /* bytes of one relocation table we read */

static uint32_t gnu_hash(const char *s)
{
	uint32_t h = 5381;

	for (; *s; s++)
		h = h * 33 + (unsigned char)*s;
	return h;
}

/* ld.so rewrites most d_ptr entries to run-time addresses; the vDSO's
 * stay link-time. Either way, return a run-time address. */
static hp_raddr_t dyn_addr(const struct dynmod *d, uint64_t v)
{
	return v < d->start ? d->bias + v : v;
}

int hp_proc_each_dyn(const struct hp_proc *proc, hp_raddr_t dyn, uint64_t size,
		     int (*fn)(const Elf64_Dyn *e, void *arg), void *arg)
{
	Elf64_Dyn e[128]; /* a few dozen entries: one read */

	if (size > HP_DYNAMIC_MAX)
		size = HP_DYNAMIC_MAX;
	for (uint64_t off = 0; off + sizeof(e[0]) <= size; off += sizeof(e)) {
		size_t n = (size - off) / sizeof(e[0]);

		if (n > HP_ARRAY_SIZE(e))
			n = HP_ARRAY_SIZE(e);
		if (hp_proc_read(proc, dyn + off, e, n * sizeof(e[0])))
			return -EIO;
		for (size_t i = 0; i < n; i++) {
			int rc;

			if (e[i].d_tag == DT_NULL)
				return 0;
			rc = fn(&e[i], arg);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* The entries of a module's dynamic section kept in struct dynmod: where,
 * and whether an address (made run-time: dyn_addr) or a size. */
static const struct {
	int64_t tag;
	size_t off;
	bool addr;
} dyn_fields[] = {
	{ DT_SYMTAB, offsetof(struct dynmod, symtab), true },
	{ DT_STRTAB, offsetof(struct dynmod, strtab), true },
	{ DT_STRSZ, offsetof(struct dynmod, strsz), false },
	{ DT_GNU_HASH, offsetof(struct dynmod, gnu_hash), true },
	{ DT_VERSYM, offsetof(struct dynmod, versym), true },
	{ DT_VERDEF, offsetof(struct dynmod, verdef), true },
	{ DT_VERDEFNUM, offsetof(struct dynmod, verdefnum), false },
	{ DT_RELA, offsetof(struct dynmod, rela), true },
	{ DT_RELASZ, offsetof(struct dynmod, relasz), false },
	{ DT_JMPREL, offsetof(struct dynmod, jmprel), true },
	{ DT_PLTRELSZ, offsetof(struct dynmod, pltrelsz), false },
};

/* One entry of a module's dynamic section, into struct dynmod @arg. */
static int take_dyn(const Elf64_Dyn *e, void *arg)
{
	struct dynmod *d = arg;

	for (size_t i = 0; i < HP_ARRAY_SIZE(dyn_fields); i++)
		if (e->d_tag == dyn_fields[i].tag) {
			uint64_t v = dyn_fields[i].addr
					     ? dyn_addr(d, e->d_un.d_ptr)
					     : e->d_un.d_val;

			memcpy((char *)d + dyn_fields[i].off, &v, sizeof(v));
			break;
		}
	return 0;
}

static int read_dynamic(const struct hp_proc *proc, const struct hp_map *m,
			struct dynmod *d)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[64];
	hp_raddr_t dyn = 0;
	uint64_t dyn_size = 0;

	if (hp_proc_read(proc, m->start, &eh, sizeof(eh)) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_phnum == 0 ||
	    eh.e_phnum > 64 || eh.e_phentsize != sizeof(Elf64_Phdr) ||
	    hp_proc_read(proc, m->start + eh.e_phoff, ph,
			 eh.e_phnum * sizeof(ph[0])))
		return -ENOENT;
	*d = (struct dynmod){ .start = m->start };
	for (int i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD && ph[i].p_offset == 0)
			d->bias = m->start - (ph[i].p_vaddr & ~0xfffULL);
		if (ph[i].p_type == PT_DYNAMIC) {
			dyn = ph[i].p_vaddr;
			dyn_size = ph[i].p_memsz;
		}
	}
	if (!dyn)
		return -ENOENT;
	/* (Unreadable part way: what was read may do.) */
	(void)hp_proc_each_dyn(proc, dyn + d->bias, dyn_size, take_dyn, d);
	return d->symtab && d->strtab && d->gnu_hash ? 0 : -ENOENT;
}

static int read_str(const struct hp_proc *proc, const struct dynmod *d,
		    uint64_t off, char *buf, size_t cap)
{
	size_t len = cap - 1;

	if (off >= d->strsz)
		return -ENOENT;
	if (len > d->strsz - off)
		len = d->strsz - off;
	if (hp_proc_read(proc, d->strtab + off, buf, len))
		return -ENOENT;
	buf[len] = 0;
	return 0;
}

/* Name of version index @ndx in the module's version definitions. */
static int version_name(const struct hp_proc *proc, const struct dynmod *d,
			uint16_t ndx, char *buf, size_t cap)
{
	hp_raddr_t p = d->verdef;

	for (uint64_t i = 0; p && i < d->verdefnum; i++) {
		Elf64_Verdef vd;
		Elf64_Verdaux va;

		if (hp_proc_read(proc, p, &vd, sizeof(vd)))
			return -ENOENT;
		if (vd.vd_ndx == ndx) {
			if (hp_proc_read(proc, p + vd.vd_aux, &va, sizeof(va)))
				return -ENOENT;
			return read_str(proc, d, va.vda_name, buf, cap);
		}
		if (!vd.vd_next)
			break;
		p += vd.vd_next;
	}
	return -ENOENT;
}

/* A symbol found (lookup_in). */
struct sym_found {
	hp_raddr_t addr;
	uint64_t size;
	bool ifunc; /* an IFUNC: @addr is its resolver */
};

/* @name's address, size and type in *@out. Return: 0 or -ENOENT. */
static int lookup_in(const struct hp_proc *proc, const struct dynmod *d,
		     const char *name, const char *version,
		     struct sym_found *out)
{
	uint32_t hdr[4], h = gnu_hash(name), idx;
	uint64_t bucket_at;

	if (hp_proc_read(proc, d->gnu_hash, hdr, sizeof(hdr)) || !hdr[0])
		return -ENOENT;
	/* header: nbuckets, symoffset, bloom words, bloom shift */
	bucket_at = d->gnu_hash + 16 + (uint64_t)hdr[2] * 8 +
		    (uint64_t)(h % hdr[0]) * 4;
	if (hp_proc_read(proc, bucket_at, &idx, sizeof(idx)) || idx < hdr[1])
		return -ENOENT;
	for (int n = 0; n < HP_CHAIN_MAX; n++, idx++) {
		const uint64_t chain_at =
			d->gnu_hash + 16 + (uint64_t)hdr[2] * 8 +
			(uint64_t)hdr[0] * 4 + (uint64_t)(idx - hdr[1]) * 4;
		char sname[HP_SYM_NAME_MAX];
		uint32_t h2;
		Elf64_Sym st;

		if (hp_proc_read(proc, chain_at, &h2, sizeof(h2)))
			return -ENOENT;
		if ((h | 1) == (h2 | 1) &&
		    !hp_proc_read(proc, d->symtab + (uint64_t)idx * sizeof(st),
				  &st, sizeof(st)) &&
		    st.st_shndx != SHN_UNDEF &&
		    !read_str(proc, d, st.st_name, sname, sizeof(sname)) &&
		    !strcmp(sname, name)) {
			uint16_t vs = 1;
			char vname[HP_SYM_NAME_MAX];
			bool ok = true;

			if (d->versym)
				ok = !hp_proc_read(proc, d->versym + idx * 2ULL,
						   &vs, sizeof(vs));
			if (ok && version)
				ok = !version_name(proc, d, vs & 0x7fff, vname,
						   sizeof(vname)) &&
				     !strcmp(vname, version);
			else if (ok)
				ok = !(vs & 0x8000); /* hidden: not default */
			if (ok) {
				out->addr = d->bias + st.st_value;
				out->size = st.st_size;
				out->ifunc = ELF64_ST_TYPE(st.st_info) ==
					     STT_GNU_IFUNC;
				return 0;
			}
		}
		if (h2 & 1)
			break;
	}
	return -ENOENT;
}

/* Is @addr code of the module mapped from @path (not its PLT's caller, not
 * another module's): where a bound slot of that module's function points. */
static bool is_code_of(const struct hp_proc *proc, hp_raddr_t addr,
		       const char *path)
{
	const struct hp_map *x = hp_proc_find_map(proc, addr);

	return x && (x->prot & PROT_EXEC) && !strcmp(x->path, path);
}

/*
 * Way 1: the slot the dynamic linker itself filled with this resolver's
 * choice. A module that calls its own IFUNC (libc calls memcpy, strlen,
 * strchr, ...) carries an R_X86_64_IRELATIVE relocation whose addend is the
 * resolver; ld.so called the resolver when it loaded the module, in this
 * process, and wrote the result there. Return: 0 and *@out, or -ENOENT.
 */
static int irelative_slot(const struct hp_proc *proc, const struct dynmod *d,
			  const char *path, hp_raddr_t resolver,
			  hp_raddr_t *out)
{
	const struct {
		hp_raddr_t at;
		uint64_t size;
	} tabs[] = { { d->rela, d->relasz }, { d->jmprel, d->pltrelsz } };

	for (size_t t = 0; t < HP_ARRAY_SIZE(tabs); t++) {
		const uint64_t n = tabs[t].size / sizeof(Elf64_Rela);
		Elf64_Rela *r = NULL;

		if (!tabs[t].at || !n || tabs[t].size > HP_RELA_MAX)
			continue;
		r = malloc(n * sizeof(*r));
		if (!r)
			return -ENOMEM;
		if (hp_proc_read(proc, tabs[t].at, r, n * sizeof(*r))) {
			free(r);
			continue;
		}
		for (uint64_t i = 0; i < n; i++) {
			hp_raddr_t v = 0;

			if (ELF64_R_TYPE(r[i].r_info) != R_X86_64_IRELATIVE ||
			    d->bias + (uint64_t)r[i].r_addend != resolver ||
			    hp_proc_read(proc, d->bias + r[i].r_offset, &v,
					 sizeof(v)) ||
			    !is_code_of(proc, v, path))
				continue;
			free(r);
			*out = v;
			return 0;
		}
		free(r);
	}
	return -ENOENT;
}

/* "dev inode" of the mapping at @start in /proc/@pid/maps: the identity of
 * the file mapped, even one deleted or replaced on disk since. */
static int map_file_id(pid_t pid, hp_raddr_t start, char *id, size_t cap)
{
	char path[64], line[512];
	FILE *fp = NULL;
	int rc = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	fp = fopen(path, "re");
	if (!fp)
		return -errno;
	while (rc && fgets(line, sizeof(line), fp)) {
		unsigned long long s = 0;
		char dev[32], ino[32];

		if (sscanf(line, "%llx-%*x %*s %*s %31s %31s", &s, dev, ino) ==
			    3 &&
		    s == start && strcmp(ino, "0")) {
			snprintf(id, cap, "%s %s", dev, ino);
			rc = 0;
		}
	}
	fclose(fp);
	return rc;
}

static int self_read(const struct hp_proc *proc, hp_raddr_t addr, void *buf,
		     size_t len)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)addr, len };

	(void)proc;
	return process_vm_readv(hp_self_pid(), &l, 1, &r, 1, 0) == (ssize_t)len
		       ? 0
		       : -EIO;
}

static const struct hp_mem_ops self_mem_ops = { .read = self_read };

/* Is the dynamic linker of @pid tuned as ours is (GLIBC_TUNABLES chooses
 * among implementations: glibc.cpu.hwcaps)? */
static bool same_tunables(pid_t pid)
{
	const char *mine = getenv("GLIBC_TUNABLES");
	char path[64], *env = NULL, *p = NULL;
	const char *theirs = NULL;
	size_t len = 0;
	bool same = false;
	FILE *fp = NULL;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	fp = fopen(path, "re");
	if (!fp)
		return false;
	env = malloc(HP_ENVIRON_MAX + 1);
	if (env)
		len = fread(env, 1, HP_ENVIRON_MAX, fp);
	fclose(fp);
	if (!env)
		return false;
	env[len] = 0;
	for (p = env; p < env + len; p += strlen(p) + 1)
		if (!strncmp(p, "GLIBC_TUNABLES=", 15))
			theirs = p + 15;
	same = theirs ? mine && !strcmp(mine, theirs) : !mine;
	free(env);
	return same;
}

typedef uint64_t hp_ifunc_resolver(uint64_t hwcap, void *arg);

/* An IFUNC symbol of a module the target maps. */
struct ifunc {
	const struct hp_map *m; /* the module's first mapping */
	const struct dynmod *d;
	const char *name;
	const char *version; /* NULL: the default */
	hp_raddr_t resolver; /* in the target, as its symbol table says */
};

/*
 * Way 2: the resolver's choice computed here. glibc's x86-64 resolvers are
 * pure functions of the CPU's features (GLRO(dl_x86_cpu_features)) and the
 * tunables: the same file, on the same CPU, with the same GLIBC_TUNABLES,
 * chooses the same implementation in hpatch as in the target. So when
 * hpatch maps the very file the target maps (same device and inode, which
 * a library replaced on disk since the target started is not), call the
 * resolver of hpatch's own copy and carry its choice over by offset. Never
 * called in the target: nothing runs there while it is planned, and a
 * resolver of an unknown library is not known to take no lock.
 * Return: 0 and *@out, or -ENOENT.
 */
static int resolve_here(const struct hp_proc *proc, const struct ifunc *f,
			hp_raddr_t *out)
{
	const struct hp_map *m = f->m;
	const struct dynmod *d = f->d;
	struct hp_proc self = { .pid = hp_self_pid(),
				.tid = hp_self_pid(),
				.mem_fd = -1,
				.mem = &self_mem_ops };
	char want[80], id[80];
	int rc = -ENOENT;

	if (map_file_id(proc->pid, m->start, want, sizeof(want)) ||
	    !same_tunables(proc->pid) || hp_proc_read_maps(&self))
		return -ENOENT;
	for (size_t i = 0; i < self.nr_maps && rc; i++) {
		const struct hp_map *sm = &self.maps[i];
		struct dynmod sd;
		uint64_t choice = 0;
		struct sym_found mine = { 0 };
		hp_ifunc_resolver *fn = NULL;

		/* The resolver hpatch calls is found in hpatch's own copy,
		 * by name: the target's memory, which says where its own is,
		 * never chooses what hpatch runs. */
		if (sm->offset != 0 || strcmp(sm->path, m->path) ||
		    map_file_id(self.pid, sm->start, id, sizeof(id)) ||
		    strcmp(id, want) || read_dynamic(&self, sm, &sd) ||
		    lookup_in(&self, &sd, f->name, f->version, &mine) ||
		    !mine.ifunc ||
		    mine.addr - sd.bias != f->resolver - d->bias ||
		    !is_code_of(&self, mine.addr, sm->path))
			continue;
		fn = (hp_ifunc_resolver *)(uintptr_t)mine.addr;
		choice = fn(0, NULL);
		if (!is_code_of(&self, choice, sm->path))
			continue;
		*out = d->bias + (choice - sd.bias);
		rc = is_code_of(proc, *out, m->path) ? 0 : -ENOENT;
	}
	hp_proc_close(&self);
	return rc;
}

/* Bind IFUNC @f to the implementation the process uses. */
static int bind_ifunc(const struct hp_proc *proc, const struct ifunc *f,
		      hp_raddr_t *out)
{
	const char *name = f->name, *path = f->m->path;
	int rc = irelative_slot(proc, f->d, path, f->resolver, out);

	if (rc == -ENOMEM)
		return rc;
	if (!rc) {
		hp_dbg(HP_DBG_RELOC,
		       "pid %d: IFUNC '%s' bound from the slot %s fills",
		       (int)proc->pid, name, path);
		return 0;
	}
	if (!resolve_here(proc, f, out)) {
		hp_dbg(HP_DBG_RELOC,
		       "pid %d: IFUNC '%s' bound by the resolver of "
		       "hpatch's own %s",
		       (int)proc->pid, name, path);
		return 0;
	}
	hp_error(-HP_E_NOSYM,
		 "pid %d: '%s' in '%s' is an IFUNC the process has not bound, "
		 "and hpatch does not map the same file to choose for it",
		 (int)proc->pid, name, path);
	hp_hint("the library was replaced on disk since the process started, "
		"or the process runs with other GLIBC_TUNABLES: restart it, "
		"or have the old program reference '%s'",
		name);
	return -HP_E_NOSYM;
}

int hp_module_find_symbol(const struct hp_proc *proc, const struct hp_map *m,
			  const char *name, const char *version,
			  hp_raddr_t *out)
{
	uint64_t size;

	return hp_module_find_function(proc, m, name, version, out, &size);
}

int hp_module_find_function(const struct hp_proc *proc, const struct hp_map *m,
			    const char *name, const char *version,
			    hp_raddr_t *out, uint64_t *size)
{
	struct dynmod d;
	struct sym_found found;

	if (m->offset != 0 || read_dynamic(proc, m, &d) ||
	    lookup_in(proc, &d, name, version, &found))
		return -ENOENT;
	*out = found.addr;
	if (size)
		*size = found.size;
	return found.ifunc ? -ENOENT : 0;
}

int hp_proc_find_symbol(const struct hp_proc *proc, const char *name,
			const char *version, hp_raddr_t *out)
{
	for (size_t i = 0; i < proc->nr_maps; i++) {
		const struct hp_map *m = &proc->maps[i];
		struct dynmod d;
		struct sym_found found;

		if (m->offset != 0 || m->path[0] != '/' ||
		    !(m->prot & PROT_READ) || read_dynamic(proc, m, &d))
			continue;
		if (lookup_in(proc, &d, name, version, &found))
			continue;
		*out = found.addr;
		if (found.ifunc) {
			const struct ifunc f = { m, &d, name, version, *out };

			return bind_ifunc(proc, &f, out);
		}
		return 0;
	}
	return hp_error(-HP_E_NOSYM,
			"pid %d: no loaded module defines '%s'%s%s",
			(int)proc->pid, name, version ? "@" : "",
			version ? version : "");
}
