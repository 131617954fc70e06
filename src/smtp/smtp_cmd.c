/*
 * smtp_cmd.c - pure parsers for the SMTP protocol: command lines, MAIL and
 * RCPT paths with their ESMTP parameters, BDAT and HELO/EHLO arguments, and
 * server reply lines for the delivery client. No I/O, no allocation.
 *
 *   smtp_cmd_parse         split a command line into verb and argument
 *   smtp_parse_mail        "FROM:<path> params" (SIZE BODY SMTPUTF8 RET ENVID AUTH)
 *   smtp_parse_rcpt        "TO:<path> params" (NOTIFY ORCPT)
 *   smtp_parse_bdat        "SIZE [LAST]"
 *   smtp_parse_helo        HELO/EHLO domain or address literal
 *   smtp_cmd_err_reply     the reply line for each parse error
 *   smtp_reply_parse_line  one server reply line ("250-..." / "250 ...")
 *   smtp_reply_enhanced    the RFC 3463 enhanced status code of a reply text
 *
 * Ownership: every result lives in the caller's structs; smtp_cmd.arg and
 * reply texts are views into the caller's line. Inputs carry explicit
 * lengths and are never read past them nor assumed to be NUL-terminated.
 *
 * Limits (RFC 5321 4.5.3.1, header constants): local part 64 octets (as
 * given, quotes included), domain 255, path 256 (everything between the
 * angle brackets, source route included), domain label 63, ENVID 100,
 * ORCPT 500, SIZE and BDAT sizes 20 digits / uint64.
 *
 * Security notes. This parser decides what an address *is*; the session
 * decides relay by comparing the domain with the protected domains, so any
 * address a downstream MTA could read as "deliver elsewhere" is refused
 * here:
 *   - '%', '!' or '@' in the local part (the % hack, bang paths, quoted
 *     "user@other"@protected, also when escaped) and their full-width /
 *     small-form Unicode look-alikes give SMTP_CMD_ERR_ROUTING, as does an
 *     unquoted second '@';
 *   - a source route (<@a,@b:user@c>) is parsed and dropped (RFC 5321 C);
 *   - a trailing dot or an empty label in a domain, and Unicode full stops
 *     (U+3002, U+FF0E, U+FF61, which IDNA maps to '.') are syntax errors;
 *   - address literals are only [IPv4] (no leading zeros: no octal
 *     surprises) or [IPv6:...] (checked by inet_pton); they are returned
 *     with domain_literal set and never match a protected domain;
 *   - NUL and control bytes (except TAB) anywhere give SMTP_CMD_ERR_NUL;
 *     non-ASCII must be valid UTF-8 and needs SMTPUTF8;
 *   - xtext (ENVID, ORCPT, AUTH) must decode to printable ASCII, so a DSN
 *     built from it cannot carry CR/LF into headers.
 * Tolerance, as in Postfix: spaces after "FROM:"/"TO:", several spaces
 * between parameters, trailing spaces, case-insensitive keywords and
 * lower-case hex in xtext. HELO/EHLO accepts '_' in names and a final dot
 * (real clients send both; the name is only logged).
 */
#include "core/core.h"

#include <arpa/inet.h>

#include "smtp/smtp_cmd.h"

/* ---------------------------------------------------------------- bytes */

