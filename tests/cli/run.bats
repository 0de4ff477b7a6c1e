#!/usr/bin/env bats
# iplimit run: preloads the library with the options' policy, then execs.
load helpers
bats_require_minimum_version 1.5.0

@test "run: the options become the policy of the command it starts" {
    run_server_with run --max 2 --allow 127.0.0.9 --allow 127.0.0.8/32 -- \
        "$IL_BIN/evloop" -l 127.0.0.1 -p 0 -a "$ALOG"
    client a 127.0.0.2 4 "ok=2 fail=2"
    client b 127.0.0.9 4 "ok=4 fail=0"
    client c 127.0.0.8 3 "ok=3 fail=0"
    expect_stat .policy.max 2
    expect_key 127.0.0.2 open 2
    expect_key 127.0.0.9 limit 0
    # exec: the service is the process iplimit run started.
    expect_stat .creator_pid "$SRV_PID"
}

@test "run: paths with spaces (command, arguments, config, library)" {
    d="$T/dir with spaces"
    mkdir -p "$d/lib dir"
    cp "$IL_BIN/evloop" "$d/ev loop"
    cp "$IL_LIB" "$d/lib dir/libiplimit.so"
    printf 'max = 3;\n' > "$d/my policy.conf"
    ALOG="$d/accept log"
    run_server_with run --lib "$d/lib dir/libiplimit.so" --config "$d/my policy.conf" -- \
        "$d/ev loop" -l 127.0.0.1 -p 0 -a "$ALOG"
    client a 127.0.0.2 5 "ok=3 fail=2"
    expect_log accept 127.0.0.2 3
    expect_stat .policy.max 3
    expect_key 127.0.0.2 open 3
    grep -q "/lib dir/libiplimit.so" "/proc/$SRV_PID/maps" || diag "library not mapped"
}

@test "run: the command sees LD_PRELOAD, the variables and its own arguments" {
    run "$IPLIMIT" run --max 4 --dry-run --config /dev/null --lib "$IL_LIB" -- \
        bash -c 'printf "%s\n" "$LD_PRELOAD" "$IPLIMIT_MAX" "$IPLIMIT_DRY_RUN" "$IPLIMIT_CONFIG" "$1" "$#"' \
        arg0 "one two"
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    [ "$output" = "$(printf '%s\n' "$IL_LIB" 4 1 /dev/null "one two" 1)" ] || diag "$output"
}

@test "run: an LD_PRELOAD already set is kept after the library" {
    LD_PRELOAD=libc.so.6 run "$IPLIMIT" run --lib "$IL_LIB" -- printenv LD_PRELOAD
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    [ "$output" = "$IL_LIB libc.so.6" ] || diag "$output"
}

@test "run: the library is found beside the command by default" {
    run "$IPLIMIT" run -- printenv LD_PRELOAD
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    [ "$output" = "$IL_LIB" ] || diag "$output"
}

@test "run: an invalid policy starts nothing" {
    run "$IPLIMIT" run --max lots --allow 10.0.0.1/8 -- touch "$T/started"
    [ "$status" -eq 1 ] || diag "exit $status: $output"
    grep -qF "iplimit: error: IPLIMIT_MAX: " <<<"$output" || diag "$output"
    grep -qF "iplimit: error: IPLIMIT_ALLOW: " <<<"$output" || diag "$output"
    [ ! -e "$T/started" ] || diag "the command ran"
}

@test "run: usage errors and a missing command" {
    run "$IPLIMIT" run --max 3
    [ "$status" -eq 2 ] || diag "exit $status: $output"
    run -127 "$IPLIMIT" run -- "$T/no such command"
    run "$IPLIMIT" run --lib "$T/none.so" -- true
    [ "$status" -eq 1 ] || diag "exit $status: $output"
}

@test "every command has --help and exits 0" {
    local c
    for c in "" run stat check reload; do
        run "$IPLIMIT" $c --help
        [ "$status" -eq 0 ] || diag "iplimit $c --help exited $status"
        [[ ${lines[0]} == "usage: iplimit ${c:-COMMAND}"* ]] || diag "iplimit $c --help: ${lines[0]}"
    done
    run "$IPLIMIT" frobnicate
    [ "$status" -eq 2 ] || diag "exit $status"
}
