#!/usr/bin/env bats
# iplimit --version, and man pages that mandoc reads without a complaint.
load helpers

@test "iplimit --version and -V print the version from the file VERSION" {
    local want
    want="iplimit $(cat "$IL_ROOT/VERSION")"
    [ "$(cat "$IL_ROOT/VERSION")" = 0.2.0 ] || diag "VERSION: $(cat "$IL_ROOT/VERSION")"
    run "$IPLIMIT" --version
    [ "$status" -eq 0 ] && [ "$output" = "$want" ] || diag "exit $status: $output"
    run "$IPLIMIT" -V
    [ "$status" -eq 0 ] && [ "$output" = "$want" ] || diag "exit $status: $output"
}

@test "mandoc -T lint finds nothing in the man pages" {
    command -v mandoc >/dev/null || diag "missing mandoc (tests/deps.d/man.txt)"
    local page
    for page in "$IL_ROOT"/man/*.[0-9]; do
        run mandoc -T lint "$page"
        [ "$status" -eq 0 ] && [ -z "$output" ] || diag "$page: $output"
    done
}
