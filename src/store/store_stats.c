/*
 * store_stats.c - the dashboard figures, computed from message tracking
 * (store_tracking_stats, GET /api/v1/stats).
 *
 * A message is in the period when it arrived in [since, until) and in scope
 * when at least one of its recipient rows belongs to the tenant (and, with
 * a domain, is an address of that domain); only those recipient rows count.
 * Threats are the detection categories recorded on the message (the
 * scan's detections; the row's threats column, migration 11 - reading them
 * from the message's events made every row cost a JSON parse).
 *
 * One pass: a single prepared query returns one row per (message,
 * recipient) in scope, in time order, with the message's detections event
 * only when it has detections; everything is counted here in C (hash
 * tables for senders and recipients, bounded by STATS_KEYS_MAX distinct
 * keys each - beyond that new keys are not counted, and the answer says
 * "truncated"). The cost is linear in the period's recipient rows.
 * series_by_type counts the threats of each detection category per bucket.
 */
#include "store/store_int.h"

#include <jansson.h>

#define STATS_TOP 10
#define STATS_KEYS_MAX 200000
#define STATS_STATUS_MAX 16
#define STATS_CATS_MAX 16

/* ?1 since, ?2 until, ?3 company_id or NULL, ?4 '%@domain' or NULL */
static const char SQL_ST_ROWS[] =
    "SELECT m.id, m.time, COALESCE(m.sender, ''), COALESCE(m.action, ''), r.rcpt, COALESCE(r.status, 'unknown'),"
    " m.threats"
    " FROM track_messages m JOIN track_recipients r ON r.message = m.id"
    " WHERE m.time >= ?1 AND m.time < ?2 AND (?3 IS NULL OR r.company_id = ?3) AND (?4 IS NULL OR r.rcpt LIKE ?4)"
    " ORDER BY m.time, m.id";

/* ---------------------------------------------------------------- a small string -> count table */
struct counter {
    char **keys;
    uint64_t *counts;
    size_t cap, n;
    bool full;
};

static void counter_init(struct counter *c)
{
    memset(c, 0, sizeof *c);
    c->cap = 1024;
    c->keys = xcalloc(c->cap, sizeof *c->keys);
    c->counts = xcalloc(c->cap, sizeof *c->counts);
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s)) * 1099511628211ULL;
    return h;
}

static void counter_add(struct counter *c, const char *key);

static void counter_grow(struct counter *c)
{
    struct counter old = *c;
    c->cap *= 2;
    c->n = 0;
    c->keys = xcalloc(c->cap, sizeof *c->keys);
    c->counts = xcalloc(c->cap, sizeof *c->counts);
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.keys[i])
            continue;
        size_t j = hash(old.keys[i]) & (c->cap - 1);
        while (c->keys[j])
            j = (j + 1) & (c->cap - 1);
        c->keys[j] = old.keys[i];
        c->counts[j] = old.counts[i];
        c->n++;
    }
    free(old.keys);
    free(old.counts);
}

/* counter_add - one more for key (compared case-insensitively) */
static void counter_add(struct counter *c, const char *key)
{
    size_t j = hash(key) & (c->cap - 1);
    while (c->keys[j]) {
        if (strcasecmp(c->keys[j], key) == 0) {
            c->counts[j]++;
            return;
        }
        j = (j + 1) & (c->cap - 1);
    }
    if (c->n >= STATS_KEYS_MAX) {
        c->full = true;
        return;
    }
    c->keys[j] = xstrdup(key);
    for (char *p = c->keys[j]; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    c->counts[j] = 1;
    if (++c->n * 2 > c->cap)
        counter_grow(c);
}

/* counter_top - the STATS_TOP largest as [{key: k, "count": n}], ties by key */
static json_t *counter_top(const struct counter *c, const char *key)
{
    size_t top[STATS_TOP], nt = 0;
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->keys[i])
            continue;
        size_t pos = nt;
        while (pos > 0 && (c->counts[top[pos - 1]] < c->counts[i] ||
                           (c->counts[top[pos - 1]] == c->counts[i] && strcmp(c->keys[top[pos - 1]], c->keys[i]) > 0)))
            pos--;
        if (pos >= STATS_TOP)
            continue;
        if (nt < STATS_TOP)
            nt++;
        memmove(&top[pos + 1], &top[pos], (nt - 1 - pos) * sizeof top[0]);
        top[pos] = i;
    }
    json_t *a = json_array();
    for (size_t k = 0; k < nt; k++) {
        json_t *o = json_object();
        json_object_set_new(o, key, json_string(c->keys[top[k]]));
        json_object_set_new(o, "count", json_integer((json_int_t)c->counts[top[k]]));
        json_array_append_new(a, o);
    }
    return a;
}

static void counter_free(struct counter *c)
{
    for (size_t i = 0; i < c->cap; i++)
        free(c->keys[i]);
    free(c->keys);
    free(c->counts);
}

/* named - a short fixed list of (name, count) (statuses, categories) */
struct named {
    char name[40];
    uint64_t count;
};

static void named_add(struct named *v, size_t *n, size_t max, const char *name)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(v[i].name, name) == 0) {
            v[i].count++;
            return;
        }
    }
    if (*n < max) {
        core_strlcpy(v[*n].name, name, sizeof v[*n].name);
        v[(*n)++].count = 1;
    }
}

static json_t *named_json(struct named *v, size_t n, const char *key)
{
    /* by count, descending (insertion sort: at most 16) */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && v[j].count > v[j - 1].count; j--) {
            struct named t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:s,s:I}", key, v[i].name, "count", (json_int_t)v[i].count));
    return a;
}

