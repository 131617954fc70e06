/* test_detect_spam.c - spam detector: test strings, model file, tokenizer, training */
#include "core/core.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "detect/detect_int.h"
#include "mime/mime.h"

static struct analysis *run(const char *msg)
{
    struct analysis *a = mime_analyse(msg, strlen(msg), NULL);
    assert_non_null(a);
    detect_spam_run(a, msg, strlen(msg), &(struct detect_context){0});
    return a;
}

static const struct detection *find(const struct analysis *a, const char *cat)
{
    for (size_t i = 0; i < a->ndetections; i++)
        if (strcmp(a->detections[i].category, cat) == 0)
            return &a->detections[i];
    return NULL;
}

static void test_strings(void **state)
{
    (void)state;
    static const char *const spam[] = {
        "From: a@example.com\nTo: b@example.com\nSubject: t\n\n"
        "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\n",
        "From: a@example.com\nTo: b@example.com\nSubject: t\n\nhello ThisIsTrendmicroCSASRuleTesting\n",
        "From: a@example.com\nSubject: t\nContent-Transfer-Encoding: base64\n\n"
        "VGhpc0lzVHJlbmRtaWNyb0NTQVNSdWxlVGVzdGluZwo=\n",
    };
    for (size_t i = 0; i < sizeof spam / sizeof *spam; i++) {
        struct analysis *a = run(spam[i]);
        const struct detection *d = find(a, "spam");
        assert_non_null(d);
        assert_true(d->score == 1.0);
        assert_true(a->spam_scored);
        assert_true(a->spam_score == 1.0);
        assert_null(find(a, "phishing"));
        analysis_free(a);
    }
    struct analysis *a =
        run("From: a@example.com\nSubject: t\n\nsee http://ThisIsTrendmicroCSPHIRuleTesting now\n");
    const struct detection *d = find(a, "phishing");
    assert_non_null(d);
    assert_true(d->score == 1.0);
    analysis_free(a);
}

struct toks {
    char t[512][64];
    size_t n;
};

static void tok_emit(char kind, const char *tok, size_t n, void *arg)
{
    struct toks *t = arg;
    if (t->n < 512 && n < 60)
        snprintf(t->t[t->n++], 64, "%c:%.*s", kind, (int)n, tok);
}

static bool has_tok(const struct toks *t, const char *s)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->t[i], s) == 0)
            return true;
    return false;
}

static void test_tokenizer(void **state)
{
    (void)state;
    struct toks t = {.n = 0};
    const char *en = "Click HERE for FREE money, 1234567 x";
    spam_tokenize(en, strlen(en), 'w', tok_emit, &t);
    assert_true(has_tok(&t, "w:click"));
    assert_true(has_tok(&t, "w:here"));
    assert_true(has_tok(&t, "b:click 1 here")); /* orthogonal sparse bigrams: gap 1..4 */
    assert_true(has_tok(&t, "b:click 2 for"));
    assert_true(has_tok(&t, "b:click 4 money"));
    assert_true(has_tok(&t, "w:money"));
    assert_true(has_tok(&t, "w:#7"));
    assert_false(has_tok(&t, "w:x"));          /* too short */
    assert_false(has_tok(&t, "b:money 1 #7")); /* comma breaks pairs */
    t.n = 0;
    const char *osb = "aa bb cc dd ee ff";
    spam_tokenize(osb, strlen(osb), 'w', tok_emit, &t);
    assert_true(has_tok(&t, "b:aa 4 ee"));
    assert_true(has_tok(&t, "b:bb 4 ff"));
    assert_true(has_tok(&t, "b:ee 1 ff"));
    assert_false(has_tok(&t, "b:aa 5 ff")); /* window of 5 words */
    t.n = 0;
    spam_tokenize(osb, strlen(osb), 's', tok_emit, &t); /* pairs only in body text */
    assert_true(has_tok(&t, "s:aa"));
    assert_int_equal(t.n, 6);
    t.n = 0;
    const char *ja = "至急、振込先の変更をお願いします。ID abc";
    spam_tokenize(ja, strlen(ja), 'w', tok_emit, &t);
    assert_true(has_tok(&t, "c:至急"));
    assert_true(has_tok(&t, "c:振込"));
    assert_true(has_tok(&t, "c:込先"));
    assert_true(has_tok(&t, "c:変更"));
    assert_true(has_tok(&t, "c:お願"));
    assert_true(has_tok(&t, "w:id"));
    assert_true(has_tok(&t, "w:abc"));
    assert_false(has_tok(&t, "c:急、"));
    t.n = 0;
    spam_tokenize("本 x", 5, 's', tok_emit, &t); /* lone CJK character: unigram */
    assert_true(has_tok(&t, "s:本"));
    t.n = 0;
    spam_tokenize("\xe3\x81", 2, 'w', tok_emit, &t); /* truncated UTF-8: no crash, no token */
    assert_int_equal(t.n, 0);
}

