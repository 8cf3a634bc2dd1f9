/*
 * Ed25519 keys, whole-file signatures and the host's trust store, on top of
 * libsodium. This is the only file that handles secret key material: every
 * copy of it (raw or hex) is wiped with sodium_memzero and none is logged.
 *
 * Key files are one text line each, so they survive copy and paste and can
 * be checked by eye:
 *   hpatch-ed25519-public-v1 <key id, 16 hex> <public key, 64 hex>\n
 *   hpatch-ed25519-secret-v1 <key id, 16 hex> <secret key, 128 hex>\n
 * The key id is the first 8 bytes of BLAKE2b-256 of the public key; it is
 * stored so that a corrupt key is caught on load, not as a bad signature
 * later. The secret key is libsodium's 64 bytes: seed, then public key.
 *
 * A signed file is the original bytes followed by an 80-byte trailer:
 *   key id (8) | Ed25519 signature over every byte before the trailer (64) |
 *   HP_SIG_MAGIC (8)
 */
#include "signing/signing.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_secure.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PUB_PREFIX "hpatch-ed25519-public-v1 "
#define SEC_PREFIX "hpatch-ed25519-secret-v1 "
/* Bytes of a key file line holding a key of @n bytes, newline included. */
#define KEY_LINE_BYTES(n) \
	(sizeof(SEC_PREFIX) - 1 + 2 * HP_KEY_ID_BYTES + 1 + 2 * (n) + 1)
/* Larger than any valid key file: reading stops there. */
#define KEY_FILE_MAX 256

static_assert(HP_PUBKEY_BYTES == crypto_sign_PUBLICKEYBYTES, "pk size");
static_assert(HP_SECKEY_BYTES == crypto_sign_SECRETKEYBYTES, "sk size");
static_assert(HP_SIG_BYTES == crypto_sign_BYTES, "sig size");
static_assert(HP_SIG_MAGIC_BYTES == sizeof(HP_SIG_MAGIC) - 1, "magic size");
static_assert(sizeof(PUB_PREFIX) == sizeof(SEC_PREFIX), "prefix sizes");
static_assert(KEY_LINE_BYTES(HP_SECKEY_BYTES) < KEY_FILE_MAX, "key size");

int hp_sign_init(void)
{
	if (sodium_init() < 0)
		return hp_error(-HP_E_BADKEY, "libsodium failed to initialise");
	return 0;
}

static void key_id_of(uint8_t id[HP_KEY_ID_BYTES],
		      const uint8_t pk[HP_PUBKEY_BYTES])
{
	uint8_t h[crypto_generichash_BYTES];

	crypto_generichash(h, sizeof(h), pk, HP_PUBKEY_BYTES, NULL, 0);
	memcpy(id, h, HP_KEY_ID_BYTES);
}

void hp_sign_key_id_str(char out[HP_KEY_ID_STR_BYTES],
			const uint8_t id[HP_KEY_ID_BYTES])
{
	hp_hex(out, id, HP_KEY_ID_BYTES);
}

void hp_hash128(uint8_t out[HP_HASH_BYTES], const void *p, size_t len)
{
	crypto_generichash(out, HP_HASH_BYTES, p, len, NULL, 0);
}

void hp_sign_wipe(struct hp_seckey *key)
{
	sodium_memzero(key, sizeof(*key));
}

static int write_key_file(const char *path, const char *prefix,
			  const uint8_t id[HP_KEY_ID_BYTES], const uint8_t *key,
			  size_t key_len, unsigned int mode)
{
	char line[KEY_LINE_BYTES(HP_SECKEY_BYTES) + 1]; /* + snprintf's NUL */
	char idhex[HP_KEY_ID_STR_BYTES];
	size_t n;
	int rc;

	HP_BUG_ON(key_len > HP_SECKEY_BYTES);
	hp_sign_key_id_str(idhex, id);
	n = (size_t)snprintf(line, sizeof(line), "%s%s ", prefix, idhex);
	hp_hex(line + n, key, key_len);
	n += 2 * key_len;
	line[n++] = '\n';
	/* excl: a key is never replaced, even by a race with another keygen. */
	rc = hp_write_file(path, line, n, mode, HP_WRITE_EXCL);
	sodium_memzero(line, sizeof(line));
	if (rc == -EEXIST)
		return hp_error(-HP_E_EXISTS,
				"'%s': already exists; not overwriting a key",
				path);
	if (rc)
		return hp_error_rc(rc, "'%s'", path);
	return 0;
}

