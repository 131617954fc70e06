/*
 * detect_spam_model.c - the spam classifier: tokenizer, hashed features,
 * the model (logistic regression + a Robinson/Fisher chi-square combiner,
 * file format, load/save) and its trainer.
 *
 * Features (each hashed to 32 bits, FNV-1a + a murmur finaliser, with a
 * one-letter kind prefix; bounded to SPAM_MAX_FEATURES per message, unique):
 *   w  body word (Latin / other scripts: runs of letters and digits, ASCII
 *      lower-cased, 2..30 bytes; long numbers collapse to "#<digits>")
 *   b  orthogonal sparse bigram: a body word with each of the 4 words before
 *      it in the same run, with the gap ("click 1 here", "click 3 free")
 *   c  CJK character bigram (Han, kana, Hangul: text without spaces, PRODUCT.md
 *      "Japanese mail"); a lone CJK character is a unigram
 *   s  subject word / CJK bigram;  n  From display-name word
 *   u  URL host, d its last two labels, x/z first URL path segment (x: more
 *      path follows), x ".ext" the path's file extension
 *   f  From domain; y Reply-To domain; j shape of the Message-ID left part;
 *      t shape of the Date ("M, D M D D:D:D +D")
 *   h  name of each header the sender's software writes (X-Priority...)
 *   m  X-Mailer words; p part content types; k charsets but UTF-8; e attachment
 *      extensions; r structural facts (html-only, URL count bucket, URL
 *      sources, Reply-To in another domain...)
 *   g/G DKIM / DomainKeys signing domain / which signature; T text part
 *      transfer encoding; L link-text words; S subject shape; N From local
 *      part words and shape (sender_extract)
 *   H  every header line the sender's software wrote, much as bogofilter's
 *      lexer reads it: the header's name (lower-cased) and its value's words
 *      (case kept), tagged subj: / from: / head: (header_extract)
 * Collector- and relay-specific headers (Received, To, List-*, X-Spam-*, ...)
 * are never read (relay_headers).
 *
 * Model: score = sigmoid((1 - MIX) * clip(zl, +-15) + MIX * clip(zf, +-6)) where
 *   zl = bias + sum(w[h & mask]) / n^(1/4) over the n unique features
 *        (logistic regression, AdaGrad, fixed epochs, deterministic order);
 *   zf = logit of Robinson's Fisher chi-square combination of the per-bucket
 *        token probabilities f(w) (bogofilter's method: f from the number of
 *        spam / ham training messages with the token, s = 0.0178, x = 0.52,
 *        tokens with |f - 0.5| < SPAM_MIN_DEV ignored; word pairs excluded,
 *        their top hash bit says so). The sender's identity - From and
 *        Reply-To domains, DKIM signing domain, From display-name words
 *        (kinds f y g n, hash bit 30) - counts as
 *        SPAM_SENDER_VOTES tokens when it points to spam (f > 0.5): a
 *        sender seen in spam is not outvoted by the ordinary words of its
 *        next message. Toward ham it counts once: these are the sender's
 *        claims, nothing here verifies them, and a forged From must not
 *        buy a phish the ham history of the domain it forges.
 * The logistic half ranks well overall; the Fisher half says "unsure" (0.5)
 * for mail that has strong evidence both ways (a commercial newsletter the
 * user subscribed to), which keeps such ham below the spam at 0.1 % FP.
 *
 * File format (little-endian), validated on load (it is input):
 *   "MOATSPAM" | u32 version (4) | u32 bits (16..24) | f32 scale | f32 bias |
 *   u32 nspam | u32 nham | i16 weight[1 << bits] | u16 f[1 << bits] |
 *   u64 FNV-1a of all before
 * weight = i16 * scale; f(w) = u16 / 65535 (32768: no training message).
 */
#include "core/core.h"

#include <errno.h>
#include <math.h>

#include "detect/detect_int.h"

#define SPAM_MAGIC "MOATSPAM"
#define SPAM_VERSION 4u /* 4: header_extract's tokens (a version 3 model lacks them) */
#define SPAM_HDR 32u
#define SPAM_TEXT_MAX (64 * 1024) /* body bytes tokenised */
#define SPAM_MAX_HEADER_TOKENS 400 /* header_extract's tokens per message */
#define SPAM_PAIR_BIT 0x80000000u   /* in a feature hash: a word pair */
#define SPAM_SENDER_BIT 0x40000000u /* in a feature hash: the sender's identity */
#define SPAM_SENDER_KINDS "fygn"    /* the feature kinds that carry it */
#define SPAM_SENDER_VOTES 6         /* how many tokens each counts as when spammy */
#define SPAM_F_NEUTRAL 32768      /* f(w) of a bucket no training message had */
#define SPAM_ROB_S 0.0178         /* Robinson's s and x (bogofilter's defaults) */
#define SPAM_ROB_X 0.52
#define SPAM_MIN_DEV 0.1        /* tokens with |f(w) - 0.5| below this are ignored */
#define SPAM_FISHER_CLAMP 1e-12 /* Fisher score clamp before the logit */
#define SPAM_FISHER_CLIP 6.0    /* and its logit clipped to +-6 in the blend */
#define SPAM_FISHER_MIX 0.7     /* weight of the Fisher logit in the ensemble */
#define SPAM_LOGISTIC_CLIP 15.0 /* the logistic logit is clipped to +-15 before the blend */

struct spam_model {
    unsigned bits;
    uint32_t mask;
    float scale, bias;
    uint32_t nspam, nham;
    int16_t *w;
    uint16_t *f; /* Robinson token spam probability f(w) * 65535 per bucket */
};

/* ---------------------------------------------------------------- tokens */

