/*
 * notify_enduser.c - the "set your password" mail of an End User Console
 * account (PRODUCT.md §7: created by the administrator, a password-set mail
 * with a verification code goes to the user), for the REST API and moatctl.
 *
 *   notify_enduser_prepare   render the bilingual mail (enduser-password.{ja,en}.txt)
 *   notify_enduser_send      decide, make a fresh code, render, queue
 *
 * A mail goes only when the tenant's End User Console is enabled with
 * local accounts and the account is enabled; the reason is returned
 * otherwise. The code exists in clear only in this function's stack and
 * the queued message (the store keeps its hash); it is never logged.
 */
#include "core/core.h"

#include <jansson.h>
#include <sodium.h>

#include "notify/notify.h"
#include "notify/notify_int.h"
#include "store/store.h"

int notify_enduser_prepare(const struct notify_enduser_info *info, struct buf *out, struct queue_envelope *env,
                           char *err, size_t errsz)
{
    char date[64], expires[64], url[400];
    notify_utc_date(core_now(), date, sizeof date);
    notify_utc_date(info->expires, expires, sizeof expires);
    if (info->console_url && info->console_url[0])
        snprintf(url, sizeof url, "%s/euc/", info->console_url);
    else
        snprintf(url, sizeof url, "https://%s/euc/", info->hostname ? info->hostname : "localhost");
    struct notify_vars vars;
    memset(&vars, 0, sizeof vars);
    vars.v[NOTIFY_VAR_COMPANY_ID] = info->company_id;
    vars.v[NOTIFY_VAR_TENANT] = info->tenant_name && info->tenant_name[0] ? info->tenant_name : info->company_id;
    vars.v[NOTIFY_VAR_DATE] = date;
    vars.v[NOTIFY_VAR_EMAIL] = info->to;
    vars.v[NOTIFY_VAR_USER_NAME] = info->name && info->name[0] ? info->name : info->to;
    vars.v[NOTIFY_VAR_CODE] = info->code;
    vars.v[NOTIFY_VAR_EXPIRES] = expires;
    vars.v[NOTIFY_VAR_EUC_URL] = url;
    return notify_bilingual_prepare("enduser-password", &vars, info->to, info->hostname, out, env, err, errsz);
}

int notify_enduser_send(struct store *st, const struct moat_config *cfg, const char *console_url,
                        const struct store_enduser *u, notify_inject_fn inject, void *arg, char *why, size_t whysz)
{
    json_t *j;
    struct store_euc e;
    int rc = store_euc_get(st, u->company_id, &j, &e);
    if (rc != 0) {
        snprintf(why, whysz, "%s", rc > 0 ? "no such tenant" : "database error");
        return rc > 0 ? 1 : -1;
    }
    json_decref(j);
    if (!e.enabled || !e.local_accounts) {
        snprintf(why, whysz, "the End User Console (local accounts) is off for this tenant: enable it first");
        return 1;
    }
    if (!u->enabled) {
        snprintf(why, whysz, "the account is disabled");
        return 1;
    }
    if (!inject) {
        snprintf(why, whysz, "the delivery queue is not available");
        return -1;
    }
    char name[256] = "", code[STORE_EUSER_CODE_LEN + 1];
    store_tenant_name(st, u->company_id, name, sizeof name);
    double now = core_now();
    if (store_enduser_code_new(st, u->company_id, u->id, now, code) != 0) {
        snprintf(why, whysz, "cannot make a code (database error)");
        return -1;
    }
    struct notify_enduser_info info = {.company_id = u->company_id,
                                       .tenant_name = name,
                                       .to = u->email,
                                       .name = u->name,
                                       .code = code,
                                       .expires = now + STORE_EUSER_CODE_TTL,
                                       .hostname = cfg->hostname,
                                       .console_url = console_url};
    struct buf out;
    struct queue_envelope env;
    buf_init(&out, 1 << 20);
    rc = notify_enduser_prepare(&info, &out, &env, why, whysz);
    sodium_memzero(code, sizeof code);
    if (rc == 0) {
        rc = inject(out.ptr, out.len, &env, arg);
        if (rc < 0)
            snprintf(why, whysz, "the mail could not be queued");
        queue_envelope_free(&env);
    }
    sodium_memzero(out.ptr, out.len);
    buf_free(&out);
    if (rc == 0)
        log_info("enduser password mail queued tenant=%s id=%lld", u->company_id, (long long)u->id);
    return rc;
}
