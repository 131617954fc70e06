/*
 * rewrite_text.c - the text codecs of the rewriter.
 *
 *   rw_sanitise / rw_is_ascii          untrusted operation text made safe for a header
 *   rw_encoded_words / rw_header_field RFC 2047 B words (UTF-8), folding at 78 columns
 *   rw_header_decode                   a header value to UTF-8 (GMime, with mime/'s fallbacks)
 *   rw_base64_* / rw_qp_*              Content-Transfer-Encoding decode and encode
 *   rw_charset_* / rw_convert          MIME charset labels to iconv, strict conversion
 *   rw_iso2022_ascii_at                the shift state of ISO-2022 text at a byte
 *
 * Conversions are strict: a character that cannot be written in the
 * target charset, or input that is not valid in its charset, fails the
 * conversion (the caller then chooses another way) instead of being
 * replaced - a stamp must never garble the text around it.
 */
#include <gmime/gmime.h>

#include "core/core.h"

#include <errno.h>
#include <iconv.h>

#include "rewrite/rewrite_int.h"

#define RW_FOLD 78    /* preferred line length (RFC 5322 2.1.1) */
#define RW_WORD_RAW 45 /* UTF-8 bytes per encoded word: 60 base64 chars, 72 in all */
#define RW_LONG_TOKEN 900 /* longer unbroken ASCII runs are encoded (split) instead */

bool rw_is_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

char *rw_sanitise(const char *s, size_t n, bool keep_newlines)
{
    struct buf b;
    buf_init(&b, 4 * n + 16);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = core_utf8_next(s, n, i, &cp);
        if (keep_newlines && cp == '\r' && i + 1 < n && s[i + 1] == '\n') {
            i += k;
            continue;
        }
        if (keep_newlines && cp == '\n')
            buf_append(&b, "\n", 1);
        else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || cp == 0x2028 || cp == 0x2029)
            buf_append(&b, " ", 1);
        else
            buf_append_utf8(&b, cp);
        i += k;
    }
    const char *v = buf_cstr(&b);
    size_t a = 0, z = b.len;
    while (a < z && (v[a] == ' ' || v[a] == '\n'))
        a++;
    while (z > a && (v[z - 1] == ' ' || v[z - 1] == '\n'))
        z--;
    char *r = xstrndup(v + a, z - a);
    buf_free(&b);
    return r;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* b64_plain - base64 of n bytes without line breaks, appended */
static int b64_plain(struct buf *out, const unsigned char *in, size_t n)
{
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        q[0] = b64[(v >> 18) & 63];
        q[1] = b64[(v >> 12) & 63];
        q[2] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? b64[v & 63] : '=';
        if (buf_append(out, q, 4) < 0)
            return -1;
    }
    return 0;
}

size_t rw_encoded_words(struct buf *out, const char *s, size_t n, size_t first_room)
{
    size_t words = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i, max = RW_WORD_RAW;
        if (!words && first_room >= 24) /* "=?UTF-8?B?" "?=" and at least 8 base64 characters */
            max = (first_room - 12) / 4 * 3 < RW_WORD_RAW ? (first_room - 12) / 4 * 3 : RW_WORD_RAW;
        while (j < n) {
            uint32_t cp;
            size_t k = core_utf8_next(s, n, j, &cp);
            if (j + k - i > max && j > i)
                break;
            j += k;
        }
        buf_append_str(out, "=?UTF-8?B?");
        b64_plain(out, (const unsigned char *)s + i, j - i);
        buf_append(out, "?=", 3); /* with the '\0' separator */
        words++;
        i = j;
    }
    return words;
}

/* needs_encoding - a token that cannot stand as itself in a header */
static bool needs_encoding(const char *s, size_t n)
{
    if (!rw_is_ascii(s, n) || n > RW_LONG_TOKEN)
        return true;
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == '=' && s[i + 1] == '?')
            return true;
    return false;
}

/* fold_add - append item to the field, folding before it when the line
 * would pass RW_FOLD columns; *col is the current column */
static void fold_add(struct buf *out, const char *item, size_t n, size_t *col, const char *eol, bool first)
{
    if (!first && *col + 1 + n > RW_FOLD) {
        buf_append_str(out, eol);
        buf_append(out, " ", 1);
        *col = 1;
    } else {
        buf_append(out, " ", 1);
        (*col)++;
    }
    buf_append(out, item, n);
    *col += n;
}

