/*
 * fuzz_mime.c - libFuzzer target for the whole analysis: mime_analyse on
 * arbitrary bytes, then analysis_to_json, then the JSON is checked to be
 * parseable and the analysis' bounds to hold; then the spam classifier's
 * tokenizers (spam_features: body, header lines, URLs) run on the analysis.
 * Seeds: tests/fuzz/seeds/mime (corpus messages and the golden set);
 * crashes: tests/fuzz/regress/mime.
 */
#include <jansson.h>

#include "core/core.h"

#include "detect/detect_int.h"
#include "fuzz.h"
#include "mime/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mime_limits lim;
    mime_limits_default(&lim);
    /* smaller archive limits keep each run short; the logic is the same */
    lim.archive_total_bytes = 4 * 1024 * 1024;
    struct analysis *a = mime_analyse((const char *)data, size, &lim);
    if (!a)
        abort();
    if (a->nparts > MIME_MAX_PARTS || a->nurls > MIME_MAX_URLS || a->nheaders > MIME_MAX_HEADERS ||
        a->text_len > MIME_MAX_TEXT || strlen(a->text) != a->text_len)
        abort();
    char *doc = analysis_to_json(a, false);
    if (!doc)
        abort();
    json_error_t err;
    json_t *j = json_loads(doc, 0, &err);
    if (!j)
        abort(); /* invalid JSON (e.g. a string that is not UTF-8) */
    json_decref(j);
    free(doc);
    static uint32_t feat[SPAM_MAX_FEATURES];
    if (spam_features(a, feat, SPAM_MAX_FEATURES) > SPAM_MAX_FEATURES)
        abort();
    analysis_free(a);
    return 0;
}
