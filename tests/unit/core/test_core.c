/* test_core.c - unit tests for core/: buffers, parsing, IDs, config. */
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

static void test_buf_max(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 8);
    assert_int_equal(buf_append(&b, "12345678", 8), 0);
    assert_int_equal(buf_append(&b, "9", 1), -1);
    assert_int_equal(b.len, 8);
    assert_string_equal(buf_cstr(&b), "12345678");
    buf_reset(&b);
    assert_int_equal(buf_printf(&b, "%d-%s", 42, "ab"), 0);
    assert_string_equal(buf_cstr(&b), "42-ab");
    assert_int_equal(buf_printf(&b, "%s", "toolong"), -1);
    buf_free(&b);
}

static void test_parse_numbers(void **state)
{
    (void)state;
    uint64_t v;
    static const struct { const char *in; int rc; uint64_t out; } dur[] = {
        {"10", 0, 10}, {"5s", 0, 5}, {"2m", 0, 120}, {"1h", 0, 3600}, {"10d", 0, 864000},
        {"", -1, 0}, {"m", -1, 0}, {"-1", -1, 0}, {"1x", -1, 0}, {"1 m", -1, 0},
        {"99999999999999999999", -1, 0}, {"+5", -1, 0},
    };
    for (size_t i = 0; i < sizeof dur / sizeof dur[0]; i++) {
        assert_int_equal(core_parse_duration(dur[i].in, &v), dur[i].rc);
        if (dur[i].rc == 0)
            assert_int_equal(v, dur[i].out);
    }
    assert_int_equal(core_parse_size("150M", &v), 0);
    assert_int_equal(v, 150ULL * 1024 * 1024);
    assert_int_equal(core_parse_size("3k", &v), 0);
    assert_int_equal(v, 3072);
    assert_int_equal(core_parse_size("18446744073709551615G", &v), -1);
    assert_int_equal(core_parse_u64("18446744073709551615", UINT64_MAX, &v), 0);
    assert_int_equal(core_parse_u64("18446744073709551616", UINT64_MAX, &v), -1);
}

static void test_hostport(void **state)
{
    (void)state;
    char h[64];
    uint16_t p;
    assert_int_equal(core_parse_hostport("127.0.0.1:25", h, sizeof h, &p), 0);
    assert_string_equal(h, "127.0.0.1");
    assert_int_equal(p, 25);
    assert_int_equal(core_parse_hostport("[::1]:2525", h, sizeof h, &p), 0);
    assert_string_equal(h, "::1");
    assert_int_equal(core_parse_hostport("host:0", h, sizeof h, &p), -1);
    assert_int_equal(core_parse_hostport("host:65536", h, sizeof h, &p), -1);
    assert_int_equal(core_parse_hostport("host", h, sizeof h, &p), -1);
    assert_int_equal(core_parse_hostport(":25", h, sizeof h, &p), -1);
}

static void test_qid(void **state)
{
    (void)state;
    char a[CORE_QID_LEN + 1], b[CORE_QID_LEN + 1];
    core_qid_new(a);
    core_qid_new(b);
    assert_true(core_qid_valid(a));
    assert_true(strcmp(a, b) != 0);
    assert_false(core_qid_valid("abc"));
    assert_false(core_qid_valid("0123456789abcdef0123"));
    assert_false(core_qid_valid("0123456789ABCDEF01234"));
}

static void test_log_escape(void **state)
{
    (void)state;
    char out[32];
    log_escape("a b\r\n\"x\"", 8, out, sizeof out);
    assert_string_equal(out, "a\\x20b\\x0d\\x0a\\x22x\\x22");
    log_escape("abcdefghij", 10, out, 5);
    assert_string_equal(out, "abcd");
}

/* write_conf - a temp config file with the given text; returns its path */
static char *write_conf(const char *text)
{
    static char path[] = "/tmp/moat-test-conf-XXXXXX";
    char *p = xstrdup(path);
    int fd = mkstemp(p);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return p;
}

