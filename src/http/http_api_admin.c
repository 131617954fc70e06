/*
 * http_api_admin.c - administration endpoints:
 *
 *   GET/POST      /api/v1/accounts          list / create {"email", "password", "role", "tenant"?}
 *   GET/PATCH/DELETE /api/v1/accounts/{id}  one account; PATCH {"role"?, "disabled"?, "password"?, "reset_totp"?}
 *   GET/POST      /api/v1/tokens            list / create {"name", "role", "tenant"?} (the token is shown once)
 *   DELETE        /api/v1/tokens/{id}
 *   GET           /api/v1/audit?since=&until=&limit=
 *   GET/PUT       /api/v1/security          the tenant's {"totp_required"}
 *
 * Scope: a tenant administrator sees and changes only its own tenant's
 * accounts and tokens (another tenant's ID answers 404 like a missing one)
 * and creates them only in its own tenant; an operator acts on any tenant
 * (?tenant= narrows a listing, "tenant" in a body picks one; no tenant =
 * an operator account / token). Nobody can disable, demote or delete
 * themselves (no lock-out of the last administrator by accident). Every
 * change is written to the audit log.
 */
#include "http/http_int.h"

#include <ctype.h>

#include <sodium.h>

/* body_tenant - the tenant a new account / token belongs to: a tenant
 * administrator's own (a different "tenant" is refused), an operator's
 * "tenant" or "" (operator); false after replying */
static bool body_tenant(struct http_request *r, json_t *b, char out[STORE_COMPANY_MAX + 1])
{
    const char *t = NULL;
    if (http_json_str(r, b, "tenant", STORE_COMPANY_MAX, &t) < 0)
        return false;
    if (r->who.company_id[0]) {
        if (t && strcasecmp(t, r->who.company_id) != 0) {
            http_error(r, 403, "tenant: you can only act on your own tenant");
            return false;
        }
        core_strlcpy(out, r->who.company_id, STORE_COMPANY_MAX + 1);
        return true;
    }
    core_strlcpy(out, t ? t : "", STORE_COMPANY_MAX + 1);
    return true;
}

/* body_role - "full" / "read-only": 1 full, 0 read-only, -1 replied; absent = dflt */
static int body_role(struct http_request *r, json_t *b, int dflt)
{
    const char *role = NULL;
    int rc = http_json_str(r, b, "role", 16, &role);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return dflt;
    if (strcmp(role, "full") == 0)
        return 1;
    if (strcmp(role, "read-only") == 0)
        return 0;
    http_error(r, 400, "role: must be full or read-only");
    return -1;
}

/* ---------------------------------------------------------------- accounts */
void http_api_accounts_list(struct http_request *r)
{
    bool bad;
    const char *scope = http_scope(r, &bad);
    if (bad)
        return;
    struct store_account *v;
    long n = store_account_list(r->slot->st, scope, &v);
    if (n < 0) {
        http_error(r, 500, "internal error");
        return;
    }
    json_t *list = json_array();
    for (long i = 0; i < n; i++)
        json_array_append_new(list, http_account_json(r->slot->st, &v[i]));
    sodium_memzero(v, (size_t)n * sizeof *v);
    free(v);
    http_reply_json(r, 200, json_pack("{s:o}", "accounts", list));
}

