/*
 * test_http.c - unit tests for the pure parts of src/http/: HOTP (RFC 4226
 * appendix D) and TOTP (RFC 6238 appendix B, SHA-1/256/512) test vectors,
 * the TOTP window check, base32 (RFC 4648 section 10), Cookie header
 * parsing, API times and numbers, the JSON nesting guard, e-mail syntax,
 * the login throttle, password rules. Inputs that are not strings are
 * handed over in heap blocks of exactly their length, so ASan sees any
 * read past them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/core.h"

#include "http/http_int.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static char *exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

/* ---------------------------------------------------------------- HOTP / TOTP */
static void test_hotp_rfc4226(void **state)
{
    (void)state;
    static const long want[] = {755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489};
    const unsigned char *key = (const unsigned char *)"12345678901234567890";
    for (size_t i = 0; i < NELEM(want); i++)
        assert_int_equal(http_hotp(key, 20, i, 6, "SHA1"), want[i]);
    assert_int_equal(http_hotp(key, 20, 0, 5, "SHA1"), -1);
    assert_int_equal(http_hotp(key, 20, 0, 9, "SHA1"), -1);
    assert_int_equal(http_hotp(key, 20, 0, 6, "MD5"), -1);
}

static void test_totp_rfc6238(void **state)
{
    (void)state;
    static const struct {
        uint64_t t;
        long sha1, sha256, sha512;
    } v[] = {
        {59, 94287082, 46119246, 90693936},
        {1111111109, 7081804, 68084774, 25091201},
        {1111111111, 14050471, 67062674, 99943326},
        {1234567890, 89005924, 91819424, 93441116},
        {2000000000, 69279037, 90698825, 38618901},
        {20000000000ULL, 65353130, 77737706, 47863826},
    };
    const unsigned char *k1 = (const unsigned char *)"12345678901234567890";
    const unsigned char *k256 = (const unsigned char *)"12345678901234567890123456789012";
    const unsigned char *k512 =
        (const unsigned char *)"1234567890123456789012345678901234567890123456789012345678901234";
    for (size_t i = 0; i < NELEM(v); i++) {
        uint64_t step = v[i].t / 30;
        assert_int_equal(http_hotp(k1, 20, step, 8, "SHA1"), v[i].sha1);
        assert_int_equal(http_hotp(k256, 32, step, 8, "SHA256"), v[i].sha256);
        assert_int_equal(http_hotp(k512, 64, step, 8, "SHA512"), v[i].sha512);
    }
}

static void test_totp_check(void **state)
{
    (void)state;
    char secret[64];
    assert_int_equal(http_base32_encode((const unsigned char *)"12345678901234567890", 20, secret, sizeof secret), 32);
    assert_string_equal(secret, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    /* RFC 6238 at T = 59: the 8-digit code 94287082 -> 6 digits 287082 */
    int64_t step = 0;
    assert_int_equal(http_totp_check(secret, "287082", 59, &step), 0);
    assert_int_equal(step, 1);
    /* one step either side is accepted, two are not */
    assert_int_equal(http_totp_check(secret, "287082", 59 + 30, &step), 0);
    assert_int_equal(http_totp_check(secret, "287082", 59 - 30, &step), 0);
    assert_int_equal(http_totp_check(secret, "287082", 59 + 60, &step), 1);
    /* malformed codes */
    assert_int_equal(http_totp_check(secret, "28708", 59, &step), 1);
    assert_int_equal(http_totp_check(secret, "2870820", 59, &step), 1);
    assert_int_equal(http_totp_check(secret, "28708a", 59, &step), 1);
    assert_int_equal(http_totp_check(secret, "", 59, &step), 1);
    /* a bad secret */
    assert_int_equal(http_totp_check("!!", "287082", 59, &step), -1);
    assert_int_equal(http_totp_check("", "287082", 59, &step), -1);
}

static void test_totp_uri_qr(void **state)
{
    (void)state;
    char uri[600];
    http_totp_uri("a b@example.test", "GEZDGNBV", uri, sizeof uri);
    assert_string_equal(uri, "otpauth://totp/Moat:a%20b@example.test?secret=GEZDGNBV&issuer=Moat&algorithm=SHA1"
                             "&digits=6&period=30");
    char *svg = http_qr_svg(uri);
    assert_non_null(svg);
    assert_true(strncmp(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"", 39) == 0);
    assert_non_null(strstr(svg, "<path fill=\"#000\" d=\"M"));
    assert_null(strstr(svg, "<script"));
    assert_true(strcmp(svg + strlen(svg) - 6, "</svg>") == 0);
    free(svg);
}

/* ---------------------------------------------------------------- base32 */
static void test_base32(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } v[] = {{"", ""},           {"f", "MY"},           {"fo", "MZXQ"},        {"foo", "MZXW6"},
             {"foob", "MZXW6YQ"}, {"fooba", "MZXW6YTB"}, {"foobar", "MZXW6YTBOI"}};
    for (size_t i = 0; i < NELEM(v); i++) {
        char out[32];
        unsigned char back[32];
        size_t n = strlen(v[i].in);
        assert_int_equal(http_base32_encode((const unsigned char *)v[i].in, n, out, sizeof out),
                         (long)strlen(v[i].out));
        assert_string_equal(out, v[i].out);
        char *e = exact(out, strlen(out));
        assert_int_equal(http_base32_decode(e, strlen(out), back, sizeof back), (long)n);
        assert_memory_equal(back, v[i].in, n);
        free(e);
    }
    unsigned char b[16];
    assert_int_equal(http_base32_decode("mzxw6ytboi", 10, b, sizeof b), 6);  /* lower case */
    assert_int_equal(http_base32_decode("MZXW6YQ=", 8, b, sizeof b), 4);     /* padding */
    assert_int_equal(http_base32_decode("MZXW 6YQ", 8, b, sizeof b), 4);     /* spaces */
    assert_int_equal(http_base32_decode("MZXW1", 5, b, sizeof b), -1);       /* '1' is not base32 */
    assert_int_equal(http_base32_decode("MY=MY", 5, b, sizeof b), -1);       /* data after padding */
    assert_int_equal(http_base32_decode("MZXW6YTBOI", 10, b, 5), -1);        /* output too small */
    char small[4];
    assert_int_equal(http_base32_encode((const unsigned char *)"foo", 3, small, sizeof small), -1);
}

