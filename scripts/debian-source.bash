# Sourced by bench/hpdiff.sh and tests/real/*_live.sh, which build a real
# program from Debian bookworm's source package, and by tests/e2e/lib.bash
# and testdata/CMakeLists.txt for Debian's build flags.
#
# hp_debian_flags VAR: Debian's flags for VAR (CFLAGS, CXXFLAGS, CPPFLAGS,
# LDFLAGS), as dpkg-buildflags gives them to a package built with every
# hardening option (bindnow: -z now), plus what Debian trixie's dpkg (1.22)
# adds on amd64 and bookworm's (1.21) does not: -fstack-clash-protection
# -fcf-protection, and for C -Werror=implicit-function-declaration. Run it
# from the source tree, which -ffile-prefix-map names.
hp_debian_flags() {
	local f a x
	f=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get "$1") || return
	case $1 in
	CFLAGS) x=(-fstack-clash-protection -fcf-protection
		-Werror=implicit-function-declaration) ;;
	CXXFLAGS) x=(-fstack-clash-protection -fcf-protection) ;;
	*) x=() ;;
	esac
	for a in "${x[@]}"; do
		[[ " $f " == *" $a "* ]] || f+=" $a"
	done
	printf '%s\n' "$f"
}


# hp_real_flags [--flags sections|debian]: the build flavour a
# tests/real script was asked for; sets flavour and pfx (the prefix of its
# build trees: "" or "debian-"). Exits 2 on anything else.
hp_real_flags() {
	flavour=sections
	if [ "${1:-}" = --flags ]; then
		flavour=${2:?--flags takes sections or debian}
	fi
	case $flavour in
	sections) pfx= ;;
	debian) pfx=debian- ;;
	*) echo "usage: $0 [--flags sections|debian]" >&2; exit 2 ;;
	esac
}

#
# hp_debian_source PKG DIR: download PKG's source package into DIR/src
# (once; through a private sources list and lists dir, so the host's apt is
# untouched), and unpack the upstream source without Debian's patches into
# DIR/pristine (again only when the package changed). apt-get checks the
# files against the signed Sources index. Sets HP_DSC to the .dsc file.
hp_debian_source() {
	local pkg=$1 c=$2 apt_priv
	mkdir -p "$c/lists/partial" "$c/src"
	HP_DSC=$(find "$c/src" -name "${pkg}_*.dsc" | head -n1)
	if [ -z "$HP_DSC" ]; then
		echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
			"http://deb.debian.org/debian bookworm main" >"$c/src.list"
		apt_priv=(-o "Dir::Etc::SourceList=$c/src.list"
			-o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$c/lists")
		printf '%s: fetching the %s source package\n' "$(basename "$0" .sh)" \
			"$pkg" >&2
		DEBIAN_FRONTEND=noninteractive apt-get "${apt_priv[@]}" update -qq
		# apt drops privileges to _apt for downloads
		! id _apt >/dev/null 2>&1 || chown _apt "$c/src"
		(cd "$c/src" && apt-get "${apt_priv[@]}" source --download-only -qq "$pkg")
		HP_DSC=$(find "$c/src" -name "${pkg}_*.dsc" | head -n1)
	fi
	[ -n "$HP_DSC" ] || { echo "no source package for $pkg" >&2; return 1; }
	if [ ! -f "$c/pristine/.hp-stamp" ] ||
		[ "$(cat "$c/pristine/.hp-stamp")" != "$HP_DSC" ]; then
		rm -rf "$c/pristine"
		dpkg-source --no-check --no-copy --skip-patches -x "$HP_DSC" \
			"$c/pristine" >/dev/null
		echo "$HP_DSC" >"$c/pristine/.hp-stamp"
	fi
}
