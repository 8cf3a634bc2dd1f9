/*
 * Correlation and comparison of one old/new object pair.
 *
 * Passes:
 * 1. Twin symbols, the old function or object each new one replaces:
 *    a. plain names by exact name ("api", "scale", "counter");
 *    b. locals gcc numbers per build, clones ("tier_price.constprop.1",
 *       "weight.isra.0", "checksum.part.0") and static locals ("count.0"),
 *       whose numbers shift when gcc makes a new clone and swap when code
 *       moves. In rounds, until none pairs, each with the one unpaired old
 *       member of its family (same name up to the numbers) that has the
 *       same name and code, else the same code, else the same referrers,
 *       twin for twin: new "tier_price.constprop.2" <-> old ".1" whose code
 *       is the same; a fixed ".0" called by price_basic only <-> the old
 *       ".1" called by price_basic only. Then the only member of a family
 *       in both builds pairs with the other; a static local by name if
 *       both builds have as many of its family, else it is refused (the
 *       running value cannot be guessed); a clone left over is new and the
 *       old one gone, so what calls either differs and is patched too;
 *    c. ".cold" parts as their parents: "f.constprop.1.cold" with old
 *       "f.constprop.0.cold" when the parents pair.
 *    Any pairing of functions is consistent, as pass 2 compares through
 *    twins; these rules keep unchanged and renumbered clones and their
 *    callers out. Not so for a static local: its twin is where the running
 *    value is, so the referrers rule comes before the name.
 * 2. Compare each twin function: section size, bytes, and relocations. A
 *    relocation matches when offset, type and normalised target match: a
 *    function or object, named or through its section's symbol, by its twin
 *    and addend; any other symbol by name; a merged string by its text (so
 *    renumbered .LC labels and shifted string tables compare equal); an
 *    anonymous section by its content, recursively.
 * 3. Data: a changed initialiser of an existing object is refused; new
 *    objects are marked new for the build pass.
 */
#include "differ/differ_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HP_CMP_MAX_DEPTH 4

/* Length of @name without trailing ".<digits>" groups. */
static size_t base_len(const char *name)
{
	size_t len = strlen(name);

	for (;;) {
		size_t i = len;

		while (i > 0 && isdigit((unsigned char)name[i - 1]))
			i--;
		if (i == len || i == 0 || name[i - 1] != '.')
			return len;
		len = i - 1;
	}
}

static bool names_equal(const struct hp_osym *a, const struct hp_osym *b)
{
	size_t la, lb;

	if (!strcmp(a->name, b->name))
		return true;
	if (a->bind != STB_LOCAL || b->bind != STB_LOCAL)
		return false;
	la = base_len(a->name);
	lb = base_len(b->name);
	return la == lb && !strncmp(a->name, b->name, la);
}

/* The NUL-terminated string containing @off in a merged-string section. */
static const char *string_at(const struct hp_osec *s, int64_t off,
			     int64_t *delta)
{
	int64_t start = off;

	if (!s->data || off < 0 || (uint64_t)off >= s->sh.sh_size)
		return NULL;
	while (start > 0 && s->data[start - 1])
		start--;
	if (!memchr(s->data + start, 0, s->sh.sh_size - start))
		return NULL;
	*delta = off - start;
	return (const char *)s->data + start;
}

static bool sections_equal(const struct hp_osec *a, const struct hp_osec *b,
			   int depth);

static bool is_label(const struct hp_osym *s)
{
	return s->type == STT_SECTION ||
	       (s->type == STT_NOTYPE && s->bind == STB_LOCAL && s->sec);
}

/*
 * Whether old @a and new @b are the same function or object: correlated
 * symbols match only their own twin, and a function or object without one
 * is new or gone, so it matches nothing ("f.constprop.1" is not the old
 * "f.constprop.0" because the names look alike). Other symbols (undefined
 * ones) match by name.
 */
static bool same_symbol(const struct hp_osym *a, const struct hp_osym *b)
{
	if (a->twin || b->twin)
		return b->twin == a;
	if (hp_osym_is_func(a) || hp_osym_is_data(a) || hp_osym_is_func(b) ||
	    hp_osym_is_data(b))
		return false;
	return names_equal(a, b);
}

