/*
 * moatctl_quarantine.c - `moatctl quarantine list | show | release |
 * delete | purge | stats | put`.
 *
 * Works on the store and data_dir/quarantine directly (the quarantine is
 * not the daemon's state). `release` queues the stored copy through
 * queue_ctl_inject: committed into the spool before it reports success,
 * then handed to the running moatd ("PICKUP"), or delivered when moatd
 * starts. --tenant scopes every command to one tenant: another tenant's ID
 * is "not found", exactly like a missing one. `show` prints the decoded
 * headers and a text preview from the inspection engine (nothing in the
 * message is run or opened); every string printed is escaped.
 * `put` stores a message file for a tenant's recipients (operator use:
 * tests, migrations).
 */
#include "cmd/moatctl.h"

#include <getopt.h>
#include <jansson.h>

#include "mime/mime.h"
#include "quarantine/quarantine.h"
#include "store/store.h"

#define PREVIEW_MAX 2000 /* characters of body text shown by `show` */

static const char LIST_SYN[] = "[--tenant ID] [--rcpt ADDR] [--since T] [--until T] [--limit N]";
static const char ID_SYN[] = "[--tenant ID] QUARANTINE-ID";
static const char PUT_SYN[] =
    "--tenant ID --rcpt ADDR [--rcpt ADDR...] [--sender ADDR] [--rule NAME] [--reason TEXT] FILE.eml";

/* open_quarantine - the store and the quarantine; NULL after printing why */
static struct quarantine *open_quarantine(struct moatctl *ctx, int *code)
{
    char err[512];
    struct store *st = moatctl_store(ctx, code);
    if (!st)
        return NULL;
    struct quarantine *q = quarantine_open(ctx->cfg.data_dir, st, err, sizeof err);
    if (!q)
        *code = moatctl_error(MOATCTL_INTERNAL, "%s", err);
    return q;
}

/* status_code - the exit code for a quarantine status (message printed) */
static int status_code(const char *cmd, const char *id, enum quarantine_status s, const char *err)
{
    char safe[200];
    log_escape(id, strlen(id), safe, sizeof safe);
    switch (s) {
    case QUARANTINE_OK:
        return MOATCTL_OK;
    case QUARANTINE_NOT_FOUND:
        return moatctl_error(MOATCTL_USER, "%s: no such quarantined message: %s", cmd, safe);
    case QUARANTINE_RELEASED:
    case QUARANTINE_INVALID:
        return moatctl_error(MOATCTL_USER, "%s: %s: %s", cmd, safe, err);
    case QUARANTINE_CORRUPT:
    case QUARANTINE_ERROR:
        break;
    }
    return moatctl_error(MOATCTL_INTERNAL, "%s: %s: %s", cmd, safe, err);
}

static json_t *jstr(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *item_json(const struct store_quarantine_item *it)
{
    char when[40];
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(it->id));
    json_object_set_new(o, "company_id", json_string(it->company_id));
    json_object_set_new(o, "qid", json_string(it->qid));
    moatctl_iso_time(it->time, when, sizeof when);
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "ts", json_real(it->time));
    json_object_set_new(o, "rcpt", json_string(it->rcpt));
    json_object_set_new(o, "sender", json_string(it->sender));
    json_object_set_new(o, "header_from", jstr(it->header_from));
    json_object_set_new(o, "subject", jstr(it->subject));
    json_object_set_new(o, "size", json_integer((json_int_t)it->size));
    json_object_set_new(o, "stored_size", json_integer((json_int_t)it->stored_size));
    json_object_set_new(o, "rule", jstr(it->rule));
    json_object_set_new(o, "rule_order", json_integer(it->rule_order));
    json_object_set_new(o, "reason", jstr(it->reason));
    json_error_t je;
    json_t *det = it->detections ? json_loads(it->detections, 0, &je) : NULL;
    json_object_set_new(o, "detections", det ? det : json_array());
    json_object_set_new(o, "scan", jstr(it->scan));
    json_object_set_new(o, "direction", jstr(it->direction));
    if (it->released > 0) {
        moatctl_iso_time(it->released, when, sizeof when);
        json_object_set_new(o, "released", json_string(when));
        json_object_set_new(o, "released_qid", json_string(it->released_qid));
    } else {
        json_object_set_new(o, "released", json_null());
    }
    return o;
}

static void print_json(json_t *v)
{
    char *t = json_dumps(v, JSON_INDENT(2));
    printf("%s\n", t);
    free(t);
}

