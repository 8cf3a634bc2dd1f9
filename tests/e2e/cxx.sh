#!/usr/bin/env bash
# Issue 16, item 4: a C++ program patched live (g++, then clang++): a method
# of a class (Rect::area, called through the vtable), a template instance
# (clampv<int>) and an inline function of a header used in two objects
# (scaled): each emitted in a COMDAT group by both objects, one copy kept
# by the linker, so each is patched once, where the binary has it; the
# unchanged inline function (unchanged_inline) is left alone. config()
# changes too: it keeps using the program's function-local static and its
# guard (constructed once: inits=1), and its new static, in the patch, is
# constructed on its first call (fresh=5). v2's measure() constructs a
# Rect (the program's vtable: probe=7, through the patched Rect::area) and
# dynamic_casts (the program's typeinfo: cast=1).
. "$(dirname "$0")/lib.bash"
require_ptrace

V1_LINE="result rect area=1000 scaled=10000 u=3001 inits=1 fresh=0"
V2_LINE="result rect area=999 scaled=99900 u=2998 inits=1 fresh=5 probe=7 cast=1"

# live NAME BINARY OLD NEW: patch a running BINARY from OLD/NEW objects.
live() {
	local name=$1 bin=$2 old=$3 new=$4 pid
	expect_exit 0 "$name: hpdiff" "$HPDIFF" --old "$old" --new "$new" \
		--binary "$bin" --key "$T/k.key" -o "$T/$name.hpatch" --json
	# (gcc's measure() changes too: it knows its callees' registers)
	for f in _ZNK4Rect4areaEv _Z6clampvIiET_S0_S0_S0_ _Z6scaledi _Z6configPiS_; do
		check "$name: $f in the patch once" test "$(grep -o \
			"\"name\":\"$f\"" "$T/last.out" | wc -l)" -eq 1
	done
	check "$name: the unchanged inline function is not" \
		bash -c "! grep -q unchanged_inline '$T/last.out'"
	start_target "$bin" "$T/$name.log"
	pid=$TARGET_PID
	check "$name: v1 runs" wait_result "$T/$name.log" 1 "$V1_LINE"
	expect_exit 0 "$name: apply" "$HPATCH" apply -p "$pid" --trust "$T/trust" \
		"$T/$name.hpatch"
	check "$name: the method, template, inline function and new static are new, the old static kept" \
		wait_result "$T/$name.log" 2 "$V2_LINE"
	expect_exit 0 "$name: revert" "$HPATCH" revert -p "$pid"
	check "$name: v1 again" wait_result "$T/$name.log" 3 "$V1_LINE"
	check "$name: still alive" kill -0 "$pid"
}

make_key k
O=$HP_TD/CMakeFiles
check "both objects carry scaled() in a COMDAT group" bash -c \
	"for o in '$O'/cxx-v1.objs.dir/targets/cxx/*.o; do
		readelf -gW \"\$o\" | grep -q 'COMDAT group .*\[_Z6scaledi\]' || exit 1
	done"
check "config()'s static has a guard variable" bash -c \
	"readelf -sW '$HP_TD/cxx-v1' | grep -q _ZGVZ6configPiS_E1c"
live gxx "$HP_TD/cxx-v1" "$O/cxx-v1.objs.dir" "$O/cxx-v2.objs.dir"

# The same program built by clang++ with the flavour's flags.
S=$HP_SRC/testdata/targets/cxx
read -r -a FLAGS <<<"$(flavour_cflags) -fPIE"
for v in 1 2; do
	mkdir -p "$T/clang-v$v"
	for f in cxx_main shapes; do
		clang++ "${FLAGS[@]}" -DV=$v -c "$S/$f.cc" -o "$T/clang-v$v/$f.o"
	done
	clang++ -pie -Wl,--build-id "$T/clang-v$v"/*.o -o "$T/cxx-clang-v$v"
done
live clang "$T/cxx-clang-v1" "$T/clang-v1" "$T/clang-v2"
finish
