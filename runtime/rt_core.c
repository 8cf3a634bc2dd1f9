/*
 * Apply, revert and status: the loader's sequence. Everything that does not
 * need the target stopped happens before the stop: finding the module by
 * build-id, checking the original bytes, choosing the hole, relocating the
 * image, mapping and writing it (through one briefly stopped thread). The
 * world is stopped only to check that no thread is inside the functions and
 * to write the 5-byte jumps.
 */
#include "runtime/runtime_int.h"
#include "runtime/arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"
#include "signing/signing.h"

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define HP_LOG_PREFIX "rt: "
#define HP_MAP_TRIES 4

/* One module's patch, prepared in the loader's memory before any stop. */
struct prep {
	pid_t pid;
	const struct hp_module *m;
	struct hp_rmodule mod;
	hp_raddr_t region;
	uint64_t hdr_size;
	uint64_t region_size;
	uint64_t text_span;	 /* page-aligned text, mapped read+execute */
	uint64_t write_len;	 /* bytes written: header, text, data */
	uint8_t *buf;		 /* region contents */
	struct hp_rt_func *recs; /* into buf */
	uint32_t nr_recs;	 /* every function, new ones included */
	struct hp_busy_range *ranges; /* old bodies of redirected functions */
	uint32_t nr_ranges;
	hp_raddr_t *sym_addrs; /* bound external symbols */
	bool mapped;
	/* Patches already in effect on this module, newest last (borrowed). */
	struct hp_rt_region *prior;
	size_t nr_prior;
	uint32_t order; /* this patch's place after every region mapped */
	uint8_t (*heads)[HP_X86_JMP_REL32_SIZE]; /* current entry bytes */
	struct hp_rt_func *restores; /* replace mode: functions to restore */
	uint32_t nr_restores;
	bool stack;
};

static void build_id_hex(char *out, const uint8_t *id, uint32_t len)
{
	hp_hex(out, id, len);
}

static void describe(struct hp_rt_result *res, const uint8_t *id, uint32_t len)
{
	build_id_hex(res->build_id, id, len);
}

/* Append @text to the comma-separated list @list of @size bytes. */
static void add_listed(char *list, size_t size, const char *text)
{
	size_t used = strlen(list);

	if (used + strlen(text) + 2 > size)
		return;
	snprintf(list + used, size - used, "%s%s", used ? "," : "", text);
}

static void add_function(struct hp_rt_result *res, const char *name)
{
	add_listed(res->functions, sizeof(res->functions), name);
}

/*
 * System calls run in the target through one briefly stopped thread. A
 * session keeps that thread stopped across several calls: under load every
 * stop waits for the thread to get a CPU, so fewer stops is faster. For
 * the same reason the thread runs SCHED_FIFO while it runs only our calls
 * (each a single step), and gets its own scheduling back before it runs
 * its own code again.
 */
struct remote {
	struct hp_thread t;
	struct hp_prio prio;
	hp_raddr_t insn;
	bool open;
};

static int remote_begin(const struct hp_proc *proc, struct remote *r)
{
	const pid_t tid = hp_proc_live_tid(proc->pid);
	int rc;

	*r = (struct remote){ .t = { .tid = tid, .leader = tid == proc->pid } };
	rc = hp_proc_find_syscall_insn(proc, &r->insn);
	if (!rc)
		rc = hp_pt_seize(&r->t);
	if (!rc) {
		/* Raised first, it also reaches the stop without waiting. */
		hp_prio_raise(r->t.tid, &r->prio);
		rc = hp_pt_interrupt(&r->t);
	}
	if (!rc)
		rc = hp_pt_wait_stop(&r->t);
	if (rc) {
		hp_prio_restore(r->t.tid, &r->prio);
		hp_pt_release(&r->t);
		hp_pt_reap(&r->t, 1);
		return rc == -ESRCH ? -HP_E_GONE : rc;
	}
	r->open = true;
	return 0;
}

/* Return: 0 with *@ret the raw result (-errno on failure), or -HP_E_*. */
static int remote_call(struct remote *r, long nr, const long args[6], long *ret)
{
	int rc = hp_pt_syscall(&r->t, r->insn, nr, args, ret);

	return rc == -ESRCH ? -HP_E_GONE : rc;
}

static void remote_end(struct remote *r)
{
	if (r->open) {
		hp_prio_restore(r->t.tid, &r->prio);
		hp_pt_release(&r->t);
		hp_pt_reap(&r->t, 1);
	}
	r->open = false;
}

/* Run one system call in the target with only one thread stopped. */
static int one_thread_syscall(const struct hp_proc *proc, long nr,
			      const long args[6], long *ret)
{
	struct remote r;
	int rc = remote_begin(proc, &r);

	if (!rc)
		rc = remote_call(&r, nr, args, ret);
	remote_end(&r);
	return rc;
}

static int remote_munmap(const struct hp_proc *proc, hp_raddr_t addr,
			 uint64_t len)
{
	const long args[6] = { (long)addr, (long)len };
	long ret = 0;
	int rc = one_thread_syscall(proc, SYS_munmap, args, &ret);

	if (!rc && ret)
		rc = (int)ret;
	if (rc)
		hp_warn("pid %d: cannot unmap patch region 0x%" PRIx64 ": %s",
			(int)proc->pid, addr, hp_strerror(rc));
	return rc;
}

static void prep_release(struct prep *pr)
{
	free(pr->buf);
	free(pr->ranges);
	free(pr->sym_addrs);
	free(pr->heads);
	free(pr->restores);
	*pr = (struct prep){ 0 };
}

/*
 * The record of an earlier patch, in effect, that wrote @head at @addr:
 * following these back gives the original bytes and the code a thread
 * may be running instead of the old function.
 */
static const struct hp_rt_func *writer_of(const struct prep *pr,
					  hp_raddr_t addr, const uint8_t *head)
{
	for (size_t i = pr->nr_prior; i-- > 0;) {
		const struct hp_rt_region *r = &pr->prior[i];

		for (uint32_t j = 0; j < r->hdr.nr_funcs; j++)
			if (r->in_place[j] && r->funcs[j].old_addr == addr &&
			    !memcmp(r->funcs[j].jump, head,
				    HP_X86_JMP_REL32_SIZE))
				return &r->funcs[j];
	}
	return NULL;
}

/* The bytes at @addr before any patch: undo the chain of writers. */
static void original_head(const struct prep *pr, hp_raddr_t addr, uint8_t *head)
{
	for (int depth = 0; depth < 64; depth++) {
		const struct hp_rt_func *w = writer_of(pr, addr, head);

		if (!w)
			return;
		memcpy(head, w->orig, HP_X86_JMP_REL32_SIZE);
	}
}

