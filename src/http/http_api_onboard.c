/*
 * http_api_onboard.c - the first administrator's way in and the
 * provisioning wizard's profile step (PRODUCT.md §1; docs/onboarding.md):
 *
 *   POST /api/v1/setup                  {"token", "password"} the login mail's link: set the
 *                                       first password, confirm the address, log in (public,
 *                                       throttled like login)
 *   POST /api/v1/tenants/{id}/admin-mail {"email"} operators: mail that administrator a new
 *                                       login link (the previous one stops working)
 *   GET  /api/v1/profile                the caller's profile: names, address, whether it is
 *                                       confirmed, the wizard's state, company ID and MX host
 *   PUT  /api/v1/profile                {"last_name", "first_name", "email"?, "wizard_step"?,
 *                                       "wizard_done"?} names; a new or unconfirmed address
 *                                       gets a confirmation link by mail (the account's
 *                                       address changes only when it is confirmed); the
 *                                       wizard's step (past the profile, or done, only once
 *                                       the profile is: names and a confirmed address)
 *   POST /api/v1/profile/confirm-email  {"email"?} mail the confirmation link (again)
 *   POST /api/v1/profile/confirm        {"token"} the confirmation link (public: the token
 *                                       proves the mailbox; throttled)
 *
 * Tokens and mails: http_onboard.c. A session may have a confirmation link
 * mailed at most once per ONBOARD_EMAIL_INTERVAL. Every change is audited. A tenant's
 * administrator is sent into the wizard (the console) until wizard_done.
 */
#include "http/http_int.h"

#include <sodium.h>

#include "dns/dns.h"

static const char BAD_LINK[] = "this link is not valid: it was already used, has expired, or was replaced by a newer one";

/* inject_mgr - onboarding mails through moatd's queue */
static int inject_mgr(const char *data, size_t len, struct queue_envelope *env, void *arg)
{
    return queue_mgr_inject(arg, data, len, env);
}

/* throttled - login's per-address throttle; false after replying 429 */
static bool throttled(struct http_request *r)
{
    double retry;
    if (http_throttle_allowed(r->srv->throttle, r->client_ip, core_now(), &retry))
        return false;
    snprintf(r->retry_after, sizeof r->retry_after, "%.0f", retry < 1 ? 1 : retry);
    http_error(r, 429, "too many failed attempts from this address; try again later");
    return true;
}

/* redeem - token of purpose -> account id and e-mail; false after replying */
static bool redeem(struct http_request *r, const char *purpose, const char *token, int64_t *id, char *email,
                   size_t emailsz)
{
    char hash[STORE_HASH_HEX + 1];
    size_t n = strlen(token);
    if (n < 20 || n > 100) {
        http_throttle_fail(r->srv->throttle, r->client_ip, core_now());
        http_error(r, 400, "%s", BAD_LINK);
        return false;
    }
    http_sha256_hex(token, n, hash);
    int rc = store_onboard_token_use(r->slot->st, purpose, hash, core_now(), id, email, emailsz);
    if (rc < 0) {
        http_error(r, 500, "internal error");
        return false;
    }
    if (rc > 0) {
        http_throttle_fail(r->srv->throttle, r->client_ip, core_now());
        http_error(r, 400, "%s", BAD_LINK);
        return false;
    }
    return true;
}