static bool is_ctl(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

static bool has_ctl(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (is_ctl((unsigned char)s[i]))
            return true;
    return false;
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned hex_val(unsigned char c)
{
    if (is_digit(c))
        return (unsigned)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (unsigned)(c - 'a' + 10);
    return (unsigned)(c - 'A' + 10);
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static bool is_sp(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* is_atext - RFC 5322 atext (ASCII part) */
static bool is_atext(unsigned char c)
{
    if (is_alpha(c) || is_digit(c))
        return true;
    return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* ci_prefix - does s (n bytes) start with the ASCII keyword kw, any case? */
static bool ci_prefix(const char *s, size_t n, const char *kw)
{
    size_t k = strlen(kw);
    if (n < k)
        return false;
    for (size_t i = 0; i < k; i++)
        if (lower((unsigned char)s[i]) != lower((unsigned char)kw[i]))
            return false;
    return true;
}

static bool ci_equal(const char *s, size_t n, const char *kw)
{
    return n == strlen(kw) && ci_prefix(s, n, kw);
}

static size_t skip_sp(const char *s, size_t n, size_t i)
{
    while (i < n && is_sp((unsigned char)s[i]))
        i++;
    return i;
}

/* utf8_seq - length of the valid UTF-8 sequence at p[0] (a byte >= 0x80)
 * and its code point; 0 for overlong forms, surrogates, > U+10FFFF or a
 * sequence cut short by n. */
static size_t utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t v, min;
    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        len = 2, v = p[0] & 0x1Fu, min = 0x80;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        len = 3, v = p[0] & 0x0Fu, min = 0x800;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        len = 4, v = p[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (p[k] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

static bool utf8_valid(const char *s, size_t n)
{
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        const unsigned char *p = (const unsigned char *)s + i;
        if (*p < 0x80) {
            i++;
            continue;
        }
        size_t l = utf8_seq(p, n - i, &cp);
        if (l == 0)
            return false;
        i += l;
    }
    return true;
}

/* cp_routing - Unicode look-alikes of '!', '%' and '@' that NFKC (which some
 * downstream systems apply) folds into the ASCII routing characters */
static bool cp_routing(uint32_t cp)
{
    return cp == 0xFF01 || cp == 0xFF05 || cp == 0xFF20 || cp == 0xFE57 || cp == 0xFE6A || cp == 0xFE6B;
}

/* cp_dot - code points IDNA (UTS 46) treats as label separators */
static bool cp_dot(uint32_t cp)
{
    return cp == 0x3002 || cp == 0xFF0E || cp == 0xFF61;
}

/* ---------------------------------------------------------------- command line */

static const struct {
    const char *name;
    enum smtp_verb verb;
} verbs[] = {
    {"HELO", SMTP_VERB_HELO},         {"EHLO", SMTP_VERB_EHLO}, {"MAIL", SMTP_VERB_MAIL},
    {"RCPT", SMTP_VERB_RCPT},         {"DATA", SMTP_VERB_DATA}, {"BDAT", SMTP_VERB_BDAT},
    {"RSET", SMTP_VERB_RSET},         {"NOOP", SMTP_VERB_NOOP}, {"QUIT", SMTP_VERB_QUIT},
    {"VRFY", SMTP_VERB_VRFY},         {"EXPN", SMTP_VERB_EXPN}, {"HELP", SMTP_VERB_HELP},
    {"STARTTLS", SMTP_VERB_STARTTLS}, {"AUTH", SMTP_VERB_AUTH},
};

enum smtp_cmd_err smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out)
{
    size_t v = 0;
    out->verb = SMTP_VERB_UNKNOWN;
    out->arg = line;
    out->arglen = 0;
    if (len == 0)
        return SMTP_CMD_ERR_SYNTAX;
    if (has_ctl(line, len))
        return SMTP_CMD_ERR_NUL;
    while (len > 0 && is_sp((unsigned char)line[len - 1]))
        len--; /* "DATA " and "QUIT\t" are common */
    while (v < len && line[v] != ' ')
        v++;
    if (v == 0)
        return SMTP_CMD_ERR_SYNTAX; /* empty line or leading space */
    if (v < len) {
        out->arg = line + v + 1;
        out->arglen = len - v - 1;
    } else {
        out->arg = line + len;
    }
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        if (ci_equal(line, v, verbs[i].name)) {
            out->verb = verbs[i].verb;
            break;
        }
    }
    return SMTP_CMD_OK;
}

/* ---------------------------------------------------------------- domains */

/*
 * parse_domain - hostname labels at s[0..n) up to the first byte that cannot
 * be part of a domain; *used gets the bytes consumed. The lower-cased
 * domain goes into out (outsz > SMTP_DOMAIN_MAX). utf8 allows U-labels
 * (the caller has checked the UTF-8 is valid). Fails with PATH_SYNTAX on an
 * empty or over-long label, a label that starts or ends with '-', a
 * trailing dot, or an IDNA full stop; TOO_LONG when over SMTP_DOMAIN_MAX.
 */
static enum smtp_cmd_err parse_domain(const char *s, size_t n, bool utf8, char *out, size_t *used,
                                      bool *nonascii)
{
    size_t i = 0;
    uint32_t cp;
    for (;;) {
        size_t start = i;
        while (i < n) {
            unsigned char c = (unsigned char)s[i];
            if (is_alpha(c) || is_digit(c) || c == '-') {
                i++;
            } else if (c >= 0x80 && utf8) {
                size_t l = utf8_seq((const unsigned char *)s + i, n - i, &cp);
                if (l == 0 || cp_dot(cp))
                    return SMTP_CMD_ERR_PATH_SYNTAX;
                *nonascii = true;
                i += l;
            } else {
                break;
            }
        }
        if (i == start || i - start > 63 || s[start] == '-' || s[i - 1] == '-')
            return SMTP_CMD_ERR_PATH_SYNTAX;
        if (i < n && s[i] == '.') {
            i++; /* the next label must not be empty: no trailing dot */
            continue;
        }
        break;
    }
    if (i > SMTP_DOMAIN_MAX)
        return SMTP_CMD_ERR_PATH_TOO_LONG;
    for (size_t k = 0; k < i; k++)
        out[k] = (char)lower((unsigned char)s[k]);
    out[i] = '\0';
    *used = i;
    return SMTP_CMD_OK;
}

/* parse_ipv4 - dotted quad, each 0..255 without leading zeros */
static bool parse_ipv4(const char *s, size_t n)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        size_t start = i;
        unsigned v = 0;
        if (part > 0) {
            if (i >= n || s[i] != '.')
                return false;
            start = ++i;
        }
        while (i < n && is_digit((unsigned char)s[i]) && i - start < 3)
            v = v * 10 + (unsigned)(s[i++] - '0');
        if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
            return false;
    }
    return i == n;
}

/*
 * parse_literal - an address literal "[1.2.3.4]" or "[IPv6:...]" that is
 * exactly s[0..n), normalised (tag "IPv6:", lower-case hex) into out
 * (outsz > SMTP_DOMAIN_MAX). General literals ("[tag:...]") are refused.
 */
static bool parse_literal(const char *s, size_t n, char *out)
{
    if (n < 2 || s[0] != '[' || s[n - 1] != ']')
        return false;
    const char *in = s + 1;
    size_t inl = n - 2;
    if (ci_prefix(in, inl, "IPv6:")) {
        char tmp[INET6_ADDRSTRLEN];
        unsigned char bin[16];
        size_t al = inl - 5;
        if (al == 0 || al >= sizeof tmp)
            return false;
        for (size_t k = 0; k < al; k++) {
            unsigned char c = (unsigned char)in[5 + k];
            if (!is_hex(c) && c != ':' && c != '.')
                return false;
            tmp[k] = (char)lower(c);
        }
        tmp[al] = '\0';
        if (inet_pton(AF_INET6, tmp, bin) != 1)
            return false;
        snprintf(out, SMTP_DOMAIN_MAX + 1, "[IPv6:%s]", tmp);
        return true;
    }
    if (!parse_ipv4(in, inl))
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

/* ---------------------------------------------------------------- paths */

/*
 * parse_local - the local part at s[*i..n): dot-string or quoted-string.
 * Sets *routing when the decoded local part holds '%', '!', '@' or one of
 * their look-alikes, *nonascii for UTF-8 (already validated by the caller).
 */
static enum smtp_cmd_err parse_local(const char *s, size_t n, size_t *i, bool *routing, bool *nonascii)
{
    size_t j = *i;
    uint32_t cp;
    if (j < n && s[j] == '"') {
        size_t content = 0;
        for (j++;; j++) {
            if (j >= n)
                return SMTP_CMD_ERR_PATH_SYNTAX; /* unterminated */
            unsigned char c = (unsigned char)s[j];
            if (c == '"')
                break;
            if (c == '\\') {
                if (j + 1 >= n || (unsigned char)s[j + 1] < 32 || (unsigned char)s[j + 1] > 126)
                    return SMTP_CMD_ERR_PATH_SYNTAX;
                c = (unsigned char)s[++j];
            } else if (c >= 0x80) {
                size_t l = utf8_seq((const unsigned char *)s + j, n - j, &cp);
                if (l == 0)
                    return SMTP_CMD_ERR_PATH_SYNTAX;
                if (cp_routing(cp))
                    *routing = true;
                *nonascii = true;
                j += l - 1;
            } else if (c < 32 || c > 126) {
                return SMTP_CMD_ERR_PATH_SYNTAX; /* TAB */
            }
            if (c == '%' || c == '!' || c == '@')
                *routing = true;
            content++;
        }
        if (content == 0)
            return SMTP_CMD_ERR_PATH_SYNTAX; /* "" has no legitimate use */
        *i = j + 1;
        return SMTP_CMD_OK;
    }
    for (;;) {
        size_t start = j;
        while (j < n) {
            unsigned char c = (unsigned char)s[j];
            if (c >= 0x80) {
                size_t l = utf8_seq((const unsigned char *)s + j, n - j, &cp);
                if (l == 0)
                    return SMTP_CMD_ERR_PATH_SYNTAX;
                if (cp_routing(cp))
                    *routing = true;
                *nonascii = true;
                j += l;
            } else if (is_atext(c)) {
                if (c == '%' || c == '!')
                    *routing = true;
                j++;
            } else {
                break;
            }
        }
        if (j == start)
            return SMTP_CMD_ERR_PATH_SYNTAX; /* empty atom: leading, double or trailing dot */
        if (j < n && s[j] == '.') {
            j++;
            continue;
        }
        break;
    }
    *i = j;
    return SMTP_CMD_OK;
}

/*
 * parse_path - the text between '<' and '>' (s[0..n)). forward: RCPT
 * ("<>" refused, "<postmaster>" allowed); else MAIL ("<>" is the null
 * path). utf8: SMTPUTF8 in effect.
 */
static enum smtp_cmd_err parse_path(const char *s, size_t n, bool forward, bool utf8, struct smtp_path *p)
{
    size_t i = 0, used, local_start, local_len;
    bool routing = false, nonascii = false;
    enum smtp_cmd_err rc;

    if (n == 0) {
        if (forward)
            return SMTP_CMD_ERR_PATH_SYNTAX;
        p->null = true;
        return SMTP_CMD_OK;
    }
    if (n > SMTP_PATH_MAX)
        return SMTP_CMD_ERR_PATH_TOO_LONG;
    for (size_t k = 0; k < n; k++) {
        if ((unsigned char)s[k] >= 0x80) {
            if (!utf8)
                return SMTP_CMD_ERR_UTF8;
            if (!utf8_valid(s, n))
                return SMTP_CMD_ERR_PATH_SYNTAX;
            break;
        }
    }

    /* A-d-l ":" - parsed for syntax, then dropped */
    if (s[0] == '@') {
        for (;;) {
            char scratch[SMTP_DOMAIN_MAX + 1];
            bool route_nonascii = false;
            if (i >= n || s[i] != '@')
                return SMTP_CMD_ERR_PATH_SYNTAX;
            i++;
            rc = parse_domain(s + i, n - i, utf8, scratch, &used, &route_nonascii);
            if (rc != SMTP_CMD_OK)
                return rc;
            i += used;
            if (i < n && s[i] == ',') {
                i++;
                continue;
            }
            if (i < n && s[i] == ':') {
                i++;
                break;
            }
            return SMTP_CMD_ERR_PATH_SYNTAX;
        }
        p->had_route = true;
    }

    local_start = i;
    rc = parse_local(s, n, &i, &routing, &nonascii);
    if (rc != SMTP_CMD_OK)
        return rc;
    if (routing)
        return SMTP_CMD_ERR_ROUTING;
    local_len = i - local_start;
    if (local_len > SMTP_LOCAL_MAX)
        return SMTP_CMD_ERR_PATH_TOO_LONG;
    memcpy(p->local, s + local_start, local_len);
    p->local[local_len] = '\0';

    if (i == n) {
        /* RFC 5321 4.5.1: RCPT TO:<Postmaster> needs no domain */
        if (!forward || p->had_route || !ci_equal(p->local, local_len, "postmaster"))
            return SMTP_CMD_ERR_PATH_SYNTAX;
        memcpy(p->addr, p->local, local_len + 1);
        p->domain[0] = '\0';
        return SMTP_CMD_OK;
    }
    if (s[i] != '@')
        return SMTP_CMD_ERR_PATH_SYNTAX;
    i++;

    if (i < n && s[i] == '[') {
        if (!parse_literal(s + i, n - i, p->domain))
            return SMTP_CMD_ERR_PATH_SYNTAX;
        p->domain_literal = true;
    } else {
        rc = parse_domain(s + i, n - i, utf8, p->domain, &used, &nonascii);
        if (rc != SMTP_CMD_OK)
            return rc;
        if (i + used < n)
            return s[i + used] == '@' ? SMTP_CMD_ERR_ROUTING : SMTP_CMD_ERR_PATH_SYNTAX;
    }
    /* local + '@' + domain is never longer than the path it came from
     * (literal normalisation keeps the length) */
    size_t dl = strlen(p->domain);
    if (local_len + 1 + dl > SMTP_PATH_MAX)
        return SMTP_CMD_ERR_PATH_TOO_LONG;
    memcpy(p->addr, p->local, local_len);
    p->addr[local_len] = '@';
    memcpy(p->addr + local_len + 1, p->domain, dl + 1);
    p->utf8 = nonascii;
    return SMTP_CMD_OK;
}

/*
 * split_path - after "FROM:"/"TO:" at s[*i]: optional spaces, then "<...>"
 * (a '>' inside a quoted local part does not end it). Sets the content
 * view and moves *i past the '>', which must be followed by a space or the
 * end of the argument.
 */
static enum smtp_cmd_err split_path(const char *s, size_t n, size_t *i, const char **path, size_t *plen)
{
    size_t j = skip_sp(s, n, *i);
    bool quoted = false;
    if (j >= n || s[j] != '<')
        return SMTP_CMD_ERR_PATH_SYNTAX;
    size_t start = ++j;
    for (; j < n; j++) {
        if (quoted && s[j] == '\\')
            j++;
        else if (s[j] == '"')
            quoted = !quoted;
        else if (!quoted && s[j] == '>')
            break;
    }
    if (j >= n)
        return SMTP_CMD_ERR_PATH_SYNTAX;
    *path = s + start;
    *plen = j - start;
    j++;
    if (j < n && !is_sp((unsigned char)s[j]))
        return SMTP_CMD_ERR_PATH_SYNTAX;
    *i = j;
    return SMTP_CMD_OK;
}

/* ---------------------------------------------------------------- ESMTP parameters */

/* parse_number - 1..20 decimal digits that fit in a uint64_t */
static bool parse_number(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)s[i]))
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/*
 * xtext_valid - RFC 3461 xtext: '!'..'~' except '+' and '=', and "+XX"
 * (either case) that must decode to printable ASCII or space. utf8
 * additionally allows valid UTF-8 (ORCPT utf-8 addresses under SMTPUTF8).
 */
static bool xtext_valid(const char *s, size_t n, bool utf8)
{
    uint32_t cp;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            if (n - i < 3 || !is_hex((unsigned char)s[i + 1]) || !is_hex((unsigned char)s[i + 2]))
                return false;
            unsigned v = hex_val((unsigned char)s[i + 1]) * 16 + hex_val((unsigned char)s[i + 2]);
            if (v < 0x20 || v > 0x7e)
                return false;
            i += 2;
        } else if (c >= 0x80 && utf8) {
            size_t l = utf8_seq((const unsigned char *)s + i, n - i, &cp);
            if (l == 0)
                return false;
            i += l - 1;
        } else if (c < '!' || c > '~' || c == '=') {
            return false;
        }
    }
    return true;
}

