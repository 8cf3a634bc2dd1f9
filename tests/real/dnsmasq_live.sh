#!/usr/bin/env bash
# A second real program, and real security fixes: dnsmasq 2.90 from Debian
# bookworm's source package, built as upstream released it (old) and with
# the CVE patches of Debian's 2.90-4~deb12u2 security update (new).
# hpdiff must refuse the whole update (CVE-2026-2291 resizes union bigname,
# which the running cache holds) and accept it without that one. The old
# build then runs as a forwarder with --add-subnet and --cache-rr=SRV and is
# patched live, a TCP connection's forked child with it:
#   CVE-2026-4893  process_reply() checked the client-subnet option of a
#                  reply against the wrong length, so never; a spoofed
#                  subnet must be discarded while patched
#   CVE-2026-5172  extract_addresses() trusted rdlen; an SRV record whose
#                  target runs past it made dnsmasq copy the heap into its
#                  cache until out of memory; patched, it is SERVFAIL
# Checks that the cache and the open connection survive, that the fixes
# answer only while applied, and reverts. Not part of the suite (it
# downloads and builds dnsmasq three times, under a minute): run as root
# after scripts/build.sh.
# usage: tests/real/dnsmasq_live.sh [--flags sections|debian]
# --flags debian: all three built with Debian's flags, no function sections.
. "$(dirname "$0")/lib.bash" "$@"
PEER=$src/tests/real/dnsmasq_peer.py

real_source dnsmasq python3
# The security fixes, in the order of Debian's series file.
cves=$(grep '^CVE-.*\.patch$' "$series" | tr '\n' ' ')
[ -n "$cves" ] || { say "no CVE patches in $dsc"; exit 1; }
real_flavour CFLAGS

# One tree, as upstream's Makefile builds it.
compile() { make -j2 -s CFLAGS="$FLAGS" LDFLAGS="$LDFLAGS"; }
build() { real_build "$1" compile "${@:2}"; }
build "${pfx}old"
# shellcheck disable=SC2086 # one word per patch
build "${pfx}full" $cves
# shellcheck disable=SC2086
build "${pfx}new" ${cves//CVE-2026-2291.patch/}
bin=$C/${pfx}old/src/dnsmasq

make_key k
expect_exit 1 "hpdiff refuses the whole update" "$HPDIFF" --old "$C/${pfx}old/src" \
	--new "$C/${pfx}full/src" --binary "$bin" --key "$T/k.key" -o "$T/full.hpatch"
check "the reason is union bigname's new size (CVE-2026-2291)" \
	grep -q "HP_E_LAYOUT.*union bigname\|union bigname.*HP_E_LAYOUT" "$T/last.err"
check "and no patch is written" test ! -e "$T/full.hpatch"

start=$(date +%s%N)
expect_exit 0 "hpdiff over the update without CVE-2026-2291" "$HPDIFF" \
	--old "$C/${pfx}old/src" --new "$C/${pfx}new/src" --binary "$bin" --key "$T/k.key" \
	--id dnsmasq-deb12u2 -o "$T/dnsmasq.hpatch" --json
hpdiff_ms=$((($(date +%s%N) - start) / 1000000))
funcs=$(grep -o '"functions":\[[^]]*\]' "$T/last.out" |
	grep -o '"name":"[^"]*"' | sort | tr '\n' ' ')
want='"name":"create_helper" "name":"extract_addresses" "name":"process_reply.constprop.0" '
check "exactly the three fixed functions are in the patch ($funcs)" \
	test "$funcs" = "$want"
say "hpdiff ${hpdiff_ms} ms over $(find "$C/${pfx}old/src" -name '*.o' | wc -l) objects;" \
	"patch $(stat -c %s "$T/dnsmasq.hpatch") bytes"

# The upstream, and the old dnsmasq forwarding to it. Its address space is
# capped so that CVE-2026-5172 fails an allocation instead of taking the
# host's memory.
uport=$((20000 + $$ % 20000))
port=$((uport + 1))
python3 "$PEER" upstream "$uport" "$T/upstream.log" >"$T/peer.out" 2>&1 &
PIDS+=($!)
(
	ulimit -v 262144
	exec "$bin" --keep-in-foreground --conf-file=/dev/null --pid-file= --user=root \
		--port="$port" --listen-address=127.0.0.1 --bind-interfaces \
		--no-resolv --no-hosts --server="127.0.0.1#$uport" \
		--add-subnet=10.1.2.3/32 --cache-rr=SRV \
		--log-queries --log-facility="$T/dnsmasq.log"
) >"$T/dnsmasq.out" 2>&1 &
PIDS+=($!)
pid=$!
for _ in $(seq 100); do
	grep -q ready "$T/peer.out" && grep -q "using nameserver" "$T/dnsmasq.log" 2>/dev/null &&
		break
	sleep 0.05
done

udp() { python3 "$PEER" udp "$port" "$@"; }
# tcp NAME TYPE: a query on the connection held open by the coprocess.
tcp() {
	local l
	echo "$1 $2" >&"${TCP[1]}"
	IFS= read -r -t 6 l <&"${TCP[0]}" || l=none
	printf '%s\n' "$l"
}
asked() { grep -cx "$1" "$T/upstream.log" || true; }
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status"; }

check "v1: answers" test "$(udp ok1.test A)" = "NOERROR 192.0.2.1"
check "v1: a spoofed client subnet is accepted (the bug)" \
	test "$(udp spoof1.test A)" = "NOERROR 192.0.2.66"
coproc TCP { python3 "$PEER" tcp "$port"; }
PIDS+=("$TCP_PID")
read -r -t 5 _ <&"${TCP[0]}"
check "v1: over TCP too" test "$(tcp spoof2.test A)" = "NOERROR 192.0.2.66"
# dnsmasq serves each TCP connection in a child forked at accept.
child=$(pgrep -P "$pid" | head -n1)
check "a child $child serves the TCP connection" test -n "$child"
PIDS+=("$child")

expect_exit 0 "apply to the running dnsmasq and its TCP child" "$HPATCH" apply \
	-p "$pid" -p "$child" --trust "$T/trust" --json "$T/dnsmasq.hpatch"
pause=$(grep -o '"pause_us":[0-9]*' "$T/last.out" | cut -d: -f2 | tr '\n' ' ')
say "pause_us (parent, child): $pause"
check "patched: a spoofed client subnet is discarded" \
	test "$(udp spoof3.test A)" = timeout
check "patched: dnsmasq says why" \
	grep -q "discarding DNS reply: subnet option mismatch" "$T/dnsmasq.log"
check "patched: on the TCP connection opened before, refused" \
	test "$(tcp spoof4.test A)" = REFUSED
check "patched: which still answers" test "$(tcp ok2.test A)" = "NOERROR 192.0.2.1"
check "patched: so does a child forked since" test "$(echo spoof5.test A |
	python3 "$PEER" tcp "$port" | tail -n1)" = REFUSED
