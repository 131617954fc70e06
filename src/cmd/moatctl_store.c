/*
 * moatctl_store.c - moatctl commands on the store: import, export, and the
 * tracking group (search, show, purge).
 *
 *   import [--trust-domains] FILE.json|-   validate and apply a tenant document
 *   export [--tenant ID]                   print the document
 *   tracking search [filters]              one line (or JSON object) per recipient
 *   tracking show QID                      the message's timeline
 *   tracking purge                         delete tracking older than tracking_retention
 *
 * Output from the database is untrusted text (subjects, replies): human
 * output replaces control characters before printing. Import reads at most
 * MOATCTL_IMPORT_MAX bytes.
 */
#include "cmd/moatctl.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>

#include "store/store.h"

#define MOATCTL_IMPORT_MAX (256u * 1024 * 1024)

/* opt_error - the message for getopt's '?' / ':' results */
static int opt_error(const char *cmd, const char *synopsis, int c, char **argv)
{
    const char *opt = argv[optind - 1];
    if (c == ':')
        return moatctl_usage(cmd, synopsis, "option %s needs a value", opt);
    return moatctl_usage(cmd, synopsis, "unknown option \"%s\"", opt);
}

/* ---------------------------------------------------------------- import / export */
int moatctl_cmd_import(struct moatctl *ctx, int argc, char **argv)
{
    static const char syn[] = "[--trust-domains] FILE.json|-";
    static const struct option opts[] = {{"trust-domains", no_argument, NULL, 't'}, {NULL, 0, NULL, 0}};
    bool trust = false;
    int c, code = MOATCTL_OK;
    moatctl_getopt_reset();
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == 't')
            trust = true;
        else
            return opt_error(argv[0], syn, c, argv);
    }
    if (argc - optind != 1)
        return moatctl_usage(argv[0], syn, argc - optind == 0 ? "missing FILE" : "only one FILE at a time");
    const char *path = argv[optind];
    size_t len;
    char *doc = moatctl_read_file(path, MOATCTL_IMPORT_MAX, &len);
    if (!doc) {
        if (errno == EFBIG)
            return moatctl_error(MOATCTL_USER, "import: %s: larger than %u bytes", path, MOATCTL_IMPORT_MAX);
        return moatctl_error(MOATCTL_USER, "import: %s: %s", path, strerror(errno));
    }
    struct store *st = moatctl_store(ctx, &code);
    if (!st) {
        free(doc);
        return code;
    }
    char err[1024];
    struct store_import_result res;
    int rc = store_import_json_report(st, doc, len, trust, &res, err, sizeof err);
    free(doc);
    if (rc == 1)
        return moatctl_error(MOATCTL_USER, "import: %s: %s", strcmp(path, "-") == 0 ? "stdin" : path, err);
    if (rc != 0)
        return moatctl_error(MOATCTL_INTERNAL, "import: %s", err);
    if (ctx->json) {
        printf("{\"tenants\": %zu, \"changed\": %zu, \"config_version\": %lld}\n", res.tenants, res.changed,
               (long long)res.config_version);
    } else if (res.changed) {
        printf("imported %zu tenant%s (%zu changed), config version %lld%s\n", res.tenants,
               res.tenants == 1 ? "" : "s", res.changed, (long long)res.config_version,
               trust ? " (domains trusted; recorded in the audit log)" : "");
    } else {
        printf("no changes (%zu tenant%s, config version %lld)\n", res.tenants, res.tenants == 1 ? "" : "s",
               (long long)res.config_version);
    }
    return MOATCTL_OK;
}

