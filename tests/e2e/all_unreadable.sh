#!/usr/bin/env bash
# A run over the host says which processes it could not look at, and is
# never "done" or "no process" for them. hpatch here has CAP_SYS_PTRACE
# but not CAP_DAC_OVERRIDE (a restricted shell, a unit's override): it
# cannot open the memory of another user's process (/proc/PID/mem, mode
# 0600). With the program replaced on disk since the process started (the
# usual case of a live patch: the package was upgraded), nothing else
# tells which build the process runs. apply --all, check and list must
# name it with why; a process of root's beside it is patched all the same.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
agent_policy # $T/bin only
chmod 755 "$T" "$T/bin"
unique_build svc "$T/bin/svc-v1" "$T/u.hpatch" --key "$T/k.key" --id "u-$$"
start_target setpriv "$T/n.log" --reuid=65534 --regid=65534 --clear-groups \
	-- "$T/bin/svc-v1" 1
start_target "$T/bin/svc-v1" "$T/r.log" 1
r=$TARGET_PID
n=$(sed -n 's/.*ready pid=\([0-9]*\).*/\1/p' "$T/n.log")
# And one whose main thread has exited (pthread_exit in main) while its
# others serve: its leader a zombie with an empty map, its map read
# through a live thread, its memory opened only as for the others.
start_target setpriv "$T/g.log" --reuid=65534 --regid=65534 --clear-groups \
	-- "$T/bin/svc-v1" 1 main-exits
g=$TARGET_PID
leader_gone() { grep -q '^State:.*Z' "/proc/$1/status"; }
check "pid $g: its main thread is gone" wait_until 5 leader_gone "$g"
# The package upgraded: another file at the program's path.
install -m 755 "$HP_TD/svc-v2" "$T/bin/svc-v1.new"
mv -f "$T/bin/svc-v1.new" "$T/bin/svc-v1"
FEWER=(setpriv --no-new-privs --inh-caps=-all --bounding-set=-all,+sys_ptrace --)
check "pid $n runs as nobody" test "$(ps -o user= -p "$n")" = nobody
check "those capabilities cannot open its memory" \
	bash -c "! ${FEWER[*]} head -c 1 /proc/$n/mem 2>/dev/null"
expect_exit 1 "check of the host: not eligible" "${FEWER[@]}" "$HPATCH" check \
	--trust "$T/trust" --config "$T/hpatch.conf" --json
check "the missing capability named" grep -q \
	'"cap_dac_override":false,.*"problems":\["no CAP_DAC_OVERRIDE: other users' "$T/last.out"

expect_exit 1 "apply --all: one process not told, an error" \
	"${FEWER[@]}" "$HPATCH" apply --all --trust "$T/trust" --json "$T/u.hpatch"
check "pid $n reported, not patched, with why" \
	grep -q "{\"pid\":$n,\"action\":\"apply\",\"result\":\"HP_E_SYSTEM\",\"reason\":\"Permission denied\",\"patch\":\"u-$$\"" "$T/last.out"
check "pid $n named on stderr" \
	grep -q "pid $n: cannot tell whether it runs the target of .*Permission denied" "$T/last.err"
# (Its image is the one read in root's process, the same file: it is a
# target, which hpatch cannot open either.)
check "pid $g (its leader gone) reported too, not patched" \
	grep -q "{\"pid\":$g,\"action\":\"apply\",\"result\":\"HP_E_SYSTEM\",\"reason\":\"Permission denied\"" "$T/last.out"
check "pid $r (root's) patched" \
	grep -q "{\"pid\":$r,\"action\":\"apply\",\"result\":\"ok\"" "$T/last.out"
check "pid $n still runs v1" no_patch "$n"
check "the audit log has pid $n's failure" \
	grep -q "\"pid\":$n,.*\"result\":\"HP_E_SYSTEM\".*Permission denied" "$HPATCH_AUDIT_LOG"

expect_exit 1 "check: one process not told, an error" \
	"${FEWER[@]}" "$HPATCH" check --trust "$T/trust" --config "$T/hpatch.conf" \
	--json "$T/u.hpatch"
check "check lists pid $n as unknown" \
	grep -q "{\"pid\":$n,[^}]*\"result\":\"unknown\",\"reason\":\"cannot tell whether it maps the build: Permission denied\"" "$T/last.out"
