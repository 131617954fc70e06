/* test_store_tracking.c - message tracking: the batched writer (batching,
 * flush, linger, stop), search filters, tenant isolation in search and
 * timeline, purge, odd input (no qid, recipient before message, bad UTF-8). */
#include <pthread.h>
#include <time.h>

#include "store_test.h"

static double now_;

static void track_msg(struct tracker *t, const char *qid, double tm, const char *sender, const char *subject,
                      const char *action, const char *reason, const char *const *rcpts,
                      const char *const *companies, size_t n)
{
    struct track_message m = {
        .qid = qid,
        .time = tm,
        .direction = "inbound",
        .client_ip = "198.51.100.7",
        .helo = "mail.ext.test",
        .tls = "TLSv1.3 TLS_AES_256_GCM_SHA384",
        .sender = sender,
        .size = 1234,
        .message_id = "<id@ext.test>",
        .subject = subject,
        .header_from = sender,
        .action = action,
        .reason = reason,
        .rcpts = rcpts,
        .rcpt_company = companies,
        .nrcpts = n,
    };
    tracker_message(t, &m);
}

static void track_rcpt(struct tracker *t, const char *qid, double tm, const char *rcpt, const char *status,
                       const char *server, const char *reply)
{
    struct track_recipient r = {.qid = qid,
                                .time = tm,
                                .rcpt = rcpt,
                                .status = status,
                                .server = server,
                                .tls = NULL,
                                .reply = reply};
    tracker_recipient(t, &r);
}

static struct tracker *start(struct tenv *e)
{
    char err[256];
    struct tracker *t = tracker_start(&e->cfg, err, sizeof err);
    if (!t)
        fail_msg("tracker_start: %s", err);
    return t;
}

/* Three messages, two tenants: acme (acme.test) and beta (beta.test). */
static void fixture(struct tenv *e)
{
    import_ok(e->st, TEST_DOC, false);
    import_ok(e->st, BETA_DOC, false);
    now_ = core_now();
    struct tracker *t = start(e);
    const char *r1[] = {"a@acme.test", "b@beta.test"};
    const char *c1[] = {"acme", NULL}; /* beta derived from the domain */
    track_msg(t, "Q1", now_ - 7200, "alice@ext.test", "Invoice 42", "accepted", NULL, r1, c1, 2);
    track_rcpt(t, "Q1", now_ - 7199, "a@acme.test", "queued", NULL, NULL);
    track_rcpt(t, "Q1", now_ - 7198, "b@beta.test", "queued", NULL, NULL);
    struct track_recipient dl = {.qid = "Q1",
                                 .time = now_ - 7190,
                                 .rcpt = "a@acme.test",
                                 .status = "delivered",
                                 .server = "mx.acme.test:25 [192.0.2.1]",
                                 .tls = "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256",
                                 .reply = "250 2.0.0 ok"};
    tracker_recipient(t, &dl);
    track_rcpt(t, "Q1", now_ - 7189, "b@beta.test", "delivered", "127.0.0.1:10025 [127.0.0.1]",
               "250 beta ok");
    struct track_event ev = {.qid = "Q1",
                             .time = now_ - 7195,
                             .rcpt = "a@acme.test",
                             .event = "policy",
                             .detail = "not matched (p1)"};
    tracker_event(t, &ev);
    const char *r2[] = {"c@acme.test"};
    track_msg(t, "Q2", now_ - 60, "", "Hello", "accepted", NULL, r2, NULL, 1);
    track_rcpt(t, "Q2", now_ - 59, "c@acme.test", "deferred", "mx.acme.test:25 [192.0.2.1]",
               "451 4.3.0 try later");
    const char *r3[] = {"x@acme.test"};
    track_msg(t, "Q3", now_ - 30, "spammer@evil.test", "Buy now", "rejected",
              "Exceeded limit \xE2\x80\x93 message count (by IP address)", r3, NULL, 1);
    tracker_stop(t); /* flushes */
}

static long search(struct tenv *e, const struct track_query *q, struct track_row **rows)
{
    long n = store_tracking_search(e->st, q, rows);
    assert_true(n >= 0);
    return n;
}

