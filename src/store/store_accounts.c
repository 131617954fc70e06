/*
 * store_accounts.c - console and REST API identities (migration 8): accounts
 * with roles, TOTP state and login throttling, recovery codes, sessions, API
 * tokens, per-tenant security settings, and reading / appending the audit log.
 *
 *   store_account_add/get/find/list/update/delete   accounts
 *   store_account_login_failed/_ok                  lock-out bookkeeping
 *   store_account_totp_step                         TOTP replay guard
 *   store_recovery_set/use/left                     recovery codes (hashed)
 *   store_session_*                                 sessions (ID hashed)
 *   store_token_*                                   API tokens (hashed)
 *   store_tenant_exists/list, store_tenant_*totp*   tenant settings
 *   store_audit_add/list/free                       the audit log
 *
 * Secrets never reach this file in clear: the caller hashes passwords
 * (argon2id), session IDs, tokens and recovery codes (SHA-256) first; so a
 * copy of the database gives no usable session or token. Scope: a non-NULL
 * company_id limits a lookup to that tenant, and another tenant's row is
 * "not found", exactly like a missing one (tenant isolation at the store).
 */
#include "store/store_int.h"

/* ---------------------------------------------------------------- accounts */
#define ACCOUNT_COLS                                                                                     \
    "id, email, COALESCE(company_id, ''), role, pwhash, disabled, COALESCE(totp_secret, ''), totp_enabled, " \
    "totp_last_step, failures, locked_until, COALESCE(last_login, 0), created"
static const char SQL_ACC_ADD[] = "INSERT INTO accounts(email, company_id, role, pwhash, disabled, created) "
                                  "VALUES(?, ?, ?, ?, ?, ?)";
static const char SQL_ACC_EMAIL_TAKEN[] = "SELECT 1 FROM accounts WHERE email = ?";
static const char SQL_ACC_GET[] = "SELECT " ACCOUNT_COLS " FROM accounts WHERE id = ?";
static const char SQL_ACC_GET_SCOPED[] = "SELECT " ACCOUNT_COLS " FROM accounts WHERE id = ? AND company_id = ?";
static const char SQL_ACC_FIND[] = "SELECT " ACCOUNT_COLS " FROM accounts WHERE email = ?";
static const char SQL_ACC_LIST[] = "SELECT " ACCOUNT_COLS " FROM accounts ORDER BY company_id IS NOT NULL, "
                                   "company_id, email";
static const char SQL_ACC_LIST_SCOPED[] = "SELECT " ACCOUNT_COLS " FROM accounts WHERE company_id = ? ORDER BY email";
static const char SQL_ACC_UPDATE[] = "UPDATE accounts SET role = ?, disabled = ?, pwhash = ?, totp_secret = ?, "
                                     "totp_enabled = ?, totp_last_step = ? WHERE id = ?";
static const char SQL_ACC_DELETE[] = "DELETE FROM accounts WHERE id = ?";
static const char SQL_ACC_DELETE_SCOPED[] = "DELETE FROM accounts WHERE id = ? AND company_id = ?";
static const char SQL_ACC_FAILED[] =
    "UPDATE accounts SET failures = failures + 1 WHERE id = ? RETURNING failures";
static const char SQL_ACC_LOCK[] = "UPDATE accounts SET failures = 0, locked_until = ? WHERE id = ?";
static const char SQL_ACC_OK[] = "UPDATE accounts SET failures = 0, locked_until = 0, last_login = ? WHERE id = ?";
static const char SQL_ACC_STEP[] =
    "UPDATE accounts SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?";
static const char SQL_TENANT_EXISTS[] = "SELECT 1 FROM tenants WHERE company_id = ?";
static const char SQL_TENANT_LIST[] = "SELECT company_id FROM tenants ORDER BY company_id";

static void copy_col(sqlite3_stmt *s, int col, char *out, size_t outsz)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    core_strlcpy(out, t ? (const char *)t : "", outsz);
}

