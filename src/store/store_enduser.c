/*
 * store_enduser.c - End User Console accounts of a tenant and the tenant's
 * End User Console settings (migration 10; PRODUCT.md §7).
 *
 *   store_enduser_password_weak / _address / _name   the rules (pure)
 *   store_enduser_add/get/find/list/count/update/delete   accounts
 *   store_enduser_import                             a checked CSV import, all or nothing
 *   store_enduser_code_new / _code_use               the password-set code
 *   store_enduser_login_ok                           last login
 *   store_euc_get / store_euc_set                    the settings ("end_user_console")
 *
 * An account's address must be in one of the tenant's *verified* domains:
 * adding one mails a password-set code to it, and an unverified claim must
 * not let a tenant make Moat mail someone else's users. Accounts are data,
 * not configuration: never in the tenant document, kept across imports.
 * Limits: STORE_EUSER_MAX accounts per tenant, STORE_EUSER_IMPORT_MAX rows
 * per import (the caller bounds the CSV), names STORE_EUSER_NAME_MAX bytes.
 *
 * Secrets: the password is an argon2id string made by the caller; the
 * password-set code (11 characters of a 31-letter alphabet without 0/O/1/I/L,
 * about 49 bits) is kept as SHA-256 only, expires after 30 minutes and after
 * STORE_EUSER_CODE_TRIES wrong tries, and is used up when accepted. Scope: a
 * non-NULL company_id limits every lookup to that tenant; another tenant's
 * account is "not found", exactly like a missing one.
 */
#include "store/store_int.h"

#include <ctype.h>

#include <jansson.h>
#include <sodium.h>

#define EU_COLS                                                                                            \
    "id, company_id, email, name, enabled, COALESCE(pwhash, ''), created, COALESCE(last_login, 0), "        \
    "COALESCE(code_sent, 0), COALESCE(code_expires, 0)"
static const char SQL_EU_ADD[] = "INSERT INTO end_users(company_id, email, name, enabled, created) VALUES(?, ?, ?, ?, ?)";
static const char SQL_EU_GET[] = "SELECT " EU_COLS " FROM end_users WHERE id = ?";
static const char SQL_EU_GET_SCOPED[] = "SELECT " EU_COLS " FROM end_users WHERE id = ? AND company_id = ?";
static const char SQL_EU_FIND[] = "SELECT " EU_COLS " FROM end_users WHERE company_id = ? AND email = ?";
static const char SQL_EU_LIST[] = "SELECT " EU_COLS " FROM end_users WHERE company_id = ?1 AND (?2 IS NULL OR "
                                  "email LIKE ?2 ESCAPE '\\' OR name LIKE ?2 ESCAPE '\\') ORDER BY email "
                                  "LIMIT ?3 OFFSET ?4";
static const char SQL_EU_LIST_COUNT[] = "SELECT COUNT(*) FROM end_users WHERE company_id = ?1 AND (?2 IS NULL OR "
                                        "email LIKE ?2 ESCAPE '\\' OR name LIKE ?2 ESCAPE '\\')";
static const char SQL_EU_COUNT[] = "SELECT COUNT(*) FROM end_users WHERE company_id = ?";
/* the writes by id take the scope last: NULL (unbound) = any tenant */
static const char SQL_EU_UPDATE[] =
    "UPDATE end_users SET enabled = ?1, name = ?2 WHERE id = ?3 AND (?4 IS NULL OR company_id = ?4)";
static const char SQL_EU_DELETE[] = "DELETE FROM end_users WHERE id = ?1 AND (?2 IS NULL OR company_id = ?2)";
static const char SQL_EU_CODE_SET[] = "UPDATE end_users SET code_hash = ?1, code_expires = ?2, code_tries = 0, "
                                      "code_sent = ?3 WHERE id = ?4 AND (?5 IS NULL OR company_id = ?5)";
static const char SQL_EU_CODE_GET[] = "SELECT id, enabled, code_hash, COALESCE(code_expires, 0), code_tries "
                                      "FROM end_users WHERE company_id = ? AND email = ?";
static const char SQL_EU_CODE_TRY[] = "UPDATE end_users SET code_tries = code_tries + 1 WHERE id = ?";
static const char SQL_EU_CODE_DONE[] =
    "UPDATE end_users SET code_hash = NULL, code_expires = NULL, code_tries = 0, "
    "pwhash = COALESCE(?, pwhash) WHERE id = ?";
