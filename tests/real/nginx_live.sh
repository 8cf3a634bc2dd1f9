#!/usr/bin/env bash
# A multi-process server and a real security fix: nginx 1.22.1 from Debian
# bookworm's source package, built as upstream released it (old), with
# Debian's whole security update (refused: FIX-HTTP2bomb registers a new
# module, so ngx_modules[] grows) and with its CVE-2026-42945 patch alone
# (new): a rewrite whose replacement has arguments left is_args set, so a
# capture used afterwards by "set" was escaped for arguments into a buffer
# sized without escaping (wrong value, heap overrun). The old build runs as
# a master and two workers and is patched with apply --all. Checks that
# every process is patched, that the fix answers over HTTP in each worker,
# that a keep-alive connection opened before keeps working, that workers
# forked after (a reload) have the fix too, and that revert brings the old
# behaviour back. Not part of the suite (it downloads and builds nginx three
# times, a few minutes): run as root after scripts/build.sh.
# usage: tests/real/nginx_live.sh [--flags sections|debian]
# --flags debian: all three built with Debian's flags, no function sections.
# shellcheck disable=SC2086,SC2206 # lists of pids split on purpose
. "$(dirname "$0")/lib.bash" "$@"
FIX=CVE-2026-42945.patch

real_source nginx libpcre2-dev zlib1g-dev
grep -qx "$FIX" "$series" || { say "no $FIX in $dsc"; exit 1; }
real_flavour CFLAGS

# The default modules (rewrite, proxy, ...) but gzip; no TLS.
compile() {
	./configure --prefix=/nonexistent --without-http_gzip_module \
		--with-cc-opt="$FLAGS" --with-ld-opt="$LDFLAGS" && make -j2 -s
}
build() { real_build "$1" compile "${@:2}"; }
build "${pfx}old"
# Debian's whole security update: the CVE patches and FIX-HTTP2bomb, in
# the order of the series file.
update=$(grep -E '^(CVE-|FIX-).*\.patch$' "$C/pristine/debian/patches/series" | tr '\n' ' ')
# shellcheck disable=SC2086 # one word per patch
build "${pfx}full" $update
build "${pfx}new" "$FIX"
bin=$C/${pfx}old/objs/nginx

make_key k
expect_exit 1 "hpdiff refuses the whole update" "$HPDIFF" --old "$C/${pfx}old/objs" \
	--new "$C/${pfx}full/objs" --binary "$bin" --key "$T/k.key" -o "$T/full.hpatch"
check "the reason is ngx_modules[]'s new size (FIX-HTTP2bomb adds a module)" \
	grep -q "'ngx_modules': size of 'ngx_modules' changed.*HP_E_CHANGED_DATA" "$T/last.err"
check "and no patch is written" test ! -e "$T/full.hpatch"

start=$(date +%s%N)
expect_exit 0 "hpdiff over nginx's objs trees" "$HPDIFF" --old "$C/${pfx}old/objs" \
	--new "$C/${pfx}new/objs" --binary "$bin" --key "$T/k.key" \
	--id nginx-cve-2026-42945 -o "$T/nginx.hpatch" --json
hpdiff_ms=$((($(date +%s%N) - start) / 1000000))
funcs=$(grep -o '"functions":\[[^]]*\]' "$T/last.out" |
	grep -o '"name":"[^"]*"' | sort | tr '\n' ' ')
check "exactly the fixed function is in the patch ($funcs)" \
	test "$funcs" = '"name":"ngx_http_script_regex_end_code" '
say "hpdiff ${hpdiff_ms} ms over $(find "$C/${pfx}old/objs" -name '*.o' | wc -l) objects;" \
	"patch $(stat -c %s "$T/nginx.hpatch") bytes"

# The old nginx: a master and two workers (as nobody), each with its own
# listening socket (reuseport), so that connections reach both.
port=$((20000 + $$ % 20000))
mkdir -p "$T/nginx/logs"
cat >"$T/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/logs/error.log notice;
events { worker_connections 64; }
http {
	access_log off;
	keepalive_timeout 120s;
	server {
		listen 127.0.0.1:$port reuseport;
		location / {
			rewrite ^(.*) /new?c=1;
			set \$myvar \$1;
			return 200 "\$myvar \$pid\n";
		}
	}
}
EOF
"$bin" -p "$T/nginx/" -c "$T/nginx/nginx.conf" -e "$T/nginx/logs/error.log" \
	>"$T/nginx.out" 2>&1 &
PIDS+=($!)
master=$!
workers() { pgrep -P "$master" | sort | tr '\n' ' '; }
# wait_workers N: until the master has N children, all serving.
wait_workers() {
	for _ in $(seq 100); do
		[ "$(pgrep -P "$master" | wc -l)" -eq "$1" ] &&
			[ "$(grep -c 'start worker process' "$T/nginx/logs/error.log")" -ge "$2" ] &&
			return 0
		sleep 0.05
	done
	return 1
}
check "the old nginx runs a master and two workers" wait_workers 2 2
old_workers=$(workers)
PIDS+=($old_workers)
sleep 0.2