static void account_row(sqlite3_stmt *s, struct store_account *a)
{
    memset(a, 0, sizeof *a);
    a->id = sqlite3_column_int64(s, 0);
    copy_col(s, 1, a->email, sizeof a->email);
    copy_col(s, 2, a->company_id, sizeof a->company_id);
    const unsigned char *role = sqlite3_column_text(s, 3);
    a->full = role && strcmp((const char *)role, "full") == 0;
    copy_col(s, 4, a->pwhash, sizeof a->pwhash);
    a->disabled = sqlite3_column_int(s, 5) != 0;
    copy_col(s, 6, a->totp_secret, sizeof a->totp_secret);
    a->totp_enabled = sqlite3_column_int(s, 7) != 0;
    a->totp_last_step = sqlite3_column_int64(s, 8);
    a->failures = (unsigned)sqlite3_column_int(s, 9);
    a->locked_until = sqlite3_column_double(s, 10);
    a->last_login = sqlite3_column_double(s, 11);
    a->created = sqlite3_column_double(s, 12);
}

/* one_account - step a prepared single-row account query */
static int one_account(struct store *st, sqlite3_stmt *s, struct store_account *out)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        account_row(s, out);
        sqlite3_reset(s);
        return 0;
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE)
        return 1;
    store_log_error(st, "account");
    return -1;
}

int store_tenant_exists(struct store *st, const char *company_id)
{
    sqlite3_stmt *s = store_stmt(st, SQL_TENANT_EXISTS);
    if (!s)
        return -1;
    store_bind_text(s, 1, company_id);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

long store_tenant_list(struct store *st, char ***out)
{
    *out = NULL;
    sqlite3_stmt *s = store_stmt(st, SQL_TENANT_LIST);
    if (!s)
        return -1;
    size_t n = 0, cap = 0;
    char **v = NULL;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            v = xrealloc(v, cap * sizeof *v);
        }
        v[n++] = store_col_dup(s, 0);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        for (size_t i = 0; i < n; i++)
            free(v[i]);
        free(v);
        return -1;
    }
    *out = v;
    return (long)n;
}

int store_account_add(struct store *st, struct store_account *a, char *err, size_t errsz)
{
    if (store_begin(st) < 0)
        return -1;
    sqlite3_stmt *s;
    if (a->company_id[0]) {
        int ex = store_tenant_exists(st, a->company_id);
        if (ex <= 0) {
            store_rollback(st);
            if (ex == 0)
                snprintf(err, errsz, "no such tenant: %s", a->company_id);
            return ex == 0 ? 1 : -1;
        }
    }
    if (!(s = store_stmt(st, SQL_ACC_EMAIL_TAKEN)))
        goto fail;
    store_bind_text(s, 1, a->email);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW) {
        store_rollback(st);
        snprintf(err, errsz, "an account with this e-mail address exists already");
        return 1;
    }
    if (!(s = store_stmt(st, SQL_ACC_ADD)))
        goto fail;
    a->created = core_now();
    store_bind_text(s, 1, a->email);
    store_bind_text(s, 2, a->company_id[0] ? a->company_id : NULL);
    store_bind_text(s, 3, a->full ? "full" : "read-only");
    store_bind_text(s, 4, a->pwhash);
    sqlite3_bind_int(s, 5, a->disabled);
    sqlite3_bind_double(s, 6, a->created);
    if (store_step_done(st, s) < 0)
        goto fail;
    a->id = sqlite3_last_insert_rowid(st->db);
    if (store_commit(st) < 0)
        goto fail;
    return 0;
fail:
    store_rollback(st);
    return -1;
}

int store_account_get(struct store *st, const char *scope, int64_t id, struct store_account *out)
{
    sqlite3_stmt *s = store_stmt(st, scope ? SQL_ACC_GET_SCOPED : SQL_ACC_GET);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, id);
    if (scope)
        store_bind_text(s, 2, scope);
    return one_account(st, s, out);
}

int store_account_find(struct store *st, const char *email, struct store_account *out)
{
    sqlite3_stmt *s = store_stmt(st, SQL_ACC_FIND);
    if (!s)
        return -1;
    store_bind_text(s, 1, email);
    return one_account(st, s, out);
}

long store_account_list(struct store *st, const char *scope, struct store_account **out)
{
    *out = NULL;
    sqlite3_stmt *s = store_stmt(st, scope ? SQL_ACC_LIST_SCOPED : SQL_ACC_LIST);
    if (!s)
        return -1;
    if (scope)
        store_bind_text(s, 1, scope);
    size_t n = 0, cap = 0;
    struct store_account *v = NULL;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            v = xrealloc(v, cap * sizeof *v);
        }
        account_row(s, &v[n++]);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        free(v);
        store_log_error(st, "account list");
        return -1;
    }
    *out = v;
    return (long)n;
}

