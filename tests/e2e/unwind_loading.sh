#!/usr/bin/env bash
# A patch with unwind tables is never applied while the dynamic linker is
# loading the target's objects (rt_unwind.c, hp_unwind_find):
# 1. A C++ program caught as ld.so starts it, before it maps libgcc_s
#    (where hpatchd meets every program, at its exec): applied then, the
#    table was registered with no unwinder, and none learnt of it once
#    libgcc_s came: the first exception thrown through patched code ended
#    the process (std::terminate, SIGABRT). Now refused as busy (exit 4),
#    nothing mapped; once started, applied and registered.
# 2. A C program inside a dlopen of libgcc_s (glibc's, at a pthread_exit),
#    libgcc_s mapped, not yet relocated: the registration called its
#    __register_frame_info with link-time GOT entries (a jump nowhere in
#    a gcc 13 libgcc_s, its lock then held for good). Now busy as well;
#    once loaded, applied and registered.
# 3. As 1., the program run by ld.so itself (`ld.so ./prog`): the auxv
#    describes ld.so then (no PT_INTERP, no DT_DEBUG), and the apply went
#    on as for a static program, the target then aborted. Now its
#    _r_debug is read: busy as well.
# ld.so is held there by an LD_AUDIT library (testdata hold_load.c).
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch unwind "$T/u.hpatch" --key "$T/k.key"
build_patch svc "$T/svc.hpatch" --key "$T/k.key"
AUDIT=$HP_TD/libhold_load.so
alive() { kill -0 "$1" 2>/dev/null; }
not() { ! "$@"; }
# no_region PID: no anonymous executable mapping (a region) in PID.
no_region() { not grep -qE '^[0-9a-f]+-[0-9a-f]+ r-xp 00000000 00:00 0 *$' "/proc/$1/maps"; }
# rounds_after N PATTERN: a "round" line of $T/u.log after its N-th, matching.
rounds_after() {
	tail -n +"$(($1 + 1))" "$T/u.log" | grep '^round ' | grep -q -- "$2"
}

# held_at_start NAME LABEL CMD...: CMD (the C++ target, as ld.so starts
# it, libgcc_s not mapped yet) held there: busy; released: applied, and
# exceptions thrown through patched code are caught.
held_at_start() {
	local name=$1 label=$2 pid mark
	shift 2
	HP_HOLD_AT=@main HP_HOLD_FILE=$T/$name LD_AUDIT=$AUDIT \
		"$@" >"$T/u.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	check "$label: held at its start" wait_until 10 test -e "$T/$name.held"
	check "no libgcc_s mapped yet" not grep -q libgcc_s "/proc/$pid/maps"
	expect_exit 4 "apply while ld.so starts it: busy" \
		"$HPATCH" apply -p "$pid" --trust "$T/trust" --json "$T/u.hpatch"
	check "... saying why" grep -q "dynamic linker is loading objects" "$T/last.err"
	check "... and so in its result" grep -q '"result":"HP_E_LOADING"' "$T/last.out"
	check "nothing mapped" no_region "$pid"
	touch "$T/$name.go"
	check "started" wait_until 10 grep -q '^round .* caller=1' "$T/u.log"
	check "libgcc_s loaded" grep -q libgcc_s "/proc/$pid/maps"
	mark=$(grep -c '^round ' "$T/u.log" || true)
	expect_exit 0 "then applied" "$HPATCH" apply -p "$pid" --trust "$T/trust" \
		--debug=ptrace "$T/u.hpatch"
	check "its table registered" grep -q "unwind table 0x[0-9a-f]* registered" "$T/last.err"
	check "patched code throws, its caller catches, the unwinder finds it" \
		wait_until 10 rounds_after "$mark" 'caller=2 .* fde=1'
	check "alive" alive "$pid"
	check "never terminated" not grep -q terminate "$T/u.log"
}

# 1. Held as ld.so starts the program: libgcc_s not mapped yet.
held_at_start start "the program" "$HP_TD/unwind-v1"

# 2. Held inside the dlopen of libgcc_s: mapped, not relocated.
HP_HOLD_AT=libgcc_s HP_HOLD_FILE=$T/dl LD_AUDIT=$AUDIT \
	start_target "$HP_TD/svc-v1" "$T/svc.log" 1 main-exits
pid=$TARGET_PID
check "held in the dlopen of libgcc_s" wait_until 10 test -e "$T/dl.held"
check "libgcc_s mapped" grep -q libgcc_s "/proc/$pid/task/$(newest_tid "$pid")/maps"
expect_exit 4 "apply while libgcc_s is being loaded: busy" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" --debug=ptrace "$T/svc.hpatch"
check "... saying why" grep -q "unwinder '.*libgcc_s.*' is being loaded" "$T/last.err"
check "nothing run in it" not grep -q "syscall [0-9]* -> " "$T/last.err"
touch "$T/dl.go"
# The main thread's pthread_exit, done once libgcc_s is loaded.
leader_gone() { grep -q '^State:[[:space:]]*Z' "/proc/$pid/status"; }
check "loaded, the main thread gone" wait_until 10 leader_gone
expect_exit 0 "then applied" "$HPATCH" apply -p "$pid" --trust "$T/trust" \
	--debug=ptrace "$T/svc.hpatch"
check "its table registered" grep -q "unwind table 0x[0-9a-f]* registered" "$T/last.err"
open_conn 3 "$TARGET_PORT"
check "v2" test "$(ask 3 version)" = v2
exec 3>&-

# 3. ld.so run as the program, held as it starts it.
LDSO=$(sed -n 's/^ *\[Requesting program interpreter: \(.*\)\]$/\1/p' \
	<(readelf -lW "$HP_TD/unwind-v1"))
held_at_start run "ld.so run as the program" "$LDSO" "$HP_TD/unwind-v1"
finish
