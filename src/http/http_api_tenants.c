/*
 * http_api_tenants.c - tenants, for operators (provisioning):
 *
 *   GET  /api/v1/tenants               the company IDs
 *   POST /api/v1/tenants               {"company_id", "name"?, "admin_email"?} a new tenant with
 *                                      Moat's default rules (store_tenant_create, as `moatctl tenant add`);
 *                                      with admin_email, its first administrator (role full) and
 *                                      the login mail with the link that sets the password
 *                                      (http_onboard.c; "admin_login_mail": true when queued)
 *   GET  /api/v1/company-ids/{id}      {"company_id", "available", "reason"?}: the wizard's
 *                                      availability check (syntax, then "already taken")
 *
 * Operator only (route flag): a tenant administrator learns nothing about
 * other tenants here. Creation is audited.
 */
#include "http/http_int.h"

#include <ctype.h>

/* company_id_syntax - NULL when id is 3-63 letters, digits and hyphens not
 * starting or ending with a hyphen (store_syntax_company_id's rule), else why */
static const char *company_id_syntax(const char *id)
{
    size_t n = strlen(id);
    if (n < 3 || n > 63)
        return "a company ID has 3 to 63 characters";
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && id[i] != '-')
            return "a company ID has only letters, digits and hyphens";
    if (id[0] == '-' || id[n - 1] == '-')
        return "a company ID does not start or end with a hyphen";
    return NULL;
}

/* inject_mgr - the login mail through moatd's queue */
static int inject_mgr(const char *data, size_t len, struct queue_envelope *env, void *arg)
{
    return queue_mgr_inject(arg, data, len, env);
}

void http_api_tenants_list(struct http_request *r)
{
    char **ids;
    long n = store_tenant_list(r->slot->st, &ids);
    if (n < 0) {
        http_error(r, 500, "internal error");
        return;
    }
    json_t *list = json_array();
    for (long i = 0; i < n; i++) {
        json_array_append_new(list, json_pack("{s:s}", "company_id", ids[i]));
        free(ids[i]);
    }
    free(ids);
    http_reply_json(r, 200, json_pack("{s:o}", "tenants", list));
}

void http_api_tenants_add(struct http_request *r)
{
    json_t *b = http_body_object(r);
    if (!b)
        return;
    static const char *const keys[] = {"company_id", "name", "admin_email", NULL};
    const char *cid = NULL, *name = NULL, *admin = NULL;
    if (http_json_only(r, b, keys) < 0 || http_json_str(r, b, "company_id", 63, &cid) < 0 ||
        http_json_str(r, b, "name", 256, &name) < 0 || http_json_str(r, b, "admin_email", STORE_EMAIL_MAX, &admin) < 0)
        goto out;
    if (!cid) {
        http_error(r, 400, "company_id is required");
        goto out;
    }
    if (admin && !http_email_ok(admin)) {
        http_error(r, 400, "admin_email: not an e-mail address");
        goto out;
    }
    char err[300] = "";
    struct store_account taken;
    if (admin && store_account_find(r->slot->st, admin, &taken) == 0) {
        http_error(r, 409, "admin_email: an account with the address %s already exists", admin);
        goto out;
    }
    if (admin && !r->srv->d.queue) {
        http_error(r, 503, "the delivery queue is not available for the administrator's login mail");
        goto out;
    }
    int rc = store_tenant_create(r->slot->st, cid, name ? name : cid, admin, err, sizeof err);
    if (rc != 0) {
        if (rc < 0)
            http_error(r, 500, "internal error");
        else
            http_error(r, strstr(err, "already taken") ? 409 : 400, "%s", err);
        goto out;
    }
    http_audit(r, "tenant.add", cid, "%s", cid);
    json_t *o = json_pack("{s:s}", "company_id", cid);
    if (admin) {
        /* the first administrator and the login mail (http_onboard.c) */
        rc = onboard_first_admin(r->slot->st, r->srv->d.cfg, cid, admin, inject_mgr, r->srv->d.queue, err, sizeof err);
        if (rc == 0)
            http_audit(r, "account.add", cid, "%s (full), login mail sent", admin);
        else
            log_error("http tenant %s: first administrator: %s", cid, err);
        json_object_set_new(o, "admin_login_mail", json_boolean(rc == 0));
        if (rc != 0)
            json_object_set_new(o, "admin_error", json_string(err));
    }
    http_reply_json(r, 201, o);
out:
    json_decref(b);
}

void http_api_company_id(struct http_request *r)
{
    const char *id = r->args[0];
    const char *why = company_id_syntax(id);
    int ex = why ? 0 : store_tenant_exists(r->slot->st, id);
    if (ex < 0) {
        http_error(r, 500, "internal error");
        return;
    }
    json_t *o = json_pack("{s:s,s:b}", "company_id", id, "available", !why && ex == 0);
    if (why || ex)
        json_object_set_new(o, "reason", json_string(why ? why : "already taken"));
    http_reply_json(r, 200, o);
}
