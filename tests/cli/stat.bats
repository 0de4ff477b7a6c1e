#!/usr/bin/env bats
# iplimit stat against a live server: exact counts in every format.
load helpers

@test "stat: open counts equal the connections the test holds" {
    export IPLIMIT_MAX=5
    server_start evloop 127.0.0.1
    client_run a 127.0.0.2 3 && expect_client a "ok=3 fail=0"
    client_run b 127.0.0.3 2 && expect_client b "ok=2 fail=0"
    expect_stat .open_connections 5
    expect_stat .table_entries 2
    expect_stat .stats.accepted 5
    expect_stat .stats.rejected 0
    expect_key 127.0.0.2 open 3
    expect_key 127.0.0.3 open 2
    expect_key 127.0.0.2 limit 5
    expect_stat '.keys[0].key' 127.0.0.2
    client_release a
    wait_stat .open_connections 2
    expect_stat .stats.released 3
    expect_key 127.0.0.2 open none
    expect_key 127.0.0.3 open 2
}

@test "stat: rejections per key and in total" {
    export IPLIMIT_MAX=2
    server_start evloop 127.0.0.1
    client a 127.0.0.2 5 "ok=2 fail=3"
    client b 127.0.0.4 1 "ok=1 fail=0"
    expect_stat .stats.rejected 3
    expect_key 127.0.0.2 rejected 3
    expect_key 127.0.0.2 open 2
    expect_key 127.0.0.4 rejected 0
    [ "$(key_field 127.0.0.2 last_reject)" -gt 0 ] || diag "no last_reject"
}

@test "stat: the table for people lists keys busiest first" {
    export IPLIMIT_MAX=4
    server_start evloop 127.0.0.1
    client a 127.0.0.3 1 "ok=1 fail=0"
    client b 127.0.0.2 6 "ok=4 fail=2"
    run "$IPLIMIT" stat --pid "$SRV_PID"
    [ "$status" -eq 0 ] || diag "stat exited $status: $output"
    [[ "${lines[0]}" == "service evloop pid $SRV_PID (pids $SRV_PID) user $(id -u) since "* ]] ||
        diag "header: ${lines[0]}"
    rows=$(awk '$1 ~ /^127\./ {print $1, $2, $3, $4}' <<<"$output")
    [ "$rows" = $'127.0.0.2 4 4 2\n127.0.0.3 1 4 0' ] || diag "rows: $rows"
    grep -q "connections: 5 open, 5 accepted, 2 rejected" <<<"$output" || diag "$output"
    grep -q "table: 2 of 65536 keys in use" <<<"$output" || diag "$output"
}

@test "stat --top N keeps the N busiest keys in every format" {
    export IPLIMIT_MAX=9
    server_start evloop 127.0.0.1
    client a 127.0.0.2 1 "ok=1 fail=0"
    client b 127.0.0.3 3 "ok=3 fail=0"
    client c 127.0.0.4 2 "ok=2 fail=0"
    STAT=$("$IPLIMIT" stat --pid "$SRV_PID" --json --top 2)
    [ "$(jqs '[.keys[].key] | join(" ")')" = "127.0.0.3 127.0.0.4" ] || diag "$STAT"
    [ "$(jqs .keys_total)" = 3 ] || diag "$STAT"
    run "$IPLIMIT" stat --pid "$SRV_PID" --prometheus --top 1
    [ "$(grep -c '^iplimit_connections{' <<<"$output")" -eq 1 ] || diag "$output"
    run "$IPLIMIT" stat --pid "$SRV_PID" --top 1
    grep -q "(2 more keys)" <<<"$output" || diag "$output"
}

