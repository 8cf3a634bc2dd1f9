/*
 * From correlated objects to a patch module: the image, its function table
 * and its relocations, every reference to the running program resolved
 * against the old linked binary.
 *
 * Passes:
 * 1. Closure: start from the changed and new functions' sections; follow
 *    each relocation. Sections of other changed/new functions, new data and
 *    anonymous read-only data (string tables, jump tables, constants) are
 *    included; named unchanged symbols stay in the old program. Calls to
 *    other libraries get a veneer "jmp *slot(%rip)" in the image, reading
 *    the program's own GOT slot when it has one (so it binds exactly as the
 *    process did), else a slot of the image bound by name at apply time.
 *    Example: format_quote -> .LC0 (included), snprintf (veneer via the
 *    binary's JUMP_SLOT), unit_price (old program).
 * 2. Layout: text (code, read-only data, then veneers and slots reserved
 *    in pass 1) from offset 0;
 *    writable data from the next page; bss after it.
 * 3. Emit: each ELF relocation becomes one hp_reloc of a runtime type
 *    against IMAGE, MODULE or SYMBOL.
 * After pass 3 the objects are no longer needed.
 */
#include "differ/differ_int.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "signing/signing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HP_FUNC_ALIGN 16

/*
 * An image GOT slot and/or veneer for one symbol, reserved in pass 1 and
 * placed with the text, so that pass 3 finds every offset final.
 */
struct slot {
	const char *name;
	const struct hp_obj *obj; /* defining object for locals, else NULL */
	uint64_t module_got;	  /* the program's own GOT slot, or 0 */
	bool need_slot;
	bool need_veneer;
	uint32_t off;	     /* image offset of the slot */
	uint32_t veneer_off; /* image offset of the veneer */
	bool slot_emitted;
	bool veneer_emitted;
};

struct builder {
	const struct hp_diff_opts *opts;
	struct hp_binary *bin;
	struct hp_diff_report *r;
	struct hp_pair *pairs;
	size_t nr_pairs;
	struct hp_osec **secs; /* included sections, in inclusion order */
	size_t nr_secs;
	struct hp_buf text;
	struct hp_buf data;
	uint32_t bss_size;
	struct slot *slots;
	size_t nr_slots;
	struct hp_module *m;
	size_t cap_relocs;
	int nr_errors;
};

struct target {
	uint8_t base;
	int64_t value; /* address of the symbol (without addend) */
};

static bool sym_included(const struct hp_osym *s)
{
	return s->sec && s->sec->state == HP_SEC_INCLUDED;
}

/* A global function or new object included from another object. */
static struct hp_osym *find_included_global(struct builder *b, const char *name)
{
	for (size_t i = 0; i < b->nr_pairs; i++) {
		struct hp_obj *o = b->pairs[i].new_obj;
		struct hp_osym *s = o ? hp_obj_find_sym_by_name(o, name) : NULL;

		if (s && s->bind != STB_LOCAL && sym_included(s))
			return s;
	}
	return NULL;
}

static int include_sec(struct builder *b, struct hp_osec *s)
{
	struct hp_osec **secs = NULL;

	if (s->state == HP_SEC_INCLUDED)
		return 0;
	secs = realloc(b->secs, (b->nr_secs + 1) * sizeof(*secs));
	if (!secs)
		return -ENOMEM;
	b->secs = secs;
	b->secs[b->nr_secs++] = s;
	s->state = HP_SEC_INCLUDED;
	return 0;
}

/* The name the old binary knows a new-build symbol by. */
static const char *old_name(const struct hp_osym *s)
{
	return s->twin ? s->twin->name : s->name;
}

static int lookup_old(struct builder *b, struct hp_obj *o,
		      const struct hp_osym *s, uint64_t *addr)
{
	bool local = s->bind == STB_LOCAL, ambiguous = false;
	const struct hp_bsym *bs = hp_binary_find_sym(
		b->bin, old_name(s), local ? o->file_sym : NULL, local,
		&ambiguous);

	if (!bs && !local)
		bs = hp_binary_find_sym(b->bin, old_name(s), NULL, false,
					&ambiguous);
	if (ambiguous) {
		b->nr_errors++;
		return hp_report_refuse(
			       b->r, s->name, o->relpath, -HP_E_AMBIGSYM,
			       "rebuild with distinct names for file-local "
			       "symbols",
			       "several symbols '%s' in '%s' match file '%s'",
			       old_name(s), b->bin->path,
			       o->file_sym ? o->file_sym : "?")
			       ?: -HP_E_AMBIGSYM;
	}
	if (!bs) {
		b->nr_errors++;
		return hp_report_refuse(b->r, s->name, o->relpath, -HP_E_NOSYM,
					"check that --binary is the binary "
					"built from --old",
					"'%s' is not in the old binary '%s'",
					old_name(s), b->bin->path)
			       ?: -HP_E_NOSYM;
	}
	*addr = bs->value;
	return 0;
}

