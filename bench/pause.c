/*
 * bench/pause: how long hpatch stops a process, against the physical floor.
 * For each thread count, in one run against one target: the floor is the
 * median time to interrupt every (already seized) thread, wait for all to
 * stop and resume them; the pause is the median of what hp_rt_apply
 * reports for a ten-function patch (apply and revert alternate).
 * Prints: threads=N pause_us=X floor_us=Y ratio=X/Y tries=T revert_us=R
 * (the median pause of the reverts), then the same for the last N with
 * "stacks=checked": threads spinning outside the functions, applied
 * without --allow-active, so every stack is read and checked in the stop.
 * usage: bench_pause SPIN_BINARY PATCH_FILE [THREADS...]
 */
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"
#include "packer/packer.h"
#include "runtime/runtime_int.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROUNDS 21

static int cmp_u64(const void *a, const void *b)
{
	const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	return v[n / 2];
}

/* The floor: seize all outside the clock, then interrupt, wait, resume. */
static uint64_t floor_once(pid_t pid)
{
	struct hp_world w = { .pid = pid };
	pid_t *tids = NULL;
	size_t nr = 0;
	uint64_t t0, t1, t_stopped;
	struct sched_param sp = { .sched_priority = 1 };
	int policy = sched_getscheduler(0);
	struct sched_param old;

	sched_getparam(0, &old);
	if (hp_proc_list_tasks(pid, &tids, &nr))
		return 0;
	w.threads = calloc(nr, sizeof(*w.threads));
	for (size_t i = 0; i < nr; i++) {
		w.threads[i].tid = tids[i];
		if (!hp_pt_seize(&w.threads[i]))
			w.nr_threads++;
		else
			w.threads[i].seized = false;
	}
	sched_setscheduler(0, SCHED_FIFO, &sp);
	t0 = hp_now_us();
	hp_pt_set_deadline(t0 + 250000); /* bounded as hp_world_stop is */
	for (size_t i = 0; i < nr; i++)
		if (w.threads[i].seized && hp_pt_interrupt(&w.threads[i]))
			w.threads[i].seized = false;
	for (size_t i = 0; i < nr; i++)
		if (w.threads[i].seized && hp_pt_wait_stop(&w.threads[i]))
			w.threads[i].seized = false;
	t_stopped = hp_now_us();
	hp_pt_set_deadline(0);
	for (size_t i = 0; i < nr; i++)
		hp_pt_release(&w.threads[i]);
	t1 = hp_now_us();
	hp_dbg(HP_DBG_TIMING,
	       "floor: %zu threads: stop %llu us, resume %llu us", nr,
	       (unsigned long long)(t_stopped - t0),
	       (unsigned long long)(t1 - t_stopped));
	sched_setscheduler(0, policy, &old);
	free(w.threads);
	free(tids);
	return t1 - t0;
}

/*
 * End the target @pid, and remove the perf map hpatch wrote for it while
 * that pid is still its own (a zombie's until reaped): a map left in /tmp
 * is found by the next process of that pid, and the benches' maps were
 * most of the stale ones there.
 */
static void end_spin(pid_t pid)
{
	char path[64];

	kill(pid, SIGKILL);
	snprintf(path, sizeof(path), "/tmp/perf-%d.map", (int)pid);
	unlink(path);
	waitpid(pid, NULL, 0);
}

