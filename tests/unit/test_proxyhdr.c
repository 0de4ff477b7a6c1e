/* Unit tests for the PROXY header parser (src/lib/proxyhdr.c) and the
 * proxy_from setting (config.c, policy.c). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "../../src/lib/addrkey.h"
#include "../../src/lib/config.h"
#include "../../src/lib/proxyhdr.h"
#include "tap.h"

static const char *result_name(enum il_proxy_result r)
{
    switch (r) {
    case IL_PROXY_NEED_MORE: return "need-more";
    case IL_PROXY_CLIENT: return "client";
    case IL_PROXY_LOCAL: return "local";
    case IL_PROXY_MALFORMED: return "malformed";
    }
    return "?";
}

static const char *client_text(const struct il_proxy_header *h)
{
    static char buf[IL_KEY_STRLEN];
    return il_key_format(&h->client, buf);
}

/* The result of parsing text (len bytes), as "client ADDR PORT LEN",
 * "local LEN", "need-more" or "malformed: WHY". */
static const char *parse(const void *buf, size_t len)
{
    static char out[160];
    struct il_proxy_header h;
    enum il_proxy_result r = il_proxy_parse(buf, len, &h);
    if (r == IL_PROXY_CLIENT)
        snprintf(out, sizeof out, "client %s %u %zu", client_text(&h), h.client_port, h.length);
    else if (r == IL_PROXY_LOCAL)
        snprintf(out, sizeof out, "local");
    else if (r == IL_PROXY_MALFORMED)
        snprintf(out, sizeof out, "malformed: %s", h.why);
    else
        snprintf(out, sizeof out, "%s", result_name(r));
    return out;
}

static const char *parse_text(const char *text)
{
    return parse(text, strlen(text));
}

