/*
 * The state of the proof that --binary was linked from --old (diff_proof.c),
 * and its view of the binary: sections, GOT, PLT and TLS slots, symbols
 * (diff_proof_bin.c).
 */
#ifndef HP_DIFF_PROOF_INT_H
#define HP_DIFF_PROOF_INT_H

#include "differ/differ_int.h"

#include <string.h>

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

/* A function that differs, held until every object is proved. */
struct mismatch {
	size_t obj; /* index in the pairs */
	char *fn;
	uint64_t off;
	char *detail;
};

/* What one old object gave. */
struct tally {
	uint32_t nr_funcs, nr_matched;
	bool dropped; /* another build of its source is the one linked */
};

struct prover {
	const struct hp_binary *bin;
	struct hp_diff_report *r;
	struct hp_replay_ops ops;
	struct bsec *secs;
	size_t nr_secs;
	const char **files; /* STT_FILE names of the binary, sorted */
	size_t nr_files;
	GElf_Rela *irel; /* IRELATIVE: GOT slots of ifuncs (addend) */
	size_t nr_irel;
	struct hp_obj *o;	/* the object being proved */
	struct sec_base *bases; /* per section of @o */
	bool *ok;		/* per symbol of @o: a function that matched */
	/* @o's symbols defined in a section, by section then value; the
	 * symbols of section i are by_sec[first[i]] on, count[i] of them. */
	const struct hp_osym **by_sec;
	size_t *first, *count;
	uint32_t nr_funcs, nr_matched;
	struct mismatch *miss;
	size_t nr_miss;
	size_t cur; /* index of @o in the pairs */
};

static inline int hp_proof_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* diff_proof_bin.c */
const uint8_t *hp_proof_bytes_at(const struct prover *p, uint64_t addr,
				 size_t len);
const struct hp_bsym *hp_proof_find_bsym(const struct prover *p,
					 const struct hp_osym *s, uint64_t at);
int hp_prover_init(struct prover *p, const struct hp_binary *bin,
		   struct hp_diff_report *r);
void hp_prover_release(struct prover *p);

#endif /* HP_DIFF_PROOF_INT_H */
