/*
 * The policy file (docs/AGENT.md): what hpatchd may do without an
 * operator. Parsed with libinih (Debian's libinih-dev): INI is the format
 * operators already edit for systemd and most daemons, and a maintained
 * parser spares us quoting, comments and continuation-line edge cases.
 */
#include "agent/agent.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HP_LOG_PREFIX "policy: "

void hp_policy_init(struct hp_policy *pol)
{
	static const uint32_t retry[] = { 1000, 5000, 30000, 120000, 600000 };

	*pol = (struct hp_policy){
		.auto_apply = true,
		.attempt_timeout_ms = 100,
		.rescan_ms = 10000,
		.perf_keep_ms = 10 * 60 * 1000,
		.perf_max_exited = 10000,
		.window_start = -1,
		.window_end = -1,
	};
	pol->not_included = (struct hp_rule){ .kind = HP_RULE_INCLUDE,
					      .pattern = (char *)"[include]" };
	pol->exe_unknown = (struct hp_rule){
		.kind = HP_RULE_EXCLUDE,
		.pattern = (char *)"an executable path not readable whole"
	};
	memcpy(pol->retry_ms, retry, sizeof(retry));
	pol->nr_retry = HP_ARRAY_SIZE(retry);
}

int hp_policy_parse_duration(const char *text, long *ms)
{
	char *end = NULL;
	double v;
	long mult = 1000;

	while (isspace((unsigned char)*text))
		text++;
	if (!isdigit((unsigned char)*text))
		return -EINVAL;
	v = strtod(text, &end);
	if (!strcmp(end, "ms"))
		mult = 1;
	else if (!strcmp(end, "s") || !*end)
		mult = 1000;
	else if (!strcmp(end, "m") || !strcmp(end, "min"))
		mult = 60000;
	else if (!strcmp(end, "h"))
		mult = 3600000;
	else
		return -EINVAL;
	if (v < 0 || v * mult > 86400000.0 * 7)
		return -EINVAL;
	*ms = (long)(v * mult);
	return 0;
}

