/* Unit tests for configuration loading: the environment (a synthetic envp),
 * libconfig files, precedence and error reporting (src/lib/config.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/lib/config.h"
#include "../../src/lib/shm.h"
#include "tap.h"
#include "unit_config.h"

static void load_env1(const char *var)
{
    char *envp[] = {(char *)var, NULL};
    load(NULL, envp);
}

static char *rule_text(unsigned i, char *buf)
{
    char key[IL_KEY_STRLEN];
    const struct il_rule *r = &config.policy.rules[i];
    if (r->allow)
        snprintf(buf, 96, "allow %s", il_key_format(&r->net, key));
    else
        snprintf(buf, 96, "%s=%u", il_key_format(&r->net, key), r->limit);
    return buf;
}

/* All rules, in policy order, joined by spaces. */
static const char *rules_text(void)
{
    static char out[1024];
    char one[96];
    out[0] = '\0';
    for (unsigned i = 0; i < config.policy.nrules && i < 8; i++)
        snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", i ? " " : "",
                 rule_text(i, one));
    return out;
}

static unsigned count_ports(void)
{
    unsigned n = 0;
    for (unsigned p = 0; p < 65536; p++)
        n += config.policy.ports[p / 64] >> (p % 64) & 1;
    return n;
}

static void test_defaults(void)
{
    char *envp[] = {"PATH=/bin", "HOME=/root", NULL};
    load(NULL, envp);
    IS_U(config.nerrors, 0, "no variables: no errors");
    IS_U(config.policy.enabled, 1, "no variables: enabled");
    IS_U(config.policy.max, 1024, "no variables: max 1024");
    IS_U(config.capacity, IL_DEFAULT_CAPACITY, "no variables: default capacity");
    IS_S(config.file, "", "no variables: no file");
    IS_U(config.policy.nrules, 0, "no variables: no rules");
    IS_U(config.policy.all_ports, 1, "no variables: all ports");
    IS_U(config.policy.reconcile_thread, 1, "no variables: reconciler thread on");
}

static void test_env_settings(void)
{
    char *envp[] = {"IPLIMIT_MAX=7",
                    "IPLIMIT_ALLOW= 10.0.0.1 , 10.0.1.0/24",
                    "IPLIMIT_LIMITS=10.0.0.0/8=100,2001:db8::/32=5",
                    "IPLIMIT_PORTS=5060,5061-5062, 80",
                    "IPLIMIT_IPV4_PREFIX=24",
                    "IPLIMIT_IPV6_PREFIX=48",
                    "IPLIMIT_ACTION=close",
                    "IPLIMIT_BLOCKING=wait",
                    "IPLIMIT_LOG=stderr",
                    "IPLIMIT_LOG_INTERVAL=5",
                    "IPLIMIT_CAPACITY=128",
                    "IPLIMIT_DRY_RUN=yes",
                    "IPLIMIT_RECONCILE_THREAD=no",
                    NULL};
    load(NULL, envp);
    IS_U(config.nerrors, 0, "env: every setting accepted");
    if (config.nerrors)
        tap_diag("first error: %s", config.errors[0]);
    IS_U(config.policy.enabled, 1, "env: enabled");
    IS_U(config.policy.max, 7, "env: IPLIMIT_MAX");
    IS_S(rules_text(), "allow 10.0.0.1 allow 10.0.1.0/24 10.0.0.0/8=100 2001:db8::/32=5",
         "env: IPLIMIT_ALLOW and IPLIMIT_LIMITS, longest prefix (of 128 bits) first");
    IS_U(config.policy.all_ports, 0, "env: IPLIMIT_PORTS turns off all_ports");
    IS_U(count_ports(), 4, "env: IPLIMIT_PORTS sets 4 ports");
    tap_ok(il_policy_polices_port(&config.policy, 5062) &&
               il_policy_polices_port(&config.policy, 80) &&
               !il_policy_polices_port(&config.policy, 5063),
           "env: IPLIMIT_PORTS range and list");
    IS_U(config.policy.v4_prefix, 24, "env: IPLIMIT_IPV4_PREFIX");
    IS_U(config.policy.v6_prefix, 48, "env: IPLIMIT_IPV6_PREFIX");
    IS_U(config.policy.action, IL_ACTION_CLOSE, "env: IPLIMIT_ACTION");
    IS_U(config.policy.blocking, IL_BLOCKING_WAIT, "env: IPLIMIT_BLOCKING");
    IS_U(config.policy.log_target, IL_LOG_STDERR, "env: IPLIMIT_LOG");
    IS_U(config.policy.log_interval, 5, "env: IPLIMIT_LOG_INTERVAL");
    IS_U(config.capacity, 128, "env: IPLIMIT_CAPACITY");
    IS_U(config.policy.dry_run, 1, "env: IPLIMIT_DRY_RUN");
    IS_U(config.policy.reconcile_thread, 0, "env: IPLIMIT_RECONCILE_THREAD");
}

