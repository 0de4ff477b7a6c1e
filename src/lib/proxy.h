/* Connections from a load balancer that sends the PROXY protocol
 * (proxy_from): keyed by the real client its header names.
 *
 * The library only ever peeks (recv MSG_PEEK|MSG_DONTWAIT): the
 * application reads the header itself. When the header is there at
 * accept, the connection is decided at accept like any other. When it is
 * not (an AWS NLB sends it with the client's first bytes), the connection
 * is admitted under the balancer's key and marked pending, in its
 * connection slot (its proxy word, for every process) and in the fd
 * map (IL_FD_PENDING, for the read wrappers' fast path). Whichever process
 * reads first settles it: peeks the header, moves the count from the
 * balancer's key to the client's, or cuts the connection (RST, and EOF for
 * the application) when the client is over its limit, before the
 * application gets a byte of it. */
#ifndef IL_PROXY_H
#define IL_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#include "addrkey.h"
#include "limiter.h"

#define IL_PROXY_WAIT_SECONDS 10 /* a read waits this long for a header at most */

struct il_proxy_accept {
    bool pending; /* no complete header yet: decide at the first read */
    bool proxied; /* keyed by the header's client (d was replaced) */
};

/* At accept of cfd from balancer (a proxy_from peer, policed on port):
 * peeks; when a complete header names a client, replaces *d with the
 * client's decision. */
void il_proxy_at_accept(int cfd, uint16_t port, const struct il_key *balancer,
                        struct il_decision *d, struct il_proxy_accept *px);

/* The connection of handle was just counted and is pending: marks its
 * slot, returns the fd map flag to add (IL_FD_PENDING). */
uint64_t il_proxy_mark_pending(uint64_t handle);

/* Records through which balancer the key in key_slot was last counted
 * (NULL: directly), for iplimit stat and the log. */
void il_proxy_set_via(uint32_t key_slot, const struct il_key *balancer);

/* True when the connection of handle is still waiting for its header
 * (for a process that receives its fd: set IL_FD_PENDING then). */
bool il_proxy_pending(uint64_t handle);

/* The read wrappers' slow path, for an fd whose map entry has
 * IL_FD_PENDING; flags are the caller's recv flags (0 for read/readv).
 * Returns 0: go on with the real call; -1: return -1 with errno set
 * (EAGAIN: a non-blocking read and no complete header yet). Preserves
 * errno when it returns 0. */
int il_proxy_settle(int fd, uint64_t entry, int flags);

#endif
