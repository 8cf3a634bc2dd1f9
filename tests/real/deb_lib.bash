# Shared by tests/real/deb_*_live.sh (sourced): hpatch-deb on a Debian
# security update, the official binary packages of the old and the fixed
# version unpacked (not installed: the host keeps its own), a process
# running the old one, patched live, probed, reverted. Not in the suite:
# they download and build. Run as root after scripts/build.sh.
src=$(cd "$(dirname "$0")/../.." && pwd)
export HP_BUILD=${HP_BUILD_DIR:-$src/build}
. "$src/tests/e2e/lib.bash"
require_ptrace
CACHE=${HP_DEB_CACHE:-/var/cache/hpatch-deb}
say() { printf '%s: %s\n' "$(basename "$0" .sh)" "$*" >&2; }

# deb_setup PACKAGES...: the tools, and what the host program needs.
deb_setup() {
	bash "$src/scripts/setup.sh" dpkg-dev debhelper patch \
		debian-archive-keyring "$@" >&2
	[ -x "$HPDIFF" ] || HP_BUILD_DIR=$HP_BUILD bash "$src/scripts/build.sh" >&2
	make_key k
}

# deb_official PKG VERSION: the archive's .deb of PKG at VERSION, unpacked
# into $T/PKG_VERSION (printed); the .deb goes to $T/debs (apt's _apt user
# downloads there, which it reaches through $T, mktemp's 0700: searchable
# by others now, else apt downloads as root with a warning; $T stays
# root's and unwritable by others, as hpatch's audit log wants).
deb_official() {
	local d=$T/${1}_$2
	mkdir -p "$d" "$T/debs"
	chmod o+x "$T"
	chown _apt "$T/debs" 2>/dev/null || true
	(cd "$T/debs" && apt-get download -qq "$1=$2") >&2 || return 1
	dpkg-deb -x "$T/debs/${1}_${2#*:}_"*.deb "$d"
	printf '%s\n' "$d"
}

# deb_patch DESC ARGS...: run hpatch-deb ARGS into $T/deb.hpatch and report
# its time, proofs, builds and size.
deb_patch() {
	local desc=$1 start
	shift
	start=$(date +%s)
	expect_exit 0 "hpatch-deb: $desc" "$src/scripts/hpatch-deb" \
		--cache "$CACHE" --key "$T/k.key" -o "$T/deb.hpatch" "$@"
	say "hpatch-deb: $(($(date +%s) - start)) s (load $(cut -d' ' -f1 /proc/loadavg))"
	grep -E 'build-id equal|sections equal|REFUSED' "$T/last.out" |
		sed "s/^/$(basename "$0" .sh): proof: /" >&2 || true
	grep -E '(old|new): built in' "$T/last.err" |
		sed "s/^/$(basename "$0" .sh): /" >&2 || true
	[ ! -f "$T/deb.hpatch" ] ||
		say "patch: $(stat -c %s "$T/deb.hpatch") bytes; functions:" \
			"$(grep -o 'name: [A-Za-z_0-9.]*' "$T/last.out" | cut -d' ' -f2 | tr '\n' ' ')"
}

# deb_apply PID: apply $T/deb.hpatch, report the pause.
deb_apply() {
	expect_exit 0 "apply to pid $1" "$HPATCH" apply -p "$1" --trust "$T/trust" \
		--json "$T/deb.hpatch"
	say "pause_us: $(grep -o '"pause_us":[0-9]*' "$T/last.out" | cut -d: -f2 | tr '\n' ' ')"
}

# deb_update_patch SOURCE VERSION PATCH: PATCH of the source package
# SOURCE's VERSION (downloaded by hpatch-deb into its cache), as a file in
# $T (printed): one fix of a security update, for --fix.
deb_update_patch() {
	tar -xJf "$CACHE/src/${1}_${2#*:}.debian.tar.xz" -C "$T" "debian/patches/$3"
	printf '%s\n' "$T/debian/patches/$3"
}

# deb_host LIBDIR PROG: PROG as the coprocess HOST with LIBDIR first in its
# library path (the official .deb's); sets pid and ready (its first line).
deb_host() {
	coproc HOST { LD_LIBRARY_PATH=$1 exec "$2"; }
	PIDS+=("$HOST_PID")
	pid=$HOST_PID
	read -r -t 10 ready <&"${HOST[0]}" || ready=none
}
host() { ask_coproc HOST "$1"; }

# deb_revert PID: revert, and the process still runs.
deb_revert() {
	expect_exit 0 "revert" "$HPATCH" revert -p "$1"
	check "the process still runs" kill -0 "$1"
}
