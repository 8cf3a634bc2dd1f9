/*
 * The same code, instruction by instruction: the binary proof's second
 * look at a function whose bytes differ. The objects of the kpatch model
 * are compiled with function sections, the release without; where the
 * release's assembler reached a nearby function or label with a short jump,
 * the object has a near one with a relocation (or the other way round, as
 * layouts differ), every instruction after it moves, and the alignment nops
 * before a loop grow or shrink. That is the same code. Both sides are
 * decoded (libzydis) and compared, nops left out: a branch by its mnemonic
 * and where it lands (inside the function through the pairing of
 * instructions), an instruction with a relocation by the proof's replay
 * (struct hp_insn_peer), anything else byte for byte.
 */
#include "differ/differ_int.h"

#include <Zydis/Zydis.h>
#include <stdlib.h>
#include <string.h>

struct insn {
	uint64_t off; /* in its function */
	uint8_t len;  /* 0: the end */
	bool nop;
	bool branch; /* a relative immediate (jmp, jcc, call) */
	int rel_at;  /* its field, or a RIP-relative displacement; -1 */
	int64_t rel; /* the field's value */
	ZydisMnemonic mnemonic;
};

/* One function on one side. */
struct side {
	const struct hp_insn_code *c;
	bool *start; /* [len + 1]: an instruction (or the end) starts here */
};

struct walk {
	ZydisDecoder dec;
	const struct hp_insn_peer *peer;
	struct side o, b;
	uint64_t *po, *pb; /* paired instruction starts, ascending */
	size_t nr_pairs;
	uint64_t *jo, *jb; /* branches inside: targets to check at the end */
	size_t nr_jumps;
};

static bool decode(const struct walk *w, const struct side *s, uint64_t off,
		   struct insn *in)
{
	ZydisDecodedInstruction zi;

	if (off >= s->c->len ||
	    !ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(
		    &w->dec, NULL, s->c->code + off, s->c->len - off, &zi)))
		return false;
	*in = (struct insn){ .off = off,
			     .len = zi.length,
			     .nop = zi.mnemonic == ZYDIS_MNEMONIC_NOP,
			     .rel_at = -1,
			     .mnemonic = zi.mnemonic };
	for (int i = 0; i < 2; i++)
		if (zi.raw.imm[i].is_relative) {
			in->branch = true;
			in->rel_at = zi.raw.imm[i].offset;
			in->rel = zi.raw.imm[i].value.s;
		}
	if (in->rel_at < 0 && (zi.attributes & ZYDIS_ATTRIB_HAS_MODRM) &&
	    zi.raw.modrm.mod == 0 && zi.raw.modrm.rm == 5) {
		in->rel_at = zi.raw.disp.offset;
		in->rel = zi.raw.disp.value;
	}
	return true;
}

/* Where @in's PC-relative field leads, from its function's start. */
static uint64_t lands(const struct insn *in)
{
	return in->off + in->len + (uint64_t)in->rel;
}

