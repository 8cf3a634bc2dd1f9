/*
 * Exit statuses shared by hpdiff, hpsign and hpatch. Scripts rely on them:
 * never change a value, only add.
 */
#ifndef HP_EXIT_H
#define HP_EXIT_H

enum hp_exit {
	HP_EXIT_OK = 0,
	HP_EXIT_ERROR = 1,
	HP_EXIT_USAGE = 2,
	HP_EXIT_NOTHING = 3, /* no changed functions / already applied */
	HP_EXIT_BUSY = 4,    /* consistency check timed out: safe to retry */
};

#endif
