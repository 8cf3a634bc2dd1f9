#!/usr/bin/env bash
# hpatchd does only what its policy allows, and says why a process waits:
# automatic apply off, a signer not in trusted_keys, outside the
# maintenance window, an excluded executable; SIGHUP reloads the policy,
# and a bad policy file (an empty window too) keeps the one in force.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc policy
key=$("$HPATCH" inspect --trust "$T/trust" --json "$T/svc.hpatch" | sed -n 's/.*"key_id":"\([0-9a-f]*\)".*/\1/p')
mkdir -p "$T/bin/keep"
cp "$HP_TD/svc-v1" "$T/bin/keep/"
agent_install
start_target "$T/bin/svc-v1" "$T/a.log" 1
a=$TARGET_PID
start_target "$T/bin/keep/svc-v1" "$T/k.log" 1
kept=$TARGET_PID
# view_reason PID: the daemon's reason for PID, from hpatch list.
reason_is() {
	"$HPATCH" list --store "$AGENT_STORE" --trust "$T/trust" --json 2>/dev/null |
		grep -q "{\"pid\":$1,\"state\":\"$2\",\"reason\":\"$3\""
}
reload() { kill -HUP "$AGENT_PID"; }

agent_policy '[apply]' 'automatic = no'
start_agent
check "automatic apply off: pending, saying so" \
	wait_until 10 reason_is "$a" pending "automatic apply is off in the policy"
check "... and not applied" no_patch "$a"

agent_policy '[apply]' 'trusted_keys = 0123456789abcdef'
reload
check "signer not in trusted_keys: refused, naming it" \
	wait_until 10 reason_is "$a" refused "signer $key is not in the policy's trusted_keys"
check "... and not applied" no_patch "$a"

now=$(date +%H:%M)
later=$(date -d '+2 hours' +%H:%M)
agent_policy '[apply]' "trusted_keys = $key" "window = $later-$(date -d '+3 hours' +%H:%M)"
reload
check "outside the maintenance window: pending" \
	wait_until 10 reason_is "$a" pending "outside the maintenance window"
check "... and not applied" no_patch "$a"

echo "[apply]" >"$T/hpatch.conf.bad"
echo "automatic = perhaps" >>"$T/hpatch.conf.bad"
cp "$T/hpatch.conf" "$T/hpatch.conf.good"
cp "$T/hpatch.conf.bad" "$T/hpatch.conf"
reload
check "a bad policy is refused on reload" wait_until 10 grep -q "policy not reloaded" "$T/hpatchd.log"
check "... the one in force stays: still pending" \
	reason_is "$a" pending "outside the maintenance window"

# A window whose start is its end holds no minute: nothing would ever be
# applied, without a word. Refused, saying where and what to write.
refusals() { grep -c "policy not reloaded" "$T/hpatchd.log" || true; }
n=$(refusals)
agent_policy '[apply]' 'automatic = no' "window = $now-$now"
reload
check "a window whose start is its end is refused on reload" \
	wait_until 10 above "$n" refusals
check "... naming the file and line" grep -q \
	"'$T/hpatch.conf': line [0-9]*: \[apply\] window = $now-$now: its start is its end" \
	"$T/hpatchd.log"
check "... and what to write instead" \
	grep -q "remove the window line (no window: always)" "$T/hpatchd.log"
check "... the one in force stays (automatic apply still on)" \
	reason_is "$a" pending "outside the maintenance window"

agent_policy '[apply]' "trusted_keys = $key" "window = $now-$later" \
	'[exclude]' "exe = $T/bin/keep/*"
reload
check "inside the window, key trusted: applied" wait_until 10 has_patch "$a" "$id"
check "an excluded executable is never patched" no_patch "$kept"
check "... and listed as excluded by its rule" \
	wait_until 10 reason_is "$kept" excluded "policy: excluded by $T/bin/keep/\\*"

# An exclusion naming the program exactly holds once it is replaced on
# disk (an upgrade, which restarts hpatchd too): its /proc/PID/exe says
# "PATH (deleted)" when hpatchd first looks.
kill "$AGENT_PID" && wait "$AGENT_PID" 2>/dev/null || true
mkdir -p "$T/bin/up"
cp "$HP_TD/svc-v1" "$T/bin/up/"
start_target "$T/bin/up/svc-v1" "$T/u.log" 1
up=$TARGET_PID
cp "$HP_TD/svc-v1" "$T/bin/up/svc-v1.new"
mv "$T/bin/up/svc-v1.new" "$T/bin/up/svc-v1"
agent_policy '[apply]' "trusted_keys = $key" "window = $now-$later" \
	'[exclude]' "exe = $T/bin/keep/*" "exe = $T/bin/up/svc-v1"
start_agent
check "replaced on disk ($(readlink "/proc/$up/exe" | sed 's/.* //')): listed excluded" \
	wait_until 10 reason_is "$up" excluded "policy: excluded by $T/bin/up/svc-v1"
check "... and not patched" no_patch "$up"

# An executable whose path is longer than hpatchd kept (255 bytes): an
# exclusion by its name holds (the cut path ended before it). A line of
# the policy holds at most 200 bytes (libinih): a pattern, not the path.
long=$T/bin/$(printf 'd%.0s' $(seq 120))/$(printf 'e%.0s' $(seq 120))
mkdir -p "$long"
cp "$HP_TD/svc-v1" "$long/"
agent_policy '[apply]' "trusted_keys = $key" '[exclude]' "exe = $T/bin/d*/svc-v1"
n=$(agent_hups)
reload
wait_until 10 above "$n" agent_hups || true
start_target "$long/svc-v1" "$T/l.log" 1
lp=$TARGET_PID
state_is() {
	"$HPATCH" list --store "$AGENT_STORE" --trust "$T/trust" --json 2>/dev/null |
		grep -q "{\"pid\":$1,\"state\":\"$2\""
}
check "a long path's exclusion holds (${#long} bytes)" \
	wait_until 10 state_is "$lp" excluded
check "... and it is not patched" no_patch "$lp"
finish