static uint32_t utf8_next(const unsigned char *s, size_t len, size_t *i)
{
    unsigned char c = s[*i];
    uint32_t cp;
    size_t n;
    if (c < 0x80) {
        (*i)++;
        return c;
    } else if ((c & 0xE0) == 0xC0) {
        cp = c & 0x1F;
        n = 1;
    } else if ((c & 0xF0) == 0xE0) {
        cp = c & 0x0F;
        n = 2;
    } else if ((c & 0xF8) == 0xF0) {
        cp = c & 0x07;
        n = 3;
    } else {
        (*i)++;
        return 0xFFFD;
    }
    if (*i + n >= len) {
        *i = len;
        return 0xFFFD;
    }
    for (size_t k = 1; k <= n; k++) {
        unsigned char d = s[*i + k];
        if ((d & 0xC0) != 0x80) {
            *i += k;
            return 0xFFFD;
        }
        cp = (cp << 6) | (d & 0x3F);
    }
    *i += n + 1;
    return cp;
}

static bool is_cjk(uint32_t c)
{
    return (c >= 0x3040 && c <= 0x30FF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xAC00 && c <= 0xD7AF) || (c >= 0xFF66 && c <= 0xFF9F) ||
           c == 0x3005;
}

static bool is_word(uint32_t c)
{
    if (c < 0x80)
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '$';
    if (c == 0xFFFD || (c >= 0x2000 && c <= 0x2BFF) || (c >= 0x3000 && c <= 0x303F) ||
        (c >= 0xFF00 && c <= 0xFF0F) || (c >= 0xFE00 && c <= 0xFE0F) || c == 0xA0 || c == 0xAD)
        return false;
    return !is_cjk(c);
}

#define SPAM_OSB_WINDOW 5 /* a word pairs with each of the 4 words before it */

struct tok_state {
    spam_emit_fn emit;
    void *arg;
    char prefix;
    char prev[SPAM_OSB_WINDOW - 1][32]; /* ring of the previous words, newest at [nprev-1 mod] */
    size_t prevlen[SPAM_OSB_WINDOW - 1];
    size_t nprev, head; /* words in the ring; next slot */
};

/* emit_word - one word token, then its orthogonal sparse bigrams ('b'):
 * "<earlier> <gap> <word>" with each of the previous 4 words of the same
 * run (gap 1 = adjacent pair) */
static void emit_word(struct tok_state *t, const char *w, size_t n)
{
    char tmp[32];
    if (n < 2 || n > 30) {
        t->nprev = 0;
        return;
    }
    size_t digits = 0;
    for (size_t i = 0; i < n; i++)
        digits += w[i] >= '0' && w[i] <= '9';
    if (digits == n && n > 4) {
        n = (size_t)snprintf(tmp, sizeof tmp, "#%zu", n);
        w = tmp;
    } else {
        for (size_t i = 0; i < n; i++)
            tmp[i] = (w[i] >= 'A' && w[i] <= 'Z') ? (char)(w[i] + 32) : w[i];
        w = tmp;
    }
    t->emit(t->prefix, w, n, t->arg);
    if (t->prefix == 'w') {
        for (size_t g = 1; g <= t->nprev; g++) {
            size_t slot = (t->head + SPAM_OSB_WINDOW - 1 - g) % (SPAM_OSB_WINDOW - 1);
            char pair[72];
            size_t pl = t->prevlen[slot];
            memcpy(pair, t->prev[slot], pl);
            pair[pl] = ' ';
            pair[pl + 1] = (char)('0' + g);
            pair[pl + 2] = ' ';
            memcpy(pair + pl + 3, w, n);
            t->emit('b', pair, pl + 3 + n, t->arg);
        }
    }
    memcpy(t->prev[t->head], w, n);
    t->prevlen[t->head] = n;
    t->head = (t->head + 1) % (SPAM_OSB_WINDOW - 1);
    if (t->nprev < SPAM_OSB_WINDOW - 1)
        t->nprev++;
}

void spam_tokenize(const char *text, size_t len, char prefix, spam_emit_fn emit, void *arg)
{
    const unsigned char *s = (const unsigned char *)text;
    struct tok_state t = {.emit = emit, .arg = arg, .prefix = prefix};
    char cjk = prefix == 'w' ? 'c' : prefix;
    size_t i = 0, wstart = 0, wlen = 0;
    size_t cprev = 0, cprevlen = 0, crun = 0; /* previous CJK char and run length */
    bool inword = false;
    while (i < len) {
        size_t at = i;
        uint32_t c = utf8_next(s, len, &i);
        if (is_word(c)) {
            if (crun == 1)
                emit(cjk, text + cprev, cprevlen, arg);
            crun = 0;
            if (!inword) {
                inword = true;
                wstart = at;
            }
            wlen = i - wstart;
            continue;
        }
        if (inword) {
            emit_word(&t, text + wstart, wlen);
            inword = false;
        }
        if (is_cjk(c)) {
            t.nprev = 0;
            if (crun >= 1)
                emit(cjk, text + cprev, i - cprev, arg);
            cprev = at;
            cprevlen = i - at;
            crun++;
        } else {
            if (crun == 1)
                emit(cjk, text + cprev, cprevlen, arg);
            crun = 0;
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '-' && c != '\'')
                t.nprev = 0; /* punctuation breaks word pairs */
        }
    }
    if (inword)
        emit_word(&t, text + wstart, wlen);
    if (crun == 1)
        emit(cjk, text + cprev, cprevlen, arg);
}

static void emit_str(spam_emit_fn emit, void *arg, char kind, const char *s)
{
    if (s && *s)
        emit(kind, s, strnlen(s, 200), arg);
}

static const char *domain_of(const char *addr)
{
    const char *at = addr ? strrchr(addr, '@') : NULL;
    return at ? at + 1 : NULL;
}

/* lower_inplace - ASCII lower-case s */
static void lower_inplace(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s + 32);
}

/* lower_into - ASCII lower-cased bounded copy of s into out (size cap) */
static void lower_into(char *out, size_t cap, const char *s)
{
    core_strlcpy(out, s, cap);
    lower_inplace(out);
}

