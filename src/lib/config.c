/* Configuration parsing: one text parser per setting, fed by the
 * environment ("IPLIMIT_MAX") or by the file ("FILE:LINE: max"). */
#include "config.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <fcntl.h>

#include "ratebucket.h"
#include "shm.h"

typedef void (*il_setter)(struct il_config *, const char *text, const char *where);

struct il_setting {
    const char *name; /* in the file */
    const char *env;
    il_setter set;
    il_setter item; /* lists: one entry, after set(config, "", ...) emptied the list */
};

static void error_at(struct il_config *config, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void error_at(struct il_config *config, const char *where, const char *fmt, ...)
{
    config->policy.enabled = 0;
    if (config->nerrors >= IL_CONFIG_MAX_ERRORS)
        return;
    char *out = config->errors[config->nerrors++];
    int n = snprintf(out, IL_CONFIG_ERROR_LEN, "%s: ", where);
    if (n < 0 || n >= IL_CONFIG_ERROR_LEN - 1)
        return; /* the location alone filled the line (cut short) */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + n, IL_CONFIG_ERROR_LEN - (size_t)n, fmt, ap);
    va_end(ap);
}

static const char *skip_space(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return s;
}

/* Unsigned decimal within [min, max], surrounding blanks allowed. */
static int parse_uint(const char *text, unsigned long min, unsigned long max, unsigned long *out)
{
    const char *s = skip_space(text);
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long value = strtoul(s, &end, 10);
    if (errno || *skip_space(end) != '\0' || value < min || value > max)
        return -1;
    *out = value;
    return 0;
}

static int set_uint(struct il_config *config, const char *text, const char *where,
                    unsigned long min, unsigned long max, unsigned long *out)
{
    if (parse_uint(text, min, max, out) == 0)
        return 0;
    error_at(config, where, "\"%s\" is not a whole number from %lu to %lu", text, min, max);
    return -1;
}

static void set_max(struct il_config *config, const char *text, const char *where)
{
    unsigned long value;
    if (set_uint(config, text, where, 0, UINT32_MAX - 1, &value) == 0)
        config->policy.max = (uint32_t)value;
}

static void set_rate(struct il_config *config, const char *text, const char *where)
{
    unsigned long value;
    if (set_uint(config, text, where, 0, IL_RATE_MAX, &value) == 0)
        config->policy.rate = (uint32_t)value;
}

static void set_burst(struct il_config *config, const char *text, const char *where)
{
    unsigned long value;
    if (set_uint(config, text, where, 0, IL_RATE_MAX, &value) == 0)
        config->policy.burst = (uint32_t)value;
}

static void set_v4_prefix(struct il_config *config, const char *text, const char *where)
{
    unsigned long value;
    if (set_uint(config, text, where, 0, 32, &value) == 0)
        config->policy.v4_prefix = (uint8_t)value;
}

static void set_v6_prefix(struct il_config *config, const char *text, const char *where)
{
    unsigned long value;
    if (set_uint(config, text, where, 0, 128, &value) == 0)
        config->policy.v6_prefix = (uint8_t)value;
}

static void set_log_interval(struct il_config *config, const char *text, const char *where)
{
    unsigned long value;
    if (set_uint(config, text, where, 1, 86400, &value) == 0)
        config->policy.log_interval = (uint32_t)value;
}

static void set_reconcile_interval(struct il_config *config, const char *text, const char *where)
{
    unsigned long value;
    if (set_uint(config, text, where, 0, 86400, &value) == 0)
        config->policy.reconcile_interval = (uint32_t)value;
}

static void set_capacity(struct il_config *config, const char *text, const char *where)
{
    unsigned long value;
    if (set_uint(config, text, where, 64, IL_MAX_CAPACITY, &value) == 0)
        config->capacity = (uint32_t)value;
}

static int parse_word(const char *text, const char *const *words, int nwords)
{
    const char *s = skip_space(text);
    for (int i = 0; i < nwords; i++) {
        size_t len = strlen(words[i]);
        if (strncasecmp(s, words[i], len) == 0 && *skip_space(s + len) == '\0')
            return i;
    }
    return -1;
}

