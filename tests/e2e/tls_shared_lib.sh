#!/usr/bin/env bash
# Thread-locals of a shared library (dynamic TLS): the patched code reaches
# each running thread's own variables through the old library's GOT
# entries: general-dynamic (tl_count), local-dynamic (tl_steps, which the
# unpatched tl_steps_seen() reads too) and initial-exec (tl_base = 1000).
. "$(dirname "$0")/lib.bash"
require_ptrace

O=$HP_TD/CMakeFiles
make_key k
expect_exit 0 "hpdiff accepts dynamic TLS accesses" \
	"$HPDIFF" --old "$O/tlslib-v1.objs.dir" --new "$O/tlslib-v2.objs.dir" \
	--binary "$HP_TD/libtlslib-v1.so" --key "$T/k.key" -o "$T/t.hpatch"
start_target "$HP_TD/tls_host" "$T/tls.log"
pid=$TARGET_PID
sleep 0.3
expect_exit 0 "apply" "$HPATCH" apply -p "$pid" --trust "$T/trust" --allow-active "$T/t.hpatch"
mark=$(wc -l <"$T/tls.log")
sleep 0.4
for th in 0 1; do
	# "tls T VALUE STEPS": the last line before the mark, the first after
	before=$(head -n "$mark" "$T/tls.log" | awk -v t="$th" '$1 == "tls" && $2 == t {v = $3; s = $4} END {print v, s}')
	after=$(tail -n +"$((mark + 1))" "$T/tls.log" | awk -v t="$th" '$1 == "tls" && $2 == t {print $3, $4}' | head -4)
	read -r v0 s0 <<<"$before"
	read -r v1 s1 <<<"$(echo "$after" | head -1)"
	vsteps=$(echo "$after" | awk 'NR > 1 {print $1 - p} {p = $1}' | sort -u | tr '\n' ' ')
	ssteps=$(echo "$after" | awk 'NR > 1 {print $2 - p} {p = $2}' | sort -u | tr '\n' ' ')
	check "thread $th: count continued in its own TLS ($v0 -> $v1)" \
		test "$v1" -gt "$v0" -a $((v1 - v0)) -le 10
	check "thread $th: general-dynamic count now steps by 2 ($vsteps)" test "$vsteps" = "2 "
	check "thread $th: local-dynamic steps continued ($s0 -> $s1)" \
		test "$s1" -gt "$s0" -a $((s1 - s0)) -le 5
	check "thread $th: local-dynamic steps by 1, seen by old code ($ssteps)" test "$ssteps" = "1 "
	check "thread $th: initial-exec base read (value > 1000)" test "$v1" -gt 1000
done
expect_exit 0 "revert" "$HPATCH" revert -p "$pid" --allow-active
mark=$(wc -l <"$T/tls.log")
sleep 0.3
after=$(tail -n +"$((mark + 1))" "$T/tls.log" | awk '$1 == "tls" && $2 == 0 {print $3}' | head -4)
check "after revert: steps by 1 again" \
	test "$(echo "$after" | awk 'NR > 1 {print $1 - p} {p = $1}' | sort -u | tr '\n' ' ')" = "1 "
finish
