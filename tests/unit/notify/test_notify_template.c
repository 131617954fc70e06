/* test_notify_template.c - unit tests for the notification templates: every
 * shipped template in both languages with every variable, parsed back with
 * the inspection engine (mime_analyse: Japanese subjects round-trip through
 * RFC 2047), header injection, long and invalid values, the tenant
 * override, the queued envelope and the loop guard. */
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
#include "mime/mime.h"
#include "notify/notify.h"

static const char *const VALUES[NOTIFY_NVARS] = {
    [NOTIFY_VAR_SENDER] = "sender@example.net",
    [NOTIFY_VAR_RECIPIENTS] = "alice@acme.test, bob@acme.test",
    [NOTIFY_VAR_SUBJECT] = "請求書のご送付について",
    [NOTIFY_VAR_RULE] = "ウイルス対策ルール",
    [NOTIFY_VAR_DETECTIONS] = "Eicar-Test-Signature",
    [NOTIFY_VAR_DATE] = "2026-01-01 09:00:00 +0900",
    [NOTIFY_VAR_QID] = "0123456789ABCDEF0123",
    [NOTIFY_VAR_TENANT] = "株式会社アクメ",
    [NOTIFY_VAR_QUARANTINE_ID] = "0123456789abcdef0123456789abcdef",
    [NOTIFY_VAR_ATTACHMENTS] = "invoice.exe",
    [NOTIFY_VAR_SIZE] = "160 MB",
    [NOTIFY_VAR_SIZE_LIMIT] = "150 MB",
    [NOTIFY_VAR_REASON] = "実行可能ファイル",
};

/* check_lines - CRLF only, no NUL, no line over 998 */
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
}

/* header_count - fields called name in the header block */
static int header_count(const struct analysis *a, const char *name)
{
    int n = 0;
    for (size_t i = 0; i < a->nheaders; i++)
        n += strcasecmp(a->headers[i].name, name) == 0;
    return n;
}

static const char *header(const struct analysis *a, const char *name)
{
    for (size_t i = 0; i < a->nheaders; i++)
        if (strcasecmp(a->headers[i].name, name) == 0)
            return a->headers[i].value;
    return NULL;
}

static struct analysis *render_parse(const struct notify_template *t, const struct notify_vars *v,
                                     const char *tenant, const char *const *to, size_t nto, struct buf *out)
{
    struct notify_message m = {.tpl = t,
                               .vars = v,
                               .hostname = "moat.test",
                               .tenant_name = tenant,
                               .to = to,
                               .nto = nto,
                               .qid = "FEDCBA98765432100000"};
    buf_reset(out);
    assert_int_equal(notify_render(&m, out), 0);
    check_lines(out->ptr, out->len);
    struct analysis *a = mime_analyse(out->ptr, out->len, NULL);
    assert_non_null(a);
    return a;
}

static void test_every_template_every_variable(void **state)
{
    (void)state;
    static const char *const langs[] = {"ja", "en"};
    struct notify_vars v;
    memcpy(v.v, VALUES, sizeof v.v);
    const char *to[] = {"admin@acme.test"};
    struct buf out;
    buf_init(&out, 4 << 20);
    for (const struct notify_default *d = notify_defaults; d->name; d++) {
        for (int l = 0; l < 2; l++) {
            struct notify_template t;
            char err[256];
            if (notify_template_load(d->name, langs[l], NULL, 0, NULL, &t, err, sizeof err) != 0)
                fail_msg("%s/%s: %s", d->name, langs[l], err);
            struct analysis *a = render_parse(&t, &v, "株式会社アクメ", to, 1, &out);
            /* the subject decodes back to the substituted text */
            assert_non_null(a->subject);
            assert_non_null(strstr(a->subject, VALUES[NOTIFY_VAR_SUBJECT]));
            assert_non_null(strstr(a->subject, "[Moat]"));
            if (strcmp(l == 0 ? "ja" : "en", "ja") == 0)
                assert_true((unsigned char)a->subject[7] >= 0x80); /* Japanese after "[Moat] " */
            /* every variable the template uses appears in the text, and no %VAR% is left */
            for (int k = 0; k < NOTIFY_NVARS; k++) {
                char pat[40];
                snprintf(pat, sizeof pat, "%%%s%%", notify_var_name(k));
                if (strstr(t.body, pat))
                    assert_non_null(strstr(a->text, VALUES[k]));
                assert_null(strstr(a->text, pat));
            }
            assert_string_equal(header(a, "Auto-Submitted"), "auto-generated");
            assert_string_equal(header(a, "X-Moat-Notification"), d->stem);
            assert_non_null(strstr(header(a, "From"), "postmaster@moat.test"));
            assert_non_null(strstr(header(a, "From"), "株式会社アクメ"));
            assert_non_null(strstr(header(a, "Message-ID"), "FEDCBA98765432100000"));
            assert_non_null(header(a, "Date"));
            assert_int_equal(a->nto, 1);
            assert_string_equal(a->to[0].address, "admin@acme.test");
            assert_true(notify_is_generated(out.ptr, out.len));
            analysis_free(a);
            notify_template_free(&t);
        }
    }
    buf_free(&out);
}

