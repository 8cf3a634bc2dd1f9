#!/usr/bin/env bash
# hpdiff and hpatch from the command line: usage errors, --help, the JSON
# report's fields, "no change" exit 3, refusals exit 1 with every refusal
# listed, and hpatch inspect.
. "$(dirname "$0")/../e2e/lib.bash"
O=$HP_TD/CMakeFiles
B=$HP_TD

expect_exit 2 "hpdiff without arguments" "$HPDIFF"
check "names the required options" grep -q -- "--old, --new and --binary are required" "$T/last.err"
expect_exit 0 "hpdiff --help" "$HPDIFF" --help
check "help on stdout" grep -q -- "--binary BIN" "$T/last.out"
expect_exit 0 "hpdiff --version" "$HPDIFF" --version
expect_exit 3 "no change: exit 3" "$HPDIFF" --old "$O/demo-v1.objs.dir" --new "$O/demo-v1.objs.dir" --binary "$B/demo-v1"
expect_exit 1 "changed data: exit 1" "$HPDIFF" --old "$O/changed_data-v1.objs.dir" --new "$O/changed_data-v2.objs.dir" --binary "$B/changed_data-v1" --json -o "$T/no.hpatch"
check "refusal in JSON with its code" grep -q '"refused":\[{"symbol":"limit","module":"changed_data-v1","object":"cases/changed_data.c.o","code":"HP_E_CHANGED_DATA"' "$T/last.out"
check "stderr says what to do" grep -q "hint:" "$T/last.err"
check "no patch written when refused" test ! -e "$T/no.hpatch"
expect_exit 0 "report with source lines" "$HPDIFF" --old "$O/demo-v1.objs.dir" --new "$O/demo-v2.objs.dir" --binary "$B/demo-v1" --json
check "JSON has schema_version" grep -q '^{"schema_version":1,' "$T/last.out"
check "function has file and line" grep -q '"file":"[^"]*demo_quote.c","line":[0-9]' "$T/last.out"
# An object missing from the new tree (a failed build?) is warned about:
# otherwise it would pass for "no change".
cp -r "$O/demo-v1.objs.dir" "$T/partial1"
cp -r "$O/demo-v2.objs.dir" "$T/partial2"
find "$T/partial1" "$T/partial2" -name 'demo_main*.o' -delete
expect_exit 3 "new tree without an object, nothing else changed: exit 3" \
	"$HPDIFF" --old "$O/demo-v1.objs.dir" --new "$T/partial1" --binary "$B/demo-v1"
check "warns, naming the object" \
	grep -q "warning: 'targets/demo/demo_main.c.o' is in .* but not in .*removed from the build" "$T/last.err"
expect_exit 0 "and with a change" "$HPDIFF" --old "$O/demo-v1.objs.dir" \
	--new "$T/partial2" --binary "$B/demo-v1" --json -o "$T/partial.hpatch"
check "report counts it" grep -q '"objects_removed":1' "$T/last.out"
expect_exit 1 "missing binary" "$HPDIFF" --old "$O/demo-v1.objs.dir" --new "$O/demo-v2.objs.dir" --binary "$T/nope"
check "names the file" grep -q "'$T/nope': No such file" "$T/last.err"

"$HPSIGN" keygen "$T/k" >/dev/null
mkdir -p "$T/trust" && cp "$T/k.pub" "$T/trust/"
"$HPDIFF" --old "$O/demo-v1.objs.dir" --new "$O/demo-v2.objs.dir" --binary "$B/demo-v1" \
	--key "$T/k.key" -o "$T/fix.hpatch" -d "discount" --sequence 7 -q
expect_exit 0 "inspect --json" "$HPATCH" inspect --trust "$T/trust" --json "$T/fix.hpatch"
check "inspect: id, sequence, trust" \
	grep -q '"patch_id":"fix","description":"discount",.*"sequence":7,.*"signed":true,"key_id":"[0-9a-f]*","trusted":true' "$T/last.out"
check "inspect: function sizes" grep -q '"name":"format_quote","old_size":[0-9]*,"new_size":[0-9]*' "$T/last.out"
mkdir -p "$T/empty"
expect_exit 6 "inspect refuses to parse an untrusted file" "$HPATCH" inspect --trust "$T/empty" --json "$T/fix.hpatch"
check "names the key and offers --unverified" \
	bash -c "grep -q 'untrusted key' '$T/last.err' && grep -q -- '--unverified' '$T/last.err'"
expect_exit 0 "inspect --unverified parses it" "$HPATCH" inspect --trust "$T/empty" --unverified --json "$T/fix.hpatch"
check "reported unverified" grep -q '"trusted":false' "$T/last.out"
expect_exit 2 "hpatch apply without target" "$HPATCH" apply "$T/fix.hpatch"
check "says -p or --all" grep -q -- "give -p PID or --all" "$T/last.err"
expect_exit 2 "hpatch apply -p junk" "$HPATCH" apply -p 12x "$T/fix.hpatch"
expect_exit 2 "hpatch unknown command" "$HPATCH" appl
expect_exit 0 "hpatch --help" "$HPATCH" --help
check "lists commands" grep -q "revert" "$T/last.out"
expect_exit 1 "apply to a missing pid" "$HPATCH" apply -p 999999 --trust "$T/trust" "$T/fix.hpatch"
check "names the pid" grep -q "pid 999999: no such process" "$T/last.err"
finish