static void set_action(struct il_config *config, const char *text, const char *where)
{
    static const char *const words[] = {"rst", "close"};
    int i = parse_word(text, words, 2);
    if (i < 0)
        error_at(config, where, "\"%s\" is not rst or close", text);
    else
        config->policy.action = (uint8_t)(i == 0 ? IL_ACTION_RST : IL_ACTION_CLOSE);
}

static void set_blocking(struct il_config *config, const char *text, const char *where)
{
    static const char *const words[] = {"eagain", "wait"};
    int i = parse_word(text, words, 2);
    if (i < 0)
        error_at(config, where, "\"%s\" is not eagain or wait", text);
    else
        config->policy.blocking = (uint8_t)(i == 0 ? IL_BLOCKING_EAGAIN : IL_BLOCKING_WAIT);
}

static void set_log(struct il_config *config, const char *text, const char *where)
{
    static const char *const words[] = {"syslog", "stderr", "none"};
    static const uint8_t targets[] = {IL_LOG_SYSLOG, IL_LOG_STDERR, IL_LOG_NONE};
    int i = parse_word(text, words, 3);
    if (i < 0)
        error_at(config, where, "\"%s\" is not syslog, stderr or none", text);
    else
        config->policy.log_target = targets[i];
}

/* A Prometheus label value and a word in stat's header: short, and only
 * characters no terminal or scraper interprets. */
static void set_service(struct il_config *config, const char *text, const char *where)
{
    size_t len = strlen(text);
    bool ok = len > 0 && len < sizeof config->service;
    for (const char *p = text; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || strchr("._-@:+", *p);
    if (!ok)
        error_at(config, where, "\"%s\" is not a service name (1-%zu letters, digits and ._-@:+)",
                 text, sizeof config->service - 1);
    else
        memcpy(config->service, text, len + 1);
}

static void set_bool(struct il_config *config, const char *text, const char *where,
                     uint8_t *value)
{
    static const char *const words[] = {"0", "no", "false", "off", "1", "yes", "true", "on"};
    int i = parse_word(text, words, 8);
    if (i < 0)
        error_at(config, where, "\"%s\" is not a boolean (0/1, yes/no, true/false, on/off)",
                 text);
    else
        *value = i >= 4;
}

static void set_dry_run(struct il_config *config, const char *text, const char *where)
{
    set_bool(config, text, where, &config->policy.dry_run);
}

static void set_reconcile_thread(struct il_config *config, const char *text, const char *where)
{
    set_bool(config, text, where, &config->policy.reconcile_thread);
}

/* Calls each(config, item, where) for each comma-separated item of text. */
static void for_each_item(struct il_config *config, const char *text, const char *where,
                          void (*each)(struct il_config *, const char *, const char *))
{
    char item[128];
    const char *p = text;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && isspace((unsigned char)*p))
            p++, len--;
        while (len && isspace((unsigned char)p[len - 1]))
            len--;
        if (len >= sizeof item) {
            error_at(config, where, "item \"%.40s...\" is too long", p);
        } else if (len == 0) {
            if (comma)
                error_at(config, where, "empty item in \"%s\"", text);
        } else {
            memcpy(item, p, len);
            item[len] = '\0';
            each(config, item, where);
        }
        if (!comma)
            break;
        p = comma + 1;
    }
}

static void drop_rules(struct il_policy *policy, int allow)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < policy->nrules; i++)
        if (policy->rules[i].allow != allow)
            policy->rules[kept++] = policy->rules[i];
    policy->nrules = kept;
}

static void add_rule(struct il_config *config, const char *cidr, const char *where, int allow,
                     uint32_t limit)
{
    struct il_key net;
    const char *err = il_key_parse_cidr(&net, cidr);
    if (err)
        error_at(config, where, "\"%s\": %s", cidr, err);
    else if (!il_policy_add_rule(&config->policy, &net, allow, limit))
        error_at(config, where, "more than %d networks", IL_MAX_RULES);
}

static void allow_item(struct il_config *config, const char *item, const char *where)
{
    add_rule(config, item, where, 1, 0);
}

