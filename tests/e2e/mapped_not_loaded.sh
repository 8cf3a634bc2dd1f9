#!/usr/bin/env bash
# Issue 14, case 5: a process that only maps the binary file (a Python
# mmap, libelf, gdb, perf) is no running instance of it: neither -p nor
# --all may stop it, map anything into it or call it patched. Only a
# loaded image, an executable mapping of the module's text, is a target.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
unique_build svc "$T/svc" "$T/p.hpatch" --key "$T/k.key" --id p
start_target "$T/svc" "$T/svc.log" 1
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
start_target "$HP_TD/hostile" "$T/mapper.log" mapfile "$T/svc"
mapper=$TARGET_PID
check "the mapper maps the file" grep -q "$T/svc" "/proc/$mapper/maps"
cat "/proc/$mapper/maps" >"$T/maps.before"

expect_exit 9 "-p of a process that only maps the file: no target" \
	"$HPATCH" apply -p "$mapper" --trust "$T/trust" "$T/p.hpatch"
check "says it maps no module of that build" grep -q "pid $mapper: maps no module" "$T/last.err"
expect_exit 0 "--all: patches the running instance" \
	"$HPATCH" apply --all --trust "$T/trust" --json "$T/p.hpatch"
check "the instance is patched" grep -q "\"pid\":$pid,\"action\":\"apply\",\"result\":\"ok\"" "$T/last.out"
check "the mapper is not listed" bash -c "! grep -q '\"pid\":$mapper,' '$T/last.out'"
check "v2 in the instance" test "$(ask 3 version)" = v2
expect_exit 0 "revert the instance" "$HPATCH" revert -p "$pid"
expect_exit 0 "--all --jobs 1 (the scan in this process): applies" \
	"$HPATCH" apply --all --jobs 1 --trust "$T/trust" --json "$T/p.hpatch"
check "the instance is patched" grep -q "\"pid\":$pid,\"action\":\"apply\",\"result\":\"ok\"" "$T/last.out"
check "the mapper is not listed" bash -c "! grep -q '\"pid\":$mapper,' '$T/last.out'"
cat "/proc/$mapper/maps" >"$T/maps.after"
check "nothing was mapped into the mapper" cmp -s "$T/maps.before" "$T/maps.after"
expect_exit 0 "status of the mapper lists no patch" "$HPATCH" status -p "$mapper" --json
check "... none" grep -q '"patches":\[\]' "$T/last.out"
check "the mapper still runs" kill -0 "$mapper"
expect_exit 0 "revert the instance" "$HPATCH" revert -p "$pid"
check "v1 again" test "$(ask 3 version)" = v1
exec 3>&-
finish
