/*
 * http_server.c - the HTTP server: libmicrohttpd in thread-pool mode on
 * http_listen (HTTPS with the node's certificate when http_tls = on), the
 * request life cycle, the route table and the reply helpers.
 *
 *   http_server_start / _stop    listener, thread pool, store connections
 *   the route table              method + path pattern -> handler + flags
 *   http_reply_* / http_error    set the reply (JSON unless said otherwise)
 *   http_arg* / http_body_*      bounded access to query strings and bodies
 *   http_scope / http_audit      the request's tenant; audit rows
 *   (no route matched: the console's files, http_static.c)
 *
 * A request: headers arrive (first call: the request is created, the body
 * limit checked against Content-Length), the body is collected up to its
 * limit (64 KB; 64 MB for PUT /api/v1/config, 8 MB for the end-user CSV
 * import; beyond it 413 at once), then
 * the route is found, the caller authenticated (http_auth.c), authorised
 * (route flags: public, write = full role + CSRF, operator only, allowed
 * during forced TOTP enrolment) and the handler runs with a store
 * connection of its own from the pool (one per pool thread).
 *
 * Security notes: every reply carries Cache-Control: no-store (the
 * console's files: no-cache with an ETag, http_static.c), a
 * Content-Security-Policy and X-Content-Type-Options: nosniff; request bodies must be JSON
 * (Content-Type: application/json: a cross-site form cannot post one);
 * the connection limits, timeouts and header memory are libmicrohttpd's
 * (bounded below); paths over 511 bytes answer 414.
 */
#include "http/http_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <microhttpd.h>
#include <sodium.h>

#define HTTP_CONN_LIMIT 1024
#define HTTP_CONN_PER_IP 64
#define HTTP_CONN_TIMEOUT 60
#define HTTP_CONN_MEMORY (64 * 1024) /* request line + headers */

/* ---------------------------------------------------------------- routes */
enum {
    R_PUBLIC = 1,   /* no authentication */
    R_WRITE = 2,    /* full role; CSRF for sessions */
    R_OPERATOR = 4, /* operators only */
    R_ENROL = 8,    /* allowed while TOTP enrolment is forced */
    R_BIG = 16,     /* the large body limit */
    R_IMPORT = 32,  /* the import body limit */
};

struct http_route {
    const char *method;
    const char *pattern; /* segments; "{}" matches one [A-Za-z0-9._@-]{1,128} */
    unsigned flags;
    http_handler fn;
};

