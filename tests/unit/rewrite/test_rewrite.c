/*
 * test_rewrite.c - the message modification library (rewrite.h): every
 * operation alone and combined, English and Japanese (ISO-2022-JP,
 * Shift_JIS, EUC-JP, UTF-8 base64) subjects and bodies, signed mail,
 * removals at every level, limits and malformed input. Every modified
 * message is parsed again with mime_analyse: no "malformed" flag, the
 * expected subject / text / attachments, and the parts no operation
 * touched byte-identical to the input.
 */
#include "core/core.h"

#include <setjmp.h>
#include <cmocka.h>

#include "mime/mime.h"
#include "rewrite/rewrite.h"

/* ---------------------------------------------------------------- helpers */
/* crlf - s with every LF as CRLF (caller frees) */
static char *crlf(const char *s)
{
    struct buf b;
    buf_init(&b, 4 * strlen(s) + 16);
    for (; *s; s++) {
        if (*s == '\n')
            buf_append(&b, "\r\n", 2);
        else
            buf_append(&b, s, 1);
    }
    char *r = xstrdup(buf_cstr(&b));
    buf_free(&b);
    return r;
}

static bool has_flag(const struct analysis *a, const char *name)
{
    for (size_t i = 0; i < a->nflags; i++)
        if (strcmp(a->flags[i].name, name) == 0)
            return true;
    return false;
}

/* rewrite - run ops on msg, expect success; the result is NUL-terminated */
static char *rewrite(const char *msg, const struct rewrite_ops *ops, struct rewrite_report *rep)
{
    struct buf out;
    char err[256] = "";
    struct rewrite_report local;
    if (!rep)
        rep = &local;
    int rc = rewrite_message(msg, strlen(msg), ops, &out, rep, err, sizeof err);
    if (rc != 0)
        fail_msg("rewrite_message: %s", err);
    char *r = xstrndup(out.ptr, out.len);
    assert_int_equal(strlen(r), out.len);
    buf_free(&out);
    if (rep == &local)
        rewrite_report_free(rep);
    return r;
}

/* reparse - the result parses cleanly (caller analysis_free) */
static struct analysis *reparse(const char *msg)
{
    struct analysis *a = mime_analyse(msg, strlen(msg), NULL);
    assert_non_null(a);
    for (size_t i = 0; i < a->nflags; i++)
        if (strcmp(a->flags[i].name, "malformed") == 0)
            fail_msg("malformed after rewrite: %s\n%s", a->flags[i].reason, msg);
    return a;
}

static const struct rewrite_action *action(const struct rewrite_report *r, const char *op, const char *target)
{
    for (size_t i = 0; i < r->nactions; i++)
        if (strcmp(r->actions[i].op, op) == 0 && (!target || strcmp(r->actions[i].target, target) == 0))
            return &r->actions[i];
    return NULL;
}

/* header_lines_ok - every line of the header block at most max columns */
static void header_lines_ok(const char *msg, size_t max)
{
    const char *end = strstr(msg, "\r\n\r\n");
    const char *end2 = strstr(msg, "\n\n");
    if (!end || (end2 && end2 < end))
        end = end2;
    for (const char *p = msg; p < end;) {
        const char *nl = strchr(p, '\n');
        size_t n = (size_t)(nl - p);
        if (n && p[n - 1] == '\r')
            n--;
        if (n > max)
            fail_msg("header line of %zu columns: %.*s", n, (int)n, p);
        p = nl + 1;
    }
}

/* ---------------------------------------------------------------- messages */
static const char plain_msg[] = "Received: from a.example ([192.0.2.1])\n"
                                "\tby mx.moat.test (Moat) with ESMTP id 0123456789ABCDEF0123;\n"
                                "\tSat, 28 Nov 2026 10:00:00 +0000\n"
                                "From: Alice <alice@sender.example>\n"
                                "To: bob@moat.test\n"
                                "Subject: Quarterly report\n"
                                "Message-ID: <1@sender.example>\n"
                                "\n"
                                "Hello Bob,\n"
                                "the report is attached.\n";

static const char mixed_msg[] = "From: Alice <alice@sender.example>\n"
                                "To: bob@moat.test\n"
                                "Subject: invoice\n"
                                "MIME-Version: 1.0\n"
                                "Content-Type: multipart/mixed; boundary=\"XyZ\"\n"
                                "\n"
                                "This is a multi-part message in MIME format.\n"
                                "--XyZ\n"
                                "Content-Type: multipart/alternative; boundary=\"alt\"\n"
                                "\n"
                                "--alt\n"
                                "Content-Type: text/plain; charset=utf-8\n"
                                "Content-Transfer-Encoding: 8bit\n"
                                "\n"
                                "Please pay the invoice.\n"
                                "--alt\n"
                                "Content-Type: text/html; charset=utf-8\n"
                                "Content-Transfer-Encoding: quoted-printable\n"
                                "\n"
                                "<html><head><title>x</title></head><body class=3D\"m\"><p>Please pay the=\n"
                                " invoice.</p></body></html>\n"
                                "--alt--\n"
                                "--XyZ\n"
                                "Content-Type: application/x-msdownload; name=\"evil.exe\"\n"
                                "Content-Disposition: attachment; filename=\"evil.exe\"\n"
                                "Content-Transfer-Encoding: base64\n"
                                "\n"
                                "TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
                                "--XyZ\n"
                                "Content-Type: image/png; name=\"logo.png\"\n"
                                "Content-Disposition: attachment; filename=\"logo.png\"\n"
                                "Content-Transfer-Encoding: base64\n"
                                "\n"
                                "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAA\n"
                                "AABJRU5ErkJggg==\n"
                                "--XyZ--\n"
                                "epilogue\n";

