#!/usr/bin/env bats
# Reconciliation matches a counted connection to the kernel's socket by its
# identity (src/lib/connid.h: peer address and port, local port), taken at
# accept with no system call. A connection whose holder is SIGKILLed is
# freed; live ones from the same peer address, on the same port, and
# half-closed ones (CLOSE_WAIT), are not. IPv4 and IPv6.
load helpers

runs() {
    "$IL_ROOT/build/iplimit" stat --pid "$SRV_PID" --json | jq -r '.services[0].reconcile.runs'
}

runs_at_least() {
    [ "$(runs)" -ge "$1" ]
}

# held_from SRC: server-side sockets on $PORT whose peer is SRC that a
# process holds (ss wants IPv6 addresses in brackets).
held_from() {
    local dst=$1
    [[ $dst == *:* ]] && dst="[$dst]"
    ss -Htn state established "( sport = :$PORT and dst $dst )" 2>/dev/null | wc -l
}

holder_from() {
    local dst=$1
    [[ $dst == *:* ]] && dst="[$dst]"
    ss -Htnp state established "( sport = :$PORT and dst $dst )" 2>/dev/null |
        grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2
}

# killed_one_healed SRC KEY: three connections from SRC held by three
# prefork workers (one peer address, one local port, three peer ports);
# the holder of one is SIGKILLed; its count, and only its count, goes.
killed_one_healed() {
    local src=$1 key=$2
    client_start a "$src" 3
    client_wait a && expect_client a "ok=3 fail=0" || return 1
    wait_until 10 counted_is "$key" 3 || diag "$key not counted 3"
    [ "$(held_from "$src")" -eq 3 ] || diag "expected 3 held connections from $src"
    local victim
    victim=$(holder_from "$src")
    [ -n "$victim" ] && [ "$victim" != "$SRV_PID" ] || diag "no worker holds a connection"
    kill -KILL "$victim"
    wait_until 5 dead "$victim" || diag "worker $victim did not die"
    within 15 healed_to "$key" 2 || diag "$key: the killed worker's connection still counted"
    # The two live ones stay counted across two more runs.
    local r
    r=$(runs)
    within 15 runs_at_least $((r + 2)) || diag "reconciliation did not run twice more"
    counted_is "$key" 2 || diag "$key: a live connection was freed"
    expect_err 1 "reconcile: .*: 1 connections the kernel no longer has"
    client b "$src" 2 "ok=1 fail=1"
    server_alive
}

@test "identity: IPv4, a SIGKILLed worker's connection is freed, two live ones from the same address kept" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1 IPLIMIT_BLOCKING=wait
    server_start prefork 127.0.0.1 -w 6
    killed_one_healed 127.0.0.2 127.0.0.2
}

@test "identity: IPv6, a SIGKILLed worker's connection is freed, two live ones from the same address kept" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1 IPLIMIT_BLOCKING=wait
    # Dual-stack: healed_to's trigger connection comes over IPv4.
    server_start prefork '[::]' -w 6
    killed_one_healed ::1 ::/64
}

# closewait_kept SRC KEY: three connections half-closed by the client (the
# server keeps its fds: CLOSE_WAIT) stay counted across two runs.
closewait_kept() {
    local src=$1 key=$2
    client a "$src" 3 "ok=3 fail=0" || return 1
    client_release a
    wait_until 10 log_is eof "$3" 3 || diag "the server did not see 3 EOFs"
    local r
    r=$(runs)
    within 15 runs_at_least $((r + 2)) || diag "reconciliation did not run twice"
    counted_is "$key" 3 || diag "$key: a half-closed connection was freed"
    client b "$src" 1 "ok=0 fail=1"
    kill -USR1 "$SRV_PID"
    within 10 counted_is "$key" 0 || diag "$key: counts not released at close"
}

@test "identity: IPv4 half-closed (CLOSE_WAIT) connections stay counted" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1
    server_start probe 127.0.0.1 -k
    closewait_kept 127.0.0.2 127.0.0.2 127.0.0.2
}

@test "identity: IPv6 half-closed (CLOSE_WAIT) connections stay counted" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1
    server_start probe ::1 -k
    closewait_kept ::1 ::/64 ::1
}

@test "identity: proxied connections (key = the PROXY client) are matched by the balancer's 4-tuple and stay counted" {
    # The key of each connection is the client its header names; its
    # identity is the TCP peer's (the balancer's address and port). A slot
    # that took the key's address for its identity would find no socket and
    # be freed by the first runs.
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1 IPLIMIT_ALLOW=127.0.0.9 IPLIMIT_PROXY_FROM=127.0.0.9
    server_start evloop 127.0.0.1
    held_start bal "$IL_BIN/proxyclient" -s 127.0.0.9 -d 127.0.0.1 -p "$PORT" -n 3 -c 127.0.0.2 -v 2
    wait_until 30 grep -q '^ok=' "$T/bal.out" || diag "the balancer gave no result"
    grep -q '^ok=3 ' "$T/bal.out" || diag "balancer: $(cat "$T/bal.out")"
    within 10 counted_is 127.0.0.2 3 || diag "127.0.0.2 not counted 3"
    local r
    r=$(runs)
    within 15 runs_at_least $((r + 2)) || diag "reconciliation did not run twice"
    counted_is 127.0.0.2 3 || diag "127.0.0.2: a live proxied connection was freed"
    expect_err 0 "connections the kernel no longer has"
    client_release bal
    within 10 counted_is 127.0.0.2 0 || diag "127.0.0.2: counts not released at close"
}