int store_account_update(struct store *st, const struct store_account *a)
{
    sqlite3_stmt *s = store_stmt(st, SQL_ACC_UPDATE);
    if (!s)
        return -1;
    store_bind_text(s, 1, a->full ? "full" : "read-only");
    sqlite3_bind_int(s, 2, a->disabled);
    store_bind_text(s, 3, a->pwhash);
    store_bind_text(s, 4, a->totp_secret[0] ? a->totp_secret : NULL);
    sqlite3_bind_int(s, 5, a->totp_enabled);
    sqlite3_bind_int64(s, 6, a->totp_last_step);
    sqlite3_bind_int64(s, 7, a->id);
    return store_step_done(st, s);
}

int store_account_delete(struct store *st, const char *scope, int64_t id)
{
    sqlite3_stmt *s = store_stmt(st, scope ? SQL_ACC_DELETE_SCOPED : SQL_ACC_DELETE);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, id);
    if (scope)
        store_bind_text(s, 2, scope);
    if (store_step_done(st, s) < 0)
        return -1;
    return sqlite3_changes(st->db) > 0 ? 0 : 1;
}

int store_account_login_failed(struct store *st, int64_t id, double now, unsigned max_failures, double lockout)
{
    sqlite3_stmt *s = store_stmt(st, SQL_ACC_FAILED);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, id);
    int64_t failures = 0;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        failures = sqlite3_column_int64(s, 0);
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_log_error(st, "login failed");
        return -1;
    }
    if (failures < (int64_t)max_failures)
        return 0;
    if (!(s = store_stmt(st, SQL_ACC_LOCK)))
        return -1;
    sqlite3_bind_double(s, 1, now + lockout);
    sqlite3_bind_int64(s, 2, id);
    return store_step_done(st, s) < 0 ? -1 : 1;
}

int store_account_login_ok(struct store *st, int64_t id, double now)
{
    sqlite3_stmt *s = store_stmt(st, SQL_ACC_OK);
    if (!s)
        return -1;
    sqlite3_bind_double(s, 1, now);
    sqlite3_bind_int64(s, 2, id);
    return store_step_done(st, s);
}

int store_account_totp_step(struct store *st, int64_t id, int64_t step)
{
    sqlite3_stmt *s = store_stmt(st, SQL_ACC_STEP);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, step);
    sqlite3_bind_int64(s, 2, id);
    sqlite3_bind_int64(s, 3, step);
    if (store_step_done(st, s) < 0)
        return -1;
    return sqlite3_changes(st->db) > 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- recovery codes */
static const char SQL_REC_CLEAR[] = "DELETE FROM account_recovery WHERE account_id = ?";
static const char SQL_REC_ADD[] = "INSERT OR IGNORE INTO account_recovery(account_id, code_hash) VALUES(?, ?)";
static const char SQL_REC_USE[] =
    "UPDATE account_recovery SET used = ? WHERE account_id = ? AND code_hash = ? AND used IS NULL";
static const char SQL_REC_LEFT[] = "SELECT COUNT(*) FROM account_recovery WHERE account_id = ? AND used IS NULL";

int store_recovery_set(struct store *st, int64_t id, const char (*hashes)[STORE_HASH_HEX + 1], size_t n)
{
    if (store_begin(st) < 0)
        return -1;
    sqlite3_stmt *s = store_stmt(st, SQL_REC_CLEAR);
    if (!s)
        goto fail;
    sqlite3_bind_int64(s, 1, id);
    if (store_step_done(st, s) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if (!(s = store_stmt(st, SQL_REC_ADD)))
            goto fail;
        sqlite3_bind_int64(s, 1, id);
        store_bind_text(s, 2, hashes[i]);
        if (store_step_done(st, s) < 0)
            goto fail;
    }
    if (store_commit(st) < 0)
        goto fail;
    return 0;
fail:
    store_rollback(st);
    return -1;
}

int store_recovery_use(struct store *st, int64_t id, const char *hash, double now)
{
    sqlite3_stmt *s = store_stmt(st, SQL_REC_USE);
    if (!s)
        return -1;
    sqlite3_bind_double(s, 1, now);
    sqlite3_bind_int64(s, 2, id);
    store_bind_text(s, 3, hash);
    if (store_step_done(st, s) < 0)
        return -1;
    return sqlite3_changes(st->db) > 0 ? 0 : 1;
}