static const struct http_route routes[] = {
    {"GET", "/healthz", R_PUBLIC, http_api_healthz},
    {"GET", "/metrics", R_PUBLIC, http_api_metrics},
    {"POST", "/api/v1/session", R_PUBLIC, http_api_login},
    {"DELETE", "/api/v1/session", R_ENROL, http_api_logout},
    {"GET", "/api/v1/session", R_ENROL, http_api_whoami},
    {"POST", "/api/v1/account/password", R_ENROL, http_api_password},
    {"POST", "/api/v1/account/totp", R_ENROL, http_api_totp_begin},
    {"POST", "/api/v1/account/totp/confirm", R_ENROL, http_api_totp_confirm},
    {"DELETE", "/api/v1/account/totp", 0, http_api_totp_disable},
    {"GET", "/api/v1/config", 0, http_api_config_get},
    {"PUT", "/api/v1/config", R_WRITE | R_BIG, http_api_config_put},
    {"GET", "/api/v1/security", 0, http_api_security_get},
    {"PUT", "/api/v1/security", R_WRITE, http_api_security_put},
    {"GET", "/api/v1/tenants", R_OPERATOR, http_api_tenants_list},
    {"POST", "/api/v1/tenants", R_OPERATOR | R_WRITE, http_api_tenants_add},
    {"GET", "/api/v1/company-ids/{}", R_OPERATOR, http_api_company_id},
    {"POST", "/api/v1/tenants/{}/admin-mail", R_OPERATOR | R_WRITE, http_api_admin_mail},
    {"POST", "/api/v1/setup", R_PUBLIC, http_api_setup},
    {"GET", "/api/v1/profile", R_ENROL, http_api_profile_get},
    {"PUT", "/api/v1/profile", R_ENROL, http_api_profile_put},
    {"POST", "/api/v1/profile/confirm", R_PUBLIC, http_api_profile_confirm},
    {"POST", "/api/v1/profile/confirm-email", R_ENROL, http_api_profile_confirm_email},
    {"GET", "/api/v1/domains", 0, http_api_domains_list},
    {"POST", "/api/v1/domains", R_WRITE, http_api_domains_add},
    {"POST", "/api/v1/domains/{}/verify", R_WRITE, http_api_domain_verify},
    {"GET", "/api/v1/tracking", 0, http_api_tracking_search},
    {"GET", "/api/v1/tracking/{}", 0, http_api_tracking_get},
    {"GET", "/api/v1/stats", 0, http_api_stats},
    {"GET", "/api/v1/quarantine", 0, http_api_quarantine_list},
    {"POST", "/api/v1/quarantine/bulk", R_WRITE, http_api_quarantine_bulk},
    {"GET", "/api/v1/quarantine/{}", 0, http_api_quarantine_get},
    {"POST", "/api/v1/quarantine/{}/release", R_WRITE, http_api_quarantine_release},
    {"DELETE", "/api/v1/quarantine/{}", R_WRITE, http_api_quarantine_delete},
    {"GET", "/api/v1/queue", 0, http_api_queue_list},
    {"GET", "/api/v1/accounts", 0, http_api_accounts_list},
    {"POST", "/api/v1/accounts", R_WRITE, http_api_accounts_add},
    {"GET", "/api/v1/accounts/{}", 0, http_api_account_get},
    {"PATCH", "/api/v1/accounts/{}", R_WRITE, http_api_account_patch},
    {"DELETE", "/api/v1/accounts/{}", R_WRITE, http_api_account_delete},
    {"GET", "/api/v1/tokens", 0, http_api_tokens_list},
    {"POST", "/api/v1/tokens", R_WRITE, http_api_tokens_add},
    {"DELETE", "/api/v1/tokens/{}", R_WRITE, http_api_token_delete},
    {"GET", "/api/v1/audit", 0, http_api_audit},
    {"GET", "/api/v1/end-user-console", 0, http_api_euc_get},
    {"PUT", "/api/v1/end-user-console", R_WRITE, http_api_euc_put},
    {"GET", "/api/v1/endusers", 0, http_api_endusers_list},
    {"POST", "/api/v1/endusers", R_WRITE, http_api_endusers_add},
    {"POST", "/api/v1/endusers/import", R_WRITE | R_IMPORT, http_api_endusers_import},
    {"GET", "/api/v1/endusers/export", 0, http_api_endusers_export},
    {"GET", "/api/v1/endusers/{}", 0, http_api_enduser_get},
    {"PATCH", "/api/v1/endusers/{}", R_WRITE, http_api_enduser_patch},
    {"DELETE", "/api/v1/endusers/{}", R_WRITE, http_api_enduser_delete},
    {"POST", "/api/v1/endusers/{}/password-mail", R_WRITE, http_api_enduser_mail},
};
#define NROUTES (sizeof routes / sizeof routes[0])

static bool seg_ok(const char *s, size_t n)
{
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(isalnum((unsigned char)c) || c == '.' || c == '_' || c == '@' || c == '-'))
            return false;
    }
    return true;
}

/* route_match - does path match pattern? {} segments into r->args */
static bool route_match(const char *pattern, const char *path, struct http_request *r)
{
    size_t nargs = 0;
    const char *p = pattern, *u = path;
    while (*p && *u) {
        if (*p != '/' || *u != '/')
            return false;
        p++;
        u++;
        size_t pl = strcspn(p, "/"), ul = strcspn(u, "/");
        if (pl == 2 && p[0] == '{' && p[1] == '}') {
            if (!seg_ok(u, ul) || nargs >= 2)
                return false;
            memcpy(r->args[nargs], u, ul);
            r->args[nargs][ul] = '\0';
            nargs++;
        } else if (pl != ul || memcmp(p, u, pl) != 0) {
            return false;
        }
        p += pl;
        u += ul;
    }
    return *p == '\0' && *u == '\0';
}

/* body_limit - the body limit of the route method + url names (R_BIG,
 * R_IMPORT), else HTTP_BODY_MAX */
