/*
 * Unit tests for the differ on the real objects of testdata/ (built by
 * CMake with the release flags): exactly the changed function is found,
 * identical trees give "no change", and the patch's references are
 * resolved against the old binary.
 */
#include "hp_test.h"

#include "common/hp_log.h"
#include "differ/differ.h"
#include "differ/differ_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char objs1[512], objs2[512], bin1[512];

static void quiet(enum hp_log_level l, const char *m, void *c)
{
	(void)l;
	(void)m;
	(void)c;
}

static int setup(void **state)
{
	const char *b = getenv("HP_BUILD");

	(void)state;
	if (!b)
		return -1;
	snprintf(objs1, sizeof(objs1),
		 "%s/testdata/CMakeFiles/demo-v1.objs.dir", b);
	snprintf(objs2, sizeof(objs2),
		 "%s/testdata/CMakeFiles/demo-v2.objs.dir", b);
	snprintf(bin1, sizeof(bin1), "%s/testdata/demo-v1", b);
	hp_log_set_sink(quiet, NULL);
	return 0;
}

static void test_demo_one_change(void **state)
{
	const struct hp_diff_opts opts = { .old_path = objs1,
					   .new_path = objs2,
					   .binary = bin1,
					   .patch_id = "t" };
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;
	const struct hp_module *m = NULL;
	bool veneer_via_got = false;

	(void)state;
	assert_hp_ok(hp_diff_run(&opts, &r, &p));
	assert_int_equal(r->nr_objects, 2);
	assert_int_equal(r->nr_funcs, 1);
	assert_int_equal(r->nr_refused, 0);
	assert_string_equal(r->funcs[0].name, "format_quote");
	assert_string_equal(r->funcs[0].object, "targets/demo/demo_quote.c.o");
	assert_int_equal(r->funcs[0].change, HP_DIFF_CHANGED);
	assert_non_null(r->funcs[0].src_file);
	assert_non_null(strstr(r->funcs[0].src_file, "demo_quote.c"));
	assert_true(r->funcs[0].src_line > 0);

	assert_non_null(p);
	assert_int_equal(p->nr_modules, 1);
	m = &p->modules[0];
	assert_int_equal(m->build_id_len, 20);
	assert_int_equal(m->nr_funcs, 1);
	assert_true(m->funcs[0].old_addr != 0);
	assert_true(m->funcs[0].old_size >= 5);
	assert_int_equal(m->funcs[0].flags, 0);
	assert_true(m->funcs[0].new_off + m->funcs[0].new_size <= m->text_size);
	/* The new string literal travels with the patch. */
	assert_non_null(memmem(m->text, m->text_size, "(v2, 10%% off)", 14));
	/* snprintf: a veneer reading the binary's own GOT slot; no symbol
	 * left to bind by name. */
	assert_int_equal(m->nr_syms, 0);
	for (uint32_t i = 0; i < m->nr_relocs; i++) {
		const struct hp_reloc *rel = &m->relocs[i];

		assert_true(rel->type < HP_R_NR_TYPES);
		if (rel->base == HP_RB_MODULE && rel->type == HP_R_PC32 &&
		    m->text[rel->offset - 2] == 0xff &&
		    m->text[rel->offset - 1] == 0x25)
			veneer_via_got = true;
	}
	assert_true(veneer_via_got);
	hp_patch_free(p);
	hp_diff_report_free(r);
}

static void test_no_change(void **state)
{
	const struct hp_diff_opts opts = { .old_path = objs1,
					   .new_path = objs1,
					   .binary = bin1 };
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;

	(void)state;
	assert_hp_err(hp_diff_run(&opts, &r, &p), HP_E_NOCHANGE);
	assert_null(p);
	assert_int_equal(r->nr_funcs, 0);
	hp_diff_report_free(r);
}