void http_api_accounts_add(struct http_request *r)
{
    json_t *b = http_body_object(r);
    if (!b)
        return;
    static const char *const keys[] = {"email", "password", "role", "tenant", NULL};
    const char *email = NULL, *pw = NULL;
    struct store_account a;
    memset(&a, 0, sizeof a);
    if (http_json_only(r, b, keys) < 0 || http_json_str(r, b, "email", STORE_EMAIL_MAX, &email) < 0 ||
        http_json_str(r, b, "password", HTTP_PASSWORD_MAX + 1, &pw) < 0 || !body_tenant(r, b, a.company_id))
        goto out;
    int full = body_role(r, b, 0);
    if (full < 0)
        goto out;
    if (!email || !pw) {
        http_error(r, 400, "email and password are required");
        goto out;
    }
    if (!http_email_ok(email)) {
        http_error(r, 400, "email: not an e-mail address");
        goto out;
    }
    const char *weak = http_password_weak(pw);
    if (weak) {
        http_error(r, 400, "%s", weak);
        goto out;
    }
    for (size_t i = 0; email[i] && i < STORE_EMAIL_MAX; i++)
        a.email[i] = (char)tolower((unsigned char)email[i]);
    a.full = full == 1;
    if (http_password_hash(pw, a.pwhash) < 0) {
        http_error(r, 500, "internal error");
        goto out;
    }
    char err[200];
    int rc = store_account_add(r->slot->st, &a, err, sizeof err);
    if (rc != 0) {
        if (rc == 1 && strncmp(err, "no such tenant", 14) == 0)
            http_error(r, 404, "tenant: not found");
        else if (rc == 1)
            http_error(r, 409, "%s", err);
        else
            http_error(r, 500, "internal error");
        goto out;
    }
    http_audit(r, "account.add", a.company_id, "%s (%s, %s)", a.email, a.company_id[0] ? a.company_id : "operator",
               a.full ? "full" : "read-only");
    http_reply_json(r, 201, http_account_json(r->slot->st, &a));
out:
    sodium_memzero(&a, sizeof a);
    json_decref(b);
}

/* scoped_account - {id} within the caller's scope (404 otherwise) */
static bool scoped_account(struct http_request *r, struct store_account *a)
{
    int64_t id;
    if (!http_path_id(r, &id))
        return false;
    return http_found(r, store_account_get(r->slot->st, r->who.company_id[0] ? r->who.company_id : NULL, id, a));
}

void http_api_account_get(struct http_request *r)
{
    struct store_account a;
    if (scoped_account(r, &a))
        http_reply_json(r, 200, http_account_json(r->slot->st, &a));
}

void http_api_account_patch(struct http_request *r)
{
    struct store_account a;
    if (!scoped_account(r, &a))
        return;
    json_t *b = http_body_object(r);
    if (!b)
        return;
    static const char *const keys[] = {"role", "disabled", "password", "reset_totp", NULL};
    const char *pw = NULL;
    char what[200] = "";
    if (http_json_only(r, b, keys) < 0 || http_json_str(r, b, "password", HTTP_PASSWORD_MAX + 1, &pw) < 0)
        goto out;
    int full = body_role(r, b, a.full);
    if (full < 0)
        goto out;
    json_t *dis = json_object_get(b, "disabled"), *reset = json_object_get(b, "reset_totp");
    if ((dis && !json_is_boolean(dis)) || (reset && !json_is_boolean(reset))) {
        http_error(r, 400, "%s: must be true or false", dis && !json_is_boolean(dis) ? "disabled" : "reset_totp");
        goto out;
    }
    bool self = !r->who.via_token && a.id == r->who.account_id;
    if (self && ((dis && json_is_true(dis)) || !full)) {
        http_error(r, 409, "you cannot disable or demote your own account");
        goto out;
    }
    if (pw) {
        const char *weak = http_password_weak(pw);
        if (weak) {
            http_error(r, 400, "%s", weak);
            goto out;
        }
        if (http_password_hash(pw, a.pwhash) < 0) {
            http_error(r, 500, "internal error");
            goto out;
        }
        strncat(what, " password", sizeof what - strlen(what) - 1);
    }
    if ((full == 1) != a.full)
        strncat(what, full ? " role=full" : " role=read-only", sizeof what - strlen(what) - 1);
    a.full = full == 1;
    if (dis && json_is_boolean(dis) && json_is_true(dis) != a.disabled) {
        a.disabled = json_is_true(dis);
        strncat(what, a.disabled ? " disabled" : " enabled", sizeof what - strlen(what) - 1);
    }
    if (reset && json_is_true(reset)) {
        a.totp_enabled = false;
        a.totp_secret[0] = '\0';
        store_recovery_set(r->slot->st, a.id, NULL, 0);
        strncat(what, " totp-reset", sizeof what - strlen(what) - 1);
    }
    if (store_account_update(r->slot->st, &a) < 0) {
        http_error(r, 500, "internal error");
        goto out;
    }
    if (pw || a.disabled)
        store_session_delete_account(r->slot->st, a.id, self ? r->who.session_hash : NULL);
    if (what[0])
        http_audit(r, "account.update", a.company_id, "%s:%s", a.email, what);
    http_reply_json(r, 200, http_account_json(r->slot->st, &a));
out:
    sodium_memzero(&a, sizeof a);
    json_decref(b);
}