/* Check the running bytes of every function against the patch's pins. */
static int verify_funcs(const struct hp_proc *proc, struct prep *pr)
{
	const struct hp_module *m = pr->m;
	uint8_t *buf = NULL;
	int rc = 0;

	for (uint32_t i = 0; i < m->nr_funcs && !rc; i++) {
		const struct hp_func *f = &m->funcs[i];
		uint8_t hash[HP_HASH_BYTES];
		uint8_t *nb = NULL;

		if (f->flags & HP_FUNC_NEW)
			continue;
		if (f->old_size < HP_X86_JMP_REL32_SIZE)
			return hp_error(-HP_E_BADFORMAT,
					"patch: function '%s' is %u bytes",
					f->name, f->old_size);
		nb = realloc(buf, f->old_size);
		if (!nb) {
			rc = -ENOMEM;
			break;
		}
		buf = nb;
		rc = hp_proc_read(proc, pr->mod.bias + f->old_addr, buf,
				  f->old_size);
		if (rc) {
			hp_error_rc(rc, "pid %d: %s: cannot read '%s'",
				    (int)proc->pid, pr->mod.path, f->name);
			break;
		}
		/* Earlier patches may have redirected it: pin the original. */
		memcpy(pr->heads[i], buf, HP_X86_JMP_REL32_SIZE);
		original_head(pr, pr->mod.bias + f->old_addr, buf);
		hp_hash128(hash, buf, f->old_size);
		if (memcmp(hash, f->old_hash, sizeof(f->old_hash))) {
			rc = hp_error(-HP_E_MISMATCH,
				      "pid %d: %s: '%s' at 0x%" PRIx64
				      " differs from the build the patch was "
				      "made for",
				      (int)proc->pid, pr->mod.path, f->name,
				      pr->mod.bias + f->old_addr);
			if (buf[0] == HP_X86_JMP_REL32)
				hp_hint("the function is already redirected, "
					"by another patch or tool; see "
					"'hpatch status -p %d'",
					(int)proc->pid);
		}
	}
	free(buf);
	return rc;
}

/* Lay out the region at @region and build its bytes. */
static int build_region(const struct hp_patch *p, struct prep *pr,
			hp_raddr_t region)
{
	const struct hp_module *m = pr->m;
	const uint64_t data_off = hp_module_data_off(m);
	const bool has_data = m->data_size || m->bss_size;
	const uint64_t image_size =
		has_data ? data_off + m->data_size + m->bss_size : m->text_size;
	struct hp_reloc_ctx ctx = { 0 };
	struct hp_rt_header *hdr = NULL;
	uint8_t *image = NULL;
	uint32_t k = 0;
	int rc;

	pr->region = region;
	free(pr->buf);
	pr->buf = calloc(1, pr->region_size);
	if (!pr->buf)
		return -ENOMEM;
	image = pr->buf + pr->hdr_size;
	memcpy(image, m->text, m->text_size);
	if (m->data_size)
		memcpy(image + data_off, m->data, m->data_size);
	ctx = (struct hp_reloc_ctx){
		.image = image,
		.image_size = (uint32_t)image_size,
		.bases = { [HP_RB_IMAGE] = region + pr->hdr_size,
			   [HP_RB_MODULE] = pr->mod.bias },
		.sym_addrs = pr->sym_addrs,
		.nr_syms = m->nr_syms,
	};
	rc = hp_reloc_apply(&ctx, m);
	if (rc)
		return rc;

	hdr = (struct hp_rt_header *)pr->buf;
	memcpy(hdr->magic, HP_RT_MAGIC, sizeof(hdr->magic));
	hdr->version = HP_RT_VERSION;
	hdr->header_size = (uint32_t)pr->hdr_size;
	hdr->region_size = pr->region_size;
	hdr->image_addr = region + pr->hdr_size;
	hdr->module_bias = pr->mod.bias;
	hdr->sequence = p->sequence;
	hdr->applied_at = (uint64_t)time(NULL);
	hdr->order = pr->order;
	memcpy(hdr->build_id, m->build_id, m->build_id_len);
	hdr->build_id_len = m->build_id_len;
	hdr->nr_funcs = pr->nr_recs;
	memcpy(hdr->key_id, p->info.key_id, sizeof(hdr->key_id));
	snprintf(hdr->patch_id, sizeof(hdr->patch_id), "%s", p->id);
	snprintf(hdr->module, sizeof(hdr->module), "%.119s", pr->mod.path);
	pr->recs = (struct hp_rt_func *)(pr->buf + sizeof(*hdr));
	for (uint32_t i = 0; i < m->nr_funcs; i++) {
		const struct hp_func *f = &m->funcs[i];
		struct hp_rt_func *rec = NULL;

		rec = &pr->recs[i];
		rec->new_addr = region + pr->hdr_size + f->new_off;
		rec->new_size = f->new_size;
		snprintf(rec->name, sizeof(rec->name), "%s", f->name);
		if (f->flags & HP_FUNC_NEW)
			continue; /* recorded for revert's checks, no jump */
		rec->old_addr = pr->mod.bias + f->old_addr;
		memcpy(rec->orig, pr->heads[i], HP_X86_JMP_REL32_SIZE);
		if (hp_x86_encode_jmp(rec->jump, rec->old_addr, rec->new_addr))
			return hp_error(-HP_E_RANGE,
					"pid %d: '%s': new code beyond jump "
					"reach",
					(int)pr->pid, f->name);
		pr->ranges[k++] = (struct hp_busy_range){
			.start = rec->old_addr,
			.end = rec->old_addr + f->old_size,
			.name = f->name,
		};
		/* A thread in an earlier patch's version is busy too. */
		{
			const struct hp_rt_func *w =
				writer_of(pr, rec->old_addr, rec->orig);

			if (w && w->new_addr)
				pr->ranges[k++] = (struct hp_busy_range){
					w->new_addr, w->new_addr + w->new_size,
					f->name,     false,
					NULL,
				};
		}
	}
	for (uint32_t i = 0; i < pr->nr_restores; i++) {
		const struct hp_rt_func *w = NULL;

		pr->recs[m->nr_funcs + i] = pr->restores[i];
		w = writer_of(pr, pr->restores[i].old_addr,
			      pr->restores[i].orig);
		if (w && w->new_addr)
			pr->ranges[k++] = (struct hp_busy_range){
				w->new_addr,
				w->new_addr + w->new_size,
				pr->restores[i].name,
				false,
				NULL,
			};
	}
	pr->nr_ranges = k;
	pr->write_len = pr->hdr_size +
			(has_data ? data_off + m->data_size : m->text_size);
	return 0;
}

