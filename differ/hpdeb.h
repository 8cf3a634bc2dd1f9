/*
 * hpdeb-elf (scripts/hpatch-deb's ELF facts): what its commands share.
 */
#ifndef HP_DIFFER_HPDEB_H
#define HP_DIFFER_HPDEB_H

/*
 * Parse the command line of @cmd, a command without options that takes
 * exactly @nr operands (@synopsis). Return: -1 parsed, the operands from
 * argv[*first]; else the exit code.
 */
int hpdeb_parse_operands(const char *cmd, const char *synopsis, int nr,
			 int argc, char **argv, int *first);

/* hpdeb-elf objects ELF TREE (differ/hpdeb_units.c). Return: exit code. */
int hpdeb_cmd_objects(int argc, char **argv);

#endif
