/*
 * rewrite_int.h - internal interfaces between the rewrite/ source files.
 *
 * Not for use outside src/rewrite/ (public interface: rewrite.h).
 *   rewrite_mime.c  the MIME structure as byte ranges (struct rw_tree),
 *                   checked against GMime's reading
 *   rewrite_text.c  RFC 2047 words, folding, transfer encodings, charsets
 *   rewrite.c       the operations and the assembly of the new message
 */
#ifndef MOAT_REWRITE_INT_H
#define MOAT_REWRITE_INT_H

#include "rewrite/rewrite.h"

/* one header field: [start, end) covers its name, value, folded lines and
 * final line ending; the value starts after the ':' at colon + 1 */
struct rw_field {
    size_t start, colon, end;
};

/* one MIME entity (part) of the message, as byte offsets into the input */
struct rw_entity {
    char *path;            /* "1", "1.2"... as mime/ numbers them */
    size_t start;          /* first byte of its header block */
    size_t hdr_end;        /* end of the last header field */
    size_t body_start;     /* first byte after the blank line (= hdr_end without one) */
    size_t body_end;       /* end of the content (the line ending before a boundary excluded) */
    struct rw_field *fields;
    size_t nfields;
    char *type, *subtype;  /* lower case; defaults applied (text/plain, message/rfc822 in a digest) */
    char *boundary;        /* multipart only, or NULL */
    char *charset;         /* as declared (lower case), or NULL */
    char *cte;             /* Content-Transfer-Encoding, lower case, or NULL */
    char *disposition;     /* lower case, or NULL */
    char *filename;        /* UTF-8 (filename= or name=), or NULL */
    char *smime_type;      /* application/pkcs7-mime smime-type, or NULL */
    char *protocol;        /* multipart/signed protocol, or NULL */
    int ct_field, cte_field; /* index of the (first) Content-Type / -Transfer-Encoding field, -1 */
    unsigned nct, ncte;    /* how many of each the entity has */
    int parent;            /* index, -1 for the top */
    bool message_top;      /* the top entity of a message (the outer one or a message/rfc822) */
    bool in_message;       /* inside a message/rfc822 attachment */
    unsigned depth;
    size_t nchildren;
    int first_child, next_sibling; /* indices, -1 for none */
};

struct rw_tree {
    const char *msg;
    size_t len;
    struct rw_entity *e;   /* e[0] is the message's top entity, path "1" */
    size_t n;
    const char *eol;       /* the input's line ending: "\r\n" or "\n" */
    bool truncated;        /* REWRITE_MAX_PARTS / REWRITE_MAX_DEPTH reached */
    bool consistent;       /* GMime reads the same structure (rw_tree_verify) */
    char why[256];         /* why not consistent */
};

/* rw_tree_parse - locate the structure of msg; -1 with err when it is not
 * a message (no header field before the body) or a header block has too
 * many fields; over the part or depth limit 0 with t->truncated and err set */
int rw_tree_parse(struct rw_tree *t, const char *msg, size_t len, char *err, size_t errsz);
/* rw_tree_verify - compare with GMime's parse (types, children, content
 * offsets); sets t->consistent and t->why */
void rw_tree_verify(struct rw_tree *t);
void rw_tree_free(struct rw_tree *t);
/* rw_tree_find - the entity with that path, or -1 */
int rw_tree_find(const struct rw_tree *t, const char *path);
/* rw_field_is - the field's name is name (case-insensitive) */
bool rw_field_is(const struct rw_tree *t, const struct rw_field *f, const char *name);
/* rw_field_value - the field's value unfolded (CR/LF removed) and trimmed,
 * at most REWRITE_MAX_FIELD bytes; caller frees */
char *rw_field_value(const struct rw_tree *t, const struct rw_field *f);
/* rw_init - GMime set-up, once per process */
void rw_init(void);

/* ---------------------------------------------------------------- rewrite_text.c */
/* rw_sanitise - UTF-8 copy of s (invalid bytes as U+FFFD) with controls
 * (CR, LF, TAB...) as spaces, trimmed; keep_newlines keeps \n. Caller frees. */
char *rw_sanitise(const char *s, size_t n, bool keep_newlines);
/* rw_is_ascii - no byte >= 0x80 */
bool rw_is_ascii(const char *s, size_t n);
/* rw_header_field - "Name: value" folded at 78 columns with eol, non-ASCII
 * (and what could be mistaken for encoded words) as RFC 2047 UTF-8 B words,
 * ending in eol; appended to out. -1 when out is full. */
int rw_header_field(struct buf *out, const char *name, const char *value, const char *eol);
/* rw_encoded_words - the UTF-8 text s as a list of RFC 2047 B words of at
 * most 75 characters each (the first at most first_room when that is 24 or
 * more, to fit the rest of a line), split at character boundaries; words
 * are separated by '\0' in out (one trailing '\0'); returns the count */
size_t rw_encoded_words(struct buf *out, const char *s, size_t n, size_t first_room);
/* rw_header_decode - the unfolded header value decoded (RFC 2047, raw
 * 8-bit and JIS) to UTF-8; caller frees (g_free) */
char *rw_header_decode(const char *value);

/* transfer encodings; decode never fails (bad input is skipped as mail
 * clients do), encode appends to out and returns -1 when out is full */
void rw_base64_decode(const char *in, size_t n, struct buf *out);
int rw_base64_encode(const unsigned char *in, size_t n, const char *eol, struct buf *out);
void rw_qp_decode(const char *in, size_t n, struct buf *out);
int rw_qp_encode(const unsigned char *in, size_t n, const char *eol, struct buf *out);

/* rw_charset_iconv - the iconv name used to write text in a MIME charset
 * label (Shift_JIS as CP932, EUC-JP as EUC-JP-MS...), or NULL if unknown */
const char *rw_charset_iconv(const char *label);
/* rw_convert - convert n bytes from one iconv charset to another, strictly
 * (any unconvertible or invalid input fails); appended to out; 0 or -1 */
int rw_convert(const char *from, const char *to, const char *in, size_t n, struct buf *out);
/* rw_charset_stateful - ISO-2022 family (escape sequences switch sets) */
bool rw_charset_stateful(const char *iconv_name);
/* rw_charset_ascii_compatible - ASCII bytes mean ASCII characters */
bool rw_charset_ascii_compatible(const char *iconv_name);
/* rw_iso2022_ascii_at - in ISO-2022 text s (len bytes), is the shift
 * state at byte pos <= len single-byte ASCII (or JIS-Roman) */
bool rw_iso2022_ascii_at(const char *s, size_t len, size_t pos);

#endif
