/*
 * test_mime_attach.c - unit tests for mime_attach.c, mime_archive.c and
 * mime_office.c: names and extensions (double extensions, RTL override,
 * trailing dots), true type against the declared one, archives built here
 * with libarchive's writer (zip in zip, tar.gz, gz, 7z, encrypted zip),
 * each PRODUCT.md §3 limit at max-1 / max / max+1, file password analysis
 * (English and Japanese), OLE2 (written with libgsf) and OOXML macros, PDF
 * JavaScript (plain, #xx-obfuscated, inside a FlateDecode stream).
 *
 * test_corpus runs every file of ../shared/corpus/malware-test (MOAT_CORPUS)
 * through mime_attach_analyse, each within a time bound, checking the
 * flags the README promises; it is skipped with a notice when absent.
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

#include <archive.h>
#include <archive_entry.h>
#include <gio/gio.h>
#include <gsf/gsf-outfile-msole.h>
#include <gsf/gsf-outfile.h>
#include <gsf/gsf-output-memory.h>
#include <gsf/gsf-utils.h>

#include "core/core.h"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "mime/mime_int.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- helpers */

struct file_spec {
    const char *name;
    const unsigned char *data;
    size_t len;
};

/* mk_archive - an archive in memory (caller frees). format: "zip", "7z",
 * "tar"; filter: NULL, "gzip", "bzip2", "xz"; passphrase: ZipCrypto */
static unsigned char *mk_archive(const char *format, const char *filter, const struct file_spec *files,
                                 size_t n, const char *passphrase, bool store, size_t *outlen)
{
    size_t cap = 1024 * 1024;
    for (size_t i = 0; i < n; i++)
        cap += files[i].len + 1024;
    unsigned char *buf = xmalloc(cap);
    struct archive *a = archive_write_new();
    assert_non_null(a);
    if (strcmp(format, "zip") == 0)
        assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK);
    else if (strcmp(format, "7z") == 0)
        assert_int_equal(archive_write_set_format_7zip(a), ARCHIVE_OK);
    else
        assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    if (filter)
        assert_int_equal(archive_write_add_filter_by_name(a, filter), ARCHIVE_OK);
    if (store)
        assert_int_equal(archive_write_set_options(a, "zip:compression=store"), ARCHIVE_OK);
    if (passphrase) {
        assert_int_equal(archive_write_set_options(a, "zip:encryption=zipcrypt"), ARCHIVE_OK);
        assert_int_equal(archive_write_set_passphrase(a, passphrase), ARCHIVE_OK);
    }
    archive_write_set_bytes_in_last_block(a, 1);
    size_t used = 0;
    assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, files[i].name);
        archive_entry_set_size(e, (la_int64_t)files[i].len);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_mtime(e, 1700000000, 0);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (files[i].len)
            assert_int_equal(archive_write_data(a, files[i].data, files[i].len), (la_ssize_t)files[i].len);
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    *outlen = used;
    return buf;
}

/* is_exe - libmagic names PE files x-dosexec or, newer, vnd.microsoft.portable-executable */
static bool is_exe(const char *t)
{
    return t && (strcmp(t, "application/x-dosexec") == 0 ||
                 strcmp(t, "application/vnd.microsoft.portable-executable") == 0);
}

static unsigned char *zip1(const char *name, const void *data, size_t len, size_t *outlen)
{
    struct file_spec f = {name, data, len};
    return mk_archive("zip", NULL, &f, 1, NULL, false, outlen);
}

static struct analysis *new_analysis(const char *text)
{
    struct analysis *a = xcalloc(1, sizeof *a);
    a->text = xstrdup(text ? text : "");
    a->text_len = strlen(a->text);
    return a;
}

static bool has_flag(const struct analysis *a, const char *name, const char *reason_part)
{
    for (size_t i = 0; i < a->nflags; i++)
        if (strcmp(a->flags[i].name, name) == 0 &&
            (!reason_part || (a->flags[i].reason && strstr(a->flags[i].reason, reason_part))))
            return true;
    return false;
}

static const struct mime_member *member(const struct mime_attachment *at, const char *path)
{
    for (size_t i = 0; i < at->nmembers; i++)
        if (strcmp(at->members[i].path, path) == 0)
            return &at->members[i];
    return NULL;
}

/* analyse - one attachment into a fresh analysis with default limits (or l) */
static struct analysis *analyse(const char *text, const struct mime_limits *l, const char *name,
                                const char *declared, const void *data, size_t len)
{
    struct analysis *a = new_analysis(text);
    mime_attach_analyse(a, l, "2", name, declared, data, len);
    assert_int_equal(a->nattachments, 1);
    return a;
}

/* a minimal PE/DOS header libmagic calls application/x-dosexec */
static unsigned char *fake_exe(size_t *len)
{
    static unsigned char pe[512];
    memset(pe, 0, sizeof pe);
    pe[0] = 'M', pe[1] = 'Z';
    pe[0x3c] = 0x80;
    memcpy(pe + 0x80, "PE\0\0", 4);
    pe[0x84] = 0x4c, pe[0x85] = 0x01; /* i386 */
    pe[0x86] = 1;                     /* one section */
    pe[0x94] = 0xe0;                  /* optional header size */
    pe[0x96] = 0x02, pe[0x97] = 0x01; /* characteristics: executable, 32-bit */
    pe[0x98] = 0x0b, pe[0x99] = 0x01; /* PE32 magic */
    pe[0x98 + 68] = 2;                /* subsystem: GUI */
    *len = sizeof pe;
    return pe;
}

