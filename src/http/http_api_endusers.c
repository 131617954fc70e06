/*
 * http_api_endusers.c - end-user administration (PRODUCT.md §7): the
 * tenant's End User Console settings and its local end-user accounts.
 *
 *   GET/PUT  /api/v1/end-user-console            the settings {"enabled", "local_accounts",
 *                                                "enforce_2fa", "quarantine_categories"}
 *   GET      /api/v1/endusers?q=&offset=&limit=  list (search address or name), paged
 *   POST     /api/v1/endusers                    {"email", "name"?, "enabled"?, "send_mail"?} add one
 *   POST     /api/v1/endusers/import             {"csv", "send_mail"?} CSV import, all or nothing
 *   GET      /api/v1/endusers/export             every account as CSV (text/csv, attachment)
 *   GET/PATCH/DELETE /api/v1/endusers/{id}       one account; PATCH {"enabled"?, "name"?}
 *   POST     /api/v1/endusers/{id}/password-mail a new password-set code, mailed
 *
 * Scope: a tenant administrator acts on its own tenant only (another
 * tenant's account answers 404 like a missing one); an operator names the
 * tenant with ?tenant= (required for the settings, the list, add, import
 * and export; optional for one account by id). Writes need the full role
 * and, with a session, the CSRF token (http_server.c); every change is in
 * the audit log.
 *
 * Password-set mail: a new account (one by one or imported) gets a code
 * (store_enduser_code_new, 30 minutes) mailed in Japanese and English
 * (notify_enduser_prepare, queued by queue_mgr_inject like the domain
 * mails) when the tenant's End User Console is enabled with local
 * accounts, the account is enabled and send_mail is not false; otherwise
 * the reply says why no mail went, and password-mail sends one later.
 * The code itself is never in a reply or a log.
 */
#include "http/http_int.h"

#include <sodium.h>

#include "notify/notify.h"

#define EU_LIST_DEFAULT 100
#define EU_LIST_MAX 1000
#define EU_EXPORT_MAX ((size_t)64 * 1024 * 1024) /* bytes of an export (100,000 accounts fit easily) */

/* eu_tenant - the tenant a collection request acts on: the administrator's
 * own, or the operator's ?tenant= (required); NULL after replying */
static const char *eu_tenant(struct http_request *r)
{
    bool bad;
    const char *scope = http_scope(r, &bad);
    if (bad)
        return NULL;
    if (!scope)
        http_error(r, 400, "tenant: add ?tenant=ID (operators act on one tenant at a time)");
    return scope;
}

/* eu_scope - the scope of a request on one account: the administrator's tenant, or NULL (operator) */
static const char *eu_scope(struct http_request *r)
{
    return r->who.company_id[0] ? r->who.company_id : NULL;
}

static void actor_of(struct http_request *r, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s (api %s)", r->who.actor[0] ? r->who.actor : "anonymous", r->client_ip);
}

/* eu_json - an account as the API shows it (no password hash, no code) */
static json_t *eu_json(const struct store_enduser *u)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(u->id));
    json_object_set_new(o, "tenant", json_string(u->company_id));
    json_object_set_new(o, "email", json_string(u->email));
    json_object_set_new(o, "name", json_string(u->name));
    json_object_set_new(o, "enabled", json_boolean(u->enabled));
    json_object_set_new(o, "password_set", json_boolean(u->password_set));
    json_object_set_new(o, "created", http_iso(u->created));
    json_object_set_new(o, "last_login", http_iso(u->last_login));
    json_object_set_new(o, "password_mail_sent", http_iso(u->code_sent));
    json_object_set_new(o, "code_expires", http_iso(u->code_expires));
    return o;
}

static int inject_mgr(const char *data, size_t len, struct queue_envelope *env, void *arg)
{
    return queue_mgr_inject(arg, data, len, env);
}

/* send_mail - u's password-set mail (notify_enduser_send): 0 queued, 1 not by the rules, -1 failed */
static int send_mail(struct http_request *r, const struct store_enduser *u, char *why, size_t whysz)
{
    char base[600];
    onboard_console_url(r->srv->d.cfg, base, sizeof base);
    return notify_enduser_send(r->slot->st, r->srv->d.cfg, base, u, r->srv->d.queue ? inject_mgr : NULL,
                               r->srv->d.queue, why, whysz);
}

/* body_name - o["name"] (absent: 0, *name untouched) checked as a display
 * name into name: 1, or -1 after replying 400 */
