#!/usr/bin/env bash
# A real C++ library and a real security fix: TinyXML 2.6.2 from Debian
# bookworm's source package, built as debian/rules builds the shared
# library (g++, -DTIXML_USE_STL, -fPIC), as released in bookworm (old:
# 2.6.2-6's patches) and with the fix of Debian's 2.6.2-6+deb12u1 (new):
#   CVE-2023-34194  TiXmlDeclaration::Parse() passed the end of a document
#                   ending in whitespace after "<?xml" to StringEqual(),
#                   whose assertion aborted the program (a denial of
#                   service from one crafted document); patched, the
#                   document is one without a root element, as the
#                   fixed build parses it
# A host program linked against the old libtinyxml.so keeps a document
# across the patch and is patched live. Checks that the crafted document
# kills an unpatched host, is an error while the patch is applied, and
# kills the host again once reverted; that the kept document survives.
# Not part of the suite (it downloads tinyxml's source): run as root after
# scripts/build.sh.
# usage: tests/real/tinyxml_live.sh [--flags sections|debian]
# --flags debian: both built with Debian's flags, no function sections.
. "$(dirname "$0")/lib.bash" "$@"
OBJS="tinyxml tinyxmlparser tinyxmlerror" # debian/rules' OBJ_FILES

real_source tinyxml g++
fix=CVE-2023-34194.patch
grep -qx "$fix" "$series" || { say "$fix missing in $dsc"; exit 1; }
# bookworm's 2.6.2-6: every patch of the series but the update's
released=$(grep -v -x "$fix" "$series" | tr '\n' ' ')
real_flavour CXXFLAGS

# The shared library, as debian/rules builds it.
# shellcheck disable=SC2086 # flags are words
compile() {
	local o
	mkdir -p obj || return 1
	for o in $OBJS; do
		nice -n 10 g++ $FLAGS -DTIXML_USE_STL -fPIC -c "$o.cpp" \
			-o "obj/$o.o" || return 1
	done
	g++ -shared -Wl,-soname,libtinyxml.so.2.6.2 \
		-o obj/libtinyxml.so.2.6.2 $LDFLAGS obj/*.o
}
build() { real_build "$1" compile "${@:2}"; }
# shellcheck disable=SC2086 # one word per patch
build "${pfx}old" $released
# shellcheck disable=SC2086
build "${pfx}new" $released $fix
lib=$C/${pfx}old/obj/libtinyxml.so.2.6.2

make_key k
start=$(date +%s%N)
expect_exit 0 "hpdiff over the fix, the old .so as --binary" "$HPDIFF" \
	--old "$C/${pfx}old/obj" --new "$C/${pfx}new/obj" --binary "$lib" \
	--key "$T/k.key" --id tinyxml-deb12u1 -o "$T/tinyxml.hpatch" --json
hpdiff_ms=$((($(date +%s%N) - start) / 1000000))
funcs=$(grep -o '"functions":\[.*\],"line_only"' "$T/last.out" |
	grep -o '"demangled":"[^"]*"' | sort | tr '\n' ' ')
check "exactly the fixed method is in the patch ($funcs)" test "$funcs" = \
	'"demangled":"TiXmlDeclaration::Parse(char const*, TiXmlParsingData*, TiXmlEncoding)" '
say "hpdiff ${hpdiff_ms} ms; patch $(stat -c %s "$T/tinyxml.hpatch") bytes"

# The host: a C++ program linked against the old libtinyxml.so.
g++ -O2 -g -Wall -o "$T/host" "$src/tests/real/tinyxml_host.cc" \
	-I"$C/${pfx}old" -L"$C/${pfx}old/obj" -l:libtinyxml.so.2.6.2 \
	-Wl,-rpath,"$C/${pfx}old/obj"
crafted='parse <?xml ' # the document ends in whitespace after "<?xml"
good='parse <a x="1"><b/></a>'
# The same host linked against the fixed build: what the fix answers.
g++ -O2 -g -Wall -o "$T/host-fixed" "$src/tests/real/tinyxml_host.cc" \
	-I"$C/${pfx}new" -L"$C/${pfx}new/obj" -l:libtinyxml.so.2.6.2 \
	-Wl,-rpath,"$C/${pfx}new/obj"
fixed=$(echo "$crafted" | "$T/host-fixed" | sed -n 2p)
check "the fixed build: the crafted document is one without a root ($fixed)" \
	test "$fixed" = "ok (none)"
# An unpatched host: the crafted document kills it.
rc=0
printf '%s\n' "$good" "$crafted" >"$T/in"
"$T/host" <"$T/in" >"$T/unpatched.out" 2>&1 || rc=$?
check "v1: a document parses ($(sed -n 2p "$T/unpatched.out"))" \
	test "$(sed -n 2p "$T/unpatched.out")" = "ok a"
check "v1: the crafted document aborts the program (rc $rc)" test "$rc" -eq 134
check "v1: in StringEqual's assertion" grep -q "StringEqual.*Assertion" "$T/unpatched.out"

coproc HOST { exec "$T/host" 2>"$T/host.err"; }
PIDS+=("$HOST_PID")
pid=$HOST_PID
host() { # host CMD: one result line
	local l
	echo "$1" >&"${HOST[1]}"
	IFS= read -r -t 5 l <&"${HOST[0]}" || l=none
	printf '%s\n' "$l"
}
read -r -t 5 ready <&"${HOST[0]}"
check "the host runs ($ready)" test "$ready" = ready
check "and maps the old build's libtinyxml" grep -q "$lib" "/proc/$pid/maps"
check "v1: a document parses" test "$(host "$good")" = "ok a"

expect_exit 0 "apply to the host's libtinyxml" "$HPATCH" apply -p "$pid" \
	--trust "$T/trust" --json "$T/tinyxml.hpatch"
pause=$(grep -o '"pause_us":[0-9]*' "$T/last.out" | cut -d: -f2)
say "pause_us: $pause"
got=$(host "$crafted")
check "patched: the crafted document parses as with the fixed build ($got)" \
	test "$got" = "$fixed"
check "patched: the host lives" kill -0 "$pid"
check "patched: documents still parse" test "$(host "$good")" = "ok a"
check "patched: the kept document is intact" test "$(host kept)" = "config before"
check "patched: status lists the patch" \
	bash -c "'$HPATCH' status -p $pid | grep -q tinyxml-deb12u1"

expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
check "reverted: documents parse" test "$(host "$good")" = "ok a"
check "reverted: the kept document is intact" test "$(host kept)" = "config before"
check "audit log has the apply and the revert" \
	test "$(grep -c '"patch_id":"tinyxml-deb12u1".*"result":"ok"' "$HPATCH_AUDIT_LOG")" -eq 2
# The old code again: the crafted document kills the host, as before.
echo "$crafted" >&"${HOST[1]}"
wait "$pid" 2>/dev/null && rc=0 || rc=$?
check "reverted: the crafted document aborts the host again (rc $rc)" test "$rc" -eq 134
finish