static void test_env_words(void)
{
    load_env1("IPLIMIT_ACTION=RST");
    IS_U(config.policy.action, IL_ACTION_RST, "env: action RST (any case)");
    load_env1("IPLIMIT_LOG=none");
    IS_U(config.policy.log_target, IL_LOG_NONE, "env: log none");
    load_env1("IPLIMIT_DRY_RUN=off");
    tap_ok(config.policy.dry_run == 0 && config.nerrors == 0, "env: dry run off");
    load_env1("IPLIMIT_PORTS=all");
    tap_ok(config.policy.all_ports == 1 && config.nerrors == 0, "env: ports all");
    load_env1("IPLIMIT_MAX=0");
    tap_ok(config.policy.max == 0 && config.nerrors == 0, "env: max 0 (unlimited)");
    load_env1("IPLIMIT_MAX=4294967294");
    IS_U(config.policy.max, 4294967294u, "env: max 4294967294");
    load_env1("IPLIMIT_PORTS=1-65535");
    IS_U(count_ports(), 65535, "env: ports 1-65535");
}

/* name=value gives exactly one error, exactly want, and disables the policy. */
static void check_env_error(const char *var, const char *want)
{
    load_env1(var);
    char name[200];
    snprintf(name, sizeof name, "env error %s: one error", var);
    IS_U(config.nerrors, 1, name);
    snprintf(name, sizeof name, "env error %s: message", var);
    IS_S(config.errors[0], want, name);
    snprintf(name, sizeof name, "env error %s: disabled", var);
    IS_U(config.policy.enabled, 0, name);
}

static void test_env_errors(void)
{
    const char *num = "is not a whole number from";
    char want[IL_CONFIG_ERROR_LEN];
    snprintf(want, sizeof want, "IPLIMIT_MAX: \"abc\" %s 0 to 4294967294", num);
    check_env_error("IPLIMIT_MAX=abc", want);
    snprintf(want, sizeof want, "IPLIMIT_MAX: \"-1\" %s 0 to 4294967294", num);
    check_env_error("IPLIMIT_MAX=-1", want);
    snprintf(want, sizeof want, "IPLIMIT_MAX: \"4294967295\" %s 0 to 4294967294", num);
    check_env_error("IPLIMIT_MAX=4294967295", want);
    snprintf(want, sizeof want, "IPLIMIT_MAX: \"\" %s 0 to 4294967294", num);
    check_env_error("IPLIMIT_MAX=", want);
    snprintf(want, sizeof want, "IPLIMIT_IPV4_PREFIX: \"33\" %s 0 to 32", num);
    check_env_error("IPLIMIT_IPV4_PREFIX=33", want);
    snprintf(want, sizeof want, "IPLIMIT_IPV6_PREFIX: \"129\" %s 0 to 128", num);
    check_env_error("IPLIMIT_IPV6_PREFIX=129", want);
    snprintf(want, sizeof want, "IPLIMIT_LOG_INTERVAL: \"0\" %s 1 to 86400", num);
    check_env_error("IPLIMIT_LOG_INTERVAL=0", want);
    snprintf(want, sizeof want, "IPLIMIT_CAPACITY: \"63\" %s 64 to 16777216", num);
    check_env_error("IPLIMIT_CAPACITY=63", want);
    check_env_error("IPLIMIT_ACTION=drop", "IPLIMIT_ACTION: \"drop\" is not rst or close");
    check_env_error("IPLIMIT_BLOCKING=block",
                    "IPLIMIT_BLOCKING: \"block\" is not eagain or wait");
    check_env_error("IPLIMIT_LOG=file",
                    "IPLIMIT_LOG: \"file\" is not syslog, stderr or none");
    check_env_error("IPLIMIT_DRY_RUN=maybe", "IPLIMIT_DRY_RUN: \"maybe\" is not a boolean "
                                             "(0/1, yes/no, true/false, on/off)");
    check_env_error("IPLIMIT_RECONCILE_THREAD=2",
                    "IPLIMIT_RECONCILE_THREAD: \"2\" is not a boolean "
                    "(0/1, yes/no, true/false, on/off)");
    check_env_error("IPLIMIT_ALLOW=10.0.0.1/24",
                    "IPLIMIT_ALLOW: \"10.0.0.1/24\": address has bits set beyond the "
                    "prefix length");
    check_env_error("IPLIMIT_ALLOW=10.0.0.1,,10.0.0.2",
                    "IPLIMIT_ALLOW: empty item in \"10.0.0.1,,10.0.0.2\"");
    check_env_error("IPLIMIT_ALLOW=host.example",
                    "IPLIMIT_ALLOW: \"host.example\": not an IP address");
    check_env_error("IPLIMIT_LIMITS=10.0.0.0/8", "IPLIMIT_LIMITS: \"10.0.0.0/8\" is not CIDR=N");
    check_env_error("IPLIMIT_LIMITS=10.0.0.0/8=x",
                    "IPLIMIT_LIMITS: \"10.0.0.0/8=x\": limit is not a whole number");
    check_env_error("IPLIMIT_LIMITS=10.0.0.0/33=1",
                    "IPLIMIT_LIMITS: \"10.0.0.0/33\": prefix length too long");
    check_env_error("IPLIMIT_PORTS=0",
                    "IPLIMIT_PORTS: \"0\" is not a port (1-65535) or a range LOW-HIGH");
    check_env_error("IPLIMIT_PORTS=90-80",
                    "IPLIMIT_PORTS: \"90-80\" is not a port (1-65535) or a range LOW-HIGH");
    check_env_error("IPLIMIT_PORTS=65536",
                    "IPLIMIT_PORTS: \"65536\" is not a port (1-65535) or a range LOW-HIGH");
    check_env_error("IPLIMIT_FOO=1", "IPLIMIT_FOO: unknown variable");
    check_env_error("IPLIMIT_max=1", "IPLIMIT_max: unknown variable");
}

