/*
 * The state shared by the passes that cut shared sections into pieces:
 * planning (diff_split.c, passes 1-3) and cutting (diff_cut.c, passes 4-6).
 */
#ifndef HP_DIFF_SPLIT_INT_H
#define HP_DIFF_SPLIT_INT_H

#include "differ/differ_int.h"

#define HP_STUB_SIZE 5 /* e9 rel32 */

/* A PC-relative field the assembler resolved (section offsets). */
struct ref {
	uint64_t insn_end;
	uint64_t field;
	uint8_t size;
	bool branch;
	int64_t target;
};

struct stub {
	const struct piece *to;
	uint64_t to_off; /* in the target piece */
	uint32_t off;	 /* of the stub in its piece */
};

struct piece {
	uint64_t start, end; /* in the shared section */
	struct hp_osym *primary;
	uint32_t lead, tail; /* stub bytes before and after the body */
	struct stub *stubs;
	size_t nr_stubs;
	struct hp_osec *sec; /* once made */
};

struct plan {
	struct hp_osec *sec;
	struct piece *pieces; /* sorted by start */
	size_t nr_pieces;
	struct ref *refs;
	size_t nr_refs;
	uint64_t *cuts; /* code-referenced offsets, data sections */
	size_t nr_cuts;
	uint64_t *bad; /* offsets that decode to no instruction */
	size_t nr_bad;
};

struct splitter {
	struct hp_obj *o;
	struct plan *plans; /* by section index, for the object's own */
	size_t nr_plans;
	size_t nr_pieces;
	/* Symbols by section: section i's are bysec[at[i]] to bysec[at[i+1]]
	 * (one pass, where a scan per section was quadratic with sections). */
	struct hp_osym **bysec;
	size_t *at;
};

static inline bool hp_split_is_code(const struct hp_osec *s)
{
	return hp_osec_is_text(s) && s->data && s->sh.sh_size;
}

static inline bool hp_split_is_data(const struct hp_osec *s)
{
	return (s->sh.sh_flags & SHF_ALLOC) &&
	       !(s->sh.sh_flags & (SHF_EXECINSTR | SHF_MERGE)) &&
	       (s->sh.sh_type == SHT_PROGBITS || s->sh.sh_type == SHT_NOBITS) &&
	       s->sh.sh_size && strcmp(s->name, ".eh_frame");
}

static inline bool hp_split_is_label(const struct hp_osym *s)
{
	return s->type == STT_SECTION ||
	       (s->type == STT_NOTYPE && s->bind == STB_LOCAL);
}

static inline int hp_split_cmp_relocs(const void *a, const void *b)
{
	const struct hp_orel *x = a, *y = b;

	return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Helpers of the planning passes that cutting uses too (diff_split.c). */
bool hp_split_is_shared(const struct plan *p);
const struct piece *hp_split_piece_at(const struct plan *p, int64_t off);
int64_t hp_split_target_of(const struct hp_osec *from, const struct hp_orel *r);
bool hp_split_is_own_part(const struct piece *pc, const struct piece *to);
struct stub *hp_split_find_stub(struct piece *pc, const struct piece *to,
				uint64_t to_off);

/* Passes 4-6: make the pieces planned for @sp, move symbols and relocations
 * to them, and turn resolved out-of-function references into relocations. */
int hp_split_cut(struct splitter *sp);

#endif /* HP_DIFF_SPLIT_INT_H */