/* ---------------------------------------------------------------- cookies */
static void test_cookie(void **state)
{
    (void)state;
    static const struct {
        const char *header;
        long len;
        const char *value;
    } v[] = {
        {"moat_session=abc", 3, "abc"},
        {"a=1; moat_session=abc; b=2", 3, "abc"},
        {"a=1;moat_session=abc", 3, "abc"},
        {"moat_session=\"abc\"", 3, "abc"},
        {"moat_session=first; moat_session=second", 5, "first"},
        {"xmoat_session=abc", -1, NULL},
        {"moat_session_x=abc", -1, NULL},
        {"moat_session", -1, NULL},
        {"novalue; moat_session=ok", 2, "ok"},
        {"moat_session=", 0, ""},
        {"moat_session=a b", -1, NULL},     /* space inside */
        {"moat_session=a,b", -1, NULL},     /* comma */
        {"moat_session=a\\b", -1, NULL},    /* backslash */
        {"moat_session=\xc3\xa9", -1, NULL}, /* 8-bit */
        {"", -1, NULL},
        {";;;", -1, NULL},
        {"moat_session=abc  ", 3, "abc"},  /* trailing blanks */
    };
    for (size_t i = 0; i < NELEM(v); i++) {
        char out[16];
        size_t n = strlen(v[i].header);
        char *h = exact(v[i].header, n);
        long got = http_cookie_get(h, n, "moat_session", out, sizeof out);
        assert_int_equal(got, v[i].len);
        if (v[i].value)
            assert_string_equal(out, v[i].value);
        free(h);
    }
    /* a value that does not fit (limit - 1 fits, limit does not) */
    char out[4];
    assert_int_equal(http_cookie_get("moat_session=abc", 16, "moat_session", out, sizeof out), 3);
    assert_int_equal(http_cookie_get("moat_session=abcd", 17, "moat_session", out, sizeof out), -1);
    /* a NUL inside the counted header */
    char nul[] = "moat_session=a\0b";
    assert_int_equal(http_cookie_get(nul, sizeof nul - 1, "moat_session", out, sizeof out), -1);
}

