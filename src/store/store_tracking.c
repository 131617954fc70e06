/*
 * store_tracking.c - message tracking: the batched background writer and the
 * queries (search, timeline, purge).
 *
 *   tracker_start / _stop           the writer thread and its own connection
 *   tracker_message / _recipient /  copy a record into the in-memory queue
 *   tracker_event                   (never blocks on the database)
 *   tracker_flush                   wait until everything queued so far is written
 *   store_tracking_search           per-recipient rows, newest first
 *   store_tracking_timeline         one message's events as a JSON array
 *   store_tracking_purge            delete tracking older than a time
 *
 * Tables: track_messages (one row per queue ID), track_recipients (one row
 * per message and recipient: current status, last server/TLS/reply, and the
 * recipient's tenant), track_events (the timeline). The writer takes up to
 * TRACKER_BATCH records at a time, waiting at most TRACKER_LINGER_MS for a
 * batch to fill, and writes each batch in one transaction. The queue is
 * bounded (TRACKER_QUEUE_MAX): beyond it records are dropped and counted,
 * and a warning is logged - mail flow never waits for tracking.
 *
 * Tenant isolation: a recipient row carries the company_id given by the
 * caller (or, when NULL, the tenant owning the recipient's domain). Every
 * query with a company_id only sees that tenant's recipient rows and, in a
 * timeline, the message-level events plus that tenant's recipient events;
 * a message with none of its recipients is "not found" for that tenant.
 */
#include "store/store_int.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>

#define TRACKER_BATCH 500
#define TRACKER_LINGER_MS 100
#define TRACKER_QUEUE_MAX 100000
#define TRACK_SEARCH_DEFAULT 1000
#define TRACK_SEARCH_MAX 1000000
#define TRACK_PURGE_CHUNK 5000

enum trec_kind { TREC_MESSAGE, TREC_RECIPIENT, TREC_EVENT };

/* one queued record: a deep copy of the caller's struct */
struct trec {
    struct trec *next;
    enum trec_kind kind;
    double time;
    char *qid;
    char *direction, *client_ip, *helo, *tls, *sender, *message_id, *subject, *header_from, *action, *reason;
    uint64_t size;
    char **rcpts, **companies;
    size_t nrcpts;
    char *rcpt, *status, *server, *reply, *event, *detail;
    char *scan, *detections;
};

struct tracker {
    struct store *st; /* used only by the writer thread */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* writer: records, flush or stop */
    pthread_cond_t done; /* flushers: a batch was written */
    struct trec *head, *tail;
    size_t queued;
    uint64_t enqueued, written, dropped;
    unsigned flushers;
    bool stop;
};

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void trec_free(struct trec *r)
{
    char **strs[] = {&r->qid,        &r->direction, &r->client_ip,   &r->helo,   &r->tls,    &r->sender,
                     &r->message_id, &r->subject,   &r->header_from, &r->action, &r->reason, &r->rcpt,
                     &r->status,     &r->server,    &r->reply,       &r->event,  &r->detail,
                     &r->scan,       &r->detections};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(*strs[i]);
    for (size_t i = 0; i < r->nrcpts; i++) {
        free(r->rcpts[i]);
        free(r->companies[i]);
    }
    free(r->rcpts);
    free(r->companies);
    free(r);
}

/* ---------------------------------------------------------------- writer SQL */
static const char SQL_TM_UPSERT[] =
    "INSERT INTO track_messages(qid, time, direction, client_ip, helo, tls, sender, size, message_id,"
    " subject, header_from, action, reason, threats) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(qid) DO UPDATE SET time = MIN(time, excluded.time), direction = excluded.direction,"
    " client_ip = excluded.client_ip, helo = excluded.helo, tls = excluded.tls, sender = excluded.sender,"
    " size = excluded.size, message_id = excluded.message_id, subject = excluded.subject,"
    " header_from = excluded.header_from, action = excluded.action, reason = excluded.reason,"
    " threats = COALESCE(excluded.threats, threats) RETURNING id";
static const char SQL_TM_ENSURE[] =
    "INSERT INTO track_messages(qid, time) VALUES(?, ?)"
    " ON CONFLICT(qid) DO UPDATE SET time = MIN(time, excluded.time) RETURNING id";
