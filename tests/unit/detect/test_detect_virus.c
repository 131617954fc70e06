/*
 * test_detect_virus.c - the malware detector end to end: messages built at
 * test time (EICAR as an attachment, in the body, zipped, zipped 5 levels
 * deep, in a password-protected zip whose password is in the body, in one
 * whose password is not), then mime_analyse + detect_run, checking the
 * detections; the heuristics on crafted attachments; and no signature
 * match at all on the shared corpus (mime/, ja/; skipped with a notice
 * when $MOAT_CORPUS is absent).
 *
 * The detection types (detect_virus_type, table-driven) and the clamd
 * path: a fake clamd thread on a unix socket in a temp dir that checks the
 * INSTREAM framing and answers OK / FOUND / ERROR / garbage / nothing, so
 * every failure mode is shown to become scan_exclusion (the real clamd is
 * exercised in tests/integration/test_clamd.py).
 *
 * The EICAR string is assembled from two halves so this file does not
 * contain it and trips no scanner.
 */
#include <archive.h>
#include <archive_entry.h>

#include "core/core.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <setjmp.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "detect/detect.h"
#include "detect/detect_int.h"

static char eicar[69];

static void make_eicar(void)
{
    static const char h1[] = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$";
    static const char h2[] = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    snprintf(eicar, sizeof eicar, "%s%s", h1, h2);
}

/* zip1 - a zip of one file (caller frees); passphrase: ZipCrypto or NULL */
static unsigned char *zip1(const char *name, const void *data, size_t len, const char *passphrase, size_t *outlen)
{
    size_t cap = len + 64 * 1024, used = 0;
    unsigned char *buf = xmalloc(cap);
    struct archive *a = archive_write_new();
    assert_non_null(a);
    assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK);
    if (passphrase) {
        assert_int_equal(archive_write_set_options(a, "zip:encryption=zipcrypt"), ARCHIVE_OK);
        assert_int_equal(archive_write_set_passphrase(a, passphrase), ARCHIVE_OK);
    }
    archive_write_set_bytes_in_last_block(a, 1);
    assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)len);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    assert_int_equal(archive_write_data(a, data, len), (la_ssize_t)len);
    archive_entry_free(e);
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    *outlen = used;
    return buf;
}

static void b64(struct buf *out, const unsigned char *p, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t col = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {t[v >> 18 & 63], t[v >> 12 & 63], i + 1 < n ? t[v >> 6 & 63] : '=', i + 2 < n ? t[v & 63] : '='};
        buf_append(out, q, 4);
        if ((col += 4) >= 76) {
            buf_append_str(out, "\r\n");
            col = 0;
        }
    }
    buf_append_str(out, "\r\n");
}

/* message - a multipart message with body text and one base64 attachment
 * (none when name is NULL); caller frees the buf */
static void message(struct buf *m, const char *body, const char *name, const void *data, size_t len)
{
    buf_init(m, 64u * 1024 * 1024);
    buf_printf(m, "From: a@example.org\r\nTo: b@example.com\r\nSubject: test\r\n"
                  "Message-ID: <t@example.org>\r\nMIME-Version: 1.0\r\n"
                  "Content-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n"
                  "--BB\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
               body);
    if (name) {
        buf_printf(m, "--BB\r\nContent-Type: application/octet-stream; name=\"%s\"\r\n"
                      "Content-Disposition: attachment; filename=\"%s\"\r\n"
                      "Content-Transfer-Encoding: base64\r\n\r\n",
                   name, name);
        b64(m, data, len);
    }
    buf_append_str(m, "--BB--\r\n");
}

static struct analysis *scan(const struct buf *m)
{
    struct analysis *a = mime_analyse(m->ptr, m->len, NULL);
    assert_non_null(a);
    detect_run(a, m->ptr, m->len, NULL);
    return a;
}

static const struct detection *find(const struct analysis *a, const char *category, const char *name,
                                    const char *evidence_part)
{
    for (size_t i = 0; i < a->ndetections; i++) {
        const struct detection *d = &a->detections[i];
        if (strcmp(d->category, category) == 0 && (!name || strcmp(d->name, name) == 0) &&
            (!evidence_part || strstr(d->evidence, evidence_part)))
            return d;
    }
    return NULL;
}

static void dump(const struct analysis *a)
{
    for (size_t i = 0; i < a->ndetections; i++)
        print_message("  detection %s %s %.2f %s\n", a->detections[i].category, a->detections[i].name,
                      a->detections[i].score, a->detections[i].evidence);
}