check "check lists pid $g" grep -q "{\"pid\":$g," "$T/last.out"
# A policy that excludes the program: hpatchd would touch none of them,
# known or not; none counts (the exit is the host's: 1, no
# CAP_DAC_OVERRIDE).
printf '[include]\nexe = %s/bin/*\n[exclude]\nexe = %s/bin/svc-v1\n' "$T" "$T" >"$T/excl.conf"
expect_exit 1 "check, the program excluded: the host's exit" \
	"${FEWER[@]}" "$HPATCH" check --trust "$T/trust" --config "$T/excl.conf" \
	--json "$T/u.hpatch"
check "check lists pid $n as excluded" \
	grep -q "{\"pid\":$n,[^}]*\"result\":\"excluded\",\"reason\":\"policy: $T/bin/svc-v1\"" "$T/last.out"
check "none of them unknown" bash -c "! grep -q '\"result\":\"unknown\"' '$T/last.out'"

"$HPATCH" install --store "$T/store" --trust "$T/trust" "$T/u.hpatch" >/dev/null
"${FEWER[@]}" "$HPATCH" list --store "$T/store" --trust "$T/trust" \
	--state-dir "$HPATCH_STATE_DIR" --json >"$T/list.out" 2>&1 || true
check "list shows pid $n as unknown" \
	grep -q "{\"pid\":$n,\"state\":\"unknown\",\"reason\":\"cannot tell" "$T/list.out"
check "list shows pid $g" grep -q "{\"pid\":$g," "$T/list.out"
check "list shows pid $r applied" \
	grep -q "{\"pid\":$r,\"state\":\"applied\"" "$T/list.out"

# With CAP_DAC_OVERRIDE, it is read and patched (the others: exit 3).
expect_exit 3 "apply --all with every capability" \
	"$HPATCH" apply --all --trust "$T/trust" --json "$T/u.hpatch"
check "pid $g patched" \
	grep -q "{\"pid\":$g,\"action\":\"apply\",\"result\":\"ok\"" "$T/last.out"

# status over the host: the processes it cannot read are named, and the
# answer is not "these are all the patches" (exit 1).
expect_exit 1 "status: processes it cannot read, an error" \
	"${FEWER[@]}" "$HPATCH" status --json
check "status names pid $n as unknown, with why" \
	grep -q "\"unknown\":\[.*{\"pid\":$n,\"reason\":\"Permission denied\"}" "$T/last.out"
check "status names pid $g" grep -q "{\"pid\":$g,\"reason\":" "$T/last.out"
check "status lists pid $r's patch" \
	grep -q "{\"pid\":$r,\"patches\":\[{\"patch_id\":\"u-$$\"" "$T/last.out"
check "status says so on stderr" \
	grep -q "pid $n: cannot tell which patches it has: Permission denied" "$T/last.err"
expect_exit 0 "status with every capability" "$HPATCH" status --json
check "status lists pid $n's patch" \
	grep -q "{\"pid\":$n,\"patches\":\[{\"patch_id\":\"u-$$\"" "$T/last.out"

# One that exits before the run reports it is nothing left to patch, as
# a target that exits is: not a failure (pid $r's apply held meanwhile).
kill -9 "$g" # (its memory closed too: a failure of the run)
gone() { [ ! -e "/proc/$1" ]; }
check "pid $g gone" wait_until 5 gone "$g"
expect_exit 0 "pid $r reverted" "$HPATCH" revert -p "$r"
HPATCH_DELAY=mmap:1500 "${FEWER[@]}" "$HPATCH" apply --all --trust "$T/trust" \
	--json "$T/u.hpatch" >"$T/gone.out" 2>"$T/gone.err" &
hp=$!
sleep 0.7
kill -9 "$n"
wait "$hp" && rc=0 || rc=$?
check "pid $n exited meanwhile: not a failure (exit $rc)" test "$rc" -eq 0
check "pid $n not reported" bash -c "! grep -q '\"pid\":$n,' '$T/gone.out'"
check "pid $r patched" \
	grep -q "{\"pid\":$r,\"action\":\"apply\",\"result\":\"ok\"" "$T/gone.out"

finish
