#!/usr/bin/env bats
# New-connection rate per key (IPLIMIT_RATE, IPLIMIT_BURST, IPLIMIT_RATES):
# a token bucket per key in the shared table. A client in a reconnect loop
# (ilchurn) is served at least the burst and at most
#   burst + rate * elapsed + 1
# where elapsed is what ilchurn measured around its whole loop: every
# admission lies inside that window, and the bucket can have refilled for
# no longer. That bound is the contract, not a timing goal. Exact counts
# with reconciliation off.
load helpers

setup() {
    il_setup
    export IPLIMIT_RECONCILE_INTERVAL=0
    [ -x "$IL_BIN/ilchurn" ] || { echo "missing $IL_BIN/ilchurn: make test-programs" >&2; return 1; }
}

# churn NAME SRC N: N connections in a loop from SRC; sets OK and ELAPSED.
churn() {
    local name=$1 src=$2 n=$3 dst=127.0.0.1
    [[ $src == *:* ]] && dst=::1
    "$IL_BIN/ilchurn" -s "$src" -d "$dst" -p "$PORT" -n "$n" >"$T/$name.out" 2>"$T/$name.err" ||
        diag "ilchurn $name failed: $(cat "$T/$name.err")" || return 1
    local line
    line=$(cat "$T/$name.out")
    [[ $line =~ ^ok=([0-9]+)\ fail=[0-9]+\ elapsed_ms=([0-9]+)$ ]] ||
        diag "ilchurn $name: '$line'" || return 1
    OK=${BASH_REMATCH[1]} ELAPSED=${BASH_REMATCH[2]}
}

# expect_rate_bound NAME BURST RATE: the last churn was served at least BURST
# and at most BURST + RATE * ELAPSED / 1000 + 1 times.
expect_rate_bound() {
    local max=$(($2 + ($3 * ELAPSED) / 1000 + 1))
    [ "$OK" -ge "$2" ] && [ "$OK" -le "$max" ] ||
        diag "$1: served $OK in $ELAPSED ms; expected $2..$max (burst $2, rate $3/s)"
}

# idle_for_refill BURST RATE: waits until BURST/RATE seconds (and one kernel
# tick) have passed since the last churn ended: by the contract, the bucket
# is full again then. This waits for a time the contract names, measured on
# the clock; it is not a guess that something else has happened.
idle_for_refill() {
    local need_ms=$(($1 * 1000 / $2 + 20)) start
    start=$(date +%s%N)
    while (( ($(date +%s%N) - start) / 1000000 < need_ms )); do
        sleep 0.05
    done
}

@test "rate 10/s burst 5: a churning source gets 5..5+10*elapsed+1, others are unaffected" {
    export IPLIMIT_RATE=10 IPLIMIT_BURST=5 IPLIMIT_ALLOW=127.0.0.9 IPLIMIT_LOG_INTERVAL=3600
    server_start evloop 127.0.0.1
    churn a 127.0.0.2 60
    expect_rate_bound a 5 10
    expect_log accept 127.0.0.2 "$OK"
    churn b 127.0.0.3 5
    [ "$OK" -eq 5 ] || diag "another source: $OK of 5 served"
    churn c 127.0.0.9 60
    [ "$OK" -eq 60 ] || diag "allowlisted source: $OK of 60 served"
    expect_log accept 127.0.0.9 60
    expect_err 1 "^iplimit\[[0-9]+\]: rejected 127\.0\.0\.2: rate 10/s exceeded \(burst 5\)$"
    expect_err 0 "rejected 127\.0\.0\.[39]|open, limit"
    server_alive
}

@test "rate 10/s burst 5: after burst/rate seconds idle the source has its burst again" {
    export IPLIMIT_RATE=10 IPLIMIT_BURST=5
    server_start evloop 127.0.0.1
    churn a 127.0.0.2 30
    expect_rate_bound a 5 10
    local first=$OK
    idle_for_refill 5 10
    churn b 127.0.0.2 30
    expect_rate_bound b 5 10
    expect_log accept 127.0.0.2 $((first + OK))
}

@test "the concurrency limit still holds beside the rate; refused connections spend no token" {
    export IPLIMIT_MAX=3 IPLIMIT_RATE=100 IPLIMIT_BURST=4
    server_start evloop 127.0.0.1
    client a 127.0.0.2 6 "ok=3 fail=3 reset=3"
    churn b 127.0.0.2 10
    [ "$OK" -eq 0 ] || diag "3 open at the limit, yet $OK more served"
    expect_err 1 "^iplimit\[[0-9]+\]: rejected 127\.0\.0\.2: 3 open, limit 3$"
    expect_err 0 "rate .* exceeded"
    client_release a
    wait_log close 127.0.0.2 3
    churn c 127.0.0.2 40
    expect_rate_bound c 4 100
    local served=$OK
    expect_log accept 127.0.0.2 $((3 + served))
    wait_log close 127.0.0.2 $((3 + served))
    # Connections refused by the rate were counted for a moment only: with
    # the bucket full again, the key has its 3 places.
    idle_for_refill 4 100
    client d 127.0.0.2 4 "ok=3 fail=1 reset=1"
}