/* parse_common - --tenant / --rcpt / --since / --until / --limit; returns
 * optind, or -1 after printing a usage error */
struct qopts {
    const char *tenant, *rcpt;
    double since, until;
    size_t limit;
};

static int parse_opts(const char *cmd, const char *syn, int argc, char **argv, bool filters, struct qopts *o)
{
    static const struct option lo[] = {
        {"tenant", required_argument, NULL, 't'}, {"rcpt", required_argument, NULL, 'r'},
        {"since", required_argument, NULL, 's'},  {"until", required_argument, NULL, 'u'},
        {"limit", required_argument, NULL, 'l'},  {NULL, 0, NULL, 0}};
    double now = core_now();
    uint64_t n;
    int ch;
    memset(o, 0, sizeof *o);
    moatctl_getopt_reset();
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (ch != 't' && !filters) {
            moatctl_usage(cmd, syn, "unknown option '%s'", argv[optind - 1]);
            return -1;
        }
        switch (ch) {
        case 't':
            o->tenant = optarg;
            break;
        case 'r':
            o->rcpt = optarg;
            break;
        case 's':
        case 'u':
            if (moatctl_parse_time(optarg, now, ch == 's' ? &o->since : &o->until) < 0) {
                moatctl_usage(cmd, syn, "--%s: not a time: '%s'", ch == 's' ? "since" : "until", optarg);
                return -1;
            }
            break;
        case 'l':
            if (core_parse_u64(optarg, 100000, &n) < 0 || n == 0) {
                moatctl_usage(cmd, syn, "--limit: a number 1..100000");
                return -1;
            }
            o->limit = (size_t)n;
            break;
        default:
            moatctl_usage(cmd, syn, "unknown option '%s'", argv[optind - 1]);
            return -1;
        }
    }
    return optind;
}

/* id_command - "[--tenant ID] QUARANTINE-ID": the options, the index of the
 * ID in argv and the opened quarantine; NULL with *code after printing why */
static struct quarantine *id_command(struct moatctl *ctx, int argc, char **argv, struct qopts *o, int *idx,
                                     int *code)
{
    *code = MOATCTL_USER;
    *idx = parse_opts(argv[0], ID_SYN, argc, argv, false, o);
    if (*idx < 0)
        return NULL;
    if (argc - *idx != 1) {
        *code = moatctl_usage(argv[0], ID_SYN, "expected one quarantine ID");
        return NULL;
    }
    *code = MOATCTL_OK;
    return open_quarantine(ctx, code);
}

/* ---------------------------------------------------------------- list */
static int cmd_list(struct moatctl *ctx, int argc, char **argv)
{
    struct qopts o;
    int code = MOATCTL_OK;
    int i = parse_opts(argv[0], LIST_SYN, argc, argv, true, &o);
    if (i < 0)
        return MOATCTL_USER;
    if (i != argc)
        return moatctl_usage(argv[0], LIST_SYN, "unexpected argument '%s'", argv[i]);
    struct store *st = moatctl_store(ctx, &code);
    if (!st)
        return code;
    struct store_quarantine_query q = {
        .company_id = o.tenant, .rcpt = o.rcpt, .since = o.since, .until = o.until, .limit = o.limit};
    struct store_quarantine_item *items;
    long n = store_quarantine_list(st, &q, &items);
    if (n < 0)
        return moatctl_error(MOATCTL_INTERNAL, "cannot read the quarantine index");
    if (ctx->json) {
        json_t *a = json_array();
        for (long k = 0; k < n; k++)
            json_array_append_new(a, item_json(&items[k]));
        print_json(a);
        json_decref(a);
    } else if (n == 0) {
        printf("no quarantined messages\n");
    } else {
        printf("ID\tTIME\tTENANT\tRECIPIENT\tSENDER\tSIZE\tRULE\tSTATUS\tSUBJECT\n");
        for (long k = 0; k < n; k++) {
            const struct store_quarantine_item *it = &items[k];
            char when[40];
            moatctl_local_time(it->time, when, sizeof when);
            printf("%s\t%s\t", it->id, when);
            moatctl_print_safe(stdout, it->company_id);
            putchar('\t');
            moatctl_print_safe(stdout, it->rcpt);
            putchar('\t');
            moatctl_print_safe(stdout, it->sender[0] ? it->sender : "<>");
            printf("\t%llu\t", (unsigned long long)it->size);
            moatctl_print_safe(stdout, it->rule ? it->rule : "-");
            printf("\t%s\t", it->released > 0 ? "released" : "held");
            moatctl_print_safe(stdout, it->subject ? it->subject : "");
            putchar('\n');
        }
    }
    store_quarantine_items_free(items, n);
    return MOATCTL_OK;
}

