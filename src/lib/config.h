/* Configuration: IPLIMIT_* environment variables over an optional
 * libconfig file (IPLIMIT_CONFIG), compiled into a policy.
 * The same code serves the library and `iplimit check` / `reload`. */
#ifndef IL_CONFIG_H
#define IL_CONFIG_H

#include <stdint.h>

#include "policy.h"

#define IL_CONFIG_MAX_ERRORS 16
#define IL_CONFIG_ERROR_LEN 240
#define IL_CONFIG_MAX_FILE 1048576 /* bytes: a larger file is an error */

struct il_config {
    struct il_policy policy;
    uint32_t capacity;
    char file[512]; /* the config file read, or "" */
    char service[64]; /* IPLIMIT_SERVICE, or "": the program's name */
    unsigned nerrors;
    char errors[IL_CONFIG_MAX_ERRORS][IL_CONFIG_ERROR_LEN];
};

/* Loads the policy from envp (NULL: the process environment) and the file
 * named by file (NULL: by IPLIMIT_CONFIG, if set). On any error the
 * errors are listed and policy.enabled is 0: pass everything through. */
void il_config_load(struct il_config *config, char *const *envp, const char *file);

#endif
