/*
 * The rules of docs/LIFECYCLE.md, each named in its test, on a made-up
 * process: the module and the patch regions live in buffers behind the
 * memory seam (struct hp_mem_ops), and each step of apply and revert runs
 * as the drivers (rt_apply.c, rt_revert.c) run it, with the stop of the
 * world left out: plan, build, map (a buffer), write the jumps, commit.
 * A write can be made to fail at any step, halfway through its bytes.
 */
#include "hp_test.h"

#include "common/hp_log.h"
#include "runtime/rt_lifecycle.h"
#include "signing/signing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MOD_START 0x555555554000ULL
#define MOD_SIZE 0x40000ULL
#define FUNC_SIZE 32u
#define NEW_SIZE 16u
#define MAX_SEGS 16

/* f and g lie close together (one read and write for both jumps); h far
 * from them (a read and a write per jump, each undone on failure). */
enum { F, G, H, NR_FUNCS };
static const char *const names[NR_FUNCS] = { "f", "g", "h" };
static const uint64_t link_addr[NR_FUNCS] = { 0x1000, 0x1100, 0x30000 };

struct seg {
	hp_raddr_t start;
	uint64_t len;
	uint8_t *bytes;
	int prot; /* 0: as hpatch maps it (a module's, a region's) */
};

struct fake {
	struct hp_proc proc;
	struct hp_map maps[MAX_SEGS];
	struct seg segs[MAX_SEGS];
	size_t nr_segs;
	struct hp_rmodule mod;
	int fail_write; /* the n-th write from now fails (0: none) */
	int writes;
};

static struct fake fk;
static struct hp_module modules[8];
static struct hp_patch patches[8];
static struct hp_func funcs[8][NR_FUNCS];
static uint8_t texts[8][NR_FUNCS * NEW_SIZE];
static char ids[8][8];

static void quiet(enum hp_log_level l, const char *m, void *c)
{
	(void)l;
	(void)m;
	(void)c;
}

static struct seg *seg_of(hp_raddr_t addr, size_t len)
{
	for (size_t i = 0; i < fk.nr_segs; i++)
		if (addr >= fk.segs[i].start &&
		    addr + len <= fk.segs[i].start + fk.segs[i].len)
			return &fk.segs[i];
	return NULL;
}

static uint8_t *mod_bytes(void)
{
	return seg_of(MOD_START, MOD_SIZE)->bytes;
}

static int fake_read(const struct hp_proc *proc, hp_raddr_t addr, void *buf,
		     size_t len)
{
	const struct seg *s = seg_of(addr, len);

	(void)proc;
	if (!s)
		return -EIO;
	memcpy(buf, s->bytes + (addr - s->start), len);
	return 0;
}

/* A failing write writes half its bytes first: a short write. */
static int fake_write(const struct hp_proc *proc, hp_raddr_t addr,
		      const void *buf, size_t len)
{
	struct seg *s = seg_of(addr, len);
	const bool fail = fk.fail_write && ++fk.writes == fk.fail_write;

	(void)proc;
	if (!s)
		return -EIO;
	memcpy(s->bytes + (addr - s->start), buf, fail ? len / 2 : len);
	return fail ? -EIO : 0;
}

static const struct hp_mem_ops fake_ops = { fake_read, fake_write };

/* Keep proc.maps in address order, as /proc/PID/maps is. */
static void sync_maps(void)
{
	for (size_t i = 1; i < fk.nr_segs; i++)
		for (size_t j = i;
		     j > 0 && fk.segs[j - 1].start > fk.segs[j].start; j--) {
			const struct seg t = fk.segs[j];

			fk.segs[j] = fk.segs[j - 1];
			fk.segs[j - 1] = t;
		}
	for (size_t i = 0; i < fk.nr_segs; i++) {
		const bool module = fk.segs[i].start == MOD_START;

		fk.maps[i] = (struct hp_map){
			.start = fk.segs[i].start,
			.end = fk.segs[i].start + fk.segs[i].len,
			.prot = fk.segs[i].prot ?: PROT_READ | PROT_EXEC,
		};
		if (module)
			strcpy(fk.maps[i].path, "/srv/svc");
	}
	fk.proc.nr_maps = fk.nr_segs;
}

