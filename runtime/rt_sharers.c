/*
 * Processes that share an address space without being threads of one
 * process: a vfork child and its parent (until the child execs or exits),
 * any clone(CLONE_VM) child. hpatch stops one process's threads; another
 * process running in the same memory would run on through the writes.
 */
#include "runtime/runtime_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define HP_LOG_PREFIX "rt: "
#define HP_SHARERS_LISTED 8

/*
 * kcmp(KCMP_VM) compares two processes' address spaces, and orders them:
 * 0 the same, 1 @a's before @b's, 2 after (an order of the kernel's
 * obfuscated pointers, fixed for as long as both live). -1 with errno:
 * either has exited (ESRCH), or is not ours to look at (EPERM).
 */
static int mm_order(pid_t a, pid_t b)
{
	return (int)syscall(SYS_kcmp, a, b, KCMP_VM, 0, 0);
}

static bool same_mm(pid_t a, pid_t b)
{
	return a != b && mm_order(a, b) == 0;
}

/*
 * A task with no memory: the kernel's threads, and a leader gone
 * (pthread_exit in main) while its process's other threads run on, whose
 * kcmp finds it sharing nothing though they may share a target's memory.
 * kthreadd (pid 2, where the kernel's threads are seen) has none; and the
 * kernel's threads alone share its files. Return: 2, or 0 where pid 2 is
 * not kthreadd (a pid namespace of its own), or where we may not compare
 * with it (a user who is not root: EPERM): any process may be one then.
 */
static pid_t kthreadd(void)
{
	static int pid = -1;

	if (pid < 0)
		pid = hp_task_is_kthread(2) && syscall(SYS_kcmp, hp_self_pid(),
						       2, KCMP_VM, 0, 0) >= 0
			      ? 2
			      : 0;
	return pid;
}

/* Return: a live thread of @pid's when its leader is gone, else 0. */
static pid_t gone_leader_thread(pid_t pid)
{
	const pid_t k = kthreadd();
	char path[48];
	struct stat st;
	pid_t tid;

	/* A kernel thread (most tasks without memory), or memory of its
	 * own: not one. */
	if (k && (syscall(SYS_kcmp, k, pid, KCMP_FILES, 0, 0) == 0 ||
		  mm_order(k, pid) != 0))
		return 0;
	/* One thread (2 + 1 links): none left to share through. */
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if (stat(path, &st) || st.st_nlink < 4)
		return 0;
	tid = hp_proc_live_tid(pid);
	return tid != pid ? tid : 0;
}

/*
 * The index: every process of the host grouped by address space, the
 * groups sorted by kcmp's order, so that a process's group is found in
 * log2(groups) calls. Built in n log2(groups) calls, once for a run over
 * many processes, where checking each alone costs one call per process
 * of the host (200 targets on a host of 300 processes: 60,000 calls,
 * against 2,400 to build and 8 per target).
 */
struct mm_group {
	pid_t *pids; /* pids[0] stands for the group in comparisons */
	size_t nr;
	size_t cap;
};

/* A process whose leader is gone, and a live thread that stands for it. */
struct gone_leader {
	pid_t pid;
	pid_t tid;
};

struct hp_rt_sharers {
	struct mm_group *groups; /* in kcmp order */
	size_t nr;
	size_t cap;
	struct gone_leader *gone; /* in no group of their memory's */
	size_t nr_gone;
	size_t cap_gone;
	const struct hp_rt_births *births; /* asked first, if any */
	pid_t built_last;     /* hp_last_pid before the listing; 0: unknown */
	uint64_t built_forks; /* forks_total() then; 0: unknown */
};

/*
 * Tasks created since boot, in every pid namespace (/proc/stat's
 * "processes"), or 0 when unknown: what the last pid cannot say, that
 * the pids went all the way round (pid_max forks: 32768 by default, half
 * a minute of a busy host).
 */
static uint64_t forks_total(void)
{
	char *text = NULL;
	const char *p = NULL;
	uint64_t v = 0;
	size_t len = 0;

	if (hp_read_proc_file("/proc/stat", &text, &len))
		return 0;
	p = strstr(text, "\nprocesses ");
	v = p ? strtoull(p + 11, NULL, 10) : 0;
	free(text);
	return v;
}

