/*
 * Proof that --binary was linked from --old: every function of an old object
 * linked into the binary must be there byte for byte once each relocation is
 * replayed against the binary's addresses. Only what the linker rewrites may
 * differ, and only as GNU ld rewrites it: GOT loads relaxed to lea or to an
 * immediate, indirect calls and jumps made direct, calls through a PLT stub,
 * and thread-local accesses relaxed to a cheaper model.
 *
 * Passes, for each old object:
 * 1. Is it linked into the binary? Its source file has a group of locals in
 *    the binary's symbol table (the STT_FILE symbol), or, for an object with
 *    no locals, the binary defines every global function it defines.
 *    Example: redis-cli.o is skipped against redis-server.
 * 2. Where is each text section? An input section lands in the binary
 *    whole, so every function in it sits at one base plus its value; a
 *    function that does not is a mismatch. Anonymous data (jump tables,
 *    .rodata without -fdata-sections) gets its base from the first reference
 *    to it, and its bytes are then compared too.
 * 3. Replay: a copy of the section's bytes gets each relocated field the
 *    value the linker wrote for it (S + A - P and so on, per type), in
 *    whichever of its allowed forms the binary has (diff_replay.c); then
 *    each function is compared with the binary's bytes. References the
 *    assembler resolved inside one section (no -ffunction-sections) keep
 *    their distance, so those bytes compare as they are. A function whose
 *    bytes differ is compared once more instruction by instruction
 *    (diff_insn.c), for the assembler's other choice of branch sizes.
 * 4. Refuse each function that differs, unless its object is a second
 *    build of a source whose linked build matched (drop_siblings()).
 * Objects cut into pieces (diff_split.c) are proved as written.
 */
#include "differ/diff_proof_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Mismatches listed one by one; the rest are counted in one line. */
#define HP_PROOF_MAX_REPORTED 10

/* Where section @sec landed, from the named symbols in it (pass 2). */
static struct sec_base *base_of(struct prover *p, const struct hp_osec *sec)
{
	struct sec_base *b = &p->bases[sec->index];

	for (size_t i = 0; i < p->count[sec->index] && !b->known && !b->tried;
	     i++) {
		const struct hp_osym *s = p->by_sec[p->first[sec->index] + i];
		const struct hp_bsym *bs = NULL;

		if (!(s->type == STT_FUNC || s->type == STT_OBJECT ||
		      s->type == STT_TLS))
			continue;
		/* A global may be another object's definition (a weak one
		 * overridden); only a local is surely this section's. */
		bs = hp_proof_find_bsym(p, s, 0);
		if (!bs || (s->bind != STB_LOCAL && s->bind != bs->bind))
			continue;
		b->base = bs->value - s->st.st_value;
		b->known = true;
	}
	b->tried = true;
	return b;
}

static void target_of(struct prover *p, const struct hp_orel *r,
		      struct hp_rtarget *t)
{
	const struct hp_osym *s = r->sym;
	const struct sec_base *b = s->sec ? base_of(p, s->sec) : NULL;
	const struct hp_bsym *bs = hp_proof_find_bsym(
		p, s, b && b->known ? b->base + s->st.st_value : 0);

	*t = (struct hp_rtarget){
		.name = s->bind == STB_LOCAL ? NULL : s->name,
		.weak = !s->sec && s->bind == STB_WEAK,
	};
	if (bs && (bs->value || bs->type == STT_TLS || s->sec)) {
		t->S = bs->value;
		t->size = bs->size;
		t->defined = true;
		return;
	}
	if (b && b->known) {
		t->S = b->base + s->st.st_value;
		t->size = s->st.st_size;
		t->defined = true;
	}
}

static bool is_plain(uint32_t type)
{
	return type == R_X86_64_PC32 || type == R_X86_64_PLT32 ||
	       type == R_X86_64_32 || type == R_X86_64_32S ||
	       type == R_X86_64_64 || type == R_X86_64_PC64;
}

