/*
 * store_verify.c - tenant provisioning and domain ownership state: what
 * the operator's "create tenant", "add domain" and the DNS verification
 * (moatctl domain verify, moatd's periodic check, later the console) need
 * from the store.
 *
 *   store_tenant_create       a new tenant with Moat's default rules
 *   store_domain_add          a new, unverified domain of a tenant
 *   store_domain_add_settings the same with its inbound servers and outbound protection
 *   store_domain_claims       the tenants' claims on one name, with their state
 *   store_domain_due          claims whose periodic check is due
 *   store_domain_check_soon   ask moatd's checker to check a claim within a second
 *   store_domain_check_done   record a check; verify; activate default rules
 *
 * Creation goes through the tenant document import (store_import_json), so
 * the same validation applies everywhere. Default rules are ordinary
 * policies with "default": true, created disabled; they become enabled in
 * the transaction that verifies the tenant's first domain, and may be
 * disabled by the administrator afterwards (store_doc.c refuses changes to
 * them while the tenant has no verified domain).
 *
 * Claims: several tenants may add the same name; only one can verify it
 * (the partial unique index domains_verified_name). A proof found for a
 * name another tenant has verified gives STORE_CHANGE_TAKEN and changes
 * nothing. A check never unverifies a domain: a verified domain whose
 * record disappears keeps receiving mail, and the first such check is
 * reported (STORE_CHANGE_RECORD_MISSING, audit "domain.record_missing") so
 * the caller alerts the administrator once.
 */
#include "store/store_int.h"

#include <jansson.h>

/* Moat's default rules (PRODUCT.md §4, docs/policy.md "Default rules"). */
static const char DEFAULT_POLICIES[] =
    "["
    "{\"name\": \"Virus\", \"default\": true, \"enabled\": false, \"direction\": \"inbound\","
    " \"notes\": \"Moat default rule: malware is quarantined and the administrator notified.\","
    " \"criteria\": {\"virus\": {\"types\": [\"cleanable\", \"mass_mailing\", \"non_mass_mailing\"],"
    "  \"heuristics\": true, \"macros\": true, \"scripts\": true}},"
    " \"actions\": {\"intercept\": \"quarantine\","
    "  \"notify\": [{\"template\": \"Virus detection\", \"to\": [\"admin\"]}]}},"
    "{\"name\": \"Spam or Phish\", \"default\": true, \"enabled\": false, \"direction\": \"inbound\","
    " \"notes\": \"Moat default rule: spam, phishing and malicious URLs are quarantined.\","
    " \"criteria\": {\"spam\": {\"level\": \"moderate\", \"phishing\": true, \"web_reputation\": true}},"
    " \"actions\": {\"intercept\": \"quarantine\"}},"
    "{\"name\": \"Newsletter or spam-like\", \"default\": true, \"enabled\": false, \"direction\": \"inbound\","
    " \"notes\": \"Moat default rule: newsletters and marketing mail get a subject tag.\","
    " \"criteria\": {\"spam\": {\"graymail\": true}},"
    " \"actions\": {\"intercept\": \"none\", \"tag_subject\": \"[Newsletter]\", \"tag_skip_signed\": true}},"
    "{\"name\": \"Probable BEC threat\", \"default\": true, \"enabled\": false, \"direction\": \"inbound\","
    " \"notes\": \"Moat default rule: likely business email compromise is quarantined.\","
    " \"criteria\": {\"spam\": {\"bec\": [\"engine\", \"writing_style\", \"probable\"]}},"
    " \"actions\": {\"intercept\": \"quarantine\"}},"
    "{\"name\": \"Outbound protection\", \"default\": true, \"enabled\": false, \"direction\": \"outbound\","
    " \"notes\": \"Moat default rule: outgoing malware and phishing is quarantined and the administrator "
    "notified.\","
    " \"criteria\": {\"virus\": {\"types\": [\"cleanable\", \"mass_mailing\", \"non_mass_mailing\"],"
    "  \"heuristics\": true, \"macros\": true}, \"spam\": {\"phishing\": true}},"
    " \"actions\": {\"intercept\": \"quarantine\","
    "  \"notify\": [{\"template\": \"Security settings violation\", \"to\": [\"admin\"]}]}}"
    "]";

