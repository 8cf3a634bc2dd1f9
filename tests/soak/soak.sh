#!/usr/bin/env bash
# Soak (not in CI): hostile targets under apply/revert loops for N
# minutes (issue 14). Targets: a service under a storm of real-time
# signals; one whose threads vfork and wait for children; one under a
# seccomp filter that allows what hpatch needs and one under a filter
# that would kill it; one that re-execs itself; one whose threads are
# born and die; a process that only maps the binary; and hpatch itself
# killed with SIGTERM now and then, or made to outlive an injected
# call's bound (the owed step, HPATCH_FAULT=call*). Asserts at the end:
# no target died (each death printed with its signal), every failure had
# a message, no patch region leaked, every real-time signal arrived once
# with its value. Prints the counts and the failures' messages.
#   usage: HP_BUILD=build bash tests/soak/soak.sh [MINUTES]
. "$(dirname "$0")/../e2e/lib.bash"
minutes=${1:-5}
end=$(($(date +%s) + minutes * 60))
T0=$(date +%s)

make_key k
build_patch svc "$T/svc.hpatch" --key "$T/k.key" --id soak
build_patch churn "$T/churn.hpatch" --key "$T/k.key" --id soak-churn
H=$HP_BUILD/testdata/hostile
declare -A kind port
spawn() { # spawn NAME CMD...: start a target, remember its kind and port
	local name=$1; shift
	start_target "$1" "$T/$name.log" "${@:2}"
	kind[$TARGET_PID]=$name
	port[$TARGET_PID]=$TARGET_PORT
}
spawn signals "$HP_BUILD/testdata/svc-v1" 2
sig_pid=$TARGET_PID
spawn vfork "$HP_BUILD/testdata/svc-v1" 2
vfork_pid=$TARGET_PID
spawn seccomp-ok "$H" seccomp other "$HP_BUILD/testdata/svc-v1" 1
spawn seccomp-kill "$H" seccomp kill-process "$HP_BUILD/testdata/svc-v1" 1
spawn reexec "$HP_BUILD/testdata/svc-v1" 1
reexec_pid=$TARGET_PID
spawn churn "$HP_BUILD/testdata/churn-v1" 4
start_target "$H" "$T/mapper.log" mapfile "$HP_BUILD/testdata/svc-v1"
mapper=$TARGET_PID

# The hostile neighbours, in the background until the end.
nsig=0
(
	while [ "$(date +%s)" -lt "$end" ]; do
		"$H" sigqueue "$sig_pid" 2000 >/dev/null 2>&1 || break
		echo 2000 >>"$T/signals.sent"
	done
) &
loops=($!)
(
	exec 5<>"/dev/tcp/127.0.0.1/${port[$vfork_pid]}"
	while [ "$(date +%s)" -lt "$end" ]; do
		for c in "vfork 30" "waitchild 80" "vfork 5"; do
			echo "$c" >&5
			read -r -t 5 _ <&5 || true
		done
	done
) &
loops+=($!)
(
	while [ "$(date +%s)" -lt "$end" ]; do
		sleep 3
		p=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' "$T/reexec.log" | tail -1)
		exec 6<>"/dev/tcp/127.0.0.1/$p" && echo reexec >&6 && exec 6>&- || true
	done
) &
loops+=($!)

