#!/usr/bin/env bats
# iplimit under Debian's real kamailio binary (issue 3).
# Run from the top of the tree: bats --tap tests/e2e
# Needs: kamailio, sip-tester (sipp), build/libiplimit.so, build/tests/sipconn.
# Kamailio logs of each test: build/e2e-logs/NN.kamailio.K.log

load helpers

teardown() {
    e2e_teardown
}

@test "0: kamailio and sipp are installed" {
    if [ -z "$KAMAILIO" ] || [ ! -x "$KAMAILIO" ]; then
        fail "kamailio is not installed (apt-get install kamailio): the e2e suite cannot run and counts as failed"
    fi
    command -v sipp >/dev/null || fail "sipp is not installed (apt-get install sip-tester)"
    run "$KAMAILIO" -v
    [ "$status" -eq 0 ]
    [[ "$output" == *"USE_TCP"* ]] || fail "kamailio built without TCP"
    echo "# $(head -n1 <<<"$output")" >&3
}

@test "baseline: without iplimit kamailio answers all six connections from 127.0.0.2" {
    e2e_require --no-lib
    kam_start --no-preload
    expect_conns 127.0.0.2 6 6 0
    assert_eq "OPTIONS seen from 127.0.0.2" 6 "$(kam_options_from tcp 127.0.0.2)"
    kam_healthy
}

@test "a: limit 3: of six connections from 127.0.0.2 three get 200 OK, three are reset unread" {
    e2e_require
    kam_start IPLIMIT_MAX=3
    expect_conns 127.0.0.2 6 3 3
    local out=$LAST_CONNS
    # The first three are answered, the last three reset (in this order).
    assert_eq "outcomes in order" "ok ok ok reset reset reset" \
        "$(awk '$1 == "conn" {print $4}' <<<"$out" | xargs)"
    # Kamailio read and handled exactly the three answered ones ...
    assert_eq "OPTIONS handled from 127.0.0.2" 3 "$(kam_options_from tcp 127.0.0.2)"
    local p
    for p in $(ok_ports "$out"); do
        grep -q "e2e: OPTIONS from tcp:127.0.0.2:$p\$" "$KAM_LOG" || fail "answered port $p not in kamailio log"
    done
    # ... and never a byte of the others.
    for p in $(rejected_ports "$out"); do
        ! grep -q "127.0.0.2:$p\b" "$KAM_LOG" || fail "kamailio saw rejected connection from port $p"
    done
    # Kamailio has no accept error; iplimit logged the rejection.
    ! grep -q 'error while accepting' "$KAM_LOG" || fail "kamailio logged an accept error"
    grep -qE '^iplimit\[[0-9]+\]: rejected 127\.0\.0\.2: 3 open, limit 3$' "$KAM_LOG" ||
        fail "no 'iplimit[PID]: rejected 127.0.0.2: 3 open, limit 3' line in the log"
    # Nothing is left over on the server side for the rejected ones.
    assert_eq "established connections from 127.0.0.2 after the client left" 0 \
        "$(server_conns 127.0.0.2 | wc -l)"
    # Ten waiting in the listen queue at once: tcp main (level-triggered
    # epoll, blocking listener, one accept per wake-up) gets EAGAIN for each
    # refused one and is woken again for the rest.
    expect_conns_parallel 127.0.0.6 10 3 7
    assert_eq "OPTIONS handled from 127.0.0.6" 3 "$(kam_options_from tcp 127.0.0.6)"
    kam_healthy
}

@test "a2: limit 3 with tcp_poll_method=epoll_et (non-blocking listener, accept until EAGAIN)" {
    e2e_require
    KAM_EXTRA_ARGS=(-A E2E_EPOLL_ET)
    kam_start IPLIMIT_MAX=3
    grep -q 'using epoll_et io watch method' "$KAM_LOG" || fail "kamailio does not use epoll_et"
    expect_conns 127.0.0.2 6 3 3
    assert_eq "OPTIONS handled from 127.0.0.2" 3 "$(kam_options_from tcp 127.0.0.2)"
    # Several waiting at once: tcp main accepts them in one loop until
    # EAGAIN; a refusal must not end that loop early (with edge-triggered
    # epoll the rest would wait for the next new connection).
    expect_conns_parallel 127.0.0.3 10 3 7
    hold_start burst 127.0.0.4 2
    expect_conns_parallel 127.0.0.4 6 1 5
    expect_conns_parallel 127.0.0.5 3 3 0
    ! grep -q 'error while accepting' "$KAM_LOG" || fail "kamailio logged an accept error"
    kam_healthy
}

