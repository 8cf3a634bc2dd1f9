# Shared helpers for end-to-end scenarios (sourced, not run).
# Needs HP_BUILD (build dir). Each scenario gets a scratch dir in $T and
# its processes are killed on exit.
set -euo pipefail

: "${HP_BUILD:?HP_BUILD must name the build directory}"
# The built testdata of one flavour (see testdata/CMakeLists.txt).
: "${HP_TD:=$HP_BUILD/testdata}"
: "${HP_FLAVOUR:=sections}"

# flavour_cflags: the compiler flags of the flavour, for a test that
# compiles its own program (as testdata/CMakeLists.txt does).
flavour_cflags() {
	if [ "$HP_FLAVOUR" = debian ]; then
		. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/debian-source.bash"
		echo "$(hp_debian_flags CFLAGS) $(hp_debian_flags CPPFLAGS)"
	else
		echo "-O2 -g -ffunction-sections -fdata-sections"
	fi
}
HPDIFF=$HP_BUILD/differ/hpdiff
HPATCH=$HP_BUILD/runtime/hpatch
HPSIGN=$HP_BUILD/signing/hpsign
T=$(mktemp -d)
export HPATCH_AUDIT_LOG=$T/audit.log
export HPATCH_STATE_DIR=$T/state
PIDS=()
PASSED=0
FAILED=0

# show_logs: on a failure, what the test's hpatchd and last command said,
# for a failure seen only in a CI log (the scratch dir is gone by then).
show_logs() {
	local f
	for f in "$T/hpatchd.log" "$T/last.err"; do
		[ -s "$f" ] || continue
		echo "--- the last lines of $(basename "$f"):" >&2
		tail -n 40 "$f" >&2
	done
}
cleanup() {
	local rc=$?
	[ "$rc" -eq 0 ] && [ "$FAILED" -eq 0 ] || show_logs
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	# The perf maps hpatch wrote for them (runtime/rt_perfmap.c).
	for p in "${PIDS[@]}"; do rm -f "/tmp/perf-$p.map"; done
	# ... and hpatchd for every process it patched (a storm's: hundreds)
	# that has exited since: a map left is another's for its pid.
	if [ -f "$T/hpatchd.log" ]; then
		for p in $(grep -o 'pid [0-9]*: applied' "$T/hpatchd.log" | awk '{print $2}' | tr -d :); do
			[ -d "/proc/$p" ] || rm -f "/tmp/perf-$p.map"
		done
	fi
	rm -rf "$T"
}
trap cleanup EXIT

# unharmed PID: it runs, nothing traces it, its signal mask is its own
# (none blocked, as every test target's).
unharmed() {
	check "pid $1 runs" kill -0 "$1"
	check "nothing traces pid $1" wait_until 3 bash -c \
		"grep -q '^TracerPid:[[:space:]]*0$' /proc/$1/status"
	check "pid $1's signal mask is its own" \
		test "$(awk '/^SigBlk:/ { print $2 }' "/proc/$1/status")" = 0000000000000000
}

# freezer_cgroup: a freezer cgroup of the test's own, $FZ, removed on exit:
# v1's freezer, else cgroup v2's (HP_TEST_FREEZER=v2: v2's where both
# are); freeze, thaw, frozen (wholly), join PID (every thread, at once:
# one made meanwhile, a connection's, would stay out of it otherwise),
# leave_fz.
freezer_cgroup() {
	if [ "${HP_TEST_FREEZER:-}" != v2 ] && [ -w /sys/fs/cgroup/freezer ]; then
		FZ=/sys/fs/cgroup/freezer/hpatch-test-$$
		freeze() { echo FROZEN >"$FZ/freezer.state"; }
		thaw() { echo THAWED >"$FZ/freezer.state"; }
		frozen() { [ "$(cat "$FZ/freezer.state")" = FROZEN ]; }
		join() { echo "$1" >"$FZ/cgroup.procs"; }
		leave_fz() { local t; for t in $(cat "$FZ/tasks"); do echo "$t" >/sys/fs/cgroup/freezer/tasks; done; }
	else
		FZ_ROOT=/sys/fs/cgroup
		[ -f "$FZ_ROOT/cgroup.controllers" ] || FZ_ROOT=/sys/fs/cgroup/unified
		FZ=$FZ_ROOT/hpatch-test-$$
		freeze() { echo 1 >"$FZ/cgroup.freeze"; }
		thaw() { echo 0 >"$FZ/cgroup.freeze"; }
		frozen() { grep -qx "frozen 1" "$FZ/cgroup.events"; }
		join() { echo "$1" >"$FZ/cgroup.procs"; }
		leave_fz() { local p; for p in $(cat "$FZ/cgroup.procs"); do echo "$p" >"$FZ_ROOT/cgroup.procs"; done; }
	fi
	mkdir "$FZ"
	trap 'thaw 2>/dev/null; leave_fz 2>/dev/null; rmdir "$FZ" 2>/dev/null; cleanup' EXIT
}

