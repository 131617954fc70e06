/* test_notify.c - unit tests for notify/: DSN structure (parsed back), field
 * content, header injection, bounds. */
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
#include "notify/notify.h"

/* ------------------------------------------------------------ parse helpers */

struct part {
    const char *hdr; /* header block (without the empty line) */
    size_t hdrlen;
    const char *body;
    size_t bodylen;
};

/* check_lines - every line CRLF-terminated, no bare CR or LF, no NUL, <= 998 */
static void check_lines(const char *s, size_t len)
{
    size_t linelen = 0;
    for (size_t i = 0; i < len; i++) {
        assert_true(s[i] != '\0');
        if (s[i] == '\r') {
            assert_true(i + 1 < len && s[i + 1] == '\n');
            assert_true(linelen <= 998);
            linelen = 0;
            i++;
            continue;
        }
        assert_true(s[i] != '\n');
        linelen++;
    }
    assert_int_equal(linelen, 0); /* ends with CRLF */
}

/* header_get - the unfolded value of the first field named name in a header
 * block, into out; returns false if absent */
static bool header_get(const char *hdr, size_t len, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);
    size_t i = 0;
    while (i < len) {
        const char *line = hdr + i;
        const char *end = memmem(line, len - i, "\r\n", 2);
        size_t ll = end ? (size_t)(end - line) : len - i;
        if (ll > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            size_t o = 0;
            const char *v = line + nl + 1;
            size_t vl = ll - nl - 1;
            for (;;) {
                for (size_t k = 0; k < vl && o < outsz - 1; k++)
                    out[o++] = v[k];
                size_t next = (size_t)(line - hdr) + ll + 2;
                if (next < len && (hdr[next] == ' ' || hdr[next] == '\t')) {
                    line = hdr + next;
                    end = memmem(line, len - next, "\r\n", 2);
                    ll = end ? (size_t)(end - line) : len - next;
                    v = line;
                    vl = ll;
                    continue;
                }
                break;
            }
            out[o] = '\0';
            char *p = out;
            while (*p == ' ' || *p == '\t')
                p++;
            memmove(out, p, strlen(p) + 1);
            return true;
        }
        i += ll + 2;
    }
    return false;
}

/* count_field - lines starting with "name:" at the beginning of a line */
static int count_field(const char *s, size_t len, const char *name)
{
    int n = 0;
    size_t nl = strlen(name);
    for (size_t i = 0; i < len; i++) {
        if ((i == 0 || s[i - 1] == '\n') && len - i > nl && strncasecmp(s + i, name, nl) == 0 &&
            s[i + nl] == ':')
            n++;
    }
    return n;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* b64decode - into a NUL-terminated malloc'd string */
static char *b64decode(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '=')
            continue;
        int v = b64val(s[i]);
        assert_true(v >= 0);
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xFF);
        }
    }
    out[o] = '\0';
    return out;
}

/* split_message - top headers / body; the boundary from Content-Type; the
 * parts between delimiters. Returns the number of parts (asserts the close
 * delimiter is present and last). */
static size_t split_message(const char *msg, size_t len, char *boundary, size_t bsz, struct part *parts,
                            size_t maxparts, const char **tophdr, size_t *tophdrlen)
{
    const char *sep = memmem(msg, len, "\r\n\r\n", 4);
    assert_non_null(sep);
    *tophdr = msg;
    *tophdrlen = (size_t)(sep - msg) + 2;
    char ct[512];
    assert_true(header_get(msg, *tophdrlen, "Content-Type", ct, sizeof ct));
    assert_non_null(strstr(ct, "multipart/report"));
    assert_non_null(strstr(ct, "report-type=delivery-status"));
    const char *b = strstr(ct, "boundary=\"");
    assert_non_null(b);
    b += 10;
    const char *be = strchr(b, '"');
    assert_non_null(be);
    assert_true((size_t)(be - b) < bsz);
    memcpy(boundary, b, (size_t)(be - b));
    boundary[be - b] = '\0';

    char delim[128], close[128];
    snprintf(delim, sizeof delim, "\r\n--%s\r\n", boundary);
    snprintf(close, sizeof close, "\r\n--%s--\r\n", boundary);
    const char *body = sep + 2; /* keep the CRLF so the first delimiter matches */
    size_t blen = len - (size_t)(body - msg);
    size_t n = 0;
    const char *p = memmem(body, blen, delim, strlen(delim));
    assert_non_null(p);
    for (;;) {
        const char *start = p + strlen(delim);
        size_t rest = len - (size_t)(start - msg);
        const char *next = memmem(start, rest, delim, strlen(delim));
        const char *cl = memmem(start, rest, close, strlen(close));
        assert_non_null(cl);
        const char *end = next && next < cl ? next : cl;
        assert_true(n < maxparts);
        const char *hs = memmem(start, (size_t)(end - start), "\r\n\r\n", 4);
        assert_non_null(hs);
        parts[n].hdr = start;
        parts[n].hdrlen = (size_t)(hs - start) + 2;
        parts[n].body = hs + 4;
        parts[n].bodylen = (size_t)(end - (hs + 4)); /* the CRLF before the delimiter belongs to it */
        n++;
        if (end == cl) {
            assert_int_equal((size_t)(cl - msg) + strlen(close), len);
            break;
        }
        p = next;
    }
    return n;
}

