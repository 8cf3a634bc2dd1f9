/*
 * Binding external symbols by name, as the dynamic linker would: search the
 * modules in load order (the executable first) through each one's GNU hash
 * table and dynamic symbol table, read from the process's own memory. Used
 * only for functions the old program never referenced; everything else was
 * resolved by hpdiff or goes through the program's own GOT.
 */
#include "runtime/runtime_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <elf.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

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
};

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
	dyn += d->bias;
	for (uint64_t off = 0; off + sizeof(Elf64_Dyn) <= dyn_size;
	     off += sizeof(Elf64_Dyn)) {
		Elf64_Dyn e;

		if (hp_proc_read(proc, dyn + off, &e, sizeof(e)) ||
		    e.d_tag == DT_NULL)
			break;
		switch (e.d_tag) {
		case DT_SYMTAB:
			d->symtab = dyn_addr(d, e.d_un.d_ptr);
			break;
		case DT_STRTAB:
			d->strtab = dyn_addr(d, e.d_un.d_ptr);
			break;
		case DT_STRSZ:
			d->strsz = e.d_un.d_val;
			break;
		case DT_GNU_HASH:
			d->gnu_hash = dyn_addr(d, e.d_un.d_ptr);
			break;
		case DT_VERSYM:
			d->versym = dyn_addr(d, e.d_un.d_ptr);
			break;
		case DT_VERDEF:
			d->verdef = dyn_addr(d, e.d_un.d_ptr);
			break;
		case DT_VERDEFNUM:
			d->verdefnum = e.d_un.d_val;
			break;
		}
	}
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

static int lookup_in(const struct hp_proc *proc, const struct dynmod *d,
		     const char *name, const char *version, hp_raddr_t *out,
		     bool *ifunc)
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
				*out = d->bias + st.st_value;
				*ifunc = ELF64_ST_TYPE(st.st_info) ==
					 STT_GNU_IFUNC;
				return 0;
			}
		}
		if (h2 & 1)
			break;
	}
	return -ENOENT;
}

int hp_proc_find_symbol(const struct hp_proc *proc, const char *name,
			const char *version, hp_raddr_t *out)
{
	for (size_t i = 0; i < proc->nr_maps; i++) {
		const struct hp_map *m = &proc->maps[i];
		struct dynmod d;
		bool ifunc = false;

		if (m->offset != 0 || m->path[0] != '/' ||
		    !(m->prot & PROT_READ) || read_dynamic(proc, m, &d))
			continue;
		if (lookup_in(proc, &d, name, version, out, &ifunc))
			continue;
		if (ifunc) {
			hp_error(
				-HP_E_NOSYM,
				"pid %d: '%s' in '%s' is an IFUNC: its address "
				"is chosen at load time",
				(int)proc->pid, name, m->path);
			hp_hint("have the old program reference '%s' (it then "
				"has a GOT slot hpdiff can reuse)",
				name);
			return -HP_E_NOSYM;
		}
		return 0;
	}
	return hp_error(-HP_E_NOSYM,
			"pid %d: no loaded module defines '%s'%s%s",
			(int)proc->pid, name, version ? "@" : "",
			version ? version : "");
}
