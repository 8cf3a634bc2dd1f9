/*
 * JSON or text rendering of structured results. JSON strings are escaped per
 * RFC 8259; text mode indents two spaces per level and marks array items "-".
 */
#include "common/hp_out.h"
#include "common/hp_log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>

#define HP_OUT_SCHEMA_VERSION 1

/* (Runs of plain characters go out in one fwrite: a character at a time,
 * each fputc taking the stream's lock, was 3% of the CPU time of an
 * apply --all, which writes a JSON result and an audit line per process.) */
static void json_string(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (;;) {
		size_t n = 0;
		unsigned char c;

		while ((c = (unsigned char)s[n]) >= 0x20 && c != '"' &&
		       c != '\\')
			n++;
		fwrite(s, 1, n, fp);
		s += n;
		if (!c)
			break;
		if (c == '"' || c == '\\')
			fprintf(fp, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", fp);
		else if (c == '\t')
			fputs("\\t", fp);
		else
			fprintf(fp, "\\u%04x", c);
		s++;
	}
	fputc('"', fp);
}

static void indent(struct hp_out *o, int extra)
{
	for (int i = 0; i < o->depth - 1 + extra; i++)
		fputs("  ", o->fp);
}

/* Emits the separator and key; text mode returns with the cursor after ": ". */
static void key_prefix(struct hp_out *o, const char *key, bool container)
{
	if (o->json) {
		if (o->need_comma[o->depth])
			fputc(',', o->fp);
		o->need_comma[o->depth] = true;
		if (key && !o->in_array[o->depth]) {
			json_string(o->fp, key);
			fputc(':', o->fp);
		}
		return;
	}
	if (o->in_array[o->depth]) {
		indent(o, 0);
		fputs(container ? "-" : "- ", o->fp);
		if (container) {
			fputc('\n', o->fp);
		}
		return;
	}
	indent(o, 0);
	fprintf(o->fp, "%s:%s", key ? key : "", container ? "\n" : " ");
}

void hp_out_init(struct hp_out *o, FILE *fp, bool json)
{
	*o = (struct hp_out){ .fp = fp, .json = json, .depth = 1 };
	if (json) {
		fputc('{', fp);
		hp_out_u64(o, "schema_version", HP_OUT_SCHEMA_VERSION);
	}
}

void hp_out_finish(struct hp_out *o)
{
	while (o->depth > 1) {
		if (o->in_array[o->depth])
			hp_out_end_array(o);
		else
			hp_out_end_object(o);
	}
	if (o->json)
		fputs("}\n", o->fp);
	fflush(o->fp);
}

static void push(struct hp_out *o, bool array)
{
	HP_BUG_ON(o->depth + 1 >= HP_OUT_MAX_DEPTH);
	o->depth++;
	o->need_comma[o->depth] = false;
	o->in_array[o->depth] = array;
}

void hp_out_begin_object(struct hp_out *o, const char *key)
{
	key_prefix(o, key, true);
	if (o->json)
		fputc('{', o->fp);
	push(o, false);
}

void hp_out_end_object(struct hp_out *o)
{
	HP_BUG_ON(o->depth <= 1 || o->in_array[o->depth]);
	o->depth--;
	if (o->json)
		fputc('}', o->fp);
}

void hp_out_begin_array(struct hp_out *o, const char *key)
{
	key_prefix(o, key, true);
	if (o->json)
		fputc('[', o->fp);
	push(o, true);
}

void hp_out_end_array(struct hp_out *o)
{
	HP_BUG_ON(o->depth <= 1 || !o->in_array[o->depth]);
	o->depth--;
	if (o->json)
		fputc(']', o->fp);
}

void hp_out_str(struct hp_out *o, const char *key, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	key_prefix(o, key, false);
	if (o->json)
		json_string(o->fp, s ? s : "");
	else
		fprintf(o->fp, "%s\n", s ? s : "");
	free(s);
}

void hp_out_u64(struct hp_out *o, const char *key, uint64_t v)
{
	key_prefix(o, key, false);
	fprintf(o->fp, o->json ? "%" PRIu64 : "%" PRIu64 "\n", v);
}

void hp_out_i64(struct hp_out *o, const char *key, int64_t v)
{
	key_prefix(o, key, false);
	fprintf(o->fp, o->json ? "%" PRId64 : "%" PRId64 "\n", v);
}

void hp_out_bool(struct hp_out *o, const char *key, bool v)
{
	key_prefix(o, key, false);
	fprintf(o->fp, o->json ? "%s" : "%s\n", v ? "true" : "false");
}

void hp_out_hex(struct hp_out *o, const char *key, const uint8_t *p, size_t len)
{
	key_prefix(o, key, false);
	if (o->json)
		fputc('"', o->fp);
	for (size_t i = 0; i < len; i++)
		fprintf(o->fp, "%02x", p[i]);
	fputs(o->json ? "\"" : "\n", o->fp);
}
