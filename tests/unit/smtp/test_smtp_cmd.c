/*
 * test_smtp_cmd.c - unit tests for smtp/smtp_cmd.c, table-driven: good,
 * empty, truncated, oversize (limit-1, limit, limit+1), NUL, 8-bit, bare CR
 * and LF inside the line, every relay trick, every ESMTP parameter, BDAT,
 * HELO and server reply lines. Every input is handed to the parser in a heap
 * block of exactly its length, so ASan catches any read past it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/core.h"

#include "smtp/smtp_cmd.h"

/* S - a string literal and its length (literals may hold NUL bytes) */
#define S(lit) lit, sizeof(lit) - 1
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* short names keep the tables readable */
#define OK SMTP_CMD_OK
#define E_SYNTAX SMTP_CMD_ERR_SYNTAX
#define E_ARGS SMTP_CMD_ERR_ARGS
#define E_PATH SMTP_CMD_ERR_PATH_SYNTAX
#define E_LONG SMTP_CMD_ERR_PATH_TOO_LONG
#define E_PARAM SMTP_CMD_ERR_PARAM
#define E_UTF8 SMTP_CMD_ERR_UTF8
#define E_ROUTE SMTP_CMD_ERR_ROUTING
#define E_NUL SMTP_CMD_ERR_NUL

/* exact - a heap copy of exactly n bytes (no terminator), caller frees */
static char *exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

static enum smtp_cmd_err mail(const char *s, size_t n, struct smtp_mail_args *m)
{
    char *p = exact(s, n);
    enum smtp_cmd_err rc = smtp_parse_mail(p, n, m);
    free(p);
    return rc;
}

static enum smtp_cmd_err rcpt(const char *s, size_t n, bool utf8, struct smtp_rcpt_args *r)
{
    char *p = exact(s, n);
    enum smtp_cmd_err rc = smtp_parse_rcpt(p, n, utf8, r);
    free(p);
    return rc;
}

static void fail_case(const char *what, size_t i, const char *in, size_t n)
{
    char esc[512];
    print_error("%s case %zu: \"%s\"\n", what, i, log_escape(in, n, esc, sizeof esc));
}

/* make_domain - a valid host name of exactly n bytes (labels <= 51) */
static void make_domain(char *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (i % 51 == 50) ? '.' : 'a';
    if (n > 0 && out[n - 1] == '.')
        out[n - 1] = 'b';
    out[n] = '\0';
}

/* ---------------------------------------------------------------- command lines */

static void test_cmd_parse(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        enum smtp_cmd_err err;
        enum smtp_verb verb;
        const char *arg;
    } t[] = {
        {S("MAIL FROM:<a@b.test>"), OK, SMTP_VERB_MAIL, "FROM:<a@b.test>"},
        {S("mail from:<a@b.test>"), OK, SMTP_VERB_MAIL, "from:<a@b.test>"},
        {S("MaIl FROM:<>"), OK, SMTP_VERB_MAIL, "FROM:<>"},
        {S("MAIL  FROM:<a@b.test>"), OK, SMTP_VERB_MAIL, " FROM:<a@b.test>"},
        {S("RCPT TO:<x@y.test>"), OK, SMTP_VERB_RCPT, "TO:<x@y.test>"},
        {S("DATA"), OK, SMTP_VERB_DATA, ""},
        {S("DATA "), OK, SMTP_VERB_DATA, ""},
        {S("QUIT\t"), OK, SMTP_VERB_QUIT, ""},
        {S("ehlo client.test"), OK, SMTP_VERB_EHLO, "client.test"},
        {S("HELO x"), OK, SMTP_VERB_HELO, "x"},
        {S("BDAT 100 LAST"), OK, SMTP_VERB_BDAT, "100 LAST"},
        {S("RSET"), OK, SMTP_VERB_RSET, ""},
        {S("NOOP hello there"), OK, SMTP_VERB_NOOP, "hello there"},
        {S("VRFY user"), OK, SMTP_VERB_VRFY, "user"},
        {S("EXPN list"), OK, SMTP_VERB_EXPN, "list"},
        {S("HELP"), OK, SMTP_VERB_HELP, ""},
        {S("STARTTLS"), OK, SMTP_VERB_STARTTLS, ""},
        {S("starttls"), OK, SMTP_VERB_STARTTLS, ""},
        {S("AUTH PLAIN dGVzdA=="), OK, SMTP_VERB_AUTH, "PLAIN dGVzdA=="},
        {S("NOOP \xc3\xa9"), OK, SMTP_VERB_NOOP, "\xc3\xa9"}, /* 8-bit left to the argument parsers */
        /* unknown verbs are not errors here: the session answers 500 */
        {S("XYZZY"), OK, SMTP_VERB_UNKNOWN, ""},
        {S("MAILFROM:<a@b.test>"), OK, SMTP_VERB_UNKNOWN, ""},
        {S("MAI"), OK, SMTP_VERB_UNKNOWN, ""},
        {S("MAILX FROM:<a@b>"), OK, SMTP_VERB_UNKNOWN, "FROM:<a@b>"},
        {S("STARTTLSX"), OK, SMTP_VERB_UNKNOWN, ""},
        {S("NOOP\tx"), OK, SMTP_VERB_UNKNOWN, ""},
        {S("\xc3\xa9"), OK, SMTP_VERB_UNKNOWN, ""},
        /* empty, leading space */
        {S(""), E_SYNTAX, SMTP_VERB_UNKNOWN, ""},
        {S(" "), E_SYNTAX, SMTP_VERB_UNKNOWN, ""},
        {S(" MAIL FROM:<a@b.test>"), E_SYNTAX, SMTP_VERB_UNKNOWN, ""},
        /* NUL, bare CR / LF, other controls */
        {S("\0"), E_NUL, SMTP_VERB_UNKNOWN, ""},
        {S("MAIL FROM:<a\0@b.test>"), E_NUL, SMTP_VERB_UNKNOWN, ""},
        {S("DATA\r"), E_NUL, SMTP_VERB_UNKNOWN, ""},
        {S("MAIL FROM:<a@b.test>\rRCPT TO:<c@d.test>"), E_NUL, SMTP_VERB_UNKNOWN, ""},
        {S("MAIL FROM:<a@b.test>\nRCPT TO:<c@d.test>"), E_NUL, SMTP_VERB_UNKNOWN, ""},
        {S("NOOP \x7f"), E_NUL, SMTP_VERB_UNKNOWN, ""},
        {S("NOOP \x1b[31m"), E_NUL, SMTP_VERB_UNKNOWN, ""},
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        struct smtp_cmd c;
        char *p = exact(t[i].in, t[i].len);
        enum smtp_cmd_err rc = smtp_cmd_parse(p, t[i].len, &c);
        if (rc != t[i].err || (rc == OK && c.verb != t[i].verb))
            fail_case("cmd", i, t[i].in, t[i].len);
        assert_int_equal(rc, t[i].err);
        if (rc == OK) {
            assert_int_equal(c.verb, t[i].verb);
            if (t[i].verb != SMTP_VERB_UNKNOWN || t[i].arg[0]) {
                assert_int_equal(c.arglen, strlen(t[i].arg));
                assert_memory_equal(c.arg, t[i].arg, c.arglen);
            }
            assert_true(c.arg >= p && c.arg + c.arglen <= p + t[i].len);
        }
        free(p);
    }
}

