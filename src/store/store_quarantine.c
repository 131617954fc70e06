/*
 * store_quarantine.c - the quarantine index (migration 5): one row per
 * quarantined copy (tenant, recipient), pointing at a compressed file that
 * src/quarantine owns.
 *
 *   store_quarantine_insert / get / list / delete   the rows
 *   store_quarantine_claim / release_done           the release protocol
 *   store_quarantine_expired / exists               retention purge helpers
 *   store_quarantine_stats                          per-tenant counts and sizes
 *
 * Tenant isolation: every lookup by id takes the caller's company_id (NULL
 * only for the operator), and another tenant's row answers "not found",
 * exactly like a missing one. Ids are random (quarantine.c), so they cannot
 * be guessed either.
 *
 * Release is two steps so that a message is never lost and never released
 * twice: claim (the row becomes released, with the new queue ID) before the
 * copy is queued, then release_done once it is durable in the spool (or the
 * claim is undone when queuing failed). A claim left without release_done
 * by a crash can be taken again after STORE_QUARANTINE_CLAIM_STALE seconds:
 * at worst a duplicate delivery, never a lost one.
 */
#include "core/core.h"
#include "store/store_int.h"

#define ITEM_COLS                                                                                            \
    "id, company_id, qid, time, rcpt, sender, header_from, subject, size, stored_size, sha256, rule,"        \
    " rule_order, reason, detections, scan, direction, orcpt, envid, client_ip, helo, smtputf8, eightbit,"   \
    " released, released_qid, release_done"

static const char SQL_Q_INSERT[] = "INSERT INTO quarantine(" ITEM_COLS
                                   ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                                   " ?, ?, NULL, NULL, 0)";
static const char SQL_Q_GET_ALL[] = "SELECT " ITEM_COLS " FROM quarantine WHERE id = ?";
static const char SQL_Q_GET_TENANT[] = "SELECT " ITEM_COLS " FROM quarantine WHERE id = ? AND company_id = ?";
static const char SQL_Q_LIST[] =
    "SELECT " ITEM_COLS " FROM quarantine WHERE (?1 IS NULL OR company_id = ?1) AND (?2 IS NULL OR rcpt = ?2)"
    " AND (?3 = 0 OR time >= ?3) AND (?4 = 0 OR time <= ?4) ORDER BY time DESC, id LIMIT ?5";
static const char SQL_Q_CLAIM[] =
    "UPDATE quarantine SET released = ?1, released_qid = ?2, release_done = 0 WHERE id = ?3"
    " AND (?4 IS NULL OR company_id = ?4) AND (released IS NULL OR (release_done = 0 AND released < ?5))";
static const char SQL_Q_EXISTS_SCOPE[] =
    "SELECT 1 FROM quarantine WHERE id = ?1 AND (?2 IS NULL OR company_id = ?2)";
static const char SQL_Q_DONE[] = "UPDATE quarantine SET release_done = 1 WHERE id = ?";
static const char SQL_Q_UNDO[] =
    "UPDATE quarantine SET released = NULL, released_qid = NULL WHERE id = ? AND release_done = 0";
static const char SQL_Q_DELETE[] = "DELETE FROM quarantine WHERE id = ?1 AND (?2 IS NULL OR company_id = ?2)";
static const char SQL_Q_EXPIRED[] = "SELECT id FROM quarantine WHERE time < ? ORDER BY time LIMIT ?";
static const char SQL_Q_EXISTS[] = "SELECT 1 FROM quarantine WHERE id = ?";
static const char SQL_Q_STATS[] =
    "SELECT company_id, COUNT(*), COALESCE(SUM(released IS NOT NULL), 0), COALESCE(SUM(size), 0),"
    " COALESCE(SUM(stored_size), 0) FROM quarantine WHERE (?1 IS NULL OR company_id = ?1)"
    " GROUP BY company_id ORDER BY company_id";

void store_quarantine_item_free(struct store_quarantine_item *it)
{
    if (!it)
        return;
    free(it->company_id);
    free(it->rcpt);
    free(it->sender);
    free(it->header_from);
    free(it->subject);
    free(it->rule);
    free(it->reason);
    free(it->detections);
    free(it->scan);
    free(it->direction);
    free(it->orcpt);
    free(it->envid);
    free(it->client_ip);
    free(it->helo);
    memset(it, 0, sizeof *it);
}

void store_quarantine_items_free(struct store_quarantine_item *items, long n)
{
    for (long i = 0; i < n; i++)
        store_quarantine_item_free(&items[i]);
    free(items);
}

