/*
 * http_onboard.c - onboarding of tenant administrators (PRODUCT.md §1,
 * issue 7 "the first tenant admin gets a login mail and walks the wizard";
 * docs/onboarding.md). Shared by the REST API and moatctl:
 *
 *   onboard_console_url   the console's base URL for mailed links
 *   onboard_mail          issue a one-time token for an account and mail
 *                         its link: the login mail (purpose "setup": the
 *                         first password) or the wizard's e-mail
 *                         confirmation (purpose "email")
 *   onboard_first_admin   create a new tenant's first administrator
 *                         (role full, no usable password) and mail the
 *                         login mail
 *
 * Tokens: 32 random bytes (base64url), only their SHA-256 stored
 * (store_onboard.c), single use; the login link lasts ONBOARD_SETUP_TTL,
 * the confirmation link ONBOARD_EMAIL_TTL. A new mail of a purpose makes the
 * account's earlier link of that purpose useless. The mails are rendered
 * by notify_domain_prepare (templates admin-setup / email-confirm, Japanese
 * then English) and queued through the caller's inject function, like the
 * domain mails.
 */
#include "http/http_int.h"

#include <sodium.h>

#include "dns/dns.h"
#include "notify/notify.h"

void onboard_console_url(const struct moat_config *cfg, char *out, size_t outsz)
{
    if (cfg->console_url && cfg->console_url[0]) {
        snprintf(out, outsz, "%s", cfg->console_url);
    } else {
        const char *port = strrchr(cfg->http_listen ? cfg->http_listen : "", ':');
        bool tls = cfg->http_tls && strcmp(cfg->http_tls, "on") == 0;
        snprintf(out, outsz, "%s://%s%s", tls ? "https" : "http", cfg->hostname && cfg->hostname[0] ? cfg->hostname : "localhost",
                 port ? port : "");
    }
    size_t n = strlen(out);
    while (n && out[n - 1] == '/')
        out[--n] = '\0';
}

int onboard_mail(struct store *st, const struct moat_config *cfg, const struct store_account *a, const char *purpose,
                 const char *email, onboard_inject_fn inject, void *arg, double *expires, char *err, size_t errsz)
{
    bool setup = strcmp(purpose, "setup") == 0;
    char token[HTTP_SESSION_ID_LEN + 1], hash[STORE_HASH_HEX + 1];
    double now = core_now(), until = now + (setup ? ONBOARD_SETUP_TTL : ONBOARD_EMAIL_TTL);
    http_random_token(token, 32);
    http_sha256_hex(token, strlen(token), hash);
    if (store_onboard_token_new(st, a->id, purpose, email, hash, now, until) < 0) {
        snprintf(err, errsz, "cannot store the token");
        return -1;
    }
    char base[600], link[800], mx[300] = "", tenant[STORE_NAME_MAX * 4 + 1], when[64];
    onboard_console_url(cfg, base, sizeof base);
    snprintf(link, sizeof link, "%s/#/%s?token=%s", base, setup ? "setup" : "confirm", token);
    dns_mx_host(a->company_id, cfg->service_domain, mx, sizeof mx);
    if (store_tenant_name(st, a->company_id, tenant, sizeof tenant) != 0)
        core_strlcpy(tenant, a->company_id, sizeof tenant);
    time_t t = (time_t)until;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
    struct notify_domain_info info = {.kind = setup ? NOTIFY_ADMIN_SETUP : NOTIFY_EMAIL_CONFIRM,
                                      .company_id = a->company_id,
                                      .tenant_name = tenant,
                                      .mx_host = mx,
                                      .to = email,
                                      .hostname = cfg->hostname,
                                      .link = link,
                                      .expires = when,
                                      .email = email};
    struct buf out;
    struct queue_envelope env;
    buf_init(&out, 1024 * 1024);
    int rc = notify_domain_prepare(&info, &out, &env, err, errsz);
    if (rc == 0 && inject(out.ptr, out.len, &env, arg) < 0) {
        snprintf(err, errsz, "the mail to %s could not be queued", email);
        rc = -1;
    }
    if (rc == 0) {
        char e[300];
        log_info("onboard mail queued qid=%s kind=%s company=%s to=%s", env.qid, purpose, a->company_id,
                 log_escape(email, strlen(email), e, sizeof e));
    }
    queue_envelope_free(&env);
    buf_free(&out);
    sodium_memzero(token, sizeof token);
    sodium_memzero(link, sizeof link);
    if (expires)
        *expires = until;
    return rc;
}

int onboard_first_admin(struct store *st, const struct moat_config *cfg, const char *company_id, const char *email,
                        onboard_inject_fn inject, void *arg, char *err, size_t errsz)
{
    struct store_account a;
    memset(&a, 0, sizeof a);
    core_strlcpy(a.email, email, sizeof a.email);
    core_strlcpy(a.company_id, company_id, sizeof a.company_id);
    a.full = true;
    a.created = core_now();
    /* no usable password until the login mail's link sets one: an
     * argon2id string of a random secret nobody knows */
    char secret[HTTP_SESSION_ID_LEN + 1];
    http_random_token(secret, 32);
    int hrc = http_password_hash(secret, a.pwhash);
    sodium_memzero(secret, sizeof secret);
    if (hrc < 0) {
        snprintf(err, errsz, "internal error");
        return -1;
    }
    int rc = store_account_add(st, &a, err, errsz);
    if (rc != 0)
        return rc;
    /* a profile with the wizard not done: the console walks them through it */
    if (store_profile_set(st, a.id, NULL, NULL, 0, 0, core_now()) < 0) {
        snprintf(err, errsz, "cannot store the profile");
        return -1;
    }
    return onboard_mail(st, cfg, &a, "setup", a.email, inject, arg, NULL, err, errsz) < 0 ? -1 : 0;
}
