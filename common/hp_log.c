/*
 * Leveled logging with a replaceable sink. Every helper saves and restores
 * errno so logging never hides the cause a caller is about to report.
 */
#include "common/hp_log.h"
#include "common/hp_err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *log_prog = "hp";
static enum hp_log_level log_level = HP_LOG_INFO;
static unsigned int debug_mask;
static hp_log_sink_fn *log_sink;
static void *log_sink_ctx;

static const char *const level_names[] = {
	[HP_LOG_ERROR] = "error",
	[HP_LOG_WARN] = "warning",
	[HP_LOG_INFO] = "info",
	[HP_LOG_DEBUG] = "debug",
};

void hp_log_set_prog(const char *prog)
{
	log_prog = prog;
}

const char *hp_log_prog(void)
{
	return log_prog;
}

void hp_log_set_level(enum hp_log_level max)
{
	log_level = max;
}

enum hp_log_level hp_log_get_level(void)
{
	return log_level;
}

void hp_log_set_sink(hp_log_sink_fn *sink, void *ctx)
{
	log_sink = sink;
	log_sink_ctx = ctx;
}

int hp_log_set_debug(const char *list)
{
	static const struct {
		const char *name;
		enum hp_debug_flags flag;
	} cats[] = {
		{ "correlate", HP_DBG_CORRELATE }, { "reloc", HP_DBG_RELOC },
		{ "ptrace", HP_DBG_PTRACE },	   { "format", HP_DBG_FORMAT },
		{ "timing", HP_DBG_TIMING },
	};
	const char *p = list;

	while (*p) {
		size_t len = strcspn(p, ",");
		size_t i;

		for (i = 0; i < sizeof(cats) / sizeof(cats[0]); i++) {
			if (strlen(cats[i].name) == len &&
			    !strncmp(cats[i].name, p, len))
				break;
		}
		if (i == sizeof(cats) / sizeof(cats[0]))
			return hp_error(-EINVAL,
					"--debug: unknown category '%.*s'",
					(int)len, p);
		debug_mask |= cats[i].flag;
		p += len;
		if (*p == ',')
			p++;
	}
	if (debug_mask)
		log_level = HP_LOG_DEBUG;
	return 0;
}

bool hp_debug_on(enum hp_debug_flags cat)
{
	return debug_mask & cat;
}

/* Messages said while repeats are quiet (hp_log_quiet_repeats): their
 * hashes, and whether the last was dropped (its hint goes with it). */
#define HP_LOG_MAX_SAID 64
static struct {
	bool on, dropped;
	size_t nr;
	uint64_t said[HP_LOG_MAX_SAID];
} quiet;

void hp_log_quiet_repeats(bool on)
{
	quiet.on = on;
	quiet.dropped = false;
	quiet.nr = 0;
}

/* Whether @msg was said already since repeats went quiet (else noted). */
static bool repeated(enum hp_log_level level, const char *prefix,
		     const char *msg)
{
	uint64_t h = 14695981039346656037ULL ^ (uint64_t)level;

	if (prefix && !strcmp(prefix, "hint"))
		return quiet.dropped;
	for (const char *p = msg; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	for (size_t i = 0; i < quiet.nr; i++)
		if (quiet.said[i] == h)
			return true;
	if (quiet.nr < HP_LOG_MAX_SAID)
		quiet.said[quiet.nr++] = h;
	return false;
}

static void say(enum hp_log_level level, const char *prefix, const char *msg)
{
	if (quiet.on) {
		quiet.dropped = repeated(level, prefix, msg);
		if (quiet.dropped)
			return;
	}
	if (log_sink)
		log_sink(level, msg, log_sink_ctx);
	else
		fprintf(stderr, "%s: %s: %s\n", log_prog,
			prefix ? prefix : level_names[level], msg);
}

/* Messages held (hp_log_hold), in the order they came. */
#define HP_LOG_MAX_HELD 64
static struct {
	unsigned int depth;
	size_t nr;
	struct {
		enum hp_log_level level;
		const char *prefix; /* a literal, or NULL */
		char *msg;
	} v[HP_LOG_MAX_HELD];
} held;

size_t hp_log_hold(void)
{
	held.depth++;
	return held.nr;
}

void hp_log_release(size_t mark, bool emit)
{
	HP_BUG_ON(!held.depth || mark > held.nr);
	/* Nested: kept for the outer hold to decide. */
	if (--held.depth && emit)
		return;
	for (size_t i = mark; i < held.nr; i++) {
		if (emit)
			say(held.v[i].level, held.v[i].prefix, held.v[i].msg);
		free(held.v[i].msg);
	}
	held.nr = mark;
}

__attribute__((format(printf, 3, 0))) static void vlog(enum hp_log_level level,
						       const char *prefix,
						       const char *fmt,
						       va_list ap, int rc)
{
	char msg[4096];
	int saved = errno;
	int n;

	if (level > log_level)
		goto out;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (rc && n >= 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - n, ": %s", hp_strerror(rc));
	/* Held, unless there is no room: then said at once. */
	if (held.depth && held.nr < HP_LOG_MAX_HELD &&
	    (held.v[held.nr].msg = strdup(msg))) {
		held.v[held.nr].level = level;
		held.v[held.nr++].prefix = prefix;
		goto out;
	}
	say(level, prefix, msg);
out:
	errno = saved;
}

void hp_log(enum hp_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, NULL, fmt, ap, 0);
	va_end(ap);
}

int hp_error(int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(HP_LOG_ERROR, NULL, fmt, ap, 0);
	va_end(ap);
	return rc;
}

int hp_error_rc(int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(HP_LOG_ERROR, NULL, fmt, ap, rc);
	va_end(ap);
	return rc;
}

void hp_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(HP_LOG_WARN, NULL, fmt, ap, 0);
	va_end(ap);
}

void hp_hint(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(HP_LOG_ERROR, "hint", fmt, ap, 0);
	va_end(ap);
}

void hp_bug(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s: BUG at %s:%d: %s\n", log_prog, file, line, what);
	abort();
}