static int body_name(struct http_request *r, json_t *o, char name[STORE_EUSER_NAME_MAX + 1])
{
    json_t *nv = json_object_get(o, "name");
    if (!nv || json_is_null(nv))
        return 0;
    const char *why = !json_is_string(nv) || strlen(json_string_value(nv)) != json_string_length(nv)
                          ? "must be a string"
                          : store_enduser_name(json_string_value(nv));
    if (why) {
        http_error(r, 400, "name: %s", why);
        return -1;
    }
    core_strlcpy(name, json_string_value(nv), STORE_EUSER_NAME_MAX + 1);
    return 1;
}

/* body_bool - o[key] as a boolean: 1/0, dflt when absent, -1 replied 400 */
static int body_bool(struct http_request *r, json_t *o, const char *key, int dflt)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return dflt;
    if (!json_is_boolean(v)) {
        http_error(r, 400, "%s: must be true or false", key);
        return -1;
    }
    return json_is_true(v);
}

/* ---------------------------------------------------------------- settings */
void http_api_euc_get(struct http_request *r)
{
    const char *tenant = eu_tenant(r);
    if (!tenant)
        return;
    json_t *j;
    if (!http_found(r, store_euc_get(r->slot->st, tenant, &j, NULL)))
        return;
    long n = store_enduser_count(r->slot->st, tenant);
    json_object_set_new(j, "tenant", json_string(tenant));
    json_object_set_new(j, "accounts", json_integer(n < 0 ? 0 : n));
    json_object_set_new(j, "accounts_max", json_integer(STORE_EUSER_MAX));
    http_reply_json(r, 200, j);
}

void http_api_euc_put(struct http_request *r)
{
    const char *tenant = eu_tenant(r);
    if (!tenant)
        return;
    json_t *b = http_body_object(r);
    if (!b)
        return;
    json_object_del(b, "tenant"); /* what GET shows, read-only */
    json_object_del(b, "accounts");
    json_object_del(b, "accounts_max");
    json_t *canon;
    char err[512], actor[STORE_EMAIL_MAX + 160];
    if (store_euc_validate(b, &canon, err, sizeof err) < 0) {
        http_error(r, 400, "%s", err);
        json_decref(b);
        return;
    }
    json_decref(b);
    actor_of(r, actor, sizeof actor);
    if (!http_found(r, store_euc_set(r->slot->st, tenant, canon, actor))) {
        json_decref(canon);
        return;
    }
    json_object_set_new(canon, "tenant", json_string(tenant));
    http_reply_json(r, 200, canon);
}

/* ---------------------------------------------------------------- the list */
void http_api_endusers_list(struct http_request *r)
{
    const char *tenant = eu_tenant(r);
    if (!tenant)
        return;
    bool bad = false;
    const char *q = http_arg(r, "q", &bad);
    uint64_t offset = 0, limit = EU_LIST_DEFAULT;
    if (bad || http_arg_uint(r, "offset", STORE_EUSER_MAX, &offset) < 0 ||
        http_arg_uint(r, "limit", EU_LIST_MAX, &limit) < 0)
        return;
    struct store_enduser_query query = {.company_id = tenant, .search = q, .offset = offset, .limit = limit ? limit : 1};
    struct store_enduser *v;
    long total = 0;
    long n = store_enduser_list(r->slot->st, &query, &v, &total);
    if (n < 0) {
        http_error(r, 500, "internal error");
        return;
    }
    json_t *list = json_array();
    for (long i = 0; i < n; i++)
        json_array_append_new(list, eu_json(&v[i]));
    sodium_memzero(v, (size_t)n * sizeof *v);
    free(v);
    http_reply_json(r, 200, json_pack("{s:o,s:I,s:I,s:I}", "endusers", list, "total", (json_int_t)total, "offset",
                                      (json_int_t)offset, "limit", (json_int_t)query.limit));
}

