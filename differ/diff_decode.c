/*
 * x86-64 instruction decoding for the differ, through libzydis: the
 * PC-relative operands the assembler resolved itself, and branches into a
 * function's first bytes, which the redirect's 5-byte jump overwrites.
 */
#include "differ/differ_int.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <Zydis/Zydis.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HP_JUMP_SIZE 5 /* the redirect: jmp rel32 */

/* The decoder is immutable once initialised: one for every call. */
static const ZydisDecoder *decoder(void)
{
	static ZydisDecoder dec;
	static bool ready;

	if (!ready) {
		ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64,
				 ZYDIS_STACK_WIDTH_64);
		/* Lengths and raw fields only: no operand semantics. */
		ZydisDecoderEnableMode(&dec, ZYDIS_DECODER_MODE_MINIMAL,
				       ZYAN_TRUE);
		ready = true;
	}
	return &dec;
}

/* The PC-relative field of @zi, if it has one: raw fields, no operands. */
static void find_rel(const ZydisDecodedInstruction *zi, struct hp_insn *in)
{
	const uint64_t end = in->off + zi->length;

	for (int i = 0; i < 2; i++)
		if (zi->raw.imm[i].size && zi->raw.imm[i].is_relative) {
			in->has_rel = true;
			in->is_branch = true;
			in->field_off = zi->raw.imm[i].offset;
			in->field_size = zi->raw.imm[i].size / 8;
			in->target = (int64_t)end + zi->raw.imm[i].value.s;
			return;
		}
	/*
	 * mod 00, r/m 101 without SIB is RIP-relative in 64-bit mode (the
	 * raw fields are zero without a ModRM byte).
	 */
	if (zi->raw.modrm.mod == 0 && zi->raw.modrm.rm == 5 &&
	    zi->raw.disp.size == 32) {
		in->has_rel = true;
		in->field_off = zi->raw.disp.offset;
		in->field_size = 4;
		in->target = (int64_t)end + zi->raw.disp.value;
	}
}

int hp_decode(const uint8_t *code, uint64_t from, uint64_t to,
	      int (*fn)(void *ctx, const struct hp_insn *insn), void *ctx,
	      uint64_t *bad_off)
{
	const ZydisDecoder *dec = decoder();

	for (uint64_t off = from; off < to;) {
		ZydisDecodedInstruction zi;
		struct hp_insn in = { .off = off };
		int rc;

		if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(
			    dec, NULL, code + off, to - off, &zi))) {
			*bad_off = off;
			return -HP_E_UNSUPPORTED;
		}
		in.len = zi.length;
		find_rel(&zi, &in);
		rc = fn(ctx, &in);
		if (rc)
			return rc;
		off += zi.length;
	}
	return 0;
}

struct entry_walk {
	uint64_t entry;
	uint64_t at; /* the offending instruction */
	bool found;
};

static int branch_into_entry(void *ctx, const struct hp_insn *in)
{
	struct entry_walk *w = ctx;

	if (in->is_branch && in->target > (int64_t)w->entry &&
	    in->target < (int64_t)(w->entry + HP_JUMP_SIZE)) {
		w->at = in->off;
		w->found = true;
		return 1;
	}
	return 0;
}

/* The body of function @s: its bytes in its section, no stubs. */
static void body_of(const struct hp_osym *s, uint64_t *from, uint64_t *to)
{
	*from = s->st.st_value;
	*to = s->st.st_value + s->st.st_size;
	if (*to > s->sec->sh.sh_size || !s->st.st_size)
		*to = s->sec->sh.sh_size;
}

/*
 * Whether old function @o's code (or its .cold part's, through a
 * relocation) branches to its bytes 1-4. Return: 1 (with *@at), 0, or
 * -HP_E_UNSUPPORTED when its bytes do not decode.
 */
