#!/usr/bin/env bats
# What iplimit stat says about the limiter itself: the policy in force, a
# limiter disabled by a configuration error, the reconciler's state, and
# no "uncounted" alarm for connections the policy does not police.
load helpers

runs() {
    "$IPLIMIT" stat --pid "$SRV_PID" --json 2>/dev/null | jq -r '.services[0].reconcile.runs'
}

runs_above() {
    [ "$(runs)" -gt "$1" ]
}

# two_runs_after_now: waits for two reconciliations to complete from now
# on, so that one of them started after the connections the test holds.
two_runs_after_now() {
    local before
    before=$(runs)
    wait_until 15 runs_above $((before + 1)) || diag "reconcile runs stayed at $(runs) (from $before)"
}

@test "stat: connections on a listener outside IPLIMIT_PORTS are not 'uncounted'" {
    # Port 1 is policed; the server listens on an ephemeral port, which is not.
    export IPLIMIT_MAX=2 IPLIMIT_PORTS=1 IPLIMIT_RECONCILE_INTERVAL=1
    server_start evloop 127.0.0.1
    client_run a 127.0.0.2 4 && expect_client a "ok=4 fail=0"
    wait_log accept 127.0.0.2 4
    two_runs_after_now
    stat_json
    [ "$(jqs .reconcile.last_uncounted)" = 0 ] || diag "uncounted: $(jqs .reconcile)"
    [ "$(jqs .reconcile.last_sockets)" = 0 ] || diag "sockets: $(jqs .reconcile)"
    [ "$(jqs .open_connections)" = 0 ] || diag "open: $(jqs .open_connections)"
    run "$IPLIMIT" stat --pid "$SRV_PID" --prometheus
    grep -qx 'iplimit_reconcile_uncounted{service="evloop"} 0' <<<"$output" ||
        diag "$(grep uncounted <<<"$output")"
}

@test "stat: a limiter disabled by a config error says so, with no 'uncounted' alarm" {
    export IPLIMIT_MAX=lots IPLIMIT_RECONCILE_INTERVAL=1
    server_start evloop 127.0.0.1
    client_run a 127.0.0.2 3 && expect_client a "ok=3 fail=0"
    wait_log accept 127.0.0.2 3
    two_runs_after_now
    stat_json
    [ "$(jqs .state)" = "disabled: config error" ] || diag "state: $(jqs .state)"
    [ "$(jqs .reconcile.last_uncounted)" = 0 ] || diag "uncounted: $(jqs .reconcile)"
    [[ "$(jqs .config_error)" == 'IPLIMIT_MAX: "lots" is not a whole number'* ]] ||
        diag "config_error: $(jqs .config_error)"
    run "$IPLIMIT" stat --pid "$SRV_PID" --prometheus
    grep -qE '^iplimit_config_error\{service="evloop",error="IPLIMIT_MAX: \\"lots\\" is not a whole number[^"]*"\} 1$' <<<"$output" ||
        diag "$(grep config_error <<<"$output")"
    grep -qx 'iplimit_reconcile_uncounted{service="evloop"} 0' <<<"$output" ||
        diag "$(grep uncounted <<<"$output")"
    run "$IPLIMIT" stat --pid "$SRV_PID"
    grep -q "LIMITER DISABLED by a configuration error: every connection passes through uncounted" <<<"$output" ||
        diag "$output"
    grep -qF 'startup config error: IPLIMIT_MAX: "lots"' <<<"$output" || diag "$output"
}

@test "stat: a healthy limiter has iplimit_config_error 0" {
    export IPLIMIT_MAX=3
    server_start evloop 127.0.0.1
    run "$IPLIMIT" stat --pid "$SRV_PID" --prometheus
    grep -qx 'iplimit_config_error{service="evloop"} 0' <<<"$output" || diag "$(grep config_error <<<"$output")"
    stat_json
    [ "$(jqs .state)" = enabled ] || diag "state: $(jqs .state)"
}

