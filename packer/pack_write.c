/*
 * Encoding a patch as .hpatch v2: header, metadata, the payload compressed
 * as one zstd frame (content size recorded, no checksum), then the
 * signature trailer over every byte before it.
 */
#include "packer/packer_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define HP_ZSTD_LEVEL 19

/* A payload under construction: the string table, then the records. */
struct enc {
	struct hp_buf buf;
	struct hp_buf strtab;
	bool unwind; /* HP_HDR_UNWIND: records carry unwind tables */
};

/* The header's flags for @p: unwind tables only when a module has one, so
 * that a patch without them stays readable by readers that know none. */
static uint16_t header_flags(const struct hp_patch *p)
{
	for (uint32_t i = 0; i < p->nr_modules; i++)
		if (p->modules[i].eh_size)
			return HP_HDR_UNWIND;
	return 0;
}

/* Strings are stored once each. Return: the reference. */
static uint32_t add_str(struct enc *e, const char *s, int *rc)
{
	size_t off = 0;

	while (off < e->strtab.len) {
		const char *have = (const char *)e->strtab.data + off;

		if (!strcmp(have, s))
			return (uint32_t)off;
		off += strlen(have) + 1;
	}
	*rc = *rc ?: hp_buf_append(&e->strtab, s, strlen(s) + 1);
	return (uint32_t)off;
}

static int put_str_ref(struct enc *e, const char *s)
{
	int rc = 0;
	const uint32_t ref = add_str(e, s, &rc);

	return rc ?: hp_put_uvarint(&e->buf, ref);
}

static int encode_funcs(struct enc *e, const struct hp_module *m)
{
	int rc = 0;

	for (uint32_t i = 0; i < m->nr_funcs && !rc; i++) {
		const struct hp_func *f = &m->funcs[i];
		const bool old = !(f->flags & HP_FUNC_NEW);

		rc = put_str_ref(e, f->name);
		rc = rc ?: hp_put_uvarint(&e->buf, f->flags);
		if (old) { /* a new function has no old code */
			rc = rc ?: hp_put_uvarint(&e->buf, f->old_addr);
			rc = rc ?: hp_put_uvarint(&e->buf, f->old_size);
		}
		rc = rc ?: hp_put_uvarint(&e->buf, f->new_off);
		rc = rc ?: hp_put_uvarint(&e->buf, f->new_size);
		if (old)
			rc = rc
				     ?: hp_buf_append(&e->buf, f->old_hash,
						      sizeof(f->old_hash));
	}
	return rc;
}

/* Offsets as the difference from the previous one: hpdiff emits them
 * grouped by type and sorted, so most differences take a byte. */
static int encode_relocs(struct enc *e, const struct hp_module *m)
{
	uint32_t prev = 0;
	int rc = 0;

	for (uint32_t i = 0; i < m->nr_relocs && !rc; i++) {
		const struct hp_reloc *r = &m->relocs[i];
		const uint8_t tb =
			(uint8_t)(r->type | r->base << HP_RELOC_TYPE_BITS);

		rc = hp_put_svarint(&e->buf, (int64_t)r->offset - prev);
		rc = rc ?: hp_buf_append(&e->buf, &tb, 1);
		if (r->base == HP_RB_SYMBOL)
			rc = rc ?: hp_put_uvarint(&e->buf, r->sym);
		rc = rc ?: hp_put_svarint(&e->buf, r->value);
		prev = r->offset;
	}
	return rc;
}

static int encode_module(struct enc *e, const struct hp_module *m)
{
	int rc = put_str_ref(e, m->name);

	rc = rc ?: hp_put_uvarint(&e->buf, m->nr_funcs);
	rc = rc ?: hp_put_uvarint(&e->buf, m->nr_relocs);
	rc = rc ?: hp_put_uvarint(&e->buf, m->nr_syms);
	rc = rc ?: hp_put_uvarint(&e->buf, m->text_size);
	rc = rc ?: hp_put_uvarint(&e->buf, m->data_size);
	rc = rc ?: hp_put_uvarint(&e->buf, m->bss_size);
	if (e->unwind) {
		rc = rc ?: hp_put_uvarint(&e->buf, m->eh_off);
		rc = rc ?: hp_put_uvarint(&e->buf, m->eh_size);
	}
	rc = rc ?: encode_funcs(e, m);
	rc = rc ?: encode_relocs(e, m);
	for (uint32_t i = 0; i < m->nr_syms && !rc; i++) {
		const struct hp_sym *s = &m->syms[i];
		int src = 0;
		const uint32_t ver =
			s->version ? add_str(e, s->version, &src) : 0;

		rc = src ?: put_str_ref(e, s->name);
		/* 0: unversioned, else the reference plus one */
		rc = rc
			     ?: hp_put_uvarint(&e->buf,
					       s->version ? (uint64_t)ver + 1
							  : 0);
	}
	rc = rc ?: hp_buf_append(&e->buf, m->text, m->text_size);
	rc = rc ?: hp_buf_append(&e->buf, m->data, m->data_size);
	return rc;
}