static void add_seg(hp_raddr_t start, uint64_t len)
{
	assert_true(fk.nr_segs < MAX_SEGS);
	fk.segs[fk.nr_segs++] = (struct seg){ start, len, calloc(1, len), 0 };
	assert_non_null(fk.segs[fk.nr_segs - 1].bytes);
	sync_maps();
}

static void fake_unmap(hp_raddr_t start)
{
	for (size_t i = 0; i < fk.nr_segs; i++)
		if (fk.segs[i].start == start) {
			free(fk.segs[i].bytes);
			fk.segs[i] = fk.segs[--fk.nr_segs];
			sync_maps();
			return;
		}
	fail_msg("no segment at 0x%llx", (unsigned long long)start);
}

/* What hp_region_map does, in a buffer: map, then one write. */
static int fake_map(struct hp_prep *pr)
{
	add_seg(pr->region, pr->region_size);
	pr->mapped = true;
	return hp_proc_write(&fk.proc, pr->region, pr->buf, pr->write_len);
}

static uint8_t *orig_bytes(int fn)
{
	static uint8_t b[NR_FUNCS][FUNC_SIZE];

	for (uint32_t i = 0; i < FUNC_SIZE; i++)
		b[fn][i] = (uint8_t)(0x50 + fn * 0x20 + i); /* never e9 */
	return b[fn];
}

static int setup(void **state)
{
	(void)state;
	hp_log_set_sink(quiet, NULL);
	memset(&fk, 0, sizeof(fk));
	fk.proc = (struct hp_proc){
		.pid = 4242, .mem_fd = -1, .maps = fk.maps, .mem = &fake_ops
	};
	add_seg(MOD_START, MOD_SIZE);
	for (int i = 0; i < NR_FUNCS; i++)
		memcpy(mod_bytes() + link_addr[i], orig_bytes(i), FUNC_SIZE);
	fk.mod = (struct hp_rmodule){ .path = "/srv/svc",
				      .bias = MOD_START,
				      .start = MOD_START,
				      .end = MOD_START + MOD_SIZE };
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < fk.nr_segs; i++)
		free(fk.segs[i].bytes);
	fk.nr_segs = 0;
	hp_log_set_sink(NULL, NULL);
	return 0;
}

/* Patch number @k (its id "pK"), of @sequence, carrying @mask's functions. */
static const struct hp_patch *patch(int k, uint64_t sequence, unsigned mask)
{
	struct hp_module *m = &modules[k];
	uint32_t n = 0;

	for (int i = 0; i < NR_FUNCS; i++) {
		uint8_t hash[HP_HASH_BYTES];

		if (!(mask & 1u << i))
			continue;
		hp_hash128(hash, orig_bytes(i), FUNC_SIZE);
		funcs[k][n] = (struct hp_func){
			.name = (char *)names[i],
			.old_addr = link_addr[i],
			.old_size = FUNC_SIZE,
			.new_off = n * NEW_SIZE,
			.new_size = NEW_SIZE,
		};
		memcpy(funcs[k][n].old_hash, hash,
		       sizeof(funcs[k][n].old_hash));
		memset(texts[k] + n * NEW_SIZE, 0xc0 + k, NEW_SIZE);
		n++;
	}
	*m = (struct hp_module){ .build_id_len = 20,
				 .name = (char *)"svc",
				 .funcs = funcs[k],
				 .nr_funcs = n,
				 .text = texts[k],
				 .text_size = n * NEW_SIZE };
	memset(m->build_id, 0xab, 20);
	patches[k] = (struct hp_patch){ .sequence = sequence,
					.modules = m,
					.nr_modules = 1 };
	snprintf(ids[k], sizeof(ids[k]), "p%d", k);
	patches[k].id = ids[k];
	return &patches[k];
}