static size_t body_limit(struct http_request *r, const char *method, const char *url)
{
    for (size_t i = 0; i < NROUTES; i++) {
        if (strcmp(routes[i].method, method) == 0 && route_match(routes[i].pattern, url, r))
            return (routes[i].flags & R_BIG)      ? HTTP_BODY_MAX_CONFIG
                   : (routes[i].flags & R_IMPORT) ? HTTP_BODY_MAX_IMPORT
                                                  : HTTP_BODY_MAX;
    }
    return HTTP_BODY_MAX;
}

/* ---------------------------------------------------------------- replies */
void http_reply_text(struct http_request *r, unsigned status, const char *type, char *body, size_t len)
{
    free(r->out);
    r->status = status;
    r->content_type = type;
    r->out = body;
    r->outlen = len;
}

void http_reply_json(struct http_request *r, unsigned status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(body);
    if (!s) {
        s = xstrdup("{\"error\":\"internal error\"}");
        status = 500;
    }
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n] = '\n';
    s[n + 1] = '\0';
    http_reply_text(r, status, "application/json", s, n + 1);
}

void http_error(struct http_request *r, unsigned status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_object();
    json_t *m = json_string(msg); /* NULL when msg is not UTF-8 */
    json_object_set_new(o, "error", m ? m : json_string("invalid input"));
    http_reply_json(r, status, o);
}

bool http_path_id(struct http_request *r, int64_t *id)
{
    uint64_t v;
    if (http_parse_uint(r->args[0], INT64_MAX, &v) < 0 || v == 0) {
        http_not_found(r);
        return false;
    }
    *id = (int64_t)v;
    return true;
}

bool http_found(struct http_request *r, int rc)
{
    if (rc == 0)
        return true;
    if (rc < 0)
        http_error(r, 500, "internal error");
    else
        http_not_found(r);
    return false;
}

json_t *http_iso(double t)
{
    if (t <= 0)
        return json_null();
    char b[40];
    time_t secs = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&secs, &tm))
        return json_null();
    snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
    return json_string(b);
}

/* ---------------------------------------------------------------- request input */
const char *http_arg(struct http_request *r, const char *name, bool *bad)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    if (v && strlen(v) > HTTP_ARG_MAX) {
        http_error(r, 400, "%s: too long (at most %d bytes)", name, HTTP_ARG_MAX);
        if (bad)
            *bad = true;
        return NULL;
    }
    if (v) {
        for (const char *p = v; *p; p++) {
            if ((unsigned char)*p < 0x20) {
                http_error(r, 400, "%s: control character in value", name);
                if (bad)
                    *bad = true;
                return NULL;
            }
        }
    }
    return v;
}

int http_arg_time(struct http_request *r, const char *name, double *out)
{
    bool bad = false;
    const char *v = http_arg(r, name, &bad);
    if (bad)
        return -1;
    if (!v || !*v)
        return 0;
    if (http_parse_time(v, core_now(), out) < 0) {
        http_error(r, 400, "%s: not a time (epoch seconds, 30m/24h/7d ago, now, or ISO 8601 like 2026-05-01T09:30Z)",
                   name);
        return -1;
    }
    return 1;
}

int http_arg_uint(struct http_request *r, const char *name, uint64_t max, uint64_t *out)
{
    bool bad = false;
    const char *v = http_arg(r, name, &bad);
    if (bad)
        return -1;
    if (!v || !*v)
        return 0;
    if (http_parse_uint(v, max, out) < 0) {
        http_error(r, 400, "%s: must be a whole number 0..%llu", name, (unsigned long long)max);
        return -1;
    }
    return 1;
}

