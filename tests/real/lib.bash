# Shared by the tests/real/*_live.sh scripts that build a real program from
# Debian bookworm's source package (sourced with the script's arguments:
# [--flags sections|debian]): the flavour, hpatch's e2e helpers, default
# flags, and two steps every such script takes.
#   . "$(dirname "$0")/lib.bash" "$@"
src=$(cd "$(dirname "$0")/../.." && pwd)
. "$src/scripts/debian-source.bash"
hp_real_flags "$@"
export HP_BUILD=${HP_BUILD_DIR:-$src/build}
. "$src/tests/e2e/lib.bash"
require_ptrace
FLAGS="-O2 -g -ffunction-sections -fdata-sections"
LDFLAGS="-Wl,--build-id"
say() { printf '%s: %s\n' "$(basename "$0" .sh)" "$*" >&2; }

# real_source PKG TOOLS...: the tools (and what every build needs), hpatch's
# build if missing, and PKG's source in its cache: sets PKG, C (the cache),
# dsc and series (Debian's patches, in order).
real_source() {
	PKG=$1
	shift
	C=${HP_BENCH_CACHE:-/var/cache/hpatch-bench}/$PKG
	bash "$src/scripts/setup.sh" dpkg-dev patch debian-archive-keyring "$@" >&2
	[ -x "$HPDIFF" ] || HP_BUILD_DIR=$HP_BUILD bash "$src/scripts/build.sh" >&2
	hp_debian_source "$PKG" "$C"
	dsc=$HP_DSC
	series=$C/pristine/debian/patches/series
	export GIT_CEILING_DIRECTORIES=$C/work
}

# real_flavour VAR: with --flags debian, FLAGS are Debian's VAR (CFLAGS or
# CXXFLAGS) and CPPFLAGS, and Debian's LDFLAGS come before the script's.
real_flavour() {
	[ "$flavour" = debian ] || return 0
	mkdir -p "$C/work/$PKG"
	FLAGS="$(cd "$C/work/$PKG" && hp_debian_flags "$1") $(hp_debian_flags CPPFLAGS)"
	LDFLAGS="$(hp_debian_flags LDFLAGS) $LDFLAGS"
}

# real_build NAME COMPILE PATCHES...: the tree $C/NAME, the upstream source
# with Debian's PATCHES applied and built by the function COMPILE (run in
# the tree, its output kept in $C/work/build.log), at the same path each
# time (debug info records it), cached by flags, source and patches.
real_build() {
	local name=$1 compile=$2 w=$C/work/$PKG p t0
	shift 2
	local stamp="$FLAGS $LDFLAGS $dsc $*"
	if [ -f "$C/$name/.hp-stamp" ] && [ "$(cat "$C/$name/.hp-stamp")" = "$stamp" ]; then
		return
	fi
	say "building $name"
	t0=$(date +%s%N)
	rm -rf "$C/work" "${C:?}/$name"
	mkdir -p "$C/work"
	cp -a "$C/pristine" "$w"
	for p in "$@"; do
		patch -d "$w" -p1 --forward --no-backup-if-mismatch -s \
			<"$w/debian/patches/$p"
	done
	(cd "$w" && "$compile") >"$C/work/build.log" 2>&1 ||
		{ tail -n 30 "$C/work/build.log" >&2; exit 1; }
	mv "$w" "$C/$name"
	echo "$stamp" >"$C/$name/.hp-stamp"
	say "built $name in $((($(date +%s%N) - t0) / 1000000)) ms"
}
