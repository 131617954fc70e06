/*
 * moatctl_notify.c - `moatctl notify list | preview | send`: the
 * notification templates (src/notify/notify_template.c).
 *
 *   list                     the shipped templates and their languages
 *   preview TEMPLATE         the rendered message (what the console's
 *                            "preview" will show); variables not given with
 *                            --var get sample values; --text: only the
 *                            subject and the body, decoded
 *   send TEMPLATE --to ADDR  render and queue it (queue_ctl_inject: durable
 *                            in the spool, then picked up by moatd)
 *
 * --tenant ID takes the company name (and, for send without --to, the
 * administrator's address) from the tenant document.
 */
#include "cmd/moatctl.h"

#include <getopt.h>
#include <jansson.h>

#include "notify/notify.h"
#include "queue/queue.h"
#include "store/store.h"

static const char PREVIEW_SYN[] =
    "TEMPLATE [--lang ja|en] [--tenant ID] [--to ADDR] [--var NAME=VALUE ...] [--text]";
static const char SEND_SYN[] = "TEMPLATE [--to ADDR ...] [--lang ja|en] [--tenant ID] [--var NAME=VALUE ...]";

/* sample values for preview */
static const char *const samples[NOTIFY_NVARS] = {
    [NOTIFY_VAR_SENDER] = "sender@example.com",
    [NOTIFY_VAR_RECIPIENTS] = "user@example.jp",
    [NOTIFY_VAR_SUBJECT] = "Invoice",
    [NOTIFY_VAR_RULE] = "Virus",
    [NOTIFY_VAR_DETECTIONS] = "Eicar-Test-Signature",
    [NOTIFY_VAR_DATE] = "2026-01-01 09:00:00 +0900",
    [NOTIFY_VAR_QID] = "0123456789ABCDEF0123",
    [NOTIFY_VAR_TENANT] = "Example Corp",
    [NOTIFY_VAR_QUARANTINE_ID] = "0123456789abcdef0123456789abcdef",
    [NOTIFY_VAR_ATTACHMENTS] = "invoice.exe",
    [NOTIFY_VAR_SIZE] = "160 MB",
    [NOTIFY_VAR_SIZE_LIMIT] = "150 MB",
    [NOTIFY_VAR_REASON] = "attachment type executable",
    [NOTIFY_VAR_DOMAIN] = "example.jp",
    [NOTIFY_VAR_MX_HOST] = "example.in.moat.example",
    [NOTIFY_VAR_TXT_RECORD] = "moat-verification=0123456789abcdef0123456789abcdef",
    [NOTIFY_VAR_COMPANY_ID] = "example",
    [NOTIFY_VAR_LINK] = "https://moat.example:8080/#/setup?token=0123456789abcdef",
    [NOTIFY_VAR_EXPIRES] = "2026-01-04 09:00:00 UTC",
    [NOTIFY_VAR_EMAIL] = "admin@example.jp",
    [NOTIFY_VAR_USER_NAME] = "Taro Yamada",
    [NOTIFY_VAR_CODE] = "ABCDE-FGH23",
    [NOTIFY_VAR_EUC_URL] = "https://moat.example/euc/",
};

struct nopts {
    const char *lang, *tenant;
    bool text;
    const char *to[NOTIFY_RCPTS_MAX];
    size_t nto;
    struct notify_vars vars;
    char *owned[4]; /* tenant name / admin address from the store */
    struct notify_template *own; /* the tenant's own templates */
    size_t nown;
};

static void nopts_free(struct nopts *o)
{
    for (size_t i = 0; i < sizeof o->owned / sizeof o->owned[0]; i++)
        free(o->owned[i]);
    notify_templates_free(o->own, o->nown);
}

