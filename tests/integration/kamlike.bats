#!/usr/bin/env bats
# kamlike: Kamailio's tcp main: blocking listener in epoll, one accept() per
# wake-up, connections handed to reader processes by SCM_RIGHTS.
load helpers
SERVER=(kamlike -r 2)

@test "kamlike: 3 of 6 connections from one source, the app sees only 3" {
    case_limit
    expect_err 0 "accept error"
    expect_err 0 "peer mismatch|flags lost"
}
@test "kamlike: an allowlisted source gets all 10" { case_allow; }
@test "kamlike: counts return to zero after the client closes" { case_release; }
@test "kamlike: a second source is not affected by the first" { case_sources; }

# Each PING round hands the connection to a reader that closes its copy.
@test "kamlike: readers closing their received copies never release the count" {
    export IPLIMIT_MAX=3
    server_start kamlike 127.0.0.1 -r 2
    client a 127.0.0.2 3 "ok=3 fail=0" -r 4
    wait_log release 127.0.0.2 12
    client b 127.0.0.2 1 "ok=0 fail=1"
    client c 127.0.0.2 2 "ok=0 fail=2" -r 2
    client d 127.0.0.3 3 "ok=3 fail=0" -r 3
    expect_log accept 127.0.0.2 3
    expect_log close 127.0.0.2 0
    client_release a
    wait_log close 127.0.0.2 3
    client e 127.0.0.2 4 "ok=3 fail=1"
    expect_err 0 "accept error"
    expect_err 0 "peer mismatch|flags lost"
}

# Over-limit connections queued in the backlog while tcp main is stopped:
# with one accept() per wake-up on a blocking listener, each rejection must
# come back as EAGAIN (silent) and never block, and the connection queued
# behind them must still be served.
@test "kamlike: blocking listener, default eagain: queued rejections never block tcp main" {
    export IPLIMIT_MAX=3
    server_start kamlike 127.0.0.1 -r 2
    client a 127.0.0.2 3 "ok=3 fail=0"
    kill -STOP "$SRV_PID"
    client_start b 127.0.0.2 3 -c -t 5000
    wait_until 10 grep -q '^connected=3$' "$T/b.out" || diag "b did not connect"
    client_start c 127.0.0.3 2 -c -t 5000
    wait_until 10 grep -q '^connected=2$' "$T/c.out" || diag "c did not connect"
    kill -CONT "$SRV_PID"
    client_wait b
    client_wait c
    expect_client b "ok=0 fail=3"
    expect_client c "ok=2 fail=0"
    expect_log accept 127.0.0.2 3
    expect_err 0 "accept error"
    expect_err 0 "peer mismatch|flags lost"
}

# tcp main has a connection to serve (c, gated until then) when a rejection
# happens: with eagain, the rejection must not leave tcp main blocked in
# accept(), or c would never get its answer.
freeze_case() {
    export IPLIMIT_MAX=3
    server_start kamlike 127.0.0.1 -r 2
    client a 127.0.0.2 3 "ok=3 fail=0"
    client_start c 127.0.0.3 1 -c -g -t 3000
    wait_until 10 grep -q '^connected=1$' "$T/c.out" || diag "c did not connect"
    wait_log accept 127.0.0.3 1
    client b 127.0.0.2 1 "ok=0 fail=1"
    echo go >"$T/c.in"
    client_wait c
}

@test "kamlike: a rejection never blocks tcp main (default eagain)" {
    freeze_case
    expect_client c "ok=1 fail=0"
    expect_err 0 "accept error"
    expect_err 0 "peer mismatch|flags lost"
}

# The reason eagain is the default: wait really does block tcp main.
@test "kamlike: IPLIMIT_BLOCKING=wait blocks tcp main until the next admitted connection" {
    export IPLIMIT_BLOCKING=wait
    freeze_case
    expect_client c "ok=0 fail=1 reset=0 eof=0 timeout=1"
    client d 127.0.0.4 1 "ok=1 fail=0"
}

@test "kamlike: racing clients get exactly the limit in total" { case_parallel; }
