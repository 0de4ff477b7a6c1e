#!/usr/bin/env bats
# close() of a counted connection is a cancellation point acted on just after
# the call (docs/design.md, "fork lock"): a thread with a cancellation
# request pending closes its accepted fd and is then cancelled; the fd is
# closed and its count released. build/tests/cancelclose does it all in one
# process and connects again from the same source under IPLIMIT_MAX=1.
load helpers

# run_cancelclose [VAR=VALUE...]: build/tests/cancelclose under the library
# (and IL_PRELOAD_FIRST, PRELOAD_AFTER), IPLIMIT_MAX=1, in $output.
run_cancelclose() {
    run timeout 30 env LD_PRELOAD="${IL_PRELOAD_FIRST:+$IL_PRELOAD_FIRST }$IL_LIB${PRELOAD_AFTER:+ $PRELOAD_AFTER}" \
        IPLIMIT_MAX=1 IPLIMIT_LOG=stderr IPLIMIT_RECONCILE_INTERVAL=0 "$@" "$IL_BIN/cancelclose"
    [ "$status" -eq 0 ] || diag "status $status: $output"
}

@test "cancelclose: a pending cancellation acts after close, which closed and released" {
    run_cancelclose
    [[ $output == *"cancelled=1 closed=1 second=ok"* ]] || diag "$output"
}

@test "cancelclose: the check can fail: a second connection while the first is counted is refused" {
    # Without the close's release (the thread cancelled before it, as plain
    # glibc does), the count would stay: here the library refuses the second
    # connection of a source at its limit, which the first test rules out.
    run_cancelclose CANCELCLOSE_KEEP=1
    [[ $output == *"second=refused"* ]] || diag "$output"
}

@test "cancelclose: a request from another thread, ordered before the close by a pipe, acts after close" {
    # The library's close skips pthread_testcancel unless pthread_cancel was
    # ever called in the process (interpose_cancel.c): here main cancels the
    # worker, which closes after reading main's word from a pipe.
    run_cancelclose CANCELCLOSE_OTHER=1
    [[ $output == *"cancelled=1 closed=1 second=ok"* ]] || diag "$output"
}

@test "cancelclose: a request made before the library's constructor acts after close" {
    # cancelearly.so, preloaded after the library, runs its constructor
    # first (another library's constructor): it cancels a thread of its own
    # before the library has chosen close's way for counted connections,
    # which must not then choose the way that never tests (interpose.c,
    # il_close_way_resolved). The thread later accepts, closes, and is
    # cancelled after the close.
    [ -e "$IL_BIN/cancelearly.so" ] || diag "missing $IL_BIN/cancelearly.so: run make test-programs"
    PRELOAD_AFTER=$IL_BIN/cancelearly.so run_cancelclose CANCELCLOSE_EARLY=1
    [[ $output == *"cancelled=1 closed=1 second=ok"* ]] || diag "$output"
}