static bool targets_equal(const struct hp_orel *ra, const struct hp_orel *rb,
			  int depth)
{
	const struct hp_osym *a = ra->sym, *b = rb->sym;
	const struct hp_osec *sa = a->sec, *sb = b->sec;

	if (is_label(a) != is_label(b))
		return false;
	if (!is_label(a))
		return ra->addend == rb->addend && same_symbol(a, b);
	if (!sa || !sb)
		return false;
	if (hp_osec_is_strings(sa) && hp_osec_is_strings(sb)) {
		int64_t da = 0, db = 0;
		const char *stra = string_at(sa, hp_orel_target_off(ra), &da);
		const char *strb = string_at(sb, hp_orel_target_off(rb), &db);

		if (!stra || !strb || da != db)
			return false;
		/* Labels are exact; a section symbol's addend moves with it. */
		if (a->type != STT_SECTION && ra->addend != rb->addend)
			return false;
		return !strcmp(stra, strb);
	}
	/* Offsets from the body: a piece may have stubs before it. */
	if ((int64_t)(a->st.st_value - sa->lead) + ra->addend !=
	    (int64_t)(b->st.st_value - sb->lead) + rb->addend)
		return false;
	/*
	 * A section symbol or label in a function's or object's section: gcc
	 * calls local functions (clones included) this way, so this too must
	 * go by the twin, not by the name.
	 */
	if (sa->primary && sb->primary)
		return same_symbol(sa->primary, sb->primary) &&
		       sa->primary->st.st_value - sa->lead ==
			       sb->primary->st.st_value - sb->lead;
	if (sa->primary || sb->primary)
		return false;
	return sections_equal(sa, sb, depth + 1);
}

static bool relocs_equal(const struct hp_osec *a, const struct hp_osec *b,
			 int depth)
{
	if (a->nr_relocs != b->nr_relocs)
		return false;
	for (size_t i = 0; i < a->nr_relocs; i++) {
		const struct hp_orel *ra = &a->relocs[i], *rb = &b->relocs[i];

		if (ra->offset != rb->offset || ra->type != rb->type)
			return false;
		if (!targets_equal(ra, rb, depth))
			return false;
	}
	return true;
}

bool hp_relocs_equal(const struct hp_osec *a, const struct hp_osec *b)
{
	return relocs_equal(a, b, 0);
}

static bool code_relocs_equal(const struct hp_orel *a, const struct hp_orel *b,
			      void *ctx)
{
	return targets_equal(a, b, *(const int *)ctx);
}

static bool sections_equal(const struct hp_osec *a, const struct hp_osec *b,
			   int depth)
{
	if (depth > HP_CMP_MAX_DEPTH)
		return false; /* deep anonymous chains: treat as changed */
	/*
	 * Pieces of a shared .text: the assembler picked each branch's size
	 * by its distance, so a function that only moved may have a short
	 * jump where it had a long one: compared instruction by instruction.
	 */
	if (a->parent && b->parent && hp_osec_is_text(a) &&
	    hp_osec_is_text(b) &&
	    (a->sh.sh_size != b->sh.sh_size || a->lead != b->lead ||
	     memcmp(a->data, b->data, a->sh.sh_size) ||
	     !relocs_equal(a, b, depth)))
		return hp_code_equal(a, b, code_relocs_equal, &depth);
	/* An anonymous piece's alignment padding is not its content. */
	if (a->sh.sh_size - a->pad != b->sh.sh_size - b->pad ||
	    a->sh.sh_type != b->sh.sh_type ||
	    (a->sh.sh_flags & ~SHF_GROUP) != (b->sh.sh_flags & ~SHF_GROUP))
		return false;
	if (a->data && b->data &&
	    memcmp(a->data, b->data, a->sh.sh_size - a->pad))
		return false;
	return relocs_equal(a, b, depth);
}

/* A local whose name carries gcc's numbers: "f.constprop.1", "count.0". */
static bool is_numbered(const struct hp_osym *s)
{
	return s->bind == STB_LOCAL && base_len(s->name) != strlen(s->name) &&
	       !hp_osym_is_fragment(s);
}

