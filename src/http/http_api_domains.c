/*
 * http_api_domains.c - the tenant's domains and their ownership proof (the
 * console's domain page and the "add domain" wizard step):
 *
 *   GET  /api/v1/domains                 every domain of the tenant with its status and
 *                                        the TXT / MX records that prove ownership
 *   POST /api/v1/domains                 {"name", "server"? | "inbound_servers"?, "outbound"?,
 *                                        "tenant"?} add one (needs configuration until
 *                                        verified); servers and outbound protection as
 *                                        in the tenant document, validated by the store
 *   POST /api/v1/domains/{name}/verify   check the DNS now: dns_check_verify_now, exactly
 *                                        `moatctl domain verify`
 *
 * Everything is store_* and dns_* (docs/dns.md): the same functions as
 * moatctl; a new verification activates the default rules (first domain),
 * queues the activation mail (queue_mgr_inject) and is audited by the
 * store. Another tenant's domain answers 404 like a missing one. The check
 * blocks this request's thread for at most the resolver's timeout
 * (dns_timeout_ms x dns_tries per lookup).
 */
#include "http/http_int.h"

#include <ctype.h>

#include "dns/dns.h"

/* claim_json - one claim as the API shows it */
static json_t *claim_json(struct http_request *r, const struct store_domain_claim *c)
{
    char mx[300] = "";
    dns_mx_host(c->company_id, r->srv->d.cfg->service_domain, mx, sizeof mx);
    char txt[120];
    snprintf(txt, sizeof txt, "%s%s", DNS_TXT_PREFIX, c->token);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(c->domain));
    json_object_set_new(o, "tenant", json_string(c->company_id));
    json_object_set_new(o, "status", json_string(c->verified ? "complete" : "needs_configuration"));
    json_object_set_new(o, "verified", json_boolean(c->verified));
    json_object_set_new(o, "verified_at", http_iso(c->verified_at));
    json_object_set_new(o, "verified_via", c->verified_via ? json_string(c->verified_via) : json_null());
    json_object_set_new(o, "verification_token", json_string(c->token));
    json_object_set_new(o, "records", json_pack("[{s:s,s:s,s:s},{s:s,s:s,s:s,s:i}]", "type", "TXT", "name", c->domain,
                                                "value", txt, "type", "MX", "name", c->domain, "value", mx,
                                                "preference", 10));
    json_object_set_new(o, "last_check", http_iso(c->check_last));
    json_object_set_new(o, "check_result", c->check_result ? json_string(c->check_result) : json_null());
    json_object_set_new(o, "record_missing", json_boolean(c->record_missing));
    return o;
}

/* tenant_domains - the domain names of the scope's tenants, from the tenant document */
static json_t *tenant_domains(struct http_request *r, const char *scope)
{
    char err[300];
    char *doc = store_export_json(r->slot->st, scope, err, sizeof err);
    json_t *d = doc ? json_loads(doc, 0, NULL) : NULL;
    free(doc);
    return d;
}

void http_api_domains_list(struct http_request *r)
{
    bool bad;
    const char *scope = http_scope(r, &bad);
    if (bad)
        return;
    json_t *doc = tenant_domains(r, scope);
    if (!doc) {
        http_error(r, 500, "internal error");
        return;
    }
    json_t *list = json_array(), *t;
    size_t i;
    json_array_foreach(json_object_get(doc, "tenants"), i, t) {
        const char *cid = json_string_value(json_object_get(t, "company_id"));
        size_t k;
        json_t *d;
        json_array_foreach(json_object_get(t, "domains"), k, d) {
            const char *name = json_string_value(json_object_get(d, "name"));
            struct store_domain_claim *c = NULL;
            size_t n = 0;
            if (!cid || !name || store_domain_claims(r->slot->st, name, cid, &c, &n) < 0)
                continue;
            if (n > 0)
                json_array_append_new(list, claim_json(r, &c[0]));
            store_domain_claims_free(c, n);
        }
    }
    json_decref(doc);
    http_reply_json(r, 200, json_pack("{s:o}", "domains", list));
}

/* one_claim - the tenant's claim on name (lower-cased, trailing dots
 * dropped); false after replying 404 */