/* The records first (they fill the string table), then the payload is
 * the module count, the string table and the records, in that order. */
static int encode_payload(const struct hp_patch *p, struct hp_buf *out)
{
	struct enc e = { .unwind = header_flags(p) & HP_HDR_UNWIND };
	int rc = 0;

	for (uint32_t i = 0; i < p->nr_modules && !rc; i++)
		rc = encode_module(&e, &p->modules[i]);
	rc = rc ?: hp_put_uvarint(out, p->nr_modules);
	rc = rc ?: hp_put_uvarint(out, e.strtab.len);
	rc = rc ?: hp_buf_append(out, e.strtab.data, e.strtab.len);
	rc = rc ?: hp_buf_append(out, e.buf.data, e.buf.len);
	if (!rc && out->len > HP_PAYLOAD_MAX)
		rc = -HP_E_TOOBIG;
	hp_buf_release(&e.buf);
	hp_buf_release(&e.strtab);
	return rc;
}

static int put_str(struct hp_buf *b, const char *s, size_t max)
{
	const size_t len = s ? strlen(s) : 0;

	if (len > max)
		return -HP_E_TOOBIG;
	return hp_put_uvarint(b, len) ?: hp_buf_append(b, s, len);
}

static int encode_meta(const struct hp_patch *p, struct hp_buf *meta)
{
	int rc = hp_put_uvarint(meta, p->sequence);

	rc = rc ?: hp_put_uvarint(meta, p->created);
	rc = rc ?: hp_put_uvarint(meta, p->expires);
	rc = rc ?: hp_put_uvarint(meta, p->nr_modules);
	rc = rc ?: put_str(meta, p->id, HP_ID_MAX);
	rc = rc ?: put_str(meta, p->description, HP_STR_MAX);
	rc = rc ?: put_str(meta, p->creator, HP_STR_MAX);
	for (uint32_t i = 0; i < p->nr_modules && !rc; i++) {
		const uint8_t len = (uint8_t)p->modules[i].build_id_len;

		rc = hp_buf_append(meta, &len, 1);
		rc = rc ?: hp_buf_append(meta, p->modules[i].build_id, len);
	}
	if (!rc && meta->len > HP_META_MAX)
		rc = -HP_E_TOOBIG;
	return rc;
}

int hp_pack_write(const struct hp_patch *p, const struct hp_seckey *key,
		  struct hp_buf *out)
{
	struct hp_buf pl = { 0 }, meta = { 0 };
	uint8_t hdr[HP_HEADER_BYTES] = { 0 };
	size_t bound, start = out->len, csize;
	int rc;

	rc = hp_pack_validate("patch", p);
	if (rc)
		return rc;
	rc = encode_payload(p, &pl);
	rc = rc ?: encode_meta(p, &meta);
	if (rc)
		goto out_release;
	bound = ZSTD_compressBound(pl.len);
	rc = hp_buf_reserve(out, sizeof(hdr) + meta.len + bound +
					 HP_SIG_TRAILER_BYTES);
	if (rc)
		goto out_release;
	memcpy(out->data + start + sizeof(hdr), meta.data, meta.len);
	{
		ZSTD_CCtx *cctx = ZSTD_createCCtx();

		if (!cctx) {
			rc = -ENOMEM;
			goto out_release;
		}
		ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel,
				       HP_ZSTD_LEVEL);
		ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
		/* No frame checksum: the signature covers every byte. */
		ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0);
		csize = ZSTD_compress2(
			cctx, out->data + start + sizeof(hdr) + meta.len, bound,
			pl.data, pl.len);
		ZSTD_freeCCtx(cctx);
	}
	if (ZSTD_isError(csize)) {
		rc = hp_error(-HP_E_BADFORMAT, "zstd: %s",
			      ZSTD_getErrorName(csize));
		goto out_release;
	}
	memcpy(hdr, HP_MAGIC, HP_MAGIC_BYTES);
	hp_put_le16(hdr + 8, HP_FORMAT_VERSION);
	hp_put_le16(hdr + 10, header_flags(p));
	hp_put_le32(hdr + 12, (uint32_t)meta.len);
	hp_put_le32(hdr + 16, (uint32_t)csize);
	hp_put_le32(hdr + 20, (uint32_t)pl.len);
	memcpy(out->data + start, hdr, sizeof(hdr));
	out->len = start + sizeof(hdr) + meta.len + csize;
	if (key)
		rc = hp_sign_append(key, out);
out_release:
	hp_buf_release(&pl);
	hp_buf_release(&meta);
	return rc;
}
