/* Unit tests for the statistics stripes and the per-stripe slot search
 * cursor (src/lib/shm.h, shm.c, conntab.c), on a real segment: forked
 * processes each count on their own stripe, and the sums are exact. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/lib/conntab.h"
#include "../../src/lib/shm.h"
#include "tap.h"
#include "unit_segment.h"

#define WORKERS 4
#define ROUNDS 3000

static struct il_shm shm;

static uint64_t sum(size_t field_offset)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < IL_STAT_STRIPES; i++)
        total += atomic_load((_Atomic uint64_t *)((char *)&shm.hdr->stats[i] + field_offset));
    return total;
}

static void test_pick(void)
{
    IS_U(shm.stats - shm.hdr->stats, (uint32_t)getpid() % IL_STAT_STRIPES,
         "the segment's creator counts on the stripe of its pid");
    il_shm_pick_stats(&shm, 130);
    IS_U(shm.stats - shm.hdr->stats, 2, "pid 130: stripe 2");
    il_shm_pick_stats(&shm, 131);
    IS_U(shm.stats - shm.hdr->stats, 3, "pid 131: stripe 3");
    IS_U(atomic_load(&shm.hdr->stats[3].conn_hint), 3u << 26, "stripe 3's cursor starts at 3 * 2^26");
    uint64_t h = il_conntab_alloc(&shm, 5);
    tap_ok(h != 0, "a slot from stripe 3's cursor");
    IS_U(atomic_load(&shm.hdr->stats[3].conn_hint), (3u << 26) + 1, "stripe 3's cursor moved");
    IS_U(atomic_load(&shm.hdr->stats[2].conn_hint), 2u << 26, "stripe 2's did not");
    IS_U(il_conntab_unref(&shm, h), 5, "and it is freed");
    il_shm_pick_stats(&shm, getpid());
}

/* Each child takes the stripe of its own pid, as the fork wrapper's child
 * side does, and counts ROUNDS connections in and out. */
static void test_processes(void)
{
    pid_t pids[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        pids[w] = fork();
        if (pids[w] == 0) {
            il_shm_pick_stats(&shm, getpid());
            for (int i = 0; i < ROUNDS; i++) {
                uint64_t h = il_conntab_alloc(&shm, (uint32_t)w);
                if (!h)
                    _exit(2);
                atomic_fetch_add_explicit(&shm.stats->accepted, 1, memory_order_relaxed);
                if (il_conntab_unref(&shm, h) != (uint32_t)w)
                    _exit(3);
                atomic_fetch_add_explicit(&shm.stats->released, 1, memory_order_relaxed);
            }
            _exit(0);
        }
    }
    int bad = 0;
    for (int w = 0; w < WORKERS; w++) {
        int status = 0;
        waitpid(pids[w], &status, 0);
        bad += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    IS_U(bad, 0, "every process allocated and freed every slot");
    IS_U(sum(offsetof(struct il_stats, accepted)), WORKERS * ROUNDS,
         "accepted summed over the stripes: exact");
    IS_U(sum(offsetof(struct il_stats, released)), WORKERS * ROUNDS,
         "released summed over the stripes: exact");
    uint32_t busy = 0;
    for (uint32_t i = 0; i < shm.conn_slots; i++)
        busy += il_connword_in_use(atomic_load(&shm.conns[i].word));
    IS_U(busy, 0, "every connection slot free");
    uint32_t stripes = 0;
    for (uint32_t i = 0; i < IL_STAT_STRIPES; i++)
        stripes += atomic_load(&shm.hdr->stats[i].accepted) != 0;
    tap_ok(stripes >= 2, "the processes counted on %u stripes", stripes);
}

int main(void)
{
    alarm(120); /* bound the whole run */
    if (!unit_segment(&shm, 1024, NULL))
        return tap_done();
    test_pick();
    test_processes();
    il_shm_detach(&shm);
    return tap_done();
}
