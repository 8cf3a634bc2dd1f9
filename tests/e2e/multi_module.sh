#!/usr/bin/env bash
# One patch for a program and the library it loads (hpdiff --and): both
# modules switch in one stop, a fault in either leaves both as they were,
# and one revert takes both back. A process that maps only the library
# gets the library's part.
. "$(dirname "$0")/lib.bash"
require_ptrace

O=$HP_TD/CMakeFiles
make_key k
expect_exit 0 "hpdiff builds one patch for two modules" \
	"$HPDIFF" --old "$O/greet_host-v1.objs.dir" --new "$O/greet_host-v2.objs.dir" \
	--binary "$HP_TD/greet_host" \
	--and --old "$O/greet-v1.objs.dir" --new "$O/greet-v2.objs.dir" \
	--binary "$HP_TD/libgreet-v1.so" \
	--key "$T/k.key" -o "$T/both.hpatch" --json
check "report names each function's module" \
	grep -q '"name":"answer","module":"greet_host"' "$T/last.out"
check "... and the library's" \
	grep -q '"name":"greet_reply","module":"libgreet-v1.so"' "$T/last.out"
"$HPATCH" inspect --trust "$T/trust" --json "$T/both.hpatch" >"$T/inspect.json"
check "inspect lists two modules" \
	test "$(grep -o '"build_id":' "$T/inspect.json" | wc -l)" -eq 2

start_target "$HP_TD/greet_host" "$T/host.log"
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
n=1
check "v1 answers" test "$(ask 3 ann)" = "hello ann (lib v1, call $n, style 1)"

# A fault at the second module's mmap or write, or after some jumps were
# written: nothing of either module may stay.
for step in mmap:2 write:2 jump jump:2; do
	cp "/proc/$pid/maps" "$T/maps.before"
	expect_exit 1 "apply fails at '$step'" \
		env HPATCH_FAULT=$step "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/both.hpatch"
	check "'$step': error names the step" grep -q "fault injected at step" "$T/last.err"
	cat "/proc/$pid/maps" >"$T/maps.after" # cmp trusts st_size, 0 in /proc
	check "'$step': memory map unchanged" cmp -s "$T/maps.after" "$T/maps.before"
	n=$((n + 1))
	check "'$step': program and library still v1" \
		test "$(ask 3 bo)" = "hello bo (lib v1, call $n, style 1)"
done

expect_exit 0 "apply both" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/both.hpatch"
check "result names both modules" grep -q "greet_host,.*libgreet-v1.so" "$T/last.out"
n=$((n + 1))
check "program and library answer v2, counter continues" \
	test "$(ask 3 cy)" = "HELLO cy (lib v2, call $n, style 1) [host v2]"
"$HPATCH" status -p "$pid" --json >"$T/status.json"
check "status lists a region per module" \
	test "$(grep -o '"state":"active"' "$T/status.json" | wc -l)" -eq 2
expect_exit 3 "the same patch again: already applied" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/both.hpatch"

expect_exit 1 "revert fails at the second jump" \
	env HPATCH_FAULT=unjump:2 "$HPATCH" revert -p "$pid"
n=$((n + 1))
check "still fully v2" test "$(ask 3 di)" = "HELLO di (lib v2, call $n, style 1) [host v2]"
expect_exit 0 "one revert takes both back" "$HPATCH" revert -p "$pid"
n=$((n + 1))
check "program and library v1 again" \
	test "$(ask 3 ed)" = "hello ed (lib v1, call $n, style 1)"
expect_exit 3 "nothing left to revert" "$HPATCH" revert -p "$pid"

exec 3>&-

# A process that maps only the library gets the library's part; once it
# loads a second library of the patch, applying again adds that one.
expect_exit 0 "hpdiff: one patch for two libraries" \
	"$HPDIFF" --old "$O/greet-v1.objs.dir" --new "$O/greet-v2.objs.dir" \
	--binary "$HP_TD/libgreet-v1.so" \
	--and --old "$O/tlslib-v1.objs.dir" --new "$O/tlslib-v2.objs.dir" \
	--binary "$HP_TD/libtlslib-v1.so" \
	--key "$T/k.key" -o "$T/libs.hpatch"
