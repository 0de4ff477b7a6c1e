#!/usr/bin/env bats
# Paths the common servers never drive (issue 16): a truncated peer buffer,
# errno across a successful accept, MPTCP listeners, and half-closed
# connections across reconciliation runs. Server: build/tests/probe.
load ../cli/helpers
load paths_helpers

limit_and_release() {
    local src=$1
    client a "$src" 6 "ok=3 fail=3"
    wait_open "$src" 3
    client_release a
    wait_open "$src" 0
    client b "$src" 4 "ok=3 fail=1"
}

@test "a peer buffer shorter than an IPv4 peer: keyed by the real peer" {
    export IPLIMIT_MAX=3
    server_start probe 127.0.0.1 -L 6
    limit_and_release 127.0.0.2
    client c 127.0.0.3 2 "ok=2 fail=0"
    wait_open 127.0.0.3 2
}

@test "a sockaddr_in buffer on a dual-stack [::] listener: IPv4 peers keyed as IPv4" {
    export IPLIMIT_MAX=3
    server_start probe '[::]' -L 16
    DST=127.0.0.1 limit_and_release 127.0.0.2
    DST=::1 client c ::1 4 "ok=3 fail=1"
    wait_open ::/64 3
}

@test "errno is the caller's after a successful accept, also when reconciliation runs inside it" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_THREAD=0 IPLIMIT_RECONCILE_INTERVAL=1
    server_start probe 127.0.0.1 -E
    # The first accept runs the first reconciliation inline; keep connecting
    # (bounded) until a second run has happened inside an accept too.
    local i runs=0
    for i in $(seq 1 40); do
        client "c$i" 127.0.0.2 1 "ok=1 fail=0" || return 1
        client_release "c$i"
        stat_json
        runs=$(jqs '.reconcile.runs')
        [ "$runs" -ge 2 ] && break
        sleep 0.2
    done
    [ "$runs" -ge 2 ] || diag "only $runs inline reconciliation runs"
    expect_err 0 "errno changed"
    expect_err 0 "accept error"
}

@test "an MPTCP listener is policed like TCP" {
    export IPLIMIT_MAX=3
    server_start probe 127.0.0.1 -M || {
        grep -q "IPPROTO_MPTCP" "$SERR" && skip "no MPTCP in this kernel (net.mptcp.enabled=0?)"
        return 1
    }
    limit_and_release 127.0.0.2
    client c 127.0.0.3 2 "ok=2 fail=0"
}

@test "half-closed connections (CLOSE_WAIT) held across two reconciliation runs keep their counts" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1
    server_start probe 127.0.0.1 -k
    client a 127.0.0.2 3 "ok=3 fail=0"
    client_release a
    wait_log eof 127.0.0.2 3
    stat_json
    local runs0
    runs0=$(jqs '.reconcile.runs')
    wait_until 15 stat_is '.reconcile.runs >= '"$((runs0 + 2))" true ||
        diag "reconciliation did not run twice"
    expect_key 127.0.0.2 open 3
    client b 127.0.0.2 1 "ok=0 fail=1"
    # The server closes its half-closed fds: the counts go, at once.
    kill -USR1 "$SRV_PID"
    wait_log close 127.0.0.2 3
    wait_open 127.0.0.2 0
    client c 127.0.0.2 3 "ok=3 fail=0"
}
