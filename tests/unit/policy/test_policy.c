/*
 * test_policy.c - the rule engine (src/policy/) as a pure function: each
 * criterion family, each action, execution order, terminal intercepts,
 * accumulation, deliver now, change recipient, per-recipient outcomes,
 * recipient/sender scope (organization, wildcards, exclusions, case, IDN),
 * approved and blocked senders (addresses, *@domain, IPv4/IPv6 CIDRs),
 * quarantine release, compile errors and limits.
 *
 * Analyses are built by hand (struct analysis is plain data), so each test
 * states exactly the facts the detectors would have reported.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/core.h"
#include "policy/policy.h"

/* ---------------------------------------------------------------- fixtures */
struct msg {
    struct analysis a;
    struct detection det[16];
    struct mime_attachment att[8];
    struct mime_member mem[8][4];
    struct mime_header hdr[8];
    struct mime_flag flags[4];
};

static void msg_init(struct msg *m)
{
    memset(m, 0, sizeof *m);
    m->a.subject = "Hello";
    m->a.text = "Just a plain message.\n";
    m->a.text_len = strlen(m->a.text);
    m->a.size = 2000;
    m->a.detections = m->det;
    m->a.attachments = m->att;
    m->a.headers = m->hdr;
    m->a.flags = m->flags;
}

static struct detection *det(struct msg *m, const char *cat, const char *name, double score, const char *type,
                             const char *evidence)
{
    struct detection *d = &m->det[m->a.ndetections++];
    *d = (struct detection){(char *)cat, (char *)name, score, (char *)evidence, (char *)type};
    return d;
}

static struct mime_attachment *att(struct msg *m, const char *filename, const char *true_type, uint64_t size)
{
    size_t i = m->a.nattachments++;
    struct mime_attachment *a = &m->att[i];
    memset(a, 0, sizeof *a);
    a->filename = (char *)filename;
    const char *dot = strrchr(filename, '.');
    a->extension = dot ? (char *)dot + 1 : NULL;
    a->true_type = (char *)true_type;
    a->size = size;
    a->members = m->mem[i];
    return a;
}

static struct mime_member *member(struct msg *m, struct mime_attachment *a, const char *path,
                                  const char *true_type)
{
    struct mime_member *x = &a->members[a->nmembers++];
    memset(x, 0, sizeof *x);
    x->path = (char *)path;
    x->true_type = (char *)true_type;
    x->size = 100;
    (void)m;
    return x;
}

static void header(struct msg *m, const char *name, const char *value)
{
    m->hdr[m->a.nheaders++] = (struct mime_header){(char *)name, (char *)value};
}

static void flag(struct msg *m, const char *name)
{
    m->flags[m->a.nflags++] = (struct mime_flag){(char *)name, (char *)"test"};
}

/* compile - a tenant (acme.test, xn--bcher-kva.test) with these policies
 * (a JSON array) and extra tenant members ("" or ", \"k\": v") */
static struct policy_set *compile(const char *policies, const char *extra)
{
    char *doc = NULL, err[512];
    if (asprintf(&doc,
                 "{\"tenants\": [{\"company_id\": \"acme\", \"admin_email\": \"admin@acme.test\","
                 " \"domains\": [{\"name\": \"acme.test\"}, {\"name\": \"xn--bcher-kva.test\"}],"
                 " \"policies\": %s %s}]}",
                 policies, extra) < 0)
        fail();
    struct policy_set *s = policy_compile(doc, strlen(doc), err, sizeof err);
    if (!s)
        fail_msg("compile: %s\n%s", err, doc);
    free(doc);
    return s;
}

