#!/usr/bin/env bash
# hpdiff's speed on a large real C program: redis-server from Debian
# bookworm's source package, built twice (as is, and with one function
# changed) in two flavours: with function sections, and with Debian's
# flags (scripts/debian-source.bash: dpkg-buildflags, no sections). For
# each flavour it prints the binary's text size, then one line
#   flavour=F code_bytes=N hpdiff_ms=X hpdiff_peak_kb=Y objdump_ms=Z
#   ratio=X/Z functions=F split_ms=S
# (best of 3 runs each; objdump -d over the same two object sets; split_ms:
# cutting shared sections and decoding them with libzydis, from hpdiff
# --debug timing), then hpdiff's report. Exits non-zero unless hpdiff
# included exactly the changed function (plus functions the report says
# inline it) in both. Goal: ratio < 1 and hpdiff_ms < 1000 for about 2 MB
# of code.
# Run as root on Debian bookworm; sources and builds are cached in
# ${HP_BENCH_CACHE:-/var/cache/hpatch-bench}.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
B=${HP_BUILD_DIR:-$src/build}
C=${HP_BENCH_CACHE:-/var/cache/hpatch-bench}
PKG=redis
CHANGED=processInlineBuffer
SECTIONS_FLAGS="-O2 -g -ffunction-sections -fdata-sections"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

say() { printf 'bench: %s\n' "$*" >&2; }

# hpatch's build dependencies, and dpkg-source, GNU time for peak memory,
# objdump and patch.
bash "$src/scripts/setup.sh" dpkg-dev time binutils patch debian-archive-keyring >&2
[ -x "$B/differ/hpdiff" ] || HP_BUILD_DIR=$B bash "$src/scripts/build.sh" >&2

# The one-function change: a bounds check in the inline-protocol parser.
# It moves the lines below it, so later functions differ in __LINE__ only.
change() {
	patch -d "$1" -p1 --forward --no-backup-if-mismatch -s <<'EOF'
--- a/src/networking.c
+++ b/src/networking.c
@@ -2176,6 +2176,12 @@ int processInlineBuffer(client *c) {
         return C_ERR;
     }
 
+    if (argc > PROTO_INLINE_MAX_SIZE / 2) {
+        sdsfreesplitres(argv,argc);
+        addReplyError(c,"Protocol error: too many inline arguments");
+        setProtocolError("too many inline arguments",c);
+        return C_ERR;
+    }
     /* Newline from slaves can be used to refresh the last ACK time.
      * This is useful for a slave to ping back while loading a big
      * RDB file. */
EOF
}

# The pristine upstream source (vendored deps, no Debian patches).
. "$src/scripts/debian-source.bash"
hp_debian_source "$PKG" "$C"
dsc=$HP_DSC
# Reproducible builds: redis stamps its build id with the time unless
# SOURCE_DATE_EPOCH is set (as dpkg-buildpackage sets it), and with the
# state of any enclosing git repository.
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$C/pristine/debian/changelog" -STimestamp)
export SOURCE_DATE_EPOCH GIT_CEILING_DIRECTORIES=$C/work

# build NAME FLAVOUR: one tree, in $C/NAME. All are built at the same
# path, which debug info records (and -ffile-prefix-map maps to ".").
build() {
	local name=$1 flavour=$2 w=$C/work/$PKG stamp
	if [ "$flavour" = debian ]; then
		mkdir -p "$w"
		FLAGS="$(cd "$w" && hp_debian_flags CFLAGS) $(hp_debian_flags CPPFLAGS)"
		LDFLAGS="$(hp_debian_flags LDFLAGS) -Wl,--build-id"
	else
		FLAGS=$SECTIONS_FLAGS
		LDFLAGS="-Wl,--build-id"
	fi
	stamp="$FLAGS $LDFLAGS $dsc $SOURCE_DATE_EPOCH"

	[ "${name%old}" != "$name" ] || stamp+=" $(declare -f change | cksum)"
	if [ -f "$C/$name/.hp-stamp" ] && [ "$(cat "$C/$name/.hp-stamp")" = "$stamp" ]; then
		return
	fi
	say "building $name (a few minutes)"
	rm -rf "$C/work" "${C:?}/$name"
	mkdir -p "$C/work"
	cp -a "$C/pristine" "$w"
	[ "${name%old}" != "$name" ] || change "$w"
	make -C "$w/src" -j2 -s MALLOC=libc BUILD_TLS=no USE_SYSTEMD=no \
		CFLAGS="$FLAGS" LDFLAGS="$LDFLAGS" redis-server >"$C/work/build.log" 2>&1 ||
		{ tail -n 30 "$C/work/build.log" >&2; exit 1; }
	mv "$w" "$C/$name"
	echo "$stamp" >"$C/$name/.hp-stamp"
}
build old sections
build new sections
build debian-old debian
build debian-new debian