static const char SQL_EU_LOGIN[] = "UPDATE end_users SET last_login = ? WHERE id = ?";
static const char SQL_EU_VERIFIED_DOMAIN[] = "SELECT 1 FROM domains d JOIN tenants t ON t.id = d.tenant_id "
                                             "WHERE t.company_id = ? AND d.name = ? AND d.verified = 1";
static const char SQL_EU_TENANT[] = "SELECT 1 FROM tenants WHERE company_id = ?";
static const char SQL_EUC_GET[] = "SELECT euc FROM tenants WHERE company_id = ?";
static const char SQL_EUC_SET[] = "UPDATE tenants SET euc = ? WHERE company_id = ?";

/* ---------------------------------------------------------------- the rules (pure) */
const char *store_enduser_password_weak(const char *pw)
{
    size_t len = strlen(pw), chars = 0;
    bool lower = false, upper = false, digit = false;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = core_utf8_decode((const unsigned char *)pw + i, len - i, &cp);
        if (n == 0)
            return "the password is not valid UTF-8";
        if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0))
            return "the password must not contain control characters";
        lower = lower || (cp >= 'a' && cp <= 'z');
        upper = upper || (cp >= 'A' && cp <= 'Z');
        digit = digit || (cp >= '0' && cp <= '9');
        chars++;
        i += n;
    }
    if (chars < 8 || chars > 32)
        return "the password must be 8 to 32 characters long";
    if (pw[0] == ' ' || pw[len - 1] == ' ')
        return "the password must not start or end with a space";
    if (!lower || !upper || !digit)
        return "the password needs at least one lower-case letter, one upper-case letter and one digit";
    return NULL;
}

const char *store_enduser_address(const char *in, char *out, size_t outsz)
{
    const char *why = store_syntax_address(in, out, outsz);
    if (why)
        return why;
    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return NULL;
}

const char *store_enduser_name(const char *name)
{
    size_t len = strlen(name);
    if (len > STORE_EUSER_NAME_MAX)
        return "the name is too long (at most 128 bytes)";
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = core_utf8_decode((const unsigned char *)name + i, len - i, &cp);
        if (n == 0)
            return "the name is not valid UTF-8";
        if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0))
            return "the name must not contain control characters";
        i += n;
    }
    return NULL;
}

/* ---------------------------------------------------------------- rows */
static void copy_col(sqlite3_stmt *s, int col, char *out, size_t outsz)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    core_strlcpy(out, t ? (const char *)t : "", outsz);
}

static void eu_row(sqlite3_stmt *s, struct store_enduser *u)
{
    memset(u, 0, sizeof *u);
    u->id = sqlite3_column_int64(s, 0);
    copy_col(s, 1, u->company_id, sizeof u->company_id);
    copy_col(s, 2, u->email, sizeof u->email);
    copy_col(s, 3, u->name, sizeof u->name);
    u->enabled = sqlite3_column_int(s, 4) != 0;
    copy_col(s, 5, u->pwhash, sizeof u->pwhash);
    u->password_set = u->pwhash[0] != '\0';
    u->created = sqlite3_column_double(s, 6);
    u->last_login = sqlite3_column_double(s, 7);
    u->code_sent = sqlite3_column_double(s, 8);
    u->code_expires = sqlite3_column_double(s, 9);
}

/* one_row - step a single-row query: 0 found, 1 not, -1 */
static int one_row(struct store *st, sqlite3_stmt *s, struct store_enduser *out)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        eu_row(s, out);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return 1;
    store_log_error(st, "end user");
    return -1;
}

