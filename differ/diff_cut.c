/*
 * Passes 4-6 of cutting shared sections into pieces (see diff_split.c for
 * all six): make the planned pieces, move symbols and relocations to them,
 * point relocations against a shared section at the piece covering their
 * target, and turn each resolved reference leaving its function into a
 * synthetic relocation (through a stub for a short branch).
 */
#include "differ/diff_split_int.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	if (parent->data && hp_split_is_code(parent)) {
		/* [stubs before][body][stubs after], the stubs "e9 rel32" */
		ps->own_data = malloc(ps->sh.sh_size);
		if (!ps->own_data)
			return -ENOMEM;
		memset(ps->own_data, HP_X86_INT3, ps->sh.sh_size);
		memcpy(ps->own_data + pc->lead, parent->data + pc->start, body);
		for (size_t m = 0; m < pc->nr_stubs; m++)
			ps->own_data[pc->stubs[m].off] = HP_X86_JMP_REL32;
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
		pc = hp_split_piece_at(p, (int64_t)s->st.st_value);
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
		if (!hp_split_is_shared(p))
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
	if (hp_grow(&s->relocs, cap, s->nr_relocs, sizeof(*s->relocs), 8))
		return -ENOMEM;
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
		const struct piece *pc =
			hp_split_piece_at(p, (int64_t)r.offset);

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
	const int64_t t = hp_split_target_of(from, r);
	const struct piece *to = hp_split_piece_at(p, t);

	/*
	 * Outside the section: address arithmetic on its first or last
	 * object, "steps - 8" for a loop that counts from 1.
	 */
	if (!to && hp_split_is_data(p->sec) && p->nr_pieces)
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
	const struct piece *to = hp_split_piece_at(p, f->target);
	const uint64_t field = f->field - pc->start + pc->lead;
	const uint64_t end = f->insn_end - pc->start + pc->lead;
	struct hp_orel r = { .synthetic = true };
	struct stub *st = NULL;
	int64_t disp;

	if (f->target >= (int64_t)pc->start && f->target < (int64_t)pc->end)
		return 0; /* inside the function: moves with it */
	if (!to || !to->primary ||
	    (f->target != (int64_t)to->start && !hp_split_is_own_part(pc, to)))
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
	st = f->size == 1 ? hp_split_find_stub(pc, to,
					       (uint64_t)f->target - to->start)
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
		const struct piece *pc =
			hp_split_piece_at(p, (int64_t)p->bad[i]);

		if (pc)
			rc = set_problem(
				pc->sec,
				"'%s'+0x%llx: bytes that decode to no "
				"x86-64 instruction",
				what(pc->sec),
				(unsigned long long)(p->bad[i] - pc->start));
	}
	for (size_t i = 0; i < p->nr_refs && !rc; i++) {
		struct piece *pc = (struct piece *)hp_split_piece_at(
			p, (int64_t)p->refs[i].field);

		if (pc)
			rc = resolve_ref(p, pc, &p->refs[i], caps);
	}
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
int hp_split_cut(struct splitter *sp)
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

		/* .eh_frame: its FDEs travel with the code (diff_unwind.c);
		 * debugging sections never go into a patch. */
		if (!hp_split_is_code(s) && !hp_split_is_data(s) &&
		    strcmp(s->name, ".eh_frame"))
			continue;
		for (size_t j = 0; j < s->nr_relocs && !rc; j++)
			if (s->relocs[j].sym->sec &&
			    s->relocs[j].sym->sec->split &&
			    hp_split_is_label(s->relocs[j].sym))
				rc = retarget(sp, s, &s->relocs[j]);
	}
	for (size_t i = 0; i < nr_old && !rc; i++)
		if (sp->plans[i].sec->split &&
		    hp_split_is_code(sp->plans[i].sec))
			rc = resolve_refs(&sp->plans[i], caps);
	for (size_t i = nr_old; i < o->nr_secs && !rc; i++) {
		if (o->secs[i].nr_relocs)
			qsort(o->secs[i].relocs, o->secs[i].nr_relocs,
			      sizeof(*o->secs[i].relocs), hp_split_cmp_relocs);
		if (hp_split_is_data(&o->secs[i]))
			note_padding(&o->secs[i]);
	}
	free(caps);
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
