/*
 * detect_ident.c - identity and language helpers shared by the BEC, social
 * engineering and graymail detectors (detect_bec.c, detect_social.c,
 * detect_graymail.c, detect_style.c).
 *
 *   ident_domain / ident_domain_in / ident_is_own   address and domain tests
 *   ident_org_domain / ident_same_org   organisational domain (a public-suffix
 *                                       approximation: two labels, three under
 *                                       co.jp, co.uk, com.au, ...)
 *   ident_lookalike     a domain imitating one of a list (confusable skeleton
 *                       and Damerau-Levenshtein distance of the org label)
 *   ident_name_match    display name vs a person's name (case, width,
 *                       spacing, "Yamada Taro" order, parenthesised titles)
 *   ident_norm_text     text folded for phrase matching
 *   ident_lists_load    data/lists/freemail.txt and data/lists/bec-phrases.txt,
 *                       once per process ($MOAT_LISTS_DIR overrides the
 *                       directory; default MOAT_DATADIR/lists)
 *   ident_freemail / ident_phrases      lookups in those lists
 *
 * Free-mail domains match exactly (not their subdomains).
 * Bounds: names are looked at up to IDENT_MAX_NAME bytes, domain labels up to
 * 63, list files up to IDENT_MAX_ENTRIES lines of IDENT_MAX_LINE bytes. All
 * input is untrusted UTF-8 from the analysis (valid, NUL-terminated).
 */
#include "core/core.h"

#include <errno.h>

#include "detect/detect_int.h"

#ifndef MOAT_DATADIR
#define MOAT_DATADIR "data"
#endif

#define IDENT_MAX_ENTRIES 5000
#define IDENT_MAX_LINE 512

/* ---------------------------------------------------------------- domains */

const char *ident_domain(const char *addr)
{
    const char *at = addr ? strrchr(addr, '@') : NULL;
    return at ? at + 1 : "";
}

bool ident_domain_in(const char *domain, const char *const *list, size_t n)
{
    size_t dl = domain ? strlen(domain) : 0;
    if (!dl)
        return false;
    for (size_t i = 0; i < n; i++) {
        const char *e = list[i];
        size_t el = e ? strlen(e) : 0;
        if (!el || el > dl)
            continue;
        if (strcasecmp(domain + dl - el, e) == 0 && (dl == el || domain[dl - el - 1] == '.'))
            return true;
    }
    return false;
}

bool ident_is_own(const struct detect_context *ctx, const char *domain)
{
    return ident_domain_in(domain, ctx->own_domains, ctx->nown_domains);
}

/* second-level labels under which registrations happen at the third level
 * (co.jp, ne.jp, co.uk, com.au, ...) when the TLD is a two-letter ccTLD */
static bool sld_public(const char *label, size_t n)
{
    static const char *const slds[] = {"co", "ne", "or", "ac", "go", "ed", "gr", "lg", "ad", "com", "net",
                                       "org", "gov", "edu", "ltd", "plc", "gen", "biz", "info"};
    for (size_t i = 0; i < sizeof slds / sizeof *slds; i++)
        if (strlen(slds[i]) == n && strncasecmp(label, slds[i], n) == 0)
            return true;
    return false;
}

void ident_org_domain(const char *domain, char *out, size_t outsz)
{
    size_t n = domain ? strlen(domain) : 0;
    while (n && domain[n - 1] == '.')
        n--;
    /* positions of the last three dots */
    size_t dots[3];
    int nd = 0;
    for (size_t i = n; i-- > 0 && nd < 3;)
        if (domain[i] == '.')
            dots[nd++] = i;
    size_t start = 0;
    if (nd >= 2) {
        size_t tld = n - dots[0] - 1;
        size_t sld = dots[0] - dots[1] - 1;
        bool three = tld == 2 && sld_public(domain + dots[1] + 1, sld);
        if (!three)
            start = dots[1] + 1;
        else if (nd >= 3)
            start = dots[2] + 1;
    }
    size_t len = n - start;
    if (len >= outsz)
        len = outsz ? outsz - 1 : 0;
    if (outsz) {
        for (size_t i = 0; i < len; i++) {
            char c = domain[start + i];
            out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        out[len] = '\0';
    }
}

bool ident_same_org(const char *d1, const char *d2)
{
    char o1[256], o2[256];
    ident_org_domain(d1, o1, sizeof o1);
    ident_org_domain(d2, o2, sizeof o2);
    return *o1 && strcmp(o1, o2) == 0;
}

/* skeleton - the org label with look-alike characters folded: 0->o, 1/i->l,
 * rn->m, vv->w, 5->s, hyphens dropped */
static size_t skeleton(const char *s, size_t n, char *out, size_t outsz)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < outsz; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c == '-')
            continue;
        if (c == 'r' && i + 1 < n && (s[i + 1] == 'n' || s[i + 1] == 'N')) {
            c = 'm';
            i++;
        } else if (c == 'v' && i + 1 < n && (s[i + 1] == 'v' || s[i + 1] == 'V')) {
            c = 'w';
            i++;
        } else if (c == '0') {
            c = 'o';
        } else if (c == '1' || c == 'i') {
            c = 'l';
        } else if (c == '5') {
            c = 's';
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return o;
}

