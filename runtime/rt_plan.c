/*
 * The patch chain's rules, decided before any stop: which earlier patches
 * are in effect on a module and in which order, what each function's
 * original bytes are under them, and what a replacing patch restores.
 */
#include "runtime/rt_lifecycle.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP_LOG_PREFIX "rt: "

/*
 * The record of an earlier patch that wrote @head at @addr: with the bytes
 * there now, the one in effect, whose code a thread may be running instead
 * of the old function; with the bytes a record displaced, the one before
 * it, in effect or not (a record stacked over, or replaced), so following
 * these back gives the original bytes.
 */
const struct hp_rt_func *hp_plan_writer_of(const struct hp_prep *pr,
					   hp_raddr_t addr, const uint8_t *head)
{
	for (size_t i = pr->nr_prior; i-- > 0;) {
		const struct hp_rt_region *r = &pr->prior[i];

		for (uint32_t j = 0; j < r->hdr.nr_funcs; j++)
			if (r->funcs[j].old_addr == addr &&
			    !memcmp(r->funcs[j].jump, head,
				    HP_X86_JMP_REL32_SIZE))
				return &r->funcs[j];
	}
	return NULL;
}

/* The bytes at @addr before any patch: undo the chain of writers. */
void hp_plan_original_head(const struct hp_prep *pr, hp_raddr_t addr,
			   uint8_t *head)
{
	for (int depth = 0; depth < 64; depth++) {
		const struct hp_rt_func *w = hp_plan_writer_of(pr, addr, head);

		/* A restore wrote the original bytes back: @head is them. */
		if (!w || w->kind == HP_RT_REC_RESTORE)
			return;
		memcpy(head, w->orig, HP_X86_JMP_REL32_SIZE);
	}
}

/* Check the running bytes of every function against the patch's pins. */
/*
 * The bytes of every function @m replaces, in one read when they lie
 * within HP_VERIFY_SPAN_MAX of each other (they sit side by side in the
 * module's text): one pread, where one per function cost a system call
 * each. *@lo: the address of (*@span)[0]. NULL *@span: read each alone.
 */
#define HP_VERIFY_SPAN_MAX (256u << 10)

static void read_span(const struct hp_proc *proc, const struct hp_prep *pr,
		      uint8_t **span, uint64_t *lo)
{
	const struct hp_module *m = pr->m;
	uint64_t hi = 0;

	*span = NULL;
	*lo = UINT64_MAX;
	for (uint32_t i = 0; i < m->nr_funcs; i++) {
		const struct hp_func *f = &m->funcs[i];

		if (f->flags & HP_FUNC_NEW)
			continue;
		if (f->old_addr < *lo)
			*lo = f->old_addr;
		if (f->old_addr + f->old_size > hi)
			hi = f->old_addr + f->old_size;
	}
	if (hi <= *lo || hi - *lo > HP_VERIFY_SPAN_MAX)
		return;
	*span = malloc(hi - *lo);
	if (*span && hp_proc_read(proc, pr->mod.bias + *lo, *span, hi - *lo)) {
		free(*span);
		*span = NULL; /* (a gap between them: one by one) */
	}
}

/* @f's bytes, alone, into *@buf (grown). Return: 0, or -errno reported. */
static int read_func(const struct hp_proc *proc, const struct hp_prep *pr,
		     const struct hp_func *f, uint8_t **buf)
{
	uint8_t *nb = realloc(*buf, f->old_size);
	int rc;

	if (!nb)
		return -ENOMEM;
	*buf = nb;
	rc = hp_proc_read(proc, pr->mod.bias + f->old_addr, nb, f->old_size);
	if (rc)
		hp_error_rc(rc, "pid %d: %s: cannot read '%s'", (int)proc->pid,
			    pr->mod.path, f->name);
	return rc;
}

