/*
 * The lifecycle's parts, one file each: the chain rules (rt_plan.c), the
 * patch region (rt_region.c), the jumps (rt_jump.c), the switch
 * (rt_switch.c), the remote-call session (rt_remote.c), and the drivers
 * that use them (rt_apply.c, rt_revert.c, rt_status.c).
 */
#ifndef HP_RT_LIFECYCLE_H
#define HP_RT_LIFECYCLE_H

#include "runtime/runtime_int.h"
#include "common/hp_arch_x86_64.h"

/* The unwinder a process has loaded: libgcc_s (rt_unwind_find.c). */
/* The allocator's functions that take its locks (rt_unwind_find.c). */
#define HP_ALLOC_FNS 16

struct hp_unwinder {
	hp_raddr_t reg;	  /* __register_frame_info */
	hp_raddr_t dereg; /* __deregister_frame_info */
	hp_raddr_t lo;	  /* its module's mapped range */
	hp_raddr_t hi;
	char path[256];
	/* The code of the allocator's functions that take its locks, each
	 * [lo, hi): a thread inside one may hold a lock free() takes. */
	struct {
		hp_raddr_t lo, hi;
		const char *name;
	} alloc[HP_ALLOC_FNS];
	size_t nr_alloc;
};

/* One module's patch, prepared in the loader's memory before any stop. */
struct hp_prep {
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
	/* The region's unwind record (into buf), and whether the unwind
	 * table is registered in the target (rt_unwind.c). */
	struct hp_rt_unwind *unwind;
	bool unwind_registered;
	/* Its registration's thread was left inside the call (asleep in the
	 * kernel past its bound): registered or not, nobody knows. */
	bool unwind_left;
	/* The unwinder to register with, looked up before any stop
	 * (hp_unwind_find); none loaded: nothing to register. */
	struct hp_unwinder unwinder;
	bool has_unwinder;
	bool no_unwinder; /* none is loaded (hp_unwind_find said so) */
	/* The host's highest sequence for this build, as the plan read it
	 * (hp_plan_rollback): at least the patch's, nothing to record. */
	uint64_t recorded;
};

void hp_prep_release(struct hp_prep *pr);
/* An operation (apply, revert) is done: the wake-up timer of its waits
 * disarmed, kept installed for a batch (HP_RT_BATCH), else given back. */
void hp_rt_op_end(const struct hp_rt_opts *opts);

/* ---- rt_plan.c: the chain rules ---- */
/*
 * The record of an earlier patch, in effect, that wrote @head at @addr:
 * following these back gives the original bytes and the code a thread
 * may be running instead of the old function.
 */
const struct hp_rt_func *hp_plan_writer_of(const struct hp_prep *pr,
					   hp_raddr_t addr,
					   const uint8_t *head);
/* The bytes at @addr before any patch: undo the chain of writers. */
void hp_plan_original_head(const struct hp_prep *pr, hp_raddr_t addr,
			   uint8_t *head);
/* Check the running bytes of every function against the patch's pins. */
int hp_plan_verify(const struct hp_proc *proc, struct hp_prep *pr)
	__attribute__((warn_unused_result));
/* Replace mode: plan the restores of functions the patch leaves out. */
int hp_plan_restores(struct hp_prep *pr) __attribute__((warn_unused_result));
/*
 * Anti-rollback across reverts and processes: the host remembers the
 * highest sequence applied to @pr's build (opts->state_dir). Return: 0, or
 * -HP_E_DOWNGRADE (reported) for an older @p without HP_RT_ALLOW_DOWNGRADE.
 */
int hp_plan_rollback(const struct hp_patch *p, pid_t pid, struct hp_prep *pr,
		     const struct hp_rt_opts *opts)
	__attribute__((warn_unused_result));
/* Was @a applied after @b? */
bool hp_plan_applied_after(const struct hp_rt_header *a,
			   const struct hp_rt_header *b);
/* The patches in effect on @pr's module, oldest first, into pr->prior. */
int hp_plan_prior(const struct hp_patch *p, const struct hp_proc *proc,
		  const struct hp_rt_opts *opts, struct hp_prep *pr)
	__attribute__((warn_unused_result));