/* ---------------------------------------------------------------- MAIL paths */

static void test_mail_paths(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        enum smtp_cmd_err err;
        const char *addr;
        bool null, utf8, literal, route;
    } t[] = {
        /* good */
        {S("FROM:<user@example.test>"), OK, "user@example.test", 0, 0, 0, 0},
        {S("from:<User@EXAMPLE.Test>"), OK, "User@example.test", 0, 0, 0, 0},
        {S("FROM: <user@example.test>"), OK, "user@example.test", 0, 0, 0, 0},
        {S("FROM:\t<user@example.test>"), OK, "user@example.test", 0, 0, 0, 0},
        {S(" FROM:<user@example.test>"), OK, "user@example.test", 0, 0, 0, 0},
        {S("FROM:<user@example.test>   "), OK, "user@example.test", 0, 0, 0, 0},
        {S("FROM:<>"), OK, "", 1, 0, 0, 0},
        {S("FROM:<> SIZE=100"), OK, "", 1, 0, 0, 0},
        {S("FROM:<first.last+tag@sub.example.test>"), OK, "first.last+tag@sub.example.test", 0, 0, 0, 0},
        {S("FROM:<a-b_c=d@x-y.test>"), OK, "a-b_c=d@x-y.test", 0, 0, 0, 0},
        {S("FROM:<\"john doe\"@example.test>"), OK, "\"john doe\"@example.test", 0, 0, 0, 0},
        {S("FROM:<\"a\\\"b\"@example.test>"), OK, "\"a\\\"b\"@example.test", 0, 0, 0, 0},
        {S("FROM:<\"a>b\"@example.test>"), OK, "\"a>b\"@example.test", 0, 0, 0, 0},
        {S("FROM:<user@1.2.3.4>"), OK, "user@1.2.3.4", 0, 0, 0, 0},
        {S("FROM:<user@[192.0.2.1]>"), OK, "user@[192.0.2.1]", 0, 0, 1, 0},
        {S("FROM:<user@[0.0.0.0]>"), OK, "user@[0.0.0.0]", 0, 0, 1, 0},
        {S("FROM:<user@[IPv6:2001:DB8::1]>"), OK, "user@[IPv6:2001:db8::1]", 0, 0, 1, 0},
        {S("FROM:<user@[ipv6:::1]>"), OK, "user@[IPv6:::1]", 0, 0, 1, 0},
        {S("FROM:<user@[IPv6:::ffff:192.0.2.1]>"), OK, "user@[IPv6:::ffff:192.0.2.1]", 0, 0, 1, 0},
        {S("FROM:<@a.test,@b.test:user@c.test>"), OK, "user@c.test", 0, 0, 0, 1},
        {S("FROM:<@A.test:user@c.test>"), OK, "user@c.test", 0, 0, 0, 1},
        {S("FROM:<j\xc3\xb6rg@b\xc3\xbc"
           "cher.test> SMTPUTF8"),
         OK,
         "j\xc3\xb6rg@b\xc3\xbc"
         "cher.test",
         0, 1, 0, 0},
        {S("FROM:<J\xc3\xb6rg@B\xc3\x9c"
           "CHER.Test> smtputf8"),
         OK,
         "J\xc3\xb6rg@b\xc3\x9c"
         "cher.test",
         0, 1, 0, 0},
        {S("FROM:<\"j\xc3\xb6 rg\"@x.test> SMTPUTF8"), OK, "\"j\xc3\xb6 rg\"@x.test", 0, 1, 0, 0},
        {S("FROM:<\xf0\x9f\x98\x80@x.test> SMTPUTF8"), OK, "\xf0\x9f\x98\x80@x.test", 0, 1, 0, 0},
        {S("FROM:<a@x.test> SMTPUTF8"), OK, "a@x.test", 0, 0, 0, 0},
        /* empty, keyword, brackets, truncated */
        {S(""), E_ARGS, NULL, 0, 0, 0, 0},
        {S("   "), E_ARGS, NULL, 0, 0, 0, 0},
        {S("FROM"), E_ARGS, NULL, 0, 0, 0, 0},
        {S("FROM <a@b.test>"), E_ARGS, NULL, 0, 0, 0, 0},
        {S("FROM : <a@b.test>"), E_ARGS, NULL, 0, 0, 0, 0},
        {S("TO:<a@b.test>"), E_ARGS, NULL, 0, 0, 0, 0},
        {S("FROM:"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:user@example.test"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@example.test"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@example.test>x"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@example.test>>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@example.test>SIZE=1"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<<user@example.test>>"), E_PATH, NULL, 0, 0, 0, 0},
        /* address syntax */
        {S("FROM:<user>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<postmaster>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<@example.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<@>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:< user@example.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user @example.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@example.test >"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<.user@x.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user.@x.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<us..er@x.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<us(er@x.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<us\\er@x.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<\"\"@x.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<\"unterminated@x.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<\"a\tb\"@x.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<\"a\\"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<\"ab\"c@x.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@.example.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@exa..mple.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@-example.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@example-.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@exa_mple.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@exa mple.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@[1.2.3]>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@[1.2.3.256]>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@[01.2.3.4]>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@[1.2.3.4.5]>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@[1.2.3.4]x>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@[1.2.3.4>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@[]>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@[IPv6:]>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@[IPv6:::g]>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@[IPv6:1:2:3:4:5:6:7:8:9]>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@[IPv6:fe80::1%eth0]>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@[IPv4:1.2.3.4]>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@[x400:foo]>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<@a.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<@a.test,b.test:user@c.test>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<@[192.0.2.1]:user@c.test>"), E_PATH, NULL, 0, 0, 0, 0},
        /* trailing dot, IDNA full stop */
        {S("FROM:<user@example.test.>"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@example\xe3\x80\x82test> SMTPUTF8"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<user@example\xef\xbc\x8etest> SMTPUTF8"), E_PATH, NULL, 0, 0, 0, 0},
        /* relay tricks */
        {S("FROM:<user%evil.test@example.test>"), E_ROUTE, NULL, 0, 0, 0, 0},
        {S("FROM:<evil.test!user@example.test>"), E_ROUTE, NULL, 0, 0, 0, 0},
        {S("FROM:<\"user@evil.test\"@example.test>"), E_ROUTE, NULL, 0, 0, 0, 0},
        {S("FROM:<user@evil.test@example.test>"), E_ROUTE, NULL, 0, 0, 0, 0},
        {S("FROM:<u\xef\xbc\x85"
           "evil@example.test> SMTPUTF8"),
         E_ROUTE, NULL, 0, 0, 0, 0},
        /* 8-bit */
        {S("FROM:<j\xc3\xb6rg@x.test>"), E_UTF8, NULL, 0, 0, 0, 0},
        {S("FROM:<a@b\xc3\xbc"
           "cher.test>"),
         E_UTF8, NULL, 0, 0, 0, 0},
        {S("FROM:<a\xff@x.test>"), E_UTF8, NULL, 0, 0, 0, 0},
        {S("FROM:<a\xc3@x.test> SMTPUTF8"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<a\xc0\xaf@x.test> SMTPUTF8"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<a\xed\xa0\x80@x.test> SMTPUTF8"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<a\xf4\x90\x80\x80@x.test> SMTPUTF8"), E_PATH, NULL, 0, 0, 0, 0},
        {S("FROM:<a@x.test> SMTPUTF8 SIZE=\xc3\xa9"), E_PARAM, NULL, 0, 0, 0, 0},
        /* NUL and controls */
        {S("FROM:<a\0b@x.test>"), E_NUL, NULL, 0, 0, 0, 0},
        {S("FROM:<a@x.test>\r"), E_NUL, NULL, 0, 0, 0, 0},
        {S("FROM:<a@x.test>\r\nRCPT TO:<b@x.test>"), E_NUL, NULL, 0, 0, 0, 0},
        {S("\0FROM:<a@x.test>"), E_NUL, NULL, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        struct smtp_mail_args m;
        enum smtp_cmd_err rc = mail(t[i].in, t[i].len, &m);
        if (rc != t[i].err || (rc == OK && strcmp(m.path.addr, t[i].addr) != 0))
            fail_case("mail", i, t[i].in, t[i].len);
        assert_int_equal(rc, t[i].err);
        if (rc != OK)
            continue;
        assert_string_equal(m.path.addr, t[i].addr);
        assert_int_equal(m.path.null, t[i].null);
        assert_int_equal(m.path.utf8, t[i].utf8);
        assert_int_equal(m.path.domain_literal, t[i].literal);
        assert_int_equal(m.path.had_route, t[i].route);
    }
}

static void test_mail_parts(void **state)
{
    (void)state;
    struct smtp_mail_args m;
    assert_int_equal(mail(S("FROM:<\"John Doe\"@Example.TEST>"), &m), OK);
    assert_string_equal(m.path.local, "\"John Doe\"");
    assert_string_equal(m.path.domain, "example.test");
    assert_int_equal(mail(S("FROM:<@relay.test:Joe@[IPv6:2001:DB8::A]>"), &m), OK);
    assert_string_equal(m.path.local, "Joe");
    assert_string_equal(m.path.domain, "[IPv6:2001:db8::a]");
    assert_true(m.path.had_route && m.path.domain_literal);
    assert_int_equal(mail(S("FROM:<>"), &m), OK);
    assert_string_equal(m.path.addr, "");
    assert_string_equal(m.path.local, "");
    assert_string_equal(m.path.domain, "");
}

/* ---------------------------------------------------------------- MAIL parameters */

static void test_mail_params(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        enum smtp_cmd_err err;
        uint64_t size;
        bool has_size;
        enum smtp_body body;
        bool smtputf8;
        enum smtp_ret ret;
        const char *envid;
    } t[] = {
        {S("FROM:<a@b.test>"), OK, 0, 0, SMTP_BODY_7BIT, 0, SMTP_RET_NONE, ""},
        {S("FROM:<a@b.test> SIZE=10 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x"), OK, 10, 1, SMTP_BODY_8BITMIME,
         1, SMTP_RET_HDRS, "x"},
        {S("FROM:<a@b.test>  SIZE=10\tBODY=BINARYMIME  "), OK, 10, 1, SMTP_BODY_BINARYMIME, 0, SMTP_RET_NONE,
         ""},
        {S("FROM:<a@b.test> SIZE=0"), OK, 0, 1, SMTP_BODY_7BIT, 0, SMTP_RET_NONE, ""},
        {S("FROM:<a@b.test> size=0010"), OK, 10, 1, SMTP_BODY_7BIT, 0, SMTP_RET_NONE, ""},
        {S("FROM:<a@b.test> SIZE=18446744073709551615"), OK, UINT64_MAX, 1, SMTP_BODY_7BIT, 0, SMTP_RET_NONE,
         ""},
        {S("FROM:<a@b.test> SIZE=18446744073709551616"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> SIZE=99999999999999999999"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> SIZE=000000000000000000001"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> SIZE="), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> SIZE"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> SIZE=abc"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> SIZE=-1"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> SIZE=+1"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> SIZE=1k"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> SIZE=1=2"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> SIZE=1 SIZE=2"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> BODY=7BIT"), OK, 0, 0, SMTP_BODY_7BIT, 0, SMTP_RET_NONE, ""},
        {S("FROM:<a@b.test> body=8bitmime"), OK, 0, 0, SMTP_BODY_8BITMIME, 0, SMTP_RET_NONE, ""},
        {S("FROM:<a@b.test> BODY=BINARYMIME"), OK, 0, 0, SMTP_BODY_BINARYMIME, 0, SMTP_RET_NONE, ""},
        {S("FROM:<a@b.test> BODY=8BIT"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> BODY="), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> BODY"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> BODY=7BIT BODY=8BITMIME"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> SMTPUTF8"), OK, 0, 0, SMTP_BODY_7BIT, 1, SMTP_RET_NONE, ""},
        {S("FROM:<a@b.test> SMTPUTF8=yes"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> SMTPUTF8="), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> SMTPUTF8 smtputf8"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> RET=FULL"), OK, 0, 0, SMTP_BODY_7BIT, 0, SMTP_RET_FULL, ""},
        {S("FROM:<a@b.test> ret=hdrs"), OK, 0, 0, SMTP_BODY_7BIT, 0, SMTP_RET_HDRS, ""},
        {S("FROM:<a@b.test> RET=ALL"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> RET"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> RET=FULL RET=HDRS"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> ENVID=abc+2Bdef"), OK, 0, 0, SMTP_BODY_7BIT, 0, SMTP_RET_NONE, "abc+2Bdef"},
        {S("FROM:<a@b.test> ENVID=a+2bb"), OK, 0, 0, SMTP_BODY_7BIT, 0, SMTP_RET_NONE, "a+2bb"},
        {S("FROM:<a@b.test> ENVID=QQ.1@x!~"), OK, 0, 0, SMTP_BODY_7BIT, 0, SMTP_RET_NONE, "QQ.1@x!~"},
        {S("FROM:<a@b.test> ENVID="), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> ENVID"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> ENVID=a+2"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> ENVID=a+"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> ENVID=a+ZZ"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> ENVID=a+0D+0Ab"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> ENVID=a+00"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> ENVID=a+C3+A9"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> ENVID=a=b"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> SMTPUTF8 ENVID=\xc3\xa9"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> ENVID=x ENVID=y"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> AUTH=<>"), OK, 0, 0, SMTP_BODY_7BIT, 0, SMTP_RET_NONE, ""},
        {S("FROM:<a@b.test> AUTH=user+40example.test"), OK, 0, 0, SMTP_BODY_7BIT, 0, SMTP_RET_NONE, ""},
        {S("FROM:<a@b.test> AUTH="), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> AUTH=a+0A"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> AUTH=<> AUTH=<>"), E_PARAM, 0, 0, 0, 0, 0, ""},
        /* unknown and malformed keywords */
        {S("FROM:<a@b.test> FOO=bar"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> XFORWARD"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> MT-PRIORITY=3"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> NOTIFY=NEVER"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> =x"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> -X=1"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> SI_ZE=1"), E_PARAM, 0, 0, 0, 0, 0, ""},
        {S("FROM:<a@b.test> S\xc3\xa9=1"), E_PARAM, 0, 0, 0, 0, 0, ""},
        /* path errors are reported before parameter errors */
        {S("FROM:<a@b.test.> FOO=bar"), E_PATH, 0, 0, 0, 0, 0, ""},
        /* SMTPUTF8 anywhere on the line allows the UTF-8 path */
        {S("FROM:<\xc3\xa9@b.test> SIZE=1 SMTPUTF8"), OK, 1, 1, SMTP_BODY_7BIT, 1, SMTP_RET_NONE, ""},
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        struct smtp_mail_args m;
        enum smtp_cmd_err rc = mail(t[i].in, t[i].len, &m);
        if (rc != t[i].err)
            fail_case("mail params", i, t[i].in, t[i].len);
        assert_int_equal(rc, t[i].err);
        if (rc != OK)
            continue;
        assert_true(m.size == t[i].size);
        assert_int_equal(m.has_size, t[i].has_size);
        assert_int_equal(m.body, t[i].body);
        assert_int_equal(m.smtputf8, t[i].smtputf8);
        assert_int_equal(m.ret, t[i].ret);
        assert_string_equal(m.envid, t[i].envid);
    }
}

/* ---------------------------------------------------------------- RCPT */

static void test_rcpt(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        bool smtputf8;
        enum smtp_cmd_err err;
        const char *addr, *local, *domain;
        bool literal, route;
        unsigned notify;
        const char *orcpt;
    } t[] = {
        {S("TO:<user@example.test>"), 0, OK, "user@example.test", "user", "example.test", 0, 0, 0, ""},
        {S("to: <User@Example.TEST>"), 0, OK, "User@example.test", "User", "example.test", 0, 0, 0, ""},
        {S("TO:<postmaster>"), 0, OK, "postmaster", "postmaster", "", 0, 0, 0, ""},
        {S("TO:<PostMaster>"), 0, OK, "PostMaster", "PostMaster", "", 0, 0, 0, ""},
        {S("TO:<postmaster@example.test>"), 0, OK, "postmaster@example.test", "postmaster", "example.test", 0,
         0, 0, ""},
        {S("TO:<j\xc3\xb6rg@x.test>"), 1, OK, "j\xc3\xb6rg@x.test", "j\xc3\xb6rg", "x.test", 0, 0, 0, ""},
        {S("TO:<user@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b"), 0, OK, "user@example.test",
         "user", "example.test", 0, 0, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE, "rfc822;a@b"},
        {S("TO:<user@example.test> NOTIFY=NEVER"), 0, OK, "user@example.test", "user", "example.test", 0, 0,
         SMTP_NOTIFY_NEVER, ""},
        {S("TO:<user@example.test> notify=success,failure,delay"), 0, OK, "user@example.test", "user",
         "example.test", 0, 0, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY, ""},
        {S("TO:<user@example.test> NOTIFY=DELAY,DELAY"), 0, OK, "user@example.test", "user", "example.test",
         0, 0, SMTP_NOTIFY_DELAY, ""},
        {S("TO:<user@example.test> ORCPT=rfc822;user+40example.test"), 0, OK, "user@example.test", "user",
         "example.test", 0, 0, 0, "rfc822;user+40example.test"},
        {S("TO:<user@example.test> ORCPT=utf-8;j\xc3\xb6rg@x.test"), 1, OK, "user@example.test", "user",
         "example.test", 0, 0, 0, "utf-8;j\xc3\xb6rg@x.test"},
        /* relay tricks: refused, or parsed and left to the relay check */
        {S("TO:<victim%evil.test@protected.test>"), 0, E_ROUTE, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<victim%evil.test>"), 0, E_ROUTE, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<evil.test!victim@protected.test>"), 0, E_ROUTE, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<victim!evil@protected.test>"), 0, E_ROUTE, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<\"victim@evil.test\"@protected.test>"), 0, E_ROUTE, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<\"victim\\@evil.test\"@protected.test>"), 0, E_ROUTE, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<\"victim%evil\"@protected.test>"), 0, E_ROUTE, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<\"victim!evil\"@protected.test>"), 0, E_ROUTE, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<\"@evil.test:victim\"@protected.test>"), 0, E_ROUTE, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<victim@evil.test@protected.test>"), 0, E_ROUTE, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<v\xef\xbc\x85"
           "evil.test@protected.test>"),
         1, E_ROUTE, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<v\xef\xbc\xa0"
           "evil.test@protected.test>"),
         1, E_ROUTE, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<v\xef\xbc\x81"
           "evil@protected.test>"),
         1, E_ROUTE, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<\"v\xef\xb9\xab"
           "evil\"@protected.test>"),
         1, E_ROUTE, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<@protected.test:victim@evil.test>"), 0, OK, "victim@evil.test", "victim", "evil.test", 0, 1,
         0, ""},
        {S("TO:<@protected.test,@relay.test:victim@evil.test>"), 0, OK, "victim@evil.test", "victim",
         "evil.test", 0, 1, 0, ""},
        {S("TO:<victim@protected.test.>"), 0, E_PATH, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<victim@protected.test..>"), 0, E_PATH, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<victim@[192.0.2.1]>"), 0, OK, "victim@[192.0.2.1]", "victim", "[192.0.2.1]", 1, 0, 0, ""},
        {S("TO:<victim@[IPv6:::1]>"), 0, OK, "victim@[IPv6:::1]", "victim", "[IPv6:::1]", 1, 0, 0, ""},
        {S("TO:<victim@[127.000.0.1]>"), 0, E_PATH, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<victim@protected.test\xe3\x80\x82"
           "evil.test>"),
         1, E_PATH, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<victim@protected.test\xef\xbd\xa1"
           "evil.test>"),
         1, E_PATH, NULL, NULL, NULL, 0, 0, 0, NULL},
        /* paths */
        {S("TO:<>"), 0, E_PATH, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<user>"), 0, E_PATH, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<\"postmaster\">"), 0, E_PATH, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<@a.test:postmaster>"), 0, E_PATH, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<@a.test,b.test:user@c.test>"), 0, E_PATH, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<@a.test.:user@c.test>"), 0, E_PATH, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<@a.test;user@c.test>"), 0, E_PATH, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<@:user@c.test>"), 0, E_PATH, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<@a.test,:user@c.test>"), 0, E_PATH, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:user@example.test"), 0, E_PATH, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:"), 0, E_PATH, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<user@example.test"), 0, E_PATH, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO <user@example.test>"), 0, E_ARGS, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("FROM:<user@example.test>"), 0, E_ARGS, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S(""), 0, E_ARGS, NULL, NULL, NULL, 0, 0, 0, NULL},
        /* 8-bit, NUL */
        {S("TO:<j\xc3\xb6rg@x.test>"), 0, E_UTF8, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<jorg@b\xc3\xbc"
           "cher.test>"),
         0, E_UTF8, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<j\xc3\xb6rg\xc3@x.test>"), 1, E_PATH, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<a@x.test\0>"), 0, E_NUL, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<a@x.test>\n"), 0, E_NUL, NULL, NULL, NULL, 0, 0, 0, NULL},
        /* parameters */
        {S("TO:<user@example.test> NOTIFY=NEVER,SUCCESS"), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<user@example.test> NOTIFY=FAILURE,NEVER"), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<user@example.test> NOTIFY="), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<user@example.test> NOTIFY"), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<user@example.test> NOTIFY=SUCCESS,"), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<user@example.test> NOTIFY=,SUCCESS"), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<user@example.test> NOTIFY=SUCCESS,,DELAY"), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<user@example.test> NOTIFY=ALWAYS"), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<user@example.test> NOTIFY=SUCCESS NOTIFY=DELAY"), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0,
         NULL},
        {S("TO:<user@example.test> ORCPT=rfc822"), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<user@example.test> ORCPT=;a@b"), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<user@example.test> ORCPT=rfc822;"), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<user@example.test> ORCPT=rfc822;a+0Db"), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<user@example.test> ORCPT=rfc822;a+4"), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<user@example.test> ORCPT=rf(c;a"), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<user@example.test> ORCPT=utf-8;j\xc3\xb6rg@x.test"), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0,
         NULL},
        {S("TO:<user@example.test> ORCPT=rfc822;j\xc3\xb6rg@x.test"), 1, E_PARAM, NULL, NULL, NULL, 0, 0, 0,
         NULL},
        {S("TO:<user@example.test> ORCPT=utf-8;j\xc3@x.test"), 1, E_PARAM, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<user@example.test> ORCPT=rfc822;a ORCPT=rfc822;b"), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0,
         NULL},
        {S("TO:<user@example.test> SIZE=10"), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0, NULL},
        {S("TO:<user@example.test> SMTPUTF8"), 0, E_PARAM, NULL, NULL, NULL, 0, 0, 0, NULL},
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        struct smtp_rcpt_args r;
        enum smtp_cmd_err rc = rcpt(t[i].in, t[i].len, t[i].smtputf8, &r);
        if (rc != t[i].err || (rc == OK && strcmp(r.path.addr, t[i].addr) != 0))
            fail_case("rcpt", i, t[i].in, t[i].len);
        assert_int_equal(rc, t[i].err);
        if (rc != OK)
            continue;
        assert_string_equal(r.path.addr, t[i].addr);
        assert_string_equal(r.path.local, t[i].local);
        assert_string_equal(r.path.domain, t[i].domain);
        assert_int_equal(r.path.domain_literal, t[i].literal);
        assert_int_equal(r.path.had_route, t[i].route);
        assert_false(r.path.null);
        assert_int_equal(r.notify, t[i].notify);
        assert_string_equal(r.orcpt, t[i].orcpt);
    }
}

