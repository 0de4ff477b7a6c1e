#!/usr/bin/env bats
# Exhaustion (issue 5 item 6): the server at its fd limit, a full table, a
# shared table that cannot be mapped. Each time the host keeps serving and
# the library fails open with one clear line naming the cause
# (docs/failure-model.md). Bad configuration: tests/integration/config.bats.
load helpers
load load

# server_start_limited "ULIMIT OPTIONS" KIND ADDR [ARGS...]: server_start,
# with the server (and only it) under `ulimit ULIMIT OPTIONS`.
server_start_limited() {
    SERVER_ULIMIT=$1 server_start "${@:2}"
}

# hold NAME SRC NSRC PER "EXPECT" [OPTIONS...]: PER connections from each of
# NSRC sources from SRC on, held until load_release NAME; the result line
# must start with EXPECT.
hold() {
    local name=$1 src=$2 nsrc=$3 per=$4 want=$5 got
    shift 5
    load_start "$name" hold -s "$src" -S "$nsrc" -n "$per" "$@"
    got=$(load_line "$name" '^ok=') || return 1
    [[ "$got " == "$want "* ]] || diag "$name: expected '$want', got '$got'"
}

# low_fds PID: its open fds numbered below 64 (fds inherited from the test
# runner may sit above the limit and take no room below it).
low_fds() {
    local f n=0
    for f in /proc/$1/fd/*; do
        [ "${f##*/}" -lt 64 ] 2>/dev/null && n=$((n + 1))
    done
    echo "$n"
}

low_fds_are() {
    [ "$(low_fds "$SRV_PID")" -eq "$1" ]
}

stat_json() {
    "$IL_ROOT/build/iplimit" stat --pid "$SRV_PID" --json | jq -r ".services[0].$1"
}

runs_above() {
    [ "$(stat_json reconcile.runs)" -gt "$1" ]
}

# --- EMFILE

@test "exhaust: EMFILE: accept fails as without iplimit, the server survives, counts stay exact" {
    export IPLIMIT_MAX=30 IPLIMIT_RECONCILE_INTERVAL=1
    server_start_limited "-n 64" evloop 127.0.0.1 -e
    local base free
    base=$(server_fds)
    free=$((64 - $(low_fds "$SRV_PID")))
    [ "$free" -gt 40 ] || diag "only $free fds free under ulimit -n 64"
    # 127.0.0.2 takes its 30; 127.0.0.3 then all but one of the free fds.
    hold a 127.0.0.2 1 30 "ok=30 fail=0"
    hold b 127.0.0.3 1 $((free - 31)) "ok=$((free - 31)) fail=0"
    wait_until 10 low_fds_are 63 || diag "server fds below 64: $(low_fds "$SRV_PID"), expected 63"
    # The reconciler thread runs every second: once the next accept takes
    # the last fd, it cannot open its netlink socket.
    # 10 more from 127.0.0.3: 1 fits, the others wait in the accept queue
    # (the application's accept gets EMFILE) and time out.
    hold c 127.0.0.3 1 10 "ok=1 fail=9 reset=0 eof=0 timeout=9 error=0" -t 500
    expect_log accept 127.0.0.3 $((free - 30))
    [ "$(err_count '^accept error\(24\)$')" -ge 1 ] || diag "the server never saw EMFILE"
    # The reconciler thread has an fd table of its own (failure-model.md):
    # the host's EMFILE never stops its runs.
    local emfile="reconcile: cannot check the counts against the kernel's sockets"
    local runs
    runs=$(stat_json reconcile.runs)
    wait_until 5 runs_above "$runs" || diag "no reconciliation run after the host hit EMFILE"
    expect_err 0 "$emfile"
    [ "$(stat_open 127.0.0.2)" -eq 30 ] && [ "$(stat_open 127.0.0.3)" -eq $((free - 30)) ] ||
        diag "open: $(stat_open 127.0.0.2) and $(stat_open 127.0.0.3)"
    server_alive
    # Everyone goes away; the 9 left in the queue are accepted (and closed)
    # at the next connection's edge.
    load_release c
    load_release b
    load_release a
    wait_log close 127.0.0.2 30
    client again 127.0.0.2 31 "ok=30 fail=1 reset=1"
    wait_log close 127.0.0.3 $((free - 21))
    client_release again
    wait_log close 127.0.0.2 60
    client again3 127.0.0.3 31 "ok=30 fail=1 reset=1"
    client_release again3
    wait_until 10 fds_are "$base" || diag "server fds $(server_fds), baseline $base"
    [ "$(stat_json stats.untracked)" -eq 0 ] || diag "untracked connections"
    # Besides these 2, at most the hourly "not counted" notice of
    # reconciliation (seen now and then under load).
    expect_err 2 "^iplimit(.*)(rejected|cannot check)"
    [ "$(err_count '^iplimit')" -le 3 ] && [ "$(err_count '^iplimit.*: reconcile: [0-9]+ open connections .* not counted')" -le 1 ] ||
        diag "unexpected iplimit lines"
    expect_err 2 "^iplimit\[$SRV_PID\]: rejected 127\.0\.0\.[23]: 30 open, limit 30$"
    server_alive
}

# --- full table (IPLIMIT_CAPACITY=64: 128 connection slots, 128 key slots)
# Reconciliation is off here: its hourly "not counted (table full, ...)"
# notice is about something else.
FULL='^iplimit\[[0-9]+\]: (key|connection) table full'

