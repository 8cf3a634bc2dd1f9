/*
 * The in-target record: every patch region starts with a struct
 * hp_rt_header and one struct hp_rt_func per redirected function, mapped
 * read+execute with the patch's code (read-only, on its own, in regions of
 * earlier hpatch versions). Any later hpatch finds applied patches by the
 * magic at the start of the process's anonymous private mappings that are
 * read-only or read+execute, so status and revert need neither the patch
 * file nor host state.
 */
#include "runtime/runtime_int.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
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
	struct timespec left = { (time_t)(faults.delay_ms / 1000),
				 (long)(faults.delay_ms % 1000) * 1000000 };

	/* The whole delay: a signal of hpatch's own (the wake-up timer of
	 * ptrace waits, kept armed through a remote session) ends a sleep
	 * early, with EINTR. */
	if (faults.delay_step[0] && !strcmp(faults.delay_step, step)) {
		/* Said first: a test kills hpatch inside the delay. */
		hp_log(HP_LOG_INFO, "test delay: %lu ms at step '%s'",
		       faults.delay_ms, step);
		while (nanosleep(&left, &left) && errno == EINTR)
			;
	}
	if (!faults.step[0] || strcmp(faults.step, step) ||
	    ++faults.hits != faults.nth)
		return 0;
	return hp_error(-HP_E_FAULT, "fault injected at step '%s' (#%lu)", step,
			faults.nth);
}

/*
 * The target's memory is the target's: a process can plant records that
 * look like ours (by mistake, or to mislead root's hpatch). Everything
 * read from a region is checked against what hpatch writes, and bounded:
 * a record that fails is never "in place", a region with no valid record
 * is no region, names are made printable, and a process is read for at
 * most HP_RT_MAX_RECORDS records (hpatch never writes nearly as many).
 */
#define HP_RT_MAX_RECORDS (1u << 17)
#define HP_RT_MAX_REGIONS 4096

/* Make a name from the target printable: no terminal escape survives. */
static void sanitize(char *s, size_t size)
{
	s[size - 1] = 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			*s = '?';
}

/* End of the run of private anonymous mappings that starts with @m. */
static hp_raddr_t anon_end(const struct hp_proc *proc, const struct hp_map *m)
{
	hp_raddr_t end = m->end;

	for (const struct hp_map *n = m + 1;
	     n < proc->maps + proc->nr_maps && n->start == end && !n->path[0] &&
	     !n->shared;
	     n++)
		end = n->end;
	return end;
}

/* Is the header of a region at @m what hpatch writes? */
static bool header_valid(const struct hp_proc *proc, const struct hp_map *m,
			 const struct hp_rt_header *h)
{
	const uint64_t page = HP_X86_PAGE_SIZE;

	const bool unwind = h->flags & HP_RT_UNWIND;

	return (unwind ? h->version == HP_RT_VERSION_UNWIND
		       : h->version == HP_RT_VERSION) &&
	       h->nr_funcs && h->nr_funcs <= HP_RT_MAX_FUNCS &&
	       sizeof(*h) + (uint64_t)h->nr_funcs * sizeof(struct hp_rt_func) +
			       (unwind ? sizeof(struct hp_rt_unwind) : 0) <=
		       h->header_size &&
	       h->header_size % page == 0 && h->region_size % page == 0 &&
	       h->region_size > h->header_size &&
	       h->header_size <= m->end - m->start &&
	       h->image_addr == m->start + h->header_size &&
	       h->region_size <= anon_end(proc, m) - m->start &&
	       h->build_id_len <= HP_BUILD_ID_MAX;
}

/*
 * Is @f a record hpatch writes for region @r? Its new code inside the
 * region's image; its site (if any) in a module's executable text, outside
 * the region; a redirect's jump the jmp rel32 from the site to its code.
 */
static bool record_valid(const struct hp_proc *proc,
			 const struct hp_rt_region *r,
			 const struct hp_rt_func *f)
{
	const hp_raddr_t lo = r->hdr.image_addr,
			 hi = r->addr + r->hdr.region_size;
	const struct hp_map *site = NULL;
	uint8_t jump[HP_X86_JMP_REL32_SIZE];

	if (f->kind == HP_RT_REC_RESTORE)
		return f->old_addr && !f->new_addr && !f->new_size &&
		       f->orig[0] == HP_X86_JMP_REL32;
	if (f->kind != HP_RT_REC_REDIRECT || f->new_addr < lo ||
	    f->new_addr >= hi || f->new_size > hi - f->new_addr)
		return false;
	if (!f->old_addr)
		return true; /* a new function */
	site = hp_proc_find_map(proc, f->old_addr);
	if (site && (!(site->prot & PROT_EXEC) || site->path[0] != '/'))
		return false; /* (none: a library unloaded since) */
	return !hp_x86_encode_jmp(jump, f->old_addr, f->new_addr) &&
	       !memcmp(jump, f->jump, sizeof(jump));
}

/* The unwind record of @r, if its addresses lie in @r's image (else none:
 * a record the target forged is never acted on). */
static int read_unwind(const struct hp_proc *proc, struct hp_rt_region *r)
{
	const hp_raddr_t lo = r->hdr.image_addr,
			 hi = r->addr + r->hdr.region_size;
	struct hp_rt_unwind *u = &r->unwind;
	int rc = hp_proc_read(proc,
			      r->addr + sizeof(r->hdr) +
				      r->hdr.nr_funcs * sizeof(*r->funcs),
			      u, sizeof(*u));

	if (!rc && (u->eh_addr < lo || u->eh_addr >= hi || u->obj_addr < lo ||
		    u->obj_addr > hi - HP_UNWIND_OBJECT_SIZE))
		*u = (struct hp_rt_unwind){ 0 };
	return rc;
}

