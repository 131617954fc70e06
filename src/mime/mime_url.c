/*
 * mime_url.c - URLs of a message: found in plain text, taken from HTML
 * (mime_html.c), normalised, deduplicated, capped.
 *
 *   mime_url_normalise  one URL to its canonical form and host (A- and U-label)
 *   mime_url_add        normalise + dedupe + record (cap MIME_MAX_URLS, flag url_limit)
 *   mime_url_scan_text  find http(s)://, ftp:// and www. URLs in text
 *
 * Normalisation follows what a browser would fetch: tabs/newlines removed,
 * backslashes as slashes, scheme and host lower-cased, the host fully
 * percent-decoded, ideographic full stops as dots, IDN converted with
 * libidn2 (UTS #46 non-transitional, NFC), numeric IPv4 forms
 * (3232235777, 0xC0.0250.1.1) as dotted quads, default ports dropped,
 * percent-escapes of unreserved characters decoded and the others
 * upper-cased, non-ASCII and spaces in the path percent-encoded, an empty
 * path as "/". Only http, https and ftp URLs with a host are kept.
 * Bounds: MIME_URL_MAX_LEN bytes of input per URL, MIME_MAX_URLS per message.
 */
#include "core/core.h"

#include <arpa/inet.h>
#include <idn2.h>

#include "mime/mime_int.h"

#define MIME_URL_MAX_LEN 8192

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* normalise_host - host bytes (raw, from the URL) into A-label and U-label
 * forms; -1 if it is not a plausible host */
static int normalise_host(const char *h, size_t n, struct buf *ascii, struct buf *uni)
{
    struct buf dec;
    buf_init(&dec, 1024);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == '%' && i + 2 < n && hexval((unsigned char)h[i + 1]) >= 0 &&
            hexval((unsigned char)h[i + 2]) >= 0) {
            c = (unsigned char)(hexval((unsigned char)h[i + 1]) * 16 + hexval((unsigned char)h[i + 2]));
            i += 2;
        }
        /* U+3002 IDEOGRAPHIC FULL STOP, U+FF0E FULLWIDTH FULL STOP, U+FF61 HALFWIDTH IDEOGRAPHIC FULL STOP */
        if (c == 0xE3 && i + 2 < n && (unsigned char)h[i + 1] == 0x80 && (unsigned char)h[i + 2] == 0x82) {
            c = '.';
            i += 2;
        } else if (c == 0xEF && i + 2 < n &&
                   (((unsigned char)h[i + 1] == 0xBC && (unsigned char)h[i + 2] == 0x8E) ||
                    ((unsigned char)h[i + 1] == 0xBD && (unsigned char)h[i + 2] == 0xA1))) {
            c = '.';
            i += 2;
        }
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        if (c <= 0x20 || c == 0x7F || strchr("<>\"'`{}|\\^/?#@%", c) != NULL) {
            buf_free(&dec);
            return -1;
        }
        if (buf_append(&dec, &c, 1) < 0) {
            buf_free(&dec);
            return -1;
        }
    }
    while (dec.len && dec.ptr[dec.len - 1] == '.')
        dec.ptr[--dec.len] = '\0'; /* buf_cstr does not re-terminate */
    if (!dec.len || !mime_utf8_valid(dec.ptr, dec.len)) {
        buf_free(&dec);
        return -1;
    }
    const char *s = buf_cstr(&dec);
    bool nonascii = false, numeric = true;
    for (size_t i = 0; i < dec.len; i++) {
        unsigned char c = (unsigned char)s[i];
        nonascii |= c >= 0x80;
        if (!((c >= '0' && c <= '9') || c == '.' || c == 'x' || (c >= 'a' && c <= 'f')))
            numeric = false;
    }
    if (numeric && s[0] >= '0' && s[0] <= '9') {
        struct in_addr in;
        if (inet_aton(s, &in)) {
            char q[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &in, q, sizeof q);
            buf_append_str(ascii, q);
            buf_append_str(uni, q);
            buf_free(&dec);
            return 0;
        }
    }
    char *a = NULL, *u = NULL;
    if (nonascii) {
        if (idn2_to_ascii_8z(s, &a, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK &&
            idn2_to_ascii_8z(s, &a, IDN2_NFC_INPUT | IDN2_TRANSITIONAL) != IDN2_OK)
            a = NULL;
        if (!a) {
            /* not valid IDNA: keep the Unicode form, percent-encoded as ASCII */
            for (size_t i = 0; i < dec.len; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c >= 0x80)
                    buf_printf(ascii, "%%%02X", c);
                else
                    buf_append(ascii, &c, 1);
            }
            buf_append_str(uni, s);
            buf_free(&dec);
            return 0;
        }
        buf_append_str(ascii, a);
    } else {
        buf_append_str(ascii, s);
    }
    if (strstr(buf_cstr(ascii), "xn--") &&
        idn2_to_unicode_8z8z(buf_cstr(ascii), &u, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) == IDN2_OK && u)
        buf_append_str(uni, u);
    else if (nonascii)
        buf_append_str(uni, s);
    else
        buf_append_str(uni, buf_cstr(ascii));
    idn2_free(a);
    idn2_free(u);
    buf_free(&dec);
    return 0;
}

