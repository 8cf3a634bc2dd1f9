#!/usr/bin/env bash
# The patch store: install verifies (signature, trusted key, expiry,
# anti-rollback) and adds the file atomically; list shows each installed
# patch and the processes of its build; uninstall removes it and reverts
# it in every process that has it, and every step is in the audit log.
. "$(dirname "$0")/lib.bash"
require_ptrace

S=$T/store
make_key k
"$HPSIGN" keygen "$T/other" >/dev/null
id=store-$$
build_patch svc "$T/svc.hpatch" --key "$T/k.key" --id "$id" --sequence 5
build_patch svc "$T/old.hpatch" --key "$T/k.key" --id "$id-old" --sequence 4
build_patch svc "$T/unsigned.hpatch" --id "$id-u"
build_patch svc "$T/other.hpatch" --key "$T/other.key" --id "$id-o"
build_patch svc "$T/expired.hpatch" --key "$T/k.key" --id "$id-e" --expires 1

expect_exit 5 "unsigned: refused" "$HPATCH" install --store "$S" --trust "$T/trust" "$T/unsigned.hpatch"
expect_exit 6 "untrusted key: refused" "$HPATCH" install --store "$S" --trust "$T/trust" "$T/other.hpatch"
expect_exit 8 "expired: refused" "$HPATCH" install --store "$S" --trust "$T/trust" "$T/expired.hpatch"
check "nothing refused was stored" test -z "$(ls -A "$S" 2>/dev/null | grep -v '^\.lock$')"
expect_exit 0 "install" "$HPATCH" install --store "$S" --trust "$T/trust" "$T/svc.hpatch"
check "stored under its id" cmp -s "$T/svc.hpatch" "$S/$id.hpatch"
check "no temporary file left" test "$(ls "$S")" = "$id.hpatch"
check "says hpatchd is not running" grep -q "hint: hpatchd is not running" "$T/last.err"
expect_exit 3 "the same again: nothing to do" "$HPATCH" install --store "$S" --trust "$T/trust" "$T/svc.hpatch"
expect_exit 10 "older sequence for the same build: refused" \
	"$HPATCH" install --store "$S" --trust "$T/trust" "$T/old.hpatch"
check "... naming the installed patch" grep -q "older than installed '$id'" "$T/last.err"
expect_exit 0 "--allow-downgrade installs it" \
	"$HPATCH" install --store "$S" --trust "$T/trust" --allow-downgrade "$T/old.hpatch"

start_target "$HP_TD/svc-v1" "$T/a.log" 1
a=$TARGET_PID
open_conn 3 "$TARGET_PORT"
start_target "$HP_TD/svc-v1" "$T/b.log" 1
b=$TARGET_PID
open_conn 4 "$TARGET_PORT"
expect_exit 0 "apply the installed file to one process" \
	"$HPATCH" apply -p "$a" --trust "$T/trust" "$S/$id.hpatch"
expect_exit 0 "list" "$HPATCH" list --store "$S" --trust "$T/trust" --json
check "lists both patches" test "$(grep -o "\"patch_id\":\"$id[^\"]*\"" "$T/last.out" | sort | tr '\n' ' ')" \
	= "\"patch_id\":\"$id\" \"patch_id\":\"$id-old\" "
check "the older one is superseded" grep -q "\"patch_id\":\"$id-old\",[^]]*\"state\":\"superseded\"" "$T/last.out"
check "pid $a has it applied" grep -q "{\"pid\":$a,\"state\":\"applied\"" "$T/last.out"
check "pid $b is pending: hpatchd is not running" \
	grep -q "{\"pid\":$b,\"state\":\"pending\",\"reason\":\"hpatchd is not running\"" "$T/last.out"
check "a is v2" test "$(ask 3 version)" = v2

expect_exit 0 "uninstall reverts it everywhere" \
	"$HPATCH" uninstall --store "$S" --trust "$T/trust" "$id"
check "a is v1 again" test "$(ask 3 version)" = v1
check "b untouched, v1" test "$(ask 4 version)" = v1
check "the file is gone, and its mark" test "$(ls "$S")" = "$id-old.hpatch"
check "report names pid $a" grep -q "pid: $a" "$T/last.out"
expect_exit 3 "uninstall again: nothing to do" \
	"$HPATCH" uninstall --store "$S" --trust "$T/trust" "$id"
check "audit: install, uninstall and the revert" \
	test "$(grep -o '"action":"[a-z]*"' "$HPATCH_AUDIT_LOG" | sort | uniq -c | awk '{print $2 $1}' | tr '\n' ' ')" \
	= '"action":"apply"1 "action":"install"7 "action":"revert"1 "action":"uninstall"2 '
check "audit: the revert names pid $a and the patch" \
	grep -q "\"action\":\"revert\",\"pid\":$a,.*\"patch_id\":\"$id\"" "$HPATCH_AUDIT_LOG"

# A patch file altered in the store no longer verifies: listed as such.
printf '\xff' | dd of="$S/$id-old.hpatch" bs=1 seek=40 conv=notrunc status=none
expect_exit 0 "list with a damaged file" "$HPATCH" list --store "$S" --trust "$T/trust"
check "the damaged file is listed as refused" grep -q "state: HP_E_BADSIG" "$T/last.out"
exec 3>&- 4>&-
finish