static bool one_claim(struct http_request *r, const char *scope, const char *raw, struct store_domain_claim **c,
                      size_t *n)
{
    char name[256];
    core_strlcpy(name, raw, sizeof name);
    size_t nl = strlen(name);
    while (nl > 0 && name[nl - 1] == '.')
        name[--nl] = '\0';
    for (char *p = name; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    *c = NULL;
    *n = 0;
    if (store_domain_claims(r->slot->st, name, scope, c, n) < 0) {
        http_error(r, 500, "internal error");
        return false;
    }
    if (*n == 0 || (!scope && *n > 1 && !(*c)[0].verified)) {
        store_domain_claims_free(*c, *n);
        if (*n > 1)
            http_error(r, 409, "several tenants have added this domain: add ?tenant=ID");
        else
            http_not_found(r);
        return false;
    }
    return true;
}

void http_api_domains_add(struct http_request *r)
{
    json_t *b = http_body_object(r);
    if (!b)
        return;
    static const char *const keys[] = {"name", "server", "inbound_servers", "outbound", "tenant", NULL};
    const char *name = NULL, *server = NULL, *tenant = NULL;
    char company[STORE_COMPANY_MAX + 1];
    if (http_json_only(r, b, keys) < 0 || http_json_str(r, b, "name", 253, &name) < 0 ||
        http_json_str(r, b, "server", 300, &server) < 0 || http_json_str(r, b, "tenant", STORE_COMPANY_MAX, &tenant) < 0)
        goto out;
    json_t *servers = json_object_get(b, "inbound_servers"), *outbound = json_object_get(b, "outbound");
    if (servers && server) {
        http_error(r, 400, "server or inbound_servers, not both");
        goto out;
    }
    if (servers && (!json_is_array(servers) || json_array_size(servers) == 0)) {
        http_error(r, 400, "inbound_servers: a list of at least one {\"host\", \"port\", \"preference\"}");
        goto out;
    }
    if (outbound && !json_is_object(outbound)) {
        http_error(r, 400, "outbound: an object {\"enabled\", \"sending_servers\"}");
        goto out;
    }
    if (r->who.company_id[0]) {
        if (tenant && strcasecmp(tenant, r->who.company_id) != 0) {
            http_error(r, 403, "tenant: you can only act on your own tenant");
            goto out;
        }
        core_strlcpy(company, r->who.company_id, sizeof company);
    } else if (!tenant) {
        http_error(r, 400, "tenant: required for an operator");
        goto out;
    } else {
        core_strlcpy(company, tenant, sizeof company);
    }
    if (!name) {
        http_error(r, 400, "name is required");
        goto out;
    }
    char err[512] = "";
    int rc = store_domain_add_settings(r->slot->st, company, name, server, b, err, sizeof err);
    if (rc != 0) {
        if (rc < 0)
            http_error(r, 500, "internal error");
        else if (strstr(err, "no such tenant"))
            http_not_found(r);
        else
            http_error(r, 400, "%s", err);
        goto out;
    }
    http_audit(r, "domain.add", company, "%s", name);
    struct store_domain_claim *c;
    size_t n;
    if (one_claim(r, company, name, &c, &n)) {
        http_reply_json(r, 201, claim_json(r, &c[0]));
        store_domain_claims_free(c, n);
    }
out:
    json_decref(b);
}

static int inject_mgr(const char *data, size_t len, struct queue_envelope *env, void *arg)
{
    return queue_mgr_inject(arg, data, len, env);
}

void http_api_domain_verify(struct http_request *r)
{
    bool bad;
    const char *scope = http_scope(r, &bad);
    if (bad)
        return;
    struct store_domain_claim *c;
    size_t n;
    if (!one_claim(r, scope, r->args[0], &c, &n)) /* another tenant's: 404 like a missing one */
        return;
    char company[64], domain[256];
    core_strlcpy(company, c[0].company_id, sizeof company);
    core_strlcpy(domain, c[0].domain, sizeof domain);
    store_domain_claims_free(c, n);
    char actor[STORE_EMAIL_MAX + 160];
    snprintf(actor, sizeof actor, "%s (api %s)", r->who.actor, r->client_ip);
    struct dns_check_ctx x = {.cfg = r->srv->d.cfg,
                              .st = r->slot->st,
                              .inject = r->srv->d.queue ? inject_mgr : NULL,
                              .inject_arg = r->srv->d.queue,
                              .actor = actor};
    struct dns_check_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = dns_check_verify_now(&x, domain, company, &rep);
    if (rc != 0) {
        if (rc > 0)
            http_not_found(r);
        else
            http_error(r, 503, "the DNS check could not run: %s", rep.reason);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(rep.domain));
    json_object_set_new(o, "tenant", json_string(rep.company_id));
    json_object_set_new(o, "status", json_string(rep.verified ? "complete" : "needs_configuration"));
    json_object_set_new(o, "verified", json_boolean(rep.verified));
    json_object_set_new(o, "result", json_string(rep.res.outcome == DNS_VERIFY_OK     ? "ok"
                                                 : rep.res.outcome == DNS_VERIFY_FAIL ? "not_found"
                                                                                      : "temporary_failure"));
    json_object_set_new(o, "reason", json_string(rep.reason));
    json_object_set_new(o, "via", rep.res.method ? json_string(rep.res.method) : json_null());
    if (rep.change == STORE_CHANGE_VERIFIED)
        json_object_set_new(o, "default_rules_activated", json_boolean(rep.first));
    http_reply_json(r, 200, o);
}
