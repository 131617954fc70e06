/*
 * store_doc.c - the tenant configuration document: strict validation,
 * import and export (INTERFACES.md "Tenant configuration document").
 *
 *   store_import_json / store_import_json_report   validate, then apply in one transaction
 *   store_export_json                              the document of one tenant or all
 *
 * Validation turns the input into a canonical document (every key present
 * in a fixed order, defaults filled in, domains lower-cased/punycoded) and
 * rejects anything else: unknown keys, wrong types, values out of range,
 * duplicates, more than STORE_LIST_MAX entries in a sender list. The first
 * problem found is reported with its JSON path ("tenants[0].domains[1].
 * inbound_servers[0].port: must be an integer 1..65535"); nothing is applied
 * then. Export prints the canonical form back, so export | import | export
 * is stable and importing the same document twice changes nothing (the
 * config version only moves when a tenant actually changes).
 *
 * A tenant in the document replaces the stored one as a whole; tenants not
 * in the document are left alone. Domains keep their verification token and
 * (without trust_domains) their verified flag across imports; the read-only
 * export fields "status" and "verification_token" (domains) and
 * "execution_order" (policies, policy_execution_order) are ignored on import.
 * A domain claimed by a tenant outside the document is refused ("already
 * used by another tenant"). Policies are stored as their canonical JSON per
 * row; routing data (servers, recipients, sending servers) also in columns
 * for the domain map.
 */
#include "store/store_int.h"

#include <ctype.h>
#include <jansson.h>

#include "notify/notify.h"
#include "policy/policy.h"

#define STORE_LIST_MAX 5000          /* approved / blocked senders (PRODUCT.md §3) */
#define STORE_MAX_TENANTS 10000      /* per document */
#define STORE_MAX_DOMAINS 1000       /* per tenant */
#define STORE_MAX_POLICIES 1000      /* per tenant */
#define STORE_MAX_SERVERS 32         /* inbound servers per domain */
#define STORE_MAX_SENDING 1000       /* outbound sending servers per domain */
#define STORE_MAX_RECIPIENTS 1000000 /* recipient list of one domain */
#define STORE_MAX_HIGH_PROFILE 5000
#define STORE_MAX_URL_LIST 5000      /* web reputation blocked / approved, each */
#define STORE_MAX_PASSWORDS 100      /* file password analysis: tenant list */
#define STORE_MAX_TEMPLATES 100      /* the tenant's own notification templates */
#define STORE_MAX_ITEMS 1000 /* criteria lists, keywords */
#define STORE_MAX_NOTIFY 32

/* ---------------------------------------------------------------- validation context */
struct vctx {
    char path[512];
    size_t plen;
    char *err;
    size_t errsz;
};

static size_t vpush_key(struct vctx *v, const char *key)
{
    size_t mark = v->plen;
    char k[80];
    log_escape(key, strlen(key), k, sizeof k);
    int n = snprintf(v->path + v->plen, sizeof v->path - v->plen, "%s%s", v->plen ? "." : "", k);
    if (n > 0)
        v->plen += (size_t)n < sizeof v->path - v->plen ? (size_t)n : sizeof v->path - v->plen - 1;
    return mark;
}

static size_t vpush_index(struct vctx *v, size_t i)
{
    size_t mark = v->plen;
    int n = snprintf(v->path + v->plen, sizeof v->path - v->plen, "[%zu]", i);
    if (n > 0)
        v->plen += (size_t)n < sizeof v->path - v->plen ? (size_t)n : sizeof v->path - v->plen - 1;
    return mark;
}

static void vpop(struct vctx *v, size_t mark)
{
    v->plen = mark;
    v->path[mark] = '\0';
}

/* verr - "<path>: <message>"; always -1 */
static int verr(struct vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int verr(struct vctx *v, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (v->plen)
        snprintf(v->err, v->errsz, "%s: %s", v->path, msg);
    else
        snprintf(v->err, v->errsz, "%s", msg);
    return -1;
}

/* verr_at - error about member k of the current object */
static int verr_at(struct vctx *v, const char *k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int verr_at(struct vctx *v, const char *k, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t m = vpush_key(v, k);
    verr(v, "%s", msg);
    vpop(v, m);
    return -1;
}

/* quoted - the value in double quotes for an error message: control
 * characters, quotes and backslashes escaped, cut after 60 bytes (at a
 * character boundary) */
static const char *quoted(const char *s, char *buf, size_t bufsz)
{
    size_t n = strlen(s), cut = n > 60 ? 60 : n, o = 0;
    while (cut < n && cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--;
    if (bufsz < 8)
        return "\"\"";
    buf[o++] = '"';
    for (size_t i = 0; i < cut && bufsz - o > 8; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            o += (size_t)snprintf(buf + o, bufsz - o, "\\x%02x", c);
        else if (c == '"' || c == '\\')
            o += (size_t)snprintf(buf + o, bufsz - o, "\\%c", c);
        else
            buf[o++] = (char)c;
    }
    if (cut < n && bufsz - o > 5) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* v_keys - o must be an object whose keys are all in allowed (NULL-ended) */
static int v_keys(struct vctx *v, json_t *o, const char *const *allowed)
{
    const char *key;
    json_t *val;
    if (!json_is_object(o))
        return verr(v, "must be an object");
    json_object_foreach(o, key, val)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(allowed[i], key) == 0;
        if (!ok)
            return verr_at(v, key, "unknown key");
    }
    return 0;
}

static int v_bool(struct vctx *v, json_t *o, const char *k, bool def, json_t *out, bool *val)
{
    json_t *x = json_object_get(o, k);
    bool b = def;
    if (x) {
        if (!json_is_boolean(x))
            return verr_at(v, k, "must be true or false");
        b = json_is_true(x);
    }
    json_object_set_new(out, k, json_boolean(b));
    if (val)
        *val = b;
    return 0;
}

enum { T_REQUIRED = 1, T_NULLABLE = 2, T_MULTILINE = 4, T_NONEMPTY = 8 };

/* text_problem - NULL when s is acceptable text under the flags */
static const char *text_problem(const char *s, unsigned fl, size_t max)
{
    size_t n = strlen(s);
    if ((fl & T_NONEMPTY) && n == 0)
        return "must not be empty";
    if (n > max)
        return "is too long";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && !((fl & T_MULTILINE) && (c == '\n' || c == '\r' || c == '\t'))) || c == 0x7F)
            return "must not contain control characters";
    }
    return NULL;
}

/* v_text - string member k copied to out (absent: def, NULL def = null) */
static int v_text(struct vctx *v, json_t *o, const char *k, unsigned fl, size_t max, const char *def,
                  json_t *out, const char **val)
{
    json_t *x = json_object_get(o, k);
    const char *s = def;
    if (!x && (fl & T_REQUIRED))
        return verr_at(v, k, "is required");
    if (x && json_is_null(x)) {
        if (!(fl & T_NULLABLE))
            return verr_at(v, k, (fl & T_REQUIRED) ? "is required (a string)" : "must be a string");
        s = NULL;
    } else if (x) {
        if (!json_is_string(x))
            return verr_at(v, k, (fl & T_NULLABLE) ? "must be a string or null" : "must be a string");
        s = json_string_value(x);
        const char *why = text_problem(s, fl, max);
        if (why) {
            if (strcmp(why, "is too long") == 0)
                return verr_at(v, k, "is too long (at most %zu bytes)", max);
            return verr_at(v, k, "%s", why);
        }
    }
    json_object_set_new(out, k, s ? json_string(s) : json_null());
    if (val)
        *val = s;
    return 0;
}

static int v_int(struct vctx *v, json_t *o, const char *k, json_int_t min, json_int_t max, json_int_t def,
                 json_t *out, json_int_t *val)
{
    json_t *x = json_object_get(o, k);
    json_int_t n = def;
    if (x) {
        if (!json_is_integer(x) || json_integer_value(x) < min || json_integer_value(x) > max)
            return verr_at(v, k, "must be an integer %lld..%lld", (long long)min, (long long)max);
        n = json_integer_value(x);
    }
    json_object_set_new(out, k, json_integer(n));
    if (val)
        *val = n;
    return 0;
}

static int enum_index(const char *const *values, const char *s)
{
    for (int i = 0; values[i]; i++)
        if (strcmp(values[i], s) == 0)
            return i;
    return -1;
}

