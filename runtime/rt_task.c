/*
 * A task (thread) of the target seen through /proc: gone or not, fields
 * of its status and stat files, the system call it is blocked in, its
 * tracer, name, the list of a process's threads (or of the host's
 * processes), and its scheduling priority raised for the stop and put
 * back.
 */
#include "runtime/runtime_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HP_LOG_PREFIX "rt: "

/* /proc/@tid/stat into @buf (NUL-terminated). Return: its length, 0 when
 * there is no such task, -1 when unread for another reason. */
static ssize_t read_stat(pid_t tid, char *buf, size_t size)
{
	char path[48];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH ? 0 : -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return n;
}

/* A stat line's task a zombie (or dead)? The command name may hold ')'
 * itself: the state follows the last. */
static bool stat_gone(const char *stat)
{
	const char *p = strrchr(stat, ')');

	return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

bool hp_task_gone(pid_t tid)
{
	char buf[256];
	const ssize_t n = read_stat(tid, buf, sizeof(buf));

	return !n || (n > 0 && stat_gone(buf));
}

bool hp_task_live(pid_t tid)
{
	char buf[256];
	const ssize_t n = read_stat(tid, buf, sizeof(buf));

	/* Not read now (no fd left): says nothing. A zombie is PF_EXITING. */
	return n < 0 || (n > 0 && hp_stat_has_mm(buf));
}

bool hp_proc_gone_whole(pid_t pid)
{
	char buf[512];
	unsigned long long threads = 0;
	const ssize_t n = read_stat(pid, buf, sizeof(buf));

	/* Its leader reaped: only ever after every other thread. A zombie
	 * leader still counts in num_threads (until reaped), as does a
	 * thread that is exiting (until released): one alone is all. */
	if (!n)
		return true;
	return n > 0 && stat_gone(buf) && hp_stat_field(buf, 20, &threads) &&
	       threads == 1;
}

/* /proc/@tid/status into @buf (NUL-terminated). Return: false if unread. */
static bool read_status(pid_t tid, char *buf, size_t size)
{
	char path[48];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, size - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return n > 0;
}

/* The value after @key in the status text @buf; NULL if none. */
static const char *status_find(const char *buf, const char *key)
{
	const size_t klen = strlen(key);

	for (const char *p = buf; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, key, klen))
			return p + klen;
	return NULL;
}

static const char *status_value(pid_t tid, const char *key, char *buf,
				size_t size)
{
	return read_status(tid, buf, size) ? status_find(buf, key) : NULL;
}

long hp_task_status_field(pid_t tid, const char *key)
{
	char buf[4096];
	const char *v = status_value(tid, key, buf, sizeof(buf));

	return v ? strtol(v, NULL, 10) : -1;
}

void hp_task_status_fields(pid_t tid, const char *const *keys, long *vals,
			   size_t nr)
{
	char buf[4096];
	const bool read = read_status(tid, buf, sizeof(buf));

	for (size_t i = 0; i < nr; i++) {
		const char *v = read ? status_find(buf, keys[i]) : NULL;

		vals[i] = v ? strtol(v, NULL, 10) : -1;
	}
}

uint64_t hp_task_status_mask(pid_t tid, const char *key)
{
	char buf[4096];
	const char *v = status_value(tid, key, buf, sizeof(buf));

	return v ? strtoull(v, NULL, 16) : 0;
}

/* Read @path into @buf (NUL-terminated, "" on failure). */
static void read_small(const char *path, char *buf, size_t size)
{
	const int fd = open(path, O_RDONLY | O_CLOEXEC);
	const ssize_t n = fd < 0 ? -1 : read(fd, buf, size - 1);

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
}

#define HP_PF_EXITING 0x4
#define HP_PF_KTHREAD 0x200000

/* The flags of a /proc/TID/stat line into *@flags. Return: whether read. */
static bool stat_flags(const char *stat, unsigned long *flags)
{
	unsigned long long v = 0;
	const bool ok = hp_stat_field(stat, 9, &v);

	*flags = (unsigned long)v;
	return ok;
}

/* Whether a /proc/TID/stat line is of a task with memory of its own: not a
 * kernel thread (PF_KTHREAD), not exiting (PF_EXITING: its memory is being
 * or has been let go). Either has none, and kcmp(KCMP_VM) finds every
 * such task "sharing" it. */
bool hp_stat_has_mm(const char *stat)
{
	unsigned long flags = 0;

	return stat_flags(stat, &flags) &&
	       !(flags & (HP_PF_EXITING | HP_PF_KTHREAD));
}

