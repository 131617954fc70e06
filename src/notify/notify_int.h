/*
 * notify_int.h - helpers shared by the notify/ sources (not for other
 * modules): field sanitising, dates, base64, header blocks, randomness.
 * Defined in notify_dsn.c.
 */
#ifndef MOAT_NOTIFY_INT_H
#define MOAT_NOTIFY_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core.h"

#define NOTIFY_FIELD_MAX 900 /* one field value, bytes */
#define NOTIFY_LINE_MAX 998  /* RFC 5322 2.1.1 */
#define NOTIFY_ADDR_MAX 512

/* notify_sanitize - a field value without controls (tabs become spaces);
 * non-ASCII kept only when allow_8bit (else '?'); cut to outsz - 1 bytes at
 * a UTF-8 boundary. Returns out. */
char *notify_sanitize(const char *in, bool allow_8bit, char *out, size_t outsz);
/* notify_sanitize_addr - as notify_sanitize, without "<>", quotes, commas,
 * spaces, ";" and parentheses: one bare mailbox */
char *notify_sanitize_addr(const char *in, char *out, size_t outsz);
/* notify_format_date - RFC 5322 date-time in UTC */
void notify_format_date(double t, char *out, size_t outsz);
/* notify_append_base64 - base64 in CRLF-ended lines of 76; 0 or -1 */
int notify_append_base64(struct buf *out, const char *data, size_t len);
/* notify_append_header_block - msg's header block normalised to CRLF, lines
 * cut to 998, at most max bytes cut at a line end; *eightbit set when it
 * has non-ASCII bytes. 0 or -1 */
int notify_append_header_block(struct buf *out, const char *msg, size_t len, size_t max, bool *eightbit);
/* notify_utc_date - "2026-01-01 09:00:00 UTC" (notify_domain.c) */
void notify_utc_date(double t, char *out, size_t outsz);
/* notify_random_hex - nbytes (at most 16) random bytes as hex into out */
void notify_random_hex(char *out, size_t nbytes);

#endif
