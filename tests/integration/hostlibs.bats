#!/usr/bin/env bats
# Libraries in the host that call wrapped functions before the library's
# constructor has run: jemalloc's first malloc (from an earlier library's
# constructor) calls syscall() under its own initialisation lock, so the
# library must make that call without resolving anything (dlsym and dlopen
# allocate). Redis and every other jemalloc-linked server hung at start.
load helpers

setup() {
    il_setup
    export IPLIMIT_RECONCILE_INTERVAL=0 IPLIMIT_MAX=3
    JEMALLOC=$(ldconfig -p | awk '$1 == "libjemalloc.so.2" { print $NF; exit }')
    [ -n "$JEMALLOC" ] || diag "libjemalloc.so.2 is not installed (tests/deps.d)"
}

@test "hostlibs: a program with jemalloc loaded after the library starts and ends" {
    [ -z "${IL_SANITIZER:-}" ] ||
        skip "a sanitized library loads only into an instrumented program or after its runtime, whose malloc then comes before jemalloc's"
    run timeout 20 env LD_PRELOAD="$IL_LIB $JEMALLOC" /bin/true
    [ "$status" -eq 0 ] || diag "status $status (124: it hung)"
}

@test "hostlibs: a server with jemalloc after the library limits exactly" {
    IL_PRELOAD_AFTER=$JEMALLOC
    SERVER=(evloop)
    case_limit
}