/*
 * Compare @pid's address space with group @g's, in the kernel's order.
 * A member that has exited is dropped from the group and the next one
 * asked (the order of an address space holds while any user lives).
 * Return: 0, 1 or 2 as kcmp; -1: @pid cannot be compared (exited, not
 * ours); -2: every member of @g has exited (@g left empty).
 */
static int order_with(struct mm_group *g, pid_t pid)
{
	while (g->nr) {
		const int r = mm_order(pid, g->pids[0]);

		if (r >= 0)
			return r;
		if (mm_order(pid, pid) < 0)
			return -1;
		memmove(g->pids, g->pids + 1, --g->nr * sizeof(*g->pids));
	}
	return -2;
}

static void drop_group(struct hp_rt_sharers *s, size_t i)
{
	free(s->groups[i].pids);
	memmove(&s->groups[i], &s->groups[i + 1],
		(s->nr - i - 1) * sizeof(*s->groups));
	s->nr--;
}

/*
 * Binary search for @pid's group. Return: 0 with *@at its index, 1 with
 * *@at where a new group would go, -1 if @pid cannot be compared.
 */
static int find_group(struct hp_rt_sharers *s, pid_t pid, size_t *at)
{
	size_t lo = 0, hi = s->nr;

	while (lo < hi) {
		const size_t mid = lo + (hi - lo) / 2;
		const int r = order_with(&s->groups[mid], pid);

		if (r == 0) {
			*at = mid;
			return 0;
		}
		if (r == -1)
			return -1;
		if (r == -2) { /* all gone: search again without it */
			drop_group(s, mid);
			lo = 0;
			hi = s->nr;
		} else if (r == 1) {
			hi = mid;
		} else {
			lo = mid + 1;
		}
	}
	*at = lo;
	return 1;
}

static int add_pid(struct mm_group *g, pid_t pid)
{
	if (hp_grow(&g->pids, &g->cap, g->nr, sizeof(*g->pids), 2))
		return -ENOMEM;
	g->pids[g->nr++] = pid;
	return 0;
}

static int insert(struct hp_rt_sharers *s, pid_t pid)
{
	size_t at = 0;
	const int r = find_group(s, pid, &at);

	if (r < 0)
		return 0; /* exited, or not ours: shares nothing we patch */
	if (r == 0)
		return add_pid(&s->groups[at], pid);
	if (hp_grow(&s->groups, &s->cap, s->nr, sizeof(*s->groups), 64))
		return -ENOMEM;
	memmove(&s->groups[at + 1], &s->groups[at],
		(s->nr - at) * sizeof(*s->groups));
	s->groups[at] = (struct mm_group){ 0 };
	s->nr++;
	return add_pid(&s->groups[at], pid);
}

/*
 * Note the processes of @pids whose leader is gone: grouped with the
 * tasks without memory, not with their live threads'. Where kthreadd
 * stands for those, only its group's members are looked at.
 */
static int note_gone(struct hp_rt_sharers *s, const pid_t *pids, size_t nr)
{
	const pid_t k = kthreadd();
	size_t at = 0;

	if (k && !find_group(s, k, &at)) {
		pids = s->groups[at].pids;
		nr = s->groups[at].nr;
	}
	for (size_t i = 0; i < nr; i++) {
		const pid_t tid = gone_leader_thread(pids[i]);

		if (!tid)
			continue;
		if (hp_grow(&s->gone, &s->cap_gone, s->nr_gone,
			    sizeof(*s->gone), 4))
			return -ENOMEM;
		s->gone[s->nr_gone++] = (struct gone_leader){ pids[i], tid };
	}
	return 0;
}

/* (Re)build @s from a listing of the host. On failure @s is left
 * unused (built_forks 0): every process is asked. */
