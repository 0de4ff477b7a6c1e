# Shared helpers for the iplimit integration suite (see tests/README.md).
# The servers report on stderr "peer mismatch" when accept's address is not
# the connection's peer, and evloop -4 "accept4 flags lost".
# Every wait is bounded; every process a test starts is recorded in IL_PIDS
# and stopped by pid in teardown.

IL_ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
IL_LIB=${IL_LIB:-$IL_ROOT/build/libiplimit.so}
IL_BIN=${IL_BIN:-$IL_ROOT/build/tests}
# The servers may be built apart and run through a command (tests/cross:
# aarch64 builds under qemu-user); the clients and the CLI stay native.
IL_SERVER_BIN=${IL_SERVER_BIN:-$IL_BIN}
export BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-120}

setup() {
    il_setup
}

teardown() {
    il_stop_all
}

il_setup() {
    IL_PIDS=()
    declare -gA CLIENT_PID=() CLIENT_HOLD=()
    T=$BATS_TEST_TMPDIR
    ALOG=$T/accept.log
    SOUT=$T/server.out
    SERR=$T/server.err
    local v
    for v in $(compgen -e); do
        [[ $v == IPLIMIT_* ]] && unset "$v"
    done
    export IPLIMIT_LOG=stderr
    [ -x "$IL_BIN/ilclient" ] || { echo "missing $IL_BIN/ilclient: run make test-programs" >&2; return 1; }
    # IL_NO_PRELOAD=1 runs the servers bare, to check the harness itself.
    if [ -z "${IL_NO_PRELOAD:-}" ] && [ ! -f "$IL_LIB" ]; then
        echo "missing $IL_LIB: run make" >&2
        return 1
    fi
}

# wait_until SECONDS COMMAND...: polls COMMAND every 50 ms until it succeeds.
wait_until() {
    local tries=$(($1 * 20))
    shift
    while ((tries-- > 0)); do
        "$@" && return 0
        sleep 0.05
    done
    "$@"
}

alive() {
    kill -0 "$1" 2>/dev/null
}

dead() {
    ! kill -0 "$1" 2>/dev/null
}