/* ---------------------------------------------------------------- limits */

static void test_limits(void **state)
{
    (void)state;
    char buf[1200], dom[600], val[600];
    struct smtp_mail_args m;
    struct smtp_rcpt_args r;
    char helo[SMTP_DOMAIN_MAX + 1];
    int n;

    /* local part: 63, 64 fine, 65 too long; quoted counts its quotes */
    for (size_t len = 63; len <= 65; len++) {
        memset(val, 'l', len);
        val[len] = '\0';
        n = snprintf(buf, sizeof buf, "FROM:<%s@x.test>", val);
        assert_int_equal(mail(buf, (size_t)n, &m), len <= SMTP_LOCAL_MAX ? OK : E_LONG);
        if (len <= SMTP_LOCAL_MAX)
            assert_int_equal(strlen(m.path.local), len);
        val[0] = '"';
        val[len - 1] = '"';
        n = snprintf(buf, sizeof buf, "TO:<%s@x.test>", val);
        assert_int_equal(rcpt(buf, (size_t)n, false, &r), len <= SMTP_LOCAL_MAX ? OK : E_LONG);
    }
    /* path (between the brackets): 255, 256 fine, 257 too long; with "a@"
     * that makes the domain 253, 254, 255 */
    for (size_t len = 255; len <= 257; len++) {
        make_domain(dom, len - 2);
        n = snprintf(buf, sizeof buf, "FROM:<a@%s>", dom);
        assert_int_equal(mail(buf, (size_t)n, &m), len <= SMTP_PATH_MAX ? OK : E_LONG);
        if (len <= SMTP_PATH_MAX) {
            assert_int_equal(strlen(m.path.addr), len);
            assert_string_equal(m.path.domain, dom);
        }
        n = snprintf(buf, sizeof buf, "TO:<a@%s> NOTIFY=NEVER", dom);
        assert_int_equal(rcpt(buf, (size_t)n, false, &r), len <= SMTP_PATH_MAX ? OK : E_LONG);
    }
    /* the route counts towards the path */
    make_domain(dom, 240);
    n = snprintf(buf, sizeof buf, "TO:<@%s:abcdefg@x.test>", dom);
    assert_int_equal(n, 4 + 256 + 1);
    assert_int_equal(rcpt(buf, (size_t)n, false, &r), OK);
    assert_string_equal(r.path.addr, "abcdefg@x.test");
    n = snprintf(buf, sizeof buf, "TO:<@%s:abcdefgh@x.test>", dom);
    assert_int_equal(rcpt(buf, (size_t)n, false, &r), E_LONG);
    /* a long path is refused whatever it holds */
    memset(val, '%', 300);
    val[300] = '\0';
    n = snprintf(buf, sizeof buf, "FROM:<%s>", val);
    assert_int_equal(mail(buf, (size_t)n, &m), E_LONG);
    /* domain: 254, 255 fine, 256 too long (HELO, where the path limit does not apply) */
    for (size_t len = 254; len <= 256; len++) {
        make_domain(dom, len);
        assert_int_equal(smtp_parse_helo(dom, len, helo, sizeof helo), len <= SMTP_DOMAIN_MAX ? OK : E_ARGS);
        if (len <= SMTP_DOMAIN_MAX)
            assert_string_equal(helo, dom);
    }
    /* labels: 63 fine, 64 not */
    for (size_t len = 62; len <= 64; len++) {
        memset(val, 'd', len);
        val[len] = '\0';
        n = snprintf(buf, sizeof buf, "FROM:<a@%s.test>", val);
        assert_int_equal(mail(buf, (size_t)n, &m), len <= 63 ? OK : E_PATH);
        assert_int_equal(smtp_parse_helo(val, len, helo, sizeof helo), len <= 63 ? OK : E_ARGS);
    }
    /* ENVID 99, 100 fine, 101 not */
    for (size_t len = 99; len <= 101; len++) {
        memset(val, 'e', len);
        val[len] = '\0';
        n = snprintf(buf, sizeof buf, "FROM:<a@b.test> ENVID=%s", val);
        assert_int_equal(mail(buf, (size_t)n, &m), len <= SMTP_ENVID_MAX ? OK : E_PARAM);
        if (len <= SMTP_ENVID_MAX)
            assert_string_equal(m.envid, val);
    }
    /* ORCPT 499, 500 fine, 501 not */
    for (size_t len = 499; len <= 501; len++) {
        memcpy(val, "rfc822;", 7);
        memset(val + 7, 'o', len - 7);
        val[len] = '\0';
        n = snprintf(buf, sizeof buf, "TO:<a@b.test> ORCPT=%s", val);
        assert_int_equal(rcpt(buf, (size_t)n, false, &r), len <= SMTP_ORCPT_MAX ? OK : E_PARAM);
        if (len <= SMTP_ORCPT_MAX)
            assert_string_equal(r.orcpt, val);
    }
}