bool hp_task_has_mm(pid_t tid)
{
	char path[48], buf[512];

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
	read_small(path, buf, sizeof(buf));
	return hp_stat_has_mm(buf);
}

bool hp_task_is_kthread(pid_t tid)
{
	char path[48], buf[512];
	unsigned long flags = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
	read_small(path, buf, sizeof(buf));
	return stat_flags(buf, &flags) && (flags & HP_PF_KTHREAD);
}

long hp_syscall_line_nr(const char *line)
{
	return line[0] >= '0' && line[0] <= '9' ? strtol(line, NULL, 10) : -1;
}

long hp_task_syscall_nr(pid_t pid, pid_t tid)
{
	char path[64], line[32];

	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int)pid,
		 (int)tid);
	read_small(path, line, sizeof(line));
	return hp_syscall_line_nr(line);
}

void hp_task_state(pid_t tid, char *buf, size_t size)
{
	char path[64], stat[512], wchan[64], *p = NULL;
	bool in = false;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
	read_small(path, stat, sizeof(stat));
	p = strrchr(stat, ')');
	snprintf(path, sizeof(path), "/proc/%d/wchan", (int)tid);
	read_small(path, wchan, sizeof(wchan));
	in = wchan[0] && strcmp(wchan, "0");
	snprintf(buf, size, "state %c%s%s%s", p && p[1] ? p[2] : '?',
		 p && p[2] == 'D' ? ", uninterruptible" : "", in ? ", in " : "",
		 in ? wchan : "");
}

/* Whether v2's cgroup @cg is frozen. */
static bool v2_frozen(const char *cg)
{
	/* v2's where systemd mounts it, alone or beside v1 (hybrid). */
	static const char *const v2[] = { "/sys/fs/cgroup",
					  "/sys/fs/cgroup/unified" };
	char path[PATH_MAX], buf[32];

	/* v2's freezer is hierarchical: a cgroup frozen freezes those below
	 * it, whose own cgroup.freeze still says 0 (a slice frozen, a
	 * container's sub-cgroups): its ancestors too. */
	for (size_t i = 0; i < HP_ARRAY_SIZE(v2); i++) {
		size_t len = strlen(cg);
		bool seen = false;

		while (len) {
			snprintf(path, sizeof(path), "%s%.*s/cgroup.freeze",
				 v2[i], (int)len, cg);
			read_small(path, buf, sizeof(buf));
			if (buf[0] == '1')
				return true;
			seen |= buf[0] != 0;
			if (!seen) /* not this mount's */
				break;
			while (len && cg[--len] != '/')
				;
		}
		if (seen)
			return false;
	}
	return false;
}

/* v1's freezer.state of cgroup @cg, into @path (of PATH_MAX bytes). */
static void v1_state_path(char *path, const char *cg)
{
	snprintf(path, PATH_MAX, "/sys/fs/cgroup/freezer%s/freezer.state", cg);
}

/* Return: 1 frozen (or freezing), 0 not, -ENOENT no such file. */
static int v1_state_frozen(const char *path)
{
	const int fd = open(path, O_RDONLY | O_CLOEXEC);
	char buf[32];
	ssize_t n;

	if (fd < 0)
		return errno == ENOENT ? -ENOENT : 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return !strncmp(buf, "FROZEN", 6) || !strncmp(buf, "FREEZING", 8);
}

/*
 * Each "ID:CONTROLLERS:PATH" line of /proc/@tid/cgroup ("0::PATH" for
 * v2's) to @fn, until it returns true. Return: what @fn last returned.
 */
static bool each_cgroup(pid_t tid,
			bool (*fn)(const char *ctrl, const char *cg, void *arg),
			void *arg)
{
	char path[48], text[4096], *save = NULL;
	bool hit = false;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)tid);
	read_small(path, text, sizeof(text));
	for (char *l = strtok_r(text, "\n", &save); l && !hit;
	     l = strtok_r(NULL, "\n", &save)) {
		char *ctrl = strchr(l, ':'), *cg = NULL;

		if (!ctrl || !(cg = strchr(ctrl + 1, ':')))
			continue;
		*cg++ = 0;
		hit = fn(ctrl + 1, cg, arg);
	}
	return hit;
}