static void test_wrong_binary(void **state)
{
	char bin2[600];
	const struct hp_diff_opts opts = { .old_path = objs1,
					   .new_path = objs2,
					   .binary = objs1 };
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;

	(void)state;
	/* A directory is not a binary. */
	assert_true(hp_diff_run(&opts, &r, &p) < 0);
	hp_diff_report_free(r);
	/* Mixed kinds: a tree and a file. */
	snprintf(bin2, sizeof(bin2), "%s/targets/demo/demo_quote.c.o", objs2);
	{
		const struct hp_diff_opts o2 = { .old_path = objs1,
						 .new_path = bin2,
						 .binary = bin1 };

		r = NULL;
		assert_true(hp_diff_run(&o2, &r, &p) < 0);
		hp_diff_report_free(r);
	}
}

/* Run hpdiff on testdata case @name (cases/NAME.c, old and new). */
static int run_case(const char *name, struct hp_diff_report **r,
		    struct hp_patch **p)
{
	char o[600], n[600], b[600];
	const char *build = getenv("HP_BUILD");
	const struct hp_diff_opts opts = {
		.old_path = o, .new_path = n, .binary = b, .patch_id = name
	};

	snprintf(o, sizeof(o), "%s/testdata/CMakeFiles/%s-v1.objs.dir", build,
		 name);
	snprintf(n, sizeof(n), "%s/testdata/CMakeFiles/%s-v2.objs.dir", build,
		 name);
	snprintf(b, sizeof(b), "%s/testdata/%s-v1", build, name);
	return hp_diff_run(&opts, r, p);
}

static const struct hp_diff_func *find_func(const struct hp_diff_report *r,
					    const char *name)
{
	for (uint32_t i = 0; i < r->nr_funcs; i++)
		if (!strcmp(r->funcs[i].name, name))
			return &r->funcs[i];
	return NULL;
}

static void test_case_static_local(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;
	const struct hp_module *m = NULL;
	bool uses_old_counter = false;

	(void)state;
	assert_hp_ok(run_case("static_local", &r, &p));
	assert_non_null(find_func(r, "next_ticket"));
	m = &p->modules[0];
	/* counter.0 is the running program's: only module-relative refs. */
	assert_int_equal(m->data_size + m->bss_size, 0);
	for (uint32_t i = 0; i < m->nr_relocs; i++)
		uses_old_counter |= m->relocs[i].base == HP_RB_MODULE;
	assert_true(uses_old_counter);
	hp_patch_free(p);
	hp_diff_report_free(r);
}

static void test_case_two_statics(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;

	(void)state;
	assert_hp_ok(run_case("two_statics", &r, &p));
	assert_int_equal(r->nr_funcs, 1);
	assert_string_equal(r->funcs[0].name, "scale");
	assert_non_null(strstr(r->funcs[0].object, "two_statics_a.c"));
	/* a.c's scale and b.c's scale differ in the binary: the patch must
	 * pin a.c's (its hash is of a.c's bytes, checked by e2e apply). */
	assert_int_equal(p->modules[0].nr_funcs, 1);
	hp_patch_free(p);
	hp_diff_report_free(r);
}

static void test_case_new_func(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;
	const struct hp_diff_func *f = NULL;
	const struct hp_module *m = NULL;

	(void)state;
	assert_hp_ok(run_case("new_func", &r, &p));
	f = find_func(r, "checked_add");
	assert_non_null(f);
	assert_int_equal(f->change, HP_DIFF_CHANGED);
	/* 4 bytes long, but followed by padding: the jump fits. */
	assert_int_equal(f->old_size, 5);
	f = find_func(r, "clamp.constprop.0");
	if (!f)
		f = find_func(r, "clamp");
	assert_non_null(f);
	assert_int_equal(f->change, HP_DIFF_NEW);
	m = &p->modules[0];
	assert_true(m->data_size >= 8); /* audit_tag */
	assert_true(m->bss_size >= 4);	/* audit_calls */
	assert_non_null(memmem(m->text, m->text_size, "audited", 8));
	hp_patch_free(p);
	hp_diff_report_free(r);
}

static void test_case_changed_data(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;

	(void)state;
	assert_hp_err(run_case("changed_data", &r, &p), HP_E_REFUSED);
	assert_null(p);
	assert_int_equal(r->nr_refused, 1);
	assert_string_equal(r->refused[0].symbol, "limit");
	assert_int_equal(r->refused[0].code, -HP_E_CHANGED_DATA);
	assert_non_null(r->refused[0].hint);
	hp_diff_report_free(r);
}