int hp_plan_verify(const struct hp_proc *proc, struct hp_prep *pr)
{
	const struct hp_module *m = pr->m;
	uint8_t *buf = NULL, *span = NULL;
	uint64_t lo = 0;
	int rc = 0;

	read_span(proc, pr, &span, &lo);
	for (uint32_t i = 0; i < m->nr_funcs && !rc; i++) {
		const struct hp_func *f = &m->funcs[i];
		uint8_t hash[HP_HASH_BYTES];
		uint8_t *bytes = NULL;

		if (f->flags & HP_FUNC_NEW)
			continue;
		if (f->old_size < HP_X86_JMP_REL32_SIZE) {
			rc = hp_error(-HP_E_BADFORMAT,
				      "patch: function '%s' is %u bytes",
				      f->name, f->old_size);
			break;
		}
		if (span)
			bytes = span + (f->old_addr - lo);
		else if (!(rc = read_func(proc, pr, f, &buf)))
			bytes = buf;
		if (rc)
			break;
		/* Earlier patches may have redirected it: pin the original. */
		memcpy(pr->heads[i], bytes, HP_X86_JMP_REL32_SIZE);
		hp_plan_original_head(pr, pr->mod.bias + f->old_addr, bytes);
		hp_hash128(hash, bytes, f->old_size);
		if (memcmp(hash, f->old_hash, sizeof(f->old_hash))) {
			rc = hp_error(-HP_E_MISMATCH,
				      "pid %d: %s: '%s' at 0x%" PRIx64
				      " differs from the build the patch was "
				      "made for",
				      (int)proc->pid, pr->mod.path, f->name,
				      pr->mod.bias + f->old_addr);
			if (bytes[0] == HP_X86_JMP_REL32)
				hp_hint("the function is already redirected, "
					"by another patch or tool; see "
					"'hpatch status -p %d'",
					(int)proc->pid);
		}
	}
	free(span);
	free(buf);
	return rc;
}

/*
 * Replace mode (the default): an earlier patch's redirection of a function
 * this patch does not carry is undone in the same stop. The newer patch is
 * cumulative: what it leaves out, the fixed build no longer changes.
 */
int hp_plan_restores(struct hp_prep *pr)
{
	const struct hp_module *m = pr->m;

	for (size_t i = 0; i < pr->nr_prior; i++) {
		const struct hp_rt_region *r = &pr->prior[i];

		for (uint32_t j = 0; j < r->hdr.nr_funcs; j++) {
			const struct hp_rt_func *f = &r->funcs[j];
			struct hp_rt_func *rs = NULL;
			bool carried = false;

			if (!f->old_addr || !r->in_place[j] ||
			    f->kind == HP_RT_REC_RESTORE)
				continue;
			for (uint32_t k = 0; k < m->nr_funcs; k++)
				carried |=
					!(m->funcs[k].flags & HP_FUNC_NEW) &&
					pr->mod.bias + m->funcs[k].old_addr ==
						f->old_addr;
			if (carried)
				continue;
			rs = realloc(pr->restores,
				     (pr->nr_restores + 1) * sizeof(*rs));
			if (!rs)
				return -ENOMEM;
			pr->restores = rs;
			rs = &pr->restores[pr->nr_restores++];
			*rs = (struct hp_rt_func){
				.old_addr = f->old_addr,
				.kind = HP_RT_REC_RESTORE,
			};
			memcpy(rs->orig, f->jump, HP_X86_JMP_REL32_SIZE);
			memcpy(rs->jump, f->jump, HP_X86_JMP_REL32_SIZE);
			hp_plan_original_head(pr, f->old_addr, rs->jump);
			memcpy(rs->name, f->name, sizeof(rs->name));
		}
	}
	return 0;
}

/*
 * Was @a applied after @b? By the order each apply wrote (one more than
 * any region then in the process; 0 from loaders before it), then by time
 * in seconds, then by sequence: a downgrade applied within the same second
 * as the patch it replaced is still the newer one.
 */
bool hp_plan_applied_after(const struct hp_rt_header *a,
			   const struct hp_rt_header *b)
{
	if (a->order != b->order)
		return a->order > b->order;
	if (a->applied_at != b->applied_at)
		return a->applied_at > b->applied_at;
	return a->sequence > b->sequence;
}

static bool same_module(const struct hp_rt_header *h, const struct hp_module *m)
{
	return h->build_id_len == m->build_id_len &&
	       !memcmp(h->build_id, m->build_id, m->build_id_len);
}

/*
 * Keep the regions of every patch on @pr's module, oldest first, in
 * pr->prior (freed with hp_rt_regions_free): those in effect (any record
 * in place), and those whose records only a chain still names (every
 * record stacked over or replaced). Set pr->order past every region in
 * the process. The newest in effect decides: the same patch again is
 * "already applied" (-HP_E_APPLIED, not reported), an older sequence is a
 * downgrade.
 */
