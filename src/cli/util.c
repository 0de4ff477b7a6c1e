/* Small helpers shared by the subcommands. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>

#include "cli.h"

static void report(const char *kind, const char *fmt, va_list ap)
{
    fprintf(stderr, "iplimit: %s", kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report("", fmt, ap);
    va_end(ap);
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report("warning: ", fmt, ap);
    va_end(ap);
}

int cli_parse_uint(const char *text, unsigned long min, unsigned long max, unsigned long *out)
{
    if (!isdigit((unsigned char)*text))
        return -1;
    errno = 0;
    char *end;
    unsigned long value = strtoul(text, &end, 10);
    if (errno || *end != '\0' || value < min || value > max)
        return -1;
    *out = value;
    return 0;
}

const char *cli_time(uint64_t seconds, char *buf, size_t size)
{
    time_t t = (time_t)seconds;
    struct tm tm;
    if (seconds == 0 || !localtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(buf, size, "-");
    return buf;
}

/* Mirrors the library: twice the capacity, rounded up to a power of two
 * (at least 64 slots), of which half may be used. */
uint32_t cli_effective_capacity(uint32_t capacity)
{
    uint64_t want = (uint64_t)capacity * 2, slots = 64;
    while (slots < want && slots < (1u << 31))
        slots <<= 1;
    return (uint32_t)(slots / 2);
}

void *cli_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        cli_error("out of memory");
        exit(CLI_FAIL);
    }
    return p;
}

void *cli_xrealloc(void *p, size_t n, size_t size)
{
    p = reallocarray(p, n ? n : 1, size ? size : 1);
    if (!p) {
        cli_error("out of memory");
        exit(CLI_FAIL);
    }
    return p;
}

void cli_put_string(FILE *out, const char *s, enum cli_escape how)
{
    if (how == CLI_ESC_JSON)
        fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = c >= 0x20 && c < 0x7f;
        if (how == CLI_ESC_JSON) {
            if (c == '"' || c == '\\')
                fprintf(out, "\\%c", c);
            else if (plain)
                fputc(c, out);
            else
                fprintf(out, "\\u%04x", c);
        } else if (how == CLI_ESC_PROM) {
            if (c == '"' || c == '\\')
                fprintf(out, "\\%c", c);
            else if (c == '\n')
                fputs("\\n", out);
            else if (plain)
                fputc(c, out);
            else
                fprintf(out, "\\\\x%02x", c);
        } else if (plain && c != '\\') {
            fputc(c, out);
        } else {
            fprintf(out, "\\x%02x", c);
        }
    }
    if (how == CLI_ESC_JSON)
        fputc('"', out);
}