static void test_case_strings_only(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;

	(void)state;
	assert_hp_ok(run_case("strings_only", &r, &p));
	/* Only the new function: greet's labels moved, greet did not. */
	assert_int_equal(r->nr_funcs, 1);
	assert_string_equal(r->funcs[0].name, "banner");
	assert_int_equal(r->funcs[0].change, HP_DIFF_NEW);
	hp_patch_free(p);
	hp_diff_report_free(r);
}

static void test_case_inline_callee(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;

	(void)state;
	assert_hp_ok(run_case("inline_callee", &r, &p));
	assert_non_null(find_func(r, "total_a"));
	assert_non_null(find_func(r, "total_b"));
	assert_null(find_func(r, "untouched"));
	hp_patch_free(p);
	hp_diff_report_free(r);
}

static void test_case_extcall(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;
	const struct hp_module *m = NULL;

	(void)state;
	assert_hp_ok(run_case("extcall", &r, &p));
	assert_non_null(find_func(r, "parent_info"));
	m = &p->modules[0];
	/* getppid: never called by v1, so bound by name at apply time. */
	assert_int_equal(m->nr_syms, 1);
	assert_string_equal(m->syms[0].name, "getppid");
	hp_patch_free(p);
	hp_diff_report_free(r);
}

static void test_case_too_short(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;

	(void)state;
	/* 3 bytes and last in .text: no padding to borrow. */
	assert_hp_err(run_case("too_short", &r, &p), HP_E_REFUSED);
	assert_int_equal(r->nr_refused, 1);
	assert_string_equal(r->refused[0].symbol, "one");
	assert_int_equal(r->refused[0].code, -HP_E_TOO_SHORT);
	hp_diff_report_free(r);
}

static const struct hp_diff_refusal *
find_refusal(const struct hp_diff_report *r, int code)
{
	for (uint32_t i = 0; i < r->nr_refused; i++)
		if (r->refused[i].code == -code)
			return &r->refused[i];
	return NULL;
}

static void test_case_struct_layout(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;
	const struct hp_diff_refusal *x = NULL;

	(void)state;
	assert_hp_err(run_case("struct_layout", &r, &p), HP_E_REFUSED);
	x = find_refusal(r, HP_E_LAYOUT);
	assert_non_null(x);
	assert_string_equal(x->symbol, "struct conn");
	/* names the member, both layouts and the users */
	assert_non_null(strstr(x->message, "'int state' at offset 4 -> 'int "
					   "flags' at offset 4"));
	assert_non_null(strstr(x->message, "24 bytes, 3 members -> 28 bytes, "
					   "4 members"));
	assert_non_null(strstr(x->message, "'conn_state'"));
	hp_diff_report_free(r);
}

static void test_case_struct_reorder(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;
	const struct hp_diff_refusal *x = NULL;

	(void)state;
	/* Same size, members swapped: caught by the offsets. */
	assert_hp_err(run_case("struct_reorder", &r, &p), HP_E_REFUSED);
	x = find_refusal(r, HP_E_LAYOUT);
	assert_non_null(x);
	assert_string_equal(x->symbol, "range_t");
	assert_non_null(strstr(x->message, "8 bytes, 2 members -> 8 bytes"));
	hp_diff_report_free(r);
}

static void test_case_signature(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;
	const struct hp_diff_refusal *x = NULL;

	(void)state;
	assert_hp_err(run_case("signature", &r, &p), HP_E_REFUSED);
	x = find_refusal(r, HP_E_SIGNATURE);
	assert_non_null(x);
	assert_string_equal(x->symbol, "scale");
	assert_non_null(strstr(x->message, "'int (int)' to 'int (unsigned "
					   "int)'"));
	assert_non_null(strstr(x->message, "unchanged 'use'"));
	hp_diff_report_free(r);
}