/* tokens_of - every token spam_extract emits for msg (caller frees) */
static struct toks *tokens_of(const char *msg)
{
    struct analysis *a = mime_analyse(msg, strlen(msg), NULL);
    assert_non_null(a);
    struct toks *t = calloc(1, sizeof *t);
    assert_non_null(t);
    spam_extract(a, tok_emit, t);
    analysis_free(a);
    return t;
}

static void test_extract(void **state)
{
    (void)state;
    static const char msg[] =
        "From: \"Prize Team\" <win@Lottery.example>\n"
        "Reply-To: claims@other.example\n"
        "To: victim@example.org\n"
        "Subject: You won\n"
        "Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
        "Message-ID: <A1B2C3D4E5.123@Mailer.Example>\n"
        "Mime-version: 1.0\n"
        "X-Priority: 1\n"
        "Received: from relay.example by mx.example\n"
        "Content-Type: multipart/alternative; boundary=\"----=_NextPart_000_0012_01C2\"\n"
        "\n"
        "------=_NextPart_000_0012_01C2\n"
        "Content-Type: text/plain; charset=UTF-8\n"
        "\n"
        "claim at http://Win.Example.com/claim/form.php?id=1 now\n"
        "------=_NextPart_000_0012_01C2--\n";
    struct toks *t = tokens_of(msg);
    assert_true(has_tok(t, "f:lottery.example"));
    assert_false(has_tok(t, "S:double-space"));
    assert_true(has_tok(t, "S:up1")); /* "You won": 1 of 6 letters */
    assert_true(has_tok(t, "n:prize")); /* From display name */
    assert_true(has_tok(t, "n:team"));
    assert_true(has_tok(t, "y:other.example")); /* Reply-To domain */
    assert_true(has_tok(t, "r:reply-to-other-domain"));
    assert_true(has_tok(t, "h:mime-version")); /* sender header names, exact case */
    assert_true(has_tok(t, "h:x-priority"));
    assert_false(has_tok(t, "h:received")); /* relays' and collectors' headers: never */
    assert_false(has_tok(t, "h:to"));
    assert_false(has_tok(t, "k:utf-8")); /* every modern mailer's charset: no signal */
    /* Message-ID domain */
    assert_true(has_tok(t, "j:H.D"));               /* and left-part shape */
    assert_true(has_tok(t, "t:M, D M D D:D:D +D")); /* Date shape */
    assert_true(has_tok(t, "u:win.example.com"));
    assert_true(has_tok(t, "x:claim")); /* first URL path segment */
    assert_true(has_tok(t, "x:.php"));  /* URL path extension */
    assert_true(has_tok(t, "w:claim"));
    free(t);
    /* the sender_extract features */
    static const char msg2[] =
        "DKIM-Signature: v=1; a=rsa-sha256; bh=xyz=; d=News.Example.COM; s=sel;\n"
        "  b=abc=\n"
        "DomainKey-Signature: a=rsa-sha1; c=nofws; d=news.example.com; b=q\n"
        "From: SpecialOffers@news.example.com\n"
        "Subject:  FREE poker  Tonight!!\n"
        "Content-Type: text/html; charset=iso-8859-1\n"
        "Content-Transfer-Encoding: Base64\n"
        "\n"
        "PGEgaHJlZj0iaHR0cDovL3QuZXhhbXBsZS9jIj5QbGF5IE5vdzwvYT4=\n";
    t = tokens_of(msg2);
    assert_true(has_tok(t, "G:dkim"));
    assert_true(has_tok(t, "G:domainkey"));
    assert_true(has_tok(t, "g:news.example.com")); /* d=, not bh='s tail; lower-cased */
    assert_false(has_tok(t, "g:xyz="));
    assert_true(has_tok(t, "T:text/html:base64"));
    assert_true(has_tok(t, "L:play")); /* link text */
    assert_true(has_tok(t, "L:now"));
    assert_true(has_tok(t, "S:up3")); /* 5 of 16 letters upper-case */
    assert_true(has_tok(t, "S:ex2"));
    assert_true(has_tok(t, "S:double-space"));
    assert_true(has_tok(t, "N:specialoffers")); /* From local part and its shape */
    assert_true(has_tok(t, "N:M"));
    free(t);
    /* pair features carry the pair bit (the Fisher combiner skips them) */
    assert_true(spam_hash('b', "a 1 b", 5) & 0x80000000u);
    assert_false(spam_hash('w', "ab", 2) & 0x80000000u);
}

