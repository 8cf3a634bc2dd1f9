#!/usr/bin/env bash
# Size of a signed .hpatch for each testdata pair that hpdiff accepts:
# header, metadata, compressed payload, signature, total; beside the zstd
# size of the changed code alone (the budget: total <= that + 300 bytes),
# bsdiff of the two binaries and zstd --patch-from of the two binaries.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
B=${HP_BUILD_DIR:-$src/build}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
command -v bsdiff >/dev/null || apt-get install -y -qq bsdiff >/dev/null 2>&1 || true
"$B/signing/hpsign" keygen "$t/k" >/dev/null
printf '%-14s %6s %5s %8s %4s %6s | %8s %7s %11s\n' case header meta payload sig total \
	code.zst bsdiff zstd-patch
for c in demo svc static_local new_func extcall inline_callee spin; do
	O=$B/testdata/CMakeFiles
	"$B/differ/hpdiff" --old "$O/$c-v1.objs.dir" --new "$O/$c-v2.objs.dir" \
		--binary "$B/testdata/$c-v1" --key "$t/k.key" -o "$t/$c.hpatch" -q \
		>/dev/null 2>&1 || continue
	f=$t/$c.hpatch
	meta=$(od -An -tu4 -j12 -N4 "$f" | tr -d ' ')
	csize=$(od -An -tu4 -j16 -N4 "$f" | tr -d ' ')
	total=$(stat -c %s "$f")
	# zstd of the changed functions' new code, cut from the new binary
	: >"$t/code"
	for fn in $("$B/runtime/hpatch" inspect --trust "$t" --json "$f" |
		grep -o '"name":"[^"]*","old_size":[0-9]*,"new_size":[0-9]*' |
		sed 's/"name":"\([^"]*\)".*/\1/'); do
		line=$(nm -S --defined-only "$B/testdata/$c-v2" | awk -v n="$fn" '$4 == n')
		[ -n "$line" ] || continue
		addr=$((16#$(echo "$line" | cut -d' ' -f1)))
		size=$((16#$(echo "$line" | cut -d' ' -f2)))
		off=$(objdump -h "$B/testdata/$c-v2" | awk '$2 == ".text" {print $4, $6}')
		vma=$((16#${off% *}))
		foff=$((16#${off#* }))
		dd if="$B/testdata/$c-v2" bs=1 skip=$((addr - vma + foff)) count="$size" \
			status=none >>"$t/code"
	done
	codez=$(zstd -q -19 -c "$t/code" | wc -c)
	bsd=-
	if command -v bsdiff >/dev/null; then
		bsdiff "$B/testdata/$c-v1" "$B/testdata/$c-v2" "$t/$c.bsdiff"
		bsd=$(stat -c %s "$t/$c.bsdiff")
	fi
	zstd -q -19 --patch-from="$B/testdata/$c-v1" "$B/testdata/$c-v2" \
		-o "$t/$c.zpatch" -f 2>/dev/null
	zp=$(stat -c %s "$t/$c.zpatch")
	printf "%-14s %6d %5d %8d %4d %6d | %8s %7s %11d\n" "$c" 24 "$meta" "$csize" 80 \
		"$total" "$codez" "$bsd" "$zp"
done
