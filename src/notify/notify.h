/*
 * notify.h - messages Moat generates itself. For now: delivery status
 * notifications (RFC 3464 multipart/report) for bounced and expired mail.
 * Pure functions: they build the message text; the queue injects it.
 */
#ifndef MOAT_NOTIFY_H
#define MOAT_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

struct dsn_recipient {
    const char *addr;          /* the final recipient */
    const char *orcpt;         /* original recipient as received (ORCPT) or NULL */
    bool failed;               /* true: action=failed (5.x.x); false: delayed (4.x.x) */
    const char *status;        /* enhanced status, e.g. "5.1.1"; NULL derives 5.0.0 / 4.0.0 */
    const char *remote_mta;    /* host that answered, or NULL */
    const char *diagnostic;    /* "smtp; 550 5.1.1 No such user" or a local reason */
    double last_attempt;
};

struct dsn_info {
    const char *reporting_mta; /* our hostname */
    const char *qid;           /* the original message's queue ID */
    const char *envid;         /* ENVID or NULL */
    const char *sender;        /* original envelope sender = the DSN's recipient */
    double arrival;
    const struct dsn_recipient *rcpts;
    size_t nrcpts;
    /* the original message (headers only are returned: RET=HDRS behaviour by
     * default, to bound size); bytes, CRLF line ends */
    const char *original;
    size_t original_len;
};

/* notify_dsn_build - append a complete RFC 5322 message (headers with CRLF,
 * From: MAILER-DAEMON@reporting_mta, Auto-Submitted: auto-replied, a
 * human-readable part in English and Japanese, message/delivery-status, and
 * text/rfc822-headers of the original) to out. Returns 0 or -1 (out too small). */
int notify_dsn_build(const struct dsn_info *info, struct buf *out);

#endif
