/*
 * bench_policy.c - micro-benchmark of the rule engine: `policy_bench
 * [RULES...]` (default 10 100 1000) compiles a tenant with that many
 * realistic inbound rules (a rotation of virus, spam level, phishing/BEC,
 * extension + type, name pattern, keywords in subject/body, keyword in
 * headers, message size; a third of them scoped to address lists with
 * exclusions) and evaluates one realistic message (3 KB of text, 15
 * headers, a PDF and a zip with members, a few detections, 3 recipients)
 * for about a second. Prints compile time and microseconds per message.
 * No rule intercepts, so every rule is evaluated for every recipient (the
 * worst case). Run by bench/policy-bench on a release build.
 */
#include "core/core.h"

#include <time.h>

#include "policy/policy.h"

static void rule(struct buf *b, int i)
{
    static const char *const lv[] = {"lowest", "low", "moderate", "high", "highest"};
    char c[512];
    switch (i % 8) {
    case 0:
        snprintf(c, sizeof c, "{\"virus\": {\"types\": [\"cleanable\"], \"heuristics\": true}}");
        break;
    case 1:
        snprintf(c, sizeof c, "{\"spam\": {\"level\": \"%s\"}}", lv[i % 5]);
        break;
    case 2:
        snprintf(c, sizeof c, "{\"spam\": {\"phishing\": true, \"bec\": [\"probable\"]}}");
        break;
    case 3:
        snprintf(c, sizeof c,
                 "{\"content\": {\"attachment_extensions\": [\"ex%d\", \"scr\", \"js%d\"], "
                 "\"attachment_types\": [\"disk_image\"]}}",
                 i, i);
        break;
    case 4:
        snprintf(c, sizeof c, "{\"content\": {\"attachment_names\": [\"invoice_%d*.pdf\", \"*.w%dsf\"]}}", i,
                 i);
        break;
    case 5:
        snprintf(c, sizeof c,
                 "{\"content\": {\"keywords\": [{\"pattern\": \"(?i)wire transfer %d\"}, {\"pattern\": "
                 "\"請求書%d\"}]}}",
                 i, i);
        break;
    case 6:
        snprintf(c, sizeof c,
                 "{\"content\": {\"keywords\": [{\"pattern\": \"^X-Campaign-%d:\", \"in\": [\"headers\"]}]}}",
                 i);
        break;
    default:
        snprintf(c, sizeof c, "{\"content\": {\"message_size_over\": \"%dM\"}}", i + 10);
        break;
    }
    const char *scope = "";
    char sc[256];
    if (i % 3 == 1) {
        snprintf(sc, sizeof sc,
                 "\"recipients\": [\"u%d@acme.test\", \"*@sub%d.acme.test\", \"alice@acme.test\"], "
                 "\"exclude_recipients\": [\"boss@acme.test\"], ",
                 i, i);
        scope = sc;
    }
    buf_printf(
        b,
        "%s{\"name\": \"rule %d\", \"direction\": \"inbound\", %s\"criteria\": %s, "
        "\"actions\": {\"tag_subject\": \"[%d]\", \"x_header\": {\"name\": \"X-R\", \"value\": \"%d\"}}}",
        i ? "," : "", i, scope, c, i, i);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    static const int def[] = {10, 100, 1000};
    int counts[16], nc = 0;
    for (int i = 1; i < argc && nc < 16; i++) {
        uint64_t v;
        if (core_parse_u64(argv[i], POLICY_MAX_RULES, &v) < 0 || v == 0) {
            fprintf(stderr, "usage: %s [RULES (1..%d)...]\n", argv[0], POLICY_MAX_RULES);
            return 1;
        }
        counts[nc++] = (int)v;
    }
    if (!nc)
        for (; nc < 3; nc++)
            counts[nc] = def[nc];

    /* the message */
    struct analysis a;
    memset(&a, 0, sizeof a);
    struct buf text;
    buf_init(&text, 1 << 20);
    while (text.len < 3000)
        buf_append_str(&text,
                       "Dear customer, please find the quarterly report attached. ご確認をお願いします。\n");
    a.subject = "Quarterly report and invoice";
    a.text = (char *)buf_cstr(&text);
    a.text_len = text.len;
    a.size = 48000;
    a.spam_levels = 0x10; /* spam only at "highest" */
    a.spam_score = 0.7;
    struct mime_header hdr[15];
    for (int i = 0; i < 15; i++)
        hdr[i] = (struct mime_header){(char *)"Received", (char *)"from mx.example.test by moat with ESMTPS"};
    a.headers = hdr;
    a.nheaders = 15;
    struct mime_member mem[3] = {
        {.path = (char *)"r.zip/a.txt", .true_type = (char *)"text/plain", .size = 100},
        {.path = (char *)"r.zip/b.png", .true_type = (char *)"image/png", .size = 100},
        {.path = (char *)"r.zip/c/d.csv", .true_type = (char *)"text/csv", .size = 100},
    };
    struct mime_attachment att[2] = {
        {.filename = (char *)"report.pdf",
         .extension = (char *)"pdf",
         .true_type = (char *)"application/pdf",
         .size = 30000},
        {.filename = (char *)"r.zip",
         .extension = (char *)"zip",
         .true_type = (char *)"application/zip",
         .size = 9000,
         .members = mem,
         .nmembers = 3},
    };
    a.attachments = att;
    a.nattachments = 2;
    struct detection det[2] = {
        {(char *)"graymail", (char *)"newsletter", 0.6, (char *)"x", NULL},
        {(char *)"phishing", (char *)"brand", 0.3, (char *)"x", NULL},
    };
    a.detections = det;
    a.ndetections = 2;
    const char *rcpts[3] = {"alice@acme.test", "bob@acme.test", "boss@acme.test"};
    struct policy_envelope env = {.sender = "news@vendor.test",
                                  .client_ip = "198.51.100.7",
                                  .rcpts = rcpts,
                                  .nrcpts = 3,
                                  .direction = POLICY_INBOUND};

    printf("rules\tcompile_ms\teval_us_per_msg\tns_per_rule_per_rcpt\tmatched_rules\n");
    for (int c = 0; c < nc; c++) {
        struct buf doc;
        buf_init(&doc, 16 << 20);
        buf_append_str(
            &doc, "{\"company_id\": \"acme\", \"domains\": [{\"name\": \"acme.test\"}], \"policies\": [");
        for (int i = 0; i < counts[c]; i++)
            rule(&doc, i);
        buf_append_str(&doc, "]}");
        char err[512];
        double t0 = now();
        struct policy_set *s = policy_compile(buf_cstr(&doc), doc.len, err, sizeof err);
        double tc = now() - t0;
        buf_free(&doc);
        if (!s) {
            fprintf(stderr, "compile: %s\n", err);
            return 2;
        }
        struct policy_result r;
        size_t matched = 0;
        policy_evaluate(s, &a, &env, &r); /* warm-up (scratch) */
        for (size_t i = 0; i < r.rcpts[0].ntrace; i++)
            matched += r.rcpts[0].trace[i].outcome == POLICY_MATCHED;
        policy_result_free(&r);
        long n = 0;
        t0 = now();
        double el;
        do {
            for (int k = 0; k < 50; k++) {
                policy_evaluate(s, &a, &env, &r);
                policy_result_free(&r);
            }
            n += 50;
            el = now() - t0;
        } while (el < 1.0);
        double us = el / (double)n * 1e6;
        printf("%d\t%.1f\t%.2f\t%.1f\t%zu\n", counts[c], tc * 1000, us, us * 1000 / counts[c] / 3, matched);
        policy_set_unref(s);
    }
    buf_free(&text);
    policy_thread_done();
    return 0;
}