int rw_header_field(struct buf *out, const char *name, const char *value, const char *eol)
{
    size_t before = out->len;
    buf_append_str(out, name);
    buf_append(out, ":", 1);
    size_t col = strlen(name) + 1;
    size_t n = strlen(value);
    bool first = true;
    for (size_t i = 0; i < n;) {
        while (i < n && value[i] == ' ')
            i++;
        if (i >= n)
            break;
        size_t j = i;
        while (j < n && value[j] != ' ')
            j++;
        if (!needs_encoding(value + i, j - i)) {
            fold_add(out, value + i, j - i, &col, eol, first);
            first = false;
            i = j;
            continue;
        }
        /* a run of tokens to encode, with the spaces between them (white
         * space between two encoded words is not part of the text) */
        size_t end = j;
        for (;;) {
            size_t a = end;
            while (a < n && value[a] == ' ')
                a++;
            size_t z = a;
            while (z < n && value[z] != ' ')
                z++;
            if (a >= n || !needs_encoding(value + a, z - a))
                break;
            end = z;
        }
        struct buf w;
        buf_init(&w, 8 * (end - i) + 64);
        size_t nw = rw_encoded_words(&w, value + i, end - i, col + 1 < RW_FOLD ? RW_FOLD - col - 1 : 0);
        const char *p = w.ptr;
        for (size_t k = 0; k < nw; k++) {
            size_t l = strlen(p);
            fold_add(out, p, l, &col, eol, first);
            first = false;
            p += l + 1;
        }
        buf_free(&w);
        i = end;
    }
    if (buf_append_str(out, eol) < 0) {
        out->len = before;
        return -1;
    }
    return 0;
}

char *rw_header_decode(const char *value)
{
    rw_init();
    GMimeParserOptions *opts = g_mime_parser_options_new();
    static const char *fallback[] = {"utf-8", "euc-jp", "cp932", "windows-1252", NULL};
    g_mime_parser_options_set_fallback_charsets(opts, fallback);
    g_mime_parser_options_set_rfc2047_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
    char *r = g_mime_utils_header_decode_text(opts, value);
    g_mime_parser_options_free(opts);
    return r ? r : g_strdup("");
}

/* ---------------------------------------------------------------- transfer encodings */
static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

void rw_base64_decode(const char *in, size_t n, struct buf *out)
{
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((unsigned char)in[i]);
        if (v < 0)
            continue;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            char c = (char)((acc >> bits) & 0xFF);
            buf_append(out, &c, 1);
        }
    }
}

int rw_base64_encode(const unsigned char *in, size_t n, const char *eol, struct buf *out)
{
    for (size_t i = 0; i < n; i += 57) {
        size_t k = n - i < 57 ? n - i : 57;
        if (b64_plain(out, in + i, k) < 0 || buf_append_str(out, eol) < 0)
            return -1;
    }
    return 0;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

void rw_qp_decode(const char *in, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (in[i] != '=') {
            buf_append(out, in + i, 1);
            continue;
        }
        /* soft line break, possibly with transport padding before it */
        size_t j = i + 1;
        while (j < n && (in[j] == ' ' || in[j] == '\t'))
            j++;
        if (j < n && (in[j] == '\n' || (in[j] == '\r' && j + 1 < n && in[j + 1] == '\n'))) {
            i = in[j] == '\r' ? j + 1 : j;
            continue;
        }
        if (j >= n) {
            i = n;
            continue;
        }
        if (i + 2 < n && hexval((unsigned char)in[i + 1]) >= 0 && hexval((unsigned char)in[i + 2]) >= 0) {
            char c = (char)(hexval((unsigned char)in[i + 1]) * 16 + hexval((unsigned char)in[i + 2]));
            buf_append(out, &c, 1);
            i += 2;
            continue;
        }
        buf_append(out, "=", 1); /* a lone '=' is kept, as mail clients do */
    }
}

int rw_qp_encode(const unsigned char *in, size_t n, const char *eol, struct buf *out)
{
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = in[i];
        if (c == '\n' || (c == '\r' && i + 1 < n && in[i + 1] == '\n')) {
            if (c == '\r')
                i++;
            if (buf_append_str(out, eol) < 0)
                return -1;
            col = 0;
            continue;
        }
        bool at_eol = i + 1 >= n || in[i + 1] == '\n' || (in[i + 1] == '\r' && i + 2 < n && in[i + 2] == '\n');
        char enc[4];
        size_t el;
        bool literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_eol);
        if (col == 0 && c == 'F' && n - i >= 5 && memcmp(in + i, "From ", 5) == 0)
            literal = false; /* mbox-safe */
        if (col == 0 && c == '.')
            literal = false;
        if (literal) {
            enc[0] = (char)c;
            el = 1;
        } else {
            snprintf(enc, sizeof enc, "=%02X", c);
            el = 3;
        }
        /* keep a line at 76 characters: 75 plus the soft break '=' */
        size_t room = at_eol ? 76 : 75;
        if (col + el > room) {
            if (buf_append(out, "=", 1) < 0 || buf_append_str(out, eol) < 0)
                return -1;
            col = 0;
        }
        if (buf_append(out, enc, el) < 0)
            return -1;
        col += el;
    }
    return 0;
}