static void enum_list(const char *const *values, char *buf, size_t bufsz)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; values[i] && o < bufsz; i++) {
        int n = snprintf(buf + o, bufsz - o, "%s%s", i ? ", " : "", values[i]);
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

/* v_enum_value - x must be one of values; the error is at the current path */
static int v_enum_value(struct vctx *v, json_t *x, const char *const *values, const char **val)
{
    char list[300];
    if (!json_is_string(x) || enum_index(values, json_string_value(x)) < 0) {
        enum_list(values, list, sizeof list);
        return verr(v, "must be one of: %s", list);
    }
    *val = json_string_value(x);
    return 0;
}

/* v_enum - member k, one of values (absent: def; NULL def = required);
 * nullable: JSON null accepted and kept */
static int v_enum(struct vctx *v, json_t *o, const char *k, const char *const *values, const char *def,
                  bool nullable, json_t *out, const char **val)
{
    json_t *x = json_object_get(o, k);
    const char *s = def;
    if (!x && !def && !nullable)
        return verr_at(v, k, "is required");
    if (x && json_is_null(x) && nullable) {
        s = NULL;
    } else if (x) {
        size_t m = vpush_key(v, k);
        if (v_enum_value(v, x, values, &s) < 0)
            return -1;
        vpop(v, m);
    }
    json_object_set_new(out, k, s ? json_string(s) : json_null());
    if (val)
        *val = s;
    return 0;
}

/* ---------------------------------------------------------------- lists of strings */
typedef const char *(*norm_fn)(const char *in, char *out, size_t outsz);

struct dup_item {
    const char *s;
    size_t idx;
};

static int dup_cmp(const void *a, const void *b)
{
    const struct dup_item *x = a, *y = b;
    int c = strcasecmp(x->s, y->s);
    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* v_no_dups - every string of arr differs (case-insensitively); the error
 * names the later element. Runs in n log n. */
static int v_no_dups(struct vctx *v, json_t *arr, const char *what)
{
    size_t n = json_array_size(arr);
    if (n < 2)
        return 0;
    struct dup_item *items = xcalloc(n, sizeof *items);
    for (size_t i = 0; i < n; i++) {
        items[i].s = json_string_value(json_array_get(arr, i));
        items[i].idx = i;
    }
    qsort(items, n, sizeof *items, dup_cmp);
    size_t bad = SIZE_MAX, first = 0;
    for (size_t i = 1; i < n; i++)
        if (strcasecmp(items[i].s, items[i - 1].s) == 0 && items[i].idx < bad)
            bad = items[i].idx;
    if (bad != SIZE_MAX) {
        /* find the first occurrence of the duplicated value */
        const char *s = json_string_value(json_array_get(arr, bad));
        for (size_t i = 0; i < bad; i++) {
            if (strcasecmp(json_string_value(json_array_get(arr, i)), s) == 0) {
                first = i;
                break;
            }
        }
        char q[128];
        size_t m = vpush_index(v, bad);
        verr(v, "duplicate %s %s (same as [%zu])", what, quoted(s, q, sizeof q), first);
        vpop(v, m);
        free(items);
        return -1;
    }
    free(items);
    return 0;
}

/* v_strings - array member k of strings, each checked and normalised by
 * norm (NULL: text_problem only), at most max, at least min, no duplicates.
 * Absent: [] (min must be 0) */
static int v_strings(struct vctx *v, json_t *o, const char *k, size_t min, size_t max, norm_fn norm,
                     const char *what, json_t *out, json_t **val)
{
    json_t *x = json_object_get(o, k);
    json_t *arr = json_array();
    size_t m = vpush_key(v, k);
    if (x && !json_is_array(x)) {
        json_decref(arr);
        return verr(v, "must be a list of strings (%s)", what);
    }
    size_t n = x ? json_array_size(x) : 0;
    if (n > max) {
        json_decref(arr);
        return verr(v, "too many entries (%zu; at most %zu)", n, max);
    }
    if (n < min) {
        json_decref(arr);
        if (min == 1)
            return verr(v, "must list at least one %s", what);
        return verr(v, "must list at least %zu entries", min);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(x, i);
        size_t mi = vpush_index(v, i);
        if (!json_is_string(e)) {
            json_decref(arr);
            return verr(v, "must be a string (%s)", what);
        }
        const char *s = json_string_value(e);
        char buf[1100], q[128];
        if (norm) {
            const char *why = norm(s, buf, sizeof buf);
            if (why) {
                json_decref(arr);
                return verr(v, "%s is not a valid %s: %s", quoted(s, q, sizeof q), what, why);
            }
        } else {
            const char *why = text_problem(s, T_NONEMPTY, 255);
            if (why) {
                json_decref(arr);
                return verr(v, "%s", why);
            }
            core_strlcpy(buf, s, sizeof buf);
        }
        json_array_append_new(arr, json_string(buf));
        vpop(v, mi);
    }
    if (v_no_dups(v, arr, what) < 0) {
        json_decref(arr);
        return -1;
    }
    vpop(v, m);
    json_object_set(out, k, arr);
    if (val)
        *val = arr;
    json_decref(arr);
    return 0;
}

/* v_enum_strings - array member k of enum values, no duplicates */
static int v_enum_strings(struct vctx *v, json_t *o, const char *k, const char *const *values, size_t min,
                          json_t *def, json_t *out)
{
    json_t *x = json_object_get(o, k);
    size_t m = vpush_key(v, k);
    if (!x) {
        json_object_set_new(out, k, def);
        vpop(v, m);
        return 0;
    }
    json_decref(def);
    char list[300];
    enum_list(values, list, sizeof list);
    if (!json_is_array(x))
        return verr(v, "must be a list of: %s", list);
    if (json_array_size(x) < min)
        return verr(v, "must list at least one of: %s", list);
    json_t *arr = json_array();
    for (size_t i = 0; i < json_array_size(x); i++) {
        const char *s;
        size_t mi = vpush_index(v, i);
        if (v_enum_value(v, json_array_get(x, i), values, &s) < 0) {
            json_decref(arr);
            return -1;
        }
        json_array_append_new(arr, json_string(s));
        vpop(v, mi);
    }
    if (v_no_dups(v, arr, "value") < 0) {
        json_decref(arr);
        return -1;
    }
    vpop(v, m);
    json_object_set_new(out, k, arr);
    return 0;
}

/* ---------------------------------------------------------------- value checks */
static const char *norm_domain_fqdn(const char *in, char *out, size_t outsz)
{
    return store_syntax_domain(in, true, out, outsz);
}

/* norm_sending_server - an outbound sending server: an IP address or CIDR,
 * or a provider of data/lists/sending-providers.txt ("microsoft365",
 * "google_workspace": their published ranges) */
static const char *norm_sending_server(const char *in, char *out, size_t outsz)
{
    static const char *const providers[] = {"microsoft365", "google_workspace", NULL};
    for (size_t i = 0; providers[i]; i++)
        if (strcasecmp(in, providers[i]) == 0) {
            core_strlcpy(out, providers[i], outsz);
            return NULL;
        }
    /* the CIDR's own reason; the label names the provider names */
    return store_syntax_cidr(in, out, outsz);
}

static const char *norm_sender_entry(const char *in, char *out, size_t outsz)
{
    if (strchr(in, '@'))
        return store_syntax_address_pattern(in, out, outsz);
    const char *why = store_syntax_cidr(in, out, outsz);
    return why ? "must be an address, *@domain, IP address or CIDR" : NULL;
}

/* norm_url_entry - a web reputation entry: a domain (matches its
 * subdomains too; a leading "*." is accepted and dropped) or an http(s) URL
 * prefix (scheme and host lower-cased) */
static const char *norm_url_entry(const char *in, char *out, size_t outsz)
{
    const char *why = text_problem(in, T_NONEMPTY, 1000);
    if (why)
        return why;
    for (const char *p = in; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return "must not contain spaces or control characters";
    const char *rest = NULL;
    if (strncasecmp(in, "http://", 7) == 0)
        rest = in + 7;
    else if (strncasecmp(in, "https://", 8) == 0)
        rest = in + 8;
    else if (strstr(in, "://"))
        return "URL prefixes must start with http:// or https://";
    if (!rest) {
        if (strncmp(in, "*.", 2) == 0)
            in += 2;
        if (strchr(in, '/'))
            return "give a domain, or a URL prefix starting with http:// or https://";
        return store_syntax_domain(in, true, out, outsz);
    }
    size_t hl = strcspn(rest, "/:?#");
    char host[STORE_DOMAIN_MAX + 1], h[STORE_DOMAIN_MAX + 1];
    if (hl == 0 || hl > STORE_DOMAIN_MAX)
        return "the URL has no valid host";
    memcpy(host, rest, hl);
    host[hl] = '\0';
    if (store_syntax_domain(host, false, h, sizeof h) && store_syntax_cidr(host, h, sizeof h))
        return "the URL has no valid host";
    int n = snprintf(out, outsz, "%s%s%s", rest == in + 7 ? "http://" : "https://", h, rest + hl);
    if (n < 0 || (size_t)n >= outsz)
        return "too long";
    return NULL;
}

/* norm_password - a file password: any printable text up to 128 bytes */
static const char *norm_password(const char *in, char *out, size_t outsz)
{
    const char *why = text_problem(in, T_NONEMPTY, 128);
    if (why)
        return why;
    core_strlcpy(out, in, outsz);
    return NULL;
}

static const char *norm_extension(const char *in, char *out, size_t outsz)
{
    size_t n = strlen(in);
    if (n == 0 || n > 32)
        return "must be 1 to 32 characters";
    if (in[0] == '.')
        return "give the extension without the leading dot";
    if (n >= outsz)
        return "too long";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (!isalnum(c) && !strchr("_+~-.", c))
            return "only letters, digits and _ + ~ - . are allowed";
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    if (out[n - 1] == '.' || strstr(out, ".."))
        return "misplaced dot";
    return NULL;
}

static const char *norm_filename_pattern(const char *in, char *out, size_t outsz)
{
    const char *why = text_problem(in, T_NONEMPTY, 255);
    if (why)
        return why;
    if (strchr(in, '/') || strchr(in, '\\'))
        return "must be a file name pattern without / or \\";
    core_strlcpy(out, in, outsz);
    return NULL;
}

/* v_size - a size such as "10M" or a byte count; null allowed (absent: null) */
static int v_size(struct vctx *v, json_t *o, const char *k, json_t *out, bool *set)
{
    json_t *x = json_object_get(o, k);
    uint64_t n;
    *set = false;
    if (!x || json_is_null(x)) {
        json_object_set_new(out, k, json_null());
        return 0;
    }
    if (json_is_integer(x) && json_integer_value(x) >= 0) {
        json_object_set(out, k, x);
    } else if (json_is_string(x) && core_parse_size(json_string_value(x), &n) == 0) {
        json_object_set(out, k, x);
    } else {
        return verr_at(v, k, "must be a size such as \"10M\" (bytes, or a number with k, M or G) or null");
    }
    *set = true;
    return 0;
}

/* v_regex - compile-check one keyword pattern exactly as the rule engine
 * compiles it (Vectorscan, "(?i)" prefix: ignore case; policy.h) */
static int v_regex(struct vctx *v, const char *pat)
{
    char why[256], q[128];
    if (!*pat || strcmp(pat, "(?i)") == 0)
        return verr(v, "must not be empty");
    if (policy_pattern_check(pat, why, sizeof why))
        return verr(v, "invalid regular expression %s: %s", quoted(pat, q, sizeof q), why);
    return 0;
}

/* v_address_member - member k: an address (nullable unless required) */
static int v_address_member(struct vctx *v, json_t *o, const char *k, bool required, json_t *out,
                            const char **val)
{
    json_t *x = json_object_get(o, k);
    char a[STORE_ADDR_MAX + 1], q[128];
    if (val)
        *val = NULL;
    if (!x || json_is_null(x)) {
        if (required)
            return verr_at(v, k, "is required (an e-mail address)");
        json_object_set_new(out, k, json_null());
        return 0;
    }
    if (!json_is_string(x))
        return verr_at(v, k, required ? "must be an e-mail address" : "must be an e-mail address or null");
    const char *why = store_syntax_address(json_string_value(x), a, sizeof a);
    if (why)
        return verr_at(v, k, "%s is not a valid e-mail address: %s",
                       quoted(json_string_value(x), q, sizeof q), why);
    json_object_set_new(out, k, json_string(a));
    if (val)
        *val = json_string_value(json_object_get(out, k));
    return 0;
}

/* ---------------------------------------------------------------- domains */
static const char *const TLS_VALUES[] = {"opportunistic", "required", "none", NULL};

static int v_server(struct vctx *v, json_t *x, json_t *out)
{
    static const char *const keys[] = {"host", "port", "preference", NULL};
    if (v_keys(v, x, keys) < 0)
        return -1;
    json_t *h = json_object_get(x, "host");
    char host[256], q[128];
    if (!h)
        return verr_at(v, "host", "is required");
    if (!json_is_string(h))
        return verr_at(v, "host", "must be a string (an IP address or host name)");
    const char *why = store_syntax_host(json_string_value(h), host, sizeof host);
    if (why)
        return verr_at(v, "host", "%s is not a valid IP address or host name: %s",
                       quoted(json_string_value(h), q, sizeof q), why);
    json_object_set_new(out, "host", json_string(host));
    if (v_int(v, x, "port", 1, 65535, 25, out, NULL) < 0 ||
        v_int(v, x, "preference", 0, 65535, 10, out, NULL) < 0)
        return -1;
    return 0;
}

static int v_domain(struct vctx *v, json_t *x, json_t *out)
{
    static const char *const keys[] = {"name",     "verified", "inbound_servers",    "tls", "recipients",
                                       "outbound", "status",   "verification_token", NULL};
    char name[STORE_DOMAIN_MAX + 1], q[128];
    if (v_keys(v, x, keys) < 0)
        return -1;
    json_t *n = json_object_get(x, "name");
    if (!n)
        return verr_at(v, "name", "is required");
    if (!json_is_string(n))
        return verr_at(v, "name", "must be a string (a domain name)");
    const char *why = store_syntax_domain(json_string_value(n), true, name, sizeof name);
    if (why)
        return verr_at(v, "name", "%s is not a valid domain name: %s",
                       quoted(json_string_value(n), q, sizeof q), why);
    json_object_set_new(out, "name", json_string(name));
    if (v_bool(v, x, "verified", false, out, NULL) < 0)
        return -1;

    json_t *srv = json_object_get(x, "inbound_servers");
    size_t m = vpush_key(v, "inbound_servers");
    if (!srv)
        return verr(v, "is required (at least one inbound server)");
    if (!json_is_array(srv))
        return verr(v, "must be a list of servers");
    if (json_array_size(srv) == 0)
        return verr(v, "must list at least one inbound server");
    if (json_array_size(srv) > STORE_MAX_SERVERS)
        return verr(v, "too many entries (%zu; at most %d)", json_array_size(srv), STORE_MAX_SERVERS);
    json_t *servers = json_array();
    json_object_set_new(out, "inbound_servers", servers);
    for (size_t i = 0; i < json_array_size(srv); i++) {
        size_t mi = vpush_index(v, i);
        json_t *s = json_object();
        json_array_append_new(servers, s);
        if (v_server(v, json_array_get(srv, i), s) < 0)
            return -1;
        for (size_t j = 0; j < i; j++) {
            json_t *p = json_array_get(servers, j);
            if (strcmp(json_string_value(json_object_get(p, "host")),
                       json_string_value(json_object_get(s, "host"))) == 0 &&
                json_integer_value(json_object_get(p, "port")) ==
                    json_integer_value(json_object_get(s, "port")))
                return verr(v, "duplicate server (same as inbound_servers[%zu])", j);
        }
        vpop(v, mi);
    }
    vpop(v, m);

    if (v_enum(v, x, "tls", TLS_VALUES, "opportunistic", false, out, NULL) < 0)
        return -1;

    json_t *r = json_object_get(x, "recipients");
    if (!r || json_is_null(r)) {
        json_object_set_new(out, "recipients", json_null());
    } else {
        m = vpush_key(v, "recipients");
        if (!json_is_array(r) || json_array_size(r) == 0)
            return verr(v, "must be null (accept every recipient) or a non-empty list of addresses");
        if (json_array_size(r) > STORE_MAX_RECIPIENTS)
            return verr(v, "too many entries (%zu; at most %d)", json_array_size(r), STORE_MAX_RECIPIENTS);
        vpop(v, m);
        json_t *rl;
        if (v_strings(v, x, "recipients", 1, STORE_MAX_RECIPIENTS, store_syntax_address, "address", out,
                      &rl) < 0)
            return -1;
        for (size_t i = 0; i < json_array_size(rl); i++) {
            const char *a = json_string_value(json_array_get(rl, i));
            if (strcmp(strrchr(a, '@') + 1, name) != 0) {
                m = vpush_key(v, "recipients");
                vpush_index(v, i);
                return verr(v, "%s is not an address at %s", quoted(a, q, sizeof q), name);
            }
        }
    }

    json_t *ob = json_object_get(x, "outbound");
    json_t *oo = json_object();
    json_object_set_new(out, "outbound", oo);
    m = vpush_key(v, "outbound");
    if (!ob || json_is_null(ob)) {
        json_object_set_new(oo, "enabled", json_false());
        json_object_set_new(oo, "sending_servers", json_array());
    } else {
        static const char *const okeys[] = {"enabled", "sending_servers", NULL};
        bool en;
        json_t *ss;
        if (v_keys(v, ob, okeys) < 0 || v_bool(v, ob, "enabled", false, oo, &en) < 0 ||
            v_strings(v, ob, "sending_servers", 0, STORE_MAX_SENDING, norm_sending_server, "IP address or CIDR",
                      oo, &ss) < 0)
            return -1;
        if (en && json_array_size(ss) == 0)
            return verr_at(v, "sending_servers",
                           "must list at least one IP address or CIDR when outbound is enabled");
    }
    vpop(v, m);
    /* "status" and "verification_token" are read-only export fields: ignored */
    return 0;
}

/* ---------------------------------------------------------------- policies */
static const char *const DIRECTION_VALUES[] = {"inbound", "outbound", NULL};
static const char *const INTERCEPT_VALUES[] = {"none",       "delete",           "deliver_now",
                                               "quarantine", "change_recipient", NULL};
static const char *const SPAM_LEVELS[] = {"lowest", "low", "moderate", "high", "highest", NULL};
static const char *const VIRUS_TYPES[] = {"cleanable", "mass_mailing", "non_mass_mailing", NULL};
static const char *const BEC_VALUES[] = {"engine", "writing_style", "probable", NULL};
static const char *const SCAN_EXCLUSIONS[] = {"archive_limits", "encrypted", "malformed", "scan_failure",
                                              NULL};
static const char *const ATTACHMENT_TYPES[] = {
    "executable", "script", "archive", "document", "office_macro", "pdf", "image",
    "audio",      "video",  "html",    "text",     "disk_image",   NULL};
static const char *const KEYWORD_WHERE[] = {"subject", "body", "headers", "attachments", NULL};
static const char *const NOTIFY_SPECIAL[] = {"admin", "sender", "recipient", NULL};

/* v_who - recipients/senders: "organization", "any" or a list of addresses and
 * patterns (star-at-domain) */
static int v_who(struct vctx *v, json_t *o, const char *k, const char *def, json_t *out)
{
    json_t *x = json_object_get(o, k);
    if (!x) {
        json_object_set_new(out, k, json_string(def));
        return 0;
    }
    if (json_is_string(x)) {
        const char *s = json_string_value(x);
        if (strcmp(s, "organization") != 0 && strcmp(s, "any") != 0)
            return verr_at(v, k,
                           "must be \"organization\", \"any\" or a list of addresses and *@domain patterns");
        json_object_set(out, k, x);
        return 0;
    }
    if (!json_is_array(x) || json_array_size(x) == 0)
        return verr_at(v, k,
                       "must be \"organization\", \"any\" or a non-empty list of addresses and *@domain "
                       "patterns");
    return v_strings(v, o, k, 1, STORE_LIST_MAX, store_syntax_address_pattern, "address or *@domain", out,
                     NULL);
}

static int v_virus(struct vctx *v, json_t *x, json_t *out)
{
    static const char *const keys[] = {"types", "heuristics", "macros", "deep_analysis", "scripts", NULL};
    json_t *def = json_array();
    for (size_t i = 0; VIRUS_TYPES[i]; i++)
        json_array_append_new(def, json_string(VIRUS_TYPES[i]));
    if (v_keys(v, x, keys) < 0) {
        json_decref(def);
        return -1;
    }
    if (v_enum_strings(v, x, "types", VIRUS_TYPES, 1, def, out) < 0 ||
        v_bool(v, x, "heuristics", false, out, NULL) < 0 || v_bool(v, x, "macros", false, out, NULL) < 0 ||
        v_bool(v, x, "deep_analysis", false, out, NULL) < 0 || v_bool(v, x, "scripts", false, out, NULL) < 0)
        return -1;
    return 0;
}

static int v_spam(struct vctx *v, json_t *x, json_t *out)
{
    static const char *const keys[] = {"level",          "phishing",           "graymail", "bec",
                                       "web_reputation", "social_engineering", NULL};
    const char *level;
    bool ph, gm, wr, se;
    if (v_keys(v, x, keys) < 0 || v_enum(v, x, "level", SPAM_LEVELS, NULL, true, out, &level) < 0 ||
        v_bool(v, x, "phishing", false, out, &ph) < 0 || v_bool(v, x, "graymail", false, out, &gm) < 0 ||
        v_enum_strings(v, x, "bec", BEC_VALUES, 0, json_array(), out) < 0 ||
        v_bool(v, x, "web_reputation", false, out, &wr) < 0 ||
        v_bool(v, x, "social_engineering", false, out, &se) < 0)
        return -1;
    if (!level && !ph && !gm && !wr && !se && json_array_size(json_object_get(out, "bec")) == 0)
        return verr(v, "enables nothing: set level or one of phishing, graymail, bec, web_reputation, "
                       "social_engineering");
    return 0;
}

static int v_keyword(struct vctx *v, json_t *x, json_t *out)
{
    static const char *const keys[] = {"pattern", "in", NULL};
    const char *pat;
    if (v_keys(v, x, keys) < 0 || v_text(v, x, "pattern", T_REQUIRED | T_NONEMPTY, 1024, NULL, out, &pat) < 0)
        return -1;
    size_t m = vpush_key(v, "pattern");
    if (v_regex(v, pat) < 0)
        return -1;
    vpop(v, m);
    json_t *def = json_array();
    json_array_append_new(def, json_string("subject"));
    json_array_append_new(def, json_string("body"));
    return v_enum_strings(v, x, "in", KEYWORD_WHERE, 1, def, out);
}

static int v_content(struct vctx *v, json_t *x, json_t *out)
{
    static const char *const keys[] = {"attachment_extensions",
                                       "attachment_names",
                                       "attachment_types",
                                       "attachment_size_over",
                                       "password_protected",
                                       "message_size_over",
                                       "keywords",
                                       "recipients_over",
                                       NULL};
    json_t *ext, *names;
    bool asz, pw, msz;
    if (v_keys(v, x, keys) < 0 ||
        v_strings(v, x, "attachment_extensions", 0, STORE_MAX_ITEMS, norm_extension, "extension", out, &ext) <
            0 ||
        v_strings(v, x, "attachment_names", 0, STORE_MAX_ITEMS, norm_filename_pattern, "file name pattern",
                  out, &names) < 0 ||
        v_enum_strings(v, x, "attachment_types", ATTACHMENT_TYPES, 0, json_array(), out) < 0 ||
        v_size(v, x, "attachment_size_over", out, &asz) < 0 ||
        v_bool(v, x, "password_protected", false, out, &pw) < 0 ||
        v_size(v, x, "message_size_over", out, &msz) < 0)
        return -1;

    json_t *kw = json_object_get(x, "keywords");
    json_t *kws = json_array();
    json_object_set_new(out, "keywords", kws);
    if (kw) {
        size_t m = vpush_key(v, "keywords");
        if (!json_is_array(kw))
            return verr(v, "must be a list of {\"pattern\", \"in\"} objects");
        if (json_array_size(kw) > STORE_MAX_ITEMS)
            return verr(v, "too many entries (%zu; at most %d)", json_array_size(kw), STORE_MAX_ITEMS);
        for (size_t i = 0; i < json_array_size(kw); i++) {
            size_t mi = vpush_index(v, i);
            json_t *k = json_object();
            json_array_append_new(kws, k);
            if (v_keyword(v, json_array_get(kw, i), k) < 0)
                return -1;
            vpop(v, mi);
        }
        vpop(v, m);
    }
    json_t *ro = json_object_get(x, "recipients_over");
    if (ro && !json_is_null(ro)) {
        if (v_int(v, x, "recipients_over", 1, 100000, 0, out, NULL) < 0)
            return -1;
    } else {
        json_object_set_new(out, "recipients_over", json_null());
    }
    bool any = json_array_size(ext) || json_array_size(names) ||
               json_array_size(json_object_get(out, "attachment_types")) || asz || pw || msz ||
               json_array_size(kws) || !json_is_null(json_object_get(out, "recipients_over"));
    if (!any)
        return verr(
            v, "has no condition (set attachment_extensions, attachment_names, attachment_types, "
               "attachment_size_over, password_protected, message_size_over, keywords or recipients_over)");
    return 0;
}

static int v_criteria(struct vctx *v, json_t *x, json_t *out)
{
    static const char *const keys[] = {"virus", "spam", "content", "scan_exclusion", NULL};
    int (*const fn[])(struct vctx *, json_t *, json_t *) = {v_virus, v_spam, v_content, NULL};
    size_t n = 0;
    if (v_keys(v, x, keys) < 0)
        return -1;
    for (size_t i = 0; i < 3; i++) {
        json_t *c = json_object_get(x, keys[i]);
        if (!c || json_is_null(c))
            continue;
        size_t m = vpush_key(v, keys[i]);
        json_t *co = json_object();
        json_object_set_new(out, keys[i], co);
        if (fn[i](v, c, co) < 0)
            return -1;
        vpop(v, m);
        n++;
    }
    json_t *se = json_object_get(x, "scan_exclusion");
    if (se && !json_is_null(se)) {
        if (v_enum_strings(v, x, "scan_exclusion", SCAN_EXCLUSIONS, 1, json_array(), out) < 0)
            return -1;
        n++;
    }
    if (n == 0)
        return verr(v, "needs at least one criterion (virus, spam, content or scan_exclusion)");
    return 0;
}

static int v_notify(struct vctx *v, json_t *x, json_t *out)
{
    static const char *const keys[] = {"template", "to", NULL};
    if (v_keys(v, x, keys) < 0 || v_text(v, x, "template", T_REQUIRED | T_NONEMPTY, 128, NULL, out, NULL) < 0)
        return -1;
    json_t *to = json_object_get(x, "to");
    size_t m = vpush_key(v, "to");
    if (!to)
        return verr(v, "is required (admin, sender, recipient or addresses)");
    if (!json_is_array(to) || json_array_size(to) == 0)
        return verr(v, "must be a non-empty list of \"admin\", \"sender\", \"recipient\" or addresses");
    if (json_array_size(to) > STORE_MAX_NOTIFY)
        return verr(v, "too many entries (%zu; at most %d)", json_array_size(to), STORE_MAX_NOTIFY);
    json_t *arr = json_array();
    json_object_set_new(out, "to", arr);
    for (size_t i = 0; i < json_array_size(to); i++) {
        json_t *e = json_array_get(to, i);
        char a[STORE_ADDR_MAX + 1], q[128];
        size_t mi = vpush_index(v, i);
        if (!json_is_string(e))
            return verr(v, "must be \"admin\", \"sender\", \"recipient\" or an address");
        const char *s = json_string_value(e);
        if (enum_index(NOTIFY_SPECIAL, s) >= 0) {
            json_array_append(arr, e);
        } else {
            const char *why = store_syntax_address(s, a, sizeof a);
            if (why)
                return verr(v, "%s is not \"admin\", \"sender\", \"recipient\" or a valid address: %s",
                            quoted(s, q, sizeof q), why);
            json_array_append_new(arr, json_string(a));
        }
        vpop(v, mi);
    }
    vpop(v, m);
    return v_no_dups(v, arr, "entry") < 0 ? -1 : 0;
}

static int v_actions(struct vctx *v, json_t *x, json_t *out)
{
    static const char *const keys[] = {"intercept",   "change_recipient",
                                       "clean",       "delete_attachments",
                                       "x_header",    "stamp",
                                       "tag_subject", "tag_skip_signed",
                                       "notify",      "bcc",
                                       NULL};
    const char *intercept, *cr;
    json_t *empty = json_object();
    if (!x || json_is_null(x))
        x = empty;
    if (v_keys(v, x, keys) < 0 ||
        v_enum(v, x, "intercept", INTERCEPT_VALUES, "none", false, out, &intercept) < 0 ||
        v_address_member(v, x, "change_recipient", false, out, &cr) < 0)
        goto fail;
    if (strcmp(intercept, "change_recipient") == 0 && !cr) {
        verr_at(v, "change_recipient", "is required when intercept is change_recipient");
        goto fail;
    }
    if (strcmp(intercept, "change_recipient") != 0 && cr) {
        verr_at(v, "change_recipient", "must be null unless intercept is change_recipient");
        goto fail;
    }
    if (v_bool(v, x, "clean", false, out, NULL) < 0 ||
        v_bool(v, x, "delete_attachments", false, out, NULL) < 0)
        goto fail;

    json_t *xh = json_object_get(x, "x_header");
    if (!xh || json_is_null(xh)) {
        json_object_set_new(out, "x_header", json_null());
    } else {
        static const char *const xkeys[] = {"name", "value", NULL};
        const char *hn;
        json_t *xo = json_object();
        json_object_set_new(out, "x_header", xo);
        size_t m = vpush_key(v, "x_header");
        if (v_keys(v, xh, xkeys) < 0 ||
            v_text(v, xh, "name", T_REQUIRED | T_NONEMPTY, 76, NULL, xo, &hn) < 0 ||
            v_text(v, xh, "value", T_REQUIRED, 900, NULL, xo, NULL) < 0)
            goto fail;
        for (const char *p = hn; *p; p++) {
            if ((unsigned char)*p <= 32 || (unsigned char)*p >= 127 || *p == ':') {
                verr_at(v, "name", "must be a header field name (printable ASCII without spaces or colon)");
                goto fail;
            }
        }
        vpop(v, m);
    }

    json_t *st = json_object_get(x, "stamp");
    if (!st || json_is_null(st)) {
        json_object_set_new(out, "stamp", json_null());
    } else {
        static const char *const skeys[] = {"text", "html", NULL};
        const char *t, *h;
        json_t *so = json_object();
        json_object_set_new(out, "stamp", so);
        size_t m = vpush_key(v, "stamp");
        if (v_keys(v, st, skeys) < 0 ||
            v_text(v, st, "text", T_NULLABLE | T_MULTILINE | T_NONEMPTY, 10000, NULL, so, &t) < 0 ||
            v_text(v, st, "html", T_NULLABLE | T_MULTILINE | T_NONEMPTY, 10000, NULL, so, &h) < 0)
            goto fail;
        if (!t && !h) {
            verr(v, "needs text or html");
            goto fail;
        }
        vpop(v, m);
    }
    if (v_text(v, x, "tag_subject", T_NULLABLE | T_NONEMPTY, 128, NULL, out, NULL) < 0 ||
        v_bool(v, x, "tag_skip_signed", true, out, NULL) < 0)
        goto fail;

    json_t *nt = json_object_get(x, "notify");
    json_t *na = json_array();
    json_object_set_new(out, "notify", na);
    if (nt && !json_is_null(nt)) {
        size_t m = vpush_key(v, "notify");
        if (!json_is_array(nt)) {
            verr(v, "must be a list of {\"template\", \"to\"} objects");
            goto fail;
        }
        if (json_array_size(nt) > STORE_MAX_NOTIFY) {
            verr(v, "too many entries (%zu; at most %d)", json_array_size(nt), STORE_MAX_NOTIFY);
            goto fail;
        }
        for (size_t i = 0; i < json_array_size(nt); i++) {
            size_t mi = vpush_index(v, i);
            json_t *no = json_object();
            json_array_append_new(na, no);
            if (v_notify(v, json_array_get(nt, i), no) < 0)
                goto fail;
            vpop(v, mi);
        }
        vpop(v, m);
    }
    if (v_address_member(v, x, "bcc", false, out, NULL) < 0)
        goto fail;
    json_decref(empty);
    return 0;
fail:
    json_decref(empty);
    return -1;
}

static int v_policy(struct vctx *v, json_t *x, json_t *out)
{
    static const char *const keys[] = {"name",
                                       "direction",
                                       "enabled",
                                       "notes",
                                       "recipients",
                                       "senders",
                                       "exclude_recipients",
                                       "exclude_senders",
                                       "criteria",
                                       "actions",
                                       "execution_order", /* read-only export field: ignored */
                                       "default",         /* one of Moat's default rules (store_verify.c) */
                                       NULL};
    const char *dir;
    if (v_keys(v, x, keys) < 0 || v_text(v, x, "name", T_REQUIRED | T_NONEMPTY, 200, NULL, out, NULL) < 0 ||
        v_enum(v, x, "direction", DIRECTION_VALUES, NULL, false, out, &dir) < 0 ||
        v_bool(v, x, "enabled", true, out, NULL) < 0 ||
        v_text(v, x, "notes", T_MULTILINE, 4000, "", out, NULL) < 0)
        return -1;
    /* "default": true only (absent = false), so other policies' canonical form is unchanged */
    json_t *dflt = json_object_get(x, "default");
    if (dflt && !json_is_boolean(dflt) && !json_is_null(dflt))
        return verr_at(v, "default", "must be true or false");
    if (json_is_true(dflt))
        json_object_set_new(out, "default", json_true());
    bool in = strcmp(dir, "inbound") == 0;
    if (v_who(v, x, "recipients", in ? "organization" : "any", out) < 0 ||
        v_who(v, x, "senders", in ? "any" : "organization", out) < 0 ||
        v_strings(v, x, "exclude_recipients", 0, STORE_LIST_MAX, store_syntax_address_pattern,
                  "address or *@domain", out, NULL) < 0 ||
        v_strings(v, x, "exclude_senders", 0, STORE_LIST_MAX, store_syntax_address_pattern,
                  "address or *@domain", out, NULL) < 0)
        return -1;
    json_t *c = json_object_get(x, "criteria");
    if (!c || json_is_null(c))
        return verr_at(v, "criteria", "is required (at least one of virus, spam, content, scan_exclusion)");
    size_t m = vpush_key(v, "criteria");
    json_t *co = json_object();
    json_object_set_new(out, "criteria", co);
    if (v_criteria(v, c, co) < 0)
        return -1;
    vpop(v, m);
    m = vpush_key(v, "actions");
    json_t *ao = json_object();
    json_object_set_new(out, "actions", ao);
    if (v_actions(v, json_object_get(x, "actions"), ao) < 0)
        return -1;
    vpop(v, m);
    return 0;
}

/* ---------------------------------------------------------------- tenants */
/* v_objects - array member k of objects, each through fn into out[k] */
static int v_objects(struct vctx *v, json_t *o, const char *k, size_t max,
                     int (*fn)(struct vctx *, json_t *, json_t *), json_t *out)
{
    json_t *x = json_object_get(o, k);
    json_t *arr = json_array();
    json_object_set_new(out, k, arr);
    if (!x || json_is_null(x))
        return 0;
    size_t m = vpush_key(v, k);
    if (!json_is_array(x))
        return verr(v, "must be a list");
    if (json_array_size(x) > max)
        return verr(v, "too many entries (%zu; at most %zu)", json_array_size(x), max);
    for (size_t i = 0; i < json_array_size(x); i++) {
        size_t mi = vpush_index(v, i);
        json_t *e = json_object();
        json_array_append_new(arr, e);
        if (fn(v, json_array_get(x, i), e) < 0)
            return -1;
        vpop(v, mi);
    }
    vpop(v, m);
    return 0;
}

static int v_hp_user(struct vctx *v, json_t *x, json_t *out)
{
    static const char *const keys[] = {"name", "address", NULL};
    if (v_keys(v, x, keys) < 0 || v_text(v, x, "name", T_REQUIRED | T_NONEMPTY, 200, NULL, out, NULL) < 0 ||
        v_address_member(v, x, "address", true, out, NULL) < 0)
        return -1;
    return 0;
}

/* v_web_reputation - {"blocked": [...], "approved": [...]} (absent: empty) */
static int v_web_reputation(struct vctx *v, json_t *x, json_t *out)
{
    static const char *const keys[] = {"blocked", "approved", NULL};
    json_t *w = json_object_get(x, "web_reputation");
    json_t *wo = json_object();
    size_t m = vpush_key(v, "web_reputation");
    if (w && !json_is_object(w)) {
        json_decref(wo);
        return verr(v, "must be an object with \"blocked\" and \"approved\" lists");
    }
    json_t *empty = json_object();
    int rc = v_keys(v, w ? w : empty, keys) < 0 ||
                     v_strings(v, w ? w : empty, "blocked", 0, STORE_MAX_URL_LIST, norm_url_entry,
                               "domain or URL", wo, NULL) < 0 ||
                     v_strings(v, w ? w : empty, "approved", 0, STORE_MAX_URL_LIST, norm_url_entry,
                               "domain or URL", wo, NULL) < 0
                 ? -1
                 : 0;
    json_decref(empty);
    if (rc < 0) {
        json_decref(wo);
        return -1;
    }
    vpop(v, m);
    json_object_set_new(out, "web_reputation", wo);
    return 0;
}

/* v_template - one of the tenant's own notification templates */
static int v_template(struct vctx *v, json_t *x, json_t *out)
{
    static const char *const keys[] = {"name", "lang", "subject", "body", NULL};
    static const char *const langs[] = {"ja", "en", NULL};
    const char *lang = NULL, *subject = NULL, *body = NULL;
    if (v_keys(v, x, keys) < 0 || v_text(v, x, "name", T_REQUIRED | T_NONEMPTY, 128, NULL, out, NULL) < 0 ||
        v_text(v, x, "lang", T_REQUIRED | T_NONEMPTY, 2, NULL, out, &lang) < 0 ||
        v_text(v, x, "subject", T_REQUIRED | T_NONEMPTY, NOTIFY_SUBJECT_MAX, NULL, out, &subject) < 0 ||
        v_text(v, x, "body", T_REQUIRED | T_NONEMPTY | T_MULTILINE, NOTIFY_TEMPLATE_MAX, NULL, out, &body) < 0)
        return -1;
    if (enum_index(langs, lang) < 0)
        return verr_at(v, "lang", "must be \"ja\" or \"en\"");
    return 0;
}

/* template_known - a notify action's template: a shipped default (display
 * name or file stem) or one of the tenant's own, case-insensitively */
static bool template_known(const char *name, json_t *own)
{
    for (const struct notify_default *d = notify_defaults; d->name; d++)
        if (strcasecmp(name, d->name) == 0 || strcasecmp(name, d->stem) == 0)
            return true;
    for (size_t i = 0; i < json_array_size(own); i++)
        if (strcasecmp(name, json_string_value(json_object_get(json_array_get(own, i), "name"))) == 0)
            return true;
    return false;
}

/* v_templates - the tenant's templates (unique name + lang), then every
 * notify action of its policies must name a template that exists */
static int v_templates(struct vctx *v, json_t *x, json_t *out)
{
    if (v_objects(v, x, "notification_templates", STORE_MAX_TEMPLATES, v_template, out) < 0)
        return -1;
    json_t *own = json_object_get(out, "notification_templates");
    for (size_t i = 0; i < json_array_size(own); i++) {
        json_t *a = json_array_get(own, i);
        for (size_t j = 0; j < i; j++) {
            json_t *b = json_array_get(own, j);
            if (strcasecmp(json_string_value(json_object_get(a, "name")),
                           json_string_value(json_object_get(b, "name"))) == 0 &&
                strcmp(json_string_value(json_object_get(a, "lang")),
                       json_string_value(json_object_get(b, "lang"))) == 0) {
                size_t m = vpush_key(v, "notification_templates");
                vpush_index(v, i);
                verr(v, "duplicate template (same name and lang as notification_templates[%zu])", j);
                vpop(v, m);
                return -1;
            }
        }
    }
    json_t *pols = json_object_get(out, "policies");
    for (size_t i = 0; i < json_array_size(pols); i++) {
        json_t *nt = json_object_get(json_object_get(json_array_get(pols, i), "actions"), "notify");
        for (size_t k = 0; k < json_array_size(nt); k++) {
            const char *tpl = json_string_value(json_object_get(json_array_get(nt, k), "template"));
            if (tpl && !template_known(tpl, own)) {
                char q[200];
                size_t m = vpush_key(v, "policies");
                vpush_index(v, i);
                vpush_key(v, "actions");
                vpush_key(v, "notify");
                vpush_index(v, k);
                verr(v, "template %s is neither a default template (Virus detection, Attachment deleted, "
                        "Non-delivery report, Message size exceeded, Security settings violation, Rule "
                        "triggered) nor one of notification_templates",
                     quoted(tpl, q, sizeof q));
                vpop(v, m);
                return -1;
            }
        }
    }
    return 0;
}

/* v_euc_object - the End User Console settings {"enabled", "local_accounts",
 * "enforce_2fa", "quarantine_categories"} (e NULL: the defaults) into *out */
static int v_euc_object(struct vctx *v, json_t *e, json_t **out)
{
    static const char *const keys[] = {"enabled", "local_accounts", "enforce_2fa", "quarantine_categories", NULL};
    json_t *eo = json_object();
    json_t *in = e ? e : eo;
    *out = NULL;
    if ((e && v_keys(v, e, keys) < 0) || v_bool(v, in, "enabled", false, eo, NULL) < 0 ||
        v_bool(v, in, "local_accounts", true, eo, NULL) < 0 || v_bool(v, in, "enforce_2fa", false, eo, NULL) < 0 ||
        v_enum_strings(v, in, "quarantine_categories", store_euc_categories, 0,
                       json_pack("[s,s]", "spam", "graymail"), eo) < 0) {
        json_decref(eo);
        return -1;
    }
    *out = eo;
    return 0;
}

/* v_euc - the tenant's "end_user_console" (absent: the defaults, disabled) */
static int v_euc(struct vctx *v, json_t *x, json_t *out)
{
    json_t *eo;
    size_t m = vpush_key(v, "end_user_console");
    if (v_euc_object(v, json_object_get(x, "end_user_console"), &eo) < 0)
        return -1;
    vpop(v, m);
    json_object_set_new(out, "end_user_console", eo);
    return 0;
}

const char *const store_euc_categories[] = {"spam",  "phishing", "graymail", "bec", "web_reputation",
                                            "social_engineering", "virus", "content", NULL};

int store_euc_validate(const json_t *in, json_t **canon, char *err, size_t errsz)
{
    struct vctx v = {.err = err, .errsz = errsz};
    return v_euc_object(&v, (json_t *)in, canon);
}

json_t *store_euc_default(void)
{
    json_t *d;
    char err[16];
    if (store_euc_validate(NULL, &d, err, sizeof err) < 0)
        fatal("store: the default End User Console settings do not validate");
    return d;
}

static int v_tenant(struct vctx *v, json_t *x, json_t *out)
{
    static const char *const keys[] = {"company_id",         "name",
                                       "admin_email",        "domains",
                                       "policies",           "approved_senders",
                                       "blocked_senders",    "high_profile_domains",
                                       "high_profile_users", "web_reputation",
                                       "file_passwords",     "notification_templates",
                                       "end_user_console",   NULL};
    char cid[64], q[128];
    if (v_keys(v, x, keys) < 0)
        return -1;
    json_t *c = json_object_get(x, "company_id");
    if (!c)
        return verr_at(v, "company_id", "is required");
    if (!json_is_string(c))
        return verr_at(v, "company_id", "must be a string");
    const char *why = store_syntax_company_id(json_string_value(c), cid, sizeof cid);
    if (why)
        return verr_at(v, "company_id", "%s %s", quoted(json_string_value(c), q, sizeof q), why);
    json_object_set_new(out, "company_id", json_string(cid));
    if (v_text(v, x, "name", 0, 200, "", out, NULL) < 0 ||
        v_address_member(v, x, "admin_email", false, out, NULL) < 0 ||
        v_objects(v, x, "domains", STORE_MAX_DOMAINS, v_domain, out) < 0)
        return -1;

    json_t *doms = json_object_get(out, "domains");
    for (size_t i = 0; i < json_array_size(doms); i++) {
        const char *ni = json_string_value(json_object_get(json_array_get(doms, i), "name"));
        for (size_t j = 0; j < i; j++) {
            if (strcmp(ni, json_string_value(json_object_get(json_array_get(doms, j), "name"))) == 0) {
                size_t m = vpush_key(v, "domains");
                vpush_index(v, i);
                vpush_key(v, "name");
                verr(v, "duplicate domain %s (same as domains[%zu])", ni, j);
                vpop(v, m);
                return -1;
            }
        }
    }

    if (v_objects(v, x, "policies", STORE_MAX_POLICIES, v_policy, out) < 0)
        return -1;
    json_t *pols = json_object_get(out, "policies");
    for (size_t i = 0; i < json_array_size(pols); i++) {
        const char *ni = json_string_value(json_object_get(json_array_get(pols, i), "name"));
        for (size_t j = 0; j < i; j++) {
            if (strcmp(ni, json_string_value(json_object_get(json_array_get(pols, j), "name"))) == 0) {
                size_t m = vpush_key(v, "policies");
                vpush_index(v, i);
                vpush_key(v, "name");
                verr(v, "duplicate policy name %s (same as policies[%zu])", quoted(ni, q, sizeof q), j);
                vpop(v, m);
                return -1;
            }
        }
    }
    if (v_strings(v, x, "approved_senders", 0, STORE_LIST_MAX, norm_sender_entry, "sender entry", out, NULL) <
            0 ||
        v_strings(v, x, "blocked_senders", 0, STORE_LIST_MAX, norm_sender_entry, "sender entry", out, NULL) <
            0 ||
        v_strings(v, x, "high_profile_domains", 0, STORE_MAX_HIGH_PROFILE, norm_domain_fqdn, "domain name",
                  out, NULL) < 0 ||
        v_objects(v, x, "high_profile_users", STORE_MAX_HIGH_PROFILE, v_hp_user, out) < 0 ||
        v_web_reputation(v, x, out) < 0 ||
        v_strings(v, x, "file_passwords", 0, STORE_MAX_PASSWORDS, norm_password, "password", out, NULL) < 0 ||
        v_templates(v, x, out) < 0 || v_euc(v, x, out) < 0)
        return -1;
    return 0;
}

struct dom_ref {
    const char *name;
    size_t t, d;
    bool verified; /* the document says "verified": true */
};

static int dom_ref_cmp(const void *a, const void *b)
{
    const struct dom_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->d < y->d ? -1 : x->d > y->d;
}

/* doc_cross_domains - no domain is marked verified for two tenants of the
 * document; the error names the later claim */
static int doc_cross_domains(struct vctx *v, json_t *tenants)
{
    size_t n = json_array_size(tenants), nd = 0, k = 0;
    for (size_t i = 0; i < n; i++)
        nd += json_array_size(json_object_get(json_array_get(tenants, i), "domains"));
    if (nd < 2)
        return 0;
    struct dom_ref *refs = xcalloc(nd, sizeof *refs);
    for (size_t i = 0; i < n; i++) {
        json_t *ds = json_object_get(json_array_get(tenants, i), "domains");
        for (size_t j = 0; j < json_array_size(ds); j++) {
            refs[k].name = json_string_value(json_object_get(json_array_get(ds, j), "name"));
            refs[k].t = i;
            refs[k].d = j;
            refs[k].verified = json_is_true(json_object_get(json_array_get(ds, j), "verified"));
            k++;
        }
    }
    qsort(refs, nd, sizeof *refs, dom_ref_cmp);
    const struct dom_ref *bad = NULL, *first = NULL;
    for (size_t a = 0; a < nd;) {
        size_t b = a + 1;
        while (b < nd && strcmp(refs[b].name, refs[a].name) == 0)
            b++;
        /* several tenants may claim a name while it is pending (docs/dns.md);
         * two tenants' claims marked verified conflict: the earliest verified
         * one against the first verified claim of another tenant */
        size_t fv = a;
        while (fv < b && !refs[fv].verified)
            fv++;
        for (size_t c = fv + 1; c < b; c++) {
            if (refs[c].verified && refs[c].t != refs[fv].t) {
                if (!bad || refs[c].t < bad->t || (refs[c].t == bad->t && refs[c].d < bad->d)) {
                    bad = &refs[c];
                    first = &refs[fv];
                }
                break;
            }
        }
        a = b;
    }
    if (bad) {
        vpush_key(v, "tenants");
        vpush_index(v, bad->t);
        vpush_key(v, "domains");
        vpush_index(v, bad->d);
        vpush_key(v, "name");
        verr(v, "%s is already verified for another tenant (tenants[%zu])", bad->name, first->t);
        free(refs);
        return -1;
    }
    free(refs);
    return 0;
}

/* doc_validate - the canonical tenants array of a whole document, or NULL
 * with the error in v */
static json_t *doc_validate(struct vctx *v, json_t *root)
{
    static const char *const keys[] = {"tenants", NULL};
    if (!json_is_object(root)) {
        verr(v, "the document must be a JSON object with a \"tenants\" list");
        return NULL;
    }
    if (v_keys(v, root, keys) < 0)
        return NULL;
    json_t *t = json_object_get(root, "tenants");
    if (!t) {
        verr_at(v, "tenants", "is required");
        return NULL;
    }
    json_t *holder = json_object();
    if (v_objects(v, root, "tenants", STORE_MAX_TENANTS, v_tenant, holder) < 0) {
        json_decref(holder);
        return NULL;
    }
    json_t *tenants = json_incref(json_object_get(holder, "tenants"));
    json_decref(holder);

    /* document-wide uniqueness: company IDs and domains (sorted: n log n) */
    size_t n = json_array_size(tenants);
    if (n > 1) {
        struct dup_item *items = xcalloc(n, sizeof *items);
        for (size_t i = 0; i < n; i++) {
            items[i].s = json_string_value(json_object_get(json_array_get(tenants, i), "company_id"));
            items[i].idx = i;
        }
        qsort(items, n, sizeof *items, dup_cmp);
        size_t bad = SIZE_MAX, first = 0;
        for (size_t i = 1; i < n; i++) {
            if (strcmp(items[i].s, items[i - 1].s) == 0 && items[i].idx < bad) {
                size_t k = i - 1; /* the earliest of the equal run */
                while (k > 0 && strcmp(items[k - 1].s, items[i].s) == 0)
                    k--;
                bad = items[i].idx;
                first = items[k].idx;
            }
        }
        if (bad != SIZE_MAX) {
            vpush_key(v, "tenants");
            vpush_index(v, bad);
            vpush_key(v, "company_id");
            verr(v, "duplicate company_id %s (same as tenants[%zu])",
                 json_string_value(json_object_get(json_array_get(tenants, bad), "company_id")), first);
            free(items);
            json_decref(tenants);
            return NULL;
        }
        free(items);
    }
    if (n > 1 && doc_cross_domains(v, tenants) < 0) {
        json_decref(tenants);
        return NULL;
    }
    return tenants;
}

/* ---------------------------------------------------------------- SQL */
static const char SQL_TENANT_GET[] =
    "SELECT id, company_id, name, admin_email, euc FROM tenants WHERE company_id = ?";
static const char SQL_TENANT_ALL[] =
    "SELECT id, company_id, name, admin_email, euc FROM tenants ORDER BY company_id";
static const char SQL_TENANT_EUC[] = "UPDATE tenants SET euc = ? WHERE id = ?";
static const char SQL_TENANT_INS[] =
    "INSERT INTO tenants(company_id, name, admin_email, created, updated) VALUES(?, ?, ?, ?, ?)";
static const char SQL_TENANT_UPD[] =
    "UPDATE tenants SET company_id = ?, name = ?, admin_email = ?, updated = ? WHERE id = ?";
static const char SQL_DOMAIN_CLAIMS[] =
    "SELECT t.company_id, d.verified FROM domains d JOIN tenants t ON t.id = d.tenant_id WHERE d.name = ?";
static const char SQL_DOMAINS_OF[] =
    "SELECT id, name, verified, verification_token, doc FROM domains WHERE tenant_id = ? ORDER BY position";
static const char SQL_DOMAIN_DEL[] = "DELETE FROM domains WHERE id = ?";
static const char SQL_DOMAIN_INS[] =
    "INSERT INTO domains(tenant_id, position, name, verified, verification_token, tls, outbound_enabled,"
    " has_recipients, doc, created) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char SQL_DOMAIN_UPD[] =
    "UPDATE domains SET position = ?, verified = ?, tls = ?, outbound_enabled = ?,"
    " has_recipients = ?, doc = ? WHERE id = ?";
static const char SQL_DSRV_DEL[] = "DELETE FROM domain_servers WHERE domain_id = ?";
static const char SQL_DSRV_INS[] =
    "INSERT INTO domain_servers(domain_id, position, host, port, preference) VALUES(?, ?, ?, ?, ?)";
static const char SQL_DRCPT_DEL[] = "DELETE FROM domain_recipients WHERE domain_id = ?";
static const char SQL_DRCPT_INS[] = "INSERT INTO domain_recipients(domain_id, address) VALUES(?, ?)";
static const char SQL_DSEND_DEL[] = "DELETE FROM domain_sending_servers WHERE domain_id = ?";
static const char SQL_DSEND_INS[] =
    "INSERT INTO domain_sending_servers(domain_id, position, cidr) VALUES(?, ?, ?)";
static const char SQL_POLICY_DEL[] = "DELETE FROM policies WHERE tenant_id = ?";
static const char SQL_POLICY_INS[] =
    "INSERT INTO policies(tenant_id, position, name, direction, enabled, doc) VALUES(?, ?, ?, ?, ?, ?)";
static const char SQL_POLICIES_OF[] = "SELECT doc FROM policies WHERE tenant_id = ? ORDER BY position";
static const char SQL_LIST_DEL[] = "DELETE FROM sender_lists WHERE tenant_id = ?";
static const char SQL_LIST_INS[] =
    "INSERT INTO sender_lists(tenant_id, list, position, entry) VALUES(?, ?, ?, ?)";
static const char SQL_LIST_OF[] =
    "SELECT entry FROM sender_lists WHERE tenant_id = ? AND list = ? ORDER BY position";
static const char SQL_TL_DEL[] = "DELETE FROM tenant_lists WHERE tenant_id = ?";
static const char SQL_NT_DEL[] = "DELETE FROM notification_templates WHERE tenant_id = ?";
static const char SQL_NT_INS[] =
    "INSERT INTO notification_templates(tenant_id, position, name, lang, subject, body) VALUES(?, ?, ?, ?, ?, ?)";
static const char SQL_NT_OF[] =
    "SELECT name, lang, subject, body FROM notification_templates WHERE tenant_id = ? ORDER BY position";
static const char SQL_TL_INS[] =
    "INSERT INTO tenant_lists(tenant_id, list, position, entry) VALUES(?, ?, ?, ?)";
static const char SQL_TL_OF[] =
    "SELECT entry FROM tenant_lists WHERE tenant_id = ? AND list = ? ORDER BY position";
static const char SQL_HPD_DEL[] = "DELETE FROM high_profile_domains WHERE tenant_id = ?";
static const char SQL_HPD_INS[] =
    "INSERT INTO high_profile_domains(tenant_id, position, name) VALUES(?, ?, ?)";
static const char SQL_HPD_OF[] =
    "SELECT name FROM high_profile_domains WHERE tenant_id = ? ORDER BY position";
static const char SQL_HPU_DEL[] = "DELETE FROM high_profile_users WHERE tenant_id = ?";
static const char SQL_HPU_INS[] =
    "INSERT INTO high_profile_users(tenant_id, position, name, address) VALUES(?, ?, ?, ?)";
static const char SQL_HPU_OF[] =
    "SELECT name, address FROM high_profile_users WHERE tenant_id = ? ORDER BY position";
static const char SQL_DOMAIN_SET_VERIFIED[] = "UPDATE domains SET verified = ? WHERE name = ? AND tenant_id "
                                              "= (SELECT id FROM tenants WHERE company_id = ?)";

/* ---------------------------------------------------------------- export */
/* col_json - a stored JSON column parsed, or NULL (logged) */
static json_t *col_json(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    json_error_t e;
    json_t *j = t ? json_loads((const char *)t, 0, &e) : NULL;
    if (!j)
        log_error("store corrupt JSON column reason=\"%s\"", t ? e.text : "NULL");
    return j;
}

/* list_export - one single-column list of a tenant as a JSON array */
static json_t *list_export(struct store *st, const char *sql, int64_t tid, const char *list)
{
    sqlite3_stmt *s = store_stmt(st, sql);
    if (!s)
        return NULL;
    json_t *arr = json_array();
    sqlite3_bind_int64(s, 1, tid);
    if (list)
        store_bind_text(s, 2, list);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        json_array_append_new(arr, json_string((const char *)sqlite3_column_text(s, 0)));
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_log_error(st, "export list");
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* domain_export - the stored domain with verified (and, when readonly, the
 * status and verification_token) spliced in */
static json_t *domain_export(sqlite3_stmt *s, bool readonly)
{
    json_t *doc = col_json(s, 4);
    if (!doc)
        return NULL;
    bool verified = sqlite3_column_int(s, 2) != 0;
    json_t *out = json_object();
    const char *key;
    json_t *val;
    json_object_foreach(doc, key, val)
    {
        json_object_set(out, key, val);
        if (strcmp(key, "name") == 0)
            json_object_set_new(out, "verified", json_boolean(verified));
    }
    if (readonly) {
        json_object_set_new(out, "status", json_string(verified ? "complete" : "needs_configuration"));
        json_object_set_new(out, "verification_token", json_string((const char *)sqlite3_column_text(s, 3)));
    }
    json_decref(doc);
    return out;
}

/* tenant_export - one tenant (row of SQL_TENANT_GET/ALL) as its document */
static json_t *tenant_export(struct store *st, sqlite3_stmt *ts, bool readonly)
{
    int64_t tid = sqlite3_column_int64(ts, 0);
    json_t *t = json_object();
    json_object_set_new(t, "company_id", json_string((const char *)sqlite3_column_text(ts, 1)));
    json_object_set_new(t, "name", json_string((const char *)sqlite3_column_text(ts, 2)));
    const unsigned char *ae = sqlite3_column_text(ts, 3);
    json_object_set_new(t, "admin_email", ae ? json_string((const char *)ae) : json_null());

    json_t *doms = json_array();
    json_object_set_new(t, "domains", doms);
    sqlite3_stmt *s = store_stmt(st, SQL_DOMAINS_OF);
    if (!s)
        goto fail;
    sqlite3_bind_int64(s, 1, tid);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *d = domain_export(s, readonly);
        if (!d) {
            sqlite3_reset(s);
            goto fail;
        }
        json_array_append_new(doms, d);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        goto fail;

    json_t *pols = json_array();
    json_object_set_new(t, "policies", pols);
    if (!(s = store_stmt(st, SQL_POLICIES_OF)))
        goto fail;
    sqlite3_bind_int64(s, 1, tid);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *p = col_json(s, 0);
        if (!p) {
            sqlite3_reset(s);
            goto fail;
        }
        json_array_append_new(pols, p);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        goto fail;
    if (readonly && json_array_size(pols)) {
        /* the order Moat runs them in (docs/policy.md): read-only */
        size_t np = json_array_size(pols);
        unsigned *order = xcalloc(np, sizeof *order);
        if (policy_execution_order(pols, order, np) == 0)
            for (size_t i = 0; i < np; i++)
                json_object_set_new(json_array_get(pols, i), "execution_order", json_integer(order[i]));
        free(order);
    }

    json_t *a = list_export(st, SQL_LIST_OF, tid, "approved");
    json_t *b = list_export(st, SQL_LIST_OF, tid, "blocked");
    json_t *h = list_export(st, SQL_HPD_OF, tid, NULL);
    if (a)
        json_object_set_new(t, "approved_senders", a);
    if (b)
        json_object_set_new(t, "blocked_senders", b);
    if (h)
        json_object_set_new(t, "high_profile_domains", h);
    if (!a || !b || !h)
        goto fail;
    json_t *users = json_array();
    json_object_set_new(t, "high_profile_users", users);
    if (!(s = store_stmt(st, SQL_HPU_OF)))
        goto fail;
    sqlite3_bind_int64(s, 1, tid);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *u = json_object();
        json_object_set_new(u, "name", json_string((const char *)sqlite3_column_text(s, 0)));
        json_object_set_new(u, "address", json_string((const char *)sqlite3_column_text(s, 1)));
        json_array_append_new(users, u);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        goto fail;
    json_t *ub = list_export(st, SQL_TL_OF, tid, "url_blocked");
    json_t *ua = list_export(st, SQL_TL_OF, tid, "url_approved");
    json_t *fp = list_export(st, SQL_TL_OF, tid, "file_password");
    if (ub && ua)
        json_object_set_new(t, "web_reputation", json_pack("{s:o,s:o}", "blocked", ub, "approved", ua));
    else {
        json_decref(ub);
        json_decref(ua);
    }
    if (fp)
        json_object_set_new(t, "file_passwords", fp);
    if (!ub || !ua || !fp)
        goto fail;
    json_t *nts = json_array();
    json_object_set_new(t, "notification_templates", nts);
    if (!(s = store_stmt(st, SQL_NT_OF)))
        goto fail;
    sqlite3_bind_int64(s, 1, tid);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        json_array_append_new(nts, json_pack("{s:s,s:s,s:s,s:s}", "name", (const char *)sqlite3_column_text(s, 0),
                                             "lang", (const char *)sqlite3_column_text(s, 1), "subject",
                                             (const char *)sqlite3_column_text(s, 2), "body",
                                             (const char *)sqlite3_column_text(s, 3)));
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        goto fail;
    json_t *euc = col_json(ts, 4);
    json_object_set_new(t, "end_user_console", euc ? euc : store_euc_default());
    return t;
fail:
    store_log_error(st, "export");
    json_decref(t);
    return NULL;
}

char *store_export_json(struct store *st, const char *company_id, char *err, size_t errsz)
{
    json_t *tenants = json_array();
    char *out = NULL;
    if (store_begin_read(st) < 0) {
        snprintf(err, errsz, "cannot read the database");
        json_decref(tenants);
        return NULL;
    }
    sqlite3_stmt *ts = store_stmt(st, company_id ? SQL_TENANT_GET : SQL_TENANT_ALL);
    if (!ts) {
        snprintf(err, errsz, "cannot read the database");
        goto done;
    }
    if (company_id)
        store_bind_text(ts, 1, company_id);
    int rc;
    while ((rc = sqlite3_step(ts)) == SQLITE_ROW) {
        json_t *t = tenant_export(st, ts, true);
        if (!t) {
            snprintf(err, errsz, "cannot read the database");
            sqlite3_reset(ts);
            goto done;
        }
        json_array_append_new(tenants, t);
    }
    sqlite3_reset(ts);
    if (rc != SQLITE_DONE) {
        store_log_error(st, "export");
        snprintf(err, errsz, "cannot read the database");
        goto done;
    }
    if (company_id && json_array_size(tenants) == 0) {
        char q[128];
        snprintf(err, errsz, "no such tenant: %s", quoted(company_id, q, sizeof q));
        goto done;
    }
    json_t *root = json_object();
    json_object_set(root, "tenants", tenants);
    out = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    if (!out)
        snprintf(err, errsz, "out of memory");
done:
    store_rollback(st); /* ends the read transaction */
    json_decref(tenants);
    return out;
}

/* ---------------------------------------------------------------- import */
struct existing_domain {
    int64_t id;
    char *name;
    bool verified;
    char *token;
};

struct existing {
    int64_t tid; /* 0: new tenant */
    struct existing_domain *d;
    size_t nd;
};

static void existing_free(struct existing *e)
{
    for (size_t i = 0; i < e->nd; i++) {
        free(e->d[i].name);
        free(e->d[i].token);
    }
    free(e->d);
    memset(e, 0, sizeof *e);
}

static const struct existing_domain *existing_find(const struct existing *e, const char *name)
{
    for (size_t i = 0; i < e->nd; i++)
        if (strcmp(e->d[i].name, name) == 0)
            return &e->d[i];
    return NULL;
}

/* existing_load - the stored tenant company_id (tid 0 if new) and its domains;
 * *old gets its export (no read-only fields) when it exists */
static int existing_load(struct store *st, const char *company_id, struct existing *e, json_t **old)
{
    memset(e, 0, sizeof *e);
    *old = NULL;
    sqlite3_stmt *s = store_stmt(st, SQL_TENANT_GET);
    if (!s)
        return -1;
    store_bind_text(s, 1, company_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(s);
        return 0;
    }
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        return -1;
    }
    e->tid = sqlite3_column_int64(s, 0);
    *old = tenant_export(st, s, false);
    sqlite3_reset(s);
    if (!*old)
        return -1;
    if (!(s = store_stmt(st, SQL_DOMAINS_OF)))
        return -1;
    sqlite3_bind_int64(s, 1, e->tid);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        e->d = xrealloc(e->d, (e->nd + 1) * sizeof *e->d);
        struct existing_domain *d = &e->d[e->nd++];
        d->id = sqlite3_column_int64(s, 0);
        d->name = store_col_dup(s, 1);
        d->verified = sqlite3_column_int(s, 2) != 0;
        d->token = store_col_dup(s, 3);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* check_claims - no domain of tenant ti is verified by a tenant outside the
 * document (several tenants may add a name and wait for verification; only
 * one can verify it), and with trust no domain the document marks verified
 * is claimed by another tenant at all; 1 with the error in err */
static int check_claims(struct store *st, json_t *tenants, size_t ti, bool trust, char *err, size_t errsz)
{
    json_t *doms = json_object_get(json_array_get(tenants, ti), "domains");
    for (size_t j = 0; j < json_array_size(doms); j++) {
        const char *name = json_string_value(json_object_get(json_array_get(doms, j), "name"));
        bool want = trust && json_is_true(json_object_get(json_array_get(doms, j), "verified"));
        sqlite3_stmt *s = store_stmt(st, SQL_DOMAIN_CLAIMS);
        if (!s)
            return -1;
        store_bind_text(s, 1, name);
        int rc;
        bool foreign = false;
        const char *self = json_string_value(json_object_get(json_array_get(tenants, ti), "company_id"));
        while (!foreign && (rc = sqlite3_step(s)) == SQLITE_ROW) {
            const char *owner = (const char *)sqlite3_column_text(s, 0);
            if (strcasecmp(owner, self) == 0)
                continue;
            bool in_doc = false;
            for (size_t k = 0; k < json_array_size(tenants) && !in_doc; k++)
                in_doc = strcasecmp(owner, json_string_value(json_object_get(json_array_get(tenants, k),
                                                                             "company_id"))) == 0;
            foreign = !in_doc && (sqlite3_column_int(s, 1) != 0 || want);
        }
        if (!foreign && rc != SQLITE_DONE) {
            sqlite3_reset(s);
            return -1;
        }
        sqlite3_reset(s);
        if (foreign) {
            snprintf(err, errsz, "tenants[%zu].domains[%zu].name: %s is already verified by another tenant",
                     ti, j, name);
            return 1;
        }
    }
    return 0;
}

/* check_default_rules - while tenant t has no verified domain its default
 * rules stay as Moat made them (PRODUCT.md §4: they cannot be enabled or
 * edited before a domain is verified): each must equal the stored rule of
 * that name, or, when there is none, be disabled. 1 with err. */
static int check_default_rules(json_t *t, json_t *old, size_t ti, char *err, size_t errsz)
{
    json_t *doms = json_object_get(t, "domains");
    for (size_t j = 0; j < json_array_size(doms); j++)
        if (json_is_true(json_object_get(json_array_get(doms, j), "verified")))
            return 0;
    json_t *pols = json_object_get(t, "policies"), *opols = json_object_get(old, "policies");
    for (size_t j = 0; j < json_array_size(pols); j++) {
        json_t *p = json_array_get(pols, j);
        if (!json_is_true(json_object_get(p, "default")))
            continue;
        const char *name = json_string_value(json_object_get(p, "name"));
        json_t *op = NULL;
        for (size_t k = 0; k < json_array_size(opols) && !op; k++)
            if (strcmp(json_string_value(json_object_get(json_array_get(opols, k), "name")), name) == 0)
                op = json_array_get(opols, k);
        if (op ? !json_equal(op, p) : json_is_true(json_object_get(p, "enabled"))) {
            char esc[220];
            snprintf(err, errsz,
                     "tenants[%zu].policies[%zu]: the default rule \"%s\" cannot be enabled or changed before a "
                     "domain of the tenant is verified",
                     ti, j, log_escape(name, strlen(name), esc, sizeof esc));
            return 1;
        }
    }
    return 0;
}

/* domain_children - replace the routing rows of one domain */
static int domain_children(struct store *st, int64_t did, json_t *d)
{
    static const char *const dels[] = {SQL_DSRV_DEL, SQL_DRCPT_DEL, SQL_DSEND_DEL};
    for (size_t i = 0; i < 3; i++) {
        sqlite3_stmt *s = store_stmt(st, dels[i]);
        if (!s)
            return -1;
        sqlite3_bind_int64(s, 1, did);
        if (store_step_done(st, s) < 0)
            return -1;
    }
    json_t *srv = json_object_get(d, "inbound_servers");
    for (size_t i = 0; i < json_array_size(srv); i++) {
        json_t *e = json_array_get(srv, i);
        sqlite3_stmt *s = store_stmt(st, SQL_DSRV_INS);
        if (!s)
            return -1;
        sqlite3_bind_int64(s, 1, did);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)i);
        store_bind_text(s, 3, json_string_value(json_object_get(e, "host")));
        sqlite3_bind_int64(s, 4, json_integer_value(json_object_get(e, "port")));
        sqlite3_bind_int64(s, 5, json_integer_value(json_object_get(e, "preference")));
        if (store_step_done(st, s) < 0)
            return -1;
    }
    json_t *rl = json_object_get(d, "recipients");
    for (size_t i = 0; i < json_array_size(rl); i++) {
        char low[STORE_ADDR_MAX + 1];
        const char *a = json_string_value(json_array_get(rl, i));
        size_t n = core_strlcpy(low, a, sizeof low);
        for (size_t k = 0; k < n && k < sizeof low; k++)
            low[k] = (char)tolower((unsigned char)low[k]);
        sqlite3_stmt *s = store_stmt(st, SQL_DRCPT_INS);
        if (!s)
            return -1;
        sqlite3_bind_int64(s, 1, did);
        store_bind_text(s, 2, low);
        if (store_step_done(st, s) < 0)
            return -1;
    }
    json_t *ss = json_object_get(json_object_get(d, "outbound"), "sending_servers");
    for (size_t i = 0; i < json_array_size(ss); i++) {
        sqlite3_stmt *s = store_stmt(st, SQL_DSEND_INS);
        if (!s)
            return -1;
        sqlite3_bind_int64(s, 1, did);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)i);
        store_bind_text(s, 3, json_string_value(json_array_get(ss, i)));
        if (store_step_done(st, s) < 0)
            return -1;
    }
    return 0;
}

