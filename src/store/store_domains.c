/*
 * store_domains.c - the domain map: an immutable snapshot of every domain
 * (routing, TLS, recipient list, outbound sending servers) that the SMTP and
 * delivery threads read without touching the database.
 *
 *   store_domain_map_load      build a snapshot (refcount 1)
 *   domain_map_ref / _unref    share it between threads (atomic count)
 *   domain_map_find            exact, case-insensitive lookup (O(log n))
 *   domain_entry_has_recipient recipient list check (O(log n))
 *   domain_entry_sends_from    outbound: is an IP one of the domain's sending servers
 *
 * Names are stored lower-case ASCII (store_doc.c normalises them), so lookups
 * lower-case the key and compare bytes. A trailing dot is not stripped: the
 * caller decides what "example.com." means. Several tenants may have added
 * the same name; the entries are sorted verified-first so the verified claim
 * wins.
 *
 * Sending servers named by provider ("microsoft365", "google_workspace")
 * are expanded at load into the ranges of data/lists/sending-providers.txt
 * ($MOAT_LISTS_DIR overrides the directory; at most STORE_PROVIDER_MAX
 * ranges), so the SMTP side only matches CIDRs.
 */
#include "store/store_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>

struct domain_map {
    atomic_int refs;
    struct domain_entry *entries; /* sorted by name, verified first */
    size_t n;
};

static const char SQL_MAP_DOMAINS[] =
    "SELECT d.id, d.name, t.company_id, d.verified, d.tls, d.outbound_enabled, d.has_recipients,"
    " d.verification_token FROM domains d JOIN tenants t ON t.id = d.tenant_id"
    " ORDER BY d.name, d.verified DESC, d.id";
static const char SQL_MAP_SERVERS[] =
    "SELECT host, port, preference FROM domain_servers WHERE domain_id = ? ORDER BY position";
static const char SQL_MAP_RCPTS[] =
    "SELECT address FROM domain_recipients WHERE domain_id = ? ORDER BY address";
static const char SQL_MAP_SENDING[] =
    "SELECT cidr FROM domain_sending_servers WHERE domain_id = ? ORDER BY position";

static void entry_free(struct domain_entry *d)
{
    free(d->name);
    free(d->company_id);
    free(d->servers);
    for (size_t i = 0; i < d->nrecipients; i++)
        free(d->recipients[i]);
    free(d->recipients);
    for (size_t i = 0; i < d->nsending_servers; i++)
        free(d->sending_servers[i]);
    free(d->sending_servers);
    free(d->verification_token);
}

static void map_free(struct domain_map *m)
{
    for (size_t i = 0; i < m->n; i++)
        entry_free(&m->entries[i]);
    free(m->entries);
    free(m);
}

/* load_strings - one text column of a per-domain query into *out */
static int load_strings(struct store *st, const char *sql, int64_t id, char ***out, size_t *n)
{
    sqlite3_stmt *s = store_stmt(st, sql);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, id);
    int rc;
    size_t cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *out = xrealloc(*out, cap * sizeof **out);
        }
        (*out)[(*n)++] = store_col_dup(s, 0);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int load_servers(struct store *st, struct domain_entry *d, int64_t id)
{
    sqlite3_stmt *s = store_stmt(st, SQL_MAP_SERVERS);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, id);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        d->servers = xrealloc(d->servers, (d->nservers + 1) * sizeof *d->servers);
        struct domain_server *sv = &d->servers[d->nservers++];
        const unsigned char *h = sqlite3_column_text(s, 0);
        core_strlcpy(sv->host, h ? (const char *)h : "", sizeof sv->host);
        sv->port = (uint16_t)sqlite3_column_int(s, 1);
        sv->preference = (uint32_t)sqlite3_column_int(s, 2);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

#define STORE_PROVIDER_MAX 4096

struct provider_range {
    char provider[32];
    char cidr[64];
};

/* providers_load - the ranges of data/lists/sending-providers.txt (*n may be
 * 0: a missing file is logged once per load, provider names then match nothing) */
static struct provider_range *providers_load(size_t *n)
{
    char path[1100];
    const char *d = getenv("MOAT_LISTS_DIR");
    if (d && *d)
        snprintf(path, sizeof path, "%s/sending-providers.txt", d);
    else
        snprintf(path, sizeof path, "%s/lists/sending-providers.txt", MOAT_DATADIR);
    *n = 0;
    FILE *f = fopen(path, "re");
    if (!f) {
        log_warn("store sending providers not loaded path=%s errno=%d", path, errno);
        return NULL;
    }
    struct provider_range *r = NULL;
    size_t cap = 0;
    char line[256];
    while (fgets(line, sizeof line, f) && *n < STORE_PROVIDER_MAX) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char prov[32], cidr[64];
        if (sscanf(line, "%31s %63s", prov, cidr) != 2)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            r = xrealloc(r, cap * sizeof *r);
        }
        core_strlcpy(r[*n].provider, prov, sizeof r[*n].provider);
        core_strlcpy(r[*n].cidr, cidr, sizeof r[*n].cidr);
        (*n)++;
    }
    fclose(f);
    return r;
}

