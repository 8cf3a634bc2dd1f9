/*
 * The state shared by the module builder's passes (diff_build.c: closure
 * and layout; diff_emit.c: relocations), and the decisions pass 1 leaves
 * for pass 3.
 */
#ifndef HP_DIFF_BUILD_INT_H
#define HP_DIFF_BUILD_INT_H

#include "differ/differ_int.h"

/*
 * An image GOT slot and/or veneer for one symbol, reserved in pass 1 and
 * placed with the text, so that pass 3 finds every offset final.
 */
struct slot {
	const char *name;
	const struct hp_obj *obj; /* defining object for locals, else NULL */
	uint64_t module_got;	  /* the program's own GOT slot, or 0 */
	bool need_slot;
	bool need_veneer;
	uint32_t off;	     /* image offset of the slot */
	uint32_t veneer_off; /* image offset of the veneer */
	bool slot_emitted;
	bool veneer_emitted;
};

/* How pass 1 decided a relocation reaches its target; pass 3 obeys. */
enum plan_kind {
	PLAN_DIRECT,   /* the target's own address */
	PLAN_VENEER,   /* a call to another library: the slot's veneer */
	PLAN_GOT_SLOT, /* a GOT load: the program's slot or the image's */
	PLAN_TLS_SLOT, /* initial-exec in an executable: an image slot */
};

struct plan {
	enum plan_kind kind;
	size_t slot; /* index in builder.slots, unless PLAN_DIRECT */
};

struct builder {
	const struct hp_diff_opts *opts;
	struct hp_binary *bin;
	struct hp_diff_report *r;
	struct hp_pair *pairs;
	size_t nr_pairs;
	struct hp_osec **secs; /* included sections, in inclusion order */
	size_t nr_secs;
	struct hp_buf text;
	struct hp_buf data;
	uint32_t bss_size;
	struct slot *slots;
	size_t nr_slots;
	/* One plan per relocation of each included section, in the order of
	 * @secs: those of secs[i] start at plan_first[i]. */
	struct plan *plans;
	size_t nr_plans;
	size_t *plan_first;
	struct hp_module *m;
	size_t cap_relocs;
	int nr_errors;
	size_t nr_closed; /* sections of @secs whose relocations pass 1 saw */
	/* Sections of copied CIEs and FDEs (diff_unwind.c), owned here. */
	struct hp_osec **unwind;
	size_t nr_unwind;
};

struct target {
	uint8_t base;
	int64_t value; /* address of the symbol (without addend) */
};

static inline bool hp_sym_included(const struct hp_osym *s)
{
	return s->sec && s->sec->state == HP_SEC_INCLUDED;
}

/* A global function or new object included from another object. */
struct hp_osym *hp_build_find_included(struct builder *b, const char *name);

/* Whether @sec is a COMDAT group's copy another object's stands for. */
bool hp_build_is_comdat_dup(struct builder *b, const struct hp_osec *sec);

/* The address in the old binary of the symbol @s of @o stands for. */
int hp_build_lookup_old(struct builder *b, struct hp_obj *o,
			const struct hp_osym *s, uint64_t *addr);

/*
 * Pass 1b (diff_unwind.c): copy the CIEs and FDEs of every included code
 * section not yet covered into new sections, and include them (their
 * relocations reach the code, its LSDA and the personality routine).
 * Return: 0, -ENOMEM, or -HP_E_BADELF (reported) for a malformed
 * .eh_frame; *@added says whether any section was added.
 */
int hp_build_unwind(struct builder *b, bool *added)
	__attribute__((warn_unused_result));
/* Pass 2b: place the unwind sections one after another, then the zero
 * word that ends the table, and reserve the unwinder's object in bss. */
int hp_build_unwind_layout(struct builder *b)
	__attribute__((warn_unused_result));
void hp_build_unwind_release(struct builder *b);
/* Add @s to the included sections. Return: 0 or -ENOMEM. */
int hp_build_include(struct builder *b, struct hp_osec *s)
	__attribute__((warn_unused_result));

/* Pass 3: every relocation of every included section, as pass 1 planned. */
int hp_build_emit(struct builder *b);

#endif /* HP_DIFF_BUILD_INT_H */