/* col_copy - a text column into a fixed buffer ("" for NULL) */
static void col_copy(sqlite3_stmt *s, int col, char *out, size_t outsz)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    core_strlcpy(out, t ? (const char *)t : "", outsz);
}

/* read_item - the current row of a SELECT ITEM_COLS */
static void read_item(sqlite3_stmt *s, struct store_quarantine_item *it)
{
    memset(it, 0, sizeof *it);
    col_copy(s, 0, it->id, sizeof it->id);
    it->company_id = store_col_dup(s, 1);
    col_copy(s, 2, it->qid, sizeof it->qid);
    it->time = sqlite3_column_double(s, 3);
    it->rcpt = store_col_dup(s, 4);
    it->sender = store_col_dup(s, 5);
    it->header_from = store_col_dup(s, 6);
    it->subject = store_col_dup(s, 7);
    it->size = (uint64_t)sqlite3_column_int64(s, 8);
    it->stored_size = (uint64_t)sqlite3_column_int64(s, 9);
    col_copy(s, 10, it->sha256, sizeof it->sha256);
    it->rule = store_col_dup(s, 11);
    it->rule_order = (unsigned)sqlite3_column_int(s, 12);
    it->reason = store_col_dup(s, 13);
    it->detections = store_col_dup(s, 14);
    it->scan = store_col_dup(s, 15);
    it->direction = store_col_dup(s, 16);
    it->orcpt = store_col_dup(s, 17);
    it->envid = store_col_dup(s, 18);
    it->client_ip = store_col_dup(s, 19);
    it->helo = store_col_dup(s, 20);
    it->smtputf8 = sqlite3_column_int(s, 21) != 0;
    it->eightbit = sqlite3_column_int(s, 22) != 0;
    it->released = sqlite3_column_type(s, 23) == SQLITE_NULL ? 0 : sqlite3_column_double(s, 23);
    col_copy(s, 24, it->released_qid, sizeof it->released_qid);
    it->release_done = sqlite3_column_int(s, 25) != 0;
    if (!it->company_id)
        it->company_id = xstrdup("");
    if (!it->rcpt)
        it->rcpt = xstrdup("");
    if (!it->sender)
        it->sender = xstrdup("");
}

int store_quarantine_insert(struct store *st, const struct store_quarantine_item *it)
{
    if (!it->id[0] || !it->company_id || !it->rcpt || !it->sender || !it->sha256[0])
        return -1;
    sqlite3_stmt *s = store_stmt(st, SQL_Q_INSERT);
    if (!s)
        return -1;
    store_bind_text(s, 1, it->id);
    store_bind_text(s, 2, it->company_id);
    store_bind_text(s, 3, it->qid);
    sqlite3_bind_double(s, 4, it->time);
    store_bind_text(s, 5, it->rcpt);
    store_bind_text(s, 6, it->sender);
    store_bind_text(s, 7, it->header_from);
    store_bind_text(s, 8, it->subject);
    sqlite3_bind_int64(s, 9, (sqlite3_int64)it->size);
    sqlite3_bind_int64(s, 10, (sqlite3_int64)it->stored_size);
    store_bind_text(s, 11, it->sha256);
    store_bind_text(s, 12, it->rule);
    sqlite3_bind_int(s, 13, (int)it->rule_order);
    store_bind_text(s, 14, it->reason);
    store_bind_text(s, 15, it->detections);
    store_bind_text(s, 16, it->scan);
    store_bind_text(s, 17, it->direction ? it->direction : "inbound");
    store_bind_text(s, 18, it->orcpt);
    store_bind_text(s, 19, it->envid);
    store_bind_text(s, 20, it->client_ip);
    store_bind_text(s, 21, it->helo);
    sqlite3_bind_int(s, 22, it->smtputf8);
    sqlite3_bind_int(s, 23, it->eightbit);
    return store_step_done(st, s);
}

int store_quarantine_get(struct store *st, const char *company_id, const char *id,
                         struct store_quarantine_item *out)
{
    sqlite3_stmt *s = store_stmt(st, company_id ? SQL_Q_GET_TENANT : SQL_Q_GET_ALL);
    if (!s)
        return -1;
    store_bind_text(s, 1, id);
    if (company_id)
        store_bind_text(s, 2, company_id);
    int rc = sqlite3_step(s);
    int ret = 1;
    if (rc == SQLITE_ROW) {
        read_item(s, out);
        ret = 0;
    } else if (rc != SQLITE_DONE) {
        store_log_error(st, "quarantine get");
        ret = -1;
    }
    sqlite3_reset(s);
    return ret;
}

