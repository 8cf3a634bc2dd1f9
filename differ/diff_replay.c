/*
 * What the linker wrote for one relocation: the field's value per type
 * (S + A - P and so on), and the rewrites GNU ld may make instead (GOT
 * loads relaxed to lea or an immediate, indirect calls and jumps made
 * direct, calls through a PLT stub, thread-local models relaxed), each in
 * exactly ld's encoding. The binary proof (diff_proof.c) picks the form
 * the binary has; what the binary is comes through struct hp_replay_ops.
 */
#include "differ/differ_int.h"
#include "common/hp_arch_x86_64.h"

#include <string.h>

/* Bytes around a field that a candidate form may rewrite. */
struct saved {
	size_t lo, hi;
	uint8_t b[20];
};

static void save(const struct hp_replay_site *s, struct saved *sv)
{
	sv->lo = s->off >= 4 ? s->off - 4 : 0;
	sv->hi = s->off + 12 < s->len ? s->off + 12 : s->len;
	memcpy(sv->b, s->exp + sv->lo, sv->hi - sv->lo);
}

static void restore(const struct hp_replay_site *s, const struct saved *sv)
{
	memcpy(s->exp + sv->lo, sv->b, sv->hi - sv->lo);
}

/* Whether @exp and @act agree over [off+lo, off+hi). */
static bool agree(const struct hp_replay_site *s, long lo, long hi)
{
	const long a = (long)s->off + lo, b = (long)s->off + hi;

	return a >= 0 && b <= (long)s->len &&
	       !memcmp(s->exp + a, s->act + a, (size_t)(b - a));
}

static bool fits(const struct hp_replay_site *s, long lo, long hi)
{
	return (long)s->off + lo >= 0 && (long)s->off + hi <= (long)s->len;
}

static void put8(const struct hp_replay_site *s, long at, uint8_t v)
{
	if (fits(s, at, at + 1))
		s->exp[(long)s->off + at] = v;
}

static void put32(const struct hp_replay_site *s, long at, uint64_t v)
{
	if (fits(s, at, at + 4))
		hp_put_le32(s->exp + (long)s->off + at, (uint32_t)v);
}

static uint8_t exp_at(const struct hp_replay_site *s, long at)
{
	return fits(s, at, at + 1) ? s->exp[(long)s->off + at] : 0;
}

/* The address a PC-relative field of the binary points at, less A. */
static uint64_t implied_pc(const struct hp_replay_site *s, long at)
{
	if (!fits(s, at, at + 4))
		return 0;
	return s->P + (uint64_t)at +
	       (uint64_t)(int64_t)(int32_t)hp_get_le32(s->act + s->off + at) -
	       (uint64_t)s->A;
}

/* Take the binary's field as it is (its target was checked otherwise). */
static void take(const struct hp_replay_site *s, long lo, long hi)
{
	if (fits(s, lo, hi))
		memcpy(s->exp + (long)s->off + lo, s->act + (long)s->off + lo,
		       (size_t)(hi - lo));
}

/* R_X86_64_PC32 and PLT32: the target itself, or its PLT stub. */
static enum hp_replay_result replay_pc(const struct hp_replay_ops *ops,
				       const struct hp_replay_site *s,
				       const struct hp_rtarget *t)
{
	struct saved sv;

	save(s, &sv);
	if (t->defined) {
		put32(s, 0, t->S + (uint64_t)s->A - s->P);
		if (agree(s, 0, 4))
			return HP_REPLAY_MATCH;
		restore(s, &sv);
	}
	if (t->name && ops->plt_stub(ops->ctx, t, implied_pc(s, 0))) {
		take(s, 0, 4);
		return HP_REPLAY_MATCH;
	}
	if (t->weak && !t->defined) {
		put32(s, 0, (uint64_t)s->A - s->P);
		if (agree(s, 0, 4))
			return HP_REPLAY_MATCH;
		restore(s, &sv);
	}
	if (t->defined)
		put32(s, 0, t->S + (uint64_t)s->A - s->P);
	return HP_REPLAY_DIFFER;
}