/* the bytes of the logo part, which no operation may change */
static const char logo_part[] = "--XyZ\n"
                                "Content-Type: image/png; name=\"logo.png\"\n"
                                "Content-Disposition: attachment; filename=\"logo.png\"\n"
                                "Content-Transfer-Encoding: base64\n"
                                "\n"
                                "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAA\n"
                                "AABJRU5ErkJggg==\n"
                                "--XyZ--\n"
                                "epilogue\n";

/* ---------------------------------------------------------------- subject */
static void test_subject_ascii(void **state)
{
    (void)state;
    struct rewrite_ops ops = {.subject_tag = "Spam:"};
    char *r = rewrite(plain_msg, &ops, NULL);
    /* exactly one field changed, everything else byte for byte */
    const char *at = strstr(plain_msg, "Subject: Quarterly report\n");
    size_t pre = (size_t)(at - plain_msg);
    assert_memory_equal(r, plain_msg, pre);
    assert_string_equal(r + pre + strlen("Subject: Spam: Quarterly report\n"),
                        plain_msg + pre + strlen("Subject: Quarterly report\n"));
    assert_true(strncmp(r + pre, "Subject: Spam: Quarterly report\n", 32) == 0);
    struct analysis *a = reparse(r);
    assert_string_equal(a->subject, "Spam: Quarterly report");
    analysis_free(a);
    free(r);
    /* CRLF in, CRLF out */
    char *c = crlf(plain_msg);
    r = rewrite(c, &ops, NULL);
    assert_non_null(strstr(r, "\r\nSubject: Spam: Quarterly report\r\n"));
    for (const char *p = r; (p = strchr(p, '\n')) != NULL; p++)
        assert_true(p > r && p[-1] == '\r');
    free(r);
    free(c);
}

static void test_subject_japanese(void **state)
{
    (void)state;
    /* ISO-2022-JP subject "お知らせ" (B encoding), ASCII and Japanese tags */
    static const char msg[] = "From: a@sender.example\nTo: b@moat.test\n"
                              "Subject: =?ISO-2022-JP?B?GyRCJCpDTiRpJDsbKEI=?=\n\nbody\n";
    struct rewrite_ops ops = {.subject_tag = "Spam:"};
    char *r = rewrite(msg, &ops, NULL);
    assert_non_null(strstr(r, "Subject: Spam: =?ISO-2022-JP?B?GyRCJCpDTiRpJDsbKEI=?=\n"));
    struct analysis *a = reparse(r);
    assert_string_equal(a->subject, "Spam: お知らせ");
    analysis_free(a);
    free(r);
    ops.subject_tag = "[迷惑メール]";
    r = rewrite(msg, &ops, NULL);
    assert_non_null(strstr(r, "Subject: =?UTF-8?B?"));
    assert_null(strstr(r, "迷惑")); /* encoded, never raw 8-bit in a header */
    a = reparse(r);
    assert_string_equal(a->subject, "[迷惑メール] お知らせ");
    analysis_free(a);
    header_lines_ok(r, 78);
    free(r);
    /* Japanese tag before plain ASCII text; Shift_JIS and UTF-8 Q subjects */
    static const char ascii_subj[] = "From: a@sender.example\nSubject: Meeting\n\nbody\n";
    r = rewrite(ascii_subj, &ops, NULL);
    a = reparse(r);
    assert_string_equal(a->subject, "[迷惑メール] Meeting");
    analysis_free(a);
    free(r);
    static const char sjis[] = "From: a@sender.example\nSubject: =?Shift_JIS?B?gqiSbYLngrk=?=\n\nbody\n";
    r = rewrite(sjis, &ops, NULL);
    a = reparse(r);
    assert_string_equal(a->subject, "[迷惑メール] お知らせ");
    analysis_free(a);
    free(r);
    static const char utf8q[] = "From: a@sender.example\nSubject: =?UTF-8?Q?=E3=81=8A=E7=9F=A5=E3=82=89=E3=81=9B?= now\n\nb\n";
    r = rewrite(utf8q, &ops, NULL);
    a = reparse(r);
    assert_string_equal(a->subject, "[迷惑メール] お知らせ now");
    analysis_free(a);
    free(r);
}

