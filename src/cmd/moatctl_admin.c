/*
 * moatctl_admin.c - console / REST API accounts and API tokens from the
 * command line (the operator's way in before any account exists):
 *
 *   moatctl admin add EMAIL [--tenant ID] [--role full|read-only] [--password-file F|-]
 *   moatctl account add --email E (--operator | --tenant ID) [--role R]   (password on stdin)
 *   moatctl admin list [--tenant ID]
 *   moatctl admin disable|enable|unlock|reset-totp|delete EMAIL
 *   moatctl token add --name N [--tenant ID] [--role R]   (prints the token once)
 *   moatctl token list [--tenant ID] / token delete ID
 *
 * No --tenant (or --operator) = an operator over every tenant. `admin add`
 * without --password-file prints a random password once; `account add`
 * reads the password from stdin (first line). Passwords are hashed with
 * argon2id before they reach the store; tokens are stored as SHA-256.
 * Every change is written to the audit log (actor "moatctl").
 */
#include "cmd/moatctl.h"

#include <ctype.h>
#include <getopt.h>
#include <jansson.h>

#include "http/http.h"
#include "store/store.h"

static const char ADD_SYN[] =
    "EMAIL|--email EMAIL [--tenant ID|--operator] [--role full|read-only] [--password-file F|-] [--password-stdin]";
static const char EMAIL_SYN[] = "EMAIL";
static const char LIST_SYN[] = "[--tenant ID]";
static const char TOKEN_SYN[] = "--name NAME [--tenant ID|--operator] [--role full|read-only]";

/* read_password - first line of a file ("-" = stdin), without the line end */
static int read_password(const char *path, char *out, size_t outsz)
{
    size_t len;
    char *data = moatctl_read_file(path, 4096, &len);
    if (!data)
        return -1;
    size_t n = strcspn(data, "\r\n");
    if (n >= outsz)
        n = outsz - 1;
    memcpy(out, data, n);
    out[n] = '\0';
    memset(data, 0, len);
    free(data);
    return 0;
}

static int do_add(struct moatctl *ctx, int argc, char **argv, bool stdin_default)
{
    static const struct option opts[] = {
        {"email", required_argument, NULL, 'e'},         {"tenant", required_argument, NULL, 't'},
        {"operator", no_argument, NULL, 'o'},            {"role", required_argument, NULL, 'r'},
        {"password-file", required_argument, NULL, 'p'}, {"password-stdin", no_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const char *email = NULL, *tenant = NULL, *role = "full", *pwfile = stdin_default ? "-" : NULL;
    bool operator = false;
    int ch;
    moatctl_getopt_reset();
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'e':
            email = optarg;
            break;
        case 't':
            tenant = optarg;
            break;
        case 'o':
            operator = true;
            break;
        case 'r':
            role = optarg;
            break;
        case 'p':
            pwfile = optarg;
            break;
        case 's':
            pwfile = "-";
            break;
        default:
            return moatctl_usage("add", ADD_SYN, "unknown option");
        }
    }
    if (!email && optind < argc)
        email = argv[optind++];
    if (!email || optind != argc)
        return moatctl_usage("add", ADD_SYN, "one e-mail address is required");
    if (tenant && operator)
        return moatctl_usage("add", ADD_SYN, "--tenant and --operator exclude each other");
    if (strcmp(role, "full") != 0 && strcmp(role, "read-only") != 0)
        return moatctl_usage("add", ADD_SYN, "--role must be full or read-only");
    struct store_account a;
    memset(&a, 0, sizeof a);
    if (strlen(email) > STORE_EMAIL_MAX || !strchr(email, '@') || strchr(email, ' '))
        return moatctl_error(MOATCTL_USER, "admin add: not an e-mail address: %s", email);
    for (size_t i = 0; email[i]; i++)
        a.email[i] = (char)tolower((unsigned char)email[i]);
    if (tenant)
        core_strlcpy(a.company_id, tenant, sizeof a.company_id);
    a.full = strcmp(role, "full") == 0;
    char pw[300];
    bool generated = false;
    if (pwfile) {
        if (read_password(pwfile, pw, sizeof pw) < 0)
            return moatctl_error(MOATCTL_USER, "admin add: cannot read the password from %s",
                                 strcmp(pwfile, "-") == 0 ? "stdin" : pwfile);
    } else {
        http_random_token(pw, 15); /* 20 characters */
        generated = true;
    }
    const char *weak = http_password_weak(pw);
    if (weak)
        return moatctl_error(MOATCTL_USER, "admin add: %s", weak);
    if (http_password_hash(pw, a.pwhash) < 0)
        return moatctl_error(MOATCTL_INTERNAL, "admin add: cannot hash the password");
    int code;
    struct store *st = moatctl_store(ctx, &code);
    if (!st)
        return code;
    char err[300];
    int rc = store_account_add(st, &a, err, sizeof err);
    if (rc != 0)
        return moatctl_error(rc == 1 ? MOATCTL_USER : MOATCTL_INTERNAL, "admin add: %s",
                             rc == 1 ? err : "database error");
    char detail[400];
    snprintf(detail, sizeof detail, "%s (%s, %s)", a.email, a.company_id[0] ? a.company_id : "operator", role);
    store_audit_add(st, "moatctl", "account.add", a.company_id, detail);
    if (ctx->json) {
        json_t *o = json_pack("{s:I,s:s,s:o,s:s}", "id", (json_int_t)a.id, "email", a.email, "tenant",
                              a.company_id[0] ? json_string(a.company_id) : json_null(), "role", role);
        if (generated)
            json_object_set_new(o, "password", json_string(pw));
        char *s = json_dumps(o, JSON_INDENT(2));
        printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        printf("account %lld added: %s (%s, %s)\n", (long long)a.id, a.email,
               a.company_id[0] ? a.company_id : "operator", role);
        if (generated)
            printf("password: %s\n(shown once; change it after the first login)\n", pw);
    }
    memset(pw, 0, sizeof pw);
    return MOATCTL_OK;
}

