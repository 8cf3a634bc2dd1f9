/* Tests of opens that must never wait on a lease (tests/unit). */
#ifndef HP_TEST_LEASE_H
#define HP_TEST_LEASE_H

#include "hp_test.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline void hp_test_on_alarm(int sig)
{
	(void)sig;
}

/*
 * Run @fn(@arg) while a child holds a write lease on @path (as any user
 * may on a file of his; it keeps the lease when told of the break), under
 * a 2 s alarm whose signal ends an open blocked on the lease (no
 * SA_RESTART). Return: how long @fn took, in ms.
 */
static inline long hp_test_ms_while_leased(const char *path, void (*fn)(void *),
					   void *arg)
{
	struct sigaction sa = { .sa_handler = hp_test_on_alarm }, old;
	struct timespec t0, t1;
	int ready[2], status = 0;
	pid_t holder;
	char c = 0;

	assert_int_equal(pipe(ready), 0);
	holder = fork();
	assert_true(holder >= 0);
	if (holder == 0) {
		const int fd = open(path, O_RDWR);

		signal(SIGIO, SIG_IGN);
		c = fd >= 0 && !fcntl(fd, F_SETLEASE, F_WRLCK) ? 'y' : 'n';
		if (write(ready[1], &c, 1) == 1)
			pause();
		_exit(0);
	}
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(c, 'y');
	sigaction(SIGALRM, &sa, &old);
	alarm(2);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	fn(arg);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	alarm(0);
	sigaction(SIGALRM, &old, NULL);
	kill(holder, SIGKILL);
	waitpid(holder, &status, 0);
	close(ready[0]);
	close(ready[1]);
	return (t1.tv_sec - t0.tv_sec) * 1000 +
	       (t1.tv_nsec - t0.tv_nsec) / 1000000;
}

#endif