/* ---------------------------------------------------------------- names, types */

static void test_names(void **state)
{
    static const struct {
        const char *name, *ext;
        bool dbl, bidi;
    } cases[] = {
        {"invoice.pdf.exe", "exe", true, false},
        {"Report.PDF", "pdf", false, false},
        {"setup.exe. . .", "exe", false, false},
        {"setup.exe   ", "exe", false, false},
        {"invoice\xe2\x80\xae" "fdp.exe", "exe", false, true},       /* shows as invoiceexe.pdf */
        {"photo\xe2\x80\xae" "gpj.scr", "scr", false, true},
        {"doc.pdf\xe2\x80\x8b.js", "js", true, true},                /* zero-width space */
        {"archive.tar.gz", "gz", false, false},
        {"noextension", NULL, false, false},
        {"", NULL, false, false},
        {"C:\\Users\\x\\evil.doc.scr", "scr", true, false},
        {"dir.d/file", NULL, false, false},
        {"report.2024.pdf", "pdf", false, false},
        {"\xff\xfe.exe", "exe", false, false},                       /* invalid UTF-8 */
        {"\xe8\xab\x8b\xe6\xb1\x82\xe6\x9b\xb8.xlsm", "xlsm", false, false}, /* 請求書.xlsm */
    };
    for (size_t i = 0; i < NELEM(cases); i++) {
        struct analysis *a = analyse(NULL, NULL, cases[i].name, "application/octet-stream", "x", 1);
        const struct mime_attachment *at = &a->attachments[0];
        if (cases[i].ext) {
            assert_non_null(at->extension);
            assert_string_equal(at->extension, cases[i].ext);
        } else {
            assert_null(at->extension);
        }
        assert_int_equal(at->double_extension, cases[i].dbl);
        assert_int_equal(at->name_bidi, cases[i].bidi);
        assert_null(strstr(at->filename, "\xe2\x80\xae"));
        assert_true(g_utf8_validate(at->filename, -1, NULL));
        analysis_free(a);
    }
}