@test "b: allowlisted 127.0.0.9 (the load balancer) gets all 50 connections answered" {
    e2e_require
    kam_start IPLIMIT_MAX=3 IPLIMIT_ALLOW=127.0.0.9/32
    hold_start lb 127.0.0.9 50
    assert_eq "connections from 127.0.0.9" \
        "summary ok=50 reset=0 closed=0 timeout=0 failed=0 other=0" "$(hold_out lb | grep '^summary')"
    assert_eq "established from 127.0.0.9 on the server" 50 "$(server_conns 127.0.0.9 | wc -l)"
    # While the 50 are open, the limit still holds for everyone else.
    expect_conns 127.0.0.2 4 3 1
    assert_eq "OPTIONS handled from 127.0.0.9" 50 "$(kam_options_from tcp 127.0.0.9)"
    assert_eq "iplimit rejections of 127.0.0.9" 0 "$(kam_rejections 127.0.0.9)"
    kam_healthy
}

@test "c: connections idle past Kamailio's reader release still count; closing one frees a slot" {
    e2e_require
    kam_start IPLIMIT_MAX=3
    hold_start idle 127.0.0.2 3
    assert_eq "first three" "summary ok=3 reset=0 closed=0 timeout=0 failed=0 other=0" \
        "$(hold_out idle | grep '^summary')"
    # Right after the request each connection is held by two processes:
    # tcp main and the reader it was handed to (by SCM_RIGHTS).
    local start now held
    start=$(now_ms)
    held=$(server_conns 127.0.0.2)
    assert_eq "connections on the server" 3 "$(wc -l <<<"$held")"
    assert_eq "connections held by two processes before the release" 3 \
        "$(awk '$2 == 2' <<<"$held" | wc -l)"
    # Kamailio's reader closes its copy after ~5 s idle (TCP_CHILD_TIMEOUT,
    # checked every few seconds) and hands the connection back to tcp main.
    # Observe it, bounded at 20 s: each connection then is held by one
    # process only, the same one (tcp main) for all three.
    while :; do
        held=$(server_conns 127.0.0.2)
        [ "$(awk '$2 == 1' <<<"$held" | wc -l)" -eq 3 ] && break
        now=$(now_ms)
        [ $((now - start)) -lt 20000 ] || fail "readers did not release within 20 s:"$'\n'"$held"
        sleep 0.1
    done
    echo "# readers released the connections after $(($(now_ms) - start)) ms" >&3
    assert_eq "processes holding the released connections" 1 \
        "$(awk '{print $3}' <<<"$held" | sort -u | wc -l)"
    # The readers' close() of their copies released nothing: still at limit.
    hold_cmd idle open
    hold_wait idle '^conn 3 ' 1 5000
    assert_eq "4th connection after the release" reset "$(hold_out idle | awk '$1 == "conn" && $2 == 3 {print $4}')"
    # The client closes its first connection; once tcp main has closed its
    # fd (no server socket left for that client port) a new one is accepted.
    local port0
    port0=$(hold_out idle | awk '$1 == "conn" && $2 == 0 {print $3}')
    hold_cmd idle "close 0"
    hold_wait idle '^closed 0$' 1 2000
    server_socket_gone 127.0.0.2 "$port0" 10000
    # tcp main's close() returns before ss stops listing the socket can be
    # observed, but the library may release the slot just after the real
    # close(): allow it 200 ms.
    sleep 0.2
    hold_cmd idle open
    hold_wait idle '^conn 4 ' 1 5000
    assert_eq "new connection after one was closed" ok "$(hold_out idle | awk '$1 == "conn" && $2 == 4 {print $4}')"
    hold_cmd idle open
    hold_wait idle '^conn 5 ' 1 5000
    assert_eq "one more: at the limit again" reset "$(hold_out idle | awk '$1 == "conn" && $2 == 5 {print $4}')"
    # The idle connections still work: tcp main hands them to a reader again.
    hold_cmd idle ping
    hold_wait idle '^pinged ' 1 15000
    assert_eq "requests on the three open connections" "pinged ok=3 bad=0" "$(hold_out idle | grep '^pinged')"
    assert_eq "OPTIONS handled from 127.0.0.2" 7 "$(kam_options_from tcp 127.0.0.2)"
    kam_healthy
}