/* parse - options after TEMPLATE; optind of TEMPLATE's position, or -1 */
static int parse(const char *cmd, const char *syn, int argc, char **argv, struct nopts *o)
{
    static const struct option lo[] = {
        {"lang", required_argument, NULL, 'l'}, {"tenant", required_argument, NULL, 't'},
        {"to", required_argument, NULL, 'o'},   {"var", required_argument, NULL, 'v'},
        {"text", no_argument, NULL, 'T'},       {NULL, 0, NULL, 0}};
    int ch;
    memset(o, 0, sizeof *o);
    o->lang = "ja";
    moatctl_getopt_reset();
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'l':
            if (strcmp(optarg, "ja") != 0 && strcmp(optarg, "en") != 0) {
                moatctl_usage(cmd, syn, "--lang: ja or en");
                return -1;
            }
            o->lang = optarg;
            break;
        case 't':
            o->tenant = optarg;
            break;
        case 'T':
            o->text = true;
            break;
        case 'o':
            if (o->nto == NOTIFY_RCPTS_MAX) {
                moatctl_usage(cmd, syn, "at most %d --to", NOTIFY_RCPTS_MAX);
                return -1;
            }
            o->to[o->nto++] = optarg;
            break;
        case 'v': {
            char *eq = strchr(optarg, '=');
            char name[32];
            size_t nl = eq ? (size_t)(eq - optarg) : 0;
            int var = -1;
            if (eq && nl < sizeof name) {
                memcpy(name, optarg, nl);
                name[nl] = '\0';
                var = notify_var_find(name);
            }
            if (var < 0) {
                moatctl_usage(cmd, syn,
                              "--var: NAME=VALUE with NAME one of sender, recipients, subject, rule, "
                              "detections, date, qid, tenant, quarantine_id, attachments, size, "
                              "size_limit, reason");
                return -1;
            }
            o->vars.v[var] = eq + 1;
            break;
        }
        default:
            moatctl_usage(cmd, syn, "unknown option '%s'", argv[optind - 1]);
            return -1;
        }
    }
    if (argc - optind != 1) {
        moatctl_usage(cmd, syn, "expected one template name (see: moatctl notify list)");
        return -1;
    }
    return optind;
}

/* tenant_info - company name and admin address of o->tenant; code on error */
static int tenant_info(struct moatctl *ctx, struct nopts *o)
{
    char err[512];
    int code = MOATCTL_OK;
    if (!o->tenant)
        return MOATCTL_OK;
    struct store *st = moatctl_store(ctx, &code);
    if (!st)
        return code;
    char *doc = store_export_json(st, o->tenant, err, sizeof err);
    if (!doc)
        return moatctl_error(MOATCTL_USER, "%s", err);
    json_error_t je;
    json_t *d = json_loads(doc, 0, &je);
    free(doc);
    json_t *t = json_array_get(json_object_get(d, "tenants"), 0);
    const char *name = json_string_value(json_object_get(t, "name"));
    const char *admin = json_string_value(json_object_get(t, "admin_email"));
    o->nown = notify_templates_from_json(json_object_get(t, "notification_templates"), &o->own);
    if (name)
        o->owned[0] = xstrdup(name);
    if (admin)
        o->owned[1] = xstrdup(admin);
    json_decref(d);
    if (!o->vars.v[NOTIFY_VAR_TENANT] && o->owned[0])
        o->vars.v[NOTIFY_VAR_TENANT] = o->owned[0];
    return MOATCTL_OK;
}

static int cmd_list(struct moatctl *ctx, int argc, char **argv)
{
    struct nopts o;
    memset(&o, 0, sizeof o);
    if (argc == 3 && strcmp(argv[1], "--tenant") == 0)
        o.tenant = argv[2];
    else if (argc != 1)
        return moatctl_usage(argv[0], "[--tenant ID]", "unexpected argument '%s'", argv[1]);
    int code = tenant_info(ctx, &o);
    if (code != MOATCTL_OK) {
        nopts_free(&o);
        return code;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < o.nown; i++)
        json_array_append_new(a, json_pack("{s:s,s:s,s:[s]}", "name", o.own[i].name, "source", "tenant",
                                           "languages", o.own[i].lang));
    for (const struct notify_default *d = notify_defaults; d->name; d++)
        json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:[s,s]}", "name", d->name, "source", "default", "file",
                                           d->stem, "languages", "ja", "en"));
    if (ctx->json) {
        char *t = json_dumps(a, JSON_INDENT(2));
        printf("%s\n", t);
        free(t);
    } else {
        for (size_t i = 0; i < o.nown; i++)
            printf("%s\t(tenant %s, %s)\n", o.own[i].name, o.tenant, o.own[i].lang);
        for (const struct notify_default *d = notify_defaults; d->name; d++)
            printf("%s\t(%s/%s.{ja,en}.txt)\n", d->name, notify_template_dir(), d->stem);
    }
    json_decref(a);
    nopts_free(&o);
    return MOATCTL_OK;
}

