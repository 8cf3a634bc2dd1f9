/*
 * The differ's report: which functions go into the patch and why, and every
 * refusal with its code and what to do. Rendered as text or JSON through
 * the same hp_out calls.
 */
#include "differ/differ_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <demangle.h> /* libiberty-dev: the demangler of binutils and gcc */

static const char *const change_names[] = {
	[HP_DIFF_CHANGED] = "changed",
	[HP_DIFF_NEW] = "new",
};

/*
 * The source-level name of a C++ symbol ("_ZNK4Rect4areaEv" is
 * "Rect::area() const"; a gcc clone "foo(int) [clone .constprop.0]"), or
 * NULL for a C name or when memory runs out: the report then shows the
 * mangled name alone. The Itanium C++ ABI's grammar (templates,
 * substitutions, ABI tags, lambdas) is libiberty's, as c++filt uses it.
 */
char *hp_demangle(const char *name)
{
	if (strncmp(name, "_Z", 2))
		return NULL;
	return cplus_demangle(name, DMGL_PARAMS | DMGL_ANSI);
}

/* Entries added from now on belong to the newest module. */
static const char *cur_module(const struct hp_diff_report *r)
{
	return r->nr_modules ? r->modules[r->nr_modules - 1].binary : "";
}

int hp_report_add_module(struct hp_diff_report *r, const char *binary,
			 const char *build_id)
{
	const char *slash = strrchr(binary, '/');
	struct hp_diff_report_module *m =
		realloc(r->modules, (r->nr_modules + 1) * sizeof(*m));

	if (!m)
		return -ENOMEM;
	r->modules = m;
	m = &r->modules[r->nr_modules];
	*m = (struct hp_diff_report_module){
		.binary = strdup(slash ? slash + 1 : binary),
		.build_id = strdup(build_id),
	};
	if (!m->binary || !m->build_id) {
		free(m->binary);
		free(m->build_id);
		return -ENOMEM;
	}
	r->nr_modules++;
	return 0;
}

int hp_report_add_func(struct hp_diff_report *r, const char *name,
		       const char *object, enum hp_diff_change change,
		       const char *reason)
{
	struct hp_diff_func *f = NULL;

	f = realloc(r->funcs, (r->nr_funcs + 1) * sizeof(*f));
	if (!f)
		return -ENOMEM;
	r->funcs = f;
	f = &r->funcs[r->nr_funcs];
	*f = (struct hp_diff_func){
		.name = strdup(name),
		.demangled = hp_demangle(name),
		.module = cur_module(r),
		.object = strdup(object),
		.change = change,
		.reason = strdup(reason),
	};
	if (!f->name || !f->object || !f->reason) {
		free(f->name);
		free(f->demangled);
		free(f->object);
		free(f->reason);
		return -ENOMEM;
	}
	r->nr_funcs++;
	return 0;
}

int hp_report_add_line_only(struct hp_diff_report *r, const char *name,
			    const char *object, int delta)
{
	struct hp_diff_func *f =
		realloc(r->line_only, (r->nr_line_only + 1) * sizeof(*f));

	if (!f)
		return -ENOMEM;
	r->line_only = f;
	f = &r->line_only[r->nr_line_only];
	*f = (struct hp_diff_func){ .name = strdup(name),
				    .demangled = hp_demangle(name),
				    .module = cur_module(r),
				    .object = strdup(object),
				    .src_line = (unsigned int)delta };
	if (!f->name || !f->object) {
		free(f->name);
		free(f->demangled);
		free(f->object);
		return -ENOMEM;
	}
	r->nr_line_only++;
	return 0;
}

int hp_report_refuse(struct hp_diff_report *r, const char *symbol,
		     const char *object, int code, const char *hint,
		     const char *fmt, ...)
{
	struct hp_diff_refusal *x = NULL;
	char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	x = realloc(r->refused, (r->nr_refused + 1) * sizeof(*x));
	if (!x || !msg) {
		free(msg);
		if (x)
			r->refused = x;
		return -ENOMEM;
	}
	r->refused = x;
	r->refused[r->nr_refused++] = (struct hp_diff_refusal){
		.symbol = strdup(symbol ? symbol : ""),
		.demangled = symbol ? hp_demangle(symbol) : NULL,
		.module = cur_module(r),
		.object = strdup(object ? object : ""),
		.code = code,
		.message = msg,
		.hint = hint ? strdup(hint) : NULL,
	};
	return 0;
}

/* The report's "modules" array. */
static void print_modules(const struct hp_diff_report *r, struct hp_out *o)
{
	hp_out_begin_array(o, "modules");
	for (uint32_t i = 0; i < r->nr_modules; i++) {
		hp_out_begin_object(o, NULL);
		hp_out_str(o, "binary", "%s", r->modules[i].binary);
		hp_out_str(o, "build_id", "%s", r->modules[i].build_id);
		hp_out_u64(o, "objects_compared", r->modules[i].nr_objects);
		hp_out_u64(o, "objects_added", r->modules[i].nr_added);
		hp_out_u64(o, "objects_removed", r->modules[i].nr_removed);
		hp_out_str(o, "binary_matches", "%u/%u functions",
			   r->modules[i].nr_proved,
			   r->modules[i].nr_proof_funcs);
		hp_out_end_object(o);
	}
	hp_out_end_array(o);
}

