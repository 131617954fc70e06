/* test_quarantine.c - unit tests for quarantine/ and its store index:
 * put/list/load, release (byte-identical, once, hook, inject failure),
 * delete, purge (rows, files, orphans), stats, corruption detection, ids
 * that try to leave the quarantine directory, tenant isolation. */
#include "../store/store_test.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <utime.h>

#include "quarantine/quarantine.h"

static const char MSG[] = "Received: from client.example.net by moat.test id 0123456789ABCDEF0123\r\n"
                          "From: \"Bob\" <bob@example.net>\r\n"
                          "To: alice@acme.test\r\n"
                          "Subject: invoice\r\n"
                          " (folded)\r\n"
                          "\r\n"
                          "Please pay.\r\n";

struct qenv {
    struct tenv *t;
    struct quarantine *q;
    /* what the fake queue received */
    struct buf got;
    struct queue_envelope env;
    int injected;
    bool fail_inject;
};

static int qsetup(void **state)
{
    struct qenv *e = calloc(1, sizeof *e);
    char err[256];
    e->t = tenv_new();
    e->q = quarantine_open(e->t->cfg.data_dir, e->t->st, err, sizeof err);
    assert_non_null(e->q);
    buf_init(&e->got, 1 << 20);
    *state = e;
    return 0;
}

static int qteardown(void **state)
{
    struct qenv *e = *state;
    quarantine_close(e->q);
    buf_free(&e->got);
    queue_envelope_free(&e->env);
    tenv_free(e->t);
    free(e);
    return 0;
}

static int fake_inject(void *arg, const char *data, size_t len, struct queue_envelope *env)
{
    struct qenv *e = arg;
    if (e->fail_inject)
        return -1;
    buf_reset(&e->got);
    buf_append(&e->got, data, len);
    queue_envelope_free(&e->env);
    struct queue_envelope *d = queue_envelope_dup(env);
    e->env = *d;
    free(d);
    e->injected++;
    return 0;
}

/* put - quarantine MSG for company/rcpt; the id */
static void put(struct qenv *e, const char *company, const char *rcpt, double when, char id[33])
{
    char err[256];
    struct quarantine_put_info in = {.company_id = company,
                                     .qid = "0123456789ABCDEF0123",
                                     .rcpt = rcpt,
                                     .sender = "bob@example.net",
                                     .rule = "Spam or Phish",
                                     .rule_order = 5,
                                     .reason = "Spam or Phish: spam (0.98)",
                                     .detections =
                                         "[{\"category\":\"spam\",\"name\":\"spam\",\"score\":0.98}]",
                                     .scan = "spam=0.98",
                                     .time = when,
                                     .envid = "ENV1",
                                     .smtputf8 = true};
    assert_int_equal(quarantine_put(e->q, &in, MSG, sizeof MSG - 1, id, err, sizeof err), QUARANTINE_OK);
    assert_true(quarantine_id_valid(id));
}

static void file_of(struct qenv *e, const char *id, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/quarantine/%.2s/%s", e->t->cfg.data_dir, id, id);
}