/* ---------------------------------------------------------------- hostile bytes, everywhere */

static const struct {
    const char *in;
    size_t len;
    bool rcpt;
} good_args[] = {
    {S("FROM:<user@example.test> SIZE=10 BODY=8BITMIME RET=HDRS ENVID=x"), 0},
    {S("FROM:<\"john doe\"@[192.0.2.1]> AUTH=<>"), 0},
    {S("FROM:<@a.test,@b.test:user@c.test>"), 0},
    {S("FROM:<>"), 0},
    {S("TO:<user@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b"), 1},
    {S("TO:<postmaster>"), 1},
    {S("TO:<user@[IPv6:2001:db8::1]>"), 1},
};

static enum smtp_cmd_err run_good(size_t i, const char *s, size_t n)
{
    struct smtp_mail_args m;
    struct smtp_rcpt_args r;
    return good_args[i].rcpt ? rcpt(s, n, false, &r) : mail(s, n, &m);
}

/* truncated anywhere: no over-read, and cut before '>' is always an error */
static void test_truncated(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(good_args); i++) {
        const char *gt = memchr(good_args[i].in, '>', good_args[i].len);
        assert_non_null(gt);
        assert_int_equal(run_good(i, good_args[i].in, good_args[i].len), OK);
        for (size_t k = 0; k < good_args[i].len; k++) {
            enum smtp_cmd_err rc = run_good(i, good_args[i].in, k);
            if (k <= (size_t)(gt - good_args[i].in))
                assert_int_not_equal(rc, OK);
        }
    }
}

