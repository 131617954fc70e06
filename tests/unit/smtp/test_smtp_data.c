/* test_smtp_data.c - the DATA/BDAT stream checker and the rate limiter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/core.h"
#include "smtp/smtp_data.h"
#include "smtp/smtp_ratelimit.h"

struct data_case {
    const char *in;
    bool dot_mode;
    const char *out;   /* expected message bytes */
    unsigned flags;
    bool done;
    size_t rest;       /* bytes left unconsumed after the end marker */
};

/* run - feed the input in pieces of step bytes */
static void run(const struct data_case *c, size_t step, size_t idx)
{
    struct smtp_data d;
    smtp_data_init(&d, c->dot_mode);
    size_t len = strlen(c->in), off = 0;
    struct buf out;
    buf_init(&out, 1 << 20);
    while (off < len && !d.done) {
        size_t n = len - off < step ? len - off : step;
        char tmp[64];
        size_t olen;
        size_t used = smtp_data_feed(&d, c->in + off, n, tmp, &olen);
        buf_append(&out, tmp, olen);
        off += used;
        if (used < n)
            break;
    }
    if (!c->dot_mode)
        smtp_data_finish(&d);
    if (strcmp(buf_cstr(&out), c->out) != 0 || d.flags != c->flags || d.done != c->done ||
        len - off != c->rest)
        fail_msg("case %zu step %zu: out '%s' flags %u done %d rest %zu", idx, step, buf_cstr(&out), d.flags,
                 d.done, len - off);
    buf_free(&out);
}

static void test_data_cases(void **state)
{
    (void)state;
    static const struct data_case cases[] = {
        {"Subject: x\r\n\r\nhello\r\n.\r\n", true, "Subject: x\r\n\r\nhello\r\n", 0, true, 0},
        {".\r\n", true, "", 0, true, 0},
        {"a\r\n..b\r\n.\r\nQUIT\r\n", true, "a\r\n.b\r\n", 0, true, 6},
        {"a\r\n.b\r\n.\r\n", true, "a\r\nb\r\n", 0, true, 0},
        /* smuggling attempts: none of these end the message */
        {"a\n.\nMAIL FROM:<x@y>\r\n", true, "a\n.\nMAIL FROM:<x@y>\r\n", SMTP_DATA_BARE_LF, false, 0},
        {"a\r\n.\nb\r\n", true, "a\r\n\nb\r\n", SMTP_DATA_BARE_LF, false, 0},
        {"a\n.\r\nb", true, "a\n.\r\nb", SMTP_DATA_BARE_LF, false, 0},
        {"a\r.\r\nb", true, "a\r.\r\nb", SMTP_DATA_BARE_CR, false, 0},
        {"a\rb\r\n.\r\n", true, "a\rb\r\n", SMTP_DATA_BARE_CR, true, 0},
        {"a\r\n.\rX\r\n.\r\n", true, "a\r\n\rX\r\n", SMTP_DATA_BARE_CR, true, 0},
        /* BDAT: no dot handling, no end marker */
        {"a\r\n.\r\nb\r\n", false, "a\r\n.\r\nb\r\n", 0, false, 0},
        {"a\nb", false, "a\nb", SMTP_DATA_BARE_LF, false, 0},
        {"a\r", false, "a", SMTP_DATA_BARE_CR, false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (size_t step = 1; step <= 8; step++)
            run(&cases[i], step, i);
}

static void test_data_line_length(void **state)
{
    (void)state;
    for (size_t n = SMTP_DATA_LINE_MAX - 1; n <= SMTP_DATA_LINE_MAX + 1; n++) {
        struct buf in;
        buf_init(&in, 4096);
        for (size_t i = 0; i < n; i++)
            buf_append(&in, "x", 1);
        buf_append_str(&in, "\r\n.\r\n");
        struct smtp_data d;
        smtp_data_init(&d, true);
        char *out = xmalloc(in.len + 2);
        size_t olen;
        smtp_data_feed(&d, in.ptr, in.len, out, &olen);
        assert_true(d.done);
        assert_int_equal(d.flags, n > SMTP_DATA_LINE_MAX ? SMTP_DATA_LONG_LINE : 0);
        free(out);
        buf_free(&in);
    }
    /* a stuffed dot does not count toward the length */
    struct buf in;
    buf_init(&in, 4096);
    buf_append_str(&in, ".");
    for (size_t i = 0; i < SMTP_DATA_LINE_MAX; i++)
        buf_append(&in, "x", 1);
    buf_append_str(&in, "\r\n.\r\n");
    struct smtp_data d;
    smtp_data_init(&d, true);
    char *out = xmalloc(in.len + 2);
    size_t olen;
    smtp_data_feed(&d, in.ptr, in.len, out, &olen);
    assert_int_equal(d.flags, 0);
    free(out);
    buf_free(&in);
}

static void test_ratelimit(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_memory_new(4);
    struct rate_limit lim = {3, 60};
    double t = 1000;
    assert_true(ratelimit_hit(rl, "ip:1", &lim, 300, t));
    assert_true(ratelimit_hit(rl, "ip:1", &lim, 300, t + 1));
    assert_true(ratelimit_hit(rl, "ip:1", &lim, 300, t + 2));
    assert_false(ratelimit_hit(rl, "ip:1", &lim, 300, t + 3));  /* over: blocked for 300 s */
    assert_true(ratelimit_hit(rl, "ip:2", &lim, 300, t + 3));   /* other keys unaffected */
    assert_false(ratelimit_hit(rl, "ip:1", &lim, 300, t + 100)); /* window passed, still blocked */
    assert_true(ratelimit_hit(rl, "ip:1", &lim, 300, t + 304));  /* block over */
    struct rate_limit unlimited = {0, 60};
    for (int i = 0; i < 100; i++)
        assert_true(ratelimit_hit(rl, "ip:3", &unlimited, 300, t));
    /* many keys: the table sweeps expired entries and keeps working */
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_true(ratelimit_hit(rl, key, &lim, 1, t + 1000 + i * 100));
    }
    ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_cases),
        cmocka_unit_test(test_data_line_length),
        cmocka_unit_test(test_ratelimit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