/* expand_providers - replace provider names in d's sending servers by their ranges */
static void expand_providers(struct domain_entry *d, const struct provider_range *pr, size_t npr)
{
    size_t n = 0, cap = d->nsending_servers;
    char **out = xcalloc(cap ? cap : 1, sizeof *out);
    for (size_t i = 0; i < d->nsending_servers; i++) {
        char *e = d->sending_servers[i];
        if (!e || strchr(e, '.') || strchr(e, ':')) {
            if (n == cap)
                out = xrealloc(out, (cap = cap * 2 + 8) * sizeof *out);
            out[n++] = e;
            continue;
        }
        for (size_t k = 0; k < npr; k++) {
            if (strcmp(pr[k].provider, e) != 0)
                continue;
            if (n == cap)
                out = xrealloc(out, (cap = cap * 2 + 8) * sizeof *out);
            out[n++] = xstrdup(pr[k].cidr);
        }
        free(e);
    }
    free(d->sending_servers);
    d->sending_servers = out;
    d->nsending_servers = n;
}

bool domain_entry_sends_from(const struct domain_entry *d, const char *ip)
{
    if (!d || !d->verified || !d->outbound_enabled || !ip)
        return false;
    for (size_t i = 0; i < d->nsending_servers; i++)
        if (core_cidr_match(d->sending_servers[i], ip))
            return true;
    return false;
}

struct domain_map *store_domain_map_load(struct store *st)
{
    struct domain_map *m = xcalloc(1, sizeof *m);
    atomic_init(&m->refs, 1);
    size_t cap = 0;
    int64_t *ids = NULL;
    if (store_begin_read(st) < 0)
        goto fail;
    sqlite3_stmt *s = store_stmt(st, SQL_MAP_DOMAINS);
    if (!s)
        goto fail;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (m->n == cap) {
            cap = cap ? cap * 2 : 64;
            m->entries = xrealloc(m->entries, cap * sizeof *m->entries);
            ids = xrealloc(ids, cap * sizeof *ids);
        }
        struct domain_entry *d = &m->entries[m->n];
        memset(d, 0, sizeof *d);
        ids[m->n] = sqlite3_column_int64(s, 0);
        d->name = store_col_dup(s, 1);
        d->company_id = store_col_dup(s, 2);
        d->verified = sqlite3_column_int(s, 3) != 0;
        const char *tls = (const char *)sqlite3_column_text(s, 4);
        d->tls = tls && strcmp(tls, "required") == 0 ? DOMAIN_TLS_REQUIRED
                 : tls && strcmp(tls, "none") == 0   ? DOMAIN_TLS_NONE
                                                     : DOMAIN_TLS_OPPORTUNISTIC;
        d->outbound_enabled = sqlite3_column_int(s, 5) != 0;
        d->recipients = NULL;
        if (sqlite3_column_int(s, 6))
            d->recipients = xcalloc(1, sizeof *d->recipients); /* a list, maybe filled below */
        d->verification_token = store_col_dup(s, 7);
        m->n++;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        goto fail;
    struct provider_range *pr = NULL;
    size_t npr = 0;
    bool providers_read = false;
    for (size_t i = 0; i < m->n; i++) {
        struct domain_entry *d = &m->entries[i];
        if (load_servers(st, d, ids[i]) < 0 ||
            load_strings(st, SQL_MAP_SENDING, ids[i], &d->sending_servers, &d->nsending_servers) < 0) {
            free(pr);
            goto fail;
        }
        bool named = false;
        for (size_t k = 0; k < d->nsending_servers && !named; k++)
            named = d->sending_servers[k] && !strchr(d->sending_servers[k], '.') &&
                    !strchr(d->sending_servers[k], ':');
        if (named) {
            if (!providers_read) {
                pr = providers_load(&npr);
                providers_read = true;
            }
            expand_providers(d, pr, npr);
        }
        if (d->recipients) {
            char **r = NULL;
            size_t nr = 0;
            if (load_strings(st, SQL_MAP_RCPTS, ids[i], &r, &nr) < 0) {
                for (size_t k = 0; k < nr; k++)
                    free(r[k]);
                free(r);
                free(pr);
                goto fail;
            }
            free(d->recipients);
            d->recipients = r ? r : xcalloc(1, sizeof *r);
            d->nrecipients = nr;
        }
    }
    free(pr);
    store_rollback(st);
    free(ids);
    return m;
fail:
    store_log_error(st, "domain map");
    store_rollback(st);
    free(ids);
    map_free(m);
    return NULL;
}

void domain_map_ref(struct domain_map *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void domain_map_unref(struct domain_map *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        map_free(m);
}

/* lower_copy - ASCII lower-case copy; -1 if it does not fit */
static int lower_copy(const char *in, char *out, size_t outsz)
{
    size_t n = strlen(in);
    if (n >= outsz)
        return -1;
    for (size_t i = 0; i <= n; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    return 0;
}

const struct domain_entry *domain_map_find(const struct domain_map *m, const char *domain)
{
    char key[STORE_DOMAIN_MAX + 2];
    if (!m || !domain || lower_copy(domain, key, sizeof key) < 0)
        return NULL;
    size_t lo = 0, hi = m->n; /* first entry with name >= key */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(m->entries[mid].name, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < m->n && strcmp(m->entries[lo].name, key) == 0)
        return &m->entries[lo];
    return NULL;
}

bool domain_entry_has_recipient(const struct domain_entry *d, const char *addr)
{
    char key[STORE_ADDR_MAX + 2];
    if (!d->recipients)
        return true;
    if (!addr || lower_copy(addr, key, sizeof key) < 0)
        return false;
    size_t lo = 0, hi = d->nrecipients;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(d->recipients[mid], key);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}