static bool is_got_type(uint32_t type)
{
	return type == R_X86_64_GOTPCREL || type == R_X86_64_GOTPCRELX ||
	       type == R_X86_64_REX_GOTPCRELX;
}

static int add_sym(struct builder *b, const char *name, uint32_t *idx)
{
	struct hp_module *m = b->m;
	struct hp_sym *syms = NULL;
	char *at = NULL;

	for (uint32_t i = 0; i < m->nr_syms; i++)
		if (!strcmp(m->syms[i].name, name)) {
			*idx = i;
			return 0;
		}
	syms = realloc(m->syms, (m->nr_syms + 1) * sizeof(*syms));
	if (!syms)
		return -ENOMEM;
	m->syms = syms;
	syms[m->nr_syms] = (struct hp_sym){ .name = strdup(name) };
	if (!syms[m->nr_syms].name)
		return -ENOMEM;
	/* "memcpy@GLIBC_2.14" in objects using .symver: keep the version. */
	at = strchr(syms[m->nr_syms].name, '@');
	if (at) {
		*at = 0;
		syms[m->nr_syms].version = strdup(at + (at[1] == '@' ? 2 : 1));
		if (!syms[m->nr_syms].version)
			return -ENOMEM;
	}
	*idx = m->nr_syms++;
	return 0;
}

static struct slot *find_slot(struct builder *b, const struct hp_osym *s,
			      const struct hp_obj *o)
{
	const struct hp_obj *key_obj = s->bind == STB_LOCAL ? o : NULL;

	for (size_t i = 0; i < b->nr_slots; i++)
		if (b->slots[i].obj == key_obj &&
		    !strcmp(b->slots[i].name, s->name))
			return &b->slots[i];
	return NULL;
}

/* Pass 1: note that @s needs an image GOT slot or a call veneer. */
static int reserve_slot(struct builder *b, const struct hp_osym *s,
			const struct hp_obj *o, bool veneer)
{
	struct slot *sl = find_slot(b, s, o);

	if (!sl) {
		struct slot *slots =
			realloc(b->slots, (b->nr_slots + 1) * sizeof(*slots));

		if (!slots)
			return -ENOMEM;
		b->slots = slots;
		sl = &slots[b->nr_slots++];
		*sl = (struct slot){
			.name = s->name,
			.obj = s->bind == STB_LOCAL ? o : NULL,
			.module_got =
				s->bind == STB_LOCAL
					? 0
					: hp_binary_find_slot(b->bin, s->name),
		};
	}
	if (veneer)
		sl->need_veneer = true;
	/* The program's own slot binds exactly as the process did. */
	if (!sl->module_got)
		sl->need_slot = true;
	return 0;
}

/* Pass 2: veneers and slots follow the text sections. */
static int place_slots(struct builder *b)
{
	static const uint8_t veneer[HP_X86_VENEER_SIZE] = HP_X86_VENEER_BYTES;
	static const uint8_t zero[8];
	int rc = 0;

	for (size_t i = 0; i < b->nr_slots && !rc; i++) {
		struct slot *sl = &b->slots[i];

		rc = hp_buf_align(&b->text, 8);
		if (!rc && sl->need_slot) {
			sl->off = (uint32_t)b->text.len;
			rc = hp_buf_append(&b->text, zero, sizeof(zero));
		}
		if (!rc && sl->need_veneer) {
			sl->veneer_off = (uint32_t)b->text.len;
			rc = hp_buf_append(&b->text, veneer, sizeof(veneer));
		}
	}
	return rc;
}

/*
 * Resolve an undefined (external) symbol: another object's included code,
 * the old program, or another library (by name).
 */
