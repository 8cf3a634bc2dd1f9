#!/usr/bin/env bash
# Debian's xz-utils security update 5.4.1-1+deb12u1 -> +deb12u2
# (GHSA-5qpq-xqfv-j9pg: liblzma left a failed inner decoder allocated and
# half initialised after an allocation failure), made with hpatch-deb from
# the two source packages and patched live into the shared library
# liblzma.so.5 under a running program (deb_xz_host.c) that loads the
# official liblzma5 .deb of the old version. The probe counts the
# decoder's allocations left live after the error: the official fixed
# .deb answers how a fixed library does. Reverted, the old answer is back.
# usage: tests/real/deb_xz_live.sh   (root; downloads and builds xz-utils)
. "$(dirname "$0")/deb_lib.bash"
OLD=5.4.1-1+deb12u1 NEW=5.4.1-1+deb12u2
deb_setup liblzma-dev

old=$(deb_official liblzma5 "$OLD")
new=$(deb_official liblzma5 "$NEW")
deb_patch "xz-utils $OLD -> $NEW" --shipped "$T/debs/liblzma5_${OLD}_amd64.deb" \
	xz-utils "$OLD" "$NEW"
check "the shipped liblzma proved" grep -q 'liblzma.so.5.4.1 (liblzma5): \(build-id\|loaded sections\) equal' "$T/last.out"
check "the patch has the library's module" grep -q 'binary: liblzma.so.5.4.1' "$T/last.out"

gcc -O2 -g -Wall -o "$T/host" "$src/tests/real/deb_xz_host.c" -llzma
libdir() { dirname "$(find "$1" -name 'liblzma.so.5.*' | head -n1)"; }
fixed=$(printf 'probe\n' | LD_LIBRARY_PATH=$(libdir "$new") "$T/host" | tail -n1)
deb_host "$(libdir "$old")" "$T/host"
check "the host runs liblzma ($ready)" test "$ready" = "ready liblzma 5.4.1"
check "from the official $OLD .deb" grep -q "$(libdir "$old")" "/proc/$pid/maps"
vuln=$(host probe)
check "old: the failed decoder stays allocated ($vuln; fixed: $fixed)" \
	test "$vuln" != "$fixed"
deb_apply "$pid"
check "patched: the failed decoder is freed at once ($(host probe))" \
	test "$(host probe)" = "$fixed"
check "patched: liblzma still compresses and decompresses" \
	bash -c "[[ '$(host xz)' == 'xz ok '* ]]"
deb_revert "$pid"
check "reverted: the old behaviour again" test "$(host probe)" = "$vuln"
eval "exec ${HOST[1]}>&-"
finish
