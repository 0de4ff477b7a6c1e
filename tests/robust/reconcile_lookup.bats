#!/usr/bin/env bats
# Reconciliation by exact lookups (src/lib/reclookup.c): once a dump has
# shown the local addresses a port's connections use, each run asks the
# kernel for every counted connection by its 4-tuple and dumps nothing while
# all are found, so its cost follows the service's connections, not the
# machine's sockets. A lookup miss frees nothing by itself: a dump must lack
# the connection too. Asserted through iplimit stat's reconcile.lookups and
# reconcile.dumps (totals over all runs).
load helpers

rec() {
    "$IL_ROOT/build/iplimit" stat --pid "$SRV_PID" --json | jq -r ".services[0].reconcile.$1"
}

# snap: R, L and D, the runs, lookups and dumps so far, from one reading
# (three readings could straddle the end of a run).
snap() {
    read -r R L D < <("$IL_ROOT/build/iplimit" stat --pid "$SRV_PID" --json |
        jq -r '.services[0].reconcile | "\(.runs) \(.lookups) \(.dumps)"')
}

runs_at_least() {
    [ "$(rec runs)" -ge "$1" ]
}

# holder_to SRC DST: pid of a process holding a connection from SRC to DST
# on $PORT (ss wants IPv6 addresses in brackets).
holder_to() {
    local src=$1 dst=$2
    [[ $src == *:* ]] && src="[$src]"
    [[ $dst == *:* ]] && dst="[$dst]"
    ss -Htnp state established "( sport = :$PORT and src $dst and dst $src )" 2>/dev/null |
        grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2
}

# steady N: two more runs with every connection live make no dump, and at
# least N lookups (one run's: a reading can straddle the end of a run).
steady() {
    local want=$1 r l d
    r=$(rec runs)
    within 15 runs_at_least $((r + 1)) || diag "reconciliation did not run"
    snap
    r=$R l=$L d=$D
    within 15 runs_at_least $((r + 2)) || diag "reconciliation did not run twice"
    snap
    [ "$D" = "$d" ] || diag "runs with every connection live dumped: $d -> $D"
    [ "$L" -ge $((l + want)) ] || diag "lookups: $l -> $L, wanted +$want"
}

# kill_healed SRC DST KEY N: the holder of a connection SRC -> DST is
# SIGKILLed; KEY's count goes down to N, through a dump.
kill_healed() {
    local src=$1 dst=$2 key=$3 n=$4 victim d
    victim=$(holder_to "$src" "$dst")
    [ -n "$victim" ] && [ "$victim" != "$SRV_PID" ] || diag "no worker holds $src -> $dst"
    d=$(rec dumps)
    kill -KILL "$victim"
    wait_until 5 dead "$victim" || diag "worker $victim did not die"
    within 15 healed_to "$key" "$n" || diag "$key: the killed worker's connection still counted"
    [ "$(rec dumps)" -gt "$d" ] || diag "healed without a dump"
}

@test "lookup: a wildcard listener reached at two local addresses: runs look up, dump nothing, free nothing; a SIGKILLed holder is healed through a confirming dump" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1 IPLIMIT_BLOCKING=wait
    server_start prefork 0.0.0.0 -w 8
    DST=127.0.0.1 client_start a 127.0.0.2 3
    DST=127.0.0.2 client_start b 127.0.0.3 3
    client_wait a && expect_client a "ok=3 fail=0" || return 1
    client_wait b && expect_client b "ok=3 fail=0" || return 1
    within 10 counted_is 127.0.0.2 3 || diag "127.0.0.2 not counted 3"
    within 10 counted_is 127.0.0.3 3 || diag "127.0.0.3 not counted 3"
    steady 6
    counted_is 127.0.0.2 3 || diag "127.0.0.2: a live connection was freed"
    counted_is 127.0.0.3 3 || diag "127.0.0.3: a live connection was freed"
    # A connection at a local address no dump has shown yet: its lookups
    # all miss, and the dump that confirms them finds it.
    DST=127.0.0.5 client_start c 127.0.0.5 1
    client_wait c && expect_client c "ok=1 fail=0" || return 1
    within 10 counted_is 127.0.0.5 1 || diag "127.0.0.5 not counted"
    local r
    r=$(rec runs)
    within 15 runs_at_least $((r + 2)) || diag "reconciliation did not run twice"
    counted_is 127.0.0.5 1 || diag "127.0.0.5: a live connection at a new local address was freed"
    kill_healed 127.0.0.3 127.0.0.2 127.0.0.3 2
    kill_healed 127.0.0.2 127.0.0.1 127.0.0.2 2
    steady 4
    counted_is 127.0.0.2 2 || diag "127.0.0.2: a live connection was freed"
    counted_is 127.0.0.3 2 || diag "127.0.0.3: a live connection was freed"
    expect_err 2 "reconcile: .*: 1 connections the kernel no longer has"
    server_alive
}

