/*
 * The proof's view of the binary (see diff_proof.c): its sections by
 * address, which GOT slot holds what, PLT stubs and IRELATIVE slots,
 * TLS slots, symbols by name.
 */
#include "differ/diff_proof_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct bsec *bsec_at(const struct prover *p, uint64_t addr,
				  size_t len)
{
	for (size_t i = 0; i < p->nr_secs; i++)
		if (addr >= p->secs[i].addr &&
		    addr + len <= p->secs[i].addr + p->secs[i].size)
			return &p->secs[i];
	return NULL;
}

/* Bytes at @addr, or NULL when no section with contents holds them. */
const uint8_t *hp_proof_bytes_at(const struct prover *p, uint64_t addr,
				 size_t len)
{
	const struct bsec *s = bsec_at(p, addr, len);

	return s && s->data ? s->data + (addr - s->addr) : NULL;
}

static bool slot_named(const struct hp_binary *b, const char *name,
		       uint64_t addr)
{
	const size_t len = name ? strcspn(name, "@") : 0;

	for (size_t i = 0; name && i < b->nr_slots; i++)
		if (b->slots[i].slot == addr &&
		    strlen(b->slots[i].name) == len &&
		    !strncmp(b->slots[i].name, name, len))
			return true;
	return false;
}

/* Whether @addr is a word of a GOT section that holds @value. */
static bool got_holds(const struct prover *p, uint64_t addr, uint64_t value)
{
	const struct bsec *s = bsec_at(p, addr, 8);

	return s && s->data && !strncmp(s->name, ".got", 4) &&
	       hp_get_le64(s->data + (addr - s->addr)) == value;
}

static bool got_slot(const void *ctx, const struct hp_rtarget *t, uint64_t addr)
{
	const struct prover *p = ctx;
	const struct bsec *s = bsec_at(p, addr, 8);

	if (!s || strncmp(s->name, ".got", 4))
		return false;
	/* Bound by name at run time, or filled by the linker itself (a
	 * RELATIVE slot in a PIE holds the link-time address too). */
	if (slot_named(p->bin, t->name, addr) ||
	    (t->defined && got_holds(p, addr, t->S)))
		return true;
	/* An ifunc's: the loader fills it with what its resolver returns. */
	for (size_t i = 0; t->defined && i < p->nr_irel; i++)
		if (p->irel[i].r_offset == addr &&
		    (uint64_t)p->irel[i].r_addend == t->S)
			return true;
	return false;
}

static int add_irelative(struct prover *p, Elf_Scn *scn, const GElf_Shdr *sh)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	const size_t n = sh->sh_entsize ? sh->sh_size / sh->sh_entsize : 0;

	for (size_t i = 0; d && i < n; i++) {
		GElf_Rela rela;
		GElf_Rela *irel = NULL;

		if (!gelf_getrela(d, (int)i, &rela) ||
		    GELF_R_TYPE(rela.r_info) != R_X86_64_IRELATIVE)
			continue;
		irel = realloc(p->irel, (p->nr_irel + 1) * sizeof(*irel));
		if (!irel)
			return -ENOMEM;
		p->irel = irel;
		p->irel[p->nr_irel++] = rela;
	}
	return 0;
}

/* "[endbr64] [bnd] jmp *slot(%rip)": .plt, .plt.sec and .plt.got stubs. */
static bool plt_stub(const void *ctx, const struct hp_rtarget *t, uint64_t addr)
{
	const struct prover *p = ctx;
	const struct bsec *s = bsec_at(p, addr, 1);
	const uint8_t *b = hp_proof_bytes_at(p, addr, 1);
	size_t i = 0, n;

	if (!s || !b || strncmp(s->name, ".plt", 4))
		return false;
	/* .plt.got stubs are 8 bytes: the last one ends its section. */
	n = s->addr + s->size - addr;
	if (n >= 4 && !memcmp(b, "\xf3\x0f\x1e\xfa", 4))
		i = 4;
	if (i < n && b[i] == 0xf2)
		i++;
	if (i + 6 > n || b[i] != 0xff || b[i + 1] != 0x25)
		return false;
	return got_slot(
		ctx, t,
		addr + i + 6 +
			(uint64_t)(int64_t)(int32_t)hp_get_le32(b + i + 2));
}

static bool tls_slot(const void *ctx, const struct hp_rtarget *t, uint32_t type,
		     uint64_t addr)
{
	const struct prover *p = ctx;

	if (addr && hp_binary_find_tls(p->bin, type, t->name, t->S) == addr)
		return true;
	/* An executable's initial-exec slot the linker filled itself. */
	return type == R_X86_64_TPOFF64 && p->ops.is_exec && t->defined &&
	       got_holds(p, addr, t->S - (uint64_t)p->ops.tls_offset);
}

