/*
 * LEB128 varints for .hpatch v2: the writer's encoders and the reader's
 * bounded decoders, which refuse truncated, overlong and oversized values.
 */
#include "packer/packer_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

int hp_put_uvarint(struct hp_buf *b, uint64_t v)
{
	uint8_t x[HP_VARINT_MAX];
	size_t n = 0;

	do {
		x[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		x[n++] |= v ? 0x80 : 0;
	} while (v);
	return hp_buf_append(b, x, n);
}

int hp_put_svarint(struct hp_buf *b, int64_t v)
{
	return hp_put_uvarint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

int hp_get_uvarint(struct hp_cursor *c, uint64_t max, const char *what,
		   uint64_t *out)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < HP_VARINT_MAX; i++) {
		uint8_t byte;

		if (c->pos >= c->len)
			return hp_error(-HP_E_BADFORMAT, "'%s': %s: truncated",
					c->name, what);
		byte = c->p[c->pos++];
		/* The tenth byte holds bit 63 alone. */
		if (i == HP_VARINT_MAX - 1 && byte > 1)
			break;
		v |= (uint64_t)(byte & 0x7f) << (7 * i);
		if (byte & 0x80)
			continue;
		if (i && !byte)
			return hp_error(-HP_E_BADFORMAT,
					"'%s': %s: overlong number", c->name,
					what);
		if (v > max)
			return hp_error(-HP_E_BADFORMAT,
					"'%s': %s: %llu is out of bounds "
					"(at most %llu)",
					c->name, what, (unsigned long long)v,
					(unsigned long long)max);
		*out = v;
		return 0;
	}
	return hp_error(-HP_E_BADFORMAT, "'%s': %s: number too long", c->name,
			what);
}

int hp_get_svarint(struct hp_cursor *c, const char *what, int64_t *out)
{
	uint64_t u;
	int rc = hp_get_uvarint(c, UINT64_MAX, what, &u);

	if (!rc)
		*out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
	return rc;
}

int hp_get_bytes(struct hp_cursor *c, size_t n, const char *what,
		 const uint8_t **out)
{
	if (n > c->len - c->pos)
		return hp_error(-HP_E_BADFORMAT,
				"'%s': %s: %zu bytes, %zu left", c->name, what,
				n, c->len - c->pos);
	*out = c->p + c->pos;
	c->pos += n;
	return 0;
}