static int cmd_admin_add(struct moatctl *ctx, int argc, char **argv)
{
    return do_add(ctx, argc, argv, false);
}

static int cmd_account_add(struct moatctl *ctx, int argc, char **argv)
{
    return do_add(ctx, argc, argv, true);
}

static int cmd_list(struct moatctl *ctx, int argc, char **argv)
{
    static const struct option opts[] = {{"tenant", required_argument, NULL, 't'}, {NULL, 0, NULL, 0}};
    const char *tenant = NULL;
    int ch;
    moatctl_getopt_reset();
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch != 't')
            return moatctl_usage("list", LIST_SYN, "unknown option");
        tenant = optarg;
    }
    int code;
    struct store *st = moatctl_store(ctx, &code);
    if (!st)
        return code;
    struct store_account *v;
    long n = store_account_list(st, tenant, &v);
    if (n < 0)
        return moatctl_error(MOATCTL_INTERNAL, "admin list: database error");
    json_t *arr = json_array();
    if (!ctx->json)
        printf("id\temail\ttenant\trole\tstate\ttotp\n");
    double now = core_now();
    for (long i = 0; i < n; i++) {
        const char *state = v[i].disabled ? "disabled" : v[i].locked_until > now ? "locked" : "active";
        if (ctx->json) {
            json_array_append_new(
                arr, json_pack("{s:I,s:s,s:o,s:s,s:s,s:b}", "id", (json_int_t)v[i].id, "email", v[i].email, "tenant",
                               v[i].company_id[0] ? json_string(v[i].company_id) : json_null(), "role",
                               v[i].full ? "full" : "read-only", "state", state, "totp", v[i].totp_enabled));
        } else {
            printf("%lld\t", (long long)v[i].id);
            moatctl_print_safe(stdout, v[i].email);
            printf("\t%s\t%s\t%s\t%s\n", v[i].company_id[0] ? v[i].company_id : "(operator)",
                   v[i].full ? "full" : "read-only", state, v[i].totp_enabled ? "on" : "off");
        }
    }
    if (ctx->json) {
        char *s = json_dumps(arr, JSON_INDENT(2));
        printf("%s\n", s);
        free(s);
    }
    json_decref(arr);
    memset(v, 0, (size_t)n * sizeof *v);
    free(v);
    return MOATCTL_OK;
}

