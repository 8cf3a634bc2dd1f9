/*
 * Shared sections cut into pieces: the objects of a build without
 * -ffunction-sections/-fdata-sections, turned into the shape the rest of
 * the differ knows, one section per function or object.
 *
 * Passes (only for an object with a shared section):
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
#include "differ/differ_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP_STUB_SIZE 5 /* e9 rel32 */

/* A PC-relative field the assembler resolved (section offsets). */
struct ref {
	uint64_t insn_end;
	uint64_t field;
	uint8_t size;
	bool branch;
	int64_t target;
};

struct stub {
	const struct piece *to;
	uint64_t to_off; /* in the target piece */
	uint32_t off;	 /* of the stub in its piece */
};

struct piece {
	uint64_t start, end; /* in the shared section */
	struct hp_osym *primary;
	uint32_t lead, tail; /* stub bytes before and after the body */
	struct stub *stubs;
	size_t nr_stubs;
	struct hp_osec *sec; /* once made */
};

struct plan {
	struct hp_osec *sec;
	struct piece *pieces; /* sorted by start */
	size_t nr_pieces;
	struct ref *refs;
	size_t nr_refs;
	uint64_t *cuts; /* code-referenced offsets, data sections */
	size_t nr_cuts;
	uint64_t *bad; /* offsets that decode to no instruction */
	size_t nr_bad;
};

struct splitter {
	struct hp_obj *o;
	struct plan *plans; /* by section index, for the object's own */
	size_t nr_plans;
	size_t nr_pieces;
	/* Symbols by section: section i's are bysec[at[i]] to bysec[at[i+1]]
	 * (one pass, where a scan per section was quadratic with sections). */
	struct hp_osym **bysec;
	size_t *at;
};

static bool is_code(const struct hp_osec *s)
{
	return hp_osec_is_text(s) && s->data && s->sh.sh_size;
}

static bool is_data(const struct hp_osec *s)
{
	return (s->sh.sh_flags & SHF_ALLOC) &&
	       !(s->sh.sh_flags & (SHF_EXECINSTR | SHF_MERGE)) &&
	       (s->sh.sh_type == SHT_PROGBITS || s->sh.sh_type == SHT_NOBITS) &&
	       s->sh.sh_size && strcmp(s->name, ".eh_frame");
}

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

