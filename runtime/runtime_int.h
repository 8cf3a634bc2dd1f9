/*
 * Loader internals: the target's memory map, its modules, its threads, and
 * the in-target record at the start of every patch region.
 */
#ifndef HP_RUNTIME_INT_H
#define HP_RUNTIME_INT_H

#include <assert.h>
#include <elf.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "runtime/runtime.h"

typedef uint64_t hp_raddr_t; /* an address in the target, never a pointer */

/* ---- rt_proc.c: /proc/PID/maps, /proc/PID/mem, modules ---- */
struct hp_map {
	hp_raddr_t start;
	hp_raddr_t end;
	uint64_t offset;
	unsigned int prot; /* PROT_* */
	bool shared;
	uint64_t dev; /* the mapped file's device and inode (0: none) */
	uint64_t inode;
	char path[256]; /* "" for anonymous */
};

struct hp_proc;

/* Signal restorers looked for in a process (a C library or two). */
#define HP_RESTORERS_MAX 2

/*
 * The seam every read and write of the target's memory goes through:
 * /proc/PID/mem (hp_proc_mem_ops) for a real process, a buffer in unit
 * tests, so the lifecycle's rules run on made-up regions. Each returns 0,
 * -HP_E_GONE, or -errno (-EIO on a short transfer).
 */
struct hp_mem_ops {
	int (*read)(const struct hp_proc *proc, hp_raddr_t addr, void *buf,
		    size_t len);
	int (*write)(const struct hp_proc *proc, hp_raddr_t addr,
		     const void *buf, size_t len);
};

extern const struct hp_mem_ops hp_proc_mem_ops;

struct hp_proc {
	pid_t pid;
	pid_t tid;  /* a live thread: the leader, unless it exited */
	int mem_fd; /* /proc/TID/mem, O_RDWR */
	struct hp_map *maps;
	size_t nr_maps;
	const struct hp_mem_ops *mem; /* NULL: hp_proc_mem_ops */
	void *mem_ctx;		      /* the ops' own, for tests */
	pid_t checked_last; /* hp_last_pid before the sharers were checked */
	uint64_t start;	    /* its start time (clock ticks since boot, as
			     * /proc/PID/stat says), 0: unknown */
	/* Its C library's signal restorers (rt_sigframe.c), found with
	 * each read of its map: a stack word equal to one starts a signal
	 * frame. */
	hp_raddr_t restorers[HP_RESTORERS_MAX];
	size_t nr_restorers;
};

struct hp_rmodule {
	char path[256];
	hp_raddr_t bias;  /* load bias: runtime address - link address */
	hp_raddr_t start; /* lowest mapped address */
	hp_raddr_t end;	  /* highest mapped address */
};

/* Has every thread of @pid exited? */
bool hp_proc_gone(pid_t pid);
/* Has @proc executed a new program since it was opened (its memory, as
 * hp_proc_open found it, is gone while the process lives on)? */
bool hp_proc_execd(const struct hp_proc *proc);
/* Open @pid's memory and map; @quiet: no messages (scans of every pid). */
int hp_proc_open(pid_t pid, struct hp_proc *proc, bool quiet)
	__attribute__((warn_unused_result));
/* The same, through @pid's leader, seen live just before: no read of its
 * state. When it has no memory now (it exited, pthread_exit in main, or
 * the process did), as hp_proc_open: then @proc->tid is another thread,
 * or the process is gone. */
int hp_proc_open_live(pid_t pid, struct hp_proc *proc, bool quiet)
	__attribute__((warn_unused_result));
void hp_proc_close(struct hp_proc *proc);
int hp_proc_read_maps(struct hp_proc *proc) __attribute__((warn_unused_result));
/*
 * The whole of /proc file @path, NUL-terminated, in *@out (malloc'd): in
 * reads of 64 KiB, where stdio's 1 KiB reads made the kernel format the
 * file again for each. Return: 0, -errno.
 */
int hp_read_proc_file(const char *path, char **out, size_t *len)
	__attribute__((warn_unused_result));
/* Return: 0, -HP_E_GONE, or -EIO on a short read. */
int hp_proc_read(const struct hp_proc *proc, hp_raddr_t addr, void *buf,
		 size_t len) __attribute__((warn_unused_result));
int hp_proc_write(const struct hp_proc *proc, hp_raddr_t addr, const void *buf,
		  size_t len) __attribute__((warn_unused_result));
/*
 * What one scan of the host learned of each mapped file (device, inode):
 * its build-id, read once from the file itself, so that the next process
 * that maps it is looked at through its map alone (it shares the file's
 * pages), where each cost reads of its memory (rt_module.c). What the
 * scan finds, the apply checks again in each process's memory.
 */
struct hp_id_hit;
struct hp_id_hits {
	struct hp_id_hit *v;
	size_t nr, cap;
};
void hp_id_hits_release(struct hp_id_hits *h);
/* Whether @pid runs an executable that @hits knows (one stat of
 * /proc/PID/exe: its map need not be read). */
bool hp_id_hits_exe(const struct hp_id_hits *h, pid_t pid);
/* Open @pid for a scan: its map only, its memory when first needed
 * (hp_proc_find_module_in). Return: as hp_proc_open, quiet. */
int hp_proc_open_scan(pid_t pid, struct hp_proc *proc)
	__attribute__((warn_unused_result));
/* hp_proc_find_module through @hits (learning from a match). */
int hp_proc_find_module_in(struct hp_proc *proc, struct hp_id_hits *hits,
			   const uint8_t *build_id, uint32_t build_id_len,
			   struct hp_rmodule *mod);
/* Find the module with @build_id. Return: 0, -HP_E_NOTARGET, or, when
 * an image that may be it cannot be read (its memory not opened for a
 * scan), -HP_E_GONE or -errno. */