/* change - one of disable / enable / unlock / reset-totp / delete on EMAIL */
static int change(struct moatctl *ctx, int argc, char **argv, const char *what)
{
    if (argc != 2)
        return moatctl_usage(what, EMAIL_SYN, "one e-mail address is required");
    int code;
    struct store *st = moatctl_store(ctx, &code);
    if (!st)
        return code;
    struct store_account a;
    int rc = store_account_find(st, argv[1], &a);
    if (rc != 0)
        return rc < 0 ? moatctl_error(MOATCTL_INTERNAL, "%s: database error", what)
                      : moatctl_error(MOATCTL_USER, "%s: no such account: %s", what, argv[1]);
    if (strcmp(what, "delete") == 0) {
        rc = store_account_delete(st, NULL, a.id);
    } else if (strcmp(what, "unlock") == 0) {
        rc = store_account_login_ok(st, a.id, a.last_login);
    } else {
        if (strcmp(what, "disable") == 0)
            a.disabled = true;
        else if (strcmp(what, "enable") == 0)
            a.disabled = false;
        else { /* reset-totp */
            a.totp_enabled = false;
            a.totp_secret[0] = '\0';
            store_recovery_set(st, a.id, NULL, 0);
        }
        rc = store_account_update(st, &a);
    }
    if (rc < 0)
        return moatctl_error(MOATCTL_INTERNAL, "%s: database error", what);
    if (strcmp(what, "disable") == 0 || strcmp(what, "reset-totp") == 0)
        store_session_delete_account(st, a.id, NULL);
    char action[40];
    snprintf(action, sizeof action, "account.%s", what);
    store_audit_add(st, "moatctl", action, a.company_id, a.email);
    printf("%s: %s\n", a.email, what);
    return MOATCTL_OK;
}

static int cmd_disable(struct moatctl *ctx, int argc, char **argv)
{
    return change(ctx, argc, argv, "disable");
}
static int cmd_enable(struct moatctl *ctx, int argc, char **argv)
{
    return change(ctx, argc, argv, "enable");
}
static int cmd_unlock(struct moatctl *ctx, int argc, char **argv)
{
    return change(ctx, argc, argv, "unlock");
}
static int cmd_reset_totp(struct moatctl *ctx, int argc, char **argv)
{
    return change(ctx, argc, argv, "reset-totp");
}
static int cmd_delete(struct moatctl *ctx, int argc, char **argv)
{
    return change(ctx, argc, argv, "delete");
}