static void test_subject_fold_and_long_tag(void **state)
{
    (void)state;
    static const char msg[] = "From: a@sender.example\n"
                              "Subject: =?UTF-8?B?44GK55+l44KJ44Gb44GK55+l44KJ44Gb44GK55+l44KJ44Gb44GK55+l44KJ44Gb?=\n"
                              "\t=?UTF-8?B?44GK55+l44KJ44Gb?=\n"
                              "Date: Sat, 28 Nov 2026 10:00:00 +0000\n\nbody\n";
    struct rewrite_ops ops = {.subject_tag = "【重要・迷惑メールの可能性があります・ご注意ください】"};
    char *r = rewrite(msg, &ops, NULL);
    header_lines_ok(r, 78);
    struct analysis *a = reparse(r);
    assert_string_equal(a->subject, "【重要・迷惑メールの可能性があります・ご注意ください】 "
                                    "お知らせお知らせお知らせお知らせお知らせ");
    analysis_free(a);
    free(r);
    /* a long ASCII subject: the tag goes on the first line, the rest folds */
    static const char lmsg[] = "From: a@sender.example\n"
                               "Subject: This is a rather long subject line that nearly fills the line\n\nb\n";
    ops.subject_tag = "[SUSPECTED SPAM]";
    r = rewrite(lmsg, &ops, NULL);
    header_lines_ok(r, 78);
    a = reparse(r);
    assert_string_equal(a->subject, "[SUSPECTED SPAM] This is a rather long subject line that nearly fills the line");
    analysis_free(a);
    free(r);
}

static void test_subject_no_double_and_absent(void **state)
{
    (void)state;
    struct rewrite_ops ops = {.subject_tag = "Spam:"};
    static const char tagged[] = "From: a@sender.example\nSubject: spam: already\n\nbody\n";
    struct rewrite_report rep;
    char *r = rewrite(tagged, &ops, &rep);
    assert_string_equal(r, tagged);
    assert_false(rep.changed);
    const struct rewrite_action *act = action(&rep, "subject_tag", NULL);
    assert_non_null(act);
    assert_false(act->done);
    assert_string_equal(act->detail, "already tagged");
    rewrite_report_free(&rep);
    free(r);
    /* an encoded subject that decodes to the tag is tagged already too */
    static const char enc[] = "From: a@sender.example\nSubject: =?UTF-8?B?W+i/t+aDkeODoeODvOODq10g5Lu25ZCN?=\n\nb\n";
    ops.subject_tag = "[迷惑メール]";
    r = rewrite(enc, &ops, NULL);
    assert_string_equal(r, enc);
    free(r);
    /* no Subject: one is added at the end of the header block */
    static const char none[] = "From: a@sender.example\nTo: b@moat.test\n\nbody\n";
    r = rewrite(none, &ops, &rep);
    assert_non_null(strstr(r, "To: b@moat.test\nSubject: =?UTF-8?B?"));
    struct analysis *a = reparse(r);
    assert_string_equal(a->subject, "[迷惑メール]");
    analysis_free(a);
    assert_true(action(&rep, "subject_tag", NULL)->done);
    rewrite_report_free(&rep);
    free(r);
    /* an empty Subject */
    static const char empty[] = "From: a@sender.example\nSubject:\nTo: b@moat.test\n\nbody\n";
    ops.subject_tag = "Spam:";
    r = rewrite(empty, &ops, NULL);
    assert_non_null(strstr(r, "\nSubject: Spam:\nTo:"));
    free(r);
}

/* ---------------------------------------------------------------- signed */
static const char smime_signed[] = "From: a@sender.example\nSubject: signed\nMIME-Version: 1.0\n"
                                   "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; "
                                   "micalg=sha-256; boundary=\"sig\"\n\n"
                                   "--sig\nContent-Type: text/plain\n\nsigned text\n"
                                   "--sig\nContent-Type: application/pkcs7-signature; name=smime.p7s\n"
                                   "Content-Transfer-Encoding: base64\n\nMIAGCSqGSIb3DQEHAqCAMIACAQE=\n--sig--\n";
static const char pkcs7_signed[] = "From: a@sender.example\nSubject: signed\nMIME-Version: 1.0\n"
                                   "Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\n"
                                   "Content-Transfer-Encoding: base64\n\nMIAGCSqGSIb3DQEHAqCAMIACAQE=\n";
static const char pgp_inline[] = "From: a@sender.example\nSubject: signed\n\n"
                                 "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nhello\n"
                                 "-----BEGIN PGP SIGNATURE-----\n\niQEzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n";
static const char pgp_mime[] = "From: a@sender.example\nSubject: signed\nMIME-Version: 1.0\n"
                               "Content-Type: multipart/signed; micalg=pgp-sha256; "
                               "protocol=\"application/pgp-signature\"; boundary=\"p\"\n\n"
                               "--p\nContent-Type: text/plain\n\nhello\n"
                               "--p\nContent-Type: application/pgp-signature\n\n-----BEGIN PGP SIGNATURE-----\n"
                               "iQEz\n-----END PGP SIGNATURE-----\n--p--\n";

static void test_signed(void **state)
{
    (void)state;
    const char *const msgs[] = {smime_signed, pkcs7_signed, pgp_inline, pgp_mime};
    for (size_t i = 0; i < 4; i++) {
        struct rewrite_ops ops = {.subject_tag = "Spam:", .tag_skip_signed = true, .stamp_text = "stamp"};
        struct rewrite_report rep;
        char *r = rewrite(msgs[i], &ops, &rep);
        assert_true(rep.is_signed);
        assert_string_equal(r, msgs[i]);
        assert_false(action(&rep, "subject_tag", NULL)->done);
        assert_false(action(&rep, "stamp", NULL)->done);
        rewrite_report_free(&rep);
        free(r);
        /* without the option the tag goes on */
        ops.tag_skip_signed = false;
        ops.stamp_text = NULL;
        r = rewrite(msgs[i], &ops, &rep);
        assert_true(rep.is_signed);
        assert_non_null(strstr(r, "Subject: Spam: signed"));
        rewrite_report_free(&rep);
        free(r);
    }
    /* unsigned mail is tagged with the option on */
    struct rewrite_ops ops = {.subject_tag = "Spam:", .tag_skip_signed = true};
    struct rewrite_report rep;
    char *r = rewrite(plain_msg, &ops, &rep);
    assert_false(rep.is_signed);
    assert_non_null(strstr(r, "Subject: Spam: Quarterly"));
    rewrite_report_free(&rep);
    free(r);
}

