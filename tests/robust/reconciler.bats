#!/usr/bin/env bats
# The reconciler thread (src/lib/reconciler.h): one per service, in one of
# its processes, invisible to the host's signals, taken over when its
# process dies, and absent when reconcile_thread is off.
load helpers
load syslog_helpers

# owner: the pid whose thread reconciles, from iplimit stat (0: none).
owner() {
    "$IL_ROOT/build/iplimit" stat --pid "$SRV_PID" --json | jq -r '.services[0].reconcile.owner'
}

owner_is_not() {
    local o
    o=$(owner)
    [ "$o" != 0 ] && [ "$o" != "$1" ] && alive "$o"
}

# rec_threads PID...: "pid/tid" of every thread named iplimit-rec in them.
rec_threads() {
    local pid task
    for pid in "$@"; do
        for task in /proc/"$pid"/task/*; do
            [ "$(cat "$task/comm" 2>/dev/null)" = iplimit-rec ] && echo "$pid/${task##*/}"
        done
    done
    return 0
}

service_pids() {
    echo "$SRV_PID"
    descendants "$SRV_PID"
}

runs() {
    "$IL_ROOT/build/iplimit" stat --pid "$SRV_PID" --json | jq -r '.services[0].reconcile.runs'
}

runs_above() {
    [ "$(runs)" -gt "$1" ]
}

@test "reconciler: one thread in the whole prefork service, every host signal blocked in it" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1
    server_start prefork 127.0.0.1 -w 4
    client a 127.0.0.2 2 "ok=2 fail=0"
    wait_until 5 owner_is_not 0 || diag "no owner after an accept"
    local threads
    threads=($(rec_threads $(service_pids)))
    [ "${#threads[@]}" -eq 1 ] || diag "reconciler threads: ${threads[*]:-none}"
    [ "${threads[0]%/*}" = "$(owner)" ] || diag "thread in ${threads[0]%/*}, owner $(owner)"
    # SIGHUP(1) SIGINT(2) SIGUSR1(10) SIGTERM(15) SIGCHLD(17) all blocked.
    local mask
    mask=$(awk '/^SigBlk:/ {print $2}' "/proc/${threads[0]/\//\/task\/}/status")
    local sig
    for sig in 1 2 10 15 17; do
        (( (0x$mask >> (sig - 1)) & 1 )) || diag "signal $sig not blocked: SigBlk $mask"
    done
    # It keeps running with no accept at all.
    local before
    before=$(runs)
    wait_until 5 runs_above $((before + 1)) || diag "runs stayed at $(runs) (from $before)"
    server_alive
}

@test "reconciler: the owner killed with SIGKILL: another process takes over and heals its counts" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1 IPLIMIT_BLOCKING=wait
    server_start prefork 127.0.0.1 -w 6
    client a 127.0.0.2 3 "ok=3 fail=0"
    wait_until 5 owner_is_not 0 || diag "no owner after an accept"
    local victim
    victim=$(owner)
    [ "$victim" != "$SRV_PID" ] || diag "the parent, which never accepts, owns the thread"
    kill -KILL "$victim"
    wait_until 5 dead "$victim" || diag "owner $victim did not die"
    # The next accepts past the grace time take the thread over.
    within 15 healed_and_owned "$victim" || diag "owner $(owner), 127.0.0.2 counted $(stat_open_of 127.0.0.2), held $(held_by_peer 127.0.0.2)"
    [ "$(rec_threads $(service_pids) | wc -l)" -eq 1 ] || diag "threads: $(rec_threads $(service_pids))"
    server_alive
}

# A process that has just had a burst of accepts reads the clock at one
# accept in 16 (reconciler.h, IL_TICK_SKIP): it still takes a killed owner
# over, at most 15 of its accepts later. Four blocking workers, three of
# them serving 127.0.0.2's connections (the owner among them): the burst of
# refusals and the accepts after the kill all go to the fourth.
@test "reconciler: a worker that has just had a burst of accepts still takes over a killed owner" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1 IPLIMIT_BLOCKING=wait
    server_start prefork 127.0.0.1 -w 4
    client a 127.0.0.2 3 "ok=3 fail=0"
    wait_log accept 127.0.0.2 3
    wait_until 5 owner_is_not 0 || diag "no owner after an accept"
    local victim out
    victim=$(owner)
    out=$("$IL_BIN/ilclient" -s 127.0.0.2 -d 127.0.0.1 -p "$PORT" -n 40 -t 1000 </dev/null 2>/dev/null)
    [[ $out == "ok=0 fail=40"* ]] || diag "the burst: $out"
    kill -KILL "$victim"
    wait_until 5 dead "$victim" || diag "owner $victim did not die"
    within 40 healed_and_owned "$victim" || diag "owner $(owner), 127.0.0.2 counted $(stat_open_of 127.0.0.2), held $(held_by_peer 127.0.0.2)"
    server_alive
}

