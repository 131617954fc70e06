/*
 * mime_text.c - charset decoding to UTF-8.
 *
 *   mime_text_to_utf8   bytes in a declared charset (or none) -> valid UTF-8
 *   mime_utf8_clean     any string -> valid UTF-8 without controls (headers, names)
 *
 * Labels are honoured through an alias table (the WHATWG habit: Latin-1 and
 * US-ASCII mean windows-1252, Shift_JIS means CP932, EUC-JP means eucJP-ms,
 * GB2312/GBK mean GB18030). A label iconv does not know, US-ASCII text with
 * 8-bit bytes, and text that does not decode in its declared charset are
 * sniffed: ISO-2022-JP escapes, valid UTF-8, EUC-JP vs CP932, else
 * windows-1252. ISO-2022-JP is decoded here (JIS -> Shift_JIS arithmetic,
 * then CP932) because real mail uses the CP50221 extensions (NEC row 13:
 * circled digits, (株)...) that glibc's strict ISO-2022-JP refuses.
 *
 * Output is bounded by the caller's max, always valid UTF-8 (undecodable
 * input becomes U+FFFD), NUL-terminated, with no NUL bytes inside.
 */
#include "core/core.h"

#include <errno.h>
#include <iconv.h>

#include "mime/mime_int.h"

/* charset_alias - map a (lower-cased) label to an iconv name; NULL: unknown */
static const char *charset_alias(const char *l)
{
    static const struct {
        const char *label, *iconv;
    } aliases[] = {
        {"us-ascii", "WINDOWS-1252"},
        {"ascii", "WINDOWS-1252"},
        {"iso-8859-1", "WINDOWS-1252"},
        {"iso8859-1", "WINDOWS-1252"},
        {"latin1", "WINDOWS-1252"},
        {"iso_8859-1", "WINDOWS-1252"},
        {"windows-1252", "WINDOWS-1252"},
        {"cp1252", "WINDOWS-1252"},
        {"x-user-defined", "WINDOWS-1252"},
        {"utf-8", "UTF-8"},
        {"utf8", "UTF-8"},
        {"x-unicode20utf8", "UTF-8"},
        {"unicode-1-1-utf-8", "UTF-8"},
        {"shift_jis", "CP932"},
        {"shift-jis", "CP932"},
        {"sjis", "CP932"},
        {"x-sjis", "CP932"},
        {"ms_kanji", "CP932"},
        {"windows-31j", "CP932"},
        {"cp932", "CP932"},
        {"x-ms-cp932", "CP932"},
        {"csshiftjis", "CP932"},
        {"euc-jp", "EUC-JP-MS"},
        {"x-euc-jp", "EUC-JP-MS"},
        {"eucjp", "EUC-JP-MS"},
        {"cseucpkdfmtjapanese", "EUC-JP-MS"},
        {"iso-2022-jp", "ISO-2022-JP"},
        {"csiso2022jp", "ISO-2022-JP"},
        {"iso-2022-jp-2", "ISO-2022-JP"},
        {"iso-2022-jp-1", "ISO-2022-JP"},
        {"iso-2022-jp-3", "ISO-2022-JP"},
        {"iso-2022-jp-ms", "ISO-2022-JP"},
        {"cp50220", "ISO-2022-JP"},
        {"cp50221", "ISO-2022-JP"},
        {"cp50222", "ISO-2022-JP"},
        {"gb2312", "GB18030"},
        {"gbk", "GB18030"},
        {"x-gbk", "GB18030"},
        {"cp936", "GB18030"},
        {"euc-cn", "GB18030"},
        {"gb18030", "GB18030"},
        {"ks_c_5601-1987", "CP949"},
        {"euc-kr", "CP949"},
        {"ks_c_5601", "CP949"},
        {"big5", "BIG5-HKSCS"},
        {"x-x-big5", "BIG5-HKSCS"},
        {"big5-hkscs", "BIG5-HKSCS"},
        {"tis-620", "CP874"},
        {"iso-8859-11", "CP874"},
        {"iso-8859-9", "WINDOWS-1254"},
        {"utf-7", "UTF-7"},
        {"unicode-1-1-utf-7", "UTF-7"},
        {"unicode", "UTF-16LE"},
        {"utf-16", "UTF-16"},
        {"ucs-2", "UTF-16"},
    };
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(l, aliases[i].label) == 0)
            return aliases[i].iconv;
    return NULL;
}