# The objects linked into redis-server, under the same relative paths.
objs() {
	local t=$1 a
	sed -n 's/^REDIS_SERVER_OBJ=//p' "$t/src/Makefile" | tr ' ' '\n' |
		sed '/^$/d; s|^|src/|'
	for a in deps/hiredis/libhiredis.a deps/lua/src/liblua.a \
		deps/hdr_histogram/libhdrhistogram.a; do
		ar t "$t/$a" | sed "s|^|$(dirname "$a")/|"
	done
}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
install -m 600 "$src/testdata/keys/test.key" "$t/test.key"

# Best of 3: wall ms and peak RSS kB.
best() {
	local out=$1 s e ms kb best_ms='' best_kb=''
	shift
	for _ in 1 2 3; do
		s=$(date +%s%N)
		/usr/bin/time -f '%M' -o "$t/time" "$@" >"$out" 2>"$out.err" ||
			[ $? -eq 3 ] || { cat "$out" "$out.err" >&2; return 1; }
		e=$(date +%s%N)
		ms=$(((e - s) / 1000000))
		kb=$(tail -n1 "$t/time")
		if [ -z "$best_ms" ] || [ "$ms" -lt "$best_ms" ]; then
			best_ms=$ms
			best_kb=$kb
		fi
	done
	echo "$best_ms $best_kb"
}

# measure FLAVOUR OLD NEW: the figures line and the report; returns 1
# unless exactly the changed function is in.
measure() {
	local flavour=$1 old=$C/$2 new=$C/$3 v o bin nr_objs code hp_ms hp_kb od_ms
	local nr_funcs split_ms bad
	rm -rf "$t/old" "$t/new"
	for v in old new; do
		[ "$v" = old ] && o=$old || o=$new
		objs "$o" | while read -r f; do
			mkdir -p "$t/$v/$(dirname "$f")"
			ln "$o/$f" "$t/$v/$f"
		done
	done
	bin=$old/src/redis-server
	nr_objs=$(find "$t/old" -name '*.o' | wc -l)
	code=$(size -A "$bin" | awk '$1 == ".text" { print $2 }')
	hpdiff=("$B/differ/hpdiff" --old "$t/old" --new "$t/new" --binary "$bin"
		--key "$t/test.key" -o "$t/bench.hpatch")
	best "$t/report" "${hpdiff[@]}" >"$t/hp.best"
	best /dev/null bash -c 'find "$1/old" "$1/new" -name "*.o" -print0 | sort -z |
		xargs -0 objdump -d >/dev/null' _ "$t" >"$t/od.best"
	read -r hp_ms hp_kb <"$t/hp.best"
	read -r od_ms _ <"$t/od.best"
	"${hpdiff[@]}" --json --debug timing >"$t/report.json" 2>"$t/timing"
	split_ms=$(sed -n 's/.*split_ms=\([0-9.]*\).*/\1/p' "$t/timing")
	# One included function a line: {"name":"f",...,"reason":"..."}
	sed 's/.*"functions":\[//; s/\],"line_only".*//; s/},{/}\n{/g' \
		"$t/report.json" | grep '"name"' >"$t/funcs" || true
	nr_funcs=$(wc -l <"$t/funcs")

	echo "$bin: $nr_objs objects; .text $code bytes;" \
		"$(size "$bin" | awk 'NR == 2 { print $1 }') bytes text+rodata (size)"
	printf 'flavour=%s code_bytes=%s hpdiff_ms=%s hpdiff_peak_kb=%s objdump_ms=%s ratio=%s functions=%s split_ms=%s\n' \
		"$flavour" "$code" "$hp_ms" "$hp_kb" "$od_ms" \
		"$(awk -v a="$hp_ms" -v b="$od_ms" 'BEGIN { printf "%.2f", b ? a / b : 0 }')" \
		"$nr_funcs" "${split_ms:-0}"
	cat "$t/report"

	# Exactly the changed function, plus any that the report says inline it.
	bad=$(awk -v want="$CHANGED" '
		{ name = $0; sub(/^{"name":"/, "", name); sub(/".*/, "", name) }
		name == want { found = 1; next }
		match($0, /inlines [^"]*/) {
			n = split(substr($0, RSTART + 8, RLENGTH - 8), inl, ", ")
			for (i = 1; i <= n; i++)
				if (inl[i] == want)
					next
		}
		{ print "bench: error: \047" name "\047 is in the patch but did not change" > "/dev/stderr"; bad = 1 }
		END { if (!found) print "bench: error: \047" want "\047 is not in the patch" > "/dev/stderr"
		      print bad || !found }' "$t/funcs")
	[ "$hp_ms" -lt "$od_ms" ] || say "$flavour: goal missed: hpdiff is slower than objdump -d"
	[ "$hp_ms" -lt 1000 ] || say "$flavour: goal missed: hpdiff took ${hp_ms} ms"
	return "$bad"
}
status=0
measure sections old new || status=1
measure debian debian-old debian-new || status=1
exit "$status"
