/*
 * Structured queries for the host agent: which installed patches a process
 * maps the target of, and which patches are applied in it, read from the
 * in-target records as `hpatch status` reads them, without any output.
 */
#include "runtime/runtime_int.h"
#include "common/hp_err.h"
#include "common/hp_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hp_rt_match(pid_t pid, const struct hp_patch *const *patches, size_t nr,
		uint32_t *mapped, size_t *nr_hit)
{
	struct hp_proc proc;
	int rc = hp_proc_open(pid, &proc, true);

	*nr_hit = 0;
	if (rc)
		return hp_proc_gone(pid) ? -HP_E_GONE : rc;
	for (size_t i = 0; i < nr; i++) {
		const struct hp_patch *p = patches[i];

		mapped[i] = 0;
		for (uint32_t j = 0; p && j < p->nr_modules; j++) {
			struct hp_rmodule mod;

			mapped[i] += !hp_proc_find_module(
				&proc, p->modules[j].build_id,
				p->modules[j].build_id_len, &mod);
		}
		*nr_hit += mapped[i] > 0;
	}
	hp_proc_close(&proc);
	return 0;
}

int hp_rt_query(pid_t pid, struct hp_rt_applied **out, size_t *nr_out)
{
	struct hp_rt_region *regions = NULL;
	struct hp_rt_applied *list = NULL;
	struct hp_proc proc;
	size_t nr = 0;
	int rc = hp_proc_open(pid, &proc, true);

	*out = NULL;
	*nr_out = 0;
	if (rc)
		return hp_proc_gone(pid) ? -HP_E_GONE : rc;
	rc = hp_rt_find_regions(&proc, &regions, &nr);
	if (rc)
		goto out_close;
	list = calloc(nr ? nr : 1, sizeof(*list));
	if (!list) {
		rc = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < nr; i++) {
		const struct hp_rt_header *h = &regions[i].hdr;
		struct hp_rt_applied *a = &list[i];

		snprintf(a->patch_id, sizeof(a->patch_id), "%s", h->patch_id);
		snprintf(a->module, sizeof(a->module), "%s", h->module);
		hp_hex(a->build_id, h->build_id,
		       h->build_id_len <= HP_BUILD_ID_MAX ? h->build_id_len
							  : 0);
		a->sequence = h->sequence;
		a->order = h->order;
		a->applied_at = h->applied_at;
		a->active = regions[i].active;
		a->in_place = regions[i].nr_in_place > 0;
	}
	*out = list;
	*nr_out = nr;
out_free:
	hp_rt_regions_free(regions, nr);
out_close:
	hp_proc_close(&proc);
	return rc;
}
