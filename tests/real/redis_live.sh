#!/usr/bin/env bash
# A real program and a security-style fix nobody here wrote the code of:
# redis-server 7.0.15 from Debian bookworm's source package, old build
# running, patched live with bench/hpdiff.sh's one-function fix (an inline
# request of more than 32768 arguments is refused) and reverted. Checks
# that a client connected before the patch keeps working, that the fix
# answers only while applied, and that data written survives both ways.
# Not part of the suite (it downloads and builds redis twice, minutes):
# run as root after scripts/build.sh.
# usage: tests/real/redis_live.sh [--flags sections|debian]
# --flags debian: the trees built with Debian's flags, no function sections
# (bench/hpdiff.sh builds both).
src=$(cd "$(dirname "$0")/../.." && pwd)
flavour=sections
if [ "${1:-}" = --flags ]; then
	flavour=${2:?--flags takes sections or debian}
fi
case $flavour in
sections) old_tree=old new_tree=new ;;
debian) old_tree=debian-old new_tree=debian-new ;;
*) echo "usage: $0 [--flags sections|debian]" >&2; exit 2 ;;
esac
export HP_BUILD=${HP_BUILD_DIR:-$src/build}
. "$src/tests/e2e/lib.bash"
require_ptrace
C=${HP_BENCH_CACHE:-/var/cache/hpatch-bench}

# Fetch, build both trees (cached) and check hpdiff picks exactly the fix.
bash "$src/bench/hpdiff.sh" >"$T/bench.out" 2>"$T/bench.err" ||
	{ cat "$T/bench.out" "$T/bench.err" >&2; exit 1; }
make_key k
start=$(date +%s%N)
expect_exit 0 "hpdiff over redis's src trees ($flavour)" "$HPDIFF" \
	--old "$C/$old_tree/src" --new "$C/$new_tree/src" \
	--binary "$C/$old_tree/src/redis-server" --key "$T/k.key" \
	--id redis-inline-args -o "$T/redis.hpatch" --json
hpdiff_ms=$((($(date +%s%N) - start) / 1000000))
funcs=$(grep -o '"functions":\[[^]]*\]' "$T/last.out" |
	grep -o '"name":"[^"]*"' | tr '\n' ' ')
check "exactly processInlineBuffer is in the patch ($funcs)" \
	test "$funcs" = '"name":"processInlineBuffer" '
echo "redis_live: hpdiff ${hpdiff_ms} ms over $(find "$C/$old_tree/src" -name '*.o' | wc -l)" \
	"objects; patch $(stat -c %s "$T/redis.hpatch") bytes" >&2

port=$((20000 + $$ % 20000))
"$C/$old_tree/src/redis-server" --port "$port" --save "" --appendonly no \
	--bind 127.0.0.1 >"$T/redis.log" 2>&1 &
PIDS+=($!)
pid=$!
for _ in $(seq 100); do
	grep -q "Ready to accept" "$T/redis.log" && break
	sleep 0.05
done

# reply FD: one RESP line, without its CR.
reply() { local l; IFS= read -r -t 5 l <&"$1"; printf '%s\n' "${l%$'\r'}"; }
# many FD: an inline request of 32769 arguments, over the fix's limit.
many() {
	printf 'a%.0s ' $(seq 32768) >&"$1"
	printf 'a\r\n' >&"$1"
	reply "$1"
}

open_conn 3 "$port"
printf 'SET before v1\r\n' >&3
check "v1: SET over a connection opened before the patch" test "$(reply 3)" = "+OK"
check "v1: too many inline arguments run as a command" \
	bash -c "[[ \"\$1\" == \"-ERR unknown command 'a'\"* ]]" _ "$(many 3)"

expect_exit 0 "apply to the running redis-server" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" --json "$T/redis.hpatch"
echo "redis_live: pause_us: $(grep -o '"pause_us":[0-9]*' "$T/last.out" | cut -d: -f2)" >&2
open_conn 4 "$port"
check "patched: the fix refuses too many inline arguments" \
	test "$(many 4)" = "-ERR Protocol error: too many inline arguments"
printf 'GET before\r\n' >&3
check "patched: the old connection still answers" test "$(reply 3)" = '$2'
check "patched: with the data written before" test "$(reply 3)" = "v1"
printf 'PING\r\n' >&3
check "patched: PING" test "$(reply 3)" = "+PONG"
check "patched: status lists the patch" \
	bash -c "'$HPATCH' status -p $pid | grep -q redis-inline-args"

expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
open_conn 5 "$port"
check "reverted: v1 behaviour again" \
	bash -c "[[ \"\$1\" == \"-ERR unknown command 'a'\"* ]]" _ "$(many 5)"
printf 'GET before\r\n' >&3
reply 3 >/dev/null
check "reverted: data still there" test "$(reply 3)" = "v1"
check "redis-server still running" kill -0 "$pid"
check "audit log has the apply and the revert" \
	test "$(grep -c '"patch_id":"redis-inline-args"' "$HPATCH_AUDIT_LOG")" -eq 2
exec 3>&- 4>&- 5>&-
finish
