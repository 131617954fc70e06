/*
 * moatctl_domain.c - tenants and domain ownership (PRODUCT.md §1):
 *
 *   moatctl tenant add COMPANY_ID [--name NAME] [--admin-email ADDR]
 *       a new tenant with Moat's default rules (inactive until a domain of
 *       the tenant is verified); "already taken" and syntax errors exit 1.
 *       With --admin-email: its first administrator (role full) and the
 *       login mail with the link that sets the password (http_onboard.c,
 *       queued into the spool: moatd delivers it)
 *   moatctl tenant admin-mail COMPANY_ID EMAIL
 *       mail that administrator a new login link (the old one stops working)
 *   moatctl domain add NAME --tenant ID [--server HOST[:PORT]]
 *       a new domain (status needs_configuration); prints the TXT and MX
 *       records that prove ownership
 *   moatctl domain status [NAME] [--tenant ID]
 *       the claims and their verification state
 *   moatctl domain verify NAME [--tenant ID] [--background]
 *       (--background: let moatd's checker do it within a second) check the DNS now (TXT moat-verification=<token> or MX -> the
 *       tenant's MX host); exit 0 when verified, 1 with the reason. A new
 *       verification activates the default rules (first domain) and queues
 *       the activation mail to the tenant's address.
 *
 * All of it is store_* and dns_* functions, which the console calls too.
 */
#include "cmd/moatctl.h"

#include <getopt.h>
#include <jansson.h>

#include "dns/dns.h"
#include "http/http.h"
#include "queue/queue.h"
#include "store/store.h"

static const char TENANT_ADD_SYN[] = "COMPANY_ID [--name NAME] [--admin-email ADDR]";
static const char TENANT_MAIL_SYN[] = "COMPANY_ID EMAIL";

/* spool_inject - onboarding mails from moatctl: durable in the spool, moatd delivers */
static int spool_inject(const char *data, size_t len, struct queue_envelope *env, void *arg)
{
    bool picked;
    return queue_ctl_inject(arg, data, len, env, &picked);
}
static const char DOMAIN_ADD_SYN[] = "NAME --tenant ID [--server HOST[:PORT]]";
static const char DOMAIN_STATUS_SYN[] = "[NAME] [--tenant ID]";
static const char DOMAIN_VERIFY_SYN[] = "NAME [--tenant ID] [--background]";

static int cmd_tenant_add(struct moatctl *ctx, int argc, char **argv)
{
    static const struct option opts[] = {{"name", required_argument, NULL, 'n'},
                                         {"admin-email", required_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    const char *name = NULL, *email = NULL;
    int ch;
    moatctl_getopt_reset();
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'n')
            name = optarg;
        else if (ch == 'a')
            email = optarg;
        else
            return moatctl_usage(argv[0], TENANT_ADD_SYN, "unknown option '%s'", argv[optind - 1]);
    }
    if (optind != argc - 1)
        return moatctl_usage(argv[0], TENANT_ADD_SYN, "one COMPANY_ID is required");
    int code = MOATCTL_OK;
    struct store *st = moatctl_store(ctx, &code);
    if (!st)
        return code;
    char err[600];
    struct store_account taken;
    if (email && (!http_email_ok(email) || store_account_find(st, email, &taken) == 0))
        return moatctl_error(MOATCTL_USER, "tenant add: --admin-email %s: %s", email,
                             http_email_ok(email) ? "an account with this address already exists"
                                                  : "not an e-mail address");
    int rc = store_tenant_create(st, argv[optind], name, email, err, sizeof err);
    if (rc == 1)
        return moatctl_error(MOATCTL_USER, "tenant add: %s", err);
    if (rc < 0)
        return moatctl_error(MOATCTL_INTERNAL, "tenant add: %s", err[0] ? err : "database error");
    char cid[64], mx[300];
    core_strlcpy(cid, argv[optind], sizeof cid);
    for (char *p = cid; *p; p++)
        *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    if (dns_mx_host(cid, ctx->cfg.service_domain, mx, sizeof mx) < 0)
        mx[0] = '\0';
    bool mailed = false;
    if (email) {
        if (onboard_first_admin(st, &ctx->cfg, cid, email, spool_inject, ctx->cfg.data_dir, err, sizeof err) != 0)
            return moatctl_error(MOATCTL_INTERNAL, "tenant %s created, but its administrator %s: %s", cid, email, err);
        mailed = true;
    }
    if (ctx->json)
        printf("{\"company_id\": \"%s\", \"mx_host\": \"%s\", \"admin_login_mail\": %s}\n", cid, mx,
               mailed ? "true" : "false");
    else
        printf("tenant %s created; MX host %s; default rules inactive until a domain is verified%s\n", cid, mx,
               mailed ? "; login mail queued for the administrator" : "");
    return MOATCTL_OK;
}