# get FD PATH: one HTTP/1.1 keep-alive request on FD; prints the body
# without its newline ("VALUE WORKER-PID").
get() {
	local l len=0 body
	printf 'GET %s HTTP/1.1\r\nHost: t\r\n\r\n' "$2" >&"$1"
	while IFS= read -r -t 5 l <&"$1"; do
		l=${l%$'\r'}
		[ -z "$l" ] && break
		[[ $l == [Cc]ontent-[Ll]ength:* ]] && len=${l#*: }
	done
	IFS= read -r -t 5 -N "$len" body <&"$1" || true
	printf '%s\n' "${body%$'\n'}"
}
# fresh PATH: the same on a new connection.
fresh() {
	local r
	exec 9<>"/dev/tcp/127.0.0.1/$port"
	r=$(get 9 "$1")
	exec 9>&-
	printf '%s\n' "$r"
}
# every_worker WANT: new connections until each current worker answered;
# all must answer WANT for /a%26b ("/a&b" once decoded).
every_worker() {
	local seen=" " r w
	for _ in $(seq 200); do
		r=$(fresh /a%26b)
		w=${r##* }
		[ "${r% *}" = "$1" ] || { echo "worker $w answered '${r% *}'" >&2; return 1; }
		[[ $seen == *" $w "* ]] || seen="$seen$w "
		[ "$(echo $seen | tr ' ' '\n' | sort | tr '\n' ' ')" = "$(workers)" ] && return 0
	done
	echo "only $seen of $(workers) answered" >&2
	return 1
}

# The bug: "/a&b" is escaped for arguments, "/a%26b", into a buffer of 4
# bytes: the value is "/a%2" and 2 bytes land past it. Fixed: "/a&b".
open_conn 3 "$port"
ka=$(get 3 /a%26b)
check "v1: the capture is escaped and cut (the bug: $ka)" test "${ka% *}" = "/a%2"
ka_worker=${ka##* }
check "v1: in every worker" every_worker /a%2

expect_exit 0 "apply --all to the running nginx" "$HPATCH" apply --all \
	--trust "$T/trust" --json "$T/nginx.hpatch"
res=$T/apply.json
cp "$T/last.out" "$res"
for p in $master $old_workers; do
	check "process $p patched" \
		grep -q "\"pid\":$p,\"action\":\"apply\",\"result\":\"ok\"" "$res"
done
check "and no other process" \
	test "$(grep -o '"pid":[0-9]*' "$res" | sort -u | wc -l)" -eq 3
pause=$(grep -o '"pid":[0-9]*\|"pause_us":[0-9]*' "$res" | cut -d: -f2 |
	paste -d= - - | tr '\n' ' ')
say "pause_us (pid=us): $pause"

check "patched: every worker answers the capture unescaped" every_worker /a\&b
r=$(get 3 /a%26b)
check "patched: the keep-alive connection opened before too ($r)" \
	test "$r" = "/a&b $ka_worker"
check "patched: status of the master lists the patch" \
	bash -c "'$HPATCH' status -p $master | grep -q nginx-cve-2026-42945"

# A reload: the patched master forks new workers, the old ones finish.
kill -HUP "$master"
check "reloaded: two new workers" wait_workers 2 4
for _ in $(seq 100); do
	[ "$(workers)" != "$old_workers" ] && ! kill -0 $old_workers 2>/dev/null && break
	sleep 0.05
done
new_workers=$(workers)
PIDS+=($new_workers)
check "reloaded: the workers are new ($new_workers)" \
	bash -c "! grep -qw -f <(echo $old_workers | tr ' ' '\n') <<<'$new_workers'"
check "reloaded: the new workers have the fix" every_worker /a\&b
for p in $new_workers; do
	check "reloaded: status of worker $p lists the patch" \
		bash -c "'$HPATCH' status -p $p | grep -q nginx-cve-2026-42945"
done

revert=(-p "$master")
for p in $new_workers; do revert+=(-p "$p"); done
expect_exit 0 "revert the master and the new workers" "$HPATCH" revert "${revert[@]}"
check "reverted: the capture is escaped and cut again" every_worker /a%2
check "nginx still running" kill -0 "$master"
check "no worker crashed" bash -c "! grep -q 'exited on signal' '$T/nginx/logs/error.log'"
check "audit log has the applies and the reverts" \
	test "$(grep -c '"patch_id":"nginx-cve-2026-42945","key_id".*"result":"ok"' \
		"$HPATCH_AUDIT_LOG")" -eq 6
exec 3>&-
finish
