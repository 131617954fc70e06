/*
 * detect_style.c - writing-style profiles (stylometry) of high-profile users,
 * for the BEC detector's "writing_style" detection (docs/detection.md "BEC").
 *
 *   style_sample_of       the style facts of one message's own text (quoted
 *                         replies and forwarded parts cut off)
 *   style_profile_new / style_profile_add   learn: sum of samples of the
 *                         user's own mail (moatctl style learn)
 *   style_distance        how far a sample is from a profile, in [0, 1], with
 *                         the per-feature parts for the evidence
 *   style_profile_serialise / _parse / _save / _load   the profile file
 *
 * Features (language-independent, so Japanese and English both work):
 * hashed character-trigram frequencies (STYLE_NGRAMS buckets, over folded
 * code points, digits collapsed), English function words and Japanese
 * particles/auxiliaries, punctuation and layout habits (rates per character:
 * ",", "!", "、", "。", full-width ASCII, upper case, line breaks, ...), mean
 * sentence length, and the greeting and sign-off classes ("Hi", "Dear",
 * "お疲れ様です", "お世話になっております" / "Regards", "Thanks",
 * "よろしくお願いします", "以上").
 *
 * The profile file (STYLE_MAGIC, version STYLE_VERSION, little-endian, fixed
 * size, FNV-1a 64 checksum at the end) holds the dimensions it was built with;
 * a file with other dimensions, a bad checksum or non-finite numbers is
 * refused. Memory: a profile is one allocation, freed by style_profile_free.
 * Bounds: at most STYLE_MAX_TEXT bytes of a message are read.
 */
#include "core/core.h"

#include <errno.h>
#include <math.h>

#include "detect/detect_int.h"

#define STYLE_MAGIC "MOATSTYL"
#define STYLE_MAX_TEXT (64 * 1024)

static const char *const fwords[] = {
    "the", "a", "an", "and", "or", "but", "of", "to", "in", "on", "at", "for", "with", "from", "by",
    "as", "is", "are", "was", "were", "be", "been", "it", "this", "that", "these", "i", "you", "we",
    "he", "they", "me", "my", "your", "our", "will", "would", "can", "could", "should", "please", "not",
    "no", "so", "if", "just", "also", "have", "has", "do", "there", "which", "what", "all", "about",
    "any", "some", "thanks", "here", "let",
};
static const char *const jwords[] = {
    "は", "が", "を", "に", "で", "と", "も", "の", "へ", "から", "まで", "より", "です", "ます", "でした",
    "ました", "ください", "下さい", "お願い", "よろしく", "宜しく", "ございます", "いたします", "致します",
    "させて", "けど", "ので", "ため", "こと", "思います", "いただ", "頂", "ね", "よ", "か", "ましょう",
};
#define NFW_EN (sizeof fwords / sizeof *fwords)
#define NFW_JA (sizeof jwords / sizeof *jwords)
_Static_assert(NFW_EN + NFW_JA == STYLE_NFW, "STYLE_NFW matches the word lists");

/* punctuation/layout classes counted per non-space character */
enum {
    P_COMMA, P_PERIOD, P_EXCL, P_QUEST, P_SEMI, P_COLON, P_DASH, P_PAREN, P_QUOTE, P_ELLIPSIS,
    P_TOUTEN, P_KUTEN, P_FWEXCL, P_FWQUEST, P_FULLWIDTH, P_UPPER, P_DIGIT, P_NEWLINE, P_EMOJI, P_TILDE,
};
_Static_assert(P_TILDE + 1 == STYLE_NPUNCT, "STYLE_NPUNCT matches the classes");
static const char *const punct_names[STYLE_NPUNCT] = {
    "','", "'.'", "'!'", "'?'", "';'", "':'", "'-'", "'('", "quotes", "'...'", "'、'", "'。'", "'！'", "'？'",
    "full-width ASCII", "capitals", "digits", "line breaks", "emoji", "'~'",
};