/* url_path - the first path segment ('x') and the path's file extension ('x' ".ext") */
static void url_path(const char *url, spam_emit_fn emit, void *arg)
{
    const char *p = url ? strstr(url, "://") : NULL;
    if (!p || !(p = strchr(p + 3, '/')))
        return;
    p++;
    size_t n = strcspn(p, "/?#");
    if (n && n <= 30) {
        char seg[32];
        memcpy(seg, p, n);
        seg[n] = '\0';
        for (size_t i = 0; i < n; i++)
            seg[i] = (seg[i] >= 'A' && seg[i] <= 'Z') ? (char)(seg[i] + 32) : seg[i];
        emit(p[n] == '/' ? 'x' : 'z', seg, n, arg);
    }
    size_t plen = strcspn(p, "?#");
    const char *dot = NULL;
    for (size_t i = 0; i < plen; i++)
        if (p[i] == '.')
            dot = p + i;
        else if (p[i] == '/')
            dot = NULL;
    if (dot && p + plen - dot <= 6 && p + plen - dot > 1) {
        char ext[8];
        size_t k = (size_t)(p + plen - dot);
        memcpy(ext, dot, k);
        ext[k] = '\0';
        for (size_t i = 0; i < k; i++)
            ext[i] = (ext[i] >= 'A' && ext[i] <= 'Z') ? (char)(ext[i] + 32) : ext[i];
        emit('x', ext, k, arg);
    }
}

static bool ip_literal(const char *h)
{
    if (!h || !*h)
        return false;
    if (h[0] == '[' || strchr(h, ':'))
        return true;
    for (const char *p = h; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.'))
            return false;
    return true;
}

/* Headers the sender's software writes (never a relay's or the collector's):
 * their presence ('h', lower-cased) is a mailer fingerprint (X-Priority,
 * X-MSMail-Priority, X-MimeOLE). Not their case, nor the Message-ID domain:
 * in this corpus those mostly tell 2002 mail from 2022 mail (the modern
 * part is all phishing), i.e. the date, not the spam. */
static const char *const sender_headers[] = {
    "from",          "subject",
    "date",          "message-id",
    "reply-to",      "mime-version",
    "x-mailer",      "user-agent",
    "x-priority",    "x-msmail-priority",
    "x-mimeole",     "importance",
    "in-reply-to",   "references",
    "organization",  "thread-index",
    "content-class", "disposition-notification-to",
};

/* Headers never read by header_extract: what the collectors, the relays and
 * list servers on the way add (trace, recipients, delivery and mailbox
 * fields, other filters' verdicts) - the same as bench/spam-eval strips from
 * the training mail - and what today's big senders' infrastructure stamps on
 * every message (X-Gm-*, X-Google-*, Feedback-ID, ARC): in the training
 * corpus only the 2022-2025 phishing has those, so they would tell the date,
 * not the spam. Prefixes of the lower-cased header name; an entry ending in
 * ':' is a whole name. */
static const char *const relay_headers[] = {
    "received", "return-path", "old-return-path", "delivered-to", "x-original-to", "x-delivered-to",
    "envelope-to", "x-envelope-", "x-mail-from", "resent-", "to:", "cc:", "bcc:", "apparently-to",
    "list-", "x-mailman-", "x-beenthere", "x-loop", "mailing-list", "x-mailing-list", "precedence",
    "errors-to", "sender:", "x-original-sender", "x-list", "x-ml-", "x-sequence", "x-virus", "x-amavis",
    "x-mailscanner", "x-policyd", "xchecker", "xlevel", "xstatus", "x-rc-", "x-sieve", "status:",
    "x-status", "x-keywords", "x-uid", "x-mozilla-", "x-account-key", "lines:", "content-length",
    "x-miltered", "x-uuid", "x-ms-", "x-microsoft-", "x-forefront-", "authentication-results",
    "received-spf", "arc-", "x-incoming", "x-eop", "x-spf", "x-antivirus", "x-scanned", "x-greylist",
    "x-original-arrivaltime", "x-authentication-warning", "x-filter", "x-checked", "x-barracuda",
    "x-ironport", "x-proofpoint", "x-sender-ip", "x-yahoo-newman", "x-message-delivery",
    "x-message-info", "x-sid-", "x-apparently-to", "x-received", "delivery-date", "x-forwarded-",
    "x-old-spam-", "x-pyzor", "x-cm-", "x-brightmail-", "x-auditid", "x-asg-", "x-bitdefender",
    "x-gmane-", "x-injected-via-gmane", "x-complaints-to", "x-egroups-", "x-yahoo-profile",
    "x-mime-autoconverted", "x-spam", "x-bogosity", "x-dspam-", "x-crm114-", "x-original-date",
    "x-gm-", "x-google-", "feedback-id", "x-clientproxiedby", "x-csa-complaints", "x-sfmc-",
    "x-originating-", "x-moat-",
};

/* Headers whose name header_extract reads but not the value: dates and
 * message identifiers (in this corpus the weekday, the month and the
 * Message-ID domain tell which collection, i.e. which year, a message comes
 * from; the 't' and 'j' shapes keep what a generator's format says) and the
 * signatures' base64 (the signing domain is 'g'). Of the Message-ID only
 * the left part's words are read. */
static const char *const name_only_headers[] = {
    "date", "message-id", "in-reply-to", "references", "dkim-signature", "domainkey-signature", "thread-index",
};

/* relay_header - low (a lower-cased header name) starts with one of
 * relay_headers (or is one, for the entries ending in ':') */
static bool relay_header(const char *low)
{
    size_t n = strlen(low);
    for (size_t k = 0; k < sizeof relay_headers / sizeof *relay_headers; k++) {
        const char *r = relay_headers[k];
        size_t rl = strlen(r);
        if (r[rl - 1] == ':' ? rl - 1 == n && memcmp(low, r, n) == 0 : strncmp(low, r, rl) == 0)
            return true;
    }
    return false;
}

static bool head_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80 ||
           c == '.' || c == '-' || c == '_' || c == '\'' || c == '$' || c == '!';
}

