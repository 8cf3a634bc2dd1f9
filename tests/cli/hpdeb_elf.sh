#!/usr/bin/env bash
# hpdeb-elf, the ELF helper of hpatch-deb: each command's operands are
# counted (exit 2, naming what is expected), and build-id and objects
# answer for a binary of the testdata.
. "$(dirname "$0")/../e2e/lib.bash" # $T, expect_exit, check, finish
E=$HP_BUILD/differ/hpdeb-elf
expect_exit 2 "build-id without an ELF" "$E" build-id
check "... says what it expects" grep -q "build-id: expected ELF$" "$T/last.err"
expect_exit 2 "objects with one operand" "$E" objects "$HP_TD/svc-v1"
check "... says what it expects" grep -q "objects: expected ELF TREE$" "$T/last.err"
expect_exit 2 "pin with four operands" "$E" pin a b c d
check "... says what it expects" grep -q "pin: expected ELF BUILD-ID OUT$" "$T/last.err"

expect_exit 0 "build-id of svc-v1" "$E" build-id "$HP_TD/svc-v1"
check "... is readelf's" test "$(cat "$T/last.out")" = \
	"$(readelf -n "$HP_TD/svc-v1" | sed -n 's/.*Build ID: //p')"
expect_exit 0 "objects of svc-v1 under the testdata" "$E" objects "$HP_TD/svc-v1" "$HP_TD"
check "... is svc-v1's one object" test "$(cat "$T/last.out")" = \
	"CMakeFiles/svc-v1.objs.dir/targets/svc/svc.c.o"
expect_exit 1 "objects under a tree without them" "$E" objects "$HP_TD/svc-v1" "$T"
check "... says none has an object" grep -q "none of its .* compile units has an object under" "$T/last.err"
finish
