#!/usr/bin/env bats
# A server that makes each client's process with a raw clone system call
# and drops privileges in it (setgroups): the library's reconciler thread
# is created inside the first accept, and a child cloned while glibc still
# lists that thread as not started would wait for ever in setgroups. The
# first connection after each fresh start must be served.
load helpers

# RAWCLONE_STARTS (default 30, 10 under a sanitizer): fresh starts; each is
# bounded by the client's own deadline (-t), a hang fails the test at once.
# Without the thread's start wait, most starts hung (8 of 10).
@test "rawclone: the first connection of each fresh start is served (setgroups never hangs)" {
    [ "$(id -u)" -eq 0 ] || skip "setgroups needs root"
    local i starts=${RAWCLONE_STARTS:-30}
    [ -n "${IL_SANITIZER:-}" ] && starts=${RAWCLONE_STARTS:-10}
    export IPLIMIT_MAX=3
    for ((i = 1; i <= starts; i++)); do
        : >"$ALOG"
        server_start rawclone 127.0.0.1
        client "c$i" 127.0.0.2 1 "ok=1 fail=0" -t 3000 ||
            diag "start $i of $starts: first connection not served" || return 1
        wait_log setgroups 127.0.0.2 1
        expect_log setgroups-failed 127.0.0.2 0
        client_release "c$i"
        stop_pid "$SRV_PID"
    done
}