/* head_words - the words of a header value, as bogofilter's lexer sees
 * them: runs of letters, digits, non-ASCII bytes and . - _ ' $ !, case
 * kept, leading non-letters and trailing . - _ ' cut, 3..30 bytes, emitted
 * as "<tag>:<word>" */
static void head_words(const char *tag, const char *v, size_t len, spam_emit_fn emit, void *arg, size_t *budget)
{
    char tok[48];
    size_t tl = strlen(tag), i = 0;
    while (i < len && *budget) {
        while (i < len && !head_char((unsigned char)v[i]))
            i++;
        size_t b = i;
        while (i < len && head_char((unsigned char)v[i]))
            i++;
        size_t e = i;
        while (b < e && !((v[b] >= 'a' && v[b] <= 'z') || (v[b] >= 'A' && v[b] <= 'Z') || (unsigned char)v[b] >= 0x80))
            b++;
        while (e > b && strchr(".-_'", v[e - 1]))
            e--;
        if (e - b < 3 || e - b > 30)
            continue;
        memcpy(tok, tag, tl);
        tok[tl] = ':';
        memcpy(tok + tl + 1, v + b, e - b);
        emit('H', tok, tl + 1 + e - b, arg);
        (*budget)--;
    }
}

/* header_extract - bogofilter-style header tokens ('H'): for each header the
 * sender's software wrote (not relay_headers), its name (lower-cased: the
 * case of a name tells the mailer's age, not the spam) and the words of its
 * value (head_words; not for name_only_headers), tagged "subj" (Subject),
 * "from" (From) or "head". Case is kept: "FREE" in a subject is not "free"
 * in a reply. Only the message's own header (GMime keeps Content-* with the
 * MIME parts: those are the 'p', 'k' and 'T' features). */
static void header_extract(const struct analysis *a, spam_emit_fn emit, void *arg)
{
    /* a budget, so that a pile of made-up header lines cannot push the body's
     * words out of a message's SPAM_MAX_FEATURES (the corpus' most is 113
     * distinct header tokens) */
    size_t budget = SPAM_MAX_HEADER_TOKENS;
    for (size_t i = 0; i < a->nheaders && i < 200 && budget; i++) {
        const char *name = a->headers[i].name, *value = a->headers[i].value;
        char low[65];
        if (!name || !value)
            continue;
        lower_into(low, sizeof low, name);
        if (relay_header(low))
            continue;
        head_words("head", low, strlen(low), emit, arg, &budget);
        bool name_only = false;
        for (size_t k = 0; k < sizeof name_only_headers / sizeof *name_only_headers && !name_only; k++)
            name_only = strcmp(low, name_only_headers[k]) == 0;
        size_t vl = strnlen(value, 1000);
        if (strcmp(low, "message-id") == 0) {
            /* the left part only: the generator's words ("JavaMail.root") */
            const char *at = memchr(value, '@', vl);
            vl = at ? (size_t)(at - value) : 0;
        } else if (name_only)
            continue;
        head_words(strcmp(low, "subject") == 0 ? "subj" : strcmp(low, "from") == 0 ? "from" : "head", value, vl,
                   emit, arg, &budget);
    }
}

/* shape - s (up to a stop character) as a shape: letter/digit runs become D
 * (digits), H (hex, 4+), l / U / M (lower, upper, mixed letters),
 * punctuation is kept (runs cut to 2). Mailers and spamware have
 * recognisable Message-ID and Date generators. */
static size_t shape(const char *s, const char *stop, char *out, size_t cap)
{
    size_t n = 0;
    while (*s && !strchr(stop, *s) && n + 1 < cap) {
        const char *r = s;
        bool dig = true, hex = true, lo = true, up = true;
        while ((*r >= '0' && *r <= '9') || (*r >= 'a' && *r <= 'z') || (*r >= 'A' && *r <= 'Z')) {
            dig &= *r >= '0' && *r <= '9';
            hex &= (*r >= '0' && *r <= '9') || (*r >= 'a' && *r <= 'f') || (*r >= 'A' && *r <= 'F');
            lo &= (*r >= 'a' && *r <= 'z');
            up &= (*r >= 'A' && *r <= 'Z');
            r++;
        }
        if (r > s) {
            out[n++] = dig ? 'D' : hex && r - s >= 4 ? 'H' : lo ? 'l' : up ? 'U' : 'M';
            s = r;
        } else {
            if (!(n >= 2 && out[n - 1] == *s && out[n - 2] == *s))
                out[n++] = *s;
            s++;
        }
    }
    out[n] = '\0';
    return n;
}

/* dkim_domain - the d= tag of a DKIM-Signature / DomainKey-Signature value,
 * lower-cased into out (cap), or false */
static bool dkim_domain(const char *v, char *out, size_t cap)
{
    for (const char *d = strstr(v, "d="); d; d = strstr(d + 1, "d=")) {
        if (d > v && d[-1] != ';' && d[-1] != ' ' && d[-1] != '\t')
            continue; /* "bh=", "sd=": another tag's tail */
        d += 2;
        size_t n = strcspn(d, "; \t");
        if (!n || n >= cap || n > 100)
            return false;
        memcpy(out, d, n);
        out[n] = '\0';
        lower_inplace(out);
        return true;
    }
    return false;
}

/* sender_extract - more of what the sender's software wrote: the DKIM /
 * DomainKeys signing domain ('g', and 'G' which signature), the transfer
 * encoding of each text part ('T' "text/html:base64"), the words of link
 * texts ('L'), the subject's shape ('S': tenths of upper-case letters, '!' /
 * '$' / '%', doubled or edge spaces) and the From local part ('N' words and
 * its shape: "SpecialOffers" -> M). A signing domain is not verified here:
 * as a token it is only as good as the mail that carried it in training. */
