/*
 * DWARF types for hpdiff's safety checks: the layout (size, member offsets
 * and types, C++ base classes, and the virtual methods in vtable order) of
 * every struct, class and union an object defines, and for every
 * function its signature and the structs it uses through its parameters
 * and variables (through pointers, typedefs, qualifiers, arrays and
 * inlined callees). Read with libdwarf; everything is copied out before
 * dwarf_finish().
 */
#include "differ/differ_int.h"
#include "common/hp_log.h"

#include <dwarf.h>
#include <errno.h>
#include <fcntl.h>
#include <libdwarf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HP_TYPE_DEPTH 12

struct walk {
	Dwarf_Debug dbg;
	struct hp_dwarf_types *t;
	unsigned int file; /* DW_AT_decl_file of the function being walked */
	int rc;
};

static Dwarf_Die type_of(Dwarf_Debug dbg, Dwarf_Die die)
{
	Dwarf_Off off = 0;
	Dwarf_Die out = NULL;
	Dwarf_Error err = NULL;

	/* libdwarf 2021: a global .debug_info offset */
	if (dwarf_dietype_offset(die, &off, &err) != DW_DLV_OK)
		return NULL;
	if (dwarf_offdie_b(dbg, off, 1, &out, &err) != DW_DLV_OK)
		return NULL;
	return out;
}

static Dwarf_Die ref_attr(Dwarf_Debug dbg, Dwarf_Die die, Dwarf_Half at)
{
	Dwarf_Attribute attr = NULL;
	Dwarf_Error err = NULL;
	Dwarf_Off off = 0;
	Dwarf_Die out = NULL;

	if (dwarf_attr(die, at, &attr, &err) != DW_DLV_OK)
		return NULL;
	if (dwarf_global_formref(attr, &off, &err) == DW_DLV_OK)
		dwarf_offdie_b(dbg, off, 1, &out, &err);
	dwarf_dealloc_attribute(attr);
	return out;
}

static const char *die_name(Dwarf_Die die)
{
	char *name = NULL;
	Dwarf_Error err = NULL;

	return dwarf_diename(die, &name, &err) == DW_DLV_OK ? name : NULL;
}

static Dwarf_Half die_tag(Dwarf_Die die)
{
	Dwarf_Half tag = 0;
	Dwarf_Error err = NULL;

	dwarf_tag(die, &tag, &err);
	return tag;
}

/* A readable type name: "struct conn *", "const char *", "size_t". */
static void type_name(Dwarf_Debug dbg, Dwarf_Die die, char *buf, size_t cap,
		      int depth)
{
	const char *name = NULL;
	Dwarf_Die sub = NULL;
	char inner[160];

	if (!die || depth > HP_TYPE_DEPTH) {
		snprintf(buf, cap, "void");
		return;
	}
	name = die_name(die);
	switch (die_tag(die)) {
	case DW_TAG_structure_type:
		snprintf(buf, cap, "struct %s", name ? name : "<anon>");
		return;
	case DW_TAG_class_type:
		snprintf(buf, cap, "class %s", name ? name : "<anon>");
		return;
	case DW_TAG_union_type:
		snprintf(buf, cap, "union %s", name ? name : "<anon>");
		return;
	case DW_TAG_enumeration_type:
		snprintf(buf, cap, "enum %s", name ? name : "<anon>");
		return;
	case DW_TAG_pointer_type:
	case DW_TAG_reference_type:
	case DW_TAG_rvalue_reference_type:
	case DW_TAG_const_type:
	case DW_TAG_volatile_type:
	case DW_TAG_array_type:
	case DW_TAG_restrict_type:
		sub = type_of(dbg, die);
		type_name(dbg, sub, inner, sizeof(inner), depth + 1);
		if (sub)
			dwarf_dealloc_die(sub);
		snprintf(buf, cap, "%s%s%s",
			 die_tag(die) == DW_TAG_const_type	? "const "
			 : die_tag(die) == DW_TAG_volatile_type ? "volatile "
								: "",
			 inner,
			 die_tag(die) == DW_TAG_pointer_type		? " *"
			 : die_tag(die) == DW_TAG_reference_type	? " &"
			 : die_tag(die) == DW_TAG_rvalue_reference_type ? " &&"
			 : die_tag(die) == DW_TAG_array_type		? "[]"
									: "");
		return;
	case DW_TAG_subroutine_type:
		snprintf(buf, cap, "function");
		return;
	default:
		snprintf(buf, cap, "%s", name ? name : "?");
	}
}