/* Whether @x is of @s's family: same type, same name up to ".N" suffixes. */
static bool in_family(const struct hp_osym *x, const struct hp_osym *s)
{
	const size_t blen = base_len(s->name);

	return x->type == s->type && x->bind == STB_LOCAL && x->sec &&
	       !hp_osym_is_fragment(x) && base_len(x->name) == blen &&
	       !strncmp(x->name, s->name, blen);
}

static size_t family_size(const struct hp_obj *o, const struct hp_osym *s)
{
	size_t n = 0;

	for (size_t i = 0; i < o->nr_syms; i++)
		n += in_family(&o->syms[i], s);
	return n;
}

/* The symbol of @o named @prefix followed by @suffix. */
static struct hp_osym *find_sym_by_parts(struct hp_obj *o, const char *prefix,
					 const char *suffix)
{
	const size_t len = strlen(prefix);

	for (size_t i = 0; i < o->nr_syms; i++) {
		struct hp_osym *s = &o->syms[i];

		if (s->sec && s->type != STT_SECTION &&
		    !strncmp(s->name, prefix, len) &&
		    !strcmp(s->name + len, suffix))
			return s;
	}
	return NULL;
}

/* The function a section's code belongs to: a .cold part's parent. */
static const struct hp_osym *owner(const struct hp_obj *o,
				   const struct hp_osec *sec)
{
	const struct hp_osym *p = sec->primary;

	for (size_t i = 0; p && hp_osym_is_fragment(p) && i < o->nr_syms; i++)
		if (hp_osym_is_fragment_of(p, &o->syms[i]))
			return &o->syms[i];
	return p;
}

/* The function or object @r refers to, named or through its section. */
static const struct hp_osym *rel_target(const struct hp_orel *r)
{
	if (!is_label(r->sym))
		return r->sym;
	return r->sym->sec ? r->sym->sec->primary : NULL;
}

static bool sec_refers_to(const struct hp_osec *sec, const struct hp_osym *s)
{
	for (size_t i = 0; i < sec->nr_relocs; i++)
		if (rel_target(&sec->relocs[i]) == s)
			return true;
	return false;
}

/* Whether code or data of @who in @o (its .cold part too) refers to @s. */
static bool refers_to(const struct hp_obj *o, const struct hp_osym *who,
		      const struct hp_osym *s)
{
	for (size_t i = 0; i < o->nr_secs; i++)
		if (owner(o, &o->secs[i]) == who &&
		    sec_refers_to(&o->secs[i], s))
			return true;
	return false;
}

/*
 * Whether each function or object of @a's build that refers to @s has a
 * twin that refers to @t in @b's build, and there is at least one.
 */
static bool referrers_map(const struct hp_obj *a, const struct hp_osym *s,
			  const struct hp_obj *b, const struct hp_osym *t)
{
	size_t n = 0;

	for (size_t i = 0; i < a->nr_secs; i++) {
		const struct hp_osym *who = owner(a, &a->secs[i]);

		if (!who || who == s || !sec_refers_to(&a->secs[i], s))
			continue;
		if (!who->twin || !refers_to(b, who->twin, t))
			return false;
		n++;
	}
	return n > 0;
}

/* Old @o and new @n are referred to by the same, twin for twin. */
static bool same_referrers(const struct hp_obj *old, struct hp_osym *o,
			   const struct hp_obj *newo, struct hp_osym *n)
{
	return referrers_map(newo, n, old, o) && referrers_map(old, o, newo, n);
}

static void set_twins(struct hp_osym *o, struct hp_osym *n)
{
	o->twin = n;
	n->twin = o;
}

/*
 * Pair @n's .cold parts with @o's of the same suffix; with @undo, unpair
 * them instead. Return: whether each part has its counterpart.
 */
static bool pair_fragments(struct hp_obj *old, struct hp_osym *o,
			   struct hp_obj *newo, struct hp_osym *n, bool undo)
{
	size_t nr_old = 0, nr_new = 0;
	bool all = true;

