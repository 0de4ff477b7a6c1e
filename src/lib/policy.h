/* Policy: who is limited, to how many connections, and what a rejection does.
 *
 * A policy is plain data with no pointers, so it can live in the shared
 * segment and be replaced at run time (iplimit reload). */
#ifndef IL_POLICY_H
#define IL_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "addrkey.h"

#define IL_MAX_RULES 512
#define IL_MAX_PROXY_FROM 64 /* proxy_from networks */
#define IL_DEFAULT_MAX 1024
#define IL_DEFAULT_LOG_INTERVAL 60
#define IL_DEFAULT_RECONCILE_INTERVAL 10
#define IL_UNLIMITED 0 /* a limit of 0 means no limit, everywhere */

enum il_action { IL_ACTION_RST, IL_ACTION_CLOSE };
enum il_blocking { IL_BLOCKING_EAGAIN, IL_BLOCKING_WAIT };
enum il_log_target { IL_LOG_SYSLOG, IL_LOG_STDERR, IL_LOG_NONE };

struct il_rule {
    struct il_key net;
    uint8_t allow; /* never limited; counted under the exact address */
    uint32_t limit;
};

/* A per-network new-connection rate (IPLIMIT_RATES): like the limits, the
 * longest prefix that contains a peer gives the rate of its key. */
struct il_rate_rule {
    struct il_key net;
    uint32_t rate;  /* per second, 0: none */
    uint32_t burst; /* 0: equal to rate */
};

struct il_policy {
    uint8_t enabled; /* 0: pass every connection through untouched */
    uint8_t dry_run;
    uint8_t action;
    uint8_t blocking;
    uint8_t log_target;
    uint8_t v4_prefix;
    uint8_t v6_prefix;
    uint8_t all_ports;
    uint32_t max;
    uint32_t log_interval;
    uint32_t nrules;
    struct il_rule rules[IL_MAX_RULES]; /* sorted: longest prefix first */
    uint64_t ports[65536 / 64];         /* bitmap, used when !all_ports */
    uint32_t reconcile_interval;        /* seconds between reconciliations, 0: never */
    uint8_t reconcile_thread;           /* 1: in a thread of one process; 0: inline in accept */
    uint32_t rate;                      /* new connections per second per key, 0: none */
    uint32_t burst;                     /* bucket size, 0: equal to rate */
    uint32_t nrates;
    struct il_rate_rule rates[IL_MAX_RULES]; /* sorted: longest prefix first */
    uint32_t nproxy;                    /* proxy_from: peers whose connections carry a */
    struct il_key proxy_from[IL_MAX_PROXY_FROM]; /* PROXY header (docs/design.md) */
};

/* What the accept path needs to know about one peer. */
struct il_verdict {
    struct il_key key; /* masked; what the connection is counted under */
    uint32_t limit;    /* IL_UNLIMITED or N */
    bool allowed;      /* matched the allowlist */
    uint32_t rate;     /* new connections per second, 0: no rate limit */
    uint32_t burst;    /* with a rate: the bucket size (never 0) */
};

void il_policy_defaults(struct il_policy *policy);

/* Adds a rule; returns false when the rule table is full. */
bool il_policy_add_rule(struct il_policy *policy, const struct il_key *net, bool allow,
                        uint32_t limit);

/* Adds a per-network rate; returns false when the table is full. */
bool il_policy_add_rate(struct il_policy *policy, const struct il_key *net, uint32_t rate,
                        uint32_t burst);

/* How long a key's bucket can take to fill from empty under this policy,
 * in ms (the longest over its rates): a key with no open connection keeps
 * its slot that long after its last admission (keytab.c). 0: no rates. */
uint32_t il_policy_rate_hold_ms(const struct il_policy *policy);

/* Sorts the rules so that the first match is the longest prefix, allow
 * rules before limits of the same length. Call once after adding rules. */
void il_policy_finish(struct il_policy *policy);

/* Adds a proxy_from network; returns false when the table is full. */
bool il_policy_add_proxy(struct il_policy *policy, const struct il_key *net);

/* peer (full length) lies in a proxy_from network: its connections start
 * with a PROXY header that names the real client. */
bool il_policy_is_proxy(const struct il_policy *policy, const struct il_key *peer);

bool il_policy_polices_port(const struct il_policy *policy, uint16_t port);

/* peer is a full-length key. Fills verdict: the masked key, its limit and
 * its rate. */
void il_policy_judge(const struct il_policy *policy, const struct il_key *peer,
                     struct il_verdict *verdict);

#endif