static int enters_entry(struct hp_obj *oldo, const struct hp_osym *o,
			uint64_t *at, const char **from)
{
	struct entry_walk w = { .entry = o->st.st_value };
	uint64_t lo, hi, bad = 0;
	int rc;

	*from = o->name;
	if (!o->sec->data)
		return 0;
	body_of(o, &lo, &hi);
	rc = hp_decode(o->sec->data, lo, hi, branch_into_entry, &w, &bad);
	if (rc < 0) {
		*at = bad - o->st.st_value;
		return rc;
	}
	if (w.found) {
		*at = w.at - o->st.st_value;
		return 1;
	}
	for (size_t i = 0; i < oldo->nr_syms; i++) {
		const struct hp_osym *f = &oldo->syms[i];

		if (!hp_osym_is_fragment_of(f, o))
			continue;
		for (size_t j = 0; j < f->sec->nr_relocs; j++) {
			const struct hp_orel *r = &f->sec->relocs[j];
			const int64_t t = hp_orel_target_off(r);

			if (r->sym->sec == o->sec && t > (int64_t)w.entry &&
			    t < (int64_t)(w.entry + HP_JUMP_SIZE)) {
				*from = f->name;
				*at = r->offset;
				return 1;
			}
		}
	}
	return 0;
}

int hp_check_entries(struct hp_obj *oldo, struct hp_obj *newo,
		     struct hp_diff_report *r)
{
	int rc = 0;

	for (size_t i = 0; i < newo->nr_syms && !rc; i++) {
		const struct hp_osym *n = &newo->syms[i];
		const char *from = NULL;
		uint64_t at = 0;
		int found;

		if (!n->changed || !n->twin || !hp_osym_is_func(n) ||
		    hp_osym_is_fragment(n))
			continue;
		found = enters_entry(oldo, n->twin, &at, &from);
		if (found < 0)
			rc = hp_report_refuse(
				r, n->name, oldo->relpath, -HP_E_UNSUPPORTED,
				"check the old object's code with objdump -d",
				"old '%s'+0x%llx: bytes that are no x86-64 "
				"instruction, so the jump at its entry cannot "
				"be checked",
				n->twin->name, (unsigned long long)at);
		else if (found)
			rc = hp_report_refuse(
				r, n->name, oldo->relpath, -HP_E_UNSUPPORTED,
				"patch the functions that call it instead, or "
				"ship a new release",
				"old '%s'+0x%llx branches into bytes 1-4 of "
				"'%s', which the 5-byte jump to the new code "
				"overwrites",
				from, (unsigned long long)at, n->twin->name);
	}
	return rc;
}

struct insn_list {
	struct hp_insn *v;
	size_t nr, cap;
};

static int collect(void *ctx, const struct hp_insn *in)
{
	struct insn_list *l = ctx;

	if (hp_grow(&l->v, &l->cap, l->nr, sizeof(*l->v), 64))
		return -ENOMEM;
	l->v[l->nr++] = *in;
	return 0;
}

