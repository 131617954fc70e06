/*
 * detect_spam.c - the spam detector: test strings, the statistical
 * classifier (detect_spam_model.c) and a few rule signals, combined into
 * a->spam_score in [0, 1].
 *
 * score = sigmoid(logit(classifier) + sum of rule bonuses); rules only ever
 * raise the score (a gateway is the first hop: sender claims never lower
 * it). Levels (docs/detection.md "Spam"): a message is caught at a level
 * when spam_score >= its threshold; a "spam" detection is added at
 * `moderate` and above.
 *
 * The model is loaded once per process from $MOAT_SPAM_MODEL, else
 * MOAT_DATADIR/models/spam.model. Without a model the test strings and rules
 * still run and every message carries a scan_exclusion saying so.
 */
#include "core/core.h"

#include <math.h>

#include "detect/detect_int.h"

#ifndef MOAT_DATADIR
#define MOAT_DATADIR "data"
#endif

static struct spam_model *model;
static char model_err[300];

const struct spam_level spam_levels[5] = {
    {"lowest", SPAM_T_LOWEST}, {"low", SPAM_T_LOW}, {"moderate", SPAM_T_MODERATE},
    {"high", SPAM_T_HIGH},     {"highest", SPAM_T_HIGHEST},
};

const char *spam_level_matched(double score)
{
    for (int i = 0; i < 5; i++)
        if (score >= spam_levels[i].threshold)
            return spam_levels[i].name;
    return NULL;
}

int detect_spam_init(const struct moat_config *cfg, char *err, size_t errsz)
{
    (void)cfg;
    if (model)
        return 0;
    const char *path = getenv("MOAT_SPAM_MODEL");
    char def[4096];
    if (!path || !*path) {
        snprintf(def, sizeof def, "%s/models/spam.model", MOAT_DATADIR);
        path = def;
    }
    model = spam_model_load(path, model_err, sizeof model_err);
    if (!model) {
        snprintf(err, errsz, "no spam model: %s", model_err);
        return -1;
    }
    return 0;
}

void detect_spam_shutdown(void)
{
    spam_model_free(model);
    model = NULL;
}

void detect_spam_set_model(struct spam_model *m)
{
    spam_model_free(model);
    model = m;
}

static bool has_ci(const char *hay, size_t len, const char *needle)
{
    return core_memcasemem(hay, len, needle, strlen(needle)) != NULL;
}

static bool has(const char *hay, size_t len, const char *needle)
{
    return hay && memmem(hay, len, needle, strlen(needle)) != NULL;
}

#define GTUBE "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
#define CSAS "ThisIsTrendmicroCSASRuleTesting"
#define CSPHI "ThisIsTrendmicroCSPHIRuleTesting"

/* test strings; true when the message is a spam test message */
static bool test_strings(struct analysis *a, const char *msg, size_t len)
{
    size_t tl = a->text ? a->text_len : 0;
    bool phi = has_ci(a->text, tl, "http://" CSPHI) || has_ci(msg, len, "http://" CSPHI);
    for (size_t i = 0; i < a->nurls && !phi; i++)
        phi = a->urls[i].host && core_strcaseeq(a->urls[i].host, CSPHI);
    if (phi)
        analysis_add_detection(a, "phishing", "Trendmicro-CSPHI-Test", 1.0,
                               "test URL http://" CSPHI " in the message");
    if (has(a->text, tl, GTUBE) || has(msg, len, GTUBE) || (a->subject && strstr(a->subject, GTUBE))) {
        analysis_add_detection(a, "spam", "GTUBE", 1.0, "GTUBE test string in the message");
        return true;
    }
    if (has(a->text, tl, CSAS) || has(msg, len, CSAS) || (a->subject && strstr(a->subject, CSAS))) {
        analysis_add_detection(a, "spam", "Trendmicro-CSAS-Test", 1.0, CSAS " test string in the message");
        return true;
    }
    return false;
}

struct top {
    char tok[5][64];
    double w[5];
    uint32_t h[5];
    size_t n;
};

