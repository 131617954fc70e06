/*
 * detect_phish.c - the phishing detector (category "phishing"): signals that
 * a message tries to make its reader believe a link or a sender belongs to
 * someone it does not.
 *
 *   detect_phish_init / _run / _shutdown   the detector (detect_int.h)
 *   detect_lists_dir      where data/lists lives ($MOAT_LISTS_DIR, else
 *                         MOAT_DATADIR/lists)
 *   detect_list_read      read one list file line by line (bounded)
 *   detect_registrable    the registrable domain of a host (compact suffix rules)
 *   detect_host_in        host equals a domain or is a subdomain of it
 *   phish_skeleton        confusable skeleton of a (Unicode) domain label
 *   phish_edit_distance   bounded Damerau (optimal string alignment) distance
 *   phish_ip_host         IPv4 (any numeric form) / IPv6 literal host test
 *
 * Signals (one detection each, the strongest instance as evidence; scores
 * in docs/detection.md "Phishing"): link-text-mismatch, ip-literal-host,
 * ip-obfuscated-host, homograph-host, lookalike-domain, brand-in-domain,
 * brand-impersonation, credential-form, url-shortener, open-redirect. When
 * two or more fire, a "phishing-combined" detection carries their noisy-OR
 * 1 - prod(1 - s_i). A policy matches "phishing" at PHISH_T_MATCH (0.5);
 * every signal that can be legitimate on its own scores below it.
 *
 * Data: data/lists/brands.txt (brands' domains and names) and
 * data/lists/shorteners.txt, loaded once per process by detect_phish_init.
 * The tenant's own and high-profile domains come per message from the
 * detect_context and are treated like brands for look-alike checks.
 *
 * Limits: PHISH_MAX_URLS URLs and PHISH_MAX_DOMAINS distinct registrable
 * domains examined per message, labels of at most 63 bytes for distances,
 * PHISH_SCAN_MAX bytes of the raw message and of each HTML attachment
 * scanned for forms and numeric hosts, PHISH_TEXT_MAX bytes of body text for
 * lure words.
 *
 * Security: everything read here is hostile; evidence is clipped (UTF-8
 * safe) before it is recorded.
 */
#include "core/core.h"

#include <ctype.h>

#include <arpa/inet.h>
#include <errno.h>

#include "detect/detect_int.h"

#ifndef MOAT_DATADIR
#define MOAT_DATADIR "data"
#endif

#define PHISH_MAX_BRANDS 400
#define PHISH_MAX_BRAND_DOMAINS 16
#define PHISH_MAX_BRAND_NAMES 12
#define PHISH_MAX_SHORTENERS 2000
#define PHISH_MAX_URLS 500
#define PHISH_MAX_DOMAINS 200
#define PHISH_MAX_TENANT_REFS 200 /* own + high-profile domains compared */
#define PHISH_SCAN_MAX (4 * 1024 * 1024)
#define PHISH_TEXT_MAX (64 * 1024)
#define PHISH_LABEL_MAX 63
#define PHISH_MAX_DISTANCES 50000      /* edit distances per message */
#define PHISH_SCRIPT_SCAN (256 * 1024) /* script bytes read per HTML document */

/* ---------------------------------------------------------------- lists */

struct brand {
    char *domains[PHISH_MAX_BRAND_DOMAINS];
    bool common[PHISH_MAX_BRAND_DOMAINS]; /* "~domain": never a look-alike target */
    size_t ndomains;
    char *names[PHISH_MAX_BRAND_NAMES];
    size_t nnames;
};

static struct brand *brands;
static size_t nbrands;
static char **shorteners;
static size_t nshorteners;
static bool lists_loaded;
static char lists_err[300];
static void brand_refs_build(void);
static void brand_refs_free(void);

const char *detect_lists_dir(void)
{
    const char *d = getenv("MOAT_LISTS_DIR");
    return d && *d ? d : MOAT_DATADIR "/lists";
}

int detect_list_read(const char *name, void (*line)(char *s, void *arg), void *arg, char *err, size_t errsz)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", detect_lists_dir(), name);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        return -1;
    }
    char buf[2048];
    bool longline = false;
    while (fgets(buf, sizeof buf, f)) {
        size_t n = strlen(buf);
        bool complete = n && buf[n - 1] == '\n';
        if (longline) { /* the rest of an over-long line: skipped */
            longline = !complete;
            continue;
        }
        longline = !complete && !feof(f);
        if (longline)
            continue;
        char *hash = strchr(buf, '#');
        if (hash)
            *hash = '\0';
        n = strlen(buf);
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
            buf[--n] = '\0';
        char *s = buf;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s)
            line(s, arg);
    }
    fclose(f);
    return 0;
}

static void ascii_lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s + 32);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* brand_line - "<domain> [<domain>...] = <name> [; <name>...]" */
static void brand_line(char *s, void *arg)
{
    (void)arg;
    char *eq = strchr(s, '=');
    if (!eq || nbrands >= PHISH_MAX_BRANDS)
        return;
    *eq = '\0';
    struct brand b = {.ndomains = 0};
    char *p = s;
    while (*p && b.ndomains < PHISH_MAX_BRAND_DOMAINS) {
        while (*p == ' ' || *p == '\t')
            p++;
        char *e = p;
        while (*e && *e != ' ' && *e != '\t')
            e++;
        if (e == p)
            break;
        bool common = *p == '~';
        char *d = xstrndup(p + common, (size_t)(e - p - common));
        ascii_lower(d);
        b.common[b.ndomains] = common;
        b.domains[b.ndomains++] = d;
        p = e;
    }
    p = eq + 1;
    while (p && b.nnames < PHISH_MAX_BRAND_NAMES) {
        char *semi = strchr(p, ';');
        if (semi)
            *semi = '\0';
        char *n = trim(p);
        if (strlen(n) >= 3)
            b.names[b.nnames++] = xstrdup(n);
        p = semi ? semi + 1 : NULL;
    }
    if (!b.ndomains) {
        for (size_t i = 0; i < b.nnames; i++)
            free(b.names[i]);
        return;
    }
    brands = xrealloc(brands, (nbrands + 1) * sizeof *brands);
    brands[nbrands++] = b;
}

static void shortener_line(char *s, void *arg)
{
    (void)arg;
    if (nshorteners >= PHISH_MAX_SHORTENERS || strlen(s) > 253 || strchr(s, ' '))
        return;
    shorteners = xrealloc(shorteners, (nshorteners + 1) * sizeof *shorteners);
    shorteners[nshorteners] = xstrdup(s);
    ascii_lower(shorteners[nshorteners++]);
}

int detect_phish_init(const struct moat_config *cfg, char *err, size_t errsz)
{
    (void)cfg;
    if (lists_loaded)
        return 0;
    lists_loaded = true;
    if (detect_list_read("brands.txt", brand_line, NULL, lists_err, sizeof lists_err) < 0 ||
        detect_list_read("shorteners.txt", shortener_line, NULL, lists_err, sizeof lists_err) < 0) {
        snprintf(err, errsz, "phishing lists: %s", lists_err);
        return -1;
    }
    lists_err[0] = '\0';
    brand_refs_build();
    return 0;
}

void detect_phish_shutdown(void)
{
    for (size_t i = 0; i < nbrands; i++) {
        for (size_t k = 0; k < brands[i].ndomains; k++)
            free(brands[i].domains[k]);
        for (size_t k = 0; k < brands[i].nnames; k++)
            free(brands[i].names[k]);
    }
    free(brands);
    brands = NULL;
    brand_refs_free();
    nbrands = 0;
    for (size_t i = 0; i < nshorteners; i++)
        free(shorteners[i]);
    free(shorteners);
    shorteners = NULL;
    nshorteners = 0;
    lists_loaded = false;
}

/* ---------------------------------------------------------------- domains */

bool detect_host_in(const char *host, const char *domain)
{
    if (!host || !domain || !*domain)
        return false;
    size_t h = strlen(host), d = strlen(domain);
    if (h < d || strcasecmp(host + h - d, domain) != 0)
        return false;
    return h == d || host[h - d - 1] == '.';
}

/* hosting platforms and other suffixes under which each name has its own
 * owner (a compact subset of the Public Suffix List's private section) */