/* a NUL, CR, LF or other control byte at any position gives ERR_NUL; an
 * invalid 8-bit byte at any position is never accepted */
static void test_hostile_bytes(void **state)
{
    (void)state;
    static const char ctl[] = {'\0', '\r', '\n', '\x01', '\x1b', '\x7f'};
    char buf[256];
    for (size_t i = 0; i < NELEM(good_args); i++) {
        size_t n = good_args[i].len;
        assert_true(n < sizeof buf);
        for (size_t pos = 0; pos <= n; pos++) {
            for (size_t c = 0; c < NELEM(ctl); c++) {
                memcpy(buf, good_args[i].in, pos);
                buf[pos] = ctl[c];
                memcpy(buf + pos + 1, good_args[i].in + pos, n - pos);
                assert_int_equal(run_good(i, buf, n + 1), E_NUL);
                buf[pos] = '\xff';
                assert_int_not_equal(run_good(i, buf, n + 1), OK);
            }
        }
    }
    /* the other parsers too */
    char out[64];
    uint64_t size;
    bool last;
    assert_int_equal(smtp_parse_helo(S("host\r"), out, sizeof out), E_NUL);
    assert_int_equal(smtp_parse_helo(S("ho\0st"), out, sizeof out), E_NUL);
    assert_int_equal(smtp_parse_bdat(S("10\n"), 100, &size, &last), E_NUL);
    assert_int_equal(smtp_parse_bdat(S("10 LAST\0"), 100, &size, &last), E_NUL);
}

