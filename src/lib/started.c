/* The record of what the service was started with (started.h). */
#include "started.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CONFIG_VAR "IPLIMIT_CONFIG="

bool il_started_is_setting(const char *entry)
{
    static const char *const handover[] = {"IPLIMIT_SEGMENT_FD=", "IPLIMIT_INHERIT="};
    if (strncmp(entry, "IPLIMIT_", 8) != 0 || !strchr(entry, '='))
        return false;
    for (size_t i = 0; i < sizeof handover / sizeof handover[0]; i++)
        if (strncmp(entry, handover[i], strlen(handover[i])) == 0)
            return false;
    return true;
}

/* A relative IPLIMIT_CONFIG names a file in this working directory, which
 * the service may leave: recorded whole. Returns entry or buf. */
static const char *absolute_config(const char *entry, char *buf, size_t size)
{
    const char *file = entry + strlen(CONFIG_VAR);
    char cwd[PATH_MAX];
    if (strncmp(entry, CONFIG_VAR, strlen(CONFIG_VAR)) != 0 || !*file || file[0] == '/' ||
        !getcwd(cwd, sizeof cwd))
        return entry;
    if ((size_t)snprintf(buf, size, "%s%s/%s", CONFIG_VAR, cwd, file) >= size)
        return entry; /* too long for the record anyway */
    return buf;
}

void il_started_record(struct il_shm_header *hdr, char *const *envp)
{
    char abs[PATH_MAX + 64];
    size_t used = 0;
    uint32_t state = IL_STARTED_COMPLETE;
    for (char *const *e = envp; e && *e; e++) {
        if (!il_started_is_setting(*e))
            continue;
        const char *entry = absolute_config(*e, abs, sizeof abs);
        size_t len = strlen(entry) + 1;
        if (used + len + 1 > sizeof hdr->started_with) {
            state = IL_STARTED_TRUNCATED;
            break;
        }
        memcpy(hdr->started_with + used, entry, len);
        used += len;
    }
    hdr->started_with[used] = '\0';
    hdr->started_with_state = state;
}