/*
 * Replace mode (the default): an earlier patch's redirection of a function
 * this patch does not carry is undone in the same stop. The newer patch is
 * cumulative: what it leaves out, the fixed build no longer changes.
 */
static int plan_restores(struct prep *pr)
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
			original_head(pr, f->old_addr, rs->jump);
			memcpy(rs->name, f->name, sizeof(rs->name));
		}
	}
	return 0;
}

static int prepare(const struct hp_patch *p, const struct hp_proc *proc,
		   const struct hp_module *m, struct prep *pr)
{
	const bool has_data = m->data_size || m->bss_size;
	uint64_t image_span;
	hp_raddr_t hole;
	int rc;

	pr->m = m;
	pr->pid = proc->pid;
	pr->heads = calloc(m->nr_funcs + 1, sizeof(*pr->heads));
	if (!pr->heads)
		return -ENOMEM;
	rc = verify_funcs(proc, pr);
	if (!rc && !pr->stack)
		rc = plan_restores(pr);
	if (rc)
		return rc;
	pr->nr_recs = m->nr_funcs + pr->nr_restores;
	pr->ranges = calloc(2 * pr->nr_recs + 1, sizeof(*pr->ranges));
	if (!pr->ranges)
		return -ENOMEM;
	pr->sym_addrs = calloc(m->nr_syms + 1, sizeof(*pr->sym_addrs));
	if (!pr->sym_addrs)
		return -ENOMEM;
	for (uint32_t i = 0; i < m->nr_syms && !rc; i++)
		rc = hp_proc_find_symbol(proc, m->syms[i].name,
					 m->syms[i].version, &pr->sym_addrs[i]);
	if (rc)
		return rc;
	pr->hdr_size =
		HP_ALIGN_UP(sizeof(struct hp_rt_header) +
				    pr->nr_recs * sizeof(struct hp_rt_func),
			    HP_X86_PAGE_SIZE);
	pr->text_span = HP_ALIGN_UP((uint64_t)m->text_size, HP_X86_PAGE_SIZE);
	image_span = has_data ? hp_module_data_off(m) +
					HP_ALIGN_UP((uint64_t)m->data_size +
							    m->bss_size,
						    HP_X86_PAGE_SIZE)
			      : pr->text_span;
	pr->region_size = pr->hdr_size + image_span;
	rc = hp_proc_find_hole(proc, &pr->mod, pr->region_size, &hole);
	if (rc)
		return hp_error(rc,
				"pid %d: %s: no free %" PRIu64
				" bytes within 2 GiB of the module",
				(int)proc->pid, pr->mod.path, pr->region_size);
	return build_region(p, pr, hole);
}

/* Map and fill the region; retried elsewhere if the hole was taken. */
static int map_region(const struct hp_patch *p, struct hp_proc *proc,
		      struct prep *pr)
{
	const bool has_data = pr->m->data_size || pr->m->bss_size;
	struct remote rm;
	long ret = 0;
	int rc = hp_rt_fault("mmap");

	if (!rc)
		rc = remote_begin(proc, &rm);
	if (rc)
		return rc;
	for (int tries = 0; tries < HP_MAP_TRIES; tries++) {
		const long args[6] = {
			(long)pr->region,
			(long)pr->region_size,
			PROT_READ,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			-1,
			0,
		};
		hp_raddr_t hole;

		rc = remote_call(&rm, SYS_mmap, args, &ret);
		if (rc)
			goto out_end;
		if ((hp_raddr_t)ret == pr->region)
			break;
		if (ret >= 0) { /* kernel without MAP_FIXED_NOREPLACE */
			const long un[6] = { ret, (long)pr->region_size };

			remote_call(&rm, SYS_munmap, un, &ret);
			rc = hp_error(-HP_E_NOHOLE,
				      "pid %d: kernel ignored "
				      "MAP_FIXED_NOREPLACE",
				      (int)proc->pid);
			goto out_end;
		}
		if (ret != -EEXIST) {
			rc = hp_error_rc((int)ret, "pid %d: remote mmap",
					 (int)proc->pid);
			goto out_end;
		}
		/* Someone mapped there since we looked: look again. */
		rc = hp_proc_read_maps(proc);
		if (!rc)
			rc = hp_proc_find_hole(proc, &pr->mod, pr->region_size,
					       &hole);
		if (!rc)
			rc = build_region(p, pr, hole);
		if (rc)
			goto out_end;
		ret = -EEXIST;
	}
	if ((hp_raddr_t)ret != pr->region) {
		rc = hp_error(-HP_E_NOHOLE,
			      "pid %d: address space keeps changing; cannot "
			      "map the patch",
			      (int)proc->pid);
		goto out_end;
	}
	pr->mapped = true;
	rc = hp_rt_fault("write");
	if (!rc)
		rc = hp_proc_write(proc, pr->region, pr->buf, pr->write_len);
	if (!rc)
		rc = hp_rt_fault("mprotect");
	if (!rc) {
		const long args[6] = { (long)(pr->region + pr->hdr_size),
				       (long)pr->text_span,
				       PROT_READ | PROT_EXEC };

		rc = remote_call(&rm, SYS_mprotect, args, &ret);
		if (!rc && ret)
			rc = (int)ret;
	}
	if (!rc && has_data) {
		const long args[6] = {
			(long)(pr->region + pr->hdr_size + pr->text_span),
			(long)(pr->region_size - pr->hdr_size - pr->text_span),
			PROT_READ | PROT_WRITE,
		};

		rc = remote_call(&rm, SYS_mprotect, args, &ret);
		if (!rc && ret)
			rc = (int)ret;
	}
	if (rc)
		hp_error_rc(rc, "pid %d: cannot fill the patch region",
			    (int)proc->pid);
out_end:
	remote_end(&rm);
	return rc;
}

/*
 * Functions close together (the common case: one fix, one file): read the
 * span once, check every site's expected bytes, patch the copy and write
 * it back in one system call; the bytes between the sites are rewritten
 * with what was just read while every thread is stopped. A fault injected
 * after the write exercises the same undo as a real failure.
 */
#define HP_JUMP_SPAN_MAX (64u << 10)