void http_api_setup(struct http_request *r)
{
    json_t *b = http_body_object(r);
    if (!b)
        return;
    static const char *const keys[] = {"token", "password", NULL};
    const char *token = NULL, *password = NULL;
    if (http_json_only(r, b, keys) < 0 || http_json_str(r, b, "token", 128, &token) < 0 ||
        http_json_str(r, b, "password", HTTP_PASSWORD_MAX + 1, &password) < 0)
        goto out;
    if (!token || !password) {
        http_error(r, 400, "token and password are required");
        goto out;
    }
    if (throttled(r))
        goto out;
    const char *weak = http_password_weak(password); /* before the token is spent */
    if (weak) {
        http_error(r, 400, "password: %s", weak);
        goto out;
    }
    int64_t id;
    char email[STORE_EMAIL_MAX + 1];
    struct store_account a;
    if (!redeem(r, "setup", token, &id, email, sizeof email))
        goto out;
    if (store_account_get(r->slot->st, NULL, id, &a) != 0 || a.disabled) {
        http_error(r, 400, "%s", BAD_LINK);
        goto out;
    }
    char csrf[64];
    double now = core_now();
    /* the password is new: any session the account had ends (a re-sent
     * login mail serves as a reset), then this browser gets a fresh one */
    if (http_password_hash(password, a.pwhash) < 0 || store_account_update(r->slot->st, &a) < 0 ||
        store_profile_confirm(r->slot->st, a.id, a.email, now) < 0 || store_account_login_ok(r->slot->st, a.id, now) < 0 ||
        store_session_delete_account(r->slot->st, a.id, NULL) < 0 || http_new_session(r, &a, csrf) < 0) {
        http_error(r, 500, "internal error");
        goto out;
    }
    http_throttle_reset(r->srv->throttle, r->client_ip);
    core_strlcpy(r->who.actor, a.email, sizeof r->who.actor);
    http_audit(r, "account.setup", a.company_id, "%s set their password with the login mail's link", a.email);
    a.last_login = now;
    http_reply_json(r, 200, http_session_json(r, &a, csrf));
    sodium_memzero(csrf, sizeof csrf);
out:
    json_decref(b);
}

/* email_body - a body {"email"?}: the object (caller frees; email
 * borrowed from it) or NULL after replying */
static json_t *email_body(struct http_request *r, const char **email)
{
    json_t *b = http_body_object(r);
    static const char *const keys[] = {"email", NULL};
    *email = NULL;
    if (b && (http_json_only(r, b, keys) < 0 || http_json_str(r, b, "email", STORE_EMAIL_MAX, email) < 0)) {
        json_decref(b);
        return NULL;
    }
    return b;
}

void http_api_admin_mail(struct http_request *r)
{
    const char *cid = r->args[0];
    const char *email;
    json_t *b = email_body(r, &email);
    if (!b)
        return;
    struct store_account a;
    if (!email) {
        http_error(r, 400, "email is required");
        goto out;
    }
    if (store_account_find(r->slot->st, email, &a) != 0 || strcasecmp(a.company_id, cid) != 0) {
        http_error(r, 404, "tenant %s has no administrator %s", cid, email);
        goto out;
    }
    if (!r->srv->d.queue) {
        http_error(r, 503, "the delivery queue is not available");
        goto out;
    }
    char err[300];
    double until;
    if (onboard_mail(r->slot->st, r->srv->d.cfg, &a, "setup", a.email, inject_mgr, r->srv->d.queue, &until, err,
                     sizeof err) < 0) {
        http_error(r, 500, "%s", err);
        goto out;
    }
    http_audit(r, "account.setup_mail", a.company_id, "login mail sent to %s", a.email);
    json_t *o = json_pack("{s:s,s:b}", "email", a.email, "mailed", 1);
    json_object_set_new(o, "expires", http_iso(until));
    http_reply_json(r, 200, o);
out:
    json_decref(b);
}

/* own - the session's account (API tokens have none); false after replying */
static bool own(struct http_request *r, struct store_account *a)
{
    if (r->who.via_token) {
        http_error(r, 400, "an API token has no profile");
        return false;
    }
    if (store_account_get(r->slot->st, NULL, r->who.account_id, a) != 0) {
        http_error(r, 401, "authentication required");
        return false;
    }
    return true;
}

/* profile_done - the wizard's first step is complete: both names and a
 * confirmed address (the login mail's link or a confirmation link) */
static bool profile_done(const struct store_profile *p)
{
    return p->last_name[0] && p->first_name[0] && p->email_confirmed > 0;
}

