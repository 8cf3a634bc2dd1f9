/*
 * Proof that --binary was linked from --old: every function of an old object
 * linked into the binary must be there byte for byte once each relocation is
 * replayed against the binary's addresses. Only what the linker rewrites may
 * differ, and only as GNU ld rewrites it: GOT loads relaxed to lea or to an
 * immediate, indirect calls and jumps made direct, calls through a PLT stub,
 * and thread-local accesses relaxed to a cheaper model.
 *
 * Passes, for each old object:
 * 1. Is it linked into the binary? Its source file has a group of locals in
 *    the binary's symbol table (the STT_FILE symbol), or, for an object with
 *    no locals, the binary defines every global function it defines.
 *    Example: redis-cli.o is skipped against redis-server.
 * 2. Where is each text section? An input section lands in the binary
 *    whole, so every function in it sits at one base plus its value; a
 *    function that does not is a mismatch. Anonymous data (jump tables,
 *    .rodata without -fdata-sections) gets its base from the first reference
 *    to it, and its bytes are then compared too.
 * 3. Replay: a copy of the section's bytes gets each relocated field the
 *    value the linker wrote for it (S + A - P and so on, per type), in
 *    whichever of its allowed forms the binary has; then each function is
 *    compared with the binary's bytes. References the assembler resolved
 *    inside one section (no -ffunction-sections) keep their distance, so
 *    those bytes compare as they are.
 */
#include "differ/differ_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <Zydis/Zydis.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Mismatches listed one by one; the rest are counted in one line. */
#define HP_PROOF_MAX_REPORTED 10

/* A relocation's target as the binary places it. */
struct ptarget {
	const char *name; /* for GOT and PLT slots; NULL: file-local */
	uint64_t S;	  /* address (TLS: offset in the TLS block) */
	uint64_t size;	  /* the symbol's size, for R_X86_64_SIZE* */
	bool defined;	  /* S and size are known */
	bool weak;	  /* undefined weak: may be 0 */
};

/* What replaying needs from the binary; unit tests give their own. */
struct proof_ops {
	/* @addr is a GOT slot that holds @t's address at run time. */
	bool (*got_slot)(const void *ctx, const struct ptarget *t,
			 uint64_t addr);
	/* @addr is a PLT stub that jumps through such a slot. */
	bool (*plt_stub)(const void *ctx, const struct ptarget *t,
			 uint64_t addr);
	/* @addr is @t's GOT entry of @type (DTPMOD64 pair, TPOFF64). */
	bool (*tls_slot)(const void *ctx, const struct ptarget *t,
			 uint32_t type, uint64_t addr);
	const void *ctx;
	bool is_exec;
	int64_t tls_offset; /* as struct hp_binary's */
	uint64_t got;	    /* _GLOBAL_OFFSET_TABLE_, or 0 */
};

/*
 * One relocated field: @exp holds the object's bytes and receives the
 * linker's, @act the binary's; both @len long, the field at @off, which
 * the binary maps at @P.
 */
struct site {
	uint8_t *exp;
	const uint8_t *act;
	size_t len;
	size_t off;
	uint64_t P;
	uint32_t type;
	int64_t A;
};

enum replay_result {
	REPLAY_MATCH,	/* an allowed form is in the binary */
	REPLAY_DIFFER,	/* none is: @exp holds the preferred form */
	REPLAY_UNKNOWN, /* a relocation type the proof cannot check */
};

/* Bytes around a field that a candidate form may rewrite. */
struct saved {
	size_t lo, hi;
	uint8_t b[20];
};

static void save(const struct site *s, struct saved *sv)
{
	sv->lo = s->off >= 4 ? s->off - 4 : 0;
	sv->hi = s->off + 12 < s->len ? s->off + 12 : s->len;
	memcpy(sv->b, s->exp + sv->lo, sv->hi - sv->lo);
}

static void restore(const struct site *s, const struct saved *sv)
{
	memcpy(s->exp + sv->lo, sv->b, sv->hi - sv->lo);
}

/* Whether @exp and @act agree over [off+lo, off+hi). */
static bool agree(const struct site *s, long lo, long hi)
{
	const long a = (long)s->off + lo, b = (long)s->off + hi;

	return a >= 0 && b <= (long)s->len &&
	       !memcmp(s->exp + a, s->act + a, (size_t)(b - a));
}

static bool fits(const struct site *s, long lo, long hi)
{
	return (long)s->off + lo >= 0 && (long)s->off + hi <= (long)s->len;
}

static void put8(const struct site *s, long at, uint8_t v)
{
	if (fits(s, at, at + 1))
		s->exp[(long)s->off + at] = v;
}

static void put32(const struct site *s, long at, uint64_t v)
{
	if (fits(s, at, at + 4))
		hp_put_le32(s->exp + (long)s->off + at, (uint32_t)v);
}

static uint8_t exp_at(const struct site *s, long at)
{
	return fits(s, at, at + 1) ? s->exp[(long)s->off + at] : 0;
}

/* The address a PC-relative field of the binary points at, less A. */
static uint64_t implied_pc(const struct site *s, long at)
{
	if (!fits(s, at, at + 4))
		return 0;
	return s->P + (uint64_t)at +
	       (uint64_t)(int64_t)(int32_t)hp_get_le32(s->act + s->off + at) -
	       (uint64_t)s->A;
}

/* Take the binary's field as it is (its target was checked otherwise). */
static void take(const struct site *s, long lo, long hi)
{
	if (fits(s, lo, hi))
		memcpy(s->exp + (long)s->off + lo, s->act + (long)s->off + lo,
		       (size_t)(hi - lo));
}

/* R_X86_64_PC32 and PLT32: the target itself, or its PLT stub. */
static enum replay_result replay_pc(const struct proof_ops *ops,
				    const struct site *s,
				    const struct ptarget *t)
{
	struct saved sv;

	save(s, &sv);
	if (t->defined) {
		put32(s, 0, t->S + (uint64_t)s->A - s->P);
		if (agree(s, 0, 4))
			return REPLAY_MATCH;
		restore(s, &sv);
	}
	if (t->name && ops->plt_stub(ops->ctx, t, implied_pc(s, 0))) {
		take(s, 0, 4);
		return REPLAY_MATCH;
	}
	if (t->weak && !t->defined) {
		put32(s, 0, (uint64_t)s->A - s->P);
		if (agree(s, 0, 4))
			return REPLAY_MATCH;
		restore(s, &sv);
	}
	if (t->defined)
		put32(s, 0, t->S + (uint64_t)s->A - s->P);
	return REPLAY_DIFFER;
}

