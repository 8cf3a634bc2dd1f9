#!/usr/bin/env bash
# A kill -9 of hpatch (apply -p, an --all worker, revert) at every step
# the runtime can be held at (HPATCH_DELAY, runtime/rt_patch.c), in a
# process of threads and in one of one thread (held from the mapping to
# the switch): the target must end as before, or fully patched. As
# before: every thread's blocked and pending signals, its scheduling
# class, priority and nice value, no tracer, none stopped, the same
# limits; it answers, v1 or v2, and no patch region is active but the
# one of v2. A region mapped and not switched to is left (inactive) and
# the next apply unmaps it: then nothing is mapped but its own region.
# The targets run SCHED_BATCH at nice 2 with signals blocked and some
# pending (one for the process, one for a thread), so a changed mask, a
# signal taken or a policy not given back shows.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
unique_build svc "$T/svc-v1" "$T/p.hpatch" --key "$T/k.key" --id "p-$$"
mkdir -p "$T/all"
unique_build svc "$T/all/svc-v1" "$T/all.hpatch" --key "$T/k.key" --id "a-$$"
build_patch unwind "$T/w.hpatch" --key "$T/k.key" --id "w-$$"
PY=$(python3 -c 'import sys; print(sys.executable)')
# The target's signals: 39 and 40 (SIGRTMIN+5, +6) blocked in every
# thread from its start (a mask is inherited through exec and clone).
BLOCK='import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, [39, 40])
os.execv(sys.argv[1], sys.argv[1:])'
TGKILL='import ctypes, sys
ctypes.CDLL(None).syscall(234, int(sys.argv[1]), int(sys.argv[2]), 40)'

# launch NAME BIN ARGS...: the target, as $pid, with its pending signals.
n=0
launch() {
	local name=$1 bin=$2 tid; shift 2
	n=$((n + 1))
	start_target nice "$T/$name.$n.log" -n 2 chrt -b 0 "$PY" -c "$BLOCK" \
		"$bin" "$@"
	pid=$TARGET_PID
	port=$TARGET_PORT
	[ -n "$port" ] || wait_until 5 grep -q '^round ' "$T/$name.$n.log"
	log=$T/$name.$n.log
	# Its first connection installs glibc's handlers of a thread (seen
	# in SigCgt); svc WORKERS has a sleeper and a waiter for each.
	if [ -n "$port" ]; then
		check "$name: a first answer ($(version))" \
			threads_back "$pid" $((1 + 2 * $1))
	fi
	kill -39 "$pid"
	tid=$(newest_tid "$pid")
	"$PY" -c "$TGKILL" "$pid" "$tid"
}