static void test_config(void **state)
{
    (void)state;
    static const struct { const char *text; int rc; const char *err; } cases[] = {
        {"# comment\n\nhostname = mx.test\nretry_min = 30s\n", 0, NULL},
        {"bogus = 1\n", -1, ":1: bogus: unknown key"},
        {"\n\nretry_min = soon\n", -1, ":3: retry_min: not a duration"},
        {"recipient_limit = 0\n", -1, "below the minimum"},
        {"recipient_limit = 100000\n", 0, NULL},
        {"recipient_limit = 100001\n", -1, "above the maximum"},
        {"limit_in_ip = 10/1m\n", 0, NULL},
        {"limit_in_ip = 10\n", -1, "not a rate"},
        {"hostname\n", -1, "expected key = value"},
        {"retry_min = 2h\nretry_max = 1h\n", -1, "retry_min is larger"},
        {"tls_cert = /x.pem\n", -1, "set together"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct moat_config cfg;
        char err[512] = "";
        char *p = write_conf(cases[i].text);
        int rc = config_load(p, &cfg, err, sizeof err);
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d err %s", i, rc, err);
        if (cases[i].err && !strstr(err, cases[i].err))
            fail_msg("case %zu: err '%s' lacks '%s'", i, err, cases[i].err);
        if (i == 0) {
            assert_string_equal(cfg.hostname, "mx.test");
            assert_int_equal(cfg.retry_min, 30);
            assert_int_equal(cfg.queue_lifetime, 864000);
            assert_int_equal(cfg.limit_in_sender.count, 200);
            assert_int_equal(cfg.limit_in_sender.window, 60);
            assert_int_equal(cfg.message_size_limit, 150ULL * 1024 * 1024);
        }
        config_free(&cfg);
        unlink(p);
        free(p);
    }
}

static void test_config_reload(void **state)
{
    (void)state;
    struct moat_config cfg;
    char err[512] = "";
    char *p = write_conf("hostname = a.test\nmessage_size_limit = 1M\n");
    assert_int_equal(config_load(p, &cfg, err, sizeof err), 0);
    FILE *f = fopen(p, "w");
    fputs("hostname = b.test\nmessage_size_limit = 2M\nlimit_in_ip = 7/1h\n", f);
    fclose(f);
    assert_int_equal(config_reload(&cfg, p, err, sizeof err), 0);
    assert_int_equal(cfg.message_size_limit, 2 * 1024 * 1024);
    assert_int_equal(cfg.limit_in_ip.count, 7);
    assert_int_equal(cfg.limit_in_ip.window, 3600);
    assert_string_equal(cfg.hostname, "a.test"); /* needs a restart */
    f = fopen(p, "w");
    fputs("message_size_limit = 3M\nbroken\n", f);
    fclose(f);
    assert_int_equal(config_reload(&cfg, p, err, sizeof err), -1);
    assert_non_null(strstr(err, ":2:"));
    assert_int_equal(cfg.message_size_limit, 2 * 1024 * 1024); /* unchanged */
    config_free(&cfg);
    unlink(p);
    free(p);
}

/* csv_all - every record of data as "f1|f2;f1;..." (or "ERR<rc>@line") */
static void csv_all(const char *data, size_t len, size_t maxf, char *out, size_t outsz)
{
    struct core_csv c;
    core_csv_init(&c, data, len);
    char *f[CORE_CSV_FIELDS_MAX];
    size_t nf, o = 0;
    out[0] = '\0';
    enum core_csv_rc rc;
    while ((rc = core_csv_next(&c, f, maxf, &nf)) == CORE_CSV_OK) {
        for (size_t i = 0; i < nf; i++)
            o += (size_t)snprintf(out + o, outsz - o, "%s%s", f[i], i + 1 < nf ? "|" : ";");
    }
    if (rc != CORE_CSV_END)
        snprintf(out + o, outsz - o, "ERR%d@%u", (int)rc, c.line);
    core_csv_free(&c);
}

static void test_csv_read(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"", ""},
        {"a,b\r\nc,d\r\n", "a|b;c|d;"},
        {"a,b\nc,d", "a|b;c|d;"},                     /* LF, no final line end */
        {"\n\r\n a , b \n", " a | b ;"},              /* blank lines skipped, spaces kept */
        {",\n", "|;"},                                /* two empty fields */
        {"\"a,b\",\"say \"\"hi\"\"\"\n", "a,b|say \"hi\";"},
        {"\"multi\r\nline\",x\n", "multi\r\nline|x;"},
        {"\"\"\n", ";"},                              /* one empty quoted field */
        {"\xEF\xBB\xBF" "email\n", "email;"},         /* BOM dropped */
        {"a\rb\n", "a\rb;"},                          /* a bare CR inside is data */
        {"\"open\n", "ERR2@1"},                       /* unterminated quote */
        {"\"a\"b\n", "ERR2@1"},                       /* text after the closing quote */
        {"a\"b\n", "ERR2@1"},                         /* a quote inside an unquoted field */
        {"ok\n\"x\ny\nz\"\n\"bad\n", "ok;x\ny\nz;ERR2@5"}, /* line numbers count quoted breaks */
        {"a,b,c,d\n", "ERR4@1"},                      /* more than maxf (3) fields */
    };
    char out[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        csv_all(cases[i].in, strlen(cases[i].in), 3, out, sizeof out);
        if (strcmp(out, cases[i].out) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, out, cases[i].out);
    }
    csv_all("a\0b\n", 4, 3, out, sizeof out);
    assert_string_equal(out, "ERR5@1");
    /* a field of CORE_CSV_FIELD_MAX bytes is fine, one more is not */
    char *big = malloc(CORE_CSV_FIELD_MAX + 3);
    memset(big, 'x', CORE_CSV_FIELD_MAX + 1);
    big[CORE_CSV_FIELD_MAX] = '\n';
    struct core_csv c;
    char *f[4];
    size_t nf;
    core_csv_init(&c, big, CORE_CSV_FIELD_MAX + 1);
    assert_int_equal(core_csv_next(&c, f, 4, &nf), CORE_CSV_OK);
    assert_int_equal(strlen(f[0]), CORE_CSV_FIELD_MAX);
    core_csv_free(&c);
    big[CORE_CSV_FIELD_MAX] = 'x';
    core_csv_init(&c, big, CORE_CSV_FIELD_MAX + 1);
    assert_int_equal(core_csv_next(&c, f, 4, &nf), CORE_CSV_ERR_LONG);
    core_csv_free(&c);
    free(big);
}