/* ---------------------------------------------------------------- add */
void http_api_endusers_add(struct http_request *r)
{
    const char *tenant = eu_tenant(r);
    if (!tenant)
        return;
    json_t *b = http_body_object(r);
    if (!b)
        return;
    static const char *const keys[] = {"email", "name", "enabled", "send_mail", NULL};
    const char *email = NULL;
    struct store_enduser u;
    memset(&u, 0, sizeof u);
    int enabled, send;
    if (http_json_only(r, b, keys) < 0 || http_json_str(r, b, "email", STORE_EMAIL_MAX, &email) < 0 ||
        body_name(r, b, u.name) < 0 || (enabled = body_bool(r, b, "enabled", 1)) < 0 ||
        (send = body_bool(r, b, "send_mail", 1)) < 0)
        goto out;
    if (!email) {
        http_error(r, 400, "email is required");
        goto out;
    }
    core_strlcpy(u.company_id, tenant, sizeof u.company_id);
    core_strlcpy(u.email, email, sizeof u.email);
    u.enabled = enabled == 1;
    char err[400];
    int rc = store_enduser_add(r->slot->st, &u, err, sizeof err);
    if (rc != 0) {
        if (rc < 0)
            http_error(r, 500, "internal error");
        else if (strstr(err, "exists already"))
            http_error(r, 409, "%s", err);
        else
            http_error(r, 400, "%s", err);
        goto out;
    }
    http_audit(r, "enduser.add", tenant, "%s%s", u.email, u.enabled ? "" : " (disabled)");
    char why[300] = "send_mail is false";
    int mailed = send ? send_mail(r, &u, why, sizeof why) : 1;
    if (mailed == 0)
        http_audit(r, "enduser.password_mail", tenant, "%s", u.email);
    struct store_enduser fresh;
    if (store_enduser_get(r->slot->st, tenant, u.id, &fresh) == 0)
        u = fresh;
    json_t *o = eu_json(&u);
    json_object_set_new(o, "password_mail", json_string(mailed == 0 ? "queued" : "not sent"));
    if (mailed != 0)
        json_object_set_new(o, "password_mail_reason", json_string(why));
    http_reply_json(r, 201, o);
out:
    json_decref(b);
}

/* ---------------------------------------------------------------- import / export */
void http_api_endusers_import(struct http_request *r)
{
    const char *tenant = eu_tenant(r);
    if (!tenant)
        return;
    json_t *b = http_body_object(r);
    if (!b)
        return;
    static const char *const keys[] = {"csv", "send_mail", NULL};
    json_t *csv = json_object_get(b, "csv");
    int send;
    struct store_enduser_row *rows = NULL;
    size_t n = 0;
    struct store_enduser_import res;
    memset(&res, 0, sizeof res);
    if (http_json_only(r, b, keys) < 0 || (send = body_bool(r, b, "send_mail", 1)) < 0)
        goto out;
    if (!json_is_string(csv)) {
        http_error(r, 400, "csv: required, the file's text (UTF-8)");
        goto out;
    }
    int rc = store_enduser_csv_parse(json_string_value(csv), json_string_length(csv), &rows, &n, &res);
    if (rc == 0) {
        rc = store_enduser_import(r->slot->st, tenant, rows, n, &res);
        if (rc < 0) {
            http_error(r, 500, "internal error");
            goto out;
        }
    }
    if (rc == 1) {
        json_t *errs = json_array();
        for (size_t i = 0; i < res.nerrors && i < STORE_EUSER_ERRORS_MAX; i++)
            json_array_append_new(errs, json_pack("{s:i,s:s}", "line", (int)res.errors[i].line, "error",
                                                  res.errors[i].error));
        char msg[200];
        snprintf(msg, sizeof msg, "the CSV file has %zu error%s: nothing was imported", res.nerrors,
                 res.nerrors == 1 ? "" : "s");
        http_reply_json(r, 400, json_pack("{s:s,s:o,s:I}", "error", msg, "errors", errs, "error_count",
                                          (json_int_t)res.nerrors));
        goto out;
    }
    http_audit(r, "enduser.import", tenant, "%zu rows: %zu created, %zu updated, %zu unchanged", n, res.created,
               res.updated, res.unchanged);
    /* the new accounts' password-set mails (stop at the first refusal by the rules: it holds for all) */
    size_t queued = 0;
    json_t *failed = json_array();
    char blocked[300] = "";
    if (!send)
        snprintf(blocked, sizeof blocked, "send_mail is false");
    for (size_t i = 0; i < res.created && !blocked[0]; i++) {
        struct store_enduser u;
        char why[300];
        if (store_enduser_get(r->slot->st, tenant, res.created_ids[i], &u) != 0 || !u.enabled)
            continue;
        int rc2 = send_mail(r, &u, why, sizeof why);
        if (rc2 == 0)
            queued++;
        else if (rc2 > 0)
            core_strlcpy(blocked, why, sizeof blocked);
        else if (json_array_size(failed) < STORE_EUSER_ERRORS_MAX)
            json_array_append_new(failed, json_pack("{s:s,s:s}", "email", u.email, "error", why));
    }
    if (queued)
        http_audit(r, "enduser.password_mail", tenant, "%zu imported accounts", queued);
    json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I}", "rows", (json_int_t)n, "created", (json_int_t)res.created,
                          "updated", (json_int_t)res.updated, "unchanged", (json_int_t)res.unchanged,
                          "password_mails", (json_int_t)queued);
    if (blocked[0] && res.created)
        json_object_set_new(o, "password_mail_reason", json_string(blocked));
    json_object_set_new(o, "password_mail_failures", failed);
    http_reply_json(r, 200, o);