/* lstat: a dangling symlink is in the way too (link() would fail on it). */
static bool path_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

int hp_sign_keygen(const char *base, uint8_t id[HP_KEY_ID_BYTES])
{
	uint8_t pk[HP_PUBKEY_BYTES], sk[HP_SECKEY_BYTES];
	char *sec_path = NULL, *pub_path = NULL;
	int rc = 0;

	if (asprintf(&sec_path, "%s.key", base) < 0)
		return hp_error_rc(-ENOMEM, "'%s.key'", base);
	if (asprintf(&pub_path, "%s.pub", base) < 0) {
		pub_path = NULL;
		rc = hp_error_rc(-ENOMEM, "'%s.pub'", base);
		goto out_free;
	}
	/* Check both first: never leave a new secret beside an old public. */
	if (path_exists(sec_path) || path_exists(pub_path)) {
		rc = hp_error(-HP_E_EXISTS,
			      "'%s': already exists; not overwriting a key",
			      path_exists(sec_path) ? sec_path : pub_path);
		goto out_free;
	}
	crypto_sign_keypair(pk, sk);
	key_id_of(id, pk);
	rc = write_key_file(sec_path, SEC_PREFIX, id, sk, sizeof(sk), 0600);
	sodium_memzero(sk, sizeof(sk));
	if (rc)
		goto out_free;
	rc = write_key_file(pub_path, PUB_PREFIX, id, pk, sizeof(pk), 0644);
	/* A secret without its public half is useless: don't leave it. */
	if (rc)
		unlink(sec_path);
out_free:
	free(sec_path);
	free(pub_path);
	return rc;
}

/*
 * Parse "<prefix><id hex> <key hex>[\n]" into @id and @key, reporting at
 * @level (a warning for a trusted key that is then skipped). @key may hold
 * part of a secret on failure: the caller wipes it.
 */
static int parse_key_line(const char *path, const char *text, size_t len,
			  bool is_secret, uint8_t id[HP_KEY_ID_BYTES],
			  uint8_t *key, size_t key_len, enum hp_log_level level)
{
	const char *prefix = is_secret ? SEC_PREFIX : PUB_PREFIX;
	const char *other = is_secret ? PUB_PREFIX : SEC_PREFIX;
	const char *kind = is_secret ? "secret" : "public";
	const size_t plen = strlen(prefix);
	const size_t want = KEY_LINE_BYTES(key_len) - 1; /* newline optional */
	bool has_newline;

	if (len >= plen && !memcmp(text, other, plen)) {
		hp_log(level, "'%s': is a %s key, expected a %s key", path,
		       is_secret ? "public" : "secret", kind);
		return -HP_E_BADKEY;
	}
	if (len < plen || memcmp(text, prefix, plen)) {
		hp_log(level, "'%s': not an hpatch %s key file (no '%.*s')",
		       path, kind, (int)plen - 1, prefix);
		return -HP_E_BADKEY;
	}
	has_newline = len == want + 1 && text[want] == '\n';
	if (len != want && !has_newline) {
		hp_log(level, "'%s': malformed %s key: %zu bytes, expected %zu",
		       path, kind, len, want + 1);
		return -HP_E_BADKEY;
	}
	if (text[plen + 2 * HP_KEY_ID_BYTES] != ' ' ||
	    hp_unhex(id, HP_KEY_ID_BYTES, text + plen) ||
	    hp_unhex(key, key_len, text + plen + 2 * HP_KEY_ID_BYTES + 1)) {
		hp_log(level,
		       "'%s': malformed %s key: expected %d and %zu hex "
		       "digits",
		       path, kind, 2 * HP_KEY_ID_BYTES, 2 * key_len);
		return -HP_E_BADKEY;
	}
	return 0;
}

