#!/usr/bin/env bats
# Rejection log lines: one per key, then at most one summary per interval.
load helpers

@test "log: 20 rejections from one source give 1 rejection line" {
    export IPLIMIT_MAX=3
    server_start evloop 127.0.0.1
    client a 127.0.0.2 23 "ok=3 fail=20"
    expect_err 1 "^iplimit\[$SRV_PID\]: rejected 127\.0\.0\.2: 3 open, limit 3$"
    expect_err 1 "rejected"
    expect_err 0 "more rejected"
}

@test "log: rate limiting is per key, and shared by prefork workers" {
    export IPLIMIT_MAX=3
    server_start prefork 127.0.0.1 -w 8
    client a 127.0.0.2 13 "ok=3 fail=10"
    client b 127.0.0.3 13 "ok=3 fail=10"
    expect_err 1 "^iplimit\[[0-9]+\]: rejected 127\.0\.0\.2: 3 open, limit 3$"
    expect_err 1 "^iplimit\[[0-9]+\]: rejected 127\.0\.0\.3: 3 open, limit 3$"
    expect_err 2 "rejected"
}

# Every rejection is accounted for exactly once: in a "rejected" line or in
# the N of a summary.
@test "log: after the interval a summary counts the suppressed rejections" {
    export IPLIMIT_MAX=3 IPLIMIT_LOG_INTERVAL=1
    server_start evloop 127.0.0.1
    client a 127.0.0.2 23 "ok=3 fail=20"
    expect_err 1 "rejected 127\.0\.0\.2"
    sleep 2.1   # the interval itself must pass
    client b 127.0.0.2 1 "ok=0 fail=1"
    local n sum=0 lines
    wait_until 5 grep -qE "^iplimit\[$SRV_PID\]: 127\.0\.0\.2: [0-9]+ more rejected in the last [0-9]+ s$" "$SERR" ||
        diag "no summary line"
    for n in $(sed -nE 's/.*: 127\.0\.0\.2: ([0-9]+) more rejected in the last [0-9]+ s$/\1/p' "$SERR"); do
        sum=$((sum + n))
    done
    lines=$(err_count "rejected 127\.0\.0\.2: 3 open, limit 3$")
    [ $((sum + lines)) -eq 21 ] || diag "summaries $sum + lines $lines != 21 rejections"
}

@test "log: IPLIMIT_LOG=none logs nothing and still rejects" {
    export IPLIMIT_MAX=3 IPLIMIT_LOG=none
    server_start evloop 127.0.0.1
    client a 127.0.0.2 6 "ok=3 fail=3"
    [ ! -s "$SERR" ] || diag "stderr not empty"
}