/* ------------------------------------------------------------ tests */

static const char original[] = "Received: from client.test by mx.moat.test\r\n"
                               "From: Alice <alice@sender.test>\r\n"
                               "To: bob@dest.test\r\n"
                               "Subject: quarterly report\r\n"
                               " continued\r\n"
                               "Message-ID: <1@sender.test>\r\n"
                               "\r\n"
                               "BODY LINE SHOULD NOT BE RETURNED\r\n";

static void test_dsn_structure(void **state)
{
    (void)state;
    struct dsn_recipient r[2] = {
        {.addr = "bob@dest.test",
         .orcpt = "rfc822;Bob+2Bx@dest.test",
         .failed = true,
         .status = "5.1.1",
         .remote_mta = "mx.dest.test",
         .diagnostic = "smtp; 550 5.1.1 No such user",
         .last_attempt = 1700000100},
        {.addr = "carol@dest.test",
         .failed = false,
         .status = NULL,
         .remote_mta = NULL,
         .diagnostic = "connection refused",
         .last_attempt = 1700000200},
    };
    struct dsn_info info = {.reporting_mta = "mx.moat.test",
                            .qid = "0123456789ABCDEF0123",
                            .envid = "env+2B1",
                            .sender = "alice@sender.test",
                            .arrival = 1700000000,
                            .rcpts = r,
                            .nrcpts = 2,
                            .original = original,
                            .original_len = sizeof original - 1};
    struct buf out;
    buf_init(&out, 1 << 20);
    assert_int_equal(notify_dsn_build(&info, &out), 0);
    check_lines(out.ptr, out.len);

    char boundary[100], v[1024];
    struct part parts[8];
    const char *top;
    size_t toplen;
    size_t n = split_message(out.ptr, out.len, boundary, sizeof boundary, parts, 8, &top, &toplen);
    assert_int_equal(n, 3);

    assert_true(header_get(top, toplen, "From", v, sizeof v));
    assert_string_equal(v, "\"Mail Delivery System\" <MAILER-DAEMON@mx.moat.test>");
    assert_true(header_get(top, toplen, "To", v, sizeof v));
    assert_string_equal(v, "<alice@sender.test>");
    assert_true(header_get(top, toplen, "Subject", v, sizeof v));
    assert_string_equal(v, "Undelivered Mail Returned to Sender");
    assert_true(header_get(top, toplen, "Auto-Submitted", v, sizeof v));
    assert_string_equal(v, "auto-replied");
    assert_true(header_get(top, toplen, "MIME-Version", v, sizeof v));
    assert_string_equal(v, "1.0");
    assert_true(header_get(top, toplen, "Date", v, sizeof v));
    assert_int_equal(strlen(v), strlen("Tue, 14 Nov 2023 22:13:20 +0000"));
    assert_true(header_get(top, toplen, "Message-ID", v, sizeof v));
    assert_true(v[0] == '<' && v[strlen(v) - 1] == '>' && strchr(v, '@'));
    assert_int_equal(count_field(top, toplen, "From"), 1);
    assert_int_equal(count_field(top, toplen, "To"), 1);

    /* 1: human-readable, base64 UTF-8, English and Japanese */
    assert_true(header_get(parts[0].hdr, parts[0].hdrlen, "Content-Type", v, sizeof v));
    assert_string_equal(v, "text/plain; charset=utf-8");
    assert_true(header_get(parts[0].hdr, parts[0].hdrlen, "Content-Transfer-Encoding", v, sizeof v));
    assert_string_equal(v, "base64");
    for (size_t i = 0; i + 2 < parts[0].bodylen; i += 78) /* base64 lines are <= 76 */
        assert_true(memchr(parts[0].body + i, '\n', parts[0].bodylen - i < 78 ? parts[0].bodylen - i : 78));
    char *text = b64decode(parts[0].body, parts[0].bodylen);
    assert_non_null(strstr(text, "could not be\r\ndelivered"));
    assert_non_null(strstr(text, "<bob@dest.test>: delivery failed: smtp; 550 5.1.1 No such user"));
    assert_non_null(strstr(text, "<carol@dest.test>: delivery delayed: connection refused"));
    assert_non_null(strstr(text, "配信できません"));
    assert_non_null(strstr(text, "<bob@dest.test>: 配信失敗"));
    free(text);

    /* 2: delivery-status */
    assert_true(header_get(parts[1].hdr, parts[1].hdrlen, "Content-Type", v, sizeof v));
    assert_string_equal(v, "message/delivery-status");
    static const char expect_status[] = "Reporting-MTA: dns; mx.moat.test\r\n"
                                        "X-Moat-Queue-ID: 0123456789ABCDEF0123\r\n"
                                        "Original-Envelope-Id: env+1\r\n"
                                        "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
                                        "\r\n"
                                        "Final-Recipient: rfc822; bob@dest.test\r\n"
                                        "Original-Recipient: rfc822; Bob+x@dest.test\r\n"
                                        "Action: failed\r\n"
                                        "Status: 5.1.1\r\n"
                                        "Remote-MTA: dns; mx.dest.test\r\n"
                                        "Diagnostic-Code: smtp; 550 5.1.1 No such user\r\n"
                                        "Last-Attempt-Date: Tue, 14 Nov 2023 22:15:00 +0000\r\n"
                                        "\r\n"
                                        "Final-Recipient: rfc822; carol@dest.test\r\n"
                                        "Action: delayed\r\n"
                                        "Status: 4.0.0\r\n"
                                        "Diagnostic-Code: X-Moat; connection refused\r\n"
                                        "Last-Attempt-Date: Tue, 14 Nov 2023 22:16:40 +0000\r\n";
    assert_int_equal(parts[1].bodylen, sizeof expect_status - 1);
    assert_memory_equal(parts[1].body, expect_status, sizeof expect_status - 1);

    /* 3: the original header block, exactly, without the body */
    assert_true(header_get(parts[2].hdr, parts[2].hdrlen, "Content-Type", v, sizeof v));
    assert_string_equal(v, "text/rfc822-headers");
    const char *hend = strstr(original, "\r\n\r\n") + 2;
    size_t hlen = (size_t)(hend - original);
    assert_int_equal(parts[2].bodylen, hlen);
    assert_memory_equal(parts[2].body, original, hlen);
    assert_null(memmem(out.ptr, out.len, "BODY LINE", 9));
    buf_free(&out);
}

