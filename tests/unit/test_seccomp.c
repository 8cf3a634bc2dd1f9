/*
 * Unit tests for the seccomp filter runner (runtime/rt_seccomp.c, its
 * statics reached by including it): each instruction class as the kernel
 * runs it, and anything the kernel would refuse taken as a kill.
 */
#include "hp_test.h"

#include "runtime/rt_seccomp.c"
#include "common/hp_util.h"

#include <sys/mman.h>

#define RUN(d, ...)                                                   \
	run_bpf((const struct sock_filter[]){ __VA_ARGS__ },          \
		sizeof((const struct sock_filter[]){ __VA_ARGS__ }) / \
			sizeof(struct sock_filter),                   \
		d)
#define LD_ABS(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define RET(k) BPF_STMT(BPF_RET | BPF_K, (k))
#define KILL SECCOMP_RET_KILL_PROCESS
#define ALLOW SECCOMP_RET_ALLOW

static void test_bpf(void **state)
{
	struct seccomp_data d = { .nr = SYS_mmap,
				  .arch = AUDIT_ARCH_X86_64,
				  .args = { 0, 4096, PROT_READ, 0x100022 } };
	/* The hostile target's filter: kill an mmap with bit 0x100000. */
	const struct sock_filter hostile[] = {
		LD_ABS(offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 0, 3),
		LD_ABS(offsetof(struct seccomp_data, args) + 24),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x100000, 0, 1),
		RET(KILL),
		RET(ALLOW),
	};

	(void)state;
	assert_int_equal(run_bpf(hostile, HP_ARRAY_SIZE(hostile), &d), KILL);
	d.args[3] = 0x22;
	assert_int_equal(run_bpf(hostile, HP_ARRAY_SIZE(hostile), &d), ALLOW);
	/* ALU, the scratch memory, X, JGT/JGE, JA, RET A. */
	assert_int_equal(RUN(&d, BPF_STMT(BPF_LD | BPF_IMM, 6),
			     BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, 7),
			     BPF_STMT(BPF_ALU | BPF_SUB | BPF_K, 2),
			     BPF_STMT(BPF_ST, 3),
			     BPF_STMT(BPF_LDX | BPF_MEM, 3),
			     BPF_STMT(BPF_LD | BPF_IMM, 100),
			     BPF_STMT(BPF_ALU | BPF_DIV | BPF_X, 0),
			     BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 4),
			     BPF_STMT(BPF_ALU | BPF_OR | BPF_K, 1),
			     BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 33, 0, 1),
			     BPF_STMT(BPF_JMP | BPF_JA, 1), RET(KILL),
			     BPF_STMT(BPF_RET | BPF_A, 0)),
			 (100 / 40) << 4 | 1);
	assert_int_equal(RUN(&d, BPF_STMT(BPF_LD | BPF_IMM, 5),
			     BPF_STMT(BPF_MISC | BPF_TAX, 0),
			     BPF_STMT(BPF_LD | BPF_IMM, 9),
			     BPF_STMT(BPF_ALU | BPF_MOD | BPF_X, 0),
			     BPF_STMT(BPF_ALU | BPF_NEG, 0),
			     BPF_STMT(BPF_ALU | BPF_XOR | BPF_K, 0xff),
			     BPF_STMT(BPF_ST, 0), BPF_STMT(BPF_LD | BPF_MEM, 0),
			     BPF_JUMP(BPF_JMP | BPF_JGT | BPF_X, 0, 1, 0),
			     RET(KILL), BPF_STMT(BPF_RET | BPF_A, 0)),
			 (uint32_t)-4 ^ 0xff);
	assert_int_equal(RUN(&d, BPF_STMT(BPF_LDX | BPF_IMM, 7),
			     BPF_STMT(BPF_STX, 1),
			     BPF_STMT(BPF_LD | BPF_MEM, 1),
			     BPF_STMT(BPF_RET | BPF_A, 0)),
			 7);
	/* What the kernel refuses: a kill. */
	assert_int_equal(RUN(&d, BPF_STMT(BPF_LD | BPF_IMM, 1),
			     BPF_STMT(BPF_ALU | BPF_DIV | BPF_K, 0),
			     RET(ALLOW)),
			 KILL);
	assert_int_equal(RUN(&d, LD_ABS(2), RET(ALLOW)), KILL); /* unaligned */
	assert_int_equal(RUN(&d, LD_ABS(sizeof(d)), RET(ALLOW)), KILL);
	assert_int_equal(RUN(&d, BPF_STMT(BPF_ST, BPF_MEMWORDS), RET(ALLOW)),
			 KILL);
	assert_int_equal(RUN(&d, BPF_STMT(BPF_LD | BPF_IMM, 1)), KILL);
	assert_int_equal(RUN(&d, BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
			     BPF_STMT(BPF_RET | BPF_A, 0)),
			 sizeof(d));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bpf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