static void expect_virus(const struct buf *m, const char *evidence)
{
    struct analysis *a = scan(m);
    const struct detection *d = find(a, "virus", "Moat.Test.EICAR", evidence);
    if (!d)
        dump(a);
    assert_non_null(d);
    assert_true(d->score >= 1.0);
    assert_null(find(a, "scan_exclusion", NULL, NULL));
    analysis_free(a);
}

static void test_attachment(void **state)
{
    struct buf m;
    message(&m, "see attached", "eicar.com", eicar, strlen(eicar));
    expect_virus(&m, "eicar.com (cleanable)");
    struct analysis *a = scan(&m);
    const struct detection *d = find(a, "virus", "Moat.Test.EICAR", NULL);
    assert_non_null(d);
    assert_non_null(d->type);
    assert_string_equal(d->type, "cleanable");
    char *json = analysis_to_json(a, false);
    assert_non_null(strstr(json, "\"type\":\"cleanable\""));
    free(json);
    analysis_free(a);
    buf_free(&m);
}

static void test_body(void **state)
{
    struct buf m;
    message(&m, eicar, NULL, NULL, 0);
    expect_virus(&m, "message (uncleanable, non-mass-mailing)");
    struct analysis *a = scan(&m);
    const struct detection *d = find(a, "virus", "Moat.Test.EICAR", NULL);
    assert_non_null(d);
    assert_string_equal(d->type, "non_mass_mailing");
    analysis_free(a);
    buf_free(&m);
}

/* test_encoded_body - EICAR in a base64 text body and in a
 * quoted-printable HTML body of a well-formed message: the raw message
 * does not contain the string, the decoded body parts do (mime_body_hook) */
static void test_encoded_body(void **state)
{
    (void)state;
    struct buf m, e;
    buf_init(&e, 4096);
    b64(&e, (const unsigned char *)eicar, strlen(eicar));
    buf_init(&m, 64u * 1024);
    buf_printf(&m, "From: a@example.org\r\nTo: b@example.com\r\nSubject: test\r\n"
                   "Message-ID: <t@example.org>\r\nMIME-Version: 1.0\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n%s",
               e.ptr);
    assert_null(memmem(m.ptr, m.len, eicar, strlen(eicar)));
    expect_virus(&m, "message (uncleanable, non-mass-mailing)");
    buf_free(&m);
    /* quoted-printable HTML: every character of the string hex-encoded */
    buf_init(&m, 64u * 1024);
    buf_append_str(&m, "From: a@example.org\r\nTo: b@example.com\r\nSubject: test\r\n"
                       "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"AA\"\r\n\r\n"
                       "--AA\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
                       "--AA\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>");
    for (size_t i = 0; eicar[i]; i++)
        buf_printf(&m, "=%02X%s", (unsigned char)eicar[i], i % 20 == 19 ? "=\r\n" : "");
    buf_append_str(&m, "</p>\r\n--AA--\r\n");
    assert_null(memmem(m.ptr, m.len, eicar, strlen(eicar)));
    expect_virus(&m, "message (uncleanable, non-mass-mailing)");
    buf_free(&m);
    buf_free(&e);
}

/* test_malformed_attachment - a message flagged malformed (duplicate
 * Content-Transfer-Encoding on the attachment) still has its EICAR found:
 * such messages also get ClamAV's own reading of the MIME */
static void test_malformed_attachment(void **state)
{
    (void)state;
    struct buf m, e;
    buf_init(&e, 4096);
    b64(&e, (const unsigned char *)eicar, strlen(eicar));
    buf_init(&m, 64u * 1024);
    buf_printf(&m, "From: a@example.org\r\nTo: b@example.com\r\nSubject: test\r\nMIME-Version: 1.0\r\n"
                   "Content-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n"
                   "--BB\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
                   "--BB\r\nContent-Type: application/octet-stream; name=\"x.bin\"\r\n"
                   "Content-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n\r\n%s--BB--\r\n",
               e.ptr);
    struct analysis *a = scan(&m);
    bool malformed = false;
    for (size_t i = 0; i < a->nflags; i++)
        malformed |= strcmp(a->flags[i].name, "malformed") == 0;
    assert_true(malformed);
    assert_non_null(find(a, "virus", "Moat.Test.EICAR", NULL));
    analysis_free(a);
    buf_free(&m);
    buf_free(&e);
}

static void test_zipped(void **state)
{
    struct buf m;
    size_t zl;
    unsigned char *z = zip1("eicar.com", eicar, strlen(eicar), NULL, &zl);
    message(&m, "zipped", "invoice.zip", z, zl);
    expect_virus(&m, "invoice.zip (cleanable)");
    free(z);
    buf_free(&m);
}