/* The first paired start at or after @off, which must start something. */
static bool paired(const struct side *s, const uint64_t *starts, size_t n,
		   uint64_t off, size_t *k)
{
	size_t lo = 0, hi = n;

	if (off > s->c->len || !s->start[off])
		return false;
	while (lo < hi) {
		const size_t mid = lo + (hi - lo) / 2;

		if (starts[mid] < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	*k = lo;
	return lo < n;
}

/* A PC-relative reference the assembler resolved to a neighbour. */
static bool same_neighbour(const struct walk *w, const struct insn *o,
			   const struct insn *b)
{
	return w->peer->has_base &&
	       w->peer->base + w->o.c->at + lands(o) == w->b.c->at + lands(b);
}

/* A branch: same mnemonic, and the same place, wherever that is. */
static bool same_branch(struct walk *w, const struct hp_orel *r,
			const struct insn *o, const struct insn *b)
{
	const uint64_t bt = lands(b);

	if (!b->branch || o->mnemonic != b->mnemonic)
		return false;
	if (r)
		return w->peer->branch_reaches(w->peer->ctx, r,
					       o->off + o->len - r->offset +
						       w->o.c->at,
					       w->b.c->at + bt);
	if (lands(o) > w->o.c->len)
		return same_neighbour(w, o, b);
	/* inside: checked once every instruction is paired */
	w->jo[w->nr_jumps] = lands(o);
	w->jb[w->nr_jumps++] = bt;
	return bt <= w->b.c->len;
}

static bool same_insn(struct walk *w, struct hp_orel *const *rels, size_t nr,
		      const struct insn *o, const struct insn *b)
{
	const struct hp_orel *at_field = NULL;
	const uint8_t *oc = w->o.c->code + o->off, *bc = w->b.c->code + b->off;

	for (size_t i = 0; i < nr && o->rel_at >= 0; i++)
		if (rels[i]->offset ==
		    w->o.c->at + o->off + (uint64_t)o->rel_at)
			at_field = rels[i];
	if (o->branch && (at_field || !nr))
		return same_branch(w, at_field, o, b);
	if (nr) {
		const struct hp_insn_twin in = { oc, w->o.c->at + o->off, bc,
						 w->b.c->at + b->off, o->len };

		return o->len == b->len &&
		       w->peer->replays(w->peer->ctx, rels, nr, &in);
	}
	if (o->len != b->len)
		return false;
	if (o->rel_at < 0)
		return !memcmp(oc, bc, o->len);
	/* RIP-relative without a relocation: elsewhere in the section */
	return b->rel_at == o->rel_at && !memcmp(oc, bc, (size_t)o->rel_at) &&
	       same_neighbour(w, o, b);
}

/* Decode the next instruction that is not a nop; false at a bad byte. */
static bool next_insn(const struct walk *w, struct side *s, uint64_t *off,
		      struct insn *in)
{
	while (*off < s->c->len) {
		if (!decode(w, s, *off, in))
			return false;
		s->start[*off] = true;
		if (!in->nop)
			return true;
		*off += in->len;
	}
	s->start[s->c->len] = true;
	in->len = 0;
	return true;
}

static bool walk_insns(struct walk *w, struct hp_orel *const *rels,
		       size_t nr_rels)
{
	const uint64_t v = w->o.c->at;
	uint64_t oo = 0, bo = 0;
	size_t ri = 0;

	for (;;) {
		struct insn o, b;
		size_t nr = 0;

		if (!next_insn(w, &w->o, &oo, &o) ||
		    !next_insn(w, &w->b, &bo, &b))
			return false;
		if (!o.len || !b.len)
			return !o.len && !b.len;
		w->po[w->nr_pairs] = oo;
		w->pb[w->nr_pairs++] = bo;
		while (ri < nr_rels && rels[ri]->offset < v + oo)
			ri++;
		while (ri + nr < nr_rels &&
		       rels[ri + nr]->offset < v + oo + o.len)
			nr++;
		if (!same_insn(w, rels + ri, nr, &o, &b))
			return false;
		oo += o.len;
		bo += b.len;
	}
}

bool hp_insn_same(const struct hp_insn_peer *peer,
		  const struct hp_insn_code *obj,
		  const struct hp_insn_code *bin, struct hp_orel *const *rels,
		  size_t nr_rels)
{
	struct walk w = { .peer = peer,
			  .o = { obj, NULL },
			  .b = { bin, NULL } };
	const size_t n = obj->len + bin->len + 2;
	bool ok = false;

	if (!ZYAN_SUCCESS(ZydisDecoderInit(&w.dec, ZYDIS_MACHINE_MODE_LONG_64,
					   ZYDIS_STACK_WIDTH_64)))
		return false;
	w.o.start = calloc(n, sizeof(bool));
	w.po = calloc(n, sizeof(*w.po));
	w.pb = calloc(n, sizeof(*w.pb));
	w.jo = calloc(n, sizeof(*w.jo));
	w.jb = calloc(n, sizeof(*w.jb));
	if (w.o.start && w.po && w.pb && w.jo && w.jb) {
		w.b.start = w.o.start + obj->len + 1;
		ok = walk_insns(&w, rels, nr_rels);
	}
	/* The ends pair too; every inner branch lands on paired places. */
	if (ok) {
		w.po[w.nr_pairs] = obj->len;
		w.pb[w.nr_pairs++] = bin->len;
	}
	for (size_t j = 0; ok && j < w.nr_jumps; j++) {
		size_t ko = 0, kb = 0;

		ok = paired(&w.o, w.po, w.nr_pairs, w.jo[j], &ko) &&
		     paired(&w.b, w.pb, w.nr_pairs, w.jb[j], &kb) && ko == kb;
	}
	free(w.o.start);
	free(w.po);
	free(w.pb);
	free(w.jo);
	free(w.jb);
	return ok;
}
