/*
 * Our instructions in a stopped thread, one file each: the thread's state
 * set aside and put back, and injected system calls (rt_inject.c), made
 * at the C library's "syscall; ret" (rt_sysret.c), else single-stepped
 * (rt_step.c), a call of a target's function (rt_call.c) and the signal
 * frame both return through (rt_call_left.c). Shared by them alone.
 */
#ifndef HP_RT_INJECT_H
#define HP_RT_INJECT_H

#include "runtime/runtime_int.h"
#include "common/hp_arch_x86_64.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A system-call stop (PTRACE_O_TRACESYSGOOD): what PTRACE_SYSCALL stops
 * an injected call or system call at, a signal return's rt_sigreturn
 * among them. */
#define HP_SYSCALL_STOP (SIGTRAP | 0x80)

/* ---- rt_step.c: one single step ---- */
/* Until @t has a stop to report (not waited for), or @deadline. */
void hp_pt_until_reported(const struct hp_thread *t, uint64_t deadline);
int hp_pt_call_stopped(struct hp_thread *t, int status,
		       struct user_regs_struct *regs, int *sig);
/* A step or an injected call ends within microseconds, or sleeps in the
 * kernel (a lock, a hung file system) for as long as its bound lets it.
 * One not back after this is looked at first: in a frozen cgroup (cgroup
 * v2's freezer lets a thread stop for its tracer, but not run), it runs
 * nothing until thawed. */
#define HP_STEP_LOOK_US 20000
/* -HP_E_BUSY, said: @t's cgroup is frozen. */
int hp_pt_frozen_busy(const struct hp_thread *t);
/* @t, resumed for a step or system call and found frozen: interrupted
 * and waited for within the bound of a thread's stop that the operation
 * set (hp_pt_stop_max_us: its --timeout, if shorter; the 10 ms of
 * hpatchd's slices). Return: 0 with *@status its stop, -ETIMEDOUT,
 * -ESRCH, -errno. */
int hp_pt_frozen_wait(struct hp_thread *t, int *status);
int hp_pt_step_once(struct hp_thread *t, struct user_regs_struct *regs,
		    int *sig);
/* For tests: a step or system call past its bound (rt_step.c). */
int hp_pt_bound_fault(struct hp_thread *t, int first, int then);

/* ---- rt_inject.c: the thread's state around our instructions ---- */
int hp_pt_owed(struct hp_thread *t, const struct user_regs_struct *regs,
	       uint64_t mask, const char *what, uint64_t since);
/* The same for a system call that returns through a signal frame of the
 * thread's own state (rt_sysret.c): it needs no restart of the process. */
int hp_pt_owed_framed(struct hp_thread *t, const struct user_regs_struct *regs,
		      uint64_t mask, uint64_t since);
int hp_pt_save_thread(struct hp_thread *t, struct user_regs_struct *saved,
		      uint64_t *mask);
int hp_pt_restore_thread(struct hp_thread *t,
			 const struct user_regs_struct *saved, uint64_t *mask);
int hp_pt_park(struct hp_thread *t);
void hp_pt_inject_regs(struct user_regs_struct *regs,
		       const struct user_regs_struct *saved, hp_raddr_t ip,
		       unsigned long long rax);
/* The same for system call @nr(@args) at @ip. */
void hp_pt_syscall_regs(struct user_regs_struct *regs,
			const struct user_regs_struct *saved, hp_raddr_t ip,
			long nr, const long args[6]);

/* ---- rt_sysret.c: a system call that returns on its own ---- */
/*
 * System call @nr(@args) in stopped @t (its state saved: t->inj_regs,
 * t->inj_mask; every signal blocked) at @s's "syscall; ret", returning
 * to @s's restorer over a signal frame of the thread's own state: a
 * loader killed at any point lets it go on as it was. Run under
 * PTRACE_SYSCALL to its exit's stop, where its result is read and the
 * thread's state put back. Return: 0 (*@ret its raw result), 1 (no frame
 * could be written: nothing done, step it instead), -HP_E_BUSY (owed:
 * hp_pt_owed_framed; or frozen), -HP_E_INJECT, -ESRCH, -errno; but for
 * -ESRCH and owed, the thread's state is back and it is parked.
 */
int hp_pt_sysret(struct hp_thread *t, const struct hp_sys_site *s, long nr,
		 const long args[6], long *ret);

/* ---- rt_call_left.c: the signal frame a call returns through ---- */
/* A thread's FPU and extended state as a signal frame holds it. */
struct hp_call_fpu {
	size_t len; /* bytes to write: the area, then magic2 if XSAVE's */
	/* What PTRACE_GETREGSET NT_X86_XSTATE gave, its whole length (the
	 * only one SETREGSET takes); 0: fxsave's area (PTRACE_SETFPREGS). */
	size_t regset_len;
	union {
		uint8_t b[HP_X86_XSTATE_MAX + 8];
		uint64_t align;
	} u;
};

/* Where a call's frame lies on the thread's stack, below its red zone:
 * its return address at @slot, a sigreturn frame after it, the FPU state
 * (@fp_len bytes, 64-aligned for XRSTOR) above that. */
struct hp_call_frame {
	hp_raddr_t slot, uc, fx;
};

int hp_pt_fpu_state(const struct hp_thread *t, struct hp_call_fpu *fp);
/* Give stopped @t back the FPU and extended state @fp read of it (the
 * frame's bytes in it are ignored there). Return: 0, -errno. */
int hp_pt_fpu_restore(const struct hp_thread *t, const struct hp_call_fpu *fp);
void hp_pt_call_frame_at(struct hp_call_frame *f, uint64_t rsp, size_t fp_len);
long long hp_pt_restart_nr(const struct user_regs_struct *saved);
/* The registers a thread stopped in an injected call or system call goes
 * on with: its own (@saved), orig_rax its restart (hp_pt_restart_nr). */
void hp_pt_own_regs(const struct user_regs_struct *saved,
		    struct user_regs_struct *regs);
int hp_pt_sigreturn_frame(struct hp_thread *t, const struct hp_call_frame *f,
			  const struct user_regs_struct *saved, uint64_t mask,
			  const struct hp_call_fpu *fp, hp_raddr_t restorer);

#endif
