#!/usr/bin/env bats
# Floods (issue 5 item 6): one source connecting as fast as it can for 10 s
# while 20 other sources hold connections under their limit and keep talking.
# None of the 20 is refused, every rejection is the flooder's and is counted
# exactly once, the server's fds return to their baseline, and the log stays
# small. Load comes from build/tests/ilflood (tests/robust/flood.c).
load helpers
load load

# The 20 holders: 127.0.0.10..29, 3 connections each (limit 5), PING every
# 100 ms on every connection for the whole flood.
holders_start() {
    load_start holders hold -s 127.0.0.10 -S 20 -n 3 -i 100
    local got
    got=$(load_line holders '^ok=') || return 1
    [[ $got == "ok=60 fail=0 "* ]] || diag "holders: expected ok=60 fail=0, got '$got'"
}

# holders_check: all 60 answered every round, none lost, none refused.
holders_check() {
    local done rounds pongs lost k
    load_release holders || return 1
    done=$(load_line holders '^rounds=') || return 1
    rounds=$(field "$done" rounds) pongs=$(field "$done" pongs) lost=$(field "$done" lost)
    [ "$lost" -eq 0 ] && [ "$rounds" -ge 1 ] && [ "$pongs" -eq $((60 * rounds)) ] ||
        diag "holders: $done"
    for k in $(seq 10 29); do
        [ "$(stat_rejected "127.0.0.$k")" -eq 0 ] || diag "127.0.0.$k had rejections" || return 1
    done
    expect_err 0 "rejected 127\.0\.0\.(1[0-9]|2[0-9]):"
}

@test "flood: one source for 10 s against evloop -e: the 20 holders are never refused, fds and log bounded" {
    export IPLIMIT_MAX=5 IPLIMIT_LOG_INTERVAL=2
    server_start evloop 127.0.0.1 -e
    local base res attempts rejected lines summaries
    base=$(server_fds)
    holders_start
    load_start flood flood -s 127.0.0.2 -T 10 -m 2000000 -k 5 -c 32 -t 2000
    load_line flood '^started$' >/dev/null
    # Under the flood each holder source opens one more (4 of its 5).
    run "$IL_BIN/ilflood" hold -s 127.0.0.10 -S 20 -n 1 -d 127.0.0.1 -p "$PORT" -H 0 </dev/null
    [[ $output == "ok=20 fail=0 "* ]] || diag "holders under flood: $output"
    res=$(load_line flood '^attempts=')
    attempts=$(field "$res" attempts) rejected=$(field "$res" rejected)
    # The flooder holds its 5; every later attempt got an RST, nothing else.
    [[ $res == "attempts=$attempts ok=5 rejected=$((attempts - 5)) eof=0 timeout=0 error=0 kept=5" ]] ||
        diag "flood: $res"
    [ "$attempts" -gt 1000 ] || diag "the flood made only $attempts attempts"
    # The server refused exactly what the flooder saw refused, and only that.
    [ "$(stat_rejected 127.0.0.2)" -eq "$rejected" ] || diag "server rejected $(stat_rejected 127.0.0.2), flooder saw $rejected"
    [ "$(stat_total rejected)" -eq "$rejected" ] || diag "service rejected $(stat_total rejected)"
    [ "$(stat_total untracked)" -eq 0 ] || diag "untracked connections"
    expect_log accept 127.0.0.2 5
    holders_check
    # The log: per key, one rejection line per 2 s window (the flood lasts at
    # most 10 s plus a 2 s drain: 7 windows) and one summary for each window
    # after the first; nothing else but at most one reconciliation notice.
    lines=$(err_count "^iplimit\[$SRV_PID\]: rejected 127\.0\.0\.2: 5 open, limit 5$")
    summaries=$(err_count "^iplimit\[$SRV_PID\]: 127\.0\.0\.2: [0-9]+ more rejected in the last [0-9]+ s$")
    [ "$lines" -ge 1 ] && [ "$lines" -le 7 ] && [ "$summaries" -le "$lines" ] ||
        diag "$lines rejection lines, $summaries summaries"
    [ "$(err_count '^iplimit')" -le $((lines + summaries + 1)) ] || diag "unexpected iplimit lines"
    expect_err 0 "reconcile: 127"
    # Every rejection is in the log exactly once: a line or a summary's N.
    # The last window's count shows when the next one opens: refuse more
    # until it does (each refusal counts too).
    within 10 summaries_above 127.0.0.2 "$summaries" || diag "no summary after the flood"
    lines=$(err_count "^iplimit\[$SRV_PID\]: rejected 127\.0\.0\.2: 5 open, limit 5$")
    [ $((lines + $(sum_summaries 127.0.0.2))) -eq "$(stat_rejected 127.0.0.2)" ] ||
        diag "$lines lines + $(sum_summaries 127.0.0.2) summarized != $(stat_rejected 127.0.0.2) rejected"
    # Everything closes: the server is back to its baseline fds, and counts
    # are exact again.
    load_release flood
    wait_log close 127.0.0.2 5
    wait_until 10 fds_are "$base" || diag "server fds: $(server_fds), baseline $base"
    client after 127.0.0.2 6 "ok=5 fail=1 reset=1"
    client after2 127.0.0.10 6 "ok=5 fail=1 reset=1"
    expect_err 0 "peer mismatch|flags lost|no room"
    server_alive
}

