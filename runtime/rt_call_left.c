/*
 * The signal frame an injected call returns through (hp_pt_call): the
 * thread's own registers, mask and FPU state above the call's frame,
 * which the C library's signal return takes back as the call returns,
 * with hpatch or without it.
 */
#include "runtime/rt_inject.h"
#include "common/hp_arch_x86_64.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <cpuid.h>
#include <elf.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>

/*
 * The kernel's frame for rt_sigreturn on x86-64 (struct ucontext with its
 * struct sigcontext), from the word after the return address.
 */
struct sigreturn_frame {
	uint64_t uc_flags, uc_link;
	uint64_t ss_sp;
	int32_t ss_flags, ss_pad;
	uint64_t ss_size;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15, rdi, rsi, rbp, rbx, rdx,
		rax, rcx, rsp, rip, eflags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2, fpstate;
	uint64_t reserved[8];
	uint64_t sigmask;
};
_Static_assert(sizeof(struct sigreturn_frame) == 304, "kernel ucontext");

/* The kernel's struct _fpx_sw_bytes, in fxsave's sw_reserved. */
struct fx_sw_bytes {
	uint32_t magic1, extended_size;
	uint64_t xfeatures;
	uint32_t xstate_size, padding[7];
};
_Static_assert(sizeof(struct fx_sw_bytes) ==
		       HP_X86_FXSAVE_SIZE - HP_X86_FX_SW_OFF,
	       "kernel _fpx_sw_bytes");

/* CPUID leaf 0xd's size, offset and flags of XSAVE component @i, each
 * read once (in a virtual machine each CPUID exits to the hypervisor:
 * ~2 us, ~20 us for the components of one area, an injected system
 * call's). */
static void xcomp(unsigned i, uint32_t *size, uint32_t *off, uint32_t *flags)
{
	static uint64_t read;
	static uint32_t v[64][3];

	if (!(read >> i & 1)) {
		unsigned a = 0, b = 0, c = 0, d = 0;

		__cpuid_count(0xd, i, a, b, c, d);
		v[i][0] = a;
		v[i][1] = b;
		v[i][2] = c;
		read |= 1ULL << i;
	}
	*size = v[i][0];
	*off = v[i][1];
	*flags = v[i][2];
}

/*
 * The end of the XSAVE area (standard format) that holds the components
 * of @xcr0 that are in use (@in_use) or always there: a component enabled
 * on first use (XFD: AMX's tiles) and unused is in no frame the kernel
 * would take back for the thread (over its fpstate's user_size), and is
 * left out of *@features, so reset, as it is. At least the header's end.
 */
static uint32_t xstate_end(uint64_t xcr0, uint64_t in_use, uint64_t *features)
{
	uint32_t end = HP_X86_FXSAVE_SIZE + HP_X86_XSAVE_HDR_SIZE;

	*features = xcr0;
	for (unsigned i = 2; i < 64; i++) {
		uint32_t size = 0, off = 0, flags = 0;

		if (!(xcr0 >> i & 1))
			continue;
		xcomp(i, &size, &off, &flags);
		if ((flags & 4) && !(in_use >> i & 1)) {
			*features &= ~(1ULL << i);
			continue;
		}
		if (off + size > end)
			end = off + size;
	}
	return end;
}

/*
 * @t's FPU and extended state into @fp, as rt_sigreturn takes it back:
 * ptrace's XSAVE area, its sw_reserved made a frame's and magic2 after
 * it. Without XSAVE (or an area past @fp's room), fxsave's, which
 * restores the x87 and SSE state only. Return: 0, -errno.
 */