static void test_injection_and_bounds(void **state)
{
    (void)state;
    struct notify_template t = {.name = "x",
                                .lang = "en",
                                .subject = "S: %SUBJECT% / %SENDER%",
                                .body = "Body %SUBJECT%\nnext %REASON%\n"};
    struct notify_vars v = {{0}};
    v.v[NOTIFY_VAR_SUBJECT] = "hi\r\nBcc: victim@evil.test\r\n\r\nbody";
    v.v[NOTIFY_VAR_SENDER] = "a\x01\x7f\tb";
    v.v[NOTIFY_VAR_REASON] = "bad \xff\xfe utf8";
    const char *to[] = {"admin@acme.test>\r\nBcc: x@evil.test", "second@acme.test"};
    struct buf out;
    buf_init(&out, 4 << 20);
    struct analysis *a = render_parse(&t, &v, "Quote \" and \\ Corp", to, 2, &out);
    assert_int_equal(header_count(a, "Bcc"), 0);
    assert_string_equal(a->subject, "S: hi Bcc: victim@evil.test  body / a b");
    assert_non_null(strstr(a->text, "Body hi Bcc: victim@evil.test  body"));
    assert_non_null(strstr(a->text, "bad \xef\xbf\xbd\xef\xbf\xbd utf8")); /* U+FFFD twice */
    assert_int_equal(a->nto, 2);
    assert_null(strchr(a->to[0].address, '>'));
    assert_null(strchr(a->to[0].address, ' '));
    assert_string_equal(a->from[0].name, "Quote \" and \\ Corp");
    analysis_free(a);

    /* a very long Japanese subject: encoded words within limits, cut at a character */
    char longv[6000];
    size_t n = 0;
    while (n + 3 < sizeof longv) {
        memcpy(longv + n, "あ", 3);
        n += 3;
    }
    longv[n] = '\0';
    v.v[NOTIFY_VAR_SUBJECT] = longv;
    a = render_parse(&t, &v, NULL, to + 1, 1, &out);
    assert_non_null(a->subject);
    assert_true(strlen(a->subject) <= NOTIFY_SUBJECT_MAX);
    assert_int_equal(strlen(a->subject + 3) % 3, 0); /* "S: " then whole characters */
    for (const char *p = strstr(out.ptr, "=?UTF-8?B?"); p && p < strstr(out.ptr, "\r\n\r\n");
         p = strstr(p + 1, "=?UTF-8?B?"))
        assert_true(strstr(p, "?=") - p + 2 <= 75);
    analysis_free(a);
    /* the body value is bounded too */
    a = render_parse(&t, &v, NULL, to + 1, 1, &out);
    assert_true(a->text_len < 2 * NOTIFY_VALUE_MAX + 100);
    analysis_free(a);

    /* %% and unknown words */
    struct notify_template t2 = {
        .name = "y", .lang = "en", .subject = "100%% %NOPE% %SUBJECT", .body = "%%QID%%\n"};
    v.v[NOTIFY_VAR_SUBJECT] = "x";
    a = render_parse(&t2, &v, NULL, to + 1, 1, &out);
    assert_string_equal(a->subject, "100% %NOPE% %SUBJECT");
    assert_non_null(strstr(a->text, "%QID%"));
    analysis_free(a);
    /* no recipients / too many */
    struct notify_message m = {.tpl = &t, .vars = &v, .to = to, .nto = 0};
    assert_int_equal(notify_render(&m, &out), -1);
    m.nto = NOTIFY_RCPTS_MAX + 1;
    assert_int_equal(notify_render(&m, &out), -1);
    buf_free(&out);
}

