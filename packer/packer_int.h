/*
 * On-disk layout of .hpatch v1 (docs/FORMAT.md). These structs document the
 * layout and pin its sizes; the code encodes and decodes each field with
 * explicit little-endian helpers rather than copying structs.
 */
#ifndef HP_PACKER_INT_H
#define HP_PACKER_INT_H

#include <assert.h>
#include <stdint.h>

#include "packer/packer.h"

#define HP_MAGIC "\x7fHPATCH"
#define HP_MAGIC_BYTES 8 /* includes the terminating NUL */
#define HP_PAYLOAD_MAX (256u << 20)
#define HP_META_MAX (64u << 10)
#define HP_MODULES_MAX 64
#define HP_FUNCS_MAX 65536
#define HP_RELOCS_MAX (4u << 20)
#define HP_SYMS_MAX 65536
#define HP_BLOB_MAX (64u << 20)
#define HP_ID_MAX 255
#define HP_STR_NONE 0xffffffffu

struct hp_disk_header {
	uint8_t magic[8];
	uint16_t version;
	uint16_t header_size;
	uint32_t flags;
	uint32_t meta_size;
	uint32_t payload_csize;
	uint64_t payload_usize;
};
static_assert(sizeof(struct hp_disk_header) == 32, "header size");

struct hp_disk_meta {
	uint64_t sequence;
	uint64_t created;
	uint64_t expires;
	uint32_t nr_modules;
	uint32_t reserved;
};
static_assert(sizeof(struct hp_disk_meta) == 32, "meta size");

struct hp_disk_payload {
	uint32_t nr_modules;
	uint32_t strtab_off;
	uint32_t strtab_size;
	uint32_t reserved;
};
static_assert(sizeof(struct hp_disk_payload) == 16, "payload header size");

struct hp_disk_module {
	uint32_t name;
	uint32_t nr_funcs, funcs_off;
	uint32_t nr_relocs, relocs_off;
	uint32_t nr_syms, syms_off;
	uint32_t text_size, text_off;
	uint32_t data_size, data_off;
	uint32_t bss_size;
	uint32_t reserved[4];
};
static_assert(sizeof(struct hp_disk_module) == 64, "module record size");

struct hp_disk_func {
	uint32_t name;
	uint32_t flags;
	uint64_t old_addr;
	uint32_t old_size;
	uint32_t new_off;
	uint32_t new_size;
	uint32_t reserved;
	uint8_t old_hash[16];
};
static_assert(sizeof(struct hp_disk_func) == 48, "function record size");

struct hp_disk_reloc {
	uint32_t offset;
	uint8_t type;
	uint8_t base;
	uint16_t reserved;
	uint32_t sym;
	uint32_t reserved2;
	int64_t value;
};
static_assert(sizeof(struct hp_disk_reloc) == 24, "relocation record size");

struct hp_disk_sym {
	uint32_t name;
	uint32_t version;
};
static_assert(sizeof(struct hp_disk_sym) == 8, "symbol record size");

/*
 * Model checks shared by the writer and the reader. @name names the file
 * (or "patch") in messages. Return: 0 or -HP_E_BADFORMAT (reported).
 */
int hp_pack_validate(const char *name, const struct hp_patch *p)
	__attribute__((warn_unused_result));

#endif