/* normalise_label - lower-case, trimmed, unquoted copy into out; "" if none */
static void normalise_label(const char *label, char *out, size_t outsz)
{
    size_t n = 0;
    if (!label) {
        out[0] = '\0';
        return;
    }
    while (*label == ' ' || *label == '\t' || *label == '"' || *label == '\'')
        label++;
    for (; *label && n + 1 < outsz; label++) {
        unsigned char c = (unsigned char)*label;
        if (c == '"' || c == '\'' || c == ' ' || c == '\t' || c == ';')
            break;
        out[n++] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    out[n] = '\0';
}

/* iconv_known - iconv can open name */
static bool iconv_known(const char *name)
{
    iconv_t cd = iconv_open("UTF-8", name);
    if (cd == (iconv_t)-1)
        return false;
    iconv_close(cd);
    return true;
}

const char *mime_charset_resolve(const char *label)
{
    static __thread char last[64];
    char l[64];
    normalise_label(label, l, sizeof l);
    if (!l[0])
        return NULL;
    const char *a = charset_alias(l);
    if (a)
        return a;
    /* windows-125x, iso-8859-x, koi8-r...: let iconv judge, with names it
     * knows only in upper case */
    for (size_t i = 0; l[i]; i++)
        last[i] = (char)((l[i] >= 'a' && l[i] <= 'z') ? l[i] - 32 : l[i]);
    last[strlen(l)] = '\0';
    /* refuse iconv's "//TRANSLIT"-style suffixes and odd names */
    for (size_t i = 0; last[i]; i++) {
        char c = last[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
              c == ':'))
            return NULL;
    }
    return iconv_known(last) ? last : NULL;
}

/* ---------------------------------------------------------------- output */
struct out {
    char *p;
    size_t len, cap, max;
    bool full;
};

static void out_bytes(struct out *o, const char *s, size_t n)
{
    if (o->full || n == 0)
        return;
    if (o->max - o->len < n) {
        /* keep what fits, cut at a UTF-8 character boundary */
        size_t k = o->max - o->len;
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
            k--;
        o->full = true;
        if (!k)
            return;
        n = k;
    }
    if (o->cap - o->len < n + 1) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap - o->len < n + 1)
            cap *= 2;
        o->p = xrealloc(o->p, cap);
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void out_fffd(struct out *o)
{
    out_bytes(o, "\xEF\xBF\xBD", 3);
}

/* utf8_seq_len - length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && s[1] < 0xA0)
            return 0;
        if (c == 0xED && s[1] >= 0xA0)
            return 0; /* surrogates */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90)
            return 0;
        if (c == 0xF4 && s[1] >= 0x90)
            return 0;
        return 4;
    }
    return 0;
}

bool mime_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_seq_len(p + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

/* out_utf8 - append UTF-8 text, invalid bytes as U+FFFD, NUL as space;
 * with clean, other C0 controls and DEL become spaces too (tab, LF, CR kept
 * only when keep_nl) */
static void out_utf8(struct out *o, const char *s, size_t n, bool clean, bool keep_nl)
{
    if (!s || n == 0)
        return;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < n && !o->full) {
        if (p[i] >= 0x20 && p[i] < 0x7F) { /* printable ASCII: the common case */
            run++;
            i++;
            continue;
        }
        size_t k = utf8_seq_len(p + i, n - i);
        bool bad = k == 0;
        bool ctl = k == 1 && (p[i] == 0 || (clean && (p[i] < 0x20 || p[i] == 0x7F) &&
                                            !(keep_nl && (p[i] == '\n' || p[i] == '\r' || p[i] == '\t'))));
        if (!bad && !ctl) {
            run += k;
            i += k;
            continue;
        }
        out_bytes(o, s + i - run, run);
        run = 0;
        if (bad)
            out_fffd(o);
        else
            out_bytes(o, " ", 1);
        i += bad ? 1 : k;
    }
    out_bytes(o, s + i - run, run);
}