static void test_original_headers(void **state)
{
    (void)state;
    struct notify_template t = {.name = "Virus detection", .lang = "en", .subject = "V", .body = "b\n"};
    static const char orig[] =
        "From: x@y\r\nSubject: =?ISO-2022-JP?B?GyRCJEgbKEI=?=\r\nX-Big: \xe3\x81\x82\r\n"
        "\r\nsecret body EICAR\r\n";
    const char *to[] = {"admin@acme.test"};
    struct notify_message m = {.tpl = &t,
                               .hostname = "moat.test",
                               .to = to,
                               .nto = 1,
                               .original = orig,
                               .original_len = sizeof orig - 1};
    struct buf out;
    buf_init(&out, 1 << 20);
    assert_int_equal(notify_render(&m, &out), 0);
    check_lines(out.ptr, out.len);
    assert_non_null(strstr(out.ptr, "multipart/mixed"));
    assert_non_null(strstr(out.ptr, "Content-Type: text/rfc822-headers"));
    assert_non_null(strstr(out.ptr, "X-Big: \xe3\x81\x82"));
    assert_null(strstr(out.ptr, "secret body")); /* headers only */
    assert_non_null(strstr(out.ptr, "X-Moat-Notification: virus-detection"));
    struct analysis *a = mime_analyse(out.ptr, out.len, NULL);
    assert_string_equal(a->subject, "V");
    analysis_free(a);
    buf_free(&out);
}

static void test_load_and_override(void **state)
{
    (void)state;
    struct notify_template t;
    char err[256];
    assert_int_equal(notify_template_load("virus-detection", "en", NULL, 0, NULL, &t, err, sizeof err), 0);
    assert_string_equal(t.name, "Virus detection");
    assert_string_equal(t.subject, "[Moat] Virus detected: %SUBJECT%");
    assert_true(t.body[0] != '\n' && t.body[0] != '#');
    notify_template_free(&t);
    assert_int_equal(notify_template_load("VIRUS DETECTION", "ja", NULL, 0, NULL, &t, err, sizeof err), 0);
    notify_template_free(&t);
    assert_int_equal(notify_template_load("Nope", "en", NULL, 0, NULL, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "no template"));
    assert_int_equal(notify_template_load("Virus detection", "fr", NULL, 0, NULL, &t, err, sizeof err), -1);
    assert_int_equal(
        notify_template_load("Virus detection", "en", NULL, 0, "/nonexistent", &t, err, sizeof err), -1);
    /* the tenant's own template wins, by name and language */
    struct notify_template mine[] = {
        {.name = "Virus detection", .lang = "en", .subject = "Ours: %SUBJECT%", .body = "custom\n"},
        {.name = "Custom one", .lang = "ja", .subject = "独自", .body = "本文\n"},
    };
    assert_int_equal(notify_template_load("virus detection", "en", mine, 2, NULL, &t, err, sizeof err), 0);
    assert_string_equal(t.subject, "Ours: %SUBJECT%");
    notify_template_free(&t);
    assert_int_equal(notify_template_load("Virus detection", "ja", mine, 2, NULL, &t, err, sizeof err), 0);
    assert_string_not_equal(t.subject, "Ours: %SUBJECT%");
    notify_template_free(&t);
    assert_int_equal(notify_template_load("Custom one", "ja", mine, 2, NULL, &t, err, sizeof err), 0);
    assert_string_equal(t.subject, "独自");
    notify_template_free(&t);

    /* parsing */
    struct notify_template p = {0};
    static const char good[] = "# c\r\n#c2\r\nSubject:  Hello %TENANT%\r\n\r\nLine 1\r\n";
    assert_int_equal(notify_template_parse(good, sizeof good - 1, &p, err, sizeof err), 0);
    assert_string_equal(p.subject, "Hello %TENANT%");
    assert_string_equal(p.body, "Line 1\r\n");
    notify_template_free(&p);
    assert_int_equal(notify_template_parse("Body only\n", 10, &p, err, sizeof err), -1);
    assert_int_equal(notify_template_parse("Subject: a\n\0b", 13, &p, err, sizeof err), -1);
}