long store_recovery_left(struct store *st, int64_t id)
{
    sqlite3_stmt *s = store_stmt(st, SQL_REC_LEFT);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, id);
    long n = -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        n = (long)sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return n;
}

/* ---------------------------------------------------------------- sessions */
static const char SQL_SES_ADD[] =
    "INSERT INTO sessions(id_hash, account_id, csrf, created, last_seen, client_ip) VALUES(?, ?, ?, ?, ?, ?)";
static const char SQL_SES_GET[] = "SELECT account_id, csrf, created, last_seen FROM sessions WHERE id_hash = ?";
static const char SQL_SES_TOUCH[] = "UPDATE sessions SET last_seen = ? WHERE id_hash = ?";
static const char SQL_SES_DELETE[] = "DELETE FROM sessions WHERE id_hash = ?";
static const char SQL_SES_DELETE_ACC[] = "DELETE FROM sessions WHERE account_id = ? AND id_hash IS NOT ?";
static const char SQL_SES_PURGE[] = "DELETE FROM sessions WHERE last_seen < ? OR created < ?";

int store_session_add(struct store *st, const struct store_session *ses, const char *client_ip)
{
    sqlite3_stmt *s = store_stmt(st, SQL_SES_ADD);
    if (!s)
        return -1;
    store_bind_text(s, 1, ses->id_hash);
    sqlite3_bind_int64(s, 2, ses->account_id);
    store_bind_text(s, 3, ses->csrf);
    sqlite3_bind_double(s, 4, ses->created);
    sqlite3_bind_double(s, 5, ses->last_seen);
    store_bind_text(s, 6, client_ip);
    return store_step_done(st, s);
}

int store_session_get(struct store *st, const char *id_hash, struct store_session *out)
{
    sqlite3_stmt *s = store_stmt(st, SQL_SES_GET);
    if (!s)
        return -1;
    store_bind_text(s, 1, id_hash);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        core_strlcpy(out->id_hash, id_hash, sizeof out->id_hash);
        out->account_id = sqlite3_column_int64(s, 0);
        copy_col(s, 1, out->csrf, sizeof out->csrf);
        out->created = sqlite3_column_double(s, 2);
        out->last_seen = sqlite3_column_double(s, 3);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : -1;
}

int store_session_touch(struct store *st, const char *id_hash, double now)
{
    sqlite3_stmt *s = store_stmt(st, SQL_SES_TOUCH);
    if (!s)
        return -1;
    sqlite3_bind_double(s, 1, now);
    store_bind_text(s, 2, id_hash);
    return store_step_done(st, s);
}

int store_session_delete(struct store *st, const char *id_hash)
{
    sqlite3_stmt *s = store_stmt(st, SQL_SES_DELETE);
    if (!s)
        return -1;
    store_bind_text(s, 1, id_hash);
    return store_step_done(st, s);
}

int store_session_delete_account(struct store *st, int64_t account_id, const char *except_hash)
{
    sqlite3_stmt *s = store_stmt(st, SQL_SES_DELETE_ACC);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, account_id);
    store_bind_text(s, 2, except_hash);
    return store_step_done(st, s);
}

long store_session_purge(struct store *st, double idle_before, double created_before)
{
    sqlite3_stmt *s = store_stmt(st, SQL_SES_PURGE);
    if (!s)
        return -1;
    sqlite3_bind_double(s, 1, idle_before);
    sqlite3_bind_double(s, 2, created_before);
    if (store_step_done(st, s) < 0)
        return -1;
    return (long)sqlite3_changes(st->db);
}

/* ---------------------------------------------------------------- API tokens */
#define TOKEN_COLS "id, token_hash, name, COALESCE(company_id, ''), role, disabled, created, COALESCE(last_used, 0), " \
                   "COALESCE(created_by, '')"
static const char SQL_TOK_ADD[] = "INSERT INTO api_tokens(token_hash, name, company_id, role, disabled, created, "
                                  "created_by) VALUES(?, ?, ?, ?, 0, ?, ?)";
