/*
 * Unit tests for the differ's build passes (diff_build.c, diff_emit.c) on
 * the real objects of testdata/: pass 1 decides once, per relocation, how
 * patch code reaches its target (directly, through a veneer, through a GOT
 * slot), and pass 3 emits exactly that: a call to another library goes to its veneer,
 * a GOT load to its slot, initial-exec to an image slot of constants.
 */
#include "hp_test.h"

#include "differ/diff_build.c"

#include <stdio.h>

struct built {
	struct hp_pair pair;
	struct hp_binary *bin;
	struct hp_diff_report *r;
	struct hp_module m;
	struct builder b;
};

static void quiet(enum hp_log_level l, const char *m, void *c)
{
	(void)l;
	(void)m;
	(void)c;
}

/* Passes 1-3 of case @name's single object @obj, kept for inspection. */
static void build(struct built *x, const char *name, const char *obj)
{
	const char *b = getenv("HP_BUILD");
	char o[600], n[600], bin[600];
	static const struct hp_diff_opts opts = { .patch_id = "t" };

	assert_non_null(b);
	hp_log_set_sink(quiet, NULL);
	elf_version(EV_CURRENT);
	snprintf(o, sizeof(o), "%s/testdata/CMakeFiles/%s-v1.objs.dir/%s", b,
		 name, obj);
	snprintf(n, sizeof(n), "%s/testdata/CMakeFiles/%s-v2.objs.dir/%s", b,
		 name, obj);
	snprintf(bin, sizeof(bin), "%s/testdata/%s-v1", b, name);
	memset(x, 0, sizeof(*x));
	x->r = calloc(1, sizeof(*x->r));
	assert_non_null(x->r);
	assert_hp_ok(hp_obj_open(o, obj, &x->pair.old_obj));
	assert_hp_ok(hp_obj_open(n, obj, &x->pair.new_obj));
	assert_hp_ok(hp_binary_open(bin, NULL, &x->bin));
	assert_hp_ok(hp_report_add_module(x->r, bin, "00"));
	assert_hp_ok(hp_correlate_pair(&x->pair, x->r));
	x->b = (struct builder){ .opts = &opts,
				 .bin = x->bin,
				 .r = x->r,
				 .pairs = &x->pair,
				 .nr_pairs = 1,
				 .m = &x->m };
	assert_hp_ok(seed(&x->b));
	assert_hp_ok(close_all(&x->b));
	assert_hp_ok(layout(&x->b));
	assert_hp_ok(place_slots(&x->b));
	assert_hp_ok(finish_layout(&x->b));
	assert_hp_ok(collect_funcs(&x->b));
	assert_hp_ok(hp_build_emit(&x->b));
	assert_int_equal(x->b.nr_errors, 0);
}

static void release(struct built *x)
{
	builder_release(&x->b);
	hp_module_release(&x->m);
	hp_binary_free(x->bin);
	hp_obj_free(x->pair.old_obj);
	hp_obj_free(x->pair.new_obj);
	hp_diff_report_free(x->r);
}

/* Every relocation of the included code has exactly one plan. */
static void assert_one_plan_each(const struct built *x)
{
	size_t n = 0;

	for (size_t i = 0; i < x->b.nr_secs; i++) {
		assert_int_equal(x->b.plan_first[i], n);
		n += x->b.secs[i]->nr_relocs;
	}
	assert_int_equal(x->b.nr_plans, n);
}

/* The emitted relocation at image offset @place. */
static const struct hp_reloc *reloc_at(const struct built *x, uint32_t place)
{
	for (uint32_t i = 0; i < x->m.nr_relocs; i++)
		if (x->m.relocs[i].offset == place)
			return &x->m.relocs[i];
	return NULL;
}

/* A relocation of the included code, with its plan. */
struct planned {
	const struct hp_osec *s;
	const struct hp_orel *r;
	const struct plan *p;
	const struct hp_reloc *emitted; /* at the same image offset */
};

/* All of them, in @out (up to @cap). Return: how many. */
static size_t list_plans(const struct built *x, struct planned *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < x->b.nr_secs; i++) {
		const struct hp_osec *s = x->b.secs[i];

		for (size_t j = 0; j < s->nr_relocs && n < cap; j++, n++)
			out[n] = (struct planned){
				s, &s->relocs[j],
				&x->b.plans[x->b.plan_first[i] + j],
				reloc_at(x,
					 s->image_off +
						 (uint32_t)s->relocs[j].offset)
			};
	}
	return n;
}

