/*
 * A run of hpatch over many processes (apply --all): the held signals,
 * and the forked workers that patch several processes at once while this
 * process reports each in the order of the list, as one would have.
 */
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"
#include "runtime/hpatch_cmds.h"
#include "runtime/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * While hpatch holds a process (its threads stopped, a system call
 * injected, jumps half written), dying would leave it worse than it was:
 * a region mapped for nothing, or a thread whose single-step trap is
 * delivered to it as SIGTRAP once no tracer catches it. So the signals
 * that end a session politely (a supervisor's SIGTERM, the SIGHUP of a
 * dropped ssh session, ^C, ^\\, a closed pipe, job control) wait until
 * the process is let go and its attempt recorded; then they act as ever.
 * The OOM killer is told to look elsewhere meanwhile. SIGKILL and SIGSTOP
 * cannot be held back.
 */
static const int held_sigs[] = {
	SIGTERM, SIGHUP,  SIGINT,  SIGQUIT, SIGPIPE, /* these 5 end a run */
	SIGTSTP, SIGTTIN, SIGTTOU,
};
#define HELD_ENDING 5

static bool set_oom_adj(const char *value)
{
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	bool ok = fd >= 0;

	if (ok && write(fd, value, strlen(value)) < 0) {
		hp_dbg(HP_DBG_PTRACE, "oom_score_adj %s: %s", value,
		       strerror(errno));
		ok = false;
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

/* oom_score_adj as hpatch started, read once (a run over many processes
 * holds each in turn); "" if unknown. */
static const char *oom_before(void)
{
	static char before[16];
	static bool read_once;
	ssize_t n;
	int fd;

	if (read_once)
		return before;
	read_once = true;
	fd = open("/proc/self/oom_score_adj", O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, before, sizeof(before) - 1);
	if (fd >= 0)
		close(fd);
	before[n > 0 ? n : 0] = 0;
	return before;
}

void hpatch_held_signals(sigset_t *set)
{
	sigemptyset(set);
	for (size_t i = 0; i < sizeof(held_sigs) / sizeof(held_sigs[0]); i++)
		sigaddset(set, held_sigs[i]);
}

void hpatch_hold_begin(struct hpatch_hold *h)
{
	/* (Some containers forbid lowering it even to root: once
	 * refused, not tried again.) */
	static bool refused;
	sigset_t set;

	hpatch_held_signals(&set);
	sigprocmask(SIG_BLOCK, &set, &h->old);
	snprintf(h->oom, sizeof(h->oom), "%s", refused ? "" : oom_before());
	if (h->oom[0] && !set_oom_adj("-1000")) {
		refused = true;
		h->oom[0] = 0;
	}
}

/*
 * After the attempt is recorded: a signal held back acts now. It ends
 * hpatch (or stops it) before main's own hp_rt_release_left: a thread
 * left inside an injected call and back since would be let go by the
 * kernel with hpatch's registers, every signal blocked and the trap of
 * its step pending (which killed the target). So it is given what it is
 * owed first, as at hpatch's exit.
 */
void hpatch_hold_end(struct hpatch_hold *h)
{
	sigset_t pending;

	if (h->oom[0])
		set_oom_adj(h->oom);
	if (!sigpending(&pending))
		for (size_t i = 0; i < HP_ARRAY_SIZE(held_sigs); i++)
			if (sigismember(&pending, held_sigs[i]) &&
			    !sigismember(&h->old, held_sigs[i])) {
				(void)hp_rt_release_left();
				break;
			}
	sigprocmask(SIG_SETMASK, &h->old, NULL);
}

/*
 * Between two processes of a run held as one: a held signal that came
 * meanwhile acts now (the run ends, or stops for job control and goes
 * on), as if each process had been held alone: one sigpending where
 * letting go and holding again cost two sigprocmask and, where allowed,
 * six calls for oom_score_adj.
 */
static void let_pending_act(struct hpatch_hold *h, const sigset_t *pending)
{
	for (size_t i = 0; i < sizeof(held_sigs) / sizeof(held_sigs[0]); i++)
		if (sigismember(pending, held_sigs[i]) &&
		    !sigismember(&h->old, held_sigs[i])) {
			fflush(NULL); /* what was reported stays said */
			hpatch_hold_end(h);
			hpatch_hold_begin(h);
			return;
		}
}

static bool ends_run(const sigset_t *pending)
{
	for (size_t i = 0; i < HELD_ENDING; i++)
		if (sigismember(pending, held_sigs[i]))
			return true;
	return false;
}

/* The run's results, shared with the workers (MAP_SHARED). */
enum job_state { JOB_FREE, JOB_TAKEN, JOB_DONE };

/* What a worker says meanwhile, per process (the rest is cut). */
#define HPATCH_JOB_LOG 2048

struct job_slot {
	_Atomic int state; /* enum job_state */
	pid_t worker;	   /* which took it */
	int rc;
	struct hp_rt_result res;
	char log[HPATCH_JOB_LOG]; /* its stderr, NUL-terminated */
};

struct job_shared {
	atomic_size_t next; /* the next process to take */
	struct job_slot slots[];
};

/* The workers: at most this many, and one per CPU by default. */
#define HPATCH_JOBS_DEFAULT_MAX 4

unsigned int hpatch_jobs_default(void)
{
	cpu_set_t set;
	int n;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 1;
	n = CPU_COUNT(&set);
	return n < 1			     ? 1
	       : n > HPATCH_JOBS_DEFAULT_MAX ? HPATCH_JOBS_DEFAULT_MAX
					     : (unsigned int)n;
}

/* In order, in this process: nothing forked (one worker, one process). */
static void run_here(const struct hpatch_jobs *j)
{
	struct hpatch_hold h;

	hpatch_hold_begin(&h);
	for (size_t i = 0; i < j->nr; i++) {
		struct hp_rt_result res;
		const int rc = j->attempt(j->ctx, i, &res);

		sigset_t pending;

		j->report(j->ctx, i, &res, rc);
		if (!sigpending(&pending))
			let_pending_act(&h, &pending);
	}
	hpatch_hold_end(&h);
}

/*
 * A worker: takes the next process of the list until none is left,
 * patches it with its stderr going to the process's slot (unbuffered:
 * what was said before the worker died is there), says which is done on
 * @fd, and leaves when a held signal came: the one that forked it reports
 * and acts on it. Never returns.
 */
static void worker(const struct hpatch_jobs *j, struct job_shared *sh, int fd,
		   const sigset_t *orig)
{
	const pid_t self = hp_self_pid();
	struct hpatch_hold h;
	FILE *err = stderr;

	/* Held since before the fork; the parent's handlers are not ours. */
	for (size_t i = 0; i < sizeof(held_sigs) / sizeof(held_sigs[0]); i++)
		signal(held_sigs[i], SIG_DFL);
	hp_rt_boost();
	hpatch_hold_begin(&h);
	h.old = *orig; /* what letting go restores: the mask before hpatch's */
	for (;;) {
		const size_t i = atomic_fetch_add(&sh->next, 1);
		struct job_slot *s = NULL;
		sigset_t pending;
		FILE *cap = NULL;
		uint32_t done = (uint32_t)i;

		if (i >= j->nr)
			break;
		s = &sh->slots[i];
		s->worker = self;
		atomic_store(&s->state, JOB_TAKEN);
		cap = fmemopen(s->log, sizeof(s->log), "w");
		if (cap) {
			setvbuf(cap, NULL, _IONBF, 0);
			stderr = cap;
		}
		s->rc = j->attempt(j->ctx, i, &s->res);
		stderr = err;
		if (cap)
			fclose(cap);
		atomic_store(&s->state, JOB_DONE);
		if (write(fd, &done, sizeof(done)) != sizeof(done))
			break; /* the reporter is gone (SIGPIPE held) */
		if (sigpending(&pending))
			continue;
		if (ends_run(&pending))
			break;
		/* (A stop signal alone stops this worker, and it goes on.) */
		let_pending_act(&h, &pending);
	}
	hp_rt_batch_end();
	(void)hp_rt_release_left(); /* as hpatch's own exit (main) */
	_exit(0);
}

struct crew {
	pid_t *pids;
	int *status;
	unsigned int nr;  /* started */
	unsigned int cap; /* to start */
};

/*
 * The signal the run was asked to end with (0: none), and the workers it
 * is passed on to at once, by the handler itself: this process then
 * waits in a plain read, where a flag checked before it could miss a
 * signal that came just before. NULL from before the workers are reaped
 * (their pids may be reused after).
 */
static volatile sig_atomic_t ended_by;
static const struct crew *volatile pass_to;

static void note_signal(int sig)
{
	const int saved = errno;
	const struct crew *c = pass_to;

	if (!ended_by)
		ended_by = sig;
	for (unsigned int w = 0; c && w < c->nr; w++)
		kill(c->pids[w], sig);
	errno = saved;
}

/* What became of the worker @pid, for a message. */
static void worker_fate(const struct crew *c, pid_t pid, char *buf, size_t size)
{
	for (unsigned int w = 0; w < c->nr; w++) {
		const int st = c->status[w];

		if (c->pids[w] != pid)
			continue;
		if (WIFSIGNALED(st))
			snprintf(buf, size, "was killed by signal %d (%s)",
				 WTERMSIG(st), strsignal(WTERMSIG(st)));
		else
			snprintf(buf, size, "exited with status %d",
				 WEXITSTATUS(st));
		return;
	}
	snprintf(buf, size, "ended");
}

/* Report process @i of the run, done or not. */
static void report_slot(const struct hpatch_jobs *j, const struct crew *c,
			struct job_slot *s, size_t i)
{
	const int state = atomic_load(&s->state);
	struct hp_rt_result res = { .pid = j->pids[i] };
	char fate[96];

	s->log[sizeof(s->log) - 1] = 0; /* cut, or a worker killed */
	if (state == JOB_DONE) {
		fputs(s->log, stderr);
		j->report(j->ctx, i, &s->res, s->rc);
		return;
	}
	res.rc = -HP_E_WORKER;
	if (state == JOB_TAKEN) {
		fputs(s->log, stderr);
		worker_fate(c, s->worker, fate, sizeof(fate));
		hp_error(-HP_E_WORKER,
			 "pid %d: the hpatch worker (pid %d) patching it %s "
			 "before it was done; the process may be left partly "
			 "patched",
			 (int)res.pid, (int)s->worker, fate);
		hp_hint("see 'hpatch status -p %d', then apply again or "
			"revert",
			(int)res.pid);
	} else {
		hp_error(-HP_E_WORKER,
			 "pid %d: not attempted: every hpatch worker ended "
			 "before it; nothing changed",
			 (int)res.pid);
		hp_hint("apply again");
	}
	j->lost(j->ctx, i, &res);
}

/* Start the workers, signals held (as @h). Return: how many started. */
static unsigned int start_crew(const struct hpatch_jobs *j,
			       struct job_shared *sh, int fds[2],
			       struct crew *c, const struct hpatch_hold *h)
{
	fflush(stdout);
	fflush(stderr);
	for (; c->nr < c->cap; c->nr++) {
		const pid_t pid = fork();

		if (pid < 0) {
			hp_warn("cannot start more than %u worker processes: "
				"%s",
				c->nr, strerror(errno));
			break;
		}
		if (pid == 0) {
			close(fds[0]);
			worker(j, sh, fds[1], &h->old);
		}
		c->pids[c->nr] = pid;
	}
	close(fds[1]);
	fds[1] = -1;
	return c->nr;
}

/*
 * Report each process as its worker says it is done, in the order of the
 * list (as one process would have), until every worker has left; then
 * what they left undone.
 */
static void gather(const struct hpatch_jobs *j, struct job_shared *sh, int fd,
		   struct crew *c)
{
	bool *ready = calloc(j->nr, sizeof(*ready));
	size_t next = 0;

	for (;;) {
		uint32_t done[64];
		const ssize_t n = read(fd, done, sizeof(done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t k = 0; ready && k < n / (ssize_t)sizeof(*done);
		     k++)
			if (done[k] < j->nr)
				ready[done[k]] = true;
		for (; ready && next < j->nr && ready[next]; next++)
			report_slot(j, c, &sh->slots[next], next);
	}
	pass_to = NULL;
	for (unsigned int w = 0; w < c->nr; w++)
		while (waitpid(c->pids[w], &c->status[w], 0) < 0 &&
		       errno == EINTR)
			;
	/* Asked to end: what was not begun is not reported. */
	for (; next < j->nr; next++)
		if (!ended_by ||
		    atomic_load(&sh->slots[next].state) != JOB_FREE)
			report_slot(j, c, &sh->slots[next], next);
	free(ready);
}

/*
 * The forked run. Return: false when no worker could start (nothing
 * was taken: the caller runs it here).
 */
static bool run_forked(const struct hpatch_jobs *j, unsigned int nr_workers)
{
	const size_t size =
		sizeof(struct job_shared) + j->nr * sizeof(struct job_slot);
	/* (No SA_RESTART: a signal ends the read it comes in.) */
	struct sigaction sa = { .sa_handler = note_signal };
	struct crew c = { 0 };
	struct job_shared *sh = NULL;
	struct hpatch_hold h;
	int fds[2] = { -1, -1 };
	bool ran = false;

	c.pids = calloc(nr_workers, sizeof(*c.pids));
	c.status = calloc(nr_workers, sizeof(*c.status));
	sh = mmap(NULL, size, PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (sh == MAP_FAILED)
		sh = NULL;
	if (!c.pids || !c.status || !sh || pipe2(fds, O_CLOEXEC) < 0)
		goto out;
	/* Held from before the first fork, so no worker misses one; here
	 * they end the run after the workers' current processes (job
	 * control stops this process as ever). */
	hpatch_hold_begin(&h);
	for (size_t i = 0; i < HELD_ENDING; i++)
		sigaction(held_sigs[i], &sa, NULL);
	c.cap = nr_workers;
	ran = start_crew(j, sh, fds, &c, &h) > 0;
	pass_to = &c;
	hpatch_hold_end(&h); /* (this process holds none) */
	if (ran)
		gather(j, sh, fds[0], &c);
	pass_to = NULL;
	for (size_t i = 0; i < HELD_ENDING; i++)
		signal(held_sigs[i], SIG_DFL);
	if (ended_by) {
		fflush(NULL);
		raise(ended_by);
	}
out:
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	if (sh)
		munmap(sh, size);
	free(c.pids);
	free(c.status);
	return ran;
}

void hpatch_jobs_run(const struct hpatch_jobs *j, unsigned int nr_workers)
{
	if (nr_workers > j->nr)
		nr_workers = (unsigned int)j->nr;
	if (nr_workers <= 1 || !run_forked(j, nr_workers))
		run_here(j);
}