static void limit_item(struct il_config *config, const char *item, const char *where)
{
    char cidr[128];
    const char *eq = strchr(item, '=');
    unsigned long limit;
    if (!eq || (size_t)(eq - item) >= sizeof cidr) {
        error_at(config, where, "\"%s\" is not CIDR=N", item);
        return;
    }
    memcpy(cidr, item, (size_t)(eq - item));
    cidr[eq - item] = '\0';
    if (parse_uint(eq + 1, 0, UINT32_MAX - 1, &limit) != 0) {
        error_at(config, where, "\"%s\": limit is not a whole number", item);
        return;
    }
    add_rule(config, skip_space(cidr), where, 0, (uint32_t)limit);
}

static void port_item(struct il_config *config, const char *item, const char *where)
{
    unsigned long lo, hi;
    char first[16];
    const char *dash = strchr(item, '-');
    size_t len = dash ? (size_t)(dash - item) : strlen(item);
    if (len >= sizeof first) {
        error_at(config, where, "\"%s\" is not a port or a range", item);
        return;
    }
    memcpy(first, item, len);
    first[len] = '\0';
    if (parse_uint(first, 1, 65535, &lo) != 0 ||
        (dash ? parse_uint(dash + 1, 1, 65535, &hi) : (hi = lo, 0)) != 0 || hi < lo) {
        error_at(config, where, "\"%s\" is not a port (1-65535) or a range LOW-HIGH", item);
        return;
    }
    config->policy.all_ports = 0;
    for (unsigned long port = lo; port <= hi; port++)
        config->policy.ports[port / 64] |= 1ULL << (port % 64);
}

static void set_allow(struct il_config *config, const char *text, const char *where)
{
    drop_rules(&config->policy, 1);
    for_each_item(config, text, where, allow_item);
}

static void proxy_item(struct il_config *config, const char *item, const char *where)
{
    struct il_key net;
    const char *err = il_key_parse_cidr(&net, item);
    if (err)
        error_at(config, where, "\"%s\": %s", item, err);
    else if (!il_policy_add_proxy(&config->policy, &net))
        error_at(config, where, "more than %d networks", IL_MAX_PROXY_FROM);
}

static void set_proxy_from(struct il_config *config, const char *text, const char *where)
{
    config->policy.nproxy = 0;
    for_each_item(config, text, where, proxy_item);
}

static void set_limits(struct il_config *config, const char *text, const char *where)
{
    drop_rules(&config->policy, 0);
    for_each_item(config, text, where, limit_item);
}

/* CIDR=RATE or CIDR=RATE/BURST */
static void rate_item(struct il_config *config, const char *item, const char *where)
{
    char cidr[128], rate_text[32];
    const char *eq = strchr(item, '=');
    unsigned long rate, burst = 0;
    if (!eq || (size_t)(eq - item) >= sizeof cidr) {
        error_at(config, where, "\"%s\" is not CIDR=RATE or CIDR=RATE/BURST", item);
        return;
    }
    memcpy(cidr, item, (size_t)(eq - item));
    cidr[eq - item] = '\0';
    const char *slash = strchr(eq + 1, '/');
    size_t len = slash ? (size_t)(slash - eq - 1) : strlen(eq + 1);
    if (len < sizeof rate_text) {
        memcpy(rate_text, eq + 1, len);
        rate_text[len] = '\0';
    }
    if (len >= sizeof rate_text || parse_uint(rate_text, 0, IL_RATE_MAX, &rate) != 0) {
        error_at(config, where, "\"%s\": rate is not a whole number from 0 to %d", item,
                 IL_RATE_MAX);
        return;
    }
    if (slash && parse_uint(slash + 1, 1, IL_RATE_MAX, &burst) != 0) {
        error_at(config, where, "\"%s\": burst is not a whole number from 1 to %d", item,
                 IL_RATE_MAX);
        return;
    }
    if (slash && rate == 0) {
        error_at(config, where, "\"%s\": a burst needs a rate above 0", item);
        return;
    }
    struct il_key net;
    const char *err = il_key_parse_cidr(&net, skip_space(cidr));
    if (err)
        error_at(config, where, "\"%s\": %s", skip_space(cidr), err);
    else if (!il_policy_add_rate(&config->policy, &net, (uint32_t)rate, (uint32_t)burst))
        error_at(config, where, "more than %d networks", IL_MAX_RULES);
}