/* exists - does the single-row query with two text bindings find a row? 1, 0, -1 */
static int exists2(struct store *st, const char *sql, const char *a, const char *b)
{
    sqlite3_stmt *s = store_stmt(st, sql);
    if (!s)
        return -1;
    store_bind_text(s, 1, a);
    if (b)
        store_bind_text(s, 2, b);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

long store_enduser_count(struct store *st, const char *company_id)
{
    sqlite3_stmt *s = store_stmt(st, SQL_EU_COUNT);
    if (!s)
        return -1;
    store_bind_text(s, 1, company_id);
    long n = sqlite3_step(s) == SQLITE_ROW ? (long)sqlite3_column_int64(s, 0) : -1;
    sqlite3_reset(s);
    return n;
}

/* domain_ok - 1 when the address's domain is a verified domain of the tenant, 0 not, -1 */
static int domain_ok(struct store *st, const char *company_id, const char *email)
{
    const char *at = strrchr(email, '@');
    return at ? exists2(st, SQL_EU_VERIFIED_DOMAIN, company_id, at + 1) : 0;
}

/* insert - one new row inside the caller's transaction; its id or -1 */
static int64_t insert(struct store *st, const char *company_id, const char *email, const char *name, bool enabled,
                      double now)
{
    sqlite3_stmt *s = store_stmt(st, SQL_EU_ADD);
    if (!s)
        return -1;
    store_bind_text(s, 1, company_id);
    store_bind_text(s, 2, email);
    store_bind_text(s, 3, name ? name : "");
    sqlite3_bind_int(s, 4, enabled);
    sqlite3_bind_double(s, 5, now);
    if (store_step_done(st, s) < 0)
        return -1;
    return sqlite3_last_insert_rowid(st->db);
}

/* add_problem - why email cannot be added to the tenant (NULL: it can);
 * *dberr set on a database error */
static const char *add_problem(struct store *st, const char *company_id, const char *email, char *buf, size_t bufsz,
                               bool *dberr)
{
    int ok = domain_ok(st, company_id, email);
    if (ok < 0) {
        *dberr = true;
        return "database error";
    }
    if (ok == 0) {
        snprintf(buf, bufsz, "%s is not in a verified domain of tenant %s", email, company_id);
        return buf;
    }
    return NULL;
}

int store_enduser_add(struct store *st, struct store_enduser *u, char *err, size_t errsz)
{
    char email[STORE_EMAIL_MAX + 1];
    const char *why = store_enduser_address(u->email, email, sizeof email);
    if (!why)
        why = store_enduser_name(u->name);
    if (why) {
        snprintf(err, errsz, "%s", why);
        return 1;
    }
    if (store_begin(st) < 0)
        return -1;
    bool dberr = false;
    int ex = exists2(st, SQL_EU_TENANT, u->company_id, NULL);
    if (ex <= 0) {
        store_rollback(st);
        if (ex == 0)
            snprintf(err, errsz, "no such tenant: %s", u->company_id);
        return ex == 0 ? 1 : -1;
    }
    char buf[400];
    if ((why = add_problem(st, u->company_id, email, buf, sizeof buf, &dberr)) != NULL) {
        store_rollback(st);
        if (dberr)
            return -1;
        snprintf(err, errsz, "%s", why);
        return 1;
    }
    ex = exists2(st, SQL_EU_FIND, u->company_id, email);
    if (ex != 0) {
        store_rollback(st);
        if (ex > 0)
            snprintf(err, errsz, "an end user with the address %s exists already", email);
        return ex > 0 ? 1 : -1;
    }
    long n = store_enduser_count(st, u->company_id);
    if (n < 0)
        goto fail;
    if (n >= STORE_EUSER_MAX) {
        store_rollback(st);
        snprintf(err, errsz, "the tenant has the maximum of %d end users", STORE_EUSER_MAX);
        return 1;
    }
    u->created = core_now();
    u->id = insert(st, u->company_id, email, u->name, u->enabled, u->created);
    if (u->id < 0 || store_commit(st) < 0)
        goto fail;
    core_strlcpy(u->email, email, sizeof u->email);
    return 0;
fail:
    store_rollback(st);
    return -1;
}

int store_enduser_get(struct store *st, const char *scope, int64_t id, struct store_enduser *out)
{
    sqlite3_stmt *s = store_stmt(st, scope ? SQL_EU_GET_SCOPED : SQL_EU_GET);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, id);
    if (scope)
        store_bind_text(s, 2, scope);
    return one_row(st, s, out);
}

int store_enduser_find(struct store *st, const char *company_id, const char *email, struct store_enduser *out)
{
    sqlite3_stmt *s = store_stmt(st, SQL_EU_FIND);
    if (!s)
        return -1;
    store_bind_text(s, 1, company_id);
    store_bind_text(s, 2, email);
    return one_row(st, s, out);
}

/* like_pattern - %search% with LIKE's wildcards escaped; NULL for none */
static char *like_pattern(const char *search)
{
    if (!search || !*search)
        return NULL;
    size_t n = strlen(search);
    char *p = xmalloc(2 * n + 3), *o = p;
    *o++ = '%';
    for (size_t i = 0; i < n; i++) {
        if (search[i] == '%' || search[i] == '_' || search[i] == '\\')
            *o++ = '\\';
        *o++ = search[i];
    }
    *o++ = '%';
    *o = '\0';
    return p;
}

