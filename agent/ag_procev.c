/*
 * The kernel's process-event connector (netlink, CN_IDX_PROC): one message
 * per process created, exec and exit on the host, so hpatchd patches a
 * new process within milliseconds without polling, and knows which
 * processes were created since a target's exec: the only ones that may
 * share its memory. Needs CAP_NET_ADMIN.
 */
#include "agent/agent_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <linux/cn_proc.h>
#include <linux/filter.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Offsets in a message: the netlink header, the connector's, then the
 * event. */
#define EV_OFF (NLMSG_HDRLEN + sizeof(struct cn_msg))
#define EV_AT(field) (EV_OFF + offsetof(struct proc_event, field))
#define EV_WHAT EV_AT(what)
#define TAB_MIN 256
#define EV_BATCH 64    /* datagrams read per system call */
#define EV_MSG_MAX 256 /* the message of one event: 76 bytes */

/*
 * Only execs, and the creations and exits of whole processes, reach us:
 * the kernel drops the rest (every thread's start and end, the ptrace
 * events of our own applies, comm and id changes) before they wake us.
 * A socket filter reads words in network byte order, hence htonl on the
 * constants; a pid and tgid are compared with each other, swapped alike.
 */
static void filter_events(int fd)
{
	struct sock_filter f[] = {
		/* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, EV_WHAT),
		/* 1 */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, htonl(PROC_EVENT_EXEC), 10,
			 0),
		/* 2 */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, htonl(PROC_EVENT_FORK), 0,
			 4),
		/* 3 */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 EV_AT(event_data.fork.child_tgid)),
		/* 4 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
		/* 5 */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 EV_AT(event_data.fork.child_pid)),
		/* 6 */ BPF_STMT(BPF_JMP | BPF_JA, 4), /* to 11 */
		/* 7 */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, htonl(PROC_EVENT_EXIT), 0,
			 5),
		/* 8 */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 EV_AT(event_data.exit.process_tgid)),
		/* 9 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
		/* 10 */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 EV_AT(event_data.exit.process_pid)),
		/* 11: a process, not a thread */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_X, 0, 0, 1),
		/* 12 */ BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
		/* 13 */ BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = { .len = HP_ARRAY_SIZE(f), .filter = f };

	/* Without it (no BPF in this kernel) every event comes: slower,
	 * not wrong. */
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) <
	    0)
		hp_dbg(HP_DBG_TIMING, "process events: no filter: %s",
		       strerror(errno));
}

/* ---- the table of processes, open addressing by pid ---- */

static size_t home(const struct ag_events *ev, pid_t pid)
{
	return (size_t)(((uint64_t)(uint32_t)pid * 0x9E3779B97F4A7C15ULL) >>
			32) &
	       (ev->cap_tab - 1);
}

static struct ag_pidinfo *find_pid(struct ag_events *ev, pid_t pid)
{
	if (!ev->cap_tab)
		return NULL;
	for (size_t i = home(ev, pid);; i = (i + 1) & (ev->cap_tab - 1)) {
		if (ev->tab[i].pid == pid)
			return &ev->tab[i];
		if (!ev->tab[i].pid)
			return NULL;
	}
}

static int resize(struct ag_events *ev, size_t cap)
{
	struct ag_pidinfo *old = ev->tab;
	const size_t old_cap = ev->cap_tab;
	struct ag_pidinfo *tab = calloc(cap, sizeof(*tab));

	if (!tab)
		return -ENOMEM;
	ev->tab = tab;
	ev->cap_tab = cap;
	for (size_t i = 0; i < old_cap; i++) {
		size_t j = 0;

		if (!old[i].pid)
			continue;
		for (j = home(ev, old[i].pid); tab[j].pid;
		     j = (j + 1) & (cap - 1))
			;
		tab[j] = old[i];
	}
	free(old);
	return 0;
}

/* @pid's entry, made empty if new; NULL when out of memory. */
static struct ag_pidinfo *get_pid(struct ag_events *ev, pid_t pid)
{
	struct ag_pidinfo *e = find_pid(ev, pid);
	size_t i = 0;

	if (e)
		return e;
	if (2 * (ev->nr_tab + 1) > ev->cap_tab &&
	    resize(ev, ev->cap_tab ? 2 * ev->cap_tab : TAB_MIN))
		return NULL;
	for (i = home(ev, pid); ev->tab[i].pid; i = (i + 1) & (ev->cap_tab - 1))
		;
	ev->nr_tab++;
	ev->tab[i] = (struct ag_pidinfo){ .pid = pid };
	return &ev->tab[i];
}

/* Remove @e, moving back each later entry of its run that may sit
 * there (linear probing, without tombstones). */
static void del_pid(struct ag_events *ev, struct ag_pidinfo *e)
{
	const size_t mask = ev->cap_tab - 1;
	size_t i = (size_t)(e - ev->tab), j = i;

	for (;;) {
		size_t k = 0;

		j = (j + 1) & mask;
		if (!ev->tab[j].pid)
			break;
		k = home(ev, ev->tab[j].pid);
		/* Stays unless its home is outside (i, j], cyclically. */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		ev->tab[i] = ev->tab[j];
		i = j;
	}
	ev->tab[i].pid = 0;
	ev->nr_tab--;
	if (ev->cap_tab > TAB_MIN && 8 * ev->nr_tab < ev->cap_tab)
		resize(ev, ev->cap_tab / 2); /* memory stays flat */
}

