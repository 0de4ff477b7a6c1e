# Section "cpu" of bench/run.sh (sourced by it): the server's CPU time per
# accepted-and-closed connection, without the library and with it in three
# configurations, on prefork -w 2 and on evloop.
#
# Method: the four servers of one kind run side by side; CPU_REPS rounds,
# each round one ilbench run of CPU_SECS seconds against each server, in an
# order that rotates every round (interleaved: slow phases of a shared
# machine fall on every configuration alike). The server's CPU time is the
# sum of the first field of /proc/PID/task/*/schedstat (nanoseconds on a
# CPU, every thread, the reconciler thread included) over the server and
# its children, read before and after the run; divided by the connections
# the run completed. The figure is the median over the rounds, and the
# added cost the median of the per-round ratios to the run without the
# library in the same round. Public tools only: the kernel's schedstat, the
# test servers and ilbench of this tree.
# Configurations: none (no library); unpoliced (library loaded, its port
# not policed: IPLIMIT_PORTS=1); counting (IPLIMIT_RECONCILE_INTERVAL=0);
# default (reconciliation by the reconciler thread every 10 s).
# Runs alone in about 3 minutes: BENCH_SECTIONS=cpu bench/run.sh

CPU_REPS=${CPU_REPS:-8}
CPU_SECS=${CPU_SECS:-2}

# cpu_ns PID: nanoseconds on a CPU of every thread of PID and its children.
cpu_ns() {
    local p t=0 v f
    for p in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); do
        for f in /proc/"$p"/task/*/schedstat; do
            read -r v _ <"$f" 2>/dev/null && t=$((t + v))
        done
    done
    echo "$t"
}

cpu_kind() {
    local kind=$1; shift
    local cfg ids=() ports=() envs
    for cfg in none unpoliced counting default; do
        case $cfg in
        none) start_server "cpu-$kind-$cfg" 0 -- "$@" ;;
        unpoliced) start_server "cpu-$kind-$cfg" 1 IPLIMIT_PORTS=1 -- "$@" ;;
        counting) start_server "cpu-$kind-$cfg" 1 IPLIMIT_MAX=1000 IPLIMIT_RECONCILE_INTERVAL=0 -- "$@" ;;
        default) start_server "cpu-$kind-$cfg" 1 IPLIMIT_MAX=1000 -- "$@" ;;
        esac || return 1
        ids+=("$SRV_PID")
        ports+=("$SRV_PORT")
    done
    local cfgs=(none unpoliced counting default) r k i t0 t1 out ok
    for r in $(seq "$CPU_REPS"); do
        for k in 0 1 2 3; do
            i=$(((k + r) % 4))
            t0=$(cpu_ns "${ids[$i]}")
            out=$("$BIN/ilbench" -p "${ports[$i]}" -t "$CPU_SECS" $CHURN_CLIENT)
            t1=$(cpu_ns "${ids[$i]}")
            ok=$(field "$out" ok)
            record cpu "$kind-${cfgs[$i]}" "$r" $out \
                cpu_ns_conn="$(awk -v d=$((t1 - t0)) -v n="${ok:-0}" 'BEGIN { if (n > 0) printf "%.0f", d / n; else print "NA" }')"
        done
    done
    for i in "${ids[@]}"; do stop_server "$i"; done
}

section_cpu() {
    log "cpu: prefork -w 2 and evloop, 4 configurations, $CPU_REPS rounds of ${CPU_SECS}s"
    cpu_kind prefork-w2 "$TBIN/prefork" -l 127.0.0.1 -p 0 -w 2
    cpu_kind evloop "$TBIN/evloop" -l 127.0.0.1 -p 0
    md "## Server CPU time per accepted-and-closed connection (schedstat over the server's threads; goal: default <= 1.02 x none)"
    md ""
    md "| server | configuration | ns/conn median (min-max), n | connections/s median | / none: median of round ratios | goal |"
    md "|---|---|---|---|---|---|"
    local kind cfg m mn mx n rate pr goal
    for kind in prefork-w2 evloop; do
        for cfg in none unpoliced counting default; do
            read -r m mn mx n <<<"$(stats cpu "$kind-$cfg" cpu_ns_conn)"
            rate=$(stats cpu "$kind-$cfg" rate | cut -d' ' -f1)
            if [ "$cfg" == none ]; then pr=1; goal=; else
                pr=$(pair_ratio cpu "$kind-$cfg" "$kind-none" cpu_ns_conn)
                goal=$([ "$cfg" == default ] && met "$pr" "<=" 1.02)
            fi
            md "| $kind | $cfg | $m ($mn-$mx), n=$n | $rate | $pr | $goal |"
        done
    done
    md ""
}
