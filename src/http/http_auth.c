/*
 * http_auth.c - who is calling: API tokens and console sessions, CSRF,
 * password hashing, secret generation.
 *
 *   http_authenticate      Authorization: Bearer moat_... or the moat_session cookie -> r->who
 *   http_csrf_ok           X-CSRF-Token of a cookie session's state-changing request
 *   http_new_session       create (rotate) a session at login, set the cookie
 *   http_password_*        argon2id (libsodium crypto_pwhash_str), password rules
 *   http_random_token      base64url of getrandom bytes (libsodium)
 *   http_sha256_hex        what the store keeps instead of a secret
 *
 * Sessions: the cookie carries 256 random bits (43 base64url characters);
 * the store keeps only their SHA-256, so reading the database gives no
 * session. A session ends after http_session_idle without a request and
 * http_session_lifetime after login whatever its activity, and when its
 * account is disabled, deleted or changes its password. The cookie is
 * HttpOnly, SameSite=Strict, Path=/ and Secure under HTTPS. The CSRF token
 * is random per session, returned at login (and by GET /api/v1/session), and
 * compared in constant time. API tokens carry no cookie and need no CSRF
 * token: a browser never sends them by itself.
 */
#include "http/http_int.h"

#include <microhttpd.h>
#include <sodium.h>

#define SESSION_TOUCH_EVERY 15.0 /* seconds between last_seen updates of one session */

/* sodium_ready - libsodium initialised (idempotent, thread-safe) */
static void sodium_ready(void)
{
    if (sodium_init() < 0)
        fatal("libsodium initialisation failed");
}

void http_random_token(char *out, size_t nbytes)
{
    sodium_ready();
    unsigned char b[64];
    if (nbytes > sizeof b)
        nbytes = sizeof b;
    randombytes_buf(b, nbytes);
    sodium_bin2base64(out, sodium_base64_ENCODED_LEN(nbytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING), b, nbytes,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(b, sizeof b);
}

void http_token_new(char *token, size_t tokensz, char hash[STORE_HASH_HEX + 1])
{
    char secret[HTTP_SESSION_ID_LEN + 1];
    http_random_token(secret, 32);
    snprintf(token, tokensz, "%s%s", HTTP_TOKEN_PREFIX, secret);
    sodium_memzero(secret, sizeof secret);
    http_sha256_hex(token, strlen(token), hash);
}

void http_sha256_hex(const char *s, size_t len, char out[STORE_HASH_HEX + 1])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)s, len);
    sodium_bin2hex(out, STORE_HASH_HEX + 1, h, sizeof h);
}

