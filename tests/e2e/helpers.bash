# Helpers for iplimit's end-to-end tests against Debian's Kamailio.
# Sourced by tests/e2e/*.bats.  Every process started here is recorded by
# pid and stopped by pid (or by its own process group) in e2e_teardown.
# Every wait has a deadline.

E2E_ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
E2E_DIR=$BATS_TEST_DIRNAME
E2E_LIB=${IPLIMIT_LIB:-$E2E_ROOT/build/libiplimit.so}
E2E_SIPCONN=$E2E_ROOT/build/tests/sipconn
E2E_CFG=$E2E_DIR/kamailio.cfg
E2E_LOGDIR=${E2E_LOGDIR:-$E2E_ROOT/build/e2e-logs}
# The number of processes our kamailio.cfg makes Kamailio 5.6 run: attendant,
# 2 UDP receivers on each of 2 UDP sockets, slow timer, timer, secondary
# timer, 2 TCP readers, tcp main.
E2E_KAM_PROCS=${E2E_KAM_PROCS:-11}

e2e_find_kamailio() {
    local k
    k=$(command -v kamailio 2>/dev/null) || true
    [ -n "$k" ] || { [ -x /usr/sbin/kamailio ] && k=/usr/sbin/kamailio; }
    echo "$k"
}
KAMAILIO=${KAMAILIO:-$(e2e_find_kamailio)}
# Another build (the bench's kam60 section runs these tests against
# Kamailio 6.0): KAMAILIO names its binary and KAMAILIO_MODULES its module
# directory (kamailio -L); unset, the binary's own default.
KAMAILIO_MODULES=${KAMAILIO_MODULES:-}

# --- small assertion helpers ------------------------------------------------

fail() {
    echo "FAIL: $*" >&2
    return 1
}

# assert_eq WHAT EXPECTED ACTUAL
assert_eq() {
    [ "$2" == "$3" ] || fail "$1: expected '$2', got '$3'"
}

now_ms() { date +%s%3N; }

# --- per-test setup ---------------------------------------------------------

# Fails (never skips) when something the suite needs is missing, except
# kamailio itself: test 0 reports that as one failing line and the others skip.
# e2e_require [--no-lib]
e2e_require() {
    [ -n "$KAMAILIO" ] && [ -x "$KAMAILIO" ] || skip "kamailio not installed (see test 0)"
    [ "${1:-}" == "--no-lib" ] || [ -f "$E2E_LIB" ] || fail "$E2E_LIB is missing: run 'make lib'"
    [ -x "$E2E_SIPCONN" ] || fail "$E2E_SIPCONN is missing: run 'make test-programs'"
    mkdir -p "$E2E_LOGDIR"
    E2E_T=$BATS_TEST_TMPDIR
    E2E_NAME=$(printf '%02d' "$BATS_TEST_NUMBER")
    KAM_PID=
    KAM_LOG=
    KAM_EXTRA_ARGS=()
    HOLD_NAMES=()
    BG_PIDS=()
}

e2e_teardown() {
    local name pid
    for name in "${HOLD_NAMES[@]}"; do
        hold_stop "$name" || true
    done
    for pid in "${BG_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${BG_PIDS[@]}"; do
        wait_pid_gone "$pid" 5000 || kill -KILL "$pid" 2>/dev/null || true
    done
    kam_stop || true
    if [ -z "${BATS_TEST_COMPLETED:-}" ] && [ -n "${KAM_LOG:-}" ] && [ -f "$KAM_LOG" ]; then
        echo "--- last lines of $KAM_LOG" >&2
        tail -n 40 "$KAM_LOG" >&2
    fi
}

# pick_port: prints a TCP+UDP port that nothing on this machine uses.
pick_port() {
    local i p used
    used=$(ss -Hltnu | awk '{print $5}' | sed 's/.*://' | sort -u)
    for i in $(seq 1 100); do
        p=$((20000 + RANDOM % 12000))  # below the ephemeral range (32768+)
        grep -qx "$p" <<<"$used" || { echo "$p"; return 0; }
    done
    fail "no free port found"
}

