/* test_detect_bec.c - BEC (engine/probable/writing_style), social engineering
 * and graymail detectors: each signal on a crafted message (English,
 * Japanese, ISO-2022-JP) and its legitimate counterpart; name matching and
 * look-alike tables; the style profile file format. With MOAT_HAM_DIRS set
 * (colon-separated directories of raw ham), prints the detection counts of
 * a synthetic tenant over them and fails on any "engine" BEC detection. */
#include "core/core.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "detect/detect_int.h"
#include "mime/mime.h"

static const char *const own[] = {"example.test", "example.co.jp"};
static const char *const hpdom[] = {"bigbank.test"};
static const struct detect_hp_user hpu[] = {
    {"Taro Yamada", "ceo@example.test"},
    {"山田太郎", "yamada@example.co.jp"},
};

static struct detect_context tenant(void)
{
    struct detect_context c = {0};
    c.own_domains = own;
    c.nown_domains = 2;
    c.hp_domains = hpdom;
    c.nhp_domains = 1;
    c.hp_users = hpu;
    c.nhp_users = 2;
    return c;
}

static struct analysis *scan(const char *msg, const struct detect_context *ctx)
{
    struct analysis *a = mime_analyse(msg, strlen(msg), NULL);
    assert_non_null(a);
    detect_bec_run(a, msg, strlen(msg), ctx);
    detect_social_run(a, msg, strlen(msg), ctx);
    detect_graymail_run(a, msg, strlen(msg), ctx);
    return a;
}

static const struct detection *find(const struct analysis *a, const char *cat, const char *name)
{
    for (size_t i = 0; i < a->ndetections; i++)
        if (strcmp(a->detections[i].category, cat) == 0 && (!name || strcmp(a->detections[i].name, name) == 0))
            return &a->detections[i];
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    char err[300];
    if (detect_bec_init(NULL, err, sizeof err) < 0)
        fail_msg("%s", err);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    detect_bec_shutdown();
    return 0;
}

/* ---------------------------------------------------------------- helpers */

