/*
 * Safety checks after correlation, before anything is built:
 * 1. Layout: every struct or union a changed function uses (its DWARF
 *    parameters and variables, through pointers and typedefs) must have the
 *    same size and the same members at the same offsets in both builds: the
 *    running process holds objects laid out the old way. A reorder that
 *    keeps the size is caught by the offsets. A gcc clone
 *    ("conn_account.part.0") uses what its origin's DWARF entries use.
 * 2. Signature: a changed function whose DWARF signature differs is refused
 *    when unchanged code still calls it (those callers pass the old
 *    arguments). Not a clone: its parameters are gcc's own.
 * 3. Removed: a function gone from the new build but still referenced by
 *    unchanged code or data of the old one stays reachable: refused.
 * Each refusal names the symbol, the object and what to do.
 */
#include "differ/differ_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_changed_func(const struct hp_osym *s)
{
	return hp_osym_is_func(s) && (s->changed || s->is_new);
}

/* A function gcc made from another: "weight.isra.0", "checksum.part.0". */
static bool is_clone(const struct hp_osym *s)
{
	return hp_osym_is_func(s) && s->name[hp_origin_len(s->name)];
}

/*
 * Whether DWARF entry @f is about function @s. A clone has no name of its
 * own in DWARF: its entry carries its origin's ("weight") and shares its
 * types, and nothing there tells it from the origin's other entries, so
 * each of those may be the clone's.
 */
static bool is_about(const struct hp_func_types *f, const struct hp_osym *s)
{
	return hp_dwarf_names(f->name, s->name);
}

/* The first DWARF entry about @s, and in *@nr how many there are. */
static const struct hp_func_types *
find_about(const struct hp_dwarf_types *t, const struct hp_osym *s, size_t *nr)
{
	const struct hp_func_types *first = NULL;

	*nr = 0;
	for (size_t i = 0; i < t->nr_funcs; i++)
		if (is_about(&t->funcs[i], s)) {
			first = first ? first : &t->funcs[i];
			(*nr)++;
		}
	return first;
}

/* Whether some DWARF entry about @s uses the struct @layout. */
static bool uses_layout(const struct hp_dwarf_types *t, const struct hp_osym *s,
			const char *layout)
{
	for (size_t i = 0; i < t->nr_funcs; i++)
		for (uint32_t j = 0;
		     is_about(&t->funcs[i], s) && j < t->funcs[i].nr_used; j++)
			if (!strcmp(t->funcs[i].used[j], layout))
				return true;
	return false;
}

/* Describe how @a and @b differ, or return false if they do not. */
static bool layout_diff(const struct hp_layout *a, const struct hp_layout *b,
			char *buf, size_t cap)
{
	for (uint32_t i = 0; i < a->nr_members || i < b->nr_members; i++) {
		const struct hp_layout_member *x =
			i < a->nr_members ? &a->members[i] : NULL;
		const struct hp_layout_member *y =
			i < b->nr_members ? &b->members[i] : NULL;

		if (!x || !y) {
			snprintf(buf, cap, "member '%s' %s",
				 x ? x->name : y->name,
				 x ? "removed" : "added");
			return true;
		}
		if (strcmp(x->name, y->name) || x->offset != y->offset ||
		    strcmp(x->type, y->type)) {
			snprintf(buf, cap,
				 "member %u: '%s %s' at offset %llu -> "
				 "'%s %s' at offset %llu",
				 i, x->type, x->name,
				 (unsigned long long)x->offset, y->type,
				 y->name, (unsigned long long)y->offset);
			return true;
		}
	}
	if (a->size != b->size) {
		snprintf(buf, cap, "size %llu -> %llu bytes",
			 (unsigned long long)a->size,
			 (unsigned long long)b->size);
		return true;
	}
	return false;
}

/* The changed functions of @o that use @layout, comma-separated. */
static void users_of(const struct hp_obj *o, const struct hp_dwarf_types *nt,
		     const char *layout, char *buf, size_t cap)
{
	size_t len = 0;

	buf[0] = 0;
	for (size_t i = 0; i < o->nr_syms && len < cap; i++) {
		const struct hp_osym *s = &o->syms[i];

		if (is_changed_func(s) && uses_layout(nt, s, layout)) {
			char *pretty = hp_demangle(s->name);

			len += (size_t)snprintf(buf + len, cap - len, "%s'%s'",
						len ? ", " : "",
						pretty ? pretty : s->name);
			free(pretty);
		}
	}
}

/* Refuse @l, used by changed code of @p, if its layout changed. */
static int check_layout(struct hp_pair *p, const char *l,
			const struct hp_dwarf_types *ot,
			const struct hp_dwarf_types *nt,
			struct hp_diff_report *r)
{
	const struct hp_layout *a = hp_dwarf_find_layout(ot, l);
	const struct hp_layout *b = hp_dwarf_find_layout(nt, l);
	char what[768], users[512];

