#!/usr/bin/env bash
# dlopen of a patched library: the first on this host (its name opened in
# a library directory: beside the program, as its $ORIGIN RUNPATH says),
# then in others (its file, patched once, is watched): each process that
# opens it is looked at within the sweep interval (0.1 s), long before
# the periodic rescan (60 s here), including a second dlopen right after
# the sweep for the first. The sweep follows the library's close, which
# a loader does once every segment is mapped, not its open: on a loaded
# host the mapping comes long after the open (a loader 1 s slow between
# the two is patched all the same). A library copied into a directory
# after it was watched is seen too.
. "$(dirname "$0")/lib.bash"
require_ptrace

O=$HP_TD/CMakeFiles
make_key k
id=dlopen-$$
"$HPDIFF" --old "$O/tlslib-v1.objs.dir" --new "$O/tlslib-v2.objs.dir" \
	--binary "$HP_TD/libtlslib-v1.so" --key "$T/k.key" \
	--id "$id" -o "$T/tls.hpatch" -q >/dev/null
agent_policy '[apply]' 'rescan = 60s'
cp "$HP_TD/lib_user" "$HP_TD/libgreet-v1.so" \
	"$HP_TD/libtlslib-v1.so" "$HP_TD/hostile" "$T/bin/"
expect_exit 0 "install" "$HPATCH" install --store "$AGENT_STORE" --trust "$T/trust" "$T/tls.hpatch"
start_agent
# user N: a lib_user reading commands from fd 10+N.
user() {
	mkfifo "$T/in$1"
	"$T/bin/lib_user" <"$T/in$1" >"$T/u$1.log" 2>&1 &
	PIDS+=($!)
	eval "U$1=$!"
	eval "exec $((10 + $1))>\"$T/in$1\""
}
user 1
sleep 0.6 # past the rescans that follow an exec
echo load >&11
check "first user loaded the library" wait_until 10 grep -q loaded "$T/u1.log"
check "the first dlopen on this host is patched" wait_until 10 has_patch "$U1" "$id"
user 2
user 3
sleep 0.6 # past the rescans that follow an exec
echo load >&12
sleep 0.03 # after the sweep for user 2, within its interval
echo load >&13
check "a dlopen is patched without the periodic rescan" wait_until 10 has_patch "$U2" "$id"
check "... and one right after the sweep for it" wait_until 10 has_patch "$U3" "$id"
start_target "$T/bin/hostile" "$T/slow.log" slowload "$T/bin/libtlslib-v1.so" 1000
check "a library mapped 1 s after its open is patched" wait_until 10 has_patch "$TARGET_PID" "$id"
# A library copied in after its directory was first watched (the
# directory is watched for new files, not for every open in it).
mkdir "$T/bin/late"
cp "$HP_TD/lib_user" "$T/bin/late/"
mkfifo "$T/in4"
"$T/bin/late/lib_user" <"$T/in4" >"$T/u4.log" 2>&1 &
PIDS+=($!)
U4=$!
exec 14>"$T/in4"
sleep 0.6 # past the rescans that follow an exec: its directory watched
cp "$HP_TD/libgreet-v1.so" "$HP_TD/libtlslib-v1.so" "$T/bin/late/"
sleep 0.1
echo load >&14
check "a library new in a watched directory: loaded" wait_until 10 grep -q loaded "$T/u4.log"
check "... and its dlopen patched without the periodic rescan" wait_until 10 has_patch "$U4" "$id"
exec 11>&- 12>&- 13>&- 14>&-
finish
