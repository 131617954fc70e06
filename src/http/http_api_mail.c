/*
 * http_api_mail.c - the mail a tenant can see:
 *
 *   GET    /api/v1/tracking?since=&until=&rcpt=&sender=&action=&subject=&qid=&direction=&from=&ip=
 *                                            &limit=&format=csv
 *   GET    /api/v1/tracking/{qid}            the recipients' rows and the timeline
 *   GET    /api/v1/stats?domain=&since=&until=   the dashboard figures
 *   GET    /api/v1/quarantine?rcpt=&since=&until=&limit=
 *   GET    /api/v1/quarantine/{id}           the index row; ?content=1 adds the header
 *                                            block and the start of the message as text
 *   POST   /api/v1/quarantine/{id}/release   the rules after quarantine (quarantine_policy_after),
 *                                            then the queue
 *   DELETE /api/v1/quarantine/{id}
 *   POST   /api/v1/quarantine/bulk           {"action": "release"|"delete", "ids": [...]} (at most 1,000)
 *   GET    /api/v1/queue                     the node's delivery queue
 *
 * Tenant isolation: every query takes the request's scope (http_scope: a
 * tenant administrator's own tenant, never a value from the request), and
 * the store answers "not found" for another tenant's message or copy, which
 * answers 404 here exactly like a missing one. The queue, which is
 * node-local and not per tenant, is filtered by the owner of each
 * recipient's domain.
 */
#include "http/http_int.h"

#include <sodium.h>

#include <ctype.h>

#define PREVIEW_MAX (256 * 1024) /* message text shown by ?content=1 */

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* ---------------------------------------------------------------- tracking */
static json_t *track_row_json(const struct track_row *t)
{
    json_t *o = json_object();
    json_object_set_new(o, "time", http_iso(t->time));
    json_object_set_new(o, "ts", json_real(t->time));
    json_object_set_new(o, "qid", json_string(t->qid));
    json_object_set_new(o, "sender", str_or_null(t->sender));
    json_object_set_new(o, "rcpt", str_or_null(t->rcpt));
    json_object_set_new(o, "action", str_or_null(t->action));
    json_object_set_new(o, "status", str_or_null(t->status));
    json_object_set_new(o, "subject", str_or_null(t->subject));
    json_object_set_new(o, "client_ip", str_or_null(t->client_ip));
    json_object_set_new(o, "server", str_or_null(t->server));
    json_object_set_new(o, "reply", str_or_null(t->reply));
    json_object_set_new(o, "tls", str_or_null(t->tls));
    json_object_set_new(o, "delivery_tls", str_or_null(t->delivery_tls));
    json_object_set_new(o, "message_id", str_or_null(t->message_id));
    json_object_set_new(o, "reason", str_or_null(t->reason));
    json_object_set_new(o, "size", json_integer((json_int_t)(t->size > INT64_MAX ? INT64_MAX : t->size)));
    return o;
}

/* address_filter - rcpt / sender filters: printable, at most 254 bytes */
static int text_arg(struct http_request *r, const char *name, size_t max, const char **out)
{
    bool bad = false;
    const char *v = http_arg(r, name, &bad);
    if (bad)
        return -1;
    if (v && strlen(v) > max) {
        http_error(r, 400, "%s: at most %zu bytes", name, max);
        return -1;
    }
    *out = v && *v ? v : NULL;
    return 0;
}

/* tracking_csv - the rows as CSV (RFC 4180, UTF-8) */
static void tracking_csv(struct http_request *r, const struct track_row *rows, long n)
{
    struct buf b;
    buf_init(&b, (size_t)256 * 1024 * 1024);
    buf_append_str(&b, "time,qid,sender,recipient,action,status,subject,client_ip,server,reply,tls,delivery_tls,"
                       "message_id,size\r\n");
    for (long i = 0; i < n; i++) {
        const struct track_row *t = &rows[i];
        char when[40], size[24];
        json_t *iso = http_iso(t->time);
        core_strlcpy(when, json_is_string(iso) ? json_string_value(iso) : "", sizeof when);
        json_decref(iso);
        snprintf(size, sizeof size, "%llu", (unsigned long long)t->size);
        const char *f[] = {when,      t->qid,    t->sender, t->rcpt,  t->action, t->status,       t->subject,
                           t->client_ip, t->server, t->reply,  t->tls,   t->delivery_tls, t->message_id, size};
        for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
            core_csv_field(&b, f[k], k + 1 == sizeof f / sizeof f[0]);
    }
    buf_cstr(&b);
    http_reply_text(r, 200, "text/csv; charset=utf-8", b.ptr, b.len);
}