static int resolve_undef(struct builder *b, const struct hp_osym *s,
			 struct target *t, bool *external)
{
	struct hp_osym *inc = find_included_global(b, s->name);
	const struct hp_bsym *bs = NULL;
	bool ambiguous = false;

	*external = false;
	if (inc) {
		t->base = HP_RB_IMAGE;
		t->value = inc->sec->image_off + inc->st.st_value;
		return 0;
	}
	bs = hp_binary_find_sym(b->bin, s->name, NULL, false, &ambiguous);
	if (bs && bs->value) {
		t->base = HP_RB_MODULE;
		t->value = (int64_t)bs->value;
		return 0;
	}
	/* Bound by name only if a slot or field needs the address itself. */
	*external = true;
	t->base = HP_RB_SYMBOL;
	t->value = -1;
	return 0;
}

/* Give an external target its symbol index, on first real use. */
static int bind_external(struct builder *b, const char *name, struct target *t)
{
	uint32_t idx;
	int rc;

	if (t->base != HP_RB_SYMBOL || t->value >= 0)
		return 0;
	rc = add_sym(b, name, &idx);
	if (!rc)
		t->value = idx;
	return rc;
}

/* Where the symbol of @r lives, for a symbol defined in @o. */
static int resolve_defined(struct builder *b, struct hp_obj *o,
			   const struct hp_osym *s, struct target *t)
{
	const struct hp_osec *sec = s->sec;
	uint64_t addr;
	int rc;

	if (sym_included(s)) {
		t->base = HP_RB_IMAGE;
		t->value = sec->image_off + (int64_t)s->st.st_value;
		return 0;
	}
	if (s->type == STT_SECTION || s->type == STT_NOTYPE) {
		/* Label or section symbol in a section the old program has. */
		if (!sec->primary) {
			/* Pass 1 refused it (anonymous writable or TLS data). */
			if (!b->nr_errors)
				hp_report_refuse(
					b->r, s->name, o->relpath,
					-HP_E_UNSUPPORTED, NULL,
					"reference to anonymous section '%s'",
					sec->name);
			b->nr_errors++;
			return -HP_E_UNSUPPORTED;
		}
		rc = lookup_old(b, o, sec->primary, &addr);
		if (rc)
			return rc;
		t->base = HP_RB_MODULE;
		t->value = (int64_t)(addr - sec->primary->st.st_value +
				     s->st.st_value);
		return 0;
	}
	rc = lookup_old(b, o, s, &addr);
	if (rc)
		return rc;
	t->base = HP_RB_MODULE;
	t->value = (int64_t)addr;
	return 0;
}

/* Pass 1 for one relocation: include what must travel with the patch. */
static int close_over(struct builder *b, struct hp_osec *from,
		      struct hp_orel *r)
{
	struct hp_osym *s = r->sym;
	struct hp_osec *ts = s->sec;

	if (r->type == R_X86_64_GOTTPOFF && b->bin->is_exec) {
		/* Always an image slot: it holds a constant offset. */
		int rc = reserve_slot(b, s, from->obj, false);
		struct slot *sl = rc ? NULL : find_slot(b, s, from->obj);

		if (sl) {
			sl->module_got = 0;
			sl->need_slot = true;
		}
		return rc;
	}
	if (!ts) {
		bool ambiguous = false;
		const struct hp_bsym *bs = NULL;
		bool call =
			r->type == R_X86_64_PLT32 || r->type == R_X86_64_PC32;

		if (find_included_global(b, s->name))
			return is_got_type(r->type)
				       ? reserve_slot(b, s, from->obj, false)
				       : 0;
		bs = hp_binary_find_sym(b->bin, s->name, NULL, false,
					&ambiguous);
		if (is_got_type(r->type))
			return reserve_slot(b, s, from->obj, false);
		if (call && !(bs && bs->value))
			return reserve_slot(b, s, from->obj, true);
		return 0;
	}
	if (is_got_type(r->type)) {
		int rc = reserve_slot(b, s, from->obj, false);

		if (rc)
			return rc;
	}
	if (ts->state == HP_SEC_INCLUDED)
		return 0;
	if (ts->primary) {
		/* A parent's .cold part assumes the parent's frame layout. */
		if (ts->primary->changed || ts->primary->is_new ||
		    hp_osym_is_fragment(ts->primary))
			return include_sec(b, ts);
		return 0;
	}
	if (!(ts->sh.sh_flags & SHF_ALLOC) || (ts->sh.sh_flags & SHF_TLS) ||
	    (ts->sh.sh_flags & SHF_WRITE)) {
		b->nr_errors++;
		return hp_report_refuse(
			b->r, s->name, from->obj->relpath, -HP_E_UNSUPPORTED,
			"give the data a name (a static variable) so the "
			"patch can refer to the running program's copy",
			"'%s'+0x%llx refers to anonymous %s section '%s'",
			from->name, (unsigned long long)r->offset,
			(ts->sh.sh_flags & SHF_TLS)	? "thread-local"
			: (ts->sh.sh_flags & SHF_WRITE) ? "writable"
							: "non-allocated",
			ts->name);
	}
	return include_sec(b, ts);
}