static void test_put_list_load(void **state)
{
    struct qenv *e = *state;
    char a[33], b[33], c[33], err[256];
    put(e, "acme", "alice@acme.test", 0, a);
    put(e, "acme", "carol@acme.test", 0, b);
    put(e, "beta", "dave@beta.test", 0, c);
    assert_string_not_equal(a, b);

    struct store_quarantine_item *items;
    struct store_quarantine_query q = {.company_id = "acme"};
    long n = store_quarantine_list(e->t->st, &q, &items);
    assert_int_equal(n, 2);
    store_quarantine_items_free(items, n);
    q.company_id = "ACME"; /* tenant IDs are case-insensitive */
    q.rcpt = "Alice@ACME.test";
    n = store_quarantine_list(e->t->st, &q, &items);
    assert_int_equal(n, 1);
    assert_string_equal(items[0].id, a);
    assert_string_equal(items[0].subject, "invoice (folded)");
    assert_string_equal(items[0].header_from, "\"Bob\" <bob@example.net>");
    assert_string_equal(items[0].rule, "Spam or Phish");
    assert_int_equal(items[0].rule_order, 5);
    assert_string_equal(items[0].reason, "Spam or Phish: spam (0.98)");
    assert_int_equal(items[0].size, sizeof MSG - 1);
    assert_true(items[0].stored_size > 0);
    store_quarantine_items_free(items, n);
    struct store_quarantine_query all = {0};
    n = store_quarantine_list(e->t->st, &all, &items);
    assert_int_equal(n, 3);
    store_quarantine_items_free(items, n);

    struct store_quarantine_item it;
    struct buf msg;
    buf_init(&msg, 1 << 20);
    assert_int_equal(quarantine_load(e->q, "acme", a, &it, &msg, err, sizeof err), QUARANTINE_OK);
    assert_int_equal(msg.len, sizeof MSG - 1);
    assert_memory_equal(msg.ptr, MSG, msg.len);
    store_quarantine_item_free(&it);
    buf_free(&msg);

    struct store_quarantine_stats *st;
    n = store_quarantine_stats(e->t->st, NULL, &st);
    assert_int_equal(n, 2);
    assert_string_equal(st[0].company_id, "acme");
    assert_int_equal(st[0].count, 2);
    assert_int_equal(st[0].bytes, 2 * (sizeof MSG - 1));
    assert_string_equal(st[1].company_id, "beta");
    assert_int_equal(st[1].count, 1);
    free(st);

    /* the file is mode 0600 and smaller than nothing would be silly: just present */
    char path[512];
    struct stat sb;
    file_of(e, a, path, sizeof path);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

static void test_put_rejects(void **state)
{
    struct qenv *e = *state;
    char id[33], err[256];
    struct quarantine_put_info in = {
        .company_id = "acme", .qid = "not-a-qid", .rcpt = "a@acme.test", .sender = ""};
    assert_int_equal(quarantine_put(e->q, &in, MSG, sizeof MSG - 1, id, err, sizeof err), QUARANTINE_INVALID);
    in.qid = "0123456789ABCDEF0123";
    in.rcpt = "";
    assert_int_equal(quarantine_put(e->q, &in, MSG, sizeof MSG - 1, id, err, sizeof err), QUARANTINE_INVALID);
    in.rcpt = "a@acme.test";
    in.company_id = NULL;
    assert_int_equal(quarantine_put(e->q, &in, MSG, sizeof MSG - 1, id, err, sizeof err), QUARANTINE_INVALID);
    /* controls in index fields are removed */
    in.company_id = "acme";
    in.subject = "a\r\nBcc: x@evil.test";
    assert_int_equal(quarantine_put(e->q, &in, MSG, sizeof MSG - 1, id, err, sizeof err), QUARANTINE_OK);
    struct store_quarantine_item it;
    assert_int_equal(store_quarantine_get(e->t->st, NULL, id, &it), 0);
    assert_string_equal(it.subject, "aBcc: x@evil.test");
    store_quarantine_item_free(&it);
}

static void test_release(void **state)
{
    struct qenv *e = *state;
    char id[33], qid[CORE_QID_LEN + 1], err[256];
    put(e, "acme", "alice@acme.test", 0, id);
    struct quarantine_release_opts o = {.inject = fake_inject, .inject_arg = e};
    assert_int_equal(quarantine_release(e->q, "acme", id, &o, qid, err, sizeof err), QUARANTINE_OK);
    assert_true(core_qid_valid(qid));
    assert_int_equal(e->injected, 1);
    /* byte-identical, with the envelope for the one recipient */
    assert_int_equal(e->got.len, sizeof MSG - 1);
    assert_memory_equal(e->got.ptr, MSG, e->got.len);
    assert_string_equal(e->env.qid, qid);
    assert_string_equal(e->env.sender, "bob@example.net");
    assert_int_equal(e->env.nrcpts, 1);
    assert_string_equal(e->env.rcpts[0], "alice@acme.test");
    assert_string_equal(e->env.envid, "ENV1");
    assert_true(e->env.smtputf8);
    assert_string_equal(e->env.scan_summary, "spam=0.98");
    /* the row says released, as that queue ID */
    struct store_quarantine_item it;
    assert_int_equal(store_quarantine_get(e->t->st, "acme", id, &it), 0);
    assert_true(it.released > 0);
    assert_true(it.release_done);
    assert_string_equal(it.released_qid, qid);
    store_quarantine_item_free(&it);
    /* a second release is a clear error and queues nothing */
    assert_int_equal(quarantine_release(e->q, "acme", id, &o, qid, err, sizeof err), QUARANTINE_RELEASED);
    assert_non_null(strstr(err, "already been released"));
    assert_int_equal(e->injected, 1);
}

static void test_release_inject_failure(void **state)
{
    struct qenv *e = *state;
    char id[33], qid[CORE_QID_LEN + 1], err[256];
    put(e, "acme", "alice@acme.test", 0, id);
    struct quarantine_release_opts o = {.inject = fake_inject, .inject_arg = e};
    e->fail_inject = true;
    assert_int_equal(quarantine_release(e->q, NULL, id, &o, qid, err, sizeof err), QUARANTINE_ERROR);
    struct store_quarantine_item it;
    assert_int_equal(store_quarantine_get(e->t->st, NULL, id, &it), 0);
    assert_true(it.released == 0); /* the claim was undone */
    store_quarantine_item_free(&it);
    e->fail_inject = false;
    assert_int_equal(quarantine_release(e->q, NULL, id, &o, qid, err, sizeof err), QUARANTINE_OK);
    assert_int_equal(e->injected, 1);
    /* without a queue there is no release */
    struct quarantine_release_opts none = {0};
    assert_int_equal(quarantine_release(e->q, NULL, id, &none, qid, err, sizeof err), QUARANTINE_INVALID);
}

/* hooks: the rules that follow quarantine */
static enum quarantine_after hook_stop(void *arg, const struct store_quarantine_item *item, struct buf *msg,
                                       struct queue_envelope *env, char *why, size_t whysz)
{
    int *calls = arg;
    (*calls)++;
    assert_int_equal(item->rule_order, 5);
    assert_int_equal(msg->len, sizeof MSG - 1);
    assert_int_equal(env->nrcpts, 1);
    snprintf(why, whysz, "deleted by rule Virus");
    return QUARANTINE_AFTER_STOP;
}

static enum quarantine_after hook_tag(void *arg, const struct store_quarantine_item *item, struct buf *msg,
                                      struct queue_envelope *env, char *why, size_t whysz)
{
    (void)arg;
    (void)item;
    (void)env;
    (void)why;
    (void)whysz;
    buf_reset(msg);
    buf_append_str(msg, "X-Tag: yes\r\n");
    buf_append(msg, MSG, sizeof MSG - 1);
    return QUARANTINE_AFTER_DELIVER;
}

static void test_release_hook(void **state)
{
    struct qenv *e = *state;
    char a[33], b[33], qid[CORE_QID_LEN + 1], err[256];
    int calls = 0;
    put(e, "acme", "alice@acme.test", 0, a);
    put(e, "acme", "bob@acme.test", 0, b);
    struct quarantine_release_opts o = {
        .inject = fake_inject, .inject_arg = e, .after_quarantine = hook_stop, .after_arg = &calls};
    assert_int_equal(quarantine_release(e->q, "acme", a, &o, qid, err, sizeof err), QUARANTINE_OK);
    assert_int_equal(calls, 1);
    assert_string_equal(qid, "");
    assert_string_equal(err, "deleted by rule Virus");
    assert_int_equal(e->injected, 0);
    assert_int_equal(quarantine_release(e->q, "acme", a, &o, qid, err, sizeof err), QUARANTINE_RELEASED);
    o.after_quarantine = hook_tag;
    assert_int_equal(quarantine_release(e->q, "acme", b, &o, qid, err, sizeof err), QUARANTINE_OK);
    assert_int_equal(e->injected, 1);
    assert_true(e->got.len > 12 && memcmp(e->got.ptr, "X-Tag: yes\r\n", 12) == 0);
}

static void test_tenant_isolation(void **state)
{
    struct qenv *e = *state;
    char id[33], qid[CORE_QID_LEN + 1], err[256];
    put(e, "acme", "alice@acme.test", 0, id);
    struct store_quarantine_item it;
    struct buf msg;
    buf_init(&msg, 1 << 20);
    assert_int_equal(quarantine_load(e->q, "beta", id, &it, &msg, err, sizeof err), QUARANTINE_NOT_FOUND);
    assert_int_equal(msg.len, 0);
    buf_free(&msg);
    struct quarantine_release_opts o = {.inject = fake_inject, .inject_arg = e};
    assert_int_equal(quarantine_release(e->q, "beta", id, &o, qid, err, sizeof err), QUARANTINE_NOT_FOUND);
    assert_int_equal(e->injected, 0);
    assert_int_equal(quarantine_delete(e->q, "beta", id, err, sizeof err), QUARANTINE_NOT_FOUND);
    /* the same answer as an ID that does not exist */
    assert_int_equal(quarantine_delete(e->q, "beta", "0123456789abcdef0123456789abcdef", err, sizeof err),
                     QUARANTINE_NOT_FOUND);
    struct store_quarantine_item *items;
    struct store_quarantine_query q = {.company_id = "beta"};
    long n = store_quarantine_list(e->t->st, &q, &items);
    assert_int_equal(n, 0);
    store_quarantine_items_free(items, n);
    assert_int_equal(quarantine_release(e->q, "acme", id, &o, qid, err, sizeof err), QUARANTINE_OK);
}

static void test_corruption(void **state)
{
    struct qenv *e = *state;
    char a[33], b[33], path[512], pathb[512], err[256];
    put(e, "acme", "alice@acme.test", 0, a);
    file_of(e, a, path, sizeof path);
    struct store_quarantine_item it;
    struct buf msg;
    buf_init(&msg, 1 << 20);

    /* one flipped byte in the compressed data */
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, sb.st_size - 8), 1);
    c ^= 0x5a;
    assert_int_equal(pwrite(fd, &c, 1, sb.st_size - 8), 1);
    close(fd);
    assert_int_equal(quarantine_load(e->q, NULL, a, &it, &msg, err, sizeof err), QUARANTINE_CORRUPT);
    assert_int_equal(msg.len, 0);
    store_quarantine_item_free(&it);
    struct quarantine_release_opts o = {.inject = fake_inject, .inject_arg = e};
    char qid[CORE_QID_LEN + 1];
    assert_int_equal(quarantine_release(e->q, NULL, a, &o, qid, err, sizeof err), QUARANTINE_CORRUPT);
    assert_int_equal(e->injected, 0);

    /* a header that disagrees with the index (size digit changed) */
    put(e, "acme", "carol@acme.test", 0, b);
    file_of(e, b, pathb, sizeof pathb);
    fd = open(pathb, O_RDWR);
    assert_int_equal(pwrite(fd, "1", 1, 8), 1);
    close(fd);
    assert_int_equal(quarantine_load(e->q, NULL, b, &it, &msg, err, sizeof err), QUARANTINE_CORRUPT);
    assert_non_null(strstr(err, "does not match"));
    store_quarantine_item_free(&it);

    /* truncated */
    assert_int_equal(truncate(path, 50), 0);
    assert_int_equal(quarantine_load(e->q, NULL, a, &it, &msg, err, sizeof err), QUARANTINE_CORRUPT);
    store_quarantine_item_free(&it);
    /* missing */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(quarantine_load(e->q, NULL, a, &it, &msg, err, sizeof err), QUARANTINE_CORRUPT);
    assert_non_null(strstr(err, "missing"));
    store_quarantine_item_free(&it);
    /* a symlink is not followed */
    char other[33];
    put(e, "acme", "dave@acme.test", 0, other);
    file_of(e, other, pathb, sizeof pathb);
    assert_int_equal(symlink(pathb, path), 0);
    assert_int_equal(quarantine_load(e->q, NULL, a, &it, &msg, err, sizeof err), QUARANTINE_CORRUPT);
    store_quarantine_item_free(&it);
    buf_free(&msg);
}