static void test_name_match(void **state)
{
    (void)state;
    static const struct {
        const char *display, *name;
        bool match;
    } t[] = {
        {"Taro Yamada", "Taro Yamada", true},
        {"YAMADA Taro", "Taro Yamada", true},
        {"Yamada, Taro", "Taro Yamada", true},
        {"\xef\xbc\xb4\xef\xbd\x81\xef\xbd\x92\xef\xbd\x8f\xe3\x80\x80\xef\xbc\xb9\xef\xbd\x81\xef\xbd\x8d\xef\xbd"
         "\x81\xef\xbd\x84\xef\xbd\x81",
         "Taro Yamada", true}, /* full-width, ideographic space */
        {"taro  yamada (CEO)", "Taro Yamada", true},
        {"CEO Taro Yamada", "Taro Yamada", true},
        {"山田　太郎", "山田太郎", true},
        {"太郎 山田", "山田太郎", true},
        {"山田太郎社長", "山田太郎", true},
        {"山田 太郎", "山田 太郎", true},
        {"Kentaro Yamada", "Taro Yamada", false},
        {"Taro", "Taro Yamada", false},
        {"Taro Yamadas", "Taro Yamada", false},
        {"山田花子", "山田太郎", false},
        {"", "Taro Yamada", false},
        {"Taro Yamada", "", false},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (ident_name_match(t[i].display, t[i].name) != t[i].match)
            fail_msg("'%s' vs '%s': expected %d", t[i].display, t[i].name, t[i].match);
}

static void test_lookalike(void **state)
{
    (void)state;
    static const struct {
        const char *domain, *like;
    } t[] = {
        {"examp1e.test", "example.test"},   {"exarnple.test", "example.test"},
        {"examlpe.test", "example.test"},   {"example.co", NULL},
        {"example-billing.test", "example.test"}, {"mail.examp1e.test", "example.test"},
        {"exampie.co.jp", "example.test"},  {"big-bank.test", NULL},
        {"example.test", NULL},             {"mail.example.test", NULL},
        {"sample.test", NULL},              {"gmail.com", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        const char *r = ident_lookalike(t[i].domain, own, 2);
        if ((r == NULL) != (t[i].like == NULL))
            fail_msg("%s: got %s", t[i].domain, r ? r : "(none)");
    }
    assert_string_equal(ident_lookalike("blgbank.test", hpdom, 1), "bigbank.test");
    char o[64];
    ident_org_domain("mail.Example.CO.JP", o, sizeof o);
    assert_string_equal(o, "example.co.jp");
    ident_org_domain("a.b.example.test.", o, sizeof o);
    assert_string_equal(o, "example.test");
    assert_true(ident_freemail("gmail.com"));
    assert_true(ident_freemail("yahoo.co.jp"));
    assert_false(ident_freemail("groups.msn.com"));
    assert_false(ident_freemail("example.test"));
}

/* ---------------------------------------------------------------- BEC */

static void test_bec_engine_en(void **state)
{
    (void)state;
    struct detect_context c = tenant();
    struct analysis *a = scan("From: \"Taro Yamada\" <taro.yamada@gmai1.test>\n"
                              "Reply-To: taro.yamada.ceo@gmail.com\nTo: finance@example.test\n"
                              "Subject: Urgent wire transfer\nMessage-ID: <1@gmai1.test>\n\n"
                              "Are you at your desk? I need you to process a wire transfer today.\n"
                              "Keep this confidential, I am in a meeting.\n",
                              &c);
    const struct detection *d = find(a, "bec", "engine");
    assert_non_null(d);
    assert_true(d->score >= 0.75 && d->score <= 1);
    assert_non_null(
        strstr(d->evidence, "display name 'Taro Yamada' of high-profile user on external address taro.yamada@gmai1.test"));
    assert_non_null(strstr(d->evidence, "Reply-To taro.yamada.ceo@gmail.com diverts to free-mail domain gmail.com"));
    assert_non_null(strstr(d->evidence, "'wire transfer'"));
    assert_null(find(a, "bec", "probable"));
    analysis_free(a);
}

/* ISO-2022-JP header and body: "山田 太郎" asking for a secret transfer to a new account */
static const char ja_bec[] = "From: =?ISO-2022-JP?B?GyRCOzNFRBsoQiAbJEJCQE86GyhC?= <yamada.taro@freemail.test>\n"
                             "To: keiri@example.co.jp\n"
                             "Subject: =?ISO-2022-JP?B?GyRCIVo7ajVeIVskKj82OX5AaEpROTkkTiQqNGokJBsoQg==?=\n"
                             "MIME-Version: 1.0\nContent-Type: text/plain; charset=ISO-2022-JP\n"
                             "Content-Transfer-Encoding: 7bit\n\n"
                             "\x1b$B$*Hh$lMM$G$9!#\x1b(B\n"
                             "\x1b$B;j5^!\"K\\F|Cf$KAw6b$r$*4j$$$7$^$9!#\x1b(B\n"
                             "\x1b$B?69~@h$NJQ99$,$\"$j$^$7$?$N$G!\"?7$7$$8}:B$K$*4j$$$7$^$9!#\x1b(B\n"
                             "\x1b$B$3$N7o$OFbL)$K$*4j$$$7$^$9!#\x1b(B\n";

static void test_bec_engine_ja(void **state)
{
    (void)state;
    struct detect_context c = tenant();
    struct analysis *a = scan(ja_bec, &c);
    const struct detection *d = find(a, "bec", "engine");
    assert_non_null(d);
    assert_non_null(strstr(d->evidence, "display name '山田 太郎' of high-profile user on external address"));
    assert_non_null(strstr(d->evidence, "振込先の変更"));
    analysis_free(a);
    /* the same text without tenant data: no identity signal, nothing */
    struct detect_context none = {0};
    a = scan(ja_bec, &none);
    assert_null(find(a, "bec", NULL));
    analysis_free(a);
}

static void test_bec_lookalike_sender(void **state)
{
    (void)state;
    struct detect_context c = tenant();
    struct analysis *a = scan("From: Accounts <accounts@examp1e.test>\nTo: ap@example.test\n"
                              "Subject: change of bank details\n\n"
                              "Please note our new bank account for the outstanding invoice. Urgent payment needed.\n",
                              &c);
    const struct detection *d = find(a, "bec", "engine");
    assert_non_null(d);
    assert_non_null(strstr(d->evidence, "sender domain examp1e.test looks like own domain example.test"));
    analysis_free(a);
    /* a look-alike of a high-profile (partner) domain without pressure: probable */
    a = scan("From: Support <support@blgbank.test>\nTo: ap@example.test\nSubject: hello\n\nSee you.\n", &c);
    d = find(a, "bec", "probable");
    assert_non_null(d);
    assert_non_null(strstr(d->evidence, "looks like high-profile domain bigbank.test"));
    assert_true(d->score < 0.75);
    analysis_free(a);
}

static void test_bec_replyto(void **state)
{
    (void)state;
    struct detect_context c = tenant();
    /* free-mail Reply-To with pressure: probable (a single identity signal) */
    struct analysis *a = scan("From: Billing <billing@vendor.test>\nReply-To: vendor.billing@gmail.com\n"
                              "To: ap@example.test\nSubject: invoice\n\n"
                              "We have new bank details, please make the wire transfer to the new account.\n",
                              &c);
    const struct detection *d = find(a, "bec", "probable");
    assert_non_null(d);
    assert_non_null(strstr(d->evidence, "Reply-To vendor.billing@gmail.com diverts to free-mail domain gmail.com"));
    assert_null(find(a, "bec", "engine"));
    analysis_free(a);
    /* Reply-To to a look-alike of our own domain */
    a = scan("From: Taro <ceo@example.test>\nReply-To: ceo@example-test.test\nTo: ap@example.test\n"
             "Subject: x\n\nPlease send the gift cards today, confidential.\n",
             &c);
    d = find(a, "bec", "engine");
    assert_non_null(d);
    assert_non_null(strstr(d->evidence, "diverts to a look-alike of example.test"));
    analysis_free(a);
    /* a normal Reply-To on the same organisation: nothing */
    a = scan("From: Sales <sales@partner.test>\nReply-To: support@help.partner.test\nTo: ap@example.test\n"
             "Subject: invoice\n\nPlease find the invoice attached for the bank transfer.\n",
             &c);
    assert_null(find(a, "bec", NULL));
    analysis_free(a);
}

static void test_bec_legitimate(void **state)
{
    (void)state;
    struct detect_context c = tenant();
    c.mail_from = "ceo@example.test";
    /* the real CEO from the tenant's domain, same urgent wording */
    const char *real = "From: Taro Yamada <ceo@example.test>\nTo: finance@example.test\n"
                       "Subject: Urgent wire transfer\n\n"
                       "Please process the wire transfer today, it is confidential.\n";
    struct analysis *a = scan(real, &c);
    assert_null(find(a, "bec", NULL));
    assert_null(find(a, "social_engineering", NULL));
    analysis_free(a);
    /* ... and in Japanese from his Japanese address */
    a = scan("From: =?ISO-2022-JP?B?GyRCOzNFRBsoQiAbJEJCQE86GyhC?= <yamada@example.co.jp>\n"
             "To: keiri@example.co.jp\nSubject: test\nContent-Type: text/plain; charset=ISO-2022-JP\n\n"
             "\x1b$B;j5^!\"K\\F|Cf$KAw6b$r$*4j$$$7$^$9!#\x1b(B\n",
             &c);
    assert_null(find(a, "bec", NULL));
    analysis_free(a);
    /* a plain personal mail from free mail */
    a = scan("From: Hanako <hanako@gmail.com>\nTo: taro@example.test\nSubject: lunch\n\n"
             "See you at lunch tomorrow? The usual place.\n",
             &c);
    assert_int_equal(a->ndetections, 0);
    analysis_free(a);
    /* outbound mail is not judged */
    c.outbound = true;
    a = scan("From: \"Taro Yamada\" <taro@gmail.com>\nTo: x@y.test\nSubject: wire transfer urgent\n\nwire transfer\n", &c);
    assert_int_equal(a->ndetections, 0);
    analysis_free(a);
}

static void test_bec_freemail_pressure(void **state)
{
    (void)state;
    struct detect_context none = {0};
    /* gift-card scam from free mail, no tenant data: probable */
    struct analysis *a = scan("From: Director <director.office@gmail.com>\nTo: you@corp.test\nSubject: quick favor\n\n"
                              "Are you available? I need you to buy gift cards for a client, keep this between us.\n",
                              &none);
    const struct detection *d = find(a, "bec", "probable");
    assert_non_null(d);
    assert_non_null(strstr(d->evidence, "sender on free-mail domain gmail.com"));
    analysis_free(a);
}

/* ---------------------------------------------------------------- social engineering */

static void test_social(void **state)
{
    (void)state;
    struct detect_context c = tenant();
    c.mail_from = "x@evil.test";
    struct analysis *a = scan("From: \"ceo@example.test\" <x@evil.test>\nTo: a@example.test\nSubject: hi\n\nhello\n", &c);
    const struct detection *d = find(a, "social_engineering", "internal-display-name");
    assert_non_null(d);
    assert_non_null(strstr(d->evidence, "names own domain example.test on external address x@evil.test"));
    analysis_free(a);

    a = scan("Received: from mail.example.test (unknown [203.0.113.5]) by mx.example.test; Mon, 1 Jan 2024\n"
             "From: IT <it@evil.test>\nTo: a@example.test\nSubject: hi\n\nhello\n",
             &c);
    d = find(a, "social_engineering", "helo-impersonation");
    assert_non_null(d);
    assert_non_null(strstr(d->evidence, "named itself mail.example.test"));
    analysis_free(a);

    /* many recipients, not a reply, Japanese urgency in ISO-2022-JP subject */
    struct buf m;
    buf_init(&m, 10000);
    buf_printf(&m, "From: Notice <notice@unknown.test>\nTo: ");
    for (int i = 0; i < 12; i++)
        buf_printf(&m, "%su%d@example.test", i ? ", " : "", i);
    buf_printf(&m, "\nSubject: =?ISO-2022-JP?B?GyRCIVo7ajVeIVskKj82OX5AaEpROTkkTiQqNGokJBsoQg==?=\n\nPlease read.\n");
    a = scan(buf_cstr(&m), &(struct detect_context){0});
    d = find(a, "social_engineering", "mass-urgent");
    assert_non_null(d);
    assert_non_null(strstr(d->evidence, "12 recipients"));
    assert_non_null(strstr(d->evidence, "至急"));
    analysis_free(a);
    /* the same as a reply: nothing */
    buf_reset(&m);
    buf_printf(&m, "From: Notice <notice@unknown.test>\nIn-Reply-To: <x@y>\nTo: ");
    for (int i = 0; i < 12; i++)
        buf_printf(&m, "%su%d@example.test", i ? ", " : "", i);
    buf_printf(&m, "\nSubject: urgent\n\nPlease read.\n");
    a = scan(buf_cstr(&m), &(struct detect_context){0});
    assert_null(find(a, "social_engineering", NULL));
    analysis_free(a);
    buf_free(&m);

    /* a single weak signal (envelope sender of a mailing service): nothing */
    c.mail_from = "bounce-123@esp.test";
    a = scan("From: News <news@shop.test>\nTo: a@example.test\nSubject: hi\n\nhello\n", &c);
    assert_null(find(a, "social_engineering", NULL));
    analysis_free(a);
    /* the legitimate internal counterpart */
    c.mail_from = "it@example.test";
    a = scan("Received: from mail.example.test (mail.example.test [192.0.2.1]) by mx.example.test\n"
             "From: \"IT desk (example.test)\" <it@example.test>\nTo: a@example.test\nSubject: hi\n\nhello\n",
             &c);
    assert_null(find(a, "social_engineering", NULL));
    analysis_free(a);
}

/* ---------------------------------------------------------------- graymail */

static void test_graymail(void **state)
{
    (void)state;
    struct detect_context none = {0};
    struct analysis *a = scan("From: News <news@shop.test>\nTo: a@example.test\nSubject: Weekly news\n"
                              "List-Unsubscribe: <https://shop.test/u?id=1>\nList-Unsubscribe-Post: "
                              "List-Unsubscribe=One-Click\n\nOur news this week.\nTo unsubscribe click the link.\n",
                              &none);
    const struct detection *d = find(a, "graymail", "newsletter");
    assert_non_null(d);
    assert_true(d->score >= 0.7);
    assert_non_null(strstr(d->evidence, "List-Unsubscribe with one-click"));
    analysis_free(a);

    a = scan("From: Shop <info@shop.test>\nTo: a@example.test\nSubject: sale\nX-Mailgun-Sid: abc\n"
             "MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
             "<html><body><p>Big sale</p><img src=3D\"https://t.shop.test/o/abc.gif\" width=3D\"1\" "
             "height=3D\"1\"></body></html>\n",
             &none);
    d = find(a, "graymail", "marketing");
    assert_non_null(d);
    assert_non_null(strstr(d->evidence, "bulk-mailer fingerprint X-Mailgun-Sid"));
    assert_non_null(strstr(d->evidence, "tracking image"));
    analysis_free(a);

    /* Japanese newsletter in ISO-2022-JP: "配信停止はこちら" */
    a = scan("From: shop@shop.test\nTo: a@example.test\nSubject: news\nPrecedence: bulk\n"
             "Content-Type: text/plain; charset=ISO-2022-JP\n\n"
             "\x1b$BG[?.Dd;_$O$3$A$i\x1b(B https://shop.test/stop\n",
             &none);
    d = find(a, "graymail", "newsletter");
    assert_non_null(d);
    assert_non_null(strstr(d->evidence, "'配信停止'"));
    analysis_free(a);

    a = scan("From: Facebook <notification@facebookmail.com>\nTo: a@example.test\nSubject: You have 3 new notifications\n"
             "List-Unsubscribe: <mailto:u@facebookmail.com>\n\nSee what your friends posted.\n",
             &none);
    d = find(a, "graymail", "social-notification");
    assert_non_null(d);
    assert_non_null(strstr(d->evidence, "facebookmail.com is a social network"));
    analysis_free(a);

    /* a personal mail and a discussion list: nothing */
    a = scan("From: Hanako <hanako@gmail.com>\nTo: a@example.test\nSubject: lunch\n\nLunch tomorrow?\n", &none);
    assert_null(find(a, "graymail", NULL));
    analysis_free(a);
    a = scan("From: Bob <bob@dev.test>\nTo: list@lists.dev.test\nSubject: Re: patch\nList-Id: <dev.lists.dev.test>\n"
             "List-Post: <mailto:list@lists.dev.test>\nList-Unsubscribe: <mailto:list-leave@lists.dev.test>\n"
             "Precedence: list\n\nLooks good to me.\n_______\nTo unsubscribe send mail to list-leave\n",
             &none);
    assert_null(find(a, "graymail", NULL));
    analysis_free(a);
}

/* ---------------------------------------------------------------- writing style */

static const char *const ceo_lines[] = {
    "I wanted to share a quick update on the quarterly numbers before Friday's board meeting.",
    "The team did a great job on the Osaka launch, and the early feedback from customers is encouraging.",
    "Could you please prepare a short summary of the open items for our next review?",
    "I think we should revisit the hiring plan once the budget is confirmed by the finance team.",
    "Let's keep the discussion focused on the three priorities we agreed on last month.",
    "Thanks for pulling together the numbers so quickly, it really helps.",
    "I will be travelling on Tuesday and Wednesday, but I can join a call in the evening.",
    "Please make sure the partners have the updated contract before the end of the month.",
    "We are on track overall, although the logistics costs are a little higher than planned.",
    "I would appreciate your thoughts on the proposal when you have a moment.",
};

static char *ceo_mail(unsigned seed, const char *from)
{
    struct buf b;
    buf_init(&b, 8000);
    buf_printf(&b, "From: Taro Yamada <%s>\nTo: team@example.test\nSubject: update %u\n\nHi team,\n\n", from, seed);
    for (unsigned i = 0; i < 5; i++)
        buf_printf(&b, "%s ", ceo_lines[(seed * 3 + i * 7) % 10]);
    buf_printf(&b, "\n\nBest regards,\nTaro\n");
    char *r = xstrdup(buf_cstr(&b));
    buf_free(&b);
    return r;
}

static struct style_profile *learn_ceo(void)
{
    struct style_profile *p = style_profile_new("CEO@example.test");
    for (unsigned i = 0; i < 12; i++) {
        char *m = ceo_mail(i, "ceo@example.test");
        struct analysis *a = mime_analyse(m, strlen(m), NULL);
        struct style_sample s;
        style_sample_of(a, &s);
        assert_true(style_profile_add(p, &s));
        analysis_free(a);
        free(m);
    }
    return p;
}

static const char imposter[] =
    "From: Taro Yamada <ceo@example.test>\nTo: ap@example.test\nSubject: REQUEST\n\n"
    "Dear Sir/Madam,\n\nKINDLY PROCEED WITH THE PAYMENT TODAY!!! THE BENEFICIARY DETAILS ARE BELOW!!! "
    "DO IT NOW AND REVERT BACK TO ME ASAP, I AM VERY BUSY RIGHT NOW!!! NO CALLS!!! "
    "AMOUNT: USD 48,950.00 ... ACCOUNT NO: 0034-5567-8812 ... SWIFT: ABCDJPJT ...\n\nSincerely Yours,\nMD\n";

static void test_style_detect(void **state)
{
    (void)state;
    struct style_profile *p = learn_ceo();
    assert_int_equal(style_profile_messages(p), 12);
    assert_string_equal(style_profile_address(p), "ceo@example.test");
    const struct style_profile *profiles[] = {p};
    struct detect_context c = tenant();
    c.style_profiles = profiles;
    c.nstyle_profiles = 1;
    c.mail_from = "ceo@example.test";
    /* a new mail by the CEO in his usual style: no writing_style */
    char *m = ceo_mail(99, "ceo@example.test");
    struct analysis *a = scan(m, &c);
    assert_null(find(a, "bec", "writing_style"));
    analysis_free(a);
    free(m);
    /* an imposter using his address: flagged */
    a = scan(imposter, &c);
    const struct detection *d = find(a, "bec", "writing_style");
    assert_non_null(d);
    assert_non_null(strstr(d->evidence, "text under the identity of ceo@example.test has style distance"));
    assert_non_null(strstr(d->evidence, "learnt from 12 messages"));
    analysis_free(a);
    /* too short to judge */
    a = scan("From: Taro Yamada <ceo@example.test>\nTo: ap@example.test\nSubject: x\n\nPAY NOW!!!\n", &c);
    assert_null(find(a, "bec", "writing_style"));
    analysis_free(a);
    /* quoted text is not the author's: an imposter's text quoted in the CEO's reply does not count */
    struct buf b;
    buf_init(&b, 20000);
    m = ceo_mail(5, "ceo@example.test");
    buf_printf(&b, "%s\nOn Mon, someone wrote:\n> DEAR SIR!!! KINDLY PAY NOW!!! ASAP!!! NO CALLS!!!\n", m);
    free(m);
    a = scan(buf_cstr(&b), &c);
    assert_null(find(a, "bec", "writing_style"));
    analysis_free(a);
    buf_free(&b);
    style_profile_free(p);
}

static void test_style_file(void **state)
{
    (void)state;
    struct style_profile *p = learn_ceo();
    size_t n;
    unsigned char *buf = style_profile_serialise(p, &n);
    char err[200];
    struct style_profile *q = style_profile_parse(buf, n, err, sizeof err);
    assert_non_null(q);
    assert_int_equal(memcmp(p, q, sizeof *p), 0);
    style_profile_free(q);
    /* truncated, padded, corrupted, other version, empty */
    assert_null(style_profile_parse(buf, n - 1, err, sizeof err));
    assert_non_null(strstr(err, "truncated"));
    assert_null(style_profile_parse(buf, 0, err, sizeof err));
    buf[500] ^= 1;
    assert_null(style_profile_parse(buf, n, err, sizeof err));
    assert_non_null(strstr(err, "checksum"));
    buf[500] ^= 1;
    buf[8] = 9;
    assert_null(style_profile_parse(buf, n, err, sizeof err));
    assert_non_null(strstr(err, "version"));
    free(buf);
    /* save and load */
    char path[] = "/tmp/moat-style-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(style_profile_save(p, path, err, sizeof err), 0);
    q = style_profile_load(path, err, sizeof err);
    assert_non_null(q);
    assert_int_equal(q->nmsgs, 12);
    style_profile_free(q);
    unlink(path);
    assert_null(style_profile_load("/nonexistent/x.style", err, sizeof err));
    style_profile_free(p);
}

/* ---------------------------------------------------------------- corpus */

static size_t counts[16];
static const char *const count_names[16] = {"messages", "bec/engine", "bec/probable", "bec/writing_style",
                                            "graymail/newsletter", "graymail/marketing", "graymail/social-notification",
                                            "social_engineering"};

static void scan_dir(const char *dir, const struct detect_context *c)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[4096];
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            scan_dir(path, c);
            continue;
        }
        if (!S_ISREG(st.st_mode) || st.st_size > 20 * 1024 * 1024)
            continue;
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        char *msg = xmalloc((size_t)st.st_size + 1);
        size_t len = fread(msg, 1, (size_t)st.st_size, f);
        fclose(f);
        msg[len] = '\0';
        struct analysis *a = mime_analyse(msg, len, NULL);
        if (a) {
            detect_bec_run(a, msg, len, c);
            detect_social_run(a, msg, len, c);
            detect_graymail_run(a, msg, len, c);
            counts[0]++;
            for (size_t i = 0; i < a->ndetections; i++) {
                char k[128];
                snprintf(k, sizeof k, "%s/%s", a->detections[i].category, a->detections[i].name);
                for (size_t j = 1; j < 8; j++)
                    if (strcmp(k, count_names[j]) == 0 ||
                        (j == 7 && strcmp(a->detections[i].category, "social_engineering") == 0)) {
                        counts[j]++;
                        break;
                    }
                if (getenv("MOAT_HAM_VERBOSE") && strcmp(a->detections[i].category, "graymail") != 0)
                    printf("%s: %s/%s %.2f %s\n", path, a->detections[i].category, a->detections[i].name,
                           a->detections[i].score, a->detections[i].evidence);
            }
            analysis_free(a);
        }
        free(msg);
    }
    closedir(d);
}