/* Apply as rt_apply.c does, the stop left out. */
static int apply(const struct hp_patch *p, unsigned int flags)
{
	const struct hp_rt_opts opts = { .flags = flags };
	struct hp_prep pr = { .m = &p->modules[0],
			      .mod = fk.mod,
			      .pid = fk.proc.pid,
			      .stack = flags & HP_RT_STACK };
	int rc = hp_plan_prior(p, &fk.proc, &opts, &pr);

	if (!rc)
		rc = hp_prep_plan(p, &fk.proc, pr.m, &pr);
	if (!rc)
		rc = fake_map(&pr);
	if (!rc)
		rc = hp_jumps_write(&fk.proc, pr.recs, pr.nr_recs, false);
	if (!rc)
		hp_prep_supersede(&fk.proc, &pr);
	else if (pr.mapped)
		fake_unmap(pr.region);
	hp_rt_regions_free(pr.prior, pr.nr_prior);
	hp_prep_release(&pr);
	return rc;
}

/* Revert as rt_revert.c does; @referenced: a thread still points in. */
static int revert(bool referenced)
{
	struct hp_rt_region *regions = NULL;
	struct hp_revert_plan rp;
	size_t nr = 0;
	int rc = hp_rt_find_regions(&fk.proc, &regions, &nr);

	assert_hp_ok(rc);
	rc = hp_plan_revert(regions, nr, &rp);
	if (!rc)
		rc = hp_jumps_write(&fk.proc, rp.recs, rp.nr_recs, true);
	for (size_t g = 0; !rc && g < rp.nr_group; g++) {
		if (referenced)
			hp_region_retire(&fk.proc, rp.group[g]);
		else
			fake_unmap(rp.group[g]->addr);
		hp_revive_superseded(&fk.proc, rp.group[g]);
	}
	hp_revert_plan_release(&rp);
	hp_rt_regions_free(regions, nr);
	return rc;
}

/* Collect as hp_collect_retired does; @referenced: still pointed into. */
static size_t collect(bool referenced)
{
	struct hp_rt_region *regions = NULL;
	bool retired[MAX_SEGS] = { 0 };
	size_t nr = 0, n = 0;

	assert_hp_ok(hp_rt_find_regions(&fk.proc, &regions, &nr));
	hp_plan_retired(regions, nr, retired);
	for (size_t i = 0; i < nr; i++)
		if (retired[i] && !referenced) {
			fake_unmap(regions[i].addr);
			n++;
		}
	hp_rt_regions_free(regions, nr);
	return n;
}

/* Where @fn's entry jumps now: 0 when its original bytes are there. */
static hp_raddr_t target(int fn)
{
	const uint8_t *b = mod_bytes() + link_addr[fn];
	int32_t rel;

	if (!memcmp(b, orig_bytes(fn), HP_X86_JMP_REL32_SIZE))
		return 0;
	assert_int_equal(b[0], HP_X86_JMP_REL32);
	memcpy(&rel, b + 1, sizeof(rel));
	return MOD_START + link_addr[fn] + HP_X86_JMP_REL32_SIZE + rel;
}

/* The region of patch @k: its state for `hpatch status` ("unmapped" when
 * gone), and where its code for @fn lies (0: not carried). */
static const char *state(int k, int fn, hp_raddr_t *code)
{
	static char st[64];
	struct hp_rt_region *regions = NULL;
	size_t nr = 0;
	char id[8];

	snprintf(id, sizeof(id), "p%d", k);
	snprintf(st, sizeof(st), "unmapped");
	if (code)
		*code = 0;
	assert_hp_ok(hp_rt_find_regions(&fk.proc, &regions, &nr));
	for (size_t i = 0; i < nr; i++) {
		if (strcmp(regions[i].hdr.patch_id, id))
			continue;
		snprintf(st, sizeof(st), "%s", hp_region_state(&regions[i]));
		for (uint32_t j = 0; code && j < regions[i].hdr.nr_funcs; j++)
			if (regions[i].funcs[j].kind == HP_RT_REC_REDIRECT &&
			    !strcmp(regions[i].funcs[j].name, names[fn]))
				*code = regions[i].funcs[j].new_addr;
	}
	hp_rt_regions_free(regions, nr);
	return st;
}

static hp_raddr_t code_of(int k, int fn)
{
	hp_raddr_t code = 0;

	state(k, fn, &code);
	assert_true(code != 0);
	return code;
}

