/* Helpers of the configuration unit tests (test_config, test_rateconfig):
 * one loaded configuration, and the check that a file gives one error. */
#ifndef IL_UNIT_CONFIG_H
#define IL_UNIT_CONFIG_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../src/lib/config.h"
#include "tap.h"

static struct il_config config; /* large: keep it off the stack */

/* Loads file and envp into config, over a poisoned copy: a field the load
 * forgets to set shows. */
static inline void load(const char *file, char *const *envp)
{
    memset(&config, 0x5a, sizeof config);
    il_config_load(&config, envp, file);
}

/* A file with text gives exactly one error, equal to PATH + want; with
 * disabled, the limiter is off too. */
static inline void unit_file_error(const char *name, const char *text, const char *want,
                                   bool disabled)
{
    char path[64], full[IL_CONFIG_ERROR_LEN + 64], title[160];
    tap_write_temp(path, text);
    char *envp[] = {NULL};
    load(path, envp);
    snprintf(title, sizeof title, "file error (%s): one error", name);
    IS_U(config.nerrors, 1, title);
    snprintf(full, sizeof full, "%s%s", path, want);
    snprintf(title, sizeof title, "file error (%s): message", name);
    IS_S(config.errors[0], full, title);
    if (disabled) {
        snprintf(title, sizeof title, "file error (%s): disabled", name);
        IS_U(config.policy.enabled, 0, title);
    }
    unlink(path);
}

#endif