/* ---------------------------------------------------------------- times and numbers */
static void test_parse_time(void **state)
{
    (void)state;
    const double now = 1700000000;
    static const struct {
        const char *in;
        int rc;
        double want;
    } v[] = {
        {"now", 0, 1700000000},
        {"1700000000", 0, 1700000000},
        {"1700000000.5", 0, 1700000000.5},
        {"30m", 0, 1700000000 - 1800},
        {"24h", 0, 1700000000 - 86400},
        {"7d", 0, 1700000000 - 7 * 86400},
        {"2w", 0, 1700000000 - 14 * 86400},
        {"10s", 0, 1700000000 - 10},
        {"2024-05-01", 0, 1714521600},
        {"2024-05-01T09:30Z", 0, 1714555800},
        {"2024-05-01T09:30:15Z", 0, 1714555815},
        {"2024-05-01T09:30:15.25Z", 0, 1714555815.25},
        {"2024-05-01T18:30:00+09:00", 0, 1714555800},
        {"2024-05-01T04:30:00-05:00", 0, 1714555800},
        {"2024-02-29", 0, 1709164800},
        {"2023-02-29", -1, 0},
        {"2024-02-30", -1, 0},
        {"2024-13-01", -1, 0},
        {"2024-05-01T24:00Z", -1, 0},
        {"2024-05-01T09:60Z", -1, 0},
        {"2024-05-01T09", -1, 0},
        {"2024-05-01T09:30:1", -1, 0},
        {"2024-05-01T09:30:15.Z", -1, 0},
        {"2024-05-01T09:30+9", -1, 0},
        {"2024-05-01x", -1, 0},
        {"1969-12-31", -1, 0},
        {"", -1, 0},
        {"-5", -1, 0},
        {"1e9", -1, 0},
        {"5y", -1, 0},
        {"m", -1, 0},
        {"1700000000.", -1, 0},
        {"9999999999999", -1, 0},
        {"123456789012345678901234567890123456789012", -1, 0},
        {"2552552555555555555555555555h", -1, 0}, /* a relative time longer than its buffer (fuzz) */
        {"99999999999999999999999m", -1, 0},
    };
    for (size_t i = 0; i < NELEM(v); i++) {
        double out = -1;
        int rc = http_parse_time(v[i].in, now, &out);
        if (rc != v[i].rc)
            fail_msg("%s: rc %d, expected %d", v[i].in, rc, v[i].rc);
        if (rc == 0 && out != v[i].want)
            fail_msg("%s: %f, expected %f", v[i].in, out, v[i].want);
    }
}

