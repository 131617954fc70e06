/*
 * queue_plan.c - carrying out a queued message's policy plan (the outcome
 * per recipient that the scan worker decided, src/scan/scan_policy.c).
 *
 *   queue_plan_parse    the plan JSON -> one struct queue_plan_rcpt per
 *                       recipient (which copy, delivered to whom, or held)
 *   queue_plan_execute  the one-time part, run by the queue manager when it
 *                       first indexes the message: quarantine copies,
 *                       deletions, notifications and BCC copies; finished
 *                       recipients and the fact that the plan ran are
 *                       appended to the status file ("done i", "planned"),
 *                       so a restart neither repeats nor forgets it (a
 *                       crash in between can repeat a quarantine copy or a
 *                       notification, never lose one)
 *
 * The plan was made by our own worker and committed with the message; one
 * that does not fit the envelope (damage, a bug) is refused as a whole and
 * the message is set aside as corrupt rather than delivered unfiltered.
 */
#include "core/core.h"
#include "notify/notify.h"
#include "quarantine/quarantine.h"
#include "queue/queue.h"
#include "store/store.h"

#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

void queue_plan_free(struct queue_plan_rcpt *p, size_t n)
{
    if (!p)
        return;
    for (size_t i = 0; i < n; i++) {
        free(p[i].deliver_to);
        free(p[i].company);
        free(p[i].rule);
        free(p[i].reason);
    }
    free(p);
}

static char *dup_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? xstrdup(s) : NULL;
}

struct queue_plan_rcpt *queue_plan_parse(const struct queue_envelope *env, bool *sends, char *err, size_t errsz)
{
    json_error_t je;
    json_t *root = json_loads(env->plan, JSON_REJECT_DUPLICATES, &je);
    json_t *rs = root ? json_object_get(root, "rcpts") : NULL;
    if (!root || json_integer_value(json_object_get(root, "v")) != 1 || !json_is_array(rs) ||
        json_array_size(rs) != env->nrcpts) {
        snprintf(err, errsz, "plan does not fit the envelope");
        json_decref(root);
        return NULL;
    }
    struct queue_plan_rcpt *p = xcalloc(env->nrcpts, sizeof *p);
    for (size_t i = 0; i < env->nrcpts; i++) {
        json_t *r = json_array_get(rs, i);
        const char *x = json_string_value(json_object_get(r, "x"));
        json_int_t var = json_integer_value(json_object_get(r, "var"));
        if (!x || var < 0 || var > (json_int_t)env->variants) {
            snprintf(err, errsz, "plan entry %zu is malformed", i);
            goto bad;
        }
        if (strcmp(x, "none") == 0 || strcmp(x, "deliver_now") == 0) {
            p[i].action = PLAN_DELIVER;
        } else if (strcmp(x, "delete") == 0) {
            p[i].action = PLAN_DELETE;
        } else if (strcmp(x, "quarantine") == 0) {
            p[i].action = PLAN_QUARANTINE;
        } else if (strcmp(x, "change_recipient") == 0) {
            p[i].action = PLAN_DELIVER;
            p[i].deliver_to = dup_str(r, "to");
            if (!p[i].deliver_to || !strchr(p[i].deliver_to, '@') || strlen(p[i].deliver_to) > 512) {
                snprintf(err, errsz, "plan entry %zu: bad new recipient", i);
                goto bad;
            }
        } else {
            snprintf(err, errsz, "plan entry %zu: unknown action", i);
            goto bad;
        }
        p[i].variant = (unsigned)var;
        p[i].company = dup_str(r, "c");
        p[i].rule = dup_str(r, "rule");
        p[i].reason = dup_str(r, "reason");
        p[i].order = (unsigned)json_integer_value(json_object_get(r, "order"));
    }
    if (sends)
        *sends = json_array_size(json_object_get(root, "notify")) || json_array_size(json_object_get(root, "bcc"));
    json_decref(root);
    return p;
bad:
    json_decref(root);
    queue_plan_free(p, env->nrcpts);
    return NULL;
}

/* ---------------------------------------------------------------- execution */
struct mapped {
    void *p;
    size_t len;
};

/* map_copy - the bytes of copy k of the message (0: the message itself) */
static int map_copy(const char *queue_dir, const struct queue_envelope *env, unsigned k, struct mapped *m)
{
    char path[1200];
    if (k)
        snprintf(path, sizeof path, "%s/%s.v%u", queue_dir, env->qid, k);
    else
        snprintf(path, sizeof path, "%s/%s", queue_dir, env->qid);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    m->len = k ? (size_t)st.st_size : (size_t)env->data_len;
    if (!k && (uint64_t)st.st_size < env->data_len) {
        close(fd);
        return -1;
    }
    m->p = m->len ? mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (m->p == MAP_FAILED)
        return -1;
    return 0;
}