/*
 * next_param - the next "keyword[=value]" token at s[*i..n), separated by
 * spaces. Returns 1 with the views set, 0 at the end, -1 on a malformed
 * keyword. The value is everything up to the next space (checked by the
 * caller); has_value tells "KEY" from "KEY=".
 */
static int next_param(const char *s, size_t n, size_t *i, const char **kw, size_t *kwlen, const char **val,
                      size_t *vallen, bool *has_value)
{
    size_t j = skip_sp(s, n, *i), k;
    if (j >= n)
        return 0;
    k = j;
    while (k < n && !is_sp((unsigned char)s[k]) && s[k] != '=')
        k++;
    *kw = s + j;
    *kwlen = k - j;
    if (k == j || !(is_alpha((unsigned char)s[j]) || is_digit((unsigned char)s[j])))
        return -1;
    for (size_t m = j; m < k; m++)
        if (!is_alpha((unsigned char)s[m]) && !is_digit((unsigned char)s[m]) && s[m] != '-')
            return -1;
    *has_value = k < n && s[k] == '=';
    if (*has_value)
        k++;
    *val = s + k;
    while (k < n && !is_sp((unsigned char)s[k]))
        k++;
    *vallen = (size_t)(s + k - *val);
    *i = k;
    return 1;
}

enum mail_param { MP_SIZE = 1, MP_BODY = 2, MP_SMTPUTF8 = 4, MP_RET = 8, MP_ENVID = 16, MP_AUTH = 32 };

