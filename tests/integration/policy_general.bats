#!/usr/bin/env bats
# Rules on the general accept path: a policy the straight path does not take
# (here with a per-network rate, IPLIMIT_RATES, for networks the clients are
# not in) judges every accept from the shared policy (il_policy_judge), where
# a policy with rules alone is judged from each thread's copy (rulecache.c,
# tests/integration/policy.bats).
load helpers

@test "general path: a /32 rule inside a /24 key judges the peer's address" {
    export IPLIMIT_MAX=3 IPLIMIT_IPV4_PREFIX=24 IPLIMIT_LIMITS=127.0.0.2/32=1
    export IPLIMIT_RATES=10.0.0.0/8=1000
    server_start evloop 127.0.0.1
    client a 127.0.0.2 3 "ok=1 fail=2"
    client b 127.0.0.3 3 "ok=2 fail=1"
    expect_log accept 127.0.0.2 1
    expect_log accept 127.0.0.3 2
}

@test "general path: an allowlisted host inside a /24 key uses none of its budget" {
    export IPLIMIT_MAX=3 IPLIMIT_IPV4_PREFIX=24 IPLIMIT_ALLOW=127.0.0.3/32
    export IPLIMIT_RATES=10.0.0.0/8=1000
    server_start evloop 127.0.0.1
    client a 127.0.0.3 5 "ok=5 fail=0"
    client b 127.0.0.2 4 "ok=3 fail=1"
}
