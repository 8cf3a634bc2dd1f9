/*
 * Reading relocatable objects: sections, symbols and RELA relocations into
 * the differ's own arrays. Names and section bytes are borrowed from libelf
 * and stay valid until hp_obj_free().
 */
#include "differ/differ_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HP_LOG_PREFIX "diff: "

static int elf_err(const char *path, const char *what)
{
	return hp_error(-HP_E_BADELF, "'%s': %s: %s", path, what,
			elf_errmsg(-1));
}

static int load_sections(struct hp_obj *o)
{
	size_t shnum, shstrndx;

	if (elf_getshdrnum(o->elf, &shnum) ||
	    elf_getshdrstrndx(o->elf, &shstrndx))
		return elf_err(o->path, "cannot read section headers");
	o->secs = calloc(shnum, sizeof(*o->secs));
	if (!o->secs)
		return -ENOMEM;
	o->nr_secs = shnum;
	for (size_t i = 0; i < shnum; i++) {
		struct hp_osec *s = &o->secs[i];
		Elf_Scn *scn = elf_getscn(o->elf, i);
		Elf_Data *d = NULL;

		s->index = i;
		s->obj = o;
		if (!scn || !gelf_getshdr(scn, &s->sh))
			return elf_err(o->path, "cannot read a section header");
		s->name = elf_strptr(o->elf, shstrndx, s->sh.sh_name);
		if (!s->name)
			s->name = "";
		if (s->sh.sh_type == SHT_NOBITS || s->sh.sh_type == SHT_NULL)
			continue;
		d = elf_getdata(scn, NULL);
		if (!d)
			return elf_err(o->path, "cannot read section data");
		if (d->d_size != s->sh.sh_size)
			return hp_error(-HP_E_BADELF,
					"'%s': section '%s' is compressed or "
					"split",
					o->path, s->name);
		s->data = d->d_buf;
	}
	return 0;
}

/*
 * An object of a -flto build holds the compiler's intermediate code in
 * ".gnu.lto_*" sections: the machine code is made only when the program
 * is linked, across objects, so no object's code is what runs (and with
 * -ffat-lto-objects, the code it also holds was not linked either).
 */
static int refuse_lto(const struct hp_obj *o)
{
	for (size_t i = 0; i < o->nr_secs; i++)
		if (!strncmp(o->secs[i].name, ".gnu.lto_", 9)) {
			hp_error(-HP_E_UNSUPPORTED,
				 "'%s': an LTO object (section '%s'): it "
				 "holds compiler intermediate code, not the "
				 "machine code the binary was linked from",
				 o->path, o->secs[i].name);
			hp_hint("build the release without -flto (for a "
				"Debian package: DEB_BUILD_MAINT_OPTIONS="
				"optimize=-lto), ship it, and patch that "
				"build");
			return -HP_E_UNSUPPORTED;
		}
	return 0;
}

static int load_symbols(struct hp_obj *o)
{
	struct hp_osec *symtab = NULL;
	Elf_Data *d = NULL;

	for (size_t i = 0; i < o->nr_secs; i++)
		if (o->secs[i].sh.sh_type == SHT_SYMTAB)
			symtab = &o->secs[i];
	if (!symtab)
		return hp_error(-HP_E_BADELF, "'%s': no symbol table", o->path);
	d = elf_getdata(elf_getscn(o->elf, symtab->index), NULL);
	if (!d || !symtab->sh.sh_entsize)
		return elf_err(o->path, "cannot read the symbol table");
	o->nr_syms = symtab->sh.sh_size / symtab->sh.sh_entsize;
	o->syms = calloc(o->nr_syms, sizeof(*o->syms));
	if (!o->syms)
		return -ENOMEM;
	for (size_t i = 0; i < o->nr_syms; i++) {
		struct hp_osym *s = &o->syms[i];

		s->index = i;
		if (!gelf_getsym(d, (int)i, &s->st))
			return elf_err(o->path, "cannot read a symbol");
		s->name = elf_strptr(o->elf, symtab->sh.sh_link, s->st.st_name);
		if (!s->name)
			s->name = "";
		s->type = GELF_ST_TYPE(s->st.st_info);
		s->bind = GELF_ST_BIND(s->st.st_info);
		/* An assembler-local label (clang's ".L.str", typed as an
		 * object, like gcc's untyped ".LC0") names no variable: it
		 * never reaches the binary, and its number shifts. */
		if (s->bind == STB_LOCAL && !strncmp(s->name, ".L", 2) &&
		    s->type == STT_OBJECT)
			s->type = STT_NOTYPE;
		if (s->st.st_shndx != SHN_UNDEF &&
		    s->st.st_shndx < o->nr_secs && s->st.st_shndx != SHN_ABS)
			s->sec = &o->secs[s->st.st_shndx];
		if (s->type == STT_SECTION && s->sec)
			s->name = s->sec->name;
		if (s->type == STT_FILE && !o->file_sym)
			o->file_sym = s->name;
		/* The section's primary symbol names it in the old binary. */
		if (s->sec && !s->sec->primary && *s->name &&
		    (s->type == STT_FUNC || s->type == STT_OBJECT ||
		     s->type == STT_TLS))
			s->sec->primary = s;
	}
	return 0;
}