int hp_prover_init(struct prover *p, const struct hp_binary *bin,
		   struct hp_diff_report *r)
{
	size_t shnum = 0, shstrndx = 0;
	Elf_Scn *scn = NULL;
	bool ambiguous = false;
	const struct hp_bsym *got = NULL;

	*p = (struct prover){
		.bin = bin,
		.r = r,
		.ops = { .got_slot = got_slot,
			 .plt_stub = plt_stub,
			 .tls_slot = tls_slot,
			 .ctx = p,
			 .is_exec = bin->is_exec,
			 .tls_offset = bin->tls_offset },
	};
	got = hp_binary_find_sym(bin, "_GLOBAL_OFFSET_TABLE_", NULL, true,
				 &ambiguous);
	if (!got)
		got = hp_binary_find_sym(bin, "_GLOBAL_OFFSET_TABLE_", NULL,
					 false, &ambiguous);
	p->ops.got = got ? got->value : 0;
	if (elf_getshdrnum(bin->elf, &shnum) ||
	    elf_getshdrstrndx(bin->elf, &shstrndx))
		return hp_error(-HP_E_BADELF, "'%s': cannot read sections: %s",
				bin->path, elf_errmsg(-1));
	p->secs = calloc(shnum ? shnum : 1, sizeof(*p->secs));
	p->files = calloc(bin->nr_syms ? bin->nr_syms : 1, sizeof(*p->files));
	if (!p->secs || !p->files)
		return -ENOMEM;
	while ((scn = elf_nextscn(bin->elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d = NULL;
		const char *name = NULL;

		if (!gelf_getshdr(scn, &sh) || !(sh.sh_flags & SHF_ALLOC))
			continue;
		if (sh.sh_type == SHT_RELA && add_irelative(p, scn, &sh))
			return -ENOMEM;
		name = elf_strptr(bin->elf, shstrndx, sh.sh_name);
		d = sh.sh_type == SHT_NOBITS ? NULL : elf_getdata(scn, NULL);
		p->secs[p->nr_secs++] = (struct bsec){
			.addr = sh.sh_addr,
			.size = sh.sh_size,
			.data = d && d->d_size == sh.sh_size ? d->d_buf : NULL,
			.name = name ? name : "",
		};
	}
	for (size_t i = 0; i < bin->nr_syms; i++)
		if (bin->syms[i].file && *bin->syms[i].file)
			p->files[p->nr_files++] = bin->syms[i].file;
	if (p->nr_files)
		qsort(p->files, p->nr_files, sizeof(*p->files),
		      hp_proof_cmp_str);
	return 0;
}

void hp_prover_release(struct prover *p)
{
	for (size_t i = 0; i < p->nr_miss; i++) {
		free(p->miss[i].fn);
		free(p->miss[i].detail);
	}
	free(p->miss);
	free(p->irel);
	free(p->secs);
	free(p->files);
}

/* ---- the object side ---- */

static int cmp_bsym_name(const void *key, const void *elem)
{
	return strcmp(key, ((const struct hp_bsym *)elem)->name);
}

/*
 * The binary's symbol for @s of the object being proved: a global by name,
 * a local by name and source file. Two sources of one name ("sds.c" of a
 * program and of a library it embeds) may both define a local: then the
 * one at @at, if not 0.
 */
const struct hp_bsym *hp_proof_find_bsym(const struct prover *p,
					 const struct hp_osym *s, uint64_t at)
{
	const struct hp_binary *b = p->bin;
	const struct hp_bsym *hit = NULL, *found = NULL;
	size_t len = strcspn(s->name, "@"), nr = 0;
	char name[256];
	bool ambiguous = false;

	if (!*s->name || s->type == STT_SECTION || s->type == STT_FILE ||
	    len >= sizeof(name))
		return NULL;
	/* "memcpy@GLIBC_2.14" from .symver: the binary strips versions. */
	memcpy(name, s->name, len);
	name[len] = 0;
	if (s->bind != STB_LOCAL)
		return hp_binary_find_sym(b, name, NULL, false, &ambiguous);
	hit = b->nr_syms ? bsearch(name, b->syms, b->nr_syms, sizeof(*b->syms),
				   cmp_bsym_name)
			 : NULL;
	while (hit && hit > b->syms && !strcmp(hit[-1].name, name))
		hit--;
	for (; hit && hit < b->syms + b->nr_syms && !strcmp(hit->name, name);
	     hit++) {
		if (hit->bind != STB_LOCAL || !hit->file || !p->o->file_sym ||
		    strcmp(hit->file, p->o->file_sym))
			continue;
		if (at && hit->value == at)
			return hit;
		if (!found || found->value != hit->value)
			nr++;
		found = hit;
	}
	return nr == 1 ? found : NULL;
}