static const char *const private_suffixes[] = {
    "web.app",           "firebaseapp.com",
    "github.io",         "herokuapp.com",
    "blogspot.com",      "netlify.app",
    "pages.dev",         "workers.dev",
    "azurewebsites.net", "vercel.app",
    "onrender.com",      "glitch.me",
    "000webhostapp.com", "r2.dev",
    "weebly.com",        "wixsite.com",
    "ngrok.io",          "ngrok-free.app",
    "appspot.com",       "cloudfront.net",
    "s3.amazonaws.com",  "web.core.windows.net",
    "repl.co",           "replit.app",
    "godaddysites.com",  "square.site",
    "webflow.io",        "translate.goog",
    "myshopify.com",     "wordpress.com",
    "duckdns.org",       "no-ip.com",
    "ddns.net",          "dynu.net",
    "surge.sh",          "gitlab.io",
    "fly.dev",           "web.val.run",
    "ipfs.io",           "dweb.link",
};

/* second-level names that are public under a two-letter country TLD
 * (co.jp, ne.jp, com.au, co.uk, ...) */
static const char *const cc_second_levels[] = {
    "co",  "ne",  "or",  "ac",  "ad",  "ed",  "go",   "gr",  "lg",  "com",  "net", "org", "gov",
    "edu", "mil", "ltd", "plc", "sch", "gob", "gouv", "nic", "biz", "info", "nom", "int",
};

size_t detect_registrable(const char *host, char *out, size_t outsz)
{
    if (!outsz)
        return 0;
    out[0] = '\0';
    if (!host || !*host)
        return 0;
    size_t n = strlen(host);
    if (n > 253)
        n = 253;
    if (phish_ip_host(host)) {
        core_strlcpy(out, host, outsz);
        return strlen(out);
    }
    /* the public suffix: longest private suffix, else ccTLD rule, else TLD */
    size_t suffix = 0; /* byte offset where the public suffix starts */
    bool found = false;
    for (size_t i = 0; i < sizeof private_suffixes / sizeof *private_suffixes; i++) {
        size_t s = strlen(private_suffixes[i]);
        if (n > s && host[n - s - 1] == '.' && strncasecmp(host + n - s, private_suffixes[i], s) == 0 &&
            (!found || n - s < suffix)) {
            suffix = n - s;
            found = true;
        }
    }
    if (!found) {
        size_t last = n;
        while (last > 0 && host[last - 1] != '.')
            last--;
        suffix = last;
        if (n - last == 2 && last >= 2) {
            size_t sl = last - 1;
            while (sl > 0 && host[sl - 1] != '.')
                sl--;
            size_t len = last - 1 - sl;
            for (size_t i = 0; i < sizeof cc_second_levels / sizeof *cc_second_levels; i++)
                if (strlen(cc_second_levels[i]) == len &&
                    strncasecmp(host + sl, cc_second_levels[i], len) == 0) {
                    if (sl > 0)
                        suffix = sl;
                    break;
                }
        }
    }
    size_t start = 0;
    if (suffix >= 2) {
        start = suffix - 1; /* the dot before the suffix */
        while (start > 0 && host[start - 1] != '.')
            start--;
    }
    size_t len = n - start;
    if (len >= outsz)
        len = outsz - 1;
    memcpy(out, host + start, len);
    out[len] = '\0';
    ascii_lower(out);
    return len;
}

/* org_label - the label of a registrable domain before its suffix
 * ("amazon" of "amazon.co.jp"); empty for IP literals */
static void org_label(const char *reg, char *out, size_t outsz)
{
    out[0] = '\0';
    if (phish_ip_host(reg))
        return;
    const char *dot = strchr(reg, '.');
    size_t len = dot ? (size_t)(dot - reg) : strlen(reg);
    if (len >= outsz)
        len = outsz - 1;
    memcpy(out, reg, len);
    out[len] = '\0';
}

/* phish_ip_host - an IPv4 address in any numeric form inet_aton accepts
 * (dotted, decimal 3232235777, hex 0xC0A80101, octal 0300.0250.1.1) or an
 * IPv6 literal */
bool phish_ip_host(const char *h)
{
    if (!h || !*h)
        return false;
    if (h[0] == '[' || strchr(h, ':'))
        return true;
    if (strlen(h) > 64 || h[0] < '0' || h[0] > '9')
        return false;
    for (const char *p = h; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.' || *p == 'x' || *p == 'X' || (*p >= 'a' && *p <= 'f') ||
              (*p >= 'A' && *p <= 'F')))
            return false;
    struct in_addr in;
    return inet_aton(h, &in) != 0;
}