static int write_jump_span(const struct hp_proc *proc, struct hp_rt_func *recs,
			   uint32_t nr, bool undo, hp_raddr_t lo, hp_raddr_t hi)
{
	const size_t len = hi - lo;
	uint8_t *orig = malloc(len), *want = malloc(len);
	int rc = orig && want ? 0 : -ENOMEM;

	if (!rc)
		rc = hp_proc_read(proc, lo, orig, len);
	if (!rc)
		memcpy(want, orig, len);
	for (uint32_t i = 0; i < nr && !rc; i++) {
		const struct hp_rt_func *f = &recs[i];
		const uint8_t *expect = undo ? f->jump : f->orig;

		if (!f->old_addr)
			continue;
		if (memcmp(orig + (f->old_addr - lo), expect,
			   HP_X86_JMP_REL32_SIZE))
			rc = hp_error(-HP_E_MISMATCH,
				      "pid %d: '%s' at 0x%" PRIx64
				      " changed while stopped",
				      (int)proc->pid, f->name, f->old_addr);
		else
			memcpy(want + (f->old_addr - lo),
			       undo ? f->orig : f->jump, HP_X86_JMP_REL32_SIZE);
	}
	const bool written = !rc; /* from here the span may have changed */

	if (!rc)
		rc = hp_proc_write(proc, lo, want, len);
	for (uint32_t i = 0; i < nr && !rc; i++)
		if (recs[i].old_addr)
			rc = hp_rt_fault(undo ? "unjump" : "jump");
	if (rc && written && hp_proc_write(proc, lo, orig, len))
		hp_error(-EIO, "pid %d: cannot restore bytes at 0x%" PRIx64,
			 (int)proc->pid, lo);
	free(orig);
	free(want);
	return rc;
}

/* Write (or with @undo restore) every jump; all or nothing. */
static int write_jumps(const struct hp_proc *proc, struct hp_rt_func *recs,
		       uint32_t nr, bool undo)
{
	hp_raddr_t lo = UINT64_MAX, hi = 0;
	uint32_t done = 0;
	int rc = 0;

	for (uint32_t i = 0; i < nr; i++) {
		if (!recs[i].old_addr)
			continue;
		if (recs[i].old_addr < lo)
			lo = recs[i].old_addr;
		if (recs[i].old_addr + HP_X86_JMP_REL32_SIZE > hi)
			hi = recs[i].old_addr + HP_X86_JMP_REL32_SIZE;
	}
	/* One read and one write when the sites lie close together in one
	 * mapping (two libraries may be close, with a gap between). */
	if (hi > lo && hi - lo <= HP_JUMP_SPAN_MAX) {
		const struct hp_map *m = hp_proc_find_map(proc, lo);

		if (m && hi <= m->end)
			return write_jump_span(proc, recs, nr, undo, lo, hi);
	}

	for (; done < nr && !rc; done++) {
		const struct hp_rt_func *f = &recs[done];
		const uint8_t *expect = undo ? f->jump : f->orig;
		const uint8_t *want = undo ? f->orig : f->jump;
		uint8_t cur[HP_X86_JMP_REL32_SIZE];

		if (!f->old_addr)
			continue; /* a new function: no jump */
		rc = hp_rt_fault(undo ? "unjump" : "jump");
		if (!rc)
			rc = hp_proc_read(proc, f->old_addr, cur, sizeof(cur));
		if (!rc && memcmp(cur, expect, sizeof(cur)))
			rc = hp_error(-HP_E_MISMATCH,
				      "pid %d: '%s' at 0x%" PRIx64
				      " changed while stopped",
				      (int)proc->pid, f->name, f->old_addr);
		if (!rc) {
			rc = hp_proc_write(proc, f->old_addr, want,
					   HP_X86_JMP_REL32_SIZE);
			if (rc)
				done++; /* (a short write: put it back too) */
		}
		if (rc)
			break;
	}
	if (rc) {
		/* Put back what this call wrote, newest first. */
		while (done-- > 0) {
			const struct hp_rt_func *f = &recs[done];

			if (!f->old_addr)
				continue;
			if (hp_proc_write(proc, f->old_addr,
					  undo ? f->jump : f->orig,
					  HP_X86_JMP_REL32_SIZE))
				hp_error(-EIO,
					 "pid %d: '%s': cannot restore bytes "
					 "at 0x%" PRIx64,
					 (int)proc->pid, f->name, f->old_addr);
		}
	}
	return rc;
}

/*
 * No instruction pointer on any jump site: one check for all of them.
 * @sites has room for @nr ranges.
 */
static int check_sites(struct hp_world *w, const struct hp_proc *proc,
		       const struct hp_rt_func *recs, uint32_t nr, bool undo,
		       struct hp_busy_range *sites, pid_t *busy_tid,
		       const struct hp_busy_range **busy)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < nr; i++)
		if (recs[i].old_addr)
			sites[n++] = (struct hp_busy_range){
				recs[i].old_addr,
				recs[i].old_addr + HP_X86_JMP_REL32_SIZE,
				recs[i].name,
				true,
				undo ? recs[i].jump : recs[i].orig,
			};
	return hp_world_step_out(w, sites, n, busy_tid, busy)
		       ?: hp_world_check(w, proc, sites, n, busy_tid, busy);
}

/*
 * With --allow-active: record in @who the threads that will go on in old
 * code (for the warning after the switch, not per try), then check only
 * that no thread is in the way of the jump sites themselves.
 */
static int note_old_code(struct hp_world *w, const struct hp_proc *proc,
			 const struct hp_busy_range *ranges, size_t nr_ranges,
			 const struct hp_rt_func *recs, uint32_t nr_recs,
			 bool undo, struct hp_busy_range *sites,
			 struct hp_who *who, pid_t *busy_tid,
			 const struct hp_busy_range **busy)
{
	size_t before = who->n;
	int rc = 0;

	if (!w->ip_only)
		rc = hp_world_check(w, proc, ranges, nr_ranges, busy_tid, busy);
	if (rc && rc != -HP_E_BUSY)
		return rc;
	hp_world_who_ips(w, ranges, nr_ranges, who);
	if (rc && who->n == before) /* found on a stack */
		hp_who_add(who, *busy_tid, (*busy)->name, HP_WHO_BELOW);
	return check_sites(w, proc, recs, nr_recs, undo, sites, busy_tid, busy);
}

/*
 * Stop the world until no thread is in the way of @ranges, then write (or
 * with @undo restore) the jumps. Busy: resume, back off (1 ms doubling to
 * 64 ms), retry until the timeout. With @keep (@nr_keep ranges), still
 * stopped after the writes, referenced[i] says whether any thread's
 * registers or stack point into keep[i] (then its memory must stay mapped).
 */
