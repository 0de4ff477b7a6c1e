/* libFuzzer target: the environment parser. The input is split at newlines
 * into an envp array; no file is read (file ""). Checks that every error
 * is a terminated line and that errors disable the policy. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lib/config.h"

#define MAX_VARS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct il_config *config)
{
    if (config->nerrors > IL_CONFIG_MAX_ERRORS)
        abort();
    for (unsigned i = 0; i < config->nerrors; i++)
        if (strnlen(config->errors[i], IL_CONFIG_ERROR_LEN) >= IL_CONFIG_ERROR_LEN)
            abort();
    if (config->nerrors && config->policy.enabled)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    char *envp[MAX_VARS + 1];
    size_t n = 0;
    for (char *line = text; line && n < MAX_VARS;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        envp[n++] = line;
        line = nl ? nl + 1 : NULL;
    }
    envp[n] = NULL;
    struct il_config *config = malloc(sizeof *config);
    il_config_load(config, envp, "");
    check(config);
    free(config);
    free(text);
    return 0;
}