static bool cgroup_frozen(const char *ctrl, const char *cg, void *arg)
{
	char path[PATH_MAX];

	(void)arg;
	if (!ctrl[0])
		return v2_frozen(cg);
	if (!strstr(ctrl, "freezer"))
		return false;
	v1_state_path(path, cg);
	return v1_state_frozen(path) > 0;
}

bool hp_task_frozen(pid_t tid)
{
	return each_cgroup(tid, cgroup_frozen, NULL);
}

static bool v1_path(const char *ctrl, const char *cg, void *arg)
{
	if (!ctrl[0] || !strstr(ctrl, "freezer"))
		return false;
	v1_state_path(arg, cg);
	return true;
}

/*
 * Whether v1's freezer hierarchy may have a cgroup a thread could be
 * frozen in. Its root cannot be frozen, and its directory's link count is
 * 2 plus its subdirectories (kernfs), so one stat spares the thread's
 * look (its /proc/TID/cgroup, slow to make, and a freezer.state) where
 * no container or unit made one. In the initial cgroup namespace alone:
 * in another, the mount's root is the namespace's, a cgroup of the host
 * that docker pause or lxc-freeze freezes, while this hpatch may run
 * outside it (`nsenter -a` joins the namespaces, not the cgroups).
 */
static bool v1_freezer_cgroups(void)
{
	/* The initial cgroup namespace's inode (PROC_CGROUP_INIT_INO). */
	static const char init_ns[] = "cgroup:[4026531835]";
	static int other_ns = -1;
	struct stat st;

	if (other_ns < 0) {
		char ns[32];
		const ssize_t n =
			readlink("/proc/self/ns/cgroup", ns, sizeof(ns) - 1);

		/* (No such link: a kernel without cgroup namespaces.) */
		other_ns = n < 0 ? errno != ENOENT
				 : (size_t)n != sizeof(init_ns) - 1 ||
					   memcmp(ns, init_ns, (size_t)n);
	}
	return other_ns || stat("/sys/fs/cgroup/freezer", &st) < 0 ||
	       st.st_nlink != 2;
}

bool hp_task_frozen_in_stop(pid_t tid)
{
	/* Where no v1 freezer is mounted (a host of cgroup v2 alone), no
	 * file to read: v2's lets a frozen thread stop, and step_once
	 * finds it when it does not run. Looked up once. */
	static int v1 = -1;
	char path[PATH_MAX];

	if (v1 < 0)
		v1 = !access("/sys/fs/cgroup/freezer", F_OK);
	/* The thread's cgroup as it is now, each call: one moved into a
	 * frozen cgroup since the last call of a run (a cgroup manager
	 * placing a new process, a move into a paused container) and
	 * resumed would run nothing and stop for nothing: the step's look
	 * sees it frozen, but no interrupt stops it, and it is left inside
	 * our call with our registers until thawed. (A cache of it for
	 * 50 ms saved three system calls a call and opened that window.)
	 * No cgroup below the root, now: none it could be frozen in. */
	return v1 && v1_freezer_cgroups() && each_cgroup(tid, v1_path, path) &&
	       v1_state_frozen(path) > 0;
}

void hp_task_stuck_hint(pid_t tid)
{
	if (hp_task_frozen(tid))
		hp_hint("its cgroup is frozen (docker pause, systemctl freeze, "
			"a cgroup freezer): retry once it is thawed");
	else
		hp_hint("it waits in the kernel (for a vfork child, a hung "
			"file system...): retry when it is back");
}

pid_t hp_task_tracer(pid_t tid)
{
	return (pid_t)hp_task_status_field(tid, "TracerPid:");
}

void hp_task_comm(pid_t pid, char *buf, size_t size)
{
	char path[48];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, buf, size - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		n = snprintf(buf, size, "?");
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
}

int hp_proc_list_tasks(pid_t pid, pid_t **tids, size_t *nr)
{
	char path[64];
	struct dirent *de = NULL;
	pid_t *list = NULL;
	size_t n = 0, cap = 0;
	DIR *d = NULL;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc");
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? -HP_E_GONE : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		if (hp_grow(&list, &cap, n, sizeof(*list), 32)) {
			free(list);
			closedir(d);
			return -ENOMEM;
		}
		list[n++] = (pid_t)atoi(de->d_name);
	}
	closedir(d);
	*tids = list;
	*nr = n;
	return 0;
}

/*
 * This process's own policy as last set or read here, -1 unknown: it is
 * raised for every apply and every stop, where a run over many processes
 * is boosted once (hp_rt_boost) and each sched_getscheduler(0) would say
 * so again. Only this file changes it, but an operator's chrt may
 * meanwhile: then an apply runs at that priority, no worse. A fork's
 * child starts at another (SCHED_RESET_ON_FORK): hp_prio_forget().
 */