static enum smtp_cmd_err parse_mail_params(const char *s, size_t n, struct smtp_mail_args *out)
{
    size_t i = 0, kwlen, vallen;
    const char *kw, *val;
    bool hv;
    unsigned seen = 0, bit;
    int r;
    while ((r = next_param(s, n, &i, &kw, &kwlen, &val, &vallen, &hv)) == 1) {
        if (ci_equal(kw, kwlen, "SIZE")) {
            bit = MP_SIZE;
            if (!hv || !parse_number(val, vallen, &out->size))
                return SMTP_CMD_ERR_PARAM;
            out->has_size = true;
        } else if (ci_equal(kw, kwlen, "BODY")) {
            bit = MP_BODY;
            if (!hv)
                return SMTP_CMD_ERR_PARAM;
            if (ci_equal(val, vallen, "7BIT"))
                out->body = SMTP_BODY_7BIT;
            else if (ci_equal(val, vallen, "8BITMIME"))
                out->body = SMTP_BODY_8BITMIME;
            else if (ci_equal(val, vallen, "BINARYMIME"))
                out->body = SMTP_BODY_BINARYMIME;
            else
                return SMTP_CMD_ERR_PARAM;
        } else if (ci_equal(kw, kwlen, "SMTPUTF8")) {
            bit = MP_SMTPUTF8;
            if (hv)
                return SMTP_CMD_ERR_PARAM;
            out->smtputf8 = true;
        } else if (ci_equal(kw, kwlen, "RET")) {
            bit = MP_RET;
            if (hv && ci_equal(val, vallen, "FULL"))
                out->ret = SMTP_RET_FULL;
            else if (hv && ci_equal(val, vallen, "HDRS"))
                out->ret = SMTP_RET_HDRS;
            else
                return SMTP_CMD_ERR_PARAM;
        } else if (ci_equal(kw, kwlen, "ENVID")) {
            bit = MP_ENVID;
            if (!hv || vallen > SMTP_ENVID_MAX || !xtext_valid(val, vallen, false))
                return SMTP_CMD_ERR_PARAM;
            memcpy(out->envid, val, vallen);
            out->envid[vallen] = '\0';
        } else if (ci_equal(kw, kwlen, "AUTH")) {
            /* RFC 4954 5: validated, then ignored (treated as AUTH=<>) */
            bit = MP_AUTH;
            if (!hv || vallen > SMTP_ORCPT_MAX ||
                !(ci_equal(val, vallen, "<>") || xtext_valid(val, vallen, false)))
                return SMTP_CMD_ERR_PARAM;
        } else {
            return SMTP_CMD_ERR_PARAM;
        }
        if (seen & bit)
            return SMTP_CMD_ERR_PARAM;
        seen |= bit;
    }
    return r == 0 ? SMTP_CMD_OK : SMTP_CMD_ERR_PARAM;
}