# SIPp 3.6.1 (Debian 12) with "-t tn" cannot survive a call socket being
# reset after it sent: the read error is fatal (exit 255) unless
# -max_reconnect is given, and then it reconnects a socket it has already
# freed. So every call runs in its own sipp process (-t tn, -m 1): a call
# that succeeds exits 0, a call whose connection is refused exits non-zero
# with "Connection reset by peer" (or "Broken pipe") in its error log.

# sipp_call SRC HOLD_MS TAG: one call from SRC in the background: OPTIONS,
# expect 200, keep the connection HOLD_MS.  Bounded by timeout(1).
# Each sipp gets its own local port (-p): without it every sipp binds 5060 on
# its source address, and parallel calls (or another run) collide (errno 98).
SIPP_LOCAL_PORT=$((10000 + ($$ % 150) * 64)) # below the Kamailio ports and the ephemeral range
sipp_call() {
    local src=$1 hold=$2 tag=$3
    mkdir -p "$E2E_T/$tag"
    SIPP_LOCAL_PORT=$((SIPP_LOCAL_PORT + 1))
    ( cd "$E2E_T/$tag" && exec timeout -k 5 30 sipp "127.0.0.1:$PORT" -sf "$E2E_DIR/options-hold.xml" \
        -t tn -i "$src" -p "$SIPP_LOCAL_PORT" -m 1 -l 1 -d "$hold" -max_socket 100 -nostdin -timeout 20s \
        -trace_stat -stf stat.csv -trace_err -error_file err.log \
        >out 2>&1 3>&- ) &
    BG_PIDS+=($!)
    SIPP_PIDS+=("$!:$tag")
}

