/*
 * fuzz_smtp_cmd.c - libFuzzer target for smtp/smtp_cmd.c.
 *
 * The input is split into lines (LF, one trailing CR dropped). Each line is
 * copied into a heap block of exactly its length, so ASan sees any read past
 * it, and goes through smtp_cmd_parse and then the parser for its verb, and
 * also straight through every argument parser and the reply parser (each
 * must stand on its own). The whole input is also fed as one line, which
 * brings bare CR and LF inside a "line".
 *
 * Besides crashes it checks what the parsers promise: results are
 * NUL-terminated and within their limits, an accepted path has no routing
 * characters in its local part and no trailing dot in its domain, and an
 * accepted address parses again to itself. A broken promise aborts.
 */
#include "core/core.h"

#include "smtp/smtp_cmd.h"

#include "fuzz.h"

/* check - abort (a crash to libFuzzer) when a promise is broken */
static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_smtp_cmd: broken invariant: %s\n", what);
        abort();
    }
}

static bool terminated(const char *s, size_t sz, size_t max)
{
    size_t n = strnlen(s, sz);
    return n < sz && n <= max;
}

static void check_path(const struct smtp_path *p, bool forward);

/* reparse - an accepted address must parse again, to itself */
static void reparse(const struct smtp_path *p)
{
    static char buf[SMTP_PATH_MAX + 16];
    struct smtp_rcpt_args again;
    int n = snprintf(buf, sizeof buf, "TO:<%s>", p->addr);
    check(n > 0 && (size_t)n < sizeof buf, "address fits a path");
    check(smtp_parse_rcpt(buf, (size_t)n, p->utf8, &again) == SMTP_CMD_OK, "address re-parses");
    check(strcmp(again.path.addr, p->addr) == 0, "re-parse gives the same address");
    check(again.path.utf8 == p->utf8 && again.path.domain_literal == p->domain_literal,
          "re-parse gives the same flags");
}

static void check_path(const struct smtp_path *p, bool forward)
{
    check(terminated(p->addr, sizeof p->addr, SMTP_PATH_MAX), "addr length");
    check(terminated(p->local, sizeof p->local, SMTP_LOCAL_MAX), "local length");
    check(terminated(p->domain, sizeof p->domain, SMTP_DOMAIN_MAX), "domain length");
    if (p->null) {
        check(!forward && p->addr[0] == '\0', "null path only for MAIL, empty");
        return;
    }
    check(p->local[0] != '\0', "local part not empty");
    check(strpbrk(p->local, "%!@") == NULL, "no routing characters in the local part");
    size_t dl = strlen(p->domain);
    if (dl == 0) {
        check(forward && strcasecmp(p->local, "postmaster") == 0, "only <postmaster> has no domain");
        check(strcmp(p->addr, p->local) == 0, "postmaster addr");
    } else {
        check(p->domain[dl - 1] != '.', "no trailing dot");
        check(strchr(p->domain, '@') == NULL, "no @ in the domain");
        check(p->domain_literal == (p->domain[0] == '['), "literal flag");
        for (size_t i = 0; i < dl; i++)
            check(!(p->domain[i] >= 'A' && p->domain[i] <= 'Z') || p->domain_literal, "domain lower-cased");
        size_t ll = strlen(p->local);
        check(strncmp(p->addr, p->local, ll) == 0 && p->addr[ll] == '@' &&
                  strcmp(p->addr + ll + 1, p->domain) == 0,
              "addr is local@domain");
    }
    for (const char *c = p->addr; *c; c++)
        check((unsigned char)*c >= 0x20 && *c != 0x7f, "no control bytes in addr");
    for (const char *c = p->addr; *c && !p->utf8; c++)
        check((unsigned char)*c < 0x80, "non-ASCII only with the utf8 flag");
    reparse(p);
}

static void fuzz_mail(const char *arg, size_t len)
{
    struct smtp_mail_args m;
    enum smtp_cmd_err rc = smtp_parse_mail(arg, len, &m);
    check(smtp_cmd_err_reply(rc) != NULL, "reply for every result");
    if (rc != SMTP_CMD_OK)
        return;
    check_path(&m.path, false);
    check(!m.path.utf8 || m.smtputf8, "UTF-8 path needs SMTPUTF8");
    check(terminated(m.envid, sizeof m.envid, SMTP_ENVID_MAX), "envid length");
    check(m.has_size || m.size == 0, "size only with SIZE");
}

