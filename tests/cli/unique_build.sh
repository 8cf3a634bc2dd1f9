#!/usr/bin/env bash
# The e2e helper unique_build (lib.bash) gives a copy of a testdata binary
# a build-id of its own, whatever bytes the id holds. It once found the id
# with a line-based grep, which missed an id holding a newline byte: every
# test using it then failed at once, in a checkout whose paths gave the
# binary such an id.
. "$(dirname "$0")/../e2e/lib.bash" # $T, unique_build, check, finish
note=$(readelf -SW "$HP_TD/svc-v1" |
	sed -n 's/.*\.note\.gnu\.build-id *NOTE *[0-9a-f]* \([0-9a-f]*\) .*/\1/p')
check "svc-v1 has a build-id note" test -n "$note"
desc=$((16#$note + 16)) # after namesz, descsz, type and "GNU\0"

mkdir "$T/td"
ln -s "$HP_TD/CMakeFiles" "$T/td/CMakeFiles"
cp "$HP_TD/svc-v1" "$T/td/svc-v1"
# newlines and carriage returns through the first eight bytes of the id
printf '\n\r\n\n\r\n\n\r' | dd of="$T/td/svc-v1" bs=1 seek="$desc" conv=notrunc 2>/dev/null
want=$(readelf -n "$T/td/svc-v1" | sed -n 's/.*Build ID: //p')
check "the doctored id holds newlines ($want)" test "${want:0:4}" = 0a0d

rc=0
(HP_TD=$T/td unique_build svc "$T/svc" "$T/p.hpatch") || rc=$?
check "unique_build succeeds (exit $rc)" test "$rc" -eq 0
got=$(readelf -n "$T/svc" | sed -n 's/.*Build ID: //p')
check "the copy's id differs in its first four bytes only ($got)" \
	test "${got:8}" = "${want:8}" -a "${got:0:8}" != "${want:0:8}"
check "the rest of the file is unchanged" \
	test "$(cmp -l "$T/td/svc-v1" "$T/svc" | awk -v d="$desc" '$1 <= d || $1 > d + 4' | wc -l)" -eq 0
check "the patch is made for the copy" test -s "$T/p.hpatch"
finish
