/*
 * http_api_config.c - the tenant document over HTTP:
 *
 *   GET /api/v1/config   the session tenant's document, exactly `moatctl export --tenant ID`
 *                        (an operator: every tenant, or ?tenant=ID)
 *   PUT /api/v1/config   import a document, exactly `moatctl import` (store_import_json_report):
 *                        the same validation, the same error messages (with the JSON
 *                        path), nothing applied on an error, idempotent
 *
 * A tenant administrator's document must hold exactly its own tenant
 * (checked before the import, so no other tenant can be touched, created
 * or learnt about). "verified": true is never trusted here (domains are
 * verified by the DNS check; `moatctl import --trust-domains` is the
 * operator's override). Every import that changed something is audited
 * with the caller and the new config version.
 *
 * Concurrent editing: GET answers an ETag, the SHA-256 of the document it
 * sent (per scope: the caller's tenant, or an operator's ?tenant=, or every
 * tenant). A PUT with If-Match is refused with 412 when the document of the
 * same scope is no longer that one - someone else saved in between - so
 * two administrators editing rules at once never silently overwrite each
 * other (the console always sends it). The PUT's reply carries the new
 * ETag. Without If-Match (scripts, moatctl-like use) the last save wins.
 * The check runs just before the import, not inside its transaction: two
 * saves within the same few milliseconds can still both pass.
 */
#include "http/http_int.h"

#include <microhttpd.h>

/* doc_etag - the quoted SHA-256 of the scope's exported document into
 * out[72]; false on an export failure */
static bool doc_etag(struct http_request *r, const char *scope, char out[72])
{
    char err[512] = "", hex[STORE_HASH_HEX + 1];
    char *doc = store_export_json(r->slot->st, scope, err, sizeof err);
    if (!doc)
        return false;
    http_sha256_hex(doc, strlen(doc), hex);
    free(doc);
    snprintf(out, 72, "\"%s\"", hex);
    return true;
}

void http_api_config_get(struct http_request *r)
{
    bool bad;
    const char *scope = http_scope(r, &bad);
    if (bad)
        return;
    char err[512] = "";
    char *doc = store_export_json(r->slot->st, scope, err, sizeof err);
    if (!doc) {
        if (scope)
            http_not_found(r);
        else
            http_error(r, 500, "internal error");
        return;
    }
    char hex[STORE_HASH_HEX + 1];
    http_sha256_hex(doc, strlen(doc), hex);
    snprintf(r->etag, sizeof r->etag, "\"%s\"", hex);
    http_reply_text(r, 200, "application/json", doc, strlen(doc));
}

/* own_tenant_only - for a tenant administrator: the document names exactly
 * its tenant. true = go on (also when the JSON is broken: the import
 * reports that with its own message) */
static bool own_tenant_only(struct http_request *r)
{
    if (!r->who.company_id[0])
        return true;
    json_t *doc = json_loadb(r->body.ptr, r->body.len, 0, NULL);
    if (!doc)
        return true;
    json_t *tenants = json_object_get(doc, "tenants");
    bool ok = true;
    if (json_is_array(tenants)) {
        if (json_array_size(tenants) != 1) {
            http_error(r, 403, "tenants: must hold exactly your own tenant (%s)", r->who.company_id);
            ok = false;
        } else {
            json_t *cid = json_object_get(json_array_get(tenants, 0), "company_id");
            if (json_is_string(cid) && strcasecmp(json_string_value(cid), r->who.company_id) != 0) {
                http_error(r, 403, "tenants[0].company_id: you can only change your own tenant (%s)",
                           r->who.company_id);
                ok = false;
            }
        }
    }
    json_decref(doc);
    return ok;
}

void http_api_config_put(struct http_request *r)
{
    if (r->body.len == 0) {
        http_error(r, 400, "a tenant document is required");
        return;
    }
    if (!http_json_depth_ok(r->body.ptr, r->body.len, HTTP_JSON_DEPTH_MAX)) {
        http_error(r, 400, "JSON nested too deeply (at most %d levels)", HTTP_JSON_DEPTH_MAX);
        return;
    }
    if (!own_tenant_only(r))
        return;
    bool bad;
    const char *scope = http_scope(r, &bad);
    if (bad)
        return;
    const char *want = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "If-Match");
    if (want && strcmp(want, "*") != 0) {
        char now[72];
        if (!doc_etag(r, scope, now)) {
            http_error(r, 500, "internal error");
            return;
        }
        if (strcmp(want, now) != 0) {
            http_error(r, 412, "the configuration was changed by someone else since you loaded it; reload it and make "
                               "your change again");
            return;
        }
    }
    struct store_import_result res;
    memset(&res, 0, sizeof res);
    char err[1024] = "";
    int rc = store_import_json_report(r->slot->st, r->body.ptr, r->body.len, false, &res, err, sizeof err);
    if (rc == 1) {
        http_error(r, 400, "%s", err);
        return;
    }
    if (rc != 0) {
        http_error(r, 500, "internal error: %s", err);
        return;
    }
    if (res.changed)
        http_audit(r, "config.import", r->who.company_id, "tenants=%zu changed=%zu config_version=%lld", res.tenants,
                   res.changed, (long long)res.config_version);
    if (!doc_etag(r, scope, r->etag))
        r->etag[0] = '\0';
    http_reply_json(r, 200, json_pack("{s:I,s:I,s:I}", "tenants", (json_int_t)res.tenants, "changed",
                                      (json_int_t)res.changed, "config_version", (json_int_t)res.config_version));
}
