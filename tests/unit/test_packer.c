/*
 * Unit tests for packer/: a full model survives write and read unchanged;
 * hostile files (every truncation, every flipped byte, corrupt fields, a
 * decompression bomb) are rejected with the right code and never crash.
 */
#include "hp_test.h"

#include "common/hp_log.h"
#include "packer/packer_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

static struct hp_seckey sk;
static struct hp_trust trust;
static char dir[] = "/tmp/hp-pack-XXXXXX";

static void quiet(enum hp_log_level l, const char *m, void *c)
{
	(void)l;
	(void)m;
	(void)c;
}

static int setup(void **state)
{
	char base[64], path[80];
	uint8_t id[HP_KEY_ID_BYTES];

	(void)state;
	hp_log_set_sink(quiet, NULL);
	if (hp_sign_init() || !mkdtemp(dir))
		return -1;
	snprintf(base, sizeof(base), "%s/k", dir);
	if (hp_sign_keygen(base, id))
		return -1;
	snprintf(path, sizeof(path), "%s.key", base);
	if (hp_sign_load_secret(path, &sk))
		return -1;
	trust.keys = calloc(1, sizeof(*trust.keys));
	snprintf(path, sizeof(path), "%s.pub", base);
	if (!trust.keys || hp_sign_load_public(path, &trust.keys[0]))
		return -1;
	trust.nr_keys = 1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[64];

	(void)state;
	hp_sign_wipe(&sk);
	hp_trust_release(&trust);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) ? -1 : 0;
}

static void fill_module(struct hp_module *m, int k)
{
	m->build_id_len = 20;
	memset(m->build_id, 0x10 + k, 20);
	m->name = strdup(k ? "libdemo.so" : "demo");
	m->text_size = 64;
	m->text = malloc(64);
	for (int i = 0; i < 64; i++)
		m->text[i] = (uint8_t)(i * 7 + k);
	m->nr_funcs = 2;
	m->funcs = calloc(2, sizeof(*m->funcs));
	m->funcs[0] = (struct hp_func){ .name = strdup("format_quote"),
					.old_addr = 0x1234,
					.old_size = 27,
					.new_off = 0,
					.new_size = 48 };
	memset(m->funcs[0].old_hash, 0xab, 16);
	m->funcs[1] = (struct hp_func){ .name = strdup("helper"),
					.flags = HP_FUNC_NEW,
					.new_off = 48,
					.new_size = 16 };
	m->nr_syms = 2;
	m->syms = calloc(2, sizeof(*m->syms));
	m->syms[0] = (struct hp_sym){ .name = strdup("getppid") };
	m->syms[1] = (struct hp_sym){ .name = strdup("memcpy"),
				      .version = strdup("GLIBC_2.14") };
	if (k) {
		m->data_size = 8;
		m->data = calloc(1, 8);
		m->bss_size = 32;
	}
	m->nr_relocs = 5;
	m->relocs = calloc(5, sizeof(*m->relocs));
	m->relocs[0] = (struct hp_reloc){ 2, HP_R_PC32, HP_RB_MODULE,
					  0, 0,		0x4000 - 4 };
	m->relocs[1] =
		(struct hp_reloc){ 8, HP_R_ABS64, HP_RB_SYMBOL, 0, 1, 0 };
	m->relocs[2] =
		(struct hp_reloc){ 16, HP_R_ABS32S, HP_RB_IMAGE, 0, 0, -8 };
	m->relocs[3] = (struct hp_reloc){ 24, HP_R_PC64, HP_RB_MODULE,
					  0,  0,	 -0x100000 };
	m->relocs[4] =
		k ? (struct hp_reloc){ 4096, HP_R_ABS64, HP_RB_IMAGE, 0, 0, 48 }
		  : (struct hp_reloc){ 32, HP_R_ABS32, HP_RB_IMAGE, 0, 0, 4 };
}

static struct hp_patch *make_patch(void)
{
	struct hp_patch *p = hp_patch_new();

	p->id = strdup("CVE-2026-1234");
	p->description = strdup("fix the quote");
	p->creator = strdup("release@build");
	p->sequence = 42;
	p->created = 1700000000;
	p->expires = 1800000000;
	p->nr_modules = 2;
	p->modules = calloc(2, sizeof(*p->modules));
	fill_module(&p->modules[0], 0);
	fill_module(&p->modules[1], 1);
	return p;
}