int http_password_hash(const char *password, char out[STORE_PWHASH_MAX + 1])
{
    char h[crypto_pwhash_STRBYTES];
    sodium_ready();
    if (crypto_pwhash_str(h, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        return -1;
    core_strlcpy(out, h, STORE_PWHASH_MAX + 1);
    return 0;
}

bool http_password_verify(const char *hash, const char *password)
{
    return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

const char *http_password_weak(const char *password)
{
    size_t n = strlen(password);
    if (n < HTTP_PASSWORD_MIN)
        return "password: at least 10 characters";
    if (n > HTTP_PASSWORD_MAX)
        return "password: at most 256 bytes";
    for (const char *p = password; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return "password: control characters are not allowed";
    return NULL;
}

void http_clear_cookie(struct http_request *r)
{
    snprintf(r->set_cookie, sizeof r->set_cookie,
             "%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict%s", HTTP_SESSION_COOKIE,
             r->srv->https ? "; Secure" : "");
}

/* request_session_hash - the hash of the session cookie the request carries; false when none */
static bool request_session_hash(struct http_request *r, char hash[STORE_HASH_HEX + 1])
{
    const char *cookie = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Cookie");
    char id[HTTP_SESSION_ID_LEN + 8];
    if (!cookie || http_cookie_get(cookie, strlen(cookie), HTTP_SESSION_COOKIE, id, sizeof id) !=
                       HTTP_SESSION_ID_LEN)
        return false;
    http_sha256_hex(id, HTTP_SESSION_ID_LEN, hash);
    sodium_memzero(id, sizeof id);
    return true;
}

int http_new_session(struct http_request *r, const struct store_account *a, char csrf[64])
{
    struct store *st = r->slot->st;
    char old[STORE_HASH_HEX + 1];
    if (request_session_hash(r, old)) /* rotation: the session the browser had ends here */
        store_session_delete(st, old);
    char id[HTTP_SESSION_ID_LEN + 1];
    http_random_token(id, 32);
    struct store_session s;
    memset(&s, 0, sizeof s);
    http_sha256_hex(id, strlen(id), s.id_hash);
    s.account_id = a->id;
    http_random_token(s.csrf, 32);
    s.created = s.last_seen = core_now();
    if (store_session_add(st, &s, r->client_ip) < 0) {
        sodium_memzero(id, sizeof id);
        return -1;
    }
    snprintf(r->set_cookie, sizeof r->set_cookie, "%s=%s; Path=/; HttpOnly; SameSite=Strict%s",
             HTTP_SESSION_COOKIE, id, r->srv->https ? "; Secure" : "");
    sodium_memzero(id, sizeof id);
    core_strlcpy(csrf, s.csrf, 64);
    core_strlcpy(r->who.session_hash, s.id_hash, sizeof r->who.session_hash);
    return 0;
}

/* from_token - Authorization: Bearer <token>; 1 used, 0 no header, -1 replied */
static int from_token(struct http_request *r)
{
    const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if (!auth)
        return 0;
    if (strncasecmp(auth, "Bearer ", 7) != 0) {
        http_error(r, 401, "unsupported Authorization scheme (use Bearer with an API token)");
        return -1;
    }
    const char *tok = auth + 7;
    size_t n = strlen(tok);
    struct store_token t;
    char hash[STORE_HASH_HEX + 1];
    if (n < 10 || n > 128 || strncmp(tok, HTTP_TOKEN_PREFIX, strlen(HTTP_TOKEN_PREFIX)) != 0) {
        http_error(r, 401, "invalid API token");
        return -1;
    }
    http_sha256_hex(tok, n, hash);
    int rc = store_token_find(r->slot->st, hash, &t);
    if (rc < 0) {
        http_error(r, 500, "internal error");
        return -1;
    }
    if (rc == 1 || t.disabled) {
        http_error(r, 401, "invalid API token");
        return -1;
    }
    double now = core_now();
    if (now - t.last_used > 60)
        store_token_touch(r->slot->st, t.id, now);
    r->who.authenticated = true;
    r->who.via_token = true;
    r->who.token_id = t.id;
    snprintf(r->who.actor, sizeof r->who.actor, "token:%s", t.name);
    core_strlcpy(r->who.company_id, t.company_id, sizeof r->who.company_id);
    r->who.full = t.full;
    return 1;
}

int http_authenticate(struct http_request *r)
{
    memset(&r->who, 0, sizeof r->who);
    int t = from_token(r);
    if (t != 0)
        return t < 0 ? -1 : 0;
    char hash[STORE_HASH_HEX + 1];
    if (!request_session_hash(r, hash))
        return 0;
    struct store *st = r->slot->st;
    struct store_session s;
    int rc = store_session_get(st, hash, &s);
    if (rc < 0) {
        http_error(r, 500, "internal error");
        return -1;
    }
    if (rc == 1)
        return 0;
    const struct moat_config *cfg = r->srv->d.cfg;
    double now = core_now();
    double idle = (double)__atomic_load_n(&cfg->http_session_idle, __ATOMIC_RELAXED);
    double life = (double)__atomic_load_n(&cfg->http_session_lifetime, __ATOMIC_RELAXED);
    if (now - s.last_seen > idle || now - s.created > life) {
        store_session_delete(st, hash);
        return 0;
    }
    struct store_account a;
    rc = store_account_get(st, NULL, s.account_id, &a);
    if (rc != 0 || a.disabled) {
        store_session_delete(st, hash);
        return 0;
    }
    if (now - s.last_seen > SESSION_TOUCH_EVERY)
        store_session_touch(st, hash, now);
    r->who.authenticated = true;
    r->who.account_id = a.id;
    core_strlcpy(r->who.actor, a.email, sizeof r->who.actor);
    core_strlcpy(r->who.company_id, a.company_id, sizeof r->who.company_id);
    r->who.full = a.full;
    core_strlcpy(r->who.session_hash, hash, sizeof r->who.session_hash);
    core_strlcpy(r->who.csrf, s.csrf, sizeof r->who.csrf);
    r->who.enrolment_only = !a.totp_enabled && store_tenant_totp_required(st, a.company_id) == 1;
    sodium_memzero(&a, sizeof a);
    return 0;
}

bool http_csrf_ok(struct http_request *r)
{
    if (r->who.via_token)
        return true;
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-CSRF-Token");
    size_t n = strlen(r->who.csrf);
    if (!h || n == 0 || strlen(h) != n)
        return false;
    return sodium_memcmp(h, r->who.csrf, n) == 0;
}
