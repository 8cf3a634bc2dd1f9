/*
 * Shared sections cut into pieces: the objects of a build without
 * -ffunction-sections/-fdata-sections, turned into the shape the rest of
 * the differ knows, one section per function or object.
 *
 * Passes (only for an object with a shared section; 4-6 in diff_cut.c):
 * 1. Plan the code pieces: each function symbol's [value, value + size) in
 *    .text, .text.unlikely, ...; alignment padding between them belongs to
 *    none. Aliases and nested symbols go with the piece that covers them.
 * 2. Decode every code section with libzydis: note for each relocation the
 *    distance from its field to the end of its instruction (so that
 *    "movl $1, .bss+8(%rip)" is known to mean .bss+8, not .bss+4), and
 *    each PC-relative field the assembler resolved itself, with no
 *    relocation: "call helper", "jmp glob" (gas resolves even a global's
 *    tail call in the same section), "lea table(%rip)".
 * 3. Plan the data pieces: each object symbol's bytes in .data, .bss,
 *    .rodata, .data.rel.ro, ...; the stretches between them are anonymous
 *    pieces, cut where code refers to them (a jump table is read from the
 *    label the code loads, so gcc's tables of two functions part).
 * 4. Make the pieces: sections appended to the object, each with a section
 *    symbol of value 0; symbols and relocations move to their piece with
 *    piece-relative values and offsets.
 * 5. Relocations against a shared section's symbol (".text+0x30",
 *    ".rodata+0x40", jump table entries) point to the piece covering the
 *    target, plus the offset in it: as they would with sections.
 * 6. Each resolved field whose target lies outside its function becomes a
 *    synthetic relocation against the target's piece, and its bytes are
 *    zeroed as the assembler leaves a relocated field: moved code then
 *    compares equal, and patch code reaches the running program's copy.
 *    A short branch (rel8) out of the function, a tail call "jmp helper"
 *    to a neighbour, cannot reach anything from the patch: it is pointed at
 *    a 5-byte "jmp rel32" stub placed just before (backward targets) or
 *    after (forward) the function's bytes in its piece, and the stub gets
 *    the relocation. A target that is no function's entry (padding, the
 *    middle of another function other than its own .cold part) marks the
 *    piece with a problem that refuses it, by name, if the patch needs it.
 * After this, a shared section has no relocations and nothing refers to
 * it; its pieces are ordinary sections.
 */
#include "differ/diff_split_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_pcrel(uint32_t type)
{
	switch (type) {
	case R_X86_64_PC32:
	case R_X86_64_PLT32:
	case R_X86_64_GOTPCREL:
	case R_X86_64_GOTPCRELX:
	case R_X86_64_REX_GOTPCRELX:
	case R_X86_64_GOTTPOFF:
	case R_X86_64_TLSGD:
	case R_X86_64_TLSLD:
	case R_X86_64_GOTPC32_TLSDESC:
		return true;
	default:
		return false;
	}
}

/* Room for one more in *@pp, which holds *@nr: capacities are 16, 32, ... */
static int grow(void *pp, size_t *nr, size_t size)
{
	void **p = pp;
	void *n = NULL;

	if (*nr && (*nr < 16 || (*nr & (*nr - 1))))
		return 0;
	n = realloc(*p, (*nr ? 2 * *nr : 16) * size);
	if (!n)
		return -ENOMEM;
	*p = n;
	return 0;
}

