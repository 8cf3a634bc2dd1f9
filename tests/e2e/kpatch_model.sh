#!/usr/bin/env bash
# The kpatch model: the release binary as Debian builds it (dpkg-buildflags,
# no function or data sections), and both object trees rebuilt with
# -ffunction-sections -fdata-sections added to exactly those flags. hpdiff
# proves that the release was linked from the rebuilt old objects (every
# function matches), and the patch changes the running release's
# behaviour live; revert brings v1 back.
. "$(dirname "$0")/lib.bash"
require_ptrace

src=$HP_SRC/testdata/targets/svc/svc.c
deb=(-g -O2 "-ffile-prefix-map=$T=." -fstack-protector-strong -Wformat
	-Werror=format-security -D_FORTIFY_SOURCE=2)
mkdir -p "$T/release" "$T/old" "$T/new"
gcc "${deb[@]}" -DV=1 -c "$src" -o "$T/release/svc.o"
gcc -Wl,-z,relro,-z,now -Wl,--build-id "$T/release/svc.o" -o "$T/svc" -lpthread
gcc "${deb[@]}" -ffunction-sections -fdata-sections -DV=1 -c "$src" -o "$T/old/svc.o"
gcc "${deb[@]}" -ffunction-sections -fdata-sections -DV=2 -c "$src" -o "$T/new/svc.o"
check "the release has no function sections, the rebuilt objects do" \
	bash -c "! readelf -SW '$T/release/svc.o' | grep -q ' .text.price' &&
		readelf -SW '$T/old/svc.o' | grep -q ' .text.price'"

make_key k
expect_exit 0 "hpdiff: rebuilt objects against the release binary" \
	"$HPDIFF" --old "$T/old" --new "$T/new" --binary "$T/svc" \
	--key "$T/k.key" -o "$T/p.hpatch"
check "every function of the release matches" \
	grep -qEx 'binary_matches: ([1-9][0-9]*)/\1 functions' "$T/last.out"
check "price is patched" grep -q 'name: price' "$T/last.out"

start_target "$T/svc" "$T/svc.log" 1
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
check "v1" test "$(ask 3 version)-$(ask 3 next)-$(ask 3 'price 10')" = "v1-1-100"
expect_exit 0 "apply" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
check "v2 on the same connection, static local kept" \
	test "$(ask 3 version)-$(ask 3 next)-$(ask 3 'price 10')" = "v2-1002-95"
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
check "v1 again" test "$(ask 3 version)-$(ask 3 next)" = "v1-3"
exec 3>&-
finish
