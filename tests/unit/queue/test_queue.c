/* test_queue.c - spool files: commit, trailer round trip, corruption, status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>

#include "core/core.h"
#include "queue/queue.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    core_strlcpy(dir, "/tmp/moat-test-queue-XXXXXX", sizeof dir);
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_commit_roundtrip(void **state)
{
    (void)state;
    char err[256];
    struct spool *sp = spool_open(dir, 2, err, sizeof err);
    assert_non_null(sp);
    char *rcpts[] = {"a@x.test", "\"q b\"@x.test"};
    char *orcpts[] = {NULL, "rfc822;b@x.test"};
    struct queue_envelope env;
    memset(&env, 0, sizeof env);
    core_qid_new(env.qid);
    env.arrival = 1234.5;
    env.sender = "";
    env.rcpts = rcpts;
    env.orcpts = orcpts;
    env.nrcpts = 2;
    env.client_ip = "127.0.0.1";
    env.helo = "client\r\nInjected: x";
    env.smtputf8 = true;
    env.subject = "日本語";
    const char *msg = "Subject: t\r\n\r\nbody\r\n";
    assert_int_equal(spool_commit_sync(sp, msg, strlen(msg), &env), 0);
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", spool_queue_dir(sp), env.qid);
    struct queue_envelope r;
    assert_int_equal(spool_read_envelope(path, &r, err, sizeof err), 0);
    assert_string_equal(r.qid, env.qid);
    assert_string_equal(r.sender, "");
    assert_int_equal(r.nrcpts, 2);
    assert_string_equal(r.rcpts[1], "\"q b\"@x.test");
    assert_null(r.orcpts[0]);
    assert_string_equal(r.orcpts[1], "rfc822;b@x.test");
    assert_string_equal(r.helo, "client  Injected: x"); /* CR LF never reach the trailer */
    assert_true(r.smtputf8);
    assert_false(r.eightbit);
    assert_string_equal(r.subject, "日本語");
    assert_int_equal(r.data_len, strlen(msg));
    /* the message bytes are intact at offset 0 */
    char back[64];
    int fd = open(path, O_RDONLY);
    assert_int_equal(read(fd, back, strlen(msg)), (ssize_t)strlen(msg));
    close(fd);
    assert_memory_equal(back, msg, strlen(msg));
    queue_envelope_free(&r);

    /* status: done recipients and attempts */
    assert_int_equal(spool_status_append(sp, env.qid, "done 1\nattempt 3\n"), 0);
    bool done[2] = {false, false};
    unsigned attempts;
    spool_status_load(spool_status_dir(sp), env.qid, done, 2, &attempts);
    assert_false(done[0]);
    assert_true(done[1]);
    assert_int_equal(attempts, 3);

    /* truncation anywhere is detected */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    for (off_t cut = 1; cut < 60; cut += 7) {
        assert_int_equal(truncate(path, st.st_size - cut), 0);
        assert_int_equal(spool_read_envelope(path, &r, err, sizeof err), -1);
    }
    struct stat before;
    assert_int_equal(stat(path, &before), 0);
    assert_int_equal(spool_remove(sp, env.qid), 0);
    assert_int_equal(access(path, F_OK), -1);
    /* the next message reuses the parked inode instead of allocating one */
    struct queue_envelope env2 = env;
    core_qid_new(env2.qid);
    assert_int_equal(spool_commit_sync(sp, msg, strlen(msg), &env2), 0);
    char path2[1200];
    snprintf(path2, sizeof path2, "%s/%s", spool_queue_dir(sp), env2.qid);
    struct stat after;
    assert_int_equal(stat(path2, &after), 0);
    assert_int_equal(after.st_ino, before.st_ino);
    assert_int_equal(spool_read_envelope(path2, &r, err, sizeof err), 0);
    assert_int_equal(r.data_len, strlen(msg));
    queue_envelope_free(&r);
    spool_close(sp);
}

