/* iplimit reload: replaces a running service's policy. The policy is read
 * exactly as check reads it; an invalid one is refused and the running one
 * stays. Open connections stay counted; the next accept uses the new policy. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct reload_opts {
    pid_t pid;
    const char *file;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: iplimit reload --pid PID [--config FILE]\n\n"
            "Reads the policy like 'iplimit check' (FILE, else $IPLIMIT_CONFIG, and the\n"
            "IPLIMIT_* variables of this command's environment), validates it, and applies\n"
            "it to the service process PID belongs to, without a restart. The new policy\n"
            "replaces the old one entirely; open connections are kept, and new connections\n"
            "follow the new limits at once. An invalid policy is refused (exit 1) and the\n"
            "running one stays. The table's capacity cannot change without a restart.\n\n"
            "  --pid PID      any process of the service\n"
            "  --config FILE  the file to read instead of $IPLIMIT_CONFIG\n"
            "  -h, --help     this help\n");
}

static int parse(int argc, char **argv, struct reload_opts *o)
{
    static const struct option longopts[] = {
        {"pid", required_argument, NULL, 'p'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    unsigned long value;
    int opt;
    memset(o, 0, sizeof *o);
    while ((opt = getopt_long(argc, argv, "+p:c:h", longopts, NULL)) != -1) {
        if (opt == 'p' && cli_parse_uint(optarg, 1, INT32_MAX, &value) == 0) {
            o->pid = (pid_t)value;
        } else if (opt == 'p') {
            return cli_error("--pid: '%s' is not a process id", optarg), CLI_USAGE;
        } else if (opt == 'c') {
            o->file = optarg;
        } else if (opt == 'h') {
            usage(stdout);
            exit(CLI_OK);
        } else {
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (optind != argc)
        return cli_error("reload: unexpected argument '%s'", argv[optind]), CLI_USAGE;
    if (!o->pid)
        return cli_error("reload: --pid PID is required"), CLI_USAGE;
    return CLI_OK;
}

/* Publishes policy to the service and reports the generation change. */
static int publish(const struct cli_service *service, const struct il_config *config)
{
    struct il_shm shm;
    if (cli_attach(service, &shm, true) != 0)
        return CLI_FAIL;
    uint32_t running = shm.hdr->conn_slots / 2;
    if (cli_effective_capacity(config->capacity) != running)
        cli_warn("capacity %u cannot change at run time: the service keeps %u until it "
                 "restarts",
                 config->capacity, running);
    uint64_t before = atomic_load(&shm.hdr->policy_generation);
    int err = il_shm_policy_publish(&shm, &config->policy);
    uint64_t after = atomic_load(&shm.hdr->policy_generation);
    il_shm_detach(&shm);
    if (err) {
        cli_error("reload refused: another reload is writing the policy; try again");
        return CLI_FAIL;
    }
    printf("reloaded service %d: policy generation %llu -> %llu\n", (int)service->procs[0].pid,
           (unsigned long long)before, (unsigned long long)after);
    return CLI_OK;
}

/* Without a file or a variable the policy would be the defaults: almost
 * surely a forgotten --config, and it would drop the service's limits. */
static bool nothing_given(const struct il_config *config)
{
    extern char **environ;
    if (config->file[0])
        return false;
    for (char **e = environ; *e; e++)
        if (cli_is_policy_var(*e))
            return false;
    return true;
}

int cli_reload(int argc, char **argv)
{
    struct reload_opts o;
    int rc = parse(argc, argv, &o);
    if (rc != CLI_OK)
        return rc;
    static struct il_config config; /* large */
    il_config_load(&config, NULL, o.file);
    if (cli_print_config_errors(&config)) {
        cli_error("reload refused: %u error%s; the running policy stays", config.nerrors,
                  config.nerrors == 1 ? "" : "s");
        return CLI_FAIL;
    }
    if (nothing_given(&config)) {
        cli_error("reload refused: no --config FILE, no IPLIMIT_CONFIG and no IPLIMIT_* "
                  "variable; the running policy stays");
        return CLI_FAIL;
    }
    struct cli_services services;
    if (cli_find_services(o.pid, &services) != 0)
        return CLI_FAIL;
    rc = services.count ? publish(&services.items[0], &config) : CLI_FAIL;
    if (rc == CLI_OK) {
        cli_print_sources(stdout, &config);
        cli_print_policy(stdout, &config.policy, 0);
    }
    cli_free_services(&services);
    return rc;
}
