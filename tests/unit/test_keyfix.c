/* Unit test of reconciliation's key pass (src/lib/reconcile.c,
 * correct_keys): a key counted above its connection slots is corrected
 * only when two runs in a row see the excess under the very same key word
 * (docs/failure-model.md, Keys): one run's view is not enough, because an
 * accept descheduled between counting its key and taking its slot looks
 * the same for as long as a run lasts. The module is compiled in here (its
 * steps are static), on a real segment; no kernel sockets are involved:
 * the steps run are the snapshot, the suspects and the correction. */
#include <stdio.h>
#include <string.h>

#include "../../src/lib/reconcile.c"
#include "tap.h"
#include "unit_segment.h"


/* What the run's other steps call (the kernel, logging, the fork gate):
 * never reached by the key pass, or of no consequence to it. */
void il_forkgate_enter(void) {}
void il_forkgate_leave(void) {}
void il_log(int priority, const char *fmt, ...) { (void)priority, (void)fmt; }
void il_log_limited(struct il_log_limit *limit, uint32_t interval, int priority, const char *fmt,
                    ...)
{
    (void)limit, (void)interval, (void)priority, (void)fmt;
}
struct il_own_fd *il_own_fd_take(int fd) { (void)fd; return NULL; }
bool il_own_fd_valid(const struct il_own_fd *own) { return own != NULL; }
void il_own_fd_close(struct il_own_fd *own) { (void)own; }
int il_learn_take(void) { return 0; }
void il_learn_give(void) {}
const struct il_learned_port *il_learn_port(uint16_t port) { (void)port; return NULL; }
void il_learn_begin(void) {}
void il_learn_add(const struct inet_diag_msg *m) { (void)m; }
void il_learn_commit(void) {}
int il_lookup_all(const struct il_own_fd *s, struct il_lookup *q, uint32_t n, char *buf,
                  size_t size, uint64_t deadline_us)
{
    (void)s, (void)q, (void)n, (void)buf, (void)size, (void)deadline_us;
    return -1;
}

static struct il_shm shm;

/* The key pass of one run: what reconcile() does before and after asking
 * the kernel, with nothing asked (no slot is freed). Returns the keys
 * corrected. */
static unsigned key_pass(void)
{
    struct run r;
    memset(&r, 0, sizeof r);
    r.shm = &shm;
    r.cap = 4096;
    if (arena_map(&r) != 0 || snapshot(&r) != 0)
        return ~0u;
    find_suspects(&r);
    correct_keys(&r);
    if (!r.arena_kept)
        munmap(r.arena, r.arena_size);
    return (unsigned)r.corrected;
}

static uint32_t count_of(uint32_t index)
{
    return il_keyword_count(atomic_load(&shm.keys[index].word));
}

int main(void)
{
    if (!unit_segment(&shm, 1024, NULL))
        return tap_done();
    struct il_key key = unit_key_n(7);
    struct il_acquired got;
    /* Two counts, one slot: one count without a recorded connection. */
    tap_ok(il_keytab_acquire(&shm, &key, 10, 0, &got) == IL_ADMITTED, "first count");
    tap_ok(il_conntab_alloc(&shm, got.index) != 0, "its slot");
    tap_ok(il_keytab_acquire(&shm, &key, 10, 0, &got) == IL_ADMITTED, "second count, no slot");
    uint32_t k = got.index;

    tap_ok(key_pass() == 0 && count_of(k) == 2, "one run sees the excess and corrects nothing");
    /* The key moves between two runs (an accept with its slot): no
     * correction at the run after, which sees another word. */
    tap_ok(il_keytab_acquire(&shm, &key, 10, 0, &got) == IL_ADMITTED &&
               il_conntab_alloc(&shm, got.index) != 0,
           "a third count with its slot");
    tap_ok(key_pass() == 0 && count_of(k) == 3, "the word changed since the last run: nothing");
    tap_ok(key_pass() == 1 && count_of(k) == 2,
           "the same excess under the same word two runs in a row: corrected by one");
    tap_ok(key_pass() == 0 && count_of(k) == 2, "then nothing more to correct");
    tap_ok(atomic_load(&shm.hdr->rec_prev_n) == 0, "and no suspect left for the next run");
    return tap_done();
}
