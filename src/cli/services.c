/* Finding the running services: every process that loaded the library maps
 * one "/memfd:iplimit" segment, shared with the processes it forked. A
 * service is one segment, named by the memfd's device and inode as
 * /proc/PID/maps shows them, with every pid that maps it. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define SEGMENT_PATH "/memfd:" IL_SHM_NAME

struct found {
    unsigned long dev_major, dev_minor, inode;
    char range[40];
};

/* Parses one maps line; returns 1 if it maps an iplimit segment. */
static int parse_maps_line(const char *line, struct found *f)
{
    char range[40];
    int path_at = 0;
    if (sscanf(line, "%39s %*s %*x %lx:%lx %lu %n", range, &f->dev_major, &f->dev_minor,
               &f->inode, &path_at) != 4 || path_at == 0)
        return 0;
    const char *path = line + path_at;
    size_t len = strlen(SEGMENT_PATH);
    if (strncmp(path, SEGMENT_PATH, len) != 0)
        return 0;
    path += len;
    if (strcmp(path, "\n") != 0 && strcmp(path, "") != 0 && strcmp(path, " (deleted)\n") != 0 &&
        strcmp(path, " (deleted)") != 0)
        return 0;
    memcpy(f->range, range, sizeof f->range);
    return 1;
}

static struct cli_service *service_for(struct cli_services *s, const struct found *f)
{
    for (size_t i = 0; i < s->count; i++) {
        struct cli_service *svc = &s->items[i];
        if (svc->dev_major == f->dev_major && svc->dev_minor == f->dev_minor &&
            svc->inode == f->inode)
            return svc;
    }
    return NULL;
}

static void add_mapping(struct cli_services *s, const struct found *f, pid_t pid)
{
    struct cli_service *svc = service_for(s, f);
    if (!svc) {
        s->items = cli_xrealloc(s->items, s->count + 1, sizeof *s->items);
        svc = &s->items[s->count++];
        memset(svc, 0, sizeof *svc);
        svc->dev_major = f->dev_major;
        svc->dev_minor = f->dev_minor;
        svc->inode = f->inode;
    }
    for (size_t i = 0; i < svc->nprocs; i++)
        if (svc->procs[i].pid == pid)
            return;
    svc->procs = cli_xrealloc(svc->procs, svc->nprocs + 1, sizeof *svc->procs);
    struct cli_mapping *m = &svc->procs[svc->nprocs++];
    m->pid = pid;
    memcpy(m->range, f->range, sizeof m->range);
}

/* Reads pid's maps. With want, keeps only that segment. Returns the number
 * of segment lines seen, or -1 if the process is gone or unreadable. */
static int scan_pid(pid_t pid, struct cli_services *s, const struct found *want)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *maps = fopen(path, "r");
    if (!maps)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    int seen = 0;
    while (getline(&line, &cap, maps) > 0) {
        struct found f;
        if (!parse_maps_line(line, &f))
            continue;
        seen++;
        if (!want || (want->inode == f.inode && want->dev_major == f.dev_major &&
                      want->dev_minor == f.dev_minor))
            add_mapping(s, &f, pid);
    }
    free(line);
    fclose(maps);
    return seen;
}

static pid_t pid_of_entry(const struct dirent *e)
{
    for (const char *p = e->d_name; *p; p++)
        if (!isdigit((unsigned char)*p))
            return 0;
    long pid = strtol(e->d_name, NULL, 10);
    return pid > 0 && pid <= INT32_MAX ? (pid_t)pid : 0;
}

/* Scans every process but this one. */
static void scan_all(struct cli_services *s, const struct found *want)
{
    DIR *proc = opendir("/proc");
    if (!proc) {
        cli_error("cannot read /proc: %s", strerror(errno));
        return;
    }
    pid_t self = getpid();
    struct dirent *e;
    while ((e = readdir(proc)) != NULL) {
        pid_t pid = pid_of_entry(e);
        if (pid && pid != self)
            scan_pid(pid, s, want);
    }
    closedir(proc);
}

static int by_pid(const void *a, const void *b)
{
    pid_t x = ((const struct cli_mapping *)a)->pid, y = ((const struct cli_mapping *)b)->pid;
    return (x > y) - (x < y);
}

/* When pid started, in clock ticks since boot (field 22 of
 * /proc/PID/stat); UINT64_MAX if it is gone. */
static uint64_t start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return UINT64_MAX;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return UINT64_MAX;
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and ')': skip to the last. */
    char *p = strrchr(buf, ')');
    unsigned long long ticks;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
                            "%*d %*d %*d %*d %llu", &ticks) != 1)
        return UINT64_MAX;
    return ticks;
}

/* A service is named by a process that exists: its oldest live member
 * (the creator may be long gone, e.g. a daemon's first process). Under
 * systemd that is the service's main process, or the process that
 * forked it for a Type=forking unit. */
