#!/usr/bin/env bash
# hpatchd's clean-up of an exited process's perf map moves it into the
# spare directory instead of unlinking it, and a later map of a process of
# the same user is that file renamed (runtime/rt_perfmap.c): no inode
# freed and allocated per process (on an ext4 without a journal, a create
# after many unlinks costs hundreds of microseconds). Each map holds that
# process's lines alone (none of the longer old ones) and is its user's.
# The targets run as a user of this test's own: no other test's process
# takes its spares (another user's never are).
#
# A file may already be at /tmp/perf-PID.map when a process gets PID: a
# map left by an earlier process of that pid (a bench's, another test's,
# anyone's). There no spare can go (the rename never replaces), and the
# map is made as before, in that file when it is the process's user's or
# hpatch's own, else not at all. So each target is held before its exec
# until the test has looked at its path: a process meant to take a spare
# gets a pid with nothing there (another is forked otherwise); two others
# get a file the test puts there, hpatch's (root's) and another user's,
# and are checked for what must happen then.
. "$(dirname "$0")/lib.bash"
require_ptrace

# (Unique among the tests running: a test of the other build flavour at
# once, with a user of the same number, would take this one's spares.)
user=$((200000 + 2 * $$))
other=$((user + 1))
spares=/tmp/.hpatch-perfmap-spares.$(id -u)
old_line="7f0000004000 40 old_fn [hpatch:old-$$]"
map() { echo "/tmp/perf-$1.map"; }
gone() { [ ! -e "$(map "$1")" ]; }
end() { kill "$1" && wait "$1" 2>/dev/null || true; }
# held NAME: a process that runs svc-v1 as $user once told to (a line to
# $T/NAME.go), its pid in HELD_PID; release NAME: tell it, wait for ready.
held() {
	mkfifo "$T/$1.go"
	(
		read -r _ <"$T/$1.go"
		exec setpriv --reuid="$user" --regid="$user" --clear-groups \
			"$T/bin/svc-v1" 1 >"$T/$1.log" 2>&1
	) &
	HELD_PID=$!
	PIDS+=("$HELD_PID")
}
release() {
	echo go >"$T/$1.go"
	TARGET_PID=$HELD_PID
	wait_until 10 grep -q ready "$T/$1.log"
}
# held_fresh NAME: held, at a pid whose map path holds nothing (then
# nothing but hpatch, or this test, writes there: no other process has
# that pid while this one lives); a pid with a file is given up, and
# another taken. fresh NAME: the same, released.
held_fresh() {
	local n
	for n in $(seq 50); do
		held "$1.$n"
		if [ ! -e "$(map "$HELD_PID")" ] && [ ! -L "$(map "$HELD_PID")" ]; then
			HELD_NAME=$1.$n
			return
		fi
		echo "pid $HELD_PID: $(map "$HELD_PID") there already, another pid"
		kill "$HELD_PID"
		wait "$HELD_PID" 2>/dev/null || true
		unset 'PIDS[-1]' # (that file is not ours to remove)
	done
	return 1
}
fresh() { held_fresh "$1" && release "$HELD_NAME"; }
# patched PID: hpatchd patched it and wrote its map.
patched() {
	wait_until 10 has_patch "$1" "$id" &&
		wait_until 10 grep -q "\[hpatch:$id\]" "$(map "$1")"
}
# exact PID NR OWNER: PID's map holds NR lines of the patch, each at an
# address PID maps, and nothing else; it is OWNER's ($user by default).
exact() {
	local a lo hi ok
	[ "$(grep -c "^[0-9a-f]* [0-9a-f]* [^ ]* \[hpatch:$id\]\$" "$(map "$1")")" = "$2" ] &&
		[ "$(wc -l <"$(map "$1")")" = "$2" ] &&
		[ "$(tail -c 1 "$(map "$1")" | od -An -c | tr -d ' ')" = '\n' ] &&
		[ "$(stat -c %u "$(map "$1")")" = "${3:-$user}" ] || return 1
	for a in $(awk '{print $1}' "$(map "$1")"); do
		ok=
		while IFS=- read -r lo hi; do
			if ((16#$a >= 16#$lo && 16#$a < 16#${hi%% *})); then ok=1; break; fi
		done <"/proc/$1/maps"
		[ -n "$ok" ] || return 1
	done
}
spare_inodes() { find "$spares" -maxdepth 1 -uid "$user" -printf '%i\n' 2>/dev/null | sort; }
# plant PID UID: an earlier process's map at PID's path, UID's, of lines
# as hpatch writes them, last written an hour ago.
plant() {
	(set -C && printf '%s\n' "$old_line" "$old_line" "$old_line" >"$(map "$1")")
	chown "$2:$2" "$(map "$1")"
	touch -d '-1 hour' "$(map "$1")"
}
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
	check "a$i started" fresh "a$i"
	first+=("$TARGET_PID")
	check "pid $TARGET_PID patched" patched "$TARGET_PID"
done
nr=$(grep -c "\[hpatch:$id\]" "$(map "${first[0]}")")
for p in "${first[@]}"; do
	check "pid $p's map exact" exact "$p" "$nr"
	echo "$old_line" >>"$(map "$p")"
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

# Round 2, at a pid with a map of hpatch's (root's) of an earlier process
# there: no spare goes there (each stays), the map is that file, written
# over with this process's lines alone.
check "a pid held" held_fresh stale
p=$HELD_PID
check "a map planted at its path" plant "$p" 0
planted=$(stat -c %i "$(map "$p")")
check "released" release "$HELD_NAME"
check "pid $p patched" patched "$p"
check "pid $p's map is the file that was there" \
	test "$(stat -c %i "$(map "$p")")" = "$planted"
check "pid $p's map holds its $nr lines alone, hpatch's" exact "$p" "$nr" 0
check "no spare taken for it" test "$(spare_inodes)" = "$before"
# ... and at a pid with another user's file there: not written at all.
check "a pid held" held_fresh foreign
q=$HELD_PID
check "another user's file planted at its path" plant "$q" "$other"
sum=$(cksum <"$(map "$q")")
check "released" release "$HELD_NAME"
check "pid $q patched" wait_until 10 has_patch "$q" "$id"
check "hpatchd says pid $q's map is not written" wait_until 10 \
	grep -q "pid $q: '$(map "$q")': perf map not written" "$T/hpatchd.log"
check "pid $q's map untouched, still the other user's" \
	test "$(cksum <"$(map "$q")") $(stat -c %u "$(map "$q")")" = "$sum $other"
check "no spare taken for it" test "$(spare_inodes)" = "$before"

# Round 2: new processes' maps are those files, holding their lines alone.
for i in 1 2 3; do
	check "b$i started" fresh "b$i"
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
