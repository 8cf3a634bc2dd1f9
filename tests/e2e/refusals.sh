#!/usr/bin/env bash
# Every refusal of a patch file has its own message and exit code, is
# recorded in the audit log, and writes nothing to any process: unsigned,
# untrusted key, bad signature, an unknown header flag, expired, no
# matching target, live code that differs from the build, downgrade.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
"$HPSIGN" keygen "$T/other" >/dev/null
build_patch svc "$T/good.hpatch" --key "$T/k.key" --id fix-2 --sequence 20
build_patch svc "$T/unsigned.hpatch" --id fix-u --sequence 21
build_patch svc "$T/other.hpatch" --key "$T/other.key" --id fix-o --sequence 22
build_patch svc "$T/old.hpatch" --key "$T/k.key" --id fix-1 --sequence 10
build_patch svc "$T/expired.hpatch" --key "$T/k.key" --id fix-e --sequence 30 --expires 1000
"$HPDIFF" --old "$HP_TD/CMakeFiles/demo-v1.objs.dir" --new "$HP_TD/CMakeFiles/demo-v2.objs.dir" --binary "$HP_TD/demo-v1" -o "$T/demo.hpatch" -q --key "$T/k.key" --id demo-fix
# A header flag this hpatch does not know (bit 1), signed by a trusted
# key: refused as docs/FORMAT.md says, whatever else the file holds.
cp "$T/good.hpatch" "$T/newflag.hpatch"
flags=$(od -An -tu1 -j10 -N1 "$T/newflag.hpatch" | tr -d ' ')
printf "\\x$(printf %02x $((flags | 2)))" | dd of="$T/newflag.hpatch" bs=1 seek=10 conv=notrunc 2>/dev/null
"$HPSIGN" sign --key "$T/k.key" -q "$T/newflag.hpatch" >/dev/null
cp "$T/good.hpatch" "$T/tampered.hpatch"
size=$(stat -c %s "$T/tampered.hpatch")
printf '\x55' | dd of="$T/tampered.hpatch" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null

start_target "$HP_TD/svc-v1" "$T/svc.log" 1
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
# Once it answers, the connection's thread (and its stack) exists.
check "v1 answers" test "$(ask 3 version)" = v1
cat "/proc/$pid/maps" >"$T/maps.before"

apply() { "$HPATCH" apply -p "$pid" --trust "$T/trust" "$@"; }
expect_exit 5 "unsigned file refused" apply "$T/unsigned.hpatch"
check "says not signed, with a hint" grep -q "not signed" "$T/last.err"
check "audit line names the process" \
	grep -q "\"action\":\"apply\",\"pid\":$pid,\"executable\":\"$(readlink -f "/proc/$pid/exe")\",.*\"result\":\"HP_E_UNSIGNED\"" "$T/audit.log"
expect_exit 7 "tampered file refused, with a fallback" apply \
	--on-refuse "echo \"\$HPATCH_PID \$HPATCH_REASON\" >> $T/fallback" "$T/tampered.hpatch"
check "the fallback ran for the process named" grep -q "^$pid HP_E_BADSIG" "$T/fallback"
expect_exit 1 "a mistyped path: an error, not a refusal" apply \
	--on-refuse "echo \"\$HPATCH_PID \$HPATCH_REASON\" >> $T/fallback" "$T/no-such.hpatch"
check "... so no fallback ran" test "$(wc -l <"$T/fallback")" -eq 1
expect_exit 6 "untrusted key refused" apply "$T/other.hpatch"
check "names the key id" grep -q "untrusted key $("$HPSIGN" keyid "$T/other.pub")" "$T/last.err"
expect_exit 7 "tampered file refused" apply "$T/tampered.hpatch"
check "says bad signature" grep -q "bad signature" "$T/last.err"
expect_exit 8 "expired patch refused" apply "$T/expired.hpatch"
check "says expired" grep -q "expired" "$T/last.err"
expect_exit 1 "an unknown header flag refused" apply "$T/newflag.hpatch"
check "names the flags set and known" \
	grep -q "'$T/newflag.hpatch': header: unknown flags 0x$(printf %x $((flags | 2))); this hpatch knows 0x1" "$T/last.err"
check "audit line says malformed" grep -q "\"patch_file\":\"$T/newflag.hpatch\",.*\"result\":\"HP_E_BADFORMAT\"" "$T/audit.log"
expect_exit 9 "patch for another build refused" apply "$T/demo.hpatch"
check "names pid and build-id" grep -q "pid $pid: maps no module with build-id" "$T/last.err"
cat "/proc/$pid/maps" >"$T/maps.after"
check "nothing was mapped by any refusal" cmp -s "$T/maps.before" "$T/maps.after"
check "still v1" test "$(ask 3 version)" = v1

# Live code that differs from the build (changed in memory by someone
# else): refused before anything is mapped, naming the function.
exe=$(readlink -f "/proc/$pid/exe")
base=$(awk -v f="$exe" '$6 == f && $3 == "00000000" { split($1, a, "-"); print a[1]; exit }' "/proc/$pid/maps")
off=$(nm "$exe" | awk '$3 == "price" { print $1 }')
at=$((0x$base + 0x$off + 4))
peek() { dd if="/proc/$pid/mem" bs=1 skip="$at" count=1 2>/dev/null | od -An -tx1 | tr -d ' '; }
poke() { printf "\\x$1" | dd of="/proc/$pid/mem" bs=1 seek="$at" conv=notrunc 2>/dev/null; }
orig=$(peek)
poke cc
check "the byte changed" test "$(peek)" = cc
expect_exit 1 "code changed in memory: refused" apply "$T/good.hpatch"
check "names the function and says it differs" \
	grep -q "'price' at 0x[0-9a-f]* differs from the build the patch was made for" "$T/last.err"
cat "/proc/$pid/maps" >"$T/maps.after"
check "nothing was mapped" cmp -s "$T/maps.before" "$T/maps.after"
poke "$orig"
check "still v1" test "$(ask 3 'price 10')" = 100

expect_exit 0 "sequence 20 applies" apply "$T/good.hpatch"
expect_exit 0 "revert it" "$HPATCH" revert -p "$pid"
expect_exit 10 "older sequence 10 refused after the revert" apply "$T/old.hpatch"
check "says which sequence was seen" grep -q "sequence 10, lower than 20" "$T/last.err"
check "still v1 after the downgrade refusal" test "$(ask 3 version)" = v1
expect_exit 0 "--allow-downgrade applies it" apply --allow-downgrade "$T/old.hpatch"
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"

for r in HP_E_UNSIGNED HP_E_UNTRUSTED HP_E_BADSIG HP_E_EXPIRED HP_E_NOTARGET HP_E_MISMATCH HP_E_DOWNGRADE; do
	check "audit log records $r" grep -q "\"result\":\"$r\"" "$T/audit.log"
done
check "signer's key id is in the audit log" \
	grep -q "\"key_id\":\"$("$HPSIGN" keyid "$T/k.pub")\"" "$T/audit.log"
exec 3>&-
finish