	if (!a || !b)
		return 0;
	for (uint32_t k = 0; k < r->nr_refused; k++)
		if ((r->refused[k].code == -HP_E_LAYOUT ||
		     r->refused[k].code == -HP_E_VTABLE) &&
		    !strcmp(r->refused[k].symbol, l))
			return 0;
	users_of(p->new_obj, nt, l, users, sizeof(users));
	/* A vtable first: a new virtual method moves no data member. */
	if (strcmp(a->vtable ? a->vtable : "", b->vtable ? b->vtable : ""))
		return hp_report_refuse(
			r, l, p->new_obj->relpath, -HP_E_VTABLE,
			"the running process holds objects whose vtable "
			"pointers point at the old table; keep the virtual "
			"methods as they are (add a non-virtual one), or ship "
			"a new release",
			"virtual methods of '%s' changed (vtable slots '%s' -> "
			"'%s'), used by %s",
			l, a->vtable ? a->vtable : "",
			b->vtable ? b->vtable : "", users);
	if (!layout_diff(a, b, what, sizeof(what)))
		return 0;
	return hp_report_refuse(
		r, l, p->new_obj->relpath, -HP_E_LAYOUT,
		"the running process holds objects with the old layout; keep "
		"the layout (add members at the end of a new struct), or ship "
		"a new release",
		"layout of '%s' changed (%s; %llu bytes, %u members -> %llu "
		"bytes, %u members), used by %s",
		l, what, (unsigned long long)a->size, a->nr_members,
		(unsigned long long)b->size, b->nr_members, users);
}

/* Every struct a changed function uses, through each entry about it. */
static int check_layouts(struct hp_pair *p, const struct hp_dwarf_types *ot,
			 const struct hp_dwarf_types *nt,
			 struct hp_diff_report *r)
{
	int rc = 0;

	for (size_t i = 0; i < p->new_obj->nr_syms && !rc; i++) {
		const struct hp_osym *s = &p->new_obj->syms[i];

		for (size_t k = 0;
		     is_changed_func(s) && k < nt->nr_funcs && !rc; k++) {
			const struct hp_func_types *f = &nt->funcs[k];

			for (uint32_t j = 0;
			     is_about(f, s) && j < f->nr_used && !rc; j++)
				rc = check_layout(p, f->used[j], ot, nt, r);
		}
	}
	return rc;
}

/* An unchanged function of any new object that calls @name, or NULL. */
static const char *unchanged_caller(struct hp_pair *pairs, size_t nr,
				    const char *name)
{
	for (size_t i = 0; i < nr; i++) {
		const struct hp_obj *o = pairs[i].new_obj;

		for (size_t j = 0; o && j < o->nr_syms; j++) {
			const struct hp_osym *c = &o->syms[j];

			if (!hp_osym_is_func(c) || is_changed_func(c))
				continue;
			for (size_t k = 0; k < c->sec->nr_relocs; k++)
				if (!strcmp(c->sec->relocs[k].sym->name, name))
					return c->name;
		}
	}
	return NULL;
}

static int check_signatures(struct hp_pair *pairs, size_t nr, struct hp_pair *p,
			    const struct hp_dwarf_types *ot,
			    const struct hp_dwarf_types *nt,
			    struct hp_diff_report *r)
{
	int rc = 0;

	for (size_t i = 0; i < p->new_obj->nr_syms && !rc; i++) {
		const struct hp_osym *s = &p->new_obj->syms[i];
		const struct hp_func_types *a = NULL, *b = NULL;
		const char *caller = NULL;

		/*
		 * A clone's parameters are gcc's (dropped, passed by value),
		 * not its declaration's, and its callers are all in this
		 * object, compared through twins: one left unchanged already
		 * passes what the new clone takes.
		 */
		if (!hp_osym_is_func(s) || !s->changed || !s->twin ||
		    is_clone(s))
			continue;
		a = hp_dwarf_find_func(ot, s->twin->name);
		b = hp_dwarf_find_func(nt, s->name);
		if (!a || !b || !strcmp(a->sig, b->sig))
			continue;
		caller = unchanged_caller(pairs, nr, s->name);
		if (!caller)
			continue; /* every caller is in the patch too */
		rc = hp_report_refuse(
			r, s->name, p->new_obj->relpath, -HP_E_SIGNATURE,
			"keep the signature and add a new function, or change "
			"the callers too",
			"signature of '%s' changed from '%s' to '%s' but "
			"unchanged '%s' still calls it",
			s->name, a->sig, b->sig, caller);
	}
	return rc;
}