int hp_proc_find_module(const struct hp_proc *proc, const uint8_t *build_id,
			uint32_t build_id_len, struct hp_rmodule *mod)
	__attribute__((warn_unused_result));
/* A free, page-aligned range of @size bytes from which every byte of @mod
 * is within rel32 reach. Return: 0 or -HP_E_NOHOLE. */
int hp_proc_find_hole(const struct hp_proc *proc, const struct hp_rmodule *mod,
		      uint64_t size, hp_raddr_t *out)
	__attribute__((warn_unused_result));
/* Address of a "syscall" instruction in executable memory. */
int hp_proc_find_syscall_insn(const struct hp_proc *proc, hp_raddr_t *out)
	__attribute__((warn_unused_result));
/* The mapping containing @addr, or NULL. */
const struct hp_map *hp_proc_find_map(const struct hp_proc *proc,
				      hp_raddr_t addr);
/* ---- rt_task.c: a task's /proc files, lists of tasks, priority ---- */
/* List thread ids of @pid, or every process when @pid is 0; *@tids is
 * malloc'd. Return: 0, -HP_E_GONE or -errno. */
int hp_proc_list_tasks(pid_t pid, pid_t **tids, size_t *nr)
	__attribute__((warn_unused_result));

/* Whether process or thread @tid is gone, or a zombie not yet reaped:
 * nothing left to patch or undo there. */
bool hp_task_gone(pid_t tid);
/* Whether thread @tid may run its code again: neither gone, a zombie, nor
 * exiting (PF_EXITING: its memory let go, or being). A stat not read now
 * (no fd left) says nothing: live, as hp_task_gone takes it. */
bool hp_task_live(pid_t tid);
/* The number after "@key" ("Seccomp:") in /proc/@tid/status, or -1. */
long hp_task_status_field(pid_t tid, const char *key);
/* The same for each of @keys (@nr of them) into @vals, from one read of
 * the file: a thread's "Seccomp:" and its process's "Threads:", say. */
void hp_task_status_fields(pid_t tid, const char *const *keys, long *vals,
			   size_t nr);
/* A hexadecimal mask of /proc/TID/status ("SigPnd:"), 0 if unreadable. */
uint64_t hp_task_status_mask(pid_t tid, const char *key);
/* Whether the task (or its /proc/TID/stat line) has memory of its own. */
bool hp_stat_has_mm(const char *stat);
bool hp_task_has_mm(pid_t tid);
/* Whether the task is one of the kernel's threads (PF_KTHREAD). */
bool hp_task_is_kthread(pid_t tid);
/* The system call a /proc/PID/task/TID/syscall line says the task is
 * blocked in ("NR ARG1..ARG6 SP PC"), or -1: not in one ("-1 SP PC"),
 * "running", or anything else. */
long hp_syscall_line_nr(const char *line);
/* The same for thread @tid of @pid, read now; -1 if unreadable. */
long hp_task_syscall_nr(pid_t pid, pid_t tid);
/* "state D, uninterruptible, in nfs_wait_bit_killable" of thread @tid. */
void hp_task_state(pid_t tid, char *buf, size_t size);
/* Is @tid in a frozen cgroup (cgroup v2's cgroup.freeze, v1's freezer:
 * docker pause, systemctl freeze)? It runs no instruction until thawed. */
bool hp_task_frozen(pid_t tid);
/* Frozen while stopped for us: only v1's freezer freezes a thread inside
 * a ptrace stop (none mounted: false, nothing read). */
bool hp_task_frozen_in_stop(pid_t tid);
/* The hint for thread @tid, which would not stop: frozen, or asleep in
 * the kernel; retry later either way. */
void hp_task_stuck_hint(pid_t tid);
/* The pid tracing @tid ("TracerPid:"), 0 if none, -1 if unknown. */
pid_t hp_task_tracer(pid_t tid);
/* The command name of @pid, "?" if unknown. */
void hp_task_comm(pid_t pid, char *buf, size_t size);

/* ---- rt_sharers.c: processes sharing an address space ---- */
/* Refuse a process that shares its memory with another process (vfork,
 * clone(CLONE_VM)): hpatch stops one process's threads, not the other's.
 * @s: an index of the host's processes (hp_rt_sharers_new) to look in,
 * or NULL to ask every process. Return: 0, -HP_E_BUSY (reported, naming
 * them), -errno. */
int hp_proc_check_alone(pid_t pid, struct hp_rt_sharers *s)
	__attribute__((warn_unused_result));
/* The same, asking through @pid's leader, seen neither zombie nor dead
 * just before (hp_rt_lock's read): no read of its state again. The caller
 * then opens it with hp_proc_open_live, whose map read shows the leader
 * still had its memory after the check, and checks again if not. */
int hp_proc_check_alone_live(pid_t pid, struct hp_rt_sharers *s)
	__attribute__((warn_unused_result));
/* The pid the kernel handed out last in our pid namespace, or 0 when
 * unknown: read before hp_proc_check_alone, for hp_proc_check_since. */
pid_t hp_last_pid(void);
/* With @pid's threads stopped: does a process created since
 * hp_proc_check_alone (@last: hp_last_pid before it) share its memory?
 * Stopped, @pid can create no more; one created before the stop would
 * run on through the writes. Asks the tasks handed a pid since @last
 * (none, mostly), or every process when @last is 0 or too many came.
 * @quiet: report nothing, and ask no more than those (-HP_E_BUSY when
 * that is not enough). Return: 0, -HP_E_BUSY (reported, naming them,
 * unless @quiet), -errno. */
int hp_proc_check_since(pid_t pid, pid_t last, bool quiet)
	__attribute__((warn_unused_result));

/* The process sharing @pid's memory that thread @tid waits for, in
 * vfork() or clone(CLONE_VFORK) (where no interrupt reaches it), or 0. */