/*
 * Mark each member of a COMDAT group with the group's signature (the name
 * of symbol sh_info). A group is an array of 32-bit words: the flags
 * (GRP_COMDAT), then the member sections' indices.
 */
static int load_groups(struct hp_obj *o)
{
	for (size_t i = 0; i < o->nr_secs; i++) {
		const struct hp_osec *g = &o->secs[i];
		Elf_Data *d = NULL;
		const uint32_t *w = NULL;
		size_t n;

		if (g->sh.sh_type != SHT_GROUP)
			continue;
		d = elf_getdata(elf_getscn(o->elf, i), NULL);
		if (!d || !d->d_buf || d->d_size < 4 ||
		    g->sh.sh_info >= o->nr_syms)
			return hp_error(-HP_E_BADELF,
					"'%s': section group '%s' is malformed",
					o->path, g->name);
		w = d->d_buf;
		n = d->d_size / 4;
		if (!(w[0] & GRP_COMDAT))
			continue;
		for (size_t k = 1; k < n; k++) {
			if (w[k] >= o->nr_secs)
				return hp_error(-HP_E_BADELF,
						"'%s': section group '%s' "
						"names section %u of %zu",
						o->path, g->name, w[k],
						o->nr_secs);
			o->secs[w[k]].comdat = o->syms[g->sh.sh_info].name;
		}
	}
	return 0;
}

static bool is_findable(const struct hp_osym *s)
{
	return s->type != STT_SECTION && s->type != STT_FILE && s->sec;
}

static int cmp_by_name(const void *a, const void *b)
{
	const struct hp_osym *x = *(struct hp_osym *const *)a;
	const struct hp_osym *y = *(struct hp_osym *const *)b;
	const int c = strcmp(x->name, y->name);

	return c ? c : (x->index > y->index) - (x->index < y->index);
}

/*
 * Correlation looks up every symbol in the twin object, and the build pass
 * every undefined reference of the patch code in every object: scanning
 * made hpdiff quadratic in the size of the program.
 */
static int index_symbols(struct hp_obj *o)
{
	o->by_name = calloc(o->nr_syms ? o->nr_syms : 1, sizeof(*o->by_name));
	if (!o->by_name)
		return -ENOMEM;
	for (size_t i = 0; i < o->nr_syms; i++)
		if (is_findable(&o->syms[i]))
			o->by_name[o->nr_by_name++] = &o->syms[i];
	if (o->nr_by_name)
		qsort(o->by_name, o->nr_by_name, sizeof(*o->by_name),
		      cmp_by_name);
	return 0;
}

static int load_relocs(struct hp_obj *o)
{
	for (size_t i = 0; i < o->nr_secs; i++) {
		struct hp_osec *rs = &o->secs[i];
		struct hp_osec *target = NULL;
		Elf_Data *d = NULL;
		size_t n;

		if (rs->sh.sh_type == SHT_REL)
			return hp_error(-HP_E_UNSUPPORTED_RELOC,
					"'%s': section '%s': REL relocations "
					"(x86-64 objects use RELA)",
					o->path, rs->name);
		if (rs->sh.sh_type != SHT_RELA)
			continue;
		if (rs->sh.sh_info >= o->nr_secs || !rs->sh.sh_entsize)
			return hp_error(-HP_E_BADELF,
					"'%s': section '%s': bad sh_info",
					o->path, rs->name);
		target = &o->secs[rs->sh.sh_info];
		d = elf_getdata(elf_getscn(o->elf, i), NULL);
		if (!d)
			return elf_err(o->path, "cannot read relocations");
		n = rs->sh.sh_size / rs->sh.sh_entsize;
		target->relocs = calloc(n ? n : 1, sizeof(*target->relocs));
		if (!target->relocs)
			return -ENOMEM;
		target->nr_relocs = n;
		for (size_t j = 0; j < n; j++) {
			struct hp_orel *r = &target->relocs[j];
			GElf_Rela rela;
			size_t symi;

			if (!gelf_getrela(d, (int)j, &rela))
				return elf_err(o->path,
					       "cannot read a relocation");
			symi = GELF_R_SYM(rela.r_info);
			if (symi >= o->nr_syms)
				return hp_error(
					-HP_E_BADELF,
					"'%s': section '%s': relocation "
					"%zu names symbol %zu of %zu",
					o->path, rs->name, j, symi, o->nr_syms);
			r->offset = rela.r_offset;
			r->type = GELF_R_TYPE(rela.r_info);
			r->sym = &o->syms[symi];
			r->addend = rela.r_addend;
		}
	}
	return 0;
}

