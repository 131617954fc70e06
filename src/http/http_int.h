/*
 * http_int.h - internals shared by src/http/ (not for other modules).
 *
 *   pure parsers (http_parse.c)     cookies, times, numbers, JSON depth, base32
 *   TOTP and QR (http_totp.c)       RFC 4226 / 6238 codes, otpauth URI, SVG
 *   login throttle (http_throttle.c) failures per client address
 *   the request (http_server.c)     struct http_request, replies, routing
 *   auth (http_auth.c)              sessions, tokens, CSRF, roles
 *   handlers (http_api_*.c)         one function per endpoint
 */
#ifndef MOAT_HTTP_INT_H
#define MOAT_HTTP_INT_H

#include <pthread.h>

#include <jansson.h>

#include "http/http.h"

/* ---------------------------------------------------------------- limits */
#define HTTP_BODY_MAX (64 * 1024)                  /* every request body but the tenant document */
#define HTTP_BODY_MAX_CONFIG (64 * 1024 * 1024)    /* PUT /api/v1/config */
#define HTTP_BODY_MAX_IMPORT (8 * 1024 * 1024)     /* POST /api/v1/endusers/import (a CSV of at most 2 MB, JSON-escaped) */
#define HTTP_JSON_DEPTH_MAX 16                     /* nesting of any JSON body (the tenant document needs 7) */
#define HTTP_FIELD_MAX 1024                        /* a string field of a small body */
#define HTTP_PASSWORD_MIN 10
#define HTTP_PASSWORD_MAX 256
#define HTTP_ARG_MAX 512                           /* a query-string value */
#define HTTP_LIST_MAX 10000                        /* rows in one listing */
#define HTTP_BULK_MAX 1000                         /* objects in one bulk request */
#define HTTP_SESSION_COOKIE "moat_session"
#define HTTP_SESSION_ID_LEN 43                     /* 32 random bytes, base64url without padding */
#define HTTP_TOKEN_PREFIX "moat_"
#define HTTP_RECOVERY_CODES 10
#define HTTP_THROTTLE_FAILURES 20                  /* failed logins per client address ... */
#define HTTP_THROTTLE_WINDOW 300.0                 /* ... within this many seconds, then 429 */
/* Content-Security-Policy of the console's files (docs/console.md) and of every other reply */
#define HTTP_CONSOLE_CSP                                                                                  \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " \
    "frame-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
#define HTTP_API_CSP "default-src 'none'; frame-ancestors 'none'"

/* ---------------------------------------------------------------- http_parse.c (pure, fuzzed) */
/* http_cookie_get - the value of cookie `name` in a Cookie header (first
 * occurrence), copied to out; its length, or -1 when absent, malformed or
 * longer than outsz - 1. Values are limited to RFC 6265 cookie-octets. */
long http_cookie_get(const char *header, size_t len, const char *name, char *out, size_t outsz);
/* http_parse_time - an API time: epoch seconds ("1700000000" or with a
 * fraction), relative "30m"/"24h"/"7d"/"2w" (ago), "now", or ISO 8601
 * "2024-05-01[THH:MM[:SS[.fff]]][Z|+09:00]" (UTC when no offset); 0 or -1 */
int http_parse_time(const char *s, double now, double *out);
/* http_parse_uint - decimal without sign, <= max; 0 or -1 */
int http_parse_uint(const char *s, uint64_t max, uint64_t *out);
/* http_json_depth_ok - true when no array/object nests deeper than max
 * (strings and escapes skipped); a cheap guard before the real parser */
bool http_json_depth_ok(const char *p, size_t len, unsigned max);
/* base32 (RFC 4648, upper case, no padding on output; decoding ignores case,
 * spaces and trailing '='): lengths, or -1 on bad input / small buffers */
long http_base32_encode(const unsigned char *in, size_t len, char *out, size_t outsz);
long http_base32_decode(const char *in, size_t len, unsigned char *out, size_t outsz);

/* ---------------------------------------------------------------- http_totp.c */
#define HTTP_TOTP_STEP 30
#define HTTP_TOTP_DIGITS 6
#define HTTP_TOTP_SECRET_BYTES 20
/* http_hotp - RFC 4226 code of key/counter with `digits` digits (6..8) and
 * the HMAC digest md ("SHA1", "SHA256", "SHA512"); -1 on error */
long http_hotp(const unsigned char *key, size_t keylen, uint64_t counter, unsigned digits, const char *md);
/* http_totp_check - does code (digits only) match secret (base32) at time
 * now, one step either side? *step = the matching time step. 0 yes, 1 no, -1 bad secret */
