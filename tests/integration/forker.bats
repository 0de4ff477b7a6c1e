#!/usr/bin/env bats
# forker: a child per connection; the parent closes its copy at once.
load helpers
SERVER=(forker)

@test "forker: 3 of 6 connections from one source, the app sees only 3" { case_limit; }
@test "forker: an allowlisted source gets all 10" { case_allow; }
@test "forker: counts return to zero after the client closes" { case_release; }
@test "forker: a second source is not affected by the first" { case_sources; }

# exit_case OPTION: the children call exit() (-x), _exit() (-X) or _Exit()
# (-E) with the connection still open: the kernel closes it, no close() is
# ever seen. The count must still return to zero.
exit_case() {
    export IPLIMIT_MAX=3
    server_start forker 127.0.0.1 "$1"
    client a 127.0.0.2 4 "ok=3 fail=1"
    client_release a
    wait_exited 127.0.0.2 3
    client b 127.0.0.2 4 "ok=3 fail=1"
    expect_log accept 127.0.0.2 6
}

@test "forker -x: children that exit without close() release their connections" { exit_case -x; }
@test "forker -X: children that _exit without close() release their connections" { exit_case -X; }
@test "forker -E: children that _Exit without close() release their connections" { exit_case -E; }

@test "forker: racing clients get exactly the limit in total" { case_parallel; }