long store_enduser_list(struct store *st, const struct store_enduser_query *q, struct store_enduser **out,
                        long *total)
{
    *out = NULL;
    char *pat = like_pattern(q->search);
    long n = -1;
    if (store_begin_read(st) < 0) {
        free(pat);
        return -1;
    }
    sqlite3_stmt *s = store_stmt(st, SQL_EU_LIST_COUNT);
    if (!s)
        goto done;
    store_bind_text(s, 1, q->company_id);
    store_bind_text(s, 2, pat);
    long count = sqlite3_step(s) == SQLITE_ROW ? (long)sqlite3_column_int64(s, 0) : -1;
    sqlite3_reset(s);
    if (count < 0 || !(s = store_stmt(st, SQL_EU_LIST)))
        goto done;
    store_bind_text(s, 1, q->company_id);
    store_bind_text(s, 2, pat);
    sqlite3_bind_int64(s, 3, q->limit ? (sqlite3_int64)q->limit : -1);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)q->offset);
    size_t got = 0, cap = 0;
    struct store_enduser *v = NULL;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (got == cap) {
            cap = cap ? cap * 2 : 64;
            v = xrealloc(v, cap * sizeof *v);
        }
        eu_row(s, &v[got++]);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_log_error(st, "end user list");
        free(v);
        goto done;
    }
    *out = v;
    n = (long)got;
    if (total)
        *total = count;
done:
    store_commit(st);
    free(pat);
    return n;
}

/* scoped_done - step a write by id in scope: 0 done, 1 no such row (in scope), -1 */
static int scoped_done(struct store *st, sqlite3_stmt *s)
{
    if (store_step_done(st, s) < 0)
        return -1;
    return sqlite3_changes(st->db) > 0 ? 0 : 1;
}

int store_enduser_update(struct store *st, const char *scope, int64_t id, bool enabled, const char *name)
{
    sqlite3_stmt *s = store_stmt(st, SQL_EU_UPDATE);
    if (!s)
        return -1;
    sqlite3_bind_int(s, 1, enabled);
    store_bind_text(s, 2, name ? name : "");
    sqlite3_bind_int64(s, 3, id);
    store_bind_text(s, 4, scope);
    return scoped_done(st, s);
}

int store_enduser_delete(struct store *st, const char *scope, int64_t id)
{
    sqlite3_stmt *s = store_stmt(st, SQL_EU_DELETE);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, id);
    store_bind_text(s, 2, scope);
    return scoped_done(st, s);
}

int store_enduser_login_ok(struct store *st, int64_t id, double now)
{
    sqlite3_stmt *s = store_stmt(st, SQL_EU_LOGIN);
    if (!s)
        return -1;
    sqlite3_bind_double(s, 1, now);
    sqlite3_bind_int64(s, 2, id);
    return store_step_done(st, s);
}

/* ---------------------------------------------------------------- password-set code */
static const char CODE_ALPHABET[] = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"; /* no 0 O 1 I L */

/* code_hash - SHA-256 hex of the code normalised: upper-case, without
 * spaces and hyphens; false when it is not made of the alphabet */
static bool code_hash(const char *code, char out[STORE_HASH_HEX + 1])
{
    char norm[32];
    size_t n = 0;
    for (const char *p = code; *p; p++) {
        if (*p == '-' || *p == ' ')
            continue;
        char c = (char)toupper((unsigned char)*p);
        if (!strchr(CODE_ALPHABET, c) || c == '\0' || n + 1 >= sizeof norm)
            return false;
        norm[n++] = c;
    }
    if (n != STORE_EUSER_CODE_LEN - 1)
        return false;
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)norm, n);
    sodium_bin2hex(out, STORE_HASH_HEX + 1, h, sizeof h);
    sodium_memzero(norm, sizeof norm);
    return true;
}

