/* libFuzzer target: iplimit stat's attach and read path on forged
 * segments (src/lib/shm.c il_shm_attach_fd, src/cli/snapshot.c and the
 * three output formats). Any local user can publish a memfd named like a
 * segment, so every byte of it is input.
 *
 * Each run starts from a well-formed segment (capacity 64, two keys, two
 * rules) and applies the input to it as patches: records of
 *   offset (2 bytes, little-endian; taken modulo the segment's size)
 *   length (1 byte), then that many bytes written there;
 * a record with length 0 instead truncates the file at its offset. The
 * result is read as iplimit stat reads it: attach, snapshot, text, JSON
 * and Prometheus. Checks: no crash or sanitizer report, and no byte of the
 * output outside printable ASCII but newlines. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../src/cli/cli.h"
#include "../../src/lib/keytab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *template;
static size_t template_size;

static void add_key(struct il_shm *shm, uint8_t last)
{
    struct il_key key = {.addr = {[10] = 0xff, [11] = 0xff, 192, 0, 2, last}, .plen = 128};
    struct il_acquired got;
    il_keytab_acquire(shm, &key, 3, 0, &got);
}

static void make_template(void)
{
    struct il_policy policy;
    il_policy_defaults(&policy);
    struct il_key net;
    il_key_parse_cidr(&net, "192.0.2.0/24");
    il_policy_add_rule(&policy, &net, false, 7);
    il_key_parse_cidr(&net, "2001:db8::/32");
    il_policy_add_rule(&policy, &net, true, 0);
    il_policy_finish(&policy);
    struct il_shm shm;
    if (il_shm_create(&shm, 64, &policy, "boot error") != 0)
        abort();
    il_shm_set_service(&shm, "fuzzed");
    add_key(&shm, 1);
    add_key(&shm, 2);
    template_size = shm.size;
    template = malloc(template_size);
    memcpy(template, shm.hdr, template_size);
    il_shm_detach(&shm);
}

static void check_output(char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c != '\n' && (c < 0x20 || c > 0x7e))
            abort();
    }
    free(text);
}

static void print_all(const struct cli_snapshot *snap)
{
    void (*const formats[])(FILE *, const struct cli_snapshot *, size_t, size_t) = {
        cli_out_text, cli_out_json, cli_out_prom};
    for (size_t f = 0; f < 3; f++) {
        char *text = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&text, &len);
        if (!out)
            abort();
        formats[f](out, snap, 1, 0);
        fclose(out);
        check_output(text, len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!template)
        make_template();
    int fd = memfd_create("iplimit", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    size_t file_size = template_size;
    char *image = malloc(template_size);
    memcpy(image, template, template_size);
    for (size_t i = 0; i + 3 <= size;) {
        size_t off = (data[i] | (size_t)data[i + 1] << 8) % template_size, len = data[i + 2];
        i += 3;
        if (len == 0) {
            file_size = off;
            continue;
        }
        if (len > size - i)
            len = size - i;
        if (len > template_size - off)
            len = template_size - off;
        memcpy(image + off, data + i, len);
        i += len;
    }
    if (pwrite(fd, image, file_size, 0) != (ssize_t)file_size)
        abort();
    free(image);
    struct il_shm shm;
    if (il_shm_attach_fd(&shm, fd, 0) == 0) {
        struct cli_snapshot snap;
        memset(&snap, 0, sizeof snap);
        cli_snapshot_from_shm(&shm, &snap);
        print_all(&snap);
        cli_snapshot_free(&snap);
        il_shm_detach(&shm);
    }
    close(fd);
    return 0;
}
