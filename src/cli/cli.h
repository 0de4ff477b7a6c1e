/* The iplimit command: shared declarations of its parts. */
#ifndef IL_CLI_H
#define IL_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "addrkey.h"
#include "config.h"
#include "policy.h"
#include "shm.h"

/* Exit statuses of every subcommand. */
#define CLI_OK 0
#define CLI_FAIL 1  /* invalid policy, no such service, reload refused */
#define CLI_USAGE 2 /* bad command line */

/* ---- util.c ---- */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parses a whole decimal number in [min, max]; returns 0 or -1. */
int cli_parse_uint(const char *text, unsigned long min, unsigned long max, unsigned long *out);
/* "2024-05-01 12:00:00" in local time, or "-" for 0. */
const char *cli_time(uint64_t seconds, char *buf, size_t size);
/* Rounds capacity the way the library sizes the connection table. */
uint32_t cli_effective_capacity(uint32_t capacity);
void *cli_xcalloc(size_t n, size_t size);
void *cli_xrealloc(void *p, size_t n, size_t size);

/* ---- services.c: the running services, found by their shared segment ---- */
struct cli_mapping {
    pid_t pid;
    char range[40]; /* "START-END", as in /proc/PID/maps */
};

struct cli_service {
    unsigned long dev_major, dev_minor, inode; /* the memfd, from /proc/PID/maps */
    struct cli_mapping *procs;                 /* every process mapping it, by pid */
    size_t nprocs;
};

struct cli_services {
    struct cli_service *items;
    size_t count;
};

/* Finds every segment (pid 0) or the one mapped by pid. Returns 0, or -1
 * with a message printed when pid does not exist or maps no segment. */
int cli_find_services(pid_t pid, struct cli_services *out);
void cli_free_services(struct cli_services *services);

/* Maps a service's segment, through the first of its pids still alive.
 * Returns 0, or -errno with a message printed. */
int cli_attach(const struct cli_service *service, struct il_shm *shm, bool writable);

/* ---- snapshot.c: one reading of a segment, never blocking its writers ---- */
struct cli_key {
    struct il_key key;
    char name[IL_KEY_STRLEN];
    uint32_t open;
    uint32_t limit; /* 0: unlimited */
    uint64_t rejected;
    uint64_t last_reject;
    char via[IL_KEY_STRLEN]; /* the balancer whose PROXY header named it last, or "" */
};

struct cli_snapshot {
    const struct cli_service *service;
    int32_t creator_pid;
    uint64_t created_at;
    uint32_t capacity; /* connections (and keys) the tables hold */
    char config_error[256];
    uint64_t generation;
    uint64_t loaded_at;
    bool policy_ok; /* false: the policy could not be read consistently */
    struct il_policy policy;
    struct {
        uint64_t accepted, rejected, dry_rejected, untracked, released;
        uint64_t proxy_malformed, proxy_rejected; /* PROXY headers (proxy.h) */
    } stats;
    struct {
        uint64_t runs, failed, last_run, last_usec, last_sockets, last_uncounted;
        uint64_t slots_freed, keys_corrected, counts_removed;
        int32_t last_error;
        int32_t owner; /* pid whose reconciler thread runs them, 0: inline */
    } rec; /* reconciliation with the kernel's socket table */
    uint32_t live_keys;  /* keys with open connections */
    uint64_t open_total; /* open connections, all keys */
    struct cli_key *keys; /* live or rejected keys, sorted by open desc */
    size_t nkeys;
};

int cli_snapshot_read(const struct cli_service *service, struct cli_snapshot *snap);
void cli_snapshot_free(struct cli_snapshot *snap);
/* The limit the next accept from key gets under policy; fallback (the limit
 * last applied to the key) when the policy gives peers inside it different
 * limits. */
uint32_t cli_key_limit(const struct il_policy *policy, const struct il_key *key,
                       uint32_t fallback);

/* ---- out_*.c: stat formats; top 0 means every key ---- */
void cli_out_text(FILE *out, const struct cli_snapshot *snaps, size_t n, size_t top);
void cli_out_json(FILE *out, const struct cli_snapshot *snaps, size_t n, size_t top);
void cli_out_prom(FILE *out, const struct cli_snapshot *snaps, size_t n, size_t top);

/* ---- summary.c: a policy in words ---- */
void cli_print_policy(FILE *out, const struct il_policy *policy, uint32_t capacity);
/* "5060-5061,8080" or "all" */
void cli_format_ports(const struct il_policy *policy, char *buf, size_t size);
/* Prints config's errors to stderr; returns their number. */
unsigned cli_print_config_errors(const struct il_config *config);
/* Whether an environment entry ("NAME=value") sets part of the policy:
 * IPLIMIT_* except IPLIMIT_CONFIG and the variables the library uses to
 * hand its table across exec. */
bool cli_is_policy_var(const char *entry);
/* Where the policy comes from: the file and the IPLIMIT_* variables set. */
void cli_print_sources(FILE *out, const struct il_config *config);

/* ---- the subcommands ---- */
int cli_stat(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_reload(int argc, char **argv);
int cli_run(int argc, char **argv);

#endif
