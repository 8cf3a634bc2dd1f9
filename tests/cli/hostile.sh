#!/usr/bin/env bash
# The hostile corpus (testdata/hostile, made by scripts/make-hostile.py):
# every file but good.hpatch is rejected by hpatch inspect with exactly the
# message in NAME.err, and applying any of them to a running process
# leaves its memory map untouched.
. "$(dirname "$0")/../e2e/lib.bash"
H=$HP_SRC/testdata/hostile
# A copy: the trust store must be root's alone, wherever the tree lies.
mkdir -m 755 "$T/keys"
cp "$HP_SRC/testdata/keys/test.pub" "$T/keys/"
cd "$H"
for f in *.hpatch; do
	n=${f%.hpatch}
	rc=0
	"$HPATCH" inspect --trust "$T/keys" "$f" >/dev/null 2>"$T/$n.err" || rc=$?
	if [ "$n" = good ]; then
		check "good: accepted" test "$rc" -eq 0
		continue
	fi
	check "$n: rejected (exit $rc)" test "$rc" -ne 0
	check "$n: expected message" diff -u "$n.err" "$T/$n.err"
done

"$HP_TD/demo-v1" 0 1 >"$T/demo.log" 2>&1 &
PIDS+=($!)
pid=$!
sleep 0.3
cat "/proc/$pid/maps" >"$T/before"
for f in *.hpatch; do
	[ "$f" = good.hpatch ] && continue
	rc=0
	"$HPATCH" apply -p "$pid" --trust "$T/keys" "$f" >/dev/null 2>&1 || rc=$?
	check "apply ${f%.hpatch}: refused (exit $rc)" test "$rc" -ne 0
done
cat "/proc/$pid/maps" >"$T/after"
check "no hostile file mapped anything" cmp -s "$T/before" "$T/after"
check "target alive" kill -0 "$pid"
finish