/* ---------------------------------------------------------------- BDAT, HELO */

static void test_bdat(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        uint64_t max;
        enum smtp_cmd_err err;
        uint64_t size;
        bool last;
    } t[] = {
        {S("100"), 1000, OK, 100, 0},
        {S("100 LAST"), 1000, OK, 100, 1},
        {S("100 last"), 1000, OK, 100, 1},
        {S("0 LAST"), 1000, OK, 0, 1},
        {S("0"), 1000, OK, 0, 0},
        {S("  100   LAST  "), 1000, OK, 100, 1},
        {S("1000"), 1000, OK, 1000, 0},
        {S("1001"), 1000, E_ARGS, 0, 0},
        {S("18446744073709551615 LAST"), UINT64_MAX, OK, UINT64_MAX, 1},
        {S("18446744073709551616"), UINT64_MAX, E_ARGS, 0, 0},
        {S(""), 1000, E_ARGS, 0, 0},
        {S("  "), 1000, E_ARGS, 0, 0},
        {S("LAST"), 1000, E_ARGS, 0, 0},
        {S("100 LAST x"), 1000, E_ARGS, 0, 0},
        {S("100 LAST LAST"), 1000, E_ARGS, 0, 0},
        {S("100 FIRST"), 1000, E_ARGS, 0, 0},
        {S("100LAST"), 1000, E_ARGS, 0, 0},
        {S("-1"), 1000, E_ARGS, 0, 0},
        {S("+1"), 1000, E_ARGS, 0, 0},
        {S("1e3"), 1000, E_ARGS, 0, 0},
        {S("0x10"), 1000, E_ARGS, 0, 0},
        {S("10\xc2\xa0LAST"), 1000, E_ARGS, 0, 0},
        {S("10\0"), 1000, E_NUL, 0, 0},
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        uint64_t size = 99;
        bool last = true;
        char *p = exact(t[i].in, t[i].len);
        enum smtp_cmd_err rc = smtp_parse_bdat(p, t[i].len, t[i].max, &size, &last);
        free(p);
        if (rc != t[i].err)
            fail_case("bdat", i, t[i].in, t[i].len);
        assert_int_equal(rc, t[i].err);
        if (rc == OK) {
            assert_true(size == t[i].size);
            assert_int_equal(last, t[i].last);
        }
    }
}

