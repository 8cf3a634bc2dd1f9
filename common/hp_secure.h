/*
 * Files a privileged tool trusts (the trust store, the anti-rollback state,
 * the audit log), checked as sshd's StrictModes and sudo check theirs:
 * owned by root or by the user we run as, writable by nobody else, and so
 * is every directory above; never reached through a symbolic link.
 */
#ifndef HP_SECURE_H
#define HP_SECURE_H

#include <stdbool.h>

#include "common/hp_log.h"

/*
 * hp_secure_dir() - check existing directory @dir and every directory
 * above it (after resolving symbolic links: what counts is where the
 * files are). A directory writable by others is allowed above only when
 * it is sticky (/tmp): there nobody else can rename away an entry we own.
 * @what names @dir in messages ("trust store").
 * Return: 0, -HP_E_INSECURE (reported, with the command that fixes it),
 * or -errno (not reported: -ENOENT may be no error to the caller).
 */
int hp_secure_dir(const char *dir, const char *what)
	__attribute__((warn_unused_result));

/*
 * hp_secure_open() - open(@path, @flags | O_NOFOLLOW | O_CLOEXEC, @mode)
 * and check what was opened: a regular file (a FIFO never blocks the
 * open), owned by root or us, not writable by group or others. Problems
 * are reported at @level (warnings for a key the caller may skip) naming
 * @what and @path, and -ENOENT only when @report_missing.
 * Return: the file descriptor, -HP_E_INSECURE, -ELOOP (a symbolic link:
 * refused), or -errno.
 */
int hp_secure_open(const char *path, int flags, unsigned int mode,
		   const char *what, enum hp_log_level level,
		   bool report_missing) __attribute__((warn_unused_result));

#endif