int hp_obj_open(const char *path, const char *relpath, struct hp_obj **out)
{
	return hp_obj_open_flags(path, relpath, 0, out);
}

int hp_obj_open_flags(const char *path, const char *relpath,
		      enum hp_obj_open_flags flags, struct hp_obj **out)
{
	struct hp_obj *o = NULL;
	GElf_Ehdr eh;
	int rc;

	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->fd = -1;
	o->path = strdup(path);
	o->relpath = strdup(relpath);
	if (!o->path || !o->relpath) {
		rc = -ENOMEM;
		goto out_free;
	}
	o->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (o->fd < 0) {
		rc = hp_error_rc(-errno, "'%s'", path);
		goto out_free;
	}
	o->elf = elf_begin(o->fd, ELF_C_READ_MMAP, NULL);
	if (!o->elf || elf_kind(o->elf) != ELF_K_ELF ||
	    !gelf_getehdr(o->elf, &eh)) {
		rc = elf_err(path, "not an ELF file");
		goto out_free;
	}
	if (eh.e_type != ET_REL || eh.e_machine != EM_X86_64 ||
	    gelf_getclass(o->elf) != ELFCLASS64) {
		rc = hp_error(-HP_E_BADELF,
			      "'%s': not an x86-64 relocatable object (.o)",
			      path);
		goto out_free;
	}
	rc = load_sections(o);
	if (!rc)
		rc = refuse_lto(o);
	if (!rc)
		rc = load_symbols(o);
	if (!rc)
		rc = load_groups(o);
	if (!rc)
		rc = index_symbols(o);
	if (!rc)
		rc = load_relocs(o);
	if (!rc && !(flags & HP_OBJ_AS_WRITTEN)) {
		const uint64_t t0 = hp_now_us();

		rc = hp_obj_split(o);
		o->split_us = hp_now_us() - t0;
	}
	if (rc)
		goto out_free;
	*out = o;
	return 0;
out_free:
	hp_obj_free(o);
	return rc;
}

void hp_obj_free(struct hp_obj *o)
{
	if (!o)
		return;
	if (o->secs)
		for (size_t i = 0; i < o->nr_secs; i++) {
			free(o->secs[i].relocs);
			free(o->secs[i].problem);
			free(o->secs[i].own_data);
			free(o->secs[i].own_name);
		}
	free(o->piece_syms);
	for (size_t i = 0; o->syms && i < o->nr_syms; i++)
		free(o->syms[i].reason);
	free(o->secs);
	free(o->syms);
	free(o->by_name);
	if (o->elf)
		elf_end(o->elf);
	if (o->fd >= 0)
		close(o->fd);
	free(o->path);
	free(o->relpath);
	free(o);
}

/* The first in the symbol table, as a scan would find. */
struct hp_osym *hp_obj_find_sym_by_name(struct hp_obj *o, const char *name)
{
	size_t lo = 0, hi = o->nr_by_name;

