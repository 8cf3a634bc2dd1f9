/*
 * Unit tests for signing/: key generation and file modes, key file parsing
 * (every malformed form refused, naming the file), signatures over whole
 * files (every byte covered), the trust store, and what gets logged.
 */
#include "hp_test.h"

#include "common/hp_log.h"
#include "signing/signing.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Offsets in a key file line: "<prefix, 25><id hex, 16> <key hex>\n". */
#define ID_HEX_OFF 25
#define KEY_HEX_OFF (ID_HEX_OFF + 2 * HP_KEY_ID_BYTES + 1)
#define PUB_FILE_BYTES (KEY_HEX_OFF + 2 * HP_PUBKEY_BYTES + 1)
#define SEC_FILE_BYTES (KEY_HEX_OFF + 2 * HP_SECKEY_BYTES + 1)
/* A secret key is the 32-byte seed, then the public key. */
#define SEED_BYTES (HP_SECKEY_BYTES - HP_PUBKEY_BYTES)

struct ctx {
	char dir[64];
	char base[96];
	char sec[128];
	char pub[128];
	uint8_t id[HP_KEY_ID_BYTES];
};

/* Every message logged since log_reset(), one per line. */
static char log_text[16384];
static int nr_logged;

static void capture(enum hp_log_level level, const char *msg, void *ctx)
{
	size_t used = strlen(log_text);

	(void)ctx;
	snprintf(log_text + used, sizeof(log_text) - used, "%d: %s\n",
		 (int)level, msg);
	nr_logged++;
}

static void log_reset(void)
{
	log_text[0] = 0;
	nr_logged = 0;
}

#define assert_logged(needle)                                               \
	do {                                                                \
		if (!strstr(log_text, (needle)))                            \
			fail_msg("log lacks '%s'; it holds:\n%s", (needle), \
				 log_text);                                 \
	} while (0)

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return -1;
	*state = c;
	if (hp_sign_init())
		return -1;
	hp_log_set_sink(capture, NULL);
	snprintf(c->dir, sizeof(c->dir), "/tmp/hp-sign-XXXXXX");
	if (!mkdtemp(c->dir))
		return -1;
	snprintf(c->base, sizeof(c->base), "%s/k", c->dir);
	snprintf(c->sec, sizeof(c->sec), "%s.key", c->base);
	snprintf(c->pub, sizeof(c->pub), "%s.pub", c->base);
	if (hp_sign_keygen(c->base, c->id))
		return -1;
	log_reset();
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	int rc = 0;

	hp_log_set_sink(NULL, NULL);
	if (c && c->dir[0])
		rc = nftw(c->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(c);
	return rc ? -1 : 0;
}

static void write_text(const char *path, const char *text, mode_t mode)
{
	FILE *fp = NULL;

	unlink(path);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) < 0, 0);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* The whole of a (small) text file, NUL-terminated, into @buf. */
static size_t read_text(const char *path, char *buf, size_t cap)
{
	FILE *fp = fopen(path, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, cap - 1, fp);
	fclose(fp);
	buf[n] = 0;
	return n;
}

static void flip_hex(char *digit)
{
	*digit = *digit == '0' ? '1' : '0';
}

static void sign_text(const char *key_path, const char *text,
		      struct hp_buf *out)
{
	struct hp_seckey sk;

	assert_hp_ok(hp_sign_load_secret(key_path, &sk));
	assert_hp_ok(hp_buf_append(out, text, strlen(text)));
	assert_hp_ok(hp_sign_append(&sk, out));
	hp_sign_wipe(&sk);
}