/* test_crowded_zip - a stored zip of 20,000 empty files plus EICAR first:
 * the archive is over the entry limit, so it is scanned as bytes only
 * (ClamAV's zip reader is quadratic in the entry count: a minute per
 * message), the limit is a scan exclusion, and the raw bytes still match */
static void test_crowded_zip(void **state)
{
    (void)state;
    size_t cap = 4u * 1024 * 1024, used = 0;
    unsigned char *zbuf = xmalloc(cap);
    struct archive *ar = archive_write_new();
    assert_int_equal(archive_write_set_format_zip(ar), ARCHIVE_OK);
    assert_int_equal(archive_write_set_options(ar, "zip:compression=store"), ARCHIVE_OK);
    archive_write_set_bytes_in_last_block(ar, 1);
    assert_int_equal(archive_write_open_memory(ar, zbuf, cap, &used), ARCHIVE_OK);
    for (unsigned i = 0; i < 20000; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%u", i);
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, name);
        archive_entry_set_size(e, i == 0 ? (la_int64_t)strlen(eicar) : 0);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        assert_int_equal(archive_write_header(ar, e), ARCHIVE_OK);
        if (i == 0)
            assert_int_equal(archive_write_data(ar, eicar, strlen(eicar)), (la_ssize_t)strlen(eicar));
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(ar), ARCHIVE_OK);
    archive_write_free(ar);
    struct buf m;
    message(&m, "files", "crowd.zip", zbuf, used);
    free(zbuf);
    struct analysis *a = scan(&m);
    bool limits = false;
    for (size_t i = 0; i < a->nflags; i++)
        limits |= strcmp(a->flags[i].name, "archive_limits") == 0;
    assert_true(limits);
    assert_true(a->nattachments == 1 && a->attachments[0].too_many_entries);
    if (!find(a, "virus", NULL, "crowd.zip") || !find(a, "scan_exclusion", NULL, "crowd.zip"))
        dump(a);
    assert_non_null(find(a, "virus", NULL, "crowd.zip"));
    assert_non_null(find(a, "scan_exclusion", NULL, "crowd.zip"));
    analysis_free(a);
    buf_free(&m);
}

static void test_nested5(void **state)
{
    struct buf m;
    size_t zl;
    unsigned char *z = zip1("eicar.com", eicar, strlen(eicar), NULL, &zl);
    for (int level = 2; level <= 5; level++) {
        char name[32];
        snprintf(name, sizeof name, "level%d.zip", level - 1);
        size_t nl;
        unsigned char *n = zip1(name, z, zl, NULL, &nl);
        free(z);
        z = n;
        zl = nl;
    }
    message(&m, "five levels", "nested.zip", z, zl);
    expect_virus(&m, "nested.zip (cleanable)");
    free(z);
    buf_free(&m);
}

/* the password is in the body: mime/ opens the entry and hands its bytes
 * to the scanner (ClamAV alone cannot decrypt) */
static void test_password_zip(void **state)
{
    struct buf m;
    size_t zl;
    unsigned char *z = zip1("eicar.com", eicar, strlen(eicar), "Tr0ub4dor", &zl);
    message(&m, "The file is protected.\r\nPassword: Tr0ub4dor\r\n", "secret.zip", z, zl);
    expect_virus(&m, "secret.zip/eicar.com (cleanable)");
    buf_free(&m);

    /* without the password: not scanned, and said so */
    message(&m, "no password here", "secret.zip", z, zl);
    struct analysis *a = scan(&m);
    assert_null(find(a, "virus", "Moat.Test.EICAR", NULL));
    assert_non_null(find(a, "virus", "Heuristics.Encrypted", "secret.zip/eicar.com"));
    analysis_free(a);
    buf_free(&m);
    free(z);
}

static void test_clean(void **state)
{
    struct buf m;
    static const char pdf[] = "%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n";
    message(&m, "hello, the report is attached", "report.pdf", pdf, sizeof pdf - 1);
    struct analysis *a = scan(&m);
    if (a->ndetections)
        dump(a);
    assert_int_equal(a->ndetections, 0);
    analysis_free(a);
    buf_free(&m);
}

