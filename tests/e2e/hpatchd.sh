#!/usr/bin/env bash
# hpatchd keeps processes in line with the store: an installed patch
# reaches every running process of its build, programs started later
# (exec) and libraries mapped later (at start by ld.so, or by dlopen);
# uninstall reverts it everywhere; SIGHUP reloads, SIGTERM stops cleanly;
# each action is one audit line in the CLI's schema.
. "$(dirname "$0")/lib.bash"
require_ptrace

O=$HP_TD/CMakeFiles
make_key k
id=agent-$$
build_patch svc "$T/svc.hpatch" --key "$T/k.key" --id "$id"
"$HPDIFF" --old "$O/tlslib-v1.objs.dir" --new "$O/tlslib-v2.objs.dir" \
	--binary "$HP_TD/libtlslib-v1.so" --key "$T/k.key" \
	--id "$id-tls" -o "$T/tls.hpatch" -q >/dev/null
"$HPDIFF" --old "$O/greet-v1.objs.dir" --new "$O/greet-v2.objs.dir" \
	--binary "$HP_TD/libgreet-v1.so" --key "$T/k.key" \
	--id "$id-greet" -o "$T/greet.hpatch" -q >/dev/null
agent_policy '[apply]' 'rescan = 1s' '[metrics]' "textfile = $T/hpatch.prom"
# Copies under $T/bin: the same builds (build-ids), reachable by policy.
cp "$HP_TD/svc-v1" "$HP_TD/lib_user" \
	"$HP_TD/libgreet-v1.so" "$HP_TD/libtlslib-v1.so" "$T/bin/"

start_target "$T/bin/svc-v1" "$T/a.log" 1
a=$TARGET_PID
open_conn 3 "$TARGET_PORT"
start_target "$T/bin/svc-v1" "$T/b.log" 1
b=$TARGET_PID
# Another test's process of the same build, outside $T/bin: never touched.
start_target "$HP_TD/svc-v1" "$T/out.log" 1
outside=$TARGET_PID

# systemd's notify socket, played by a datagram listener (Type=notify).
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[1] + ".ready", "w").close()
with open(sys.argv[2], "a") as out:
    while True:
        out.write(s.recv(4096).decode() + "\n")
        out.flush()
' "$T/notify.sock" "$T/notify.log" &
PIDS+=($!)
wait_until 10 test -e "$T/notify.sock.ready"
start_agent NOTIFY_SOCKET="$T/notify.sock"
check "systemd told READY=1" wait_until 10 grep -q "^READY=1" "$T/notify.log"
agent_install
check "install sees hpatchd running" grep -q "hpatchd_running: true" "$T/last.out"
check "running process a patched" wait_until 10 has_patch "$a" "$id"
check "running process b patched" wait_until 10 has_patch "$b" "$id"
check "a answers v2 on its open connection" test "$(ask 3 version)" = v2
check "a process outside the policy's reach is not" no_patch "$outside"
metric() { grep -qx "$1" "$T/hpatch.prom" 2>/dev/null; }
check "metrics: 2 processes applied" wait_until 10 metric "hpatch_processes{patch=\"$id\",state=\"applied\"} 2"
check "metrics: none pending" metric "hpatch_processes{patch=\"$id\",state=\"pending\"} 0"
check "metrics: hpatchd up" metric "hpatch_daemon_up 1"
check "metrics: installed, applies counted" \
	test "$(grep -E '^hpatch_(patches_installed|applied_total) ' "$T/hpatch.prom" | tr '\n' ' ')" = "hpatch_patches_installed 1 hpatch_applied_total 2 "

start_target "$T/bin/svc-v1" "$T/c.log" 1
c=$TARGET_PID
check "a program started afterwards is patched (exec)" wait_until 10 has_patch "$c" "$id"

# Libraries: mapped by ld.so at start, and by dlopen later.
for f in tls greet; do
	expect_exit 0 "install the $f library's patch" \
		"$HPATCH" install --store "$AGENT_STORE" --trust "$T/trust" "$T/$f.hpatch"
