/*
 * The patch region: its layout and bytes (header, records, relocated
 * image), built in the loader's memory, then mapped in the target next to
 * the module and filled, never writable and executable at once.
 */
#include "runtime/rt_lifecycle.h"
#include "runtime/arch_x86_64.h"
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

/* Map and fill the region; retried elsewhere if the hole was taken. */
int hp_region_map(const struct hp_patch *p, struct hp_proc *proc,
		  struct hp_prep *pr)
{
	const bool has_data = pr->m->data_size || pr->m->bss_size;
	struct hp_remote rm;
	long ret = 0;
	int rc = hp_rt_fault("mmap");

	if (!rc)
		rc = hp_remote_begin(proc, &rm);
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

		rc = hp_remote_call(&rm, SYS_mmap, args, &ret);
		if (rc)
			goto out_end;
		if ((hp_raddr_t)ret == pr->region)
			break;
		if (ret >= 0) { /* kernel without MAP_FIXED_NOREPLACE */
			const long un[6] = { ret, (long)pr->region_size };

			hp_remote_call(&rm, SYS_munmap, un, &ret);
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
			rc = hp_region_build(p, pr, hole);
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

		rc = hp_remote_call(&rm, SYS_mprotect, args, &ret);
		if (!rc && ret)
			rc = (int)ret;
	}
	if (!rc && has_data) {
		const long args[6] = {
			(long)(pr->region + pr->hdr_size + pr->text_span),
			(long)(pr->region_size - pr->hdr_size - pr->text_span),
			PROT_READ | PROT_WRITE,
		};

		rc = hp_remote_call(&rm, SYS_mprotect, args, &ret);
		if (!rc && ret)
			rc = (int)ret;
	}
	if (rc)
		hp_error_rc(rc, "pid %d: cannot fill the patch region",
			    (int)proc->pid);
out_end:
	hp_remote_end(&rm);
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
