/*
 * store_stats.c - the dashboard figures, computed from message tracking
 * (store_tracking_stats, GET /api/v1/stats).
 *
 * A message is in the period when it arrived in [since, until) and in scope
 * when at least one of its recipient rows belongs to the tenant (and, with
 * a domain, is an address of that domain); only those recipient rows count.
 * Threats are the detection categories recorded on the message (the
 * message-level timeline event's "detections", as the scan reported them).
 * Every statement is a constant, prepared once, with bound values.
 */
#include "store/store_int.h"

#include <jansson.h>

#define STATS_TOP 10
#define STATS_BUCKETS 24

/* ?1 since, ?2 until, ?3 company_id or NULL, ?4 '%@domain' or NULL, ?5 bucket seconds */
#define STATS_MSG                                                                                         \
    "WITH msg AS (SELECT m.id, m.time, m.sender, m.action FROM track_messages m WHERE m.time >= ?1 AND "  \
    "m.time < ?2 AND EXISTS (SELECT 1 FROM track_recipients r WHERE r.message = m.id AND "               \
    "(?3 IS NULL OR r.company_id = ?3) AND (?4 IS NULL OR r.rcpt LIKE ?4))), "                           \
    "rc AS (SELECT r.message, r.rcpt, r.status FROM msg JOIN track_recipients r ON r.message = msg.id "  \
    "WHERE (?3 IS NULL OR r.company_id = ?3) AND (?4 IS NULL OR r.rcpt LIKE ?4)), "                      \
    "det AS (SELECT DISTINCT msg.id AS message, json_extract(d.value, '$.category') AS category FROM msg " \
    "JOIN track_events e ON e.message = msg.id AND e.rcpt IS NULL, "                                     \
    "json_each(CASE WHEN json_valid(e.detail) THEN e.detail ELSE '{}' END, '$.detections') d) "
static const char SQL_ST_TOTALS[] = STATS_MSG
    "SELECT COUNT(*), COALESCE(SUM(action = 'accepted'), 0), COALESCE(SUM(action = 'rejected'), 0), "
    "(SELECT COUNT(*) FROM rc), (SELECT COUNT(DISTINCT message) FROM det) FROM msg";
static const char SQL_ST_STATUS[] = STATS_MSG
    "SELECT COALESCE(status, 'unknown'), COUNT(*) FROM rc GROUP BY 1 ORDER BY 2 DESC";
static const char SQL_ST_THREATS[] = STATS_MSG
    "SELECT category, COUNT(*) FROM det WHERE category IS NOT NULL GROUP BY 1 ORDER BY 2 DESC";
static const char SQL_ST_SENDERS[] = STATS_MSG
    "SELECT COALESCE(sender, ''), COUNT(*) FROM msg GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10";
static const char SQL_ST_RCPTS[] = STATS_MSG
    "SELECT lower(rcpt), COUNT(*) FROM rc GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10";
static const char SQL_ST_TARGETED[] = STATS_MSG
    "SELECT lower(rcpt), COUNT(*) FROM rc WHERE message IN (SELECT message FROM det) GROUP BY 1 "
    "ORDER BY 2 DESC, 1 LIMIT 10";
static const char SQL_ST_SERIES[] = STATS_MSG
    "SELECT CAST((time - ?1) / ?5 AS INTEGER) AS b, COUNT(*), "
    "SUM(id IN (SELECT message FROM det)) FROM msg GROUP BY b ORDER BY b";

/* prepare - the statement with the five parameters bound */
static sqlite3_stmt *prepare(struct store *st, const char *sql, const struct track_stats_query *q,
                             const char *like, double bucket)
{
    sqlite3_stmt *s = store_stmt(st, sql);
    if (!s)
        return NULL;
    sqlite3_bind_double(s, 1, q->since);
    sqlite3_bind_double(s, 2, q->until);
    store_bind_text(s, 3, q->company_id);
    store_bind_text(s, 4, like);
    sqlite3_bind_double(s, 5, bucket);
    return s;
}

/* pairs - rows of (text, count) into [{key: text, "count": n}] */
static int pairs(struct store *st, const char *sql, const struct track_stats_query *q, const char *like,
                 const char *key, json_t *out)
{
    sqlite3_stmt *s = prepare(st, sql, q, like, 1);
    if (!s)
        return -1;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const unsigned char *k = sqlite3_column_text(s, 0);
        json_t *o = json_object();
        json_object_set_new(o, key, json_string(k ? (const char *)k : ""));
        json_object_set_new(o, "count", json_integer(sqlite3_column_int64(s, 1)));
        json_array_append_new(out, o);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_log_error(st, "stats");
        return -1;
    }
    return 0;
}

