#!/usr/bin/env bats
# The Debian package (issue 14): make deb, its contents, lintian, install,
# use by bare name, purge. Installs the package on this machine (as root)
# and purges it again in teardown_file; skipped when not root.
load ../cli/helpers

MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
PKGLIB=/usr/lib/$MULTIARCH/libiplimit.so

setup_file() {
    [ "$(id -u)" -eq 0 ] || return 0
    make -C "$IL_ROOT" deb >"$BATS_FILE_TMPDIR/make-deb.log" 2>&1 || {
        tail -n 30 "$BATS_FILE_TMPDIR/make-deb.log" >&3; return 1; }
}

teardown_file() {
    [ "$(id -u)" -eq 0 ] || return 0
    dpkg --purge iplimit >/dev/null 2>&1 || true
}

setup() {
    [ "$(id -u)" -eq 0 ] || skip "installs a package: needs root"
    il_setup
    VERSION=$(cat "$IL_ROOT/VERSION")
    DEB=$IL_ROOT/build/deb/iplimit_${VERSION}_$(dpkg --print-architecture).deb
}

@test "make deb: one version everywhere, the tree left clean" {
    [ -f "$DEB" ] || diag "no $DEB"
    [ "$(dpkg-deb -f "$DEB" Version)" = "$VERSION" ] || diag "deb version differs from VERSION"
    [ "$(dpkg-parsechangelog -l "$IL_ROOT/debian/changelog" -S Version)" = "$VERSION" ] ||
        diag "debian/changelog differs from VERSION"
    # Built in a scratch copy: nothing debhelper writes lands in the tree.
    local stray
    stray=$(cd "$IL_ROOT" && ls -d debian/iplimit debian/.debhelper debian/files \
        debian/debhelper-build-stamp debian/iplimit.substvars 2>/dev/null || true)
    [ -z "$stray" ] || diag "build left in the tree: $stray"
}