/* render - load the template and render (prepare when env is not NULL) */
static int render(struct moatctl *ctx, const char *cmd, const char *name, struct nopts *o, struct buf *out,
                  struct queue_envelope *env)
{
    char err[512];
    struct notify_template t;
    if (notify_template_load(name, o->lang, o->own, o->nown, NULL, &t, err, sizeof err) < 0)
        return moatctl_error(MOATCTL_USER, "%s: %s", cmd, err);
    if (o->text && !env) {
        char subject[NOTIFY_SUBJECT_MAX + 1];
        int rc = notify_render_text(&t, &o->vars, subject, sizeof subject, out);
        notify_template_free(&t);
        if (rc < 0)
            return moatctl_error(MOATCTL_USER, "%s: cannot render the template", cmd);
        printf("Subject: %s\n\n", subject);
        return MOATCTL_OK;
    }
    struct notify_message m = {.tpl = &t,
                               .vars = &o->vars,
                               .hostname = ctx->cfg.hostname,
                               .tenant_name = o->owned[0],
                               .to = o->to,
                               .nto = o->nto};
    int rc = env ? notify_prepare(&m, out, env) : notify_render(&m, out);
    notify_template_free(&t);
    if (rc < 0)
        return moatctl_error(MOATCTL_USER, "%s: cannot render the message (bad recipient address?)", cmd);
    return MOATCTL_OK;
}

static int cmd_preview(struct moatctl *ctx, int argc, char **argv)
{
    struct nopts o;
    int i = parse(argv[0], PREVIEW_SYN, argc, argv, &o);
    if (i < 0)
        return MOATCTL_USER;
    int code = tenant_info(ctx, &o);
    for (int v = 0; v < NOTIFY_NVARS && code == MOATCTL_OK; v++)
        if (!o.vars.v[v])
            o.vars.v[v] = samples[v];
    if (o.nto == 0)
        o.to[o.nto++] = o.owned[1] ? o.owned[1] : "admin@example.jp";
    struct buf out;
    buf_init(&out, 8 * 1024 * 1024);
    if (code == MOATCTL_OK)
        code = render(ctx, argv[0], argv[i], &o, &out, NULL);
    if (code == MOATCTL_OK)
        fwrite(out.ptr, 1, out.len, stdout);
    buf_free(&out);
    nopts_free(&o);
    return code;
}

static int cmd_send(struct moatctl *ctx, int argc, char **argv)
{
    struct nopts o;
    struct queue_envelope env;
    int i = parse(argv[0], SEND_SYN, argc, argv, &o);
    if (i < 0)
        return MOATCTL_USER;
    memset(&env, 0, sizeof env);
    int code = tenant_info(ctx, &o);
    if (code == MOATCTL_OK && o.nto == 0 && o.owned[1])
        o.to[o.nto++] = o.owned[1];
    if (code == MOATCTL_OK && o.nto == 0)
        code = moatctl_usage(argv[0], SEND_SYN, "--to (or --tenant with an admin_email) is required");
    struct buf out;
    buf_init(&out, 8 * 1024 * 1024);
    if (code == MOATCTL_OK)
        code = render(ctx, argv[0], argv[i], &o, &out, &env);
    if (code == MOATCTL_OK) {
        bool picked = false;
        if (queue_ctl_inject(ctx->cfg.data_dir, out.ptr, out.len, &env, &picked) < 0) {
            code = moatctl_error(MOATCTL_INTERNAL, "%s: cannot queue the notification", argv[0]);
        } else {
            if (!picked)
                fprintf(stderr, "moatctl: moatd is not running: the notification is sent when it starts\n");
            printf(ctx->json ? "{\"queued\": \"%s\"}\n" : "queued: %s\n", env.qid);
        }
    }
    queue_envelope_free(&env);
    buf_free(&out);
    nopts_free(&o);
    return code;
}

const struct moatctl_cmd moatctl_notify_cmds[] = {
    {"list", "[--tenant ID]", "the notification templates shipped with Moat (and the tenant's own)", cmd_list, NULL},
    {"preview", PREVIEW_SYN, "print a rendered notification (sample values for missing variables)",
     cmd_preview, NULL},
    {"send", SEND_SYN, "render a notification and queue it for delivery", cmd_send, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
