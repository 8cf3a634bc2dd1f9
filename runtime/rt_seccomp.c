/*
 * Seccomp: will a system call hpatch injects survive the target's filters?
 * A filter that kills on mmap kills the process (KILL_PROCESS) or the
 * thread that runs our call (KILL_THREAD, strict mode), a TRAP sends it
 * SIGSYS, a USER_NOTIF waits for a supervisor that may never answer.
 * So before each injected call, the thread's filters (read with
 * PTRACE_SECCOMP_GET_FILTER) are run on that exact call, as the kernel
 * would run them, and anything but ALLOW or LOG refuses it with the
 * reason. A filter that allows what hpatch needs (systemd's
 * SystemCallFilter=@system-service does, and MemoryDenyWriteExecute=yes:
 * the region is mapped executable, never writable, see rt_region.c) is no
 * obstacle; one that returns an error is said up front instead of as a
 * failed call.
 */
#include "runtime/runtime_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

#define HP_LOG_PREFIX "rt: "
#define HP_BPF_MAX 4096 /* BPF_MAXINSNS */
#define HP_FILTERS_MAX 64

#ifndef PTRACE_SECCOMP_GET_FILTER
#define PTRACE_SECCOMP_GET_FILTER 0x420c
#endif

/* The machine a classic BPF program runs on: A, X and scratch memory. */
struct bpf_vm {
	uint32_t a, x, mem[BPF_MEMWORDS];
};

/* BPF_LD, BPF_LDX into A or X. Return: false for what seccomp refuses. */
static bool bpf_load(struct bpf_vm *vm, const struct sock_filter *i,
		     const struct seccomp_data *d)
{
	const bool ldx = BPF_CLASS(i->code) == BPF_LDX;
	const uint16_t mode = i->code & ~BPF_CLASS(i->code);
	uint32_t *reg = ldx ? &vm->x : &vm->a;

	if (!ldx && i->code == (BPF_LD | BPF_W | BPF_ABS)) {
		if (i->k % 4 || i->k + 4 > sizeof(*d))
			return false;
		memcpy(reg, (const uint8_t *)d + i->k, 4);
	} else if (mode == (BPF_W | BPF_LEN)) {
		*reg = sizeof(*d);
	} else if (mode == BPF_IMM) {
		*reg = i->k;
	} else if (mode == BPF_MEM && i->k < BPF_MEMWORDS) {
		*reg = vm->mem[i->k];
	} else {
		return false;
	}
	return true;
}

/* BPF_ALU on A. Return: false for a division by zero or an unknown op. */
static bool bpf_alu(uint32_t *a, uint16_t op, uint32_t src)
{
	switch (op) {
	case BPF_ADD:
		*a += src;
		return true;
	case BPF_SUB:
		*a -= src;
		return true;
	case BPF_MUL:
		*a *= src;
		return true;
	case BPF_DIV:
	case BPF_MOD:
		if (!src)
			return false;
		*a = op == BPF_DIV ? *a / src : *a % src;
		return true;
	case BPF_AND:
		*a &= src;
		return true;
	case BPF_OR:
		*a |= src;
		return true;
	case BPF_XOR:
		*a ^= src;
		return true;
	case BPF_LSH:
	case BPF_RSH:
		*a = src >= 32 ? 0 : op == BPF_LSH ? *a << src : *a >> src;
		return true;
	case BPF_NEG:
		*a = -*a;
		return true;
	default:
		return false;
	}
}

/* How far conditional jump @op skips from @a and @src, or -1 unknown. */
static int bpf_jump(const struct sock_filter *i, uint32_t a, uint32_t src)
{
	bool taken;

	switch (BPF_OP(i->code)) {
	case BPF_JEQ:
		taken = a == src;
		break;
	case BPF_JGT:
		taken = a > src;
		break;
	case BPF_JGE:
		taken = a >= src;
		break;
	case BPF_JSET:
		taken = a & src;
		break;
	default:
		return -1;
	}
	return taken ? i->jt : i->jf;
}

/*
 * Run classic BPF program @f (@n instructions) on @d, as seccomp does
 * (seccomp_check_filter admits only these instructions).
 * Return: the action, or SECCOMP_RET_KILL_PROCESS for anything odd.
 */
static uint32_t run_bpf(const struct sock_filter *f, size_t n,
			const struct seccomp_data *d)
{
	struct bpf_vm vm = { 0 };

	for (size_t pc = 0; pc < n; pc++) {
		const struct sock_filter *i = &f[pc];
		const uint32_t src = BPF_SRC(i->code) == BPF_X ? vm.x : i->k;
		int skip;

		switch (BPF_CLASS(i->code)) {
		case BPF_LD:
		case BPF_LDX:
			if (!bpf_load(&vm, i, d))
				return SECCOMP_RET_KILL_PROCESS;
			break;
		case BPF_ST:
		case BPF_STX:
			if (i->k >= BPF_MEMWORDS)
				return SECCOMP_RET_KILL_PROCESS;
			vm.mem[i->k] =
				BPF_CLASS(i->code) == BPF_ST ? vm.a : vm.x;
			break;
		case BPF_ALU:
			if (!bpf_alu(&vm.a, BPF_OP(i->code), src))
				return SECCOMP_RET_KILL_PROCESS;
			break;
		case BPF_JMP:
			skip = BPF_OP(i->code) == BPF_JA
				       ? (int)i->k
				       : bpf_jump(i, vm.a, src);
			if (skip < 0)
				return SECCOMP_RET_KILL_PROCESS;
			pc += (size_t)skip;
			break;
		case BPF_RET:
			return BPF_RVAL(i->code) == BPF_A ? vm.a : i->k;
		case BPF_MISC:
			if (BPF_MISCOP(i->code) == BPF_TAX)
				vm.x = vm.a;
			else
				vm.a = vm.x;
			break;
		default:
			return SECCOMP_RET_KILL_PROCESS;
		}
	}
	return SECCOMP_RET_KILL_PROCESS; /* ran off the end: never valid */
}