/* parse_notify - "NEVER" alone or a list of SUCCESS, FAILURE, DELAY */
static bool parse_notify(const char *s, size_t n, unsigned *out)
{
    size_t i = 0;
    unsigned v = 0;
    if (n == 0)
        return false;
    for (;;) {
        size_t start = i;
        while (i < n && s[i] != ',')
            i++;
        const char *item = s + start;
        size_t il = i - start;
        if (ci_equal(item, il, "NEVER"))
            v |= SMTP_NOTIFY_NEVER;
        else if (ci_equal(item, il, "SUCCESS"))
            v |= SMTP_NOTIFY_SUCCESS;
        else if (ci_equal(item, il, "FAILURE"))
            v |= SMTP_NOTIFY_FAILURE;
        else if (ci_equal(item, il, "DELAY"))
            v |= SMTP_NOTIFY_DELAY;
        else
            return false; /* also the empty item of "A,,B" or a trailing comma */
        if (i == n)
            break;
        i++;
    }
    if ((v & SMTP_NOTIFY_NEVER) && v != SMTP_NOTIFY_NEVER)
        return false;
    *out = v;
    return true;
}

/* parse_orcpt - "addr-type;xtext" (RFC 3461 4.2); addr-type is an atom. Raw
 * UTF-8 only for the utf-8 type under SMTPUTF8 (RFC 6533). */
