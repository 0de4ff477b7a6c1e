/* Unit tests for the new-connection rate settings: IPLIMIT_RATE,
 * IPLIMIT_BURST and IPLIMIT_RATES in the environment and the file, their
 * errors, and how the policy judges a peer's rate (src/lib/config.c,
 * policy.c). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../src/lib/config.h"
#include "tap.h"
#include "unit_config.h"

/* The rate rules, in policy order: "NET=RATE/BURST ...". */
static const char *rates_text(void)
{
    static char out[1024];
    char key[IL_KEY_STRLEN];
    out[0] = '\0';
    for (unsigned i = 0; i < config.policy.nrates && i < 8; i++) {
        const struct il_rate_rule *r = &config.policy.rates[i];
        snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s=%u/%u", i ? " " : "",
                 il_key_format(&r->net, key), r->rate, r->burst);
    }
    return out;
}

static void test_defaults(void)
{
    char *envp[] = {"PATH=/bin", NULL};
    load(NULL, envp);
    IS_U(config.nerrors, 0, "defaults: no errors");
    IS_U(config.policy.rate, 0, "defaults: no rate");
    IS_U(config.policy.burst, 0, "defaults: no burst");
    IS_U(config.policy.nrates, 0, "defaults: no per-network rates");
    IS_U(il_policy_rate_hold_ms(&config.policy), 0, "defaults: no hold");
}

static void test_env(void)
{
    char *envp[] = {"IPLIMIT_RATE=10", "IPLIMIT_BURST= 5 ",
                    "IPLIMIT_RATES=10.0.0.0/8=50/100, 10.1.0.0/16=0 ,2001:db8::/32=7", NULL};
    load(NULL, envp);
    IS_U(config.nerrors, 0, "env: no errors");
    if (config.nerrors)
        tap_diag("first error: %s", config.errors[0]);
    IS_U(config.policy.rate, 10, "env: IPLIMIT_RATE");
    IS_U(config.policy.burst, 5, "env: IPLIMIT_BURST");
    /* IPv4 /16 is /112 in the mapped space: longer than 2001:db8::/32. */
    IS_S(rates_text(), "10.1.0.0/16=0/0 10.0.0.0/8=50/100 2001:db8::/32=7/0",
         "env: IPLIMIT_RATES, longest prefix first");
    /* 10.0.0.0/8=50/100 fills in 2 s; 10/s burst 5 in 0.5 s; 7/s burst 7 in 1 s. */
    IS_U(il_policy_rate_hold_ms(&config.policy), 2000, "env: hold is the longest fill time");

    char *rate_only[] = {"IPLIMIT_RATE=65535", NULL};
    load(NULL, rate_only);
    IS_U(config.nerrors, 0, "env: the largest rate");
    IS_U(config.policy.rate, 65535, "env: rate 65535");
    IS_U(il_policy_rate_hold_ms(&config.policy), 1000, "env: burst = rate fills in 1 s");

    char *slow[] = {"IPLIMIT_RATE=3", "IPLIMIT_BURST=65535", NULL};
    load(NULL, slow);
    IS_U(il_policy_rate_hold_ms(&config.policy), 21845000, "env: 65535 at 3/s: 21845 s");

    char *zero[] = {"IPLIMIT_RATE=0", NULL};
    load(NULL, zero);
    IS_U(config.nerrors, 0, "env: rate 0 is valid (no rate)");
    IS_U(config.policy.rate, 0, "env: rate 0");
}