static bool is_label(const struct hp_osym *s)
{
	return s->type == STT_SECTION ||
	       (s->type == STT_NOTYPE && s->bind == STB_LOCAL);
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

static int cmp_relocs(const void *a, const void *b)
{
	const struct hp_orel *x = a, *y = b;

	return (x->offset > y->offset) - (x->offset < y->offset);
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
static bool is_shared(const struct plan *p)
{
	if (!p->nr_pieces)
		return false;
	return p->nr_pieces > 1 || p->pieces[0].start ||
	       p->pieces[0].end != p->sec->sh.sh_size ||
	       (is_code(p->sec) && is_shared_name(p->sec->name));
}

static const struct piece *piece_at(const struct plan *p, int64_t off)
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
	const bool shared = is_shared(p);
	const size_t n = shared ? p->nr_pieces : 1;

	if (s->nr_relocs)
		qsort(s->relocs, s->nr_relocs, sizeof(*s->relocs), cmp_relocs);
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
static int64_t target_of(const struct hp_osec *from, const struct hp_orel *r)
{
	const int64_t v = (int64_t)r->sym->st.st_value + r->addend;

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

		if (!is_code(s))
			continue;
		for (size_t j = 0; j < s->nr_relocs; j++) {
			const struct hp_orel *r = &s->relocs[j];
			struct plan *p = NULL;
			int64_t t;
			int rc;

			if (!r->sym->sec || !is_label(r->sym))
				continue;
			p = &sp->plans[r->sym->sec->index];
			if (!is_data(p->sec))
				continue;
			t = target_of(s, r);
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
static struct stub *find_stub(struct piece *pc, const struct piece *to,
			      uint64_t to_off)
{
	for (size_t i = 0; i < pc->nr_stubs; i++)
		if (pc->stubs[i].to == to && pc->stubs[i].to_off == to_off)
			return &pc->stubs[i];
	return NULL;
}

static bool is_own_part(const struct piece *pc, const struct piece *to)
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
			(struct piece *)piece_at(p, (int64_t)f->field);
		const struct piece *to = piece_at(p, f->target);
		int rc;

		if (!pc || f->size != 1 || !to || to == pc ||
		    (f->target != (int64_t)to->start && !is_own_part(pc, to)))
			continue;
		if (find_stub(pc, to, (uint64_t)f->target - to->start))
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

static int set_problem(struct hp_osec *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int set_problem(struct hp_osec *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (s->problem)
		return 0; /* the first tells enough */
	va_start(ap, fmt);
	n = vasprintf(&s->problem, fmt, ap);
	va_end(ap);
	if (n < 0) {
		s->problem = NULL;
		return -ENOMEM;
	}
	return 0;
}

static uint64_t piece_align(const struct hp_osec *parent, uint64_t start)
{
	uint64_t a = parent->sh.sh_addralign ? parent->sh.sh_addralign : 1;

	while (a > 1 && start % a)
		a /= 2;
	return a;
}

/* Pass 4 for one piece @pc of @parent: section @ps, section symbol @ss. */
static int make_piece(struct hp_obj *o, struct hp_osec *parent,
		      struct piece *pc, size_t idx, struct hp_osym *ss)
{
	struct hp_osec *ps = &o->secs[idx];
	const uint64_t body = pc->end - pc->start;

	pc->sec = ps;
	ps->index = idx;
	ps->obj = o;
	ps->sh = parent->sh;
	ps->sh.sh_size = pc->lead + body + pc->tail;
	ps->sh.sh_addralign = piece_align(parent, pc->start);
	ps->parent = parent;
	ps->base = pc->start;
	ps->lead = pc->lead;
	ps->tail = pc->tail;
	ps->primary = pc->primary;
	ps->secsym = ss;
	ps->name = pc->primary ? pc->primary->name : NULL;
	if (!ps->name) {
		if (asprintf(&ps->own_name, "%s+0x%llx", parent->name,
			     (unsigned long long)pc->start) < 0) {
			ps->own_name = NULL;
			return -ENOMEM;
		}
		ps->name = ps->own_name;
	}
	if (parent->data && is_code(parent)) {
		/* [stubs before][body][stubs after], the stubs "e9 rel32" */
		ps->own_data = malloc(ps->sh.sh_size);
		if (!ps->own_data)
			return -ENOMEM;
		memset(ps->own_data, 0xcc, ps->sh.sh_size);
		memcpy(ps->own_data + pc->lead, parent->data + pc->start, body);
		for (size_t m = 0; m < pc->nr_stubs; m++)
			ps->own_data[pc->stubs[m].off] = 0xe9;
		ps->data = ps->own_data;
	} else if (parent->data) {
		ps->data = parent->data + pc->start;
	}
	*ss = (struct hp_osym){
		.name = ps->name,
		.index = o->nr_syms + (idx - (o->nr_secs - o->nr_pieces)),
		.type = STT_SECTION,
		.bind = STB_LOCAL,
		.sec = ps,
	};
	ss->st.st_info = GELF_ST_INFO(STB_LOCAL, STT_SECTION);
	return 0;
}

/* Pass 4: @p's symbols move to their pieces, with values of theirs. */
static void move_symbols(struct hp_obj *o, const struct plan *p)
{
	for (size_t m = 0; m < o->nr_syms; m++) {
		struct hp_osym *s = &o->syms[m];
		const struct piece *pc = NULL;

		if (s->sec != p->sec || s->type == STT_SECTION)
			continue;
		pc = piece_at(p, (int64_t)s->st.st_value);
		if (!pc)
			continue; /* a label in padding */
		s->sec = pc->sec;
		s->st.st_value = s->st.st_value - pc->start + pc->lead;
	}
}

/* Pass 4: the pieces become sections, and their symbols theirs. */
static int make_pieces(struct splitter *sp)
{
	struct hp_obj *o = sp->o;
	const size_t nr_old = o->nr_secs;
	struct hp_osec *secs = NULL;
	size_t k = 0;
	int rc = 0;

	secs = realloc(o->secs, (nr_old + sp->nr_pieces) * sizeof(*secs));
	if (!secs)
		return -ENOMEM;
	o->secs = secs;
	memset(secs + nr_old, 0, sp->nr_pieces * sizeof(*secs));
	o->piece_syms = calloc(sp->nr_pieces, sizeof(*o->piece_syms));
	if (!o->piece_syms)
		return -ENOMEM;
	o->nr_pieces = sp->nr_pieces;
	o->nr_secs = nr_old + sp->nr_pieces;
	for (size_t i = 0; i < o->nr_syms; i++)
		if (o->syms[i].sec)
			o->syms[i].sec = &secs[o->syms[i].st.st_shndx];
	for (size_t i = 0; i < nr_old && !rc; i++) {
		struct plan *p = &sp->plans[i];

		p->sec = &secs[i];
		if (!is_shared(p))
			continue;
		p->sec->split = true;
		for (size_t j = 0; j < p->nr_pieces && !rc; j++, k++)
			rc = make_piece(o, p->sec, &p->pieces[j], nr_old + k,
					&o->piece_syms[k]);
		if (!rc)
			move_symbols(o, p);
	}
	return rc;
}

static int add_reloc(struct hp_osec *s, size_t *cap, const struct hp_orel *r)
{
	if (s->nr_relocs == *cap) {
		const size_t n = *cap ? 2 * *cap : 8;
		struct hp_orel *rel = realloc(s->relocs, n * sizeof(*rel));

		if (!rel)
			return -ENOMEM;
		s->relocs = rel;
		*cap = n;
	}
	s->relocs[s->nr_relocs++] = *r;
	return 0;
}

/* Pass 4: a shared section's relocations go to their pieces. */
static int move_relocs(struct plan *p, size_t *caps)
{
	struct hp_osec *parent = p->sec;
	int rc = 0;

	for (size_t i = 0; i < parent->nr_relocs && !rc; i++) {
		struct hp_orel r = parent->relocs[i];
		const struct piece *pc = piece_at(p, (int64_t)r.offset);

		if (!pc || r.offset >= pc->end)
			continue; /* in padding: nothing reads it */
		r.offset = r.offset - pc->start + pc->lead;
		rc = add_reloc(pc->sec, &caps[pc->sec->index], &r);
	}
	free(parent->relocs);
	parent->relocs = NULL;
	parent->nr_relocs = 0;
	return rc;
}

static const char *what(const struct hp_osec *s)
{
	return s->primary ? s->primary->name : s->name;
}

/* Pass 5: one relocation against a shared section's symbol. */
static int retarget(struct splitter *sp, struct hp_osec *from,
		    struct hp_orel *r)
{
	const struct plan *p = &sp->plans[r->sym->sec->index];
	const int64_t t = target_of(from, r);
	const struct piece *to = piece_at(p, t);

	/*
	 * Outside the section: address arithmetic on its first or last
	 * object, "steps - 8" for a loop that counts from 1.
	 */
	if (!to && is_data(p->sec) && p->nr_pieces)
		to = t < 0 ? &p->pieces[0]
		     : (uint64_t)t >= p->sec->sh.sh_size
			     ? &p->pieces[p->nr_pieces - 1]
			     : NULL;
	if (!to)
		return set_problem(from,
				   "'%s'+0x%llx refers to '%s'+0x%llx, where "
				   "no function or object is",
				   what(from), (unsigned long long)r->offset,
				   p->sec->name, (unsigned long long)t);
	r->addend +=
		(int64_t)r->sym->st.st_value - (int64_t)to->start + to->lead;
	r->sym = to->sec->secsym;
	return 0;
}

/* Pass 6 for one resolved field of code piece @pc. */
static int resolve_ref(struct plan *p, struct piece *pc, const struct ref *f,
		       size_t *caps)
{
	struct hp_osec *s = pc->sec;
	const struct piece *to = piece_at(p, f->target);
	const uint64_t field = f->field - pc->start + pc->lead;
	const uint64_t end = f->insn_end - pc->start + pc->lead;
	struct hp_orel r = { .synthetic = true };
	struct stub *st = NULL;
	int64_t disp;

	if (f->target >= (int64_t)pc->start && f->target < (int64_t)pc->end)
		return 0; /* inside the function: moves with it */
	if (!to || !to->primary ||
	    (f->target != (int64_t)to->start && !is_own_part(pc, to)))
		return set_problem(
			s, "'%s'+0x%llx: %s '%s'+0x%llx, %s", what(s),
			(unsigned long long)(field - pc->lead),
			f->branch ? "branches to" : "refers to", p->sec->name,
			(unsigned long long)f->target,
			to && to->primary ? "inside another function"
					  : "where no function starts");
	if (f->size == 4) {
		memset(s->own_data + field, 0, 4);
		r.offset = field;
		r.type = f->branch ? R_X86_64_PLT32 : R_X86_64_PC32;
		r.sym = to->sec->secsym;
		r.addend = f->target - (int64_t)to->start + to->lead -
			   (int64_t)(end - field);
		r.bias = (uint8_t)(end - field);
		return add_reloc(s, &caps[s->index], &r);
	}
	st = f->size == 1 ? find_stub(pc, to, (uint64_t)f->target - to->start)
			  : NULL;
	if (!st)
		return set_problem(
			s, "'%s'+0x%llx: a %u-byte PC-relative field", what(s),
			(unsigned long long)(field - pc->lead), f->size);
	disp = (int64_t)st->off - (int64_t)end;
	if (disp != (int8_t)disp)
		return set_problem(s,
				   "'%s'+0x%llx: a short branch to '%s' that "
				   "cannot reach a jump placed next to the "
				   "function",
				   what(s),
				   (unsigned long long)(field - pc->lead),
				   what(to->sec));
	s->own_data[field] = (uint8_t)(int8_t)disp;
	r.offset = st->off + 1;
	r.type = R_X86_64_PLT32;
	r.sym = to->sec->secsym;
	r.addend = f->target - (int64_t)to->start + to->lead - 4;
	r.bias = 4;
	/* One relocation per stub, however many branches use it. */
	for (size_t i = 0; i < s->nr_relocs; i++)
		if (s->relocs[i].offset == r.offset)
			return 0;
	return add_reloc(s, &caps[s->index], &r);
}

static int resolve_refs(struct plan *p, size_t *caps)
{
	int rc = 0;

	for (size_t i = 0; i < p->nr_bad && !rc; i++) {
		const struct piece *pc = piece_at(p, (int64_t)p->bad[i]);

		if (pc)
			rc = set_problem(
				pc->sec,
				"'%s'+0x%llx: bytes that decode to no "
				"x86-64 instruction",
				what(pc->sec),
				(unsigned long long)(p->bad[i] - pc->start));
	}
	for (size_t i = 0; i < p->nr_refs && !rc; i++) {
		struct piece *pc =
			(struct piece *)piece_at(p, (int64_t)p->refs[i].field);

		if (pc)
			rc = resolve_ref(p, pc, &p->refs[i], caps);
	}
	return rc;
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
		if (is_shared(&sp->plans[i]) || sp->plans[i].nr_cuts)
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
		if (is_code(&o->secs[i]) || is_data(&o->secs[i]))
			rc = plan_named(sp, &sp->plans[i],
					is_code(&o->secs[i]));
	}
	/* Pass 3's cuts first, estimated: they decide whether to go on. */
	if (!rc)
		rc = note_cuts(sp);
	for (size_t i = 0; !rc && i < nr; i++) {
		struct plan *p = &sp->plans[i];

		if (p->nr_cuts && !is_shared(p)) {
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
		if (is_code(&o->secs[i]))
			rc = decode_code(&sp->plans[i]);
	}
	if (!rc)
		rc = note_cuts(sp);
	for (size_t i = 0; i < nr && !rc; i++) {
		struct plan *p = &sp->plans[i];

		if (!is_data(&o->secs[i]) || !(p->nr_pieces || p->nr_cuts))
			continue;
		rc = plan_anonymous(p);
		/* anonymous only, used in one place: whole */
		if (!rc && p->nr_pieces == 1 && !p->pieces[0].primary &&
		    !is_shared(p))
			p->nr_pieces = 0;
	}
	for (size_t i = 0; i < nr && !rc; i++)
		if (is_code(&o->secs[i]) && is_shared(&sp->plans[i]))
			rc = plan_stubs(&sp->plans[i]);
	for (size_t i = 0; i < nr; i++)
		if (is_shared(&sp->plans[i]))
			sp->nr_pieces += sp->plans[i].nr_pieces;
	return rc;
}

/*
 * Pass 4: the zeros an anonymous data piece ends with that may be the
 * padding before the next piece, fewer than the next one's alignment (a
 * jump table moved by 4 bytes loses or gains 4 bytes of it).
 */
static void note_padding(struct hp_osec *s)
{
	const uint64_t end = s->base + s->sh.sh_size;
	const uint64_t align = piece_align(s->parent, end);
	uint64_t hi = 0; /* the end of the last relocated field */

	if (s->primary || !s->data || end >= s->parent->sh.sh_size)
		return;
	while (s->pad + 1 < align && s->pad + 1 < s->sh.sh_size &&
	       !s->data[s->sh.sh_size - s->pad - 1])
		s->pad++;
	for (size_t i = 0; i < s->nr_relocs; i++) {
		const uint32_t t = s->relocs[i].type;
		const uint64_t w =
			t == R_X86_64_64 || t == R_X86_64_PC64 ? 8 : 4;

		if (s->relocs[i].offset + w > hi)
			hi = s->relocs[i].offset + w;
	}
	if (hi > s->sh.sh_size - s->pad)
		s->pad = hi >= s->sh.sh_size ? 0
					     : (uint32_t)(s->sh.sh_size - hi);
}

/* Passes 4-6. */
static int cut_all(struct splitter *sp)
{
	struct hp_obj *o = sp->o;
	const size_t nr_old = sp->nr_plans;
	size_t *caps = NULL;
	int rc = make_pieces(sp);

	caps = calloc(o->nr_secs, sizeof(*caps));
	if (!rc && !caps)
		rc = -ENOMEM;
	for (size_t i = 0; i < nr_old && !rc; i++)
		if (sp->plans[i].sec->split)
			rc = move_relocs(&sp->plans[i], caps);
	for (size_t i = 0; i < o->nr_secs && !rc; i++) {
		struct hp_osec *s = &o->secs[i];

		if (!is_code(s) && !is_data(s))
			continue; /* .eh_frame, debugging: never in a patch */
		for (size_t j = 0; j < s->nr_relocs && !rc; j++)
			if (s->relocs[j].sym->sec &&
			    s->relocs[j].sym->sec->split &&
			    is_label(s->relocs[j].sym))
				rc = retarget(sp, s, &s->relocs[j]);
	}
	for (size_t i = 0; i < nr_old && !rc; i++)
		if (sp->plans[i].sec->split && is_code(sp->plans[i].sec))
			rc = resolve_refs(&sp->plans[i], caps);
	for (size_t i = nr_old; i < o->nr_secs && !rc; i++) {
		if (o->secs[i].nr_relocs)
			qsort(o->secs[i].relocs, o->secs[i].nr_relocs,
			      sizeof(*o->secs[i].relocs), cmp_relocs);
		if (is_data(&o->secs[i]))
			note_padding(&o->secs[i]);
	}
	free(caps);
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
		rc = cut_all(&sp);
	splitter_release(&sp);
	return rc;
}

int hp_check_pieces(struct hp_osec *const *secs, size_t nr_secs,
		    struct hp_diff_report *r, int *nr_errors)
{
	for (size_t i = 0; i < nr_secs; i++) {
		const struct hp_osec *s = secs[i];
		int rc;

		if (!s->problem)
			continue;
		(*nr_errors)++;
		rc = hp_report_refuse(
			r, what(s), s->obj->relpath, -HP_E_UNSUPPORTED,
			"rebuild both trees with -ffunction-sections, or patch "
			"the functions around it",
			"%s", s->problem);
		if (rc)
			return rc;
	}
	return 0;
}