# state PID: what a patcher may touch and must give back, per thread.
state() {
	local p=$1 tid
	for tid in $(ls "/proc/$p/task" | sort -n); do
		echo "tid $tid" $(awk '/^(SigPnd|ShdPnd|SigBlk|SigIgn|SigCgt|TracerPid|NoNewPrivs|Seccomp|Cpus_allowed_list):/ {print $1 $2}
			/^State:/ {print ($2 ~ /^[tT]/ ? "State:stopped" : "State:running")}' \
			"/proc/$p/task/$tid/status")
	done
	ps -L -o tid=,cls=,rtprio=,ni= -p "$p" | sed 's/^ */sched /'
	sed 's/^/limit /' "/proc/$p/limits"
	echo "oom_score_adj $(cat "/proc/$p/oom_score_adj")"
	echo "timerslack $(cat "/proc/$p/timerslack_ns")"
}
# active PID: the addresses of its active regions; others: any other.
active() {
	"$HPATCH" status -p "$1" --json | grep -o '"state":"active","region":"0x[0-9a-f]*"' |
		sed 's/.*"region":"0x\([0-9a-f]*\)"/\1/'
}
others() {
	"$HPATCH" status -p "$1" --json | grep -o '"state":"[^"]*"' | grep -v '"active"' || true
}
# maps PID: its private anonymous mappings readable, not writable (where
# a patch region's header and code go), but those of its active regions.
maps() {
	local a act
	act=" $(active "$1" | tr '\n' ' ')"
	awk 'NF == 5 && $2 ~ /^r-/ {print $1}' "/proc/$1/maps" | {
		local skip=0 end=
		while IFS=- read -r lo hi; do
			if [[ "$act" == *" $lo "* ]] || [ "$skip" = 1 -a "$lo" = "$end" ]; then
				skip=1 end=$hi
				continue
			fi
			skip=0
			echo "$lo-$hi"
		done
	}
}
rounds_past() { test "$(grep -c '^round ' "$log")" -gt "$1"; }
# version: what the target answers ("none": nothing).
version() {
	local v
	if [ -n "$port" ]; then
		exec 4<>"/dev/tcp/127.0.0.1/$port" || { echo none; return; }
		echo version >&4
		IFS= read -r -t 5 v <&4 || v=none
		exec 4>&-
	else
		local mark
		mark=$(grep -c '^round ' "$log")
		wait_until 10 rounds_past "$((mark + 1))" || true
		v=$(tail -n +"$((mark + 2))" "$log" | grep '^round ' | tail -n 1 |
			sed -n 's/.* caller=\([0-9]*\) .*/v\1/p')
	fi
	echo "${v:-none}"
}
released() { # released PID: no tracer, no thread stopped
	! grep -q '^TracerPid:[[:space:]]*[1-9]' /proc/"$1"/task/*/status &&
		! grep -q '^State:[[:space:]]*[tT]' /proc/"$1"/task/*/status
}
same_state() { test "$s0" = "$(state "$pid")"; } # (sweep's s0)
inside() { grep -q "test delay: .* at step '$1'" "$2" 2>/dev/null; }
# threads_back PID N: the connection threads of earlier questions gone.
has_tasks() { test "$(nr_tasks "$1")" -eq "$2"; }
threads_back() {
	wait_until 20 has_tasks "$1" "$2" || {
		echo "pid $1: $(nr_tasks "$1") threads, want $2" >&2
		return 1
	}
}

# one_patch PID: one patch, active, and no other region.
one_patch() { test "$(active "$1" | wc -l)" -eq 1 -a -z "$(others "$1")"; }

# sweep NAME OP STEP WANT_V: hpatch OP ("apply -p", "apply --all",
# "revert") held at STEP on the target launched last, killed -9 there,
# then the target checked against what it was just before.
sweep() {
	local name=$1 op=$2 step=$3 hp err=$T/$1.$2.$3.err v s0 m0 tasks failed
	local -a args
	case $op in
	apply-p) args=(apply -p "$pid" --trust "$T/trust" "$patch") ;;
	apply-all) args=(apply --all --jobs 1 --trust "$T/trust" "$patch") ;;
	revert) args=(revert -p "$pid") ;;
	esac
	tasks=$(nr_tasks "$pid")
	s0=$(state "$pid")
	m0=$(maps "$pid")
	HPATCH_DELAY=$step:4000 "$HPATCH" "${args[@]}" >/dev/null 2>"$err" &
	hp=$!
	check "$name $op $step: hpatch held at the step" wait_until 10 inside "$step" "$err"
	# hpatch alone: --all --jobs 1 forks no worker (hpatch_jobs.c), and
	# its only child, the guard, must live (a kill of hpatch's children
	# named hpatch hit one just forked, not yet named hpatch-guard).
	kill -9 "$hp" 2>/dev/null || true
	wait "$hp" 2>/dev/null || true
	check "$name $op $step: no tracer, no thread stopped" wait_until 5 released "$pid"
	check "$name $op $step: the target runs" kill -0 "$pid"
	v=$(version)
	check "$name $op $step: it answers, v1 or v2 ($v)" test "$v" = v1 -o "$v" = v2
	threads_back "$pid" "$tasks" || true
	# (A raised thread's policy comes back from hpatch's guard process,
	# at its own pace.)
	wait_until 5 same_state || diff <(echo "$s0") <(state "$pid") >&2 || true
	check "$name $op $step: signals, scheduling, limits as before" same_state
	if [ "$v" = v2 ]; then
		check "$name $op $step: v2, one active patch" test "$(active "$pid" | wc -l)" -eq 1
	else
		check "$name $op $step: v1, no active patch" test -z "$(active "$pid")"
	fi
	# A region mapped and not switched to (killed before the switch,
	# or before the revert unmapped it) is left, inactive; the next
	# hpatch on the process unmaps it (hp_collect_retired). Before its
	# header is written (mprotect, write) no hpatch knows it for one:
	# the next apply leaves it, a known leftover of a kill in those
	# microseconds, which must be that one region alone; so too while
	# its unwinder call runs (call-start, call-run), its magic cleared:
	# its table may be registered or not (docs/UNWIND.md).
	check "$name $op $step: a region left is inactive ($(others "$pid" | tr '\n' ' '))" \
		test -z "$(others "$pid" | grep -vx '"state":"inactive"')" -a \
		"$(others "$pid" | wc -l)" -le 1
	expect_exit "$([ "$v" = v2 ] && echo 3 || echo 0)" \
		"$name $op $step: the next apply" "$HPATCH" apply -p "$pid" \
		--trust "$T/trust" --debug=ptrace "$patch"
	failed=$FAILED
	# The leftover stays while a thread points into it (an unwinder's
	# local on the stack of a thread that throws, its table registered).
	check "$name $op $step: then one patch, active, nothing else ($(others "$pid" | tr '\n' ' '))" \
		collected --apply "$patch" "$pid" one_patch "$pid"
	# (Failed: why, as the next apply said.)
	[ "$FAILED" = "$failed" ] || grep -E 'kept|error|warning' "$T/last.err" >&2 || true
	case " $UNFOUND " in
	*" $step "*) check "$name $op $step: nothing else mapped but the unfound region" \
		one_run <(echo "$m0") <(maps "$pid") ;;
	*) check "$name $op $step: nothing else mapped" test "$m0" = "$(maps "$pid")" ;;
	esac
}
# one_run BEFORE AFTER: AFTER is BEFORE and one more run of mappings.
one_run() {
	local lo hi end= n=0
	while IFS=- read -r lo hi; do
		[ -z "$end" ] || [ "$lo" = "$end" ] || return 1
		end=$hi n=$((n + 1))
	done < <(comm -13 <(sort "$1") <(sort "$2"))
	test -z "$(comm -23 <(sort "$1") <(sort "$2"))" -a "$n" -ge 1
}

