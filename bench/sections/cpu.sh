# Section "cpu" of bench/run.sh (sourced by it): the server's CPU time per
# accepted-and-closed connection, without the library and with it in three
# configurations, on prefork -w 2 and on evloop.
#
# Method: the servers of one kind run side by side; CPU_REPS rounds, each
# round one ilbench run of CPU_SECS seconds against each server, in an order
# that rotates every round (interleaved: slow phases of a shared machine
# fall on every configuration alike). With CPU_PIN=1 (the default, on a
# machine of 2 CPUs or more) every server process runs on the last CPU and
# ilbench on the others (taskset): the load generator no longer competes
# with the server for its CPU and caches, which was most of the spread of
# the unpinned runs. The server's CPU time is the sum of the first field of
# /proc/PID/task/*/schedstat (nanoseconds on a CPU, every thread, the
# reconciler thread included) over the server and its children, read
# before and after the run, divided by the connections the run completed.
# Each run also records how busy the server's CPU was with anything else
# (/proc/stat's busy time of that CPU minus the server's own) and its steal
# time: the check that the run had the CPU to itself. Reported: the median
# per configuration with its min-max, and the per-round ratios to the run
# without the library in the same round (median, min-max). Public tools
# only: the kernel's schedstat and /proc/stat, taskset, the test servers
# and ilbench of this tree.
# Configurations: none (no library); unpoliced (library loaded, its port
# not policed: IPLIMIT_PORTS=1); counting (IPLIMIT_RECONCILE_INTERVAL=0);
# default (reconciliation by the reconciler thread every 10 s); thread
# (the reconciler thread started, its runs an hour apart:
# IPLIMIT_RECONCILE_INTERVAL=3600); inline (runs every 10 s in the accept
# that finds one due, no thread: IPLIMIT_RECONCILE_THREAD=0); and, when
# CPU_BASE_LIB names another build of the library, base (that build,
# counting), to compare two builds in the same rounds; base-default, that
# build with the default settings. CPU_NICE (default 0)
# runs the servers and ilbench at that nice value (-10: ahead of other
# processes on their CPUs; root only).
# passthru preloads bench/passthru.so (accept, accept4, close, read and recv
# passed on to libc: what any interposer costs); passthru-thread the same
# with an idle thread started at each process's first accept, as the
# reconciler thread is; passthru-exited with that thread returning at once
# (glibc's multi-threaded paths without a second thread); passthru-pagesK
# with K pages of its own touched at each accept and close (passthru.c:
# what a page more on the way of a connection costs); passthru-linesK
# with K cache lines 128 bytes apart instead (32 to a page: lines
# without pages).
# none2 is a second server without the library: its ratio to none is the
# method's own error (an A/A comparison). NAME=/path/lib.so adds a
# configuration NAME that preloads that library (counting, for a build of
# iplimit; any other interposer for a comparison).
# CPU_FRESH=K starts new server processes every K rounds: one process's
# layout (where ASLR put its stack, heap and libraries, and how they fall
# in the caches) can make it a percent faster or slower than its twin for
# as long as it runs, which the rounds' ratios would otherwise keep.
# The default, 1, makes every round a draw of its own, so that the
# confidence interval of the median is the draws' (with K > 1 the rounds
# of one process are not independent and the interval comes out too
# narrow).
# CPU_WARM=S (default 1) runs S seconds of unmeasured churn against each
# new server first (cpu_warm, at the end of cpu_start).
# Pinned, the two workers of prefork -w 2 share one CPU: the figure is the
# work per connection without cache-line transfers between CPUs.
# CPU_SERVERS (default "prefork-w2 evloop"; prefork-wN for N workers) and
# CPU_CONFIGS (default "none unpoliced counting default") choose a subset,
# for a quick A/B of two builds: CPU_SERVERS=prefork-w2
# CPU_CONFIGS="none counting" CPU_BASE_LIB=/path/libiplimit.so.
# Runs alone in about 4 minutes: BENCH_SECTIONS=cpu bench/run.sh

CPU_REPS=${CPU_REPS:-20}
CPU_SECS=${CPU_SECS:-1}
CPU_PIN=${CPU_PIN:-1}
CPU_BASE_LIB=${CPU_BASE_LIB:-}
CPU_NICE=${CPU_NICE:-0} # e.g. -10: server and ilbench ahead of other processes on their CPUs
CPU_FRESH=${CPU_FRESH:-1} # >0: new server processes every CPU_FRESH rounds
CPU_WARM=${CPU_WARM:-1}   # s of unmeasured churn against each new server (0: none)
CPU_MAX_OTHER=${CPU_MAX_OTHER:-10} # %: a round whose runs shared the server's CPU more is "busy"

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