/* message_categories - the distinct detection categories of a message's
 * threats column ("virus,spam": written with the row, store_tracking.c) */
static size_t message_categories(const char *threats, struct named *cats, size_t max)
{
    size_t n = 0;
    for (const char *p = threats; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char name[40];
        if (len && len < sizeof name) {
            memcpy(name, p, len);
            name[len] = '\0';
            named_add(cats, &n, max, name);
        }
        p += len + (e ? 1 : 0);
    }
    return n;
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
    /* about 24 buckets of a round size: 5 min, 1 h or 1 day */
    double bucket = span <= 2 * 3600 ? 300 : span <= 2 * 86400 ? 3600 : 86400;
    size_t nb = (size_t)(span / bucket) + 1;
    if (nb > 10000)
        nb = 10000;
    uint64_t *tot_b = xcalloc(nb, sizeof *tot_b), *thr_b = xcalloc(nb, sizeof *thr_b);
    uint64_t *type_b = xcalloc(nb * STATS_CATS_MAX, sizeof *type_b); /* [type index * nb + bucket] */
    uint64_t messages = 0, accepted = 0, rejected = 0, recipients = 0, threats = 0;
    struct named statuses[STATS_STATUS_MAX], types[STATS_CATS_MAX];
    size_t nstatus = 0, ntypes = 0;
    struct counter senders, rcpts, targeted;
    counter_init(&senders);
    counter_init(&rcpts);
    counter_init(&targeted);
    char *text = NULL;
    sqlite3_stmt *s = store_stmt(st, SQL_ST_ROWS);
    if (!s)
        goto out;
    sqlite3_bind_double(s, 1, q->since);
    sqlite3_bind_double(s, 2, q->until);
    store_bind_text(s, 3, q->company_id);
    store_bind_text(s, 4, lk);
    int64_t last = -1;
    bool threat = false;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(s, 0);
        if (id != last) { /* a new message */
            last = id;
            messages++;
            const char *action = (const char *)sqlite3_column_text(s, 3);
            accepted += action && strcmp(action, "accepted") == 0;
            rejected += action && strcmp(action, "rejected") == 0;
            const char *sender = (const char *)sqlite3_column_text(s, 2);
            counter_add(&senders, sender ? sender : "");
            double t = sqlite3_column_double(s, 1) - q->since;
            size_t b = t < 0 ? 0 : (size_t)(t / bucket);
            if (b >= nb)
                b = nb - 1;
            tot_b[b]++;
            const char *detail = (const char *)sqlite3_column_text(s, 6);
            threat = false;
            if (detail) {
                struct named cats[STATS_CATS_MAX];
                size_t nc = message_categories(detail, cats, STATS_CATS_MAX);
                for (size_t k = 0; k < nc; k++) {
                    named_add(types, &ntypes, STATS_CATS_MAX, cats[k].name);
                    for (size_t j = 0; j < ntypes; j++) /* its index: types is sorted only at the end */
                        if (strcmp(types[j].name, cats[k].name) == 0)
                            type_b[j * nb + b]++;
                }
                threat = nc > 0;
            }
            threats += threat;
            thr_b[b] += threat;
        }
        recipients++;
        const char *rcpt = (const char *)sqlite3_column_text(s, 4);
        named_add(statuses, &nstatus, STATS_STATUS_MAX, (const char *)sqlite3_column_text(s, 5));
        counter_add(&rcpts, rcpt ? rcpt : "");
        if (threat)
            counter_add(&targeted, rcpt ? rcpt : "");
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_log_error(st, "stats");
        goto out;
    }
    json_t *o = json_object();
    json_object_set_new(o, "since", json_real(q->since));
    json_object_set_new(o, "until", json_real(q->until));
    json_object_set_new(o, "domain", lk ? json_string(q->domain) : json_null());
    json_object_set_new(o, "totals", json_pack("{s:I,s:I,s:I,s:I,s:I}", "messages", (json_int_t)messages, "accepted",
                                               (json_int_t)accepted, "rejected", (json_int_t)rejected, "recipients",
                                               (json_int_t)recipients, "threats", (json_int_t)threats));
    json_object_set_new(o, "recipients_by_status", named_json(statuses, nstatus, "status"));
    json_t *by_type = json_object(); /* before named_json sorts types */
    for (size_t j = 0; j < ntypes; j++) {
        json_t *a = json_array();
        for (size_t i = 0; i < nb; i++)
            json_array_append_new(a, json_integer((json_int_t)type_b[j * nb + i]));
        json_object_set_new(by_type, types[j].name, a);
    }
    json_object_set_new(o, "series_by_type", by_type);
    json_object_set_new(o, "threats_by_type", named_json(types, ntypes, "type"));
    json_object_set_new(o, "top_senders", counter_top(&senders, "sender"));
    json_object_set_new(o, "top_recipients", counter_top(&rcpts, "rcpt"));
    json_object_set_new(o, "top_targeted_recipients", counter_top(&targeted, "rcpt"));
    json_object_set_new(o, "truncated", json_boolean(senders.full || rcpts.full || targeted.full));
    json_t *series = json_array();
    for (size_t i = 0; i < nb; i++)
        json_array_append_new(series, json_pack("{s:f,s:I,s:I}", "start", q->since + (double)i * bucket, "messages",
                                                (json_int_t)tot_b[i], "threats", (json_int_t)thr_b[i]));
    json_object_set_new(o, "bucket_seconds", json_real(bucket));
    json_object_set_new(o, "series", series);
    text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
out:
    free(tot_b);
    free(thr_b);
    free(type_b);
    counter_free(&senders);
    counter_free(&rcpts);
    counter_free(&targeted);
    return text;
}
