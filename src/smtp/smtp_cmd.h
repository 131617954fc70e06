/*
 * smtp_cmd.h - pure parsers for the SMTP protocol (no I/O, no allocation
 * beyond the caller's structs): command lines, MAIL/RCPT paths and ESMTP
 * parameters, BDAT arguments, and server reply lines (for the client).
 *
 * All inputs are untrusted bytes with explicit lengths, never assumed to be
 * NUL-terminated, and never include the terminating CRLF. Fuzzed by
 * tests/fuzz/fuzz_smtp_cmd.c.
 */
#ifndef MOAT_SMTP_CMD_H
#define MOAT_SMTP_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_LOCAL_MAX 64   /* RFC 5321 4.5.3.1.1 */
#define SMTP_DOMAIN_MAX 255 /* RFC 5321 4.5.3.1.2 */
#define SMTP_PATH_MAX 256   /* RFC 5321 4.5.3.1.3, without the angle brackets */
#define SMTP_ENVID_MAX 100  /* RFC 3461 */
#define SMTP_ORCPT_MAX 500

enum smtp_verb {
    SMTP_VERB_UNKNOWN = 0,
    SMTP_VERB_HELO,
    SMTP_VERB_EHLO,
    SMTP_VERB_MAIL,
    SMTP_VERB_RCPT,
    SMTP_VERB_DATA,
    SMTP_VERB_BDAT,
    SMTP_VERB_RSET,
    SMTP_VERB_NOOP,
    SMTP_VERB_QUIT,
    SMTP_VERB_VRFY,
    SMTP_VERB_EXPN,
    SMTP_VERB_HELP,
    SMTP_VERB_STARTTLS,
    SMTP_VERB_AUTH,
};

/* Parse results. Each maps to one reply (see smtp_cmd_err_reply). */
enum smtp_cmd_err {
    SMTP_CMD_OK = 0,
    SMTP_CMD_ERR_SYNTAX,        /* 500 5.5.2 unrecognised / malformed command */
    SMTP_CMD_ERR_ARGS,          /* 501 5.5.4 bad arguments */
    SMTP_CMD_ERR_PATH_SYNTAX,   /* 501 5.1.3 / 5.1.7 bad address syntax */
    SMTP_CMD_ERR_PATH_TOO_LONG, /* 501 5.1.3 path, local part or domain over its limit */
    SMTP_CMD_ERR_PARAM,         /* 555 5.5.4 unknown or malformed ESMTP parameter */
    SMTP_CMD_ERR_UTF8,          /* 553 5.6.7 non-ASCII address without SMTPUTF8 */
    SMTP_CMD_ERR_ROUTING,       /* 550 5.7.1 sender-specified routing (%, !, quoted @) */
    SMTP_CMD_ERR_NUL,           /* 500 5.5.2 NUL or control byte in the command */
};

enum smtp_body { SMTP_BODY_7BIT = 0, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME };
enum smtp_ret { SMTP_RET_NONE = 0, SMTP_RET_FULL, SMTP_RET_HDRS };
enum smtp_notify { SMTP_NOTIFY_NEVER = 1, SMTP_NOTIFY_SUCCESS = 2, SMTP_NOTIFY_FAILURE = 4, SMTP_NOTIFY_DELAY = 8 };

/*
 * A mailbox. addr is "local@domain" (NUL-terminated): the local part exactly
 * as given (quoted form kept), the domain lower-cased (ASCII only) with
 * address literals kept in brackets. A source route (@a,@b:) is accepted and
 * dropped (RFC 5321 4.1.1.3 / C). null is true for "<>" (MAIL only).
 */
struct smtp_path {
    bool null;
    bool utf8;            /* non-ASCII bytes in local part or domain (valid UTF-8) */
    bool domain_literal;  /* [IPv4] or [IPv6:...] */
    bool had_route;       /* a source route was present and dropped */
    char addr[SMTP_PATH_MAX + 1];
    char local[SMTP_LOCAL_MAX * 4 + 3]; /* room for quoting */
    char domain[SMTP_DOMAIN_MAX + 1];
};

struct smtp_mail_args {
    struct smtp_path path;
    uint64_t size;        /* SIZE=, 0 if absent */
    bool has_size;
    enum smtp_body body;
    bool smtputf8;
    enum smtp_ret ret;
    char envid[SMTP_ENVID_MAX + 1]; /* xtext-decoded? no: kept as received (xtext) */
};

struct smtp_rcpt_args {
    struct smtp_path path;
    unsigned notify;      /* bitmask of enum smtp_notify, 0 if absent */
    char orcpt[SMTP_ORCPT_MAX + 1]; /* as received, "rfc822;..." */
};

struct smtp_cmd {
    enum smtp_verb verb;
    const char *arg;      /* points into the line: text after the verb and one space */
    size_t arglen;
};

/* smtp_cmd_parse - split a command line (no CRLF) into verb and argument.
 * Rejects NUL and control bytes other than TAB. Verb matching is
 * case-insensitive; an unknown verb gives SMTP_CMD_OK with SMTP_VERB_UNKNOWN. */
enum smtp_cmd_err smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out);

/* smtp_parse_mail - the argument of MAIL ("FROM:<path> params").
 * Non-ASCII in the path requires the SMTPUTF8 parameter on the same line.
 * AUTH=<mailbox> (RFC 4954) is checked and ignored. On error the contents
 * of out are unspecified. */
enum smtp_cmd_err smtp_parse_mail(const char *arg, size_t len, struct smtp_mail_args *out);

/* smtp_parse_rcpt - the argument of RCPT ("TO:<path> params"); smtputf8 says
 * whether the transaction's MAIL carried SMTPUTF8. "<>" is a syntax error;
 * "<postmaster>" (no domain) is accepted with an empty domain. On error the
 * contents of out are unspecified. */
enum smtp_cmd_err smtp_parse_rcpt(const char *arg, size_t len, bool smtputf8, struct smtp_rcpt_args *out);

/* smtp_parse_bdat - "SIZE [LAST]"; size bounded by max */
enum smtp_cmd_err smtp_parse_bdat(const char *arg, size_t len, uint64_t max, uint64_t *size, bool *last);

/* smtp_parse_helo - a HELO/EHLO argument: a domain or address literal,
 * copied (truncated to outsz-1) into out. Empty is an error. */
enum smtp_cmd_err smtp_parse_helo(const char *arg, size_t len, char *out, size_t outsz);

/* smtp_cmd_err_reply - the full reply line ("501 5.1.3 Bad address syntax")
 * for an error, without CRLF. */
const char *smtp_cmd_err_reply(enum smtp_cmd_err err);

/*
 * Reply lines from a server (used by the delivery client).
 * smtp_reply_parse_line parses one line without CRLF: "250-text" or "250 text"
 * or "250". On success returns 0 and sets code (200..599), last (space or end
 * of line after the code) and text (points into line, after the separator).
 * Returns -1 on a malformed line.
 */
int smtp_reply_parse_line(const char *line, size_t len, int *code, bool *last, const char **text,
                          size_t *textlen);
/* smtp_reply_enhanced - if text starts with an enhanced status code
 * ("5.1.1 "), copy it into out (NUL-terminated) and return its length;
 * else 0. class must match the reply code's first digit. */
size_t smtp_reply_enhanced(int code, const char *text, size_t len, char *out, size_t outsz);

#endif
