/*
 * test_mime_text.c - table-driven tests of the pieces under the analysis:
 * URL normalisation (mime_url.c), charset decoding and RFC 2047
 * (mime_text.c): good, empty, truncated, oversize, NUL, 8-bit and
 * mislabelled inputs, each with its exact expected result.
 */
#include "core/core.h"

#include <setjmp.h>
#include <cmocka.h>

#include "mime/mime_int.h"

static void test_url_normalise(void **state)
{
    static const struct {
        const char *in, *url, *host, *host_unicode; /* url NULL: rejected */
    } cases[] = {
        {"HTTP://WWW.Example.COM:80/a/%7Euser/%41%2fb", "http://www.example.com/a/~user/A%2Fb",
         "www.example.com", "www.example.com"},
        {"https://secure.example:443", "https://secure.example/", "secure.example", "secure.example"},
        {"http://example.net:8080/x", "http://example.net:8080/x", "example.net", "example.net"},
        {"ftp://files.example:21/f", "ftp://files.example/f", "files.example", "files.example"},
        {"http://%65vil.example/", "http://evil.example/", "evil.example", "evil.example"},
        {"http://3232235777/", "http://192.168.1.1/", "192.168.1.1", "192.168.1.1"},
        {"http://0xC0.0250.1.1/x", "http://192.168.1.1/x", "192.168.1.1", "192.168.1.1"},
        {"https://www.bank.example@phish.example/l", "https://www.bank.example@phish.example/l",
         "phish.example", "phish.example"},
        {"https://раураl.com/", "https://xn--l-7sba6dbr.com/", "xn--l-7sba6dbr.com", "раураl.com"},
        {"http://xn--r8jz45g.xn--zckzah/", "http://xn--r8jz45g.xn--zckzah/", "xn--r8jz45g.xn--zckzah",
         "例え.テスト"},
        {"http://例え。テスト/", "http://xn--r8jz45g.xn--zckzah/", "xn--r8jz45g.xn--zckzah", "例え.テスト"},
        {"www.bare.example", "http://www.bare.example/", "www.bare.example", "www.bare.example"},
        {"//cdn.example/a b", "http://cdn.example/a%20b", "cdn.example", "cdn.example"},
        {"http:\\\\back.example\\x", "http://back.example/x", "back.example", "back.example"},
        {"  <http://ws.example/\t/p>  ", "http://ws.example//p", "ws.example", "ws.example"},
        {"http://Example.com./", "http://example.com/", "example.com", "example.com"},
        {"http://[2001:DB8::1]:8080/", "http://[2001:db8::1]:8080/", "[2001:db8::1]", "[2001:db8::1]"},
        {"mailto:a@b.example", NULL, NULL, NULL},
        {"javascript:alert(1)", NULL, NULL, NULL},
        {"http://", NULL, NULL, NULL},
        {"http://host.example:99999/", NULL, NULL, NULL},
        {"http://bad<host>.example/", NULL, NULL, NULL},
        {"/relative/path", NULL, NULL, NULL},
        {"", NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *host = NULL, *hu = NULL;
        char *url = mime_url_normalise(cases[i].in, strlen(cases[i].in), &host, &hu);
        if (!cases[i].url) {
            if (url)
                fail_msg("%s: expected rejection, got %s", cases[i].in, url);
            continue;
        }
        if (!url)
            fail_msg("%s: rejected", cases[i].in);
        assert_string_equal(url, cases[i].url);
        assert_string_equal(host, cases[i].host);
        assert_string_equal(hu, cases[i].host_unicode);
        free(url);
        free(host);
        free(hu);
    }
    /* oversize: over 8 KB is not a URL we keep */
    char big[9000];
    memset(big, 'a', sizeof big);
    memcpy(big, "http://x.example/", 17);
    assert_null(mime_url_normalise(big, sizeof big, NULL, NULL));
    (void)state;
}

static void test_url_scan(void **state)
{
    struct analysis a;
    memset(&a, 0, sizeof a);
    const char *text = "see (https://paren.example/a_(b)) and https://dot.example/x. "
                       "日本 https://example.jp/ページ and http://a.example/x http://A.EXAMPLE:80/x";
    mime_url_scan_text(&a, text, strlen(text));
    assert_int_equal(a.nurls, 4);
    assert_string_equal(a.urls[0].url, "https://paren.example/a_(b)");
    assert_string_equal(a.urls[1].url, "https://dot.example/x");
    assert_string_equal(a.urls[2].url, "https://example.jp/");
    assert_string_equal(a.urls[3].url, "http://a.example/x"); /* the second is a duplicate */
    for (size_t i = 0; i < a.nurls; i++) {
        free(a.urls[i].url);
        free(a.urls[i].host);
        free(a.urls[i].host_unicode);
        free(a.urls[i].text);
        free(a.urls[i].source);
    }
    free(a.urls);
    (void)state;
}

static void test_charsets(void **state)
{
    static const struct {
        const char *label, *in, *out, *used;
    } cases[] = {
        {"utf-8", "caf\xC3\xA9", "café", "utf-8"},
        {"iso-8859-1", "caf\xE9 \x80", "café €", "windows-1252"}, /* WHATWG: Latin-1 is windows-1252 */
        {"Shift_JIS", "\x82\xA0\x87\x40", "あ①", "cp932"},        /* NEC row 13 */
        {"euc-jp", "\xA4\xA2\xA4\xA4", "あい", "euc-jp"},
        {"iso-2022-jp", "\x1B$B$\"-!\x1B(B!", "あ①!", "iso-2022-jp"}, /* CP50221 circled digit */
        {"iso-2022-jp", "\x1B(I1\x1B(B", "ｱ", "iso-2022-jp"},         /* half-width katakana */
        {"x-unknown", "\xE3\x81\x82", "あ", "utf-8"},                 /* bad label: sniffed */
        {"us-ascii", "\x82\xA0\x82\xA2", "あい", "cp932"},            /* 8-bit under us-ascii: sniffed */
        {NULL, "\x1B$B$\"\x1B(B", "あ", "iso-2022-jp"},               /* no label, JIS escapes */
        /* UTF-8 with a stray byte stays UTF-8 (U+FFFD); without any real
         * multi-byte character it is a mislabel, decoded as windows-1252 */
        {"utf-8", "\xE3\x81\x82\xFF", "あ\xEF\xBF\xBD", "utf-8"},
        {"utf-8", "caf\xE9", "café", "windows-1252"},
        {"utf-8", "", "", "utf-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n;
        const char *used = NULL;
        char *out = mime_text_to_utf8(cases[i].label, cases[i].in, strlen(cases[i].in), 1024, &n, &used);
        if (strcmp(out, cases[i].out) != 0)
            fail_msg("case %zu (%s): got \"%s\", expected \"%s\"", i,
                     cases[i].label ? cases[i].label : "none", out, cases[i].out);
        assert_int_equal(n, strlen(out));
        assert_string_equal(used, cases[i].used);
        free(out);
    }
    /* NUL inside text becomes a space; output bounded at a character boundary */
    size_t n;
    char *out = mime_text_to_utf8("utf-8", "a\0b", 3, 1024, &n, NULL);
    assert_string_equal(out, "a b");
    free(out);
    out = mime_text_to_utf8("utf-8", "ああ", 6, 4, &n, NULL);
    assert_string_equal(out, "あ");
    assert_int_equal(n, 3);
    free(out);
    /* a truncated multi-byte sequence at the end */
    out = mime_text_to_utf8("Shift_JIS", "\x82", 1, 1024, &n, NULL);
    assert_true(mime_utf8_valid(out, n));
    free(out);
    (void)state;
}

static void test_rfc2047(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"=?utf-8?B?5pel5pys?=", "日本"},
        {"=?utf-8?Q?Caf=C3=A9_Bot?= <x@y>", "Café Bot <x@y>"},
        {"a =?utf-8?q?b?= =?utf-8?q?c?= d", "a bc d"}, /* white space between words dropped */
        {"=?ISO-2022-JP?B?GyRCJDIbKEI=?=", "げ"},
        /* one character split over two words (joined before decoding) */
        {"=?utf-8?B?5pe=?= =?utf-8?B?pQ==?=", "日"},
        {"=?iso-2022-jp?B?GyRCLSEbKEI=?=", "①"},
        {"=?unknown?Q?abc?=", "abc"},
        {"=?utf-8?X?abc?=", "=?utf-8?X?abc?="}, /* not an encoded-word */
        {"=?utf-8?B?broken", "=?utf-8?B?broken"},
        {"plain", "plain"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = mime_rfc2047_decode(cases[i].in, strlen(cases[i].in), 1024);
        if (strcmp(out, cases[i].out) != 0)
            fail_msg("%s: got \"%s\", expected \"%s\"", cases[i].in, out, cases[i].out);
        free(out);
    }
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_normalise),
        cmocka_unit_test(test_url_scan),
        cmocka_unit_test(test_charsets),
        cmocka_unit_test(test_rfc2047),
    };
    return cmocka_run_group_tests_name("mime_text", tests, NULL, NULL);
}
