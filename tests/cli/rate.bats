#!/usr/bin/env bats
# The new-connection rate in the iplimit command: check prints it and names
# its errors, reload changes it for new accepts at once, stat counts
# rejections by reason (text, JSON, Prometheus). Reconciliation off: exact
# counts.
load helpers

setup() {
    il_setup
    [ -x "$IPLIMIT" ] || { echo "missing $IPLIMIT: run make" >&2; return 1; }
    command -v jq >/dev/null || { echo "missing jq (tests/deps.d/cli.txt)" >&2; return 1; }
    export IPLIMIT_RECONCILE_INTERVAL=0
}

# churn SRC N: N connections in a loop from SRC (tests/tools/ilchurn.c);
# sets OK and ELAPSED (ms).
churn() {
    local line
    line=$("$IL_BIN/ilchurn" -s "$1" -d 127.0.0.1 -p "$PORT" -n "$2") || diag "ilchurn failed" ||
        return 1
    [[ $line =~ ^ok=([0-9]+)\ fail=[0-9]+\ elapsed_ms=([0-9]+)$ ]] || diag "ilchurn: $line" ||
        return 1
    OK=${BASH_REMATCH[1]} ELAPSED=${BASH_REMATCH[2]}
}

# expect_rate_bound LOW BURST RATE: LOW <= OK <= BURST + RATE * ELAPSED / 1000 + 1.
expect_rate_bound() {
    local max=$(($2 + ($3 * ELAPSED) / 1000 + 1))
    [ "$OK" -ge "$1" ] && [ "$OK" -le "$max" ] ||
        diag "served $OK in $ELAPSED ms; expected $1..$max (burst $2, rate $3/s)"
}

@test "check: rate, burst and per-network rates in the summary" {
    export IPLIMIT_RATE=10 IPLIMIT_BURST=5 IPLIMIT_RATES=10.0.0.0/8=50/100,10.1.0.0/16=0
    run "$IPLIMIT" check
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    for want in "rate: 10 new connections per second per key, burst 5" \
                "rates: 10.1.0.0/16=none, 10.0.0.0/8=50/100" "configuration OK"; do
        grep -qxF "$want" <<<"$output" || diag "missing line: $want"
    done
    unset IPLIMIT_RATE IPLIMIT_BURST IPLIMIT_RATES
    run "$IPLIMIT" check
    grep -qxF "rate: none" <<<"$output" && grep -qxF "rates: none" <<<"$output" || diag "$output"
    IPLIMIT_RATE=7 run "$IPLIMIT" check
    grep -qxF "rate: 7 new connections per second per key, burst 7" <<<"$output" ||
        diag "$output"
}

@test "check: each bad rate setting is named, with its exact message" {
    local cases=(
        "IPLIMIT_RATE=fast|IPLIMIT_RATE: \"fast\" is not a whole number from 0 to 65535"
        "IPLIMIT_BURST=5|IPLIMIT_BURST: burst 5 without a rate: set IPLIMIT_RATE (rate in the file) too"
        "IPLIMIT_RATES=10.0.0.0/8|IPLIMIT_RATES: \"10.0.0.0/8\" is not CIDR=RATE or CIDR=RATE/BURST"
        "IPLIMIT_RATES=10.0.0.0/8=5/0|IPLIMIT_RATES: \"10.0.0.0/8=5/0\": burst is not a whole number from 1 to 65535"
    )
    local c
    for c in "${cases[@]}"; do
        run env "${c%%|*}" "$IPLIMIT" check
        [ "$status" -eq 1 ] || diag "${c%%|*}: exit $status: $output"
        grep -qxF "iplimit: error: ${c#*|}" <<<"$output" || diag "${c%%|*}: $output"
    done
    printf 'rates = ( { network = "10.0.0.0/8"; rate = 50; burst = 100; } );\nrate = "x";\n' \
        >"$T/r.conf"
    run "$IPLIMIT" check --config "$T/r.conf"
    [ "$status" -eq 1 ] || diag "exit $status: $output"
    grep -qxF "iplimit: error: $T/r.conf:2: rate: \"x\" is not a whole number from 0 to 65535" \
        <<<"$output" || diag "$output"
}