static bool parse_orcpt(const char *s, size_t n, bool smtputf8)
{
    size_t i = 0;
    while (i < n && s[i] != ';') {
        if (!is_atext((unsigned char)s[i]))
            return false;
        i++;
    }
    if (i == 0 || i == n)
        return false;
    bool utf8 = smtputf8 && ci_equal(s, i, "utf-8");
    return xtext_valid(s + i + 1, n - i - 1, utf8);
}

enum rcpt_param { RP_NOTIFY = 1, RP_ORCPT = 2 };

static enum smtp_cmd_err parse_rcpt_params(const char *s, size_t n, bool smtputf8, struct smtp_rcpt_args *out)
{
    size_t i = 0, kwlen, vallen;
    const char *kw, *val;
    bool hv;
    unsigned seen = 0, bit;
    int r;
    while ((r = next_param(s, n, &i, &kw, &kwlen, &val, &vallen, &hv)) == 1) {
        if (ci_equal(kw, kwlen, "NOTIFY")) {
            bit = RP_NOTIFY;
            if (!hv || !parse_notify(val, vallen, &out->notify))
                return SMTP_CMD_ERR_PARAM;
        } else if (ci_equal(kw, kwlen, "ORCPT")) {
            bit = RP_ORCPT;
            if (!hv || vallen > SMTP_ORCPT_MAX || !parse_orcpt(val, vallen, smtputf8))
                return SMTP_CMD_ERR_PARAM;
            memcpy(out->orcpt, val, vallen);
            out->orcpt[vallen] = '\0';
        } else {
            return SMTP_CMD_ERR_PARAM;
        }
        if (seen & bit)
            return SMTP_CMD_ERR_PARAM;
        seen |= bit;
    }
    return r == 0 ? SMTP_CMD_OK : SMTP_CMD_ERR_PARAM;
}

