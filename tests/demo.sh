#!/usr/bin/env bash
# make demo: a prefork test server with iplimit preloaded (limit 3 per source,
# 127.0.0.9 allowlisted as a load balancer), and two clients that each try 6
# connections. Runs on loopback only and stops everything it starts.
set -u
cd "$(dirname "$0")/.."
lib=$PWD/build/libiplimit.so
bin=$PWD/build/tests
work=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

echo "== server: build/tests/prefork, 16 workers, LD_PRELOAD=build/libiplimit.so"
echo "   IPLIMIT_MAX=3 IPLIMIT_ALLOW=127.0.0.9/32 IPLIMIT_LOG=stderr IPLIMIT_BLOCKING=wait"
echo "   (its workers block in accept() without polling, hence blocking=wait)"
LD_PRELOAD=$lib IPLIMIT_MAX=3 IPLIMIT_ALLOW=127.0.0.9/32 IPLIMIT_LOG=stderr IPLIMIT_BLOCKING=wait \
    "$bin/prefork" -l 127.0.0.1 -p 0 -w 16 -a "$work/accepted" >"$work/out" 2>"$work/err" &
server_pid=$!
port=
for _ in $(seq 1 100); do
    port=$(sed -n 's/^ready port=\([0-9]*\)$/\1/p' "$work/out")
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { echo "server did not start"; cat "$work/err"; exit 1; }
echo "   listening on 127.0.0.1:$port"
echo

echo "== 6 connections from 127.0.0.2 (limit 3), each sends PING and waits for PONG:"
printf '   '; "$bin/ilclient" -s 127.0.0.2 -d 127.0.0.1 -p "$port" -n 6 </dev/null
echo "== 6 connections from 127.0.0.9 (allowlisted load balancer):"
printf '   '; "$bin/ilclient" -s 127.0.0.9 -d 127.0.0.1 -p "$port" -n 6 </dev/null
echo
echo "== the server's application saw these connections (its accept log):"
grep "^accept" "$work/accepted" | sort | uniq -c | sed 's/^/   /'
echo "== the server's stderr (the library logs there with IPLIMIT_LOG=stderr):"
sed 's/^/   /' "$work/err"
echo
a2=$(grep -c "^accept 127.0.0.2$" "$work/accepted"); a9=$(grep -c "^accept 127.0.0.9$" "$work/accepted")
if [ "$a2" -eq 3 ] && [ "$a9" -eq 6 ]; then
    echo "demo: OK: 127.0.0.2 was cut at 3 of 6, the allowlisted 127.0.0.9 kept all 6"
else
    echo "demo: UNEXPECTED: the application saw $a2 from 127.0.0.2 and $a9 from 127.0.0.9"
    exit 1
fi