pid_t hp_proc_vfork_sharer(pid_t pid, pid_t tid);

/* ---- rt_symbols.c ---- */
/* Address of @name (@version NULL: the default version) in the modules the
 * process has loaded, searched in load order. Return: 0 or -HP_E_NOSYM. */
int hp_proc_find_symbol(const struct hp_proc *proc, const char *name,
			const char *version, hp_raddr_t *out)
	__attribute__((warn_unused_result));
/* ... of @name (@version NULL: the default version; not an IFUNC) in the
 * one module mapped at @m (its first mapping), said nowhere. Return: 0 or
 * -ENOENT. */
int hp_module_find_symbol(const struct hp_proc *proc, const struct hp_map *m,
			  const char *name, const char *version,
			  hp_raddr_t *out) __attribute__((warn_unused_result));
/* The same, and its size (the symbol's st_size) in *@size. */
int hp_module_find_function(const struct hp_proc *proc, const struct hp_map *m,
			    const char *name, const char *version,
			    hp_raddr_t *out, uint64_t *size)
	__attribute__((warn_unused_result));
/* Call @fn(entry, @arg) for each entry of the dynamic section at @dyn
 * (@size bytes, at most HP_DYNAMIC_MAX read), in order, until DT_NULL or
 * until @fn returns nonzero. Return: @fn's nonzero value, 0 at the end,
 * -EIO where the section could not be read on. */
#define HP_DYNAMIC_MAX (64u << 10)
int hp_proc_each_dyn(const struct hp_proc *proc, hp_raddr_t dyn, uint64_t size,
		     int (*fn)(const Elf64_Dyn *e, void *arg), void *arg);

/* ---- rt_ptrace.c: seize, stop; inject (rt_inject.h's files) ---- */
struct hp_thread;
/* Shared by rt_ptrace.c and rt_inject.h's files alone. The bound of one injected
 * step or call (hp_pt_set_call_bound), in us. */
extern uint64_t hp_pt_call_max_us;
/* Wait for @t's next report until @deadline, in us (a timer wakes us). */
pid_t hp_pt_wait_until(const struct hp_thread *t, int *status,
		       uint64_t deadline);
/* The same for @t just resumed (a step, a call), which cannot have
 * stopped yet: no WNOHANG first. */
pid_t hp_pt_wait_resumed(const struct hp_thread *t, int *status,
			 uint64_t deadline);
/* For tests: called by each wait between its arming of the wake-up
 * timer and its blocking waitpid, where a loader can be preempted (NULL:
 * nothing; hpatch sets none). */
extern void (*hp_pt_wait_gap)(void);
/* Disarm the wake-up timer of hp_pt_wait_until (unless kept). */
void hp_pt_wake_disarm(void);
/* Keep it armed between the waits of a run of steps of one thread (a
 * remote session), or no longer (then disarm it). */
void hp_pt_wake_keep(bool on);
/* One word of @tid's user area at @off (PTRACE_PEEKUSER). */
int hp_pt_peek_user(pid_t tid, size_t off, unsigned long long *out);
/* Put back the signal mask @saved of stopped @t. */
void hp_pt_restore_signals(const struct hp_thread *t, uint64_t *saved);
struct hp_thread {
	pid_t tid;
	bool seized;
	bool stopped;
	bool leader;	 /* the thread-group leader (tid == pid) */
	bool dead;	 /* killed while ours: to reap (hp_pt_reap) */
	bool has_regs;	 /* regs read during this stop */
	bool has_ip;	 /* regs.rip and .rsp alone read during this stop */
	bool group_stop; /* the stop it reported is a group stop's (SIGSTOP) */
	struct user_regs_struct regs;
	/* Left running our instruction (an injected call or a step that
	 * outlived its bound): what hp_pt_release puts back if it stops. */
	bool owes_regs;
	bool owes_mask;
	/* Left inside an injected call that may hold a lock, to finish on its
	 * own and return through a signal frame of its own state. */
	bool left_in_call;
	struct user_regs_struct owed_regs;
	uint64_t owed_mask;
	/* Inside a run of injected system calls (hp_pt_inject_begin): its
	 * own registers and signal mask, which each call puts back. */
	bool injecting;
	struct user_regs_struct inj_regs;
	uint64_t inj_mask;
	/* Its seccomp mode ("Seccomp:" in its status), read once a stop. */
	bool has_seccomp_mode;
	int seccomp_mode;
	/* Seized by the helper thread (a world's second tracer): only it
	 * may ask ptrace anything of it (rt_transition.c); the signal it
	 * stopped for first, for it to deliver. */
	bool by_helper;
	int stop_sig;
};

/* Return: 0, -ESRCH (exiting), -HP_E_BUSY (left attached inside an
 * earlier try's injected call, and not back yet: reported; one back is
 * given what it is owed and seized anew), or -errno reported naming the
 * tracer that holds the thread, if any. */
int hp_pt_seize(struct hp_thread *t) __attribute__((warn_unused_result));
/* The same, saying nothing: 0 or -errno as PTRACE_SEIZE gave it. */
int hp_pt_seize_quiet(struct hp_thread *t) __attribute__((warn_unused_result));
/* Reap the @nr threads (of @threads) that hp_pt_release found killed, so
 * their parent can: a tracee that died stays a zombie for its tracer. */
void hp_pt_reap(struct hp_thread *threads, size_t nr);
int hp_pt_interrupt(struct hp_thread *t) __attribute__((warn_unused_result));
/* Wait until @t is stopped, or the deadline (hp_pt_set_deadline).
 * Return: 0, -ESRCH if it exited, -ETIMEDOUT, -HP_E_EXEC (stopped after
 * an exec: the image we prepared for is gone), -EXDEV (a thread of the
 * helper's stopped first for a signal, in t->stop_sig, for its tracer
 * to deliver). */
