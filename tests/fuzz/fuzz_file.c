/* libFuzzer target: the config-file parser. The input is written to a
 * temporary file that IPLIMIT_CONFIG names. Checks that every error is a
 * terminated line and that errors disable the policy. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/lib/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64], var[96];

static void make_path(void)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%.30s/iplimit-fuzz-%d.conf", dir && *dir ? dir : "/tmp",
             (int)getpid());
    snprintf(var, sizeof var, "IPLIMIT_CONFIG=%s", path);
}

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
    if (!path[0])
        make_path();
    FILE *f = fopen(path, "w");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    char *envp[] = {var, NULL};
    struct il_config *config = malloc(sizeof *config);
    il_config_load(config, envp, NULL);
    check(config);
    free(config);
    unlink(path);
    return 0;
}