/* ---------------------------------------------------------------- iconv */
/* convert - decode n bytes in iconv charset cs, appending UTF-8 to o;
 * returns the number of undecodable bytes (-1 if iconv cannot open cs) */
static long convert(const char *cs, const char *in, size_t n, struct out *o)
{
    iconv_t cd = iconv_open("UTF-8", cs);
    if (cd == (iconv_t)-1)
        return -1;
    long errors = 0;
    char buf[4096];
    char *ip = (char *)in;
    size_t il = n;
    while (il > 0 && !o->full) {
        char *op = buf;
        size_t ol = sizeof buf;
        size_t r = iconv(cd, &ip, &il, &op, &ol);
        if (op > buf)
            out_utf8(o, buf, (size_t)(op - buf), false, true);
        if (r == (size_t)-1) {
            if (errno == E2BIG)
                continue;
            errors++;
            out_fffd(o);
            if (errno == EINVAL)
                break; /* incomplete sequence at the end */
            ip++;
            il--;
            iconv(cd, NULL, NULL, NULL, NULL); /* reset shift state */
        }
    }
    char *op = buf;
    size_t ol = sizeof buf;
    iconv(cd, NULL, NULL, &op, &ol);
    if (op > buf)
        out_utf8(o, buf, (size_t)(op - buf), false, true);
    iconv_close(cd);
    return errors;
}

/* count_errors - undecodable bytes of in as charset cs (bounded work) */
static long count_errors(const char *cs, const char *in, size_t n)
{
    struct out o = {.max = 4 * (n < 65536 ? n : 65536) + 16};
    long e = convert(cs, in, n < 65536 ? n : 65536, &o);
    free(o.p);
    return e;
}

/* iso2022jp_decode - ISO-2022-JP (with CP50221 extensions) to UTF-8: JIS
 * X 0208 pairs become Shift_JIS bytes decoded as CP932; half-width katakana
 * (ESC ( I, SO/SI) and JIS-Roman handled; JIS X 0212 becomes U+FFFD */
static long iso2022jp_decode(const char *in, size_t n, struct out *o)
{
    enum { ASCII, ROMAN, KANJI, KANA, X0212 } st = ASCII;
    bool so = false;
    struct out sj = {.max = 2 * n + 16};
    long errors = 0;
    const unsigned char *p = (const unsigned char *)in;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c == 0x1B) {
            size_t left = n - i - 1;
            const unsigned char *e = p + i + 1;
            if (left >= 2 && e[0] == '$' && (e[1] == 'B' || e[1] == '@')) {
                st = KANJI;
                i += 2;
            } else if (left >= 3 && e[0] == '$' && e[1] == '(' &&
                       (e[2] == 'B' || e[2] == 'Q' || e[2] == 'O')) {
                st = KANJI;
                i += 3;
            } else if (left >= 3 && e[0] == '$' && e[1] == '(' && e[2] == 'D') {
                st = X0212;
                i += 3;
            } else if (left >= 2 && e[0] == '(' && (e[1] == 'B' || e[1] == 'H')) {
                st = ASCII;
                i += 2;
            } else if (left >= 2 && e[0] == '(' && e[1] == 'J') {
                st = ROMAN;
                i += 2;
            } else if (left >= 2 && e[0] == '(' && e[1] == 'I') {
                st = KANA;
                i += 2;
            } else {
                errors++;
                out_bytes(&sj, "?", 1);
            }
            continue;
        }
        if (c == 0x0E) {
            so = true;
            continue;
        }
        if (c == 0x0F) {
            so = false;
            continue;
        }
        if (c == '\n' || c == '\r') {
            /* a line end resets to ASCII in broken encoders' output */
            if (st == KANJI || st == X0212)
                st = ASCII;
            out_bytes(&sj, (const char *)&c, 1);
            continue;
        }
        if ((st == KANA || so) && c >= 0x21 && c <= 0x5F) {
            unsigned char k = (unsigned char)(c + 0x80);
            out_bytes(&sj, (const char *)&k, 1);
            continue;
        }
        if ((st == KANJI || st == X0212) && c >= 0x21 && c <= 0x7E) {
            if (i + 1 >= n || p[i + 1] < 0x21 || p[i + 1] > 0x7E) {
                errors++;
                out_bytes(&sj, "?", 1);
                continue;
            }
            unsigned j1 = c, j2 = p[++i];
            if (st == X0212) {
                errors++;
                out_bytes(&sj, "\x81\xAC", 2); /* geta mark */
                continue;
            }
            unsigned char s[2];
            s[0] = (unsigned char)(((j1 + 1) >> 1) + (j1 <= 0x5E ? 0x70 : 0xB0));
            s[1] = (unsigned char)(j2 + ((j1 & 1) ? (j2 < 0x60 ? 0x1F : 0x20) : 0x7E));
            out_bytes(&sj, (const char *)s, 2);
            continue;
        }
        if (c >= 0x80) {
            /* 8-bit bytes in ISO-2022-JP: a mislabel; keep them for CP932 */
            errors++;
        }
        out_bytes(&sj, (const char *)&c, 1);
    }
    long e = sj.len ? convert("CP932", sj.p, sj.len, o) : 0;
    free(sj.p);
    return errors + (e > 0 ? e : 0);
}

