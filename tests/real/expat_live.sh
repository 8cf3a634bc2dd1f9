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
. "$(dirname "$0")/lib.bash" "$@"
LDFLAGS="-Wl,-Bsymbolic-functions $LDFLAGS" # as debian/rules

real_source expat autoconf automake libtool
# The security fixes, in the order of Debian's series file.
cves=$(grep 'CVE-.*\.patch$' "$series" | tr '\n' ' ')
small=$(grep -E 'CVE-2024-4549[012]|CVE-2024-50602' "$series" | tr '\n' ' ')
[ "$(wc -w <<<"$small")" -eq 4 ] || { say "CVE patches missing in $dsc"; exit 1; }
real_flavour CFLAGS

# The shared library only.
compile() {
	cd expat && ./buildconf.sh && ./configure --disable-static \
		--without-docbook --without-xmlwf --without-examples \
		--without-tests CFLAGS="$FLAGS" LDFLAGS="$LDFLAGS" &&
		make -C lib -j2
}
build() { real_build "$1" compile "${@:2}"; }
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
