#!/usr/bin/env bash
# Issue 14, case 10: the smaller ways hpatch failed an operator. The
# fallback runs at normal priority; --all over a service whose processes
# come and go treats an exited process as nothing to do; a full disk
# refuses before anything is patched; a traced target names its tracer; a
# directory or FIFO given as the patch says so; a zombie is "gone";
# --timeout cannot overflow; options may follow FILE; a target at its
# address-space limit is told apart.
. "$(dirname "$0")/lib.bash"
require_ptrace
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root (mount)" >&2; exit 77; }

make_key k
unique_build svc "$T/svc" "$T/p.hpatch" --key "$T/k.key" --id p
start_target "$T/svc" "$T/svc.log" 1
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
apply() { "$HPATCH" apply --trust "$T/trust" "$@"; }

# --on-refuse: the loader runs SCHED_FIFO; its fallback must not.
hold_cmd="echo hold 3000 >&3"
eval "$hold_cmd"
sleep 0.2
expect_exit 4 "busy: refused after --timeout" apply -p "$pid" --timeout 200 \
	--on-refuse "ps -o cls= -p \$\$ > $T/fallback.cls" "$T/p.hpatch"
check "the fallback ran at normal priority ($(cat "$T/fallback.cls" 2>/dev/null))" \
	test "$(tr -d ' ' <"$T/fallback.cls")" = TS
read -r -t 5 _ <&3

# Options after FILE, as with most tools.
expect_exit 0 "options after FILE" apply "$T/p.hpatch" -p "$pid"
check "v2" test "$(ask 3 version)" = v2
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"

# --all over a service that forks short-lived processes: one exits while
# hpatch works on another. Nothing to patch there: no failure, no fallback.
start_target "$T/svc" "$T/svc2.log" 1
short=$TARGET_PID
(sleep 0.3; kill -9 "$short") &
HPATCH_DELAY=mmap:600 expect_exit 0 "--all: a process that exited meanwhile is no failure" \
	apply --all --on-refuse "echo \$HPATCH_PID >> $T/fallback.all" "$T/p.hpatch"
check "no fallback ran" test ! -e "$T/fallback.all"
check "the exit is noted, not an error ($(grep -m2 error "$T/last.err" || true))" bash -c "! grep -q 'error' '$T/last.err'"
check "the live one runs v2" test "$(ask 3 version)" = v2
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
# Killed while hpatch works on it (whichever order --all takes them in):
# one message, that it exited; no error made up from its empty memory.
start_target "$T/svc" "$T/svc3.log" 1
gone=$TARGET_PID
(sleep 0.3; kill -9 "$gone") &
HPATCH_DELAY=mmap:600 expect_exit 1 "-p of a process killed mid-apply" \
	apply -p "$gone" "$T/p.hpatch"
check "says that it exited, and nothing else ($(grep -c error "$T/last.err") errors)" \
	bash -c "grep -q 'pid $gone: the process exited' '$T/last.err' && test \$(grep -c error '$T/last.err') -eq 1"

# A full disk: the audit line or the anti-rollback state could not be
# written, so nothing is patched.
mkdir "$T/full"
mount -t tmpfs -o size=64k,mode=0755 tmpfs "$T/full"
trap 'umount "$T/full" 2>/dev/null || true; cleanup' EXIT
dd if=/dev/zero of="$T/full/fill" bs=4k count=100 2>/dev/null || true
expect_exit 1 "audit log on a full disk: refused before patching" \
	apply -p "$pid" --audit-log "$T/full/audit.log" "$T/p.hpatch"
check "says the record cannot be written" grep -q "'$T/full.*no space" "$T/last.err"
check "still v1" test "$(ask 3 version)" = v1
expect_exit 1 "state directory on a full disk: refused before patching" \
	env HPATCH_STATE_DIR="$T/full" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
check "says so" grep -q "'$T/full.*no space" "$T/last.err"
check "still v1" test "$(ask 3 version)" = v1
umount "$T/full"

# A traced process: name the tracer.
"$HP_TD/hostile" trace "$pid" >"$T/tracer.log" 2>&1 &
tracer=$!
PIDS+=($tracer)
for _ in $(seq 50); do grep -q ready "$T/tracer.log" && break; sleep 0.05; done
expect_exit 1 "a traced target: refused" apply -p "$pid" "$T/p.hpatch"
check "names the tracer's pid and name" grep -q "traced by pid $tracer ('hostile')" "$T/last.err"
kill -9 "$tracer"
wait "$tracer" 2>/dev/null || true

# A patch path that is a directory or a FIFO.
mkfifo "$T/fifo"
expect_exit 1 "a directory as the patch" apply -p "$pid" "$T"
check "says it is not a regular file" grep -q "'$T': not a regular file" "$T/last.err"
expect_exit 1 "a FIFO as the patch" apply -p "$pid" "$T/fifo"
check "says it is not a regular file" grep -q "'$T/fifo': not a regular file" "$T/last.err"

# A zombie: gone, not a system error.
bash -c "\"$T/svc\" 0 >/dev/null 2>&1 & exec sleep 100" &
parent=$!
PIDS+=($parent)
for _ in $(seq 100); do
	zombie=$(pgrep -P "$parent" | head -1 || true)
	[ -n "$zombie" ] && break
	sleep 0.05
done
sleep 0.2
kill -9 "$zombie"
sleep 0.2
check "the child is a zombie" grep -q '^State:.*Z' "/proc/$zombie/status"
expect_exit 1 "a zombie: refused" apply -p "$zombie" --json "$T/p.hpatch"
check "as HP_E_GONE" grep -q '"result":"HP_E_GONE"' "$T/last.out"
check "saying it exited" grep -q "pid $zombie: .*exited" "$T/last.err"

# --timeout: no overflow into "no time at all".
expect_exit 2 "--timeout too large: a usage error" apply -p "$pid" --timeout 9223372036854775807 "$T/p.hpatch"
check "says the limit" grep -q -- "--timeout.*at most" "$T/last.err"
expect_exit 2 "--timeout beyond long: a usage error" apply -p "$pid" --timeout 99999999999999999999 "$T/p.hpatch"
check "still v1" test "$(ask 3 version)" = v1
exec 3>&-

# At its address-space limit (RLIMIT_AS, soft): the target's mmap of the
# region fails; said so, with where the limit is, and nothing changed.
start_target "$T/svc" "$T/svc2.log" 1
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
vm=$(awk '/^VmSize:/ { print $2 }' "/proc/$pid/status")
prlimit --pid "$pid" --as=$((vm * 1024 + 4096)):unlimited
expect_exit 1 "at its RLIMIT_AS: refused" apply -p "$pid" "$T/p.hpatch"
check "the region's mmap named" \
	grep -q "pid $pid: its mmap of the patch region ([0-9]* bytes at 0x[0-9a-f]*) failed: Cannot allocate memory" "$T/last.err"
check "the limit hinted" grep -q "address-space limit (RLIMIT_AS: prlimit --pid $pid)" "$T/last.err"
check "nothing mapped" no_patch "$pid"
check "it serves, v1" test "$(ask 3 version)" = v1
prlimit --pid "$pid" --as=unlimited:unlimited
expect_exit 0 "the limit lifted: applied" apply -p "$pid" "$T/p.hpatch"
exec 3>&-
finish