int hp_pt_wait_stop(struct hp_thread *t) __attribute__((warn_unused_result));
/* The least bound of a stop (a world's grows with its threads and the
 * host's load: rt_transition.c), within which a thread an interrupt does
 * not reach (asleep in a frozen cgroup, on a hung file system) is let go,
 * rather than keep the rest stopped, or the loader waiting. */
#define HP_STOP_MAX_US 250000
/* Bound every wait for a stop until @deadline_us (CLOCK_MONOTONIC us; 0:
 * each wait's own default, a few seconds). */
void hp_pt_set_deadline(uint64_t deadline_us);
/* Bound each wait for an injected system call or a single step to
 * @bound_ms (at least 2 s), and the stop of one thread for a session to
 * @bound_ms (at most HP_STOP_MAX_US: hpatchd's slices of a try are 10 ms;
 * a stop a slice did not see comes, its interrupt pending, in the next). */
void hp_pt_set_call_bound(long bound_ms);
extern uint64_t hp_pt_stop_max_us;
/* Tests (HPATCH_FAULT=call-left): the thread owed by the next
 * release is left attached at once, as one that stayed inside our call. */
extern bool hp_pt_fault_leave;
/* Give back the signal and mask the bounded waits used (every operation
 * on a target calls it when done; a later wait takes them again). */
void hp_pt_wake_release(void);
/* Detach stopped @t (it runs on). Return: 0, -ESRCH (killed meanwhile:
 * t->dead, to reap), -errno. */
int hp_pt_detach(struct hp_thread *t);
/* Resume stopped @t delivering @sig (0: none). Return: 0 or -errno. */
int hp_pt_cont(struct hp_thread *t, int sig);
int hp_pt_get_regs(struct hp_thread *t) __attribute__((warn_unused_result));
/* Read only t->regs.rip and .rsp (one call, as cheap as one word and
 * cheaper than every register). */
int hp_pt_get_ip(struct hp_thread *t) __attribute__((warn_unused_result));
/* Execute one instruction of stopped @t; refreshes t->regs.
 * Return: 0, -ESRCH if it exited, -errno. */
int hp_pt_step(struct hp_thread *t) __attribute__((warn_unused_result));
/* Resume and forget @t (re-delivering any pending signal). */
void hp_pt_release(struct hp_thread *t);
/* Where injected system calls run in a process. */
struct hp_sys_site {
	const struct hp_proc *proc; /* its maps: where a frame may go */
	hp_raddr_t insn; /* a "syscall" instruction, stepped through */
	/* A C library's "syscall; ret" and signal restorer (0: none). */
	hp_raddr_t sysret, restorer;
};
/*
 * Run one system call in stopped thread @t at @s: through its "syscall;
 * ret", returning to the restorer over a signal frame of the thread's
 * own state (a loader killed at any point lets it go on as it was), else
 * single-stepped through its "syscall"; then restore every register and
 * the signal mask (an interrupted system call of the thread restarts as
 * if nothing happened). Return: 0 with *@ret the raw result.
 */
int hp_pt_syscall(struct hp_thread *t, const struct hp_sys_site *s, long nr,
		  const long args[6], long *ret)
	__attribute__((warn_unused_result));
/*
 * Open a run of system calls in stopped @t: its registers and signal mask
 * are read once for every call of the run (each call still restores
 * them). Return: 0 or -errno.
 */
int hp_pt_inject_begin(struct hp_thread *t) __attribute__((warn_unused_result));
/* Close it. */
void hp_pt_inject_end(struct hp_thread *t);

/* How an injected call is bounded (hp_pt_call). */
struct hp_call_guard {
	uint64_t bound_us; /* then left to finish (or abandoned, said) */
	/* The C library's signal return (mov $15, %rax; syscall), which the
	 * call returns through: 0 if none (then it returns to address 0, and
	 * a loader killed inside it leaves it to fault there). */
	hp_raddr_t (*restorer)(const void *arg);
	const void *arg;
};

/*
 * Call function @fn(@args[0], @args[1]) in stopped @t while the other
 * threads of its process run, bounded by @g (see rt_call.c). The
 * caller picks a thread that cannot hold a lock @fn takes. Its result is
 * not known (the signal return's first instruction overwrites it).
 * Return: 0, -HP_E_INJECT, -ETIMEDOUT, -HP_E_BUSY (left inside, to finish
 * on its own: t->left_in_call), -ESRCH, -errno; a fault or a timeout is
 * reported.
 */
int hp_pt_call(struct hp_thread *t, hp_raddr_t fn, const long args[2],
	       const struct hp_call_guard *g)
	__attribute__((warn_unused_result));

/*
 * A thread's scheduling, raised to SCHED_FIFO for a short, bounded piece of
 * work and then restored (@tid 0: the calling thread). On a host whose CPUs
 * are saturated, often by the very process being patched, a thread of
 * normal priority waits milliseconds for each turn on a CPU.
 */
struct hp_prio {
	int policy;
	struct sched_param param;
	bool raised;
	int guard_slot; /* a target's thread: its entry in rt_guard.c's list */
};

/* What a thread is raised to (reset on fork: what it starts does not
 * inherit it). */
#define HP_PRIO_RAISED (SCHED_FIFO | SCHED_RESET_ON_FORK)

void hp_prio_raise(pid_t tid, struct hp_prio *pr);
void hp_prio_restore(pid_t tid, struct hp_prio *pr);
/* After a fork: this process's own policy is to be read again. */
void hp_prio_forget(void);

/*
 * rt_guard.c: a target's thread (@tid, its policy to restore in @pr)
 * listed, before it is raised, for the guard process that restores it if
 * this process ends first. Return: the entry, or -1: no guard, not to be
 * raised.
 */
