#!/usr/bin/env bash
# The suite `cross`: the fdsafe tests that drive syscall() (raw close,
# accept4, clone, exit_group, the pass-through probe) and libc's clone(),
# and the vfork tests whose child execs a native program,
# with the library and the server built for aarch64 (mk/cross.mk) and run
# under qemu-user; the clients and the CLI are native. Tests that exec are
# left out (qemu-user cannot exec a foreign program without binfmt_misc), and
# so is clone3, which qemu-user 7.2 does not implement (ENOSYS with or
# without the library; the probe test compares the two).
cd "$(dirname "$0")/../.." || exit 1
build=${BUILD:-build}/aarch64
if ! command -v qemu-aarch64 >/dev/null || [ ! -f "$build/libiplimit.so" ] ||
    [ ! -x "$build/tests/fdsafe" ] || [ ! -x "$build/tests/spawner" ]; then
    echo "1..0 # skip no qemu-aarch64 or no aarch64 build (make check installs and builds both)"
    exit 0
fi
export IL_SERVER_RUN=$PWD/tests/cross/qemu-run
export IL_SERVER_BIN=$PWD/$build/tests IL_LIB=$PWD/$build/libiplimit.so
export SPAWNER_EXEC=/bin/true # the vfork children exec a native program
# vfork.bats: the cases whose child execs /bin/true (a native program, which
# qemu-user runs; qemu makes the vfork a fork, so the child's closes reach the
# shared table alone, and only the mark keeps them from it), not the one that
# execs the aarch64 spawner again.
exec bats --tap -f 'SYS_close\)|SYS_accept4|SYS_clone\)|exit_group|passes other|libc.s clone|vfork: (the child|a clone|a child that)' \
    tests/integration/fdsafe.bats tests/integration/vfork.bats
