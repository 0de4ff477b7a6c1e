/* The libc functions iplimit wraps, found with dlsym(RTLD_NEXT).
 *
 * Resolution is lazy and idempotent: a wrapper may run before the
 * library's constructor (another library's constructor calling close),
 * and two threads may resolve at once; both store the same pointers. */
#ifndef IL_REAL_H
#define IL_REAL_H

#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>

struct il_real {
    /* accept, accept4: never NULL (real.c: the system call until dlsym
     * has answered). */
    int (*accept)(int, struct sockaddr *, socklen_t *);
    int (*accept4)(int, struct sockaddr *, socklen_t *, int);
    int (*close)(int);
    int (*close_range)(unsigned, unsigned, int);
    void (*closefrom)(int);
    int (*dup)(int);
    int (*dup2)(int, int);
    int (*dup3)(int, int, int);
    int (*fcntl)(int, int, ...);
    int (*fcntl64)(int, int, ...);
    int (*fclose)(FILE *);
    pid_t (*fork)(void);
    int (*daemon)(int, int);
    int (*execve)(const char *, char *const[], char *const[]);
    int (*execv)(const char *, char *const[]);
    int (*execvp)(const char *, char *const[]);
    int (*execvpe)(const char *, char *const[], char *const[]);
    int (*fexecve)(int, char *const[], char *const[]);
    void (*exit_now)(int);  /* _exit */
    void (*exit_now2)(int); /* _Exit */
    ssize_t (*sendmsg)(int, const struct msghdr *, int);
    int (*sendmmsg)(int, struct mmsghdr *, unsigned, int);
    ssize_t (*recvmsg)(int, struct msghdr *, int);
    int (*recvmmsg)(int, struct mmsghdr *, unsigned, int, struct timespec *);
    /* The read family (interpose_read.c): never NULL, like close. */
    ssize_t (*read)(int, void *, size_t);
    ssize_t (*readv)(int, const struct iovec *, int);
    ssize_t (*recv)(int, void *, size_t, int);
    ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
    ssize_t (*read_chk)(int, void *, size_t, size_t);
    ssize_t (*recv_chk)(int, void *, size_t, size_t, int);
    ssize_t (*recvfrom_chk)(int, void *, size_t, size_t, int, struct sockaddr *, socklen_t *);
    /* interpose_cancel.c: never NULL (real.c). */
    int (*pthread_cancel)(pthread_t);
};

extern struct il_real il_real __attribute__((visibility("hidden")));

/* libc's syscall(), past the library's own (interpose_syscall.c). Never
 * NULL: until the constructor has resolved it, a stand-in makes the
 * system call itself (real.c says why it must not resolve). The
 * library's own system calls go through il_sys, never through syscall(),
 * so they are neither counted nor slowed by its wrapper. */
extern long (*il_syscall_next)(long, ...) __attribute__((visibility("hidden")));
#define il_sys(...) __atomic_load_n(&il_syscall_next, __ATOMIC_RELAXED)(__VA_ARGS__)

/* The vfork the library's vfork calls (interpose_vfork.c): libc's own
 * (__vfork, the strong alias of its weak vfork) until il_real_resolve
 * finds whatever comes after the library. */
extern pid_t (*il_vfork_next)(void) __attribute__((visibility("hidden")));

void il_real_resolve(void);

/* Whether il_real.close is libc's close itself (no other interposer after
 * the library): then a close may be made as the same system call. */
extern int il_real_close_is_libc __attribute__((visibility("hidden")));

/* close() without the wrapper. Inline: the close() fast path ends here. */
static inline int il_real_close(int fd)
{
    return __atomic_load_n(&il_real.close, __ATOMIC_RELAXED)(fd);
}

/* The read family without the wrappers: one load and a tail call. Until
 * dlsym answers they are system calls (real.c). */
#define IL_REAL_READ(name) (__atomic_load_n(&il_real.name, __ATOMIC_RELAXED))

/* socket() straight to the kernel, for the library's own short-lived
 * sockets, which il_real_close closes: whatever intercepts libc in front
 * of the library (a sanitizer runtime in the host) sees neither the open
 * nor the close, instead of an open with no close. */
static inline int il_raw_socket(int domain, int type, int protocol)
{
    return (int)il_sys(SYS_socket, domain, type, protocol);
}

/* The real function, resolving on first use; NULL if libc lacks it. */
#define IL_REAL(name)                                                          \
    (__extension__({                                                           \
        __typeof__(il_real.name) real_ = __atomic_load_n(&il_real.name, __ATOMIC_ACQUIRE); \
        if (!real_) {                                                          \
            il_real_resolve();                                                 \
            real_ = __atomic_load_n(&il_real.name, __ATOMIC_ACQUIRE);          \
        }                                                                      \
        real_;                                                                 \
    }))

#endif
