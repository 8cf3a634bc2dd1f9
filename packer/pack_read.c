/*
 * Reading .hpatch v1, hostile input assumed. The order is the one in
 * docs/FORMAT.md: signature over the whole file first, then header and
 * metadata, then a decompression bounded before allocation, then every
 * count, offset and size against its container. Nothing is trusted.
 */
#include "packer/packer_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

struct range {
	uint64_t start;
	uint64_t end;
};

struct dec {
	const char *name;
	const uint8_t *pl; /* decompressed payload */
	size_t len;
	const char *strtab;
	uint32_t strtab_size;
	struct range *ranges;
	size_t nr_ranges;
};

static int fail(const char *name, const char *what)
{
	return hp_error(-HP_E_BADFORMAT, "'%s': %s", name, what);
}

/* Claim [off, off+size) of the payload; must be inside and not overlap. */
static int claim(struct dec *d, uint64_t off, uint64_t size, const char *what)
{
	struct range *r = NULL;

	if (off > d->len || size > d->len - off)
		return hp_error(-HP_E_BADFORMAT,
				"'%s': %s lies outside the payload", d->name,
				what);
	if (!size)
		return 0;
	for (size_t i = 0; i < d->nr_ranges; i++)
		if (off < d->ranges[i].end && d->ranges[i].start < off + size)
			return hp_error(-HP_E_BADFORMAT,
					"'%s': %s overlaps another range",
					d->name, what);
	r = realloc(d->ranges, (d->nr_ranges + 1) * sizeof(*r));
	if (!r)
		return -ENOMEM;
	d->ranges = r;
	d->ranges[d->nr_ranges++] = (struct range){ off, off + size };
	return 0;
}

