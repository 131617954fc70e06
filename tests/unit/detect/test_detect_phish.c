/* test_detect_phish.c - phishing and web reputation detectors: each signal
 * on a crafted message and its legitimate counterpart, the domain helpers,
 * the lists' precedence, URI DNSBL lookups against a fake DNS server, and a
 * measurement over ../shared/corpus (ja/phish recall; mime + SpamAssassin
 * ham false positives), skipped when the corpus is absent. */
#include "core/core.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "detect/detect_int.h"
#include "mime/mime.h"

static const struct detect_context none;

static struct analysis *scan(const char *msg, const struct detect_context *ctx)
{
    struct analysis *a = mime_analyse(msg, strlen(msg), NULL);
    assert_non_null(a);
    detect_phish_run(a, msg, strlen(msg), ctx ? ctx : &none);
    detect_webrep_run(a, msg, strlen(msg), ctx ? ctx : &none);
    return a;
}

static const struct detection *find(const struct analysis *a, const char *cat, const char *name)
{
    for (size_t i = 0; i < a->ndetections; i++)
        if (strcmp(a->detections[i].category, cat) == 0 &&
            (!name || strcmp(a->detections[i].name, name) == 0))
            return &a->detections[i];
    return NULL;
}

static double best(const struct analysis *a, const char *cat)
{
    double b = 0;
    for (size_t i = 0; i < a->ndetections; i++)
        if (strcmp(a->detections[i].category, cat) == 0 && a->detections[i].score > b)
            b = a->detections[i].score;
    return b;
}

static void dump(const struct analysis *a)
{
    for (size_t i = 0; i < a->ndetections; i++)
        print_message("  %s/%s %.2f %s\n", a->detections[i].category, a->detections[i].name,
                      a->detections[i].score, a->detections[i].evidence);
}

/* expect - the signal name fires with at least min (and message-level
 * phishing reaches PHISH_T_MATCH when confident) */
static void expect(const char *msg, const struct detect_context *ctx, const char *name, double min,
                   bool confident)
{
    struct analysis *a = scan(msg, ctx);
    const struct detection *d = find(a, "phishing", name);
    if (!d || d->score < min || (best(a, "phishing") >= PHISH_T_MATCH) != confident) {
        print_message("expected %s >= %.2f (confident %d) in:\n%s\n", name, min, confident, msg);
        dump(a);
    }
    assert_non_null(d);
    assert_true(d->score >= min);
    assert_true((best(a, "phishing") >= PHISH_T_MATCH) == confident);
    assert_true(d->evidence && *d->evidence);
    analysis_free(a);
}

static void expect_clean(const char *msg, const struct detect_context *ctx)
{
    struct analysis *a = scan(msg, ctx);
    if (find(a, "phishing", NULL)) {
        print_message("expected no phishing detection in:\n%s\n", msg);
        dump(a);
    }
    assert_null(find(a, "phishing", NULL));
    analysis_free(a);
}

#define HDR                                                                                                  \
    "From: Shop <news@shop.example.com>\nTo: user@example.org\nSubject: hello\nDate: Mon, 1 Jan 2024 "       \
    "00:00:00 +0000\nMessage-ID: <1@shop.example.com>\n"
#define HTML HDR "MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n"