static int parse_bool(const char *v, bool *out)
{
	if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") ||
	    !strcasecmp(v, "on") || !strcmp(v, "1"))
		*out = true;
	else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") ||
		 !strcasecmp(v, "off") || !strcmp(v, "0"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* "1s 5s 30s" (spaces or commas). */
static int parse_retry(struct hp_policy *pol, const char *v)
{
	char buf[512], *save = NULL;
	size_t n = 0;

	snprintf(buf, sizeof(buf), "%s", v);
	for (char *w = strtok_r(buf, " ,\t", &save); w;
	     w = strtok_r(NULL, " ,\t", &save)) {
		long ms;

		if (n == HP_RETRY_MAX || hp_policy_parse_duration(w, &ms))
			return -EINVAL;
		pol->retry_ms[n++] = (uint32_t)ms;
	}
	pol->nr_retry = n;
	return 0;
}

static int parse_minute(const char *s, int *out)
{
	int h, m, used = 0;

	if (sscanf(s, "%2d:%2d%n", &h, &m, &used) != 2 || used != 5 || h < 0 ||
	    h > 24 || m < 0 || m > 59 || (h == 24 && m))
		return -EINVAL;
	*out = h * 60 + m;
	return 0;
}

/*
 * "02:00-04:30", local time; may wrap past midnight. One whose start is
 * its end (02:00-02:00, 24:00-00:00) holds no minute: hp_policy_in_window
 * would never say yes, and nothing would be applied, ever, without a
 * word. Return: 0, -EINVAL, or -ERANGE for such a window.
 */
static int parse_window(struct hp_policy *pol, const char *v)
{
	char a[8], b[8];
	int start, end;

	if (sscanf(v, "%5[0-9:]-%5[0-9:]", a, b) != 2 ||
	    parse_minute(a, &start) || parse_minute(b, &end))
		return -EINVAL;
	/* 00:00-24:00 is the whole day. */
	if (start % 1440 == end % 1440 && !(start == 0 && end == 1440))
		return -ERANGE;
	pol->window_start = start;
	pol->window_end = end;
	return 0;
}

static int parse_keys(struct hp_policy *pol, const char *v)
{
	char buf[1024], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", v);
	for (char *w = strtok_r(buf, " ,\t", &save); w;
	     w = strtok_r(NULL, " ,\t", &save)) {
		char(*grown)[HP_KEY_ID_STR_BYTES] = NULL;
		uint8_t id[HP_KEY_ID_BYTES];

		if (strlen(w) != 2 * HP_KEY_ID_BYTES ||
		    hp_unhex(id, sizeof(id), w))
			return -EINVAL;
		grown = realloc(pol->keys, (pol->nr_keys + 1) * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		pol->keys = grown;
		hp_hex(pol->keys[pol->nr_keys++], id, sizeof(id));
	}
	return 0;
}

/* @s, its fnmatch wildcards escaped, into @out (@cap bytes). Return: 0,
 * or -ENAMETOOLONG. */
static int escape_glob(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	for (; *s; s++) {
		if (n + 2 >= cap)
			return -ENAMETOOLONG;
		if (strchr("*?[\\", *s))
			out[n++] = '\\';
		out[n++] = *s;
	}
	out[n] = 0;
	return 0;
}

/*
 * The path an exe rule names may go through a symbolic link (/sbin/sshd
 * where /sbin is /usr/sbin, usr-merged; /usr/bin/python3, a link to
 * python3.11), while /proc/PID/exe names the file itself: the rule also
 * matches the path resolved, as it is when the policy is read (a link
 * changed since: at the next SIGHUP). What comes before the component of
 * the first wildcard is resolved; of a path not there yet (a program
 * installed later), the part that is, the rest as written (else
 * "exe = /sbin/newprog" excluded nothing once it ran). Return: the
 * pattern resolved (malloc'd), or NULL: none other.
 */
static char *resolve_pattern(const char *pat)
{
	const size_t glob = strcspn(pat, "*?[\\");
	char head[PATH_MAX], real[PATH_MAX], esc[2 * PATH_MAX];
	size_t cut = glob, len = 0;
	char *out = NULL;

	if (pat[0] != '/')
		return NULL;
	if (pat[glob]) /* the directory above the wildcard's component */
		while (cut > 0 && pat[cut - 1] != '/')
			cut--;
	else
		cut++; /* the whole path, its NUL */
	if (cut < 2 || cut - 1 >= sizeof(head))
		return NULL;
	len = cut - 1;
	memcpy(head, pat, len);
	head[len] = 0;
	while (!realpath(head, real)) {
		char *up = strrchr(head, '/');

		if (errno != ENOENT || !up || up == head)
			return NULL;
		*up = 0; /* its parent, the rest kept as written */
		len = (size_t)(up - head);
	}
	if (!strcmp(real, head) ||
	    escape_glob(strcmp(real, "/") ? real : "", esc, sizeof(esc)))
		return NULL;
	if (asprintf(&out, "%s%s", esc, pat + len) < 0)
		return NULL;
	return out;
}

/* "unit PATTERN" or "exe PATTERN" => the rule's match. */
static int parse_match(struct hp_rule *r, const char *name)
{
	const char *pat = NULL;

	if (!strncmp(name, "unit ", 5))
		r->by_unit = true, pat = name + 5;
	else if (!strncmp(name, "exe ", 4))
		r->by_unit = false, pat = name + 4;
	else
		return -EINVAL;
	while (isspace((unsigned char)*pat))
		pat++;
	if (!*pat)
		return -EINVAL;
	r->pattern = strdup(pat);
	if (!r->pattern)
		return -ENOMEM;
	if (!r->by_unit)
		r->real_pattern = resolve_pattern(r->pattern);
	return 0;
}

static int parse_action(struct hp_rule *r, const char *v)
{
	if (!strcmp(v, "restart")) {
		r->kind = HP_RULE_FALLBACK_RESTART;
	} else if (!strcmp(v, "none")) {
		r->kind = HP_RULE_FALLBACK_NONE;
	} else if (!strncmp(v, "command ", 8) && v[8]) {
		r->kind = HP_RULE_FALLBACK_COMMAND;
		r->command = strdup(v + 8);
		if (!r->command)
			return -ENOMEM;
	} else {
		return -EINVAL;
	}
	return 0;
}

static int add_rule(struct hp_policy *pol, enum hp_rule_kind kind,
		    const char *name, const char *value)
{
	const bool scope = kind == HP_RULE_EXCLUDE || kind == HP_RULE_INCLUDE;
	struct hp_rule r = { .kind = kind }, *grown = NULL;
	char match[PATH_MAX + 8];
	int rc;

	/* [exclude], [include]: "unit = PATTERN" / "exe = PATTERN". */
	if (scope)
		snprintf(match, sizeof(match), "%s %s", name, value);
	else
		snprintf(match, sizeof(match), "%s", name);
	rc = parse_match(&r, match);
	if (!rc && !scope)
		rc = parse_action(&r, value);
	if (!rc) {
		grown = realloc(pol->rules,
				(pol->nr_rules + 1) * sizeof(*grown));
		rc = grown ? 0 : -ENOMEM;
	}
	if (rc) {
		free(r.pattern);
		free(r.real_pattern);
		free(r.command);
		return rc;
	}
	pol->rules = grown;
	pol->rules[pol->nr_rules++] = r;
	return 0;
}

struct parse_ctx {
	struct hp_policy *pol;
	const char *path;
	FILE *fp;
	/* The line libinih's handler is called for: the one it read last
	 * (a line longer than its buffer comes in pieces: one line). */
	int line, next_line;
	int nr_bad;
};

/* libinih's reader (fgets, as ini_parse_file's), counting the lines. */
static char *read_line(char *str, int num, void *stream)
{
	struct parse_ctx *c = stream;
	char *got = fgets(str, num, c->fp);

	if (got) {
		c->line = c->next_line;
		if (strchr(got, '\n'))
			c->next_line++;
	}
	return got;
}

/* [perf]: how long the maps of exited processes stay, how many. */
static int set_perf(struct hp_policy *pol, const char *name, const char *value)
{
	char *end = NULL;
	unsigned long n;

	if (!strcmp(name, "keep_exited") && !strcasecmp(value, "forever")) {
		pol->perf_keep_ms = -1;
		return 0;
	}
	if (!strcmp(name, "keep_exited"))
		return hp_policy_parse_duration(value, &pol->perf_keep_ms);
	if (strcmp(name, "max_exited") || !isdigit((unsigned char)*value))
		return -EINVAL;
	errno = 0;
	n = strtoul(value, &end, 10);
	if (*end || errno || n > 1000000)
		return -EINVAL;
	pol->perf_max_exited = (uint32_t)n;
	return 0;
}

static int set_option(struct hp_policy *pol, const char *section,
		      const char *name, const char *value)
{
	if (!strcmp(section, "exclude"))
		return add_rule(pol, HP_RULE_EXCLUDE, name, value);
	if (!strcmp(section, "include"))
		return add_rule(pol, HP_RULE_INCLUDE, name, value);
	if (!strcmp(section, "fallback"))
		return add_rule(pol, HP_RULE_FALLBACK_NONE, name, value);
	if (!strcmp(section, "metrics") && !strcmp(name, "textfile")) {
		if (*value && *value != '/')
			return -EINVAL;
		snprintf(pol->metrics_path, sizeof(pol->metrics_path), "%s",
			 value);
		return 0;
	}
	if (!strcmp(section, "perf"))
		return set_perf(pol, name, value);
	if (strcmp(section, "apply"))
		return -EINVAL;
	if (!strcmp(name, "automatic"))
		return parse_bool(value, &pol->auto_apply);
	if (!strcmp(name, "trusted_keys"))
		return parse_keys(pol, value);
	if (!strcmp(name, "retry"))
		return parse_retry(pol, value);
	if (!strcmp(name, "attempt_timeout"))
		return hp_policy_parse_duration(value,
						&pol->attempt_timeout_ms);
	if (!strcmp(name, "rescan"))
		return hp_policy_parse_duration(value, &pol->rescan_ms);
	if (!strcmp(name, "window"))
		return !*value ? (pol->window_start = pol->window_end = -1, 0)
			       : parse_window(pol, value);
	return -EINVAL;
}

static int on_entry(void *user, const char *section, const char *name,
		    const char *value)
{
	struct parse_ctx *c = user;
	int rc = set_option(c->pol, section, name, value);

	if (rc) {
		hp_error(rc, "'%s': line %d: [%s] %s = %s: %s", c->path,
			 c->line, section, name, value,
			 rc == -ENOMEM ? "out of memory"
			 : rc == -ERANGE
				 ? "its start is its end: a window of no "
				   "time, in which nothing would ever be "
				   "applied"
				 : "not valid");
		if (rc == -ERANGE)
			hp_hint("to apply at any time, remove the window "
				"line (no window: always); else end it after "
				"its start (02:00-04:00), or 00:00-24:00 for "
				"the whole day");
		c->nr_bad++;
	}
	return 1; /* go on: every bad line is reported */
}

int hp_policy_load(struct hp_policy *pol, const char *path, bool optional)
{
	struct parse_ctx c = { .pol = pol, .path = path, .next_line = 1 };
	FILE *fp = fopen(path, "re");
	int line;

	hp_policy_init(pol);
	if (!fp && errno == ENOENT && optional)
		return 0;
	if (!fp)
		return hp_error_rc(-errno, "policy '%s'", path);
	c.fp = fp;
	line = ini_parse_stream(read_line, &c, on_entry, &c);
	fclose(fp);
	if (line > 0 && !c.nr_bad) {
		hp_error(-EINVAL,
			 "'%s': line %d: not 'name = value' nor a "
			 "[section]",
			 path, line);
		c.nr_bad++;
	}
	if (c.nr_bad) {
		hp_hint("the policy file is described in docs/AGENT.md");
		hp_policy_release(pol);
		return hp_error(-EINVAL, "'%s': %d bad line%s", path, c.nr_bad,
				c.nr_bad > 1 ? "s" : "");
	}
	pol->from_file = true;
	return 0;
}

void hp_policy_release(struct hp_policy *pol)
{
	for (size_t i = 0; i < pol->nr_rules; i++) {
		free(pol->rules[i].pattern);
		free(pol->rules[i].real_pattern);
		free(pol->rules[i].command);
	}
	free(pol->rules);
	free(pol->keys);
	hp_policy_init(pol);
}

/*
 * A program replaced or removed on disk since its exec (an upgrade) is
 * "PATH (deleted)" in /proc/PID/exe, and the rules name PATH: either
 * form matches.
 */
static bool exe_matches(const char *pattern, const char *exe)
{
	static const char deleted[] = " (deleted)";
	const size_t len = strlen(exe), d = sizeof(deleted) - 1;
	char path[PATH_MAX];

	if (!fnmatch(pattern, exe, 0))
		return true;
	if (len <= d || len - d >= sizeof(path) ||
	    strcmp(exe + len - d, deleted))
		return false;
	memcpy(path, exe, len - d);
	path[len - d] = 0;
	return !fnmatch(pattern, path, 0);
}

static bool rule_matches(const struct hp_rule *r, const char *exe,
			 const char *unit)
{
	if (r->by_unit)
		return unit && *unit && !fnmatch(r->pattern, unit, 0);
	return exe && *exe &&
	       (exe_matches(r->pattern, exe) ||
		(r->real_pattern && exe_matches(r->real_pattern, exe)));
}

const struct hp_rule *hp_policy_fallback(const struct hp_policy *pol,
					 const char *exe, const char *unit)
{
	for (size_t i = 0; i < pol->nr_rules; i++) {
		const struct hp_rule *r = &pol->rules[i];

		if (r->kind != HP_RULE_EXCLUDE && r->kind != HP_RULE_INCLUDE &&
		    rule_matches(r, exe, unit))
			return r;
	}
	return NULL;
}

bool hp_policy_uses_units(const struct hp_policy *pol)
{
	for (size_t i = 0; i < pol->nr_rules; i++)
		if (pol->rules[i].by_unit)
			return true;
	return false;
}

const struct hp_rule *hp_policy_excluded(const struct hp_policy *pol,
					 const char *exe, const char *unit)
{
	const struct hp_rule *excl = NULL;
	bool has_include = false, included = false;

	for (size_t i = 0; i < pol->nr_rules; i++) {
		const struct hp_rule *r = &pol->rules[i];

		/* Unknown, it might match an exclusion: never touched. */
		if (!exe && !r->by_unit &&
		    (r->kind == HP_RULE_INCLUDE || r->kind == HP_RULE_EXCLUDE))
			return &pol->exe_unknown;
		if (r->kind == HP_RULE_INCLUDE) {
			has_include = true;
			included |= rule_matches(r, exe, unit);
		} else if (r->kind == HP_RULE_EXCLUDE && !excl &&
			   rule_matches(r, exe, unit)) {
			excl = r;
		}
	}
	if (excl)
		return excl;
	if (has_include && !included)
		return &pol->not_included;
	return NULL;
}

bool hp_policy_in_window(const struct hp_policy *pol, time_t now)
{
	struct tm tm;
	int m;

	if (pol->window_start < 0)
		return true;
	localtime_r(&now, &tm);
	m = tm.tm_hour * 60 + tm.tm_min;
	if (pol->window_start <= pol->window_end)
		return m >= pol->window_start && m < pol->window_end;
	return m >= pol->window_start || m < pol->window_end;
}

bool hp_policy_key_allowed(const struct hp_policy *pol, const char *key_id)
{
	if (!pol->nr_keys)
		return true;
	for (size_t i = 0; i < pol->nr_keys; i++)
		if (!strcmp(pol->keys[i], key_id))
			return true;
	return false;
}