/* ---------------------------------------------------------------- MAIL, RCPT */

enum smtp_cmd_err smtp_parse_mail(const char *arg, size_t len, struct smtp_mail_args *out)
{
    size_t i;
    const char *path = NULL;
    size_t plen = 0;
    enum smtp_cmd_err rc, prc;

    memset(out, 0, sizeof *out);
    if (len == 0)
        return SMTP_CMD_ERR_ARGS;
    if (has_ctl(arg, len))
        return SMTP_CMD_ERR_NUL;
    i = skip_sp(arg, len, 0);
    if (!ci_prefix(arg + i, len - i, "FROM:"))
        return SMTP_CMD_ERR_ARGS;
    i += 5;
    rc = split_path(arg, len, &i, &path, &plen);
    if (rc != SMTP_CMD_OK)
        return rc;
    /* parameters first: SMTPUTF8 decides whether the path may be UTF-8;
     * a bad path is still reported before a bad parameter */
    prc = parse_mail_params(arg + i, len - i, out);
    rc = parse_path(path, plen, false, out->smtputf8, &out->path);
    return rc != SMTP_CMD_OK ? rc : prc;
}

enum smtp_cmd_err smtp_parse_rcpt(const char *arg, size_t len, bool smtputf8, struct smtp_rcpt_args *out)
{
    size_t i;
    const char *path = NULL;
    size_t plen = 0;
    enum smtp_cmd_err rc;

    memset(out, 0, sizeof *out);
    if (len == 0)
        return SMTP_CMD_ERR_ARGS;
    if (has_ctl(arg, len))
        return SMTP_CMD_ERR_NUL;
    i = skip_sp(arg, len, 0);
    if (!ci_prefix(arg + i, len - i, "TO:"))
        return SMTP_CMD_ERR_ARGS;
    i += 3;
    rc = split_path(arg, len, &i, &path, &plen);
    if (rc != SMTP_CMD_OK)
        return rc;
    rc = parse_path(path, plen, true, smtputf8, &out->path);
    if (rc != SMTP_CMD_OK)
        return rc;
    return parse_rcpt_params(arg + i, len - i, smtputf8, out);
}

/* ---------------------------------------------------------------- BDAT, HELO */

enum smtp_cmd_err smtp_parse_bdat(const char *arg, size_t len, uint64_t max, uint64_t *size, bool *last)
{
    size_t i, start;
    uint64_t v;
    *size = 0;
    *last = false;
    if (len == 0)
        return SMTP_CMD_ERR_ARGS;
    if (has_ctl(arg, len))
        return SMTP_CMD_ERR_NUL;
    i = skip_sp(arg, len, 0);
    start = i;
    while (i < len && !is_sp((unsigned char)arg[i]))
        i++;
    if (!parse_number(arg + start, i - start, &v) || v > max)
        return SMTP_CMD_ERR_ARGS;
    i = skip_sp(arg, len, i);
    start = i;
    while (i < len && !is_sp((unsigned char)arg[i]))
        i++;
    if (i > start) {
        if (!ci_equal(arg + start, i - start, "LAST"))
            return SMTP_CMD_ERR_ARGS;
        *last = true;
    }
    if (skip_sp(arg, len, i) != len)
        return SMTP_CMD_ERR_ARGS;
    *size = v;
    return SMTP_CMD_OK;
}

/* helo_name - a host name as clients really send it: labels of letters,
 * digits, '-' and '_', 1..63 each, an optional final dot */
