#!/usr/bin/env bats
# Real HAProxy (Debian's) in front of real Kamailio with
# tcp_accept_haproxy=yes (docs/kamailio.md, "Behind a load balancer").
# HAProxy connects to Kamailio from its own address 127.0.0.20 with
# send-proxy-v2 or send-proxy; IPLIMIT_PROXY_FROM names that address, so
# each real client (127.0.0.x on HAProxy's frontend) has its own limit.
# Logs: build/e2e-logs/NN.kamailio.K.log and NN.haproxy.log

load helpers

HAP_SRC=127.0.0.20

setup() {
    HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
}

teardown() {
    e2e_teardown
}

# haproxy_start send-proxy|send-proxy-v2: HAProxy on 127.0.0.1:$FPORT (TCP
# mode) to Kamailio on 127.0.0.1:$PORT from $HAP_SRC, TCP health checks
# every 200 ms that carry a PROXY header too (v2 LOCAL / v1 UNKNOWN), a
# stats socket on $SPORT. Waits until a client is answered through it.
haproxy_start() {
    [ -x "$HAPROXY" ] || fail "haproxy is not installed (apt-get install haproxy)"
    FPORT=$(pick_port)
    SPORT=$(pick_port)
    HAP_LOG=$E2E_LOGDIR/$E2E_NAME.haproxy.log
    cat >"$E2E_T/haproxy.cfg" <<CFG
global
    stats socket ipv4@127.0.0.1:$SPORT level admin
    log stdout format raw local0 info
defaults
    mode tcp
    log global
    option tcplog
    retries 0
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend sip
    bind 127.0.0.1:$FPORT
    default_backend kamailio
backend kamailio
    source $HAP_SRC
    server kam 127.0.0.1:$PORT $1 check check-send-proxy inter 200 fall 1 rise 1
CFG
    "$HAPROXY" -f "$E2E_T/haproxy.cfg" -db </dev/null >"$HAP_LOG" 2>&1 3>&- &
    HAP_PID=$!
    BG_PIDS+=("$HAP_PID")
    local deadline=$(($(now_ms) + 10000))
    until [ "$(hap_stat check_status)" == L4OK ]; do
        kill -0 "$HAP_PID" 2>/dev/null || fail "haproxy exited: $(tail -5 "$HAP_LOG")"
        [ "$(now_ms)" -lt "$deadline" ] || fail "haproxy's health check of kamailio never passed"
        sleep 0.1
    done
}

# hap_stat FIELD: FIELD of the kam server line of HAProxy's "show stat".
hap_stat() {
    local out
    out=$( (exec 9<>"/dev/tcp/127.0.0.1/$SPORT" && echo "show stat" >&9 && timeout 2 cat <&9) \
        2>/dev/null) || return 0
    awk -F, -v f="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == f || $i == "# " f) col = i }
                       $1 == "kamailio" && $2 == "kam" { print $col }' <<<"$out"
}

# through SRC N: N connections from SRC to HAProxy's frontend, one OPTIONS
# each, held until all are opened; prints sipconn's output.
through() {
    "$E2E_SIPCONN" -x -s "$1" -d 127.0.0.1 -p "$FPORT" -n "$2" -t 3000 3>&-
}

# expect_through SRC N OK: exactly OK of N answered 200, the others cut
# (reset or closed: HAProxy passes the server's abort on), none timed out.
expect_through() {
    local out ok cut
    out=$(through "$1" "$2")
    echo "$out" >"$E2E_T/through.$1.out"
    ok=$(summary_of "$out" | sed -n 's/.*ok=\([0-9]*\).*/\1/p')
    cut=$(awk '$1 == "conn" && ($4 == "reset" || $4 == "closed")' <<<"$out" | wc -l)
    assert_eq "answered through haproxy from $1 ($2 opened)" "$3" "$ok"
    assert_eq "cut through haproxy from $1" $(($2 - $3)) "$cut"
    assert_eq "outcomes in order from $1" \
        "$(printf 'ok %.0s' $(seq 1 "$3"))$(printf 'cut %.0s' $(seq 1 $(($2 - $3))))" \
        "$(awk '$1 == "conn" {print ($4 == "ok" ? "ok" : "cut")}' <<<"$out" | xargs -n 100 echo | sed 's/$/ /')"
}

