/* syscall(): raw system calls that create or end fds to counted sockets,
 * or copy them into a child, are counted as their libc counterparts are
 * (a widely used event-loop library closes every socket with
 * syscall(SYS_close, fd); an FTP server makes each client's process with
 * syscall(SYS_clone, SIGCHLD, 0, ...)). Every other number goes straight
 * to libc's syscall() with its arguments untouched, so its return value
 * and errno are exactly libc's.
 *
 * The entry is a few instructions of assembly per architecture: it looks
 * the number up in a byte table and tail-jumps either to libc's syscall()
 * or to il_syscall_slow, with every argument register and the stack as the
 * caller left them. A C variadic function would have to save all six
 * argument registers (and, on x86-64, test %al for vector ones) first.
 * Under the SysV x86-64 and AAPCS64 (Linux) conventions, a variadic call
 * passes long arguments where a call with seven named longs does, so
 * il_syscall_slow reads the same values libc's syscall() would.
 *
 * The real work is always the real system call (libc's syscall(), i.e. a
 * raw one): a raw close is not a cancellation point, and stays not one. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "asm_entry.h"
#include "fdmap.h"
#include "handoff.h"
#include "interpose.h"
#include "limiter.h"
#include "real.h"

#define WATCH_LEN 448 /* above every number watched, on both architectures */

/* The numbers acted on. */
__attribute__((used, visibility("hidden"))) const unsigned char il_syscall_watch[WATCH_LEN] = {
    [SYS_close] = 1,
    [SYS_close_range] = 1,
    [SYS_accept] = 1,
    [SYS_accept4] = 1,
    [SYS_dup] = 1,
#ifdef SYS_dup2
    [SYS_dup2] = 1,
#endif
    [SYS_dup3] = 1,
    [SYS_fcntl] = 1,
    [SYS_exit_group] = 1,
    [SYS_execve] = 1,
    [SYS_execveat] = 1,
    [SYS_clone] = 1,
    [SYS_clone3] = 1,
#ifdef SYS_fork
    [SYS_fork] = 1,
#endif
    [SYS_sendmsg] = 1,
    [SYS_sendmmsg] = 1,
    [SYS_recvmsg] = 1,
    [SYS_recvmmsg] = 1,
};
_Static_assert(SYS_close_range < WATCH_LEN && SYS_clone3 < WATCH_LEN, "watch table too short");

static int raw_close(int fd)
{
    return (int)il_sys(SYS_close, fd);
}

static int raw_close_range(unsigned first, unsigned last, int flags)
{
    return (int)il_sys(SYS_close_range, first, last, flags);
}

static int raw_accept(int lfd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    (void)flags;
    return (int)il_sys(SYS_accept, lfd, addr, addrlen);
}

static int raw_accept4(int lfd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    return (int)il_sys(SYS_accept4, lfd, addr, addrlen, flags);
}

/* A clone that copies the memory and the fd table is a fork (issue: raw
 * clones count like forks): the child's inherited copies are references.
 * CLONE_VM children share the parent's memory (vfork, posix_spawn: they
 * exec at once) and CLONE_FILES ones its fd table: neither is a copy. */
static bool forks(uint64_t flags)
{
    return !(flags & (CLONE_VM | CLONE_FILES | CLONE_THREAD));
}

/* clone3's flags, read without trusting the pointer: a bad one must get
 * EFAULT from the kernel, not SIGSEGV from us. Every argument of the
 * variadic il_sys is a long: the seventh goes on the stack, where an int 0
 * leaves the upper half of the slot as it was, and process_vm_readv
 * refuses flags that are not 0 (EINVAL; seen under TSan, whose frames
 * leave non-zero bytes there: the clone3 child then took no references). */
static bool clone3_forks(long args, long size)
{
    uint64_t flags;
    if (!args || (unsigned long)size < sizeof flags)
        return false;
    struct iovec local = {&flags, sizeof flags}, remote = {(void *)args, sizeof flags};
    if (il_sys(SYS_process_vm_readv, (long)getpid(), &local, 1L, &remote, 1L, 0L) !=
        (long)sizeof flags)
        return false;
    return forks(flags);
}

static long fork_like(long nr, long a, long b, long c, long d, long e, long f)
{
    bool track = il_fork_prepare();
    long pid = il_sys(nr, a, b, c, d, e, f);
    il_fork_done(track, pid);
    return pid;
}

static long fcntl_raw(long fd, long cmd, long arg)
{
    if (cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC)
        return il_sys(SYS_fcntl, fd, cmd, arg);
    struct il_dup d = il_dup_begin((int)fd, -1);
    return il_dup_end(d, (int)fd, -1, (int)il_sys(SYS_fcntl, fd, cmd, arg));
}

static long dup_onto_raw(long nr, long oldfd, long newfd, long flags)
{
    struct il_dup d = il_dup_begin((int)oldfd, (int)newfd);
    return il_dup_end(d, (int)oldfd, (int)newfd, (int)il_sys(nr, oldfd, newfd, flags));
}

static long dup_raw(long oldfd)
{
    struct il_dup d = il_dup_begin((int)oldfd, -1);
    return il_dup_end(d, (int)oldfd, -1, (int)il_sys(SYS_dup, oldfd));
}

/* SCM_RIGHTS hand-offs made by raw system calls (handoff.h), exactly as
 * the sendmsg/recvmsg wrappers do them. */
static long sendmsg_raw(long fd, long msg, long flags)
{
    const struct msghdr *m = (const struct msghdr *)msg;
    if (!il_handoff_has_control(m))
        return il_sys(SYS_sendmsg, fd, msg, flags);
    struct il_handoff_send st;
    il_handoff_before_send((int)fd, m, &st);
    long n = il_sys(SYS_sendmsg, fd, msg, flags);
    il_handoff_after_send(&st, n);
    return n;
}

