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
 * 3. Emit (diff_emit.c): each ELF relocation becomes one hp_reloc of a
 *    runtime type against IMAGE, MODULE or SYMBOL, reaching its target the
 *    way pass 1 decided for it (struct plan): directly, through a veneer,
 *    or through a GOT slot. Pass 3 decides nothing of that again.
 * After pass 3 the objects are no longer needed.
 */
#include "differ/diff_build_int.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "signing/signing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HP_FUNC_ALIGN 16

/* A global function or new object included from another object. */
struct hp_osym *hp_build_find_included(struct builder *b, const char *name)
{
	for (size_t i = 0; i < b->nr_pairs; i++) {
		struct hp_obj *o = b->pairs[i].new_obj;
		struct hp_osym *s = o ? hp_obj_find_sym_by_name(o, name) : NULL;

		if (s && s->bind != STB_LOCAL && hp_sym_included(s))
			return s;
	}
	return NULL;
}

/*
 * Whether @sec is a copy of a COMDAT group that another object's copy
 * stands for. The binary holds one copy of each group (the linker kept the
 * first and dropped the others whole), which every object reaches through
 * the group's global symbols; the patch carries one new copy, that of the
 * first object (in pair order) defining the group, and redirects the
 * binary's copy once. Example: scaled(int), inline in a header, changed
 * in a.o and b.o: b.o's copy stays out, b.o's callers reach a.o's.
 */
bool hp_build_is_comdat_dup(struct builder *b, const struct hp_osec *sec)
{
	if (!sec || !sec->comdat)
		return false;
	for (size_t i = 0; i < b->nr_pairs; i++) {
		struct hp_obj *o = b->pairs[i].new_obj;
		const struct hp_osym *s = NULL;

		if (!o)
			continue;
		if (o == sec->obj)
			return false;
		s = hp_obj_find_sym_by_name(o, sec->comdat);
		if (s && s->sec && s->sec->comdat &&
		    !strcmp(s->sec->comdat, sec->comdat))
			return true;
	}
	return false;
}

int hp_build_include(struct builder *b, struct hp_osec *s)
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

