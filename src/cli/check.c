/* iplimit check: validates the file and the IPLIMIT_* environment exactly
 * as the library reads them, like nginx -t. */
#include <getopt.h>
#include <stdlib.h>

#include "cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: iplimit check [--config FILE]\n\n"
            "Reads the configuration file (FILE, else the one IPLIMIT_CONFIG names) and the\n"
            "IPLIMIT_* environment variables the way the library does. If they are valid,\n"
            "prints the effective policy and exits 0; otherwise lists every error with its\n"
            "variable or FILE:LINE and exits 1.\n\n"
            "  --config FILE  the file to read instead of $IPLIMIT_CONFIG\n"
            "  -h, --help     this help\n");
}

/* Parses the options shared by check and reload: --config and --help. */
static int parse(int argc, char **argv, const char **file)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    *file = NULL;
    while ((opt = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
        if (opt == 'c') {
            *file = optarg;
        } else if (opt == 'h') {
            usage(stdout);
            exit(CLI_OK);
        } else {
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (optind != argc)
        return cli_error("check: unexpected argument '%s'", argv[optind]), CLI_USAGE;
    return CLI_OK;
}

int cli_check(int argc, char **argv)
{
    const char *file;
    int rc = parse(argc, argv, &file);
    if (rc != CLI_OK)
        return rc;
    static struct il_config config; /* large */
    il_config_load(&config, NULL, file);
    if (cli_print_config_errors(&config)) {
        cli_error("configuration invalid: %u error%s; the library would pass every connection "
                  "through",
                  config.nerrors, config.nerrors == 1 ? "" : "s");
        return CLI_FAIL;
    }
    cli_print_sources(stdout, &config);
    cli_print_policy(stdout, &config.policy, cli_effective_capacity(config.capacity));
    if (cli_effective_capacity(config.capacity) != config.capacity)
        printf("(capacity %u is rounded up to %u)\n", config.capacity,
               cli_effective_capacity(config.capacity));
    printf("configuration OK\n");
    return CLI_OK;
}