int hp_guard_list(pid_t tid, const struct hp_prio *pr);
/* Its entry cleared, once it is restored (or gone). */
void hp_guard_unlist(int slot);

/* ---- rt_transition.c: stop the world ---- */
struct hp_world {
	pid_t pid;
	struct hp_thread *threads;
	size_t nr_threads;
	size_t cap_threads;
	struct hp_prio prio; /* the loader's, restored on resume */
	uint64_t stopped_at; /* CLOCK_MONOTONIC us at the first interrupt */
	uint64_t resumed_at; /* ... and when the last thread was let go */
	int status_fd;	     /* /proc/PID/status, opened before the window */
	int task_fd;  /* /proc/PID/task, when its link count counts threads */
	bool ip_only; /* no stack is read in the window (--allow-active) */
	/* Every register of each thread read as it stops, by its tracer
	 * (a revert's look for registers into the regions it keeps). */
	bool want_regs;
	bool leader_gone; /* exited (a zombie) while its threads run on */
	pid_t stuck_tid;  /* with -HP_E_BUSY from the stop: would not stop */
	int nr_cpus;	  /* the loader may run on, read before the window */
	long nr_runnable; /* tasks runnable on the host, likewise */
	uint64_t until;	  /* CLOCK_MONOTONIC us: no stop waits past it */
	/* Every stack as hp_world_check read it in this stop, for the
	 * checks after it (hp_world_drop_stacks: when a thread runs). */
	uint8_t *stacks;
	size_t *stack_lens;
	size_t stacks_total;
	/* The stop's one check of the stacks: none is kept after it. */
	bool stacks_once;
	/* Two tracers: the helper thread seized the threads marked
	 * by_helper, stops them and lets them go (rt_transition.c). */
	bool split;
	/* Its threads raised for the stop (hp_world_raise), to restore. */
	struct hp_raised *raised;
	size_t nr_raised;
};

/* A small world's threads raised to SCHED_FIFO as its stop begins, and
 * given their policy back as it ends (rt_guard.c). */
void hp_world_raise(struct hp_world *w);
void hp_world_lower(struct hp_world *w);
/* The guard made (a fork) well before the window of a world of
 * @nr_threads that will be raised: the pages a fork shares cost a fault
 * at their next write (a first stop's, in the window: 4 threads, +40
 * us). */
void hp_world_raise_early(long nr_threads);

/* The CPUs this process may run on and the tasks runnable on the host,
 * read at most every 100 ms (rt_task.c). */
void hp_host_load(int *nr_cpus, long *nr_runnable);
/* How long a stop of @w, from w->stopped_at, waits for its threads: more
 * on a loaded host, never past w->until (rt_transition.c). In us. */
uint64_t hp_world_stop_bound(const struct hp_world *w);
/* "state D, uninterruptible, in nfs_wait_bit_killable" of w->stuck_tid. */
void hp_world_stuck_state(const struct hp_world *w, char *buf, size_t size);

/* Every register of stopped @t, or its instruction and stack pointers
 * alone: read once per stop. Return: 0 or -errno. */
int hp_thread_need_regs(struct hp_thread *t)
	__attribute__((warn_unused_result));
int hp_thread_need_ip(struct hp_thread *t) __attribute__((warn_unused_result));

/* Before the window: raise our priority, seize (not stop) every thread;
 * no stop of this world will wait past @until (CLOCK_MONOTONIC us, 0: no
 * limit but its own). Return: 0 or -errno; on failure everything is
 * released. */
int hp_world_prepare(struct hp_world *w, pid_t pid, uint64_t until)
	__attribute__((warn_unused_result));
/* The same, letting the helper thread trace part of a large world: only
 * for a stop that asks no more of a thread than its instruction and stack
 * pointers, or its registers with w->want_regs set before the stop (no
 * step, no call). */
int hp_world_prepare_split(struct hp_world *w, pid_t pid, uint64_t until)
	__attribute__((warn_unused_result));
/* Stop every prepared thread, and any born since; w->stopped_at marks the
 * start of the window, w->resumed_at (set on release) its end.
 * Return: 0, -HP_E_GONE, -errno; on failure every thread is resumed. */
int hp_world_stop(struct hp_world *w) __attribute__((warn_unused_result));
void hp_world_resume(struct hp_world *w);
/* hp_world_resume in two halves: let every thread go (ending the window),
 * then free what the stop read of them. */
void hp_world_release(struct hp_world *w);
void hp_world_free(struct hp_world *w);

/* ---- rt_check.c: is it safe to switch? ---- */
/* A range whose code no thread may be executing, nor return into. */
struct hp_busy_range {
	hp_raddr_t start;
	hp_raddr_t end;
	const char *name;
	bool ip_only; /* only the instruction pointer matters (jump sites) */
	/* A jump site's bytes there now (HP_X86_JMP_REL32_SIZE), or NULL:
	 * a system call among them is neither stepped into nor restarted
	 * into the jump. */
	const uint8_t *bytes;
};

/*
 * Single-step every thread whose instruction pointer lies in one of the
 * (ip_only) @sites until it leaves them: a thread preempted on the first
 * bytes of a hot function need not make the whole attempt busy. A thread
 * stopped inside a system call is never stepped.
 * Return: 0, or -HP_E_BUSY with the thread and site that would not move.
 */
int hp_world_step_out(struct hp_world *w, const struct hp_busy_range *sites,
		      size_t nr_sites, pid_t *busy_tid,
		      const struct hp_busy_range **busy)
	__attribute__((warn_unused_result));

/* Threads still in old code, for the warning of --allow-active. */
#define HP_WHO_LISTED 16
enum hp_who_kind {
	HP_WHO_IN,	/* executing the function */
	HP_WHO_BELOW,	/* a return into it on the stack */
	HP_WHO_BLOCKED, /* that, and blocked in a system call */
};

