#!/usr/bin/env bash
# A real shared library and real security fixes: libexpat 2.5.0 from Debian
# bookworm's source package, built the way debian/rules does (autotools,
# -Bsymbolic-functions) as upstream released it (old) and with the CVE
# patches of Debian's 2.5.0-1+deb12u2 update (new). hpdiff must refuse the
# whole update (CVE-2023-52425 grows struct XML_ParserStruct, which every
# live parser is) and accept the small fixes, with the old .so as --binary:
#   CVE-2024-45490  XML_ParseBuffer() took a negative length and moved the
#                   buffer's end before its start; patched, it is
#                   XML_ERROR_INVALID_ARGUMENT
#   CVE-2024-50602  XML_StopParser() suspended a parser never started (and
#                   XML_ResumeParser() then crashed); patched, it is
#                   XML_ERROR_NOT_STARTED, which XML_ErrorString() names
#   CVE-2024-45491, CVE-2024-45492: overflow checks compiled out where
#                   size_t is wider than int, as on x86-64: no code changes
# A host program linked against the old libexpat.so keeps a parser open
# across the patch and is patched live. Checks that the fixes answer only
# while applied and that the open parser's document survives, and reverts.
# Not part of the suite (it downloads and builds expat three times, a few
# minutes): run as root after scripts/build.sh.
# usage: tests/real/expat_live.sh [--flags sections|debian]
# --flags debian: all three built with Debian's flags, no function sections.
src=$(cd "$(dirname "$0")/../.." && pwd)
. "$src/scripts/debian-source.bash"
hp_real_flags "$@"
export HP_BUILD=${HP_BUILD_DIR:-$src/build}
. "$src/tests/e2e/lib.bash"
require_ptrace
C=${HP_BENCH_CACHE:-/var/cache/hpatch-bench}/expat
PKG=expat
FLAGS="-O2 -g -ffunction-sections -fdata-sections"
LDFLAGS="-Wl,-Bsymbolic-functions -Wl,--build-id" # as debian/rules
say() { printf '%s: %s\n' "$(basename "$0" .sh)" "$*" >&2; }

bash "$src/scripts/setup.sh" dpkg-dev patch debian-archive-keyring autoconf \
	automake libtool >&2
[ -x "$HPDIFF" ] || HP_BUILD_DIR=$HP_BUILD bash "$src/scripts/build.sh" >&2

# The upstream source, and Debian's patches beside it.
hp_debian_source "$PKG" "$C"
dsc=$HP_DSC
series=$C/pristine/debian/patches/series
# The security fixes, in the order of Debian's series file.
cves=$(grep 'CVE-.*\.patch$' "$series" | tr '\n' ' ')
small=$(grep -E 'CVE-2024-4549[012]|CVE-2024-50602' "$series" | tr '\n' ' ')
[ "$(wc -w <<<"$small")" -eq 4 ] || { say "CVE patches missing in $dsc"; exit 1; }
export GIT_CEILING_DIRECTORIES=$C/work
if [ "$flavour" = debian ]; then
	mkdir -p "$C/work/$PKG"
	FLAGS="$(cd "$C/work/$PKG" && hp_debian_flags CFLAGS) $(hp_debian_flags CPPFLAGS)"
	LDFLAGS="$(hp_debian_flags LDFLAGS) $LDFLAGS"
fi

# build NAME PATCHES...: the shared library only, at the same path each time
# (debug info records it), cached by flags, source and patches.
build() {
	local name=$1 w=$C/work/$PKG p
	shift
	local stamp="$FLAGS $LDFLAGS $dsc $*"
	if [ -f "$C/$name/.hp-stamp" ] && [ "$(cat "$C/$name/.hp-stamp")" = "$stamp" ]; then
		return
	fi
	say "building $name"
	rm -rf "$C/work" "${C:?}/$name"
	mkdir -p "$C/work"
	cp -a "$C/pristine" "$w"
	for p in "$@"; do
		patch -d "$w" -p1 --forward --no-backup-if-mismatch -s \
			<"$w/debian/patches/$p"
	done
	(
		cd "$w/expat" && ./buildconf.sh && ./configure --disable-static \
			--without-docbook --without-xmlwf --without-examples \
			--without-tests CFLAGS="$FLAGS" LDFLAGS="$LDFLAGS" &&
			make -C lib -j2
	) >"$C/work/build.log" 2>&1 || { tail -n 30 "$C/work/build.log" >&2; exit 1; }
	mv "$w" "$C/$name"
	echo "$stamp" >"$C/$name/.hp-stamp"
}
build "${pfx}old"
# shellcheck disable=SC2086 # one word per patch
build "${pfx}full" $cves
# shellcheck disable=SC2086
build "${pfx}new" $small
lib=$C/${pfx}old/expat/lib/.libs/libexpat.so.1.8.10

make_key k
expect_exit 1 "hpdiff refuses the whole update" "$HPDIFF" \
	--old "$C/${pfx}old/expat/lib/.libs" --new "$C/${pfx}full/expat/lib/.libs" \
	--binary "$lib" --key "$T/k.key" -o "$T/full.hpatch"