int moatctl_cmd_export(struct moatctl *ctx, int argc, char **argv)
{
    static const char syn[] = "[--tenant ID]";
    static const struct option opts[] = {{"tenant", required_argument, NULL, 't'}, {NULL, 0, NULL, 0}};
    const char *tenant = NULL;
    int c, code = MOATCTL_OK;
    moatctl_getopt_reset();
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == 't')
            tenant = optarg;
        else
            return opt_error(argv[0], syn, c, argv);
    }
    if (optind < argc)
        return moatctl_usage(argv[0], syn, "unexpected argument \"%s\"", argv[optind]);
    struct store *st = moatctl_store(ctx, &code);
    if (!st)
        return code;
    char err[512];
    char *doc = store_export_json(st, tenant, err, sizeof err);
    if (!doc)
        return moatctl_error(strncmp(err, "no such tenant", 14) == 0 ? MOATCTL_USER : MOATCTL_INTERNAL,
                             "export: %s", err);
    fputs(doc, stdout);
    fputc('\n', stdout);
    free(doc);
    return MOATCTL_OK;
}

/* ---------------------------------------------------------------- tracking */
static void put_str(json_t *o, const char *k, const char *v)
{
    json_t *s = v ? json_string(v) : NULL;
    json_object_set_new(o, k, s ? s : json_null());
}

static void print_field(const char *v, const char *empty)
{
    moatctl_print_safe(stdout, v && *v ? v : empty);
}

static void print_rows_human(const struct track_row *rows, long n)
{
    if (n == 0) {
        printf("no messages found\n");
        return;
    }
    printf("TIME\tQUEUE-ID\tSENDER\tRECIPIENT\tACTION/STATUS\tSUBJECT\tCLIENT-IP\tSERVER\tREPLY\n");
    for (long i = 0; i < n; i++) {
        const struct track_row *r = &rows[i];
        char tm[40];
        moatctl_local_time(r->time, tm, sizeof tm);
        printf("%s\t%s\t", tm, r->qid);
        print_field(r->sender ? (*r->sender ? r->sender : "<>") : NULL, "-");
        putchar('\t');
        print_field(r->rcpt, "-");
        putchar('\t');
        print_field(r->action, "-");
        if (r->status) {
            putchar('/');
            print_field(r->status, "-");
        }
        putchar('\t');
        print_field(r->subject, "-");
        putchar('\t');
        print_field(r->client_ip, "-");
        putchar('\t');
        print_field(r->server, "-");
        putchar('\t');
        print_field(r->reply ? r->reply : r->reason, "-");
        putchar('\n');
    }
}

static void print_rows_json(const struct track_row *rows, long n)
{
    json_t *arr = json_array();
    for (long i = 0; i < n; i++) {
        const struct track_row *r = &rows[i];
        json_t *o = json_object();
        char iso[40];
        moatctl_iso_time(r->time, iso, sizeof iso);
        json_object_set_new(o, "time", json_string(iso));
        json_object_set_new(o, "ts", json_real(r->time));
        put_str(o, "qid", r->qid);
        put_str(o, "sender", r->sender);
        put_str(o, "rcpt", r->rcpt);
        put_str(o, "action", r->action);
        put_str(o, "status", r->status);
        put_str(o, "subject", r->subject);
        put_str(o, "client_ip", r->client_ip);
        put_str(o, "server", r->server);
        put_str(o, "reply", r->reply);
        put_str(o, "tls", r->tls);
        put_str(o, "delivery_tls", r->delivery_tls);
        put_str(o, "message_id", r->message_id);
        put_str(o, "reason", r->reason);
        json_object_set_new(o, "size", json_integer((json_int_t)(r->size > INT64_MAX ? INT64_MAX : r->size)));
        json_array_append_new(arr, o);
    }
    char *s = json_dumps(arr, JSON_INDENT(2));
    json_decref(arr);
    if (s) {
        puts(s);
        free(s);
    }
}

