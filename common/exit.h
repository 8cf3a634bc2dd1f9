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
	/* hpatch refusals of a patch file, one code each: */
	HP_EXIT_UNSIGNED = 5,	/* the file carries no signature */
	HP_EXIT_UNTRUSTED = 6,	/* signed by a key not in the trust store */
	HP_EXIT_BADSIG = 7,	/* the signature does not verify */
	HP_EXIT_EXPIRED = 8,	/* past the patch's expiry time */
	HP_EXIT_NOTARGET = 9,	/* no process maps the target build */
	HP_EXIT_DOWNGRADE = 10, /* older than a patch already applied */
};

#endif
