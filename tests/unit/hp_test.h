/* Shared cmocka helpers for hpatch's unit tests. */
#ifndef HP_TEST_H
#define HP_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/hp_err.h"
#include "common/hp_log.h"

/* Like assert_int_equal(rc, 0), but prints what the error means. */
#define assert_hp_ok(rc)                                                      \
	do {                                                                  \
		int rc_ = (rc);                                               \
		if (rc_)                                                      \
			fail_msg("%s = %d (%s)", #rc, rc_, hp_strerror(rc_)); \
	} while (0)

#define assert_hp_err(rc, code)                                         \
	do {                                                            \
		int rc_ = (rc);                                         \
		if (rc_ != -(code))                                     \
			fail_msg("%s = %d (%s), expected %s", #rc, rc_, \
				 hp_strerror(rc_), #code);              \
	} while (0)

/* Every message logged while hp_test_keep_msgs() is the sink, one a
 * line (hp_test_msgs_begin() empties it and installs it). */
static char hp_test_msgs[2048] __attribute__((unused));

static inline void hp_test_keep_msgs(enum hp_log_level l, const char *m,
				     void *c)
{
	(void)l;
	(void)c;
	snprintf(hp_test_msgs + strlen(hp_test_msgs),
		 sizeof(hp_test_msgs) - strlen(hp_test_msgs), "%s\n", m);
}

static inline void hp_test_msgs_begin(void)
{
	hp_test_msgs[0] = 0;
	hp_log_set_sink(hp_test_keep_msgs, NULL);
}

/* A clone(CLONE_VM) child's body: waits, killed with its parent. */
static inline int hp_test_share_and_wait(void *arg)
{
	(void)arg;
	syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL); /* not left behind */
	for (;;)
		syscall(SYS_pause);
	return 0;
}

#endif
