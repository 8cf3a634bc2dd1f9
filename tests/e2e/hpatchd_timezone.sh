#!/usr/bin/env bash
# The maintenance window is in the host's local time, whose zone a reload
# reads again: after the zone changes (timedatectl set-timezone replaces
# /etc/localtime), SIGHUP puts the window in the new zone, as it does the
# rest of the policy. hpatchd runs in a mount namespace of its own, where
# /etc/localtime is the test's file.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc timezone
agent_install
start_target "$T/bin/svc-v1" "$T/a.log" 1
a=$TARGET_PID
# This hour and the next, UTC: 12 hours away in UTC+12 (Etc/GMT-12).
cp /usr/share/zoneinfo/Etc/GMT-12 "$T/localtime"
cp /usr/share/zoneinfo/Etc/UTC "$T/utc"
touch -d '2000-01-01' "$T/localtime"
agent_policy '[apply]' "window = $(date -u +%H:00)-$(date -u -d '+2 hours' +%H:00)"
start_agent -u TZ unshare -m --propagation private sh -c \
	'mount --bind "$0" /etc/localtime && exec "$@"' "$T/localtime"
reason_is() {
	"$HPATCH" list --store "$AGENT_STORE" --trust "$T/trust" --json 2>/dev/null |
		grep -q "{\"pid\":$1,\"state\":\"$2\",\"reason\":\"$3\""
}
check "in UTC+12: outside the window, pending" \
	wait_until 10 reason_is "$a" pending "outside the maintenance window"
check "... and not applied" no_patch "$a"
cp "$T/utc" "$T/localtime" # the host's zone is UTC now
kill -HUP "$AGENT_PID"
check "reloaded: inside the window in UTC, applied" wait_until 10 has_patch "$a" "$id"
finish
