/*
 * hpatch test service. A TCP line server on 127.0.0.1 with worker threads
 * blocked in nanosleep, read and futex waits; v1 and v2 (-DV=1/2) differ
 * in four functions; v3 changes only price() and version() from v1, so a
 * v3 patch replacing or stacking on the v2 one can be told apart. Commands, one per line:
 *   price N   -> price(N)           (changed: v2 adds a discount)
 *   next      -> next_id()          (changed; a static local counter)
 *   hold MS   -> hold(MS)           (changed; sleeps MS inside itself, or
 *                                   with -MS spins MS in burn(), running)
 *   eintr     -> system calls that failed with EINTR so far (must stay 0)
 *   version   -> the version string of the code that answers
 *   vfork MS  -> vfork(); the child sleeps MS and exits, the thread waits
 *                for it meanwhile (where no ptrace interrupt stops it,
 *                sharing its memory with the child); then its pid
 *   waitchild MS -> the same wait for a child with its own copy of the
 *                memory (clone(CLONE_VFORK) without CLONE_VM)
 *   fork MS   -> fork(): a child with its own copy of the memory (the
 *                patches in it) sleeps MS and exits; its pid, at once
 *   share MS  -> a child sharing the memory (clone(CLONE_VM)) whose
 *                leader leaves at once, a thread of its own running on
 *                for MS; its pid, without waiting
 *   reexec    -> "ok", then the thread execs the program again (one
 *                worker), which prints a new ready line
 *   rtstats   -> "n=N sum=S bad=B": SIGRTMIN+1 signals received, the sum
 *                of their si_value, and how many came without SI_QUEUE
 * usage: svc [WORKERS [main-exits|main-strict|all-strict|main-holds MS]]
 * prints "svc: ready pid=N port=P" when listening; with main-exits the
 * main thread leaves (pthread_exit) and a thread of its own accepts, as
 * some daemons do; with main-strict a thread of its own accepts and the
 * main thread enters seccomp strict mode (read, write, exit only), waiting
 * in a read; all-strict is main-strict with no thread accepting (with 0
 * WORKERS, every thread strict); with main-holds the main thread first
 * sleeps MS inside hold() (with 0 WORKERS, the process's only thread),
 * then accepts.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static atomic_int nr_eintr;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;

__attribute__((noinline)) int price(int qty)
{
#if V == 1
	return qty * 10;
#elif V == 2
	return qty * 10 - qty / 2;
#else
	return qty * 9;
#endif
}

__attribute__((noinline)) int next_id(void)
{
	static int counter;

#if V != 2
	return ++counter;
#else
	counter += 1;
	return 1000 + counter;
#endif
}

/* The same in every version: spins @ms on the clock, never in the kernel
 * for long, so a thread in it runs below its caller. */
__attribute__((noinline)) void burn(int ms)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	do
		clock_gettime(CLOCK_MONOTONIC, &b);
	while ((b.tv_sec - a.tv_sec) * 1000 +
		       (b.tv_nsec - a.tv_nsec) / 1000000 <
	       ms);
}

__attribute__((noinline)) const char *hold(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	if (ms < 0)
		burn(-ms);
	else
		while (nanosleep(&ts, &ts) && errno == EINTR)
			atomic_fetch_add(&nr_eintr, 1);
#if V != 2
	return "held v1";
#else
	return "held v2";
#endif
}

__attribute__((noinline)) const char *version(void)
{
#if V == 1
	return "v1";
#elif V == 2
	return "v2";
#else
	return "v3";
#endif
}

/* Real-time signals, as sigqueue sends them (issue 14): each one must
 * arrive, once, with its value and code. */
static atomic_long rt_n, rt_sum, rt_bad;
static const char *self_path; /* argv[0], for reexec */

static void on_rt(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	atomic_fetch_add(&rt_n, 1);
	atomic_fetch_add(&rt_sum, si->si_value.sival_int);
	if (si->si_code != SI_QUEUE)
		atomic_fetch_add(&rt_bad, 1);
}

/* The same in every version (issue 14: a thread no interrupt stops). */
static int vfork_wait(int ms, bool share)
{
	const struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	pid_t child = share ? vfork()
			    : (pid_t)syscall(SYS_clone, CLONE_VFORK | SIGCHLD,
					     NULL, NULL, NULL, NULL);

	if (child == 0) {
		syscall(SYS_nanosleep, &ts, NULL);
		syscall(SYS_exit, 0);
	}
	if (child > 0)
		waitpid(child, NULL, 0);
	return (int)child;
}

/* The same in every version: a forked worker, as a server makes one. */
static int fork_sleep(int ms)
{
	const struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	const pid_t child = fork();

	if (child == 0) {
		syscall(SYS_nanosleep, &ts, NULL);
		syscall(SYS_exit_group, 0);
	}
	return (int)child;
}

/* The same in every version (issue 12): one share at a time. */
static char share_stacks[2][64 << 10];

static int share_sleep(void *arg)
{
	const int ms = (int)(long)arg;
	const struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	syscall(SYS_nanosleep, &ts, NULL);
	syscall(SYS_exit, 0);
	return 0;
}