int store_enduser_code_new(struct store *st, const char *scope, int64_t id, double now,
                           char code[STORE_EUSER_CODE_LEN + 1])
{
    if (sodium_init() < 0)
        fatal("libsodium cannot be initialised");
    for (size_t i = 0, o = 0; i < STORE_EUSER_CODE_LEN - 1; i++) {
        if (i == 5)
            code[o++] = '-';
        code[o++] = CODE_ALPHABET[randombytes_uniform(sizeof CODE_ALPHABET - 1)];
    }
    code[STORE_EUSER_CODE_LEN] = '\0';
    char hash[STORE_HASH_HEX + 1];
    if (!code_hash(code, hash))
        fatal("store: a fresh password-set code does not check");
    sqlite3_stmt *s = store_stmt(st, SQL_EU_CODE_SET);
    if (!s)
        return -1;
    store_bind_text(s, 1, hash);
    sqlite3_bind_double(s, 2, now + STORE_EUSER_CODE_TTL);
    sqlite3_bind_double(s, 3, now);
    sqlite3_bind_int64(s, 4, id);
    store_bind_text(s, 5, scope);
    return scoped_done(st, s);
}

/* code_step - one statement binding an id (and maybe a text first); 0 or -1 */
static int code_step(struct store *st, const char *sql, const char *text, bool bind_text, int64_t id)
{
    sqlite3_stmt *s = store_stmt(st, sql);
    if (!s)
        return -1;
    int i = 1;
    if (bind_text)
        store_bind_text(s, i++, text);
    sqlite3_bind_int64(s, i, id);
    return store_step_done(st, s);
}

enum store_code_result store_enduser_code_use(struct store *st, const char *company_id, const char *email,
                                              const char *code, const char *pwhash, double now)
{
    char want[STORE_HASH_HEX + 1];
    bool well_formed = code_hash(code, want);
    if (store_begin(st) < 0)
        return STORE_CODE_ERROR;
    sqlite3_stmt *s = store_stmt(st, SQL_EU_CODE_GET);
    if (!s)
        goto fail;
    store_bind_text(s, 1, company_id);
    store_bind_text(s, 2, email);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        if (rc != SQLITE_DONE)
            goto fail;
        store_rollback(st);
        return STORE_CODE_NONE;
    }
    int64_t id = sqlite3_column_int64(s, 0);
    bool enabled = sqlite3_column_int(s, 1) != 0;
    char have[STORE_HASH_HEX + 1];
    copy_col(s, 2, have, sizeof have);
    double expires = sqlite3_column_double(s, 3);
    int tries = sqlite3_column_int(s, 4);
    sqlite3_reset(s);
    enum store_code_result res;
    if (!have[0])
        res = STORE_CODE_NONE;
    else if (!enabled)
        res = STORE_CODE_DISABLED;
    else if (expires <= now || tries >= STORE_EUSER_CODE_TRIES)
        res = STORE_CODE_EXPIRED;
    else if (!well_formed || sodium_memcmp(want, have, STORE_HASH_HEX) != 0)
        res = STORE_CODE_WRONG;
    else
        res = STORE_CODE_OK;
    if (res == STORE_CODE_WRONG && code_step(st, SQL_EU_CODE_TRY, NULL, false, id) < 0)
        goto fail;
    if (res == STORE_CODE_OK && code_step(st, SQL_EU_CODE_DONE, pwhash, true, id) < 0)
        goto fail;
    if (store_commit(st) < 0)
        goto fail;
    return res;
fail:
    store_rollback(st);
    return STORE_CODE_ERROR;
}

/* ---------------------------------------------------------------- CSV import */
static void row_error(struct store_enduser_import *res, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void row_error(struct store_enduser_import *res, unsigned line, const char *fmt, ...)
{
    if (res->nerrors++ >= STORE_EUSER_ERRORS_MAX)
        return;
    if (!res->errors)
        res->errors = xcalloc(STORE_EUSER_ERRORS_MAX, sizeof *res->errors);
    struct store_enduser_row_error *e = &res->errors[res->nerrors - 1];
    e->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->error, sizeof e->error, fmt, ap);
    va_end(ap);
}

void store_enduser_import_free(struct store_enduser_import *res)
{
    free(res->created_ids);
    free(res->errors);
    memset(res, 0, sizeof *res);
}