static int close_all(struct builder *b)
{
	int rc = 0;

	for (size_t i = 0; i < b->nr_secs && !rc; i++) {
		struct hp_osec *s = b->secs[i];

		for (size_t j = 0; j < s->nr_relocs && !rc; j++)
			rc = close_over(b, s, &s->relocs[j]);
	}
	return rc;
}

/* Pass 2: place every included section. */
static int layout(struct builder *b)
{
	int rc = 0;

	for (size_t i = 0; i < b->nr_secs && !rc; i++) {
		struct hp_osec *s = b->secs[i];
		size_t align = s->sh.sh_addralign ? s->sh.sh_addralign : 1;

		if (hp_osec_is_text(s) && align < HP_FUNC_ALIGN)
			align = HP_FUNC_ALIGN;
		if (s->sh.sh_type == SHT_NOBITS) {
			continue; /* bss: placed after data below */
		} else if (s->sh.sh_flags & SHF_WRITE) {
			rc = hp_buf_align(&b->data, align);
			s->image_off =
				(uint32_t)b->data.len; /* data-relative */
			if (!rc)
				rc = hp_buf_append(&b->data, s->data,
						   s->sh.sh_size);
		} else {
			rc = hp_buf_align(&b->text, align);
			s->image_off = (uint32_t)b->text.len;
			if (!rc)
				rc = hp_buf_append(&b->text, s->data,
						   s->sh.sh_size);
		}
	}
	return rc;
}

static int finish_layout(struct builder *b)
{
	uint32_t data_off =
		HP_ALIGN_UP((uint32_t)b->text.len, (uint32_t)HP_IMAGE_PAGE);
	uint32_t bss = 0;

	for (size_t i = 0; i < b->nr_secs; i++) {
		struct hp_osec *s = b->secs[i];
		size_t align = s->sh.sh_addralign ? s->sh.sh_addralign : 1;

		if (s->sh.sh_type == SHT_NOBITS) {
			bss = HP_ALIGN_UP(bss, (uint32_t)align);
			s->image_off = data_off +
				       HP_ALIGN_UP((uint32_t)b->data.len, 16) +
				       bss;
			bss += (uint32_t)s->sh.sh_size;
		} else if (s->sh.sh_flags & SHF_WRITE) {
			s->image_off += data_off;
		}
	}
	b->bss_size = bss ? HP_ALIGN_UP((uint32_t)b->data.len, 16) -
				      (uint32_t)b->data.len + bss
			  : 0;
	return 0;
}

static int add_reloc(struct builder *b, uint32_t offset, uint8_t type,
		     const struct target *t, int64_t addend)
{
	struct hp_module *m = b->m;

	if (m->nr_relocs == b->cap_relocs) {
		size_t cap = b->cap_relocs ? 2 * b->cap_relocs : 64;
		struct hp_reloc *rel = realloc(m->relocs, cap * sizeof(*rel));

		if (!rel)
			return -ENOMEM;
		m->relocs = rel;
		b->cap_relocs = cap;
	}
	m->relocs[m->nr_relocs++] = (struct hp_reloc){
		.offset = offset,
		.type = type,
		.base = t->base,
		.sym = t->base == HP_RB_SYMBOL ? (uint32_t)t->value : 0,
		.value = (t->base == HP_RB_SYMBOL ? 0 : t->value) + addend,
	};
	hp_dbg(HP_DBG_RELOC, "image+0x%x type %u base %u value %lld", offset,
	       type, t->base, (long long)m->relocs[m->nr_relocs - 1].value);
	return 0;
}