static void test_heuristics(void **state)
{
    struct buf m;
    struct analysis *a;
    /* a minimal PE header is enough for libmagic */
    unsigned char pe[512] = {'M', 'Z'};
    pe[0x3c] = 0x80;
    memcpy(pe + 0x80, "PE\0\0\x4c\x01", 6);

    message(&m, "invoice", "invoice.pdf.exe", pe, sizeof pe);
    a = scan(&m);
    dump(a);
    assert_non_null(find(a, "virus", "Heuristics.DoubleExtension", "invoice.pdf.exe"));
    assert_null(find(a, "virus", "Moat.Test.EICAR", NULL));
    analysis_free(a);
    buf_free(&m);

    static const char js[] = "var s = new ActiveXObject('WScript.Shell');\n";
    message(&m, "order", "order.jse", js, sizeof js - 1);
    a = scan(&m);
    assert_non_null(find(a, "virus", "Heuristics.RiskyType", "order.jse (.jse attachment)"));
    analysis_free(a);
    buf_free(&m);

    size_t zl;
    unsigned char *z = zip1("run.vbs", js, sizeof js - 1, NULL, &zl);
    message(&m, "zipped script", "doc.zip", z, zl);
    a = scan(&m);
    assert_non_null(find(a, "virus", "Heuristics.RiskyType", "doc.zip/run.vbs"));
    analysis_free(a);
    buf_free(&m);
    free(z);

    /* HTML smuggling: script plus a large base64 blob */
    struct buf h;
    buf_init(&h, 1024 * 1024);
    buf_append_str(&h, "<html><body><script>var d = atob('");
    for (int i = 0; i < 3000; i++)
        buf_append_str(&h, "QUJD");
    buf_append_str(&h, "'); var b = new Blob([d]);</script></body></html>\n");
    message(&m, "your document", "document.html", h.ptr, h.len);
    a = scan(&m);
    assert_non_null(find(a, "virus", "Heuristics.HTMLSmuggling", "document.html"));
    analysis_free(a);
    buf_free(&m);
    buf_free(&h);
}

/* ---------------------------------------------------------------- corpus */

static unsigned corpus_files, corpus_heuristics, corpus_eicar;

/* carries_eicar - the message really holds the EICAR file (sha256 of the
 * 68 bytes) as an attachment or archive member: a true positive (rspamd's
 * test messages do) */
static bool carries_eicar(const struct analysis *a)
{
    static const char sum[] = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
    for (size_t i = 0; i < a->nattachments; i++) {
        if (strcmp(a->attachments[i].sha256, sum) == 0)
            return true;
        for (size_t j = 0; j < a->attachments[i].nmembers; j++)
            if (strcmp(a->attachments[i].members[j].sha256, sum) == 0)
                return true;
    }
    return false;
}

static void corpus_one(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    struct stat st;
    assert_int_equal(fstat(fileno(f), &st), 0);
    size_t len = (size_t)st.st_size;
    char *msg = xmalloc(len ? len : 1);
    assert_int_equal(fread(msg, 1, len, f), len);
    fclose(f);
    struct analysis *a = mime_analyse(msg, len, NULL);
    assert_non_null(a);
    detect_run(a, msg, len, NULL);
    for (size_t i = 0; i < a->ndetections; i++) {
        const struct detection *d = &a->detections[i];
        if (strcmp(d->category, "virus") == 0 && d->score >= 1.0 && strcmp(d->name, "Moat.Test.EICAR") == 0 &&
            carries_eicar(a)) {
            corpus_eicar++;
            print_message("  %s: %s %s (the EICAR file is really there)\n", path, d->name, d->evidence);
            continue;
        }
        if (strcmp(d->category, "virus") == 0 && d->score >= 1.0)
            fail_msg("%s: false positive %s (%s)", path, d->name, d->evidence);
        if (strcmp(d->category, "virus") == 0) {
            corpus_heuristics++;
            print_message("  %s: %s %s\n", path, d->name, d->evidence);
        }
        if (strcmp(d->category, "scan_exclusion") == 0)
            print_message("  %s: %s %s\n", path, d->name, d->evidence);
    }
    corpus_files++;
    analysis_free(a);
    free(msg);
}

static void corpus_walk(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d)
        return;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[4096];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode))
            corpus_walk(p);
        else if (S_ISREG(st.st_mode) && st.st_size < 32 * 1024 * 1024)
            corpus_one(p);
    }
    closedir(d);
}

static void test_corpus(void **state)
{
    const char *corpus = getenv("MOAT_CORPUS");
    char p[4096];
    struct stat st;
    if (!corpus || stat(corpus, &st) < 0) {
        print_message("corpus not found ($MOAT_CORPUS): skipped\n");
        skip();
    }
    snprintf(p, sizeof p, "%s/mime", corpus);
    corpus_walk(p);
    snprintf(p, sizeof p, "%s/ja", corpus);
    corpus_walk(p);
    print_message("corpus: %u files, 0 false signature matches, %u true EICAR matches, %u heuristic findings\n",
                  corpus_files, corpus_eicar, corpus_heuristics);
}

