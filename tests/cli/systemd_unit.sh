#!/usr/bin/env bash
# systemd/hpatchd.service is a valid unit (systemd-analyze verify, with
# ExecStart pointed at this build's hpatchd), Type=notify, holds only the
# capabilities hpatchd needs, and systemd rates its exposure low.
. "$(dirname "$0")/../e2e/lib.bash" # $T, check, finish
: "${HP_SRC:?HP_SRC must name the source directory}"
unit=$HP_SRC/systemd/hpatchd.service
sed "s|/usr/sbin/hpatchd|$HP_BUILD/agent/hpatchd|" "$unit" >"$T/hpatchd.service"
check "systemd-analyze verify" systemd-analyze verify "$T/hpatchd.service"
check "Type=notify" grep -qx "Type=notify" "$unit"
check "capabilities: exactly ptrace, /proc/PID/mem, netlink, SCHED_FIFO" \
	grep -qx "CapabilityBoundingSet=CAP_SYS_PTRACE CAP_DAC_OVERRIDE CAP_NET_ADMIN CAP_SYS_NICE" "$unit"
check "ProtectSystem=strict with its own directories" \
	test "$(grep -cE '^(ProtectSystem=strict|StateDirectory=hpatch|RuntimeDirectory=hpatch|LogsDirectory=hpatch)$' "$unit")" -eq 4
# Every path ExecStart names lies in a directory the unit makes writable
# or the defaults of hpatchd, so options and unit cannot drift apart.
for opt in store:/var/lib/hpatch/patches state-dir:/run/hpatch audit-log:/var/log/hpatch/audit.log; do
	check "ExecStart passes --${opt%%:*} ${opt#*:}" grep -q -- "--${opt%%:*} ${opt#*:}" "$unit"
done
# perf reads /tmp/perf-PID.map in the host's /tmp: a private /tmp would
# hide every map hpatchd writes.
check "no private /tmp (perf maps stay visible)" \
	test "$(grep -c '^PrivateTmp=yes' "$unit")" -eq 0
check "/tmp writable under ProtectSystem=strict" grep -qx "ReadWritePaths=/tmp" "$unit"
score=$(systemd-analyze security --offline=true "$T/hpatchd.service" 2>/dev/null |
	sed -n 's/.*Overall exposure level for hpatchd.service: \([0-9.]*\).*/\1/p')
check "exposure rated at most 3.0 (got ${score:-none})" \
	awk -v s="${score:-99}" 'BEGIN { exit !(s <= 3.0) }'
finish
