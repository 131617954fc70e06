/* fuzz_smtp_data.c - the DATA/BDAT stream checker: first byte picks the
 * mode and the chunk size; the output never exceeds input + 2 per call, the
 * end marker is only ever CRLF.CRLF, and consumption is monotone. */
#include "core/core.h"
#include "smtp/smtp_data.h"

#include "fuzz.h"

/* ref_feed - the obvious byte-at-a-time reference of smtp_data_feed (the
 * real one has a memchr fast path): both must agree on every input */
struct ref {
    int st; /* 0 line start, 1 mid, 2 cr, 3 dot, 4 dot-cr */
    uint64_t line;
    unsigned flags;
    bool done;
};

static void ref_mid(struct ref *r, char c, char *out, size_t *o)
{
    if (c == '\r') {
        r->st = 2;
    } else if (c == '\n') {
        r->flags |= SMTP_DATA_BARE_LF;
        out[(*o)++] = c;
        r->st = 1;
        r->line = 0;
    } else {
        out[(*o)++] = c;
        if (++r->line > SMTP_DATA_LINE_MAX)
            r->flags |= SMTP_DATA_LONG_LINE;
        r->st = 1;
    }
}

static size_t ref_feed(struct ref *r, bool dot, const char *in, size_t len, char *out, size_t *olen)
{
    size_t i, o = 0;
    for (i = 0; i < len && !r->done; i++) {
        char c = in[i];
        switch (r->st) {
        case 0:
            if (dot && c == '.')
                r->st = 3;
            else
                ref_mid(r, c, out, &o);
            break;
        case 1:
            ref_mid(r, c, out, &o);
            break;
        case 2:
            if (c == '\n') {
                out[o++] = '\r';
                out[o++] = '\n';
                r->line = 0;
                r->st = 0;
            } else {
                r->flags |= SMTP_DATA_BARE_CR;
                out[o++] = '\r';
                r->line++;
                ref_mid(r, c, out, &o);
            }
            break;
        case 3:
            if (c == '\r') {
                r->st = 4;
            } else {
                r->line = 0;
                ref_mid(r, c, out, &o);
            }
            break;
        case 4:
            if (c == '\n') {
                r->done = true;
            } else {
                r->flags |= SMTP_DATA_BARE_CR;
                out[o++] = '\r';
                r->line = 1;
                ref_mid(r, c, out, &o);
            }
            break;
        }
    }
    *olen = o;
    return i;
}

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
    char *out = xmalloc(step + 2), *rout = xmalloc(step + 2);
    struct ref r = {0, 0, 0, false};
    while (off < len && !d.done) {
        size_t n = len - off < step ? len - off : step;
        size_t olen = 0, rolen = 0;
        size_t used = smtp_data_feed(&d, in + off, n, out, &olen);
        size_t rused = ref_feed(&r, dot, in + off, n, rout, &rolen);
        if (used != rused || olen != rolen || memcmp(out, rout, olen) != 0 || d.flags != r.flags ||
            d.done != r.done)
            abort();
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
    free(rout);
    return 0;
}