static const char SQL_TM_ID[] = "SELECT id FROM track_messages WHERE qid = ?";
static const char SQL_TR_ADD[] =
    "INSERT INTO track_recipients(message, rcpt, company_id, time) VALUES(?, ?, ?, ?)"
    " ON CONFLICT(message, rcpt) DO UPDATE SET"
    " company_id = COALESCE(excluded.company_id, company_id)";
static const char SQL_TR_UPSERT[] =
    "INSERT INTO track_recipients(message, rcpt, company_id, status, time, server, tls, reply)"
    " VALUES(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(message, rcpt) DO UPDATE SET status = excluded.status,"
    " time = excluded.time, server = COALESCE(excluded.server, server), tls = COALESCE(excluded.tls, tls),"
    " reply = COALESCE(excluded.reply, reply) RETURNING company_id";
static const char SQL_TR_COMPANY[] = "SELECT company_id FROM track_recipients WHERE message = ? AND rcpt = ?";
static const char SQL_TE_ADD[] =
    "INSERT INTO track_events(message, time, rcpt, company_id, event, detail) VALUES(?, ?, ?, ?, ?, ?)";
static const char SQL_DOMAIN_OWNER[] =
    "SELECT t.company_id FROM domains d JOIN tenants t ON t.id = d.tenant_id"
    " WHERE d.name = ? ORDER BY d.verified DESC LIMIT 1";

/* id_query - run a statement returning one id row (qid bound at 1) */
static int64_t id_query(struct store *st, sqlite3_stmt *s)
{
    int64_t id = -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        id = sqlite3_column_int64(s, 0);
    else
        store_log_error(st, "tracking id");
    sqlite3_reset(s);
    return id;
}

/* domain_owner - company_id owning the domain of addr, or NULL; caller frees */
static char *domain_owner(struct store *st, const char *addr)
{
    const char *at = addr ? strrchr(addr, '@') : NULL;
    char dom[STORE_DOMAIN_MAX + 2];
    if (!at || strlen(at + 1) >= sizeof dom)
        return NULL;
    size_t n = core_strlcpy(dom, at + 1, sizeof dom);
    for (size_t i = 0; i < n; i++)
        dom[i] = (char)tolower((unsigned char)dom[i]);
    sqlite3_stmt *s = store_stmt(st, SQL_DOMAIN_OWNER);
    if (!s)
        return NULL;
    store_bind_text(s, 1, dom);
    char *c = NULL;
    if (sqlite3_step(s) == SQLITE_ROW)
        c = store_col_dup(s, 0);
    sqlite3_reset(s);
    return c;
}

static void json_put(json_t *o, const char *k, const char *v)
{
    if (v)
        json_object_set_new(o, k, json_stringn_nocheck(v, strlen(v)));
}

/* json_text - a compact JSON object text (caller frees); strings that are not
 * valid UTF-8 are stored with the invalid bytes replaced */
static char *json_text(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        fatal("out of memory");
    return s;
}

/* utf8_clean - a copy with invalid UTF-8 bytes replaced by '?' (tracking
 * stores what clients sent; JSON needs valid UTF-8) */
static char *utf8_clean(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *o = xmalloc(n + 1);
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80             ? 1
                   : (c & 0xE0) == 0xC0 ? 2
                   : (c & 0xF0) == 0xE0 ? 3
                   : (c & 0xF8) == 0xF0 ? 4
                                        : 0;
        bool ok = k > 0 && i + k <= n;
        for (size_t j = 1; ok && j < k; j++)
            ok = ((unsigned char)s[i + j] & 0xC0) == 0x80;
        if (ok && k == 2 && c < 0xC2)
            ok = false;
        if (ok && k == 3 &&
            ((c == 0xE0 && (unsigned char)s[i + 1] < 0xA0) || (c == 0xED && (unsigned char)s[i + 1] >= 0xA0)))
            ok = false; /* overlong or surrogate */
        if (ok && k == 4 &&
            ((c == 0xF0 && (unsigned char)s[i + 1] < 0x90) ||
             (c == 0xF4 && (unsigned char)s[i + 1] >= 0x90) || c > 0xF4))
            ok = false;
        if (ok) {
            memcpy(o + i, s + i, k);
            i += k;
        } else {
            o[i++] = '?';
        }
    }
    o[n] = '\0';
    return o;
}

/* threat_categories - the distinct "category" values of a detections JSON
 * array, comma-separated (the row's threats column), or NULL for none */
