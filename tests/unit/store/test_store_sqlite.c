/* test_store_sqlite.c - opening the store: data_dir creation, WAL,
 * migrations on a fresh database, re-opening, refusing a newer schema,
 * the PostgreSQL placeholder. */
#include <sys/stat.h>
#include <sys/wait.h>

#include "store_test.h"

static void test_fresh_db_migrations(void **state)
{
    struct tenv *e = *state;
    /* every migration applied once, in order */
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM schema_migrations"), 12);
    assert_int_equal(db_count(e, "SELECT MAX(version) FROM schema_migrations"), 12);
    static const char *const tables[] = {"meta",
                                         "tenants",
                                         "domains",
                                         "domain_servers",
                                         "domain_recipients",
                                         "domain_sending_servers",
                                         "policies",
                                         "sender_lists",
                                         "high_profile_domains",
                                         "high_profile_users",
                                         "audit_log",
                                         "track_messages",
                                         "track_recipients",
                                         "track_events",
                                         "accounts",
                                         "account_recovery",
                                         "sessions",
                                         "api_tokens",
                                         "tenant_security",
                                         "end_users"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        char sql[200];
        snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = '%s'",
                 tables[i]);
        assert_int_equal(db_count(e, sql), 1);
    }
    assert_int_equal(store_config_version(e->st), 0);

    /* WAL mode and file modes */
    char path[256];
    struct stat sb;
    snprintf(path, sizeof path, "%s/var", e->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/var/moat.db", e->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0077, 0);
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);
}

static void test_reopen_is_noop(void **state)
{
    struct tenv *e = *state;
    char err[256];
    import_ok(e->st, TEST_DOC, false);
    store_close(e->st);
    assert_int_equal(store_open(&e->cfg, &e->st, err, sizeof err), 0);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM schema_migrations"), 12);
    assert_int_equal(store_config_version(e->st), 1);
    /* two connections at once */
    struct store *st2;
    assert_int_equal(store_open(&e->cfg, &st2, err, sizeof err), 0);
    assert_int_equal(store_config_version(st2), 1);
    store_close(st2);
}

/* test_threats_backfill - migration 11 fills track_messages.threats from
 * the events of the messages tracked before it (a store upgraded with
 * tracking in it keeps its dashboard statistics) */
static void test_threats_backfill(void **state)
{
    struct tenv *e = *state;
    char err[256], path[256];
    sqlite3 *db;
    store_close(e->st);
    e->st = NULL;
    snprintf(path, sizeof path, "%s/var/moat.db", e->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    /* back to schema 10 with three tracked messages */
    const char *sql =
        "DROP INDEX track_messages_stats;"
        "DROP INDEX track_recipients_stats;"
        "ALTER TABLE track_messages DROP COLUMN threats;"
        "ALTER TABLE account_profile DROP COLUMN wizard_step;"
        "DELETE FROM schema_migrations WHERE version >= 11;"
        "INSERT INTO track_messages(id, qid, time) VALUES(1, 'A', 1), (2, 'B', 2), (3, 'C', 3);"
        "INSERT INTO track_events(message, time, rcpt, event, detail) VALUES"
        " (1, 1, NULL, 'accepted', '{\"detections\":[{\"category\":\"virus\"},{\"category\":\"spam\"},"
        "{\"category\":\"virus\"}]}'),"
        " (2, 2, NULL, 'accepted', '{\"detections\":[]}'),"
        " (2, 2, 'x@y.test', 'delivered', '{\"detections\":[{\"category\":\"spam\"}]}'),"
        " (3, 3, NULL, 'accepted', 'not json \"detections\":[{');";
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_open(&e->cfg, &e->st, err, sizeof err), 0);
    assert_int_equal(db_count(e, "SELECT MAX(version) FROM schema_migrations"), 12);
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM track_messages WHERE id = 1 AND "
                                 "(threats = 'virus,spam' OR threats = 'spam,virus')"), 1);
    /* no detections, a recipient-level event only, broken JSON: none */
    assert_int_equal(db_count(e, "SELECT COUNT(*) FROM track_messages WHERE id > 1 AND threats IS NOT NULL"), 0);
}