static void test_search_filters(void **state)
{
    struct tenv *e = *state;
    fixture(e);
    struct track_row *rows;
    struct track_query q;

    memset(&q, 0, sizeof q);
    long n = search(e, &q, &rows);
    assert_int_equal(n, 4);
    assert_string_equal(rows[0].qid, "Q3");
    assert_string_equal(rows[0].action, "rejected");
    assert_string_equal(rows[0].reason, "Exceeded limit \xE2\x80\x93 message count (by IP address)");
    assert_null(rows[0].status);
    assert_string_equal(rows[1].qid, "Q2");
    assert_string_equal(rows[1].sender, "");
    assert_string_equal(rows[1].status, "deferred");
    assert_string_equal(rows[1].reply, "451 4.3.0 try later");
    assert_string_equal(rows[2].qid, "Q1");
    assert_string_equal(rows[2].rcpt, "a@acme.test");
    assert_string_equal(rows[2].status, "delivered");
    assert_string_equal(rows[2].server, "mx.acme.test:25 [192.0.2.1]");
    assert_string_equal(rows[2].client_ip, "198.51.100.7");
    assert_string_equal(rows[2].subject, "Invoice 42");
    assert_string_equal(rows[2].message_id, "<id@ext.test>");
    assert_string_equal(rows[2].tls, "TLSv1.3 TLS_AES_256_GCM_SHA384");
    assert_string_equal(rows[2].delivery_tls, "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256");
    assert_null(rows[1].delivery_tls);
    assert_int_equal(rows[2].size, 1234);
    assert_true(rows[2].time > now_ - 7201 && rows[2].time < now_ - 7199);
    assert_string_equal(rows[3].rcpt, "b@beta.test");
    store_tracking_rows_free(rows, n);

    static const struct {
        struct track_query q;
        long n;
        const char *first_qid, *first_rcpt;
    } cases[] = {
        {{.rcpt = "A@ACME.TEST"}, 1, "Q1", "a@acme.test"},
        {{.rcpt = "*@acme.test"}, 3, "Q3", "x@acme.test"},
        {{.rcpt = "*@ACME.*"}, 3, "Q3", "x@acme.test"},
        {{.rcpt = "a_acme.test"}, 0, NULL, NULL},
        {{.rcpt = "*_*"}, 0, NULL, NULL}, /* '_' is literal, not a LIKE wildcard */
        {{.sender = "*@ext.test"}, 2, "Q1", "a@acme.test"},
        {{.sender = "ALICE@ext.test"}, 2, "Q1", "a@acme.test"},
        {{.sender = ""}, 1, "Q2", "c@acme.test"},
        {{.action = "delivered"}, 2, "Q1", "a@acme.test"},
        {{.action = "rejected"}, 1, "Q3", "x@acme.test"},
        {{.action = "ACCEPTED"}, 3, "Q2", "c@acme.test"},
        {{.action = "deferred"}, 1, "Q2", "c@acme.test"},
        {{.subject = "invoice"}, 2, "Q1", "a@acme.test"},
        {{.subject = "%"}, 0, NULL, NULL},
        {{.qid = "Q2"}, 1, "Q2", "c@acme.test"},
        {{.qid = "Q9"}, 0, NULL, NULL},
        {{.since = 1}, 4, "Q3", "x@acme.test"},
        {{.limit = 2}, 2, "Q3", "x@acme.test"},
        {{.rcpt = "b@beta.test", .action = "delivered"}, 1, "Q1", "b@beta.test"},
        {{.rcpt = "b@beta.test", .action = "rejected"}, 0, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        n = search(e, &cases[i].q, &rows);
        if (n != cases[i].n)
            fail_msg("case %zu: %ld rows, want %ld", i, n, cases[i].n);
        if (n > 0) {
            assert_string_equal(rows[0].qid, cases[i].first_qid);
            assert_string_equal(rows[0].rcpt, cases[i].first_rcpt);
        }
        store_tracking_rows_free(rows, n);
    }
    /* time window */
    memset(&q, 0, sizeof q);
    q.since = now_ - 600;
    n = search(e, &q, &rows);
    assert_int_equal(n, 2);
    store_tracking_rows_free(rows, n);
    q.since = 0;
    q.until = now_ - 600;
    n = search(e, &q, &rows);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].qid, "Q1");
    store_tracking_rows_free(rows, n);
}