static void set_rates(struct il_config *config, const char *text, const char *where)
{
    config->policy.nrates = 0;
    for_each_item(config, text, where, rate_item);
}

static void set_ports(struct il_config *config, const char *text, const char *where)
{
    config->policy.all_ports = 1;
    memset(config->policy.ports, 0, sizeof config->policy.ports);
    if (parse_word(text, (const char *const[]){"all"}, 1) == 0)
        return;
    for_each_item(config, text, where, port_item);
}

static const struct il_setting settings[] = {
    {"max", "IPLIMIT_MAX", set_max, NULL},
    {"allow", "IPLIMIT_ALLOW", set_allow, allow_item},
    {"limits", "IPLIMIT_LIMITS", set_limits, limit_item},
    {"rate", "IPLIMIT_RATE", set_rate, NULL},
    {"burst", "IPLIMIT_BURST", set_burst, NULL},
    {"rates", "IPLIMIT_RATES", set_rates, rate_item},
    {"ports", "IPLIMIT_PORTS", set_ports, port_item},
    {"proxy_from", "IPLIMIT_PROXY_FROM", set_proxy_from, proxy_item},
    {"ipv4_prefix", "IPLIMIT_IPV4_PREFIX", set_v4_prefix, NULL},
    {"ipv6_prefix", "IPLIMIT_IPV6_PREFIX", set_v6_prefix, NULL},
    {"action", "IPLIMIT_ACTION", set_action, NULL},
    {"blocking", "IPLIMIT_BLOCKING", set_blocking, NULL},
    {"log", "IPLIMIT_LOG", set_log, NULL},
    {"log_interval", "IPLIMIT_LOG_INTERVAL", set_log_interval, NULL},
    {"capacity", "IPLIMIT_CAPACITY", set_capacity, NULL},
    {"dry_run", "IPLIMIT_DRY_RUN", set_dry_run, NULL},
    {"reconcile_interval", "IPLIMIT_RECONCILE_INTERVAL", set_reconcile_interval, NULL},
    {"reconcile_thread", "IPLIMIT_RECONCILE_THREAD", set_reconcile_thread, NULL},
    {"service", "IPLIMIT_SERVICE", set_service, NULL},
};
#define NSETTINGS (sizeof settings / sizeof settings[0])

static const struct il_setting *find_setting(const char *name, int by_env)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strcmp(by_env ? settings[i].env : settings[i].name, name) == 0)
            return &settings[i];
    return NULL;
}

/* ---- the file ---- */

/* libconfig's functions, found with dlopen at the first file read. It is
 * opened RTLD_LOCAL | RTLD_DEEPBIND and called only through these
 * pointers: a host that defines functions of the same names (config_init
 * is a common name) gets neither these calls nor libconfig's calls to
 * itself, and a service without a file never loads it. The rest of
 * libconfig's API used here is macros. */
#define LIBCONFIG_SONAME "libconfig.so.9"
#define IL_STR_(x) #x
#define IL_STR(x) IL_STR_(x)
#define LC_FN(name) __typeof__(name) *name
static struct {
    LC_FN(config_init);
    LC_FN(config_destroy);
    LC_FN(config_read_string);
    LC_FN(config_setting_length);
    LC_FN(config_setting_get_elem);
    LC_FN(config_setting_get_member);
    LC_FN(config_setting_get_int64);
    LC_FN(config_setting_get_string);
    LC_FN(config_setting_get_bool);
} lc;

#define LC_LOAD(handle, name) (lc.name = (__typeof__(name) *)dlsym(handle, #name))

/* The sanitizer runtimes kill a process that dlopens with RTLD_DEEPBIND;
 * under one (a sanitized host, or the sanitizer test suites) libconfig is
 * opened without it. */
static int deepbind_flag(void)
{
    return dlsym(RTLD_DEFAULT, "__sanitizer_print_stack_trace") ? 0 : RTLD_DEEPBIND;
}

