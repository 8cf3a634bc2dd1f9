#!/usr/bin/env bash
# hpdiff on C++ objects: mangled names demangled in the report (text and
# JSON, the mangled name kept), C names left alone.
. "$(dirname "$0")/../e2e/lib.bash"
O=$HP_TD/CMakeFiles
B=$HP_TD
diff_case() { # diff_case NAME [ARGS...]
	local n=$1; shift
	"$HPDIFF" --old "$O/$n-v1.objs.dir" --new "$O/$n-v2.objs.dir" \
		--binary "$B/$n-v1" -o "$T/$n.hpatch" "$@"
}

expect_exit 0 "a C++ program: JSON report" diff_case cxx --json
check "the method: mangled and demangled" grep -q \
	'"name":"_ZNK4Rect4areaEv","demangled":"Rect::area() const"' "$T/last.out"
check "the template instance" grep -q \
	'"name":"_Z6clampvIiET_S0_S0_S0_","demangled":"int clampv<int>(int, int, int)"' \
	"$T/last.out"
check "the inline function" grep -q '"name":"_Z6scaledi","demangled":"scaled(int)"' \
	"$T/last.out"
expect_exit 0 "text report" diff_case cxx
check "text: demangled next to the name" grep -A1 -q 'name: _ZNK4Rect4areaEv' "$T/last.out"
check "text: demangled: Rect::area() const" grep -q 'demangled: Rect::area() const' \
	"$T/last.out"
expect_exit 0 "a C program" diff_case new_func --json
check "C names have no demangled field" bash -c "! grep -q demangled '$T/last.out'"

finish
