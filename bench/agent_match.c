/*
 * What hpatchd pays at each exec on the host to learn which installed
 * patches the new process maps: its cached matcher (ag_match: the maps
 * read once, each mapped file's build-id cached by identity) against the
 * runtime's hp_rt_match (each file's headers read from the process's
 * memory). A patch for a build nobody runs: the common case, a process
 * no patch is for. Prints ns per call of each, the best of 5 rounds.
 * usage: bench_agent_match PID [CALLS]   (run it under strace -c -f to
 * count the system calls of each: "ag" or "rt" as a third argument runs
 * that one only)
 */
#include "agent/agent_int.h"
#include "common/hp_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct hp_module mod = { .build_id = { 0x5a }, .build_id_len = 20 };
	struct hp_patch p = { .modules = &mod, .nr_modules = 1 };
	const struct hp_patch *const patches[] = { &p };
	const pid_t pid = argc > 1 ? atoi(argv[1]) : 0;
	const long calls = argc > 2 ? atol(argv[2]) : 1000;
	const char *only = argc > 3 ? argv[3] : "";
	uint64_t best[2] = { UINT64_MAX, UINT64_MAX };
	uint32_t mapped[1];
	size_t hit = 0;

	if (pid <= 0 || calls <= 0) {
		fprintf(stderr, "usage: %s PID [CALLS] [ag|rt]\n", argv[0]);
		return 2;
	}
	for (int round = 0; round < 5; round++)
		for (int which = 0; which < 2; which++) {
			const uint64_t t0 = hp_now_us();

			if (*only && strcmp(only, which ? "rt" : "ag"))
				continue;
			for (long i = 0; i < calls; i++)
				if ((which ? hp_rt_match(pid, patches, 1,
							 mapped, &hit)
					   : ag_match(pid, patches, 1, mapped,
						      &hit)) < 0)
					return fprintf(stderr, "pid %d: gone\n",
						       (int)pid),
					       1;
			if (hp_now_us() - t0 < best[which])
				best[which] = hp_now_us() - t0;
		}
	printf("match pid %d: ag_match %.0f ns, hp_rt_match %.0f ns per call\n",
	       (int)pid, best[0] * 1000.0 / (double)calls,
	       best[1] * 1000.0 / (double)calls);
	return 0;
}