static void test_ids_cannot_escape(void **state)
{
    struct qenv *e = *state;
    static const char *const bad[] = {
        "../../../../etc/passwd",
        "..",
        "",
        "0123456789abcdef0123456789abcde",
        "0123456789abcdef0123456789abcdef0",
        "0123456789ABCDEF0123456789ABCDEF",
        "01/3456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcde\n",
        "%2e%2e%2f456789abcdef0123456789ab",
        "0123456789abcdef\0"
        "0123456789abcdef",
    };
    char err[256], qid[CORE_QID_LEN + 1];
    struct store_quarantine_item it;
    struct buf msg;
    buf_init(&msg, 1 << 20);
    struct quarantine_release_opts o = {.inject = fake_inject, .inject_arg = e};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(quarantine_id_valid(bad[i]));
        assert_int_equal(quarantine_load(e->q, NULL, bad[i], &it, &msg, err, sizeof err),
                         QUARANTINE_NOT_FOUND);
        assert_int_equal(quarantine_release(e->q, NULL, bad[i], &o, qid, err, sizeof err),
                         QUARANTINE_NOT_FOUND);
        assert_int_equal(quarantine_delete(e->q, NULL, bad[i], err, sizeof err), QUARANTINE_NOT_FOUND);
    }
    assert_false(quarantine_id_valid(NULL));
    assert_true(quarantine_id_valid("0123456789abcdef0123456789abcdef"));
    /* a row whose id was altered in the database is refused before any path is built */
    char id[33];
    put(e, "acme", "a@acme.test", 0, id);
    sqlite3 *db;
    char dbp[256], sql[256];
    snprintf(dbp, sizeof dbp, "%s/moat.db", e->t->cfg.data_dir);
    assert_int_equal(sqlite3_open(dbp, &db), SQLITE_OK);
    snprintf(sql, sizeof sql, "UPDATE quarantine SET sha256 = '../x' WHERE id = '%s'", id);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(quarantine_load(e->q, NULL, id, &it, &msg, err, sizeof err), QUARANTINE_CORRUPT);
    store_quarantine_item_free(&it);
    buf_free(&msg);
    assert_int_equal(e->injected, 0);
}