done
mkfifo "$T/in1"
"$T/bin/lib_user" <"$T/in1" >"$T/u1.log" 2>&1 &
u1=$!
PIDS+=("$u1")
exec 5>"$T/in1"
check "a library loaded at start is patched" wait_until 10 has_patch "$u1" "$id-greet"
check "lib_user: not yet loaded, so not patched" test "$("$HPATCH" status -p "$u1" | grep -c "$id-tls")" -eq 0
echo load >&5
check "a library loaded by dlopen is patched" wait_until 10 has_patch "$u1" "$id-tls"
echo tl >&5
echo tl >&5
failed=$FAILED
# (a function: the log is read again at each try, not once)
tl_steps() { test "$(awk '$1 == "tl" {print $2}' "$T/u1.log" | tr '\n' ' ')" = "$1"; }
check "the dlopen'ed library runs v2 (steps by 2)" wait_until 10 tl_steps "1002 1004 "
if [ "$FAILED" -ne "$failed" ]; then # what it printed, what hpatchd did
	sed 's/^/  lib_user: /' "$T/u1.log"
	grep "pid $u1\b" "$T/hpatchd.log" | sed 's/^/  hpatchd: /'
	"$HPATCH" status -p "$u1" 2>&1 | sed 's/^/  status: /'
fi
expect_exit 0 "list" "$HPATCH" list --store "$AGENT_STORE" --trust "$T/trust" --json
check "list: pid $u1 has the library patch applied" \
	grep -q "\"patch_id\":\"$id-tls\".*{\"pid\":$u1,\"state\":\"applied\"" "$T/last.out"

kill -HUP "$AGENT_PID"
check "SIGHUP reloads" wait_until 10 grep -q "SIGHUP: reloading" "$T/hpatchd.log"
reloaded() { test "$(grep -c '^RELOADING=1\|^READY=1' "$T/notify.log")" -ge 3; }
check "systemd told RELOADING=1, then READY=1 again" wait_until 10 reloaded
# Uninstall while hpatchd sleeps (stopped, not holding the store's lock)
# past its rescan: when it wakes, the change it has not read yet must not
# make it apply the uninstalled patch again.
lock_free() { flock -n "$AGENT_STORE/.lock" true; }
for _ in $(seq 20); do
	kill -STOP "$AGENT_PID"
	lock_free && break
	kill -CONT "$AGENT_PID"
	sleep 0.05
done
expect_exit 0 "uninstall" "$HPATCH" uninstall --store "$AGENT_STORE" --trust "$T/trust" "$id"
sleep 1.2
kill -CONT "$AGENT_PID"
for p in "$a" "$b" "$c"; do
	check "pid $p reverted" wait_until 10 no_patch "$p"
done
check "a answers v1 again" test "$(ask 3 version)" = v1
sleep 1.5 # a rescan: nothing re-applies the uninstalled patch
check "still reverted after a rescan" no_patch "$a"
check "lib_user keeps its library patches" has_patch "$u1" "$id-tls"

expect_exit 0 "status --json has the daemon's view" "$HPATCH" status -p "$u1" --json
check "... running, with its pid" grep -q "\"daemon\":{\"running\":true,\"pid\":$AGENT_PID" "$T/last.out"
check "... and its view of lib_user" grep -q "\"daemon\":.*{\"pid\":$u1,\"patch_id\":\"$id-tls\",\"state\":\"applied\"" "$T/last.out"

kill -TERM "$AGENT_PID"
rc=0
wait "$AGENT_PID" || rc=$?
check "SIGTERM: clean exit ($rc)" test "$rc" -eq 0
check "systemd told STOPPING=1" grep -q "^STOPPING=1" "$T/notify.log"
check "metrics: hpatchd no longer up" metric "hpatch_daemon_up 0"
check "no process left stopped or traced" \
	test "$(grep -h TracerPid /proc/"$a"/status /proc/"$u1"/status | awk '{s += $2} END {print s}')" -eq 0
audit=$HPATCH_AUDIT_LOG
check "audit: one apply line per process and patch by the daemon" \
	test "$(grep -c "\"action\":\"apply\",\"pid\":\(${a}\|${b}\|${c}\|${u1}\)," "$audit")" -eq 5
check "audit: lines in the CLI's schema" \
	grep -q "\"action\":\"apply\",\"pid\":$c,\"executable\":\"$T/bin/svc-v1\",.*\"patch_id\":\"$id\".*\"result\":\"ok\"" "$audit"
exec 3>&- 5>&-
finish