static char *threat_categories(const json_t *dets)
{
    struct buf b;
    buf_init(&b, 1024);
    size_t i;
    json_t *x;
    json_array_foreach(dets, i, x) {
        const char *c = json_string_value(json_object_get(x, "category"));
        if (!c || !c[0] || strchr(c, ','))
            continue;
        bool seen = false; /* distinct: a handful of categories, a linear look */
        for (const char *p = b.ptr; p && *p && !seen;) {
            const char *e = strchr(p, ',');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            seen = n == strlen(c) && strncmp(p, c, n) == 0;
            p = e ? e + 1 : p + n;
        }
        if (!seen && (b.len ? buf_append_str(&b, ",") : 0) == 0)
            buf_append_str(&b, c);
    }
    if (!b.len) {
        buf_free(&b);
        return NULL;
    }
    buf_cstr(&b); /* NUL-terminates; the buffer becomes the caller's string */
    return b.ptr;
}

static int write_message(struct store *st, const struct trec *r)
{
    sqlite3_stmt *s = store_stmt(st, SQL_TM_UPSERT);
    if (!s)
        return -1;
    json_t *dets = r->detections ? json_loads(r->detections, 0, NULL) : NULL;
    char *threats = json_is_array(dets) ? threat_categories(dets) : NULL;
    store_bind_text(s, 1, r->qid);
    sqlite3_bind_double(s, 2, r->time);
    store_bind_text(s, 3, r->direction);
    store_bind_text(s, 4, r->client_ip);
    store_bind_text(s, 5, r->helo);
    store_bind_text(s, 6, r->tls);
    store_bind_text(s, 7, r->sender);
    sqlite3_bind_int64(s, 8, (sqlite3_int64)(r->size > INT64_MAX ? INT64_MAX : r->size));
    store_bind_text(s, 9, r->message_id);
    store_bind_text(s, 10, r->subject);
    store_bind_text(s, 11, r->header_from);
    store_bind_text(s, 12, r->action);
    store_bind_text(s, 13, r->reason);
    store_bind_text(s, 14, threats);
    int64_t mid = id_query(st, s);
    free(threats);
    if (mid < 0) {
        json_decref(dets);
        return -1;
    }
    for (size_t i = 0; i < r->nrcpts; i++) {
        char *owner = r->companies[i] ? NULL : domain_owner(st, r->rcpts[i]);
        if (!(s = store_stmt(st, SQL_TR_ADD))) {
            free(owner);
            json_decref(dets);
            return -1;
        }
        sqlite3_bind_int64(s, 1, mid);
        store_bind_text(s, 2, r->rcpts[i]);
        store_bind_text(s, 3, r->companies[i] ? r->companies[i] : owner);
        sqlite3_bind_double(s, 4, r->time);
        int rc = store_step_done(st, s);
        free(owner);
        if (rc < 0) {
            json_decref(dets);
            return -1;
        }
    }
    json_t *d = json_object();
    json_put(d, "direction", r->direction);
    json_put(d, "client_ip", r->client_ip);
    json_put(d, "helo", r->helo);
    json_put(d, "tls", r->tls);
    json_put(d, "sender", r->sender);
    json_object_set_new(d, "size", json_integer((json_int_t)(r->size > INT64_MAX ? INT64_MAX : r->size)));
    json_put(d, "message_id", r->message_id);
    json_put(d, "subject", r->subject);
    json_put(d, "header_from", r->header_from);
    json_put(d, "reason", r->reason);
    json_put(d, "scan", r->scan);
    if (json_is_array(dets))
        json_object_set_new(d, "detections", dets);
    else
        json_decref(dets);
    char *detail = json_text(d);
    if (!(s = store_stmt(st, SQL_TE_ADD))) {
        free(detail);
        return -1;
    }
    sqlite3_bind_int64(s, 1, mid);
    sqlite3_bind_double(s, 2, r->time);
    sqlite3_bind_null(s, 3);
    sqlite3_bind_null(s, 4);
    store_bind_text(s, 5, r->action ? r->action : "received");
    store_bind_text(s, 6, detail);
    int rc = store_step_done(st, s);
    free(detail);
    return rc;
}

/* message_row_id - the id of qid's message row; a minimal row (qid, time)
 * is inserted first when an event arrives before the message's own */
