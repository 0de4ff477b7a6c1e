#!/usr/bin/env bats
# Crash safety (issue 5 item 2): processes killed with SIGKILL at any point
# never wedge the others, and their connections stop counting within one
# reconciliation interval.
load helpers

@test "crash: a prefork worker killed with SIGKILL: others serve, its connections stop counting" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1 IPLIMIT_BLOCKING=wait
    server_start prefork 127.0.0.1 -w 8
    client a 127.0.0.2 3 "ok=3 fail=0"
    [ "$(held_by_peer 127.0.0.2)" -eq 3 ] || diag "expected 3 held connections"
    victim=$(holder_of 127.0.0.2)
    [ -n "$victim" ] && [ "$victim" != "$SRV_PID" ] || diag "no worker holds a connection"
    kill -KILL "$victim"
    wait_until 5 dead "$victim" || diag "worker $victim did not die"
    # Other workers keep serving other sources at once.
    client b 127.0.0.3 3 "ok=3 fail=0"
    # The killed worker's connection is gone from the kernel: within about
    # one interval an accept reconciles and 127.0.0.2 gets its place back.
    within 10 admitted_again 127.0.0.2 || diag "127.0.0.2 never admitted again"
    # Exactly one place came back: 2 held by client a, so 1 of 3 more.
    client c 127.0.0.2 3 "ok=1 fail=2"
    expect_err 1 "reconcile: 127\.0\.0\.2: 1 connections the kernel no longer has"
    expect_err 0 "reconcile: 127\.0\.0\.3"
    server_alive
}

# The same on a dual-stack [::] listener: the connections are AF_INET6
# sockets (IPv4-mapped peers), which reconciliation must look up too.
@test "crash: on a dual-stack [::] listener (AF_INET6 sockets), a killed worker's connections stop counting" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1 IPLIMIT_BLOCKING=wait
    server_start prefork :: -w 8
    client a 127.0.0.2 3 "ok=3 fail=0"
    victim=$(holder_of '[::ffff:127.0.0.2]')
    [ -n "$victim" ] && [ "$victim" != "$SRV_PID" ] || diag "no worker holds a connection"
    kill -KILL "$victim"
    wait_until 5 dead "$victim" || diag "worker $victim did not die"
    within 10 admitted_again 127.0.0.2 || diag "127.0.0.2 never admitted again"
    client c 127.0.0.2 3 "ok=1 fail=2"
    expect_err 1 "reconcile: 127\.0\.0\.2: 1 connections the kernel no longer has"
    server_alive
}

@test "crash: workers stopped and killed mid-flood never wedge the others" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1 IPLIMIT_BLOCKING=wait IPLIMIT_LOG_INTERVAL=1
    server_start prefork 127.0.0.1 -w 16
    client a 127.0.0.4 3 "ok=3 fail=0"
    # A flood from 127.0.0.5 while workers are stopped and killed at random
    # instants (wherever they are: in accept, counting, closing, reconciling).
    client_start flood 127.0.0.5 300 -t 300
    local round w workers
    for round in 1 2 3; do
        workers=($(il_children "$SRV_PID"))
        w=${workers[RANDOM % ${#workers[@]}]}
        kill -STOP "$w"
        sleep 0.2
        kill -KILL "$w"
        wait_until 5 dead "$w" || diag "worker $w did not die"
    done
    client_wait flood
    client_release flood
    # Survivors keep serving, and counts heal: 127.0.0.4 still holds its 3
    # (if its holders survived) and a new source gets exactly its limit.
    client b 127.0.0.6 4 "ok=3 fail=1"
    local held
    held=$(held_by_peer 127.0.0.4)
    within 10 admitted_again 127.0.0.5 || diag "127.0.0.5 never admitted again"
    client_release a
    # Every count of 127.0.0.4 must heal, not just one place: the holders
    # killed with their workers are freed by reconciliation, the others
    # when their workers see EOF (the probe above is closed the same way).
    within 10 healed_to 127.0.0.4 0 || diag "127.0.0.4 still counted"
    client c 127.0.0.4 4 "ok=3 fail=1"
    [ "$held" -le 3 ] || diag "127.0.0.4 held $held"
    server_alive
}