# cpu_ticks CPU: "busy steal" clock ticks of one CPU (/proc/stat; busy =
# user + nice + system + irq + softirq).
cpu_ticks() {
    awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat
}

# cpu_start KIND SERVER...: one server of KIND per configuration; their
# pids in CPU_IDS, ports in CPU_PORTS (indexed like CPU_CFGS).
cpu_start() {
    local kind=$1 cfg; shift
    CPU_IDS=() CPU_PORTS=()
    for cfg in "${CPU_CFGS[@]}"; do
        case $cfg in
        none | none2) start_server "cpu-$kind-$cfg" 0 -- "${CPU_PINCMD[@]}" "$@" ;;
        unpoliced) start_server "cpu-$kind-$cfg" 1 IPLIMIT_PORTS=1 -- "${CPU_PINCMD[@]}" "$@" ;;
        counting) start_server "cpu-$kind-$cfg" 1 IPLIMIT_MAX=1000 IPLIMIT_RECONCILE_INTERVAL=0 -- "${CPU_PINCMD[@]}" "$@" ;;
        default) start_server "cpu-$kind-$cfg" 1 IPLIMIT_MAX=1000 -- "${CPU_PINCMD[@]}" "$@" ;;
        thread) start_server "cpu-$kind-$cfg" 1 IPLIMIT_MAX=1000 IPLIMIT_RECONCILE_INTERVAL=3600 \
            -- "${CPU_PINCMD[@]}" "$@" ;;
        inline) start_server "cpu-$kind-$cfg" 1 IPLIMIT_MAX=1000 IPLIMIT_RECONCILE_THREAD=0 \
            -- "${CPU_PINCMD[@]}" "$@" ;;
        passthru-pages* | passthru-lines*)
            local stride=4096 k=${cfg#passthru-pages}
            [ "$k" != "$cfg" ] || { stride=128 k=${cfg#passthru-lines}; }
            start_server "cpu-$kind-$cfg" 0 LD_PRELOAD="$BIN/passthru.so" PASSTHRU_PAGES="$k" \
                PASSTHRU_STRIDE=$stride -- "${CPU_PINCMD[@]}" "$@" ;;
        base-default)
            [ -n "$CPU_BASE_LIB" ] || { log "cpu: base-default needs CPU_BASE_LIB"; return 1; }
            start_server "cpu-$kind-$cfg" 0 LD_PRELOAD="$CPU_BASE_LIB" IPLIMIT_MAX=1000 \
                -- "${CPU_PINCMD[@]}" "$@" ;;
        passthru | passthru-thread | passthru-exited)
            local mode=${cfg#passthru}; mode=${mode#-}; mode=${mode/thread/sleep}; mode=${mode/exited/exit}
            start_server "cpu-$kind-$cfg" 0 LD_PRELOAD="$BIN/passthru.so" PASSTHRU_THREAD="$mode" \
                -- "${CPU_PINCMD[@]}" "$@" ;;
        *=*) start_server "cpu-$kind-${cfg%%=*}" 0 LD_PRELOAD="${cfg#*=}" IPLIMIT_MAX=1000 \
            IPLIMIT_RECONCILE_INTERVAL=0 -- "${CPU_PINCMD[@]}" "$@" ;;
        esac || return 1
        CPU_IDS+=("$SRV_PID")
        CPU_PORTS+=("$SRV_PORT")
    done
    cpu_warm
}

# cpu_warm: CPU_WARM seconds of churn against each new server, not
# measured: the figure is a running server's, and a new one's first
# reconciliation run (faulting in the connection table's pages, a full
# dump that learns the local addresses: about 30 ms, once per service
# start; BENCHMARKS.md) and its first page faults are behind it.
cpu_warm() {
    local i
    [ "$CPU_WARM" -gt 0 ] || return 0
    for i in "${!CPU_IDS[@]}"; do
        "${CPU_CLIENTCMD[@]}" "$BIN/ilbench" -p "${CPU_PORTS[$i]}" -t "$CPU_WARM" $CHURN_CLIENT >/dev/null
    done
}