/* id_stmt - run a one-parameter (tenant id) statement */
static int id_stmt(struct store *st, const char *sql, int64_t id)
{
    sqlite3_stmt *s = store_stmt(st, sql);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, id);
    return store_step_done(st, s);
}

/* tenant_remove_domains - phase 1: delete the stored domains the new document drops */
static int tenant_remove_domains(struct store *st, const struct existing *e, json_t *t)
{
    json_t *doms = json_object_get(t, "domains");
    for (size_t i = 0; i < e->nd; i++) {
        bool keep = false;
        for (size_t j = 0; j < json_array_size(doms) && !keep; j++)
            keep = strcmp(e->d[i].name,
                          json_string_value(json_object_get(json_array_get(doms, j), "name"))) == 0;
        if (!keep && id_stmt(st, SQL_DOMAIN_DEL, e->d[i].id) < 0)
            return -1;
    }
    return 0;
}

/* tenant_write - phase 2: write tenant t (canonical, verified resolved) */
static int tenant_write(struct store *st, struct existing *e, json_t *t, bool trust)
{
    double now = core_now();
    const char *cid = json_string_value(json_object_get(t, "company_id"));
    json_t *ae = json_object_get(t, "admin_email");
    sqlite3_stmt *s;
    int64_t tid = e->tid;
    if (tid == 0) {
        if (!(s = store_stmt(st, SQL_TENANT_INS)))
            return -1;
        store_bind_text(s, 1, cid);
        store_bind_text(s, 2, json_string_value(json_object_get(t, "name")));
        store_bind_text(s, 3, json_string_value(ae));
        sqlite3_bind_double(s, 4, now);
        sqlite3_bind_double(s, 5, now);
        if (store_step_done(st, s) < 0)
            return -1;
        tid = sqlite3_last_insert_rowid(st->db);
    } else {
        if (!(s = store_stmt(st, SQL_TENANT_UPD)))
            return -1;
        store_bind_text(s, 1, cid);
        store_bind_text(s, 2, json_string_value(json_object_get(t, "name")));
        store_bind_text(s, 3, json_string_value(ae));
        sqlite3_bind_double(s, 4, now);
        sqlite3_bind_int64(s, 5, tid);
        if (store_step_done(st, s) < 0)
            return -1;
        if (id_stmt(st, SQL_POLICY_DEL, tid) < 0 || id_stmt(st, SQL_LIST_DEL, tid) < 0 ||
            id_stmt(st, SQL_HPD_DEL, tid) < 0 || id_stmt(st, SQL_HPU_DEL, tid) < 0 ||
            id_stmt(st, SQL_TL_DEL, tid) < 0 || id_stmt(st, SQL_NT_DEL, tid) < 0)
            return -1;
    }
    char *euc = json_dumps(json_object_get(t, "end_user_console"), JSON_COMPACT);
    if (!euc)
        fatal("out of memory");
    if (!(s = store_stmt(st, SQL_TENANT_EUC))) {
        free(euc);
        return -1;
    }
    store_bind_text(s, 1, euc);
    sqlite3_bind_int64(s, 2, tid);
    int erc = store_step_done(st, s);
    free(euc);
    if (erc < 0)
        return -1;

    json_t *doms = json_object_get(t, "domains");
    for (size_t i = 0; i < json_array_size(doms); i++) {
        json_t *d = json_array_get(doms, i);
        const char *name = json_string_value(json_object_get(d, "name"));
        bool verified = json_is_true(json_object_get(d, "verified"));
        json_t *doc = json_deep_copy(d);
        json_object_del(doc, "verified");
        char *docs = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        if (!docs)
            fatal("out of memory");
        const struct existing_domain *old = existing_find(e, name);
        int64_t did;
        if (old) {
            if (!(s = store_stmt(st, SQL_DOMAIN_UPD))) {
                free(docs);
                return -1;
            }
            sqlite3_bind_int64(s, 1, (sqlite3_int64)i);
            sqlite3_bind_int(s, 2, verified);
            store_bind_text(s, 3, json_string_value(json_object_get(d, "tls")));
            sqlite3_bind_int(s, 4, json_is_true(json_object_get(json_object_get(d, "outbound"), "enabled")));
            sqlite3_bind_int(s, 5, !json_is_null(json_object_get(d, "recipients")));
            store_bind_text(s, 6, docs);
            sqlite3_bind_int64(s, 7, old->id);
            did = old->id;
        } else {
            char token[33];
            store_random_hex(token, 16);
            if (!(s = store_stmt(st, SQL_DOMAIN_INS))) {
                free(docs);
                return -1;
            }
            sqlite3_bind_int64(s, 1, tid);
            sqlite3_bind_int64(s, 2, (sqlite3_int64)i);
            store_bind_text(s, 3, name);
            sqlite3_bind_int(s, 4, verified);
            store_bind_text(s, 5, token);
            store_bind_text(s, 6, json_string_value(json_object_get(d, "tls")));
            sqlite3_bind_int(s, 7, json_is_true(json_object_get(json_object_get(d, "outbound"), "enabled")));
            sqlite3_bind_int(s, 8, !json_is_null(json_object_get(d, "recipients")));
            store_bind_text(s, 9, docs);
            sqlite3_bind_double(s, 10, now);
            did = 0;
        }
        free(docs);
        if (store_step_done(st, s) < 0)
            return -1;
        if (!old)
            did = sqlite3_last_insert_rowid(st->db);
        if (domain_children(st, did, d) < 0)
            return -1;
        if (trust && verified != (old ? old->verified : false)) {
            char detail[400];
            snprintf(detail, sizeof detail,
                     "{\"domain\":\"%s\",\"verified\":%s,\"via\":\"import --trust-domains\"}", name,
                     verified ? "true" : "false");
            if (store_audit(st, "moatctl", "domain.verified", cid, detail) < 0)
                return -1;
        }
    }

    json_t *pols = json_object_get(t, "policies");
    for (size_t i = 0; i < json_array_size(pols); i++) {
        json_t *p = json_array_get(pols, i);
        char *docs = json_dumps(p, JSON_COMPACT);
        if (!docs)
            fatal("out of memory");
        if (!(s = store_stmt(st, SQL_POLICY_INS))) {
            free(docs);
            return -1;
        }
        sqlite3_bind_int64(s, 1, tid);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)i);
        store_bind_text(s, 3, json_string_value(json_object_get(p, "name")));
        store_bind_text(s, 4, json_string_value(json_object_get(p, "direction")));
        sqlite3_bind_int(s, 5, json_is_true(json_object_get(p, "enabled")));
        store_bind_text(s, 6, docs);
        int rc = store_step_done(st, s);
        free(docs);
        if (rc < 0)
            return -1;
    }
    static const char *const lists[] = {"approved", "blocked"};
    static const char *const keys[] = {"approved_senders", "blocked_senders"};
    for (size_t l = 0; l < 2; l++) {
        json_t *arr = json_object_get(t, keys[l]);
        for (size_t i = 0; i < json_array_size(arr); i++) {
            if (!(s = store_stmt(st, SQL_LIST_INS)))
                return -1;
            sqlite3_bind_int64(s, 1, tid);
            store_bind_text(s, 2, lists[l]);
            sqlite3_bind_int64(s, 3, (sqlite3_int64)i);
            store_bind_text(s, 4, json_string_value(json_array_get(arr, i)));
            if (store_step_done(st, s) < 0)
                return -1;
        }
    }
    json_t *hpd = json_object_get(t, "high_profile_domains");
    for (size_t i = 0; i < json_array_size(hpd); i++) {
        if (!(s = store_stmt(st, SQL_HPD_INS)))
            return -1;
        sqlite3_bind_int64(s, 1, tid);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)i);
        store_bind_text(s, 3, json_string_value(json_array_get(hpd, i)));
        if (store_step_done(st, s) < 0)
            return -1;
    }
    json_t *hpu = json_object_get(t, "high_profile_users");
    for (size_t i = 0; i < json_array_size(hpu); i++) {
        json_t *u = json_array_get(hpu, i);
        if (!(s = store_stmt(st, SQL_HPU_INS)))
            return -1;
        sqlite3_bind_int64(s, 1, tid);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)i);
        store_bind_text(s, 3, json_string_value(json_object_get(u, "name")));
        store_bind_text(s, 4, json_string_value(json_object_get(u, "address")));
        if (store_step_done(st, s) < 0)
            return -1;
    }
    json_t *wr = json_object_get(t, "web_reputation");
    const struct {
        const char *list;
        json_t *arr;
    } tl[] = {{"url_blocked", json_object_get(wr, "blocked")},
              {"url_approved", json_object_get(wr, "approved")},
              {"file_password", json_object_get(t, "file_passwords")}};
    for (size_t l = 0; l < sizeof tl / sizeof tl[0]; l++) {
        for (size_t i = 0; i < json_array_size(tl[l].arr); i++) {
            if (!(s = store_stmt(st, SQL_TL_INS)))
                return -1;
            sqlite3_bind_int64(s, 1, tid);
            store_bind_text(s, 2, tl[l].list);
            sqlite3_bind_int64(s, 3, (sqlite3_int64)i);
            store_bind_text(s, 4, json_string_value(json_array_get(tl[l].arr, i)));
            if (store_step_done(st, s) < 0)
                return -1;
        }
    }
    json_t *nts = json_object_get(t, "notification_templates");
    for (size_t i = 0; i < json_array_size(nts); i++) {
        json_t *n = json_array_get(nts, i);
        if (!(s = store_stmt(st, SQL_NT_INS)))
            return -1;
        sqlite3_bind_int64(s, 1, tid);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)i);
        store_bind_text(s, 3, json_string_value(json_object_get(n, "name")));
        store_bind_text(s, 4, json_string_value(json_object_get(n, "lang")));
        store_bind_text(s, 5, json_string_value(json_object_get(n, "subject")));
        store_bind_text(s, 6, json_string_value(json_object_get(n, "body")));
        if (store_step_done(st, s) < 0)
            return -1;
    }
    return 0;
}