void http_api_tracking_search(struct http_request *r)
{
    bool bad;
    const char *scope = http_scope(r, &bad);
    if (bad)
        return;
    struct track_query q;
    memset(&q, 0, sizeof q);
    q.company_id = scope;
    uint64_t limit = 100;
    if (http_arg_time(r, "since", &q.since) < 0 || http_arg_time(r, "until", &q.until) < 0 ||
        http_arg_uint(r, "limit", HTTP_LIST_MAX, &limit) < 0 || text_arg(r, "rcpt", STORE_EMAIL_MAX, &q.rcpt) < 0 ||
        text_arg(r, "sender", STORE_EMAIL_MAX, &q.sender) < 0 || text_arg(r, "action", 32, &q.action) < 0 ||
        text_arg(r, "subject", 256, &q.subject) < 0 || text_arg(r, "qid", CORE_QID_LEN, &q.qid) < 0 ||
        text_arg(r, "direction", 16, &q.direction) < 0 || text_arg(r, "from", 256, &q.header_from) < 0 ||
        text_arg(r, "ip", 64, &q.client_ip) < 0)
        return;
    if (q.direction && strcmp(q.direction, "inbound") != 0 && strcmp(q.direction, "outbound") != 0) {
        http_error(r, 400, "direction: inbound or outbound");
        return;
    }
    q.limit = limit ? limit : 100;
    const char *format = NULL;
    if (text_arg(r, "format", 8, &format) < 0)
        return;
    bool csv = format && strcmp(format, "csv") == 0;
    if (format && !csv && strcmp(format, "json") != 0) {
        http_error(r, 400, "format: json or csv");
        return;
    }
    struct track_row *rows;
    long n = store_tracking_search(r->slot->st, &q, &rows);
    if (n < 0) {
        http_error(r, 500, "internal error");
        return;
    }
    if (csv) {
        tracking_csv(r, rows, n);
        store_tracking_rows_free(rows, n);
        return;
    }
    json_t *list = json_array();
    for (long i = 0; i < n; i++)
        json_array_append_new(list, track_row_json(&rows[i]));
    store_tracking_rows_free(rows, n);
    http_reply_json(r, 200, json_pack("{s:o,s:I}", "results", list, "count", (json_int_t)n));
}

void http_api_tracking_get(struct http_request *r)
{
    bool bad;
    const char *scope = http_scope(r, &bad);
    if (bad)
        return;
    const char *qid = r->args[0];
    if (!core_qid_valid(qid)) {
        http_not_found(r);
        return;
    }
    char *tl = store_tracking_timeline(r->slot->st, scope, qid);
    if (!tl) {
        http_not_found(r);
        return;
    }
    json_t *timeline = json_loads(tl, 0, NULL);
    free(tl);
    struct track_query q;
    memset(&q, 0, sizeof q);
    q.company_id = scope;
    q.qid = qid;
    q.limit = HTTP_LIST_MAX;
    struct track_row *rows;
    long n = store_tracking_search(r->slot->st, &q, &rows);
    if (n < 0 || !timeline) {
        json_decref(timeline);
        if (n > 0)
            store_tracking_rows_free(rows, n);
        http_error(r, 500, "internal error");
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "qid", json_string(qid));
    json_t *list = json_array();
    for (long i = 0; i < n; i++)
        json_array_append_new(list, track_row_json(&rows[i]));
    if (n > 0) {
        json_object_set_new(o, "time", http_iso(rows[0].time));
        json_object_set_new(o, "sender", str_or_null(rows[0].sender));
        json_object_set_new(o, "subject", str_or_null(rows[0].subject));
        json_object_set_new(o, "message_id", str_or_null(rows[0].message_id));
        json_object_set_new(o, "client_ip", str_or_null(rows[0].client_ip));
        json_object_set_new(o, "tls", str_or_null(rows[0].tls));
        json_object_set_new(o, "size", json_integer((json_int_t)(rows[0].size > INT64_MAX ? INT64_MAX : rows[0].size)));
    }
    store_tracking_rows_free(rows, n);
    json_object_set_new(o, "recipients", list);
    json_object_set_new(o, "timeline", timeline);
    http_reply_json(r, 200, o);
}