@test "rate with action close and blocking workers (prefork -w 8): refused like over the limit" {
    export IPLIMIT_RATE=1 IPLIMIT_BURST=2 IPLIMIT_ACTION=close
    server_start prefork 127.0.0.1 -w 8
    churn a 127.0.0.2 10
    expect_rate_bound a 2 1
    local first=$OK start end
    start=$(date +%s%N)
    client_run b 127.0.0.2 3 -w 3000
    end=$(date +%s%N)
    # The bucket refills one a second meanwhile: at most 1 + seconds of b's
    # may be served; every one refused ends with a FIN, none with an RST.
    [[ $RESULT =~ ^ok=([0-9]+)\ fail=([0-9]+)\ reset=0\ eof=([0-9]+)\ timeout=0\ error=0$ ]] ||
        diag "client b: $RESULT"
    local ok=${BASH_REMATCH[1]} eof=${BASH_REMATCH[3]}
    local allowed=$(( (end - start) / 1000000000 + 1 ))
    [ $((ok + eof)) -eq 3 ] && [ "$ok" -le "$allowed" ] || diag "client b: $RESULT"
    [ "$eof" -ge 1 ] || [ "$allowed" -ge 3 ] || diag "client b: no FIN seen: $RESULT"
    expect_log accept 127.0.0.2 $((first + ok))
    expect_err 1 "rejected 127\.0\.0\.2: rate 1/s exceeded"
    server_alive
}

@test "prefork -w 8: the bucket is shared, the total over all workers obeys the bound" {
    export IPLIMIT_RATE=10 IPLIMIT_BURST=5
    server_start prefork 127.0.0.1 -w 8
    churn a 127.0.0.2 60
    expect_rate_bound a 5 10
    expect_log accept 127.0.0.2 "$OK"
    churn b 127.0.0.3 5
    [ "$OK" -eq 5 ] || diag "another source: $OK of 5 served"
}

@test "IPLIMIT_DRY_RUN=1: nothing refused, would-be refusals over the rate logged" {
    export IPLIMIT_RATE=10 IPLIMIT_BURST=5 IPLIMIT_DRY_RUN=1 IPLIMIT_LOG_INTERVAL=3600
    server_start evloop 127.0.0.1
    churn a 127.0.0.2 60
    [ "$OK" -eq 60 ] || diag "dry run: $OK of 60 served"
    expect_log accept 127.0.0.2 60
    expect_err 1 "^iplimit\[[0-9]+\]: would reject 127\.0\.0\.2: rate 10/s exceeded \(burst 5\) \(dry run\)$"
    expect_err 0 "^iplimit\[[0-9]+\]: rejected"
}

@test "IPLIMIT_RATES: per-network rates, longest prefix wins, 0 is none, allowlist exempt" {
    export IPLIMIT_RATES=127.0.0.0/8=10/5,127.0.0.3/32=0,127.0.0.4/32=5/2
    export IPLIMIT_ALLOW=127.0.0.9
    server_start evloop 127.0.0.1
    churn a 127.0.0.2 40
    expect_rate_bound a 5 10
    churn b 127.0.0.3 40
    [ "$OK" -eq 40 ] || diag "127.0.0.3=0: $OK of 40 served"
    churn c 127.0.0.4 40
    expect_rate_bound c 2 5
    churn d 127.0.0.9 40
    [ "$OK" -eq 40 ] || diag "allowlisted: $OK of 40 served"
    expect_err 1 "rejected 127\.0\.0\.4: rate 5/s exceeded \(burst 2\)$"
    expect_err 1 "rejected 127\.0\.0\.2: rate 10/s exceeded \(burst 5\)$"
}

@test "IPLIMIT_RATE with IPLIMIT_IPV4_PREFIX=24: the /24 shares one bucket" {
    export IPLIMIT_RATE=10 IPLIMIT_BURST=5 IPLIMIT_IPV4_PREFIX=24
    server_start evloop 127.0.0.1
    local total=0 start end
    start=$(date +%s%N)
    churn a 127.0.0.2 20
    total=$((total + OK))
    churn b 127.0.0.3 20
    total=$((total + OK))
    end=$(date +%s%N)
    OK=$total ELAPSED=$(( (end - start) / 1000000 ))
    expect_rate_bound a+b 5 10
    expect_err 1 "rejected 127\.0\.0\.0/24: rate 10/s exceeded"
}

@test "IPv6: the key ::/64 is rate limited" {
    export IPLIMIT_RATE=10 IPLIMIT_BURST=5
    server_start evloop ::1
    churn a ::1 40
    expect_rate_bound a 5 10
    expect_err 1 "rejected ::/64: rate 10/s exceeded"
}
