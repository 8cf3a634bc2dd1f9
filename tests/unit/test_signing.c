/*
 * Unit tests for signing/: key generation and file modes, key file parsing,
 * signatures over whole files (every byte covered), the trust store.
 */
#include "hp_test.h"

#include "common/hp_log.h"
#include "signing/signing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ctx {
	char dir[64];
	char base[96];
	char sec[128];
	char pub[128];
};

static void quiet(enum hp_log_level l, const char *m, void *c)
{
	(void)l;
	(void)m;
	(void)c;
}

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	uint8_t id[HP_KEY_ID_BYTES];

	if (!c || hp_sign_init())
		return -1;
	hp_log_set_sink(quiet, NULL);
	snprintf(c->dir, sizeof(c->dir), "/tmp/hp-sign-XXXXXX");
	if (!mkdtemp(c->dir))
		return -1;
	snprintf(c->base, sizeof(c->base), "%s/k", c->dir);
	snprintf(c->sec, sizeof(c->sec), "%s.key", c->base);
	snprintf(c->pub, sizeof(c->pub), "%s.pub", c->base);
	if (hp_sign_keygen(c->base, id))
		return -1;
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir);
	if (system(cmd))
		return -1;
	free(c);
	hp_log_set_sink(NULL, NULL);
	return 0;
}

static void write_text(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	chmod(path, mode);
}

