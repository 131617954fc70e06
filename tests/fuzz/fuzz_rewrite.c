/*
 * fuzz_rewrite.c - libFuzzer target for the message modification library:
 * rewrite_message on arbitrary bytes with a set of operations chosen by
 * the first input byte (tag, header, stamp top/bottom, removal of a path
 * named by the second byte, Japanese or English note). A success must give
 * a message mime_analyse reads (and, when the input was not malformed, one
 * still not malformed) and a consistent report; a failure must say why and
 * leave nothing behind. Seeds: tests/fuzz/seeds/rewrite (the golden set);
 * crashes: tests/fuzz/regress/rewrite.
 */
#include "core/core.h"

#include "fuzz.h"
#include "mime/mime.h"
#include "rewrite/rewrite.h"

static bool malformed(const struct analysis *a)
{
    for (size_t i = 0; i < a->nflags; i++)
        if (strcmp(a->flags[i].name, "malformed") == 0)
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const paths[] = {"1", "1.1", "1.2", "1.3", "1.1.1", "1.1.2", "1.2.1", "1.2.1.1"};
    if (size < 2)
        return 0;
    uint8_t sel = data[0], p = data[1];
    const char *msg = (const char *)data + 2;
    size_t len = size - 2;
    struct rewrite_header h[] = {{"X-Moat-Scan", "spam 迷惑"}};
    struct rewrite_removal rm[] = {{paths[p % 8], "virus テスト"}};
    struct rewrite_ops ops = {
        .subject_tag = (sel & 1) ? ((sel & 2) ? "[迷惑メール]" : "Spam:") : NULL,
        .tag_skip_signed = (sel & 4) != 0,
        .headers = h,
        .nheaders = (sel & 8) ? 1 : 0,
        .stamp_text = (sel & 16) ? "Moat <stamp> & 検査済み" : NULL,
        .stamp_bottom = (sel & 32) != 0,
        .remove = rm,
        .nremove = (sel & 64) ? 1 : 0,
        .removal_note_lang = (sel & 128) ? "ja" : "en",
    };
    struct buf out;
    struct rewrite_report rep;
    char err[256] = "";
    if (rewrite_message(msg, len, &ops, &out, &rep, err, sizeof err) < 0) {
        if (!err[0] || out.len || rep.nactions)
            abort();
        return 0;
    }
    for (size_t i = 0; i < rep.nactions; i++)
        if (!rep.actions[i].op || !rep.actions[i].target || !rep.actions[i].detail)
            abort();
    if (!rep.changed && (out.len != len || memcmp(out.ptr, msg, len) != 0))
        abort();
    if (rep.changed) {
        struct analysis *in = mime_analyse(msg, len, NULL);
        struct analysis *a = mime_analyse(out.ptr, out.len, NULL);
        if (!in || !a)
            abort();
        if (!malformed(in) && malformed(a))
            abort(); /* a clean message made malformed */
        analysis_free(a);
        analysis_free(in);
    }
    rewrite_report_free(&rep);
    buf_free(&out);
    return 0;
}