static void test_true_type(void **state)
{
    size_t n;
    unsigned char *exe = fake_exe(&n);
    struct analysis *a = analyse(NULL, NULL, "invoice.pdf", "Application/PDF", exe, n);
    const struct mime_attachment *at = &a->attachments[0];
    assert_string_equal(at->extension, "pdf");
    assert_string_equal(at->declared_type, "application/pdf");
    assert_true(is_exe(at->true_type));
    assert_int_equal(at->size, n);
    assert_string_equal(at->part_path, "2");
    assert_non_null(at->data);
    assert_memory_equal(at->data, exe, n);
    analysis_free(a);

    a = analyse(NULL, NULL, "hello.txt", "text/plain", "hello\n", 6);
    at = &a->attachments[0];
    assert_string_equal(at->true_type, "text/plain");
    /* sha256("hello\n") */
    assert_string_equal(at->sha256, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
    analysis_free(a);

    a = analyse(NULL, NULL, NULL, NULL, NULL, 0);
    at = &a->attachments[0];
    assert_string_equal(at->filename, "");
    assert_null(at->declared_type);
    assert_string_equal(at->true_type, "application/x-empty");
    assert_int_equal(at->size, 0);
    assert_string_equal(at->sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    analysis_free(a);
}

/* ---------------------------------------------------------------- archives */

static void test_zip_nested(void **state)
{
    size_t n, inner_len, outer_len;
    unsigned char *exe = fake_exe(&n);
    struct file_spec inner_files[] = {{"b.exe", exe, n}};
    unsigned char *inner = mk_archive("zip", NULL, inner_files, 1, NULL, false, &inner_len);
    struct file_spec outer_files[] = {{"a.txt", (const unsigned char *)"hello\n", 6},
                                      {"sub/inner.zip", inner, inner_len}};
    unsigned char *outer = mk_archive("zip", NULL, outer_files, 2, NULL, false, &outer_len);

    struct analysis *a = analyse(NULL, NULL, "invoice.zip", "application/zip", outer, outer_len);
    const struct mime_attachment *at = &a->attachments[0];
    assert_string_equal(at->true_type, "application/zip");
    assert_int_equal(at->nmembers, 3);
    const struct mime_member *m = member(at, "invoice.zip/a.txt");
    assert_non_null(m);
    assert_string_equal(m->true_type, "text/plain");
    assert_int_equal(m->size, 6);
    assert_int_equal(m->depth, 1);
    assert_string_equal(m->sha256, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
    m = member(at, "invoice.zip/sub/inner.zip");
    assert_non_null(m);
    assert_string_equal(m->true_type, "application/zip");
    m = member(at, "invoice.zip/sub/inner.zip/b.exe");
    assert_non_null(m);
    assert_true(is_exe(m->true_type));
    assert_int_equal(m->depth, 2);
    assert_false(at->encrypted);
    assert_int_equal(a->nflags, 0);
    assert_int_equal(at->extracted, 6 + inner_len + n);
    analysis_free(a);
    free(inner);
    free(outer);
}

static void test_tar_gz_7z(void **state)
{
    static const unsigned char text[] = "some text\n";
    size_t n, len;
    unsigned char *exe = fake_exe(&n);
    struct file_spec files[] = {{"dir/readme.txt", text, sizeof text - 1}, {"tool.exe", exe, n}};

    unsigned char *tgz = mk_archive("tar", "gzip", files, 2, NULL, false, &len);
    struct analysis *a = analyse(NULL, NULL, "x.tar.gz", "application/gzip", tgz, len);
    const struct mime_attachment *at = &a->attachments[0];
    assert_string_equal(at->true_type, "application/gzip");
    assert_int_equal(at->nmembers, 2);
    assert_non_null(member(at, "x.tar.gz/dir/readme.txt"));
    assert_true(is_exe(member(at, "x.tar.gz/tool.exe")->true_type));
    analysis_free(a);
    free(tgz);

    unsigned char *tbz = mk_archive("tar", "bzip2", files, 2, NULL, false, &len);
    a = analyse(NULL, NULL, "x.tbz", NULL, tbz, len);
    assert_int_equal(a->attachments[0].nmembers, 2);
    analysis_free(a);
    free(tbz);

    unsigned char *sz = mk_archive("7z", NULL, files, 2, NULL, false, &len);
    a = analyse(NULL, NULL, "x.7z", NULL, sz, len);
    at = &a->attachments[0];
    assert_string_equal(at->true_type, "application/x-7z-compressed");
    assert_int_equal(at->nmembers, 2);
    assert_true(is_exe(member(at, "x.7z/tool.exe")->true_type));
    analysis_free(a);
    free(sz);

    /* a single-file compressor: raw format, named after the container */
    struct archive *w = archive_write_new();
    unsigned char gz[4096];
    size_t used = 0;
    archive_write_set_format_raw(w);
    archive_write_add_filter_gzip(w);
    archive_write_open_memory(w, gz, sizeof gz, &used);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_size(e, (la_int64_t)n);
    archive_write_header(w, e);
    archive_write_data(w, exe, n);
    archive_write_close(w);
    archive_write_free(w);
    archive_entry_free(e);
    a = analyse(NULL, NULL, "setup.exe.gz", NULL, gz, used);
    at = &a->attachments[0];
    assert_int_equal(at->nmembers, 1);
    assert_string_equal(at->members[0].path, "setup.exe.gz/setup.exe");
    assert_true(is_exe(at->members[0].true_type));
    analysis_free(a);

    /* a gzip of a non-archive is one member; a plain file is no archive */
    a = analyse(NULL, NULL, "plain.zip", "application/zip", "not a zip", 9);
    assert_int_equal(a->attachments[0].nmembers, 0);
    analysis_free(a);
}

/* ---------------------------------------------------------------- limits */

/* files: 352, 353, 354 entries in one zip (default limit 353) */
static void test_limit_files(void **state)
{
    static const unsigned files_n[] = {352, 353, 354};
    for (size_t c = 0; c < NELEM(files_n); c++) {
        struct file_spec *f = xcalloc(files_n[c], sizeof *f);
        char (*names)[32] = xcalloc(files_n[c], 32);
        for (unsigned i = 0; i < files_n[c]; i++) {
            snprintf(names[i], 32, "f%u.txt", i);
            f[i].name = names[i];
            f[i].data = (const unsigned char *)"x";
            f[i].len = 1;
        }
        size_t len;
        unsigned char *z = mk_archive("zip", NULL, f, files_n[c], NULL, true, &len);
        struct analysis *a = analyse(NULL, NULL, "x.zip", NULL, z, len);
        bool over = files_n[c] > 353;
        assert_int_equal(has_flag(a, "archive_limits", "x.zip: more than 353 files"), over);
        assert_int_equal(a->attachments[0].nmembers, over ? 353 : files_n[c]);
        analysis_free(a);
        free(z);
        free(f);
        free(names);
    }
}

/* nesting: a file at the bottom of 19, 20, 21 nested zips (limit 20) */
static void test_limit_depth(void **state)
{
    static const unsigned levels[] = {19, 20, 21};
    for (size_t c = 0; c < NELEM(levels); c++) {
        size_t len;
        unsigned char *cur = zip1("bottom.txt", "bottom\n", 7, &len);
        for (unsigned lv = 2; lv <= levels[c]; lv++) {
            char name[32];
            size_t nlen;
            snprintf(name, sizeof name, "l%u.zip", lv - 1);
            unsigned char *next = zip1(name, cur, len, &nlen);
            free(cur);
            cur = next;
            len = nlen;
        }
        struct analysis *a = analyse(NULL, NULL, "deep.zip", NULL, cur, len);
        const struct mime_attachment *at = &a->attachments[0];
        bool over = levels[c] > 20;
        assert_int_equal(has_flag(a, "archive_limits", "nested deeper than 20 levels"), over);
        bool bottom_seen = false;
        for (size_t i = 0; i < at->nmembers; i++)
            if (strstr(at->members[i].path, "bottom.txt")) {
                bottom_seen = true;
                assert_int_equal(at->members[i].depth, levels[c]);
            }
        assert_int_equal(bottom_seen, !over);
        analysis_free(a);
        free(cur);
    }
}

/* total extracted: limit 10000 bytes; 9999, 10000, 10001 incompressible bytes */
static void test_limit_total(void **state)
{
    unsigned char *rnd = xmalloc(10001);
    uint32_t x = 12345;
    for (size_t i = 0; i < 10001; i++) {
        x = x * 1103515245u + 12345u;
        rnd[i] = (unsigned char)(x >> 16);
    }
    struct mime_limits l;
    mime_limits_default(&l);
    l.archive_total_bytes = 10000;
    static const size_t sizes[] = {9999, 10000, 10001};
    for (size_t c = 0; c < NELEM(sizes); c++) {
        size_t len;
        unsigned char *z = zip1("r.bin", rnd, sizes[c], &len);
        struct analysis *a = analyse(NULL, &l, "t.zip", NULL, z, len);
        assert_int_equal(has_flag(a, "archive_limits", "t.zip: more than 10000 bytes extracted"),
                         sizes[c] > 10000);
        analysis_free(a);
        free(z);
    }
    /* the total is per message: two attachments of 6000 bytes each */
    size_t len;
    unsigned char *z = zip1("r.bin", rnd, 6000, &len);
    struct analysis *a = new_analysis("");
    mime_attach_analyse(a, &l, "2", "one.zip", NULL, z, len);
    assert_int_equal(a->nflags, 0);
    mime_attach_analyse(a, &l, "3", "two.zip", NULL, z, len);
    assert_true(has_flag(a, "archive_limits", "two.zip: more than 10000 bytes extracted"));
    analysis_free(a);
    free(z);
    free(rnd);

    /* the default is 60 MB */
    mime_limits_default(&l);
    assert_int_equal(l.archive_total_bytes, 60ull * 1024 * 1024);
    assert_int_equal(l.archive_files, 353);
    assert_int_equal(l.archive_depth, 20);
    assert_int_equal(l.archive_ratio, 100);
}

/* ratio: the rule at max-1 / max / max+1, then a bomb and a normal archive */
static void test_limit_ratio(void **state)
{
    uint64_t c = 10000, p = 100 * c; /* 1,000,000 bytes out of 10,000 in: exactly 100:1 */
    assert_true(p > MIME_ARCHIVE_RATIO_FLOOR);
    assert_false(mime_archive_ratio_exceeded(p - 1, c, 100));
    assert_false(mime_archive_ratio_exceeded(p, c, 100));
    assert_true(mime_archive_ratio_exceeded(p + 1, c, 100));
    assert_true(mime_archive_ratio_exceeded(p, c, 99));
    assert_false(mime_archive_ratio_exceeded(p, c, 101));
    assert_false(mime_archive_ratio_exceeded(MIME_ARCHIVE_RATIO_FLOOR, 1, 100)); /* small: never */
    assert_true(mime_archive_ratio_exceeded(MIME_ARCHIVE_RATIO_FLOOR + 1, 1, 100));
    assert_false(mime_archive_ratio_exceeded(UINT64_MAX, UINT64_MAX / 2, 100));
    assert_false(mime_archive_ratio_exceeded(p, c, 0)); /* 0: no limit */

    /* 20 MB of zeros deflate to ~20 KB: about 1000:1 */
    size_t big = 20 * 1024 * 1024, len;
    unsigned char *zeros = xcalloc(1, big);
    unsigned char *z = zip1("zeros.bin", zeros, big, &len);
    struct analysis *a = analyse(NULL, NULL, "bomb.zip", NULL, z, len);
    assert_true(has_flag(a, "archive_limits", "bomb.zip/zeros.bin: compression ratio over 100:1"));
    assert_true(a->attachments[0].extracted < 2 * 1024 * 1024); /* stopped early */
    analysis_free(a);
    free(z);

    /* the same bomb with the ratio limit raised to 2000: only the total stops it? no:
     * 20 MB is under 60 MB, so it is read to its end */
    struct mime_limits l;
    mime_limits_default(&l);
    l.archive_ratio = 5000;
    z = zip1("zeros.bin", zeros, big, &len);
    a = analyse(NULL, &l, "bomb.zip", NULL, z, len);
    assert_int_equal(a->nflags, 0);
    assert_int_equal(a->attachments[0].members[0].size, big);
    analysis_free(a);
    free(z);
    free(zeros);

    /* ordinary text (compresses maybe 5:1) is fine */
    size_t tlen = 600 * 1024;
    unsigned char *txt = xmalloc(tlen);
    uint32_t x = 7;
    for (size_t i = 0; i < tlen; i++) {
        x = x * 1103515245u + 12345u;
        txt[i] = (unsigned char)('a' + (x >> 16) % 26);
        if (i % 60 == 59)
            txt[i] = '\n';
    }
    z = zip1("log.txt", txt, tlen, &len);
    a = analyse(NULL, NULL, "logs.zip", NULL, z, len);
    assert_int_equal(a->nflags, 0);
    assert_int_equal(a->attachments[0].members[0].size, tlen);
    analysis_free(a);
    free(z);
    free(txt);
}

/* ---------------------------------------------------------------- passwords */

static void test_harvest(void **state)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"password: abc123", "abc123"},
        {"Password:abc123\n", "abc123"},
        {"The password is abc123.", "abc123"},
        {"PW: xY9!z", "xY9!z"},
        {"pass = hunter2", "hunter2"},
        {"\xe3\x83\x91\xe3\x82\xb9\xe3\x83\xaf\xe3\x83\xbc\xe3\x83\x89\xef\xbc\x9a" "abc123", "abc123"}, /* パスワード：abc123 */
        {"\xe8\xa7\xa3\xe5\x87\x8d\xe3\x83\x91\xe3\x82\xb9\xe3\x83\xaf\xe3\x83\xbc\xe3\x83\x89\xe3\x81\xaf"
         " Qw3rty \xe3\x81\xa7\xe3\x81\x99", "Qw3rty"}, /* 解凍パスワードは Qw3rty です */
        {"\xe3\x83\x91\xe3\x82\xb9\xe3\x83\xaf\xe3\x83\xbc\xe3\x83\x89\xe3\x80\x8c" "k3y\xe3\x80\x8d", "k3y"}, /* パスワード「k3y」 */
        {"\xef\xbc\xb0\xef\xbc\xb7\xef\xbc\x9a\xef\xbd\x81\xef\xbd\x82\xef\xbd\x83\xef\xbc\x91", "abc1"}, /* ＰＷ：ａｂｃ１ */
        {"\xe3\x83\x91\xe3\x82\xb9\xe3\x83\xaf\xe3\x83\xbc\xe3\x83\x89\xe3\x81\xaf\xe4\xb8\x8b\xe8\xa8\x98"
         "\xe3\x81\xa7\xe3\x81\x99\xe3\x80\x82\n\n  S3cret#\n", "S3cret#"}, /* パスワードは下記です。 */
        {"Password:\r\n  nextline9\r\n", "nextline9"},
        {"\xe3\x83\x91\xe3\x82\xb9: p4ss", "p4ss"}, /* パス: p4ss */
        {"password \"quoted pw\"", "quoted pw"},
    };
    for (size_t i = 0; i < NELEM(cases); i++) {
        char *out[MIME_MAX_HARVESTED];
        size_t n = mime_password_harvest(cases[i].text, strlen(cases[i].text), out, MIME_MAX_HARVESTED);
        bool found = false;
        for (size_t k = 0; k < n; k++) {
            if (strcmp(out[k], cases[i].want) == 0)
                found = true;
            free(out[k]);
        }
        if (!found)
            fail_msg("case %zu: %s not harvested", i, cases[i].want);
    }
    /* nothing to find */
    static const char *const none[] = {"passport number", "\xe3\x83\x91\xe3\x82\xb9\xe3\x82\xbf", "", "bypass the gate"};
    for (size_t i = 0; i < NELEM(none); i++) {
        char *out[4];
        assert_int_equal(mime_password_harvest(none[i], strlen(none[i]), out, 4), 0);
    }
    /* bounded */
    struct buf b;
    buf_init(&b, 1 << 20);
    for (int i = 0; i < 100; i++)
        buf_printf(&b, "password: pw%d\n", i);
    char *out[MIME_MAX_HARVESTED];
    size_t n = mime_password_harvest(b.ptr, b.len, out, MIME_MAX_HARVESTED);
    assert_int_equal(n, MIME_MAX_HARVESTED);
    for (size_t k = 0; k < n; k++)
        free(out[k]);
    buf_free(&b);
}