static void test_dsn_injection(void **state)
{
    (void)state;
    struct dsn_recipient r = {.addr = "bob@dest.test\r\nBcc: victim@x.test",
                              .orcpt = "x\r\nX-Evil: 1",
                              .failed = true,
                              .status = "5.1.1\r\nX-Evil: 2",
                              .remote_mta = "mx\r\nX-Evil: 3",
                              .diagnostic = "550 no\r\nX-Evil: 4\n\rX-Evil: 5",
                              .last_attempt = 1};
    struct dsn_info info = {.reporting_mta = "mx.moat.test\r\nX-Evil: 6",
                            .qid = "Q\r\nX-Evil: 7",
                            .envid = "e\r\nX-Evil: 8",
                            .sender = "alice@sender.test>\r\nBcc: victim@x.test",
                            .arrival = 1,
                            .rcpts = &r,
                            .nrcpts = 1,
                            .original = "Subject: hi\nX-Bare: lf\rcr\r\n\r\nbody",
                            .original_len = 33};
    struct buf out;
    buf_init(&out, 1 << 20);
    assert_int_equal(notify_dsn_build(&info, &out), 0);
    check_lines(out.ptr, out.len);
    assert_int_equal(count_field(out.ptr, out.len, "Bcc"), 0);
    assert_int_equal(count_field(out.ptr, out.len, "X-Evil"), 0);
    char boundary[100], v[1024];
    struct part parts[8];
    const char *top;
    size_t toplen;
    assert_int_equal(split_message(out.ptr, out.len, boundary, sizeof boundary, parts, 8, &top, &toplen), 3);
    assert_true(header_get(top, toplen, "To", v, sizeof v));
    assert_string_equal(v, "<alice@sender.testBccvictim@x.test>"); /* no colon: never a group */
    assert_true(header_get(parts[1].body, parts[1].bodylen, "Status", v, sizeof v));
    assert_string_equal(v, "5.0.0"); /* invalid status: derived */
    /* the returned headers were normalised to CRLF */
    static const char hdrs[] = "Subject: hi\r\nX-Bare: lfcr\r\n";
    assert_int_equal(parts[2].bodylen, sizeof hdrs - 1);
    assert_memory_equal(parts[2].body, hdrs, sizeof hdrs - 1);
    buf_free(&out);
}

