/*
 * store_onboard.c - onboarding of tenant administrators (migration 9,
 * PRODUCT.md §1 "Provisioning wizard", docs/onboarding.md):
 *
 *   store_onboard_token_new   a one-time token mailed to an account: "setup"
 *                             (the first password: the login mail) or "email"
 *                             (the wizard's e-mail confirmation link)
 *   store_onboard_token_use   redeem one: single use, before it expires
 *   store_onboard_token_last  when the latest one was issued (mail throttle)
 *   store_profile_get/set     last and first name, e-mail confirmed, the
 *                             wizard's step (migration 12) and whether it is done
 *   store_profile_confirm     mark the e-mail confirmed (and change the
 *                             account's address to the confirmed one)
 *
 * Only the SHA-256 of a token is stored (the caller hashes), so a copy of
 * the database lets nobody set a password. A new token of a purpose
 * replaces the account's unused ones of that purpose (a re-sent mail makes
 * the previous link useless).
 */
#include "store/store_int.h"

static const char SQL_TOK_DROP[] = "DELETE FROM account_tokens WHERE account_id = ? AND purpose = ? AND used IS NULL";
static const char SQL_TOK_PURGE[] = "DELETE FROM account_tokens WHERE expires < ?";
static const char SQL_TOK_ADD[] = "INSERT INTO account_tokens(token_hash, account_id, purpose, email, created, expires) "
                                  "VALUES(?, ?, ?, ?, ?, ?)";
static const char SQL_TOK_USE[] = "UPDATE account_tokens SET used = ? WHERE token_hash = ? AND purpose = ? AND "
                                  "used IS NULL AND expires >= ? RETURNING account_id, email";
static const char SQL_TOK_LAST[] = "SELECT COALESCE(MAX(created), 0) FROM account_tokens WHERE account_id = ? AND "
                                   "purpose = ?";
static const char SQL_PROF_GET[] =
    "SELECT last_name, first_name, COALESCE(email_confirmed, 0), COALESCE(wizard_done, 0), wizard_step "
    "FROM account_profile WHERE account_id = ?";
static const char SQL_PROF_ENSURE[] = "INSERT OR IGNORE INTO account_profile(account_id) VALUES(?)";
static const char SQL_PROF_NAMES[] = "UPDATE account_profile SET last_name = ?, first_name = ? WHERE account_id = ?";
static const char SQL_PROF_WIZARD[] = "UPDATE account_profile SET wizard_done = ? WHERE account_id = ?";
static const char SQL_PROF_STEP[] = "UPDATE account_profile SET wizard_step = ? WHERE account_id = ?";
static const char SQL_PROF_CONFIRMED[] = "UPDATE account_profile SET email_confirmed = ? WHERE account_id = ?";
static const char SQL_ACC_EMAIL_OTHER[] = "SELECT 1 FROM accounts WHERE email = ? AND id <> ?";
static const char SQL_ACC_SET_EMAIL[] = "UPDATE accounts SET email = lower(?) WHERE id = ?";
static const char SQL_TENANT_NAME[] = "SELECT name FROM tenants WHERE company_id = ?";

int store_tenant_name(struct store *st, const char *company_id, char *name, size_t namesz)
{
    sqlite3_stmt *s = store_stmt(st, SQL_TENANT_NAME);
    if (!s)
        return -1;
    store_bind_text(s, 1, company_id);
    int rc = sqlite3_step(s), out = 1;
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(s, 0);
        core_strlcpy(name, t && t[0] ? (const char *)t : company_id, namesz);
        out = 0;
        rc = sqlite3_step(s);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? out : -1;
}

int store_onboard_token_new(struct store *st, int64_t account_id, const char *purpose, const char *email,
                            const char *hash, double now, double expires)
{
    sqlite3_stmt *s;
    if (store_begin(st) < 0)
        return -1;
    if (!(s = store_stmt(st, SQL_TOK_PURGE)))
        goto fail;
    sqlite3_bind_double(s, 1, now - 30 * 86400.0); /* expired a month ago: gone */
    if (store_step_done(st, s) < 0 || !(s = store_stmt(st, SQL_TOK_DROP)))
        goto fail;
    sqlite3_bind_int64(s, 1, account_id);
    store_bind_text(s, 2, purpose);
    if (store_step_done(st, s) < 0 || !(s = store_stmt(st, SQL_TOK_ADD)))
        goto fail;
    store_bind_text(s, 1, hash);
    sqlite3_bind_int64(s, 2, account_id);
    store_bind_text(s, 3, purpose);
    store_bind_text(s, 4, email);
    sqlite3_bind_double(s, 5, now);
    sqlite3_bind_double(s, 6, expires);
    if (store_step_done(st, s) < 0)
        goto fail;
    return store_commit(st);
fail:
    store_rollback(st);
    return -1;
}