static long sendmmsg_raw(long fd, long vec, long vlen, long flags)
{
    struct il_handoff_send st;
    il_handoff_before_sendmmsg((int)fd, (const struct mmsghdr *)vec, (unsigned)vlen, &st);
    long n = il_sys(SYS_sendmmsg, fd, vec, vlen, flags);
    il_handoff_after_send(&st, n);
    return n;
}

static long recvmsg_raw(long fd, long msg, long flags)
{
    long n = il_sys(SYS_recvmsg, fd, msg, flags);
    if (n >= 0 && il_handoff_has_control((struct msghdr *)msg))
        il_handoff_after_recv((struct msghdr *)msg, n);
    return n;
}

static long recvmmsg_raw(long fd, long vec, long vlen, long flags, long timeout)
{
    long n = il_sys(SYS_recvmmsg, fd, vec, vlen, flags, timeout);
    if (n > 0)
        il_handoff_after_recvmmsg((struct mmsghdr *)vec, (int)n);
    return n;
}

/* Entered from the assembly stub below with the caller's arguments. */
long il_syscall_slow(long nr, long a, long b, long c, long d, long e, long f)
    __attribute__((used, visibility("hidden")));
long il_syscall_slow(long nr, long a, long b, long c, long d, long e, long f)
{
    if (!il_active())
        return il_sys(nr, a, b, c, d, e, f);
    switch (nr) {
    case SYS_close:
        if (__builtin_expect(il_fdmap_get((int)a) == 0, 1))
            return il_sys(SYS_close, a);
        return il_close_known((int)a, raw_close);
    case SYS_close_range:
        return il_close_range((unsigned)a, (unsigned)b, (int)c, raw_close_range);
    case SYS_accept:
        return il_accept((int)a, (struct sockaddr *)b, (socklen_t *)c, 0, raw_accept);
    case SYS_accept4:
        return il_accept((int)a, (struct sockaddr *)b, (socklen_t *)c, (int)d, raw_accept4);
    case SYS_dup:
        return dup_raw(a);
#ifdef SYS_dup2
    case SYS_dup2:
        return dup_onto_raw(SYS_dup2, a, b, 0);
#endif
    case SYS_dup3:
        return dup_onto_raw(SYS_dup3, a, b, c);
    case SYS_fcntl:
        return fcntl_raw(a, b, c);
    case SYS_exit_group:
        il_limiter_release_all();
        return il_sys(SYS_exit_group, a);
    case SYS_execve:
    case SYS_execveat:
        return il_exec_raw(nr, a, b, c, d, e);
    case SYS_clone:
        if (forks((uint64_t)a))
            return fork_like(nr, a, b, c, d, e, f);
        break;
    case SYS_clone3:
        if (clone3_forks(a, b))
            return fork_like(nr, a, b, c, d, e, f);
        break;
#ifdef SYS_fork
    case SYS_fork:
        return fork_like(nr, a, b, c, d, e, f);
#endif
    case SYS_sendmsg:
        return sendmsg_raw(a, b, c);
    case SYS_sendmmsg:
        return sendmmsg_raw(a, b, c, d);
    case SYS_recvmsg:
        return recvmsg_raw(a, b, c);
    case SYS_recvmmsg:
        return recvmmsg_raw(a, b, c, d, e);
    }
    return il_sys(nr, a, b, c, d, e, f);
}

#if defined(__x86_64__)
/* nr in %rdi; %r11 is scratch in the SysV ABI (and not an argument). An
 * unsigned compare sends negative numbers straight through too. */
__asm__(".text\n"
        ".globl syscall\n"
        ".type syscall, @function\n"
        ".p2align 4\n"
        "syscall:\n" IL_ENTRY_MARK
        "    cmpq $" IL_STR(WATCH_LEN) ", %rdi\n"
        "    jae 1f\n"
        "    leaq il_syscall_watch(%rip), %r11\n"
        "    cmpb $0, (%r11,%rdi)\n"
        "    jne il_syscall_slow\n"
        "1:  jmp *il_syscall_next(%rip)\n"
        ".size syscall, .-syscall\n");
#elif defined(__aarch64__)
/* nr in x0; x16 (IP0) is the intra-procedure-call scratch register. */
__asm__(".text\n"
        ".globl syscall\n"
        ".type syscall, %function\n"
        ".p2align 4\n"
        "syscall:\n" IL_ENTRY_MARK
        "    cmp x0, #" IL_STR(WATCH_LEN) "\n"
        "    b.hs 1f\n"
        "    adrp x16, il_syscall_watch\n"
        "    add x16, x16, :lo12:il_syscall_watch\n"
        "    ldrb w16, [x16, x0]\n"
        "    cbz w16, 1f\n"
        "    b il_syscall_slow\n"
        "1:  adrp x16, il_syscall_next\n"
        "    ldr x16, [x16, :lo12:il_syscall_next]\n"
        "    br x16\n"
        ".size syscall, .-syscall\n");
#else
/* Elsewhere: the portable (slower) entry. */
__attribute__((visibility("default"))) long syscall(long nr, ...)
{
    va_list ap;
    va_start(ap, nr);
    long a = va_arg(ap, long), b = va_arg(ap, long), c = va_arg(ap, long);
    long d = va_arg(ap, long), e = va_arg(ap, long), f = va_arg(ap, long);
    va_end(ap);
    if ((unsigned long)nr < WATCH_LEN && il_syscall_watch[nr])
        return il_syscall_slow(nr, a, b, c, d, e, f);
    return il_sys(nr, a, b, c, d, e, f);
}
#endif