static void sender_extract(const struct analysis *a, spam_emit_fn emit, void *arg)
{
    char tmp[300];
    for (size_t i = 0; i < a->nheaders && i < 200; i++) {
        const char *name = a->headers[i].name, *value = a->headers[i].value;
        if (!name || !value)
            continue;
        bool dkim = core_strcaseeq(name, "dkim-signature"), dk = core_strcaseeq(name, "domainkey-signature");
        if (!dkim && !dk)
            continue;
        emit_str(emit, arg, 'G', dkim ? "dkim" : "domainkey");
        if (dkim_domain(value, tmp, sizeof tmp))
            emit_str(emit, arg, 'g', tmp);
    }
    for (size_t i = 0; i < a->nparts && i < 50; i++)
        if (a->parts[i].is_text && a->parts[i].content_type && a->parts[i].transfer_encoding) {
            snprintf(tmp, sizeof tmp, "%s:%s", a->parts[i].content_type, a->parts[i].transfer_encoding);
            lower_inplace(tmp);
            emit_str(emit, arg, 'T', tmp);
        }
    for (size_t i = 0; i < a->nurls && i < 200; i++)
        if (a->urls[i].text)
            spam_tokenize(a->urls[i].text, strnlen(a->urls[i].text, 200), 'L', emit, arg);
    if (a->subject) {
        size_t up = 0, lo = 0, marks = 0, doubled = 0, n = strnlen(a->subject, 1000);
        for (size_t i = 0; i < n; i++) {
            char c = a->subject[i];
            up += c >= 'A' && c <= 'Z';
            lo += c >= 'a' && c <= 'z';
            marks += c == '!' || c == '$' || c == '%';
            doubled += i && c == ' ' && a->subject[i - 1] == ' ';
        }
        /* up0..up10: tenths of the Latin letters upper-case; up11: none (a
         * Japanese subject) */
        snprintf(tmp, sizeof tmp, "up%zu", up + lo ? (10 * up) / (up + lo) : 11);
        emit_str(emit, arg, 'S', tmp);
        if (marks)
            emit_str(emit, arg, 'S', marks > 1 ? "ex2" : "ex1");
        if (doubled)
            emit_str(emit, arg, 'S', "double-space");
        if (n && (a->subject[0] == ' ' || a->subject[n - 1] == ' '))
            emit_str(emit, arg, 'S', "edge-space");
    }
    if (a->nfrom && a->from[0].address) {
        const char *at = strrchr(a->from[0].address, '@');
        size_t n = at ? (size_t)(at - a->from[0].address) : 0;
        if (n && n < 100) {
            char sh[64];
            memcpy(tmp, a->from[0].address, n);
            tmp[n] = '\0';
            spam_tokenize(tmp, n, 'N', emit, arg);
            if (shape(tmp, "", sh, sizeof sh))
                emit_str(emit, arg, 'N', sh);
        }
    }
}

void spam_extract(const struct analysis *a, spam_emit_fn emit, void *arg)
{
    char tmp[300];
    if (a->subject)
        spam_tokenize(a->subject, strnlen(a->subject, 1000), 's', emit, arg);
    if (a->nfrom && a->from[0].address) {
        const char *d = domain_of(a->from[0].address);
        if (d) {
            lower_into(tmp, sizeof tmp, d);
            emit_str(emit, arg, 'f', tmp);
        }
    }
    if (a->nfrom && a->from[0].name)
        spam_tokenize(a->from[0].name, strnlen(a->from[0].name, 200), 'n', emit, arg);
    if (a->nreply_to && a->reply_to[0].address) {
        const char *d = domain_of(a->reply_to[0].address),
                   *fd = a->nfrom ? domain_of(a->from[0].address) : NULL;
        if (d) {
            lower_into(tmp, sizeof tmp, d);
            emit_str(emit, arg, 'y', tmp);
            if (!fd || !core_strcaseeq(d, fd))
                emit_str(emit, arg, 'r', "reply-to-other-domain");
        }
    }
    bool mailer = false;
    for (size_t i = 0; i < a->nheaders && i < 200; i++) {
        const char *name = a->headers[i].name, *value = a->headers[i].value;
        if (!name || !value)
            continue;
        for (size_t k = 0; k < sizeof sender_headers / sizeof *sender_headers; k++)
            if (core_strcaseeq(name, sender_headers[k])) {
                emit_str(emit, arg, 'h', sender_headers[k]);
                break;
            }
        if (!mailer && core_strcaseeq(name, "x-mailer")) {
            spam_tokenize(value, strnlen(value, 200), 'm', emit, arg);
            mailer = true;
        }
    }
    bool plain = false, html = false;
    for (size_t i = 0; i < a->nparts && i < 50; i++) {
        emit_str(emit, arg, 'p', a->parts[i].content_type);
        if (a->parts[i].charset && !core_strcaseeq(a->parts[i].charset, "utf-8")) {
            /* UTF-8 is what every modern mailer writes: in this corpus only
             * the 2022-2025 phishing has it, a date, not a spam signal */
            lower_into(tmp, 64, a->parts[i].charset);
            emit_str(emit, arg, 'k', tmp);
        }
        if (a->parts[i].content_type && a->parts[i].is_text) {
            plain |= strcmp(a->parts[i].content_type, "text/plain") == 0;
            html |= strcmp(a->parts[i].content_type, "text/html") == 0;
        }
    }
    for (size_t i = 0; i < a->nattachments && i < 50; i++)
        emit_str(emit, arg, 'e', a->attachments[i].extension);
    emit_str(emit, arg, 'r', html && !plain ? "html-only" : html ? "html-and-plain" : "plain-only");
    size_t nu = a->nurls, bucket = 0;
    while (nu) {
        bucket++;
        nu >>= 1;
    }
    snprintf(tmp, sizeof tmp, "urls-%zu", bucket);
    emit_str(emit, arg, 'r', tmp);
    bool iplit = false;
    for (size_t i = 0; i < a->nurls && i < 200; i++) {
        const char *h = a->urls[i].host;
        if (!h || !*h)
            continue;
        iplit |= ip_literal(h);
        emit_str(emit, arg, 'u', h);
        if (a->urls[i].source) {
            snprintf(tmp, sizeof tmp, "src-%s", a->urls[i].source);
            emit_str(emit, arg, 'r', tmp);
        }
        url_path(a->urls[i].url, emit, arg);
        const char *dot = strrchr(h, '.');
        if (dot) {
            const char *p = dot;
            while (p > h && p[-1] != '.')
                p--;
            emit_str(emit, arg, 'd', p);
        }
    }
    if (iplit)
        emit_str(emit, arg, 'r', "ip-literal-url");
    if (a->message_id) {
        /* the shape of the Message-ID's left part ('j'): the generator's */
        const char *mid = a->message_id + (a->message_id[0] == '<');
        if (strchr(mid, '@') && shape(mid, "@", tmp, 64))
            emit_str(emit, arg, 'j', tmp);
    }
    if (a->date && shape(a->date, "", tmp, 64))
        emit_str(emit, arg, 't', tmp);
    if (!a->date)
        emit_str(emit, arg, 'r', "no-date");
    if (!a->message_id)
        emit_str(emit, arg, 'r', "no-message-id");
    header_extract(a, emit, arg);
    if (a->text)
        spam_tokenize(a->text, a->text_len < SPAM_TEXT_MAX ? a->text_len : SPAM_TEXT_MAX, 'w', emit, arg);
    sender_extract(a, emit, arg);
}