static void fuzz_rcpt(const char *arg, size_t len, bool smtputf8)
{
    struct smtp_rcpt_args r;
    enum smtp_cmd_err rc = smtp_parse_rcpt(arg, len, smtputf8, &r);
    check(smtp_cmd_err_reply(rc) != NULL, "reply for every result");
    if (rc != SMTP_CMD_OK)
        return;
    check_path(&r.path, true);
    check(!r.path.utf8 || smtputf8, "UTF-8 path needs SMTPUTF8");
    check(terminated(r.orcpt, sizeof r.orcpt, SMTP_ORCPT_MAX), "orcpt length");
    check(r.notify == 0 || r.notify == SMTP_NOTIFY_NEVER || (r.notify & SMTP_NOTIFY_NEVER) == 0,
          "NEVER alone");
}

static void fuzz_bdat(const char *arg, size_t len)
{
    static const uint64_t maxes[] = {0, 1000, UINT64_MAX};
    for (size_t i = 0; i < sizeof maxes / sizeof maxes[0]; i++) {
        uint64_t size = 1;
        bool last = true;
        if (smtp_parse_bdat(arg, len, maxes[i], &size, &last) == SMTP_CMD_OK)
            check(size <= maxes[i], "BDAT size within max");
    }
}

static void fuzz_helo(const char *arg, size_t len)
{
    static const size_t sizes[] = {0, 1, 8, SMTP_DOMAIN_MAX + 1};
    char out[SMTP_DOMAIN_MAX + 1];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (smtp_parse_helo(arg, len, out, sizes[i]) == SMTP_CMD_OK && sizes[i] > 0)
            check(strnlen(out, sizes[i]) < sizes[i] && (sizes[i] == 1 || out[0] != '\0'),
                  "HELO name terminated, not empty");
    }
}

static void fuzz_reply(const char *line, size_t len)
{
    static const size_t sizes[] = {0, 4, 6, 16};
    int code = 0;
    bool last = false;
    const char *text = NULL;
    size_t textlen = 0;
    char out[16];
    if (smtp_reply_parse_line(line, len, &code, &last, &text, &textlen) != 0)
        return;
    check(code >= 200 && code <= 599, "reply code range");
    check(text >= line && textlen <= len && (size_t)(text - line) + textlen == len, "reply text view");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = smtp_reply_enhanced(code, text, textlen, out, sizes[i]);
        check(n == 0 || (n < sizes[i] && strlen(out) == n && out[0] - '0' == code / 100), "enhanced code");
    }
}

/* one_line - every parser on one line held in an exact-size heap block */
static void one_line(const char *data, size_t len)
{
    char *line = len ? xmalloc(len) : NULL;
    struct smtp_cmd cmd;
    if (len)
        memcpy(line, data, len);

    enum smtp_cmd_err rc = smtp_cmd_parse(line, len, &cmd);
    check(smtp_cmd_err_reply(rc) != NULL, "reply for every result");
    if (rc == SMTP_CMD_OK) {
        check(cmd.arg >= line && cmd.arglen <= len && (size_t)(cmd.arg - line) <= len - cmd.arglen,
              "argument inside the line");
        switch (cmd.verb) {
        case SMTP_VERB_MAIL:
            fuzz_mail(cmd.arg, cmd.arglen);
            break;
        case SMTP_VERB_RCPT:
            fuzz_rcpt(cmd.arg, cmd.arglen, false);
            fuzz_rcpt(cmd.arg, cmd.arglen, true);
            break;
        case SMTP_VERB_BDAT:
            fuzz_bdat(cmd.arg, cmd.arglen);
            break;
        case SMTP_VERB_HELO:
        case SMTP_VERB_EHLO:
            fuzz_helo(cmd.arg, cmd.arglen);
            break;
        default:
            break;
        }
    }
    fuzz_mail(line, len);
    fuzz_rcpt(line, len, true);
    fuzz_bdat(line, len);
    fuzz_helo(line, len);
    fuzz_reply(line, len);
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i == size || s[i] == '\n') {
            size_t end = i;
            if (end > start && s[end - 1] == '\r')
                end--;
            if (i < size || end > start)
                one_line(s + start, end - start);
            start = i + 1;
        }
    }
    if (size > 0 && memchr(s, '\n', size) != NULL)
        one_line(s, size);
    return 0;
}
