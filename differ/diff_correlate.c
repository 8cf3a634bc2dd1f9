/*
 * Correlation and comparison of one old/new object pair.
 *
 * Passes:
 * 1. Twin symbols: functions and data objects by exact name, then locals
 *    whose names differ only in gcc's numeric suffixes ("count.1" in the
 *    new build and "count.0" in the old) when that pairing is unique.
 * 2. Compare each twin function: section size, bytes, and relocations. A
 *    relocation matches when offset, type and normalised target match: a
 *    named symbol by its normalised name and addend; a merged string by its
 *    text (so renumbered .LC labels and shifted string tables compare
 *    equal); an anonymous section by its content, recursively.
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

static bool targets_equal(const struct hp_orel *ra, const struct hp_orel *rb,
			  int depth)
{
	const struct hp_osym *a = ra->sym, *b = rb->sym;
	const struct hp_osec *sa = a->sec, *sb = b->sec;

	if (is_label(a) != is_label(b))
		return false;
	if (!is_label(a))
		/* Correlated symbols match only their own twin. */
		return ra->addend == rb->addend &&
		       (a->twin || b->twin ? b->twin == a : names_equal(a, b));
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
	if (a->st.st_value + ra->addend != b->st.st_value + rb->addend)
		return false;
	if (sa->primary && sb->primary)
		return names_equal(sa->primary, sb->primary) &&
		       sa->primary->st.st_value == sb->primary->st.st_value;
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

static bool sections_equal(const struct hp_osec *a, const struct hp_osec *b,
			   int depth)
{
	if (depth > HP_CMP_MAX_DEPTH)
		return false; /* deep anonymous chains: treat as changed */
	if (a->sh.sh_size != b->sh.sh_size || a->sh.sh_type != b->sh.sh_type ||
	    (a->sh.sh_flags & ~SHF_GROUP) != (b->sh.sh_flags & ~SHF_GROUP))
		return false;
	if (a->data && b->data && memcmp(a->data, b->data, a->sh.sh_size))
		return false;
	return relocs_equal(a, b, depth);
}

/* Members of @s's family in @o: same type, same name up to ".N" suffixes. */
static size_t family_size(const struct hp_obj *o, const struct hp_osym *s)
{
	const size_t blen = base_len(s->name);
	size_t n = 0;

	for (size_t i = 0; i < o->nr_syms; i++) {
		const struct hp_osym *x = &o->syms[i];

		n += x->type == s->type && x->bind == STB_LOCAL && x->sec &&
		     base_len(x->name) == blen &&
		     !strncmp(x->name, s->name, blen);
	}
	return n;
}

/*
 * The old symbol @s of the new build corresponds to. Plain names pair by
 * name. Numbered locals (gcc clones "f.constprop.1", static locals
 * "count.0") are numbered per build, so a new clone shifts the numbers:
 * pair by name only when both builds have as many of the family; else a
 * function by identical code; else the only one; else give up
 * (*@ambiguous), rather than risk redirecting the wrong clone.
 */
static struct hp_osym *find_twin(struct hp_obj *old, struct hp_obj *newo,
				 const struct hp_osym *s, bool *ambiguous)
{
	struct hp_osym *exact = hp_obj_find_sym_by_name(old, s->name);
	struct hp_osym *cand = NULL;
	const size_t blen = base_len(s->name);
	size_t n_old, n_new;

	*ambiguous = false;
	if (exact && (exact->type != s->type || exact->twin))
		exact = NULL;
	if (s->bind != STB_LOCAL || blen == strlen(s->name))
		return exact;
	n_old = family_size(old, s);
	n_new = family_size(newo, s);
	if (exact && n_old == n_new)
		return exact;
	for (size_t i = 0; hp_osym_is_func(s) && i < old->nr_syms; i++) {
		struct hp_osym *o = &old->syms[i];

		if (o->type != s->type || o->bind != STB_LOCAL || !o->sec ||
		    o->twin || base_len(o->name) != blen ||
		    strncmp(o->name, s->name, blen) ||
		    !sections_equal(o->sec, s->sec, 0))
			continue;
		if (cand) {
			*ambiguous = true;
			return NULL;
		}
		cand = o;
	}
	if (cand)
		return cand;
	if (n_old == 1 && n_new == 1) {
		for (size_t i = 0; i < old->nr_syms; i++) {
			struct hp_osym *o = &old->syms[i];

			if (o->type == s->type && o->bind == STB_LOCAL &&
			    o->sec && !o->twin && base_len(o->name) == blen &&
			    !strncmp(o->name, s->name, blen))
				return o;
		}
	}
	*ambiguous = n_old > 0;
	return NULL;
}

static int refuse_no_sections(struct hp_obj *o, struct hp_diff_report *r)
{
	return hp_report_refuse(r, "", o->relpath, -HP_E_NOSECTIONS,
				"rebuild both trees with -ffunction-sections "
				"-fdata-sections",
				"object has functions in a shared '.text' "
				"section, so a changed function cannot be "
				"isolated");
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

		if (!hp_osym_is_func(f) || !hp_osym_is_fragment(f) ||
		    !(f->changed || f->is_new))
			continue;
		for (size_t j = 0; j < o->nr_syms; j++) {
			struct hp_osym *p = &o->syms[j];

			if (hp_osym_is_func(p) && !hp_osym_is_fragment(p) &&
			    hp_osym_is_fragment_of(f, p) && !p->is_new) {
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
	if (!newo->has_func_sections) {
		for (size_t i = 0; i < newo->nr_syms; i++)
			if (hp_osym_is_func(&newo->syms[i]))
				return refuse_no_sections(newo, r);
		return 0;
	}
	/* Pass 1: every twin first, so comparisons can follow them. */
	for (size_t i = 0; oldo && i < newo->nr_syms && !rc; i++) {
		struct hp_osym *ns = &newo->syms[i];
		bool ambiguous = false;

		if (!hp_osym_is_func(ns) && !hp_osym_is_data(ns))
			continue;
		ns->twin = find_twin(oldo, newo, ns, &ambiguous);
		if (ns->twin)
			ns->twin->twin = ns;
		else if (ambiguous)
			rc = hp_report_refuse(
				r, ns->name, newo->relpath, -HP_E_AMBIGSYM,
				"build both trees with the same compiler and "
				"flags; give same-named static locals distinct "
				"names",
				"cannot tell which old '%.*s.*' is '%s': gcc "
				"numbered them differently in the two builds",
				(int)base_len(ns->name), ns->name, ns->name);
	}
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