struct hp_who {
	size_t n; /* threads counted; the first HP_WHO_LISTED kept */
	struct {
		pid_t tid;
		const char *func; /* a busy range's name */
		enum hp_who_kind kind;
	} e[HP_WHO_LISTED];
};

/* Count a thread (cheap: no formatting, fit for the stop). */
void hp_who_add(struct hp_who *who, pid_t tid, const char *func,
		enum hp_who_kind kind);
/*
 * Tell blocked threads from running ones among @who's threads below old
 * code from entry @first on (threads of process @pid), after the resume.
 * A thread the stop interrupted in a sleep restarts the system call only
 * once it is scheduled again, and reads as running until then: so each
 * is looked at every millisecond until it is blocked or @bound_us has
 * passed (a loaded host can take tens of milliseconds to run it). A thread
 * that really runs costs the whole bound: only --allow-active's warning
 * waits for it, after the pause.
 */
#define HP_WHO_SETTLE_US 100000
void hp_who_settle(struct hp_who *who, size_t first, pid_t pid,
		   uint64_t bound_us);
/* "tid 12 in 'f', tid 13 below 'g' (blocked in a system call), ..." */
void hp_who_format(const struct hp_who *who, char *buf, size_t size);
/*
 * After hp_world_stop: re-read @proc's memory map if a thread's stack lies
 * in none of the mappings read before (a thread born since, a main stack
 * grown), so every stack is checked. Return: 0 or -errno.
 */
int hp_world_fresh_maps(const struct hp_world *w, struct hp_proc *proc)
	__attribute__((warn_unused_result));
/* Add each stopped thread whose instruction pointer lies in @ranges. */
void hp_world_who_ips(struct hp_world *w, const struct hp_busy_range *ranges,
		      size_t nr_ranges, struct hp_who *who);
/*
 * After hp_world_release (outside the window): add each thread whose
 * instruction pointer was in none of @ranges but whose stack, read from
 * where it stood at the stop, holds a return into one: running below old
 * code, or blocked in a system call there. A thread gone since is skipped.
 */
void hp_world_find_below(const struct hp_world *w, const struct hp_proc *proc,
			 const struct hp_busy_range *ranges, size_t nr_ranges,
			 struct hp_who *who);

/* ---- rt_helper.c: the stop's second CPU ---- */
/* Start the helper thread if this process has none. Return: 0 or -errno. */
int hp_helper_ready(void);
/* Wake it at our policy and priority: a job follows soon (it waits
 * spinning, a bounded time). */
void hp_helper_wake(void);
/* Run @fn(@arg) on it. Return: 0 (hp_helper_join waits for the end), or
 * -errno: no helper, run it yourself. */
int hp_helper_start(void (*fn)(void *), void *arg);
void hp_helper_join(void);
/* The same, and it stays awake for the next job. */
void hp_helper_join_awake(void);
/* End it (a thread it traces is let go by the kernel); the next use
 * starts another. */
void hp_helper_retire(void);
/* No job after all: let a woken helper sleep again. */
void hp_helper_rest(void);
/* Before the window: whether its end can be waited for to the moment its
 * tracees are let go (a thread pidfd). Return: 0 or -errno. */
int hp_helper_end_ready(void);
/* Tests: as on a kernel without thread pidfds (the helper detaches). */
extern bool hp_helper_no_end;
/* After that: end it; the kernel lets go of what it traces. */
void hp_helper_end(void);
/* Wait until it has: every thread it traced let go. */
void hp_helper_end_wait(void);

/* Before the window: make room, pages touched, for the stacks of about
 * @nr_threads threads, kept for later stops of this process. */
void hp_world_reserve_stacks(size_t nr_threads);
/* Forget the stacks read in this stop (a thread ran, or the stop ends). */
void hp_world_drop_stacks(struct hp_world *w);

/*
 * Does any general register of a stopped thread point into @r (a callback
 * held only in a register, say)? Reads every register; a thread whose
 * registers cannot be read counts as pointing.
 */
bool hp_world_regs_point(struct hp_world *w, const struct hp_busy_range *r);

/*
 * Check every stopped thread: no IP inside any range, no return address
 * into a non-ip_only range on its stack. Return: 0, or -HP_E_BUSY with
 * *@busy_tid and *@busy the first conflict.
 */
int hp_world_check(struct hp_world *w, const struct hp_proc *proc,
		   const struct hp_busy_range *ranges, size_t nr_ranges,
		   pid_t *busy_tid, const struct hp_busy_range **busy)
	__attribute__((warn_unused_result));

/*
 * The ranges a stack word can fall in (not ip_only): sorted by start, each
 * with the largest end up to it, so a word is looked up in O(log n), and
 * the span of them all, [lo, lo + span), which rules nearly every word
 * out with one subtraction and one compare.
 */
struct range_entry {
	uint64_t start, end, max_end;
	size_t idx; /* in the caller's array: the first match is reported */
};

struct range_index {
	const struct hp_busy_range *r;
	struct range_entry *e;
	size_t nr;
	uint64_t lo, span;
	size_t nr_r; /* every range of r, jump sites too */
	/* The process's signal restorers: a word equal to one stops the
	 * scan, to follow the signal frame it starts (rt_sigframe.c). */
	uint64_t restorers[HP_RESTORERS_MAX];
	size_t nr_restorers;
};

/* Index @nr ranges @r in @x (free x->e after). Return: 0 or -ENOMEM. */
int hp_index_ranges(const struct hp_busy_range *r, size_t nr,
		    struct range_index *x) __attribute__((warn_unused_result));
/*
 * The first return into a range of @x among the @len bytes at @p; or,
 * with @frame_at, NULL once a word equal to a restorer of @x comes first:
 * *@frame_at is its offset (SIZE_MAX: none, the scan is complete).
 */