/* compile_err - the compile error of a document that must fail */
static void compile_err(const char *policies, const char *extra, const char *want)
{
    char *doc = NULL, err[512];
    if (asprintf(&doc, "{\"company_id\": \"acme\", \"domains\": [\"acme.test\"], \"policies\": %s %s}",
                 policies, extra) < 0)
        fail();
    struct policy_set *s = policy_compile(doc, strlen(doc), err, sizeof err);
    free(doc);
    if (s) {
        policy_set_unref(s);
        fail_msg("compiled, expected error containing \"%s\"", want);
    }
    if (!strstr(err, want))
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

/* run - evaluate (inbound unless dir says otherwise) for up to 4 recipients */
static void run_dir(const struct policy_set *s, const struct msg *m, enum policy_direction dir,
                    const char *sender, const char *ip, const char *r1, const char *r2, const char *r3,
                    struct policy_result *res)
{
    const char *rc[3] = {r1, r2, r3};
    size_t n = r3 ? 3 : r2 ? 2 : 1;
    struct policy_envelope env = {
        .sender = sender, .client_ip = ip, .rcpts = rc, .nrcpts = n, .direction = dir};
    assert_int_equal(policy_evaluate(s, &m->a, &env, res), 0);
    assert_int_equal(res->nrcpts, n);
}

static void run(const struct policy_set *s, const struct msg *m, const char *rcpt, struct policy_result *res)
{
    run_dir(s, m, POLICY_INBOUND, "someone@outside.test", "192.0.2.1", rcpt, NULL, NULL, res);
}

/* trace_text - the trace entry of a rule for recipient 0, or NULL */
static const char *trace_of(const struct policy_result *r, size_t rc, const char *rule)
{
    const struct policy_disposition *p = &r->rcpts[rc];
    for (size_t i = 0; i < p->ntrace; i++)
        if (strcmp(p->trace[i].rule, rule) == 0)
            return p->trace[i].text;
    return NULL;
}

static bool matched(const struct policy_result *r, const char *rule)
{
    const char *t = trace_of(r, 0, rule);
    return t && strncmp(t, "matched", 7) == 0;
}

/* one rule matching criterion c with actions a */
static struct policy_set *rule1(const char *crit, const char *actions)
{
    char p[4096];
    snprintf(p, sizeof p,
             "[{\"name\": \"R\", \"direction\": \"inbound\", \"criteria\": %s, \"actions\": %s}]", crit,
             actions);
    return compile(p, "");
}

/* expect - rule R (one criterion) matches m or not */
static void expect(const char *crit, struct msg *m, bool want)
{
    struct policy_set *s = rule1(crit, "{\"intercept\": \"quarantine\"}");
    struct policy_result r;
    run(s, m, "user@acme.test", &r);
    if ((r.rcpts[0].intercept == POLICY_INTERCEPT_QUARANTINE) != want)
        fail_msg("criteria %s: expected %s, trace \"%s\"", crit, want ? "match" : "no match",
                 r.rcpts[0].ntrace ? r.rcpts[0].trace[0].text : "(none)");
    policy_result_free(&r);
    policy_set_unref(s);
}

/* ---------------------------------------------------------------- order */
static const char ORDER_POLICIES[] =
    "["
    "{\"name\": \"spam-del\", \"direction\": \"inbound\", \"criteria\": {\"spam\": {\"level\": \"lowest\"}},"
    "  \"actions\": {\"intercept\": \"delete\"}},"
    "{\"name\": \"content-none\", \"direction\": \"inbound\", \"criteria\": {\"content\": "
    "{\"message_size_over\": 1}},"
    "  \"actions\": {\"tag_subject\": \"[C]\"}},"
    "{\"name\": \"content-q\", \"direction\": \"inbound\", \"criteria\": {\"content\": "
    "{\"message_size_over\": 1}},"
    "  \"actions\": {\"intercept\": \"quarantine\"}},"
    "{\"name\": \"virus-none\", \"direction\": \"inbound\", \"criteria\": {\"virus\": {}},"
    "  \"actions\": {\"tag_subject\": \"[V]\"}},"
    "{\"name\": \"content-del\", \"direction\": \"inbound\", \"criteria\": {\"content\": "
    "{\"message_size_over\": 1}},"
    "  \"actions\": {\"intercept\": \"delete\"}},"
    "{\"name\": \"scanx-now\", \"direction\": \"inbound\", \"criteria\": {\"scan_exclusion\": "
    "[\"malformed\"]},"
    "  \"actions\": {\"intercept\": \"deliver_now\"}},"
    "{\"name\": \"content-cr\", \"direction\": \"inbound\", \"criteria\": {\"content\": "
    "{\"message_size_over\": 1}},"
    "  \"actions\": {\"intercept\": \"change_recipient\", \"change_recipient\": \"x@acme.test\"}},"
    "{\"name\": \"content-now\", \"direction\": \"inbound\", \"criteria\": {\"content\": "
    "{\"message_size_over\": 1}},"
    "  \"actions\": {\"intercept\": \"deliver_now\"}},"
    "{\"name\": \"out\", \"direction\": \"outbound\", \"criteria\": {\"virus\": {}}},"
    "{\"name\": \"virus+spam\", \"direction\": \"inbound\", \"criteria\": {\"virus\": {}, \"spam\": "
    "{\"level\": "
    "\"low\"}},"
    "  \"actions\": {\"intercept\": \"quarantine\"}}"
    "]";

static void test_execution_order(void **state)
{
    (void)state;
    json_t *p = json_loads(ORDER_POLICIES, 0, NULL);
    unsigned order[10];
    assert_int_equal(policy_execution_order(p, order, 10), 0);
    /* virus: virus+spam (quarantine) 1, virus-none 2; scan exclusion: scanx-now 3; content: del 4, q 5,
     * cr 6, now 7, none 8; spam: spam-del 9. Outbound numbered apart. */
    static const unsigned want[10] = {9, 8, 5, 2, 4, 3, 6, 7, 1, 1};
    for (int i = 0; i < 10; i++)
        assert_int_equal(order[i], want[i]);
    assert_int_equal(policy_execution_order(p, order, 9), -1);
    json_decref(p);

    struct policy_set *s = compile(ORDER_POLICIES, "");
    assert_int_equal(policy_rule_count(s, POLICY_INBOUND), 9);
    assert_int_equal(policy_rule_count(s, POLICY_OUTBOUND), 1);
    assert_string_equal(policy_rule_name(s, POLICY_INBOUND, 1), "virus+spam");
    assert_string_equal(policy_rule_name(s, POLICY_INBOUND, 4), "content-del");
    assert_string_equal(policy_rule_name(s, POLICY_INBOUND, 9), "spam-del");
    assert_null(policy_rule_name(s, POLICY_INBOUND, 10));
    assert_null(policy_rule_name(s, POLICY_INBOUND, 0));
    assert_string_equal(policy_rule_name(s, POLICY_OUTBOUND, 1), "out");

    /* every content rule matches: virus-none and scanx do not; delete comes first and stops */
    struct msg m;
    msg_init(&m);
    struct policy_result r;
    run(s, &m, "user@acme.test", &r);
    const struct policy_disposition *d = &r.rcpts[0];
    assert_int_equal(d->intercept, POLICY_INTERCEPT_DELETE);
    assert_string_equal(d->intercept_rule, "content-del");
    assert_int_equal(d->intercept_order, 4);
    assert_int_equal(d->ntrace, 4);
    assert_string_equal(d->trace[0].rule, "virus+spam");
    assert_string_equal(d->trace[0].text, "not matched"); /* spam not at level low, virus absent */
    m.a.spam_levels = 0x02;                               /* spam at "low" only */
    policy_result_free(&r);
    run(s, &m, "user@acme.test", &r);
    assert_int_equal(r.rcpts[0].intercept, POLICY_INTERCEPT_QUARANTINE);
    assert_string_equal(r.rcpts[0].trace[0].text, "matched: quarantine (spam: level low, score 0.00)");
    policy_result_free(&r);
    /* a malformed message: deliver now (scan exclusion class) before every content rule */
    m.a.spam_levels = 0;
    flag(&m, "malformed");
    run(s, &m, "user@acme.test", &r);
    assert_int_equal(r.rcpts[0].intercept, POLICY_INTERCEPT_DELIVER_NOW);
    assert_string_equal(r.rcpts[0].intercept_rule, "scanx-now");
    assert_int_equal(r.rcpts[0].ntrace, 3);
    assert_string_equal(r.rcpts[0].trace[2].text, "matched: deliver_now (scan exclusion: malformed)");
    policy_result_free(&r);
    policy_set_unref(s);
}

/* ---------------------------------------------------------------- actions */
static const char ACCUM[] =
    "["
    "{\"name\": \"tag\", \"direction\": \"inbound\", \"criteria\": {\"content\": {\"message_size_over\": 1}},"
    "  \"actions\": {\"tag_subject\": \"[T]\", \"x_header\": {\"name\": \"X-A\", \"value\": \"1\"},"
    "    \"notify\": [{\"template\": \"Rule triggered\", \"to\": [\"admin\", \"recipient\"]}], \"bcc\": "
    "\"audit@acme.test\"}},"
    "{\"name\": \"stamp\", \"direction\": \"inbound\", \"criteria\": {\"content\": {\"message_size_over\": "
    "1}},"
    "  \"actions\": {\"stamp\": {\"text\": \"external\", \"html\": \"<p>external</p>\"},"
    "    \"x_header\": {\"name\": \"X-B\", \"value\": \"2\"}, \"bcc\": \"AUDIT@acme.test\", \"tag_subject\": "
    "\"[T]\"}},"
    "{\"name\": \"spam-tag\", \"direction\": \"inbound\", \"criteria\": {\"spam\": {\"level\": "
    "\"moderate\"}},"
    "  \"actions\": {\"tag_subject\": \"Spam:\", \"tag_skip_signed\": false}},"
    "{\"name\": \"spam-q\", \"direction\": \"inbound\", \"criteria\": {\"spam\": {\"level\": \"high\"}},"
    "  \"actions\": {\"intercept\": \"quarantine\", \"tag_subject\": \"Q:\"}},"
    "{\"name\": \"after\", \"direction\": \"inbound\", \"criteria\": {\"spam\": {\"level\": \"highest\"}},"
    "  \"actions\": {\"tag_subject\": \"never\"}}"
    "]";

static void test_accumulate_and_terminal(void **state)
{
    (void)state;
    struct policy_set *s = compile(ACCUM, "");
    struct msg m;
    msg_init(&m);
    m.a.spam_levels = 0x1c; /* moderate, high, highest */
    struct policy_result r;
    run(s, &m, "user@acme.test", &r);
    const struct policy_disposition *d = &r.rcpts[0];
    /* spam-q quarantines (rank before none): spam-tag and after never run */
    assert_int_equal(d->intercept, POLICY_INTERCEPT_QUARANTINE);
    assert_string_equal(d->intercept_rule, "spam-q");
    assert_int_equal(d->ntrace, 3);
    assert_int_equal(d->ntags, 2); /* [T] once, then Q: */
    assert_string_equal(d->tags[0].tag, "[T]");
    assert_string_equal(d->tags[0].rule, "tag");
    assert_string_equal(d->tags[1].tag, "Q:");
    assert_int_equal(d->nx_headers, 2);
    assert_string_equal(d->x_headers[1].name, "X-B");
    assert_int_equal(d->nstamps, 1);
    assert_string_equal(d->stamps[0].html, "<p>external</p>");
    assert_int_equal(d->nnotify, 1);
    assert_string_equal(d->notify[0].template_name, "Rule triggered");
    assert_int_equal(d->notify[0].nto, 2);
    assert_string_equal(d->notify[0].to[1], "recipient");
    assert_int_equal(d->nbcc, 1); /* the same address twice, any case */
    assert_string_equal(trace_of(&r, 0, "tag"), "matched: subject tagged (message larger than 1 bytes)");
    policy_result_free(&r);

    /* only moderate: no intercept, tags from all three, signed mail still tagged (skip off) */
    m.a.spam_levels = 0x04;
    m.a.signed_smime = true;
    run(s, &m, "user@acme.test", &r);
    d = &r.rcpts[0];
    assert_int_equal(d->intercept, POLICY_INTERCEPT_NONE);
    assert_null(d->intercept_rule);
    assert_int_equal(d->ntags, 1); /* [T] skipped (signed, skip default on), Spam: added */
    assert_string_equal(d->tags[0].tag, "Spam:");
    assert_true(d->tag_skipped_signed);
    assert_string_equal(trace_of(&r, 0, "stamp"),
                        "matched: tag skipped (signed) (message larger than 1 bytes)");
    assert_string_equal(trace_of(&r, 0, "after"), "not matched");
    policy_result_free(&r);
    policy_set_unref(s);
}

static void test_deliver_now_and_change_recipient(void **state)
{
    (void)state;
    struct policy_set *s = compile(
        "[{\"name\": \"now\", \"direction\": \"inbound\", \"recipients\": [\"vip@acme.test\"],"
        "  \"criteria\": {\"content\": {\"keywords\": [{\"pattern\": \"(?i)urgent\"}]}},"
        "  \"actions\": {\"intercept\": \"deliver_now\", \"x_header\": {\"name\": \"X-Now\", \"value\": "
        "\"y\"}}},"
        " {\"name\": \"redirect\", \"direction\": \"inbound\", \"criteria\": {\"spam\": {\"phishing\": "
        "true}},"
        "  \"actions\": {\"intercept\": \"change_recipient\", \"change_recipient\": \"security@acme.test\"}},"
        " {\"name\": \"del\", \"direction\": \"inbound\", \"criteria\": {\"spam\": {\"level\": \"lowest\"}},"
        "  \"actions\": {\"intercept\": \"delete\"}}]",
        "");
    struct msg m;
    msg_init(&m);
    m.a.subject = "URGENT: call me";
    m.a.spam_levels = 0x1f;
    det(&m, "phishing", "link-text-mismatch", 0.9, NULL, "x");
    struct policy_result r;
    run_dir(s, &m, POLICY_INBOUND, "a@outside.test", NULL, "vip@acme.test", "other@acme.test", NULL, &r);
    /* vip: deliver now wins (content before spam), skipping the delete */
    assert_int_equal(r.rcpts[0].intercept, POLICY_INTERCEPT_DELIVER_NOW);
    assert_int_equal(r.rcpts[0].nx_headers, 1);
    assert_int_equal(r.rcpts[0].ntrace, 1);
    assert_string_equal(r.rcpts[0].trace[0].text, "matched: deliver_now (keyword in subject)");
    /* other: spam rules; delete ranks before change_recipient */
    assert_int_equal(r.rcpts[1].intercept, POLICY_INTERCEPT_DELETE);
    assert_false(policy_disposition_same(&r.rcpts[0], &r.rcpts[1]));
    policy_result_free(&r);
    /* not spam: change recipient */
    m.a.spam_levels = 0;
    run(s, &m, "other@acme.test", &r);
    assert_int_equal(r.rcpts[0].intercept, POLICY_INTERCEPT_CHANGE_RECIPIENT);
    assert_string_equal(r.rcpts[0].new_recipient, "security@acme.test");
    assert_string_equal(trace_of(&r, 0, "del"), "not matched");
    assert_string_equal(trace_of(&r, 0, "redirect"),
                        "matched: change_recipient (phishing: link-text-mismatch)");
    policy_result_free(&r);
    policy_set_unref(s);
}

static void test_per_recipient_split(void **state)
{
    (void)state;
    struct policy_set *s = compile(
        "[{\"name\": \"alice-q\", \"direction\": \"inbound\", \"recipients\": [\"alice@acme.test\"],"
        "  \"criteria\": {\"spam\": {\"level\": \"moderate\"}}, \"actions\": {\"intercept\": "
        "\"quarantine\"}},"
        " {\"name\": \"all-tag\", \"direction\": \"inbound\", \"criteria\": {\"spam\": {\"level\": "
        "\"moderate\"}},"
        "  \"exclude_recipients\": [\"carol@acme.test\"], \"actions\": {\"tag_subject\": \"Spam:\"}}]",
        "");
    struct msg m;
    msg_init(&m);
    m.a.spam_levels = 0x1f;
    struct policy_result r;
    run_dir(s, &m, POLICY_INBOUND, "x@outside.test", NULL, "alice@acme.test", "bob@acme.test",
            "carol@acme.test", &r);
    assert_string_equal(r.rcpts[0].rcpt, "alice@acme.test");
    assert_int_equal(r.rcpts[0].intercept, POLICY_INTERCEPT_QUARANTINE);
    assert_int_equal(r.rcpts[1].intercept, POLICY_INTERCEPT_NONE);
    assert_int_equal(r.rcpts[1].ntags, 1);
    assert_int_equal(r.rcpts[2].intercept, POLICY_INTERCEPT_NONE);
    assert_int_equal(r.rcpts[2].ntags, 0);
    assert_int_equal(r.rcpts[2].ntrace, 0); /* no rule covers carol */
    assert_int_equal(r.rcpts[1].ntrace, 1);
    assert_false(policy_disposition_same(&r.rcpts[1], &r.rcpts[2]));
    assert_true(policy_disposition_same(&r.rcpts[1], &r.rcpts[1]));
    policy_result_free(&r);
    run_dir(s, &m, POLICY_INBOUND, "x@outside.test", NULL, "bob@acme.test", "dave@acme.test", NULL, &r);
    assert_true(policy_disposition_same(&r.rcpts[0], &r.rcpts[1]));
    policy_result_free(&r);
    policy_set_unref(s);
}

/* ---------------------------------------------------------------- scope */
static void test_scope(void **state)
{
    (void)state;
    struct policy_set *s = compile(
        "[{\"name\": \"list\", \"direction\": \"inbound\","
        "  \"recipients\": [\"Sales@ACME.test\", \"*@Bücher.test\"], \"senders\": [\"*@partner.test\", "
        "\"boss@corp.test\"],"
        "  \"exclude_senders\": [\"noisy@partner.test\"],"
        "  \"criteria\": {\"content\": {\"message_size_over\": 1}}, \"actions\": {\"tag_subject\": \"L\"}},"
        " {\"name\": \"org\", \"direction\": \"inbound\", \"exclude_recipients\": [\"*@xn--bcher-kva.test\"],"
        "  \"criteria\": {\"content\": {\"message_size_over\": 1}}, \"actions\": {\"tag_subject\": \"O\"}},"
        " {\"name\": \"any\", \"direction\": \"inbound\", \"recipients\": \"any\","
        "  \"criteria\": {\"content\": {\"message_size_over\": 1}}, \"actions\": {\"tag_subject\": \"A\"}},"
        " {\"name\": \"outbound\", \"direction\": \"outbound\","
        "  \"criteria\": {\"content\": {\"message_size_over\": 1}}, \"actions\": {\"tag_subject\": "
        "\"OUT\"}}]",
        "");
    struct msg m;
    msg_init(&m);
    static const struct {
        const char *sender, *rcpt;
        bool list, org, any;
    } cases[] = {
        {"x@partner.test", "sales@acme.test", true, true, true},
        {"X@PARTNER.TEST", "SALES@Acme.Test", true, true, true},      /* case-insensitive */
        {"x@sub.partner.test", "sales@acme.test", false, true, true}, /* *@domain is that domain only */
        {"noisy@partner.test", "sales@acme.test", false, true, true}, /* excluded sender */
        {"boss@corp.test", "<sales@acme.test>", true, true, true},    /* angle brackets */
        {"boss@corp.test", "other@acme.test", false, true, true},
        {"x@partner.test", "user@bücher.test", true, false, true}, /* IDN U-label = punycode */
        {"x@partner.test", "user@BÜCHER.test", true, false, true}, /* mapped to lower case */
        {"x@partner.test", "user@xn--bcher-kva.test", true, false, true},
        {"x@partner.test", "user@elsewhere.test", false, false, true}, /* not the organisation */
        {"", "sales@acme.test", false, true, true},                    /* null sender: only "any" */
        {"x@partner.test", "sales@acme.test.", true, true, true},      /* trailing dot */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct policy_result r;
        run_dir(s, &m, POLICY_INBOUND, cases[i].sender, NULL, cases[i].rcpt, NULL, NULL, &r);
        bool l = trace_of(&r, 0, "list") != NULL, o = trace_of(&r, 0, "org") != NULL,
             a = trace_of(&r, 0, "any") != NULL;
        if (l != cases[i].list || o != cases[i].org || a != cases[i].any)
            fail_msg("case %zu (%s -> %s): list %d org %d any %d", i, cases[i].sender, cases[i].rcpt, l, o,
                     a);
        assert_null(trace_of(&r, 0, "outbound"));
        policy_result_free(&r);
    }
    /* outbound: senders default to the organisation, recipients to any */
    struct policy_result r;
    run_dir(s, &m, POLICY_OUTBOUND, "me@acme.test", NULL, "them@else.test", NULL, NULL, &r);
    assert_true(matched(&r, "outbound"));
    assert_int_equal(r.rcpts[0].ntrace, 1);
    policy_result_free(&r);
    run_dir(s, &m, POLICY_OUTBOUND, "me@else.test", NULL, "them@else.test", NULL, NULL, &r);
    assert_int_equal(r.rcpts[0].ntrace, 0);
    policy_result_free(&r);
    policy_set_unref(s);
}

/* ---------------------------------------------------------------- sender lists */
static const char LISTS[] =
    ", \"approved_senders\": [\"friend@trusted.test\", \"*@Friends.test\", \"198.51.100.0/24\", "
    "\"2001:db8:1::/48\"],"
    " \"blocked_senders\": [\"*@evil.test\", \"bad@ok.test\", \"203.0.113.0/24\", \"2001:db8:bad::/48\", "
    "\"192.0.2.77\"]";

static void test_sender_lists(void **state)
{
    (void)state;
    struct policy_set *s = compile(
        "[{\"name\": \"virus\", \"direction\": \"inbound\", \"criteria\": {\"virus\": {}},"
        "  \"actions\": {\"intercept\": \"delete\"}},"
        " {\"name\": \"spam\", \"direction\": \"inbound\", \"criteria\": {\"spam\": {\"level\": "
        "\"moderate\"}},"
        "  \"actions\": {\"intercept\": \"quarantine\"}},"
        " {\"name\": \"spam+content\", \"direction\": \"inbound\", \"criteria\": {\"spam\": {\"level\": "
        "\"moderate\"},"
        "  \"content\": {\"attachment_extensions\": [\"exe\"]}}, \"actions\": {\"tag_subject\": \"X\"}}]",
        LISTS);
    static const struct {
        const char *sender, *ip;
        bool blocked, approved;
    } cases[] = {
        {"a@evil.test", NULL, true, false},
        {"A@EVIL.TEST", "192.0.2.1", true, false},
        {"a@sub.evil.test", NULL, false, false},
        {"bad@ok.test", NULL, true, false},
        {"good@ok.test", "203.0.113.9", true, false},
        {"good@ok.test", "::ffff:203.0.113.9", true, false},
        {"good@ok.test", "203.0.114.9", false, false},
        {"good@ok.test", "2001:db8:bad:1::5", true, false},
        {"good@ok.test", "[2001:db8:bad::1]", true, false},
        {"good@ok.test", "2001:db8:bae::1", false, false},
        {"good@ok.test", "192.0.2.77", true, false},
        {"good@ok.test", "192.0.2.78", false, false},
        {"friend@trusted.test", NULL, false, true},
        {"x@friends.test", NULL, false, true},
        {"x@ok.test", "198.51.100.200", false, true},
        {"x@ok.test", "2001:db8:1:ffff::1", false, true},
        {"x@evil.test", "198.51.100.1", true, false}, /* blocked beats approved */
        {"", "", false, false},
        {NULL, "not-an-ip", false, false},
    };
    struct msg m;
    msg_init(&m);
    m.a.spam_levels = 0x1f;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (policy_sender_blocked(s, cases[i].sender, cases[i].ip) != cases[i].blocked)
            fail_msg("case %zu: blocked != %d", i, cases[i].blocked);
        struct policy_result r;
        run_dir(s, &m, POLICY_INBOUND, cases[i].sender, cases[i].ip, "u@acme.test", NULL, NULL, &r);
        assert_int_equal(r.sender_blocked, cases[i].blocked);
        if (r.sender_approved != cases[i].approved)
            fail_msg("case %zu: approved != %d", i, cases[i].approved);
        if (cases[i].blocked) {
            assert_int_equal(r.rcpts[0].intercept, POLICY_INTERCEPT_QUARANTINE);
            assert_string_equal(r.rcpts[0].intercept_rule, "Blocked senders");
            assert_int_equal(r.rcpts[0].ntrace, 1);
        } else if (cases[i].approved) {
            /* spam filter skipped: delivered */
            assert_int_equal(r.rcpts[0].intercept, POLICY_INTERCEPT_NONE);
            assert_string_equal(trace_of(&r, 0, "spam"), "skipped: approved sender");
            assert_string_equal(trace_of(&r, 0, "spam+content"), "not matched");
            assert_string_equal(r.rcpts[0].trace[0].rule, "Approved senders");
        } else {
            assert_int_equal(r.rcpts[0].intercept, POLICY_INTERCEPT_QUARANTINE);
            assert_string_equal(r.rcpts[0].intercept_rule, "spam");
        }
        policy_result_free(&r);
    }
    /* approved never skips the virus scan, nor content criteria */
    det(&m, "virus", "Eicar", 1.0, "cleanable", "e.com (cleanable)");
    struct policy_result r;
    run_dir(s, &m, POLICY_INBOUND, "friend@trusted.test", NULL, "u@acme.test", NULL, NULL, &r);
    assert_int_equal(r.rcpts[0].intercept, POLICY_INTERCEPT_DELETE);
    policy_result_free(&r);
    m.a.ndetections = 0;
    att(&m, "setup.exe", "application/x-dosexec", 10);
    run_dir(s, &m, POLICY_INBOUND, "friend@trusted.test", NULL, "u@acme.test", NULL, NULL, &r);
    assert_string_equal(trace_of(&r, 0, "spam+content"), "matched: subject tagged (attachment extension)");
    policy_result_free(&r);
    /* quarantine release: blocked senders not applied again */
    const char *rc[1] = {"u@acme.test"};
    struct policy_envelope env = {.sender = "a@evil.test", .rcpts = rc, .nrcpts = 1, .release = true};
    m.a.nattachments = 0;
    assert_int_equal(policy_evaluate(s, &m.a, &env, &r), 0);
    assert_false(r.sender_blocked);
    assert_int_equal(r.rcpts[0].intercept, POLICY_INTERCEPT_QUARANTINE);
    assert_string_equal(r.rcpts[0].intercept_rule, "spam");
    policy_result_free(&r);
    /* order: virus 1, spam+content 2 (content class), spam 3. Released after
     * the spam rule: nothing is left; after virus: both others run */
    env.resume_after = 3;
    assert_int_equal(policy_evaluate(s, &m.a, &env, &r), 0);
    assert_int_equal(r.rcpts[0].intercept, POLICY_INTERCEPT_NONE);
    assert_int_equal(r.rcpts[0].ntrace, 0);
    policy_result_free(&r);
    env.resume_after = 1;
    assert_int_equal(policy_evaluate(s, &m.a, &env, &r), 0);
    assert_int_equal(r.rcpts[0].ntrace, 2);
    assert_string_equal(r.rcpts[0].trace[0].rule, "spam+content");
    assert_int_equal(r.rcpts[0].intercept, POLICY_INTERCEPT_QUARANTINE);
    policy_result_free(&r);
    policy_set_unref(s);
    assert_false(policy_sender_blocked(NULL, "a@evil.test", NULL));
}