# thread_freezer: a cgroup v1 freezer of the test's own, $FZ, removed on
# exit, for threads alone (v1's freezer takes single threads: write a tid
# to $FZ/tasks); the test is skipped (77) where v1's is not mounted.
# thaw_all thaws it and moves every task out.
thread_freezer() {
	if [ ! -w /sys/fs/cgroup/freezer ]; then
		echo "skip: needs cgroup v1's freezer, to freeze one thread alone" >&2
		exit 77
	fi
	FZ=/sys/fs/cgroup/freezer/hpatch-test-$$
	mkdir "$FZ"
	thaw_all() {
		echo THAWED >"$FZ/freezer.state"
		for t in $(cat "$FZ/tasks"); do echo "$t" >/sys/fs/cgroup/freezer/tasks; done
	}
	trap 'thaw_all 2>/dev/null; rmdir "$FZ" 2>/dev/null; cleanup' EXIT
}

# apply_frozen WHAT PATTERN [MS]: apply $T/p.hpatch to $pid, frozen
# (WHAT: a thread of it, or all): busy (exit 4) at once, within MS (2000),
# not at --timeout, saying PATTERN (grep).
apply_frozen() {
	local start ms
	start=$(date +%s%N)
	expect_exit 4 "apply -p: busy, $1" \
		"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
	ms=$((($(date +%s%N) - start) / 1000000))
	check "given up at once ($ms ms)" test "$ms" -lt "${3:-2000}"
	check "says why: $2" grep -q "$2" "$T/last.err"
}

# frozen_mid_apply [CMD...]: hpatch, run through CMD, applies $T/p.hpatch
# to $pid (in $FZ, on connection 3), which is frozen once hpatch holds it
# (it has mapped; its mprotect waits 1.5 s): busy (exit 4), with why; and
# thawed, the target runs on unharmed, v1, then is patched.
frozen_mid_apply() {
	local freezer
	fz_held() { grep -q '^State:[[:space:]]*t' "/proc/$1/status"; }
	(wait_until 10 fz_held "$pid" && freeze) &
	freezer=$!
	HPATCH_DELAY=mprotect:1500 expect_exit 4 "apply -p: busy, frozen mid-apply" \
		"$@" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
	wait "$freezer"
	check "the hint says why" grep -q "its cgroup is frozen" "$T/last.err"
	check "refused at its mprotect, the region mapped" \
		grep -q "cannot fill the patch region" "$T/last.err"
	thaw
	sleep 0.3
	unharmed "$pid"
	check "thawed: pid $pid serves v1" test "$(ask 3 version)" = v1
	expect_exit 0 "then applied" "$@" "$HPATCH" apply -p "$pid" \
		--trust "$T/trust" "$T/p.hpatch"
	check "v2" test "$(ask 3 version)" = v2
}

# ptrace must work; if it cannot, the test is skipped (77), which CI fails.
require_ptrace() {
	if [ -r /proc/sys/kernel/yama/ptrace_scope ] &&
		[ "$(cat /proc/sys/kernel/yama/ptrace_scope)" -ge 2 ] &&
		[ "$(id -u)" -ne 0 ]; then
		echo "skip: ptrace_scope forbids attaching" >&2
		exit 77
	fi
}

