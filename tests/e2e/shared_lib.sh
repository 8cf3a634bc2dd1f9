#!/usr/bin/env bash
# A shared library (-fPIC) patched inside the process that loaded it: the
# patch is matched by the library's build-id, its file-local state and
# its GOT-addressed exported global stay the running process's.
. "$(dirname "$0")/lib.bash"
require_ptrace

O=$HP_TD/CMakeFiles
make_key k
"$HPDIFF" --old "$O/greet-v1.objs.dir" --new "$O/greet-v2.objs.dir" \
	--binary "$HP_TD/libgreet-v1.so" --key "$T/k.key" -o "$T/lib.hpatch" -q
start_target "$HP_TD/greet_host" "$T/host.log"
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
check "v1 library answers" test "$(ask 3 ann)" = "hello ann (lib v1, call 1, style 1)"
expect_exit 0 "apply to the library" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/lib.hpatch"
check "report names the library" grep -q "module: .*libgreet-v1.so" "$T/last.out"
check "v2 answers, counter continues" \
	test "$(ask 3 bob)" = "HELLO bob (lib v2, call 2, style 1)"
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
check "v1 again, counter continues" \
	test "$(ask 3 cy)" = "hello cy (lib v1, call 3, style 1)"
exec 3>&-
finish