static void test_csv_write(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "plain,"},          {"", ","},
        {"a,b", "\"a,b\","},          {"say \"hi\"", "\"say \"\"hi\"\"\","},
        {"two\r\nlines", "\"two\r\nlines\","},
        {"=1+2", "\"'=1+2\","},       {"+1", "\"'+1\","},
        {"-1", "\"'-1\","},           {"@SUM(A1)", "\"'@SUM(A1)\","},
        {"a=b", "a=b,"},              {"日本語", "日本語,"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct buf b;
        buf_init(&b, 256);
        assert_int_equal(core_csv_field(&b, cases[i].in, false), 0);
        if (strcmp(buf_cstr(&b), cases[i].out) != 0)
            fail_msg("case %zu: got %s", i, buf_cstr(&b));
        buf_free(&b);
    }
    struct buf b;
    buf_init(&b, 4);
    assert_int_equal(core_csv_field(&b, NULL, true), 0);
    assert_string_equal(buf_cstr(&b), "\r\n");
    assert_int_equal(core_csv_field(&b, "toolong", true), -1);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_max),     cmocka_unit_test(test_parse_numbers),
        cmocka_unit_test(test_hostport),    cmocka_unit_test(test_qid),
        cmocka_unit_test(test_log_escape),  cmocka_unit_test(test_config),
        cmocka_unit_test(test_config_reload),
        cmocka_unit_test(test_csv_read),    cmocka_unit_test(test_csv_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
