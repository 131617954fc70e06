/* store_test.h - helpers for the store unit tests: a fresh data_dir under
 * /tmp per test, a config pointing at it, the test tenant documents. */
#ifndef MOAT_STORE_TEST_H
#define MOAT_STORE_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <ftw.h>
#include <jansson.h>
#include <sqlite3.h>

#include "core/core.h"
#include "store/store.h"

struct tenv {
    char dir[64];
    struct moat_config cfg;
    struct store *st;
};

static int tenv_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* tenv_setup - a new temp dir, cfg.data_dir = dir/var, the store opened */
static inline struct tenv *tenv_new(void)
{
    struct tenv *e = calloc(1, sizeof *e);
    char err[512];
    snprintf(e->dir, sizeof e->dir, "/tmp/moat-store-test-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    config_defaults(&e->cfg);
    char dd[128];
    snprintf(dd, sizeof dd, "%s/var", e->dir);
    assert_null(config_set(&e->cfg, "data_dir", dd));
    if (store_open(&e->cfg, &e->st, err, sizeof err) != 0)
        fail_msg("store_open: %s", err);
    return e;
}

static inline void tenv_free(struct tenv *e)
{
    store_close(e->st);
    config_free(&e->cfg);
    nftw(e->dir, tenv_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(e);
}

static inline int tenv_setup(void **state)
{
    *state = tenv_new();
    return 0;
}

static inline int tenv_teardown(void **state)
{
    tenv_free(*state);
    return 0;
}

/* import_str - import a document; returns the result code, err filled */
static inline int import_str(struct store *st, const char *doc, bool trust, char *err, size_t errsz)
{
    return store_import_json(st, doc, strlen(doc), trust, err, errsz);
}

/* import_ok - import that must succeed */
static inline void import_ok(struct store *st, const char *doc, bool trust)
{
    char err[1024];
    int rc = import_str(st, doc, trust, err, sizeof err);
    if (rc != 0)
        fail_msg("import failed (%d): %s", rc, err);
}

/* A small but complete document: two domains, a policy, every list. */
static const char TEST_DOC[] =
    "{\"tenants\": [{"
    "  \"company_id\": \"acme\", \"name\": \"Acme\", \"admin_email\": \"admin@acme.test\","
    "  \"domains\": ["
    "    {\"name\": \"acme.test\", \"inbound_servers\": [{\"host\": \"mx.acme.test\", \"port\": 25, "
    "\"preference\": 10}]},"
    "    {\"name\": \"acme2.test\", \"inbound_servers\": [{\"host\": \"192.0.2.10\"}, {\"host\": "
    "\"192.0.2.11\", "
    "\"port\": 2525, \"preference\": 20}],"
    "     \"tls\": \"required\", \"recipients\": [\"a@acme2.test\", \"B@acme2.test\"],"
    "     \"outbound\": {\"enabled\": true, \"sending_servers\": [\"198.51.100.0/24\", \"2001:db8::/32\"]}}"
    "  ],"
    "  \"policies\": [{\"name\": \"p1\", \"direction\": \"inbound\", \"criteria\": {\"spam\": {\"level\": "
    "\"high\"}},"
    "                \"actions\": {\"intercept\": \"quarantine\"}}],"
    "  \"approved_senders\": [\"ok@partner.test\"],"
    "  \"blocked_senders\": [\"*@evil.test\", \"203.0.113.0/24\"],"
    "  \"high_profile_domains\": [\"acme.test\"],"
    "  \"high_profile_users\": [{\"name\": \"Boss\", \"address\": \"boss@acme.test\"}],"
    "  \"web_reputation\": {\"blocked\": [\"*.Bad.test\", \"HTTPS://Evil.TEST/login?x=1\"],"
    "                     \"approved\": [\"good.test\"]},"
    "  \"file_passwords\": [\"Secret1\", \"パスワード\"]"
    "}]}";

static const char BETA_DOC[] = "{\"tenants\": [{\"company_id\": \"beta\", \"name\": \"Beta\","
                               "  \"domains\": [{\"name\": \"beta.test\", \"inbound_servers\": [{\"host\": "
                               "\"127.0.0.1\", \"port\": 10025}]}]"
                               "}]}";

/* db_count - SELECT COUNT(*) via a second connection */
static inline long db_count(struct tenv *e, const char *sql)
{
    char path[256];
    sqlite3 *db;
    sqlite3_stmt *s;
    long n = -1;
    snprintf(path, sizeof path, "%s/var/moat.db", e->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

#endif
