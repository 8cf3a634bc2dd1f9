/*
 * Writing the 5-byte jumps of a switch, and putting the displaced bytes
 * back: every site checked against the bytes expected there, all or
 * nothing.
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
int hp_jumps_write(const struct hp_proc *proc, struct hp_rt_func *recs,
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
