#!/usr/bin/env bats
# iplimit reload: new limits for new accepts at once, open connections kept,
# an invalid policy refused.
load helpers

@test "reload lowers the limit under live traffic; open connections stay" {
    export IPLIMIT_MAX=5
    server_start evloop 127.0.0.1
    client_run a 127.0.0.2 4 && expect_client a "ok=4 fail=0"
    IPLIMIT_MAX=2 run "$IPLIMIT" reload --pid "$SRV_PID"
    [ "$status" -eq 0 ] || diag "reload exited $status: $output"
    grep -qx "reloaded service $SRV_PID: policy generation 1 -> 2" <<<"$output" || diag "$output"
    expect_stat .policy_generation 2
    expect_stat .policy.max 2
    expect_key 127.0.0.2 open 4
    expect_key 127.0.0.2 limit 2
    client b 127.0.0.2 1 "ok=0 fail=1"
    client c 127.0.0.3 3 "ok=2 fail=1"
    expect_log accept 127.0.0.2 4
    expect_log close 127.0.0.2 0
    alive "${CLIENT_PID[a]}" || diag "client a is gone"
    stat_json
    expect_key 127.0.0.2 open 4
    expect_key 127.0.0.2 rejected 1
    client_release a
    wait_log close 127.0.0.2 4
    client d 127.0.0.2 3 "ok=2 fail=1"
}

@test "reload raises the limit: new accepts follow at once" {
    export IPLIMIT_MAX=2
    server_start prefork 127.0.0.1 -w 8
    client_run a 127.0.0.2 3 && expect_client a "ok=2 fail=1"
    IPLIMIT_MAX=4 "$IPLIMIT" reload --pid "$(il_children "$SRV_PID" | head -n 1)" >/dev/null
    client b 127.0.0.2 3 "ok=2 fail=1"
    expect_stat .policy.max 4
    expect_key 127.0.0.2 open 4
    expect_key 127.0.0.2 rejected 2
    expect_stat .stats.accepted 4
}

@test "reload re-reads the service's file: per-network limits and the allowlist apply" {
    printf 'max = 1;\n' >"$T/live.conf"
    export IPLIMIT_CONFIG=$T/live.conf
    server_start evloop 127.0.0.1
    client a 127.0.0.5 2 "ok=1 fail=1"
    printf '%s\n' 'max = 3;' 'allow = [ "127.0.0.9" ];' 'limits = [ "127.0.0.5/32=2" ];' \
        >"$T/live.conf"
    unset IPLIMIT_CONFIG IPLIMIT_LOG
    run "$IPLIMIT" reload --pid "$SRV_PID"
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    grep -qx "file: $T/live.conf" <<<"$output" || diag "$output"
    client b 127.0.0.5 2 "ok=1 fail=1"
    client c 127.0.0.6 4 "ok=3 fail=1"
    client d 127.0.0.9 6 "ok=6 fail=0"
    stat_json
    expect_key 127.0.0.5 open 2
    expect_key 127.0.0.5 limit 2
    expect_key 127.0.0.6 limit 3
    expect_key 127.0.0.9 limit 0
    expect_key 127.0.0.9 open 6
}

@test "reload --config FILE reads another file; the service's variables still win" {
    export IPLIMIT_MAX=1
    server_start evloop 127.0.0.1
    printf '%s\n' 'max = 3;' 'allow = [ "127.0.0.9" ];' >"$T/new policy.conf"
    unset IPLIMIT_MAX
    run "$IPLIMIT" reload --pid "$SRV_PID" --config "$T/new policy.conf"
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    expect_stat .policy.max 1
    client a 127.0.0.9 4 "ok=4 fail=0"
    client b 127.0.0.6 2 "ok=1 fail=1"
}

@test "reload from a shell without the service's variables keeps its allowlist" {
    export IPLIMIT_MAX=5 IPLIMIT_ALLOW=127.0.0.3/32
    server_start evloop 127.0.0.1
    unset IPLIMIT_ALLOW IPLIMIT_LOG
    IPLIMIT_MAX=2 run "$IPLIMIT" reload --pid "$SRV_PID"
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    grep -qx "  max: 5 -> 2" <<<"$output" || diag "$output"
    [ "$(grep -c '^  ' <<<"$output")" -eq 1 ] || diag "more than the limit changed: $output"
    client a 127.0.0.3 6 "ok=6 fail=0"
    client b 127.0.0.4 3 "ok=2 fail=1"
    expect_stat .policy.max 2
    expect_stat .policy_generation 2
    # and logging still goes where the service sent it
    wait_until 10 err_is 1 "rejected 127\.0\.0\.4: 2 open, limit 2" ||
        diag "the rejection did not reach the service's stderr"
}