/* greeting and sign-off classes: 0 = none of these */
static const char *const greet_names[STYLE_NGREET] = {
    "none", "hi", "hello", "dear", "hey", "good morning/afternoon", "name,", "お疲れ様です",
    "お世話になっております", "各位", "様", "こんにちは",
};
static const char *const sign_names[STYLE_NSIGN] = {
    "none", "regards", "best", "thanks", "cheers", "sincerely", "sent from my phone",
    "よろしくお願いします", "以上", "取り急ぎ", "-- signature", "name only",
};

/* ---------------------------------------------------------------- text */

static bool starts_ci(const char *s, size_t n, const char *p)
{
    size_t k = strlen(p);
    return n >= k && strncasecmp(s, p, k) == 0;
}

static bool contains(const char *s, size_t n, const char *p)
{
    return memmem(s, n, p, strlen(p)) != NULL;
}

/* quoted_line - a quoted line or a reply attribution ("On ... wrote:"):
 * skipped, the author's text may continue below it */
static bool quoted_line(const char *l, size_t n)
{
    while (n && (*l == ' ' || *l == '\t')) {
        l++;
        n--;
    }
    if (n && (*l == '>' || *l == '|'))
        return true;
    while (n && (l[n - 1] == ' ' || l[n - 1] == '\r'))
        n--;
    if (n > 6 && strncasecmp(l + n - 6, "wrote:", 6) == 0)
        return true;
    return contains(l, n, "のメッセージ:") || contains(l, n, "書きました:") || contains(l, n, "wrote：");
}

/* quote_start - a line after which everything is quoted or forwarded
 * (top-posted replies, forwards, signatures) */
static bool quote_start(const char *l, size_t n)
{
    while (n && (*l == ' ' || *l == '\t')) {
        l++;
        n--;
    }
    return starts_ci(l, n, "-----original message") || starts_ci(l, n, "----- original message") ||
           starts_ci(l, n, "-----forwarded") || starts_ci(l, n, "---------- forwarded") ||
           starts_ci(l, n, "begin forwarded message") || starts_ci(l, n, "from: ") || starts_ci(l, n, "差出人:") ||
           starts_ci(l, n, "差出人 :") || starts_ci(l, n, "送信者:") || starts_ci(l, n, "-----原文-----") ||
           starts_ci(l, n, "-----元のメッセージ-----") || (n >= 2 && memcmp(l, "--", 2) == 0 && (n == 2 || l[2] == ' '));
}

static unsigned greet_class(const char *l, size_t n)
{
    char f[256];
    size_t k = ident_norm_text(l, n, f, sizeof f);
    if (!k)
        return 0;
    if (contains(f, k, "お疲れ様") || contains(f, k, "お疲れさま") || contains(f, k, "おつかれ"))
        return 7;
    if (contains(f, k, "お世話にな"))
        return 8;
    if (contains(f, k, "各位"))
        return 9;
    if (contains(f, k, "こんにちは"))
        return 11;
    if (contains(f, k, "様") || contains(f, k, "さま") || contains(f, k, "さん") || contains(f, k, "殿"))
        return 10;
    if (starts_ci(f, k, "hi ") || starts_ci(f, k, "hi,") || (k == 2 && starts_ci(f, k, "hi")))
        return 1;
    if (starts_ci(f, k, "hello"))
        return 2;
    if (starts_ci(f, k, "dear"))
        return 3;
    if (starts_ci(f, k, "hey"))
        return 4;
    if (starts_ci(f, k, "good morning") || starts_ci(f, k, "good afternoon") || starts_ci(f, k, "good evening"))
        return 5;
    if (k < 30 && f[k - 1] == ',' && !memchr(f, '.', k))
        return 6;
    return 0;
}