rounds=0 ok=0 silent=0 killed=0 owed=0
declare -A codes bykind tries oks msgs
attempt() { # attempt PID ACTION ARGS...
	local pid=$1 rc=0 err fault=; shift
	# Now and then an injected call outlives its bound, in each order.
	if [ $((RANDOM % 20)) -eq 0 ]; then
		fault=(call call-late call-queued)
		fault=${fault[RANDOM % 3]}
		owed=$((owed + 1))
	fi
	tries[$1]=$((${tries[$1]:-0} + 1))
	HPATCH_FAULT=$fault "$HPATCH" "$@" >/dev/null 2>"$T/err" &
	local hp=$!
	if [ $((RANDOM % 25)) -eq 0 ]; then
		sleep "0.00$((RANDOM % 10))"
		kill -TERM "$hp" 2>/dev/null && killed=$((killed + 1))
	fi
	wait "$hp" || rc=$?
	rounds=$((rounds + 1))
	if [ "$rc" -eq 0 ]; then
		ok=$((ok + 1))
		oks[$1]=$((${oks[$1]:-0} + 1))
	elif [ "$rc" -ne 143 ]; then
		err=$(grep -v "fault injected" "$T/err" | grep -m1 -o 'error: .*' || true)
		[ -z "$err" ] || { err=$(sed -E 's/[0-9]+/N/g' <<<"$err"); msgs[$err]=$((${msgs[$err]:-0} + 1)); }
		if [ -z "$err" ] && [ "$rc" -ne 3 ]; then
			silent=$((silent + 1))
			echo "silent failure (exit $rc) on ${kind[$pid]}: $(cat "$T/err")"
		fi
		codes[$rc]=$((${codes[$rc]:-0} + 1))
		bykind[${kind[$pid]}:$rc]=$((${bykind[${kind[$pid]}:$rc]:-0} + 1))
	fi
}
while [ "$(date +%s)" -lt "$end" ]; do
	for pid in "${!kind[@]}"; do
		kill -0 "$pid" 2>/dev/null || continue
		patch=$T/svc.hpatch
		[ "${kind[$pid]}" = churn ] && patch=$T/churn.hpatch
		extra=()
		[ $((RANDOM % 3)) -eq 0 ] && extra=(--allow-active)
		attempt "$pid" apply -p "$pid" --trust "$T/trust" --timeout 500 "${extra[@]}" "$patch"
		attempt "$pid" revert -p "$pid" --timeout 500 "${extra[@]}"
	done
done
wait "${loops[@]}" 2>/dev/null || true

# The end: every process alive, every patch reverted, nothing leaked.
deaths=0 leaked=0
for pid in "${!kind[@]}" "$mapper"; do
	if ! kill -0 "$pid" 2>/dev/null; then
		deaths=$((deaths + 1))
		rc=0
		wait "$pid" 2>/dev/null || rc=$?
		echo "DIED: ${kind[$pid]:-mapper} (pid $pid), exit $rc$([ "$rc" -gt 128 ] && echo ": signal $(kill -l $((rc - 128)))")"
		continue
	fi
	for _ in 1 2 3 4 5; do
		"$HPATCH" revert -p "$pid" --timeout 2000 >/dev/null 2>&1 || break
	done
	# An apply first collects what no thread uses any more.
	"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/svc.hpatch" >/dev/null 2>&1 &&
		"$HPATCH" revert -p "$pid" >/dev/null 2>&1 || true
	n=$("$HPATCH" status -p "$pid" --json | grep -o '"state":"[a-z ]*"' | grep -vc retired || true)
	[ "$n" -eq 0 ] || { leaked=$((leaked + n)); echo "LEAK: $n regions in ${kind[$pid]:-mapper}"; "$HPATCH" status -p "$pid"; }
done
sent=$(awk '{ s += $1 } END { print s + 0 }' "$T/signals.sent" 2>/dev/null || echo 0)
exec 3<>"/dev/tcp/127.0.0.1/${port[$sig_pid]}"
stats=$(ask 3 rtstats)
exec 3>&-
n=${stats#n=}; n=${n%% *}
bad=${stats##*bad=}
echo "soak: $((($(date +%s) - T0))) s (load: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "soak: $rounds rounds: ${tries[apply]:-0} applies (${oks[apply]:-0} ok), ${tries[revert]:-0} reverts (${oks[revert]:-0} ok); hpatch killed $killed times, owed-step faults $owed"
printf 'soak: failures by exit code:'; for c in "${!codes[@]}"; do printf ' %s=%s' "$c" "${codes[$c]}"; done; echo
printf 'soak: by target:exit:'; for c in "${!bykind[@]}"; do printf ' %s=%s' "$c" "${bykind[$c]}"; done; echo
echo "soak: failures' messages (numbers as N):"
for m in "${!msgs[@]}"; do printf '%6d  %s\n' "${msgs[$m]}" "$m"; done | sort -rn | head -20
echo "soak: target deaths $deaths, failures without a message $silent, regions leaked $leaked"
echo "soak: real-time signals sent ${sent}, received $n, without their code $bad (a batch cut short by the end is not counted as sent)"
check "no target died" test "$deaths" -eq 0
check "every failure had a message" test "$silent" -eq 0
check "no region leaked" test "$leaked" -eq 0
check "every signal sent arrived, with its code" test "$bad" -eq 0 -a "$n" -ge "$sent"
finish
