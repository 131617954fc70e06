/*
 * moatctl_enduser.c - End User Console accounts from the command line (the
 * same store functions and rules as /api/v1/endusers):
 *
 *   moatctl enduser list --tenant ID [--search TEXT]
 *   moatctl enduser add EMAIL --tenant ID [--name NAME] [--disabled] [--no-mail]
 *   moatctl enduser import FILE.csv|- --tenant ID [--no-mail]
 *   moatctl enduser export --tenant ID            (CSV on stdout)
 *   moatctl enduser enable|disable|delete EMAIL --tenant ID
 *   moatctl enduser send-mail EMAIL --tenant ID   (a new password-set code)
 *
 * "moatctl user ..." is the same group (INTERFACES.md). New accounts get
 * the password-set mail (notify_enduser_send, queued with queue_ctl_inject:
 * durable before moatctl reports it; moatd sends it when it runs) when the
 * tenant's End User Console is on; --no-mail skips it. The import is all or
 * nothing: every error is printed with its line number and nothing is
 * applied. Every change is in the audit log (actor "moatctl").
 */
#include "cmd/moatctl.h"

#include <getopt.h>
#include <jansson.h>

#include "http/http.h"
#include "notify/notify.h"
#include "queue/queue.h"
#include "store/store.h"

static const char LIST_SYN[] = "--tenant ID [--search TEXT]";
static const char ADD_SYN[] = "EMAIL --tenant ID [--name NAME] [--disabled] [--no-mail]";
static const char IMPORT_SYN[] = "FILE.csv|- --tenant ID [--no-mail]";
static const char EXPORT_SYN[] = "--tenant ID";
static const char ONE_SYN[] = "EMAIL --tenant ID";

struct eopts {
    const char *tenant, *name, *search;
    bool disabled, no_mail;
    const char *arg; /* the one positional argument */
};

/* parse - the options of every subcommand; want_arg: one positional
 * argument is required. MOATCTL_OK or the usage code. */
static int parse(int argc, char **argv, const char *syn, bool want_arg, struct eopts *o)
{
    static const struct option opts[] = {
        {"tenant", required_argument, NULL, 't'}, {"name", required_argument, NULL, 'n'},
        {"search", required_argument, NULL, 's'}, {"disabled", no_argument, NULL, 'd'},
        {"no-mail", no_argument, NULL, 'm'},      {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    int ch;
    moatctl_getopt_reset();
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 't':
            o->tenant = optarg;
            break;
        case 'n':
            o->name = optarg;
            break;
        case 's':
            o->search = optarg;
            break;
        case 'd':
            o->disabled = true;
            break;
        case 'm':
            o->no_mail = true;
            break;
        default:
            return moatctl_usage(argv[0], syn, "unknown option");
        }
    }
    if (!o->tenant)
        return moatctl_usage(argv[0], syn, "--tenant ID is required");
    if (want_arg && optind != argc - 1)
        return moatctl_usage(argv[0], syn, "one argument is required");
    if (!want_arg && optind != argc)
        return moatctl_usage(argv[0], syn, "unexpected argument");
    o->arg = want_arg ? argv[optind] : NULL;
    return MOATCTL_OK;
}

/* open_tenant - the store, with the tenant checked; NULL after printing why */
static struct store *open_tenant(struct moatctl *ctx, const char *what, const char *tenant, int *code)
{
    struct store *st = moatctl_store(ctx, code);
    if (!st)
        return NULL;
    int ex = store_tenant_exists(st, tenant);
    if (ex != 1) {
        *code = moatctl_error(ex < 0 ? MOATCTL_INTERNAL : MOATCTL_USER, "enduser %s: %s", what,
                              ex < 0 ? "database error" : "no such tenant");
        return NULL;
    }
    return st;
}

static int inject_ctl(const char *data, size_t len, struct queue_envelope *env, void *arg)
{
    bool picked = false;
    if (queue_ctl_inject(arg, data, len, env, &picked) < 0)
        return -1;
    if (!picked)
        fprintf(stderr, "moatctl: moatd is not running: the mail is sent when it starts\n");
    return 0;
}

/* mail - the password-set mail of u, reported on stdout/stderr; true when queued */
static bool mail(struct moatctl *ctx, struct store *st, const struct store_enduser *u)
{
    char why[300], base[600];
    onboard_console_url(&ctx->cfg, base, sizeof base);
    int rc = notify_enduser_send(st, &ctx->cfg, base, u, inject_ctl, ctx->cfg.data_dir, why, sizeof why);
    if (rc == 0) {
        store_audit_add(st, "moatctl", "enduser.password_mail", u->company_id, u->email);
        if (!ctx->json)
            printf("%s: password-set mail queued\n", u->email);
        return true;
    }
    fprintf(stderr, "moatctl: %s: no password-set mail: %s\n", u->email, why);
    return false;
}

static void print_json(json_t *o)
{
    char *s = json_dumps(o, JSON_INDENT(2));
    printf("%s\n", s);
    free(s);
    json_decref(o);
}