json_t *http_body_object(struct http_request *r)
{
    if (r->body.len == 0) {
        http_error(r, 400, "a JSON object body is required");
        return NULL;
    }
    if (!http_json_depth_ok(r->body.ptr, r->body.len, HTTP_JSON_DEPTH_MAX)) {
        http_error(r, 400, "JSON nested too deeply (at most %d levels)", HTTP_JSON_DEPTH_MAX);
        return NULL;
    }
    json_error_t e;
    json_t *o = json_loadb(r->body.ptr, r->body.len, JSON_REJECT_DUPLICATES, &e);
    if (!o) {
        http_error(r, 400, "invalid JSON at line %d column %d: %s", e.line, e.column, e.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        http_error(r, 400, "the body must be a JSON object");
        return NULL;
    }
    return o;
}

int http_json_str(struct http_request *r, json_t *o, const char *key, size_t max, const char **out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        http_error(r, 400, "%s: must be a string of 1..%zu bytes", key, max);
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

int http_json_only(struct http_request *r, json_t *o, const char *const *keys)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        bool known = false;
        for (size_t i = 0; keys[i]; i++)
            known = known || strcmp(k, keys[i]) == 0;
        if (!known) {
            char e[80];
            http_error(r, 400, "%s: unknown key", log_escape(k, strlen(k), e, sizeof e));
            return -1;
        }
    }
    return 0;
}

const char *http_scope(struct http_request *r, bool *bad)
{
    *bad = false;
    if (r->who.company_id[0])
        return r->who.company_id; /* a tenant administrator: always the session's tenant */
    const char *t = http_arg(r, "tenant", bad);
    if (*bad)
        return NULL;
    if (!t || !*t)
        return NULL;
    int ex = strlen(t) <= STORE_COMPANY_MAX ? store_tenant_exists(r->slot->st, t) : 0;
    if (ex != 1) {
        *bad = true;
        if (ex < 0)
            http_error(r, 500, "internal error");
        else
            http_not_found(r);
        return NULL;
    }
    return t;
}