cpu_stop() {
    local i
    for i in "${CPU_IDS[@]}"; do stop_server "$i"; done
    CPU_IDS=()
}

cpu_kind() {
    local kind=$1; shift
    local pin=() cpin=()
    if [ -n "$CPU_SCPU" ]; then
        pin=(taskset -c "$CPU_SCPU")
        cpin=(taskset -c "$CPU_CCPUS")
    fi
    if [ "$CPU_NICE" != 0 ]; then
        pin=(nice -n "$CPU_NICE" "${pin[@]}")
        cpin=(nice -n "$CPU_NICE" "${cpin[@]}")
    fi
    CPU_PINCMD=("${pin[@]}") CPU_CLIENTCMD=("${cpin[@]}")
    cpu_start "$kind" "$@" || return 1
    local n=${#CPU_CFGS[@]} tick=$((1000000000 / HZ)) r k i t0 t1 w0 w1 c0 c1 out ok
    for r in $(seq "$CPU_REPS"); do
        if [ "$CPU_FRESH" -gt 0 ] && [ "$r" -gt 1 ] && [ $(((r - 1) % CPU_FRESH)) -eq 0 ]; then
            cpu_stop
            cpu_start "$kind" "$@" || return 1
        fi
        for k in $(seq 0 $((n - 1))); do
            i=$(((k + r) % n))
            t0=$(cpu_ns "${CPU_IDS[$i]}")
            c0=$([ -n "$CPU_SCPU" ] && cpu_ticks "$CPU_SCPU")
            w0=$(date +%s%N)
            out=$("${CPU_CLIENTCMD[@]}" "$BIN/ilbench" -p "${CPU_PORTS[$i]}" -t "$CPU_SECS" $CHURN_CLIENT)
            w1=$(date +%s%N)
            c1=$([ -n "$CPU_SCPU" ] && cpu_ticks "$CPU_SCPU")
            t1=$(cpu_ns "${CPU_IDS[$i]}")
            ok=$(field "$out" ok)
            # other_pct: the server's CPU busy with anything but the server,
            # in % of the run's wall time (ticks of 1/HZ s: +-1 tick). The
            # awk prints two key=value words, or none when unpinned.
            # shellcheck disable=SC2046
            record cpu "$kind-${CPU_CFGS[$i]%%=*}" "$r" $out \
                cpu_ns_conn="$(awk -v d=$((t1 - t0)) -v n="${ok:-0}" 'BEGIN { if (n > 0) printf "%.0f", d / n; else print "NA" }')" \
                $(awk -v a="$c0" -v b="$c1" -v s=$((t1 - t0)) -v w=$((w1 - w0)) -v tick="$tick" 'BEGIN {
                    if (a == "" || b == "" || w <= 0) exit
                    split(a, x, " "); split(b, y, " ")
                    o = ((y[1] - x[1]) * tick - s) * 100 / w; if (o < 0) o = 0
                    printf "other_pct=%.1f steal_pct=%.1f\n", o, (y[2] - x[2]) * tick * 100 / w }')
        done
    done
    cpu_stop
}

# pair_ratios SECTION CFG_B CFG_A KEY [MAX_OTHER]: "median min max n lo hi" of
# B_r / A_r over rounds r; with MAX_OTHER, only the rounds in which both
# runs had the server's CPU busy with others at most MAX_OTHER %.
pair_ratios() {
    awk -v s="$1" -v b="$2" -v a="$3" -v k="$4" -v mo="${5:-}" '
        $1 == s && ($2 == a || $2 == b) { for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) { if ($2 == a) A[$3] = kv[2]; else B[$3] = kv[2] } if (kv[1] == "other_pct" && mo != "" && kv[2] + 0 > mo + 0) busy[$3] = 1 } }
        END {
            for (r in A) if ((r in B) && A[r] > 0 && !(r in busy)) v[n++] = B[r] / A[r]
            if (!n) { print "NA NA NA 0 NA NA"; exit }
            for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
            # 95% confidence interval of the median, distribution-free: the
            # order statistics of ranks n/2 -+ 1.96 sqrt(n)/2 (1-based).
            lo = int(n / 2 - 0.98 * sqrt(n)); if (lo < 1) lo = 1
            hi = int(n / 2 + 1 + 0.98 * sqrt(n) + 0.999); if (hi > n) hi = n
            printf "%.3f %.3f %.3f %d %.3f %.3f\n", n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v[0], v[n - 1], n, v[lo - 1], v[hi - 1]
        }' "$RES"
}