static const char SQL_TOK_FIND[] = "SELECT " TOKEN_COLS " FROM api_tokens WHERE token_hash = ?";
static const char SQL_TOK_LIST[] = "SELECT " TOKEN_COLS " FROM api_tokens ORDER BY id";
static const char SQL_TOK_LIST_SCOPED[] = "SELECT " TOKEN_COLS " FROM api_tokens WHERE company_id = ? ORDER BY id";
static const char SQL_TOK_DISABLE[] = "UPDATE api_tokens SET disabled = ? WHERE id = ?";
static const char SQL_TOK_DISABLE_SCOPED[] = "UPDATE api_tokens SET disabled = ? WHERE id = ? AND company_id = ?";
static const char SQL_TOK_DELETE[] = "DELETE FROM api_tokens WHERE id = ?";
static const char SQL_TOK_DELETE_SCOPED[] = "DELETE FROM api_tokens WHERE id = ? AND company_id = ?";
static const char SQL_TOK_TOUCH[] = "UPDATE api_tokens SET last_used = ? WHERE id = ?";

static void token_row(sqlite3_stmt *s, struct store_token *t)
{
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(s, 0);
    copy_col(s, 1, t->hash, sizeof t->hash);
    copy_col(s, 2, t->name, sizeof t->name);
    copy_col(s, 3, t->company_id, sizeof t->company_id);
    const unsigned char *role = sqlite3_column_text(s, 4);
    t->full = role && strcmp((const char *)role, "full") == 0;
    t->disabled = sqlite3_column_int(s, 5) != 0;
    t->created = sqlite3_column_double(s, 6);
    t->last_used = sqlite3_column_double(s, 7);
    copy_col(s, 8, t->created_by, sizeof t->created_by);
}

int store_token_add(struct store *st, struct store_token *t, char *err, size_t errsz)
{
    if (t->company_id[0]) {
        int ex = store_tenant_exists(st, t->company_id);
        if (ex <= 0) {
            if (ex == 0)
                snprintf(err, errsz, "no such tenant: %s", t->company_id);
            return ex == 0 ? 1 : -1;
        }
    }
    sqlite3_stmt *s = store_stmt(st, SQL_TOK_ADD);
    if (!s)
        return -1;
    t->created = core_now();
    store_bind_text(s, 1, t->hash);
    store_bind_text(s, 2, t->name);
    store_bind_text(s, 3, t->company_id[0] ? t->company_id : NULL);
    store_bind_text(s, 4, t->full ? "full" : "read-only");
    sqlite3_bind_double(s, 5, t->created);
    store_bind_text(s, 6, t->created_by);
    if (store_step_done(st, s) < 0)
        return -1;
    t->id = sqlite3_last_insert_rowid(st->db);
    return 0;
}

int store_token_find(struct store *st, const char *hash, struct store_token *out)
{
    sqlite3_stmt *s = store_stmt(st, SQL_TOK_FIND);
    if (!s)
        return -1;
    store_bind_text(s, 1, hash);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        token_row(s, out);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : -1;
}

long store_token_list(struct store *st, const char *scope, struct store_token **out)
{
    *out = NULL;
    sqlite3_stmt *s = store_stmt(st, scope ? SQL_TOK_LIST_SCOPED : SQL_TOK_LIST);
    if (!s)
        return -1;
    if (scope)
        store_bind_text(s, 1, scope);
    size_t n = 0, cap = 0;
    struct store_token *v = NULL;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            v = xrealloc(v, cap * sizeof *v);
        }
        token_row(s, &v[n++]);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        free(v);
        return -1;
    }
    *out = v;
    return (long)n;
}

int store_token_set_disabled(struct store *st, const char *scope, int64_t id, bool disabled)
{
    sqlite3_stmt *s = store_stmt(st, scope ? SQL_TOK_DISABLE_SCOPED : SQL_TOK_DISABLE);
    if (!s)
        return -1;
    sqlite3_bind_int(s, 1, disabled);
    sqlite3_bind_int64(s, 2, id);
    if (scope)
        store_bind_text(s, 3, scope);
    if (store_step_done(st, s) < 0)
        return -1;
    return sqlite3_changes(st->db) > 0 ? 0 : 1;
}