/* ip_public - not loopback, private, link-local or unspecified */
static bool ip_public(const char *h)
{
    struct in_addr in;
    if (inet_aton(h, &in)) {
        uint32_t a = ntohl(in.s_addr);
        return !((a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 || (a >> 16) == 0xA9FE ||
                 (a >> 20) == 0xAC1 || (a >> 16) == 0xC0A8);
    }
    char v6[64];
    core_strlcpy(v6, h[0] == '[' ? h + 1 : h, sizeof v6);
    char *e = strchr(v6, ']');
    if (e)
        *e = '\0';
    unsigned char b[16];
    if (inet_pton(AF_INET6, v6, b) != 1)
        return true;
    static const unsigned char lo[16] = {[15] = 1}, any[16] = {0};
    return memcmp(b, lo, 16) != 0 && memcmp(b, any, 16) != 0 && !(b[0] == 0xFE && (b[1] & 0xC0) == 0x80) &&
           (b[0] & 0xFE) != 0xFC;
}

/* ---------------------------------------------------------------- UTF-8, confusables */

/* invisible - zero-width, bidi, variation selectors, soft hyphen: used to
 * break up words ("Coi\u2064nc\u2064heck") past filters */
static bool invisible(uint32_t c)
{
    return c == 0xAD || c == 0x34F || c == 0x180E || (c >= 0x200B && c <= 0x200F) ||
           (c >= 0x202A && c <= 0x202E) || (c >= 0x2060 && c <= 0x206F) || (c >= 0xFE00 && c <= 0xFE0F) ||
           c == 0xFEFF || c == 0x3164 || (c >= 0xE0100 && c <= 0xE01EF) || (c >= 0xE0000 && c <= 0xE007F);
}

/* confusables: code points that render like ASCII letters (a compact
 * subset of Unicode's confusables.txt for Latin with diacritics, Greek,
 * Cyrillic and Armenian; full-width forms are folded by range) */
struct confusable {
    uint32_t cp;
    char to;
};
static const struct confusable confusables[] = {
    {0xE0, 'a'},  {0xE1, 'a'},  {0xE2, 'a'},  {0xE3, 'a'},  {0xE4, 'a'},  {0xE5, 'a'},  {0xE7, 'c'},
    {0xE8, 'e'},  {0xE9, 'e'},  {0xEA, 'e'},  {0xEB, 'e'},  {0xEC, 'i'},  {0xED, 'i'},  {0xEE, 'i'},
    {0xEF, 'i'},  {0xF1, 'n'},  {0xF2, 'o'},  {0xF3, 'o'},  {0xF4, 'o'},  {0xF5, 'o'},  {0xF6, 'o'},
    {0xF8, 'o'},  {0xF9, 'u'},  {0xFA, 'u'},  {0xFB, 'u'},  {0xFC, 'u'},  {0xFD, 'y'},  {0xFF, 'y'},
    {0x101, 'a'}, {0x103, 'a'}, {0x105, 'a'}, {0x107, 'c'}, {0x109, 'c'}, {0x10B, 'c'}, {0x10D, 'c'},
    {0x111, 'd'}, {0x113, 'e'}, {0x117, 'e'}, {0x119, 'e'}, {0x11B, 'e'}, {0x11D, 'g'}, {0x11F, 'g'},
    {0x121, 'g'}, {0x123, 'g'}, {0x125, 'h'}, {0x127, 'h'}, {0x129, 'i'}, {0x12B, 'i'}, {0x12F, 'i'},
    {0x131, 'i'}, {0x135, 'j'}, {0x137, 'k'}, {0x13A, 'l'}, {0x13C, 'l'}, {0x13E, 'l'}, {0x142, 'l'},
    {0x144, 'n'}, {0x146, 'n'}, {0x148, 'n'}, {0x14D, 'o'}, {0x14F, 'o'}, {0x151, 'o'}, {0x155, 'r'},
    {0x157, 'r'}, {0x159, 'r'}, {0x15B, 's'}, {0x15D, 's'}, {0x15F, 's'}, {0x161, 's'}, {0x163, 't'},
    {0x165, 't'}, {0x169, 'u'}, {0x16B, 'u'}, {0x16D, 'u'}, {0x16F, 'u'}, {0x171, 'u'}, {0x173, 'u'},
    {0x175, 'w'}, {0x177, 'y'}, {0x17A, 'z'}, {0x17C, 'z'}, {0x17E, 'z'}, {0x180, 'b'}, {0x192, 'f'},
    {0x1A1, 'o'}, {0x1B0, 'u'}, {0x1CE, 'a'}, {0x1D0, 'i'}, {0x1D2, 'o'}, {0x1D4, 'u'}, {0x251, 'a'},
    {0x261, 'g'}, {0x269, 'i'}, {0x26A, 'i'}, {0x3AC, 'a'}, {0x3AD, 'e'}, {0x3AF, 'i'}, {0x3B1, 'a'},
    {0x3B3, 'y'}, {0x3B5, 'e'}, {0x3B9, 'i'}, {0x3BA, 'k'}, {0x3BD, 'v'}, {0x3BF, 'o'}, {0x3C1, 'p'},
    {0x3C4, 't'}, {0x3C5, 'u'}, {0x3C7, 'x'}, {0x3C9, 'w'}, {0x3CC, 'o'}, {0x3CD, 'u'}, {0x430, 'a'},
    {0x435, 'e'}, {0x43A, 'k'}, {0x43E, 'o'}, {0x440, 'p'}, {0x441, 'c'}, {0x443, 'y'}, {0x445, 'x'},
    {0x44C, 'b'}, {0x450, 'e'}, {0x451, 'e'}, {0x455, 's'}, {0x456, 'i'}, {0x457, 'i'}, {0x458, 'j'},
    {0x45B, 'h'}, {0x461, 'w'}, {0x4BB, 'h'}, {0x4C0, 'l'}, {0x4CF, 'l'}, {0x4D1, 'a'}, {0x4D3, 'a'},
    {0x4E7, 'o'}, {0x501, 'd'}, {0x51B, 'q'}, {0x51D, 'w'}, {0x561, 'w'}, {0x563, 'q'}, {0x566, 'q'},
    {0x570, 'h'}, {0x575, 'j'}, {0x578, 'n'}, {0x57C, 'n'}, {0x57D, 'u'}, {0x581, 'g'}, {0x585, 'o'},
};

/* confusable_ascii - the ASCII letter c looks like, or 0 */
static char confusable_ascii(uint32_t c)
{
    if (c >= 0xFF10 && c <= 0xFF19)
        return (char)('0' + (c - 0xFF10));
    if (c >= 0xFF21 && c <= 0xFF3A)
        return (char)('a' + (c - 0xFF21));
    if (c >= 0xFF41 && c <= 0xFF5A)
        return (char)('a' + (c - 0xFF41));
    size_t lo = 0, hi = sizeof confusables / sizeof *confusables;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (confusables[mid].cp == c)
            return confusables[mid].to;
        if (confusables[mid].cp < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

size_t phish_skeleton(const char *s, char *out, size_t outsz)
{
    struct buf b;
    buf_init(&b, 1024);
    size_t n = strlen(s), i = 0;
    while (i < n) {
        uint32_t c;
        i += core_utf8_next(s, n, i, &c);
        if (invisible(c))
            continue;
        char a = c < 0x80 ? (char)c : confusable_ascii(c);
        if (a >= 'A' && a <= 'Z')
            a = (char)(a + 32);
        if (a == '0')
            a = 'o';
        else if (a == '1' || a == '|')
            a = 'l';
        if (a)
            buf_append(&b, &a, 1);
        else
            buf_append_utf8(&b, c);
    }
    /* multi-letter look-alikes: rn -> m, vv -> w */
    size_t w = 0;
    const char *p = buf_cstr(&b);
    for (size_t r = 0; r < b.len && w + 1 < outsz; r++) {
        if (p[r] == 'r' && r + 1 < b.len && p[r + 1] == 'n') {
            out[w++] = 'm';
            r++;
        } else if (p[r] == 'v' && r + 1 < b.len && p[r + 1] == 'v') {
            out[w++] = 'w';
            r++;
        } else {
            out[w++] = p[r];
        }
    }
    if (outsz)
        out[w] = '\0';
    buf_free(&b);
    return w;
}

size_t phish_edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > PHISH_LABEL_MAX || m > PHISH_LABEL_MAX)
        return SIZE_MAX;
    size_t d[PHISH_LABEL_MAX + 1][PHISH_LABEL_MAX + 1];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

enum script { SC_COMMON, SC_LATIN, SC_GREEK, SC_CYRILLIC, SC_ARMENIAN, SC_OTHER };

static enum script script_of(uint32_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7) || (c >= 0x250 && c <= 0x2AF) ||
        (c >= 0x1E00 && c <= 0x1EFF))
        return SC_LATIN;
    if ((c >= 0x370 && c <= 0x3FF) || (c >= 0x1F00 && c <= 0x1FFF))
        return SC_GREEK;
    if (c >= 0x400 && c <= 0x52F)
        return SC_CYRILLIC;
    if (c >= 0x530 && c <= 0x58F)
        return SC_ARMENIAN;
    if (c < 0x80)
        return SC_COMMON;
    return SC_OTHER;
}

/* mixed_script_label - a label of host_unicode mixing Latin, Greek,
 * Cyrillic or Armenian letters; its text in label */
static bool mixed_script_label(const char *h, char *label, size_t labelsz)
{
    size_t n = strlen(h), i = 0, start = 0;
    unsigned seen = 0;
    while (i <= n) {
        if (i == n || h[i] == '.') {
            if (__builtin_popcount(seen & ((1u << SC_LATIN) | (1u << SC_GREEK) | (1u << SC_CYRILLIC) |
                                           (1u << SC_ARMENIAN))) >= 2) {
                size_t len = i - start < labelsz ? i - start : labelsz - 1;
                memcpy(label, h + start, len);
                label[len] = '\0';
                return true;
            }
            seen = 0;
            start = ++i;
            continue;
        }
        uint32_t c;
        i += core_utf8_next(h, n, i, &c);
        seen |= 1u << script_of(c);
    }
    return false;
}

/* ---------------------------------------------------------------- text helpers */

/* clip - s shortened to at most max bytes on a UTF-8 boundary, "..." added */
static const char *clip(const char *s, size_t max, char *out, size_t outsz)
{
    if (!s)
        s = "";
    size_t n = strlen(s);
    if (max + 4 > outsz)
        max = outsz > 4 ? outsz - 4 : 0;
    if (n <= max) {
        memcpy(out, s, n + 1);
        return out;
    }
    size_t k = max;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    memcpy(out, s, k);
    memcpy(out + k, "...", 4);
    return out;
}

/* fold_text - text for name matching: invisible characters removed,
 * full-width ASCII folded, ideographic space as space (bounded by max) */
static void fold_text(const char *s, size_t n, struct buf *out, size_t max)
{
    if (!s)
        return;
    if (n > max)
        n = max;
    size_t i = 0;
    while (i < n) {
        size_t at = i;
        uint32_t c;
        i += core_utf8_next(s, n, i, &c);
        if (invisible(c))
            continue;
        if (c >= 0xFF01 && c <= 0xFF5E)
            c -= 0xFEE0;
        else if (c == 0x3000)
            c = ' ';
        if (c == 0xFFFD && i - at == 1)
            continue;
        buf_append_utf8(out, c);
    }
}

static bool is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* name_in - brand name in text: ASCII names as whole words (acronyms of
 * up to 5 capitals case-sensitively, others case-insensitively), other
 * names as substrings */
static bool name_in(const char *text, size_t tn, const char *name)
{
    size_t n = strlen(name);
    if (!text || !n || n > tn)
        return false;
    bool ascii = true, acronym = n <= 5;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        ascii &= c < 0x80;
        acronym &= (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    }
    if (!ascii)
        return memmem(text, tn, name, n) != NULL;
    for (size_t i = 0; i + n <= tn; i++) {
        if (acronym ? memcmp(text + i, name, n) != 0 : strncasecmp(text + i, name, n) != 0)
            continue;
        if ((i == 0 || !is_alnum((unsigned char)text[i - 1])) &&
            (i + n == tn || !is_alnum((unsigned char)text[i + n])))
            return true;
    }
    return false;
}

/* ---------------------------------------------------------------- signals */