static int fill(struct hp_rt_sharers *s)
{
	pid_t *all = NULL;
	size_t nr = 0;
	int rc;

	for (size_t i = 0; i < s->nr; i++)
		free(s->groups[i].pids);
	s->nr = s->nr_gone = 0;
	s->built_forks = forks_total();
	s->built_last = hp_last_pid();
	rc = hp_proc_list_tasks(0, &all, &nr);
	for (size_t i = 0; i < nr && !rc; i++)
		rc = insert(s, all[i]);
	rc = rc ?: note_gone(s, all, nr);
	free(all);
	if (rc)
		s->built_forks = 0;
	return rc;
}

int hp_rt_sharers_new(struct hp_rt_sharers **out)
{
	struct hp_rt_sharers *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	rc = fill(s);
	if (rc) {
		hp_rt_sharers_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

int hp_rt_sharers_follow(struct hp_rt_sharers **out,
			 const struct hp_rt_births *b)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	(*out)->births = b;
	return 0;
}

void hp_rt_sharers_free(struct hp_rt_sharers *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nr; i++)
		free(s->groups[i].pids);
	free(s->groups);
	free(s->gone);
	free(s);
}

/*
 * Up to @cap of @pids, but @pid, that share @self's memory, into @out.
 * Each is asked again, even from the index: it may have exec'd since. One
 * whose leader is gone is asked through a live thread: tasks without
 * memory all order alike against @self's, so only those that order as
 * kthreadd does may be one.
 */
static size_t pick(const pid_t *pids, size_t nr, pid_t pid, pid_t self,
		   pid_t *out, size_t cap)
{
	const pid_t k = kthreadd();
	const int no_mm = k ? mm_order(self, k) : -1;
	size_t n = 0;

	for (size_t i = 0; i < nr && n < cap; i++) {
		const int r = pids[i] == pid ? -1 : mm_order(self, pids[i]);
		pid_t tid = 0;

		if (r == 0 && pids[i] != self)
			out[n++] = pids[i];
		else if (r > 0 && (!k || r == no_mm) &&
			 (tid = gone_leader_thread(pids[i])) &&
			 same_mm(self, tid))
			out[n++] = pids[i];
	}
	return n;
}

/* Those of @s's processes whose leader is gone, but @pid, that share
 * @self's memory, appended to @out (*@n of @cap used). */
static void pick_gone(struct hp_rt_sharers *s, pid_t pid, pid_t self,
		      pid_t *out, size_t cap, size_t *n)
{
	for (size_t i = 0; i < s->nr_gone && *n < cap; i++) {
		struct gone_leader *g = &s->gone[i];

		if (g->pid == pid)
			continue;
		if (mm_order(self, g->tid) < 0) /* that thread exited since */
			g->tid = gone_leader_thread(g->pid);
		if (g->tid && same_mm(self, g->tid))
			out[(*n)++] = g->pid;
	}
}

static long pick_since(pid_t pid, pid_t self, pid_t last, pid_t now, pid_t *out,
		       size_t cap);

/* At most this many pids handed out since the check are asked one by
 * one; more (or a count unknown) and every process is asked. */
#define HP_SINCE_MAX 4096

/*
 * @self's sharers: from @s, and among the tasks created since it was
 * built (in none of its groups: a run over many targets lasts, and a
 * target may start one before its turn); or from every process of the
 * host.
 */
static int find_sharers(struct hp_rt_sharers *s, pid_t pid, pid_t self,
			pid_t *out, size_t cap, size_t *n)
{
	pid_t *all = NULL;
	size_t nr = 0, at = 0;
	int rc;

	/* So many created since the index that the pids may have gone
	 * round (the last pid cannot tell): made again. */
	if (s && s->built_forks) {
		const uint64_t forks = forks_total();

		if (!forks || forks - s->built_forks > HP_SINCE_MAX)
			(void)fill(s); /* (failed: not used) */
	}
	/* Not in the index: a process newer than it, asked the long way. */
	if (s && s->built_forks && !find_group(s, self, &at)) {
		const pid_t now = hp_last_pid();
		long since = 0;

		*n = pick(s->groups[at].pids, s->groups[at].nr, pid, self, out,
			  cap);
		pick_gone(s, pid, self, out, cap, n);
		if (s->built_last && now && now != s->built_last)
			since = pick_since(pid, self, s->built_last, now,
					   out + *n, cap - *n);
		if (since >= 0 && s->built_last && now) {
			*n += (size_t)since;
			return 0;
		}
		/* Too many since, or not known: the long way. */
	}
	rc = hp_proc_list_tasks(0, &all, &nr);
	if (rc)
		return rc;
	*n = pick(all, nr, pid, self, out, cap);
	free(all);
	return 0;
}