static void test_link_text(void **state)
{
    (void)state;
    expect(HTML "<p><a href=\"http://mufg-login.example.xyz/\">www.mufg.jp</a></p>\n", NULL,
           "link-text-mismatch", 0.7, true);
    /* a bare domain as text, any site: weak alone */
    expect(HTML "<p><a href=\"http://tracker.other.example/x\">https://www.shop-news.example.net/</a></p>\n",
           NULL, "link-text-mismatch", 0.4, false);
    /* the legitimate counterparts */
    expect_clean(HTML "<p><a href=\"https://www.mufg.jp/login\">www.mufg.jp</a></p>\n", NULL);
    expect_clean(HTML "<p><a href=\"https://direct.bk.mufg.jp/\">https://www.mufg.jp/</a></p>\n", NULL);
    expect_clean(HTML "<p><a href=\"https://www.amazon.com/x\">amazon.co.jp</a></p>\n", NULL);
    expect_clean(HTML "<p><a href=\"https://u1.ct.sendgrid.net/ls/click?x=1\">www.shop.example.com</a></p>\n",
                 NULL);
    expect_clean(HTML "<p><a href=\"https://r.example.net/c?dest=https%3A%2F%2Fwww.shop.example.com%2F\">"
                      "www.shop.example.com</a></p>\n",
                 NULL);
    expect_clean(HTML "<p><a href=\"https://github.com/x/y/blob/main/README.md\">README.md</a> and "
                      "<a href=\"https://example.org/\">click here</a></p>\n",
                 NULL);
}

static void test_ip_hosts(void **state)
{
    (void)state;
    expect(HTML "<a href=\"http://203.0.113.5/login\">Sign in</a>\n", NULL, "ip-literal-host", 0.6, true);
    expect(HTML "<a href=\"http://[2001:db8::1]/secure/x\">Sign in</a>\n", NULL, "ip-literal-host", 0.6,
           true);
    expect(HTML "<a href=\"http://203.0.113.5/catalogue\">shop</a>\n", NULL, "ip-literal-host", 0.45, false);
    expect(HTML "<a href=\"http://3405803781/login\">Sign in</a>\n", NULL, "ip-obfuscated-host", 0.8, true);
    expect(HTML "<a href=\"http://0xCB007105/login\">Sign in</a>\n", NULL, "ip-obfuscated-host", 0.8, true);
    expect(HTML "<a href=\"http://0313.0.0161.05/login\">Sign in</a>\n", NULL, "ip-obfuscated-host", 0.8,
           true);
    expect(HDR "\nsee http://203.0.113.5/report\n", NULL, "ip-literal-host", 0.3, false);
    /* private addresses (a router's page in a help-desk mail) and none */
    expect_clean(HTML
                 "<a href=\"http://192.168.1.1/\">router</a> <a href=\"http://127.0.0.1:8080/\">local</a>\n",
                 NULL);
    expect_clean(HDR "\nversion 1.2.3.4 of the tool; 10.0.0.1 is the gateway\n", NULL);
    assert_true(phish_ip_host("3232235777"));
    assert_true(phish_ip_host("0xc0.0250.1.1"));
    assert_true(phish_ip_host("[::1]"));
    assert_false(phish_ip_host("example.com"));
    assert_false(phish_ip_host("1example.com"));
}

static void test_homograph(void **state)
{
    (void)state;
    /* Cyrillic а (U+0430) in apple.com */
    expect(HTML "<a href=\"http://www.\xd0\xb0pple.com/id\">Apple ID</a>\n", NULL, "homograph-host", 0.85,
           true);
    /* mixed Latin + Greek omicron, no brand */
    expect(HTML "<a href=\"http://sh\xce\xbfp-example.com/\">shop</a>\n", NULL, "homograph-host", 0.7, true);
    /* ASCII confusables: rn for m, 0 for o, 1 for l */
    expect(HTML "<a href=\"https://rnicrosoft.com/\">Office</a>\n", NULL, "lookalike-domain", 0.85, true);
    expect(HTML "<a href=\"https://paypa1.com/\">PayPal</a>\n", NULL, "lookalike-domain", 0.85, true);
    /* legitimate IDNs: Japanese, all-Cyrillic words */
    expect_clean(HTML "<a href=\"http://\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e.jp/\">x</a>\n", NULL);
    expect_clean(
        HTML "<a href=\"http://\xd0\xbf\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1\x80.\xd1\x80\xd1\x84/\">x</a>\n",
        NULL);
    char s[128];
    phish_skeleton("rnicr0s0ft", s, sizeof s);
    assert_string_equal(s, "microsoft");
    phish_skeleton("\xd0\xb0pp\xd3\x8f\xd0\xb5", s, sizeof s); /* аррӏе */
    assert_string_equal(s, "apple");
    phish_skeleton("\xef\xbd\x90\xef\xbd\x81yp\xe2\x80\x8b"
                   "al",
                   s, sizeof s); /* ｐａyp<ZWSP>al */
    assert_string_equal(s, "paypal");
}