enum signal {
    SIG_LINK_TEXT,
    SIG_IP,
    SIG_IP_OBFUSCATED,
    SIG_HOMOGRAPH,
    SIG_LOOKALIKE,
    SIG_BRAND_IN_DOMAIN,
    SIG_BRAND_CLAIM,
    SIG_FORM,
    SIG_SHORTENER,
    SIG_REDIRECT,
    SIG_N
};
static const char *const signal_names[SIG_N] = {
    "link-text-mismatch", "ip-literal-host",     "ip-obfuscated-host", "homograph-host", "lookalike-domain",
    "brand-in-domain",    "brand-impersonation", "credential-form",    "url-shortener",  "open-redirect",
};

struct phish {
    double score[SIG_N];
    char evidence[SIG_N][600];
    unsigned count[SIG_N];
    unsigned distances; /* edit distances computed (PHISH_MAX_DISTANCES) */
};

/* note - record one instance; the strongest instance keeps its evidence */
static void note(struct phish *p, enum signal s, double score, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void note(struct phish *p, enum signal s, double score, const char *fmt, ...)
{
    p->count[s]++;
    if (score <= p->score[s])
        return;
    p->score[s] = score;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->evidence[s], sizeof p->evidence[s], fmt, ap);
    va_end(ap);
}

/* A reference domain the message might imitate: a brand's domain or one of
 * the tenant's own / high-profile domains. */
struct ref {
    const char *domain;
    char label[PHISH_LABEL_MAX + 1];
    char skel[128];
    char what[80]; /* "brand Amazon", "your own domain", "a high-profile domain" */
};

struct refs {
    struct ref *r;
    size_t n;
};

static void refs_add(struct refs *rs, const char *domain, const char *what, const char *brandname)
{
    char reg[256], label[PHISH_LABEL_MAX + 1];
    if (!domain || !*domain)
        return;
    detect_registrable(domain, reg, sizeof reg);
    org_label(reg, label, sizeof label);
    if (strlen(label) < 3)
        return;
    rs->r = xrealloc(rs->r, (rs->n + 1) * sizeof *rs->r);
    struct ref *r = &rs->r[rs->n++];
    r->domain = domain;
    core_strlcpy(r->label, label, sizeof r->label);
    phish_skeleton(label, r->skel, sizeof r->skel);
    if (brandname) {
        char c[60];
        snprintf(r->what, sizeof r->what, "brand %s", clip(brandname, 40, c, sizeof c));
    } else {
        core_strlcpy(r->what, what, sizeof r->what);
    }
}

static struct refs brand_refs; /* built once from brands.txt */

/* refs_build - the brand references plus the tenant's own and
 * high-profile domains (caller frees rs->r) */
static void refs_build(struct refs *rs, const struct detect_context *ctx)
{
    size_t cap = brand_refs.n + 2 * PHISH_MAX_TENANT_REFS;
    rs->r = xmalloc((cap ? cap : 1) * sizeof *rs->r);
    if (brand_refs.n)
        memcpy(rs->r, brand_refs.r, brand_refs.n * sizeof *rs->r);
    rs->n = brand_refs.n;
    for (size_t i = 0; i < ctx->nown_domains && i < PHISH_MAX_TENANT_REFS; i++)
        refs_add(rs, ctx->own_domains[i], "your own domain", NULL);
    for (size_t i = 0; i < ctx->nhp_domains && i < PHISH_MAX_TENANT_REFS; i++)
        refs_add(rs, ctx->hp_domains[i], "a high-profile domain", NULL);
}

static void brand_refs_build(void)
{
    for (size_t i = 0; i < nbrands; i++)
        for (size_t k = 0; k < brands[i].ndomains; k++)
            if (!brands[i].common[k])
                refs_add(&brand_refs, brands[i].domains[k], NULL,
                         brands[i].nnames ? brands[i].names[0] : brands[i].domains[k]);
}

static void brand_refs_free(void)
{
    free(brand_refs.r);
    brand_refs.r = NULL;
    brand_refs.n = 0;
}

/* owned - host belongs to a reference (any brand domain, common ones
 * included, or a tenant domain), or its org label is a reference's label
 * (brands own their name under many TLDs) */
static bool owned(const char *host, const struct refs *rs, const struct detect_context *ctx)
{
    for (size_t i = 0; i < nbrands; i++)
        for (size_t k = 0; k < brands[i].ndomains; k++)
            if (detect_host_in(host, brands[i].domains[k]))
                return true;
    for (size_t i = 0; i < ctx->nown_domains; i++)
        if (detect_host_in(host, ctx->own_domains[i]))
            return true;
    for (size_t i = 0; i < ctx->nhp_domains; i++)
        if (detect_host_in(host, ctx->hp_domains[i]))
            return true;
    char reg[256], label[PHISH_LABEL_MAX + 1];
    detect_registrable(host, reg, sizeof reg);
    org_label(reg, label, sizeof label);
    for (size_t i = 0; i < rs->n; i++)
        if (strcmp(label, rs->r[i].label) == 0)
            return true;
    return false;
}

/* allowed_distance - edit distance that still counts as a look-alike of a
 * label of this length (short names are too close to ordinary words) */
static size_t allowed_distance(size_t len)
{
    return len >= 9 ? 2 : len >= 5 ? 1 : 0;
}

static const char *const suspicious_words[] = {
    "login",    "signin",  "sign-in", "logon",   "secure",  "security", "verify", "verification", "account",
    "update",   "support", "auth",    "confirm", "billing", "wallet",   "unlock", "recover",      "service",
    "customer", "member",  "co-jp",   "cojp",    "co.jp",   "-jp",      "com-",   "www-",         "-com",
};
static const char *const abused_tlds[] = {
    "xyz",     "top",   "shop", "cn",  "icu",   "buzz",    "click", "link", "online", "site",
    "live",    "rest",  "cyou", "sbs", "cfd",   "fun",     "vip",   "work", "club",   "bond",
    "monster", "store", "info", "ru",  "tk",    "ml",      "ga",    "cf",   "gq",     "win",
    "bid",     "top",   "mom",  "lol", "quest", "support", "asia",
};

/* tld_abused - the host's TLD is one of the much-abused cheap ones */
static bool tld_abused(const char *host)
{
    const char *tld = strrchr(host, '.');
    tld = tld ? tld + 1 : host;
    for (size_t i = 0; i < sizeof abused_tlds / sizeof *abused_tlds; i++)
        if (strcmp(tld, abused_tlds[i]) == 0)
            return true;
    return false;
}

/* host_suspicious - the host has login-ish words or a much-abused TLD */
static bool host_suspicious(const char *host)
{
    for (size_t i = 0; i < sizeof suspicious_words / sizeof *suspicious_words; i++)
        if (strstr(host, suspicious_words[i]))
            return true;
    return tld_abused(host);
}

/* label_embedded - ref label inside host as a whole token between
 * '.'/'-' (labels of 6 or more letters: bounded on one side suffices,
 * "amazonsecure-login.com") */
static bool label_embedded(const char *host, const char *label)
{
    size_t n = strlen(label), hn = strlen(host);
    if (n < 3)
        return false;
    for (const char *p = host; (p = strstr(p, label)) != NULL; p++) {
        size_t at = (size_t)(p - host);
        bool left = at == 0 || host[at - 1] == '.' || host[at - 1] == '-';
        bool right = at + n == hn || host[at + n] == '.' || host[at + n] == '-';
        if ((left && right) || (n >= 6 && (left || right)))
            return true;
        if ((size_t)(p - host) >= hn)
            break;
    }
    return false;
}

/* subdomain_lookalike - a label or '-'-token left of the registrable
 * domain that imitates a reference ("etc1-melsai.example.cn" for
 * etc-meisai.jp), or a public suffix inside the host
 * ("www.jr-odenet.co.jp.example.cn"); true when one was recorded */
