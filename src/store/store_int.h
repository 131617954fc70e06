/*
 * store_int.h - internals shared by the store/ sources (not for other modules).
 *
 *   struct store        one SQLite connection and its prepared-statement cache
 *   store_stmt          a cached prepared statement for a constant SQL string
 *   store_begin/...     transactions (BEGIN IMMEDIATE: writers queue on busy_timeout)
 *   store_syntax_*      the syntax checks of the tenant document (store_syntax.c)
 */
#ifndef MOAT_STORE_INT_H
#define MOAT_STORE_INT_H

#include <sqlite3.h>

#include "store/store.h"

#define STORE_STMT_CACHE 256
#define STORE_BUSY_TIMEOUT_MS 10000

struct store_cached_stmt {
    const char *sql; /* identity: the address of a constant string */
    sqlite3_stmt *stmt;
};

struct store {
    sqlite3 *db;
    char *path;
    struct store_cached_stmt cache[STORE_STMT_CACHE];
    size_t ncache;
};

/* store_stmt - the prepared statement for sql (a string constant; cached by
 * its address), reset and with bindings cleared; NULL on error (logged).
 * Callers sqlite3_reset it when done so no read transaction stays open. */
sqlite3_stmt *store_stmt(struct store *st, const char *sql);
/* store_step_done - step a statement that returns no rows and reset it;
 * 0 or -1 (logged) */
int store_step_done(struct store *st, sqlite3_stmt *s);
int store_begin(struct store *st);
/* store_begin_read - a deferred transaction: one consistent snapshot */
int store_begin_read(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);
/* store_bind_text - bind a string or NULL */
int store_bind_text(sqlite3_stmt *s, int idx, const char *v);
/* store_col_dup - column as a new string, NULL for SQL NULL */
char *store_col_dup(sqlite3_stmt *s, int col);
/* store_log_error - log the connection's last error with context */
void store_log_error(struct store *st, const char *what);
/* store_version_bump - config version + 1 inside the caller's transaction */
int store_version_bump(struct store *st);
/* store_audit - append an audit_log row inside the caller's transaction */
int store_audit(struct store *st, const char *actor, const char *action, const char *company_id,
                const char *detail);
/* store_random_hex - 2*nbytes hex digits of fresh randomness into out */
void store_random_hex(char *out, size_t nbytes);
/* store_iso_time - "2024-01-02T03:04:05.123Z" (UTC) */
void store_iso_time(double t, char *out, size_t outsz);

/* ---------------------------------------------------------------- syntax (store_syntax.c) */
/* Each returns NULL when valid (writing the normalised form to out) or a
 * reason. Normalised: domains lower-case ASCII, IDN labels as punycode. */
#define STORE_DOMAIN_MAX 253
#define STORE_ADDR_MAX 254
const char *store_syntax_domain(const char *in, bool need_dot, char *out, size_t outsz);
const char *store_syntax_address(const char *in, char *out, size_t outsz);
/* address or "*@domain" */
const char *store_syntax_address_pattern(const char *in, char *out, size_t outsz);
/* an IPv4/IPv6 address or CIDR (host bits must be zero) */
const char *store_syntax_cidr(const char *in, char *out, size_t outsz);
/* an IP address or a host name */
const char *store_syntax_host(const char *in, char *out, size_t outsz);
/* "3-63 letters, digits, hyphen", lower-cased */
const char *store_syntax_company_id(const char *in, char *out, size_t outsz);
/* store_punycode_encode - RFC 3492 of code points; -1 if out is too small */
int store_punycode_encode(const uint32_t *cp, size_t n, char *out, size_t outsz);

#endif
