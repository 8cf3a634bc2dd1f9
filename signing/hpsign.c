/*
 * hpsign: the key custodian's tool. Makes Ed25519 key pairs, signs files
 * (replacing any earlier signature) and verifies them against a public key
 * or a directory of trusted keys.
 */
#include "common/exit.h"
#include "common/hp_cli.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"
#include "signing/signing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HP_SIGN_FILE_MAX (1u << 30)

static int cmd_keygen(int argc, char **argv)
{
	uint8_t id[HP_KEY_ID_BYTES];
	char idstr[HP_KEY_ID_STR_BYTES];
	int first, rc;
	const struct hp_opt table[] = {
		{ 0 },
	};

	rc = hp_cli_parse("keygen", "NAME", table, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first != argc - 1)
		return hp_cli_usage_error("keygen", "expected one NAME");
	if (hp_sign_keygen(argv[first], id))
		return HP_EXIT_ERROR;
	hp_sign_key_id_str(idstr, id);
	printf("key id: %s\nsecret: %s.key (keep it offline, mode 0600)\n"
	       "public: %s.pub (install in trusted.d on hosts)\n",
	       idstr, argv[first], argv[first]);
	return HP_EXIT_OK;
}

static int cmd_sign(int argc, char **argv)
{
	const char *key_path = NULL, *path = NULL;
	struct hp_seckey key;
	struct hp_buf buf = { 0 };
	char idstr[HP_KEY_ID_STR_BYTES];
	uint8_t *data = NULL;
	struct stat st;
	size_t len = 0;
	int first, rc;
	const struct hp_opt table[] = {
		{ "key", 'k', HP_OPT_STR, &key_path, "KEY",
		  "secret key file (NAME.key)" },
		{ 0 },
	};

	rc = hp_cli_parse("sign", "FILE", table, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first != argc - 1 || !key_path)
		return hp_cli_usage_error("sign",
					  "give --key KEY and one FILE");
	path = argv[first];
	if (hp_sign_load_secret(key_path, &key))
		return HP_EXIT_ERROR;
	/* The signed file replaces the original: keep its permissions. */
	if (stat(path, &st) < 0) {
		rc = hp_error_rc(-errno, "'%s'", path);
		goto out;
	}
	rc = hp_read_file(path, HP_SIGN_FILE_MAX, &data, &len);
	if (rc) {
		hp_error_rc(rc, "'%s'", path);
		goto out;
	}
	/* Re-signing replaces the old trailer; never stack signatures. */
	if (hp_sign_has_trailer(data, len)) {
		len -= HP_SIG_TRAILER_BYTES;
		hp_sign_key_id_str(idstr, data + len);
		hp_log(HP_LOG_INFO, "'%s': replacing the signature by key %s",
		       path, idstr);
	}
	rc = hp_buf_append(&buf, data, len);
	if (!rc)
		rc = hp_sign_append(&key, &buf);
	if (!rc)
		rc = hp_write_file(path, buf.data, buf.len, st.st_mode & 0777,
				   0);
	if (rc) {
		hp_error_rc(rc, "'%s'", path);
		goto out;
	}
	hp_sign_key_id_str(idstr, key.id);
	printf("%s: signed by key %s\n", path, idstr);
out:
	hp_sign_wipe(&key);
	hp_buf_release(&buf);
	free(data);
	return rc ? HP_EXIT_ERROR : HP_EXIT_OK;
}