static void unmap(struct mapped *m)
{
    if (m->p)
        munmap(m->p, m->len);
    m->p = NULL;
}

/* detection_names - "A, B" from the plan's detections */
static void detection_names(const json_t *dets, struct buf *b)
{
    size_t i;
    json_t *d;
    json_array_foreach(dets, i, d)
    {
        const char *n = json_string_value(json_object_get(d, "name"));
        if (n && b->len < 2000)
            buf_printf(b, "%s%s", b->len ? ", " : "", n);
    }
}

static void track_event(struct queue_plan_ctx *c, const char *qid, const char *rcpt, const char *event,
                        const char *detail)
{
    struct track_event ev = {.qid = qid, .time = core_now(), .rcpt = rcpt, .event = event, .detail = detail};
    if (c->tracker)
        tracker_event(c->tracker, &ev);
}

static void track_status(struct queue_plan_ctx *c, const char *qid, const char *rcpt, const char *status,
                         const char *reply)
{
    struct track_recipient t = {.qid = qid, .time = core_now(), .rcpt = rcpt, .status = status, .reply = reply};
    if (c->tracker)
        tracker_recipient(c->tracker, &t);
}

static struct store *store_get(struct queue_plan_ctx *c)
{
    char err[600];
    if (!c->st && store_open(c->cfg, &c->st, err, sizeof err) < 0) {
        log_error("queue: store unavailable: %s", err);
        return NULL;
    }
    return c->st;
}

/* own_templates - the tenant's own notification templates (from the store) */
static size_t own_templates(struct queue_plan_ctx *c, const char *company, struct notify_template **out)
{
    char err[600];
    *out = NULL;
    struct store *st = company && company[0] ? store_get(c) : NULL;
    char *doc = st ? store_export_json(st, company, err, sizeof err) : NULL;
    json_t *root = doc ? json_loads(doc, 0, NULL) : NULL;
    free(doc);
    json_t *t = json_array_get(json_object_get(root, "tenants"), 0);
    size_t n = notify_templates_from_json(json_object_get(t, "notification_templates"), out);
    json_decref(root);
    return n;
}

static struct quarantine *quarantine_get(struct queue_plan_ctx *c)
{
    char err[600];
    if (c->q)
        return c->q;
    if (!store_get(c))
        return NULL;
    c->q = quarantine_open(c->cfg->data_dir, c->st, err, sizeof err);
    if (!c->q)
        log_error("queue: quarantine unavailable: %s", err);
    return c->q;
}

void queue_plan_ctx_close(struct queue_plan_ctx *c)
{
    quarantine_close(c->q);
    store_close(c->st);
    c->q = NULL;
    c->st = NULL;
}

/* quarantine_one - store recipient i's copy; 0 or -1 */
static int quarantine_one(struct queue_plan_ctx *c, const struct queue_envelope *env, const struct queue_plan_rcpt *p,
                          size_t i, const char *detections, char id[STORE_QUARANTINE_ID_LEN + 1])
{
    struct quarantine *q = quarantine_get(c);
    struct mapped m = {0};
    char err[600];
    if (!q || map_copy(spool_queue_dir(c->sp), env, p[i].variant, &m) < 0) {
        log_error("queue: cannot quarantine qid=%s rcpt=%s", env->qid, env->rcpts[i]);
        return -1;
    }
    struct quarantine_put_info info = {
        .company_id = p[i].company && p[i].company[0] ? p[i].company : "-",
        .qid = env->qid,
        .rcpt = env->rcpts[i],
        .sender = env->sender,
        .rule = p[i].rule,
        .rule_order = p[i].order,
        .reason = p[i].reason ? p[i].reason : p[i].rule,
        .detections = detections,
        .scan = env->scan_summary,
        .direction = c->outbound ? "outbound" : "inbound",
        .orcpt = env->orcpts ? env->orcpts[i] : NULL,
        .envid = env->envid,
        .client_ip = env->client_ip,
        .helo = env->helo,
        .smtputf8 = env->smtputf8,
        .eightbit = env->eightbit,
        .time = env->arrival,
    };
    enum quarantine_status s = quarantine_put(q, &info, m.p ? m.p : "", m.len, id, err, sizeof err);
    unmap(&m);
    if (s != QUARANTINE_OK) {
        log_error("queue: quarantine qid=%s rcpt=%s failed: %s", env->qid, env->rcpts[i], err);
        return -1;
    }
    return 0;
}

