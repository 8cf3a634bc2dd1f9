#!/usr/bin/env python3
"""A client for deb_libevent_host.c: sends one request with a chunked
body whose trailer is "X-Evil: 1" on a given connection (opened before
the patch and kept alive across it), prints the body of the answer."""
import socket
import sys

REQ = (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
       b"3\r\nabc\r\n0\r\nX-Evil: 1\r\n\r\n")


def main():
    port = int(sys.argv[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    # one request per line on stdin, on the same connection
    for _ in sys.stdin:
        s.sendall(REQ)
        length = 0
        while True:
            line = f.readline()
            if not line:
                print("closed", flush=True)
                return
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            if line in (b"\r\n", b"\n"):
                break
        print(f.read(length).decode().strip(), flush=True)


main()