void http_api_stats(struct http_request *r)
{
    bool bad;
    const char *scope = http_scope(r, &bad);
    if (bad)
        return;
    struct track_stats_query q;
    memset(&q, 0, sizeof q);
    q.company_id = scope;
    double now = core_now();
    q.since = now - 86400;
    q.until = now;
    if (http_arg_time(r, "since", &q.since) < 0 || http_arg_time(r, "until", &q.until) < 0 ||
        text_arg(r, "domain", 253, &q.domain) < 0)
        return;
    if (q.domain) {
        for (const char *p = q.domain; *p; p++) {
            if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '-')) {
                http_error(r, 400, "domain: not a domain name");
                return;
            }
        }
    }
    if (q.until <= q.since) {
        http_error(r, 400, "until: must be after since");
        return;
    }
    char *s = store_tracking_stats(r->slot->st, &q);
    if (!s) {
        http_error(r, 500, "internal error");
        return;
    }
    http_reply_text(r, 200, "application/json", s, strlen(s));
}

/* ---------------------------------------------------------------- quarantine */
static json_t *quarantine_json(const struct store_quarantine_item *it)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(it->id));
    json_object_set_new(o, "tenant", str_or_null(it->company_id));
    json_object_set_new(o, "qid", json_string(it->qid));
    json_object_set_new(o, "time", http_iso(it->time));
    json_object_set_new(o, "ts", json_real(it->time));
    json_object_set_new(o, "rcpt", str_or_null(it->rcpt));
    json_object_set_new(o, "sender", str_or_null(it->sender));
    json_object_set_new(o, "from", str_or_null(it->header_from));
    json_object_set_new(o, "subject", str_or_null(it->subject));
    json_object_set_new(o, "size", json_integer((json_int_t)it->size));
    json_object_set_new(o, "rule", str_or_null(it->rule));
    json_object_set_new(o, "reason", str_or_null(it->reason));
    json_object_set_new(o, "direction", str_or_null(it->direction));
    json_t *dets = it->detections ? json_loads(it->detections, 0, NULL) : NULL;
    json_object_set_new(o, "detections", dets ? dets : json_array());
    json_object_set_new(o, "released", http_iso(it->released));
    json_object_set_new(o, "released_qid", it->released_qid[0] ? json_string(it->released_qid) : json_null());
    return o;
}

void http_api_quarantine_list(struct http_request *r)
{
    bool bad;
    const char *scope = http_scope(r, &bad);
    if (bad)
        return;
    struct store_quarantine_query q;
    memset(&q, 0, sizeof q);
    q.company_id = scope;
    uint64_t limit = 100;
    if (http_arg_time(r, "since", &q.since) < 0 || http_arg_time(r, "until", &q.until) < 0 ||
        http_arg_uint(r, "limit", HTTP_LIST_MAX, &limit) < 0 || text_arg(r, "rcpt", STORE_EMAIL_MAX, &q.rcpt) < 0)
        return;
    q.limit = limit ? limit : 100;
    struct store_quarantine_item *items;
    long n = store_quarantine_list(r->slot->st, &q, &items);
    if (n < 0) {
        http_error(r, 500, "internal error");
        return;
    }
    json_t *list = json_array();
    for (long i = 0; i < n; i++)
        json_array_append_new(list, quarantine_json(&items[i]));
    store_quarantine_items_free(items, n);
    http_reply_json(r, 200, json_pack("{s:o,s:I}", "messages", list, "count", (json_int_t)n));
}