/* Sections of the old object that stay in use: unchanged code and data. */
static bool is_kept(const struct hp_osec *s)
{
	return s->twin && !s->changed && !s->twin->changed;
}

/* A global defined by some new object: moved, not removed. */
static bool defined_anywhere(struct hp_pair *pairs, size_t nr,
			     const struct hp_osym *s)
{
	if (s->bind == STB_LOCAL)
		return false;
	for (size_t i = 0; i < nr; i++) {
		struct hp_obj *o = pairs[i].new_obj;
		const struct hp_osym *d =
			o ? hp_obj_find_sym_by_name(o, s->name) : NULL;

		if (d && d->bind != STB_LOCAL)
			return true;
	}
	return false;
}

static int check_removed(struct hp_pair *pairs, size_t nr, struct hp_pair *p,
			 struct hp_diff_report *r)
{
	const struct hp_obj *o = p->old_obj;
	int rc = 0;

	for (size_t i = 0; i < o->nr_syms && !rc; i++) {
		const struct hp_osym *gone = &o->syms[i];

		if (!hp_osym_is_func(gone) || gone->twin ||
		    hp_osym_is_fragment(gone) ||
		    defined_anywhere(pairs, nr, gone))
			continue;
		for (size_t j = 0; j < o->nr_secs && !rc; j++) {
			const struct hp_osec *s = &o->secs[j];

			if (!is_kept(s))
				continue;
			for (size_t k = 0; k < s->nr_relocs; k++) {
				const struct hp_osym *t = s->relocs[k].sym;

				if (t != gone && !(t->type == STT_SECTION &&
						   t->sec == gone->sec))
					continue;
				rc = hp_report_refuse(
					r, gone->name, o->relpath,
					-HP_E_REMOVED,
					"change the code that refers to it, so "
					"the patch replaces it too",
					"'%s' was removed but unchanged '%s' "
					"still refers to it",
					gone->name,
					s->primary ? s->primary->name
						   : s->name);
				break;
			}
		}
	}
	return rc;
}

/*
 * Whether @a and @b are the same but for 32-bit values that moved by
 * exactly @delta, the function's own move in the source, and that lie
 * where line numbers of the function would (from @line on): a __LINE__
 * passed to an assert or log call after lines were added above. Sets
 * *@moved if any did. Relocations must be identical, so no string, callee
 * or variable changed.
 */
static bool same_but_lines(const struct hp_osec *a, const struct hp_osec *b,
			   int delta, unsigned int line, bool *moved)
{
	const size_t n = a->sh.sh_size;

	if (!delta || n != b->sh.sh_size || !a->data || !b->data ||
	    !hp_relocs_equal(a, b))
		return false;
	for (size_t i = 0; i < n;) {
		bool explained = false;

		if (a->data[i] == b->data[i]) {
			i++;
			continue;
		}
		for (size_t st = i >= 3 ? i - 3 : 0; st <= i && st + 4 <= n;
		     st++) {
			const int64_t x = hp_get_le32(a->data + st);
			const int64_t y = hp_get_le32(b->data + st);

			if (y - x == delta && x >= line && x < line + 100000) {
				explained = true;
				i = st + 4;
				break;
			}
		}
		if (!explained)
			return false;
		*moved = true;
	}
	return true;
}

/*
 * A function and the parts gcc split off it ("foo.cold") are one function
 * of the source: its change is in line numbers only if no part changed
 * otherwise and one moved. The parent may be the same as before while its
 * .cold part holds the moved __LINE__, or hold the moved __LINE__ while
 * its .cold part holds the real change.
 */
static bool only_lines_changed(const struct hp_obj *o, const struct hp_osym *s,
			       int delta, unsigned int line)
{
	bool moved = false;

	if (!same_but_lines(s->twin->sec, s->sec, delta, line, &moved))
		return false;
	for (size_t i = 0; i < o->nr_syms; i++) {
		const struct hp_osym *f = &o->syms[i];

		if (!hp_osym_is_fragment_of(f, s) || !(f->changed || f->is_new))
			continue;
		if (!f->twin ||
		    !same_but_lines(f->twin->sec, f->sec, delta, line, &moved))
			return false;
	}
	return moved;
}

/* @s and its split-off parts stay out of the patch. */
static void mark_unchanged(struct hp_obj *o, struct hp_osym *s)
{
	s->changed = false;
	s->sec->changed = false;
	for (size_t i = 0; i < o->nr_syms; i++) {
		struct hp_osym *f = &o->syms[i];

		if (hp_osym_is_fragment_of(f, s)) {
			f->changed = false;
			f->sec->changed = false;
		}
	}
}