/*
 * Revert goes back exactly one step: the newest patch fully in effect
 * (hp_plan_applied_after), with every region applied with it (one patch,
 * several modules), in @regions' order. Borrows @regions.
 */
struct hp_revert_plan {
	const struct hp_rt_region *newest; /* names the patch */
	const struct hp_rt_region **group;
	size_t nr_group;
	struct hp_rt_func *recs; /* every record of the group, to undo */
	uint32_t nr_recs;
	struct hp_busy_range *ranges;
	size_t nr_ranges;
	struct hp_busy_range *keep; /* per group region: its whole span */
	bool *referenced;	    /* per group region, set by the switch */
};

/* Return: 0, -HP_E_NOTAPPLIED (not reported), -ENOMEM. */
int hp_plan_revert(const struct hp_rt_region *regions, size_t nr,
		   struct hp_revert_plan *rp)
	__attribute__((warn_unused_result));
void hp_revert_plan_release(struct hp_revert_plan *rp);

/*
 * Collection: a region no longer in effect that no revert can bring back
 * (retired, or left behind by an apply that failed or was killed) is
 * unmapped once no thread points into it. Sets retired[i] for each such
 * region of @regions. Return: how many.
 */
size_t hp_plan_retired(const struct hp_rt_region *regions, size_t nr,
		       bool *retired);

/*
 * Busy ranges, one builder for apply, revert and collection. A switch of
 * @nr records @recs (room for 2 * @nr in @out) must keep threads out of:
 * applying @pr, each redirected function's old body and the code of the
 * earlier patch running in its place (restores too); reverting (@pr NULL),
 * each record's new code, and its jump site (the instruction pointer
 * alone). Return: the number of ranges.
 */
size_t hp_busy_ranges(const struct hp_prep *pr, const struct hp_rt_func *recs,
		      uint32_t nr, struct hp_busy_range *out);
/* The jump site of @f, its bytes there now (before, or with @undo after). */
struct hp_busy_range hp_busy_site(const struct hp_rt_func *f, bool undo);
/* A whole patch region: mapped while any thread points into it. */
struct hp_busy_range hp_busy_region(const struct hp_rt_region *r);

/* ---- rt_region.c: the patch region ---- */
/*
 * Everything for module @m of @p before mapping, with pr->mod and
 * pr->prior set (hp_plan_prior): check the running bytes, plan the
 * restores, bind symbols, lay out the region in a hole near the module
 * and build its bytes in pr->buf. Return: 0 or -HP_E_*, -errno, reported.
 */
int hp_prep_plan(const struct hp_patch *p, const struct hp_proc *proc,
		 const struct hp_module *m, struct hp_prep *pr)
	__attribute__((warn_unused_result));
/* After a revert: keep @r mapped, marked retired, while a thread may
 * still use it (a failed write is warned about). */
void hp_region_retire(const struct hp_proc *proc, const struct hp_rt_region *r);
/* After the switch: mark the patches @pr replaced superseded. */
void hp_prep_supersede(const struct hp_proc *proc, const struct hp_prep *pr);
int hp_region_build(const struct hp_patch *p, struct hp_prep *pr,
		    hp_raddr_t region) __attribute__((warn_unused_result));
/*
 * Does anything write @pr's data part, mapped read+write then? Its data,
 * its bss, and the unwinder's object in the bss only where an unwinder is
 * loaded to be told of it (hp_unwind_find ran): registration is the one
 * writer, and without it the object's pages stay read+execute, unused.
 */
bool hp_region_writes_data(const struct hp_prep *pr);
struct hp_remote;
/* Map @pr's region and write it, through the open session @rm (the step
 * "mmap" of hp_rt_fault is the caller's). Return: 0 or -HP_E_* / -errno,
 * reported; pr->mapped once anything is. */
int hp_region_map(const struct hp_patch *p, struct hp_proc *proc,
		  struct hp_prep *pr, struct hp_remote *rm)
	__attribute__((warn_unused_result));
void hp_region_set_flag(const struct hp_proc *proc,
			const struct hp_rt_region *r, uint32_t flag, bool on);

