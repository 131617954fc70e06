/*
 * store_syntax.c - syntax checks of the values in the tenant document:
 * domain names, e-mail addresses and *@domain patterns, IPs and CIDRs, host
 * names, company IDs; RFC 3492 punycode for IDN labels.
 *
 * Every check returns NULL and writes the normalised form, or returns a
 * static reason. Domains are normalised to lower-case ASCII: ASCII labels are
 * lower-cased (LDH only: letters, digits, inner hyphens, 1..63 characters),
 * labels with non-ASCII characters become "xn--" punycode after a small
 * mapping (full-width ASCII to ASCII, Latin/Greek/Cyrillic capitals to small,
 * the ideographic full stop as a dot). That mapping is not full IDNA2008
 * (no NFC, no contextual rules), which is acceptable for validation: a name
 * given as punycode is taken as is. A trailing dot is refused, not stripped.
 */
#include "store/store_int.h"

#include <arpa/inet.h>
#include <ctype.h>

/* ---------------------------------------------------------------- punycode */
enum { PC_BASE = 36, PC_TMIN = 1, PC_TMAX = 26, PC_SKEW = 38, PC_DAMP = 700, PC_BIAS = 72, PC_N = 128 };

static uint32_t pc_adapt(uint32_t delta, uint32_t npoints, bool first)
{
    uint32_t k = 0;
    delta = first ? delta / PC_DAMP : delta / 2;
    delta += delta / npoints;
    while (delta > ((PC_BASE - PC_TMIN) * PC_TMAX) / 2) {
        delta /= PC_BASE - PC_TMIN;
        k += PC_BASE;
    }
    return k + (PC_BASE - PC_TMIN + 1) * delta / (delta + PC_SKEW);
}

static char pc_digit(uint32_t d)
{
    return (char)(d < 26 ? 'a' + d : '0' + (d - 26));
}

int store_punycode_encode(const uint32_t *cp, size_t n, char *out, size_t outsz)
{
    size_t o = 0;
    if (outsz == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (cp[i] < 0x80) {
            if (outsz - o < 2)
                return -1;
            out[o++] = (char)cp[i];
        }
    }
    uint32_t b = (uint32_t)o, h = (uint32_t)o;
    if (b > 0) {
        if (outsz - o < 2)
            return -1;
        out[o++] = '-';
    }
    uint32_t nn = PC_N, delta = 0, bias = PC_BIAS;
    while (h < n) {
        uint32_t m = UINT32_MAX;
        for (size_t i = 0; i < n; i++)
            if (cp[i] >= nn && cp[i] < m)
                m = cp[i];
        if ((m - nn) > (UINT32_MAX - delta) / (h + 1))
            return -1;
        delta += (m - nn) * (h + 1);
        nn = m;
        for (size_t i = 0; i < n; i++) {
            if (cp[i] < nn && ++delta == 0)
                return -1;
            if (cp[i] != nn)
                continue;
            uint32_t q = delta;
            for (uint32_t k = PC_BASE;; k += PC_BASE) {
                uint32_t t = k <= bias ? PC_TMIN : k >= bias + PC_TMAX ? PC_TMAX : k - bias;
                if (q < t)
                    break;
                if (outsz - o < 2)
                    return -1;
                out[o++] = pc_digit(t + (q - t) % (PC_BASE - t));
                q = (q - t) / (PC_BASE - t);
            }
            if (outsz - o < 2)
                return -1;
            out[o++] = pc_digit(q);
            bias = pc_adapt(delta, h + 1, h == b);
            delta = 0;
            h++;
        }
        delta++;
        nn++;
    }
    out[o] = '\0';
    return 0;
}

/* ---------------------------------------------------------------- domains */
/* utf8_next - decode one code point; 0 bytes consumed on invalid input */
static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t n;
    uint32_t c;
    if ((s[0] & 0xE0) == 0xC0) {
        n = 2;
        c = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3;
        c = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4;
        c = s[0] & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return n;
}