static bool load_libconfig(struct il_config *config, const char *path)
{
    if (lc.config_init)
        return true;
    void *handle = dlopen(LIBCONFIG_SONAME, RTLD_NOW | RTLD_LOCAL | deepbind_flag());
    if (!handle) {
        const char *why = dlerror();
        error_at(config, path, "cannot load %s to read it: %s", LIBCONFIG_SONAME,
                 why ? why : "dlopen failed");
        return false;
    }
    bool found = LC_LOAD(handle, config_destroy) && LC_LOAD(handle, config_read_string) &&
                 LC_LOAD(handle, config_setting_length) &&
                 LC_LOAD(handle, config_setting_get_elem) &&
                 LC_LOAD(handle, config_setting_get_member) &&
                 LC_LOAD(handle, config_setting_get_int64) &&
                 LC_LOAD(handle, config_setting_get_string) &&
                 LC_LOAD(handle, config_setting_get_bool);
    /* config_init last: it says the table is complete. */
    if (!found || !LC_LOAD(handle, config_init)) {
        error_at(config, path, "%s lacks a function this library needs", LIBCONFIG_SONAME);
        return false;
    }
    return true;
}


/* Turns a scalar setting into the text its parser takes. */
static int scalar_text(const config_setting_t *s, char *buf, size_t size)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        snprintf(buf, size, "%lld", (long long)lc.config_setting_get_int64(s));
        return 0;
    case CONFIG_TYPE_STRING:
        snprintf(buf, size, "%s", lc.config_setting_get_string(s));
        return 0;
    case CONFIG_TYPE_BOOL:
        snprintf(buf, size, "%d", lc.config_setting_get_bool(s));
        return 0;
    default:
        return -1;
    }
}

/* limits = ( { network = "10.0.0.0/8"; max = 100; }, ... ): one entry, its
 * errors told in the file's own words. */
static void group_item(struct il_config *config, const config_setting_t *group, const char *where)
{
    const config_setting_t *net = lc.config_setting_get_member(group, "network");
    const config_setting_t *max = lc.config_setting_get_member(group, "max");
    char limit[32];
    if (!net || !max || lc.config_setting_length(group) != 2 ||
        config_setting_type(net) != CONFIG_TYPE_STRING || scalar_text(max, limit, sizeof limit)) {
        error_at(config, where, "an entry is { network = \"CIDR\"; max = N; }");
        return;
    }
    const char *cidr = lc.config_setting_get_string(net);
    unsigned long value;
    struct il_key key;
    const char *err = il_key_parse_cidr(&key, cidr);
    if (err)
        error_at(config, where, "network \"%s\": %s", cidr, err);
    else if (parse_uint(limit, 0, UINT32_MAX - 1, &value) != 0)
        error_at(config, where, "max \"%s\" is not a whole number from 0 to %lu", limit,
                 (unsigned long)UINT32_MAX - 1);
    else if (!il_policy_add_rule(&config->policy, &key, 0, (uint32_t)value))
        error_at(config, where, "more than %d networks", IL_MAX_RULES);
}

/* rates = ( { network = "10.0.0.0/8"; rate = 50; burst = 100; }, ... ), burst
 * optional: one entry, checked as the CIDR=RATE/BURST it says. */
static void rate_group_item(struct il_config *config, const config_setting_t *group,
                            const char *where)
{
    const config_setting_t *net = lc.config_setting_get_member(group, "network");
    const config_setting_t *rate = lc.config_setting_get_member(group, "rate");
    const config_setting_t *burst = lc.config_setting_get_member(group, "burst");
    char rate_text[32], burst_text[32], item[256];
    if (!net || !rate || lc.config_setting_length(group) != 2 + (burst != NULL) ||
        config_setting_type(net) != CONFIG_TYPE_STRING ||
        scalar_text(rate, rate_text, sizeof rate_text) ||
        (burst && scalar_text(burst, burst_text, sizeof burst_text))) {
        error_at(config, where, "an entry is { network = \"CIDR\"; rate = N; burst = N; } "
                                "(burst optional)");
        return;
    }
    snprintf(item, sizeof item, "%s=%s%s%s", lc.config_setting_get_string(net), rate_text,
             burst ? "/" : "", burst ? burst_text : "");
    rate_item(config, item, where);
}

