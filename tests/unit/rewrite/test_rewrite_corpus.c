/*
 * test_rewrite_corpus.c - every message of the shared corpus ($MOAT_CORPUS,
 * normally ../shared/corpus: mime/ and ja/) through rewrite_message with
 * every operation on (Japanese subject tag, an X-header, a stamp at the top,
 * the first attachment removed with a Japanese note). Under ASan/UBSan: no
 * crash, no leak; a message mime/ reads without a "malformed" flag must
 * come out tagged, stamped, without that attachment and still without a
 * "malformed" flag; a message that fails must be one mime/ flags as
 * malformed (ambiguous MIME is refused, not guessed at). Skipped with a
 * notice when the corpus is absent.
 */
#include "core/core.h"

#include <dirent.h>
#include <setjmp.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "mime/mime.h"
#include "rewrite/rewrite.h"

struct totals {
    unsigned messages, rewritten, refused, removed, stamped, clean_in;
};

static bool malformed(const struct analysis *a)
{
    for (size_t i = 0; i < a->nflags; i++)
        if (strcmp(a->flags[i].name, "malformed") == 0)
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
    struct analysis *in = mime_analyse(msg, len, NULL);
    assert_non_null(in);
    bool clean = !malformed(in);
    const char *victim = in->nattachments ? in->attachments[0].part_path : "9";
    struct rewrite_header h[] = {{"X-Moat-Scan", "spam; rule=迷惑メール"}};
    struct rewrite_removal rm[] = {{victim, "テスト"}};
    struct rewrite_ops ops = {.subject_tag = "[迷惑メール]", .headers = h, .nheaders = 1,
                              .stamp_text = "Moat で検査しました。", .remove = rm, .nremove = 1,
                              .removal_note_lang = "ja"};
    struct buf out;
    struct rewrite_report rep;
    char err[256] = "";
    t->messages++;
    t->clean_in += clean;
    if (rewrite_message(msg, len, &ops, &out, &rep, err, sizeof err) < 0) {
        if (clean)
            fail_msg("%s: refused a clean message: %s", path, err);
        t->refused++;
        analysis_free(in);
        free(msg);
        return;
    }
    t->rewritten++;
    struct analysis *a = mime_analyse(out.ptr, out.len, NULL);
    assert_non_null(a);
    if (clean) {
        if (malformed(a))
            fail_msg("%s: malformed after rewrite", path);
        if (!a->subject || !strstr(a->subject, "[迷惑メール]"))
            fail_msg("%s: subject not tagged: %s", path, a->subject ? a->subject : "(none)");
    }
    for (size_t i = 0; i < rep.nactions; i++) {
        if (!rep.actions[i].done)
            continue;
        if (strcmp(rep.actions[i].op, "remove") == 0 && strcmp(rep.actions[i].target, victim) == 0) {
            t->removed++;
            if (clean && !strstr(a->text, "削除されたもの"))
                fail_msg("%s: no removal note in the text", path);
        }
        if (strcmp(rep.actions[i].op, "stamp") == 0) {
            t->stamped++;
            if (clean && !strstr(a->text, "Moat で検査しました。"))
                fail_msg("%s: stamp not in the text", path);
        }
    }
    analysis_free(a);
    analysis_free(in);
    rewrite_report_free(&rep);
    buf_free(&out);
    free(msg);
}

static void walk(const char *dir, struct totals *t)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            walk(p, t);
            continue;
        }
        size_t n = strlen(e->d_name);
        if (strcmp(e->d_name, "README.md") == 0 || (n > 4 && (strcmp(e->d_name + n - 4, ".tsv") == 0)))
            continue;
        check_one(p, t);
    }
    closedir(d);
}

static void test_corpus(void **state)
{
    (void)state;
    const char *corpus = getenv("MOAT_CORPUS");
    static const char *const subdirs[] = {"mime", "ja"};
    for (size_t i = 0; i < 2; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", corpus ? corpus : "", subdirs[i]);
        struct stat st;
        if (!corpus || stat(p, &st) < 0) {
            printf("SKIP: corpus %s not found (set MOAT_CORPUS to ../shared/corpus)\n", p);
            continue;
        }
        struct totals t = {0};
        walk(p, &t);
        printf("rewrite corpus %s: %u messages (%u clean), %u rewritten, %u refused (all malformed), "
               "%u parts removed, %u parts stamped\n",
               subdirs[i], t.messages, t.clean_in, t.rewritten, t.refused, t.removed, t.stamped);
        assert_true(t.messages > 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
