#!/usr/bin/env bash
# The Debian packages, end to end on this machine: build them from a copy
# of the tree (dpkg-buildpackage -us -uc -b), check them with lintian,
# install both with apt-get, check what an operator and a release engineer
# meet (hpatch --help, man -w, the trust directory, find_package(hpatch)),
# run the demo with the installed tools, then purge and check that nothing
# is left behind.
#
# It installs system-wide: runs as root, one at a time on a machine (a
# lock), and refuses to start if hpatch or hpdiff is already installed (the
# purge would take them). Other tests are not affected: they run the build
# tree's tools by path, never from PATH.
. "$(dirname "$0")/../e2e/lib.bash"
if [ "$(id -u)" -ne 0 ]; then
	echo "skip: installing a package needs root" >&2
	exit 77
fi
for c in dpkg-buildpackage lintian apt-get; do
	command -v "$c" >/dev/null || { echo "skip: no $c (scripts/setup.sh installs it)" >&2; exit 77; }
done
APT=(apt-get -y -q -o DPkg::Lock::Timeout=600)

exec 9>/run/lock/hpatch-pkg-test.lock
flock -w 1200 9 || { echo "FAIL: another package test holds the lock" >&2; exit 1; }
installed() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed; }
for p in hpatch hpdiff; do
	if installed "$p"; then
		echo "FAIL: '$p' is already installed; this test would purge it" >&2
		exit 1
	fi
done
had_log=$([ -e /var/log/hpatch ] && echo yes || echo no)

# Build from a copy: dpkg-buildpackage writes its results into the parent
# of the tree, and the tree must not gain debian/ build output. The copy is
# what git would commit (tracked and new, unignored files).
mkdir "$T/src"
git -C "$HP_SRC" ls-files -co --exclude-standard -z |
	(cd "$HP_SRC" && xargs -0 cp --parents -t "$T/src")
start=$(date +%s)
# The README's command, unit tests included (debian/rules runs them).
(cd "$T/src" && DEB_BUILD_OPTIONS="parallel=$(nproc)" \
	dpkg-buildpackage -us -uc -b) >"$T/build.log" 2>&1 || {
	tail -n 40 "$T/build.log" >&2
	fail "dpkg-buildpackage -us -uc -b"
	finish
}
ok "dpkg-buildpackage -us -uc -b ($(($(date +%s) - start)) s)"
debs=("$T"/hpatch_*_amd64.deb "$T"/hpdiff_*_amd64.deb)
check "hpatch_*.deb and hpdiff_*.deb built" test -f "${debs[0]}" -a -f "${debs[1]}"

# Lintian clean at every level, pedantic included, but for the tags
# debian/*.lintian-overrides justify.
lintian -E -I --pedantic --fail-on error,warning,info,pedantic \
	"$T"/hpatch_*_amd64.changes >"$T/lintian.log" 2>&1 || true
grep -v '^running with root privileges' "$T/lintian.log" >"$T/tags" || true
check "lintian: no tags${T:+ $(tr '\n' ' ' <"$T/tags")}" test ! -s "$T/tags"

cleanup_pkg() {
	"${APT[@]}" purge hpatch hpdiff >/dev/null 2>&1 || true
	rm -f /etc/hpatch/trusted.d/hpatch-pkg-test.pub
	rmdir /etc/hpatch/trusted.d /etc/hpatch 2>/dev/null || true
	cleanup
}
trap cleanup_pkg EXIT
expect_exit 0 "apt-get install ./hpatch_*.deb ./hpdiff_*.deb" "${APT[@]}" install "${debs[@]}"
dpkg -L hpatch hpdiff | sort -u >"$T/files"

check "hpatch is /usr/sbin/hpatch" test "$(command -v hpatch)" = /usr/sbin/hpatch
check "hpdiff is /usr/bin/hpdiff" test "$(command -v hpdiff)" = /usr/bin/hpdiff
expect_exit 0 "hpatch --help" hpatch --help
check "it lists apply" grep -q "apply" "$T/last.out"
expect_exit 0 "hpatch --version" hpatch --version
for p in hpatch:8 hpatch-format:5 hpdiff:1 hpsign:1 hpatch-deb:1; do
	check "man -w ${p%:*}" test "$(man -w "${p%:*}")" = "/usr/share/man/man${p#*:}/${p%:*}.${p#*:}.gz"
done
check "/etc/hpatch/trusted.d: root, 755, empty" test \
	"$(stat -c '%U %a' /etc/hpatch/trusted.d) $(ls -A /etc/hpatch/trusted.d)" = "root 755 "
check "bash completion for hpatch" test -f /usr/share/bash-completion/completions/hpatch
check "hpatch-deb and its ELF helper (/usr/libexec/hpatch) run" bash -c \
	"hpatch-deb --help >/dev/null &&
	 /usr/libexec/hpatch/hpdeb-elf build-id /usr/bin/hpdiff >/dev/null"
