#!/usr/bin/env bash
# hpatch-deb end to end on a small local Debian source package
# (testdata/debian-pkg/hptoy: a program and the shared library it uses,
# built by dh with Debian's default flags). Nothing is downloaded:
#   1. the "official" build: dpkg-buildpackage in one directory, its .debs
#      unpacked as a host would have them, the program started from there;
#   2. hpatch-deb rebuilds the same source elsewhere, proves the shipped
#      ELFs are its own (build-id equal), builds the source + fix.patch,
#      and writes one signed patch with a module for the program and one
#      for the library; applied live, both fixes answer; reverted, the old
#      behaviour is back; a second run comes from the cache;
#   3. .debs built from a locally modified source are refused before any
#      patch is written, naming the ELF and the function that differs;
#   4. the same package with debian/rules that do not use dh (stripped by
#      hand, no debug package) is patched alike;
# The package has a second program built from the same source file with
# another -D (hptoy-alt): DWARF cannot tell their objects apart.
#   5. debian/rules asking for LTO is refused before building.
# Reads no testdata flavour (the package's own flags): ONE_FLAVOUR.
. "$(dirname "$0")/lib.bash"
require_ptrace
PKG=$HP_TESTDATA/debian-pkg
DEB=$HP_SRC/scripts/hpatch-deb
export HP_BUILD_DIR=$HP_BUILD