check "the reason is struct XML_ParserStruct's new size (CVE-2023-52425)" \
	grep -q "HP_E_LAYOUT.*XML_ParserStruct\|XML_ParserStruct.*HP_E_LAYOUT" "$T/last.err"
check "and no patch is written" test ! -e "$T/full.hpatch"
# -fvisibility=hidden: the library holds its internal globals as locals.
check "yet every hidden function its new code calls is found" \
	bash -c "! grep -q HP_E_NOSYM '$T/last.err'"

start=$(date +%s%N)
expect_exit 0 "hpdiff over the small fixes, the old .so as --binary" "$HPDIFF" \
	--old "$C/${pfx}old/expat/lib/.libs" --new "$C/${pfx}new/expat/lib/.libs" \
	--binary "$lib" --key "$T/k.key" --id expat-deb12u2 -o "$T/expat.hpatch" --json
hpdiff_ms=$((($(date +%s%N) - start) / 1000000))
funcs=$(grep -o '"functions":\[[^]]*\]' "$T/last.out" |
	grep -o '"name":"[^"]*"' | sort | tr '\n' ' ')
want='"name":"XML_ErrorString" "name":"XML_ParseBuffer" "name":"XML_StopParser" '
check "exactly the three fixed functions are in the patch ($funcs)" \
	test "$funcs" = "$want"
say "hpdiff ${hpdiff_ms} ms over $(find "$C/${pfx}old/expat/lib/.libs" -name '*.o' | wc -l)" \
	"objects; patch $(stat -c %s "$T/expat.hpatch") bytes"

# The host: a program linked against the old libexpat.so, one command a line.
gcc -O2 -g -Wall -o "$T/host" "$src/tests/real/expat_host.c" \
	-I"$C/${pfx}old/expat/lib" -L"$C/${pfx}old/expat/lib/.libs" -lexpat \
	-Wl,-rpath,"$C/${pfx}old/expat/lib/.libs"
coproc HOST { exec "$T/host"; }
PIDS+=("$HOST_PID")
pid=$HOST_PID
# host CMD: one result line.
host() { ask_coproc HOST "$1"; }
read -r -t 5 ready <&"${HOST[0]}"
check "the host runs the old libexpat ($ready)" test "$ready" = "ready expat_2.5.0"
check "and maps it from the old build" grep -q "$lib" "/proc/$pid/maps"

ok_parse="status 1 error 0 (null)" # XML_ErrorString(XML_ERROR_NONE) is NULL
invalid="status 0 error 41 invalid argument"
not_started="status 0 error 44 parser not started"
check "v1: parses a document" test "$(host 'parse <a><b/><c x="1"/></a>')" = "$ok_parse"
check "v1: a negative length is taken (CVE-2024-45490)" \
	test "$(host negative-len)" = "$ok_parse"
check "v1: an unstarted parser is suspended (CVE-2024-50602)" \
	test "$(host stop-unstarted)" = "$ok_parse"
check "v1: error 44 has no text" test "$(host 'errstr 44')" = "(null)"
check "v1: half a document in the open parser" \
	test "$(host 'feed <doc><item/><item>')" = "feed 1 elements 3"

expect_exit 0 "apply to the host's libexpat" "$HPATCH" apply -p "$pid" \
	--trust "$T/trust" --json "$T/expat.hpatch"
pause=$(grep -o '"pause_us":[0-9]*' "$T/last.out" | cut -d: -f2)
say "pause_us: $pause"
check "patched: a negative length is refused" test "$(host negative-len)" = "$invalid"
check "patched: an unstarted parser cannot be stopped" \
	test "$(host stop-unstarted)" = "$not_started"
check "patched: error 44 is named" test "$(host 'errstr 44')" = "parser not started"
check "patched: documents still parse" \
	test "$(host 'parse <a><b/><c x="1"/></a>')" = "$ok_parse"
check "patched: malformed ones are still errors" \
	test "$(host 'parse <a><b></a>')" = "status 0 error 7 mismatched tag"
check "patched: the open parser goes on with its document" \
	test "$(host 'feed </item><item/>')" = "feed 1 elements 4"
check "patched: status lists the patch" \
	bash -c "'$HPATCH' status -p $pid | grep -q expat-deb12u2"

expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
check "reverted: a negative length is taken again" \
	test "$(host negative-len)" = "$ok_parse"
check "reverted: an unstarted parser is suspended again" \
	test "$(host stop-unstarted)" = "$ok_parse"
check "reverted: error 44 has no text again" test "$(host 'errstr 44')" = "(null)"
check "reverted: the open parser finishes its document" \
	test "$(host 'feed </doc>')/$(host end)" = "feed 1 elements 4/end 1 elements 4"
check "the host still runs" kill -0 "$pid"
check "audit log has the apply and the revert" \
	test "$(grep -c '"patch_id":"expat-deb12u2".*"result":"ok"' "$HPATCH_AUDIT_LOG")" -eq 2
eval "exec ${HOST[1]}>&-" # EOF: the host exits
finish
