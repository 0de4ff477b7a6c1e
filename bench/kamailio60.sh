#!/usr/bin/env bash
# Builds Kamailio 6.0 for the benchmark's kam60 section (issue 17), from
# Debian 13's source package, under build/kamailio-6.0/:
#   apt/    private apt state (sources list, package lists, cache): the
#           machine's own apt configuration and state are never touched
#   src/    the unpacked orig tarball
#   obj/    the CMake build tree
#   inst/   the install: inst/sbin/kamailio, inst/lib*/kamailio/modules/
# Only the core and the modules the bench and e2e configurations load are
# built (KAM60_MODULES).  A second call with the build present does nothing.
#
# The last line printed on stdout is the result, one of
#   kamailio60: ok BINARY MODULE_DIR
#   kamailio60: skipped: WHY
# and the exit status is 0 either way (a missing source is not an error of
# the benchmark: its section says "skipped").  Output of the slow steps goes
# to build/kamailio-6.0/*.log.
#
# Knobs: KAM60_DIR (default build/kamailio-6.0), KAM60_SUITE (the Debian
# release whose source is taken, default trixie), KAM60_MODULES (default
# "sl pv xlog"), KAM60_JOBS (default 2).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${KAM60_DIR:-$ROOT/build/kamailio-6.0}
SUITE=${KAM60_SUITE:-trixie}
MODULES=${KAM60_MODULES:-sl pv xlog}
JOBS=${KAM60_JOBS:-2}
INST=$DIR/inst

say() { echo "kamailio60: $*" >&2; }
skipped() { echo "kamailio60: skipped: $*"; exit 0; }
# apt_err: apt's first error line, without the archive's address.
apt_err() { grep -E '^(E|Err):' "$DIR/apt.log" | head -n1 | sed -E 's#[a-z]+://[^ ]+#the archive#g'; }

# moddir: the installed module directory (lib/ or lib64/, by the platform).
moddir() {
    local d
    for d in "$INST"/lib*/kamailio/modules; do
        [ -d "$d" ] && { echo "$d"; return 0; }
    done
    return 1
}

# have_build: the binary and every wanted module are installed.
have_build() {
    local m d
    [ -x "$INST/sbin/kamailio" ] || return 1
    d=$(moddir) || return 1
    for m in $MODULES; do [ -f "$d/$m.so" ] || return 1; done
    return 0
}

if have_build; then
    echo "kamailio60: ok $INST/sbin/kamailio $(moddir)"
    exit 0
fi
mkdir -p "$DIR" || skipped "cannot create $DIR"
T0=$(date +%s)

# --- build dependencies, through apt-get when root -------------------------
need=()
for p in cmake bison flex gcc make pkg-config; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || skipped "not root, and the build needs ${need[*]} (apt-get install ${need[*]})"
    say "installing ${need[*]}"
    # Other users of the machine may hold dpkg's lock: wait for it (bounded).
    # The package lists are refreshed only if the install fails without.
    inst() {
        DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=600 \
            install -y -qq "${need[@]}"
    }
    { inst || { timeout 600 apt-get -o DPkg::Lock::Timeout=600 update -qq && inst; }; } \
        >"$DIR/deps.log" 2>&1 || skipped "apt-get install ${need[*]} failed (see $DIR/deps.log)"
fi

# --- the source package, with private apt state -----------------------------
APT=$DIR/apt
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$DIR/dl"
tarball() { ls "$DIR"/dl/kamailio_6.0*.orig.tar.* 2>/dev/null | head -n1; }
if [ -z "$(tarball)" ]; then
    # The Debian archive this machine already uses (its main release's
    # mirror), asked for another release's sources.
    codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
    uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
        awk -v c="$codename" '$2 == c { print $1; exit }')
    [ -n "$uri" ] || skipped "no Debian archive in this machine's apt sources"
    key=/usr/share/keyrings/debian-archive-keyring.gpg
    echo "deb-src [signed-by=$key] $uri $SUITE main" >"$APT/sources.list"
    aptopt=(-o "Dir::Etc::SourceList=$APT/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache" -o "Debug::NoLocking=1")
    say "fetching the $SUITE source package list"
    timeout 300 apt-get "${aptopt[@]}" update >"$DIR/apt.log" 2>&1 ||
        skipped "apt-get update for $SUITE sources failed: $(apt_err)"
    say "downloading kamailio's $SUITE source package"
    # The orig tarball's signature (.asc) answers 404 on the archive; the
    # tarball itself arrives anyway, so apt-get's status is not the test.
    (cd "$DIR/dl" && timeout 600 apt-get "${aptopt[@]}" source --download-only kamailio) \
        >>"$DIR/apt.log" 2>&1
    [ -n "$(tarball)" ] ||
        skipped "no kamailio 6.0 source from $SUITE: $(apt_err)"
fi
VERSION=$(basename "$(tarball)" | sed 's/^kamailio_\(.*\)\.orig\.tar\..*/\1/')

# --- unpack, configure, build, install --------------------------------------
if [ ! -f "$DIR/src/CMakeLists.txt" ]; then
    rm -rf "$DIR/src"
    mkdir -p "$DIR/src"
    tar -xf "$(tarball)" -C "$DIR/src" --strip-components=1 ||
        skipped "cannot unpack $(tarball)"
fi
T1=$(date +%s)
say "building kamailio $VERSION (core + ${MODULES}) with CMake -j$JOBS"

{
    cmake -S "$DIR/src" -B "$DIR/obj" -DCMAKE_INSTALL_PREFIX="$INST" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DMODULE_GROUP_NAME="" -DINCLUDE_MODULES="$MODULES" &&
        cmake --build "$DIR/obj" -j "$JOBS" &&
        cmake --install "$DIR/obj"
} >"$DIR/build.log" 2>&1 || skipped "the build failed (see $DIR/build.log)"
have_build || skipped "the build installed no $INST/sbin/kamailio with modules $MODULES"
{
    echo "version=$VERSION"
    echo "suite=$SUITE"
    echo "modules=$MODULES"
    echo "build_seconds=$(($(date +%s) - T1))"
    echo "total_seconds=$(($(date +%s) - T0))"
    echo "cmake=$(cmake --version | head -n1)"
} >"$DIR/build.info"
say "built in $(($(date +%s) - T1)) s ($(($(date +%s) - T0)) s in all, with the download and build tools if fetched)"
echo "kamailio60: ok $INST/sbin/kamailio $(moddir)"