/* ---------------------------------------------------------------- show */
/* print_field - "Name: value" with the value escaped */
static void print_field(const char *name, const char *value)
{
    printf("%-14s ", name);
    moatctl_print_safe(stdout, value ? value : "");
    putchar('\n');
}

/* preview - the first PREVIEW_MAX characters of s, control characters
 * other than line breaks replaced */
static void preview(const char *s, size_t len)
{
    size_t chars = 0;
    for (size_t i = 0; i < len && chars < PREVIEW_MAX;) {
        uint32_t cp;
        size_t n = core_utf8_next(s, len, i, &cp);
        if (cp == '\n' || cp == '\t')
            putchar((int)cp);
        else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0))
            putchar('?');
        else
            fwrite(s + i, 1, n, stdout);
        i += n;
        chars++;
    }
    if (chars >= PREVIEW_MAX)
        printf("\n[... preview cut at %d characters]", PREVIEW_MAX);
    putchar('\n');
}

static int cmd_show(struct moatctl *ctx, int argc, char **argv)
{
    struct qopts o;
    int code, i;
    char err[512];
    struct quarantine *q = id_command(ctx, argc, argv, &o, &i, &code);
    if (!q)
        return code;
    struct store_quarantine_item it;
    struct buf msg;
    buf_init(&msg, QUARANTINE_MESSAGE_MAX);
    enum quarantine_status s = quarantine_load(q, o.tenant, argv[i], &it, &msg, err, sizeof err);
    if (s != QUARANTINE_OK) {
        code = status_code(argv[0], argv[i], s, err);
        goto out;
    }
    struct analysis *a = mime_analyse(msg.ptr ? msg.ptr : "", msg.len, NULL);
    if (ctx->json) {
        json_t *o2 = item_json(&it);
        json_t *h = json_array();
        for (size_t k = 0; a && k < a->nheaders; k++)
            json_array_append_new(
                h, json_pack("{s:s,s:s}", "name", a->headers[k].name, "value", a->headers[k].value));
        json_object_set_new(o2, "headers", h);
        size_t plen = a && a->text ? a->text_len : 0;
        json_object_set_new(o2, "preview",
                            json_stringn(a && a->text ? a->text : "", plen > 8192 ? 8192 : plen));
        json_t *att = json_array();
        for (size_t k = 0; a && k < a->nattachments; k++)
            json_array_append_new(att, jstr(a->attachments[k].filename));
        json_object_set_new(o2, "attachments", att);
        print_json(o2);
        json_decref(o2);
    } else {
        char when[40], num[64];
        print_field("ID:", it.id);
        print_field("Tenant:", it.company_id);
        print_field("Queue ID:", it.qid);
        moatctl_local_time(it.time, when, sizeof when);
        print_field("Quarantined:", when);
        print_field("Recipient:", it.rcpt);
        print_field("Sender:", it.sender[0] ? it.sender : "<>");
        snprintf(num, sizeof num, "%llu bytes (%llu stored)", (unsigned long long)it.size,
                 (unsigned long long)it.stored_size);
        print_field("Size:", num);
        print_field("Rule:", it.rule);
        print_field("Reason:", it.reason);
        if (it.released > 0) {
            moatctl_local_time(it.released, when, sizeof when);
            snprintf(num, sizeof num, "%s as %s", when, it.released_qid);
            print_field("Released:", num);
        }
        printf("\n--- headers ---\n");
        for (size_t k = 0; a && k < a->nheaders; k++) {
            moatctl_print_safe(stdout, a->headers[k].name);
            fputs(": ", stdout);
            moatctl_print_safe(stdout, a->headers[k].value);
            putchar('\n');
        }
        for (size_t k = 0; a && k < a->nattachments; k++) {
            fputs(k == 0 ? "\n--- attachments ---\n" : "", stdout);
            moatctl_print_safe(stdout, a->attachments[k].filename ? a->attachments[k].filename : "(no name)");
            putchar('\n');
        }
        printf("\n--- text preview ---\n");
        if (a && a->text)
            preview(a->text, a->text_len);
    }
    analysis_free(a);
    store_quarantine_item_free(&it);
out:
    buf_free(&msg);
    quarantine_close(q);
    return code;
}