/* ---- rt_jump.c: jumps and their undo ---- */
int hp_jumps_write(const struct hp_proc *proc, struct hp_rt_func *recs,
		   uint32_t nr, bool undo) __attribute__((warn_unused_result));

/* ---- rt_switch.c: stop, check, switch ---- */
/* What one switch changes, and what it must keep clear of. */
struct hp_switch {
	/* No thread may run in these, nor return into a non-ip_only one. */
	const struct hp_busy_range *ranges;
	size_t nr_ranges;
	struct hp_rt_func *recs; /* the jumps to write */
	uint32_t nr_recs;
	bool undo; /* restore each record's orig bytes instead */
	/* Revert: regions to unmap after the switch; still stopped after the
	 * writes, referenced[i] says whether any thread's registers or stack
	 * point into keep[i] (then its memory must stay mapped). */
	const struct hp_busy_range *keep;
	size_t nr_keep;
	bool *referenced;
	/* Or NULL: a world stopped already (hp_remote_to_world), the first
	 * try's; hp_switch takes it, and lets it go (held->nr_threads 0). */
	struct hp_world *held;
};

/*
 * Stop the world until no thread is in the way of sw->ranges, then write
 * (or with sw->undo restore) the jumps. Busy: resume, back off (1 ms
 * doubling to 64 ms), retry until the timeout. The first try uses
 * sw->held when there is one (every other try stops the world itself).
 * Return: 0, -HP_E_BUSY, -HP_E_GONE, -HP_E_MISMATCH, -errno.
 */
int hp_switch(struct hp_proc *proc, const struct hp_rt_opts *opts,
	      const struct hp_switch *sw, struct hp_rt_result *res)
	__attribute__((warn_unused_result));

/* ---- rt_revert.c ---- */
/* After a revert: patches @reverted had replaced are in effect again. */
void hp_revive_superseded(const struct hp_proc *proc,
			  const struct hp_rt_region *reverted);
/* Unmap retired regions that no thread points into any more. */
void hp_collect_retired(struct hp_proc *proc);

/* ---- rt_status.c: describing a result ---- */
/* "active", "partly replaced by a newer patch", "superseded", "retired"
 * or "inactive": what `hpatch status` says of @r. */
const char *hp_region_state(const struct hp_rt_region *r);
void hp_result_build_id(struct hp_rt_result *res, const uint8_t *id,
			uint32_t len);
/* Append @text to the comma-separated list @list of @size bytes. */
void hp_list_add(char *list, size_t size, const char *text);
void hp_result_add_function(struct hp_rt_result *res, const char *name);

/* ---- rt_unwind.c (rt_unwind.h's files): the table in the unwinder ---- */
/*
 * Register @pr's unwind table with the unwinder hp_unwind_find found
 * (libgcc_s's __register_frame_info), through one thread stopped while the
 * others run, or through @held, the process's only thread, stopped since
 * its region was mapped (hp_remote_to_world); note it in the region's
 * record. None loaded: nothing to do (logged). Return: 0, 1 (@held is not
 * fit to make the call; not reported), -HP_E_BUSY (no thread fit),
 * -HP_E_GONE, -errno; reported.
 */
/*
 * Before any stop: the unwinder @pr's table goes to, if it has one (the
 * symbol lookups read the target's memory: no thread waits for them).
 * Return: 0 (none loaded: @pr->no_unwinder, logged if @say, nothing to
 * register), -HP_E_NOSYM, -errno; reported.
 */
int hp_unwind_find(const struct hp_proc *proc, struct hp_prep *pr, bool say)
	__attribute__((warn_unused_result));
/*
 * Before anything else for a module whose patch has unwind tables: is
 * @proc's dynamic linker done with the unwinder? Not while libgcc_s is
 * mapped and not yet relocated, nor while none is mapped and ld.so loads
 * objects (the program starts, a dlopen), one may be coming: a table not
 * registered now never would be (docs/UNWIND.md). Return: 0, or
 * -HP_E_LOADING, a passing state of the process as a thread in a patched
 * function is (said at error level if @say, else at debug level).
 */
