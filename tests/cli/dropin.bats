#!/usr/bin/env bats
# The Kamailio systemd drop-in: it points at the file and sets no setting of
# its own; its ExecStartPre= and ExecReload= commands work as systemd runs
# them (the unit's environment, $MAINPID); docs/kamailio.md installs the
# command those lines use.
load helpers

DROPIN=$IL_ROOT/conf/kamailio.service.d/iplimit.conf

# unit_cmd KEY: the drop-in's KEY= command line, without systemd's "-"
# prefix, the installed paths replaced by this tree's.
unit_cmd() {
    sed -n "s/^$1=-\{0,1\}//p" "$DROPIN" | sed "s|/usr/local/bin/iplimit|$IPLIMIT|"
}

@test "drop-in: only LD_PRELOAD and IPLIMIT_CONFIG=/etc/iplimit/iplimit.conf are set" {
    local vars
    vars=$(sed -n 's/^Environment=\([A-Z_]*\)=.*/\1/p' "$DROPIN" | sort | tr '\n' ' ')
    [ "$vars" = "IPLIMIT_CONFIG LD_PRELOAD " ] || diag "the drop-in sets: $vars"
    grep -qx 'Environment=IPLIMIT_CONFIG=/etc/iplimit/iplimit.conf' "$DROPIN" || diag "no file"
    grep -qx 'ExecStartPre=-/usr/bin/env -u LD_PRELOAD /usr/local/bin/iplimit check' "$DROPIN" ||
        diag "no ExecStartPre check line"
    grep -qx 'ExecReload=/usr/bin/env -u LD_PRELOAD /usr/local/bin/iplimit reload --pid $MAINPID' \
        "$DROPIN" || diag "no ExecReload line"
    grep -q 'journalctl -t iplimit' "$DROPIN" || diag "the drop-in does not say where lines go"
}

@test "docs/kamailio.md installs with make install and names journalctl -t iplimit" {
    local doc=$IL_ROOT/docs/kamailio.md
    grep -q '^make && make install' "$doc" || diag "no make install"
    ! grep -q 'make lib' "$doc" || diag "still installs with make lib"
    grep -q 'journalctl -t iplimit' "$doc" || diag "no journalctl -t iplimit"
}

@test "drop-in: ExecStartPre checks the file; ExecReload applies an edited file" {
    printf 'max = 2;\nallow = [ "127.0.0.3" ];\n' >"$T/iplimit.conf"
    export IPLIMIT_CONFIG=$T/iplimit.conf
    run env LD_PRELOAD="$IL_LIB" $(unit_cmd ExecStartPre)
    [ "$status" -eq 0 ] || diag "ExecStartPre: exit $status: $output"
    grep -qx "configuration OK" <<<"$output" || diag "$output"
    server_start evloop 127.0.0.1
    client a 127.0.0.2 3 "ok=2 fail=1"
    printf 'max = 4;\nallow = [ "127.0.0.3" ];\n' >"$T/iplimit.conf"
    local reload
    reload=$(unit_cmd ExecReload | sed "s/\$MAINPID/$SRV_PID/")
    run env LD_PRELOAD="$IL_LIB" $reload
    [ "$status" -eq 0 ] || diag "ExecReload: exit $status: $output"
    grep -qx "  max: 2 -> 4" <<<"$output" || diag "$output"
    client b 127.0.0.2 3 "ok=2 fail=1"
    client c 127.0.0.3 5 "ok=5 fail=0"
    # a bad file: the check says so and exits 1 (the unit's "-" lets Kamailio start)
    printf 'max = lots;\n' >"$T/iplimit.conf"
    run env LD_PRELOAD="$IL_LIB" $(unit_cmd ExecStartPre)
    [ "$status" -eq 1 ] || diag "ExecStartPre on a bad file: exit $status: $output"
    run env LD_PRELOAD="$IL_LIB" $reload
    [ "$status" -eq 1 ] || diag "ExecReload on a bad file: exit $status: $output"
    expect_stat .policy.max 4
}
