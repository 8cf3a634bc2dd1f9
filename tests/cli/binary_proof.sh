#!/usr/bin/env bash
# hpdiff proves that --binary was linked from --old (differ/diff_proof.c):
# a binary of another build of the same source (-O1 instead of -O2, one more
# struct member) is refused with HP_E_FOREIGN_BINARY and nothing is written;
# the binary of the same build passes, stripped too; the kpatch model
# (objects rebuilt with function and data sections added to the release's
# flags) passes against the release binary; an unrelated --new tree stops.
. "$(dirname "$0")/../e2e/lib.bash"
src=$HP_SRC/testdata/cases/foreign.c
# Debian's dpkg-buildflags, and the sections hpdiff's own testdata adds.
deb=(-g -O2 "-ffile-prefix-map=$T=." -fstack-protector-strong -Wformat
	-Werror=format-security -D_FORTIFY_SOURCE=2)
secs=(-ffunction-sections -fdata-sections)
# obj DIR V FLAGS...: DIR/foreign.o of version V; bin OUT DIR: link it.
obj() {
	local d=$T/$1 v=$2
	shift 2
	mkdir -p "$d"
	gcc "$@" -DV="$v" -c "$src" -o "$d/foreign.o"
}
bin() { gcc -Wl,-z,relro,-z,now -Wl,--build-id "$T/$2/foreign.o" -o "$T/$1"; }
obj rel1 1 "${deb[@]}"
obj rel2 2 "${deb[@]}"
obj sec1 1 "${deb[@]}" "${secs[@]}"
obj sec2 2 "${deb[@]}" "${secs[@]}"
obj o1 1 "${deb[@]/-O2/-O1}" "${secs[@]}"
obj extra 1 "${deb[@]}" "${secs[@]}" -DEXTRA
bin release rel1
bin release-sec sec1
bin release-o1 o1
bin release-extra extra
make_key k
diffit() {
	"$HPDIFF" --old "$T/$1" --new "$T/$2" --binary "$T/$3" --key "$T/k.key" \
		--sequence 1 --id x "${@:4}"
}

expect_exit 0 "the binary of the same build" diffit sec1 sec2 release-sec -o "$T/same.hpatch"
check "says all functions match" grep -qEx 'binary_matches: ([1-9][0-9]*)/\1 functions' "$T/last.out"
check "patch written" test -s "$T/same.hpatch"

expect_exit 1 "a binary built with -O1" diffit sec1 sec2 release-o1 -o "$T/o1.hpatch"
check "no patch written" test ! -e "$T/o1.hpatch"
check "code, function, offset and likely cause" \
	grep -q "foreign.o: 'limit_of': 'limit_of'+0x[0-9a-f]* differs in '.*release-o1' (.*): built with other flags, or from other sources \[HP_E_FOREIGN_BINARY\]" "$T/last.err"
check "says it is the binary" grep -q "a binary was not linked from the old objects; no patch written" "$T/last.err"
check "what to do" grep -q "hint: give --binary the binary linked from exactly the --old objects" "$T/last.err"

expect_exit 1 "a binary with one more struct member" diffit sec1 sec2 release-extra --json -o "$T/extra.hpatch"
check "no patch written" test ! -e "$T/extra.hpatch"
# limit_of reads c->limit at another offset: its bytes differ, not its size.
check "limit_of differs, in JSON" \
	grep -q '"symbol":"limit_of","module":"release-extra","object":"foreign.o","code":"HP_E_FOREIGN_BINARY","message":"'"'"'limit_of'"'"'+0x[0-9a-f]* differs' "$T/last.out"
check "the JSON says how many match" grep -qE '"binary_matches":"[0-9]+/[0-9]+ functions"' "$T/last.out"

# The kpatch model: the release as Debian builds it (no sections), the
# objects rebuilt with sections added; the same patch either way.
# The release's assembler resolved the tail call in scaled_next to a short
# jmp; the rebuilt object has a near one with a relocation (other bytes,
# other size, the same code).
check "the release has the short jmp, the object a relocation" bash -c "
	objdump -d '$T/release' | grep -A3 '<scaled_next>:' | grep -q ':	eb ' &&
	readelf -rW '$T/sec1/foreign.o' | grep -A2 'text.scaled_next' | grep -q scaled"
expect_exit 0 "kpatch model: sections added to the release's flags" \
	diffit sec1 sec2 release -o "$T/km.hpatch"
check "all functions match" grep -qEx 'binary_matches: ([1-9][0-9]*)/\1 functions' "$T/last.out"
check "limit_of is patched" grep -q 'name: limit_of' "$T/last.out"
km=$(grep -m1 '^binary_matches:' "$T/last.out")
expect_exit 1 "kpatch model against the -O1 release" diffit sec1 sec2 release-o1

# Stripped: symbols from the debug file, bytes from the binary.
objcopy --only-keep-debug "$T/release" "$T/release.debug"
strip -o "$T/release-stripped" "$T/release"
expect_exit 0 "stripped, with --debug-file" diffit sec1 sec2 release-stripped \
	--debug-file "$T/release.debug"
check "all functions match" grep -qEx 'binary_matches: ([1-9][0-9]*)/\1 functions' "$T/last.out"
objcopy --only-keep-debug "$T/release-o1" "$T/o1.debug"
strip -o "$T/o1-stripped" "$T/release-o1"
expect_exit 1 "stripped -O1 binary, with its debug file" diffit sec1 sec2 o1-stripped \
	--debug-file "$T/o1.debug"

# A tree with a second build of the same source (a test's, with one more
# member): only the build linked into the binary is proved.
mkdir -p "$T/tree1/test" "$T/tree2/test"
cp "$T/sec1/foreign.o" "$T/tree1/"
cp "$T/sec2/foreign.o" "$T/tree2/"
cp "$T/extra/foreign.o" "$T/tree1/test/"
cp "$T/extra/foreign.o" "$T/tree2/test/"
expect_exit 0 "a second build of the source in the tree" \
	diffit tree1 tree2 release -o "$T/tree.hpatch"
check "its functions are not counted" grep -qx "$km" "$T/last.out"
expect_exit 1 "... but not when the linked build differs too" \
	diffit tree1 tree2 release-o1

# Objects of another program entirely: nothing of theirs is in the binary.
expect_exit 1 "objects of another program" "$HPDIFF" \
	--old "$HP_BUILD/testdata/CMakeFiles/demo-v1.objs.dir" \
	--new "$HP_BUILD/testdata/CMakeFiles/demo-v2.objs.dir" --binary "$T/release"
check "says none is there" grep -q "no function of the old objects is in '.*release' \[HP_E_FOREIGN_BINARY\]" "$T/last.err"

# An unrelated --new tree pairs with nothing: no patch of "new" functions.
mkdir -p "$T/unrelated"
cp "$HP_BUILD"/testdata/CMakeFiles/demo-v2.objs.dir/targets/demo/*.o "$T/unrelated/"
expect_exit 1 "an unrelated --new tree" diffit sec1 unrelated release-sec -o "$T/u.hpatch"
check "no patch written" test ! -e "$T/u.hpatch"
check "says nothing pairs" grep -q "no function of the new build pairs with one of the old" "$T/last.err"
check "no function listed as new" bash -c "! grep -q 'change: new' '$T/last.out'"
finish
