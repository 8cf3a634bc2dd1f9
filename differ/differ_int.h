/*
 * hpdiff internals: the in-memory view of relocatable objects and of the old
 * linked binary, shared by the differ's passes.
 */
#ifndef HP_DIFFER_INT_H
#define HP_DIFFER_INT_H

#include <gelf.h>
#include <libelf.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/hp_util.h"
#include "differ/differ.h"

struct hp_osym;

struct hp_orel {
	uint64_t offset;
	uint32_t type;
	struct hp_osym *sym;
	int64_t addend;
	/*
	 * For a PC-relative field in code: bytes from the field to the end of
	 * its instruction, as decoded (0: not decoded, assume 4).
	 */
	uint8_t bias;
	/* Made by hpdiff for a reference the assembler resolved itself. */
	bool synthetic;
};

/* What the build pass decided for a section. */
enum hp_osec_state {
	HP_SEC_UNUSED = 0, /* not referenced by patch code */
	HP_SEC_INCLUDED,   /* copied into the image */
};

struct hp_osec {
	const char *name; /* borrowed from libelf: lives until elf_end() */
	size_t index;
	GElf_Shdr sh;
	const uint8_t *data; /* NULL for SHT_NOBITS */
	struct hp_orel *relocs;
	size_t nr_relocs;
	struct hp_osym *primary; /* first named func/object defined here */
	struct hp_obj *obj;
	struct hp_osec *twin; /* the correlated section of the other build */
	enum hp_osec_state state;
	uint32_t image_off; /* valid when included */
	bool changed;
	/*
	 * A piece of a shared section (.text, .data, .rodata of a build without
	 * -ffunction-sections/-fdata-sections): one function or object, or a
	 * stretch of anonymous data. Its bytes are @parent's from @base on,
	 * after @lead bytes of branch stubs (see diff_split.c); its symbols'
	 * values and its relocations' offsets are the piece's own.
	 */
	struct hp_osec *parent;
	uint64_t base;
	uint32_t lead;
	uint32_t tail; /* bytes of branch stubs after the body */
	/*
	 * Zero bytes at the end of an anonymous piece that may be the
	 * alignment of what follows (a jump table's last piece runs up to
	 * the next object): not compared.
	 */
	uint32_t pad;
	struct hp_osym *secsym; /* the piece's section symbol (value 0) */
	bool split;		/* cut into pieces: nothing refers to it */
	/*
	 * Why the patch cannot carry this piece's code, if it cannot: a
	 * reference to no symbol, a short branch out of reach, bytes that
	 * do not decode. Reported when the piece is included.
	 */
	char *problem;
	uint8_t *own_data; /* owned copy behind @data, if any */
	char *own_name;
	/*
	 * The signature of the COMDAT group (SHT_GROUP, GRP_COMDAT) the
	 * section belongs to, or NULL: an inline function, a template
	 * instance, a vtable or typeinfo of C++, emitted by every object
	 * that uses it; the linker keeps the first group of each signature
	 * and drops the others whole. Borrowed from libelf.
	 */
	const char *comdat;
	/* Unwind tables (diff_unwind.c): an included code section whose
	 * FDEs were copied, and a section of copied CIEs and FDEs. */
	bool has_unwind;
	bool is_unwind;
};

struct hp_osym {
	const char *name;
	size_t index;
	GElf_Sym st;
	unsigned char type;
	unsigned char bind;
	struct hp_osec *sec; /* NULL: undefined or absolute */
	struct hp_osym *twin;
	bool changed;
	bool is_new;
	char *reason;	/* why it is in the patch, if not "body changed" */
	int line_delta; /* line-only change: by how many lines it moved */
};

struct hp_obj {
	char *path;
	char *relpath; /* relative to the tree root, for pairing and reports */
	int fd;
	Elf *elf;
	const char *file_sym; /* STT_FILE name, disambiguates statics */
	struct hp_osec *secs;
	size_t nr_secs;
	struct hp_osym *syms;
	size_t nr_syms;
	struct hp_osym **by_name; /* defined, named: by name, then index */
	size_t nr_by_name;
	struct hp_osym *piece_syms; /* section symbols of pieces */
	size_t nr_pieces;
	uint64_t split_us; /* time hp_obj_split took (decoding, mostly) */
};