static json_t *profile_json(struct http_request *r, const struct store_account *a, const struct store_profile *p)
{
    char mx[300] = "";
    if (a->company_id[0])
        dns_mx_host(a->company_id, r->srv->d.cfg->service_domain, mx, sizeof mx);
    json_t *o = json_object();
    json_object_set_new(o, "email", json_string(a->email));
    json_object_set_new(o, "last_name", json_string(p->last_name));
    json_object_set_new(o, "first_name", json_string(p->first_name));
    json_object_set_new(o, "email_confirmed", http_iso(p->email_confirmed));
    json_object_set_new(o, "wizard_done", http_iso(p->wizard_done));
    json_object_set_new(o, "wizard_step", json_integer(p->wizard_step));
    json_object_set_new(o, "profile_done", json_boolean(profile_done(p)));
    json_object_set_new(o, "tenant", a->company_id[0] ? json_string(a->company_id) : json_null());
    json_object_set_new(o, "mx_host", mx[0] ? json_string(mx) : json_null());
    return o;
}

void http_api_profile_get(struct http_request *r)
{
    struct store_account a;
    struct store_profile p;
    if (!own(r, &a))
        return;
    if (store_profile_get(r->slot->st, a.id, &p) < 0) {
        http_error(r, 500, "internal error");
        return;
    }
    http_reply_json(r, 200, profile_json(r, &a, &p));
}

/* name_ok - 1..STORE_NAME_MAX characters of valid UTF-8 without controls */
static bool name_ok(const char *s)
{
    size_t n = strlen(s), chars = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = core_utf8_next(s, n, i, &cp);
        if (cp == 0xFFFD || cp < 0x20 || cp == 0x7f)
            return false;
        i += k;
        chars++;
    }
    return chars >= 1 && chars <= STORE_NAME_MAX;
}

/* confirmation_mail - mail the account a confirmation link for email
 * (at most one per ONBOARD_EMAIL_INTERVAL: the caller chooses the
 * recipient, so this bounds what a session can make Moat send); false
 * after replying */
static bool confirmation_mail(struct http_request *r, const struct store_account *a, const char *email)
{
    struct store_account other;
    double last, now = core_now();
    if (strcasecmp(email, a->email) != 0 && store_account_find(r->slot->st, email, &other) == 0) {
        http_error(r, 409, "another account already uses %s", email);
        return false;
    }
    if (!r->srv->d.queue) {
        http_error(r, 503, "the delivery queue is not available");
        return false;
    }
    if (store_onboard_token_last(r->slot->st, a->id, "email", &last) < 0) {
        http_error(r, 500, "internal error");
        return false;
    }
    if (last > 0 && now - last < ONBOARD_EMAIL_INTERVAL && now >= last) {
        double wait = ONBOARD_EMAIL_INTERVAL - (now - last);
        snprintf(r->retry_after, sizeof r->retry_after, "%.0f", wait < 1 ? 1 : wait);
        http_error(r, 429, "a confirmation link was mailed moments ago; try again in %.0f seconds", wait < 1 ? 1 : wait);
        return false;
    }
    char err[300];
    if (onboard_mail(r->slot->st, r->srv->d.cfg, a, "email", email, inject_mgr, r->srv->d.queue, NULL, err,
                     sizeof err) < 0) {
        http_error(r, 500, "%s", err);
        return false;
    }
    return true;
}