static void test_delete_and_purge(void **state)
{
    struct qenv *e = *state;
    char old1[33], old2[33], fresh[33], path[512], err[256];
    double now = core_now();
    put(e, "acme", "a@acme.test", now - 40 * 86400.0, old1);
    put(e, "beta", "b@beta.test", now - 31 * 86400.0, old2);
    put(e, "acme", "c@acme.test", now - 3600, fresh);

    /* delete: row and file; a second delete is not found */
    char del[33];
    put(e, "acme", "d@acme.test", 0, del);
    file_of(e, del, path, sizeof path);
    assert_int_equal(quarantine_delete(e->q, "acme", del, err, sizeof err), QUARANTINE_OK);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(quarantine_delete(e->q, "acme", del, err, sizeof err), QUARANTINE_NOT_FOUND);

    /* an orphan file (a crash between file and row), old, and a recent one */
    char orphan[512], recent[512], tmpf[512];
    snprintf(orphan, sizeof orphan, "%s/quarantine/ab", e->t->cfg.data_dir);
    mkdir(orphan, 0700);
    snprintf(orphan, sizeof orphan, "%s/quarantine/ab/ab0000000000000000000000000000ff", e->t->cfg.data_dir);
    snprintf(recent, sizeof recent, "%s/quarantine/ab/ab0000000000000000000000000000ee", e->t->cfg.data_dir);
    snprintf(tmpf, sizeof tmpf, "%s/quarantine/tmp/ab0000000000000000000000000000dd", e->t->cfg.data_dir);
    const char *files[] = {orphan, recent, tmpf};
    for (int i = 0; i < 3; i++) {
        int fd = open(files[i], O_WRONLY | O_CREAT, 0600);
        assert_true(fd >= 0);
        close(fd);
    }
    struct utimbuf ut = {.actime = (time_t)(now - 40 * 86400.0), .modtime = (time_t)(now - 40 * 86400.0)};
    assert_int_equal(utime(orphan, &ut), 0);
    assert_int_equal(utime(tmpf, &ut), 0);

    long n = quarantine_purge(e->q, now - 30 * 86400.0);
    assert_int_equal(n, 2);
    file_of(e, old1, path, sizeof path);
    assert_int_equal(access(path, F_OK), -1);
    file_of(e, old2, path, sizeof path);
    assert_int_equal(access(path, F_OK), -1);
    file_of(e, fresh, path, sizeof path);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(access(orphan, F_OK), -1);
    assert_int_equal(access(tmpf, F_OK), -1);
    assert_int_equal(access(recent, F_OK), 0);
    struct store_quarantine_item it;
    assert_int_equal(store_quarantine_get(e->t->st, NULL, old1, &it), 1);
    assert_int_equal(store_quarantine_get(e->t->st, NULL, fresh, &it), 0);
    store_quarantine_item_free(&it);
    assert_int_equal(quarantine_purge(e->q, now - 30 * 86400.0), 0);
}

