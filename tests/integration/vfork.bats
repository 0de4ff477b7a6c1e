#!/usr/bin/env bats
# A host that starts programs with vfork while it holds counted connections
# (Python's subprocess, C code with vfork + close + exec): the child runs in
# the host's memory with a copy of its fd table, so nothing it closes or
# dups is the host's. Counts stay the host's, exactly; the exec'd program
# joins the service's table. Reconciliation off: nothing is healed
# afterwards (tests/servers/spawner.c).
load helpers

setup() {
    il_setup
    export IPLIMIT_RECONCILE_INTERVAL=0 IPLIMIT_MAX=3
}

# The spawned child has exited and been reaped. The child execs the spawner
# itself (an instrumented program under the sanitizers), or SPAWNER_EXEC.
reaped() {
    local pid
    pid=$(sed -n 's/^spawned //p' "$SOUT" | head -1)
    [ -n "$pid" ] && grep -qx "reaped $pid" "$SOUT"
}

# The server holds 3 from 127.0.0.2, a vfork child does HOW and exits:
# the 3 stay counted (a second client of that source gets none), and go to
# exactly 0 when the server closes them (no reference left behind).
held_through_vfork() {
    server_start spawner 127.0.0.1 -n 3 -v "$1" ${SPAWNER_EXEC:+-x "$SPAWNER_EXEC"}
    client a 127.0.0.2 3 "ok=3 fail=0"
    wait_log accept 127.0.0.2 3
    wait_until 10 reaped || diag "the child was not reaped"
    expect_open 127.0.0.2 3
    client b 127.0.0.2 3 "ok=0 fail=3"
    client_release a
    wait_log close 127.0.0.2 3
    expect_open 127.0.0.2 0
    client c 127.0.0.2 4 "ok=3 fail=1"
    server_alive
}

@test "vfork: the child closes each held connection, the host's count stays" {
    held_through_vfork close
}

@test "vfork: the child's close_range leaves the host's count" {
    held_through_vfork range
}

@test "vfork: the child's dup2 onto 0 leaves no reference behind" {
    held_through_vfork dup2
}

@test "vfork: the child's fclose of a held connection leaves the host's count" {
    held_through_vfork fclose
}

@test "vfork: a clone(CLONE_VM | CLONE_VFORK) child is a vfork child" {
    [ "${IL_SANITIZER:-}" != tsan ] ||
        skip "TSan's clone interceptor takes every clone for a fork and stops on this one"
    held_through_vfork clone
}

# The first spawn is the process's first vfork-like call: close() must
# already take the way that asks for the mark (interpose.c).
@test "vfork: a clone(CLONE_VM | CLONE_VFORK) child's close() leaves the host's count" {
    [ "${IL_SANITIZER:-}" != tsan ] ||
        skip "TSan's clone interceptor takes every clone for a fork and stops on this one"
    held_through_vfork clone-close
}

@test "vfork: a child that does nothing before exec changes nothing" {
    held_through_vfork none
}

# The exec'd program joins the service: its table is the host's (one
# service, the host's 3 connections in it), not one of its own.
@test "vfork: the program a vfork child execs joins the host's table" {
    server_start spawner 127.0.0.1 -n 3 -v range -e sleep
    client a 127.0.0.2 3 "ok=3 fail=0"
    wait_log accept 127.0.0.2 3
    wait_until 10 grep -q '^spawned ' "$SOUT" || diag "nothing spawned"
    local child
    child=$(sed -n 's/^spawned //p' "$SOUT" | head -1)
    IL_PIDS+=("$child")
    wait_until 10 grep -q -- '--sleep' "/proc/$child/cmdline" || diag "the child did not exec"
    local got
    got=$(stat_open 127.0.0.2 "$child")
    [ "$got" = 3 ] || diag "the exec'd program's table counts '$got' for 127.0.0.2, not the host's 3"
    expect_open 127.0.0.2 3
    stop_pid "$child"
    client_release a
    wait_log close 127.0.0.2 3
    expect_open 127.0.0.2 0
}
