/* ilforge: publishes a forged iplimit segment, as any local user could: a
 * memfd named "iplimit", mapped so that /proc/PID/maps shows it, whose
 * header lies. For tests/cli/forged.bats.
 *   ilforge MODE [--drop UID]
 * MODE: offsets  the key table's offset points far outside the file
 *       size     the header claims a segment larger than the file
 *       slots    a key slot count that is not a power of two
 *       strings  a well-formed segment whose strings (service name, config
 *                error) carry terminal escape sequences and quotes
 * --drop UID: create the segment, then run as UID (dumpable), so that the
 * segment's owner is not the process's user.
 * Prints "ready" and sleeps until killed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "keytab.h"
#include "policy.h"
#include "shm.h"

static const char hostile[] = "\033]0;pwned\007\033[2J\033[31mred\"quote\\back\nline\r";

static void add_key(struct il_shm *shm)
{
    struct il_key key = {.addr = {[10] = 0xff, [11] = 0xff, 127, 0, 0, 2}, .plen = 128};
    struct il_acquired got;
    il_keytab_acquire(shm, &key, 5, 0, &got);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: ilforge offsets|size|slots|strings [--drop UID]\n");
        return 2;
    }
    const char *mode = argv[1];
    struct il_policy policy;
    il_policy_defaults(&policy);
    struct il_shm shm;
    int fd = -1;
    int err = il_shm_create_keep(&shm, 64, &policy, NULL, &fd);
    if (err) {
        fprintf(stderr, "ilforge: %s\n", strerror(-err));
        return 1;
    }
    struct il_shm_header *hdr = shm.hdr;
    add_key(&shm);
    if (strcmp(mode, "offsets") == 0) {
        hdr->keys_off = 1ULL << 40;
    } else if (strcmp(mode, "size") == 0) {
        /* A consistent layout, for a key table 256 times larger than the file. */
        hdr->key_slots = 1u << 18;
        hdr->conns_off = hdr->keys_off + (uint64_t)hdr->key_slots * sizeof(struct il_key_slot);
        hdr->segment_size = hdr->conns_off + hdr->conn_slots * sizeof(struct il_conn_slot);
    } else if (strcmp(mode, "slots") == 0) {
        hdr->key_slots = 1000000007;
    } else if (strcmp(mode, "strings") == 0) {
        snprintf(hdr->service, sizeof hdr->service, "%s", hostile);
        snprintf(hdr->config_error, sizeof hdr->config_error, "%s", hostile);
        shm.policies[0].enabled = 0;
        shm.policies[0].nrules = 0xffffffff;
        shm.policies[0].v4_prefix = 200;
    } else {
        fprintf(stderr, "ilforge: unknown mode %s\n", mode);
        return 2;
    }
    if (argc == 4 && strcmp(argv[2], "--drop") == 0) {
        uid_t uid = (uid_t)atoi(argv[3]);
        if (setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0) {
            perror("ilforge: setresuid");
            return 1;
        }
        prctl(PR_SET_DUMPABLE, 1);
    }
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}
