#!/usr/bin/env bash
# Two fixes of one build. By default a newer patch replaces the older one
# cumulatively: what it leaves out goes back to the original. With --stack
# it keeps the older patch's other functions. Either way revert goes back
# exactly one step: to the older patch, then to the original.
. "$(dirname "$0")/lib.bash"
require_ptrace

O=$HP_BUILD/testdata/CMakeFiles
make_key k
build_patch svc "$T/p2.hpatch" --key "$T/k.key" --id fix-v2 --sequence 2
"$HPDIFF" --old "$O/svc-v1.objs.dir" --new "$O/svc-v3.objs.dir" \
	--binary "$HP_BUILD/testdata/svc-v1" --key "$T/k.key" --id fix-v3 \
	--sequence 3 -o "$T/p3.hpatch" -q >/dev/null
start_target "$HP_BUILD/testdata/svc-v1" "$T/svc.log" 1
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
state() { echo "$(ask 3 version) $(ask 3 'price 10') $(ask 3 'hold 1')"; }
apply() { "$HPATCH" apply -p "$pid" --trust "$T/trust" "$@"; }

check "original" test "$(state)" = "v1 100 held v1"
expect_exit 0 "apply fix-v2" apply "$T/p2.hpatch"
check "v2 everywhere" test "$(state)" = "v2 95 held v2"

expect_exit 0 "fix-v3 replaces fix-v2" apply "$T/p3.hpatch"
check "v3 where it changes, original elsewhere" test "$(state)" = "v3 90 held v1"
check "status: fix-v2 superseded" grep -q '"patch_id":"fix-v2".*"state":"superseded"' <("$HPATCH" status -p "$pid" --json)
expect_exit 3 "fix-v3 again: already applied" apply "$T/p3.hpatch"
expect_exit 10 "fix-v2 over fix-v3: downgrade" apply "$T/p2.hpatch"
expect_exit 0 "revert fix-v3" "$HPATCH" revert -p "$pid"
check "one step back: fix-v2 again" test "$(state)" = "v2 95 held v2"
check "status: fix-v2 active again" grep -q '"patch_id":"fix-v2".*"state":"active"' <("$HPATCH" status -p "$pid" --json)

expect_exit 0 "fix-v3 stacked on fix-v2" apply --stack "$T/p3.hpatch"
check "v3 where it changes, fix-v2 elsewhere" test "$(state)" = "v3 90 held v2"
check "status: fix-v2 partly replaced" grep -q '"patch_id":"fix-v2".*"state":"partly replaced' <("$HPATCH" status -p "$pid" --json)
expect_exit 0 "revert fix-v3" "$HPATCH" revert -p "$pid"
check "fix-v2 again" test "$(state)" = "v2 95 held v2"
expect_exit 0 "revert fix-v2" "$HPATCH" revert -p "$pid"
check "original again" test "$(state)" = "v1 100 held v1"
expect_exit 3 "nothing left to revert" "$HPATCH" revert -p "$pid"

# Revert takes back the patch applied last, even an older sequence applied
# (by downgrade) in the same second as the newer one it stacks on.
expect_exit 0 "fix-v3 again" apply "$T/p3.hpatch"
expect_exit 0 "fix-v2 stacked on it, downgrading" apply --stack \
	--allow-downgrade "$T/p2.hpatch"
check "v2 everywhere" test "$(state)" = "v2 95 held v2"
expect_exit 0 "revert: fix-v2, the last applied" "$HPATCH" revert -p "$pid"
check "fix-v3 again" test "$(state)" = "v3 90 held v1"
expect_exit 0 "revert fix-v3" "$HPATCH" revert -p "$pid"
check "original at last" test "$(state)" = "v1 100 held v1"

# A chain on one function: a third patch carries a function the second
# restored (the original bytes came back through fix-v2's record), and
# reverts go back one step each.
build_patch svc "$T/p4.hpatch" --key "$T/k.key" --id fix-v2b --sequence 4
expect_exit 0 "fix-v2 (downgrade on purpose)" apply --allow-downgrade "$T/p2.hpatch"
expect_exit 0 "fix-v3 replaces it" apply "$T/p3.hpatch"
expect_exit 0 "fix-v2b over what fix-v3 restored" apply "$T/p4.hpatch"
check "v2 everywhere again" test "$(state)" = "v2 95 held v2"
expect_exit 0 "revert fix-v2b" "$HPATCH" revert -p "$pid"
check "fix-v3 back" test "$(state)" = "v3 90 held v1"
expect_exit 0 "revert fix-v3" "$HPATCH" revert -p "$pid"
check "fix-v2 back" test "$(state)" = "v2 95 held v2"
expect_exit 0 "revert fix-v2" "$HPATCH" revert -p "$pid"
check "original once more" test "$(state)" = "v1 100 held v1"
check "no EINTR" test "$(ask 3 eintr)" = 0
exec 3>&-
finish
