#!/usr/bin/env bash
# Installs the Debian 12 packages that building and testing need, if missing.
# Runs apt-get update at most once, and only when something is missing.
set -eu
# "build": only what building the library and the demo needs (make demo).
if [ "${1:-}" = build ]; then
    pkgs=(build-essential libconfig-dev)
elif [ "${1:-}" = deb ]; then
    # "deb": what `make deb` needs (dpkg-buildpackage with debhelper).
    pkgs=(build-essential libconfig-dev debhelper)
else
    pkgs=(build-essential libconfig-dev bats iproute2 clang libclang-rt-14-dev
          $(cat "$(dirname "$0")"/deps.d/*.txt 2>/dev/null || true))
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else
        echo "install-deps: not root and no sudo; install by hand: ${missing[*]}" >&2; exit 1; fi
else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