/* Case @name changes __LINE__ alone, moved by @delta: nothing to patch,
 * but one function (whose name starts with @prefix) reported. */
static void check_line_only(const char *name, const char *prefix, int delta)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;

	assert_hp_err(run_case(name, &r, &p), HP_E_NOCHANGE);
	assert_int_equal(r->nr_funcs, 0);
	assert_int_equal(r->nr_line_only, 1);
	assert_int_equal(strncmp(r->line_only[0].name, prefix, strlen(prefix)),
			 0);
	assert_int_equal((int)r->line_only[0].src_line, delta);
	hp_diff_report_free(r);
}

static void test_case_line_only(void **state)
{
	(void)state;
	check_line_only("line_only", "log_state", 4);
}

static void test_case_line_only_part(void **state)
{
	(void)state;
	/* gcc's report.part.0, which DWARF knows as report() only (clang
	 * keeps report() whole). */
	check_line_only("line_only_part", "report", 4);
}

static void test_case_line_only_inlined(void **state)
{
	(void)state;
	/* step() holds the __LINE__ of trace(), inlined from above it. */
	check_line_only("line_only_inlined", "step", 3);
}

static void test_case_line_only_cold(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;

	(void)state;
	/* A function and its .cold part change together or not at all. */
	assert_hp_ok(run_case("line_only_cold", &r, &p));
	assert_int_equal(r->nr_funcs, 1);
	assert_string_equal(r->funcs[0].name, "store");
	assert_int_equal(r->nr_line_only, 1);
	assert_string_equal(r->line_only[0].name, "fetch");
	hp_patch_free(p);
	hp_diff_report_free(r);
}

static void test_dwarf_names(void **state)
{
	(void)state;
	/* The report locates gcc's parts by their function's DWARF. */
	assert_true(hp_dwarf_names("report", "report"));
	assert_true(hp_dwarf_names("report", "report.part.0"));
	assert_true(hp_dwarf_names("report", "report.cold"));
	assert_false(hp_dwarf_names("report", "reporter"));
	assert_false(hp_dwarf_names("reporter", "report.part.0"));
	assert_false(hp_dwarf_names("report", ".Lreport"));
}

static void test_case_inline_reason(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;
	const struct hp_diff_func *f = NULL;

	(void)state;
	assert_hp_ok(run_case("inline_callee", &r, &p));
	f = find_func(r, "total_a");
	assert_non_null(f);
	assert_string_equal(f->reason, "body changed; inlines weight");
	hp_patch_free(p);
	hp_diff_report_free(r);
}

static void test_case_clones(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;

	(void)state;
	assert_hp_ok(run_case("clones", &r, &p));
	assert_non_null(find_func(r, "api"));
	for (uint32_t i = 0; i < r->nr_funcs; i++)
		if (strcmp(r->funcs[i].name, "api"))
			/* anything else must be a new clone, never a
			 * redirected old one */
			assert_int_equal(r->funcs[i].change, HP_DIFF_NEW);
	hp_patch_free(p);
	hp_diff_report_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_demo_one_change),
		cmocka_unit_test(test_no_change),
		cmocka_unit_test(test_wrong_binary),
		cmocka_unit_test(test_case_static_local),
		cmocka_unit_test(test_case_two_statics),
		cmocka_unit_test(test_case_new_func),
		cmocka_unit_test(test_case_changed_data),
		cmocka_unit_test(test_case_strings_only),
		cmocka_unit_test(test_case_inline_callee),
		cmocka_unit_test(test_case_extcall),
		cmocka_unit_test(test_case_too_short),
		cmocka_unit_test(test_case_struct_layout),
		cmocka_unit_test(test_case_struct_reorder),
		cmocka_unit_test(test_case_signature),
		cmocka_unit_test(test_case_line_only),
		cmocka_unit_test(test_case_line_only_part),
		cmocka_unit_test(test_case_line_only_cold),
		cmocka_unit_test(test_case_line_only_inlined),
		cmocka_unit_test(test_dwarf_names),
		cmocka_unit_test(test_case_inline_reason),
		cmocka_unit_test(test_case_clones),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