static int transition(struct hp_proc *proc, const struct hp_rt_opts *opts,
		      const struct hp_busy_range *ranges, size_t nr_ranges,
		      struct hp_rt_func *recs, uint32_t nr_recs, bool undo,
		      const struct hp_busy_range *keep, size_t nr_keep,
		      bool *referenced, struct hp_rt_result *res)
{
	const uint64_t deadline =
		hp_now_us() + (uint64_t)opts->timeout_ms * 1000;
	const bool active = opts->flags & HP_RT_ALLOW_ACTIVE;
	/* Threads may stay in the functions: then, without old patch regions
	 * to keep, the stop reads each thread's instruction and stack
	 * pointers alone, and the stacks are searched for returns into the
	 * functions after it, outside the pause. */
	const bool ip_only = active && !nr_keep;
	struct hp_who who;
	uint64_t backoff = 1000;
	struct hp_world w;
	struct hp_busy_range *sites = NULL;
	int rc;

	sites = calloc(nr_recs + 1, sizeof(*sites));
	if (!sites)
		return -ENOMEM;
	for (;;) {
		const struct hp_busy_range *busy = NULL;
		pid_t busy_tid = 0;
		uint64_t t0, t_stop, t_check, t_write;

		res->nr_tries++;
		rc = hp_world_prepare(&w, proc->pid);
		w.ip_only = ip_only;
		if (!rc)
			rc = hp_world_stop(&w);
		if (rc)
			break;
		t0 = w.stopped_at;
		/* Stacks read in the window need every stack's mapping
		 * (else after it, for the warning). */
		rc = ip_only ? 0 : hp_world_fresh_maps(&w, proc);
		t_stop = hp_now_us();
		if (!rc)
			rc = hp_rt_fault("stop");
		who = (struct hp_who){ 0 };
		if (!rc && !active)
			rc = hp_world_check(&w, proc, ranges, nr_ranges,
					    &busy_tid, &busy);
		else if (!rc)
			rc = note_old_code(&w, proc, ranges, nr_ranges, recs,
					   nr_recs, undo, sites, &who,
					   &busy_tid, &busy);
		t_check = hp_now_us();
		if (!rc)
			rc = write_jumps(proc, recs, nr_recs, undo);
		t_write = hp_now_us();
		for (size_t k = 0; !rc && k < nr_keep; k++) {
			pid_t tid;
			const struct hp_busy_range *hit = NULL;

			referenced[k] = hp_world_check(&w, proc, &keep[k], 1,
						       &tid, &hit) != 0 ||
					hp_world_regs_point(&w, &keep[k]);
		}

		res->nr_threads = (uint32_t)w.nr_threads;
		hp_world_release(&w);
		res->pause_us = w.resumed_at - t0;
		if (!rc && ip_only && !hp_world_fresh_maps(&w, proc))
			hp_world_find_below(&w, proc, ranges, nr_ranges, &who);
		hp_world_free(&w);
		if (!rc && who.n) {
			char text[2048];

			hp_who_format(&who, text, sizeof(text));
			hp_warn("pid %d: applied anyway (--allow-active); %zu "
				"thread%s still in old code, finishing there: "
				"%s",
				(int)proc->pid, who.n, who.n == 1 ? "" : "s",
				text);
		}
		hp_dbg(HP_DBG_TIMING,
		       "pid %d: %zu threads: stop %llu us, check %llu us, "
		       "write %llu us, resume %llu us",
		       (int)proc->pid, (size_t)res->nr_threads,
		       (unsigned long long)(t_stop - t0),
		       (unsigned long long)(t_check - t_stop),
		       (unsigned long long)(t_write - t_check),
		       (unsigned long long)(t0 + res->pause_us - t_write));
		if (rc != -HP_E_BUSY)
			break;
		res->busy_tid = busy_tid;
		snprintf(res->busy_func, sizeof(res->busy_func), "%s",
			 busy->name);
		if (hp_now_us() + backoff > deadline) {
			rc = hp_error(-HP_E_BUSY,
				      "pid %d: tid %d: '%s' still in use "
				      "after %ld ms (%u tries)",
				      (int)proc->pid, (int)busy_tid, busy->name,
				      opts->timeout_ms, res->nr_tries);
			break;
		}
		usleep((useconds_t)backoff);
		if (backoff < 64000)
			backoff *= 2;
	}
	free(sites);
	return rc;
}

/*
 * After a revert: unmap the region, or when a thread still points into it
 * (a return address, or a pointer to its data), keep it and mark it
 * retired so a later hpatch unmaps it once nothing does.
 */
static void release_region(const struct hp_proc *proc,
			   const struct hp_rt_region *r, bool referenced)
{
	uint32_t flags = r->hdr.flags | HP_RT_RETIRED;

	if (!referenced) {
		remote_munmap(proc, r->addr, r->hdr.region_size);
		return;
	}
	hp_log(HP_LOG_INFO,
	       "pid %d: patch '%s' reverted; its code stays mapped at "
	       "0x%" PRIx64 " while a thread may still use it",
	       (int)proc->pid, r->hdr.patch_id, r->addr);
	if (hp_proc_write(proc, r->addr + offsetof(struct hp_rt_header, flags),
			  &flags, sizeof(flags)))
		hp_warn("pid %d: cannot mark region 0x%" PRIx64 " retired",
			(int)proc->pid, r->addr);
}

/* Set or clear a flag in a region's in-target header. */
static void set_region_flag(const struct hp_proc *proc,
			    const struct hp_rt_region *r, uint32_t flag,
			    bool on)
{
	uint32_t flags = on ? r->hdr.flags | flag : r->hdr.flags & ~flag;

	if (flags != r->hdr.flags &&
	    hp_proc_write(proc, r->addr + offsetof(struct hp_rt_header, flags),
			  &flags, sizeof(flags)))
		hp_warn("pid %d: cannot update region 0x%" PRIx64,
			(int)proc->pid, r->addr);
}

/* After a revert: patches it had replaced are in effect again. */
static void revive_superseded(const struct hp_proc *proc,
			      const struct hp_rt_region *reverted)
{
	struct hp_rt_region *regions = NULL;
	size_t nr = 0;

	if (hp_rt_find_regions(proc, &regions, &nr))
		return;
	for (size_t i = 0; i < nr; i++)
		if (regions[i].addr != reverted->addr && regions[i].active &&
		    (regions[i].hdr.flags & HP_RT_SUPERSEDED))
			set_region_flag(proc, &regions[i], HP_RT_SUPERSEDED,
					false);
	hp_rt_regions_free(regions, nr);
}