static int cmd_tenant_admin_mail(struct moatctl *ctx, int argc, char **argv)
{
    if (argc != 3)
        return moatctl_usage(argv[0], TENANT_MAIL_SYN, "COMPANY_ID and EMAIL are required");
    int code = MOATCTL_OK;
    struct store *st = moatctl_store(ctx, &code);
    if (!st)
        return code;
    struct store_account a;
    if (store_account_find(st, argv[2], &a) != 0 || strcasecmp(a.company_id, argv[1]) != 0)
        return moatctl_error(MOATCTL_USER, "admin-mail: tenant %s has no administrator %s", argv[1], argv[2]);
    char err[600];
    double until;
    if (onboard_mail(st, &ctx->cfg, &a, "setup", a.email, spool_inject, ctx->cfg.data_dir, &until, err, sizeof err) < 0)
        return moatctl_error(MOATCTL_INTERNAL, "admin-mail: %s", err);
    printf(ctx->json ? "{\"email\": \"%s\", \"mailed\": true}\n" : "login mail queued for %s\n", a.email);
    return MOATCTL_OK;
}

/* print_claim - one claim (human or JSON object appended to arr) */
static void print_claim(struct moatctl *ctx, const struct store_domain_claim *c, json_t *arr)
{
    char mx[300];
    if (dns_mx_host(c->company_id, ctx->cfg.service_domain, mx, sizeof mx) < 0)
        mx[0] = '\0';
    char txt[80];
    snprintf(txt, sizeof txt, "%s%s", DNS_TXT_PREFIX, c->token);
    if (arr) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:b,s:s,s:s,s:i}", "company_id", c->company_id, "domain", c->domain,
                              "status", c->verified ? "complete" : "needs_configuration", "verified", c->verified,
                              "txt_record", txt, "mx_host", mx, "check_failures", (int)c->check_failures);
        if (c->verified_via)
            json_object_set_new(o, "verified_via", json_string(c->verified_via));
        if (c->check_result)
            json_object_set_new(o, "last_check", json_string(c->check_result));
        if (c->record_missing)
            json_object_set_new(o, "record_missing", json_true());
        json_array_append_new(arr, o);
        return;
    }
    printf("%s\t%s\t%s\tTXT \"%s\"\tMX %s", c->domain, c->company_id,
           c->verified ? "complete" : "needs_configuration", txt, mx);
    if (c->record_missing)
        printf("\trecord missing");
    if (c->check_result) {
        fputc('\t', stdout);
        moatctl_print_safe(stdout, c->check_result);
    }
    fputc('\n', stdout);
}

static bool background;

static int parse_tenant_opt(int argc, char **argv, const char *syn, const char **tenant, const char **server)
{
    static const struct option opts[] = {{"tenant", required_argument, NULL, 't'},
                                         {"server", required_argument, NULL, 's'},
                                         {"background", no_argument, NULL, 'b'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    background = false;
    moatctl_getopt_reset();
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 't')
            *tenant = optarg;
        else if (ch == 's' && server)
            *server = optarg;
        else if (ch == 'b' && syn == DOMAIN_VERIFY_SYN)
            background = true;
        else
            return moatctl_usage(argv[0], syn, "unknown option '%s'", argv[optind - 1]);
    }
    return MOATCTL_OK;
}

