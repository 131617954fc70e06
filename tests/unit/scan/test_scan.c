/* test_scan.c - scan IPC frames and the header parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/core.h"
#include "scan/scan.h"

static void test_ipc_roundtrip(void **state)
{
    (void)state;
    static unsigned char f[SCAN_IPC_FRAME_MAX];
    struct scan_request rq = {.id = 42, .data_len = 12345, .direction = 1};
    rq.rcpts = "acme\ta@acme.test\n\tb@other.test\n";
    core_strlcpy(rq.path, "/var/spool/incoming/ABC", sizeof rq.path);
    core_strlcpy(rq.qid, "0123456789ABCDEF0123", sizeof rq.qid);
    core_strlcpy(rq.company_id, "example", sizeof rq.company_id);
    core_strlcpy(rq.mail_from, "山田@example.jp", sizeof rq.mail_from);
    core_strlcpy(rq.client_ip, "2001:db8::1", sizeof rq.client_ip);
    rq.nrcpt = 3;
    long n = scan_ipc_encode_request(&rq, f, sizeof f);
    assert_true(n > 8);
    assert_int_equal(scan_ipc_frame_len(f, (size_t)n), n);
    struct scan_request rq2;
    assert_int_equal(scan_ipc_decode_request(f, (size_t)n, &rq2), 0);
    assert_int_equal(rq2.id, 42);
    assert_int_equal(rq2.data_len, 12345);
    assert_string_equal(rq2.path, rq.path);
    assert_string_equal(rq2.qid, rq.qid);
    assert_string_equal(rq2.company_id, "example");
    assert_string_equal(rq2.mail_from, "山田@example.jp");
    assert_string_equal(rq2.client_ip, "2001:db8::1");
    assert_int_equal(rq2.nrcpt, 3);
    assert_int_equal(rq2.direction, 1);
    assert_string_equal(rq2.rcpts, rq.rcpts);
    scan_request_clear(&rq2);
    assert_null(rq2.rcpts);
    /* every truncation is rejected; so is trailing data and a wrong type */
    for (long k = 0; k < n; k++)
        assert_int_equal(scan_ipc_decode_request(f, (size_t)k, &rq2), -1);
    struct scan_result res;
    assert_int_equal(scan_ipc_decode_result(f, (size_t)n, &res), -1);
    f[n] = 0;
    assert_int_equal(scan_ipc_decode_request(f, (size_t)n + 1, &rq2), -1);

    struct scan_result r = {.id = 7, .verdict = SCAN_REJECT, .header_count = 3, .flags = SCAN_FLAG_MALFORMED};
    core_strlcpy(r.reply, "550 5.7.1 no", sizeof r.reply);
    core_strlcpy(r.subject, "件名", sizeof r.subject);
    core_strlcpy(r.detections, "[{\"category\":\"virus\"}]", sizeof r.detections);
    r.plan = "{\"rcpts\":[]}";
    r.variants = 2;
    n = scan_ipc_encode_result(&r, f, sizeof f);
    assert_true(n > 0);
    assert_int_equal(scan_ipc_decode_result(f, (size_t)n, &res), 0);
    assert_string_equal(res.plan, r.plan);
    assert_int_equal(res.variants, 2);
    scan_result_clear(&res);
    /* too many variants, bad direction: not encodable */
    r.variants = SCAN_VARIANTS_MAX + 1;
    assert_int_equal(scan_ipc_encode_result(&r, f, sizeof f), -1);
    r.variants = 0;
    r.plan = NULL;
    rq.direction = 2;
    assert_int_equal(scan_ipc_encode_request(&rq, f, sizeof f), -1);
    n = scan_ipc_encode_result(&r, f, sizeof f);
    assert_int_equal(scan_ipc_decode_result(f, (size_t)n, &res), 0);
    assert_null(res.plan);
    assert_int_equal(res.verdict, SCAN_REJECT);
    assert_string_equal(res.subject, "件名");
    assert_string_equal(res.detections, "[{\"category\":\"virus\"}]");
    assert_int_equal(res.flags, SCAN_FLAG_MALFORMED);
    /* verdict out of range */
    r.verdict = 9;
    n = scan_ipc_encode_result(&r, f, sizeof f);
    assert_int_equal(scan_ipc_decode_result(f, (size_t)n, &res), -1);
    /* a NUL inside a string field is rejected: find "550" and poison it */
    r.verdict = SCAN_ACCEPT;
    n = scan_ipc_encode_result(&r, f, sizeof f);
    for (long k = 0; k + 3 <= n; k++)
        if (memcmp(f + k, "550", 3) == 0)
            f[k + 1] = 0;
    assert_int_equal(scan_ipc_decode_result(f, (size_t)n, &res), -1);
    /* oversize frame length */
    unsigned char big[4] = {0, 0x10, 0, 1}; /* 1 MiB + 1 */
    assert_int_equal(scan_ipc_frame_len(big, 4), -1);
    assert_int_equal(scan_ipc_frame_len(big, 3), -1);
}

static void test_headers(void **state)
{
    (void)state;
    static const struct {
        const char *msg;
        const char *subject, *from, *msgid;
        unsigned count;
        unsigned flags;
    } cases[] = {
        {"Subject: hi\r\nFrom: A <a@b>\r\nMessage-ID: <1@b>\r\n\r\nbody", "hi", "A <a@b>", "<1@b>", 3, 0},
        {"subject:  folded\r\n  twice\r\n\r\n", "folded  twice", "", "", 1, 0},
        {"Subject: x\r\n", "x", "", "", 1, 0},                      /* header only */
        {"no colon here\r\n\r\n", "", "", "", 0, SCAN_FLAG_MALFORMED},
        {"\r\nbody only", "", "", "", 0, 0},
        {"Subject: a\x01" "b\r\n\r\n", "ab", "", "", 1, 0},
        {"Sub ject: x\r\n\r\n", "", "", "", 0, SCAN_FLAG_MALFORMED},
        {"Subject: first\r\nSubject: second\r\n\r\n", "first", "", "", 2, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct scan_result r;
        memset(&r, 0, sizeof r);
        scan_headers_parse(cases[i].msg, strlen(cases[i].msg), &r);
        if (strcmp(r.subject, cases[i].subject) || strcmp(r.from, cases[i].from) ||
            strcmp(r.message_id, cases[i].msgid) || r.header_count != cases[i].count || r.flags != cases[i].flags)
            fail_msg("case %zu: subject '%s' from '%s' msgid '%s' count %u flags %u", i, r.subject, r.from,
                     r.message_id, r.header_count, r.flags);
    }
    /* too many fields */
    struct buf b;
    buf_init(&b, 1 << 20);
    for (int i = 0; i <= SCAN_HEADER_MAX_COUNT; i++)
        buf_append_str(&b, "X-A: b\r\n");
    buf_append_str(&b, "\r\n");
    struct scan_result r;
    memset(&r, 0, sizeof r);
    scan_headers_parse(b.ptr, b.len, &r);
    assert_true(r.flags & SCAN_FLAG_MALFORMED);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipc_roundtrip),
        cmocka_unit_test(test_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