static bool subdomain_lookalike(struct phish *p, const struct refs *rs, const char *host, const char *reg,
                                const char *where)
{
    size_t hn = strlen(host), rn = strlen(reg);
    if (hn <= rn + 1)
        return false;
    size_t sub = hn - rn - 1; /* host[0, sub) are the subdomain labels */
    char c1[200];
    static const char *const inner[] = {".co.jp.", ".ne.jp.", ".or.jp.", ".com.", ".co.uk."};
    char dotted[300];
    snprintf(dotted, sizeof dotted, ".%.*s.", (int)sub, host);
    for (size_t i = 0; i < sizeof inner / sizeof *inner; i++)
        if (strstr(dotted, inner[i])) {
            note(p, SIG_BRAND_IN_DOMAIN, 0.5, "%s host %s puts '%.*s' before its real domain %s", where,
                 clip(host, 120, c1, sizeof c1), (int)strlen(inner[i]) - 2, inner[i] + 1, reg);
            return true;
        }
    /* tokens: labels and their '-' parts, of 5 to 63 bytes */
    size_t i = 0;
    unsigned ntok = 0;
    while (i < sub && ntok < 64) {
        size_t j = i;
        while (j < sub && host[j] != '.')
            j++;
        for (int pass = 0; pass < 2; pass++) {
            size_t a = i;
            while (a < j) {
                size_t b = pass == 0 ? j : a;
                while (pass == 1 && b < j && host[b] != '-')
                    b++;
                char tok[PHISH_LABEL_MAX + 1], skel[128];
                size_t tl = b - a;
                ntok++;
                if (tl >= 5 && tl <= PHISH_LABEL_MAX) {
                    memcpy(tok, host + a, tl);
                    tok[tl] = '\0';
                    phish_skeleton(tok, skel, sizeof skel);
                    for (size_t r = 0; r < rs->n; r++) {
                        const struct ref *ref = &rs->r[r];
                        size_t rl = strlen(ref->label), allow = allowed_distance(rl);
                        if (rl < 5 || strcmp(tok, ref->label) == 0)
                            continue;
                        size_t d = SIZE_MAX;
                        if ((tl > rl ? tl - rl : rl - tl) <= allow && p->distances < PHISH_MAX_DISTANCES) {
                            p->distances++;
                            d = phish_edit_distance(tok, ref->label);
                        }
                        if (strcmp(skel, ref->skel) == 0 || (d > 0 && d <= allow)) {
                            double sc = host_suspicious(host) ? 0.55 : 0.4;
                            note(p, SIG_BRAND_IN_DOMAIN, sc, "%s host %s has '%s', a look-alike of %s (%s)",
                                 where, clip(host, 120, c1, sizeof c1), tok, ref->domain, ref->what);
                            return true;
                        }
                    }
                }
                a = b + 1;
                if (pass == 0)
                    break;
            }
        }
        i = j + 1;
    }
    return false;
}

/* check_domain - look-alike / homograph / embedded-name checks of one host
 * (a link's host or the From domain); where says which ("link", "From") */
static void check_domain(struct phish *p, const struct refs *rs, const struct detect_context *ctx,
                         const char *host, const char *host_unicode, const char *where, double weight)
{
    char reg[256], label[PHISH_LABEL_MAX + 1], ureg[512], ulabel[256], skel[128];
    if (!host || !*host || phish_ip_host(host) || owned(host, rs, ctx))
        return;
    detect_registrable(host, reg, sizeof reg);
    org_label(reg, label, sizeof label);
    if (!*label)
        return;
    const char *hu = host_unicode && *host_unicode ? host_unicode : host;
    detect_registrable(hu, ureg, sizeof ureg);
    org_label(ureg, ulabel, sizeof ulabel);
    phish_skeleton(ulabel, skel, sizeof skel);
    char mixed[256], c1[200];
    if (strcmp(hu, host) != 0 && mixed_script_label(hu, mixed, sizeof mixed))
        note(p, SIG_HOMOGRAPH, 0.7 * weight, "%s host %s (%s) mixes scripts in '%s'", where,
             clip(hu, 120, c1, sizeof c1), host, mixed);
    /* a host whose label is itself a reference's name is not a look-alike
     * of another (paypay.ne.jp is not a typo of paypal.com) */
    bool is_ref_label = false;
    for (size_t i = 0; i < rs->n && !is_ref_label; i++)
        is_ref_label = strcmp(rs->r[i].label, label) == 0;
    bool idn = strcmp(ulabel, label) != 0;
    for (size_t i = 0; i < rs->n && !is_ref_label; i++) {
        const struct ref *r = &rs->r[i];
        if (strcmp(skel, r->skel) == 0) {
            note(p, idn ? SIG_HOMOGRAPH : SIG_LOOKALIKE, 0.85 * weight,
                 "%s domain %s looks like %s (%s): confusable characters", where,
                 clip(idn ? ureg : reg, 120, c1, sizeof c1), r->domain, r->what);
            return;
        }
        size_t rl = strlen(r->label), allow = allowed_distance(rl);
        size_t ll = strlen(label);
        if (!idn && allow && (ll > rl ? ll - rl : rl - ll) <= allow && p->distances < PHISH_MAX_DISTANCES) {
            p->distances++;
            size_t d = phish_edit_distance(label, r->label);
            if (d > 0 && d <= allow) {
                /* short names have many honest neighbours (tesco/tepco)
                 * and two edits make jokes (microshaft): weak alone */
                double s = rl >= 7 && d == 1 ? 0.7 : 0.45;
                note(p, SIG_LOOKALIKE, s * weight,
                     "%s domain %s looks like %s (%s): %zu character%s different", where, reg, r->domain,
                     r->what, d, d == 1 ? "" : "s");
                return;
            }
        }
    }
    if (subdomain_lookalike(p, rs, host, reg, where))
        return;
    for (size_t i = 0; i < rs->n; i++) {
        const struct ref *r = &rs->r[i];
        if (label_embedded(host, r->label)) {
            double s = host_suspicious(host) ? 0.6 : 0.4;
            note(p, SIG_BRAND_IN_DOMAIN, s * weight,
                 "%s host %s carries the name '%s' of %s (%s) but is not theirs", where,
                 clip(host, 120, c1, sizeof c1), r->label, r->domain, r->what);
            return;
        }
    }
}

/* link_text_host - the host a link's visible text names, when the text is
 * a URL or a bare domain name; false otherwise */
static bool link_text_host(const char *t, char *out, size_t outsz)
{
    static const char *const common_tlds[] = {
        "com", "net", "org", "info", "biz", "xyz", "top", "shop", "online", "site", "app", "dev",
        "edu", "gov", "jp",  "uk",   "de",  "fr",  "cn",  "ru",   "us",     "ca",   "au",  "it",
        "nl",  "es",  "br",  "kr",   "tw",  "hk",  "sg",  "ch",   "se",     "no",   "fi",  "dk",
        "io",  "me",  "tv",  "co",   "eu",  "at",  "be",  "nz",   "ie",     "mx",   "ar",
    };
    while (*t == ' ' || *t == '<' || *t == '(' || *t == '[' || *t == '"' || *t == '\'')
        t++;
    bool scheme = false, www = false;
    if (strncasecmp(t, "http://", 7) == 0) {
        t += 7;
        scheme = true;
    } else if (strncasecmp(t, "https://", 8) == 0) {
        t += 8;
        scheme = true;
    }
    if (strncasecmp(t, "www.", 4) == 0)
        www = true;
    size_t n = 0;
    while (t[n] && t[n] != '/' && t[n] != '?' && t[n] != '#' && t[n] != ':' && t[n] != ' ' && t[n] != '>' &&
           t[n] != ')' && t[n] != ']' && t[n] != '"' && t[n] != '\'' && t[n] != ',')
        n++;
    while (n && t[n - 1] == '.')
        n--;
    if (n < 4 || n >= outsz || n > 253)
        return false;
    const char *rest = t + n;
    while (*rest == '.')
        rest++;
    if (!scheme && !www) {
        /* a bare name: the whole text, optionally with a path */
        if (*rest && *rest != '/')
            return false;
        if (strchr(rest, ' '))
            return false;
    }
    bool dot = false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (c == '@')
            return false;
        if (c == '.')
            dot = true;
        else if (!is_alnum((unsigned char)c) && c != '-')
            return false;
    }
    if (!dot)
        return false;
    memcpy(out, t, n);
    out[n] = '\0';
    ascii_lower(out);
    const char *tld = strrchr(out, '.') + 1;
    for (const char *q = tld; *q; q++)
        if (!(*q >= 'a' && *q <= 'z'))
            return false;
    if (scheme || www)
        return strlen(tld) >= 2;
    for (size_t i = 0; i < sizeof common_tlds / sizeof *common_tlds; i++)
        if (strcmp(tld, common_tlds[i]) == 0)
            return true;
    return false;
}

