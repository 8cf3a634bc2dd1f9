#!/usr/bin/env bash
# Issue 16, item 2: a fix whose new code calls libc IFUNCs the program
# never called (memcpy, strlen, strchr, strstr; __memcpy_chk too when built
# with _FORTIFY_SOURCE) binds each to the implementation the process would
# get: libc's own IRELATIVE slot where libc calls it itself (memcpy, strlen,
# strchr), else the resolver of hpatch's own copy of the same libc file
# (strstr, __memcpy_chk), never the resolver. A target running with other
# GLIBC_TUNABLES than hpatch (its resolvers may choose otherwise) is
# refused, naming the function, with nothing applied; so is a target that
# forged where its resolver is (hpatch runs only its own copy's).
. "$(dirname "$0")/lib.bash"
require_ptrace

V1=$HP_TD/ifunc-v1
for f in memcpy strlen strchr strstr __memcpy_chk; do
	check "v1 has no PLT entry or GOT slot for $f" \
		bash -c "! readelf -rW --dyn-syms '$V1' | grep -qw '$f'"
done
make_key k
build_patch ifunc "$T/fix.hpatch" --key "$T/k.key"
check "the patch was built" test -s "$T/fix.hpatch"

start_target "$V1" "$T/t.log"
pid=$TARGET_PID
check "v1 runs" wait_result "$T/t.log" 1 "result 1 KEY"
expect_exit 0 "apply" "$HPATCH" apply -p "$pid" --trust "$T/trust" \
	--debug=reloc -v "$T/fix.hpatch"
check "the new code runs: value after '=', 'rest' found" \
	wait_result "$T/t.log" 2 "result 2 value;rest"
for f in memcpy strlen strchr; do
	check "'$f' bound from libc's own slot" \
		grep -q "IFUNC '$f' bound from the slot" "$T/last.err"
done
check "'strstr' bound by the resolver of the same libc" \
	grep -q "IFUNC 'strstr' bound by the resolver" "$T/last.err"
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
check "v1 again" wait_result "$T/t.log" 3 "result 1 KEY"
check "still alive" kill -0 "$pid"

# Tuned otherwise than hpatch: hpatch cannot know the resolver's choice.
GLIBC_TUNABLES=glibc.malloc.check=0 start_target "$V1" "$T/tuned.log"
tuned=$TARGET_PID
check "the tuned target runs v1" wait_result "$T/tuned.log" 1 "result 1 KEY"
expect_exit 1 "refused: IFUNC the process never bound, other tunables" \
	"$HPATCH" apply -p "$tuned" --trust "$T/trust" "$T/fix.hpatch"
check "the refusal names the first such function" \
	grep -Eq "'(strstr|__memcpy_chk)' in '.*libc.so.6' is an IFUNC the process has not bound" \
	"$T/last.err"
check "the hint names GLIBC_TUNABLES" grep -q "hint:.*GLIBC_TUNABLES" "$T/last.err"
sleep 0.1
check "nothing applied: still v1" test "$(grep -c '^result' "$T/tuned.log")" -eq 1

# A hostile target whose libc's .dynsym (its own memory) says strstr's
# resolver is _exit: hpatch calls only the resolver its own copy names.
start_target "$V1" "$T/forged.log" forge
forged=$TARGET_PID
check "the forged target runs v1" wait_result "$T/forged.log" 1 "result 1 KEY"
expect_exit 1 "forged resolver: refused, hpatch runs nothing it names" \
	"$HPATCH" apply -p "$forged" --trust "$T/trust" "$T/fix.hpatch"
check "the refusal names strstr" grep -q "'strstr' in '.*libc.so.6' is an IFUNC" \
	"$T/last.err"
finish
