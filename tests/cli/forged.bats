#!/usr/bin/env bats
# Segments are untrusted input: any local user can publish a memfd named
# "iplimit" (build/tests/ilforge, tests/cli/forge.c). Root's iplimit stat,
# in every format, must neither crash on it nor print its strings raw.
load helpers

FORGE=$IL_ROOT/build/tests/ilforge
AS_NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)

# forge MODE [ARGS...]: starts ilforge MODE as nobody; sets FORGED.
forge() {
    [ "$(id -u)" -eq 0 ] || skip "needs root to start processes as nobody"
    command -v setpriv >/dev/null || skip "no setpriv (util-linux)"
    [ -x "$FORGE" ] || { echo "missing $FORGE: run make test-programs" >&2; return 1; }
    "${AS_NOBODY[@]}" "$FORGE" "$@" >"$T/forge.out" 2>"$T/forge.err" 3>&- &
    FORGED=$!
    IL_PIDS+=("$FORGED")
    wait_until 10 grep -q '^ready$' "$T/forge.out" || diag "ilforge $* did not get ready: $(cat "$T/forge.err")"
}

# no_raw_controls FILE: no byte below 0x20 but newline, no DEL, nothing above 0x7e.
no_raw_controls() {
    ! LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]' "$1" && ! LC_ALL=C grep -qP '[\x80-\xff]' "$1"
}

# stat_all FORMAT...: root's `iplimit stat FORMAT` in $T/stat.out; fails on
# a crash (exit above 128) or a raw control byte.
stat_all() {
    "$IPLIMIT" stat "$@" >"$T/stat.out" 2>"$T/stat.err"
    local rc=$?
    [ "$rc" -lt 128 ] || diag "iplimit stat $* died: exit $rc ($(cat "$T/stat.err"))" || return 1
    [ "$rc" -eq 0 ] || diag "iplimit stat $* exited $rc: $(cat "$T/stat.err")" || return 1
    no_raw_controls "$T/stat.out" || diag "raw control bytes in stat $*: $(od -c "$T/stat.out" | head)"
}

# every_format: text, JSON (valid) and Prometheus, with the real server shown.
every_format() {
    stat_all || return 1
    grep -q "^service forged-test pid $SRV_PID " "$T/stat.out" || diag "real service missing: $(cat "$T/stat.out")" || return 1
    stat_all --json || return 1
    jq -e --argjson p "$SRV_PID" '.services[] | select(.pid == $p) | .open_connections == 2' \
        "$T/stat.out" >/dev/null || diag "JSON: $(cat "$T/stat.out")" || return 1
    stat_all --prometheus || return 1
    grep -qx 'iplimit_open_connections{service="forged-test"} 2' "$T/stat.out" ||
        diag "Prometheus: $(cat "$T/stat.out")"
}

real_service() {
    # A name of its own: no other service on the machine shares its series.
    export IPLIMIT_MAX=5 IPLIMIT_SERVICE=forged-test
    server_start evloop 127.0.0.1
    client_run a 127.0.0.2 2 && expect_client a "ok=2 fail=0"
}

@test "forged segment: a key table outside the file does not crash stat" {
    real_service
    forge offsets
    every_format
    grep -q "not a well-formed iplimit table" "$T/stat.err" || diag "stderr: $(cat "$T/stat.err")"
}

@test "forged segment: a header claiming more than the file does not crash stat" {
    real_service
    forge size
    every_format
}

@test "forged segment: a slot count that is no power of two is refused" {
    real_service
    forge slots
    every_format
}

@test "forged segment: escape sequences in its strings are printed escaped" {
    real_service
    forge strings
    every_format
    stat_all
    grep -qF 'service \x1b]0;pwned\x07\x1b[2J\x1b[31mred"quote\x5cback\x0aline\x0d pid' "$T/stat.out" ||
        diag "text: $(grep -a '^service' "$T/stat.out")"
    stat_all --json
    [ "$(jq -r --argjson p "$FORGED" '.services[] | select(.pid == $p) | .service' "$T/stat.out")" = \
      $'\e]0;pwned\a\e[2J\e[31mred"quote\\back\nline\r' ] || diag "JSON: $(cat "$T/stat.out")"
    stat_all --prometheus
    grep -qF 'iplimit_config_error{service="\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mred\"quote\\back\nline\\x0d",error="' \
        "$T/stat.out" || diag "Prometheus: $(grep -a config_error "$T/stat.out")"
}

@test "stat without --pid shows a user only the segments it owns" {
    [ "$(id -u)" -eq 0 ] || skip "needs root"
    command -v setpriv >/dev/null || skip "no setpriv (util-linux)"
    # Created as root, then running as nobody: nobody can read its maps,
    # but the segment is root's.
    "$FORGE" strings --drop 65534 >"$T/forge.out" 2>"$T/forge.err" 3>&- &
    FORGED=$!
    IL_PIDS+=("$FORGED")
    wait_until 10 grep -q '^ready$' "$T/forge.out" || diag "ilforge did not get ready"
    STAT=$("${AS_NOBODY[@]}" "$IPLIMIT" stat --json 2>"$T/stat.err") || diag "stat as nobody failed"
    [ "$(jq --argjson p "$FORGED" '[.services[] | select(.pid == $p)] | length' <<<"$STAT")" = 0 ] ||
        diag "nobody was shown root's segment: $STAT"
    # Root sees it, and so does nobody when it asks for that process.
    STAT=$("$IPLIMIT" stat --json 2>/dev/null)
    [ "$(jq --argjson p "$FORGED" '[.services[] | select(.pid == $p)] | .[0].uid' <<<"$STAT")" = 0 ] ||
        diag "root: $STAT"
    STAT=$("${AS_NOBODY[@]}" "$IPLIMIT" stat --pid "$FORGED" --json 2>"$T/stat.err") ||
        diag "stat --pid as nobody: $(cat "$T/stat.err")"
    [ "$(jq '.services | length' <<<"$STAT")" = 1 ] || diag "$STAT"
}