int hp_unwind_ready(const struct hp_proc *proc, bool say)
	__attribute__((warn_unused_result));
int hp_unwind_register(struct hp_proc *proc, struct hp_prep *pr,
		       struct hp_thread *held)
	__attribute__((warn_unused_result));
/*
 * Deregister the unwind table of the region at @addr whose record is @u
 * (nothing if it is not registered), before the region is unmapped, and
 * clear the record. Return: 0, or -HP_E_* / -errno reported: then the
 * region must stay mapped.
 */
int hp_unwind_deregister(struct hp_proc *proc, hp_raddr_t addr,
			 const struct hp_rt_header *hdr,
			 const struct hp_rt_unwind *u)
	__attribute__((warn_unused_result));

/* ---- rt_perfmap.c: perf's map of code without an ELF file ---- */
/*
 * After a switch: append a line per function of @pr, "START SIZE name
 * [hpatch:@patch_id]", to /tmp/perf-PID.map, created for the process's
 * user if missing, emptied first if an earlier process of the same pid
 * left it (older than @proc->start) with hpatch's lines alone; a link or
 * another user's file there is left alone. A new map is a spare of the
 * user's when there is one (rt_perfmap.c).
 * Failures are warned about: perf's names are no reason to fail a patch.
 */
void hp_perfmap_add(const struct hp_proc *proc, const char *patch_id,
		    const struct hp_prep *pr);

/* ---- rt_remote.c: the remote-call session ---- */
/*
 * System calls run in the target through a stopped thread. A session
 * keeps that thread stopped across several calls: under load every stop
 * waits for the thread to get a CPU, so fewer stops is faster. For the
 * same reason a thread stopped for the session runs SCHED_FIFO while it
 * runs only our calls (each a single step), and gets its own scheduling
 * back before it runs its own code again. (Three system calls per session:
 * apply --all over 200 one-thread services at a load of 80 took 1660 us a
 * process with it, 1940 without, for the same CPU time.)
 */
struct hp_remote {
	pid_t pid;
	struct hp_thread t; /* the thread stopped for the session */
	struct hp_prio prio;
	struct hp_sys_site site; /* where its system calls run */
	struct hp_world *w;	 /* or a world already stopped (borrowed) */
	long nr_threads;	 /* the process's, counted with t stopped */
	uint64_t stopped_at;	 /* CLOCK_MONOTONIC us, as it was interrupted */
	pid_t stuck_tid; /* with -HP_E_BUSY: the thread that would not stop */
	bool open;
};

/* Stop one thread of @proc for a session, within a stop's bound (as a
 * world of one thread, HP_STOP_MAX_US, or the operation's timeout if
 * shorter: hp_pt_set_call_bound); busy, another (docs/LIFECYCLE.md,
 * "Stops"). Return: 0, -HP_E_GONE, -HP_E_BUSY (none would stop:
 * r->stuck_tid, the first, reported), -errno. */
int hp_remote_begin(const struct hp_proc *proc, struct hp_remote *r)
	__attribute__((warn_unused_result));
/*
 * End session @r, whose thread was counted alone in its process
 * (r->nr_threads == 1), keeping that thread stopped: *@w is then a world
 * fully stopped since r->stopped_at, as hp_world_stop makes one, ready for
 * a switch (struct hp_switch's held). Return: 0 or -ENOMEM (the session
 * is left open).
 */
int hp_remote_to_world(struct hp_remote *r, struct hp_world *w)
	__attribute__((warn_unused_result));
/* A session through the threads of stopped @w (left stopped at the end). */
int hp_remote_borrow(struct hp_world *w, const struct hp_proc *proc,
		     struct hp_remote *r) __attribute__((warn_unused_result));
/* Return: 0 with *@ret the raw result (-errno on failure), or -HP_E_*. */
int hp_remote_call(struct hp_remote *r, long nr, const long args[6], long *ret);
void hp_remote_end(struct hp_remote *r);
/* munmap in the target (one thread stopped); failures are warned about. */
int hp_remote_munmap(const struct hp_proc *proc, hp_raddr_t addr, uint64_t len);

#endif
