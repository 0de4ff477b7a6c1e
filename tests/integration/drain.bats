#!/usr/bin/env bats
# After a rejection, accept() goes on to the next queued connection, so a
# refused source never costs the server a failed accept while a good
# connection waits; at most 64 refusals in one call, then -1/EAGAIN.
# errsleep is the sleep-on-error model (PostgreSQL's postmaster): it logs
# each accept() return ("accept IP" or "error ERRNO"), then "queue N" (the
# listener's accept queue just after the call), and "sleep MS" before
# pausing after a failed accept. With -H 3 -g FILE it holds 3 connections,
# then waits for FILE while the test queues more. The assertions are on
# the order of these lines, never on a clock.
load helpers

# drain_setup FLOOD [ERRSLEEP OPTIONS...]: 3 held from 127.0.0.2, FLOOD
# more from 127.0.0.2 queued (over the limit), then one from the
# allowlisted 127.0.0.9 queued behind them; the gate opens; waits until the
# allowlisted one is accepted. Sets AFTER to the log from the gate on.
drain_setup() {
    local flood=$1
    shift
    export IPLIMIT_MAX=3 IPLIMIT_ALLOW=127.0.0.9/32 IPLIMIT_RECONCILE_INTERVAL=0
    server_start errsleep 127.0.0.1 -H 3 -g "$T/go" "$@"
    client_start a 127.0.0.2 3 -c -g
    wait_log accept 127.0.0.2 3
    client_start b 127.0.0.2 "$flood" -c -g -t 5000
    wait_until 20 grep -q "^connected=$flood\$" "$T/b.out" || diag "flood did not connect"
    client_start c 127.0.0.9 1 -c -g -t 5000
    wait_until 10 grep -q '^connected=1$' "$T/c.out" || diag "c did not connect"
    touch "$T/go"
    wait_log accept 127.0.0.9 1
    AFTER=$(sed -n '/^gate open$/,$p' "$ALOG")
}

# expect_after LINE...: the log from the gate on is exactly these lines.
expect_after() {
    local want
    want=$(printf '%s\n' "$@")
    [ "$AFTER" = "$want" ] || diag "log after the gate:
$AFTER
expected:
$want"
}

@test "drain: blocking listener, 3 held + 20 queued over the limit: the allowlisted one is accepted before any pause" {
    drain_setup 20
    # One accept call refused the 20 and returned the allowlisted one.
    expect_after "gate open" "queue 21" "accept 127.0.0.9" "queue 0"
    expect_log accept 127.0.0.2 3
    echo go >"$T/b.in"
    client_wait b
    expect_client b "ok=0 fail=20"
    expect_err 0 "peer mismatch"
}

@test "drain: blocking listener, 130 queued over the limit: each call returns after at most 64 refusals" {
    drain_setup 130
    expect_after "gate open" "queue 131" "error 11" "queue 67" "sleep 100" \
        "error 11" "queue 3" "sleep 100" "accept 127.0.0.9" "queue 0"
}

@test "drain: non-blocking listener, 130 queued over the limit: each call returns after at most 64 refusals" {
    drain_setup 130 -N
    expect_after "gate open" "queue 131" "error 11" "queue 67" "sleep 100" \
        "error 11" "queue 3" "sleep 100" "accept 127.0.0.9" "queue 0"
}

@test "drain: blocking listener, refusals only: EAGAIN once the queue is empty" {
    drain_setup 5
    expect_after "gate open" "queue 6" "accept 127.0.0.9" "queue 0"
    # The server is back in a blocking accept on an empty queue; one more
    # over-limit connection is refused and the call returns at once.
    client_start d 127.0.0.2 1 -c -g -t 5000
    wait_until 10 grep -q '^sleep 100$' "$ALOG" || diag "accept did not return"
    AFTER=$(sed -n '/^accept 127.0.0.9$/,$p' "$ALOG")
    expect_after "accept 127.0.0.9" "queue 0" "error 11" "queue 0" "sleep 100"
    server_alive
}

@test "drain: IPLIMIT_BLOCKING=wait keeps blocking until an admitted connection" {
    export IPLIMIT_BLOCKING=wait
    drain_setup 130
    expect_after "gate open" "queue 131" "accept 127.0.0.9" "queue 0"
}
