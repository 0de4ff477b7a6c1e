#!/usr/bin/env bats
# make install / make uninstall with PREFIX and DESTDIR.
load helpers

FILES=(bin/iplimit lib/libiplimit.so share/man/man1/iplimit.1 share/man/man5/iplimit.conf.5
       share/man/man8/libiplimit.8 share/doc/iplimit/examples/iplimit.conf
       share/doc/iplimit/examples/kamailio.service.d/iplimit.conf)

@test "install and uninstall into a DESTDIR with spaces; the installed command works" {
    dest="$T/dest dir"
    run make -C "$IL_ROOT" install DESTDIR="$dest" PREFIX=/opt/il
    [ "$status" -eq 0 ] || diag "make install: $output"
    local f
    for f in "${FILES[@]}"; do
        [ -f "$dest/opt/il/$f" ] || diag "not installed: $f"
    done
    [ -x "$dest/opt/il/bin/iplimit" ] || diag "not executable"
    cmp "$IL_ROOT/conf/iplimit.conf" "$dest/opt/il/share/doc/iplimit/examples/iplimit.conf"

    # The installed command preloads the installed library (a path with spaces).
    IPLIMIT="$dest/opt/il/bin/iplimit"
    run_server_with run --max 2 -- "$IL_BIN/evloop" -l 127.0.0.1 -p 0 -a "$ALOG"
    client a 127.0.0.2 3 "ok=2 fail=1"
    stat_json
    expect_key 127.0.0.2 open 2
    grep -qF "$dest/opt/il/lib/libiplimit.so" "/proc/$SRV_PID/maps" || diag "wrong library"

    run make -C "$IL_ROOT" uninstall DESTDIR="$dest" PREFIX=/opt/il
    [ "$status" -eq 0 ] || diag "make uninstall: $output"
    left=$(find "$dest" -type f)
    [ -z "$left" ] || diag "left after uninstall: $left"
    [ ! -e "$dest/opt/il/share/doc/iplimit" ] || diag "doc dir left"
}

@test "the man pages format without warnings" {
    local page
    for page in iplimit.1 libiplimit.8 iplimit.conf.5; do
        run bash -c "groff -man -Tutf8 -ww -z '$IL_ROOT/man/$page' 2>&1"
        [ "$status" -eq 0 ] && [ -z "$output" ] || diag "$page: $output"
    done
}