static void test_encrypted(void **state)
{
    static const unsigned char secret[] = "quarterly figures\n";
    struct file_spec f[] = {{"report.txt", secret, sizeof secret - 1}};
    size_t len;
    unsigned char *z = mk_archive("zip", NULL, f, 1, "abc123", false, &len);
    static const char *const texts[] = {
        "Please find the file attached.\n",
        "\xe3\x81\x8a\xe4\xb8\x96\xe8\xa9\xb1\xe3\x81\xab\xe3\x81\xaa\xe3\x81\xa3\xe3\x81\xa6\xe3\x81\x8a\xe3\x82\x8a"
        "\xe3\x81\xbe\xe3\x81\x99\xe3\x80\x82\n\xe3\x83\x91\xe3\x82\xb9\xe3\x83\xaf\xe3\x83\xbc\xe3\x83\x89\xef\xbc\x9a"
        "abc123\n",
        "Hello,\nthe password: abc123\nRegards\n",
    };
    for (size_t c = 0; c < NELEM(texts); c++) {
        struct analysis *a = analyse(texts[c], NULL, "secret.zip", "application/zip", z, len);
        const struct mime_attachment *at = &a->attachments[0];
        assert_true(at->encrypted);
        const struct mime_member *m = member(at, "secret.zip/report.txt");
        assert_non_null(m);
        assert_true(m->encrypted);
        if (c == 0) {
            assert_false(m->decrypted);
            assert_false(at->decrypted);
            assert_true(has_flag(a, "encrypted", "secret.zip/report.txt: encrypted"));
        } else {
            assert_true(m->decrypted);
            assert_true(at->decrypted);
            assert_string_equal(m->true_type, "text/plain");
            assert_int_equal(m->size, sizeof secret - 1);
            assert_false(has_flag(a, "encrypted", NULL));
        }
        analysis_free(a);
    }
    /* the tenant's list */
    struct mime_limits l;
    mime_limits_default(&l);
    static const char *const pw[] = {"nope", "abc123"};
    l.passwords = pw;
    l.npasswords = 2;
    struct analysis *a = analyse("no password here", &l, "secret.zip", NULL, z, len);
    assert_true(a->attachments[0].decrypted);
    assert_int_equal(a->nflags, 0);
    analysis_free(a);

    /* wrong candidates only: still encrypted */
    a = analyse("password: wrong1 pw: wrong2", NULL, "secret.zip", NULL, z, len);
    assert_false(a->attachments[0].decrypted);
    assert_true(has_flag(a, "encrypted", "secret.zip/report.txt"));
    analysis_free(a);

    /* while the message is still being parsed (a->text NULL) the flag
     * waits for mime_attach_finish, which tries the text's passwords */
    a = xcalloc(1, sizeof *a);
    mime_attach_analyse(a, NULL, "2", "secret.zip", NULL, z, len);
    assert_int_equal(a->nflags, 0);
    assert_true(a->attachments[0].passwords_pending);
    a->text = xstrdup("PW: abc123");
    a->text_len = strlen(a->text);
    mime_attach_finish(a, NULL);
    assert_true(a->attachments[0].decrypted);
    assert_int_equal(a->attachments[0].nmembers, 1);
    assert_int_equal(a->nflags, 0);
    analysis_free(a);

    a = xcalloc(1, sizeof *a);
    mime_attach_analyse(a, NULL, "2", "secret.zip", NULL, z, len);
    a->text = xstrdup("nothing");
    a->text_len = strlen(a->text);
    mime_attach_finish(a, NULL);
    assert_false(a->attachments[0].decrypted);
    assert_true(has_flag(a, "encrypted", "secret.zip/report.txt"));
    analysis_free(a);
    free(z);
}

