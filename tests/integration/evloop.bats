#!/usr/bin/env bats
# evloop: non-blocking listener in epoll, level-triggered with accept() and
# edge-triggered with accept4(NULL address).
load helpers

@test "evloop LT: 3 of 6 connections from one source, the app sees only 3" { SERVER=(evloop); case_limit; }
@test "evloop LT: an allowlisted source gets all 10" { SERVER=(evloop); case_allow; }
@test "evloop LT: counts return to zero after the client closes" { SERVER=(evloop); case_release; }
@test "evloop LT: a second source is not affected by the first" { SERVER=(evloop); case_sources; }

@test "evloop ET accept4: 3 of 6 connections from one source, the app sees only 3" { SERVER=(evloop -e -4); case_limit; }
@test "evloop ET accept4: an allowlisted source gets all 10" { SERVER=(evloop -e -4); case_allow; }
@test "evloop ET accept4: counts return to zero after the client closes" { SERVER=(evloop -e -4); case_release; }
@test "evloop ET accept4: a second source is not affected by the first" { SERVER=(evloop -e -4); case_sources; }

@test "evloop LT accept4: 3 of 6 connections from one source, the app sees only 3" { SERVER=(evloop -4); case_limit; }
@test "evloop ET accept: 3 of 6 connections from one source, the app sees only 3" { SERVER=(evloop -e); case_limit; }

# While the server is stopped, two over-limit connections from 127.0.0.2 and
# then one from 127.0.0.3 queue in the backlog. Edge-triggered epoll reports
# them once: accept must skip the rejected ones and return the admitted one.
queued_behind_rejected() {
    export IPLIMIT_MAX=3
    server_start "$@"
    client a 127.0.0.2 3 "ok=3 fail=0"
    kill -STOP "$SRV_PID"
    client_start b 127.0.0.2 2 -c -t 5000
    wait_until 10 grep -q '^connected=2$' "$T/b.out" || diag "b did not connect"
    client_start c 127.0.0.3 1 -c -t 5000
    wait_until 10 grep -q '^connected=1$' "$T/c.out" || diag "c did not connect"
    kill -CONT "$SRV_PID"
    client_wait b
    client_wait c
    expect_client b "ok=0 fail=2"
    expect_client c "ok=1 fail=0"
    expect_log accept 127.0.0.2 3
    expect_log accept 127.0.0.3 1
    expect_err 0 "accept error"
    expect_err 0 "peer mismatch|flags lost"
}

@test "evloop ET: the admitted connection queued behind rejected ones is returned" {
    queued_behind_rejected evloop 127.0.0.1 -e
}

@test "evloop ET accept4: the admitted connection queued behind rejected ones is returned" {
    queued_behind_rejected evloop 127.0.0.1 -e -4
}

@test "evloop LT: the admitted connection queued behind rejected ones is returned" {
    queued_behind_rejected evloop 127.0.0.1
}

@test "evloop LT: racing clients get exactly the limit in total" { SERVER=(evloop); case_parallel; }
@test "evloop ET accept4: racing clients get exactly the limit in total" { SERVER=(evloop -e -4); case_parallel; }
