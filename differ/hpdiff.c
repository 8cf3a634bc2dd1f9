/*
 * hpdiff: the release engineer's build step. Compares the old and new
 * builds' objects, prints what changed (text or --json) and writes a signed
 * .hpatch pinned to the old binary's build-id.
 */
#include "common/exit.h"
#include "common/hp_cli.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_out.h"
#include "differ/differ.h"
#include "packer/packer.h"
#include "signing/signing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char synopsis[] = "--old OLD --new NEW --binary BIN [-o OUT]";

static char *id_from_output(const char *out)
{
	const char *base = strrchr(out, '/');
	char *id = strdup(base ? base + 1 : out);
	char *dot = id ? strrchr(id, '.') : NULL;

	if (dot && !strcmp(dot, ".hpatch"))
		*dot = 0;
	return id;
}

static int write_patch(const char *out, const char *key_path,
		       struct hp_patch *p)
{
	struct hp_seckey key;
	struct hp_buf buf = { 0 };
	int rc = 0;

	if (key_path) {
		rc = hp_sign_load_secret(key_path, &key);
		if (rc)
			return rc;
	}
	rc = hp_pack_write(p, key_path ? &key : NULL, &buf);
	if (key_path)
		hp_sign_wipe(&key);
	if (rc) {
		hp_error_rc(rc, "'%s': cannot encode the patch", out);
		goto out_release;
	}
	rc = hp_write_file(out, buf.data, buf.len, 0644, 0);
	if (rc)
		hp_error_rc(rc, "'%s'", out);
	else
		hp_log(HP_LOG_INFO, "wrote '%s' (%zu bytes%s)", out, buf.len,
		       key_path ? ", signed" : ", unsigned");
out_release:
	hp_buf_release(&buf);
	return rc;
}

int main(int argc, char **argv)
{
	struct hp_diff_opts opts = { 0 };
	const char *out = NULL, *key = NULL;
	struct hp_diff_report *report = NULL;
	struct hp_patch *patch = NULL;
	long sequence = 0, expires = 0;
	bool json = false;
	char *id = NULL;
	struct hp_out o;
	int first, rc, status;
	const struct hp_opt table[] = {
		{ "old", 0, HP_OPT_STR, &opts.old_path, "OLD",
		  "old build: object file or build tree" },
		{ "new", 0, HP_OPT_STR, &opts.new_path, "NEW",
		  "new build: same kind as --old" },
		{ "binary", 0, HP_OPT_STR, &opts.binary, "BIN",
		  "the old linked binary as shipped" },
		{ "debug-file", 0, HP_OPT_STR, &opts.debug_file, "FILE",
		  "separate debug file of a stripped --binary" },
		{ "output", 'o', HP_OPT_STR, &out, "OUT",
		  "write the patch here (else report only)" },
		{ "key", 'k', HP_OPT_STR, &key, "KEY",
		  "sign with this secret key (else unsigned)" },
		{ "id", 0, HP_OPT_STR, &opts.patch_id, "ID",
		  "patch id (default: OUT's base name)" },
		{ "description", 'd', HP_OPT_STR, &opts.description, "TEXT",
		  "what the patch fixes" },
		{ "sequence", 0, HP_OPT_LONG, &sequence, "N",
		  "anti-rollback sequence number (default: now)" },
		{ "expires", 0, HP_OPT_LONG, &expires, "T",
		  "unix time after which hosts refuse the patch" },
		{ "include-line-changes", 0, HP_OPT_FLAG,
		  &opts.include_line_changes, NULL,
		  "patch functions whose only change is __LINE__ values" },
		{ "json", 0, HP_OPT_FLAG, &json, NULL,
		  "print the report as JSON" },
		{ 0 },
	};

	hp_log_set_prog("hpdiff");
	if (argc > 1 && !strcmp(argv[1], "--version")) {
		printf("hpdiff %s\n", HP_VERSION);
		return HP_EXIT_OK;
	}
	rc = hp_cli_parse(NULL, synopsis, table, argc, argv, &first);
	if (rc >= 0)
		return rc;
	if (first < argc)
		return hp_cli_usage_error(NULL, "unexpected argument '%s'",
					  argv[first]);
	if (!opts.old_path || !opts.new_path || !opts.binary)
		return hp_cli_usage_error(NULL, "--old, --new and --binary are "
						"required");
	if (sequence < 0 || expires < 0)
		return hp_cli_usage_error(NULL, "--sequence and --expires "
						"must not be negative");
	if (hp_sign_init())
		return HP_EXIT_ERROR;
	opts.sequence = (uint64_t)sequence;
	opts.expires = (uint64_t)expires;
	if (!opts.patch_id && out) {
		id = id_from_output(out);
		opts.patch_id = id;
	}

	rc = hp_diff_run(&opts, &report, &patch);
	if (report &&
	    (rc == 0 || rc == -HP_E_REFUSED || rc == -HP_E_NOCHANGE)) {
		hp_out_init(&o, stdout, json);
		hp_diff_report_print(report, &o);
		hp_out_finish(&o);
	}
	if (rc == -HP_E_REFUSED) {
		hp_error(rc,
			 "%s: %u change(s) cannot be hot-patched safely; "
			 "see 'refused' above",
			 opts.new_path, report->nr_refused);
		for (uint32_t i = 0; i < report->nr_refused; i++) {
			const struct hp_diff_refusal *x = &report->refused[i];

			hp_error(rc, "%s: '%s': %s [%s]", x->object, x->symbol,
				 x->message, hp_err_name(x->code));
			if (x->hint)
				hp_hint("%s", x->hint);
		}
		status = HP_EXIT_ERROR;
	} else if (rc == -HP_E_NOCHANGE) {
		hp_log(HP_LOG_INFO,
		       "%s: no changed functions; no patch "
		       "written",
		       opts.new_path);
		status = HP_EXIT_NOTHING;
	} else if (rc) {
		status = HP_EXIT_ERROR;
	} else if (out) {
		status = write_patch(out, key, patch) ? HP_EXIT_ERROR
						      : HP_EXIT_OK;
	} else {
		status = HP_EXIT_OK;
	}
	hp_patch_free(patch);
	hp_diff_report_free(report);
	free(id);
	return status;
}