/* header_extract: every header the sender wrote, bogofilter-style (case
 * kept, tagged), never a relay's, a collector's or a big sender's stamps */
static void test_header_tokens(void **state)
{
    (void)state;
    static const char msg[] =
        "Received: from relay.example by mx.example\n"
        "X-Spam-Status: No, score=-2.0\n"
        "X-Gm-Message-State: AOJu0Yw\n"
        "Message-ID: <16770755.Offer.root@mailer.example>\n"
        "Date: Sat, 12 May 2007 10:00:00 +0000\n"
        "To: victim@example.org\n"
        "From: \"BetZip.com\" <SpecialOffers@betzip.com>\n"
        "Subject: Bet, You've Been Invited to Play 7FREE Poker...\n"
        "X-Mailer: Accucast\n"
        "X-Accutrak: 261.250213.31393439323130\n"
        "Content-Type: text/plain\n"
        "\n"
        "hello\n";
    struct toks *t = tokens_of(msg);
    assert_true(has_tok(t, "H:subj:You've")); /* case and inner apostrophe kept */
    assert_true(has_tok(t, "H:subj:Invited"));
    assert_true(has_tok(t, "H:subj:FREE"));    /* leading digits cut */
    assert_true(has_tok(t, "H:subj:Poker"));   /* trailing dots cut */
    assert_false(has_tok(t, "H:subj:to"));     /* shorter than 3 */
    assert_true(has_tok(t, "H:from:BetZip.com"));
    assert_true(has_tok(t, "H:from:SpecialOffers"));
    assert_true(has_tok(t, "H:from:betzip.com"));
    assert_true(has_tok(t, "H:head:x-accutrak")); /* the name, lower-cased */
    assert_false(has_tok(t, "H:head:X-Accutrak"));
    assert_true(has_tok(t, "H:head:Accucast"));    /* values keep their case */
    assert_true(has_tok(t, "H:head:x-mailer"));
    assert_false(has_tok(t, "H:head:received")); /* relays, collectors, filters */
    assert_false(has_tok(t, "H:head:relay.example"));
    assert_false(has_tok(t, "H:head:x-spam-status"));
    assert_false(has_tok(t, "H:head:x-gm-message-state"));
    assert_true(has_tok(t, "H:head:message-id")); /* name only, or the left part */
    assert_true(has_tok(t, "H:head:Offer.root"));
    assert_false(has_tok(t, "H:head:mailer.example"));
    assert_true(has_tok(t, "H:head:date"));
    assert_false(has_tok(t, "H:head:Sat"));
    assert_false(has_tok(t, "H:head:victim"));
    free(t);
}

struct budget_count {
    size_t header;
    bool body_word;
};

static void budget_emit(char kind, const char *tok, size_t n, void *arg)
{
    struct budget_count *c = arg;
    c->header += kind == 'H';
    c->body_word |= kind == 'w' && n == 14 && memcmp(tok, "uniquebodyword", 14) == 0;
}

/* made-up header lines cannot crowd the body's words out of a message's
 * feature budget */
