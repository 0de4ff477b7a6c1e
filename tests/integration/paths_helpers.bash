# Count checks shared by paths.bats and fdpaths.bats: a key's open count
# from a fresh `iplimit stat`, and waits on it.

# key_open KEY: the key's open count in a fresh stat (0 when absent).
key_open() {
    stat_json >/dev/null 2>&1 || { echo "?"; return; }
    local n
    n=$(key_field "$1" open)
    [ "$n" = none ] && n=0
    echo "$n"
}

open_is() {
    [ "$(key_open "$1")" = "$2" ]
}

wait_open() {
    wait_until 10 open_is "$1" "$2" || diag "key $1: waited for open $2, got $(key_open "$1")"
}
