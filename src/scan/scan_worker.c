/*
 * scan_worker.c - the scan worker process (`moatd --scan-worker`).
 *
 * Started by scan_pool with its end of a socketpair on fd 3. Loops: read one
 * request frame, map the spool file read-only, analyse, write one result
 * frame. The analysis is mime_analyse's (src/mime) followed by the detectors
 * (src/detect) with the request's tenant and envelope as detect_context; the
 * result carries the decoded Message-ID/Subject/From and the verdict summary
 * ("clean" or the detection categories, the spam score, the flags).
 *
 * Tenant settings (own and high-profile domains, high-profile users, web
 * reputation lists, file passwords) are read from the store (read-only use
 * of the same SQLite database) and cached per tenant; the cache is dropped
 * when the store's config_version changes. A store problem is not fatal:
 * the message is scanned without the tenant's settings and says so.
 * Untrusted message content is only ever parsed here, under resource
 * limits (CPU seconds per message, address space - except under ASan, which
 * needs a huge reservation - open files, no core dumps). A worker that
 * misbehaves is killed and replaced by the pool; it never sees the network.
 *
 * MOAT_SCAN_DEBUG_TRIGGERS in the environment (tests only): a Subject of
 * "MOAT-TEST-CRASH" aborts the worker, "MOAT-TEST-HANG" hangs it.
 */
#include "core/core.h"
#include "mime/mime.h"
#include "scan/scan.h"
#include "detect/detect.h"
#include "store/store.h"

#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* read_full / write_full - whole-buffer blocking I/O; -1 on EOF or error */
static int read_full(int fd, unsigned char *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void set_limits(const struct moat_config *cfg)
{
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = 0;
    setrlimit(RLIMIT_CORE, &rl);
    rl.rlim_cur = rl.rlim_max = 64;
    setrlimit(RLIMIT_NOFILE, &rl);
#if !defined(__SANITIZE_ADDRESS__)
#if defined(__has_feature)
#if !__has_feature(address_sanitizer)
    rl.rlim_cur = rl.rlim_max = cfg->scan_memory_limit;
    setrlimit(RLIMIT_AS, &rl);
#endif
#else
    rl.rlim_cur = rl.rlim_max = cfg->scan_memory_limit;
    setrlimit(RLIMIT_AS, &rl);
#endif
#endif
    (void)cfg;
}

/* copy_text - a bounded copy cut at a UTF-8 character boundary, control
 * characters as spaces (these strings go into headers and logs) */
static void copy_text(char *dst, size_t dstsz, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= dstsz) {
        n = dstsz - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++)
        dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7F ? ' ' : src[i];
    dst[n] = '\0';
}

/* ---------------------------------------------------------------- tenants */
#define SCAN_TENANT_CACHE 32

static struct {
    struct store *st;
    bool failed;                   /* store_open failed: do not retry per message */
    int64_t version;               /* config_version the cache belongs to */
    struct detect_tenant *t[SCAN_TENANT_CACHE];
    size_t n, next;                /* next: round-robin eviction */
} tenants = {.version = -1};

static void tenants_clear(void)
{
    for (size_t i = 0; i < tenants.n; i++)
        detect_tenant_free(tenants.t[i]);
    tenants.n = tenants.next = 0;
}

struct style_add {
    struct detect_tenant *t;
    const char *company_id;
};

static void style_add(const char *address, const unsigned char *blob, size_t len, void *arg)
{
    struct style_add *sa = arg;
    char err[300];
    if (detect_tenant_add_style(sa->t, blob, len, err, sizeof err) < 0)
        log_warn("tenant %s: writing-style profile of %s ignored: %s", sa->company_id, address, err);
}

struct detect_tenant *scan_tenant_load(struct store *st, const char *company_id, char *err, size_t errsz)
{
    char *doc = store_export_json(st, company_id, err, errsz);
    if (!doc)
        return NULL;
    struct detect_tenant *t = detect_tenant_from_json(doc, strlen(doc), company_id, err, errsz);
    free(doc);
    if (!t)
        return NULL;
    struct style_add sa = {t, company_id};
    if (store_style_each(st, company_id, style_add, &sa) < 0)
        log_warn("tenant %s: writing-style profiles unavailable", company_id);
    return t;
}

/* worker_store - the worker's read-only use of the store, opened once;
 * NULL when it cannot be opened */
static struct store *worker_store(const struct moat_config *cfg)
{
    char err[600];
    if (tenants.failed)
        return NULL;
    if (!tenants.st && store_open(cfg, &tenants.st, err, sizeof err) < 0) {
        log_error("scan worker: no tenant settings: %s", err);
        tenants.failed = true;
        return NULL;
    }
    return tenants.st;
}