const struct hp_busy_range *hp_scan_stack(const uint8_t *p, size_t len,
					  const struct range_index *x,
					  size_t *frame_at);

/*
 * The addresses of the signal restorer ("mov $15,%rax; syscall") in the
 * executable mappings of @proc's C library (or, with none mapped, of its
 * executable: a static program), into proc->restorers; the offsets found
 * are kept per mapped file (device, inode, offset) for this run, so each
 * file is searched once. Reads the process's memory: call before a stop.
 */
void hp_proc_find_restorers(struct hp_proc *proc);
/*
 * Where an injected system call returns on its own (hp_pt_syscall): the
 * first "syscall; ret" of @proc's C library into *@sysret, and its
 * signal restorer into *@restorer; each file searched once a run.
 * Return: 0, -ENOENT (none).
 */
int hp_proc_find_sysret(const struct hp_proc *proc, hp_raddr_t *sysret,
			hp_raddr_t *restorer)
	__attribute__((warn_unused_result));

/* A signal frame, read from the stack: the interrupted thread's stack and
 * instruction pointers. */
struct hp_sigframe {
	uint64_t rsp, rip;
};

/*
 * Read the frame whose restorer word is at @addr (HP_X86_SIGFRAME_SIZE
 * bytes at @p). Return: false if it cannot be the kernel's (its FPU state
 * not just above it, aligned; not a 64-bit code segment's).
 */
bool hp_sigframe_read(const uint8_t *p, uint64_t addr, struct hp_sigframe *f);

/*
 * The first return into a range of @x on a thread's stack (the @len bytes
 * at @p, read from its stack pointer @sp; its instruction pointer @ip), or
 * on a stack a signal frame there names, followed within bounds
 * (rt_sigframe.c).
 */
const struct hp_busy_range *hp_scan_thread(const struct hp_proc *proc,
					   const struct range_index *x,
					   const uint8_t *p, size_t len,
					   hp_raddr_t sp, hp_raddr_t ip);

/* rt_check.c, for it: the range @ip is in (a jump site's end after a
 * system call too), or NULL; the mapping of stack pointer @sp, looked
 * for next to *@near first; the bytes of its stack to read, from @sp to
 * its mapping's end, at most HP_STACK_SCAN_MAX. */
#define HP_STACK_SCAN_MAX (8u << 20)
const struct hp_busy_range *hp_in_ranges(const struct hp_busy_range *r,
					 size_t nr, uint64_t ip);
const struct hp_map *hp_stack_map(const struct hp_proc *proc, uint64_t sp,
				  size_t *near);
size_t hp_stack_span(const struct hp_proc *proc, uint64_t sp, size_t *near);
/*
 * hp_stack_room() - may hpatch write at [@low, @sp) of @proc, below a
 * thread's stack pointer @sp (a signal frame, a call's stack)? Only on a
 * stack whose end is known, with that room in it: the main thread's
 * [stack], or a thread stack as the C libraries make them (anonymous,
 * read-write, a no-access guard of at most 64 KiB right below it).
 * Elsewhere (a goroutine's stack in Go's heap, a signal stack in .bss or
 * the heap, a coroutine's) what lies below @sp is not known to be free.
 */
bool hp_stack_room(const struct hp_proc *proc, uint64_t sp, uint64_t low);

/* Tests: scan stacks with the plain loop even where AVX2 runs. */
extern bool hp_stack_scan_plain;

/* ---- rt_reloc.c ---- */
struct hp_reloc_ctx {
	uint8_t *image; /* local copy of the image */
	uint32_t image_size;
	hp_raddr_t bases[HP_RB_NR_BASES]; /* HP_RB_SYMBOL unused */
	const hp_raddr_t *sym_addrs;	  /* per hp_module.syms */
	uint32_t nr_syms;
};

/*
 * Apply every relocation of @m into ctx->image. Errors name the relocation.
 * Return: 0, -HP_E_RANGE (a target beyond reach), -HP_E_BADFORMAT.
 */
int hp_reloc_apply(const struct hp_reloc_ctx *ctx, const struct hp_module *m)
	__attribute__((warn_unused_result));

/* ---- rt_patch.c: the in-target record ---- */
#define HP_RT_MAGIC "HPATCHRT"
#define HP_RT_VERSION 1
/* A region whose unwind table may be registered: an hpatch that predates
 * them would unmap it without deregistering, so it must not see it. */
#define HP_RT_VERSION_UNWIND 2
#define HP_RT_NAME_MAX 64 /* patch id; function names keep 56 */

/*
 * First bytes of every patch region: enough for any later hpatch to list
 * and revert the patch without the patch file. Little endian, fixed size.
 */
struct hp_rt_header {
	uint8_t magic[8];
	uint32_t version;
	uint32_t header_size; /* bytes up to the image, page aligned */
	uint64_t region_size;
	uint64_t image_addr;
	uint64_t module_bias;
	uint64_t sequence;
	uint64_t applied_at; /* unix seconds */
	uint8_t build_id[HP_BUILD_ID_MAX];
	uint32_t build_id_len;
	uint32_t nr_funcs;
	uint8_t key_id[8];
	char patch_id[HP_RT_NAME_MAX];
	char module[120];
	uint32_t flags; /* enum hp_rt_header_flags */
	uint32_t order; /* 1 + the highest order in the process when applied */
};

/*
 * REDIRECT: old_addr jumps to new_addr (or, with old_addr 0, a new function
 * living at new_addr). RESTORE: a replacing patch puts back the original
 * bytes of a function an earlier patch redirected and it does not carry;
 * "jump" then holds those original bytes. Reverting writes "orig" back
 * either way, which is exactly the state before this patch.
 */
enum hp_rt_rec_kind {
	HP_RT_REC_REDIRECT = 0,
	HP_RT_REC_RESTORE = 1,
};