static void file_where(const struct il_config *config, const config_setting_t *s,
                       const char *name, char *where, size_t size)
{
    snprintf(where, size, "%s:%d: %s", config->file, config_setting_source_line(s),
             name ? name : "?");
}

/* A list (allow, limits, ports) given as an array or list: each entry is
 * checked on its own and an error names the entry's own line. */
static void apply_file_list(struct il_config *config, const struct il_setting *setting,
                            const config_setting_t *s, const char *where)
{
    setting->set(config, "", where);
    for (int i = 0; i < lc.config_setting_length(s); i++) {
        const config_setting_t *elem = lc.config_setting_get_elem(s, (unsigned)i);
        char text[256], elem_where[600];
        file_where(config, elem, setting->name, elem_where, sizeof elem_where);
        if (config_setting_is_group(elem) && setting->item == limit_item)
            group_item(config, elem, elem_where);
        else if (config_setting_is_group(elem) && setting->item == rate_item)
            rate_group_item(config, elem, elem_where);
        else if (scalar_text(elem, text, sizeof text) != 0)
            error_at(config, elem_where, "wrong type of value");
        else
            setting->item(config, text, elem_where);
    }
}

static void apply_file_setting(struct il_config *config, const config_setting_t *s)
{
    char where[600], text[32768];
    const char *name = config_setting_name(s);
    file_where(config, s, name, where, sizeof where);
    const struct il_setting *setting = name ? find_setting(name, 0) : NULL;
    if (!setting) {
        error_at(config, where, "unknown setting");
        return;
    }
    if (config_setting_is_aggregate(s) && setting->item)
        apply_file_list(config, setting, s, where);
    else if (scalar_text(s, text, sizeof text) != 0)
        error_at(config, where, "wrong type of value");
    else
        setting->set(config, text, where);
}

/* Reads path whole into a NUL-terminated buffer (to free), or NULL with
 * the error recorded. Only a regular file is read: a FIFO would block the
 * host's constructor for ever, a device could do anything. It is checked
 * before the open (so that no device is opened at all) and again on the
 * open fd (the name may have changed in between); O_NONBLOCK keeps the
 * open from waiting either way. The read is bounded by IL_CONFIG_MAX_FILE
 * whatever st_size says (/proc files say 0), and a read error (EIO from a
 * bad disk, /proc/self/mem) is an error like any other: the file is never
 * handed to libconfig's scanner, which exit()s the process on one. The
 * fd is opened and closed by system call: the library's close() wrapper
 * and whatever intercepts libc in front of it never see it. */
static char *read_whole_file(struct il_config *config, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        error_at(config, path, "cannot read the file: %s", strerror(errno));
        return NULL;
    }
    if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)) {
        /* /dev/null: an empty file, a common way to say "none" */
        char *empty = calloc(1, 1);
        if (!empty)
            error_at(config, path, "out of memory");
        return empty;
    }
    if (!S_ISREG(st.st_mode)) {
        error_at(config, path, "not a regular file");
        return NULL;
    }
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path,
                          O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        error_at(config, path, "cannot read the file: %s", strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t used = 0;
    int read_errno = 0;
    const char *why = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        why = "not a regular file";
    /* The buffer starts at the size fstat gives (plus room to see EOF or
     * growth) and doubles while reads fill it, up to one byte over the cap,
     * which is how a file over the cap is told. It ends one byte longer
     * than what was read, for the NUL. */
    size_t size = st.st_size > 0 && st.st_size < IL_CONFIG_MAX_FILE
                      ? (size_t)st.st_size + 4096 : 65536;
    if (!why && !(buf = malloc(size)))
        why = "out of memory";
    while (!why && !read_errno && used <= IL_CONFIG_MAX_FILE) {
        if (used + 1 >= size) {
            size_t bigger = size * 2 > IL_CONFIG_MAX_FILE + 2 ? IL_CONFIG_MAX_FILE + 2 : size * 2;
            char *grown = realloc(buf, bigger);
            if (!grown) {
                why = "out of memory";
                break;
            }
            buf = grown, size = bigger;
        }
        ssize_t n = read(fd, buf + used, size - 1 - used);
        if (n == 0)
            break;
        if (n > 0)
            used += (size_t)n;
        else if (errno != EINTR)
            read_errno = errno;
    }
    syscall(SYS_close, fd);
    if (!why && !read_errno && used > IL_CONFIG_MAX_FILE)
        why = "larger than " IL_STR(IL_CONFIG_MAX_FILE) " bytes: not read";
    if (!why && !read_errno && memchr(buf, '\0', used))
        why = "contains a NUL byte: not a text file";
    if (why || read_errno) {
        if (why)
            error_at(config, path, "%s", why);
        else
            error_at(config, path, "cannot read the file: %s", strerror(read_errno));
        free(buf);
        return NULL;
    }
    buf[used] = '\0';
    return buf;
}