	for (size_t i = 0; i < old->nr_syms; i++)
		nr_old += hp_osym_is_fragment_of(&old->syms[i], o);
	for (size_t i = 0; i < newo->nr_syms; i++) {
		struct hp_osym *nf = &newo->syms[i];
		struct hp_osym *of = NULL;

		if (!hp_osym_is_fragment_of(nf, n))
			continue;
		nr_new++;
		of = find_sym_by_parts(old, o->name,
				       nf->name + strlen(n->name));
		if (undo && of && of->twin == nf)
			of->twin = nf->twin = NULL;
		else if (!undo && of && hp_osym_is_fragment_of(of, o) &&
			 !of->twin && !nf->twin)
			set_twins(of, nf);
		else
			all = false;
	}
	return all && nr_old == nr_new;
}

/*
 * Whether old @o and new @n have the same code, .cold parts included,
 * supposing they are twins (so that a function referring to itself, or a
 * jump table to its own code, compares equal).
 */
static bool same_code(struct hp_obj *old, struct hp_osym *o,
		      struct hp_obj *newo, struct hp_osym *n)
{
	bool eq;

	set_twins(o, n);
	eq = pair_fragments(old, o, newo, n, false) &&
	     sections_equal(o->sec, n->sec, 0);
	for (size_t i = 0; eq && i < newo->nr_syms; i++)
		if (hp_osym_is_fragment_of(&newo->syms[i], n))
			eq = sections_equal(newo->syms[i].twin->sec,
					    newo->syms[i].sec, 0);
	pair_fragments(old, o, newo, n, true);
	o->twin = n->twin = NULL;
	return eq;
}

enum twin_rule {
	TWIN_SAME_NAME_AND_CODE,
	TWIN_SAME_CODE,
	TWIN_SAME_REFERRERS,
};

/*
 * Read-only data alone in its section ("__PRETTY_FUNCTION__.3", which a
 * new assert() renumbers): it holds no state, so any old copy with the
 * same bytes and references serves the new code.
 */
static bool is_constant(const struct hp_osym *s)
{
	return hp_osym_is_data(s) && s->type == STT_OBJECT &&
	       !(s->sec->sh.sh_flags & SHF_WRITE) &&
	       s->sec->sh.sh_type == SHT_PROGBITS && s->st.st_value == 0 &&
	       s->st.st_size == s->sec->sh.sh_size;
}

static bool rule_holds(enum twin_rule rule, struct hp_obj *old,
		       struct hp_osym *o, struct hp_obj *newo,
		       struct hp_osym *n)
{
	const bool func = hp_osym_is_func(n);

	switch (rule) {
	case TWIN_SAME_NAME_AND_CODE:
		return func && !strcmp(o->name, n->name) &&
		       same_code(old, o, newo, n);
	case TWIN_SAME_CODE:
		return (func || (is_constant(n) && is_constant(o))) &&
		       same_code(old, o, newo, n);
	case TWIN_SAME_REFERRERS:
		return same_referrers(old, o, newo, n);
	}
	return false;
}

/* The one unpaired old member of @n's family that @rule pairs it with. */
static struct hp_osym *twin_by_rule(enum twin_rule rule, struct hp_obj *old,
				    struct hp_obj *newo, struct hp_osym *n)
{
	struct hp_osym *cand = NULL;

	for (size_t i = 0; i < old->nr_syms; i++) {
		struct hp_osym *o = &old->syms[i];

		if (o->twin || !in_family(o, n) ||
		    !rule_holds(rule, old, o, newo, n))
			continue;
		if (cand)
			return NULL;
		cand = o;
	}
	/* ... and that no other new member would pair with. */
	for (size_t i = 0; cand && i < newo->nr_syms; i++) {
		struct hp_osym *m = &newo->syms[i];

		if (m != n && !m->twin && in_family(m, n) &&
		    rule_holds(rule, old, cand, newo, m))
			return NULL;
	}
	return cand;
}

/* Pair what @rule can. Return: whether it paired any. */
static bool pair_by_rule(enum twin_rule rule, struct hp_obj *old,
			 struct hp_obj *newo)
{
	bool any = false;

