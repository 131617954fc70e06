/*
 * scan_policy.c - the policy stage of a scan worker: after the analysis and
 * the detectors, each recipient's tenant rules (src/policy) are evaluated,
 * one rewritten copy is written beside the spool file per distinct set of
 * modifications (src/rewrite), and every recipient's outcome goes into the
 * "plan" (JSON) that the main process commits with the message and the
 * queue manager carries out (docs/policy.md, "In the daemon").
 *
 * Why in the worker: the rules read the analysis, which exists only here,
 * and rewriting parses untrusted MIME, which Moat only does in workers.
 *
 * Plan (version 1; every field bounded by SCAN_PLAN_MAX as a whole):
 *   {"v":1, "dir":"inbound|outbound", "detections":[...],
 *    "traces":[["rule: outcome", ...], ...] (each distinct trace once),
 *    "rcpts":[R...], "notify":[N...], "bcc":[B...]}
 *   R: {"c":company, "x":"none|delete|deliver_now|quarantine|change_recipient",
 *       "var":k (0 = the message as received, k = <spool>.v<k>),
 *       "rule":name?, "order":n?, "to":new recipient?, "reason":text?,
 *       "t":index of its trace in "traces"}
 *   N: {"c", "tenant", "tpl", "lang", "to":[addresses], "rule", "rcpts":[i...],
 *       "reason", "attachments"}
 *   B: {"c", "addr", "var", "rule"}
 * Recipients of no tenant (or whose tenant's rules cannot be loaded) get
 * "none" with a trace saying so: mail is never lost to a policy problem.
 * A recipient whose attachments had to be removed but whose message could
 * not be rewritten is quarantined instead (never delivered unremoved).
 */
#include "core/core.h"
#include "mime/mime.h"
#include "notify/notify.h"
#include "policy/policy.h"
#include "rewrite/rewrite.h"
#include "scan/scan.h"
#include "store/store.h"

#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#define POLICY_CACHE 32

struct cached {
    char company[SCAN_COMPANY_MAX];
    struct policy_set *set; /* NULL: the tenant's rules could not be loaded */
    char *admin, *name;     /* admin_email, tenant display name */
    char why[200];
};

static struct {
    int64_t version;
    struct cached c[POLICY_CACHE];
    size_t n, next;
} cache = {.version = -1};

static void cached_free(struct cached *c)
{
    if (c->set)
        policy_set_unref(c->set);
    free(c->admin);
    free(c->name);
    memset(c, 0, sizeof *c);
}

void scan_policy_clear(void)
{
    for (size_t i = 0; i < cache.n; i++)
        cached_free(&cache.c[i]);
    cache.n = cache.next = 0;
    policy_thread_done();
}

/* tenant - the compiled rules of company (cached per config_version) */
static const struct cached *tenant(struct store *st, const char *company)
{
    int64_t v = st ? store_config_version(st) : -1;
    if (v != cache.version) {
        scan_policy_clear();
        cache.version = v;
    }
    for (size_t i = 0; i < cache.n; i++)
        if (strcasecmp(cache.c[i].company, company) == 0)
            return &cache.c[i];
    size_t slot;
    if (cache.n < POLICY_CACHE) {
        slot = cache.n++;
    } else {
        slot = cache.next++ % POLICY_CACHE;
        cached_free(&cache.c[slot]);
    }
    struct cached *c = &cache.c[slot];
    core_strlcpy(c->company, company, sizeof c->company);
    char err[600];
    char *doc = st ? store_export_json(st, company, err, sizeof err) : NULL;
    if (!st)
        snprintf(err, sizeof err, "the store is unavailable");
    json_t *root = doc ? json_loads(doc, 0, NULL) : NULL;
    free(doc);
    json_t *t = root ? json_array_get(json_object_get(root, "tenants"), 0) : NULL;
    if (t) {
        c->set = policy_compile_tenant(t, err, sizeof err);
        const char *s = json_string_value(json_object_get(t, "admin_email"));
        c->admin = s && s[0] ? xstrdup(s) : NULL;
        s = json_string_value(json_object_get(t, "name"));
        c->name = xstrdup(s ? s : company);
    } else if (doc) {
        snprintf(err, sizeof err, "unknown tenant");
    }
    json_decref(root);
    if (!c->set) {
        snprintf(c->why, sizeof c->why, "%.190s", err);
        log_warn("scan worker: rules of tenant %s unavailable: %s", company, err);
    }
    return c;
}