/* A field of @width bytes that holds @v. */
static enum hp_replay_result replay_value(const struct hp_replay_site *s,
					  bool known, uint64_t v, size_t width)
{
	if (!known || !fits(s, 0, (long)width))
		return HP_REPLAY_DIFFER;
	if (width == 8)
		hp_put_le64(s->exp + s->off, v);
	else
		put32(s, 0, v);
	return agree(s, 0, (long)width) ? HP_REPLAY_MATCH : HP_REPLAY_DIFFER;
}

/* The REX prefix ld writes when it moves ModRM.reg to ModRM.rm. */
static uint8_t rex_reg_to_rm(uint8_t rex)
{
	return (uint8_t)((rex & ~0x04) | ((rex & 0x04) >> 2));
}

/*
 * "op $S, %reg" for "op foo@GOTPCREL(%rip), %reg" (mov: c7 /0, test: f7 /0,
 * binop: 81 /n), which ld writes in executables whose addresses fit 32
 * bits; with or without a REX prefix before the opcode.
 */
static bool try_imm(const struct hp_replay_site *s, const struct hp_rtarget *t,
		    uint8_t opcode, uint8_t ext, bool rex)
{
	const uint8_t reg = (exp_at(s, -1) >> 3) & 7;

	if (rex) {
		if ((exp_at(s, -3) & 0xf0) != 0x40)
			return false;
		put8(s, -3, rex_reg_to_rm(exp_at(s, -3)));
	}
	put8(s, -2, opcode);
	put8(s, -1, (uint8_t)(0xc0 | (ext << 3) | reg));
	put32(s, 0, t->S);
	return agree(s, rex ? -3 : -2, 4);
}

/*
 * The forms ld relaxes GOTPCRELX (no REX prefix) and REX_GOTPCRELX to,
 * beyond mov -> lea: direct calls and jumps, and immediates.
 */
static bool relaxed_gotpcrelx(const struct hp_replay_site *s,
			      const struct hp_rtarget *t,
			      const struct saved *sv)
{
	const uint8_t op = exp_at(s, -2), modrm = exp_at(s, -1);
	const uint64_t rel = t->S + (uint64_t)s->A - s->P;
	const bool rex = s->type == R_X86_64_REX_GOTPCRELX;
	bool ok = false;

	if (op == 0xff && (modrm == 0x15 || modrm == 0x25)) {
		/* call -> addr32 call, nop call, or call; nop. jmp -> jmp; nop */
		static const uint8_t prefixes[] = { 0x67, HP_X86_NOP };

		for (size_t i = 0; modrm == 0x15 && i < 2; i++) {
			put8(s, -2, prefixes[i]);
			put8(s, -1, HP_X86_CALL_REL32);
			put32(s, 0, rel);
			if (agree(s, -2, 4))
				return true;
			restore(s, sv);
		}
		put8(s, -2,
		     modrm == 0x15 ? HP_X86_CALL_REL32 : HP_X86_JMP_REL32);
		put32(s, -1, rel + 1);
		put8(s, 3, HP_X86_NOP);
		if (agree(s, -2, 4))
			return true;
		restore(s, sv);
	}
	if (op == 0x8b)
		ok = try_imm(s, t, 0xc7, 0, rex);
	else if (op == 0x85)
		ok = try_imm(s, t, 0xf7, 0, rex);
	else if ((op & 0xc7) == 0x03 && op < 0x40)
		ok = try_imm(s, t, 0x81, (op >> 3) & 7, rex);
	if (!ok)
		restore(s, sv);
	return ok;
}

