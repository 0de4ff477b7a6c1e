#!/usr/bin/env bash
# The integration and exec suites with the library built with ASan + UBSan
# (build/asan/libiplimit.so), preloaded after clang's ASan runtime into the
# uninstrumented test servers. A sanitizer report is written to a file per
# process; each one found afterwards is a failing test of its own.
# IL_SANITIZER=asan lets a test skip itself here with a reason
# (docs/testing.md lists any that do).
set -u
cd "$(dirname "$0")/.."
rt=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
[ -f "$rt" ] || { echo "not ok 1 - no ASan runtime ($rt): install libclang-rt-14-dev"; exit 1; }
export IL_LIB=$PWD/build/asan/libiplimit.so IL_PRELOAD_FIRST=$rt IL_SANITIZER=asan
export ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0:log_path=$reports/asan
export UBSAN_OPTIONS=print_stacktrace=1:log_path=$reports/ubsan
show_report() {
    head -n 40 "$1"
}
. tests/sanitized-suites.bash
sanitized_suites "$reports" show_report
