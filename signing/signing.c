/*
 * Ed25519 keys and signatures (libsodium), and the host's trust store.
 * Key files are one text line each:
 *   hpatch-ed25519-public-v1 <key id, 16 hex> <public key, 64 hex>
 *   hpatch-ed25519-secret-v1 <key id, 16 hex> <secret key, 128 hex>
 * Secrets are wiped from memory with sodium_memzero and never logged.
 */
#include "signing/signing.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

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
#define KEY_FILE_MAX 1024

static_assert(HP_PUBKEY_BYTES == crypto_sign_PUBLICKEYBYTES, "pk size");
static_assert(HP_SECKEY_BYTES == crypto_sign_SECRETKEYBYTES, "sk size");
static_assert(HP_SIG_BYTES == crypto_sign_BYTES, "sig size");

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
	/* prefix + id + ' ' + hex key + '\n' */
	char line[sizeof(SEC_PREFIX) + 2 * HP_KEY_ID_BYTES + 2 +
		  2 * HP_SECKEY_BYTES + 2];
	char idhex[HP_KEY_ID_STR_BYTES];
	size_t n;
	int rc;

	hp_sign_key_id_str(idhex, id);
	n = (size_t)snprintf(line, sizeof(line), "%s%s ", prefix, idhex);
	hp_hex(line + n, key, key_len);
	n += 2 * key_len;
	line[n++] = '\n';
	rc = hp_write_file(path, line, n, mode, 1);
	sodium_memzero(line, sizeof(line));
	if (rc == -EEXIST)
		return hp_error(-HP_E_EXISTS,
				"'%s': already exists; not overwriting a key",
				path);
	if (rc)
		return hp_error_rc(rc, "'%s'", path);
	return 0;
}

int hp_sign_keygen(const char *base, uint8_t id[HP_KEY_ID_BYTES])
{
	uint8_t pk[HP_PUBKEY_BYTES], sk[HP_SECKEY_BYTES];
	char *sec_path = NULL, *pub_path = NULL;
	struct stat st;
	int rc = 0;

	if (asprintf(&sec_path, "%s.key", base) < 0 ||
	    asprintf(&pub_path, "%s.pub", base) < 0) {
		rc = -ENOMEM;
		goto out_free;
	}
	/* Check both first: never leave one new file beside an old one. */
	if (!stat(sec_path, &st) || !stat(pub_path, &st)) {
		rc = hp_error(-HP_E_EXISTS,
			      "'%s': already exists; not overwriting a key",
			      !stat(sec_path, &st) ? sec_path : pub_path);
		goto out_free;
	}
	crypto_sign_keypair(pk, sk);
	key_id_of(id, pk);
	rc = write_key_file(sec_path, SEC_PREFIX, id, sk, sizeof(sk), 0600);
	if (!rc) {
		rc = write_key_file(pub_path, PUB_PREFIX, id, pk, sizeof(pk),
				    0644);
		if (rc)
			unlink(sec_path);
	}
	sodium_memzero(sk, sizeof(sk));
out_free:
	free(sec_path);
	free(pub_path);
	return rc;
}

/* Parse "<prefix><id> <hex>\n" into @id and @key. */
static int parse_key_line(const char *path, const char *text, size_t len,
			  const char *prefix, uint8_t id[HP_KEY_ID_BYTES],
			  uint8_t *key, size_t key_len)
{
	const size_t plen = strlen(prefix);
	const size_t want = plen + 2 * HP_KEY_ID_BYTES + 1 + 2 * key_len;

	if (len < want || memcmp(text, prefix, plen) ||
	    text[plen + 2 * HP_KEY_ID_BYTES] != ' ' ||
	    (len > want && !(len == want + 1 && text[want] == '\n')))
		return hp_error(
			-HP_E_BADKEY, "'%s': not an hpatch %s key file", path,
			strcmp(prefix, PUB_PREFIX) ? "secret" : "public");
	if (hp_unhex(id, HP_KEY_ID_BYTES, text + plen) ||
	    hp_unhex(key, key_len, text + plen + 2 * HP_KEY_ID_BYTES + 1))
		return hp_error(-HP_E_BADKEY, "'%s': malformed key (bad hex)",
				path);
	return 0;
}