/* Unmap retired regions that no thread points into any more. */
static void collect_retired(struct hp_proc *proc)
{
	struct hp_rt_region *regions = NULL;
	struct hp_world w;
	bool *unused = NULL;
	size_t nr = 0, nr_retired = 0;

	if (hp_rt_find_regions(proc, &regions, &nr))
		return;
	for (size_t i = 0; i < nr; i++)
		nr_retired += !regions[i].active &&
			      (regions[i].hdr.flags & HP_RT_RETIRED);
	unused = calloc(nr + 1, sizeof(*unused));
	if (!nr_retired || !unused || hp_world_prepare(&w, proc->pid) ||
	    hp_world_stop(&w))
		goto out;
	if (hp_world_fresh_maps(&w, proc)) {
		hp_world_resume(&w);
		goto out;
	}
	for (size_t i = 0; i < nr; i++) {
		const struct hp_rt_region *r = &regions[i];
		const struct hp_busy_range keep = {
			r->addr,
			r->addr + r->hdr.region_size,
			r->hdr.patch_id,
			false,
			NULL,
		};
		const struct hp_busy_range *hit = NULL;
		pid_t tid;

		if (!r->active && (r->hdr.flags & HP_RT_RETIRED))
			unused[i] = !hp_world_check(&w, proc, &keep, 1, &tid,
						    &hit) &&
				    !hp_world_regs_point(&w, &keep);
	}
	/* Unmap while stopped: this stop is no patch's pause. */
	for (size_t i = 0; i < nr; i++) {
		const long args[6] = { (long)regions[i].addr,
				       (long)regions[i].hdr.region_size };
		long ret = -1;

		if (unused[i] &&
		    !hp_world_syscall(&w, proc, SYS_munmap, args, &ret) && !ret)
			hp_log(HP_LOG_INFO,
			       "pid %d: unmapped retired patch '%s'",
			       (int)proc->pid, regions[i].hdr.patch_id);
	}
	hp_world_resume(&w);
	if (hp_proc_read_maps(proc))
		hp_warn("pid %d: cannot re-read the memory map",
			(int)proc->pid);
out:
	free(unused);
	hp_rt_regions_free(regions, nr);
}

/* Anti-rollback across reverts and processes: the host remembers. */
static int check_rollback(const struct hp_patch *p, pid_t pid,
			  const char *module, const char *build_id_hex,
			  const struct hp_rt_opts *opts)
{
	uint64_t seen = 0;
	const int rc = hp_rt_state_sequence(build_id_hex, &seen);

	if (rc)
		return rc;
	if (seen <= p->sequence || (opts->flags & HP_RT_ALLOW_DOWNGRADE))
		return 0;
	hp_error(-HP_E_DOWNGRADE,
		 "pid %d: %s: patch '%s' has sequence %" PRIu64
		 ", lower than %" PRIu64 " already applied on this host",
		 (int)pid, module, p->id, p->sequence, seen);
	hp_hint("use --allow-downgrade to apply an older patch on purpose");
	return -HP_E_DOWNGRADE;
}

/*
 * Was @a applied after @b? By the order each apply wrote (one more than
 * any region then in the process; 0 from loaders before it), then by time
 * in seconds, then by sequence: a downgrade applied within the same second
 * as the patch it replaced is still the newer one.
 */
static bool applied_after(const struct hp_rt_header *a,
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
 * Keep the regions of patches in effect on @pr's module (any record in
 * place), oldest first, in pr->prior (freed with hp_rt_regions_free), and
 * set pr->order past every region in the process. The newest decides: the
 * same patch again is "already applied" (-HP_E_APPLIED, not reported), an
 * older sequence is a downgrade.
 */
static int check_applied(const struct hp_patch *p, const struct hp_proc *proc,
			 const struct hp_rt_opts *opts, struct prep *pr)
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
		if (!regions[i].nr_in_place ||
		    !same_module(&regions[i].hdr, m)) {
			free(regions[i].funcs);
			free(regions[i].in_place);
			continue;
		}
		regions[n++] = regions[i];
	}
	/* Oldest first. */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && applied_after(&regions[j - 1].hdr,
							  &regions[j].hdr);
		     j--) {
			struct hp_rt_region t = regions[j];

			regions[j] = regions[j - 1];
			regions[j - 1] = t;
		}
	top = n ? &regions[n - 1] : NULL;
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

/*
 * The loader's own priority for a whole operation (struct hp_prio): its
 * work is short and bounded, so SCHED_FIFO where allowed.
 */
void hp_rt_boost(void)
{
	struct hp_prio pr;

	hp_prio_raise(0, &pr); /* kept until the process exits */
}

/*
 * After a failed apply: does any site still jump into @pr's region (an
 * undo write that failed)? Then the region must stay. Unreadable counts.
 */
static bool jumps_into(const struct hp_proc *proc, const struct prep *pr)
{
	for (uint32_t i = 0; i < pr->nr_recs; i++) {
		const struct hp_rt_func *f = &pr->recs[i];
		uint8_t cur[HP_X86_JMP_REL32_SIZE];

		if (!f->old_addr || f->kind != HP_RT_REC_REDIRECT)
			continue;
		if (hp_proc_read(proc, f->old_addr, cur, sizeof(cur)) ||
		    !memcmp(cur, f->jump, sizeof(cur)))
			return true;
	}
	return false;
}

static int apply_one(const struct hp_patch *p, pid_t pid,
		     const struct hp_rt_opts *opts, struct hp_rt_result *res);
static int revert_one(pid_t pid, const struct hp_rt_opts *opts,
		      struct hp_rt_result *res);

int hp_rt_apply(const struct hp_patch *p, pid_t pid,
		const struct hp_rt_opts *opts, struct hp_rt_result *res)
{
	struct hp_prio pr;
	int rc;

	hp_prio_raise(0, &pr);
	rc = apply_one(p, pid, opts, res);
	hp_prio_restore(0, &pr);
	return rc;
}

int hp_rt_revert(pid_t pid, const struct hp_rt_opts *opts,
		 struct hp_rt_result *res)
{
	struct hp_prio pr;
	int rc;

	hp_prio_raise(0, &pr);
	rc = revert_one(pid, opts, res);
	hp_prio_restore(0, &pr);
	return rc;
}

/*
 * Switch every prepared module in one stop, so that a patch for a program
 * and its library takes effect (or fails) as one.
 */
static int switch_all(struct hp_proc *proc, const struct hp_rt_opts *opts,
		      struct prep *prs, uint32_t nr, struct hp_rt_result *res)
{
	struct hp_busy_range *ranges = NULL;
	struct hp_rt_func *recs = NULL;
	size_t nr_ranges = 0, nr_recs = 0;
	int rc;

