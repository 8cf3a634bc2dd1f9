/*
 * Spawner for bench/agent.sh: starts PROGRAM (with its exec time in ns as
 * argv[1], and the optional ARGS) RATE times a second for SECONDS, every
 * child's stdout appended to OUT, then waits for them all. Prints how many
 * it started and how far behind the schedule it fell.
 * usage: bench_agent_storm RATE SECONDS OUT PROGRAM [ARGS...]
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	posix_spawn_file_actions_t fa;
	long long start, lag = 0;
	long rate, secs, n = 0, nr;
	char t0[32], *args[8] = { 0 };
	int out;

	if (argc < 5 || argc > 9) {
		fprintf(stderr,
			"usage: %s RATE SECONDS OUT PROGRAM [ARGS...]\n",
			argv[0]);
		return 2;
	}
	rate = atol(argv[1]);
	secs = atol(argv[2]);
	nr = rate * secs;
	out = open(argv[3], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (rate <= 0 || secs <= 0 || out < 0) {
		perror(argv[3]);
		return 1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out, 1);
	args[0] = argv[4];
	args[1] = t0;
	for (int i = 5; i < argc; i++)
		args[i - 3] = argv[i];
	start = now_ns();
	for (n = 0; n < nr; n++) {
		const long long due = start + n * 1000000000LL / rate;
		long long t = now_ns();
		pid_t pid;

		if (t < due) {
			const struct timespec d = { (due - t) / 1000000000LL,
						    (due - t) % 1000000000LL };

			nanosleep(&d, NULL);
		} else if (t - due > lag) {
			lag = t - due;
		}
		snprintf(t0, sizeof(t0), "%lld", now_ns());
		if (posix_spawn(&pid, argv[4], &fa, NULL, args, environ)) {
			perror("posix_spawn");
			break;
		}
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
	while (wait(NULL) > 0 || errno == EINTR)
		;
	printf("storm: started=%ld rate=%ld/s max_lag_ms=%lld\n", n, rate,
	       lag / 1000000);
	return 0;
}