static void test_header_budget(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1 << 20);
    buf_printf(&b, "From: a@b.example\nSubject: hi\n");
    for (int i = 0; i < 150; i++) {
        buf_printf(&b, "X-Junk-%d:", i);
        for (int k = 0; k < 40; k++)
            buf_printf(&b, " junk%dword%d", i, k);
        buf_printf(&b, "\n");
    }
    buf_printf(&b, "\nuniquebodyword\n");
    struct analysis *a = mime_analyse(buf_cstr(&b), b.len, NULL);
    assert_non_null(a);
    struct budget_count c = {0};
    spam_extract(a, budget_emit, &c);
    assert_int_equal(c.header, 400); /* SPAM_MAX_HEADER_TOKENS */
    assert_true(c.body_word);
    uint32_t *f = calloc(SPAM_MAX_FEATURES, sizeof *f);
    assert_non_null(f);
    assert_true(spam_features(a, f, SPAM_MAX_FEATURES) < 600);
    free(f);
    analysis_free(a);
    buf_free(&b);
}

static struct spam_model *toy_model(void)
{
    static const char *const spams[] = {
        "Subject: cheap pills\n\nbuy cheap viagra pills now, cheap meds online pharmacy discount\n",
        "Subject: winner\n\nyou are a winner claim your lottery prize money now click here\n",
        "Subject: cheap meds\n\nonline pharmacy cheap pills viagra discount buy now\n",
        "Subject: prize\n\nclaim prize money lottery winner click here now\n",
    };
    static const char *const hams[] = {
        "Subject: meeting\n\nthe project meeting is moved to thursday, agenda attached\n",
        "Subject: patch review\n\nplease review the kernel patch before the release branch\n",
        "Subject: minutes\n\nminutes of the project meeting and the release plan\n",
        "Subject: build\n\nthe build fails on the release branch, see the patch\n",
    };
    struct spam_trainer *t = spam_trainer_new(16);
    assert_non_null(t);
    for (size_t i = 0; i < 4; i++) {
        struct analysis *a = mime_analyse(spams[i], strlen(spams[i]), NULL);
        spam_trainer_add(t, a, true);
        analysis_free(a);
        a = mime_analyse(hams[i], strlen(hams[i]), NULL);
        spam_trainer_add(t, a, false);
        analysis_free(a);
    }
    assert_int_equal(spam_trainer_count(t), 8);
    struct spam_model *m = spam_trainer_finish(t, 20);
    spam_trainer_free(t);
    return m;
}

static double score_with(const struct spam_model *m, const char *msg)
{
    struct analysis *a = mime_analyse(msg, strlen(msg), NULL);
    uint32_t f[SPAM_MAX_FEATURES];
    size_t n = spam_features(a, f, SPAM_MAX_FEATURES);
    analysis_free(a);
    return spam_model_score(m, f, n);
}

