/*
 * http_api_session.c - logging in and out, and the caller's own account:
 *
 *   POST   /api/v1/session               {"email", "password", "totp"?} -> cookie + {"csrf_token", ...}
 *   GET    /api/v1/session               who am I (and the CSRF token again)
 *   DELETE /api/v1/session               log out
 *   POST   /api/v1/account/password      {"current", "new"}
 *   POST   /api/v1/account/totp          start TOTP enrolment: secret, otpauth URI, QR (SVG)
 *   POST   /api/v1/account/totp/confirm  {"code"} -> enabled, recovery codes (shown once)
 *   DELETE /api/v1/account/totp          {"password"} -> disabled (not where the tenant requires it)
 *
 * Login answers 401 with one message whatever was wrong (unknown address,
 * wrong password, disabled or locked account, wrong code), and costs the
 * same argon2id verification in every case. Only a correct password for an
 * account with TOTP, sent without a code, gets a distinct 401
 * ("totp_required": true) so the console can ask for the code. Failures
 * count towards the account lock-out (http_login_failures within any time,
 * reset by a success; locked for http_lockout) and the per-address throttle
 * (429 with Retry-After). A code is either the 6-digit TOTP (never the same
 * time step twice) or an unused recovery code. Logins and failed logins of
 * existing accounts are in the audit log (account.login, account.login_failed,
 * with the client address); unknown addresses only in the daemon log.
 */
#include "http/http_int.h"

#include <ctype.h>

#include <sodium.h>

static const char BAD_LOGIN[] = "invalid e-mail address, password or code";

json_t *http_account_json(struct store *st, const struct store_account *a)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(a->id));
    json_object_set_new(o, "email", json_string(a->email));
    json_object_set_new(o, "tenant", a->company_id[0] ? json_string(a->company_id) : json_null());
    json_object_set_new(o, "role", json_string(a->full ? "full" : "read-only"));
    json_object_set_new(o, "disabled", json_boolean(a->disabled));
    json_object_set_new(o, "totp_enabled", json_boolean(a->totp_enabled));
    json_object_set_new(o, "locked", json_boolean(a->locked_until > core_now()));
    json_object_set_new(o, "last_login", http_iso(a->last_login));
    json_object_set_new(o, "created", http_iso(a->created));
    if (st && a->totp_enabled) {
        long left = store_recovery_left(st, a->id);
        json_object_set_new(o, "recovery_codes_left", json_integer(left < 0 ? 0 : left));
    }
    return o;
}

json_t *http_session_json(struct http_request *r, const struct store_account *a, const char *csrf)
{
    json_t *o = http_account_json(r->slot->st, a);
    int req = store_tenant_totp_required(r->slot->st, a->company_id);
    json_object_set_new(o, "csrf_token", json_string(csrf));
    json_object_set_new(o, "totp_required", json_boolean(req == 1));
    json_object_set_new(o, "totp_enrolment_required", json_boolean(req == 1 && !a->totp_enabled));
    json_object_set_new(o, "totp_recommended", json_boolean(!a->totp_enabled));
    /* a tenant administrator who has not finished the provisioning wizard */
    struct store_profile p;
    bool pending = a->company_id[0] && store_profile_get(r->slot->st, a->id, &p) == 0 && p.exists && p.wizard_done <= 0;
    json_object_set_new(o, "wizard_pending", json_boolean(pending));
    return o;
}

/* login_failed - count the failure everywhere and answer the one message */
static void login_failed(struct http_request *r, const struct store_account *a)
{
    const struct moat_config *cfg = r->srv->d.cfg;
    double now = core_now();
    http_throttle_fail(r->srv->throttle, r->client_ip, now);
    if (a) {
        /* a wrong password (or code) for a real account is a security event */
        http_audit(r, "account.login_failed", a->company_id, "%s: failed login from %s", a->email, r->client_ip);
        unsigned max = (unsigned)__atomic_load_n(&cfg->http_login_failures, __ATOMIC_RELAXED);
        double lock = (double)__atomic_load_n(&cfg->http_lockout, __ATOMIC_RELAXED);
        if (store_account_login_failed(r->slot->st, a->id, now, max, lock) == 1) {
            char e[300];
            log_warn("http account locked email=%s client=%s", log_escape(a->email, strlen(a->email), e, sizeof e),
                     r->client_ip);
            core_strlcpy(r->who.actor, "system", sizeof r->who.actor);
            http_audit(r, "account.locked", a->company_id, "%s locked after %u failed logins", a->email, max);
        }
    }
    http_error(r, 401, "%s", BAD_LOGIN);
}