/* ---------------------------------------------------------------- documents */

static void test_ooxml_macros(void **state)
{
    static const unsigned char ct[] =
        "<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">"
        "<Default Extension=\"bin\" ContentType=\"application/vnd.ms-office.vbaProject\"/></Types>";
    static const unsigned char doc[] = "<w:document/>";
    static const unsigned char vba[] = "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 not really";
    struct file_spec f[] = {{"[Content_Types].xml", ct, sizeof ct - 1},
                            {"word/document.xml", doc, sizeof doc - 1},
                            {"word/vbaProject.bin", vba, sizeof vba - 1},
                            {"word/embeddings/oleObject1.bin", vba, sizeof vba - 1}};
    size_t len;
    unsigned char *z = mk_archive("zip", NULL, f, NELEM(f), NULL, false, &len);
    struct analysis *a = analyse(NULL, NULL, "invoice.docm", NULL, z, len);
    const struct mime_attachment *at = &a->attachments[0];
    assert_true(at->macros);
    assert_true(at->ole_objects);
    analysis_free(a);

    /* the same document inside a zip: the member and the attachment say so */
    size_t zlen;
    unsigned char *zz = zip1("invoice.docm", z, len, &zlen);
    a = analyse(NULL, NULL, "mail.zip", NULL, zz, zlen);
    at = &a->attachments[0];
    assert_true(at->macros);
    assert_true(member(at, "mail.zip/invoice.docm")->macros);
    analysis_free(a);
    free(zz);
    free(z);

    /* no macros */
    struct file_spec g[] = {{"[Content_Types].xml", ct, sizeof ct - 1}, {"word/document.xml", doc, sizeof doc - 1}};
    z = mk_archive("zip", NULL, g, 2, NULL, false, &len);
    a = analyse(NULL, NULL, "clean.docx", NULL, z, len);
    assert_false(a->attachments[0].macros);
    assert_false(a->attachments[0].ole_objects);
    analysis_free(a);
    free(z);
}