int store_import_json_report(struct store *st, const char *json, size_t len, bool trust_domains,
                             struct store_import_result *res, char *err, size_t errsz)
{
    struct store_import_result dummy;
    if (!res)
        res = &dummy;
    memset(res, 0, sizeof *res);
    err[0] = '\0';
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errsz, "invalid JSON at line %d column %d: %s", je.line, je.column,
                 strstr(je.text, "JSON_ALLOW_NUL") ? "\\u0000 is not allowed in strings" : je.text);
        return 1;
    }
    struct vctx v = {.err = err, .errsz = errsz};
    json_t *tenants = doc_validate(&v, root);
    json_decref(root);
    if (!tenants)
        return 1;
    size_t n = json_array_size(tenants);
    res->tenants = n;

    struct existing *ex = xcalloc(n ? n : 1, sizeof *ex);
    bool *changed = xcalloc(n ? n : 1, sizeof *changed);
    int ret = 2;
    if (store_begin(st) < 0) {
        snprintf(err, errsz, "cannot write the database (%s)", sqlite3_errmsg(st->db));
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(tenants, i);
        json_t *old = NULL;
        int c = check_claims(st, tenants, i, trust_domains, err, errsz);
        if (c != 0) {
            ret = c < 0 ? 2 : 1;
            goto fail;
        }
        if (existing_load(st, json_string_value(json_object_get(t, "company_id")), &ex[i], &old) < 0)
            goto fail;
        /* resolve verified: requested only with trust, else as stored */
        json_t *doms = json_object_get(t, "domains");
        for (size_t j = 0; j < json_array_size(doms); j++) {
            json_t *d = json_array_get(doms, j);
            const struct existing_domain *od =
                existing_find(&ex[i], json_string_value(json_object_get(d, "name")));
            if (!trust_domains)
                json_object_set_new(d, "verified", json_boolean(od ? od->verified : false));
        }
        c = check_default_rules(t, old, i, err, errsz);
        if (c != 0) {
            json_decref(old);
            ret = 1;
            goto fail;
        }
        changed[i] = !old || !json_equal(old, t);
        json_decref(old);
    }
    for (size_t i = 0; i < n; i++)
        if (changed[i] && tenant_remove_domains(st, &ex[i], json_array_get(tenants, i)) < 0)
            goto fail;
    for (size_t i = 0; i < n; i++) {
        if (!changed[i])
            continue;
        if (tenant_write(st, &ex[i], json_array_get(tenants, i), trust_domains) < 0)
            goto fail;
        res->changed++;
    }
    if (res->changed && store_version_bump(st) < 0)
        goto fail;
    if (store_commit(st) < 0)
        goto fail;
    res->config_version = store_config_version(st);
    ret = 0;
    goto out;
