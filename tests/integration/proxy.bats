#!/usr/bin/env bats
# PROXY protocol (docs/design.md, "Keys from PROXY headers"): a load balancer
# (build/tests/proxyclient, from 127.0.0.9 or ::1) in front of the evloop
# server; IPLIMIT_PROXY_FROM names it, so its connections are keyed by the
# client its header names. Counts are exact: reconciliation is off.

load helpers

BAL=127.0.0.9

setup() {
    il_setup
    [ -x "$IL_BIN/proxyclient" ] || { echo "missing $IL_BIN/proxyclient" >&2; return 1; }
    IPLIMIT_CLI=${IPLIMIT_CLI:-$IL_ROOT/build/iplimit}
    export IPLIMIT_RECONCILE_INTERVAL=0 IPLIMIT_MAX=3
}

# balancer NAME N CLIENT [PROXYCLIENT OPTIONS...]: N connections from $BAL
# (BAL_SRC overrides, DST too) whose headers name CLIENT; held until
# client_release NAME. With -g the headers wait for balancer_go NAME.
balancer() {
    local name=$1 n=$2 client=$3
    shift 3
    local src=${BAL_SRC:-$BAL} dst=${DST:-127.0.0.1}
    held_start "$name" "$IL_BIN/proxyclient" -s "$src" -d "$dst" -p "$PORT" -n "$n" \
        -c "$client" "$@"
}

# balancer_go NAME: the connections are accepted (N accepts from the
# balancer in the server's log): now send the late headers.
balancer_go() {
    wait_until 10 grep -q '^connected=' "$T/$1.out" || diag "balancer $1 did not connect" || return 1
    echo go >"$T/$1.in"
}