enum hp_rt_header_flags {
	/*
	 * Reverted, but a thread's stack may still point into the region:
	 * kept mapped until a later hpatch finds it unreferenced.
	 */
	HP_RT_RETIRED = 1 << 0,
	/*
	 * Replaced by a newer patch (hpatch's default, cumulative): kept
	 * mapped so that reverting the newer one brings this one back.
	 */
	HP_RT_SUPERSEDED = 1 << 1,
	/* A struct hp_rt_unwind follows the records (version 2). */
	HP_RT_UNWIND = 1 << 2,
};
static_assert(sizeof(struct hp_rt_header) == 304, "in-target header size");

struct hp_rt_func {
	uint64_t old_addr; /* absolute; 0 for a new function (no jump) */
	uint64_t new_addr; /* absolute */
	uint32_t new_size;
	uint32_t kind;	 /* enum hp_rt_rec_kind */
	uint8_t orig[8]; /* bytes displaced: restored on revert (5 used) */
	uint8_t jump[8]; /* bytes written (5 used) */
	char name[56];
};
static_assert(sizeof(struct hp_rt_func) == 96, "in-target func size");

/*
 * The patch's unwind table and whether it is registered with the target's
 * unwinder (docs/UNWIND.md): it must be deregistered, with the function
 * named here, before the region is unmapped.
 */
struct hp_rt_unwind {
	uint64_t eh_addr;    /* the .eh_frame copy in the image */
	uint64_t obj_addr;   /* the unwinder's object, in the region's bss */
	uint64_t deregister; /* __deregister_frame_info; 0: not registered */
	uint64_t reserved;
};
static_assert(sizeof(struct hp_rt_unwind) == 32, "in-target unwind size");

/* A patch region found in a process. */
struct hp_rt_region {
	hp_raddr_t addr;
	struct hp_rt_header hdr;
	struct hp_rt_func *funcs;
	struct hp_rt_unwind unwind; /* zero unless hdr.flags & HP_RT_UNWIND */
	bool *in_place; /* per record: its bytes are what it wrote */
	uint32_t nr_in_place;
	uint32_t nr_invalid; /* records hpatch would not write: forged */
	bool active;	     /* every jump is in place, none forged */
};

/* Find the patch regions of @proc. *@out is malloc'd; free with
 * hp_rt_regions_free(). */
int hp_rt_find_regions(const struct hp_proc *proc, struct hp_rt_region **out,
		       size_t *nr) __attribute__((warn_unused_result));
void hp_rt_regions_free(struct hp_rt_region *r, size_t nr);
/*
 * Does every function of @m (loaded at @bias) jump into @r's image now?
 * Read from the code itself, never from a record the target could write:
 * only this says a patch is applied.
 */
bool hp_rt_region_redirects(const struct hp_proc *proc,
			    const struct hp_rt_region *r,
			    const struct hp_module *m, hp_raddr_t bias);

/* ---- rt_state.c: anti-rollback state of the host ---- */
/* Highest sequence applied to @build_id_hex on this host (0: none), as
 * recorded under @dir (NULL: HP_STATE_DIR_DEFAULT).
 * Return: 0, or -HP_E_INSECURE / -errno (reported) when the state is
 * writable by others or unreadable: then it cannot be trusted. */
int hp_rt_state_sequence(const char *dir, const char *build_id_hex,
			 uint64_t *seq) __attribute__((warn_unused_result));
/* Raise it to @sequence. Return: 0 or -errno (reported). */
int hp_rt_state_record(const char *dir, const char *build_id_hex,
		       uint64_t sequence) __attribute__((warn_unused_result));

/* ---- rt_seccomp.c ---- */
/*
 * Would stopped thread @t survive system call @nr(@args) run from @ip?
 * Runs its seccomp filters on it (its mode read once a stop). Return: 0, or -HP_E_SECCOMP reported
 * naming the thread, the call and what the filter would do.
 */
int hp_seccomp_check(struct hp_thread *t, hp_raddr_t ip, long nr,
		     const long args[6]) __attribute__((warn_unused_result));
/* Is thread @tid in seccomp strict mode (any call but read, write, exit
 * and sigreturn kills it, whatever the other threads may do)? */
bool hp_seccomp_strict(pid_t tid);

/* ---- rt_lock.c: one patcher per process ---- */
struct hp_rt_lock {
	int fd;		/* the lock file (borrowed), -1: none held */
	off_t at;	/* the byte locked in it */
	bool live;	/* @pid (its leader) was neither zombie nor dead when
		    * its start time was read: hp_proc_check_alone_live */
	uint64_t start; /* that start time (ticks since boot), 0: gone */
};

/*
 * Lock process @pid against any other hpatch (or hpatchd) for an apply or
 * revert, waiting up to @timeout_ms for a holder to finish. Keyed by pid
 * and start time in @state_dir (NULL: HP_STATE_DIR_DEFAULT)/locks/targets.
 * A process already gone is not locked (0: its apply says so).
 * Return: 0, -HP_E_BUSY (reported, naming the holder), -HP_E_INSECURE,
 * -errno (reported).
 */
int hp_rt_lock(const char *state_dir, pid_t pid, long timeout_ms,
	       struct hp_rt_lock *lk) __attribute__((warn_unused_result));
void hp_rt_unlock(struct hp_rt_lock *lk);

/* Fault injection for tests (hp_rt_set_faults): fails @step if told to.
 * Return: 0 or -HP_E_FAULT (reported). */
int hp_rt_fault(const char *step) __attribute__((warn_unused_result));

/*
 * Why the operation under way is busy where no thread and function tell
 * (a process sharing the memory, no thread fit for a call): said to the
 * apply's result (hp_rt_result.busy_why), for a caller that shows it
 * elsewhere than in the log (hpatchd's list). Return: -HP_E_BUSY.
 */
int hp_rt_busy_why(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