/* import_row - apply one checked row inside the transaction; 0 or -1 */
static int import_row(struct store *st, const char *company_id, const struct store_enduser_row *r,
                      const struct store_enduser *old, bool found, double now, struct store_enduser_import *res)
{
    if (!found) {
        int64_t id = insert(st, company_id, r->email, r->name, r->enabled != 0, now);
        if (id < 0)
            return -1;
        res->created_ids[res->created++] = id;
        return 0;
    }
    const char *name = r->name ? r->name : old->name;
    bool enabled = r->enabled < 0 ? old->enabled : r->enabled != 0;
    if (strcmp(name, old->name) == 0 && enabled == old->enabled) {
        res->unchanged++;
        return 0;
    }
    sqlite3_stmt *s = store_stmt(st, SQL_EU_UPDATE);
    if (!s)
        return -1;
    sqlite3_bind_int(s, 1, enabled);
    store_bind_text(s, 2, name);
    sqlite3_bind_int64(s, 3, old->id);
    if (store_step_done(st, s) < 0)
        return -1;
    res->updated++;
    return 0;
}

int store_enduser_import(struct store *st, const char *company_id, const struct store_enduser_row *rows, size_t n,
                         struct store_enduser_import *res)
{
    memset(res, 0, sizeof *res);
    if (n > STORE_EUSER_IMPORT_MAX) {
        row_error(res, 0, "too many rows (%zu; at most %d per import)", n, STORE_EUSER_IMPORT_MAX);
        return 1;
    }
    if (store_begin(st) < 0)
        return -1;
    struct store_enduser *old = xcalloc(n ? n : 1, sizeof *old);
    bool *found = xcalloc(n ? n : 1, sizeof *found);
    size_t fresh = 0;
    char buf[400];
    /* check every row first: nothing is written when one is wrong */
    for (size_t i = 0; i < n; i++) {
        bool dberr = false;
        const char *why = add_problem(st, company_id, rows[i].email, buf, sizeof buf, &dberr);
        if (dberr)
            goto fail;
        if (why) {
            row_error(res, rows[i].line, "%s", why);
            continue;
        }
        int rc = store_enduser_find(st, company_id, rows[i].email, &old[i]);
        if (rc < 0)
            goto fail;
        found[i] = rc == 0;
        fresh += !found[i];
    }
    long have = store_enduser_count(st, company_id);
    if (have < 0)
        goto fail;
    if (!res->nerrors && (size_t)have + fresh > STORE_EUSER_MAX)
        row_error(res, 0, "the tenant would have %zu end users (at most %d)", (size_t)have + fresh,
                  STORE_EUSER_MAX);
    if (res->nerrors) {
        store_rollback(st);
        free(old);
        free(found);
        return 1;
    }
    res->created_ids = xcalloc(fresh ? fresh : 1, sizeof *res->created_ids);
    double now = core_now();
    for (size_t i = 0; i < n; i++)
        if (import_row(st, company_id, &rows[i], &old[i], found[i], now, res) < 0)
            goto fail;
    if (store_commit(st) < 0)
        goto fail;
    free(old);
    free(found);
    return 0;
fail:
    store_rollback(st);
    free(old);
    free(found);
    store_enduser_import_free(res);
    return -1;
}

/* ---------------------------------------------------------------- CSV (pure) */
static const char *const CSV_COLS[] = {"email", "name", "enabled", NULL};
static const char *const CSV_READONLY[] = {"password_set", "created", "last_login", NULL};

/* trim - s without leading / trailing spaces and tabs (in place) */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* parse_bool - "true/yes/1/enabled" 1, "false/no/0/disabled" 0, "" -1, else -2 */
static int parse_bool(const char *v)
{
    static const char *const yes[] = {"true", "yes", "1", "enabled", "on", NULL};
    static const char *const no[] = {"false", "no", "0", "disabled", "off", NULL};
    if (!*v)
        return -1;
    for (size_t i = 0; yes[i]; i++)
        if (strcasecmp(v, yes[i]) == 0)
            return 1;
    for (size_t i = 0; no[i]; i++)
        if (strcasecmp(v, no[i]) == 0)
            return 0;
    return -2;
}

struct dup_key {
    const char *email;
    size_t idx;
};