/* import_one - import a one-tenant document; 0, 1 (user error in err), -1 */
static int import_one(struct store *st, json_t *tenant, char *err, size_t errsz)
{
    json_t *doc = json_pack("{s:[O]}", "tenants", tenant);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!text)
        fatal("out of memory");
    int rc = store_import_json(st, text, strlen(text), false, err, errsz);
    free(text);
    return rc == 0 ? 0 : rc == 1 ? 1 : -1;
}

static const char SQL_TENANT_EXISTS[] = "SELECT company_id FROM tenants WHERE company_id = ?";

int store_tenant_create(struct store *st, const char *company_id, const char *name, const char *admin_email,
                        char *err, size_t errsz)
{
    char cid[64];
    const char *why = store_syntax_company_id(company_id, cid, sizeof cid);
    err[0] = '\0';
    if (why) {
        char esc[100];
        snprintf(err, errsz, "company ID \"%s\": %s", log_escape(company_id, strlen(company_id), esc, sizeof esc),
                 why);
        return 1;
    }
    sqlite3_stmt *s = store_stmt(st, SQL_TENANT_EXISTS);
    if (!s)
        return -1;
    store_bind_text(s, 1, cid);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW) {
        snprintf(err, errsz, "company ID %s is already taken", cid);
        return 1;
    }
    if (rc != SQLITE_DONE)
        return -1;
    json_error_t je;
    json_t *pols = json_loads(DEFAULT_POLICIES, 0, &je);
    if (!pols)
        fatal("default policies: %s", je.text);
    json_t *t = json_pack("{s:s,s:s,s:o}", "company_id", cid, "name", name && name[0] ? name : cid, "policies",
                          pols);
    if (admin_email && admin_email[0])
        json_object_set_new(t, "admin_email", json_string(admin_email));
    char e2[512];
    rc = import_one(st, t, e2, sizeof e2);
    json_decref(t);
    if (rc == 1) {
        /* the document paths mean nothing to this caller: keep the reason */
        const char *p = strstr(e2, ": ");
        snprintf(err, errsz, "%s", p && strncmp(e2, "tenants[0].", 11) == 0 ? e2 + 11 : e2);
    } else if (rc < 0) {
        snprintf(err, errsz, "%s", e2);
    }
    return rc;
}

int store_domain_add(struct store *st, const char *company_id, const char *domain, const char *server, char *err,
                     size_t errsz)
{
    return store_domain_add_settings(st, company_id, domain, server, NULL, err, errsz);
}

int store_domain_add_settings(struct store *st, const char *company_id, const char *domain, const char *server,
                              const struct json_t *settings, char *err, size_t errsz)
{
    char e2[512];
    err[0] = '\0';
    char *text = store_export_json(st, company_id, e2, sizeof e2);
    if (!text) {
        snprintf(err, errsz, "no tenant %s", company_id);
        return 1;
    }
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    json_t *t = json_array_get(json_object_get(root, "tenants"), 0);
    if (!t) {
        json_decref(root);
        snprintf(err, errsz, "no tenant %s", company_id);
        return 1;
    }
    char name[STORE_DOMAIN_MAX + 1];
    const char *why = store_syntax_domain(domain, true, name, sizeof name);
    if (why) {
        char esc[300];
        snprintf(err, errsz, "domain \"%s\": %s", log_escape(domain, strlen(domain), esc, sizeof esc), why);
        json_decref(root);
        return 1;
    }
    json_t *doms = json_object_get(t, "domains");
    for (size_t i = 0; i < json_array_size(doms); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(doms, i), "name")), name) == 0) {
            snprintf(err, errsz, "%s is already a domain of %s", name, company_id);
            json_decref(root);
            return 1;
        }
    struct store_domain_claim *c = NULL;
    size_t nc = 0;
    if (store_domain_claims(st, name, NULL, &c, &nc) < 0) {
        json_decref(root);
        return -1;
    }
    bool taken = nc > 0 && c[0].verified;
    store_domain_claims_free(c, nc);
    if (taken) {
        snprintf(err, errsz, "%s is already verified by another tenant", name);
        json_decref(root);
        return 1;
    }
    char host[256] = "";
    uint16_t port = 25;
    if (server && server[0] && core_parse_hostport(server, host, sizeof host, &port) < 0)
        core_strlcpy(host, server, sizeof host);
    json_t *d = json_pack("{s:s,s:[{s:s,s:i,s:i}]}", "name", name, "inbound_servers", "host", host[0] ? host : name,
                          "port", (int)port, "preference", 10);
    /* the caller's inbound servers and outbound protection replace the
     * defaults; the tenant document's validation checks them */
    static const char *const own[] = {"inbound_servers", "outbound", NULL};
    for (size_t i = 0; settings && own[i]; i++) {
        json_t *v = json_object_get(settings, own[i]);
        if (v)
            json_object_set_new(d, own[i], json_deep_copy(v));
    }
    char prefix[40];
    snprintf(prefix, sizeof prefix, "tenants[0].domains[%zu].", json_array_size(doms));
    json_array_append_new(doms, d);
    int rc = import_one(st, t, e2, sizeof e2);
    json_decref(root);
    if (rc != 0) {
        size_t pl = strlen(prefix);
        snprintf(err, errsz, "%s", strncmp(e2, prefix, pl) == 0 ? e2 + pl : strncmp(e2, prefix, 11) == 0 ? e2 + 11 : e2);
    }
    return rc;
}

