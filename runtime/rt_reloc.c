/*
 * The relocation engine. The differ already reduced every ELF type to a
 * handful of runtime types and resolved every symbol to a base plus offset,
 * so applying one is a table lookup for S, one add, a range check and a
 * store: no symbol lookups, no string compares on this path.
 */
#include "runtime/runtime_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <inttypes.h>

#define HP_LOG_PREFIX "rt: "

static int range_error(const struct hp_module *m, uint32_t i,
		       const struct hp_reloc *r, uint64_t v)
{
	return hp_error(-HP_E_RANGE,
			"module '%s': relocation %u (type %u at image+0x%x): "
			"value 0x%" PRIx64 " does not fit its field",
			m->name, i, r->type, r->offset, v);
}

static int invalid(const struct hp_module *m, uint32_t i, const char *why)
{
	const struct hp_reloc *r = &m->relocs[i];

	return hp_error(-HP_E_BADFORMAT,
			"module '%s': relocation %u (type %u, base %u, symbol "
			"%u at image+0x%x): %s",
			m->name, i, r->type, r->base, r->sym, r->offset, why);
}

/*
 * Relocations from *@pi on while they keep @type and the first one's base
 * (hpdiff emits them grouped so): S is fixed for the run unless the base is
 * a symbol, and each instantiation below, @type a constant, is a loop of
 * an add, a range check and a store, with no dispatch inside. *@pi ends
 * past the run.
 */
static inline __attribute__((always_inline)) int
apply_run(const struct hp_reloc_ctx *ctx, const struct hp_module *m,
	  uint32_t *pi, uint8_t type, bool by_sym)
{
	uint32_t i = *pi;
	const struct hp_reloc *r = &m->relocs[i];
	const uint8_t base = r->base;
	const uint64_t sb = by_sym ? 0 : ctx->bases[base];
	const uint64_t here = ctx->bases[HP_RB_IMAGE];
	const uint64_t limit = (uint64_t)ctx->image_size - hp_reloc_width(type);

	if (ctx->image_size < hp_reloc_width(type))
		return invalid(m, i, "the image is smaller than its field");
	for (; i < m->nr_relocs && r->type == type && r->base == base;
	     i++, r++) {
		uint8_t *p = ctx->image + r->offset;
		uint64_t v;

		if (r->offset > limit)
			return invalid(m, i, "its field lies past the image");
		if (by_sym && r->sym >= ctx->nr_syms)
			return invalid(m, i, "no such symbol");
		v = (by_sym ? ctx->sym_addrs[r->sym] : sb) + (uint64_t)r->value;
		switch (type) {
		case HP_R_PC32:
			v -= here + r->offset;
			if ((int64_t)v != (int32_t)v)
				return range_error(m, i, r, v);
			hp_put_le32(p, (uint32_t)v);
			break;
		case HP_R_ABS64:
			hp_put_le64(p, v);
			break;
		case HP_R_ABS32:
			if (v != (uint32_t)v)
				return range_error(m, i, r, v);
			hp_put_le32(p, (uint32_t)v);
			break;
		case HP_R_ABS32S:
		case HP_R_TPOFF32:
			if ((int64_t)v != (int32_t)v)
				return range_error(m, i, r, v);
			hp_put_le32(p, (uint32_t)v);
			break;
		case HP_R_PC64:
			hp_put_le64(p, v - (here + r->offset));
			break;
		}
	}
	*pi = i;
	return 0;
}

/* One instantiation per type and per kind of base. */
static inline __attribute__((always_inline)) int
apply_type(const struct hp_reloc_ctx *ctx, const struct hp_module *m,
	   uint32_t *pi, uint8_t type)
{
	return m->relocs[*pi].base == HP_RB_SYMBOL
		       ? apply_run(ctx, m, pi, type, true)
		       : apply_run(ctx, m, pi, type, false);
}

int hp_reloc_apply(const struct hp_reloc_ctx *ctx, const struct hp_module *m)
{
	int rc = 0;

	for (uint32_t i = 0; i < m->nr_relocs && !rc;) {
		const struct hp_reloc *r = &m->relocs[i];

		if (r->base >= HP_RB_NR_BASES)
			return invalid(m, i, "unknown base");
		switch (r->type) {
		case HP_R_PC32:
			rc = apply_type(ctx, m, &i, HP_R_PC32);
			break;
		case HP_R_ABS64:
			rc = apply_type(ctx, m, &i, HP_R_ABS64);
			break;
		case HP_R_ABS32:
			rc = apply_type(ctx, m, &i, HP_R_ABS32);
			break;
		case HP_R_ABS32S:
			rc = apply_type(ctx, m, &i, HP_R_ABS32S);
			break;
		case HP_R_TPOFF32:
			rc = apply_type(ctx, m, &i, HP_R_TPOFF32);
			break;
		case HP_R_PC64:
			rc = apply_type(ctx, m, &i, HP_R_PC64);
			break;
		default:
			return invalid(m, i, "unknown type");
		}
	}
	return rc;
}
