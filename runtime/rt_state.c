/*
 * Host state for anti-rollback: per target build-id, the highest patch
 * sequence number ever applied on this host since boot, one small file per
 * build-id under the state directory (default /run/hpatch, a tmpfs: it
 * resets with the processes it describes). Reverting does not lower it: a
 * revert is not permission to apply an older patch.
 */
#include "runtime/runtime_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *state_dir(const char *dir)
{
	return dir && *dir ? dir : HP_STATE_DIR_DEFAULT;
}

static void state_path(char *out, size_t cap, const char *dir,
		       const char *build_id_hex)
{
	snprintf(out, cap, "%s/%s.seq", state_dir(dir), build_id_hex);
}

uint64_t hp_rt_state_sequence(const char *dir, const char *build_id_hex)
{
	char path[512];
	uint8_t *data = NULL;
	size_t len = 0;
	uint64_t seq = 0;

	state_path(path, sizeof(path), dir, build_id_hex);
	if (hp_read_file(path, 64, &data, &len))
		return 0;
	seq = strtoull((const char *)data, NULL, 10);
	free(data);
	return seq;
}

int hp_rt_state_record(const char *dir, const char *build_id_hex,
		       uint64_t sequence)
{
	char path[512], text[32];
	int rc;

	if (hp_rt_state_sequence(dir, build_id_hex) >= sequence)
		return 0;
	if (mkdir(state_dir(dir), 0700) < 0 && errno != EEXIST)
		return hp_error_rc(-errno, "state directory '%s'",
				   state_dir(dir));
	state_path(path, sizeof(path), dir, build_id_hex);
	snprintf(text, sizeof(text), "%" PRIu64 "\n", sequence);
	rc = hp_write_file(path, text, strlen(text), 0600, 0);
	if (rc)
		return hp_error_rc(rc, "'%s'", path);
	return 0;
}