/*
 * Those of @born (created since @pid's exec) that share @self's memory,
 * up to @cap. A process whose leader has exited (pthread_exit in main)
 * is asked through a live thread: the leader has no memory left.
 */
static size_t pick_born(const pid_t *born, size_t nr, pid_t pid, pid_t self,
			pid_t *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < nr && n < cap; i++) {
		pid_t tid = 0;

		if (born[i] == pid)
			continue;
		if (same_mm(self, born[i])) {
			out[n++] = born[i];
			continue;
		}
		tid = hp_proc_live_tid(born[i]);
		if (tid != born[i] && same_mm(self, tid))
			out[n++] = born[i];
	}
	return n;
}

/*
 * Ask @s's births, if any: 0 with *@born (malloc'd) when they know every
 * process that may share @pid's memory, 1 when the host must be asked.
 */
static int ask_births(struct hp_rt_sharers *s, pid_t pid, pid_t **born,
		      size_t *nr)
{
	*born = NULL;
	*nr = 0;
	if (!s || !s->births)
		return 1;
	return s->births->since_exec(s->births->arg, pid, born, nr);
}

/* Refuse @pid, naming the @n processes that share its memory. */
static int refuse_sharing(pid_t pid, const pid_t *sharers, size_t n)
{
	char list[128] = "";

	for (size_t i = 0; i < n; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list),
			 "%s%d", i ? ", " : "", (int)sharers[i]);
	hp_error(-HP_E_BUSY,
		 "pid %d: shares its memory with pid %s (a vfork child, or "
		 "clone(CLONE_VM)), whose threads hpatch would not stop; "
		 "nothing changed",
		 (int)pid, list);
	hp_hint("a vfork child shares only until it execs or exits: retry "
		"then");
	return hp_rt_busy_why("its memory shared with pid %s (a vfork child, "
			      "or clone(CLONE_VM))",
			      list);
}

/*
 * kcmp asks the kernel about each process without reading /proc: one
 * system call each (0.4 ms for 400 processes), or, with @s, a few; with
 * births that know every process created since the target's exec, none
 * when there is none.
 */
static int check_alone(pid_t pid, struct hp_rt_sharers *s, bool leader_live)
{
	/* A live thread: a leader gone (pthread_exit in main) has no
	 * memory, and would compare equal to every kernel thread. */
	pid_t self = pid, *born = NULL;
	pid_t sharers[HP_SHARERS_LISTED];
	size_t n = 0, nr_born = 0;
	int rc = ask_births(s, pid, &born, &nr_born);

	if (rc < 0 || (rc == 0 && !nr_born))
		return rc; /* nothing created since its exec: alone */
	/* (Its leader read once when it lives, as it mostly does; not
	 * again when the caller just saw it live and will see that it kept
	 * its memory through the check: hp_proc_check_alone_live. Births
	 * ask afresh, their answer has no such check after it.) */
	if ((rc == 0 || !leader_live) && hp_task_gone(pid)) {
		self = hp_proc_live_tid(pid);
		if (self == pid || hp_task_gone(self)) {
			free(born);
			return 0; /* no memory left to share: the open
				   * says gone */
		}
	}
	if (rc == 0) {
		n = pick_born(born, nr_born, pid, self, sharers,
			      HP_ARRAY_SIZE(sharers));
		free(born);
	} else {
		rc = find_sharers(s, pid, self, sharers, HP_ARRAY_SIZE(sharers),
				  &n);
	}
	if (rc || !n)
		return rc;
	/* Exiting since (its memory let go): it compared equal to every
	 * kernel thread. Nothing to share: the open says gone. */
	if (!hp_task_has_mm(self))
		return 0;
	return refuse_sharing(pid, sharers, n);
}