/* check_code - a TOTP code or a recovery code for a: true when accepted */
static bool check_code(struct http_request *r, const struct store_account *a, const char *code)
{
    int64_t step = 0;
    if (strlen(code) == HTTP_TOTP_DIGITS) {
        if (http_totp_check(a->totp_secret, code, core_now(), &step) != 0)
            return false;
        return store_account_totp_step(r->slot->st, a->id, step) == 0;
    }
    /* a recovery code: letters and digits, any case, hyphens and spaces ignored */
    char norm[32];
    size_t n = 0;
    for (const char *p = code; *p; p++) {
        if (*p == '-' || *p == ' ')
            continue;
        if (n + 1 >= sizeof norm || !isalnum((unsigned char)*p))
            return false;
        norm[n++] = (char)tolower((unsigned char)*p);
    }
    norm[n] = '\0';
    if (n != 10)
        return false;
    char hash[STORE_HASH_HEX + 1];
    http_sha256_hex(norm, n, hash);
    return store_recovery_use(r->slot->st, a->id, hash, core_now()) == 0;
}

void http_api_login(struct http_request *r)
{
    json_t *b = http_body_object(r);
    if (!b)
        return;
    static const char *const keys[] = {"email", "password", "totp", NULL};
    const char *email = NULL, *password = NULL, *totp = NULL;
    if (http_json_only(r, b, keys) < 0 || http_json_str(r, b, "email", STORE_EMAIL_MAX, &email) < 0 ||
        http_json_str(r, b, "password", HTTP_PASSWORD_MAX, &password) < 0 ||
        http_json_str(r, b, "totp", 32, &totp) < 0)
        goto out;
    if (!email || !password) {
        http_error(r, 400, "email and password are required");
        goto out;
    }
    double retry;
    if (!http_throttle_allowed(r->srv->throttle, r->client_ip, core_now(), &retry)) {
        snprintf(r->retry_after, sizeof r->retry_after, "%.0f", retry < 1 ? 1 : retry);
        http_error(r, 429, "too many failed logins from this address; try again later");
        goto out;
    }
    struct store_account a;
    int rc = store_account_find(r->slot->st, email, &a);
    if (rc < 0) {
        http_error(r, 500, "internal error");
        goto out;
    }
    bool ok = http_password_verify(rc == 0 ? a.pwhash : r->srv->dummy_hash, password);
    if (rc != 0) {
        login_failed(r, NULL);
        goto out;
    }
    if (!ok || a.disabled || a.locked_until > core_now()) {
        login_failed(r, &a);
        goto out;
    }
    if (a.totp_enabled) {
        if (!totp) {
            json_t *o = json_object();
            json_object_set_new(o, "error", json_string("a two-factor code is required"));
            json_object_set_new(o, "totp_required", json_true());
            http_reply_json(r, 401, o);
            goto out;
        }
        if (!check_code(r, &a, totp)) {
            login_failed(r, &a);
            goto out;
        }
    }
    char csrf[64];
    if (store_account_login_ok(r->slot->st, a.id, core_now()) < 0 || http_new_session(r, &a, csrf) < 0) {
        http_error(r, 500, "internal error");
        goto out;
    }
    http_throttle_reset(r->srv->throttle, r->client_ip);
    core_strlcpy(r->who.actor, a.email, sizeof r->who.actor);
    char e[300];
    log_info("http login email=%s client=%s", log_escape(a.email, strlen(a.email), e, sizeof e), r->client_ip);
    http_audit(r, "account.login", a.company_id, "%s logged in from %s%s", a.email, r->client_ip,
               a.totp_enabled ? " with a second factor" : "");
    a.last_login = core_now();
    http_reply_json(r, 200, http_session_json(r, &a, csrf));
    sodium_memzero(csrf, sizeof csrf);
out:
    json_decref(b);
}

