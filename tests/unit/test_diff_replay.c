/*
 * Unit tests for the binary proof's relocation replay (differ/diff_replay.c):
 * each relocation type gives the bytes the linker writes, and only the
 * rewrites GNU ld makes (GOT relaxation, PLT calls, TLS relaxation) are
 * accepted, with exactly ld's encodings. The binary is faked through the
 * proof's ops: which addresses are GOT slots, PLT stubs and TLS entries.
 */
#include "hp_test.h"

#include "differ/diff_replay.c"

#define P_FIELD 0x401003ull /* where the field lands in the binary */
#define SLOT 0x404000ull
#define STUB 0x401800ull
#define FOO 0x402000ull

static bool fake_got(const void *ctx, const struct hp_rtarget *t, uint64_t a)
{
	(void)ctx;
	(void)t;
	return a == SLOT;
}

static bool fake_plt(const void *ctx, const struct hp_rtarget *t, uint64_t a)
{
	(void)ctx;
	return a == STUB && t->name && !strcmp(t->name, "puts");
}

static bool fake_tls(const void *ctx, const struct hp_rtarget *t, uint32_t type,
		     uint64_t a)
{
	(void)ctx;
	(void)t;
	return a == SLOT &&
	       (type == R_X86_64_TPOFF64 || type == R_X86_64_DTPMOD64);
}

static const struct hp_replay_ops exec_ops = {
	.got_slot = fake_got,
	.plt_stub = fake_plt,
	.tls_slot = fake_tls,
	.is_exec = true,
	.tls_offset = 0x40,
};

static const struct hp_replay_ops dso_ops = {
	.got_slot = fake_got,
	.plt_stub = fake_plt,
	.tls_slot = fake_tls,
	.is_exec = false,
};

static const struct hp_rtarget foo = { .name = "foo",
				       .S = FOO,
				       .defined = true };
static const struct hp_rtarget puts_ = { .name = "puts" };

/*
 * Replay one relocation at offset 3 of @obj against @t, where the binary
 * has @bin; both 16 bytes. Returns the result, with the replayed bytes in
 * @out.
 */
static enum hp_replay_result run(const struct hp_replay_ops *ops, uint32_t type,
				 int64_t addend, const uint8_t *obj,
				 const uint8_t *bin, const struct hp_rtarget *t,
				 uint8_t *out, size_t *end)
{
	size_t e = 0;
	const struct hp_replay_site s = {
		.exp = out,
		.act = bin,
		.len = 16,
		.off = 3,
		.P = P_FIELD,
		.type = type,
		.A = addend,
	};
	enum hp_replay_result res;

	memcpy(out, obj, 16);
	res = hp_replay(ops, &s, t, end ? end : &e);
	return res;
}

/* Replay with A = -4; a match must give exactly the binary's bytes. */
static void expect(enum hp_replay_result want, const struct hp_replay_ops *ops,
		   uint32_t type, const uint8_t *obj, const uint8_t *bin,
		   const struct hp_rtarget *t)
{
	uint8_t out[16];

	assert_int_equal(run(ops, type, -4, obj, bin, t, out, NULL), want);
	if (want == HP_REPLAY_MATCH)
		assert_memory_equal(out, bin, 16);
}

/* A rel32 at @at of @b from the field's place to @target (next insn +4). */
static void put_rel(uint8_t *b, size_t at, uint64_t target, int64_t addend)
{
	hp_put_le32(b + at,
		    (uint32_t)(target + (uint64_t)addend - (P_FIELD - 3 + at)));
}

static void test_pc32_direct(void **state)
{
	uint8_t obj[16] = { 0x90, 0x90, 0xe8, 0, 0, 0, 0, 0xc3 }, bin[16],
		out[16];

	(void)state;
	memcpy(bin, obj, 16);
	put_rel(bin, 3, FOO, -4);
	expect(HP_REPLAY_MATCH, &exec_ops, R_X86_64_PLT32, obj, bin, &foo);
	/* S + A - P, even when the binary says otherwise */
	put_rel(bin, 3, FOO + 0x10, -4);
	assert_int_equal(
		run(&exec_ops, R_X86_64_PC32, -4, obj, bin, &foo, out, NULL),
		HP_REPLAY_DIFFER);
	put_rel(bin, 3, FOO, -4);
	assert_memory_equal(out, bin, 16);
}

static void test_plt_stub(void **state)
{
	uint8_t obj[16] = { 0x90, 0x90, 0xe8 }, bin[16];
	const struct hp_rtarget other = { .name = "printf" };

	(void)state;
	memcpy(bin, obj, 16);
	put_rel(bin, 3, STUB, -4);
	expect(HP_REPLAY_MATCH, &exec_ops, R_X86_64_PLT32, obj, bin, &puts_);
	/* the stub of another symbol */
	expect(HP_REPLAY_DIFFER, &exec_ops, R_X86_64_PLT32, obj, bin, &other);
	/* a defined function called through its PLT stub (a DSO's export) */
	{
		const struct hp_rtarget puts_def = { .name = "puts",
						     .S = FOO,
						     .defined = true };

		expect(HP_REPLAY_MATCH, &dso_ops, R_X86_64_PLT32, obj, bin,
		       &puts_def);
	}
}