static int cmd_tracking_search(struct moatctl *ctx, int argc, char **argv)
{
    static const char syn[] = "[--since T] [--until T] [--rcpt A] [--sender A] [--action X] [--subject S]"
                              " [--id QID] [--tenant ID] [--limit N]";
    static const struct option opts[] = {
        {"since", required_argument, NULL, 's'},  {"until", required_argument, NULL, 'u'},
        {"rcpt", required_argument, NULL, 'r'},   {"sender", required_argument, NULL, 'f'},
        {"action", required_argument, NULL, 'a'}, {"subject", required_argument, NULL, 'S'},
        {"id", required_argument, NULL, 'i'},     {"tenant", required_argument, NULL, 't'},
        {"limit", required_argument, NULL, 'l'},  {NULL, 0, NULL, 0},
    };
    struct track_query q;
    memset(&q, 0, sizeof q);
    double now = core_now();
    int c, code = MOATCTL_OK;
    uint64_t lim;
    moatctl_getopt_reset();
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 's':
        case 'u':
            if (moatctl_parse_time(optarg, now, c == 's' ? &q.since : &q.until) < 0)
                return moatctl_usage(argv[0], syn,
                                     "--%s: \"%s\" is not a time (e.g. 1h, 24h, 7d, 2024-05-01, "
                                     "2024-05-01T09:30:00Z)",
                                     c == 's' ? "since" : "until", optarg);
            break;
        case 'r':
            q.rcpt = optarg;
            break;
        case 'f':
            q.sender = optarg;
            break;
        case 'a':
            q.action = optarg;
            break;
        case 'S':
            q.subject = optarg;
            break;
        case 'i':
            q.qid = optarg;
            break;
        case 't':
            q.company_id = optarg;
            break;
        case 'l':
            if (core_parse_u64(optarg, 1000000, &lim) < 0 || lim == 0)
                return moatctl_usage(argv[0], syn, "--limit: must be a number 1..1000000");
            q.limit = (size_t)lim;
            break;
        default:
            return opt_error(argv[0], syn, c, argv);
        }
    }
    if (optind < argc)
        return moatctl_usage(argv[0], syn, "unexpected argument \"%s\"", argv[optind]);
    if (q.since > 0 && q.until > 0 && q.until < q.since)
        return moatctl_usage(argv[0], syn, "--until is before --since");
    struct store *st = moatctl_store(ctx, &code);
    if (!st)
        return code;
    struct track_row *rows;
    long n = store_tracking_search(st, &q, &rows);
    if (n < 0)
        return moatctl_error(MOATCTL_INTERNAL, "tracking search: database error");
    if (ctx->json)
        print_rows_json(rows, n);
    else
        print_rows_human(rows, n);
    store_tracking_rows_free(rows, n);
    return MOATCTL_OK;
}

/* print_event_human - "TIME  EVENT  rcpt=...  key=value ..." */
static void print_event_human(json_t *e)
{
    char tm[40];
    json_t *ts = json_object_get(e, "ts");
    moatctl_local_time(json_number_value(ts), tm, sizeof tm);
    printf("%s  ", tm);
    print_field(json_string_value(json_object_get(e, "event")), "-");
    const char *key;
    json_t *v;
    json_object_foreach(e, key, v)
    {
        if (!strcmp(key, "time") || !strcmp(key, "ts") || !strcmp(key, "event") || !strcmp(key, "qid") ||
            !strcmp(key, "detections"))
            continue;
        printf("  %s=", key);
        if (json_is_string(v)) {
            const char *s = json_string_value(v);
            bool quote = strchr(s, ' ') != NULL || *s == '\0';
            if (quote)
                putchar('"');
            moatctl_print_safe(stdout, s);
            if (quote)
                putchar('"');
        } else if (json_is_array(v)) {
            for (size_t i = 0; i < json_array_size(v); i++) {
                if (i)
                    putchar(',');
                print_field(json_string_value(json_array_get(v, i)), "-");
            }
        } else {
            char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            if (s)
                moatctl_print_safe(stdout, s);
            free(s);
        }
    }
    putchar('\n');
    /* one indented line per detection: category name (score[, type]): evidence */
    json_t *dets = json_object_get(e, "detections");
    for (size_t i = 0; i < json_array_size(dets); i++) {
        json_t *d = json_array_get(dets, i);
        const char *type = json_string_value(json_object_get(d, "type"));
        printf("    detection ");
        print_field(json_string_value(json_object_get(d, "category")), "-");
        putchar(' ');
        print_field(json_string_value(json_object_get(d, "name")), "-");
        printf(" (%.2f", json_number_value(json_object_get(d, "score")));
        if (type) {
            printf(", ");
            moatctl_print_safe(stdout, type);
        }
        printf("): ");
        moatctl_print_safe(stdout, json_string_value(json_object_get(d, "evidence")) ?: "");
        putchar('\n');
    }
}