int http_totp_check(const char *secret_b32, const char *code, double now, int64_t *step);
/* http_totp_uri - otpauth://totp/Moat:<email>?secret=...&issuer=Moat into out */
void http_totp_uri(const char *email, const char *secret_b32, char *out, size_t outsz);
/* http_qr_svg - the QR code of text as a standalone SVG (caller frees), or NULL */
char *http_qr_svg(const char *text);

/* ---------------------------------------------------------------- http_throttle.c */
struct http_throttle;
struct http_throttle *http_throttle_new(unsigned max_failures, double window);
void http_throttle_free(struct http_throttle *t);
/* http_throttle_allowed - may this address try to log in now? When not,
 * *retry_after = seconds until it may. */
bool http_throttle_allowed(struct http_throttle *t, const char *addr, double now, double *retry_after);
void http_throttle_fail(struct http_throttle *t, const char *addr, double now);
void http_throttle_reset(struct http_throttle *t, const char *addr);

/* ---------------------------------------------------------------- the server */
struct http_slot {
    struct store *st;
    struct quarantine *qr;
    bool busy;
};

struct http_server {
    struct http_deps d;
    struct MHD_Daemon *mhd;
    bool https;
    char *cert_pem, *key_pem;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct http_slot *slots;
    size_t nslots;
    struct http_throttle *throttle;
    char dummy_hash[STORE_PWHASH_MAX + 1]; /* verified for unknown accounts: same timing */
    uint64_t requests[6];                   /* by status class 1xx..5xx (index 1..5), atomic */
    double started;
};

/* who made a request (http_auth.c) */
struct http_principal {
    bool authenticated;
    bool via_token;
    int64_t account_id;                     /* 0 for a token */
    int64_t token_id;
    char actor[STORE_EMAIL_MAX + 80];       /* e-mail or "token:<name>" (audit log) */
    char company_id[STORE_COMPANY_MAX + 1]; /* "" = operator */
    bool full;
    bool enrolment_only;                    /* the tenant requires TOTP and it is not set up yet */
    char session_hash[STORE_HASH_HEX + 1];
    char csrf[64];
};

struct http_request {
    struct http_server *srv;
    struct MHD_Connection *conn;
    char method[8];
    char path[512];
    char client_ip[64];
    struct buf body;
    bool too_big;
    struct http_slot *slot;
    struct http_principal who;
    char args[2][129]; /* {..} segments of the route */
    /* the reply */
    unsigned status;
    char *out; /* body (malloc), or NULL */
    size_t outlen;
    const char *content_type;
    const char *cache_control; /* NULL: no-store */
    const char *csp;           /* Content-Security-Policy; NULL: HTTP_API_CSP */
    char etag[72];             /* "" for none (static files; the tenant document's version) */
    char disposition[160];     /* Content-Disposition; "" for none */
    char set_cookie[512];
    char retry_after[16];
};

