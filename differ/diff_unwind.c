/*
 * Unwind tables for patch code: the CIEs and FDEs that cover the included
 * code, copied from each new object's .eh_frame with their relocations, so
 * that the target's unwinder can walk through patched frames (exceptions,
 * backtrace(), thread cancellation). See docs/UNWIND.md.
 *
 * Per object, for each FDE whose start (the relocation at its offset 8)
 * lies in an included code section: copy its CIE once, then the FDE with
 * its CIE pointer rewritten for the new distance. The relocations of both
 * travel as they are: to the code (image), to the LSDA in
 * .gcc_except_table (an anonymous read-only section pass 1 includes, with
 * its own relocations to typeinfo), to the personality routine's
 * DW.ref.* word (the old program's, or a new one). The copies form new
 * sections that pass 2 places one after another, ended by a zero word.
 */
#include "differ/diff_build_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HP_LOG_PREFIX "diff: "
#define EH_ALIGN 8

static int unwind_error(const struct hp_obj *o, uint64_t off, const char *what)
{
	return hp_error(-HP_E_BADELF, "'%s': .eh_frame+0x%llx: %s", o->path,
			(unsigned long long)off, what);
}

static int cmp_rel_off(const void *a, const void *b)
{
	const struct hp_orel *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* An object's .eh_frame, with its relocations sorted by offset. */
struct eh_in {
	const struct hp_osec *sec;
	struct hp_orel *rels;
	size_t nr;
};

/* A copy of a .eh_frame being built, with its relocations. */
struct eh_out {
	struct hp_buf bytes;
	struct hp_orel *relocs;
	size_t nr_relocs;
	size_t cap_relocs;
	uint64_t *cie_in;  /* CIE offsets in the object's .eh_frame ... */
	uint32_t *cie_out; /* ... and in the copy */
	size_t nr_cies;
};

/* Copy record [@from, @to) of @in and its relocations. */
static int copy_record(struct eh_out *e, const struct eh_in *in, uint64_t from,
		       uint64_t to, uint32_t *at)
{
	const struct hp_orel *rels = in->rels;
	int rc;

	*at = (uint32_t)e->bytes.len;
	rc = hp_buf_append(&e->bytes, in->sec->data + from, to - from);
	for (size_t i = 0; i < in->nr && !rc; i++) {
		if (rels[i].offset < from || rels[i].offset >= to)
			continue;
		if (hp_grow(&e->relocs, &e->cap_relocs, e->nr_relocs,
			    sizeof(*e->relocs), 16))
			return -ENOMEM;
		e->relocs[e->nr_relocs] = rels[i];
		e->relocs[e->nr_relocs++].offset = *at + rels[i].offset - from;
	}
	return rc;
}

/* The copy's offset of the CIE at @cie of the object, copied on first use. */
static int use_cie(struct eh_out *e, const struct eh_in *src, uint64_t cie,
		   uint32_t *out)
{
	const struct hp_osec *eh = src->sec;
	uint64_t *in = NULL;
	uint32_t *o = NULL, len;
	int rc;

	for (size_t i = 0; i < e->nr_cies; i++)
		if (e->cie_in[i] == cie) {
			*out = e->cie_out[i];
			return 0;
		}
	len = hp_get_le32(eh->data + cie);
	if (cie + 8 > eh->sh.sh_size || len < 4 || len == 0xffffffffu ||
	    cie + 4 + len > eh->sh.sh_size ||
	    hp_get_le32(eh->data + cie + 4) != 0)
		return unwind_error(eh->obj, cie, "bad CIE");
	in = realloc(e->cie_in, (e->nr_cies + 1) * sizeof(*in));
	if (in)
		e->cie_in = in;
	o = realloc(e->cie_out, (e->nr_cies + 1) * sizeof(*o));
	if (o)
		e->cie_out = o;
	if (!in || !o)
		return -ENOMEM;
	rc = copy_record(e, src, cie, cie + 4 + len, out);
	if (rc)
		return rc;
	e->cie_in[e->nr_cies] = cie;
	e->cie_out[e->nr_cies++] = *out;
	return 0;
}

/* The code section an FDE at @fde covers: its pc_begin's relocation. */
static struct hp_osec *fde_target(const struct hp_orel *rels, size_t nr,
				  uint64_t fde)
{
	for (size_t i = 0; i < nr; i++)
		if (rels[i].offset == fde + 8)
			return rels[i].sym->sec;
	return NULL;
}

static void eh_out_release(struct eh_out *e)
{
	hp_buf_release(&e->bytes);
	free(e->relocs);
	free(e->cie_in);
	free(e->cie_out);
}

/* A new section holding @e's bytes and relocations (taken from @e). */
static int add_section(struct builder *b, struct hp_obj *o, struct eh_out *e)
{
	struct hp_osec *s = calloc(1, sizeof(*s));
	struct hp_osec **all =
		realloc(b->unwind, (b->nr_unwind + 1) * sizeof(*all));
	int rc;

	if (all)
		b->unwind = all;
	if (!s || !all) {
		free(s);
		return -ENOMEM;
	}
	b->unwind[b->nr_unwind++] = s;
	*s = (struct hp_osec){
		.name = ".eh_frame",
		.sh = { .sh_type = SHT_PROGBITS,
			.sh_flags = SHF_ALLOC,
			.sh_size = e->bytes.len,
			.sh_addralign = 4 },
		.obj = o,
		.data = e->bytes.data,
		.own_data = e->bytes.data,
		.relocs = e->relocs,
		.nr_relocs = e->nr_relocs,
		.is_unwind = true,
	};
	e->bytes = (struct hp_buf){ 0 };
	e->relocs = NULL;
	rc = hp_build_include(b, s);
	return rc;
}

/* The FDEs of @o's .eh_frame @eh for its included, uncovered code. */
static int copy_object(struct builder *b, struct hp_obj *o,
		       const struct hp_osec *eh, bool *added)
{
	struct eh_in in = { .sec = eh, .nr = eh->nr_relocs };
	struct eh_out e = { 0 };
	uint64_t off = 0;
	int rc = 0;

	in.rels = malloc((eh->nr_relocs + 1) * sizeof(*in.rels));
	if (!in.rels)
		return -ENOMEM;
	memcpy(in.rels, eh->relocs, eh->nr_relocs * sizeof(*in.rels));
	qsort(in.rels, in.nr, sizeof(*in.rels), cmp_rel_off);
	while (!rc && off + 4 <= eh->sh.sh_size) {
		const uint32_t len = hp_get_le32(eh->data + off);
		const uint64_t end = off + 4 + (uint64_t)len;
		struct hp_osec *code = NULL;
		uint32_t id, cie_at, fde_at;

		if (!len)
			break;
		if (len == 0xffffffffu || len < 8 || end > eh->sh.sh_size) {
			rc = unwind_error(o, off, "bad record length");
			break;
		}
		id = hp_get_le32(eh->data + off + 4);
		code = id ? fde_target(in.rels, in.nr, off) : NULL;
		if (code && code->state == HP_SEC_INCLUDED &&
		    !code->has_unwind && hp_osec_is_text(code)) {
			if (id > off + 4) {
				rc = unwind_error(o, off, "bad CIE pointer");
				break;
			}
			rc = use_cie(&e, &in, off + 4 - id, &cie_at);
			rc = rc ?: copy_record(&e, &in, off, end, &fde_at);
			if (!rc)
				hp_put_le32(e.bytes.data + fde_at + 4,
					    fde_at + 4 - cie_at);
		}
		off = end;
	}
	/* Every FDE of a section is copied in the same pass. */
	for (size_t i = 0; i < eh->nr_relocs && !rc; i++) {
		struct hp_osec *code = eh->relocs[i].sym->sec;

		if (code && code->state == HP_SEC_INCLUDED &&
		    hp_osec_is_text(code))
			code->has_unwind = true;
	}
	if (!rc && e.bytes.len) {
		*added = true;
		rc = add_section(b, o, &e);
	}
	eh_out_release(&e);
	free(in.rels);
	return rc;
}

int hp_build_unwind(struct builder *b, bool *added)
{
	int rc = 0;

	*added = false;
	for (size_t i = 0; i < b->nr_pairs && !rc; i++) {
		struct hp_obj *o = b->pairs[i].new_obj;

		for (size_t j = 0; o && j < o->nr_secs && !rc; j++)
			if (!strcmp(o->secs[j].name, ".eh_frame") &&
			    o->secs[j].data && !o->secs[j].parent)
				rc = copy_object(b, o, &o->secs[j], added);
	}
	return rc;
}

int hp_build_unwind_layout(struct builder *b)
{
	static const uint8_t zero[4];
	int rc = 0;

	if (!b->nr_unwind)
		return 0;
	rc = hp_buf_align(&b->text, EH_ALIGN);
	b->m->eh_off = (uint32_t)b->text.len;
	for (size_t i = 0; i < b->nr_unwind && !rc; i++) {
		struct hp_osec *s = b->unwind[i];

		/* Records are whole words: the copies stay contiguous. */
		s->image_off = (uint32_t)b->text.len;
		rc = hp_buf_append(&b->text, s->data, s->sh.sh_size);
	}
	rc = rc ?: hp_buf_append(&b->text, zero, sizeof(zero));
	b->m->eh_size = (uint32_t)b->text.len - b->m->eh_off;
	return rc;
}

void hp_build_unwind_release(struct builder *b)
{
	for (size_t i = 0; i < b->nr_unwind; i++) {
		free(b->unwind[i]->own_data);
		free(b->unwind[i]->relocs);
		free(b->unwind[i]);
	}
	free(b->unwind);
	b->unwind = NULL;
	b->nr_unwind = 0;
}