	for (size_t i = 0; i < newo->nr_syms; i++) {
		struct hp_osym *n = &newo->syms[i];
		struct hp_osym *o = NULL;

		if (n->twin || !is_numbered(n) ||
		    !(hp_osym_is_func(n) || hp_osym_is_data(n)))
			continue;
		o = twin_by_rule(rule, old, newo, n);
		if (o) {
			set_twins(o, n);
			any = true;
		}
	}
	return any;
}

/*
 * A pair found may decide another (code that calls a clone compares equal
 * once the clone has its twin): after any, start again from the first rule,
 * so that the same code is always preferred to the same referrers.
 */
static void pair_numbered(struct hp_obj *old, struct hp_obj *newo)
{
	int rule = TWIN_SAME_NAME_AND_CODE;

	while (rule <= TWIN_SAME_REFERRERS)
		rule = pair_by_rule(rule, old, newo) ? TWIN_SAME_NAME_AND_CODE
						     : rule + 1;
}

/*
 * A numbered local the rules left unpaired: the only member of its family
 * in both builds pairs with the other; an object pairs by name when both
 * builds have as many of its family. Return: the twin, or NULL with
 * *@ambiguous set for an object that may be any of several old ones.
 */
static struct hp_osym *twin_by_default(struct hp_obj *old, struct hp_obj *newo,
				       const struct hp_osym *n, bool *ambiguous)
{
	const size_t n_old = family_size(old, n), n_new = family_size(newo, n);
	struct hp_osym *exact = hp_obj_find_sym_by_name(old, n->name);
	struct hp_osym *left = NULL;
	size_t n_left = 0;

	*ambiguous = false;
	for (size_t i = 0; i < old->nr_syms; i++)
		if (in_family(&old->syms[i], n) && !old->syms[i].twin) {
			left = &old->syms[i];
			n_left++;
		}
	if (n_old == 1 && n_new == 1 && left)
		return left;
	if (hp_osym_is_func(n))
		return NULL; /* new: what calls it differs, so is patched too */
	if (exact && exact->type == n->type && !exact->twin && n_old == n_new)
		return exact;
	*ambiguous = n_left > 0;
	return NULL;
}

/*
 * Pass 1: every twin, so that comparisons can follow them. Numbered locals
 * are numbered per build, so a new clone shifts the numbers and moving code
 * swaps them; a twin found by name alone could redirect an old clone to
 * another clone's new code. See the passes at the top.
 */
static int find_twins(struct hp_obj *old, struct hp_obj *newo,
		      struct hp_diff_report *r)
{
	int rc = 0;

	for (size_t i = 0; i < newo->nr_syms; i++) {
		struct hp_osym *n = &newo->syms[i];
		struct hp_osym *o = NULL;

		if (!(hp_osym_is_func(n) || hp_osym_is_data(n)) ||
		    is_numbered(n) || hp_osym_is_fragment(n))
			continue;
		o = hp_obj_find_sym_by_name(old, n->name);
		if (o && o->type == n->type && !o->twin)
			set_twins(o, n);
	}
	pair_numbered(old, newo);
	for (size_t i = 0; i < newo->nr_syms && !rc; i++) {
		struct hp_osym *n = &newo->syms[i];
		struct hp_osym *o = NULL;
		bool ambiguous = false;

		if (n->twin || !is_numbered(n) ||
		    !(hp_osym_is_func(n) || hp_osym_is_data(n)))
			continue;
		o = twin_by_default(old, newo, n, &ambiguous);
		if (o)
			set_twins(o, n);
		else if (ambiguous)
			rc = hp_report_refuse(
				r, n->name, newo->relpath, -HP_E_AMBIGSYM,
				"build both trees with the same compiler and "
				"flags; give same-named static locals distinct "
				"names",
				"cannot tell which old '%.*s.*' is '%s': gcc "
				"numbered them differently in the two builds",
				(int)base_len(n->name), n->name, n->name);
	}
	/* .cold parts go with their parents. */
	for (size_t i = 0; i < newo->nr_syms; i++) {
		struct hp_osym *p = &newo->syms[i];

		if (p->twin && hp_osym_is_func(p) && !hp_osym_is_fragment(p))
			pair_fragments(old, p->twin, newo, p, false);
	}
	return rc;
}