long store_quarantine_list(struct store *st, const struct store_quarantine_query *q,
                           struct store_quarantine_item **out)
{
    *out = NULL;
    sqlite3_stmt *s = store_stmt(st, SQL_Q_LIST);
    if (!s)
        return -1;
    size_t limit = q->limit ? q->limit : 1000;
    store_bind_text(s, 1, q->company_id);
    store_bind_text(s, 2, q->rcpt);
    sqlite3_bind_double(s, 3, q->since);
    sqlite3_bind_double(s, 4, q->until);
    sqlite3_bind_int64(s, 5, (sqlite3_int64)limit);
    size_t n = 0, cap = 0;
    struct store_quarantine_item *items = NULL;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            items = xrealloc(items, cap * sizeof *items);
        }
        read_item(s, &items[n++]);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_log_error(st, "quarantine list");
        store_quarantine_items_free(items, (long)n);
        return -1;
    }
    *out = items;
    return (long)n;
}

int store_quarantine_claim(struct store *st, const char *company_id, const char *id, const char *new_qid,
                           double now)
{
    if (store_begin(st) < 0)
        return -1;
    sqlite3_stmt *s = store_stmt(st, SQL_Q_CLAIM);
    if (!s)
        goto fail;
    sqlite3_bind_double(s, 1, now);
    store_bind_text(s, 2, new_qid);
    store_bind_text(s, 3, id);
    store_bind_text(s, 4, company_id);
    sqlite3_bind_double(s, 5, now - STORE_QUARANTINE_CLAIM_STALE);
    if (store_step_done(st, s) < 0)
        goto fail;
    int ret = 0;
    if (sqlite3_changes(st->db) == 0) {
        /* not claimable: missing (in this scope) or released already */
        if (!(s = store_stmt(st, SQL_Q_EXISTS_SCOPE)))
            goto fail;
        store_bind_text(s, 1, id);
        store_bind_text(s, 2, company_id);
        int rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            goto fail;
        ret = rc == SQLITE_ROW ? 2 : 1;
    }
    if (store_commit(st) < 0)
        goto fail;
    return ret;
fail:
    store_rollback(st);
    return -1;
}

int store_quarantine_release_done(struct store *st, const char *id, bool done)
{
    sqlite3_stmt *s = store_stmt(st, done ? SQL_Q_DONE : SQL_Q_UNDO);
    if (!s)
        return -1;
    store_bind_text(s, 1, id);
    return store_step_done(st, s);
}

int store_quarantine_delete(struct store *st, const char *company_id, const char *id)
{
    sqlite3_stmt *s = store_stmt(st, SQL_Q_DELETE);
    if (!s)
        return -1;
    store_bind_text(s, 1, id);
    store_bind_text(s, 2, company_id);
    if (store_step_done(st, s) < 0)
        return -1;
    return sqlite3_changes(st->db) > 0 ? 0 : 1;
}

long store_quarantine_expired(struct store *st, double before, char (*ids)[STORE_QUARANTINE_ID_LEN + 1],
                              size_t max)
{
    sqlite3_stmt *s = store_stmt(st, SQL_Q_EXPIRED);
    if (!s)
        return -1;
    sqlite3_bind_double(s, 1, before);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
    size_t n = 0;
    int rc;
    while (n < max && (rc = sqlite3_step(s)) == SQLITE_ROW)
        col_copy(s, 0, ids[n++], sizeof ids[0]);
    sqlite3_reset(s);
    return (long)n;
}

int store_quarantine_exists(struct store *st, const char *id)
{
    sqlite3_stmt *s = store_stmt(st, SQL_Q_EXISTS);
    if (!s)
        return -1;
    store_bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 1;
    return rc == SQLITE_DONE ? 0 : -1;
}

long store_quarantine_stats(struct store *st, const char *company_id, struct store_quarantine_stats **out)
{
    *out = NULL;
    sqlite3_stmt *s = store_stmt(st, SQL_Q_STATS);
    if (!s)
        return -1;
    store_bind_text(s, 1, company_id);
    size_t n = 0, cap = 0;
    struct store_quarantine_stats *v = NULL;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            v = xrealloc(v, cap * sizeof *v);
        }
        memset(&v[n], 0, sizeof v[n]);
        col_copy(s, 0, v[n].company_id, sizeof v[n].company_id);
        v[n].count = (uint64_t)sqlite3_column_int64(s, 1);
        v[n].released = (uint64_t)sqlite3_column_int64(s, 2);
        v[n].bytes = (uint64_t)sqlite3_column_int64(s, 3);
        v[n].stored_bytes = (uint64_t)sqlite3_column_int64(s, 4);
        n++;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_log_error(st, "quarantine stats");
        free(v);
        return -1;
    }
    *out = v;
    return (long)n;
}