/* GOTPCREL, GOTPCRELX, REX_GOTPCRELX: the slot, or a relaxed form. */
static enum hp_replay_result replay_got(const struct hp_replay_ops *ops,
					const struct hp_replay_site *s,
					const struct hp_rtarget *t)
{
	const uint8_t op = exp_at(s, -2);
	const uint64_t rel = t->S + (uint64_t)s->A - s->P;
	struct saved sv;

	if (agree(s, -2, 0) && ops->got_slot(ops->ctx, t, implied_pc(s, 0))) {
		take(s, 0, 4);
		return HP_REPLAY_MATCH;
	}
	if (!t->defined)
		return HP_REPLAY_DIFFER;
	save(s, &sv);
	if (op == 0x8b) { /* mov -> lea, for all three */
		put8(s, -2, 0x8d);
		put32(s, 0, rel);
		if (agree(s, -2, 4))
			return HP_REPLAY_MATCH;
		restore(s, &sv);
	}
	/* ld relaxes a plain GOTPCREL no further. */
	if (s->type != R_X86_64_GOTPCREL && relaxed_gotpcrelx(s, t, &sv))
		return HP_REPLAY_MATCH;
	if (op == 0x8b) { /* the form a PIE would have */
		put8(s, -2, 0x8d);
		put32(s, 0, rel);
	}
	return HP_REPLAY_DIFFER;
}

/* Where an executable's thread-local lies from the thread pointer. */
static uint64_t tpoff(const struct hp_replay_ops *ops,
		      const struct hp_rtarget *t)
{
	return t->S - (uint64_t)ops->tls_offset;
}

/*
 * R_X86_64_GOTTPOFF: the TPOFF64 slot, or in an executable "mov $tpoff"
 * for a mov, and "lea tpoff(%reg)" (or "add $tpoff" for %rsp and %r12)
 * for an add, as ld relaxes initial-exec to local-exec.
 */
static enum hp_replay_result replay_gottpoff(const struct hp_replay_ops *ops,
					     const struct hp_replay_site *s,
					     const struct hp_rtarget *t)
{
	const uint8_t op = exp_at(s, -2), rex = exp_at(s, -3);
	const uint8_t reg = (exp_at(s, -1) >> 3) & 7;
	struct saved sv;

	if (agree(s, -2, 0) &&
	    ops->tls_slot(ops->ctx, t, R_X86_64_TPOFF64, implied_pc(s, 0))) {
		take(s, 0, 4);
		return HP_REPLAY_MATCH;
	}
	if (!ops->is_exec || !t->defined)
		return HP_REPLAY_DIFFER;
	save(s, &sv);
	if (op == 0x8b) {
		put8(s, -3, rex == 0x4c ? 0x49 : rex);
		put8(s, -2, 0xc7);
		put8(s, -1, (uint8_t)(0xc0 | reg));
	} else if (op == 0x03 && reg == 4) {
		put8(s, -3, rex == 0x4c ? 0x49 : rex);
		put8(s, -2, 0x81);
		put8(s, -1, (uint8_t)(0xc0 | reg));
	} else if (op == 0x03) {
		put8(s, -3, rex == 0x4c ? 0x4d : rex);
		put8(s, -2, 0x8d);
		put8(s, -1, (uint8_t)(0x80 | reg | (reg << 3)));
	}
	put32(s, 0, tpoff(ops, t));
	if (agree(s, -3, 4))
		return HP_REPLAY_MATCH;
	return HP_REPLAY_DIFFER;
}

/* "mov %fs:0, %rax": how ld's relaxed general- and local-dynamic begin. */
static const uint8_t fs_rax[] = { 0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0 };

/*
 * R_X86_64_TLSGD, TLSLD: the GOT pair, or in an executable the whole
 * sequence (lea; call __tls_get_addr) rewritten as ld rewrites it; *@end is
 * then where the sequence ends, and the call's relocation is not replayed.
 */
