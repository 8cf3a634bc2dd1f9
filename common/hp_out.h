/*
 * Structured results on stdout: one code path renders either one JSON
 * document (--json) or indented "key: value" text, so the two never drift.
 */
#ifndef HP_OUT_H
#define HP_OUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define HP_OUT_MAX_DEPTH 16

struct hp_out {
	FILE *fp;
	bool json;
	int depth;
	bool need_comma[HP_OUT_MAX_DEPTH];
	bool in_array[HP_OUT_MAX_DEPTH];
};

/* Starts the top-level object; JSON output gets "schema_version". */
void hp_out_init(struct hp_out *o, FILE *fp, bool json);
/* Closes every open object and array and ends the document with "\n". */
void hp_out_finish(struct hp_out *o);

/* @key is NULL inside arrays. */
void hp_out_begin_object(struct hp_out *o, const char *key);
void hp_out_end_object(struct hp_out *o);
void hp_out_begin_array(struct hp_out *o, const char *key);
void hp_out_end_array(struct hp_out *o);

void hp_out_str(struct hp_out *o, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void hp_out_u64(struct hp_out *o, const char *key, uint64_t v);
void hp_out_i64(struct hp_out *o, const char *key, int64_t v);
void hp_out_bool(struct hp_out *o, const char *key, bool v);
void hp_out_hex(struct hp_out *o, const char *key, const uint8_t *p,
		size_t len);

#endif
