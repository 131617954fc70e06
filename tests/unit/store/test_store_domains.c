/* test_store_domains.c - the domain map snapshot: lookups (case-insensitive,
 * trailing dot not matched), routing fields, recipient lists, reference
 * counting, snapshots being immutable. */
#include "store_test.h"

static void test_lookup(void **state)
{
    struct tenv *e = *state;
    import_ok(e->st, TEST_DOC, false);
    import_ok(e->st, BETA_DOC, false);
    struct domain_map *m = store_domain_map_load(e->st);
    assert_non_null(m);

    const struct domain_entry *d = domain_map_find(m, "acme.test");
    assert_non_null(d);
    assert_string_equal(d->name, "acme.test");
    assert_string_equal(d->company_id, "acme");
    assert_false(d->verified);
    assert_int_equal(d->tls, DOMAIN_TLS_OPPORTUNISTIC);
    assert_int_equal(d->nservers, 1);
    assert_string_equal(d->servers[0].host, "mx.acme.test");
    assert_int_equal(d->servers[0].port, 25);
    assert_int_equal(d->servers[0].preference, 10);
    assert_null(d->recipients);
    assert_false(d->outbound_enabled);
    assert_int_equal(d->nsending_servers, 0);
    assert_int_equal(strlen(d->verification_token), 32);

    assert_ptr_equal(domain_map_find(m, "ACME.Test"), d);
    assert_null(domain_map_find(m, "acme.test."));
    assert_null(domain_map_find(m, "sub.acme.test"));
    assert_null(domain_map_find(m, "cme.test"));
    assert_null(domain_map_find(m, "zzz.test"));
    assert_null(domain_map_find(m, "aaa.test"));
    assert_null(domain_map_find(m, ""));
    char huge[400];
    memset(huge, 'a', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    assert_null(domain_map_find(m, huge));
    assert_null(domain_map_find(m, NULL));

    const struct domain_entry *d2 = domain_map_find(m, "ACME2.TEST");
    assert_non_null(d2);
    assert_int_equal(d2->tls, DOMAIN_TLS_REQUIRED);
    assert_int_equal(d2->nservers, 2);
    assert_string_equal(d2->servers[1].host, "192.0.2.11");
    assert_int_equal(d2->servers[1].port, 2525);
    assert_int_equal(d2->servers[1].preference, 20);
    assert_int_equal(d2->servers[0].port, 25);
    assert_true(d2->outbound_enabled);
    assert_int_equal(d2->nsending_servers, 2);
    assert_string_equal(d2->sending_servers[0], "198.51.100.0/24");
    assert_string_equal(d2->sending_servers[1], "2001:db8::/32");

    const struct domain_entry *b = domain_map_find(m, "beta.test");
    assert_non_null(b);
    assert_string_equal(b->company_id, "beta");
    assert_int_equal(b->servers[0].port, 10025);
    domain_map_unref(m);
}

static void test_recipients(void **state)
{
    struct tenv *e = *state;
    import_ok(e->st, TEST_DOC, false);
    struct domain_map *m = store_domain_map_load(e->st);
    const struct domain_entry *d2 = domain_map_find(m, "acme2.test");
    assert_non_null(d2->recipients);
    assert_int_equal(d2->nrecipients, 2);
    assert_string_equal(d2->recipients[0], "a@acme2.test");
    assert_string_equal(d2->recipients[1], "b@acme2.test"); /* lower-cased, sorted */
    assert_true(domain_entry_has_recipient(d2, "a@acme2.test"));
    assert_true(domain_entry_has_recipient(d2, "A@ACME2.TEST"));
    assert_true(domain_entry_has_recipient(d2, "b@acme2.test"));
    assert_false(domain_entry_has_recipient(d2, "c@acme2.test"));
    assert_false(domain_entry_has_recipient(d2, "a@acme2.test."));
    assert_false(domain_entry_has_recipient(d2, ""));
    assert_false(domain_entry_has_recipient(d2, NULL));
    const struct domain_entry *d = domain_map_find(m, "acme.test");
    assert_true(domain_entry_has_recipient(d, "anyone@acme.test")); /* no list: everyone */
    domain_map_unref(m);

    /* a bigger list: binary search over many entries */
    json_t *doc = json_loads(TEST_DOC, 0, NULL);
    json_t *rl = json_array();
    for (int i = 0; i < 3000; i++) {
        char a[64];
        snprintf(a, sizeof a, "User%04d@acme2.test", i);
        json_array_append_new(rl, json_string(a));
    }
    json_object_set_new(
        json_array_get(json_object_get(json_array_get(json_object_get(doc, "tenants"), 0), "domains"), 1),
        "recipients", rl);
    char *t = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    import_ok(e->st, t, false);
    free(t);
    m = store_domain_map_load(e->st);
    d2 = domain_map_find(m, "acme2.test");
    assert_int_equal(d2->nrecipients, 3000);
    for (int i = 0; i < 3000; i += 7) {
        char a[64];
        snprintf(a, sizeof a, "user%04d@ACME2.test", i);
        assert_true(domain_entry_has_recipient(d2, a));
    }
    assert_false(domain_entry_has_recipient(d2, "user3000@acme2.test"));
    assert_false(domain_entry_has_recipient(d2, "a@acme2.test"));
    domain_map_unref(m);
}

static void test_snapshot_refcount(void **state)
{
    struct tenv *e = *state;
    struct domain_map *empty = store_domain_map_load(e->st);
    assert_non_null(empty);
    assert_null(domain_map_find(empty, "acme.test"));
    import_ok(e->st, TEST_DOC, false);
    struct domain_map *m = store_domain_map_load(e->st);
    domain_map_ref(m);
    domain_map_unref(m);
    /* the snapshot does not change when the store does */
    import_ok(e->st, BETA_DOC, false);
    assert_null(domain_map_find(m, "beta.test"));
    assert_null(domain_map_find(empty, "acme.test"));
    const struct domain_entry *d = domain_map_find(m, "acme.test");
    assert_non_null(d);
    domain_map_unref(m);
    domain_map_unref(empty);
    domain_map_unref(NULL);
    /* verified shows up after the DNS check */
    assert_int_equal(store_domain_set_verified(e->st, "acme", "acme.test", true), 0);
    m = store_domain_map_load(e->st);
    assert_true(domain_map_find(m, "acme.test")->verified);
    domain_map_unref(m);
}

/* Outbound sending servers: CIDRs and provider names (expanded from
 * data/lists/sending-providers.txt); only a verified, enabled domain sends. */
static void test_sending_servers(void **state)
{
    struct tenv *e = *state;
    char err[1024];
    const char *doc = "{\"tenants\": [{\"company_id\": \"out\", \"domains\": ["
                      "{\"name\": \"out.test\", \"verified\": true, \"inbound_servers\": [{\"host\": \"127.0.0.1\"}],"
                      " \"outbound\": {\"enabled\": true, \"sending_servers\": [\"192.0.2.0/28\", \"Microsoft365\"]}},"
                      "{\"name\": \"off.test\", \"verified\": true, \"inbound_servers\": [{\"host\": \"127.0.0.1\"}],"
                      " \"outbound\": {\"enabled\": false, \"sending_servers\": [\"192.0.2.0/28\"]}},"
                      "{\"name\": \"pending.test\", \"inbound_servers\": [{\"host\": \"127.0.0.1\"}],"
                      " \"outbound\": {\"enabled\": true, \"sending_servers\": [\"google_workspace\"]}}]}]}";
    assert_int_equal(store_import_json(e->st, doc, strlen(doc), true, err, sizeof err), 0);
    struct domain_map *m = store_domain_map_load(e->st);
    const struct domain_entry *d = domain_map_find(m, "out.test");
    assert_true(d->nsending_servers > 2);
    assert_true(domain_entry_sends_from(d, "192.0.2.15"));
    assert_false(domain_entry_sends_from(d, "192.0.2.16"));
    assert_true(domain_entry_sends_from(d, "40.107.22.1"));     /* Microsoft 365 */
    assert_true(domain_entry_sends_from(d, "2a01:111:f400::5"));
    assert_false(domain_entry_sends_from(d, "209.85.128.1"));   /* Google: not listed */
    assert_false(domain_entry_sends_from(d, "not an ip"));
    assert_false(domain_entry_sends_from(domain_map_find(m, "off.test"), "192.0.2.1"));
    assert_false(domain_entry_sends_from(domain_map_find(m, "pending.test"), "209.85.128.1"));
    assert_false(domain_entry_sends_from(NULL, "192.0.2.1"));
    domain_map_unref(m);
    /* the export keeps the provider name */
    char *x = store_export_json(e->st, "out", err, sizeof err);
    assert_non_null(strstr(x, "\"microsoft365\""));
    free(x);
    const char *bad = "{\"tenants\": [{\"company_id\": \"out\", \"domains\": ["
                      "{\"name\": \"out.test\", \"inbound_servers\": [{\"host\": \"127.0.0.1\"}],"
                      " \"outbound\": {\"enabled\": true, \"sending_servers\": [\"yahoo\"]}}]}]}";
    assert_int_equal(store_import_json(e->st, bad, strlen(bad), false, err, sizeof err), 1);
    assert_non_null(strstr(err, "\"yahoo\" is not a valid IP address or CIDR"));
}

int main(void)
{
    log_init("test", false, LOG_LVL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lookup, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_recipients, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_refcount, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_sending_servers, tenv_setup, tenv_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