section_cpu() {
    local ncpu load0 load1
    ncpu=$(nproc)
    CPU_SCPU='' CPU_CCPUS=''
    if [ "$CPU_PIN" == 1 ] && [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null; then
        CPU_SCPU=$((ncpu - 1))
        CPU_CCPUS=0-$((ncpu - 2))
    fi
    read -ra CPU_CFGS <<<"${CPU_CONFIGS:-none unpoliced counting default}"
    [ -n "$CPU_BASE_LIB" ] && CPU_CFGS+=("base=$CPU_BASE_LIB")
    read -ra kinds <<<"${CPU_SERVERS:-prefork-w2 evloop}"
    load0=$(cut -d' ' -f1-3 /proc/loadavg)
    log "cpu: ${kinds[*]}, ${CPU_CFGS[*]}, $CPU_REPS rounds of ${CPU_SECS}s, server on CPU ${CPU_SCPU:-any}"
    local kind
    for kind in "${kinds[@]}"; do
        case $kind in
        prefork-w*) cpu_kind "$kind" "$TBIN/prefork" -l 127.0.0.1 -p 0 -w "${kind#prefork-w}" ;;
        evloop) cpu_kind evloop "$TBIN/evloop" -l 127.0.0.1 -p 0 ;;
        esac
    done
    load1=$(cut -d' ' -f1-3 /proc/loadavg)
    md "## Server CPU time per accepted-and-closed connection (schedstat over the server's threads; goal: default <= 1.02 x none)"
    md ""
    md "$CPU_REPS rounds of ${CPU_SECS} s, new server processes every $CPU_FRESH rounds (0: never); server on CPU ${CPU_SCPU:-any}, ilbench on ${CPU_CCPUS:-any}, nice $CPU_NICE; load average $load0 at the start, $load1 at the end; quiet rounds: both runs had the server's CPU busy with others at most ${CPU_MAX_OTHER}% of the time (pinned runs only).${CPU_BASE_LIB:+ base: $CPU_BASE_LIB (counting).}"
    md ""
    md "| server | configuration | ns/conn median (min-max), n | connections/s median | / none: round ratios, median (min-max; 95% CI of the median) | the same, quiet rounds only (n) | server's CPU busy with others, % median (max); steal % median | goal |"
    md "|---|---|---|---|---|---|---|---|"
    local cfg m mn mx n rate pr pmn pmx qr qmn qmx qn other omx steal goal
    for kind in "${kinds[@]}"; do
        for cfg in "${CPU_CFGS[@]}"; do
            cfg=${cfg%%=*}
            read -r m mn mx n <<<"$(stats cpu "$kind-$cfg" cpu_ns_conn)"
            rate=$(stats cpu "$kind-$cfg" rate | cut -d' ' -f1)
            read -r other _ omx _ <<<"$(stats cpu "$kind-$cfg" other_pct)"
            steal=$(stats cpu "$kind-$cfg" steal_pct | cut -d' ' -f1)
            if [ "$cfg" == none ]; then pr="1" qr="1"; goal=; else
                read -r pr pmn pmx _ plo phi <<<"$(pair_ratios cpu "$kind-$cfg" "$kind-none" cpu_ns_conn)"
                pr="$pr ($pmn-$pmx; 95% CI of the median $plo-$phi)"
                read -r qr qmn qmx qn _ _ <<<"$(pair_ratios cpu "$kind-$cfg" "$kind-none" cpu_ns_conn "$CPU_MAX_OTHER")"
                qr="$qr ($qmn-$qmx), n=$qn"
                [ -n "$CPU_SCPU" ] || qr="n/a"
                goal=$([ "$cfg" == default ] && met "${pr%% *}" "<=" 1.02)
            fi
            md "| $kind | $cfg | $m ($mn-$mx), n=$n | $rate | $pr | $qr | $other ($omx); $steal | $goal |"
        done
    done
    [ -n "$CPU_BASE_LIB" ] && for kind in "${kinds[@]}"; do
        read -r pr pmn pmx _ <<<"$(pair_ratios cpu "$kind-counting" "$kind-base" cpu_ns_conn)"
        md ""
        md "$kind: counting / base, round ratios: median $pr ($pmn-$pmx)"
    done
    md ""
}