static void assert_same(const struct hp_patch *a, const struct hp_patch *b)
{
	assert_string_equal(a->id, b->id);
	assert_string_equal(a->description, b->description);
	assert_string_equal(a->creator, b->creator);
	assert_true(a->sequence == b->sequence && a->created == b->created &&
		    a->expires == b->expires);
	assert_int_equal(a->nr_modules, b->nr_modules);
	for (uint32_t i = 0; i < a->nr_modules; i++) {
		const struct hp_module *x = &a->modules[i], *y = &b->modules[i];

		assert_int_equal(x->build_id_len, y->build_id_len);
		assert_memory_equal(x->build_id, y->build_id, x->build_id_len);
		assert_string_equal(x->name, y->name);
		assert_int_equal(x->text_size, y->text_size);
		assert_memory_equal(x->text, y->text, x->text_size);
		assert_int_equal(x->data_size, y->data_size);
		if (x->data_size)
			assert_memory_equal(x->data, y->data, x->data_size);
		assert_int_equal(x->bss_size, y->bss_size);
		assert_int_equal(x->nr_funcs, y->nr_funcs);
		for (uint32_t j = 0; j < x->nr_funcs; j++) {
			assert_string_equal(x->funcs[j].name, y->funcs[j].name);
			assert_memory_equal(
				&x->funcs[j].old_addr, &y->funcs[j].old_addr,
				offsetof(struct hp_func, old_hash) + 16 -
					offsetof(struct hp_func, old_addr));
		}
		assert_int_equal(x->nr_relocs, y->nr_relocs);
		assert_memory_equal(x->relocs, y->relocs,
				    x->nr_relocs * sizeof(*x->relocs));
		assert_int_equal(x->nr_syms, y->nr_syms);
		for (uint32_t j = 0; j < x->nr_syms; j++) {
			assert_string_equal(x->syms[j].name, y->syms[j].name);
			if (x->syms[j].version)
				assert_string_equal(x->syms[j].version,
						    y->syms[j].version);
			else
				assert_null(y->syms[j].version);
		}
	}
}

static void test_roundtrip_signed(void **state)
{
	struct hp_patch *p = make_patch(), *q = NULL;
	struct hp_buf buf = { 0 };

	(void)state;
	assert_hp_ok(hp_pack_write(p, &sk, &buf));
	assert_hp_ok(hp_pack_read("t", buf.data, buf.len, &trust, 0, &q));
	assert_same(p, q);
	assert_true(q->info.is_signed);
	assert_memory_equal(q->info.key_id, sk.id, HP_KEY_ID_BYTES);
	assert_int_equal(q->info.file_size, buf.len);
	assert_int_equal(q->info.sig_size, HP_SIG_TRAILER_BYTES);
	hp_patch_free(q);
	hp_patch_free(p);
	hp_buf_release(&buf);
}

static void test_unsigned(void **state)
{
	struct hp_patch *p = make_patch(), *q = NULL;
	struct hp_buf buf = { 0 };

	(void)state;
	assert_hp_ok(hp_pack_write(p, NULL, &buf));
	assert_hp_err(hp_pack_read("t", buf.data, buf.len, &trust, 0, &q),
		      HP_E_UNSIGNED);
	assert_null(q);
	assert_hp_ok(hp_pack_read("t", buf.data, buf.len, NULL,
				  HP_PACK_NO_VERIFY, &q));
	assert_false(q->info.is_signed);
	assert_same(p, q);
	hp_patch_free(q);
	/* Untrusted signer: refused, except for inspection. */
	hp_buf_release(&buf);
	assert_hp_ok(hp_pack_write(p, &sk, &buf));
	{
		struct hp_trust none = { 0 };

		assert_hp_err(
			hp_pack_read("t", buf.data, buf.len, &none, 0, &q),
			HP_E_UNTRUSTED);
		assert_hp_ok(hp_pack_read("t", buf.data, buf.len, &none,
					  HP_PACK_ALLOW_UNTRUSTED, &q));
		hp_patch_free(q);
	}
	hp_patch_free(p);
	hp_buf_release(&buf);
}