uint32_t spam_hash(char kind, const char *tok, size_t n)
{
    uint32_t h = 2166136261u;
    h = (h ^ (unsigned char)kind) * 16777619u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)tok[i]) * 16777619u;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    /* top bit: the feature is a word pair (the Fisher combiner skips those);
     * the next: it names the sender (the Fisher combiner may count it more).
     * Buckets take the low bits, so neither moves a feature's bucket. */
    h &= ~(SPAM_PAIR_BIT | SPAM_SENDER_BIT);
    if (kind == 'b')
        return h | SPAM_PAIR_BIT;
    if (kind && strchr(SPAM_SENDER_KINDS, kind))
        return h | SPAM_SENDER_BIT;
    return h;
}

struct collect {
    uint32_t *out;
    size_t n, max;
};

static void collect_emit(char kind, const char *tok, size_t n, void *arg)
{
    struct collect *c = arg;
    if (c->n < c->max)
        c->out[c->n++] = spam_hash(kind, tok, n);
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

size_t spam_features(const struct analysis *a, uint32_t *out, size_t max)
{
    struct collect c = {out, 0, max};
    spam_extract(a, collect_emit, &c);
    qsort(out, c.n, sizeof *out, cmp_u32);
    size_t k = 0;
    for (size_t i = 0; i < c.n; i++)
        if (k == 0 || out[k - 1] != out[i])
            out[k++] = out[i];
    return k;
}

/* ---------------------------------------------------------------- model */

struct spam_model *spam_model_new(unsigned bits)
{
    if (bits < 16 || bits > 24)
        return NULL;
    struct spam_model *m = xcalloc(1, sizeof *m);
    m->bits = bits;
    m->mask = (1u << bits) - 1;
    m->scale = 1.0f;
    m->w = xcalloc((size_t)1 << bits, sizeof *m->w);
    m->f = xmalloc(((size_t)1 << bits) * sizeof *m->f);
    for (size_t i = 0; i < (size_t)1 << bits; i++)
        m->f[i] = SPAM_F_NEUTRAL;
    return m;
}

void spam_model_free(struct spam_model *m)
{
    if (!m)
        return;
    free(m->w);
    free(m->f);
    free(m);
}

double spam_model_weight(const struct spam_model *m, uint32_t h)
{
    return (double)m->w[h & m->mask] * m->scale;
}

/* chi2q - P(chi-square with 2*n degrees of freedom >= x) (Robinson / bogofilter) */
static double chi2q(double x, size_t n)
{
    double m = x / 2, term = exp(-m), sum = term;
    for (size_t i = 1; i < n; i++) {
        term *= m / (double)i;
        sum += term;
    }
    return sum < 1 ? sum : 1;
}

double spam_model_fisher(const struct spam_model *m, const uint32_t *f, size_t n)
{
    double lnh = 0, lns = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (f[i] & SPAM_PAIR_BIT)
            continue;
        double p = m->f[f[i] & m->mask] / 65535.0;
        if (fabs(p - 0.5) < SPAM_MIN_DEV)
            continue;
        p = p < 1e-4 ? 1e-4 : p > 1 - 1e-4 ? 1 - 1e-4 : p;
        size_t votes = (f[i] & SPAM_SENDER_BIT) && p > 0.5 ? SPAM_SENDER_VOTES : 1;
        lnh += (double)votes * log(p);
        lns += (double)votes * log(1 - p);
        k += votes;
    }
    if (!k)
        return 0.5;
    double h = chi2q(-2 * lnh, k), sp = chi2q(-2 * lns, k);
    return (1 + h - sp) / 2;
}

/* logistic_z - the logistic model's logit: bias + sum(w) / n^(1/4) */
static double logistic_z(const struct spam_model *m, const uint32_t *f, size_t n)
{
    double z = 0;
    for (size_t i = 0; i < n; i++)
        z += spam_model_weight(m, f[i]);
    return m->bias + (n ? z / pow((double)n, 0.25) : 0);
}

