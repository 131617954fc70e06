/* Unit tests of src/dns: the pure helpers and the answer parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/core.h"
#include "dns/dns.h"

static void test_token(void **state)
{
    (void)state;
    assert_true(dns_token_check("0123456789abcdef0123456789abcdef"));
    assert_false(dns_token_check("0123456789ABCDEF0123456789abcdef")); /* upper case */
    assert_false(dns_token_check("0123456789abcdef0123456789abcde"));  /* 31 */
    assert_false(dns_token_check("0123456789abcdef0123456789abcdef0")); /* 33 */
    assert_false(dns_token_check(""));
    assert_false(dns_token_check("0123456789abcdef0123456789abcdeg"));
}

static void test_mx_host(void **state)
{
    (void)state;
    char out[300];
    assert_int_equal(dns_mx_host("Acme", "In.Moat.Example.", out, sizeof out), 0);
    assert_string_equal(out, "acme.in.moat.example");
    char small[8];
    assert_int_equal(dns_mx_host("acme", "in.moat.example", small, sizeof small), -1);
    char big[64];
    memset(big, 'a', 63);
    big[63] = '\0';
    char sd[200];
    memset(sd, 'b', 199);
    sd[199] = '\0';
    assert_int_equal(dns_mx_host(big, sd, out, sizeof out), -1); /* over 253 */
}

static void test_txt_match(void **state)
{
    (void)state;
    const char *tok = "0123456789abcdef0123456789abcdef";
    char *none[] = {"v=spf1 -all", "google-site-verification=x"};
    assert_int_equal(dns_txt_match(none, 2, tok), 0);
    assert_int_equal(dns_txt_match(NULL, 0, tok), 0);
    char *ok[] = {"v=spf1 -all", "moat-verification=0123456789abcdef0123456789abcdef"};
    assert_int_equal(dns_txt_match(ok, 2, tok), 1);
    char *blanks[] = {"  MOAT-Verification= 0123456789abcdef0123456789abcdef "};
    assert_int_equal(dns_txt_match(blanks, 1, tok), 1);
    char *other[] = {"moat-verification=ffffffffffffffffffffffffffffffff"};
    assert_int_equal(dns_txt_match(other, 1, tok), 2);
    char *longer[] = {"moat-verification=0123456789abcdef0123456789abcdef0"};
    assert_int_equal(dns_txt_match(longer, 1, tok), 2);
    char *upper[] = {"moat-verification=0123456789ABCDEF0123456789ABCDEF"};
    assert_int_equal(dns_txt_match(upper, 1, tok), 2); /* the token is exact */
    char *prefix_only[] = {"moat-verification="};
    assert_int_equal(dns_txt_match(prefix_only, 1, tok), 2);
    assert_int_equal(dns_txt_match(prefix_only, 1, ""), 2); /* an empty token never matches */
}

static void test_mx_match(void **state)
{
    (void)state;
    struct dns_mx mx[2] = {{"mx1.example.test", 10}, {"acme.in.moat.test", 20}};
    assert_true(dns_mx_match(mx, 2, "acme.in.moat.test"));
    assert_true(dns_mx_match(mx, 2, "ACME.in.moat.test."));
    assert_false(dns_mx_match(mx, 2, "acme.in.moat"));
    assert_false(dns_mx_match(mx, 2, "cme.in.moat.test"));
    assert_false(dns_mx_match(mx, 1, "acme.in.moat.test"));
    assert_false(dns_mx_match(mx, 2, ""));
}

static uint32_t seq_state;
static uint32_t seq_rnd(void)
{
    return seq_state++;
}

static void test_mx_sort(void **state)
{
    (void)state;
    struct dns_mx mx[5] = {{"c", 30}, {"a1", 10}, {"b", 20}, {"a2", 10}, {"z", 0}};
    dns_mx_sort(mx, 5, NULL);
    assert_string_equal(mx[0].host, "z");
    assert_string_equal(mx[1].host, "a1"); /* stable without rnd */
    assert_string_equal(mx[2].host, "a2");
    assert_string_equal(mx[3].host, "b");
    assert_string_equal(mx[4].host, "c");
    /* with a random source, equal preferences stay together, in some order */
    for (seq_state = 0; seq_state < 10;) {
        struct dns_mx m2[4] = {{"x", 5}, {"y", 5}, {"w", 1}, {"v", 5}};
        dns_mx_sort(m2, 4, seq_rnd);
        assert_string_equal(m2[0].host, "w");
        for (int i = 1; i < 4; i++)
            assert_int_equal(m2[i].preference, 5);
    }
    dns_mx_sort(mx, 0, seq_rnd);
}

