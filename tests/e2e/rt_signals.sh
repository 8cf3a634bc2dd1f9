#!/usr/bin/env bash
# Issue 14, case 7: a storm of sigqueue'd real-time signals during apply
# and revert. Every signal arrives exactly once with its si_value and
# si_code (none lost, none merged, none re-sent as a plain signal), every
# failure has a message, and no patch region is left behind.
. "$(dirname "$0")/lib.bash"
require_ptrace

svc_and_patch
n=${HP_E2E_NR_SIGNALS:-30000}
"$HP_TD/hostile" sigqueue "$pid" "$n" >"$T/sender.log" 2>&1 &
sender=$!
PIDS+=($sender)
rounds=0 silent=0 ok=0
while kill -0 "$sender" 2>/dev/null || [ "$rounds" -lt 4 ]; do
	for cmd in "apply -p $pid --trust $T/trust $T/p.hpatch" "revert -p $pid"; do
		rc=0
		"$HPATCH" $cmd >/dev/null 2>"$T/round.err" || rc=$?
		rounds=$((rounds + 1))
		if [ "$rc" -eq 0 ]; then ok=$((ok + 1))
		elif ! grep -q "error" "$T/round.err"; then silent=$((silent + 1)); cat "$T/round.err"
		fi
	done
	[ "$rounds" -lt 400 ] || break
done
wait "$sender" || true
echo "$(cat "$T/sender.log"): $rounds applies and reverts, $ok ok"
check "the sender sent them all" grep -q "^sent $n$" "$T/sender.log"
check "every failure had a message ($silent without)" test "$silent" -eq 0
check "most rounds succeeded ($ok of $rounds)" test "$ok" -ge $((rounds / 2))
for _ in $(seq 50); do
	stats=$(ask 3 rtstats)
	[ "$stats" = "n=$n sum=$((n * (n + 1) / 2)) bad=0" ] && break
	sleep 0.1
done
check "every signal arrived once, with its value and code ($stats)" \
	test "$stats" = "n=$n sum=$((n * (n + 1) / 2)) bad=0"
"$HPATCH" revert -p "$pid" >/dev/null 2>&1 || true
check "no patch region left behind" \
	test -z "$("$HPATCH" status -p "$pid" --json | grep -o '"state":"[a-z ]*"' | grep -v retired)"
check "still answers" test "$(ask 3 version)" = v1
exec 3>&-
finish