#define NR_PLANNED 64

/* Build case @name's @obj; its relocations and their plans into @v. */
static size_t build_plans(struct built *x, const char *name, const char *obj,
			  struct planned v[NR_PLANNED])
{
	build(x, name, obj);
	assert_one_plan_each(x);
	return list_plans(x, v, NR_PLANNED);
}

/*
 * Calls to another library: getppid, which v1 never called (an image slot
 * bound by name), and printf (the program's own GOT slot), each through a
 * veneer; main calls both, having inlined the changed parent_info.
 */
static void test_veneer_decided_once(void **state)
{
	struct built x;
	struct planned v[NR_PLANNED];
	size_t n;
	int nr_veneers = 0;

	(void)state;
	n = build_plans(&x, "extcall", "cases/extcall.c.o", v);
	for (size_t i = 0; i < n; i++) {
		const struct hp_orel *r = v[i].r;
		const struct plan *p = v[i].p;
		const struct hp_reloc *e = v[i].emitted;
		const struct slot *sl = NULL;

		assert_non_null(e);
		if (r->sym->sec) { /* .LC0 */
			assert_int_equal(p->kind, PLAN_DIRECT);
			continue;
		}
		nr_veneers++;
		assert_int_equal(p->kind, PLAN_VENEER);
		sl = &x.b.slots[p->slot];
		assert_true(sl->need_veneer);
		if (!strcmp(r->sym->name, "getppid"))
			assert_true(sl->need_slot);
		else
			assert_int_not_equal(sl->module_got, 0);
		/* emit obeyed: the call goes to the veneer */
		assert_int_equal(e->base, HP_RB_IMAGE);
		assert_int_equal(e->value, (int64_t)sl->veneer_off + r->addend);
	}
	assert_int_equal(nr_veneers, 3);
	release(&x);
}

/* GOTPCREL, GOTPCRELX, REX_GOTPCRELX: a GOT slot each, as decided. */
static void test_got_decided_once(void **state)
{
	struct built x;
	struct planned v[NR_PLANNED];
	size_t n;
	int nr_got = 0;

	(void)state;
	n = build_plans(&x, "reloc_kinds", "cases/reloc_kinds.c.o", v);
	for (size_t i = 0; i < n; i++) {
		const struct hp_orel *r = v[i].r;
		const struct plan *p = v[i].p;
		const struct hp_reloc *e = v[i].emitted;
		const struct slot *sl = NULL;

		if (!is_got_type(r->type)) {
			assert_int_equal(p->kind, PLAN_DIRECT);
			continue;
		}
		nr_got++;
		assert_int_equal(p->kind, PLAN_GOT_SLOT);
		sl = &x.b.slots[p->slot];
		assert_false(sl->need_veneer);
		assert_non_null(e);
		/* the program's own slot, or the image's */
		if (sl->module_got)
			assert_int_equal(e->base, HP_RB_MODULE);
		else
			assert_int_equal(e->value,
					 (int64_t)sl->off + r->addend);
	}
	assert_int_equal(nr_got, 3);
	release(&x);
}

/* Initial-exec in an executable: an image slot holding the offset. */
static void test_tls_slot_decided_once(void **state)
{
	struct built x;
	struct planned v[NR_PLANNED];
	size_t n;
	int nr_tls = 0;

	(void)state;
	n = build_plans(&x, "tls", "targets/tls/tls.c.o", v);
	for (size_t i = 0; i < n; i++) {
		const struct hp_orel *r = v[i].r;
		const struct plan *p = v[i].p;
		const struct hp_reloc *e = v[i].emitted;
		const struct slot *sl = NULL;

		if (r->type != R_X86_64_GOTTPOFF)
			continue;
		nr_tls++;
		assert_int_equal(p->kind, PLAN_TLS_SLOT);
		sl = &x.b.slots[p->slot];
		assert_int_equal(sl->module_got, 0);
		assert_true(sl->need_slot);
		assert_non_null(e);
		assert_int_equal(e->value, (int64_t)sl->off + r->addend);
	}
	assert_true(nr_tls > 0);
	release(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_veneer_decided_once),
		cmocka_unit_test(test_got_decided_once),
		cmocka_unit_test(test_tls_slot_decided_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