@test "flood: 200 rotating sources against kamlike: holders never refused, the global log cap holds" {
    # 127.0.1.0/24 may hold 1 each; the holders 5 each.
    export IPLIMIT_MAX=5 IPLIMIT_LIMITS=127.0.1.0/24=1
    server_start kamlike 127.0.0.1 -r 4
    local base res attempts rejected lines dropped n k
    base=$(server_fds)
    holders_start
    # Each of the 200 flood sources holds its one place...
    load_start fill2 hold -s 127.0.1.1 -S 200 -n 1 -t 5000
    res=$(load_line fill2 '^ok=')
    [[ $res == "ok=200 fail=0 "* ]] || diag "fill: $res"
    # ...so every attempt of the rotating flood is refused.
    load_start flood flood -s 127.0.1.1 -S 200 -T 5 -m 2000000 -k 0 -c 32 -t 2000
    res=$(load_line flood '^attempts=')
    attempts=$(field "$res" attempts) rejected=$(field "$res" rejected)
    [[ $res == "attempts=$attempts ok=0 rejected=$attempts eof=0 timeout=0 error=0 kept=0" ]] ||
        diag "flood: $res"
    [ "$attempts" -ge 200 ] || diag "the flood made only $attempts attempts"
    [ "$(stat_total rejected)" -eq "$rejected" ] || diag "service rejected $(stat_total rejected), flooder saw $rejected"
    holders_check
    # 200 keys each open their log window once (60 s) within the first
    # moments: at most 20 lines a second get written, the rest are dropped.
    lines=$(err_count "^iplimit\[[0-9]+\]: rejected 127\.0\.1\.[0-9]+: 1 open, limit 1$")
    [ "$lines" -ge 20 ] && [ "$lines" -le 140 ] || diag "$lines rejection lines"
    for k in $(grep -oE 'rejected 127\.0\.1\.[0-9]+:' "$SERR" | sort | uniq -c | awk '{print $1}'); do
        [ "$k" -eq 1 ] || diag "a key logged $k rejection lines" || return 1
    done
    # A new key refused in a later second reports what was dropped: then
    # every key's first rejection is either a line or counted as dropped.
    client fill3 127.0.1.201 1 "ok=1 fail=0"
    one_rejection 127.0.1.201
    wait_until 5 grep -q "rejected 127\.0\.1\.201:" "$SERR" || diag "no line for 127.0.1.201"
    dropped=0
    for n in $(sed -nE 's/^iplimit\[[0-9]+\]: ([0-9]+) rejection lines not logged \(more than 20 a second\)$/\1/p' "$SERR"); do
        dropped=$((dropped + n))
    done
    lines=$(err_count "^iplimit\[[0-9]+\]: rejected 127\.0\.1\.[0-9]+: 1 open, limit 1$")
    [ "$dropped" -ge 1 ] && [ $((lines + dropped)) -eq 201 ] || diag "$lines lines + $dropped dropped != 201"
    [ "$(err_count '^iplimit')" -le $((lines + 8)) ] || diag "too many iplimit lines"
    load_release flood
    load_release fill2
    client_release fill3
    wait_until 10 fds_are "$base" || diag "server fds: $(server_fds), baseline $base"
    client after 127.0.1.7 2 "ok=1 fail=1 reset=1"
    expect_err 0 "peer mismatch|flags lost"
    server_alive
}