/* ---------------------------------------------------------------- headers */
static void test_headers(void **state)
{
    (void)state;
    struct rewrite_header h[] = {
        {"X-Moat-Scan", "spam; score=0.99; rule=\"Spam or Phish\""},
        {"X-Injected", "a\r\nBcc: victim@example.com\r\n\r\nbody"},
        {"X-Moat-Rule", "迷惑メール対策ルール (spam)"},
        {"X-Long", "aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp qqqq rrrr "
                   "ssss tttt"},
    };
    struct rewrite_ops ops = {.headers = h, .nheaders = 4};
    char *r = rewrite(plain_msg, &ops, NULL);
    /* after Moat's Received field, before the rest, in order */
    const char *recv_end = strstr(plain_msg, "From: Alice");
    size_t pre = (size_t)(recv_end - plain_msg);
    assert_memory_equal(r, plain_msg, pre);
    assert_true(strncmp(r + pre, "X-Moat-Scan: spam; score=0.99; rule=\"Spam or Phish\"\n", 52) == 0);
    assert_non_null(strstr(r, "X-Injected: a Bcc: victim@example.com body\n"));
    assert_non_null(strstr(r, "X-Moat-Rule: =?UTF-8?B?"));
    assert_non_null(strstr(r, "\n\nHello Bob,\n")); /* body unchanged */
    header_lines_ok(r, 78);
    struct analysis *a = reparse(r);
    size_t found = 0;
    for (size_t i = 0; i < a->nheaders; i++) {
        assert_true(strcasecmp(a->headers[i].name, "Bcc") != 0);
        if (strcmp(a->headers[i].name, "X-Moat-Rule") == 0) {
            assert_string_equal(a->headers[i].value, "迷惑メール対策ルール (spam)");
            found++;
        }
        if (strcmp(a->headers[i].name, "X-Long") == 0) {
            assert_string_equal(a->headers[i].value, h[3].value);
            found++;
        }
    }
    assert_int_equal(found, 2);
    analysis_free(a);
    free(r);
}

static void test_headers_top_and_invalid(void **state)
{
    (void)state;
    /* no Moat Received first: at the very top */
    struct rewrite_header h[] = {{"X-Moat-Scan", "clean"}};
    struct rewrite_ops ops = {.headers = h, .nheaders = 1};
    static const char msg[] = "Received: from elsewhere by other.example; Sat, 28 Nov 2026\nSubject: x\n\nb\n";
    char *r = rewrite(msg, &ops, NULL);
    assert_true(strncmp(r, "X-Moat-Scan: clean\nReceived: from elsewhere", 41) == 0);
    assert_string_equal(r + strlen("X-Moat-Scan: clean\n"), msg);
    free(r);
    /* invalid names are an error, nothing is written */
    const char *bad[] = {"", "X Bad", "X-Bad:", "X-\xe6\x97\xa5", "X-\nBad"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rewrite_header hb[] = {{bad[i], "v"}};
        struct rewrite_ops ob = {.headers = hb, .nheaders = 1};
        struct buf out;
        struct rewrite_report rep;
        char err[256] = "";
        assert_int_equal(rewrite_message(msg, strlen(msg), &ob, &out, &rep, err, sizeof err), -1);
        assert_true(err[0] != '\0');
        assert_int_equal(out.len, 0);
        assert_int_equal(rep.nactions, 0);
    }
}

/* ---------------------------------------------------------------- stamp */
static void test_stamp_plain(void **state)
{
    (void)state;
    struct rewrite_ops ops = {.stamp_text = "Scanned by Moat."};
    char *r = rewrite(plain_msg, &ops, NULL);
    assert_non_null(strstr(r, "\n\nScanned by Moat.\n\nHello Bob,\nthe report is attached.\n"));
    struct analysis *a = reparse(r);
    assert_non_null(strstr(a->text, "Scanned by Moat.\n\nHello Bob"));
    analysis_free(a);
    free(r);
    ops.stamp_bottom = true;
    char *c = crlf(plain_msg);
    r = rewrite(c, &ops, NULL);
    assert_non_null(strstr(r, "\r\n\r\nHello Bob,\r\nthe report is attached.\r\n\r\nScanned by Moat.\r\n"));
    free(r);
    free(c);
}

