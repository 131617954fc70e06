/*
 * test_mime_corpus.c - analyse every message of the shared corpus
 * ($MOAT_CORPUS, normally ../shared/corpus): mime/, ja/, malware-test/email
 * in full, then the spam/ham archives (spam/NAME.tar.zst, unpacked to a
 * temporary directory with `tar --zstd`) until the time budget
 * ($MOAT_CORPUS_SECONDS, default 40) is spent. Run under ASan/UBSan, so a
 * memory error or leak anywhere fails the test; each analysis must also
 * be internally consistent (bounded counts, valid JSON, text_len) and the
 * totals plausible (parts per message, Japanese text decoded, URLs found).
 * Without the corpus (a plain clone) the tests are skipped with a notice.
 */
#include <jansson.h>

#include "core/core.h"

#include <dirent.h>
#include <setjmp.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "mime/mime.h"

struct totals {
    unsigned messages, with_text, with_urls, japanese, malformed;
    uint64_t parts, attachments, urls, bytes;
};

static const char *corpus;
static double deadline;

static bool has_japanese(const char *s)
{
    /* hiragana / katakana: U+3040-U+30FF = E3 81 80 .. E3 83 BF */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (p[0] == 0xE3 && (p[1] >= 0x81 && p[1] <= 0x83))
            return true;
    return false;
}

static void check_one(const char *path, struct totals *t)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    struct stat st;
    assert_int_equal(fstat(fileno(f), &st), 0);
    size_t len = (size_t)st.st_size;
    char *msg = xmalloc(len ? len : 1);
    assert_int_equal(fread(msg, 1, len, f), len);
    fclose(f);
    struct analysis *a = mime_analyse(msg, len, NULL);
    assert_non_null(a);
    assert_true(a->nparts <= MIME_MAX_PARTS);
    assert_true(a->nurls <= MIME_MAX_URLS);
    assert_true(a->nheaders <= MIME_MAX_HEADERS);
    assert_int_equal(strlen(a->text), a->text_len);
    assert_true(a->text_len <= MIME_MAX_TEXT);
    for (size_t i = 0; i < a->nurls; i++) {
        assert_non_null(a->urls[i].host);
        assert_true(strncmp(a->urls[i].url, "http", 4) == 0 || strncmp(a->urls[i].url, "ftp", 3) == 0);
    }
    char *doc = analysis_to_json(a, false);
    assert_non_null(doc);
    json_error_t err;
    json_t *j = json_loads(doc, 0, &err);
    if (!j)
        fail_msg("%s: invalid JSON: %s", path, err.text);
    json_decref(j);
    t->messages++;
    t->bytes += len;
    t->parts += a->nparts;
    t->attachments += a->nattachments;
    t->urls += a->nurls;
    t->with_text += a->text_len > 0;
    t->with_urls += a->nurls > 0;
    t->japanese += has_japanese(a->text) || (a->subject && has_japanese(a->subject));
    for (size_t i = 0; i < a->nflags; i++)
        if (strcmp(a->flags[i].name, "malformed") == 0) {
            t->malformed++;
            break;
        }
    free(doc);
    analysis_free(a);
    free(msg);
}

/* walk - every regular file under dir except the READMEs and manifests */
static void walk(const char *dir, struct totals *t, bool timed)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (timed && core_monotonic() > deadline)
            break;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            walk(p, t, timed);
            continue;
        }
        size_t l = strlen(e->d_name);
        if (!S_ISREG(st.st_mode) || (l > 3 && strcmp(e->d_name + l - 3, ".md") == 0) ||
            (l > 4 && strcmp(e->d_name + l - 4, ".tsv") == 0) || strcmp(e->d_name, "SHA256SUMS") == 0)
            continue;
        check_one(p, t);
    }
    closedir(d);
}

static void report(const char *what, const struct totals *t, double secs)
{
    printf("corpus %s: %u messages, %.1f MB, %.1f s; parts %llu, attachments %llu, URLs %llu; "
           "with text %u, with URLs %u, Japanese %u, malformed %u\n",
           what, t->messages, (double)t->bytes / 1e6, secs, (unsigned long long)t->parts,
           (unsigned long long)t->attachments, (unsigned long long)t->urls, t->with_text, t->with_urls,
           t->japanese, t->malformed);
}

static bool corpus_present(const char *sub)
{
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", corpus, sub);
    if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode)) {
        printf("SKIP: corpus %s not found (set MOAT_CORPUS to ../shared/corpus)\n", p);
        return false;
    }
    return true;
}