static void test_cidr(void **state)
{
    (void)state;
    static const struct {
        const char *cidr, *ip;
        bool match;
    } cases[] = {
        {"192.0.2.0/24", "192.0.2.7", true},
        {"192.0.2.0/24", "192.0.3.7", false},
        {"192.0.2.7", "192.0.2.7", true},
        {"192.0.2.7", "192.0.2.8", false},
        {"192.0.2.7/32", "192.0.2.7", true},
        {"0.0.0.0/0", "203.0.113.1", true},
        {"192.0.2.128/25", "192.0.2.127", false},
        {"192.0.2.128/25", "192.0.2.200", true},
        {"10.0.0.0/9", "10.127.255.255", true},
        {"10.0.0.0/9", "10.128.0.0", false},
        {"192.0.2.0/24", "::ffff:192.0.2.9", true},
        {"2001:db8::/32", "2001:db8:1::5", true},
        {"2001:db8::/32", "2001:db9::5", false},
        {"2001:db8::/32", "192.0.2.1", false},
        {"192.0.2.0/24", "2001:db8::1", false},
        {"192.0.2.0/33", "192.0.2.1", false},
        {"192.0.2.0/", "192.0.2.1", false},
        {"192.0.2.0/2x", "192.0.2.1", false},
        {"", "192.0.2.1", false},
        {"192.0.2.0/24", "", false},
        {"garbage", "192.0.2.1", false},
        {"::/0", "::1", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (core_cidr_match(cases[i].cidr, cases[i].ip) != cases[i].match)
            fail_msg("%s vs %s: expected %d", cases[i].cidr, cases[i].ip, cases[i].match);
}

static void test_backoff(void **state)
{
    (void)state;
    assert_true(dns_backoff(0, 60, 86400) == 60);
    assert_true(dns_backoff(1, 60, 86400) == 120);
    assert_true(dns_backoff(3, 60, 86400) == 480);
    assert_true(dns_backoff(30, 60, 86400) == 86400);
    assert_true(dns_backoff(1000000, 60, 86400) == 86400);
    assert_true(dns_backoff(2, 60, 100) == 100);
}

/* ---------------------------------------------------------------- wire answers */
struct pkt {
    unsigned char b[1024];
    size_t n;
};

static void put(struct pkt *p, const void *d, size_t n)
{
    assert_true(p->n + n <= sizeof p->b);
    memcpy(p->b + p->n, d, n);
    p->n += n;
}
static void put16(struct pkt *p, unsigned v)
{
    unsigned char x[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    put(p, x, 2);
}
static void put_name(struct pkt *p, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        unsigned char c = (unsigned char)l;
        put(p, &c, 1);
        put(p, name, l);
        name += l;
        if (*name == '.')
            name++;
    }
    unsigned char z = 0;
    put(p, &z, 1);
}
/* answer header + question for name/type with ancount answers */
static void begin(struct pkt *p, const char *name, unsigned type, unsigned ancount)
{
    p->n = 0;
    put16(p, 0x1234);
    put16(p, 0x8400); /* response, authoritative, NOERROR */
    put16(p, 1);
    put16(p, ancount);
    put16(p, 0);
    put16(p, 0);
    put_name(p, name);
    put16(p, type);
    put16(p, 1);
}
static void rr_head(struct pkt *p, unsigned type, unsigned rdlen)
{
    put16(p, 0xc00c); /* the question's name */
    put16(p, type);
    put16(p, 1);
    put16(p, 0);
    put16(p, 60);
    put16(p, rdlen);
}
static void add_mx(struct pkt *p, unsigned pref, const char *host)
{
    struct pkt t = {.n = 0};
    put_name(&t, host);
    rr_head(p, DNS_T_MX, 2 + (unsigned)t.n);
    put16(p, pref);
    put(p, t.b, t.n);
}

static void test_parse_mx(void **state)
{
    (void)state;
    struct pkt p;
    struct dns_answer a;
    memset(&a, 0, sizeof a);
    begin(&p, "example.test", DNS_T_MX, 3);
    add_mx(&p, 20, "MX2.Example.Test");
    add_mx(&p, 10, "mx1.example.test");
    add_mx(&p, 30, "bad_host!.test");
    assert_int_equal(dns_answer_parse(DNS_T_MX, p.b, p.n, &a), DNS_RESULT_OK);
    assert_int_equal(a.nmx, 2);
    dns_mx_sort(a.mx, a.nmx, NULL);
    assert_string_equal(a.mx[0].host, "mx1.example.test");
    assert_int_equal(a.mx[0].preference, 10);
    assert_string_equal(a.mx[1].host, "mx2.example.test");
    assert_false(a.null_mx);
    dns_answer_clear(&a);
    /* RFC 7505 null MX */
    begin(&p, "nomail.test", DNS_T_MX, 1);
    add_mx(&p, 0, "");
    assert_int_equal(dns_answer_parse(DNS_T_MX, p.b, p.n, &a), DNS_RESULT_OK);
    assert_true(a.null_mx);
    assert_int_equal(a.nmx, 0);
    dns_answer_clear(&a);
    /* no answer records: NODATA */
    begin(&p, "empty.test", DNS_T_MX, 0);
    assert_int_equal(dns_answer_parse(DNS_T_MX, p.b, p.n, &a), DNS_RESULT_NODATA);
    dns_answer_clear(&a);
    /* only unusable hosts: NODATA, not OK */
    begin(&p, "weird.test", DNS_T_MX, 1);
    add_mx(&p, 10, "in valid.test");
    assert_int_equal(dns_answer_parse(DNS_T_MX, p.b, p.n, &a), DNS_RESULT_NODATA);
    dns_answer_clear(&a);
    /* truncated: a temporary failure, never "not found" */
    begin(&p, "example.test", DNS_T_MX, 1);
    add_mx(&p, 10, "mx1.example.test");
    for (size_t cut = 0; cut < p.n; cut++) {
        enum dns_result r = dns_answer_parse(DNS_T_MX, p.b, cut, &a);
        assert_true(r == DNS_RESULT_TEMP || r == DNS_RESULT_NODATA);
        assert_true(r != DNS_RESULT_NODATA || cut >= 12);
        dns_answer_clear(&a);
    }
    assert_int_equal(dns_answer_parse(DNS_T_MX, NULL, 0, &a), DNS_RESULT_TEMP);
    dns_answer_clear(&a);
}

static void test_parse_txt(void **state)
{
    (void)state;
    struct pkt p;
    struct dns_answer a;
    memset(&a, 0, sizeof a);
    begin(&p, "example.test", DNS_T_TXT, 2);
    /* one record of two strings, joined */
    rr_head(&p, DNS_T_TXT, 1 + 18 + 1 + 32);
    unsigned char l = 18;
    put(&p, &l, 1);
    put(&p, "moat-verification=", 18);
    l = 32;
    put(&p, &l, 1);
    put(&p, "0123456789abcdef0123456789abcdef", 32);
    rr_head(&p, DNS_T_TXT, 1 + 11);
    l = 11;
    put(&p, &l, 1);
    put(&p, "v=spf1 -all", 11);
    assert_int_equal(dns_answer_parse(DNS_T_TXT, p.b, p.n, &a), DNS_RESULT_OK);
    assert_int_equal(a.ntxt, 2);
    assert_string_equal(a.txt[0], "moat-verification=0123456789abcdef0123456789abcdef");
    assert_string_equal(a.txt[1], "v=spf1 -all");
    assert_int_equal(dns_txt_match(a.txt, a.ntxt, "0123456789abcdef0123456789abcdef"), 1);
    dns_answer_clear(&a);
}

static void test_parse_addr(void **state)
{
    (void)state;
    struct pkt p;
    struct dns_answer a;
    memset(&a, 0, sizeof a);
    begin(&p, "host.test", DNS_T_A, 1);
    rr_head(&p, DNS_T_A, 4);
    put(&p, "\x7f\x00\x00\x05", 4);
    assert_int_equal(dns_answer_parse(DNS_T_A, p.b, p.n, &a), DNS_RESULT_OK);
    assert_int_equal(a.naddr, 1);
    assert_int_equal(((struct sockaddr_in *)&a.addr[0])->sin_family, AF_INET);
    dns_answer_clear(&a);
    /* an A answer parsed as AAAA: no data of that type */
    assert_int_not_equal(dns_answer_parse(DNS_T_AAAA, p.b, p.n, &a), DNS_RESULT_OK);
    dns_answer_clear(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token),     cmocka_unit_test(test_mx_host),   cmocka_unit_test(test_txt_match),
        cmocka_unit_test(test_mx_match),  cmocka_unit_test(test_mx_sort),   cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_backoff),   cmocka_unit_test(test_parse_mx),  cmocka_unit_test(test_parse_txt),
        cmocka_unit_test(test_parse_addr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