char *mime_url_normalise(const char *raw, size_t len, char **host, char **host_unicode)
{
    struct buf in, out, ha, hu;
    char *res = NULL;
    if (len > MIME_URL_MAX_LEN)
        return NULL;
    buf_init(&in, MIME_URL_MAX_LEN + 16);
    buf_init(&out, 4 * MIME_URL_MAX_LEN);
    buf_init(&ha, 1024);
    buf_init(&hu, 1024);
    /* trim, drop tab/CR/LF (browsers do), backslash as slash, <...> unwrapped */
    size_t b = 0, e = len;
    while (b < e && ((unsigned char)raw[b] <= 0x20 || raw[b] == '<' || raw[b] == '"' || raw[b] == '\''))
        b++;
    while (e > b && ((unsigned char)raw[e - 1] <= 0x20 || raw[e - 1] == '>' || raw[e - 1] == '"' ||
                     raw[e - 1] == '\''))
        e--;
    for (size_t i = b; i < e; i++) {
        char c = raw[i];
        if (c == '\t' || c == '\r' || c == '\n' || c == '\0')
            continue;
        buf_append(&in, c == '\\' ? "/" : &raw[i], 1);
    }
    const char *s = buf_cstr(&in);
    size_t n = in.len, p = 0;
    char scheme[8];
    if (n >= 4 && strncasecmp(s, "www.", 4) == 0) {
        core_strlcpy(scheme, "http", sizeof scheme);
    } else if (n >= 2 && s[0] == '/' && s[1] == '/') {
        core_strlcpy(scheme, "http", sizeof scheme);
    } else {
        size_t k = 0;
        while (k < n && k < 6 && s[k] != ':')
            k++;
        if (k >= n || s[k] != ':' || k == 0 || k >= sizeof scheme)
            goto done;
        for (size_t i = 0; i < k; i++)
            scheme[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
        scheme[k] = '\0';
        if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0 && strcmp(scheme, "ftp") != 0)
            goto done;
        p = k + 1;
    }
    while (p < n && s[p] == '/')
        p++;
    size_t ab = p;
    while (p < n && s[p] != '/' && s[p] != '?' && s[p] != '#')
        p++;
    size_t ae = p; /* authority [ab, ae) */
    size_t hb = ab;
    for (size_t i = ab; i < ae; i++)
        if (s[i] == '@')
            hb = i + 1;
    size_t he = ae, portb = ae;
    if (hb < ae && s[hb] == '[') {
        const char *rb = memchr(s + hb, ']', ae - hb);
        if (!rb)
            goto done;
        he = (size_t)(rb - s) + 1;
        if (he < ae && s[he] == ':')
            portb = he + 1;
        else if (he != ae)
            goto done;
        buf_append(&ha, s + hb, he - hb);
        for (size_t i = 0; i < ha.len; i++)
            if (ha.ptr[i] >= 'A' && ha.ptr[i] <= 'Z')
                ha.ptr[i] = (char)(ha.ptr[i] + 32);
        buf_append(&hu, ha.ptr, ha.len);
    } else {
        for (size_t i = ae; i > hb; i--)
            if (s[i - 1] == ':') {
                he = i - 1;
                portb = i;
                break;
            }
        if (normalise_host(s + hb, he - hb, &ha, &hu) < 0)
            goto done;
    }
    unsigned long port = 0;
    bool has_port = false;
    if (portb < ae) {
        for (size_t i = portb; i < ae; i++) {
            if (s[i] < '0' || s[i] > '9' || port > 65535)
                goto done;
            port = port * 10 + (unsigned long)(s[i] - '0');
        }
        if (port > 65535)
            goto done;
        has_port = true;
    }
    if (has_port &&
        ((port == 80 && strcmp(scheme, "http") == 0) || (port == 443 && strcmp(scheme, "https") == 0) ||
         (port == 21 && strcmp(scheme, "ftp") == 0)))
        has_port = false;
    buf_printf(&out, "%s://", scheme);
    if (hb > ab) {
        /* userinfo kept (the classic http://bank.test@evil.test trick), escaped */
        for (size_t i = ab; i < hb - 1; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c <= 0x20 || c >= 0x7F)
                buf_printf(&out, "%%%02X", c);
            else
                buf_append(&out, &c, 1);
        }
        buf_append(&out, "@", 1);
    }
    buf_append(&out, ha.ptr, ha.len);
    if (has_port)
        buf_printf(&out, ":%lu", port);
    if (p >= n || s[p] != '/')
        buf_append(&out, "/", 1);
    for (size_t i = p; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
            hexval((unsigned char)s[i + 2]) >= 0) {
            unsigned char d =
                (unsigned char)(hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]));
            if (unreserved(d))
                buf_append(&out, &d, 1);
            else
                buf_printf(&out, "%%%02X", d);
            i += 2;
        } else if (c <= 0x20 || c >= 0x7F || c == '"' || c == '<' || c == '>' || c == '`') {
            buf_printf(&out, "%%%02X", c);
        } else {
            buf_append(&out, &c, 1);
        }
    }
    if (out.len >= out.max)
        goto done;
    res = xstrdup(buf_cstr(&out));
    if (host)
        *host = xstrdup(buf_cstr(&ha));
    if (host_unicode)
        *host_unicode = xstrdup(buf_cstr(&hu));
