#!/usr/bin/env bash
# The integration and exec suites under ThreadSanitizer: the test servers,
# execserver and ilclient built with clang -fsanitize=thread (build/tsan/tests/)
# run with build/tsan/libiplimit.so preloaded. The library's instrumentation
# binds to the runtime linked statically into the program, so no runtime is
# preloaded before it (an uninstrumented program fails: undefined __tsan_init;
# a second runtime in an instrumented one would not work either). The chain is
# program -> TSan's interceptor -> the library's accept/close/fork... -> libc,
# and the library's own libc calls by name go through TSan's interceptors, so
# TSan sees the library's locks, atomics and threads as well as the host's
# (calls through src/lib/real.h's pointers bypass it: docs/testing.md).
# A report is written to a file per process; each one found afterwards is a
# failing test of its own, symbolized here: TSan's own symbolizer would be
# started with the servers' LD_PRELOAD and fail to load, so the run uses
# symbolize=0 and frames carry the module's full path and offset.
# IL_SANITIZER=tsan lets a test skip itself here with a reason (docs/testing.md
# lists any that do).
set -u
cd "$(dirname "$0")/.."
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
bin=$PWD/build/tsan/tests
for f in "$bin/prefork" "$bin/ilclient" "$bin/execserver" build/tsan/libiplimit.so; do
    [ -e "$f" ] || { echo "not ok 1 - missing $f: run make test-programs"; exit 1; }
done
export IL_LIB=$PWD/build/tsan/libiplimit.so IL_BIN=$bin IL_SANITIZER=tsan
unset IL_PRELOAD_FIRST
# halt_on_error=0: a server keeps serving after a report, so one race does
# not turn into a cascade of unrelated test failures; the report still fails.
# die_after_fork stays at its default (1): a child of a multi-threaded parent
# that starts a thread dies with a message in the report file, which fails the
# suite rather than passing a process TSan cannot follow unnoticed.
export TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:log_path=$reports/tsan:symbolize=0:stack_trace_format='    #%n %p (%m+%o)'"
symbolizer=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer)
# symbolize FILE: the report with "function file:line" in each frame.
symbolize() {
    local line s re='^( *#[0-9]+) 0x[0-9a-f]+ \((/[^()]*)\+(0x[0-9a-f]+)\)$'
    while IFS= read -r line; do
        if [ -n "$symbolizer" ] && [[ $line =~ $re ]]; then
            s=$("$symbolizer" --obj="${BASH_REMATCH[2]}" --inlining=false \
                --relative-address "${BASH_REMATCH[3]}" 2>/dev/null | head -n 2 | paste -sd ' ')
            echo "${BASH_REMATCH[1]} ${s:-?} (${BASH_REMATCH[2]##*/}+${BASH_REMATCH[3]})"
        else
            echo "$line"
        fi
    done <"$1"
}
show_report() {
    symbolize "$1" | head -n 80
}
. tests/sanitized-suites.bash
sanitized_suites "$reports" show_report