/* notify_one - one notification of the plan */
static void notify_one(struct queue_plan_ctx *c, const struct queue_envelope *env, const json_t *n,
                       const json_t *dets, char (*qids)[STORE_QUARANTINE_ID_LEN + 1])
{
    char err[300];
    const char *tpl_name = json_string_value(json_object_get(n, "tpl"));
    const char *lang = json_string_value(json_object_get(n, "lang"));
    const char *to = json_string_value(json_array_get(json_object_get(n, "to"), 0));
    if (!tpl_name || !to)
        return;
    struct notify_template tpl, *own = NULL;
    size_t nown = own_templates(c, json_string_value(json_object_get(n, "c")), &own);
    int loaded = notify_template_load(tpl_name, lang && strcmp(lang, "ja") == 0 ? "ja" : "en", own, nown, NULL,
                                      &tpl, err, sizeof err);
    notify_templates_free(own, nown);
    if (loaded < 0) {
        log_warn("queue: notification for qid=%s not sent: %s", env->qid, err);
        return;
    }
    struct buf rcpts, names, size;
    buf_init(&rcpts, 8192);
    buf_init(&names, 4096);
    buf_init(&size, 32);
    const char *qid_quarantine = NULL;
    size_t k;
    json_t *ri;
    json_array_foreach(json_object_get(n, "rcpts"), k, ri)
    {
        json_int_t i = json_integer_value(ri);
        if (i < 0 || (size_t)i >= env->nrcpts)
            continue;
        buf_printf(&rcpts, "%s%s", rcpts.len ? ", " : "", env->rcpts[i]);
        if (!qid_quarantine && qids[i][0])
            qid_quarantine = qids[i];
    }
    detection_names(dets, &names);
    char d[64];
    time_t t = (time_t)env->arrival;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(d, sizeof d, "%Y-%m-%d %H:%M:%S UTC", &tm);
    buf_printf(&size, "%llu", (unsigned long long)env->data_len);
    struct notify_vars vars = {{NULL}};
    vars.v[NOTIFY_VAR_SENDER] = env->sender[0] ? env->sender : "<>";
    vars.v[NOTIFY_VAR_RECIPIENTS] = buf_cstr(&rcpts);
    vars.v[NOTIFY_VAR_SUBJECT] = env->subject;
    vars.v[NOTIFY_VAR_RULE] = json_string_value(json_object_get(n, "rule"));
    vars.v[NOTIFY_VAR_DETECTIONS] = buf_cstr(&names);
    vars.v[NOTIFY_VAR_DATE] = d;
    vars.v[NOTIFY_VAR_QID] = env->qid;
    vars.v[NOTIFY_VAR_TENANT] = json_string_value(json_object_get(n, "tenant"));
    vars.v[NOTIFY_VAR_QUARANTINE_ID] = qid_quarantine;
    vars.v[NOTIFY_VAR_ATTACHMENTS] = json_string_value(json_object_get(n, "attachments"));
    vars.v[NOTIFY_VAR_SIZE] = buf_cstr(&size);
    vars.v[NOTIFY_VAR_REASON] = json_string_value(json_object_get(n, "reason"));
    /* the original's header block goes along (bounded) */
    struct mapped m = {0};
    size_t hlen = 0;
    if (map_copy(spool_queue_dir(c->sp), env, 0, &m) == 0 && m.p) {
        const char *p = m.p;
        size_t max = m.len < 65536 ? m.len : 65536;
        const char *end = memmem(p, max, "\r\n\r\n", 4);
        hlen = end ? (size_t)(end - p) + 2 : max;
    }
    const char *one[] = {to};
    struct notify_message msg = {.tpl = &tpl,
                                 .vars = &vars,
                                 .hostname = c->cfg->hostname,
                                 .tenant_name = vars.v[NOTIFY_VAR_TENANT],
                                 .to = one,
                                 .nto = 1,
                                 .original = hlen ? m.p : NULL,
                                 .original_len = hlen};
    struct buf out;
    buf_init(&out, 4 * 1024 * 1024);
    struct queue_envelope nenv;
    memset(&nenv, 0, sizeof nenv);
    if (notify_prepare(&msg, &out, &nenv) == 0) {
        if (c->inject(c->inject_arg, out.ptr, out.len, &nenv, "notification") == 0)
            log_info("queue notification qid=%s about=%s template=\"%s\" to=%s", nenv.qid, env->qid, tpl.name, to);
        else
            log_error("queue: cannot queue notification about qid=%s", env->qid);
        char detail[700];
        snprintf(detail, sizeof detail, "notification \"%s\" sent to %s (%s)", tpl.name, to, nenv.qid);
        track_event(c, env->qid, NULL, "notified", detail);
    }
    queue_envelope_free(&nenv);
    buf_free(&out);
    unmap(&m);
    notify_template_free(&tpl);
    buf_free(&rcpts);
    buf_free(&names);
    buf_free(&size);
}