int store_onboard_token_use(struct store *st, const char *purpose, const char *hash, double now, int64_t *account_id,
                            char *email, size_t emailsz)
{
    sqlite3_stmt *s = store_stmt(st, SQL_TOK_USE);
    if (!s)
        return -1;
    sqlite3_bind_double(s, 1, now);
    store_bind_text(s, 2, hash);
    store_bind_text(s, 3, purpose);
    sqlite3_bind_double(s, 4, now);
    int rc = sqlite3_step(s);
    int out = 1;
    if (rc == SQLITE_ROW) {
        *account_id = sqlite3_column_int64(s, 0);
        const unsigned char *e = sqlite3_column_text(s, 1);
        core_strlcpy(email, e ? (const char *)e : "", emailsz);
        out = 0;
        rc = sqlite3_step(s);
    }
    if (rc != SQLITE_DONE) {
        store_log_error(st, "account token");
        out = -1;
    }
    sqlite3_reset(s);
    return out;
}

int store_onboard_token_last(struct store *st, int64_t account_id, const char *purpose, double *created)
{
    *created = 0;
    sqlite3_stmt *s = store_stmt(st, SQL_TOK_LAST);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, account_id);
    store_bind_text(s, 2, purpose);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *created = sqlite3_column_double(s, 0);
        rc = sqlite3_step(s);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_log_error(st, "account token");
        return -1;
    }
    return 0;
}

int store_profile_get(struct store *st, int64_t account_id, struct store_profile *p)
{
    memset(p, 0, sizeof *p);
    sqlite3_stmt *s = store_stmt(st, SQL_PROF_GET);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, account_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(s, 0);
        core_strlcpy(p->last_name, t ? (const char *)t : "", sizeof p->last_name);
        t = sqlite3_column_text(s, 1);
        core_strlcpy(p->first_name, t ? (const char *)t : "", sizeof p->first_name);
        p->email_confirmed = sqlite3_column_double(s, 2);
        p->wizard_done = sqlite3_column_double(s, 3);
        p->wizard_step = sqlite3_column_int(s, 4);
        p->exists = true;
        rc = sqlite3_step(s);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_log_error(st, "account profile");
        return -1;
    }
    return 0;
}

/* ensure - the profile row exists (inside the caller's transaction) */
static int ensure(struct store *st, int64_t account_id)
{
    sqlite3_stmt *s = store_stmt(st, SQL_PROF_ENSURE);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, account_id);
    return store_step_done(st, s);
}

int store_profile_set(struct store *st, int64_t account_id, const char *last_name, const char *first_name,
                      int wizard_done, int wizard_step, double now)
{
    sqlite3_stmt *s;
    if (store_begin(st) < 0)
        return -1;
    if (ensure(st, account_id) < 0)
        goto fail;
    if (last_name && first_name) {
        if (!(s = store_stmt(st, SQL_PROF_NAMES)))
            goto fail;
        store_bind_text(s, 1, last_name);
        store_bind_text(s, 2, first_name);
        sqlite3_bind_int64(s, 3, account_id);
        if (store_step_done(st, s) < 0)
            goto fail;
    }
    if (wizard_done >= 0) {
        if (!(s = store_stmt(st, SQL_PROF_WIZARD)))
            goto fail;
        if (wizard_done)
            sqlite3_bind_double(s, 1, now);
        else
            sqlite3_bind_null(s, 1);
        sqlite3_bind_int64(s, 2, account_id);
        if (store_step_done(st, s) < 0)
            goto fail;
    }
    if (wizard_step >= 0 && wizard_step < STORE_WIZARD_STEPS) {
        if (!(s = store_stmt(st, SQL_PROF_STEP)))
            goto fail;
        sqlite3_bind_int(s, 1, wizard_step);
        sqlite3_bind_int64(s, 2, account_id);
        if (store_step_done(st, s) < 0)
            goto fail;
    }
    return store_commit(st);
fail:
    store_rollback(st);
    return -1;
}

int store_profile_confirm(struct store *st, int64_t account_id, const char *email, double now)
{
    sqlite3_stmt *s;
    if (store_begin(st) < 0)
        return -1;
    if (!(s = store_stmt(st, SQL_ACC_EMAIL_OTHER)))
        goto fail;
    store_bind_text(s, 1, email);
    sqlite3_bind_int64(s, 2, account_id);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW) {
        store_rollback(st);
        return 1; /* another account has this address now */
    }
    if (rc != SQLITE_DONE || ensure(st, account_id) < 0 || !(s = store_stmt(st, SQL_ACC_SET_EMAIL)))
        goto fail;
    store_bind_text(s, 1, email);
    sqlite3_bind_int64(s, 2, account_id);
    if (store_step_done(st, s) < 0 || !(s = store_stmt(st, SQL_PROF_CONFIRMED)))
        goto fail;
    sqlite3_bind_double(s, 1, now);
    sqlite3_bind_int64(s, 2, account_id);
    if (store_step_done(st, s) < 0)
        goto fail;
    return store_commit(st);
fail:
    store_rollback(st);
    return -1;
}