/* ---------------------------------------------------------------- charsets */
const char *rw_charset_iconv(const char *label)
{
    static const struct {
        const char *label, *iconv;
    } aliases[] = {
        {"us-ascii", "ASCII"},          {"ascii", "ASCII"},          {"ansi_x3.4-1968", "ASCII"},
        {"iso-8859-1", "ISO-8859-1"},   {"latin1", "ISO-8859-1"},    {"iso8859-1", "ISO-8859-1"},
        {"utf-8", "UTF-8"},             {"utf8", "UTF-8"},           {"shift_jis", "CP932"},
        {"shift-jis", "CP932"},         {"sjis", "CP932"},           {"x-sjis", "CP932"},
        {"ms_kanji", "CP932"},          {"windows-31j", "CP932"},    {"cp932", "CP932"},
        {"csshiftjis", "CP932"},        {"euc-jp", "EUC-JP-MS"},     {"x-euc-jp", "EUC-JP-MS"},
        {"eucjp", "EUC-JP-MS"},         {"iso-2022-jp", "ISO-2022-JP"}, {"csiso2022jp", "ISO-2022-JP"},
        {"iso-2022-jp-2", "ISO-2022-JP-2"}, {"gb2312", "GB18030"},   {"gbk", "GB18030"},
        {"euc-kr", "CP949"},            {"ks_c_5601-1987", "CP949"}, {"big5", "BIG5-HKSCS"},
        {"windows-1252", "WINDOWS-1252"}, {"cp1252", "WINDOWS-1252"},
    };
    if (!label || !*label)
        return NULL;
    char l[64];
    size_t n = 0;
    for (const char *p = label; *p && n < sizeof l - 1; p++) {
        char c = *p;
        if (c == '"' || c == ' ' || c == '\t')
            continue;
        l[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    l[n] = '\0';
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(l, aliases[i].label) == 0)
            return aliases[i].iconv;
    rw_init();
    const char *name = g_mime_charset_iconv_name(l);
    if (!name)
        return NULL;
    iconv_t cd = iconv_open(name, "UTF-8");
    if (cd == (iconv_t)-1)
        return NULL;
    iconv_close(cd);
    return name;
}

int rw_convert(const char *from, const char *to, const char *in, size_t n, struct buf *out)
{
    iconv_t cd = iconv_open(to, from);
    if (cd == (iconv_t)-1)
        return -1;
    char *ip = (char *)in;
    size_t il = n;
    char chunk[4096];
    int rc = 0;
    for (;;) {
        char *op = chunk;
        size_t ol = sizeof chunk;
        size_t r = il ? iconv(cd, &ip, &il, &op, &ol) : iconv(cd, NULL, NULL, &op, &ol);
        int e = errno;
        if (buf_append(out, chunk, sizeof chunk - ol) < 0) {
            rc = -1;
            break;
        }
        if (r == (size_t)-1 && e == E2BIG)
            continue;
        if (r == (size_t)-1 || r > 0) { /* invalid input, or a character written approximately */
            rc = -1;
            break;
        }
        if (!il) {
            /* the final reset (stateful encodings) was written with this call */
            char *op2 = chunk;
            size_t ol2 = sizeof chunk;
            if (iconv(cd, NULL, NULL, &op2, &ol2) == (size_t)-1) {
                rc = -1;
                break;
            }
            if (buf_append(out, chunk, sizeof chunk - ol2) < 0)
                rc = -1;
            break;
        }
    }
    iconv_close(cd);
    return rc;
}

bool rw_charset_stateful(const char *name)
{
    return name && (strncasecmp(name, "ISO-2022", 8) == 0 || strncasecmp(name, "ISO2022", 7) == 0 ||
                    strncasecmp(name, "UTF-7", 5) == 0 || strncasecmp(name, "CSISO2022", 9) == 0);
}

bool rw_charset_ascii_compatible(const char *name)
{
    if (!name || strncasecmp(name, "UTF-7", 5) == 0)
        return false;
    struct buf b;
    buf_init(&b, 64);
    bool ok = rw_convert("UTF-8", name, "<a>\n", 4, &b) == 0 && b.len == 4 && memcmp(b.ptr, "<a>\n", 4) == 0;
    buf_free(&b);
    return ok;
}

bool rw_iso2022_ascii_at(const char *s, size_t len, size_t pos)
{
    bool single = true, shifted = false;
    for (size_t i = 0; i < pos; i++) {
        if (s[i] == 0x0E) {
            shifted = true;
        } else if (s[i] == 0x0F) {
            shifted = false;
        } else if (s[i] == 0x1B && i + 2 < len) {
            if (s[i + 1] == '(' && (s[i + 2] == 'B' || s[i + 2] == 'J'))
                single = true;
            else if (s[i + 1] == '(' || s[i + 1] == '$')
                single = false;
        }
    }
    return single && !shifted;
}