static void test_lookalike(void **state)
{
    (void)state;
    static const char *const own[] = {"example-corp.co.jp"};
    static const char *const hp[] = {"partner-bank.com"};
    struct detect_context ctx = {.own_domains = own, .nown_domains = 1, .hp_domains = hp, .nhp_domains = 1};
    expect(HTML "<a href=\"https://rakutem.co.jp/\">x</a>\n", NULL, "lookalike-domain", 0.7, true);
    expect(HTML "<a href=\"https://mercary.com/\">x</a>\n", NULL, "lookalike-domain", 0.7, true);
    /* short names: weak alone */
    expect(HTML "<a href=\"https://amazom.co.jp/\">x</a>\n", NULL, "lookalike-domain", 0.45, false);
    /* the tenant's own and high-profile domains */
    expect("From: CEO <ceo@exarnple-corp.co.jp>\nSubject: hi\n\nplease call me\n", &ctx, "lookalike-domain",
           0.85, true);
    expect(HTML "<a href=\"https://partnerbank.com/pay\">pay</a>\n", &ctx, "lookalike-domain", 0.7, true);
    expect(HTML "<a href=\"https://example-corp-co-jp.login.example.top/\">x</a>\n", &ctx, "brand-in-domain",
           0.6, true);
    /* the real domains */
    expect_clean(
        "From: CEO <ceo@example-corp.co.jp>\nSubject: hi\n\nsee https://www.example-corp.co.jp/news and "
        "https://partner-bank.com/\n",
        &ctx);
    expect_clean(
        HTML "<a href=\"https://www.rakuten.co.jp/\">x</a> <a href=\"https://paypay.ne.jp/\">y</a>\n", NULL);
    assert_int_equal(phish_edit_distance("amazon", "amazno"), 1);
    assert_int_equal(phish_edit_distance("rakuten", "rakutem"), 1);
    assert_int_equal(phish_edit_distance("", "abc"), 3);
    char r[256];
    detect_registrable("a.b.example.co.jp", r, sizeof r);
    assert_string_equal(r, "example.co.jp");
    detect_registrable("direct.bk.mufg.jp", r, sizeof r);
    assert_string_equal(r, "mufg.jp");
    detect_registrable("evil-amazon.web.app", r, sizeof r);
    assert_string_equal(r, "evil-amazon.web.app");
    detect_registrable("WWW.Example.COM", r, sizeof r);
    assert_string_equal(r, "example.com");
    detect_registrable("com", r, sizeof r);
    assert_string_equal(r, "com");
    detect_registrable("", r, sizeof r);
    assert_string_equal(r, "");
    assert_true(detect_host_in("a.example.com", "example.com"));
    assert_false(detect_host_in("badexample.com", "example.com"));
}