@test "stat --prometheus: valid exposition format with exact values" {
    export IPLIMIT_MAX=2 IPLIMIT_CAPACITY=100
    server_start evloop 127.0.0.1
    client a 127.0.0.2 3 "ok=2 fail=1"
    run "$IPLIMIT" stat --pid "$SRV_PID" --prometheus
    [ "$status" -eq 0 ] || diag "exit $status"
    local line name bad=0
    declare -A typed=()
    while IFS= read -r line; do
        if [[ $line =~ ^#\ TYPE\ ([a-z_]+)\ (gauge|counter)$ ]]; then
            typed[${BASH_REMATCH[1]}]=1
        elif [[ $line =~ ^#\ HELP\ [a-z_]+\ .+$ ]]; then
            :
        elif [[ $line =~ ^([a-z_]+)(\{[a-z_0-9]+=\"[^\"]*\"(,[a-z_0-9]+=\"[^\"]*\")*\})?\ [0-9]+$ ]]; then
            name=${BASH_REMATCH[1]}
            [ -n "${typed[$name]:-}" ] || { echo "no TYPE before $line" >&2; bad=1; }
            [[ $name != *_total ]] || grep -q "^# TYPE $name counter$" <<<"$output" ||
                { echo "$name is not a counter" >&2; bad=1; }
        else
            echo "bad line: $line" >&2
            bad=1
        fi
    done <<<"$output"
    [ "$bad" -eq 0 ] || diag "malformed exposition"
    p='service="evloop"'
    for want in "iplimit_connections{$p,key=\"127.0.0.2\"} 2" \
                "iplimit_rejected_total{$p,key=\"127.0.0.2\"} 1" \
                "iplimit_limit{$p,key=\"127.0.0.2\"} 2" \
                "iplimit_table_entries{$p} 1" "iplimit_table_capacity{$p} 128" \
                "iplimit_accepted_total{$p} 2" "iplimit_service_rejected_total{$p} 1" \
                "iplimit_dry_run_rejected_total{$p} 0" "iplimit_open_connections{$p} 2"; do
        grep -qxF "$want" <<<"$output" || diag "missing: $want"
    done
    grep -Eq "^iplimit_reconcile_runs_total\{$p\} [0-9]+$" <<<"$output" || diag "no reconcile runs"
}

@test "stat --prometheus: per key, the open connections and the limit apart" {
    export IPLIMIT_MAX=3
    server_start evloop 127.0.0.1
    client a 127.0.0.2 1 "ok=1 fail=0"
    run "$IPLIMIT" stat --pid "$SRV_PID" --prometheus
    [ "$status" -eq 0 ] || diag "exit $status"
    grep -qxF 'iplimit_connections{service="evloop",key="127.0.0.2"} 1' <<<"$output" || diag "$output"
    grep -qxF 'iplimit_limit{service="evloop",key="127.0.0.2"} 3' <<<"$output" || diag "$output"
}

@test "stat: one service for all the processes of a prefork server" {
    export IPLIMIT_MAX=3
    server_start prefork 127.0.0.1 -w 4
    wait_until 10 stat_is '.pids | length' 5 || diag "pids: $(jqs .pids)"
    client a 127.0.0.2 5 "ok=3 fail=2"
    worker=$(il_children "$SRV_PID" | head -n 1)
    STAT=$("$IPLIMIT" stat --pid "$worker" --json)
    [ "$(jq '.services | length' <<<"$STAT")" -eq 1 ] || diag "$STAT"
    [ "$(jqs .creator_pid)" = "$SRV_PID" ] || diag "$STAT"
    [ "$(jqs ".pids | index($worker) != null")" = true ] || diag "$STAT"
    expect_key 127.0.0.2 open 3
    expect_key 127.0.0.2 rejected 2
}

# segment_inode PID: the inode of the segment PID maps (a service's identity).
segment_inode() {
    awk '/\/memfd:iplimit/ {print $5; exit}' "/proc/$1/maps"
}

@test "stat without --pid lists every running service, this one included" {
    export IPLIMIT_MAX=3
    server_start evloop 127.0.0.1
    first=$SRV_PID
    server_start evloop 127.0.0.1
    client a 127.0.0.2 2 "ok=2 fail=0"
    STAT=$("$IPLIMIT" stat --json 2>/dev/null)
    # Services are told apart by their segment, not by a creator pid that
    # a dead service's may share (pids are reused).
    local ino
    ino=$(segment_inode "$SRV_PID")
    got=$(jq -r --argjson i "$ino" '.services[] | select(.segment_inode == $i) | .open_connections' <<<"$STAT")
    [ "$got" = 2 ] || diag "open for $SRV_PID: '$got'"
    [ "$(jq -r --argjson i "$ino" '.services[] | select(.segment_inode == $i) | .pid' <<<"$STAT")" = "$SRV_PID" ] ||
        diag "pid of $SRV_PID's service"
    ino=$(segment_inode "$first")
    got=$(jq -r --argjson i "$ino" '.services[] | select(.segment_inode == $i) | .open_connections' <<<"$STAT")
    [ "$got" = 0 ] || diag "open for $first: '$got'"
}

@test "stat names a service by its oldest live process, not by a creator that exited" {
    export IPLIMIT_MAX=3
    # sh loads the library and creates the segment, forks evloop (which
    # inherits it) and exits: the way a daemon's first process does.
    LD_PRELOAD="$IL_LIB" sh -c '"$1" -l 127.0.0.1 -p 0 -a "$2" 3>&- & echo $! >"$3"' \
        sh "$IL_BIN/evloop" "$ALOG" "$T/daemon.pid" >"$SOUT" 2>"$SERR"
    SRV_PID=$(cat "$T/daemon.pid")
    IL_PIDS+=("$SRV_PID")
    wait_until 10 grep -q '^ready port=' "$SOUT" || diag "evloop did not get ready"
    stat_json
    [ "$(jqs .pid)" = "$SRV_PID" ] || diag "pid: $(jqs .pid), creator $(jqs .creator_pid)"
    [ "$(jqs .creator_pid)" != "$SRV_PID" ] || diag "the creator is the server: nothing tested"
    [ "$(jqs .service)" = sh ] || diag "service: $(jqs .service)"
}

@test "stat --prometheus: the label service comes from IPLIMIT_SERVICE; no pid label" {
    export IPLIMIT_MAX=3 IPLIMIT_SERVICE=sip-edge
    server_start evloop 127.0.0.1
    client a 127.0.0.2 1 "ok=1 fail=0"
    run "$IPLIMIT" stat --pid "$SRV_PID" --prometheus
    grep -qxF 'iplimit_open_connections{service="sip-edge"} 1' <<<"$output" || diag "$output"
    grep -qxF 'iplimit_connections{service="sip-edge",key="127.0.0.2"} 1' <<<"$output" || diag "$output"
    ! grep -E '^iplimit_[a-z_]+\{.*\bpid=' <<<"$output" || diag "a pid label: $(grep 'pid=' <<<"$output")"
    stat_json
    [ "$(jqs .service)" = sip-edge ] || diag "service: $(jqs .service)"
}

@test "stat --pid of a process without the library, or of no process, fails" {
    sleep 60 &
    IL_PIDS+=($!)
    run "$IPLIMIT" stat --pid $!
    [ "$status" -eq 1 ] || diag "exit $status"
    [[ $output == *"does not use iplimit"* ]] || diag "$output"
    run "$IPLIMIT" stat --pid 2147483646
    [ "$status" -eq 1 ] || diag "exit $status"
    [[ $output == *"no process 2147483646"* ]] || diag "$output"
    run "$IPLIMIT" stat --pid abc
    [ "$status" -eq 2 ] || diag "exit $status"
    run "$IPLIMIT" stat --json --prometheus
    [ "$status" -eq 2 ] || diag "exit $status"
}

@test "dry run: nothing is rejected, stat shows the would-be rejections" {
    export IPLIMIT_MAX=2 IPLIMIT_DRY_RUN=1
    server_start evloop 127.0.0.1
    client a 127.0.0.2 5 "ok=5 fail=0"
    expect_log accept 127.0.0.2 5
    expect_err 1 "^iplimit\[[0-9]+\]: would reject 127\.0\.0\.2: [0-9]+ open, limit 2 \(dry run\)$"
    expect_err 0 "^iplimit\[[0-9]+\]: rejected"
    expect_stat .policy.dry_run true
    expect_stat .stats.dry_run_rejected 3
    expect_stat .stats.rejected 0
    expect_key 127.0.0.2 open 5
    expect_key 127.0.0.2 rejected 3
    run "$IPLIMIT" stat --pid "$SRV_PID" --prometheus
    grep -qxF 'iplimit_dry_run_rejected_total{service="evloop"} 3' <<<"$output" || diag "$output"
    grep -qxF 'iplimit_dry_run{service="evloop"} 1' <<<"$output" || diag "$output"
    run "$IPLIMIT" stat --pid "$SRV_PID"
    grep -q "DRY RUN" <<<"$output" || diag "$output"
}

@test "stat: keys are networks when sources are grouped by prefix (IPv4 /24, IPv6 /64)" {
    export IPLIMIT_MAX=4 IPLIMIT_IPV4_PREFIX=24 IPLIMIT_LIMITS=127.0.1.0/24=3
    server_start evloop ::
    client a 127.0.1.2 2 "ok=2 fail=0"
    client b 127.0.1.3 2 "ok=1 fail=1"
    client c ::1 2 "ok=2 fail=0"
    stat_json
    expect_key 127.0.1.0/24 open 3
    expect_key 127.0.1.0/24 limit 3
    expect_key 127.0.1.0/24 rejected 1
    expect_key ::/64 open 2
    expect_key ::/64 limit 4
    [ "$(jqs .keys_total)" = 2 ] || diag "$STAT"
}

@test "stat: a key whose sources have different limits shows the last one applied" {
    export IPLIMIT_MAX=5 IPLIMIT_IPV4_PREFIX=24 IPLIMIT_LIMITS=127.0.2.9/32=1
    server_start evloop 127.0.0.1
    client a 127.0.2.1 2 "ok=2 fail=0"
    stat_json
    expect_key 127.0.2.0/24 limit 5
    client b 127.0.2.9 1 "ok=0 fail=1"
    stat_json
    expect_key 127.0.2.0/24 limit 1
    expect_key 127.0.2.0/24 rejected 1
}

@test "stat: a user that is not root reads its own service (no map_files)" {
    [ "$(id -u)" -eq 0 ] || skip "needs root to start processes as nobody"
    command -v setpriv >/dev/null || skip "no setpriv (util-linux)"
    local as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    export IPLIMIT_MAX=5
    "${as_nobody[@]}" env LD_PRELOAD="$IL_LIB" "$IL_BIN/evloop" -l 127.0.0.1 -p 0 \
        >"$SOUT" 2>"$SERR" 3>&- &
    SRV_PID=$!
    IL_PIDS+=("$SRV_PID")
    wait_until 10 grep -q '^ready port=' "$SOUT" || diag "evloop did not get ready"
    PORT=$(sed -n 's/^ready port=\([0-9]*\)$/\1/p' "$SOUT")
    client_run a 127.0.0.2 3 && expect_client a "ok=3 fail=0"
    # The way root takes is closed to nobody...
    local range
    range=$(awk '/\/memfd:iplimit/ {print $1; exit}' "/proc/$SRV_PID/maps")
    ! "${as_nobody[@]}" cat "/proc/$SRV_PID/map_files/$range" >/dev/null 2>&1 ||
        diag "nobody can open map_files: this test would not test the fallback"
    # ...and stat reads the segment through the fd the library keeps.
    STAT=$("${as_nobody[@]}" "$IPLIMIT" stat --pid "$SRV_PID" --json) ||
        diag "iplimit stat as nobody failed"
    [ "$(jqs .open_connections)" = 3 ] || diag "open: $(jqs .open_connections)"
    [ "$(key_field 127.0.0.2 open)" = 3 ] || diag "127.0.0.2 open: $(key_field 127.0.0.2 open)"
}
