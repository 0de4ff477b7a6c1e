#!/usr/bin/env bats
# Servers that exec: the new program joins the service's table and keeps
# counting the connections it inherits (tests/exec/execserver.c).
load ../integration/helpers

# inetd/sshd style: the parent accepts, forks and closes its copy at once;
# the child execs a handler that holds the connection. Without hand-over at
# exec the count would drop to zero while the handlers still serve.
@test "exec: handlers exec'd per connection keep the count (inetd style)" {
    export IPLIMIT_MAX=3
    server_start execserver 127.0.0.1 -m inetd
    client a 127.0.0.2 6 "ok=3 fail=3"
    wait_log accept 127.0.0.2 3
    client b 127.0.0.2 2 "ok=0 fail=2"
    expect_log accept 127.0.0.2 3
}

@test "exec: counts return to zero when the exec'd handlers close" {
    export IPLIMIT_MAX=3
    server_start execserver 127.0.0.1 -m inetd
    client a 127.0.0.2 3 "ok=3 fail=0"
    client_release a
    wait_log close 127.0.0.2 3
    client b 127.0.0.2 4 "ok=3 fail=1"
    expect_log accept 127.0.0.2 6
}

# Postfix style: the master fork+execs its workers, which accept on the
# inherited listener; they must share one table, not one each.
@test "exec: workers started by fork+exec share one count" {
    export IPLIMIT_MAX=3
    server_start execserver 127.0.0.1 -m workers -w 4
    client a 127.0.0.2 8 "ok=3 fail=5"
    expect_log accept 127.0.0.2 3
}

@test "exec: a program exec'd without the library gets nothing passed" {
    export IPLIMIT_MAX=3
    # The handlers run with LD_PRELOAD cleared, so they cannot account for
    # their connections: each count is released at exec (fail open), never
    # leaked. Once 3 handlers run, 3 more connections are admitted.
    server_start execserver 127.0.0.1 -m inetd -n
    client a 127.0.0.2 3 "ok=3 fail=0"
    wait_log accept 127.0.0.2 3
    client b 127.0.0.2 3 "ok=3 fail=0"
    client_release a
    client_release b
    wait_log close 127.0.0.2 6
}

# exec_call_case CALL: inetd style, each handler exec'd by CALL: it joins
# the table and adopts its connection (the limit holds while the parent
# has closed its copies), and its close releases it (nothing leaks).
exec_call_case() {
    export IPLIMIT_MAX=3
    server_start execserver 127.0.0.1 -m inetd -x "$1"
    client a 127.0.0.2 6 "ok=3 fail=3"
    wait_log accept 127.0.0.2 3
    client b 127.0.0.2 2 "ok=0 fail=2"
    client_release a
    wait_log close 127.0.0.2 3
    client c 127.0.0.2 4 "ok=3 fail=1"
    expect_log accept 127.0.0.2 6
    expect_err 0 "^(exec[a-z]*|fexecve|syscall): |unknown -x"
}

@test "exec: execv hands over the segment and the connection" { exec_call_case execv; }
@test "exec: execve hands over the segment and the connection" { exec_call_case execve; }
@test "exec: execvp hands over the segment and the connection" { exec_call_case execvp; }
@test "exec: execvpe hands over the segment and the connection" { exec_call_case execvpe; }
@test "exec: execl hands over the segment and the connection" { exec_call_case execl; }
@test "exec: execlp hands over the segment and the connection" { exec_call_case execlp; }
@test "exec: execle hands over the segment and the connection" { exec_call_case execle; }
@test "exec: fexecve hands over the segment and the connection" { exec_call_case fexecve; }
@test "exec: syscall(SYS_execve) hands over the segment and the connection" { exec_call_case syscall; }
