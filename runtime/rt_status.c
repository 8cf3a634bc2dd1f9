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

/*
 * Whether process @pid, which hp_proc_open could not open (@rc), is one
 * whose patches this hpatch cannot tell: its map read, not its memory
 * (root without CAP_DAC_OVERRIDE, another user's), or no file descriptor
 * or memory left. Not one that is gone, nor one whose map is closed to
 * this hpatch (another user's for a user who is not root, one the kernel
 * keeps from root), as for a scan for targets.
 */
static bool unknown_to_us(pid_t pid, int rc)
{
	struct hp_proc proc;

	if (rc == -HP_E_GONE || rc == -ENOENT || rc == -ESRCH)
		return false;
	if (rc != -EACCES && rc != -EPERM)
		return true;
	rc = hp_proc_open_scan(pid, &proc);
	if (!rc)
		hp_proc_close(&proc);
	return !rc;
}

int hp_rt_status(pid_t pid, struct hp_out *o)
{
	struct hp_rt_unknown *unknown = NULL;
	size_t nr_unknown = 0, cap = 0;
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
		if (!rc) {
			rc = hp_rt_find_regions(&proc, &regions, &nr);
			/* Exited or exec'd while read (its memory reads
			 * nothing): no patch left, as one gone before. */
			if (rc && !pid &&
			    (hp_proc_gone(pids[i]) || hp_proc_execd(&proc)))
				rc = -HP_E_GONE;
			if (!rc && (nr || pid))
				status_one(&proc, o, regions, nr);
			hp_rt_regions_free(regions, nr);
			hp_proc_close(&proc);
		}
		if (rc && pid)
			break;
		/* Said, never left out: a list without it is not the
		 * host's (each its own line; the exit is 1). */
		if (rc && unknown_to_us(pids[i], rc)) {
			if (hp_grow(&unknown, &cap, nr_unknown,
				    sizeof(*unknown), 8)) {
				rc = -ENOMEM;
				break;
			}
			unknown[nr_unknown++] =
				(struct hp_rt_unknown){ pids[i], rc };
			hp_error_rc(rc,
				    "pid %d: cannot tell which patches it has",
				    (int)pids[i]);
		}
		rc = 0;
	}
	hp_out_end_array(o);
	/* (Always in JSON, a key a script can rely on; in text, if any.) */
	if (!pid && (o->json || nr_unknown)) {
		hp_out_begin_array(o, "unknown");
		for (size_t i = 0; i < nr_unknown; i++) {
			hp_out_begin_object(o, NULL);
			hp_out_i64(o, "pid", unknown[i].pid);
			hp_out_str(o, "reason", "%s",
				   hp_strerror(unknown[i].rc));
			hp_out_end_object(o);
		}
		hp_out_end_array(o);
	}
	if (nr_unknown && !rc) {
		hp_hint("run hpatch as root with CAP_SYS_PTRACE and "
			"CAP_DAC_OVERRIDE (other users' processes), or "
			"with file descriptors to spare");
		rc = unknown[0].rc;
	}
	free(unknown);
	free(pids);
	return rc;
}

/* Add @pid (why: @rc) to @t's unknown. Return: 0 or -ENOMEM. */
static int add_unknown(struct hp_rt_targets *t, size_t *cap, pid_t pid, int rc)
{
	if (hp_grow(&t->unknown, cap, t->nr_unknown, sizeof(*t->unknown), 8))
		return -ENOMEM;
	t->unknown[t->nr_unknown++] = (struct hp_rt_unknown){ pid, rc };
	return 0;
}

/*
 * @pid's answer to the scan for @p: 0 a target; -HP_E_NOTARGET not one,
 * or no answer that matters: gone, or its map closed to this hpatch
 * (another user's process for a user who is not root; one the kernel
 * keeps from root); else -errno, it cannot be told: its map read, but
 * not its memory (root without CAP_DAC_OVERRIDE, another user's
 * process), no file descriptor or memory left.
 */
static int scan_one(const struct hp_patch *p, struct hp_id_hits *hits,
		    pid_t pid)
{
	struct hp_rmodule mod;
	struct hp_proc proc;
	int rc = hp_proc_open_scan(pid, &proc), mrc = -HP_E_NOTARGET;

	if (rc == -HP_E_GONE || rc == -ENOENT || rc == -ESRCH ||
	    rc == -EACCES || rc == -EPERM)
		return -HP_E_NOTARGET;
	if (rc)
		return rc;
	for (uint32_t j = 0; j < p->nr_modules && mrc; j++) {
		rc = hp_proc_find_module_in(&proc, hits, p->modules[j].build_id,
					    p->modules[j].build_id_len, &mod);
		/* One module found makes a target; one unread, unknown. */
		if (!rc || mrc == -HP_E_NOTARGET)
			mrc = rc == -HP_E_GONE ? -HP_E_NOTARGET : rc;
	}
	hp_proc_close(&proc);
	return mrc;
}

int hp_rt_find_targets(const struct hp_patch *p, struct hp_rt_targets *t)
{
	struct hp_id_hits hits = { 0 };
	const pid_t self = hp_self_pid();
	size_t nr = 0, cap = 0;
	int rc;

	*t = (struct hp_rt_targets){ 0 };
	rc = hp_proc_list_tasks(0, &t->pids, &nr);
	for (size_t i = 0; !rc && i < nr; i++) {
		const pid_t pid = t->pids[i];
		int src;

		if (pid == self)
			continue;
		/* A process of an executable found before: no more to read
		 * (the apply checks its memory). */
		src = hp_id_hits_exe(&hits, pid) ? 0 : scan_one(p, &hits, pid);
		if (!src)
			t->pids[t->nr++] = pid;
		else if (src != -HP_E_NOTARGET)
			rc = add_unknown(t, &cap, pid, src);
	}
	hp_id_hits_release(&hits);
	if (rc)
		hp_rt_targets_free(t);
	return rc;
}

void hp_rt_targets_free(struct hp_rt_targets *t)
{
	free(t->pids);
	free(t->unknown);
	*t = (struct hp_rt_targets){ 0 };
}