static int check_lines(struct hp_pair *p, const struct hp_dwarf_types *ot,
		       const struct hp_dwarf_types *nt,
		       struct hp_diff_report *r, bool include)
{
	for (size_t i = 0; i < p->new_obj->nr_syms; i++) {
		struct hp_osym *s = &p->new_obj->syms[i];
		const struct hp_func_types *a = NULL, *b = NULL;
		size_t nr = 0;
		unsigned int line;
		int delta;

		/* Parts go with their parent, which their change marked. */
		if (!hp_osym_is_func(s) || hp_osym_is_fragment(s) ||
		    !s->changed || !s->twin)
			continue;
		a = find_about(ot, s->twin, &nr);
		b = find_about(nt, s, &nr);
		if (!a || !b)
			continue;
		delta = (int)b->decl_line - (int)a->decl_line;
		/* Callees inlined from above moved with it, or not at all. */
		line = (int)b->first_line - (int)a->first_line == delta
			       ? a->first_line
			       : a->decl_line;
		if (!only_lines_changed(p->new_obj, s, delta, line))
			continue;
		s->line_delta = delta;
		if (include) {
			if (asprintf(&s->reason,
				     "line numbers only (moved %+d lines)",
				     delta) < 0)
				return -ENOMEM;
			continue;
		}
		mark_unchanged(p->new_obj, s);
		if (hp_report_add_line_only(r, s->name, p->new_obj->relpath,
					    delta))
			return -ENOMEM;
	}
	return 0;
}

/*
 * Why a changed or new function is in, when there is more to say than
 * "body changed" or "new": the function gcc cloned or split it from, the
 * name gcc gave it in the old build if it renumbered it, and the callees
 * inlined into it (from DWARF; not for a clone whose origin has other
 * entries there, since any of them may be the clone's).
 */
static int note_reasons(struct hp_pair *p, const struct hp_dwarf_types *nt)
{
	for (size_t i = 0; i < p->new_obj->nr_syms; i++) {
		struct hp_osym *s = &p->new_obj->syms[i];
		const struct hp_func_types *f = NULL;
		const char *was = NULL, *inl = NULL, *origin = NULL;
		size_t nr = 0;

		if (!is_changed_func(s) || s->reason ||
		    hp_osym_is_fragment(s) || (s->is_new && !is_clone(s)))
			continue;
		f = find_about(nt, s, &nr);
		inl = f && f->inlined[0] && (nr == 1 || !is_clone(s))
			      ? f->inlined
			      : NULL;
		was = s->twin && strcmp(s->twin->name, s->name) ? s->twin->name
								: NULL;
		if (is_clone(s))
			origin = strstr(s->name, ".part.") ? "; split from "
							   : "; clone of ";
		if ((origin || was || inl) &&
		    asprintf(&s->reason, "%s%s%.*s%s%s%s%s",
			     s->is_new ? "new" : "body changed",
			     origin ? origin : "",
			     origin ? (int)hp_origin_len(s->name) : 0, s->name,
			     was ? "; renumbered from " : "", was ? was : "",
			     inl ? "; inlines " : "", inl ? inl : "") < 0) {
			s->reason = NULL;
			return -ENOMEM;
		}
	}
	return 0;
}

static bool has_changes(const struct hp_obj *o)
{
	for (size_t i = 0; i < o->nr_syms; i++)
		if (is_changed_func(&o->syms[i]))
			return true;
	return false;
}

int hp_check_safety(struct hp_pair *pairs, size_t nr_pairs,
		    struct hp_diff_report *r, bool include_line_changes)
{
	int rc = 0;

	for (size_t i = 0; i < nr_pairs && !rc; i++) {
		struct hp_pair *p = &pairs[i];
		struct hp_dwarf_types ot, nt;

		if (!p->old_obj || !p->new_obj)
			continue;
		rc = check_removed(pairs, nr_pairs, p, r);
		if (rc || !has_changes(p->new_obj))
			continue;
		rc = hp_dwarf_types_read(p->old_obj->path, &ot);
		if (rc)
			break;
		rc = hp_dwarf_types_read(p->new_obj->path, &nt);
		if (!rc && (!ot.has_dwarf || !nt.has_dwarf))
			hp_warn("'%s': no DWARF: data layouts and signatures "
				"not checked; build with -g",
				p->new_obj->relpath);
		if (!rc)
			rc = check_lines(p, &ot, &nt, r, include_line_changes);
		if (!rc)
			rc = note_reasons(p, &nt);
		if (!rc)
			rc = check_layouts(p, &ot, &nt, r);
		if (!rc)
			rc = check_signatures(pairs, nr_pairs, p, &ot, &nt, r);
		hp_dwarf_types_release(&ot);
		hp_dwarf_types_release(&nt);
	}
	return rc;
}