# sipp_collect: waits for every sipp_call (each bounded) and counts per
# source in SIPP_OK_<tag prefix> / SIPP_RESET_<prefix>; any other outcome
# fails the test.
sipp_collect() {
    local entry pid tag rc src
    for entry in "${SIPP_PIDS[@]}"; do
        pid=${entry%%:*} tag=${entry#*:} src=${tag%%-*}
        rc=0
        wait "$pid" || rc=$?
        if [ "$rc" -eq 0 ]; then
            grep -q ';1;0;' <(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i; next }
                END { print ";" $h["SuccessfulCall(C)"] ";" $h["FailedCall(C)"] ";" }' "$E2E_T/$tag/stat.csv") ||
                fail "sipp $tag exited 0 without one successful call"
            eval "SIPP_OK_$src=\$((\${SIPP_OK_$src:-0} + 1))"
        elif grep -qE 'Connection reset by peer|Broken pipe' "$E2E_T/$tag/err.log" 2>/dev/null; then
            eval "SIPP_RESET_$src=\$((\${SIPP_RESET_$src:-0} + 1))"
        else
            cat "$E2E_T/$tag/out" "$E2E_T/$tag/err.log" >&2 2>/dev/null
            fail "sipp $tag exited $rc without a connection reset"
        fi
    done
    BG_PIDS=()
}

@test "d: sipp over TCP (-t tn) from three sources at once: exactly the allowed calls succeed" {
    e2e_require
    command -v sipp >/dev/null || fail "sipp is not installed (apt-get install sip-tester)"
    kam_start IPLIMIT_MAX=3 IPLIMIT_ALLOW=127.0.0.9/32 IPLIMIT_LIMITS=127.0.0.4/32=5
    # 8 calls from each of three sources, all at once; an answered call keeps
    # its connection 6 s, far longer than it takes to start all 24.
    SIPP_PIDS=()
    local i start
    start=$(now_ms)
    for i in 1 2 3 4 5 6 7 8; do
        sipp_call 127.0.0.3 6000 3-$i
        sipp_call 127.0.0.4 6000 4-$i
        sipp_call 127.0.0.9 6000 9-$i
    done
    sipp_collect
    echo "# 24 sipp calls took $(($(now_ms) - start)) ms" >&3
    assert_eq "sipp calls from 127.0.0.3 (default limit 3): ok/reset" "3/5" "${SIPP_OK_3:-0}/${SIPP_RESET_3:-0}"
    assert_eq "sipp calls from 127.0.0.4 (IPLIMIT_LIMITS 5): ok/reset" "5/3" "${SIPP_OK_4:-0}/${SIPP_RESET_4:-0}"
    assert_eq "sipp calls from 127.0.0.9 (allowlisted): ok/reset" "8/0" "${SIPP_OK_9:-0}/${SIPP_RESET_9:-0}"
    assert_eq "OPTIONS handled from 127.0.0.3" 3 "$(kam_options_from tcp 127.0.0.3)"
    assert_eq "OPTIONS handled from 127.0.0.4" 5 "$(kam_options_from tcp 127.0.0.4)"
    assert_eq "OPTIONS handled from 127.0.0.9" 8 "$(kam_options_from tcp 127.0.0.9)"
    kam_healthy
}

@test "e: kill -9 of the whole kamailio tree and a restart leave no stale counts" {
    e2e_require
    kam_start IPLIMIT_MAX=3
    hold_start full 127.0.0.2 4
    assert_eq "before the kill" "summary ok=3 reset=1 closed=0 timeout=0 failed=0 other=0" \
        "$(hold_out full | grep '^summary')"
    kam_kill9
    hold_stop full
    # Same port, same settings: the first connections are accepted again.
    kam_start IPLIMIT_MAX=3
    expect_conns 127.0.0.2 4 3 1
    assert_eq "OPTIONS handled from 127.0.0.2 after the restart" 3 "$(kam_options_from tcp 127.0.0.2)"
    kam_healthy
}

@test "f: IPv6 over [::1]: limit 3 applies to ::1 and is separate from IPv4" {
    e2e_require
    kam_start IPLIMIT_MAX=3
    hold_start v6 ::1 6
    assert_eq "connections from ::1" "summary ok=3 reset=3 closed=0 timeout=0 failed=0 other=0" \
        "$(hold_out v6 | grep '^summary')"
    assert_eq "OPTIONS handled from ::1" 3 "$(kam_options_from tcp ::1)"
    grep -qE '^iplimit\[[0-9]+\]: rejected ::/64: 3 open, limit 3$' "$KAM_LOG" ||
        fail "no 'iplimit[PID]: rejected ::/64: 3 open, limit 3' line (::1 keyed by its /64) in the log"
    # IPv4 sources have their own counts while ::1 is at its limit.
    expect_conns 127.0.0.2 4 3 1
    # UDP over IPv6 is untouched.
    run "$E2E_SIPCONN" -u -s ::1 -d ::1 -p "$PORT" -t 2000
    assert_eq "UDP OPTIONS over IPv6" "udp ok" "$output"
    kam_healthy
}

@test "f2: IPv6 allowlist and per-network limit for [::1]" {
    e2e_require
    kam_start IPLIMIT_MAX=3 IPLIMIT_LIMITS=::/64=5
    expect_conns ::1 7 5 2
    kam_stop
    kam_start IPLIMIT_MAX=3 IPLIMIT_ALLOW=::1/128
    expect_conns ::1 10 10 0
    expect_conns 127.0.0.2 4 3 1
    kam_healthy
}

@test "g: kamailio stays healthy through repeated rejections and allowlisted bursts" {
    e2e_require
    kam_start IPLIMIT_MAX=3 IPLIMIT_ALLOW=127.0.0.9/32
    local round
    for round in 1 2 3; do
        expect_conns 127.0.0.2 20 3 17
        expect_conns 127.0.0.9 30 30 0
        expect_conns_parallel 127.0.0.2 20 3 17
        expect_conns_parallel 127.0.0.9 30 30 0
        expect_conns ::1 5 3 2
        run "$E2E_SIPCONN" -u -s 127.0.0.2 -d 127.0.0.1 -p "$PORT" -t 2000
        assert_eq "UDP OPTIONS in round $round" "udp ok" "$output"
        kam_healthy
    done
    # A fresh source gets its full quota at the end.
    expect_conns 127.0.0.5 4 3 1
    assert_eq "OPTIONS handled from 127.0.0.2" 18 "$(kam_options_from tcp 127.0.0.2)"
    assert_eq "OPTIONS handled from 127.0.0.9" 180 "$(kam_options_from tcp 127.0.0.9)"
    kam_healthy
}

@test "h1: IPLIMIT_LIMITS per-network overrides, longest prefix wins" {
    e2e_require
    kam_start IPLIMIT_MAX=3 IPLIMIT_LIMITS=127.0.0.0/24=5,127.0.0.6/32=1
    expect_conns 127.0.0.5 7 5 2
    expect_conns 127.0.0.6 3 1 2
    expect_conns 127.0.1.7 5 3 2
    kam_healthy
}

@test "h2: a libconfig file (IPLIMIT_CONFIG) gives the limits it says" {
    e2e_require
    PORT=$(pick_port)
    cat >"$E2E_T/iplimit.conf" <<EOF
# iplimit e2e test configuration
max = 2;
allow = [ "127.0.0.9/32" ];
limits = (
    { network = "127.0.0.0/24"; max = 4; },
    { network = "127.0.0.6/32"; max = 1; }
);
ports = [ $PORT ];
action = "rst";
log = "stderr";
EOF
    kam_start IPLIMIT_CONFIG="$E2E_T/iplimit.conf"
    expect_conns 127.0.0.5 6 4 2
    expect_conns 127.0.0.6 3 1 2
    expect_conns 127.0.1.7 4 2 2
    expect_conns 127.0.0.9 10 10 0
    kam_healthy
}

@test "h3: the shipped conf/iplimit.conf loads; its ports setting and environment overrides apply" {
    e2e_require
    [ -f "$E2E_ROOT/conf/iplimit.conf" ] || fail "conf/iplimit.conf missing"
    # The sample polices SIP's standard ports only: our test port is not
    # limited at all.
    kam_start IPLIMIT_CONFIG="$E2E_ROOT/conf/iplimit.conf" IPLIMIT_MAX=2
    expect_conns 127.0.0.2 4 4 0
    kam_stop
    # The environment overrides the file: police our port with limit 2.
    kam_start IPLIMIT_CONFIG="$E2E_ROOT/conf/iplimit.conf" IPLIMIT_MAX=2 IPLIMIT_PORTS="$PORT"
    expect_conns 127.0.0.2 4 2 2
    kam_healthy
}

@test "h4: IPLIMIT_IPV4_PREFIX=24 counts 127.0.0.2 and 127.0.0.3 together" {
    e2e_require
    kam_start IPLIMIT_MAX=3 IPLIMIT_IPV4_PREFIX=24
    hold_start two 127.0.0.2 2
    assert_eq "from 127.0.0.2" "summary ok=2 reset=0 closed=0 timeout=0 failed=0 other=0" \
        "$(hold_out two | grep '^summary')"
    expect_conns 127.0.0.3 3 1 2
    # Another /24 is a different key.
    expect_conns 127.0.1.2 3 3 0
    kam_healthy
}

@test "systemd drop-in conf/kamailio.service.d/iplimit.conf passes systemd-analyze verify" {
    local dropin=$E2E_ROOT/conf/kamailio.service.d/iplimit.conf
    [ -f "$dropin" ] || fail "$dropin missing"
    grep -q '^Environment=.*LD_PRELOAD=/usr/local/lib/libiplimit.so' "$dropin" ||
        fail "the drop-in does not preload /usr/local/lib/libiplimit.so"
    command -v systemd-analyze >/dev/null || skip "systemd-analyze not installed: drop-in not verified"
    local unit=/lib/systemd/system/kamailio.service
    [ -f "$unit" ] || skip "kamailio.service not installed: drop-in not verified"
    # A private unit directory holding Debian's unit and our drop-in.
    local d=$BATS_TEST_TMPDIR/units
    mkdir -p "$d/kamailio.service.d"
    cp "$unit" "$d/"
    cp "$dropin" "$d/kamailio.service.d/"
    run env SYSTEMD_UNIT_PATH="$d:" systemd-analyze verify --man=no "$d/kamailio.service"
    echo "$output"
    [ "$status" -eq 0 ] || fail "systemd-analyze verify failed"
    ! grep -qi 'iplimit' <<<"$output" || fail "systemd-analyze complains about the drop-in"
}
