/*
 * Reading .hpatch v2, hostile input assumed. The order is the one in
 * docs/FORMAT.md: signature over the whole file first, then header and
 * metadata, then a decompression bounded before allocation, then every
 * number, count and size against what is left. Nothing is trusted.
 */
#include "packer/packer_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

struct dec {
	struct hp_cursor c; /* over the decompressed payload */
	const char *strtab;
	size_t strtab_size;
	bool unwind; /* HP_HDR_UNWIND: records carry unwind tables */
};

static int fail(const char *name, const char *what)
{
	return hp_error(-HP_E_BADFORMAT, "'%s': %s", name, what);
}

/* A string reference: inside the table, terminated there, not empty;
 * with @optional, 0 is none and others are the reference plus one. */
static int get_str(struct dec *d, bool optional, const char *what, char **out)
{
	const char *s = NULL, *nul = NULL;
	uint64_t ref;
	int rc = hp_get_uvarint(&d->c, UINT32_MAX, what, &ref);

	*out = NULL;
	if (rc || (optional && !ref))
		return rc;
	ref -= optional;
	if (ref >= d->strtab_size)
		return hp_error(-HP_E_BADFORMAT,
				"'%s': %s: string reference outside the "
				"string table",
				d->c.name, what);
	s = d->strtab + ref;
	nul = memchr(s, 0, d->strtab_size - ref);
	if (!nul || nul == s)
		return hp_error(-HP_E_BADFORMAT,
				"'%s': %s: unterminated or empty string",
				d->c.name, what);
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

static int get_u32(struct dec *d, uint32_t max, const char *what, uint32_t *out)
{
	uint64_t v;
	int rc = hp_get_uvarint(&d->c, max, what, &v);

	if (!rc)
		*out = (uint32_t)v;
	return rc;
}

/* Allocate @nr records of @size once the payload left could hold them
 * (each takes at least @min bytes): a lying count allocates nothing. */
static int alloc_records(struct dec *d, uint32_t nr, size_t min, size_t size,
			 const char *what, void **out)
{
	if ((uint64_t)nr * min > d->c.len - d->c.pos)
		return hp_error(-HP_E_BADFORMAT,
				"'%s': %u %s do not fit in the payload",
				d->c.name, nr, what);
	*out = calloc(nr ? nr : 1, size);
	return *out ? 0 : -ENOMEM;
}

static int read_funcs(struct dec *d, struct hp_module *m)
{
	int rc = alloc_records(d, m->nr_funcs, HP_FUNC_MIN_BYTES,
			       sizeof(*m->funcs), "functions",
			       (void **)&m->funcs);

	for (uint32_t i = 0; i < m->nr_funcs && !rc; i++) {
		struct hp_func *f = &m->funcs[i];
		const uint8_t *hash = NULL;
		bool old;

		rc = get_str(d, false, "function name", &f->name);
		rc = rc ?: get_u32(d, UINT32_MAX, "function flags", &f->flags);
		old = !(f->flags & HP_FUNC_NEW);
		if (old) { /* a new function has no old code */
			rc = rc
				     ?: hp_get_uvarint(&d->c, UINT64_MAX,
						       "function address",
						       &f->old_addr);
			rc = rc
				     ?: get_u32(d, UINT32_MAX, "function size",
						&f->old_size);
		}
		rc = rc
			     ?: get_u32(d, HP_BLOB_MAX, "function offset",
					&f->new_off);
		rc = rc
			     ?: get_u32(d, HP_BLOB_MAX, "function size",
					&f->new_size);
		if (old)
			rc = rc
				     ?: hp_get_bytes(&d->c, sizeof(f->old_hash),
						     "function hash", &hash);
		if (!rc && old)
			memcpy(f->old_hash, hash, sizeof(f->old_hash));
	}
	return rc;
}

static int read_relocs(struct dec *d, struct hp_module *m)
{
	int rc = alloc_records(d, m->nr_relocs, HP_RELOC_MIN_BYTES,
			       sizeof(*m->relocs), "relocations",
			       (void **)&m->relocs);
	int64_t offset = 0;

	for (uint32_t i = 0; i < m->nr_relocs && !rc; i++) {
		struct hp_reloc *r = &m->relocs[i];
		const uint8_t *tb = NULL;
		int64_t delta = 0;

		rc = hp_get_svarint(&d->c, "relocation offset", &delta);
		rc = rc ?: hp_get_bytes(&d->c, 1, "relocation type", &tb);
		if (rc)
			break;
		/* Both within 32 bits first: the sum cannot overflow. */
		if (delta < -(int64_t)UINT32_MAX || delta > UINT32_MAX ||
		    (offset += delta) < 0 || offset > UINT32_MAX)
			return fail(d->c.name, "relocation offset out of "
					       "bounds");
		r->offset = (uint32_t)offset;
		r->type = *tb & ((1u << HP_RELOC_TYPE_BITS) - 1);
		r->base = *tb >> HP_RELOC_TYPE_BITS;
		if (r->base == HP_RB_SYMBOL)
			rc = get_u32(d, HP_SYMS_MAX, "relocation symbol",
				     &r->sym);
		rc = rc ?: hp_get_svarint(&d->c, "relocation value", &r->value);
	}
	return rc;
}

static int read_syms(struct dec *d, struct hp_module *m)
{
	int rc = alloc_records(d, m->nr_syms, HP_SYM_MIN_BYTES,
			       sizeof(*m->syms), "symbols", (void **)&m->syms);

	for (uint32_t i = 0; i < m->nr_syms && !rc; i++) {
		rc = get_str(d, false, "symbol name", &m->syms[i].name);
		rc = rc
			     ?: get_str(d, true, "symbol version",
					&m->syms[i].version);
	}
	return rc;
}

static int read_blob(struct dec *d, uint32_t size, const char *what,
		     uint8_t **out)
{
	const uint8_t *at = NULL;
	int rc = hp_get_bytes(&d->c, size, what, &at);

	if (rc || !size)
		return rc;
	*out = malloc(size);
	if (!*out)
		return -ENOMEM;
	memcpy(*out, at, size);
	return 0;
}

static int read_module(struct dec *d, struct hp_module *m)
{
	int rc = get_str(d, false, "module name", &m->name);

	rc = rc ?: get_u32(d, HP_FUNCS_MAX, "function count", &m->nr_funcs);
	rc = rc ?: get_u32(d, HP_RELOCS_MAX, "relocation count", &m->nr_relocs);
	rc = rc ?: get_u32(d, HP_SYMS_MAX, "symbol count", &m->nr_syms);
	rc = rc ?: get_u32(d, HP_BLOB_MAX, "text size", &m->text_size);
	rc = rc ?: get_u32(d, HP_BLOB_MAX, "data size", &m->data_size);
	rc = rc ?: get_u32(d, HP_BLOB_MAX, "bss size", &m->bss_size);
	if (d->unwind) {
		rc = rc
			     ?: get_u32(d, HP_BLOB_MAX, "unwind table offset",
					&m->eh_off);
		rc = rc
			     ?: get_u32(d, HP_BLOB_MAX, "unwind table size",
					&m->eh_size);
	}
	if (!rc && (!m->nr_funcs || !m->text_size))
		rc = fail(d->c.name, "module without functions or text");
	rc = rc ?: read_funcs(d, m);
	rc = rc ?: read_relocs(d, m);
	rc = rc ?: read_syms(d, m);
	rc = rc ?: read_blob(d, m->text_size, "text", &m->text);
	rc = rc ?: read_blob(d, m->data_size, "data", &m->data);
	return rc;
}

static int read_payload(struct dec *d, struct hp_patch *p)
{
	const uint8_t *strtab = NULL;
	uint64_t v;
	int rc = hp_get_uvarint(&d->c, HP_MODULES_MAX, "payload module count",
				&v);

	if (!rc && v != p->nr_modules)
		return fail(d->c.name, "payload header disagrees with the "
				       "metadata");
	rc = rc
		     ?: hp_get_uvarint(&d->c, HP_PAYLOAD_MAX,
				       "string table size", &v);
	rc = rc ?: hp_get_bytes(&d->c, v, "string table", &strtab);
	if (rc)
		return rc;
	if (!v || strtab[v - 1])
		return fail(d->c.name, "string table not NUL-terminated");
	d->strtab = (const char *)strtab;
	d->strtab_size = v;
	for (uint32_t i = 0; i < p->nr_modules && !rc; i++)
		rc = read_module(d, &p->modules[i]);
	if (!rc && d->c.pos != d->c.len)
		rc = fail(d->c.name, "payload has trailing bytes");
	return rc;
}

static int get_meta_str(struct hp_cursor *c, size_t max, const char *what,
			char **out)
{
	const uint8_t *at = NULL;
	uint64_t n;
	int rc = hp_get_uvarint(c, max, what, &n);

	rc = rc ?: hp_get_bytes(c, n, what, &at);
	if (rc)
		return rc;
	if (memchr(at, 0, n))
		return hp_error(-HP_E_BADFORMAT, "'%s': %s holds a NUL byte",
				c->name, what);
	*out = strndup((const char *)at, n);
	return *out ? 0 : -ENOMEM;
}

static int read_meta(const char *name, const uint8_t *meta, size_t len,
		     struct hp_patch *p)
{
	struct hp_cursor c = { .name = name, .p = meta, .len = len };
	uint64_t nr = 0;
	int rc = hp_get_uvarint(&c, UINT64_MAX, "sequence", &p->sequence);

	rc = rc ?: hp_get_uvarint(&c, UINT64_MAX, "creation time", &p->created);
	rc = rc ?: hp_get_uvarint(&c, UINT64_MAX, "expiry time", &p->expires);
	rc = rc ?: hp_get_uvarint(&c, HP_MODULES_MAX, "module count", &nr);
	if (rc)
		return rc;
	if (!nr)
		return fail(name, "metadata: no module");
	p->modules = calloc(nr, sizeof(*p->modules));
	if (!p->modules)
		return -ENOMEM;
	p->nr_modules = (uint32_t)nr;
	rc = get_meta_str(&c, HP_ID_MAX, "patch id", &p->id);
	rc = rc ?: get_meta_str(&c, HP_STR_MAX, "description", &p->description);
	rc = rc ?: get_meta_str(&c, HP_STR_MAX, "creator", &p->creator);
	if (!rc && !*p->id)
		rc = fail(name, "metadata: empty patch id");
	for (uint32_t i = 0; i < p->nr_modules && !rc; i++) {
		struct hp_module *m = &p->modules[i];
		const uint8_t *at = NULL;

		rc = hp_get_bytes(&c, 1, "build-id length", &at);
		if (rc)
			break;
		m->build_id_len = *at;
		if (!m->build_id_len || m->build_id_len > HP_BUILD_ID_MAX)
			return fail(name, "metadata: bad build-id");
		rc = hp_get_bytes(&c, m->build_id_len, "build-id", &at);
		if (!rc)
			memcpy(m->build_id, at, m->build_id_len);
	}
	if (!rc && c.pos != len)
		rc = fail(name, "metadata has trailing bytes");
	return rc;
}

static int verify(const char *name, const uint8_t *file, size_t len,
		  const struct hp_trust *trust, unsigned int flags,
		  struct hp_patch_file_info *info, size_t *body_len)
{
	char id[HP_KEY_ID_STR_BYTES];
	int rc;

	*body_len = len;
	if (flags & HP_PACK_NO_VERIFY) {
		if (hp_sign_has_trailer(file, len)) {
			info->is_signed = true;
			memcpy(info->key_id, file + len - HP_SIG_TRAILER_BYTES,
			       HP_KEY_ID_BYTES);
			*body_len = len - HP_SIG_TRAILER_BYTES;
		}
		return 0;
	}
	rc = hp_sign_check(file, len, trust, NULL, info->key_id, body_len);
	hp_sign_key_id_str(id, info->key_id);
	switch (rc) {
	case 0:
		info->is_signed = true;
		return 0;
	case -HP_E_UNSIGNED:
		hp_error(rc, "'%s': not signed", name);
		hp_hint("sign it with 'hpsign sign --key KEY %s'", name);
		return rc;
	case -HP_E_UNTRUSTED:
		if (flags & HP_PACK_ALLOW_UNTRUSTED) {
			/* inspect: reported as untrusted, never applied */
			info->is_signed = true;
			return 0;
		}
		hp_error(rc, "'%s': signed by untrusted key %s", name, id);
		hp_hint("install the signer's public key in the trusted keys "
			"directory (see --trust)");
		return rc;
	default:
		return hp_error(rc,
				"'%s': bad signature (key %s): the file "
				"was altered after signing",
				name, id);
	}
}

int hp_pack_read(const char *name, const uint8_t *file, size_t len,
		 const struct hp_trust *trust, unsigned int flags,
		 struct hp_patch **out)
{
	struct hp_patch *p = NULL;
	struct dec d = { 0 };
	uint8_t *payload = NULL;
	size_t body = 0, meta_size, csize, usize, got;
	unsigned long long fsize;
	int rc;

	*out = NULL;
	p = hp_patch_new();
	if (!p)
		return -ENOMEM;
	p->info.file_size = len;
	rc = verify(name, file, len, trust, flags, &p->info, &body);
	if (rc)
		goto out_free;
	p->info.sig_size = len - body;
	if (body < HP_HEADER_BYTES) {
		rc = hp_error(-HP_E_BADFORMAT,
			      "'%s': truncated header (%zu of %u bytes)", name,
			      body, HP_HEADER_BYTES);
		goto out_free;
	}
	if (memcmp(file, HP_MAGIC, HP_MAGIC_BYTES)) {
		rc = fail(name, "not an hpatch file (bad magic)");
		goto out_free;
	}
	if (hp_get_le16(file + 8) != HP_FORMAT_VERSION) {
		rc = hp_error(-HP_E_BADVERSION,
			      "'%s': format version %u; this hpatch reads %u",
			      name, hp_get_le16(file + 8), HP_FORMAT_VERSION);
		goto out_free;
	}
	if (hp_get_le16(file + 10) & ~HP_HDR_KNOWN_FLAGS) {
		rc = hp_error(-HP_E_BADFORMAT,
			      "'%s': header: unknown flags 0x%x; this hpatch "
			      "knows 0x%x",
			      name, hp_get_le16(file + 10), HP_HDR_KNOWN_FLAGS);
		goto out_free;
	}
	d.unwind = hp_get_le16(file + 10) & HP_HDR_UNWIND;
	meta_size = hp_get_le32(file + 12);
	csize = hp_get_le32(file + 16);
	usize = hp_get_le32(file + 20);
	if (meta_size < HP_META_MIN || meta_size > HP_META_MAX || !csize ||
	    HP_HEADER_BYTES + (uint64_t)meta_size + csize != body) {
		rc = hp_error(-HP_E_BADFORMAT,
			      "'%s': sizes in the header do not add up to the "
			      "file (%zu bytes)",
			      name, body);
		goto out_free;
	}
	if (!usize || usize > HP_PAYLOAD_MAX) {
		rc = hp_error(-HP_E_TOOBIG,
			      "'%s': payload of %zu bytes is beyond the limit",
			      name, usize);
		goto out_free;
	}
	p->info.header_size = HP_HEADER_BYTES;
	p->info.meta_size = meta_size;
	p->info.payload_csize = csize;
	p->info.payload_usize = usize;
	rc = read_meta(name, file + HP_HEADER_BYTES, meta_size, p);
	if (rc)
		goto out_free;

	/* The frame's own size claim must agree before we allocate. */
	fsize = ZSTD_getFrameContentSize(file + HP_HEADER_BYTES + meta_size,
					 csize);
	if (fsize != usize) {
		rc = fail(name, "compressed payload's size disagrees with the "
				"header");
		goto out_free;
	}
	payload = malloc(usize);
	if (!payload) {
		rc = -ENOMEM;
		goto out_free;
	}
	got = ZSTD_decompress(payload, usize,
			      file + HP_HEADER_BYTES + meta_size, csize);
	if (ZSTD_isError(got) || got != usize) {
		rc = hp_error(-HP_E_BADFORMAT, "'%s': payload: %s", name,
			      ZSTD_isError(got) ? ZSTD_getErrorName(got)
						: "wrong size");
		goto out_free;
	}
	d.c = (struct hp_cursor){ .name = name, .p = payload, .len = usize };
	rc = read_payload(&d, p);
	rc = rc ?: hp_pack_validate(name, p);
	if (rc)
		goto out_free;
	*out = p;
	p = NULL;
out_free:
	free(payload);
	hp_patch_free(p);
	return rc;
}
