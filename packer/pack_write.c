/*
 * Encoding a patch as .hpatch v1: header, metadata, the payload compressed
 * as one zstd frame (content size and checksum recorded), then the
 * signature trailer over every byte before it.
 */
#include "packer/packer_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define HP_ZSTD_LEVEL 19

/* A payload under construction: fixed part, then appended ranges. */
struct enc {
	struct hp_buf buf;
	struct hp_buf strtab;
};

static int put32(struct hp_buf *b, uint32_t v)
{
	uint8_t x[4];

	hp_put_le32(x, v);
	return hp_buf_append(b, x, sizeof(x));
}

static int put64(struct hp_buf *b, uint64_t v)
{
	uint8_t x[8];

	hp_put_le64(x, v);
	return hp_buf_append(b, x, sizeof(x));
}

/* Strings are stored once each; Return: the reference or HP_STR_NONE. */
static uint32_t add_str(struct enc *e, const char *s, int *rc)
{
	size_t off = 0;

	if (*rc || !s)
		return HP_STR_NONE;
	while (off < e->strtab.len) {
		const char *have = (const char *)e->strtab.data + off;

		if (!strcmp(have, s))
			return (uint32_t)off;
		off += strlen(have) + 1;
	}
	*rc = hp_buf_append(&e->strtab, s, strlen(s) + 1);
	return (uint32_t)off;
}

static int encode_module(struct enc *e, const struct hp_module *m,
			 size_t rec_at)
{
	uint8_t *rec = NULL;
	uint32_t funcs_off, relocs_off, syms_off, text_off, data_off;
	int rc = 0;

	funcs_off = (uint32_t)e->buf.len;
	for (uint32_t i = 0; i < m->nr_funcs && !rc; i++) {
		const struct hp_func *f = &m->funcs[i];

		rc = put32(&e->buf, add_str(e, f->name, &rc));
		rc = rc ?: put32(&e->buf, f->flags);
		rc = rc ?: put64(&e->buf, f->old_addr);
		rc = rc ?: put32(&e->buf, f->old_size);
		rc = rc ?: put32(&e->buf, f->new_off);
		rc = rc ?: put32(&e->buf, f->new_size);
		rc = rc ?: put32(&e->buf, 0);
		rc = rc ?: hp_buf_append(&e->buf, f->old_hash, 16);
	}
	relocs_off = (uint32_t)e->buf.len;
	for (uint32_t i = 0; i < m->nr_relocs && !rc; i++) {
		const struct hp_reloc *r = &m->relocs[i];
		const uint8_t tb[4] = { r->type, r->base, 0, 0 };

		rc = put32(&e->buf, r->offset);
		rc = rc ?: hp_buf_append(&e->buf, tb, sizeof(tb));
		rc = rc ?: put32(&e->buf, r->sym);
		rc = rc ?: put32(&e->buf, 0);
		rc = rc ?: put64(&e->buf, (uint64_t)r->value);
	}
	syms_off = (uint32_t)e->buf.len;
	for (uint32_t i = 0; i < m->nr_syms && !rc; i++) {
		rc = put32(&e->buf, add_str(e, m->syms[i].name, &rc));
		rc = rc ?: put32(&e->buf, add_str(e, m->syms[i].version, &rc));
	}
	text_off = (uint32_t)e->buf.len;
	rc = rc ?: hp_buf_append(&e->buf, m->text, m->text_size);
	data_off = (uint32_t)e->buf.len;
	rc = rc ?: hp_buf_append(&e->buf, m->data, m->data_size);
	if (rc)
		return rc;
	rec = e->buf.data + rec_at;
	hp_put_le32(rec + 0, add_str(e, m->name, &rc));
	hp_put_le32(rec + 4, m->nr_funcs);
	hp_put_le32(rec + 8, funcs_off);
	hp_put_le32(rec + 12, m->nr_relocs);
	hp_put_le32(rec + 16, relocs_off);
	hp_put_le32(rec + 20, m->nr_syms);
	hp_put_le32(rec + 24, syms_off);
	hp_put_le32(rec + 28, m->text_size);
	hp_put_le32(rec + 32, text_off);
	hp_put_le32(rec + 36, m->data_size);
	hp_put_le32(rec + 40, data_off);
	hp_put_le32(rec + 44, m->bss_size);
	return rc;
}