/* The place a GOT reference reads: the program's slot or the image's. */
static int slot_target(struct builder *b, struct slot *sl,
		       const struct target *t, struct target *out)
{
	int rc;

	if (sl->module_got) {
		*out = (struct target){ HP_RB_MODULE, (int64_t)sl->module_got };
		return 0;
	}
	if (!sl->slot_emitted) {
		struct target bound = *t;

		rc = bind_external(b, sl->name, &bound);
		if (!rc)
			rc = add_reloc(b, sl->off, HP_R_ABS64, &bound, 0);
		if (rc)
			return rc;
		sl->slot_emitted = true;
	}
	*out = (struct target){ HP_RB_IMAGE, sl->off };
	return 0;
}

/* The veneer "jmp *slot(%rip)" that stands for an external function. */
static int veneer_target(struct builder *b, struct slot *sl,
			 const struct target *t, struct target *out)
{
	struct target st;
	int rc = slot_target(b, sl, t, &st);

	if (rc)
		return rc;
	if (!sl->veneer_emitted) {
		rc = add_reloc(b, sl->veneer_off + HP_X86_VENEER_REL32_OFF,
			       HP_R_PC32, &st, -HP_X86_REL32_SIZE);
		if (rc)
			return rc;
		sl->veneer_emitted = true;
	}
	*out = (struct target){ HP_RB_IMAGE, sl->veneer_off };
	return 0;
}

static int unsupported_reloc(struct builder *b, struct hp_osec *s,
			     const struct hp_orel *r)
{
	b->nr_errors++;
	return hp_report_refuse(
		       b->r, r->sym->name, s->obj->relpath,
		       -HP_E_UNSUPPORTED_RELOC, NULL,
		       "'%s'+0x%llx: relocation type %s (%u) against '%s'",
		       s->name, (unsigned long long)r->offset,
		       hp_reloc_type_name(r->type), r->type, r->sym->name)
		       ?: 0;
}

/*
 * Where TLS symbol @s lies in the old module's TLS block (its st_value),
 * and in *@name the name it has there (NULL for a section symbol).
 */
static int tls_offset(struct builder *b, struct hp_osec *from,
		      const struct hp_osym *s, uint64_t *out, const char **name)
{
	const struct hp_osym *named = s;
	int64_t extra = 0;
	uint64_t off = 0;
	int rc;

	if (!b->bin->has_tls) {
		b->nr_errors++;
		return hp_report_refuse(b->r, s->name, from->obj->relpath,
					-HP_E_NOSYM, NULL,
					"'%s': thread-local '%s', but '%s' "
					"has no TLS segment",
					from->name, s->name, b->bin->path)
			       ?: -HP_E_NOSYM;
	}
	if (s->type == STT_SECTION && s->sec && s->sec->primary) {
		named = s->sec->primary;
		extra = (int64_t)s->st.st_value - (int64_t)named->st.st_value;
	}
	if (named->sec) {
		rc = lookup_old(b, from->obj, named, &off);
		if (rc)
			return rc;
	} else {
		bool ambiguous = false;
		const struct hp_bsym *bs = hp_binary_find_sym(
			b->bin, named->name, NULL, false, &ambiguous);

		if (!bs || bs->type != STT_TLS) {
			b->nr_errors++;
			return hp_report_refuse(b->r, named->name,
						from->obj->relpath, -HP_E_NOSYM,
						NULL,
						"thread-local '%s' is not in "
						"the old binary",
						named->name)
				       ?: -HP_E_NOSYM;
		}
		off = bs->value;
	}
	*name = named->bind == STB_LOCAL ? NULL : named->name;
	*out = (uint64_t)((int64_t)off + extra);
	return 0;
}

/* The thread-pointer offset of TLS symbol @s, for an executable. */
static int tls_tpoff(struct builder *b, struct hp_osec *from,
		     const struct hp_osym *s, int64_t *out)
{
	const char *name = NULL;
	uint64_t off = 0;
	int rc = tls_offset(b, from, s, &off, &name);

	*out = (int64_t)off - b->bin->tls_offset;
	return rc;
}