	if (nr == 1)
		return transition(proc, opts, prs[0].ranges, prs[0].nr_ranges,
				  prs[0].recs, prs[0].nr_recs, false, NULL, 0,
				  NULL, res);
	for (uint32_t i = 0; i < nr; i++) {
		nr_ranges += prs[i].nr_ranges;
		nr_recs += prs[i].nr_recs;
	}
	ranges = calloc(nr_ranges + 1, sizeof(*ranges));
	recs = calloc(nr_recs + 1, sizeof(*recs));
	if (!ranges || !recs) {
		free(ranges);
		free(recs);
		return -ENOMEM;
	}
	nr_ranges = nr_recs = 0;
	for (uint32_t i = 0; i < nr; i++) {
		memcpy(ranges + nr_ranges, prs[i].ranges,
		       prs[i].nr_ranges * sizeof(*ranges));
		nr_ranges += prs[i].nr_ranges;
		memcpy(recs + nr_recs, prs[i].recs,
		       prs[i].nr_recs * sizeof(*recs));
		nr_recs += prs[i].nr_recs;
	}
	rc = transition(proc, opts, ranges, nr_ranges, recs, (uint32_t)nr_recs,
			false, NULL, 0, NULL, res);
	free(ranges);
	free(recs);
	return rc;
}

/* Everything up to the stop for one module: checks, plan, region. */
static int prepare_module(const struct hp_patch *p, struct hp_proc *proc,
			  const struct hp_rt_opts *opts, struct prep *pr,
			  struct hp_rt_result *res)
{
	char hex[2 * HP_BUILD_ID_MAX + 1];
	int rc;

	build_id_hex(hex, pr->m->build_id, pr->m->build_id_len);
	pr->stack = opts->flags & HP_RT_STACK;
	rc = check_applied(p, proc, opts, pr);
	if (rc == -HP_E_APPLIED)
		return rc;
	if (!rc)
		rc = check_rollback(p, proc->pid, pr->mod.path, hex, opts);
	if (!rc)
		rc = prepare(p, proc, pr->m, pr);
	if (!rc)
		rc = map_region(p, proc, pr);
	if (!rc && !res->region)
		res->region = pr->region;
	return rc;
}

