/*
 * Option and subcommand parsing over getopt_long, driven by hp_opt tables.
 * Usage text is generated from the same tables.
 */
#include "common/hp_cli.h"
#include "common/exit.h"
#include "common/hp_log.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define HP_CLI_MAX_OPTS 48

static const struct hp_opt common_opts[] = {
	{ "verbose", 'v', HP_OPT_LEVEL, NULL, NULL, "more messages" },
	{ "quiet", 'q', HP_OPT_LEVEL, NULL, NULL, "errors only" },
	{ "debug", 0, HP_OPT_STR, NULL, "CATS",
	  "debug output: correlate,reloc,ptrace,format,timing" },
	{ "help", 'h', HP_OPT_FLAG, NULL, NULL, "show this help" },
	{ 0 },
};

static void print_opt(FILE *fp, const struct hp_opt *o)
{
	char left[64];
	int n = 0;

	if (o->short_name)
		n = snprintf(left, sizeof(left), "-%c, ", o->short_name);
	else
		n = snprintf(left, sizeof(left), "    ");
	n += snprintf(left + n, sizeof(left) - n, "--%s", o->long_name);
	if (o->arg_name)
		snprintf(left + n, sizeof(left) - n, " %s", o->arg_name);
	fprintf(fp, "  %-28s %s%s\n", left, o->help,
		o->type == HP_OPT_LIST ? " (repeatable)" : "");
}

void hp_cli_usage(FILE *fp, const char *cmd, const char *synopsis,
		  const struct hp_opt *opts)
{
	fprintf(fp, "usage: %s%s%s [OPTIONS] %s\n\noptions:\n", hp_log_prog(),
		cmd ? " " : "", cmd ? cmd : "", synopsis ? synopsis : "");
	for (const struct hp_opt *o = opts; o && o->type; o++)
		print_opt(fp, o);
	for (const struct hp_opt *o = common_opts; o->type; o++)
		print_opt(fp, o);
}

int hp_cli_usage_error(const char *cmd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	hp_error(HP_EXIT_USAGE, "%s%s%s", cmd ? cmd : "", cmd ? ": " : "", msg);
	hp_hint("try '%s%s%s --help'", hp_log_prog(), cmd ? " " : "",
		cmd ? cmd : "");
	return HP_EXIT_USAGE;
}

static int set_value(const char *cmd, const struct hp_opt *o, const char *arg)
{
	char *end = NULL;

	switch (o->type) {
	case HP_OPT_FLAG:
		*(bool *)o->value = true;
		return 0;
	case HP_OPT_STR:
		*(const char **)o->value = arg;
		return 0;
	case HP_OPT_LIST: {
		struct hp_strlist *l = o->value;
		const char **items =
			realloc(l->items, sizeof(*items) * (l->nr + 1));

		if (!items)
			return -ENOMEM;
		items[l->nr++] = arg;
		l->items = items;
		return 0;
	}
	case HP_OPT_LONG:
		errno = 0;
		*(long *)o->value = strtol(arg, &end, 10);
		if (errno || !*arg || *end)
			return hp_cli_usage_error(cmd,
						  "--%s: '%s' is not a number",
						  o->long_name, arg);
		return 0;
	default:
		return 0;
	}
}

int hp_cli_parse(const char *cmd, const char *synopsis,
		 const struct hp_opt *opts, int argc, char **argv,
		 int *first_arg)
{
	const struct hp_opt *all[HP_CLI_MAX_OPTS];
	struct option lopts[HP_CLI_MAX_OPTS + 1];
	/* No leading '+': options may follow the operands ("apply FILE -p
	 * PID"), as with most tools; "--" still ends them. */
	char shorts[2 * HP_CLI_MAX_OPTS + 2] = "";
	size_t nr = 0, sl = 0;
	int c, idx;

	for (int pass = 0; pass < 2; pass++) {
		for (const struct hp_opt *o = pass ? common_opts : opts;
		     o && o->type; o++) {
			bool arg = o->type == HP_OPT_STR ||
				   o->type == HP_OPT_LIST ||
				   o->type == HP_OPT_LONG;

			HP_BUG_ON(nr >= HP_CLI_MAX_OPTS);
			all[nr] = o;
			lopts[nr] = (struct option){ o->long_name,
						     arg ? required_argument
							 : no_argument,
						     NULL, 0x100 + (int)nr };
			if (o->short_name) {
				shorts[sl++] = o->short_name;
				if (arg)
					shorts[sl++] = ':';
			}
			nr++;
		}
	}
	lopts[nr] = (struct option){ 0 };
	shorts[sl] = 0;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, shorts, lopts, &idx)) != -1) {
		const struct hp_opt *o = NULL;

		if (c == '?' || c == ':') {
			if (optopt)
				return hp_cli_usage_error(
					cmd,
					"unknown option or missing "
					"argument: '-%c'",
					optopt);
			return hp_cli_usage_error(
				cmd, "unknown option or missing argument: '%s'",
				argv[optind - 1]);
		}
		if (c >= 0x100) {
			o = all[c - 0x100];
		} else {
			for (size_t i = 0; i < nr; i++)
				if (all[i]->short_name == c)
					o = all[i];
		}
		HP_BUG_ON(!o);
		if (!strcmp(o->long_name, "help")) {
			hp_cli_usage(stdout, cmd, synopsis, opts);
			return HP_EXIT_OK;
		}
		if (!strcmp(o->long_name, "verbose")) {
			if (hp_log_get_level() < HP_LOG_DEBUG)
				hp_log_set_level(hp_log_get_level() + 1);
			continue;
		}
		if (!strcmp(o->long_name, "quiet")) {
			hp_log_set_level(HP_LOG_ERROR);
			continue;
		}
		if (!strcmp(o->long_name, "debug")) {
			if (hp_log_set_debug(optarg))
				return HP_EXIT_USAGE;
			continue;
		}
		if (set_value(cmd, o, optarg))
			return HP_EXIT_USAGE;
	}
	*first_arg = optind;
	return -1;
}

int hp_cli_dispatch(const char *about, const struct hp_cmd *cmds, int argc,
		    char **argv)
{
	const char *name = argc > 1 ? argv[1] : NULL;

	if (!name || !strcmp(name, "--help") || !strcmp(name, "-h") ||
	    !strcmp(name, "help")) {
		FILE *fp = name ? stdout : stderr;

		fprintf(fp,
			"usage: %s COMMAND [OPTIONS] [ARGS]\n\n%s\n\n"
			"commands:\n",
			hp_log_prog(), about);
		for (const struct hp_cmd *c = cmds; c->name; c++)
			fprintf(fp, "  %-10s %s\n", c->name, c->summary);
		fprintf(fp,
			"\nrun '%s COMMAND --help' for a command's "
			"options\n",
			hp_log_prog());
		return name ? HP_EXIT_OK : HP_EXIT_USAGE;
	}
	if (!strcmp(name, "--version")) {
		printf("%s %s\n", hp_log_prog(), HP_VERSION);
		return HP_EXIT_OK;
	}
	for (const struct hp_cmd *c = cmds; c->name; c++)
		if (!strcmp(c->name, name))
			return c->fn(argc - 1, argv + 1);
	return hp_cli_usage_error(NULL, "unknown command '%s'", name);
}

void hp_strlist_release(struct hp_strlist *l)
{
	free(l->items);
	*l = (struct hp_strlist){ 0 };
}
