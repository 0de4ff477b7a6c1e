# Section "syscalls" of bench/run.sh (sourced by it): system calls per
# accepted-and-closed connection, with and without the library, counted by
# `strace -f -c` over every process and thread of the server.
#
# Each configuration runs twice, over SYSCALLS_N1 and SYSCALLS_N2 connections
# (a fresh server each time), and the figure is the difference of the two
# totals over the difference of the counts: start-up and shut-down calls
# (the library's segment, the server's fork) cancel out. The client is
# ilbench (PING/PONG, then an RST close), 4 connections in flight.
# Goal (issue 17): with the library the same number as without, +-0.05.

SYSCALLS_N1=${SYSCALLS_N1:-1000}
SYSCALLS_N2=${SYSCALLS_N2:-5000}

# syscalls_total PRELOAD N ENV... -- SERVER...: total calls strace counted
# for a server that served N connections, or NA.
syscalls_total() {
    local pre=$1 n=$2; shift 2
    local envs=(IPLIMIT_LOG=none)
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    [ "$pre" -eq 1 ] && envs+=(LD_PRELOAD="$LIB")
    local sum=$TMP/strace.sum
    rm -f "$sum" "$TMP/sc.out"
    # strace runs the server with the environment (LD_PRELOAD applies to the
    # server only: strace itself is started without it).
    local eargs=() e
    for e in "${envs[@]}"; do eargs+=(-E "$e"); done
    strace -f -c -o "$sum" "${eargs[@]}" "$@" >"$TMP/sc.out" 2>"$TMP/sc.err" </dev/null &
    local spid=$! i port= child=
    PIDS+=("$spid")
    for i in $(seq 200); do
        port=$(sed -n 's/.*ready port=\([0-9]*\).*/\1/p' "$TMP/sc.out")
        [ -n "$port" ] && break
        kill -0 "$spid" 2>/dev/null || break
        sleep 0.05
    done
    [ -n "$port" ] || { log "syscalls: server did not start: $(tail -3 "$TMP/sc.err")"; stop_server "$spid"; echo NA; return; }
    "$BIN/ilbench" -p "$port" -c 4 -n "$n" -t 120 -s 127.2.0.1 -N 64 >"$TMP/sc.bench" 2>&1
    # The server is strace's child: TERM it, and strace writes its summary
    # when the last traced process is gone.
    child=$(ps -o pid= --ppid "$spid" 2>/dev/null | head -n 1)
    [ -n "$child" ] && kill -TERM $child 2>/dev/null
    for i in $(seq 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
    stop_server "$spid"
    local ok
    ok=$(field "$(cat "$TMP/sc.bench")" ok)
    [ "${ok:-0}" -eq "$n" ] || { log "syscalls: $ok of $n connections ok"; echo NA; return; }
    cp "$sum" "$TMP/strace.last"
    # "total steady": all calls but epoll_wait and failed calls (EAGAIN
    # accepts and reads), whose number follows the timing of the run.
    awk '/^-/ || /^%/ { next }
         NF >= 5 { name = $NF; calls = $4; err = (NF == 6) ? $5 : 0
                   if (name == "total") total = calls
                   else if (name != "epoll_wait" && name != "epoll_pwait") steady += calls - err }
         END { if (total == "") print "NA"; else print total, steady + 0 }' "$sum"
}

# syscalls_by_name FILE: "name calls" per line from a strace -c summary.
syscalls_by_name() {
    awk '/^-/ || /^%/ { next } NF >= 5 && $NF != "total" { print $NF, $4 }' "$1"
}

# syscalls_config TAG PRELOAD ENV... -- SERVER...: records per_conn.
syscalls_config() {
    local tag=$1 pre=$2; shift 2
    local t1 s1 t2 s2
    read -r t1 s1 <<<"$(syscalls_total "$pre" "$SYSCALLS_N1" "$@")"
    syscalls_by_name "$TMP/strace.last" >"$TMP/names.$tag.1"
    read -r t2 s2 <<<"$(syscalls_total "$pre" "$SYSCALLS_N2" "$@")"
    syscalls_by_name "$TMP/strace.last" >"$TMP/names.$tag.2"
    local per='BEGIN { if (a == "NA" || b == "NA" || a == "" || b == "") print "NA"; else printf "%.3f", (b - a) / (n2 - n1) }'
    record syscalls "$tag" 1 n1="$SYSCALLS_N1" total1="$t1" n2="$SYSCALLS_N2" total2="$t2" \
        per_conn="$(awk -v a="$t1" -v b="$t2" -v n1="$SYSCALLS_N1" -v n2="$SYSCALLS_N2" "$per")" \
        steady_per_conn="$(awk -v a="$s1" -v b="$s2" -v n1="$SYSCALLS_N1" -v n2="$SYSCALLS_N2" "$per")"
    # Per call name, per connection, for the table of what differs.
    awk -v n1="$SYSCALLS_N1" -v n2="$SYSCALLS_N2" 'FNR == NR { a[$1] = $2; next } { b[$1] = $2 }
        END { for (k in b) printf "%s %.3f\n", k, (b[k] - a[k]) / (n2 - n1)
              for (k in a) if (!(k in b)) printf "%s %.3f\n", k, -a[k] / (n2 - n1) }' \
        "$TMP/names.$tag.1" "$TMP/names.$tag.2" | sort >"$OUT/syscalls.$tag.txt"
}

# syscalls_get TAG KEY: the recorded value.
syscalls_get() {
    awk -v t="$1" -v k="$2" '$1 == "syscalls" && $2 == t { for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$RES"
}

section_syscalls() {
    command -v strace >/dev/null || { md "## System calls per connection: skipped (no strace)"; md ""; return; }
    log "syscalls: strace -f -c, $SYSCALLS_N1 and $SYSCALLS_N2 connections per configuration"
    md "## System calls per accepted-and-closed connection (strace -f -c; goal: with = without +-0.05)"
    md ""
    md "All calls, and in brackets the steady ones (all but epoll_wait and failed calls, whose number follows the timing of a run: how many connections one epoll_wait or accept finds)."
    md ""
    md "| server | without | with, reconciliation off | added | goal | with, default (reconciler thread) | added |"
    md "|---|---|---|---|---|---|---|"
    local s srv
    for s in prefork-w2 evloop; do
        if [ "$s" == evloop ]; then srv=("$TBIN/evloop" -l 127.0.0.1 -p 0)
        else srv=("$TBIN/prefork" -l 127.0.0.1 -p 0 -w 2); fi
        syscalls_config "$s-without" 0 -- "${srv[@]}"
        syscalls_config "$s-recoff" 1 IPLIMIT_RECONCILE_INTERVAL=0 -- "${srv[@]}"
        syscalls_config "$s-default" 1 -- "${srv[@]}"
        local c k a b d da db dd goal
        for c in without recoff default; do
            for k in per_conn steady_per_conn; do
                eval "v_${c}_$k=\$(syscalls_get \"$s-$c\" $k)"
            done
        done
        diff3() { awk -v x="$1" -v y="$2" 'BEGIN { if (x == "NA" || y == "NA" || x == "" || y == "") print "NA"; else printf "%+.3f", x - y }'; }
        db=$(diff3 "$v_recoff_per_conn" "$v_without_per_conn")
        dd=$(diff3 "$v_default_per_conn" "$v_without_per_conn")
        local sb sd
        sb=$(diff3 "$v_recoff_steady_per_conn" "$v_without_steady_per_conn")
        sd=$(diff3 "$v_default_steady_per_conn" "$v_without_steady_per_conn")
        goal=$(awk -v d="$sb" 'BEGIN { if (d == "NA") print "n/a"; else print (d <= 0.05 && d >= -0.05) ? "met" : "NOT met" }')
        md "| $s | $v_without_per_conn ($v_without_steady_per_conn) | $v_recoff_per_conn ($v_recoff_steady_per_conn) | $db ($sb) | $goal (steady) | $v_default_per_conn ($v_default_steady_per_conn) | $dd ($sd) |"
    done
    md ""
    md "Per connection = (calls over $SYSCALLS_N2 connections - calls over $SYSCALLS_N1) / $((SYSCALLS_N2 - SYSCALLS_N1)), each from a fresh server; the default configuration's reconciliation runs (every 10 s, one sock_diag dump each, sometimes a second) fall in the runs by chance. Per call name: build/bench/syscalls.*.txt."
    md ""
}