/* idn_map - the small IDNA-like mapping; 0 for a code point never valid in a name */
static uint32_t idn_map(uint32_t c)
{
    if (c >= 0xFF01 && c <= 0xFF5E) /* full-width ASCII */
        c -= 0xFEE0;
    if (c < 0x80)
        return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    if (c < 0xC0 || (c >= 0x2000 && c <= 0x206F) || (c >= 0x3000 && c <= 0x3003) ||
        (c >= 0xFE00 && c <= 0xFE0F) || c == 0xFEFF || c >= 0xFFF0 || c == 0xD7 || c == 0xF7)
        return 0;
    if (c >= 0xC0 && c <= 0xDE) /* Latin-1 capitals */
        return c + 0x20;
    if (c >= 0x391 && c <= 0x3A9) /* Greek capitals */
        return c + 0x20;
    if (c >= 0x410 && c <= 0x42F) /* Cyrillic capitals */
        return c + 0x20;
    if (c >= 0x400 && c <= 0x40F)
        return c + 0x50;
    return c;
}

static bool is_label_sep(uint32_t c)
{
    return c == '.' || c == 0x3002 || c == 0xFF0E || c == 0xFF61;
}

/* label_finish - validate one mapped label and append it to out */
static const char *label_finish(const uint32_t *cp, size_t n, char *out, size_t outsz, size_t *o)
{
    char lab[80];
    bool ascii = true;
    if (n == 0)
        return "empty label (two dots in a row or a leading dot)";
    if (n > 63)
        return "label longer than 63 characters";
    for (size_t i = 0; i < n; i++)
        if (cp[i] >= 0x80)
            ascii = false;
    if (ascii) {
        for (size_t i = 0; i < n; i++) {
            uint32_t c = cp[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
                return "invalid character (only letters, digits, hyphens and dots)";
            lab[i] = (char)c;
        }
        lab[n] = '\0';
    } else {
        for (size_t i = 0; i < n; i++) {
            uint32_t c = cp[i];
            if (c < 0x80 && !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
                return "invalid character (only letters, digits, hyphens and dots)";
        }
        memcpy(lab, "xn--", 4);
        if (store_punycode_encode(cp, n, lab + 4, sizeof lab - 4) < 0 || strlen(lab) > 63)
            return "label longer than 63 characters (as punycode)";
    }
    size_t ln = strlen(lab);
    if (lab[0] == '-' || lab[ln - 1] == '-')
        return "label must not start or end with a hyphen";
    if (outsz - *o < ln + 2)
        return "longer than 253 characters";
    if (*o > 0)
        out[(*o)++] = '.';
    memcpy(out + *o, lab, ln + 1);
    *o += ln;
    return NULL;
}

const char *store_syntax_domain(const char *in, bool need_dot, char *out, size_t outsz)
{
    char tmp[STORE_DOMAIN_MAX + 2];
    uint32_t cp[64];
    size_t ncp = 0, o = 0, nlabels = 0, last_label = 0;
    const unsigned char *s = (const unsigned char *)in;
    if (!*s)
        return "must not be empty";
    if (strlen(in) > 4 * STORE_DOMAIN_MAX)
        return "longer than 253 characters";
    while (*s) {
        uint32_t c;
        size_t k = utf8_next(s, &c);
        if (k == 0)
            return "invalid UTF-8";
        s += k;
        if (is_label_sep(c)) {
            if (!*s)
                return "must not end with a dot";
            const char *why = label_finish(cp, ncp, tmp, sizeof tmp, &o);
            if (why)
                return why;
            nlabels++;
            ncp = 0;
            continue;
        }
        uint32_t m = idn_map(c);
        if (m == 0 || m < 0x20 || m == 0x7F)
            return "invalid character (only letters, digits, hyphens and dots)";
        if (ncp == 63 + 1)
            return "label longer than 63 characters";
        cp[ncp++] = m;
    }
    last_label = o ? o + 1 : 0;
    const char *why = label_finish(cp, ncp, tmp, sizeof tmp, &o);
    if (why)
        return why;
    nlabels++;
    if (o > STORE_DOMAIN_MAX)
        return "longer than 253 characters";
    if (need_dot && nlabels < 2)
        return "must be a fully qualified domain name such as example.com";
    bool numeric = true;
    for (const char *p = tmp + last_label; *p; p++)
        if (!isdigit((unsigned char)*p))
            numeric = false;
    if (numeric)
        return "top-level label must not be all digits";
    if (o + 1 > outsz)
        return "longer than 253 characters";
    memcpy(out, tmp, o + 1);
    return NULL;
}

/* ---------------------------------------------------------------- addresses */
static bool atext(unsigned char c)
{
    return c >= 0x80 || isalnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

const char *store_syntax_address(const char *in, char *out, size_t outsz)
{
    size_t n = strlen(in);
    const char *at = strrchr(in, '@');
    if (n == 0)
        return "must not be empty";
    if (n > STORE_ADDR_MAX)
        return "address longer than 254 characters";
    if (!at)
        return "must be an e-mail address (local-part@domain)";
    size_t ll = (size_t)(at - in);
    if (ll == 0 || ll > 64)
        return "local part must be 1 to 64 characters";
    for (size_t i = 0; i < ll; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '.') {
            if (i == 0 || i == ll - 1 || in[i + 1] == '.')
                return "misplaced dot in the local part";
            continue;
        }
        if (!atext(c))
            return "invalid character in the local part";
    }
    char dom[STORE_DOMAIN_MAX + 1];
    const char *why = store_syntax_domain(at + 1, false, dom, sizeof dom);
    if (why)
        return why;
    if ((size_t)snprintf(out, outsz, "%.*s@%s", (int)ll, in, dom) >= outsz)
        return "address longer than 254 characters";
    if (strlen(out) > STORE_ADDR_MAX)
        return "address longer than 254 characters";
    return NULL;
}

const char *store_syntax_address_pattern(const char *in, char *out, size_t outsz)
{
    if (in[0] == '*' && in[1] == '@') {
        char dom[STORE_DOMAIN_MAX + 1];
        const char *why = store_syntax_domain(in + 2, false, dom, sizeof dom);
        if (why)
            return why;
        if ((size_t)snprintf(out, outsz, "*@%s", dom) >= outsz)
            return "too long";
        return NULL;
    }
    if (strchr(in, '*'))
        return "wildcards are only allowed as *@domain";
    return store_syntax_address(in, out, outsz);
}

/* ---------------------------------------------------------------- IPs */
const char *store_syntax_cidr(const char *in, char *out, size_t outsz)
{
    char a[64];
    unsigned char bin[16];
    size_t n = strlen(in);
    if (n == 0)
        return "must not be empty";
    if (n >= sizeof a || n >= outsz)
        return "not an IP address or CIDR";
    for (size_t i = 0; i <= n; i++)
        a[i] = (char)tolower((unsigned char)in[i]);
    char *slash = strchr(a, '/');
    if (slash)
        *slash = '\0';
    int af = AF_INET, bits = 32;
    if (inet_pton(AF_INET, a, bin) != 1) {
        af = AF_INET6;
        bits = 128;
        if (inet_pton(AF_INET6, a, bin) != 1)
            return "not an IP address or CIDR";
    }
    (void)af;
    if (slash) {
        uint64_t p;
        if (core_parse_u64(slash + 1, 1000, &p) < 0 || p > (uint64_t)bits)
            return bits == 32 ? "prefix length must be 0..32" : "prefix length must be 0..128";
        for (int b = (int)p; b < bits; b++)
            if (bin[b / 8] & (0x80 >> (b % 8)))
                return "address has bits set beyond the prefix length";
        *slash = '/';
    }
    memcpy(out, a, n + 1);
    return NULL;
}

const char *store_syntax_host(const char *in, char *out, size_t outsz)
{
    unsigned char bin[16];
    size_t n = strlen(in);
    if (n == 0)
        return "must not be empty";
    if (n < 64 && (inet_pton(AF_INET, in, bin) == 1 || inet_pton(AF_INET6, in, bin) == 1)) {
        if (n >= outsz)
            return "too long";
        for (size_t i = 0; i <= n; i++)
            out[i] = (char)tolower((unsigned char)in[i]);
        return NULL;
    }
    const char *why = store_syntax_domain(in, false, out, outsz);
    if (why && strcmp(why, "top-level label must not be all digits") == 0)
        return "not a valid IP address";
    return why;
}

const char *store_syntax_company_id(const char *in, char *out, size_t outsz)
{
    size_t n = strlen(in);
    if (n < 3 || n > 63)
        return "must be 3 to 63 characters";
    if (n >= outsz)
        return "too long";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (!isalnum(c) && c != '-')
            return "must contain only letters, digits and hyphens";
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    if (in[0] == '-' || in[n - 1] == '-')
        return "must not start or end with a hyphen";
    return NULL;
}