/* tenant_get - the tenant's settings (borrowed until the next call), or
 * NULL when unknown or the store cannot be read */
static const struct detect_tenant *tenant_get(const struct moat_config *cfg, const char *company_id)
{
    char err[600];
    if (!company_id[0] || !worker_store(cfg))
        return NULL;
    int64_t v = store_config_version(tenants.st);
    if (v != tenants.version) {
        tenants_clear();
        tenants.version = v;
    }
    for (size_t i = 0; i < tenants.n; i++)
        if (strcasecmp(detect_tenant_company(tenants.t[i]), company_id) == 0)
            return tenants.t[i];
    struct detect_tenant *t = scan_tenant_load(tenants.st, company_id, err, sizeof err);
    if (!t) {
        log_warn("scan worker: tenant %s: %s", company_id, err);
        return NULL;
    }
    size_t slot;
    if (tenants.n < SCAN_TENANT_CACHE) {
        slot = tenants.n++;
    } else {
        slot = tenants.next++ % SCAN_TENANT_CACHE;
        detect_tenant_free(tenants.t[slot]);
    }
    tenants.t[slot] = t;
    return t;
}

/* detections_json - the detections as a JSON array into out (whole entries
 * only, as many as fit; the strings are UTF-8 already) */
static void detections_json(const struct analysis *a, char *out, size_t outsz)
{
    size_t len = 0;
    out[len++] = '[';
    for (size_t i = 0; i < a->ndetections; i++) {
        const struct detection *d = &a->detections[i];
        json_t *o = json_pack("{s:s,s:s,s:f,s:s}", "category", d->category, "name", d->name, "score", d->score,
                              "evidence", d->evidence ? d->evidence : "");
        if (o && d->type)
            json_object_set_new(o, "type", json_string(d->type));
        char *t = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        size_t n = t ? strlen(t) : 0;
        if (t && outsz - len > n + 2) { /* + "," + "]" */
            if (len > 1)
                out[len++] = ',';
            memcpy(out + len, t, n);
            len += n;
        }
        free(t);
    }
    out[len++] = ']';
    out[len] = '\0';
}

/* summarise - fill the result from the analysis: decoded Message-ID,
 * Subject and From, the malformed bit, and the summary "clean" or the
 * detection categories ("virus,spam"), then "; detections=" with up to 8
 * detection names, "; spam=0.97" and "; flags=a,b" */
static void summarise(const struct analysis *a, struct scan_result *res)
{
    if (a->message_id)
        copy_text(res->message_id, sizeof res->message_id, a->message_id);
    if (a->subject)
        copy_text(res->subject, sizeof res->subject, a->subject);
    for (size_t i = 0; i < a->nheaders; i++)
        if (strcasecmp(a->headers[i].name, "From") == 0) {
            copy_text(res->from, sizeof res->from, a->headers[i].value);
            break;
        }
    struct buf b;
    buf_init(&b, sizeof res->summary - 1);
    size_t ncat = 0;
    for (size_t i = 0; i < a->ndetections; i++) {
        bool seen = false;
        for (size_t k = 0; k < i; k++)
            seen |= strcmp(a->detections[k].category, a->detections[i].category) == 0;
        if (!seen)
            buf_printf(&b, "%s%s", ncat++ ? "," : "", a->detections[i].category);
    }
    if (!ncat)
        buf_append_str(&b, "clean");
    for (size_t i = 0, n = 0; i < a->ndetections && n < 8; i++) {
        bool seen = false;
        for (size_t k = 0; k < i; k++)
            seen |= strcmp(a->detections[k].name, a->detections[i].name) == 0;
        if (!seen)
            buf_printf(&b, "%s%s", n++ ? "," : "; detections=", a->detections[i].name);
    }
    if (a->spam_scored)
        buf_printf(&b, "; spam=%.3f", a->spam_score);
    for (size_t i = 0, n = 0; i < a->nflags; i++) {
        bool seen = false;
        for (size_t k = 0; k < i; k++)
            seen |= strcmp(a->flags[k].name, a->flags[i].name) == 0;
        if (seen)
            continue;
        if (strcmp(a->flags[i].name, "malformed") == 0)
            res->flags |= SCAN_FLAG_MALFORMED;
        buf_printf(&b, "%s%s", n++ ? "," : "; flags=", a->flags[i].name);
    }
    copy_text(res->summary, sizeof res->summary, buf_cstr(&b));
    buf_free(&b);
    detections_json(a, res->detections, sizeof res->detections);
}

