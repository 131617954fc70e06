/*
 * rewrite.h - the message modification library: the "Modify" actions of a
 * policy rule (PRODUCT.md §4) as one pure function over raw message bytes.
 *
 *   rewrite_message       apply a set of modifications, all or nothing
 *   rewrite_report_free   free what a report owns
 *
 * Operations (docs/rewrite.md says exactly what each one does):
 *   subject tag     "Spam: " in front of the (decoded) subject, RFC 2047
 *                   for non-ASCII tags, folded; never twice; optionally
 *                   not on S/MIME or PGP signed mail
 *   insert headers  X-headers at the top of the header block (after Moat's
 *                   own Received line), sanitised, RFC 2047, folded
 *   stamp           a text in every text/plain and text/html body part, at
 *                   the top or bottom, in the part's own charset and
 *                   transfer encoding (UTF-8 when the part's charset cannot
 *                   hold it)
 *   remove parts    named MIME parts replaced by a short text/plain note
 *                   saying what was removed and why (English or Japanese)
 *
 * Everything not touched is copied byte for byte from the input; line
 * endings (CRLF or LF) follow the input. The work is done on byte ranges
 * located by rewrite_mime.c, whose reading of the structure is checked
 * against GMime's (the inspection engine's) before any part is changed: a
 * message the two read differently is refused rather than guessed at.
 *
 * Limits: REWRITE_MAX_MESSAGE input bytes (moatctl scan's bound),
 * REWRITE_MAX_DEPTH nesting levels, REWRITE_MAX_PARTS parts,
 * REWRITE_MAX_HEADERS header fields per header block, REWRITE_MAX_FIELD
 * bytes per header field that is decoded (Subject, Content-*); the
 * operations' own inputs are bounded too (REWRITE_MAX_OP_TEXT).
 */
#ifndef MOAT_REWRITE_H
#define MOAT_REWRITE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core.h"

#define REWRITE_MAX_MESSAGE (256ULL * 1024 * 1024) /* as moatctl scan */
#define REWRITE_MAX_GROWTH (16ULL * 1024 * 1024)   /* output bytes beyond the input */
#define REWRITE_MAX_DEPTH 50                       /* as mime/ (MIME_MAX_DEPTH) */
#define REWRITE_MAX_PARTS 2000                     /* as mime/ (MIME_MAX_PARTS) */
#define REWRITE_MAX_HEADERS 1000                   /* fields in one header block */
#define REWRITE_MAX_FIELD (64 * 1024)              /* bytes of one decoded header field */
#define REWRITE_MAX_OP_TEXT 4096                   /* bytes of a tag, header value, stamp, reason */
#define REWRITE_MAX_OP_HEADERS 32                  /* headers inserted by one call */
#define REWRITE_MAX_OP_REMOVALS 256                /* parts removed by one call */

struct rewrite_header {
    const char *name;   /* a field name (printable ASCII, no ':'), e.g. "X-Moat-Scan" */
    const char *value;  /* UTF-8; controls become spaces, non-ASCII is RFC 2047 encoded */
};

struct rewrite_removal {
    const char *part_path; /* as struct mime_part.path: "1", "1.2", "1.2.1.3" */
    const char *reason;    /* UTF-8, e.g. "virus Eicar-Test-Signature" or "blocked extension .exe" */
};

struct rewrite_ops {
    const char *subject_tag;   /* UTF-8, e.g. "Spam:" or "[迷惑メール]"; NULL = no tag */
    bool tag_skip_signed;      /* signed mail (S/MIME, PGP/MIME, inline PGP): no tag, no stamp */
    const struct rewrite_header *headers; /* inserted in this order */
    size_t nheaders;
    const char *stamp_text;    /* UTF-8, for text/plain parts (lines split by \n); NULL = none */
    const char *stamp_html;    /* UTF-8 text for text/html parts (HTML-escaped here); NULL = stamp_text */
    bool stamp_bottom;         /* false: at the top of the text */
    const struct rewrite_removal *remove;
    size_t nremove;
    const char *removal_note_lang; /* "ja" or "en" (NULL = "en") */
};

/* what one operation did to one target; the report lists every operation
 * asked for, including the ones skipped */
struct rewrite_action {
    char *op;      /* "subject_tag", "header", "stamp", "remove" */
    char *target;  /* "Subject", the header name, or a part path */
    bool done;
    char *detail;  /* what was done, or why it was skipped */
};

struct rewrite_report {
    struct rewrite_action *actions;
    size_t nactions;
    bool changed;  /* out differs from the input */
    bool is_signed; /* the message is S/MIME or PGP signed */
};

/* rewrite_message - apply ops to msg (len bytes of RFC 5322, CRLF or LF).
 * On success 0: out (initialised here; caller buf_free) holds the whole
 * new message and report (caller rewrite_report_free) what was done and
 * what was skipped and why. On failure -1: err says why (input too large,
 * not a message, MIME structure ambiguous, an invalid operation...), out
 * is empty and report holds nothing; the caller keeps the original. A
 * target that is merely absent (no text part to stamp, an unknown part
 * path, an already tagged subject) is a skip in the report, not a failure. */
int rewrite_message(const char *msg, size_t len, const struct rewrite_ops *ops, struct buf *out,
                    struct rewrite_report *report, char *err, size_t errsz);

void rewrite_report_free(struct rewrite_report *report);

#endif