void http_api_account_delete(struct http_request *r)
{
    struct store_account a;
    if (!scoped_account(r, &a))
        return;
    if (!r->who.via_token && a.id == r->who.account_id) {
        http_error(r, 409, "you cannot delete your own account");
        return;
    }
    int rc = store_account_delete(r->slot->st, r->who.company_id[0] ? r->who.company_id : NULL, a.id);
    if (rc != 0) {
        if (rc < 0)
            http_error(r, 500, "internal error");
        else
            http_not_found(r);
        return;
    }
    http_audit(r, "account.delete", a.company_id, "%s", a.email);
    http_reply_json(r, 200, json_pack("{s:b}", "deleted", 1));
}

/* ---------------------------------------------------------------- tokens */
static json_t *token_json(const struct store_token *t)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(t->id));
    json_object_set_new(o, "name", json_string(t->name));
    json_object_set_new(o, "tenant", t->company_id[0] ? json_string(t->company_id) : json_null());
    json_object_set_new(o, "role", json_string(t->full ? "full" : "read-only"));
    json_object_set_new(o, "disabled", json_boolean(t->disabled));
    json_object_set_new(o, "created", http_iso(t->created));
    json_object_set_new(o, "created_by", json_string(t->created_by));
    json_object_set_new(o, "last_used", http_iso(t->last_used));
    return o;
}

void http_api_tokens_list(struct http_request *r)
{
    bool bad;
    const char *scope = http_scope(r, &bad);
    if (bad)
        return;
    struct store_token *v;
    long n = store_token_list(r->slot->st, scope, &v);
    if (n < 0) {
        http_error(r, 500, "internal error");
        return;
    }
    json_t *list = json_array();
    for (long i = 0; i < n; i++)
        json_array_append_new(list, token_json(&v[i]));
    free(v);
    http_reply_json(r, 200, json_pack("{s:o}", "tokens", list));
}

void http_api_tokens_add(struct http_request *r)
{
    json_t *b = http_body_object(r);
    if (!b)
        return;
    static const char *const keys[] = {"name", "role", "tenant", NULL};
    const char *name = NULL;
    struct store_token t;
    memset(&t, 0, sizeof t);
    if (http_json_only(r, b, keys) < 0 || http_json_str(r, b, "name", 64, &name) < 0 ||
        !body_tenant(r, b, t.company_id))
        goto out;
    int full = body_role(r, b, 0);
    if (full < 0)
        goto out;
    if (!name) {
        http_error(r, 400, "name is required");
        goto out;
    }
    for (const char *p = name; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            http_error(r, 400, "name: control characters are not allowed");
            goto out;
        }
    }
    /* a read-only caller cannot get here (R_WRITE); a token never exceeds its creator's role */
    core_strlcpy(t.name, name, sizeof t.name);
    t.full = full == 1;
    core_strlcpy(t.created_by, r->who.actor, sizeof t.created_by);
    char token[64];
    http_token_new(token, sizeof token, t.hash);
    char err[200];
    int rc = store_token_add(r->slot->st, &t, err, sizeof err);
    if (rc != 0) {
        if (rc == 1)
            http_error(r, 404, "tenant: not found");
        else
            http_error(r, 500, "internal error");
        goto out;
    }
    http_audit(r, "token.add", t.company_id, "token %lld \"%s\" (%s, %s)", (long long)t.id, t.name,
               t.company_id[0] ? t.company_id : "operator", t.full ? "full" : "read-only");
    json_t *o = token_json(&t);
    json_object_set_new(o, "token", json_string(token));
    sodium_memzero(token, sizeof token);
    http_reply_json(r, 201, o);