static int64_t message_row_id(struct store *st, const struct trec *r)
{
    sqlite3_stmt *s = store_stmt(st, SQL_TM_ENSURE);
    if (!s)
        return -1;
    store_bind_text(s, 1, r->qid);
    sqlite3_bind_double(s, 2, r->time);
    return id_query(st, s);
}

static int write_recipient(struct store *st, const struct trec *r)
{
    int64_t mid = message_row_id(st, r);
    if (mid < 0)
        return -1;
    char *owner = domain_owner(st, r->rcpt);
    sqlite3_stmt *s = store_stmt(st, SQL_TR_UPSERT);
    if (!s) {
        free(owner);
        return -1;
    }
    sqlite3_bind_int64(s, 1, mid);
    store_bind_text(s, 2, r->rcpt);
    store_bind_text(s, 3, owner);
    store_bind_text(s, 4, r->status);
    sqlite3_bind_double(s, 5, r->time);
    store_bind_text(s, 6, r->server);
    store_bind_text(s, 7, r->tls);
    store_bind_text(s, 8, r->reply);
    free(owner);
    char *company = NULL;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        company = store_col_dup(s, 0);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW) {
        store_log_error(st, "tracking recipient");
        return -1;
    }
    json_t *d = json_object();
    json_put(d, "status", r->status);
    json_put(d, "server", r->server);
    json_put(d, "tls", r->tls);
    json_put(d, "reply", r->reply);
    char *detail = json_text(d);
    if (!(s = store_stmt(st, SQL_TE_ADD))) {
        free(detail);
        free(company);
        return -1;
    }
    sqlite3_bind_int64(s, 1, mid);
    sqlite3_bind_double(s, 2, r->time);
    store_bind_text(s, 3, r->rcpt);
    store_bind_text(s, 4, company);
    store_bind_text(s, 5, r->status ? r->status : "status");
    store_bind_text(s, 6, detail);
    rc = store_step_done(st, s);
    free(detail);
    free(company);
    return rc;
}

static int write_event(struct store *st, const struct trec *r)
{
    int64_t mid = message_row_id(st, r);
    if (mid < 0)
        return -1;
    char *company = NULL;
    sqlite3_stmt *s;
    if (r->rcpt) {
        if (!(s = store_stmt(st, SQL_TR_COMPANY)))
            return -1;
        sqlite3_bind_int64(s, 1, mid);
        store_bind_text(s, 2, r->rcpt);
        if (sqlite3_step(s) == SQLITE_ROW)
            company = store_col_dup(s, 0);
        sqlite3_reset(s);
        if (!company)
            company = domain_owner(st, r->rcpt);
    }
    json_t *d = json_object();
    json_put(d, "text", r->detail);
    char *detail = json_text(d);
    if (!(s = store_stmt(st, SQL_TE_ADD))) {
        free(detail);
        free(company);
        return -1;
    }
    sqlite3_bind_int64(s, 1, mid);
    sqlite3_bind_double(s, 2, r->time);
    store_bind_text(s, 3, r->rcpt);
    store_bind_text(s, 4, company);
    store_bind_text(s, 5, r->event ? r->event : "event");
    store_bind_text(s, 6, detail);
    int rc = store_step_done(st, s);
    free(detail);
    free(company);
    return rc;
}

