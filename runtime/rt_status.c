/*
 * What is applied where: the status of every patch region of a process,
 * the processes a patch targets, and the description of one attempt's
 * result for the audit log.
 */
#include "runtime/rt_lifecycle.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"
#include "signing/signing.h"
#include <unistd.h>

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP_LOG_PREFIX "rt: "

void hp_result_build_id(struct hp_rt_result *res, const uint8_t *id,
			uint32_t len)
{
	hp_hex(res->build_id, id, len);
}

/* Append @text to the comma-separated list @list of @size bytes. */
void hp_list_add(char *list, size_t size, const char *text)
{
	size_t used = strlen(list);

	if (used + strlen(text) + 2 > size)
		return;
	snprintf(list + used, size - used, "%s%s", used ? "," : "", text);
}

void hp_result_add_function(struct hp_rt_result *res, const char *name)
{
	hp_list_add(res->functions, sizeof(res->functions), name);
}

const char *hp_region_state(const struct hp_rt_region *r)
{
	if (r->nr_invalid)
		return "damaged (records hpatch did not write)";
	if (r->active)
		return "active";
	if (r->nr_in_place)
		return "partly replaced by a newer patch";
	if (r->hdr.flags & HP_RT_SUPERSEDED)
		return "superseded";
	if (r->hdr.flags & HP_RT_RETIRED)
		return "retired";
	return "inactive";
}

static void status_one(const struct hp_proc *proc, struct hp_out *o,
		       const struct hp_rt_region *regions, size_t nr)
{
	hp_out_begin_object(o, NULL);
	hp_out_i64(o, "pid", proc->pid);
	hp_out_begin_array(o, "patches");
	for (size_t i = 0; i < nr; i++) {
		const struct hp_rt_region *r = &regions[i];
		char hex[2 * HP_BUILD_ID_MAX + 1];
		char key[HP_KEY_ID_STR_BYTES];

		hp_hex(hex, r->hdr.build_id,
		       r->hdr.build_id_len <= HP_BUILD_ID_MAX
			       ? r->hdr.build_id_len
			       : 0);
		hp_sign_key_id_str(key, r->hdr.key_id);
		hp_out_begin_object(o, NULL);
		hp_out_str(o, "patch_id", "%s", r->hdr.patch_id);
		hp_out_str(o, "module", "%s", r->hdr.module);
		hp_out_str(o, "build_id", "%s", hex);
		hp_out_u64(o, "sequence", r->hdr.sequence);
		hp_out_str(o, "key_id", "%s", key);
		hp_out_u64(o, "applied_at", r->hdr.applied_at);
		hp_out_str(o, "state", "%s", hp_region_state(r));
		hp_out_str(o, "region", "0x%" PRIx64, r->addr);
		hp_out_begin_array(o, "functions");
		for (uint32_t j = 0; j < r->hdr.nr_funcs; j++) {
			hp_out_str(o, NULL, "%s", r->funcs[j].name);
		}
		hp_out_end_array(o);
		hp_out_end_object(o);
	}
	hp_out_end_array(o);
	hp_out_end_object(o);
}

int hp_rt_status(pid_t pid, struct hp_out *o)
{
	pid_t *pids = NULL;
	size_t nr_pids = 0;
	int rc = 0;

	if (pid) {
		pids = malloc(sizeof(*pids));
		if (!pids)
			return -ENOMEM;
		pids[nr_pids++] = pid;
	} else {
		rc = hp_proc_list_tasks(0, &pids, &nr_pids);
		if (rc)
			return rc;
	}
	hp_out_begin_array(o, "processes");
	for (size_t i = 0; i < nr_pids; i++) {
		struct hp_rt_region *regions = NULL;
		struct hp_proc proc;
		size_t nr = 0;

		if (pids[i] == hp_self_pid())
			continue;
		rc = hp_proc_open(pids[i], &proc, !pid);
		if (rc && pid)
			break;
		if (rc) {
			rc = 0;
			continue;
		}
		rc = hp_rt_find_regions(&proc, &regions, &nr);
		if (!rc && (nr || pid))
			status_one(&proc, o, regions, nr);
		hp_rt_regions_free(regions, nr);
		hp_proc_close(&proc);
		if (rc && pid)
			break;
		rc = 0;
	}
	hp_out_end_array(o);
	free(pids);
	return rc;
}

int hp_rt_find_targets(const struct hp_patch *p, pid_t **out, size_t *nr_out)
{
	struct hp_id_hits hits = { 0 };
	const pid_t self = hp_self_pid();
	pid_t *pids = NULL;
	size_t nr = 0, n = 0;
	int rc = hp_proc_list_tasks(0, &pids, &nr);

	if (rc)
		return rc;
	for (size_t i = 0; i < nr; i++) {
		struct hp_proc proc;
		struct hp_rmodule mod;
		bool hit = false;

		if (pids[i] == self)
			continue;
		/* A process of an executable found before: no more to read
		 * (the apply checks its memory). */
		if (hp_id_hits_exe(&hits, pids[i])) {
			pids[n++] = pids[i];
			continue;
		}
		if (hp_proc_open_scan(pids[i], &proc))
			continue;
		for (uint32_t j = 0; j < p->nr_modules && !hit; j++)
			hit = !hp_proc_find_module_in(
				&proc, &hits, p->modules[j].build_id,
				p->modules[j].build_id_len, &mod);
		hp_proc_close(&proc);
		if (hit)
			pids[n++] = pids[i];
	}
	hp_id_hits_release(&hits);
	*out = pids;
	*nr_out = n;
	return 0;
}