/* ---------------------------------------------------------------- detection types */

static void test_types(void **state)
{
    static const struct {
        const char *name;
        bool in_part;
        const char *type;
    } cases[] = {
        {"Moat.Test.EICAR", true, "cleanable"},
        {"Moat.Test.EICAR", false, "non_mass_mailing"},
        {"Heuristics.DoubleExtension", true, "cleanable"},
        {"Worm.Mydoom.M", true, "mass_mailing"},
        {"Win.Worm.Mydoom-9953658-0", false, "mass_mailing"},
        {"Email-Worm.Win32.Netsky.q", true, "mass_mailing"},
        {"I-Worm.Klez.h", true, "mass_mailing"},
        {"Win.Trojan.Bagle-1", true, "mass_mailing"},     /* the family is enough */
        {"Worm.Mail.Generic", true, "mass_mailing"},      /* worm + mail */
        {"W32.MassMailer.Gen", false, "mass_mailing"},
        {"Win.Worm.Conficker-1", true, "cleanable"},      /* a network worm */
        {"Win.Worm.Conficker-1", false, "non_mass_mailing"},
        {"Trojan.Mailer.Spambot", true, "cleanable"},     /* a spam bot, not a self-mailer */
        {"Doc.Dropper.Agent-123", true, "cleanable"},
        {"", true, "cleanable"},
        {"", false, "non_mass_mailing"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *t = detect_virus_type(cases[i].name, cases[i].in_part);
        if (strcmp(t, cases[i].type) != 0)
            fail_msg("%s in_part=%d: %s, expected %s", cases[i].name, cases[i].in_part, t, cases[i].type);
    }
    /* a heuristic carries its type too */
    struct buf m;
    message(&m, "order", "order.jse", "var x;\n", 7);
    struct analysis *a = scan(&m);
    const struct detection *d = find(a, "virus", "Heuristics.RiskyType", NULL);
    assert_non_null(d);
    assert_string_equal(d->type, "cleanable");
    analysis_free(a);
    buf_free(&m);
}

/* ---------------------------------------------------------------- clamd (fake) */

enum fake_mode { FAKE_FIXED, FAKE_EICAR, FAKE_STALL, FAKE_CLOSE_EARLY };
static struct {
    pthread_t thread;
    int lfd;
    char dir[64], path[128];
    enum fake_mode mode;
    const char *reply;       /* FAKE_FIXED: sent as is (with its NUL unless no_nul) */
    size_t reply_len;
    bool no_nul;
    unsigned streams;        /* INSTREAM exchanges seen */
    bool bad_framing;        /* a malformed command or chunk seen */
    struct buf last;         /* bytes of the last stream */
    volatile bool stop;
} fake;

static bool read_n(int fd, void *p, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, (char *)p + got, n - got);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

static bool contains(const char *p, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; m <= n && i + m <= n; i++)
        if (memcmp(p + i, needle, m) == 0)
            return true;
    return false;
}

static void fake_one(int fd)
{
    char cmd[10];
    unsigned char lenb[4];
    if (!read_n(fd, cmd, sizeof cmd) || memcmp(cmd, "zINSTREAM\0", 10) != 0) {
        fake.bad_framing = true;
        return;
    }
    fake.streams++;
    buf_reset(&fake.last);
    char *chunk = xmalloc(1024 * 1024);
    for (;;) {
        if (!read_n(fd, lenb, 4))
            goto out;
        uint32_t n = (uint32_t)lenb[0] << 24 | (uint32_t)lenb[1] << 16 | (uint32_t)lenb[2] << 8 | lenb[3];
        if (n == 0)
            break;
        if (n > 1024 * 1024) {
            fake.bad_framing = true;
            goto out;
        }
        if (!read_n(fd, chunk, n))
            goto out;
        buf_append(&fake.last, chunk, n);
        if (fake.mode == FAKE_CLOSE_EARLY && fake.last.len >= 256 * 1024) {
            static const char e[] = "INSTREAM size limit exceeded. ERROR";
            (void)!write(fd, e, sizeof e);
            goto out;
        }
    }
    switch (fake.mode) {
    case FAKE_FIXED:
        (void)!write(fd, fake.reply, fake.reply_len + (fake.no_nul ? 0 : 1));
        break;
    case FAKE_EICAR: {
        static const char found[] = "stream: Moat.Test.EICAR.UNOFFICIAL FOUND", ok[] = "stream: OK";
        if (contains(fake.last.ptr, fake.last.len, eicar))
            (void)!write(fd, found, sizeof found);
        else
            (void)!write(fd, ok, sizeof ok);
        break;
    }
    case FAKE_STALL: /* until the client gives up */
        while (read(fd, chunk, 1024) > 0)
            ;
        break;
    case FAKE_CLOSE_EARLY:
        break;
    }
out:
    free(chunk);
}