/* write_variant - the rewritten copy k beside the spool file; -1 with err */
static int write_variant(const char *spool, unsigned k, const struct buf *b, char *err, size_t errsz)
{
    char path[SCAN_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s.v%u", spool, k);
    /* the first copy may have a spare file waiting (spool_incoming_spare) */
    int fd = k == 1 ? open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW) : -1;
    if (fd < 0) {
        unlink(path); /* a leftover of an earlier, abandoned scan */
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    }
    if (fd < 0) {
        snprintf(err, errsz, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = write(fd, b->ptr + off, b->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (off < b->len || fdatasync(fd) < 0) {
        snprintf(err, errsz, "cannot write %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    return 0;
}

struct variant {
    const struct policy_set *set;
    struct policy_disposition *d; /* representative (owned by the result below) */
    unsigned k;
    bool failed;
    char err[200];
};

struct stage {
    const struct scan_request *req;
    const struct analysis *a;
    const char *msg;
    size_t len;
    json_t *rcpts, *notify, *bcc;
    bool generated; /* the message is automatic mail: no notifications about it */
    struct variant v[SCAN_VARIANTS_MAX];
    size_t nv;
    unsigned nk; /* copies written: <spool>.v1 .. .v<nk> */
    struct policy_result *res; /* kept until the plan is built (variants point into them) */
    size_t nres;
};

/* attachments_text - names of the attachments this recipient loses */
static void attachments_text(const struct policy_disposition *d, const struct analysis *a, struct buf *b)
{
    for (size_t i = 0; i < d->nremovals && b->len < 1000; i++)
        if (d->removals[i].attachment < a->nattachments) {
            const char *n = a->attachments[d->removals[i].attachment].filename;
            buf_printf(b, "%s%s", b->len ? ", " : "", n ? n : "(unnamed)");
        }
}

static void add_notify(struct stage *s, const struct cached *t, const struct policy_disposition *d, size_t ri,
                       const char *lang)
{
    for (size_t i = 0; i < d->nnotify; i++) {
        const struct policy_notify *pn = &d->notify[i];
        for (size_t k = 0; k < pn->nto; k++) {
            const char *who = pn->to[k], *addr = who;
            if (strcasecmp(who, "admin") == 0)
                addr = t->admin;
            else if (strcasecmp(who, "sender") == 0)
                addr = s->req->mail_from[0] ? s->req->mail_from : NULL;
            else if (strcasecmp(who, "recipient") == 0)
                addr = d->rcpt;
            if (!addr || !addr[0] || !strchr(addr, '@'))
                continue;
            /* one notification per (tenant, template, address, rule) */
            json_t *n = NULL;
            size_t j;
            json_array_foreach(s->notify, j, n)
            {
                if (strcmp(json_string_value(json_object_get(n, "c")), t->company) == 0 &&
                    strcmp(json_string_value(json_object_get(n, "tpl")), pn->template_name) == 0 &&
                    strcasecmp(json_string_value(json_array_get(json_object_get(n, "to"), 0)), addr) == 0 &&
                    strcmp(json_string_value(json_object_get(n, "rule")), pn->rule) == 0)
                    break;
                n = NULL;
            }
            if (!n) {
                if (json_array_size(s->notify) >= 256)
                    continue;
                struct buf att;
                buf_init(&att, 2048);
                attachments_text(d, s->a, &att);
                /* the reason: what the rule that asked for the notification matched */
                char reason[400] = "";
                for (size_t k2 = 0; k2 < d->ntrace && !reason[0]; k2++)
                    if (d->trace[k2].outcome == POLICY_MATCHED && strcmp(d->trace[k2].rule, pn->rule) == 0)
                        snprintf(reason, sizeof reason, "%s", d->trace[k2].text);
                n = json_pack("{s:s,s:s,s:s,s:s,s:[s],s:s,s:[],s:s,s:s}", "c", t->company, "tenant", t->name,
                              "tpl", pn->template_name, "lang", lang, "to", addr, "rule", pn->rule, "rcpts",
                              "reason", reason, "attachments", buf_cstr(&att));
                buf_free(&att);
                if (!n)
                    continue;
                json_array_append_new(s->notify, n);
            }
            json_t *rs = json_object_get(n, "rcpts");
            if (json_array_size(rs) < NOTIFY_RCPTS_MAX)
                json_array_append_new(rs, json_integer((json_int_t)ri));
        }
    }
}

/* variant_for - the copy serving d: 0 (as received), k, or -1 (rewrite failed) */
static int variant_for(struct stage *s, const struct policy_set *set, struct policy_disposition *d, char *err,
                       size_t errsz)
{
    if (!policy_disposition_modifies(d))
        return 0;
    for (size_t i = 0; i < s->nv; i++)
        if (s->v[i].set == set && policy_disposition_same(s->v[i].d, d)) {
            if (s->v[i].failed) {
                snprintf(err, errsz, "%s", s->v[i].err);
                return -1;
            }
            return (int)s->v[i].k;
        }
    if (s->nv >= SCAN_VARIANTS_MAX) {
        snprintf(err, errsz, "more than %d different modifications of one message", SCAN_VARIANTS_MAX);
        return -1;
    }
    struct variant *v = &s->v[s->nv++];
    v->set = set;
    v->d = d;
    v->k = s->nk + 1;
    struct buf out;
    buf_init(&out, (size_t)REWRITE_MAX_MESSAGE + REWRITE_MAX_GROWTH);
    if (policy_apply_modifications(d, s->a, s->msg, s->len, &out, v->err, sizeof v->err) < 0 ||
        write_variant(s->req->path, v->k, &out, v->err, sizeof v->err) < 0)
        v->failed = true;
    buf_free(&out);
    if (!v->failed)
        s->nk++;
    if (v->failed) {
        snprintf(err, errsz, "%s", v->err);
        log_warn("scan worker: qid=%s modification failed: %s", s->req->qid, v->err);
        return -1;
    }
    return (int)v->k;
}

static void plan_rcpt(struct stage *s, const struct cached *t, struct policy_disposition *d, size_t ri,
                      const char *lang)
{
    char err[200] = "";
    int var = d->intercept == POLICY_INTERCEPT_DELETE ? 0 : variant_for(s, t->set, d, err, sizeof err);
    enum policy_intercept x = d->intercept;
    json_t *trace = json_array();
    for (size_t i = 0; i < d->ntrace; i++)
        json_array_append_new(trace, json_sprintf("%s: %s", d->trace[i].rule, d->trace[i].text));
    const char *rule = d->intercept_rule;
    char reason[300] = "";
    if (var < 0) {
        var = 0;
        if (d->nremovals) { /* never deliver what had to be removed */
            x = POLICY_INTERCEPT_QUARANTINE;
            rule = d->removals[0].rule;
            snprintf(reason, sizeof reason, "attachment removal failed (%.200s)", err);
        }
        json_array_append_new(trace, json_sprintf("modification failed: %s%s", err,
                                                  d->nremovals ? "; quarantined instead" : ""));
    } else if (x == POLICY_INTERCEPT_QUARANTINE) {
        for (size_t i = 0; i < d->ntrace; i++)
            if (d->trace[i].order == d->intercept_order && d->trace[i].outcome == POLICY_MATCHED)
                snprintf(reason, sizeof reason, "%s: %s", d->trace[i].rule, d->trace[i].text);
    }
    json_t *r = json_pack("{s:s,s:s,s:i,s:o}", "c", t->company, "x", policy_intercept_name(x), "var", var, "trace",
                          trace);
    if (rule) {
        json_object_set_new(r, "rule", json_string(rule));
        json_object_set_new(r, "order", json_integer(d->intercept_order));
    }
    if (x == POLICY_INTERCEPT_CHANGE_RECIPIENT && d->new_recipient)
        json_object_set_new(r, "to", json_string(d->new_recipient));
    if (reason[0])
        json_object_set_new(r, "reason", json_string(reason));
    json_array_set_new(s->rcpts, ri, r);
    if (!s->generated)
        add_notify(s, t, d, ri, lang);
    for (size_t i = 0; i < d->nbcc && json_array_size(s->bcc) < 64; i++) {
        bool seen = false;
        size_t j;
        json_t *b;
        json_array_foreach(s->bcc, j, b) seen |= strcasecmp(json_string_value(json_object_get(b, "addr")),
                                                           d->bcc[i].address) == 0;
        if (!seen && x != POLICY_INTERCEPT_DELETE)
            json_array_append_new(s->bcc, json_pack("{s:s,s:s,s:i,s:s}", "c", t->company, "addr",
                                                    d->bcc[i].address, "var", var, "rule", d->bcc[i].rule));
    }
}

/* evaluate - one tenant's recipients (indexes idx, n <= POLICY_MAX_RCPTS) */
static void evaluate(struct stage *s, const struct cached *t, char **addrs, const size_t *idx, size_t n)
{
    const char *lang = policy_message_lang(s->a);
    if (!t->set) {
        for (size_t i = 0; i < n; i++)
            json_array_set_new(s->rcpts, idx[i],
                               json_pack("{s:s,s:s,s:i,s:[s+]}", "c", t->company, "x", "none", "var", 0, "trace",
                                         "rules unavailable: ", t->why));
        return;
    }
    const char **rs = xcalloc(n, sizeof *rs);
    for (size_t i = 0; i < n; i++)
        rs[i] = addrs[idx[i]];
    struct policy_envelope env = {.sender = s->req->mail_from,
                                  .client_ip = s->req->client_ip[0] ? s->req->client_ip : NULL,
                                  .rcpts = rs,
                                  .nrcpts = n,
                                  .direction = s->req->direction ? POLICY_OUTBOUND : POLICY_INBOUND};
    s->res = xrealloc(s->res, (s->nres + 1) * sizeof *s->res);
    struct policy_result *res = &s->res[s->nres++];
    memset(res, 0, sizeof *res);
    if (policy_evaluate(t->set, s->a, &env, res) < 0 || res->nrcpts != n) {
        for (size_t i = 0; i < n; i++)
            json_array_set_new(s->rcpts, idx[i],
                               json_pack("{s:s,s:s,s:i,s:[s]}", "c", t->company, "x", "none", "var", 0, "trace",
                                         "rules not evaluated: unusable envelope"));
    } else {
        for (size_t i = 0; i < n; i++)
            plan_rcpt(s, t, &res->rcpts[i], idx[i], lang);
    }
    free(rs);
}

void scan_policy_run(struct store *st, const struct scan_request *req, const struct analysis *a, const char *msg,
                     size_t len, struct scan_result *res)
{
    if (!req->rcpts)
        return;
    /* the recipient list: "company\taddress\n" lines */
    size_t cap = 0, n = 0;
    char **company = NULL, **addr = NULL;
    char *list = xstrdup(req->rcpts), *save = NULL;
    for (char *line = strtok_r(list, "\n", &save); line && n < SCAN_RCPT_MAX; line = strtok_r(NULL, "\n", &save)) {
        char *tab = strchr(line, '\t');
        if (!tab)
            continue;
        *tab = '\0';
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            company = xrealloc(company, cap * sizeof *company);
            addr = xrealloc(addr, cap * sizeof *addr);
        }
        company[n] = line;
        addr[n++] = tab + 1;
    }
    struct stage s;
    memset(&s, 0, sizeof s);
    s.req = req;
    s.a = a;
    s.msg = msg;
    s.len = len;
    s.generated = notify_is_generated(msg, len);
    s.rcpts = json_array();
    s.notify = json_array();
    s.bcc = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(s.rcpts, json_null());
    bool *done = xcalloc(n ? n : 1, sizeof *done);
    size_t *idx = xcalloc(n ? n : 1, sizeof *idx);
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        if (!company[i][0]) {
            json_array_set_new(s.rcpts, i, json_pack("{s:s,s:s,s:i,s:[s]}", "c", "", "x", "none", "var", 0,
                                                     "trace", "no tenant: no rules"));
            done[i] = true;
            continue;
        }
        const struct cached *t = tenant(st, company[i]);
        size_t m = 0;
        for (size_t j = i; j < n; j++) {
            if (done[j] || strcasecmp(company[j], company[i]) != 0)
                continue;
            done[j] = true;
            idx[m++] = j;
            if (m == POLICY_MAX_RCPTS) {
                evaluate(&s, t, addr, idx, m);
                m = 0;
            }
        }
        if (m)
            evaluate(&s, t, addr, idx, m);
    }
    /* identical traces (every recipient of a rule set usually has the same
     * one) are stored once: a message to many recipients keeps a small plan */
    json_t *traces = json_array();
    size_t ri;
    json_t *r;
    json_array_foreach(s.rcpts, ri, r)
    {
        json_t *tr = json_object_get(r, "trace");
        size_t k, found = SIZE_MAX;
        json_t *u;
        json_array_foreach(traces, k, u) if (found == SIZE_MAX && json_equal(u, tr)) found = k;
        if (found == SIZE_MAX) {
            found = json_array_size(traces);
            json_array_append(traces, tr ? tr : json_array());
        }
        json_object_del(r, "trace");
        json_object_set_new(r, "t", json_integer((json_int_t)found));
    }
    json_t *det = json_loads(res->detections, 0, NULL);
    json_t *plan = json_pack("{s:i,s:s,s:o,s:o,s:o,s:o,s:o}", "v", 1, "dir", req->direction ? "outbound" : "inbound",
                             "detections", det ? det : json_array(), "traces", traces, "rcpts", s.rcpts, "notify",
                             s.notify, "bcc", s.bcc);
    char *text = plan ? json_dumps(plan, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(plan);
    if (text && strlen(text) > SCAN_PLAN_MAX) {
        /* cannot be carried: no plan means "deliver as received" would lose
         * the verdict, so the message is refused for now instead */
        log_error("scan worker: qid=%s plan too large (%zu bytes)", req->qid, strlen(text));
        free(text);
        text = NULL;
    }
    if (!text) {
        res->verdict = SCAN_TEMPFAIL;
        snprintf(res->reply, sizeof res->reply, "451 4.3.0 Temporary policy failure, try again later");
    }
    res->plan = text;
    res->variants = s.nk;
    for (size_t i = 0; i < s.nres; i++)
        policy_result_free(&s.res[i]);
    free(s.res);
    free(done);
    free(idx);
    free(company);
    free(addr);
    free(list);
}
