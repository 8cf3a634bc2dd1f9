/*
 * Pass 3 of the module builder: each ELF relocation of an included section
 * becomes one hp_reloc of a runtime type against IMAGE, MODULE or SYMBOL,
 * reaching its target the way pass 1 decided (struct plan): directly,
 * through a veneer, or through a GOT slot. Nothing is decided again here.
 */
#include "differ/diff_build_int.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

/*
 * Resolve an undefined (external) symbol: another object's included code,
 * the old program, or another library (by name).
 */
static int resolve_undef(struct builder *b, const struct hp_osym *s,
			 struct target *t)
{
	struct hp_osym *inc = hp_build_find_included(b, s->name);
	const struct hp_bsym *bs = NULL;
	bool ambiguous = false;

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

	if (hp_sym_included(s)) {
		t->base = HP_RB_IMAGE;
		t->value = sec->image_off + (int64_t)s->st.st_value;
		return 0;
	}
	/* Another object's copy of the same COMDAT group, if it travels. */
	if (s->bind != STB_LOCAL && hp_build_is_comdat_dup(b, sec)) {
		const struct hp_osym *inc = hp_build_find_included(b, s->name);

		if (inc) {
			t->base = HP_RB_IMAGE;
			t->value = inc->sec->image_off + inc->st.st_value;
			return 0;
		}
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
		rc = hp_build_lookup_old(b, o, sec->primary, &addr);
		if (rc)
			return rc;
		t->base = HP_RB_MODULE;
		t->value = (int64_t)(addr - sec->primary->st.st_value +
				     s->st.st_value);
		return 0;
	}
	rc = hp_build_lookup_old(b, o, s, &addr);
	if (rc)
		return rc;
	t->base = HP_RB_MODULE;
	t->value = (int64_t)addr;
	return 0;
}

static int add_reloc(struct builder *b, uint32_t offset, uint8_t type,
		     const struct target *t, int64_t addend)
{
	struct hp_module *m = b->m;

	if (hp_grow(&m->relocs, &b->cap_relocs, m->nr_relocs,
		    sizeof(*m->relocs), 64))
		return -ENOMEM;
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
		rc = hp_build_lookup_old(b, from->obj, named, &off);
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
		    const struct hp_orel *r, uint32_t place,
		    const struct plan *p)
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
	HP_BUG_ON(p->kind != PLAN_TLS_SLOT);
	sl = &b->slots[p->slot];
	hp_put_le64(b->text.data + sl->off, (uint64_t)tpoff);
	{
		const struct target t = { HP_RB_IMAGE, sl->off };

		return add_reloc(b, place, HP_R_PC32, &t, r->addend);
	}
}

/* Pass 3 for one relocation, reached as @p says. */
static int emit(struct builder *b, struct hp_osec *s, const struct hp_orel *r,
		const struct plan *p)
{
	const uint32_t place = s->image_off + (uint32_t)r->offset;
	struct hp_osym *sym = r->sym;
	struct target t = { 0 };
	struct slot *sl = p->kind == PLAN_DIRECT ? NULL : &b->slots[p->slot];
	int rc;

	if (!b->bin->is_exec &&
	    (r->type == R_X86_64_TLSGD || r->type == R_X86_64_TLSLD ||
	     r->type == R_X86_64_DTPOFF32 || r->type == R_X86_64_GOTTPOFF))
		return emit_dynamic_tls(b, s, r, place);
	if (r->type == R_X86_64_TPOFF32 || r->type == R_X86_64_GOTTPOFF)
		return emit_tls(b, s, r, place, p);
	if (sym->sec)
		rc = resolve_defined(b, s->obj, sym, &t);
	else if (sym->type == STT_NOTYPE || sym->type == STT_FUNC ||
		 sym->type == STT_OBJECT)
		rc = resolve_undef(b, sym, &t);
	else
		return unsupported_reloc(b, s, r);
	if (rc)
		return rc < 0 && rc != -ENOMEM ? 0 : rc; /* refusal recorded */

	switch (r->type) {
	case R_X86_64_PC32:
	case R_X86_64_PLT32:
		if (p->kind == PLAN_VENEER) {
			rc = veneer_target(b, sl, &t, &t);
			if (rc)
				return rc;
		}
		return add_reloc(b, place, HP_R_PC32, &t, r->addend);
	case R_X86_64_GOTPCREL:
	case R_X86_64_GOTPCRELX:
	case R_X86_64_REX_GOTPCRELX:
		HP_BUG_ON(p->kind != PLAN_GOT_SLOT);
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

int hp_build_emit(struct builder *b)
{
	int rc = 0;

	for (size_t i = 0; i < b->nr_secs && !rc; i++) {
		struct hp_osec *s = b->secs[i];

		for (size_t j = 0; j < s->nr_relocs && !rc; j++)
			rc = emit(b, s, &s->relocs[j],
				  &b->plans[b->plan_first[i] + j]);
	}
	return rc;
}