@test "exhaust: connection table full: all served, one line, counted sources keep their limit" {
    export IPLIMIT_MAX=40 IPLIMIT_CAPACITY=64 IPLIMIT_RECONCILE_INTERVAL=0
    server_start evloop 127.0.0.1 -e
    # 4 sources x 40 in order: 128 are counted, the last 32 of 127.0.0.5 not.
    hold a 127.0.0.2 4 40 "ok=160 fail=0"
    expect_log accept 127.0.0.5 40
    [ "$(stat_json stats.untracked)" -eq 32 ] || diag "untracked $(stat_json stats.untracked)"
    [ "$(stat_open 127.0.0.5)" -eq 8 ] || diag "127.0.0.5 open $(stat_open 127.0.0.5)"
    expect_err 1 "^iplimit\[$SRV_PID\]: connection table full \(capacity 64\): 127\.0\.0\.5 passed uncounted; raise IPLIMIT_CAPACITY$"
    # A counted source is still held to its limit...
    client b 127.0.0.2 2 "ok=0 fail=2 reset=2"
    # ...one under it still passes, uncounted, with no new line (one a minute).
    client c 127.0.0.5 2 "ok=2 fail=0"
    [ "$(stat_json stats.untracked)" -eq 34 ] || diag "untracked $(stat_json stats.untracked)"
    expect_err 1 "$FULL"
    # All close: the counts are exact again.
    load_release a
    client_release c
    wait_log close 127.0.0.5 42
    wait_log close 127.0.0.2 40
    client d 127.0.0.2 41 "ok=40 fail=1 reset=1"
    [ "$(stat_json open_connections)" -eq 40 ] || diag "open $(stat_json open_connections)"
    expect_err 1 "$FULL"
    server_alive
}

@test "exhaust: key table full: 200 sources all served, one line, counted sources keep their limit" {
    export IPLIMIT_MAX=1 IPLIMIT_CAPACITY=64 IPLIMIT_RECONCILE_INTERVAL=0
    server_start evloop 127.0.0.1 -e
    client s 127.0.0.2 1 "ok=1 fail=0"
    # 200 more sources, one connection each: the 128 key slots (64-slot
    # probe windows) cannot hold them all; the rest pass uncounted.
    hold a 127.0.2.1 200 1 "ok=200 fail=0"
    local keys untracked
    keys=$(stat_json keys_total) untracked=$(stat_json stats.untracked)
    [ "$untracked" -ge 1 ] && [ "$keys" -le 128 ] && [ $((keys - 1 + untracked)) -eq 200 ] ||
        diag "$keys keys in the table, $untracked untracked"
    expect_err 1 "^iplimit\[$SRV_PID\]: key table full \(capacity 64\): 127\.0\.2\.[0-9]+ passed uncounted; raise IPLIMIT_CAPACITY$"
    expect_err 1 "$FULL"
    # The source counted first keeps its limit.
    client s2 127.0.0.2 2 "ok=0 fail=2 reset=2"
    expect_err 1 "^iplimit\[$SRV_PID\]: rejected 127\.0\.0\.2: 1 open, limit 1$"
    load_release a
    client_release s
    wait_log close 127.0.0.2 1
    client s3 127.0.0.2 2 "ok=1 fail=1 reset=1"
    expect_err 1 "$FULL"
    server_alive
}

# Both tables fill in one process: one line for each cause.
@test "exhaust: key table then connection table full: one line per cause" {
    export IPLIMIT_MAX=1 IPLIMIT_CAPACITY=64 IPLIMIT_RECONCILE_INTERVAL=0 IPLIMIT_LIMITS=127.0.0.2/32=200
    server_start evloop 127.0.0.1 -e
    client s 127.0.0.2 1 "ok=1 fail=0"
    hold a 127.0.2.1 200 1 "ok=200 fail=0"
    expect_err 1 "^iplimit\[$SRV_PID\]: key table full"
    local keys untracked
    keys=$(stat_json keys_total) untracked=$(stat_json stats.untracked)
    # 127.0.0.2 (counted, limit 200) opens 150 more: the connection slots
    # (128, of which $keys are taken) run out on the way.
    hold b 127.0.0.2 1 150 "ok=150 fail=0"
    [ "$(stat_open 127.0.0.2)" -eq $((128 - keys + 1)) ] &&
        [ "$(stat_json stats.untracked)" -eq $((untracked + 150 - (128 - keys))) ] ||
        diag "127.0.0.2 open $(stat_open 127.0.0.2), untracked $(stat_json stats.untracked), $keys keys"
    expect_err 1 "^iplimit\[$SRV_PID\]: key table full"
    expect_err 1 "^iplimit\[$SRV_PID\]: connection table full \(capacity 64\): 127\.0\.0\.2 passed uncounted; raise IPLIMIT_CAPACITY$"
    server_alive
}

# --- the shared table cannot be mapped

@test "exhaust: the shared table cannot be mapped (ulimit -v): one line, everything served" {
    # 16777216 connections need a segment of gigabytes; 128 MiB of address
    # space is plenty for the server and the library otherwise (next test).
    export IPLIMIT_MAX=1 IPLIMIT_CAPACITY=16777216
    server_start_limited "-v 131072" prefork 127.0.0.1 -w 4
    client a 127.0.0.2 4 "ok=4 fail=0"
    expect_log accept 127.0.0.2 4
    expect_err 1 "^iplimit\[$SRV_PID\]: cannot map the shared table \(16777216 connections\): Cannot allocate memory; limiter disabled$"
    expect_err 1 "^iplimit"
    client_release a
    wait_log close 127.0.0.2 4
    client b 127.0.0.2 4 "ok=4 fail=0"
    server_alive
}

@test "exhaust: control: under the same ulimit -v the default table maps and limits" {
    export IPLIMIT_MAX=1
    server_start_limited "-v 131072" prefork 127.0.0.1 -w 4
    client a 127.0.0.2 4 "ok=1 fail=3 reset=3"
    expect_err 0 "cannot map"
    server_alive
}
