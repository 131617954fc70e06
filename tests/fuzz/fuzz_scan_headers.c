/* fuzz_scan_headers.c - the header-block parser on arbitrary bytes: results
 * stay NUL-terminated, within bounds and free of control characters. */
#include "core/core.h"
#include "scan/scan.h"

#include "fuzz.h"

static void check(const char *s)
{
    size_t n = strnlen(s, SCAN_TEXT_MAX);
    if (n >= SCAN_TEXT_MAX)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct scan_result r;
    memset(&r, 0, sizeof r);
    scan_headers_parse((const char *)data, size, &r);
    check(r.subject);
    check(r.from);
    check(r.message_id);
    if (r.header_count > SCAN_HEADER_MAX_COUNT)
        abort();
    return 0;
}