/* ---------------------------------------------------------------- criteria */
static void test_virus(void **state)
{
    (void)state;
    struct msg m;
    msg_init(&m);
    expect("{\"virus\": {}}", &m, false);
    det(&m, "virus", "Win.Worm.Mydoom", 1.0, "mass_mailing", "message (uncleanable, mass-mailing)");
    expect("{\"virus\": {}}", &m, true);
    expect("{\"virus\": {\"types\": [\"mass_mailing\"]}}", &m, true);
    expect("{\"virus\": {\"types\": [\"cleanable\", \"non_mass_mailing\"]}}", &m, false);
    msg_init(&m);
    det(&m, "virus", "Heuristics.Executable", 0.6, "cleanable", "a.zip/b.exe (cleanable)");
    expect("{\"virus\": {}}", &m, false);
    expect("{\"virus\": {\"heuristics\": true}}", &m, true);
    msg_init(&m);
    det(&m, "virus", "Heuristics.Macro", 0.4, "cleanable", "a.docm (cleanable)");
    expect("{\"virus\": {\"heuristics\": true}}", &m, false);
    expect("{\"virus\": {\"macros\": true}}", &m, true);
    msg_init(&m);
    det(&m, "virus", "Heuristics.RiskyType", 0.6, "cleanable", "a.vbe (cleanable)");
    expect("{\"virus\": {\"macros\": true}}", &m, false);
    expect("{\"virus\": {\"scripts\": true}}", &m, true);
    msg_init(&m);
    det(&m, "virus", "Heuristics.HTMLSmuggling", 0.7, "cleanable", "a.html (cleanable)");
    expect("{\"virus\": {\"scripts\": true, \"heuristics\": true}}", &m, false);
    expect("{\"virus\": {\"deep_analysis\": true}}", &m, true);
    msg_init(&m);
    det(&m, "virus", "Unknown", 1.0, NULL, "x"); /* untyped: counts for any type */
    expect("{\"virus\": {\"types\": [\"cleanable\"]}}", &m, true);
    msg_init(&m);
    det(&m, "spam", "Virus-looking", 1.0, NULL, "x"); /* other categories never */
    expect("{\"virus\": {}}", &m, false);
}