static bool is_record(Dwarf_Half tag)
{
	return tag == DW_TAG_structure_type || tag == DW_TAG_union_type ||
	       tag == DW_TAG_class_type;
}

/* The struct, class or union a type leads to, and the name to know it by. */
static Dwarf_Die struct_of(Dwarf_Debug dbg, Dwarf_Die die, char *name,
			   size_t cap, int depth)
{
	Dwarf_Die sub = NULL, res = NULL;
	const Dwarf_Half tag = die ? die_tag(die) : 0;

	if (!die || depth > HP_TYPE_DEPTH)
		return NULL;
	if (is_record(tag)) {
		if (die_name(die) || !*name)
			type_name(dbg, die, name, cap, 0);
		return die;
	}
	if (tag != DW_TAG_typedef && tag != DW_TAG_pointer_type &&
	    tag != DW_TAG_reference_type &&
	    tag != DW_TAG_rvalue_reference_type && tag != DW_TAG_const_type &&
	    tag != DW_TAG_volatile_type && tag != DW_TAG_array_type &&
	    tag != DW_TAG_restrict_type)
		return NULL;
	if (tag == DW_TAG_typedef && die_name(die))
		snprintf(name, cap, "%s", die_name(die));
	sub = type_of(dbg, die);
	res = struct_of(dbg, sub, name, cap, depth + 1);
	if (sub && sub != res)
		dwarf_dealloc_die(sub);
	return res;
}

static struct hp_layout *find_layout(struct hp_dwarf_types *t, const char *name)
{
	for (size_t i = 0; i < t->nr_layouts; i++)
		if (!strcmp(t->layouts[i].name, name))
			return &t->layouts[i];
	return NULL;
}

static void signature(struct walk *w, Dwarf_Die die, char *buf, size_t cap);

/*
 * The vtable slot of a virtual method's declaration: its
 * DW_AT_vtable_elem_location, "DW_OP_constu N". Return: N, or -1.
 */
static long vtable_slot(Dwarf_Die die)
{
	Dwarf_Attribute attr = NULL;
	Dwarf_Error err = NULL;
	Dwarf_Unsigned len = 0, n = 0;
	Dwarf_Ptr expr = NULL;
	long slot = -1;

	if (dwarf_attr(die, DW_AT_vtable_elem_location, &attr, &err) !=
	    DW_DLV_OK)
		return -1;
	if (dwarf_formexprloc(attr, &len, &expr, &err) == DW_DLV_OK &&
	    len >= 2 && ((const uint8_t *)expr)[0] == DW_OP_constu) {
		const uint8_t *p = (const uint8_t *)expr + 1;
		unsigned int shift = 0;

		for (; p < (const uint8_t *)expr + len && shift < 63;
		     p++, shift += 7) {
			n |= (Dwarf_Unsigned)(*p & 0x7f) << shift;
			if (!(*p & 0x80)) {
				slot = (long)n;
				break;
			}
		}
	}
	dwarf_dealloc_attribute(attr);
	return slot;
}

/*
 * Add the virtual method @die declares to @l's vtable description,
 * "slot name(params)" in declaration order: a method added, removed or
 * moved changes it (objects of the running program carry the old table).
 */
static int add_virtual(struct walk *w, struct hp_layout *l, Dwarf_Die die)
{
	const long slot = vtable_slot(die);
	const char *name = die_name(die);
	char sig[256], *v = NULL;

	if (slot < 0)
		return 0;
	signature(w, die, sig, sizeof(sig));
	if (asprintf(&v, "%s%s%ld %s %s", l->vtable ? l->vtable : "",
		     l->vtable ? "; " : "", slot, name ? name : "?", sig) < 0)
		return -ENOMEM;
	free(l->vtable);
	l->vtable = v;
	return 0;
}

