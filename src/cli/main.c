/* iplimit: the operator's command for the iplimit library. Dispatches to
 * one subcommand; each has its own --help. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#ifndef IL_VERSION
#error "build with -DIL_VERSION=... (mk/cli.mk reads the file VERSION)"
#endif

struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct subcommand subcommands[] = {
    {"run", cli_run, "run a command with the limiter preloaded"},
    {"stat", cli_stat, "show the live table of running services"},
    {"check", cli_check, "validate the configuration and show the effective policy"},
    {"reload", cli_reload, "apply a new policy to a running service"},
};
#define NSUBCOMMANDS (sizeof subcommands / sizeof subcommands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: iplimit COMMAND [OPTIONS]\n\n"
                 "Per-source TCP connection limits for unmodified servers.\n\n"
                 "commands:\n");
    for (size_t i = 0; i < NSUBCOMMANDS; i++)
        fprintf(out, "  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(out, "\n'iplimit COMMAND --help' describes each command; see iplimit(1).\n"
                 "'iplimit --version' prints the version.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
        printf("iplimit %s\n", IL_VERSION);
        return CLI_OK;
    }
    for (size_t i = 0; i < NSUBCOMMANDS; i++)
        if (strcmp(name, subcommands[i].name) == 0)
            return subcommands[i].run(argc - 1, argv + 1);
    cli_error("unknown command '%s'", name);
    usage(stderr);
    return CLI_USAGE;
}