static int cmd_tracking_show(struct moatctl *ctx, int argc, char **argv)
{
    static const char syn[] = "[--tenant ID] QID";
    static const struct option opts[] = {{"tenant", required_argument, NULL, 't'}, {NULL, 0, NULL, 0}};
    const char *tenant = NULL;
    int c, code = MOATCTL_OK;
    moatctl_getopt_reset();
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == 't')
            tenant = optarg;
        else
            return opt_error(argv[0], syn, c, argv);
    }
    if (argc - optind != 1)
        return moatctl_usage(argv[0], syn, argc - optind == 0 ? "missing QID" : "only one QID at a time");
    const char *qid = argv[optind];
    struct store *st = moatctl_store(ctx, &code);
    if (!st)
        return code;
    char *tl = store_tracking_timeline(st, tenant, qid);
    if (!tl) {
        char q[80];
        log_escape(qid, strlen(qid), q, sizeof q);
        return moatctl_error(MOATCTL_USER, "tracking show: no message with queue ID \"%s\"", q);
    }
    if (ctx->json) {
        puts(tl);
        free(tl);
        return MOATCTL_OK;
    }
    json_t *events = json_loads(tl, 0, NULL);
    free(tl);
    if (!json_is_array(events)) {
        json_decref(events);
        return moatctl_error(MOATCTL_INTERNAL, "tracking show: bad timeline");
    }
    printf("queue ID %s\n", qid);
    for (size_t i = 0; i < json_array_size(events); i++)
        print_event_human(json_array_get(events, i));
    json_decref(events);
    return MOATCTL_OK;
}

static int cmd_tracking_purge(struct moatctl *ctx, int argc, char **argv)
{
    static const char syn[] = "";
    int code = MOATCTL_OK;
    if (argc > 1)
        return moatctl_usage(argv[0], syn, "unexpected argument \"%s\"", argv[1]);
    struct store *st = moatctl_store(ctx, &code);
    if (!st)
        return code;
    double before = core_now() - (double)ctx->cfg.tracking_retention;
    long n = store_tracking_purge(st, before);
    if (n < 0)
        return moatctl_error(MOATCTL_INTERNAL, "tracking purge: database error");
    char iso[40];
    moatctl_iso_time(before, iso, sizeof iso);
    if (ctx->json)
        printf("{\"purged\": %ld, \"before\": \"%s\"}\n", n, iso);
    else
        printf("purged %ld message%s received before %s (tracking_retention %llus)\n", n, n == 1 ? "" : "s",
               iso, (unsigned long long)ctx->cfg.tracking_retention);
    return MOATCTL_OK;
}

const struct moatctl_cmd moatctl_tracking_cmds[] = {
    {"search",
     "[--since T] [--until T] [--rcpt A] [--sender A] [--action X] [--subject S] [--id QID] [--tenant ID] "
     "[--limit N]",
     "search tracked messages (one line per recipient, newest first)", cmd_tracking_search, NULL},
    {"show", "[--tenant ID] QID", "the timeline of one message", cmd_tracking_show, NULL},
    {"purge", "", "delete tracking older than tracking_retention", cmd_tracking_purge, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
