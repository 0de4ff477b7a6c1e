/* See tap.h. */
#include "tap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned tests_run, tests_failed;

static bool report(bool cond, const char *fmt, va_list ap)
{
    tests_run++;
    if (!cond)
        tests_failed++;
    printf("%sok %u - ", cond ? "" : "not ", tests_run);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    return cond;
}

bool tap_ok(bool cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(cond, fmt, ap);
    va_end(ap);
    return cond;
}

void tap_diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("# ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    va_end(ap);
}

bool tap_is_u64(uint64_t got, uint64_t want, const char *name)
{
    if (tap_ok(got == want, "%s", name))
        return true;
    tap_diag("  got: %llu (0x%llx)", (unsigned long long)got, (unsigned long long)got);
    tap_diag(" want: %llu (0x%llx)", (unsigned long long)want, (unsigned long long)want);
    return false;
}

bool tap_is_i64(int64_t got, int64_t want, const char *name)
{
    if (tap_ok(got == want, "%s", name))
        return true;
    tap_diag("  got: %lld", (long long)got);
    tap_diag(" want: %lld", (long long)want);
    return false;
}

bool tap_is_str(const char *got, const char *want, const char *name)
{
    bool same = got && want ? strcmp(got, want) == 0 : got == want;
    if (tap_ok(same, "%s", name))
        return true;
    tap_diag("  got: %s%s%s", got ? "\"" : "", got ? got : "NULL", got ? "\"" : "");
    tap_diag(" want: %s%s%s", want ? "\"" : "", want ? want : "NULL", want ? "\"" : "");
    return false;
}

int tap_done(void)
{
    printf("1..%u\n", tests_run);
    if (tests_failed)
        tap_diag("%u of %u failed", tests_failed, tests_run);
    fflush(stdout);
    return tests_failed ? 1 : 0;
}

void tap_temp_template(char *path)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, 64, "%.30s/iplimit-unit-XXXXXX", dir && *dir ? dir : "/tmp");
}

int tap_write_temp(char *path, const char *text)
{
    tap_temp_template(path);
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    close(fd);
    return w == (ssize_t)len ? 0 : -1;
}
