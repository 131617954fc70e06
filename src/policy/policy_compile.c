/*
 * policy_compile.c - one tenant's document into an immutable policy set.
 *
 *   policy_compile / policy_compile_tenant   JSON -> struct policy_set
 *   policy_set_ref / policy_set_unref        shared, reference-counted
 *   policy_execution_order                   the order of docs/policy.md
 *   policy_pattern_check                     a keyword as Vectorscan sees it
 *   policy_sender_blocked / _approved        the tenant's sender lists
 *
 * Input is the canonical document of store_doc.c, but nothing here trusts
 * it: a missing key takes the store's default, a wrong type is an error
 * naming the policy, every list is bounded (policy.h limits). Addresses and
 * domains are normalised once here (lower case, IDN to punycode with
 * libidn2) so evaluation compares bytes. Keywords of all the rules of a
 * direction that search one field go into one Vectorscan database (pattern
 * id -> rule), and so do attachment-name patterns (globs turned into
 * anchored expressions): evaluation scans each text once whatever the
 * number of rules.
 */
#include "policy/policy_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <idn2.h>
#include <stdarg.h>

const char *const policy_type_names[PT_N + 1] = {
    "executable", "script", "archive", "document", "office_macro", "pdf", "image",
    "audio",      "video",  "html",    "text",     "disk_image",   NULL};

static const char *const INTERCEPT_NAMES[] = {"none",       "delete",           "deliver_now",
                                              "quarantine", "change_recipient", NULL};
static const char *const SPAM_LEVELS[] = {"lowest", "low", "moderate", "high", "highest", NULL};
static const char *const KW_FIELDS[] = {"subject", "body", "headers", "attachments", NULL};

const char *policy_intercept_name(enum policy_intercept i)
{
    return (unsigned)i < 5 ? INTERCEPT_NAMES[i] : "none";
}