static int read_region(const struct hp_proc *proc, const struct hp_map *m,
		       size_t budget, struct hp_rt_region *out)
{
	struct hp_rt_region r = { .addr = m->start };
	uint32_t nr_valid = 0, nr_redirects = 0;
	size_t len;
	int rc;

	if (hp_proc_read(proc, m->start, &r.hdr, sizeof(r.hdr)) ||
	    memcmp(r.hdr.magic, HP_RT_MAGIC, sizeof(r.hdr.magic)) ||
	    !header_valid(proc, m, &r.hdr))
		return -ENOENT;
	if (r.hdr.nr_funcs > budget)
		return -E2BIG;
	/* (For tests: the process exits or execs between two reads.) */
	rc = hp_rt_fault("region");
	if (rc)
		return rc;
	len = r.hdr.nr_funcs * sizeof(*r.funcs);
	r.funcs = malloc(len);
	if (!r.funcs)
		return -ENOMEM;
	rc = hp_proc_read(proc, m->start + sizeof(r.hdr), r.funcs, len);
	if (!rc && (r.hdr.flags & HP_RT_UNWIND))
		rc = read_unwind(proc, &r);
	if (rc) {
		free(r.funcs);
		return rc;
	}
	r.in_place = calloc(r.hdr.nr_funcs, sizeof(*r.in_place));
	if (!r.in_place) {
		free(r.funcs);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < r.hdr.nr_funcs; i++) {
		struct hp_rt_func *f = &r.funcs[i];
		uint8_t cur[HP_X86_JMP_REL32_SIZE];

		sanitize(f->name, sizeof(f->name));
		if (!record_valid(proc, &r, f)) {
			r.nr_invalid++;
			continue;
		}
		nr_valid++;
		if (!f->old_addr)
			continue; /* a new function: nothing redirected */
		nr_redirects += f->kind == HP_RT_REC_REDIRECT;
		r.in_place[i] =
			!hp_proc_read(proc, f->old_addr, cur, sizeof(cur)) &&
			!memcmp(cur, f->jump, sizeof(cur));
		r.nr_in_place += r.in_place[i];
	}
	if (!nr_valid) {
		free(r.funcs);
		free(r.in_place);
		hp_dbg(HP_DBG_FORMAT,
		       "pid %d: 0x%" PRIx64 ": records hpatch did not write "
		       "(ignored)",
		       (int)proc->pid, r.addr);
		return -ENOENT;
	}
	/* Every jump in place, at least one, and nothing forged. */
	r.active = nr_redirects && !r.nr_invalid;
	for (uint32_t i = 0; i < r.hdr.nr_funcs && r.active; i++)
		r.active = !r.funcs[i].old_addr || r.in_place[i];
	sanitize(r.hdr.patch_id, sizeof(r.hdr.patch_id));
	sanitize(r.hdr.module, sizeof(r.hdr.module));
	*out = r;
	return 0;
}

int hp_rt_find_regions(const struct hp_proc *proc, struct hp_rt_region **out,
		       size_t *nr)
{
	struct hp_rt_region *list = NULL;
	size_t n = 0, budget = HP_RT_MAX_RECORDS;

	for (size_t i = 0; i < proc->nr_maps; i++) {
		const struct hp_map *m = &proc->maps[i];
		struct hp_rt_region r, *nl = NULL;
		int rc;

		/* The header's mapping: read+execute (rt_region.c), or
		 * read-only as earlier hpatch versions left it. */
		if (m->path[0] || m->shared ||
		    (m->prot != PROT_READ &&
		     m->prot != (PROT_READ | PROT_EXEC)))
			continue;
		rc = n < HP_RT_MAX_REGIONS ? read_region(proc, m, budget, &r)
					   : -E2BIG;
		if (rc == -ENOENT)
			continue;
		if (rc == -E2BIG) {
			hp_warn("pid %d: more patch records than hpatch ever "
				"writes; the regions from 0x%" PRIx64
				" on are ignored",
				(int)proc->pid, m->start);
			break;
		}
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
		budget -= r.hdr.nr_funcs;
	}
	*out = list;
	*nr = n;
	return 0;
}

bool hp_rt_region_redirects(const struct hp_proc *proc,
			    const struct hp_rt_region *r,
			    const struct hp_module *m, hp_raddr_t bias)
{
	const hp_raddr_t lo = r->hdr.image_addr,
			 hi = r->addr + r->hdr.region_size;
	uint32_t nr_sites = 0;

	for (uint32_t i = 0; i < m->nr_funcs; i++) {
		const hp_raddr_t at = bias + m->funcs[i].old_addr;
		uint8_t cur[HP_X86_JMP_REL32_SIZE];
		hp_raddr_t to;

		if (m->funcs[i].flags & HP_FUNC_NEW)
			continue;
		if (hp_proc_read(proc, at, cur, sizeof(cur)) ||
		    cur[0] != HP_X86_JMP_REL32)
			return false;
		to = at + HP_X86_JMP_REL32_SIZE +
		     (int64_t)(int32_t)hp_get_le32(cur + 1);
		if (to < lo || to >= hi)
			return false;
		nr_sites++;
	}
	return nr_sites > 0;
}

void hp_rt_regions_free(struct hp_rt_region *r, size_t nr)
{
	for (size_t i = 0; r && i < nr; i++) {
		free(r[i].funcs);
		free(r[i].in_place);
	}
	free(r);
}