static void test_env_many_errors(void)
{
    char *envp[] = {"IPLIMIT_MAX=x", "IPLIMIT_A=1", "IPLIMIT_B=1", "IPLIMIT_C=1", "IPLIMIT_D=1",
                    "IPLIMIT_E=1", "IPLIMIT_F=1", "IPLIMIT_G=1", "IPLIMIT_H=1", "IPLIMIT_I=1",
                    "IPLIMIT_J=1", "IPLIMIT_K=1", "IPLIMIT_L=1", "IPLIMIT_M=1", "IPLIMIT_N=1",
                    "IPLIMIT_O=1", "IPLIMIT_P=1", "IPLIMIT_Q=1", "IPLIMIT_R=1", NULL};
    load(NULL, envp);
    IS_U(config.nerrors, IL_CONFIG_MAX_ERRORS, "19 errors: the first 16 are kept");
    IS_S(config.errors[15], "IPLIMIT_O: unknown variable", "19 errors: the 16th is kept");
    IS_U(config.policy.enabled, 0, "19 errors: disabled");
}

static const char full_file[] =
    "# every setting\n"
    "max = 9;\n"
    "allow = [\"192.0.2.1\", \"198.51.100.0/24\"];\n"
    "limits = ( { network = \"10.0.0.0/8\"; max = 100; },\n"
    "           { network = \"10.1.0.0/16\"; max = 20; } );\n"
    "ports = ( 5060, \"6000-6001\" );\n"
    "ipv4_prefix = 30;\n"
    "ipv6_prefix = 56;\n"
    "action = \"close\";\n"
    "blocking = \"wait\";\n"
    "log = \"none\";\n"
    "log_interval = 30;\n"
    "capacity = 1000;\n"
    "dry_run = true;\n"
    "reconcile_thread = false;\n";