int hp_plan_prior(const struct hp_patch *p, const struct hp_proc *proc,
		  const struct hp_rt_opts *opts, struct hp_prep *pr)
{
	const struct hp_module *m = pr->m;
	struct hp_rt_region *regions = NULL, *top = NULL;
	size_t nr = 0, n = 0;
	int rc = hp_rt_find_regions(proc, &regions, &nr);

	if (rc)
		return rc;
	pr->order = 1;
	for (size_t i = 0; i < nr; i++) {
		/* (The header is the target's memory: never wrap.) */
		if (regions[i].hdr.order >= pr->order)
			pr->order = regions[i].hdr.order == UINT32_MAX
					    ? UINT32_MAX
					    : regions[i].hdr.order + 1;
		if (!same_module(&regions[i].hdr, m)) {
			free(regions[i].funcs);
			free(regions[i].in_place);
			continue;
		}
		regions[n++] = regions[i];
	}
	/* Oldest first. */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i;
		     j > 0 && hp_plan_applied_after(&regions[j - 1].hdr,
						    &regions[j].hdr);
		     j--) {
			struct hp_rt_region t = regions[j];

			regions[j] = regions[j - 1];
			regions[j - 1] = t;
		}
	for (size_t i = n; i-- > 0 && !top;)
		top = regions[i].nr_in_place ? &regions[i] : NULL;
	/* "Applied" is read from the code, never from the record alone. */
	if (top && !strcmp(top->hdr.patch_id, p->id) &&
	    top->hdr.sequence == p->sequence &&
	    hp_rt_region_redirects(proc, top, m, pr->mod.bias))
		rc = -HP_E_APPLIED; /* the caller says it, once per process */
	else if (top && top->hdr.sequence > p->sequence &&
		 !(opts->flags & HP_RT_ALLOW_DOWNGRADE))
		rc = hp_error(-HP_E_DOWNGRADE,
			      "pid %d: %s: patch '%s' (sequence %" PRIu64
			      ") is older than applied '%s' (%" PRIu64 ")",
			      (int)proc->pid, top->hdr.module, p->id,
			      p->sequence, top->hdr.patch_id,
			      top->hdr.sequence);
	pr->prior = regions;
	pr->nr_prior = n;
	return rc;
}

static struct hp_busy_range busy_code(hp_raddr_t start, uint64_t size,
				      const char *name)
{
	return (struct hp_busy_range){ .start = start,
				       .end = start + size,
				       .name = name };
}

struct hp_busy_range hp_busy_site(const struct hp_rt_func *f, bool undo)
{
	return (struct hp_busy_range){
		.start = f->old_addr,
		.end = f->old_addr + HP_X86_JMP_REL32_SIZE,
		.name = f->name,
		.ip_only = true,
		.bytes = undo ? f->jump : f->orig,
	};
}

struct hp_busy_range hp_busy_region(const struct hp_rt_region *r)
{
	return busy_code(r->addr, r->hdr.region_size, r->hdr.patch_id);
}

size_t hp_busy_ranges(const struct hp_prep *pr, const struct hp_rt_func *recs,
		      uint32_t nr, struct hp_busy_range *out)
{
	size_t k = 0;

	for (uint32_t i = 0; i < nr; i++) {
		const struct hp_rt_func *f = &recs[i], *w = NULL;
		const char *name = f->name;

		if (!pr) { /* revert: its new code, its jump site */
			out[k++] = busy_code(f->new_addr, f->new_size, name);
			if (f->old_addr)
				out[k++] = hp_busy_site(f, true);
			continue;
		}
		if (!f->old_addr)
			continue; /* a new function: nothing replaced */
		if (f->kind == HP_RT_REC_REDIRECT) {
			name = pr->m->funcs[i].name;
			out[k++] = busy_code(f->old_addr,
					     pr->m->funcs[i].old_size, name);
		}
		/* A thread in an earlier patch's version is busy too. */
		w = hp_plan_writer_of(pr, f->old_addr, f->orig);
		if (w && w->new_addr)
			out[k++] = busy_code(w->new_addr, w->new_size, name);
	}
	return k;
}

/* Regions applied together with @r (one patch, several modules). */
static bool same_apply(const struct hp_rt_region *a,
		       const struct hp_rt_region *r)
{
	return a->active && a->hdr.sequence == r->hdr.sequence &&
	       !strncmp(a->hdr.patch_id, r->hdr.patch_id,
			sizeof(a->hdr.patch_id)) &&
	       !memcmp(a->hdr.key_id, r->hdr.key_id, sizeof(a->hdr.key_id));
}

int hp_plan_revert(const struct hp_rt_region *regions, size_t nr,
		   struct hp_revert_plan *rp)
{
	const struct hp_rt_region *r = NULL;
	size_t nr_funcs = 0;