int hp_build_lookup_old(struct builder *b, struct hp_obj *o,
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

/*
 * Pass 1: note that @s is reached through a GOT slot or a call veneer (@p's
 * kind), and which slot in @p.
 */
static int reserve_slot(struct builder *b, const struct hp_osym *s,
			const struct hp_obj *o, enum plan_kind kind,
			struct plan *p)
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
	if (kind == PLAN_VENEER)
		sl->need_veneer = true;
	/* Initial-exec: the slot holds a constant offset, never the
	 * program's own. */
	if (kind == PLAN_TLS_SLOT)
		sl->module_got = 0;
	/* The program's own slot binds exactly as the process did. */
	if (!sl->module_got)
		sl->need_slot = true;
	*p = (struct plan){ kind, (size_t)(sl - b->slots) };
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
 * Pass 1 for one relocation: include what must travel with the patch, and
 * decide in @p how the reference reaches its target.
 */
static int close_over(struct builder *b, struct hp_osec *from,
		      struct hp_orel *r, struct plan *p)
{
	struct hp_osym *s = r->sym;
	struct hp_osec *ts = s->sec;

	*p = (struct plan){ PLAN_DIRECT, 0 };
	if (r->type == R_X86_64_GOTTPOFF && b->bin->is_exec)
		return reserve_slot(b, s, from->obj, PLAN_TLS_SLOT, p);
	if (!ts) {
		bool ambiguous = false;
		const struct hp_bsym *bs = NULL;
		bool call =
			r->type == R_X86_64_PLT32 || r->type == R_X86_64_PC32;

		if (is_got_type(r->type))
			return reserve_slot(b, s, from->obj, PLAN_GOT_SLOT, p);
		if (hp_build_find_included(b, s->name))
			return 0;
		bs = hp_binary_find_sym(b->bin, s->name, NULL, false,
					&ambiguous);
		/* Another library's function (resolve_undef: external). */
		if (call && !(bs && bs->value))
			return reserve_slot(b, s, from->obj, PLAN_VENEER, p);
		return 0;
	}
	if (is_got_type(r->type)) {
		int rc = reserve_slot(b, s, from->obj, PLAN_GOT_SLOT, p);

		if (rc)
			return rc;
	}
	if (ts->state == HP_SEC_INCLUDED)
		return 0;
	if (ts->primary) {
		/* A parent's .cold part assumes the parent's frame layout. */
		if (hp_build_is_comdat_dup(b, ts))
			return 0;
		if (ts->primary->changed || ts->primary->is_new ||
		    hp_osym_is_fragment(ts->primary))
			return hp_build_include(b, ts);
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
	return hp_build_include(b, ts);
}

static int close_all(struct builder *b)
{
	int rc = 0;

	/* close_over() may include more sections: b->nr_secs grows. */
	for (size_t i = b->nr_closed; i < b->nr_secs && !rc; i++) {
		struct hp_osec *s = b->secs[i];
		struct plan *plans =
			realloc(b->plans, (b->nr_plans + s->nr_relocs + 1) *
						  sizeof(*plans));
		size_t *first =
			realloc(b->plan_first, (i + 1) * sizeof(*first));

		if (plans)
			b->plans = plans;
		if (first)
			b->plan_first = first;
		if (!plans || !first)
			return -ENOMEM;
		b->plan_first[i] = b->nr_plans;
		for (size_t j = 0; j < s->nr_relocs && !rc; j++)
			rc = close_over(b, s, &s->relocs[j],
					&b->plans[b->nr_plans++]);
		b->nr_closed = i + 1;
	}
	return rc;
}

/* Pass 1 with the unwind tables of the code it includes (pass 1b), until
 * they include no more code. */
static int close_with_unwind(struct builder *b)
{
	bool added = true;
	int rc = close_all(b);

	while (!rc && added) {
		rc = hp_build_unwind(b, &added);
		if (!rc && added)
			rc = close_all(b);
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
		if (s->is_unwind) {
			continue; /* one table: hp_build_unwind_layout */
		} else if (s->sh.sh_type == SHT_NOBITS) {
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
	/* The unwinder's object (hp_module_unwind_obj_off), aligned down. */
	if (b->m->eh_size)
		b->bss_size += HP_UNWIND_OBJECT_SIZE + 16;
	return 0;
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
	rc = hp_build_lookup_old(b, o, s, &addr);
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
	free(b->plans);
	free(b->plan_first);
	hp_buf_release(&b->text);
	hp_buf_release(&b->data);
	hp_build_unwind_release(b);
}

static int seed(struct builder *b)
{
	int rc = 0;

	for (size_t i = 0; i < b->nr_pairs && !rc; i++) {
		struct hp_obj *o = b->pairs[i].new_obj;

		for (size_t j = 0; o && j < o->nr_syms && !rc; j++) {
			struct hp_osym *s = &o->syms[j];

			if (!(s->changed || s->is_new) || !s->sec ||
			    hp_build_is_comdat_dup(b, s->sec))
				continue;
			if (hp_osym_is_func(s) || s->is_new)
				rc = hp_build_include(b, s->sec);
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

			if (!hp_osym_is_func(s) || !(s->changed || s->is_new) ||
			    hp_build_is_comdat_dup(b, s->sec))
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
		rc = close_with_unwind(&b);
	if (!rc)
		rc = hp_check_pieces(b.secs, b.nr_secs, r, &b.nr_errors);
	if (!rc)
		rc = layout(&b);
	if (!rc)
		rc = place_slots(&b);
	if (!rc)
		rc = hp_build_unwind_layout(&b);
	if (!rc)
		rc = finish_layout(&b);
	if (!rc)
		rc = collect_funcs(&b);
	if (!rc)
		rc = hp_build_emit(&b);
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