/* email service providers' click trackers: a link text naming the sender's
 * site that goes through one of these is ordinary newsletter practice */
static const char *const click_trackers[] = {
    "sendgrid.net",        "list-manage.com", "mailchimp.com",   "mcsv.net",
    "mandrillapp.com",     "exacttarget.com", "rs6.net",         "constantcontact.com",
    "hubspotlinks.com",    "hs-sites.com",    "mailgun.org",     "sparkpostmail.com",
    "createsend.com",      "cmail19.com",     "cmail20.com",     "doubleclick.net",
    "awstrack.me",         "mktoweb.com",     "pardot.com",      "salesforce.com",
    "sendibt2.com",        "sendibt3.com",    "mjt.lu",          "emltrk.com",
    "bmetrack.com",        "returnpath.net",  "mailjet.com",     "klclick.com",
    "klaviyo.com",         "ct.sendgrid.net", "urldefense.com",  "safelinks.protection.outlook.com",
    "mimecastprotect.com", "google.com",      "linksynergy.com",
};

static bool click_tracker(const char *host)
{
    for (size_t i = 0; i < sizeof click_trackers / sizeof *click_trackers; i++)
        if (detect_host_in(host, click_trackers[i]))
            return true;
    return false;
}

static bool ref_domain(const char *host, const struct refs *rs, const struct detect_context *ctx)
{
    (void)ctx;
    for (size_t i = 0; i < rs->n; i++)
        if (detect_host_in(host, rs->r[i].domain))
            return true;
    return false;
}

static void check_link_text(struct phish *p, const struct refs *rs, const struct detect_context *ctx,
                            const struct mime_url *u)
{
    char th[256], treg[256], hreg[256], tl[PHISH_LABEL_MAX + 1], hl[PHISH_LABEL_MAX + 1];
    if (!u->text || strcmp(u->source, "html_href") != 0 || !link_text_host(u->text, th, sizeof th))
        return;
    detect_registrable(th, treg, sizeof treg);
    detect_registrable(u->host, hreg, sizeof hreg);
    if (strcmp(treg, hreg) == 0)
        return;
    org_label(treg, tl, sizeof tl);
    org_label(hreg, hl, sizeof hl);
    if (*tl && strcmp(tl, hl) == 0)
        return; /* the same organisation under another suffix */
    if (click_tracker(u->host) || strcasestr(u->url, treg))
        return; /* a tracker or redirector carrying the named destination */
    bool ref = ref_domain(th, rs, ctx);
    char c1[120], c2[200];
    note(p, SIG_LINK_TEXT,
         ref                   ? 0.75
         : tld_abused(u->host) ? 0.55
                               : 0.45,
         "link text '%s' goes to %s%s", clip(u->text, 100, c1, sizeof c1), clip(u->url, 160, c2, sizeof c2),
         ref ? " (the text names a protected brand or domain)" : "");
}

/* check_redirect - a query parameter carrying an absolute URL to another
 * registrable domain (?url=http..., ?redirect=https%3A%2F%2F...) that is
 * not the sender's own (from_reg) */
static void check_redirect(struct phish *p, const struct mime_url *u, const char *from_reg)
{
    static const char *const params[] = {
        "url",         "u",    "redirect", "redirect_url", "redir",  "r",    "dest",
        "destination", "next", "goto",     "target",       "link",   "out",  "to",
        "q",           "go",   "continue", "returnurl",    "return", "rurl", "l"};
    const char *q = strchr(u->url, '?');
    if (!q)
        return;
    char hreg[256];
    detect_registrable(u->host, hreg, sizeof hreg);
    const char *s = q + 1;
    for (int nparam = 0; *s && nparam < 50; nparam++) {
        const char *amp = strchr(s, '&');
        size_t len = amp ? (size_t)(amp - s) : strlen(s);
        const char *eq = memchr(s, '=', len);
        if (eq) {
            size_t nl = (size_t)(eq - s);
            bool known = false;
            for (size_t i = 0; i < sizeof params / sizeof *params && !known; i++)
                known = strlen(params[i]) == nl && strncasecmp(s, params[i], nl) == 0;
            const char *v = eq + 1;
            size_t vl = len - nl - 1;
            size_t skip = 0;
            if (vl > 7 && strncasecmp(v, "http://", 7) == 0)
                skip = 7;
            else if (vl > 8 && strncasecmp(v, "https://", 8) == 0)
                skip = 8;
            else if (vl > 13 && strncasecmp(v, "http%3A%2F%2F", 13) == 0)
                skip = 13;
            else if (vl > 14 && strncasecmp(v, "https%3A%2F%2F", 14) == 0)
                skip = 14;
            if (known && skip) {
                char th[256], treg[256];
                size_t k = 0;
                for (size_t i = skip; i < vl && k + 1 < sizeof th; i++) {
                    char c = v[i];
                    if (c == '/' || c == '?' || c == '#' || c == ':' || c == '%' || c == '&')
                        break;
                    th[k++] = c;
                }
                th[k] = '\0';
                ascii_lower(th);
                detect_registrable(th, treg, sizeof treg);
                if (*treg && strchr(treg, '.') && strcmp(treg, hreg) != 0 && strcmp(treg, from_reg) != 0) {
                    char c1[200];
                    note(p, SIG_REDIRECT, 0.3, "link %s redirects to %s", clip(u->url, 160, c1, sizeof c1),
                         th);
                    return;
                }
            }
        }
        if (!amp)
            break;
        s = amp + 1;
    }
}

/* ---------------------------------------------------------------- brand claims */

static const char *const lure_words[] = {
    "アカウント",
    "ログイン",
    "パスワード",
    "本人確認",
    "ご本人様",
    "停止",
    "制限",
    "凍結",
    "更新",
    "お支払い",
    "支払い",
    "決済",
    "請求",
    "未払い",
    "不正",
    "異常",
    "緊急",
    "重要",
    "セキュリティ",
    "認証",
    "有効期限",
    "退会",
    "解約",
    "不在",
    "ご利用確認",
    "手続き",
    "確認してください",
    "再開",
    "verify",
    "suspend",
    "locked",
    "log in",
    "login",
    "sign in",
    "password",
    "confirm your",
    "update your",
    "billing",
    "payment",
    "unusual activity",
    "security alert",
    "expire",
    "restricted",
    "unauthorized",
    "reactivate",
    "validate",
    "limited access",
    "invoice",
};

/* lure - the first lure word in text (ASCII ones as whole words,
 * case-insensitively), or NULL */
static const char *lure(const char *text, size_t n)
{
    for (size_t i = 0; i < sizeof lure_words / sizeof *lure_words; i++) {
        const char *w = lure_words[i];
        size_t wl = strlen(w);
        if ((unsigned char)w[0] >= 0x80) {
            if (memmem(text, n, w, wl))
                return w;
            continue;
        }
        for (size_t k = 0; k + wl <= n; k++)
            if (strncasecmp(text + k, w, wl) == 0 && (k == 0 || !is_alnum((unsigned char)text[k - 1])) &&
                (k + wl == n || !is_alnum((unsigned char)text[k + wl])))
                return w;
    }
    return NULL;
}

/* brand_owns - host is one of the brand's domains (or has its org label) */
static bool brand_owns(const struct brand *b, const char *host)
{
    char reg[256], label[PHISH_LABEL_MAX + 1], bl[PHISH_LABEL_MAX + 1];
    detect_registrable(host, reg, sizeof reg);
    org_label(reg, label, sizeof label);
    for (size_t k = 0; k < b->ndomains; k++) {
        if (detect_host_in(host, b->domains[k]))
            return true;
        char breg[256];
        detect_registrable(b->domains[k], breg, sizeof breg);
        org_label(breg, bl, sizeof bl);
        if (!b->common[k] && *label && strcmp(label, bl) == 0)
            return true;
    }
    return false;
}

static const char *addr_domain(const struct mime_address *m)
{
    const char *at = m && m->address ? strrchr(m->address, '@') : NULL;
    return at && at[1] ? at + 1 : NULL;
}

/* check_brand_claim - a brand named in the From display name or subject
 * while the From domain is not the brand's; links that lead elsewhere and
 * lure words (account, login, payment, 本人確認...) make it stronger */