/* Says why @path failed hp_sign_check(); the key is @pub or @trust_dir. */
static void report_verify(const char *path, int rc,
			  const uint8_t id[HP_KEY_ID_BYTES],
			  const struct hp_pubkey *pub, const char *trust_dir)
{
	char idstr[HP_KEY_ID_STR_BYTES], pubstr[HP_KEY_ID_STR_BYTES];

	hp_sign_key_id_str(idstr, id);
	switch (rc) {
	case -HP_E_UNSIGNED:
		hp_error(rc, "'%s': not signed", path);
		hp_hint("sign it with 'hpsign sign --key KEY %s'", path);
		break;
	case -HP_E_UNTRUSTED:
		if (pub) {
			hp_sign_key_id_str(pubstr, pub->id);
			hp_error(rc,
				 "'%s': signed by key %s, not by '%s' (key %s)",
				 path, idstr, pub->path, pubstr);
		} else {
			hp_error(rc,
				 "'%s': signed by key %s, which is not in '%s'",
				 path, idstr, trust_dir);
		}
		break;
	default:
		hp_error(rc,
			 "'%s': bad signature by key %s: the file was altered "
			 "after signing",
			 path, idstr);
		break;
	}
}

static int cmd_verify(int argc, char **argv)
{
	const char *pub_path = NULL, *trust_dir = NULL, *path = NULL;
	struct hp_trust trust = { 0 };
	struct hp_pubkey pub;
	uint8_t id[HP_KEY_ID_BYTES] = { 0 };
	char idstr[HP_KEY_ID_STR_BYTES];
	uint8_t *data = NULL;
	size_t len = 0, signed_len = 0;
	int first, rc;
	const struct hp_opt table[] = {
		{ "pub", 0, HP_OPT_STR, &pub_path, "PUB",
		  "public key file (NAME.pub)" },
		{ "trust", 0, HP_OPT_STR, &trust_dir, "DIR",
		  "directory of trusted public keys (*.pub)" },
		{ 0 },
	};

	rc = hp_cli_parse("verify", "FILE", table, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first != argc - 1 || !pub_path == !trust_dir)
		return hp_cli_usage_error("verify", "give --pub PUB or --trust "
						    "DIR, and one FILE");
	path = argv[first];
	if (pub_path ? hp_sign_load_public(pub_path, &pub)
		     : hp_trust_load(&trust, trust_dir))
		return HP_EXIT_ERROR;
	rc = hp_read_file(path, HP_SIGN_FILE_MAX, &data, &len);
	if (rc) {
		hp_error_rc(rc, "'%s'", path);
		goto out;
	}
	rc = hp_sign_check(data, len, pub_path ? NULL : &trust,
			   pub_path ? &pub : NULL, id, &signed_len);
	if (rc) {
		report_verify(path, rc, id, pub_path ? &pub : NULL, trust_dir);
		goto out;
	}
	hp_sign_key_id_str(idstr, id);
	printf("%s: good signature by key %s\n", path, idstr);
out:
	hp_trust_release(&trust);
	free(data);
	return rc ? HP_EXIT_ERROR : HP_EXIT_OK;
}

static int cmd_keyid(int argc, char **argv)
{
	struct hp_pubkey pub;
	char idstr[HP_KEY_ID_STR_BYTES];
	int first, rc;
	const struct hp_opt table[] = {
		{ 0 },
	};

	rc = hp_cli_parse("keyid", "PUB", table, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first != argc - 1)
		return hp_cli_usage_error("keyid", "expected one PUB file");
	if (hp_sign_load_public(argv[first], &pub))
		return HP_EXIT_ERROR;
	hp_sign_key_id_str(idstr, pub.id);
	printf("%s\n", idstr);
	return HP_EXIT_OK;
}

static const struct hp_cmd commands[] = {
	{ "keygen", "make a key pair NAME.key and NAME.pub", cmd_keygen },
	{ "sign", "sign a file (replacing any signature)", cmd_sign },
	{ "verify", "check a file's signature", cmd_verify },
	{ "keyid", "print a public key's id", cmd_keyid },
	{ 0 },
};

int main(int argc, char **argv)
{
	hp_log_set_prog("hpsign");
	if (hp_sign_init())
		return HP_EXIT_ERROR;
	return hp_cli_dispatch("Make keys, sign and verify hpatch files.",
			       commands, argc, argv);
}
