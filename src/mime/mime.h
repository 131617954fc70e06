/*
 * mime.h - the inspection engine: parse one message into one analysis
 * (ARCHITECTURE.md principle 5). Everything downstream - detectors, policy,
 * tracking, `moatctl scan` - reads struct analysis and nothing else.
 *
 * Runs inside the scan worker processes (untrusted input). Every string in
 * the analysis is valid UTF-8, NUL-terminated and bounded; every list is
 * capped (the cap and what was dropped are recorded as a flag). All memory
 * of one analysis is owned by the analysis and freed by analysis_free.
 *
 * Split of the work:
 *   mime_parse.c    GMime parse, headers (RFC 2047), part tree, malformed flags
 *   mime_text.c     charset decoding to UTF-8 (Japanese encodings included)
 *   mime_html.c     HTML (libxml2 HTML parser) to visible text + links/forms/images
 *   mime_url.c      URL extraction and normalisation (IDN both ways)
 *   mime_attach.c   attachments: names, true type (libmagic), SHA-256, uuencode/yEnc, TNEF
 *   mime_archive.c  libarchive, recursive, limits enforced while extracting, passwords
 *   mime_office.c   VBA macros, OLE objects, PDF JavaScript/launch actions
 *   mime_json.c     the analysis as JSON (INTERFACES.md `moatctl scan` shape)
 */
#ifndef MOAT_MIME_H
#define MOAT_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* Limits (PRODUCT.md §3 and our own bounds); per-tenant values override
 * the archive ones through struct mime_limits. */
#define MIME_MAX_PARTS 2000
#define MIME_MAX_DEPTH 50            /* MIME nesting, message/rfc822 included */
#define MIME_MAX_URLS 2000
#define MIME_MAX_TEXT (8 * 1024 * 1024) /* decoded text kept per message */
#define MIME_MAX_HEADERS 1000
/* attachments (mime_attach.c, mime_archive.c, mime_office.c) */
#define MIME_MAX_KEEP (64 * 1024 * 1024) /* attachment bytes kept in analysis (data) */
#define MIME_MAX_MEMBERS 10000        /* member records per message (all attachments) */
#define MIME_MAX_PASSWORDS 32         /* candidates tried per archive (harvested + tenant) */
#define MIME_MAX_HARVESTED 20         /* of which harvested from the message text */
#define MIME_MAX_DECRYPT_ENTRIES 64   /* encrypted entries we try passwords on, per attachment */
#define MIME_ARCHIVE_RATIO_FLOOR (256 * 1024) /* ratio limit applies from this many bytes out */

struct mime_limits {
    unsigned archive_depth;        /* 20 */
    uint64_t archive_total_bytes;  /* 60 MB extracted in total */
    unsigned archive_files;        /* 353 */
    unsigned archive_ratio;        /* 100 (:1) */
    const char *const *passwords;  /* tenant list for file password analysis */
    size_t npasswords;
};
void mime_limits_default(struct mime_limits *l);

struct mime_address {
    char *name;       /* display name, decoded */
    char *address;    /* addr-spec */
};

struct mime_header {
    char *name;
    char *value;      /* unfolded, RFC 2047 decoded, UTF-8 */
};

struct mime_part {
    char *path;             /* "1", "1.2", "2.1.3" (message/rfc822 parts continue the path) */
    char *content_type;     /* lower-case type/subtype */
    char *charset;          /* as declared, or NULL */
    char *transfer_encoding;
    char *disposition;      /* "inline" / "attachment" / NULL */
    char *filename;         /* decoded, or NULL */
    uint64_t size;          /* decoded size */
    bool is_text;           /* text/plain or text/html body part */
};

struct mime_member {        /* a file inside an archive (any depth) */
    char *path;             /* "invoice.zip/a/b.exe" */
    char *true_type;        /* libmagic MIME type */
    uint64_t size;
    char sha256[65];
    bool encrypted;
    bool decrypted;         /* opened with a harvested / tenant password */
    bool macros, ole_objects, pdf_javascript, pdf_launch;
    bool pdf_open_action;   /* /OpenAction or /AA (automatic action) in a PDF */
    unsigned depth;         /* archive nesting level: 1 = directly in the attachment */
};