stat_open_of() {
    "$IL_ROOT/build/iplimit" stat --pid "$SRV_PID" --json |
        jq -r --arg k "$1" '[.services[0].keys[] | select(.key == $k) | .open] | add // 0'
}

# healed_and_owned VICTIM: after one more accept, a live process other than
# VICTIM owns the thread and 127.0.0.2's count is what the kernel holds.
healed_and_owned() {
    admitted_again 127.0.0.99
    owner_is_not "$1" && counted_is 127.0.0.2 "$(held_by_peer 127.0.0.2)"
}

@test "reconciler: reconcile_thread off: no thread anywhere, the accepts reconcile" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1 IPLIMIT_RECONCILE_THREAD=0
    server_start prefork 127.0.0.1 -w 4
    client a 127.0.0.2 2 "ok=2 fail=0"
    local before
    before=$(runs)
    [ "$before" -ge 1 ] || diag "no inline run at the first accept"
    sleep 1.1 # an interval passes: the next accept finds a run due
    admitted_again 127.0.0.3 || diag "127.0.0.3 refused"
    [ "$(runs)" -eq $((before + 1)) ] || diag "runs $(runs), expected $((before + 1))"
    [ "$(owner)" -eq 0 ] || diag "owner $(owner)"
    [ -z "$(rec_threads $(service_pids))" ] || diag "threads: $(rec_threads $(service_pids))"
    server_alive
}

@test "reconciler: a reload turns the thread off and on again, and off with the interval 0" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1
    server_start prefork 127.0.0.1 -w 2
    client a 127.0.0.2 1 "ok=1 fail=0"
    wait_until 5 owner_is_not 0 || diag "no owner after an accept"
    IPLIMIT_RECONCILE_THREAD=0 "$IL_ROOT/build/iplimit" reload --pid "$SRV_PID" >/dev/null ||
        diag "reload failed"
    wait_until 5 no_threads || diag "threads left: $(rec_threads $(service_pids))"
    [ "$(owner)" -eq 0 ] || diag "owner $(owner) after reload"
    IPLIMIT_RECONCILE_THREAD=1 "$IL_ROOT/build/iplimit" reload --pid "$SRV_PID" >/dev/null ||
        diag "reload failed"
    # The first accept that finds a run due starts a thread again.
    within 5 owned_after_accept || diag "no owner after the second reload"
    [ "$(rec_threads $(service_pids) | wc -l)" -eq 1 ] || diag "threads: $(rec_threads $(service_pids))"
    # No reconciliation at all: no thread either.
    IPLIMIT_RECONCILE_INTERVAL=0 "$IL_ROOT/build/iplimit" reload --pid "$SRV_PID" >/dev/null ||
        diag "reload failed"
    wait_until 5 no_threads || diag "threads left with interval 0: $(rec_threads $(service_pids))"
    [ "$(owner)" -eq 0 ] || diag "owner $(owner) with interval 0"
    server_alive
}

no_threads() {
    [ -z "$(rec_threads $(service_pids))" ]
}

owned_after_accept() {
    admitted_again 127.0.0.3 && owner_is_not 0
}

@test "reconciler: the thread's lines and the host threads' reach /dev/log the same way" {
    [ "$(id -u)" -eq 0 ] || skip "needs root for a private /dev"
    command -v python3 >/dev/null || skip "no python3"
    syslog_listener "$T/log.sock" "$T/syslog.txt"
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1 IPLIMIT_BLOCKING=wait IPLIMIT_LOG=syslog
    # A private /dev whose log is the listener: every line of the library,
    # from the host's threads or its own, is one datagram there.
    private_dev_server "$T/log.sock" prefork -w 4
    client a 127.0.0.2 4 "ok=3 fail=1"
    # The rejection, logged by a host thread (daemon.warning, identifier
    # iplimit, no time: the receiver adds it).
    wait_until 5 syslog_has '^<28>iplimit\[[0-9]+\]: rejected 127\.0\.0\.2: 3 open, limit 3$' ||
        diag "no rejection line: $(cat "$T/syslog.txt")"
    local victim
    victim=$(holder_of 127.0.0.2)
    kill -KILL "$victim"
    wait_until 5 dead "$victim" || diag "worker $victim did not die"
    within 10 admitted_again 127.0.0.2 || diag "127.0.0.2 never admitted again"
    # The correction, logged by the reconciler thread the same way.
    wait_until 5 syslog_has '^<28>iplimit\[[0-9]+\]: reconcile: 127\.0\.0\.2: 1 connections the kernel no longer has' ||
        diag "no reconcile line: $(cat "$T/syslog.txt")"
    expect_err 0 "iplimit"
    # Those two lines, and nothing else.
    [ "$(grep -c . "$T/syslog.txt")" -eq 2 ] || diag "lines: $(cat "$T/syslog.txt")"
}