static void test_prepare_and_loop_guard(void **state)
{
    (void)state;
    struct notify_template t = {
        .name = "Rule triggered", .lang = "en", .subject = "R %SUBJECT%", .body = "b\n"};
    struct notify_vars v = {{0}};
    v.v[NOTIFY_VAR_SUBJECT] = "日本語";
    const char *to[] = {"admin@acme.test", "sec@acme.test"};
    struct notify_message m = {.tpl = &t, .vars = &v, .hostname = "moat.test", .to = to, .nto = 2};
    struct buf out;
    struct queue_envelope env;
    buf_init(&out, 1 << 20);
    assert_int_equal(notify_prepare(&m, &out, &env), 0);
    assert_true(core_qid_valid(env.qid));
    assert_string_equal(env.sender, "");
    assert_true(env.is_dsn);
    assert_int_equal(env.nrcpts, 2);
    assert_string_equal(env.rcpts[1], "sec@acme.test");
    assert_non_null(strstr(out.ptr, env.qid)); /* Received and Message-ID */
    assert_non_null(env.subject);
    assert_true(notify_is_generated(out.ptr, out.len));
    queue_envelope_free(&env);
    /* an address that is not one */
    const char *bad[] = {"not an address"};
    m.to = bad;
    m.nto = 1;
    buf_reset(&out);
    assert_int_equal(notify_prepare(&m, &out, &env), -1);
    buf_free(&out);

    static const char plain[] = "From: a@b\r\nSubject: x\r\n\r\nAuto-Submitted: auto-generated\r\n";
    assert_false(notify_is_generated(plain, sizeof plain - 1));
    static const char no[] = "Auto-Submitted: no\r\n\r\n";
    assert_false(notify_is_generated(no, sizeof no - 1));
    static const char replied[] = "Auto-Submitted: auto-replied\r\n\r\n";
    assert_true(notify_is_generated(replied, sizeof replied - 1));
    static const char marker[] = "x-moat-notification: rule-triggered\r\n\r\n";
    assert_true(notify_is_generated(marker, sizeof marker - 1));
    assert_false(notify_is_generated(NULL, 0));
}

/* the End User Console's password-set mail: both languages, the code, its
 * expiry and the console's address; a hostile display name cannot add headers */
static void test_enduser_mail(void **state)
{
    (void)state;
    struct notify_enduser_info info = {.company_id = "acme",
                                       .tenant_name = "株式会社アクメ",
                                       .to = "taro@acme.test",
                                       .name = "山田 太郎\r\nBcc: evil@example.net",
                                       .code = "ABCDE-FGH23",
                                       .expires = 1767225600, /* 2026-01-01 00:00:00 UTC */
                                       .hostname = "moat.test"};
    struct buf out;
    struct queue_envelope env;
    char err[256];
    buf_init(&out, 1 << 20);
    assert_int_equal(notify_enduser_prepare(&info, &out, &env, err, sizeof err), 0);
    check_lines(out.ptr, out.len);
    assert_int_equal(env.nrcpts, 1);
    assert_string_equal(env.rcpts[0], "taro@acme.test");
    assert_string_equal(env.sender, "");
    struct analysis *a = mime_analyse(out.ptr, out.len, NULL);
    assert_non_null(a);
    assert_non_null(strstr(a->subject, "エンドユーザーコンソール"));
    assert_non_null(strstr(a->subject, "Set your End User Console password"));
    assert_non_null(strstr(a->text, "ABCDE-FGH23"));
    assert_non_null(strstr(a->text, "2026-01-01 00:00:00 UTC"));
    assert_non_null(strstr(a->text, "https://moat.test/euc/"));
    assert_non_null(strstr(a->text, "株式会社アクメ"));
    assert_non_null(strstr(a->text, "山田 太郎"));
    assert_non_null(strstr(a->text, "(English follows)"));
    assert_null(strstr(a->text, "%CODE%"));
    assert_non_null(header(a, "X-Moat-Notification")); /* loop guard */
    assert_int_equal(header_count(a, "Bcc"), 0);
    assert_int_equal(a->nto, 1);
    analysis_free(a);
    queue_envelope_free(&env);
    /* no name: the address stands for it; the console's address when configured */
    info.name = "";
    info.console_url = "https://moat.example.com:8443";
    buf_reset(&out);
    assert_int_equal(notify_enduser_prepare(&info, &out, &env, err, sizeof err), 0);
    a = mime_analyse(out.ptr, out.len, NULL);
    assert_non_null(strstr(a->text, "taro@acme.test 様"));
    assert_non_null(strstr(a->text, "https://moat.example.com:8443/euc/"));
    analysis_free(a);
    queue_envelope_free(&env);
    buf_free(&out);
}

int main(void)
{
    log_init("test", false, LOG_LVL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_template_every_variable),
        cmocka_unit_test(test_injection_and_bounds),
        cmocka_unit_test(test_original_headers),
        cmocka_unit_test(test_load_and_override),
        cmocka_unit_test(test_prepare_and_loop_guard),
        cmocka_unit_test(test_enduser_mail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
