#!/usr/bin/env bash
# hpatch.mk in a project's own Makefile: the worked example in
# testdata/make-example builds two releases and `make hotpatch` writes the
# signed patch, which a running release-1 process accepts.
. "$(dirname "$0")/../e2e/lib.bash"
# A copy with the same relative layout: testdata/{make-example,targets}
# and hpatch.mk two levels up, as in the source tree.
mkdir -p "$T/src/testdata"
cp -r "$HP_SRC/testdata/make-example" "$HP_SRC/testdata/targets" "$T/src/testdata/"
cp "$HP_SRC/hpatch.mk" "$T/src/"
make_key k
ex=$T/src/testdata/make-example
expect_exit 0 "make builds both releases" make -s -C "$ex" all \
	CFLAGS="$(flavour_cflags)"
expect_exit 0 "make hotpatch" make -s -C "$ex" hotpatch HPDIFF="$HPDIFF" HPATCH_KEY="$T/k.key"
check "patch written" test -s "$ex/fix.hpatch"
check "report names the changed function" grep -q "name: format_quote" "$T/last.out"
expect_exit 2 "missing settings are named" make -s -C "$ex" hotpatch HPDIFF="$HPDIFF" HPATCH_BINARY=
check "says which" grep -q "set HPATCH_BINARY" "$T/last.err"
"$ex/release-1/demo" 0 1 >"$T/demo.log" 2>&1 &
PIDS+=($!)
sleep 0.3
expect_exit 0 "the patch applies to release 1" "$HPATCH" apply -p "$!" --trust "$T/trust" "$ex/fix.hpatch"
finish
