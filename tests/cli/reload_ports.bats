#!/usr/bin/env bats
# A policy with a port list on the straight accept path: each process
# stamps a listener's fd-map entry with whether the policy of a generation
# polices its port (fdmap.h, limiter.c); a reload must switch every
# worker's listeners at its next accept.
load helpers

# uncounted SRC: the stat has no key for SRC.
uncounted() {
    stat_json
    [ "$(key_field "$1" open)" = none ] || diag "$1 was counted on an unpoliced port: $STAT"
}

@test "reload with a port list: the port policed, unpoliced and policed again, in every worker" {
    export IPLIMIT_MAX=2 IPLIMIT_PORTS=1 IPLIMIT_RECONCILE_INTERVAL=0
    server_start prefork 127.0.0.1 -w 8
    client a 127.0.0.2 4 "ok=4 fail=0"
    uncounted 127.0.0.2
    client_release a
    IPLIMIT_PORTS=$PORT "$IPLIMIT" reload --pid "$SRV_PID" >/dev/null
    expect_stat .policy_generation 2
    client b 127.0.0.3 6 "ok=2 fail=4"
    stat_json
    expect_key 127.0.0.3 open 2
    client_release b
    IPLIMIT_PORTS=1 "$IPLIMIT" reload --pid "$SRV_PID" --force >/dev/null
    expect_stat .policy_generation 3
    client c 127.0.0.4 5 "ok=5 fail=0"
    uncounted 127.0.0.4
    client_release c
    IPLIMIT_PORTS=1,$PORT "$IPLIMIT" reload --pid "$SRV_PID" >/dev/null
    expect_stat .policy_generation 4
    client d 127.0.0.5 6 "ok=2 fail=4"
    stat_json
    expect_key 127.0.0.5 open 2
}

@test "a port list: the listed port's counts stay exact as connections come and go" {
    export IPLIMIT_MAX=3 IPLIMIT_PORTS=1 IPLIMIT_RECONCILE_INTERVAL=0
    server_start evloop 127.0.0.1
    IPLIMIT_PORTS=$PORT "$IPLIMIT" reload --pid "$SRV_PID" >/dev/null
    client a 127.0.0.2 5 "ok=3 fail=2"
    client_release a
    client b 127.0.0.2 5 "ok=3 fail=2"
    stat_json
    expect_key 127.0.0.2 open 3
}

@test "a port list, two listeners in one thread: a reload switches the listener not accepted on first" {
    export IPLIMIT_MAX=2 IPLIMIT_PORTS=1 IPLIMIT_RECONCILE_INTERVAL=0
    server_start evloop 127.0.0.1 -2
    local port2
    port2=$(sed -n 's/^second port=\([0-9]*\)$/\1/p' "$SOUT")
    [ -n "$port2" ] || diag "no second port"
    client a 127.0.0.2 3 "ok=3 fail=0"
    PORT=$port2 client b 127.0.0.3 3 "ok=3 fail=0"
    client_release a
    client_release b
    IPLIMIT_PORTS=$port2 "$IPLIMIT" reload --pid "$SRV_PID" >/dev/null
    expect_stat .policy_generation 2
    # The first accept after the reload is on the first listener: it takes
    # the new policy; the second listener's next accept must too.
    client c 127.0.0.4 3 "ok=3 fail=0"
    PORT=$port2 client d 127.0.0.5 4 "ok=2 fail=2"
    uncounted 127.0.0.4
    expect_key 127.0.0.5 open 2
}
