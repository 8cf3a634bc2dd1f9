#!/usr/bin/env python3
"""DNS peers for tests/real/dnsmasq_live.sh, standard library only.

  dnsmasq_peer.py upstream PORT LOG  a forwarder's upstream on 127.0.0.1:PORT,
                                     UDP and TCP; appends each name asked to LOG
  dnsmasq_peer.py udp PORT NAME TYPE one query; prints "RCODE [ADDRESS]" or timeout
  dnsmasq_peer.py tcp PORT           one TCP connection held open; a query per
                                     input line "NAME TYPE", a reply line each

The upstream answers NAME A with 192.0.2.1 and echoes the query's EDNS
client-subnet option, except that spoof* names get 192.0.2.66 and a subnet
option for 198.51.100.0/24, which the querier must discard (CVE-2026-4893),
and srv* names get an SRV record whose rdlen ends inside the target name
(CVE-2026-5172).
"""
import socket
import struct
import sys
import threading

RCODES = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"]
TYPES = {"A": 1, "SRV": 33}


def name_wire(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.split(".") if l) + b"\0"


def parse_question(msg):
    """(name, qtype, offset past the question) of a message."""
    i, labels = 12, []
    while msg[i]:
        labels.append(msg[i + 1:i + 1 + msg[i]].decode())
        i += 1 + msg[i]
    (qtype,) = struct.unpack(">H", msg[i + 1:i + 3])
    return ".".join(labels), qtype, i + 5


def client_subnet(msg, qend):
    """The raw client-subnet option of a query's OPT record, or None."""
    i = qend
    if msg[i:i + 3] != b"\0\0\x29":
        return None
    i += 11
    end = i + struct.unpack(">H", msg[i - 2:i])[0]
    while i + 4 <= end:
        code, size = struct.unpack(">HH", msg[i:i + 4])
        if code == 8:
            return msg[i:i + 4 + size]
        i += 4 + size
    return None


def answer(msg, log):
    name, _, qend = parse_question(msg)
    with open(log, "a") as f:
        f.write(name + "\n")
    question = msg[12:qend]
    if name.startswith("srv"):
        # rdlen says 7: priority, weight, port and one byte of the target
        rr = b"\xc0\x0c" + struct.pack(">HHIH", 33, 1, 3600, 7)
        rr += struct.pack(">HHH", 1, 1, 53) + name_wire("target.test")
        return msg[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 1, 0, 0) + question + rr
    spoof = name.startswith("spoof")
    rr = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 3600, 4)
    rr += socket.inet_aton("192.0.2.66" if spoof else "192.0.2.1")
    ecs = client_subnet(msg, qend)
    if ecs is None:
        return msg[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 1, 0, 0) + question + rr
    if spoof:
        ecs = struct.pack(">HHHBB", 8, 7, 1, 24, 0) + bytes([198, 51, 100])
    opt = b"\0" + struct.pack(">HHIH", 41, 1232, 0, len(ecs)) + ecs
    return msg[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 1, 0, 1) + question + rr + opt


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        part = conn.recv(n - len(buf))
        if not part:
            return None
        buf += part
    return buf


def recv_tcp(conn):
    size = recv_exact(conn, 2)
    return size and recv_exact(conn, struct.unpack(">H", size)[0])


def upstream(port, log):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    tcp = socket.socket()
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", port))
    tcp.listen(8)

    def serve(conn):
        with conn:
            while (msg := recv_tcp(conn)) is not None:
                reply = answer(msg, log)
                conn.sendall(struct.pack(">H", len(reply)) + reply)

    def accept():
        while True:
            conn, _ = tcp.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print("ready", flush=True)
    while True:
        msg, peer = udp.recvfrom(4096)
        udp.sendto(answer(msg, log), peer)


def query(name, qtype):
    return struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + \
        name_wire(name) + struct.pack(">HH", TYPES[qtype], 1)


def show(reply):
    """"RCODE [ADDRESS]": the address of an A record first in the answer."""
    rcode = reply[3] & 15
    text = RCODES[rcode] if rcode < len(RCODES) else "RCODE%d" % rcode
    (ancount,) = struct.unpack(">H", reply[6:8])
    _, _, i = parse_question(reply)
    if ancount and reply[i:i + 4] == b"\xc0\x0c\0\x01":
        text += " " + socket.inet_ntoa(reply[i + 12:i + 16])
    return text


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "upstream":
        upstream(port, sys.argv[3])
    elif mode == "udp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(2)
        sock.sendto(query(sys.argv[3], sys.argv[4]), ("127.0.0.1", port))
        try:
            print(show(sock.recvfrom(4096)[0]))
        except socket.timeout:
            print("timeout")
    elif mode == "tcp":
        conn = socket.create_connection(("127.0.0.1", port))
        conn.settimeout(5)
        print("connected", flush=True)
        for line in sys.stdin:
            msg = query(*line.split())
            conn.sendall(struct.pack(">H", len(msg)) + msg)
            try:
                reply = recv_tcp(conn)
                print(show(reply) if reply else "closed", flush=True)
            except socket.timeout:
                print("timeout", flush=True)
    else:
        sys.exit("usage: see the head of " + sys.argv[0])


main()
