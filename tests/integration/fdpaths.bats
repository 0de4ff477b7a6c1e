#!/usr/bin/env bats
# Each wrapped call that copies or closes a counted fd, one at a time
# (build/tests/probe -o OP): the limit holds while the copy is open and the
# count goes back to zero the moment the server's last fd closes. Runs with
# reconciliation off, so a leaked or lost count cannot heal (issue 16).
load ../cli/helpers
load paths_helpers

# op_case OP: 3 of 6 from one source; all released when the client closes.
op_case() {
    export IPLIMIT_MAX=3
    server_start probe 127.0.0.1 -o "$1"
    client a 127.0.0.2 6 "ok=3 fail=3"
    wait_open 127.0.0.2 3
    client_release a
    wait_log close 127.0.0.2 3
    wait_open 127.0.0.2 0
    client b 127.0.0.2 4 "ok=3 fail=1"
    expect_err 0 "copy|close_range:|fdopen|flags lost|asmclose:"
}

@test "dup copy served, accepted fd closed: the limit holds, the close of the copy releases" {
    op_case dup
}

@test "fcntl F_DUPFD_CLOEXEC copy: the limit holds, the close of the copy releases" {
    op_case dupfd
}

@test "dup2 copy: the limit holds, the close of the copy releases" {
    op_case dup2
}

@test "dup2 over a counted fd releases the connection it replaced" {
    op_case dup2over
}

@test "dup3 copy (O_CLOEXEC): the limit holds, the close of the copy releases" {
    op_case dup3
}

@test "dup3 over a counted fd releases the connection it replaced" {
    op_case dup3over
}

@test "fcntl64 F_DUPFD_CLOEXEC copy: the limit holds, the close of the copy releases" {
    op_case dupfd64
}

@test "close_range(fd, fd) releases exactly that fd" {
    op_case close_range
}

@test "fclose of an fdopen'd counted socket releases it" {
    op_case fclose
}

# The same paths taken by raw system calls (syscall(2)): the dispatcher in
# interpose_syscall.c must count each number as its libc function.
@test "syscall(SYS_dup) copy: the limit holds, the close of the copy releases" {
    op_case sysdup
}

@test "syscall(SYS_fcntl, F_DUPFD_CLOEXEC) copy: the limit holds, the close of the copy releases" {
    op_case sysdupfd
}

@test "syscall(SYS_dup3, O_CLOEXEC) copy: the limit holds, the close of the copy releases" {
    op_case sysdup3
}

@test "syscall(SYS_close_range, fd, fd) releases exactly that fd" {
    op_case sysclose_range
}

@test "accept4(SOCK_CLOEXEC): counted, its flags kept, released at close" {
    op_case accept4
}

@test "syscall(SYS_accept4, SOCK_CLOEXEC): counted, its flags kept, released at close" {
    op_case sysaccept4
}

@test "close of a counted fd closed behind the library's back: -1/EBADF, and released" {
    op_case asmclose
}

@test "one closefrom releases every connection it closes" {
    export IPLIMIT_MAX=3
    server_start probe 127.0.0.1 -o closefrom
    client a 127.0.0.2 3 "ok=3 fail=0"
    client b 127.0.0.3 2 "ok=2 fail=0"
    client_release a
    client_release b
    wait_open 127.0.0.2 3
    kill -USR2 "$SRV_PID"
    wait_log close 127.0.0.2 3
    wait_log close 127.0.0.3 2
    wait_open 127.0.0.2 0
    wait_open 127.0.0.3 0
}