/* How bad an action is: the kernel applies the worst of all filters. */
static int severity(uint32_t action)
{
	switch (action & SECCOMP_RET_ACTION_FULL) {
	case SECCOMP_RET_KILL_PROCESS:
		return 7;
	case SECCOMP_RET_KILL_THREAD:
		return 6;
	case SECCOMP_RET_TRAP:
		return 5;
	case SECCOMP_RET_ERRNO:
		return 4;
	case SECCOMP_RET_USER_NOTIF:
		return 3;
	case SECCOMP_RET_TRACE:
		return 2;
	case SECCOMP_RET_LOG:
		return 1;
	case SECCOMP_RET_ALLOW:
		return 0;
	default:
		return 7; /* unknown: the kernel kills */
	}
}

static const char *syscall_name(long nr)
{
	return nr == SYS_mmap	    ? "mmap"
	       : nr == SYS_mprotect ? "mprotect"
	       : nr == SYS_munmap   ? "munmap"
				    : "a system call";
}

/* The worst action of @tid's filters for @d. Return: 0 or -errno. */
static int run_filters(pid_t tid, const struct seccomp_data *d, uint32_t *worst)
{
	struct sock_filter *f = malloc(HP_BPF_MAX * sizeof(*f));

	if (!f)
		return -ENOMEM;
	*worst = SECCOMP_RET_ALLOW;
	for (long i = 0; i < HP_FILTERS_MAX; i++) {
		long n = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)i, f);
		uint32_t act;

		if (n < 0 && errno == ENOENT)
			break; /* past the last filter */
		if (n <= 0 || n > HP_BPF_MAX) {
			int rc = n < 0 ? -errno : -EINVAL;

			free(f);
			return rc;
		}
		act = run_bpf(f, (size_t)n, d);
		if (severity(act) > severity(*worst))
			*worst = act;
	}
	free(f);
	return 0;
}

bool hp_seccomp_strict(pid_t tid)
{
	return hp_task_status_field(tid, "Seccomp:") == SECCOMP_MODE_STRICT;
}

/*
 * @t's seccomp mode, read once a stop: while it is stopped, only another
 * thread's filter with SECCOMP_FILTER_FLAG_TSYNC could change it, a race
 * no check before the call closes either. (No line, or unreadable: a
 * kernel without seccomp, or a thread gone, which the call will find.)
 */
static long seccomp_mode(struct hp_thread *t)
{
	if (!t->has_seccomp_mode) {
		t->seccomp_mode = (int)hp_task_status_field(t->tid, "Seccomp:");
		t->has_seccomp_mode = true;
	}
	return t->seccomp_mode;
}

int hp_seccomp_check(struct hp_thread *t, hp_raddr_t ip, long nr,
		     const long args[6])
{
	struct seccomp_data d = { .nr = (int)nr,
				  .arch = AUDIT_ARCH_X86_64,
				  .instruction_pointer = ip };
	const pid_t tid = t->tid;
	const long mode = seccomp_mode(t);
	uint32_t act = SECCOMP_RET_ALLOW;
	int rc;

	if (mode <= 0)
		return 0;
	if (mode == SECCOMP_MODE_STRICT) {
		hp_error(-HP_E_SECCOMP,
			 "tid %d: runs in seccomp strict mode: any system call "
			 "hpatch injects (%s) would kill it",
			 (int)tid, syscall_name(nr));
		return -HP_E_SECCOMP;
	}
	for (int i = 0; i < 6; i++)
		d.args[i] = (uint64_t)args[i];
	rc = mode == SECCOMP_MODE_FILTER ? run_filters(tid, &d, &act) : -EINVAL;
	if (rc) {
		hp_error_rc(-HP_E_SECCOMP,
			    "tid %d: under a seccomp filter hpatch cannot read "
			    "(%s), so %s might kill it",
			    (int)tid, strerror(-rc), syscall_name(nr));
		hp_hint("hpatch reads filters with PTRACE_SECCOMP_GET_FILTER: "
			"run it as root (CAP_SYS_ADMIN)");
		return -HP_E_SECCOMP;
	}
	switch (act & SECCOMP_RET_ACTION_FULL) {
	case SECCOMP_RET_ALLOW:
	case SECCOMP_RET_LOG:
		return 0;
	case SECCOMP_RET_ERRNO:
		hp_error(-HP_E_SECCOMP,
			 "tid %d: a seccomp filter would make %s fail with "
			 "'%s'",
			 (int)tid, syscall_name(nr),
			 strerror((int)(act & SECCOMP_RET_DATA)));
		if ((nr == SYS_mmap || nr == SYS_mprotect) &&
		    (args[2] & PROT_EXEC))
			hp_hint("mapping patch code executable is forbidden "
				"there (systemd's MemoryDenyWriteExecute=yes "
				"is not: hpatch maps it executable, never "
				"writable): only a restart applies the fix");
		return -HP_E_SECCOMP;
	default:
		hp_error(-HP_E_SECCOMP,
			 "tid %d: a seccomp filter would %s on %s; nothing "
			 "injected",
			 (int)tid,
			 severity(act) >= 6   ? "kill it"
			 : severity(act) == 5 ? "send it SIGSYS"
			 : severity(act) == 3 ? "wait for its supervisor"
					      : "refuse it (a seccomp tracer)",
			 syscall_name(nr));
		hp_hint("only a restart applies the fix to this process");
		return -HP_E_SECCOMP;
	}
}
