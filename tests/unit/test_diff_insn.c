/*
 * Unit tests for the instruction-by-instruction comparison of the binary
 * proof (differ/diff_insn.c): a short jump where the object has a near one
 * (the kpatch model's branch relaxation), moved instructions and alignment
 * nops are the same code; another target, condition or byte is not.
 */
#include "hp_test.h"

#include "differ/differ_int.h"

#include <elf.h>
#include <string.h>

#define FN 0x40 /* the function's offset in its object section */
#define ADDR 0x401000ull
#define TARGET 0x402000ull

struct calls {
	int reaches, replays;
	uint64_t tail, to;
};

static bool fake_reaches(void *ctx, const struct hp_orel *r, uint64_t tail,
			 uint64_t to)
{
	struct calls *c = ctx;

	(void)r;
	c->reaches++;
	c->tail = tail;
	c->to = to;
	return to == TARGET;
}

static bool fake_replays(void *ctx, struct hp_orel *const *rels, size_t nr,
			 const struct hp_insn_twin *in)
{
	struct calls *c = ctx;

	(void)rels;
	c->replays++;
	c->tail = in->obj_off;
	c->to = in->addr;
	return nr == 1 && in->len == 7;
}

static bool same(struct calls *c, const uint8_t *o, size_t on, const uint8_t *b,
		 size_t bn, struct hp_orel *const *rels, size_t nr)
{
	const struct hp_insn_peer peer = { .branch_reaches = fake_reaches,
					   .replays = fake_replays,
					   .ctx = c };
	const struct hp_insn_code obj = { o, on, FN }, bin = { b, bn, ADDR };

	memset(c, 0, sizeof(*c));
	return hp_insn_same(&peer, &obj, &bin, rels, nr);
}

/* add $1,%edi; jmp scaled: near with a relocation vs short, resolved */
static void test_tail_call_relaxed(void **state)
{
	static const uint8_t o[] = { 0x83, 0xc7, 0x01, 0xe9, 0, 0, 0, 0 };
	uint8_t b[] = { 0x83, 0xc7, 0x01, 0xeb, 0 };
	struct hp_orel r = { .offset = FN + 4,
			     .type = R_X86_64_PLT32,
			     .addend = -4 };
	struct hp_orel *rels[] = { &r };
	struct calls c;

	(void)state;
	b[4] = 0x7b; /* lands at ADDR + 5 + 0x7b */
	assert_false(same(&c, o, sizeof(o), b, sizeof(b), rels, 1));
	assert_int_equal(c.reaches, 1);
	assert_int_equal(c.tail, 4); /* the field to the end of the jmp */
	assert_int_equal(c.to, ADDR + 5 + 0x7b);
	/* a short jmp back to TARGET is out of rel8's reach: near */
	{
		static const uint8_t near[] = { 0x83, 0xc7, 0x01, 0xe9,
						0xf8, 0x0f, 0,	  0 };

		assert_true(
			same(&c, o, sizeof(o), near, sizeof(near), rels, 1));
	}
	/* a call is not a jmp */
	{
		static const uint8_t call[] = { 0x83, 0xc7, 0x01, 0xe8,
						0xf8, 0x0f, 0,	  0 };

		assert_false(
			same(&c, o, sizeof(o), call, sizeof(call), rels, 1));
	}
}

/*
 * test %eax,%eax; je L (near); nop; L: ret  -- against the binary's
 * test; je L (short); L: ret: the jump lands on the paired instruction.
 */
static void test_inner_jump_and_nops(void **state)
{
	static const uint8_t o[] = { 0x85, 0xc0, 0x0f, 0x84, 2,	  0,
				     0,	   0,	 0x66, 0x90, 0xc3 };
	uint8_t b[] = { 0x85, 0xc0, 0x74, 0x00, 0xc3 };
	struct calls c;

	(void)state;
	assert_true(same(&c, o, sizeof(o), b, sizeof(b), NULL, 0));
	/* lands on the test instead */
	b[3] = 0xfc;
	assert_false(same(&c, o, sizeof(o), b, sizeof(b), NULL, 0));
	/* jne, not je */
	b[2] = 0x75;
	b[3] = 0x00;
	assert_false(same(&c, o, sizeof(o), b, sizeof(b), NULL, 0));
	/* another register */
	b[2] = 0x74;
	b[1] = 0xc9;
	assert_false(same(&c, o, sizeof(o), b, sizeof(b), NULL, 0));
	/* an instruction too many */
	{
		static const uint8_t more[] = { 0x85, 0xc0, 0x74, 0x01,
						0x90, 0xc3, 0xc3 };

		assert_false(
			same(&c, o, sizeof(o), more, sizeof(more), NULL, 0));
	}
}

/* lea .LC0(%rip),%rdi moved by 3 bytes: replayed where it now stands */
static void test_relocated_insn_moved(void **state)
{
	static const uint8_t o[] = { 0xe9, 0, 0, 0, 0, 0x48, 0x8d,
				     0x3d, 0, 0, 0, 0, 0xc3 };
	static const uint8_t b[] = { 0xeb, 0x00, 0x48, 0x8d, 0x3d,
				     1,	   2,	 3,    4,    0xc3 };
	struct hp_orel jmp = { .offset = FN + 1,
			       .type = R_X86_64_PLT32,
			       .addend = -4 };
	struct hp_orel lea = { .offset = FN + 8,
			       .type = R_X86_64_PC32,
			       .addend = -4 };
	struct hp_orel *rels[] = { &jmp, &lea };
	struct calls c;

	(void)state;
	/* the jmp's own target is not TARGET: compare the lea alone */
	assert_false(same(&c, o, sizeof(o), b, sizeof(b), rels, 2));
	assert_int_equal(c.reaches, 1);
	assert_int_equal(c.replays, 0);
	{
		static const uint8_t o2[] = {
			0x48, 0x8d, 0x3d, 0, 0, 0, 0, 0xc3
		};
		static const uint8_t b2[] = {
			0x48, 0x8d, 0x3d, 1, 2, 3, 4, 0xc3
		};
		struct hp_orel lea2 = { .offset = FN + 3,
					.type = R_X86_64_PC32,
					.addend = -4 };
		struct hp_orel *r2[] = { &lea2 };

		assert_true(same(&c, o2, sizeof(o2), b2, sizeof(b2), r2, 1));
		assert_int_equal(c.replays, 1);
		assert_int_equal(c.tail, FN); /* the instruction's offset */
		assert_int_equal(c.to, ADDR);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tail_call_relaxed),
		cmocka_unit_test(test_inner_jump_and_nops),
		cmocka_unit_test(test_relocated_insn_moved),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