/*
 * Read a secret key file into @buf and its permission bits into *@mode,
 * both from one open file so that the file checked is the file read.
 */
static int read_secret_text(const char *path, char *buf, size_t cap,
			    size_t *len, unsigned int *mode)
{
	struct stat st;
	size_t done = 0;
	int fd, rc = 0;

	/* O_NONBLOCK: a FIFO in place of the key must not hang us. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return hp_error_rc(-errno, "'%s'", path);
	if (fstat(fd, &st) < 0) {
		rc = hp_error_rc(-errno, "'%s'", path);
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = hp_error(-HP_E_BADKEY, "'%s': not a regular file", path);
		goto out_close;
	}
	/* Read one byte past @cap - 1 so an oversized file is noticed. */
	while (done < cap) {
		ssize_t n = read(fd, buf + done, cap - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = hp_error_rc(-errno, "'%s'", path);
			goto out_close;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	if (done == cap) {
		rc = hp_error(-HP_E_BADKEY, "'%s': too large for a key file",
			      path);
		goto out_close;
	}
	*len = done;
	*mode = st.st_mode & 07777;
out_close:
	close(fd);
	return rc;
}

int hp_sign_load_secret(const char *path, struct hp_seckey *key)
{
	uint8_t id[HP_KEY_ID_BYTES], pk_id[HP_KEY_ID_BYTES];
	uint8_t pk[HP_PUBKEY_BYTES], sk[HP_SECKEY_BYTES];
	char text[KEY_FILE_MAX];
	unsigned int mode = 0;
	size_t len = 0;
	int rc;

	rc = read_secret_text(path, text, sizeof(text), &len, &mode);
	if (rc)
		goto out_wipe_text;
	/*
	 * A public key passed by mistake has mode 0644 too: name the real
	 * problem. Reading before the check is harmless, the text is wiped.
	 */
	if ((mode & 077) && (len < strlen(PUB_PREFIX) ||
			     memcmp(text, PUB_PREFIX, strlen(PUB_PREFIX)))) {
		rc = hp_error(-HP_E_KEYPERM,
			      "'%s': secret key is accessible by group or "
			      "others (mode %04o)",
			      path, mode);
		hp_hint("run 'chmod 600 %s'", path);
		goto out_wipe_text;
	}
	rc = parse_key_line(path, text, len, true, id, key->sk, sizeof(key->sk),
			    HP_LOG_ERROR);
	if (rc)
		goto out_wipe_key;
	/* The stored public half must belong to the id... */
	key_id_of(pk_id, key->sk + crypto_sign_SEEDBYTES);
	if (memcmp(id, pk_id, sizeof(id))) {
		rc = hp_error(-HP_E_BADKEY,
			      "'%s': key id does not match the key", path);
		goto out_wipe_key;
	}
	/* ...and to the seed, or every signature made would be bad. */
	crypto_sign_seed_keypair(pk, sk, key->sk);
	sodium_memzero(sk, sizeof(sk));
	if (memcmp(pk, key->sk + crypto_sign_SEEDBYTES, sizeof(pk))) {
		rc = hp_error(-HP_E_BADKEY,
			      "'%s': secret key is corrupt (its public half "
			      "does not match)",
			      path);
		goto out_wipe_key;
	}
	memcpy(key->id, id, sizeof(id));
	goto out_wipe_text;
out_wipe_key:
	hp_sign_wipe(key);
out_wipe_text:
	sodium_memzero(text, sizeof(text));
	return rc;
}

/* Parse public key file text of @path into @key; report at @level. */
static int parse_public(const char *path, const uint8_t *text, size_t len,
			struct hp_pubkey *key, enum hp_log_level level)
{
	uint8_t id[HP_KEY_ID_BYTES], pk_id[HP_KEY_ID_BYTES];
	int rc = parse_key_line(path, (const char *)text, len, false, id,
				key->pk, sizeof(key->pk), level);

	if (rc)
		return rc;
	key_id_of(pk_id, key->pk);
	if (memcmp(id, pk_id, sizeof(id))) {
		hp_log(level, "'%s': key id does not match the key", path);
		return -HP_E_BADKEY;
	}
	memcpy(key->id, id, sizeof(id));
	snprintf(key->path, sizeof(key->path), "%s", path);
	return 0;
}

int hp_sign_load_public(const char *path, struct hp_pubkey *key)
{
	uint8_t *text = NULL;
	size_t len = 0;
	int rc;

	rc = hp_read_file(path, KEY_FILE_MAX, &text, &len);
	if (rc == -HP_E_TOOBIG)
		return hp_error(-HP_E_BADKEY, "'%s': too large for a key file",
				path);
	if (rc == -EINVAL)
		return hp_error(-HP_E_BADKEY, "'%s': not a regular file", path);
	if (rc)
		return hp_error_rc(rc, "'%s'", path);
	rc = parse_public(path, text, len, key, HP_LOG_ERROR);
	free(text);
	return rc;
}

bool hp_sign_has_trailer(const uint8_t *file, size_t len)
{
	return len >= HP_SIG_TRAILER_BYTES &&
	       !memcmp(file + len - HP_SIG_MAGIC_BYTES, HP_SIG_MAGIC,
		       HP_SIG_MAGIC_BYTES);
}

int hp_sign_append(const struct hp_seckey *key, struct hp_buf *file)
{
	uint8_t sig[HP_SIG_BYTES];
	int rc;

	/* Reserve first: the appends below cannot fail half-way. */
	rc = hp_buf_reserve(file, HP_SIG_TRAILER_BYTES);
	if (rc)
		return rc;
	crypto_sign_detached(sig, NULL, file->data, file->len, key->sk);
	rc = hp_buf_append(file, key->id, HP_KEY_ID_BYTES);
	if (!rc)
		rc = hp_buf_append(file, sig, sizeof(sig));
	if (!rc)
		rc = hp_buf_append(file, HP_SIG_MAGIC, HP_SIG_MAGIC_BYTES);
	return rc;
}

int hp_sign_check(const uint8_t *file, size_t len, const struct hp_trust *trust,
		  const struct hp_pubkey *pub, uint8_t key_id[HP_KEY_ID_BYTES],
		  size_t *signed_len)
{
	const uint8_t *trailer = NULL;
	const struct hp_pubkey *key = NULL;

	if (!hp_sign_has_trailer(file, len))
		return -HP_E_UNSIGNED;
	*signed_len = len - HP_SIG_TRAILER_BYTES;
	trailer = file + *signed_len;
	memcpy(key_id, trailer, HP_KEY_ID_BYTES);
	if (pub)
		key = memcmp(pub->id, key_id, HP_KEY_ID_BYTES) ? NULL : pub;
	else if (trust)
		key = hp_trust_find_by_id(trust, key_id);
	if (!key)
		return -HP_E_UNTRUSTED;
	/*
	 * The key id lies outside the signed bytes: it only selects the key.
	 * An altered id names an unknown key, or a key that fails below.
	 */
	if (crypto_sign_verify_detached(trailer + HP_KEY_ID_BYTES, file,
					*signed_len, key->pk))
		return -HP_E_BADSIG;
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_pub_name(const char *name)
{
	size_t len = strlen(name);

	/* Dot files are editor and package-manager leftovers, not keys. */
	return name[0] != '.' && len > 4 && !strcmp(name + len - 4, ".pub");
}

/*
 * Names (malloc'd, sorted) of the "*.pub" entries of @d but directories:
 * symbolic links and other odd files are listed, to be refused by name
 * when loaded.
 */
static int list_pub_files(DIR *d, const char *dir, char ***out, size_t *nr)
{
	struct dirent *de = NULL;
	char **names = NULL;
	size_t n = 0;
	int rc = 0;

	for (;;) {
		struct stat st;
		char **grown = NULL;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				rc = hp_error_rc(-errno, "'%s'", dir);
			break;
		}
		if (!is_pub_name(de->d_name))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone since readdir */
		if (S_ISDIR(st.st_mode)) {
			hp_warn("'%s/%s': not a regular file; ignored", dir,
				de->d_name);
			continue;
		}
		grown = realloc(names, (n + 1) * sizeof(*names));
		if (!grown) {
			rc = hp_error_rc(-ENOMEM, "'%s'", dir);
			break;
		}
		names = grown;
		if (asprintf(&names[n], "%s/%s", dir, de->d_name) < 0) {
			rc = hp_error_rc(-ENOMEM, "'%s'", dir);
			break;
		}
		n++;
	}
	if (rc) {
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		return rc;
	}
	/* readdir order depends on the file system: sort for determinism. */
	if (n)
		qsort(names, n, sizeof(*names), cmp_name);
	*out = names;
	*nr = n;
	return 0;
}

/*
 * One key of the store: a regular file, never a link, that only root (or
 * we) can write. Anything less is skipped with a warning that names it: a
 * key nobody may trust must not block the keys that are fine.
 */
static int load_trusted(const char *dir, const char *path,
			struct hp_pubkey *key)
{
	char text[KEY_FILE_MAX];
	ssize_t len;
	int fd, rc;

	fd = hp_secure_open(path, O_RDONLY, 0, "trusted key", HP_LOG_WARN,
			    true);
	if (fd < 0)
		goto out_skipped;
	len = read(fd, text, sizeof(text));
	close(fd);
	if (len < 0 || (size_t)len == sizeof(text)) {
		hp_warn("'%s': %s; ignored", path,
			len < 0 ? strerror(errno) : "too large for a key file");
		goto out_skipped;
	}
	rc = parse_public(path, (const uint8_t *)text, (size_t)len, key,
			  HP_LOG_WARN);
	if (!rc)
		return 0;
out_skipped:
	hp_warn("trust store '%s': key file '%s' skipped; patches signed by "
		"it are not trusted",
		dir, path);
	return -HP_E_BADKEY;
}

int hp_trust_load(struct hp_trust *trust, const char *dir)
{
	char **names = NULL;
	size_t nr = 0;
	DIR *d = NULL;
	int rc = 0;

	*trust = (struct hp_trust){ 0 };
	rc = hp_secure_dir(dir, "trust store");
	if (rc == -ENOENT) {
		hp_warn("'%s': no trusted keys directory; no patch will be "
			"trusted",
			dir);
		return 0;
	}
	if (rc == -HP_E_INSECURE)
		return rc;
	if (rc)
		return hp_error_rc(rc, "trust store '%s'", dir);
	d = opendir(dir);
	if (!d)
		return hp_error_rc(-errno, "trust store '%s'", dir);
	rc = list_pub_files(d, dir, &names, &nr);
	if (rc)
		goto out_closedir;
	trust->keys = calloc(nr ? nr : 1, sizeof(*trust->keys));
	if (!trust->keys) {
		rc = hp_error_rc(-ENOMEM, "'%s'", dir);
		goto out_free_names;
	}
	for (size_t i = 0; i < nr; i++)
		if (!load_trusted(dir, names[i], &trust->keys[trust->nr_keys]))
			trust->nr_keys++;
out_free_names:
	for (size_t i = 0; i < nr; i++)
		free(names[i]);
	free(names);
out_closedir:
	closedir(d);
	return rc;
}

const struct hp_pubkey *hp_trust_find_by_id(const struct hp_trust *trust,
					    const uint8_t id[HP_KEY_ID_BYTES])
{
	for (size_t i = 0; i < trust->nr_keys; i++)
		if (!memcmp(trust->keys[i].id, id, HP_KEY_ID_BYTES))
			return &trust->keys[i];
	return NULL;
}

void hp_trust_release(struct hp_trust *trust)
{
	free(trust->keys);
	*trust = (struct hp_trust){ 0 };
}
