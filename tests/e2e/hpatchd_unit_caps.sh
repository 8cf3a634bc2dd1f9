#!/usr/bin/env bash
# hpatchd with exactly the capabilities its unit gives it
# (systemd/hpatchd.service: CapabilityBoundingSet, NoNewPrivileges)
# patches a process another user runs: its /proc/PID/mem is that user's,
# mode 0600, which CAP_SYS_PTRACE alone does not open. One running when
# hpatchd starts, one started later; both answer with the new code.
. "$(dirname "$0")/lib.bash"
require_ptrace

src=$(cd "$(dirname "$0")/../.." && pwd)
unit=$src/systemd/hpatchd.service
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr 'A-Z' 'a-z' |
	sed 's/cap_//g; s/ \+/,+/g')
check "the unit names its capabilities ($caps)" test -n "$caps"
check "... and no new privileges" grep -qx 'NoNewPrivileges=yes' "$unit"
cat >"$T/hpatchd-unit" <<EOT
#!/bin/sh
exec setpriv --no-new-privs --inh-caps=-all --bounding-set=-all,+$caps -- "$HPATCHD" "\$@"
EOT
chmod +x "$T/hpatchd-unit"

agent_svc unitcaps
agent_policy
agent_install
chmod 755 "$T" "$T/bin"
AS=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
start_nobody() { # start_nobody LOG: svc-v1 as nobody, its pid in $TARGET_PID
	"${AS[@]}" "$T/bin/svc-v1" 1 >"$1" 2>&1 &
	PIDS+=($!)
	TARGET_PID=$!
	wait_until 10 grep -q ready "$1"
	TARGET_PORT=$(sed -n 's/.*ready pid=[0-9]* port=\([0-9]*\).*/\1/p' "$1" | head -1)
}
start_nobody "$T/a.log"
a=$TARGET_PID
check "its memory is the user's (mode 0600, owner nobody)" \
	test "$(stat -c '%a %U' "/proc/$a/mem")" = "600 nobody"
HPATCHD=$T/hpatchd-unit start_agent
check "pid $a (nobody's, running before hpatchd) patched" \
	wait_until 10 has_patch "$a" "$id"
start_nobody "$T/b.log"
b=$TARGET_PID
check "pid $b (nobody's, started since) patched" wait_until 10 has_patch "$b" "$id"
open_conn 3 "$TARGET_PORT"
check "pid $b answers with the patched code" test "$(ask 3 version)" = v2
exec 3>&-
finish
