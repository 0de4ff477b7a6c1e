#!/usr/bin/env bash
# Runs every unit test binary (BINDIR/unit_*, default build/tests) and prints
# one TAP stream: each binary's tests renumbered in sequence, one plan at the
# end. A binary that crashes, times out, exits non-zero without a failing
# test, prints no plan, or writes a sanitizer report adds a failing test.
#   tests/unit/run.sh [BINDIR]
set -u
cd "$(dirname "$0")/../.."
bindir=${1:-build/tests}
per_binary_timeout=${UNIT_TIMEOUT:-300}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0:exitcode=66}

n=0 failed=0
emit() { # emit "ok"|"not ok" description
    n=$((n + 1))
    [ "$1" = ok ] || failed=$((failed + 1))
    echo "$1 $n - $2"
}

shopt -s nullglob
bins=("$bindir"/unit_*)
[ ${#bins[@]} -gt 0 ] || emit "not ok" "no unit test binaries in $bindir (make test-programs)"
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT

for bin in "${bins[@]}"; do
    name=$(basename "$bin")
    echo "# $name"
    timeout -k 5 "$per_binary_timeout" "$bin" >"$out" 2>"$err"
    rc=$?
    own_fail=0 plan= count=0
    while IFS= read -r line; do
        if [[ $line =~ ^(not\ )?ok\ [0-9]+\ -\ (.*)$ ]]; then
            count=$((count + 1))
            if [ -n "${BASH_REMATCH[1]}" ]; then
                emit "not ok" "$name: ${BASH_REMATCH[2]}"; own_fail=1
            else
                emit ok "$name: ${BASH_REMATCH[2]}"
            fi
        elif [[ $line =~ ^1\.\.([0-9]+)$ ]]; then
            plan=${BASH_REMATCH[1]}
        else
            echo "$line"
        fi
    done <"$out"
    sanitizer=$(grep -m1 -E 'Sanitizer|runtime error:' "$err" || true)
    if [ -n "$sanitizer" ]; then
        emit "not ok" "$name: sanitizer report: $sanitizer"
        sed -n '1,40s/^/#   /p' "$err"
    elif [ "$rc" -ne 0 ] && [ "$own_fail" -eq 0 ]; then
        emit "not ok" "$name: exited with status $rc without a failing test"
        tail -n 20 "$err" | sed 's/^/#   /'
    elif [ "$plan" != "$count" ]; then
        emit "not ok" "$name: planned ${plan:-nothing}, ran $count"
    fi
done
echo "1..$n"
[ "$failed" -eq 0 ]