static void test_abs_and_size(void **state)
{
	uint8_t obj[16] = { 0, 0, 0xbf }, bin[16], out[16];
	const struct hp_rtarget table = { .S = 0x405000,
					  .size = 64,
					  .defined = true };

	(void)state;
	memcpy(bin, obj, 16);
	hp_put_le32(bin + 3, 0x405008);
	assert_int_equal(
		run(&exec_ops, R_X86_64_32, 8, obj, bin, &table, out, NULL),
		HP_REPLAY_MATCH);
	hp_put_le32(bin + 3, 64);
	assert_int_equal(
		run(&exec_ops, R_X86_64_SIZE32, 0, obj, bin, &table, out, NULL),
		HP_REPLAY_MATCH);
	hp_put_le64(bin + 3, 0x405000 - P_FIELD);
	assert_int_equal(
		run(&exec_ops, R_X86_64_PC64, 0, obj, bin, &table, out, NULL),
		HP_REPLAY_MATCH);
	assert_int_equal(run(&exec_ops, R_X86_64_GOTPC32_TLSDESC, 0, obj, bin,
			     &table, out, NULL),
			 HP_REPLAY_UNKNOWN);
}

/* mov foo@GOTPCREL(%rip), %rax: 48 8b 05 rel32 at offset 0. */
static const uint8_t mov_got[16] = { 0x48, 0x8b, 0x05 };

static void test_got_unrelaxed(void **state)
{
	uint8_t obj[16], bin[16];

	(void)state;
	memcpy(obj, mov_got, 16);
	memcpy(bin, obj, 16);
	put_rel(bin, 3, SLOT, -4);
	expect(HP_REPLAY_MATCH, &exec_ops, R_X86_64_REX_GOTPCRELX, obj, bin,
	       &puts_);
	/* a word that is no GOT slot of the symbol */
	put_rel(bin, 3, SLOT + 8, -4);
	expect(HP_REPLAY_DIFFER, &exec_ops, R_X86_64_REX_GOTPCRELX, obj, bin,
	       &puts_);
}

static void test_got_mov_to_lea(void **state)
{
	uint8_t obj[16], bin[16];

	(void)state;
	memcpy(obj, mov_got, 16);
	memcpy(bin, obj, 16);
	bin[1] = 0x8d;
	put_rel(bin, 3, FOO, -4);
	expect(HP_REPLAY_MATCH, &exec_ops, R_X86_64_REX_GOTPCRELX, obj, bin,
	       &foo);
	/* lea of another address */
	put_rel(bin, 3, FOO + 4, -4);
	expect(HP_REPLAY_DIFFER, &exec_ops, R_X86_64_REX_GOTPCRELX, obj, bin,
	       &foo);
	/* a relaxation of a symbol the binary does not define */
	put_rel(bin, 3, FOO, -4);
	expect(HP_REPLAY_DIFFER, &exec_ops, R_X86_64_REX_GOTPCRELX, obj, bin,
	       &puts_);
	/* an opcode ld never writes there (add instead of lea) */
	bin[1] = 0x03;
	expect(HP_REPLAY_DIFFER, &exec_ops, R_X86_64_REX_GOTPCRELX, obj, bin,
	       &foo);
}

static void test_got_mov_to_imm(void **state)
{
	/* mov foo@GOTPCREL(%rip), %r9: 4c 8b 0d -> mov $foo, %r9: 49 c7 c1 */
	const uint8_t obj[16] = { 0x4c, 0x8b, 0x0d };
	uint8_t bin[16] = { 0x49, 0xc7, 0xc1 };

	(void)state;
	hp_put_le32(bin + 3, FOO);
	expect(HP_REPLAY_MATCH, &exec_ops, R_X86_64_REX_GOTPCRELX, obj, bin,
	       &foo);
	/* the REX prefix left as it was: not what ld writes */
	bin[0] = 0x4c;
	expect(HP_REPLAY_DIFFER, &exec_ops, R_X86_64_REX_GOTPCRELX, obj, bin,
	       &foo);
}

