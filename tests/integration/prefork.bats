#!/usr/bin/env bats
# prefork: worker processes sharing one blocking listener; one count for all.
load helpers
SERVER=(prefork -w 16)

@test "prefork: 3 of 6 connections from one source, the app sees only 3" { case_limit; }
@test "prefork: an allowlisted source gets all 10" { case_allow; }
@test "prefork: counts return to zero after the client closes" { case_release; }
@test "prefork: a second source is not affected by the first" { case_sources; }

# Each worker serves one connection at a time, so 3 held connections sit in
# 3 different workers: the limit is shared, not per worker.
@test "prefork: workers share one count (3 in total across 16 workers)" {
    export IPLIMIT_MAX=3
    server_start prefork 127.0.0.1 -w 16
    client a 127.0.0.2 3 "ok=3 fail=0"
    client b 127.0.0.2 3 "ok=0 fail=3"
    client c 127.0.0.2 3 "ok=0 fail=3"
    expect_log accept 127.0.0.2 3
}

@test "prefork: racing clients get exactly the limit in total" { case_parallel; }
