/* Linked into evloop-clash with -rdynamic: a host that exports functions
 * with libconfig's names, as a program with its own config_init() may. The
 * library must read its file with the real libconfig and never call these;
 * each one that is called says so on stderr. */
#include <unistd.h>

static void called(const char *line, size_t len)
{
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}

#define HOST_FN(name)                                                  \
    int name(void);                                                    \
    int name(void)                                                     \
    {                                                                  \
        called("host " #name " called\n", sizeof("host " #name " called\n") - 1); \
        return 0;                                                      \
    }

HOST_FN(config_init)
HOST_FN(config_destroy)
HOST_FN(config_read_file)
HOST_FN(config_read_string)
HOST_FN(config_setting_length)
HOST_FN(config_setting_get_elem)
HOST_FN(config_setting_get_member)
HOST_FN(config_setting_get_int64)
HOST_FN(config_setting_get_string)
HOST_FN(config_setting_get_bool)