/* What a plain relocation's field in the binary says S + A is. */
static uint64_t implied_value(const struct hp_replay_site *s)
{
	const uint8_t *f = s->act + s->off;

	switch (s->type) {
	case R_X86_64_PC32:
	case R_X86_64_PLT32:
		return s->P + (uint64_t)(int64_t)(int32_t)hp_get_le32(f);
	case R_X86_64_32:
		return hp_get_le32(f);
	case R_X86_64_32S:
		return (uint64_t)(int64_t)(int32_t)hp_get_le32(f);
	case R_X86_64_PC64:
		return s->P + hp_get_le64(f);
	default:
		return hp_get_le64(f);
	}
}

static size_t field_width(uint32_t type)
{
	return type == R_X86_64_64 || type == R_X86_64_PC64 ||
			       type == R_X86_64_SIZE64 ||
			       type == R_X86_64_GOTOFF64 ||
			       type == R_X86_64_GOTPC64
		       ? 8
		       : 4;
}

/*
 * A reference into a merged section (strings, constants): ld moved the
 * entity, so check that what the field points at is the same entity.
 */
static bool same_entity(const struct prover *p, const struct hp_replay_site *s,
			const struct hp_orel *r)
{
	const struct hp_osec *sec = r->sym->sec;
	const bool label = r->sym->type != STT_SECTION;
	uint64_t off = r->sym->st.st_value + (label ? 0 : (uint64_t)r->addend);
	uint64_t at = implied_value(s) - (label ? (uint64_t)r->addend : 0);
	size_t n = 0;
	const uint8_t *b = NULL;

	if (!sec->data || off >= sec->sh.sh_size)
		return false;
	if (sec->sh.sh_flags & SHF_STRINGS) {
		const uint8_t *nul =
			memchr(sec->data + off, 0, sec->sh.sh_size - off);

		n = nul ? (size_t)(nul - sec->data - off) + 1
			: sec->sh.sh_size - off;
	} else {
		const uint64_t ent =
			sec->sh.sh_entsize ? sec->sh.sh_entsize : 1;

		at -= off % ent;
		off -= off % ent;
		n = (size_t)(ent < sec->sh.sh_size - off
				     ? ent
				     : sec->sh.sh_size - off);
	}
	b = hp_proof_bytes_at(p, at, n);
	return b && !memcmp(b, sec->data + off, n);
}

/* Replay one relocation of a text section; *@why says what failed. */
static enum hp_replay_result replay_reloc(struct prover *p,
					  const struct hp_replay_site *s,
					  const struct hp_orel *r,
					  const struct hp_osym *fn, size_t *end,
					  const char **why)
{
	const struct hp_osec *ts = r->sym->sec;
	struct hp_rtarget t;
	enum hp_replay_result res;

	*why = NULL;
	if (ts && (ts->sh.sh_flags & SHF_MERGE) && is_plain(r->type) &&
	    s->off + field_width(r->type) <= s->len) {
		if (!same_entity(p, s, r)) {
			*why = "the data it refers to differs";
			return HP_REPLAY_DIFFER;
		}
		hp_replay_take(s, field_width(r->type));
		return HP_REPLAY_MATCH;
	}
	target_of(p, r, &t);
	if (!t.defined && ts && is_plain(r->type) &&
	    s->off + field_width(r->type) <= s->len) {
		/* Anonymous data: the first reference places it. */
		struct sec_base *b = &p->bases[ts->index];

		*b = (struct sec_base){
			.base = implied_value(s) - (uint64_t)r->addend -
				r->sym->st.st_value,
			.known = true,
			.derived = true,
			.by = fn,
			.by_off = r->offset - fn->st.st_value,
		};
		target_of(p, r, &t);
	}
	res = hp_replay(&p->ops, s, &t, end);
	if (res == HP_REPLAY_UNKNOWN)
		*why = "a type the proof cannot check";
	else if (res == HP_REPLAY_DIFFER)
		*why = t.defined || t.weak ? "the field differs"
					   : "its target is not in the binary";
	return res;
}

/* Note that @fn differs at @off; refused once every object is proved. */
static int report(struct prover *p, const struct hp_osym *fn, size_t off,
		  const char *detail)
{
	struct mismatch *m =
		realloc(p->miss, (p->nr_miss + 1) * sizeof(*p->miss));

	if (!m)
		return -ENOMEM;
	p->miss = m;
	m = &p->miss[p->nr_miss];
	*m = (struct mismatch){ .obj = p->cur,
				.fn = strdup(fn->name),
				.off = off,
				.detail = strdup(detail) };
	if (!m->fn || !m->detail) {
		free(m->fn);
		free(m->detail);
		return -ENOMEM;
	}
	p->nr_miss++;
	return 0;
}

