# Helpers of the flood and exhaustion tests (flood.bats, exhaust.bats), on
# top of helpers.bash: the ilflood load tool, server fds, iplimit stat.

# load_start NAME MODE ARGS...: runs ilflood MODE against the server, with a
# FIFO as stdin held open (like client_start); load_release NAME ends it.
load_start() {
    local name=$1 mode=$2
    shift 2
    held_start "$name" "$IL_BIN/ilflood" "$mode" -d 127.0.0.1 -p "$PORT" -H 120 "$@"
}

load_release() {
    client_release "$@"
}

# load_line NAME REGEX: waits (60 s at most) for the line and prints it.
load_line() {
    wait_until 60 grep -qE "$2" "$T/$1.out" || diag "$1 printed no line like '$2'" || return 1
    grep -E "$2" "$T/$1.out" | head -n 1
}

# field LINE NAME: the number after NAME= in LINE.
field() {
    [[ " $1 " =~ \ $2=([0-9]+)\  ]] && echo "${BASH_REMATCH[1]}"
}

# server_fds: open fds of the server and all its processes.
server_fds() {
    local p n=0
    for p in "$SRV_PID" $(descendants "$SRV_PID"); do
        n=$((n + $(fd_count "$p")))
    done
    echo "$n"
}

fds_are() {
    [ "$(server_fds)" -eq "$1" ]
}

# stat_rejected KEY: the server's rejection count for KEY (iplimit stat).
stat_rejected() {
    "$IL_ROOT/build/iplimit" stat --pid "$SRV_PID" --json |
        jq -r --arg k "$1" '[.services[0].keys[] | select(.key == $k) | .rejected] | add // 0'
}

stat_total() {
    "$IL_ROOT/build/iplimit" stat --pid "$SRV_PID" --json | jq -r ".services[0].stats.$1"
}

# sum_summaries KEY: the N of every "KEY: N more rejected" line.
sum_summaries() {
    local n sum=0
    for n in $(sed -nE "s/^iplimit\[[0-9]+\]: ${1//./\\.}: ([0-9]+) more rejected in the last [0-9]+ s$/\1/p" "$SERR"); do
        sum=$((sum + n))
    done
    echo "$sum"
}

# one_rejection SRC: one more connection from SRC, which must be refused.
one_rejection() {
    local out
    out=$("$IL_BIN/ilclient" -s "$1" -d 127.0.0.1 -p "$PORT" -n 1 -t 1000 </dev/null 2>/dev/null)
    [[ $out == "ok=0 fail=1 reset=1 "* ]] || diag "expected a rejection for $1, got '$out'"
}

# summaries_above SRC N: refuses one more connection from SRC; true once the
# log has more than N summary lines for it.
summaries_above() {
    one_rejection "$1" || return 1
    [ "$(err_count "^iplimit\[[0-9]+\]: ${1//./\\.}: [0-9]+ more rejected")" -gt "$2" ]
}
