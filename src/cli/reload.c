/* iplimit reload: changes a running service's policy. It starts from what
 * the service runs with (the IPLIMIT_* variables it was started with and
 * its file, re-read), applies the operator's overrides, shows the change
 * setting by setting, and publishes it. An invalid policy is refused and
 * the running one stays; so is a risky change without --force. Open
 * connections stay counted; the next accept uses the new policy. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct reload_opts {
    pid_t pid;
    bool force, dry_run, no_service_env;
    struct cli_env overrides; /* from the options, applied last */
    struct cli_env unset;     /* --unset NAME: names only ("NAME=") */
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: iplimit reload --pid PID [OPTIONS]\n\n"
            "Builds the policy the service would read now: the IPLIMIT_* variables it was\n"
            "started with and its file (IPLIMIT_CONFIG), re-read; then the IPLIMIT_*\n"
            "variables of this command's environment and the options below override\n"
            "single settings. Shows the change setting by setting (old -> new) and applies\n"
            "it without a restart: open connections are kept, new connections follow the\n"
            "new policy at once. An invalid policy is refused (exit 1) and the running one\n"
            "stays. So is a change that removes an allowlist entry, switches to a dry run,\n"
            "stops policing a port the service accepts on or turns logging off, unless\n"
            "--force is given.\n\n"
            "  --pid PID          any process of the service\n"
            "  --config FILE      read FILE instead of the service's IPLIMIT_CONFIG\n"
            "  --max N            override max (IPLIMIT_MAX)\n"
            "  --allow CIDR       override the allowlist (IPLIMIT_ALLOW); repeatable\n"
            "  --set NAME=VALUE   override any setting, by its file name (limits=...)\n"
            "  --unset VAR        drop the variable VAR (IPLIMIT_...) the service started\n"
            "                     with: its setting comes from the file or the default\n"
            "  --no-service-env   start from the defaults, not from what the service was\n"
            "                     started with (for a service that wrote over its\n"
            "                     environment and whose table could not record all its\n"
            "                     settings: give them here, --config included)\n"
            "  --force            apply a change that needs it\n"
            "  --dry-run          show the change, apply nothing\n"
            "  -h, --help         this help\n");
}

/* "max=5" or "IPLIMIT_MAX=5" -> "IPLIMIT_MAX=5" */
static int add_setting(struct cli_env *env, const char *text)
{
    const char *eq = strchr(text, '=');
    if (!eq || eq == text)
        return cli_error("--set: '%s' is not NAME=VALUE", text), CLI_USAGE;
    size_t len = (size_t)(eq - text), size = len + strlen(eq) + 16;
    char *entry = cli_xcalloc(size, 1);
    size_t used = 0;
    if (strncmp(text, "IPLIMIT_", 8) != 0)
        used = (size_t)snprintf(entry, size, "IPLIMIT_");
    for (size_t i = 0; i < len; i++)
        entry[used++] = (char)toupper((unsigned char)text[i]);
    snprintf(entry + used, size - used, "%s", eq);
    cli_env_set(env, entry);
    free(entry);
    return CLI_OK;
}

static void add_var(struct cli_env *env, const char *name, const char *value)
{
    size_t size = strlen(name) + strlen(value) + 2;
    char *entry = cli_xcalloc(size, 1);
    snprintf(entry, size, "%s=%s", name, value);
    cli_env_set(env, entry);
    free(entry);
}