/* write_batch - one transaction for the whole batch; -1 rolled back */
static int write_batch(struct store *st, const struct trec *batch)
{
    if (store_begin(st) < 0)
        return -1;
    for (const struct trec *r = batch; r; r = r->next) {
        int rc = r->kind == TREC_MESSAGE     ? write_message(st, r)
                 : r->kind == TREC_RECIPIENT ? write_recipient(st, r)
                                             : write_event(st, r);
        if (rc < 0) {
            store_rollback(st);
            return -1;
        }
    }
    if (store_commit(st) < 0) {
        store_rollback(st);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- the writer thread */
static void deadline_ms(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *tracker_main(void *arg)
{
    struct tracker *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->head && !t->stop)
            pthread_cond_wait(&t->wake, &t->mu);
        if (!t->head)
            break; /* stopping and drained */
        if (t->queued < TRACKER_BATCH && !t->stop && t->flushers == 0) {
            struct timespec dl;
            deadline_ms(&dl, TRACKER_LINGER_MS);
            while (t->queued < TRACKER_BATCH && !t->stop && t->flushers == 0)
                if (pthread_cond_timedwait(&t->wake, &t->mu, &dl) == ETIMEDOUT)
                    break;
        }
        struct trec *batch = t->head, *last = batch; /* head is not NULL here */
        size_t n = 1;
        while (last->next && n < TRACKER_BATCH) {
            last = last->next;
            n++;
        }
        t->head = last->next;
        last->next = NULL;
        if (!t->head)
            t->tail = NULL;
        t->queued -= n;
        pthread_mutex_unlock(&t->mu);

        if (write_batch(t->st, batch) < 0 && write_batch(t->st, batch) < 0)
            log_error("tracking batch lost records=%zu reason=database", n);
        while (batch) {
            struct trec *next = batch->next;
            trec_free(batch);
            batch = next;
        }

        pthread_mutex_lock(&t->mu);
        t->written += n;
        pthread_cond_broadcast(&t->done);
    }
    pthread_cond_broadcast(&t->done);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

struct tracker *tracker_start(const struct moat_config *cfg, char *err, size_t errsz)
{
    struct tracker *t = xcalloc(1, sizeof *t);
    if (store_open(cfg, &t->st, err, errsz) < 0) {
        free(t);
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->wake, &ca);
    pthread_cond_init(&t->done, NULL);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&t->thread, NULL, tracker_main, t);
    if (rc != 0) {
        snprintf(err, errsz, "tracker thread: %s", strerror(rc));
        pthread_cond_destroy(&t->wake);
        pthread_cond_destroy(&t->done);
        pthread_mutex_destroy(&t->mu);
        store_close(t->st);
        free(t);
        return NULL;
    }
    return t;
}

/* tracker_push - append r, or drop it when the queue is full */
static void tracker_push(struct tracker *t, struct trec *r)
{
    uint64_t dropped = 0;
    pthread_mutex_lock(&t->mu);
    if (t->queued >= TRACKER_QUEUE_MAX || t->stop) {
        dropped = ++t->dropped;
    } else {
        if (t->tail)
            t->tail->next = r;
        else
            t->head = r;
        t->tail = r;
        t->queued++;
        t->enqueued++;
        if (t->queued == 1 || t->queued >= TRACKER_BATCH)
            pthread_cond_signal(&t->wake);
    }
    pthread_mutex_unlock(&t->mu);
    if (dropped) {
        trec_free(r);
        if ((dropped & (dropped - 1)) == 0 || dropped % 10000 == 0)
            log_warn("tracking queue full, record dropped dropped=%llu limit=%d", (unsigned long long)dropped,
                     TRACKER_QUEUE_MAX);
    }
}

static char *qid_or_new(const char *qid)
{
    if (qid && *qid)
        return utf8_clean(qid);
    char q[CORE_QID_LEN + 1];
    core_qid_new(q);
    return xstrdup(q);
}

void tracker_message(struct tracker *t, const struct track_message *m)
{
    if (!t || !m)
        return;
    metric_message(m->direction, m->action, m->scan, m->reason);
    struct trec *r = xcalloc(1, sizeof *r);
    r->kind = TREC_MESSAGE;
    r->time = m->time > 0 ? m->time : core_now();
    r->qid = qid_or_new(m->qid);
    r->direction = utf8_clean(m->direction);
    r->client_ip = utf8_clean(m->client_ip);
    r->helo = utf8_clean(m->helo);
    r->tls = utf8_clean(m->tls);
    r->sender = utf8_clean(m->sender);
    r->size = m->size;
    r->message_id = utf8_clean(m->message_id);
    r->subject = utf8_clean(m->subject);
    r->header_from = utf8_clean(m->header_from);
    r->action = utf8_clean(m->action);
    r->reason = utf8_clean(m->reason);
    r->scan = utf8_clean(m->scan);
    r->detections = utf8_clean(m->detections);
    if (m->nrcpts && m->rcpts) {
        r->rcpts = xcalloc(m->nrcpts, sizeof *r->rcpts);
        r->companies = xcalloc(m->nrcpts, sizeof *r->companies);
        for (size_t i = 0; i < m->nrcpts; i++) {
            if (!m->rcpts[i])
                continue;
            r->rcpts[r->nrcpts] = utf8_clean(m->rcpts[i]);
            r->companies[r->nrcpts] = m->rcpt_company ? dup_or_null(m->rcpt_company[i]) : NULL;
            r->nrcpts++;
        }
    }
    tracker_push(t, r);
}

void tracker_recipient(struct tracker *t, const struct track_recipient *rc)
{
    if (!t || !rc || !rc->rcpt)
        return;
    metric_delivery(rc->status);
    struct trec *r = xcalloc(1, sizeof *r);
    r->kind = TREC_RECIPIENT;
    r->time = rc->time > 0 ? rc->time : core_now();
    r->qid = qid_or_new(rc->qid);
    r->rcpt = utf8_clean(rc->rcpt);
    r->status = utf8_clean(rc->status);
    r->server = utf8_clean(rc->server);
    r->tls = utf8_clean(rc->tls);
    r->reply = utf8_clean(rc->reply);
    tracker_push(t, r);
}

void tracker_event(struct tracker *t, const struct track_event *e)
{
    if (!t || !e || !e->qid)
        return;
    struct trec *r = xcalloc(1, sizeof *r);
    r->kind = TREC_EVENT;
    r->time = e->time > 0 ? e->time : core_now();
    r->qid = utf8_clean(e->qid);
    r->rcpt = utf8_clean(e->rcpt);
    r->event = utf8_clean(e->event);
    r->detail = utf8_clean(e->detail);
    tracker_push(t, r);
}

uint64_t tracker_dropped(struct tracker *t)
{
    pthread_mutex_lock(&t->mu);
    uint64_t d = t->dropped;
    pthread_mutex_unlock(&t->mu);
    return d;
}

void tracker_flush(struct tracker *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    uint64_t target = t->enqueued;
    t->flushers++;
    pthread_cond_signal(&t->wake);
    while (t->written < target)
        pthread_cond_wait(&t->done, &t->mu);
    t->flushers--;
    pthread_mutex_unlock(&t->mu);
}

void tracker_stop(struct tracker *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    if (t->dropped)
        log_warn("tracking stopped dropped=%llu", (unsigned long long)t->dropped);
    store_close(t->st);
    pthread_cond_destroy(&t->wake);
    pthread_cond_destroy(&t->done);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* ---------------------------------------------------------------- search */
/* like_pattern - LIKE pattern (ESCAPE '\') from a '*'-wildcard one */
static char *like_pattern(const char *in, bool substring)
{
    size_t n = strlen(in);
    char *o = xmalloc(2 * n + 3), *p = o;
    if (substring)
        *p++ = '%';
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '%' || c == '_' || c == '\\') {
            *p++ = '\\';
            *p++ = c;
        } else if (c == '*' && !substring) {
            *p++ = '%';
        } else {
            *p++ = c;
        }
    }
    if (substring)
        *p++ = '%';
    *p = '\0';
    return o;
}