/* ---------------------------------------------------------------- release / delete */
static int inject_ctl(void *arg, const char *data, size_t len, struct queue_envelope *env)
{
    struct moatctl *ctx = arg;
    bool picked = false;
    if (queue_ctl_inject(ctx->cfg.data_dir, data, len, env, &picked) < 0)
        return -1;
    if (!picked)
        fprintf(stderr, "moatctl: moatd is not running: the message is delivered when it starts\n");
    return 0;
}

static int cmd_release(struct moatctl *ctx, int argc, char **argv)
{
    struct qopts o;
    int code, i;
    char err[512], new_qid[CORE_QID_LEN + 1], err2[256];
    struct quarantine *q = id_command(ctx, argc, argv, &o, &i, &code);
    if (!q)
        return code;
    struct tracker *tr = tracker_start(&ctx->cfg, err2, sizeof err2);
    int scode = MOATCTL_OK;
    struct quarantine_policy qp = {.st = moatctl_store(ctx, &scode), .q = q};
    struct quarantine_release_opts ro = {.after_quarantine = qp.st ? quarantine_policy_after : NULL,
                                         .after_arg = &qp,
                                         .inject = inject_ctl,
                                         .inject_arg = ctx,
                                         .tracker = tr,
                                         .actor =
                                             o.tenant ? "the tenant administrator (moatctl)" : "moatctl"};
    enum quarantine_status s = quarantine_release(q, o.tenant, argv[i], &ro, new_qid, err, sizeof err);
    if (tr)
        tracker_stop(tr);
    code = status_code(argv[0], argv[i], s, err);
    if (code == MOATCTL_OK) {
        if (ctx->json)
            printf("{\"released\": \"%s\", \"qid\": \"%s\"}\n", argv[i], new_qid);
        else if (new_qid[0])
            printf("released: %s queued as %s\n", argv[i], new_qid);
        else
            printf("released: %s (%s)\n", argv[i], err);
    }
    quarantine_close(q);
    return code;
}

static int cmd_delete(struct moatctl *ctx, int argc, char **argv)
{
    struct qopts o;
    int code, i;
    char err[512];
    struct quarantine *q = id_command(ctx, argc, argv, &o, &i, &code);
    if (!q)
        return code;
    enum quarantine_status s = quarantine_delete(q, o.tenant, argv[i], err, sizeof err);
    code = status_code(argv[0], argv[i], s, err);
    if (code == MOATCTL_OK)
        printf(ctx->json ? "{\"deleted\": \"%s\"}\n" : "deleted: %s\n", argv[i]);
    quarantine_close(q);
    return code;
}

/* ---------------------------------------------------------------- purge / stats */
static int cmd_purge(struct moatctl *ctx, int argc, char **argv)
{
    static const struct option lo[] = {{"before", required_argument, NULL, 'b'}, {NULL, 0, NULL, 0}};
    static const char syn[] = "[--before T]";
    double now = core_now(), before = now - (double)ctx->cfg.quarantine_retention;
    int ch, code = MOATCTL_OK;
    moatctl_getopt_reset();
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (ch != 'b')
            return moatctl_usage(argv[0], syn, "unknown option '%s'", argv[optind - 1]);
        if (moatctl_parse_time(optarg, now, &before) < 0)
            return moatctl_usage(argv[0], syn, "--before: not a time: '%s'", optarg);
    }
    if (optind != argc)
        return moatctl_usage(argv[0], syn, "unexpected argument '%s'", argv[optind]);
    struct quarantine *q = open_quarantine(ctx, &code);
    if (!q)
        return code;
    long n = quarantine_purge(q, before);
    quarantine_close(q);
    if (n < 0)
        return moatctl_error(MOATCTL_INTERNAL, "purge failed");
    printf(ctx->json ? "{\"purged\": %ld}\n" : "purged: %ld\n", n);
    return MOATCTL_OK;
}

