#!/usr/bin/env bats
# iplimit check: the effective policy, or every error with its location.
load helpers

# check_fails WHERE: `iplimit check` exits 1 and names WHERE in an error.
check_fails() {
    run "$IPLIMIT" check "${@:2}"
    [ "$status" -eq 1 ] || diag "check exited $status for $1: $output"
    grep -qF "iplimit: error: $1" <<<"$output" || diag "no error naming '$1' in: $output"
    grep -q "configuration invalid" <<<"$output" || diag "$output"
}

@test "check: the sample configuration is valid; the summary is its policy" {
    unset IPLIMIT_LOG
    run "$IPLIMIT" check --config "$IL_ROOT/conf/iplimit.conf"
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    for want in "file: $IL_ROOT/conf/iplimit.conf" "max: 100 connections per key" \
                "allow: 192.0.2.10, 192.0.2.11" \
                "limits: 198.51.100.0/24=1000, 203.0.113.0/24=5" \
                "keys: IPv4 /32, IPv6 /64" "ports: 5060-5061" "action: rst" \
                "blocking: eagain" "log: syslog, once per key every 60 s" "reconcile: every 10 s, in a thread" \
                "capacity: 65536 connections" "dry run: no" "configuration OK"; do
        grep -qxF "$want" <<<"$output" || diag "missing line: $want"
    done
}

@test "check: the environment overrides the file named by IPLIMIT_CONFIG" {
    export IPLIMIT_CONFIG=$IL_ROOT/conf/iplimit.conf IPLIMIT_MAX=7 IPLIMIT_PORTS=all
    export IPLIMIT_DRY_RUN=yes IPLIMIT_CAPACITY=100
    run "$IPLIMIT" check
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    for want in "max: 7 connections per key" "ports: all" \
                "dry run: yes (count and log, reject nothing)" \
                "capacity: 128 connections" "(capacity 100 is rounded up to 128)"; do
        grep -qxF "$want" <<<"$output" || diag "missing line: $want"
    done
    grep -q "^environment: .*IPLIMIT_MAX" <<<"$output" || diag "$output"
}

@test "check: with no file and no variables, the defaults" {
    unset IPLIMIT_LOG
    run "$IPLIMIT" check
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    grep -qxF "file: none" <<<"$output" || diag "$output"
    grep -qxF "environment: none" <<<"$output" || diag "$output"
    grep -qxF "max: 1024 connections per key" <<<"$output" || diag "$output"
}

@test "check: each bad variable is named" {
    local bad=(IPLIMIT_MAX=abc IPLIMIT_MAX=-1 IPLIMIT_ALLOW=10.0.0.300 IPLIMIT_ALLOW=10.0.0.1/24
               IPLIMIT_LIMITS=10.0.0.0/8 IPLIMIT_LIMITS=10.0.0.0/8=x IPLIMIT_PORTS=70000
               IPLIMIT_PORTS=9-1 IPLIMIT_IPV4_PREFIX=33 IPLIMIT_IPV6_PREFIX=129
               IPLIMIT_ACTION=drop IPLIMIT_BLOCKING=sometimes IPLIMIT_LOG=file
               IPLIMIT_LOG_INTERVAL=0 IPLIMIT_CAPACITY=1 IPLIMIT_DRY_RUN=maybe IPLIMIT_BOGUS=1)
    local kv
    for kv in "${bad[@]}"; do
        run env "$kv" "$IPLIMIT" check
        [ "$status" -eq 1 ] || diag "$kv: exit $status: $output"
        grep -qF "iplimit: error: ${kv%%=*}: " <<<"$output" || diag "$kv not named: $output"
        [ "$(grep -c '^iplimit: error: ' <<<"$output")" -eq 1 ] || diag "$kv: $output"
    done
}

@test "check: every error of a file is named by file:line" {
    f=$T/bad.conf
    printf '%s\n' 'max = "lots";' 'colour = "blue";' 'ports = [ "9-1" ];' \
        'limits = ( { network = "10.0.0.0/33"; max = 3; } );' 'action = 5.5;' > "$f"
    export IPLIMIT_IPV4_PREFIX=40
    run "$IPLIMIT" check --config "$f"
    [ "$status" -eq 1 ] || diag "exit $status: $output"
    for want in "$f:1: max: " "$f:2: colour: unknown setting" "$f:3: ports: " \
                "$f:4: limits: " "$f:5: action: wrong type of value" "IPLIMIT_IPV4_PREFIX: "; do
        grep -qF "iplimit: error: $want" <<<"$output" || diag "missing error: $want"
    done
    [ "$(grep -c '^iplimit: error: ' <<<"$output")" -eq 6 ] || diag "$output"
    grep -q "configuration invalid: 6 errors" <<<"$output" || diag "$output"
}

@test "check: a syntax error is named by file:line" {
    f="$T/syntax error.conf"
    printf 'max = 3;\n\nallow = [ "10.0.0.1" \n' > "$f"
    check_fails "$f:4" --config "$f"
}

@test "check: a missing file is named" {
    check_fails "$T/none.conf: cannot read the file" --config "$T/none.conf"
    IPLIMIT_CONFIG=$T/other.conf check_fails "$T/other.conf: cannot read the file"
}

@test "check: --config wins over IPLIMIT_CONFIG" {
    printf 'max = 11;\n' > "$T/a.conf"
    IPLIMIT_CONFIG=$T/none.conf run "$IPLIMIT" check --config "$T/a.conf"
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    grep -qxF "max: 11 connections per key" <<<"$output" || diag "$output"
}