out:
    json_decref(b);
}

void http_api_token_delete(struct http_request *r)
{
    int64_t id;
    if (!http_path_id(r, &id))
        return;
    int rc = store_token_delete(r->slot->st, r->who.company_id[0] ? r->who.company_id : NULL, id);
    if (rc != 0) {
        if (rc < 0)
            http_error(r, 500, "internal error");
        else
            http_not_found(r);
        return;
    }
    http_audit(r, "token.delete", r->who.company_id, "token %lld", (long long)id);
    http_reply_json(r, 200, json_pack("{s:b}", "deleted", 1));
}

/* ---------------------------------------------------------------- audit log */
void http_api_audit(struct http_request *r)
{
    bool bad;
    const char *scope = http_scope(r, &bad);
    if (bad)
        return;
    double since = 0, until = 0;
    uint64_t limit = 100;
    if (http_arg_time(r, "since", &since) < 0 || http_arg_time(r, "until", &until) < 0 ||
        http_arg_uint(r, "limit", HTTP_LIST_MAX, &limit) < 0)
        return;
    struct store_audit_entry *v;
    long n = store_audit_list(r->slot->st, scope, since, until, limit ? limit : 100, &v);
    if (n < 0) {
        http_error(r, 500, "internal error");
        return;
    }
    json_t *list = json_array();
    for (long i = 0; i < n; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(v[i].id));
        json_object_set_new(o, "time", http_iso(v[i].time));
        json_object_set_new(o, "ts", json_real(v[i].time));
        json_object_set_new(o, "actor", json_string(v[i].actor ? v[i].actor : ""));
        json_object_set_new(o, "action", json_string(v[i].action ? v[i].action : ""));
        json_object_set_new(o, "tenant", v[i].company_id ? json_string(v[i].company_id) : json_null());
        json_object_set_new(o, "detail", v[i].detail ? json_string(v[i].detail) : json_null());
        json_array_append_new(list, o);
    }
    store_audit_free(v, n);
    http_reply_json(r, 200, json_pack("{s:o}", "entries", list));
}

/* ---------------------------------------------------------------- security settings */
/* one_tenant - the single tenant a settings request is about; NULL after replying */
static const char *one_tenant(struct http_request *r)
{
    bool bad;
    const char *scope = http_scope(r, &bad);
    if (bad)
        return NULL;
    /* an operator without ?tenant= sets the operators' own requirement */
    if (!scope && !r->who.company_id[0])
        return "";
    if (!scope)
        http_error(r, 400, "tenant: required for an operator (?tenant=ID)");
    return scope;
}

void http_api_security_get(struct http_request *r)
{
    const char *t = one_tenant(r);
    if (!t)
        return;
    int req = store_tenant_totp_required(r->slot->st, t);
    if (req < 0) {
        http_error(r, 500, "internal error");
        return;
    }
    http_reply_json(r, 200, json_pack("{s:o,s:b}", "tenant", t[0] ? json_string(t) : json_null(), "totp_required", req));
}

void http_api_security_put(struct http_request *r)
{
    const char *t = one_tenant(r);
    if (!t)
        return;
    json_t *b = http_body_object(r);
    if (!b)
        return;
    static const char *const keys[] = {"totp_required", NULL};
    json_t *v = json_object_get(b, "totp_required");
    if (http_json_only(r, b, keys) < 0)
        goto out;
    if (!json_is_boolean(v)) {
        http_error(r, 400, "totp_required: must be true or false");
        goto out;
    }
    if (store_tenant_set_totp_required(r->slot->st, t, json_is_true(v)) < 0) {
        http_error(r, 500, "internal error");
        goto out;
    }
    http_audit(r, "security.update", t, "%s totp_required=%s", t[0] ? "tenant" : "operators",
               json_is_true(v) ? "true" : "false");
    http_reply_json(r, 200,
                    json_pack("{s:o,s:b}", "tenant", t[0] ? json_string(t) : json_null(), "totp_required", json_is_true(v)));
out:
    json_decref(b);
}