/* diff_elf.c */
enum hp_obj_open_flags {
	/* As the assembler wrote it: shared sections not cut into pieces,
	 * no synthetic relocations (what the linker saw, for the proof). */
	HP_OBJ_AS_WRITTEN = 1 << 0,
};
int hp_obj_open_flags(const char *path, const char *relpath,
		      enum hp_obj_open_flags flags, struct hp_obj **out)
	__attribute__((warn_unused_result));
int hp_obj_open(const char *path, const char *relpath, struct hp_obj **out)
	__attribute__((warn_unused_result));
void hp_obj_free(struct hp_obj *o);
struct hp_osym *hp_obj_find_sym_by_name(struct hp_obj *o, const char *name);
bool hp_osym_is_func(const struct hp_osym *s);
/* A split-off part of a function ("foo.cold"): not an entry point. */
bool hp_osym_is_fragment(const struct hp_osym *s);
/*
 * Length of the function @name comes from: gcc names a clone or split part
 * after it, "weight" of "weight.isra.0" (C names have no dots).
 */
size_t hp_origin_len(const char *name);
/* Whether @f is a split-off part ("foo.cold") of function @p ("foo"). */
bool hp_osym_is_fragment_of(const struct hp_osym *f, const struct hp_osym *p);
bool hp_osym_is_data(const struct hp_osym *s);
bool hp_osec_is_text(const struct hp_osec *s);
bool hp_osec_is_strings(const struct hp_osec *s);
const char *hp_reloc_type_name(uint32_t type);
/* Section offset a relocation's symbol plus addend denote (see comment). */
int64_t hp_orel_target_off(const struct hp_orel *r);

/* diff_split.c: cut shared sections into one piece per function/object. */
int hp_obj_split(struct hp_obj *o) __attribute__((warn_unused_result));
/*
 * Refuse, by name, every included piece with a problem. Return: 0 or
 * -ENOMEM; refusals go to @r, their number is added to *@nr_errors.
 */
int hp_check_pieces(struct hp_osec *const *secs, size_t nr_secs,
		    struct hp_diff_report *r, int *nr_errors)
	__attribute__((warn_unused_result));

/* diff_decode.c: x86-64 instructions, decoded by libzydis. */
struct hp_insn {
	uint64_t off; /* in the section */
	uint8_t len;
	/* The PC-relative field (branch displacement or RIP-relative
	 * operand), if any: where and how wide; target = off + len + disp. */
	bool has_rel;
	bool is_branch;
	uint8_t field_off; /* from @off */
	uint8_t field_size;
	int64_t target;
};
/*
 * Decode @code[@from, @to) one instruction after another, calling @fn for
 * each (a nonzero return stops the walk and is returned).
 * Return: 0, @fn's value, or -HP_E_UNSUPPORTED with *@bad_off set where
 * the bytes are no instruction.
 */
int hp_decode(const uint8_t *code, uint64_t from, uint64_t to,
	      int (*fn)(void *ctx, const struct hp_insn *insn), void *ctx,
	      uint64_t *bad_off) __attribute__((warn_unused_result));
/*
 * Whether code pieces @a and @b are the same code, instruction by
 * instruction: a branch out of the function equal in kind and in target
 * whether the assembler made it short (through a stub) or long, a branch
 * inside it to the same instruction, anything else the same bytes, and
 * each relocation equal by @eq.
 */
bool hp_code_equal(const struct hp_osec *a, const struct hp_osec *b,
		   bool (*eq)(const struct hp_orel *ra,
			      const struct hp_orel *rb, void *ctx),
		   void *ctx);
/*
 * Refuse (in @r) each changed function of @newo whose old code in @oldo
 * branches into bytes 1-4 of its own entry, which the redirect's jump
 * overwrites. Return: 0 or -ENOMEM.
 */
