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
	memset(m->funcs[0].old_hash, 0xab, HP_OLD_HASH_BYTES);
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
		assert_int_equal(x->eh_off, y->eh_off);
		assert_int_equal(x->eh_size, y->eh_size);
		assert_int_equal(x->nr_funcs, y->nr_funcs);
		for (uint32_t j = 0; j < x->nr_funcs; j++) {
			assert_string_equal(x->funcs[j].name, y->funcs[j].name);
			assert_memory_equal(
				&x->funcs[j].old_addr, &y->funcs[j].old_addr,
				offsetof(struct hp_func, old_hash) +
					HP_OLD_HASH_BYTES -
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

/*
 * A one-module payload encoded here from docs/FORMAT.md, independently of
 * the writer, with the fields a hostile file would bend as parameters.
 */
struct pl_spec {
	uint64_t nr_funcs;
	uint64_t func_name; /* string reference */
	bool unterminated;  /* string table's last byte not NUL */
	int64_t reloc_off;
	uint8_t reloc_tb; /* type | base << 4 */
	uint64_t new_off;
	bool overlong; /* relocation count as 0x81 0x00 */
	bool trailing; /* one byte after the data */
};

static const struct pl_spec good_spec = {
	.nr_funcs = 1,
	.func_name = 5,
	.reloc_off = 2,
	.reloc_tb = HP_R_PC32 | HP_RB_MODULE << HP_RELOC_TYPE_BITS,
};

static void encode_spec(const struct pl_spec *v, struct hp_buf *pl)
{
	static const uint8_t text[16], hash[HP_OLD_HASH_BYTES] = { 1 };
	const char strtab[] = "demo\0f"; /* 7 bytes with the final NUL */

	assert_hp_ok(hp_put_uvarint(pl, 1)); /* modules */
	assert_hp_ok(hp_put_uvarint(pl, sizeof(strtab)));
	assert_hp_ok(hp_buf_append(pl, strtab, sizeof(strtab)));
	if (v->unterminated)
		pl->data[pl->len - 1] = 'x';
	assert_hp_ok(hp_put_uvarint(pl, 0)); /* module name "demo" */
	assert_hp_ok(hp_put_uvarint(pl, v->nr_funcs));
	if (v->overlong)
		assert_hp_ok(hp_buf_append(pl, "\x81\x00", 2));
	else
		assert_hp_ok(hp_put_uvarint(pl, 1)); /* relocations */
	for (int i = 0; i < 4; i++) /* syms, text 16, data, bss */
		assert_hp_ok(hp_put_uvarint(pl, i == 1 ? 16 : 0));
	assert_hp_ok(hp_put_uvarint(pl, v->func_name));
	assert_hp_ok(hp_put_uvarint(pl, 0));	  /* flags */
	assert_hp_ok(hp_put_uvarint(pl, 0x1234)); /* old_addr */
	assert_hp_ok(hp_put_uvarint(pl, 8));	  /* old_size */
	assert_hp_ok(hp_put_uvarint(pl, v->new_off));
	assert_hp_ok(hp_put_uvarint(pl, 8)); /* new_size */
	assert_hp_ok(hp_buf_append(pl, hash, sizeof(hash)));
	assert_hp_ok(hp_put_svarint(pl, v->reloc_off));
	assert_hp_ok(hp_buf_append(pl, &v->reloc_tb, 1));
	assert_hp_ok(hp_put_svarint(pl, -4)); /* value */
	assert_hp_ok(hp_buf_append(pl, text, sizeof(text)));
	if (v->trailing)
		assert_hp_ok(hp_buf_append(pl, "", 1));
}

/* Read an unsigned file carrying the payload of @v. */
static int read_spec(const struct pl_spec *v)
{
	struct hp_patch *p = make_patch(), *q = NULL;
	struct hp_buf buf = { 0 }, pl = { 0 }, out = { 0 };
	size_t meta, csize;
	int rc;

	p->nr_modules = 1; /* the metadata of a one-module patch */
	assert_hp_ok(hp_pack_write(p, NULL, &buf));
	p->nr_modules = 2;
	meta = hp_get_le32(buf.data + 12);
	encode_spec(v, &pl);
	assert_hp_ok(hp_buf_reserve(&out, HP_HEADER_BYTES + meta +
						  ZSTD_compressBound(pl.len)));
	memcpy(out.data, buf.data, HP_HEADER_BYTES + meta);
	csize = ZSTD_compress(out.data + HP_HEADER_BYTES + meta,
			      ZSTD_compressBound(pl.len), pl.data, pl.len, 1);
	hp_put_le32(out.data + 16, (uint32_t)csize);
	hp_put_le32(out.data + 20, (uint32_t)pl.len);
	out.len = HP_HEADER_BYTES + meta + csize;
	rc = hp_pack_read("t", out.data, out.len, NULL, HP_PACK_NO_VERIFY, &q);
	if (!rc) {
		assert_string_equal(q->modules[0].funcs[0].name, "f");
		assert_int_equal(q->modules[0].relocs[0].offset,
				 (uint32_t)v->reloc_off);
		assert_true(q->modules[0].relocs[0].value == -4);
	}
	hp_patch_free(q);
	hp_patch_free(p);
	hp_buf_release(&buf);
	hp_buf_release(&pl);
	hp_buf_release(&out);
	return rc;
}

static void test_hostile_payloads(void **state)
{
	struct pl_spec v = good_spec;

	(void)state;
	assert_hp_ok(read_spec(&v)); /* the encoding here is right */
	v.nr_funcs = 0x7fffffff;     /* beyond the limit */
	assert_hp_err(read_spec(&v), HP_E_BADFORMAT);
	v.nr_funcs = 1000; /* within it, but cannot fit */
	assert_hp_err(read_spec(&v), HP_E_BADFORMAT);
	v = good_spec;
	v.func_name = 0xfffffff0;
	assert_hp_err(read_spec(&v), HP_E_BADFORMAT);
	v.func_name = 4; /* the NUL ending "demo": empty */
	assert_hp_err(read_spec(&v), HP_E_BADFORMAT);
	v = good_spec;
	v.unterminated = true;
	assert_hp_err(read_spec(&v), HP_E_BADFORMAT);
	v = good_spec;
	v.reloc_off = 14; /* a PC32 field ending past the 16-byte text */
	assert_hp_err(read_spec(&v), HP_E_BADFORMAT);
	v.reloc_off = -1;
	assert_hp_err(read_spec(&v), HP_E_BADFORMAT);
	v.reloc_off = INT64_MAX - 2; /* found by the fuzzer: no overflow */
	assert_hp_err(read_spec(&v), HP_E_BADFORMAT);
	v = good_spec;
	v.reloc_tb = 9;
	assert_hp_err(read_spec(&v), HP_E_BADFORMAT);
	v.reloc_tb = HP_R_PC32 | 7 << HP_RELOC_TYPE_BITS;
	assert_hp_err(read_spec(&v), HP_E_BADFORMAT);
	v = good_spec;
	v.new_off = 12; /* code past the text */
	assert_hp_err(read_spec(&v), HP_E_BADFORMAT);
	v = good_spec;
	v.overlong = true;
	assert_hp_err(read_spec(&v), HP_E_BADFORMAT);
	v = good_spec;
	v.trailing = true;
	assert_hp_err(read_spec(&v), HP_E_BADFORMAT);
}

static void test_varints(void **state)
{
	static const uint64_t u[] = { 0,     1,	    127,	128,
				      16383, 16384, UINT32_MAX, UINT64_MAX };
	static const int64_t sv[] = { 0, -1, 1, -64, 64, INT64_MIN, INT64_MAX };
	struct hp_buf b = { 0 };
	struct hp_cursor c = { .name = "t" };

	(void)state;
	for (size_t i = 0; i < HP_ARRAY_SIZE(u); i++)
		assert_hp_ok(hp_put_uvarint(&b, u[i]));
	for (size_t i = 0; i < HP_ARRAY_SIZE(sv); i++)
		assert_hp_ok(hp_put_svarint(&b, sv[i]));
	c.p = b.data;
	c.len = b.len;
	for (size_t i = 0; i < HP_ARRAY_SIZE(u); i++) {
		uint64_t v;

		assert_hp_ok(hp_get_uvarint(&c, UINT64_MAX, "u", &v));
		assert_true(v == u[i]);
	}
	for (size_t i = 0; i < HP_ARRAY_SIZE(sv); i++) {
		int64_t v;

		assert_hp_ok(hp_get_svarint(&c, "s", &v));
		assert_true(v == sv[i]);
	}
	assert_int_equal(c.pos, b.len);
	{
		/* 11 bytes, a tenth byte above 1, a bound, a cut */
		static const uint8_t bad[][11] = {
			{ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
			  0x81, 0x00 },
			{ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
			  0x02 },
			{ 0x80, 0x01 },
			{ 0x80 },
		};
		static const size_t lens[] = { 11, 10, 2, 1 };

		for (size_t i = 0; i < HP_ARRAY_SIZE(bad); i++) {
			struct hp_cursor k = { "t", bad[i], lens[i], 0 };
			uint64_t v;

			assert_hp_err(hp_get_uvarint(&k, 100, "x", &v),
				      HP_E_BADFORMAT);
		}
	}
	hp_buf_release(&b);
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
	hp_put_le16(f + 8, HP_FORMAT_VERSION + 1);
	assert_hp_err(
		hp_pack_read("t", f, buf.len, NULL, HP_PACK_NO_VERIFY, &q),
		HP_E_BADVERSION);
	hp_put_le16(f + 8, HP_FORMAT_VERSION);
	hp_put_le16(f + 10, 2); /* flags: a bit no reader knows */
	assert_hp_err(
		hp_pack_read("t", f, buf.len, NULL, HP_PACK_NO_VERIFY, &q),
		HP_E_BADFORMAT);
	hp_put_le16(f + 10, 0);
	hp_put_le32(f + 20, 1u << 30); /* decompression bomb claim */
	assert_hp_err(
		hp_pack_read("t", f, buf.len, NULL, HP_PACK_NO_VERIFY, &q),
		HP_E_TOOBIG);
	hp_put_le32(f + 20, 100000); /* disagrees with the frame */
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
	p->modules[0].funcs[1].old_addr = 0x10; /* NEW, yet with old code */
	assert_hp_err(hp_pack_write(p, NULL, &buf), HP_E_BADFORMAT);
	p->modules[0].funcs[1].old_addr = 0;
	p->modules[1].relocs[4].offset = 4096 + 8; /* in bss */
	assert_hp_err(hp_pack_write(p, NULL, &buf), HP_E_BADFORMAT);
	p->modules[1].relocs[4].offset = 4096;
	p->modules[1].relocs[1].sym = 2;
	assert_hp_err(hp_pack_write(p, NULL, &buf), HP_E_BADFORMAT);
	p->modules[1].relocs[1].sym = 1;
	p->modules[1].relocs[2].offset = 10; /* into the field at 8 */
	assert_hp_err(hp_pack_write(p, NULL, &buf), HP_E_BADFORMAT);
	p->modules[1].relocs[2].offset = 16;
	assert_hp_ok(hp_pack_write(p, NULL, &buf));
	hp_buf_release(&buf);
	hp_patch_free(p);
}

/* Module 0 with an unwind table at text+36: a CIE, an FDE, the end. */
static void add_unwind(struct hp_module *m)
{
	static const uint8_t eh[28] = {
		8, 0, 0, 0, 0,	0, 0, 0, 1, 'z', 'R', 0, /* CIE at 36 */
		8, 0, 0, 0, 16, 0, 0, 0, 0, 0,	 0,   0, /* FDE at 48 */
		0, 0, 0, 0,				 /* end at 60 */
	};

	memcpy(m->text + 36, eh, sizeof(eh));
	m->eh_off = 36;
	m->eh_size = sizeof(eh);
	m->bss_size = HP_UNWIND_OBJECT_SIZE + 16;
}

static void test_unwind_table(void **state)
{
	struct hp_patch *p = make_patch(), *q = NULL;
	struct hp_module *m = &p->modules[0];
	struct hp_buf buf = { 0 };

	(void)state;
	add_unwind(m);
	assert_hp_ok(hp_pack_write(p, NULL, &buf));
	/* Marked in the header, so that older readers refuse the file. */
	assert_int_equal(hp_get_le16(buf.data + 10), HP_HDR_UNWIND);
	assert_hp_ok(hp_pack_read("t", buf.data, buf.len, NULL,
				  HP_PACK_NO_VERIFY, &q));
	assert_same(p, q);
	assert_int_equal(q->modules[0].eh_off, 36);
	assert_int_equal(q->modules[0].eh_size, 28);
	assert_int_equal(q->modules[1].eh_size, 0);
	hp_patch_free(q);
	q = NULL;
	/* Without the flag the records are shorter: not readable as such. */
	hp_put_le16(buf.data + 10, 0);
	assert_hp_err(hp_pack_read("t", buf.data, buf.len, NULL,
				   HP_PACK_NO_VERIFY, &q),
		      HP_E_BADFORMAT);
	hp_buf_release(&buf);

	m->text[48] = 12; /* FDE runs over the end word */
	assert_hp_err(hp_pack_write(p, NULL, &buf), HP_E_BADFORMAT);
	m->text[48] = 8;
	m->text[52] = 12; /* CIE pointer to the CIE's id, not its start */
	assert_hp_err(hp_pack_write(p, NULL, &buf), HP_E_BADFORMAT);
	m->text[52] = 16;
	m->text[60] = 1; /* no end word */
	assert_hp_err(hp_pack_write(p, NULL, &buf), HP_E_BADFORMAT);
	m->text[60] = 0;
	m->relocs[4].offset = 46; /* ABS32 into the FDE's length */
	assert_hp_err(hp_pack_write(p, NULL, &buf), HP_E_BADFORMAT);
	m->relocs[4].offset = 56;	     /* into the FDE's body: fine */
	m->bss_size = HP_UNWIND_OBJECT_SIZE; /* no room for the object */
	assert_hp_err(hp_pack_write(p, NULL, &buf), HP_E_BADFORMAT);
	m->bss_size = HP_UNWIND_OBJECT_SIZE + 16;
	m->eh_off = 38; /* misaligned */
	assert_hp_err(hp_pack_write(p, NULL, &buf), HP_E_BADFORMAT);
	m->eh_off = 36;
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
		cmocka_unit_test(test_varints),
		cmocka_unit_test(test_hostile_header),
		cmocka_unit_test(test_writer_validates),
		cmocka_unit_test(test_unwind_table),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
