/* A tiny TAP producer for the unit tests: "ok N - name" / "not ok N - name",
 * diagnostics as "# ..." lines, and the plan "1..N" printed by tap_done(). */
#ifndef IL_TAP_H
#define IL_TAP_H

#include <stdbool.h>
#include <stdint.h>

/* Records one test. Returns cond so callers can skip dependent checks. */
bool tap_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A "# ..." diagnostic line. */
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

bool tap_is_u64(uint64_t got, uint64_t want, const char *name);
bool tap_is_i64(int64_t got, int64_t want, const char *name);
bool tap_is_str(const char *got, const char *want, const char *name);

/* Prints the plan; returns the exit status (1 if anything failed). */
int tap_done(void);

/* The template of a temporary name under $TMPDIR (or /tmp), for mkstemp
 * or mkdtemp, written to path (at least 64 bytes). */
void tap_temp_template(char *path);

/* A unique temporary file holding text; the path is written to path
 * (at least 64 bytes). Returns 0 or -1. */
int tap_write_temp(char *path, const char *text);

#define IS_U(got, want, name) tap_is_u64((uint64_t)(got), (uint64_t)(want), name)
#define IS_I(got, want, name) tap_is_i64((int64_t)(got), (int64_t)(want), name)
#define IS_S(got, want, name) tap_is_str(got, want, name)

#endif
