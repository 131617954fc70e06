/*
 * scan_headers.c - the first stage of analysis run in the scan worker: walk
 * the RFC 5322 header block and pick out Message-ID, Subject and From.
 *
 * Pure and bounded: at most SCAN_HEADER_MAX_COUNT fields, SCAN_HEADER_MAX_LINE
 * bytes per unfolded field, SCAN_HEADER_MAX_BLOCK bytes in all. A broken
 * block (a line that is neither a field nor a continuation, no blank line
 * before the body, limits exceeded) is flagged SCAN_FLAG_MALFORMED, never an
 * error: the policy decides. Values are copied raw (RFC 2047 decoding comes
 * with the MIME stage) with control bytes dropped and folding removed.
 */
#include "core/core.h"
#include "scan/scan.h"

#include <ctype.h>

/* copy_value - unfold and copy a header value into dst (size SCAN_TEXT_MAX) */
static void copy_value(char *dst, const char *v, size_t n)
{
    size_t o = 0;
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    for (size_t i = 0; i < n && o < SCAN_TEXT_MAX - 1; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '\r' || c == '\n')
            continue;
        if (c == '\t')
            c = ' ';
        if (c < 0x20 || c == 0x7f)
            continue;
        dst[o++] = (char)c;
    }
    while (o && dst[o - 1] == ' ')
        o--;
    dst[o] = '\0';
}

static bool name_is(const char *name, size_t n, const char *want)
{
    return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

void scan_headers_parse(const char *msg, size_t len, struct scan_result *r)
{
    size_t off = 0, count = 0;
    bool ended = false;
    if (len > SCAN_HEADER_MAX_BLOCK)
        len = SCAN_HEADER_MAX_BLOCK; /* only the block's prefix is ever examined */
    while (off < len) {
        const char *line = msg + off;
        /* blank line: end of the header block */
        if (line[0] == '\n' || (line[0] == '\r' && len - off > 1 && line[1] == '\n')) {
            ended = true;
            break;
        }
        /* a field: name ':' then value lines with continuations */
        size_t i = off;
        while (i < len && msg[i] != ':' && msg[i] != '\n' && msg[i] > 0x20 && msg[i] < 0x7f)
            i++;
        if (i == off || i >= len || msg[i] != ':') {
            r->flags |= SCAN_FLAG_MALFORMED;
            break;
        }
        size_t name_len = i - off;
        size_t vstart = i + 1, end = vstart;
        for (;;) {
            const char *nl = memchr(msg + end, '\n', len - end);
            if (!nl) {
                end = len;
                break;
            }
            end = (size_t)(nl - msg) + 1;
            if (end < len && (msg[end] == ' ' || msg[end] == '\t'))
                continue;
            break;
        }
        if (end - off > SCAN_HEADER_MAX_LINE || ++count > SCAN_HEADER_MAX_COUNT) {
            r->flags |= SCAN_FLAG_MALFORMED;
            break;
        }
        if (name_is(line, name_len, "message-id") && !r->message_id[0])
            copy_value(r->message_id, msg + vstart, end - vstart);
        else if (name_is(line, name_len, "subject") && !r->subject[0])
            copy_value(r->subject, msg + vstart, end - vstart);
        else if (name_is(line, name_len, "from") && !r->from[0])
            copy_value(r->from, msg + vstart, end - vstart);
        off = end;
    }
    if (!ended && off >= len && count > 0 && len < SCAN_HEADER_MAX_BLOCK) {
        /* header-only message without a body: legal (RFC 5322 3.5) */
    } else if (!ended) {
        r->flags |= SCAN_FLAG_MALFORMED;
    }
    r->header_count = (uint32_t)(count > UINT32_MAX ? UINT32_MAX : count);
}
