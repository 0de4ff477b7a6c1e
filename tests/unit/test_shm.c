/* Unit tests for the policy double buffer in the shared segment
 * (src/lib/shm.c): publish, begin/changed, and readers racing a writer. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/lib/shm.h"
#include "tap.h"

#define PUBLISHES 3000
#define READS_MAX 2000000

static struct il_shm shm;

/* A policy whose every field is derived from n, so that a mix of two
 * policies is detectable. */
static void make_policy(struct il_policy *p, uint32_t n)
{
    il_policy_defaults(p);
    p->max = n;
    p->log_interval = n;
    p->v4_prefix = (uint8_t)(n % 33);
    p->nrules = IL_MAX_RULES;
    for (unsigned i = 0; i < IL_MAX_RULES; i++) {
        memset(p->rules[i].net.addr, (int)(n & 0xff), 16);
        p->rules[i].limit = n;
    }
    memset(p->ports, (int)(n & 0xff), sizeof p->ports);
    p->all_ports = 0;
}

/* Returns the n the policy was made from, or UINT32_MAX if it is a mix. */
__attribute__((no_sanitize("thread"))) static uint32_t policy_id(const struct il_policy *p)
{
    uint32_t n = p->max;
    if (p->log_interval != n || p->v4_prefix != n % 33 || p->nrules != IL_MAX_RULES)
        return UINT32_MAX;
    if (p->rules[0].net.addr[0] != (n & 0xff) || p->ports[0] != p->ports[1023] ||
        (p->ports[0] & 0xff) != (n & 0xff))
        return UINT32_MAX;
    for (unsigned i = 0; i < IL_MAX_RULES; i++)
        if (p->rules[i].limit != n || p->rules[i].net.addr[15] != (n & 0xff))
            return UINT32_MAX;
    return n;
}

static struct il_policy scratch, out;

static void test_publish(void)
{
    make_policy(&scratch, 5);
    IS_I(il_shm_create(&shm, 64, &scratch, "boot error"), 0, "segment created");
    IS_S(shm.hdr->config_error, "boot error", "startup config error kept in the header");
    IS_U(atomic_load(&shm.hdr->policy_generation), 1, "generation 1 after create");
    IS_I(il_shm_policy_read(&shm, &out), 0, "read the initial policy");
    IS_U(policy_id(&out), 5, "initial policy is the one given to create");

    struct il_policy_ticket t;
    const struct il_policy *p = il_shm_policy_begin(&shm, &t);
    tap_ok(p != NULL, "begin with no writer gives a policy");
    IS_U(p ? p->max : 0, 5, "begin: reads the active policy in place");
    IS_I(il_shm_policy_changed(&shm, &t), 0, "changed: no publish, no change");

    make_policy(&scratch, 6);
    IS_I(il_shm_policy_publish(&shm, &scratch), 0, "publish ok");
    IS_U(atomic_load(&shm.hdr->policy_generation), 2, "generation 2 after a publish");
    unsigned copies = 0;
    for (unsigned i = 0; i < IL_STAT_STRIPES; i++)
        copies += atomic_load(&shm.hdr->stats[i].policy_generation) == 2;
    IS_U(copies, IL_STAT_STRIPES, "every statistics stripe has the generation's copy");
    IS_I(atomic_load(&shm.hdr->policy_writer), 0, "write slot released");
    IS_I(il_shm_policy_read(&shm, &out), 0, "read after publish");
    IS_U(policy_id(&out), 6, "read gives the published policy");
    p = il_shm_policy_begin(&shm, &t);
    IS_U(p ? p->max : 0, 6, "begin after publish gives the published policy");

    make_policy(&scratch, 7);
    il_shm_policy_publish(&shm, &scratch);
    make_policy(&scratch, 8);
    il_shm_policy_publish(&shm, &scratch);
    IS_I(il_shm_policy_changed(&shm, &t), 1, "changed: two publishes after begin");
}

static void test_dead_writer(void)
{
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    int status;
    waitpid(child, &status, 0);
    atomic_store(&shm.hdr->policy_writer, child);
    make_policy(&scratch, 9);
    IS_I(il_shm_policy_publish(&shm, &scratch), 0, "publish takes over a dead writer's slot");
    il_shm_policy_read(&shm, &out);
    IS_U(policy_id(&out), 9, "and the policy is published");
}

static _Atomic int writer_done;

static void *writer(void *arg)
{
    static struct il_policy p;
    uintptr_t failures = 0;
    for (uint32_t n = 100; n < 100 + PUBLISHES; n++) {
        make_policy(&p, n);
        failures += il_shm_policy_publish(&shm, &p) != 0;
    }
    atomic_store(&writer_done, 1);
    (void)arg;
    return (void *)failures;
}

struct reader_result {
    unsigned reads, torn, backwards;
};

/* Reads in place through begin/changed, as the accept path does. Reading
 * in place is a seqlock: the plain reads may overlap a publish, and the
 * sequence check throws such a read away. In the library the writer is
 * another process (iplimit reload), out of TSan's sight; here it is a
 * thread, so this one reader is exempt from TSan. */
__attribute__((no_sanitize("thread"))) static void read_in_place(struct reader_result *r, uint32_t *last)
{
    struct il_policy_ticket t;
    const struct il_policy *p = il_shm_policy_begin(&shm, &t);
    if (!p)
        return;
    uint32_t id = policy_id(p);
    if (il_shm_policy_changed(&shm, &t))
        return;
    r->reads++;
    r->torn += id == UINT32_MAX;
    r->backwards += id != UINT32_MAX && id < *last;
    if (id != UINT32_MAX)
        *last = id;
}

static void test_torn_reads(void)
{
    make_policy(&scratch, 100);
    il_shm_policy_publish(&shm, &scratch);
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    struct reader_result in_place = {0, 0, 0}, copied = {0, 0, 0};
    uint32_t last = 0, last_copy = 0;
    for (unsigned i = 0; i < READS_MAX && !atomic_load(&writer_done); i++) {
        read_in_place(&in_place, &last);
        if (il_shm_policy_read(&shm, &out) == 0) {
            uint32_t id = policy_id(&out);
            copied.reads++;
            copied.torn += id == UINT32_MAX;
            copied.backwards += id != UINT32_MAX && id < last_copy;
            if (id != UINT32_MAX)
                last_copy = id;
        }
    }
    void *failures;
    pthread_join(t, &failures);
    IS_U((uintptr_t)failures, 0, "writer: every publish succeeded");
    tap_diag("reads during %d publishes: %u in place, %u copied", PUBLISHES, in_place.reads,
             copied.reads);
    IS_U(in_place.torn, 0, "begin/changed never accepts a torn policy");
    IS_U(in_place.backwards, 0, "begin/changed never goes back to an older policy");
    IS_U(copied.torn, 0, "il_shm_policy_read never returns a torn policy");
    IS_U(copied.backwards, 0, "il_shm_policy_read never goes back to an older policy");
    il_shm_policy_read(&shm, &out);
    IS_U(policy_id(&out), 100 + PUBLISHES - 1, "after the writer: the last policy is active");
}

int main(void)
{
    alarm(120);
    test_publish();
    test_dead_writer();
    test_torn_reads();
    il_shm_detach(&shm);
    return tap_done();
}