static void forget_all(struct ag_events *ev)
{
	free(ev->tab);
	ev->tab = NULL;
	ev->nr_tab = ev->cap_tab = 0;
}

/* Does @pid have a thread besides its leader? Not once reaped. */
static bool has_other_threads(pid_t pid)
{
	char path[48];
	struct dirent *de = NULL;
	DIR *dir = NULL;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	while (dir && n < 2 && (de = readdir(dir)))
		n += de->d_name[0] != '.';
	if (dir)
		closedir(dir);
	return n > 1;
}

/* Return: false when out of memory (as if the socket had lost it). */
static bool queue_event(struct ag_events *ev, pid_t pid, bool exec,
			uint64_t now)
{
	if (hp_grow(&ev->queue, &ev->cap_queue, ev->nr_queue,
		    sizeof(*ev->queue), 64))
		return false;
	ev->queue[ev->nr_queue++] =
		(struct ag_event){ .pid = pid, .exec = exec, .at_us = now };
	return true;
}

/* Return: false when it could not be kept (out of memory). */
static bool on_event(struct ag_events *ev, const struct proc_event *pe,
		     uint64_t now)
{
	struct ag_pidinfo *e = NULL;
	const uint64_t seq = ++ev->seq;

	switch (pe->what) {
	case PROC_EVENT_FORK:
		if (pe->event_data.fork.child_pid !=
		    pe->event_data.fork.child_tgid)
			return true; /* a thread (no filter in this kernel) */
		e = get_pid(ev, pe->event_data.fork.child_tgid);
		if (e)
			*e = (struct ag_pidinfo){ .pid = e->pid,
						  .born_seq = seq };
		return e != NULL;
	case PROC_EVENT_EXEC:
		e = get_pid(ev, pe->event_data.exec.process_tgid);
		if (e) {
			e->exec_seq = seq;
			e->exit_seq = 0;
		}
		/* (Queued even without its entry: hpatchd must see it.) */
		if (!queue_event(ev, pe->event_data.exec.process_tgid, true,
				 now))
			return false;
		return e != NULL;
	case PROC_EVENT_EXIT:
		if (pe->event_data.exit.process_pid !=
		    pe->event_data.exit.process_tgid)
			return true;
		e = find_pid(ev, pe->event_data.exit.process_tgid);
		/* A process created and not exec'd since may share a
		 * target's memory: kept while a thread of its own lives on
		 * (its leader may leave first), until a scan of the host
		 * finds it gone. */
		if (e && e->born_seq && !e->exec_seq &&
		    has_other_threads(e->pid))
			e->exit_seq = seq;
		else if (e)
			del_pid(ev, e);
		return queue_event(ev, pe->event_data.exit.process_tgid, false,
				   now);
	default:
		return true;
	}
}

/* One message of the connector: its event, to @ev's table and queue.
 * Return: false when it could not be kept. */
static bool on_message(struct ag_events *ev, const char *buf, size_t n,
		       uint64_t now)
{
	bool kept = true;

	for (const struct nlmsghdr *nh = (const struct nlmsghdr *)buf;
	     NLMSG_OK(nh, n); nh = NLMSG_NEXT(nh, n)) {
		const struct cn_msg *cn = NLMSG_DATA(nh);
		/* Copied: the event sits 4 bytes past an 8-byte boundary,
		 * and holds a 64-bit time. */
		struct proc_event pe = { 0 };
		size_t len = nh->nlmsg_len - NLMSG_HDRLEN;

		if (nh->nlmsg_type != NLMSG_DONE || len < sizeof(*cn) ||
		    cn->id.idx != CN_IDX_PROC)
			continue;
		len -= sizeof(*cn);
		len = len < cn->len ? len : cn->len;
		memcpy(&pe, cn->data, len < sizeof(pe) ? len : sizeof(pe));
		kept &= on_event(ev, &pe, now);
	}
	return kept;
}

void ag_events_drain(struct ag_events *ev, uint64_t now)
{
	/* Each event is one datagram: up to EV_BATCH of them per system
	 * call (a storm brings hundreds between two polls). */
	static char bufs[EV_BATCH][EV_MSG_MAX]
		__attribute__((aligned(NLMSG_ALIGNTO)));
	struct mmsghdr msgs[EV_BATCH];
	struct iovec iov[EV_BATCH];
	bool lost = false;

	for (;;) {
		int n;

		for (int i = 0; i < EV_BATCH; i++) {
			iov[i] = (struct iovec){ bufs[i], sizeof(bufs[i]) };
			msgs[i] = (struct mmsghdr){ .msg_hdr.msg_iov = &iov[i],
						    .msg_hdr.msg_iovlen = 1 };
		}
		n = recvmmsg(ev->fd, msgs, EV_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0 && errno == ENOBUFS) {
			lost = true;
			continue;
		}
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++)
			if (!on_message(ev, bufs[i], msgs[i].msg_len, now))
				lost = true;
		/* Fewer than asked: the queue was empty just now. */
		if (n < EV_BATCH)
			break;
	}
	if (!lost)
		return;
	/*
	 * Events were lost, at some point among those read: which process
	 * was created when is no longer known. Forget every process; those
	 * exec'd from now on are known again (their targets' sharers are
	 * asked of the host meanwhile).
	 */
	hp_dbg(HP_DBG_TIMING, "process events lost: rescanning");
	forget_all(ev);
	ev->lost = true;
}