/* status_reply - a quarantine_status as HTTP */
static void status_reply(struct http_request *r, enum quarantine_status s, const char *err)
{
    switch (s) {
    case QUARANTINE_NOT_FOUND:
    case QUARANTINE_INVALID:
        http_not_found(r);
        return;
    case QUARANTINE_RELEASED:
        http_error(r, 409, "the message has already been released");
        return;
    case QUARANTINE_CORRUPT:
        http_error(r, 500, "the stored copy is missing or damaged");
        return;
    default:
        http_error(r, 500, "%s", err && err[0] ? err : "internal error");
    }
}

/* text_json - bytes as a JSON string: invalid UTF-8 and controls (but tab, CR, LF) replaced */
static json_t *text_json(const char *p, size_t len)
{
    struct buf b;
    buf_init(&b, len * 3 + 16);
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = core_utf8_next(p, len, i, &cp);
        if (cp == 0xFFFD || (cp < 0x20 && cp != '\t' && cp != '\r' && cp != '\n') || cp == 0x7f)
            buf_append_utf8(&b, 0xFFFD);
        else
            buf_append(&b, p + i, n);
        i += n;
    }
    json_t *s = json_stringn(b.ptr ? b.ptr : "", b.len);
    buf_free(&b);
    return s ? s : json_string("");
}

/* b64_json - the bytes as a base64 string: the preview's exact bytes, so the
 * console can decode 8-bit Shift_JIS / EUC-JP parts with their charset
 * (text_json above is UTF-8 and loses them) */
static json_t *b64_json(const char *p, size_t len)
{
    size_t n = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    char *s = xmalloc(n);
    sodium_bin2base64(s, n, (const unsigned char *)p, len, sodium_base64_VARIANT_ORIGINAL);
    json_t *j = json_string(s);
    free(s);
    return j ? j : json_string("");
}

void http_api_quarantine_get(struct http_request *r)
{
    bool bad;
    const char *scope = http_scope(r, &bad);
    if (bad)
        return;
    const char *id = r->args[0];
    if (!quarantine_id_valid(id)) {
        http_not_found(r);
        return;
    }
    const char *content = http_arg(r, "content", &bad);
    if (bad)
        return;
    struct store_quarantine_item it;
    memset(&it, 0, sizeof it);
    if (!content || strcmp(content, "1") != 0) {
        int rc = store_quarantine_get(r->slot->st, scope, id, &it);
        if (rc != 0) {
            if (rc < 0)
                http_error(r, 500, "internal error");
            else
                http_not_found(r);
            return;
        }
        http_reply_json(r, 200, quarantine_json(&it));
        store_quarantine_item_free(&it);
        return;
    }
    struct buf msg;
    buf_init(&msg, QUARANTINE_MESSAGE_MAX);
    char err[300] = "";
    enum quarantine_status s = quarantine_load(r->slot->qr, scope, id, &it, &msg, err, sizeof err);
    if (s != QUARANTINE_OK) {
        buf_free(&msg);
        status_reply(r, s, err);
        return;
    }
    json_t *o = quarantine_json(&it);
    store_quarantine_item_free(&it);
    /* the header block, then the start of the message as text: for a safe preview */
    const char *p = msg.ptr ? msg.ptr : "";
    size_t hlen = msg.len;
    for (size_t i = 0; i + 3 < msg.len; i++) {
        if (memcmp(p + i, "\r\n\r\n", 4) == 0) {
            hlen = i + 2;
            break;
        }
    }
    size_t body_off = hlen < msg.len ? hlen + 2 : msg.len;
    size_t body_len = msg.len - body_off > PREVIEW_MAX ? PREVIEW_MAX : msg.len - body_off;
    size_t shown_hlen = hlen > PREVIEW_MAX ? PREVIEW_MAX : hlen;
    json_object_set_new(o, "headers", text_json(p, shown_hlen));
    json_object_set_new(o, "body", text_json(p + body_off, body_len));
    json_object_set_new(o, "headers_b64", b64_json(p, shown_hlen));
    json_object_set_new(o, "body_b64", b64_json(p + body_off, body_len));
    json_object_set_new(o, "body_truncated", json_boolean(msg.len - body_off > PREVIEW_MAX));
    buf_free(&msg);
    http_reply_json(r, 200, o);
}