static void test_file_settings(void)
{
    char path[64];
    if (!tap_ok(tap_write_temp(path, full_file) == 0, "file: temp file written"))
        return;
    char var[128];
    snprintf(var, sizeof var, "IPLIMIT_CONFIG=%s", path);
    load_env1(var);
    IS_U(config.nerrors, 0, "file: every setting accepted");
    if (config.nerrors)
        tap_diag("first error: %s", config.errors[0]);
    IS_S(config.file, path, "file: named by IPLIMIT_CONFIG");
    IS_U(config.policy.enabled, 1, "file: enabled");
    IS_U(config.policy.max, 9, "file: max");
    IS_S(rules_text(), "allow 192.0.2.1 allow 198.51.100.0/24 10.1.0.0/16=20 10.0.0.0/8=100",
         "file: allow and limits");
    IS_U(count_ports(), 3, "file: ports");
    tap_ok(il_policy_polices_port(&config.policy, 6001) &&
               !il_policy_polices_port(&config.policy, 6002),
           "file: port range");
    IS_U(config.policy.v4_prefix, 30, "file: ipv4_prefix");
    IS_U(config.policy.v6_prefix, 56, "file: ipv6_prefix");
    IS_U(config.policy.action, IL_ACTION_CLOSE, "file: action");
    IS_U(config.policy.blocking, IL_BLOCKING_WAIT, "file: blocking");
    IS_U(config.policy.log_target, IL_LOG_NONE, "file: log");
    IS_U(config.policy.log_interval, 30, "file: log_interval");
    IS_U(config.capacity, 1000, "file: capacity");
    IS_U(config.policy.dry_run, 1, "file: dry_run");
    IS_U(config.policy.reconcile_thread, 0, "file: reconcile_thread");
    unlink(path);
}

static void test_file_forms(void)
{
    char path[64];
    tap_write_temp(path, "limits = [\"10.0.0.0/8=3\"];\nallow = \"192.0.2.1\";\nports = 80;\n");
    char *envp[] = {NULL};
    load(path, envp);
    IS_U(config.nerrors, 0, "file: string-list limits, scalar allow and port");
    IS_S(rules_text(), "allow 192.0.2.1 10.0.0.0/8=3", "file: string forms give the rules");
    IS_S(config.file, path, "file: named by the argument");
    unlink(path);
}

static void test_env_overrides_file(void)
{
    char path[64], var[128];
    tap_write_temp(path, "max = 5;\nallow = [\"192.0.2.1\"];\nlimits = [\"10.0.0.0/8=3\"];\n"
                         "action = \"close\";\n");
    snprintf(var, sizeof var, "IPLIMIT_CONFIG=%s", path);
    char *envp[] = {var, "IPLIMIT_MAX=11", "IPLIMIT_ALLOW=192.0.2.2", NULL};
    load(NULL, envp);
    IS_U(config.nerrors, 0, "override: no errors");
    IS_U(config.policy.max, 11, "override: env max beats file max");
    IS_S(rules_text(), "allow 192.0.2.2 10.0.0.0/8=3",
         "override: env allow replaces file allow, file limits kept");
    IS_U(config.policy.action, IL_ACTION_CLOSE, "override: file setting kept when env is silent");
    unlink(path);
}

/* A file with text gives exactly one error, equal to PATH + want. */
static void check_file_error(const char *name, const char *text, const char *want)
{
    unit_file_error(name, text, want, true);
}

static void test_file_errors(void)
{
    check_file_error("unknown key", "max = 3;\nbogus = 1;\n", ":2: bogus: unknown setting");
    check_file_error("float", "\nmax = 1.5;\n", ":2: max: wrong type of value");
    check_file_error("bad number", "max = \"lots\";\n",
                     ":1: max: \"lots\" is not a whole number from 0 to 4294967294");
    check_file_error("negative", "max = -2;\n",
                     ":1: max: \"-2\" is not a whole number from 0 to 4294967294");
    check_file_error("bad cidr", "allow = [\"10.0.0.1\",\n  \"10.0.0.300\"];\n",
                     ":2: allow: \"10.0.0.300\": not an IP address");
    check_file_error("bad group", "limits = ( { network = \"10.0.0.0/8\"; } );\n",
                     ":1: limits: an entry is { network = \"CIDR\"; max = N; }");
    check_file_error("group network", "limits = (\n { network = \"10.0.0.0/33\"; max = 2; } );\n",
                     ":2: limits: network \"10.0.0.0/33\": prefix length too long");
    check_file_error("group max", "limits = ( { network = \"10.0.0.0/8\";\n max = \"x\"; } );\n",
                     ":1: limits: max \"x\" is not a whole number from 0 to 4294967294");
    check_file_error("comma in item", "allow = [\"10.0.0.1,10.0.0.2\"];\n",
                     ":1: allow: \"10.0.0.1,10.0.0.2\": not an IP address");
    check_file_error("port entry", "ports = [ 80,\n 0 ];\n",
                     ":2: ports: \"0\" is not a port (1-65535) or a range LOW-HIGH");
    check_file_error("syntax", "max = 3;\nallow = ;\n",
                     ":2: syntax error; the rest of the file was not checked");
    check_file_error("duplicate", "max = 3;\nmax = 4;\n",
                     ":2: duplicate setting name; the rest of the file was not checked");
    check_file_error("include", "max = 3;\n  @include \"/etc/passwd\"\n",
                     ":2: @include is not supported: put every setting in one file");
}

