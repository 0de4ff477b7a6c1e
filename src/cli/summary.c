/* A policy and its sources in words, for check and reload. */
#include <string.h>

#include "cli.h"
#include "started.h"

static bool port_on(const struct il_policy *policy, unsigned port)
{
    return policy->ports[port / 64] >> (port % 64) & 1;
}

void cli_format_ports(const struct il_policy *policy, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    if (policy->all_ports) {
        snprintf(buf, size, "all");
        return;
    }
    for (unsigned port = 1; port < 65536; port++) {
        if (!port_on(policy, port))
            continue;
        unsigned last = port;
        while (last + 1 < 65536 && port_on(policy, last + 1))
            last++;
        char item[16];
        if (last == port)
            snprintf(item, sizeof item, "%u", port);
        else
            snprintf(item, sizeof item, "%u-%u", port, last);
        if (used + strlen(item) + 5 >= size) {
            snprintf(buf + used, size - used, ",...");
            return;
        }
        used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? "," : "", item);
        port = last;
    }
    if (used == 0)
        snprintf(buf, size, "none");
}

static void print_rules(FILE *out, const struct il_policy *policy, bool allow)
{
    bool any = false;
    fprintf(out, "%s:", allow ? "allow" : "limits");
    for (uint32_t i = 0; i < policy->nrules && i < IL_MAX_RULES; i++) {
        const struct il_rule *rule = &policy->rules[i];
        if (rule->allow != allow)
            continue;
        char net[IL_KEY_STRLEN];
        il_key_format(&rule->net, net);
        if (allow)
            fprintf(out, "%s %s", any ? "," : "", net);
        else
            fprintf(out, "%s %s=%u", any ? "," : "", net, rule->limit);
        any = true;
    }
    fprintf(out, "%s\n", any ? "" : " none");
}

static const char *log_name(uint8_t target)
{
    return target == IL_LOG_STDERR ? "stderr" : target == IL_LOG_NONE ? "none" : "syslog";
}

void cli_print_policy(FILE *out, const struct il_policy *policy, uint32_t capacity)
{
    char ports[1024];
    cli_format_ports(policy, ports, sizeof ports);
    if (policy->max == IL_UNLIMITED)
        fprintf(out, "max: unlimited\n");
    else
        fprintf(out, "max: %u connections per key\n", policy->max);
    print_rules(out, policy, true);
    print_rules(out, policy, false);
    cli_print_rate(out, policy);
    fprintf(out, "proxy_from:");
    for (uint32_t i = 0; i < policy->nproxy && i < IL_MAX_PROXY_FROM; i++) {
        char net[IL_KEY_STRLEN];
        fprintf(out, "%s %s", i ? "," : "", il_key_format(&policy->proxy_from[i], net));
    }
    fprintf(out, "%s\n", policy->nproxy ? "" : " none");
    fprintf(out, "keys: IPv4 /%u, IPv6 /%u\n", policy->v4_prefix, policy->v6_prefix);
    fprintf(out, "ports: %s\n", ports);
    fprintf(out, "action: %s\n", policy->action == IL_ACTION_CLOSE ? "close" : "rst");
    fprintf(out, "blocking: %s\n", policy->blocking == IL_BLOCKING_WAIT ? "wait" : "eagain");
    fprintf(out, "log: %s, once per key every %u s\n", log_name(policy->log_target),
            policy->log_interval);
    if (policy->reconcile_interval)
        fprintf(out, "reconcile: every %u s, %s\n", policy->reconcile_interval,
                policy->reconcile_thread ? "in a thread" : "inline in accept");
    else
        fprintf(out, "reconcile: never\n");
    if (capacity)
        fprintf(out, "capacity: %u connections\n", capacity);
    fprintf(out, "dry run: %s\n", policy->dry_run ? "yes (count and log, reject nothing)" : "no");
}

unsigned cli_print_config_errors(const struct il_config *config)
{
    for (unsigned i = 0; i < config->nerrors && i < IL_CONFIG_MAX_ERRORS; i++)
        fprintf(stderr, "iplimit: error: %s\n", config->errors[i]);
    if (config->nerrors >= IL_CONFIG_MAX_ERRORS)
        fprintf(stderr, "iplimit: (only the first %d errors are listed)\n", IL_CONFIG_MAX_ERRORS);
    return config->nerrors;
}

/* A setting the service starts with (started.h), but the file's name. */
bool cli_is_policy_var(const char *entry)
{
    return il_started_is_setting(entry) && strncmp(entry, "IPLIMIT_CONFIG=", 15) != 0;
}

void cli_print_sources(FILE *out, const struct il_config *config)
{
    extern char **environ;
    fprintf(out, "file: %s\n", config->file[0] ? config->file : "none");
    fprintf(out, "environment:");
    bool any = false;
    for (char **e = environ; *e; e++) {
        if (!cli_is_policy_var(*e))
            continue;
        fprintf(out, " %.*s", (int)strcspn(*e, "="), *e);
        any = true;
    }
    fprintf(out, "%s\n", any ? "" : " none");
}
