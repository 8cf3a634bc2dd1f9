#!/usr/bin/env bash
# Production binaries are stripped: hpdiff takes their symbols from the
# separate debug file, given with --debug-file or found by build-id under
# the debug root (/usr/lib/debug, or HP_DEBUG_ROOT), and produces the same
# patch as from the unstripped binary.
. "$(dirname "$0")/../e2e/lib.bash"
O=$HP_TD/CMakeFiles
bin=$HP_TD/demo-v1
objcopy --only-keep-debug "$bin" "$T/demo.debug"
strip -o "$T/demo-stripped" "$bin"
diffit() {
	"$HPDIFF" --old "$O/demo-v1.objs.dir" --new "$O/demo-v2.objs.dir" \
		--binary "$T/demo-stripped" --json --sequence 1 --id x "$@"
}
export HP_DEBUG_ROOT=$T/debug
expect_exit 1 "stripped, no debug file: refused" diffit
check "says where it looked, and what to do" \
	bash -c "grep -q 'no symbol table (stripped), and no debug file at' '$T/last.err' && grep -q -- '--debug-file' '$T/last.err'"
expect_exit 0 "stripped with --debug-file" diffit --debug-file "$T/demo.debug" -o "$T/a.hpatch"
check "finds format_quote" grep -q '"name":"format_quote"' "$T/last.out"
id=$(readelf -n "$bin" | sed -n 's/.*Build ID: \([0-9a-f]*\).*/\1/p')
mkdir -p "$T/debug/.build-id/${id:0:2}"
cp "$T/demo.debug" "$T/debug/.build-id/${id:0:2}/${id:2}.debug"
expect_exit 0 "stripped, debug file found by build-id" diffit -o "$T/b.hpatch"
expect_exit 0 "unstripped" "$HPDIFF" --old "$O/demo-v1.objs.dir" --new "$O/demo-v2.objs.dir" \
	--binary "$bin" --sequence 1 --id x -o "$T/c.hpatch"
# The module's name is the binary's file name; everything else must match.
norm() {
	"$HPATCH" inspect --unverified --json "$1" 2>/dev/null |
		sed -e 's/"created":[0-9]*//' -e 's/"file_size":[0-9]*//' \
			-e 's/"payload_[a-z]*":[0-9]*//g' \
			-e 's/"modules":\[{"name":"[^"]*"/"modules":[{/'
}
norm "$T/a.hpatch" >"$T/a.json"
norm "$T/c.hpatch" >"$T/c.json"
check "same functions, relocations and code as from the unstripped binary" \
	cmp -s "$T/a.json" "$T/c.json"
objcopy --only-keep-debug "$HP_TD/svc-v1" "$T/wrong.debug"
expect_exit 1 "a debug file of another build is refused" diffit --debug-file "$T/wrong.debug"
check "says build-id differs" grep -q "build-id differs" "$T/last.err"
finish