static int parse(int argc, char **argv, struct reload_opts *o)
{
    static const struct option longopts[] = {
        {"pid", required_argument, NULL, 'p'},   {"config", required_argument, NULL, 'c'},
        {"max", required_argument, NULL, 'm'},   {"allow", required_argument, NULL, 'a'},
        {"set", required_argument, NULL, 's'},   {"force", no_argument, NULL, 'f'},
        {"dry-run", no_argument, NULL, 'n'},     {"help", no_argument, NULL, 'h'},
        {"unset", required_argument, NULL, 'u'},
        {"no-service-env", no_argument, NULL, 'E'},
        {NULL, 0, NULL, 0},
    };
    unsigned long value;
    int opt;
    char *allow = NULL;
    memset(o, 0, sizeof *o);
    while ((opt = getopt_long(argc, argv, "+p:c:m:a:s:u:fnhE", longopts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            if (cli_parse_uint(optarg, 1, INT32_MAX, &value) != 0)
                return cli_error("--pid: '%s' is not a process id", optarg), CLI_USAGE;
            o->pid = (pid_t)value;
            break;
        case 'c': add_var(&o->overrides, "IPLIMIT_CONFIG", optarg); break;
        case 'm': add_var(&o->overrides, "IPLIMIT_MAX", optarg); break;
        case 'a': {
            size_t old = allow ? strlen(allow) : 0;
            allow = cli_xrealloc(allow, old + strlen(optarg) + 2, 1);
            snprintf(allow + old, strlen(optarg) + 2, "%s%s", old ? "," : "", optarg);
            break;
        }
        case 's':
            if (add_setting(&o->overrides, optarg) != CLI_OK)
                return CLI_USAGE;
            break;
        case 'u':
            if (strncmp(optarg, "IPLIMIT_", 8) != 0 || strchr(optarg, '='))
                return cli_error("--unset: '%s' is not an IPLIMIT_ variable name", optarg),
                       CLI_USAGE;
            add_var(&o->unset, optarg, "");
            break;
        case 'f': o->force = true; break;
        case 'n': o->dry_run = true; break;
        case 'E': o->no_service_env = true; break;
        case 'h': usage(stdout); exit(CLI_OK);
        default: usage(stderr); return CLI_USAGE;
        }
    }
    if (allow) {
        add_var(&o->overrides, "IPLIMIT_ALLOW", allow);
        free(allow);
    }
    if (optind != argc)
        return cli_error("reload: unexpected argument '%s'", argv[optind]), CLI_USAGE;
    if (!o->pid)
        return cli_error("reload: --pid PID is required"), CLI_USAGE;
    return CLI_OK;
}

/* Prints the names of env's entries that are settings, or "none". */
static void print_names(FILE *out, char *const *entries)
{
    bool any = false;
    for (char *const *e = entries; e && *e; e++) {
        if (!cli_is_policy_var(*e) && strncmp(*e, "IPLIMIT_CONFIG=", 15) != 0)
            continue;
        fprintf(out, " %.*s", (int)strcspn(*e, "="), *e);
        any = true;
    }
    fprintf(out, "%s\n", any ? "" : " none");
}

/* The policy of the service: its start-up settings, then this command's
 * IPLIMIT_* variables, then the options. Returns 0, or CLI_FAIL with the
 * reason printed. */
static int build_policy(pid_t pid, const struct reload_opts *o, struct il_config *config)
{
    extern char **environ;
    struct cli_env env = {0}, mine = {0};
    bool recorded = false;
    int err = o->no_service_env ? 0 : cli_service_env(pid, &env, &recorded);
    if (err) {
        cli_error("cannot read the environment of process %d: %s; without the settings the "
                  "service started with, reload cannot tell what it would change%s",
                  (int)pid, cli_service_env_error(err),
                  err == -EACCES    ? " (run as root or as its user)"
                  : err == -ENODATA ? " (give them here, with --no-service-env)"
                                    : "");
        cli_env_free(&env);
        return CLI_FAIL;
    }
    if (o->no_service_env) {
        printf("service %d started with: not read (--no-service-env)\n", (int)pid);
    } else {
        printf("service %d started with:", (int)pid);
        print_names(stdout, env.entries);
        if (recorded)
            printf("  (as its table recorded them: it wrote over its environment)\n");
    }
    for (size_t i = 0; i < o->unset.count; i++) {
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(o->unset.entries[i], "="),
                 o->unset.entries[i]);
        cli_env_unset(&env, name);
    }
    if (o->unset.count) {
        printf("dropped here:");
        print_names(stdout, o->unset.entries);
    }
    for (char **e = environ; *e; e++)
        if (cli_is_policy_var(*e) || strncmp(*e, "IPLIMIT_CONFIG=", 15) == 0)
            cli_env_set(&mine, *e);
    for (size_t i = 0; i < o->overrides.count; i++)
        cli_env_set(&mine, o->overrides.entries[i]);
    printf("overridden here:");
    print_names(stdout, mine.entries);
    for (size_t i = 0; i < mine.count; i++)
        cli_env_set(&env, mine.entries[i]);
    const char *file = cli_env_get(&env, "IPLIMIT_CONFIG");
    printf("file: %s\n", file && *file ? file : "none");
    il_config_load(config, env.entries ? env.entries : (char *[]){NULL}, NULL);
    cli_env_free(&env);
    cli_env_free(&mine);
    fflush(stdout);
    if (cli_print_config_errors(config)) {
        cli_error("reload refused: %u error%s; the running policy stays", config->nerrors,
                  config->nerrors == 1 ? "" : "s");
        return CLI_FAIL;
    }
    cli_rule_warnings(&config->policy);
    return CLI_OK;
}

