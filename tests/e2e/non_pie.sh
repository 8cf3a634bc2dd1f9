#!/usr/bin/env bash
# A non-PIE executable (ET_EXEC, no load bias, absolute addresses): apply,
# check state and behaviour, revert.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch svc_nopie "$T/p.hpatch" --key "$T/k.key"
start_target "$HP_TD/svc_nopie-v1" "$T/svc.log" 1
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
check "v1" test "$(ask 3 version)-$(ask 3 next)" = "v1-1"
# With _FORTIFY_SOURCE, gcc's code for serve (the connection loop) differs
# between v1 and v2 without a change of its own (its callees' register use
# differs), so the patch replaces it too, and a thread is always in it.
active=()
[ "$HP_FLAVOUR" != debian ] || active=(--allow-active)
expect_exit 0 "apply" "$HPATCH" apply -p "$pid" --trust "$T/trust" "${active[@]}" "$T/p.hpatch"
check "v2, static local kept" test "$(ask 3 version)-$(ask 3 next)" = "v2-1002"
check "price" test "$(ask 3 'price 10')" = 95
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
check "v1 again" test "$(ask 3 version)-$(ask 3 next)" = "v1-3"
check "no EINTR" test "$(ask 3 eintr)" = 0
exec 3>&-
finish