done:
    buf_free(&in);
    buf_free(&out);
    buf_free(&ha);
    buf_free(&hu);
    return res;
}

void mime_url_add(struct analysis *a, const char *raw, size_t len, const char *text, const char *source)
{
    if (a->nurls >= MIME_MAX_URLS) {
        /* full: no more work per URL (a message of nothing but URLs stays linear) */
        char why[64];
        snprintf(why, sizeof why, "more than %d URLs; the rest not listed", MIME_MAX_URLS);
        analysis_add_flag(a, "url_limit", why);
        return;
    }
    char *host = NULL, *hu = NULL;
    char *url = mime_url_normalise(raw, len, &host, &hu);
    if (!url)
        return;
    char *t = NULL;
    if (text) {
        t = mime_utf8_clean(text, strlen(text), MIME_MAX_NAME);
        /* collapse runs of white space */
        size_t w = 0;
        bool sp = true;
        for (size_t r = 0; t[r]; r++) {
            if (t[r] == ' ' || t[r] == '\t' || t[r] == '\n' || t[r] == '\r') {
                if (!sp)
                    t[w++] = ' ';
                sp = true;
            } else {
                t[w++] = t[r];
                sp = false;
            }
        }
        while (w && t[w - 1] == ' ')
            w--;
        t[w] = '\0';
        if (!w) {
            free(t);
            t = NULL;
        }
    }
    for (size_t i = 0; i < a->nurls; i++) {
        struct mime_url *u = &a->urls[i];
        if (strcmp(u->url, url) == 0) {
            if (!u->text && t) {
                u->text = t;
                t = NULL;
            }
            if (strcmp(u->source, "text") == 0 && strcmp(source, "text") != 0) {
                free(u->source);
                u->source = xstrdup(source);
            }
            goto out;
        }
    }
    if (a->nurls >= MIME_MAX_URLS) {
        char why[64];
        snprintf(why, sizeof why, "more than %d URLs; the rest not listed", MIME_MAX_URLS);
        analysis_add_flag(a, "url_limit", why);
        goto out;
    }
    struct mime_url *u = mime_array_push(&a->urls, &a->nurls, sizeof *u);
    u->url = url;
    u->host = host;
    u->host_unicode = hu;
    u->text = t;
    u->source = xstrdup(source);
    return;
out:
    free(url);
    free(host);
    free(hu);
    free(t);
}

