/* The limiter: what happens to a connection and to the fds that refer to
 * it, on top of the fd map and the shared tables.  Called by the wrappers
 * in interpose.c; knows nothing about which libc call it serves. */
#ifndef IL_LIMITER_H
#define IL_LIMITER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "keytab.h"
#include "policy.h"
#include "shm.h"

struct il_state {
    struct il_shm shm;
    int active; /* the fd map and the segment are ready (atomic access only) */
    pid_t pid;  /* this process, as its own fork wrapper last saw it (atomic access only) */
};

extern struct il_state il_state __attribute__((visibility("hidden")));

/* Set by the fork wrapper so that the atfork handler does not count twice. */
extern _Thread_local int il_in_fork_wrapper;

static inline bool il_active(void)
{
    return __atomic_load_n(&il_state.active, __ATOMIC_ACQUIRE) != 0;
}

enum il_admission { IL_PASS, IL_REJECTED };

/* What accept does after a rejection (interpose.c, docs/design.md
 * "Rejecting"): it goes on to the next queued connection, at most
 * IL_MAX_REFUSALS refusals in one call, then returns -1/EAGAIN. */
/* What one accept (or a PROXY header's client) needs from the policy,
 * copied out under its seqlock. */
struct il_decision {
    bool policed;
    bool dry_run;
    bool proxy; /* the peer is in proxy_from: its connections carry a PROXY header */
    uint8_t action;
    uint8_t blocking;
    uint32_t log_interval;
    struct il_verdict verdict;
};

/* The policy's word on peer (full length) at local port. Returns false
 * when the policy could not be read (then pass uncounted). */
bool il_limiter_decide(uint16_t port, const struct il_key *peer, struct il_decision *d);

/* Statistics and the (rate-limited) log line of a rejection, real or not. */
void il_limiter_note_rejection(const struct il_decision *d, const struct il_acquired *got,
                               int dry_run, uint64_t reason);

struct il_rejection_mode {
    /* The listener blocks: accept goes on only to a connection already
     * queued (a poll with no timeout says so), else returns -1/EAGAIN. */
    bool blocks;
    /* IPLIMIT_BLOCKING=wait on a blocking listener: accept blocks until
     * it can return an admitted connection, with no bound. */
    bool wait;
};

/* cfd was just accepted on lfd from peer. Counts it, or closes it if its
 * key is over the limit (IL_REJECTED; then *mode says what accept does next). */
enum il_admission il_limiter_admit(int lfd, int cfd, const struct sockaddr *peer,
                                   socklen_t peer_len, struct il_rejection_mode *mode);

/* The straight path of il_limiter_admit for the common case (limiter.c):
 * true when cfd was admitted and counted; false when nothing was done and
 * il_limiter_admit must decide. Never changes errno. */
bool il_limiter_admit_fast(int lfd, int cfd, const struct sockaddr *peer, socklen_t peer_len);

/* The fd map entry of an fd that is being closed (already swapped out). */
void il_limiter_release(uint64_t entry);

/* newfd now refers to what oldfd refers to (dup, dup2, dup3, F_DUPFD). */
void il_limiter_copy(int oldfd, int newfd);

/* newfd was just handed out by the kernel: whatever the map still says
 * about that number is stale (closed behind the library's back). */
void il_limiter_forget(int fd);

/* Before fork: one more reference for every counted fd, for the child.
 * undo drops them again when the fork failed. Call with the fork lock held
 * exclusive (forklock.h); il_limiter_fork_prepare does. */
void il_limiter_fork_refs(bool undo);

/* A fork, or a raw clone that copies the fd table, in three steps in one
 * thread: prepare just before the real call (blocks signals, takes the fork
 * lock exclusive, one reference per counted fd), then in the parent
 * il_limiter_fork_parent(failed) (failed: no child was made, the references
 * are dropped again), in the child il_limiter_fork_child. A prepare while
 * one is in progress in the same thread does nothing, as do parent and
 * child without a prepare (the child still frees the lock and notes its
 * pid). The atfork handlers (init.c) and the fork wrapper call these. */
void il_limiter_fork_prepare(void);
void il_limiter_fork_parent(bool failed);
void il_limiter_fork_child(void);

/* Set by init.c when its atfork handlers are registered: the fork wrapper
 * then leaves prepare to them (so that the host's own prepare handlers,
 * which may take the host's locks, run before the fork lock is taken). */
extern int il_atfork_ready __attribute__((visibility("hidden")));

/* This process stops accounting for its fds: exec, _exit, exit. Does
 * nothing in a vfork child, which shares its parent's memory. */
void il_limiter_release_all(void);

#endif