/* damerau - optimal string alignment distance, both strings at most 63 bytes */
static size_t damerau(const char *a, size_t n, const char *b, size_t m)
{
    size_t d[64][64];
    if (n > 63 || m > 63)
        return 64;
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            size_t c = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + c < v)
                v = d[i - 1][j - 1] + c;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

/* org_label - the first label of the org domain of d: pointer into org, length */
static size_t org_label(const char *org, const char **suffix)
{
    const char *dot = strchr(org, '.');
    *suffix = dot ? dot : "";
    return dot ? (size_t)(dot - org) : strlen(org);
}

/* lookalike_one - does domain imitate target (not being it)? */
static bool lookalike_one(const char *domain, const char *target)
{
    char od[256], ot[256], sd[64], st[64];
    ident_org_domain(domain, od, sizeof od);
    ident_org_domain(target, ot, sizeof ot);
    if (!*od || !*ot || strcmp(od, ot) == 0)
        return false;
    const char *sufd, *suft;
    size_t ld = org_label(od, &sufd), lt = org_label(ot, &suft);
    if (lt < 4 || ld > 63 || lt > 63)
        return false;
    size_t nd = skeleton(od, ld, sd, sizeof sd), nt = skeleton(ot, lt, st, sizeof st);
    if (ld == lt && memcmp(od, ot, ld) == 0)
        return false; /* the same name under another suffix (example.com for example.co.jp)
                       * is as often the same group as an imitation: not on its own */
    if (nd == nt && memcmp(sd, st, nd) == 0)
        return true; /* examp1e.test, exa-mple.co.jp */
    size_t dist = damerau(sd, nd, st, nt);
    if ((nt >= 5 && dist <= 1) || (nt >= 10 && dist <= 2))
        return true;
    /* the target's label as a hyphen-separated token: example-billing.test */
    for (const char *p = od; p + lt <= od + ld; p++) {
        if (memcmp(p, ot, lt) != 0)
            continue;
        bool left = p == od || p[-1] == '-';
        bool right = p + lt == od + ld || p[lt] == '-';
        if (left && right && ld != lt)
            return true;
    }
    return false;
}

const char *ident_lookalike(const char *domain, const char *const *list, size_t n)
{
    if (!domain || !*domain)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (ident_domain_in(domain, &list[i], 1))
            return NULL; /* it is one of them */
    for (size_t i = 0; i < n; i++)
        if (list[i] && lookalike_one(domain, list[i]))
            return list[i];
    return NULL;
}

/* ---------------------------------------------------------------- UTF-8 */

uint32_t ident_fold(uint32_t cp)
{
    if (cp >= 0xFF01 && cp <= 0xFF5E) /* full-width ASCII */
        cp -= 0xFEE0;
    else if (cp == 0x3000 || cp == 0xA0 || cp == '\t' || cp == '\r' || cp == '\n')
        cp = ' ';
    if (cp >= 'A' && cp <= 'Z')
        cp += 32;
    return cp;
}

/* ---------------------------------------------------------------- names */

#define NAME_MAX_TOKENS 8

struct name_tokens {
    char tok[NAME_MAX_TOKENS][IDENT_MAX_NAME];
    size_t n;
    bool ascii;
};

/* tokenize_name - folded tokens of a display name: separators are space,
 * ",", ".", quotes, "・"; "(...)"/"（...）"/"[...]" parts are dropped */
static void tokenize_name(const char *s, struct name_tokens *t)
{
    struct buf cur;
    size_t len = s ? strnlen(s, IDENT_MAX_NAME) : 0;
    int depth = 0;
    t->n = 0;
    t->ascii = true;
    buf_init(&cur, IDENT_MAX_NAME - 1);
    for (size_t i = 0; i <= len;) {
        uint32_t cp = ' ';
        if (i < len)
            i += core_utf8_next(s, len, i, &cp);
        else
            i++;
        cp = ident_fold(cp);
        if (cp == '(' || cp == '[' || cp == 0x3010) {
            depth++;
            cp = ' ';
        } else if ((cp == ')' || cp == ']' || cp == 0x3011) && depth > 0) {
            depth--;
            cp = ' ';
        }
        bool sep = cp == ' ' || cp == ',' || cp == '.' || cp == '"' || cp == '\'' || cp == 0x30FB || cp == 0x3001;
        if (depth > 0)
            continue;
        if (!sep) {
            if (cp >= 0x80)
                t->ascii = false;
            buf_append_utf8(&cur, cp);
            continue;
        }
        if (cur.len && t->n < NAME_MAX_TOKENS) {
            memcpy(t->tok[t->n], cur.ptr, cur.len);
            t->tok[t->n][cur.len] = '\0';
            t->n++;
        }
        buf_reset(&cur);
    }
    buf_free(&cur);
}

