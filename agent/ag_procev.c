/*
 * The kernel's process-event connector (netlink, CN_IDX_PROC): one message
 * per exec and exit on the host, so hpatchd patches a new process within
 * milliseconds without polling. Needs CAP_NET_ADMIN.
 */
#include "agent/agent_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"
#include "common/hp_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/cn_proc.h>
#include <linux/filter.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Offsets in a message: the netlink header, the connector's, then the
 * event. */
#define EV_OFF (NLMSG_HDRLEN + sizeof(struct cn_msg))
#define EV_WHAT (EV_OFF + offsetof(struct proc_event, what))
#define EV_EXIT_PID \
	(EV_OFF + offsetof(struct proc_event, event_data.exit.process_pid))
#define EV_EXIT_TGID \
	(EV_OFF + offsetof(struct proc_event, event_data.exit.process_tgid))

/*
 * Only execs and the exits of whole processes reach us: the kernel drops
 * the rest (forks, every thread's start and end, the ptrace events of our
 * own applies, comm and id changes) before they wake us. A socket filter
 * reads words in network byte order, hence htonl on the constants; the
 * pid and tgid are compared with each other, swapped alike.
 */
static void filter_events(int fd)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, EV_WHAT),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, htonl(PROC_EVENT_EXEC), 5,
			 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, htonl(PROC_EVENT_EXIT), 0,
			 5),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, EV_EXIT_TGID),
		BPF_STMT(BPF_MISC | BPF_TAX, 0),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, EV_EXIT_PID),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_X, 0, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = { .len = HP_ARRAY_SIZE(f), .filter = f };

	/* Without it (no BPF in this kernel) every event comes: slower,
	 * not wrong. */
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) <
	    0)
		hp_dbg(HP_DBG_TIMING, "process events: no filter: %s",
		       strerror(errno));
}

int ag_procev_open(int *out)
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
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = NLMSG_DONE;
	req.nh.nlmsg_pid = (__u32)getpid();
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
	filter_events(fd);
	*out = fd;
	return 0;
}

int ag_procev_read(struct ag_daemon *d, uint64_t now)
{
	char buf[16384] __attribute__((aligned(NLMSG_ALIGNTO)));
	int rc = 0;

	for (;;) {
		ssize_t n = recv(d->nl_fd, buf, sizeof(buf), 0);

		if (n < 0 && errno == ENOBUFS) {
			hp_dbg(HP_DBG_TIMING,
			       "process events lost: rescanning");
			rc = -ENOBUFS;
			continue;
		}
		if (n <= 0)
			break;
		for (struct nlmsghdr *nh = (struct nlmsghdr *)buf;
		     NLMSG_OK(nh, (size_t)n); nh = NLMSG_NEXT(nh, n)) {
			const struct cn_msg *cn = NLMSG_DATA(nh);
			const struct proc_event *ev = (const void *)cn->data;

			if (nh->nlmsg_type != NLMSG_DONE ||
			    cn->id.idx != CN_IDX_PROC)
				continue;
			if (ev->what == PROC_EVENT_EXEC)
				ag_on_exec(d, ev->event_data.exec.process_tgid,
					   now);
			else if (ev->what == PROC_EVENT_EXIT &&
				 ev->event_data.exit.process_pid ==
					 ev->event_data.exit.process_tgid)
				ag_on_exit(d, ev->event_data.exit.process_tgid);
		}
	}
	return rc;
}
