/*
 * smtp_data.c - DATA / BDAT stream state machine (see smtp_data.h).
 *
 * States: LINE_START (after CRLF), MID (inside a line), CR (a CR waiting for
 * its LF), DOT (a '.' at line start), DOT_CR ('.' CR at line start). Only
 * CRLF "." CRLF ends DATA: "\n.\n", "\r.\r", "\n.\r\n" and friends are data,
 * flagged as bare line ends, and the message is refused by the caller - so a
 * smuggled second message can never be split off. A held CR is emitted once
 * we know what follows it, so out never needs more than len + 2 bytes.
 */
#include "core/core.h"
#include "smtp/smtp_data.h"

enum { ST_LINE_START, ST_MID, ST_CR, ST_DOT, ST_DOT_CR };

void smtp_data_init(struct smtp_data *d, bool dot_mode)
{
    memset(d, 0, sizeof *d);
    d->dot_mode = dot_mode;
    d->state = ST_LINE_START;
}

/* mid_byte - one byte inside a line */
static void mid_byte(struct smtp_data *d, char c, char *out, size_t *o)
{
    if (c == '\r') {
        d->state = ST_CR;
        return;
    }
    if (c == '\n') {
        d->flags |= SMTP_DATA_BARE_LF;
        out[(*o)++] = '\n';
        d->state = ST_MID; /* a bare LF never starts a line: "\n.\r\n" is not an end */
        d->line_len = 0;
        return;
    }
    out[(*o)++] = c;
    if (++d->line_len > SMTP_DATA_LINE_MAX)
        d->flags |= SMTP_DATA_LONG_LINE;
    d->state = ST_MID;
}

/* plain_span - length of the run at in[i..len) free of CR and LF, using
 * memchr; *next_cr caches the next CR of this call (NULL: none left) so a
 * message with bare LFs but no CR is still scanned in linear time */
static size_t plain_span(const char *in, size_t i, size_t len, const char **next_cr, bool *cr_known)
{
    if (!*cr_known || (*next_cr && *next_cr < in + i)) {
        *next_cr = memchr(in + i, '\r', len - i);
        *cr_known = true;
    }
    size_t end = *next_cr ? (size_t)(*next_cr - in) : len;
    const char *lf = memchr(in + i, '\n', end - i);
    return (lf ? (size_t)(lf - in) : end) - i;
}

size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len, char *out, size_t *outlen)
{
    size_t i, o = 0;
    const char *next_cr = NULL;
    bool cr_known = false;
    for (i = 0; i < len && !d->done; i++) {
        char c = in[i];
        if (d->state == ST_MID && c != '\r' && c != '\n') {
            /* fast path: copy the rest of the line in one go */
            size_t n = plain_span(in, i, len, &next_cr, &cr_known);
            memcpy(out + o, in + i, n);
            o += n;
            uint64_t ll = (uint64_t)d->line_len + n;
            if (ll > SMTP_DATA_LINE_MAX)
                d->flags |= SMTP_DATA_LONG_LINE;
            d->line_len = ll > UINT32_MAX ? UINT32_MAX : (uint32_t)ll;
            i += n - 1;
            continue;
        }
        switch (d->state) {
        case ST_LINE_START:
            if (d->dot_mode && c == '.')
                d->state = ST_DOT;
            else
                mid_byte(d, c, out, &o);
            break;
        case ST_MID:
            mid_byte(d, c, out, &o);
            break;
        case ST_CR:
            if (c == '\n') {
                out[o++] = '\r';
                out[o++] = '\n';
                d->line_len = 0;
                d->state = ST_LINE_START;
            } else {
                d->flags |= SMTP_DATA_BARE_CR;
                out[o++] = '\r';
                d->line_len++;
                mid_byte(d, c, out, &o);
            }
            break;
        case ST_DOT:
            if (c == '\r') {
                d->state = ST_DOT_CR;
            } else {
                d->line_len = 0; /* the stuffed dot is dropped */
                mid_byte(d, c, out, &o);
            }
            break;
        case ST_DOT_CR:
            if (c == '\n') {
                d->done = true;
            } else {
                d->flags |= SMTP_DATA_BARE_CR;
                out[o++] = '\r';
                d->line_len = 1;
                mid_byte(d, c, out, &o);
            }
            break;
        }
    }
    *outlen = o;
    return i;
}

void smtp_data_finish(struct smtp_data *d)
{
    if (d->state == ST_CR || d->state == ST_DOT_CR)
        d->flags |= SMTP_DATA_BARE_CR;
}
