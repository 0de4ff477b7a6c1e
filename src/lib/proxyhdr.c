/* The PROXY protocol header parser (see proxyhdr.h). */
#include "proxyhdr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v2_signature[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                         0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
static const char v1_prefix[] = "PROXY ";

static enum il_proxy_result malformed(struct il_proxy_header *out, const char *why)
{
    out->why = why;
    return IL_PROXY_MALFORMED;
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Fills a full-length key the way an accepted peer's is made, so that an
 * IPv4-mapped IPv6 source in a TCP6 header is the IPv4 client it names. */
static void key_from_v4(struct il_key *key, const uint8_t addr[4])
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    memcpy(&sin.sin_addr, addr, 4);
    il_key_from_sockaddr(key, (struct sockaddr *)&sin, sizeof sin);
}

static void key_from_v6(struct il_key *key, const uint8_t addr[16])
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    memcpy(&sin6.sin6_addr, addr, 16);
    il_key_from_sockaddr(key, (struct sockaddr *)&sin6, sizeof sin6);
}

/* ---- v1: "PROXY TCP4 SRC DST SPORT DPORT\r\n" ---- */

/* A port: decimal 0..65535 without leading zeros. */
static int v1_port(const char *s, size_t n, uint16_t *port)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return -1;
    unsigned value = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        value = value * 10 + (unsigned)(s[i] - '0');
    }
    if (value > 65535)
        return -1;
    *port = (uint16_t)value;
    return 0;
}

static int v1_addr(const char *s, size_t n, int family, uint8_t addr[16])
{
    char text[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof text)
        return -1;
    memcpy(text, s, n);
    text[n] = '\0';
    return inet_pton(family, text, addr) == 1 ? 0 : -1;
}

/* line: the bytes before CRLF (length n), starting "PROXY ". */
static enum il_proxy_result v1_line(const char *line, size_t n, struct il_proxy_header *out)
{
    const char *tok[7];
    size_t tlen[7];
    size_t ntok = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && line[i] != ' ')
            continue;
        if (ntok == 7)
            return malformed(out, "v1: too many fields");
        tok[ntok] = line + start;
        tlen[ntok++] = i - start;
        start = i + 1;
        /* After UNKNOWN the rest of the line is ignored (the spec says so). */
        if (ntok == 2 && tlen[1] == 7 && memcmp(tok[1], "UNKNOWN", 7) == 0)
            return IL_PROXY_LOCAL;
    }
    if (tlen[1] != 4 || (memcmp(tok[1], "TCP4", 4) != 0 && memcmp(tok[1], "TCP6", 4) != 0))
        return malformed(out, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
    if (ntok != 6)
        return malformed(out, "v1: wrong number of fields");
    int family = tok[1][3] == '4' ? AF_INET : AF_INET6;
    uint8_t src[16], dst[16];
    uint16_t dport;
    if (v1_addr(tok[2], tlen[2], family, src) || v1_addr(tok[3], tlen[3], family, dst))
        return malformed(out, "v1: bad address");
    if (v1_port(tok[4], tlen[4], &out->client_port) || v1_port(tok[5], tlen[5], &dport))
        return malformed(out, "v1: bad port");
    if (family == AF_INET)
        key_from_v4(&out->client, src);
    else
        key_from_v6(&out->client, src);
    return IL_PROXY_CLIENT;
}

static enum il_proxy_result parse_v1(const uint8_t *buf, size_t len, struct il_proxy_header *out)
{
    out->version = 1;
    size_t prefix = min_size(len, sizeof v1_prefix - 1);
    if (memcmp(buf, v1_prefix, prefix) != 0)
        return malformed(out, "not a PROXY header");
    size_t scan = min_size(len, IL_PROXY_V1_MAX);
    for (size_t i = 0; i < scan; i++) {
        if (buf[i] == '\r') {
            if (i + 1 == len)
                return IL_PROXY_NEED_MORE;
            if (buf[i + 1] != '\n')
                return malformed(out, "v1: CR without LF");
            if (i < sizeof v1_prefix - 1)
                return malformed(out, "not a PROXY header");
            out->length = i + 2;
            return v1_line((const char *)buf, i, out);
        }
        if (buf[i] < 0x20 || buf[i] > 0x7e)
            return malformed(out, "v1: byte outside printable ASCII");
    }
    if (len >= IL_PROXY_V1_MAX)
        return malformed(out, "v1: no CRLF within 107 bytes");
    return IL_PROXY_NEED_MORE;
}

/* ---- v2: 12-byte signature, version/command, family, length, addresses ---- */

static enum il_proxy_result parse_v2(const uint8_t *buf, size_t len, struct il_proxy_header *out)
{
    out->version = 2;
    if (memcmp(buf, v2_signature, min_size(len, sizeof v2_signature)) != 0)
        return malformed(out, "not a PROXY header");
    if (len < 16)
        return IL_PROXY_NEED_MORE;
    unsigned version = buf[12] >> 4, command = buf[12] & 0xf;
    unsigned family = buf[13] >> 4, transport = buf[13] & 0xf;
    size_t payload = (size_t)buf[14] << 8 | buf[15];
    if (version != 2)
        return malformed(out, "v2: version is not 2");
    if (command > 1)
        return malformed(out, "v2: command is not LOCAL or PROXY");
    if (family > 3 || transport > 2)
        return malformed(out, "v2: unknown address family or transport");
    if (payload > IL_PROXY_V2_MAX)
        return malformed(out, "v2: header longer than 1024 bytes");
    out->length = 16 + payload;
    if (command == 0)
        return IL_PROXY_LOCAL; /* the balancer's own connection: no client */
    if (transport != 1 || (family != 1 && family != 2))
        return IL_PROXY_LOCAL; /* UNSPEC, UNIX, UDP: nothing to key TCP by */
    size_t need = family == 1 ? 12 : 36;
    if (payload < need)
        return malformed(out, "v2: address block shorter than its family needs");
    if (len < 16 + need)
        return IL_PROXY_NEED_MORE;
    const uint8_t *a = buf + 16;
    if (family == 1) {
        key_from_v4(&out->client, a);
        out->client_port = (uint16_t)(a[8] << 8 | a[9]);
    } else {
        key_from_v6(&out->client, a);
        out->client_port = (uint16_t)(a[32] << 8 | a[33]);
    }
    return IL_PROXY_CLIENT;
}

enum il_proxy_result il_proxy_parse(const uint8_t *buf, size_t len, struct il_proxy_header *out)
{
    memset(out, 0, sizeof *out);
    if (len == 0)
        return IL_PROXY_NEED_MORE;
    if (buf[0] == 'P')
        return parse_v1(buf, len, out);
    if (buf[0] == v2_signature[0])
        return parse_v2(buf, len, out);
    return malformed(out, "not a PROXY header");
}