@test "reload --max changes the limit and nothing else" {
    export IPLIMIT_MAX=5 IPLIMIT_ALLOW=127.0.0.3/32 IPLIMIT_LIMITS=127.0.0.8/32=1
    server_start evloop 127.0.0.1
    unset IPLIMIT_MAX IPLIMIT_ALLOW IPLIMIT_LIMITS IPLIMIT_LOG
    run "$IPLIMIT" reload --pid "$SRV_PID" --max 3
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    [ "$(sed -n '/^changes:$/,$p' <<<"$output" | grep -c '^  ')" -eq 1 ] || diag "$output"
    client a 127.0.0.3 5 "ok=5 fail=0"
    client b 127.0.0.8 2 "ok=1 fail=1"
    client c 127.0.0.4 4 "ok=3 fail=1"
}

@test "reload shows the change as a diff, setting by setting" {
    export IPLIMIT_MAX=5 IPLIMIT_ALLOW=127.0.0.3/32 IPLIMIT_LIMITS=10.0.0.0/8=7,10.1.0.0/16=9
    server_start evloop 127.0.0.1
    unset IPLIMIT_MAX IPLIMIT_ALLOW IPLIMIT_LIMITS IPLIMIT_LOG
    run "$IPLIMIT" reload --pid "$SRV_PID" --max 0 --allow 127.0.0.3 --allow 127.0.0.4 \
        --set limits=10.0.0.0/8=8,192.0.2.0/24=1 --set ports=5060 --set ACTION=close
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    local want
    want=$(printf '%s\n' 'changes:' \
        '  max: 5 -> unlimited' \
        '  limits: - 10.1.0.0/16=9' \
        '  limits: 10.0.0.0/8: 7 -> 8' \
        '  allow: + 127.0.0.4' \
        '  limits: + 192.0.2.0/24=1' \
        '  ports: all -> 5060' \
        '  action: rst -> close' \
        "reloaded service $SRV_PID: policy generation 1 -> 2")
    [ "$(sed -n '/^changes:$/,$p' <<<"$output")" = "$want" ] || diag "got: $output"
}

@test "reload: removing an allowlist entry, a dry run, logging off, unpolicing a port need --force" {
    export IPLIMIT_MAX=2 IPLIMIT_ALLOW=127.0.0.3/32
    server_start evloop 127.0.0.1
    client z 127.0.0.5 1 "ok=1 fail=0" # the service has accepted on PORT
    local change
    for change in "--allow 127.0.0.4" "--set dry_run=1" "--set log=none" \
                  "--set ports=$((PORT == 1 ? 2 : 1))"; do
        # shellcheck disable=SC2086
        run "$IPLIMIT" reload --pid "$SRV_PID" $change
        [ "$status" -eq 1 ] || diag "$change: exit $status: $output"
        grep -q "needs --force" <<<"$output" || diag "$change: $output"
        grep -q "reload refused: 1 change above needs --force; the running policy stays" \
            <<<"$output" || diag "$change: $output"
        expect_stat .policy_generation 1
    done
    client a 127.0.0.3 4 "ok=4 fail=0"
    run "$IPLIMIT" reload --pid "$SRV_PID" --allow 127.0.0.4 --force
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    grep -qx "  allow: - 127.0.0.3   \[needs --force: this source loses its exemption\]" \
        <<<"$output" || diag "$output"
    expect_stat .policy_generation 2
    client b 127.0.0.3 3 "ok=0 fail=3"
    client c 127.0.0.4 3 "ok=3 fail=0"
}

@test "reload --dry-run shows the change and changes nothing" {
    export IPLIMIT_MAX=2 IPLIMIT_ALLOW=127.0.0.3/32
    server_start evloop 127.0.0.1
    run "$IPLIMIT" reload --pid "$SRV_PID" --max 9 --allow 127.0.0.4 --dry-run
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    grep -qx "  max: 2 -> 9" <<<"$output" || diag "$output"
    grep -qx "dry run: nothing applied (applying it would need --force)" <<<"$output" ||
        diag "$output"
    expect_stat .policy_generation 1
    expect_stat .policy.max 2
    client a 127.0.0.3 4 "ok=4 fail=0"
    client b 127.0.0.5 3 "ok=2 fail=1"
}