static void top_emit(char kind, const char *tok, size_t n, void *arg)
{
    struct top *t = arg;
    uint32_t h = spam_hash(kind, tok, n);
    double w = spam_model_weight(model, h);
    if (w <= 0)
        return;
    for (size_t i = 0; i < t->n; i++)
        if (t->h[i] == h)
            return;
    size_t pos = t->n < 5 ? t->n : 5;
    while (pos > 0 && t->w[pos - 1] < w)
        pos--;
    if (pos >= 5)
        return;
    size_t last = t->n < 5 ? t->n : 4;
    for (size_t i = last; i > pos; i--) {
        t->w[i] = t->w[i - 1];
        t->h[i] = t->h[i - 1];
        memcpy(t->tok[i], t->tok[i - 1], sizeof t->tok[i]);
    }
    t->w[pos] = w;
    t->h[pos] = h;
    size_t k = n < 60 ? n : 60;
    while (k > 0 && k < n && ((unsigned char)tok[k] & 0xC0) == 0x80)
        k--; /* keep UTF-8 whole */
    t->tok[pos][0] = kind;
    t->tok[pos][1] = ':';
    memcpy(t->tok[pos] + 2, tok, k < 61 ? k : 61);
    t->tok[pos][2 + (k < 61 ? k : 61)] = '\0';
    if (t->n < 5)
        t->n++;
}

static bool ip_host(const char *h)
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

void detect_spam_run(struct analysis *a, const char *msg, size_t len, const struct detect_context *ctx)
{
    (void)ctx;
    if (test_strings(a, msg, len)) {
        a->spam_scored = true;
        a->spam_score = 1.0;
        return;
    }
    struct buf why;
    buf_init(&why, 2000);
    double p = 0.5, zc = 0; /* classifier score and its logit */
    uint32_t *f = NULL;
    size_t n = 0;
    if (model) {
        f = xmalloc(SPAM_MAX_FEATURES * sizeof *f);
        n = spam_features(a, f, SPAM_MAX_FEATURES);
        zc = spam_model_logit(model, f, n);
        p = 1.0 / (1.0 + exp(-zc));
        buf_printf(&why, "classifier %.3f", p);
    } else {
        analysis_add_detection(a, "scan_exclusion", "spam-model-missing", 0, model_err);
        buf_printf(&why, "no classifier");
    }
    /* rule signals (logit bonuses, never negative) */
    double bonus = 0;
    bool plain = false, html = false, iplit = false;
    for (size_t i = 0; i < a->nparts; i++)
        if (a->parts[i].is_text && a->parts[i].content_type) {
            plain |= strcmp(a->parts[i].content_type, "text/plain") == 0;
            html |= strcmp(a->parts[i].content_type, "text/html") == 0;
        }
    if (html && !plain) {
        bonus += 0.2;
        buf_printf(&why, "; html-only");
    }
    for (size_t i = 0; i < a->nurls && !iplit; i++)
        iplit = ip_host(a->urls[i].host);
    if (iplit) {
        bonus += 0.5;
        buf_printf(&why, "; URL to an IP-literal host");
    }
    if (a->nurls > 40) {
        bonus += 0.2;
        buf_printf(&why, "; %zu URLs", a->nurls);
    }
    if (!a->date) {
        bonus += 0.3;
        buf_printf(&why, "; no Date");
    }
    if (!a->message_id || !strchr(a->message_id, '@')) {
        bonus += 0.2;
        buf_printf(&why, "; missing or malformed Message-ID");
    }
    double s = 1.0 / (1.0 + exp(-(zc + bonus)));
    a->spam_scored = true;
    a->spam_score = s;
    if (s >= SPAM_T_MODERATE) {
        if (model) {
            /* the two halves of the classifier, only for the evidence */
            buf_printf(&why, "; logistic %.3f, fisher %.3f", spam_model_logistic(model, f, n),
                       spam_model_fisher(model, f, n));
            struct top t = {.n = 0};
            spam_extract(a, top_emit, &t);
            if (t.n) {
                buf_printf(&why, "; top tokens:");
                for (size_t i = 0; i < t.n; i++)
                    buf_printf(&why, "%s '%s'", i ? "," : "", t.tok[i]);
            }
        }
        const char *lvl = spam_level_matched(s);
        char name[40];
        snprintf(name, sizeof name, "spam-%s", lvl ? lvl : "moderate");
        analysis_add_detection(a, "spam", name, s, buf_cstr(&why));
    }
    free(f);
    buf_free(&why);
}