double spam_model_logistic(const struct spam_model *m, const uint32_t *f, size_t n)
{
    return 1.0 / (1.0 + exp(-logistic_z(m, f, n)));
}

double spam_model_logit(const struct spam_model *m, const uint32_t *f, size_t n)
{
    double z = logistic_z(m, f, n);
    /* the logistic half is confidently wrong on ham it has no like of
     * (newsletters, Japanese business mail): it may outvote an unsure Fisher
     * half, never a confident one */
    z = z < -SPAM_LOGISTIC_CLIP ? -SPAM_LOGISTIC_CLIP : z > SPAM_LOGISTIC_CLIP ? SPAM_LOGISTIC_CLIP : z;
    double q = spam_model_fisher(m, f, n);
    q = q < SPAM_FISHER_CLAMP ? SPAM_FISHER_CLAMP : q > 1 - SPAM_FISHER_CLAMP ? 1 - SPAM_FISHER_CLAMP : q;
    /* and the Fisher half is as confidently wrong on other ham (a hard-ham
     * newsletter whose every token is in the spam): neither half may
     * outvote a confident other one alone */
    double zf = log(q / (1 - q));
    zf = zf < -SPAM_FISHER_CLIP ? -SPAM_FISHER_CLIP : zf > SPAM_FISHER_CLIP ? SPAM_FISHER_CLIP : zf;
    return (1 - SPAM_FISHER_MIX) * z + SPAM_FISHER_MIX * zf;
}

double spam_model_score(const struct spam_model *m, const uint32_t *f, size_t n)
{
    return 1.0 / (1.0 + exp(-spam_model_logit(m, f, n)));
}

static uint64_t fnv64(const unsigned char *p, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

unsigned char *spam_model_serialise(const struct spam_model *m, size_t *len)
{
    size_t nw = (size_t)1 << m->bits;
    size_t n = SPAM_HDR + 4 * nw + 8;
    unsigned char *p = xmalloc(n);
    memcpy(p, SPAM_MAGIC, 8);
    put32(p + 8, SPAM_VERSION);
    put32(p + 12, m->bits);
    put32(p + 16, f2u(m->scale));
    put32(p + 20, f2u(m->bias));
    put32(p + 24, m->nspam);
    put32(p + 28, m->nham);
    for (size_t i = 0; i < nw; i++) {
        uint16_t v = (uint16_t)m->w[i];
        p[SPAM_HDR + 2 * i] = (unsigned char)v;
        p[SPAM_HDR + 2 * i + 1] = (unsigned char)(v >> 8);
        p[SPAM_HDR + 2 * nw + 2 * i] = (unsigned char)m->f[i];
        p[SPAM_HDR + 2 * nw + 2 * i + 1] = (unsigned char)(m->f[i] >> 8);
    }
    uint64_t h = fnv64(p, n - 8);
    put32(p + n - 8, (uint32_t)h);
    put32(p + n - 4, (uint32_t)(h >> 32));
    *len = n;
    return p;
}

struct spam_model *spam_model_parse(const unsigned char *p, size_t len, char *err, size_t errsz)
{
    if (len < SPAM_HDR + 8 || memcmp(p, SPAM_MAGIC, 8) != 0) {
        snprintf(err, errsz, "not a Moat spam model (bad magic or too short)");
        return NULL;
    }
    uint32_t ver = get32(p + 8), bits = get32(p + 12);
    if (ver != SPAM_VERSION) {
        snprintf(err, errsz, "unsupported spam model version %u (this Moat reads version %u: retrain with moatctl train)",
                 ver, SPAM_VERSION);
        return NULL;
    }
    if (bits < 16 || bits > 24) {
        snprintf(err, errsz, "bad spam model size (bits %u)", bits);
        return NULL;
    }
    size_t nw = (size_t)1 << bits;
    if (len != SPAM_HDR + 4 * nw + 8) {
        snprintf(err, errsz, "spam model truncated or padded (%zu bytes, expected %zu)", len,
                 SPAM_HDR + 4 * nw + 8);
        return NULL;
    }
    uint64_t h = fnv64(p, len - 8);
    if (get32(p + len - 8) != (uint32_t)h || get32(p + len - 4) != (uint32_t)(h >> 32)) {
        snprintf(err, errsz, "spam model checksum mismatch (corrupted)");
        return NULL;
    }
    float scale = u2f(get32(p + 16)), bias = u2f(get32(p + 20));
    if (!isfinite(scale) || scale <= 0 || scale > 1000 || !isfinite(bias) || fabsf(bias) > 1000) {
        snprintf(err, errsz, "spam model has invalid parameters");
        return NULL;
    }
    struct spam_model *m = spam_model_new(bits);
    m->scale = scale;
    m->bias = bias;
    m->nspam = get32(p + 24);
    m->nham = get32(p + 28);
    for (size_t i = 0; i < nw; i++) {
        m->w[i] = (int16_t)(uint16_t)(p[SPAM_HDR + 2 * i] | p[SPAM_HDR + 2 * i + 1] << 8);
        m->f[i] = (uint16_t)(p[SPAM_HDR + 2 * nw + 2 * i] | p[SPAM_HDR + 2 * nw + 2 * i + 1] << 8);
    }
    return m;
}

int spam_model_save(const struct spam_model *m, const char *path, char *err, size_t errsz)
{
    size_t n;
    unsigned char *p = spam_model_serialise(m, &n);
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

struct spam_model *spam_model_load(const char *path, char *err, size_t errsz)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = SPAM_HDR + 4 * ((size_t)1 << 24) + 8 + 1, n = 0;
    unsigned char *p = xmalloc(cap);
    size_t r;
    while ((r = fread(p + n, 1, cap - n, f)) > 0 && n + r < cap)
        n += r;
    n += r;
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errsz, "%s: read error", path);
        free(p);
        return NULL;
    }
    char e[200];
    struct spam_model *m = spam_model_parse(p, n, e, sizeof e);
    free(p);
    if (!m)
        snprintf(err, errsz, "%s: %s", path, e);
    return m;
}