static void test_brand(void **state)
{
    (void)state;
    expect(HTML "<a href=\"https://amazon-co-jp.security-check.xyz/signin\">sign in</a>\n", NULL,
           "brand-in-domain", 0.6, true);
    expect("From: =?UTF-8?B?QW1hem9uLmNvLmpw?= <account@amaz-support.example>\nSubject: "
           "=?UTF-8?B?44Ki44Kr44Km44Oz44OI56K66KqN?=\nMIME-Version: 1.0\nContent-Type: text/html; "
           "charset=utf-8\n\n"
           "<a href=\"https://verify.example.top/\">Login</a>\n",
           NULL, "brand-impersonation", 0.6, true);
    /* zero-width characters inside the name (U+2064) do not hide it */
    expect("From: Coin\xe2\x81\xa4"
           "check <admin@ywywt.example>\nSubject: notice\n\nhttps://x.example.net/\n",
           NULL, "brand-impersonation", 0.44, false);
    expect("From: Coin\xe2\x81\xa4"
           "check <admin@ywywt.example>\nSubject: =?UTF-8?B?44Ki44Kr44Km44Oz44OI5YGc5q2i?=\n\n"
           "https://x.example.net/\n",
           NULL, "brand-impersonation", 0.6, true);
    /* the brand's own mail, and brands named in ordinary mail */
    expect_clean("From: Amazon.co.jp <auto-confirm@amazon.co.jp>\nSubject: "
                 "=?UTF-8?B?44Ki44Kr44Km44Oz44OI56K66KqN?=\n\n"
                 "https://www.amazon.co.jp/gp/css\n",
                 NULL);
    expect_clean("From: Bob <bob@example.org>\nSubject: apple pie recipe\n\nhttps://recipes.example.org/\n",
                 NULL);
    /* brand in the subject, lure only in the body (a list discussing Apple): weak;
     * the lure in the subject itself ("[Apple] account locked"): confident */
    expect("From: Lists <lists@news.example.org>\nSubject: Apple ships a new laptop\n\nMy account was "
           "locked after the update, see https://forum.example.org/t/1\n",
           NULL, "brand-impersonation", 0.4, false);
    expect("From: Support <no-reply@sxamyl.example>\nSubject: [Apple] account locked\n\n"
           "https://x.example.net/unlock\n",
           NULL, "brand-impersonation", 0.54, true);
    struct analysis *a = scan("From: Bob <bob@example.org>\nSubject: Re: Apple laptop review\n\nsee "
                              "https://reviews.example.org/\n",
                              NULL);
    assert_true(best(a, "phishing") < PHISH_T_MATCH);
    analysis_free(a);
}

#define MULTI                                                                                                \
    "From: Bank <info@bank.example>\nSubject: statement\nMIME-Version: 1.0\nContent-Type: multipart/mixed; " \
    "boundary=b\n\n--b\nContent-Type: text/plain\n\nsee attached\n--b\nContent-Type: text/html; "            \
    "name=\"s.html\"\n"                                                                                      \
    "Content-Disposition: attachment; filename=\"s.html\"\n\n"

static void test_forms(void **state)
{
    (void)state;
    expect(MULTI "<html><form action=\"https://collect.example.top/p.php\" method=post>"
                 "<input type=\"email\" name=u><input type=\"password\" name=p></form></html>\n--b--\n",
           NULL, "credential-form", 0.85, true);
    expect(MULTI
           "<html><form method=post action='http://c.example.net/x'><input name=card></form></html>\n--b--\n",
           NULL, "credential-form", 0.7, true);
    expect(MULTI "<html><script>window.location.href = 'https://evil.example.top/';</script></html>\n--b--\n",
           NULL, "credential-form", 0.6, true);
    expect(HDR "MIME-Version: 1.0\nContent-Type: text/html\nContent-Transfer-Encoding: quoted-printable\n\n"
               "<form action=3D\"https://x.example.top/\"><input type=3D\"password\" name=3Dp></form>\n",
           NULL, "credential-form", 0.7, true);
    /* a widget's search form in an HTML attachment (seen in real ham): weak alone */
    expect(MULTI "<html><form action=\"http://wwwa.weather.example/forecast.asp\"><input name=zipcode>"
                 "</form></html>\n--b--\n",
           NULL, "credential-form", 0.4, false);
    /* a body search form posting elsewhere: weaker still */
    expect(HTML "<form action=\"https://www.bookshop.example.org/search\"><input name=q></form>\n", NULL,
           "credential-form", 0.3, false);
    /* an HTML attachment that is just a document; a body form to the sender */
    expect_clean(MULTI "<html><body><h1>Statement</h1><p>Total 100</p></body></html>\n--b--\n", NULL);
    expect_clean(HTML "<form action=\"https://www.shop.example.com/search\"><input name=q></form>\n", NULL);
    /* a password field written about in plain text is not a form */
    expect_clean(HDR "\nuse <input type=\"password\"> in your <form> for this\n", NULL);
}