static void test_spam_family(void **state)
{
    (void)state;
    struct msg m;
    msg_init(&m);
    m.a.spam_levels = 0x18; /* high, highest: a less sure spam */
    expect("{\"spam\": {\"level\": \"lowest\"}}", &m, false);
    expect("{\"spam\": {\"level\": \"moderate\"}}", &m, false);
    expect("{\"spam\": {\"level\": \"high\"}}", &m, true);
    expect("{\"spam\": {\"level\": \"highest\"}}", &m, true);
    m.a.spam_levels = 0x1f;
    expect("{\"spam\": {\"level\": \"lowest\"}}", &m, true);
    expect("{\"spam\": {\"phishing\": true}}", &m, false);
    msg_init(&m);
    det(&m, "phishing", "brand", 0.49, NULL, "x");
    expect("{\"spam\": {\"phishing\": true}}", &m, false);
    det(&m, "phishing", "brand", POLICY_PHISH_MATCH, NULL, "x");
    expect("{\"spam\": {\"phishing\": true}}", &m, true);
    expect("{\"spam\": {\"level\": \"highest\"}}", &m, false);
    msg_init(&m);
    det(&m, "bec", "engine", 0.7, NULL, "x");
    expect("{\"spam\": {\"bec\": [\"probable\", \"writing_style\"]}}", &m, false);
    expect("{\"spam\": {\"bec\": [\"engine\"]}}", &m, true);
    msg_init(&m);
    det(&m, "bec", "probable", 0.5, NULL, "x");
    expect("{\"spam\": {\"bec\": [\"probable\"]}}", &m, true);
    expect("{\"spam\": {\"bec\": [\"writing_style\"]}}", &m, false);
    msg_init(&m);
    det(&m, "bec", "writing_style", 0.5, NULL, "x");
    expect("{\"spam\": {\"bec\": [\"writing_style\"]}}", &m, true);
    msg_init(&m);
    det(&m, "graymail", "newsletter", 0.6, NULL, "x");
    expect("{\"spam\": {\"graymail\": true}}", &m, true);
    expect("{\"spam\": {\"web_reputation\": true, \"social_engineering\": true}}", &m, false);
    msg_init(&m);
    det(&m, "web_reputation", "url-blocklist", 1, NULL, "x");
    expect("{\"spam\": {\"web_reputation\": true}}", &m, true);
    expect("{\"spam\": {\"graymail\": true}}", &m, false);
    msg_init(&m);
    det(&m, "social_engineering", "helo-impersonation", 0.4, NULL, "x");
    expect("{\"spam\": {\"social_engineering\": true}}", &m, true);
}