static void test_truncated_and_flipped(void **state)
{
	struct hp_patch *p = make_patch(), *q = NULL;
	struct hp_buf buf = { 0 };

	(void)state;
	assert_hp_ok(hp_pack_write(p, &sk, &buf));
	for (size_t n = 0; n < buf.len; n++) {
		assert_true(hp_pack_read("t", buf.data, n, &trust, 0, &q) < 0);
		assert_null(q);
		/* Without the signature check the parser itself must hold;
		 * the file minus its trailer is a valid unsigned file. */
		if (n != buf.len - HP_SIG_TRAILER_BYTES &&
		    hp_pack_read("t", buf.data, n, NULL, HP_PACK_NO_VERIFY,
				 &q) == 0) {
			hp_patch_free(q);
			fail_msg("truncation to %zu bytes accepted", n);
		}
	}
	for (size_t i = 0; i < buf.len; i++) {
		int rc;

		buf.data[i] ^= 0x40;
		rc = hp_pack_read("t", buf.data, buf.len, &trust, 0, &q);
		buf.data[i] ^= 0x40;
		assert_true(rc == -HP_E_BADSIG || rc == -HP_E_UNTRUSTED ||
			    rc == -HP_E_UNSIGNED);
		assert_null(q);
	}
	hp_patch_free(p);
	hp_buf_release(&buf);
}

/* Re-encode an unsigned file after @edit changes its payload. */
static int read_edited(struct hp_patch *p, void (*edit)(uint8_t *pl, size_t n))
{
	struct hp_buf buf = { 0 }, out = { 0 };
	struct hp_patch *q = NULL;
	uint8_t *pl = NULL;
	size_t usize, csize, meta, got;
	int rc;

	assert_hp_ok(hp_pack_write(p, NULL, &buf));
	meta = hp_get_le32(buf.data + 16);
	csize = hp_get_le32(buf.data + 20);
	usize = hp_get_le64(buf.data + 24);
	pl = malloc(usize);
	got = ZSTD_decompress(pl, usize, buf.data + 32 + meta, csize);
	assert_int_equal(got, usize);
	edit(pl, usize);
	assert_hp_ok(
		hp_buf_reserve(&out, 32 + meta + ZSTD_compressBound(usize)));
	memcpy(out.data, buf.data, 32 + meta);
	csize = ZSTD_compress(out.data + 32 + meta, ZSTD_compressBound(usize),
			      pl, usize, 1);
	hp_put_le32(out.data + 20, (uint32_t)csize);
	out.len = 32 + meta + csize;
	rc = hp_pack_read("t", out.data, out.len, NULL, HP_PACK_NO_VERIFY, &q);
	hp_patch_free(q);
	free(pl);
	hp_buf_release(&buf);
	hp_buf_release(&out);
	return rc;
}

#define MOD0 16u /* first module record */
static void edit_nr_funcs(uint8_t *pl, size_t n)
{
	(void)n;
	hp_put_le32(pl + MOD0 + 4, 0x7fffffff);
}
static void edit_funcs_off(uint8_t *pl, size_t n)
{
	hp_put_le32(pl + MOD0 + 8, (uint32_t)n - 8);
}
static void edit_overlap(uint8_t *pl, size_t n)
{
	(void)n;
	/* text placed over the function table */
	hp_put_le32(pl + MOD0 + 32, hp_get_le32(pl + MOD0 + 8));
}
static void edit_strref(uint8_t *pl, size_t n)
{
	(void)n;
	hp_put_le32(pl + MOD0, 0xfffffff0);
}
static void edit_strtab_unterminated(uint8_t *pl, size_t n)
{
	(void)n;
	pl[hp_get_le32(pl + 4) + hp_get_le32(pl + 8) - 1] = 'x';
}
static void edit_reloc_offset(uint8_t *pl, size_t n)
{
	(void)n;
	/* a PC32 field at 62 would end past the 64-byte text */
	hp_put_le32(pl + hp_get_le32(pl + MOD0 + 16), 62);
}
static void edit_reloc_type(uint8_t *pl, size_t n)
{
	(void)n;
	pl[hp_get_le32(pl + MOD0 + 16) + 4] = 99;
}
static void edit_func_new_off(uint8_t *pl, size_t n)
{
	(void)n;
	hp_put_le32(pl + hp_get_le32(pl + MOD0 + 8) + 20, 60);
}
static void edit_reserved(uint8_t *pl, size_t n)
{
	(void)n;
	pl[MOD0 + 60] = 1;
}