/*
 * Thread-locals of a shared library live in a block the dynamic linker
 * places per thread: the patch uses the old library's own GOT entries for
 * them (the module id pair of general- and local-dynamic accesses, the
 * offset slot of initial-exec) and carries the offset within the block
 * (DTPOFF32) as a constant. An access with no such entry in the old
 * library (a variable it never accessed that way) is refused.
 */
static int emit_dynamic_tls(struct builder *b, struct hp_osec *s,
			    const struct hp_orel *r, uint32_t place)
{
	const uint32_t got_type = r->type == R_X86_64_GOTTPOFF
					  ? R_X86_64_TPOFF64
					  : R_X86_64_DTPMOD64;
	const char *name = NULL;
	struct target t = { HP_RB_MODULE, 0 };
	uint64_t off = 0;
	int rc;

	if (r->type != R_X86_64_TLSLD) {
		rc = tls_offset(b, s, r->sym, &off, &name);
		if (rc)
			return rc < 0 && rc != -ENOMEM ? 0 : rc;
	}
	if (r->type == R_X86_64_DTPOFF32) {
		const int64_t v = (int64_t)off + r->addend;

		if (v != (int32_t)v || place + HP_X86_REL32_SIZE > b->text.len)
			return unsupported_reloc(b, s, r);
		hp_put_le32(b->text.data + place, (uint32_t)v);
		return 0;
	}
	t.value = (int64_t)hp_binary_find_tls(b->bin, got_type, name, off);
	if (!t.value) {
		b->nr_errors++;
		return hp_report_refuse(
			       b->r, r->sym->name, s->obj->relpath,
			       -HP_E_UNSUPPORTED_RELOC,
			       "access the variable as the old library does, "
			       "or ship the library anew",
			       "'%s'+0x%llx: %s access to thread-local '%s', "
			       "which the old '%s' never makes (it has no GOT "
			       "entry for it)",
			       s->name, (unsigned long long)r->offset,
			       hp_reloc_type_name(r->type), r->sym->name,
			       b->bin->path)
			       ?: 0;
	}
	return add_reloc(b, place, HP_R_PC32, &t, r->addend);
}

/*
 * Thread-locals of an executable have offsets fixed at link time, so the
 * patch carries them as constants: local-exec (TPOFF32) written into the
 * code, initial-exec (GOTTPOFF) into an image slot the code loads.
 */
static int emit_tls(struct builder *b, struct hp_osec *s,
		    const struct hp_orel *r, uint32_t place)
{
	struct slot *sl = NULL;
	int64_t tpoff = 0, v;
	int rc;

	if (!b->bin->is_exec) /* local-exec: executables only */
		return unsupported_reloc(b, s, r);
	rc = tls_tpoff(b, s, r->sym, &tpoff);
	if (rc)
		return rc < 0 && rc != -ENOMEM ? 0 : rc;
	if (r->type == R_X86_64_TPOFF32) {
		v = tpoff + r->addend;
		if (v != (int32_t)v || place + HP_X86_REL32_SIZE > b->text.len)
			return unsupported_reloc(b, s, r);
		hp_put_le32(b->text.data + place, (uint32_t)v);
		return 0;
	}
	sl = find_slot(b, r->sym, s->obj);
	HP_BUG_ON(!sl || !sl->need_slot);
	hp_put_le64(b->text.data + sl->off, (uint64_t)tpoff);
	{
		const struct target t = { HP_RB_IMAGE, sl->off };

		return add_reloc(b, place, HP_R_PC32, &t, r->addend);
	}
}