/* A port the service accepts on that the running policy polices and the new
 * one does not: the limiter is switched off for its connections, which
 * needs --force like a dry run does. The ports ride on the ports line of
 * the diff; this adds the warning and counts the risk. */
static void diff_live_ports(const struct il_shm *shm, const struct il_policy *old,
                            const struct il_policy *new, struct cli_diff *diff)
{
    if (!old->enabled)
        return;
    for (unsigned w = 0; w < 65536 / 64; w++) {
        uint64_t bits = atomic_load_explicit(&shm->hdr->listen_ports[w], memory_order_relaxed);
        for (; bits; bits &= bits - 1) {
            uint16_t port = (uint16_t)(w * 64 + (unsigned)__builtin_ctzll(bits));
            if (!il_policy_polices_port(old, port) || il_policy_polices_port(new, port))
                continue;
            printf("  port %u, which the service accepts on, is no longer policed   "
                   "[needs --force: its connections are no longer limited]\n",
                   port);
            diff->risky++;
        }
    }
}

/* Publishes config's policy if it changes anything and is allowed to. */
static int apply(const struct cli_service *service, const struct reload_opts *o,
                 const struct il_config *config)
{
    struct il_shm shm;
    if (cli_attach(service, &shm, !o->dry_run) != 0)
        return CLI_FAIL;
    pid_t pid = service->main_pid;
    static struct il_policy running; /* large */
    if (il_shm_policy_read(&shm, &running) != 0) {
        il_shm_detach(&shm);
        cli_error("reload refused: the running policy is being changed; try again");
        return CLI_FAIL;
    }
    uint32_t capacity = shm.hdr->conn_slots / 2;
    if (cli_effective_capacity(config->capacity) != capacity)
        cli_warn("capacity %u cannot change at run time: the service keeps %u until it "
                 "restarts",
                 config->capacity, capacity);
    struct cli_diff diff;
    printf("changes:\n");
    cli_policy_diff(stdout, &running, &config->policy, &diff);
    diff_live_ports(&shm, &running, &config->policy, &diff);
    int rc = CLI_OK;
    if (diff.changes == 0) {
        printf("  none: the running policy stays\n");
    } else if (o->dry_run) {
        printf("dry run: nothing applied%s\n",
               diff.risky ? " (applying it would need --force)" : "");
    } else if (diff.risky && !o->force) {
        fflush(stdout);
        cli_error("reload refused: %u change%s above need%s --force; the running policy stays",
                  diff.risky, diff.risky == 1 ? "" : "s", diff.risky == 1 ? "s" : "");
        rc = CLI_FAIL;
    } else {
        uint64_t before = atomic_load(&shm.hdr->policy_generation);
        if (il_shm_policy_publish(&shm, &config->policy) != 0) {
            cli_error("reload refused: another reload is writing the policy; try again");
            rc = CLI_FAIL;
        } else {
            /* The service no longer runs on the configuration error it
             * started with: clear it (only its first byte ever changes
             * after creation; the library reads it, src/lib/limiter.c). */
            __atomic_store_n(&shm.hdr->config_error[0], '\0', __ATOMIC_RELAXED);
            uint64_t after = atomic_load(&shm.hdr->policy_generation);
            printf("reloaded service %d: policy generation %llu -> %llu\n", (int)pid,
                   (unsigned long long)before, (unsigned long long)after);
        }
    }
    il_shm_detach(&shm);
    return rc;
}

int cli_reload(int argc, char **argv)
{
    struct reload_opts o;
    int rc = parse(argc, argv, &o);
    if (rc != CLI_OK)
        return rc;
    struct cli_services services;
    if (cli_find_services(o.pid, &services) != 0 || services.count == 0) {
        cli_env_free(&o.overrides);
        cli_env_free(&o.unset);
        return CLI_FAIL;
    }
    static struct il_config config; /* large */
    rc = build_policy(o.pid, &o, &config);
    if (rc == CLI_OK)
        rc = apply(&services.items[0], &o, &config);
    cli_free_services(&services);
    cli_env_free(&o.overrides);
    cli_env_free(&o.unset);
    return rc;
}