static void test_stamp_mixed(void **state)
{
    (void)state;
    struct rewrite_ops ops = {.stamp_text = "Caution: <external> sender & co", .stamp_bottom = true};
    struct rewrite_report rep;
    char *r = rewrite(mixed_msg, &ops, &rep);
    /* the attachments are untouched, byte for byte */
    assert_non_null(strstr(r, logo_part));
    assert_non_null(strstr(r, "TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n--XyZ\n"));
    assert_true(strncmp(r, mixed_msg, strstr(mixed_msg, "--alt\n") - mixed_msg) == 0);
    assert_true(action(&rep, "stamp", "1.1.1")->done);
    assert_true(action(&rep, "stamp", "1.1.2")->done);
    assert_null(action(&rep, "stamp", "1.2"));
    rewrite_report_free(&rep);
    struct analysis *a = reparse(r);
    assert_non_null(strstr(a->text, "Please pay the invoice.\n\nCaution: <external> sender & co"));
    assert_non_null(strstr(a->html_text, "Caution: <external> sender & co"));
    assert_int_equal(a->nattachments, 2);
    analysis_free(a);
    free(r);
    /* top: right after the <body ...> tag */
    ops.stamp_bottom = false;
    r = rewrite(mixed_msg, &ops, NULL);
    a = reparse(r);
    assert_non_null(strstr(a->text, "Caution: <external> sender & co\n\nPlease pay the invoice."));
    analysis_free(a);
    free(r);
}

/* a one-part message in a charset, transfer encoding and body */
static char *one_part(const char *charset, const char *cte, const char *body)
{
    struct buf b;
    buf_init(&b, 65536);
    buf_printf(&b, "From: a@sender.example\nSubject: test\nMIME-Version: 1.0\n"
                   "Content-Type: text/plain; charset=%s\nContent-Transfer-Encoding: %s\n\n%s",
               charset, cte, body);
    char *r = xstrdup(buf_cstr(&b));
    buf_free(&b);
    return r;
}

static void test_stamp_japanese(void **state)
{
    (void)state;
    static const char *const stamp = "このメールは Moat で検査されました。";
    struct {
        const char *charset, *cte, *body, *text; /* text: what the body reads as */
        const char *declared;                   /* charset after the stamp */
    } cases[] = {
        /* ISO-2022-JP 7bit "お知らせです" */
        {"ISO-2022-JP", "7bit", "\x1b$B$*CN$i$;$G$9\x1b(B\n", "お知らせです", "ISO-2022-JP"},
        /* Shift_JIS base64 "お知らせです" */
        {"Shift_JIS", "base64", "gqiSbYLngrmCxYK3DQo=\n", "お知らせです", "Shift_JIS"},
        /* EUC-JP quoted-printable "お知らせです" */
        {"EUC-JP", "quoted-printable", "=A4=AA=C3=CE=A4=E9=A4=BB=A4=C7=A4=B9\n", "お知らせです", "EUC-JP"},
        /* UTF-8 base64 "お知らせです" */
        {"UTF-8", "base64", "44GK55+l44KJ44Gb44Gn44GZCg==\n", "お知らせです", "UTF-8"},
        /* Latin-1 cannot hold Japanese: the part becomes UTF-8 */
        {"ISO-8859-1", "quoted-printable", "caf=E9 cr=E8me\n", "café crème", "utf-8"},
        /* us-ascii 7bit + 8-bit stamp: UTF-8 and quoted-printable */
        {"us-ascii", "7bit", "plain ascii\n", "plain ascii", "utf-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int bottom = 0; bottom < 2; bottom++) {
            char *m = one_part(cases[i].charset, cases[i].cte, cases[i].body);
            struct rewrite_ops ops = {.stamp_text = stamp, .stamp_bottom = bottom};
            struct rewrite_report rep;
            char *r = rewrite(m, &ops, &rep);
            assert_true(action(&rep, "stamp", "1")->done);
            struct analysis *a = reparse(r);
            if (!strstr(a->text, stamp) || !strstr(a->text, cases[i].text))
                fail_msg("case %zu: text is %s\n%s", i, a->text, r);
            const char *first = bottom ? cases[i].text : stamp;
            assert_true(strstr(a->text, first) == a->text);
            assert_non_null(a->parts[0].charset);
            assert_true(strcasecmp(a->parts[0].charset, cases[i].declared) == 0);
            if (strcmp(cases[i].cte, "7bit") == 0 && strcmp(cases[i].declared, "utf-8") == 0)
                assert_string_equal(a->parts[0].transfer_encoding, "quoted-printable");
            else
                assert_string_equal(a->parts[0].transfer_encoding, cases[i].cte);
            analysis_free(a);
            rewrite_report_free(&rep);
            free(r);
            free(m);
        }
    }
}

