#!/usr/bin/env bash
# gcc clones, live: clone_svc answers from tier_price.constprop.N,
# weight.isra.0, reorder.constprop.0.isra.0 and checksum.part.0. The v2
# patch fixes weight.isra.0 (and its caller: one more field passed) and
# checksum.part.0, and adds a tier whose new clone takes number 0 in the
# -fipa-cp-clone build, so gold's and basic's clones, unchanged, move from
# .0/.1 to .1/.2: they must keep answering from their old code (gold's old
# .0 redirected to the new .0 would price gold as staff). Then revert. The
# same on the -O2 build, where gcc makes one tier_price for all tiers.
. "$(dirname "$0")/lib.bash"
require_ptrace

# start_piped NAME: NAME-v1 reading requests from fd 3, answering on fd 4.
start_piped() {
	local line
	mkfifo "$T/$1.in" "$T/$1.out"
	"$HP_TD/$1-v1" <"$T/$1.in" >"$T/$1.out" 2>"$T/$1.err" &
	PIDS+=($!)
	TARGET_PID=$!
	exec 3>"$T/$1.in" 4<"$T/$1.out"
	IFS= read -r -t 5 line <&4
	[ "$line" = "clone_svc: ready pid=$TARGET_PID" ]
}

q() { # q REQUEST: one answer
	local line
	echo "$1" >&3
	IFS= read -r -t 5 line <&4
	printf '%s\n' "$line"
}

# v1 and v2 answers, as each build gives them when run whole.
check_v1() { # check_v1 WHEN
	check "$1: v1" test "$(q version)" = v1
	check "$1: no staff tier" test "$(q 'staff 7')" = "?"
	check "$1: shipment weighs over-limit items" test "$(q 'ship 0 3')" = 8080
	check "$1: checksum reads past the name" \
		test "$(q 'sum 0 20')" = 1888336582
}

check_same() { # check_same WHEN: answers both versions give
	check "$1: basic tier" test "$(q 'basic 7')" = 70
	check "$1: gold tier" test "$(q 'gold 7')-$(q 'gold 100')" = "171-2430"
	check "$1: a bad quantity takes the clone's .cold part" \
		test "$(q 'basic -1')" = 0
	check "$1: reorder, from an unchanged .constprop.0.isra.0" \
		test "$(q 'need 1')-$(q 'need 0')" = "24-0"
	check "$1: checksum within the name" \
		test "$(q 'sum 2 4')" = 2064056110
}

make_key k
for name in clone_svc_cp clone_svc; do
	build_patch "$name" "$T/$name.hpatch" --key "$T/k.key" --id "$name-fix"
	check "$name: started" start_piped "$name"
	pid=$TARGET_PID
	check_v1 "$name before"
	check_same "$name before"

	expect_exit 0 "$name: apply" \
		"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/$name.hpatch"
	check "$name after apply: v2" test "$(q version)" = v2
	check "$name after apply: the new clone prices the staff tier" \
		test "$(q 'staff 7')" = 84
	check "$name after apply: fixed weight.isra.0 skips over-limit items" \
		test "$(q 'ship 0 3')-$(q 'ship 0 1')" = "5480-480"
	check "$name after apply: fixed checksum.part.0 stops at the name" \
		test "$(q 'sum 0 20')" = 1318509894
	check_same "$name after apply"

	expect_exit 0 "$name: revert" "$HPATCH" revert -p "$pid"
	check_v1 "$name after revert"
	check_same "$name after revert"
	check "$name: the .cold part logged each bad quantity" \
		test "$(grep -c 'bad quantity -1' "$T/$name.err")" = 3
	exec 3>&- 4<&-
done
check "audit log lists the renumbering patch's functions" \
	grep -q '"patch_id":"clone_svc_cp-fix".*"functions":\["checksum.part.0","weight.isra.0","tier_price.constprop.0","price_staff","shipment_weight","answer"\]' "$T/audit.log"
finish