static enum hp_replay_result replay_tlsdyn(const struct hp_replay_ops *ops,
					   const struct hp_replay_site *s,
					   const struct hp_rtarget *t,
					   size_t *end)
{
	const bool gd = s->type == R_X86_64_TLSGD;
	const struct hp_rtarget module = { 0 };
	struct saved sv;

	if (agree(s, gd ? -4 : -3, 0) &&
	    ops->tls_slot(ops->ctx, gd ? t : &module, R_X86_64_DTPMOD64,
			  implied_pc(s, 0))) {
		take(s, 0, 4);
		return HP_REPLAY_MATCH;
	}
	if (!ops->is_exec)
		return HP_REPLAY_DIFFER;
	save(s, &sv);
	if (!gd) { /* LD -> LE: data16 x3; mov %fs:0, %rax */
		for (long i = -3; i < 0; i++)
			put8(s, i, 0x66);
		for (size_t i = 0; i < sizeof(fs_rax); i++)
			put8(s, (long)i, fs_rax[i]);
		*end = s->off + 9;
		return agree(s, -3, 9) ? HP_REPLAY_MATCH : HP_REPLAY_DIFFER;
	}
	*end = s->off + 12;
	for (size_t i = 0; i < sizeof(fs_rax); i++)
		put8(s, (long)i - 4, fs_rax[i]);
	/* GD -> LE: lea tpoff(%rax), %rax */
	put8(s, 5, 0x48);
	put8(s, 6, 0x8d);
	put8(s, 7, 0x80);
	put32(s, 8, t->defined ? tpoff(ops, t) : 0);
	if (t->defined && agree(s, -4, 12))
		return HP_REPLAY_MATCH;
	/* GD -> IE: add slot(%rip), %rax */
	put8(s, 6, 0x03);
	put8(s, 7, 0x05);
	if (agree(s, -4, 8) &&
	    ops->tls_slot(ops->ctx, t, R_X86_64_TPOFF64,
			  implied_pc(s, 8) + (uint64_t)s->A + 4)) {
		take(s, 8, 12);
		return HP_REPLAY_MATCH;
	}
	restore(s, &sv);
	*end = 0;
	return HP_REPLAY_DIFFER;
}

/*
 * Replay one relocation at @s against @t: write into s->exp the bytes the
 * linker writes for it, in the allowed form the binary has.
 */
enum hp_replay_result hp_replay(const struct hp_replay_ops *ops,
				const struct hp_replay_site *s,
				const struct hp_rtarget *t, size_t *end)
{
	const uint64_t A = (uint64_t)s->A;

	*end = 0;
	switch (s->type) {
	case R_X86_64_NONE:
		return HP_REPLAY_MATCH;
	case R_X86_64_PC32:
	case R_X86_64_PLT32:
		return replay_pc(ops, s, t);
	case R_X86_64_32:
	case R_X86_64_32S:
		if (t->weak && !t->defined)
			return replay_value(s, true, A, 4);
		return replay_value(s, t->defined, t->S + A, 4);
	case R_X86_64_64:
		return replay_value(s, t->defined, t->S + A, 8);
	case R_X86_64_PC64:
		return replay_value(s, t->defined, t->S + A - s->P, 8);
	case R_X86_64_SIZE32:
		return replay_value(s, t->defined, t->size + A, 4);
	case R_X86_64_SIZE64:
		return replay_value(s, t->defined, t->size + A, 8);
	case R_X86_64_GOTPC32:
		return replay_value(s, ops->got, ops->got + A - s->P, 4);
	case R_X86_64_GOTPC64:
		return replay_value(s, ops->got, ops->got + A - s->P, 8);
	case R_X86_64_GOTOFF64:
		return replay_value(s, ops->got && t->defined,
				    t->S + A - ops->got, 8);
	case R_X86_64_GOTPCREL:
	case R_X86_64_GOTPCRELX:
	case R_X86_64_REX_GOTPCRELX:
		return replay_got(ops, s, t);
	case R_X86_64_TPOFF32:
		return replay_value(s, ops->is_exec && t->defined,
				    tpoff(ops, t) + A, 4);
	case R_X86_64_GOTTPOFF:
		return replay_gottpoff(ops, s, t);
	case R_X86_64_TLSGD:
	case R_X86_64_TLSLD:
		return replay_tlsdyn(ops, s, t, end);
	case R_X86_64_DTPOFF32:
		/* an executable's local-dynamic became local-exec */
		if (ops->is_exec && t->defined &&
		    replay_value(s, true, tpoff(ops, t) + A, 4) ==
			    HP_REPLAY_MATCH)
			return HP_REPLAY_MATCH;
		return replay_value(s, t->defined, t->S + A, 4);
	default:
		return HP_REPLAY_UNKNOWN;
	}
}

bool hp_replay_take(const struct hp_replay_site *s, size_t width)
{
	if (!fits(s, 0, (long)width))
		return false;
	take(s, 0, (long)width);
	return true;
}