static void test_shorteners(void **state)
{
    (void)state;
    expect(HTML "<a href=\"https://bit.ly/3AbCdEf\">read more</a>\n", NULL, "url-shortener", 0.25, false);
    expect(HTML "<a href=\"https://www.google.com/url?q=https://evil.example.top/x\">x</a>\n", NULL,
           "open-redirect", 0.3, false);
    expect(HTML "<a href=\"https://t.example.net/r?url=http%3A%2F%2Fevil.example.top%2F\">x</a>\n", NULL,
           "open-redirect", 0.3, false);
    expect_clean(HTML "<a href=\"https://www.shop.example.com/p?id=3&next=/cart\">x</a>\n", NULL);
    expect_clean(HTML "<a href=\"https://www.shop.example.com/p?url=https://www.shop.example.com/a\">x</a>\n",
                 NULL);
    /* two weak signals combine; the combination is noisy-OR */
    struct analysis *a =
        scan(HTML "<a href=\"https://bit.ly/x\">a</a> <a href=\"http://203.0.113.9/\">b</a>\n", NULL);
    const struct detection *c = find(a, "phishing", "phishing-combined");
    assert_non_null(c);
    assert_true(c->score > 0.58 && c->score < 0.59); /* 1 - 0.75 * 0.55 */
    analysis_free(a);
}

static void test_webrep(void **state)
{
    (void)state;
    const char *msg = HDR "\nvisit " WEBREP_TEST_URL " and http://sub.moat-test-blocked.example/x\n";
    struct analysis *a = scan(msg, NULL);
    const struct detection *d = find(a, "web_reputation", "url-blocklist");
    assert_non_null(d);
    assert_true(d->score >= 0.9);
    assert_non_null(strstr(d->evidence, "moat-test-blocked.example"));
    analysis_free(a);
    /* approved beats the shipped list; tenant-blocked beats approved */
    static const char *const ok[] = {"moat-test-blocked.example"};
    struct detect_context ctx = {.url_approved = ok, .nurl_approved = 1};
    a = scan(msg, &ctx);
    assert_null(find(a, "web_reputation", NULL));
    analysis_free(a);
    static const char *const bad[] = {"sub.moat-test-blocked.example", "example.org/bad/"};
    ctx.url_blocked = bad;
    ctx.nurl_blocked = 2;
    a = scan(msg, &ctx);
    d = find(a, "web_reputation", "url-blocked-tenant");
    assert_non_null(d);
    assert_true(d->score == 1.0);
    assert_non_null(strstr(d->evidence, "sub.moat-test-blocked.example"));
    analysis_free(a);
    /* URL prefixes */
    a = scan(HDR "\nhttp://example.org/bad/x and https://example.org/good\n", &ctx);
    d = find(a, "web_reputation", "url-blocked-tenant");
    assert_non_null(d);
    assert_non_null(strstr(d->evidence, "example.org/bad/x"));
    assert_null(strstr(d->evidence, "good"));
    analysis_free(a);
    /* nothing listed */
    a = scan(HDR "\nhttps://www.example.com/ https://moat-test-blocked.example.com/\n", NULL);
    assert_null(find(a, "web_reputation", NULL));
    analysis_free(a);
}

