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

# service_as USER VAR=VALUE...: starts sleep with the library preloaded, as
# USER (root: the test's own user), with the IPLIMIT_* given; sets SVC.
service_as() {
    local user=$1
    shift
    if [ "$user" = root ]; then
        env LD_PRELOAD="$IL_LIB" "$@" sleep 600 2>"$SERR" &
    else
        setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups \
            env LD_PRELOAD="$IL_LIB" "$@" sleep 600 2>"$SERR" &
    fi
    SVC=$!
    IL_PIDS+=("$SVC")
    wait_until 10 grep -q libiplimit "/proc/$SVC/maps" || diag "service $SVC did not start"
}

@test "check --pid: the service's own variables and file, not this shell's" {
    printf 'max = 4;\nallow = [ "127.0.0.3" ];\n' >"$T/svc.conf"
    service_as root IPLIMIT_CONFIG="$T/svc.conf" IPLIMIT_MAX=7 IPLIMIT_LOG=stderr
    export IPLIMIT_MAX=abc IPLIMIT_CONFIG=/nonexistent
    run "$IPLIMIT" check --pid "$SVC"
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    for want in "file: $T/svc.conf" "max: 7 connections per key" "allow: 127.0.0.3" \
                "configuration OK"; do
        grep -qxF "$want" <<<"$output" || diag "missing line: $want in: $output"
    done
    local started
    started=$(sed -n 's/^service [0-9]*: uid [0-9]*, gid [0-9]*; started with: //p' <<<"$output")
    [ "$(tr ' ' '\n' <<<"$started" | sort | tr '\n' ' ')" = "IPLIMIT_CONFIG IPLIMIT_LOG IPLIMIT_MAX " ] ||
        diag "started with: '$started'"
}

@test "check --pid as root: a file the service's user cannot read is an error" {
    [ "$(id -u)" -eq 0 ] || skip "needs root"
    id nobody >/dev/null 2>&1 || skip "no user nobody"
    mkdir -m 0755 "$T/etc"
    printf 'max = 4;\n' >"$T/etc/secret.conf"
    chmod 0600 "$T/etc/secret.conf"
    chmod o+x "$T" "$(dirname "$T")" "$(dirname "$(dirname "$T")")" 2>/dev/null || true
    service_as nobody IPLIMIT_CONFIG="$T/etc/secret.conf" IPLIMIT_LOG=stderr
    # as root, without --pid, the file reads fine: check says whose rights it used
    run "$IPLIMIT" check --config "$T/etc/secret.conf"
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    grep -q "warning: checked as root; $T/etc/secret.conf is not readable by every user" \
        <<<"$output" || diag "$output"
    run "$IPLIMIT" check --pid "$SVC"
    [ "$status" -eq 1 ] || diag "exit $status: $output"
    grep -qF "iplimit: error: $T/etc/secret.conf: cannot read the file: Permission denied" \
        <<<"$output" || diag "$output"
    grep -qF "the service's user (uid $(id -u nobody)) cannot read $T/etc/secret.conf" \
        <<<"$output" || diag "$output"
    # and the service itself found the same
    grep -q "config error: $T/etc/secret.conf: cannot read the file: Permission denied" "$SERR" ||
        diag "service stderr: $(cat "$SERR")"
}

@test "check warns about rules that match nothing they seem to" {
    export IPLIMIT_ALLOW=::/0,127.0.0.0/8 IPLIMIT_LIMITS=127.0.0.0/24=3,10.0.0.0/8=2,10.0.0.0/8=3
    run "$IPLIMIT" check
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    grep -qF "warning: allow ::/0 matches IPv6 peers only, never an IPv4 one" <<<"$output" ||
        diag "$output"
    grep -qF "warning: limits 127.0.0.0/24 never applies: every peer in it is allowlisted by 127.0.0.0/8" \
        <<<"$output" || diag "$output"
    grep -qF "warning: limits 10.0.0.0/8 is listed twice" <<<"$output" || diag "$output"
    [ "$(grep -c warning: <<<"$output")" -eq 3 ] || diag "$output"
}