static int add_layout(struct walk *w, Dwarf_Die sdie, const char *name)
{
	struct hp_dwarf_types *t = w->t;
	struct hp_layout *l = NULL;
	Dwarf_Unsigned size = 0;
	Dwarf_Error err = NULL;
	Dwarf_Die child = NULL, sib = NULL;
	int rc = 0;

	if (find_layout(t, name) ||
	    dwarf_bytesize(sdie, &size, &err) != DW_DLV_OK)
		return 0; /* known already, or only declared here */
	l = realloc(t->layouts, (t->nr_layouts + 1) * sizeof(*l));
	if (!l)
		return -ENOMEM;
	t->layouts = l;
	l = &t->layouts[t->nr_layouts++];
	*l = (struct hp_layout){ .size = size };
	snprintf(l->name, sizeof(l->name), "%s", name);
	if (dwarf_child(sdie, &child, &err) != DW_DLV_OK)
		return 0;
	for (;;) {
		const Dwarf_Half tag = die_tag(child);

		if (tag == DW_TAG_subprogram && (rc = add_virtual(w, l, child)))
			break;
		if (tag == DW_TAG_member || tag == DW_TAG_inheritance) {
			struct hp_layout_member *m = realloc(
				l->members, (l->nr_members + 1) * sizeof(*m));
			Dwarf_Attribute attr = NULL;
			Dwarf_Unsigned off = 0;
			Dwarf_Die ty = type_of(w->dbg, child);

			if (!m)
				return -ENOMEM;
			l->members = m;
			m = &l->members[l->nr_members++];
			*m = (struct hp_layout_member){ 0 };
			snprintf(m->name, sizeof(m->name), "%s",
				 tag == DW_TAG_inheritance ? "(base)"
				 : die_name(child)	   ? die_name(child)
							   : "<anon>");
			if (dwarf_attr(child, DW_AT_data_member_location, &attr,
				       &err) == DW_DLV_OK) {
				dwarf_formudata(attr, &off, &err);
				dwarf_dealloc_attribute(attr);
			}
			m->offset = off;
			type_name(w->dbg, ty, m->type, sizeof(m->type), 0);
			if (ty)
				dwarf_dealloc_die(ty);
		}
		if (dwarf_siblingof_b(w->dbg, child, 1, &sib, &err) !=
		    DW_DLV_OK)
			break;
		dwarf_dealloc_die(child);
		child = sib;
	}
	dwarf_dealloc_die(child);
	return rc;
}

/* Note the struct a typed DIE (variable, parameter, member) leads to. */
static int note_use(struct walk *w, struct hp_func_types *f, Dwarf_Die die)
{
	char name[96] = "";
	Dwarf_Die ty = type_of(w->dbg, die), s = NULL;
	Dwarf_Die origin = NULL;
	int rc = 0;

	if (!ty) { /* inlined or concrete instances carry the type on the origin */
		origin = ref_attr(w->dbg, die, DW_AT_abstract_origin);
		ty = origin ? type_of(w->dbg, origin) : NULL;
	}
	s = struct_of(w->dbg, ty, name, sizeof(name), 0);
	if (s && *name) {
		bool seen = false;

		for (uint32_t i = 0; i < f->nr_used; i++)
			seen |= !strcmp(f->used[i], name);
		if (!seen) {
			char **u =
				realloc(f->used, (f->nr_used + 1) * sizeof(*u));

			if (!u)
				return -ENOMEM;
			f->used = u;
			f->used[f->nr_used] = strdup(name);
			if (!f->used[f->nr_used])
				return -ENOMEM;
			f->nr_used++;
		}
		rc = add_layout(w, s, name);
	}
	if (s && s != ty)
		dwarf_dealloc_die(s);
	if (ty)
		dwarf_dealloc_die(ty);
	if (origin)
		dwarf_dealloc_die(origin);
	return rc;
}

/*
 * DW_AT_decl_line or DW_AT_decl_file, 0 when absent. gcc often writes
 * them as DW_FORM_implicit_const, which libdwarf 20210528 reads only as
 * signed data.
 */
static unsigned int decl_attr(Dwarf_Die die, Dwarf_Half at)
{
	Dwarf_Attribute attr = NULL;
	Dwarf_Error err = NULL;
	Dwarf_Unsigned v = 0;
	Dwarf_Signed sv = 0;

	if (dwarf_attr(die, at, &attr, &err) == DW_DLV_OK) {
		if (dwarf_formudata(attr, &v, &err) != DW_DLV_OK &&
		    dwarf_formsdata(attr, &sv, &err) == DW_DLV_OK)
			v = (Dwarf_Unsigned)sv;
		dwarf_dealloc_attribute(attr);
	}
	return (unsigned int)v;
}

/*
 * Record the name of a callee inlined here (once), and where in the
 * function's file it starts if that is above the function: the code holds
 * the callee's line numbers too.
 */
