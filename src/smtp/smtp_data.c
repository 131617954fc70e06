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

size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len, char *out, size_t *outlen)
{
    size_t i, o = 0;
    for (i = 0; i < len && !d->done; i++) {
        char c = in[i];
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