static void test_tenant_isolation(void **state)
{
    struct tenv *e = *state;
    fixture(e);
    struct track_row *rows;
    struct track_query q;
    memset(&q, 0, sizeof q);

    q.company_id = "acme";
    long n = search(e, &q, &rows);
    assert_int_equal(n, 3);
    for (long i = 0; i < n; i++) {
        assert_null(strstr(rows[i].rcpt, "beta"));
        assert_null(strstr(rows[i].server ? rows[i].server : "", "10025"));
    }
    store_tracking_rows_free(rows, n);

    q.company_id = "BETA"; /* case-insensitive like company IDs */
    n = search(e, &q, &rows);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].rcpt, "b@beta.test");
    assert_string_equal(rows[0].reply, "250 beta ok");
    store_tracking_rows_free(rows, n);

    /* filters never widen the scope */
    static const struct track_query beta_probes[] = {
        {.company_id = "beta", .rcpt = "a@acme.test"},
        {.company_id = "beta", .qid = "Q2"},
        {.company_id = "beta", .rcpt = "*"},
        {.company_id = "beta", .action = "rejected"},
        {.company_id = "nobody"},
        {.company_id = ""},
    };
    for (size_t i = 0; i < sizeof beta_probes / sizeof beta_probes[0]; i++) {
        n = search(e, &beta_probes[i], &rows);
        if (i == 2) {
            assert_int_equal(n, 1);
            assert_string_equal(rows[0].rcpt, "b@beta.test");
        } else if (n != 0) {
            fail_msg("probe %zu saw %ld rows", i, n);
        }
        store_tracking_rows_free(rows, n);
    }

    /* timelines */
    assert_null(store_tracking_timeline(e->st, "beta", "Q2"));
    assert_null(store_tracking_timeline(e->st, "nobody", "Q1"));
    char *tl = store_tracking_timeline(e->st, "acme", "Q1");
    assert_non_null(tl);
    assert_non_null(strstr(tl, "a@acme.test"));
    assert_null(strstr(tl, "beta"));
    free(tl);
    tl = store_tracking_timeline(e->st, "beta", "Q1");
    assert_non_null(tl);
    assert_non_null(strstr(tl, "b@beta.test"));
    assert_null(strstr(tl, "acme.test"));
    assert_null(strstr(tl, "not matched (p1)"));
    free(tl);
    tl = store_tracking_timeline(e->st, NULL, "Q1");
    assert_non_null(strstr(tl, "a@acme.test"));
    assert_non_null(strstr(tl, "b@beta.test"));
    free(tl);
}

static void test_timeline(void **state)
{
    struct tenv *e = *state;
    fixture(e);
    assert_null(store_tracking_timeline(e->st, NULL, "NOPE"));
    assert_null(store_tracking_timeline(e->st, NULL, NULL));
    char *tl = store_tracking_timeline(e->st, NULL, "Q1");
    assert_non_null(tl);
    json_t *a = json_loads(tl, 0, NULL);
    free(tl);
    assert_true(json_is_array(a));
    /* accepted, queued a, queued b, policy a, delivered a, delivered b - in time order */
    static const char *const want[][2] = {{"accepted", NULL},           {"queued", "a@acme.test"},
                                          {"queued", "b@beta.test"},    {"policy", "a@acme.test"},
                                          {"delivered", "a@acme.test"}, {"delivered", "b@beta.test"}};
    assert_int_equal(json_array_size(a), 6);
    for (size_t i = 0; i < 6; i++) {
        json_t *ev = json_array_get(a, i);
        assert_string_equal(json_string_value(json_object_get(ev, "event")), want[i][0]);
        if (want[i][1])
            assert_string_equal(json_string_value(json_object_get(ev, "rcpt")), want[i][1]);
        else
            assert_null(json_object_get(ev, "rcpt"));
        assert_non_null(json_string_value(json_object_get(ev, "time")));
    }
    json_t *first = json_array_get(a, 0);
    assert_string_equal(json_string_value(json_object_get(first, "client_ip")), "198.51.100.7");
    assert_string_equal(json_string_value(json_object_get(first, "tls")), "TLSv1.3 TLS_AES_256_GCM_SHA384");
    assert_string_equal(json_string_value(json_object_get(first, "sender")), "alice@ext.test");
    assert_int_equal(json_array_size(json_object_get(first, "recipients")), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 3), "text")), "not matched (p1)");
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 4), "reply")), "250 2.0.0 ok");
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 4), "server")),
                        "mx.acme.test:25 [192.0.2.1]");
    json_decref(a);
}

static void test_tracker_batching_flush(void **state)
{
    struct tenv *e = *state;
    struct tracker *t = start(e);
    double base = core_now();
    /* more than two batches */
    for (int i = 0; i < 1234; i++) {
        char qid[32], rcpt[64];
        snprintf(qid, sizeof qid, "B%05d", i);
        snprintf(rcpt, sizeof rcpt, "u%d@acme.test", i);
        const char *r[] = {rcpt};
        track_msg(t, qid, base + i * 0.001, "s@ext.test", "bulk", "accepted", NULL, r, NULL, 1);
    }
    tracker_flush(t);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM track_messages"), 1234);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM track_recipients"), 1234);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM track_events"), 1234);
    tracker_flush(t); /* nothing pending: returns at once */

    /* without a flush, a lone record is written after the linger time */
    const char *r[] = {"late@acme.test"};
    track_msg(t, "LATE", base, "s@ext.test", "late", "accepted", NULL, r, NULL, 1);
    long found = 0;
    for (int i = 0; i < 200 && found == 0; i++) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        found = db_count(e, "SELECT COUNT(*) FROM track_messages WHERE qid = 'LATE'");
    }
    assert_int_equal(found, 1);
    assert_int_equal(tracker_dropped(t), 0);

    /* stop writes what is still queued */
    for (int i = 0; i < 50; i++) {
        char qid[32];
        snprintf(qid, sizeof qid, "S%03d", i);
        track_rcpt(t, qid, base, "x@acme.test", "queued", NULL, NULL);
    }
    tracker_stop(t);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM track_messages WHERE qid LIKE 'S%'"), 50);
    tracker_flush(NULL);
    tracker_stop(NULL);
}