long store_tracking_search(struct store *st, const struct track_query *q, struct track_row **out)
{
    struct buf sql;
    char *pats[4] = {NULL, NULL, NULL, NULL};
    int np = 0;
    long n = 0, cap = 0;
    struct track_row *rows = NULL;
    sqlite3_stmt *s = NULL;
    *out = NULL;
    buf_init(&sql, 4096);
    buf_append_str(&sql,
                   "SELECT m.qid, m.time, m.sender, r.rcpt, m.action, r.status, m.subject, m.client_ip,"
                   " r.server, r.reply, m.tls, m.message_id, m.reason, m.size, r.tls FROM track_messages m");
    buf_append_str(&sql, q->company_id ? " JOIN track_recipients r ON r.message = m.id AND r.company_id = ?"
                                       : " LEFT JOIN track_recipients r ON r.message = m.id");
    buf_append_str(&sql, " WHERE 1");
    if (q->since > 0)
        buf_append_str(&sql, " AND m.time >= ?");
    if (q->until > 0)
        buf_append_str(&sql, " AND m.time <= ?");
    if (q->rcpt)
        buf_append_str(&sql, strchr(q->rcpt, '*') ? " AND r.rcpt LIKE ? ESCAPE '\\'" : " AND r.rcpt = ?");
    if (q->sender)
        buf_append_str(&sql,
                       strchr(q->sender, '*') ? " AND m.sender LIKE ? ESCAPE '\\'" : " AND m.sender = ?");
    if (q->action)
        buf_append_str(&sql, " AND (m.action = ? COLLATE NOCASE OR r.status = ? COLLATE NOCASE)");
    if (q->subject)
        buf_append_str(&sql, " AND m.subject LIKE ? ESCAPE '\\'");
    if (q->qid)
        buf_append_str(&sql, " AND m.qid = ?");
    if (q->direction)
        buf_append_str(&sql, " AND m.direction = ?");
    if (q->header_from)
        buf_append_str(&sql, " AND m.header_from LIKE ? ESCAPE '\\'");
    if (q->client_ip)
        buf_append_str(&sql, " AND m.client_ip = ?");
    if (buf_append_str(&sql, " ORDER BY m.time DESC, m.id DESC, r.id ASC LIMIT ?") < 0)
        goto fail;
    if (sqlite3_prepare_v2(st->db, buf_cstr(&sql), -1, &s, NULL) != SQLITE_OK) {
        store_log_error(st, "tracking search");
        goto fail;
    }
    int i = 1;
    if (q->company_id)
        store_bind_text(s, i++, q->company_id);
    if (q->since > 0)
        sqlite3_bind_double(s, i++, q->since);
    if (q->until > 0)
        sqlite3_bind_double(s, i++, q->until);
    if (q->rcpt) {
        pats[np] = strchr(q->rcpt, '*') ? like_pattern(q->rcpt, false) : xstrdup(q->rcpt);
        store_bind_text(s, i++, pats[np++]);
    }
    if (q->sender) {
        pats[np] = strchr(q->sender, '*') ? like_pattern(q->sender, false) : xstrdup(q->sender);
        store_bind_text(s, i++, pats[np++]);
    }
    if (q->action) {
        store_bind_text(s, i++, q->action);
        store_bind_text(s, i++, q->action);
    }
    if (q->subject) {
        pats[np] = like_pattern(q->subject, true);
        store_bind_text(s, i++, pats[np++]);
    }
    if (q->qid)
        store_bind_text(s, i++, q->qid);
    if (q->direction)
        store_bind_text(s, i++, q->direction);
    if (q->header_from) {
        pats[np] = like_pattern(q->header_from, true);
        store_bind_text(s, i++, pats[np++]);
    }
    if (q->client_ip)
        store_bind_text(s, i++, q->client_ip);
    size_t limit = q->limit ? q->limit : TRACK_SEARCH_DEFAULT;
    if (limit > TRACK_SEARCH_MAX)
        limit = TRACK_SEARCH_MAX;
    sqlite3_bind_int64(s, i, (sqlite3_int64)limit);

    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            rows = xrealloc(rows, (size_t)cap * sizeof *rows);
        }
        struct track_row *r = &rows[n++];
        memset(r, 0, sizeof *r);
        const unsigned char *qid = sqlite3_column_text(s, 0);
        core_strlcpy(r->qid, qid ? (const char *)qid : "", sizeof r->qid);
        r->time = sqlite3_column_double(s, 1);
        r->sender = store_col_dup(s, 2);
        r->rcpt = store_col_dup(s, 3);
        r->action = store_col_dup(s, 4);
        r->status = store_col_dup(s, 5);
        r->subject = store_col_dup(s, 6);
        r->client_ip = store_col_dup(s, 7);
        r->server = store_col_dup(s, 8);
        r->reply = store_col_dup(s, 9);
        r->tls = store_col_dup(s, 10);
        r->message_id = store_col_dup(s, 11);
        r->reason = store_col_dup(s, 12);
        r->size = (uint64_t)sqlite3_column_int64(s, 13);
        r->delivery_tls = store_col_dup(s, 14);
    }
    if (rc != SQLITE_DONE) {
        store_log_error(st, "tracking search");
        goto fail;
    }
    sqlite3_finalize(s);
    buf_free(&sql);
    for (int k = 0; k < np; k++)
        free(pats[k]);
    *out = rows;
    return n;