	while (lo < hi) {
		const size_t mid = lo + (hi - lo) / 2;

		if (strcmp(o->by_name[mid]->name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < o->nr_by_name && !strcmp(o->by_name[lo]->name, name))
		return o->by_name[lo];
	return NULL;
}

bool hp_osym_is_func(const struct hp_osym *s)
{
	return s->type == STT_FUNC && s->sec && hp_osec_is_text(s->sec);
}

bool hp_osym_is_fragment(const struct hp_osym *s)
{
	const char *cold = strstr(s->name, ".cold");

	return cold && (cold[5] == 0 || cold[5] == '.');
}

size_t hp_origin_len(const char *name)
{
	return strcspn(name, ".");
}

bool hp_osym_is_fragment_of(const struct hp_osym *f, const struct hp_osym *p)
{
	const char *cold =
		hp_osym_is_fragment(f) ? strstr(f->name, ".cold") : NULL;

	return cold && hp_osym_is_func(f) && hp_osym_is_func(p) &&
	       !hp_osym_is_fragment(p) &&
	       strlen(p->name) == (size_t)(cold - f->name) &&
	       !strncmp(p->name, f->name, (size_t)(cold - f->name));
}

bool hp_osym_is_data(const struct hp_osym *s)
{
	return (s->type == STT_OBJECT || s->type == STT_TLS) && s->sec;
}

bool hp_osec_is_text(const struct hp_osec *s)
{
	return (s->sh.sh_flags & SHF_EXECINSTR) &&
	       s->sh.sh_type == SHT_PROGBITS;
}

bool hp_osec_is_strings(const struct hp_osec *s)
{
	return (s->sh.sh_flags & (SHF_MERGE | SHF_STRINGS)) ==
	       (SHF_MERGE | SHF_STRINGS);
}

/*
 * Where in its section a relocation points. A named symbol or label is exact
 * (st_value + addend). For PC-relative types the addend also carries the
 * distance from the field to the end of the instruction (-4 for most), so
 * the referenced object starts at st_value, and st_value + addend + 4 is
 * only an estimate when the symbol is a bare section symbol; callers that
 * need the exact object (merged strings) use the label's value.
 */
int64_t hp_orel_target_off(const struct hp_orel *r)
{
	switch (r->type) {
	case R_X86_64_PC32:
	case R_X86_64_PLT32:
	case R_X86_64_GOTPCREL:
	case R_X86_64_GOTPCRELX:
	case R_X86_64_REX_GOTPCRELX:
		if (r->sym->type == STT_SECTION)
			return (int64_t)r->sym->st.st_value + r->addend +
			       (r->bias ? r->bias : 4);
		return (int64_t)r->sym->st.st_value;
	default:
		return (int64_t)r->sym->st.st_value + r->addend;
	}
}

const char *hp_reloc_type_name(uint32_t type)
{
	static const char *const names[] = {
		[R_X86_64_NONE] = "R_X86_64_NONE",
		[R_X86_64_64] = "R_X86_64_64",
		[R_X86_64_PC32] = "R_X86_64_PC32",
		[R_X86_64_GOT32] = "R_X86_64_GOT32",
		[R_X86_64_PLT32] = "R_X86_64_PLT32",
		[R_X86_64_COPY] = "R_X86_64_COPY",
		[R_X86_64_GLOB_DAT] = "R_X86_64_GLOB_DAT",
		[R_X86_64_JUMP_SLOT] = "R_X86_64_JUMP_SLOT",
		[R_X86_64_RELATIVE] = "R_X86_64_RELATIVE",
		[R_X86_64_GOTPCREL] = "R_X86_64_GOTPCREL",
		[R_X86_64_32] = "R_X86_64_32",
		[R_X86_64_32S] = "R_X86_64_32S",
		[R_X86_64_16] = "R_X86_64_16",
		[R_X86_64_PC16] = "R_X86_64_PC16",
		[R_X86_64_8] = "R_X86_64_8",
		[R_X86_64_PC8] = "R_X86_64_PC8",
		[R_X86_64_DTPMOD64] = "R_X86_64_DTPMOD64",
		[R_X86_64_DTPOFF64] = "R_X86_64_DTPOFF64",
		[R_X86_64_TPOFF64] = "R_X86_64_TPOFF64",
		[R_X86_64_TLSGD] = "R_X86_64_TLSGD",
		[R_X86_64_TLSLD] = "R_X86_64_TLSLD",
		[R_X86_64_DTPOFF32] = "R_X86_64_DTPOFF32",
		[R_X86_64_GOTTPOFF] = "R_X86_64_GOTTPOFF",
		[R_X86_64_TPOFF32] = "R_X86_64_TPOFF32",
		[R_X86_64_PC64] = "R_X86_64_PC64",
		[R_X86_64_GOTOFF64] = "R_X86_64_GOTOFF64",
		[R_X86_64_GOTPC32] = "R_X86_64_GOTPC32",
		[R_X86_64_SIZE32] = "R_X86_64_SIZE32",
		[R_X86_64_SIZE64] = "R_X86_64_SIZE64",
		[R_X86_64_GOTPC32_TLSDESC] = "R_X86_64_GOTPC32_TLSDESC",
		[R_X86_64_TLSDESC_CALL] = "R_X86_64_TLSDESC_CALL",
		[R_X86_64_TLSDESC] = "R_X86_64_TLSDESC",
		[R_X86_64_IRELATIVE] = "R_X86_64_IRELATIVE",
		[R_X86_64_GOTPCRELX] = "R_X86_64_GOTPCRELX",
		[R_X86_64_REX_GOTPCRELX] = "R_X86_64_REX_GOTPCRELX",
	};

	if (type < HP_ARRAY_SIZE(names) && names[type])
		return names[type];
	return "unknown relocation type";
}