static void test_stale_claim(void **state)
{
    struct qenv *e = *state;
    char id[33], qid[CORE_QID_LEN + 1], err[256];
    put(e, "acme", "a@acme.test", 0, id);
    /* a claim that never reached the queue (crash): blocked while fresh ... */
    double now = core_now();
    assert_int_equal(store_quarantine_claim(e->t->st, NULL, id, "0123456789ABCDEF0000", now), 0);
    struct quarantine_release_opts o = {.inject = fake_inject, .inject_arg = e};
    assert_int_equal(quarantine_release(e->q, NULL, id, &o, qid, err, sizeof err), QUARANTINE_RELEASED);
    /* ... and released again once stale */
    assert_int_equal(store_quarantine_claim(e->t->st, NULL, id, "0123456789ABCDEF0000",
                                            now - STORE_QUARANTINE_CLAIM_STALE - 10),
                     2);
    sqlite3 *db;
    char dbp[256], sql[256];
    snprintf(dbp, sizeof dbp, "%s/moat.db", e->t->cfg.data_dir);
    assert_int_equal(sqlite3_open(dbp, &db), SQLITE_OK);
    snprintf(sql, sizeof sql, "UPDATE quarantine SET released = %f WHERE id = '%s'",
             now - STORE_QUARANTINE_CLAIM_STALE - 10, id);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(quarantine_release(e->q, NULL, id, &o, qid, err, sizeof err), QUARANTINE_OK);
    assert_int_equal(e->injected, 1);
}