static void test_keygen_modes(void **state)
{
	struct ctx *c = *state;
	uint8_t id[HP_KEY_ID_BYTES];
	struct stat st;

	assert_int_equal(stat(c->sec, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(c->pub, &st), 0);
	assert_int_equal(st.st_mode & 077, 044);
	/* Never overwrite either file. */
	assert_hp_err(hp_sign_keygen(c->base, id), HP_E_EXISTS);
}

static void test_roundtrip(void **state)
{
	struct ctx *c = *state;
	struct hp_seckey sk;
	struct hp_pubkey pk;
	struct hp_buf file = {0};
	uint8_t id[HP_KEY_ID_BYTES];
	size_t signed_len = 0;
	static const uint8_t zero[HP_SECKEY_BYTES];

	assert_hp_ok(hp_sign_load_secret(c->sec, &sk));
	assert_hp_ok(hp_sign_load_public(c->pub, &pk));
	assert_memory_equal(sk.id, pk.id, HP_KEY_ID_BYTES);
	assert_hp_ok(hp_buf_append(&file, "patch bytes", 11));
	assert_hp_ok(hp_sign_append(&sk, &file));
	hp_sign_wipe(&sk);
	assert_memory_equal(sk.sk, zero, sizeof(zero));
	assert_int_equal(file.len, 11 + HP_SIG_TRAILER_BYTES);
	assert_true(hp_sign_has_trailer(file.data, file.len));
	assert_hp_ok(
		hp_sign_check(file.data, file.len, NULL, &pk, id, &signed_len));
	assert_int_equal(signed_len, 11);
	assert_memory_equal(id, pk.id, HP_KEY_ID_BYTES);

	/* Every single byte is covered: content, key id, signature, magic. */
	for (size_t i = 0; i < file.len; i++) {
		int rc;

		file.data[i] ^= 0x01;
		rc = hp_sign_check(file.data, file.len, NULL, &pk, id,
				   &signed_len);
		if (i < 11 || (i >= 11 + HP_KEY_ID_BYTES &&
			       i < 11 + HP_KEY_ID_BYTES + HP_SIG_BYTES))
			assert_hp_err(rc, HP_E_BADSIG);
		else if (i < 11 + HP_KEY_ID_BYTES)
			assert_hp_err(rc, HP_E_UNTRUSTED);
		else
			assert_hp_err(rc, HP_E_UNSIGNED);
		file.data[i] ^= 0x01;
	}
	hp_buf_release(&file);
}

static void test_unsigned_and_untrusted(void **state)
{
	struct ctx *c = *state;
	struct hp_seckey sk;
	struct hp_buf file = {0};
	struct hp_trust empty = {0};
	uint8_t id[HP_KEY_ID_BYTES];
	size_t n;

	assert_hp_err(hp_sign_check((const uint8_t *)"short", 5, &empty, NULL,
				    id, &n),
		      HP_E_UNSIGNED);
	assert_hp_ok(hp_sign_load_secret(c->sec, &sk));
	assert_hp_ok(hp_buf_append(&file, "x", 1));
	assert_hp_ok(hp_sign_append(&sk, &file));
	hp_sign_wipe(&sk);
	assert_hp_err(hp_sign_check(file.data, file.len, &empty, NULL, id, &n),
		      HP_E_UNTRUSTED);
	hp_buf_release(&file);
}

static void test_secret_perm(void **state)
{
	struct ctx *c = *state;
	struct hp_seckey sk;

	chmod(c->sec, 0644);
	assert_hp_err(hp_sign_load_secret(c->sec, &sk), HP_E_KEYPERM);
	chmod(c->sec, 0640);
	assert_hp_err(hp_sign_load_secret(c->sec, &sk), HP_E_KEYPERM);
	chmod(c->sec, 0600);
	assert_hp_ok(hp_sign_load_secret(c->sec, &sk));
	hp_sign_wipe(&sk);
}

static void test_malformed_keys(void **state)
{
	struct ctx *c = *state;
	char path[160], good[256], bad[256];
	struct hp_pubkey pk;
	FILE *fp = fopen(c->pub, "r");

	assert_non_null(fp);
	assert_non_null(fgets(good, sizeof(good), fp));
	fclose(fp);
	snprintf(path, sizeof(path), "%s/bad.pub", c->dir);

	write_text(path, "", 0644); /* empty */
	assert_hp_err(hp_sign_load_public(path, &pk), HP_E_BADKEY);
	snprintf(bad, sizeof(bad), "X%s", good + 1); /* bad prefix */
	write_text(path, bad, 0644);
	assert_hp_err(hp_sign_load_public(path, &pk), HP_E_BADKEY);
	snprintf(bad, sizeof(bad), "%s", good);
	bad[strlen(bad) - 3] = 'g'; /* bad hex */
	write_text(path, bad, 0644);
	assert_hp_err(hp_sign_load_public(path, &pk), HP_E_BADKEY);
	snprintf(bad, sizeof(bad), "%s", good);
	bad[strlen(bad) - 3] = bad[strlen(bad) - 3] == '0' ? '1' : '0';
	write_text(path, bad, 0644); /* key no longer matches its id */
	assert_hp_err(hp_sign_load_public(path, &pk), HP_E_BADKEY);
	snprintf(bad, sizeof(bad), "%.*s", (int)strlen(good) - 10, good);
	write_text(path, bad, 0644); /* truncated */
	assert_hp_err(hp_sign_load_public(path, &pk), HP_E_BADKEY);
	snprintf(bad, sizeof(bad), "%sextra\n", good); /* trailing junk */
	write_text(path, bad, 0644);
	assert_hp_err(hp_sign_load_public(path, &pk), HP_E_BADKEY);
	/* A public key is not a secret key. */
	write_text(path, good, 0600);
	{
		struct hp_seckey sk;

		assert_hp_err(hp_sign_load_secret(path, &sk), HP_E_BADKEY);
	}
	unlink(path);
}

static void test_trust_dir(void **state)
{
	struct ctx *c = *state;
	char tdir[128], base2[160], cmd[1024];
	struct hp_trust t;
	struct hp_seckey sk;
	struct hp_buf file = {0};
	uint8_t id2[HP_KEY_ID_BYTES], id[HP_KEY_ID_BYTES];
	size_t n;

	snprintf(tdir, sizeof(tdir), "%s/trusted.d", c->dir);
	snprintf(base2, sizeof(base2), "%s/k2", c->dir);
	assert_hp_ok(hp_sign_keygen(base2, id2));
	snprintf(cmd, sizeof(cmd), "mkdir '%s' && cp '%s' '%s.pub' '%s/'", tdir,
		 c->pub, base2, tdir);
	assert_int_equal(system(cmd), 0);
	assert_hp_ok(hp_trust_load(&t, tdir));
	assert_int_equal(t.nr_keys, 2);
	assert_non_null(hp_trust_find_by_id(&t, id2));
	snprintf(cmd, sizeof(cmd), "%s.key", base2);
	assert_hp_ok(hp_sign_load_secret(cmd, &sk));
	assert_hp_ok(hp_buf_append(&file, "data", 4));
	assert_hp_ok(hp_sign_append(&sk, &file));
	hp_sign_wipe(&sk);
	assert_hp_ok(hp_sign_check(file.data, file.len, &t, NULL, id, &n));
	assert_memory_equal(id, id2, HP_KEY_ID_BYTES);
	hp_trust_release(&t);
	hp_buf_release(&file);
	/* A missing directory trusts nothing; a bad key file is an error. */
	snprintf(cmd, sizeof(cmd), "%s/none", c->dir);
	assert_hp_ok(hp_trust_load(&t, cmd));
	assert_int_equal(t.nr_keys, 0);
	snprintf(cmd, sizeof(cmd), "echo junk > '%s/bad.pub'", tdir);
	assert_int_equal(system(cmd), 0);
	assert_hp_err(hp_trust_load(&t, tdir), HP_E_BADKEY);
}

static void test_hash128(void **state)
{
	uint8_t h[HP_HASH_BYTES];
	/* BLAKE2b with a 16-byte digest of "abc" (RFC 7693 parameters,
	 * outlen 16); computed once with Python's hashlib.blake2b. */
	static const uint8_t expect[HP_HASH_BYTES] = {
		0xcf, 0x4a, 0xb7, 0x91, 0xc6, 0x2b, 0x8d, 0x2b,
		0x21, 0x09, 0xc9, 0x02, 0x75, 0x28, 0x78, 0x16,
	};

	(void)state;
	hp_hash128(h, "abc", 3);
	assert_memory_equal(h, expect, sizeof(expect));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_keygen_modes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unsigned_and_untrusted,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_secret_perm, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_malformed_keys, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_trust_dir, setup,
						teardown),
		cmocka_unit_test(test_hash128),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
