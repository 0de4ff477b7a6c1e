# Shared by tests/integration-asan.sh and tests/integration-tsan.sh (sourced
# from the top of the tree).
#
# sanitized_suites REPORTS SHOW: runs the integration and exec suites and the
# model-based stress test (tests/robust/stress.bats, one seed a test), then
# makes each sanitizer report file in REPORTS a failing test of its own,
# numbered after bats's tests and printed through SHOW (a command given the
# file); the plan comes last. Returns bats's status, or 1 if any report.
sanitized_suites() {
    local reports=$1 show=$2 line count=0 status n=0 report
    shopt -s lastpipe
    bats --tap tests/integration tests/exec tests/robust/stress.bats | while IFS= read -r line; do
        [[ $line =~ ^1\.\.[0-9]+$ ]] && continue
        [[ $line =~ ^(not\ )?ok\ ([0-9]+) ]] && count=${BASH_REMATCH[2]}
        printf '%s\n' "$line"
    done
    status=${PIPESTATUS[0]}
    for report in "$reports"/*; do
        [ -e "$report" ] || continue
        n=$((n + 1))
        echo "not ok $((count + n)) - sanitizer report $(basename "$report")"
        "$show" "$report" | sed 's/^/# /'
    done
    echo "1..$((count + n))"
    [ "$n" -eq 0 ] && return "$status"
    return 1
}