void http_api_logout(struct http_request *r)
{
    if (!r->who.via_token)
        store_session_delete(r->slot->st, r->who.session_hash);
    http_clear_cookie(r);
    http_reply_json(r, 200, json_pack("{s:b}", "logged_out", 1));
}

/* own_account - the session's account; NULL after replying (tokens have none) */
static bool own_account(struct http_request *r, struct store_account *a)
{
    if (r->who.via_token) {
        http_error(r, 400, "an API token has no account of its own");
        return false;
    }
    if (store_account_get(r->slot->st, NULL, r->who.account_id, a) != 0) {
        http_error(r, 401, "authentication required");
        return false;
    }
    return true;
}

void http_api_whoami(struct http_request *r)
{
    if (r->who.via_token) {
        json_t *o = json_object();
        json_object_set_new(o, "token", json_string(r->who.actor));
        json_object_set_new(o, "tenant", r->who.company_id[0] ? json_string(r->who.company_id) : json_null());
        json_object_set_new(o, "role", json_string(r->who.full ? "full" : "read-only"));
        http_reply_json(r, 200, o);
        return;
    }
    struct store_account a;
    if (!own_account(r, &a))
        return;
    http_reply_json(r, 200, http_session_json(r, &a, r->who.csrf));
}

void http_api_password(struct http_request *r)
{
    json_t *b = http_body_object(r);
    if (!b)
        return;
    static const char *const keys[] = {"current", "new", NULL};
    const char *cur = NULL, *nw = NULL;
    struct store_account a;
    if (http_json_only(r, b, keys) < 0 || http_json_str(r, b, "current", HTTP_PASSWORD_MAX, &cur) < 0 ||
        http_json_str(r, b, "new", HTTP_PASSWORD_MAX + 1, &nw) < 0)
        goto out;
    if (!cur || !nw) {
        http_error(r, 400, "current and new are required");
        goto out;
    }
    if (!own_account(r, &a))
        goto out;
    if (!http_password_verify(a.pwhash, cur)) {
        http_error(r, 403, "the current password is wrong");
        goto out;
    }
    const char *weak = http_password_weak(nw);
    if (weak) {
        http_error(r, 400, "new %s", weak);
        goto out;
    }
    if (http_password_hash(nw, a.pwhash) < 0 || store_account_update(r->slot->st, &a) < 0) {
        http_error(r, 500, "internal error");
        goto out;
    }
    /* every other session of the account ends */
    store_session_delete_account(r->slot->st, a.id, r->who.session_hash);
    http_audit(r, "account.password", a.company_id, "%s changed their password", a.email);
    http_reply_json(r, 200, json_pack("{s:b}", "changed", 1));
out:
    json_decref(b);
}

void http_api_totp_begin(struct http_request *r)
{
    struct store_account a;
    if (!own_account(r, &a))
        return;
    if (a.totp_enabled) {
        http_error(r, 409, "two-factor authentication is already enabled (disable it first)");
        return;
    }
    unsigned char key[HTTP_TOTP_SECRET_BYTES];
    randombytes_buf(key, sizeof key);
    http_base32_encode(key, sizeof key, a.totp_secret, sizeof a.totp_secret);
    sodium_memzero(key, sizeof key);
    if (store_account_update(r->slot->st, &a) < 0) {
        http_error(r, 500, "internal error");
        return;
    }
    char uri[600];
    http_totp_uri(a.email, a.totp_secret, uri, sizeof uri);
    char *svg = http_qr_svg(uri);
    json_t *o = json_object();
    json_object_set_new(o, "secret", json_string(a.totp_secret));
    json_object_set_new(o, "otpauth_uri", json_string(uri));
    json_object_set_new(o, "qr_svg", svg ? json_string(svg) : json_null());
    free(svg);
    http_reply_json(r, 200, o);
}