static void test_got_call_and_jmp(void **state)
{
	/* call *foo@GOTPCREL(%rip): ff 15 at offset 1 */
	const uint8_t call[16] = { 0x90, 0xff, 0x15 };
	const uint8_t jmp[16] = { 0x90, 0xff, 0x25 };
	uint8_t bin[16];

	(void)state;
	/* addr32 call foo */
	memcpy(bin, call, 16);
	bin[1] = 0x67;
	bin[2] = 0xe8;
	put_rel(bin, 3, FOO, -4);
	expect(HP_REPLAY_MATCH, &exec_ops, R_X86_64_GOTPCRELX, call, bin, &foo);
	/* call foo; nop (ld -z call-nop=suffix-nop) */
	memset(bin, 0, 16);
	bin[0] = 0x90;
	bin[1] = 0xe8;
	hp_put_le32(bin + 2, (uint32_t)(FOO - (P_FIELD + 3)));
	bin[6] = 0x90;
	expect(HP_REPLAY_MATCH, &exec_ops, R_X86_64_GOTPCRELX, call, bin, &foo);
	/* jmp foo; nop */
	bin[1] = 0xe9;
	expect(HP_REPLAY_MATCH, &exec_ops, R_X86_64_GOTPCRELX, jmp, bin, &foo);
	/* the same call kept indirect through the slot */
	memcpy(bin, call, 16);
	put_rel(bin, 3, SLOT, -4);
	expect(HP_REPLAY_MATCH, &exec_ops, R_X86_64_GOTPCRELX, call, bin, &foo);
	/* a direct call somewhere else */
	bin[1] = 0x67;
	bin[2] = 0xe8;
	put_rel(bin, 3, FOO + 0x20, -4);
	expect(HP_REPLAY_DIFFER, &exec_ops, R_X86_64_GOTPCRELX, call, bin,
	       &foo);
}

static void test_tls(void **state)
{
	/* mov x@gottpoff(%rip), %rdx: 48 8b 15 -> mov $tpoff, %rdx: 48 c7 c2 */
	const uint8_t ie[16] = { 0x48, 0x8b, 0x15 };
	uint8_t bin[16] = { 0x48, 0xc7, 0xc2 }, out[16];
	const struct hp_rtarget x = { .name = "x", .S = 0x10, .defined = true };

	(void)state;
	hp_put_le32(bin + 3, (uint32_t)(0x10 - 0x40));
	expect(HP_REPLAY_MATCH, &exec_ops, R_X86_64_GOTTPOFF, ie, bin, &x);
	/* a shared library keeps the TPOFF64 slot, and relaxes nothing */
	expect(HP_REPLAY_DIFFER, &dso_ops, R_X86_64_GOTTPOFF, ie, bin, &x);
	memcpy(bin, ie, 16);
	put_rel(bin, 3, SLOT, -4);
	expect(HP_REPLAY_MATCH, &dso_ops, R_X86_64_GOTTPOFF, ie, bin, &x);
	/* local-exec: tpoff + A */
	hp_put_le32(bin + 3, (uint32_t)(0x10 - 0x40 + 4));
	assert_int_equal(
		run(&exec_ops, R_X86_64_TPOFF32, 4, ie, bin, &x, out, NULL),
		HP_REPLAY_MATCH);
}

static void test_tls_gd_to_le(void **state)
{
	/* data16 lea x@tlsgd(%rip), %rdi; data16 data16 rex64 call
	 * __tls_get_addr@PLT: the field at offset 4 of 16 bytes */
	uint8_t gd[20] = { 0x66, 0x48, 0x8d, 0x3d, 0,	 0,
			   0,	 0,    0x66, 0x66, 0x48, 0xe8 };
	uint8_t bin[20] = { 0x64, 0x48, 0x8b, 0x04, 0x25, 0,
			    0,	  0,	0,    0x48, 0x8d, 0x80 };
	uint8_t out[20];
	const struct hp_rtarget x = { .name = "x", .S = 0x10, .defined = true };
	size_t end = 0;
	const struct hp_replay_site s = { .exp = out,
					  .act = bin,
					  .len = 20,
					  .off = 4,
					  .P = P_FIELD,
					  .type = R_X86_64_TLSGD,
					  .A = -4 };

	(void)state;
	hp_put_le32(bin + 12, (uint32_t)(0x10 - 0x40));
	memcpy(out, gd, sizeof(gd));
	assert_int_equal(hp_replay(&exec_ops, &s, &x, &end), HP_REPLAY_MATCH);
	assert_memory_equal(out, bin, 16);
	assert_int_equal(end, 16); /* the call's relocation is inside */
	/* another offset */
	hp_put_le32(bin + 12, (uint32_t)(0x18 - 0x40));
	memcpy(out, gd, sizeof(gd));
	assert_int_equal(hp_replay(&exec_ops, &s, &x, &end), HP_REPLAY_DIFFER);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pc32_direct),
		cmocka_unit_test(test_plt_stub),
		cmocka_unit_test(test_abs_and_size),
		cmocka_unit_test(test_got_unrelaxed),
		cmocka_unit_test(test_got_mov_to_lea),
		cmocka_unit_test(test_got_mov_to_imm),
		cmocka_unit_test(test_got_call_and_jmp),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_tls_gd_to_le),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
