#!/usr/bin/env bats
# What accept() on a BLOCKING listener returns after a rejection.
# eagain (default): the next connection already queued, else -1/EAGAIN at
# once, never blocking (drain.bats: connections queued behind refusals).
# wait: the library keeps accepting until it can return an admitted one.
# The servers log every failed accept as "accept error(ERRNO)" (kamlike is
# silent on EAGAIN, like Kamailio).
load helpers

blocking_case() {
    local mode=$1 kind=$2
    shift 2
    export IPLIMIT_MAX=3
    [ "$mode" = default ] || export IPLIMIT_BLOCKING=$mode
    server_start "$kind" 127.0.0.1 "$@"
    client a 127.0.0.2 6 "ok=3 fail=3"
    client b 127.0.0.3 2 "ok=2 fail=0"
    expect_log accept 127.0.0.2 3
    expect_log accept 127.0.0.3 2
}

@test "blocking: kamlike, IPLIMIT_BLOCKING unset: no accept error, never blocked" {
    blocking_case default kamlike -r 2
    expect_err 0 "accept error"
    expect_err 0 "peer mismatch|flags lost"
}

@test "blocking: kamlike, IPLIMIT_BLOCKING=eagain: no accept error, never blocked" {
    blocking_case eagain kamlike -r 2
    expect_err 0 "accept error"
    expect_err 0 "peer mismatch|flags lost"
}

# (No kamlike case with wait: one accept per wake-up on a blocking listener
# would then block tcp main until the next admitted connection: by design.)

# refused_one_by_one: 3 admitted from 127.0.0.2, then 3 more, one at a
# time, each refused before the next connects: nothing is queued behind a
# refusal, so each costs the server exactly one -1/EAGAIN.
refused_one_by_one() {
    local i
    client a 127.0.0.2 3 "ok=3 fail=0"
    for i in 1 2 3; do
        client "r$i" 127.0.0.2 1 "ok=0 fail=1"
    done
    wait_until 10 err_is 3 "^accept error\(11\)$" || true
    expect_err 3 "^accept error\(11\)$"
    expect_err 3 "accept error"
    client b 127.0.0.3 2 "ok=2 fail=0"
    expect_log accept 127.0.0.2 3
    expect_log accept 127.0.0.3 2
}

@test "blocking: prefork, IPLIMIT_BLOCKING=eagain: a rejection with nothing queued behind is one EAGAIN" {
    export IPLIMIT_MAX=3 IPLIMIT_BLOCKING=eagain
    server_start prefork 127.0.0.1 -w 8
    refused_one_by_one
}

@test "blocking: prefork, IPLIMIT_BLOCKING=wait: workers never see EAGAIN" {
    blocking_case wait prefork -w 8
    expect_err 0 "accept error"
    expect_err 0 "peer mismatch|flags lost"
}

@test "blocking: threaded, IPLIMIT_BLOCKING=wait: threads never see EAGAIN" {
    blocking_case wait threaded -t 4
    expect_err 0 "accept error"
    expect_err 0 "peer mismatch|flags lost"
}

@test "blocking: forker, IPLIMIT_BLOCKING=wait: never sees EAGAIN" {
    blocking_case wait forker
    expect_err 0 "accept error"
    expect_err 0 "peer mismatch|flags lost"
}

@test "blocking: forker, IPLIMIT_BLOCKING unset: a rejection with nothing queued behind is one EAGAIN" {
    export IPLIMIT_MAX=3
    server_start forker 127.0.0.1
    refused_one_by_one
}

# Rejected connections queued ahead of an admitted one while the server is
# stopped: in wait mode a single blocking accept() skips them all.
@test "blocking: prefork wait mode returns the admitted connection queued behind rejected ones" {
    export IPLIMIT_MAX=3 IPLIMIT_BLOCKING=wait
    server_start prefork 127.0.0.1 -w 8
    client a 127.0.0.2 3 "ok=3 fail=0"
    local w kids
    kids=$(il_children "$SRV_PID")
    for w in $kids; do kill -STOP "$w"; done
    client_start b 127.0.0.2 3 -c -t 5000
    wait_until 10 grep -q '^connected=3$' "$T/b.out" || diag "b did not connect"
    client_start c 127.0.0.3 1 -c -t 5000
    wait_until 10 grep -q '^connected=1$' "$T/c.out" || diag "c did not connect"
    for w in $kids; do kill -CONT "$w"; done
    client_wait b
    client_wait c
    expect_client b "ok=0 fail=3"
    expect_client c "ok=1 fail=0"
    expect_err 0 "accept error"
    expect_err 0 "peer mismatch|flags lost"
}