/* inject_mgr - quarantine_inject_fn inside moatd */
static int inject_mgr(void *arg, const char *data, size_t len, struct queue_envelope *env)
{
    return queue_mgr_inject(arg, data, len, env);
}

/* one_release - release id in scope: the rules that follow quarantine run
 * on this request's store connection, then the queue; new_qid on success */
static enum quarantine_status one_release(struct http_request *r, const char *scope, const char *id,
                                          char new_qid[CORE_QID_LEN + 1], char *err, size_t errsz)
{
    struct quarantine_policy qp = {.st = r->slot->st, .q = r->slot->qr};
    struct quarantine_release_opts o = {
        .after_quarantine = quarantine_policy_after,
        .after_arg = &qp,
        .inject = inject_mgr,
        .inject_arg = r->srv->d.queue,
        .tracker = r->srv->d.tracker,
        .actor = r->who.actor,
    };
    return quarantine_release(r->slot->qr, scope, id, &o, new_qid, err, errsz);
}

void http_api_quarantine_release(struct http_request *r)
{
    bool bad;
    const char *scope = http_scope(r, &bad);
    if (bad)
        return;
    const char *id = r->args[0];
    if (!quarantine_id_valid(id)) {
        http_not_found(r);
        return;
    }
    if (!r->srv->d.queue) {
        http_error(r, 503, "the delivery queue is not available");
        return;
    }
    struct store_quarantine_item it;
    memset(&it, 0, sizeof it);
    int rc = store_quarantine_get(r->slot->st, scope, id, &it);
    if (rc != 0) {
        if (rc < 0)
            http_error(r, 500, "internal error");
        else
            http_not_found(r);
        return;
    }
    char company[STORE_COMPANY_MAX + 1];
    core_strlcpy(company, it.company_id ? it.company_id : "", sizeof company);
    store_quarantine_item_free(&it);
    char new_qid[CORE_QID_LEN + 1] = "", err[300] = "";
    enum quarantine_status s = one_release(r, scope, id, new_qid, err, sizeof err);
    if (s != QUARANTINE_OK) {
        status_reply(r, s, err);
        return;
    }
    http_audit(r, "quarantine.release", company, "%s -> %s", id, new_qid[0] ? new_qid : "(stopped by a later rule)");
    http_reply_json(r, 200, json_pack("{s:s,s:o}", "released", id, "qid", new_qid[0] ? json_string(new_qid)
                                                                                       : json_null()));
}

void http_api_quarantine_delete(struct http_request *r)
{
    bool bad;
    const char *scope = http_scope(r, &bad);
    if (bad)
        return;
    const char *id = r->args[0];
    if (!quarantine_id_valid(id)) {
        http_not_found(r);
        return;
    }
    struct store_quarantine_item it;
    memset(&it, 0, sizeof it);
    int rc = store_quarantine_get(r->slot->st, scope, id, &it);
    if (rc != 0) {
        if (rc < 0)
            http_error(r, 500, "internal error");
        else
            http_not_found(r);
        return;
    }
    char company[STORE_COMPANY_MAX + 1];
    core_strlcpy(company, it.company_id ? it.company_id : "", sizeof company);
    store_quarantine_item_free(&it);
    char err[300] = "";
    enum quarantine_status s = quarantine_delete(r->slot->qr, scope, id, err, sizeof err);
    if (s != QUARANTINE_OK) {
        status_reply(r, s, err);
        return;
    }
    http_audit(r, "quarantine.delete", company, "%s", id);
    http_reply_json(r, 200, json_pack("{s:s}", "deleted", id));
}

