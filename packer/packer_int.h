/*
 * On-disk layout of .hpatch v2 (docs/FORMAT.md): a fixed header, then
 * metadata and payload as streams of LEB128 varints, so that a one-function
 * patch carries a few bytes of tables rather than fixed-width records.
 */
#ifndef HP_PACKER_INT_H
#define HP_PACKER_INT_H

#include <stdint.h>

#include "packer/packer.h"

#define HP_MAGIC "\x7fHPATCH"
#define HP_MAGIC_BYTES 8 /* includes the terminating NUL */
#define HP_HEADER_BYTES 24
#define HP_PAYLOAD_MAX (256u << 20)
#define HP_META_MIN 4 /* four varints, one byte each, and no string */
#define HP_META_MAX (64u << 10)
#define HP_MODULES_MAX 64
#define HP_FUNCS_MAX 65536
#define HP_RELOCS_MAX (4u << 20)
#define HP_SYMS_MAX 65536
#define HP_BLOB_MAX (64u << 20)
#define HP_ID_MAX 255
#define HP_STR_MAX 0xffff
#define HP_VARINT_MAX 10 /* bytes of a 64-bit LEB128 value */

/* The fewest payload bytes each record takes: a count claiming more records
 * than the rest of the payload could hold is refused before allocating. */
#define HP_FUNC_MIN_BYTES 4 /* new: no old address, size or hash */
#define HP_RELOC_MIN_BYTES 3
#define HP_SYM_MIN_BYTES 2

/* Relocation record: type in the low four bits of one byte, base above. */
#define HP_RELOC_TYPE_BITS 4

/* LEB128: seven bits a byte, least significant first; zigzag for signed. */
int hp_put_uvarint(struct hp_buf *b, uint64_t v)
	__attribute__((warn_unused_result));
int hp_put_svarint(struct hp_buf *b, int64_t v)
	__attribute__((warn_unused_result));

/* A bounded reader over a decoded part; @name names the file in errors. */
struct hp_cursor {
	const char *name;
	const uint8_t *p;
	size_t len;
	size_t pos;
};

/*
 * Read a varint (at most 10 bytes, minimal: no redundant high zero bytes)
 * of at most @max. @what names the field in errors.
 * Return: 0 or -HP_E_BADFORMAT (reported).
 */
int hp_get_uvarint(struct hp_cursor *c, uint64_t max, const char *what,
		   uint64_t *out) __attribute__((warn_unused_result));
int hp_get_svarint(struct hp_cursor *c, const char *what, int64_t *out)
	__attribute__((warn_unused_result));
/* Take @n bytes at the cursor: *@out points into the buffer. */
int hp_get_bytes(struct hp_cursor *c, size_t n, const char *what,
		 const uint8_t **out) __attribute__((warn_unused_result));

/*
 * Model checks shared by the writer and the reader. @name names the file
 * (or "patch") in messages. Return: 0 or -HP_E_BADFORMAT (reported).
 */
int hp_pack_validate(const char *name, const struct hp_patch *p)
	__attribute__((warn_unused_result));

#endif