static void test_scan_exclusion(void **state)
{
    (void)state;
    struct msg m;
    msg_init(&m);
    expect("{\"scan_exclusion\": [\"archive_limits\", \"encrypted\", \"malformed\", \"scan_failure\"]}", &m,
           false);
    flag(&m, "archive_limits");
    expect("{\"scan_exclusion\": [\"archive_limits\"]}", &m, true);
    expect("{\"scan_exclusion\": [\"encrypted\", \"malformed\"]}", &m, false);
    flag(&m, "encrypted");
    expect("{\"scan_exclusion\": [\"encrypted\"]}", &m, true);
    msg_init(&m);
    det(&m, "scan_exclusion", "virus-scan-incomplete", 1, NULL, "timeout");
    expect("{\"scan_exclusion\": [\"scan_failure\"]}", &m, true);
    expect("{\"scan_exclusion\": [\"archive_limits\"]}", &m, false);
}

static void test_content_files(void **state)
{
    (void)state;
    struct msg m;
    msg_init(&m);
    struct mime_attachment *zip = att(&m, "Invoice_2024.ZIP", "application/zip", 5000);
    struct mime_member *exe = member(&m, zip, "Invoice_2024.ZIP/docs/Run.EXE", "application/x-dosexec");
    att(&m, "photo.jpg", "image/jpeg", 300000);
    expect("{\"content\": {\"attachment_extensions\": [\"zip\"]}}", &m, true);
    expect("{\"content\": {\"attachment_extensions\": [\"exe\"]}}", &m, true); /* inside the archive */
    expect("{\"content\": {\"attachment_extensions\": [\"js\", \"vbs\"]}}", &m, false);
    expect("{\"content\": {\"attachment_types\": [\"executable\"]}}", &m, true);
    expect("{\"content\": {\"attachment_types\": [\"archive\"]}}", &m, true);
    expect("{\"content\": {\"attachment_types\": [\"image\"]}}", &m, true);
    expect("{\"content\": {\"attachment_types\": [\"pdf\", \"office_macro\", \"audio\", \"video\", \"html\", "
           "\"disk_image\", \"document\", \"script\", \"text\"]}}",
           &m, false);
    expect("{\"content\": {\"attachment_names\": [\"invoice*.zip\"]}}", &m, true);
    expect("{\"content\": {\"attachment_names\": [\"run.???\"]}}", &m, true);
    expect("{\"content\": {\"attachment_names\": [\"run.??\"]}}", &m, false);
    expect("{\"content\": {\"attachment_names\": [\"invoice.zip\"]}}", &m, false);
    expect("{\"content\": {\"attachment_names\": [\"*(1).zip\"]}}", &m, false); /* regex chars are literal */
    expect("{\"content\": {\"attachment_size_over\": \"200k\"}}", &m, true);
    expect("{\"content\": {\"attachment_size_over\": 300000}}", &m, false);
    expect("{\"content\": {\"password_protected\": true}}", &m, false);
    exe->encrypted = true;
    expect("{\"content\": {\"password_protected\": true}}", &m, true);
    exe->macros = true;
    expect("{\"content\": {\"attachment_types\": [\"office_macro\"]}}", &m, true);
    msg_init(&m);
    att(&m, "report.docm", "application/vnd.ms-word.document.macroEnabled.12", 10);
    att(&m, "x.iso", "application/x-iso9660-image", 10);
    att(&m, "p.pdf", "application/pdf; charset=binary", 10);
    att(&m, "a.sh", "text/x-shellscript", 10);
    expect("{\"content\": {\"attachment_types\": [\"office_macro\"]}}", &m, true);
    expect("{\"content\": {\"attachment_types\": [\"disk_image\"]}}", &m, true);
    expect("{\"content\": {\"attachment_types\": [\"pdf\"]}}", &m, true);
    expect("{\"content\": {\"attachment_types\": [\"script\"]}}", &m, true);
    expect("{\"content\": {\"attachment_types\": [\"image\"]}}", &m, false);
    /* message size and recipient count */
    m.a.size = 10 * 1024 * 1024 + 1;
    expect("{\"content\": {\"message_size_over\": \"10M\"}}", &m, true);
    m.a.size = 10 * 1024 * 1024;
    expect("{\"content\": {\"message_size_over\": \"10M\"}}", &m, false);
    struct policy_set *s =
        rule1("{\"content\": {\"recipients_over\": 2}}", "{\"intercept\": \"quarantine\"}");
    struct policy_result r;
    run_dir(s, &m, POLICY_INBOUND, "x@y.test", NULL, "a@acme.test", "b@acme.test", NULL, &r);
    assert_int_equal(r.rcpts[0].intercept, POLICY_INTERCEPT_NONE);
    policy_result_free(&r);
    run_dir(s, &m, POLICY_INBOUND, "x@y.test", NULL, "a@acme.test", "b@acme.test", "c@acme.test", &r);
    assert_int_equal(r.rcpts[2].intercept, POLICY_INTERCEPT_QUARANTINE);
    assert_string_equal(r.rcpts[2].trace[0].text, "matched: quarantine (more than 2 recipients)");
    policy_result_free(&r);
    policy_set_unref(s);
}

