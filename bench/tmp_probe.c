/*
 * For the benches: what creating a file costs now where perf maps go.
 * Every process hpatch patches gets /tmp/perf-PID.map (runtime/
 * rt_perfmap.c), so each bench's figures carry one file creation per
 * process. On an ext4 without a journal that cost depends on the host's
 * recent past: the inode allocator skips every free inode of the group
 * deleted lately, reading its table block, and a create in /tmp was
 * measured at 24 us on a quiet disk and 200-450 us for minutes after a
 * test suite's or a bench's clean-up. Creates PREFIX0 .. PREFIX(N-1),
 * exclusively, 44 bytes each (a map's line), and prints the CPU time per
 * create. The files are left for the caller to remove with the rest of
 * its run: removing them here would make the bench that follows pay.
 * usage: bench_tmp_probe PREFIX [N]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	static const char line[] = "7f0000001000 12 price [hpatch:probe]\n";
	const long n = argc > 2 ? atol(argv[2]) : 100;
	long long t0, spent;
	char path[4096];

	if (argc < 2 || argc > 3 || n <= 0) {
		fprintf(stderr, "usage: %s PREFIX [N]\n", argv[0]);
		return 2;
	}
	t0 = cpu_ns();
	for (long i = 0; i < n; i++) {
		int fd;

		snprintf(path, sizeof(path), "%s%ld", argv[1], i);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || write(fd, line, sizeof(line) - 1) < 0) {
			fprintf(stderr, "%s: %s: %s\n", argv[0], path,
				strerror(errno));
			return 1;
		}
		close(fd);
	}
	spent = cpu_ns() - t0;
	printf("file create where perf maps go: %.1f us of CPU each (%ld in "
	       "%s*)\n",
	       (double)spent / 1000.0 / (double)n, n, argv[1]);
	return 0;
}
