#!/usr/bin/env bash
# Install everything hpatch needs to build and test on Debian bookworm.
# Idempotent and quick when all is present; run as root (or with sudo).
# Arguments name more packages to install alike (a benchmark's tools).
set -euo pipefail

pkgs=(build-essential cmake pkg-config libelf-dev libdwarf-dev libzstd-dev
      libsodium-dev libcmocka-dev libzydis-dev libsystemd-dev libinih-dev libiberty-dev systemd
      zstd clang libclang-rt-14-dev clang-format git procps dpkg-dev
      scdoc python3 man-db debhelper lintian ansible-core
      pylint python3-pycodestyle yamllint python3-voluptuous python3-venv
      "$@")

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "setup: all ${#pkgs[@]} packages present"
	exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