static void join(const struct name_tokens *t, size_t from, size_t k, bool rev, char *out, size_t outsz)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t j = 0; j < k; j++) {
        const char *w = t->tok[rev ? from + k - 1 - j : from + j];
        size_t n = strlen(w);
        if (o + n >= outsz)
            return;
        memcpy(out + o, w, n);
        o += n;
        out[o] = '\0';
    }
}

bool ident_name_match(const char *display, const char *name)
{
    struct name_tokens d, h;
    char hj[IDENT_MAX_NAME * 2], hr[IDENT_MAX_NAME * 2], dj[IDENT_MAX_NAME * 2], w[IDENT_MAX_NAME * 2];
    if (!display || !name)
        return false;
    tokenize_name(display, &d);
    tokenize_name(name, &h);
    if (!d.n || !h.n)
        return false;
    join(&h, 0, h.n, false, hj, sizeof hj);
    join(&h, 0, h.n, true, hr, sizeof hr);
    join(&d, 0, d.n, false, dj, sizeof dj);
    if (strlen(hj) < 3)
        return false; /* too short to mean anything */
    if (strcmp(dj, hj) == 0 || strcmp(dj, hr) == 0)
        return true;
    join(&d, 0, d.n, true, w, sizeof w);
    if (strcmp(w, hj) == 0)
        return true; /* "山田太郎" = "山田 太郎" = "太郎 山田"; "Taro Yamada" = "Yamada, Taro" */
    /* the name as consecutive tokens in either order ("CEO Taro Yamada") */
    for (size_t i = 0; i + h.n <= d.n; i++) {
        join(&d, i, h.n, false, w, sizeof w);
        if (strcmp(w, hj) == 0 || strcmp(w, hr) == 0)
            return true;
    }
    /* Japanese names run into titles without spaces ("社長山田太郎", "山田太郎社長") */
    if (!h.ascii && strlen(hj) >= 6 && (strstr(dj, hj) || strstr(dj, hr)))
        return true;
    return false;
}

/* ---------------------------------------------------------------- text */

size_t ident_norm_text(const char *in, size_t len, char *out, size_t outsz)
{
    size_t o = 0;
    bool space = true;
    if (!outsz)
        return 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = core_utf8_next(in, len, i, &cp);
        cp = ident_fold(cp);
        if (cp == ' ') {
            i += n;
            if (space)
                continue;
            space = true;
            if (o + 1 >= outsz)
                break;
            out[o++] = ' ';
            continue;
        }
        space = false;
        if (cp < 0x80) {
            if (o + 1 >= outsz)
                break;
            out[o++] = (char)cp;
        } else {
            if (o + n >= outsz)
                break;
            memcpy(out + o, in + i, n); /* non-ASCII (full-width ASCII was folded above) */
            o += n;
        }
        i += n;
    }
    out[o] = '\0';
    return o;
}

/* ---------------------------------------------------------------- lists */

struct phrase {
    char *text; /* normalised */
    size_t len;
    double weight;
    unsigned cls;
};

static char **freemail;
static size_t nfreemail;
static struct phrase *phrases;
static size_t nphrases;
static bool lists_loaded;

static void lists_dir(char *out, size_t outsz)
{
    const char *d = getenv("MOAT_LISTS_DIR");
    if (d && *d)
        snprintf(out, outsz, "%s", d);
    else
        snprintf(out, outsz, "%s/lists", MOAT_DATADIR);
}

/* read_lines - call fn on every non-empty, non-comment line (trimmed); -1 if
 * the file cannot be opened or holds too many lines */