static void test_stamp_html(void **state)
{
    (void)state;
    static const char msg[] = "From: a@sender.example\nSubject: h\nMIME-Version: 1.0\n"
                              "Content-Type: text/html; charset=iso-2022-jp\n\n"
                              "<html><BODY bgcolor='#fff' data-x=\"a>b\">\x1b$B$*CN$i$;\x1b(B</Body></html>\n";
    struct rewrite_ops ops = {.stamp_text = "Caution: <external> & \"co\"\n注意"};
    char *r = rewrite(msg, &ops, NULL);
    /* escaped, in the part's own charset, right after the whole <body> tag */
    assert_non_null(strstr(r, "data-x=\"a>b\"><div class=\"moat-stamp\">Caution: &lt;external&gt; &amp; "
                              "&quot;co&quot;<br>\n\x1b$BCm0U\x1b(B</div>\n\x1b$B$*CN"));
    struct analysis *a = reparse(r);
    assert_non_null(strstr(a->html_text, "Caution: <external> & \"co\"\n注意\nお知らせ"));
    analysis_free(a);
    free(r);
    ops.stamp_bottom = true;
    r = rewrite(msg, &ops, NULL);
    assert_non_null(strstr(r, "\x1b(B</div>\n</Body></html>\n"));
    free(r);
    /* a charset without the stamp's characters: numeric references */
    static const char latin[] = "From: a@sender.example\nSubject: h\nMIME-Version: 1.0\n"
                                "Content-Type: text/html; charset=iso-8859-1\n\n<p>caf\xe9</p>\n";
    ops.stamp_text = "注意";
    ops.stamp_bottom = false;
    r = rewrite(latin, &ops, NULL);
    assert_non_null(strstr(r, "<div class=\"moat-stamp\">&#x6CE8;&#x610F;</div>\n<p>caf\xe9</p>"));
    assert_non_null(strstr(r, "charset=iso-8859-1\n"));
    free(r);
}

static void test_stamp_not_attachments(void **state)
{
    (void)state;
    static const char msg[] = "From: a@sender.example\nSubject: t\nMIME-Version: 1.0\n"
                              "Content-Type: multipart/mixed; boundary=b\n\n"
                              "--b\nContent-Type: text/plain; name=notes.txt\n"
                              "Content-Disposition: attachment; filename=notes.txt\n\nfile text\n"
                              "--b\nContent-Type: message/rfc822\n\n"
                              "From: c@d.example\nSubject: inner\n\ninner text\n"
                              "--b--\n";
    struct rewrite_ops ops = {.stamp_text = "STAMP"};
    struct rewrite_report rep;
    char *r = rewrite(msg, &ops, &rep);
    assert_string_equal(r, msg); /* nothing to stamp: attachment and attached message */
    assert_false(action(&rep, "stamp", "message")->done);
    rewrite_report_free(&rep);
    free(r);
}

/* ---------------------------------------------------------------- removal */
static void test_remove(void **state)
{
    (void)state;
    struct rewrite_removal rm[] = {{"1.2", "blocked extension .exe"}};
    struct rewrite_ops ops = {.remove = rm, .nremove = 1};
    struct rewrite_report rep;
    char *r = rewrite(mixed_msg, &ops, &rep);
    assert_true(action(&rep, "remove", "1.2")->done);
    rewrite_report_free(&rep);
    assert_null(strstr(r, "TVqQ"));
    assert_non_null(strstr(r, logo_part));
    const char *alt = strstr(mixed_msg, "--XyZ\nContent-Type: application");
    assert_memory_equal(r, mixed_msg, (size_t)(alt - mixed_msg)); /* all before it unchanged */
    struct analysis *a = reparse(r);
    assert_int_equal(a->nattachments, 1);
    assert_string_equal(a->attachments[0].filename, "logo.png");
    assert_non_null(strstr(a->text, "Removed: evil.exe (application/x-msdownload, part 1.2)"));
    assert_non_null(strstr(a->text, "Reason: blocked extension .exe"));
    analysis_free(a);
    free(r);
    /* Japanese note; CRLF message */
    char *c = crlf(mixed_msg);
    ops.removal_note_lang = "ja";
    r = rewrite(c, &ops, NULL);
    a = reparse(r);
    assert_non_null(strstr(a->text, "このメッセージの一部は Moat により削除されました。"));
    assert_non_null(strstr(a->text, "削除されたもの: evil.exe"));
    assert_non_null(strstr(a->text, "理由: blocked extension .exe"));
    analysis_free(a);
    for (const char *p = r; (p = strchr(p, '\n')) != NULL; p++)
        assert_true(p > r && p[-1] == '\r');
    free(r);
    free(c);
}