static void test_dsn_delayed_and_limits(void **state)
{
    (void)state;
    struct dsn_recipient r = {.addr = "bob@dest.test", .failed = false, .status = "4.4.1"};
    /* 100 KB of header lines: only 64 KB come back, cut at a line end */
    struct buf orig;
    buf_init(&orig, 1 << 20);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(buf_printf(&orig, "X-Filler-%04d: %040d\r\n", i, i), 0);
    assert_int_equal(buf_append_str(&orig, "\r\nbody\r\n"), 0);
    struct dsn_info info = {.reporting_mta = "mx.moat.test",
                            .qid = "Q",
                            .sender = "a@b.test",
                            .arrival = 1,
                            .rcpts = &r,
                            .nrcpts = 1,
                            .original = orig.ptr,
                            .original_len = orig.len};
    struct buf out;
    buf_init(&out, 1 << 20);
    assert_int_equal(notify_dsn_build(&info, &out), 0);
    check_lines(out.ptr, out.len);
    char boundary[100], v[1024];
    struct part parts[8];
    const char *top;
    size_t toplen;
    assert_int_equal(split_message(out.ptr, out.len, boundary, sizeof boundary, parts, 8, &top, &toplen), 3);
    assert_true(header_get(top, toplen, "Subject", v, sizeof v));
    assert_string_equal(v, "Delayed Mail (still being retried)");
    assert_non_null(memmem(parts[1].body, parts[1].bodylen, "Action: delayed\r\nStatus: 4.4.1\r\n", 31));
    assert_true(parts[2].bodylen <= 64 * 1024);
    assert_true(parts[2].bodylen > 60 * 1024);
    assert_memory_equal(parts[2].body, orig.ptr, parts[2].bodylen);
    assert_memory_equal(parts[2].body + parts[2].bodylen - 2, "\r\n", 2);

    /* out too small: -1 and out unchanged */
    struct buf small;
    buf_init(&small, 600);
    assert_int_equal(buf_append_str(&small, "keep"), 0);
    assert_int_equal(notify_dsn_build(&info, &small), -1);
    assert_int_equal(small.len, 4);
    assert_string_equal(buf_cstr(&small), "keep");
    buf_free(&small);

    /* never bounce to the null sender */
    info.sender = "";
    buf_reset(&out);
    assert_int_equal(notify_dsn_build(&info, &out), -1);
    assert_int_equal(out.len, 0);
    buf_free(&out);
    buf_free(&orig);
}

static void test_dsn_8bit_headers(void **state)
{
    (void)state;
    static const char orig8[] = "Subject: 会議\r\nFrom: a@b.test\r\n\r\nx\r\n";
    struct dsn_recipient r = {
        .addr = "ユーザー@dest.test", .failed = true, .diagnostic = "smtp; 550 5.1.1 ユーザー"};
    struct dsn_info info = {.reporting_mta = "mx.moat.test",
                            .qid = "Q",
                            .sender = "a@b.test",
                            .arrival = 1,
                            .rcpts = &r,
                            .nrcpts = 1,
                            .original = orig8,
                            .original_len = sizeof orig8 - 1};
    struct buf out;
    buf_init(&out, 1 << 20);
    assert_int_equal(notify_dsn_build(&info, &out), 0);
    check_lines(out.ptr, out.len);
    char boundary[100], v[1024];
    struct part parts[8];
    const char *top;
    size_t toplen;
    assert_int_equal(split_message(out.ptr, out.len, boundary, sizeof boundary, parts, 8, &top, &toplen), 3);
    assert_true(header_get(top, toplen, "Content-Transfer-Encoding", v, sizeof v));
    assert_string_equal(v, "8bit");
    assert_true(header_get(parts[2].hdr, parts[2].hdrlen, "Content-Transfer-Encoding", v, sizeof v));
    assert_string_equal(v, "8bit");
    /* the delivery-status part stays ASCII */
    for (size_t i = 0; i < parts[1].bodylen; i++)
        assert_true((unsigned char)parts[1].body[i] < 0x80);
    /* the human-readable text keeps the UTF-8 address */
    char *text = b64decode(parts[0].body, parts[0].bodylen);
    assert_non_null(strstr(text, "<ユーザー@dest.test>"));
    free(text);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dsn_structure),
        cmocka_unit_test(test_dsn_injection),
        cmocka_unit_test(test_dsn_delayed_and_limits),
        cmocka_unit_test(test_dsn_8bit_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
