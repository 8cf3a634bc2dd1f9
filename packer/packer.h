/*
 * The patch model and its .hpatch v2 encoding (docs/FORMAT.md). hpdiff builds
 * a struct hp_patch and writes it; hpatch reads one back. The reader checks
 * the signature over the whole file before it decompresses or parses a byte.
 */
#ifndef HP_PACKER_H
#define HP_PACKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hp_arch_x86_64.h"
#include "common/hp_util.h"
#include "signing/signing.h"

#define HP_FORMAT_VERSION 2
#define HP_BUILD_ID_MAX 40
#define HP_OLD_HASH_BYTES 8
/* Writable data starts at the first page boundary after the text. */
#define HP_IMAGE_PAGE 4096

/*
 * Header flags. Each marks a feature a reader must understand to apply the
 * file right: a reader refuses every bit it does not know (docs/FORMAT.md).
 */
enum hp_header_flags {
	/* Module records carry unwind tables (docs/UNWIND.md). */
	HP_HDR_UNWIND = 1 << 0,
};
#define HP_HDR_KNOWN_FLAGS HP_HDR_UNWIND

/*
 * Bytes at the end of a module's bss, 16-aligned, that belong to the
 * target's unwinder while the patch's unwind table is registered (libgcc's
 * struct object: 48 bytes in gcc 12, kept well above).
 */
#define HP_UNWIND_OBJECT_SIZE 256

/*
 * Relocation types as the runtime applies them. The differ reduces every
 * ELF type to one of these (GOT references become PC32 to a GOT slot in the
 * image plus an ABS64 filling that slot), so the runtime's table is tiny.
 * Values are part of the file format: only add.
 */
enum hp_reloc_type {
	HP_R_NONE = 0,
	HP_R_PC32 = 1,	 /* s32 at P = S + A - P, overflow checked */
	HP_R_ABS64 = 2,	 /* u64 at P = S + A */
	HP_R_ABS32 = 3,	 /* u32 at P = S + A, must zero-extend */
	HP_R_ABS32S = 4, /* s32 at P = S + A, must sign-extend */
	HP_R_PC64 = 5,	 /* s64 at P = S + A - P */
	HP_R_TPOFF32 =
		6, /* s32 at P = S + A (S: offset in the static TLS block) */
	HP_R_NR_TYPES
};

/* Width of a type's field in bytes; 0 for an invalid type. */
static inline unsigned int hp_reloc_width(uint32_t type)
{
	static const uint8_t width[HP_R_NR_TYPES] = {
		[HP_R_PC32] = HP_X86_REL32_SIZE,
		[HP_R_ABS64] = HP_X86_ABS64_SIZE,
		[HP_R_ABS32] = HP_X86_ABS32_SIZE,
		[HP_R_ABS32S] = HP_X86_ABS32_SIZE,
		[HP_R_PC64] = HP_X86_ABS64_SIZE,
		[HP_R_TPOFF32] = HP_X86_ABS32_SIZE,
	};

	return type < HP_R_NR_TYPES ? width[type] : 0;
}

/* What S is relative to. Values are part of the file format. */
enum hp_reloc_base {
	HP_RB_IMAGE = 0,  /* the patch image's own base */
	HP_RB_MODULE = 1, /* the target module's load bias */
	HP_RB_SYMBOL = 2, /* external symbol syms[sym], bound at apply time */
	HP_RB_NR_BASES
};

struct hp_reloc {
	uint32_t offset; /* place, as an image offset */
	uint8_t type;	 /* enum hp_reloc_type */
	uint8_t base;	 /* enum hp_reloc_base */
	uint16_t reserved;
	uint32_t sym;  /* index into hp_module.syms when base is HP_RB_SYMBOL */
	int64_t value; /* target offset from the base, addend included */
};

enum hp_func_flags {
	HP_FUNC_NEW = 1 << 0, /* no old function: nothing to redirect */
};

struct hp_func {
	char *name;
	uint64_t old_addr; /* link-time address in the module (st_value) */
	uint32_t old_size;
	uint32_t new_off; /* image offset of the replacement code */
	uint32_t new_size;
	uint32_t flags; /* enum hp_func_flags */
	/* The first HP_OLD_HASH_BYTES of hp_hash128 of the old bytes: the
	 * build-id pins the build; this catches live code that differs. */
	uint8_t old_hash[HP_OLD_HASH_BYTES];
};

struct hp_sym {
	char *name;
	char *version; /* NULL when unversioned */
};

