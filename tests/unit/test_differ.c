/*
 * Unit tests for the differ on the real objects of testdata/ (built by
 * CMake with the release flags): exactly the changed function is found,
 * identical trees give "no change", and the patch's references are
 * resolved against the old binary.
 */
#include "hp_test.h"

#include "common/hp_log.h"
#include "common/hp_util.h"
#include "differ/differ.h"
#include "differ/differ_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char objs1[512], objs2[512], bin1[512];

/* Whether testdata was built with Debian's flags: no function sections,
 * -fcf-protection (endbr64 at every entry), _FORTIFY_SOURCE. */
static bool is_debian(void)
{
	const char *f = getenv("HP_FLAVOUR");

	return f && !strcmp(f, "debian");
}

static void quiet(enum hp_log_level l, const char *m, void *c)
{
	(void)l;
	(void)m;
	(void)c;
}

static int setup(void **state)
{
	const char *b = getenv("HP_TD");

	(void)state;
	if (!b)
		return -1;
	snprintf(objs1, sizeof(objs1), "%s/CMakeFiles/demo-v1.objs.dir", b);
	snprintf(objs2, sizeof(objs2), "%s/CMakeFiles/demo-v2.objs.dir", b);
	snprintf(bin1, sizeof(bin1), "%s/demo-v1", b);
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
	const char *build = getenv("HP_TD");
	const struct hp_diff_opts opts = {
		.old_path = o, .new_path = n, .binary = b, .patch_id = name
	};

	snprintf(o, sizeof(o), "%s/CMakeFiles/%s-v1.objs.dir", build, name);
	snprintf(n, sizeof(n), "%s/CMakeFiles/%s-v2.objs.dir", build, name);
	snprintf(b, sizeof(b), "%s/%s-v1", build, name);
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

/* Data and bss of the patch's own, without the unwinder's object. */
static uint32_t own_data(const struct hp_module *m)
{
	return m->data_size + m->bss_size -
	       (m->eh_size ? HP_UNWIND_OBJECT_SIZE + 16 : 0);
}

/* Is relocation @r in the module's unwind table (docs/UNWIND.md)? */
static bool in_unwind(const struct hp_module *m, const struct hp_reloc *r)
{
	return r->offset >= m->eh_off && r->offset < m->eh_off + m->eh_size;
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
	assert_int_equal(own_data(m), 0);
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
	/* 4 bytes long, but followed by padding: the jump fits (8 bytes
	 * with an endbr64). */
	assert_int_equal(f->old_size, is_debian() ? 8 : 5);
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

/* A grown table in an object without functions is refused too. */
static void test_case_data_only(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;

	(void)state;
	assert_hp_err(run_case("data_only", &r, &p), HP_E_REFUSED);
	assert_null(p);
	assert_int_equal(r->nr_refused, 1);
	assert_string_equal(r->refused[0].symbol, "handlers");
	assert_int_equal(r->refused[0].code, -HP_E_CHANGED_DATA);
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

/* How many of @m's relocations have @type and @base. */
/* Relocations of the code and data, those of the unwind table aside. */
static int count_relocs(const struct hp_module *m, uint8_t type, uint8_t base)
{
	int n = 0;

	for (uint32_t i = 0; i < m->nr_relocs; i++)
		n += m->relocs[i].type == type && m->relocs[i].base == base &&
		     !in_unwind(m, &m->relocs[i]);
	return n;
}

static uint32_t count_unwind_relocs(const struct hp_module *m)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < m->nr_relocs; i++)
		n += in_unwind(m, &m->relocs[i]);
	return n;
}

static void test_case_reloc_kinds(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;
	const struct hp_module *m = NULL;

	(void)state;
	assert_hp_ok(run_case("reloc_kinds", &r, &p));
	assert_int_equal(r->nr_refused, 0);
	assert_non_null(find_func(r, "kinds"));
	m = &p->modules[0];
	/* PC32 and PLT32 (helper is in the module): PC32 to the module. */
	assert_int_equal(count_relocs(m, HP_R_PC32, HP_RB_MODULE), 2);
	/* GOTPCREL, GOTPCRELX, REX_GOTPCRELX: PC32 to a slot in the
	 * patch image, one slot per symbol (table twice, helper once),
	 * each filled with the symbol's address by an ABS64. */
	assert_int_equal(count_relocs(m, HP_R_PC32, HP_RB_IMAGE), 3);
	assert_int_equal(count_relocs(m, HP_R_ABS64, HP_RB_MODULE), 2);
	assert_int_equal(count_relocs(m, HP_R_PC64, HP_RB_MODULE), 1);
	assert_int_equal(m->nr_relocs - count_unwind_relocs(m), 8);
	hp_patch_free(p);
	hp_diff_report_free(r);
}

static void test_case_odd_reloc(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;

	(void)state;
	/* A relocation type no patch carries: refused, named in full. */
	assert_hp_err(run_case("odd_reloc", &r, &p), HP_E_REFUSED);
	assert_int_equal(r->nr_refused, 1);
	assert_int_equal(r->refused[0].code, -HP_E_UNSUPPORTED_RELOC);
	assert_string_equal(r->refused[0].message,
			    is_debian() ? "'table_bytes'+0x5: relocation type "
					  "R_X86_64_SIZE32 (32) against 'table'"
					: "'.text.table_bytes'+0x1: relocation "
					  "type R_X86_64_SIZE32 (32) against "
					  "'table'");
	assert_null(p);
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

/*
 * What the first instruction of @bin's function @func refers to, when it
 * is @len bytes long and ends in a PC-relative 32-bit field ("call f",
 * "mov x(%rip),%eax"), after an endbr64 (-fcf-protection), or is a short
 * jump (gas relaxes a tail call to a near neighbour in a shared .text):
 * its address in *@addr, and its name.
 */
static const char *entry_target(const char *bin, const char *func, size_t len,
				uint64_t *addr)
{
	struct hp_binary *b = NULL;
	const struct hp_bsym *f = NULL;
	const char *target = NULL;
	uint8_t insn[16];
	size_t at = 0;
	bool ambiguous = false;
	static char name[128];

	assert_true(len >= 5 && len <= sizeof(insn));
	assert_hp_ok(hp_binary_open(bin, NULL, &b));
	f = hp_binary_find_sym(b, func, NULL, false, &ambiguous);
	assert_non_null(f);
	/* As much as there is: a function may end its section. */
	memset(insn, 0, sizeof(insn));
	for (size_t n = sizeof(insn); n >= len; n--)
		if (!hp_binary_read(b, f->value, insn, n))
			break;
	if (!memcmp(insn, "\xf3\x0f\x1e\xfa", 4))
		at = 4;
	if (insn[at] == 0xeb)
		*addr = f->value + at + 2 +
			(uint64_t)(int64_t)(int8_t)insn[at + 1];
	else
		*addr = f->value + at + len +
			(uint64_t)(int64_t)(int32_t)hp_get_le32(insn + at +
								len - 4);
	for (size_t i = 0; i < b->nr_syms && !target; i++)
		if (b->syms[i].value == *addr)
			target = b->syms[i].name;
	assert_non_null(target);
	snprintf(name, sizeof(name), "%s", target);
	hp_binary_free(b);
	return name;
}

/*
 * What a redirect must preserve: @caller, if left out of the patch, still
 * calls its old callee, so that callee must now run the new code of the
 * function the new @caller calls.
 */
static void assert_caller_consistent(const struct hp_diff_report *r,
				     const struct hp_patch *p,
				     const char *caller)
{
	char old_bin[600], new_bin[600];
	const char *build = getenv("HP_TD");
	const char *callee = NULL;
	uint64_t old_callee = 0, new_callee = 0;
	bool redirected = false;

	if (find_func(r, caller))
		return; /* replaced: its new code calls the new callee */
	snprintf(old_bin, sizeof(old_bin), "%s/clones-v1", build);
	snprintf(new_bin, sizeof(new_bin), "%s/clones-v2", build);
	/* price_*: "jmp tier_price.constprop.N" */
	entry_target(old_bin, caller, 5, &old_callee);
	callee = entry_target(new_bin, caller, 5, &new_callee);
	for (uint32_t i = 0; i < p->modules[0].nr_funcs; i++) {
		const struct hp_func *f = &p->modules[0].funcs[i];

		if (f->old_addr == old_callee) {
			assert_string_equal(f->name, callee);
			redirected = true;
		}
	}
	assert_true(redirected);
}

/*
 * @name is in the report as @change, for @reason. With _FORTIFY_SOURCE
 * (Debian's flags), libc's printf, snprintf, ... are inline wrappers, which
 * the reason may add: "; inlines printf".
 */
static void assert_func(const struct hp_diff_report *r, const char *name,
			enum hp_diff_change change, const char *reason)
{
	const struct hp_diff_func *f = find_func(r, name);
	const size_t len = strlen(reason);

	if (!f)
		fail_msg("'%s' is not in the report", name);
	assert_int_equal(f->change, change);
	if (is_debian() && !strncmp(f->reason, reason, len) &&
	    !strncmp(f->reason + len, "; inlines ", 10))
		return;
	assert_string_equal(f->reason, reason);
}

/* The patch redirects the old binary's @old_name to the new @name. */
static void assert_redirects(const struct hp_patch *p, const char *bin,
			     const char *name, const char *old_name)
{
	const struct hp_module *m = &p->modules[0];
	struct hp_binary *b = NULL;
	const struct hp_bsym *s = NULL;

	assert_hp_ok(hp_binary_open(bin, NULL, &b));
	for (size_t i = 0; i < b->nr_syms && !s; i++)
		if (!strcmp(b->syms[i].name, old_name))
			s = &b->syms[i];
	assert_non_null(s);
	for (uint32_t i = 0; i < m->nr_funcs; i++)
		if (!strcmp(m->funcs[i].name, name)) {
			assert_int_equal(m->funcs[i].flags, 0);
			assert_int_equal(m->funcs[i].old_addr, s->value);
			hp_binary_free(b);
			return;
		}
	fail_msg("'%s' is not in the patch", name);
}

static void test_case_clones(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;
	char bin[600];

	(void)state;
	/* v2 swaps the numbers of the two tier clones and fixes both: each
	 * replaces the old clone of its own tier, found by who calls it. */
	assert_hp_ok(run_case("clones", &r, &p));
	assert_int_equal(r->nr_funcs, 2);
	assert_func(r, "tier_price.constprop.0", HP_DIFF_CHANGED,
		    "body changed; clone of tier_price; renumbered from "
		    "tier_price.constprop.1");
	assert_func(r, "tier_price.constprop.1", HP_DIFF_CHANGED,
		    "body changed; clone of tier_price; renumbered from "
		    "tier_price.constprop.0");
	snprintf(bin, sizeof(bin), "%s/clones-v1", getenv("HP_TD"));
	assert_redirects(p, bin, "tier_price.constprop.0",
			 "tier_price.constprop.1");
	assert_redirects(p, bin, "tier_price.constprop.1",
			 "tier_price.constprop.0");
	/* Never an old clone redirected to another tier's new code while a
	 * caller left out of the patch still calls it. */
	assert_caller_consistent(r, p, "price_basic");
	assert_caller_consistent(r, p, "price_gold");
	hp_patch_free(p);
	hp_diff_report_free(r);
}

/* The first line of @path that contains @text. */
static unsigned int source_line(const char *path, const char *text)
{
	FILE *f = fopen(path, "r");
	char line[512];
	unsigned int n = 0;
	const char *rel = strstr(path, "/./");

	/* -ffile-prefix-map (Debian's flags) made it relative to testdata/,
	 * and the report joined it to the build directory. */
	if (!f && is_debian() && rel) {
		snprintf(line, sizeof(line), "%s/%s", getenv("HP_TESTDATA"),
			 rel + 3);
		f = fopen(line, "r");
	}

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		n++;
		if (strstr(line, text)) {
			fclose(f);
			return n;
		}
	}
	fclose(f);
	fail_msg("'%s' has no '%s'", path, text);
	return 0;
}

/*
 * targets/clone_svc at -O2: v2 fixes weight.isra.0 and checksum.part.0 and
 * adds price_staff, a third constant for tier_price (not cloned at -O2).
 */
static void test_case_clone_svc(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;
	const struct hp_diff_func *f = NULL;
	char bin[600];

	(void)state;
	assert_hp_ok(run_case("clone_svc", &r, &p));
	assert_int_equal(r->nr_funcs, 6);
	assert_func(r, "checksum.part.0", HP_DIFF_CHANGED,
		    "body changed; split from checksum");
	/* One more field passed by value: its caller is patched with it. */
	assert_func(r, "weight.isra.0", HP_DIFF_CHANGED,
		    "body changed; clone of weight");
	assert_func(r, "shipment_weight", HP_DIFF_CHANGED, "body changed");
	/* gcc knows the tiers it is called with: a new one changes its code. */
	assert_func(r, "tier_price", HP_DIFF_CHANGED, "body changed");
	assert_func(r, "price_staff", HP_DIFF_NEW, "new");
	assert_func(r, "answer", HP_DIFF_CHANGED, "body changed");
	/* Only moved: with Debian's flags its tail call "jmp tier_price"
	 * was short in v1 and is long in v2 (tier_price grew). */
	assert_null(find_func(r, "price_gold"));
	/* A clone is where its origin is in the source. */
	f = find_func(r, "weight.isra.0");
	assert_non_null(f->src_file);
	assert_non_null(strstr(f->src_file, "clone_svc.c"));
	assert_int_equal(f->src_line, source_line(f->src_file, "long weight("));
	snprintf(bin, sizeof(bin), "%s/clone_svc-v1", getenv("HP_TD"));
	assert_redirects(p, bin, "weight.isra.0", "weight.isra.0");
	/* Its callers, unchanged, call the old entry: the redirect does. */
	assert_redirects(p, bin, "checksum.part.0", "checksum.part.0");
	assert_null(find_func(r, "name_sum"));
	assert_null(find_func(r, "text_sum"));
	hp_patch_free(p);
	hp_diff_report_free(r);
}

/*
 * The same with -fipa-cp-clone: one tier_price clone per tier, and the new
 * staff tier's clone takes number 0, so gold's and basic's clones move from
 * .0 and .1 to .1 and .2, unchanged: they stay out, and so do their
 * callers, as in clone_svc.
 */
static void test_case_clone_svc_cp(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;

	(void)state;
	assert_hp_ok(run_case("clone_svc_cp", &r, &p));
	assert_int_equal(r->nr_funcs, 6);
	assert_func(r, "checksum.part.0", HP_DIFF_CHANGED,
		    "body changed; split from checksum");
	assert_func(r, "weight.isra.0", HP_DIFF_CHANGED,
		    "body changed; clone of weight");
	assert_func(r, "shipment_weight", HP_DIFF_CHANGED, "body changed");
	assert_func(r, "tier_price.constprop.0", HP_DIFF_NEW,
		    "new; clone of tier_price");
	assert_func(r, "price_staff", HP_DIFF_NEW, "new");
	assert_func(r, "answer", HP_DIFF_CHANGED, "body changed");
	assert_null(find_func(r, "tier_price.constprop.1"));
	assert_null(find_func(r, "tier_price.constprop.2"));
	assert_null(find_func(r, "price_basic"));
	assert_null(find_func(r, "price_gold"));
	hp_patch_free(p);
	hp_diff_report_free(r);
}

/*
 * A struct member moves, and the only code that changes is a part gcc split
 * off: the layout check must see the clone's DWARF (its origin's).
 */
static void test_case_clone_layout(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;
	const struct hp_diff_refusal *x = NULL;

	(void)state;
	assert_hp_err(run_case("clone_layout", &r, &p), HP_E_REFUSED);
	assert_null(p);
	assert_int_equal(r->nr_refused, 1);
	x = find_refusal(r, HP_E_LAYOUT);
	assert_non_null(x);
	assert_string_equal(x->symbol, "struct conn");
	assert_non_null(strstr(x->message, "used by 'conn_account.part.0'"));
	hp_diff_report_free(r);
}

/*
 * v2 moves next_b above next_a, which swaps the numbers of their static
 * locals "count", and changes next_a: its new code must use the running
 * program's next_a counter, not next_b's.
 */
/*
 * A new assert() renumbers every __PRETTY_FUNCTION__.N and gives helper's a
 * new referrer: paired by their bytes, nothing is refused and f, g and
 * check_b stay out.
 */
static void test_case_pretty_function(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;

	(void)state;
	assert_hp_ok(run_case("pretty_function", &r, &p));
	assert_int_equal(r->nr_refused, 0);
	assert_int_equal(r->nr_funcs, 2);
	assert_func(r, "h", HP_DIFF_NEW, "new");
	assert_non_null(find_func(r, "main"));
	assert_null(find_func(r, "f"));
	assert_null(find_func(r, "check_b"));
	hp_patch_free(p);
	hp_diff_report_free(r);
}

/* A --new tree of another program pairs with nothing: no patch of "new"
 * functions, main among them. */
static void test_unrelated_new_tree(void **state)
{
	const char *b = getenv("HP_BUILD");
	char other[512];
	struct hp_diff_opts opts = { .old_path = objs1,
				     .binary = bin1,
				     .patch_id = "t" };
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;

	(void)state;
	snprintf(other, sizeof(other), "%s/testdata/CMakeFiles/svc-v2.objs.dir",
		 b);
	opts.new_path = other;
	assert_hp_err(hp_diff_run(&opts, &r, &p), HP_E_UNRELATED);
	assert_null(p);
	assert_int_equal(r->nr_funcs, 0);
	hp_diff_report_free(r);
}

static void test_case_statics_moved(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;
	const struct hp_module *m = NULL;
	char bin[600];
	uint64_t counter = 0;
	uint32_t nr_uses = 0;

	(void)state;
	assert_hp_ok(run_case("statics_moved", &r, &p));
	assert_int_equal(r->nr_funcs, 1);
	assert_func(r, "next_a", HP_DIFF_CHANGED, "body changed");
	snprintf(bin, sizeof(bin), "%s/statics_moved-v1", getenv("HP_TD"));
	/* "mov count.N(%rip),%eax" */
	entry_target(bin, "next_a", 6, &counter);
	m = &p->modules[0];
	assert_int_equal(own_data(m), 0);
	for (uint32_t i = 0; i < m->nr_relocs; i++) {
		if (m->relocs[i].base != HP_RB_MODULE)
			continue;
		assert_int_equal(m->relocs[i].value + 4, counter);
		nr_uses++;
	}
	assert_true(nr_uses >= 2);
	hp_patch_free(p);
	hp_diff_report_free(r);
}

/*
 * A global of hidden visibility is local in the linked library (GNU ld files
 * it under an STT_FILE with an empty name): found as the global objects
 * reference, yet not as a file-local static.
 */
static void test_hidden_global(void **state)
{
	struct hp_binary *b = NULL;
	const struct hp_bsym *s = NULL;
	bool ambiguous = false;
	char lib[512];

	(void)state;
	snprintf(lib, sizeof(lib), "%s/libgreet-v1.so", getenv("HP_TD"));
	assert_hp_ok(hp_binary_open(lib, NULL, &b));
	for (int i = 0; i < 2; i++) {
		s = hp_binary_find_sym(b, i ? "greet_name" : "greet_count",
				       NULL, false, &ambiguous);
		assert_non_null(s);
		assert_false(ambiguous);
		assert_int_equal(s->bind, STB_LOCAL);
		assert_true(s->localised);
		assert_int_equal(s->type, STT_FUNC);
	}
	assert_null(hp_binary_find_sym(b, "greet_count", "greet.c", true,
				       &ambiguous));
	s = hp_binary_find_sym(b, "calls", "greet.c", true, &ambiguous);
	assert_non_null(s);
	assert_false(s->localised);
	assert_null(hp_binary_find_sym(b, "calls", NULL, false, &ambiguous));
	s = hp_binary_find_sym(b, "greet_reply", NULL, false, &ambiguous);
	assert_non_null(s);
	assert_false(s->localised);
	hp_binary_free(b);
}

/* One patch for a program and the library it loads: a module each, the
 * report says which function is whose; a module that did not change is
 * left out. */
static void test_two_modules(void **state)
{
	const char *b = getenv("HP_TD");
	char ho[512], hn[512], hb[512], lo[512], ln[512], lb[512];
	struct hp_diff_module lib = { lo, ln, lb, NULL };
	struct hp_diff_opts opts = { .old_path = ho,
				     .new_path = hn,
				     .binary = hb,
				     .patch_id = "t",
				     .more = &lib,
				     .nr_more = 1 };
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;

	(void)state;
	snprintf(ho, sizeof(ho), "%s/CMakeFiles/greet_host-v1.objs.dir", b);
	snprintf(hn, sizeof(hn), "%s/CMakeFiles/greet_host-v2.objs.dir", b);
	snprintf(hb, sizeof(hb), "%s/greet_host", b);
	snprintf(lo, sizeof(lo), "%s/CMakeFiles/greet-v1.objs.dir", b);
	snprintf(ln, sizeof(ln), "%s/CMakeFiles/greet-v2.objs.dir", b);
	snprintf(lb, sizeof(lb), "%s/libgreet-v1.so", b);
	assert_hp_ok(hp_diff_run(&opts, &r, &p));
	assert_int_equal(r->nr_modules, 2);
	assert_string_equal(r->modules[0].binary, "greet_host");
	assert_string_equal(r->modules[1].binary, "libgreet-v1.so");
	assert_int_equal(r->nr_funcs, 2);
	assert_string_equal(r->funcs[0].name, "answer");
	assert_string_equal(r->funcs[0].module, "greet_host");
	assert_string_equal(r->funcs[1].name, "greet_reply");
	assert_string_equal(r->funcs[1].module, "libgreet-v1.so");
	assert_int_equal(p->nr_modules, 2);
	assert_string_equal(p->modules[0].name, "greet_host");
	assert_int_equal(p->modules[0].nr_funcs, 1);
	assert_string_equal(p->modules[1].name, "libgreet-v1.so");
	assert_int_equal(p->modules[1].nr_funcs, 1);
	assert_memory_not_equal(p->modules[0].build_id, p->modules[1].build_id,
				20);
	hp_patch_free(p);
	hp_diff_report_free(r);

	/* The library unchanged: the patch carries the program alone. */
	lib.new_path = lo;
	assert_hp_ok(hp_diff_run(&opts, &r, &p));
	assert_int_equal(r->nr_modules, 2);
	assert_int_equal(p->nr_modules, 1);
	assert_string_equal(p->modules[0].name, "greet_host");
	hp_patch_free(p);
	hp_diff_report_free(r);

	/* The same binary twice is a mistake. */
	lib = (struct hp_diff_module){ ho, hn, hb, NULL };
	assert_int_equal(hp_diff_run(&opts, &r, &p), -EINVAL);
	assert_null(p);
	hp_diff_report_free(r);
}

/* An object of testdata built with Debian's flags: no sections. */
static struct hp_obj *open_debian(const char *dir, const char *rel)
{
	char path[800];
	struct hp_obj *o = NULL;

	snprintf(path, sizeof(path), "%s/testdata-debian/CMakeFiles/%s/%s",
		 getenv("HP_BUILD"), dir, rel);
	assert_hp_ok(hp_obj_open(path, rel, &o));
	return o;
}

/* @s's synthetic relocation against @to's piece, or NULL. */
static const struct hp_orel *synthetic_to(const struct hp_osec *s,
					  const struct hp_osym *to)
{
	for (size_t i = 0; i < s->nr_relocs; i++)
		if (s->relocs[i].synthetic && s->relocs[i].sym->sec == to->sec)
			return &s->relocs[i];
	return NULL;
}

static int record(void *ctx, const struct hp_insn *in)
{
	struct hp_insn *out = ctx;

	out[in->off == 0 ? 0 : 1] = *in;
	return 0;
}

/* libzydis finds the PC-relative field of a branch and of a RIP-relative
 * operand followed by an immediate, and where its target is. */
static void test_decode_rel(void **state)
{
	/* call .+0x10; movl $7, 0x20(%rip) */
	static const uint8_t code[] = { 0xe8, 0x10, 0, 0, 0, 0xc7, 0x05, 0x20,
					0,    0,    0, 7, 0, 0,	   0 };
	struct hp_insn in[2] = { 0 };
	uint64_t bad = 0;

	(void)state;
	assert_hp_ok(hp_decode(code, 0, sizeof(code), record, in, &bad));
	assert_true(in[0].has_rel && in[0].is_branch);
	assert_int_equal(in[0].field_off, 1);
	assert_int_equal(in[0].field_size, 4);
	assert_int_equal(in[0].target, 5 + 0x10);
	assert_true(in[1].has_rel && !in[1].is_branch);
	assert_int_equal(in[1].off, 5);
	assert_int_equal(in[1].len, 10);
	assert_int_equal(in[1].field_off, 2);
	assert_int_equal(in[1].target, 15 + 0x20);
	/* 0x06 is no instruction in 64-bit mode */
	assert_int_equal(
		hp_decode((const uint8_t *)"\x90\x06", 0, 2, record, in, &bad),
		-HP_E_UNSUPPORTED);
	assert_int_equal(bad, 1);
}

/*
 * Without -ffunction-sections, each function is a piece of .text: its
 * symbol's bytes, without the padding after it, and its tail call to a
 * neighbour, which gas resolved itself ("jmp tier_price", no relocation),
 * is a synthetic relocation against the neighbour's piece: in v1 through a
 * stub before the function (gas made the jump short: eb rel8), in v2 at
 * the field of a long jump (e9 rel32), zeroed as a relocated field is.
 */
static void test_split_functions(void **state)
{
	const char *rel = "targets/clone_svc/clone_svc.c.o";
	struct hp_obj *o = open_debian("clone_svc-v1.objs.dir", rel);
	const struct hp_osym *gold = hp_obj_find_sym_by_name(o, "price_gold");
	const struct hp_osym *tier = hp_obj_find_sym_by_name(o, "tier_price");
	const struct hp_osec *s = gold->sec;
	const struct hp_orel *r = NULL;

	(void)state;
	assert_non_null(s->parent);
	assert_true(s->parent->split);
	assert_int_equal(s->parent->nr_relocs, 0);
	assert_string_equal(s->parent->name, ".text");
	assert_string_equal(s->name, "price_gold");
	assert_ptr_equal(s->primary, gold);
	assert_int_equal(s->lead, 5); /* one backward stub */
	assert_int_equal(gold->st.st_value, s->lead);
	assert_int_equal(s->sh.sh_size, s->lead + gold->st.st_size + s->tail);
	assert_memory_equal(s->data + s->lead, s->parent->data + s->base,
			    gold->st.st_size - 2);
	r = synthetic_to(s, tier);
	assert_non_null(r);
	assert_int_equal(r->type, R_X86_64_PLT32);
	assert_int_equal(r->offset, 1); /* the stub's field */
	assert_int_equal(s->data[0], 0xe9);
	assert_int_equal(r->addend, (int64_t)tier->st.st_value - 4);
	/* the short jump, now to the stub */
	assert_int_equal(s->data[s->lead + gold->st.st_size - 2], 0xeb);
	assert_int_equal((int8_t)s->data[s->lead + gold->st.st_size - 1],
			 -(int)(s->lead + gold->st.st_size));
	hp_obj_free(o);

	o = open_debian("clone_svc-v2.objs.dir", rel);
	gold = hp_obj_find_sym_by_name(o, "price_gold");
	tier = hp_obj_find_sym_by_name(o, "tier_price");
	s = gold->sec;
	r = synthetic_to(s, tier);
	assert_non_null(r);
	assert_int_equal(s->lead, 0);
	assert_int_equal(s->data[r->offset - 1], 0xe9);
	assert_int_equal(hp_get_le32(s->data + r->offset), 0);
	assert_int_equal(r->addend, (int64_t)tier->st.st_value - 4);
	hp_obj_free(o);
}

/*
 * Without -fdata-sections, "mov .bss+N(%rip),%eax" refers to the object
 * covering .bss+N (local or global; here next_id's static counter), as it
 * would with a section of its own.
 */
static void test_split_data(void **state)
{
	struct hp_obj *o =
		open_debian("svc-v1.objs.dir", "targets/svc/svc.c.o");
	const struct hp_osym *f = hp_obj_find_sym_by_name(o, "next_id");
	const struct hp_osym *target = NULL;

	(void)state;
	for (size_t i = 0; i < f->sec->nr_relocs && !target; i++) {
		const struct hp_orel *r = &f->sec->relocs[i];

		if (r->type == R_X86_64_PC32 && r->sym->sec &&
		    r->sym->sec->primary)
			target = r->sym->sec->primary;
	}
	assert_non_null(target);
	assert_true(!strncmp(target->name, "counter.", 8));
	assert_non_null(target->sec->parent);
	assert_string_equal(target->sec->parent->name, ".bss");
	hp_obj_free(o);
}

/* A loop back to bytes 1-4 of its function's entry: refused by name. */
static void test_case_entry_loop(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;

	(void)state;
	assert_hp_err(run_case("entry_loop", &r, &p), HP_E_REFUSED);
	assert_int_equal(r->nr_refused, 1);
	assert_string_equal(r->refused[0].symbol, "count_to");
	assert_int_equal(r->refused[0].code, -HP_E_UNSUPPORTED);
	assert_string_equal(r->refused[0].message,
			    "old 'count_to'+0x7 branches into bytes 1-4 of "
			    "'count_to', which the 5-byte jump to the new "
			    "code overwrites");
	assert_null(p);
	hp_diff_report_free(r);
}

/* An LTO object holds no machine code: refused, saying why. */
static void test_lto_refused(void **state)
{
	char path[700];
	struct hp_obj *o = NULL;

	(void)state;
	snprintf(path, sizeof(path),
		 "%s/testdata/CMakeFiles/lto.objs.dir/cases/lto.c.o",
		 getenv("HP_BUILD"));
	assert_int_equal(hp_obj_open(path, "lto.c.o", &o), -HP_E_UNSUPPORTED);
	assert_null(o);
}

/*
 * gcc addresses a table it walks from index 1 as "steps - 8": before the
 * start of its section when there are no data sections. The patch refers
 * to the old program's steps, less 8.
 */
static void test_case_array_base(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;
	struct hp_binary *b = NULL;
	const struct hp_bsym *steps = NULL;
	const struct hp_module *m = NULL;
	char bin[600];
	bool found = false;

	(void)state;
	assert_hp_ok(run_case("array_base", &r, &p));
	assert_int_equal(r->nr_refused, 0);
	assert_func(r, "run_steps", HP_DIFF_CHANGED, "body changed");
	snprintf(bin, sizeof(bin), "%s/array_base-v1", getenv("HP_TD"));
	assert_hp_ok(hp_binary_open(bin, NULL, &b));
	for (size_t i = 0; i < b->nr_syms && !steps; i++)
		if (!strcmp(b->syms[i].name, "steps"))
			steps = &b->syms[i];
	assert_non_null(steps);
	m = &p->modules[0];
	for (uint32_t i = 0; i < m->nr_relocs; i++)
		found |= m->relocs[i].base == HP_RB_MODULE &&
			 m->relocs[i].value >= (int64_t)steps->value - 16 &&
			 m->relocs[i].value < (int64_t)steps->value;
	assert_true(found);
	hp_binary_free(b);
	hp_patch_free(p);
	hp_diff_report_free(r);
}

/*
 * A jump table that moved by 4 bytes in a shared .rodata is padded
 * differently before the next object: its function did not change.
 */
static void test_case_table_padding(void **state)
{
	struct hp_diff_report *r = NULL;
	struct hp_patch *p = NULL;

	(void)state;
	assert_hp_ok(run_case("table_padding", &r, &p));
	assert_int_equal(r->nr_funcs, 1);
	assert_func(r, "sw_a", HP_DIFF_CHANGED, "body changed");
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
		cmocka_unit_test(test_case_data_only),
		cmocka_unit_test(test_case_strings_only),
		cmocka_unit_test(test_case_inline_callee),
		cmocka_unit_test(test_case_extcall),
		cmocka_unit_test(test_case_too_short),
		cmocka_unit_test(test_case_odd_reloc),
		cmocka_unit_test(test_case_reloc_kinds),
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
		cmocka_unit_test(test_hidden_global),
		cmocka_unit_test(test_two_modules),
		cmocka_unit_test(test_case_clone_svc),
		cmocka_unit_test(test_case_clone_svc_cp),
		cmocka_unit_test(test_case_clone_layout),
		cmocka_unit_test(test_case_statics_moved),
		cmocka_unit_test(test_case_pretty_function),
		cmocka_unit_test(test_unrelated_new_tree),
		cmocka_unit_test(test_decode_rel),
		cmocka_unit_test(test_split_functions),
		cmocka_unit_test(test_split_data),
		cmocka_unit_test(test_case_entry_loop),
		cmocka_unit_test(test_lto_refused),
		cmocka_unit_test(test_case_array_base),
		cmocka_unit_test(test_case_table_padding),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