static void test_train_classify(void **state)
{
    (void)state;
    struct spam_model *m = toy_model();
    double s = score_with(m, "Subject: cheap viagra\n\nbuy cheap pills from our pharmacy now\n");
    double h = score_with(m, "Subject: release meeting\n\nagenda for the release meeting and patch review\n");
    assert_true(s > 0.6);
    assert_true(h < 0.4);
    /* each half of the ensemble alone agrees */
    static const char spam1[] = "Subject: cheap pills\n\nbuy cheap viagra pills now\n";
    static const char ham1[] = "Subject: meeting\n\nthe project meeting and the release plan\n";
    struct analysis *sa = mime_analyse(spam1, strlen(spam1), NULL);
    uint32_t f[SPAM_MAX_FEATURES];
    size_t n = spam_features(sa, f, SPAM_MAX_FEATURES);
    assert_true(spam_model_fisher(m, f, n) > 0.5);
    assert_true(spam_model_logistic(m, f, n) > 0.5);
    analysis_free(sa);
    sa = mime_analyse(ham1, strlen(ham1), NULL);
    n = spam_features(sa, f, SPAM_MAX_FEATURES);
    assert_true(spam_model_fisher(m, f, n) < 0.5);
    assert_true(spam_model_logistic(m, f, n) < 0.5);
    assert_true(spam_model_fisher(m, f, 0) == 0.5); /* no evidence: neutral */
    analysis_free(sa);
    /* deterministic */
    struct spam_model *m2 = toy_model();
    size_t l1, l2;
    unsigned char *p1 = spam_model_serialise(m, &l1), *p2 = spam_model_serialise(m2, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(p1, p2, l1);
    free(p1);
    free(p2);
    spam_model_free(m2);
    /* the detector with this model: a spam detection with top tokens as evidence */
    detect_spam_set_model(m);
    const char *msg =
        "Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <a@b>\nSubject: cheap viagra pills\n\n"
        "buy cheap viagra pills online pharmacy discount now, claim prize money\n";
    struct analysis *a = run(msg);
    assert_true(a->spam_scored);
    assert_true(a->spam_score > 0.5);
    analysis_free(a);
    detect_spam_set_model(NULL);
}

static void test_model_file(void **state)
{
    (void)state;
    struct spam_model *m = toy_model();
    char path[] = "/tmp/moat-spam-model-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char err[300];
    assert_int_equal(spam_model_save(m, path, err, sizeof err), 0);
    struct spam_model *r = spam_model_load(path, err, sizeof err);
    assert_non_null(r);
    size_t l1, l2;
    unsigned char *p1 = spam_model_serialise(m, &l1), *p2 = spam_model_serialise(r, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(p1, p2, l1);
    uint32_t ns, nh;
    spam_model_counts(r, &ns, &nh);
    assert_int_equal(ns, 4);
    assert_int_equal(nh, 4);
    spam_model_free(r);
    /* corrupted: one flipped weight byte, bad magic, bad version, truncated, padded */
    p1[1000] ^= 1;
    assert_null(spam_model_parse(p1, l1, err, sizeof err));
    assert_non_null(strstr(err, "checksum"));
    p1[1000] ^= 1;
    assert_non_null((r = spam_model_parse(p1, l1, err, sizeof err)));
    spam_model_free(r);
    p1[0] = 'X';
    assert_null(spam_model_parse(p1, l1, err, sizeof err));
    p1[l1 - 100] ^= 1; /* the Fisher table is covered by the checksum too */
    assert_null(spam_model_parse(p1, l1, err, sizeof err));
    p1[l1 - 100] ^= 1;
    p1[0] = 'M';
    p1[8] = 9;
    assert_null(spam_model_parse(p1, l1, err, sizeof err));
    p1[8] = 1; /* version 1 (no Fisher table) is refused */
    assert_null(spam_model_parse(p1, l1, err, sizeof err));
    assert_non_null(strstr(err, "version"));
    p1[8] = 2;
    assert_null(spam_model_parse(p1, l1 - 1, err, sizeof err));
    assert_null(spam_model_parse(p1, 20, err, sizeof err));
    assert_null(spam_model_parse(p1, 0, err, sizeof err));
    FILE *f = fopen(path, "wb");
    fwrite(p1, 1, l1 / 2, f);
    fclose(f);
    assert_null(spam_model_load(path, err, sizeof err));
    assert_null(spam_model_load("/nonexistent/spam.model", err, sizeof err));
    unlink(path);
    free(p1);
    free(p2);
    spam_model_free(m);
    assert_null(spam_model_new(8));
    assert_null(spam_trainer_new(30));
}

/* model_with - an untrained model (zero weights) whose logistic bias is b
 * and whose Fisher table is neutral but for f(w) = fv[i] / 65535 in the
 * buckets of the nf features fh: the file format's header and table
 * rewritten, checksum recomputed (FNV-1a 64 of everything before it) */
static struct spam_model *model_with(float b, const uint32_t *fh, const uint16_t *fv, size_t nf)
{
    struct spam_model *m = spam_model_new(16);
    size_t len;
    unsigned char *p = spam_model_serialise(m, &len);
    spam_model_free(m);
    memcpy(p + 20, &b, 4); /* f32 bias, little-endian (x86) */
    for (size_t i = 0; i < nf; i++) /* u16 f(w) after the header and the i16 weights */
        memcpy(p + 32 + 2 * (1u << 16) + 2 * (fh[i] & 0xffffu), &fv[i], 2);
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len - 8; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    for (int i = 0; i < 8; i++)
        p[len - 8 + i] = (unsigned char)(h >> (8 * i));
    char err[200];
    m = spam_model_parse(p, len, err, sizeof err);
    free(p);
    assert_non_null(m);
    return m;
}

static struct spam_model *model_with_bias(float b)
{
    return model_with(b, NULL, NULL, 0);
}

/* the sender's identity counts SPAM_SENDER_VOTES (6) times in the Fisher
 * half when it points to spam: one spam-only From domain against six ham
 * words is a tie (0.5), where the same token as a body word is outvoted;
 * toward ham it counts once (a forged From gains nothing) */
static double fisher_of(const uint32_t *fh, const uint16_t *fv, size_t n)
{
    struct spam_model *m = model_with(0.0f, fh, fv, n);
    double q = spam_model_fisher(m, fh, n);
    spam_model_free(m);
    return q;
}

static void test_sender_votes(void **state)
{
    (void)state;
    const char *sender_kinds = "fygn";
    for (const char *k = sender_kinds; *k; k++)
        assert_true(spam_hash(*k, "example.test", 12) & 0x40000000u);
    assert_false(spam_hash('m', "outlook", 7) & 0x40000000u); /* spamware forges X-Mailer */
    assert_false(spam_hash('w', "example", 7) & 0x40000000u);
    assert_false(spam_hash('H', "head:x-mailer", 13) & 0x40000000u);
    assert_false(spam_hash('b', "a 1 b", 5) & 0x40000000u);
    static const char *const words[] = {"meeting", "agenda", "minutes", "patch", "review", "release"};
    uint32_t fh[7];
    uint16_t fv[7];
    for (size_t i = 0; i < 6; i++) {
        fh[i] = spam_hash('w', words[i], strlen(words[i]));
        fv[i] = 655; /* 0.01 */
    }
    fh[6] = spam_hash('f', "spamsender.test", 15);
    fv[6] = 64880; /* 0.99 */
    assert_true(fabs(fisher_of(fh, fv, 7) - 0.5) < 1e-6);
    fh[6] = spam_hash('w', "spamsender", 10);
    assert_true(fisher_of(fh, fv, 7) < 0.1);
    /* the mirror image: a ham-only From domain against six spam words */
    for (size_t i = 0; i < 7; i++)
        fv[i] = (uint16_t)(65535 - fv[i]);
    double as_word = fisher_of(fh, fv, 7);
    assert_true(as_word > 0.9);
    fh[6] = spam_hash('f', "spamsender.test", 15);
    assert_true(fabs(fisher_of(fh, fv, 7) - as_word) < 1e-9);
}

static void test_logistic_clip(void **state)
{
    (void)state;
    /* a logistic half sure of itself (logit 100) and a Fisher half with no
     * evidence (0.5): the logistic logit counts clipped to 15, so the blend
     * is 0.3 * 15 = 4.5, not 30 */
    struct spam_model *m = model_with_bias(100.0f);
    uint32_t f[3] = {spam_hash('w', "alpha", 5), spam_hash('w', "beta", 4), spam_hash('w', "gamma", 5)};
    assert_true(spam_model_logistic(m, f, 3) > 0.999);
    assert_true(spam_model_fisher(m, f, 3) == 0.5);
    assert_true(fabs(spam_model_logit(m, f, 3) - 4.5) < 1e-6);
    assert_true(fabs(spam_model_score(m, f, 3) - 1.0 / (1.0 + exp(-4.5))) < 1e-9);
    spam_model_free(m);
    m = model_with_bias(-100.0f);
    assert_true(fabs(spam_model_logit(m, f, 3) + 4.5) < 1e-6);
    spam_model_free(m);
}

static void test_levels(void **state)
{
    (void)state;
    assert_string_equal(spam_level_matched(1.0), "lowest");
    assert_string_equal(spam_level_matched(SPAM_T_MODERATE), "moderate");
    assert_null(spam_level_matched(0.1));
    for (int i = 1; i < 5; i++)
        assert_true(spam_levels[i].threshold < spam_levels[i - 1].threshold);
}

static void test_no_model(void **state)
{
    (void)state;
    detect_spam_set_model(NULL);
    struct analysis *a = run("From: a@example.com\nSubject: hi\n\nhello there\n");
    assert_true(a->spam_scored);
    assert_non_null(find(a, "scan_exclusion"));
    assert_null(find(a, "spam"));
    analysis_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings),    cmocka_unit_test(test_tokenizer),
        cmocka_unit_test(test_extract),    cmocka_unit_test(test_train_classify),
        cmocka_unit_test(test_model_file), cmocka_unit_test(test_levels),
        cmocka_unit_test(test_no_model),   cmocka_unit_test(test_logistic_clip),
        cmocka_unit_test(test_header_tokens), cmocka_unit_test(test_header_budget),
        cmocka_unit_test(test_sender_votes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
