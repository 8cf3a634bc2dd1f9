/*
 * Logging for all three tools: leveled messages to a replaceable sink, in the
 * form "<prog>: <level>: <where>: <what>[: <cause>]". Tests swap the sink to
 * capture and assert messages.
 */
#ifndef HP_LOG_H
#define HP_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum hp_log_level {
	HP_LOG_ERROR,
	HP_LOG_WARN,
	HP_LOG_INFO,
	HP_LOG_DEBUG,
};

/* Debug categories, enabled with --debug=name,name. */
enum hp_debug_flags {
	HP_DBG_CORRELATE = 1 << 0,
	HP_DBG_RELOC = 1 << 1,
	HP_DBG_PTRACE = 1 << 2,
	HP_DBG_FORMAT = 1 << 3,
	HP_DBG_TIMING = 1 << 4, /* time spent in each stage of a stop */
};

typedef void hp_log_sink_fn(enum hp_log_level level, const char *msg,
			    void *ctx);

/* Program name used as message prefix ("hpatch"). Borrowed, must outlive. */
void hp_log_set_prog(const char *prog);
const char *hp_log_prog(void);
void hp_log_set_level(enum hp_log_level max);
enum hp_log_level hp_log_get_level(void);
/* Replace the sink; NULL restores the default (stderr). Not thread-safe. */
void hp_log_set_sink(hp_log_sink_fn *sink, void *ctx);
/* Parse "correlate,reloc": Return: 0, or -EINVAL naming the bad word. */
int hp_log_set_debug(const char *list);
bool hp_debug_on(enum hp_debug_flags cat);

/*
 * Hold the messages logged from now on, for a caller that knows only later
 * whether they are its verdict (a refusal that another way may still
 * avoid). Return: a mark, for hp_log_release. Holds nest; 64 messages at
 * most are held (any more are said at once).
 */
size_t hp_log_hold(void);
/* End the hold that returned @mark: say what it held (@emit; within an
 * outer hold, kept for that one to decide), or drop it. */
void hp_log_release(size_t mark, bool emit);

/*
 * While @on, a message said already since it went on is not said again
 * (nor the hints that follow it): a loop of tries that each meet the same
 * cause says it once. Off forgets what was said.
 */
void hp_log_quiet_repeats(bool on);

/* Logs at @level; preserves errno. */
void hp_log(enum hp_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define hp_dbg(cat, ...)                                   \
	do {                                               \
		if (hp_debug_on(cat))                      \
			hp_log(HP_LOG_DEBUG, __VA_ARGS__); \
	} while (0)

/* Log an error and return @rc unchanged, for one-line report-and-return. */
int hp_error(int rc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Same, appending ": " and hp_strerror(@rc). */
int hp_error_rc(int rc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void hp_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A "hint:" line after an error: what is likely wrong, what to do. */
void hp_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Invariant: aborts with file and line in every build. */
#define HP_BUG_ON(cond)                                    \
	do {                                               \
		if (cond)                                  \
			hp_bug(__FILE__, __LINE__, #cond); \
	} while (0)
void hp_bug(const char *file, int line, const char *what)
	__attribute__((noreturn));

#endif
