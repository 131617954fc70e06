/*
 * fuzz_archive.c - libFuzzer target for mime_attach_analyse: arbitrary
 * bytes as one attachment (true type, archives with every limit, password
 * analysis, OLE2/OOXML/PDF facts, TNEF) in a fresh analysis whose text
 * offers a few passwords, so decryption paths run too. Small limits keep
 * each run short; the checks are the sanitizers' and the invariants below.
 */
#include "core/core.h"

#include "fuzz.h"
#include "mime/mime_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char text[] = "password: infected\n\xe3\x83\x91\xe3\x82\xb9\xe3\x83\xaf\xe3\x83\xbc\xe3\x83\x89"
                               "\xef\xbc\x9a" "abc123\nPW: 42\n";
    struct analysis *a = xcalloc(1, sizeof *a);
    struct mime_limits l;

    mime_limits_default(&l);
    l.archive_total_bytes = 4 * 1024 * 1024;
    a->text = xstrdup(text);
    a->text_len = sizeof text - 1;
    mime_attach_analyse(a, &l, "2", "fuzz.bin", "application/octet-stream", data, size);
    if (a->nattachments != 1 || a->attachments[0].size != size ||
        a->attachments[0].extracted > l.archive_total_bytes + 65536)
        abort();
    for (size_t i = 0; i < a->attachments[0].nmembers; i++)
        if (!a->attachments[0].members[i].path || !a->attachments[0].members[i].true_type)
            abort();
    analysis_free(a);
    return 0;
}