static void test_content_keywords(void **state)
{
    (void)state;
    struct msg m;
    msg_init(&m);
    m.a.subject = "Your INVOICE is ready";
    m.a.text = "お支払いのお願い\n請求書を添付します。\nline three";
    m.a.text_len = strlen(m.a.text);
    header(&m, "From", "Billing <billing@pay.test>");
    header(&m, "X-Mailer", "BulkBlaster 3");
    expect("{\"content\": {\"keywords\": [{\"pattern\": \"(?i)invoice\"}]}}", &m, true);
    expect("{\"content\": {\"keywords\": [{\"pattern\": \"invoice\"}]}}", &m, false); /* case-sensitive */
    expect("{\"content\": {\"keywords\": [{\"pattern\": \"INVOICE\", \"in\": [\"body\"]}]}}", &m, false);
    expect("{\"content\": {\"keywords\": [{\"pattern\": \"請求書\"}]}}", &m, true);
    expect("{\"content\": {\"keywords\": [{\"pattern\": \"^請求.を\", \"in\": [\"body\"]}]}}", &m, true);
    expect("{\"content\": {\"keywords\": [{\"pattern\": \"three$\", \"in\": [\"body\"]}]}}", &m, true);
    expect("{\"content\": {\"keywords\": [{\"pattern\": \"請求書\", \"in\": [\"subject\", \"headers\"]}]}}",
           &m, false);
    expect("{\"content\": {\"keywords\": [{\"pattern\": \"^X-Mailer: Bulk\", \"in\": [\"headers\"]}]}}", &m,
           true);
    expect("{\"content\": {\"keywords\": [{\"pattern\": \"^X-Mailer: Bulk\", \"in\": [\"body\", "
           "\"subject\"]}]}}",
           &m, false);
    expect("{\"content\": {\"keywords\": [{\"pattern\": \"secret\\\\d+\", \"in\": [\"attachments\"]}]}}", &m,
           false);
    struct mime_attachment *t = att(&m, "notes.txt", "text/plain", 0);
    static unsigned char data[] = "top secret42 \xff\xfe bytes";
    t->data = data;
    t->size = sizeof data - 1;
    expect("{\"content\": {\"keywords\": [{\"pattern\": \"secret\\\\d+\", \"in\": [\"attachments\"]}]}}", &m,
           true);
    expect("{\"content\": {\"keywords\": [{\"pattern\": \"secret\\\\d+\"}]}}", &m,
           false);                             /* default: subject, body */
    t->true_type = "application/octet-stream"; /* binary attachments are not searched */
    expect("{\"content\": {\"keywords\": [{\"pattern\": \"secret\\\\d+\", \"in\": [\"attachments\"]}]}}", &m,
           false);
    /* several rules share each scan; each keyword reports its own rule */
    struct policy_set *s = compile(
        "[{\"name\": \"a\", \"direction\": \"inbound\", \"criteria\": {\"content\": {\"keywords\": "
        "[{\"pattern\": \"nomatch\"}, {\"pattern\": \"(?i)ready\", \"in\": [\"subject\"]}]}},"
        "  \"actions\": {\"tag_subject\": \"A\"}},"
        " {\"name\": \"b\", \"direction\": \"inbound\", \"criteria\": {\"content\": {\"keywords\": "
        "[{\"pattern\": \"nomatch2\"}]}}, \"actions\": {\"tag_subject\": \"B\"}},"
        " {\"name\": \"c\", \"direction\": \"inbound\", \"criteria\": {\"content\": {\"keywords\": "
        "[{\"pattern\": \"Billing\", \"in\": [\"headers\"]}]}}, \"actions\": {\"tag_subject\": \"C\"}}]",
        "");
    struct policy_result r;
    run(s, &m, "u@acme.test", &r);
    assert_true(matched(&r, "a"));
    assert_false(matched(&r, "b"));
    assert_true(matched(&r, "c"));
    assert_string_equal(trace_of(&r, 0, "c"), "matched: subject tagged (keyword in headers)");
    policy_result_free(&r);
    policy_set_unref(s);
}