int hp_proc_check_alone(pid_t pid, struct hp_rt_sharers *s)
{
	return check_alone(pid, s, false);
}

int hp_proc_check_alone_live(pid_t pid, struct hp_rt_sharers *s)
{
	return check_alone(pid, s, true);
}

/*
 * A number from a /proc/sys file, or 0 when it cannot be read. @fd keeps
 * the file open for the next call (-1: not yet): ns_last_pid is read
 * twice per apply, and a pread of an open file is one call where stdio
 * made four. A /proc/sys file reads its value afresh at every read, so
 * the fd never goes stale; a fork shares it, and pread has no offset to
 * share.
 */
static long sys_number(const char *path, int *fd)
{
	char buf[32];
	ssize_t n;
	long v;

	if (*fd < 0)
		*fd = open(path, O_RDONLY | O_CLOEXEC);
	n = *fd < 0 ? -1 : pread(*fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	v = strtol(buf, NULL, 10);
	return v > 0 ? v : 0;
}

pid_t hp_last_pid(void)
{
	static int fd = -1;

	return (pid_t)sys_number("/proc/sys/kernel/ns_last_pid", &fd);
}

/*
 * Those of the tasks handed pids after @last, up to @now, that share
 * @self's memory without being threads of @pid, up to @cap (named by
 * their process). Return: how many, or -1 when there were too many.
 */
static long pick_since(pid_t pid, pid_t self, pid_t last, pid_t now, pid_t *out,
		       size_t cap)
{
	static long pid_max;
	long nr, n = 0;

	if (!pid_max) {
		int fd = -1;

		pid_max = sys_number("/proc/sys/kernel/pid_max", &fd);
		if (fd >= 0)
			close(fd);
	}
	if (!pid_max || now > pid_max || last > pid_max)
		return -1;
	nr = now >= last ? now - last : pid_max - last + now;
	if (nr > HP_SINCE_MAX)
		return -1;
	for (long i = 1; i <= nr && (size_t)n < cap; i++) {
		const pid_t tid = (pid_t)((last + i - 1) % pid_max + 1);
		pid_t tgid;
		long j = 0;

		if (!same_mm(self, tid))
			continue;
		/* A thread: named by its process, unless it is one of
		 * @pid's own (stopped with them). */
		tgid = (pid_t)hp_task_status_field(tid, "Tgid:");
		/* Gone between the two reads (a short-lived thread of @pid's,
		 * asked before the stop): it shares nothing now. */
		if (tgid <= 0 && !same_mm(self, tid))
			continue;
		if (tgid <= 0)
			tgid = tid;
		while (j < n && out[j] != tgid)
			j++;
		if (tgid != pid && j == n)
			out[n++] = tgid;
	}
	return n;
}

int hp_proc_check_since(pid_t pid, pid_t last, bool quiet)
{
	const pid_t now = hp_last_pid();
	pid_t sharers[HP_SHARERS_LISTED];
	long n;

	if (last && now == last)
		return 0; /* no task created since: none new to share */
	/* (A live thread asked only now: /proc/PID/stat read for none.) */
	n = last && now ? pick_since(pid, hp_proc_live_tid(pid), last, now,
				     sharers, HP_ARRAY_SIZE(sharers))
			: -1;
	if (n && quiet)
		return -HP_E_BUSY;
	if (n < 0)
		return hp_proc_check_alone(pid, NULL);
	return n ? refuse_sharing(pid, sharers, (size_t)n) : 0;
}

pid_t hp_proc_vfork_sharer(pid_t pid, pid_t tid)
{
	const long nr = hp_task_syscall_nr(pid, tid);
	pid_t sharer = 0;
	size_t n = 0;

	if (nr != SYS_vfork && nr != SYS_clone && nr != SYS_clone3)
		return 0;
	if (find_sharers(NULL, pid, hp_proc_live_tid(pid), &sharer, 1, &n) ||
	    !n)
		return 0;
	return sharer;
}