static int share_leave(void *arg)
{
	clone(share_sleep, share_stacks[1] + sizeof(share_stacks[1]),
	      CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD,
	      arg);
	syscall(SYS_exit, 0);
	return 0;
}

static void *sleeper(void *arg)
{
	const struct timespec tick = { 0, 50 * 1000 * 1000 };

	(void)arg;
	for (;;)
		if (nanosleep(&tick, NULL) && errno == EINTR)
			atomic_fetch_add(&nr_eintr, 1);
	return NULL;
}

static void *waiter(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;)
		pthread_cond_wait(&never, &lock); /* futex wait, forever */
	return NULL;
}

static void *serve(void *arg)
{
	FILE *conn = fdopen((int)(long)arg, "r+");
	char req[128];

	if (!conn)
		return NULL;
	setvbuf(conn, NULL, _IOLBF, 0);
	for (;;) {
		errno = 0;
		if (!fgets(req, sizeof(req), conn)) {
			if (errno == EINTR) {
				atomic_fetch_add(&nr_eintr, 1);
				clearerr(conn);
				continue;
			}
			break;
		}
		if (!strncmp(req, "price ", 6))
			fprintf(conn, "%d\n", price(atoi(req + 6)));
		else if (!strncmp(req, "next", 4))
			fprintf(conn, "%d\n", next_id());
		else if (!strncmp(req, "hold ", 5))
			fprintf(conn, "%s\n", hold(atoi(req + 5)));
		else if (!strncmp(req, "eintr", 5))
			fprintf(conn, "%d\n", atomic_load(&nr_eintr));
		else if (!strncmp(req, "vfork ", 6))
			fprintf(conn, "%d\n", vfork_wait(atoi(req + 6), true));
		else if (!strncmp(req, "waitchild ", 10))
			fprintf(conn, "%d\n",
				vfork_wait(atoi(req + 10), false));
		else if (!strncmp(req, "fork ", 5))
			fprintf(conn, "%d\n", fork_sleep(atoi(req + 5)));
		else if (!strncmp(req, "share ", 6))
			fprintf(conn, "%d\n",
				clone(share_leave,
				      share_stacks[0] + sizeof(share_stacks[0]),
				      CLONE_VM | SIGCHLD,
				      (void *)(long)atoi(req + 6)));
		else if (!strncmp(req, "reexec", 6)) {
			fprintf(conn, "ok\n");
			fflush(conn);
			execl("/proc/self/exe", self_path, "1", (char *)NULL);
			fprintf(conn, "exec failed\n");
		} else if (!strncmp(req, "rtstats", 7))
			fprintf(conn, "n=%ld sum=%ld bad=%ld\n",
				atomic_load(&rt_n), atomic_load(&rt_sum),
				atomic_load(&rt_bad));
		else if (!strncmp(req, "version", 7))
			fprintf(conn, "%s\n", version());
		else
			fprintf(conn, "?\n");
	}
	fclose(conn);
	return NULL;
}

static void *acceptor(void *arg)
{
	const int srv = (int)(long)arg;
	pthread_t t;

	for (;;) {
		int fd = accept(srv, NULL, NULL);

		if (fd < 0 && errno == EINTR) {
			atomic_fetch_add(&nr_eintr, 1);
			continue;
		}
		if (fd >= 0 &&
		    pthread_create(&t, NULL, serve, (void *)(long)fd))
			close(fd);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	int workers = argc > 1 ? atoi(argv[1]) : 2;
	pthread_t t;
	int one = 1, srv;

	struct sigaction sa = { .sa_sigaction = on_rt,
				.sa_flags = SA_SIGINFO | SA_RESTART };

	sigaction(SIGRTMIN + 1, &sa, NULL);
	self_path = argv[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	srv = socket(AF_INET, SOCK_STREAM, 0);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (srv < 0 || bind(srv, (struct sockaddr *)&addr, sizeof(addr)) ||
	    listen(srv, 64) ||
	    getsockname(srv, (struct sockaddr *)&addr, &len)) {
		perror("svc: listen");
		return 1;
	}
	for (int i = 0; i < workers; i++) {
		pthread_create(&t, NULL, sleeper, NULL);
		pthread_create(&t, NULL, waiter, NULL);
	}
	printf("svc: ready pid=%d port=%d\n", (int)getpid(),
	       ntohs(addr.sin_port));
	if (argc > 2 && !strcmp(argv[2], "main-exits")) {
		pthread_create(&t, NULL, acceptor, (void *)(long)srv);
		pthread_exit(NULL);
	}
	if (argc > 2 && (!strcmp(argv[2], "main-strict") ||
			 !strcmp(argv[2], "all-strict"))) {
		int never_written[2];
		char c;

		if (!strcmp(argv[2], "main-strict"))
			pthread_create(&t, NULL, acceptor, (void *)(long)srv);
		if (pipe(never_written) ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0))
			return 1;
		for (;;)
			if (read(never_written[0], &c, 1) <= 0)
				syscall(SYS_exit,
					0); /* all strict mode allows */
	}
	if (argc > 3 && !strcmp(argv[2], "main-holds"))
		hold(atoi(argv[3]));
	acceptor((void *)(long)srv);
}