/* mk_ole - an OLE2 file with the given storage/stream paths (libgsf
 * writer); paths sharing storages must be adjacent ("A/x", "A/y") */
static unsigned char *mk_ole(const char *const *paths, size_t n, const unsigned char *word_fib, size_t *len)
{
    GsfOutput *mem = gsf_output_memory_new();
    GsfOutfile *stack[8];
    char names[8][64];
    size_t depth = 0;
    stack[0] = gsf_outfile_msole_new(mem);
    for (size_t i = 0; i < n; i++) {
        char buf[256], *comp[8];
        size_t nc = 0;
        core_strlcpy(buf, paths[i], sizeof buf);
        for (char *p = buf, *slash;; p = slash + 1) {
            comp[nc++] = p;
            if ((slash = strchr(p, '/')) == NULL)
                break;
            *slash = '\0';
        }
        /* keep the open storages this path shares, close the others */
        size_t keep = 0;
        while (keep < depth && keep < nc - 1 && strcmp(names[keep + 1], comp[keep]) == 0)
            keep++;
        while (depth > keep) {
            gsf_output_close(GSF_OUTPUT(stack[depth]));
            g_object_unref(stack[depth]);
            depth--;
        }
        for (size_t k = depth; k < nc - 1; k++) {
            stack[k + 1] = GSF_OUTFILE(gsf_outfile_new_child(stack[k], comp[k], TRUE));
            core_strlcpy(names[k + 1], comp[k], sizeof names[k + 1]);
            depth = k + 1;
        }
        GsfOutput *st = gsf_outfile_new_child(stack[depth], comp[nc - 1], FALSE);
        if (strcmp(comp[nc - 1], "WordDocument") == 0 && word_fib)
            gsf_output_write(st, 12, word_fib);
        else
            gsf_output_write(st, 8, (const guint8 *)"contents");
        gsf_output_close(st);
        g_object_unref(st);
    }
    while (depth > 0) {
        gsf_output_close(GSF_OUTPUT(stack[depth]));
        g_object_unref(stack[depth]);
        depth--;
    }
    gsf_output_close(GSF_OUTPUT(stack[0]));
    g_object_unref(stack[0]);
    *len = (size_t)gsf_output_size(mem);
    unsigned char *out = xmalloc(*len);
    memcpy(out, gsf_output_memory_get_bytes(GSF_OUTPUT_MEMORY(mem)), *len);
    g_object_unref(mem);
    return out;
}

