/*
 * smtp_data.h - the DATA / BDAT byte-stream checker (pure, no I/O).
 *
 * Feeds raw bytes from the client, removes dot-stuffing (DATA mode), finds
 * the one true end of data "CRLF . CRLF" and nothing else, and flags what
 * the message must be refused for: bare CR or bare LF (SMTP smuggling,
 * RFC 5321 2.3.8), text lines over 998 characters (4.5.3.1.6). Fuzzed by
 * tests/fuzz/fuzz_smtp_data.c.
 */
#ifndef MOAT_SMTP_DATA_H
#define MOAT_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_DATA_LINE_MAX 998

enum smtp_data_flag {
    SMTP_DATA_BARE_LF = 1,
    SMTP_DATA_BARE_CR = 2,
    SMTP_DATA_LONG_LINE = 4,
};

struct smtp_data {
    bool dot_mode;    /* DATA: unstuff and look for the end; BDAT: check only */
    int state;
    uint32_t line_len;
    unsigned flags;   /* enum smtp_data_flag */
    bool done;        /* end of data seen (DATA mode) */
};

/* smtp_data_init - start a message; dot_mode true for DATA, false for BDAT */
void smtp_data_init(struct smtp_data *d, bool dot_mode);

/* smtp_data_feed - consume up to len bytes of in. Message bytes (unstuffed)
 * are written to out, which must have room for len + 2 bytes; *outlen gets
 * their count. Returns the number of input bytes consumed: in DATA mode it
 * stops right after the end-of-data line (d->done set), leaving the rest
 * (pipelined commands) to the caller. */
size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len, char *out, size_t *outlen);

/* smtp_data_finish - BDAT LAST / end: a trailing lone CR counts as bare CR */
void smtp_data_finish(struct smtp_data *d);

#endif