static void *fake_main(void *arg)
{
    (void)arg;
    while (!fake.stop) {
        int fd = accept(fake.lfd, NULL, NULL);
        if (fd < 0)
            continue;
        if (!fake.stop)
            fake_one(fd);
        close(fd);
    }
    return NULL;
}

static void fake_fixed(const char *reply)
{
    fake.mode = FAKE_FIXED;
    fake.reply = reply;
    fake.reply_len = strlen(reply);
    fake.no_nul = false;
}

/* clamd_config - detect_init in clamd mode on socket (timeout 1 s) */
static void clamd_config(const char *socket, const char *stream_max)
{
    struct moat_config cfg;
    char err[512];
    config_defaults(&cfg);
    assert_null(config_set(&cfg, "clamd_socket", socket));
    assert_null(config_set(&cfg, "clamd_timeout", "1s"));
    assert_null(config_set(&cfg, "clamd_stream_max", stream_max));
    detect_shutdown();
    if (detect_init(&cfg, err, sizeof err) < 0)
        fail_msg("detect_init: %s", err);
    config_free(&cfg);
}

static int clamd_setup(void **state)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    make_eicar();
    snprintf(fake.dir, sizeof fake.dir, "/tmp/moat-fakeclamd-XXXXXX");
    if (!mkdtemp(fake.dir))
        return -1;
    snprintf(fake.path, sizeof fake.path, "%s/clamd.sock", fake.dir);
    core_strlcpy(sa.sun_path, fake.path, sizeof sa.sun_path);
    fake.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fake.lfd < 0 || bind(fake.lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fake.lfd, 8) < 0)
        return -1;
    buf_init(&fake.last, 64u * 1024 * 1024);
    if (pthread_create(&fake.thread, NULL, fake_main, NULL) != 0)
        return -1;
    clamd_config(fake.path, "25M");
    return 0;
}

static int clamd_teardown(void **state)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    detect_shutdown();
    fake.stop = true;
    /* wake the accept() */
    core_strlcpy(sa.sun_path, fake.path, sizeof sa.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd >= 0) {
        (void)!connect(fd, (struct sockaddr *)&sa, sizeof sa);
        close(fd);
    }
    pthread_join(fake.thread, NULL);
    close(fake.lfd);
    unlink(fake.path);
    rmdir(fake.dir);
    buf_free(&fake.last);
    return 0;
}

/* expect_exclusion - scanning m gives no virus and a scan_exclusion whose
 * evidence contains why */
static void expect_exclusion(const struct buf *m, const char *why)
{
    struct analysis *a = scan(m);
    const struct detection *d = find(a, "scan_exclusion", "virus-scan-incomplete", why);
    if (!d)
        dump(a);
    assert_non_null(d);
    assert_null(find(a, "virus", "Moat.Test.EICAR", NULL));
    analysis_free(a);
}

/* malware_findings - virus and scan_exclusion detections (other detectors
 * may have their say on the test messages) */
static size_t malware_findings(const struct analysis *a)
{
    size_t n = 0;
    for (size_t i = 0; i < a->ndetections; i++)
        if (strcmp(a->detections[i].category, "virus") == 0 || strcmp(a->detections[i].category, "scan_exclusion") == 0)
            n++;
    if (n)
        dump(a);
    return n;
}

static void test_clamd_clean(void **state)
{
    struct buf m;
    static const char pdf[] = "%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n";
    fake_fixed("stream: OK");
    unsigned before = fake.streams;
    message(&m, "hello, the report is attached", "report.pdf", pdf, sizeof pdf - 1);
    struct analysis *a = scan(&m);
    assert_int_equal(malware_findings(a), 0);
    /* the attachment, then the whole message */
    assert_int_equal(fake.streams - before, 2);
    assert_false(fake.bad_framing);
    assert_int_equal(fake.last.len, m.len);
    assert_memory_equal(fake.last.ptr, m.ptr, m.len);
    analysis_free(a);
    buf_free(&m);

    /* a 300 KB attachment goes over in several chunks, byte for byte */
    unsigned char *big = xmalloc(300 * 1024);
    for (size_t i = 0; i < 300 * 1024; i++)
        big[i] = (unsigned char)(i * 7 + i / 251);
    message(&m, "data", "data.bin", big, 300 * 1024);
    a = scan(&m);
    assert_int_equal(malware_findings(a), 0);
    assert_false(fake.bad_framing);
    analysis_free(a);
    buf_free(&m);
    free(big);
}