char *store_tracking_stats(struct store *st, const struct track_stats_query *q)
{
    char like[300];
    const char *lk = NULL;
    if (q->domain && q->domain[0]) {
        snprintf(like, sizeof like, "%%@%s", q->domain);
        lk = like;
    }
    double span = q->until - q->since;
    /* about STATS_BUCKETS buckets of a round size: 5 min, 1 h or 1 day */
    double bucket = span <= 2 * 3600 ? 300 : span <= 2 * 86400 ? 3600 : 86400;
    json_t *o = json_object();
    json_object_set_new(o, "since", json_real(q->since));
    json_object_set_new(o, "until", json_real(q->until));
    json_object_set_new(o, "domain", lk ? json_string(q->domain) : json_null());
    if (store_begin_read(st) < 0)
        goto fail;
    sqlite3_stmt *s = prepare(st, SQL_ST_TOTALS, q, lk, bucket);
    if (!s)
        goto fail;
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_reset(s);
        goto fail;
    }
    json_t *tot = json_object();
    json_object_set_new(tot, "messages", json_integer(sqlite3_column_int64(s, 0)));
    json_object_set_new(tot, "accepted", json_integer(sqlite3_column_int64(s, 1)));
    json_object_set_new(tot, "rejected", json_integer(sqlite3_column_int64(s, 2)));
    json_object_set_new(tot, "recipients", json_integer(sqlite3_column_int64(s, 3)));
    json_object_set_new(tot, "threats", json_integer(sqlite3_column_int64(s, 4)));
    sqlite3_reset(s);
    json_object_set_new(o, "totals", tot);
    json_t *by_status = json_array(), *threats = json_array(), *senders = json_array(), *rcpts = json_array(),
           *targeted = json_array();
    json_object_set_new(o, "recipients_by_status", by_status);
    json_object_set_new(o, "threats_by_type", threats);
    json_object_set_new(o, "top_senders", senders);
    json_object_set_new(o, "top_recipients", rcpts);
    json_object_set_new(o, "top_targeted_recipients", targeted);
    if (pairs(st, SQL_ST_STATUS, q, lk, "status", by_status) < 0 ||
        pairs(st, SQL_ST_THREATS, q, lk, "type", threats) < 0 ||
        pairs(st, SQL_ST_SENDERS, q, lk, "sender", senders) < 0 ||
        pairs(st, SQL_ST_RCPTS, q, lk, "rcpt", rcpts) < 0 || pairs(st, SQL_ST_TARGETED, q, lk, "rcpt", targeted) < 0)
        goto fail;
    /* the series: every bucket, also the empty ones */
    size_t nb = (size_t)(span / bucket) + 1;
    if (nb > 10000)
        nb = 10000;
    int64_t *tot_b = xcalloc(nb, sizeof *tot_b), *thr_b = xcalloc(nb, sizeof *thr_b);
    if (!(s = prepare(st, SQL_ST_SERIES, q, lk, bucket))) {
        free(tot_b);
        free(thr_b);
        goto fail;
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t b = sqlite3_column_int64(s, 0);
        if (b >= 0 && (size_t)b < nb) {
            tot_b[b] = sqlite3_column_int64(s, 1);
            thr_b[b] = sqlite3_column_int64(s, 2);
        }
    }
    sqlite3_reset(s);
    json_t *series = json_array();
    for (size_t i = 0; i < nb; i++) {
        json_t *p = json_object();
        json_object_set_new(p, "start", json_real(q->since + (double)i * bucket));
        json_object_set_new(p, "messages", json_integer(tot_b[i]));
        json_object_set_new(p, "threats", json_integer(thr_b[i]));
        json_array_append_new(series, p);
    }
    free(tot_b);
    free(thr_b);
    json_object_set_new(o, "bucket_seconds", json_real(bucket));
    json_object_set_new(o, "series", series);
    if (rc != SQLITE_DONE)
        goto fail;
    store_commit(st);
    char *text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    return text;
fail:
    store_rollback(st);
    json_decref(o);
    return NULL;
}