mkfifo "$T/in"
"$HP_TD/lib_user" <"$T/in" >"$T/user.out" &
user=$!
exec 4>"$T/in"
say() { # say CMD PATTERN: send a command, wait for a line matching PATTERN
	echo "$1" >&4
	for _ in $(seq 50); do grep -q "$2" "$T/user.out" && return 0; sleep 0.1; done
	return 1
}
for _ in $(seq 50); do grep -q ready "$T/user.out" && break; sleep 0.1; done
expect_exit 0 "apply the program+library patch to a library-only process" \
	"$HPATCH" apply -p "$user" --trust "$T/trust" "$T/both.hpatch"
check "only the library was patched" grep -q "module: .*libgreet-v1.so" "$T/last.out"
check "... not the program" bash -c "! grep -q greet_host '$T/last.out'"
check "library answers v2" say greet "HELLO x (lib v2, call 1"
expect_exit 0 "revert it" "$HPATCH" revert -p "$user"

expect_exit 0 "apply the two-library patch: one is loaded" \
	"$HPATCH" apply -p "$user" --trust "$T/trust" "$T/libs.hpatch"
check "loads the second library" say load loaded
check "second library still v1 (steps by 1)" say tl "^tl 1001$"
expect_exit 0 "apply again: the newly loaded library" \
	"$HPATCH" apply -p "$user" --trust "$T/trust" "$T/libs.hpatch"
check "says the first was already patched" grep -q "libgreet-v1.so: patch 'libs' already applied" "$T/last.err"
check "patches the second" grep -q "module: .*libtlslib-v1.so" "$T/last.out"
check "second library v2 now (steps by 2)" say tl "^tl 1003$"
expect_exit 3 "apply a third time: all applied" \
	"$HPATCH" apply -p "$user" --trust "$T/trust" "$T/libs.hpatch"
expect_exit 0 "one revert takes both libraries back" "$HPATCH" revert -p "$user"
check "first library v1 again" say greet "hello x (lib v1"
check "second library v1 again (steps by 1)" say tl "^tl 1004$"
exec 4>&-
wait "$user"

# Two patches of different builds, each with its own sequence (above those
# of the patches above, which the host recorded): revert takes back the one
# applied last, whatever the sequences say.
now=$(date +%s)
open_conn 3 "$TARGET_PORT"
"$HPDIFF" --old "$O/greet_host-v1.objs.dir" --new "$O/greet_host-v2.objs.dir" \
	--binary "$HP_TD/greet_host" --key "$T/k.key" --id host-fix \
	--sequence $((now + 1000)) -o "$T/host.hpatch" -q >/dev/null
"$HPDIFF" --old "$O/greet-v1.objs.dir" --new "$O/greet-v2.objs.dir" \
	--binary "$HP_TD/libgreet-v1.so" --key "$T/k.key" \
	--id lib-fix --sequence $((now + 10)) -o "$T/lib.hpatch" -q >/dev/null
expect_exit 0 "apply the program's patch (the higher sequence)" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/host.hpatch"
expect_exit 0 "then the library's (a lower one)" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/lib.hpatch"
n=$((n + 1))
check "both v2" test "$(ask 3 fa)" = "HELLO fa (lib v2, call $n, style 1) [host v2]"
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
check "it took back the library's patch, the last applied" \
	grep -q "patch: lib-fix" "$T/last.out"
n=$((n + 1))
check "the program still v2, the library v1" \
	test "$(ask 3 gu)" = "hello gu (lib v1, call $n, style 1) [host v2]"
expect_exit 0 "revert again: the program's" "$HPATCH" revert -p "$pid"
check "... host-fix" grep -q "patch: host-fix" "$T/last.out"
exec 3>&-
finish
