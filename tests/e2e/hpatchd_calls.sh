#!/usr/bin/env bash
# hpatchd's system calls per process it patches, from an strace of it
# while new processes of a patched build start: in a storm of them, the
# calls are most of its CPU time, so each read it can do without (one it
# made already, or one the runtime makes for it) is counted here.
. "$(dirname "$0")/lib.bash"
require_ptrace
command -v strace >/dev/null || { echo "no strace" >&2; exit 1; }

agent_quick calls
agent_policy '[apply]' 'rescan = 60s' # no periodic scan during the test
agent_install "$T/quick.hpatch"
# glibc's malloc thresholds at their defaults, held there: its own rule
# moves them with the sizes freed so far (a host's history, not ours).
start_agent GLIBC_TUNABLES=glibc.malloc.trim_threshold=131072:glibc.malloc.mmap_threshold=131072

storm() { # storm N: N processes in one second, each waiting to be patched
	"$HP_BUILD/bench/bench_agent_storm" "$1" 1 "$T/storm.out" "$T/bin/quick-v1" >/dev/null
}
storm 10 # the first apply makes what the others reuse
strace -f -o "$T/trace" -p "$AGENT_PID" 2>/dev/null &
tracer=$!
for _ in $(seq 100); do
	grep -q '^TracerPid:[[:space:]]*[1-9]' "/proc/$AGENT_PID/status" && break
	sleep 0.02
done
: >"$T/storm.out"
storm 20
sleep 0.3 # the last applies' records
kill "$tracer"
wait "$tracer" 2>/dev/null || true
n=$(grep -c '^exec [0-9]' "$T/storm.out" || true)
check "every process patched ($n)" test "$n" -eq 20
# The processes it patched while traced.
patched=$(grep -o 'PTRACE_SEIZE, [0-9]*' "$T/trace" | awk '{print $2}' | sort -u)
# locked PID: the line of the trace where the apply locked PID (the byte
# PID << 32 | start time of its lock file: runtime/rt_lock.c).
locked() {
	local line at
	grep -n 'F_SETLK, {l_type=F_WRLCK' "$T/trace" | sed 's/:.*l_start=/ /; s/,.*//' |
		while read -r line at; do
			[ $((at >> 32)) -eq "$1" ] && { echo "$line"; return; }
		done
}
# calls PATTERN PID: how many calls of the trace match PATTERN for PID
# until the apply locks it: what the daemon and the runtime read to know
# who the process is. (After it, the sharers' checks may read more for
# processes the host made meanwhile: not what is counted here.)
calls() {
	local n
	n=$(locked "$2")
	[ -n "$n" ] || { echo 999; return; } # never locked: fails the count
	head -n "$n" "$T/trace" | grep -c -- "${1//PID/$2}" || true
}
# most N PATTERN [COUNT]: PATTERN seen at most N times for any pid
# patched, as COUNT (calls, or all: in the whole trace) counts them.
all() { grep -c -- "${1//PID/$2}" "$T/trace" || true; }
most() {
	local max=0 c p
	for p in $patched; do
		c=$(${3:-calls} "$2" "$p")
		[ "$c" -gt "$max" ] && max=$c
	done
	echo "$max"
	[ "$max" -le "$1" ]
}
nr_patched=$(echo "$patched" | wc -w)
check "the trace saw applies ($nr_patched)" test "$nr_patched" -ge 10
check "/proc/PID/stat read once until the apply locks the process" \
	most 1 'open.*"/proc/PID/stat"'
# The anti-rollback state (runtime/rt_state.c): recorded by the first
# apply (before the trace), read once by each apply's plan after it.
seqs=$(grep -c '\.seq"' "$T/trace" || true)
check "the state file looked at once per apply ($seqs for $nr_patched)" \
	test "$seqs" -le "$nr_patched"
# The executable, read once at the exec (for the policy): the audit line
# has it, though the process (it exits once patched) has none left.
check "/proc/PID/exe read once per process patched" \
	most 1 'readlink("/proc/PID/exe"' all
named() {
	local p
	for p in $patched; do
		grep -q "\"pid\":$p,\"executable\":\"$T/bin/quick-v1\"" "$HPATCH_AUDIT_LOG" || return 1
	done
}
check "the audit names the executable of every process patched" named
# quick loads no libgcc_s: the note that patched frames stay opaque to
# one loaded later is said once for the patch and build, not per process.
notes=$(grep -c 'no unwinder loaded' "$T/hpatchd.log" || true)
check "the unwinder note said once for 30 processes ($notes)" test "$notes" -eq 1
# The wake timer that bounds its waits (runtime/rt_ptrace.c) and its
# handler stay set up from one apply to the next (HP_RT_BATCH): made by
# the first apply, before the trace, and never again.
check "the wake timer made no more ($(grep -c 'timer_create(' "$T/trace" || true))" \
	test "$(grep -c 'timer_create(\|timer_delete(' "$T/trace" || true)" -eq 0
# The store's lock file, open from one pass over the processes due to
# the next (agent/ag_store.c: ag_store_lock): locked and let go, never
# opened again.
check "the store's lock file opened no more" \
	test "$(grep -c "open.*\"$AGENT_STORE/.lock\"" "$T/trace" || true)" -eq 0
# Its own pid: asked once (common/hp_util.c: hp_self_pid), never again.
check "getpid() asked no more" test "$(grep -c 'getpid()' "$T/trace" || true)" -eq 0
# Its heap, grown by the first applies, stays (agent/hpatchd.c: mallopt):
# no apply gives memory back to the kernel at its end to ask for it again
# at the next (a brk down and up, and the pages faulted in again).
trims=$(awk -F'[()]' '/ munmap\(/ { n++ }
	/ brk\(0x/ { if (last && $2 < last) n++; last = $2 }
	END { print n + 0 }' "$T/trace")
check "no memory handed back to the kernel ($trims times)" test "$trims" -eq 0
finish
