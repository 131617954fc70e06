/*
 * mime_int.h - internal interfaces between the mime/ source files.
 *
 * Not for use outside src/mime/ (public interface: mime.h).
 *   mime_parse.c walks the message and decides what is an attachment;
 *   mime_attach.c (with mime_archive.c, mime_office.c) analyses its bytes.
 */
#ifndef MOAT_MIME_INT_H
#define MOAT_MIME_INT_H

#include "mime/mime.h"

/* mime_attach_analyse - analyse one attachment (decoded bytes of part
 * part_path, or of an inline uuencode/yEnc block in it): true type, SHA-256,
 * archive members, macros... Appends to a->attachments and may add flags.
 * filename and declared_type may be NULL. data is borrowed (copied if kept). */
void mime_attach_analyse(struct analysis *a, const struct mime_limits *l, const char *part_path,
                         const char *filename, const char *declared_type, const unsigned char *data,
                         size_t len);

/* ---------------------------------------------------------------- parse/text/html/url
 * (mime_parse.c, mime_text.c, mime_html.c, mime_url.c) */
#define MIME_MAX_HEADER_VALUE 65536 /* bytes of one decoded header value kept */
#define MIME_MAX_NAME 1024          /* file names, display names, labels */

/* mime_init - GMime and libxml2 global set-up, once per process (idempotent,
 * thread-safe); mime_analyse calls it */
void mime_init(void);

/* mime_array_push - grow *arr (n elements of size sz) by one zeroed element;
 * returns it. The caller bounds n. */
void *mime_array_push(void *arr_ptr, size_t *n, size_t sz);

/* mime_charset_resolve - iconv name for a MIME charset label (aliases
 * applied), or NULL when unknown. The result may live in thread-local
 * storage until the next call. */
const char *mime_charset_resolve(const char *label);
/* mime_charset_sniff - the likely charset of bytes with no usable label */
const char *mime_charset_sniff(const char *in, size_t n);
/* mime_text_to_utf8 - decode n bytes in charset (label, may be NULL) to
 * valid UTF-8 of at most max bytes; *used (may be NULL) gets the charset
 * actually used. Caller frees. Never NULL. */
char *mime_text_to_utf8(const char *charset, const char *in, size_t n, size_t max, size_t *outlen,
                        const char **used);
/* mime_utf8_clean - valid UTF-8 (raw JIS and 8-bit decoded), controls as
 * spaces, at most max bytes. Caller frees; NULL only for NULL in. */
char *mime_utf8_clean(const char *in, size_t n, size_t max);
bool mime_utf8_valid(const char *s, size_t n);
/* mime_rfc2047_decode - decode the encoded-words of an unfolded header value
 * with our charset table (ISO-2022-JP with CP50221 extensions, CP932...);
 * adjacent words of one charset are joined before decoding. Caller frees. */
char *mime_rfc2047_decode(const char *in, size_t n, size_t max);

/* mime_html_extract - HTML (UTF-8) to visible text appended to text (bounded
 * by its max); links, forms and images go to a->urls with their text */
void mime_html_extract(struct analysis *a, const char *html, size_t len, struct buf *text);

/* mime_url_add - normalise and record one URL (deduplicated, capped);
 * text is the visible text it came with (may be NULL); source is one of
 * "text", "html_href", "html_form", "html_img". Silently ignores what is
 * not a URL with a host. */
void mime_url_add(struct analysis *a, const char *raw, size_t len, const char *text, const char *source);
/* mime_url_scan_text - find URLs in plain text (UTF-8) */
void mime_url_scan_text(struct analysis *a, const char *text, size_t len);
/* mime_url_normalise - the normalised form of raw (caller frees) and its
 * host in A-label and U-label form; NULL when raw is not a URL with a host */
char *mime_url_normalise(const char *raw, size_t len, char **host, char **host_unicode);

/* ---------------------------------------------------------------- attachments
 * (mime_attach.c, mime_archive.c, mime_office.c) */

/* mime_attach_free - free what one attachment record owns (not the record
 * itself). analysis_free calls it for every a->attachments[i]. */
void mime_attach_free(struct mime_attachment *at);

/* mime_attach_finish - call once a->text is complete (mime_analyse does):
 * attachments analysed while a->text was still NULL and holding encrypted
 * entries are opened again with the passwords found in the text, and only
 * then is `encrypted` flagged for what stays closed. */
void mime_attach_finish(struct analysis *a, const struct mime_limits *l);