/* A string reference: inside the table, terminated there, not empty. */
static int get_str(struct dec *d, uint32_t ref, bool optional, char **out)
{
	const char *s = NULL, *nul = NULL;

	*out = NULL;
	if (optional && ref == HP_STR_NONE)
		return 0;
	if (ref >= d->strtab_size)
		return fail(d->name, "string reference outside the string "
				     "table");
	s = d->strtab + ref;
	nul = memchr(s, 0, d->strtab_size - ref);
	if (!nul || nul == s)
		return fail(d->name, "unterminated or empty string");
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

static int read_funcs(struct dec *d, struct hp_module *m, uint32_t off)
{
	int rc = claim(d, off,
		       (uint64_t)m->nr_funcs * sizeof(struct hp_disk_func),
		       "function table");

	if (rc)
		return rc;
	m->funcs = calloc(m->nr_funcs, sizeof(*m->funcs));
	if (!m->funcs)
		return -ENOMEM;
	for (uint32_t i = 0; i < m->nr_funcs; i++) {
		const uint8_t *r =
			d->pl + off + i * sizeof(struct hp_disk_func);
		struct hp_func *f = &m->funcs[i];

		rc = get_str(d, hp_get_le32(r), false, &f->name);
		if (rc)
			return rc;
		f->flags = hp_get_le32(r + 4);
		f->old_addr = hp_get_le64(r + 8);
		f->old_size = hp_get_le32(r + 16);
		f->new_off = hp_get_le32(r + 20);
		f->new_size = hp_get_le32(r + 24);
		if (hp_get_le32(r + 28))
			return fail(d->name, "function record: reserved field "
					     "not zero");
		memcpy(f->old_hash, r + 32, 16);
	}
	return 0;
}

static int read_relocs(struct dec *d, struct hp_module *m, uint32_t off)
{
	int rc = claim(d, off,
		       (uint64_t)m->nr_relocs * sizeof(struct hp_disk_reloc),
		       "relocation table");

	if (rc)
		return rc;
	m->relocs = calloc(m->nr_relocs ? m->nr_relocs : 1, sizeof(*m->relocs));
	if (!m->relocs)
		return -ENOMEM;
	for (uint32_t i = 0; i < m->nr_relocs; i++) {
		const uint8_t *r =
			d->pl + off + i * sizeof(struct hp_disk_reloc);

		if (hp_get_le16(r + 6) || hp_get_le32(r + 12))
			return fail(d->name,
				    "relocation record: reserved field "
				    "not zero");
		m->relocs[i] = (struct hp_reloc){
			.offset = hp_get_le32(r),
			.type = r[4],
			.base = r[5],
			.sym = hp_get_le32(r + 8),
			.value = (int64_t)hp_get_le64(r + 16),
		};
	}
	return 0;
}

static int read_syms(struct dec *d, struct hp_module *m, uint32_t off)
{
	int rc =
		claim(d, off, (uint64_t)m->nr_syms * sizeof(struct hp_disk_sym),
		      "symbol table");

	if (rc)
		return rc;
	m->syms = calloc(m->nr_syms ? m->nr_syms : 1, sizeof(*m->syms));
	if (!m->syms)
		return -ENOMEM;
	for (uint32_t i = 0; i < m->nr_syms && !rc; i++) {
		const uint8_t *r = d->pl + off + i * sizeof(struct hp_disk_sym);

		rc = get_str(d, hp_get_le32(r), false, &m->syms[i].name);
		if (!rc)
			rc = get_str(d, hp_get_le32(r + 4), true,
				     &m->syms[i].version);
	}
	return rc;
}

static int read_blob(struct dec *d, uint32_t off, uint32_t size,
		     const char *what, uint8_t **out)
{
	int rc = claim(d, off, size, what);

	if (rc || !size)
		return rc;
	*out = malloc(size);
	if (!*out)
		return -ENOMEM;
	memcpy(*out, d->pl + off, size);
	return 0;
}

static int read_module(struct dec *d, struct hp_module *m, uint32_t i)
{
	const uint8_t *r = d->pl + sizeof(struct hp_disk_payload) +
			   i * sizeof(struct hp_disk_module);
	int rc;

	for (int k = 48; k < 64; k++)
		if (r[k])
			return fail(d->name,
				    "module record: reserved field not "
				    "zero");
	m->nr_funcs = hp_get_le32(r + 4);
	m->nr_relocs = hp_get_le32(r + 12);
	m->nr_syms = hp_get_le32(r + 20);
	m->text_size = hp_get_le32(r + 28);
	m->data_size = hp_get_le32(r + 36);
	m->bss_size = hp_get_le32(r + 44);
	if (!m->nr_funcs || m->nr_funcs > HP_FUNCS_MAX ||
	    m->nr_relocs > HP_RELOCS_MAX || m->nr_syms > HP_SYMS_MAX ||
	    !m->text_size || m->text_size > HP_BLOB_MAX ||
	    m->data_size > HP_BLOB_MAX || m->bss_size > HP_BLOB_MAX)
		return fail(d->name, "module record: count or size out of "
				     "bounds");
	rc = get_str(d, hp_get_le32(r), false, &m->name);
	rc = rc ?: read_funcs(d, m, hp_get_le32(r + 8));
	rc = rc ?: read_relocs(d, m, hp_get_le32(r + 16));
	rc = rc ?: read_syms(d, m, hp_get_le32(r + 24));
	rc = rc
		     ?: read_blob(d, hp_get_le32(r + 32), m->text_size, "text",
				  &m->text);
	rc = rc
		     ?: read_blob(d, hp_get_le32(r + 40), m->data_size, "data",
				  &m->data);
	return rc;
}

static int read_payload(struct dec *d, struct hp_patch *p)
{
	const uint64_t fixed =
		sizeof(struct hp_disk_payload) +
		(uint64_t)p->nr_modules * sizeof(struct hp_disk_module);
	uint32_t strtab_off;
	int rc;

	if (d->len < fixed)
		return fail(d->name, "payload shorter than its module records");
	if (hp_get_le32(d->pl) != p->nr_modules || hp_get_le32(d->pl + 12))
		return fail(d->name, "payload header disagrees with the "
				     "metadata");
	strtab_off = hp_get_le32(d->pl + 4);
	d->strtab_size = hp_get_le32(d->pl + 8);
	rc = claim(d, 0, fixed, "module records");
	rc = rc ?: claim(d, strtab_off, d->strtab_size, "string table");
	if (rc)
		return rc;
	if (!d->strtab_size || d->pl[strtab_off + d->strtab_size - 1])
		return fail(d->name, "string table not NUL-terminated");
	d->strtab = (const char *)d->pl + strtab_off;
	for (uint32_t i = 0; i < p->nr_modules && !rc; i++)
		rc = read_module(d, &p->modules[i], i);
	return rc;
}

static int get_str16(const char *name, const uint8_t *meta, size_t len,
		     size_t *pos, size_t max, char **out)
{
	size_t n;

	if (len - *pos < 2)
		return fail(name, "metadata truncated");
	n = hp_get_le16(meta + *pos);
	*pos += 2;
	if (n > max || len - *pos < n || memchr(meta + *pos, 0, n))
		return fail(name, "metadata string malformed");
	*out = strndup((const char *)meta + *pos, n);
	*pos += n;
	return *out ? 0 : -ENOMEM;
}

static int read_meta(const char *name, const uint8_t *meta, size_t len,
		     struct hp_patch *p)
{
	size_t pos = sizeof(struct hp_disk_meta);
	int rc;

	if (len < pos)
		return fail(name, "metadata truncated");
	p->sequence = hp_get_le64(meta);
	p->created = hp_get_le64(meta + 8);
	p->expires = hp_get_le64(meta + 16);
	p->nr_modules = hp_get_le32(meta + 24);
	if (hp_get_le32(meta + 28))
		return fail(name, "metadata: reserved field not zero");
	if (!p->nr_modules || p->nr_modules > HP_MODULES_MAX)
		return fail(name, "metadata: module count out of bounds");
	p->modules = calloc(p->nr_modules, sizeof(*p->modules));
	if (!p->modules) {
		p->nr_modules = 0;
		return -ENOMEM;
	}
	rc = get_str16(name, meta, len, &pos, HP_ID_MAX, &p->id);
	rc = rc ?: get_str16(name, meta, len, &pos, 0xffff, &p->description);
	rc = rc ?: get_str16(name, meta, len, &pos, 0xffff, &p->creator);
	if (!rc && !*p->id)
		rc = fail(name, "metadata: empty patch id");
	for (uint32_t i = 0; i < p->nr_modules && !rc; i++) {
		struct hp_module *m = &p->modules[i];

		if (pos >= len)
			return fail(name, "metadata truncated");
		m->build_id_len = meta[pos++];
		if (!m->build_id_len || m->build_id_len > HP_BUILD_ID_MAX ||
		    len - pos < m->build_id_len)
			return fail(name, "metadata: bad build-id");
		memcpy(m->build_id, meta + pos, m->build_id_len);
		pos += m->build_id_len;
	}
	if (!rc && pos != len)
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
	struct dec d = { .name = name };
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
	if (body < sizeof(struct hp_disk_header)) {
		rc = hp_error(-HP_E_BADFORMAT,
			      "'%s': truncated header (%zu of %zu bytes)", name,
			      body, sizeof(struct hp_disk_header));
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
	meta_size = hp_get_le32(file + 16);
	csize = hp_get_le32(file + 20);
	usize = hp_get_le64(file + 24);
	rc = hp_get_le16(file + 10) != sizeof(struct hp_disk_header) ||
	     hp_get_le32(file + 12);
	if (rc) {
		rc = fail(name, "header: bad header size or flags");
		goto out_free;
	}
	if (meta_size < sizeof(struct hp_disk_meta) ||
	    meta_size > HP_META_MAX || !csize ||
	    sizeof(struct hp_disk_header) + (uint64_t)meta_size + csize !=
		    body) {
		rc = hp_error(-HP_E_BADFORMAT,
			      "'%s': sizes in the header do not add up to the "
			      "file (%zu bytes)",
			      name, body);
		goto out_free;
	}
	if (usize < sizeof(struct hp_disk_payload) || usize > HP_PAYLOAD_MAX) {
		rc = hp_error(-HP_E_TOOBIG,
			      "'%s': payload of %zu bytes is beyond the limit",
			      name, usize);
		goto out_free;
	}
	p->info.header_size = sizeof(struct hp_disk_header);
	p->info.meta_size = meta_size;
	p->info.payload_csize = csize;
	p->info.payload_usize = usize;
	rc = read_meta(name, file + sizeof(struct hp_disk_header), meta_size,
		       p);
	if (rc)
		goto out_free;

	/* The frame's own size claim must agree before we allocate. */
	fsize = ZSTD_getFrameContentSize(
		file + sizeof(struct hp_disk_header) + meta_size, csize);
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
			      file + sizeof(struct hp_disk_header) + meta_size,
			      csize);
	if (ZSTD_isError(got) || got != usize) {
		rc = hp_error(-HP_E_BADFORMAT, "'%s': payload: %s", name,
			      ZSTD_isError(got) ? ZSTD_getErrorName(got)
						: "wrong size");
		goto out_free;
	}
	d.pl = payload;
	d.len = usize;
	rc = read_payload(&d, p);
	rc = rc ?: hp_pack_validate(name, p);
	if (rc)
		goto out_free;
	*out = p;
	p = NULL;
out_free:
	free(d.ranges);
	free(payload);
	hp_patch_free(p);
	return rc;
}