static int read_lines(const char *path, int (*fn)(char *line, size_t lineno, void *arg), void *arg, char *err,
                      size_t errsz)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[IDENT_MAX_LINE];
    size_t lineno = 0, n = 0;
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t l = strlen(line);
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r' || line[l - 1] == ' ' || line[l - 1] == '\t'))
            line[--l] = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '#')
            continue;
        if (++n > IDENT_MAX_ENTRIES) {
            snprintf(err, errsz, "%s: more than %d entries", path, IDENT_MAX_ENTRIES);
            rc = -1;
            break;
        }
        if (fn(p, lineno, arg) < 0) {
            snprintf(err, errsz, "%s:%zu: bad line", path, lineno);
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

static int add_freemail(char *line, size_t lineno, void *arg)
{
    (void)lineno;
    (void)arg;
    for (char *p = line; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
        if (*p == ' ' || *p == '\t' || *p == '@')
            return -1;
    }
    freemail = xrealloc(freemail, (nfreemail + 1) * sizeof *freemail);
    freemail[nfreemail++] = xstrdup(line);
    return 0;
}

/* a phrase line: "[class]" starts a section; "WEIGHT PHRASE" adds a phrase */
static int add_phrase(char *line, size_t lineno, void *arg)
{
    unsigned *cls = arg;
    (void)lineno;
    if (line[0] == '[') {
        if (strcmp(line, "[payment]") == 0)
            *cls = IDENT_PHRASE_PAYMENT;
        else if (strcmp(line, "[urgency]") == 0)
            *cls = IDENT_PHRASE_URGENCY;
        else if (strcmp(line, "[secrecy]") == 0)
            *cls = IDENT_PHRASE_SECRECY;
        else
            return -1;
        return 0;
    }
    char *sp = line;
    while (*sp && *sp != ' ' && *sp != '\t')
        sp++;
    if (!*sp)
        return -1;
    *sp++ = '\0';
    char *end;
    errno = 0;
    double w = strtod(line, &end);
    if (errno || *end || !(w > 0) || w > 1)
        return -1;
    while (*sp == ' ' || *sp == '\t')
        sp++;
    char norm[IDENT_MAX_LINE];
    size_t n = ident_norm_text(sp, strlen(sp), norm, sizeof norm);
    if (!n)
        return -1;
    phrases = xrealloc(phrases, (nphrases + 1) * sizeof *phrases);
    phrases[nphrases].text = xstrndup(norm, n);
    phrases[nphrases].len = n;
    phrases[nphrases].weight = w;
    phrases[nphrases].cls = *cls;
    nphrases++;
    return 0;
}

int ident_lists_load(char *err, size_t errsz)
{
    char dir[4096], path[4200];
    if (lists_loaded)
        return 0;
    lists_loaded = true;
    lists_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/freemail.txt", dir);
    int rc = read_lines(path, add_freemail, NULL, err, errsz);
    if (rc == 0) {
        unsigned cls = IDENT_PHRASE_PAYMENT;
        snprintf(path, sizeof path, "%s/bec-phrases.txt", dir);
        rc = read_lines(path, add_phrase, &cls, err, errsz);
    }
    return rc;
}

void ident_lists_free(void)
{
    for (size_t i = 0; i < nfreemail; i++)
        free(freemail[i]);
    free(freemail);
    freemail = NULL;
    nfreemail = 0;
    for (size_t i = 0; i < nphrases; i++)
        free(phrases[i].text);
    free(phrases);
    phrases = NULL;
    nphrases = 0;
    lists_loaded = false;
}

bool ident_freemail(const char *domain)
{
    /* exact: groups.msn.com or groups.yahoo.com are mailing lists, not mailboxes */
    for (size_t i = 0; domain && i < nfreemail; i++)
        if (strcasecmp(domain, freemail[i]) == 0)
            return true;
    return false;
}

double ident_phrases(const char *norm, size_t len, unsigned cls_mask, struct buf *why, size_t *count)
{
    size_t hit[64], nhit = 0, shown = 0;
    double sum = 0;
    for (size_t i = 0; i < nphrases && nhit < 64; i++)
        if ((phrases[i].cls & cls_mask) && memmem(norm, len, phrases[i].text, phrases[i].len))
            hit[nhit++] = i;
    for (size_t k = 0; k < nhit; k++) {
        const struct phrase *p = &phrases[hit[k]];
        bool inside = false; /* "振込" inside a matched "振込先の変更" counts once */
        for (size_t m = 0; m < nhit && !inside; m++)
            inside = m != k && phrases[hit[m]].len > p->len && memmem(phrases[hit[m]].text, phrases[hit[m]].len, p->text, p->len);
        if (inside)
            continue;
        sum += p->weight;
        if (count)
            (*count)++;
        if (why && shown < 4)
            buf_printf(why, "%s'%s'", shown++ ? ", " : "", p->text);
    }
    return sum;
}

size_t ident_subject_text(const struct analysis *a, char *out, size_t outsz)
{
    size_t o = 0;
    if (a->subject)
        o = ident_norm_text(a->subject, strlen(a->subject), out, outsz);
    if (o + 2 < outsz) {
        out[o++] = ' ';
        out[o] = '\0';
        size_t tl = a->text ? a->text_len : 0;
        o += ident_norm_text(a->text ? a->text : "", tl, out + o, outsz - o);
    }
    return o;
}
