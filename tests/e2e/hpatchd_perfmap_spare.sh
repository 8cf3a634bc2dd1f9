#!/usr/bin/env bash
# hpatchd's clean-up of an exited process's perf map moves it into the
# spare directory instead of unlinking it, and a later map of a process of
# the same user is that file renamed (runtime/rt_perfmap.c): no inode
# freed and allocated per process (on an ext4 without a journal, a create
# after many unlinks costs hundreds of microseconds). Each map holds that
# process's lines alone (none of the longer old ones) and is its user's.
# The targets run as a user of this test's own: no other test's process
# takes its spares (another user's never are).
. "$(dirname "$0")/lib.bash"
require_ptrace

user=$((60000 + $$ % 5000))
spares=/tmp/.hpatch-perfmap-spares.$(id -u)
map() { echo "/tmp/perf-$1.map"; }
gone() { [ ! -e "$(map "$1")" ]; }
end() { kill "$1" && wait "$1" 2>/dev/null || true; }
# patched PID: hpatchd patched it and wrote its map.
patched() {
	wait_until 10 has_patch "$1" "$id" &&
		wait_until 10 grep -q "\[hpatch:$id\]" "$(map "$1")"
}
# exact PID NR: PID's map holds NR lines of the patch, each at an address
# PID maps, and nothing else; it is PID's user's.
exact() {
	local a lo hi ok
	[ "$(grep -c "^[0-9a-f]* [0-9a-f]* [^ ]* \[hpatch:$id\]\$" "$(map "$1")")" = "$2" ] &&
		[ "$(wc -l <"$(map "$1")")" = "$2" ] &&
		[ "$(tail -c 1 "$(map "$1")" | od -An -c | tr -d ' ')" = '\n' ] &&
		[ "$(stat -c %u "$(map "$1")")" = "$user" ] || return 1
	for a in $(awk '{print $1}' "$(map "$1")"); do
		ok=
		while IFS=- read -r lo hi; do
			if ((16#$a >= 16#$lo && 16#$a < 16#${hi%% *})); then ok=1; break; fi
		done <"/proc/$1/maps"
		[ -n "$ok" ] || return 1
	done
}
spare_inodes() { find "$spares" -maxdepth 1 -uid "$user" -printf '%i\n' 2>/dev/null | sort; }

agent_svc spare
agent_policy '[perf]' 'keep_exited = 0'
agent_install
chmod 755 "$T" "$T/bin"
start_agent
strace -f -qq -e trace=unlink,unlinkat,rename,renameat,renameat2 \
	-o "$T/strace.out" -p "$AGENT_PID" 2>"$T/strace.err" &
PIDS+=($!)
tracer=$!
check "hpatchd traced" wait_until 10 \
	grep -q "^TracerPid:[[:space:]]*$tracer\$" "/proc/$AGENT_PID/status"

# Round 1: three patched processes, their maps made longer (as an earlier
# patch's lines would), then gone.
first=()
inodes=()
for i in 1 2 3; do
	start_target setpriv "$T/a$i.log" --reuid="$user" --regid="$user" \
		--clear-groups "$T/bin/svc-v1" 1
	first+=("$TARGET_PID")
	check "pid $TARGET_PID patched" patched "$TARGET_PID"
done
nr=$(grep -c "\[hpatch:$id\]" "$(map "${first[0]}")")
for p in "${first[@]}"; do
	check "pid $p's map exact" exact "$p" "$nr"
	echo "7f0000004000 40 old_fn [hpatch:old-$$]" >>"$(map "$p")"
	inodes+=("$(stat -c %i "$(map "$p")")")
	end "$p"
done
for p in "${first[@]}"; do
	check "pid $p's map gone after its exit" wait_until 10 gone "$p"
done
before=$(spare_inodes)
for i in "${inodes[@]}"; do
	check "inode $i kept as a spare" grep -qx "$i" <<<"$before"
done

# Round 2: new processes' maps are those files, holding their lines alone.
for i in 1 2 3; do
	start_target setpriv "$T/b$i.log" --reuid="$user" --regid="$user" \
		--clear-groups "$T/bin/svc-v1" 1
	p=$TARGET_PID
	check "pid $p patched" patched "$p"
	check "pid $p's map is a spare's inode" \
		grep -qx "$(stat -c %i "$(map "$p")")" <<<"$before"
	check "pid $p's map holds its $nr lines alone, its user's" exact "$p" "$nr"
done
check "three spares taken from the spare directory" \
	test "$(spare_inodes | wc -l)" = $(($(wc -l <<<"$before") - 3))
kill "$tracer" && wait "$tracer" 2>/dev/null || true
check "maps moved by renames (traced)" \
	test "$(grep -c 'rename.*/tmp/perf-[0-9]*\.map' "$T/strace.out")" -ge 3
check "no map unlinked by hpatchd" \
	bash -c "! grep -E 'unlink(at)?\(.*perf-[0-9]+\.map' '$T/strace.out'"
finish
