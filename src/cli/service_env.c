/* What a running service reads its policy from: the IPLIMIT_* variables it
 * was started with (/proc/PID/environ) and its user, for reload and
 * check --pid. And an environment under construction (cli_env), where a
 * later entry replaces an earlier one of the same name. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "started.h"

#define ENVIRON_MAX (4 << 20) /* bytes of /proc/PID/environ read at most */

static size_t name_len(const char *entry)
{
    return strcspn(entry, "=");
}

void cli_env_set(struct cli_env *env, const char *entry)
{
    size_t len = name_len(entry);
    for (size_t i = 0; i < env->count; i++) {
        if (name_len(env->entries[i]) == len && strncmp(env->entries[i], entry, len) == 0) {
            free(env->entries[i]);
            env->entries[i] = strdup(entry);
            if (!env->entries[i])
                cli_error("out of memory"), exit(CLI_FAIL);
            return;
        }
    }
    env->entries = cli_xrealloc(env->entries, env->count + 2, sizeof *env->entries);
    env->entries[env->count] = strdup(entry);
    if (!env->entries[env->count])
        cli_error("out of memory"), exit(CLI_FAIL);
    env->entries[++env->count] = NULL;
}

void cli_env_unset(struct cli_env *env, const char *name)
{
    size_t len = strlen(name), kept = 0;
    for (size_t i = 0; i < env->count; i++) {
        if (name_len(env->entries[i]) == len && strncmp(env->entries[i], name, len) == 0)
            free(env->entries[i]);
        else
            env->entries[kept++] = env->entries[i];
    }
    env->count = kept;
    if (env->entries)
        env->entries[kept] = NULL;
}

const char *cli_env_get(const struct cli_env *env, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < env->count; i++)
        if (strncmp(env->entries[i], name, len) == 0 && env->entries[i][len] == '=')
            return env->entries[i] + len + 1;
    return NULL;
}

void cli_env_free(struct cli_env *env)
{
    for (size_t i = 0; i < env->count; i++)
        free(env->entries[i]);
    free(env->entries);
    memset(env, 0, sizeof *env);
}


/* A relative IPLIMIT_CONFIG was relative to the service's working
 * directory, not to ours. */
static void absolute_config(struct cli_env *env, pid_t pid)
{
    const char *file = cli_env_get(env, "IPLIMIT_CONFIG");
    if (!file || !*file || file[0] == '/')
        return;
    char link[64], cwd[PATH_MAX];
    snprintf(link, sizeof link, "/proc/%d/cwd", (int)pid);
    ssize_t n = readlink(link, cwd, sizeof cwd - 1);
    if (n <= 0)
        return;
    cwd[n] = '\0';
    size_t size = (size_t)n + strlen(file) + 32;
    char *entry = cli_xcalloc(size, 1);
    snprintf(entry, size, "IPLIMIT_CONFIG=%s/%s", cwd, file);
    cli_env_set(env, entry);
    free(entry);
}

const char *cli_service_env_error(int err)
{
    if (err == -ENODATA)
        return "it has written over its environment (its process title, as nginx, Redis, "
               "sshd and PostgreSQL do), and its table holds no complete record of the "
               "settings it started with";
    return strerror(-err);
}

/* The settings the service's first process recorded in its table at
 * start (started.h), for a service whose environment was written over.
 * The table is untrusted: only NUL-terminated entries inside the record,
 * and only those that are settings, are taken. Returns 0, or -ENODATA when
 * there is no complete record. */
static int recorded_env(pid_t pid, struct cli_env *env)
{
    struct cli_services found;
    if (cli_find_services(pid, &found) != 0 || found.count == 0) {
        cli_free_services(&found);
        return -ENODATA;
    }
    struct il_shm shm;
    int err = cli_attach(&found.items[0], &shm, false);
    cli_free_services(&found);
    if (err)
        return -ENODATA;
    static char record[IL_STARTED_WITH_LEN + 1]; /* a copy: the writer's memory may change */
    memcpy(record, shm.hdr->started_with, IL_STARTED_WITH_LEN);
    record[IL_STARTED_WITH_LEN] = '\0';
    uint32_t state = shm.hdr->started_with_state;
    il_shm_detach(&shm);
    if (state != IL_STARTED_COMPLETE)
        return -ENODATA;
    for (size_t off = 0; off < IL_STARTED_WITH_LEN && record[off]; off += strlen(record + off) + 1)
        if (il_started_is_setting(record + off))
            cli_env_set(env, record + off);
    return 0;
}

int cli_service_env(pid_t pid, struct cli_env *env, bool *recorded)
{
    *recorded = false;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char *buf = cli_xcalloc(ENVIRON_MAX + 1, 1);
    size_t used = 0;
    int err = 0;
    while (used < ENVIRON_MAX) {
        ssize_t n = read(fd, buf + used, ENVIRON_MAX - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            err = -errno;
        if (n <= 0)
            break;
        used += (size_t)n;
    }
    close(fd);
    /* Every NUL-terminated entry; the last one may lack its NUL. A program
     * that sets its process title by writing over the memory of its argv
     * and environment (nginx, Redis, sshd, PostgreSQL) leaves entries
     * without '=', or empty ones, where its variables were: what it was
     * started with is gone, and reading on would pass for "started with
     * no settings". An environment from execve has neither. */
    for (size_t off = 0; !err && off < used; off += strlen(buf + off) + 1) {
        if (!strchr(buf + off, '='))
            err = -ENODATA;
        else if (il_started_is_setting(buf + off))
            cli_env_set(env, buf + off);
    }
    free(buf);
    if (err == -ENODATA) {
        cli_env_free(env);
        err = recorded_env(pid, env);
        *recorded = err == 0;
        return err; /* the record's IPLIMIT_CONFIG is absolute already */
    }
    if (!err)
        absolute_config(env, pid);
    return err;
}

int cli_service_user(pid_t pid, struct cli_user *user)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    memset(user, 0, sizeof *user);
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long real, effective;
        if (sscanf(line, "Uid: %lu %lu", &real, &effective) == 2)
            user->uid = (uid_t)effective, found |= 1;
        else if (sscanf(line, "Gid: %lu %lu", &real, &effective) == 2)
            user->gid = (gid_t)effective, found |= 2;
        else if (strncmp(line, "Groups:", 7) == 0) {
            char *p = line + 7, *end;
            while (user->ngroups < CLI_MAX_GROUPS) {
                unsigned long g = strtoul(p, &end, 10);
                if (end == p)
                    break;
                user->groups[user->ngroups++] = (gid_t)g;
                p = end;
            }
        }
    }
    fclose(f);
    return found == 3 ? 0 : -EPROTO;
}
