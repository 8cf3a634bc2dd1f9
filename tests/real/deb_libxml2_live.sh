#!/usr/bin/env bash
# Debian's libxml2 security updates 2.9.14+dfsg-1.3~deb12u4 -> ~deb12u6,
# with hpatch-deb: first the whole update from the two source packages
# (its report says what each ELF does), then the old source package plus
# one fix taken from the new one's debian/patches (CVE-2025-9714: XPath
# evaluations reset the recursion depth, so EXSLT's nested dyn:evaluate()
# calls were never limited), patched live into libxml2.so.2 under a
# running program (deb_libxml2_host.c) that loads the official libxml2
# .deb of the old version and keeps a document and an XPath context open.
# The probe evaluates with the context already 6000 levels deep: the old
# library evaluates, a fixed one (the official ~deb12u6 .deb answers the
# same) refuses. Reverted, the old answer is back.
# usage: tests/real/deb_libxml2_live.sh   (root; downloads and builds)
. "$(dirname "$0")/deb_lib.bash"
OLD=2.9.14+dfsg-1.3~deb12u4 NEW=2.9.14+dfsg-1.3~deb12u6
FIX=CVE-2025-9714.patch
deb_setup libxml2-dev pkg-config

old=$(deb_official libxml2 "$OLD")
new=$(deb_official libxml2 "$NEW")
rc=0
"$src/scripts/hpatch-deb" --cache "$CACHE" --key "$T/k.key" -o "$T/full.hpatch" \
	--shipped "$T/debs/libxml2_${OLD}_amd64.deb" libxml2 "$OLD" "$NEW" \
	>"$T/full.out" 2>"$T/full.err" || rc=$?
say "the whole update: exit $rc; $(grep -E '^(REFUSED )?/' "$T/full.out" | tr '\n' ';')"
grep -E 'HP_E_[A-Z_]+' -o "$T/full.out" | sort | uniq -c | sed "s/^/$(basename "$0" .sh): refusals: /" >&2 || true

# The fix alone: the old source package, one patch of the new one.
deb_patch "libxml2 $OLD + $FIX" --old-source "$CACHE/src/libxml2_${OLD}.dsc" \
	--fix "$(deb_update_patch libxml2 "$NEW" "$FIX")" \
	--shipped "$T/debs/libxml2_${OLD}_amd64.deb"
check "the shipped libxml2.so.2 proved" \
	grep -q 'libxml2.so.2.9.14 (libxml2): \(build-id\|loaded sections\) equal' "$T/last.out"
check "the fixed functions are in" grep -q 'name: xmlXPathRunEval\|name: xmlXPathCtxtCompile' "$T/last.out"

gcc -O2 -g -Wall -o "$T/host" "$src/tests/real/deb_libxml2_host.c" \
	$(pkg-config --cflags --libs libxml-2.0)
libdir() { dirname "$(find "$1" -name 'libxml2.so.2.*' | head -n1)"; }
fixed=$(printf 'xpath 6000 1+1\n' | LD_LIBRARY_PATH=$(libdir "$new") "$T/host" | tail -n1)
check "the official $NEW refuses a 6000-deep evaluation ($fixed)" test "$fixed" = error
deb_host "$(libdir "$old")" "$T/host"
check "the host runs libxml2 ($ready)" test "$ready" = "ready libxml2 20914"
check "from the official $OLD .deb" grep -q "$(libdir "$old")/libxml2.so.2" "/proc/$pid/maps"
check "old: a 6000-deep evaluation runs" test "$(host 'xpath 6000 1+1')" = "value 2"
deb_apply "$pid"
check "patched: it is refused" test "$(host 'xpath 6000 1+1')" = "$fixed"
check "patched: a shallow one still runs" test "$(host 'xpath 10 1+1')" = "value 2"
check "patched: the open document answers" test "$(host count)" = "count 3"
deb_revert "$pid"
check "reverted: the deep evaluation runs again" test "$(host 'xpath 6000 1+1')" = "value 2"
eval "exec ${HOST[1]}>&-"
finish