static unsigned sign_class(const char *l, size_t n)
{
    char f[256];
    size_t k = ident_norm_text(l, n, f, sizeof f);
    if (!k)
        return 0;
    if (contains(f, k, "regards"))
        return 1;
    if (starts_ci(f, k, "best") || starts_ci(f, k, "all the best"))
        return 2;
    if (starts_ci(f, k, "thanks") || starts_ci(f, k, "thank you") || starts_ci(f, k, "many thanks") ||
        starts_ci(f, k, "thx"))
        return 3;
    if (starts_ci(f, k, "cheers"))
        return 4;
    if (contains(f, k, "sincerely"))
        return 5;
    if (starts_ci(f, k, "sent from my"))
        return 6;
    if (contains(f, k, "よろしくお願") || contains(f, k, "宜しくお願") || contains(f, k, "よろしく"))
        return 7;
    if (k == 6 && memcmp(f, "以上", 6) == 0)
        return 8;
    if (contains(f, k, "取り急ぎ"))
        return 9;
    if (strcmp(f, "--") == 0)
        return 10;
    return 0;
}

/* count_words - English function words in ASCII letter runs */
static void count_words(const char *t, size_t n, double *fw, double *nwords)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && !((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z')))
            i++;
        size_t s = i;
        while (i < n && ((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') || t[i] == '\''))
            i++;
        size_t k = i - s;
        if (!k)
            continue;
        (*nwords)++;
        if (k > 8)
            continue;
        char w[9];
        for (size_t j = 0; j < k; j++)
            w[j] = (char)(t[s + j] >= 'A' && t[s + j] <= 'Z' ? t[s + j] + 32 : t[s + j]);
        w[k] = '\0';
        for (size_t j = 0; j < NFW_EN; j++)
            if (strcmp(w, fwords[j]) == 0) {
                fw[j]++;
                break;
            }
    }
}

void style_sample_of(const struct analysis *a, struct style_sample *s)
{
    memset(s, 0, sizeof *s);
    const char *t = a->text ? a->text : "";
    size_t tl = a->text ? a->text_len : 0;
    if (tl > STYLE_MAX_TEXT)
        tl = STYLE_MAX_TEXT;
    /* the author's own lines: quoted lines and attributions skipped, nothing
     * after a forwarded/original-message block or a signature separator */
    struct buf own;
    buf_init(&own, STYLE_MAX_TEXT);
    size_t lines = 0;
    const char *last[4] = {NULL};
    size_t lastn[4] = {0};
    bool first = true;
    for (size_t i = 0; i < tl;) {
        const char *nl = memchr(t + i, '\n', tl - i);
        size_t ln = nl ? (size_t)(nl - (t + i)) : tl - i;
        const char *l = t + i;
        i += ln + (nl ? 1 : 0);
        if (quote_start(l, ln))
            break;
        if (quoted_line(l, ln))
            continue;
        size_t k = ln;
        while (k && (l[k - 1] == ' ' || l[k - 1] == '\r' || l[k - 1] == '\t'))
            k--;
        buf_append(&own, l, k);
        buf_append(&own, "\n", 1);
        if (k) {
            if (first) {
                s->greet = greet_class(l, k);
                first = false;
            }
            memmove(last, last + 1, 3 * sizeof *last);
            memmove(lastn, lastn + 1, 3 * sizeof *lastn);
            last[3] = l;
            lastn[3] = k;
            lines++;
        }
    }
    for (int j = 3; j >= 0 && !s->sign; j--)
        if (last[j])
            s->sign = sign_class(last[j], lastn[j]);
    if (!s->sign && last[3] && lines > 2 && lastn[3] <= 24 && !memchr(last[3], '.', lastn[3]))
        s->sign = STYLE_NSIGN - 1; /* a bare name as the last line */
    t = own.ptr ? own.ptr : "";
    size_t end = own.len;
    /* characters, trigrams, punctuation, sentences */
    uint32_t w[3] = {' ', ' ', ' '};
    double sent = 0, nsent = 0, sentlen = 0;
    bool space = true;
    for (size_t i = 0; i < end;) {
        uint32_t cp;
        i += core_utf8_next(t, end, i, &cp);
        uint32_t raw = cp;
        cp = ident_fold(cp);
        if (raw == '\n')
            s->punct[P_NEWLINE]++;
        bool boundary = raw == '\n' || cp == '.' || cp == '!' || cp == '?' || cp == 0x3002;
        if (cp == ' ') {
            if (boundary && sentlen > 0) {
                sent += sentlen;
                nsent++;
                sentlen = 0;
            }
            if (space)
                continue;
            space = true;
        } else {
            space = false;
            s->nchars++;
            sentlen++;
            if (boundary) {
                sent += sentlen;
                nsent++;
                sentlen = 0;
            }
        }
        if (cp >= '0' && cp <= '9') {
            s->punct[P_DIGIT]++;
            cp = '0';
        }
        if (raw >= 'A' && raw <= 'Z')
            s->punct[P_UPPER]++;
        if (raw >= 0xFF01 && raw <= 0xFF5E)
            s->punct[P_FULLWIDTH]++;
        switch (raw) {
        case ',': s->punct[P_COMMA]++; break;
        case '.': s->punct[P_PERIOD]++; break;
        case '!': s->punct[P_EXCL]++; break;
        case '?': s->punct[P_QUEST]++; break;
        case ';': s->punct[P_SEMI]++; break;
        case ':': s->punct[P_COLON]++; break;
        case '-': s->punct[P_DASH]++; break;
        case '(': case 0xFF08: s->punct[P_PAREN]++; break;
        case '"': case 0x201C: case 0x300C: s->punct[P_QUOTE]++; break;
        case 0x2026: s->punct[P_ELLIPSIS]++; break;
        case 0x3001: s->punct[P_TOUTEN]++; break;
        case 0x3002: s->punct[P_KUTEN]++; break;
        case 0xFF01: s->punct[P_FWEXCL]++; break;
        case 0xFF1F: s->punct[P_FWQUEST]++; break;
        case '~': case 0x301C: case 0xFF5E: s->punct[P_TILDE]++; break;
        default:
            if (raw >= 0x1F300 && raw <= 0x1FAFF)
                s->punct[P_EMOJI]++;
        }
        w[0] = w[1];
        w[1] = w[2];
        w[2] = cp;
        uint64_t h = 14695981039346656037ull;
        for (int k = 0; k < 3; k++)
            h = (h ^ w[k]) * 1099511628211ull;
        s->ngram[h % STYLE_NGRAMS]++;
    }
    if (sentlen > 0) {
        sent += sentlen;
        nsent++;
    }
    s->sent_mean = nsent ? sent / nsent : 0;
    /* "..." as one ellipsis */
    for (const char *p = t; p && p < t + end;) {
        p = memmem(p, (size_t)(t + end - p), "...", 3);
        if (p) {
            s->punct[P_ELLIPSIS]++;
            p += 3;
        }
    }
    count_words(t, end, s->fw, &s->nwords);
    for (size_t j = 0; j < NFW_JA; j++) {
        size_t k = strlen(jwords[j]);
        for (const char *p = t; p && p < t + end;) {
            p = memmem(p, (size_t)(t + end - p), jwords[j], k);
            if (p) {
                s->fw[NFW_EN + j]++;
                p += k;
            }
        }
    }
    buf_free(&own);
}

/* ---------------------------------------------------------------- profiles */

struct style_profile *style_profile_new(const char *address)
{
    struct style_profile *p = xcalloc(1, sizeof *p);
    size_t n = address ? strlen(address) : 0;
    if (n > STYLE_MAX_ADDR)
        n = STYLE_MAX_ADDR;
    for (size_t i = 0; i < n; i++)
        p->address[i] = (char)(address[i] >= 'A' && address[i] <= 'Z' ? address[i] + 32 : address[i]);
    return p;
}

void style_profile_free(struct style_profile *p)
{
    free(p);
}

const char *style_profile_address(const struct style_profile *p)
{
    return p->address;
}

unsigned style_profile_messages(const struct style_profile *p)
{
    return p->nmsgs;
}

bool style_profile_add(struct style_profile *p, const struct style_sample *s)
{
    if (s->nchars < STYLE_MIN_CHARS || p->nmsgs >= STYLE_MAX_MESSAGES)
        return false;
    p->nmsgs++;
    p->nchars += s->nchars;
    p->nwords += s->nwords;
    for (size_t i = 0; i < STYLE_NGRAMS; i++)
        p->ngram[i] += (float)s->ngram[i];
    for (size_t i = 0; i < STYLE_NFW; i++)
        p->fw[i] += (float)s->fw[i];
    for (size_t i = 0; i < STYLE_NPUNCT; i++)
        p->punct[i] += (float)s->punct[i];
    p->sent_sum += s->sent_mean;
    p->sent_sq += s->sent_mean * s->sent_mean;
    p->greet[s->greet < STYLE_NGREET ? s->greet : 0]++;
    p->sign[s->sign < STYLE_NSIGN ? s->sign : 0]++;
    return true;
}

static double cosine(const double *x, const float *y, size_t n, bool damp)
{
    double xy = 0, xx = 0, yy = 0;
    for (size_t i = 0; i < n; i++) {
        double a = damp ? sqrt(x[i]) : x[i], b = damp ? sqrt((double)y[i]) : (double)y[i];
        xy += a * b;
        xx += a * a;
        yy += b * b;
    }
    return xx > 0 && yy > 0 ? xy / sqrt(xx * yy) : 0;
}

/* habit - 1 when the profile has a habit (a class in >= 50 % of messages)
 * and the sample breaks it, 0.5 for a class never seen, else 0 */
static double habit(const uint32_t *cnt, size_t n, unsigned cls, uint32_t nmsgs, unsigned *usual)
{
    unsigned best = 0;
    for (unsigned i = 1; i < n; i++)
        if (cnt[i] > cnt[best])
            best = i;
    *usual = best;
    if (best && cnt[best] * 2 >= nmsgs)
        return cls == best ? 0 : 1;
    if (cls && cls < n && cnt[cls] == 0)
        return 0.5;
    return 0;
}

double style_distance(const struct style_profile *p, const struct style_sample *s, struct buf *why)
{
    if (!p->nmsgs || s->nchars <= 0)
        return 0;
    double d_ng = 1 - cosine(s->ngram, p->ngram, STYLE_NGRAMS, true);
    double fws = 0;
    for (size_t i = 0; i < STYLE_NFW; i++)
        fws += s->fw[i];
    double d_fw = fws >= 5 ? 1 - cosine(s->fw, p->fw, STYLE_NFW, false) : 0.5;
    double d_p = 0;
    size_t worst = 0;
    double worstv = -1;
    for (size_t i = 0; i < STYLE_NPUNCT; i++) {
        double rs = s->punct[i] / s->nchars, rp = p->punct[i] / p->nchars;
        double v = fabs(rs - rp) / (rs + rp + 0.01);
        d_p += v;
        if (v > worstv) {
            worstv = v;
            worst = i;
        }
    }
    d_p = 3 * d_p / STYLE_NPUNCT; /* a few habits differ even when most agree */
    if (d_p > 1)
        d_p = 1;
    double mu = p->sent_sum / p->nmsgs;
    double var = p->sent_sq / p->nmsgs - mu * mu;
    double sd = var > 0 ? sqrt(var) : 0;
    double d_s = fabs(s->sent_mean - mu) / (sd + 0.25 * mu + 1) / 3;
    if (d_s > 1)
        d_s = 1;
    unsigned ug, us;
    double d_g = habit(p->greet, STYLE_NGREET, s->greet, p->nmsgs, &ug);
    double d_so = habit(p->sign, STYLE_NSIGN, s->sign, p->nmsgs, &us);
    /* weights from the calibration in docs/detection.md (punctuation and
     * greeting/sign-off habits separate authors best; n-grams follow topic) */
    double d = 0.10 * d_ng + 0.15 * d_fw + 0.35 * d_p + 0.10 * d_s + 0.30 * (d_g + d_so) / 2;
    if (why) {
        buf_printf(why, "character n-grams %.2f, function words %.2f, punctuation %.2f (most: %s), sentence length %.0f vs %.0f",
                   d_ng, d_fw, d_p, punct_names[worst], s->sent_mean, mu);
        if (d_g >= 1)
            buf_printf(why, ", greeting '%s' instead of '%s'", greet_names[s->greet], greet_names[ug]);
        if (d_so >= 1)
            buf_printf(why, ", sign-off '%s' instead of '%s'", sign_names[s->sign], sign_names[us]);
    }
    return d;
}

/* ---------------------------------------------------------------- file format */

static uint64_t fnv64(const unsigned char *p, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void put32(unsigned char **p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        (*p)[i] = (unsigned char)(v >> (8 * i));
    *p += 4;
}

static void put64(unsigned char **p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p, (uint32_t)(v >> 32));
}

static uint32_t get32(const unsigned char **p)
{
    const unsigned char *q = *p;
    *p += 4;
    return (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
}

static uint64_t get64(const unsigned char **p)
{
    uint64_t lo = get32(p);
    return lo | (uint64_t)get32(p) << 32;
}

static void putf(unsigned char **p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put32(p, u);
}

static void putd(unsigned char **p, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    put64(p, u);
}

static float getf(const unsigned char **p)
{
    uint32_t u = get32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static double getd(const unsigned char **p)
{
    uint64_t u = get64(p);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

#define STYLE_FILE_SIZE                                                                                       \
    (8 + 4 * 6 + (STYLE_MAX_ADDR + 1) + 4 + 8 * 4 + 4 * (STYLE_NGRAMS + STYLE_NFW + STYLE_NPUNCT) +         \
     4 * (STYLE_NGREET + STYLE_NSIGN) + 8)

unsigned char *style_profile_serialise(const struct style_profile *pr, size_t *len)
{
    unsigned char *buf = xcalloc(1, STYLE_FILE_SIZE), *p = buf;
    memcpy(p, STYLE_MAGIC, 8);
    p += 8;
    put32(&p, STYLE_VERSION);
    put32(&p, STYLE_NGRAMS);
    put32(&p, STYLE_NFW);
    put32(&p, STYLE_NPUNCT);
    put32(&p, STYLE_NGREET);
    put32(&p, STYLE_NSIGN);
    memcpy(p, pr->address, STYLE_MAX_ADDR + 1);
    p += STYLE_MAX_ADDR + 1;
    put32(&p, pr->nmsgs);
    putd(&p, pr->nchars);
    putd(&p, pr->nwords);
    putd(&p, pr->sent_sum);
    putd(&p, pr->sent_sq);
    for (size_t i = 0; i < STYLE_NGRAMS; i++)
        putf(&p, pr->ngram[i]);
    for (size_t i = 0; i < STYLE_NFW; i++)
        putf(&p, pr->fw[i]);
    for (size_t i = 0; i < STYLE_NPUNCT; i++)
        putf(&p, pr->punct[i]);
    for (size_t i = 0; i < STYLE_NGREET; i++)
        put32(&p, pr->greet[i]);
    for (size_t i = 0; i < STYLE_NSIGN; i++)
        put32(&p, pr->sign[i]);
    put64(&p, fnv64(buf, (size_t)(p - buf)));
    *len = STYLE_FILE_SIZE;
    return buf;
}

static bool bad_num(double v, double max)
{
    return !isfinite(v) || v < 0 || v > max;
}

struct style_profile *style_profile_parse(const unsigned char *buf, size_t len, char *err, size_t errsz)
{
    const unsigned char *p = buf;
    if (len < 12 || memcmp(buf, STYLE_MAGIC, 8) != 0) {
        snprintf(err, errsz, "not a Moat style profile (bad magic or too short)");
        return NULL;
    }
    p += 8;
    uint32_t ver = get32(&p);
    if (ver != STYLE_VERSION) {
        snprintf(err, errsz, "unsupported style profile version %u", ver);
        return NULL;
    }
    if (len != STYLE_FILE_SIZE) {
        snprintf(err, errsz, "style profile truncated or padded (%zu bytes, expected %zu)", len,
                 (size_t)STYLE_FILE_SIZE);
        return NULL;
    }
    uint64_t h = fnv64(buf, len - 8);
    const unsigned char *t = buf + len - 8;
    if (get64(&t) != h) {
        snprintf(err, errsz, "style profile checksum mismatch (corrupted)");
        return NULL;
    }
    uint32_t ng = get32(&p), nfw = get32(&p), npu = get32(&p), ngr = get32(&p), nsi = get32(&p);
    if (ng != STYLE_NGRAMS || nfw != STYLE_NFW || npu != STYLE_NPUNCT || ngr != STYLE_NGREET || nsi != STYLE_NSIGN) {
        snprintf(err, errsz, "style profile has other feature dimensions (learnt by another Moat version)");
        return NULL;
    }
    struct style_profile *pr = xcalloc(1, sizeof *pr);
    memcpy(pr->address, p, STYLE_MAX_ADDR + 1);
    p += STYLE_MAX_ADDR + 1;
    pr->address[STYLE_MAX_ADDR] = '\0';
    pr->nmsgs = get32(&p);
    pr->nchars = getd(&p);
    pr->nwords = getd(&p);
    pr->sent_sum = getd(&p);
    pr->sent_sq = getd(&p);
    bool bad = pr->nmsgs > STYLE_MAX_MESSAGES || !pr->address[0] || bad_num(pr->nchars, 1e12) ||
               bad_num(pr->nwords, 1e12) || bad_num(pr->sent_sum, 1e12) || bad_num(pr->sent_sq, 1e15);
    for (size_t i = 0; i < STYLE_NGRAMS; i++)
        bad |= bad_num(pr->ngram[i] = getf(&p), 1e12);
    for (size_t i = 0; i < STYLE_NFW; i++)
        bad |= bad_num(pr->fw[i] = getf(&p), 1e12);
    for (size_t i = 0; i < STYLE_NPUNCT; i++)
        bad |= bad_num(pr->punct[i] = getf(&p), 1e12);
    for (size_t i = 0; i < STYLE_NGREET; i++)
        bad |= (pr->greet[i] = get32(&p)) > pr->nmsgs;
    for (size_t i = 0; i < STYLE_NSIGN; i++)
        bad |= (pr->sign[i] = get32(&p)) > pr->nmsgs;
    if (bad) {
        snprintf(err, errsz, "style profile has invalid values");
        free(pr);
        return NULL;
    }
    return pr;
}

int style_profile_save(const struct style_profile *pr, const char *path, char *err, size_t errsz)
{
    size_t n;
    unsigned char *p = style_profile_serialise(pr, &n);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, errsz, "%s: %s", tmp, strerror(errno));
        free(p);
        return -1;
    }
    bool ok = fwrite(p, 1, n, f) == n;
    ok &= fclose(f) == 0;
    free(p);
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errsz, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

struct style_profile *style_profile_load(const char *path, char *err, size_t errsz)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = STYLE_FILE_SIZE + 1;
    unsigned char *p = xmalloc(cap);
    size_t n = fread(p, 1, cap, f);
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errsz, "%s: read error", path);
        free(p);
        return NULL;
    }
    char e[200];
    struct style_profile *pr = style_profile_parse(p, n, e, sizeof e);
    free(p);
    if (!pr)
        snprintf(err, errsz, "%s: %s", path, e);
    return pr;
}