static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* A v2 header: command, family/transport, payload length; addresses from
 * src (4 or 16 bytes, by family) and port 1234. Returns its length. */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, uint16_t len, const char *src)
{
    memcpy(out, sig, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(len >> 8);
    out[15] = (uint8_t)len;
    memset(out + 16, 0, 600);
    if ((fam >> 4) == 1 && src) {
        inet_pton(AF_INET, src, out + 16);
        out[24] = 1234 >> 8;
        out[25] = 1234 & 0xff;
    } else if ((fam >> 4) == 2 && src) {
        inet_pton(AF_INET6, src, out + 16);
        out[48] = 1234 >> 8;
        out[49] = 1234 & 0xff;
    }
    return 16 + len;
}

static void test_v1(void)
{
    IS_S(parse_text("PROXY TCP4 192.0.2.7 198.51.100.1 40001 5060\r\n"),
         "client 192.0.2.7 40001 46", "v1 TCP4");
    IS_S(parse_text("PROXY TCP4 192.0.2.7 198.51.100.1 40001 5060\r\nOPTIONS sip:x SIP/2.0\r\n"),
         "client 192.0.2.7 40001 46", "v1 TCP4 followed by data: length is the header's");
    IS_S(parse_text("PROXY TCP6 2001:db8::7 2001:db8::1 0 65535\r\n"),
         "client 2001:db8::7 0 44", "v1 TCP6, ports 0 and 65535");
    IS_S(parse_text("PROXY TCP6 ::ffff:192.0.2.9 ::1 1 2\r\n"),
         "client 192.0.2.9 1 37", "v1 TCP6 with an IPv4-mapped client is the IPv4 client");
    IS_S(parse_text("PROXY UNKNOWN\r\n"), "local", "v1 UNKNOWN");
    IS_S(parse_text("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), "local",
         "v1 UNKNOWN with addresses (ignored)");

    /* Incomplete but so far valid. */
    const char *full = "PROXY TCP4 192.0.2.7 198.51.100.1 40001 5060\r\n";
    int all_need_more = 1;
    for (size_t n = 0; n < strlen(full); n++)
        if (strcmp(parse(full, n), "need-more") != 0) {
            tap_diag("prefix of %zu bytes: %s", n, parse(full, n));
            all_need_more = 0;
        }
    tap_ok(all_need_more, "every proper prefix of a v1 header needs more");

    IS_S(parse_text("GET / HTTP/1.1\r\n"), "malformed: not a PROXY header", "HTTP is not a header");
    IS_S(parse_text("OPTIONS sip:a SIP/2.0\r\n"), "malformed: not a PROXY header", "SIP either");
    IS_S(parse_text("PROXZ"), "malformed: not a PROXY header", "wrong prefix, early");
    IS_S(parse_text("PROXY\r\n"), "malformed: not a PROXY header", "PROXY alone");
    IS_S(parse_text("PROXY TCP5 1.2.3.4 1.2.3.5 1 2\r\n"),
         "malformed: v1: protocol is not TCP4, TCP6 or UNKNOWN", "unknown protocol");
    IS_S(parse_text("PROXY UNKNOWNX\r\n"),
         "malformed: v1: protocol is not TCP4, TCP6 or UNKNOWN", "UNKNOWN prefix only");
    IS_S(parse_text("PROXY TCP4 1.2.3.4 1.2.3.5 1\r\n"), "malformed: v1: wrong number of fields",
         "missing port");
    IS_S(parse_text("PROXY TCP4 1.2.3.4 1.2.3.5 1 2 3\r\n"),
         "malformed: v1: wrong number of fields", "extra field");
    IS_S(parse_text("PROXY TCP4 1.2.3.4  1.2.3.5 1 2\r\n"), "malformed: v1: wrong number of fields",
         "two spaces");
    IS_S(parse_text("PROXY TCP4 1.2.3.4 1.2.3.5 1 2 \r\n"),
         "malformed: v1: wrong number of fields", "trailing space");
    IS_S(parse_text("PROXY TCP4 2001:db8::1 1.2.3.5 1 2\r\n"), "malformed: v1: bad address",
         "IPv6 address in TCP4");
    IS_S(parse_text("PROXY TCP6 1.2.3.4 ::1 1 2\r\n"), "malformed: v1: bad address",
         "IPv4 address in TCP6");
    IS_S(parse_text("PROXY TCP4 1.2.3.256 1.2.3.5 1 2\r\n"), "malformed: v1: bad address",
         "octet over 255");
    IS_S(parse_text("PROXY TCP4 1.2.3.4 1.2.3.5 65536 2\r\n"), "malformed: v1: bad port",
         "port over 65535");
    IS_S(parse_text("PROXY TCP4 1.2.3.4 1.2.3.5 01 2\r\n"), "malformed: v1: bad port",
         "port with a leading zero");
    IS_S(parse_text("PROXY TCP4 1.2.3.4 1.2.3.5 -1 2\r\n"), "malformed: v1: bad port",
         "negative port");
    IS_S(parse_text("PROXY TCP4 1.2.3.4 1.2.3.5 1 2\n"),
         "malformed: v1: byte outside printable ASCII", "LF without CR");
    IS_S(parse_text("PROXY TCP4 1.2.3.4 1.2.3.5 1 2\rX"), "malformed: v1: CR without LF",
         "CR without LF");
    IS_S(parse("PROXY TCP4 1.2.3.4\0 1.2.3.5 1 2\r\n", 33),
         "malformed: v1: byte outside printable ASCII", "NUL byte");

    char longer[200];
    memset(longer, '1', sizeof longer);
    memcpy(longer, "PROXY TCP4 ", 11);
    IS_S(parse(longer, 106), "need-more", "106 bytes without CRLF: still may end");
    IS_S(parse(longer, 107), "malformed: v1: no CRLF within 107 bytes", "107 bytes: oversized");
    IS_S(parse(longer, sizeof longer), "malformed: v1: no CRLF within 107 bytes",
         "200 bytes: oversized");
    /* The longest legal line is exactly 107 bytes (CRLF included). */
    char max[128];
    snprintf(max, sizeof max, "PROXY UNKNOWN %s\r\n",
             "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
             "65535 65535");
    IS_U(strlen(max), 107, "the spec's longest line is 107 bytes");
    IS_S(parse_text(max), "local", "a 107-byte line parses");
}

static void test_v2(void)
{
    uint8_t b[700];
    size_t n;

    n = v2(b, 0x21, 0x11, 12, "192.0.2.7");
    IS_S(parse(b, n), "client 192.0.2.7 1234 28", "v2 PROXY TCP over IPv4");
    n = v2(b, 0x21, 0x21, 36, "2001:db8::7");
    IS_S(parse(b, n), "client 2001:db8::7 1234 52", "v2 PROXY TCP over IPv6");
    n = v2(b, 0x21, 0x21, 36, "::ffff:192.0.2.9");
    IS_S(parse(b, n), "client 192.0.2.9 1234 52", "v2 IPv4-mapped client is IPv4");
    n = v2(b, 0x21, 0x11, 12 + 300, "192.0.2.7");
    IS_S(parse(b, 28), "client 192.0.2.7 1234 328",
         "v2 with 300 bytes of TLVs: decided from the first 28 bytes, TLVs skipped");
    n = v2(b, 0x20, 0x00, 0, NULL);
    IS_S(parse(b, n), "local", "v2 LOCAL (health check)");
    n = v2(b, 0x20, 0x11, 12, "192.0.2.7");
    IS_S(parse(b, n), "local", "v2 LOCAL with addresses: still the balancer's own");
    n = v2(b, 0x21, 0x00, 0, NULL);
    IS_S(parse(b, n), "local", "v2 PROXY UNSPEC");
    n = v2(b, 0x21, 0x31, 216, NULL);
    IS_S(parse(b, 16), "local", "v2 PROXY over AF_UNIX");
    n = v2(b, 0x21, 0x12, 12, "192.0.2.7");
    IS_S(parse(b, n), "local", "v2 PROXY over UDP");

    n = v2(b, 0x21, 0x11, 12, "192.0.2.7");
    int all_need_more = 1;
    for (size_t k = 0; k < n; k++)
        if (strcmp(parse(b, k), "need-more") != 0) {
            tap_diag("prefix of %zu bytes: %s", k, parse(b, k));
            all_need_more = 0;
        }
    tap_ok(all_need_more, "every proper prefix of a v2 header needs more");

    n = v2(b, 0x11, 0x11, 12, "192.0.2.7");
    IS_S(parse(b, n), "malformed: v2: version is not 2", "version 1 in a v2 header");
    n = v2(b, 0x22, 0x11, 12, "192.0.2.7");
    IS_S(parse(b, n), "malformed: v2: command is not LOCAL or PROXY", "command 2");
    n = v2(b, 0x21, 0x41, 12, "192.0.2.7");
    IS_S(parse(b, n), "malformed: v2: unknown address family or transport", "family 4");
    n = v2(b, 0x21, 0x13, 12, "192.0.2.7");
    IS_S(parse(b, n), "malformed: v2: unknown address family or transport", "transport 3");
    n = v2(b, 0x21, 0x11, 11, "192.0.2.7");
    IS_S(parse(b, n), "malformed: v2: address block shorter than its family needs",
         "IPv4 block of 11 bytes");
    n = v2(b, 0x21, 0x21, 35, "2001:db8::7");
    IS_S(parse(b, n), "malformed: v2: address block shorter than its family needs",
         "IPv6 block of 35 bytes");
    v2(b, 0x21, 0x11, 1025, "192.0.2.7");
    IS_S(parse(b, 16), "malformed: v2: header longer than 1024 bytes", "oversized v2");
    v2(b, 0x21, 0x11, 0xffff, "192.0.2.7");
    IS_S(parse(b, 16), "malformed: v2: header longer than 1024 bytes", "v2 length 65535");
    v2(b, 0x21, 0x11, 1024, "192.0.2.7");
    IS_S(parse(b, 28), "client 192.0.2.7 1234 1040", "v2 length 1024 is accepted");
    memcpy(b, sig, 12);
    b[5] = 0x0c;
    IS_S(parse(b, 6), "malformed: not a PROXY header", "bad signature byte, early");
}

static void test_config(void)
{
    char *env[] = {"IPLIMIT_PROXY_FROM=10.0.0.0/8, 2001:db8::/32,127.0.0.9", NULL};
    struct il_config config;
    il_config_load(&config, env, NULL);
    IS_U(config.nerrors, 0, "IPLIMIT_PROXY_FROM parses");
    IS_U(config.policy.nproxy, 3, "three proxy_from networks");
    struct il_key k;
    il_key_parse_cidr(&k, "10.1.2.3");
    tap_ok(il_policy_is_proxy(&config.policy, &k), "10.1.2.3 is a balancer");
    il_key_parse_cidr(&k, "2001:db8:1::5");
    tap_ok(il_policy_is_proxy(&config.policy, &k), "2001:db8:1::5 is a balancer");
    il_key_parse_cidr(&k, "127.0.0.10");
    tap_ok(!il_policy_is_proxy(&config.policy, &k), "127.0.0.10 is not");

    char *bad[] = {"IPLIMIT_PROXY_FROM=10.0.0.1/8", NULL};
    il_config_load(&config, bad, NULL);
    IS_U(config.nerrors, 1, "a bad proxy_from network is an error");
    IS_S(config.errors[0], "IPLIMIT_PROXY_FROM: \"10.0.0.1/8\": address has bits set beyond the prefix length",
         "its message names the variable");
    IS_U(config.policy.enabled, 0, "and disables the policy");

    char path[64];
    tap_write_temp(path, "proxy_from = [\"192.0.2.0/24\", \"::1\"];\n");
    char *none[] = {NULL};
    il_config_load(&config, none, path);
    IS_U(config.nerrors, 0, "proxy_from in the file");
    IS_U(config.policy.nproxy, 2, "two networks from the file");
    remove(path);
}

int main(void)
{
    test_v1();
    test_v2();
    test_config();
    return tap_done();
}