/* decode_as - decode with iconv name cs (our ISO-2022-JP decoder for that) */
static long decode_as(const char *cs, const char *in, size_t n, struct out *o)
{
    if (strcmp(cs, "ISO-2022-JP") == 0)
        return iso2022jp_decode(in, n, o);
    if (strcmp(cs, "UTF-8") == 0) {
        size_t bad = 0;
        for (size_t i = 0; i < n;) {
            size_t k = utf8_seq_len((const unsigned char *)in + i, n - i);
            bad += k == 0;
            i += k ? k : 1;
        }
        out_utf8(o, in, n, false, true);
        return (long)bad;
    }
    return convert(cs, in, n, o);
}

static bool has_8bit(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return true;
    return false;
}

static bool has_jis_escape(const char *s, size_t n)
{
    size_t lim = n < 65536 ? n : 65536;
    for (size_t i = 0; i + 2 < lim; i++)
        if (s[i] == 0x1B && s[i + 1] == '$' && (s[i + 2] == 'B' || s[i + 2] == '@' || s[i + 2] == '('))
            return true;
    return false;
}

const char *mime_charset_sniff(const char *in, size_t n)
{
    if (has_jis_escape(in, n) && !has_8bit(in, n < 65536 ? n : 65536))
        return "ISO-2022-JP";
    if (!has_8bit(in, n))
        return "UTF-8";
    size_t lim = n < 65536 ? n : 65536;
    /* a truncated last sequence at lim is fine */
    size_t cut = lim;
    while (cut > 0 && lim - cut < 3 && ((unsigned char)in[cut - 1] & 0xC0) == 0x80)
        cut--;
    if (cut > 0 && (unsigned char)in[cut - 1] >= 0xC0)
        cut--;
    if (mime_utf8_valid(in, lim == n ? n : cut))
        return "UTF-8";
    long euc = count_errors("EUC-JP-MS", in, n), sj = count_errors("CP932", in, n);
    if (euc == 0 && sj == 0) {
        /* both decode: bytes 0x80-0xA0 (other than SS2/SS3) only exist in Shift_JIS leads */
        for (size_t i = 0; i < lim; i++) {
            unsigned char c = (unsigned char)in[i];
            if (c >= 0x80 && c <= 0xA0 && c != 0x8E && c != 0x8F)
                return "CP932";
        }
        return "EUC-JP-MS";
    }
    long gb = count_errors("GB18030", in, n);
    /* ham in Western languages: prefer windows-1252 unless a CJK charset is clean */
    if (euc == 0)
        return "EUC-JP-MS";
    if (sj == 0)
        return "CP932";
    if (gb == 0 && lim > 0) {
        /* GB18030 accepts almost anything; only trust it for mostly-pairs text */
        size_t hi = 0;
        for (size_t i = 0; i < lim; i++)
            hi += (unsigned char)in[i] >= 0x80;
        if (hi * 3 > lim)
            return "GB18030";
    }
    return "WINDOWS-1252";
}