/* analyse - run the analysis of one message */
static void analyse(const struct scan_request *req, const struct moat_config *cfg, bool triggers,
                    struct scan_result *res)
{
    const struct detect_tenant *tenant = tenant_get(cfg, req->company_id);
    int fd = open(req->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size < req->data_len) {
        res->verdict = SCAN_TEMPFAIL;
        snprintf(res->reply, sizeof res->reply, "451 4.3.0 Temporary scanning failure");
        if (fd >= 0)
            close(fd);
        return;
    }
    size_t maplen = req->data_len;
    const char *msg = "";
    void *map = NULL;
    if (maplen) {
        map = mmap(NULL, maplen, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            close(fd);
            res->verdict = SCAN_TEMPFAIL;
            snprintf(res->reply, sizeof res->reply, "451 4.3.0 Temporary scanning failure");
            return;
        }
        msg = map;
    }
    close(fd);
    /* the raw header block: header count and the header-level malformed bit */
    scan_headers_parse(msg, maplen < SCAN_HEADER_MAX_BLOCK ? maplen : SCAN_HEADER_MAX_BLOCK, res);
    struct mime_limits lim;
    mime_limits_default(&lim);
    lim.passwords = detect_tenant_passwords(tenant, &lim.npasswords);
    struct detect_context ctx = {
        .mail_from = req->mail_from, .client_ip = req->client_ip, .nrcpt = req->nrcpt};
    detect_tenant_context(tenant, &ctx);
    struct analysis *a = mime_analyse(msg, maplen, &lim);
    if (a)
        detect_run(a, msg, maplen, &ctx);
    if (!a) {
        if (map)
            munmap(map, maplen);
        res->verdict = SCAN_TEMPFAIL;
        snprintf(res->reply, sizeof res->reply, "451 4.3.0 Temporary scanning failure");
        return;
    }
    bool headers_malformed = res->flags & SCAN_FLAG_MALFORMED;
    summarise(a, res);
    if (headers_malformed && !(res->flags & SCAN_FLAG_MALFORMED))
        res->flags |= SCAN_FLAG_MALFORMED;
    res->verdict = SCAN_ACCEPT;
    scan_policy_run(req->rcpts ? worker_store(cfg) : NULL, req, a, msg, maplen, res);
    if (map)
        munmap(map, maplen);
    analysis_free(a);
    if (triggers && strcmp(res->subject, "MOAT-TEST-CRASH") == 0)
        abort();
    if (triggers && strcmp(res->subject, "MOAT-TEST-HANG") == 0)
        for (;;)
            pause();
}

int scan_worker_main(int fd, const struct moat_config *cfg)
{
    char err[600], tmp[1024];
    if (scan_tmpdir_resolve(cfg, tmp, sizeof tmp) == 0)
        detect_set_tmpdir(tmp);
    else
        log_warn("scan worker: scan_tmp_dir %s unusable: libclamav uses TMPDIR", cfg->scan_tmp_dir);
    if (detect_init(cfg, err, sizeof err) < 0)
        log_error("scan worker: detection runs degraded: %s", err);
    return scan_worker_serve(fd, cfg);
}

int scan_worker_serve(int fd, const struct moat_config *cfg)
{
    static unsigned char frame[SCAN_IPC_FRAME_MAX];
    bool triggers = getenv("MOAT_SCAN_DEBUG_TRIGGERS") != NULL;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN); /* the parent decides when we stop */
    signal(SIGHUP, SIG_IGN);
    set_limits(cfg);
    for (;;) {
        struct scan_request req;
        struct scan_result res;
        if (read_full(fd, frame, 4) < 0)
        {
            tenants_clear();
            scan_policy_clear();
            store_close(tenants.st);
            return 0; /* parent closed: normal end */
        }
        long n = scan_ipc_frame_len(frame, 4);
        if (n < 0 || read_full(fd, frame + 4, (size_t)n - 4) < 0 ||
            scan_ipc_decode_request(frame, (size_t)n, &req) < 0) {
            log_error("scan worker: malformed request from parent");
            return 1;
        }
        memset(&res, 0, sizeof res);
        res.id = req.id;
        analyse(&req, cfg, triggers, &res);
        long m = scan_ipc_encode_result(&res, frame, sizeof frame);
        scan_request_clear(&req);
        scan_result_clear(&res);
        if (m < 0 || write_full(fd, frame, (size_t)m) < 0)
            return 1;
    }
}