#define BIT(fn) (1u << (fn))

/* Rule: replace (default). The newer patch redirects what it carries and
 * puts back the original bytes of what it leaves out; the older one stays
 * mapped, superseded. */
static void test_rule_replace(void **s)
{
	(void)s;
	assert_hp_ok(apply(patch(1, 1, BIT(F) | BIT(G)), 0));
	assert_int_equal(target(F), code_of(1, F));
	assert_int_equal(target(G), code_of(1, G));
	assert_string_equal(state(1, F, NULL), "active");
	assert_hp_ok(apply(patch(2, 2, BIT(F)), 0));
	assert_int_equal(target(F), code_of(2, F));
	assert_int_equal(target(G), 0); /* restored: the fixed build's */
	assert_string_equal(state(2, F, NULL), "active");
	assert_string_equal(state(1, F, NULL), "superseded");
}

/* Rule: a region is found by its header, at the start of an anonymous
 * mapping read+execute (as mapped now: header and code together) or
 * read-only (as earlier hpatch versions left it); never in memory the
 * process can write (its heap holding a copy of the bytes). */
static void test_rule_found_by_header(void **s)
{
	struct seg *region = NULL;

	(void)s;
	assert_hp_ok(apply(patch(1, 1, BIT(F)), 0));
	for (size_t i = 0; i < fk.nr_segs; i++)
		if (fk.segs[i].start != MOD_START)
			region = &fk.segs[i];
	assert_non_null(region);
	assert_string_equal(state(1, F, NULL), "active");
	region->prot = PROT_READ | PROT_WRITE;
	sync_maps();
	assert_string_equal(state(1, F, NULL), "unmapped");
	region->prot = PROT_READ;
	sync_maps();
	assert_string_equal(state(1, F, NULL), "active");
	assert_hp_ok(revert(false));
	assert_int_equal(target(F), 0);
}

/* Rule: stack (--stack). The newer patch redirects what it carries; every
 * other function keeps the earlier patch's redirection. */
static void test_rule_stack(void **s)
{
	(void)s;
	assert_hp_ok(apply(patch(1, 1, BIT(F) | BIT(G)), 0));
	assert_hp_ok(apply(patch(2, 2, BIT(F)), HP_RT_STACK));
	assert_int_equal(target(F), code_of(2, F));
	assert_int_equal(target(G), code_of(1, G));
	assert_string_equal(state(1, F, NULL),
			    "partly replaced by a newer patch");
	assert_string_equal(state(2, F, NULL), "active");
}

/* Rule: revert after replace goes back exactly one step: the earlier
 * patch is in effect again (active), then the original program. */
static void test_rule_revert_after_replace(void **s)
{
	(void)s;
	assert_hp_ok(apply(patch(1, 1, BIT(F) | BIT(G)), 0));
	assert_hp_ok(apply(patch(2, 2, BIT(F) | BIT(H)), 0));
	assert_int_equal(target(G), 0);
	assert_hp_ok(revert(false));
	assert_string_equal(state(2, F, NULL), "unmapped");
	assert_string_equal(state(1, F, NULL), "active"); /* flag cleared */
	assert_int_equal(target(F), code_of(1, F));
	assert_int_equal(target(G), code_of(1, G));
	assert_int_equal(target(H), 0);
	assert_hp_ok(revert(false));
	for (int i = 0; i < NR_FUNCS; i++)
		assert_int_equal(target(i), 0);
	assert_hp_err(revert(false), HP_E_NOTAPPLIED);
}

/* Rule: revert after stack goes back one step: the earlier patch's
 * redirection of the function the newer one carried comes back. */
static void test_rule_revert_after_stack(void **s)
{
	(void)s;
	assert_hp_ok(apply(patch(1, 1, BIT(F) | BIT(G)), 0));
	assert_hp_ok(apply(patch(2, 2, BIT(F) | BIT(H)), HP_RT_STACK));
	assert_hp_ok(revert(false));
	assert_int_equal(target(F), code_of(1, F));
	assert_int_equal(target(G), code_of(1, G));
	assert_int_equal(target(H), 0);
	assert_string_equal(state(1, F, NULL), "active");
	assert_hp_ok(revert(false));
	assert_int_equal(target(F), 0);
	assert_int_equal(target(G), 0);
}