/* test_hostile - many near-brand hosts and script tags stay bounded */
static void test_hostile(void **state)
{
    (void)state;
    struct buf m;
    buf_init(&m, 8 * 1024 * 1024);
    buf_append_str(&m, HTML "<html>");
    for (int i = 0; i < 3000; i++)
        buf_printf(
            &m,
            "<a href=\"http://amazom-%d.rakutem-%d.mercary-%d.paypa1-x%d.example.com/\">www.mufg.jp</a>\n", i,
            i, i, i);
    for (int i = 0; i < 5000; i++)
        buf_append_str(&m, "<script>var a = 1;</script><form><input type=password>");
    buf_append_str(&m, "</html>\n");
    double t0 = core_monotonic();
    struct analysis *a = scan(buf_cstr(&m), NULL);
    double dt = core_monotonic() - t0;
    print_message("hostile message: %zu URLs, %.2f s\n", a->nurls, dt);
    assert_true(dt < 20);
    assert_non_null(find(a, "phishing", "link-text-mismatch"));
    analysis_free(a);
    buf_free(&m);
}

/* ---------------------------------------------------------------- fake DNS */

struct fake_dns {
    int fd;
    uint16_t port;
    volatile bool stop;
    unsigned queries;
};

/* fake_dns_main - answer A queries: 127.0.0.2 for names starting with
 * "listed", 127.255.255.254 for "refused", NXDOMAIN otherwise */