static void check_brand_claim(struct phish *p, const struct analysis *a)
{
    const char *fdom = a->nfrom ? addr_domain(&a->from[0]) : NULL;
    struct buf dn, subj, body;
    buf_init(&dn, 4096);
    buf_init(&subj, 4096);
    buf_init(&body, PHISH_TEXT_MAX + 8);
    if (a->nfrom && a->from[0].name)
        fold_text(a->from[0].name, strlen(a->from[0].name), &dn, 2048);
    if (a->subject)
        fold_text(a->subject, strlen(a->subject), &subj, 2048);
    if (a->text)
        fold_text(a->text, a->text_len, &body, PHISH_TEXT_MAX);
    const char *dt = buf_cstr(&dn), *st = buf_cstr(&subj), *bt = buf_cstr(&body);
    const char *w = NULL; /* the lure word, looked for once */
    bool lure_done = false, lure_in_subject = false;
    for (size_t i = 0; i < nbrands; i++) {
        const struct brand *b = &brands[i];
        const char *name = NULL;
        bool in_dn = false;
        for (size_t k = 0; k < b->nnames && !name; k++) {
            if (name_in(dt, dn.len, b->names[k])) {
                name = b->names[k];
                in_dn = true;
            } else if (name_in(st, subj.len, b->names[k])) {
                name = b->names[k];
            }
        }
        if (!name)
            continue;
        if (fdom && brand_owns(b, fdom))
            break; /* the brand's own mail (it may name others, too) */
        if (!lure_done) {
            w = lure(st, subj.len);
            lure_in_subject = w != NULL;
            if (!w)
                w = lure(bt, body.len);
            lure_done = true;
        }
        if (!in_dn && !w)
            continue; /* a brand in an ordinary subject ("Re: Apple laptop review") */
        /* a brand in the subject with the lure only in the body stays below
         * PHISH_T_MATCH even with foreign links (newsletters and lists
         * discussing Apple or Microsoft do that): it needs another signal;
         * "【Brand】account locked" in the subject itself does not */
        double s = in_dn || lure_in_subject ? (in_dn ? 0.35 : 0.3) : 0.2;
        struct buf why;
        buf_init(&why, 600);
        char c1[120];
        buf_printf(&why, "'%s' in the %s but From is %s", name, in_dn ? "sender's name" : "subject",
                   clip(a->nfrom && a->from[0].address ? a->from[0].address : "(none)", 100, c1, sizeof c1));
        if (w) {
            s += 0.15;
            buf_printf(&why, "; lure '%s'", w);
        }
        size_t links = 0, own = 0;
        const char *other = NULL;
        for (size_t k = 0; k < a->nurls && k < PHISH_MAX_URLS; k++) {
            const struct mime_url *u = &a->urls[k];
            if (strcmp(u->source, "html_img") == 0)
                continue;
            links++;
            if (brand_owns(b, u->host))
                own++;
            else if (!other)
                other = u->host;
        }
        if (other) {
            s += 0.1;
            buf_printf(&why, "; links to %s%s", clip(other, 100, c1, sizeof c1),
                       own ? "" : ", none to the brand");
        }
        note(p, SIG_BRAND_CLAIM, s, "%s", buf_cstr(&why));
        buf_free(&why);
        break;
    }
    buf_free(&dn);
    buf_free(&subj);
    buf_free(&body);
}

/* ---------------------------------------------------------------- forms, numeric hosts */

struct html_facts {
    bool form, password, script_redirect, meta_refresh;
    bool sensitive;     /* an input named like a credential (card, pin, login...) */
    char action[256];   /* first absolute form action */
    size_t script_read; /* bytes of scripts read (PHISH_SCRIPT_SCAN) */
};

/* attr_value - the value of attribute name inside one tag [p, e); QP
 * "=3D" is read as "=" (raw bodies); copied into out */
static bool attr_value(const char *p, const char *e, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);
    for (const char *s = p; s + nl < e; s++) {
        if (strncasecmp(s, name, nl) != 0 || (s > p && is_alnum((unsigned char)s[-1])))
            continue;
        const char *v = s + nl;
        while (v < e && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r'))
            v++;
        if (e - v >= 3 && strncasecmp(v, "=3D", 3) == 0)
            v += 3;
        else if (v < e && *v == '=')
            v++;
        else
            continue;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        char q = v < e && (*v == '"' || *v == '\'') ? *v++ : 0;
        size_t k = 0;
        while (v < e && k + 1 < outsz && (q ? *v != q : (*v != ' ' && *v != '>' && *v != '\t' && *v != '\n')))
            out[k++] = *v++;
        out[k] = '\0';
        return true;
    }
    return false;
}

/* sensitive_field - an input name that asks for credentials or card data */
static bool sensitive_field(const char *name)
{
    static const char *const words[] = {"card", "cc", "cvv", "cvc", "pin", "pass", "pwd", "login", "user",
                                        "email", "mail", "account", "acct", "ssn", "otp", "expir", "secur",
                                        "暗証", "カード", "口座", "パスワード", NULL};
    char low[256];
    size_t n = 0;
    for (; name[n] && n + 1 < sizeof low; n++)
        low[n] = (char)tolower((unsigned char)name[n]);
    low[n] = '\0';
    for (size_t i = 0; words[i]; i++)
        if (strstr(low, words[i]))
            return true;
    return false;
}

/* html_scan - forms, password fields and script/meta redirects in HTML
 * bytes (a lexical scan of tags, at most PHISH_SCAN_MAX bytes, 10000 tags) */
static void html_scan(const char *h, size_t n, struct html_facts *f)
{
    if (n > PHISH_SCAN_MAX)
        n = PHISH_SCAN_MAX;
    const char *end = h + n;
    unsigned tags = 0;
    for (const char *p = memchr(h, '<', n); p && tags < 10000;
         p = memchr(p + 1, '<', (size_t)(end - p - 1))) {
        tags++;
        const char *e = memchr(p, '>', (size_t)(end - p));
        if (!e)
            break;
        if (e - p > 4096)
            e = p + 4096;
        char v[256];
        if (e - p > 5 && strncasecmp(p, "<form", 5) == 0) {
            f->form = true;
            if (!f->action[0] && attr_value(p + 5, e, "action", v, sizeof v) &&
                (strncasecmp(v, "http://", 7) == 0 || strncasecmp(v, "https://", 8) == 0 ||
                 strncmp(v, "//", 2) == 0))
                core_strlcpy(f->action, v, sizeof f->action);
        } else if (e - p > 6 && strncasecmp(p, "<input", 6) == 0) {
            if (attr_value(p + 6, e, "type", v, sizeof v) && strcasecmp(v, "password") == 0)
                f->password = true;
            if (!f->sensitive && (attr_value(p + 6, e, "name", v, sizeof v) || attr_value(p + 6, e, "id", v, sizeof v)))
                f->sensitive = sensitive_field(v);
        } else if (e - p > 5 && strncasecmp(p, "<meta", 5) == 0) {
            if (attr_value(p + 5, e, "http-equiv", v, sizeof v) && strcasecmp(v, "refresh") == 0 &&
                attr_value(p + 5, e, "content", v, sizeof v) && strcasestr(v, "url=http"))
                f->meta_refresh = true;
        } else if (e - p >= 7 && strncasecmp(p, "<script", 7) == 0) {
            size_t left = (size_t)(end - e) < 65536 ? (size_t)(end - e) : 65536;
            if (left > PHISH_SCRIPT_SCAN - f->script_read)
                left = PHISH_SCRIPT_SCAN - f->script_read;
            f->script_read += left;
            for (size_t i = 0; i + 24 < left && !f->script_redirect; i++)
                if ((strncasecmp(e + i, "location", 8) == 0 || strncasecmp(e + i, "window.open", 11) == 0) &&
                    memmem(e + i, left - i < 200 ? left - i : 200, "http", 4))
                    f->script_redirect = true;
        }
    }
}

static bool html_attachment(const struct mime_attachment *at)
{
    const char *x = at->extension ? at->extension : "";
    return (at->true_type && strcmp(at->true_type, "text/html") == 0) || strcmp(x, "htm") == 0 ||
           strcmp(x, "html") == 0 || strcmp(x, "shtml") == 0 || strcmp(x, "xhtml") == 0 ||
           strcmp(x, "mht") == 0;
}