@test "the package's files follow Debian policy; the config is its only conffile" {
    local list
    list=$(dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./|/|')
    local f
    for f in "$PKGLIB" /usr/bin/iplimit /etc/iplimit/iplimit.conf \
        /usr/share/man/man1/iplimit.1.gz /usr/share/man/man5/iplimit.conf.5.gz \
        /usr/share/man/man8/libiplimit.8.gz /usr/share/doc/iplimit/copyright \
        /usr/share/doc/iplimit/changelog.gz \
        /usr/share/doc/iplimit/examples/kamailio.service.d/iplimit.conf \
        /usr/share/doc/iplimit/examples/prometheus/iplimit.rules.yml \
        /usr/share/doc/iplimit/examples/prometheus/iplimit-textfile.service \
        /usr/share/doc/iplimit/examples/prometheus/iplimit-textfile.timer; do
        grep -qxF "$f" <<<"$list" || diag "missing from the package: $f"
    done
    ! grep -q '^/usr/local' <<<"$list" || diag "files under /usr/local"
    # No unit is installed where systemd would find it.
    ! grep -Eq '^/(usr/)?lib/systemd/' <<<"$list" || diag "a systemd unit is installed"
    local tmp=$BATS_TEST_TMPDIR/ctl
    dpkg-deb -e "$DEB" "$tmp"
    [ "$(cat "$tmp/conffiles")" = /etc/iplimit/iplimit.conf ] ||
        diag "conffiles: $(cat "$tmp/conffiles")"
    # Installing, upgrading and removing never touch a running service:
    # no maintainer script at all.
    local s
    for s in preinst postinst prerm postrm; do
        [ ! -e "$tmp/$s" ] || diag "maintainer script $s: $(cat "$tmp/$s")"
    done
}

@test "lintian: no error and no warning" {
    run lintian --no-cfg -E --pedantic "$DEB"
    local bad
    bad=$(grep -E '^[EW]: ' <<<"$output" || true)
    [ -z "$bad" ] || diag "lintian: $bad"
}

@test "the packaged library: the stack protector is on, and off on the straight paths (x86-64)" {
    [ "$(uname -m)" = x86_64 ] || skip "reads x86-64's canary address, %fs:0x28"
    # The library as dpkg-buildpackage built it (Debian's flags), before
    # dh_strip: its symbol table names the static functions too.
    local lib=$IL_ROOT/build/deb/iplimit-$VERSION/build/libiplimit.so fns f
    [ -f "$lib" ] || diag "no $lib"
    fns=$(objdump -d --no-show-raw-insn "$lib" |
        awk '/^[0-9a-f]+ <[^>]*>:$/ { fn = $2 } /%fs:0x28/ { print fn }' | sort -u)
    # Debian's flags reached the build: the general paths keep it.
    [ -n "$fns" ] || diag "no function reads the canary: built without the stack protector?"
    # src/lib/hot.h: IL_HOT functions go without it (a page and five
    # instructions per call otherwise). LTO's copies and cold parts count.
    for f in accept accept4 close close_counted fcntl fcntl64 sendmsg recvmsg read recv \
        il_limiter_admit_fast admit_v4_judged admit_v4_rated; do
        ! grep -Eq "^<$f([.][^>]*)?>:$" <<<"$fns" || diag "$f reads the stack canary"
    done
}

@test "installed: LD_PRELOAD=libiplimit.so by name limits a server; the installed iplimit works" {
    run dpkg -i "$DEB"
    [ "$status" -eq 0 ] || diag "dpkg -i: $output"
    [ -f "$PKGLIB" ] || diag "no $PKGLIB"
    # The conffile is a commented sample: with it, the policy is the default.
    run /usr/bin/iplimit check --config /etc/iplimit/iplimit.conf
    [ "$status" -eq 0 ] || diag "check of the installed file: $output"
    local with_file defaults
    with_file=$(grep -v '^file:' <<<"$output")
    defaults=$(/usr/bin/iplimit check | grep -v '^file:')
    [ "$with_file" = "$defaults" ] || diag "the installed file changes the policy: $with_file"

    run /usr/bin/iplimit --version
    [ "$status" -eq 0 ] && [ "$output" = "iplimit $VERSION" ] || diag "--version: $output"
    local dropin=/usr/share/doc/iplimit/examples/kamailio.service.d/iplimit.conf
    grep -qx 'Environment=LD_PRELOAD=libiplimit.so' "$dropin" || diag "drop-in: $(cat "$dropin")"
    ! grep -q /usr/local "$dropin" || diag "the packaged drop-in names /usr/local"

    IL_LIB=libiplimit.so
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=0
    server_start evloop 127.0.0.1
    grep -qF "$PKGLIB" "/proc/$SRV_PID/maps" || diag "the server did not map $PKGLIB"
    client a 127.0.0.2 6 "ok=3 fail=3"
    client b 127.0.0.3 2 "ok=2 fail=0"
    IPLIMIT=/usr/bin/iplimit
    stat_json
    expect_key 127.0.0.2 open 3
    expect_key 127.0.0.3 open 2
    client_release a
    wait_stat '.keys | map(select(.key == "127.0.0.2")) | .[0].open // 0' 0

    # iplimit run finds the library in the multiarch directory.
    unset IPLIMIT_MAX
    run_server_with run --max 2 -- "$IL_BIN/evloop" -l 127.0.0.1 -p 0 -a "$ALOG"
    grep -qF "$PKGLIB" "/proc/$SRV_PID/maps" || diag "iplimit run did not preload $PKGLIB"
    client c 127.0.0.4 3 "ok=2 fail=1"
}

@test "purge leaves nothing behind" {
    dpkg -s iplimit >/dev/null 2>&1 || { run dpkg -i "$DEB"; [ "$status" -eq 0 ] || diag "$output"; }
    local files
    files=$(dpkg -L iplimit | while read -r f; do [ -f "$f" ] && echo "$f"; done)
    [ -n "$files" ] || diag "dpkg -L lists no files"
    # An administrator's edit of the conffile is removed by purge too.
    echo "max = 7;" >>/etc/iplimit/iplimit.conf
    run dpkg --purge iplimit
    [ "$status" -eq 0 ] || diag "purge: $output"
    local f left=
    for f in $files; do [ ! -e "$f" ] || left+=" $f"; done
    [ -z "$left" ] || diag "left after purge:$left"
    [ ! -e /etc/iplimit ] || diag "/etc/iplimit left after purge"
    [ ! -e /usr/share/doc/iplimit ] || diag "doc dir left after purge"
    ! dpkg -s iplimit >/dev/null 2>&1 || diag "still known to dpkg"
}

@test "the Prometheus rules pass promtool; the textfile units verify" {
    command -v promtool >/dev/null || diag "promtool missing (tests/deps.d/deb.txt)"
    run promtool check rules "$IL_ROOT/conf/prometheus/iplimit.rules.yml"
    [ "$status" -eq 0 ] || diag "promtool: $output"
    grep -q 'SUCCESS: 8 rules found' <<<"$output" || diag "promtool: $output"
    local units=$BATS_TEST_TMPDIR/units
    mkdir -p "$units"
    cp "$IL_ROOT"/conf/prometheus/iplimit-textfile.{service,timer} "$units/"
    run systemd-analyze verify "$units/iplimit-textfile.service" "$units/iplimit-textfile.timer"
    [ "$status" -eq 0 ] && [ -z "$output" ] || diag "systemd-analyze verify: $output"
}