# One run: limit 3, two clients through HAProxy, 6 OPTIONS each.
run_haproxy_case() {
    e2e_require
    KAM_EXTRA_ARGS=(-A E2E_HAPROXY)
    kam_start IPLIMIT_MAX=3 IPLIMIT_ALLOW=$HAP_SRC IPLIMIT_PROXY_FROM=$HAP_SRC \
        IPLIMIT_RECONCILE_INTERVAL=0
    haproxy_start "$1"
    expect_through 127.0.0.2 6 3
    expect_through 127.0.0.3 6 3
    # Kamailio saw the real clients ($si), three requests each.
    assert_eq "OPTIONS from 127.0.0.2 as Kamailio saw them" 3 "$(kam_options_from tcp 127.0.0.2)"
    assert_eq "OPTIONS from 127.0.0.3 as Kamailio saw them" 3 "$(kam_options_from tcp 127.0.0.3)"
    assert_eq "OPTIONS under HAProxy's own address" 0 "$(kam_options_from tcp $HAP_SRC)"
    grep -qE "^iplimit\[[0-9]+\]: rejected 127\.0\.0\.2 via 127\.0\.0\.20: 3 open, limit 3$" "$KAM_LOG" ||
        fail "no 'rejected 127.0.0.2 via 127.0.0.20: 3 open, limit 3' line"
    # Where the six rejections were decided: at accept (the header was
    # already there) or at tcp main's own MSG_PEEK of it (reported only:
    # which one is a matter of timing).
    local stat
    stat=$("$E2E_ROOT/build/iplimit" stat --pid "$KAM_PID" --json 2>/dev/null) || true
    echo "# rejections decided at the first read (tcp main's peek): $(jq '.services[0].stats.proxy_rejected_at_read' <<<"$stat" 2>/dev/null) of 6" >&3
    # The health checks kept passing throughout.
    assert_eq "haproxy server status" UP "$(hap_stat status)"
    assert_eq "haproxy failed checks" 0 "$(hap_stat chkfail)"
    ! grep -qE 'error while accepting|invalid PROXY protocol header' "$KAM_LOG" ||
        fail "kamailio logged an accept or PROXY error"
    kam_healthy_behind_haproxy
}

# kam_healthy, except for the errors HAProxy's health checks cause by
# themselves: a check ends its connection with an RST, which Kamailio 5.6
# logs as two ERROR lines ("error reading: Connection reset by peer" naming
# HAProxy's address, then "tcp_read_req: error reading"). Those must pair
# up one to one and name HAProxy's address; any other error fails.
kam_healthy_behind_haproxy() {
    local resets reads bad deadline
    # No more checks: stop HAProxy, then wait (bounded) until Kamailio's
    # readers have logged the last ones: a check's two lines are written
    # one after the other, by two log calls.
    kill -TERM "$HAP_PID"
    wait_pid_gone "$HAP_PID" 5000 || fail "haproxy did not stop"
    deadline=$(($(now_ms) + 5000))
    while :; do
        resets=$(grep -c "error reading: Connection reset by peer (104) (\[$HAP_SRC\]:" "$KAM_LOG" || true)
        reads=$(grep -c 'tcp_read_req: error reading' "$KAM_LOG" || true)
        [ "$resets" == "$reads" ] || [ "$(now_ms)" -ge "$deadline" ] || { sleep 0.1; continue; }
        break
    done
    assert_eq "kamailio read errors that are not HAProxy check resets" "$resets" "$reads"
    bad=$(grep -E ' (ERROR|CRITICAL|ALERT|BUG):|error while accepting|segfault|core dump' "$KAM_LOG" |
        grep -vE "error reading: Connection reset by peer \(104\) \(\[$HAP_SRC\]:|tcp_read_req: error reading|tcp_read_data\(\): -> " || true)
    [ -z "$bad" ] || fail "kamailio logged errors:"$'\n'"$bad"
    assert_eq "kamailio processes (pids)" "$(echo $KAM_PIDS)" "$(echo $(kam_pids))"
    run "$E2E_SIPCONN" -u -s 127.0.0.1 -d 127.0.0.1 -p "$PORT" -t 2000
    assert_eq "UDP OPTIONS over IPv4" "udp ok" "$output"
}

@test "haproxy send-proxy-v2 -> kamailio tcp_accept_haproxy: 3 of 6 per real client" {
    run_haproxy_case send-proxy-v2
}

@test "haproxy send-proxy (v1) -> kamailio tcp_accept_haproxy: 3 of 6 per real client" {
    run_haproxy_case send-proxy
}