# Inside the first injected system call (the region's mmap, made at the
# C library's "syscall; ret"): just set (sys-start), at its entry's stop
# (sys-run), at its exit's (sys-exit); the thread makes the call as
# hpatch dies, or has made it: its region stays mapped, unknown, and the
# thread returns through its signal frame. (The test faults call,
# call-late and call-queued make a call outlive its bound: no kill.)
UNFOUND="mprotect write call-start call-run sys-start sys-run sys-exit"
APPLY_STEPS="mmap sys-start sys-run sys-exit mprotect write seize stop jump"
REVERT_STEPS="seize stop unjump"
done_with() { kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }

patch=$T/p.hpatch
for step in $APPLY_STEPS; do
	launch svc "$T/svc-v1" 2
	sweep threads apply-p "$step"
	done_with
done
for step in ${APPLY_STEPS/seize /}; do # one thread: held, never seized
	launch svc "$T/svc-v1" 0
	sweep alone apply-p "$step"
	done_with
done
for step in $REVERT_STEPS; do
	launch svc "$T/svc-v1" 2
	expect_exit 0 "threads: applied before the revert" \
		"$HPATCH" apply -p "$pid" --trust "$T/trust" "$patch"
	sweep threads revert "$step"
	done_with
done
patch=$T/all.hpatch
for step in mmap write stop jump; do
	launch svc "$T/all/svc-v1" 2
	sweep threads apply-all "$step"
	done_with
done
# The unwinder's registration (a C++ program: libgcc's unwinder loaded):
# before its call, inside it (just set, just resumed: tests/e2e/
# unwind_killed.sh), after it.
patch=$T/w.hpatch
for step in unwind call-start call-run stop; do
	launch unwind "$HP_TD/unwind-v1"
	sweep unwind apply-p "$step"
	done_with
done
finish
