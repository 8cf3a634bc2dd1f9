/*
 * Command-line plumbing shared by the three tools: a subcommand table and,
 * per subcommand, an option table from which both parsing and the usage
 * text are generated, so help can never disagree with the parser.
 */
#ifndef HP_CLI_H
#define HP_CLI_H

#include <stdbool.h>
#include <stdio.h>

enum hp_opt_type {
	HP_OPT_END = 0,
	HP_OPT_FLAG,  /* bool *value */
	HP_OPT_STR,   /* const char **value */
	HP_OPT_LIST,  /* struct hp_strlist *value: option may repeat */
	HP_OPT_LONG,  /* long *value, decimal */
	HP_OPT_LEVEL, /* -v / -q adjust the log level; value unused */
};

struct hp_strlist {
	const char **items;
	int nr;
};

struct hp_opt {
	const char *long_name;
	char short_name; /* 0: long only */
	enum hp_opt_type type;
	void *value;
	const char *arg_name; /* shown in usage, e.g. "PID" */
	const char *help;
};

struct hp_cmd {
	const char *name;
	const char *summary;
	int (*fn)(int argc, char **argv);
};

/*
 * hp_cli_parse() - parse options of "@prog @cmd" into the table's values.
 * @synopsis describes the positional arguments ("FILE...").
 * --help prints the generated usage to stdout; -v/-q/--debug are common.
 * Return: -1 to continue with *@first_arg the index of the first positional,
 * else an exit status (HP_EXIT_OK after --help, HP_EXIT_USAGE on errors).
 */
int hp_cli_parse(const char *cmd, const char *synopsis,
		 const struct hp_opt *opts, int argc, char **argv,
		 int *first_arg);
void hp_cli_usage(FILE *fp, const char *cmd, const char *synopsis,
		  const struct hp_opt *opts);
/* Report a usage error for @cmd and return HP_EXIT_USAGE. */
int hp_cli_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * hp_cli_dispatch() - run the subcommand named by argv[1] (exact match).
 * Handles --help and --version at the top level.
 * Return: the exit status.
 */
int hp_cli_dispatch(const char *about, const struct hp_cmd *cmds, int argc,
		    char **argv);
void hp_strlist_release(struct hp_strlist *l);

#endif