static void check_env_error(char *var, char *var2, const char *want)
{
    char *envp[] = {var, var2, NULL};
    load(NULL, envp);
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
    check_env_error("IPLIMIT_RATE=ten", NULL,
                    "IPLIMIT_RATE: \"ten\" is not a whole number from 0 to 65535");
    check_env_error("IPLIMIT_RATE=65536", NULL,
                    "IPLIMIT_RATE: \"65536\" is not a whole number from 0 to 65535");
    check_env_error("IPLIMIT_RATE=-1", NULL,
                    "IPLIMIT_RATE: \"-1\" is not a whole number from 0 to 65535");
    check_env_error("IPLIMIT_RATE=10", "IPLIMIT_BURST=1.5",
                    "IPLIMIT_BURST: \"1.5\" is not a whole number from 0 to 65535");
    check_env_error("IPLIMIT_RATE=10", "IPLIMIT_BURST=70000",
                    "IPLIMIT_BURST: \"70000\" is not a whole number from 0 to 65535");
    check_env_error("IPLIMIT_BURST=20", NULL,
                    "IPLIMIT_BURST: burst 20 without a rate: set IPLIMIT_RATE (rate in the "
                    "file) too");
    check_env_error("IPLIMIT_BURST=20", "IPLIMIT_RATE=0",
                    "IPLIMIT_BURST: burst 20 without a rate: set IPLIMIT_RATE (rate in the "
                    "file) too");
    check_env_error("IPLIMIT_RATES=10.0.0.0/8", NULL,
                    "IPLIMIT_RATES: \"10.0.0.0/8\" is not CIDR=RATE or CIDR=RATE/BURST");
    check_env_error("IPLIMIT_RATES=10.0.0.0/8=", NULL,
                    "IPLIMIT_RATES: \"10.0.0.0/8=\": rate is not a whole number from 0 to "
                    "65535");
    check_env_error("IPLIMIT_RATES=10.0.0.0/8=x/5", NULL,
                    "IPLIMIT_RATES: \"10.0.0.0/8=x/5\": rate is not a whole number from 0 to "
                    "65535");
    check_env_error("IPLIMIT_RATES=10.0.0.0/8=70000", NULL,
                    "IPLIMIT_RATES: \"10.0.0.0/8=70000\": rate is not a whole number from 0 "
                    "to 65535");
    check_env_error("IPLIMIT_RATES=10.0.0.0/8=5/0", NULL,
                    "IPLIMIT_RATES: \"10.0.0.0/8=5/0\": burst is not a whole number from 1 to "
                    "65535");
    check_env_error("IPLIMIT_RATES=10.0.0.0/8=5/", NULL,
                    "IPLIMIT_RATES: \"10.0.0.0/8=5/\": burst is not a whole number from 1 to "
                    "65535");
    check_env_error("IPLIMIT_RATES=10.0.0.0/8=5/3/2", NULL,
                    "IPLIMIT_RATES: \"10.0.0.0/8=5/3/2\": burst is not a whole number from 1 "
                    "to 65535");
    check_env_error("IPLIMIT_RATES=10.0.0.0/8=0/5", NULL,
                    "IPLIMIT_RATES: \"10.0.0.0/8=0/5\": a burst needs a rate above 0");
    check_env_error("IPLIMIT_RATES=10.0.0.1/8=5", NULL,
                    "IPLIMIT_RATES: \"10.0.0.1/8\": address has bits set beyond the prefix "
                    "length");
    check_env_error("IPLIMIT_RATES=example.org=5", NULL,
                    "IPLIMIT_RATES: \"example.org\": not an IP address");
    check_env_error("IPLIMIT_RATES=10.0.0.0/8=5,,10.1.0.0/16=1", NULL,
                    "IPLIMIT_RATES: empty item in \"10.0.0.0/8=5,,10.1.0.0/16=1\"");
}

static void test_too_many(void)
{
    static char var[IL_MAX_RULES * 24 + 64];
    size_t used = (size_t)snprintf(var, sizeof var, "IPLIMIT_RATES=");
    for (unsigned i = 0; i <= IL_MAX_RULES; i++)
        used += (size_t)snprintf(var + used, sizeof var - used, "%s10.%u.%u.0/24=1",
                                 i ? "," : "", i >> 8, i & 255);
    char *envp[] = {var, NULL};
    load(NULL, envp);
    IS_U(config.nerrors, 1, "513 rates: one error");
    IS_S(config.errors[0], "IPLIMIT_RATES: more than 512 networks", "513 rates: message");
}

static void test_file(void)
{
    char path[64];
    tap_write_temp(path, "rate = 10;\nburst = 20;\n"
                         "rates = ( { network = \"10.0.0.0/8\"; rate = 50; burst = 100; },\n"
                         "          { network = \"192.0.2.0/24\"; rate = 3; } );\n");
    char *envp[] = {NULL};
    load(path, envp);
    IS_U(config.nerrors, 0, "file: rate, burst and rates groups accepted");
    if (config.nerrors)
        tap_diag("first error: %s", config.errors[0]);
    IS_U(config.policy.rate, 10, "file: rate");
    IS_U(config.policy.burst, 20, "file: burst");
    IS_S(rates_text(), "192.0.2.0/24=3/0 10.0.0.0/8=50/100", "file: groups, burst optional");
    unlink(path);

    tap_write_temp(path, "rates = [ \"10.0.0.0/8=50/100\", \"10.1.0.0/16=5\" ];\n");
    load(path, envp);
    IS_U(config.nerrors, 0, "file: rates as strings");
    IS_S(rates_text(), "10.1.0.0/16=5/0 10.0.0.0/8=50/100", "file: string forms");
    unlink(path);

    char var[128];
    tap_write_temp(path, "burst = 20;\n");
    snprintf(var, sizeof var, "IPLIMIT_CONFIG=%s", path);
    char *with_rate[] = {var, "IPLIMIT_RATE=4", NULL};
    load(NULL, with_rate);
    IS_U(config.nerrors, 0, "file burst + env rate: valid together");
    IS_U(config.policy.burst, 20, "file burst + env rate: burst from the file");
    IS_U(config.policy.rate, 4, "file burst + env rate: rate from the environment");
    unlink(path);
}

