#!/usr/bin/env bash
# Issue 14, case 1: processes that share memory without being threads of
# one process (a vfork child, any clone(CLONE_VM) child). Patching one of
# them writes the memory of all while only its own threads are stopped:
# hpatch must refuse, naming the others, and -p CHILD, -p PARENT and
# --all alike leave the code untouched until they part, whether a target
# asks every process (-p, a few targets) or looks in an index of the host
# (-p over 8 targets or more, --all always: built by each worker, or by
# hpatch itself with --jobs 1, before its first target).
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
unique_build svc "$T/svc" "$T/p.hpatch" --key "$T/k.key" --id p
start_target "$T/svc" "$T/svc.log" 1
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
open_conn 4 "$TARGET_PORT"
# until hpatch (pid $1) holds every thread, for the stop
held_by() {
	for _ in $(seq 200); do
		[ "$(awk '/^TracerPid:/ { print $2 }' "/proc/$(newest_tid "$pid")/status")" = "$1" ] &&
			[ "$(awk '/^TracerPid:/ { print $2 }' "/proc/$pid/status")" = "$1" ] && return
		sleep 0.01
	done
}
apply() { "$HPATCH" apply --trust "$T/trust" --timeout 300 "$@" "$T/p.hpatch"; }

# A vfork child that shares the memory until killed below (20 s at most:
# the checks meanwhile must not outlast it on a loaded host).
echo "vfork 20000" >&3
for _ in $(seq 50); do
	child=$(pgrep -P "$pid" | head -1 || true)
	[ -n "$child" ] && break
	sleep 0.02
done
check "the vfork child is there ($child)" test -n "$child"
cat "/proc/$pid/maps" >"$T/maps.before"
expect_exit 4 "-p CHILD: refused, busy" apply -p "$child"
check "names the process it shares memory with" \
	grep -q "pid $child: shares its memory with pid $pid" "$T/last.err"
expect_exit 4 "-p PARENT: refused, busy" apply -p "$pid"
check "names the child" grep -q "pid $pid: shares its memory with pid $child" "$T/last.err"
expect_exit 4 "--all: refused, busy" apply --all
check "names the pair" test "$(grep -c 'shares its memory' "$T/last.err")" = 2
for jobs in 1 4; do
	expect_exit 4 "--all --jobs $jobs: refused, busy" apply --all --jobs "$jobs"
	check "names the pair" test "$(grep -c 'shares its memory' "$T/last.err")" = 2
done
check "the service's code is untouched" test "$(ask 4 version)" = v1
others=()
for i in $(seq 7); do
	start_target "$T/svc" "$T/other.$i.log" 0
	others+=("$TARGET_PID")
done
expect_exit 4 "--all over 9 (the index): the pair refused" apply --all --json
check "names both, once each" test "$(grep -c 'shares its memory' "$T/last.err")" = 2
check "the 7 others applied" test "$(grep -o '"result":"ok"' "$T/last.out" | wc -l)" = 7
check "the pair's results say why, not 'function is in use'" test \
	"$(grep -o '"result":"HP_E_BUSY","reason":"its memory shared with pid [0-9]*' "$T/last.out" | wc -l)" = 2
check "the service's code is still untouched" test "$(ask 4 version)" = v1
for o in "${others[@]}"; do kill "$o"; done
cat "/proc/$pid/maps" >"$T/maps.after"
check "nothing was mapped" cmp -s "$T/maps.before" "$T/maps.after"
kill "$child"
IFS= read -r -t 6 _ <&3
# A vfork begun after the check, while hpatch holds the threads (600 ms
# at the seize, before the stop): the thread in it stops for no
# interrupt, and the bounded stop names the child it waits for.
HPATCH_DELAY=seize:600 "$HPATCH" apply --trust "$T/trust" --timeout 1000 \
	-p "$pid" "$T/p.hpatch" >"$T/hp.out" 2>"$T/hp.err" &