static int cmd_list(struct moatctl *ctx, int argc, char **argv)
{
    struct eopts o;
    int code = parse(argc, argv, LIST_SYN, false, &o);
    struct store *st = code == MOATCTL_OK ? open_tenant(ctx, "list", o.tenant, &code) : NULL;
    if (!st)
        return code;
    struct store_enduser_query q = {.company_id = o.tenant, .search = o.search};
    struct store_enduser *v;
    long n = store_enduser_list(st, &q, &v, NULL);
    if (n < 0)
        return moatctl_error(MOATCTL_INTERNAL, "enduser list: database error");
    json_t *arr = json_array();
    if (!ctx->json)
        printf("id\temail\tname\tstate\tpassword\tlast_login\n");
    for (long i = 0; i < n; i++) {
        char login[40] = "-";
        if (v[i].last_login > 0)
            moatctl_iso_time(v[i].last_login, login, sizeof login);
        if (ctx->json) {
            json_array_append_new(arr, json_pack("{s:I,s:s,s:s,s:b,s:b,s:o}", "id", (json_int_t)v[i].id, "email",
                                                 v[i].email, "name", v[i].name, "enabled", v[i].enabled,
                                                 "password_set", v[i].password_set, "last_login",
                                                 v[i].last_login > 0 ? json_string(login) : json_null()));
            continue;
        }
        printf("%lld\t", (long long)v[i].id);
        moatctl_print_safe(stdout, v[i].email);
        printf("\t");
        moatctl_print_safe(stdout, v[i].name[0] ? v[i].name : "-");
        printf("\t%s\t%s\t%s\n", v[i].enabled ? "enabled" : "disabled", v[i].password_set ? "set" : "not set",
               login);
    }
    free(v);
    if (ctx->json)
        print_json(arr);
    else
        json_decref(arr);
    return MOATCTL_OK;
}

static int cmd_add(struct moatctl *ctx, int argc, char **argv)
{
    struct eopts o;
    int code = parse(argc, argv, ADD_SYN, true, &o);
    struct store *st = code == MOATCTL_OK ? open_tenant(ctx, "add", o.tenant, &code) : NULL;
    if (!st)
        return code;
    struct store_enduser u;
    memset(&u, 0, sizeof u);
    core_strlcpy(u.company_id, o.tenant, sizeof u.company_id);
    if (strlen(o.arg) > STORE_EMAIL_MAX || (o.name && strlen(o.name) > STORE_EUSER_NAME_MAX))
        return moatctl_error(MOATCTL_USER, "enduser add: the address or the name is too long");
    core_strlcpy(u.email, o.arg, sizeof u.email);
    core_strlcpy(u.name, o.name ? o.name : "", sizeof u.name);
    u.enabled = !o.disabled;
    char err[400];
    int rc = store_enduser_add(st, &u, err, sizeof err);
    if (rc != 0)
        return moatctl_error(rc > 0 ? MOATCTL_USER : MOATCTL_INTERNAL, "enduser add: %s",
                             rc > 0 ? err : "database error");
    store_audit_add(st, "moatctl", "enduser.add", u.company_id, u.email);
    if (ctx->json)
        printf("{\"id\": %lld, \"email\": \"%s\"}\n", (long long)u.id, u.email);
    else
        printf("end user %lld added: %s\n", (long long)u.id, u.email);
    if (!o.no_mail)
        mail(ctx, st, &u);
    return MOATCTL_OK;
}

static int cmd_import(struct moatctl *ctx, int argc, char **argv)
{
    struct eopts o;
    int code = parse(argc, argv, IMPORT_SYN, true, &o);
    struct store *st = code == MOATCTL_OK ? open_tenant(ctx, "import", o.tenant, &code) : NULL;
    if (!st)
        return code;
    size_t len;
    char *csv = moatctl_read_file(o.arg, STORE_EUSER_CSV_MAX, &len);
    if (!csv)
        return moatctl_error(MOATCTL_USER, "enduser import: cannot read %s: %s", o.arg,
                             errno == EFBIG ? "larger than 2 MB" : strerror(errno));
    struct store_enduser_row *rows = NULL;
    size_t n = 0;
    struct store_enduser_import res;
    int rc = store_enduser_csv_parse(csv, len, &rows, &n, &res);
    free(csv);
    if (rc == 0)
        rc = store_enduser_import(st, o.tenant, rows, n, &res);
    store_enduser_rows_free(rows, n);
    if (rc < 0)
        return moatctl_error(MOATCTL_INTERNAL, "enduser import: database error");
    if (rc == 1) {
        for (size_t i = 0; i < res.nerrors && i < STORE_EUSER_ERRORS_MAX; i++) {
            fprintf(stderr, "%s:%u: ", o.arg, res.errors[i].line);
            moatctl_print_safe(stderr, res.errors[i].error);
            fprintf(stderr, "\n");
        }
        size_t ne = res.nerrors;
        store_enduser_import_free(&res);
        return moatctl_error(MOATCTL_USER, "enduser import: %zu error%s: nothing was imported", ne,
                             ne == 1 ? "" : "s");
    }
    char detail[200];
    snprintf(detail, sizeof detail, "%zu rows: %zu created, %zu updated, %zu unchanged", n, res.created,
             res.updated, res.unchanged);
    store_audit_add(st, "moatctl", "enduser.import", o.tenant, detail);
    if (ctx->json)
        printf("{\"rows\": %zu, \"created\": %zu, \"updated\": %zu, \"unchanged\": %zu}\n", n, res.created,
               res.updated, res.unchanged);
    else
        printf("%s\n", detail);
    for (size_t i = 0; i < res.created && !o.no_mail; i++) {
        struct store_enduser u;
        if (store_enduser_get(st, o.tenant, res.created_ids[i], &u) == 0 && u.enabled && !mail(ctx, st, &u))
            break; /* the same reason holds for the rest */
    }
    store_enduser_import_free(&res);
    return MOATCTL_OK;
}