static void check_file_error(const char *name, const char *text, const char *want)
{
    unit_file_error(name, text, want, false);
}

static void test_file_errors(void)
{
    check_file_error("rate", "\nrate = \"fast\";\n",
                     ":2: rate: \"fast\" is not a whole number from 0 to 65535");
    check_file_error("burst", "rate = 1;\nburst = -3;\n",
                     ":2: burst: \"-3\" is not a whole number from 0 to 65535");
    check_file_error("burst alone", "burst = 3;\n",
                     ": burst 3 without a rate: set IPLIMIT_RATE (rate in the file) too");
    check_file_error("group without rate", "rates = ( { network = \"10.0.0.0/8\"; burst = 3; } );\n",
                     ":1: rates: an entry is { network = \"CIDR\"; rate = N; burst = N; } (burst optional)");
    check_file_error("group with max and rate",
                     "rates = ( { network = \"10.0.0.0/8\"; rate = 3; max = 2; } );\n",
                     ":1: rates: an entry is { network = \"CIDR\"; rate = N; burst = N; } (burst optional)");
    check_file_error("group with an unknown member",
                     "rates = ( { network = \"10.0.0.0/8\"; rate = 3; brust = 2; } );\n",
                     ":1: rates: an entry is { network = \"CIDR\"; rate = N; burst = N; } (burst optional)");
    check_file_error("bad rule", "rates = [ \"10.0.0.0/8=5/0\" ];\n",
                     ":1: rates: \"10.0.0.0/8=5/0\": burst is not a whole number from 1 to 65535");
    check_file_error("rate group in limits",
                     "limits = ( { network = \"10.0.0.0/8\"; rate = 3; } );\n",
                     ":1: limits: an entry is { network = \"CIDR\"; max = N; }");
}

static void judge(const char *peer_text, uint32_t want_rate, uint32_t want_burst)
{
    struct il_key peer;
    il_key_parse_cidr(&peer, peer_text);
    struct il_verdict v;
    memset(&v, 0xaa, sizeof v);
    il_policy_judge(&config.policy, &peer, &v);
    char name[160];
    snprintf(name, sizeof name, "judge %s: rate %u burst %u", peer_text, want_rate, want_burst);
    tap_ok(v.rate == want_rate && v.burst == want_burst, "%s (got %u/%u)", name, v.rate,
           v.burst);
}

static void test_judge(void)
{
    char *envp[] = {"IPLIMIT_RATE=10", "IPLIMIT_BURST=5", "IPLIMIT_ALLOW=10.9.9.9,10.8.0.0/16",
                    "IPLIMIT_RATES=10.0.0.0/8=50/100,10.1.0.0/16=0,10.1.2.0/24=7,10.8.0.0/24=1",
                    "IPLIMIT_LIMITS=10.1.2.0/24=3", NULL};
    load(NULL, envp);
    IS_U(config.nerrors, 0, "judge: policy valid");
    judge("192.0.2.1", 10, 5);
    judge("10.2.3.4", 50, 100);
    judge("10.1.3.4", 0, 0);
    judge("10.1.2.4", 7, 7);
    judge("10.9.9.9", 0, 0);
    judge("10.8.0.1", 0, 0);
    struct il_key peer;
    il_key_parse_cidr(&peer, "10.1.2.4");
    struct il_verdict v;
    il_policy_judge(&config.policy, &peer, &v);
    IS_U(v.limit, 3, "judge 10.1.2.4: the limit is decided apart from the rate");

    char *no_default[] = {"IPLIMIT_RATES=10.0.0.0/8=4", NULL};
    load(NULL, no_default);
    judge("10.0.0.1", 4, 4);
    judge("11.0.0.1", 0, 0);
}

int main(void)
{
    test_defaults();
    test_env();
    test_env_errors();
    test_too_many();
    test_file();
    test_file_errors();
    test_judge();
    return tap_done();
}
