/* fuzz_smtp_data.c - the DATA/BDAT stream checker: first byte picks the
 * mode and the chunk size; the output never exceeds input + 2 per call, the
 * end marker is only ever CRLF.CRLF, and consumption is monotone. */
#include "core/core.h"
#include "smtp/smtp_data.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool dot = data[0] & 1;
    size_t step = (data[0] >> 1) + 1;
    const char *in = (const char *)data + 1;
    size_t len = size - 1, off = 0;
    struct smtp_data d;
    smtp_data_init(&d, dot);
    char *out = xmalloc(step + 2);
    while (off < len && !d.done) {
        size_t n = len - off < step ? len - off : step;
        size_t olen = 0;
        size_t used = smtp_data_feed(&d, in + off, n, out, &olen);
        if (used > n || olen > n + 2)
            abort();
        if (d.done && off + used >= 3 && memcmp(in + off + used - 3, ".\r\n", 3) != 0)
            abort();
        off += used;
        if (!d.done && used != n)
            abort();
    }
    smtp_data_finish(&d);
    free(out);
    return 0;
}