/* mime_password_harvest - candidate passwords from decoded body text
 * ("password: X", "PW: X", "パスワード：X", "解凍パスワードは X", the next line
 * after a bare keyword...). Fills out[] with up to max new strings (caller
 * frees each), deduplicated; returns the count. */
size_t mime_password_harvest(const char *text, size_t len, char **out, size_t max);

/* mime_archive_ratio_exceeded - the compression-ratio rule: produced bytes
 * over ratio x consumed, once produced is past MIME_ARCHIVE_RATIO_FLOOR */
bool mime_archive_ratio_exceeded(uint64_t produced, uint64_t consumed, unsigned ratio);

/* mime_decrypted_hook - when set (detect_virus.c sets it once per process),
 * called with the bytes of every archive entry opened with a password while
 * the message is analysed: the only moment those bytes exist, and scanners
 * cannot decrypt them. path is the member path; the bytes are borrowed for
 * the call. The hook may add detections to a. */
extern void (*mime_decrypted_hook)(struct analysis *a, const char *path, const unsigned char *data, size_t len);

/* mime_body_hook - when set (detect_virus.c), called with the decoded bytes
 * of every body part (text/plain, text/html shown as the body, before any
 * charset conversion) while the message is analysed, so the virus scanner
 * sees them decoded without parsing the MIME a second time. path is the
 * part's path; the bytes are borrowed for the call. */
extern void (*mime_body_hook)(struct analysis *a, const char *path, const unsigned char *data, size_t len);

/* the facts found in one blob (attachment or member), ORed upwards */
struct mime_facts {
    bool encrypted, decrypted, macros, ole_objects, pdf_javascript, pdf_launch, pdf_open_action;
};

/* one attachment's scan: limits and counters shared by every level */
struct mime_scan {
    struct analysis *a;
    const struct mime_limits *l;
    struct mime_attachment *at;   /* the record being built (not yet in a->attachments) */
    uint64_t extracted_before;    /* by the message's earlier attachments */
    unsigned files;               /* archive entries seen in this attachment (all levels) */
    unsigned other_entries;       /* directories, links... (bounded at 8 x archive_files) */
    size_t members_before;        /* member records of earlier attachments */
    bool stopped;                 /* a limit was breached: extract nothing more */
    bool defer_encrypted;         /* no message text yet: mark passwords_pending, flag later */
    char *passwords[MIME_MAX_PASSWORDS];
    size_t npasswords;
    bool passwords_ready;         /* harvested (once, before the first archive is opened) */
    unsigned decrypt_entries;     /* encrypted entries we tried passwords on */
    unsigned encrypted_flags;     /* `encrypted` flags added for this attachment */
};

/* mime_blob_inspect - look inside one blob of true type true_type (archive,
 * office document, PDF, TNEF) found at path, at archive level depth (0 =
 * the attachment itself); facts are ORed into f. */
void mime_blob_inspect(struct mime_scan *s, const char *path, const char *true_type,
                       const unsigned char *data, size_t len, unsigned depth, struct mime_facts *f);
/* mime_true_type - libmagic MIME type of data (lower-case, caller frees) */
char *mime_true_type(const unsigned char *data, size_t len);
/* mime_clean_name - valid, bounded UTF-8 copy of n bytes of a name (bidi
 * and zero-width characters removed, *bidi set if any; bidi may be NULL) */
char *mime_clean_name(const char *in, size_t n, bool *bidi);
/* mime_sha256_hex - SHA-256 of data as 64 hex digits + NUL */
void mime_sha256_hex(const unsigned char *data, size_t len, char out[65]);
/* mime_scan_limit - record an archive_limits breach (flag with evidence)
 * and stop the attachment's extraction */
void mime_scan_limit(struct mime_scan *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* mime_scan_add_member - append a member record (NULL when over MIME_MAX_MEMBERS) */
struct mime_member *mime_scan_add_member(struct mime_scan *s, size_t *index);

/* mime_archive.c */
bool mime_archive_is_type(const char *true_type);
void mime_archive_scan(struct mime_scan *s, const char *path, const unsigned char *data, size_t len,
                       unsigned depth, struct mime_facts *f);
/* mime_office.c */
bool mime_office_is_type(const char *true_type);
void mime_office_scan(struct mime_scan *s, const char *path, const char *true_type,
                      const unsigned char *data, size_t len, struct mime_facts *f);
/* mime_pdf_scan - PDF facts from raw bytes (and bounded FlateDecode streams) */
void mime_pdf_scan(const unsigned char *data, size_t len, struct mime_facts *f);

#endif