static int apply_one(const struct hp_patch *p, pid_t pid,
		     const struct hp_rt_opts *opts, struct hp_rt_result *res)
{
	struct hp_proc proc;
	struct prep *prs = calloc(p->nr_modules, sizeof(*prs));
	const bool scanned = opts->flags & HP_RT_SCANNED;
	uint32_t nr = 0;
	int rc;

	const uint64_t t_open = hp_now_us();
	uint64_t t[3] = { 0 };

	*res = (struct hp_rt_result){ .pid = pid, .sequence = p->sequence };
	snprintf(res->patch_id, sizeof(res->patch_id), "%s", p->id);
	if (p->info.is_signed)
		hp_sign_key_id_str(res->key_id, p->info.key_id);
	describe(res, p->modules[0].build_id, p->modules[0].build_id_len);
	if (!prs) {
		rc = -ENOMEM;
		goto out;
	}
	rc = hp_proc_open(pid, &proc, scanned);
	if (rc == -HP_E_GONE && scanned)
		hp_log(HP_LOG_INFO, "pid %d: exited before it was patched",
		       (int)pid);
	if (rc)
		goto out;
	collect_retired(&proc);
	/* Every module of the patch that this process maps, in its order. */
	for (uint32_t i = 0; i < p->nr_modules; i++)
		if (!hp_proc_find_module(&proc, p->modules[i].build_id,
					 p->modules[i].build_id_len,
					 &prs[nr].mod))
			prs[nr++].m = &p->modules[i];
	if (!nr) {
		char hex[2 * HP_BUILD_ID_MAX + 1];

		build_id_hex(hex, p->modules[0].build_id,
			     p->modules[0].build_id_len);
		rc = hp_error(-HP_E_NOTARGET,
			      "pid %d: maps no module with build-id %s "
			      "('%s')%s",
			      (int)pid, hex, p->modules[0].name,
			      p->nr_modules > 1
				      ? " nor any other of the patch's"
				      : "");
		goto out_close;
	}
	t[0] = hp_now_us();
	for (uint32_t k = 0; k < nr && !rc;) {
		rc = prepare_module(p, &proc, opts, &prs[k], res);
		if (rc != -HP_E_APPLIED) {
			k++;
			continue;
		}
		/* Applied to this module already (say the library was
		 * loaded since): apply the rest. */
		hp_log(HP_LOG_INFO, "pid %d: %s: patch '%s' already applied",
		       (int)pid, prs[k].mod.path, p->id);
		hp_rt_regions_free(prs[k].prior, prs[k].nr_prior);
		prep_release(&prs[k]);
		memmove(&prs[k], &prs[k + 1], (nr - k - 1) * sizeof(*prs));
		prs[--nr] = (struct prep){ 0 };
		rc = nr ? 0
			: hp_error(-HP_E_APPLIED,
				   "pid %d: patch '%s' is already applied",
				   (int)pid, p->id);
	}
	t[1] = hp_now_us();
	if (nr)
		describe(res, prs[0].m->build_id, prs[0].m->build_id_len);
	for (uint32_t k = 0; k < nr; k++) {
		add_listed(res->module, sizeof(res->module), prs[k].mod.path);
		res->nr_funcs += prs[k].m->nr_funcs;
		for (uint32_t i = 0; i < prs[k].m->nr_funcs; i++)
			add_function(res, prs[k].m->funcs[i].name);
	}
	if (!rc)
		rc = switch_all(&proc, opts, prs, nr, res);
	t[2] = hp_now_us();
	hp_dbg(HP_DBG_TIMING,
	       "pid %d: apply: open %llu us, prepare and map %llu us, "
	       "switch %llu us",
	       (int)pid, (unsigned long long)(t[0] - t_open),
	       (unsigned long long)(t[1] - t[0]),
	       (unsigned long long)(t[2] - t[1]));
	for (uint32_t k = 0; k < nr && !rc; k++) {
		struct prep *pr = &prs[k];
		char hex[2 * HP_BUILD_ID_MAX + 1];

		/* Replaced patches stay mapped: reverting this restores them. */
		for (size_t i = 0; !pr->stack && i < pr->nr_prior; i++)
			set_region_flag(&proc, &pr->prior[i], HP_RT_SUPERSEDED,
					true);
		build_id_hex(hex, pr->m->build_id, pr->m->build_id_len);
		if (hp_rt_state_record(hex, p->sequence))
			hp_warn("pid %d: patched, but the anti-rollback state "
				"of %s was not recorded",
				(int)pid, pr->mod.path);
	}
	if (rc && hp_proc_gone(pid)) {
		hp_log(scanned ? HP_LOG_INFO : HP_LOG_ERROR,
		       "pid %d: the process exited during the apply; nothing "
		       "to undo",
		       (int)pid);
		rc = -HP_E_GONE;
	} else if (rc) {
		for (uint32_t k = 0; k < nr; k++) {
			if (!prs[k].mapped)
				continue;
			if (!jumps_into(&proc, &prs[k]))
				remote_munmap(&proc, prs[k].region,
					      prs[k].region_size);
			else {
				hp_error(-EIO,
					 "pid %d: a jump into the patch region "
					 "at 0x%" PRIx64
					 " could not be undone; "
					 "the region stays mapped",
					 (int)pid, prs[k].region);
				hp_hint("the process may run part of the "
					"patch: restart it, or check with "
					"'hpatch status -p %d'",
					(int)pid);
			}
		}
	}
out_close:
	for (uint32_t k = 0; k < nr; k++) {
		hp_rt_regions_free(prs[k].prior, prs[k].nr_prior);
		prep_release(&prs[k]);
	}
	hp_proc_close(&proc);
out:
	free(prs);
	res->rc = rc;
	return rc;
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

static int revert_one(pid_t pid, const struct hp_rt_opts *opts,
		      struct hp_rt_result *res)
{
	struct hp_rt_region *regions = NULL, *r = NULL, **group = NULL;
	struct hp_busy_range *ranges = NULL, *keep = NULL;
	struct hp_rt_func *recs = NULL;
	struct hp_rt_opts ropts = *opts;
	struct hp_proc proc;
	size_t nr = 0, nr_ranges = 0, nr_recs = 0, nr_group = 0, nr_funcs = 0;
	bool *referenced = NULL;
	int rc;

	*res = (struct hp_rt_result){ .pid = pid };
	rc = hp_proc_open(pid, &proc, false);
	if (rc)
		goto out;
	collect_retired(&proc);
	rc = hp_rt_find_regions(&proc, &regions, &nr);
	if (rc)
		goto out_close;
	/* The newest patch fully in effect: applied last, or newer. */
	for (size_t i = 0; i < nr; i++)
		if (regions[i].active &&
		    (!r || applied_after(&regions[i].hdr, &r->hdr)))
			r = &regions[i];
	if (!r) {
		rc = hp_error(-HP_E_NOTAPPLIED, "pid %d: no patch is applied",
			      (int)pid);
		goto out_free;
	}
	group = calloc(nr, sizeof(*group));
	keep = calloc(nr, sizeof(*keep));
	referenced = calloc(nr, sizeof(*referenced));
	if (!group || !keep || !referenced) {
		rc = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < nr; i++)
		if (same_apply(&regions[i], r)) {
			group[nr_group++] = &regions[i];
			nr_funcs += regions[i].hdr.nr_funcs;
		}
	res->sequence = r->hdr.sequence;
	snprintf(res->patch_id, sizeof(res->patch_id), "%s", r->hdr.patch_id);
	if (memcmp(r->hdr.key_id, (uint8_t[HP_KEY_ID_BYTES]){ 0 },
		   HP_KEY_ID_BYTES))
		hp_sign_key_id_str(res->key_id, r->hdr.key_id);
	describe(res, r->hdr.build_id,
		 r->hdr.build_id_len <= HP_BUILD_ID_MAX ? r->hdr.build_id_len
							: 0);
	res->region = r->addr;
	ranges = calloc(2 * nr_funcs + 1, sizeof(*ranges));
	recs = calloc(nr_funcs + 1, sizeof(*recs));
	if (!ranges || !recs) {
		rc = -ENOMEM;
		goto out_free;
	}
	/*
	 * Consistency, as for apply but reversed: no thread may run or
	 * return into the new code while it is being switched off, and no
	 * instruction pointer may sit on a jump being removed. Every region
	 * of the patch switches back in the same stop.
	 */
	for (size_t g = 0; g < nr_group; g++) {
		const struct hp_rt_region *q = group[g];

		add_listed(res->module, sizeof(res->module), q->hdr.module);
		res->nr_funcs += q->hdr.nr_funcs;
		for (uint32_t i = 0; i < q->hdr.nr_funcs; i++) {
			const struct hp_rt_func *f = &q->funcs[i];

			add_function(res, f->name);
			recs[nr_recs++] = *f;
			ranges[nr_ranges++] = (struct hp_busy_range){
				f->new_addr, f->new_addr + f->new_size,
				f->name,     false,
				NULL,
			};
			if (f->old_addr)
				ranges[nr_ranges++] = (struct hp_busy_range){
					f->old_addr,
					f->old_addr + HP_X86_JMP_REL32_SIZE,
					f->name,
					true,
					f->jump,
				};
		}
		keep[g] =
			(struct hp_busy_range){ q->addr,
						q->addr + q->hdr.region_size,
						q->hdr.patch_id, false, NULL };
	}
	rc = transition(&proc, &ropts, ranges, nr_ranges, recs,
			(uint32_t)nr_recs, true, keep, nr_group, referenced,
			res);
	for (size_t g = 0; !rc && g < nr_group; g++) {
		release_region(&proc, group[g], referenced[g]);
		revive_superseded(&proc, group[g]);
	}
out_free:
	free(ranges);
	free(recs);
	free(group);
	free(keep);
	free(referenced);
	hp_rt_regions_free(regions, nr);
out_close:
	hp_proc_close(&proc);
out:
	res->rc = rc;
	return rc;
}

static const char *region_state(const struct hp_rt_region *r)
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

		build_id_hex(hex, r->hdr.build_id,
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
		hp_out_str(o, "state", "%s", region_state(r));
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

		if (pids[i] == getpid())
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
	pid_t *pids = NULL;
	size_t nr = 0, n = 0;
	int rc = hp_proc_list_tasks(0, &pids, &nr);

	if (rc)
		return rc;
	for (size_t i = 0; i < nr; i++) {
		struct hp_proc proc;
		struct hp_rmodule mod;
		bool hit = false;

		if (pids[i] == getpid() || hp_proc_open(pids[i], &proc, true))
			continue;
		for (uint32_t j = 0; j < p->nr_modules && !hit; j++)
			hit = !hp_proc_find_module(
				&proc, p->modules[j].build_id,
				p->modules[j].build_id_len, &mod);
		hp_proc_close(&proc);
		if (hit)
			pids[n++] = pids[i];
	}
	*out = pids;
	*nr_out = n;
	return 0;
}