static int dup_cmp(const void *a, const void *b)
{
    const struct dup_key *x = a, *y = b;
    int c = strcmp(x->email, y->email);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* csv_header - map the header's columns: col[i] = index in CSV_COLS, or -1
 * for an ignored (read-only export) column; 0 or -1 after an error */
static int csv_header(char **f, size_t nf, int *col, struct store_enduser_import *res, unsigned line)
{
    bool seen[3] = {false, false, false};
    for (size_t i = 0; i < nf; i++) {
        char *name = trim(f[i]);
        col[i] = -2;
        for (int k = 0; CSV_COLS[k]; k++)
            if (strcasecmp(name, CSV_COLS[k]) == 0)
                col[i] = k;
        for (int k = 0; CSV_READONLY[k]; k++)
            if (strcasecmp(name, CSV_READONLY[k]) == 0)
                col[i] = -1;
        if (col[i] == -2) {
            char e[80];
            row_error(res, line, "unknown column \"%s\" (the header row names the columns: email, and "
                                 "optionally name and enabled)", log_escape(name, strlen(name), e, sizeof e));
            return -1;
        }
        if (col[i] >= 0 && seen[col[i]]) {
            row_error(res, line, "column %s appears twice", CSV_COLS[col[i]]);
            return -1;
        }
        if (col[i] >= 0)
            seen[col[i]] = true;
    }
    if (!seen[0]) {
        row_error(res, line, "the header row has no email column (expected: email,name,enabled)");
        return -1;
    }
    return 0;
}

/* csv_row - one data record into r (strings owned by r); false after an error */
static bool csv_row(char **f, size_t nf, const int *col, size_t ncol, unsigned line, struct store_enduser_row *r,
                    struct store_enduser_import *res)
{
    memset(r, 0, sizeof *r);
    r->line = line;
    r->enabled = -1;
    if (nf > ncol) {
        row_error(res, line, "%zu fields, but the header row has %zu", nf, ncol);
        return false;
    }
    for (size_t i = 0; i < nf; i++) {
        char *v = trim(f[i]);
        if (col[i] == 0) {
            char email[STORE_EMAIL_MAX + 1];
            const char *why = store_enduser_address(v, email, sizeof email);
            if (why) {
                char e[80];
                row_error(res, line, "email \"%s\": %s", log_escape(v, strlen(v), e, sizeof e), why);
                return false;
            }
            r->email = xstrdup(email);
        } else if (col[i] == 1) {
            if (v[0] == '\'' && v[1] && strchr("=+-@", v[1]))
                v++; /* the export's guard against spreadsheet formulas */
            const char *why = store_enduser_name(v);
            if (why) {
                row_error(res, line, "name: %s", why);
                return false;
            }
            r->name = xstrdup(v);
        } else if (col[i] == 2) {
            r->enabled = parse_bool(v);
            if (r->enabled == -2) {
                row_error(res, line, "enabled: must be true or false (or empty)");
                return false;
            }
        }
    }
    if (!r->email) { /* a short row (missing fields are absent) without its address */
        row_error(res, line, "email: missing");
        return false;
    }
    return true;
}

/* store_enduser_rows_free_strings - the strings of one row */
static void store_enduser_rows_free_strings(struct store_enduser_row *r)
{
    free((char *)r->email);
    free((char *)r->name);
    r->email = r->name = NULL;
}

void store_enduser_rows_free(struct store_enduser_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)rows[i].email);
        free((char *)rows[i].name);
    }
    free(rows);
}

int store_enduser_csv_parse(const char *csv, size_t len, struct store_enduser_row **out, size_t *nout,
                            struct store_enduser_import *res)
{
    memset(res, 0, sizeof *res);
    *out = NULL;
    *nout = 0;
    if (len > STORE_EUSER_CSV_MAX) {
        row_error(res, 0, "the file is too large (%zu bytes; at most %d)", len, STORE_EUSER_CSV_MAX);
        return 1;
    }
    struct core_csv c;
    core_csv_init(&c, csv, len);
    char *f[CORE_CSV_FIELDS_MAX];
    int col[CORE_CSV_FIELDS_MAX];
    size_t nf, ncol = 0, n = 0, cap = 0;
    struct store_enduser_row *rows = NULL;
    enum core_csv_rc rc = core_csv_next(&c, f, CORE_CSV_FIELDS_MAX, &nf);
    if (rc == CORE_CSV_END)
        row_error(res, 1, "the file is empty (expected a header row: email,name,enabled)");
    else if (rc != CORE_CSV_OK)
        row_error(res, c.line, "%s", core_csv_strerror(rc));
    else if (csv_header(f, nf, col, res, c.line) == 0)
        ncol = nf;
    while (ncol && res->nerrors < STORE_EUSER_ERRORS_MAX) { /* report every row error, up to the limit */
        rc = core_csv_next(&c, f, CORE_CSV_FIELDS_MAX, &nf);
        if (rc == CORE_CSV_END)
            break;
        if (rc != CORE_CSV_OK) {
            row_error(res, c.line, "%s", core_csv_strerror(rc));
            break;
        }
        if (n == STORE_EUSER_IMPORT_MAX) {
            row_error(res, c.line, "too many rows (at most %d per import)", STORE_EUSER_IMPORT_MAX);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            rows = xrealloc(rows, cap * sizeof *rows);
        }
        if (csv_row(f, nf, col, ncol, c.line, &rows[n], res))
            n++;
        else
            store_enduser_rows_free_strings(&rows[n]);
    }
    core_csv_free(&c);
    if (!res->nerrors && n > 1) {
        struct dup_key *k = xcalloc(n, sizeof *k);
        for (size_t i = 0; i < n; i++)
            k[i] = (struct dup_key){rows[i].email, i};
        qsort(k, n, sizeof *k, dup_cmp);
        for (size_t i = 1; i < n; i++)
            if (strcmp(k[i].email, k[i - 1].email) == 0)
                row_error(res, rows[k[i].idx].line, "%s appears twice (first on line %u)", k[i].email,
                          rows[k[i - 1].idx].line);
        free(k);
    }
    if (res->nerrors) {
        store_enduser_rows_free(rows, n);
        return 1;
    }
    *out = rows;
    *nout = n;
    return 0;
}

