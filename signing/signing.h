/*
 * Ed25519 keys, detached signatures over whole files, and the host's trust
 * store (a directory of public keys). Built on libsodium; no other component
 * touches key material.
 */
#ifndef HP_SIGNING_H
#define HP_SIGNING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hp_util.h"

#define HP_KEY_ID_BYTES 8
#define HP_PUBKEY_BYTES 32
#define HP_SECKEY_BYTES 64
#define HP_SIG_BYTES 64
/* Signature trailer: key id, signature, then this magic as the last bytes. */
#define HP_SIG_MAGIC "HPSIGv1\n"
#define HP_SIG_MAGIC_BYTES 8
#define HP_SIG_TRAILER_BYTES \
	(HP_KEY_ID_BYTES + HP_SIG_BYTES + HP_SIG_MAGIC_BYTES)
#define HP_KEY_ID_STR_BYTES (2 * HP_KEY_ID_BYTES + 1)
/* The host's trust store; the build sets it from CMake's HP_TRUST_DIR, the
 * same path `cmake --install` creates. */
#ifndef HP_TRUST_DIR_DEFAULT
#define HP_TRUST_DIR_DEFAULT "/etc/hpatch/trusted.d"
#endif

/* Key id: the first 8 bytes of BLAKE2b-256 of the public key. */
struct hp_pubkey {
	uint8_t id[HP_KEY_ID_BYTES];
	uint8_t pk[HP_PUBKEY_BYTES];
	char path[256]; /* file it was loaded from, for messages */
};

struct hp_seckey {
	uint8_t id[HP_KEY_ID_BYTES];
	uint8_t sk[HP_SECKEY_BYTES];
};

struct hp_trust {
	struct hp_pubkey *keys;
	size_t nr_keys;
};

/* Call once before anything else. Return: 0 or -HP_E_BADKEY (no libsodium). */
int hp_sign_init(void) __attribute__((warn_unused_result));

/*
 * hp_sign_keygen() - write @base.key (secret, mode 0600) and @base.pub.
 * Refuses (-HP_E_EXISTS) when either exists; the secret is wiped from memory
 * before returning. On success @id receives the new key's id.
 */
int hp_sign_keygen(const char *base, uint8_t id[HP_KEY_ID_BYTES])
	__attribute__((warn_unused_result));

/*
 * hp_sign_load_secret() - read a secret key file. Refuses a file that group
 * or others can read (-HP_E_KEYPERM). Wipe @key with hp_sign_wipe() after use.
 * Return: 0, -errno, -HP_E_BADKEY, -HP_E_KEYPERM. Reports its own errors.
 */
int hp_sign_load_secret(const char *path, struct hp_seckey *key)
	__attribute__((warn_unused_result));
void hp_sign_wipe(struct hp_seckey *key);

/* Return: 0, -errno or -HP_E_BADKEY. Reports its own errors. */
int hp_sign_load_public(const char *path, struct hp_pubkey *key)
	__attribute__((warn_unused_result));

/* "0123456789abcdef" form of a key id. */
void hp_sign_key_id_str(char out[HP_KEY_ID_STR_BYTES],
			const uint8_t id[HP_KEY_ID_BYTES]);

/* Whether the last bytes of @file are a signature trailer. */
bool hp_sign_has_trailer(const uint8_t *file, size_t len);

/*
 * hp_sign_append() - sign every byte of @file and append the trailer.
 * Return: 0 or -ENOMEM.
 */
int hp_sign_append(const struct hp_seckey *key, struct hp_buf *file)
	__attribute__((warn_unused_result));

/*
 * hp_sign_check() - verify the trailer of @file against the key whose id it
 * names: @pub if given, else the matching key of @trust.
 * On return *@key_id holds the trailer's key id when one was present, and
 * *@signed_len the number of bytes covered (everything before the trailer).
 * Does not log: the caller names the file.
 * Return: 0, -HP_E_UNSIGNED, -HP_E_UNTRUSTED (no such key), -HP_E_BADSIG.
 */
int hp_sign_check(const uint8_t *file, size_t len, const struct hp_trust *trust,
		  const struct hp_pubkey *pub, uint8_t key_id[HP_KEY_ID_BYTES],
		  size_t *signed_len) __attribute__((warn_unused_result));

/*
 * hp_trust_load() - load every "*.pub" file of @dir. @dir and every
 * directory above it must be owned by root (or us) and writable by nobody
 * else (see common/hp_secure.h), else nothing is trusted. A missing
 * directory yields an empty store (and a warning). A key file that is a
 * symbolic link, writable by others, unreadable or malformed is skipped
 * with a warning naming it: it cannot make a patch trusted, and it does
 * not stop the other keys from working.
 * Return: 0, -errno or -HP_E_INSECURE.
 */
int hp_trust_load(struct hp_trust *trust, const char *dir)
	__attribute__((warn_unused_result));
const struct hp_pubkey *hp_trust_find_by_id(const struct hp_trust *trust,
					    const uint8_t id[HP_KEY_ID_BYTES]);
void hp_trust_release(struct hp_trust *trust);

#define HP_HASH_BYTES 16
/* BLAKE2b-128 of @len bytes: how patches pin the original function bytes. */
void hp_hash128(uint8_t out[HP_HASH_BYTES], const void *p, size_t len);

#endif