/* ---------------------------------------------------------------- claims */
#define CLAIM_COLS                                                                                            \
    "SELECT t.company_id, d.name, d.verification_token, t.name, t.admin_email, d.verified,"                  \
    " COALESCE(d.verified_at, 0), d.verified_via, d.check_next, COALESCE(d.check_last, 0), d.check_failures," \
    " d.check_result, d.record_missing FROM domains d JOIN tenants t ON t.id = d.tenant_id "
static const char SQL_CLAIMS[] = CLAIM_COLS "WHERE d.name = ? ORDER BY d.verified DESC, d.created";
static const char SQL_CLAIMS_OF[] = CLAIM_COLS "WHERE d.name = ? AND t.company_id = ?";
/* verified by the operator (import --trust-domains) is not re-checked: they vouched for it */
static const char SQL_DUE[] = CLAIM_COLS "WHERE d.check_next <= ? AND (d.verified = 0 OR d.verified_via IN ('txt', 'mx'))"
                                        " ORDER BY d.check_next LIMIT ?";

void store_domain_claims_free(struct store_domain_claim *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(c[i].tenant_name);
        free(c[i].admin_email);
        free(c[i].verified_via);
        free(c[i].check_result);
    }
    free(c);
}

/* claims_read - rows of a CLAIM_COLS statement (bound) into *out */
static int claims_read(struct store *st, sqlite3_stmt *s, struct store_domain_claim **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 4;
            *out = xrealloc(*out, cap * sizeof **out);
        }
        struct store_domain_claim *c = &(*out)[(*n)++];
        memset(c, 0, sizeof *c);
        core_strlcpy(c->company_id, (const char *)sqlite3_column_text(s, 0), sizeof c->company_id);
        core_strlcpy(c->domain, (const char *)sqlite3_column_text(s, 1), sizeof c->domain);
        core_strlcpy(c->token, (const char *)sqlite3_column_text(s, 2), sizeof c->token);
        c->tenant_name = store_col_dup(s, 3);
        c->admin_email = store_col_dup(s, 4);
        c->verified = sqlite3_column_int(s, 5) != 0;
        c->verified_at = sqlite3_column_double(s, 6);
        c->verified_via = store_col_dup(s, 7);
        c->check_next = sqlite3_column_double(s, 8);
        c->check_last = sqlite3_column_double(s, 9);
        c->check_failures = (unsigned)sqlite3_column_int(s, 10);
        c->check_result = store_col_dup(s, 11);
        c->record_missing = sqlite3_column_int(s, 12) != 0;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_log_error(st, "domain claims");
        store_domain_claims_free(*out, *n);
        *out = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

int store_domain_claims(struct store *st, const char *domain, const char *company_id,
                        struct store_domain_claim **out, size_t *n)
{
    sqlite3_stmt *s = store_stmt(st, company_id ? SQL_CLAIMS_OF : SQL_CLAIMS);
    if (!s)
        return -1;
    store_bind_text(s, 1, domain);
    if (company_id)
        store_bind_text(s, 2, company_id);
    return claims_read(st, s, out, n);
}