/* The instruction of @l at offset @off, or -1. */
static long insn_index(const struct insn_list *l, int64_t off)
{
	size_t lo = 0, hi = l->nr;

	while (lo < hi) {
		const size_t mid = lo + (hi - lo) / 2;

		if ((int64_t)l->v[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < l->nr && (int64_t)l->v[lo].off == off ? (long)lo : -1;
}

/* The first relocation of @s at or after @off. */
static size_t reloc_from(const struct hp_osec *s, uint64_t off)
{
	size_t lo = 0, hi = s->nr_relocs;

	while (lo < hi) {
		const size_t mid = lo + (hi - lo) / 2;

		if (s->relocs[mid].offset < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static const struct hp_orel *reloc_at(const struct hp_osec *s, uint64_t off)
{
	const size_t i = reloc_from(s, off);

	return i < s->nr_relocs && s->relocs[i].offset == off ? &s->relocs[i]
							      : NULL;
}

/*
 * A branch's kind, the same for its short and long forms: its prefixes
 * and the long form's opcode ("jmp" e9, "jcc" 0f 8x, "call" e8).
 */
static size_t branch_kind(const uint8_t *p, const struct hp_insn *in,
			  uint8_t *out)
{
	size_t n = in->field_off;

	if (in->field_size == 1 && n >= 1 && p[n - 1] == 0xeb) {
		memcpy(out, p, n - 1);
		out[n - 1] = HP_X86_JMP_REL32;
		return n;
	}
	if (in->field_size == 1 && n >= 1 && (p[n - 1] & 0xf0) == 0x70) {
		memcpy(out, p, n - 1);
		out[n - 1] = 0x0f;
		out[n] = (uint8_t)(0x80 | (p[n - 1] & 0x0f));
		return n + 1;
	}
	memcpy(out, p, n);
	return n;
}

struct code_side {
	const struct hp_osec *s;
	struct insn_list l;
	uint64_t body_end;
};

/*
 * Where branch or reference @in of @c goes: an instruction of its own
 * (*@idx), or a relocation (*@rel: at its field, or at the stub a short
 * branch goes through). Return: false when it is neither.
 */
static bool rel_dest(const struct code_side *c, const struct hp_insn *in,
		     long *idx, const struct hp_orel **rel)
{
	const struct hp_osec *s = c->s;

	*idx = -1;
	*rel = reloc_at(s, in->off + in->field_off);
	if (*rel)
		return true;
	if (in->target >= (int64_t)s->lead &&
	    in->target < (int64_t)c->body_end) {
		*idx = insn_index(&c->l, in->target);
		return *idx >= 0;
	}
	/* A stub: "jmp rel32" whose field has the relocation. */
	*rel = in->target >= 0 ? reloc_at(s, (uint64_t)in->target + 1) : NULL;
	return *rel != NULL;
}

static bool insn_equal(const struct code_side *x, const struct hp_insn *a,
		       const struct code_side *y, const struct hp_insn *b,
		       bool (*eq)(const struct hp_orel *,
				  const struct hp_orel *, void *),
		       void *ctx)
{
	const uint8_t *pa = x->s->data + a->off, *pb = y->s->data + b->off;
	size_t ia = reloc_from(x->s, a->off), ib = reloc_from(y->s, b->off);

	if (a->has_rel != b->has_rel || a->is_branch != b->is_branch)
		return false;
	if (a->has_rel) {
		uint8_t ka[16], kb[16];
		const size_t na = branch_kind(pa, a, ka),
			     nb = branch_kind(pb, b, kb);
		const struct hp_orel *ra = NULL, *rb = NULL;
		long xa, xb;

		if (na != nb || memcmp(ka, kb, na) ||
		    !rel_dest(x, a, &xa, &ra) || !rel_dest(y, b, &xb, &rb))
			return false;
		if (ra && rb ? !eq(ra, rb, ctx) : xa != xb || ra || rb)
			return false;
		/* The rest after the field (an immediate) as bytes. */
		if (a->len - a->field_off - a->field_size !=
			    b->len - b->field_off - b->field_size ||
		    memcmp(pa + a->field_off + a->field_size,
			   pb + b->field_off + b->field_size,
			   a->len - a->field_off - a->field_size))
			return false;
		/* Other relocations in it (an immediate's): below. */
		if (ia < x->s->nr_relocs &&
		    x->s->relocs[ia].offset == a->off + a->field_off)
			ia++;
		if (ib < y->s->nr_relocs &&
		    y->s->relocs[ib].offset == b->off + b->field_off)
			ib++;
	} else if (a->len != b->len || memcmp(pa, pb, a->len)) {
		return false;
	}
	for (;; ia++, ib++) {
		const bool ma = ia < x->s->nr_relocs &&
				x->s->relocs[ia].offset < a->off + a->len;
		const bool mb = ib < y->s->nr_relocs &&
				y->s->relocs[ib].offset < b->off + b->len;
		const struct hp_orel *ra = ma ? &x->s->relocs[ia] : NULL;
		const struct hp_orel *rb = mb ? &y->s->relocs[ib] : NULL;

		if (!ma || !mb)
			return ma == mb;
		if (a->has_rel && (ra->offset == a->off + a->field_off ||
				   rb->offset == b->off + b->field_off))
			return false;
		if (ra->offset - a->off != rb->offset - b->off ||
		    ra->type != rb->type || !eq(ra, rb, ctx))
			return false;
	}
}

static int decode_side(struct code_side *c)
{
	uint64_t bad = 0;

	c->body_end = c->s->sh.sh_size - c->s->tail;
	return hp_decode(c->s->data, c->s->lead, c->body_end, collect, &c->l,
			 &bad);
}

bool hp_code_equal(const struct hp_osec *a, const struct hp_osec *b,
		   bool (*eq)(const struct hp_orel *ra,
			      const struct hp_orel *rb, void *ctx),
		   void *ctx)
{
	struct code_side x = { .s = a }, y = { .s = b };
	bool same = false;

	if (!a->data || !b->data || a->problem || b->problem)
		return false;
	if (decode_side(&x) || decode_side(&y) || x.l.nr != y.l.nr)
		goto out;
	same = true;
	for (size_t i = 0; i < x.l.nr && same; i++)
		same = insn_equal(&x, &x.l.v[i], &y, &y.l.v[i], eq, ctx);
out:
	free(x.l.v);
	free(y.l.v);
	return same;
}