char *mime_text_to_utf8(const char *charset, const char *in, size_t n, size_t max, size_t *outlen,
                        const char **used)
{
    struct out o = {.max = max};
    if (!in) {
        in = "";
        n = 0;
    }
    const char *cs = mime_charset_resolve(charset);
    /* us-ascii (or no label) with 8-bit bytes, or an unknown label: sniff */
    if (!cs || (strcmp(cs, "WINDOWS-1252") == 0 && charset && strncasecmp(charset, "us-ascii", 8) == 0 &&
                has_8bit(in, n)))
        cs = mime_charset_sniff(in, n);
    else if (strcmp(cs, "WINDOWS-1252") == 0 && has_jis_escape(in, n) && !has_8bit(in, n))
        cs = "ISO-2022-JP"; /* labelled Latin-1, but plainly JIS */
    char csbuf[64];
    core_strlcpy(csbuf, cs, sizeof csbuf);
    long e = decode_as(csbuf, in, n, &o);
    /* declared UTF-8 that has real multi-byte characters is UTF-8 with a few
     * corrupt bytes (they stay U+FFFD); without any, it is a mislabel */
    bool utf8_real = false;
    if (e > 0 && strcmp(csbuf, "UTF-8") == 0) {
        const unsigned char *p = (const unsigned char *)in;
        for (size_t i = 0; i < n && !utf8_real; i++)
            utf8_real = p[i] >= 0xC2 && utf8_seq_len(p + i, n - i) > 1;
    }
    if (e > 0 && n > 0 && !utf8_real) {
        /* the declared charset does not fit: try what the bytes look like */
        const char *sn = mime_charset_sniff(in, n);
        if (strcmp(sn, csbuf) != 0) {
            struct out o2 = {.max = max};
            long e2 = decode_as(sn, in, n, &o2);
            if (e2 >= 0 && e2 < e) {
                free(o.p);
                o = o2;
                core_strlcpy(csbuf, sn, sizeof csbuf);
            } else {
                free(o2.p);
            }
        }
    }
    if (!o.p)
        o.p = xstrdup("");
    if (outlen)
        *outlen = o.len;
    if (used)
        *used = strcmp(csbuf, "WINDOWS-1252") == 0  ? "windows-1252"
                : strcmp(csbuf, "UTF-8") == 0       ? "utf-8"
                : strcmp(csbuf, "CP932") == 0       ? "cp932"
                : strcmp(csbuf, "EUC-JP-MS") == 0   ? "euc-jp"
                : strcmp(csbuf, "ISO-2022-JP") == 0 ? "iso-2022-jp"
                : strcmp(csbuf, "GB18030") == 0     ? "gb18030"
                                                    : "other";
    return o.p;
}

char *mime_utf8_clean(const char *in, size_t n, size_t max)
{
    struct out o = {.max = max};
    if (!in)
        return NULL;
    if (memchr(in, 0x1B, n) && !has_8bit(in, n)) {
        /* raw JIS in a header (no RFC 2047): decode it, as Japanese clients do */
        struct out j = {.max = max};
        iso2022jp_decode(in, n, &j);
        if (j.p)
            out_utf8(&o, j.p, j.len, true, false);
        free(j.p);
    } else if (!mime_utf8_valid(in, n)) {
        size_t l;
        char *d = mime_text_to_utf8(NULL, in, n, max, &l, NULL);
        out_utf8(&o, d, l, true, false);
        free(d);
    } else {
        out_utf8(&o, in, n, true, false);
    }
    if (!o.p)
        o.p = xstrdup("");
    /* a truncated multi-byte sequence cannot happen: out_bytes is all-or-nothing */
    return o.p;
}

/* ---------------------------------------------------------------- RFC 2047 */
/* ew_parse - an encoded-word "=?charset[*lang]?B|Q?text?=" at s (n bytes):
 * its length, charset and the decoded bytes appended to raw; 0 if none */