int store_token_delete(struct store *st, const char *scope, int64_t id)
{
    sqlite3_stmt *s = store_stmt(st, scope ? SQL_TOK_DELETE_SCOPED : SQL_TOK_DELETE);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, id);
    if (scope)
        store_bind_text(s, 2, scope);
    if (store_step_done(st, s) < 0)
        return -1;
    return sqlite3_changes(st->db) > 0 ? 0 : 1;
}

int store_token_touch(struct store *st, int64_t id, double now)
{
    sqlite3_stmt *s = store_stmt(st, SQL_TOK_TOUCH);
    if (!s)
        return -1;
    sqlite3_bind_double(s, 1, now);
    sqlite3_bind_int64(s, 2, id);
    return store_step_done(st, s);
}

/* ---------------------------------------------------------------- tenant security */
static const char SQL_SEC_GET[] = "SELECT totp_required FROM tenant_security WHERE company_id = ?";
static const char SQL_SEC_SET[] = "INSERT INTO tenant_security(company_id, totp_required) VALUES(?, ?) "
                                  "ON CONFLICT(company_id) DO UPDATE SET totp_required = excluded.totp_required";

/* the operators' own setting lives in the row "*" (never a company ID) */
#define OPERATORS_KEY "*"

int store_tenant_totp_required(struct store *st, const char *company_id)
{
    sqlite3_stmt *s = store_stmt(st, SQL_SEC_GET);
    if (!s)
        return -1;
    store_bind_text(s, 1, company_id && company_id[0] ? company_id : OPERATORS_KEY);
    int rc = sqlite3_step(s), v = 0;
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int(s, 0) != 0;
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? v : -1;
}

int store_tenant_set_totp_required(struct store *st, const char *company_id, bool required)
{
    sqlite3_stmt *s = store_stmt(st, SQL_SEC_SET);
    if (!s)
        return -1;
    store_bind_text(s, 1, company_id && company_id[0] ? company_id : OPERATORS_KEY);
    sqlite3_bind_int(s, 2, required);
    return store_step_done(st, s);
}

/* ---------------------------------------------------------------- audit log */
static const char SQL_AUDIT_LIST[] =
    "SELECT id, time, actor, action, company_id, detail FROM audit_log WHERE time >= ? AND time <= ? "
    "ORDER BY time DESC, id DESC LIMIT ?";
static const char SQL_AUDIT_LIST_SCOPED[] =
    "SELECT id, time, actor, action, company_id, detail FROM audit_log WHERE company_id = ? AND time >= ? "
    "AND time <= ? ORDER BY time DESC, id DESC LIMIT ?";

int store_audit_add(struct store *st, const char *actor, const char *action, const char *company_id,
                    const char *detail)
{
    if (store_begin(st) < 0)
        return -1;
    if (store_audit(st, actor, action, company_id && company_id[0] ? company_id : NULL, detail) < 0 ||
        store_commit(st) < 0) {
        store_rollback(st);
        return -1;
    }
    return 0;
}

long store_audit_list(struct store *st, const char *scope, double since, double until, size_t limit,
                      struct store_audit_entry **out)
{
    *out = NULL;
    sqlite3_stmt *s = store_stmt(st, scope ? SQL_AUDIT_LIST_SCOPED : SQL_AUDIT_LIST);
    if (!s)
        return -1;
    int i = 1;
    if (scope)
        store_bind_text(s, i++, scope);
    sqlite3_bind_double(s, i++, since);
    sqlite3_bind_double(s, i++, until > 0 ? until : 1e18);
    sqlite3_bind_int64(s, i, limit ? (int64_t)limit : 1000);
    size_t n = 0, cap = 0;
    struct store_audit_entry *v = NULL;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            v = xrealloc(v, cap * sizeof *v);
        }
        struct store_audit_entry *e = &v[n++];
        e->id = sqlite3_column_int64(s, 0);
        e->time = sqlite3_column_double(s, 1);
        e->actor = store_col_dup(s, 2);
        e->action = store_col_dup(s, 3);
        e->company_id = store_col_dup(s, 4);
        e->detail = store_col_dup(s, 5);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_audit_free(v, (long)n);
        return -1;
    }
    *out = v;
    return (long)n;
}

void store_audit_free(struct store_audit_entry *e, long n)
{
    for (long i = 0; i < n; i++) {
        free(e[i].actor);
        free(e[i].action);
        free(e[i].company_id);
        free(e[i].detail);
    }
    free(e);
}
