/* libFuzzer target: the PROXY header parser. Checks what the library
 * relies on: a peek of IL_PROXY_PEEK bytes always decides; once a prefix
 * decides, every longer input decides the same way (more bytes never
 * change a verdict); a client's header length is within the bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lib/proxyhdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes: ASan sees any read past the end. */
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    struct il_proxy_header first, h;
    enum il_proxy_result decided = IL_PROXY_NEED_MORE;
    size_t upto = size < 2 * IL_PROXY_PEEK ? size : 2 * IL_PROXY_PEEK;
    for (size_t n = 0; n <= upto; n++) {
        enum il_proxy_result r = il_proxy_parse(buf, n, &h);
        if (r == IL_PROXY_NEED_MORE && n >= IL_PROXY_PEEK)
            abort(); /* the peek would not be enough */
        if (decided != IL_PROXY_NEED_MORE) {
            if (r != decided)
                abort();
            if (r == IL_PROXY_CLIENT &&
                (memcmp(&h.client, &first.client, sizeof h.client) != 0 ||
                 h.client_port != first.client_port || h.length != first.length))
                abort();
        } else if (r != IL_PROXY_NEED_MORE) {
            decided = r;
            first = h;
        }
        if (r == IL_PROXY_MALFORMED && (!h.why || !*h.why))
            abort();
        if (r == IL_PROXY_CLIENT &&
            ((h.version == 1 && (h.length > IL_PROXY_V1_MAX || h.length > n)) ||
             (h.version == 2 && (h.length < 28 || h.length > 16 + IL_PROXY_V2_MAX)) ||
             h.client.plen != 128))
            abort();
    }
    if (size > upto)
        il_proxy_parse(buf, size, &h);
    free(buf);
    return 0;
}
