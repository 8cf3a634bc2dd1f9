/*
 * The in-target record: every patch region starts with a struct
 * hp_rt_header and one struct hp_rt_func per redirected function, mapped
 * read-only. Any later hpatch finds applied patches by scanning the
 * process's anonymous read-only mappings for the magic, so status and
 * revert need neither the patch file nor host state.
 */
#include "runtime/runtime_int.h"
#include "runtime/arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define HP_LOG_PREFIX "rt: "
#define HP_RT_MAX_FUNCS 65536

/*
 * HPATCH_FAULT=STEP fails the first time STEP is reached, STEP:N the N-th
 * time (to fail after some jumps were written). Steps, in order: mmap,
 * write, mprotect, seize (threads attached, none stopped), stop (all
 * stopped), jump, unjump. HPATCH_DELAY=STEP:MS waits MS milliseconds
 * there first (for a test to act meanwhile: kill the target, say).
 */
int hp_rt_fault(const char *step)
{
	static unsigned int hits;
	const char *f = getenv("HPATCH_FAULT"), *d = getenv("HPATCH_DELAY");
	size_t len = strlen(step);
	unsigned long nth = 1;

	if (d && !strncmp(d, step, len) && d[len] == ':')
		usleep((useconds_t)strtoul(d + len + 1, NULL, 10) * 1000);
	if (!f || strncmp(f, step, len) || (f[len] && f[len] != ':'))
		return 0;
	if (f[len] == ':')
		nth = strtoul(f + len + 1, NULL, 10);
	if (++hits != nth)
		return 0;
	return hp_error(-HP_E_FAULT, "fault injected at step '%s' (#%lu)", step,
			nth);
}

static int read_region(const struct hp_proc *proc, const struct hp_map *m,
		       struct hp_rt_region *out)
{
	struct hp_rt_region r = { .addr = m->start };
	size_t len;
	int rc;

	if (hp_proc_read(proc, m->start, &r.hdr, sizeof(r.hdr)) ||
	    memcmp(r.hdr.magic, HP_RT_MAGIC, sizeof(r.hdr.magic)))
		return -ENOENT;
	if (r.hdr.version != HP_RT_VERSION ||
	    r.hdr.nr_funcs > HP_RT_MAX_FUNCS ||
	    sizeof(r.hdr) + (uint64_t)r.hdr.nr_funcs * sizeof(*r.funcs) >
		    r.hdr.header_size ||
	    r.hdr.header_size > m->end - m->start)
		return -ENOENT;
	len = r.hdr.nr_funcs * sizeof(*r.funcs);
	r.funcs = malloc(len ? len : 1);
	if (!r.funcs)
		return -ENOMEM;
	rc = hp_proc_read(proc, m->start + sizeof(r.hdr), r.funcs, len);
	if (rc) {
		free(r.funcs);
		return rc;
	}
	r.in_place = calloc(r.hdr.nr_funcs + 1, sizeof(*r.in_place));
	if (!r.in_place) {
		free(r.funcs);
		return -ENOMEM;
	}
	r.active = true;
	for (uint32_t i = 0; i < r.hdr.nr_funcs; i++) {
		uint8_t cur[HP_X86_JMP_REL32_SIZE];

		if (!r.funcs[i].old_addr)
			continue; /* a new function: nothing redirected */
		r.in_place[i] = !hp_proc_read(proc, r.funcs[i].old_addr, cur,
					      sizeof(cur)) &&
				!memcmp(cur, r.funcs[i].jump, sizeof(cur));
		r.nr_in_place += r.in_place[i];
		r.active &= r.in_place[i];
	}
	r.hdr.patch_id[sizeof(r.hdr.patch_id) - 1] = 0;
	r.hdr.module[sizeof(r.hdr.module) - 1] = 0;
	for (uint32_t i = 0; i < r.hdr.nr_funcs; i++)
		r.funcs[i].name[sizeof(r.funcs[i].name) - 1] = 0;
	*out = r;
	return 0;
}

int hp_rt_find_regions(const struct hp_proc *proc, struct hp_rt_region **out,
		       size_t *nr)
{
	struct hp_rt_region *list = NULL;
	size_t n = 0;

	for (size_t i = 0; i < proc->nr_maps; i++) {
		const struct hp_map *m = &proc->maps[i];
		struct hp_rt_region r, *nl = NULL;
		int rc;

		if (m->path[0] || m->shared || m->prot != PROT_READ)
			continue;
		rc = read_region(proc, m, &r);
		if (rc == -ENOENT)
			continue;
		if (rc) {
			hp_rt_regions_free(list, n);
			return rc;
		}
		nl = realloc(list, (n + 1) * sizeof(*nl));
		if (!nl) {
			free(r.funcs);
			free(r.in_place);
			hp_rt_regions_free(list, n);
			return -ENOMEM;
		}
		list = nl;
		list[n++] = r;
	}
	*out = list;
	*nr = n;
	return 0;
}

void hp_rt_regions_free(struct hp_rt_region *r, size_t nr)
{
	for (size_t i = 0; r && i < nr; i++) {
		free(r[i].funcs);
		free(r[i].in_place);
	}
	free(r);
}
