/*
 * detect_tenant.c - the tenant half of struct detect_context, built from the
 * tenant's configuration document (the JSON of `moatctl export`, which the
 * store has already validated and normalised).
 *
 *   detect_tenant_from_json   parse one tenant's document into owned lists
 *   detect_tenant_context     point a detect_context at those lists
 *   detect_tenant_passwords   the tenant's file passwords (mime_limits)
 *   detect_tenant_add_style   a writing-style profile (from the store)
 *   detect_tenant_free
 *
 * Used by the scan workers (cached per tenant and configuration version)
 * and by `moatctl scan --tenant`. Every list is capped again here (the
 * document is trusted, but a bound costs nothing): DETECT_TENANT_MAX_LIST.
 */
#include "core/core.h"

#include <ctype.h>

#include <jansson.h>

#include "detect/detect_int.h"

#define DETECT_TENANT_MAX_LIST 10000
#define DETECT_TENANT_MAX_DOC (64 * 1024 * 1024)

struct strlist {
    char **v;
    size_t n;
};

struct detect_tenant {
    char *company_id;
    struct strlist own, hpd, blocked, approved, passwords;
    struct detect_hp_user *users;
    size_t nusers;
    struct style_profile **styles;
    size_t nstyles;
};

/* strlist_from - the strings of a JSON array (non-strings skipped) */
static void strlist_from(struct strlist *l, json_t *arr, bool lower)
{
    size_t n = json_array_size(arr);
    if (n > DETECT_TENANT_MAX_LIST)
        n = DETECT_TENANT_MAX_LIST;
    l->v = xcalloc(n ? n : 1, sizeof *l->v);
    l->n = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (!s)
            continue;
        char *c = xstrdup(s);
        if (lower)
            for (char *p = c; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        l->v[l->n++] = c;
    }
}

static void strlist_free(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

/* find_tenant - the tenant object named company_id (or the only one) */
static json_t *find_tenant(json_t *doc, const char *company_id)
{
    json_t *ts = json_object_get(doc, "tenants");
    if (!json_is_array(ts))
        return NULL;
    if (!company_id)
        return json_array_size(ts) == 1 ? json_array_get(ts, 0) : NULL;
    for (size_t i = 0; i < json_array_size(ts); i++) {
        json_t *t = json_array_get(ts, i);
        const char *c = json_string_value(json_object_get(t, "company_id"));
        if (c && strcasecmp(c, company_id) == 0)
            return t;
    }
    return NULL;
}

struct detect_tenant *detect_tenant_from_json(const char *json, size_t len, const char *company_id, char *err,
                                              size_t errsz)
{
    json_error_t je;
    if (len > DETECT_TENANT_MAX_DOC) {
        snprintf(err, errsz, "tenant document too large");
        return NULL;
    }
    json_t *doc = json_loadb(json, len, 0, &je);
    if (!doc) {
        snprintf(err, errsz, "tenant document: %s", je.text);
        return NULL;
    }
    json_t *t = find_tenant(doc, company_id);
    if (!t) {
        snprintf(err, errsz, "tenant %s not in the document", company_id ? company_id : "(only one)");
        json_decref(doc);
        return NULL;
    }
    struct detect_tenant *dt = xcalloc(1, sizeof *dt);
    const char *cid = json_string_value(json_object_get(t, "company_id"));
    dt->company_id = xstrdup(cid ? cid : "");
    json_t *doms = json_object_get(t, "domains");
    json_t *names = json_array();
    for (size_t i = 0; i < json_array_size(doms); i++) {
        json_t *n = json_object_get(json_array_get(doms, i), "name");
        if (json_is_string(n))
            json_array_append(names, n);
    }
    strlist_from(&dt->own, names, true);
    json_decref(names);
    strlist_from(&dt->hpd, json_object_get(t, "high_profile_domains"), true);
    json_t *wr = json_object_get(t, "web_reputation");
    strlist_from(&dt->blocked, json_object_get(wr, "blocked"), false);
    strlist_from(&dt->approved, json_object_get(wr, "approved"), false);
    strlist_from(&dt->passwords, json_object_get(t, "file_passwords"), false);
    json_t *users = json_object_get(t, "high_profile_users");
    size_t nu = json_array_size(users);
    if (nu > DETECT_TENANT_MAX_LIST)
        nu = DETECT_TENANT_MAX_LIST;
    dt->users = xcalloc(nu ? nu : 1, sizeof *dt->users);
    for (size_t i = 0; i < nu; i++) {
        json_t *u = json_array_get(users, i);
        const char *name = json_string_value(json_object_get(u, "name"));
        const char *addr = json_string_value(json_object_get(u, "address"));
        if (!name || !addr)
            continue;
        char *a = xstrdup(addr);
        for (char *p = a; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        dt->users[dt->nusers].name = xstrdup(name);
        dt->users[dt->nusers].address = a;
        dt->nusers++;
    }
    json_decref(doc);
    return dt;
}

void detect_tenant_context(const struct detect_tenant *t, struct detect_context *ctx)
{
    if (!t)
        return;
    ctx->own_domains = (const char *const *)t->own.v;
    ctx->nown_domains = t->own.n;
    ctx->hp_domains = (const char *const *)t->hpd.v;
    ctx->nhp_domains = t->hpd.n;
    ctx->hp_users = t->users;
    ctx->nhp_users = t->nusers;
    ctx->url_blocked = (const char *const *)t->blocked.v;
    ctx->nurl_blocked = t->blocked.n;
    ctx->url_approved = (const char *const *)t->approved.v;
    ctx->nurl_approved = t->approved.n;
    ctx->style_profiles = (const struct style_profile *const *)t->styles;
    ctx->nstyle_profiles = t->nstyles;
}

int detect_tenant_add_style(struct detect_tenant *t, const unsigned char *blob, size_t len, char *err,
                            size_t errsz)
{
    if (t->nstyles >= DETECT_TENANT_MAX_LIST) {
        snprintf(err, errsz, "too many writing-style profiles");
        return -1;
    }
    struct style_profile *p = style_profile_parse(blob, len, err, errsz);
    if (!p)
        return -1;
    t->styles = xrealloc(t->styles, (t->nstyles + 1) * sizeof *t->styles);
    t->styles[t->nstyles++] = p;
    return 0;
}

const char *const *detect_tenant_passwords(const struct detect_tenant *t, size_t *n)
{
    *n = t ? t->passwords.n : 0;
    return t ? (const char *const *)t->passwords.v : NULL;
}

const char *detect_tenant_company(const struct detect_tenant *t)
{
    return t ? t->company_id : "";
}

void detect_tenant_free(struct detect_tenant *t)
{
    if (!t)
        return;
    free(t->company_id);
    strlist_free(&t->own);
    strlist_free(&t->hpd);
    strlist_free(&t->blocked);
    strlist_free(&t->approved);
    strlist_free(&t->passwords);
    for (size_t i = 0; i < t->nusers; i++) {
        free((char *)t->users[i].name);
        free((char *)t->users[i].address);
    }
    free(t->users);
    for (size_t i = 0; i < t->nstyles; i++)
        style_profile_free(t->styles[i]);
    free(t->styles);
    free(t);
}