static void test_helo(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        enum smtp_cmd_err err;
        const char *out;
    } t[] = {
        {S("client.example.test"), OK, "client.example.test"},
        {S("Client.Example.TEST"), OK, "Client.Example.TEST"},
        {S("localhost"), OK, "localhost"},
        {S("[192.0.2.1]"), OK, "[192.0.2.1]"},
        {S("[IPv6:2001:db8::1]"), OK, "[IPv6:2001:db8::1]"},
        {S("192.0.2.1"), OK, "192.0.2.1"},
        {S("my_host.local"), OK, "my_host.local"},
        {S("host.example."), OK, "host.example."},
        {S("  host  "), OK, "host"},
        {S(""), E_ARGS, ""},
        {S("   "), E_ARGS, ""},
        {S("host name"), E_ARGS, ""},
        {S("host..test"), E_ARGS, ""},
        {S(".host"), E_ARGS, ""},
        {S("."), E_ARGS, ""},
        {S("host.test.."), E_ARGS, ""},
        {S("[1.2.3]"), E_ARGS, ""},
        {S("[1.2.3.4"), E_ARGS, ""},
        {S("[tag:x]"), E_ARGS, ""},
        {S("[]"), E_ARGS, ""},
        {S("h\xc3\xb6st"), E_ARGS, ""},
        {S("x<script>"), E_ARGS, ""},
        {S("host\0"), E_NUL, ""},
        {S("host\r\nMAIL FROM:<a@b>"), E_NUL, ""},
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        char out[SMTP_DOMAIN_MAX + 1];
        char *p = exact(t[i].in, t[i].len);
        enum smtp_cmd_err rc = smtp_parse_helo(p, t[i].len, out, sizeof out);
        free(p);
        if (rc != t[i].err)
            fail_case("helo", i, t[i].in, t[i].len);
        assert_int_equal(rc, t[i].err);
        assert_string_equal(out, t[i].out);
    }
    /* truncated into a small buffer; a zero-size buffer is not written */
    char small[5] = "zzzz";
    assert_int_equal(smtp_parse_helo(S("client.test"), small, sizeof small), OK);
    assert_string_equal(small, "clie");
    assert_int_equal(smtp_parse_helo(S("client.test"), small, 0), OK);
    assert_string_equal(small, "clie");
}

/* ---------------------------------------------------------------- replies */