static void test_parse_uint(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(http_parse_uint("0", 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(http_parse_uint("9999", 9999, &v), 0); /* max */
    assert_int_equal(http_parse_uint("9998", 9999, &v), 0); /* max - 1 */
    assert_int_equal(http_parse_uint("10000", 9999, &v), -1); /* max + 1 */
    assert_int_equal(http_parse_uint("18446744073709551615", UINT64_MAX, &v), 0);
    assert_int_equal(http_parse_uint("18446744073709551616", UINT64_MAX, &v), -1);
    assert_int_equal(http_parse_uint("", 10, &v), -1);
    assert_int_equal(http_parse_uint("+1", 10, &v), -1);
    assert_int_equal(http_parse_uint("1 ", 10, &v), -1);
    assert_int_equal(http_parse_uint(NULL, 10, &v), -1);
}

/* ---------------------------------------------------------------- JSON depth */
static void test_json_depth(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        unsigned max;
        bool ok;
    } v[] = {
        {"{}", 1, true},
        {"[[]]", 1, false},
        {"[[]]", 2, true},
        {"{\"a\":[{\"b\":1}]}", 3, true},
        {"{\"a\":[{\"b\":1}]}", 2, false},
        {"\"[[[[[[\"", 1, true},          /* brackets inside a string */
        {"[\"\\\"[[[[\"]", 1, true},      /* an escaped quote does not end the string */
        {"]]]]][[", 2, true},             /* closers never go below zero */
        {"[[[", 2, false},
        {"", 0, true},
    };
    for (size_t i = 0; i < NELEM(v); i++) {
        size_t n = strlen(v[i].in);
        char *p = exact(v[i].in, n);
        if (http_json_depth_ok(p, n, v[i].max) != v[i].ok)
            fail_msg("%s (max %u): expected %d", v[i].in, v[i].max, v[i].ok);
        free(p);
    }
    /* a trailing backslash in an unterminated string stays inside the buffer */
    char *p = exact("\"\\", 2);
    assert_true(http_json_depth_ok(p, 2, 1));
    free(p);
}

static void test_email(void **state)
{
    (void)state;
    assert_true(http_email_ok("a@b.test"));
    assert_true(http_email_ok("admin+x@example.test"));
    assert_false(http_email_ok("ab"));
    assert_false(http_email_ok("@b.test"));
    assert_false(http_email_ok("a@"));
    assert_false(http_email_ok("a@b@c"));
    assert_false(http_email_ok("a b@c.test"));
    assert_false(http_email_ok("a\"@c.test"));
    assert_false(http_email_ok("a\xc3\xa9@c.test"));
    assert_false(http_email_ok(NULL));
    char long_addr[300];
    memset(long_addr, 'a', sizeof long_addr);
    memcpy(long_addr + 250, "@b.t", 5); /* 254 characters: the limit */
    assert_true(http_email_ok(long_addr));
    memset(long_addr, 'a', sizeof long_addr);
    memcpy(long_addr + 251, "@b.t", 5); /* 255 */
    assert_false(http_email_ok(long_addr));
}

/* ---------------------------------------------------------------- throttle */
static void test_throttle(void **state)
{
    (void)state;
    struct http_throttle *t = http_throttle_new(3, 60);
    double retry = 0;
    assert_true(http_throttle_allowed(t, "192.0.2.1", 1000, &retry));
    http_throttle_fail(t, "192.0.2.1", 1000);
    http_throttle_fail(t, "192.0.2.1", 1010);
    assert_true(http_throttle_allowed(t, "192.0.2.1", 1011, &retry)); /* max - 1 */
    http_throttle_fail(t, "192.0.2.1", 1020);
    assert_false(http_throttle_allowed(t, "192.0.2.1", 1021, &retry)); /* max */
    assert_true(retry > 38 && retry <= 39);
    assert_true(http_throttle_allowed(t, "192.0.2.2", 1021, &retry));  /* another address */
    assert_true(http_throttle_allowed(t, "192.0.2.1", 1060, &retry));  /* the window has passed */
    http_throttle_fail(t, "192.0.2.1", 1061);
    http_throttle_fail(t, "192.0.2.1", 1062);
    http_throttle_fail(t, "192.0.2.1", 1063);
    assert_false(http_throttle_allowed(t, "192.0.2.1", 1064, &retry));
    http_throttle_reset(t, "192.0.2.1"); /* a successful login */
    assert_true(http_throttle_allowed(t, "192.0.2.1", 1064, &retry));
    /* many addresses: the table stays bounded and keeps working */
    char a[64];
    for (int i = 0; i < 20000; i++) {
        snprintf(a, sizeof a, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        http_throttle_fail(t, a, 2000 + i * 0.001);
    }
    for (int i = 0; i < 3; i++)
        http_throttle_fail(t, "198.51.100.7", 2100);
    assert_false(http_throttle_allowed(t, "198.51.100.7", 2100, &retry));
    http_throttle_free(t);
}

static void test_password_rules(void **state)
{
    (void)state;
    assert_non_null(http_password_weak("short"));
    assert_non_null(http_password_weak("123456789"));  /* 9 = min - 1 */
    assert_null(http_password_weak("1234567890"));     /* 10 = min */
    assert_non_null(http_password_weak("12345678\t90"));
    char big[300];
    memset(big, 'x', sizeof big);
    big[256] = '\0';
    assert_null(http_password_weak(big)); /* 256 = max */
    big[256] = 'x';
    big[257] = '\0';
    assert_non_null(http_password_weak(big)); /* 257 */
    char hash[STORE_PWHASH_MAX + 1];
    assert_int_equal(http_password_hash("correct horse", hash), 0);
    assert_true(strncmp(hash, "$argon2id$", 10) == 0);
    assert_true(http_password_verify(hash, "correct horse"));
    assert_false(http_password_verify(hash, "correct horsf"));
    char tok[64], h[STORE_HASH_HEX + 1];
    http_token_new(tok, sizeof tok, h);
    assert_int_equal(strlen(tok), 5 + 43);
    assert_int_equal(strlen(h), 64);
    char h2[STORE_HASH_HEX + 1];
    http_sha256_hex("abc", 3, h2);
    assert_string_equal(h2, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hotp_rfc4226), cmocka_unit_test(test_totp_rfc6238),
        cmocka_unit_test(test_totp_check),   cmocka_unit_test(test_totp_uri_qr),
        cmocka_unit_test(test_base32),       cmocka_unit_test(test_cookie),
        cmocka_unit_test(test_parse_time),   cmocka_unit_test(test_parse_uint),
        cmocka_unit_test(test_json_depth),   cmocka_unit_test(test_email),
        cmocka_unit_test(test_throttle),     cmocka_unit_test(test_password_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