/* Several threads feed one tracker at once. */
struct feeder {
    struct tracker *t;
    int id;
};

static void *feed(void *arg)
{
    struct feeder *f = arg;
    for (int i = 0; i < 300; i++) {
        char qid[32];
        snprintf(qid, sizeof qid, "T%d-%d", f->id, i);
        track_rcpt(f->t, qid, 0, "y@acme.test", "queued", NULL, NULL);
        if (i % 100 == 0)
            tracker_flush(f->t);
    }
    return NULL;
}

static void test_tracker_threads(void **state)
{
    struct tenv *e = *state;
    struct tracker *t = start(e);
    pthread_t th[4];
    struct feeder f[4];
    for (int i = 0; i < 4; i++) {
        f[i].t = t;
        f[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, feed, &f[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    tracker_flush(t);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM track_recipients"), 1200);
    tracker_stop(t);
}

static void test_odd_input(void **state)
{
    struct tenv *e = *state;
    import_ok(e->st, TEST_DOC, false);
    struct tracker *t = start(e);
    /* a recipient update before (or without) its message */
    track_rcpt(t, "EARLY", 0, "a@acme.test", "delivered", "h:25 [192.0.2.1]", "250 ok");
    /* no queue ID: one is made up */
    const char *r[] = {"b@acme.test", NULL};
    track_msg(t, NULL, 0, "x@ext.test", "no qid \xFF\xFE bytes", "rejected", "550 no", r, NULL, 2);
    tracker_flush(t);
    const char *r2[] = {"a@acme.test"};
    track_msg(t, "EARLY", core_now() - 5, "late@ext.test", "s", "accepted", NULL, r2, NULL, 1);
    tracker_stop(t);

    struct track_row *rows;
    struct track_query q = {.qid = "EARLY"};
    long n = search(e, &q, &rows);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].status, "delivered");
    assert_string_equal(rows[0].sender, "late@ext.test");
    assert_string_equal(rows[0].action, "accepted");
    store_tracking_rows_free(rows, n);

    struct track_query q2 = {.subject = "no qid", .company_id = "acme"};
    n = search(e, &q2, &rows);
    assert_int_equal(n, 1); /* company derived from acme.test */
    assert_true(core_qid_valid(rows[0].qid));
    assert_string_equal(rows[0].subject, "no qid ?? bytes");
    char *tl = store_tracking_timeline(e->st, "acme", rows[0].qid);
    assert_non_null(tl);
    json_t *j = json_loads(tl, 0, NULL);
    assert_non_null(j);
    json_decref(j);
    free(tl);
    store_tracking_rows_free(rows, n);
}

static void test_purge(void **state)
{
    struct tenv *e = *state;
    import_ok(e->st, TEST_DOC, false);
    struct tracker *t = start(e);
    double now = core_now();
    for (int i = 0; i < 6000; i++) { /* more than one purge chunk */
        char qid[32];
        snprintf(qid, sizeof qid, "OLD%05d", i);
        const char *r[] = {"a@acme.test"};
        track_msg(t, qid, now - 100 * 86400.0 + i, "s@ext.test", "old", "accepted", NULL, r, NULL, 1);
        track_rcpt(t, qid, now - 100 * 86400.0 + i + 1, "a@acme.test", "delivered", NULL, "250");
    }
    const char *r[] = {"a@acme.test"};
    track_msg(t, "NEW", now - 86400, "s@ext.test", "new", "accepted", NULL, r, NULL, 1);
    tracker_stop(t);
    assert_int_equal(store_tracking_purge(e->st, now - 90 * 86400.0), 6000);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM track_messages"), 1);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM track_recipients"), 1);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM track_events"), 1);
    assert_null(store_tracking_timeline(e->st, NULL, "OLD00001"));
    char *tl = store_tracking_timeline(e->st, NULL, "NEW");
    assert_non_null(tl);
    free(tl);
    assert_int_equal(store_tracking_purge(e->st, now - 90 * 86400.0), 0);
    assert_int_equal(store_tracking_purge(e->st, now), 1);
}

int main(void)
{
    log_init("test", false, LOG_LVL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_search_filters, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_tenant_isolation, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_timeline, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_tracker_batching_flush, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_tracker_threads, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_odd_input, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_purge, tenv_setup, tenv_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