void http_api_profile_put(struct http_request *r)
{
    json_t *b = http_body_object(r);
    if (!b)
        return;
    static const char *const keys[] = {"last_name", "first_name", "email", "wizard_step", "wizard_done", NULL};
    const char *last = NULL, *first = NULL, *email = NULL;
    struct store_account a;
    struct store_profile p;
    if (http_json_only(r, b, keys) < 0 || http_json_str(r, b, "last_name", STORE_NAME_MAX * 4, &last) < 0 ||
        http_json_str(r, b, "first_name", STORE_NAME_MAX * 4, &first) < 0 ||
        http_json_str(r, b, "email", STORE_EMAIL_MAX, &email) < 0)
        goto out;
    json_t *wd = json_object_get(b, "wizard_done"), *ws = json_object_get(b, "wizard_step");
    if (wd && !json_is_boolean(wd)) {
        http_error(r, 400, "wizard_done: true or false");
        goto out;
    }
    int step = -1;
    if (ws) {
        if (!json_is_integer(ws) || json_integer_value(ws) < 0 || json_integer_value(ws) >= STORE_WIZARD_STEPS) {
            http_error(r, 400, "wizard_step: 0 to %d", STORE_WIZARD_STEPS - 1);
            goto out;
        }
        step = (int)json_integer_value(ws);
    }
    if ((last || first) && !(last && first)) {
        http_error(r, 400, "last_name and first_name go together");
        goto out;
    }
    if ((last && !name_ok(last)) || (first && !name_ok(first))) {
        http_error(r, 400, "a name has 1 to %d characters, without control characters", STORE_NAME_MAX);
        goto out;
    }
    if (email && !http_email_ok(email)) {
        http_error(r, 400, "email: not an e-mail address");
        goto out;
    }
    if (!own(r, &a))
        goto out;
    if (store_profile_get(r->slot->st, a.id, &p) < 0) {
        http_error(r, 500, "internal error");
        goto out;
    }
    /* the product's rule: the wizard goes on only once the address is confirmed */
    if ((step > 0 || (wd && json_is_true(wd))) && !profile_done(&p)) {
        http_error(r, 409, "the profile comes first: last and first name and a confirmed e-mail address");
        goto out;
    }
    bool send = email && (strcasecmp(email, a.email) != 0 || p.email_confirmed <= 0);
    if (send && !confirmation_mail(r, &a, email))
        goto out;
    if (store_profile_set(r->slot->st, a.id, last, first, wd ? json_is_true(wd) : -1, step, core_now()) < 0 ||
        store_profile_get(r->slot->st, a.id, &p) < 0) {
        http_error(r, 500, "internal error");
        goto out;
    }
    http_audit(r, "account.profile", a.company_id, "%s updated their profile%s", a.email,
               send ? " (confirmation link mailed)" : "");
    json_t *o = profile_json(r, &a, &p);
    json_object_set_new(o, "confirmation_sent", json_boolean(send));
    http_reply_json(r, 200, o);
out:
    json_decref(b);
}

void http_api_profile_confirm_email(struct http_request *r)
{
    const char *email;
    json_t *b = email_body(r, &email);
    if (!b)
        return;
    struct store_account a;
    if (email && !http_email_ok(email)) {
        http_error(r, 400, "email: not an e-mail address");
        goto out;
    }
    if (!own(r, &a))
        goto out;
    if (!email)
        email = a.email;
    if (!confirmation_mail(r, &a, email))
        goto out;
    http_audit(r, "account.profile", a.company_id, "%s asked for a confirmation link (mailed)", a.email);
    http_reply_json(r, 200, json_pack("{s:s,s:b}", "email", email, "confirmation_sent", 1));
out:
    json_decref(b);
}

void http_api_profile_confirm(struct http_request *r)
{
    json_t *b = http_body_object(r);
    if (!b)
        return;
    static const char *const keys[] = {"token", NULL};
    const char *token = NULL;
    if (http_json_only(r, b, keys) < 0 || http_json_str(r, b, "token", 128, &token) < 0)
        goto out;
    if (!token) {
        http_error(r, 400, "token is required");
        goto out;
    }
    if (throttled(r))
        goto out;
    int64_t id;
    char email[STORE_EMAIL_MAX + 1];
    struct store_account a;
    if (!redeem(r, "email", token, &id, email, sizeof email))
        goto out;
    if (store_account_get(r->slot->st, NULL, id, &a) != 0) {
        http_error(r, 400, "%s", BAD_LINK);
        goto out;
    }
    int rc = store_profile_confirm(r->slot->st, id, email, core_now());
    if (rc != 0) {
        if (rc < 0)
            http_error(r, 500, "internal error");
        else
            http_error(r, 409, "another account already uses %s", email);
        goto out;
    }
    core_strlcpy(r->who.actor, email, sizeof r->who.actor);
    http_audit(r, "account.email_confirmed", a.company_id, "%s confirmed the address %s", a.email, email);
    http_reply_json(r, 200, json_pack("{s:s,s:b}", "email", email, "confirmed", 1));
out:
    json_decref(b);
}
