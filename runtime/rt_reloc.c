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

/* Width of each runtime type's field, in bytes; 0 = invalid. */
static const uint8_t reloc_width[HP_R_NR_TYPES] = {
	[HP_R_PC32] = 4,   [HP_R_ABS64] = 8, [HP_R_ABS32] = 4,
	[HP_R_ABS32S] = 4, [HP_R_PC64] = 8,  [HP_R_TPOFF32] = 4,
};

static int range_error(const struct hp_module *m, uint32_t i,
		       const struct hp_reloc *r, uint64_t v)
{
	return hp_error(-HP_E_RANGE,
			"module '%s': relocation %u (type %u at image+0x%x): "
			"value 0x%" PRIx64 " does not fit its field",
			m->name, i, r->type, r->offset, v);
}

int hp_reloc_apply(const struct hp_reloc_ctx *ctx, const struct hp_module *m)
{
	for (uint32_t i = 0; i < m->nr_relocs; i++) {
		const struct hp_reloc *r = &m->relocs[i];
		const uint8_t width =
			r->type < HP_R_NR_TYPES ? reloc_width[r->type] : 0;
		uint8_t *p = ctx->image + r->offset;
		uint64_t s, v;

		if (!width || r->base >= HP_RB_NR_BASES ||
		    (uint64_t)r->offset + width > ctx->image_size ||
		    (r->base == HP_RB_SYMBOL && r->sym >= ctx->nr_syms))
			return hp_error(-HP_E_BADFORMAT,
					"module '%s': relocation %u is invalid",
					m->name, i);
		s = r->base == HP_RB_SYMBOL ? ctx->sym_addrs[r->sym]
					    : ctx->bases[r->base];
		v = s + (uint64_t)r->value;
		switch (r->type) {
		case HP_R_PC32:
			v -= ctx->bases[HP_RB_IMAGE] + r->offset;
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
			hp_put_le64(p,
				    v - (ctx->bases[HP_RB_IMAGE] + r->offset));
			break;
		}
	}
	return 0;
}
