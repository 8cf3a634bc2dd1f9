/*
 * The patch's unwind table in the target's unwinder (docs/UNWIND.md):
 * registered with libgcc's __register_frame_info before the switch makes
 * the code reachable, deregistered before the region is unmapped. Both
 * take libgcc's object mutex, so the call runs in one thread while the
 * others run (never in a stopped world), in a thread that cannot hold it.
 * What ld.so has done is rt_unwind_ld.c's, what the target has loaded
 * rt_unwind_find.c's, the thread and the call rt_unwind_call.c's.
 */
#include "runtime/rt_unwind.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <link.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/seccomp.h>
#include <sys/mman.h>

#define HP_LOG_PREFIX "rt: "

int hp_unwind_find(const struct hp_proc *proc, struct hp_prep *pr, bool say)
{
	int rc;

	pr->has_unwinder = false;
	if (!pr->unwind)
		return 0;
	rc = hp_unwind_find_unwinder(proc, &pr->unwinder);
	if (rc == 1) {
		pr->no_unwinder = true;
		if (say)
			hp_log(HP_LOG_INFO,
			       "pid %d: no unwinder loaded (libgcc_s): patched "
			       "frames "
			       "stay opaque to one loaded later",
			       (int)proc->pid);
		return 0;
	}
	pr->has_unwinder = !rc;
	return rc ? hp_error_rc(rc,
				"pid %d: cannot register the patch's unwind "
				"table",
				(int)proc->pid)
		  : 0;
}

int hp_unwind_register(struct hp_proc *proc, struct hp_prep *pr,
		       struct hp_thread *held)
{
	const long args[2] = { pr->unwind ? (long)pr->unwind->eh_addr : 0,
			       pr->unwind ? (long)pr->unwind->obj_addr : 0 };
	const struct hp_unwinder u = pr->unwinder;
	char why[160];
	size_t at;
	int rc;

	if (!pr->unwind || !pr->has_unwinder)
		return 0;
	at = (size_t)((uint8_t *)pr->unwind - pr->buf);
	rc = hp_rt_fault("unwind");
	/* The process's one thread, held: fit, or the caller lets it go and
	 * asks again (the next stop may find it waiting). */
	if (!rc && held &&
	    !hp_unwind_fit_to_call(proc, held, &u, why, sizeof(why))) {
		hp_dbg(HP_DBG_PTRACE, "pid %d: %s", (int)proc->pid, why);
		return 1;
	}
	if (!rc && held) {
		rc = hp_unwind_call(proc, held, u.reg, args, pr->region);
		rc = rc == -ESRCH ? -HP_E_GONE : rc;
		pr->unwind_left = held->owes_regs || held->left_in_call;
	} else if (!rc) {
		rc = hp_unwind_call_in_target(proc, &u, u.reg, args, pr->region,
					      &pr->unwind_left);
	}
	/* (Left inside: its magic stays cleared, the region unknown.) */
	if (rc && !pr->unwind_left)
		hp_unwind_region_magic(proc, pr->region, true);
	if (rc)
		return hp_error_rc(rc,
				   "pid %d: cannot register the patch's "
				   "unwind table",
				   (int)proc->pid);
	pr->unwind_registered = true;
	pr->unwind->deregister = u.dereg;
	rc = hp_proc_write(proc,
			   pr->region + at +
				   offsetof(struct hp_rt_unwind, deregister),
			   &u.dereg, sizeof(u.dereg));
	rc = rc ?: hp_unwind_region_magic(proc, pr->region, true);
	if (rc)
		return hp_error_rc(rc,
				   "pid %d: cannot record the unwind "
				   "registration",
				   (int)proc->pid);
	hp_dbg(HP_DBG_PTRACE, "pid %d: unwind table 0x%" PRIx64 " registered",
	       (int)proc->pid, pr->unwind->eh_addr);
	return 0;
}

int hp_unwind_deregister(struct hp_proc *proc, hp_raddr_t addr,
			 const struct hp_rt_header *hdr,
			 const struct hp_rt_unwind *u)
{
	const hp_raddr_t field = addr + sizeof(*hdr) +
				 hdr->nr_funcs * sizeof(struct hp_rt_func) +
				 offsetof(struct hp_rt_unwind, deregister);
	const uint64_t zero = 0;
	const long args[2] = { (long)u->eh_addr };
	struct hp_unwinder uw;
	bool left = false;
	int rc;

	if (!(hdr->flags & HP_RT_UNWIND) || !u->deregister)
		return 0;
	rc = hp_unwind_find_unwinder(proc, &uw);
	/* libgcc aborts the process on a table it does not know: only the
	 * function it was registered with may be asked. */
	if (rc == 1 || (!rc && uw.dereg != u->deregister))
		rc = hp_error(-HP_E_NOSYM,
			      "pid %d: the unwinder patch '%s' registered with "
			      "is gone",
			      (int)proc->pid, hdr->patch_id);
	rc = rc
		     ?: hp_unwind_call_in_target(proc, &uw, uw.dereg, args,
						 addr, &left);
	if (left) {
		/* Forgotten by now or later, or never: the region stays, its
		 * magic cleared (hp_unwind_call), and no later hpatch asks
		 * again (libgcc aborts on a table it does not know) nor
		 * unmaps it (a table it still knows). */
		return hp_error(-HP_E_BUSY,
				"pid %d: the region of patch '%s' at 0x%" PRIx64
				" stays mapped, unused: a thread left inside "
				"the deregistration of its unwind table may "
				"yet deregister it",
				(int)proc->pid, hdr->patch_id, addr);
	}
	/* Not done (not made, or abandoned): the record stands, the region
	 * known again. Done: the record cleared first. */
	if (rc)
		hp_unwind_region_magic(proc, addr, true);
	else
		rc = hp_proc_write(proc, field, &zero, sizeof(zero))
			     ?: hp_unwind_region_magic(proc, addr, true);
	if (rc)
		return hp_error_rc(rc,
				   "pid %d: cannot deregister the unwind "
				   "table of patch '%s'; its region stays "
				   "mapped",
				   (int)proc->pid, hdr->patch_id);
	return 0;
}
