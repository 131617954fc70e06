/*
 * http.h - the HTTP server of moatd: health, Prometheus metrics, and the
 * REST API under /api/v1/ (docs/api.md) with its accounts, sessions, TOTP
 * and API tokens. libmicrohttpd in thread-pool mode on http_listen, HTTPS
 * when http_tls = on.
 *
 * Threading: requests run on the pool's threads; each takes one store
 * connection (and quarantine handle) from a small pool for the request.
 * http_server_stop waits for running requests, closes the listener and
 * every connection.
 */
#ifndef MOAT_HTTP_H
#define MOAT_HTTP_H

#include "core/core.h"
#include "quarantine/quarantine.h"
#include "queue/queue.h"
#include "store/store.h"

struct http_deps {
    const struct moat_config *cfg;  /* borrowed; numeric keys may change on SIGHUP */
    struct tracker *tracker;        /* for quarantine releases and the dropped-records metric */
    struct queue_mgr *queue;        /* quarantine releases inject here (after quarantine_policy_after) */
};

struct http_server;
/* http_server_start - listen on cfg->http_listen and serve; NULL with err */
struct http_server *http_server_start(const struct http_deps *deps, char *err, size_t errsz);
/* http_server_stop - stop serving and free (NULL is fine) */
void http_server_stop(struct http_server *h);

/* ---------------------------------------------------------------- secrets (http_auth.c; also for moatctl) */
/* http_password_hash - argon2id string (libsodium crypto_pwhash_str,
 * interactive limits) of password; 0 or -1 (out of memory) */
int http_password_hash(const char *password, char out[STORE_PWHASH_MAX + 1]);
/* http_password_weak - NULL when acceptable (10..256 bytes, no control characters), else the reason */
const char *http_password_weak(const char *password);
/* http_random_token - base64url (no padding) of nbytes (<= 64) random bytes into out
 * (room for 4 * nbytes / 3 + 2) */
void http_random_token(char *out, size_t nbytes);
/* http_sha256_hex - SHA-256 of s as 64 lower-case hex digits: what the store keeps of a secret */
void http_sha256_hex(const char *s, size_t len, char out[STORE_HASH_HEX + 1]);
/* http_token_new - a new API token ("moat_" + 43 characters) into token
 * (>= 64 bytes) and its hash */
void http_token_new(char *token, size_t tokensz, char hash[STORE_HASH_HEX + 1]);

/* http_email_ok - a plausible account e-mail address (1..254, one '@',
 * printable ASCII without spaces or quotes) */
bool http_email_ok(const char *s);
/* ---------------------------------------------------------------- onboarding (http_onboard.c) */
#define ONBOARD_SETUP_TTL (72 * 3600.0) /* the login mail's first-password link */
#define ONBOARD_EMAIL_TTL (24 * 3600.0) /* the wizard's e-mail confirmation link */
#define ONBOARD_EMAIL_INTERVAL 20.0     /* seconds between confirmation mails of one account */
typedef int (*onboard_inject_fn)(const char *data, size_t len, struct queue_envelope *env, void *arg);
/* onboard_console_url - console_url, or http(s)://<hostname>:<http_listen port>; no trailing slash */
void onboard_console_url(const struct moat_config *cfg, char *out, size_t outsz);
/* onboard_mail - a new one-time token of purpose "setup" (first password)
 * or "email" (confirm email) for account a, its link mailed to email
 * through inject; *expires (may be NULL) = when the link stops working.
 * 0, or -1 with err. */
int onboard_mail(struct store *st, const struct moat_config *cfg, const struct store_account *a, const char *purpose,
                 const char *email, onboard_inject_fn inject, void *arg, double *expires, char *err, size_t errsz);
/* onboard_first_admin - the tenant's first administrator (role full, no
 * usable password) and its login mail. 0; 1 user error in err (address
 * taken); -1 with err. */
int onboard_first_admin(struct store *st, const struct moat_config *cfg, const char *company_id, const char *email,
                        onboard_inject_fn inject, void *arg, char *err, size_t errsz);

#endif
