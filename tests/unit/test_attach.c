/* Unit tests for il_shm_attach_fd on segments that lie (src/lib/shm.c):
 * the header is checked against the file's real size before anything is
 * mapped, and the layout comes from one copy of it. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../src/lib/shm.h"
#include "tap.h"

static struct il_policy policy;
static struct il_shm_header good;
static int fd = -1;
static size_t size;

/* Writes hdr over the segment's header and attaches read-only. */
static int attach_with(const struct il_shm_header *hdr)
{
    if (pwrite(fd, hdr, sizeof *hdr, 0) != (ssize_t)sizeof *hdr)
        return -999;
    struct il_shm shm;
    int err = il_shm_attach_fd(&shm, fd, 0);
    if (err == 0) {
        if (shm.key_slots != hdr->key_slots || shm.size != hdr->segment_size)
            err = -998;
        il_shm_detach(&shm);
    }
    return err;
}

#define FORGED(field, value, name)                                                                 \
    do {                                                                                           \
        struct il_shm_header h = good;                                                             \
        h.field = (value);                                                                         \
        IS_I(attach_with(&h), -EPROTO, name);                                                      \
    } while (0)

int main(void)
{
    il_policy_defaults(&policy);
    struct il_shm shm;
    IS_I(il_shm_create_keep(&shm, 64, &policy, NULL, &fd), 0, "segment created with its fd");
    memcpy(&good, shm.hdr, sizeof good);
    size = shm.size;
    il_shm_detach(&shm);
    IS_S(good.service, program_invocation_short_name, "service defaults to the program name");

    IS_I(attach_with(&good), 0, "a well-formed segment attaches");
    FORGED(version, IL_SHM_VERSION + 1, "another version is refused");
    FORGED(header_size, 16, "another header size is refused");
    FORGED(segment_size, size + 4096, "a segment larger than the file is refused");
    FORGED(segment_size, 8, "a segment smaller than its header is refused");
    FORGED(key_slots, 100, "a key slot count that is no power of two is refused");
    FORGED(key_slots, 0, "zero key slots are refused");
    FORGED(conn_slots, 1u << 31, "a connection slot count beyond the capacity is refused");
    FORGED(key_slots, 1u << 20, "a key table larger than the file is refused");
    FORGED(policy_off, 64, "policies overlapping the header are refused");
    FORGED(policy_off, good.policy_off + 8, "a misaligned policy offset is refused");
    FORGED(keys_off, 1ULL << 40, "a key table outside the file is refused");
    FORGED(keys_off, UINT64_MAX - 63, "an offset that would wrap around is refused");
    FORGED(keys_off, good.policy_off, "keys overlapping the policies are refused");
    FORGED(conns_off, good.keys_off, "connections overlapping the keys are refused");
    FORGED(conns_off, size, "a connection table past the end is refused");

    /* The file shrinks below what the header says. */
    IS_I(ftruncate(fd, (off_t)(size - 4096)), 0, "segment truncated");
    IS_I(attach_with(&good), -EPROTO, "a truncated segment is refused");
    close(fd);
    return tap_done();
}
