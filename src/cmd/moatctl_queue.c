/*
 * moatctl_queue.c - `moatctl queue list | flush | delete ID`.
 *
 * With moatd running, each command goes through its control socket
 * (data_dir/moatd.sock) so the daemon's view and the disk agree. Without a
 * daemon, `list` reads the spool directly, `delete` removes the spool file
 * (after checking the ID's syntax), and `flush` says there is nothing to
 * flush. Human output: one line per queued message and recipient.
 */
#include "cmd/moatctl.h"

#include <jansson.h>

#include "queue/queue.h"

/* print_queue - render the daemon's or the spool's JSON listing */
static int print_queue(struct moatctl *ctx, const char *text)
{
    json_error_t je;
    json_t *doc = json_loads(text, 0, &je);
    json_t *q = doc ? json_object_get(doc, "queue") : NULL;
    if (!json_is_array(q)) {
        json_decref(doc);
        return moatctl_error(MOATCTL_INTERNAL, "malformed answer from moatd");
    }
    if (ctx->json) {
        char *out = json_dumps(q, JSON_INDENT(2));
        printf("%s\n", out);
        free(out);
        json_decref(doc);
        return MOATCTL_OK;
    }
    size_t i;
    json_t *e;
    if (json_array_size(q) == 0)
        printf("queue is empty\n");
    else
        printf("QUEUE-ID\tARRIVAL\tSIZE\tATTEMPTS\tSENDER\tRECIPIENT\tSTATUS\tLAST-REPLY\n");
    json_array_foreach(q, i, e) {
        char when[40];
        moatctl_local_time(json_number_value(json_object_get(e, "arrival")), when, sizeof when);
        size_t k;
        json_t *r;
        json_array_foreach(json_object_get(e, "recipients"), k, r) {
            const char *sender = json_string_value(json_object_get(e, "sender"));
            const char *reply = json_string_value(json_object_get(r, "last_reply"));
            printf("%s\t%s\t%lld\t%lld\t", json_string_value(json_object_get(e, "id")), when,
                   (long long)json_integer_value(json_object_get(e, "size")),
                   (long long)json_integer_value(json_object_get(e, "attempts")));
            moatctl_print_safe(stdout, sender && *sender ? sender : "<>");
            putchar('\t');
            moatctl_print_safe(stdout, json_string_value(json_object_get(r, "address")));
            printf("\t%s\t", json_string_value(json_object_get(r, "status")));
            moatctl_print_safe(stdout, reply ? reply : "");
            putchar('\n');
        }
    }
    json_decref(doc);
    return MOATCTL_OK;
}

static int cmd_queue_list(struct moatctl *ctx, int argc, char **argv)
{
    struct buf out;
    int rc;
    if (argc != 1)
        return moatctl_usage("queue list", "", "unexpected argument '%s'", argv[1]);
    buf_init(&out, 256 * 1024 * 1024);
    if (queue_ctl_request(ctx->cfg.data_dir, "LIST", &out) < 0) {
        buf_reset(&out);
        queue_ctl_list_offline(ctx->cfg.data_dir, &out);
    }
    rc = print_queue(ctx, buf_cstr(&out));
    buf_free(&out);
    return rc;
}

/* simple_request - send cmd; print the daemon's JSON or a short message */
static int simple_request(struct moatctl *ctx, const char *cmd, const char *key)
{
    struct buf out;
    buf_init(&out, 1024 * 1024);
    if (queue_ctl_request(ctx->cfg.data_dir, cmd, &out) < 0) {
        buf_free(&out);
        return -1;
    }
    json_error_t je;
    json_t *doc = json_loads(buf_cstr(&out), 0, &je);
    buf_free(&out);
    if (!doc)
        return moatctl_error(MOATCTL_INTERNAL, "malformed answer from moatd");
    int rc = MOATCTL_OK;
    json_t *err = json_object_get(doc, "error");
    if (err) {
        rc = moatctl_error(MOATCTL_USER, "%s", json_string_value(err));
    } else if (ctx->json) {
        char *t = json_dumps(doc, JSON_COMPACT);
        printf("%s\n", t);
        free(t);
    } else if (json_is_integer(json_object_get(doc, key))) {
        printf("%s: %lld\n", key, (long long)json_integer_value(json_object_get(doc, key)));
    } else {
        printf("%s: %s\n", key, json_string_value(json_object_get(doc, key)));
    }
    json_decref(doc);
    return rc;
}

static int cmd_queue_flush(struct moatctl *ctx, int argc, char **argv)
{
    if (argc != 1)
        return moatctl_usage("queue flush", "", "unexpected argument '%s'", argv[1]);
    int rc = simple_request(ctx, "FLUSH", "flushed");
    if (rc < 0) {
        printf("moatd is not running: queued messages are retried when it starts\n");
        return MOATCTL_OK;
    }
    return rc;
}

static int cmd_queue_delete(struct moatctl *ctx, int argc, char **argv)
{
    char cmd[64];
    if (argc != 2)
        return moatctl_usage("queue delete", "ID", "expected one queue ID");
    if (!core_qid_valid(argv[1]))
        return moatctl_usage("queue delete", "ID", "'%s' is not a queue ID (20 upper-case hex digits)", argv[1]);
    snprintf(cmd, sizeof cmd, "DELETE %s", argv[1]);
    int rc = simple_request(ctx, cmd, "deleted");
    if (rc >= 0)
        return rc;
    /* no daemon: remove the spool file directly */
    char path[1200];
    snprintf(path, sizeof path, "%s/spool/queue/%s", ctx->cfg.data_dir, argv[1]);
    if (unlink(path) < 0)
        return moatctl_error(MOATCTL_USER, "no such message in the queue: %s", argv[1]);
    snprintf(path, sizeof path, "%s/spool/status/%s", ctx->cfg.data_dir, argv[1]);
    unlink(path);
    printf("deleted: %s\n", argv[1]);
    return MOATCTL_OK;
}

const struct moatctl_cmd moatctl_queue_cmds[] = {
    {"list", "", "messages waiting for delivery, one line per recipient", cmd_queue_list, NULL},
    {"flush", "", "retry every queued message now", cmd_queue_flush, NULL},
    {"delete", "ID", "remove a message from the queue (recorded in tracking)", cmd_queue_delete, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
