/* iplimit check: validates the file and the IPLIMIT_* environment exactly
 * as the library reads them, like nginx -t. With --pid, what that running
 * service would read: its environment, its file, with its user's rights. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

struct check_opts {
    const char *file;
    pid_t pid;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: iplimit check [--config FILE] [--pid PID]\n\n"
            "Reads the configuration file (FILE, else the one IPLIMIT_CONFIG names) and the\n"
            "IPLIMIT_* environment variables the way the library does. If they are valid,\n"
            "prints the effective policy and exits 0; otherwise lists every error with its\n"
            "variable or FILE:LINE and exits 1.\n\n"
            "  --config FILE  the file to read instead of $IPLIMIT_CONFIG\n"
            "  --pid PID      check what the service of process PID reads: the IPLIMIT_*\n"
            "                 variables it was started with and its file, opened as its\n"
            "                 user (this command's own variables are not used)\n"
            "  -h, --help     this help\n");
}

static int parse(int argc, char **argv, struct check_opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"pid", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    unsigned long value;
    memset(o, 0, sizeof *o);
    while ((opt = getopt_long(argc, argv, "+c:p:h", longopts, NULL)) != -1) {
        if (opt == 'c') {
            o->file = optarg;
        } else if (opt == 'p' && cli_parse_uint(optarg, 1, INT32_MAX, &value) == 0) {
            o->pid = (pid_t)value;
        } else if (opt == 'p') {
            return cli_error("--pid: '%s' is not a process id", optarg), CLI_USAGE;
        } else if (opt == 'h') {
            usage(stdout);
            exit(CLI_OK);
        } else {
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (optind != argc)
        return cli_error("check: unexpected argument '%s'", argv[optind]), CLI_USAGE;
    return CLI_OK;
}

/* Checks envp (NULL: ours) and file; prints the policy or the errors. */
static int check(char *const *envp, const char *file)
{
    static struct il_config config; /* large */
    il_config_load(&config, envp, file);
    if (cli_print_config_errors(&config)) {
        cli_error("configuration invalid: %u error%s; the library would pass every connection "
                  "through",
                  config.nerrors, config.nerrors == 1 ? "" : "s");
        return CLI_FAIL;
    }
    if (envp) {
        printf("file: %s\n", config.file[0] ? config.file : "none");
    } else {
        cli_print_sources(stdout, &config);
        struct stat st;
        if (geteuid() == 0 && config.file[0] && stat(config.file, &st) == 0 &&
            !(st.st_mode & S_IROTH))
            cli_warn("checked as root; %s is not readable by every user: make sure the "
                     "service's user can read it ('iplimit check --pid PID' checks as that "
                     "user)",
                     config.file);
    }
    cli_rule_warnings(&config.policy);
    cli_print_policy(stdout, &config.policy, cli_effective_capacity(config.capacity));
    if (cli_effective_capacity(config.capacity) != config.capacity)
        printf("(capacity %u is rounded up to %u)\n", config.capacity,
               cli_effective_capacity(config.capacity));
    printf("configuration OK\n");
    return CLI_OK;
}

/* Becomes the service's user, so that its file is opened with its rights. */
static int become(const struct cli_user *user, pid_t pid)
{
    if (geteuid() != 0) {
        if (user->uid != geteuid())
            cli_warn("not root: the file is read with your rights, not with those of the "
                     "service's user (uid %u)",
                     (unsigned)user->uid);
        return 0;
    }
    if (setgroups((size_t)user->ngroups, user->groups) != 0 || setgid(user->gid) != 0 ||
        setuid(user->uid) != 0) {
        cli_error("cannot take the identity of process %d (uid %u, gid %u): %s", (int)pid,
                  (unsigned)user->uid, (unsigned)user->gid, strerror(errno));
        return -1;
    }
    return 0;
}

static int check_service(const struct check_opts *o)
{
    struct cli_env env = {0};
    struct cli_user user;
    bool recorded;
    int err = cli_service_env(o->pid, &env, &recorded);
    if (!err)
        err = cli_service_user(o->pid, &user);
    if (err) {
        cli_error("cannot read what process %d runs with: %s", (int)o->pid,
                  cli_service_env_error(err));
        cli_env_free(&env);
        return CLI_FAIL;
    }
    if (o->file) {
        char entry[4200];
        snprintf(entry, sizeof entry, "IPLIMIT_CONFIG=%s", o->file);
        cli_env_set(&env, entry);
    }
    printf("service %d: uid %u, gid %u; started with:", (int)o->pid, (unsigned)user.uid,
           (unsigned)user.gid);
    bool any = false;
    for (size_t i = 0; i < env.count; i++, any = true)
        printf(" %.*s", (int)strcspn(env.entries[i], "="), env.entries[i]);
    printf("%s\n", any ? "" : " none");
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) {
        cli_error("fork: %s", strerror(errno));
        cli_env_free(&env);
        return CLI_FAIL;
    }
    if (child == 0) {
        if (become(&user, o->pid) != 0)
            _exit(CLI_FAIL);
        int rc = check(env.entries ? env.entries : (char *[]){NULL}, NULL);
        const char *file = cli_env_get(&env, "IPLIMIT_CONFIG");
        if (rc != CLI_OK && file && *file && access(file, R_OK) != 0 && errno == EACCES)
            cli_error("the service's user (uid %u) cannot read %s: the service runs without "
                      "limits",
                      (unsigned)user.uid, file);
        fflush(stdout);
        _exit(rc);
    }
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    cli_env_free(&env);
    return WIFEXITED(status) ? WEXITSTATUS(status) : CLI_FAIL;
}

int cli_check(int argc, char **argv)
{
    struct check_opts o;
    int rc = parse(argc, argv, &o);
    if (rc != CLI_OK)
        return rc;
    return o.pid ? check_service(&o) : check(NULL, o.file);
}