const struct moatctl_cmd moatctl_admin_cmds[] = {
    {"add", ADD_SYN, "add an administrator (no --tenant: an operator); prints a random password once",
     cmd_admin_add, NULL},
    {"list", LIST_SYN, "console / API accounts", cmd_list, NULL},
    {"disable", EMAIL_SYN, "refuse the account's logins and end its sessions", cmd_disable, NULL},
    {"enable", EMAIL_SYN, "allow a disabled account again", cmd_enable, NULL},
    {"unlock", EMAIL_SYN, "end a lock-out after failed logins", cmd_unlock, NULL},
    {"reset-totp", EMAIL_SYN, "remove the account's two-factor setup (lost device)", cmd_reset_totp, NULL},
    {"delete", EMAIL_SYN, "remove the account", cmd_delete, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

const struct moatctl_cmd moatctl_account_cmds[] = {
    {"add", ADD_SYN, "add an account; the password is read from stdin", cmd_account_add, NULL},
    {"list", LIST_SYN, "console / API accounts", cmd_list, NULL},
    {"disable", EMAIL_SYN, "refuse the account's logins and end its sessions", cmd_disable, NULL},
    {"enable", EMAIL_SYN, "allow a disabled account again", cmd_enable, NULL},
    {"unlock", EMAIL_SYN, "end a lock-out after failed logins", cmd_unlock, NULL},
    {"reset-totp", EMAIL_SYN, "remove the account's two-factor setup (lost device)", cmd_reset_totp, NULL},
    {"delete", EMAIL_SYN, "remove the account", cmd_delete, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* ---------------------------------------------------------------- tokens */
static int cmd_token_add(struct moatctl *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"name", required_argument, NULL, 'n'}, {"tenant", required_argument, NULL, 't'},
        {"operator", no_argument, NULL, 'o'},   {"role", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    const char *name = NULL, *tenant = NULL, *role = "read-only";
    int ch;
    moatctl_getopt_reset();
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            name = optarg;
            break;
        case 't':
            tenant = optarg;
            break;
        case 'o':
            break;
        case 'r':
            role = optarg;
            break;
        default:
            return moatctl_usage("add", TOKEN_SYN, "unknown option");
        }
    }
    if (!name || !*name || strlen(name) > 64 || optind != argc)
        return moatctl_usage("add", TOKEN_SYN, "--name (1..64 characters) is required");
    if (strcmp(role, "full") != 0 && strcmp(role, "read-only") != 0)
        return moatctl_usage("add", TOKEN_SYN, "--role must be full or read-only");
    int code;
    struct store *st = moatctl_store(ctx, &code);
    if (!st)
        return code;
    struct store_token t;
    memset(&t, 0, sizeof t);
    core_strlcpy(t.name, name, sizeof t.name);
    if (tenant)
        core_strlcpy(t.company_id, tenant, sizeof t.company_id);
    t.full = strcmp(role, "full") == 0;
    core_strlcpy(t.created_by, "moatctl", sizeof t.created_by);
    char token[64], err[300];
    http_token_new(token, sizeof token, t.hash);
    int rc = store_token_add(st, &t, err, sizeof err);
    if (rc != 0)
        return moatctl_error(rc == 1 ? MOATCTL_USER : MOATCTL_INTERNAL, "token add: %s",
                             rc == 1 ? err : "database error");
    char detail[200];
    snprintf(detail, sizeof detail, "token %lld \"%s\" (%s, %s)", (long long)t.id, t.name,
             t.company_id[0] ? t.company_id : "operator", role);
    store_audit_add(st, "moatctl", "token.add", t.company_id, detail);
    if (ctx->json)
        printf("{\"id\": %lld, \"token\": \"%s\"}\n", (long long)t.id, token);
    else
        printf("token %lld: %s\n(shown once: send it as \"Authorization: Bearer <token>\")\n", (long long)t.id, token);
    memset(token, 0, sizeof token);
    return MOATCTL_OK;
}

static int cmd_token_list(struct moatctl *ctx, int argc, char **argv)
{
    static const struct option opts[] = {{"tenant", required_argument, NULL, 't'}, {NULL, 0, NULL, 0}};
    const char *tenant = NULL;
    int ch;
    moatctl_getopt_reset();
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch != 't')
            return moatctl_usage("list", LIST_SYN, "unknown option");
        tenant = optarg;
    }
    int code;
    struct store *st = moatctl_store(ctx, &code);
    if (!st)
        return code;
    struct store_token *v;
    long n = store_token_list(st, tenant, &v);
    if (n < 0)
        return moatctl_error(MOATCTL_INTERNAL, "token list: database error");
    json_t *arr = json_array();
    if (!ctx->json)
        printf("id\tname\ttenant\trole\tcreated_by\n");
    for (long i = 0; i < n; i++) {
        if (ctx->json) {
            json_array_append_new(arr, json_pack("{s:I,s:s,s:o,s:s,s:s}", "id", (json_int_t)v[i].id, "name",
                                                 v[i].name, "tenant",
                                                 v[i].company_id[0] ? json_string(v[i].company_id) : json_null(),
                                                 "role", v[i].full ? "full" : "read-only", "created_by",
                                                 v[i].created_by));
        } else {
            printf("%lld\t", (long long)v[i].id);
            moatctl_print_safe(stdout, v[i].name);
            printf("\t%s\t%s\t", v[i].company_id[0] ? v[i].company_id : "(operator)",
                   v[i].full ? "full" : "read-only");
            moatctl_print_safe(stdout, v[i].created_by);
            printf("\n");
        }
    }
    if (ctx->json) {
        char *s = json_dumps(arr, JSON_INDENT(2));
        printf("%s\n", s);
        free(s);
    }
    json_decref(arr);
    free(v);
    return MOATCTL_OK;
}

static int cmd_token_delete(struct moatctl *ctx, int argc, char **argv)
{
    uint64_t id;
    if (argc != 2 || core_parse_u64(argv[1], INT64_MAX, &id) < 0)
        return moatctl_usage("delete", "ID", "one token ID is required");
    int code;
    struct store *st = moatctl_store(ctx, &code);
    if (!st)
        return code;
    int rc = store_token_delete(st, NULL, (int64_t)id);
    if (rc != 0)
        return rc < 0 ? moatctl_error(MOATCTL_INTERNAL, "token delete: database error")
                      : moatctl_error(MOATCTL_USER, "token delete: no such token: %s", argv[1]);
    char detail[40];
    snprintf(detail, sizeof detail, "token %llu", (unsigned long long)id);
    store_audit_add(st, "moatctl", "token.delete", NULL, detail);
    printf("token %llu deleted\n", (unsigned long long)id);
    return MOATCTL_OK;
}

const struct moatctl_cmd moatctl_token_cmds[] = {
    {"add", TOKEN_SYN, "a new API token (printed once; default role read-only)", cmd_token_add, NULL},
    {"list", LIST_SYN, "API tokens (never the secrets)", cmd_token_list, NULL},
    {"delete", "ID", "revoke a token", cmd_token_delete, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