static int push_u64(uint64_t **arr, size_t *nr, uint64_t v)
{
	int rc = grow(arr, nr, sizeof(**arr));

	if (!rc)
		(*arr)[(*nr)++] = v;
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static int cmp_syms(const void *a, const void *b)
{
	const struct hp_osym *x = *(struct hp_osym *const *)a;
	const struct hp_osym *y = *(struct hp_osym *const *)b;

	if (x->st.st_value != y->st.st_value)
		return x->st.st_value < y->st.st_value ? -1 : 1;
	if (x->st.st_size != y->st.st_size)
		return x->st.st_size > y->st.st_size ? -1 : 1;
	return (x->index > y->index) - (x->index < y->index);
}

static bool is_piece_sym(const struct hp_osym *s, bool code)
{
	if (!*s->name || (s->bind == STB_LOCAL && !strncmp(s->name, ".L", 2)))
		return false;
	return code ? s->type == STT_FUNC
		    : s->type == STT_OBJECT || s->type == STT_TLS;
}

/* Named pieces of @p's section: its functions, or its objects. */
static int plan_named(struct splitter *sp, struct plan *p, bool code)
{
	struct hp_osym *const *in = sp->bysec + sp->at[p->sec->index];
	const size_t nr_in = sp->at[p->sec->index + 1] - sp->at[p->sec->index];
	struct hp_osym **syms = NULL;
	size_t n = 0;
	int rc = 0;

	for (size_t i = 0; i < nr_in; i++)
		n += is_piece_sym(in[i], code);
	if (!n)
		return 0;
	syms = calloc(n, sizeof(*syms));
	p->pieces = calloc(n, sizeof(*p->pieces));
	if (!syms || !p->pieces) {
		rc = -ENOMEM;
		goto out;
	}
	n = 0;
	for (size_t i = 0; i < nr_in; i++)
		if (is_piece_sym(in[i], code))
			syms[n++] = in[i];
	qsort(syms, n, sizeof(*syms), cmp_syms);
	for (size_t i = 0; i < n; i++) {
		const struct hp_osym *s = syms[i];
		uint64_t end = s->st.st_value + s->st.st_size;
		struct piece *last =
			p->nr_pieces ? &p->pieces[p->nr_pieces - 1] : NULL;

		if (!s->st.st_size) {
			/* No .size (hand-written assembly): to the next. */
			end = i + 1 < n ? syms[i + 1]->st.st_value
					: p->sec->sh.sh_size;
			if (!code || end == s->st.st_value)
				continue; /* a marker, not an object */
		}
		if (end > p->sec->sh.sh_size)
			end = p->sec->sh.sh_size;
		if (last && s->st.st_value < last->end) {
			if (end > last->end) /* nested: the outer one grows */
				last->end = end;
			continue;
		}
		p->pieces[p->nr_pieces++] = (struct piece){
			.start = s->st.st_value,
			.end = end,
			.primary = (struct hp_osym *)s,
		};
	}
out:
	free(syms);
	return rc;
}

/*
 * gcc's code sections without -ffunction-sections: a function in one of
 * them gets a piece even when alone, so that it is named as it would be
 * with sections (its own name, not ".text").
 */
static bool is_shared_name(const char *name)
{
	static const char *const names[] = { ".text", ".text.unlikely",
					     ".text.hot", ".text.startup",
					     ".text.exit" };

	for (size_t i = 0; i < HP_ARRAY_SIZE(names); i++)
		if (!strcmp(name, names[i]))
			return true;
	return false;
}

/* Whether @p's section is shared: its pieces do not make it whole. */
bool hp_split_is_shared(const struct plan *p)
{
	if (!p->nr_pieces)
		return false;
	return p->nr_pieces > 1 || p->pieces[0].start ||
	       p->pieces[0].end != p->sec->sh.sh_size ||
	       (hp_split_is_code(p->sec) && is_shared_name(p->sec->name));
}

const struct piece *hp_split_piece_at(const struct plan *p, int64_t off)
{
	size_t lo = 0, hi = p->nr_pieces;

	while (lo < hi) {
		const size_t mid = lo + (hi - lo) / 2;

		if ((int64_t)p->pieces[mid].start <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return NULL;
	if (off < (int64_t)p->pieces[lo - 1].end)
		return &p->pieces[lo - 1];
	/* One past the end ("array + n") still belongs to the array. */
	if (off == (int64_t)p->pieces[lo - 1].end &&
	    (lo == p->nr_pieces || (int64_t)p->pieces[lo].start != off))
		return &p->pieces[lo - 1];
	return NULL;
}

struct decode_ctx {
	struct plan *p;
	size_t cursor; /* first relocation not before this instruction */
};

static int note_insn(void *vctx, const struct hp_insn *in)
{
	struct decode_ctx *c = vctx;
	struct hp_osec *s = c->p->sec;
	const uint64_t end = in->off + in->len;
	bool relocated = false;
	int rc;

	while (c->cursor < s->nr_relocs &&
	       s->relocs[c->cursor].offset < in->off)
		c->cursor++;
	for (size_t i = c->cursor;
	     i < s->nr_relocs && s->relocs[i].offset < end; i++) {
		struct hp_orel *r = &s->relocs[i];

		if (is_pcrel(r->type))
			r->bias = (uint8_t)(end - r->offset);
		if (in->has_rel && r->offset == in->off + in->field_off)
			relocated = true;
	}
	if (!in->has_rel || relocated)
		return 0;
	rc = grow(&c->p->refs, &c->p->nr_refs, sizeof(*c->p->refs));
	if (rc)
		return rc;
	c->p->refs[c->p->nr_refs++] = (struct ref){
		.insn_end = end,
		.field = in->off + in->field_off,
		.size = in->field_size,
		.branch = in->is_branch,
		.target = in->target,
	};
	return 0;
}

/* Pass 2 for one code section: its functions, or all of it. */
static int decode_code(struct plan *p)
{
	struct hp_osec *s = p->sec;
	struct decode_ctx c = { .p = p };
	const struct piece whole = { .start = 0, .end = s->sh.sh_size };
	const bool shared = hp_split_is_shared(p);
	const size_t n = shared ? p->nr_pieces : 1;

	if (s->nr_relocs)
		qsort(s->relocs, s->nr_relocs, sizeof(*s->relocs),
		      hp_split_cmp_relocs);
	for (size_t i = 0; i < n; i++) {
		const struct piece *pc = shared ? &p->pieces[i] : &whole;
		uint64_t bad = 0;
		int rc = hp_decode(s->data, pc->start, pc->end, note_insn, &c,
				   &bad);

		if (rc == -HP_E_UNSUPPORTED)
			rc = push_u64(&p->bad, &p->nr_bad, bad);
		if (rc)
			return rc;
	}
	return 0;
}

/* The target in its section of @r, a relocation of @from. */
int64_t hp_split_target_of(const struct hp_osec *from, const struct hp_orel *r)
{
	const int64_t v = (int64_t)r->sym->st.st_value + r->addend;

	/* An FDE's fields (pc_begin, LSDA) name their target exactly. */
	if (!strcmp(from->name, ".eh_frame"))
		return v;
	if (r->type == R_X86_64_PC64 ||
	    (is_pcrel(r->type) && !hp_osec_is_text(from)))
		/*
		 * In data, a PC-relative entry is a jump table's "label -
		 * table": relative to the start of its table, which is the
		 * start of its piece (see pass 3).
		 */
		return v - (int64_t)r->offset;
	if (is_pcrel(r->type))
		return v + (r->bias ? r->bias : 4);
	return v;
}

/* Pass 3: where code refers to anonymous data, a piece starts. */
static int note_cuts(struct splitter *sp)
{
	struct hp_obj *o = sp->o;

	for (size_t i = 0; i < o->nr_secs; i++) {
		const struct hp_osec *s = &o->secs[i];

		if (!hp_split_is_code(s))
			continue;
		for (size_t j = 0; j < s->nr_relocs; j++) {
			const struct hp_orel *r = &s->relocs[j];
			struct plan *p = NULL;
			int64_t t;
			int rc;

			if (!r->sym->sec || !hp_split_is_label(r->sym))
				continue;
			p = &sp->plans[r->sym->sec->index];
			if (!hp_split_is_data(p->sec))
				continue;
			t = hp_split_target_of(s, r);
			if (t <= 0 || (uint64_t)t >= p->sec->sh.sh_size)
				continue;
			rc = push_u64(&p->cuts, &p->nr_cuts, (uint64_t)t);
			if (rc)
				return rc;
		}
	}
	return 0;
}

static int add_piece(struct piece **out, size_t *nr, uint64_t start,
		     uint64_t end)
{
	int rc;

	if (start >= end)
		return 0;
	rc = grow(out, nr, sizeof(**out));
	if (!rc)
		(*out)[(*nr)++] = (struct piece){ .start = start, .end = end };
	return rc;
}

/* Pass 3: the anonymous stretches of a data section, cut where used. */
static int plan_anonymous(struct plan *p)
{
	struct piece *all = NULL;
	size_t nr = 0, c = 0;
	uint64_t at = 0;
	int rc = 0;

	if (p->nr_cuts)
		qsort(p->cuts, p->nr_cuts, sizeof(*p->cuts), cmp_u64);
	for (size_t i = 0; i <= p->nr_pieces && !rc; i++) {
		const uint64_t gap_end = i < p->nr_pieces ? p->pieces[i].start
							  : p->sec->sh.sh_size;

		while (!rc && c < p->nr_cuts && p->cuts[c] < gap_end) {
			if (p->cuts[c] > at) {
				rc = add_piece(&all, &nr, at, p->cuts[c]);
				at = p->cuts[c];
			}
			c++;
		}
		if (!rc)
			rc = add_piece(&all, &nr, at, gap_end);
		if (!rc && i < p->nr_pieces) {
			rc = grow(&all, &nr, sizeof(*all));
			if (!rc)
				all[nr++] = p->pieces[i];
			at = p->pieces[i].end;
			while (c < p->nr_cuts && p->cuts[c] < at)
				c++;
		}
	}
	if (rc) {
		free(all);
		return rc;
	}
	free(p->pieces);
	p->pieces = all;
	p->nr_pieces = nr;
	return 0;
}

/* The stub in @pc for a short branch to @to + @to_off. */
struct stub *hp_split_find_stub(struct piece *pc, const struct piece *to,
				uint64_t to_off)
{
	for (size_t i = 0; i < pc->nr_stubs; i++)
		if (pc->stubs[i].to == to && pc->stubs[i].to_off == to_off)
			return &pc->stubs[i];
	return NULL;
}

bool hp_split_is_own_part(const struct piece *pc, const struct piece *to)
{
	return to->primary && pc->primary &&
	       (hp_osym_is_fragment_of(to->primary, pc->primary) ||
		hp_osym_is_fragment_of(pc->primary, to->primary));
}

/* Pass 1 and 6's plan: stubs for short branches out of each function. */
static int plan_stubs(struct plan *p)
{
	uint32_t nr_back = 0;

	for (size_t i = 0; i < p->nr_refs; i++) {
		const struct ref *f = &p->refs[i];
		struct piece *pc =
			(struct piece *)hp_split_piece_at(p, (int64_t)f->field);
		const struct piece *to = hp_split_piece_at(p, f->target);
		int rc;

		if (!pc || f->size != 1 || !to || to == pc ||
		    (f->target != (int64_t)to->start &&
		     !hp_split_is_own_part(pc, to)))
			continue;
		if (hp_split_find_stub(pc, to, (uint64_t)f->target - to->start))
			continue;
		rc = grow(&pc->stubs, &pc->nr_stubs, sizeof(*pc->stubs));
		if (rc)
			return rc;
		pc->stubs[pc->nr_stubs++] = (struct stub){
			.to = to,
			.to_off = (uint64_t)f->target - to->start,
			/* backward: before the body, placed below */
			.off = to->start < pc->start ? UINT32_MAX : 0,
		};
	}
	for (size_t i = 0; i < p->nr_pieces; i++) {
		struct piece *pc = &p->pieces[i];
		uint32_t fwd = 0;

		nr_back = 0;
		for (size_t k = 0; k < pc->nr_stubs; k++)
			nr_back += pc->stubs[k].off == UINT32_MAX;
		pc->lead = nr_back * HP_STUB_SIZE;
		/* The first needed nearest the body: the entry's backward. */
		for (size_t k = 0, b = 0; k < pc->nr_stubs; k++) {
			struct stub *st = &pc->stubs[k];

			if (st->off == UINT32_MAX)
				st->off = pc->lead -
					  (uint32_t)(++b) * HP_STUB_SIZE;
			else
				st->off = pc->lead +
					  (uint32_t)(pc->end - pc->start) +
					  HP_STUB_SIZE * fwd++;
		}
		pc->tail = fwd * HP_STUB_SIZE;
	}
	return 0;
}

static void splitter_release(struct splitter *sp)
{
	for (size_t i = 0; sp->plans && i < sp->nr_plans; i++) {
		struct plan *p = &sp->plans[i];

		for (size_t j = 0; j < p->nr_pieces; j++)
			free(p->pieces[j].stubs);
		free(p->pieces);
		free(p->refs);
		free(p->cuts);
		free(p->bad);
	}
	free(sp->plans);
	free(sp->bysec);
	free(sp->at);
}

/* Fill @sp's symbols by section, in symbol table order. */
static int bucket_symbols(struct splitter *sp)
{
	struct hp_obj *o = sp->o;

	sp->at = calloc(sp->nr_plans + 2, sizeof(*sp->at));
	sp->bysec = calloc(o->nr_syms ? o->nr_syms : 1, sizeof(*sp->bysec));
	if (!sp->at || !sp->bysec)
		return -ENOMEM;
	for (size_t i = 0; i < o->nr_syms; i++)
		if (o->syms[i].sec)
			sp->at[o->syms[i].sec->index + 2]++;
	for (size_t i = 2; i < sp->nr_plans + 2; i++)
		sp->at[i] += sp->at[i - 1];
	for (size_t i = 0; i < o->nr_syms; i++)
		if (o->syms[i].sec)
			sp->bysec[sp->at[o->syms[i].sec->index + 1]++] =
				&o->syms[i];
	return 0;
}

static bool needs_split(const struct splitter *sp)
{
	for (size_t i = 0; i < sp->o->nr_secs; i++)
		if (hp_split_is_shared(&sp->plans[i]) || sp->plans[i].nr_cuts)
			return true;
	return false;
}

/*
 * Passes 1-3 and the stubs' plan. Return: 0 with sp->nr_pieces 0 when the
 * object has no shared section, or -ENOMEM.
 */
static int plan_all(struct splitter *sp)
{
	struct hp_obj *o = sp->o;
	const size_t nr = sp->nr_plans;
	int rc = bucket_symbols(sp);

	for (size_t i = 0; i < nr && !rc; i++) {
		sp->plans[i].sec = &o->secs[i];
		if (hp_split_is_code(&o->secs[i]) ||
		    hp_split_is_data(&o->secs[i]))
			rc = plan_named(sp, &sp->plans[i],
					hp_split_is_code(&o->secs[i]));
	}
	/* Pass 3's cuts first, estimated: they decide whether to go on. */
	if (!rc)
		rc = note_cuts(sp);
	for (size_t i = 0; !rc && i < nr; i++) {
		struct plan *p = &sp->plans[i];

		if (p->nr_cuts && !hp_split_is_shared(p)) {
			qsort(p->cuts, p->nr_cuts, sizeof(uint64_t), cmp_u64);
			/* One place used, at the start: whole. */
			if (p->cuts[0] == p->cuts[p->nr_cuts - 1])
				p->nr_cuts = 0;
		}
	}
	if (rc || !needs_split(sp))
		return rc;
	for (size_t i = 0; i < nr && !rc; i++) {
		sp->plans[i].nr_cuts = 0;
		if (hp_split_is_code(&o->secs[i]))
			rc = decode_code(&sp->plans[i]);
	}
	if (!rc)
		rc = note_cuts(sp);
	for (size_t i = 0; i < nr && !rc; i++) {
		struct plan *p = &sp->plans[i];

		if (!hp_split_is_data(&o->secs[i]) ||
		    !(p->nr_pieces || p->nr_cuts))
			continue;
		rc = plan_anonymous(p);
		/* anonymous only, used in one place: whole */
		if (!rc && p->nr_pieces == 1 && !p->pieces[0].primary &&
		    !hp_split_is_shared(p))
			p->nr_pieces = 0;
	}
	for (size_t i = 0; i < nr && !rc; i++)
		if (hp_split_is_code(&o->secs[i]) &&
		    hp_split_is_shared(&sp->plans[i]))
			rc = plan_stubs(&sp->plans[i]);
	for (size_t i = 0; i < nr; i++)
		if (hp_split_is_shared(&sp->plans[i]))
			sp->nr_pieces += sp->plans[i].nr_pieces;
	return rc;
}

int hp_obj_split(struct hp_obj *o)
{
	struct splitter sp = { .o = o, .nr_plans = o->nr_secs };
	int rc;

	sp.plans = calloc(o->nr_secs ? o->nr_secs : 1, sizeof(*sp.plans));
	if (!sp.plans)
		return -ENOMEM;
	rc = plan_all(&sp);
	if (!rc && sp.nr_pieces)
		rc = hp_split_cut(&sp);
	splitter_release(&sp);
	return rc;
}