static int cmd_domain_add(struct moatctl *ctx, int argc, char **argv)
{
    const char *tenant = NULL, *server = NULL;
    int code = parse_tenant_opt(argc, argv, DOMAIN_ADD_SYN, &tenant, &server);
    if (code != MOATCTL_OK)
        return code;
    if (optind != argc - 1 || !tenant)
        return moatctl_usage(argv[0], DOMAIN_ADD_SYN, "a domain NAME and --tenant are required");
    struct store *st = moatctl_store(ctx, &code);
    if (!st)
        return code;
    char err[600];
    int rc = store_domain_add(st, tenant, argv[optind], server, err, sizeof err);
    if (rc == 1)
        return moatctl_error(MOATCTL_USER, "domain add: %s", err);
    if (rc < 0)
        return moatctl_error(MOATCTL_INTERNAL, "domain add: %s", err[0] ? err : "database error");
    struct store_domain_claim *c = NULL;
    size_t n = 0;
    char name[256];
    core_strlcpy(name, argv[optind], sizeof name);
    for (char *p = name; *p; p++)
        *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    if (store_domain_claims(st, name, tenant, &c, &n) < 0 || n == 0) {
        store_domain_claims_free(c, n);
        return moatctl_error(MOATCTL_OK, "domain added (status needs_configuration)");
    }
    json_t *arr = ctx->json ? json_array() : NULL;
    print_claim(ctx, &c[0], arr);
    if (arr) {
        char *t = json_dumps(json_array_get(arr, 0), JSON_INDENT(2));
        printf("%s\n", t);
        free(t);
        json_decref(arr);
    } else {
        char mx[300];
        if (dns_mx_host(c[0].company_id, ctx->cfg.service_domain, mx, sizeof mx) < 0)
            mx[0] = '\0';
        printf("To prove ownership, add to the DNS of %s either\n  %s. TXT \"%s%s\"\nor\n  %s. MX 10 %s.\n"
               "then run: moatctl domain verify %s --tenant %s\n",
               c[0].domain, c[0].domain, DNS_TXT_PREFIX, c[0].token, c[0].domain, mx, c[0].domain,
               c[0].company_id);
    }
    store_domain_claims_free(c, n);
    return MOATCTL_OK;
}

static int cmd_domain_status(struct moatctl *ctx, int argc, char **argv)
{
    const char *tenant = NULL;
    int code = parse_tenant_opt(argc, argv, DOMAIN_STATUS_SYN, &tenant, NULL);
    if (code != MOATCTL_OK)
        return code;
    if (optind < argc - 1)
        return moatctl_usage(argv[0], DOMAIN_STATUS_SYN, "at most one domain NAME");
    struct store *st = moatctl_store(ctx, &code);
    if (!st)
        return code;
    struct store_domain_claim *c = NULL;
    size_t n = 0;
    int rc;
    if (optind == argc - 1) {
        char name[256];
        core_strlcpy(name, argv[optind], sizeof name);
        for (char *p = name; *p; p++)
            *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
        rc = store_domain_claims(st, name, tenant, &c, &n);
    } else {
        /* every claim: all of them are "due" at the end of time */
        rc = store_domain_due(st, 1e18, 100000, &c, &n);
    }
    if (rc < 0)
        return moatctl_error(MOATCTL_INTERNAL, "domain status: database error");
    json_t *arr = ctx->json ? json_array() : NULL;
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        if (tenant && strcasecmp(tenant, c[i].company_id) != 0)
            continue;
        print_claim(ctx, &c[i], arr);
        shown++;
    }
    store_domain_claims_free(c, n);
    if (arr) {
        char *t = json_dumps(arr, JSON_INDENT(2));
        printf("%s\n", t);
        free(t);
        json_decref(arr);
    }
    if (shown == 0 && optind == argc - 1)
        return moatctl_error(MOATCTL_USER, "domain status: no tenant has added %s", argv[optind]);
    return MOATCTL_OK;
}

struct inject_arg {
    const char *data_dir;
};

static int inject_ctl(const char *data, size_t len, struct queue_envelope *env, void *arg)
{
    struct inject_arg *a = arg;
    bool picked = false;
    if (queue_ctl_inject(a->data_dir, data, len, env, &picked) < 0)
        return -1;
    if (!picked)
        fprintf(stderr, "moatctl: moatd is not running: the mail is sent when it starts\n");
    return 0;
}