static void test_newer_schema_refused(void **state)
{
    struct tenv *e = *state;
    char path[256], err[256];
    sqlite3 *db;
    store_close(e->st);
    e->st = NULL;
    snprintf(path, sizeof path, "%s/var/moat.db", e->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO schema_migrations VALUES(99, 0)", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_open(&e->cfg, &e->st, err, sizeof err), -1);
    assert_null(e->st);
    assert_non_null(strstr(err, "database schema version 99 is newer than this program"));
}

static void test_backend_choice(void **state)
{
    struct tenv *e = *state;
    struct store *st = NULL;
    char err[256];
    assert_null(config_set(&e->cfg, "database", "postgresql://moat@localhost/moat"));
    assert_int_equal(store_open(&e->cfg, &st, err, sizeof err), -1);
    assert_null(st);
    assert_non_null(strstr(err, "PostgreSQL backend not available yet"));
    assert_null(config_set(&e->cfg, "database", "mysql"));
    assert_int_equal(store_open(&e->cfg, &st, err, sizeof err), -1);
    assert_non_null(strstr(err, "database: must be sqlite or a postgresql:// URL"));
    assert_null(config_set(&e->cfg, "database", "sqlite"));

    /* data_dir created with parents; an impossible one is an error */
    char dd[200];
    snprintf(dd, sizeof dd, "%s/a/b/c", e->dir);
    assert_null(config_set(&e->cfg, "data_dir", dd));
    assert_int_equal(store_open(&e->cfg, &st, err, sizeof err), 0);
    store_close(st);
    assert_null(config_set(&e->cfg, "data_dir", "/proc/self/nonexistent/x"));
    assert_int_equal(store_open(&e->cfg, &st, err, sizeof err), -1);
    assert_non_null(strstr(err, "data_dir /proc/self/nonexistent/x"));
}

/* count_tenants - open the database, count tenants, close; -1 on error */
static int count_tenants(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    int n = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM tenants", -1, &s, NULL) == SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW)
            n = sqlite3_column_int(s, 0);
        sqlite3_finalize(s);
    }
    sqlite3_close(db);
    return n;
}

/* child_count - count_tenants in a fresh process (this program re-executed:
 * a forked child would share SQLite's in-process lock bookkeeping). Being
 * the last connection to close, it would checkpoint and delete the WAL if
 * this process had lost its locks. */
static long child_count(const char *path)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/proc/self/exe", "unit_store_sqlite", "--count-tenants", path, (char *)NULL);
        _exit(254);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* A second store_open in the same process (the tracker's) must not drop the
 * first connection's locks: otherwise another process closing the database
 * deletes the WAL and later commits become invisible to everyone else. */
static void test_second_open_keeps_wal(void **state)
{
    struct tenv *e = *state;
    char path[256], wal[300], err[256];
    struct stat sb;
    snprintf(path, sizeof path, "%s/var/moat.db", e->dir);
    snprintf(wal, sizeof wal, "%s-wal", path);
    import_ok(e->st, TEST_DOC, false);
    struct store *st2;
    assert_int_equal(store_open(&e->cfg, &st2, err, sizeof err), 0);
    assert_int_equal(child_count(path), 1);
    assert_int_equal(stat(wal, &sb), 0);
    import_ok(st2, BETA_DOC, false);
    assert_int_equal(child_count(path), 2);
    const char *third = "{\"tenants\": [{\"company_id\": \"gamma\"}]}";
    import_ok(e->st, third, false);
    assert_int_equal(child_count(path), 3);
    assert_int_equal(stat(wal, &sb), 0);
    store_close(st2);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--count-tenants") == 0)
        return count_tenants(argv[2]) & 0xff;
    log_init("test", false, LOG_LVL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_db_migrations, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_reopen_is_noop, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_threats_backfill, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_backend_choice, tenv_setup, tenv_teardown),
        cmocka_unit_test_setup_teardown(test_second_open_keeps_wal, tenv_setup, tenv_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
