/* iplimit run: starts a command with the library preloaded and the policy
 * given by the options, after checking that policy like iplimit check. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define LIB_NAME "libiplimit.so"
#ifndef IL_LIBDIR
#define IL_LIBDIR "/usr/local/lib"
#endif
#define PRELOAD_FD_MIN 100 /* above the fds daemons close or expect (3..31, LISTEN_FDS) */

struct run_opts {
    const char *max;
    char *allow; /* the --allow values joined by commas */
    const char *config;
    const char *lib;
    bool dry_run;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: iplimit run [OPTIONS] -- COMMAND [ARGS...]\n\n"
            "Runs COMMAND with the iplimit library preloaded (LD_PRELOAD) and the policy\n"
            "the options give (as IPLIMIT_* variables, over those already set). The policy\n"
            "is checked first: if it is invalid, the errors are listed and nothing runs.\n\n"
            "  --max N          connections per source (IPLIMIT_MAX; 0: unlimited)\n"
            "  --allow CIDR     never limit these sources (IPLIMIT_ALLOW); repeatable\n"
            "  --config FILE    configuration file (IPLIMIT_CONFIG)\n"
            "  --dry-run        count and log, reject nothing (IPLIMIT_DRY_RUN=1)\n"
            "  --lib PATH       the library to preload (default: ../lib/" LIB_NAME "\n"
            "                   beside this command's directory, else " LIB_NAME " in it)\n"
            "  -h, --help       this help\n");
}

static void append_allow(struct run_opts *o, const char *cidr)
{
    size_t old = o->allow ? strlen(o->allow) : 0;
    o->allow = cli_xrealloc(o->allow, old + strlen(cidr) + 2, 1);
    snprintf(o->allow + old, strlen(cidr) + 2, "%s%s", old ? "," : "", cidr);
}

static int parse(int argc, char **argv, struct run_opts *o)
{
    static const struct option longopts[] = {
        {"max", required_argument, NULL, 'm'},    {"allow", required_argument, NULL, 'a'},
        {"config", required_argument, NULL, 'c'}, {"lib", required_argument, NULL, 'L'},
        {"dry-run", no_argument, NULL, 'n'},      {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    memset(o, 0, sizeof *o);
    while ((opt = getopt_long(argc, argv, "+m:a:c:L:nh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': o->max = optarg; break;
        case 'a': append_allow(o, optarg); break;
        case 'c': o->config = optarg; break;
        case 'L': o->lib = optarg; break;
        case 'n': o->dry_run = true; break;
        case 'h': usage(stdout); exit(CLI_OK);
        default: usage(stderr); return CLI_USAGE;
        }
    }
    if (optind >= argc)
        return cli_error("run: no command given (iplimit run [OPTIONS] -- COMMAND)"), CLI_USAGE;
    return CLI_OK;
}

/* The library beside this program: PREFIX/bin/iplimit finds
 * PREFIX/lib/libiplimit.so, build/iplimit finds build/libiplimit.so; else
 * the directory it was built to be installed in (IL_LIBDIR: the multiarch
 * directory in the Debian package). */
static int default_lib(char *out, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    const char *dir = dirname(exe);
    snprintf(out, size, "%s/../lib/%s", dir, LIB_NAME);
    if (access(out, R_OK) == 0)
        return 0;
    snprintf(out, size, "%s/%s", dir, LIB_NAME);
    if (access(out, R_OK) == 0)
        return 0;
    snprintf(out, size, "%s/%s", IL_LIBDIR, LIB_NAME);
    return access(out, R_OK);
}

static int find_lib(const char *given, char *out)
{
    char path[PATH_MAX];
    if (given)
        snprintf(path, sizeof path, "%s", given);
    else if (default_lib(path, sizeof path) != 0)
        return cli_error("cannot find %s beside this command; give --lib PATH", LIB_NAME), -1;
    if (!realpath(path, out))
        return cli_error("--lib %s: %s", path, strerror(errno)), -1;
    if (access(out, R_OK) != 0)
        return cli_error("cannot read %s: %s", out, strerror(errno)), -1;
    return 0;
}

/* ld.so splits LD_PRELOAD at spaces and colons, with no escape: a path
 * holding one is passed as /proc/self/fd/N of an inherited descriptor. */
static int preload_name(const char *lib, char *out, size_t size)
{
    if (!strpbrk(lib, " \t\n:")) {
        snprintf(out, size, "%s", lib);
        return 0;
    }
    int fd = open(lib, O_RDONLY);
    if (fd < 0)
        return cli_error("cannot open %s: %s", lib, strerror(errno)), -1;
    int high = fcntl(fd, F_DUPFD, PRELOAD_FD_MIN);
    close(fd);
    if (high < 0)
        return cli_error("cannot keep %s open: %s", lib, strerror(errno)), -1;
    snprintf(out, size, "/proc/self/fd/%d", high);
    return 0;
}

static int set_preload(const char *lib)
{
    char name[PATH_MAX + 32];
    if (preload_name(lib, name, sizeof name) != 0)
        return -1;
    const char *old = getenv("LD_PRELOAD");
    if (!old || !*old)
        return setenv("LD_PRELOAD", name, 1);
    size_t len = strlen(name) + strlen(old) + 2;
    char *both = cli_xcalloc(len, 1);
    snprintf(both, len, "%s %s", name, old);
    int err = setenv("LD_PRELOAD", both, 1);
    free(both);
    return err;
}

static void set_policy_env(const struct run_opts *o)
{
    if (o->max)
        setenv("IPLIMIT_MAX", o->max, 1);
    if (o->allow)
        setenv("IPLIMIT_ALLOW", o->allow, 1);
    if (o->config)
        setenv("IPLIMIT_CONFIG", o->config, 1);
    if (o->dry_run)
        setenv("IPLIMIT_DRY_RUN", "1", 1);
}

int cli_run(int argc, char **argv)
{
    struct run_opts o;
    int rc = parse(argc, argv, &o);
    if (rc != CLI_OK)
        return rc;
    char lib[PATH_MAX];
    if (find_lib(o.lib, lib) != 0)
        return CLI_FAIL;
    set_policy_env(&o);
    free(o.allow);
    static struct il_config config; /* large */
    il_config_load(&config, NULL, NULL);
    if (cli_print_config_errors(&config)) {
        cli_error("not starting %s: the policy is invalid", argv[optind]);
        return CLI_FAIL;
    }
    if (set_preload(lib) != 0)
        return CLI_FAIL;
    execvp(argv[optind], &argv[optind]);
    int err = errno;
    cli_error("cannot run %s: %s", argv[optind], strerror(err));
    return err == ENOENT ? 127 : 126;
}