static void test_header_value(void **state)
{
    (void)state;
    char v[64];
    static const char m[] = "From: a@b\r\nSubject: one\r\n\ttwo\r\nX-A: 1\r\n\r\nSubject: body\r\n";
    assert_true(core_header_value(m, sizeof m - 1, "subject", v, sizeof v));
    assert_string_equal(v, "one two");
    assert_true(core_header_value(m, sizeof m - 1, "X-A", v, sizeof v));
    assert_string_equal(v, "1");
    assert_false(core_header_value(m, sizeof m - 1, "X-B", v, sizeof v));
    static const char lf[] = "Subject: lf only\nX: y\n\n";
    assert_true(core_header_value(lf, sizeof lf - 1, "Subject", v, sizeof v));
    assert_string_equal(v, "lf only");
    char small[4];
    assert_true(core_header_value(m, sizeof m - 1, "Subject", small, sizeof small));
    assert_string_equal(small, "one");
    /* a field in the body is not a header */
    static const char nohdr[] = "From: a\r\n\r\nX-B: 1\r\n";
    assert_false(core_header_value(nohdr, sizeof nohdr - 1, "X-B", v, sizeof v));
}

int main(void)
{
    log_init("test", false, LOG_LVL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_list_load, qsetup, qteardown),
        cmocka_unit_test_setup_teardown(test_put_rejects, qsetup, qteardown),
        cmocka_unit_test_setup_teardown(test_release, qsetup, qteardown),
        cmocka_unit_test_setup_teardown(test_release_inject_failure, qsetup, qteardown),
        cmocka_unit_test_setup_teardown(test_release_hook, qsetup, qteardown),
        cmocka_unit_test_setup_teardown(test_tenant_isolation, qsetup, qteardown),
        cmocka_unit_test_setup_teardown(test_corruption, qsetup, qteardown),
        cmocka_unit_test_setup_teardown(test_ids_cannot_escape, qsetup, qteardown),
        cmocka_unit_test_setup_teardown(test_delete_and_purge, qsetup, qteardown),
        cmocka_unit_test_setup_teardown(test_stale_claim, qsetup, qteardown),
        cmocka_unit_test(test_header_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