static int name_index(const char *const *names, const char *s)
{
    for (int i = 0; s && names[i]; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

/* ---------------------------------------------------------------- ordering */
/* policy_rule_class - the execution class of a rule from the criteria it
 * has: the first of virus, scan exclusion, content, spam */
int policy_rule_class(bool virus, bool scanx, bool content, bool spam)
{
    if (virus)
        return PCLASS_VIRUS;
    if (scanx)
        return PCLASS_SCAN_EXCLUSION;
    if (content)
        return PCLASS_CONTENT;
    (void)spam;
    return PCLASS_SPAM;
}

/* policy_intercept_rank - delete, quarantine, change recipient, deliver now,
 * do not intercept */
unsigned policy_intercept_rank(enum policy_intercept i)
{
    switch (i) {
    case POLICY_INTERCEPT_DELETE:
        return 0;
    case POLICY_INTERCEPT_QUARANTINE:
        return 1;
    case POLICY_INTERCEPT_CHANGE_RECIPIENT:
        return 2;
    case POLICY_INTERCEPT_DELIVER_NOW:
        return 3;
    default:
        return 4;
    }
}

static bool crit_present(const json_t *crit, const char *k)
{
    json_t *x = json_object_get(crit, k);
    return x && !json_is_null(x);
}

struct order_key {
    size_t pos;
    unsigned dir, cls, rank;
};

static int order_cmp(const void *a, const void *b)
{
    const struct order_key *x = a, *y = b;
    if (x->dir != y->dir)
        return x->dir < y->dir ? -1 : 1;
    if (x->cls != y->cls)
        return x->cls < y->cls ? -1 : 1;
    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* policy_key - the sort key of one policy object */
static struct order_key policy_key(const json_t *p, size_t pos)
{
    struct order_key k = {.pos = pos};
    const json_t *c = json_object_get(p, "criteria");
    const char *d = json_string_value(json_object_get(p, "direction"));
    const json_t *act = json_object_get(p, "actions");
    int ic = name_index(INTERCEPT_NAMES, json_string_value(json_object_get(act, "intercept")));
    k.dir = d && strcmp(d, "outbound") == 0;
    k.cls = (unsigned)policy_rule_class(crit_present(c, "virus"), crit_present(c, "scan_exclusion"),
                                        crit_present(c, "content"), crit_present(c, "spam"));
    k.rank = policy_intercept_rank(ic < 0 ? POLICY_INTERCEPT_NONE : (enum policy_intercept)ic);
    return k;
}

int policy_execution_order(const json_t *policies, unsigned *order, size_t n)
{
    if (!json_is_array(policies) || json_array_size(policies) != n)
        return -1;
    if (n == 0)
        return 0;
    struct order_key *k = xcalloc(n, sizeof *k);
    for (size_t i = 0; i < n; i++)
        k[i] = policy_key(json_array_get(policies, i), i);
    qsort(k, n, sizeof *k, order_cmp);
    unsigned seq[2] = {0, 0};
    for (size_t i = 0; i < n; i++)
        order[k[i].pos] = ++seq[k[i].dir];
    free(k);
    return 0;
}

/* ---------------------------------------------------------------- addresses */
/* policy_norm_domain - lower-case A-label form of a domain (U-labels through
 * libidn2, IDNA2008 non-transitional, then transitional); a trailing dot is
 * dropped. -1 when it does not fit. A name libidn2 refuses is kept
 * lower-cased, so it can still equal itself. */
int policy_norm_domain(const char *in, size_t len, char *out, size_t outsz)
{
    char tmp[POLICY_ADDR_MAX + 1];
    bool ascii = true;
    if (len && in[len - 1] == '.')
        len--;
    if (len >= sizeof tmp || len >= outsz)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 0x80)
            ascii = false;
        if (c == '\0')
            return -1;
        tmp[i] = (char)tolower(c);
    }
    tmp[len] = '\0';
    if (!ascii) {
        char *a = NULL;
        if (idn2_to_ascii_8z(tmp, &a, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK &&
            idn2_to_ascii_8z(tmp, &a, IDN2_NFC_INPUT | IDN2_TRANSITIONAL) != IDN2_OK)
            a = NULL;
        if (a) {
            size_t n = strlen(a);
            if (n < outsz) {
                for (size_t i = 0; i <= n; i++)
                    out[i] = (char)tolower((unsigned char)a[i]);
                idn2_free(a);
                return 0;
            }
            idn2_free(a);
            return -1;
        }
    }
    memcpy(out, tmp, len + 1);
    return 0;
}

/* policy_norm_address - "Local@Domain" (angle brackets allowed) as
 * lower-case local part @ A-label domain. Local parts are compared
 * case-insensitively, as every mail system in practice does. -1 when too
 * long; an address without "@" is kept whole (lower-cased). */
int policy_norm_address(const char *in, char *out, size_t outsz)
{
    size_t n = in ? strlen(in) : 0;
    if (n >= 2 && in[0] == '<' && in[n - 1] == '>') {
        in++;
        n -= 2;
    }
    if (n > POLICY_ADDR_MAX || n >= outsz)
        return -1;
    const char *at = NULL;
    for (size_t i = 0; i < n; i++)
        if (in[i] == '@')
            at = in + i;
    size_t ll = at ? (size_t)(at - in) : n;
    for (size_t i = 0; i < ll; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[ll] = '\0';
    if (!at)
        return 0;
    out[ll] = '@';
    return policy_norm_domain(at + 1, n - ll - 1, out + ll + 1, outsz - ll - 1);
}

static int strp_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

bool policy_sorted_has(char *const *arr, size_t n, const char *s)
{
    return n && bsearch(&s, arr, n, sizeof *arr, strp_cmp) != NULL;
}

/* policy_who_has - addr (normalised) is covered by w */
bool policy_who_has(const struct who *w, const char *addr, const struct policy_set *set)
{
    const char *at = strrchr(addr, '@');
    switch (w->kind) {
    case WHO_ANY:
        return true;
    case WHO_ORGANIZATION:
        return at && policy_sorted_has(set->domains, set->ndomains, at + 1);
    default:
        return policy_sorted_has(w->addrs, w->naddrs, addr) ||
               (at && policy_sorted_has(w->domains, w->ndomains, at + 1));
    }
}

/* ip_parse - a v4/v6 address (v4-mapped v6 becomes v4) */
static bool ip_parse(const char *s, struct ipnet *n)
{
    char a[INET6_ADDRSTRLEN + 8];
    size_t len = s ? strlen(s) : 0;
    if (len == 0 || len >= sizeof a)
        return false;
    memcpy(a, s, len + 1);
    if (a[0] == '[' && a[len - 1] == ']') {
        memmove(a, a + 1, len - 2);
        a[len - 2] = '\0';
    }
    memset(n, 0, sizeof *n);
    if (inet_pton(AF_INET, a, n->a) == 1) {
        n->family = 4;
        n->prefix = 32;
        return true;
    }
    if (inet_pton(AF_INET6, a, n->a) != 1)
        return false;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(n->a, mapped, 12) == 0) {
        memmove(n->a, n->a + 12, 4);
        memset(n->a + 4, 0, 12);
        n->family = 4;
        n->prefix = 32;
        return true;
    }
    n->family = 6;
    n->prefix = 128;
    return true;
}

static bool net_has(const struct ipnet *net, const struct ipnet *ip)
{
    if (net->family != ip->family)
        return false;
    unsigned full = net->prefix / 8, rest = net->prefix % 8;
    if (memcmp(net->a, ip->a, full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (net->a[full] & mask) == (ip->a[full] & mask);
}

/* policy_list_has - sender list l holds addr (normalised) or ip */
bool policy_list_has(const struct senderlist *l, const char *addr, const char *ip)
{
    if (addr && *addr && policy_who_has(&l->who, addr, NULL))
        return true;
    struct ipnet x;
    if (!l->nnets || !ip_parse(ip, &x))
        return false;
    for (size_t i = 0; i < l->nnets; i++)
        if (net_has(&l->nets[i], &x))
            return true;
    return false;
}

static bool list_check(const struct senderlist *l, const char *sender, const char *ip)
{
    char a[POLICY_ADDR_MAX + 1];
    if (!sender || !*sender || policy_norm_address(sender, a, sizeof a) < 0)
        a[0] = '\0';
    return policy_list_has(l, a, ip);
}

bool policy_sender_blocked(const struct policy_set *set, const char *sender, const char *client_ip)
{
    return set && list_check(&set->blocked, sender, client_ip);
}

bool policy_sender_approved(const struct policy_set *set, const char *sender, const char *client_ip)
{
    return set && list_check(&set->approved, sender, client_ip);
}

/* ---------------------------------------------------------------- patterns */
/* policy_hs_flags - Vectorscan flags of a keyword: UTF-8 with Unicode
 * properties (Japanese text), ^/$ at line ends, one report per pattern. A
 * "(?i)" prefix (ignore case) is left in the pattern: Vectorscan reads it
 * as the inline modifier, so its error offsets count from the pattern as
 * the admin wrote it. */
unsigned policy_hs_flags(const char **pattern)
{
    (void)pattern;
    return HS_FLAG_UTF8 | HS_FLAG_UCP | HS_FLAG_MULTILINE | HS_FLAG_SINGLEMATCH;
}

/* hs_reason - Vectorscan's compile message in our words */
static void hs_reason(const hs_compile_error_t *ce, char *why, size_t whysz)
{
    const char *m = ce && ce->message ? ce->message : "cannot compile";
    if (strstr(m, "matches empty buffer"))
        m = "it matches the empty string (so it would match every message)";
    snprintf(why, whysz, "%s", m);
}

const char *policy_pattern_check(const char *pattern, char *why, size_t whysz)
{
    const char *p = pattern;
    unsigned fl = policy_hs_flags(&p);
    if (!*p || strcmp(p, "(?i)") == 0) {
        snprintf(why, whysz, "empty pattern");
        return why;
    }
    if (strlen(pattern) > POLICY_MAX_PATTERN) {
        snprintf(why, whysz, "longer than %d bytes", POLICY_MAX_PATTERN);
        return why;
    }
    hs_database_t *db = NULL;
    hs_compile_error_t *ce = NULL;
    if (hs_compile(p, fl, HS_MODE_BLOCK, NULL, &db, &ce) != HS_SUCCESS) {
        hs_reason(ce, why, whysz);
        hs_free_compile_error(ce);
        return why;
    }
    hs_free_database(db);
    return NULL;
}

/* glob_to_regex - a file name pattern ("*.exe", "invoice?.pdf": * and ?
 * are the only wildcards) as an anchored expression */
static int glob_to_regex(const char *g, char *out, size_t outsz)
{
    size_t o = 0;
    if (outsz < 3)
        return -1;
    out[o++] = '^';
    for (; *g; g++) {
        const char *piece;
        char lit[3] = {0};
        if (*g == '*') {
            piece = ".*";
        } else if (*g == '?') {
            piece = ".";
        } else if (strchr("\\^$.|?*+()[]{}", *g)) {
            lit[0] = '\\';
            lit[1] = *g;
            piece = lit;
        } else {
            lit[0] = *g;
            piece = lit;
        }
        size_t pl = strlen(piece);
        if (outsz - o < pl + 2)
            return -1;
        memcpy(out + o, piece, pl);
        o += pl;
    }
    out[o++] = '$';
    out[o] = '\0';
    return 0;
}

/* ---------------------------------------------------------------- building */
struct cctx {
    struct policy_set *set;
    char *err;
    size_t errsz;
    const char *rule; /* name of the policy being compiled, for errors */
    size_t pos;
};

static int cerr(struct cctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int cerr(struct cctx *c, const char *fmt, ...)
{
    char m[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    if (c->rule)
        snprintf(c->err, c->errsz, "policies[%zu] \"%.100s\": %s", c->pos, c->rule, m);
    else
        snprintf(c->err, c->errsz, "%s", m);
    return -1;
}

/* keep - the set owns p from now on */
static void *keep(struct policy_set *s, void *p)
{
    if (s->nstrings == s->capstrings) {
        s->capstrings = s->capstrings ? s->capstrings * 2 : 64;
        s->strings = xrealloc(s->strings, s->capstrings * sizeof *s->strings);
    }
    s->strings[s->nstrings++] = p;
    return p;
}

static char *kdup(struct policy_set *s, const char *str)
{
    return str ? keep(s, xstrdup(str)) : NULL;
}

/* get_str - optional string member (NULL when absent or null); -1 wrong type */
static int get_str(struct cctx *c, const json_t *o, const char *k, size_t max, const char **val)
{
    json_t *x = json_object_get(o, k);
    *val = NULL;
    if (!x || json_is_null(x))
        return 0;
    if (!json_is_string(x))
        return cerr(c, "%s must be a string", k);
    if (json_string_length(x) > max || strlen(json_string_value(x)) != json_string_length(x))
        return cerr(c, "%s is too long or holds a NUL", k);
    *val = json_string_value(x);
    return 0;
}

static int get_bool(struct cctx *c, const json_t *o, const char *k, bool def, bool *val)
{
    json_t *x = json_object_get(o, k);
    *val = def;
    if (!x || json_is_null(x))
        return 0;
    if (!json_is_boolean(x))
        return cerr(c, "%s must be true or false", k);
    *val = json_is_true(x);
    return 0;
}

/* get_list - optional array of strings (max entries); NULL/absent = empty */
static int get_list(struct cctx *c, const json_t *o, const char *k, size_t max, const json_t **arr)
{
    json_t *x = json_object_get(o, k);
    *arr = NULL;
    if (!x || json_is_null(x))
        return 0;
    if (!json_is_array(x))
        return cerr(c, "%s must be a list", k);
    if (json_array_size(x) > max)
        return cerr(c, "%s has more than %zu entries", k, max);
    for (size_t i = 0; i < json_array_size(x); i++) {
        json_t *e = json_array_get(x, i);
        if (!json_is_string(e) || json_string_length(e) > POLICY_MAX_PATTERN ||
            strlen(json_string_value(e)) != json_string_length(e))
            return cerr(c, "%s[%zu] must be a string", k, i);
    }
    *arr = x;
    return 0;
}

/* get_size - "10M", a byte count, or null */
static int get_size(struct cctx *c, const json_t *o, const char *k, bool *set, uint64_t *val)
{
    json_t *x = json_object_get(o, k);
    *set = false;
    *val = 0;
    if (!x || json_is_null(x))
        return 0;
    if (json_is_integer(x) && json_integer_value(x) >= 0)
        *val = (uint64_t)json_integer_value(x);
    else if (!json_is_string(x) || core_parse_size(json_string_value(x), val) < 0)
        return cerr(c, "%s must be a size", k);
    *set = true;
    return 0;
}

/* who_add - one address or *@domain into w (duplicates are harmless) */
static int who_add(struct cctx *c, struct who *w, const char *s)
{
    char n[POLICY_ADDR_MAX + 1];
    if (s[0] == '*' && s[1] == '@') {
        if (policy_norm_domain(s + 2, strlen(s + 2), n, sizeof n) < 0 || !n[0])
            return cerr(c, "bad domain pattern \"%.80s\"", s);
        w->domains[w->ndomains++] = kdup(c->set, n);
        return 0;
    }
    if (policy_norm_address(s, n, sizeof n) < 0 || !strchr(n, '@'))
        return cerr(c, "bad address \"%.80s\"", s);
    w->addrs[w->naddrs++] = kdup(c->set, n);
    return 0;
}

static void who_sort(struct who *w)
{
    if (w->naddrs)
        qsort(w->addrs, w->naddrs, sizeof *w->addrs, strp_cmp);
    if (w->ndomains)
        qsort(w->domains, w->ndomains, sizeof *w->domains, strp_cmp);
}

static void who_alloc(struct policy_set *s, struct who *w, size_t n)
{
    w->addrs = keep(s, xcalloc(n ? n : 1, sizeof *w->addrs));
    w->domains = keep(s, xcalloc(n ? n : 1, sizeof *w->domains));
}

/* get_who - "any", "organization" (when org_ok) or a list; def when absent */
static int get_who(struct cctx *c, const json_t *o, const char *k, enum who_kind def, bool org_ok,
                   struct who *w)
{
    json_t *x = json_object_get(o, k);
    memset(w, 0, sizeof *w);
    if (!x || json_is_null(x)) {
        w->kind = def;
        return 0;
    }
    if (json_is_string(x)) {
        const char *s = json_string_value(x);
        if (strcmp(s, "any") == 0)
            w->kind = WHO_ANY;
        else if (strcmp(s, "organization") == 0 && org_ok)
            w->kind = WHO_ORGANIZATION;
        else
            return cerr(c, "%s: unknown value \"%.40s\"", k, s);
        return 0;
    }
    const json_t *arr;
    if (get_list(c, o, k, POLICY_MAX_WHO, &arr) < 0)
        return -1;
    w->kind = WHO_LIST;
    who_alloc(c->set, w, json_array_size(arr));
    for (size_t i = 0; i < json_array_size(arr); i++)
        if (who_add(c, w, json_string_value(json_array_get(arr, i))) < 0)
            return -1;
    who_sort(w);
    return 0;
}

/* get_senderlist - approved_senders / blocked_senders */
static int get_senderlist(struct cctx *c, const json_t *t, const char *k, struct senderlist *l)
{
    const json_t *arr;
    memset(l, 0, sizeof *l);
    if (get_list(c, t, k, POLICY_MAX_LIST, &arr) < 0)
        return -1;
    size_t n = arr ? json_array_size(arr) : 0;
    who_alloc(c->set, &l->who, n);
    l->nets = keep(c->set, xcalloc(n ? n : 1, sizeof *l->nets));
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (strchr(s, '@')) {
            if (who_add(c, &l->who, s) < 0)
                return -1;
            continue;
        }
        char a[64];
        const char *slash = strchr(s, '/');
        size_t al = slash ? (size_t)(slash - s) : strlen(s);
        struct ipnet *net = &l->nets[l->nnets];
        if (al >= sizeof a)
            return cerr(c, "%s[%zu]: not an address, IP or CIDR", k, i);
        memcpy(a, s, al);
        a[al] = '\0';
        if (!ip_parse(a, net))
            return cerr(c, "%s[%zu]: not an address, IP or CIDR", k, i);
        if (slash) {
            uint64_t p;
            unsigned max = net->family == 4 ? 32 : 128;
            bool mapped = strchr(a, ':') && net->family == 4; /* ::ffff:a.b.c.d/len */
            if (core_parse_u64(slash + 1, 128, &p) < 0)
                return cerr(c, "%s[%zu]: bad prefix length", k, i);
            if (mapped)
                p = p >= 96 ? p - 96 : 0;
            if (p > max)
                return cerr(c, "%s[%zu]: bad prefix length", k, i);
            net->prefix = (unsigned)p;
        }
        l->nnets++;
    }
    who_sort(&l->who);
    return 0;
}

/* kw accumulation per direction and field before compiling */
struct patlist {
    const char **pats;
    unsigned *flags;
    unsigned *ids;
    unsigned *rule;
    size_t n, cap;
};

static void pat_push(struct patlist *pl, const char *p, unsigned fl, unsigned rule)
{
    if (pl->n == pl->cap) {
        pl->cap = pl->cap ? pl->cap * 2 : 16;
        pl->pats = xrealloc(pl->pats, pl->cap * sizeof *pl->pats);
        pl->flags = xrealloc(pl->flags, pl->cap * sizeof *pl->flags);
        pl->ids = xrealloc(pl->ids, pl->cap * sizeof *pl->ids);
        pl->rule = xrealloc(pl->rule, pl->cap * sizeof *pl->rule);
    }
    pl->pats[pl->n] = p;
    pl->flags[pl->n] = fl;
    pl->ids[pl->n] = (unsigned)pl->n;
    pl->rule[pl->n] = rule;
    pl->n++;
}

static void pat_free(struct patlist *pl)
{
    free(pl->pats);
    free(pl->flags);
    free(pl->ids);
    free(pl->rule);
    memset(pl, 0, sizeof *pl);
}

/* pat_compile - one database for a pattern list; on error names the rule
 * and the pattern. *rule_of receives the id -> rule table. */
static int pat_compile(struct cctx *c, struct dirset *d, struct patlist *pl, const char *what,
                       hs_database_t **db, unsigned **rule_of)
{
    if (pl->n == 0)
        return 0;
    hs_compile_error_t *ce = NULL;
    if (hs_compile_multi(pl->pats, pl->flags, pl->ids, (unsigned)pl->n, HS_MODE_BLOCK, NULL, db, &ce) !=
        HS_SUCCESS) {
        char why[256];
        hs_reason(ce, why, sizeof why);
        int e = ce ? ce->expression : -1;
        if (e >= 0 && (size_t)e < pl->n) {
            const struct rule *r = &d->rules[pl->rule[e]];
            c->rule = r->name;
            c->pos = r->position;
            cerr(c, "%s pattern \"%.200s\": %s", what, pl->pats[e], why);
        } else {
            cerr(c, "%s patterns: %s", what, why);
        }
        hs_free_compile_error(ce);
        *db = NULL;
        return -1;
    }
    *rule_of = keep(c->set, xcalloc(pl->n, sizeof **rule_of));
    memcpy(*rule_of, pl->rule, pl->n * sizeof **rule_of);
    return 0;
}

static int ext_cmp(const void *a, const void *b)
{
    const struct ext_entry *x = a, *y = b;
    int r = strcmp(x->ext, y->ext);
    return r ? r : (x->rule > y->rule) - (x->rule < y->rule);
}

/* c_virus / c_spam / c_content / c_scanx - criteria of rule r */
static int c_virus(struct cctx *c, const json_t *v, struct rule *r)
{
    static const char *const types[] = {"cleanable", "mass_mailing", "non_mass_mailing", NULL};
    const json_t *arr;
    bool heur, mac, deep, scr;
    if (!json_is_object(v))
        return cerr(c, "criteria.virus must be an object");
    r->has_virus = true;
    if (get_list(c, v, "types", 3, &arr) < 0 || get_bool(c, v, "heuristics", false, &heur) < 0 ||
        get_bool(c, v, "macros", false, &mac) < 0 || get_bool(c, v, "deep_analysis", false, &deep) < 0 ||
        get_bool(c, v, "scripts", false, &scr) < 0)
        return -1;
    if (!arr) {
        r->virus_types = PV_CLEANABLE | PV_MASS | PV_NONMASS;
    } else {
        for (size_t i = 0; i < json_array_size(arr); i++) {
            int t = name_index(types, json_string_value(json_array_get(arr, i)));
            if (t < 0)
                return cerr(c, "criteria.virus.types: unknown type");
            r->virus_types |= 1u << t;
        }
    }
    r->virus_kinds = 1u << PVK_SIGNATURE | (heur ? 1u << PVK_HEURISTIC : 0) | (mac ? 1u << PVK_MACRO : 0) |
                     (scr ? 1u << PVK_SCRIPT : 0) | (deep ? 1u << PVK_DEEP : 0);
    return 0;
}

static int c_spam(struct cctx *c, const json_t *s, struct rule *r)
{
    static const char *const bec[] = {"engine", "writing_style", "probable", NULL};
    const char *lvl;
    const json_t *arr;
    if (!json_is_object(s))
        return cerr(c, "criteria.spam must be an object");
    r->has_spam = true;
    if (get_str(c, s, "level", 32, &lvl) < 0 || get_bool(c, s, "phishing", false, &r->phishing) < 0 ||
        get_bool(c, s, "graymail", false, &r->graymail) < 0 ||
        get_bool(c, s, "web_reputation", false, &r->web_reputation) < 0 ||
        get_bool(c, s, "social_engineering", false, &r->social_engineering) < 0 ||
        get_list(c, s, "bec", 3, &arr) < 0)
        return -1;
    r->spam_level = lvl ? name_index(SPAM_LEVELS, lvl) : -1;
    if (lvl && r->spam_level < 0)
        return cerr(c, "criteria.spam.level: unknown level \"%.20s\"", lvl);
    for (size_t i = 0; arr && i < json_array_size(arr); i++) {
        int b = name_index(bec, json_string_value(json_array_get(arr, i)));
        if (b < 0)
            return cerr(c, "criteria.spam.bec: unknown kind");
        r->bec |= 1u << b;
    }
    return 0;
}

static int c_content(struct cctx *c, const json_t *o, struct rule *r, unsigned ri, struct patlist *kw,
                     struct patlist *names)
{
    const json_t *exts, *nm, *types;
    if (!json_is_object(o))
        return cerr(c, "criteria.content must be an object");
    r->has_content = true;
    if (get_list(c, o, "attachment_extensions", POLICY_MAX_ITEMS, &exts) < 0 ||
        get_list(c, o, "attachment_names", POLICY_MAX_ITEMS, &nm) < 0 ||
        get_list(c, o, "attachment_types", PT_N, &types) < 0 ||
        get_size(c, o, "attachment_size_over", &r->att_size_set, &r->att_size_over) < 0 ||
        get_bool(c, o, "password_protected", false, &r->password_protected) < 0 ||
        get_size(c, o, "message_size_over", &r->msg_size_set, &r->msg_size_over) < 0)
        return -1;
    r->nexts = exts ? json_array_size(exts) : 0;
    r->exts = keep(c->set, xcalloc(r->nexts ? r->nexts : 1, sizeof *r->exts));
    for (size_t i = 0; i < r->nexts; i++) {
        const char *e = json_string_value(json_array_get(exts, i));
        char low[64];
        size_t n = strlen(e);
        if (e[0] == '.')
            e++, n--;
        if (n == 0 || n >= sizeof low)
            return cerr(c, "attachment_extensions[%zu]: bad extension", i);
        for (size_t j = 0; j <= n; j++)
            low[j] = (char)tolower((unsigned char)e[j]);
        r->exts[i] = kdup(c->set, low);
    }
    if (r->nexts)
        qsort(r->exts, r->nexts, sizeof *r->exts, strp_cmp);
    for (size_t i = 0; types && i < json_array_size(types); i++) {
        int t = name_index(policy_type_names, json_string_value(json_array_get(types, i)));
        if (t < 0)
            return cerr(c, "attachment_types[%zu]: unknown type", i);
        r->types |= 1u << t;
    }
    for (size_t i = 0; nm && i < json_array_size(nm); i++) {
        char re[3 * POLICY_MAX_PATTERN + 8];
        const char *g = json_string_value(json_array_get(nm, i));
        if (!*g || glob_to_regex(g, re, sizeof re) < 0)
            return cerr(c, "attachment_names[%zu]: bad pattern", i);
        pat_push(names, kdup(c->set, re),
                 HS_FLAG_CASELESS | HS_FLAG_DOTALL | HS_FLAG_SINGLEMATCH | HS_FLAG_UTF8 | HS_FLAG_ALLOWEMPTY,
                 ri);
        r->nnames++;
    }
    json_t *ro = json_object_get(o, "recipients_over");
    r->recipients_over = -1;
    if (ro && !json_is_null(ro)) {
        if (!json_is_integer(ro) || json_integer_value(ro) < 0 || json_integer_value(ro) > 1000000)
            return cerr(c, "recipients_over must be a number");
        r->recipients_over = (long)json_integer_value(ro);
    }
    json_t *kws = json_object_get(o, "keywords");
    if (kws && !json_is_null(kws)) {
        if (!json_is_array(kws) || json_array_size(kws) > POLICY_MAX_ITEMS)
            return cerr(c, "keywords must be a list of at most %d entries", POLICY_MAX_ITEMS);
        for (size_t i = 0; i < json_array_size(kws); i++) {
            const json_t *k = json_array_get(kws, i), *in;
            const char *pat;
            if (!json_is_object(k) || get_str(c, k, "pattern", POLICY_MAX_PATTERN, &pat) < 0 || !pat ||
                get_list(c, k, "in", PKW_N, &in) < 0)
                return cerr(c, "keywords[%zu] must be {\"pattern\", \"in\"}", i);
            unsigned fields = 0;
            if (!in) {
                fields = 1u << PKW_SUBJECT | 1u << PKW_BODY;
            } else {
                for (size_t j = 0; j < json_array_size(in); j++) {
                    int f = name_index(KW_FIELDS, json_string_value(json_array_get(in, j)));
                    if (f < 0)
                        return cerr(c, "keywords[%zu].in: unknown field", i);
                    fields |= 1u << f;
                }
            }
            const char *p = pat;
            unsigned fl = policy_hs_flags(&p);
            if (!*p || strcmp(p, "(?i)") == 0)
                return cerr(c, "keywords[%zu]: empty pattern", i);
            for (int f = 0; f < PKW_N; f++)
                if (fields & (1u << f))
                    pat_push(&kw[f], p, fl, ri);
            r->kw_fields |= fields;
            r->nkeywords++;
        }
    }
    return 0;
}

static int c_scanx(struct cctx *c, const json_t *a, struct rule *r)
{
    static const char *const names[] = {"archive_limits", "encrypted", "malformed", "scan_failure", NULL};
    if (!json_is_array(a) || json_array_size(a) > 4)
        return cerr(c, "criteria.scan_exclusion must be a list");
    r->has_scanx = true;
    for (size_t i = 0; i < json_array_size(a); i++) {
        int x = name_index(names, json_string_value(json_array_get(a, i)));
        if (x < 0)
            return cerr(c, "criteria.scan_exclusion[%zu]: unknown value", i);
        r->scanx |= 1u << x;
    }
    return 0;
}

/* c_actions - the rule's actions */
static int c_actions(struct cctx *c, const json_t *a, struct rule *r)
{
    const char *ic, *cr, *bcc, *tag;
    if (a && !json_is_null(a) && !json_is_object(a))
        return cerr(c, "actions must be an object");
    if (get_str(c, a, "intercept", 32, &ic) < 0 ||
        get_str(c, a, "change_recipient", POLICY_ADDR_MAX, &cr) < 0 ||
        get_bool(c, a, "clean", false, &r->clean) < 0 ||
        get_bool(c, a, "delete_attachments", false, &r->delete_attachments) < 0 ||
        get_str(c, a, "tag_subject", 1000, &tag) < 0 ||
        get_bool(c, a, "tag_skip_signed", true, &r->tag_skip_signed) < 0 ||
        get_str(c, a, "bcc", POLICY_ADDR_MAX, &bcc) < 0)
        return -1;
    int i = ic ? name_index(INTERCEPT_NAMES, ic) : 0;
    if (i < 0)
        return cerr(c, "actions.intercept: unknown value \"%.30s\"", ic);
    r->intercept = (enum policy_intercept)i;
    if (r->intercept == POLICY_INTERCEPT_CHANGE_RECIPIENT && (!cr || !*cr))
        return cerr(c, "actions.change_recipient is required");
    r->change_recipient = r->intercept == POLICY_INTERCEPT_CHANGE_RECIPIENT ? kdup(c->set, cr) : NULL;
    r->bcc = bcc && *bcc ? kdup(c->set, bcc) : NULL;
    r->tag = tag && *tag ? kdup(c->set, tag) : NULL;
    const json_t *xh = json_object_get(a, "x_header"), *st = json_object_get(a, "stamp");
    if (xh && !json_is_null(xh)) {
        const char *n, *v;
        if (!json_is_object(xh) || get_str(c, xh, "name", 200, &n) < 0 ||
            get_str(c, xh, "value", 2000, &v) < 0 || !n || !*n)
            return cerr(c, "actions.x_header must be {\"name\", \"value\"}");
        r->xh_name = kdup(c->set, n);
        r->xh_value = kdup(c->set, v ? v : "");
    }
    if (st && !json_is_null(st)) {
        const char *t, *h;
        if (!json_is_object(st) || get_str(c, st, "text", 100000, &t) < 0 ||
            get_str(c, st, "html", 100000, &h) < 0 || (!t && !h))
            return cerr(c, "actions.stamp must be {\"text\", \"html\"}");
        r->stamp_text = kdup(c->set, t);
        r->stamp_html = kdup(c->set, h);
    }
    const json_t *nt = json_object_get(a, "notify");
    if (nt && !json_is_null(nt)) {
        if (!json_is_array(nt) || json_array_size(nt) > POLICY_MAX_NOTIFY)
            return cerr(c, "actions.notify must be a list of at most %d entries", POLICY_MAX_NOTIFY);
        r->nnotify = json_array_size(nt);
        r->notify = keep(c->set, xcalloc(r->nnotify ? r->nnotify : 1, sizeof *r->notify));
        for (size_t k = 0; k < r->nnotify; k++) {
            const json_t *e = json_array_get(nt, k), *to;
            const char *tpl;
            if (!json_is_object(e) || get_str(c, e, "template", 200, &tpl) < 0 || !tpl ||
                get_list(c, e, "to", POLICY_MAX_NOTIFY, &to) < 0 || !to)
                return cerr(c, "actions.notify[%zu] must be {\"template\", \"to\"}", k);
            struct notify_spec *ns = &r->notify[k];
            ns->template_name = kdup(c->set, tpl);
            ns->nto = json_array_size(to);
            ns->to = keep(c->set, xcalloc(ns->nto ? ns->nto : 1, sizeof *ns->to));
            for (size_t j = 0; j < ns->nto; j++)
                ns->to[j] = kdup(c->set, json_string_value(json_array_get(to, j)));
        }
    }
    return 0;
}

/* c_rule - one policy object into r */
static int c_rule(struct cctx *c, const json_t *p, struct rule *r, unsigned ri, struct patlist *kw,
                  struct patlist *names)
{
    const char *name, *dir;
    if (!json_is_object(p))
        return cerr(c, "policies[%zu] must be an object", c->pos);
    if (get_str(c, p, "name", 1000, &name) < 0 || !name)
        return cerr(c, "policies[%zu]: name is required", c->pos);
    c->rule = name;
    r->name = kdup(c->set, name);
    r->position = c->pos;
    if (get_str(c, p, "direction", 32, &dir) < 0 || get_bool(c, p, "enabled", true, &r->enabled) < 0)
        return -1;
    r->dir = dir && strcmp(dir, "outbound") == 0 ? POLICY_OUTBOUND : POLICY_INBOUND;
    if (dir && strcmp(dir, "outbound") != 0 && strcmp(dir, "inbound") != 0)
        return cerr(c, "direction must be inbound or outbound");
    bool in = r->dir == POLICY_INBOUND;
    if (get_who(c, p, "recipients", in ? WHO_ORGANIZATION : WHO_ANY, true, &r->rcpts) < 0 ||
        get_who(c, p, "senders", in ? WHO_ANY : WHO_ORGANIZATION, true, &r->senders) < 0 ||
        get_who(c, p, "exclude_recipients", WHO_LIST, false, &r->ex_rcpts) < 0 ||
        get_who(c, p, "exclude_senders", WHO_LIST, false, &r->ex_senders) < 0)
        return -1;
    const json_t *cr = json_object_get(p, "criteria");
    if (!json_is_object(cr))
        return cerr(c, "criteria must be an object");
    const json_t *x;
    r->spam_level = -1;
    r->recipients_over = -1;
    if ((x = json_object_get(cr, "virus")) && !json_is_null(x) && c_virus(c, x, r) < 0)
        return -1;
    if ((x = json_object_get(cr, "spam")) && !json_is_null(x) && c_spam(c, x, r) < 0)
        return -1;
    if ((x = json_object_get(cr, "content")) && !json_is_null(x) && c_content(c, x, r, ri, kw, names) < 0)
        return -1;
    if ((x = json_object_get(cr, "scan_exclusion")) && !json_is_null(x) && c_scanx(c, x, r) < 0)
        return -1;
    if (!r->has_virus && !r->has_spam && !r->has_content && !r->has_scanx)
        return cerr(c, "needs at least one criterion");
    r->cls = (enum policy_class)policy_rule_class(r->has_virus, r->has_scanx, r->has_content, r->has_spam);
    if (c_actions(c, json_object_get(p, "actions"), r) < 0)
        return -1;
    c->rule = NULL;
    return 0;
}

static uint64_t next_serial(void)
{
    static uint64_t serial;
    return __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED);
}

/* c_direction - every policy of one direction, in execution order */
static int c_direction(struct cctx *c, const json_t *pols, const unsigned *order, enum policy_direction dir)
{
    struct dirset *d = &c->set->dir[dir];
    struct patlist kw[PKW_N], names;
    int rc = -1;
    memset(kw, 0, sizeof kw);
    memset(&names, 0, sizeof names);
    for (size_t i = 0; i < json_array_size(pols); i++) {
        const char *ds = json_string_value(json_object_get(json_array_get(pols, i), "direction"));
        if ((ds && strcmp(ds, "outbound") == 0) == (dir == POLICY_OUTBOUND))
            d->nrules++;
    }
    d->rules = keep(c->set, xcalloc(d->nrules ? d->nrules : 1, sizeof *d->rules));
    /* place each policy at its execution order; patterns get that index */
    for (size_t i = 0; i < json_array_size(pols); i++) {
        const json_t *p = json_array_get(pols, i);
        const char *ds = json_string_value(json_object_get(p, "direction"));
        if ((ds && strcmp(ds, "outbound") == 0) != (dir == POLICY_OUTBOUND))
            continue;
        unsigned ri = order[i] - 1;
        c->pos = i;
        if (ri >= d->nrules || c_rule(c, p, &d->rules[ri], ri, kw, &names) < 0)
            goto out;
        d->rules[ri].order = order[i];
    }
    size_t nexts = 0;
    for (size_t i = 0; i < d->nrules; i++)
        nexts += d->rules[i].nexts;
    d->exts = keep(c->set, xcalloc(nexts ? nexts : 1, sizeof *d->exts));
    for (size_t i = 0; i < d->nrules; i++)
        for (size_t j = 0; j < d->rules[i].nexts; j++)
            d->exts[d->nexts++] = (struct ext_entry){d->rules[i].exts[j], (unsigned)i};
    if (d->nexts)
        qsort(d->exts, d->nexts, sizeof *d->exts, ext_cmp);
    for (int f = 0; f < PKW_N; f++) {
        if (pat_compile(c, d, &kw[f], "keyword", &d->kw[f], &d->kw_rule[f]) < 0)
            goto out;
        d->nkw[f] = kw[f].n;
    }
    if (pat_compile(c, d, &names, "attachment name", &d->names, &d->names_rule) < 0)
        goto out;
    d->nnames = names.n;
    rc = 0;
out:
    for (int f = 0; f < PKW_N; f++)
        pat_free(&kw[f]);
    pat_free(&names);
    return rc;
}

struct policy_set *policy_compile_tenant(const json_t *t, char *err, size_t errsz)
{
    struct policy_set *s = xcalloc(1, sizeof *s);
    struct cctx c = {.set = s, .err = err, .errsz = errsz};
    unsigned *order = NULL;
    s->refs = 1;
    s->serial = next_serial();
    if (errsz)
        err[0] = '\0';
    if (!json_is_object(t)) {
        cerr(&c, "the tenant must be an object");
        goto fail;
    }
    const char *admin;
    if (get_str(&c, t, "admin_email", POLICY_ADDR_MAX, &admin) < 0)
        goto fail;
    s->admin_email = kdup(s, admin);
    const json_t *doms = json_object_get(t, "domains");
    if (doms && !json_is_null(doms) && (!json_is_array(doms) || json_array_size(doms) > POLICY_MAX_DOMAINS)) {
        cerr(&c, "domains must be a list of at most %d", POLICY_MAX_DOMAINS);
        goto fail;
    }
    size_t nd = doms ? json_array_size(doms) : 0;
    s->domains = keep(s, xcalloc(nd ? nd : 1, sizeof *s->domains));
    for (size_t i = 0; i < nd; i++) {
        const json_t *d = json_array_get(doms, i);
        const char *name = json_string_value(json_is_object(d) ? json_object_get(d, "name") : d);
        char n[POLICY_ADDR_MAX + 1];
        if (!name || policy_norm_domain(name, strlen(name), n, sizeof n) < 0 || !n[0]) {
            cerr(&c, "domains[%zu]: bad domain name", i);
            goto fail;
        }
        s->domains[s->ndomains++] = kdup(s, n);
    }
    if (s->ndomains)
        qsort(s->domains, s->ndomains, sizeof *s->domains, strp_cmp);
    if (get_senderlist(&c, t, "approved_senders", &s->approved) < 0 ||
        get_senderlist(&c, t, "blocked_senders", &s->blocked) < 0)
        goto fail;

    const json_t *pols = json_object_get(t, "policies");
    if (pols && !json_is_null(pols) && (!json_is_array(pols) || json_array_size(pols) > POLICY_MAX_RULES)) {
        cerr(&c, "policies must be a list of at most %d", POLICY_MAX_RULES);
        goto fail;
    }
    json_t *empty = json_array();
    const json_t *pl = pols && json_is_array(pols) ? pols : empty;
    size_t np = json_array_size(pl);
    order = xcalloc(np ? np : 1, sizeof *order);
    int rc = policy_execution_order(pl, order, np);
    if (rc == 0)
        rc = c_direction(&c, pl, order, POLICY_INBOUND);
    if (rc == 0)
        rc = c_direction(&c, pl, order, POLICY_OUTBOUND);
    json_decref(empty);
    if (rc < 0)
        goto fail;
    free(order);
    return s;
fail:
    free(order);
    policy_set_unref(s);
    return NULL;
}

struct policy_set *policy_compile(const char *json, size_t len, char *err, size_t errsz)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errsz, "JSON: %s (line %d)", je.text, je.line);
        return NULL;
    }
    const json_t *t = root, *ts = json_object_get(root, "tenants");
    if (ts) {
        if (!json_is_array(ts) || json_array_size(ts) != 1) {
            snprintf(err, errsz, "the document must hold exactly one tenant");
            json_decref(root);
            return NULL;
        }
        t = json_array_get(ts, 0);
    }
    struct policy_set *s = policy_compile_tenant(t, err, errsz);
    json_decref(root);
    return s;
}

struct policy_set *policy_set_ref(struct policy_set *set)
{
    if (set)
        __atomic_add_fetch(&set->refs, 1, __ATOMIC_RELAXED);
    return set;
}

void policy_set_unref(struct policy_set *s)
{
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (int d = 0; d < 2; d++) {
        for (int f = 0; f < PKW_N; f++)
            hs_free_database(s->dir[d].kw[f]);
        hs_free_database(s->dir[d].names);
    }
    for (size_t i = 0; i < s->nstrings; i++)
        free(s->strings[i]);
    free(s->strings);
    free(s);
}

size_t policy_rule_count(const struct policy_set *set, enum policy_direction dir)
{
    return set && (unsigned)dir < 2 ? set->dir[dir].nrules : 0;
}

const char *policy_rule_name(const struct policy_set *set, enum policy_direction dir, unsigned order)
{
    if (!set || (unsigned)dir >= 2 || order == 0 || order > set->dir[dir].nrules)
        return NULL;
    return set->dir[dir].rules[order - 1].name;
}