void http_api_quarantine_bulk(struct http_request *r)
{
    bool bad;
    const char *scope = http_scope(r, &bad);
    if (bad)
        return;
    json_t *b = http_body_object(r);
    if (!b)
        return;
    static const char *const keys[] = {"action", "ids", NULL};
    const char *action = NULL;
    json_t *ids = json_object_get(b, "ids");
    if (http_json_only(r, b, keys) < 0 || http_json_str(r, b, "action", 16, &action) < 0)
        goto out;
    bool release = action && strcmp(action, "release") == 0;
    if (!action || (!release && strcmp(action, "delete") != 0)) {
        http_error(r, 400, "action: release or delete");
        goto out;
    }
    if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > HTTP_BULK_MAX) {
        http_error(r, 400, "ids: an array of 1..%d quarantine IDs", HTTP_BULK_MAX);
        goto out;
    }
    if (release && !r->srv->d.queue) {
        http_error(r, 503, "the delivery queue is not available");
        goto out;
    }
    json_t *results = json_array();
    size_t i, done = 0;
    json_t *v;
    json_array_foreach(ids, i, v) {
        const char *id = json_string_value(v);
        json_t *one = json_object();
        json_object_set_new(one, "id", id && strlen(id) <= 64 ? json_string(id) : json_null());
        char new_qid[CORE_QID_LEN + 1] = "", err[300] = "";
        enum quarantine_status s = QUARANTINE_NOT_FOUND;
        if (id && quarantine_id_valid(id))
            s = release ? one_release(r, scope, id, new_qid, err, sizeof err)
                        : quarantine_delete(r->slot->qr, scope, id, err, sizeof err);
        json_object_set_new(one, "result", json_string(s == QUARANTINE_OK ? (release ? "released" : "deleted")
                                                       : s == QUARANTINE_NOT_FOUND || s == QUARANTINE_INVALID
                                                           ? "not found"
                                                           : quarantine_status_text(s)));
        if (s == QUARANTINE_OK && release)
            json_object_set_new(one, "qid", new_qid[0] ? json_string(new_qid) : json_null());
        if (s == QUARANTINE_OK) {
            done++;
            http_audit(r, release ? "quarantine.release" : "quarantine.delete", scope ? scope : "", "%s%s%s", id,
                       release ? " -> " : "", release ? (new_qid[0] ? new_qid : "(stopped by a later rule)") : "");
        }
        json_array_append_new(results, one);
    }
    http_reply_json(r, 200, json_pack("{s:o,s:I}", "results", results, "done", (json_int_t)done));
out:
    json_decref(b);
}

/* ---------------------------------------------------------------- queue */
void http_api_queue_list(struct http_request *r)
{
    bool bad;
    const char *scope = http_scope(r, &bad);
    if (bad)
        return;
    struct buf out;
    buf_init(&out, 64 * 1024 * 1024);
    if (queue_ctl_request(r->srv->d.cfg->data_dir, "LIST", &out) < 0) {
        buf_free(&out);
        http_error(r, 503, "the queue manager does not answer");
        return;
    }
    json_t *res = json_loadb(out.ptr ? out.ptr : "", out.len, 0, NULL);
    buf_free(&out);
    json_t *q = json_object_get(res, "queue");
    if (!json_is_array(q)) {
        json_decref(res);
        http_error(r, 500, "internal error");
        return;
    }
    json_incref(q);
    json_decref(res);
    if (scope) { /* keep the tenant's recipients only, and messages that have one */
        struct domain_map *m = store_domain_map_load(r->slot->st);
        json_t *kept = json_array();
        size_t i;
        json_t *msg;
        json_array_foreach(q, i, msg) {
            json_t *rcpts = json_object_get(msg, "recipients"), *mine = json_array();
            size_t k;
            json_t *rc;
            json_array_foreach(rcpts, k, rc) {
                const char *addr = json_string_value(json_object_get(rc, "address"));
                const char *at = addr ? strrchr(addr, '@') : NULL;
                const struct domain_entry *d = at && m ? domain_map_find(m, at + 1) : NULL;
                if (d && d->company_id && strcasecmp(d->company_id, scope) == 0)
                    json_array_append(mine, rc);
            }
            if (json_array_size(mine)) {
                json_t *copy = json_copy(msg);
                json_object_set_new(copy, "recipients", mine);
                json_array_append_new(kept, copy);
            } else {
                json_decref(mine);
            }
        }
        if (m)
            domain_map_unref(m);
        json_decref(q);
        q = kept;
    }
    http_reply_json(r, 200, json_pack("{s:o,s:I}", "queue", q, "count", (json_int_t)json_array_size(q)));
}