static void test_clamd_found(void **state)
{
    struct buf m;
    struct analysis *a;
    const struct detection *d;

    /* the same name and type as in-process, for an attachment and in the body */
    fake.mode = FAKE_EICAR;
    message(&m, "see attached", "eicar.com", eicar, strlen(eicar));
    expect_virus(&m, "eicar.com (cleanable)");
    buf_free(&m);
    message(&m, eicar, NULL, NULL, 0);
    expect_virus(&m, "message (uncleanable, non-mass-mailing)");
    buf_free(&m);

    /* decrypted archive entries go to clamd too */
    size_t zl;
    unsigned char *z = zip1("eicar.com", eicar, strlen(eicar), "Tr0ub4dor", &zl);
    message(&m, "The file is protected.\r\nPassword: Tr0ub4dor\r\n", "secret.zip", z, zl);
    expect_virus(&m, "secret.zip/eicar.com (cleanable)");
    buf_free(&m);
    free(z);

    /* ExtendedDetectionInfo's (MD5:SIZE) is not part of the name; a worm is mass_mailing */
    fake_fixed("stream: Worm.Mydoom.M(3c8a5b1a2a4f5ef4f1d1e0c9a7b6c5d4:22528) FOUND");
    message(&m, "hi", "document.zip", "PK\x03\x04", 4);
    a = scan(&m);
    d = find(a, "virus", "Worm.Mydoom.M", "document.zip (uncleanable, mass-mailing)");
    if (!d)
        dump(a);
    assert_non_null(d);
    assert_string_equal(d->type, "mass_mailing");
    assert_true(d->score >= 1.0);
    analysis_free(a);

    /* a limit alert is an exclusion, not a virus */
    fake_fixed("stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND");
    expect_exclusion(&m, "document.zip: limit reached (Heuristics.Limits.Exceeded.MaxFileSize)");
    buf_free(&m);
}

static void test_clamd_failures(void **state)
{
    struct buf m;
    static const char data[] = "just some bytes";
    message(&m, "hello", "a.bin", data, sizeof data - 1);

    fake_fixed("INSTREAM size limit exceeded. ERROR");
    expect_exclusion(&m, "a.bin: clamd: INSTREAM size limit exceeded. ERROR");
    fake_fixed("stream: lstat() failed: No such file or directory. ERROR");
    expect_exclusion(&m, "a.bin: clamd: stream: lstat() failed");
    fake_fixed("hello there");
    expect_exclusion(&m, "a.bin: clamd: unexpected reply \"hello there\"");
    fake_fixed("stream: two words FOUND");
    expect_exclusion(&m, "unexpected reply");
    fake_fixed("stream: FOUND");
    expect_exclusion(&m, "unexpected reply");
    fake_fixed("stream: Bad\x01Name FOUND");
    expect_exclusion(&m, "unexpected reply \"stream: Bad?Name FOUND\"");
    fake_fixed("");
    expect_exclusion(&m, "connection closed without a reply");

    /* no terminator but EOF: still read; a reply over 1 KB is refused */
    fake_fixed("stream: OK");
    fake.no_nul = true;
    struct analysis *a = scan(&m);
    assert_null(find(a, "scan_exclusion", NULL, NULL));
    analysis_free(a);
    static char longreply[2100];
    memset(longreply, 'A', sizeof longreply - 1);
    fake_fixed(longreply);
    fake.no_nul = true;
    expect_exclusion(&m, "reply too long");

    /* silence: the timeout (1 s) */
    fake.mode = FAKE_STALL;
    double t0 = core_monotonic();
    expect_exclusion(&m, "timed out waiting for the reply");
    assert_true(core_monotonic() - t0 < 5.0);
    buf_free(&m);

    /* clamd closes early with its reason while we are still sending */
    unsigned char *big = xmalloc(2 * 1024 * 1024);
    memset(big, 'x', 2 * 1024 * 1024);
    message(&m, "big", "big.bin", big, 2 * 1024 * 1024);
    fake.mode = FAKE_CLOSE_EARLY;
    expect_exclusion(&m, "big.bin: clamd");

    /* over clamd_stream_max: not sent at all */
    clamd_config(fake.path, "1M");
    fake_fixed("stream: OK");
    unsigned before = fake.streams;
    expect_exclusion(&m, "big.bin: clamd: 2097152 bytes, over clamd_stream_max (1048576)");
    /* the whole message is over it as well */
    expect_exclusion(&m, "message: clamd: ");
    assert_int_equal(fake.streams, before);
    buf_free(&m);
    free(big);

    /* nobody listening */
    char gone[200];
    snprintf(gone, sizeof gone, "%s/nothing.sock", fake.dir);
    clamd_config(gone, "25M");
    message(&m, "hello", "a.bin", data, sizeof data - 1);
    expect_exclusion(&m, "a.bin: clamd ");
    expect_exclusion(&m, "not running (connection refused)");
    buf_free(&m);
    clamd_config("127.0.0.1:1", "25M"); /* TCP: refused at once */
    message(&m, "hello", "a.bin", data, sizeof data - 1);
    expect_exclusion(&m, "clamd 127.0.0.1:1: not running (connection refused)");
    buf_free(&m);
    clamd_config(fake.path, "25M");
}