static size_t ew_parse(const char *s, size_t n, char *cs, size_t cssz, struct buf *raw)
{
    if (n < 8 || s[0] != '=' || s[1] != '?')
        return 0;
    size_t i = 2, k = 0;
    while (i < n && s[i] != '?' && s[i] != ' ' && k + 1 < cssz)
        cs[k++] = s[i++];
    cs[k] = '\0';
    char *star = strchr(cs, '*');
    if (star)
        *star = '\0';
    if (i + 3 >= n || s[i] != '?' || !k)
        return 0;
    char enc = (char)(s[i + 1] | 0x20);
    if ((enc != 'b' && enc != 'q') || s[i + 2] != '?')
        return 0;
    size_t tb = i + 3, te = tb;
    while (te + 1 < n && !(s[te] == '?' && s[te + 1] == '='))
        if (s[te++] == ' ')
            return 0;
    if (te + 1 >= n)
        return 0;
    if (enc == 'q') {
        for (size_t j = tb; j < te; j++) {
            unsigned char c = (unsigned char)s[j];
            if (c == '_') {
                c = ' ';
            } else if (c == '=' && j + 2 < te) {
                static const char hx[] = "0123456789abcdef";
                const char *h1 = strchr(hx, s[j + 1] | 0x20), *h2 = strchr(hx, s[j + 2] | 0x20);
                if (h1 && h2 && s[j + 1] && s[j + 2]) {
                    c = (unsigned char)((h1 - hx) * 16 + (h2 - hx));
                    j += 2;
                }
            }
            buf_append(raw, &c, 1);
        }
    } else {
        unsigned v = 0, bits = 0;
        for (size_t j = tb; j < te; j++) {
            unsigned char c = (unsigned char)s[j];
            int d = c >= 'A' && c <= 'Z'   ? c - 'A'
                    : c >= 'a' && c <= 'z' ? c - 'a' + 26
                    : c >= '0' && c <= '9' ? c - '0' + 52
                    : c == '+'             ? 62
                    : c == '/'             ? 63
                                           : -1;
            if (d < 0)
                continue;
            v = (v << 6) | (unsigned)d;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                unsigned char o = (unsigned char)(v >> bits);
                buf_append(raw, &o, 1);
            }
        }
    }
    return te + 2;
}

char *mime_rfc2047_decode(const char *in, size_t n, size_t max)
{
    struct out o = {.max = max};
    struct buf raw;
    char cs[64] = "", pending_cs[64] = "";
    buf_init(&raw, n + 16);
    size_t i = 0, lit = 0;
    bool prev_ew = false;
    while (i < n) {
        size_t adv = 0;
        if (in[i] == '=' && i + 1 < n && in[i + 1] == '?') {
            struct buf one;
            buf_init(&one, n + 16);
            adv = ew_parse(in + i, n - i, cs, sizeof cs, &one);
            if (adv) {
                /* white space between two encoded-words is dropped; bytes
                 * of one charset are joined first, since mailers split
                 * multi-byte characters across words */
                if (!prev_ew || strcasecmp(cs, pending_cs) != 0) {
                    if (raw.len) {
                        char *d = mime_text_to_utf8(pending_cs, raw.ptr, raw.len, max, NULL, NULL);
                        out_bytes(&o, d, strlen(d));
                        free(d);
                        buf_reset(&raw);
                    }
                    if (!prev_ew)
                        out_utf8(&o, in + lit, i - lit, true, false);
                    core_strlcpy(pending_cs, cs, sizeof pending_cs);
                }
                buf_append(&raw, one.ptr ? one.ptr : "", one.len);
                buf_free(&one);
                i += adv;
                /* look ahead: only white space up to the next encoded-word? */
                size_t j = i;
                while (j < n && (in[j] == ' ' || in[j] == '\t' || in[j] == '\r' || in[j] == '\n'))
                    j++;
                if (j + 1 < n && in[j] == '=' && in[j + 1] == '?') {
                    struct buf probe;
                    char cs2[64];
                    buf_init(&probe, n + 16);
                    size_t ok = ew_parse(in + j, n - j, cs2, sizeof cs2, &probe);
                    buf_free(&probe);
                    if (ok) {
                        i = j;
                        prev_ew = true;
                        continue;
                    }
                }
                prev_ew = false;
                char *d = mime_text_to_utf8(pending_cs, raw.ptr ? raw.ptr : "", raw.len, max, NULL, NULL);
                out_bytes(&o, d, strlen(d));
                free(d);
                buf_reset(&raw);
                lit = i;
                continue;
            }
            buf_free(&one);
        }
        i++;
    }
    if (!prev_ew && lit < n)
        out_utf8(&o, in + lit, n - lit, true, false);
    buf_free(&raw);
    if (!o.p)
        o.p = xstrdup("");
    return o.p;
}