static void test_ham_corpus(void **state)
{
    (void)state;
    const char *dirs = getenv("MOAT_HAM_DIRS");
    if (!dirs || !*dirs)
        skip();
    /* a tenant whose domains and executives appear in the SpamAssassin ham */
    static const char *const sa_own[] = {"jmason.org", "spamassassin.taint.org", "example.test"};
    static const struct detect_hp_user sa_hp[] = {
        {"Justin Mason", "jm@jmason.org"}, {"Taro Yamada", "ceo@example.test"}, {"山田太郎", "yamada@example.test"}};
    struct detect_context c = {0};
    c.own_domains = sa_own;
    c.nown_domains = 3;
    c.hp_users = sa_hp;
    c.nhp_users = 3;
    char *copy = xstrdup(dirs);
    for (char *p = copy, *q; p && *p; p = q) {
        q = strchr(p, ':');
        if (q)
            *q++ = '\0';
        scan_dir(p, &c);
    }
    free(copy);
    for (size_t j = 0; j < 8; j++)
        printf("ham %-30s %zu\n", count_names[j], counts[j]);
    assert_int_equal(counts[1], 0); /* no "engine" BEC false positive */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_match),      cmocka_unit_test(test_lookalike),
        cmocka_unit_test(test_bec_engine_en),   cmocka_unit_test(test_bec_engine_ja),
        cmocka_unit_test(test_bec_lookalike_sender), cmocka_unit_test(test_bec_replyto),
        cmocka_unit_test(test_bec_legitimate),  cmocka_unit_test(test_bec_freemail_pressure),
        cmocka_unit_test(test_social),          cmocka_unit_test(test_graymail),
        cmocka_unit_test(test_style_detect),    cmocka_unit_test(test_style_file),
        cmocka_unit_test(test_ham_corpus),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