void http_api_totp_confirm(struct http_request *r)
{
    json_t *b = http_body_object(r);
    if (!b)
        return;
    static const char *const keys[] = {"code", NULL};
    const char *code = NULL;
    struct store_account a;
    if (http_json_only(r, b, keys) < 0 || http_json_str(r, b, "code", 16, &code) < 0)
        goto out;
    if (!code) {
        http_error(r, 400, "code is required");
        goto out;
    }
    if (!own_account(r, &a))
        goto out;
    if (a.totp_enabled || !a.totp_secret[0]) {
        http_error(r, 409, a.totp_enabled ? "two-factor authentication is already enabled"
                                          : "no enrolment in progress (POST /api/v1/account/totp first)");
        goto out;
    }
    int64_t step;
    if (http_totp_check(a.totp_secret, code, core_now(), &step) != 0) {
        http_error(r, 400, "code: wrong code (check the device's clock)");
        goto out;
    }
    a.totp_enabled = true;
    a.totp_last_step = step;
    char codes[HTTP_RECOVERY_CODES][16];
    char hashes[HTTP_RECOVERY_CODES][STORE_HASH_HEX + 1];
    json_t *list = json_array();
    for (size_t i = 0; i < HTTP_RECOVERY_CODES; i++) {
        unsigned char rnd[8];
        char b32[20];
        randombytes_buf(rnd, sizeof rnd);
        http_base32_encode(rnd, sizeof rnd, b32, sizeof b32);
        for (size_t k = 0; k < 10; k++)
            b32[k] = (char)tolower((unsigned char)b32[k]);
        b32[10] = '\0';
        http_sha256_hex(b32, 10, hashes[i]);
        snprintf(codes[i], sizeof codes[i], "%.5s-%.5s", b32, b32 + 5);
        json_array_append_new(list, json_string(codes[i]));
    }
    if (store_account_update(r->slot->st, &a) < 0 || store_recovery_set(r->slot->st, a.id, hashes,
                                                                          HTTP_RECOVERY_CODES) < 0) {
        json_decref(list);
        http_error(r, 500, "internal error");
        goto out;
    }
    sodium_memzero(codes, sizeof codes);
    http_audit(r, "account.totp_enabled", a.company_id, "%s enabled two-factor authentication", a.email);
    json_t *o = json_object();
    json_object_set_new(o, "totp_enabled", json_true());
    json_object_set_new(o, "recovery_codes", list);
    http_reply_json(r, 200, o);
out:
    json_decref(b);
}

void http_api_totp_disable(struct http_request *r)
{
    json_t *b = http_body_object(r);
    if (!b)
        return;
    static const char *const keys[] = {"password", NULL};
    const char *pw = NULL;
    struct store_account a;
    if (http_json_only(r, b, keys) < 0 || http_json_str(r, b, "password", HTTP_PASSWORD_MAX, &pw) < 0)
        goto out;
    if (!pw) {
        http_error(r, 400, "password is required");
        goto out;
    }
    if (!own_account(r, &a))
        goto out;
    if (!http_password_verify(a.pwhash, pw)) {
        http_error(r, 403, "the password is wrong");
        goto out;
    }
    if (store_tenant_totp_required(r->slot->st, a.company_id) == 1) {
        http_error(r, 409, "your tenant requires two-factor authentication");
        goto out;
    }
    a.totp_enabled = false;
    a.totp_secret[0] = '\0';
    if (store_account_update(r->slot->st, &a) < 0 || store_recovery_set(r->slot->st, a.id, NULL, 0) < 0) {
        http_error(r, 500, "internal error");
        goto out;
    }
    http_audit(r, "account.totp_disabled", a.company_id, "%s disabled two-factor authentication", a.email);
    http_reply_json(r, 200, json_pack("{s:b}", "totp_enabled", 0));
out:
    json_decref(b);
}