/*
 * One target module (an executable or shared library, named by build-id).
 * Image offsets: text at 0 (code and read-only data, mapped read+execute),
 * then at HP_ALIGN_UP(text_size, HP_IMAGE_PAGE) data_size bytes of
 * initialised data followed by bss_size zero bytes (mapped read+write).
 */
struct hp_module {
	uint8_t build_id[HP_BUILD_ID_MAX];
	uint32_t build_id_len;
	char *name; /* informational: the module's file name */
	struct hp_func *funcs;
	uint32_t nr_funcs;
	struct hp_reloc *relocs;
	uint32_t nr_relocs;
	struct hp_sym *syms;
	uint32_t nr_syms;
	uint8_t *text;
	uint32_t text_size;
	uint8_t *data;
	uint32_t data_size;
	uint32_t bss_size;
	/*
	 * Unwind table (0 size: none): an .eh_frame, CIEs and FDEs ended by a
	 * zero word, at image offset @eh_off in the text, relocated like the
	 * rest; its FDEs cover the patch's code (docs/UNWIND.md).
	 */
	uint32_t eh_off;
	uint32_t eh_size;
};

/* Facts the reader learnt about the file itself (zero when writing). */
struct hp_patch_file_info {
	bool is_signed;
	uint8_t key_id[HP_KEY_ID_BYTES];
	size_t file_size;
	size_t header_size;
	size_t meta_size;
	size_t payload_csize;
	size_t payload_usize;
	size_t sig_size;
};

/* Every pointer is malloc'd and owned by the patch: hp_patch_free() frees. */
struct hp_patch {
	char *id;	   /* e.g. "CVE-2026-1234" */
	uint64_t sequence; /* anti-rollback: must grow per target */
	uint64_t created;  /* unix seconds */
	uint64_t expires;  /* unix seconds, 0 = never */
	char *description;
	char *creator;
	struct hp_module *modules;
	uint32_t nr_modules;
	struct hp_patch_file_info info;
};

/*
 * hp_reloc_cmp() - the order hpdiff emits relocations in: by type, then
 * base, then offset. The runtime accepts any order; grouped, its dispatch
 * is always predicted (bench/reloc). A qsort comparator.
 */
int hp_reloc_cmp(const void *a, const void *b);

/* Allocate an empty patch. Return: NULL on ENOMEM. */
struct hp_patch *hp_patch_new(void);
/* Free a patch and everything it owns; NULL is a no-op. */
void hp_patch_free(struct hp_patch *p);
/* Free what @m holds (not @m itself). */
void hp_module_release(struct hp_module *m);

/* Image offset where a module's writable data starts. */
static inline uint32_t hp_module_data_off(const struct hp_module *m)
{
	return HP_ALIGN_UP(m->text_size, (uint32_t)HP_IMAGE_PAGE);
}

/* Image offset of the unwinder's object area (HP_UNWIND_OBJECT_SIZE). */
static inline uint32_t hp_module_unwind_obj_off(const struct hp_module *m)
{
	return (hp_module_data_off(m) + m->data_size + m->bss_size -
		HP_UNWIND_OBJECT_SIZE) &
	       ~(uint32_t)15;
}

/*
 * hp_pack_write() - encode @p as .hpatch v2 into @out (appended), signed
 * with @key, or unsigned when @key is NULL (for hpsign sign later).
 * Validates the model first (offsets inside the image, known types).
 * Return: 0, -ENOMEM, -HP_E_BADFORMAT, -HP_E_TOOBIG.
 */
int hp_pack_write(const struct hp_patch *p, const struct hp_seckey *key,
		  struct hp_buf *out) __attribute__((warn_unused_result));

enum hp_pack_read_flags {
	/* Parse even when the signer is not in the trust store (inspect). */
	HP_PACK_ALLOW_UNTRUSTED = 1 << 0,
	/* Skip the signature check: fuzzing builds and unsigned inspection. */
	HP_PACK_NO_VERIFY = 1 << 1,
};

/*
 * hp_pack_read() - verify, decompress and parse a whole .hpatch file.
 * Order: signature trailer (against @trust) over every byte before it, then
 * header, metadata, bounded decompression, then every count, offset and size
 * against its container. Nothing is trusted. @name is used in messages.
 * On success *@out is a new patch (caller frees).
 * Return: 0, -ENOMEM, -HP_E_UNSIGNED, -HP_E_UNTRUSTED, -HP_E_BADSIG,
 * -HP_E_BADFORMAT, -HP_E_BADVERSION, -HP_E_TOOBIG. Reports its own errors.
 */
int hp_pack_read(const char *name, const uint8_t *file, size_t len,
		 const struct hp_trust *trust, unsigned int flags,
		 struct hp_patch **out) __attribute__((warn_unused_result));

#endif