hp=$!
held_by "$hp"
echo "vfork 2500" >&3
wait "$hp" && rc=0 || rc=$?
check "a vfork begun meanwhile: busy (exit $rc)" test "$rc" -eq 4
child=$(sed -n 's/.*it waits for pid \([0-9]*\), its vfork child.*/\1/p' "$T/hp.err")
check "names the vfork child that shares its memory ($child)" test -n "$child"
check "still v1" test "$(ask 4 version)" = v1
IFS= read -r -t 6 _ <&3
expect_exit 0 "once the child has exited: applied" apply -p "$pid"
check "v2" test "$(ask 4 version)" = v2
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
# A clone(CLONE_VM) child made after the check, while hpatch holds the
# threads: it stops for nothing and would run on through the writes, so
# once the threads are stopped, what was created since the check is
# asked too (here a child whose leader leaves, its thread sharing).
HPATCH_DELAY=seize:600 "$HPATCH" apply --trust "$T/trust" --timeout 300 \
	-p "$pid" "$T/p.hpatch" >"$T/hp.out" 2>"$T/hp.err" &
hp=$!
held_by "$hp"
sharer=$(ask 3 "share 2000")
wait "$hp" && rc=0 || rc=$?
check "a clone(CLONE_VM) child made meanwhile: busy (exit $rc)" test "$rc" -eq 4
check "names it ($sharer)" \
	grep -q "pid $pid: shares its memory with pid $sharer " "$T/hp.err"
check "still v1" test "$(ask 4 version)" = v1
check "once it has gone: applied" wait_until 8 apply -p "$pid"
check "v2" test "$(ask 4 version)" = v2
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
# A clone(CLONE_VM) child whose leader has left (its own thread runs on),
# there before hpatch looks: the leader has no memory to compare, so the
# child is asked through its live thread, whether every process is asked
# (-p) or the index is (--all).
sharer=$(ask 3 "share 2500")
check "its leader has left ($sharer)" \
	wait_until 5 grep -q '^State:.*Z' "/proc/$sharer/status"
expect_exit 4 "-p, its leader gone: refused, busy" apply -p "$pid"
check "names it" grep -q "pid $pid: shares its memory with pid $sharer " "$T/last.err"
for jobs in 1 4; do
	expect_exit 4 "--all --jobs $jobs, its leader gone: refused, busy" \
		apply --all --jobs "$jobs"
	check "names it" grep -q "pid $pid: shares its memory with pid $sharer " "$T/last.err"
done
check "still v1" test "$(ask 4 version)" = v1
check "once it has gone: applied" wait_until 8 apply -p "$pid"
check "v2" test "$(ask 4 version)" = v2
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
exec 3>&- 4>&-

# The same, target and hpatch run as a user who is not root (as hpatch
# may be, on his own processes): kcmp() against the kernel's kthreadd is
# refused him, and the sharer must still be found.
AS=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
chmod 755 "$T"
chmod -R a+rX "$T/svc" "$T/p.hpatch" "$T/trust"
install -d -o nobody "$T/nb-state"
install -o nobody -m 600 /dev/null "$T/nb-audit.log"
"${AS[@]}" "$T/svc" 1 >"$T/nb.log" 2>&1 &
PIDS+=($!)
nb=$!
for _ in $(seq 200); do grep -q ready "$T/nb.log" && break; sleep 0.05; done
port=$(sed -n 's/.*ready pid=[0-9]* port=\([0-9]*\).*/\1/p' "$T/nb.log" | head -1)
open_conn 3 "$port"
open_conn 4 "$port"
sharer=$(ask 3 "share 20000")
check "its leader has left ($sharer, user nobody)" \
	wait_until 5 grep -q '^State:.*Z' "/proc/$sharer/status"
expect_exit 4 "-p as nobody, its leader gone: refused, busy" \
	"${AS[@]}" env HPATCH_STATE_DIR="$T/nb-state" HPATCH_AUDIT_LOG="$T/nb-audit.log" \
	"$HPATCH" apply --trust "$T/trust" --timeout 300 -p "$nb" "$T/p.hpatch"
check "names it" grep -q "pid $nb: shares its memory with pid $sharer " "$T/last.err"
check "still v1" test "$(ask 4 version)" = v1
kill -9 "$sharer" 2>/dev/null || true
exec 3>&- 4>&-
finish