ok() { PASSED=$((PASSED + 1)); echo "ok: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*" >&2; }
check() { # check DESC CMD...
	local desc=$1; shift
	if "$@"; then ok "$desc"; else fail "$desc"; fi
}
finish() {
	echo "$(basename "$0" .sh): $PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}

# start_target BIN LOG ARGS...: start, wait for "ready pid=N port=P".
start_target() {
	local bin=$1 log=$2; shift 2
	"$bin" "$@" >"$log" 2>&1 &
	PIDS+=($!)
	TARGET_PID=$!
	for _ in $(seq 200); do # 10 s: a loaded host is slow to start
		if grep -qs "ready" "$log"; then
			TARGET_PORT=$(sed -n 's/.*ready pid=[0-9]* port=\([0-9]*\).*/\1/p' "$log" | head -1)
			return 0
		fi
		sleep 0.05
	done
	echo "target did not start: $(cat "$log")" >&2
	return 1
}

# wait_result LOG N TEXT: until the N-th "result" line of LOG is TEXT (a
# target that prints a line whenever its answer changes).
wait_result() {
	for _ in $(seq 250); do
		[ "$(grep '^result' "$1" | sed -n "$2p")" = "$3" ] && return 0
		sleep 0.02
	done
	echo "$1: $(cat "$1")" >&2
	return 1
}

# wait_round_in LOG PATTERN: a "round" line of LOG (a target that prints
# one per round of its work: testdata unwind) printed after now, matching.
# Every line counted, not the rounds alone: a log with other lines (the
# lock's "held") would have the last rounds taken for new ones.
wait_round_in() {
	local mark
	mark=$(wc -l <"$1")
	for _ in $(seq 100); do
		if tail -n +"$((mark + 1))" "$1" | grep '^round ' | grep -q -- "$2"; then
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# make_key NAME: a signing key in $T and a trust dir $T/trust holding it.
make_key() {
	"$HPSIGN" keygen "$T/$1" >/dev/null
	mkdir -p "$T/trust"
	cp "$T/$1.pub" "$T/trust/"
}

# ask FD REQUEST: send one line on an open connection, print the reply.
ask() {
	local fd=$1 line
	echo "$2" >&"$fd"
	IFS= read -r -t 5 line <&"$fd"
	printf '%s\n' "$line"
}

# ask_coproc NAME REQUEST: send one line to bash's coprocess NAME, print
# its one-line answer ("none" after 10 s).
ask_coproc() {
	local -n cp=$1
	local line
	echo "$2" >&"${cp[1]}"
	IFS= read -r -t 10 line <&"${cp[0]}" || line=none
	printf '%s\n' "$line"
}

nr_tasks() { ls "/proc/$1/task" | wc -l; }
# newest_tid PID: the thread started last (a connection's, right after
# the connection answered once).
newest_tid() { ls "/proc/$1/task" | sort -n | tail -n 1; }
# wait_thread PID TID sleep|run: until that thread sleeps in nanosleep
# (a held call blocked) or runs in user space (a held call burning), so a
# test does not guess how long a loaded host takes to get it there.
wait_thread() {
	local nr _ i
	for i in $(seq 250); do
		read -r nr _ <"/proc/$1/task/$2/syscall" 2>/dev/null || return 1
		case "$3:$nr" in
		sleep:35 | sleep:230 | run:running) return 0 ;;
		esac
		sleep 0.02
	done
	return 1
}

# collected [--apply FILE] PID CMD...: CMD holds (a patch region gone,
# say), at once or once a later hpatch has collected what an hpatch kept:
# a thread stopped inside the patch's code, or a stale stack word (the
# scan is conservative), keeps a region until an hpatch finds it unused.
# Each hpatch collects first: revert again (nothing to revert), or with
# --apply, apply FILE again (already applied) where the patch must stay.
collected() {
	local -a again=(revert)
	local _
	[ "$1" != --apply ] || { again=(apply --trust "$T/trust" "$2"); shift 2; }
	local pid=$1; shift
	for _ in $(seq 30); do
		"$@" && return 0
		"$HPATCH" "${again[@]}" -p "$pid" >/dev/null 2>&1 || true
		sleep 0.1
	done
	"$@"
}

# open_conn FD PORT: a TCP connection to the target on file descriptor FD.
open_conn() { eval "exec $1<>/dev/tcp/127.0.0.1/$2"; }

# expect_exit CODE DESC CMD...: run CMD, check its exit status.
expect_exit() {
	local want=$1 desc=$2 rc=0; shift 2
	"$@" >"$T/last.out" 2>"$T/last.err" || rc=$?
	if [ "$rc" -eq "$want" ]; then ok "$desc (exit $rc)"
	else fail "$desc: exit $rc, want $want: $(head -c 600 "$T/last.err")"; fi
}

# build_patch NAME OUT [HPDIFF ARGS...]: signed patch for testdata pair NAME.
build_patch() {
	local name=$1 out=$2; shift 2
	"$HPDIFF" --old "$HP_TD/CMakeFiles/$name-v1.objs.dir" \
		--new "$HP_TD/CMakeFiles/$name-v2.objs.dir" \
		--binary "$HP_TD/$name-v1" -o "$out" -q "$@" >/dev/null
}

# hpatchd in the foreground on its own store, state and audit log in $T,
# reaching only processes whose executable is under $T/bin (its policy,
# $T/hpatch.conf, says so: other tests' targets are never touched).
HPATCHD=$HP_BUILD/agent/hpatchd
AGENT_STORE=$T/store
agent_policy() { # agent_policy [LINES...]: the policy file
	mkdir -p "$T/bin"
	{
		printf '[include]\nexe = %s/bin/*\n' "$T"
		printf '%s\n' "$@"
	} >"$T/hpatch.conf"
}
# agent_svc NAME: key k, patch $T/svc.hpatch of svc (id NAME-PID, in $id)
# and svc-v1 under $T/bin; agent_install [PATCH]: PATCH (that patch by
# default) installed in the test's store.
agent_svc() {
	make_key k
	id=$1-$$
	build_patch svc "$T/svc.hpatch" --key "$T/k.key" --id "$id"
	mkdir -p "$T/bin"
	cp "$HP_TD/svc-v1" "$T/bin/"
}
# agent_quick NAME: key k, patch $T/quick.hpatch of quick (id NAME-PID, in
# $id) and quick-v1 under $T/bin.
agent_quick() {
	make_key k
	id=$1-$$
	"$HPDIFF" --old "$HP_TD/CMakeFiles/quick-v1.objs.dir" \
		--new "$HP_TD/CMakeFiles/quick-v2.objs.dir" \
		--binary "$HP_TD/quick-v1" --key "$T/k.key" --id "$id" \
		-o "$T/quick.hpatch" -q >/dev/null
	mkdir -p "$T/bin"
	cp "$HP_TD/quick-v1" "$T/bin/"
}
agent_install() {
	expect_exit 0 "install" "$HPATCH" install --store "$AGENT_STORE" \
		--trust "$T/trust" "${1:-$T/svc.hpatch}"
}
# start_agent [ENV=VALUE...]: start hpatchd (with ${AGENT_ARGS[@]} too),
# wait for ready. Its output goes to $AGENT_OUT ($T/hpatchd.log unless
# set: a pipe that a test copies there, say).
AGENT_ARGS=()
start_agent() {
	env "$@" "$HPATCHD" --store "$AGENT_STORE" --trust "$T/trust" \
		--state-dir "$HPATCH_STATE_DIR" --audit-log "$HPATCH_AUDIT_LOG" \
		--config "$T/hpatch.conf" --foreground "${AGENT_ARGS[@]}" \
		>>"${AGENT_OUT:-$T/hpatchd.log}" 2>&1 &
	AGENT_PID=$!
	PIDS+=("$AGENT_PID")
	for _ in $(seq 100); do
		grep -q "ready:" "$T/hpatchd.log" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "hpatchd did not start: $(cat "$T/hpatchd.log")" >&2
	return 1
}
# busy_host_start: three loops start processes as fast as they can (none
# of a test's build), each living half a second, as a busy host does (a
# build server, cron); their pids in BUSY_LOOPS. busy_host_stop ends them.
busy_host_start() {
	BUSY_LOOPS=()
	for _ in 1 2 3; do
		bash -c 'while :; do (sleep 0.5 &); done' &
		BUSY_LOOPS+=($!)
	done
	PIDS+=("${BUSY_LOOPS[@]}")
	sleep 0.5
}
busy_host_stop() { kill "${BUSY_LOOPS[@]}"; }
# wait_until SECONDS CMD...: retry CMD every 20 ms until it succeeds.
wait_until() {
	local end=$((SECONDS + $1)); shift
	until "$@"; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.02
	done
}
# above N CMD...: CMD prints a number above N. CMD runs at each call: as
# wait_until's command, a test "$(CMD)" -gt N is expanded once, before the
# first, and never sees the number grow.
above() {
	local n=$1; shift
	[ "$("$@")" -gt "$n" ] 2>/dev/null
}
# agent_hups: the SIGHUPs hpatchd has taken so far.
agent_hups() { grep -c 'SIGHUP: reloading' "$T/hpatchd.log" || true; }
# has_patch PID ID: patch ID is active in PID.
has_patch() {
	"$HPATCH" status -p "$1" --json 2>/dev/null |
		grep -q "\"patch_id\":\"$2\",[^}]*\"state\":\"active\""
}
no_patch() { ! "$HPATCH" status -p "$1" --json 2>/dev/null | grep -q '"state":"active"'; }
# lacks_patch PID ID: patch ID is not active in PID (another test's, say
# of an apply --all, may be).
lacks_patch() { ! has_patch "$1" "$2"; }
# store_svc NAME: key k, patch of svc (id NAME-PID, in $id) installed in
# the store $S ($T/store), for hpatch uninstall without hpatchd.
store_svc() {
	S=$T/store
	make_key k
	id=$1-$$
	build_patch svc "$T/svc.hpatch" --key "$T/k.key" --id "$id"
	expect_exit 0 "install" "$HPATCH" install --store "$S" \
		--trust "$T/trust" "$T/svc.hpatch"
}
# agent_patched_target: svc-v1 of $T/bin started (its pid in $a), then
# hpatchd, which patches it with the test's patch ($id), its passes done.
agent_patched_target() {
	start_target "$T/bin/svc-v1" "$T/a.log" 1
	a=$TARGET_PID
	start_agent
	check "pid $a patched" wait_until 10 has_patch "$a" "$id"
	sleep 0.5 # its passes done: only its lasting fds are open
}
# agent_no_fds [N]: hpatchd ($AGENT_PID) at its limit of open files: its
# soft limit the lowest fd number it has free (plus N), so no open of its
# can succeed (N more); agent_fds_back: its limit as before.
agent_no_fds() {
	local n=0
	read -r AGENT_NOFILE_SOFT AGENT_NOFILE_HARD < <(prlimit \
		--pid "$AGENT_PID" --nofile --raw --noheadings -o SOFT,HARD)
	while [ -e "/proc/$AGENT_PID/fd/$n" ]; do n=$((n + 1)); done
	prlimit --pid "$AGENT_PID" --nofile="$((n + ${1:-0})):$AGENT_NOFILE_HARD"
}
agent_fds_back() {
	prlimit --pid "$AGENT_PID" \
		--nofile="$AGENT_NOFILE_SOFT:$AGENT_NOFILE_HARD"
}

# build_id_offset ELF: the file offset of ELF's build-id bytes, read from
# the section headers (the id may hold any byte: no searching for it).
build_id_offset() {
	local off namesz
	off=$(readelf -SW "$1" |
		sed -n 's/.*\.note\.gnu\.build-id *NOTE *[0-9a-f]* \([0-9a-f]*\) .*/\1/p')
	[ -n "$off" ] || { echo "build_id_offset: $1 has no .note.gnu.build-id" >&2; return 1; }
	namesz=$(od -An -tu4 -j "$((16#$off))" -N4 "$1")
	echo $((16#$off + 12 + (namesz + 3) / 4 * 4))
}

# unique_copy SRC DST: a copy DST of the ELF file SRC with a build-id of
# its own (4 random bytes), so that 'apply --all' finds this test's
# processes and no other test's.
unique_copy() {
	local at
	cp "$1" "$2"
	at=$(build_id_offset "$2")
	head -c 4 /dev/urandom | dd of="$2" bs=1 seek="$at" conv=notrunc 2>/dev/null
}

# unique_build NAME BIN PATCH [HPDIFF ARGS...]: a unique_copy BIN of
# NAME-v1, and a signed PATCH for it.
unique_build() {
	local name=$1 bin=$2 out=$3; shift 3
	unique_copy "$HP_TD/$name-v1" "$bin"
	"$HPDIFF" --old "$HP_TD/CMakeFiles/$name-v1.objs.dir" \
		--new "$HP_TD/CMakeFiles/$name-v2.objs.dir" \
		--binary "$bin" -o "$out" -q "$@" >/dev/null
}

# svc_and_patch [unwinder]: key k (trusted in $T/trust), a signed svc v1
# -> v2 patch $T/p.hpatch (id p), svc-v1 running with one worker as $pid,
# and a connection to it on file descriptor 3. With "unwinder", libgcc_s
# is loaded in it (preloaded): applying then runs two system calls in it
# (mmap, and mprotect of the region's data, where the unwinder's object
# is written: docs/UNWIND.md), and registers the unwind table.
svc_and_patch() {
	local preload=
	[ "${1:-}" != unwinder ] || preload=libgcc_s.so.1
	make_key k
	build_patch svc "$T/p.hpatch" --key "$T/k.key" --id p
	LD_PRELOAD=$preload start_target "$HP_TD/svc-v1" "$T/svc.log" 1
	pid=$TARGET_PID
	open_conn 3 "$TARGET_PORT"
	[ -z "$preload" ] || check "libgcc_s loaded in pid $pid" grep -q libgcc_s "/proc/$pid/maps"
}

# old_then_applied: $pid (connection 3), let go, runs on unharmed in its
# old code, and then takes $T/p.hpatch.
old_then_applied() {
	sleep 0.3
	unharmed "$pid"
	check "old code, answering as before" test "$(ask 3 version)" = v1
	expect_exit 0 "then applied" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
	check "v2" test "$(ask 3 version)" = v2
}


# code_maps PID: its anonymous executable mappings (patch regions' code).
code_maps() { grep -cE '^[0-9a-f]+-[0-9a-f]+ r-xp 00000000 00:00 0 *$' "/proc/$1/maps" || true; }

# arena_held NAME MODE [PRELOAD]: testdata unwind_lock (MODE: self, idle
# or vec; PRELOAD: a library for its LD_PRELOAD, such as an allocator) patched
# with $T/p.hpatch (key k), a backtrace since (libgcc sorted the patch's
# table), then its holder holding the main arena's lock in malloc_stats,
# blocked writing to the full FIFO $T/NAME.fifo (arena_drain NAME lets it
# go). Sets pid, log ($T/NAME.log), holder (its tid), rx (code_maps before
# the patch) and v1 (the sum of its old code; the new one's is 819200
# more).
arena_held() {
	log=$T/$1.log
	[ -f "$T/p.hpatch" ] || { make_key k; build_patch unwind_lock "$T/p.hpatch" --key "$T/k.key" --id p; }
	mkfifo "$T/$1.fifo"
	exec {fd}<>"$T/$1.fifo"
	start_target /usr/bin/env "$log" ${3:+LD_PRELOAD=$3} \
		"$HP_TD/unwind_lock-v1" "$T/$1.fifo" "$2"
	pid=$TARGET_PID
	check "$1: rounds" wait_round_in "$log" 'sum='
	rx=$(code_maps "$pid")
	v1=$(grep '^round ' "$log" | tail -n 1 | sed -n 's/.* sum=\([0-9]*\).*/\1/p')
	expect_exit 0 "$1: apply" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
	check "$1: patched, a backtrace since" wait_round_in "$log" "sum=$((v1 + 200 * 4096))"
	touch "$T/$1.fifo.go"
	check "$1: the arena's lock held" wait_until 5 grep -q '^held' "$log"
	holder=$(sed -n 's/^held tid=//p' "$log")
	check "$1: ... by tid $holder, waiting in write()" wait_until 5 bash -c \
		"read -r nr _ </proc/$pid/task/$holder/syscall && [ \"\$nr\" = 1 ]"
}
# arena_drain NAME: read its FIFO: the holder writes on and lets go.
arena_drain() {
	cat <"$T/$1.fifo" >/dev/null &
	PIDS+=($!)
	check "$1: the lock let go" wait_until 5 grep -q '^released' "$T/$1.log"
}
# arena_collect: a later hpatch deregisters the retired region's table and
# unmaps it (revert collects first).
arena_collect() {
	for _ in $(seq 50); do
		"$HPATCH" revert -p "$pid" >/dev/null 2>&1 || true
		[ "$(code_maps "$pid")" -eq "$rx" ] && break
		sleep 0.1
	done
	check "a later hpatch deregisters and unmaps the region" test "$(code_maps "$pid")" -eq "$rx"
}
