#!/usr/bin/env bash
# Runs every suite named in tests/suites, keeps each one's TAP output in
# build/results/NAME.tap, and ends with one line: "N passed, N failed".
# A suite that exits non-zero without reporting a failing test counts as one failure.
set -u
cd "$(dirname "$0")/.."
results=${RESULTS:-build/results}
rm -rf "$results"; mkdir -p "$results"
only=${SUITES:-}
total_pass=0 total_fail=0 total_skip=0

while read -r name cmd; do
    case "$name" in ''|'#'*) continue ;; esac
    if [ -n "$only" ] && [[ " $only " != *" $name "* ]]; then continue; fi
    tap="$results/$name.tap"
    echo "=== suite $name: $cmd"
    bash -c "$cmd" > >(tee "$tap") 2> "$results/$name.stderr"
    rc=$?
    wait
    pass=$(grep -Ec '^ok [0-9]+' "$tap" || true)
    skip=$(grep -Ec '^ok [0-9]+.*# *(skip|SKIP)' "$tap" || true)
    fail=$(grep -Ec '^not ok [0-9]+' "$tap" || true)
    pass=${pass:-0} skip=${skip:-0} fail=${fail:-0}
    pass=$((pass - skip))
    if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
        echo "not ok - suite $name exited $rc without a failing test; stderr in $results/$name.stderr"
        tail -n 20 "$results/$name.stderr"
        fail=1
    fi
    echo "--- suite $name: $pass passed, $fail failed, $skip skipped"
    total_pass=$((total_pass + pass)); total_fail=$((total_fail + fail)); total_skip=$((total_skip + skip))
done < tests/suites

echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
