/* Exec: passing the segment and counted fds to the new program (inherit.h). */
#include "inherit.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conntab.h"
#include "fdmap.h"
#include "forklock.h"
#include "interpose.h"
#include "limiter.h"
#include "log.h"
#include "ownfd.h"
#include "real.h"
#include "segment_recover.h"

#define SEGMENT_VAR "IPLIMIT_SEGMENT_FD"
#define INHERIT_VAR "IPLIMIT_INHERIT"
static struct il_own_fd *segment;

void il_inherit_keep_segment(int fd)
{
    segment = il_own_fd_take(fd);
}

/* The kept fd was closed behind the library's back (the host's libc
 * closes are all seen): reopen the segment from another process of the
 * service, or say that programs exec'd from here start apart. Either is
 * logged once per process, through the lock-free path (this may run in
 * the child of a threaded process, between fork and exec: log.h). */
static int recover_segment(void)
{
    static int logged;
    if (!segment)
        return 0;
    int lost = il_own_fd_num(segment);
    uint64_t dev = atomic_load_explicit(&segment->dev, memory_order_relaxed);
    uint64_t ino = atomic_load_explicit(&segment->ino, memory_order_relaxed);
    char from[80] = "";
    int fd = il_segment_recover(&il_state.shm, lost, dev, ino, from, sizeof from);
    if (fd >= 0) {
        il_own_fd_close(segment); /* frees the slot; the number is not ours */
        segment = il_own_fd_take(fd);
    }
    int ok = il_own_fd_valid(segment);
    if (__atomic_exchange_n(&logged, 1, __ATOMIC_RELAXED))
        return ok;
    if (ok)
        il_log(LOG_NOTICE,
               "the shared table's fd (%d) was closed behind the library's back; "
               "reopened through %s",
               lost, from);
    else
        il_log(LOG_ERR,
               "the shared table's fd (%d) was closed behind the library's back and no "
               "process of the service can lend it: programs exec'd from pid %d count "
               "apart from the service",
               lost, (int)getpid());
    return ok;
}

static int parse_int(const char *text, char **end)
{
    errno = 0;
    long value = strtol(text, end, 10);
    if (errno || *end == text || value < 0 || value > 0x7fffffff)
        return -1;
    return (int)value;
}

/* IPLIMIT_INHERIT is "fd:handle,fd:handle" (handles in hex). */
static void adopt_fds(const char *list)
{
    const char *p = list;
    while (p && *p) {
        char *end;
        int fd = parse_int(p, &end);
        if (fd < 0 || *end != ':')
            return;
        unsigned long long handle = strtoull(end + 1, &end, 16);
        if (IL_REAL(fcntl)(fd, F_GETFD) >= 0 && (handle & IL_FD_CONN))
            il_limiter_release(il_fdmap_swap(fd, handle));
        else
            il_limiter_release(handle); /* the fd did not survive: drop its reference */
        p = *end == ',' ? end + 1 : NULL;
    }
}

int il_inherit_attach(struct il_shm *shm)
{
    const char *var = getenv(SEGMENT_VAR);
    if (!var)
        return -1;
    char *end;
    int fd = parse_int(var, &end);
    int attached = fd >= 0 && *end == '\0' && il_shm_attach_fd(shm, fd, 1) == 0;
    if (attached) {
        il_inherit_keep_segment(fd);
        __atomic_store_n(&il_state.active, 1, __ATOMIC_RELEASE);
        const char *list = getenv(INHERIT_VAR);
        if (list)
            adopt_fds(list);
    } else if (fd >= 0) {
        il_real_close(fd);
    }
    unsetenv(SEGMENT_VAR);
    unsetenv(INHERIT_VAR);
    return attached ? 0 : -1;
}

/* Will the new program load this library? Only then can it adopt anything. */
static int preloads_us(char *const envp[])
{
    Dl_info info;
    if (!dladdr((void *)il_inherit_prepare, &info) || !info.dli_fname)
        return 0;
    const char *base = strrchr(info.dli_fname, '/');
    base = base ? base + 1 : info.dli_fname;
    for (char *const *e = envp; e && *e; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) == 0)
            return strstr(*e + 11, base) != NULL;
    return 0;
}