static int cmd_export(struct moatctl *ctx, int argc, char **argv)
{
    struct eopts o;
    int code = parse(argc, argv, EXPORT_SYN, false, &o);
    struct store *st = code == MOATCTL_OK ? open_tenant(ctx, "export", o.tenant, &code) : NULL;
    if (!st)
        return code;
    struct store_enduser_query q = {.company_id = o.tenant};
    struct store_enduser *v;
    long n = store_enduser_list(st, &q, &v, NULL);
    if (n < 0)
        return moatctl_error(MOATCTL_INTERNAL, "enduser export: database error");
    struct buf b;
    buf_init(&b, (size_t)256 * 1024 * 1024);
    int rc = store_enduser_csv_write(&b, v, (size_t)n);
    free(v);
    if (rc == 0)
        fwrite(b.ptr, 1, b.len, stdout);
    buf_free(&b);
    return rc == 0 ? MOATCTL_OK : moatctl_error(MOATCTL_INTERNAL, "enduser export: too large");
}

/* change - enable / disable / delete / send-mail of one address */
static int change(struct moatctl *ctx, int argc, char **argv, const char *what)
{
    struct eopts o;
    int code = parse(argc, argv, ONE_SYN, true, &o);
    struct store *st = code == MOATCTL_OK ? open_tenant(ctx, what, o.tenant, &code) : NULL;
    if (!st)
        return code;
    char email[STORE_EMAIL_MAX + 1];
    struct store_enduser u;
    int rc = store_enduser_address(o.arg, email, sizeof email) ? 1 : store_enduser_find(st, o.tenant, email, &u);
    if (rc != 0)
        return rc < 0 ? moatctl_error(MOATCTL_INTERNAL, "enduser %s: database error", what)
                      : moatctl_error(MOATCTL_USER, "enduser %s: no such end user in %s: %s", what, o.tenant, o.arg);
    if (strcmp(what, "send-mail") == 0)
        return mail(ctx, st, &u) ? MOATCTL_OK : MOATCTL_USER;
    if (strcmp(what, "delete") == 0)
        rc = store_enduser_delete(st, o.tenant, u.id);
    else
        rc = store_enduser_update(st, o.tenant, u.id, strcmp(what, "enable") == 0, u.name);
    if (rc != 0)
        return moatctl_error(MOATCTL_INTERNAL, "enduser %s: database error", what);
    char action[40];
    snprintf(action, sizeof action, "enduser.%s", what);
    store_audit_add(st, "moatctl", action, o.tenant, u.email);
    printf("%s: %s\n", u.email, what);
    return MOATCTL_OK;
}

static int cmd_enable(struct moatctl *ctx, int argc, char **argv)
{
    return change(ctx, argc, argv, "enable");
}
static int cmd_disable(struct moatctl *ctx, int argc, char **argv)
{
    return change(ctx, argc, argv, "disable");
}
static int cmd_delete(struct moatctl *ctx, int argc, char **argv)
{
    return change(ctx, argc, argv, "delete");
}
static int cmd_send_mail(struct moatctl *ctx, int argc, char **argv)
{
    return change(ctx, argc, argv, "send-mail");
}

const struct moatctl_cmd moatctl_enduser_cmds[] = {
    {"list", LIST_SYN, "the tenant's End User Console accounts", cmd_list, NULL},
    {"add", ADD_SYN, "add an account (address in a verified domain); mails the password-set code", cmd_add, NULL},
    {"import", IMPORT_SYN, "add / update accounts from CSV (email[,name][,enabled]); all or nothing", cmd_import,
     NULL},
    {"export", EXPORT_SYN, "every account as CSV on stdout", cmd_export, NULL},
    {"enable", ONE_SYN, "allow the account again", cmd_enable, NULL},
    {"disable", ONE_SYN, "refuse the account", cmd_disable, NULL},
    {"delete", ONE_SYN, "remove the account", cmd_delete, NULL},
    {"send-mail", ONE_SYN, "mail a new password-set code (the old one stops working)", cmd_send_mail, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