/* ---------------------------------------------------------------- removals */
static void test_delete_and_clean(void **state)
{
    (void)state;
    struct msg m;
    msg_init(&m);
    att(&m, "ok.pdf", "application/pdf", 100);
    struct mime_attachment *zip = att(&m, "bundle.zip", "application/zip", 100);
    member(&m, zip, "bundle.zip/readme.txt", "text/plain");
    member(&m, zip, "bundle.zip/tool.exe", "application/x-dosexec");
    att(&m, "e.com", "application/octet-stream", 68);
    att(&m, "big.bin", "application/octet-stream", 5000000);
    det(&m, "virus", "Moat.Test.EICAR", 1.0, "cleanable", "e.com (cleanable)");
    struct policy_set *s =
        compile("[{\"name\": \"exe\", \"direction\": \"inbound\", \"criteria\": {\"content\": "
                "{\"attachment_extensions\": "
                "[\"exe\"], \"attachment_size_over\": \"1M\"}}, \"actions\": {\"delete_attachments\": true}},"
                " {\"name\": \"av\", \"direction\": \"inbound\", \"criteria\": {\"virus\": {}},"
                "  \"actions\": {\"clean\": true, \"notify\": [{\"template\": \"Virus detection\", \"to\": "
                "[\"admin\"]}]}}]",
                "");
    struct policy_result r;
    run(s, &m, "u@acme.test", &r);
    const struct policy_disposition *d = &r.rcpts[0];
    assert_int_equal(d->intercept, POLICY_INTERCEPT_NONE);
    assert_true(d->clean);
    assert_int_equal(d->nremovals, 3);
    /* virus rule first */
    assert_int_equal(d->removals[0].attachment, 2);
    assert_int_equal(d->removals[0].member, POLICY_WHOLE_ATTACHMENT);
    assert_int_equal(d->removals[0].kind, POLICY_REMOVE_INFECTED);
    assert_string_equal(d->removals[0].reason, "virus Moat.Test.EICAR");
    assert_string_equal(d->removals[0].rule, "av");
    assert_int_equal(d->removals[1].attachment, 1);
    assert_int_equal(d->removals[1].member, 1);
    assert_string_equal(d->removals[1].reason, "bundle.zip/tool.exe: extension exe");
    assert_int_equal(d->removals[1].kind, POLICY_REMOVE_MATCHING);
    assert_int_equal(d->removals[2].attachment, 3);
    assert_string_equal(d->removals[2].reason, "size 5000000 over 1048576 bytes");
    policy_result_free(&r);
    policy_set_unref(s);
    /* delete_attachments on a virus rule removes the infected part */
    s = rule1("{\"virus\": {}}", "{\"delete_attachments\": true}");
    run(s, &m, "u@acme.test", &r);
    assert_int_equal(r.rcpts[0].nremovals, 1);
    assert_int_equal(r.rcpts[0].removals[0].attachment, 2);
    assert_false(r.rcpts[0].clean);
    policy_result_free(&r);
    policy_set_unref(s);
    /* names and types give their reason */
    s = rule1("{\"content\": {\"attachment_names\": [\"OK.*\"], \"attachment_types\": [\"archive\"]}}",
              "{\"delete_attachments\": true}");
    run(s, &m, "u@acme.test", &r);
    assert_int_equal(r.rcpts[0].nremovals, 2);
    assert_string_equal(r.rcpts[0].removals[0].reason, "name ok.pdf");
    assert_string_equal(r.rcpts[0].removals[1].reason, "true type archive");
    policy_result_free(&r);
    policy_set_unref(s);
}