/* a plan and its copy survive the commit and the trailer round trip; the
 * copy moves with the message and goes with spool_remove */
static void test_plan_commit_and_copies(void **state)
{
    (void)state;
    char err[256];
    struct spool *sp = spool_open(dir, 1, err, sizeof err);
    assert_non_null(sp);
    char *rcpts[] = {"a@x.test", "b@x.test"};
    struct queue_envelope env = {.arrival = 1.0, .sender = "s@y.test", .rcpts = rcpts, .nrcpts = 2,
                                 .plan = "{\"v\":1,\"rcpts\":[{\"c\":\"x\",\"x\":\"none\",\"var\":1},"
                                         "{\"c\":\"x\",\"x\":\"quarantine\",\"var\":0,\"rule\":\"Virus\","
                                         "\"order\":1}]}",
                                 .variants = 1};
    core_qid_new(env.qid);
    /* the worker's copy lies beside the incoming file; spool_commit_sync has
     * no incoming file of its own to sit beside, so place the copy directly */
    const char *msg = "Subject: x\r\n\r\nbody\r\n";
    assert_int_equal(spool_commit_sync(sp, msg, strlen(msg), &env), 0);
    char path[1200], vpath[1300];
    snprintf(path, sizeof path, "%s/%s", spool_queue_dir(sp), env.qid);
    snprintf(vpath, sizeof vpath, "%s.v1", path);
    int fd = open(vpath, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "copy", 4), 4);
    close(fd);
    struct queue_envelope r;
    assert_int_equal(spool_read_envelope(path, &r, err, sizeof err), 0);
    assert_string_equal(r.plan, env.plan);
    assert_int_equal(r.variants, 1);
    bool sends = true;
    struct queue_plan_rcpt *p = queue_plan_parse(&r, &sends, err, sizeof err);
    assert_false(sends);
    assert_non_null(p);
    assert_int_equal(p[0].action, PLAN_DELIVER);
    assert_int_equal(p[0].variant, 1);
    assert_int_equal(p[1].action, PLAN_QUARANTINE);
    assert_string_equal(p[1].rule, "Virus");
    assert_int_equal(p[1].order, 1);
    queue_plan_free(p, r.nrcpts);
    /* plans that do not fit the envelope are refused */
    static const char *bad[] = {
        "{\"v\":1,\"rcpts\":[{\"x\":\"none\",\"var\":0}]}",                              /* one entry for two */
        "{\"v\":2,\"rcpts\":[{\"x\":\"none\",\"var\":0},{\"x\":\"none\",\"var\":0}]}", /* version */
        "{\"v\":1,\"rcpts\":[{\"x\":\"none\",\"var\":2},{\"x\":\"none\",\"var\":0}]}", /* no copy 2 */
        "{\"v\":1,\"rcpts\":[{\"x\":\"burn\",\"var\":0},{\"x\":\"none\",\"var\":0}]}", /* action */
        "{\"v\":1,\"rcpts\":[{\"x\":\"change_recipient\",\"var\":0},{\"x\":\"none\",\"var\":0}]}",
        "not json",
    };
    char *keep = r.plan;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r.plan = (char *)bad[i];
        assert_null(queue_plan_parse(&r, NULL, err, sizeof err));
    }
    r.plan = keep;
    queue_envelope_free(&r);
    /* status words */
    assert_false(spool_status_has(spool_status_dir(sp), env.qid, "notified"));
    assert_int_equal(spool_status_append(sp, env.qid, "done 1\nnotified\n"), 0);
    assert_true(spool_status_has(spool_status_dir(sp), env.qid, "notified"));
    assert_false(spool_status_has(spool_status_dir(sp), env.qid, "notif"));
    assert_int_equal(spool_remove(sp, env.qid), 0);
    struct stat st;
    assert_int_equal(stat(vpath, &st), -1);
    spool_close(sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_commit_and_copies, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