/* url_stop - byte at s[i] (UTF-8) ends a URL in text; in_host allows
 * non-ASCII letters (IDN) but not CJK punctuation or full-width forms */
static bool url_stop(const unsigned char *s, size_t i, size_t n, bool in_host, bool idn)
{
    unsigned char c = s[i];
    if (c <= 0x20 || c == 0x7F || strchr("<>\"`{}|^", c))
        return true;
    if (c < 0x80)
        return false;
    if (!in_host)
        return true;
    /* an ideographic / full-width full stop inside an IDN host is a dot
     * (例え。テスト); after an ASCII host it ends the sentence */
    if (idn && i + 3 < n && s[i + 3] > 0x20 &&
        ((c == 0xE3 && s[i + 1] == 0x80 && s[i + 2] == 0x82) ||
         (c == 0xEF && s[i + 1] == 0xBC && s[i + 2] == 0x8E) ||
         (c == 0xEF && s[i + 1] == 0xBD && s[i + 2] == 0xA1)))
        return false;
    if (c == 0xE3 && i + 1 < n && s[i + 1] == 0x80)
        return true; /* U+3000-U+303F */
    if (c == 0xEF && i + 1 < n && (s[i + 1] >= 0xBC && s[i + 1] <= 0xBF))
        return true; /* U+FF00-U+FFFF */
    if (c == 0xC2 && i + 1 < n && s[i + 1] == 0xA0)
        return true; /* NBSP */
    if (c == 0xE2 && i + 1 < n && s[i + 1] == 0x80)
        return true; /* general punctuation, zero-width */
    return false;
}

void mime_url_scan_text(struct analysis *a, const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        size_t pre = 0;
        bool boundary =
            i == 0 || !((s[i - 1] >= 'a' && s[i - 1] <= 'z') || (s[i - 1] >= 'A' && s[i - 1] <= 'Z') ||
                        (s[i - 1] >= '0' && s[i - 1] <= '9') || s[i - 1] == '.' || s[i - 1] == '/');
        unsigned char lc = (unsigned char)(s[i] | 0x20);
        if (!boundary || (lc != 'h' && lc != 'f' && lc != 'w')) {
            i++;
            continue;
        }
        if (len - i >= 7 && strncasecmp(text + i, "http://", 7) == 0)
            pre = 7;
        else if (len - i >= 8 && strncasecmp(text + i, "https://", 8) == 0)
            pre = 8;
        else if (len - i >= 6 && strncasecmp(text + i, "ftp://", 6) == 0)
            pre = 6;
        else if (len - i >= 5 && strncasecmp(text + i, "www.", 4) == 0 && s[i + 4] > 0x20)
            pre = 4;
        if (!pre) {
            i++;
            continue;
        }
        size_t j = i + pre;
        bool in_host = true;
        bool idn = false;
        while (j < len && j - i < MIME_URL_MAX_LEN && !url_stop(s, j, len, in_host, idn)) {
            if (s[j] == '/' || s[j] == '?' || s[j] == '#')
                in_host = false;
            if (in_host && s[j] >= 0x80)
                idn = true;
            j++;
        }
        size_t e = j;
        /* trailing punctuation is the sentence's, unbalanced brackets too
         * (balances counted once: linear however many brackets trail) */
        long paren = 0, square = 0;
        for (size_t k = i; k < e; k++) {
            paren += s[k] == '(' ? 1 : s[k] == ')' ? -1 : 0;
            square += s[k] == '[' ? 1 : s[k] == ']' ? -1 : 0;
        }
        for (;;) {
            if (e <= i + pre)
                break;
            unsigned char c = s[e - 1];
            if (strchr(".,;:!?'*", c)) {
                e--;
                continue;
            }
            if ((c == ')' && paren < 0) || (c == ']' && square < 0)) {
                if (c == ')')
                    paren++;
                else
                    square++;
                e--;
                continue;
            }
            break;
        }
        if (e > i + pre)
            mime_url_add(a, text + i, e - i, NULL, "text");
        i = j > i ? j : i + 1;
    }
}