fail:
    sqlite3_finalize(s);
    buf_free(&sql);
    for (int k = 0; k < np; k++)
        free(pats[k]);
    store_tracking_rows_free(rows, n);
    return -1;
}

void store_tracking_rows_free(struct track_row *rows, long n)
{
    for (long i = 0; i < n; i++) {
        struct track_row *r = &rows[i];
        char *strs[] = {r->sender, r->rcpt,  r->action, r->status,     r->subject, r->client_ip,
                        r->server, r->reply, r->tls,    r->message_id, r->reason,  r->delivery_tls};
        for (size_t k = 0; k < sizeof strs / sizeof strs[0]; k++)
            free(strs[k]);
    }
    free(rows);
}

/* ---------------------------------------------------------------- timeline */
static const char SQL_TL_RCPTS_ALL[] =
    "SELECT rcpt, status FROM track_recipients WHERE message = ? ORDER BY id";
static const char SQL_TL_RCPTS_TENANT[] =
    "SELECT rcpt, status FROM track_recipients WHERE message = ? AND company_id = ? ORDER BY id";
static const char SQL_TL_EVENTS_ALL[] =
    "SELECT time, rcpt, event, detail FROM track_events WHERE message = ? ORDER BY time, id";
static const char SQL_TL_EVENTS_TENANT[] =
    "SELECT time, rcpt, event, detail FROM track_events WHERE message = ?"
    " AND (rcpt IS NULL OR company_id = ?) ORDER BY time, id";

