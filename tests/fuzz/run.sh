#!/usr/bin/env bash
# Runs each libFuzzer target (build/fuzz/fuzz_TARGET) for FUZZ_SECONDS
# (default 20) from its seed corpus tests/fuzz/corpus/TARGET and prints TAP:
# one test per target, "ok" when the run ends without a crash, leak,
# undefined behaviour or timeout. New inputs go to build/fuzz/corpus/TARGET,
# crashing ones to build/fuzz/artifacts/.
#   tests/fuzz/run.sh [TARGET...]
set -u
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-20}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(env file cidr segment proxyhdr)
mkdir -p build/fuzz/artifacts
export LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0
n=0 failed=0
for t in "${targets[@]}"; do
    n=$((n + 1))
    bin=build/fuzz/fuzz_$t work=build/fuzz/corpus/$t log=build/fuzz/$t.log
    if [ ! -x "$bin" ]; then
        echo "not ok $n - fuzz $t: $bin not built (make test-programs)"
        failed=$((failed + 1)); continue
    fi
    mkdir -p "$work"
    timeout -k 10 $((seconds + 60)) "$bin" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -max_len=4096 -artifact_prefix="build/fuzz/artifacts/$t-" \
        "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1)
    if [ "$rc" -eq 0 ]; then
        echo "ok $n - fuzz $t: ${runs:-done} in ${seconds} s, no crash"
    else
        failed=$((failed + 1))
        echo "not ok $n - fuzz $t: exit $rc (log $log)"
        grep -m1 -E 'ERROR|SUMMARY|runtime error' "$log" | sed 's/^/#   /'
        grep -E '^(#[0-9]+ +in|    #[0-9]+ )' "$log" | head -12 | sed 's/^/#   /'
        grep -o 'Test unit written to .*' "$log" | sed 's/^/#   /'
    fi
done
echo "1..$n"
[ "$failed" -eq 0 ]