int hp_check_entries(struct hp_obj *oldo, struct hp_obj *newo,
		     struct hp_diff_report *r)
	__attribute__((warn_unused_result));

/* diff_binary.c: the old linked binary. */
struct hp_bsym {
	const char *name; /* version suffix stripped; owned by the binary */
	const char *file; /* STT_FILE group for locals, NULL for globals */
	uint64_t value;
	uint64_t size;
	unsigned char type;
	unsigned char bind;
	/*
	 * A global of hidden or internal visibility, which the linker made
	 * local: lld keeps its visibility, GNU ld files it under an STT_FILE
	 * with an empty name. Objects still reference it as a global.
	 */
	bool localised;
};

struct hp_bslot {
	const char *name;
	uint64_t slot; /* vaddr of the GOT slot */
};

/*
 * A GOT entry of a shared library's dynamic TLS: a DTPMOD64 pair (module
 * id, offset) for general- and local-dynamic accesses, or a TPOFF64 slot
 * for initial-exec. @name is NULL for a file-local variable (symbol 0).
 */
struct hp_btls {
	const char *name;
	uint32_t type; /* R_X86_64_DTPMOD64 or R_X86_64_TPOFF64 */
	uint64_t slot; /* vaddr */
	int64_t addend;
};

struct hp_binary {
	char *path;
	int fd;
	Elf *elf;
	char *debug_path; /* where the symbols came from, if not @path */
	int debug_fd;
	Elf *debug_elf;
	bool is_pie;
	bool is_exec; /* an executable (ET_EXEC, or PIE with PT_INTERP) */
	bool has_tls;
	int64_t tls_offset; /* TP minus the start of its static TLS block */
	uint8_t build_id[HP_BUILD_ID_MAX];
	uint32_t build_id_len;
	struct hp_bsym *syms; /* sorted by name */
	size_t nr_syms;
	struct hp_bslot *slots; /* GOT slots bound to symbols, sorted */
	size_t nr_slots;
	struct hp_btls *tls; /* dynamic TLS GOT entries */
	size_t nr_tls;
	uint64_t *starts; /* symbol start addresses, sorted, for room checks */
	size_t nr_starts;
	struct hp_buf names; /* storage for stripped names */
};

int hp_binary_open(const char *path, const char *debug_file,
		   struct hp_binary **out) __attribute__((warn_unused_result));
void hp_binary_free(struct hp_binary *b);
/*
 * Find a symbol: globals by name, localised ones included; locals by name
 * and the STT_FILE of the object that defines them (@file NULL: globals only).
 * Return: the symbol, or NULL with *@ambiguous set when several match.
 */
const struct hp_bsym *hp_binary_find_sym(const struct hp_binary *b,
					 const char *name, const char *file,
					 bool local, bool *ambiguous);
/*
 * Bytes from @vaddr to the next symbol or the end of its section: how much
 * a jump at a function's entry may cover (a short function is followed by
 * alignment padding that nothing references).
 */
uint64_t hp_binary_room(const struct hp_binary *b, uint64_t vaddr);
/* GOT slot the dynamic linker fills for @name, or 0. */
uint64_t hp_binary_find_slot(const struct hp_binary *b, const char *name);
/*
 * The GOT entry of type @type (R_X86_64_DTPMOD64: a pair; TPOFF64) for the
 * thread-local @name at @off in the module's TLS block: by name, else a
 * file-local entry for that offset. @name NULL with DTPMOD64 and @off 0:
 * the module's local-dynamic pair. Return: its vaddr, or 0.
 */
uint64_t hp_binary_find_tls(const struct hp_binary *b, uint32_t type,
			    const char *name, uint64_t off);
/* Copy @len bytes at link-time address @vaddr. Return: 0 or -HP_E_BADELF. */
int hp_binary_read(const struct hp_binary *b, uint64_t vaddr, void *buf,
		   size_t len) __attribute__((warn_unused_result));

/* diff_dwarf.c: source locations for the report (best effort). */
/* Whether DWARF's function @name is symbol @sym's, or that of a gcc part
 * or copy of it ("f" for "f.part.0" and "f.cold"). */
