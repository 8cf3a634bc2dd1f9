#!/usr/bin/env bash
# A function in use on a thread's stack: apply backs off and retries until
# --timeout, then refuses with exit 4 naming the thread and the function
# and runs the --on-refuse fallback; once idle the same apply succeeds.
# --allow-active applies while the old code is still running. What each
# try meets is said once, not at every try, and the outcome once.
. "$(dirname "$0")/lib.bash"
require_ptrace

# once WHAT: one line of $T/last.err matches WHAT; no_repeats: no line
# is said twice; tries: how many tries $T/last.out counts.
once() { test "$(grep -c -- "$1" "$T/last.err")" -eq 1; }
no_repeats() { test -z "$(sort "$T/last.err" | uniq -d)"; }
tries() { sed -n 's/^ *tries: //p' "$T/last.out"; }

make_key k
build_patch svc "$T/svc.hpatch" --key "$T/k.key"
start_target "$HP_TD/svc-v1" "$T/svc.log" 1
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
open_conn 4 "$TARGET_PORT"
ask 4 version >/dev/null # its thread exists
htid=$(newest_tid "$pid")

echo "hold 2500" >&4 # a thread now sleeps inside hold()
wait_thread "$pid" "$htid" sleep
expect_exit 4 "busy: refused after the timeout" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" --timeout 400 \
	--on-refuse "echo \"\$HPATCH_PID \$HPATCH_REASON \$HPATCH_PATCH\" > $T/fallback" "$T/svc.hpatch"
check "message names the function" grep -q "'hold' still in use" "$T/last.err"
check "message names the thread" grep -q "tid [0-9]" "$T/last.err"
check "hint says what to do" grep -q "hint: .*--allow-active" "$T/last.err"
check "hint names a restart for a function that never returns" \
	grep -q "hint: if 'hold' never returns.*restart" "$T/last.err"
check "fallback ran with pid, reason and patch file" \
	grep -q "^$pid HP_E_BUSY.* $T/svc.hpatch$" "$T/fallback"
check "tries were repeated" grep -qE 'tries: ([2-9]|[1-9][0-9]+)' "$T/last.out"
check "the outcome said once" once "'hold' still in use"
check "no line said twice" no_repeats
check "still v1" test "$(ask 3 version)" = v1
IFS= read -r -t 5 held <&4
check "the held call finished in v1" test "$held" = "held v1"
expect_exit 0 "idle now: apply succeeds" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/svc.hpatch"
check "v2" test "$(ask 3 version)" = v2
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"

# A thread born after hpatch read the memory map, its stack in a mapping
# hpatch had not seen, is checked all the same: busy.
HPATCH_DELAY=mmap:700 "$HPATCH" apply -p "$pid" --trust "$T/trust" \
	--timeout 300 "$T/svc.hpatch" >"$T/late.out" 2>"$T/late.err" &
hp=$!
sleep 0.3
open_conn 5 "$TARGET_PORT"
echo "hold 2000" >&5 # a new thread, asleep inside hold()
rc=0
wait "$hp" || rc=$?
check "a thread born meanwhile in hold(): busy (exit $rc)" test "$rc" -eq 4
check "... naming hold" grep -q "'hold' still in use" "$T/late.err"
IFS= read -r -t 5 held <&5
check "that call finished in v1" test "$held" = "held v1"
exec 5>&-

# A process sharing the memory (clone(CLONE_VM)), born after the first
# look, living past the timeout: each try's look since meets it. Its
# refusal and hint were said at every try (21 times in 1 s), and the
# outcome named "tid 0" as a thread that would not stop.
HPATCH_DELAY=mmap:1000 "$HPATCH" apply -p "$pid" --trust "$T/trust" \
	--timeout 2500 "$T/svc.hpatch" >"$T/last.out" 2>"$T/last.err" &
