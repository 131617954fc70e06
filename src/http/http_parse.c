/*
 * http_parse.c - the pure parsers of the HTTP layer: Cookie headers, API
 * times and numbers, a JSON nesting guard, base32, e-mail syntax.
 *
 *   http_cookie_get       one cookie's value from a Cookie header
 *   http_parse_time       epoch / relative / ISO 8601 times of query strings
 *   http_parse_uint       checked decimal numbers
 *   http_json_depth_ok    reject deeply nested JSON before jansson sees it
 *   http_base32_*         RFC 4648 base32 (TOTP secrets)
 *   http_email_ok         account e-mail syntax
 *
 * Every function takes untrusted bytes with an explicit length (or a
 * NUL-terminated string the server bounded), never reads past them, and
 * has no state: they are unit-tested and fuzzed (tests/fuzz/fuzz_http.c).
 */
#include "http/http_int.h"

#include <ctype.h>
#include <math.h>

/* cookie_octet - RFC 6265 cookie-octet (no controls, space, DQUOTE, comma, semicolon, backslash) */
static bool cookie_octet(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x2B) || (c >= 0x2D && c <= 0x3A) || (c >= 0x3C && c <= 0x5B) ||
           (c >= 0x5D && c <= 0x7E);
}

long http_cookie_get(const char *header, size_t len, const char *name, char *out, size_t outsz)
{
    size_t nlen = strlen(name);
    size_t i = 0;
    while (i < len) {
        while (i < len && (header[i] == ' ' || header[i] == '\t' || header[i] == ';'))
            i++;
        size_t start = i;
        while (i < len && header[i] != '=' && header[i] != ';')
            i++;
        size_t klen = i - start;
        if (i >= len || header[i] != '=') /* a pair without '=': skip it */
            continue;
        i++; /* '=' */
        size_t vstart = i;
        while (i < len && header[i] != ';')
            i++;
        size_t vend = i;
        while (vend > vstart && (header[vend - 1] == ' ' || header[vend - 1] == '\t'))
            vend--;
        if (klen != nlen || memcmp(header + start, name, nlen) != 0)
            continue;
        const char *v = header + vstart;
        size_t vlen = vend - vstart;
        if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
            v++;
            vlen -= 2;
        }
        if (vlen >= outsz)
            return -1;
        for (size_t k = 0; k < vlen; k++)
            if (!cookie_octet((unsigned char)v[k]))
                return -1;
        memcpy(out, v, vlen);
        out[vlen] = '\0';
        return (long)vlen;
    }
    return -1;
}

int http_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s || strlen(s) > 20)
        return -1;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

/* digits - exactly n decimal digits at s; -1 otherwise */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* days_from_civil - days since 1970-01-01 of a proleptic Gregorian date */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* parse_iso - "YYYY-MM-DD[(T| )HH:MM[:SS[.f+]]][Z|(+|-)HH:MM]" */
static int parse_iso(const char *s, double *out)
{
    size_t len = strlen(s);
    if (len < 10 || s[4] != '-' || s[7] != '-')
        return -1;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31)
        return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (d > mdays[mo - 1] || (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)))
        return -1;
    int hh = 0, mm = 0, ss = 0;
    double frac = 0;
    const char *p = s + 10;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        if (strlen(p) < 6 || p[3] != ':')
            return -1;
        hh = digits(p + 1, 2);
        mm = digits(p + 4, 2);
        p += 6;
        if (*p == ':') {
            ss = digits(p + 1, 2);
            if (strlen(p) < 3)
                return -1;
            p += 3;
            if (*p == '.') {
                p++;
                double scale = 0.1;
                int n = 0;
                while (*p >= '0' && *p <= '9' && n < 9) {
                    frac += (*p - '0') * scale;
                    scale /= 10;
                    p++;
                    n++;
                }
                if (n == 0)
                    return -1;
            }
        }
        if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60)
            return -1;
    }
    int off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        if (strlen(p) != 6 || p[3] != ':')
            return -1;
        int oh = digits(p + 1, 2), om = digits(p + 4, 2);
        if (oh < 0 || oh > 14 || om < 0 || om > 59)
            return -1;
        off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
        p += 6;
    }
    if (*p)
        return -1;
    int64_t days = days_from_civil(y, mo, d);
    *out = (double)(days * 86400 + hh * 3600 + mm * 60 + ss - off) + frac;
    return 0;
}

int http_parse_time(const char *s, double now, double *out)
{
    if (!s || !*s || strlen(s) > 40)
        return -1;
    if (strcmp(s, "now") == 0) {
        *out = now;
        return 0;
    }
    size_t len = strlen(s);
    /* relative: digits + unit */
    char unit = s[len - 1];
    if (len >= 2 && strchr("smhdw", unit) && strspn(s, "0123456789") == len - 1) {
        char num[24];
        if (len - 1 >= sizeof num)
            return -1;
        memcpy(num, s, len - 1);
        num[len - 1] = '\0';
        uint64_t n;
        if (http_parse_uint(num, 100000000, &n) < 0)
            return -1;
        double mul = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' ? 86400 : 604800;
        *out = now - (double)n * mul;
        return 0;
    }
    /* epoch seconds, optionally with a fraction */
    size_t intlen = strspn(s, "0123456789");
    if (intlen == len || (intlen > 0 && s[intlen] == '.' && intlen + 1 < len &&
                          strspn(s + intlen + 1, "0123456789") == len - intlen - 1)) {
        if (intlen > 12)
            return -1;
        char *end = NULL;
        double v = strtod(s, &end);
        if (!end || *end || !isfinite(v))
            return -1;
        *out = v;
        return 0;
    }
    return parse_iso(s, out);
}

bool http_json_depth_ok(const char *p, size_t len, unsigned max)
{
    unsigned depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"')
            in_str = true;
        else if (c == '[' || c == '{') {
            if (++depth > max)
                return false;
        } else if ((c == ']' || c == '}') && depth > 0)
            depth--;
    }
    return true;
}

static const char B32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

long http_base32_encode(const unsigned char *in, size_t len, char *out, size_t outsz)
{
    size_t need = (len * 8 + 4) / 5;
    if (need + 1 > outsz)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = B32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = B32[(acc << (5 - bits)) & 31];
    out[o] = '\0';
    return (long)o;
}

long http_base32_decode(const char *in, size_t len, unsigned char *out, size_t outsz)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    bool padding = false;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == ' ' || c == '-')
            continue;
        if (c == '=') {
            padding = true;
            continue;
        }
        if (padding)
            return -1;
        int v;
        if (c >= 'a' && c <= 'z')
            v = c - 'a';
        else if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= '2' && c <= '7')
            v = c - '2' + 26;
        else
            return -1;
        acc = (acc << 5) | (uint32_t)v;
        bits += 5;
        if (bits >= 8) {
            if (o >= outsz)
                return -1;
            out[o++] = (unsigned char)((acc >> (bits - 8)) & 0xff);
            bits -= 8;
        }
    }
    return (long)o;
}

bool http_email_ok(const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len < 3 || len > STORE_EMAIL_MAX)
        return false;
    const char *at = strchr(s, '@');
    if (!at || at == s || !at[1] || strchr(at + 1, '@'))
        return false;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == ',' || c == ';')
            return false;
    }
    return true;
}
