#!/usr/bin/env bash
# Objects built by clang: its string literals carry local ".L.str" labels
# typed as objects (gcc's ".LC0" are untyped), which must count as labels,
# not variables. The demo built with clang is patched live and reverted;
# a string-only renumbering changes nothing.
. "$(dirname "$0")/lib.bash"
require_ptrace

S=$HP_SRC/testdata/targets/demo
read -r -a FLAGS <<<"$(flavour_cflags) -fPIE"
for v in 1 2; do
	mkdir -p "$T/v$v"
	for f in demo_main demo_quote; do
		clang "${FLAGS[@]}" -DDEMO_VERSION=$v -c "$S/$f.c" -o "$T/v$v/$f.o"
	done
	clang -pie -Wl,--build-id "$T/v$v"/*.o -o "$T/demo-v$v" -lpthread
done
check "the old objects carry clang's .L.str" \
	bash -c "readelf -s '$T/v1/demo_quote.o' | grep -q 'OBJECT  LOCAL .* \.L\.str'"
make_key k
expect_exit 0 "hpdiff over clang objects" "$HPDIFF" --old "$T/v1" \
	--new "$T/v2" --binary "$T/demo-v1" --key "$T/k.key" -o "$T/fix.hpatch" \
	--json
check "exactly format_quote" \
	test "$(grep -o '"functions":\[[^]]*\]' "$T/last.out" |
		grep -o '"name":"[^"]*"' | tr '\n' ' ')" = '"name":"format_quote" '

start_target "$T/demo-v1" "$T/demo.log" 0 2
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
check "v1 answers" test "$(ask 3 3)" = "quote for 3: 30 EUR (v1)"
expect_exit 0 "apply" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/fix.hpatch"
check "v2 answers on the same connection" \
	test "$(ask 3 3)" = "quote for 3: 27 EUR (v2, 10% off)"
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
check "v1 again" test "$(ask 3 3)" = "quote for 3: 30 EUR (v1)"
exec 3>&-

# The same source again with one more string literal before the changed
# one: clang renumbers .L.str but no function changed.
mkdir -p "$T/v1b"
printf 'static const char *hp_unused_first = "first";\n' >"$T/extra.c"
cat "$S/demo_quote.c" >>"$T/extra.c"
clang "${FLAGS[@]}" -DDEMO_VERSION=1 -I"$S" -c "$T/extra.c" \
	-o "$T/v1b/demo_quote.o"
cp "$T/v1/demo_main.o" "$T/v1b/"
expect_exit 3 "renumbered .L.str labels alone: no change" "$HPDIFF" \
	--old "$T/v1" --new "$T/v1b" --binary "$T/demo-v1" -o "$T/none.hpatch"
finish