int hp_pt_fpu_state(const struct hp_thread *t, struct hp_call_fpu *fp)
{
	struct iovec io = { fp->u.b, HP_X86_XSTATE_MAX };
	const uint32_t magic2 = HP_X86_FP_XSTATE_MAGIC2;
	struct fx_sw_bytes sw = { .magic1 = HP_X86_FP_XSTATE_MAGIC1 };
	uint64_t xcr0 = 0, bv = 0;

	fp->regset_len = 0;
	if (ptrace(PTRACE_GETREGSET, t->tid, (void *)NT_X86_XSTATE, &io) < 0 ||
	    io.iov_len < HP_X86_FXSAVE_SIZE + HP_X86_XSAVE_HDR_SIZE) {
		if (ptrace(PTRACE_GETFPREGS, t->tid, 0, fp->u.b) < 0)
			return -errno;
		memset(fp->u.b + HP_X86_FX_SW_OFF, 0, sizeof(sw));
		fp->len = HP_X86_FXSAVE_SIZE;
		return 0;
	}
	fp->regset_len = io.iov_len;
	memcpy(&xcr0, fp->u.b + HP_X86_FX_SW_OFF, sizeof(xcr0));
	memcpy(&bv, fp->u.b + HP_X86_FXSAVE_SIZE, sizeof(bv));
	xcr0 |= 3; /* x87, SSE */
	/* PKRU's value is there even with its bit clear (kept apart from
	 * the XSAVE buffer since Linux 5.14): loaded, not reset to 0. */
	bv |= xcr0 & (1ULL << HP_X86_XFEATURE_PKRU);
	sw.xstate_size = xstate_end(xcr0, bv, &sw.xfeatures);
	sw.extended_size = sw.xstate_size + sizeof(magic2);
	if (sw.xstate_size > io.iov_len) {
		memset(fp->u.b + HP_X86_FX_SW_OFF, 0, sizeof(sw));
		fp->len = HP_X86_FXSAVE_SIZE;
		return 0;
	}
	memcpy(fp->u.b + HP_X86_FX_SW_OFF, &sw, sizeof(sw));
	memcpy(fp->u.b + HP_X86_FXSAVE_SIZE, &bv, sizeof(bv));
	memcpy(fp->u.b + sw.xstate_size, &magic2, sizeof(magic2));
	fp->len = sw.extended_size;
	return 0;
}

int hp_pt_fpu_restore(const struct hp_thread *t, const struct hp_call_fpu *fp)
{
	/* (The kernel takes the area's software bytes and magic2 for what
	 * they are, ignored; a component trimmed from the frame is one in
	 * its initial state, its bit clear in the header.) */
	struct iovec io = { (void *)(uintptr_t)fp->u.b, fp->regset_len };

	if (fp->regset_len)
		return ptrace(PTRACE_SETREGSET, t->tid, (void *)NT_X86_XSTATE,
			      &io) < 0
			       ? -errno
			       : 0;
	return ptrace(PTRACE_SETFPREGS, t->tid, 0, fp->u.b) < 0 ? -errno : 0;
}

void hp_pt_call_frame_at(struct hp_call_frame *f, uint64_t rsp, size_t fp_len)
{
	f->fx = (rsp - 128 - fp_len) & ~(HP_X86_FPSTATE_ALIGN - 1ULL);
	f->uc = (f->fx - sizeof(struct sigreturn_frame)) & ~15ULL;
	f->slot = f->uc - 8;
}

/* Write @len bytes of @buf (a multiple of 8) at @addr of stopped @t,
 * word by word. */
static int poke_words(const struct hp_thread *t, hp_raddr_t addr,
		      const void *buf, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t w;

		memcpy(&w, (const uint8_t *)buf + i, 8);
		if (ptrace(PTRACE_POKEDATA, t->tid, (void *)(addr + i),
			   (void *)w) < 0)
			return -errno;
	}
	return 0;
}

/*
 * Write the @nr pieces @local to @remote of stopped @t: one
 * process_vm_writev (an XSAVE area is 2.7 KiB here, 340 words to poke:
 * an injected system call makes one a call), else, refused or short
 * (a stack page not yet faulted in is written by it too; seccomp or an
 * LSM may refuse it), word by word. Return: 0 or -errno.
 */
