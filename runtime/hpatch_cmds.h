/*
 * hpatch's subcommands for the patch store and the host agent
 * (hpatch_agent.c), and what they share with the others (hpatch.c).
 */
#ifndef HP_HPATCH_CMDS_H
#define HP_HPATCH_CMDS_H

/* The exit status for a result (common/exit.h), and the worse of two. */
int hpatch_exit_for(int rc);
int hpatch_combine(int status, int rc);

struct hp_rt_opts;
/* What the tool reads from the environment (the runtime reads none):
 * the state directory into @opts, the audit log unless given. */
void hpatch_from_env(struct hp_rt_opts *opts, const char **audit_path);

/* hpatchd's state directory: $HPATCH_STATE_DIR, else the default. */
const char *hpatch_state_dir(void);

int hpatch_cmd_install(int argc, char **argv);
int hpatch_cmd_uninstall(int argc, char **argv);
int hpatch_cmd_list(int argc, char **argv);
int hpatch_cmd_check(int argc, char **argv);

#endif
