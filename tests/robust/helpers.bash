# Helpers of the robustness suite: the integration helpers, plus a few for
# killing workers and reading the kernel's view. Every wait is bounded.
load ../integration/helpers

# held_by_peer SRC: server-side sockets of SRC on $PORT that a process holds.
held_by_peer() {
    ss -Htn state established "( sport = :$PORT and dst $1 )" 2>/dev/null | wc -l
}

# holder_of SRC: pid of one process holding a connection from SRC on $PORT.
holder_of() {
    ss -Htnp state established "( sport = :$PORT and dst $1 )" 2>/dev/null |
        grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2
}

# admitted_again SRC: a fresh connection from SRC is accepted (and closed).
admitted_again() {
    local out
    out=$("$IL_BIN/ilclient" -s "$1" -d 127.0.0.1 -p "$PORT" -n 1 -t 1000 </dev/null 2>/dev/null)
    [[ $out == "ok=1 "* ]]
}

fd_count() {
    ls "/proc/$1/fd" 2>/dev/null | wc -l
}

# within SECONDS COMMAND...: retries COMMAND (itself bounded) until it
# succeeds or SECONDS of wall time have passed.
within() {
    local end=$((SECONDS + $1))
    shift
    while ((SECONDS < end)); do
        "$@" && return 0
        sleep 0.1
    done
    "$@"
}

# healed_to SRC N: one accept from another source (an accept is what lets
# a live process take over from a dead reconciler owner, and what runs
# reconciliation when it is inline), then counted_is SRC N.
healed_to() {
    admitted_again 127.0.0.99
    counted_is "$@"
}

# counted_is SRC N: the library counts exactly N open connections for SRC
# (iplimit stat; needs jq, see tests/deps.d/cli.txt).
counted_is() {
    local n
    n=$("$IL_ROOT/build/iplimit" stat --pid "$SRV_PID" --json |
        jq -r --arg k "$1" '[.services[0].keys[] | select(.key == $k) | .open] | add // 0')
    [ "$n" = "$2" ]
}