bool hp_dwarf_names(const char *name, const char *sym);
void hp_dwarf_locate(const char *obj_path, struct hp_diff_func *funcs,
		     uint32_t nr_funcs);

/* diff_types.c: DWARF layouts and signatures for the safety checks. */
struct hp_layout_member {
	char name[64];
	uint64_t offset;
	char type[96];
};

struct hp_layout {
	char name[96]; /* "struct conn", "class Rect", or a typedef's name */
	uint64_t size;
	uint32_t nr_members; /* C++ base classes too, named "(base)" */
	struct hp_layout_member *members;
	/* C++: the virtual methods it declares, "SLOT name SIGNATURE; ..."
	 * in declaration order; NULL if none (malloc'd) */
	char *vtable;
};

struct hp_func_types {
	char name[512]; /* C++: the mangled name */
	char sig[256];	/* "int (char *, unsigned long, int)" */
	unsigned int decl_line;
	/* decl_line, or that of a callee inlined from above in its file */
	unsigned int first_line;
	char inlined[256]; /* callees inlined into it, comma-separated */
	char **used;	   /* structs it uses, by layout name */
	uint32_t nr_used;
};

struct hp_dwarf_types {
	bool has_dwarf;
	struct hp_layout *layouts;
	size_t nr_layouts;
	struct hp_func_types *funcs;
	size_t nr_funcs;
};

/* Return: 0 (also with no DWARF: has_dwarf false), -errno or -ENOMEM. */
int hp_dwarf_types_read(const char *path, struct hp_dwarf_types *t)
	__attribute__((warn_unused_result));
void hp_dwarf_types_release(struct hp_dwarf_types *t);
const struct hp_layout *hp_dwarf_find_layout(const struct hp_dwarf_types *t,
					     const char *name);
/* By symbol name, else by source name (hp_dwarf_names). */
const struct hp_func_types *hp_dwarf_find_func(const struct hp_dwarf_types *t,
					       const char *name);

/* diff_report.c: entries added after hp_report_add_module() are its. */
/* The source name of C++ symbol @name (malloc'd), or NULL for a C name. */
char *hp_demangle(const char *name);
int hp_report_add_module(struct hp_diff_report *r, const char *binary,
			 const char *build_id)
	__attribute__((warn_unused_result));
int hp_report_add_func(struct hp_diff_report *r, const char *name,
		       const char *object, enum hp_diff_change change,
		       const char *reason) __attribute__((warn_unused_result));
int hp_report_add_line_only(struct hp_diff_report *r, const char *name,
			    const char *object, int delta)
	__attribute__((warn_unused_result));