static void test_hostile_payloads(void **state)
{
	struct hp_patch *p = make_patch();

	(void)state;
	assert_hp_err(read_edited(p, edit_nr_funcs), HP_E_BADFORMAT);
	assert_hp_err(read_edited(p, edit_funcs_off), HP_E_BADFORMAT);
	assert_hp_err(read_edited(p, edit_overlap), HP_E_BADFORMAT);
	assert_hp_err(read_edited(p, edit_strref), HP_E_BADFORMAT);
	assert_hp_err(read_edited(p, edit_strtab_unterminated), HP_E_BADFORMAT);
	assert_hp_err(read_edited(p, edit_reloc_offset), HP_E_BADFORMAT);
	assert_hp_err(read_edited(p, edit_reloc_type), HP_E_BADFORMAT);
	assert_hp_err(read_edited(p, edit_func_new_off), HP_E_BADFORMAT);
	assert_hp_err(read_edited(p, edit_reserved), HP_E_BADFORMAT);
	hp_patch_free(p);
}

static void test_hostile_header(void **state)
{
	struct hp_patch *p = make_patch(), *q = NULL;
	struct hp_buf buf = { 0 };
	uint8_t *f = NULL;

	(void)state;
	assert_hp_ok(hp_pack_write(p, NULL, &buf));
	f = buf.data;
	f[0] ^= 1; /* magic */
	assert_hp_err(
		hp_pack_read("t", f, buf.len, NULL, HP_PACK_NO_VERIFY, &q),
		HP_E_BADFORMAT);
	f[0] ^= 1;
	hp_put_le16(f + 8, 2); /* version */
	assert_hp_err(
		hp_pack_read("t", f, buf.len, NULL, HP_PACK_NO_VERIFY, &q),
		HP_E_BADVERSION);
	hp_put_le16(f + 8, 1);
	hp_put_le64(f + 24, 1ULL << 40); /* decompression bomb claim */
	assert_hp_err(
		hp_pack_read("t", f, buf.len, NULL, HP_PACK_NO_VERIFY, &q),
		HP_E_TOOBIG);
	hp_put_le64(f + 24, hp_get_le64(f + 24) >> 40);
	hp_put_le64(f + 24, 100000); /* disagrees with the frame */
	assert_hp_err(
		hp_pack_read("t", f, buf.len, NULL, HP_PACK_NO_VERIFY, &q),
		HP_E_BADFORMAT);
	hp_buf_release(&buf);
	assert_null(q);
	hp_patch_free(p);
}

static void test_writer_validates(void **state)
{
	struct hp_patch *p = make_patch();
	struct hp_buf buf = { 0 };

	(void)state;
	p->modules[0].relocs[0].offset = 62; /* PC32 field past the text */
	assert_hp_err(hp_pack_write(p, NULL, &buf), HP_E_BADFORMAT);
	p->modules[0].relocs[0].offset = 2;
	p->modules[0].funcs[0].old_size = 4;
	assert_hp_err(hp_pack_write(p, NULL, &buf), HP_E_BADFORMAT);
	p->modules[0].funcs[0].old_size = 27;
	p->modules[1].relocs[4].offset = 4096 + 8; /* in bss */
	assert_hp_err(hp_pack_write(p, NULL, &buf), HP_E_BADFORMAT);
	p->modules[1].relocs[4].offset = 4096;
	p->modules[1].relocs[1].sym = 2;
	assert_hp_err(hp_pack_write(p, NULL, &buf), HP_E_BADFORMAT);
	p->modules[1].relocs[1].sym = 1;
	assert_hp_ok(hp_pack_write(p, NULL, &buf));
	hp_buf_release(&buf);
	hp_patch_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_signed),
		cmocka_unit_test(test_unsigned),
		cmocka_unit_test(test_truncated_and_flipped),
		cmocka_unit_test(test_hostile_payloads),
		cmocka_unit_test(test_hostile_header),
		cmocka_unit_test(test_writer_validates),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