/* libconfig would open an @include'd file itself, with none of the checks
 * above: a line that starts with @include is refused before parsing. */
static bool has_include(struct il_config *config, const char *text)
{
    int line = 1;
    for (const char *p = text; *p; line++) {
        const char *s = p;
        while (*s == ' ' || *s == '\t')
            s++;
        if (strncmp(s, "@include", 8) == 0) {
            char where[600];
            snprintf(where, sizeof where, "%s:%d", config->file, line);
            error_at(config, where, "@include is not supported: put every setting in one file");
            return true;
        }
        const char *nl = strchr(p, '\n');
        if (!nl)
            break;
        p = nl + 1;
    }
    return false;
}

static void load_file(struct il_config *config, const char *path)
{
    snprintf(config->file, sizeof config->file, "%s", path);
    char *text = read_whole_file(config, path);
    if (!text)
        return;
    if (has_include(config, text) || !load_libconfig(config, path)) {
        free(text);
        return;
    }
    config_t cf;
    lc.config_init(&cf);
    if (lc.config_read_string(&cf, text) != CONFIG_TRUE) {
        char where[600];
        snprintf(where, sizeof where, "%s:%d", path, config_error_line(&cf));
        error_at(config, where, "%s; the rest of the file was not checked",
                 config_error_text(&cf));
    } else {
        const config_setting_t *root = config_root_setting(&cf);
        for (int i = 0; i < lc.config_setting_length(root); i++)
            apply_file_setting(config, lc.config_setting_get_elem(root, (unsigned)i));
    }
    lc.config_destroy(&cf);
    free(text);
}

/* ---- the environment ---- */

static const char *env_value(char *const *envp, const char *name)
{
    size_t len = strlen(name);
    for (char *const *e = envp; e && *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
            return *e + len + 1;
    return NULL;
}

static void check_unknown_env(struct il_config *config, char *const *envp)
{
    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, "IPLIMIT_", 8) != 0)
            continue;
        char name[64];
        size_t len = strcspn(*e, "=");
        if (len >= sizeof name)
            len = sizeof name - 1;
        memcpy(name, *e, len);
        name[len] = '\0';
        /* IPLIMIT_SEGMENT_FD and IPLIMIT_INHERIT carry a service across exec
         * (inherit.h); they are not settings. */
        if (!find_setting(name, 1) && strcmp(name, "IPLIMIT_CONFIG") != 0 &&
            strcmp(name, "IPLIMIT_SEGMENT_FD") != 0 && strcmp(name, "IPLIMIT_INHERIT") != 0)
            error_at(config, name, "unknown variable");
    }
}

void il_config_load(struct il_config *config, char *const *envp, const char *file)
{
    extern char **environ;
    if (!envp)
        envp = environ;
    memset(config, 0, sizeof *config);
    il_policy_defaults(&config->policy);
    config->capacity = IL_DEFAULT_CAPACITY;

    if (!file)
        file = env_value(envp, "IPLIMIT_CONFIG");
    if (file && *file)
        load_file(config, file);
    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *value = env_value(envp, settings[i].env);
        if (value)
            settings[i].set(config, value, settings[i].env);
    }
    check_unknown_env(config, envp);
    if (config->policy.burst && !config->policy.rate)
        error_at(config, env_value(envp, "IPLIMIT_BURST") ? "IPLIMIT_BURST" : config->file,
                 "burst %u without a rate: set IPLIMIT_RATE (rate in the file) too",
                 config->policy.burst);
    il_policy_finish(&config->policy);
    if (config->nerrors)
        config->policy.enabled = 0;
}