static void test_file_unreadable(void)
{
    char *envp[] = {"IPLIMIT_MAX=3", NULL};
    load("/nonexistent/iplimit.conf", envp);
    IS_U(config.nerrors, 1, "missing file: one error");
    IS_S(config.errors[0],
         "/nonexistent/iplimit.conf: cannot read the file: No such file or directory",
         "missing file: message names the file");
    IS_U(config.policy.enabled, 0, "missing file: disabled");

    load("/", envp);
    IS_U(config.nerrors, 1, "directory as file: one error");
    IS_S(config.errors[0], "/: not a regular file", "directory as file: message names it");
    IS_U(config.policy.enabled, 0, "directory as file: disabled");
}

/* Paths that would block (a FIFO), end the process (a read error inside
 * libconfig's scanner calls exit()) or eat memory: each is one error. */
static void test_file_hostile(void)
{
    char *envp[] = {"IPLIMIT_MAX=3", NULL};
    char dir[64], fifo[80], path[64];
    /* The FIFO goes in a directory of its own: a fixed name could already
     * exist (an earlier run's, or anyone's). */
    tap_temp_template(dir);
    bool dir_made = mkdtemp(dir) != NULL;
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    bool made = dir_made && mkfifo(fifo, 0600) == 0;
    if (!made)
        tap_diag("fifo %s: %s", fifo, strerror(errno));
    if (tap_ok(made, "fifo: made")) {
        load(fifo, envp); /* a blocking open would hang here: the suite's timeout fails it */
        IS_U(config.nerrors, 1, "fifo: one error");
        IS_S(config.errors[0] + strlen(fifo), ": not a regular file", "fifo: not a regular file");
        IS_U(config.policy.enabled, 0, "fifo: disabled");
        unlink(fifo);
    }
    if (dir_made)
        rmdir(dir);
    load("/proc/self/mem", envp);
    IS_U(config.nerrors, 1, "/proc/self/mem: one error");
    IS_S(config.errors[0], "/proc/self/mem: cannot read the file: Input/output error",
         "/proc/self/mem: the read error, not the scanner's exit");
    load("/dev/null", envp);
    IS_U(config.nerrors, 0, "/dev/null: read as an empty file");
    load("/dev/zero", envp);
    IS_S(config.errors[0], "/dev/zero: not a regular file", "/dev/zero: not a regular file");

    static char big[IL_CONFIG_MAX_FILE + 2];
    memset(big, '#', sizeof big - 1);
    big[sizeof big - 2] = '\n';
    tap_write_temp(path, big);
    load(path, envp);
    IS_U(config.nerrors, 1, "oversized: one error");
    IS_S(config.errors[0] + strlen(path), ": larger than 1048576 bytes: not read",
         "oversized: refused unread");
    unlink(path);
    big[IL_CONFIG_MAX_FILE - 1] = '\n';
    big[IL_CONFIG_MAX_FILE] = '\0';
    tap_write_temp(path, big);
    load(path, envp);
    IS_U(config.nerrors, 0, "exactly the limit: read (all comments)");
    unlink(path);
}

/* An error whose place (FILE:LINE: NAME) is longer than an error line must
 * be cut, not written past the line (libconfig names have no length limit). */
static void test_long_names(void)
{
    char text[600], path[64];
    memset(text, 'k', 300);
    strcpy(text + 300, " = 1;\n");
    tap_write_temp(path, text);
    char *envp[] = {NULL};
    load(path, envp);
    IS_U(config.nerrors, 1, "300-char unknown key: one error");
    IS_U(strnlen(config.errors[0], IL_CONFIG_ERROR_LEN), IL_CONFIG_ERROR_LEN - 1,
         "300-char unknown key: the line is cut to fit");
    unsigned stray = 0;
    for (unsigned i = 1; i < IL_CONFIG_MAX_ERRORS; i++)
        for (unsigned j = 0; j < IL_CONFIG_ERROR_LEN; j++)
            stray += config.errors[i][j] != 0;
    IS_U(stray, 0, "300-char unknown key: nothing written past the error line");
    unlink(path);
}

int main(void)
{
    test_defaults();
    test_env_settings();
    test_env_words();
    test_env_errors();
    test_env_many_errors();
    test_file_settings();
    test_file_forms();
    test_env_overrides_file();
    test_file_errors();
    test_file_unreadable();
    test_file_hostile();
    test_long_names();
    return tap_done();
}