@test "stat shows the policy in force: allowlist, limits, ports, action, blocking, prefixes, log, dry run" {
    export IPLIMIT_MAX=7 IPLIMIT_ALLOW=127.0.0.9,::1 IPLIMIT_LIMITS=127.0.1.0/24=3,10.0.0.0/8=50 \
        IPLIMIT_PORTS=5060-5061,8080 IPLIMIT_ACTION=close IPLIMIT_BLOCKING=wait \
        IPLIMIT_IPV4_PREFIX=24 IPLIMIT_IPV6_PREFIX=56 IPLIMIT_LOG=none IPLIMIT_DRY_RUN=1
    server_start evloop 127.0.0.1
    stat_json
    local want
    want='{"enabled":true,"dry_run":true,"max":7,"ports":"5060-5061,8080","action":"close","blocking":"wait","ipv4_prefix":24,"ipv6_prefix":56,"log":"none","allow":["127.0.0.9","::1"],"limits":[{"cidr":"127.0.1.0/24","limit":3},{"cidr":"10.0.0.0/8","limit":50}]}'
    got=$(jqs '.policy | {enabled, dry_run, max, ports, action, blocking, ipv4_prefix, ipv6_prefix, log, allow: (.allow | sort), limits: (.limits | sort_by(-(.cidr | length)))}' | jq -c .)
    [ "$got" = "$(jq -c '.allow |= sort' <<<"$want")" ] || diag "policy: $got"
    run "$IPLIMIT" stat --pid "$SRV_PID"
    grep -qF "policy: enabled yes, dry_run yes, max 7, rate 0, burst 0, ports 5060-5061,8080, action close, blocking wait, ipv4_prefix 24, ipv6_prefix 56, log none," <<<"$output" ||
        diag "$output"
    grep -qE "^  allow: (127\.0\.0\.9, ::1|::1, 127\.0\.0\.9)$" <<<"$output" || diag "$output"
    grep -qE "^  limits: .*127\.0\.1\.0/24=3" <<<"$output" || diag "$output"
    grep -qE "^  limits: .*10\.0\.0\.0/8=50" <<<"$output" || diag "$output"
    run "$IPLIMIT" stat --pid "$SRV_PID" --prometheus
    grep -qE '^iplimit_policy_info\{service="evloop",enabled="1",dry_run="1",max="7",rate="0",burst="0",ports="5060-5061,8080",action="close",blocking="wait",ipv4_prefix="24",ipv6_prefix="56",log="none",[^}]*\} 1$' <<<"$output" ||
        diag "$(grep policy_info <<<"$output")"
    for want in 'iplimit_rule_limit{service="evloop",cidr="127.0.1.0/24",allow="0"} 3' \
                'iplimit_rule_limit{service="evloop",cidr="10.0.0.0/8",allow="0"} 50' \
                'iplimit_rule_limit{service="evloop",cidr="127.0.0.9",allow="1"} 0' \
                'iplimit_rule_limit{service="evloop",cidr="::1",allow="1"} 0'; do
        grep -qxF "$want" <<<"$output" || diag "missing: $want"
    done
}

@test "stat before the first accept: the reconciler is waiting for it, not 'inline'" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1
    server_start evloop 127.0.0.1
    stat_json
    [ "$(jqs .reconcile.state)" = "waiting for the first accept" ] || diag "$(jqs .reconcile)"
    run "$IPLIMIT" stat --pid "$SRV_PID"
    grep -q "reconcile: waiting for the first accept; 0 runs" <<<"$output" || diag "$output"
    ! grep -q "inline" <<<"$output" || diag "$output"
    client a 127.0.0.2 1 "ok=1 fail=0"
    wait_until 10 stat_is .reconcile.state thread || diag "$(jqs .reconcile)"
    [ "$(jqs .reconcile.owner)" = "$SRV_PID" ] || diag "$(jqs .reconcile)"
}

@test "stat: reconciliation turned off is 'off'" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=0
    server_start evloop 127.0.0.1
    client a 127.0.0.2 1 "ok=1 fail=0"
    stat_json
    [ "$(jqs .reconcile.state)" = off ] || diag "$(jqs .reconcile)"
}

@test "IPLIMIT_SERVICE: a name with control characters or spaces is a config error" {
    IPLIMIT_SERVICE=$'sip\e[31m' run "$IPLIMIT" check
    [ "$status" -eq 1 ] || diag "exit $status: $output"
    [[ $output == *'IPLIMIT_SERVICE: '*'is not a service name'* ]] || diag "$output"
    IPLIMIT_SERVICE='sip edge' run "$IPLIMIT" check
    [ "$status" -eq 1 ] || diag "exit $status: $output"
    IPLIMIT_SERVICE=sip-edge.1 run "$IPLIMIT" check
    [ "$status" -eq 0 ] || diag "exit $status: $output"
}
