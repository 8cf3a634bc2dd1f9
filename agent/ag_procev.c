/*
 * The kernel's process-event connector (netlink, CN_IDX_PROC): one message
 * per exec and exit on the host, so hpatchd patches a new process within
 * milliseconds without polling. Needs CAP_NET_ADMIN.
 */
#include "agent/agent_int.h"
#include "common/hp_err.h"
#include "common/hp_log.h"

#include <errno.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
