#!/usr/bin/env bats
# iplimit stat's totals when several worker processes count: each process
# adds to the statistics stripe of its pid (src/lib/shm.h), and stat sums
# them all; a stripe left out of the sum, or a worker's counts lost, shows
# as totals below the connections made.
load helpers

# Each prefork worker serves one connection at a time, so N held connections
# sit in N different workers.
WORKERS=4

# distinct_stripes: how many different stripes (pid modulo 64) the server's
# workers use.
distinct_stripes() {
    local p
    for p in $(il_children "$SRV_PID"); do echo $((p % 64)); done | sort -u | wc -l
}

@test "stat: accepted and released are exact over $WORKERS worker processes" {
    export IPLIMIT_MAX=100
    server_start prefork 127.0.0.1 -w $WORKERS
    wait_until 10 test "$(il_children "$SRV_PID" | wc -l)" -eq $WORKERS ||
        diag "expected $WORKERS workers, got $(il_children "$SRV_PID" | wc -l)"
    # Two workers of one stripe would still count exactly, but would not
    # show a stripe missing from the sum: the test needs at least two.
    [ "$(distinct_stripes)" -ge 2 ] || diag "the workers' pids share one stripe: $(il_children "$SRV_PID")"
    local round total=0
    for round in 1 2 3 4 5; do
        client_run "r$round" 127.0.0.2 $WORKERS && expect_client "r$round" "ok=$WORKERS fail=0"
        wait_stat .open_connections $WORKERS
        client_release "r$round"
        wait_stat .open_connections 0
        total=$((total + WORKERS))
    done
    wait_stat .stats.released $total
    expect_stat .stats.accepted $total
    expect_stat .stats.rejected 0
    expect_stat .stats.untracked 0
    expect_stat .open_connections 0
}

@test "stat: rejections by several workers add up" {
    export IPLIMIT_MAX=2
    server_start prefork 127.0.0.1 -w $WORKERS
    wait_until 10 test "$(il_children "$SRV_PID" | wc -l)" -eq $WORKERS || diag "workers"
    # Two held connections occupy two workers; the other two workers
    # reject the rest of the source's attempts between them.
    client_run a 127.0.0.2 10 && expect_client a "ok=2 fail=8"
    expect_stat .stats.rejected 8
    expect_stat .stats.accepted 2
    client_release a
    wait_stat .stats.released 2
}
