# Helpers for the iplimit command's suite (tests/cli). Builds on the
# integration helpers (servers, clients, bounded waits, stop by pid).
load ../integration/helpers

IPLIMIT=$IL_ROOT/build/iplimit

setup() {
    il_setup
    [ -x "$IPLIMIT" ] || { echo "missing $IPLIMIT: run make" >&2; return 1; }
    command -v jq >/dev/null || { echo "missing jq (tests/deps.d/cli.txt)" >&2; return 1; }
}

# stat_json: the JSON stat of the test's server (SRV_PID) in $STAT.
stat_json() {
    STAT=$("$IPLIMIT" stat --pid "$SRV_PID" --json) || diag "iplimit stat --pid $SRV_PID failed"
}

# jqs FILTER: FILTER applied to the test's service in $STAT.
jqs() {
    jq -r ".services[0] | $1" <<<"$STAT"
}

# expect_stat FILTER VALUE: after a fresh stat, FILTER gives exactly VALUE.
expect_stat() {
    stat_json || return 1
    local got
    got=$(jqs "$1")
    [ "$got" = "$2" ] || diag "stat: expected $1 = '$2', got '$got'"
}

stat_is() {
    STAT=$("$IPLIMIT" stat --pid "$SRV_PID" --json 2>/dev/null) && [ "$(jqs "$1")" = "$2" ]
}

# wait_stat FILTER VALUE: waits until FILTER gives VALUE (closes are
# counted when the server gets to them).
wait_stat() {
    wait_until 10 stat_is "$1" "$2" || diag "stat: waited for $1 = '$2', got '$(jqs "$1")'"
}

# key_field KEY FIELD: a field of one key of $STAT ("none" if absent).
key_field() {
    jq -r --arg k "$1" ".services[0].keys | map(select(.key == \$k)) | .[0].$2 // \"none\"" \
        <<<"$STAT"
}

expect_key() {
    local got
    got=$(key_field "$1" "$2")
    [ "$got" = "$3" ] || diag "stat: key $1: expected $2 = '$3', got '$got'"
}

# run_server_with LABEL ARGS...: starts `iplimit ARGS...` (a run command)
# in the background, like server_start; sets SRV_PID and PORT.
run_server_with() {
    : >"$SOUT" # before the job starts: see server_start
    IPLIMIT_RECONCILE_INTERVAL=$(reconcile_default) "$IPLIMIT" "$@" >"$SOUT" 2>"$SERR" 3>&- &
    SRV_PID=$!
    IL_PIDS+=("$SRV_PID")
    wait_until 10 grep -q '^ready port=' "$SOUT" || diag "iplimit $* did not get ready" || return 1
    PORT=$(sed -n 's/^ready port=\([0-9]*\)$/\1/p' "$SOUT")
    [ -n "$PORT" ] || diag "no port"
}