int store_domain_due(struct store *st, double now, size_t limit, struct store_domain_claim **out, size_t *n)
{
    sqlite3_stmt *s = store_stmt(st, SQL_DUE);
    if (!s)
        return -1;
    sqlite3_bind_double(s, 1, now);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)(limit ? limit : 100));
    return claims_read(st, s, out, n);
}

static const char SQL_CHECK_SOON[] = "UPDATE domains SET check_next = 0 WHERE name = ? AND tenant_id = "
                                     "(SELECT id FROM tenants WHERE company_id = ?)";

int store_domain_check_soon(struct store *st, const char *company_id, const char *domain)
{
    sqlite3_stmt *s = store_stmt(st, SQL_CHECK_SOON);
    if (!s)
        return -1;
    store_bind_text(s, 1, domain);
    store_bind_text(s, 2, company_id);
    if (store_step_done(st, s) < 0)
        return -1;
    return sqlite3_changes(st->db) ? 0 : 1;
}

/* ---------------------------------------------------------------- check results */
static const char SQL_CLAIM_ROW[] =
    "SELECT d.id, d.verified, d.record_missing, d.tenant_id FROM domains d JOIN tenants t ON t.id = d.tenant_id"
    " WHERE d.name = ? AND t.company_id = ?";
static const char SQL_OTHER_VERIFIED[] = "SELECT COUNT(*) FROM domains WHERE name = ? AND verified = 1 AND id <> ?";
static const char SQL_TENANT_VERIFIED[] = "SELECT COUNT(*) FROM domains WHERE tenant_id = ? AND verified = 1";
static const char SQL_CHECK_STATE[] =
    "UPDATE domains SET check_next = ?, check_last = ?, check_failures = ?, check_result = ?,"
    " record_missing = ? WHERE id = ?";
static const char SQL_CHECK_FAILS[] = "SELECT check_failures FROM domains WHERE id = ?";
static const char SQL_SET_VERIFIED[] =
    "UPDATE domains SET verified = 1, verified_at = ?, verified_via = ? WHERE id = ?";
static const char SQL_DEFAULTS_OF[] = "SELECT id, doc FROM policies WHERE tenant_id = ? AND enabled = 0";
static const char SQL_POLICY_ENABLE[] = "UPDATE policies SET enabled = 1, doc = ? WHERE id = ?";

/* count1 - a COUNT(*) with one or two integer/text bindings; -1 on error */
static long long count_stmt(struct store *st, const char *sql, const char *text, int64_t id)
{
    sqlite3_stmt *s = store_stmt(st, sql);
    if (!s)
        return -1;
    int k = 1;
    if (text)
        store_bind_text(s, k++, text);
    sqlite3_bind_int64(s, k, id);
    long long v = -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return v;
}

/* activate_defaults - enable the tenant's disabled default rules */
static int activate_defaults(struct store *st, int64_t tid, const char *company_id, const char *actor)
{
    sqlite3_stmt *s = store_stmt(st, SQL_DEFAULTS_OF);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, tid);
    int64_t ids[64];
    char *docs[64];
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < 64) {
        json_t *p = json_loads((const char *)sqlite3_column_text(s, 1), 0, NULL);
        if (p && json_is_true(json_object_get(p, "default"))) {
            json_object_set_new(p, "enabled", json_true());
            ids[n] = sqlite3_column_int64(s, 0);
            docs[n] = json_dumps(p, JSON_COMPACT);
            if (!docs[n])
                fatal("out of memory");
            n++;
        }
        json_decref(p);
    }
    sqlite3_reset(s);
    int ret = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? 0 : -1;
    for (size_t i = 0; i < n; i++) {
        if (ret == 0) {
            sqlite3_stmt *u = store_stmt(st, SQL_POLICY_ENABLE);
            if (!u)
                ret = -1;
            else {
                store_bind_text(u, 1, docs[i]);
                sqlite3_bind_int64(u, 2, ids[i]);
                ret = store_step_done(st, u);
            }
        }
        free(docs[i]);
    }
    if (ret == 0 && n > 0) {
        char detail[64];
        snprintf(detail, sizeof detail, "{\"default_rules\":%zu}", n);
        ret = store_audit(st, actor, "policy.defaults_activated", company_id, detail);
    }
    return ret;
}