static void test_keygen_files(void **state)
{
	struct ctx *c = *state;
	char text[512], pub_text[512], idhex[HP_KEY_ID_STR_BYTES];
	struct stat st;

	assert_int_equal(stat(c->sec, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(c->pub, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);

	/* One text line each, naming the key id. */
	hp_sign_key_id_str(idhex, c->id);
	assert_int_equal(read_text(c->pub, pub_text, sizeof(pub_text)),
			 PUB_FILE_BYTES);
	assert_memory_equal(pub_text, "hpatch-ed25519-public-v1 ", ID_HEX_OFF);
	assert_memory_equal(pub_text + ID_HEX_OFF, idhex, 2 * HP_KEY_ID_BYTES);
	assert_int_equal(pub_text[PUB_FILE_BYTES - 1], '\n');
	assert_int_equal(read_text(c->sec, text, sizeof(text)), SEC_FILE_BYTES);
	assert_memory_equal(text, "hpatch-ed25519-secret-v1 ", ID_HEX_OFF);
	assert_memory_equal(text + ID_HEX_OFF, idhex, 2 * HP_KEY_ID_BYTES);
	assert_int_equal(text[SEC_FILE_BYTES - 1], '\n');
	/* The secret's public half is the public key. */
	assert_memory_equal(text + KEY_HEX_OFF + 2 * SEED_BYTES,
			    pub_text + KEY_HEX_OFF, 2 * HP_PUBKEY_BYTES);
}

static void test_keygen_refuses_overwrite(void **state)
{
	struct ctx *c = *state;
	char before[512], after[512], base2[160], path[176];
	uint8_t id[HP_KEY_ID_BYTES];
	struct stat st;

	read_text(c->sec, before, sizeof(before));
	assert_hp_err(hp_sign_keygen(c->base, id), HP_E_EXISTS);
	read_text(c->sec, after, sizeof(after));
	assert_string_equal(before, after);
	assert_logged(c->sec);
	assert_logged("already exists");

	/* Only the public half present: still refused, no secret made. */
	snprintf(base2, sizeof(base2), "%s/only", c->dir);
	snprintf(path, sizeof(path), "%s.pub", base2);
	write_text(path, "x\n", 0644);
	log_reset();
	assert_hp_err(hp_sign_keygen(base2, id), HP_E_EXISTS);
	assert_logged(path);
	snprintf(path, sizeof(path), "%s.key", base2);
	assert_int_equal(stat(path, &st), -1);

	/* A dangling symlink is in the way too. */
	snprintf(base2, sizeof(base2), "%s/link", c->dir);
	snprintf(path, sizeof(path), "%s.key", base2);
	assert_int_equal(symlink("/nonexistent/target", path), 0);
	assert_hp_err(hp_sign_keygen(base2, id), HP_E_EXISTS);

	/* A missing directory is a system error naming the file. */
	snprintf(base2, sizeof(base2), "%s/no/such/dir/k", c->dir);
	log_reset();
	assert_int_equal(hp_sign_keygen(base2, id), -ENOENT);
	assert_logged("/no/such/dir/k.key");
}

static void test_load_roundtrip(void **state)
{
	struct ctx *c = *state;
	struct hp_seckey sk;
	struct hp_pubkey pk;
	static const uint8_t zero[sizeof(sk)];

	assert_hp_ok(hp_sign_load_secret(c->sec, &sk));
	assert_hp_ok(hp_sign_load_public(c->pub, &pk));
	assert_memory_equal(sk.id, c->id, HP_KEY_ID_BYTES);
	assert_memory_equal(pk.id, c->id, HP_KEY_ID_BYTES);
	assert_memory_equal(sk.sk + SEED_BYTES, pk.pk, HP_PUBKEY_BYTES);
	assert_string_equal(pk.path, c->pub);
	hp_sign_wipe(&sk);
	assert_memory_equal(&sk, zero, sizeof(zero));
	/* A 0400 secret is fine: only group and other bits matter. */
	assert_int_equal(chmod(c->sec, 0400), 0);
	assert_hp_ok(hp_sign_load_secret(c->sec, &sk));
	hp_sign_wipe(&sk);
	assert_int_equal(nr_logged, 0);
	assert_int_equal(hp_sign_load_public("/nonexistent.pub", &pk), -ENOENT);
	assert_logged("'/nonexistent.pub'");
}

static void test_secret_perm(void **state)
{
	struct ctx *c = *state;
	static const mode_t bad[] = { 0644, 0640, 0604, 0620, 0602, 0610 };
	struct hp_seckey sk;
	char hint[256];

	for (size_t i = 0; i < HP_ARRAY_SIZE(bad); i++) {
		char mode[16];

		assert_int_equal(chmod(c->sec, bad[i]), 0);
		log_reset();
		assert_hp_err(hp_sign_load_secret(c->sec, &sk), HP_E_KEYPERM);
		snprintf(mode, sizeof(mode), "%04o", (unsigned int)bad[i]);
		assert_logged(c->sec);
		assert_logged(mode);
	}
	snprintf(hint, sizeof(hint), "run 'chmod 600 %s'", c->sec);
	assert_logged(hint);
	assert_int_equal(chmod(c->sec, 0600), 0);
	assert_hp_ok(hp_sign_load_secret(c->sec, &sk));
	hp_sign_wipe(&sk);
}

/* Each variant of a good public key file must be refused, naming it. */
static void test_malformed_public(void **state)
{
	struct ctx *c = *state;
	char path[160], good[256], bad[512];
	struct hp_pubkey pk;
	size_t len;

	len = read_text(c->pub, good, sizeof(good));
	snprintf(path, sizeof(path), "%s/bad.pub", c->dir);

	write_text(path, "", 0644); /* empty */
	log_reset();
	assert_hp_err(hp_sign_load_public(path, &pk), HP_E_BADKEY);
	assert_logged(path);

	snprintf(bad, sizeof(bad), "X%s", good + 1); /* bad prefix */
	write_text(path, bad, 0644);
	assert_hp_err(hp_sign_load_public(path, &pk), HP_E_BADKEY);

	snprintf(bad, sizeof(bad), "%s", good);
	bad[len - 3] = 'g'; /* bad hex in the key */
	write_text(path, bad, 0644);
	assert_hp_err(hp_sign_load_public(path, &pk), HP_E_BADKEY);

	snprintf(bad, sizeof(bad), "%s", good);
	bad[ID_HEX_OFF] = 'z'; /* bad hex in the id */
	write_text(path, bad, 0644);
	assert_hp_err(hp_sign_load_public(path, &pk), HP_E_BADKEY);

	snprintf(bad, sizeof(bad), "%s", good);
	bad[KEY_HEX_OFF - 1] = '-'; /* bad separator */
	write_text(path, bad, 0644);
	assert_hp_err(hp_sign_load_public(path, &pk), HP_E_BADKEY);

	snprintf(bad, sizeof(bad), "%s", good);
	flip_hex(&bad[len - 3]); /* key no longer matches its id */
	write_text(path, bad, 0644);
	log_reset();
	assert_hp_err(hp_sign_load_public(path, &pk), HP_E_BADKEY);
	assert_logged(path);
	assert_logged("key id does not match");

	snprintf(bad, sizeof(bad), "%s", good);
	flip_hex(&bad[ID_HEX_OFF]); /* wrong key id */
	write_text(path, bad, 0644);
	assert_hp_err(hp_sign_load_public(path, &pk), HP_E_BADKEY);

	snprintf(bad, sizeof(bad), "%.*s", (int)len - 10, good); /* truncated */
	write_text(path, bad, 0644);
	assert_hp_err(hp_sign_load_public(path, &pk), HP_E_BADKEY);

	snprintf(bad, sizeof(bad), "%.*s", (int)len - 1, good); /* no \n: ok */
	write_text(path, bad, 0644);
	assert_hp_ok(hp_sign_load_public(path, &pk));

	snprintf(bad, sizeof(bad), "%sextra\n", good); /* trailing junk */
	write_text(path, bad, 0644);
	assert_hp_err(hp_sign_load_public(path, &pk), HP_E_BADKEY);

	snprintf(bad, sizeof(bad), "%s\n", good); /* two lines */
	write_text(path, bad, 0644);
	assert_hp_err(hp_sign_load_public(path, &pk), HP_E_BADKEY);

	/* A secret key is not a public key. */
	log_reset();
	assert_hp_err(hp_sign_load_public(c->sec, &pk), HP_E_BADKEY);
	assert_logged(c->sec);
	assert_logged("is a secret key");

	/* Nor is a directory, or a huge file. */
	unlink(path);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_hp_err(hp_sign_load_public(path, &pk), HP_E_BADKEY);
	assert_int_equal(rmdir(path), 0);
	memset(bad, 'a', sizeof(bad) - 1);
	bad[sizeof(bad) - 1] = 0;
	write_text(path, bad, 0644);
	assert_hp_err(hp_sign_load_public(path, &pk), HP_E_BADKEY);
}

/* Malformed secrets are refused, and no message ever shows key material. */
static void test_malformed_secret(void **state)
{
	struct ctx *c = *state;
	char path[160], good[256], bad[512], secret_hex[2 * HP_SECKEY_BYTES];
	struct hp_seckey sk;
	size_t len;

	len = read_text(c->sec, good, sizeof(good));
	assert_int_equal(len, SEC_FILE_BYTES);
	/* The seed, as hex: the part that must never be shown. */
	memcpy(secret_hex, good + KEY_HEX_OFF, 2 * SEED_BYTES);
	secret_hex[2 * SEED_BYTES] = 0;
	snprintf(path, sizeof(path), "%s/bad.key", c->dir);

	snprintf(bad, sizeof(bad), "%s", good);
	flip_hex(&bad[ID_HEX_OFF]); /* wrong key id */
	write_text(path, bad, 0600);
	assert_hp_err(hp_sign_load_secret(path, &sk), HP_E_BADKEY);
	assert_logged(path);
	assert_logged("key id does not match");

	snprintf(bad, sizeof(bad), "%s", good);
	flip_hex(&bad[KEY_HEX_OFF + 2 * SEED_BYTES]); /* public half altered */
	write_text(path, bad, 0600);
	assert_hp_err(hp_sign_load_secret(path, &sk), HP_E_BADKEY);

	snprintf(bad, sizeof(bad), "%s", good);
	flip_hex(&bad[KEY_HEX_OFF]); /* seed altered: id still matches */
	write_text(path, bad, 0600);
	log_reset();
	assert_hp_err(hp_sign_load_secret(path, &sk), HP_E_BADKEY);
	assert_logged("corrupt");

	snprintf(bad, sizeof(bad), "%s", good);
	bad[KEY_HEX_OFF + 5] = 'q'; /* bad hex */
	write_text(path, bad, 0600);
	assert_hp_err(hp_sign_load_secret(path, &sk), HP_E_BADKEY);

	snprintf(bad, sizeof(bad), "%.*s", (int)len - 2, good); /* truncated */
	write_text(path, bad, 0600);
	assert_hp_err(hp_sign_load_secret(path, &sk), HP_E_BADKEY);

	/* A public key is not a secret key, whatever its mode. */
	read_text(c->pub, bad, sizeof(bad));
	write_text(path, bad, 0644);
	log_reset();
	assert_hp_err(hp_sign_load_secret(path, &sk), HP_E_BADKEY);
	assert_logged("is a public key");

	assert_null(strstr(log_text, secret_hex));
	secret_hex[16] = 0; /* not even a prefix of it */
	assert_null(strstr(log_text, secret_hex));
}

static void test_sign_check_every_byte(void **state)
{
	struct ctx *c = *state;
	struct hp_pubkey pk;
	struct hp_buf file = { 0 };
	uint8_t id[HP_KEY_ID_BYTES];
	const size_t body = 11;
	size_t signed_len = 0;

	assert_hp_ok(hp_sign_load_public(c->pub, &pk));
	sign_text(c->sec, "patch bytes", &file);
	assert_int_equal(file.len, body + HP_SIG_TRAILER_BYTES);
	assert_true(hp_sign_has_trailer(file.data, file.len));
	assert_memory_equal(file.data + body, c->id, HP_KEY_ID_BYTES);
	assert_memory_equal(file.data + file.len - HP_SIG_MAGIC_BYTES,
			    HP_SIG_MAGIC, HP_SIG_MAGIC_BYTES);
	log_reset();
	assert_hp_ok(
		hp_sign_check(file.data, file.len, NULL, &pk, id, &signed_len));
	assert_int_equal(signed_len, body);
	assert_memory_equal(id, c->id, HP_KEY_ID_BYTES);

	/* Every single byte is covered: content, key id, signature, magic. */
	for (size_t i = 0; i < file.len; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			int rc;

			file.data[i] ^= (uint8_t)(1u << bit);
			rc = hp_sign_check(file.data, file.len, NULL, &pk, id,
					   &signed_len);
			if (i < body)
				assert_hp_err(rc, HP_E_BADSIG);
			else if (i < body + HP_KEY_ID_BYTES)
				assert_hp_err(rc, HP_E_UNTRUSTED);
			else if (i < body + HP_KEY_ID_BYTES + HP_SIG_BYTES)
				assert_hp_err(rc, HP_E_BADSIG);
			else
				assert_hp_err(rc, HP_E_UNSIGNED);
			file.data[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* Dropping the first byte breaks it too. */
	assert_hp_err(hp_sign_check(file.data + 1, file.len - 1, NULL, &pk, id,
				    &signed_len),
		      HP_E_BADSIG);
	/* hp_sign_check() leaves reporting to its caller. */
	assert_int_equal(nr_logged, 0);
	hp_buf_release(&file);
}

static void test_sign_empty_and_resign(void **state)
{
	struct ctx *c = *state;
	struct hp_pubkey pk;
	struct hp_seckey sk;
	struct hp_buf file = { 0 };
	uint8_t id[HP_KEY_ID_BYTES], sig[HP_SIG_BYTES];
	size_t n = 1;

	assert_hp_ok(hp_sign_load_public(c->pub, &pk));
	sign_text(c->sec, "", &file);
	assert_int_equal(file.len, HP_SIG_TRAILER_BYTES);
	assert_hp_ok(hp_sign_check(file.data, file.len, NULL, &pk, id, &n));
	assert_int_equal(n, 0);

	/* Strip and sign again, as 'hpsign sign' does: same bytes back
	 * (Ed25519 is deterministic). */
	memcpy(sig, file.data + HP_KEY_ID_BYTES, sizeof(sig));
	file.len -= HP_SIG_TRAILER_BYTES;
	assert_hp_ok(hp_sign_load_secret(c->sec, &sk));
	assert_hp_ok(hp_sign_append(&sk, &file));
	hp_sign_wipe(&sk);
	assert_int_equal(file.len, HP_SIG_TRAILER_BYTES);
	assert_memory_equal(file.data + HP_KEY_ID_BYTES, sig, sizeof(sig));
	hp_buf_release(&file);
}

static void test_unsigned_and_untrusted(void **state)
{
	struct ctx *c = *state;
	struct hp_buf file = { 0 };
	struct hp_trust empty = { 0 };
	struct hp_pubkey other;
	uint8_t id[HP_KEY_ID_BYTES], other_id[HP_KEY_ID_BYTES];
	uint8_t zeros[HP_SIG_TRAILER_BYTES] = { 0 };
	char base2[160], pub2[176];
	size_t n;

	assert_false(hp_sign_has_trailer(NULL, 0));
	assert_hp_err(hp_sign_check((const uint8_t *)"short", 5, &empty, NULL,
				    id, &n),
		      HP_E_UNSIGNED);
	assert_hp_err(hp_sign_check(zeros, sizeof(zeros), &empty, NULL, id, &n),
		      HP_E_UNSIGNED);
	/* The magic alone, shorter than a trailer, is not a signature. */
	assert_hp_err(hp_sign_check((const uint8_t *)HP_SIG_MAGIC,
				    HP_SIG_MAGIC_BYTES, &empty, NULL, id, &n),
		      HP_E_UNSIGNED);

	sign_text(c->sec, "x", &file);
	assert_hp_err(hp_sign_check(file.data, file.len, &empty, NULL, id, &n),
		      HP_E_UNTRUSTED);
	assert_memory_equal(id, c->id, HP_KEY_ID_BYTES);
	assert_hp_err(hp_sign_check(file.data, file.len, NULL, NULL, id, &n),
		      HP_E_UNTRUSTED);

	/* Another key's public file does not verify our signature. */
	snprintf(base2, sizeof(base2), "%s/other", c->dir);
	snprintf(pub2, sizeof(pub2), "%s.pub", base2);
	assert_hp_ok(hp_sign_keygen(base2, other_id));
	assert_hp_ok(hp_sign_load_public(pub2, &other));
	assert_hp_err(hp_sign_check(file.data, file.len, NULL, &other, id, &n),
		      HP_E_UNTRUSTED);
	assert_memory_equal(id, c->id, HP_KEY_ID_BYTES);

	/* Nor does it when it claims our id: the signature decides. */
	memcpy(other.id, c->id, HP_KEY_ID_BYTES);
	assert_hp_err(hp_sign_check(file.data, file.len, NULL, &other, id, &n),
		      HP_E_BADSIG);
	hp_buf_release(&file);
}

static void test_trust_dir(void **state)
{
	struct ctx *c = *state;
	char tdir[128], base2[160], path[256];
	struct hp_trust t = { 0 };
	struct hp_buf file = { 0 };
	uint8_t id2[HP_KEY_ID_BYTES], id[HP_KEY_ID_BYTES];
	static const char *const names[] = { "d.pub", "a.pub", "b.pub",
					     "c.pub" };
	char pub_text[256];
	size_t n;

	/*
	 * trusted.d: d.pub and b.pub hold key 1, a.pub and c.pub key 2 (a
	 * copy of a key is harmless); made out of order, so readdir is
	 * unlikely to list them sorted. Plus entries that are not keys.
	 */
	snprintf(tdir, sizeof(tdir), "%s/trusted.d", c->dir);
	assert_int_equal(mkdir(tdir, 0755), 0);
	snprintf(base2, sizeof(base2), "%s/k2", c->dir);
	assert_hp_ok(hp_sign_keygen(base2, id2));
	for (size_t i = 0; i < HP_ARRAY_SIZE(names); i++) {
		snprintf(path, sizeof(path), "%s%s", i % 2 ? base2 : c->base,
			 ".pub");
		read_text(path, pub_text, sizeof(pub_text));
		snprintf(path, sizeof(path), "%s/%s", tdir, names[i]);
		write_text(path, pub_text, 0644);
	}
	snprintf(path, sizeof(path), "%s/README", tdir);
	write_text(path, "not a key\n", 0644);
	snprintf(path, sizeof(path), "%s/.editor.pub", tdir);
	write_text(path, "junk\n", 0644);
	snprintf(path, sizeof(path), "%s/sub.pub", tdir);
	assert_int_equal(mkdir(path, 0755), 0);

	log_reset();
	assert_hp_ok(hp_trust_load(&t, tdir));
	assert_int_equal(t.nr_keys, 4);
	for (size_t i = 0; i < t.nr_keys; i++) {
		snprintf(path, sizeof(path), "%s/%c.pub", tdir, (int)('a' + i));
		assert_string_equal(t.keys[i].path, path);
		assert_memory_equal(t.keys[i].id, i % 2 ? c->id : id2,
				    HP_KEY_ID_BYTES);
	}
	assert_logged("sub.pub"); /* skipped with a warning */
	assert_ptr_equal(hp_trust_find_by_id(&t, id2), &t.keys[0]);
	assert_ptr_equal(hp_trust_find_by_id(&t, c->id), &t.keys[1]);

	/* Signed with key 2: found in the store by the trailer's id. */
	snprintf(path, sizeof(path), "%s.key", base2);
	sign_text(path, "data", &file);
	assert_hp_ok(hp_sign_check(file.data, file.len, &t, NULL, id, &n));
	assert_memory_equal(id, id2, HP_KEY_ID_BYTES);
	assert_int_equal(n, 4);
	hp_buf_release(&file);
	sign_text(c->sec, "data", &file);
	assert_hp_ok(hp_sign_check(file.data, file.len, &t, NULL, id, &n));
	assert_memory_equal(id, c->id, HP_KEY_ID_BYTES);
	hp_buf_release(&file);
	hp_trust_release(&t);
	assert_null(t.keys);
	assert_int_equal(t.nr_keys, 0);

	/* A missing directory trusts nothing, with a warning. */
	snprintf(path, sizeof(path), "%s/none", c->dir);
	log_reset();
	assert_hp_ok(hp_trust_load(&t, path));
	assert_int_equal(t.nr_keys, 0);
	assert_logged(path);
	hp_trust_release(&t);

	/*
	 * A bad key file, one others can write and a symbolic link are each
	 * skipped with a warning naming them; the good keys still count.
	 */
	snprintf(path, sizeof(path), "%s/c.pub", tdir);
	write_text(path, "junk\n", 0644);
	snprintf(path, sizeof(path), "%s/d.pub", tdir);
	assert_int_equal(chmod(path, 0666), 0);
	snprintf(path, sizeof(path), "%s/e.pub", tdir);
	assert_int_equal(symlink("a.pub", path), 0);
	log_reset();
	assert_hp_ok(hp_trust_load(&t, tdir));
	assert_int_equal(t.nr_keys, 2);
	assert_string_equal(t.keys[1].path + strlen(tdir), "/b.pub");
	assert_logged("c.pub': not an hpatch public key file");
	assert_logged("d.pub' is writable by group or others (mode 0666)");
	assert_logged("e.pub': is a symbolic link");
	assert_logged("skipped; patches signed by it are not trusted");
	hp_trust_release(&t);

	/* A store others can write trusts nothing, and says how to fix it. */
	assert_int_equal(chmod(tdir, 0777), 0);
	log_reset();
	assert_hp_err(hp_trust_load(&t, tdir), HP_E_INSECURE);
	assert_logged("is writable by group or others (mode 0777)");
	assert_logged("chmod go-w");
	assert_int_equal(t.nr_keys, 0);
	assert_null(t.keys);
}

/*
 * BLAKE2b with a 16-byte digest. Expected values computed once, outside
 * libsodium, with Python: hashlib.blake2b(b"abc", digest_size=16).hexdigest()
 * and likewise for b"".
 */
static void test_hash128(void **state)
{
	static const struct {
		const char *in;
		const char *hex;
	} kat[] = {
		{ "abc", "cf4ab791c62b8d2b2109c90275287816" },
		{ "", "cae66941d9efbd404e4d88758ea67670" },
	};
	uint8_t h[HP_HASH_BYTES];
	char hex[2 * HP_HASH_BYTES + 1];

	(void)state;
	for (size_t i = 0; i < HP_ARRAY_SIZE(kat); i++) {
		hp_hash128(h, kat[i].in, strlen(kat[i].in));
		hp_hex(hex, h, sizeof(h));
		assert_string_equal(hex, kat[i].hex);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_keygen_files, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keygen_refuses_overwrite,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_roundtrip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_secret_perm, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_malformed_public, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_malformed_secret, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sign_check_every_byte,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_sign_empty_and_resign,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsigned_and_untrusted,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_trust_dir, setup,
						teardown),
		cmocka_unit_test(test_hash128),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