out:
    store_enduser_rows_free(rows, n);
    store_enduser_import_free(&res);
    json_decref(b);
}

void http_api_endusers_export(struct http_request *r)
{
    const char *tenant = eu_tenant(r);
    if (!tenant)
        return;
    struct store_enduser_query q = {.company_id = tenant};
    struct store_enduser *v;
    long n = store_enduser_list(r->slot->st, &q, &v, NULL);
    if (n < 0) {
        http_error(r, 500, "internal error");
        return;
    }
    struct buf b;
    buf_init(&b, EU_EXPORT_MAX);
    int rc = store_enduser_csv_write(&b, v, (size_t)n);
    sodium_memzero(v, (size_t)n * sizeof *v);
    free(v);
    if (rc < 0) {
        buf_free(&b);
        http_error(r, 500, "the export is too large");
        return;
    }
    buf_cstr(&b);
    snprintf(r->disposition, sizeof r->disposition, "attachment; filename=\"endusers-%s.csv\"", tenant);
    http_reply_text(r, 200, "text/csv; charset=utf-8", b.ptr, b.len);
}

/* ---------------------------------------------------------------- one account */
/* one - {id} in the caller's scope into u; false after replying (404 for another tenant's) */
static bool one(struct http_request *r, struct store_enduser *u)
{
    int64_t id;
    return http_path_id(r, &id) && http_found(r, store_enduser_get(r->slot->st, eu_scope(r), id, u));
}

void http_api_enduser_get(struct http_request *r)
{
    struct store_enduser u;
    if (one(r, &u))
        http_reply_json(r, 200, eu_json(&u));
}

void http_api_enduser_patch(struct http_request *r)
{
    struct store_enduser u;
    if (!one(r, &u))
        return;
    json_t *b = http_body_object(r);
    if (!b)
        return;
    static const char *const keys[] = {"enabled", "name", NULL};
    char old_name[STORE_EUSER_NAME_MAX + 1];
    core_strlcpy(old_name, u.name, sizeof old_name);
    int enabled, named;
    if (http_json_only(r, b, keys) < 0 || (enabled = body_bool(r, b, "enabled", u.enabled)) < 0 ||
        (named = body_name(r, b, u.name)) < 0)
        goto out;
    if (!http_found(r, store_enduser_update(r->slot->st, u.company_id, u.id, enabled == 1, u.name)))
        goto out;
    if ((enabled == 1) != u.enabled)
        http_audit(r, enabled ? "enduser.enable" : "enduser.disable", u.company_id, "%s", u.email);
    if (named && strcmp(old_name, u.name) != 0)
        http_audit(r, "enduser.update", u.company_id, "%s: name", u.email);
    if (http_found(r, store_enduser_get(r->slot->st, u.company_id, u.id, &u)))
        http_reply_json(r, 200, eu_json(&u));
out:
    json_decref(b);
}

void http_api_enduser_delete(struct http_request *r)
{
    struct store_enduser u;
    if (!one(r, &u))
        return;
    if (!http_found(r, store_enduser_delete(r->slot->st, u.company_id, u.id)))
        return;
    http_audit(r, "enduser.delete", u.company_id, "%s", u.email);
    http_reply_json(r, 200, json_pack("{s:I,s:s}", "deleted", (json_int_t)u.id, "email", u.email));
}

void http_api_enduser_mail(struct http_request *r)
{
    struct store_enduser u;
    if (!one(r, &u))
        return;
    char why[300];
    int rc = send_mail(r, &u, why, sizeof why);
    if (rc != 0) {
        http_error(r, rc > 0 ? 409 : 503, "%s", why);
        return;
    }
    http_audit(r, "enduser.password_mail", u.company_id, "%s", u.email);
    if (!http_found(r, store_enduser_get(r->slot->st, u.company_id, u.id, &u)))
        return;
    json_t *o = eu_json(&u);
    json_object_set_new(o, "password_mail", json_string("queued"));
    http_reply_json(r, 200, o);
}