static void test_remove_structures(void **state)
{
    (void)state;
    /* the only part of a multipart: the note keeps it non-empty */
    static const char only[] = "From: a@sender.example\nSubject: t\nMIME-Version: 1.0\n"
                               "Content-Type: multipart/mixed; boundary=b\n\n"
                               "--b\nContent-Type: application/zip; name=a.zip\n"
                               "Content-Transfer-Encoding: base64\n\nUEsDBAoAAAAAAA==\n--b--\n";
    struct rewrite_removal rm[] = {{"1.1", "virus Eicar-Test-Signature"}};
    struct rewrite_ops ops = {.remove = rm, .nremove = 1};
    char *r = rewrite(only, &ops, NULL);
    struct analysis *a = reparse(r);
    assert_int_equal(a->nattachments, 0);
    assert_int_equal(a->nparts, 2);
    assert_non_null(strstr(a->text, "Reason: virus Eicar-Test-Signature"));
    analysis_free(a);
    free(r);
    /* the whole body of a one-part message */
    static const char single[] = "From: a@sender.example\nSubject: t\nMIME-Version: 1.0\n"
                                 "Content-Type: application/octet-stream; name=x.bin\n"
                                 "Content-Transfer-Encoding: base64\n"
                                 "Content-Disposition: attachment; filename=x.bin\n\nAAECAw==\n";
    rm[0].part_path = "1";
    r = rewrite(single, &ops, NULL);
    assert_true(strncmp(r, "From: a@sender.example\nSubject: t\nMIME-Version: 1.0\n", 52) == 0);
    a = reparse(r);
    assert_int_equal(a->nattachments, 0);
    assert_string_equal(a->parts[0].content_type, "text/plain");
    assert_non_null(strstr(a->text, "Removed: x.bin"));
    analysis_free(a);
    free(r);
    /* inside an attached message; an empty part; an unknown path; nested twice */
    static const char nested[] = "From: a@sender.example\nSubject: fwd\nMIME-Version: 1.0\n"
                                 "Content-Type: multipart/mixed; boundary=o\n\n"
                                 "--o\nContent-Type: text/plain\n\nsee attached\n"
                                 "--o\nContent-Type: message/rfc822\n\n"
                                 "From: c@d.example\nSubject: inner\nMIME-Version: 1.0\n"
                                 "Content-Type: multipart/mixed; boundary=i\n\n"
                                 "--i\nContent-Type: text/plain\n\ninner text\n"
                                 "--i\nContent-Type: application/x-msdownload; name=e.exe\n\n"
                                 "--i--\n"
                                 "--o--\n";
    struct rewrite_removal rn[] = {{"1.2.1.2", "exe"}, {"9.9", "nothing"}, {"1.2.1.2", "twice"}};
    struct rewrite_ops on = {.remove = rn, .nremove = 3, .stamp_text = "S"};
    struct rewrite_report rep;
    r = rewrite(nested, &on, &rep);
    assert_true(action(&rep, "remove", "1.2.1.2")->done);
    assert_false(action(&rep, "remove", "9.9")->done);
    rewrite_report_free(&rep);
    a = reparse(r);
    assert_non_null(strstr(a->text, "see attached"));
    assert_non_null(strstr(a->text, "Removed: e.exe"));
    assert_non_null(strstr(r, "\ninner text\n--i\n")); /* the attached message's text is not stamped */
    analysis_free(a);
    free(r);
    /* removing a part and one inside it: one note */
    struct rewrite_removal rb[] = {{"1.2", "whole"}, {"1.2.1.1", "inner"}};
    struct rewrite_ops ob = {.remove = rb, .nremove = 2};
    r = rewrite(nested, &ob, &rep);
    assert_string_equal(action(&rep, "remove", "1.2.1.1")->detail, "removed with part 1.2");
    rewrite_report_free(&rep);
    a = reparse(r);
    assert_int_equal(a->nparts, 3);
    analysis_free(a);
    free(r);
}

/* ---------------------------------------------------------------- combined */
static void test_combined(void **state)
{
    (void)state;
    struct rewrite_header h[] = {{"X-Moat-Scan", "virus"}};
    struct rewrite_removal rm[] = {{"1.2", "virus Eicar-Test-Signature"}};
    struct rewrite_ops ops = {.subject_tag = "[ウイルス]",
                              .headers = h,
                              .nheaders = 1,
                              .stamp_text = "添付ファイルを削除しました。",
                              .stamp_html = "添付ファイルを<削除>しました。",
                              .remove = rm,
                              .nremove = 1,
                              .removal_note_lang = "ja"};
    for (int variant = 0; variant < 2; variant++) {
        char *m = variant ? crlf(mixed_msg) : xstrdup(mixed_msg);
        char *lp = variant ? crlf(logo_part) : xstrdup(logo_part);
        struct rewrite_report rep;
        char *r = rewrite(m, &ops, &rep);
        assert_true(rep.changed);
        assert_non_null(strstr(r, lp));
        struct analysis *a = reparse(r);
        assert_string_equal(a->subject, "[ウイルス] invoice");
        assert_int_equal(a->nattachments, 1);
        assert_non_null(strstr(a->text, "添付ファイルを削除しました。"));
        assert_non_null(strstr(a->html_text, "添付ファイルを<削除>しました。"));
        assert_non_null(strstr(a->text, "削除されたもの: evil.exe"));
        assert_string_equal(a->headers[0].name, "X-Moat-Scan");
        analysis_free(a);
        rewrite_report_free(&rep);
        free(r);
        free(lp);
        free(m);
    }
}

/* ---------------------------------------------------------------- limits, malformed */
static void expect_fail(const char *msg, size_t len, const struct rewrite_ops *ops)
{
    struct buf out;
    struct rewrite_report rep;
    char err[256] = "";
    assert_int_equal(rewrite_message(msg, len, ops, &out, &rep, err, sizeof err), -1);
    assert_true(err[0] != '\0');
    assert_int_equal(out.len, 0);
    assert_int_equal(rep.nactions, 0);
}