size_t il_inherit_envp_slots(char *const envp[])
{
    size_t n = 0;
    while (envp && envp[n])
        n++;
    return n + 3;
}

/* Decides each counted fd's fate; appends the passed ones to list. Under
 * the fork lock (forklock.h), so that a fork in another thread never
 * copies a map the walk for its references did not see; a fork between
 * this and the exec gives its child uncounted copies of the fds released
 * here (errs low, never a phantom count). */
static void hand_over_fds(int pass, char *list, size_t size)
{
    bool token = il_fork_lock_shared();
    size_t used = strlen(list), passed = 0;
    int high = il_fdmap_high();
    for (int fd = 0; fd <= high; fd++) {
        uint64_t entry = il_fdmap_get(fd);
        if (!entry || entry == IL_FD_OWN)
            continue; /* own fds close on exec, and stay ours if it fails */
        int flags = IL_REAL(fcntl)(fd, F_GETFD);
        if (il_fd_is_conn(entry) && pass && flags >= 0 && !(flags & FD_CLOEXEC) &&
            passed < IL_INHERIT_MAX_FDS && used + 32 < size) {
            used += (size_t)snprintf(list + used, size - used, "%s%d:%llx", passed ? "," : "",
                                     fd, (unsigned long long)entry);
            passed++;
            continue; /* its reference now belongs to the new program */
        }
        il_limiter_release(il_fdmap_swap(fd, 0));
    }
    il_fork_unlock_shared(token);
}

void il_inherit_prepare(char *const envp[], char **new_envp, char *segment_var,
                        char *inherit_var, struct il_exec_env *out)
{
    out->envp = envp;
    out->segment_fd = -1;
    if (!il_active())
        return;
    /* A vfork child (interpose_vfork.c) runs in its parent's memory with a
     * copy of its fd table: the new program joins the service (the
     * segment is passed, from the child's copy of the library's fd), but
     * no fd is handed over: the references are the parent's, and the
     * child's copies that survive the exec go uncounted (errs low). Nor is
     * a lost segment recovered there: that would change the parent's
     * records. A CLONE_VM child made another way (a raw clone) is not
     * marked: its pid tells, and it passes nothing. */
    bool vforked = il_vfork_child();
    if (!vforked && getpid() != __atomic_load_n(&il_state.pid, __ATOMIC_RELAXED))
        return;
    int pass = preloads_us(envp) && (il_own_fd_valid(segment) || (!vforked && recover_segment()));
    if (pass) {
        /* At the same height as our own fds (a host under a low fd limit
         * keeps its low numbers), but without close-on-exec. */
        out->segment_fd = il_own_fd_place(il_own_fd_num(segment));
        if (out->segment_fd >= 0 && IL_REAL(fcntl)(out->segment_fd, F_SETFD, 0) != 0) {
            il_real_close(out->segment_fd);
            out->segment_fd = -1;
        }
    }
    pass = pass && out->segment_fd >= 0;
    snprintf(inherit_var, IL_INHERIT_LIST_LEN, INHERIT_VAR "=");
    if (!vforked)
        hand_over_fds(pass, inherit_var, IL_INHERIT_LIST_LEN);
    if (!pass)
        return;
    size_t n = 0;
    for (char *const *e = envp; e && *e; e++)
        if (strncmp(*e, SEGMENT_VAR "=", sizeof SEGMENT_VAR) != 0 &&
            strncmp(*e, INHERIT_VAR "=", sizeof INHERIT_VAR) != 0)
            new_envp[n++] = *e;
    snprintf(segment_var, 48, SEGMENT_VAR "=%d", out->segment_fd);
    new_envp[n++] = segment_var;
    new_envp[n++] = inherit_var;
    new_envp[n] = NULL;
    out->envp = new_envp;
}

void il_inherit_exec_failed(struct il_exec_env *env)
{
    if (env->segment_fd >= 0)
        il_real_close(env->segment_fd);
}