hp=$!
wait_until 10 grep -q "test delay" "$T/last.err"
# hpatch held there (no thread of the target stopped yet) until the sharer
# is born: before its switch's look however slow the host is to ask. (It
# went on past its delay on a loaded host, and patched: exit 0.) The
# timeout runs from the apply's start: 1 s of it goes in the delay, and
# what a loaded host takes to answer here is not left to chance (a
# first try past 1 s ended it at once: one try).
kill -STOP "$hp"
sharer=$(ask 4 "share 6000")
kill -CONT "$hp"
rc=0
wait "$hp" || rc=$?
check "a sharer came since the first look: busy (exit $rc)" test "$rc" -eq 4
check "... retried ($(tries) tries)" test "$(tries)" -gt 1
check "... the sharer named once" once "shares its memory with pid $sharer"
check "... its hint once" once "hint: a vfork child shares only"
check "... the outcome once, naming the cause" \
	once "pid $pid: still shares its memory with another process after 2500 ms"
check "... no thread named as would not stop" \
	bash -c "! grep -q 'tid [0-9]* would not stop' '$T/last.err'"
check "... no line said twice" no_repeats
check "still v1" test "$(ask 3 version)" = v1
# (Its leader left at once: its thread alone runs, and shares.)
alone_left() { ! ls "/proc/$1/task" 2>/dev/null | grep -qvx "$1"; }
check "the sharer ends" wait_until 10 alone_left "$sharer"

echo "hold 1500" >&4
wait_thread "$pid" "$htid" sleep
expect_exit 0 "--allow-active applies while hold() runs" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" --allow-active "$T/svc.hpatch"
failed=$FAILED
check "warning names the thread inside hold()" \
	grep -qE "allow-active.*1 thread still in old code.*tid [0-9]+ below 'hold' \(blocked" "$T/last.err"
[ "$FAILED" -eq "$failed" ] || sed 's/^/  hpatch: /' "$T/last.err"
check "new calls run v2" test "$(ask 3 version)" = v2
IFS= read -r -t 5 held <&4
check "the running call finished in old code" test "$held" = "held v1"
check "a new hold runs new code" test "$(ask 3 'hold 1')" = "held v2"
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"

# A thread running (not blocked) in a function hold() calls: its
# instruction pointer is elsewhere, its stack says it returns into hold().
echo "hold -1500" >&4
wait_thread "$pid" "$htid" run
expect_exit 0 "--allow-active applies while a callee of hold() runs" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" --allow-active "$T/svc.hpatch"
check "warning names the running thread below hold()" \
	grep -qE "allow-active.*1 thread still in old code.*tid [0-9]+ below 'hold'$" "$T/last.err"
IFS= read -r -t 5 held <&4
check "that call finished in old code" test "$held" = "held v1"
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"

# A revert while a thread runs the patch's own code: that code stays
# mapped, marked retired, until a later hpatch finds it unused.
expect_exit 0 "apply" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/svc.hpatch"
echo "hold 1200" >&4 # now sleeping inside the patch's hold()
wait_thread "$pid" "$htid" sleep
expect_exit 0 "revert --allow-active while the patch's hold() runs" \
	"$HPATCH" revert -p "$pid" --allow-active
"$HPATCH" status -p "$pid" --json >"$T/status.json"
region=$(sed -n 's/.*"region":"0x\([0-9a-f]*\)".*/\1/p' "$T/status.json")
check "status: the patch is retired" grep -q '"state":"retired"' "$T/status.json"
check "its code is still mapped" grep -q "^$region-" "/proc/$pid/maps"
check "new calls run v1" test "$(ask 3 version)" = v1
IFS= read -r -t 5 held <&4
check "the running call finished in the patch's code" test "$held" = "held v2"
# That thread may still hold a pointer into the region (the string hold()
# returned lives there), which keeps it. Once the thread is gone, a later
# hpatch finds it unused and unmaps it.
exec 4>&-
sleep 0.3
expect_exit 3 "a later hpatch: nothing to revert" "$HPATCH" revert -p "$pid"
check "... and it unmapped the unused code" \
	bash -c "! grep -q '^$region-' /proc/$pid/maps"
check "status lists no patch" \
	bash -c "! grep -q patch_id <('$HPATCH' status -p $pid --json)"
check "no EINTR" test "$(ask 3 eintr)" = 0
exec 3>&-
finish
