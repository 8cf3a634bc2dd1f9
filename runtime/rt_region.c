/*
 * The patch region: its layout and bytes (header, records, relocated
 * image), built in the loader's memory, then mapped in the target next to
 * the module and filled, never writable and executable at once.
 *
 * The target may forbid making memory executable after the fact:
 * systemd's MemoryDenyWriteExecute=yes refuses mprotect() with PROT_EXEC
 * and mmap() with PROT_WRITE|PROT_EXEC (a seccomp filter), the kernel's
 * PR_SET_MDWE refuses any mapping gaining exec. So the region is mapped
 * read+execute from the start and never made writable: its bytes go in
 * through /proc/PID/mem (a forced write to a private mapping, as a
 * debugger plants breakpoints); then the data gains write (losing exec),
 * which neither refuses.
 */
#include "runtime/rt_lifecycle.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP_LOG_PREFIX "rt: "
#define HP_MAP_TRIES 4

/* The in-target header of @pr's region at @region. */
static void fill_header(const struct hp_patch *p, const struct hp_prep *pr,
			hp_raddr_t region)
{
	struct hp_rt_header *hdr = (struct hp_rt_header *)pr->buf;
	const struct hp_module *m = pr->m;

	memcpy(hdr->magic, HP_RT_MAGIC, sizeof(hdr->magic));
	hdr->version = m->eh_size ? HP_RT_VERSION_UNWIND : HP_RT_VERSION;
	hdr->flags = m->eh_size ? HP_RT_UNWIND : 0;
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
}

/* One record per function (new ones included), then the restores. */
static int fill_records(struct hp_prep *pr, hp_raddr_t region)
{
	const struct hp_module *m = pr->m;

	pr->recs = (struct hp_rt_func *)(pr->buf + sizeof(struct hp_rt_header));
	for (uint32_t i = 0; i < m->nr_funcs; i++) {
		const struct hp_func *f = &m->funcs[i];
		struct hp_rt_func *rec = &pr->recs[i];

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
	}
	for (uint32_t i = 0; i < pr->nr_restores; i++)
		pr->recs[m->nr_funcs + i] = pr->restores[i];
	/* Registered later (hp_unwind_register), which fills deregister. */
	pr->unwind = NULL;
	if (m->eh_size) {
		pr->unwind = (struct hp_rt_unwind *)(pr->recs + pr->nr_recs);
		*pr->unwind = (struct hp_rt_unwind){
			.eh_addr = region + pr->hdr_size + m->eh_off,
			.obj_addr = region + pr->hdr_size +
				    hp_module_unwind_obj_off(m),
		};
	}
	return 0;
}

/* Lay out the region at @region and build its bytes. */
int hp_region_build(const struct hp_patch *p, struct hp_prep *pr,
		    hp_raddr_t region)
{
	const struct hp_module *m = pr->m;
	const uint64_t data_off = hp_module_data_off(m);
	const bool has_data = m->data_size || m->bss_size;
	const uint64_t image_size =
		has_data ? data_off + m->data_size + m->bss_size : m->text_size;
	struct hp_reloc_ctx ctx = { 0 };
	uint8_t *image = NULL;
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
	fill_header(p, pr, region);
	rc = fill_records(pr, region);
	if (rc)
		return rc;
	pr->nr_ranges =
		(uint32_t)hp_busy_ranges(pr, pr->recs, pr->nr_recs, pr->ranges);
	pr->write_len = pr->hdr_size +
			(has_data ? data_off + m->data_size : m->text_size);
	return 0;
}

int hp_prep_plan(const struct hp_patch *p, const struct hp_proc *proc,
		 const struct hp_module *m, struct hp_prep *pr)
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
	rc = hp_plan_verify(proc, pr);
	if (!rc && !pr->stack)
		rc = hp_plan_restores(pr);
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
	pr->hdr_size = HP_ALIGN_UP(
		sizeof(struct hp_rt_header) +
			pr->nr_recs * sizeof(struct hp_rt_func) +
			(m->eh_size ? sizeof(struct hp_rt_unwind) : 0),
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
	return hp_region_build(p, pr, hole);
}

/* The target's mmap of the region failed with @ret: why, said. */
static int map_refused(const struct hp_proc *proc, const struct hp_prep *pr,
		       long ret)
{
	hp_error_rc((int)ret,
		    "pid %d: its mmap of the patch region (%" PRIu64
		    " bytes at 0x%" PRIx64 ") failed",
		    (int)proc->pid, pr->region_size, pr->region);
	if (ret == -ENOMEM)
		hp_hint("the process is at its address-space limit "
			"(RLIMIT_AS: prlimit --pid %d), its count of mappings "
			"(vm.max_map_count), or the host's commit limit "
			"(vm.overcommit_memory=2): nothing changed",
			(int)proc->pid);
	else if (ret == -EPERM || ret == -EACCES)
		hp_hint("a security module or seccomp filter forbids it "
			"executable memory: nothing changed");
	return (int)ret;
}

/*
 * mmap the region where it was laid out; retried elsewhere if the hole
 * was taken since. Return: 0, -HP_E_NOHOLE, -HP_E_GONE, -errno, reported.
 */
static int map_at_hole(const struct hp_patch *p, struct hp_proc *proc,
		       struct hp_prep *pr, struct hp_remote *rm)
{
	long ret = -EEXIST;
	int rc = 0;

