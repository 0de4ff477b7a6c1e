#!/usr/bin/env bats
# iplimit reload of a policy with rules: each process keeps a copy of the
# rules (rulecache.c) that the straight accept path judges; a reload must
# switch every worker's copy at its next accept (the policy generation).
load helpers

@test "reload switches the rules at once: a limit raised, then an allow added" {
    export IPLIMIT_MAX=5 IPLIMIT_LIMITS=127.0.0.2/32=1 IPLIMIT_RECONCILE_INTERVAL=0
    server_start evloop 127.0.0.1
    client a 127.0.0.2 3 "ok=1 fail=2"
    client b 127.0.0.3 6 "ok=5 fail=1"
    IPLIMIT_LIMITS=127.0.0.2/32=3 "$IPLIMIT" reload --pid "$SRV_PID" >/dev/null
    expect_stat .policy_generation 2
    client c 127.0.0.2 4 "ok=2 fail=2"
    IPLIMIT_ALLOW=127.0.0.2 IPLIMIT_LIMITS=127.0.0.2/32=3 "$IPLIMIT" reload --pid "$SRV_PID" >/dev/null
    expect_stat .policy_generation 3
    client d 127.0.0.2 8 "ok=8 fail=0"
    client e 127.0.0.3 1 "ok=0 fail=1"
    stat_json
    expect_key 127.0.0.2 open 11
    expect_key 127.0.0.2 limit 0
    expect_key 127.0.0.3 open 5
}