	*rp = (struct hp_revert_plan){ 0 };
	/* The newest patch fully in effect: applied last, or newer. */
	for (size_t i = 0; i < nr; i++)
		if (regions[i].active &&
		    (!r || hp_plan_applied_after(&regions[i].hdr, &r->hdr)))
			r = &regions[i];
	if (!r)
		return -HP_E_NOTAPPLIED;
	rp->group = calloc(nr, sizeof(*rp->group));
	rp->keep = calloc(nr, sizeof(*rp->keep));
	rp->referenced = calloc(nr, sizeof(*rp->referenced));
	if (!rp->group || !rp->keep || !rp->referenced)
		return -ENOMEM;
	rp->newest = r;
	for (size_t i = 0; i < nr; i++)
		if (same_apply(&regions[i], r))
			rp->group[rp->nr_group++] = &regions[i];
	for (size_t g = 0; g < rp->nr_group; g++)
		nr_funcs += rp->group[g]->hdr.nr_funcs;
	rp->ranges = calloc(2 * nr_funcs + 1, sizeof(*rp->ranges));
	rp->recs = calloc(nr_funcs + 1, sizeof(*rp->recs));
	if (!rp->ranges || !rp->recs)
		return -ENOMEM;
	for (size_t g = 0; g < rp->nr_group; g++) {
		const struct hp_rt_region *q = rp->group[g];

		memcpy(rp->recs + rp->nr_recs, q->funcs,
		       q->hdr.nr_funcs * sizeof(*q->funcs));
		rp->nr_recs += q->hdr.nr_funcs;
		rp->keep[g] = hp_busy_region(q);
	}
	rp->nr_ranges = hp_busy_ranges(NULL, rp->recs, rp->nr_recs, rp->ranges);
	return 0;
}

void hp_revert_plan_release(struct hp_revert_plan *rp)
{
	free(rp->group);
	free(rp->keep);
	free(rp->referenced);
	free(rp->ranges);
	free(rp->recs);
	*rp = (struct hp_revert_plan){ 0 };
}

/* Would reverting a record of @regions write a jump into @r again? */
static bool revert_needs(const struct hp_rt_region *regions, size_t nr,
			 const struct hp_rt_region *r)
{
	const hp_raddr_t lo = r->addr, hi = r->addr + r->hdr.region_size;

	for (size_t i = 0; i < nr; i++)
		for (uint32_t j = 0; j < regions[i].hdr.nr_funcs; j++) {
			const struct hp_rt_func *f = &regions[i].funcs[j];
			hp_raddr_t to;

			if (&regions[i] == r || !f->old_addr ||
			    f->orig[0] != HP_X86_JMP_REL32)
				continue;
			to = f->old_addr + HP_X86_JMP_REL32_SIZE +
			     (int64_t)(int32_t)hp_get_le32(f->orig + 1);
			if (to >= lo && to < hi)
				return true;
		}
	return false;
}

/*
 * A region nothing jumps into that no revert can bring back: retired, or
 * left by an apply that failed after mapping it (and could not unmap it)
 * or was killed. Superseded ones wait for the revert of what replaced
 * them, stacked-over ones for the revert of what stacks on them; damaged
 * ones (records hpatch did not write) are not ours.
 */
size_t hp_plan_retired(const struct hp_rt_region *regions, size_t nr,
		       bool *retired)
{
	size_t n = 0;

	for (size_t i = 0; i < nr; i++) {
		const struct hp_rt_region *r = &regions[i];

		retired[i] = !r->active && !r->nr_in_place && !r->nr_invalid &&
			     ((r->hdr.flags & HP_RT_RETIRED) ||
			      (!(r->hdr.flags & HP_RT_SUPERSEDED) &&
			       !revert_needs(regions, nr, r)));
		n += retired[i];
	}
	return n;
}

int hp_plan_rollback(const struct hp_patch *p, pid_t pid, struct hp_prep *pr,
		     const struct hp_rt_opts *opts)
{
	char hex[2 * HP_BUILD_ID_MAX + 1];
	uint64_t seen = 0;
	int rc;

	hp_hex(hex, pr->m->build_id, pr->m->build_id_len);
	rc = hp_rt_state_sequence(opts->state_dir, hex, &seen);
	if (rc)
		return rc;
	pr->recorded = seen;
	if (seen <= p->sequence || (opts->flags & HP_RT_ALLOW_DOWNGRADE))
		return 0;
	hp_error(-HP_E_DOWNGRADE,
		 "pid %d: %s: patch '%s' has sequence %" PRIu64
		 ", lower than %" PRIu64 " already applied on this host",
		 (int)pid, pr->mod.path, p->id, p->sequence, seen);
	hp_hint("use --allow-downgrade to apply an older patch on purpose");
	return -HP_E_DOWNGRADE;
}