static void test_err_reply(void **state)
{
    (void)state;
    static const struct {
        enum smtp_cmd_err err;
        const char *reply;
    } t[] = {
        {SMTP_CMD_ERR_SYNTAX, "500 5.5.2 Syntax error, command unrecognized"},
        {SMTP_CMD_ERR_ARGS, "501 5.5.4 Syntax error in parameters or arguments"},
        {SMTP_CMD_ERR_PATH_SYNTAX, "501 5.1.3 Bad address syntax"},
        {SMTP_CMD_ERR_PATH_TOO_LONG, "501 5.1.3 Address too long"},
        {SMTP_CMD_ERR_PARAM, "555 5.5.4 Unsupported or malformed parameter"},
        {SMTP_CMD_ERR_UTF8, "553 5.6.7 Non-ASCII address requires SMTPUTF8"},
        {SMTP_CMD_ERR_ROUTING, "550 5.7.1 Sender-specified routing is not allowed"},
        {SMTP_CMD_ERR_NUL, "500 5.5.2 Invalid character in command"},
        {SMTP_CMD_OK, "250 2.0.0 Ok"},
        {(enum smtp_cmd_err)99, "500 5.5.2 Syntax error"},
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        const char *r = smtp_cmd_err_reply(t[i].err);
        assert_string_equal(r, t[i].reply);
        /* every reply parses as a final reply line with a matching enhanced code */
        int code;
        bool last;
        const char *text;
        size_t tl;
        char enh[16];
        assert_int_equal(smtp_reply_parse_line(r, strlen(r), &code, &last, &text, &tl), 0);
        assert_true(last);
        assert_int_equal(smtp_reply_enhanced(code, text, tl, enh, sizeof enh), 5);
    }
}

static void test_reply_parse(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        int rc, code;
        bool last;
        const char *text;
    } t[] = {
        {S("250-PIPELINING"), 0, 250, 0, "PIPELINING"},
        {S("250 OK"), 0, 250, 1, "OK"},
        {S("250"), 0, 250, 1, ""},
        {S("421"), 0, 421, 1, ""},
        {S("250-"), 0, 250, 0, ""},
        {S("250 "), 0, 250, 1, ""},
        {S("550 5.1.1 No such user"), 0, 550, 1, "5.1.1 No such user"},
        {S("220 mx.example.test ESMTP"), 0, 220, 1, "mx.example.test ESMTP"},
        {S("554 caf\xc3\xa9\tx"), 0, 554, 1, "caf\xc3\xa9\tx"},
        {S("559 x"), 0, 559, 1, "x"},
        {S("599 x"), -1, 0, 0, NULL}, /* RFC 5321 4.2: second digit 0..5 */
        {S(""), -1, 0, 0, NULL},
        {S("25"), -1, 0, 0, NULL},
        {S("2500"), -1, 0, 0, NULL},
        {S("25a OK"), -1, 0, 0, NULL},
        {S("abc"), -1, 0, 0, NULL},
        {S("150 x"), -1, 0, 0, NULL},
        {S("199 x"), -1, 0, 0, NULL},
        {S("650 x"), -1, 0, 0, NULL},
        {S("260 x"), -1, 0, 0, NULL},
        {S("250x"), -1, 0, 0, NULL},
        {S("250\tOK"), -1, 0, 0, NULL},
        {S(" 250 OK"), -1, 0, 0, NULL},
        {S("250 OK\r"), -1, 0, 0, NULL},
        {S("250 O\0K"), -1, 0, 0, NULL},
        {S("250-OK\n250 OK"), -1, 0, 0, NULL},
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        int code = -7;
        bool last = false;
        const char *text = NULL;
        size_t tl = 0;
        char *p = exact(t[i].in, t[i].len);
        int rc = smtp_reply_parse_line(p, t[i].len, &code, &last, &text, &tl);
        if (rc != t[i].rc)
            fail_case("reply", i, t[i].in, t[i].len);
        assert_int_equal(rc, t[i].rc);
        if (rc == 0) {
            assert_int_equal(code, t[i].code);
            assert_int_equal(last, t[i].last);
            assert_int_equal(tl, strlen(t[i].text));
            assert_memory_equal(text, t[i].text, tl);
            assert_true(text >= p && text + tl == p + t[i].len);
        }
        free(p);
    }
}

static void test_reply_enhanced(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *text;
        size_t outsz, ret;
        const char *out;
    } t[] = {
        {550, "5.1.1 No such user", 16, 5, "5.1.1"},
        {250, "2.0.0", 16, 5, "2.0.0"},
        {451, "4.7.1 Try again later", 16, 5, "4.7.1"},
        {550, "5.123.456 x", 16, 9, "5.123.456"},
        {550, "5.1.1", 6, 5, "5.1.1"},
        {550, "5.1.1", 5, 0, NULL},
        {550, "5.1.1", 0, 0, NULL},
        {550, "4.1.1 class differs", 16, 0, NULL},
        {354, "3.0.0 no class 3", 16, 0, NULL},
        {550, "5.1 x", 16, 0, NULL},
        {550, "5.1.1x", 16, 0, NULL},
        {550, "5.1234.1 x", 16, 0, NULL},
        {550, "5.1.1234 x", 16, 0, NULL},
        {550, "5..1 x", 16, 0, NULL},
        {550, "5.1. x", 16, 0, NULL},
        {550, "5.1.1\tx", 16, 0, NULL},
        {550, "No such user", 16, 0, NULL},
        {550, "", 16, 0, NULL},
        {199, "1.0.0", 16, 0, NULL},
        {600, "6.0.0", 16, 0, NULL},
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        char out[16] = "unchanged";
        size_t tl = strlen(t[i].text);
        char *p = exact(t[i].text, tl);
        size_t ret = smtp_reply_enhanced(t[i].code, p, tl, out, t[i].outsz);
        free(p);
        if (ret != t[i].ret)
            fail_case("enhanced", i, t[i].text, tl);
        assert_int_equal(ret, t[i].ret);
        if (ret)
            assert_string_equal(out, t[i].out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmd_parse),      cmocka_unit_test(test_mail_paths),
        cmocka_unit_test(test_mail_parts),     cmocka_unit_test(test_mail_params),
        cmocka_unit_test(test_rcpt),           cmocka_unit_test(test_limits),
        cmocka_unit_test(test_truncated),      cmocka_unit_test(test_hostile_bytes),
        cmocka_unit_test(test_bdat),           cmocka_unit_test(test_helo),
        cmocka_unit_test(test_err_reply),      cmocka_unit_test(test_reply_parse),
        cmocka_unit_test(test_reply_enhanced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