int ag_events_since_exec(void *arg, pid_t pid, pid_t **out, size_t *nr)
{
	struct ag_events *ev = arg;
	const struct ag_pidinfo *t = NULL;
	pid_t *pids = NULL;
	size_t n = 0;

	*out = NULL;
	*nr = 0;
	/* Every process created before now: its fork event is queued
	 * before clone() returns to its creator. */
	ag_events_drain(ev, hp_now_us());
	t = find_pid(ev, pid);
	if (!t || !t->exec_seq || t->exit_seq)
		return 1; /* its exec not seen (or lost since) */
	for (size_t i = 0; i < ev->cap_tab; i++) {
		const struct ag_pidinfo *e = &ev->tab[i];

		if (!e->pid || e->pid == pid || e->exec_seq ||
		    e->born_seq <= t->exec_seq)
			continue;
		if (!pids) {
			pids = malloc(ev->nr_tab * sizeof(*pids));
			if (!pids)
				return -ENOMEM;
		}
		pids[n++] = e->pid;
	}
	*out = pids;
	*nr = n;
	return 0;
}

static int cmp_pid(const void *a, const void *b)
{
	const pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return (x > y) - (x < y);
}

void ag_events_prune(struct ag_events *ev, uint64_t seq, pid_t *pids, size_t nr)
{
	qsort(pids, nr, sizeof(*pids), cmp_pid);
	for (size_t i = 0; i < ev->cap_tab;) {
		const struct ag_pidinfo *e = &ev->tab[i];
		const size_t cap = ev->cap_tab;

		if (!e->pid || !e->exit_seq || e->exit_seq > seq ||
		    bsearch(&e->pid, pids, nr, sizeof(*pids), cmp_pid)) {
			i++;
			continue;
		}
		/* Deleting moves a later entry here, or shrinks the table:
		 * look at this slot again, or start over. */
		del_pid(ev, &ev->tab[i]);
		if (cap != ev->cap_tab)
			i = 0;
	}
}

int ag_events_open(struct ag_events *ev)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK,
				  .nl_groups = CN_IDX_PROC };
	struct {
		struct nlmsghdr nh;
		struct cn_msg cn;
		enum proc_cn_mcast_op op;
	} __attribute__((packed)) req = { 0 };
	const int bufsize = 4 << 20; /* a storm of execs between polls */
	int fd = socket(PF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			NETLINK_CONNECTOR);

	*ev = (struct ag_events){
		.fd = -1,
		.births = { .since_exec = ag_events_since_exec, .arg = ev },
	};
	if (fd < 0)
		return hp_error_rc(-errno, "netlink process connector");
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsize,
		       sizeof(bufsize)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize,
			   sizeof(bufsize));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		const int rc = -errno;

		close(fd);
		hp_error_rc(rc, "netlink process connector: bind");
		hp_hint("hpatchd needs CAP_NET_ADMIN to hear of new processes");
		return rc;
	}
	/* Filtered before listening: no unfiltered event is queued. */
	filter_events(fd);
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = NLMSG_DONE;
	req.nh.nlmsg_pid = (__u32)hp_self_pid();
	req.cn.id.idx = CN_IDX_PROC;
	req.cn.id.val = CN_VAL_PROC;
	req.cn.len = sizeof(req.op);
	req.op = PROC_CN_MCAST_LISTEN;
	if (send(fd, &req, sizeof(req), 0) < 0) {
		const int rc = -errno;

		close(fd);
		hp_error_rc(rc, "netlink process connector: listen");
		hp_hint("hpatchd needs CAP_NET_ADMIN to hear of new processes");
		return rc;
	}
	ev->fd = fd;
	return 0;
}

void ag_events_close(struct ag_events *ev)
{
	if (ev->fd >= 0)
		close(ev->fd);
	ev->fd = -1;
	forget_all(ev);
	free(ev->queue);
	ev->queue = NULL;
	ev->nr_queue = ev->cap_queue = 0;
}

int ag_procev_read(struct ag_daemon *d, uint64_t now)
{
	struct ag_events *ev = &d->ev;
	int rc = 0;

	ag_events_drain(ev, now);
	if (ev->lost)
		rc = -ENOBUFS;
	ev->lost = false;
	/* In the order read: an exit after an exec forgets the process. */
	for (size_t i = 0; i < ev->nr_queue; i++) {
		const struct ag_event e = ev->queue[i];

		if (e.exec)
			ag_on_exec(d, e.pid, e.at_us);
		else
			ag_on_exit(d, e.pid);
	}
	ev->nr_queue = 0;
	return rc;
}