/* bcc_one - a copy of the message (as a recipient got it) to another address */
static void bcc_one(struct queue_plan_ctx *c, const struct queue_envelope *env, const json_t *b)
{
    const char *addr = json_string_value(json_object_get(b, "addr"));
    json_int_t var = json_integer_value(json_object_get(b, "var"));
    struct mapped m = {0};
    if (!addr || var < 0 || var > (json_int_t)env->variants ||
        map_copy(spool_queue_dir(c->sp), env, (unsigned)var, &m) < 0)
        return;
    struct queue_envelope benv;
    memset(&benv, 0, sizeof benv);
    core_qid_new(benv.qid);
    char *rc = (char *)addr;
    benv.arrival = core_now();
    benv.sender = ""; /* a copy must never bounce back to the original sender */
    benv.rcpts = &rc;
    benv.nrcpts = 1;
    benv.smtputf8 = env->smtputf8;
    benv.eightbit = env->eightbit;
    benv.scan_summary = env->scan_summary;
    benv.subject = env->subject;
    benv.message_id = env->message_id;
    if (c->inject(c->inject_arg, m.p ? m.p : "", m.len, &benv, "bcc") == 0) {
        char detail[700];
        snprintf(detail, sizeof detail, "BCC copy to %s (%s, rule %s)", addr, benv.qid,
                 json_string_value(json_object_get(b, "rule")) ? json_string_value(json_object_get(b, "rule"))
                                                                : "?");
        track_event(c, env->qid, NULL, "bcc", detail);
    } else {
        log_error("queue: cannot queue BCC copy of qid=%s", env->qid);
    }
    unmap(&m);
}

int queue_plan_hold(struct queue_plan_ctx *c, const struct queue_envelope *env, const struct queue_plan_rcpt *p,
                    size_t i)
{
    char detail[900];
    char id[STORE_QUARANTINE_ID_LEN + 1] = "";
    if (p[i].action == PLAN_DELETE) {
        snprintf(detail, sizeof detail, "deleted (%s)", p[i].rule ? p[i].rule : "policy");
        track_status(c, env->qid, env->rcpts[i], "deleted", detail);
    } else if (p[i].action == PLAN_QUARANTINE) {
        json_t *root = json_loads(env->plan, 0, NULL);
        json_t *dets = root ? json_object_get(root, "detections") : NULL;
        char *detections = dets ? json_dumps(dets, JSON_COMPACT) : NULL;
        c->outbound = root && json_string_value(json_object_get(root, "dir")) &&
                      strcmp(json_string_value(json_object_get(root, "dir")), "outbound") == 0;
        int rc = quarantine_one(c, env, p, i, detections, id);
        free(detections);
        json_decref(root);
        if (rc < 0)
            return -1;
        snprintf(detail, sizeof detail, "quarantined (%s) id %s", p[i].rule ? p[i].rule : "policy", id);
        track_status(c, env->qid, env->rcpts[i], "quarantined", detail);
        if (c->ids)
            core_strlcpy(c->ids[i], id, sizeof c->ids[i]);
    } else {
        return -1;
    }
    char line[64];
    snprintf(line, sizeof line, "done %zu\n", i);
    spool_status_append(c->sp, env->qid, line);
    return 0;
}

int queue_plan_execute(struct queue_plan_ctx *c, const struct queue_envelope *env, const struct queue_plan_rcpt *p,
                       bool *finished, bool notified)
{
    json_t *root = json_loads(env->plan, 0, NULL);
    if (!root)
        return -1;
    json_t *dets = json_object_get(root, "detections");
    char(*qids)[STORE_QUARANTINE_ID_LEN + 1] = xcalloc(env->nrcpts, sizeof *qids);
    c->ids = qids;
    for (size_t i = 0; i < env->nrcpts; i++)
        if (!finished[i] && p[i].action != PLAN_DELIVER && queue_plan_hold(c, env, p, i) == 0)
            finished[i] = true;
    c->ids = NULL;
    json_t *nl = json_object_get(root, "notify"), *bl = json_object_get(root, "bcc");
    if (!notified && (json_array_size(nl) || json_array_size(bl))) {
        size_t k;
        json_t *n;
        json_array_foreach(nl, k, n) notify_one(c, env, n, dets, qids);
        json_array_foreach(bl, k, n) bcc_one(c, env, n);
        /* only then: a message with nothing to send needs no status file */
        spool_status_append(c->sp, env->qid, "notified\n");
    }
    free(qids);
    json_decref(root);
    return 0;
}