/* Rule: retire and collect. A reverted patch whose code a thread still
 * references stays mapped, retired, and a later hpatch unmaps it once
 * unreferenced; a superseded one is never collected. */
static void test_rule_retire_and_collect(void **s)
{
	(void)s;
	assert_hp_ok(apply(patch(1, 1, BIT(F)), 0));
	assert_hp_ok(apply(patch(2, 2, BIT(F)), 0));
	assert_int_equal(collect(false), 0); /* p1 superseded: kept */
	assert_hp_ok(revert(true));
	assert_string_equal(state(2, F, NULL), "retired");
	assert_string_equal(state(1, F, NULL), "active");
	assert_int_equal(target(F), code_of(1, F));
	assert_int_equal(collect(true), 0); /* still referenced: kept */
	assert_string_equal(state(2, F, NULL), "retired");
	assert_int_equal(collect(false), 1);
	assert_string_equal(state(2, F, NULL), "unmapped");
	assert_string_equal(state(1, F, NULL), "active");
}

/* Rules: same patch again, older sequence, and crossed sequences of
 * replace, stack and revert, each revert one step back. */
static void test_rule_crossed_sequences(void **s)
{
	(void)s;
	assert_hp_ok(apply(patch(1, 10, BIT(F) | BIT(G)), 0));
	assert_hp_err(apply(patch(1, 10, BIT(F) | BIT(G)), 0), HP_E_APPLIED);
	assert_hp_err(apply(patch(2, 5, BIT(F)), 0), HP_E_DOWNGRADE);
	assert_hp_ok(apply(patch(3, 20, BIT(G) | BIT(H)), HP_RT_STACK));
	assert_hp_ok(apply(patch(4, 30, BIT(F)), 0));
	/* Replace over a stack: g and h, both patches', are restored. */
	assert_int_equal(target(F), code_of(4, F));
	assert_int_equal(target(G), 0);
	assert_int_equal(target(H), 0);
	/* An older patch on purpose: the newest by order, reverted first. */
	assert_hp_ok(apply(patch(2, 5, BIT(H)),
			   HP_RT_ALLOW_DOWNGRADE | HP_RT_STACK));
	assert_int_equal(target(H), code_of(2, H));
	assert_hp_ok(revert(false));
	assert_string_equal(state(2, F, NULL), "unmapped");
	assert_int_equal(target(H), 0);
	assert_hp_ok(revert(false)); /* p4: back to p1 under p3 */
	assert_int_equal(target(F), code_of(1, F));
	assert_int_equal(target(G), code_of(3, G));
	assert_int_equal(target(H), code_of(3, H));
	assert_hp_ok(revert(false)); /* p3 */
	assert_int_equal(target(G), code_of(1, G));
	assert_int_equal(target(H), 0);
	assert_hp_ok(apply(patch(4, 30, BIT(F)), 0)); /* again, after all */
	assert_int_equal(target(G), 0);
	assert_hp_ok(revert(false));
	assert_int_equal(target(G), code_of(1, G));
}

/*
 * Rule: older sequence than any patch applied on this host since boot
 * (the state directory): refused, even once reverted, unless allowed.
 */
