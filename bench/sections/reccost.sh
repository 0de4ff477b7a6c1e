# Section "reccost" of bench/run.sh (sourced by it): the cost of one
# reconciliation run with H counted connections held and T sockets in
# TIME_WAIT on the machine.
#
# Each H runs in a network namespace of its own, created with a TCP hash
# table of its own (net.ipv4.tcp_child_ehash_entries, set for the creation
# and put back at once), so that the TIME_WAIT sockets are only the ones
# made here, not the rest of the machine's. Inside: evloop under the library
# with reconciliation every second (the reconciler thread), ilhold holding H
# connections from 1000 sources, then twmake adds TIME_WAIT sockets (its
# server closes first) up to 0, 50,000 and 130,000 (the default
# tcp_max_tw_buckets is 131,072 on this machine). At each level the
# reconciler thread's CPU time (schedstat) over RECCOST_RUNS runs, divided
# by the runs (iplimit stat), and the runs' wall durations (last_usec).
# RECCOST_BASE_LIB: another build of the library measured the same way
# (RECCOST_BASE_CLI: its iplimit, when its segment layout differs).

RECCOST_RUNS=${RECCOST_RUNS:-8}
RECCOST_EHASH=${RECCOST_EHASH:-262144}

reccost_tw() { ip netns exec "$1" awk '/^TCP:/ { for (i = 2; i < NF; i++) if ($i == "tw") print $(i + 1) }' /proc/net/sockstat; }

reccost_thread() {
    local t
    for t in /proc/"$1"/task/*; do
        [ "$(cat "$t/comm" 2>/dev/null)" == iplimit-rec ] && { echo "${t##*/}"; return; }
    done
}

reccost_json() { "${RECCOST_CLI:-$ROOT/build/iplimit}" stat --pid "$1" --json 2>/dev/null; }

# reccost_measure NS PID TAG H: one row of figures at the current TIME_WAIT level.
reccost_measure() {
    local ns=$1 pid=$2 tag=$3 held=$4
    local tid r0 r1 c0 c1 i j walls=() last=-1 runs
    tid=$(reccost_thread "$pid")
    [ -n "$tid" ] || { log "reccost: no reconciler thread"; return 1; }
    r0=$(reccost_json "$pid" | jq -r '.services[0].reconcile.runs // 0')
    c0=$(cut -d' ' -f1 "/proc/$pid/task/$tid/schedstat")
    for i in $(seq $((RECCOST_RUNS * 2 * 5 + 50))); do
        j=$(reccost_json "$pid")
        runs=$(jq -r '.services[0].reconcile.runs // 0' <<<"$j")
        if [ "$runs" != "$last" ]; then
            walls+=("$(jq -r '.services[0].reconcile.last_usec' <<<"$j")")
            last=$runs
        fi
        [ "$runs" -ge $((r0 + RECCOST_RUNS)) ] && break
        sleep 0.2
    done
    r1=$runs
    c1=$(cut -d' ' -f1 "/proc/$pid/task/$tid/schedstat")
    local tw wall
    tw=$(reccost_tw "$ns")
    wall=$(printf '%s\n' "${walls[@]:1}" | sort -n | awk '{ v[n++] = $1 } END { if (n) print v[int((n - 1) / 2)]; else print "NA" }')
    record reccost "$tag" 1 held="$held" tw="$tw" runs=$((r1 - r0)) \
        cpu_us=$(awk -v c=$((c1 - c0)) -v n=$((r1 - r0)) 'BEGIN { if (n > 0) printf "%.0f", c / n / 1000; else print "NA" }') \
        wall_us="$wall"
}

# reccost_one LIB TAG H: a namespace, the server, H held, three TIME_WAIT levels.
reccost_one() {
    local lib=$1 tag=$2 held=$3 ns=ilrc-$$-$RANDOM old
    old=$(cat /proc/sys/net/ipv4/tcp_child_ehash_entries)
    sysctl -qw net.ipv4.tcp_child_ehash_entries="$RECCOST_EHASH" || return 1
    ip netns add "$ns"
    sysctl -qw net.ipv4.tcp_child_ehash_entries="$old"
    RECCOST_NS+=("$ns")
    ip netns exec "$ns" ip link set lo up
    start_server "rc-$tag" 0 -- ip netns exec "$ns" env IPLIMIT_LOG=none IPLIMIT_MAX=100000 \
        IPLIMIT_RECONCILE_INTERVAL=1 LD_PRELOAD="$lib" "$TBIN/evloop" -l 127.0.0.1 -p 0 || return 1
    local spid=$SRV_PID port=$SRV_PORT i
    ip netns exec "$ns" "$BIN/ilhold" -p "$port" -n "$held" -s 127.1.0.0 -N 1000 -t 600 \
        >"$TMP/rchold" 2>&1 </dev/null &
    local hpid=$!
    PIDS+=("$hpid")
    for i in $(seq 600); do grep -q '^held' "$TMP/rchold" && break; sleep 0.1; done
    grep -q '^held' "$TMP/rchold" || { log "reccost: hold failed: $(cat "$TMP/rchold")"; stop_server "$hpid"; stop_server "$spid"; return 1; }
    local level have src=3
    for level in 0 50000 130000; do
        have=$(reccost_tw "$ns")
        if [ "$level" -gt "${have:-0}" ]; then
            ip netns exec "$ns" "$BIN/twmake" -a 127.0.0.2 -s 127.$src.0.0 -n $((level - have)) -t 50 \
                >/dev/null 2>&1 </dev/null
            src=$((src + 1))
        fi
        reccost_measure "$ns" "$spid" "$tag-h$held-tw$level" "$held"
    done
    stop_server "$hpid"
    stop_server "$spid"
    ip netns del "$ns"
}

section_reccost() {
    md "## Reconciliation cost per run (H held, T in TIME_WAIT; goal: bounded by H, not T)"
    md ""
    if [ "$(id -u)" -ne 0 ] || ! command -v jq >/dev/null || [ ! -f /proc/sys/net/ipv4/tcp_child_ehash_entries ]; then
        md "Skipped: needs root (network namespaces), jq and net.ipv4.tcp_child_ehash_entries."
        md ""
        return
    fi
    RECCOST_NS=()
    local libs=("$LIB:this") l held
    [ -n "${RECCOST_BASE_LIB:-}" ] && libs+=("$RECCOST_BASE_LIB:base")
    for held in 1000 10000; do
        for l in "${libs[@]}"; do
            log "reccost: ${l##*:} library, $held held"
            RECCOST_CLI=
            [ "${l##*:}" == base ] && RECCOST_CLI=${RECCOST_BASE_CLI:-}
            reccost_one "${l%%:*}" "${l##*:}" "$held"
        done
    done
    md "| library | held | TIME_WAIT (measured) | runs | CPU per run (us) | wall per run, median (us) |"
    md "|---|---|---|---|---|---|"
    awk '$1 == "reccost" { row = ""; for (i = 4; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
         split($2, t, "-"); printf "| %s | %s | %s | %s | %s | %s |\n", t[1], f["held"], f["tw"], f["runs"], f["cpu_us"], f["wall_us"] }' "$RES" >>"$MD"
    md ""
}
