#!/usr/bin/env bash
# Debian's libevent security update 2.1.12-stable-8 -> +deb12u1 (eight
# CVEs: http trailers and headers, evrpc, evdns, bufferevent), with
# hpatch-deb. The whole update is refused, rightly: CVE-2026-63388 grows
# struct bufferevent_private, which every live bufferevent is. The old
# source package plus the update's patches for CVE-2026-63382 (stricter
# Content-Length/Transfer-Encoding: request smuggling) and CVE-2026-63379
# (evhttp took the trailers of a chunked body as headers, after a proxy had
# checked the headers) makes one patch with a module for each of libevent's libraries
# whose code it changes (the same objects are linked into libevent-2.1.so.7
# and libevent_extra); patched live into an HTTP server on evhttp
# (deb_libevent_host.c) that loads the official libevent-2.1-7 .deb of the
# old version, over a keep-alive connection opened before the patch: a
# trailer "X-Evil: 1" is a header before, discarded after. Reverted, back.
# usage: tests/real/deb_libevent_live.sh   (root; downloads and builds)
. "$(dirname "$0")/deb_lib.bash"
OLD=2.1.12-stable-8 NEW=2.1.12-stable-8+deb12u1
# in the update's series order: 63379's patch applies on top of 63382's
FIXES=(CVE-2026-63382.patch CVE-2026-63379.patch)
deb_setup libevent-dev python3

old=$(deb_official libevent-2.1-7 "$OLD")
shipped=$T/debs/libevent-2.1-7_${OLD}_amd64.deb
expect_exit 1 "hpatch-deb refuses the whole update" "$src/scripts/hpatch-deb" \
	--cache "$CACHE" --key "$T/k.key" -o "$T/full.hpatch" --shipped "$shipped" \
	libevent "$OLD" "$NEW"
check "because struct bufferevent_private grows (CVE-2026-63388)" \
	grep -q "layout of 'struct bufferevent_private' changed" "$T/last.out"
check "and writes nothing" test ! -e "$T/full.hpatch"
say "the whole update: $(grep -E '^(REFUSED )?/' "$T/last.out" | tr '\n' ';')"

fix=()
for f in "${FIXES[@]}"; do fix+=(--fix "$(deb_update_patch libevent "$NEW" "$f")"); done
deb_patch "libevent $OLD + ${FIXES[*]}" --old-source "$CACHE/src/libevent_${OLD}.dsc" \
	"${fix[@]}" --shipped "$shipped"
check "the shipped libevent-2.1.so.7 proved" \
	grep -q 'libevent-2.1.so.7.0.1 (libevent-2.1-7): \(build-id\|loaded sections\) equal' "$T/last.out"
check "the patch has its module" grep -q 'binary: libevent-2.1.so.7.0.1' "$T/last.out"

gcc -O2 -g -Wall -o "$T/host" "$src/tests/real/deb_libevent_host.c" -levent
lib=$(dirname "$(find "$old" -name 'libevent-2.1.so.7.*' | head -n1)")
LD_LIBRARY_PATH=$lib start_target "$T/host" "$T/host.log"
pid=$TARGET_PID
check "the server maps the official $OLD library" grep -q "$lib/libevent-2.1.so.7" "/proc/$pid/maps"
coproc PEER { exec python3 "$src/tests/real/deb_libevent_peer.py" "$TARGET_PORT"; }
PIDS+=("$PEER_PID")
peer() { ask_coproc PEER x; }
check "old: the trailer became a header" test "$(peer)" = "x-evil 1"
deb_apply "$pid"
check "patched: the trailer is discarded, same connection" test "$(peer)" = "x-evil absent"
deb_revert "$pid"
check "reverted: the trailer is a header again" test "$(peer)" = "x-evil 1"
eval "exec ${PEER[1]}>&-"
finish