static int cmd_domain_verify(struct moatctl *ctx, int argc, char **argv)
{
    const char *tenant = NULL;
    int code = parse_tenant_opt(argc, argv, DOMAIN_VERIFY_SYN, &tenant, NULL);
    if (code != MOATCTL_OK)
        return code;
    if (optind != argc - 1)
        return moatctl_usage(argv[0], DOMAIN_VERIFY_SYN, "one domain NAME is required");
    struct store *st = moatctl_store(ctx, &code);
    if (!st)
        return code;
    if (background) {
        /* the console's asynchronous "Verify": moatd's checker runs it */
        if (!tenant)
            return moatctl_usage(argv[0], DOMAIN_VERIFY_SYN, "--background needs --tenant");
        char name[256];
        core_strlcpy(name, argv[optind], sizeof name);
        for (char *p = name; *p; p++)
            *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
        int rc = store_domain_check_soon(st, tenant, name);
        if (rc == 1)
            return moatctl_error(MOATCTL_USER, "domain verify: %s is not a domain of %s", name, tenant);
        if (rc < 0)
            return moatctl_error(MOATCTL_INTERNAL, "domain verify: database error");
        printf(ctx->json ? "{\"scheduled\": true}\n" : "moatd checks %s within a second\n", name);
        return MOATCTL_OK;
    }
    struct inject_arg ia = {.data_dir = ctx->cfg.data_dir};
    struct dns_check_ctx x = {
        .cfg = &ctx->cfg, .st = st, .inject = inject_ctl, .inject_arg = &ia, .actor = "moatctl"};
    struct dns_check_report rep;
    int rc = dns_check_verify_now(&x, argv[optind], tenant, &rep);
    if (rc == 1)
        return moatctl_error(MOATCTL_USER, "domain verify: %s%s", rep.reason,
                             strstr(rep.reason, "several tenants") ? " (--tenant ID)" : "");
    if (rc < 0)
        return moatctl_error(MOATCTL_INTERNAL, "domain verify: %s", rep.reason);
    bool verified = rep.res.outcome == DNS_VERIFY_OK && rep.verified;
    if (ctx->json) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:b,s:s,s:s}", "domain", rep.domain, "company_id", rep.company_id,
                              "status", rep.verified ? "complete" : "needs_configuration", "verified", rep.verified,
                              "result",
                              rep.res.outcome == DNS_VERIFY_OK     ? "ok"
                              : rep.res.outcome == DNS_VERIFY_FAIL ? "not_found"
                                                                   : "temporary_failure",
                              "reason", rep.reason);
        if (rep.res.method)
            json_object_set_new(o, "via", json_string(rep.res.method));
        if (rep.change == STORE_CHANGE_VERIFIED)
            json_object_set_new(o, "default_rules_activated", json_boolean(rep.first));
        char *t = json_dumps(o, JSON_INDENT(2));
        printf("%s\n", t);
        free(t);
        json_decref(o);
    } else if (verified) {
        printf("%s: verified (%s) for %s%s\n", rep.domain, rep.reason, rep.company_id,
               rep.change == STORE_CHANGE_VERIFIED && rep.first ? "; default rules activated" : "");
    } else {
        moatctl_error(MOATCTL_USER, "domain verify: %s: %s", rep.domain, rep.reason);
    }
    return verified ? MOATCTL_OK : MOATCTL_USER;
}

const struct moatctl_cmd moatctl_tenant_cmds[] = {
    {"add", TENANT_ADD_SYN, "create a tenant (with the default rules)", cmd_tenant_add, NULL},
    {"admin-mail", TENANT_MAIL_SYN, "mail an administrator a new login link", cmd_tenant_admin_mail, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

const struct moatctl_cmd moatctl_domain_cmds[] = {
    {"add", DOMAIN_ADD_SYN, "add a domain to a tenant (needs configuration until verified)", cmd_domain_add, NULL},
    {"status", DOMAIN_STATUS_SYN, "domains and their verification state", cmd_domain_status, NULL},
    {"verify", DOMAIN_VERIFY_SYN, "check the domain's TXT/MX records now; exit 0 when verified",
     cmd_domain_verify, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