/* Pass 3 for one relocation. */
static int emit(struct builder *b, struct hp_osec *s, const struct hp_orel *r)
{
	const uint32_t place = s->image_off + (uint32_t)r->offset;
	struct hp_osym *sym = r->sym;
	struct target t = { 0 };
	bool external = false;
	struct slot *sl = NULL;
	int rc;

	if (!b->bin->is_exec &&
	    (r->type == R_X86_64_TLSGD || r->type == R_X86_64_TLSLD ||
	     r->type == R_X86_64_DTPOFF32 || r->type == R_X86_64_GOTTPOFF))
		return emit_dynamic_tls(b, s, r, place);
	if (r->type == R_X86_64_TPOFF32 || r->type == R_X86_64_GOTTPOFF)
		return emit_tls(b, s, r, place);
	if (sym->sec)
		rc = resolve_defined(b, s->obj, sym, &t);
	else if (sym->type == STT_NOTYPE || sym->type == STT_FUNC ||
		 sym->type == STT_OBJECT)
		rc = resolve_undef(b, sym, &t, &external);
	else
		return unsupported_reloc(b, s, r);
	if (rc)
		return rc < 0 && rc != -ENOMEM ? 0 : rc; /* refusal recorded */

	sl = find_slot(b, sym, s->obj);
	switch (r->type) {
	case R_X86_64_PC32:
	case R_X86_64_PLT32:
		if (external) {
			HP_BUG_ON(!sl || !sl->need_veneer);
			rc = veneer_target(b, sl, &t, &t);
			if (rc)
				return rc;
		}
		return add_reloc(b, place, HP_R_PC32, &t, r->addend);
	case R_X86_64_GOTPCREL:
	case R_X86_64_GOTPCRELX:
	case R_X86_64_REX_GOTPCRELX:
		HP_BUG_ON(!sl);
		rc = slot_target(b, sl, &t, &t);
		if (rc)
			return rc;
		return add_reloc(b, place, HP_R_PC32, &t, r->addend);
	default:
		break;
	}
	rc = bind_external(b, sym->name, &t);
	if (rc)
		return rc;
	switch (r->type) {
	case R_X86_64_64:
		return add_reloc(b, place, HP_R_ABS64, &t, r->addend);
	case R_X86_64_32:
		return add_reloc(b, place, HP_R_ABS32, &t, r->addend);
	case R_X86_64_32S:
		return add_reloc(b, place, HP_R_ABS32S, &t, r->addend);
	case R_X86_64_PC64:
		return add_reloc(b, place, HP_R_PC64, &t, r->addend);
	default:
		return unsupported_reloc(b, s, r);
	}
}

static int emit_all(struct builder *b)
{
	int rc = 0;

	for (size_t i = 0; i < b->nr_secs && !rc; i++) {
		struct hp_osec *s = b->secs[i];

		for (size_t j = 0; j < s->nr_relocs && !rc; j++)
			rc = emit(b, s, &s->relocs[j]);
	}
	return rc;
}

static int add_func(struct builder *b, struct hp_obj *o, struct hp_osym *s)
{
	struct hp_module *m = b->m;
	struct hp_func *f = NULL;
	uint8_t *old = NULL;
	uint64_t addr = 0;
	const struct hp_bsym *bs = NULL;
	bool ambiguous = false, local = s->bind == STB_LOCAL;
	int rc;

	f = realloc(m->funcs, (m->nr_funcs + 1) * sizeof(*f));
	if (!f)
		return -ENOMEM;
	m->funcs = f;
	f = &m->funcs[m->nr_funcs];
	*f = (struct hp_func){
		.name = strdup(s->name),
		.new_off = s->sec->image_off + (uint32_t)s->st.st_value,
		.new_size = (uint32_t)s->st.st_size,
	};
	if (!f->name)
		return -ENOMEM;
	m->nr_funcs++;
	if (s->is_new) {
		f->flags = HP_FUNC_NEW;
		return 0;
	}
	rc = lookup_old(b, o, s, &addr);
	if (rc)
		return rc < 0 && rc != -ENOMEM ? 0 : rc;
	bs = hp_binary_find_sym(b->bin, old_name(s), local ? o->file_sym : NULL,
				local, &ambiguous);
	f->old_addr = addr;
	f->old_size = bs ? (uint32_t)bs->size : 0;
	/*
	 * A function shorter than the jump is followed by alignment padding
	 * up to the next symbol: the jump may cover it. The hash below pins
	 * the padding too, so the runtime refuses if it is not there.
	 */
	if (f->old_size && f->old_size < HP_X86_JMP_REL32_SIZE &&
	    hp_binary_room(b->bin, addr) >= HP_X86_JMP_REL32_SIZE)
		f->old_size = HP_X86_JMP_REL32_SIZE;
	if (f->old_size < HP_X86_JMP_REL32_SIZE) {
		b->nr_errors++;
		return hp_report_refuse(
			b->r, s->name, o->relpath, -HP_E_TOO_SHORT,
			"mark the function __attribute__((noinline)) and "
			"make it at least 5 bytes, or patch its callers",
			"'%s' is %u bytes in the old binary; the redirect "
			"needs 5",
			s->name, f->old_size);
	}
	old = malloc(f->old_size);
	if (!old)
		return -ENOMEM;
	rc = hp_binary_read(b->bin, addr, old, f->old_size);
	if (!rc) {
		uint8_t hash[HP_HASH_BYTES];

		hp_hash128(hash, old, f->old_size);
		memcpy(f->old_hash, hash, sizeof(f->old_hash));
	}
	free(old);
	return rc;
}