static int read_key_text(const char *path, uint8_t **text, size_t *len)
{
	int rc = hp_read_file(path, KEY_FILE_MAX, text, len);

	if (rc == -HP_E_TOOBIG)
		return hp_error(-HP_E_BADKEY, "'%s': too large for a key file",
				path);
	if (rc)
		return hp_error_rc(rc, "'%s'", path);
	return 0;
}

int hp_sign_load_secret(const char *path, struct hp_seckey *key)
{
	uint8_t id[HP_KEY_ID_BYTES], pk_id[HP_KEY_ID_BYTES];
	uint8_t *text = NULL;
	size_t len = 0;
	struct stat st;
	int rc;

	if (stat(path, &st) < 0)
		return hp_error_rc(-errno, "'%s'", path);
	if (st.st_mode & 077) {
		hp_error(-HP_E_KEYPERM,
			 "'%s': secret key is readable by others (mode %03o)",
			 path, (unsigned int)(st.st_mode & 0777));
		hp_hint("run 'chmod 600 %s'", path);
		return -HP_E_KEYPERM;
	}
	rc = read_key_text(path, &text, &len);
	if (rc)
		return rc;
	rc = parse_key_line(path, (const char *)text, len, SEC_PREFIX, id,
			    key->sk, sizeof(key->sk));
	sodium_memzero(text, len);
	free(text);
	if (rc)
		goto out_wipe;
	/* Ed25519 secret keys end with their public key. */
	key_id_of(pk_id, key->sk + 32);
	if (memcmp(id, pk_id, sizeof(id))) {
		rc = hp_error(-HP_E_BADKEY,
			      "'%s': key id does not match the key", path);
		goto out_wipe;
	}
	memcpy(key->id, id, sizeof(id));
	return 0;
out_wipe:
	hp_sign_wipe(key);
	return rc;
}

int hp_sign_load_public(const char *path, struct hp_pubkey *key)
{
	uint8_t id[HP_KEY_ID_BYTES], pk_id[HP_KEY_ID_BYTES];
	uint8_t *text = NULL;
	size_t len = 0;
	int rc;

	rc = read_key_text(path, &text, &len);
	if (rc)
		return rc;
	rc = parse_key_line(path, (const char *)text, len, PUB_PREFIX, id,
			    key->pk, sizeof(key->pk));
	free(text);
	if (rc)
		return rc;
	key_id_of(pk_id, key->pk);
	if (memcmp(id, pk_id, sizeof(id)))
		return hp_error(-HP_E_BADKEY,
				"'%s': key id does not match the key", path);
	memcpy(key->id, id, sizeof(id));
	snprintf(key->path, sizeof(key->path), "%s", path);
	return 0;
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
	int rc = hp_buf_reserve(file, HP_SIG_TRAILER_BYTES);

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
	if (crypto_sign_verify_detached(trailer + HP_KEY_ID_BYTES, file,
					*signed_len, key->pk))
		return -HP_E_BADSIG;
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int hp_trust_load(struct hp_trust *trust, const char *dir)
{
	struct dirent *de = NULL;
	char **names = NULL;
	size_t nr = 0;
	DIR *d = NULL;
	int rc = 0;

	*trust = (struct hp_trust){0};
	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT) {
			hp_warn("'%s': no trusted keys directory; no patch "
				"will be trusted",
				dir);
			return 0;
		}
		return hp_error_rc(-errno, "'%s'", dir);
	}
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char **nn = NULL;

		if (len < 5 || strcmp(de->d_name + len - 4, ".pub") ||
		    de->d_name[0] == '.')
			continue;
		nn = realloc(names, (nr + 1) * sizeof(*nn));
		if (!nn) {
			rc = -ENOMEM;
			goto out_free;
		}
		names = nn;
		if (asprintf(&names[nr], "%s/%s", dir, de->d_name) < 0) {
			rc = -ENOMEM;
			goto out_free;
		}
		nr++;
	}
	qsort(names, nr, sizeof(*names), cmp_name);
	trust->keys = calloc(nr ? nr : 1, sizeof(*trust->keys));
	if (!trust->keys) {
		rc = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < nr && !rc; i++) {
		rc = hp_sign_load_public(names[i], &trust->keys[i]);
		if (!rc)
			trust->nr_keys++;
	}
out_free:
	for (size_t i = 0; i < nr; i++)
		free(names[i]);
	free(names);
	closedir(d);
	if (rc)
		hp_trust_release(trust);
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
	*trust = (struct hp_trust){0};
}