static void test_ole(void **state)
{
    static const unsigned char fib_plain[12] = {0xec, 0xa5, 0xc1, 0x00};
    static const unsigned char fib_enc[12] = {0xec, 0xa5, 0xc1, 0x00, 0, 0, 0, 0, 0, 0, 0x00, 0x01};
    static const char *const macro_doc[] = {"WordDocument", "Macros/VBA/dir", "Macros/PROJECT"};
    static const char *const ole_doc[] = {"WordDocument", "ObjectPool/_1234/\x01Ole10Native"};
    static const char *const enc_ooxml[] = {"EncryptionInfo", "EncryptedPackage"};
    static const char *const xls_vba[] = {"Workbook", "_VBA_PROJECT_CUR/VBA/dir"};
    gsf_init();
    size_t len;
    unsigned char *d = mk_ole(macro_doc, NELEM(macro_doc), fib_plain, &len);
    struct analysis *a = analyse(NULL, NULL, "a.doc", NULL, d, len);
    assert_true(a->attachments[0].macros);
    assert_false(a->attachments[0].ole_objects);
    assert_false(a->attachments[0].encrypted);
    analysis_free(a);
    free(d);

    d = mk_ole(ole_doc, NELEM(ole_doc), fib_enc, &len);
    a = analyse(NULL, NULL, "b.doc", NULL, d, len);
    assert_false(a->attachments[0].macros);
    assert_true(a->attachments[0].ole_objects);
    assert_true(a->attachments[0].encrypted);
    assert_true(has_flag(a, "encrypted", "b.doc: password-protected document"));
    analysis_free(a);
    free(d);

    d = mk_ole(enc_ooxml, NELEM(enc_ooxml), NULL, &len);
    a = analyse(NULL, NULL, "c.docx", NULL, d, len);
    assert_true(a->attachments[0].encrypted);
    assert_true(has_flag(a, "encrypted", "c.docx"));
    analysis_free(a);
    free(d);

    d = mk_ole(xls_vba, NELEM(xls_vba), NULL, &len);
    a = analyse(NULL, NULL, "d.xls", NULL, d, len);
    assert_true(a->attachments[0].macros);
    analysis_free(a);
    free(d);
}

/* deflate - zlib-compress with GIO (caller frees) */
static unsigned char *deflate_buf(const char *s, size_t n, size_t *outlen)
{
    GZlibCompressor *z = g_zlib_compressor_new(G_ZLIB_COMPRESSOR_FORMAT_ZLIB, 9);
    size_t cap = n + 1024;
    unsigned char *out = xmalloc(cap);
    gsize r = 0, w = 0;
    GConverterResult res = g_converter_convert(G_CONVERTER(z), s, n, out, cap, G_CONVERTER_INPUT_AT_END, &r, &w, NULL);
    assert_int_equal(res, G_CONVERTER_FINISHED);
    g_object_unref(z);
    *outlen = w;
    return out;
}

static void test_pdf(void **state)
{
    static const struct {
        const char *pdf;
        bool js, launch, open, enc;
    } cases[] = {
        {"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /OpenAction 2 0 R >>\nendobj\n2 0 obj\n<< /S /JavaScript /JS (app.alert(1)) >>\nendobj\n%%EOF\n",
         true, false, true, false},
        {"%PDF-1.4\n2 0 obj\n<</S/J#61vaScript/J#53(x)>>\nendobj\n%%EOF\n", true, false, false, false},
        {"%PDF-1.4\n2 0 obj\n<</S/#4C#61#75#6E#63#68/F(cmd.exe)>>\nendobj\n%%EOF\n", false, true, false, false},
        {"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R /Encrypt 5 0 R >>\n%%EOF\n",
         false, false, false, true},
        {"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /JavaScriptX 1 /Launcher 2 >>\nendobj\n%%EOF\n", false, false, false, false},
    };
    for (size_t i = 0; i < NELEM(cases); i++) {
        struct analysis *a = analyse(NULL, NULL, "doc.pdf", "application/pdf", cases[i].pdf, strlen(cases[i].pdf));
        const struct mime_attachment *at = &a->attachments[0];
        assert_string_equal(at->true_type, "application/pdf");
        assert_int_equal(at->pdf_javascript, cases[i].js);
        assert_int_equal(at->pdf_launch, cases[i].launch);
        assert_int_equal(at->pdf_open_action, cases[i].open);
        assert_int_equal(at->encrypted, cases[i].enc);
        analysis_free(a);
    }
    /* /JavaScript hidden in a compressed object stream */
    static const char inner[] = "<< /S /JavaScript /JS (app.launchURL('x')) >>";
    size_t zlen;
    unsigned char *zs = deflate_buf(inner, sizeof inner - 1, &zlen);
    struct buf b;
    buf_init(&b, 1 << 20);
    buf_printf(&b, "%%PDF-1.5\n3 0 obj\n<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /Length %zu >>\nstream\n", zlen);
    buf_append(&b, zs, zlen);
    buf_append_str(&b, "\nendstream\nendobj\n%%EOF\n");
    struct analysis *a = analyse(NULL, NULL, "hidden.pdf", NULL, b.ptr, b.len);
    assert_true(a->attachments[0].pdf_javascript);
    analysis_free(a);
    buf_free(&b);
    free(zs);
}

/* ---------------------------------------------------------------- corpus */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* corpus_file - analyse one corpus file; returns the analysis */
static struct analysis *corpus_file(const char *path, const char *name, double *secs)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    struct stat st;
    assert_int_equal(fstat(fileno(f), &st), 0);
    size_t n = (size_t)st.st_size;
    unsigned char *data = xmalloc(n ? n : 1);
    assert_int_equal(fread(data, 1, n, f), n);
    fclose(f);
    struct analysis *a = new_analysis("Hello, see attached.\n");
    double t0 = now_s();
    mime_attach_analyse(a, NULL, "2", name, "application/octet-stream", data, n);
    *secs = now_s() - t0;
    free(data);
    return a;
}