int hp_report_refuse(struct hp_diff_report *r, const char *symbol,
		     const char *object, int code, const char *hint,
		     const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* diff_correlate.c */
struct hp_pair {
	struct hp_obj *old_obj; /* NULL: object is new */
	struct hp_obj *new_obj; /* NULL: object was removed */
};
/*
 * Correlate and compare one pair; marks changed/new symbols and sections,
 * adds refusals to @r. Return: 0 or -ENOMEM.
 */
int hp_correlate_pair(struct hp_pair *p, struct hp_diff_report *r)
	__attribute__((warn_unused_result));

/* diff_safety.c: layout, signature and removal checks (adds refusals). */
int hp_check_safety(struct hp_pair *pairs, size_t nr_pairs,
		    struct hp_diff_report *r, bool include_line_changes)
	__attribute__((warn_unused_result));
/* diff_correlate.c */
bool hp_relocs_equal(const struct hp_osec *a, const struct hp_osec *b);

/* diff_replay.c: what the linker wrote for one relocation (the proof). */
/* A relocation's target as the binary places it. */
struct hp_rtarget {
	const char *name; /* for GOT and PLT slots; NULL: file-local */
	uint64_t S;	  /* address (TLS: offset in the TLS block) */
	uint64_t size;	  /* the symbol's size, for R_X86_64_SIZE* */
	bool defined;	  /* S and size are known */
	bool weak;	  /* undefined weak: may be 0 */
};

/* What replaying needs from the binary; unit tests give their own. */
struct hp_replay_ops {
	/* @addr is a GOT slot that holds @t's address at run time. */
	bool (*got_slot)(const void *ctx, const struct hp_rtarget *t,
			 uint64_t addr);
	/* @addr is a PLT stub that jumps through such a slot. */
	bool (*plt_stub)(const void *ctx, const struct hp_rtarget *t,
			 uint64_t addr);
	/* @addr is @t's GOT entry of @type (DTPMOD64 pair, TPOFF64). */
	bool (*tls_slot)(const void *ctx, const struct hp_rtarget *t,
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
struct hp_replay_site {
	uint8_t *exp;
	const uint8_t *act;
	size_t len;
	size_t off;
	uint64_t P;
	uint32_t type;
	int64_t A;
};

enum hp_replay_result {
	HP_REPLAY_MATCH,   /* an allowed form is in the binary */
	HP_REPLAY_DIFFER,  /* none is: @exp holds the preferred form */
	HP_REPLAY_UNKNOWN, /* a relocation type the proof cannot check */
};

/*
 * hp_replay() - write into s->exp the bytes the linker writes for one
 * relocation against @t, in whichever of its allowed forms s->act has.
 * *@end: where a rewritten sequence ends (TLS), whose other relocations
 * are not to be replayed, else 0.
 */
enum hp_replay_result hp_replay(const struct hp_replay_ops *ops,
				const struct hp_replay_site *s,
				const struct hp_rtarget *t, size_t *end);
/* Take the binary's @width-byte field as it is. Return: false if outside. */
bool hp_replay_take(const struct hp_replay_site *s, size_t width);

/* diff_insn.c: the same code, instruction by instruction (the proof). */
struct hp_insn_code {
	const uint8_t *code;
	size_t len;
	uint64_t at; /* the object's: its section offset; the binary's: vaddr */
};

/* One instruction on both sides, @len bytes each. */
struct hp_insn_twin {
	const uint8_t *obj;
	uint64_t obj_off; /* its section offset in the object */
	const uint8_t *act;
	uint64_t addr; /* its vaddr in the binary */
	size_t len;
};

struct hp_insn_peer {
	/* Whether the object's branch with relocation @r, its field @tail
	 * bytes before the branch's end, lands at @to in the binary. */
	bool (*branch_reaches)(void *ctx, const struct hp_orel *r,
			       uint64_t tail, uint64_t to);
	/* Whether the object's side of @in, with relocations @rels,
	 * replays to the binary's. */
	bool (*replays)(void *ctx, struct hp_orel *const *rels, size_t nr,
			const struct hp_insn_twin *in);
	void *ctx;
	bool has_base;
	uint64_t base; /* where the object's section is in the binary */
};

/*
 * Whether the object's function @obj and the binary's @bin are the same
 * code, branch encodings and alignment nops aside. @rels: the relocations
 * of @obj's section, by offset.
 */
bool hp_insn_same(const struct hp_insn_peer *peer,
		  const struct hp_insn_code *obj,
		  const struct hp_insn_code *bin, struct hp_orel *const *rels,
		  size_t nr_rels);

/*
 * diff_proof.c: prove that @bin was linked from the old objects of @pairs;
 * each function that is not is a refusal (-HP_E_FOREIGN_BINARY) in @r, and
 * the counts go to @rm. Return: 0, or -ENOMEM / -HP_E_BADELF.
 */
int hp_prove_binary(struct hp_pair *pairs, size_t nr_pairs,
		    const struct hp_binary *bin, struct hp_diff_report *r,
		    struct hp_diff_report_module *rm)
	__attribute__((warn_unused_result));

/* diff_build.c: fill @m, one module of the patch, from its object pairs.
 * On failure @m may hold parts; the patch's owner frees them. */
int hp_build_module(const struct hp_diff_opts *opts, struct hp_pair *pairs,
		    size_t nr_pairs, struct hp_binary *bin,
		    struct hp_diff_report *r, struct hp_module *m)
	__attribute__((warn_unused_result));

#endif