# wait_pid_gone PID MS: waits until PID no longer exists.
wait_pid_gone() {
    local pid=$1 deadline=$(($(now_ms) + $2))
    while kill -0 "$pid" 2>/dev/null; do
        # Reap it if it is our child (a zombie still answers kill -0).
        if [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" == "Z" ]; then
            wait "$pid" 2>/dev/null || true
            continue
        fi
        [ "$(now_ms)" -lt "$deadline" ] || return 1
        sleep 0.05
    done
    wait "$pid" 2>/dev/null || true
    return 0
}

# --- Kamailio ---------------------------------------------------------------

# kam_start [--no-preload] [VAR=VALUE ...]
# Extra kamailio arguments (e.g. -A E2E_EPOLL_ET) come from KAM_EXTRA_ARGS.
# Starts Kamailio in the foreground (-DD -E) in its own session and process
# group, with LD_PRELOAD of the library and the given IPLIMIT_* settings
# (IPLIMIT_LOG=stderr unless given), on port $PORT (picked if unset), and
# waits until it answers OPTIONS over UDP on both families and over TCP.
kam_start() {
    local preload=1
    if [ "${1:-}" == "--no-preload" ]; then preload=0; shift; fi
    [ -n "${PORT:-}" ] || PORT=$(pick_port)
    KAM_RUNDIR=$E2E_T/run
    mkdir -p "$KAM_RUNDIR"
    E2E_STARTS=$((${E2E_STARTS:-0} + 1))
    KAM_LOG=$E2E_LOGDIR/$E2E_NAME.kamailio.$E2E_STARTS.log
    local envs=(PATH="$PATH" HOME="$E2E_T" IPLIMIT_LOG=stderr)
    [ "$preload" -eq 1 ] && envs+=(LD_PRELOAD="$E2E_LIB")
    envs+=("$@")
    {
        echo "# kamailio start: port $PORT"
        printf '# env: %s\n' "${envs[@]}"
    } >"$KAM_LOG"
    # Not a process group leader here (no job control), so setsid does not
    # fork: $! is Kamailio's main process and the id of its process group.
    # env -i: Kamailio sees only the settings above; setsid and env
    # themselves never get LD_PRELOAD.
    local mods=()
    [ -z "$KAMAILIO_MODULES" ] || mods=(-L "$KAMAILIO_MODULES")
    setsid env -i "${envs[@]}" "$KAMAILIO" -f "$E2E_CFG" -DD -E -Y "$KAM_RUNDIR" "${mods[@]}" \
        -A "E2E_PORT=$PORT" "${KAM_EXTRA_ARGS[@]}" </dev/null >>"$KAM_LOG" 2>&1 3>&- &
    KAM_PID=$!
    local pgid
    pgid=$(ps -o pgid= -p "$KAM_PID" | tr -d ' ')
    assert_eq "kamailio process group" "$KAM_PID" "$pgid"
    kam_wait_ready
}

# kam_wait_ready: listening sockets, every process, answers on UDP and TCP.
kam_wait_ready() {
    local deadline=$(($(now_ms) + 15000)) n
    while :; do
        kill -0 "$KAM_PID" 2>/dev/null || fail "kamailio exited during start-up"
        n=$(ss -Hltn "sport = :$PORT" | wc -l)
        [ "$n" -eq 2 ] && [ "$(kam_pids | wc -l)" -ge "$E2E_KAM_PROCS" ] && break
        [ "$(now_ms)" -lt "$deadline" ] || fail "kamailio not listening on TCP port $PORT within 15 s"
        sleep 0.05
    done
    # The children come up after the sockets: ask until answered (bounded).
    local fam src dst
    for fam in 4 6; do
        if [ "$fam" == 4 ]; then src=127.0.0.1 dst=127.0.0.1; else src=::1 dst=::1; fi
        while ! "$E2E_SIPCONN" -u -s "$src" -d "$dst" -p "$PORT" -t 500 >/dev/null 2>&1; do
            [ "$(now_ms)" -lt "$deadline" ] || fail "kamailio does not answer UDP OPTIONS on $dst"
        done
    done
    # One TCP request from 127.0.0.1 (never a limited source in these tests):
    # proves tcp main and the readers run.  The probe is closed at once.
    while ! "$E2E_SIPCONN" -x -s 127.0.0.1 -d 127.0.0.1 -p "$PORT" -n 1 -t 1000 | grep -q '^summary ok=1 '; do
        [ "$(now_ms)" -lt "$deadline" ] || fail "kamailio does not answer TCP OPTIONS"
        sleep 0.1
    done
    assert_eq "kamailio processes" "$E2E_KAM_PROCS" "$(kam_pids | wc -l)"
    KAM_PIDS=$(kam_pids)
}

# kam_pids: every live process of Kamailio's process group, one per line.
kam_pids() {
    [ -n "${KAM_PID:-}" ] || return 0
    pgrep -g "$KAM_PID" | sort -n
}

# kam_stop: SIGTERM to the whole group, SIGKILL after 5 s; waits until gone.
kam_stop() {
    [ -n "${KAM_PID:-}" ] || return 0
    kill -TERM -- "-$KAM_PID" 2>/dev/null || true
    local deadline=$(($(now_ms) + 5000))
    while [ -n "$(kam_pids)" ] && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.05; done
    if [ -n "$(kam_pids)" ]; then
        echo "kamailio group $KAM_PID still alive after SIGTERM: SIGKILL" >&2
        kill -KILL -- "-$KAM_PID" 2>/dev/null || true
    fi
    wait_pid_gone "$KAM_PID" 5000 || true
    deadline=$(($(now_ms) + 5000))
    while [ -n "$(kam_pids)" ] && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.05; done
    [ -z "$(kam_pids)" ] || fail "kamailio group $KAM_PID survived SIGKILL"
    KAM_PID=
}

# kam_kill9: SIGKILL to every process of the tree at once; waits until gone.
kam_kill9() {
    kill -KILL -- "-$KAM_PID"
    local deadline=$(($(now_ms) + 5000))
    wait_pid_gone "$KAM_PID" 5000 || fail "kamailio main survived SIGKILL"
    while [ -n "$(kam_pids)" ]; do
        [ "$(now_ms)" -lt "$deadline" ] || fail "kamailio children survived SIGKILL"
        sleep 0.05
    done
    KAM_PID=
}

# kam_healthy: every process that was there at start is alive (and no other),
# none is a zombie, UDP OPTIONS are answered on both families, and the log
# has no error from Kamailio.
kam_healthy() {
    local now
    now=$(kam_pids)
    assert_eq "kamailio processes (pids)" "$(echo $KAM_PIDS)" "$(echo $now)"
    local zombies
    zombies=$(ps -o stat= -g "$KAM_PID" | grep -c '^Z' || true)
    assert_eq "zombie kamailio processes" 0 "$zombies"
    run "$E2E_SIPCONN" -u -s 127.0.0.1 -d 127.0.0.1 -p "$PORT" -t 2000
    assert_eq "UDP OPTIONS over IPv4" "udp ok" "$output"
    run "$E2E_SIPCONN" -u -s ::1 -d ::1 -p "$PORT" -t 2000
    assert_eq "UDP OPTIONS over IPv6" "udp ok" "$output"
    kam_no_errors
}

# kam_no_errors: Kamailio logged no ERROR/CRITICAL/ALERT line (accept errors
# included) and no crash.
kam_no_errors() {
    local bad
    bad=$(grep -E ' (ERROR|CRITICAL|ALERT|BUG):|error while accepting|segfault|core dump' "$KAM_LOG" || true)
    [ -z "$bad" ] || fail "kamailio logged errors:"$'\n'"$bad"
}

# kam_options_from PROTO SRC: how many OPTIONS Kamailio handled from SRC.
kam_options_from() {
    grep -c "e2e: OPTIONS from $1:$2:[0-9]*\$" "$KAM_LOG" || true
}

# kam_rejections SRC: iplimit rejection lines for SRC in the log.
kam_rejections() {
    grep -cE "^iplimit\[[0-9]+\]: rejected $1: " "$KAM_LOG" || true
}

# --- sipconn ----------------------------------------------------------------

# conns SRC N [more sipconn options]: opens N connections from SRC at once
# (each held until all are opened), prints sipconn's output.
conns() {
    local src=$1 n=$2 dst=127.0.0.1
    shift 2
    [[ "$src" == *:* ]] && dst=::1
    "$E2E_SIPCONN" -x -s "$src" -d "$dst" -p "$PORT" -n "$n" -t 3000 "$@" 3>&-
}

# summary_of OUTPUT: the summary line without its "summary " word.
summary_of() {
    grep '^summary ' <<<"$1" | sed 's/^summary //'
}

# expect_conns SRC N OK REJECTED: N connections from SRC; exactly OK are
# answered 200 and exactly REJECTED are reset, nothing else.
expect_conns() {
    local src=$1 n=$2 ok=$3 rej=$4 out
    out=$(conns "$src" "$n" ${CONNS_OPTS:-})
    echo "$out" >"$E2E_T/conns.$src.$n.out"
    assert_eq "connections from $src ($n opened)" \
        "ok=$ok reset=$rej closed=0 timeout=0 failed=0 other=0" "$(summary_of "$out")"
    LAST_CONNS=$out
}

# expect_conns_parallel SRC N OK REJECTED: the same with all N connections
# made before any request is sent (sipconn -P): N wait in the listen queue
# together, so tcp main accepts (and iplimit refuses) them back to back.
expect_conns_parallel() {
    CONNS_OPTS=-P expect_conns "$@"
}

# ok_ports OUTPUT / rejected_ports OUTPUT: client ports by outcome.
ok_ports() { awk '$1 == "conn" && $4 == "ok" {print $3}' <<<"$1"; }
rejected_ports() { awk '$1 == "conn" && $4 != "ok" {print $3}' <<<"$1"; }

# --- holders: sipconn processes that keep connections and take commands ---

# hold_start NAME SRC N: starts sipconn holding N connections from SRC,
# waits (bounded) for its summary line.
hold_start() {
    local name=$1 src=$2 n=$3 dst=127.0.0.1 fd
    [[ "$src" == *:* ]] && dst=::1
    mkfifo "$E2E_T/$name.in"
    "$E2E_SIPCONN" -s "$src" -d "$dst" -p "$PORT" -n "$n" -t 3000 \
        <"$E2E_T/$name.in" >"$E2E_T/$name.out" 2>&1 3>&- &
    eval "HOLD_PID_$name=$!"
    HOLD_NAMES+=("$name")
    exec {fd}>"$E2E_T/$name.in"
    eval "HOLD_FD_$name=$fd"
    hold_wait "$name" '^summary ' 1 $((n * 3000 + 5000))
}

# hold_cmd NAME COMMAND: sends one command line to the holder.
hold_cmd() {
    local fd
    eval "fd=\$HOLD_FD_$1"
    echo "$2" >&"$fd"
}

# hold_wait NAME REGEX COUNT MS: waits until the holder printed COUNT lines
# matching REGEX.
hold_wait() {
    local out=$E2E_T/$1.out deadline=$(($(now_ms) + $4))
    while [ "$(grep -cE "$2" "$out" 2>/dev/null || true)" -lt "$3" ]; do
        [ "$(now_ms)" -lt "$deadline" ] || {
            cat "$out" >&2
            fail "holder $1: no $3 line(s) matching '$2' within $4 ms"
        }
        sleep 0.02
    done
}

# hold_out NAME: what the holder printed so far.
hold_out() { cat "$E2E_T/$1.out"; }

# hold_stop NAME: EOF on its stdin (it closes everything and exits), then
# SIGTERM, then SIGKILL, each bounded.
hold_stop() {
    local name=$1 fd pid
    eval "fd=\${HOLD_FD_$name:-}; pid=\${HOLD_PID_$name:-}"
    [ -n "$pid" ] || return 0
    [ -n "$fd" ] && exec {fd}>&-
    eval "HOLD_FD_$name="
    wait_pid_gone "$pid" 3000 || { kill -TERM "$pid" 2>/dev/null; wait_pid_gone "$pid" 3000; } ||
        { kill -KILL "$pid" 2>/dev/null; wait_pid_gone "$pid" 3000; }
    eval "HOLD_PID_$name="
}

# --- server-side view of connections ----------------------------------------

# server_conns SRC: lines "CLIENTPORT NPROCS PIDS" for every established
# connection from SRC to Kamailio's port, NPROCS = processes holding an fd.
server_conns() {
    ss -Htnp state established "( sport = :$PORT )" | awk -v src="$1" '
        { peer = $4; p = peer; sub(/:[0-9]+$/, "", p); gsub(/[\[\]]/, "", p)
          if (p != src) next
          port = peer; sub(/.*:/, "", port)
          n = 0; pids = ""
          s = $0
          while (match(s, /pid=[0-9]+/)) {
              n++; pids = pids (pids == "" ? "" : ",") substr(s, RSTART + 4, RLENGTH - 4)
              s = substr(s, RSTART + RLENGTH)
          }
          print port, n, pids }'
}

# server_socket_gone SRC CLIENTPORT MS: waits until Kamailio has no socket
# (in any state) for that client port.
server_socket_gone() {
    local deadline=$(($(now_ms) + $3))
    while ss -Htan "( sport = :$PORT and dport = :$2 )" | grep -q .; do
        [ "$(now_ms)" -lt "$deadline" ] || fail "server socket for $1:$2 still open after $3 ms"
        sleep 0.02
    done
}