static void test_limits(void **state)
{
    (void)state;
    struct rewrite_ops ops = {.subject_tag = "Spam:"};
    /* the size bound is checked before a byte is read */
    expect_fail(plain_msg, (size_t)REWRITE_MAX_MESSAGE + 1, &ops);
    /* operation texts: max ok, max + 1 refused */
    char *tag = xmalloc(REWRITE_MAX_OP_TEXT + 2);
    memset(tag, 'T', REWRITE_MAX_OP_TEXT + 1);
    tag[REWRITE_MAX_OP_TEXT + 1] = '\0';
    ops.subject_tag = tag;
    expect_fail(plain_msg, strlen(plain_msg), &ops);
    tag[REWRITE_MAX_OP_TEXT] = '\0';
    char *r = rewrite(plain_msg, &ops, NULL);
    struct analysis *a = reparse(r);
    assert_int_equal(strlen(a->subject), REWRITE_MAX_OP_TEXT + strlen(" Quarterly report"));
    analysis_free(a);
    free(r);
    free(tag);
    struct rewrite_header h[REWRITE_MAX_OP_HEADERS + 1];
    for (size_t i = 0; i <= REWRITE_MAX_OP_HEADERS; i++)
        h[i] = (struct rewrite_header){"X-N", "v"};
    struct rewrite_ops oh = {.headers = h, .nheaders = REWRITE_MAX_OP_HEADERS};
    r = rewrite(plain_msg, &oh, NULL);
    free(r);
    oh.nheaders++;
    expect_fail(plain_msg, strlen(plain_msg), &oh);
    struct rewrite_ops ol = {.removal_note_lang = "fr"};
    expect_fail(plain_msg, strlen(plain_msg), &ol);
    /* nesting: 60 levels - headers still work, parts are not touched */
    struct buf b;
    buf_init(&b, 1 << 20);
    buf_printf(&b, "From: a@sender.example\nSubject: deep\nMIME-Version: 1.0\n");
    for (int i = 0; i < 60; i++)
        buf_printf(&b, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i);
    buf_printf(&b, "Content-Type: text/plain\n\ndeep text\n");
    for (int i = 59; i >= 0; i--)
        buf_printf(&b, "--b%d--\n", i);
    const char *deep = buf_cstr(&b);
    struct rewrite_ops os = {.stamp_text = "S"};
    expect_fail(deep, b.len, &os);
    struct rewrite_ops ot = {.subject_tag = "Spam:"};
    r = rewrite(deep, &ot, NULL);
    assert_non_null(strstr(r, "Subject: Spam: deep"));
    free(r);
    buf_free(&b);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const inputs[] = {
        "",
        "no header at all\n\nbody\n",
        "Subject: no blank line and no body",
        "Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nunterminated",
        "Subject: x\nContent-Type: multipart/mixed\n\n--b\n\nno boundary parameter\n--b--\n",
        "Subject: x\nContent-Type: text/plain\nContent-Type: text/html\n\n<b>dup</b>\n",
        "Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/mixed; "
        "boundary=b\n\n--b\n\nsame boundary\n--b--\n--b--\n",
        "Subject: x\r\rContent-Type: text/plain\r\r bare CR\r",
        "Subject: x\nFrom: y\nbody without blank line\n",
        "Subject: x\nContent-Type: text/plain; charset=x-unknown-charset\n\nbody\n",
        "Subject: x\nContent-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 a\n`\nend\n",
        "Subject: x\nContent-Type: text/html; charset=utf-16\nContent-Transfer-Encoding: base64\n\n//48AGgAPgA=\n",
        "Subject: x\nContent-Type: message/rfc822\n\n",
        "Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n--b--\n",
    };
    struct rewrite_header h[] = {{"X-Moat-Scan", "x"}};
    struct rewrite_removal rm[] = {{"1.1", "r"}, {"1", "r"}};
    struct rewrite_ops ops = {.subject_tag = "[迷惑]", .headers = h, .nheaders = 1, .stamp_text = "スタンプ",
                              .remove = rm, .nremove = 1, .tag_skip_signed = true};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        for (int k = 0; k < 3; k++) {
            struct rewrite_ops o = ops;
            if (k == 1)
                o.remove = rm + 1;
            if (k == 2)
                o.nremove = 0, o.stamp_text = NULL;
            struct buf out;
            struct rewrite_report rep;
            char err[256] = "";
            size_t len = strlen(inputs[i]);
            char *copy = xmalloc(len ? len : 1); /* exactly len bytes: no terminator to lean on */
            memcpy(copy, inputs[i], len);
            int rc = rewrite_message(copy, len, &o, &out, &rep, err, sizeof err);
            if (rc == 0) {
                struct analysis *in = mime_analyse(copy, len, NULL);
                struct analysis *a = mime_analyse(out.ptr, out.len, NULL);
                /* a clean input stays clean */
                if (!has_flag(in, "malformed") && has_flag(a, "malformed"))
                    fail_msg("input %zu/%d became malformed", i, k);
                analysis_free(a);
                analysis_free(in);
                buf_free(&out);
                rewrite_report_free(&rep);
            } else {
                assert_true(err[0] != '\0');
            }
            free(copy);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subject_ascii),
        cmocka_unit_test(test_subject_japanese),
        cmocka_unit_test(test_subject_fold_and_long_tag),
        cmocka_unit_test(test_subject_no_double_and_absent),
        cmocka_unit_test(test_signed),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_headers_top_and_invalid),
        cmocka_unit_test(test_stamp_plain),
        cmocka_unit_test(test_stamp_mixed),
        cmocka_unit_test(test_stamp_japanese),
        cmocka_unit_test(test_stamp_html),
        cmocka_unit_test(test_stamp_not_attachments),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_remove_structures),
        cmocka_unit_test(test_combined),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