static int self_policy = -1;

void hp_prio_forget(void)
{
	self_policy = -1;
}

static bool is_restorable(int policy)
{
	switch (policy < 0 ? -1 : policy & ~SCHED_RESET_ON_FORK) {
	case SCHED_OTHER:
	case SCHED_BATCH:
	case SCHED_IDLE:
		return true;
	default:
		return false;
	}
}

void hp_prio_raise(pid_t tid, struct hp_prio *pr)
{
	/* The loader a step above the targets' threads it raises: one let
	 * go raised, spinning, never keeps it off a CPU (rt_guard.c). */
	const struct sched_param fifo = { .sched_priority = tid ? 1 : 2 };
	const int policy =
		tid || self_policy < 0 ? sched_getscheduler(tid) : self_policy;
	/* Reset on fork: what the raised thread starts (the operator's
	 * --on-refuse fallback, a service restart) runs at normal priority,
	 * never SCHED_FIFO beside the threads it competes with. */
	const int raised = HP_PRIO_RAISED;

	*pr = (struct hp_prio){ .policy = policy, .guard_slot = -1 };
	if (!tid)
		self_policy = policy;
	/* Raised only from a policy of priority 0 that sched_setscheduler
	 * gives back whole. A real-time or deadline thread already runs at
	 * least as soon, and SCHED_DEADLINE's runtime and period cannot be
	 * set again that way (EINVAL: the thread stayed SCHED_FIFO); any
	 * other (sched_ext's): left as it is, slower, never worse. */
	if (!is_restorable(policy))
		return;
	/* A target's thread: given back by the guard if this process dies
	 * first (rt_guard.c); none, and it is not raised. */
	if (tid && (pr->guard_slot = hp_guard_list(tid, pr)) < 0)
		return;
	pr->raised = !sched_setscheduler(tid, raised, &fifo);
	if (tid && !pr->raised)
		hp_guard_unlist(pr->guard_slot);
	if (!tid && pr->raised)
		self_policy = raised;
}

void hp_prio_restore(pid_t tid, struct hp_prio *pr)
{
	bool ok;

	if (!pr->raised)
		return;
	ok = !sched_setscheduler(tid, pr->policy, &pr->param);
	if (!ok && errno == ESRCH && tid) /* exited: nothing to do */
		ok = true;
	if (!ok && tid) /* listed still: the guard tries as we end */
		hp_warn("tid %d: cannot give it back its scheduling policy %d "
			"(%s): it runs SCHED_FIFO until the guard process "
			"tries again as this hpatch ends; if it stays so "
			"(chrt -p %d), set it back by hand",
			(int)tid, pr->policy, strerror(errno), (int)tid);
	else if (!ok)
		hp_warn("cannot give hpatch back its scheduling policy %d: %s",
			pr->policy, strerror(errno));
	if (tid && ok)
		hp_guard_unlist(pr->guard_slot);
	if (!tid)
		self_policy = ok ? pr->policy : -1;
	pr->raised = false;
}

/* Tasks runnable on the host now (4th field of /proc/loadavg: "R/T"). */
static long runnable_tasks(void)
{
	char buf[128] = "", *slash = NULL;
	const int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
	const ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	slash = strchr(buf, '/');
	while (slash && slash > buf && slash[-1] != ' ')
		slash--;
	return slash ? strtol(slash, NULL, 10) : 0;
}

/* CPUs the loader may run on (1 if unknown). */
static int loader_cpus(void)
{
	cpu_set_t set;

	return sched_getaffinity(0, sizeof(set), &set) ? 1 : CPU_COUNT(&set);
}

/*
 * The loader's CPUs and the host's runnable tasks, read at most every
 * HP_LOAD_TTL_US: a run over many processes stops one after another
 * within milliseconds, and the bound they size moves with the load, not
 * with each stop.
 */
#define HP_LOAD_TTL_US 100000

void hp_host_load(int *nr_cpus, long *nr_runnable)
{
	static uint64_t read_at;
	static int cpus;
	static long runnable;
	const uint64_t now = hp_now_us();

	if (!read_at || now - read_at > HP_LOAD_TTL_US) {
		cpus = loader_cpus();
		runnable = runnable_tasks();
		read_at = now;
	}
	*nr_cpus = cpus;
	*nr_runnable = runnable;
}
