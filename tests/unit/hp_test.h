/* Shared cmocka helpers for hpatch's unit tests. */
#ifndef HP_TEST_H
#define HP_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/hp_err.h"

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

#endif
