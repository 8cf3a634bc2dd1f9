#!/usr/bin/env bash
# hpdiff on C++ objects: mangled names demangled in the report (text and
# JSON, the mangled name kept), C names left alone; a class whose layout
# changed (a member inserted, a base class grown) refused naming the class
# and the member; a class whose virtual methods changed refused naming
# the class (HP_E_VTABLE).
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

expect_exit 1 "a member inserted in a class: refused" diff_case cxx_layout --json
check "JSON: HP_E_LAYOUT on the class" grep -q \
	'"symbol":"class Account","module":"cxx_layout-v1","object":"cases/cxx_layout.cc.o","code":"HP_E_LAYOUT"' \
	"$T/last.out"
check "names the member and its offsets" grep -q \
	"layout of 'class Account' changed (member 1: 'int balance' at offset 4 -> 'int flags' at offset 4" \
	"$T/last.err"
check "names the user, demangled" grep -q "used by 'Account::fee() const'" "$T/last.err"
check "no patch written" test ! -e "$T/cxx_layout.hpatch"

expect_exit 1 "a base class grown: refused" diff_case cxx_base
check "names the derived class and the member that moved" grep -q \
	"layout of 'struct Derived' changed (member 1: 'int size' at offset 4 -> 'int size' at offset 8" \
	"$T/last.err"

expect_exit 1 "a virtual method inserted: refused" diff_case cxx_vtable --json
check "JSON: HP_E_VTABLE on the class" grep -q \
	'"symbol":"struct Animal","module":"cxx_vtable-v1","object":"cases/cxx_vtable.cc.o","code":"HP_E_VTABLE"' \
	"$T/last.out"
check "names the class and the slots" grep -q \
	"virtual methods of 'struct Animal' changed (vtable slots '2 sound .*' -> '2 legs .*; 3 sound" \
	"$T/last.err"
check "the vtable object, demangled and mangled" grep -q \
	"'vtable for Animal' (_ZTV6Animal)" "$T/last.err"
finish