static void builder_release(struct builder *b)
{
	free(b->secs);
	free(b->slots);
	hp_buf_release(&b->text);
	hp_buf_release(&b->data);
}

static int seed(struct builder *b)
{
	int rc = 0;

	for (size_t i = 0; i < b->nr_pairs && !rc; i++) {
		struct hp_obj *o = b->pairs[i].new_obj;

		for (size_t j = 0; o && j < o->nr_syms && !rc; j++) {
			struct hp_osym *s = &o->syms[j];

			if (!(s->changed || s->is_new) || !s->sec)
				continue;
			if (hp_osym_is_func(s) || s->is_new)
				rc = include_sec(b, s->sec);
		}
	}
	return rc;
}

static int collect_funcs(struct builder *b)
{
	int rc = 0;

	for (size_t i = 0; i < b->nr_pairs && !rc; i++) {
		struct hp_obj *o = b->pairs[i].new_obj;

		for (size_t j = 0; o && j < o->nr_syms && !rc; j++) {
			struct hp_osym *s = &o->syms[j];

			if (!hp_osym_is_func(s) || !(s->changed || s->is_new))
				continue;
			/*
			 * A .cold part travels with its parent (pass 1 pulls
			 * it in) but is never redirected: a thread in the old
			 * parent may still jump into the old part.
			 */
			if (hp_osym_is_fragment(s))
				continue;
			rc = add_func(b, o, s);
			if (!rc)
				rc = hp_report_add_func(
					b->r, s->name, o->relpath,
					s->is_new ? HP_DIFF_NEW
						  : HP_DIFF_CHANGED,
					s->reason   ? s->reason
					: s->is_new ? "new"
						    : "body changed");
			if (!rc) {
				struct hp_diff_func *df =
					&b->r->funcs[b->r->nr_funcs - 1];
				const struct hp_func *pf =
					&b->m->funcs[b->m->nr_funcs - 1];

				df->old_size = pf->old_size;
				df->new_size = pf->new_size;
			}
		}
	}
	return rc;
}

int hp_build_module(const struct hp_diff_opts *opts, struct hp_pair *pairs,
		    size_t nr_pairs, struct hp_binary *bin,
		    struct hp_diff_report *r, struct hp_module *m)
{
	struct builder b = { .opts = opts,
			     .bin = bin,
			     .r = r,
			     .pairs = pairs,
			     .nr_pairs = nr_pairs,
			     .m = m };
	const uint32_t refused_before = r->nr_refused;
	const char *slash = NULL;
	int rc;

	memcpy(m->build_id, bin->build_id, bin->build_id_len);
	m->build_id_len = bin->build_id_len;
	slash = strrchr(bin->path, '/');
	m->name = strdup(slash ? slash + 1 : bin->path);
	if (!m->name) {
		rc = -ENOMEM;
		goto out_free;
	}
	rc = seed(&b);
	if (!rc)
		rc = close_all(&b);
	if (!rc)
		rc = layout(&b);
	if (!rc)
		rc = place_slots(&b);
	if (!rc)
		rc = finish_layout(&b);
	if (!rc)
		rc = collect_funcs(&b);
	if (!rc)
		rc = emit_all(&b);
	if (rc)
		goto out_free;
	if (b.nr_errors || r->nr_refused > refused_before) {
		rc = -HP_E_REFUSED;
		goto out_free;
	}
	if (m->nr_relocs) /* qsort(NULL, 0) is undefined */
		qsort(m->relocs, m->nr_relocs, sizeof(*m->relocs),
		      hp_reloc_cmp);
	m->text_size = (uint32_t)b.text.len;
	m->data_size = (uint32_t)b.data.len;
	m->bss_size = b.bss_size;
	m->text = b.text.data;
	m->data = b.data.data;
	b.text = (struct hp_buf){ 0 };
	b.data = (struct hp_buf){ 0 };
out_free:
	builder_release(&b);
	return rc;
}