static int encode_payload(const struct hp_patch *p, struct enc *e)
{
	const size_t fixed = sizeof(struct hp_disk_payload) +
			     p->nr_modules * sizeof(struct hp_disk_module);
	int rc = hp_buf_reserve(&e->buf, fixed);

	if (rc)
		return rc;
	memset(e->buf.data, 0, fixed);
	e->buf.len = fixed;
	for (uint32_t i = 0; i < p->nr_modules && !rc; i++)
		rc = encode_module(e, &p->modules[i],
				   sizeof(struct hp_disk_payload) +
					   i * sizeof(struct hp_disk_module));
	if (!e->strtab.len)
		rc = rc ?: hp_buf_append(&e->strtab, "", 1);
	if (rc)
		return rc;
	hp_put_le32(e->buf.data + 0, p->nr_modules);
	hp_put_le32(e->buf.data + 4, (uint32_t)e->buf.len);
	hp_put_le32(e->buf.data + 8, (uint32_t)e->strtab.len);
	rc = hp_buf_append(&e->buf, e->strtab.data, e->strtab.len);
	if (!rc && e->buf.len > HP_PAYLOAD_MAX)
		rc = -HP_E_TOOBIG;
	return rc;
}

static int put_str16(struct hp_buf *b, const char *s)
{
	const size_t len = s ? strlen(s) : 0;
	uint8_t x[2];
	int rc;

	if (len > 0xffff)
		return -HP_E_TOOBIG;
	hp_put_le16(x, (uint16_t)len);
	rc = hp_buf_append(b, x, sizeof(x));
	return rc ?: hp_buf_append(b, s, len);
}

static int encode_meta(const struct hp_patch *p, struct hp_buf *meta)
{
	int rc = put64(meta, p->sequence);

	rc = rc ?: put64(meta, p->created);
	rc = rc ?: put64(meta, p->expires);
	rc = rc ?: put32(meta, p->nr_modules);
	rc = rc ?: put32(meta, 0);
	rc = rc ?: put_str16(meta, p->id);
	rc = rc ?: put_str16(meta, p->description);
	rc = rc ?: put_str16(meta, p->creator);
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
	struct enc e = { 0 };
	struct hp_buf meta = { 0 };
	uint8_t hdr[sizeof(struct hp_disk_header)] = { 0 };
	size_t bound, start = out->len, csize;
	int rc;

	rc = hp_pack_validate("patch", p);
	if (rc)
		return rc;
	rc = encode_payload(p, &e);
	rc = rc ?: encode_meta(p, &meta);
	if (rc)
		goto out_release;
	bound = ZSTD_compressBound(e.buf.len);
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
			e.buf.data, e.buf.len);
		ZSTD_freeCCtx(cctx);
	}
	if (ZSTD_isError(csize)) {
		rc = hp_error(-HP_E_BADFORMAT, "zstd: %s",
			      ZSTD_getErrorName(csize));
		goto out_release;
	}
	memcpy(hdr, HP_MAGIC, HP_MAGIC_BYTES);
	hp_put_le16(hdr + 8, HP_FORMAT_VERSION);
	hp_put_le16(hdr + 10, sizeof(hdr));
	hp_put_le32(hdr + 16, (uint32_t)meta.len);
	hp_put_le32(hdr + 20, (uint32_t)csize);
	hp_put_le64(hdr + 24, e.buf.len);
	memcpy(out->data + start, hdr, sizeof(hdr));
	out->len = start + sizeof(hdr) + meta.len + csize;
	if (key)
		rc = hp_sign_append(key, out);
out_release:
	hp_buf_release(&e.buf);
	hp_buf_release(&e.strtab);
	hp_buf_release(&meta);
	return rc;
}
