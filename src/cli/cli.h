/* The iplimit command: shared declarations of its parts. */
#ifndef IL_CLI_H
#define IL_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

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
/* Prints s, which may come from anyone's segment, so that no byte of it
 * reaches a terminal or a parser as anything but text: TEXT turns every
 * byte outside printable ASCII (and the backslash) into \xNN; JSON prints a
 * quoted JSON string (\uNNNN for the same bytes); PROM prints a Prometheus
 * label value (\\, \", \n, and \\xNN for the rest). */
enum cli_escape { CLI_ESC_TEXT, CLI_ESC_JSON, CLI_ESC_PROM };
void cli_put_string(FILE *out, const char *s, enum cli_escape how);

/* ---- services.c: the running services, found by their shared segment ---- */
struct cli_mapping {
    pid_t pid;
    char range[40]; /* "START-END", as in /proc/PID/maps */
};

struct cli_service {
    unsigned long dev_major, dev_minor, inode; /* the memfd, from /proc/PID/maps */
    struct cli_mapping *procs;                 /* every process mapping it, by pid */
    size_t nprocs;
    pid_t main_pid; /* the oldest live process among them: names the service */
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
/* The same, also giving the segment's owner (the memfd's uid). */
int cli_attach_owned(const struct cli_service *service, struct il_shm *shm, bool writable,
                     uid_t *owner);

/* ---- snapshot.c: one reading of a segment, never blocking its writers ---- */
struct cli_key {
    struct il_key key;
    char name[IL_KEY_STRLEN];
    uint32_t open;
    uint32_t limit; /* 0: unlimited */
    uint64_t rejected;
    uint64_t last_reject;
    uint8_t last_reason; /* IL_REASON_LIMIT, IL_REASON_RATE, or 0: none */
    char via[IL_KEY_STRLEN]; /* the balancer whose PROXY header named it last, or "" */
};

struct cli_snapshot {
    const struct cli_service *service; /* NULL when read from a bare segment (the fuzzer) */
    uid_t uid;                         /* the segment's owner */
    char name[64];                     /* the service's name, as the segment says */
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
        uint64_t rejected_rate, dry_rejected_rate; /* of those, over the rate */
        uint64_t proxy_malformed, proxy_rejected; /* PROXY headers (proxy.h) */
    } stats;
    struct {
        uint64_t runs, failed, last_run, last_usec, last_sockets, last_uncounted;
        uint64_t slots_freed, keys_corrected, counts_removed, lookups, dumps;
        int32_t last_error;
        int32_t owner; /* pid whose reconciler thread runs them, 0: inline */
    } rec; /* reconciliation with the kernel's socket table */
    uint32_t live_keys;  /* keys with open connections */
    uint64_t open_total; /* open connections, all keys */
    struct cli_key *keys; /* live or rejected keys, sorted by open desc */
    size_t nkeys;
};

int cli_snapshot_read(const struct cli_service *service, struct cli_snapshot *snap);
/* Reads an attached segment, which may be forged: every size comes from
 * the checked copies in shm, strings are cut at their field's end and the
 * policy is clamped to what the library could have written. */
void cli_snapshot_from_shm(const struct il_shm *shm, struct cli_snapshot *snap);
void cli_snapshot_free(struct cli_snapshot *snap);
/* The limit the next accept from key gets under policy; fallback (the limit
 * last applied to the key) when the policy gives peers inside it different
 * limits. */
uint32_t cli_key_limit(const struct il_policy *policy, const struct il_key *key,
                       uint32_t fallback);

/* ---- policy_view.c: the settings of a policy, for every stat format ---- */
/* One setting as stat shows it. A new setting is one more line in the
 * table in policy_view.c: text, JSON and Prometheus all follow it. */
enum cli_kind { CLI_BOOL, CLI_UINT, CLI_WORD };
struct cli_setting {
    const char *name; /* JSON field, Prometheus label, text word */
    enum cli_kind kind;
    uint64_t number;  /* CLI_BOOL, CLI_UINT */
    char word[1024];  /* CLI_WORD: always printed escaped */
};
#define CLI_MAX_SETTINGS 32
/* Fills out with the policy's settings; returns how many. */
size_t cli_policy_settings(const struct il_policy *policy, struct cli_setting *out);
/* The state of the limiter in one phrase: "enabled", "dry run",
 * "disabled: config error", "unknown". */
const char *cli_limiter_state(const struct cli_snapshot *s);
/* Who reconciles: "off", "waiting for the first accept", "thread",
 * "inline", "thread stopped, restarts at the next accept", "unknown". */
const char *cli_reconcile_state(const struct cli_snapshot *s);

/* ---- out_*.c: stat formats; top 0 means every key ---- */
void cli_out_text(FILE *out, const struct cli_snapshot *snaps, size_t n, size_t top);
void cli_out_json(FILE *out, const struct cli_snapshot *snaps, size_t n, size_t top);
void cli_out_prom(FILE *out, const struct cli_snapshot *snaps, size_t n, size_t top);

/* ---- summary.c: a policy in words ---- */
void cli_print_policy(FILE *out, const struct il_policy *policy, uint32_t capacity);
/* rate.c: "rate: ..." and "rates: ..." lines (new connections per second). */
void cli_print_rate(FILE *out, const struct il_policy *policy);
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

/* ---- service_env.c: what a running service reads its policy from ---- */
/* A NULL-terminated environment; cli_env_set replaces an entry of the same
 * name or appends. Zero-initialise before use. */
struct cli_env {
    char **entries;
    size_t count;
};
void cli_env_set(struct cli_env *env, const char *entry);
void cli_env_unset(struct cli_env *env, const char *name);
const char *cli_env_get(const struct cli_env *env, const char *name);
void cli_env_free(struct cli_env *env);
/* Adds the IPLIMIT_* settings (and IPLIMIT_CONFIG, made absolute against
 * the service's working directory) that process pid was started with:
 * from /proc/PID/environ, or, where the process wrote over it, from the
 * record its table keeps (started.h; *recorded is then true). Returns 0
 * or -errno (the environment is the owner's or root's to read; -ENODATA:
 * written over, and no complete record). cli_service_env_error says why in
 * words. */
int cli_service_env(pid_t pid, struct cli_env *env, bool *recorded);
const char *cli_service_env_error(int err);

#define CLI_MAX_GROUPS 64
struct cli_user {
    uid_t uid; /* effective ids: the ones its opens are checked against */
    gid_t gid;
    gid_t groups[CLI_MAX_GROUPS];
    int ngroups;
};
int cli_service_user(pid_t pid, struct cli_user *user);

/* ---- policy_diff.c: a policy change, setting by setting ---- */
struct cli_diff {
    unsigned changes;
    unsigned risky; /* changes that need reload --force */
};
/* Prints each change from old to new ("  max: 5 -> 20") to out, risky ones
 * marked; counts them in diff. */
void cli_policy_diff(FILE *out, const struct il_policy *old, const struct il_policy *new,
                     struct cli_diff *diff);

/* ---- rule_warnings.c ---- */
/* Warns (stderr) about each valid rule that cannot do what it seems to: an
 * IPv6 network spanning the IPv4-mapped range, a limit hidden by an
 * allowlist entry, a network listed twice. Returns their number. */
unsigned cli_rule_warnings(const struct il_policy *policy);

/* ---- the subcommands ---- */
int cli_stat(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_reload(int argc, char **argv);
int cli_run(int argc, char **argv);

#endif
