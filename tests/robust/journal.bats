#!/usr/bin/env bats
# The default log target under a daemonizing service (stderr on /dev/null):
# each line is one datagram to /dev/log, "<PRI>iplimit[PID]: ...", so
# `journalctl -t iplimit` finds it whatever the host's openlog() said; with
# no /dev/log the lines go to stderr. Tested against a real /dev/log
# listener in a private mount namespace.
load helpers
load syslog_helpers

needs_namespace() {
    [ "$(id -u)" -eq 0 ] || skip "needs root for a private /dev"
    command -v python3 >/dev/null || skip "no python3"
    command -v unshare >/dev/null || skip "no unshare (util-linux)"
}

@test "journal: by default each line is a datagram to /dev/log with identifier iplimit" {
    needs_namespace
    syslog_listener "$T/log.sock" "$T/syslog.txt"
    unset IPLIMIT_LOG # the default target
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=0
    private_dev_server "$T/log.sock" evloop
    client a 127.0.0.2 4 "ok=3 fail=1"
    wait_until 5 syslog_has '^<28>iplimit\[[0-9]+\]: rejected 127\.0\.0\.2: 3 open, limit 3$' ||
        diag "no rejection line: $(cat "$T/syslog.txt")"
    [ "$(grep -c . "$T/syslog.txt")" -eq 1 ] || diag "lines: $(cat "$T/syslog.txt")"
    grep -qx "<28>iplimit\[$SRV_PID\]: rejected 127.0.0.2: 3 open, limit 3" "$T/syslog.txt" ||
        diag "not the server's pid: $(cat "$T/syslog.txt")"
    expect_err 0 "iplimit"
}

@test "journal: a config error line reaches /dev/log from the constructor" {
    needs_namespace
    syslog_listener "$T/log.sock" "$T/syslog.txt"
    unset IPLIMIT_LOG
    export IPLIMIT_MAX=lots
    private_dev_server "$T/log.sock" evloop
    wait_until 5 syslog_has '^<27>iplimit\[[0-9]+\]: config error: IPLIMIT_MAX: "lots"' ||
        diag "no config error line: $(cat "$T/syslog.txt")"
    expect_err 0 "iplimit"
}

@test "journal: with no /dev/log the lines go to stderr" {
    needs_namespace
    unset IPLIMIT_LOG
    export IPLIMIT_MAX=3 IPLIMIT_RECONCILE_INTERVAL=0
    private_dev_server "" evloop
    client a 127.0.0.2 4 "ok=3 fail=1"
    wait_until 5 grep -qE "^iplimit\[$SRV_PID\]: rejected 127\.0\.0\.2: 3 open, limit 3$" "$SERR" ||
        diag "no line on stderr"
    expect_err 1 "iplimit"
}

@test "journal: the library never calls syslog(3) or openlog(3): the host's ident stays its own" {
    command -v nm >/dev/null || skip "no nm (binutils)"
    run nm -D --undefined-only "$IL_LIB"
    [ "$status" -eq 0 ] || diag "nm failed: $output"
    ! grep -Ew '(openlog|syslog|vsyslog|closelog|__syslog_chk|__vsyslog_chk)' <<<"$output" ||
        diag "imports: $(grep -Ew 'openlog|syslog|vsyslog|closelog|__syslog_chk|__vsyslog_chk' <<<"$output")"
}