static void *fake_dns_main(void *arg)
{
    struct fake_dns *f = arg;
    while (!f->stop) {
        unsigned char q[512], r[600];
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(f->fd, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
        if (n < 17)
            continue;
        f->queries++;
        size_t qend = 12;
        while (qend < (size_t)n && q[qend])
            qend += q[qend] + 1;
        qend += 5; /* root label, type, class */
        if (qend > (size_t)n)
            continue;
        memcpy(r, q, qend);
        r[2] = 0x84 | (q[2] & 1); /* QR, AA, RD copied */
        r[3] = 0x80;
        r[6] = r[7] = r[8] = r[9] = r[10] = r[11] = 0;
        size_t len = qend;
        bool listed = q[12] >= 6 && memcmp(q + 13, "listed", 6) == 0;
        bool refused = q[12] >= 7 && memcmp(q + 13, "refused", 7) == 0;
        if (listed || refused) {
            r[7] = 1;
            static const unsigned char rr[] = {0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
            memcpy(r + len, rr, sizeof rr);
            len += sizeof rr;
            const unsigned char ip[4] = {127, listed ? 0 : 255, listed ? 0 : 255, listed ? 2 : 254};
            memcpy(r + len, ip, 4);
            len += 4;
        } else {
            r[3] = 0x83; /* NXDOMAIN */
        }
        sendto(f->fd, r, len, 0, (struct sockaddr *)&from, fl);
    }
    return NULL;
}

static void test_uribl(void **state)
{
    (void)state;
    struct fake_dns f = {.stop = false};
    f.fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(f.fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f.fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    getsockname(f.fd, (struct sockaddr *)&sa, &sl);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    setsockopt(f.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    pthread_t th;
    pthread_create(&th, NULL, fake_dns_main, &f);

    struct moat_config cfg;
    config_defaults(&cfg);
    char server[64], err[300];
    snprintf(server, sizeof server, "127.0.0.1:%u", ntohs(sa.sin_port));
    assert_null(config_set(&cfg, "dns_server", server));
    assert_null(config_set(&cfg, "uribl_zones", "uribl.test, second.test"));
    assert_null(config_set(&cfg, "uribl_timeout_ms", "3000"));
    assert_non_null(config_set(&cfg, "uribl_timeout_ms", "99"));
    assert_non_null(config_set(&cfg, "uribl_timeout_ms", "30001"));
    assert_int_equal(detect_webrep_init(&cfg, err, sizeof err), 0);

    struct analysis *a = scan(HDR "\nhttp://www.listed-site.example/ http://refused-site.example/ "
                                  "http://clean.example/\n",
                              NULL);
    const struct detection *d = find(a, "web_reputation", "uribl");
    assert_non_null(d);
    assert_non_null(strstr(d->evidence, "listed-site.example"));
    assert_non_null(strstr(d->evidence, "127.0.0.2"));
    size_t n = 0;
    for (size_t i = 0; i < a->ndetections; i++)
        n += strcmp(a->detections[i].name, "uribl") == 0;
    assert_int_equal(n, 2); /* one per zone; the refused code is not a listing */
    analysis_free(a);
    /* approved URLs are not looked up; more than 20 names are capped */
    unsigned before = f.queries;
    static const char *const ok[] = {"listed-site.example"};
    struct detect_context ctx = {.url_approved = ok, .nurl_approved = 1};
    a = scan(HDR "\nhttp://www.listed-site.example/\n", &ctx);
    assert_null(find(a, "web_reputation", NULL));
    assert_int_equal(f.queries, before);
    analysis_free(a);
    struct buf m;
    buf_init(&m, 100000);
    buf_append_str(&m, HDR "\n");
    for (int i = 0; i < 30; i++)
        buf_printf(&m, "http://d%d.example/\n", i);
    a = scan(buf_cstr(&m), NULL);
    assert_non_null(find(a, "scan_exclusion", "uribl-incomplete"));
    assert_true(f.queries - before <= 2 * WEBREP_MAX_DNS_DOMAINS);
    analysis_free(a);
    buf_free(&m);

    /* a server that does not answer: bounded by uribl_timeout_ms */
    f.stop = true;
    pthread_join(th, NULL);
    assert_null(config_set(&cfg, "uribl_timeout_ms", "1000"));
    assert_int_equal(detect_webrep_init(&cfg, err, sizeof err), 0);
    double t0 = core_monotonic();
    a = scan(HDR "\nhttp://listed-a.example/ http://listed-b.example/\n", NULL);
    assert_null(find(a, "web_reputation", "uribl"));
    assert_non_null(find(a, "scan_exclusion", "uribl-incomplete"));
    assert_true(core_monotonic() - t0 < 3.5);
    analysis_free(a);
    close(f.fd);
    /* off again */
    assert_null(config_set(&cfg, "uribl_zones", ""));
    assert_int_equal(detect_webrep_init(&cfg, err, sizeof err), 0);
    assert_null(config_set(&cfg, "uribl_zones", "bad zone!"));
    assert_int_equal(detect_webrep_init(&cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "uribl_zones"));
    assert_null(config_set(&cfg, "uribl_zones", ""));
    assert_int_equal(detect_webrep_init(&cfg, err, sizeof err), 0);
    config_free(&cfg);
}

/* ---------------------------------------------------------------- corpus */

struct tally {
    size_t n, hit;
    char examples[5][200];
    size_t nex;
};

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    struct stat st;
    if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > 20 * 1024 * 1024) {
        fclose(fp);
        return NULL;
    }
    char *b = xmalloc((size_t)st.st_size + 1);
    *len = fread(b, 1, (size_t)st.st_size, fp);
    b[*len] = '\0';
    fclose(fp);
    return b;
}

static void scan_file(const char *path, struct tally *t)
{
    size_t len;
    char *msg = slurp(path, &len);
    if (!msg)
        return;
    struct analysis *a = mime_analyse(msg, len, NULL);
    if (a) {
        detect_phish_run(a, msg, len, &none);
        t->n++;
        if (best(a, "phishing") >= PHISH_T_MATCH) {
            t->hit++;
            if (t->nex < 5) {
                const char *why = "";
                double b = 0;
                for (size_t i = 0; i < a->ndetections; i++)
                    if (strcmp(a->detections[i].category, "phishing") == 0 && a->detections[i].score > b &&
                        strcmp(a->detections[i].name, "phishing-combined") != 0) {
                        b = a->detections[i].score;
                        why = a->detections[i].evidence;
                    }
                const char *base = strrchr(path, '/');
                snprintf(t->examples[t->nex++], sizeof t->examples[0], "%s: %s", base ? base + 1 : path, why);
            }
        }
        analysis_free(a);
    }
    free(msg);
}

static void scan_tree(const char *dir, struct tally *t, unsigned depth)
{
    DIR *d = opendir(dir);
    if (!d || depth > 6) {
        if (d)
            closedir(d);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "README.md") == 0 || strstr(e->d_name, ".tsv"))
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode))
            scan_tree(p, t, depth + 1);
        else
            scan_file(p, t);
    }
    closedir(d);
}

