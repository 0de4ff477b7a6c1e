/* The new-connection rate in words, for check and reload (summary.c). */
#include "cli.h"

static void print_one(FILE *out, uint32_t rate, uint32_t burst)
{
    if (rate)
        fprintf(out, "%u/%u", rate, burst ? burst : rate);
    else
        fprintf(out, "none");
}

void cli_print_rate(FILE *out, const struct il_policy *policy)
{
    if (policy->rate)
        fprintf(out, "rate: %u new connections per second per key, burst %u\n", policy->rate,
                policy->burst ? policy->burst : policy->rate);
    else
        fprintf(out, "rate: none\n");
    fprintf(out, "rates:");
    for (uint32_t i = 0; i < policy->nrates && i < IL_MAX_RULES; i++) {
        char net[IL_KEY_STRLEN];
        fprintf(out, "%s %s=", i ? "," : "", il_key_format(&policy->rates[i].net, net));
        print_one(out, policy->rates[i].rate, policy->rates[i].burst);
    }
    fprintf(out, "%s\n", policy->nrates ? "" : " none");
}
