/*
 * The in-target record: every patch region starts with a struct
 * hp_rt_header and one struct hp_rt_func per redirected function, mapped
 * read-only. Any later hpatch finds applied patches by scanning the
 * process's anonymous read-only mappings for the magic, so status and
 * revert need neither the patch file nor host state.
 */
#include "runtime/runtime_int.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define HP_LOG_PREFIX "rt: "
#define HP_RT_MAX_FUNCS 65536

/* What hp_rt_set_faults asked for: parsed once, before any stop. */
static struct {
	char step[16]; /* "": none */
	unsigned long nth;
	unsigned long hits;
	char delay_step[16];
	unsigned long delay_ms;
} faults;

/* Split "STEP[:N]" into @step (of @cap bytes) and N (else @dflt). */
static unsigned long parse_step(const char *spec, char *step, size_t cap,
				unsigned long dflt)
{
	const char *colon = spec ? strchr(spec, ':') : NULL;
	const size_t len = colon  ? (size_t)(colon - spec)
			   : spec ? strlen(spec)
				  : 0;

	step[0] = 0;
	if (!len || len >= cap)
		return dflt;
	memcpy(step, spec, len);
	step[len] = 0;
	return colon ? strtoul(colon + 1, NULL, 10) : dflt;
}

void hp_rt_set_faults(const char *fault, const char *delay)
{
	faults.hits = 0;
	faults.nth = parse_step(fault, faults.step, sizeof(faults.step), 1);
	faults.delay_ms = parse_step(delay, faults.delay_step,
				     sizeof(faults.delay_step), 0);
	if (!faults.delay_ms)
		faults.delay_step[0] = 0;
}

int hp_rt_fault(const char *step)
{
	if (faults.delay_step[0] && !strcmp(faults.delay_step, step))
		usleep((useconds_t)faults.delay_ms * 1000);
	if (!faults.step[0] || strcmp(faults.step, step) ||
	    ++faults.hits != faults.nth)
		return 0;
	return hp_error(-HP_E_FAULT, "fault injected at step '%s' (#%lu)", step,
			faults.nth);
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