static void name_by_oldest(struct cli_service *svc)
{
    uint64_t oldest = UINT64_MAX;
    svc->main_pid = svc->nprocs ? svc->procs[0].pid : 0;
    for (size_t i = 0; i < svc->nprocs; i++) {
        uint64_t t = start_time(svc->procs[i].pid);
        if (t < oldest) {
            oldest = t;
            svc->main_pid = svc->procs[i].pid;
        }
    }
}

static int by_main_pid(const void *a, const void *b)
{
    const struct cli_service *x = a, *y = b;
    return (x->main_pid > y->main_pid) - (x->main_pid < y->main_pid);
}

/* The segment pid maps, or -1 with a message. */
static int segment_of(pid_t pid, struct found *f)
{
    struct cli_services one = {0};
    int seen = scan_pid(pid, &one, NULL);
    if (seen < 0)
        cli_error("no process %d (or /proc/%d/maps is unreadable: run as root)", (int)pid,
                  (int)pid);
    else if (seen == 0)
        cli_error("process %d does not use iplimit: it maps no %s segment "
                  "(was it started with LD_PRELOAD=libiplimit.so?)",
                  (int)pid, SEGMENT_PATH);
    else {
        f->dev_major = one.items[0].dev_major;
        f->dev_minor = one.items[0].dev_minor;
        f->inode = one.items[0].inode;
    }
    cli_free_services(&one);
    return seen > 0 ? 0 : -1;
}

int cli_find_services(pid_t pid, struct cli_services *out)
{
    memset(out, 0, sizeof *out);
    struct found want;
    if (pid) {
        if (segment_of(pid, &want) != 0)
            return -1;
        scan_pid(pid, out, &want); /* even if pid is this process */
    }
    scan_all(out, pid ? &want : NULL);
    for (size_t i = 0; i < out->count; i++) {
        qsort(out->items[i].procs, out->items[i].nprocs, sizeof(struct cli_mapping), by_pid);
        name_by_oldest(&out->items[i]);
    }
    qsort(out->items, out->count, sizeof *out->items, by_main_pid);
    return 0;
}

void cli_free_services(struct cli_services *services)
{
    for (size_t i = 0; i < services->count; i++)
        free(services->items[i].procs);
    free(services->items);
    memset(services, 0, sizeof *services);
}

/* The segment through an fd the process holds on it: the library keeps
 * one (above fd 200) for exec hand-over. /proc/PID/fd needs only the
 * rights of the process's own user, where map_files needs
 * CAP_CHECKPOINT_RESTORE, so a non-root user can read its own services.
 * Returns an fd or -errno. */
static int open_held_fd(const struct cli_service *service, pid_t pid, int flags)
{
    char dir[32];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int fd = -ENOENT;
    struct dirent *e;
    while (fd < 0 && (e = readdir(d)) != NULL) {
        char path[300], target[64];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strncmp(target, SEGMENT_PATH, strlen(SEGMENT_PATH)) != 0)
            continue;
        int candidate = open(path, flags);
        struct stat st;
        if (candidate >= 0 && fstat(candidate, &st) == 0 &&
            (unsigned long)st.st_ino == service->inode)
            fd = candidate;
        else if (candidate >= 0)
            close(candidate);
    }
    closedir(d);
    return fd;
}

/* An fd on the segment that process m maps: through map_files, else
 * (refused to a user that is not root) through the fd the library keeps.
 * Returns the fd or -errno; the map_files error when neither works. */
static int open_segment(const struct cli_service *service, const struct cli_mapping *m,
                        int flags)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/map_files/%s", (int)m->pid, m->range);
    int fd = open(path, flags);
    if (fd >= 0)
        return fd;
    int err = -errno;
    if (err != -EPERM && err != -EACCES)
        return err;
    fd = open_held_fd(service, m->pid, flags);
    return fd >= 0 ? fd : err;
}

int cli_attach(const struct cli_service *service, struct il_shm *shm, bool writable)
{
    return cli_attach_owned(service, shm, writable, NULL);
}

int cli_attach_owned(const struct cli_service *service, struct il_shm *shm, bool writable,
                     uid_t *owner)
{
    int err = -ESRCH;
    int flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
    for (size_t i = 0; i < service->nprocs; i++) {
        int fd = open_segment(service, &service->procs[i], flags);
        if (fd < 0) {
            err = fd;
            continue; /* that process may have exited: try the next */
        }
        struct stat st;
        if (owner)
            *owner = fstat(fd, &st) == 0 ? st.st_uid : (uid_t)-1;
        err = il_shm_attach_fd(shm, fd, writable);
        close(fd);
        if (err == 0)
            return 0;
    }
    pid_t pid = service->main_pid;
    if (err == -EPROTO)
        cli_error("the segment of process %d is not a well-formed iplimit table of this version", (int)pid);
    else
        cli_error("cannot open the segment of process %d: %s%s", (int)pid, strerror(-err),
                  err == -EPERM || err == -EACCES ? " (run as root)" : "");
    return err;
}