mkdir "$T/proj"
printf '%s\n' 'cmake_minimum_required(VERSION 3.20)' 'project(p NONE)' \
	'find_package(hpatch REQUIRED)' \
	'get_target_property(h hpatch::hpdiff IMPORTED_LOCATION)' \
	'message(STATUS "hpdiff=${h}")' >"$T/proj/CMakeLists.txt"
expect_exit 0 "find_package(hpatch), no hints" cmake -S "$T/proj" -B "$T/proj/b"
check "hpatch::hpdiff is /usr/bin/hpdiff" grep -q -- "-- hpdiff=/usr/bin/hpdiff$" "$T/last.out"

# The demo, with the installed tools (its service from the build tree,
# which demo.sh's build step leaves as it is: same build type).
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$HP_BUILD/CMakeCache.txt")
# As an operator runs it: the default state directory (/run/hpatch).
expect_exit 0 "demo with the installed tools" \
	env -u HPATCH_STATE_DIR -u HPATCH_AUDIT_LOG HP_TOOLS=installed \
	HP_BUILD_DIR="$HP_BUILD" HP_BUILD_TYPE="$build_type" bash "$HP_SRC/scripts/demo.sh"
check "the demo used /usr/bin/hpdiff, /usr/bin/hpsign, /usr/sbin/hpatch" \
	grep -q "tools: /usr/bin/hpdiff, /usr/bin/hpsign, /usr/sbin/hpatch" "$T/last.out"
check "the running service gave v2's answer" grep -q "(v2, 10% off)" "$T/last.out"
check "and v1's after the revert" grep -q "30 EUR (v1)" <(sed -n '/== revert/,$p' "$T/last.out")

# The default trust directory: a patch signed by a key not in
# /etc/hpatch/trusted.d is refused (6), and applies once the key is there.
# (The audit goes to this test's own log: the system's is not the test's
# to write.)
"$HP_BUILD/testdata/demo-v1" 0 1 >"$T/demo.log" 2>&1 &
PIDS+=($!)
hpsign keygen "$T/other" >/dev/null
hpdiff -q --old "$HP_BUILD/testdata/CMakeFiles/demo-v1.objs.dir" \
	--new "$HP_BUILD/testdata/CMakeFiles/demo-v2.objs.dir" \
	--binary "$HP_BUILD/testdata/demo-v1" --key "$T/other.key" -o "$T/p.hpatch" >/dev/null
expect_exit 6 "an untrusted key is refused by default" hpatch apply -p "${PIDS[-1]}" "$T/p.hpatch"
cp "$T/other.pub" /etc/hpatch/trusted.d/hpatch-pkg-test.pub
expect_exit 0 "applied once its key is in /etc/hpatch/trusted.d" hpatch apply -p "${PIDS[-1]}" "$T/p.hpatch"
expect_exit 0 "and reverted" hpatch revert -p "${PIDS[-1]}"

expect_exit 0 "apt-get purge hpatch hpdiff" "${APT[@]}" purge hpatch hpdiff
for p in hpatch hpdiff; do check "$p: not installed" bash -c "! dpkg-query -W -f='\${Status}' $p 2>/dev/null | grep -q installed"; done
left=$(while read -r f; do
	case $f in /. | /etc/hpatch | /etc/hpatch/*) continue ;; esac # (below)
	if [ -d "$f" ]; then
		# A directory may stay only as another package's (/usr/share/man/man8).
		dpkg -S "$f" >/dev/null 2>&1 || echo "$f"
	elif [ -e "$f" ]; then
		echo "$f"
	fi
done <"$T/files")
check "nothing of the packages is left${left:+: $left}" test -z "$left"
for d in /usr/share/hpatch /usr/share/cmake/hpatch /usr/share/doc/hpatch /usr/share/doc/hpdiff; do
	check "$d: gone" test ! -e "$d"
done
# What the administrator put in the trust directory stays, and with it the
# directory; nothing else there.
check "/etc/hpatch/trusted.d: only the key added" \
	test "$(find /etc/hpatch | sort | tr '\n' ' ')" = "/etc/hpatch /etc/hpatch/trusted.d /etc/hpatch/trusted.d/hpatch-pkg-test.pub "
rm /etc/hpatch/trusted.d/hpatch-pkg-test.pub
rmdir /etc/hpatch/trusted.d /etc/hpatch
# Kept on purge, by design: processes hpatch patched stay patched, so
# their anti-rollback state stays (a tmpfs: gone at reboot), and the audit
# log is the record of who changed them.
check "/run/hpatch: kept (the demo's state)" test -d /run/hpatch
check "/var/log/hpatch: as it was (untouched by this test)" \
	test "$([ -e /var/log/hpatch ] && echo yes || echo no)" = "$had_log"
finish
