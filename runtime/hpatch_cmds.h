/*
 * hpatch's subcommands for the patch store and the host agent
 * (hpatch_agent.c), and what they share with the others (hpatch.c).
 */
#ifndef HP_HPATCH_CMDS_H
#define HP_HPATCH_CMDS_H

/* The exit status for a result (common/exit.h), and the worse of two. */
int hpatch_exit_for(int rc);
int hpatch_combine(int status, int rc);

/* hpatchd's state directory: $HPATCH_STATE_DIR, else the default. */
const char *hpatch_state_dir(void);

int hpatch_cmd_install(int argc, char **argv);
int hpatch_cmd_uninstall(int argc, char **argv);
int hpatch_cmd_list(int argc, char **argv);
int hpatch_cmd_check(int argc, char **argv);

#endif