@test "lookup: IPv6 and IPv4 peers of a dual-stack listener are found by lookups and never freed; a SIGKILLed holder of each is healed" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1 IPLIMIT_BLOCKING=wait
    server_start prefork '[::]' -w 8
    client_start a ::1 3
    DST=127.0.0.1 client_start b 127.0.0.2 3
    client_wait a && expect_client a "ok=3 fail=0" || return 1
    client_wait b && expect_client b "ok=3 fail=0" || return 1
    within 10 counted_is ::/64 3 || diag "::/64 not counted 3"
    within 10 counted_is 127.0.0.2 3 || diag "127.0.0.2 not counted 3"
    steady 6
    counted_is ::/64 3 || diag "::/64: a live connection was freed"
    counted_is 127.0.0.2 3 || diag "127.0.0.2: a live connection was freed"
    kill_healed 127.0.0.2 127.0.0.1 127.0.0.2 2
    kill_healed ::1 ::1 ::/64 2
    steady 4
    counted_is ::/64 2 || diag "::/64: a live connection was freed"
    counted_is 127.0.0.2 2 || diag "127.0.0.2: a live connection was freed"
    server_alive
}

@test "lookup: CLOSE_WAIT connections are found by lookups and stay counted" {
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=1
    server_start probe 127.0.0.1 -k
    client a 127.0.0.2 3 "ok=3 fail=0" || return 1
    client_release a
    wait_until 10 log_is eof 127.0.0.2 3 || diag "the server did not see 3 EOFs"
    steady 3
    counted_is 127.0.0.2 3 || diag "127.0.0.2: a half-closed connection was freed"
    kill -USR1 "$SRV_PID"
    within 10 counted_is 127.0.0.2 0 || diag "127.0.0.2: counts not released at close"
}

@test "lookup: a port with more local addresses than are learned is reconciled by dumps alone, and heals" {
    export IPLIMIT_MAX=10 IPLIMIT_RECONCILE_INTERVAL=1 IPLIMIT_BLOCKING=wait
    server_start prefork 0.0.0.0 -w 8
    local i
    # Six: one killed leaves five, still more than are learned (four).
    for i in 1 2 3 4 5 6; do
        DST=127.0.0.$i client_start c$i 127.0.0.2 1
    done
    for i in 1 2 3 4 5 6; do
        client_wait c$i && expect_client c$i "ok=1 fail=0" || return 1
    done
    within 10 counted_is 127.0.0.2 6 || diag "127.0.0.2 not counted 6"
    # Runs before a dump saw all six may have looked some up; from the
    # first run after one did, none does.
    local r l d
    r=$(rec runs)
    within 15 runs_at_least $((r + 2)) || diag "reconciliation did not run twice"
    snap
    r=$R l=$L d=$D
    within 15 runs_at_least $((r + 2)) || diag "reconciliation did not run twice more"
    snap
    [ "$L" = "$l" ] || diag "lookups made: $l -> $L"
    # Each run dumps; the second of the two may still be publishing.
    [ "$D" -ge $((d + 1)) ] || diag "dumps: $d -> $D"
    counted_is 127.0.0.2 6 || diag "127.0.0.2: a live connection was freed"
    kill_healed 127.0.0.2 127.0.0.4 127.0.0.2 5
    snap
    r=$R l=$L
    within 15 runs_at_least $((r + 2)) || diag "reconciliation did not run twice more"
    counted_is 127.0.0.2 5 || diag "127.0.0.2: a live connection was freed"
    [ "$(rec lookups)" = "$l" ] || diag "lookups made: $l -> $(rec lookups)"
}