check "patched: answers from the cache filled before" \
	test "$(udp ok1.test A)/$(asked ok1.test)" = "NOERROR 192.0.2.1/1"
check "patched: an SRV rdlen that lies is SERVFAIL" \
	test "$(udp srv1.test SRV)" = SERVFAIL
check "patched: without eating memory ($(rss_kb) kB)" test "$(rss_kb)" -lt 65536
check "patched: status lists the patch" \
	bash -c "'$HPATCH' status -p $pid | grep -q dnsmasq-deb12u2"

expect_exit 0 "revert both" "$HPATCH" revert -p "$pid" -p "$child"
check "reverted: a spoofed client subnet is accepted again" \
	test "$(udp spoof6.test A)" = "NOERROR 192.0.2.66"
check "reverted: on the same TCP connection too" \
	test "$(tcp spoof7.test A)" = "NOERROR 192.0.2.66"
check "reverted: the cache still answers" \
	test "$(udp ok1.test A)/$(asked ok1.test)" = "NOERROR 192.0.2.1/1"
udp srv2.test SRV >/dev/null
check "reverted: the lying SRV record eats memory again ($(rss_kb) kB)" \
	grep -q "failed to allocate" "$T/dnsmasq.log"
check "dnsmasq still running" kill -0 "$pid"

# CVE-2026-4892 is in create_helper(), which forks the --dhcp-script helper
# at start and is that helper's main loop: the helper can never be patched
# (busy, and --allow-active would not change the loop that runs); the
# parent can.
"$bin" --keep-in-foreground --conf-file=/dev/null --pid-file= --user=root \
	--port=$((port + 1)) --listen-address=127.0.0.1 --bind-interfaces \
	--no-resolv --no-hosts --dhcp-range=127.0.0.50,127.0.0.60 \
	--dhcp-alternate-port=$((port + 2)),$((port + 3)) \
	--dhcp-leasefile="$T/leases" --dhcp-script=/bin/true \
	--log-facility="$T/dhcp.log" >"$T/dhcp.out" 2>&1 &
PIDS+=($!)
dpid=$!
for _ in $(seq 100); do
	helper=$(pgrep -P "$dpid" | head -n1) && break
	sleep 0.05
done
PIDS+=("$helper")
expect_exit 4 "apply to a DHCP dnsmasq: its script helper stays busy" \
	"$HPATCH" apply -p "$dpid" -p "$helper" --timeout 500 --trust "$T/trust" \
	--json "$T/dnsmasq.hpatch"
check "in create_helper, while the parent is patched" bash -c \
	"grep -q '\"pid\":$dpid,\"action\":\"apply\",\"result\":\"ok\"' '$T/last.out' &&
	grep -q '\"busy_function\":\"create_helper\"' '$T/last.out'"
check "audit log has the applies and the reverts" \
	test "$(grep -c '"patch_id":"dnsmasq-deb12u2","key_id".*"result":"ok"' \
		"$HPATCH_AUDIT_LOG")" -eq 5
finish