static void check_forms(struct phish *p, const struct analysis *a, const char *msg, size_t len)
{
    char c1[200];
    for (size_t i = 0; i < a->nattachments; i++) {
        const struct mime_attachment *at = &a->attachments[i];
        if (!html_attachment(at) || !at->data)
            continue;
        struct html_facts f = {.form = false};
        html_scan((const char *)at->data, (size_t)at->size, &f);
        const char *name = clip(at->filename ? at->filename : "(unnamed)", 80, c1, sizeof c1);
        if (f.form && f.password)
            note(p, SIG_FORM, 0.85, "HTML attachment %s has a form with a password field%s%s", name,
                 f.action[0] ? " posting to " : "", f.action);
        else if (f.form && f.action[0])
            /* a form asking for credentials or card data is a phishing page;
             * any other (a weather widget's search box) is weak on its own */
            note(p, SIG_FORM, f.sensitive ? 0.7 : 0.4, "HTML attachment %s posts a form%s to %s", name,
                 f.sensitive ? " asking for credentials" : "", f.action);
        else if (f.password)
            note(p, SIG_FORM, 0.7, "HTML attachment %s asks for a password", name);
        else if (f.meta_refresh || f.script_redirect)
            note(p, SIG_FORM, 0.6, "HTML attachment %s redirects the browser to a web site", name);
    }
    /* HTML bodies: the raw message (7bit/8bit/quoted-printable parts; a
     * base64 body is seen only through its form actions below) */
    bool html = false;
    for (size_t i = 0; i < a->nparts && !html; i++)
        html = a->parts[i].is_text && a->parts[i].content_type &&
               strcmp(a->parts[i].content_type, "text/html") == 0;
    if (html) {
        struct html_facts f = {.form = false};
        html_scan(msg, len, &f);
        if (f.form && f.password)
            note(p, SIG_FORM, 0.7, "the message body has a form with a password field%s%s",
                 f.action[0] ? " posting to " : "", f.action);
    }
    const char *fdom = a->nfrom ? addr_domain(&a->from[0]) : NULL;
    char freg[256] = "", hreg[256];
    if (fdom)
        detect_registrable(fdom, freg, sizeof freg);
    for (size_t i = 0; i < a->nurls && i < PHISH_MAX_URLS; i++) {
        const struct mime_url *u = &a->urls[i];
        if (strcmp(u->source, "html_form") != 0)
            continue;
        detect_registrable(u->host, hreg, sizeof hreg);
        if (strcmp(hreg, freg) != 0)
            note(p, SIG_FORM, 0.3, "a form in the message body posts to %s, not the sender's domain",
                 clip(u->url, 160, c1, sizeof c1));
    }
}

/* check_numeric_hosts - URLs in the raw message whose host is a decimal,
 * hex or octal IPv4 form (mime/ normalises them to dotted quads, so the
 * obfuscation is only visible in the raw bytes) */
static void check_numeric_hosts(struct phish *p, const char *msg, size_t len)
{
    if (len > PHISH_SCAN_MAX)
        len = PHISH_SCAN_MAX;
    const char *end = msg + len;
    unsigned hits = 0;
    for (const char *s = memmem(msg, len, "://", 3); s && hits < 1000;
         s = memmem(s + 3, (size_t)(end - s - 3), "://", 3)) {
        hits++;
        const char *h = s + 3;
        char host[64];
        size_t k = 0;
        while (h + k < end && k + 1 < sizeof host && (is_alnum((unsigned char)h[k]) || h[k] == '.')) {
            host[k] = h[k];
            k++;
        }
        host[k] = '\0';
        if (!k || !phish_ip_host(host))
            continue;
        /* dotted decimal quads are the plain form */
        unsigned parts = 1;
        bool plain = host[0] != '0' || host[1] == '.' || host[1] == '\0';
        for (size_t i = 0; i < k; i++) {
            if (host[i] == '.') {
                parts++;
                if (host[i + 1] == '0' && host[i + 2] && host[i + 2] != '.')
                    plain = false;
            } else if (!(host[i] >= '0' && host[i] <= '9')) {
                plain = false;
            }
        }
        if (parts == 4 && plain)
            continue;
        struct in_addr in;
        char q[INET_ADDRSTRLEN];
        inet_aton(host, &in);
        inet_ntop(AF_INET, &in, q, sizeof q);
        note(p, SIG_IP_OBFUSCATED, 0.8, "link host %s is the IP address %s written in a disguised form", host,
             q);
    }
}

/* ---------------------------------------------------------------- run */

static bool shortener(const char *host)
{
    for (size_t i = 0; i < nshorteners; i++)
        if (detect_host_in(host, shorteners[i]))
            return true;
    return false;
}

void detect_phish_run(struct analysis *a, const char *msg, size_t len, const struct detect_context *ctx)
{
    if (lists_err[0])
        analysis_add_detection(a, "scan_exclusion", "phish-lists-missing", 0, lists_err);
    struct phish *p = xcalloc(1, sizeof *p);
    struct refs rs = {.r = NULL, .n = 0};
    refs_build(&rs, ctx);
    char from_reg[256] = "";
    if (a->nfrom && addr_domain(&a->from[0]))
        detect_registrable(addr_domain(&a->from[0]), from_reg, sizeof from_reg);
    char seen[PHISH_MAX_DOMAINS][64];
    size_t nseen = 0;
    char c1[200];
    for (size_t i = 0; i < a->nurls && i < PHISH_MAX_URLS; i++) {
        const struct mime_url *u = &a->urls[i];
        if (!u->host || !*u->host)
            continue;
        bool img = strcmp(u->source, "html_img") == 0;
        if (phish_ip_host(u->host)) {
            if (ip_public(u->host)) {
                /* old-fashioned hosting links to IPs too: strong only with
                 * a login-ish path or as a form's target */
                double s = img ? 0.2 : strcmp(u->source, "text") == 0 ? 0.35 : 0.45;
                if (!img && (strcmp(u->source, "html_form") == 0 || host_suspicious(u->url)))
                    s += 0.15;
                note(p, SIG_IP, s, "%s %s goes to an IP address instead of a domain name",
                     img ? "image" : "link", clip(u->url, 160, c1, sizeof c1));
            }
            continue;
        }
        if (img)
            continue;
        check_link_text(p, &rs, ctx, u);
        if (shortener(u->host))
            note(p, SIG_SHORTENER, 0.25, "link %s goes through the URL shortener %s, hiding its destination",
                 clip(u->url, 160, c1, sizeof c1), u->host);
        check_redirect(p, u, from_reg);
        /* domain checks once per host */
        bool dup = false;
        for (size_t k = 0; k < nseen && !dup; k++)
            dup = strcmp(seen[k], u->host) == 0;
        if (dup || nseen >= PHISH_MAX_DOMAINS || strlen(u->host) >= sizeof seen[0])
            continue;
        core_strlcpy(seen[nseen++], u->host, sizeof seen[0]);
        check_domain(p, &rs, ctx, u->host, u->host_unicode, "link", 1.0);
    }
    if (a->nfrom) {
        const char *fd = addr_domain(&a->from[0]);
        if (fd) {
            char lower[256];
            core_strlcpy(lower, fd, sizeof lower);
            ascii_lower(lower);
            check_domain(p, &rs, ctx, lower, lower, "From", 1.0);
        }
    }
    check_brand_claim(p, a);
    check_forms(p, a, msg, len);
    check_numeric_hosts(p, msg, len);

    /* one detection per signal, then the combination */
    size_t nsig = 0;
    double keep = 1.0, best = 0;
    struct buf why;
    buf_init(&why, 1000);
    for (int s = 0; s < SIG_N; s++) {
        if (p->score[s] <= 0)
            continue;
        char ev[700];
        if (p->count[s] > 1)
            snprintf(ev, sizeof ev, "%s (+%u more)", p->evidence[s], p->count[s] - 1);
        else
            snprintf(ev, sizeof ev, "%s", p->evidence[s]);
        analysis_add_detection(a, "phishing", signal_names[s], p->score[s], ev);
        buf_printf(&why, "%s%s %.2f", nsig ? ", " : "", signal_names[s], p->score[s]);
        keep *= 1 - p->score[s];
        if (p->score[s] > best)
            best = p->score[s];
        nsig++;
    }
    double combined = 1 - keep;
    if (nsig >= 2 && combined > best) {
        char ev[1100];
        snprintf(ev, sizeof ev, "%zu signals: %s", nsig, buf_cstr(&why));
        analysis_add_detection(a, "phishing", "phishing-combined", combined > 0.99 ? 0.99 : combined, ev);
    }
    buf_free(&why);
    free(rs.r);
    free(p);
}
