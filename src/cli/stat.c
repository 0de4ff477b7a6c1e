/* iplimit stat: the live table of one running service or of all of them. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum format { FORMAT_TEXT, FORMAT_JSON, FORMAT_PROM };

struct stat_opts {
    pid_t pid;
    size_t top;
    enum format format;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: iplimit stat [--pid PID] [--top N] [--json | --prometheus]\n\n"
            "Shows the live connection table of the service that process PID belongs to\n"
            "(any of its processes), or of every running service using iplimit whose\n"
            "table you own (root: every one).\n"
            "Per key: open connections, the limit new connections get, rejections so far\n"
            "(in a dry run: would-be rejections); then the totals, table use and capacity.\n\n"
            "  --pid PID      only the service process PID belongs to\n"
            "  --top N        only the N keys with the most open connections\n"
            "  --json         one JSON document\n"
            "  --prometheus   Prometheus text format (node_exporter textfile collector)\n"
            "  -h, --help     this help\n\n"
            "Reading never blocks the service. Needs root (it reads /proc/PID/map_files).\n");
}

static int parse(int argc, char **argv, struct stat_opts *o)
{
    static const struct option longopts[] = {
        {"pid", required_argument, NULL, 'p'},   {"top", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},        {"prometheus", no_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    unsigned long value;
    int opt;
    memset(o, 0, sizeof *o);
    while ((opt = getopt_long(argc, argv, "+p:t:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            if (cli_parse_uint(optarg, 1, INT32_MAX, &value) != 0)
                return cli_error("--pid: '%s' is not a process id", optarg), CLI_USAGE;
            o->pid = (pid_t)value;
            break;
        case 't':
            if (cli_parse_uint(optarg, 1, SIZE_MAX, &value) != 0)
                return cli_error("--top: '%s' is not a positive number", optarg), CLI_USAGE;
            o->top = value;
            break;
        case 'j':
        case 'P':
            if (o->format != FORMAT_TEXT)
                return cli_error("--json and --prometheus exclude each other"), CLI_USAGE;
            o->format = opt == 'j' ? FORMAT_JSON : FORMAT_PROM;
            break;
        case 'h':
            usage(stdout);
            exit(CLI_OK);
        default:
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (optind != argc)
        return cli_error("stat: unexpected argument '%s'", argv[optind]), CLI_USAGE;
    return CLI_OK;
}

/* Reads every service; those whose processes all exited meanwhile are
 * left out. Without --pid a user other than root sees only the segments it
 * owns: any user can publish a memfd named like a segment, and its own
 * services are the ones it is asking about. */
static size_t read_all(const struct cli_services *services, struct cli_snapshot *snaps,
                       bool own_only)
{
    size_t n = 0;
    for (size_t i = 0; i < services->count; i++) {
        if (cli_snapshot_read(&services->items[i], &snaps[n]) != 0)
            continue;
        if (own_only && snaps[n].uid != geteuid()) {
            cli_snapshot_free(&snaps[n]);
            continue;
        }
        n++;
    }
    return n;
}

int cli_stat(int argc, char **argv)
{
    struct stat_opts o;
    int rc = parse(argc, argv, &o);
    if (rc != CLI_OK)
        return rc;
    struct cli_services services;
    if (cli_find_services(o.pid, &services) != 0)
        return CLI_FAIL;
    struct cli_snapshot *snaps = cli_xcalloc(services.count, sizeof *snaps);
    size_t n = read_all(&services, snaps, !o.pid && geteuid() != 0);
    if (o.format == FORMAT_JSON)
        cli_out_json(stdout, snaps, n, o.top);
    else if (o.format == FORMAT_PROM)
        cli_out_prom(stdout, snaps, n, o.top);
    else
        cli_out_text(stdout, snaps, n, o.top);
    rc = o.pid && n == 0 ? CLI_FAIL : CLI_OK;
    for (size_t i = 0; i < n; i++)
        cli_snapshot_free(&snaps[i]);
    free(snaps);
    cli_free_services(&services);
    return fflush(stdout) == 0 ? rc : CLI_FAIL;
}