/* A field of @width bytes that holds @v. */
static enum replay_result replay_value(const struct site *s, bool known,
				       uint64_t v, size_t width)
{
	if (!known || !fits(s, 0, (long)width))
		return REPLAY_DIFFER;
	if (width == 8)
		hp_put_le64(s->exp + s->off, v);
	else
		put32(s, 0, v);
	return agree(s, 0, (long)width) ? REPLAY_MATCH : REPLAY_DIFFER;
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
static bool try_imm(const struct site *s, const struct ptarget *t,
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
static bool relaxed_gotpcrelx(const struct site *s, const struct ptarget *t,
			      const struct saved *sv)
{
	const uint8_t op = exp_at(s, -2), modrm = exp_at(s, -1);
	const uint64_t rel = t->S + (uint64_t)s->A - s->P;
	const bool rex = s->type == R_X86_64_REX_GOTPCRELX;
	bool ok = false;

	if (op == 0xff && (modrm == 0x15 || modrm == 0x25)) {
		/* call -> addr32 call, nop call, or call; nop. jmp -> jmp; nop */
		static const uint8_t prefixes[] = { 0x67, 0x90 };

		for (size_t i = 0; modrm == 0x15 && i < 2; i++) {
			put8(s, -2, prefixes[i]);
			put8(s, -1, 0xe8);
			put32(s, 0, rel);
			if (agree(s, -2, 4))
				return true;
			restore(s, sv);
		}
		put8(s, -2, modrm == 0x15 ? 0xe8 : 0xe9);
		put32(s, -1, rel + 1);
		put8(s, 3, 0x90);
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
static enum replay_result replay_got(const struct proof_ops *ops,
				     const struct site *s,
				     const struct ptarget *t)
{
	const uint8_t op = exp_at(s, -2);
	const uint64_t rel = t->S + (uint64_t)s->A - s->P;
	struct saved sv;

	if (agree(s, -2, 0) && ops->got_slot(ops->ctx, t, implied_pc(s, 0))) {
		take(s, 0, 4);
		return REPLAY_MATCH;
	}
	if (!t->defined)
		return REPLAY_DIFFER;
	save(s, &sv);
	if (op == 0x8b) { /* mov -> lea, for all three */
		put8(s, -2, 0x8d);
		put32(s, 0, rel);
		if (agree(s, -2, 4))
			return REPLAY_MATCH;
		restore(s, &sv);
	}
	/* ld relaxes a plain GOTPCREL no further. */
	if (s->type != R_X86_64_GOTPCREL && relaxed_gotpcrelx(s, t, &sv))
		return REPLAY_MATCH;
	if (op == 0x8b) { /* the form a PIE would have */
		put8(s, -2, 0x8d);
		put32(s, 0, rel);
	}
	return REPLAY_DIFFER;
}

/* Where an executable's thread-local lies from the thread pointer. */
static uint64_t tpoff(const struct proof_ops *ops, const struct ptarget *t)
{
	return t->S - (uint64_t)ops->tls_offset;
}

/*
 * R_X86_64_GOTTPOFF: the TPOFF64 slot, or in an executable "mov $tpoff"
 * for a mov, and "lea tpoff(%reg)" (or "add $tpoff" for %rsp and %r12)
 * for an add, as ld relaxes initial-exec to local-exec.
 */
static enum replay_result replay_gottpoff(const struct proof_ops *ops,
					  const struct site *s,
					  const struct ptarget *t)
{
	const uint8_t op = exp_at(s, -2), rex = exp_at(s, -3);
	const uint8_t reg = (exp_at(s, -1) >> 3) & 7;
	struct saved sv;

	if (agree(s, -2, 0) &&
	    ops->tls_slot(ops->ctx, t, R_X86_64_TPOFF64, implied_pc(s, 0))) {
		take(s, 0, 4);
		return REPLAY_MATCH;
	}
	if (!ops->is_exec || !t->defined)
		return REPLAY_DIFFER;
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
		return REPLAY_MATCH;
	return REPLAY_DIFFER;
}

/* "mov %fs:0, %rax": how ld's relaxed general- and local-dynamic begin. */
static const uint8_t fs_rax[] = { 0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0 };

/*
 * R_X86_64_TLSGD, TLSLD: the GOT pair, or in an executable the whole
 * sequence (lea; call __tls_get_addr) rewritten as ld rewrites it; *@end is
 * then where the sequence ends, and the call's relocation is not replayed.
 */
static enum replay_result replay_tlsdyn(const struct proof_ops *ops,
					const struct site *s,
					const struct ptarget *t, size_t *end)
{
	const bool gd = s->type == R_X86_64_TLSGD;
	const struct ptarget module = { 0 };
	struct saved sv;

	if (agree(s, gd ? -4 : -3, 0) &&
	    ops->tls_slot(ops->ctx, gd ? t : &module, R_X86_64_DTPMOD64,
			  implied_pc(s, 0))) {
		take(s, 0, 4);
		return REPLAY_MATCH;
	}
	if (!ops->is_exec)
		return REPLAY_DIFFER;
	save(s, &sv);
	if (!gd) { /* LD -> LE: data16 x3; mov %fs:0, %rax */
		for (long i = -3; i < 0; i++)
			put8(s, i, 0x66);
		for (size_t i = 0; i < sizeof(fs_rax); i++)
			put8(s, (long)i, fs_rax[i]);
		*end = s->off + 9;
		return agree(s, -3, 9) ? REPLAY_MATCH : REPLAY_DIFFER;
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
		return REPLAY_MATCH;
	/* GD -> IE: add slot(%rip), %rax */
	put8(s, 6, 0x03);
	put8(s, 7, 0x05);
	if (agree(s, -4, 8) &&
	    ops->tls_slot(ops->ctx, t, R_X86_64_TPOFF64,
			  implied_pc(s, 8) + (uint64_t)s->A + 4)) {
		take(s, 8, 12);
		return REPLAY_MATCH;
	}
	restore(s, &sv);
	*end = 0;
	return REPLAY_DIFFER;
}

/*
 * Replay one relocation at @s against @t: write into s->exp the bytes the
 * linker writes for it, in the allowed form the binary has.
 */
static enum replay_result replay(const struct proof_ops *ops,
				 const struct site *s, const struct ptarget *t,
				 size_t *end)
{
	const uint64_t A = (uint64_t)s->A;

	*end = 0;
	switch (s->type) {
	case R_X86_64_NONE:
		return REPLAY_MATCH;
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
		    replay_value(s, true, tpoff(ops, t) + A, 4) == REPLAY_MATCH)
			return REPLAY_MATCH;
		return replay_value(s, t->defined, t->S + A, 4);
	default:
		return REPLAY_UNKNOWN;
	}
}

/* ---- the binary side ---- */

struct bsec {
	uint64_t addr, size;
	const uint8_t *data; /* NULL: SHT_NOBITS */
	const char *name;
};

/* Where an object section landed in the binary. */
struct sec_base {
	uint64_t base;
	bool known;
	bool tried;		  /* base_of() looked at its symbols */
	bool derived;		  /* from a reference: its bytes to check */
	const struct hp_osym *by; /* the function whose reference it was */
	uint64_t by_off;	  /* offset of that reference in it */
};

/* The first failed relocation in a function, for the message. */
struct failed {
	const struct hp_orel *r;
	const char *why;
};

struct prover {
	const struct hp_binary *bin;
	struct hp_diff_report *r;
	struct proof_ops ops;
	ZydisDecoder dec;
	struct bsec *secs;
	size_t nr_secs;
	const char **files; /* STT_FILE names of the binary, sorted */
	size_t nr_files;
	struct hp_obj *o;	/* the object being proved */
	struct sec_base *bases; /* per section of @o */
	bool *ok;		/* per symbol of @o: a function that matched */
	/* @o's symbols defined in a section, by section then value; the
	 * symbols of section i are by_sec[first[i]] on, count[i] of them. */
	const struct hp_osym **by_sec;
	size_t *first, *count;
	uint32_t nr_funcs, nr_matched, nr_differ;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const struct bsec *bsec_at(const struct prover *p, uint64_t addr,
				  size_t len)
{
	for (size_t i = 0; i < p->nr_secs; i++)
		if (addr >= p->secs[i].addr &&
		    addr + len <= p->secs[i].addr + p->secs[i].size)
			return &p->secs[i];
	return NULL;
}

/* Bytes at @addr, or NULL when no section with contents holds them. */
static const uint8_t *bytes_at(const struct prover *p, uint64_t addr,
			       size_t len)
{
	const struct bsec *s = bsec_at(p, addr, len);

	return s && s->data ? s->data + (addr - s->addr) : NULL;
}

static bool slot_named(const struct hp_binary *b, const char *name,
		       uint64_t addr)
{
	const size_t len = name ? strcspn(name, "@") : 0;

	for (size_t i = 0; name && i < b->nr_slots; i++)
		if (b->slots[i].slot == addr &&
		    strlen(b->slots[i].name) == len &&
		    !strncmp(b->slots[i].name, name, len))
			return true;
	return false;
}

/* Whether @addr is a word of a GOT section that holds @value. */
static bool got_holds(const struct prover *p, uint64_t addr, uint64_t value)
{
	const struct bsec *s = bsec_at(p, addr, 8);

	return s && s->data && !strncmp(s->name, ".got", 4) &&
	       hp_get_le64(s->data + (addr - s->addr)) == value;
}

static bool got_slot(const void *ctx, const struct ptarget *t, uint64_t addr)
{
	const struct prover *p = ctx;
	const struct bsec *s = bsec_at(p, addr, 8);

	if (!s || strncmp(s->name, ".got", 4))
		return false;
	/* Bound by name at run time, or filled by the linker itself (a
	 * RELATIVE slot in a PIE holds the link-time address too). */
	return slot_named(p->bin, t->name, addr) ||
	       (t->defined && got_holds(p, addr, t->S));
}

/* "[endbr64] [bnd] jmp *slot(%rip)": .plt, .plt.sec and .plt.got stubs. */
static bool plt_stub(const void *ctx, const struct ptarget *t, uint64_t addr)
{
	const struct prover *p = ctx;
	const struct bsec *s = bsec_at(p, addr, 1);
	const uint8_t *b = bytes_at(p, addr, 1);
	size_t i = 0, n;

	if (!s || !b || strncmp(s->name, ".plt", 4))
		return false;
	/* .plt.got stubs are 8 bytes: the last one ends its section. */
	n = s->addr + s->size - addr;
	if (n >= 4 && !memcmp(b, "\xf3\x0f\x1e\xfa", 4))
		i = 4;
	if (i < n && b[i] == 0xf2)
		i++;
	if (i + 6 > n || b[i] != 0xff || b[i + 1] != 0x25)
		return false;
	return got_slot(
		ctx, t,
		addr + i + 6 +
			(uint64_t)(int64_t)(int32_t)hp_get_le32(b + i + 2));
}

static bool tls_slot(const void *ctx, const struct ptarget *t, uint32_t type,
		     uint64_t addr)
{
	const struct prover *p = ctx;

	if (addr && hp_binary_find_tls(p->bin, type, t->name, t->S) == addr)
		return true;
	/* An executable's initial-exec slot the linker filled itself. */
	return type == R_X86_64_TPOFF64 && p->ops.is_exec && t->defined &&
	       got_holds(p, addr, tpoff(&p->ops, t));
}

static int prover_init(struct prover *p, const struct hp_binary *bin,
		       struct hp_diff_report *r)
{
	size_t shnum = 0, shstrndx = 0;
	Elf_Scn *scn = NULL;
	bool ambiguous = false;
	const struct hp_bsym *got = NULL;

	*p = (struct prover){
		.bin = bin,
		.r = r,
		.ops = { .got_slot = got_slot,
			 .plt_stub = plt_stub,
			 .tls_slot = tls_slot,
			 .ctx = p,
			 .is_exec = bin->is_exec,
			 .tls_offset = bin->tls_offset },
	};
	got = hp_binary_find_sym(bin, "_GLOBAL_OFFSET_TABLE_", NULL, true,
				 &ambiguous);
	if (!got)
		got = hp_binary_find_sym(bin, "_GLOBAL_OFFSET_TABLE_", NULL,
					 false, &ambiguous);
	p->ops.got = got ? got->value : 0;
	if (!ZYAN_SUCCESS(ZydisDecoderInit(&p->dec, ZYDIS_MACHINE_MODE_LONG_64,
					   ZYDIS_STACK_WIDTH_64)))
		return hp_error(-ENOSYS, "cannot set up the x86-64 decoder");
	if (elf_getshdrnum(bin->elf, &shnum) ||
	    elf_getshdrstrndx(bin->elf, &shstrndx))
		return hp_error(-HP_E_BADELF, "'%s': cannot read sections: %s",
				bin->path, elf_errmsg(-1));
	p->secs = calloc(shnum ? shnum : 1, sizeof(*p->secs));
	p->files = calloc(bin->nr_syms ? bin->nr_syms : 1, sizeof(*p->files));
	if (!p->secs || !p->files)
		return -ENOMEM;
	while ((scn = elf_nextscn(bin->elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d = NULL;
		const char *name = NULL;

		if (!gelf_getshdr(scn, &sh) || !(sh.sh_flags & SHF_ALLOC))
			continue;
		name = elf_strptr(bin->elf, shstrndx, sh.sh_name);
		d = sh.sh_type == SHT_NOBITS ? NULL : elf_getdata(scn, NULL);
		p->secs[p->nr_secs++] = (struct bsec){
			.addr = sh.sh_addr,
			.size = sh.sh_size,
			.data = d && d->d_size == sh.sh_size ? d->d_buf : NULL,
			.name = name ? name : "",
		};
	}
	for (size_t i = 0; i < bin->nr_syms; i++)
		if (bin->syms[i].file && *bin->syms[i].file)
			p->files[p->nr_files++] = bin->syms[i].file;
	if (p->nr_files)
		qsort(p->files, p->nr_files, sizeof(*p->files), cmp_str);
	return 0;
}

static void prover_release(struct prover *p)
{
	free(p->secs);
	free(p->files);
}

/* ---- the object side ---- */

static int cmp_bsym_name(const void *key, const void *elem)
{
	return strcmp(key, ((const struct hp_bsym *)elem)->name);
}

/*
 * The binary's symbol for @s of the object being proved: a global by name,
 * a local by name and source file. Two sources of one name ("sds.c" of a
 * program and of a library it embeds) may both define a local: then the
 * one at @at, if not 0.
 */
static const struct hp_bsym *find_bsym(const struct prover *p,
				       const struct hp_osym *s, uint64_t at)
{
	const struct hp_binary *b = p->bin;
	const struct hp_bsym *hit = NULL, *found = NULL;
	size_t len = strcspn(s->name, "@"), nr = 0;
	char name[256];
	bool ambiguous = false;

	if (!*s->name || s->type == STT_SECTION || s->type == STT_FILE ||
	    len >= sizeof(name))
		return NULL;
	/* "memcpy@GLIBC_2.14" from .symver: the binary strips versions. */
	memcpy(name, s->name, len);
	name[len] = 0;
	if (s->bind != STB_LOCAL)
		return hp_binary_find_sym(b, name, NULL, false, &ambiguous);
	hit = b->nr_syms ? bsearch(name, b->syms, b->nr_syms, sizeof(*b->syms),
				   cmp_bsym_name)
			 : NULL;
	while (hit && hit > b->syms && !strcmp(hit[-1].name, name))
		hit--;
	for (; hit && hit < b->syms + b->nr_syms && !strcmp(hit->name, name);
	     hit++) {
		if (hit->bind != STB_LOCAL || !hit->file || !p->o->file_sym ||
		    strcmp(hit->file, p->o->file_sym))
			continue;
		if (at && hit->value == at)
			return hit;
		if (!found || found->value != hit->value)
			nr++;
		found = hit;
	}
	return nr == 1 ? found : NULL;
}

/* Where section @sec landed, from the named symbols in it (pass 2). */
static struct sec_base *base_of(struct prover *p, const struct hp_osec *sec)
{
	struct sec_base *b = &p->bases[sec->index];

	for (size_t i = 0; i < p->count[sec->index] && !b->known && !b->tried;
	     i++) {
		const struct hp_osym *s = p->by_sec[p->first[sec->index] + i];
		const struct hp_bsym *bs = NULL;

		if (!(s->type == STT_FUNC || s->type == STT_OBJECT ||
		      s->type == STT_TLS))
			continue;
		/* A global may be another object's definition (a weak one
		 * overridden); only a local is surely this section's. */
		bs = find_bsym(p, s, 0);
		if (!bs || (s->bind != STB_LOCAL && s->bind != bs->bind))
			continue;
		b->base = bs->value - s->st.st_value;
		b->known = true;
	}
	b->tried = true;
	return b;
}

static void target_of(struct prover *p, const struct hp_orel *r,
		      struct ptarget *t)
{
	const struct hp_osym *s = r->sym;
	const struct sec_base *b = s->sec ? base_of(p, s->sec) : NULL;
	const struct hp_bsym *bs =
		find_bsym(p, s, b && b->known ? b->base + s->st.st_value : 0);

	*t = (struct ptarget){
		.name = s->bind == STB_LOCAL ? NULL : s->name,
		.weak = !s->sec && s->bind == STB_WEAK,
	};
	if (bs && (bs->value || bs->type == STT_TLS || s->sec)) {
		t->S = bs->value;
		t->size = bs->size;
		t->defined = true;
		return;
	}
	if (b && b->known) {
		t->S = b->base + s->st.st_value;
		t->size = s->st.st_size;
		t->defined = true;
	}
}

static bool is_plain(uint32_t type)
{
	return type == R_X86_64_PC32 || type == R_X86_64_PLT32 ||
	       type == R_X86_64_32 || type == R_X86_64_32S ||
	       type == R_X86_64_64 || type == R_X86_64_PC64;
}

/* What a plain relocation's field in the binary says S + A is. */
static uint64_t implied_value(const struct site *s)
{
	const uint8_t *f = s->act + s->off;

	switch (s->type) {
	case R_X86_64_PC32:
	case R_X86_64_PLT32:
		return s->P + (uint64_t)(int64_t)(int32_t)hp_get_le32(f);
	case R_X86_64_32:
		return hp_get_le32(f);
	case R_X86_64_32S:
		return (uint64_t)(int64_t)(int32_t)hp_get_le32(f);
	case R_X86_64_PC64:
		return s->P + hp_get_le64(f);
	default:
		return hp_get_le64(f);
	}
}

static size_t field_width(uint32_t type)
{
	return type == R_X86_64_64 || type == R_X86_64_PC64 ||
			       type == R_X86_64_SIZE64 ||
			       type == R_X86_64_GOTOFF64 ||
			       type == R_X86_64_GOTPC64
		       ? 8
		       : 4;
}

/*
 * A reference into a merged section (strings, constants): ld moved the
 * entity, so check that what the field points at is the same entity.
 */
static bool same_entity(const struct prover *p, const struct site *s,
			const struct hp_orel *r)
{
	const struct hp_osec *sec = r->sym->sec;
	const bool label = r->sym->type != STT_SECTION;
	uint64_t off = r->sym->st.st_value + (label ? 0 : (uint64_t)r->addend);
	uint64_t at = implied_value(s) - (label ? (uint64_t)r->addend : 0);
	size_t n = 0;
	const uint8_t *b = NULL;

	if (!sec->data || off >= sec->sh.sh_size)
		return false;
	if (sec->sh.sh_flags & SHF_STRINGS) {
		const uint8_t *nul =
			memchr(sec->data + off, 0, sec->sh.sh_size - off);

		n = nul ? (size_t)(nul - sec->data - off) + 1
			: sec->sh.sh_size - off;
	} else {
		const uint64_t ent =
			sec->sh.sh_entsize ? sec->sh.sh_entsize : 1;

		at -= off % ent;
		off -= off % ent;
		n = (size_t)(ent < sec->sh.sh_size - off
				     ? ent
				     : sec->sh.sh_size - off);
	}
	b = bytes_at(p, at, n);
	return b && !memcmp(b, sec->data + off, n);
}

/* Replay one relocation of a text section; *@why says what failed. */
static enum replay_result replay_reloc(struct prover *p, const struct site *s,
				       const struct hp_orel *r,
				       const struct hp_osym *fn, size_t *end,
				       const char **why)
{
	const struct hp_osec *ts = r->sym->sec;
	struct ptarget t;
	enum replay_result res;

	*why = NULL;
	if (ts && (ts->sh.sh_flags & SHF_MERGE) && is_plain(r->type) &&
	    fits(s, 0, (long)field_width(r->type))) {
		if (!same_entity(p, s, r)) {
			*why = "the data it refers to differs";
			return REPLAY_DIFFER;
		}
		take(s, 0, (long)field_width(r->type));
		return REPLAY_MATCH;
	}
	target_of(p, r, &t);
	if (!t.defined && ts && is_plain(r->type) &&
	    fits(s, 0, (long)field_width(r->type))) {
		/* Anonymous data: the first reference places it. */
		struct sec_base *b = &p->bases[ts->index];

		*b = (struct sec_base){
			.base = implied_value(s) - (uint64_t)r->addend -
				r->sym->st.st_value,
			.known = true,
			.derived = true,
			.by = fn,
			.by_off = r->offset - fn->st.st_value,
		};
		target_of(p, r, &t);
	}
	res = replay(&p->ops, s, &t, end);
	if (res == REPLAY_UNKNOWN)
		*why = "a type the proof cannot check";
	else if (res == REPLAY_DIFFER)
		*why = t.defined || t.weak ? "the field differs"
					   : "its target is not in the binary";
	return res;
}

static int report(struct prover *p, const struct hp_osym *fn, size_t off,
		  const char *detail)
{
	p->nr_differ++;
	if (p->nr_differ > HP_PROOF_MAX_REPORTED)
		return 0;
	return hp_report_refuse(
		p->r, fn->name, p->o->relpath, -HP_E_FOREIGN_BINARY,
		"give --binary the binary linked from exactly the --old "
		"objects, or rebuild the objects from its sources and flags",
		"'%s'+0x%zx differs in '%s' (%s): built with other flags, "
		"or from other sources",
		fn->name, off, p->bin->path, detail);
}

static int cmp_reloc(const void *a, const void *b)
{
	const struct hp_orel *x = *(const struct hp_orel *const *)a;
	const struct hp_orel *y = *(const struct hp_orel *const *)b;

	return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Index in @fns (sorted by value) of the function covering @off, or @n. */
static size_t func_at(const struct hp_osym *const *fns, size_t n, uint64_t off)
{
	size_t lo = 0, hi = n;

	while (lo < hi) { /* the last function starting at or before @off */
		const size_t mid = lo + (hi - lo) / 2;

		if (fns[mid]->st.st_value <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (lo--) /* an alias may be shorter than the one it shadows */
		if (off < fns[lo]->st.st_value + fns[lo]->st.st_size)
			return lo;
		else if (!lo ||
			 fns[lo - 1]->st.st_value != fns[lo]->st.st_value)
			break;
	return n;
}

/*
 * Whether @s is one of the object's functions to prove: sized, and not a
 * weak definition the binary took from elsewhere. Sets *@bs.
 */
static bool provable(struct prover *p, const struct hp_osym *s,
		     const struct hp_bsym **bs)
{
	const struct sec_base *b = NULL;

	*bs = NULL;
	if (!hp_osym_is_func(s) || !s->st.st_size)
		return false;
	b = base_of(p, s->sec);
	*bs = find_bsym(p, s, b->known ? b->base + s->st.st_value : 0);
	return !(*bs && s->bind == STB_WEAK && (*bs)->bind != STB_WEAK);
}

struct text {
	const struct hp_osec *sec;
	const struct hp_osym **fns;
	size_t nr_fns;
	struct failed *failed; /* per function */
	uint8_t *exp;
	const uint8_t *act;
	struct hp_orel **rels; /* the section's, by offset */
	size_t nr_rels;
};

/*
 * When the bytes differ: instruction by instruction. The objects of the
 * kpatch model are compiled with function sections, the release without;
 * where the release's assembler reached a nearby function or label with a
 * short jump, the object has a near one with a relocation (or the other
 * way round, as layouts differ), every instruction after it moves, and the
 * alignment nops before a loop grow or shrink. That is the same code. So a
 * function whose bytes differ is decoded (libzydis) on both sides and
 * compared instruction by instruction, nops left out: a branch by its
 * mnemonic and where it goes, an instruction with a relocation by the
 * replay above, anything else byte for byte.
 */
struct insn {
	uint64_t off; /* in its function */
	uint8_t len;
	bool nop;
	bool branch; /* a relative immediate (jmp, jcc, call) */
	int rel_at;  /* its field, or a RIP-relative displacement; -1 */
	int64_t rel; /* the field's value */
	ZydisMnemonic mnemonic;
};

static bool decode(const struct prover *p, const uint8_t *code, size_t len,
		   uint64_t off, struct insn *in)
{
	ZydisDecodedInstruction zi;

	if (off >= len || !ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(
				  &p->dec, NULL, code + off, len - off, &zi)))
		return false;
	*in = (struct insn){ .off = off,
			     .len = zi.length,
			     .nop = zi.mnemonic == ZYDIS_MNEMONIC_NOP,
			     .rel_at = -1,
			     .mnemonic = zi.mnemonic };
	for (int i = 0; i < 2; i++)
		if (zi.raw.imm[i].is_relative) {
			in->branch = true;
			in->rel_at = zi.raw.imm[i].offset;
			in->rel = zi.raw.imm[i].value.s;
		}
	if (in->rel_at < 0 && (zi.attributes & ZYDIS_ATTRIB_HAS_MODRM) &&
	    zi.raw.modrm.mod == 0 && zi.raw.modrm.rm == 5) {
		in->rel_at = zi.raw.disp.offset;
		in->rel = zi.raw.disp.value;
	}
	return true;
}

/* One function on both sides: the object's and the binary's code. */
struct side {
	const uint8_t *code;
	size_t len;
	bool *start; /* [len + 1]: an instruction (or the end) starts here */
};

struct walk {
	const struct hp_osym *fn;
	uint64_t baddr; /* the function in the binary */
	struct side o, b;
	uint64_t *po, *pb; /* paired instruction starts, ascending */
	size_t nr_pairs;
	uint64_t *jo, *jb; /* branches inside: targets to check at the end */
	size_t nr_jumps;
};

/* The first paired start at or after @off, which must start something. */
static bool paired(const struct side *s, const uint64_t *starts, size_t n,
		   uint64_t off, size_t *k)
{
	size_t lo = 0, hi = n;

	if (off > s->len || !s->start[off])
		return false;
	while (lo < hi) {
		const size_t mid = lo + (hi - lo) / 2;

		if (starts[mid] < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	*k = lo;
	return lo < n;
}

/* Where a relocated PC-relative field of @o points, or false. */
static bool reloc_target(struct prover *p, const struct hp_orel *r,
			 const struct insn *o, uint64_t field,
			 struct ptarget *t, uint64_t *to)
{
	target_of(p, r, t);
	*to = t->S + (uint64_t)r->addend + (o->off + o->len - field);
	return (r->type == R_X86_64_PC32 || r->type == R_X86_64_PLT32) &&
	       t->defined;
}

/* A branch: same mnemonic, and the same place, wherever that is. */
static bool same_branch(struct prover *p, struct walk *w,
			const struct hp_orel *r, const struct insn *o,
			const struct insn *b)
{
	const uint64_t bt = w->baddr + b->off + b->len + (uint64_t)b->rel;
	const uint64_t ot = o->off + o->len + (uint64_t)o->rel;
	const struct sec_base *base = &p->bases[w->fn->sec->index];
	struct ptarget t;
	uint64_t to;

	if (!b->branch || o->mnemonic != b->mnemonic)
		return false;
	if (r) {
		if (reloc_target(p, r, o, r->offset - w->fn->st.st_value, &t,
				 &to) &&
		    to == bt)
			return true;
		return t.name && p->ops.plt_stub(p, &t, bt);
	}
	if (ot <= w->o.len) { /* checked once every instruction is paired */
		w->jo[w->nr_jumps] = ot;
		w->jb[w->nr_jumps++] = bt - w->baddr;
		return bt >= w->baddr && bt - w->baddr <= w->b.len;
	}
	/* to a neighbour in the same section (no function sections) */
	return base->known && base->base + w->fn->st.st_value + ot == bt;
}

/* An instruction with relocations: replayed as it stands in the binary. */
static bool same_relocated(struct prover *p, struct walk *w,
			   struct hp_orel *const *rels, size_t nr,
			   const struct insn *o, const struct insn *b)
{
	uint8_t exp[16];
	const uint8_t *act = w->b.code + b->off;

	if (o->len != b->len || o->len > sizeof(exp))
		return false;
	memcpy(exp, w->o.code + o->off, o->len);
	for (size_t i = 0; i < nr; i++) {
		const uint64_t at =
			rels[i]->offset - w->fn->st.st_value - o->off;
		const struct site s = { .exp = exp,
					.act = act,
					.len = o->len,
					.off = at,
					.P = w->baddr + b->off + at,
					.type = rels[i]->type,
					.A = rels[i]->addend };
		const char *why = NULL;
		size_t end = 0;

		if (replay_reloc(p, &s, rels[i], w->fn, &end, &why) !=
		    REPLAY_MATCH)
			return false;
	}
	return !memcmp(exp, act, o->len);
}

static bool same_insn(struct prover *p, struct walk *w,
		      struct hp_orel *const *rels, size_t nr,
		      const struct insn *o, const struct insn *b)
{
	const struct hp_orel *at_field = NULL;

	for (size_t i = 0; i < nr && o->rel_at >= 0; i++)
		if (rels[i]->offset - w->fn->st.st_value ==
		    o->off + (uint64_t)o->rel_at)
			at_field = rels[i];
	if (o->branch && (at_field || !nr))
		return same_branch(p, w, at_field, o, b);
	if (nr)
		return same_relocated(p, w, rels, nr, o, b);
	if (o->len != b->len)
		return false;
	if (o->rel_at < 0)
		return !memcmp(w->o.code + o->off, w->b.code + b->off, o->len);
	/* RIP-relative without a relocation: inside the section */
	return b->rel_at == o->rel_at &&
	       !memcmp(w->o.code + o->off, w->b.code + b->off,
		       (size_t)o->rel_at) &&
	       p->bases[w->fn->sec->index].known &&
	       p->bases[w->fn->sec->index].base + w->fn->st.st_value + o->off +
			       o->len + (uint64_t)o->rel ==
		       w->baddr + b->off + b->len + (uint64_t)b->rel;
}

/* Decode the next instruction that is not a nop; false at a bad byte. */
static bool next_insn(const struct prover *p, struct side *s, uint64_t *off,
		      struct insn *in)
{
	while (*off < s->len) {
		if (!decode(p, s->code, s->len, *off, in))
			return false;
		s->start[*off] = true;
		if (!in->nop)
			return true;
		*off += in->len;
	}
	s->start[s->len] = true;
	in->len = 0;
	return true;
}

static bool walk_insns(struct prover *p, struct text *x, struct walk *w)
{
	const uint64_t v = w->fn->st.st_value;
	uint64_t oo = 0, bo = 0;
	size_t ri = 0;

	while (ri < x->nr_rels && x->rels[ri]->offset < v)
		ri++;
	for (;;) {
		struct insn o, b;
		size_t nr = 0;

		if (!next_insn(p, &w->o, &oo, &o) ||
		    !next_insn(p, &w->b, &bo, &b))
			return false;
		if (!o.len || !b.len)
			return !o.len && !b.len;
		w->po[w->nr_pairs] = oo;
		w->pb[w->nr_pairs++] = bo;
		while (ri < x->nr_rels && x->rels[ri]->offset < v + oo)
			ri++;
		while (ri + nr < x->nr_rels &&
		       x->rels[ri + nr]->offset < v + oo + o.len)
			nr++;
		if (!same_insn(p, w, x->rels + ri, nr, &o, &b))
			return false;
		oo += o.len;
		bo += b.len;
	}
}

/* Whether function @i is the binary's @bs, instruction by instruction. */
static bool same_code(struct prover *p, struct text *x, size_t i,
		      const struct hp_bsym *bs)
{
	const struct hp_osym *fn = x->fns[i];
	struct walk w = {
		.fn = fn,
		.baddr = bs->value,
		.o = { x->sec->data + fn->st.st_value, fn->st.st_size, NULL },
		.b = { bytes_at(p, bs->value, bs->size), bs->size, NULL },
	};
	const size_t n = w.o.len + w.b.len + 2;
	bool ok = false;

	if (!w.b.code || !x->sec->data)
		return false;
	w.o.start = calloc(n, sizeof(bool));
	w.po = calloc(n, sizeof(*w.po));
	w.pb = calloc(n, sizeof(*w.pb));
	w.jo = calloc(n, sizeof(*w.jo));
	w.jb = calloc(n, sizeof(*w.jb));
	if (w.o.start && w.po && w.pb && w.jo && w.jb) {
		w.b.start = w.o.start + w.o.len + 1;
		ok = walk_insns(p, x, &w);
	}
	/* The ends pair too; every inner branch lands on paired places. */
	if (ok) {
		w.po[w.nr_pairs] = w.o.len;
		w.pb[w.nr_pairs++] = w.b.len;
	}
	for (size_t j = 0; ok && j < w.nr_jumps; j++) {
		size_t ko = 0, kb = 0;

		ok = paired(&w.o, w.po, w.nr_pairs, w.jo[j], &ko) &&
		     paired(&w.b, w.pb, w.nr_pairs, w.jb[j], &kb) && ko == kb;
	}
	free(w.o.start);
	free(w.po);
	free(w.pb);
	free(w.jo);
	free(w.jb);
	return ok;
}

static int compare_funcs(struct prover *p, struct text *x)
{
	const struct sec_base *b = &p->bases[x->sec->index];
	int rc = 0;

	for (size_t i = 0; i < x->nr_fns && rc != -ENOMEM; i++) {
		const struct hp_osym *fn = x->fns[i];
		const struct hp_bsym *bs = NULL;
		const uint64_t v = fn->st.st_value, n = fn->st.st_size;
		char detail[200];
		size_t d = 0;

		/* An alias of the previous function: already counted. */
		if (i && x->fns[i - 1]->st.st_value == v)
			continue;
		p->nr_funcs++;
		provable(p, fn, &bs);
		if (!bs) {
			rc = report(p, fn, 0, "not in the binary");
			continue;
		}
		if (bs->value != b->base + v) {
			rc = report(p, fn, 0,
				    "placed elsewhere in its section");
			continue;
		}
		while (x->act && bs->size == n && d < n &&
		       x->exp[v + d] == x->act[v + d])
			d++;
		if ((x->act && d == n) || same_code(p, x, i, bs)) {
			p->nr_matched++;
			p->ok[fn->index] = true;
			continue;
		}
		if (bs->size != n || !x->act) {
			snprintf(detail, sizeof(detail),
				 "%llu bytes in the binary, %llu in the object",
				 (unsigned long long)bs->size,
				 (unsigned long long)n);
			rc = report(p, fn, 0, detail);
			continue;
		}
		if (x->failed[i].r && d + 4 >= x->failed[i].r->offset - v &&
		    d <= x->failed[i].r->offset - v + 8)
			snprintf(detail, sizeof(detail), "%s against '%s': %s",
				 hp_reloc_type_name(x->failed[i].r->type),
				 x->failed[i].r->sym->name, x->failed[i].why);
		else
			snprintf(detail, sizeof(detail),
				 "byte 0x%02x, the object's 0x%02x",
				 x->act[v + d], x->exp[v + d]);
		rc = report(p, fn, d, detail);
	}
	return rc == -ENOMEM ? rc : 0;
}

/* Replay and compare one text section of the object. */
static int prove_text(struct prover *p, const struct hp_osec *sec)
{
	struct text x = { .sec = sec };
	const struct sec_base *b = &p->bases[sec->index];
	struct hp_orel **rels = NULL;
	size_t end = 0;
	int rc = 0;

	x.fns = calloc(p->count[sec->index] + 1, sizeof(*x.fns));
	x.failed = calloc(p->count[sec->index] + 1, sizeof(*x.failed));
	rels = calloc(sec->nr_relocs ? sec->nr_relocs : 1, sizeof(*rels));
	x.exp = malloc(sec->sh.sh_size ? sec->sh.sh_size : 1);
	if (!x.fns || !x.failed || !rels || !x.exp) {
		rc = -ENOMEM;
		goto out_free;
	}
	/* In value order (by_sec is), for aliases and func_at(). */
	for (size_t i = 0; i < p->count[sec->index]; i++) {
		const struct hp_osym *s = p->by_sec[p->first[sec->index] + i];
		const struct hp_bsym *bs = NULL;

		if (provable(p, s, &bs))
			x.fns[x.nr_fns++] = s;
	}
	if (!x.nr_fns || !b->known) /* none, or none placed: */
		goto out_free; /* discarded by the linker (--gc-sections) */
	memcpy(x.exp, sec->data, sec->sh.sh_size);
	for (size_t i = 0; i < sec->nr_relocs; i++)
		rels[i] = &sec->relocs[i];
	qsort(rels, sec->nr_relocs, sizeof(*rels), cmp_reloc);
	x.rels = rels;
	x.nr_rels = sec->nr_relocs;
	/* The last function of a section that shrank in the binary: none of
	 * it byte for byte, all of it instruction by instruction. */
	x.act = bytes_at(p, b->base, sec->sh.sh_size);
	for (size_t i = 0; x.act && i < sec->nr_relocs; i++) {
		const struct hp_orel *r = rels[i];
		const size_t k = func_at(x.fns, x.nr_fns, r->offset);
		const struct hp_osym *fn = k < x.nr_fns ? x.fns[k] : NULL;
		const struct site s = {
			.exp = x.exp,
			.act = x.act,
			.len = sec->sh.sh_size,
			.off = r->offset,
			.P = b->base + r->offset,
			.type = r->type,
			.A = r->addend,
		};
		const char *why = NULL;
		size_t seq_end = 0;

		if (!fn || r->offset < end || r->offset >= sec->sh.sh_size)
			continue; /* padding, or inside a rewritten sequence */
		replay_reloc(p, &s, r, fn, &seq_end, &why);
		if (why && !x.failed[k].r)
			x.failed[k] = (struct failed){ r, why };
		end = seq_end;
	}
	rc = compare_funcs(p, &x);
out_free:
	free(x.fns);
	free(x.failed);
	free(rels);
	free(x.exp);
	return rc;
}

/* Whether @r writes into [lo, hi) of its section. */
static bool overlaps(const struct hp_orel *r, uint64_t lo, uint64_t hi)
{
	return r->offset < hi && r->offset + field_width(r->type) > lo;
}

/*
 * Anonymous data placed by a reference to it: its bytes must be the
 * object's, but for the fields its own relocations fill.
 */
static int check_derived(struct prover *p)
{
	int rc = 0;

	for (size_t i = 0; i < p->o->nr_secs && !rc; i++) {
		const struct hp_osec *sec = &p->o->secs[i];
		const struct sec_base *b = &p->bases[i];
		const uint8_t *act = NULL;
		uint64_t d = 0;

		if (!b->derived || !sec->data)
			continue;
		act = bytes_at(p, b->base, sec->sh.sh_size);
		for (; act && d < sec->sh.sh_size; d++) {
			bool masked = false;

			if (act[d] == sec->data[d])
				continue;
			for (size_t j = 0; j < sec->nr_relocs && !masked; j++)
				masked = overlaps(&sec->relocs[j], d, d + 1);
			if (!masked)
				break;
		}
		if (act && d == sec->sh.sh_size)
			continue;
		if (p->ok[b->by->index]) {
			p->ok[b->by->index] = false;
			p->nr_matched--;
		} else {
			continue; /* reported already */
		}
		if (act) {
			char detail[160];

			snprintf(detail, sizeof(detail),
				 "the data it refers to, '%s'+0x%llx, differs",
				 sec->name, (unsigned long long)d);
			rc = report(p, b->by, b->by_off, detail);
		} else {
			rc = report(p, b->by, b->by_off,
				    "it refers to data outside the binary");
		}
	}
	return rc;
}

/*
 * Pass 1: whether the object is linked into the binary: the binary has a
 * group of locals under its source file's name, or (an object with no
 * locals) defines every global function it does.
 */
static bool is_linked(struct prover *p)
{
	const char *file = p->o->file_sym;
	bool has_local = false;
	size_t nr_global = 0;

	if (file && *file && p->nr_files &&
	    bsearch(&file, p->files, p->nr_files, sizeof(*p->files), cmp_str))
		return true;
	for (size_t i = 0; i < p->o->nr_syms; i++) {
		const struct hp_osym *s = &p->o->syms[i];

		if (!hp_osym_is_func(s) && !hp_osym_is_data(s))
			continue;
		if (s->bind == STB_LOCAL) {
			has_local = true;
			continue;
		}
		if (!hp_osym_is_func(s) || !s->st.st_size)
			continue;
		if (!find_bsym(p, s, 0))
			return false;
		nr_global++;
	}
	return nr_global && (!has_local || !p->nr_files);
}

static bool has_funcs(const struct hp_obj *o)
{
	for (size_t i = 0; i < o->nr_syms; i++)
		if (hp_osym_is_func(&o->syms[i]) && o->syms[i].st.st_size)
			return true;
	return false;
}

static int cmp_by_sec(const void *a, const void *b)
{
	const struct hp_osym *x = *(const struct hp_osym *const *)a;
	const struct hp_osym *y = *(const struct hp_osym *const *)b;

	if (x->sec->index != y->sec->index)
		return x->sec->index < y->sec->index ? -1 : 1;
	if (x->st.st_value != y->st.st_value)
		return x->st.st_value < y->st.st_value ? -1 : 1;
	return (x->index > y->index) - (x->index < y->index);
}

static int index_by_sec(struct prover *p, const struct hp_obj *o)
{
	size_t n = 0;

	p->by_sec = calloc(o->nr_syms ? o->nr_syms : 1, sizeof(*p->by_sec));
	p->first = calloc(o->nr_secs ? o->nr_secs : 1, sizeof(*p->first));
	p->count = calloc(o->nr_secs ? o->nr_secs : 1, sizeof(*p->count));
	if (!p->by_sec || !p->first || !p->count)
		return -ENOMEM;
	for (size_t i = 0; i < o->nr_syms; i++)
		if (o->syms[i].sec)
			p->by_sec[n++] = &o->syms[i];
	if (n)
		qsort(p->by_sec, n, sizeof(*p->by_sec), cmp_by_sec);
	for (size_t i = n; i--;) {
		p->first[p->by_sec[i]->sec->index] = i;
		p->count[p->by_sec[i]->sec->index]++;
	}
	return 0;
}

static int prove_obj(struct prover *p, struct hp_obj *o)
{
	int rc = 0;

	p->o = o;
	p->bases = calloc(o->nr_secs ? o->nr_secs : 1, sizeof(*p->bases));
	p->ok = calloc(o->nr_syms ? o->nr_syms : 1, sizeof(*p->ok));
	rc = p->bases && p->ok ? index_by_sec(p, o) : -ENOMEM;
	if (rc)
		goto out_free;
	if (!is_linked(p)) {
		if (has_funcs(o))
			hp_log(HP_LOG_INFO,
			       "'%s': not linked into '%s' (no '%s' in its "
			       "symbol table); not compared",
			       o->relpath, p->bin->path,
			       o->file_sym ? o->file_sym : "?");
		goto out_free;
	}
	for (size_t i = 0; i < o->nr_secs && !rc; i++)
		if (hp_osec_is_text(&o->secs[i]) && o->secs[i].data &&
		    (o->secs[i].sh.sh_flags & SHF_ALLOC))
			rc = prove_text(p, &o->secs[i]);
	if (!rc)
		rc = check_derived(p);
out_free:
	free(p->bases);
	free(p->ok);
	free(p->by_sec);
	free(p->first);
	free(p->count);
	p->bases = NULL;
	p->ok = NULL;
	p->by_sec = NULL;
	p->first = p->count = NULL;
	return rc;
}

int hp_prove_binary(struct hp_pair *pairs, size_t nr_pairs,
		    const struct hp_binary *bin, struct hp_diff_report *r,
		    struct hp_diff_report_module *rm)
{
	struct prover p;
	bool any = false;
	struct timespec t0, t1;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = prover_init(&p, bin, r);
	for (size_t i = 0; !rc && i < nr_pairs; i++) {
		if (!pairs[i].old_obj)
			continue;
		any |= has_funcs(pairs[i].old_obj);
		rc = prove_obj(&p, pairs[i].old_obj);
	}
	if (rc)
		goto out_release;
	rm->nr_proved = p.nr_matched;
	rm->nr_proof_funcs = p.nr_funcs;
	if (p.nr_differ > HP_PROOF_MAX_REPORTED)
		rc = hp_report_refuse(r, "", "", -HP_E_FOREIGN_BINARY, NULL,
				      "%u more functions differ in '%s'",
				      p.nr_differ - HP_PROOF_MAX_REPORTED,
				      bin->path);
	if (!rc && any && !p.nr_funcs)
		rc = hp_report_refuse(
			r, "", "", -HP_E_FOREIGN_BINARY,
			"give --binary the binary linked from the --old "
			"objects",
			"no function of the old objects is in '%s'", bin->path);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	hp_log(HP_LOG_INFO,
	       "'%s': %u of %u functions match the old objects (%.1f ms)",
	       bin->path, p.nr_matched, p.nr_funcs,
	       (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		       (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
out_release:
	prover_release(&p);
	return rc;
}
