/*
 * An HTTP server on libevent's evhttp, for tests/real/deb_libevent_live.sh.
 * Every request is answered with what evhttp made of its headers:
 *   x-evil VALUE|absent   the header X-Evil as evhttp's request has it.
 * libevent 2.1.12-stable-8+deb12u1 (CVE-2026-63379) discards the trailers
 * of a chunked body; before, a trailer "X-Evil: 1" became a header of the
 * request, after the proxy in front had checked the headers.
 * Prints "ready pid=N port=P" once listening on 127.0.0.1.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

static void answer(struct evhttp_request *req, void *arg)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *evil = evhttp_find_header(h, "X-Evil");
	struct evbuffer *out = evbuffer_new();

	(void)arg;
	evbuffer_add_printf(out, "x-evil %s\n", evil ? evil : "absent");
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

int main(void)
{
	struct event_base *base = event_base_new();
	struct evhttp *http = base ? evhttp_new(base) : NULL;
	struct evhttp_bound_socket *bound;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	if (!http)
		return 1;
	bound = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	if (!bound || getsockname(evhttp_bound_socket_get_fd(bound),
				  (struct sockaddr *)&sin, &len))
		return 1;
	evhttp_set_gencb(http, answer, NULL);
	printf("ready pid=%d port=%d libevent %s\n", (int)getpid(),
	       ntohs(sin.sin_port), event_get_version());
	fflush(stdout);
	return event_base_dispatch(base);
}