static void test_mime_dir(void **state)
{
    if (!corpus_present("mime"))
        skip();
    struct totals t = {0};
    char p[4096];
    double t0 = core_monotonic();
    snprintf(p, sizeof p, "%s/mime", corpus);
    walk(p, &t, false);
    report("mime", &t, core_monotonic() - t0);
    /* 342 files, a few of them raw payloads rather than messages */
    assert_true(t.messages >= 300);
    assert_true(t.parts >= t.messages);
    assert_true(t.with_text * 10 >= t.messages * 7);
    assert_true(t.attachments >= 100);
    assert_true(t.urls >= 100);
    (void)state;
}

static void test_ja_dir(void **state)
{
    if (!corpus_present("ja"))
        skip();
    struct totals t = {0};
    char p[4096];
    double t0 = core_monotonic();
    snprintf(p, sizeof p, "%s/ja", corpus);
    walk(p, &t, false);
    report("ja", &t, core_monotonic() - t0);
    assert_true(t.messages >= 200);
    /* Japanese phishing: nearly all decode to Japanese text, most carry a link */
    assert_true(t.japanese * 100 >= t.messages * 95);
    assert_true(t.with_urls * 100 >= t.messages * 80);
    (void)state;
}

static void test_malware_email(void **state)
{
    if (!corpus_present("malware-test/email"))
        skip();
    struct totals t = {0};
    char p[4096];
    snprintf(p, sizeof p, "%s/malware-test/email", corpus);
    walk(p, &t, false);
    report("malware-test/email", &t, 0);
    assert_true(t.messages >= 7);
    assert_true(t.attachments >= 5); /* all but eicar-in-body and clean-control attach a file */
    (void)state;
}

static void test_spam_archives(void **state)
{
    if (!corpus_present("spam"))
        skip();
    if (system("command -v zstd >/dev/null 2>&1 && tar --help 2>/dev/null | grep -q -- --zstd") != 0) {
        printf("SKIP: spam corpus needs zstd and tar --zstd\n");
        skip();
    }
    char tmp[] = "/tmp/moat-corpus-XXXXXX";
    assert_non_null(mkdtemp(tmp));
    struct totals t = {0};
    double t0 = core_monotonic();
    unsigned chunks = 0;
    /* one chunk of each corpus first, then the rest, while time remains */
    static const char *const order[] = {
        "spamassassin-train-000", "phishing_pot-train-000", "csdmc2010-train-000", "trec07p-train-000",
        "spamassassin-train-001", "phishing_pot-train-001", "trec07p-train-001"};
    for (size_t i = 0; i < sizeof order / sizeof order[0] && core_monotonic() < deadline; i++) {
        char cmd[8192], dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", tmp, order[i]);
        snprintf(cmd, sizeof cmd, "mkdir -p '%s' && tar --zstd -xf '%s/spam/%s.tar.zst' -C '%s'", dir, corpus,
                 order[i], dir);
        if (system(cmd) != 0) {
            printf("corpus spam: %s not unpacked, skipped\n", order[i]);
            continue;
        }
        walk(dir, &t, true);
        chunks++;
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            printf("corpus spam: could not remove %s\n", dir);
    }
    rmdir(tmp);
    double secs = core_monotonic() - t0;
    report("spam", &t, secs);
    printf("corpus spam: %u archive chunks, %.0f messages/s under the sanitizers\n", chunks,
           secs > 0 ? t.messages / secs : 0);
    assert_true(t.messages >= 500);
    assert_true(t.parts >= t.messages);
    assert_true(t.with_text * 100 >= t.messages * 90);
    assert_true(t.with_urls * 2 >= t.messages);
    (void)state;
}

int main(void)
{
    corpus = getenv("MOAT_CORPUS");
    if (!corpus || !*corpus)
        corpus = "../shared/corpus";
    const char *s = getenv("MOAT_CORPUS_SECONDS");
    uint64_t budget = 40;
    if (s && core_parse_u64(s, 3600, &budget) < 0)
        budget = 40;
    deadline = core_monotonic() + (double)budget;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mime_dir),
        cmocka_unit_test(test_ja_dir),
        cmocka_unit_test(test_malware_email),
        cmocka_unit_test(test_spam_archives),
    };
    return cmocka_run_group_tests_name("mime_corpus", tests, NULL, NULL);
}