static void note_inlined(struct walk *w, struct hp_func_types *f, Dwarf_Die die)
{
	Dwarf_Die origin = ref_attr(w->dbg, die, DW_AT_abstract_origin);
	const char *name = origin ? die_name(origin) : NULL;
	size_t len = strlen(f->inlined);
	const unsigned int line =
		origin ? decl_attr(origin, DW_AT_decl_line) : 0;

	if (line && line < f->first_line && w->file &&
	    decl_attr(origin, DW_AT_decl_file) == w->file)
		f->first_line = line;

	if (name && !strstr(f->inlined, name) &&
	    len + strlen(name) + 3 < sizeof(f->inlined))
		snprintf(f->inlined + len, sizeof(f->inlined) - len, "%s%s",
			 len ? ", " : "", name);
	if (origin)
		dwarf_dealloc_die(origin);
}

static int walk_body(struct walk *w, struct hp_func_types *f, Dwarf_Die die,
		     int depth)
{
	Dwarf_Die child = NULL, sib = NULL;
	Dwarf_Error err = NULL;
	int rc = 0;

	if (depth > HP_TYPE_DEPTH ||
	    dwarf_child(die, &child, &err) != DW_DLV_OK)
		return 0;
	for (;;) {
		switch (die_tag(child)) {
		case DW_TAG_formal_parameter:
		case DW_TAG_variable:
			rc = note_use(w, f, child);
			break;
		case DW_TAG_inlined_subroutine:
			note_inlined(w, f, child);
			rc = walk_body(w, f, child, depth + 1);
			break;
		case DW_TAG_lexical_block:
			rc = walk_body(w, f, child, depth + 1);
			break;
		}
		if (rc || dwarf_siblingof_b(w->dbg, child, 1, &sib, &err) !=
				  DW_DLV_OK)
			break;
		dwarf_dealloc_die(child);
		child = sib;
	}
	dwarf_dealloc_die(child);
	return rc;
}

/* "int (char *, size_t, int)" from the subprogram or its declaration. */
static void signature(struct walk *w, Dwarf_Die die, char *buf, size_t cap)
{
	Dwarf_Die child = NULL, sib = NULL, ret = type_of(w->dbg, die);
	Dwarf_Error err = NULL;
	size_t len;
	bool first = true;

	type_name(w->dbg, ret, buf, cap, 0);
	if (ret)
		dwarf_dealloc_die(ret);
	len = strlen(buf);
	len += (size_t)snprintf(buf + len, cap - len, " (");
	if (dwarf_child(die, &child, &err) == DW_DLV_OK) {
		for (;;) {
			if (die_tag(child) == DW_TAG_formal_parameter &&
			    len < cap) {
				char ty[160];
				Dwarf_Die t = type_of(w->dbg, child);

				type_name(w->dbg, t, ty, sizeof(ty), 0);
				if (t)
					dwarf_dealloc_die(t);
				len += (size_t)snprintf(buf + len, cap - len,
							"%s%s",
							first ? "" : ", ", ty);
				first = false;
			}
			if (dwarf_siblingof_b(w->dbg, child, 1, &sib, &err) !=
			    DW_DLV_OK)
				break;
			dwarf_dealloc_die(child);
			child = sib;
		}
		dwarf_dealloc_die(child);
	}
	if (len < cap)
		snprintf(buf + len, cap - len, ")");
}

static const char *linkage_name(Dwarf_Die die)
{
	Dwarf_Attribute attr = NULL;
	Dwarf_Error err = NULL;
	char *name = NULL;

	if (dwarf_attr(die, DW_AT_linkage_name, &attr, &err) != DW_DLV_OK &&
	    dwarf_attr(die, DW_AT_MIPS_linkage_name, &attr, &err) != DW_DLV_OK)
		return NULL;
	if (dwarf_formstring(attr, &name, &err) != DW_DLV_OK)
		name = NULL;
	dwarf_dealloc_attribute(attr);
	return name;
}