	for (int tries = 0; tries < HP_MAP_TRIES; tries++) {
		const long args[6] = {
			(long)pr->region,
			(long)pr->region_size,
			PROT_READ | PROT_EXEC,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			-1,
			0,
		};
		hp_raddr_t hole;

		rc = hp_remote_call(rm, SYS_mmap, args, &ret);
		if (rc || (hp_raddr_t)ret == pr->region)
			return rc;
		if (ret >= 0) { /* kernel without MAP_FIXED_NOREPLACE */
			const long un[6] = { ret, (long)pr->region_size };

			hp_remote_call(rm, SYS_munmap, un, &ret);
			return hp_error(-HP_E_NOHOLE,
					"pid %d: kernel ignored "
					"MAP_FIXED_NOREPLACE",
					(int)proc->pid);
		}
		if (ret != -EEXIST)
			return map_refused(proc, pr, ret);
		/* Someone mapped there since we looked: look again. */
		rc = hp_proc_read_maps(proc);
		if (!rc)
			rc = hp_proc_find_hole(proc, &pr->mod, pr->region_size,
					       &hole);
		if (!rc)
			rc = hp_region_build(p, pr, hole);
		if (rc)
			return rc;
	}
	return hp_error(-HP_E_NOHOLE,
			"pid %d: address space keeps changing; cannot map "
			"the patch",
			(int)proc->pid);
}

/* mprotect @len bytes at @addr in the target. Return: 0 or -errno. */
static int protect(struct hp_remote *rm, hp_raddr_t addr, uint64_t len,
		   int prot)
{
	const long args[6] = { (long)addr, (long)len, prot };
	long ret = 0;
	int rc = hp_remote_call(rm, SYS_mprotect, args, &ret);

	return rc ?: (int)ret;
}

bool hp_region_writes_data(const struct hp_prep *pr)
{
	const struct hp_module *m = pr->m;
	const uint32_t obj = m->eh_size ? HP_UNWIND_OBJECT_SIZE + 16 : 0;

	return m->data_size || m->bss_size > obj ||
	       (m->eh_size && pr->has_unwinder);
}

/*
 * Map and fill the region through session @rm: header and text
 * read+execute (as mapped), data read+write where anything will write
 * it (hp_region_writes_data): one more system call run in the target,
 * which a C program with no unwinder loaded, the common case of a storm
 * of new processes, is spared. A region is found by its
 * header, at the start of an anonymous mapping read-only or read+execute
 * (hp_rt_find_regions): a kill of the loader after the write leaves one
 * found, inactive, as any interrupted apply. The header's own protection
 * would cost one more system call run in the target, with a stop of its
 * thread for it: a third of the calls of an apply, and each process's
 * pause for the mapping where it has one thread. Its bytes are records of
 * code (the bytes displaced and written, addresses) and names.
 */
int hp_region_map(const struct hp_patch *p, struct hp_proc *proc,
		  struct hp_prep *pr, struct hp_remote *rm)
{
	const bool has_data = hp_region_writes_data(pr);
	const hp_raddr_t text = pr->region + pr->hdr_size;
	int rc = map_at_hole(p, proc, pr, rm);

	if (rc)
		return rc;
	pr->mapped = true;
	rc = hp_rt_fault("mprotect");
	if (!rc && has_data)
		rc = protect(rm, text + pr->text_span,
			     pr->region_size - pr->hdr_size - pr->text_span,
			     PROT_READ | PROT_WRITE);
	if (!rc)
		rc = hp_rt_fault("write");
	if (!rc)
		rc = hp_proc_write(proc, pr->region, pr->buf, pr->write_len);
	if (rc)
		hp_error_rc(rc, "pid %d: cannot fill the patch region",
			    (int)proc->pid);
	return rc;
}

/* Set or clear a flag in a region's in-target header. */
void hp_region_set_flag(const struct hp_proc *proc,
			const struct hp_rt_region *r, uint32_t flag, bool on)
{
	uint32_t flags = on ? r->hdr.flags | flag : r->hdr.flags & ~flag;

	if (flags != r->hdr.flags &&
	    hp_proc_write(proc, r->addr + offsetof(struct hp_rt_header, flags),
			  &flags, sizeof(flags)))
		hp_warn("pid %d: cannot update region 0x%" PRIx64,
			(int)proc->pid, r->addr);
}

void hp_prep_supersede(const struct hp_proc *proc, const struct hp_prep *pr)
{
	/* Replaced patches stay mapped: reverting this restores them. */
	for (size_t i = 0; !pr->stack && i < pr->nr_prior; i++)
		if (pr->prior[i].nr_in_place)
			hp_region_set_flag(proc, &pr->prior[i],
					   HP_RT_SUPERSEDED, true);
}

void hp_region_retire(const struct hp_proc *proc, const struct hp_rt_region *r)
{
	uint32_t flags = r->hdr.flags | HP_RT_RETIRED;

	hp_log(HP_LOG_INFO,
	       "pid %d: patch '%s' reverted; its code stays mapped at "
	       "0x%" PRIx64 " while a thread may still use it",
	       (int)proc->pid, r->hdr.patch_id, r->addr);
	if (hp_proc_write(proc, r->addr + offsetof(struct hp_rt_header, flags),
			  &flags, sizeof(flags)))
		hp_warn("pid %d: cannot mark region 0x%" PRIx64 " retired",
			(int)proc->pid, r->addr);
}