static int write_pieces(const struct hp_thread *t, const struct iovec *local,
			const struct iovec *remote, unsigned long nr)
{
	size_t len = 0;
	int rc = 0;

	for (unsigned long i = 0; i < nr; i++)
		len += local[i].iov_len;
	if (process_vm_writev(t->tid, local, nr, remote, nr, 0) == (ssize_t)len)
		return 0;
	for (unsigned long i = 0; i < nr && !rc; i++)
		rc = poke_words(t, (hp_raddr_t)(uintptr_t)remote[i].iov_base,
				local[i].iov_base, local[i].iov_len);
	return rc;
}

/*
 * The system call @saved (a thread stopped inside one) makes again on its
 * way on, as the kernel restarts it after a stop: its own number, or
 * restart_syscall for one that left a restart block (a sleep); -1 when
 * none is due (it returned, or was interrupted for good).
 */
long long hp_pt_restart_nr(const struct user_regs_struct *saved)
{
	const long long err = (long long)saved->rax;

	if ((long long)saved->orig_rax < 0 || err < -516 || err > -512 ||
	    err == -515)
		return -1;
	return err == -516 ? SYS_restart_syscall : (long long)saved->orig_rax;
}

void hp_pt_own_regs(const struct user_regs_struct *saved,
		    struct user_regs_struct *regs)
{
	*regs = *saved;
	regs->orig_rax = (unsigned long long)hp_pt_restart_nr(saved);
}

/*
 * Make the return of the call set in stopped @t the C library's signal
 * return @restorer, through a frame of the thread's own registers
 * (@saved: a system call it was interrupted in restarts as after a
 * signal, a sleep's with EINTR), signal mask @mask and FPU and extended
 * state @fp (hp_pt_fpu_state), at @f: written before the call runs, so
 * that the call, however it ends (hpatch gone, or gone on without it),
 * gives the thread back its own state. Return: 0 or -errno.
 */
int hp_pt_sigreturn_frame(struct hp_thread *t, const struct hp_call_frame *f,
			  const struct user_regs_struct *saved, uint64_t mask,
			  const struct hp_call_fpu *fp, hp_raddr_t restorer)
{
	struct sigreturn_frame sf = {
		.ss_flags = -1, /* invalid: its alternate stack unchanged */
		.r8 = saved->r8,
		.r9 = saved->r9,
		.r10 = saved->r10,
		.r11 = saved->r11,
		.r12 = saved->r12,
		.r13 = saved->r13,
		.r14 = saved->r14,
		.r15 = saved->r15,
		.rdi = saved->rdi,
		.rsi = saved->rsi,
		.rbp = saved->rbp,
		.rbx = saved->rbx,
		.rdx = saved->rdx,
		.rax = saved->rax,
		.rcx = saved->rcx,
		.rsp = saved->rsp,
		.rip = saved->rip,
		.eflags = saved->eflags,
		.cs = (uint16_t)saved->cs,
		.ss = (uint16_t)saved->ss,
		.fpstate = f->fx,
		.sigmask = mask,
	};
	const uint64_t ret = restorer;
	const struct iovec local[] = {
		{ (void *)(uintptr_t)fp->u.b, (fp->len + 7) & ~(size_t)7 },
		{ &sf, sizeof(sf) },
		{ (void *)&ret, sizeof(ret) },
	};
	const struct iovec remote[] = {
		{ (void *)(uintptr_t)f->fx, local[0].iov_len },
		{ (void *)(uintptr_t)f->uc, sizeof(sf) },
		{ (void *)(uintptr_t)f->slot, sizeof(ret) },
	};
	const long long nr = hp_pt_restart_nr(saved);

	/* The kernel restarts an interrupted call only on its way out of
	 * the stop; the frame's return does it. */
	if (nr >= 0) {
		sf.rax = (uint64_t)nr;
		sf.rip -= 2;
	}
	return write_pieces(t, local, remote, HP_ARRAY_SIZE(local));
}