static int add_func(struct walk *w, Dwarf_Die die)
{
	struct hp_dwarf_types *t = w->t;
	Dwarf_Die decl = ref_attr(w->dbg, die, DW_AT_abstract_origin);
	const char *name = NULL;
	struct hp_func_types *f = NULL;
	Dwarf_Bool has_low = 0;
	Dwarf_Error err = NULL;
	int rc;

	if (!decl)
		decl = ref_attr(w->dbg, die, DW_AT_specification);
	/* C++: the symbol's (mangled) name, which DW_AT_name is not */
	name = linkage_name(die);
	if (!name && decl)
		name = linkage_name(decl);
	if (!name)
		name = die_name(die) ? die_name(die)
		       : decl	     ? die_name(decl)
				     : NULL;
	/* Only functions with code in this object (low_pc or ranges). */
	if (!name ||
	    (dwarf_hasattr(die, DW_AT_low_pc, &has_low, &err) == DW_DLV_OK &&
	     !has_low &&
	     dwarf_hasattr(die, DW_AT_ranges, &has_low, &err) == DW_DLV_OK &&
	     !has_low))
		goto out;
	f = realloc(t->funcs, (t->nr_funcs + 1) * sizeof(*f));
	if (!f) {
		w->rc = -ENOMEM;
		goto out;
	}
	t->funcs = f;
	f = &t->funcs[t->nr_funcs++];
	*f = (struct hp_func_types){ 0 };
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->decl_line = decl_attr(decl ? decl : die, DW_AT_decl_line);
	f->first_line = f->decl_line;
	w->file = decl_attr(decl ? decl : die, DW_AT_decl_file);
	signature(w, decl ? decl : die, f->sig, sizeof(f->sig));
	rc = walk_body(w, f, die, 0);
	if (!rc && decl)
		rc = walk_body(w, f, decl, 0);
	if (rc)
		w->rc = rc;
out:
	if (decl)
		dwarf_dealloc_die(decl);
	return w->rc;
}

int hp_dwarf_types_read(const char *path, struct hp_dwarf_types *t)
{
	struct walk w = { .t = t };
	Dwarf_Error err = NULL;
	Dwarf_Unsigned next = 0;
	Dwarf_Half cu_type = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*t = (struct hp_dwarf_types){ 0 };
	if (fd < 0)
		return -errno;
	if (dwarf_init_b(fd, DW_DLC_READ, DW_GROUPNUMBER_ANY, NULL, NULL,
			 &w.dbg, &err) != DW_DLV_OK) {
		close(fd);
		return 0; /* no DWARF: nothing to check, reported elsewhere */
	}
	t->has_dwarf = true;
	while (!w.rc && dwarf_next_cu_header_d(w.dbg, 1, NULL, NULL, NULL, NULL,
					       NULL, NULL, NULL, NULL, &next,
					       &cu_type, &err) == DW_DLV_OK) {
		Dwarf_Die cu = NULL, die = NULL, sib = NULL;

		if (dwarf_siblingof_b(w.dbg, NULL, 1, &cu, &err) != DW_DLV_OK)
			continue;
		if (dwarf_child(cu, &die, &err) == DW_DLV_OK) {
			for (;;) {
				char name[96] = "";
				Dwarf_Half tag = die_tag(die);

				if (tag == DW_TAG_subprogram)
					add_func(&w, die);
				else if ((is_record(tag) ||
					  tag == DW_TAG_typedef) &&
					 struct_of(w.dbg, die, name,
						   sizeof(name), 0) == die &&
					 *name && !w.rc)
					w.rc = add_layout(&w, die, name);
				if (w.rc ||
				    dwarf_siblingof_b(w.dbg, die, 1, &sib,
						      &err) != DW_DLV_OK)
					break;
				dwarf_dealloc_die(die);
				die = sib;
			}
			dwarf_dealloc_die(die);
		}
		dwarf_dealloc_die(cu);
	}
	dwarf_finish(w.dbg, &err);
	close(fd);
	return w.rc;
}

void hp_dwarf_types_release(struct hp_dwarf_types *t)
{
	for (size_t i = 0; i < t->nr_layouts; i++) {
		free(t->layouts[i].members);
		free(t->layouts[i].vtable);
	}
	for (size_t i = 0; i < t->nr_funcs; i++) {
		for (uint32_t j = 0; j < t->funcs[i].nr_used; j++)
			free(t->funcs[i].used[j]);
		free(t->funcs[i].used);
	}
	free(t->layouts);
	free(t->funcs);
	*t = (struct hp_dwarf_types){ 0 };
}

const struct hp_layout *hp_dwarf_find_layout(const struct hp_dwarf_types *t,
					     const char *name)
{
	return find_layout((struct hp_dwarf_types *)t, name);
}

const struct hp_func_types *hp_dwarf_find_func(const struct hp_dwarf_types *t,
					       const char *name)
{
	for (size_t i = 0; i < t->nr_funcs; i++)
		if (!strcmp(t->funcs[i].name, name))
			return &t->funcs[i];
	for (size_t i = 0; i < t->nr_funcs; i++)
		if (hp_dwarf_names(t->funcs[i].name, name))
			return &t->funcs[i];
	return NULL;
}
