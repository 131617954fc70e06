/*
 * store_style.c - writing-style profiles of a tenant's high-profile users
 * (the BEC writing-style check, docs/detection.md): opaque, versioned blobs
 * made by detect_style.c, stored per (tenant, address).
 *
 *   store_style_put    save or replace one profile (config_version + 1, so
 *                      the scan workers reload the tenant; audit-logged)
 *   store_style_each   every profile of a tenant
 *
 * The store does not parse the blob (detect/ does, strictly, when loading);
 * it bounds its size (STORE_STYLE_MAX) and the number per tenant.
 */
#include "core/core.h"
#include "store/store_int.h"

static const char SQL_STYLE_PUT[] =
    "INSERT INTO style_profiles(tenant_id, address, profile, updated) "
    "SELECT id, ?, ?, ? FROM tenants WHERE company_id = ? "
    "ON CONFLICT(tenant_id, address) DO UPDATE SET profile = excluded.profile, updated = excluded.updated";
static const char SQL_STYLE_COUNT[] =
    "SELECT COUNT(*) FROM style_profiles WHERE tenant_id = (SELECT id FROM tenants WHERE company_id = ?) "
    "AND address <> ?";
static const char SQL_STYLE_OF[] =
    "SELECT address, profile FROM style_profiles WHERE tenant_id = "
    "(SELECT id FROM tenants WHERE company_id = ?) ORDER BY address LIMIT ?";

int store_style_put(struct store *st, const char *company_id, const char *address, const unsigned char *blob,
                    size_t len, char *err, size_t errsz)
{
    if (len == 0 || len > STORE_STYLE_MAX) {
        snprintf(err, errsz, "profile of %zu bytes (1..%d allowed)", len, STORE_STYLE_MAX);
        return -1;
    }
    if (store_begin(st) < 0) {
        snprintf(err, errsz, "database busy or unavailable");
        return -1;
    }
    sqlite3_stmt *s = store_stmt(st, SQL_STYLE_COUNT);
    if (!s)
        goto fail;
    store_bind_text(s, 1, company_id);
    store_bind_text(s, 2, address);
    int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_reset(s);
    if (n < 0)
        goto fail;
    if (n >= STORE_STYLE_PER_TENANT) {
        store_rollback(st);
        snprintf(err, errsz, "tenant %s already has %d writing-style profiles", company_id, STORE_STYLE_PER_TENANT);
        return -1;
    }
    if (!(s = store_stmt(st, SQL_STYLE_PUT)))
        goto fail;
    store_bind_text(s, 1, address);
    sqlite3_bind_blob(s, 2, blob, (int)len, SQLITE_TRANSIENT);
    sqlite3_bind_double(s, 3, core_now());
    store_bind_text(s, 4, company_id);
    if (store_step_done(st, s) < 0)
        goto fail;
    if (sqlite3_changes(st->db) == 0) {
        store_rollback(st);
        snprintf(err, errsz, "no tenant %s", company_id);
        return -1;
    }
    if (store_version_bump(st) < 0 || store_audit(st, "moatctl", "style.learned", company_id, address) < 0 ||
        store_commit(st) < 0)
        goto fail;
    return 0;
fail:
    store_rollback(st);
    snprintf(err, errsz, "database error: %s", sqlite3_errmsg(st->db));
    return -1;
}

int store_style_each(struct store *st, const char *company_id, store_style_fn fn, void *arg)
{
    sqlite3_stmt *s = store_stmt(st, SQL_STYLE_OF);
    if (!s)
        return -1;
    store_bind_text(s, 1, company_id);
    sqlite3_bind_int(s, 2, STORE_STYLE_PER_TENANT);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *addr = (const char *)sqlite3_column_text(s, 0);
        const void *b = sqlite3_column_blob(s, 1);
        int n = sqlite3_column_bytes(s, 1);
        if (addr && b && n > 0)
            fn(addr, b, (size_t)n, arg);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_log_error(st, "style profiles");
        return -1;
    }
    return 0;
}