/* reply helpers: each sets the whole reply; the last call wins */
void http_reply_json(struct http_request *r, unsigned status, json_t *body); /* steals body */
void http_reply_text(struct http_request *r, unsigned status, const char *type, char *body, size_t len); /* steals */
void http_error(struct http_request *r, unsigned status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define http_not_found(r) http_error((r), 404, "not found")
/* http_arg - a query-string argument (decoded by libmicrohttpd), NULL when
 * absent; an argument over HTTP_ARG_MAX bytes answers 400 and returns NULL
 * with *bad set */
const char *http_arg(struct http_request *r, const char *name, bool *bad);
/* http_arg_time / http_arg_uint - parsed argument; 0 absent (out untouched), 1 set, -1 replied 400 */
int http_arg_time(struct http_request *r, const char *name, double *out);
int http_arg_uint(struct http_request *r, const char *name, uint64_t max, uint64_t *out);
/* http_body_object - the JSON object body (caller decrefs) or NULL after replying 400 */
json_t *http_body_object(struct http_request *r);
/* http_json_str - o[key] as a string of 1..max bytes: 0 absent, 1 ok, -1 replied 400 */
int http_json_str(struct http_request *r, json_t *o, const char *key, size_t max, const char **out);
/* http_json_only - -1 (replied 400) when o has a key not in the NULL-ended list */
int http_json_only(struct http_request *r, json_t *o, const char *const *keys);
/* http_scope - the tenant this request acts on: a tenant administrator's
 * own; an operator's ?tenant= (NULL: every tenant). *bad set (replied) on a
 * malformed or unknown ?tenant=. */
const char *http_scope(struct http_request *r, bool *bad);
/* http_audit - one audit_log row by the request's principal */
void http_audit(struct http_request *r, const char *action, const char *company_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* http_path_id - the route's {id} as a positive integer; false after replying 404 */
bool http_path_id(struct http_request *r, int64_t *id);
/* http_found - true when a store lookup answered 0; else false after
 * replying 404 (1: not found, also another tenant's) or 500 (-1) */
bool http_found(struct http_request *r, int rc);
/* http_iso - ISO 8601 UTC of t, as a json string (NULL for t <= 0) */
json_t *http_iso(double t);

/* ---------------------------------------------------------------- http_auth.c */
/* http_authenticate - fill r->who from an API token (Authorization: Bearer)
 * or the session cookie; 0 (who.authenticated may be false) or -1 (replied) */
int http_authenticate(struct http_request *r);
/* http_csrf_ok - true unless a cookie session sends a state-changing request
 * without the right X-CSRF-Token */
bool http_csrf_ok(struct http_request *r);
/* password hashing and secrets: http.h */
bool http_password_verify(const char *hash, const char *password);
/* http_new_session - create a session for account a (rotating away the one
 * the request came with), set the cookie; the CSRF token into csrf; 0 or -1 */
int http_new_session(struct http_request *r, const struct store_account *a, char csrf[64]);
void http_clear_cookie(struct http_request *r);

/* ---------------------------------------------------------------- handlers */
typedef void (*http_handler)(struct http_request *r);
/* http_api_session.c */
void http_api_login(struct http_request *r);
void http_api_logout(struct http_request *r);
void http_api_whoami(struct http_request *r);
void http_api_password(struct http_request *r);
void http_api_totp_begin(struct http_request *r);
void http_api_totp_confirm(struct http_request *r);
void http_api_totp_disable(struct http_request *r);
/* http_session_json - what login and GET /session answer for a */
json_t *http_session_json(struct http_request *r, const struct store_account *a, const char *csrf);
/* http_api_onboard.c */
void http_api_setup(struct http_request *r);
void http_api_admin_mail(struct http_request *r);
void http_api_profile_get(struct http_request *r);
void http_api_profile_put(struct http_request *r);
void http_api_profile_confirm(struct http_request *r);
void http_api_profile_confirm_email(struct http_request *r);
/* http_api_admin.c */
void http_api_accounts_list(struct http_request *r);
void http_api_accounts_add(struct http_request *r);
void http_api_account_get(struct http_request *r);
void http_api_account_patch(struct http_request *r);
void http_api_account_delete(struct http_request *r);
void http_api_tokens_list(struct http_request *r);
void http_api_tokens_add(struct http_request *r);
void http_api_token_delete(struct http_request *r);
void http_api_audit(struct http_request *r);
void http_api_security_get(struct http_request *r);
void http_api_security_put(struct http_request *r);
/* http_api_config.c */
void http_api_config_get(struct http_request *r);
void http_api_config_put(struct http_request *r);
/* http_api_mail.c */
void http_api_tracking_search(struct http_request *r);
void http_api_tracking_get(struct http_request *r);
void http_api_stats(struct http_request *r);
void http_api_quarantine_list(struct http_request *r);
void http_api_quarantine_get(struct http_request *r);
void http_api_quarantine_release(struct http_request *r);
void http_api_quarantine_delete(struct http_request *r);
void http_api_quarantine_bulk(struct http_request *r);
void http_api_queue_list(struct http_request *r);
/* http_api_domains.c */
void http_api_domains_list(struct http_request *r);
void http_api_domains_add(struct http_request *r);
void http_api_domain_verify(struct http_request *r);
/* http_api_tenants.c */
void http_api_tenants_list(struct http_request *r);
void http_api_tenants_add(struct http_request *r);
void http_api_company_id(struct http_request *r);
/* http_api_endusers.c */
void http_api_euc_get(struct http_request *r);
void http_api_euc_put(struct http_request *r);
void http_api_endusers_list(struct http_request *r);
void http_api_endusers_add(struct http_request *r);
void http_api_endusers_import(struct http_request *r);
void http_api_endusers_export(struct http_request *r);
void http_api_enduser_get(struct http_request *r);
void http_api_enduser_patch(struct http_request *r);
void http_api_enduser_delete(struct http_request *r);
void http_api_enduser_mail(struct http_request *r);
/* http_static.c: the console's files; 1 when r->path is one of them (replied), else 0 */
int http_static_serve(struct http_request *r);
/* http_metrics.c */
void http_api_healthz(struct http_request *r);
void http_api_metrics(struct http_request *r);

/* account_json - an account as the API shows it (no secrets) */
json_t *http_account_json(struct store *st, const struct store_account *a);

#endif