static void test_corpus(void **state)
{
    const char *root = getenv("MOAT_CORPUS");
    char dir[4096];
    static const char *const subdirs[] = {"eicar", "encrypted", "zipbombs", "clamav-testfiles"};
    struct stat st;

    if (!root || snprintf(dir, sizeof dir, "%s/malware-test", root) < 0 || stat(dir, &st) < 0) {
        printf("NOTICE: test_corpus skipped: %s/malware-test is absent (../shared not here)\n",
               root ? root : "$MOAT_CORPUS");
        skip();
    }
    unsigned files = 0;
    for (size_t d = 0; d < NELEM(subdirs); d++) {
        char sub[4200];
        snprintf(sub, sizeof sub, "%s/%s", dir, subdirs[d]);
        DIR *dh = opendir(sub);
        if (!dh)
            continue;
        struct dirent *e;
        while ((e = readdir(dh)) != NULL) {
            char path[4400];
            if (e->d_name[0] == '.' || strcmp(e->d_name, "DEBIAN-COPYRIGHT") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", sub, e->d_name);
            double secs;
            struct analysis *a = corpus_file(path, e->d_name, &secs);
            const struct mime_attachment *at = &a->attachments[0];
            bool limits = has_flag(a, "archive_limits", NULL), enc = has_flag(a, "encrypted", NULL);
            printf("corpus %-18s %-40s %-34s members=%-4zu extracted=%-9llu %.2fs%s%s%s%s\n", subdirs[d],
                   e->d_name, at->true_type, at->nmembers, (unsigned long long)at->extracted, secs,
                   limits ? " archive_limits" : "", enc ? " encrypted" : "", at->macros ? " macros" : "",
                   at->ole_objects ? " ole" : "");
            for (size_t i = 0; i < a->nflags; i++)
                printf("    flag %s: %s\n", a->flags[i].name, a->flags[i].reason ? a->flags[i].reason : "");
            if (secs > 20)
                fail_msg("%s took %.1f s", path, secs);
            if (strcmp(subdirs[d], "zipbombs") == 0) {
                bool want = strcmp(e->d_name, "nested-5-levels-eicar-at-bottom.zip") != 0;
                if (strcmp(e->d_name, "42.zip") == 0)
                    limits = limits || enc; /* its zips are encrypted with "42": see below */
                if (limits != want)
                    fail_msg("%s: archive_limits %d, expected %d", e->d_name, limits, want);
                assert_true(at->extracted <= 60ull * 1024 * 1024);
            } else if (strcmp(subdirs[d], "encrypted") == 0) {
                if (!enc || !at->encrypted)
                    fail_msg("%s: not flagged encrypted", e->d_name);
            } else if (strcmp(subdirs[d], "eicar") == 0) {
                assert_false(limits);
                assert_false(enc);
                if (strstr(e->d_name, "in-zip-in-zip"))
                    assert_int_equal(at->nmembers, 2);
            }
            if (strcmp(e->d_name, "nested-5-levels-eicar-at-bottom.zip") == 0)
                assert_int_equal(at->nmembers, 5); /* 4 inner zips + eicar */
            if (strcmp(e->d_name, "clam.tnef") == 0 || strcmp(e->d_name, "clam.zip") == 0 ||
                strcmp(e->d_name, "clam.7z") == 0 || strcmp(e->d_name, "clam.tar.gz") == 0 ||
                strcmp(e->d_name, "clam.cab") == 0) {
                bool exe = false;
                for (size_t i = 0; i < at->nmembers; i++)
                    if (is_exe(at->members[i].true_type))
                        exe = true;
                if (!exe)
                    fail_msg("%s: no executable member", e->d_name);
            }
            analysis_free(a);
            files++;
        }
        closedir(dh);
    }
    /* the encrypted samples open with their passwords from the text */
    static const struct {
        const char *file, *text;
    } pw[] = {{"zipbombs/42.zip", "password: 42"},
              {"encrypted/eicar-pw-infected.zip", "The password is infected"},
              {"encrypted/harmless-pw-secret123.zip", "\xe3\x83\x91\xe3\x82\xb9\xe3\x83\xaf\xe3\x83\xbc\xe3\x83\x89\xef\xbc\x9asecret123"}};
    for (size_t i = 0; i < NELEM(pw); i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, pw[i].file);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        unsigned char buf[65536];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        double t0 = now_s();
        struct analysis *a = analyse(pw[i].text, NULL, "x.zip", NULL, buf, n);
        printf("corpus %s with \"%s\": %zu members, %.2fs\n", pw[i].file, pw[i].text,
               a->attachments[0].nmembers, now_s() - t0);
        for (size_t k = 0; k < a->nflags; k++)
            printf("    flag %s: %s\n", a->flags[k].name, a->flags[k].reason ? a->flags[k].reason : "");
        assert_true(a->attachments[0].encrypted);
        assert_true(a->attachments[0].decrypted);
        if (strstr(pw[i].file, "42.zip"))
            assert_true(has_flag(a, "archive_limits", NULL));
        else
            assert_false(has_flag(a, "encrypted", NULL));
        analysis_free(a);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("corpus: %u files, peak RSS %ld MB\n", files, ru.ru_maxrss / 1024);
    assert_true(files > 40);
    assert_true(ru.ru_maxrss < 1536 * 1024);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),         cmocka_unit_test(test_true_type),
        cmocka_unit_test(test_zip_nested),    cmocka_unit_test(test_tar_gz_7z),
        cmocka_unit_test(test_limit_files),   cmocka_unit_test(test_limit_depth),
        cmocka_unit_test(test_limit_total),   cmocka_unit_test(test_limit_ratio),
        cmocka_unit_test(test_harvest),       cmocka_unit_test(test_encrypted),
        cmocka_unit_test(test_ooxml_macros),  cmocka_unit_test(test_ole),
        cmocka_unit_test(test_pdf),           cmocka_unit_test(test_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