static int cmd_stats(struct moatctl *ctx, int argc, char **argv)
{
    struct qopts o;
    int code = MOATCTL_OK;
    int i = parse_opts(argv[0], "[--tenant ID]", argc, argv, false, &o);
    if (i < 0)
        return MOATCTL_USER;
    if (i != argc)
        return moatctl_usage(argv[0], "[--tenant ID]", "unexpected argument '%s'", argv[i]);
    struct store *st = moatctl_store(ctx, &code);
    if (!st)
        return code;
    struct store_quarantine_stats *v;
    long n = store_quarantine_stats(st, o.tenant, &v);
    if (n < 0)
        return moatctl_error(MOATCTL_INTERNAL, "cannot read the quarantine index");
    if (ctx->json) {
        json_t *a = json_array();
        for (long k = 0; k < n; k++)
            json_array_append_new(a, json_pack("{s:s,s:I,s:I,s:I,s:I}", "company_id", v[k].company_id,
                                               "count", (json_int_t)v[k].count, "released",
                                               (json_int_t)v[k].released, "bytes", (json_int_t)v[k].bytes,
                                               "stored_bytes", (json_int_t)v[k].stored_bytes));
        print_json(a);
        json_decref(a);
    } else {
        printf("TENANT\tMESSAGES\tRELEASED\tBYTES\tSTORED-BYTES\n");
        for (long k = 0; k < n; k++) {
            moatctl_print_safe(stdout, v[k].company_id);
            printf("\t%llu\t%llu\t%llu\t%llu\n", (unsigned long long)v[k].count,
                   (unsigned long long)v[k].released, (unsigned long long)v[k].bytes,
                   (unsigned long long)v[k].stored_bytes);
        }
    }
    free(v);
    return MOATCTL_OK;
}

/* ---------------------------------------------------------------- put */
static int cmd_put(struct moatctl *ctx, int argc, char **argv)
{
    static const struct option lo[] = {
        {"tenant", required_argument, NULL, 't'}, {"rcpt", required_argument, NULL, 'r'},
        {"sender", required_argument, NULL, 's'}, {"rule", required_argument, NULL, 'R'},
        {"reason", required_argument, NULL, 'x'}, {NULL, 0, NULL, 0}};
    const char *rcpts[64];
    size_t nrcpts = 0;
    struct quarantine_put_info info = {
        .sender = "", .rule = "manual", .reason = "quarantined by the operator"};
    int ch, code = MOATCTL_OK;
    char err[512], qid[CORE_QID_LEN + 1], id[STORE_QUARANTINE_ID_LEN + 1];
    moatctl_getopt_reset();
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 't':
            info.company_id = optarg;
            break;
        case 'r':
            if (nrcpts == sizeof rcpts / sizeof rcpts[0])
                return moatctl_usage(argv[0], PUT_SYN, "at most %zu --rcpt", sizeof rcpts / sizeof rcpts[0]);
            rcpts[nrcpts++] = optarg;
            break;
        case 's':
            info.sender = optarg;
            break;
        case 'R':
            info.rule = optarg;
            break;
        case 'x':
            info.reason = optarg;
            break;
        default:
            return moatctl_usage(argv[0], PUT_SYN, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (!info.company_id || nrcpts == 0 || argc - optind != 1)
        return moatctl_usage(argv[0], PUT_SYN, "--tenant, --rcpt and one file are required");
    size_t len;
    char *data = moatctl_read_file(argv[optind], ctx->cfg.message_size_limit, &len);
    if (!data)
        return moatctl_error(MOATCTL_USER, "%s: %s", argv[optind], strerror(errno));
    struct quarantine *q = open_quarantine(ctx, &code);
    if (!q) {
        free(data);
        return code;
    }
    core_qid_new(qid);
    info.qid = qid;
    struct analysis *a = mime_analyse(data, len, NULL); /* the decoded subject for listings */
    if (a && a->subject)
        info.subject = a->subject;
    json_t *ids = json_array();
    for (size_t k = 0; k < nrcpts && code == MOATCTL_OK; k++) {
        info.rcpt = rcpts[k];
        enum quarantine_status s = quarantine_put(q, &info, data, len, id, err, sizeof err);
        code = status_code(argv[0], rcpts[k], s, err);
        if (code == MOATCTL_OK) {
            json_array_append_new(ids, json_string(id));
            if (!ctx->json)
                printf("%s\n", id);
        }
    }
    if (ctx->json && code == MOATCTL_OK)
        print_json(ids);
    json_decref(ids);
    analysis_free(a);
    quarantine_close(q);
    free(data);
    return code;
}

const struct moatctl_cmd moatctl_quarantine_cmds[] = {
    {"list", LIST_SYN, "quarantined messages, newest first", cmd_list, NULL},
    {"show", ID_SYN, "one quarantined message: index entry, headers, text preview", cmd_show, NULL},
    {"release", ID_SYN, "deliver a quarantined message to its recipient (once)", cmd_release, NULL},
    {"delete", ID_SYN, "remove a quarantined message", cmd_delete, NULL},
    {"purge", "[--before T]", "remove what is older than quarantine_retention (or T)", cmd_purge, NULL},
    {"stats", "[--tenant ID]", "messages and bytes per tenant", cmd_stats, NULL},
    {"put", PUT_SYN, "quarantine a message file for a tenant's recipients (operator)", cmd_put, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
