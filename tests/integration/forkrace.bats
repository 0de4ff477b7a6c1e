#!/usr/bin/env bats
# forkrace (tests/servers/forkrace.c): counts stay exact while fds change
# in one thread and another forks (the fork lock, src/lib/forklock.h), and
# through daemon(), forks the fork wrapper cannot see, fclose and closefrom.
# Reconciliation is off: a leaked or lost count stays visible. Counts are
# read with iplimit stat.
load helpers

setup() {
    il_setup
    export IPLIMIT_RECONCILE_INTERVAL=0 IPLIMIT_MAX=3
}

stat_json() {
    "$IL_ROOT/build/iplimit" stat --pid "${1:-$SRV_PID}" --json
}

# open_of KEY [PID]: KEY's open count in the service of PID (the server).
open_of() {
    stat_json "${2:-}" | jq -r --arg k "$1" '[.services[0].keys[] | select(.key == $k) | .open] | add // 0'
}

open_total() {
    stat_json "${1:-}" | jq -r '.services[0].open_connections'
}

open_is() {
    [ "$(open_of "$1" "${3:-}")" = "$2" ]
}

# expect_open KEY N [PID]: KEY's open count is N now (no waiting).
expect_open() {
    local got
    got=$(open_of "$1" "${3:-}")
    [ "$got" = "$2" ] || diag "expected $2 open for $1, got $got"
}

closes_match() {
    [ "$(log_count close "$1")" -eq "$(log_count accept "$1")" ]
}

# The threaded server forks FORKS times in one thread while its own client
# thread connects CHURN times from 127.0.0.3 and other threads accept and
# close; clients from 127.0.0.2 come and go meanwhile, each held to 3 of 6.
# When the forks and the churn are done and every connection is closed,
# every count is exactly 0 and the limit still holds exactly.
fork_race() {
    local forks=$1 churn=$2 i
    shift 2
    # sanitizer runtimes make each fork several times slower
    if [ -n "${IL_SANITIZER:-}" ]; then
        forks=$((forks / 5)) churn=$((churn / 5))
    fi
    export IPLIMIT_LIMITS=127.0.0.3/32=1000000
    server_start forkrace 127.0.0.1 -F "$forks" -C "$churn" "$@"
    for i in 1 2 3 4; do
        client "a$i" 127.0.0.2 6 "ok=3 fail=3" || return 1
        client_release "a$i"
        wait_log close 127.0.0.2 $((i * 3)) || return 1
        # a child forked before the close may still hold a copy: it counts
        wait_until 10 open_is 127.0.0.2 0 || diag "127.0.0.2 still counted after round $i" || return 1
    done
    wait_until 100 grep -q "^forks=$forks$" "$SOUT" || diag "the forks did not finish" || return 1
    wait_until 100 grep -q "^churn=$churn " "$SOUT" || diag "the churn did not finish" || return 1
    wait_until 20 closes_match 127.0.0.3 || diag "the server did not close every connection" || return 1
    grep "^churn=" "$SOUT" >&2
    echo "accepted from 127.0.0.3: $(log_count accept 127.0.0.3)" >&2
    # nothing is open and no child is left: exactly zero, at once
    [ "$(open_total)" = 0 ] || { stat_json | jq -c '.services[0].keys' >&2; diag "counts left: $(open_total)"; }
    client b 127.0.0.2 6 "ok=3 fail=3"
    expect_open 127.0.0.2 3
    server_alive
}

@test "forkrace: a thread forking beside threads accepting and closing leaves no count" {
    fork_race 1000 2000
}

@test "forkrace: forked children that keep the fds for a while, fds dup'ed at accept" {
    fork_race 600 1500 -k 500 -m dup
}

@test "forkrace: forks racing fclose of fdopen'ed connections" {
    fork_race 600 1500 -m fclose
}

@test "forkrace: forks racing close_range of connections" {
    fork_race 600 1500 -m range
}

# daemon() after connections exist: glibc's daemon() would _exit the parent
# inside libc, leaving the parent's references counted for ever.
daemon_case() {
    server_start forkrace 127.0.0.1 -P "$@"
    client_start a 127.0.0.2 2
    client_wait a
    expect_client a "ok=2 fail=0" || return 1
    expect_open 127.0.0.2 2 || return 1
    kill -USR1 "$SRV_PID"
    wait_until 10 grep -q '^daemon ' "$ALOG" || diag "no daemon line" || return 1
    DPID=$(sed -n 's/^daemon \([0-9]*\)$/\1/p' "$ALOG")
    IL_PIDS+=("$DPID")
    wait_until 10 dead "$SRV_PID" || diag "daemon()'s parent did not exit" || return 1
    # the daemon's copies count: 2 held, one more place
    expect_open 127.0.0.2 2 "$DPID" || return 1
    client b 127.0.0.2 2 "ok=1 fail=1" || return 1
    expect_open 127.0.0.2 3 "$DPID" || return 1
    client_release a
    client_release b
    wait_log close 127.0.0.2 3 || return 1
    expect_open 127.0.0.2 0 "$DPID" || return 1
    [ "$(open_total "$DPID")" = 0 ] || diag "counts left: $(open_total "$DPID")"
    SRV_PID=$DPID
    client c 127.0.0.2 6 "ok=3 fail=3"
    expect_open 127.0.0.2 3 "$DPID"
}

@test "forkrace: daemon() with connections held: the daemon's copies count, the parent's do not" {
    daemon_case
}

@test "forkrace: daemon(1, 0) (stdio to /dev/null) with connections held" {
    daemon_case -n
}

@test "forkrace: a fork the wrapper cannot see (libc's fork) gives the child counted copies" {
    server_start forkrace 127.0.0.1 -P
    client a 127.0.0.2 3 "ok=3 fail=0"
    kill -USR2 "$SRV_PID"
    wait_until 10 grep -q '^hidden ' "$ALOG" || diag "no hidden fork" || return 1
    HPID=$(sed -n 's/^hidden \([0-9]*\)$/\1/p' "$ALOG")
    IL_PIDS+=("$HPID")
    client_release a
    wait_log close 127.0.0.2 3
    # the server closed its copies; the child's still count
    expect_open 127.0.0.2 3
    client b 127.0.0.2 1 "ok=0 fail=1"
    kill -TERM "$HPID"
    wait_until 10 dead "$HPID" || diag "the forked child did not exit"
    expect_open 127.0.0.2 0
    client c 127.0.0.2 6 "ok=3 fail=3"
}

@test "forkrace: fclose of an fdopen'ed counted connection releases it" {
    server_start forkrace 127.0.0.1 -P -m fclose
    client a 127.0.0.2 6 "ok=3 fail=3"
    client_release a
    wait_log close 127.0.0.2 3
    expect_open 127.0.0.2 0
    client b 127.0.0.2 3 "ok=3 fail=0"
}

@test "forkrace: closefrom over counted connections releases them" {
    server_start forkrace 127.0.0.1 -P
    client a 127.0.0.2 6 "ok=3 fail=3"
    expect_open 127.0.0.2 3
    kill -HUP "$SRV_PID"
    wait_until 10 grep -q '^closefrom done' "$ALOG" || diag "no closefrom"
    expect_open 127.0.0.2 0
    client b 127.0.0.2 3 "ok=3 fail=0"
    server_alive
}
