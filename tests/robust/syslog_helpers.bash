# A stand-in for syslogd and a server in a private /dev whose /dev/log is
# it: shared by journal.bats and reconciler.bats (needs root, python3 and
# unshare; the callers skip without them).

# syslog_listener SOCKET FILE: a stand-in for syslogd that appends every
# datagram it receives on SOCKET to FILE, one per line, for at most 90 s.
syslog_listener() {
    python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(0.5)
end = time.time() + 90
with open(sys.argv[2], "a") as out:
    while time.time() < end:
        try:
            out.write(s.recv(4096).decode(errors="replace") + "\n")
            out.flush()
        except socket.timeout:
            pass
' "$1" "$2" &
    IL_PIDS+=($!)
    wait_until 5 [ -S "$1" ] || diag "no listener on $1"
}

syslog_has() {
    grep -qE "$1" "$T/syslog.txt" 2>/dev/null
}

# private_dev_server LOGSOCK SERVER ARGS...: runs build/tests/SERVER in a
# mount namespace whose /dev is a fresh tmpfs with /dev/log a link to
# LOGSOCK ("" for no /dev/log), stdout to $SOUT, stderr to $SERR.
private_dev_server() {
    local sock=$1 kind=$2
    shift 2
    unshare --mount --propagation private sh -c '
        mount -t tmpfs -o mode=755 tmpfs /dev &&
        mknod -m 666 /dev/null c 1 3 && mknod -m 666 /dev/zero c 1 5 &&
        mknod -m 666 /dev/urandom c 1 9 &&
        { [ -z "$1" ] || ln -s "$1" /dev/log; } &&
        shift && exec env LD_PRELOAD="$@"' \
        sh "$sock" "$IL_LIB" "$IL_BIN/$kind" -l 127.0.0.1 -p 0 -a "$ALOG" "$@" \
        >"$SOUT" 2>"$SERR" 3>&- &
    SRV_PID=$!
    IL_PIDS+=("$SRV_PID")
    wait_until 10 grep -q '^ready port=' "$SOUT" || diag "$kind did not get ready: $(cat "$SERR")"
    PORT=$(sed -n 's/^ready port=\([0-9]*\)$/\1/p' "$SOUT")
}