# balancer_result NAME "ok=3 reset=3 ...": waits for and checks the result.
balancer_result() {
    wait_until 60 grep -q '^ok=' "$T/$1.out" || diag "balancer $1 gave no result" || return 1
    local got
    got=$(grep '^ok=' "$T/$1.out")
    [ "$got" == "$2" ] || diag "balancer $1: expected '$2', got '$got'" || return 1
    # The library only peeks: every answered connection's application read
    # the header itself (HEADERS=0 when none is sent as a real header).
    local ok=${2#ok=}
    ok=${ok%% *}
    got=$(sed -n 's/^headers_seen=//p' "$T/$1.out")
    [ "$got" == "${HEADERS:-$ok}" ] || diag "balancer $1: the app read ${got:-?} headers, want ${HEADERS:-$ok}"
}

# late NAME N CLIENT WANT [OPTIONS]: N connections accepted before any
# header is sent (all pending), then header + PING on each in turn.
late() {
    local name=$1 n=$2 client=$3 want=$4
    shift 4
    balancer "$name" "$n" "$client" -g "$@"
    wait_log accept "${BAL_LOG:-$BAL}" $((${ACCEPTED_BEFORE:-0} + n)) || return 1
    balancer_go "$name"
    balancer_result "$name" "$want"
}

stat_json() {
    STAT=$("$IPLIMIT_CLI" stat --pid "$SRV_PID" --json) || diag "iplimit stat failed"
}

# key_open KEY: open count of KEY in the last stat_json ("" when absent).
key_field() {
    jq -r --arg k "$1" ".services[0].keys[] | select(.key == \$k) | .$2" <<<"$STAT"
}

expect_key() { # KEY OPEN VIA
    local open via
    open=$(key_field "$1" open)
    via=$(key_field "$1" via)
    [ "$open" == "$2" ] && [ "$via" == "$3" ] ||
        diag "key $1: expected open=$2 via=$3, got open='$open' via='$via' in $STAT"
}

@test "proxy: v2 header sent late (NLB): 3 of 6 per client, the rest cut unread; two clients independent" {
    export IPLIMIT_ALLOW=$BAL IPLIMIT_PROXY_FROM=$BAL
    server_start evloop 127.0.0.1
    late a 6 127.0.0.2 "ok=3 reset=3 eof=0 timeout=0 error=0" -v 2
    expect_err 1 "^iplimit\[[0-9]+\]: rejected 127\.0\.0\.2 via 127\.0\.0\.9: 3 open, limit 3$"
    # The server read a byte from three connections only: the others were
    # closed after a read saw EOF.
    wait_log close $BAL 3
    ACCEPTED_BEFORE=6 late b 6 127.0.0.3 "ok=3 reset=3 eof=0 timeout=0 error=0" -v 2
    stat_json
    expect_key 127.0.0.2 3 $BAL
    expect_key 127.0.0.3 3 $BAL
    expect_key $BAL "" ""
    [ "$(jq '.services[0].stats.proxy_rejected_at_read' <<<"$STAT")" == 6 ] || diag "rejected at read"
    client_release a
    client_release b
    wait_log close $BAL 12
    stat_json
    [ "$(jq '[.services[0].keys[].open] | add' <<<"$STAT")" == 0 ] || diag "counts not back to 0: $STAT"
    server_alive
}

@test "proxy: v1 header sent late: 3 of 6, the rest cut" {
    export IPLIMIT_ALLOW=$BAL IPLIMIT_PROXY_FROM=$BAL
    server_start evloop 127.0.0.1
    late a 6 127.0.0.2 "ok=3 reset=3 eof=0 timeout=0 error=0" -v 1
    expect_err 1 "^iplimit\[[0-9]+\]: rejected 127\.0\.0\.2 via 127\.0\.0\.9: 3 open, limit 3$"
    stat_json
    expect_key 127.0.0.2 3 $BAL
    server_alive
}

@test "proxy: header there at accept (v1 and v2): decided in accept, the app never sees the rest" {
    export IPLIMIT_ALLOW=$BAL IPLIMIT_PROXY_FROM=$BAL
    server_start evloop 127.0.0.1
    local v
    for v in 1 2; do
        kill -STOP "$SRV_PID"
        balancer "v$v" 6 127.0.0.$((v + 1)) -v $v -A
        wait_until 10 grep -q '^sent=6' "$T/v$v.out" || diag "balancer v$v did not send"
        kill -CONT "$SRV_PID"
        balancer_result "v$v" "ok=3 reset=3 eof=0 timeout=0 error=0"
    done
    # Three accepts per client reached the server; the others never did.
    expect_log accept $BAL 6
    stat_json
    expect_key 127.0.0.2 3 $BAL
    expect_key 127.0.0.3 3 $BAL
    [ "$(jq '.services[0].stats.proxy_rejected_at_read' <<<"$STAT")" == 0 ] || diag "decided at read"
    [ "$(jq '.services[0].stats.rejected' <<<"$STAT")" == 6 ] || diag "rejected at accept"
}

@test "proxy: header one byte at a time (v1, v2): no byte of it reaches the app before the decision" {
    export IPLIMIT_ALLOW=$BAL IPLIMIT_PROXY_FROM=$BAL
    server_start evloop 127.0.0.1
    late a 4 127.0.0.2 "ok=3 reset=1 eof=0 timeout=0 error=0" -v 1 -b 3
    ACCEPTED_BEFORE=4 late b 4 127.0.0.3 "ok=3 reset=1 eof=0 timeout=0 error=0" -v 2 -b 3
    stat_json
    expect_key 127.0.0.2 3 $BAL
    expect_key 127.0.0.3 3 $BAL
    [ "$(jq '.services[0].stats.proxy_malformed' <<<"$STAT")" == 0 ] || diag "malformed: $STAT"
}

# The same through each read-family wrapper (interpose_read.c, and recvmsg
# in interpose_msg.c): the first read settles the connection.
read_call_case() {
    export IPLIMIT_ALLOW=$BAL IPLIMIT_PROXY_FROM=$BAL
    server_start evloop 127.0.0.1 -R "$1"
    late a 4 127.0.0.2 "ok=3 reset=1 eof=0 timeout=0 error=0" -v 1 -b 3
    stat_json
    expect_key 127.0.0.2 3 $BAL
}

@test "proxy: header one byte at a time, read by readv" { read_call_case readv; }
@test "proxy: header one byte at a time, read by recv" { read_call_case recv; }
@test "proxy: header one byte at a time, read by recvfrom" { read_call_case recvfrom; }
@test "proxy: header one byte at a time, read by recvmsg" { read_call_case recvmsg; }
@test "proxy: header one byte at a time, read by __read_chk" { read_call_case __read_chk; }
@test "proxy: header one byte at a time, read by __recv_chk" { read_call_case __recv_chk; }
@test "proxy: header one byte at a time, read by __recvfrom_chk" {
    read_call_case __recvfrom_chk
}

@test "proxy: the same with a blocking reader (prefork workers block in read)" {
    export IPLIMIT_ALLOW=$BAL IPLIMIT_PROXY_FROM=$BAL
    server_start prefork 127.0.0.1 -w 8
    late a 4 127.0.0.2 "ok=3 reset=1 eof=0 timeout=0 error=0" -v 2 -b 3
    stat_json
    expect_key 127.0.0.2 3 $BAL
}

@test "proxy: malformed, truncated and oversized headers are counted under the balancer and logged" {
    export IPLIMIT_LIMITS=$BAL/32=100 IPLIMIT_PROXY_FROM=$BAL
    server_start evloop 127.0.0.1
    # not a header; a v1 line cut short; 150 bytes without CRLF; a v2 length of 65535
    HEADERS=0 late bad1 2 127.0.0.2 "ok=2 reset=0 eof=0 timeout=0 error=0" -R 474554202f20485454502f312e310d0a
    ACCEPTED_BEFORE=2 late bad2 2 127.0.0.2 "ok=2 reset=0 eof=0 timeout=0 error=0" \
        -R 50524f585920544350342031302e302e302e310d0a
    ACCEPTED_BEFORE=4 late bad3 2 127.0.0.2 "ok=2 reset=0 eof=0 timeout=0 error=0" \
        -R "50524f5859205443503420$(printf '31%.0s' $(seq 1 140))0d0a"
    ACCEPTED_BEFORE=6 late bad4 2 127.0.0.2 "ok=2 reset=0 eof=0 timeout=0 error=0" \
        -R 0d0a0d0a000d0a515549540a2111ffff7f000002
    stat_json
    expect_key $BAL 8 null
    [ -z "$(key_field 127.0.0.2 open)" ] || diag "127.0.0.2 was counted: $STAT"
    [ "$(jq '.services[0].stats.proxy_malformed' <<<"$STAT")" == 8 ] || diag "malformed count: $STAT"
    # One line per minute (rate-limited), naming the balancer and the cause.
    expect_err 1 "^iplimit\[[0-9]+\]: malformed PROXY header from 127\.0\.0\.9 \(not a PROXY header\): counted under 127\.0\.0\.9$"
    expect_err 1 "malformed PROXY header"
}

@test "proxy: v2 LOCAL (health checks) and v1 UNKNOWN are the balancer's own connections" {
    export IPLIMIT_LIMITS=$BAL/32=100 IPLIMIT_PROXY_FROM=$BAL
    server_start evloop 127.0.0.1
    late hc 5 127.0.0.2 "ok=5 reset=0 eof=0 timeout=0 error=0" -l
    ACCEPTED_BEFORE=5 late unk 2 127.0.0.2 "ok=2 reset=0 eof=0 timeout=0 error=0" \
        -R 50524f585920554e4b4e4f574e0d0a
    stat_json
    expect_key $BAL 7 null
    expect_err 0 "malformed"
}

@test "proxy: a header from a peer outside PROXY_FROM is ordinary data" {
    export IPLIMIT_PROXY_FROM=$BAL
    server_start evloop 127.0.0.1
    # 127.0.0.5 claims to carry 127.0.0.2: it is keyed by its own address,
    # so its fourth connection is refused at accept whatever it sends.
    BAL_SRC=127.0.0.5 balancer x 6 127.0.0.2 -v 2 -g
    wait_log accept 127.0.0.5 3
    balancer_go x
    balancer_result x "ok=3 reset=3 eof=0 timeout=0 error=0"
    expect_log accept 127.0.0.5 3
    stat_json
    expect_key 127.0.0.5 3 null
    [ -z "$(key_field 127.0.0.2 open)" ] || diag "the header chose the key: $STAT"
}

@test "proxy: an IPv6 client through an IPv4 balancer, and an IPv4 client through an IPv6 one" {
    export IPLIMIT_ALLOW=$BAL,::1 IPLIMIT_PROXY_FROM=$BAL,::1
    server_start evloop ::
    BAL_LOG=::ffff:$BAL late a 6 2001:db8::7 "ok=3 reset=3 eof=0 timeout=0 error=0" -v 2
    # Same /64: shares the key with 2001:db8::7.
    BAL_LOG=::ffff:$BAL ACCEPTED_BEFORE=6 late b 2 2001:db8::8 "ok=0 reset=2 eof=0 timeout=0 error=0" -v 1
    BAL_SRC=::1 DST=::1 BAL_LOG=::1 late c 6 192.0.2.7 "ok=3 reset=3 eof=0 timeout=0 error=0" -v 2
    BAL_SRC=::1 DST=::1 BAL_LOG=::1 ACCEPTED_BEFORE=6 late d 2 192.0.2.7 \
        "ok=0 reset=2 eof=0 timeout=0 error=0" -v 1
    stat_json
    expect_key 2001:db8::/64 3 $BAL
    expect_key 192.0.2.7 3 ::1
}

@test "proxy: iplimit reload turns proxy_from on" {
    export IPLIMIT_ALLOW=$BAL
    server_start evloop 127.0.0.1
    late a 4 127.0.0.2 "ok=4 reset=0 eof=0 timeout=0 error=0" -v 2
    stat_json
    expect_key $BAL 4 null
    IPLIMIT_PROXY_FROM=$BAL "$IPLIMIT_CLI" reload --pid "$SRV_PID" >/dev/null || diag "reload failed"
    ACCEPTED_BEFORE=4 late b 4 127.0.0.2 "ok=3 reset=1 eof=0 timeout=0 error=0" -v 2
    stat_json
    expect_key 127.0.0.2 3 $BAL
}

@test "proxy: a client counted directly after a reload without proxy_from loses its via" {
    export IPLIMIT_ALLOW=$BAL IPLIMIT_PROXY_FROM=$BAL
    server_start evloop 127.0.0.1
    late a 2 127.0.0.2 "ok=2 reset=0 eof=0 timeout=0 error=0" -v 2
    stat_json
    expect_key 127.0.0.2 2 $BAL
    unset IPLIMIT_PROXY_FROM # reload's own variables would override the --unset
    "$IPLIMIT_CLI" reload --pid "$SRV_PID" --unset IPLIMIT_PROXY_FROM >/dev/null ||
        diag "reload failed"
    # The first accept after the reload takes the general path (it copies
    # the policy for the thread); the next ones, the straight path, which
    # must clear the via of a key it counts directly.
    client first 127.0.0.5 1 "ok=1 fail=0"
    client_start direct 127.0.0.2 1
    client_wait direct && expect_client direct "ok=1 fail=0"
    stat_json
    expect_key 127.0.0.2 3 null
    client_release direct
    client_release a
    server_alive
}
