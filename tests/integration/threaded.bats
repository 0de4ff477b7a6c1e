#!/usr/bin/env bats
# threaded: threads blocking in accept() on one listener; connections are
# closed by other threads than the one that accepted them.
load helpers
SERVER=(threaded -t 4)

@test "threaded: 3 of 6 connections from one source, the app sees only 3" { case_limit; }
@test "threaded: an allowlisted source gets all 10" { case_allow; }
@test "threaded: counts return to zero after the client closes" { case_release; }
@test "threaded: a second source is not affected by the first" { case_sources; }

@test "threaded: many cycles of accept and close in other threads keep the count exact" {
    export IPLIMIT_MAX=3
    server_start threaded 127.0.0.1 -t 4
    for i in 1 2 3 4 5; do
        client "a$i" 127.0.0.2 5 "ok=3 fail=2"
        client_release "a$i"
        wait_log close 127.0.0.2 $((i * 3))
    done
    expect_log accept 127.0.0.2 15
}

@test "threaded: racing clients get exactly the limit in total" { case_parallel; }