static int cmp_reloc(const void *a, const void *b)
{
	const struct hp_orel *x = *(const struct hp_orel *const *)a;
	const struct hp_orel *y = *(const struct hp_orel *const *)b;

	return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Index in @fns (sorted by value) of the function covering @off, or @n. */
static size_t func_at(const struct hp_osym *const *fns, size_t n, uint64_t off)
{
	size_t lo = 0, hi = n;

	while (lo < hi) { /* the last function starting at or before @off */
		const size_t mid = lo + (hi - lo) / 2;

		if (fns[mid]->st.st_value <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (lo--) /* an alias may be shorter than the one it shadows */
		if (off < fns[lo]->st.st_value + fns[lo]->st.st_size)
			return lo;
		else if (!lo ||
			 fns[lo - 1]->st.st_value != fns[lo]->st.st_value)
			break;
	return n;
}

/*
 * Whether @s is one of the object's functions to prove: sized, and not a
 * weak definition the binary took from elsewhere. Sets *@bs.
 */
static bool provable(struct prover *p, const struct hp_osym *s,
		     const struct hp_bsym **bs)
{
	const struct sec_base *b = NULL;

	*bs = NULL;
	if (!hp_osym_is_func(s) || !s->st.st_size)
		return false;
	b = base_of(p, s->sec);
	*bs = hp_proof_find_bsym(p, s, b->known ? b->base + s->st.st_value : 0);
	return !(*bs && s->bind == STB_WEAK && (*bs)->bind != STB_WEAK);
}

struct text {
	const struct hp_osec *sec;
	const struct hp_osym **fns;
	size_t nr_fns;
	struct failed *failed; /* per function */
	uint8_t *exp;
	const uint8_t *act;
	struct hp_orel **rels; /* the section's, by offset */
	size_t nr_rels;
};

/* The proof's side of hp_insn_same(): one function's replays. */
struct peer {
	struct prover *p;
	const struct hp_osym *fn;
};

static bool branch_reaches(void *ctx, const struct hp_orel *r, uint64_t tail,
			   uint64_t to)
{
	struct peer *pe = ctx;
	struct hp_rtarget t;

	target_of(pe->p, r, &t);
	if ((r->type == R_X86_64_PC32 || r->type == R_X86_64_PLT32) &&
	    t.defined && t.S + (uint64_t)r->addend + tail == to)
		return true;
	return t.name && pe->p->ops.plt_stub(pe->p, &t, to);
}

static bool replays(void *ctx, struct hp_orel *const *rels, size_t nr,
		    const struct hp_insn_twin *in)
{
	struct peer *pe = ctx;
	uint8_t exp[16];

	if (in->len > sizeof(exp))
		return false;
	memcpy(exp, in->obj, in->len);
	for (size_t i = 0; i < nr; i++) {
		const uint64_t at = rels[i]->offset - in->obj_off;
		const struct hp_replay_site s = { .exp = exp,
						  .act = in->act,
						  .len = in->len,
						  .off = at,
						  .P = in->addr + at,
						  .type = rels[i]->type,
						  .A = rels[i]->addend };
		const char *why = NULL;
		size_t end = 0;

		if (replay_reloc(pe->p, &s, rels[i], pe->fn, &end, &why) !=
		    HP_REPLAY_MATCH)
			return false;
	}
	return !memcmp(exp, in->act, in->len);
}

/* Whether function @i is the binary's @bs, instruction by instruction. */
static bool same_code(struct prover *p, struct text *x, size_t i,
		      const struct hp_bsym *bs)
{
	const struct hp_osym *fn = x->fns[i];
	const struct sec_base *b = &p->bases[x->sec->index];
	struct peer pe = { p, fn };
	const struct hp_insn_peer peer = { .branch_reaches = branch_reaches,
					   .replays = replays,
					   .ctx = &pe,
					   .has_base = b->known,
					   .base = b->base };
	const struct hp_insn_code obj = { x->sec->data + fn->st.st_value,
					  fn->st.st_size, fn->st.st_value };
	const struct hp_insn_code bin = {
		hp_proof_bytes_at(p, bs->value, bs->size), bs->size, bs->value
	};

	return bin.code && hp_insn_same(&peer, &obj, &bin, x->rels, x->nr_rels);
}

static int compare_funcs(struct prover *p, struct text *x)
{
	const struct sec_base *b = &p->bases[x->sec->index];
	int rc = 0;

	for (size_t i = 0; i < x->nr_fns && rc != -ENOMEM; i++) {
		const struct hp_osym *fn = x->fns[i];
		const struct hp_bsym *bs = NULL;
		const uint64_t v = fn->st.st_value, n = fn->st.st_size;
		char detail[200];
		size_t d = 0;

		/* An alias of the previous function: already counted. */
		if (i && x->fns[i - 1]->st.st_value == v)
			continue;
		p->nr_funcs++;
		provable(p, fn, &bs);
		if (!bs) {
			rc = report(p, fn, 0, "not in the binary");
			continue;
		}
		if (bs->value != b->base + v) {
			rc = report(p, fn, 0,
				    "placed elsewhere in its section");
			continue;
		}
		while (x->act && bs->size == n && d < n &&
		       x->exp[v + d] == x->act[v + d])
			d++;
		if ((x->act && d == n) || same_code(p, x, i, bs)) {
			p->nr_matched++;
			p->ok[fn->index] = true;
			continue;
		}
		if (bs->size != n || !x->act) {
			snprintf(detail, sizeof(detail),
				 "%llu bytes in the binary, %llu in the object",
				 (unsigned long long)bs->size,
				 (unsigned long long)n);
			rc = report(p, fn, 0, detail);
			continue;
		}
		if (x->failed[i].r && d + 4 >= x->failed[i].r->offset - v &&
		    d <= x->failed[i].r->offset - v + 8)
			snprintf(detail, sizeof(detail), "%s against '%s': %s",
				 hp_reloc_type_name(x->failed[i].r->type),
				 x->failed[i].r->sym->name, x->failed[i].why);
		else
			snprintf(detail, sizeof(detail),
				 "byte 0x%02x, the object's 0x%02x",
				 x->act[v + d], x->exp[v + d]);
		rc = report(p, fn, d, detail);
	}
	return rc == -ENOMEM ? rc : 0;
}

/* Replay and compare one text section of the object. */
static int prove_text(struct prover *p, const struct hp_osec *sec)
{
	struct text x = { .sec = sec };
	const struct sec_base *b = &p->bases[sec->index];
	struct hp_orel **rels = NULL;
	size_t end = 0;
	int rc = 0;

	x.fns = calloc(p->count[sec->index] + 1, sizeof(*x.fns));
	x.failed = calloc(p->count[sec->index] + 1, sizeof(*x.failed));
	rels = calloc(sec->nr_relocs ? sec->nr_relocs : 1, sizeof(*rels));
	x.exp = malloc(sec->sh.sh_size ? sec->sh.sh_size : 1);
	if (!x.fns || !x.failed || !rels || !x.exp) {
		rc = -ENOMEM;
		goto out_free;
	}
	/* In value order (by_sec is), for aliases and func_at(). */
	for (size_t i = 0; i < p->count[sec->index]; i++) {
		const struct hp_osym *s = p->by_sec[p->first[sec->index] + i];
		const struct hp_bsym *bs = NULL;

		if (provable(p, s, &bs))
			x.fns[x.nr_fns++] = s;
	}
	if (!x.nr_fns || !b->known) /* none, or none placed: */
		goto out_free; /* discarded by the linker (--gc-sections) */
	memcpy(x.exp, sec->data, sec->sh.sh_size);
	for (size_t i = 0; i < sec->nr_relocs; i++)
		rels[i] = &sec->relocs[i];
	qsort(rels, sec->nr_relocs, sizeof(*rels), cmp_reloc);
	x.rels = rels;
	x.nr_rels = sec->nr_relocs;
	/* The last function of a section that shrank in the binary: none of
	 * it byte for byte, all of it instruction by instruction. */
	x.act = hp_proof_bytes_at(p, b->base, sec->sh.sh_size);
	for (size_t i = 0; x.act && i < sec->nr_relocs; i++) {
		const struct hp_orel *r = rels[i];
		const size_t k = func_at(x.fns, x.nr_fns, r->offset);
		const struct hp_osym *fn = k < x.nr_fns ? x.fns[k] : NULL;
		const struct hp_replay_site s = {
			.exp = x.exp,
			.act = x.act,
			.len = sec->sh.sh_size,
			.off = r->offset,
			.P = b->base + r->offset,
			.type = r->type,
			.A = r->addend,
		};
		const char *why = NULL;
		size_t seq_end = 0;

		if (!fn || r->offset < end || r->offset >= sec->sh.sh_size)
			continue; /* padding, or inside a rewritten sequence */
		replay_reloc(p, &s, r, fn, &seq_end, &why);
		if (why && !x.failed[k].r)
			x.failed[k] = (struct failed){ r, why };
		end = seq_end;
	}
	rc = compare_funcs(p, &x);
out_free:
	free(x.fns);
	free(x.failed);
	free(rels);
	free(x.exp);
	return rc;
}

/* Whether @r writes into [lo, hi) of its section. */
static bool overlaps(const struct hp_orel *r, uint64_t lo, uint64_t hi)
{
	return r->offset < hi && r->offset + field_width(r->type) > lo;
}

/*
 * Anonymous data placed by a reference to it: its bytes must be the
 * object's, but for the fields its own relocations fill.
 */
static int check_derived(struct prover *p)
{
	int rc = 0;

	for (size_t i = 0; i < p->o->nr_secs && !rc; i++) {
		const struct hp_osec *sec = &p->o->secs[i];
		const struct sec_base *b = &p->bases[i];
		const uint8_t *act = NULL;
		uint64_t d = 0;

		if (!b->derived || !sec->data)
			continue;
		act = hp_proof_bytes_at(p, b->base, sec->sh.sh_size);
		for (; act && d < sec->sh.sh_size; d++) {
			bool masked = false;

			if (act[d] == sec->data[d])
				continue;
			for (size_t j = 0; j < sec->nr_relocs && !masked; j++)
				masked = overlaps(&sec->relocs[j], d, d + 1);
			if (!masked)
				break;
		}
		if (act && d == sec->sh.sh_size)
			continue;
		if (p->ok[b->by->index]) {
			p->ok[b->by->index] = false;
			p->nr_matched--;
		} else {
			continue; /* reported already */
		}
		if (act) {
			char detail[160];

			snprintf(detail, sizeof(detail),
				 "the data it refers to, '%s'+0x%llx, differs",
				 sec->name, (unsigned long long)d);
			rc = report(p, b->by, b->by_off, detail);
		} else {
			rc = report(p, b->by, b->by_off,
				    "it refers to data outside the binary");
		}
	}
	return rc;
}

/*
 * Pass 1: whether the object is linked into the binary: the binary has a
 * group of locals under its source file's name, or (an object with no
 * locals) defines every global function it does.
 */
static bool is_linked(struct prover *p)
{
	const char *file = p->o->file_sym;
	bool has_local = false;
	size_t nr_global = 0;

	if (file && *file && p->nr_files &&
	    bsearch(&file, p->files, p->nr_files, sizeof(*p->files),
		    hp_proof_cmp_str))
		return true;
	for (size_t i = 0; i < p->o->nr_syms; i++) {
		const struct hp_osym *s = &p->o->syms[i];

		if (!hp_osym_is_func(s) && !hp_osym_is_data(s))
			continue;
		if (s->bind == STB_LOCAL) {
			has_local = true;
			continue;
		}
		if (!hp_osym_is_func(s) || !s->st.st_size)
			continue;
		if (!hp_proof_find_bsym(p, s, 0))
			return false;
		nr_global++;
	}
	return nr_global && (!has_local || !p->nr_files);
}

static bool has_funcs(const struct hp_obj *o)
{
	for (size_t i = 0; i < o->nr_syms; i++)
		if (hp_osym_is_func(&o->syms[i]) && o->syms[i].st.st_size)
			return true;
	return false;
}

static int cmp_by_sec(const void *a, const void *b)
{
	const struct hp_osym *x = *(const struct hp_osym *const *)a;
	const struct hp_osym *y = *(const struct hp_osym *const *)b;

	if (x->sec->index != y->sec->index)
		return x->sec->index < y->sec->index ? -1 : 1;
	if (x->st.st_value != y->st.st_value)
		return x->st.st_value < y->st.st_value ? -1 : 1;
	return (x->index > y->index) - (x->index < y->index);
}

static int index_by_sec(struct prover *p, const struct hp_obj *o)
{
	size_t n = 0;

	p->by_sec = calloc(o->nr_syms ? o->nr_syms : 1, sizeof(*p->by_sec));
	p->first = calloc(o->nr_secs ? o->nr_secs : 1, sizeof(*p->first));
	p->count = calloc(o->nr_secs ? o->nr_secs : 1, sizeof(*p->count));
	if (!p->by_sec || !p->first || !p->count)
		return -ENOMEM;
	for (size_t i = 0; i < o->nr_syms; i++)
		if (o->syms[i].sec)
			p->by_sec[n++] = &o->syms[i];
	if (n)
		qsort(p->by_sec, n, sizeof(*p->by_sec), cmp_by_sec);
	for (size_t i = n; i--;) {
		p->first[p->by_sec[i]->sec->index] = i;
		p->count[p->by_sec[i]->sec->index]++;
	}
	return 0;
}

static int prove_obj(struct prover *p, struct hp_obj *o)
{
	int rc = 0;

	p->o = o;
	p->bases = calloc(o->nr_secs ? o->nr_secs : 1, sizeof(*p->bases));
	p->ok = calloc(o->nr_syms ? o->nr_syms : 1, sizeof(*p->ok));
	rc = p->bases && p->ok ? index_by_sec(p, o) : -ENOMEM;
	if (rc)
		goto out_free;
	if (!is_linked(p)) {
		if (has_funcs(o))
			hp_log(HP_LOG_INFO,
			       "'%s': not linked into '%s' (no '%s' in its "
			       "symbol table); not compared",
			       o->relpath, p->bin->path,
			       o->file_sym ? o->file_sym : "?");
		goto out_free;
	}
	for (size_t i = 0; i < o->nr_secs && !rc; i++)
		if (hp_osec_is_text(&o->secs[i]) && o->secs[i].data &&
		    (o->secs[i].sh.sh_flags & SHF_ALLOC))
			rc = prove_text(p, &o->secs[i]);
	if (!rc)
		rc = check_derived(p);
out_free:
	free(p->bases);
	free(p->ok);
	free(p->by_sec);
	free(p->first);
	free(p->count);
	p->bases = NULL;
	p->ok = NULL;
	p->by_sec = NULL;
	p->first = p->count = NULL;
	return rc;
}

/*
 * A build without function sections was cut into pieces, with the fields
 * the assembler resolved zeroed and short branches sent to stubs: not the
 * bytes the linker saw. Such an object is proved as it was written, read
 * once more (no decoding: a small cost next to the split's).
 */
static int prove_obj_as_written(struct prover *p, struct hp_obj *o)
{
	struct hp_obj *raw = NULL;
	int rc;

	if (!o->nr_pieces)
		return prove_obj(p, o);
	rc = hp_obj_open_flags(o->path, o->relpath, HP_OBJ_AS_WRITTEN, &raw);
	if (!rc)
		rc = prove_obj(p, raw);
	hp_obj_free(raw);
	return rc;
}

/* Whether old objects @a and @b define a function of the same name. */
static bool share_a_function(struct hp_obj *a, struct hp_obj *b)
{
	for (size_t i = 0; i < a->nr_syms; i++)
		if (hp_osym_is_func(&a->syms[i]) &&
		    hp_obj_find_sym_by_name(b, a->syms[i].name))
			return true;
	return false;
}

/*
 * A tree may hold two builds of one source (a program's util.o, and a
 * test's built with -DTEST): both carry the source's name, and only one
 * is linked into the binary. An object that differs is left out when
 * another of the same source name, defining the same functions, matched
 * whole. Two sources of one name in the binary (an embedded library's
 * sds.c beside the program's) define other functions: both are proved.
 */
static void drop_siblings(struct prover *p, struct hp_pair *pairs,
			  size_t nr_pairs, struct tally *t)
{
	for (size_t i = 0; i < nr_pairs; i++) {
		struct hp_obj *o = pairs[i].old_obj;

		if (!o || t[i].nr_matched == t[i].nr_funcs || !o->file_sym)
			continue;
		for (size_t j = 0; j < nr_pairs && !t[i].dropped; j++) {
			struct hp_obj *s = pairs[j].old_obj;

			if (j == i || !s || !s->file_sym || t[j].dropped ||
			    !t[j].nr_funcs ||
			    t[j].nr_matched != t[j].nr_funcs ||
			    strcmp(s->file_sym, o->file_sym) ||
			    !share_a_function(o, s))
				continue;
			t[i].dropped = true;
			p->nr_funcs -= t[i].nr_funcs;
			p->nr_matched -= t[i].nr_matched;
			hp_log(HP_LOG_INFO,
			       "'%s': '%s' is the build of '%s' linked into "
			       "'%s'; not compared",
			       o->relpath, s->relpath, o->file_sym,
			       p->bin->path);
		}
	}
}

/* Refuse each function that differs, of the objects not left out. */
static int refuse(struct prover *p, struct hp_pair *pairs,
		  const struct tally *t)
{
	uint32_t n = 0;
	int rc = 0;

	for (size_t i = 0; i < p->nr_miss && !rc; i++) {
		const struct mismatch *m = &p->miss[i];

		if (t[m->obj].dropped || ++n > HP_PROOF_MAX_REPORTED)
			continue;
		rc = hp_report_refuse(
			p->r, m->fn, pairs[m->obj].old_obj->relpath,
			-HP_E_FOREIGN_BINARY,
			"give --binary the binary linked from exactly the "
			"--old objects, or rebuild the objects from its "
			"sources and flags",
			"'%s'+0x%llx differs in '%s' (%s): built with other "
			"flags, or from other sources",
			m->fn, (unsigned long long)m->off, p->bin->path,
			m->detail);
	}
	if (!rc && n > HP_PROOF_MAX_REPORTED)
		rc = hp_report_refuse(p->r, "", "", -HP_E_FOREIGN_BINARY, NULL,
				      "%u more functions differ in '%s'",
				      n - HP_PROOF_MAX_REPORTED, p->bin->path);
	return rc;
}

int hp_prove_binary(struct hp_pair *pairs, size_t nr_pairs,
		    const struct hp_binary *bin, struct hp_diff_report *r,
		    struct hp_diff_report_module *rm)
{
	struct prover p;
	struct tally *t = calloc(nr_pairs ? nr_pairs : 1, sizeof(*t));
	bool any = false;
	struct timespec t0, t1;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = hp_prover_init(&p, bin, r);
	if (!t && !rc)
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < nr_pairs; i++) {
		const uint32_t funcs = p.nr_funcs, matched = p.nr_matched;

		if (!pairs[i].old_obj)
			continue;
		any |= has_funcs(pairs[i].old_obj);
		p.cur = i;
		rc = prove_obj_as_written(&p, pairs[i].old_obj);
		t[i] = (struct tally){ p.nr_funcs - funcs,
				       p.nr_matched - matched, false };
	}
	if (rc)
		goto out_release;
	drop_siblings(&p, pairs, nr_pairs, t);
	rm->nr_proved = p.nr_matched;
	rm->nr_proof_funcs = p.nr_funcs;
	rc = refuse(&p, pairs, t);
	if (!rc && any && !p.nr_funcs)
		rc = hp_report_refuse(
			r, "", "", -HP_E_FOREIGN_BINARY,
			"give --binary the binary linked from the --old "
			"objects",
			"no function of the old objects is in '%s'", bin->path);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	hp_log(HP_LOG_INFO,
	       "'%s': %u of %u functions match the old objects (%.1f ms)",
	       bin->path, p.nr_matched, p.nr_funcs,
	       (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		       (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
out_release:
	hp_prover_release(&p);
	free(t);
	return rc;
}