# il_children PID: its direct children, read from /proc (procps may be absent).
il_children() {
    local f stat fields
    for f in /proc/[0-9]*/stat; do
        { read -r stat <"$f"; } 2>/dev/null || continue
        read -r -a fields <<<"${stat##*) }"
        if [ "${fields[1]}" = "$1" ]; then
            f=${f#/proc/}
            echo "${f%/stat}"
        fi
    done
}

descendants() {
    local c
    for c in $(il_children "$1"); do
        echo "$c"
        descendants "$c"
    done
}

stop_pid() {
    alive "$1" || return 0
    kill -TERM "$1" 2>/dev/null || true
    kill -CONT "$1" 2>/dev/null || true # a test may have stopped it
    wait_until 5 dead "$1" && return 0
    echo "pid $1 ignored SIGTERM; killing it" >&2
    kill -KILL "$1" 2>/dev/null || true
    wait_until 2 dead "$1"
}

# Stops everything this test started, newest first; a server's own children
# should be gone with it, any left over are stopped by pid too.
il_stop_all() {
    local i pid kids=()
    for ((i = ${#IL_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${IL_PIDS[i]}
        if alive "$pid"; then
            kids+=($(descendants "$pid"))
            [ ${#kids[@]} -eq 0 ] || kill -CONT "${kids[@]}" 2>/dev/null || true
        fi
        stop_pid "$pid"
    done
    for pid in "${kids[@]}"; do
        alive "$pid" && { echo "leftover child $pid" >&2; stop_pid "$pid"; }
    done
    return 0
}

diag() {
    echo "--- $*" >&2
    echo "--- server stderr:" >&2
    tail -n 30 "$SERR" >&2 2>/dev/null
    echo "--- accept log (counts):" >&2
    sort "$ALOG" 2>/dev/null | uniq -c >&2
    local c
    for c in "${!CLIENT_PID[@]}"; do
        echo "--- client $c: $(cat "$T/$c.out" 2>/dev/null) $(cat "$T/$c.err" 2>/dev/null)" >&2
    done
    return 1
}

# Reconciliation heals a leaked count, and so hides it: every server a test
# starts runs without it (interval 0) unless the test exports
# IPLIMIT_RECONCILE_INTERVAL itself (the tests of reconciliation do).
reconcile_default() {
    echo "${IPLIMIT_RECONCILE_INTERVAL:-0}"
}

# server_start KIND ADDR [ARGS...]: runs build/tests/KIND under the library
# with the exported IPLIMIT_* settings; sets SRV_PID and PORT. With
# SERVER_ULIMIT="-n 64" (say) the server, and only it, runs under that ulimit.
server_start() {
    local kind=$1 addr=$2 pre=$IL_LIB
    shift 2
    [ -n "${IL_NO_PRELOAD:-}" ] && pre=
    # IL_PRELOAD_FIRST: a sanitizer runtime that must load before the library;
    # IL_PRELOAD_AFTER: a library loaded after it (hostlibs.bats).
    # The subshell execs the server, so $! is the server's pid. SOUT is
    # emptied here first: the background job truncates it only once it
    # runs, and a second server of the test would otherwise be found ready
    # by the first one's line, then give no port.
    : >"$SOUT"
    # shellcheck disable=SC2086 # the ulimit options are words
    (if [ -n "${SERVER_ULIMIT:-}" ]; then ulimit $SERVER_ULIMIT || exit 1; fi
     IPLIMIT_RECONCILE_INTERVAL=$(reconcile_default) \
     LD_PRELOAD="${IL_PRELOAD_FIRST:+$IL_PRELOAD_FIRST }$pre${IL_PRELOAD_AFTER:+ $IL_PRELOAD_AFTER}" \
         exec ${IL_SERVER_RUN:-} "$IL_SERVER_BIN/$kind" -l "$addr" -p 0 -a "$ALOG" "$@") >"$SOUT" 2>"$SERR" 3>&- &
    SRV_PID=$!
    IL_PIDS+=("$SRV_PID")
    wait_until 10 grep -q '^ready port=' "$SOUT" || diag "$kind did not get ready" || return 1
    PORT=$(sed -n 's/^ready port=\([0-9]*\)$/\1/p' "$SOUT")
    [ -n "$PORT" ] || diag "no port from $kind"
}

# client_start NAME SRC N [ILCLIENT OPTIONS...]: connects N times from SRC
# to the server (127.0.0.1, or ::1 for an IPv6 SRC; DST=... overrides) and
# keeps the good connections open until client_release NAME.
client_start() {
    local name=$1 src=$2 n=$3 dst=127.0.0.1
    shift 3
    [[ $src == *:* ]] && dst=::1
    held_start "$name" "$IL_BIN/ilclient" -s "$src" -d "${DST:-$dst}" -p "$PORT" -n "$n" \
        -H 300 "$@"
}

# held_start NAME COMMAND...: runs COMMAND in the background, its output in
# $T/NAME.out and .err, its stdin a FIFO that a holder process keeps open;
# client_release NAME kills the holder, and the EOF ends COMMAND.
held_start() {
    local name=$1
    shift
    mkfifo "$T/$name.in"
    "$@" <"$T/$name.in" >"$T/$name.out" 2>"$T/$name.err" 3>&- &
    CLIENT_PID[$name]=$!
    IL_PIDS+=($!)
    sleep 600 >"$T/$name.in" 3>&- &
    CLIENT_HOLD[$name]=$!
    IL_PIDS+=($!)
}

# client_wait NAME: waits for the client's result line and sets RESULT.
client_wait() {
    local name=$1
    wait_until 60 grep -q '^ok=' "$T/$name.out" || diag "client $name gave no result" || return 1
    RESULT=$(grep '^ok=' "$T/$name.out")
}

# client_run NAME SRC N [OPTIONS...]: client_start and client_wait.
client_run() {
    client_start "$@" && client_wait "$1"
}

# client_release NAME: closes the client's connections and waits for its exit.
client_release() {
    kill -TERM "${CLIENT_HOLD[$1]}" 2>/dev/null || true
    wait_until 10 dead "${CLIENT_PID[$1]}" || diag "client $1 did not exit"
}

# expect_client NAME "ok=3 fail=3 ...": the client's result starts with this.
expect_client() {
    local got
    got=$(grep '^ok=' "$T/$1.out" 2>/dev/null)
    [[ "$got " == "$2 "* ]] || diag "client $1: expected '$2', got '$got'"
}

# client NAME SRC N EXPECT [OPTIONS...]: run a client and check its result.
client() {
    local name=$1 src=$2 n=$3 want=$4
    shift 4
    client_run "$name" "$src" "$n" "$@" && expect_client "$name" "$want"
}

log_count() {
    local n
    n=$(grep -cx "$1 $2" "$ALOG" 2>/dev/null)
    echo "${n:-0}"
}

log_is() {
    [ "$(log_count "$1" "$2")" -eq "$3" ]
}

# expect_log EVENT IP N: the accept log has exactly N "EVENT IP" lines.
expect_log() {
    log_is "$@" || diag "expected $3 '$1 $2' lines, got $(log_count "$1" "$2")"
}

# wait_log EVENT IP N: waits until the accept log has exactly N such lines.
wait_log() {
    wait_until 10 log_is "$@" || diag "waited for $3 '$1 $2' lines, got $(log_count "$1" "$2")"
}

err_count() {
    local n
    n=$(grep -cE "$1" "$SERR" 2>/dev/null)
    echo "${n:-0}"
}

# expect_err N REGEX: the server's stderr has exactly N lines matching REGEX.
expect_err() {
    local n
    n=$(err_count "$2")
    [ "$n" -eq "$1" ] || diag "expected $1 stderr lines matching '$2', got $n"
}

# err_is N REGEX: the same as a condition, for wait_until.
err_is() {
    [ "$(err_count "$2")" -eq "$1" ]
}

# wait_exited SRC N: the N children that logged "exit SRC PID" have exited
# and are gone (their connections closed by the kernel, no close() seen).
wait_exited() {
    local src=$1 n=$2 pid
    wait_until 10 [ "$(grep -c "^exit $src " "$ALOG")" -eq "$n" ] || diag "children did not exit"
    for pid in $(sed -n "s/^exit $src //p" "$ALOG"); do
        wait_until 10 dead "$pid" || diag "child $pid still there"
    done
}

# stat_open KEY [PID]: open connections the table of PID (default: the
# server's) counts for KEY, read with iplimit stat --json.
stat_open() {
    "$IL_ROOT/build/iplimit" stat --pid "${2:-$SRV_PID}" --json |
        jq -r --arg k "$1" '[.services[0].keys[] | select(.key == $k) | .open] | add // 0'
}

# expect_open KEY N: the server's table counts N open for KEY now (no waiting).
expect_open() {
    local got
    got=$(stat_open "$1")
    [ "$got" = "$2" ] || diag "expected $2 open for $1 in the table, got '$got'"
}

server_alive() {
    alive "$SRV_PID" || diag "server $SRV_PID died"
}

# --- Cases every server kind must pass; SERVER=(KIND ARGS...) is set by each file.

case_limit() {
    export IPLIMIT_MAX=3
    server_start "${SERVER[0]}" 127.0.0.1 "${SERVER[@]:1}"
    client a 127.0.0.2 6 "ok=3 fail=3 reset=3"
    expect_log accept 127.0.0.2 3
    expect_err 1 "^iplimit\[[0-9]+\]: rejected 127\.0\.0\.2: 3 open, limit 3"
    expect_err 0 "peer mismatch|flags lost"
    server_alive
}

case_allow() {
    export IPLIMIT_MAX=3 IPLIMIT_ALLOW=127.0.0.9/32
    server_start "${SERVER[0]}" 127.0.0.1 "${SERVER[@]:1}"
    client a 127.0.0.9 10 "ok=10 fail=0"
    client b 127.0.0.2 6 "ok=3 fail=3"
    expect_log accept 127.0.0.9 10
    expect_log accept 127.0.0.2 3
    expect_err 0 "rejected 127\.0\.0\.9"
}

case_release() {
    export IPLIMIT_MAX=3
    server_start "${SERVER[0]}" 127.0.0.1 "${SERVER[@]:1}"
    client a 127.0.0.2 6 "ok=3 fail=3"
    client_release a
    wait_log close 127.0.0.2 3
    client b 127.0.0.2 6 "ok=3 fail=3"
    expect_log accept 127.0.0.2 6
    client_release b
    wait_log close 127.0.0.2 6
    client c 127.0.0.2 3 "ok=3 fail=0"
}

case_sources() {
    export IPLIMIT_MAX=3
    server_start "${SERVER[0]}" 127.0.0.1 "${SERVER[@]:1}"
    client a 127.0.0.2 3 "ok=3 fail=0"
    client b 127.0.0.2 1 "ok=0 fail=1"
    client c 127.0.0.3 3 "ok=3 fail=0"
    client d 127.0.0.3 2 "ok=0 fail=2"
    expect_log accept 127.0.0.2 3
    expect_log accept 127.0.0.3 3
    expect_err 0 "peer mismatch|flags lost"
}

# Four clients race 5 connections each from one source: exactly 5 in total
# are admitted, and all 5 slots come back once they close.
case_parallel() {
    export IPLIMIT_MAX=5
    server_start "${SERVER[0]}" 127.0.0.1 "${SERVER[@]:1}"
    local c ok=0
    for c in p1 p2 p3 p4; do
        client_start "$c" 127.0.0.2 5 -c
    done
    for c in p1 p2 p3 p4; do
        client_wait "$c"
        [[ $RESULT =~ ^ok=([0-9]+) ]] && ok=$((ok + BASH_REMATCH[1]))
    done
    [ "$ok" -eq 5 ] || diag "expected 5 usable connections in total, got $ok"
    expect_log accept 127.0.0.2 5
    for c in p1 p2 p3 p4; do
        client_release "$c"
    done
    wait_log close 127.0.0.2 5
    client a 127.0.0.2 6 "ok=5 fail=1"
    expect_err 0 "peer mismatch|flags lost"
}