void http_audit(struct http_request *r, const char *action, const char *company_id, const char *fmt, ...)
{
    char detail[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    char actor[STORE_EMAIL_MAX + 160];
    snprintf(actor, sizeof actor, "%s (api %s)", r->who.actor[0] ? r->who.actor : "anonymous", r->client_ip);
    if (store_audit_add(r->slot->st, actor, action, company_id, detail) < 0)
        log_error("http audit failed action=%s", action);
}

/* ---------------------------------------------------------------- store connections */
static struct http_slot *slot_get(struct http_server *h)
{
    pthread_mutex_lock(&h->mu);
    for (;;) {
        for (size_t i = 0; i < h->nslots; i++) {
            if (!h->slots[i].busy) {
                h->slots[i].busy = true;
                pthread_mutex_unlock(&h->mu);
                return &h->slots[i];
            }
        }
        pthread_cond_wait(&h->cv, &h->mu);
    }
}

static void slot_put(struct http_server *h, struct http_slot *s)
{
    pthread_mutex_lock(&h->mu);
    s->busy = false;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* ---------------------------------------------------------------- dispatch */
static void dispatch(struct http_request *r)
{
    const struct http_route *rt = NULL;
    bool path_known = false;
    for (size_t i = 0; i < NROUTES; i++) {
        if (route_match(routes[i].pattern, r->path, r)) {
            path_known = true;
            if (strcmp(routes[i].method, r->method) == 0) {
                rt = &routes[i];
                break;
            }
        }
    }
    if (!rt) {
        if (!path_known && http_static_serve(r))
            return;
        if (path_known)
            http_error(r, 405, "method not allowed");
        else
            http_not_found(r);
        return;
    }
    if (r->too_big) {
        http_error(r, 413, "request body too large");
        return;
    }
    if (r->body.len) {
        const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
        if (!ct || strncasecmp(ct, "application/json", 16) != 0 || (ct[16] && ct[16] != ';' && ct[16] != ' ')) {
            http_error(r, 415, "the body must be sent as Content-Type: application/json");
            return;
        }
    }
    r->slot = slot_get(r->srv);
    if (!(rt->flags & R_PUBLIC) || rt->fn == http_api_login || rt->fn == http_api_setup) {
        if (http_authenticate(r) < 0)
            goto done;
    }
    if (!(rt->flags & R_PUBLIC)) {
        if (!r->who.authenticated) {
            http_error(r, 401, "authentication required");
            goto done;
        }
        bool state_change = strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0;
        if (state_change && !http_csrf_ok(r)) {
            http_error(r, 403, "missing or invalid CSRF token (send the X-CSRF-Token header)");
            goto done;
        }
        if (r->who.enrolment_only && !(rt->flags & R_ENROL)) {
            http_error(r, 403, "two-factor authentication is required for this tenant: enrol first "
                               "(POST /api/v1/account/totp)");
            goto done;
        }
        if ((rt->flags & R_OPERATOR) && r->who.company_id[0]) {
            http_error(r, 403, "operators only");
            goto done;
        }
        if ((rt->flags & R_WRITE) && !r->who.full) {
            http_error(r, 403, "your role is read-only");
            goto done;
        }
    }
    rt->fn(r);
done:
    slot_put(r->srv, r->slot);
    r->slot = NULL;
}

/* ---------------------------------------------------------------- libmicrohttpd glue */
static enum MHD_Result send_reply(struct http_request *r)
{
    if (!r->status)
        http_error(r, 500, "internal error");
    struct MHD_Response *resp =
        r->out ? MHD_create_response_from_buffer(r->outlen, r->out, MHD_RESPMEM_MUST_FREE)
               : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (resp)
        r->out = NULL; /* libmicrohttpd frees it now */
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", r->content_type ? r->content_type : "application/json");
    MHD_add_response_header(resp, "Cache-Control", r->cache_control ? r->cache_control : "no-store");
    MHD_add_response_header(resp, "Content-Security-Policy", r->csp ? r->csp : HTTP_API_CSP);
    if (r->etag[0])
        MHD_add_response_header(resp, "ETag", r->etag);
    if (r->disposition[0])
        MHD_add_response_header(resp, "Content-Disposition", r->disposition);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    if (r->srv->https)
        MHD_add_response_header(resp, "Strict-Transport-Security", "max-age=31536000");
    if (r->set_cookie[0])
        MHD_add_response_header(resp, "Set-Cookie", r->set_cookie);
    if (r->retry_after[0])
        MHD_add_response_header(resp, "Retry-After", r->retry_after);
    if (r->status >= 100 && r->status < 600)
        __atomic_add_fetch(&r->srv->requests[r->status / 100], 1, __ATOMIC_RELAXED);
    enum MHD_Result rc = MHD_queue_response(r->conn, r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static void client_ip(struct MHD_Connection *c, char *out, size_t outsz)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    core_strlcpy(out, "unknown", outsz);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    char host[64];
    if (getnameinfo(sa, len, host, sizeof host, NULL, 0, NI_NUMERICHOST) == 0)
        core_strlcpy(out, host, outsz);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct http_server *h = cls;
    struct http_request *r = *con_cls;
    if (!r) {
        r = xcalloc(1, sizeof *r);
        r->srv = h;
        r->conn = conn;
        *con_cls = r;
        core_strlcpy(r->method, method, sizeof r->method);
        client_ip(conn, r->client_ip, sizeof r->client_ip);
        if (strlen(url) >= sizeof r->path) {
            buf_init(&r->body, HTTP_BODY_MAX);
            http_error(r, 414, "URI too long");
            return send_reply(r);
        }
        buf_init(&r->body, body_limit(r, method, url));
        core_strlcpy(r->path, url, sizeof r->path);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        uint64_t n;
        if (cl && (http_parse_uint(cl, UINT64_MAX, &n) < 0 || n > r->body.max)) {
            http_error(r, 413, "request body too large");
            return send_reply(r);
        }
        return MHD_YES;
    }
    if (r->status) { /* already answered (413/414): drop the rest */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!r->too_big && buf_append(&r->body, upload_data, *upload_data_size) < 0)
            r->too_big = true;
        *upload_data_size = 0;
        if (r->too_big) {
            http_error(r, 413, "request body too large");
            return send_reply(r);
        }
        return MHD_YES;
    }
    dispatch(r);
    return send_reply(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct http_request *r = *con_cls;
    if (!r)
        return;
    buf_free(&r->body);
    free(r->out);
    sodium_memzero(&r->who, sizeof r->who);
    free(r);
    *con_cls = NULL;
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512], e[600];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_warn("http libmicrohttpd reason=\"%s\"", log_escape(msg, n, e, sizeof e));
}

/* read_pem - a whole PEM file (at most 1 MB), NULL with err */
static char *read_pem(const char *path, char *err, size_t errsz)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct buf b;
    buf_init(&b, 1024 * 1024);
    if (fd < 0) {
        snprintf(err, errsz, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char chunk[8192];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0) {
        if (buf_append(&b, chunk, (size_t)n) < 0) {
            snprintf(err, errsz, "%s: too large", path);
            close(fd);
            buf_free(&b);
            return NULL;
        }
    }
    close(fd);
    if (n < 0 || b.len == 0) {
        snprintf(err, errsz, "cannot read %s", path);
        buf_free(&b);
        return NULL;
    }
    buf_cstr(&b);
    return b.ptr;
}

struct http_server *http_server_start(const struct http_deps *deps, char *err, size_t errsz)
{
    const struct moat_config *cfg = deps->cfg;
    char host[256];
    uint16_t port;
    if (core_parse_hostport(cfg->http_listen, host, sizeof host, &port) < 0) {
        snprintf(err, errsz, "http_listen: not host:port: %s", cfg->http_listen);
        return NULL;
    }
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", port);
    int gai = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, errsz, "http_listen %s: %s", cfg->http_listen, gai_strerror(gai));
        return NULL;
    }
    if (sodium_init() < 0) {
        freeaddrinfo(ai);
        snprintf(err, errsz, "libsodium initialisation failed");
        return NULL;
    }
    struct http_server *h = xcalloc(1, sizeof *h);
    h->d = *deps;
    h->started = core_now();
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->throttle = http_throttle_new(HTTP_THROTTLE_FAILURES, HTTP_THROTTLE_WINDOW);
    /* a real hash of a random password: unknown accounts cost the same as known ones */
    char junk[48];
    http_random_token(junk, 24);
    if (http_password_hash(junk, h->dummy_hash) < 0) {
        snprintf(err, errsz, "password hashing unavailable (out of memory?)");
        goto fail;
    }
    h->nslots = cfg->http_threads + 1;
    h->slots = xcalloc(h->nslots, sizeof *h->slots);
    for (size_t i = 0; i < h->nslots; i++) {
        if (store_open(cfg, &h->slots[i].st, err, errsz) < 0)
            goto fail;
        if (!(h->slots[i].qr = quarantine_open(cfg->data_dir, h->slots[i].st, err, errsz)))
            goto fail;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->https = strcmp(cfg->http_tls, "on") == 0;
    if (h->https) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, errsz, "http_tls = on, but libmicrohttpd was built without TLS");
            goto fail;
        }
        char certp[1100], keyp[1100];
        if (cfg->tls_cert[0]) {
            core_strlcpy(certp, cfg->tls_cert, sizeof certp);
            core_strlcpy(keyp, cfg->tls_key, sizeof keyp);
        } else { /* the self-signed pair smtp_tls_server_ctx generated */
            snprintf(certp, sizeof certp, "%s/tls/cert.pem", cfg->data_dir);
            snprintf(keyp, sizeof keyp, "%s/tls/key.pem", cfg->data_dir);
        }
        if (!(h->cert_pem = read_pem(certp, err, errsz)) || !(h->key_pem = read_pem(keyp, err, errsz)))
            goto fail;
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem tls_opts[] = {
        {h->https ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, h->cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, h->key_pem},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
        {MHD_OPTION_END, 0, NULL},
    };
    h->mhd = MHD_start_daemon(
        flags, port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)cfg->http_threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)HTTP_CONN_LIMIT,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)HTTP_CONN_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)HTTP_CONN_TIMEOUT, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
    if (!h->mhd) {
        snprintf(err, errsz, "cannot listen on %s (http_listen)", cfg->http_listen);
        goto fail;
    }
    freeaddrinfo(ai);
    log_info("http listening on=%s tls=%s threads=%llu", cfg->http_listen, h->https ? "on" : "off",
             (unsigned long long)cfg->http_threads);
    return h;
fail:
    freeaddrinfo(ai);
    http_server_stop(h);
    return NULL;
}

void http_server_stop(struct http_server *h)
{
    if (!h)
        return;
    if (h->mhd)
        MHD_stop_daemon(h->mhd);
    for (size_t i = 0; i < h->nslots; i++) {
        quarantine_close(h->slots[i].qr);
        if (h->slots[i].st)
            store_close(h->slots[i].st);
    }
    free(h->slots);
    http_throttle_free(h->throttle);
    if (h->key_pem)
        sodium_memzero(h->key_pem, strlen(h->key_pem));
    free(h->key_pem);
    free(h->cert_pem);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
