#!/usr/bin/env bash
# hpatchd without --config reads /etc/hpatch/hpatch.conf, and with no
# file there runs on the defaults: automatic apply, nothing excluded. That
# file gone after it was read (moved, a package purged), a SIGHUP keeps
# the policy in force, saying why: the defaults would patch what the
# operator excluded. hpatchd runs in a mount namespace of its own, whose
# /etc is an overlay: its /etc/hpatch is the test's alone.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc config-gone
mkdir -p "$T/bin/keep" "$T/up/hpatch" "$T/work"
# A build of the test's own: the defaults, were they taken, would patch
# every process of the patch's build on the host.
unique_build svc "$T/bin/keep/svc-v1" "$T/svc.hpatch" --key "$T/k.key" \
	--id "$id"
agent_install
printf '[include]\nexe = %s/bin/*\n[exclude]\nexe = %s/bin/keep/*\n' \
	"$T" "$T" >"$T/up/hpatch/hpatch.conf"
start_target "$T/bin/keep/svc-v1" "$T/kept.log" 1
kept=$TARGET_PID
# Another test's process, of the build the test's copy was made from.
start_target "$HP_TD/svc-v1" "$T/bystander.log" 1
bystander=$TARGET_PID
env -u TZ unshare -m --propagation private sh -c \
	'mount -t overlay overlay -o "lowerdir=/etc,upperdir=$0/up,workdir=$0/work" /etc &&
	exec "$@"' "$T" \
	"$HPATCHD" --store "$AGENT_STORE" --trust "$T/trust" \
	--state-dir "$HPATCH_STATE_DIR" --audit-log "$HPATCH_AUDIT_LOG" \
	--foreground >>"$T/hpatchd.log" 2>&1 &
AGENT_PID=$!
PIDS+=("$AGENT_PID")
check "hpatchd ready" wait_until 10 grep -q "ready:" "$T/hpatchd.log"
reason_is() {
	"$HPATCH" list --store "$AGENT_STORE" --trust "$T/trust" --json 2>/dev/null |
		grep -q "{\"pid\":$1,\"state\":\"$2\",\"reason\":\"$3\""
}
check "the default file's exclusion holds" \
	wait_until 10 reason_is "$kept" excluded "policy: excluded by $T/bin/keep/\\*"

nsenter -t "$AGENT_PID" -m rm /etc/hpatch/hpatch.conf # in its /etc
kill -HUP "$AGENT_PID"
check "the reload says the policy stays" \
	wait_until 10 grep -q "policy not reloaded" "$T/hpatchd.log"
check "... naming the file gone" \
	grep -q "/etc/hpatch/hpatch.conf.*No such file" "$T/hpatchd.log"
# A process started now is looked at under the policy in force.
start_target "$T/bin/keep/svc-v1" "$T/kept2.log" 1
kept2=$TARGET_PID
check "a new excluded process is listed as excluded" \
	wait_until 10 reason_is "$kept2" excluded "policy: excluded by $T/bin/keep/\\*"
sleep 1 # a rescan's time (hpatchd's first retries: 1 s)
check "the excluded process is still not patched" no_patch "$kept"
check "... nor the new one" no_patch "$kept2"
check "nor another test's process" no_patch "$bystander"
finish
