/* libFuzzer target: the CIDR/address parser. Whatever parses must format
 * to text that parses back to the same key, with no host bits set. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lib/addrkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    struct il_key key, again;
    const char *err = il_key_parse_cidr(&key, text);
    if (!err) {
        char buf[IL_KEY_STRLEN];
        il_key_format(&key, buf);
        if (strnlen(buf, IL_KEY_STRLEN) >= IL_KEY_STRLEN)
            abort();
        if (il_key_parse_cidr(&again, buf) != NULL || !il_key_equal(&key, &again))
            abort();
        struct il_key masked = key;
        il_key_mask(&masked, 0, 0);
        if (!il_key_contains(&masked, &key) && key.plen == 128)
            abort();
    } else if (!*err) {
        abort();
    }
    free(text);
    return 0;
}
