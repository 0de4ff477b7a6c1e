/* Startup and shutdown of the library in each process.
 *
 * The constructor runs once in the first process (before any fork of the
 * host), maps the shared segment and reserves the fd map; every process
 * forked afterwards inherits both.  Nothing here may stop the host: each
 * failure is logged once and leaves the library passing calls through. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fdmap.h"
#include "forkgate.h"
#include "inherit.h"
#include "interpose.h"
#include "limiter.h"
#include "log.h"
#include "real.h"
#include "started.h"

/* Every fork that runs the atfork handlers (fork() through the wrapper,
 * and forks inside libc that the wrapper cannot see: forkpty(), libc's own
 * fork called past the wrapper) gives the child its references here
 * (limiter.h). The wrapper knows whether the fork failed; for the others,
 * the parent handler is not told, so prepare leaves a value in errno that
 * no libc call sets: the real fork overwrites it only when it fails. A
 * handler registered before ours that sets errno in between makes a
 * successful fork look failed: the child's references are then dropped
 * (its copies go uncounted; never a phantom count). */
#define ERRNO_UNTOUCHED 0x494c4652 /* not an errno value */
static _Thread_local int errno_before_fork __attribute__((tls_model("initial-exec")));

static void atfork_prepare(void)
{
    il_forkgate_prepare();
    il_limiter_fork_prepare();
    if (!il_in_fork_wrapper) {
        errno_before_fork = errno;
        errno = ERRNO_UNTOUCHED;
    }
}

static void atfork_parent(void)
{
    bool failed = errno != ERRNO_UNTOUCHED; /* before anything can touch errno */
    il_forkgate_parent();
    if (il_in_fork_wrapper)
        return; /* the wrapper finishes, knowing the fork's result */
    if (!failed)
        errno = errno_before_fork;
    il_limiter_fork_parent(failed);
}

static void atfork_child(void)
{
    if (!il_in_fork_wrapper && errno == ERRNO_UNTOUCHED)
        errno = errno_before_fork;
    il_forkgate_child();
    il_limiter_fork_child();
}

static void report_config_errors(const struct il_config *config)
{
    for (unsigned i = 0; i < config->nerrors; i++)
        il_log(LOG_ERR, "config error: %s; limiter disabled, all connections pass through",
               config->errors[i]);
}

/* The first process of a service: read the configuration, create the
 * segment. Returns 0 when the limiter is active. */
static int start_service(void)
{
    static struct il_config config; /* large: keep it off the stack */
    il_config_load(&config, NULL, NULL);
    il_log_set_target(config.policy.log_target);
    report_config_errors(&config);

    int fd = -1;
    int err = il_shm_create_keep(&il_state.shm, config.capacity, &config.policy,
                                 config.nerrors ? config.errors[0] : NULL, &fd);
    if (err) {
        il_log(LOG_ERR, "cannot map the shared table (%u connections): %s; limiter disabled",
               config.capacity, strerror(-err));
        return -1;
    }
    il_shm_set_service(&il_state.shm, config.service);
    il_started_record(il_state.shm.hdr, environ);
    il_inherit_keep_segment(fd);
    __atomic_store_n(&il_state.active, 1, __ATOMIC_RELEASE);
    return 0;
}

__attribute__((constructor)) static void il_init(void)
{
    int saved_errno = errno;
    il_real_resolve();
    il_close_way_resolved(__atomic_load_n(&il_real_close_is_libc, __ATOMIC_RELAXED));
    __atomic_store_n(&il_state.pid, getpid(), __ATOMIC_RELAXED);

    int err = il_fdmap_init();
    if (err) {
        il_log(LOG_ERR, "cannot reserve the fd map: %s; limiter disabled", strerror(-err));
        goto out;
    }
    /* exec'd by a process of a service: join its segment */
    if (il_inherit_attach(&il_state.shm) == 0)
        goto hooks;
    if (start_service() != 0)
        goto out;
hooks:
    if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child) != 0)
        il_log(LOG_ERR, "pthread_atfork failed: forks made inside libc are not counted");
    else
        __atomic_store_n(&il_atfork_ready, 1, __ATOMIC_RELEASE);
out:
    errno = saved_errno;
}

/* exit(): the kernel closes what is still open; stop counting it. */
__attribute__((destructor)) static void il_fini(void)
{
    int saved_errno = errno;
    il_limiter_release_all();
    errno = saved_errno;
}