@test "reload changes the rate for new accepts at once" {
    export IPLIMIT_RATE=10 IPLIMIT_BURST=5
    server_start evloop 127.0.0.1
    churn 127.0.0.2 40
    expect_rate_bound 5 5 10
    local first=$OK
    unset IPLIMIT_RATE IPLIMIT_BURST
    # The service started with the rate: reload keeps it unless told not to.
    run "$IPLIMIT" reload --pid "$SRV_PID" --unset IPLIMIT_RATE --unset IPLIMIT_BURST
    [ "$status" -eq 0 ] || diag "reload exited $status: $output"
    grep -qxF "  rate: 10 -> 0" <<<"$output" || diag "reload does not show the rate: $output"
    grep -qxF "  burst: 5 -> 0" <<<"$output" || diag "reload does not show the burst: $output"
    expect_stat .policy.rate 0
    churn 127.0.0.2 40
    [ "$OK" -eq 40 ] || diag "rate removed: $OK of 40 served"
    IPLIMIT_RATE=2 IPLIMIT_BURST=2 run "$IPLIMIT" reload --pid "$SRV_PID"
    [ "$status" -eq 0 ] || diag "reload exited $status: $output"
    expect_stat .policy.rate 2
    expect_stat .policy.burst 2
    churn 127.0.0.3 20
    expect_rate_bound 2 2 2
    churn 127.0.0.2 20
    expect_rate_bound 0 2 2
    expect_log accept 127.0.0.2 $((first + 40 + OK))
}

@test "stat: rejections by reason in text, JSON and Prometheus" {
    export IPLIMIT_MAX=2 IPLIMIT_RATE=10 IPLIMIT_BURST=3 IPLIMIT_LOG_INTERVAL=3600
    server_start evloop 127.0.0.1
    client a 127.0.0.2 3 "ok=2 fail=1"
    churn 127.0.0.3 30
    expect_rate_bound 3 3 10
    local rate_refused=$((30 - OK))
    [ "$rate_refused" -ge 1 ] || skip "the churn was too slow to exceed 10/s (${ELAPSED} ms)"
    stat_json
    [ "$(jqs .stats.rejected)" -eq $((1 + rate_refused)) ] || diag "$STAT"
    [ "$(jqs .stats.rejected_limit)" -eq 1 ] || diag "$STAT"
    [ "$(jqs .stats.rejected_rate)" -eq "$rate_refused" ] || diag "$STAT"
    [ "$(jqs .stats.dry_run_rejected_rate)" -eq 0 ] || diag "$STAT"
    expect_key 127.0.0.2 last_reason limit
    expect_key 127.0.0.3 last_reason rate
    expect_key 127.0.0.3 rejected "$rate_refused"
    run "$IPLIMIT" stat --pid "$SRV_PID"
    grep -qF "rejected by reason: 1 over the limit, $rate_refused over the rate" <<<"$output" ||
        diag "$output"
    grep -Eq "^  127\.0\.0\.3 +0 +2 +$rate_refused +rate$" <<<"$output" || diag "$output"
    run "$IPLIMIT" stat --pid "$SRV_PID" --prometheus
    local p='service="evloop"'
    for want in "iplimit_rejected_by_reason_total{$p,reason=\"limit\"} 1" \
                "iplimit_rejected_by_reason_total{$p,reason=\"rate\"} $rate_refused" \
                "iplimit_dry_run_rejected_by_reason_total{$p,reason=\"rate\"} 0" \
                "# TYPE iplimit_rejected_by_reason_total counter"; do
        grep -qxF "$want" <<<"$output" || diag "missing: $want"
    done
}

@test "stat: a dry run counts would-be rejections over the rate" {
    export IPLIMIT_RATE=10 IPLIMIT_BURST=5 IPLIMIT_DRY_RUN=1
    server_start evloop 127.0.0.1
    churn 127.0.0.2 40
    [ "$OK" -eq 40 ] || diag "dry run: $OK of 40 served"
    stat_json
    local would=$(jqs .stats.dry_run_rejected_rate)
    # Every connection beyond what the bucket allowed in the time taken.
    local max_ok=$((5 + (10 * ELAPSED) / 1000 + 1))
    [ "$would" -ge $((40 - max_ok)) ] && [ "$would" -le 35 ] || diag "would-be $would: $STAT"
    [ "$(jqs .stats.rejected)" -eq 0 ] || diag "$STAT"
    [ "$(jqs .stats.dry_run_rejected)" -eq "$would" ] || diag "$STAT"
    expect_key 127.0.0.2 last_reason rate
}
