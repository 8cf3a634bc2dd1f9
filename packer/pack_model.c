/*
 * The patch model's lifetime, and the checks every patch must pass whether
 * it is about to be written or has just been read.
 */
#include "packer/packer_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hp_reloc_cmp(const void *a, const void *b)
{
	const struct hp_reloc *x = a, *y = b;

	if (x->type != y->type)
		return x->type - y->type;
	if (x->base != y->base)
		return x->base - y->base;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

struct hp_patch *hp_patch_new(void)
{
	return calloc(1, sizeof(struct hp_patch));
}

void hp_module_release(struct hp_module *m)
{
	for (uint32_t i = 0; m->funcs && i < m->nr_funcs; i++)
		free(m->funcs[i].name);
	for (uint32_t i = 0; m->syms && i < m->nr_syms; i++) {
		free(m->syms[i].name);
		free(m->syms[i].version);
	}
	free(m->name);
	free(m->funcs);
	free(m->relocs);
	free(m->syms);
	free(m->text);
	free(m->data);
}

void hp_patch_free(struct hp_patch *p)
{
	if (!p)
		return;
	for (uint32_t i = 0; p->modules && i < p->nr_modules; i++)
		hp_module_release(&p->modules[i]);
	free(p->modules);
	free(p->id);
	free(p->description);
	free(p->creator);
	free(p);
}

static int cmp_u64(const void *a, const void *b)
{
	const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* No two relocation fields share a byte: each would clobber the other. */
static int check_reloc_overlap(const char *name, const struct hp_module *m,
			       uint32_t mi)
{
	/* start << 8 | width: sorted by start, widths are at most 8 */
	uint64_t *f = malloc((m->nr_relocs ? m->nr_relocs : 1) * sizeof(*f));
	int rc = 0;

	if (!f)
		return -ENOMEM;
	for (uint32_t i = 0; i < m->nr_relocs; i++)
		f[i] = (uint64_t)m->relocs[i].offset << 8 |
		       hp_reloc_width(m->relocs[i].type);
	qsort(f, m->nr_relocs, sizeof(*f), cmp_u64);
	for (uint32_t i = 1; i < m->nr_relocs && !rc; i++)
		if ((f[i - 1] >> 8) + (f[i - 1] & 0xff) > f[i] >> 8)
			rc = hp_error(-HP_E_BADFORMAT,
				      "'%s': module %u: relocation fields "
				      "overlap at image offset 0x%llx",
				      name, mi,
				      (unsigned long long)(f[i] >> 8));
	free(f);
	return rc;
}

static int validate_module(const char *name, const struct hp_module *m,
			   uint32_t mi)
{
	const uint64_t data_off = hp_module_data_off(m);

	if (!m->build_id_len || m->build_id_len > HP_BUILD_ID_MAX)
		return hp_error(-HP_E_BADFORMAT,
				"'%s': module %u: build-id length", name, mi);
	if (!m->name || !m->text_size || !m->text || !m->nr_funcs ||
	    (m->data_size && !m->data))
		return hp_error(
			-HP_E_BADFORMAT,
			"'%s': module %u: missing name, text or functions",
			name, mi);
	if (m->text_size > HP_BLOB_MAX || m->data_size > HP_BLOB_MAX ||
	    m->bss_size > HP_BLOB_MAX || m->nr_funcs > HP_FUNCS_MAX ||
	    m->nr_relocs > HP_RELOCS_MAX || m->nr_syms > HP_SYMS_MAX)
		return hp_error(-HP_E_BADFORMAT,
				"'%s': module %u: size beyond format limits",
				name, mi);
	for (uint32_t i = 0; i < m->nr_funcs; i++) {
		const struct hp_func *f = &m->funcs[i];

		if (!f->name || !*f->name)
			return hp_error(
				-HP_E_BADFORMAT,
				"'%s': module %u: function %u has no name",
				name, mi, i);
		if (f->flags & ~(uint32_t)HP_FUNC_NEW)
			return hp_error(
				-HP_E_BADFORMAT,
				"'%s': module %u: function %u: unknown flags",
				name, mi, i);
		if ((uint64_t)f->new_off + f->new_size > m->text_size ||
		    !f->new_size)
			return hp_error(-HP_E_BADFORMAT,
					"'%s': module %u: function %u: code "
					"outside the text",
					name, mi, i);
		if ((f->flags & HP_FUNC_NEW) && (f->old_addr || f->old_size))
			return hp_error(-HP_E_BADFORMAT,
					"'%s': module %u: function %u: new, "
					"yet with old code",
					name, mi, i);
		if (!(f->flags & HP_FUNC_NEW) &&
		    f->old_size < HP_X86_JMP_REL32_SIZE)
			return hp_error(-HP_E_BADFORMAT,
					"'%s': module %u: function %u: shorter "
					"than the 5-byte jump",
					name, mi, i);
	}
	for (uint32_t i = 0; i < m->nr_relocs; i++) {
		const struct hp_reloc *r = &m->relocs[i];
		const unsigned int w = hp_reloc_width(r->type);
		const uint64_t end = (uint64_t)r->offset + w;

		if (!w)
			return hp_error(
				-HP_E_BADFORMAT,
				"'%s': module %u: relocation %u: unknown type",
				name, mi, i);
		if (r->base >= HP_RB_NR_BASES)
			return hp_error(
				-HP_E_BADFORMAT,
				"'%s': module %u: relocation %u: unknown base",
				name, mi, i);
		if (r->base == HP_RB_SYMBOL ? r->sym >= m->nr_syms
					    : r->sym != 0)
			return hp_error(-HP_E_BADFORMAT,
					"'%s': module %u: relocation %u: bad "
					"symbol index",
					name, mi, i);
		if (!(end <= m->text_size || (r->offset >= data_off &&
					      end <= data_off + m->data_size)))
			return hp_error(-HP_E_BADFORMAT,
					"'%s': module %u: relocation %u: field "
					"outside the text and data",
					name, mi, i);
	}
	for (uint32_t i = 0; i < m->nr_syms; i++)
		if (!m->syms[i].name || !*m->syms[i].name)
			return hp_error(
				-HP_E_BADFORMAT,
				"'%s': module %u: symbol %u has no name", name,
				mi, i);
	return check_reloc_overlap(name, m, mi);
}

static int bad_unwind(const char *name, uint32_t mi, const char *what,
		      uint64_t off)
{
	return hp_error(-HP_E_BADFORMAT,
			"'%s': module %u: unwind table+0x%llx: %s", name, mi,
			(unsigned long long)off, what);
}

/*
 * The unwind table as the target's unwinder will walk it, which trusts
 * it: records (a 4-byte length, 0xffffffff not allowed, then a 4-byte CIE
 * id, 0, or an FDE's distance back to its CIE) that tile the table exactly
 * up to the zero word that ends it, every FDE pointing at a CIE of the
 * table, and no relocation rewriting a length or an id. The unwinder's
 * object area must fit in the bss.
 */
static int validate_unwind(const char *name, const struct hp_module *m,
			   uint32_t mi)
{
	const uint64_t start = m->eh_off, end = start + m->eh_size;
	const uint8_t *t = m->text;
	bool *head = NULL; /* per word of the table: a length or an id */
	uint64_t off = start;
	int rc = 0;

	if (!m->eh_size)
		return 0;
	if (end > m->text_size || start % 4 || m->eh_size % 4 || m->eh_size < 4)
		return bad_unwind(name, mi, "outside the text or misaligned",
				  0);
	if (m->bss_size < HP_UNWIND_OBJECT_SIZE + 16)
		return bad_unwind(name, mi, "no room for the unwinder's object",
				  0);
	head = calloc(m->eh_size / 4, sizeof(*head));
	if (!head)
		return -ENOMEM;
	while (!rc) {
		const uint32_t len = hp_get_le32(t + off);
		uint32_t id;

		if (!len) {
			if (off + 4 != end)
				rc = bad_unwind(name, mi,
						"ends before its last word",
						off - start);
			break;
		}
		if (len % 4 || len < 8 || off + 4 + (uint64_t)len + 4 > end) {
			rc = bad_unwind(name, mi, "record length", off - start);
			break;
		}
		id = hp_get_le32(t + off + 4);
		head[(off - start) / 4] = head[(off - start) / 4 + 1] = true;
		/* An FDE's CIE: a record start before it whose id is 0. */
		if (id && (id > off + 4 - start || (off + 4 - id - start) % 4 ||
			   !head[(off + 4 - id - start) / 4] ||
			   hp_get_le32(t + off + 8 - id) != 0))
			rc = bad_unwind(name, mi, "FDE's CIE pointer",
					off - start);
		off += 4 + (uint64_t)len;
	}
	for (uint32_t i = 0; i < m->nr_relocs && !rc; i++) {
		const struct hp_reloc *r = &m->relocs[i];
		const uint64_t w = hp_reloc_width(r->type);

		for (uint64_t b = r->offset & ~3ULL; b < r->offset + w && !rc;
		     b += 4)
			if (b >= start && b < end &&
			    (b >= end - 4 || head[(b - start) / 4]))
				rc = bad_unwind(
					name, mi,
					"relocation over a record header",
					b - start);
	}
	free(head);
	return rc;
}

int hp_pack_validate(const char *name, const struct hp_patch *p)
{
	int rc = 0;

	if (!p->id || !*p->id || strlen(p->id) > HP_ID_MAX)
		return hp_error(-HP_E_BADFORMAT,
				"'%s': patch id must be 1 to "
				"255 bytes",
				name);
	if (!p->nr_modules || p->nr_modules > HP_MODULES_MAX)
		return hp_error(-HP_E_BADFORMAT, "'%s': %u modules", name,
				p->nr_modules);
	for (uint32_t i = 0; i < p->nr_modules && !rc; i++) {
		rc = validate_module(name, &p->modules[i], i);
		rc = rc ?: validate_unwind(name, &p->modules[i], i);
	}
	return rc;
}