/* ---------------------------------------------------------------- errors */
static void test_errors(void **state)
{
    (void)state;
    char err[256];
    assert_null(policy_compile("{", 1, err, sizeof err));
    assert_non_null(strstr(err, "JSON"));
    assert_null(policy_compile("{\"tenants\": []}", 15, err, sizeof err));
    compile_err("[{\"name\": \"k\", \"direction\": \"inbound\", \"criteria\": {\"content\": {\"keywords\": "
                "[{\"pattern\": \"inv(oice\"}]}}}]",
                "", "policies[0] \"k\": keyword pattern \"inv(oice\": Missing close parenthesis");
    compile_err("[{\"name\": \"k\", \"direction\": \"inbound\", \"criteria\": {}}]", "",
                "at least one criterion");
    compile_err("[{\"name\": \"k\", \"direction\": \"sideways\", \"criteria\": {\"virus\": {}}}]", "",
                "direction");
    compile_err("[{\"name\": \"k\", \"direction\": \"inbound\", \"criteria\": {\"virus\": {}}, \"actions\": "
                "{\"intercept\": \"change_recipient\"}}]",
                "", "change_recipient is required");
    compile_err("[]", ", \"blocked_senders\": [\"300.1.1.1\"]", "blocked_senders[0]");
    compile_err("[]", ", \"blocked_senders\": [\"10.0.0.0/33\"]", "prefix");
    compile_err("[]", ", \"approved_senders\": 7", "approved_senders must be a list");
    compile_err("7", "", "policies must be a list");
    /* limits: 1,000 policies compile, 1,001 do not */
    struct buf b;
    buf_init(&b, 1 << 20);
    buf_append_str(&b, "[");
    for (int i = 0; i < POLICY_MAX_RULES; i++)
        buf_printf(&b, "%s{\"name\": \"p%d\", \"direction\": \"inbound\", \"criteria\": {\"virus\": {}}}",
                   i ? "," : "", i);
    buf_append_str(&b, "]");
    struct policy_set *s = compile(buf_cstr(&b), "");
    assert_int_equal(policy_rule_count(s, POLICY_INBOUND), POLICY_MAX_RULES);
    policy_set_unref(s);
    b.len--;
    buf_append_str(&b,
                   ",{\"name\": \"one-more\", \"direction\": \"inbound\", \"criteria\": {\"virus\": {}}}]");
    compile_err(buf_cstr(&b), "", "at most 1000");
    buf_free(&b);
    /* unusable envelopes */
    s = compile("[]", "");
    struct msg m;
    msg_init(&m);
    struct policy_result r;
    struct policy_envelope env = {.sender = "a@b.test", .nrcpts = 0};
    const char *rc[1] = {"u@acme.test"};
    assert_int_equal(policy_evaluate(s, &m.a, &env, &r), -1);
    policy_result_free(&r);
    env.rcpts = rc;
    env.nrcpts = POLICY_MAX_RCPTS + 1;
    assert_int_equal(policy_evaluate(s, &m.a, &env, &r), -1);
    env.nrcpts = 1;
    assert_int_equal(policy_evaluate(s, &m.a, &env, &r), 0);
    assert_int_equal(r.rcpts[0].intercept, POLICY_INTERCEPT_NONE);
    assert_int_equal(r.rcpts[0].ntrace, 0);
    policy_result_free(&r);
    /* a reference keeps the set alive */
    assert_ptr_equal(policy_set_ref(s), s);
    policy_set_unref(s);
    policy_set_unref(s);
    /* pattern check as the store uses it */
    char why[256];
    assert_null(policy_pattern_check("(?i)請求書|invoice", why, sizeof why));
    assert_non_null(policy_pattern_check("a*", why, sizeof why));
    assert_non_null(strstr(why, "empty string"));
    assert_non_null(policy_pattern_check("(?i)", why, sizeof why));
    assert_string_equal(policy_intercept_name(POLICY_INTERCEPT_CHANGE_RECIPIENT), "change_recipient");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_execution_order),
        cmocka_unit_test(test_accumulate_and_terminal),
        cmocka_unit_test(test_deliver_now_and_change_recipient),
        cmocka_unit_test(test_per_recipient_split),
        cmocka_unit_test(test_scope),
        cmocka_unit_test(test_sender_lists),
        cmocka_unit_test(test_virus),
        cmocka_unit_test(test_spam_family),
        cmocka_unit_test(test_scan_exclusion),
        cmocka_unit_test(test_content_files),
        cmocka_unit_test(test_content_keywords),
        cmocka_unit_test(test_delete_and_clean),
        cmocka_unit_test(test_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    policy_thread_done();
    return rc;
}
