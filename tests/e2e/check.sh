#!/usr/bin/env bash
# hpatch check changes nothing: it says whether this host can be patched
# and, with a patch, what an apply would do to each process of its build
# now (would apply / already applied / busy / refused / excluded), with
# apply's exit codes.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
"$HPSIGN" keygen "$T/other" >/dev/null
id=check-$$
build_patch svc "$T/svc.hpatch" --key "$T/k.key" --id "$id"
build_patch svc "$T/other.hpatch" --key "$T/other.key" --id "$id-o"
build_patch static_local "$T/none.hpatch" --key "$T/k.key" --id "$id-n"
agent_policy # other tests' processes of the same build: excluded
cp "$HP_TD/svc-v1" "$T/bin/"
C=(--trust "$T/trust" --config "$T/hpatch.conf" --json)

expect_exit 0 "the host is eligible" "$HPATCH" check "${C[@]}"
check "host facts listed" grep -q '"host":{"kernel":"[^"]*","arch":"x86_64"' "$T/last.out"
check "eligible" grep -q '"problems":\[\],"eligible":true' "$T/last.out"
expect_exit 6 "untrusted patch: exit as apply" "$HPATCH" check "${C[@]}" "$T/other.hpatch"
expect_exit 9 "no process of its build" "$HPATCH" check "${C[@]}" "$T/none.hpatch"

start_target "$T/bin/svc-v1" "$T/a.log" 1
a=$TARGET_PID
open_conn 3 "$TARGET_PORT"
start_target "$T/bin/svc-v1" "$T/b.log" 1
b=$TARGET_PID
open_conn 4 "$TARGET_PORT"
maps_a=$(cat /proc/"$a"/maps)
expect_exit 0 "both would apply" "$HPATCH" check "${C[@]}" "$T/svc.hpatch"
check "the policy holds nothing back" grep -q '"policy":\[\]' "$T/last.out"
check "a: would apply" grep -q "{\"pid\":$a,[^}]*\"result\":\"would apply\"" "$T/last.out"
check "b: would apply" grep -q "{\"pid\":$b,[^}]*\"result\":\"would apply\"" "$T/last.out"
check "nothing changed: no patch in a" no_patch "$a"
check "nothing changed: a's memory map is the same" test "$(cat /proc/"$a"/maps)" = "$maps_a"
check "a still answers v1" test "$(ask 3 version)" = v1
check "nothing recorded: no anti-rollback state" test -z "$(ls "$HPATCH_STATE_DIR"/*.seq 2>/dev/null)"

echo "hold 3000" >&4 # b: a thread sleeps inside hold()
b_busy() { # once the thread is in hold(): exit 4
	local rc=0
	"$HPATCH" check "${C[@]}" "$T/svc.hpatch" >"$T/last.out" 2>"$T/last.err" || rc=$?
	[ "$rc" -eq 4 ]
}
check "b busy: exit 4" wait_until 3 b_busy
check "b: busy, naming hold" grep -q "{\"pid\":$b,[^}]*\"result\":\"busy\",[^}]*\"busy_function\":\"hold\"" "$T/last.out"
check "a: would apply" grep -q "{\"pid\":$a,[^}]*\"result\":\"would apply\"" "$T/last.out"
expect_exit 0 "apply to a" "$HPATCH" apply -p "$a" --trust "$T/trust" "$T/svc.hpatch"
expect_exit 4 "busy outranks already applied" "$HPATCH" check "${C[@]}" "$T/svc.hpatch"
check "a: already applied" grep -q "{\"pid\":$a,[^}]*\"result\":\"already applied\"" "$T/last.out"
IFS= read -r -t 5 held <&4
check "b's held call finished in v1" test "$held" = "held v1"
printf '[include]\nexe = %s/bin/*\n[exclude]\nexe = %s/bin/svc-v1\n' "$T" "$T" >"$T/excl.conf"
expect_exit 9 "every process excluded by the policy: none to patch" \
	"$HPATCH" check --trust "$T/trust" --config "$T/excl.conf" --json "$T/svc.hpatch"
check "b: excluded, naming the rule" \
	grep -q "{\"pid\":$b,[^}]*\"result\":\"excluded\",\"reason\":\"policy: $T/bin/svc-v1\"" "$T/last.out"

# What of hpatchd's policy keeps it from applying the patch on its own
# (apply is not held back by it: the exit status stays apply's).
key=$("$HPSIGN" keyid "$T/k.pub")
now=$(date +%H:%M)
from=$(date -d '+2 hours' +%H:%M)
to=$(date -d '+3 hours' +%H:%M)
printf '[include]\nexe = %s/bin/*\n[apply]\nautomatic = no\ntrusted_keys = 0123456789abcdef\nwindow = %s-%s\n' \
	"$T" "$from" "$to" >"$T/held.conf"
expect_exit 3 "a policy that holds it back: exit as apply (a: already applied)" \
	"$HPATCH" check --trust "$T/trust" --config "$T/held.conf" --json "$T/svc.hpatch"
check "automatic apply off: said" grep -q '"policy":\["automatic apply is off (automatic = no)' "$T/last.out"
check "a signer not trusted: said, naming it" \
	grep -q "\"signer $key not in trusted_keys: hpatchd will not apply it\"" "$T/last.out"
check "outside the window: said, with when it opens" \
	grep -q "\"outside the maintenance window $from-$to (local time): hpatchd applies it from $from\"\]" "$T/last.out"
printf '[include]\nexe = %s/bin/*\n[apply]\nwindow = %s-%s\n' "$T" "$now" "$to" >"$T/open.conf"
expect_exit 3 "inside the window" \
	"$HPATCH" check --trust "$T/trust" --config "$T/open.conf" --json "$T/svc.hpatch"
check "inside the window: nothing held back" grep -q '"policy":\[\]' "$T/last.out"

# Under a seccomp filter the calls an apply injects (mmap, mprotect) may
# be refused: the dry run injects nothing, so check says so.
cat >"$T/seccomp.py" <<'PY'
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
prog_bytes = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0x7FFF0000))
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
prog = Prog(1, ctypes.addressof(prog_bytes))  # one rule: allow everything
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.byref(prog), 0, 0) == 0  # SECCOMP_MODE_FILTER
os.execv(sys.argv[1], sys.argv[1:])
PY
start_target python3 "$T/s.log" "$T/seccomp.py" "$T/bin/svc-v1" 1
s=$TARGET_PID
check "the target runs under a seccomp filter" grep -q "^Seccomp:.*2" "/proc/$s/status"
expect_exit 3 "check with it (a: already applied)" "$HPATCH" check "${C[@]}" "$T/svc.hpatch"
check "it would apply, with a warning about the filter" \
	grep -q "{\"pid\":$s,[^}]*\"result\":\"would apply\",[^}]*\"warning\":\"a seccomp filter" "$T/last.out"
check "a process without one has no warning" \
	grep -q "{\"pid\":$b,[^}]*\"threads\":[0-9]*}" "$T/last.out"
exec 3>&- 4>&-
finish