int store_enduser_csv_write(struct buf *b, const struct store_enduser *u, size_t n)
{
    int rc = buf_append_str(b, "email,name,enabled,password_set,created,last_login\r\n");
    for (size_t i = 0; i < n && rc == 0; i++) {
        char created[40] = "", login[40] = "";
        store_iso_time(u[i].created, created, sizeof created);
        if (u[i].last_login > 0)
            store_iso_time(u[i].last_login, login, sizeof login);
        const char *f[] = {u[i].email, u[i].name, u[i].enabled ? "true" : "false",
                           u[i].password_set ? "true" : "false", created, login};
        for (size_t k = 0; k < 6 && rc == 0; k++)
            rc = core_csv_field(b, f[k], k == 5);
    }
    return rc;
}

/* ---------------------------------------------------------------- settings */
int store_euc_get(struct store *st, const char *company_id, json_t **out, struct store_euc *e)
{
    *out = NULL;
    sqlite3_stmt *s = store_stmt(st, SQL_EUC_GET);
    if (!s)
        return -1;
    store_bind_text(s, 1, company_id);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        return rc == SQLITE_DONE ? 1 : -1;
    }
    const unsigned char *t = sqlite3_column_text(s, 0);
    json_t *j = t ? json_loads((const char *)t, 0, NULL) : NULL;
    sqlite3_reset(s);
    if (!j) {
        log_error("store corrupt euc column tenant=%s", company_id);
        j = store_euc_default();
    }
    if (e) {
        memset(e, 0, sizeof *e);
        e->enabled = json_is_true(json_object_get(j, "enabled"));
        e->local_accounts = json_is_true(json_object_get(j, "local_accounts"));
        e->enforce_2fa = json_is_true(json_object_get(j, "enforce_2fa"));
        json_t *c = json_object_get(j, "quarantine_categories");
        for (size_t i = 0; i < json_array_size(c) && e->ncategories < 8; i++)
            core_strlcpy(e->categories[e->ncategories++], json_string_value(json_array_get(c, i)),
                         sizeof e->categories[0]);
    }
    *out = j;
    return 0;
}

int store_euc_set(struct store *st, const char *company_id, const json_t *canon, const char *actor)
{
    char *text = json_dumps(canon, JSON_COMPACT);
    if (!text)
        fatal("out of memory");
    if (store_begin(st) < 0) {
        free(text);
        return -1;
    }
    json_t *old = NULL;
    int rc = store_euc_get(st, company_id, &old, NULL);
    if (rc != 0) {
        store_rollback(st);
        free(text);
        return rc;
    }
    bool same = json_equal(old, canon);
    json_decref(old);
    sqlite3_stmt *s;
    if (!same) {
        if (!(s = store_stmt(st, SQL_EUC_SET)))
            goto fail;
        store_bind_text(s, 1, text);
        store_bind_text(s, 2, company_id);
        if (store_step_done(st, s) < 0 || store_version_bump(st) < 0 ||
            store_audit(st, actor, "euc.settings", company_id, text) < 0)
            goto fail;
    }
    if (store_commit(st) < 0)
        goto fail;
    free(text);
    return 0;
fail:
    store_rollback(st);
    free(text);
    return -1;
}