fail:
    if (ret == 2) {
        const char *m = sqlite3_errmsg(st->db);
        char e[200];
        snprintf(err, errsz, "database error: %s", log_escape(m, strlen(m), e, sizeof e));
        store_log_error(st, "import");
    }
    store_rollback(st);
out:
    for (size_t i = 0; i < n; i++)
        existing_free(&ex[i]);
    free(ex);
    free(changed);
    json_decref(tenants);
    return ret;
}

int store_import_json(struct store *st, const char *json, size_t len, bool trust_domains, char *err,
                      size_t errsz)
{
    return store_import_json_report(st, json, len, trust_domains, NULL, err, errsz);
}

int store_domain_set_verified(struct store *st, const char *company_id, const char *domain, bool verified)
{
    if (store_begin(st) < 0)
        return -1;
    sqlite3_stmt *s = store_stmt(st, SQL_DOMAIN_SET_VERIFIED);
    if (!s)
        goto fail;
    sqlite3_bind_int(s, 1, verified);
    store_bind_text(s, 2, domain);
    store_bind_text(s, 3, company_id);
    if (store_step_done(st, s) < 0)
        goto fail;
    if (sqlite3_changes(st->db) == 0) {
        store_rollback(st);
        return 1;
    }
    if (store_version_bump(st) < 0 || store_commit(st) < 0)
        goto fail;
    return 0;
fail:
    store_rollback(st);
    return -1;
}
