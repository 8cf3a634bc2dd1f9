/*
 * Stress driver: apply and revert one patch on one process, alternately,
 * COUNT times, through the runtime API (what hpatch apply/revert run).
 * Fails at the first error. Prints the pauses' median and maximum.
 * usage: hp_stress PID PATCH COUNT
 */
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"
#include "packer/packer.h"
#include "runtime/runtime.h"

#include <stdio.h>
#include <stdlib.h>

static int cmp_u64(const void *a, const void *b)
{
	const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct hp_rt_opts opts = { .flags = HP_RT_ALLOW_ACTIVE,
				   .timeout_ms = 10000,
				   .state_dir = getenv("HPATCH_STATE_DIR") };
	struct hp_patch *p = NULL;
	uint64_t *pauses = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	long count;
	pid_t pid;

	if (argc != 4)
		return 2;
	pid = (pid_t)atoi(argv[1]);
	count = atol(argv[3]);
	hp_log_set_prog("hp_stress");
	hp_rt_boost();
	hp_log_set_level(HP_LOG_ERROR);
	pauses = calloc((size_t)count * 2 + 1, sizeof(*pauses));
	if (!pauses || hp_sign_init() ||
	    hp_read_file(argv[2], 1 << 26, &data, &len) ||
	    hp_pack_read(argv[2], data, len, NULL, HP_PACK_NO_VERIFY, &p))
		return 1;
	for (long i = 0; i < count; i++) {
		struct hp_rt_result res;

		if (hp_rt_apply(p, pid, &opts, &res)) {
			fprintf(stderr, "round %ld: apply: %s\n", i,
				hp_strerror(res.rc));
			return 1;
		}
		pauses[2 * i] = res.pause_us;
		if (hp_rt_revert(pid, &opts, &res)) {
			fprintf(stderr, "round %ld: revert: %s\n", i,
				hp_strerror(res.rc));
			return 1;
		}
		pauses[2 * i + 1] = res.pause_us;
	}
	qsort(pauses, (size_t)count * 2, sizeof(*pauses), cmp_u64);
	printf("%ld apply/revert rounds: pause median %llu us, max %llu us\n",
	       count, (unsigned long long)pauses[count],
	       (unsigned long long)pauses[2 * count - 1]);
	hp_patch_free(p);
	free(data);
	free(pauses);
	return 0;
}
