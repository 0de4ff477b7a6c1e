/* The PROXY protocol header (HAProxy's proxy-protocol.txt, v1 and v2):
 * a pure parser of the first bytes of a connection, no I/O.
 *
 * It reads only what the decision needs: the v1 line (at most 107 bytes)
 * or the v2 fixed part and address block (at most 52 bytes for TCP over
 * IPv4/IPv6); v2 TLVs are never read. Everything is checked strictly and
 * every length is bounded, so a peer can neither crash nor stall it. */
#ifndef IL_PROXYHDR_H
#define IL_PROXYHDR_H

#include <stddef.h>
#include <stdint.h>

#include "addrkey.h"

#define IL_PROXY_V1_MAX 107  /* the longest v1 line, CRLF included */
#define IL_PROXY_V2_MAX 1024 /* longest v2 payload (addresses + TLVs) accepted */
#define IL_PROXY_PEEK 128    /* bytes a caller peeks: enough for every decision */

enum il_proxy_result {
    IL_PROXY_NEED_MORE, /* every byte so far fits a header: wait for more */
    IL_PROXY_CLIENT,    /* a header naming a TCP client: out->client */
    IL_PROXY_LOCAL,     /* a valid header without a client to key by: v2 LOCAL
                         * (health checks), v1 UNKNOWN, v2 UNSPEC/UNIX/UDP */
    IL_PROXY_MALFORMED, /* not a PROXY header, or a broken one: out->why */
};

struct il_proxy_header {
    uint8_t version;       /* 1 or 2 (0 when malformed before it was known) */
    struct il_key client;  /* full-length key of the source address */
    uint16_t client_port;
    size_t length;         /* bytes the whole header takes (TLVs included) */
    const char *why;       /* IL_PROXY_MALFORMED: a static description */
};

/* Parses the first len bytes of a connection. */
enum il_proxy_result il_proxy_parse(const uint8_t *buf, size_t len, struct il_proxy_header *out);

#endif