@test "an invalid reload is refused and the running policy stays" {
    export IPLIMIT_MAX=2
    server_start evloop 127.0.0.1
    printf 'max = 10;\nports = [ 0 ];\n' > "$T/bad.conf"
    IPLIMIT_MAX=abc run "$IPLIMIT" reload --pid "$SRV_PID" --config "$T/bad.conf"
    [ "$status" -eq 1 ] || diag "exit $status: $output"
    grep -qF "iplimit: error: IPLIMIT_MAX: " <<<"$output" || diag "$output"
    grep -qF "iplimit: error: $T/bad.conf:2: ports: " <<<"$output" || diag "$output"
    grep -q "reload refused: 2 errors; the running policy stays" <<<"$output" || diag "$output"
    expect_stat .policy_generation 1
    expect_stat .policy.max 2
    client a 127.0.0.2 3 "ok=2 fail=1"
}

@test "reload with nothing changed changes nothing" {
    export IPLIMIT_MAX=2
    server_start evloop 127.0.0.1
    unset IPLIMIT_MAX IPLIMIT_LOG
    run "$IPLIMIT" reload --pid "$SRV_PID"
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    grep -qx "  none: the running policy stays" <<<"$output" || diag "$output"
    expect_stat .policy_generation 1
    expect_stat .policy.max 2
}

@test "reload of a service whose environment it cannot read is refused" {
    export IPLIMIT_MAX=2
    server_start evloop 127.0.0.1
    id nobody >/dev/null 2>&1 || skip "no user nobody"
    [ "$(id -u)" -eq 0 ] || skip "needs root to run reload as another user"
    run setpriv --reuid=nobody --regid=nogroup --clear-groups "$IPLIMIT" reload --pid "$SRV_PID" --max 9
    [ "$status" -eq 1 ] || diag "exit $status: $output"
    expect_stat .policy_generation 1
}

@test "reload turns a dry run on and off" {
    export IPLIMIT_MAX=1
    server_start evloop 127.0.0.1
    IPLIMIT_DRY_RUN=on "$IPLIMIT" reload --pid "$SRV_PID" --force >/dev/null
    client a 127.0.0.2 3 "ok=3 fail=0"
    expect_stat .stats.dry_run_rejected 2
    "$IPLIMIT" reload --pid "$SRV_PID" >/dev/null
    client b 127.0.0.2 1 "ok=0 fail=1"
    expect_stat .stats.rejected 1
    expect_stat .policy_generation 3
}

@test "reload warns that the capacity cannot change at run time" {
    export IPLIMIT_MAX=2 IPLIMIT_CAPACITY=100
    server_start evloop 127.0.0.1
    IPLIMIT_CAPACITY=5000 run "$IPLIMIT" reload --pid "$SRV_PID"
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    grep -q "warning: capacity 5000 cannot change at run time: the service keeps 128" \
        <<<"$output" || diag "$output"
    expect_stat .table_capacity 128
    expect_stat .policy_generation 1
}

@test "reload needs --pid of a process using iplimit" {
    run "$IPLIMIT" reload
    [ "$status" -eq 2 ] || diag "exit $status: $output"
    sleep 60 &
    IL_PIDS+=($!)
    IPLIMIT_MAX=3 run "$IPLIMIT" reload --pid $!
    [ "$status" -eq 1 ] || diag "exit $status: $output"
    grep -q "does not use iplimit" <<<"$output" || diag "$output"
}

@test "a service started with a bad configuration shows it, and a reload repairs it" {
    export IPLIMIT_MAX=abc
    server_start evloop 127.0.0.1
    client a 127.0.0.2 4 "ok=4 fail=0"
    stat_json
    [ "$(jqs .config_error)" = 'IPLIMIT_MAX: "abc" is not a whole number from 0 to 4294967294' ] ||
        diag "config_error: $(jqs .config_error)"
    [ "$(jqs .policy.enabled)" = false ] || diag "$STAT"
    [ "$(jqs .stats.accepted)" = 0 ] || diag "$STAT"
    IPLIMIT_MAX=2 run "$IPLIMIT" reload --pid "$SRV_PID"
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    client b 127.0.0.3 3 "ok=2 fail=1"
    expect_stat .policy.enabled true
    expect_key 127.0.0.3 open 2
    expect_key 127.0.0.2 open none
}