# official NAME SRC [PATCH]: the source tree SRC (+ PATCH) built as Debian
# would, in $T/NAME; its .debs unpacked into $T/NAME/root.
official() {
	local d=$T/$1
	mkdir -p "$d"
	cp -a "$2" "$d/hptoy-1.0"
	[ -z "${3:-}" ] || patch -d "$d/hptoy-1.0" -p1 -s <"$3"
	(cd "$d/hptoy-1.0" && dpkg-buildpackage -B -us -uc -ui) >"$d/build.log" 2>&1 || {
		tail -n 20 "$d/build.log" >&2
		return 1
	}
	for deb in "$d"/*.deb; do
		[[ $deb == *-dbgsym_* ]] || dpkg-deb -x "$deb" "$d/root"
	done
}
check "the official build of hptoy 1.0" official debian "$PKG/hptoy"
cp -a "$PKG/hptoy" "$T/src"
(cd "$T" && dpkg-source -b src >/dev/null 2>&1)
check "its source package" test -f "$T/hptoy_1.0.dsc"
make_key k

start=$(date +%s)
expect_exit 0 "hpatch-deb: hptoy 1.0 and fix.patch" "$DEB" --cache "$T/cache" \
	--key "$T/k.key" --id hptoy-fix -o "$T/fix.hpatch" \
	--old-source "$T/hptoy_1.0.dsc" --fix "$PKG/fix.patch" \
	--shipped "$T/debian/root"
say_time=$(($(date +%s) - start))
echo "hpatch-deb: ${say_time}s, two builds"
check "the three shipped ELFs proved: build-id equal" \
	test "$(grep -c ': build-id equal ' "$T/last.out")" -eq 3
check "the program's fix is in (echo_len)" grep -q 'name: echo_len' "$T/last.out"
check "the library's fix is in (toy_get)" grep -q 'name: toy_get' "$T/last.out"
check "progress lines for the builds" grep -q 'dpkg-buildpackage -B hptoy 1.0' "$T/last.err"
# hptoy-alt is toy_main.c again with -DTOY_ALT: the same DWARF unit as
# hptoy's; each program must get its own object, by its symbols' sizes.
check "one signed patch, three modules" bash -c \
	"'$HPATCH' inspect --trust '$T/trust' '$T/fix.hpatch' | grep -c 'build_id:' | grep -qx 3 &&
	 '$HPSIGN' verify --pub '$T/k.pub' '$T/fix.hpatch'"
check "its modules are pinned to the shipped build-ids" bash -c \
	"'$HPATCH' inspect --trust '$T/trust' '$T/fix.hpatch' | grep -q \
	 \$('$HP_BUILD/differ/hpdeb-elf' build-id '$T/debian/root/usr/bin/hptoy')"

start=$(date +%s%N)
expect_exit 0 "a second run" "$DEB" --cache "$T/cache" --key "$T/k.key" \
	--id hptoy-fix -o "$T/again.hpatch" --old-source "$T/hptoy_1.0.dsc" \
	--fix "$PKG/fix.patch" --shipped "$T/debian/root"
ms=$((($(date +%s%N) - start) / 1000000))
check "comes from the cache (${ms} ms)" bash -c \
	"grep -q 'old: cached build' '$T/last.err' && ! grep -q dpkg-buildpackage '$T/last.err'"

# The host: the shipped program and library, one command a line.
lib=$(dirname "$(find "$T/debian/root" -name libhptoy.so.1)")
coproc TOY { LD_LIBRARY_PATH=$lib exec "$T/debian/root/usr/bin/hptoy"; }
PIDS+=("$TOY_PID")
pid=$TOY_PID
toy() { ask_coproc TOY "$1"; }
read -r -t 10 ready <&"${TOY[0]}" || ready=none
check "the shipped hptoy runs ($ready)" test "$ready" = "ready hptoy lib 1"
check "and maps the shipped library" grep -q "$lib/libhptoy.so.1" "/proc/$pid/maps"
check "old: slot 4 leaks the secret" test "$(toy 'get 4')" = "slot 4 SECRET"
check "old: echo is not cut" test "$(toy 'echo 0123456789')" = "echo 0123456789"

expect_exit 0 "apply" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/fix.hpatch"
check "patched: slot 4 is refused (library)" test "$(toy 'get 4')" = "slot 4 refused"
check "patched: slot 3 still answers" test "$(toy 'get 3')" = "slot 3 delta"
check "patched: echo is cut at 8 (program)" test "$(toy 'echo 0123456789')" = "echo 01234567"
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
check "reverted: slot 4 leaks again" test "$(toy 'get 4')" = "slot 4 SECRET"
check "reverted: echo is not cut again" test "$(toy 'echo 0123456789')" = "echo 0123456789"
check "the process still runs" kill -0 "$pid"

# Not reproducible: the .debs on the host came from a modified source.
check "an official build from a locally modified source" \
	official modified "$PKG/hptoy" "$PKG/local.patch"
expect_exit 1 "hpatch-deb refuses it" "$DEB" --cache "$T/cache" \
	--key "$T/k.key" -o "$T/bad.hpatch" --old-source "$T/hptoy_1.0.dsc" \
	--fix "$PKG/fix.patch" --shipped "$T/modified/root"
check "naming the ELF" grep -q "libhptoy.so.1'.*not reproducible" "$T/last.err"
check "and what differs: toy_version's code" \
	grep -q "section '.text' differs .*'toy_version'" "$T/last.err"
check "before any patch is written" test ! -e "$T/bad.hpatch"

# debian/rules without debhelper: no debug package, stripped by hand; the
# unstripped ELFs are found in the build tree by build-id.
cp -a "$PKG/hptoy" "$T/nodh-src"
cp "$PKG/rules.nodh" "$T/nodh-src/debian/rules"
check "an official build with rules that do not use dh" \
	official nodh "$T/nodh-src"
expect_exit 0 "hpatch-deb on it" "$DEB" --cache "$T/cache" --key "$T/k.key" \
	-o "$T/nodh.hpatch" --old-source "$T/nodh-src" --fix "$PKG/fix.patch" \
	--shipped "$T/nodh/root"
check "all ELFs proved and both fixes in" bash -c \
	"test \$(grep -c ': build-id equal ' '$T/last.out') -eq 3 &&
	 grep -q 'name: echo_len' '$T/last.out' && grep -q 'name: toy_get' '$T/last.out'"

# LTO: refused before a build.
cp -a "$PKG/hptoy" "$T/lto"
sed -i 's/hardening=+all/hardening=+all optimize=+lto/' "$T/lto/debian/rules"
expect_exit 1 "a package built with LTO" "$DEB" --cache "$T/cache" \
	-o "$T/lto.hpatch" --old-source "$T/lto" --fix "$PKG/fix.patch" \
	--shipped "$T/debian/root"
check "is refused with the reason" grep -q "link-time optimisation" "$T/last.err"
check "before building" bash -c "! grep -q dpkg-buildpackage '$T/last.err'"

eval "exec ${TOY[1]}>&-"
finish