int store_domain_check_done(struct store *st, const char *company_id, const char *domain, enum store_check outcome,
                            const char *method, const char *reason, double next, const char *actor,
                            enum store_check_change *change, bool *first)
{
    *change = STORE_CHANGE_NONE;
    *first = false;
    if (store_begin(st) < 0)
        return -1;
    sqlite3_stmt *s = store_stmt(st, SQL_CLAIM_ROW);
    if (!s)
        goto fail;
    store_bind_text(s, 1, domain);
    store_bind_text(s, 2, company_id);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        store_rollback(st);
        return rc == SQLITE_DONE ? 1 : -1;
    }
    int64_t did = sqlite3_column_int64(s, 0), tid = sqlite3_column_int64(s, 3);
    bool verified = sqlite3_column_int(s, 1) != 0, missing = sqlite3_column_int(s, 2) != 0;
    sqlite3_reset(s);
    long long fails = count_stmt(st, SQL_CHECK_FAILS, NULL, did);
    if (fails < 0)
        goto fail;
    double now = core_now();
    char detail[700];
    char esc[600];
    log_escape(reason ? reason : "", reason ? strlen(reason) : 0, esc, sizeof esc);
    bool bump = false;
    if (outcome == STORE_CHECK_OK && !verified) {
        long long other = count_stmt(st, SQL_OTHER_VERIFIED, domain, did);
        if (other < 0)
            goto fail;
        if (other > 0) {
            *change = STORE_CHANGE_TAKEN;
        } else {
            long long mine = count_stmt(st, SQL_TENANT_VERIFIED, NULL, tid);
            if (mine < 0 || !(s = store_stmt(st, SQL_SET_VERIFIED)))
                goto fail;
            sqlite3_bind_double(s, 1, now);
            store_bind_text(s, 2, method);
            sqlite3_bind_int64(s, 3, did);
            if (store_step_done(st, s) < 0)
                goto fail;
            snprintf(detail, sizeof detail, "{\"domain\":\"%s\",\"verified\":true,\"via\":\"%s\"}", domain,
                     method ? method : "dns");
            if (store_audit(st, actor, "domain.verified", company_id, detail) < 0)
                goto fail;
            *change = STORE_CHANGE_VERIFIED;
            *first = mine == 0;
            if (*first && activate_defaults(st, tid, company_id, actor) < 0)
                goto fail;
            bump = true;
        }
    } else if (verified && outcome == STORE_CHECK_FAIL && !missing) {
        snprintf(detail, sizeof detail, "{\"domain\":\"%s\",\"reason\":\"%s\"}", domain, esc);
        if (store_audit(st, actor, "domain.record_missing", company_id, detail) < 0)
            goto fail;
        *change = STORE_CHANGE_RECORD_MISSING;
        missing = true;
    } else if (verified && outcome == STORE_CHECK_OK && missing) {
        snprintf(detail, sizeof detail, "{\"domain\":\"%s\",\"via\":\"%s\"}", domain, method ? method : "dns");
        if (store_audit(st, actor, "domain.record_restored", company_id, detail) < 0)
            goto fail;
        *change = STORE_CHANGE_RECORD_RESTORED;
        missing = false;
    }
    if (!(s = store_stmt(st, SQL_CHECK_STATE)))
        goto fail;
    sqlite3_bind_double(s, 1, next);
    sqlite3_bind_double(s, 2, now);
    sqlite3_bind_int64(s, 3, outcome == STORE_CHECK_OK ? 0 : fails + 1);
    store_bind_text(s, 4, reason);
    sqlite3_bind_int(s, 5, missing);
    sqlite3_bind_int64(s, 6, did);
    if (store_step_done(st, s) < 0)
        goto fail;
    if (bump && store_version_bump(st) < 0)
        goto fail;
    if (store_commit(st) < 0)
        goto fail;
    return 0;
fail:
    store_rollback(st);
    *change = STORE_CHANGE_NONE;
    *first = false;
    return -1;
}
