#!/usr/bin/env bats
# handoff: a primary accepts and hands each connection to a worker process
# by SCM_RIGHTS, closing its own copy at once (issue 10). The connection
# counts while any process of the service holds an fd to it, and while the
# fd is in flight between them. Reconciliation is off in every test that
# checks counts, so nothing heals a wrong count behind the test's back.
load helpers
SERVER=(handoff -w 3)

setup() {
    il_setup
    export IPLIMIT_RECONCILE_INTERVAL=0
}

# gone PID: exited (the primary does not reap its workers: a zombie is gone).
gone() {
    local stat
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 0
    [[ ${stat##*) } == Z* ]]
}

# reconciled_is IP N: reconciliation's lines freed N connections of IP in all.
reconciled_is() {
    local n
    n=$(sed -n "s/.*reconcile: ${1//./\\.}: \([0-9]*\) connections the kernel no longer has.*/\1/p" \
        "$SERR" | awk '{s += $1} END {print s + 0}')
    [ "$n" -eq "$2" ]
}

@test "handoff: 3 of 6 connections from one source, the app sees only 3" {
    case_limit
    expect_log handed 127.0.0.2 3
    expect_err 0 "handoff failed|accept error|control truncated"
}
@test "handoff: an allowlisted source gets all 10" { case_allow; }
@test "handoff: counts return to zero exactly when the client closes" { case_release; }
@test "handoff: a second source is not affected by the first" { case_sources; }
@test "handoff: racing clients get exactly the limit in total" { case_parallel; }

# Several PING rounds: the workers hold the connections the primary closed.
@test "handoff: the workers' fds hold the count after the primary closed its copies" {
    export IPLIMIT_MAX=3
    server_start handoff 127.0.0.1 -w 3
    client a 127.0.0.2 3 "ok=3 fail=0" -r 3
    expect_log handed 127.0.0.2 3
    client b 127.0.0.2 2 "ok=0 fail=2 reset=2"
    client c 127.0.0.3 3 "ok=3 fail=0"
    client_release a
    wait_log close 127.0.0.2 3
    client d 127.0.0.2 4 "ok=3 fail=1"
    expect_log accept 127.0.0.2 6
    expect_err 0 "handoff failed|accept error"
}

# The workers receive nothing until the gate file exists: the primary has
# accepted, sent and closed all three, so the fds are only in flight. The
# count must not drop; once received, the workers' closes release it.
@test "handoff: fds in flight (sender closed, not yet received) stay counted" {
    export IPLIMIT_MAX=3
    server_start handoff 127.0.0.1 -w 2 -g "$T/gate"
    client_start a 127.0.0.2 3 -c -g
    wait_until 10 grep -q '^connected=3$' "$T/a.out" || diag "a did not connect"
    wait_log handed 127.0.0.2 3
    expect_log batch 1 0
    client b 127.0.0.2 1 "ok=0 fail=1 reset=1"
    touch "$T/gate"
    wait_log batch 1 3
    client c 127.0.0.2 1 "ok=0 fail=1 reset=1"
    echo go >"$T/a.in"
    client_wait a
    expect_client a "ok=3 fail=0"
    client_release a
    wait_log close 127.0.0.2 3
    client d 127.0.0.2 4 "ok=3 fail=1"
    expect_err 0 "handoff failed|accept error"
}

# batch_case [OPTIONS]: three counted fds in one SCM_RIGHTS message to one
# of two workers, received with MSG_CMSG_CLOEXEC.
batch_case() {
    export IPLIMIT_MAX=3
    server_start handoff 127.0.0.1 -w 2 -b 3 -C "$@"
    client a 127.0.0.2 6 "ok=3 fail=3 reset=3" -c
    expect_log batch 3 1
    expect_log cloexec-lost 127.0.0.2 0
    client b 127.0.0.2 1 "ok=0 fail=1"
    client_release a
    wait_log close 127.0.0.2 3
    client c 127.0.0.2 3 "ok=3 fail=0" -c
    expect_log batch 3 2
    client_release c
    wait_log close 127.0.0.2 6
    client d 127.0.0.2 4 "ok=3 fail=1" -c
    expect_err 0 "handoff failed|accept error|control truncated"
}

@test "handoff: several counted fds in one message, MSG_CMSG_CLOEXEC" {
    batch_case
}

# mmsg_case [OPTIONS]: sendmmsg of three one-fd messages; the workers
# receive with recvmmsg and MSG_CMSG_CLOEXEC.
mmsg_case() {
    export IPLIMIT_MAX=3
    server_start handoff 127.0.0.1 -w 1 -b 3 -m -C "$@"
    client a 127.0.0.2 6 "ok=3 fail=3 reset=3" -c
    expect_log batch 1 3
    expect_log cloexec-lost 127.0.0.2 0
    client b 127.0.0.3 3 "ok=3 fail=0" -c
    client c 127.0.0.2 1 "ok=0 fail=1"
    client_release a
    wait_log close 127.0.0.2 3
    client d 127.0.0.2 4 "ok=3 fail=1" -c
    expect_err 0 "handoff failed|accept error|control truncated"
}

@test "handoff: sendmmsg and recvmmsg, with MSG_CMSG_CLOEXEC" {
    mmsg_case
}

# One message per call: the only message is the last one. The workers ask
# for one message per recvmmsg (-1): queued messages (a slow worker) would
# otherwise come back several to a call.
@test "handoff: sendmmsg and recvmmsg of one message at a time" {
    mmsg_case -b 1 -1
}

# The same two hand-offs made by raw system calls (syscall(SYS_sendmsg),
# SYS_recvmsg, SYS_sendmmsg, SYS_recvmmsg): counted exactly as by libc.
@test "handoff: raw syscall(SYS_sendmsg) and SYS_recvmsg, several fds in one message" {
    batch_case -r
}

@test "handoff: raw syscall(SYS_sendmmsg) and SYS_recvmmsg" {
    mmsg_case -r
}

# A send that fails (the worker is gone) takes back its in-flight
# references: the primary's close then releases the connection at once.
@test "handoff: a failed send leaves no count behind" {
    export IPLIMIT_MAX=3
    server_start handoff 127.0.0.1 -w 1
    local w
    w=$(il_children "$SRV_PID")
    [ -n "$w" ] || diag "no worker"
    kill -KILL "$w"
    wait_until 5 gone "$w" || diag "worker $w did not die"
    client a 127.0.0.2 4 "ok=0 fail=4"
    wait_log handed 127.0.0.2 4
    expect_err 4 "handoff failed"
    expect_err 0 "rejected 127\.0\.0\.2"
}

# A worker killed with fds still in flight to it: the kernel drops them
# with its socket, and reconciliation (on here) frees their counts.
@test "handoff: fds in flight to a killed worker are healed by reconciliation" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1
    server_start handoff 127.0.0.1 -w 1 -g "$T/gate"
    client_start a 127.0.0.2 3 -c -g
    wait_until 10 grep -q '^connected=3$' "$T/a.out" || diag "a did not connect"
    wait_log handed 127.0.0.2 3
    local w
    w=$(il_children "$SRV_PID")
    kill -KILL "$w"
    wait_until 5 gone "$w" || diag "worker $w did not die"
    wait_until 15 reconciled_is 127.0.0.2 3 || diag "not reconciled"
    echo go >"$T/a.in"
    client_wait a
    expect_client a "ok=0 fail=3"
}