static void test_rule_host_rollback(void **s)
{
	char dir[] = "/tmp/hp-life-XXXXXX", path[128], hex[41];
	struct hp_rt_opts opts = { 0 };
	struct hp_prep pr = { .m = &patch(1, 7, BIT(F))->modules[0],
			      .mod = fk.mod };

	(void)s;
	assert_non_null(mkdtemp(dir));
	hp_hex(hex, pr.m->build_id, pr.m->build_id_len);
	opts.state_dir = dir;
	assert_hp_ok(hp_plan_rollback(&patches[1], 1, &pr, &opts));
	assert_int_equal(pr.recorded, 0); /* nothing yet: the apply records */
	assert_hp_ok(hp_rt_state_record(dir, hex, 7));
	assert_hp_ok(hp_plan_rollback(&patches[1], 1, &pr, &opts));
	assert_int_equal(pr.recorded, 7); /* the apply records nothing */
	patches[1].sequence = 6;
	assert_hp_err(hp_plan_rollback(&patches[1], 1, &pr, &opts),
		      HP_E_DOWNGRADE);
	opts.flags = HP_RT_ALLOW_DOWNGRADE;
	assert_hp_ok(hp_plan_rollback(&patches[1], 1, &pr, &opts));
	snprintf(path, sizeof(path), "%s/%s.seq", dir, hex);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

/* Rule: each record keeps the bytes it displaced, so a chain of patches
 * on one function (replaced twice, or stacked twice) still knows the
 * original bytes: to check the build, and to restore them. */
static void test_rule_chain_of_three(void **s)
{
	(void)s;
	assert_hp_ok(apply(patch(1, 1, BIT(F)), 0));
	assert_hp_ok(apply(patch(2, 2, BIT(F)), 0));
	assert_hp_ok(apply(patch(3, 3, BIT(F)), 0));
	assert_int_equal(target(F), code_of(3, F));
	assert_hp_ok(apply(patch(4, 4, BIT(G)), HP_RT_STACK));
	assert_hp_ok(apply(patch(5, 5, BIT(G)), HP_RT_STACK));
	assert_hp_ok(apply(patch(6, 6, BIT(H)), 0)); /* restores f and g */
	assert_int_equal(target(F), 0);
	assert_int_equal(target(G), 0);
	assert_int_equal(target(H), code_of(6, H));
	for (int k = 6; k >= 1; k--)
		assert_hp_ok(revert(false));
	for (int i = 0; i < NR_FUNCS; i++)
		assert_int_equal(target(i), 0);
}

/* Is [start, start + size) one of @r's ranges, named @name, @ip_only? */
static bool has_range(const struct hp_busy_range *r, size_t nr,
		      hp_raddr_t start, uint64_t size, const char *name,
		      bool ip_only)
{
	for (size_t i = 0; i < nr; i++)
		if (r[i].start == start && r[i].end == start + size &&
		    !strcmp(r[i].name, name) && r[i].ip_only == ip_only)
			return true;
	return false;
}

/*
 * Rule: consistency. A switch waits until no thread runs, or would return
 * into, a function being switched: its old body, or the code of the
 * earlier patch running in its place (a function restored too). A revert
 * waits for the new code, and only the instruction pointer matters on the
 * jump sites it removes.
 */
static void test_rule_consistency(void **s)
{
	const struct hp_patch *p2 = patch(2, 2, BIT(F));
	const struct hp_rt_opts opts = { 0 };
	struct hp_prep pr = { .m = &p2->modules[0], .mod = fk.mod };
	struct hp_rt_region *regions = NULL;
	struct hp_revert_plan rp;
	size_t nr = 0;

	(void)s;
	assert_hp_ok(apply(patch(1, 1, BIT(F) | BIT(G)), 0));
	assert_hp_ok(hp_plan_prior(p2, &fk.proc, &opts, &pr));
	assert_hp_ok(hp_prep_plan(p2, &fk.proc, pr.m, &pr));
	assert_int_equal(pr.nr_ranges, 3);
	assert_true(has_range(pr.ranges, pr.nr_ranges, MOD_START + link_addr[F],
			      FUNC_SIZE, "f", false));
	assert_true(has_range(pr.ranges, pr.nr_ranges, code_of(1, F), NEW_SIZE,
			      "f", false));
	assert_true(has_range(pr.ranges, pr.nr_ranges, code_of(1, G), NEW_SIZE,
			      "g", false));
	hp_rt_regions_free(pr.prior, pr.nr_prior);
	hp_prep_release(&pr);

	assert_hp_ok(hp_rt_find_regions(&fk.proc, &regions, &nr));
	assert_hp_ok(hp_plan_revert(regions, nr, &rp));
	assert_int_equal(rp.nr_ranges, 4);
	for (int i = F; i <= G; i++) {
		assert_true(has_range(rp.ranges, rp.nr_ranges, code_of(1, i),
				      NEW_SIZE, names[i], false));
		assert_true(has_range(rp.ranges, rp.nr_ranges,
				      MOD_START + link_addr[i],
				      HP_X86_JMP_REL32_SIZE, names[i], true));
	}
	hp_revert_plan_release(&rp);
	hp_rt_regions_free(regions, nr);
}

/* Everything a failed step must leave as it was. */
struct snapshot {
	uint8_t text[MOD_SIZE];
	char states[8][64];
};

static void snap(struct snapshot *sn)
{
	memcpy(sn->text, mod_bytes(), MOD_SIZE);
	for (int k = 0; k < 8; k++)
		snprintf(sn->states[k], sizeof(sn->states[k]), "%s",
			 state(k, F, NULL));
}

static void assert_unchanged(const struct snapshot *sn)
{
	assert_memory_equal(sn->text, mod_bytes(), MOD_SIZE);
	for (int k = 0; k < 8; k++)
		assert_string_equal(sn->states[k], state(k, F, NULL));
}

/* A fresh process with p1 (f, g, h) applied, and p2 (f, h) over it
 * when @replaced. */
static void restart(bool replaced)
{
	teardown(NULL);
	setup(NULL);
	assert_hp_ok(apply(patch(1, 1, BIT(F) | BIT(G) | BIT(H)), 0));
	if (replaced)
		assert_hp_ok(apply(patch(2, 2, BIT(F) | BIT(H)), 0));
}

/* The @n-th write from now fails. */
static void fail_write(int n)
{
	fk.writes = 0;
	fk.fail_write = n;
}

/* Did the last step fail a write (else every write had passed)? */
static bool write_failed(void)
{
	const bool failed = fk.writes >= fk.fail_write;

	fk.fail_write = 0;
	return failed;
}

/*
 * Run @step on a fresh process (p2 over p1 when @replaced) with its n-th
 * write failing, for n = 1, 2, ... until no write fails. A step that
 * fails leaves everything as before; one that succeeds despite a failed
 * write (after the switch: a flag) is checked by @check.
 */
static void each_failed_write(bool replaced, int (*step)(void),
			      void (*check)(void))
{
	static struct snapshot before;
	bool failed = true;

	for (int n = 1; failed; n++) {
		int rc;

		assert_true(n < 64);
		restart(replaced);
		snap(&before);
		fail_write(n);
		rc = step();
		failed = write_failed();
		if (rc)
			assert_unchanged(&before);
		else
			check();
	}
}

static int apply_p2(void)
{
	return apply(patch(2, 2, BIT(F) | BIT(H)), 0);
}

static void check_p2_revertable(void)
{
	static struct snapshot after;

	assert_int_equal(target(F), code_of(2, F));
	assert_int_equal(target(G), 0);
	assert_hp_ok(revert(false));
	snap(&after);
	restart(false);
	assert_memory_equal(after.text, mod_bytes(), MOD_SIZE);
}

/*
 * Rule: any failure undoes exactly what was done. A write of an apply
 * fails (half written) at each step in turn: filling the region, any
 * jump, any undo of one. Then the program and every patch are as before;
 * a failure after the switch (a flag) leaves the new patch in effect and
 * revertable.
 */
static void test_rule_failed_write_in_apply(void **s)
{
	(void)s;
	each_failed_write(false, apply_p2, check_p2_revertable);
}

static int revert_referenced(void)
{
	return revert(true);
}

static void check_p1_back(void)
{
	assert_int_equal(target(F), code_of(1, F));
	assert_int_equal(target(G), code_of(1, G));
	assert_int_equal(target(H), code_of(1, H));
	assert_string_equal(state(1, F, NULL), "active");
}

/* The same for a revert: a failed undo leaves the patch fully in effect;
 * a failure after the switch (the retired flag) the earlier one. */
static void test_rule_failed_write_in_revert(void **s)
{
	(void)s;
	each_failed_write(true, revert_referenced, check_p1_back);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rule_replace, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rule_found_by_header,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_rule_stack, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rule_revert_after_replace,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_rule_revert_after_stack,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_rule_retire_and_collect,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_rule_crossed_sequences,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_rule_host_rollback, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rule_chain_of_three, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rule_consistency, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rule_failed_write_in_apply,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_rule_failed_write_in_revert, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