/* The report's "functions" array. */
static void print_functions(const struct hp_diff_report *r, struct hp_out *o)
{
	hp_out_begin_array(o, "functions");
	for (uint32_t i = 0; i < r->nr_funcs; i++) {
		const struct hp_diff_func *f = &r->funcs[i];

		hp_out_begin_object(o, NULL);
		hp_out_str(o, "name", "%s", f->name);
		if (f->demangled)
			hp_out_str(o, "demangled", "%s", f->demangled);
		hp_out_str(o, "module", "%s", f->module);
		hp_out_str(o, "object", "%s", f->object);
		hp_out_str(o, "change", "%s", change_names[f->change]);
		hp_out_str(o, "reason", "%s", f->reason);
		if (f->src_file) {
			hp_out_str(o, "file", "%s", f->src_file);
			hp_out_u64(o, "line", f->src_line);
		}
		hp_out_u64(o, "old_size", f->old_size);
		hp_out_u64(o, "new_size", f->new_size);
		hp_out_end_object(o);
	}
	hp_out_end_array(o);
}

/* The report's "line_only" array. */
static void print_line_only(const struct hp_diff_report *r, struct hp_out *o)
{
	hp_out_begin_array(o, "line_only");
	for (uint32_t i = 0; i < r->nr_line_only; i++) {
		hp_out_begin_object(o, NULL);
		hp_out_str(o, "name", "%s", r->line_only[i].name);
		if (r->line_only[i].demangled)
			hp_out_str(o, "demangled", "%s",
				   r->line_only[i].demangled);
		hp_out_str(o, "module", "%s", r->line_only[i].module);
		hp_out_str(o, "object", "%s", r->line_only[i].object);
		hp_out_i64(o, "moved_lines", (int)r->line_only[i].src_line);
		hp_out_str(o, "note", "%s",
			   "only __LINE__ values changed: not patched (use "
			   "--include-line-changes)");
		hp_out_end_object(o);
	}
	hp_out_end_array(o);
}

/* The report's "refused" array. */
static void print_refused(const struct hp_diff_report *r, struct hp_out *o)
{
	hp_out_begin_array(o, "refused");
	for (uint32_t i = 0; i < r->nr_refused; i++) {
		const struct hp_diff_refusal *x = &r->refused[i];

		hp_out_begin_object(o, NULL);
		hp_out_str(o, "symbol", "%s", x->symbol);
		if (x->demangled)
			hp_out_str(o, "demangled", "%s", x->demangled);
		hp_out_str(o, "module", "%s", x->module);
		hp_out_str(o, "object", "%s", x->object);
		hp_out_str(o, "code", "%s", hp_err_name(x->code));
		hp_out_str(o, "message", "%s", x->message);
		if (x->hint)
			hp_out_str(o, "hint", "%s", x->hint);
		hp_out_end_object(o);
	}
	hp_out_end_array(o);
}

void hp_diff_report_print(const struct hp_diff_report *r, struct hp_out *o)
{
	if (r->build_id)
		hp_out_str(o, "build_id", "%s", r->build_id);
	hp_out_u64(o, "objects_compared", r->nr_objects);
	{
		uint32_t proved = 0, funcs = 0;

		for (uint32_t i = 0; i < r->nr_modules; i++) {
			proved += r->modules[i].nr_proved;
			funcs += r->modules[i].nr_proof_funcs;
		}
		hp_out_str(o, "binary_matches", "%u/%u functions", proved,
			   funcs);
	}
	print_modules(r, o);
	print_functions(r, o);
	print_line_only(r, o);
	print_refused(r, o);
}

void hp_diff_report_free(struct hp_diff_report *r)
{
	if (!r)
		return;
	for (uint32_t i = 0; i < r->nr_funcs; i++) {
		free(r->funcs[i].name);
		free(r->funcs[i].demangled);
		free(r->funcs[i].object);
		free(r->funcs[i].reason);
		free(r->funcs[i].src_file);
	}
	for (uint32_t i = 0; i < r->nr_refused; i++) {
		free(r->refused[i].symbol);
		free(r->refused[i].demangled);
		free(r->refused[i].object);
		free(r->refused[i].message);
		free(r->refused[i].hint);
	}
	for (uint32_t i = 0; i < r->nr_line_only; i++) {
		free(r->line_only[i].name);
		free(r->line_only[i].demangled);
		free(r->line_only[i].object);
	}
	for (uint32_t i = 0; i < r->nr_modules; i++) {
		free(r->modules[i].binary);
		free(r->modules[i].build_id);
	}
	free(r->modules);
	free(r->line_only);
	free(r->funcs);
	free(r->refused);
	free(r->build_id);
	free(r);
}