char *store_tracking_timeline(struct store *st, const char *company_id, const char *qid)
{
    char *out = NULL;
    json_t *rcpts = json_array(), *events = json_array();
    if (!qid || store_begin_read(st) < 0)
        goto done;
    sqlite3_stmt *s = store_stmt(st, SQL_TM_ID);
    if (!s)
        goto done;
    store_bind_text(s, 1, qid);
    int64_t mid = -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        mid = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (mid < 0)
        goto done;

    if (!(s = store_stmt(st, company_id ? SQL_TL_RCPTS_TENANT : SQL_TL_RCPTS_ALL)))
        goto done;
    sqlite3_bind_int64(s, 1, mid);
    if (company_id)
        store_bind_text(s, 2, company_id);
    while (sqlite3_step(s) == SQLITE_ROW)
        json_array_append_new(rcpts, json_string((const char *)sqlite3_column_text(s, 0)));
    sqlite3_reset(s);
    if (company_id && json_array_size(rcpts) == 0)
        goto done; /* not this tenant's message: same as not found */

    if (!(s = store_stmt(st, company_id ? SQL_TL_EVENTS_TENANT : SQL_TL_EVENTS_ALL)))
        goto done;
    sqlite3_bind_int64(s, 1, mid);
    if (company_id)
        store_bind_text(s, 2, company_id);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        char iso[40];
        double tm = sqlite3_column_double(s, 0);
        store_iso_time(tm, iso, sizeof iso);
        json_t *e = json_object();
        json_object_set_new(e, "time", json_string(iso));
        json_object_set_new(e, "ts", json_real(tm));
        json_object_set_new(e, "event", json_string((const char *)sqlite3_column_text(s, 2)));
        const unsigned char *rcpt = sqlite3_column_text(s, 1);
        if (rcpt)
            json_object_set_new(e, "rcpt", json_string((const char *)rcpt));
        const unsigned char *dt = sqlite3_column_text(s, 3);
        json_t *d = dt ? json_loads((const char *)dt, 0, NULL) : NULL;
        if (json_is_object(d))
            json_object_update(e, d);
        json_decref(d);
        if (!rcpt) {
            json_object_set_new(e, "qid", json_string(qid));
            json_object_set(e, "recipients", rcpts);
        }
        json_array_append_new(events, e);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_log_error(st, "tracking timeline");
        goto done;
    }
    out = json_dumps(events, JSON_INDENT(2));
done:
    store_rollback(st);
    json_decref(rcpts);
    json_decref(events);
    return out;
}

/* ---------------------------------------------------------------- purge */
static const char SQL_PURGE[] = "DELETE FROM track_messages WHERE id IN"
                                " (SELECT id FROM track_messages WHERE time < ? LIMIT 5000)";

long store_tracking_purge(struct store *st, double before)
{
    long total = 0;
    for (;;) {
        /* chunks keep each write transaction short for the tracker */
        if (store_begin(st) < 0)
            return -1;
        sqlite3_stmt *s = store_stmt(st, SQL_PURGE);
        if (!s) {
            store_rollback(st);
            return -1;
        }
        sqlite3_bind_double(s, 1, before);
        if (store_step_done(st, s) < 0) {
            store_rollback(st);
            return -1;
        }
        int n = sqlite3_changes(st->db);
        if (store_commit(st) < 0) {
            store_rollback(st);
            return -1;
        }
        total += n;
        if (n < TRACK_PURGE_CHUNK)
            break;
    }
    return total;
}