struct mime_attachment {
    char *filename;         /* best name found (RFC 2231, RFC 2047, name=, Content-Location) */
    char *extension;        /* lower-case, without the dot, or NULL */
    char *declared_type;
    char *true_type;
    uint64_t size;
    char sha256[65];
    char *part_path;        /* the part it came from */
    bool encrypted;         /* password-protected archive or document */
    bool decrypted;
    bool macros, ole_objects, pdf_javascript, pdf_launch;
    bool pdf_open_action;
    /* the facts above cover the attachment and everything inside it (the
     * members say where) */
    bool name_bidi;         /* file name had bidi controls (U+202E...), removed */
    bool double_extension;  /* "invoice.pdf.exe": a document extension before the real one */
    uint64_t extracted;     /* bytes extracted from its archives (counts to archive_total_bytes) */
    bool passwords_pending; /* encrypted entries seen before the text was complete (internal) */
    bool too_many_entries;  /* extraction stopped at the file/entry count limit: the archive is
                             * not handed whole to archive-parsing engines (ClamAV's zip code
                             * is quadratic in the entry count) */
    struct mime_member *members;
    size_t nmembers;
    /* the decoded bytes, kept for detectors (virus scan) until analysis_free;
     * NULL when over MIME_MAX_KEEP */
    unsigned char *data;
};

struct mime_url {
    char *url;              /* normalised */
    char *host;             /* lower-case, punycode (A-label) */
    char *host_unicode;     /* U-label form */
    char *text;             /* visible text it came with, or NULL */
    char *source;           /* "text", "html_href", "html_form", "html_img" */
};

struct mime_flag {
    char *name;             /* "archive_limits", "encrypted", "malformed" */
    char *reason;           /* evidence, e.g. "invoice.zip: more than 353 files" */
};

/* A detector's finding (issue 4): category is one of virus, spam, phishing,
 * graymail, bec, web_reputation, social_engineering, content, scan_exclusion */
struct detection {
    char *category;
    char *name;             /* e.g. "Eicar-Test-Signature", "link-text-mismatch" */
    double score;           /* [0, 1] */
    char *evidence;         /* human-readable, e.g. "invoice.zip/eicar.com" */
    char *type;             /* virus only: "cleanable", "mass_mailing" or
                             * "non_mass_mailing" (docs/detection.md); else NULL */
};

#define MIME_MAX_DETECTIONS 200

struct analysis {
    char *message_id;
    uint64_t size;
    char *subject;
    char *date;
    struct mime_address *from, *sender, *reply_to, *to, *cc, *return_path;
    size_t nfrom, nsender, nreply_to, nto, ncc, nreturn_path;
    struct mime_header *headers;  /* every header in order (bounded) */
    size_t nheaders;
    struct mime_part *parts;
    size_t nparts;
    struct mime_attachment *attachments;
    size_t nattachments;
    struct mime_url *urls;
    size_t nurls;
    struct mime_flag *flags;
    size_t nflags;
    char *text;             /* all visible body text, UTF-8, bounded by MIME_MAX_TEXT */
    size_t text_len;
    char *html_text;        /* visible text of the HTML parts only */
    bool signed_smime, signed_pgp, encrypted_smime, encrypted_pgp;
    struct detection *detections;  /* filled by detect/ after mime_analyse */
    size_t ndetections;
    bool spam_scored;       /* spam_score below is set */
    double spam_score;      /* [0, 1] */
    unsigned spam_levels;   /* bit i: spam at level mime_spam_level_names[i] (set by detect/) */
};

/* the five spam levels, least sensitive first (INTERFACES.md) */
extern const char *const mime_spam_level_names[5];

/* mime_analyse - parse msg (len bytes, CRLF or LF line ends) into a new
 * analysis. Never fails on bad input (problems become flags); NULL only on
 * out-of-memory. limits may be NULL (defaults). */
struct analysis *mime_analyse(const char *msg, size_t len, const struct mime_limits *limits);
void analysis_free(struct analysis *a);

/* analysis_add_flag - record a flag once per (name, reason) */
void analysis_add_flag(struct analysis *a, const char *name, const char *reason);

/* analysis_add_detection - record a finding (bounded by MIME_MAX_DETECTIONS;
 * strings are copied and cleaned to UTF-8). Returns the record (valid until
 * the next add, for setting type) or NULL when not recorded. */
struct detection *analysis_add_detection(struct analysis *a, const char *category, const char *name, double score,
                            const char *evidence);

/* analysis_to_json - the `moatctl scan` document (INTERFACES.md), caller
 * frees. pretty: indented. */
char *analysis_to_json(const struct analysis *a, bool pretty);

#endif