static bool helo_name(const char *s, size_t n)
{
    size_t i = 0;
    if (n > SMTP_DOMAIN_MAX)
        return false;
    while (i < n) {
        size_t start = i;
        while (i < n &&
               (is_alpha((unsigned char)s[i]) || is_digit((unsigned char)s[i]) || s[i] == '-' || s[i] == '_'))
            i++;
        if (i == start || i - start > 63)
            return false;
        if (i < n && s[i] != '.')
            return false;
        i++; /* the dot; a final dot ends the loop */
    }
    return n > 0;
}

enum smtp_cmd_err smtp_parse_helo(const char *arg, size_t len, char *out, size_t outsz)
{
    size_t i, end;
    if (outsz > 0)
        out[0] = '\0';
    if (len == 0)
        return SMTP_CMD_ERR_ARGS;
    if (has_ctl(arg, len))
        return SMTP_CMD_ERR_NUL;
    i = skip_sp(arg, len, 0);
    end = len;
    while (end > i && is_sp((unsigned char)arg[end - 1]))
        end--;
    if (end == i)
        return SMTP_CMD_ERR_ARGS;
    const char *name = arg + i;
    size_t n = end - i;
    if (name[0] == '[') {
        char lit[SMTP_DOMAIN_MAX + 1];
        if (n > SMTP_DOMAIN_MAX || !parse_literal(name, n, lit))
            return SMTP_CMD_ERR_ARGS;
    } else if (!helo_name(name, n)) {
        return SMTP_CMD_ERR_ARGS;
    }
    if (outsz > 0) {
        size_t c = n < outsz - 1 ? n : outsz - 1;
        memcpy(out, name, c);
        out[c] = '\0';
    }
    return SMTP_CMD_OK;
}

/* ---------------------------------------------------------------- replies to clients */

const char *smtp_cmd_err_reply(enum smtp_cmd_err err)
{
    switch (err) {
    case SMTP_CMD_OK:
        return "250 2.0.0 Ok";
    case SMTP_CMD_ERR_SYNTAX:
        return "500 5.5.2 Syntax error, command unrecognized";
    case SMTP_CMD_ERR_ARGS:
        return "501 5.5.4 Syntax error in parameters or arguments";
    case SMTP_CMD_ERR_PATH_SYNTAX:
        return "501 5.1.3 Bad address syntax";
    case SMTP_CMD_ERR_PATH_TOO_LONG:
        return "501 5.1.3 Address too long";
    case SMTP_CMD_ERR_PARAM:
        return "555 5.5.4 Unsupported or malformed parameter";
    case SMTP_CMD_ERR_UTF8:
        return "553 5.6.7 Non-ASCII address requires SMTPUTF8";
    case SMTP_CMD_ERR_ROUTING:
        return "550 5.7.1 Sender-specified routing is not allowed";
    case SMTP_CMD_ERR_NUL:
        return "500 5.5.2 Invalid character in command";
    }
    return "500 5.5.2 Syntax error";
}

/* ---------------------------------------------------------------- replies from servers */

int smtp_reply_parse_line(const char *line, size_t len, int *code, bool *last, const char **text,
                          size_t *textlen)
{
    const unsigned char *u = (const unsigned char *)line;
    if (len < 3 || u[0] < '2' || u[0] > '5' || u[1] < '0' || u[1] > '5' || !is_digit(u[2]))
        return -1;
    if (len > 3 && u[3] != ' ' && u[3] != '-')
        return -1;
    if (has_ctl(line, len))
        return -1; /* NUL, CR or LF inside a reply: framing is broken */
    *code = (u[0] - '0') * 100 + (u[1] - '0') * 10 + (u[2] - '0');
    *last = len == 3 || u[3] == ' ';
    *text = line + (len > 3 ? 4 : 3);
    *textlen = len > 3 ? len - 4 : 0;
    return 0;
}

size_t smtp_reply_enhanced(int code, const char *text, size_t len, char *out, size_t outsz)
{
    size_t i = 0;
    if (len < 5 || code < 200 || code > 599 || code / 100 == 3 || text[0] != (char)('0' + code / 100) ||
        text[1] != '.')
        return 0; /* class is 2, 4 or 5 and matches the reply code */
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (i < len && is_digit((unsigned char)text[i]) && i - start < 3)
            i++;
        if (i == start)
            return 0;
        if (part == 0) {
            if (i >= len || text[i] != '.')
                return 0;
            i++;
        }
    }
    if (i < len && text[i] != ' ')
        return 0;
    if (outsz <= i)
        return 0;
    memcpy(out, text, i);
    out[i] = '\0';
    return i;
}