static void report(const char *what, const struct tally *t)
{
    print_message("%-34s %5zu messages, %4zu with phishing >= %.1f (%.2f %%)\n", what, t->n, t->hit,
                  PHISH_T_MATCH, t->n ? 100.0 * (double)t->hit / (double)t->n : 0.0);
    for (size_t i = 0; i < t->nex; i++)
        print_message("    %s\n", t->examples[i]);
}

static void test_corpus(void **state)
{
    (void)state;
    const char *corpus = getenv("MOAT_CORPUS");
    char p[4096];
    struct stat st;
    if (!corpus || stat(corpus, &st) < 0) {
        print_message("corpus measurement skipped: MOAT_CORPUS (%s) not found\n", corpus ? corpus : "unset");
        skip();
    }
    struct tally phish = {0}, mime = {0}, easy = {0}, hard = {0};
    snprintf(p, sizeof p, "%s/ja/phish", corpus);
    if (stat(p, &st) == 0) {
        scan_tree(p, &phish, 0);
        report("ja/phish (recall)", &phish);
        assert_true(phish.hit * 100 >= phish.n * 80);
    } else {
        print_message("ja/phish absent: recall not measured\n");
    }
    snprintf(p, sizeof p, "%s/mime", corpus);
    if (stat(p, &st) == 0) {
        scan_tree(p, &mime, 0);
        report("mime (parser tests, FP)", &mime);
    }
    /* SpamAssassin ham from the TRAIN archives */
    char tmp[] = "/tmp/moat-phish-XXXXXX";
    if (!mkdtemp(tmp))
        return;
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "for f in '%s'/spam/spamassassin-train-*.tar.zst; do [ -f \"$f\" ] && zstd -qdc \"$f\" | tar -x "
             "-C '%s' "
             "--wildcards '*ham*' 2>/dev/null; done; true",
             corpus, tmp);
    if (system(cmd) == 0) {
        snprintf(p, sizeof p, "%s/spamassassin/easy_ham", tmp);
        scan_tree(p, &easy, 0);
        snprintf(p, sizeof p, "%s/spamassassin/easy_ham_2", tmp);
        scan_tree(p, &easy, 0);
        snprintf(p, sizeof p, "%s/spamassassin/hard_ham", tmp);
        scan_tree(p, &hard, 0);
        report("spamassassin easy_ham (FP)", &easy);
        report("spamassassin hard_ham (FP)", &hard);
        if (easy.n)
            assert_true(easy.hit * 1000 < easy.n * 5); /* < 0.5 % */
    } else {
        print_message("spamassassin archives not extracted: FP not measured\n");
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        print_message("could not remove %s\n", tmp);
}

static int setup(void **state)
{
    (void)state;
    char err[512];
    if (detect_phish_init(NULL, err, sizeof err) < 0 || detect_webrep_init(NULL, err, sizeof err) < 0) {
        fprintf(stderr, "init: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    detect_phish_shutdown();
    detect_webrep_shutdown();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_link_text),  cmocka_unit_test(test_ip_hosts), cmocka_unit_test(test_homograph),
        cmocka_unit_test(test_lookalike),  cmocka_unit_test(test_brand),    cmocka_unit_test(test_forms),
        cmocka_unit_test(test_shorteners), cmocka_unit_test(test_webrep),   cmocka_unit_test(test_uribl),
        cmocka_unit_test(test_hostile),    cmocka_unit_test(test_corpus),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
