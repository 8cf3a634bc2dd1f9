#!/usr/bin/env bash
# Issue 14, case 8: files another user could write are never trusted. The
# trust store, the state directory (anti-rollback) and the audit log must
# be owned by root (or the user hpatch runs as), writable by nobody else,
# all the way up (a sticky /tmp is fine above them), and never reached
# through a symbolic link; otherwise hpatch refuses, naming the path and
# the fix. A key that fails these checks (or a dangling *.pub) is ignored
# with a warning naming it; the other keys still work.
. "$(dirname "$0")/lib.bash"
require_ptrace
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root (chown)" >&2; exit 77; }

make_key k
build_patch svc "$T/p.hpatch" --key "$T/k.key" --id p --sequence 5
start_target "$HP_TD/svc-v1" "$T/svc.log" 1
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
apply() { "$HPATCH" apply -p "$pid" "$@" "$T/p.hpatch"; }
v1() { test "$(ask 3 version)" = v1; }

# --- the trust store ---
chmod 0777 "$T/trust"
expect_exit 1 "a trust store writable by others: refused" apply --trust "$T/trust"
check "names the directory and the fix" \
	grep -q "trust store '$T/trust'.*writable by group or others.*" "$T/last.err"
check "... with the command to run" grep -q "hint: run 'chmod go-w $T/trust'" "$T/last.err"
check "still v1" v1
chmod 0755 "$T/trust"
chown nobody "$T/trust"
expect_exit 1 "a trust store owned by a user: refused" apply --trust "$T/trust"
check "names the owner and the fix" \
	bash -c "grep -q \"'$T/trust' is owned by uid $(id -u nobody)\" '$T/last.err' && grep -q 'chown root' '$T/last.err'"
chown root "$T/trust"
mkdir -m 0777 "$T/open"
mkdir "$T/open/trust"
cp "$T/k.pub" "$T/open/trust/"
expect_exit 1 "a directory above the store writable by others: refused" \
	apply --trust "$T/open/trust"
check "names that directory" grep -q "'$T/open' is writable by group or others" "$T/last.err"
check "still v1" v1

chmod 0666 "$T/trust/k.pub"
expect_exit 6 "a key writable by others is not trusted" apply --trust "$T/trust"
check "the warning names the key, the store and the fix" \
	grep -q "warn.*'$T/trust/k.pub'.*writable by group or others.*ignored" "$T/last.err"
chmod 0644 "$T/trust/k.pub"
chown nobody "$T/trust/k.pub"
expect_exit 6 "a key owned by a user is not trusted" apply --trust "$T/trust"
chown root "$T/trust/k.pub"
mkdir "$T/user"
mv "$T/trust/k.pub" "$T/user/k.pub"
chown -R nobody "$T/user"
ln -s "$T/user/k.pub" "$T/trust/k.pub"
expect_exit 6 "a key symlinked to a user's file is not trusted" apply --trust "$T/trust"
check "says it is a symbolic link" grep -q "'$T/trust/k.pub'.*symbolic link" "$T/last.err"
check "still v1" v1
rm "$T/trust/k.pub"
cp "$T/user/k.pub" "$T/trust/k.pub"
chown root "$T/trust/k.pub"
ln -s "$T/nowhere.pub" "$T/trust/dangling.pub"
expect_exit 0 "a dangling *.pub beside a good key: the good key still works" \
	apply --trust "$T/trust"
check "... and the dangling one is named" grep -q "'$T/trust/dangling.pub'" "$T/last.err"
check "now v2" test "$(ask 3 version)" = v2
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
rm "$T/trust/dangling.pub"

# --- the state directory: whoever writes it decides every later apply ---
export HPATCH_STATE_DIR=$T/state2
mkdir -m 0777 "$HPATCH_STATE_DIR"
bid=$(readelf -n "$HP_TD/svc-v1" | sed -n 's/.*Build ID: //p')
echo 18446744073709551615 >"$HPATCH_STATE_DIR/$bid.seq"
chown nobody "$HPATCH_STATE_DIR/$bid.seq"
expect_exit 1 "a state directory writable by others: refused" apply --trust "$T/trust"
check "names it and the fix" \
	bash -c "grep -q \"state directory '$HPATCH_STATE_DIR'.*writable by group or others\" '$T/last.err' && grep -q 'chmod go-w' '$T/last.err'"
check "not taken for a downgrade" bash -c "! grep -q 'already applied on this host' '$T/last.err'"
chmod 0700 "$HPATCH_STATE_DIR"
expect_exit 1 "a state file owned by a user: refused" apply --trust "$T/trust"
check "names the file" grep -q "'$HPATCH_STATE_DIR/$bid.seq' is owned by uid" "$T/last.err"
rm "$HPATCH_STATE_DIR/$bid.seq"
echo 1 >"$T/user/low.seq"
ln -s "$T/user/low.seq" "$HPATCH_STATE_DIR/$bid.seq"
expect_exit 1 "a state file that is a symbolic link: refused" apply --trust "$T/trust"
check "says so" grep -q "'$HPATCH_STATE_DIR/$bid.seq'.*symbolic link" "$T/last.err"
check "still v1" v1
rm "$HPATCH_STATE_DIR/$bid.seq"

# --- the audit log ---
echo "precious" >"$T/user/precious"
ln -s "$T/user/precious" "$T/link.log"
expect_exit 1 "an audit log that is a symbolic link: refused" \
	apply --trust "$T/trust" --audit-log "$T/link.log"
check "names it" grep -q "audit log '$T/link.log'.*symbolic link" "$T/last.err"
check "the link's target is untouched" test "$(cat "$T/user/precious")" = precious
mkdir -m 0777 "$T/logs"
expect_exit 1 "an audit log in a directory writable by others: refused" \
	apply --trust "$T/trust" --audit-log "$T/logs/audit.log"
check "names the directory" grep -q "'$T/logs' is writable by group or others" "$T/last.err"
check "still v1" v1
expect_exit 0 "all fixed: applies" apply --trust "$T/trust"
check "now v2" test "$(ask 3 version)" = v2
exec 3>&-
finish
