/*
 * One object against one linked binary: hpdiff's proof (diff_proof.c) run
 * on a single object, for tools that must choose which of several objects
 * a binary was linked from (hpdeb-elf, when DWARF names them alike).
 */
#include "common/hp_log.h"
#include "differ/differ_int.h"

#include <errno.h>
#include <stdlib.h>

int hp_diff_prove_object(const char *obj_path, const char *binary,
			 uint32_t *nr_proved, uint32_t *nr_funcs,
			 uint32_t *nr_refused)
{
	struct hp_diff_report *r = calloc(1, sizeof(*r));
	struct hp_diff_report_module rm = { 0 };
	struct hp_pair pair = { 0 };
	struct hp_binary *bin = NULL;
	const enum hp_log_level level = hp_log_get_level();
	int rc;

	if (!r)
		return -ENOMEM;
	elf_version(EV_CURRENT);
	rc = hp_binary_open(binary, NULL, &bin);
	if (!rc)
		rc = hp_obj_open(obj_path, obj_path, &pair.old_obj);
	if (!rc) {
		/* the proof's info line, once per candidate: noise here */
		hp_log_set_level(HP_LOG_WARN);
		rc = hp_prove_binary(&pair, 1, bin, r, &rm);
		hp_log_set_level(level);
	}
	if (!rc) {
		*nr_proved = rm.nr_proved;
		*nr_funcs = rm.nr_proof_funcs;
		*nr_refused = r->nr_refused;
	}
	hp_obj_free(pair.old_obj);
	hp_binary_free(bin);
	hp_diff_report_free(r);
	return rc;
}