@test "reload --unset drops a variable the service started with (here, the bad one)" {
    export IPLIMIT_MAX=2 IPLIMIT_FOO=1
    server_start evloop 127.0.0.1
    client a 127.0.0.2 3 "ok=3 fail=0"
    unset IPLIMIT_MAX IPLIMIT_FOO IPLIMIT_LOG
    run "$IPLIMIT" reload --pid "$SRV_PID"
    [ "$status" -eq 1 ] || diag "exit $status: $output"
    grep -qF "iplimit: error: IPLIMIT_FOO: unknown variable" <<<"$output" || diag "$output"
    run "$IPLIMIT" reload --pid "$SRV_PID" --unset IPLIMIT_FOO
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    grep -qx "dropped here: IPLIMIT_FOO" <<<"$output" || diag "$output"
    grep -qx "  limiter: disabled (configuration error) -> enabled" <<<"$output" || diag "$output"
    client b 127.0.0.3 3 "ok=2 fail=1"
    expect_stat .config_error null
    run "$IPLIMIT" reload --pid "$SRV_PID" --unset MAX
    [ "$status" -eq 2 ] || diag "--unset MAX: exit $status: $output"
}

# A server that writes its process title over its environment (nginx,
# Redis, sshd): /proc/PID/environ no longer says what it started with, and
# reading it as "no settings" would put the defaults back (max 3 -> 1024)
# with no word. The library recorded the settings in the table at start:
# reload and check --pid read them there. A record that could not hold them
# all is refused, and reload --no-service-env starts from the defaults with
# what is given here.
@test "reload and check --pid read the settings of a service that wrote over its environment from its table" {
    export IPLIMIT_MAX=3 IPLIMIT_LIMITS=10.0.0.0/8=7
    server_start evloop 127.0.0.1 -T "evloop: master process"
    grep -q "IPLIMIT" "/proc/$SRV_PID/environ" && diag "the title did not cover the environment"
    unset IPLIMIT_MAX IPLIMIT_LIMITS
    IPLIMIT_RATE=100 run "$IPLIMIT" reload --pid "$SRV_PID"
    [ "$status" -eq 0 ] || diag "exit $status: $output"
    grep -qx "service $SRV_PID started with: IPLIMIT_RECONCILE_INTERVAL IPLIMIT_LIMITS IPLIMIT_LOG IPLIMIT_MAX" \
        <<<"$output" || diag "$output"
    grep -qF "(as its table recorded them: it wrote over its environment)" <<<"$output" || diag "$output"
    expect_stat .policy_generation 2
    expect_stat .policy.max 3
    expect_stat .policy.rate 100
    run "$IPLIMIT" check --pid "$SRV_PID"
    [ "$status" -eq 0 ] || diag "check: exit $status: $output"
    grep -qF "started with: IPLIMIT_RECONCILE_INTERVAL IPLIMIT_LIMITS IPLIMIT_LOG IPLIMIT_MAX" \
        <<<"$output" || diag "check: $output"
    client a 127.0.0.2 4 "ok=3 fail=1"
}

@test "reload refuses a service that wrote over its environment when its record is incomplete; --no-service-env" {
    export IPLIMIT_MAX=3
    # More settings than the record holds (8 KiB): a limits list of 900 rules.
    IPLIMIT_LIMITS=$(for i in $(seq 1 900); do printf '10.%d.%d.0/24=5,' $((i / 256)) $((i % 256)); done)
    export IPLIMIT_LIMITS=${IPLIMIT_LIMITS%,}
    server_start evloop 127.0.0.1 -T "evloop: master process"
    unset IPLIMIT_MAX IPLIMIT_LIMITS
    run "$IPLIMIT" reload --pid "$SRV_PID"
    [ "$status" -eq 1 ] || diag "exit $status: $output"
    grep -qF "it has written over its environment" <<<"$output" || diag "$output"
    expect_stat .policy.max 3
    expect_stat .policy_generation 1
    run "$IPLIMIT" check --pid "$SRV_PID"
    [ "$status" -eq 1 ] || diag "check: exit $status: $output"
    IPLIMIT_MAX=2 IPLIMIT_LOG=stderr run "$IPLIMIT" reload --pid "$SRV_PID" --no-service-env
    [ "$status" -eq 0 ] || diag "--no-service-env: exit $status: $output"
    grep -qx "service $SRV_PID started with: not read (--no-service-env)" <<<"$output" || diag "$output"
    expect_stat .policy.max 2
    client a 127.0.0.2 3 "ok=2 fail=1"
}
