/* Finding the next definition of each wrapped function. */
#include "real.h"

#include <dlfcn.h>
#include <unistd.h>
#include <sys/syscall.h>

struct il_real il_real;

#define RESOLVE(field, symbol) \
    __atomic_store_n((void **)&il_real.field, dlsym(RTLD_NEXT, symbol), __ATOMIC_RELEASE)

void il_real_resolve(void)
{
    RESOLVE(accept4, "accept4");
    RESOLVE(close_range, "close_range");
    RESOLVE(closefrom, "closefrom");
    RESOLVE(dup, "dup");
    RESOLVE(dup2, "dup2");
    RESOLVE(dup3, "dup3");
    RESOLVE(fcntl, "fcntl");
    RESOLVE(fcntl64, "fcntl64");
    RESOLVE(fclose, "fclose");
    RESOLVE(fork, "fork");
    RESOLVE(execve, "execve");
    RESOLVE(execv, "execv");
    RESOLVE(execvp, "execvp");
    RESOLVE(execvpe, "execvpe");
    RESOLVE(fexecve, "fexecve");
    RESOLVE(exit_now, "_exit");
    RESOLVE(exit_now2, "_Exit");
    RESOLVE(accept, "accept");
    /* close last: IL_REAL(close) tests it to decide everything is resolved. */
    RESOLVE(close, "close");
}

int il_real_close(int fd)
{
    int (*real_close)(int) = __atomic_load_n(&il_real.close, __ATOMIC_ACQUIRE);
    if (!real_close)
        return (int)syscall(SYS_close, fd);
    return real_close(fd);
}
