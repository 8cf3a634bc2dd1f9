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

static const char synopsis[] =
	"--old OLD --new NEW --binary BIN [--and --old OLD2 --new NEW2 "
	"--binary LIB ...] [-o OUT]";

#define HP_MAX_MODULES 64 /* the format's limit */
#define HP_MODULE_OPTS 4  /* table[0..3]: a module's own options */

/*
 * Each "--and" starts another module of the same patch (say the program
 * and a library it loads): --old, --new, --binary and --debug-file after
 * it describe that module; the other options may stand anywhere. @table's
 * first HP_MODULE_OPTS entries are the module's; *@nr_mods counts them.
 * Return: -1 parsed, or an exit code.
 */
static int parse_args(const struct hp_opt *table, size_t nr_opts, int argc,
		      char **argv, struct hp_diff_module *mods,
		      uint32_t *nr_mods)
{
	struct hp_opt *t = calloc(nr_opts, sizeof(*t));
	char **seg = calloc((size_t)argc + 1, sizeof(*seg));
	int rc = -1;

	if (!t || !seg) {
		rc = hp_cli_usage_error(NULL, "out of memory");
		goto out_free;
	}
	memcpy(t, table, nr_opts * sizeof(*t));
	seg[0] = argv[0];
	for (int i = 1; i <= argc && rc < 0;) {
		struct hp_diff_module *m = &mods[*nr_mods];
		int end = i, n = 1, first;

		while (end < argc && strcmp(argv[end], "--and"))
			end++;
		if (*nr_mods >= HP_MAX_MODULES) {
			rc = hp_cli_usage_error(NULL, "at most %d modules",
						HP_MAX_MODULES);
			break;
		}
		t[0].value = &m->old_path;
		t[1].value = &m->new_path;
		t[2].value = &m->binary;
		t[3].value = &m->debug_file;
		for (int k = i; k < end; k++)
			seg[n++] = argv[k];
		seg[n] = NULL;
		rc = hp_cli_parse(NULL, synopsis, t, n, seg, &first);
		if (rc >= 0)
			break;
		if (first < n)
			rc = hp_cli_usage_error(
				NULL, "unexpected argument '%s'", seg[first]);
		else if (!m->old_path || !m->new_path || !m->binary)
			rc = hp_cli_usage_error(
				NULL, *nr_mods
					      ? "each --and needs --old, --new "
						"and --binary"
					      : "--old, --new and --binary are "
						"required");
		(*nr_mods)++;
		i = end + 1;
	}
out_free:
	free(t);
	free(seg);
	return rc;
}

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

/* Why each refused change was refused, one line each, on stderr. */
static void print_refusals(const struct hp_diff_report *report,
			   const char *new_path, int rc)
{
	uint32_t foreign = 0;

	for (uint32_t i = 0; i < report->nr_refused; i++)
		foreign += report->refused[i].code == -HP_E_FOREIGN_BINARY;
	if (foreign)
		hp_error(rc,
			 "%s: a binary was not linked from the old "
			 "objects; no patch written",
			 new_path);
	else
		hp_error(rc,
			 "%s: %u change(s) cannot be hot-patched "
			 "safely; see 'refused' above",
			 new_path, report->nr_refused);
	for (uint32_t i = 0; i < report->nr_refused; i++) {
		const struct hp_diff_refusal *x = &report->refused[i];

		if (x->demangled)
			hp_error(rc, "%s: '%s' (%s): %s [%s]", x->object,
				 x->demangled, x->symbol, x->message,
				 hp_err_name(x->code));
		else if (*x->symbol)
			hp_error(rc, "%s: '%s': %s [%s]", x->object, x->symbol,
				 x->message, hp_err_name(x->code));
		else
			hp_error(rc, "%s: %s [%s]", x->module, x->message,
				 hp_err_name(x->code));
		if (x->hint)
			hp_hint("%s", x->hint);
	}
}

/*
 * Compare, print the report (also of a refusal or of no change, which
 * explain themselves), and write the patch to @out if one was made.
 * Return: the exit code.
 */
static int run(const struct hp_diff_opts *opts, const char *out,
	       const char *key, bool json)
{
	struct hp_diff_report *report = NULL;
	struct hp_patch *patch = NULL;
	struct hp_out o;
	int rc, status;

	hp_diff_set_debug_root(getenv("HP_DEBUG_ROOT"));
	rc = hp_diff_run(opts, &report, &patch);
	if (report &&
	    (rc == 0 || rc == -HP_E_REFUSED || rc == -HP_E_NOCHANGE)) {
		hp_out_init(&o, stdout, json);
		hp_diff_report_print(report, &o);
		hp_out_finish(&o);
	}
	if (rc == -HP_E_REFUSED) {
		print_refusals(report, opts->new_path, rc);
		status = HP_EXIT_ERROR;
	} else if (rc == -HP_E_NOCHANGE) {
		hp_log(HP_LOG_INFO,
		       "%s: no changed functions; no patch written",
		       opts->new_path);
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
	return status;
}

int main(int argc, char **argv)
{
	struct hp_diff_opts opts = { 0 };
	static struct hp_diff_module mods[HP_MAX_MODULES];
	uint32_t nr_mods = 0;
	const char *out = NULL, *key = NULL;
	long sequence = 0, expires = 0;
	bool json = false;
	char *id = NULL;
	int rc, status;
	const struct hp_opt table[] = {
		/* The module's own (HP_MODULE_OPTS): set by parse_args. */
		{ "old", 0, HP_OPT_STR, NULL, "OLD",
		  "old build: object file or build tree" },
		{ "new", 0, HP_OPT_STR, NULL, "NEW",
		  "new build: same kind as --old" },
		{ "binary", 0, HP_OPT_STR, NULL, "BIN",
		  "the old linked binary (or library) as shipped" },
		{ "debug-file", 0, HP_OPT_STR, NULL, "FILE",
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
	rc = parse_args(table, sizeof(table) / sizeof(*table), argc, argv, mods,
			&nr_mods);
	if (rc >= 0)
		return rc;
	opts.old_path = mods[0].old_path;
	opts.new_path = mods[0].new_path;
	opts.binary = mods[0].binary;
	opts.debug_file = mods[0].debug_file;
	opts.more = mods + 1;
	opts.nr_more = nr_mods - 1;
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

	status = run(&opts, out, key, json);
	free(id);
	return status;
}
