/*
 * test_detect_virus.c - the malware detector end to end: messages built at
 * test time (EICAR as an attachment, in the body, zipped, zipped 5 levels
 * deep, in a password-protected zip whose password is in the body, in one
 * whose password is not), then mime_analyse + detect_run, checking the
 * detections; the heuristics on crafted attachments; and no signature
 * match at all on the shared corpus (mime/, ja/; skipped with a notice
 * when $MOAT_CORPUS is absent).
 *
 * The EICAR string is assembled from two halves so this file does not
 * contain it and trips no scanner.
 */
#include <archive.h>
#include <archive_entry.h>

#include "core/core.h"

#include <dirent.h>
#include <setjmp.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "detect/detect.h"

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
    buf_free(&m);
}

static void test_body(void **state)
{
    struct buf m;
    message(&m, eicar, NULL, NULL, 0);
    expect_virus(&m, "message (uncleanable, non-mass-mailing)");
    buf_free(&m);
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
        cmocka_unit_test(test_password_zip), cmocka_unit_test(test_clean),
        cmocka_unit_test(test_heuristics),   cmocka_unit_test(test_corpus),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
