/*
 * The patch's unwind table in the target's unwinder, one file each: what
 * ld.so has done and the program's link map (rt_unwind_ld.c), what the
 * target has loaded (rt_unwind_find.c), the thread the call is made in
 * and its bounds (rt_unwind_call.c), registration and deregistration
 * (rt_unwind.c). Shared by them alone.
 */
#ifndef HP_RT_UNWIND_H
#define HP_RT_UNWIND_H

#include "runtime/rt_lifecycle.h"

#include <stdbool.h>
#include <stddef.h>

/* ---- rt_unwind_ld.c: ld.so's state, the program's link map ---- */
/* What hp_unwind_linked_first looks for in a module (its first mapping). */
typedef bool hp_unwind_module_match_fn(const struct hp_proc *proc,
				       const struct hp_map *m, void *arg);
const struct hp_map *hp_unwind_linked_first(const struct hp_proc *proc,
					    hp_unwind_module_match_fn *match,
					    void *arg);

/* ---- rt_unwind_find.c: the target's unwinder, allocator, restorer ---- */
const struct hp_map *hp_unwind_find_libgcc(const struct hp_proc *proc);
int hp_unwind_find_unwinder(const struct hp_proc *proc, struct hp_unwinder *u);
hp_raddr_t hp_unwind_find_restorer(const void *arg);
const char *hp_unwind_locking_code(const struct hp_unwinder *u, uint64_t addr);

/* ---- rt_unwind_call.c: the thread of the call, its bounds ---- */
bool hp_unwind_fit_to_call(const struct hp_proc *proc, struct hp_thread *t,
			   const struct hp_unwinder *u, char *why, size_t size);
struct hp_call_guard hp_unwind_call_guard(const struct hp_proc *proc);
/* The header's magic of the region at @region written (@on) or cleared:
 * a region no hpatch knows. Return: 0 or -errno, said. */
int hp_unwind_region_magic(const struct hp_proc *proc, hp_raddr_t region,
			   bool on);
int hp_unwind_call(struct hp_proc *proc, struct hp_thread *t, hp_raddr_t fn,
		   const long args[2], hp_raddr_t region);
int hp_unwind_call_in_target(struct hp_proc *proc, const struct hp_unwinder *u,
			     hp_raddr_t fn, const long args[2],
			     hp_raddr_t region, bool *left);

#endif