static pid_t start_spin(const char *bin, int n, bool outside)
{
	char arg[16], line[128];
	int fds[2];
	const pid_t parent = getpid();
	pid_t pid;
	FILE *fp = NULL;

	if (pipe(fds))
		return -1;
	snprintf(arg, sizeof(arg), "%d", n);
	pid = fork();
	if (pid == 0) {
		/* (Ends with the bench, however it ends: a target left
		 * spinning on every core skews whatever runs next.) */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
			_exit(127);
		dup2(fds[1], 1);
		close(fds[0]);
		execl(bin, bin, arg, outside ? "outside" : NULL, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	fp = fdopen(fds[0], "r");
	if (!fp || !fgets(line, sizeof(line), fp) || !strstr(line, "ready")) {
		end_spin(pid);
		return -1;
	}
	fclose(fp);
	return pid;
}

/*
 * One line: the median pause of @n threads (spinning in the patched
 * functions, or @outside them) under @opts, beside the median floor.
 */
static int measure(const char *bin, const struct hp_patch *p, int n,
		   bool outside, const struct hp_rt_opts *opts)
{
	uint64_t floors[ROUNDS], pauses[ROUNDS], reverts[ROUNDS], fl, pa;
	unsigned int tries = 0;
	pid_t pid = start_spin(bin, n, outside);

	if (pid < 0)
		return 1;
	usleep(200000); /* let every thread start spinning */
	for (int r = 0; r < ROUNDS; r++) {
		struct hp_rt_result res;

		floors[r] = floor_once(pid);
		if (hp_rt_apply(p, pid, opts, &res)) {
			fprintf(stderr, "apply failed: %s\n",
				hp_strerror(res.rc));
			end_spin(pid);
			return 1;
		}
		pauses[r] = res.pause_us;
		tries += res.nr_tries;
		if (hp_rt_revert(pid, opts, &res)) {
			fprintf(stderr, "revert failed: %s\n",
				hp_strerror(res.rc));
			end_spin(pid);
			return 1;
		}
		reverts[r] = res.pause_us;
	}
	fl = median(floors, ROUNDS);
	pa = median(pauses, ROUNDS);
	printf("threads=%d%s pause_us=%llu floor_us=%llu ratio=%.2f "
	       "tries=%.1f revert_us=%llu\n",
	       n, outside ? " stacks=checked" : "", (unsigned long long)pa,
	       (unsigned long long)fl, fl ? (double)pa / (double)fl : 0.0,
	       (double)tries / ROUNDS,
	       (unsigned long long)median(reverts, ROUNDS));
	fflush(stdout);
	end_spin(pid);
	return 0;
}

int main(int argc, char **argv)
{
	static const int defaults[] = { 1, 16, 64, 256 };
	/* Its own (a test's), else one kept from run to run. */
	const char *state = getenv("HPATCH_STATE_DIR") ?: "/tmp/hp-bench-state";
	const struct hp_rt_opts active = { .flags = HP_RT_ALLOW_ACTIVE,
					   .timeout_ms = 10000,
					   .state_dir = state };
	const struct hp_rt_opts checked = { .timeout_ms = 10000,
					    .state_dir = state };
	struct hp_patch *p = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	int nr_counts = argc > 3 ? argc - 3 : 4, n = 0, rc = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: %s SPIN_BINARY PATCH [THREADS...]\n",
			argv[0]);
		return 2;
	}
	hp_log_set_prog("bench_pause");
	hp_log_set_level(HP_LOG_ERROR);
	if (getenv("HP_BENCH_DEBUG")) /* e.g. "timing": stages per stop */
		hp_log_set_debug(getenv("HP_BENCH_DEBUG"));
	if (hp_sign_init() || hp_read_file(argv[2], 1 << 26, &data, &len) ||
	    hp_pack_read(argv[2], data, len, NULL, HP_PACK_NO_VERIFY, &p))
		return 1;
	/* Threads in the functions: --allow-active, instruction and stack
	 * pointers read in the stop. */
	for (int c = 0; c < nr_counts && !rc; c++) {
		n = argc > 3 ? atoi(argv[3 + c]) : defaults[c];
		rc = measure(argv[1], p, n, false, &active);
	}
	/* The default path at the largest count: threads outside the
	 * functions, every stack read and checked in the stop. */
	if (!rc)
		rc = measure(argv[1], p, n, true, &checked);
	hp_patch_free(p);
	free(data);
	return rc;
}