static void test_clamd_address(void **state)
{
    static char long_path[109]; /* 108 bytes: one too many for sun_path */
    memset(long_path, 'a', sizeof long_path - 1);
    long_path[0] = '/';
    char ok_path[108];          /* 107 bytes: the longest that fits */
    memset(ok_path, 'b', sizeof ok_path - 1);
    ok_path[0] = '/';
    ok_path[sizeof ok_path - 1] = '\0';
    assert_null(config_clamd_socket_check(ok_path));
    static const struct {
        const char *v;
        bool ok;
    } cases[] = {
        {"", true},
        {"/run/clamav/clamd.ctl", true},
        {"127.0.0.1:3310", true},
        {"127.8.9.10:3310", true},
        {"localhost:3310", true},
        {"[::1]:3310", true},
        {"10.0.0.1:3310", false},     /* not loopback */
        {"192.0.2.1:3310", false},
        {"clamd.example.org:3310", false},
        {"[2001:db8::1]:3310", false},
        {"127.0.0.1", false},         /* no port */
        {"127.0.0.1:0", false},
        {"127.0.0.1:65536", false},
        {"run/clamd.ctl", false},     /* relative */
        {long_path, false},           /* over sun_path */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why = config_clamd_socket_check(cases[i].v);
        if ((why == NULL) != cases[i].ok)
            fail_msg("%s: %s", cases[i].v, why ? why : "accepted");
        struct clamd_target t;
        if (cases[i].v[0]) {
            why = clamd_target_parse(cases[i].v, &t);
            if ((why == NULL) != cases[i].ok)
                fail_msg("parse %s: %s", cases[i].v, why ? why : "accepted");
        }
    }
    /* a bad value stops detect_init; every message then says why */
    struct moat_config cfg;
    char err[512];
    config_defaults(&cfg);
    assert_null(config_set(&cfg, "clamd_socket", "10.0.0.1:3310"));
    detect_shutdown();
    assert_int_equal(detect_init(&cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "loopback"));
    config_free(&cfg);
    struct buf m;
    message(&m, "hello", NULL, NULL, 0);
    expect_exclusion(&m, "must be loopback");
    buf_free(&m);
    clamd_config(fake.path, "25M");
}

static int setup(void **state)
{
    char err[512];
    make_eicar();
    if (detect_init(NULL, err, sizeof err) < 0) {
        print_error("detect_init: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    detect_shutdown();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attachment),   cmocka_unit_test(test_body),
        cmocka_unit_test(test_zipped),       cmocka_unit_test(test_nested5),
        cmocka_unit_test(test_encoded_body), cmocka_unit_test(test_malformed_attachment),
        cmocka_unit_test(test_crowded_zip),
        cmocka_unit_test(test_password_zip), cmocka_unit_test(test_clean),
        cmocka_unit_test(test_heuristics),   cmocka_unit_test(test_types),
        cmocka_unit_test(test_corpus),
    };
    const struct CMUnitTest clamd_tests[] = {
        cmocka_unit_test(test_clamd_clean),
        cmocka_unit_test(test_clamd_found),
        cmocka_unit_test(test_clamd_failures),
        cmocka_unit_test(test_clamd_address),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    return rc | cmocka_run_group_tests_name("clamd", clamd_tests, clamd_setup, clamd_teardown);
}