void spam_model_counts(const struct spam_model *m, uint32_t *nspam, uint32_t *nham)
{
    *nspam = m->nspam;
    *nham = m->nham;
}

/* ---------------------------------------------------------------- training */

struct spam_trainer {
    unsigned bits;
    uint32_t **feat;
    uint32_t *nfeat;
    bool *label;
    size_t n, cap;
};

struct spam_trainer *spam_trainer_new(unsigned bits)
{
    if (bits < 16 || bits > 24)
        return NULL;
    struct spam_trainer *t = xcalloc(1, sizeof *t);
    t->bits = bits;
    return t;
}

void spam_trainer_add(struct spam_trainer *t, const struct analysis *a, bool spam)
{
    uint32_t *f = xmalloc(SPAM_MAX_FEATURES * sizeof *f);
    size_t n = spam_features(a, f, SPAM_MAX_FEATURES);
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1024;
        t->feat = xrealloc(t->feat, t->cap * sizeof *t->feat);
        t->nfeat = xrealloc(t->nfeat, t->cap * sizeof *t->nfeat);
        t->label = xrealloc(t->label, t->cap * sizeof *t->label);
    }
    t->feat[t->n] = n ? xrealloc(f, n * sizeof *f) : (free(f), NULL);
    t->nfeat[t->n] = (uint32_t)n;
    t->label[t->n] = spam;
    t->n++;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* fisher_table - Robinson's f(w) per bucket from the number of spam / ham
 * messages containing it: p = (b/nspam) / (b/nspam + g/nham),
 * f = (s*x + n*p) / (s + n) with n = b + g (bogofilter's defaults s, x) */
static void fisher_table(const struct spam_trainer *t, struct spam_model *m, uint32_t nspam, uint32_t nham)
{
    size_t nw = (size_t)1 << t->bits;
    uint32_t *bad = xcalloc(nw, sizeof *bad), *good = xcalloc(nw, sizeof *good);
    for (size_t i = 0; i < t->n; i++)
        for (size_t j = 0; j < t->nfeat[i]; j++) {
            if (t->feat[i][j] & SPAM_PAIR_BIT)
                continue;
            uint32_t b = t->feat[i][j] & m->mask;
            if (t->label[i])
                bad[b]++;
            else
                good[b]++;
        }
    for (size_t i = 0; i < nw; i++) {
        if (!bad[i] && !good[i])
            continue;
        double bs = nspam ? (double)bad[i] / nspam : 0, gs = nham ? (double)good[i] / nham : 0;
        double p = bs / (bs + gs), n = (double)bad[i] + good[i];
        double f = (SPAM_ROB_S * SPAM_ROB_X + n * p) / (SPAM_ROB_S + n);
        m->f[i] = (uint16_t)lrint(f * 65535.0);
    }
    free(bad);
    free(good);
}

struct spam_model *spam_trainer_finish(struct spam_trainer *t, unsigned epochs)
{
    size_t nw = (size_t)1 << t->bits;
    uint32_t mask = (uint32_t)nw - 1;
    float *w = xcalloc(nw, sizeof *w), *g2 = xcalloc(nw, sizeof *g2);
    double bias = 0, bg2 = 0;
    const double lr = 0.5, ham_weight = 2.0; /* false positives cost more */
    size_t *order = xmalloc((t->n ? t->n : 1) * sizeof *order);
    uint32_t nspam = 0, nham = 0;
    for (size_t i = 0; i < t->n; i++) {
        order[i] = i;
        if (t->label[i])
            nspam++;
        else
            nham++;
    }
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    for (unsigned e = 0; e < epochs; e++) {
        for (size_t i = t->n; i > 1; i--) {
            size_t j = (size_t)(xorshift(&seed) % i);
            size_t tmp = order[i - 1];
            order[i - 1] = order[j];
            order[j] = tmp;
        }
        for (size_t k = 0; k < t->n; k++) {
            size_t i = order[k];
            const uint32_t *f = t->feat[i];
            size_t n = t->nfeat[i];
            double x = n ? 1.0 / pow((double)n, 0.25) : 0, z = 0;
            for (size_t j = 0; j < n; j++)
                z += w[f[j] & mask];
            z = bias + z * x;
            double p = 1.0 / (1.0 + exp(-z)), y = t->label[i] ? 1.0 : 0.0;
            double g = (p - y) * (t->label[i] ? 1.0 : ham_weight);
            for (size_t j = 0; j < n; j++) {
                uint32_t b = f[j] & mask;
                double gj = g * x;
                g2[b] += (float)(gj * gj);
                w[b] -= (float)(lr * gj / sqrt(g2[b] + 1e-6));
            }
            bg2 += g * g;
            bias -= lr * g / sqrt(bg2 + 1e-6);
        }
    }
    float mx = 0;
    for (size_t i = 0; i < nw; i++)
        if (fabsf(w[i]) > mx)
            mx = fabsf(w[i]);
    struct spam_model *m = spam_model_new(t->bits);
    m->scale = mx > 0 ? mx / 32767.0f : 1.0f;
    m->bias = (float)bias;
    m->nspam = nspam;
    m->nham = nham;
    for (size_t i = 0; i < nw; i++)
        m->w[i] = (int16_t)lrintf(w[i] / m->scale);
    fisher_table(t, m, nspam, nham);
    free(w);
    free(g2);
    free(order);
    return m;
}

size_t spam_trainer_count(const struct spam_trainer *t)
{
    return t->n;
}

void spam_trainer_free(struct spam_trainer *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->feat[i]);
    free(t->feat);
    free(t->nfeat);
    free(t->label);
    free(t);
}
