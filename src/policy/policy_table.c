/*
 * policy_table.c - every tenant's compiled policy set, by company ID: the
 * main process keeps one (rebuilt when the tenant data changes) for the
 * decisions it takes itself before a message is scanned - the blocked
 * senders refused at RCPT time.
 *
 *   policy_table_build   from the `moatctl export` document of all tenants
 *   policy_table_find    a tenant's set (borrowed while the table is held)
 *   policy_table_ref / _unref   shared between the SMTP threads (atomic)
 *
 * A tenant whose document does not compile is left out (and named in the
 * log by the caller through err): its mail is then scanned without its
 * RCPT-time refusals rather than refused altogether.
 */
#include "core/core.h"
#include "policy/policy.h"

#include <ctype.h>

struct policy_entry {
    char *company_id;
    struct policy_set *set;
};

struct policy_table {
    int refs;
    struct policy_entry *v; /* sorted by company_id (lower-case) */
    size_t n;
};

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct policy_entry *)a)->company_id, ((const struct policy_entry *)b)->company_id);
}

struct policy_table *policy_table_build(const char *json, size_t len, char *err, size_t errsz)
{
    json_error_t je;
    json_t *doc = json_loadb(json, len, 0, &je);
    json_t *ts = json_object_get(doc, "tenants");
    if (!json_is_array(ts)) {
        snprintf(err, errsz, "tenant document: %s", doc ? "no tenants list" : je.text);
        json_decref(doc);
        return NULL;
    }
    err[0] = '\0';
    struct policy_table *t = xcalloc(1, sizeof *t);
    t->refs = 1;
    t->v = xcalloc(json_array_size(ts) + 1, sizeof *t->v);
    for (size_t i = 0; i < json_array_size(ts); i++) {
        json_t *tenant = json_array_get(ts, i);
        const char *cid = json_string_value(json_object_get(tenant, "company_id"));
        if (!cid)
            continue;
        char why[300];
        struct policy_set *set = policy_compile_tenant(tenant, why, sizeof why);
        if (!set) {
            if (!err[0])
                snprintf(err, errsz, "tenant %s: %s", cid, why);
            continue;
        }
        char *c = xstrdup(cid);
        for (char *p = c; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        t->v[t->n].company_id = c;
        t->v[t->n].set = set;
        t->n++;
    }
    json_decref(doc);
    qsort(t->v, t->n, sizeof *t->v, entry_cmp);
    return t;
}

struct policy_set *policy_table_find(const struct policy_table *t, const char *company_id)
{
    if (!t || !company_id)
        return NULL;
    char key[256];
    size_t n = 0;
    for (; company_id[n] && n + 1 < sizeof key; n++)
        key[n] = (char)tolower((unsigned char)company_id[n]);
    key[n] = '\0';
    struct policy_entry k = {.company_id = key};
    struct policy_entry *e = bsearch(&k, t->v, t->n, sizeof *t->v, entry_cmp);
    return e ? e->set : NULL;
}

struct policy_table *policy_table_ref(struct policy_table *t)
{
    if (t)
        __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
    return t;
}

void policy_table_unref(struct policy_table *t)
{
    if (!t || __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].company_id);
        policy_set_unref(t->v[i].set);
    }
    free(t->v);
    free(t);
}
