/*
 * x86-64 facts shared by the differ, the packer and the runtime: the
 * instructions we write (the 5-byte jump, the GOT veneer), the ones we
 * look for (system calls), relocation field widths, and the address-space
 * limits. Written once here: a second copy would drift.
 */
#ifndef HP_ARCH_X86_64_H
#define HP_ARCH_X86_64_H

#include <stdint.h>

#define HP_X86_PAGE_SIZE 4096ULL
/* User space ends below this on 4-level paging (mmap never goes higher). */
#define HP_X86_USER_TOP 0x7ffffffff000ULL
/* rel32 reach: a PC-relative target must lie within +-2 GiB. */
#define HP_X86_REL32_REACH 0x7fffffffLL

/* Relocation fields: a rel32 (its addend is -4 from the next
 * instruction when it ends one), an absolute 32 or 64 bits. */
#define HP_X86_REL32_SIZE 4
#define HP_X86_ABS32_SIZE 4
#define HP_X86_ABS64_SIZE 8

/* jmp rel32: what redirects an old function to its new code. */
#define HP_X86_JMP_REL32 0xe9
#define HP_X86_JMP_REL32_SIZE (1 + HP_X86_REL32_SIZE)
/* call rel32, and the fillers: int3 (never run: traps) and nop. */
#define HP_X86_CALL_REL32 0xe8
#define HP_X86_INT3 0xcc
#define HP_X86_NOP 0x90

/*
 * The veneer through which patch code calls another library: jmp
 * *rel32(%rip) reading a GOT slot, padded with int3 to 8 bytes. The rel32
 * is at HP_X86_VENEER_REL32_OFF and ends the instruction.
 */
#define HP_X86_VENEER_SIZE 8
#define HP_X86_VENEER_REL32_OFF 2
#define HP_X86_VENEER_BYTES                                      \
	{                                                        \
		0xff, 0x25, 0, 0, 0, 0, HP_X86_INT3, HP_X86_INT3 \
	}

/* System-call instructions: syscall (0f 05), sysenter (0f 34), int 0x80
 * (cd 80). */
#define HP_X86_SYSCALL_0 0x0f
#define HP_X86_SYSCALL_1 0x05
#define HP_X86_SYSENTER_1 0x34
#define HP_X86_INT 0xcd
#define HP_X86_INT_LINUX 0x80
#define HP_X86_SYSCALL_SIZE 2
#define HP_X86_RET 0xc3 /* near return */

/* Encode "jmp rel32" at @from to @to. Return: 0, or -1 if out of reach. */
static inline int hp_x86_encode_jmp(uint8_t out[HP_X86_JMP_REL32_SIZE],
				    uint64_t from, uint64_t to)
{
	const int64_t rel = (int64_t)(to - (from + HP_X86_JMP_REL32_SIZE));

	if (rel > HP_X86_REL32_REACH || rel < -HP_X86_REL32_REACH - 1)
		return -1;
	out[0] = HP_X86_JMP_REL32;
	for (int i = 0; i < 4; i++)
		out[1 + i] = (uint8_t)((uint64_t)rel >> (8 * i));
	return 0;
}

/*
 * Does a system-call instruction start at @b[0], given @n readable bytes?
 * With one byte only, one that may start there counts.
 */
static inline int hp_x86_is_syscall(const uint8_t *b, uint64_t n)
{
	if (n == 1)
		return b[0] == HP_X86_SYSCALL_0 || b[0] == HP_X86_INT;
	return (b[0] == HP_X86_SYSCALL_0 &&
		(b[1] == HP_X86_SYSCALL_1 || b[1] == HP_X86_SYSENTER_1)) ||
	       (b[0] == HP_X86_INT && b[1] == HP_X86_INT_LINUX);
}

/*
 * The frame the kernel pushes for a signal handler (struct rt_sigframe):
 * the return address of the handler, sa_restorer (libc's __restore_rt:
 * "mov $15,%rax; syscall", rt_sigreturn), then struct ucontext, whose
 * uc_mcontext saves the interrupted registers (r8..r15, rdi, rsi, rbp,
 * rbx, rdx, rax, rcx, rsp, rip, ...) and points to the FPU state, which
 * lies just above the frame. Offsets from the restorer word.
 */
#define HP_X86_RESTORER_BYTES                                      \
	{                                                          \
		0x48, 0xc7, 0xc0, 0x0f, 0, 0, 0, HP_X86_SYSCALL_0, \
			HP_X86_SYSCALL_1                           \
	}
#define HP_X86_RESTORER_SIZE 9
#define HP_X86_SIGFRAME_GREGS (8 + 40) /* pretcode, uc_flags..uc_stack */
#define HP_X86_SIGFRAME_RSP (HP_X86_SIGFRAME_GREGS + 15 * 8)
#define HP_X86_SIGFRAME_RIP (HP_X86_SIGFRAME_GREGS + 16 * 8)
#define HP_X86_SIGFRAME_CSGSFS (HP_X86_SIGFRAME_GREGS + 18 * 8)
#define HP_X86_SIGFRAME_FPSTATE (HP_X86_SIGFRAME_GREGS + 23 * 8)
#define HP_X86_USER_CS 0x33	/* a 64-bit process's code segment */
#define HP_X86_FPSTATE_ALIGN 64 /* XSAVE's */
#define HP_X86_SIGFRAME_SIZE (HP_X86_SIGFRAME_FPSTATE + 8) /* what we read */

/*
 * The FPU state a signal frame points to (the kernel's fpu/signal.c):
 * fxsave's 512 bytes, whose last 48 (sw_reserved: magic1, extended_size,
 * xfeatures, xstate_size) say that an XSAVE header and the extended
 * components follow, up to xstate_size, where magic2 ends them. Without
 * magic1, rt_sigreturn restores only the x87 and SSE state and resets
 * every other component (AVX, AVX-512, PKRU). ptrace's XSAVE area
 * (NT_X86_XSTATE) has XCR0 at sw_reserved's start instead.
 */
#define HP_X86_FXSAVE_SIZE 512
#define HP_X86_FX_SW_OFF 464
#define HP_X86_XSAVE_HDR_SIZE 64
#define HP_X86_FP_XSTATE_MAGIC1 0x46505853u
#define HP_X86_FP_XSTATE_MAGIC2 0x46505845u
#define HP_X86_XFEATURE_PKRU 9
#define HP_X86_XSTATE_MAX (16u << 10) /* AMX's: 11 KiB */

#endif