static int compare_data(struct hp_osym *ns, struct hp_obj *newo,
			struct hp_diff_report *r)
{
	struct hp_osym *os = ns->twin;

	if (!os) {
		if (ns->type == STT_TLS)
			return hp_report_refuse(
				r, ns->name, newo->relpath, -HP_E_UNSUPPORTED,
				"use a new field in existing per-thread state, "
				"or ship a new release",
				"new thread-local variable '%s': running "
				"threads' TLS blocks cannot grow",
				ns->name);
		ns->is_new = true;
		return 0;
	}
	if (os->st.st_size != ns->st.st_size)
		return hp_report_refuse(
			r, ns->name, newo->relpath, -HP_E_CHANGED_DATA,
			"keep the variable's size, or ship the fix as a new "
			"release",
			"size of '%s' changed from %llu to %llu bytes",
			ns->name, (unsigned long long)os->st.st_size,
			(unsigned long long)ns->st.st_size);
	if (os->sec->sh.sh_type == SHT_NOBITS &&
	    ns->sec->sh.sh_type == SHT_NOBITS)
		return 0;
	if (os->sec->primary == os && ns->sec->primary == ns &&
	    sections_equal(os->sec, ns->sec, 0))
		return 0;
	if (os->sec->data && ns->sec->data &&
	    os->st.st_value + os->st.st_size <= os->sec->sh.sh_size &&
	    ns->st.st_value + ns->st.st_size <= ns->sec->sh.sh_size &&
	    !memcmp(os->sec->data + os->st.st_value,
		    ns->sec->data + ns->st.st_value, ns->st.st_size) &&
	    os->sec->nr_relocs == 0 && ns->sec->nr_relocs == 0)
		return 0;
	return hp_report_refuse(
		r, ns->name, newo->relpath, -HP_E_CHANGED_DATA,
		"the running process keeps the old value; change it at run "
		"time in code instead, or ship the fix as a new release",
		"initial value of '%s' changed", ns->name);
}

/*
 * A changed "foo.cold" changes foo: the parent's bytes may be identical
 * while the part it jumps to is not, and only foo can be redirected.
 */
static void mark_fragment_parents(struct hp_obj *o)
{
	for (size_t i = 0; i < o->nr_syms; i++) {
		const struct hp_osym *f = &o->syms[i];

		if (!hp_osym_is_fragment(f) || !(f->changed || f->is_new))
			continue;
		for (size_t j = 0; j < o->nr_syms; j++) {
			struct hp_osym *p = &o->syms[j];

			if (hp_osym_is_fragment_of(f, p) && !p->is_new) {
				p->changed = true;
				p->sec->changed = true;
			}
		}
	}
}

int hp_correlate_pair(struct hp_pair *p, struct hp_diff_report *r)
{
	struct hp_obj *newo = p->new_obj, *oldo = p->old_obj;
	int rc = 0;

	if (!newo)
		return 0; /* removed object: nothing of it can be called */
	rc = oldo ? find_twins(oldo, newo, r) : 0;
	/* Pass 2: compare. */
	for (size_t i = 0; i < newo->nr_syms && !rc; i++) {
		struct hp_osym *ns = &newo->syms[i];

		if (!hp_osym_is_func(ns) && !hp_osym_is_data(ns))
			continue;
		if (hp_osym_is_data(ns)) {
			rc = compare_data(ns, newo, r);
			continue;
		}
		if (!ns->twin) {
			ns->is_new = true;
			hp_dbg(HP_DBG_CORRELATE, "%s: '%s' is new",
			       newo->relpath, ns->name);
			continue;
		}
		ns->sec->twin = ns->twin->sec;
		ns->twin->sec->twin = ns->sec;
		if (!sections_equal(ns->twin->sec, ns->sec, 0)) {
			ns->changed = true;
			ns->sec->changed = true;
		}
		hp_dbg(HP_DBG_CORRELATE, "%s: '%s' <-> '%s'%s", newo->relpath,
		       ns->name, ns->twin->name, ns->changed ? " changed" : "");
	}
	if (!rc)
		mark_fragment_parents(newo);
	return rc;
}
