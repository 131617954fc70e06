/*
 * moatctl.c - the command line: global options, configuration, dispatch.
 *
 *   moatctl [-c FILE] [--json] COMMAND [ARGS...]
 *
 * -c defaults to ./moat.conf when it exists, else the built-in defaults.
 * --json may appear anywhere and switches every command to JSON output.
 * Exit codes: 0 success, 1 user error (the message on stderr names what is
 * wrong), 2 internal error. Commands live in moatctl_commands[] below; each
 * group's handlers are in their own file (moatctl_store.c, ...). See
 * moatctl.h for how to add one.
 */
#include "cmd/moatctl.h"

#include <errno.h>
#include <getopt.h>

#include "store/store.h"

static int cmd_help(struct moatctl *ctx, int argc, char **argv);

/* The command table: add a line per command or group. */
static const struct moatctl_cmd moatctl_commands[] = {
    {"import", "[--trust-domains] FILE.json|-", "create/update tenants from a tenant document",
     moatctl_cmd_import, NULL},
    {"export", "[--tenant ID]", "print the tenant document (all tenants, or one)", moatctl_cmd_export, NULL},
    {"tenant", NULL, "tenants (company IDs)", NULL, moatctl_tenant_cmds},
    {"domain", NULL, "domains and their ownership verification", NULL, moatctl_domain_cmds},
    {"tracking", NULL, "message tracking", NULL, moatctl_tracking_cmds},
    {"queue", NULL, "the delivery queue", NULL, moatctl_queue_cmds},
    {"quarantine", NULL, "quarantined messages", NULL, moatctl_quarantine_cmds},
    {"notify", NULL, "notification templates", NULL, moatctl_notify_cmds},
    {"admin", NULL, "console / REST API accounts (operators and tenant administrators)", NULL, moatctl_admin_cmds},
    {"account", NULL, "the same as admin; `account add` reads the password from stdin", NULL, moatctl_account_cmds},
    {"token", NULL, "REST API tokens for automation", NULL, moatctl_token_cmds},
    {"enduser", NULL, "End User Console accounts of a tenant", NULL, moatctl_enduser_cmds},
    {"user", NULL, "the same as enduser", NULL, moatctl_enduser_cmds},
    {"scan", "[--tenant ID] [--mail-from ADDR] [--client-ip IP] [--rcpts N] FILE.eml...", "analyse messages offline and print the analysis as JSON", moatctl_cmd_scan, NULL},
    {"train", "--spam DIR --ham DIR [--out MODEL]", "train the spam classifier on raw messages", moatctl_cmd_train, NULL},
    {"style", NULL, "writing-style profiles of high-profile users (BEC)", NULL, moatctl_style_cmds},
    {"help", "[COMMAND]", "this text", cmd_help, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

int moatctl_error(int code, const char *fmt, ...)
{
    va_list ap;
    fputs("moatctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int moatctl_usage(const char *cmd, const char *synopsis, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "moatctl %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (synopsis)
        fprintf(stderr, "usage: moatctl [-c FILE] [--json] %s %s\n", cmd, synopsis);
    return MOATCTL_USER;
}

struct store *moatctl_store(struct moatctl *ctx, int *code)
{
    char err[512];
    if (ctx->store)
        return ctx->store;
    if (store_open(&ctx->cfg, &ctx->store, err, sizeof err) < 0) {
        /* a bad database setting is the user's to fix; anything else is ours */
        bool user = strcmp(ctx->cfg.database, "sqlite") != 0;
        *code = moatctl_error(user ? MOATCTL_USER : MOATCTL_INTERNAL, "%s", err);
        return NULL;
    }
    return ctx->store;
}

void moatctl_getopt_reset(void)
{
    optind = 0; /* glibc: full re-initialisation */
    opterr = 0;
}

/* ---------------------------------------------------------------- helpers */
/* digits - n decimal digits at *p; -1 if not */
static int digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    return v;
}

int moatctl_parse_time(const char *s, double now, double *out)
{
    uint64_t v;
    size_t n = strlen(s);
    if (strcmp(s, "now") == 0) {
        *out = now;
        return 0;
    }
    if (s[0] == '@') {
        if (core_parse_u64(s + 1, 1ULL << 40, &v) < 0)
            return -1;
        *out = (double)v;
        return 0;
    }
    if (n > 0 && n < 12 && !strchr(s, '-')) {
        char num[16];
        if (s[n - 1] == 'w') {
            memcpy(num, s, n - 1);
            num[n - 1] = '\0';
            if (core_parse_u64(num, 100000, &v) < 0)
                return -1;
            v *= 7 * 86400;
        } else if (core_parse_duration(s, &v) < 0) {
            return -1;
        }
        if ((double)v > now)
            return -1;
        *out = now - (double)v;
        return 0;
    }
    const char *p = s;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int y = digits(&p, 4);
    if (y < 1970 || *p++ != '-')
        return -1;
    int mo = digits(&p, 2);
    if (mo < 1 || mo > 12 || *p++ != '-')
        return -1;
    int d = digits(&p, 2);
    if (d < 1 || d > 31)
        return -1;
    int h = 0, mi = 0, sec = 0;
    double frac = 0;
    if (*p == 'T' || *p == ' ') {
        p++;
        if ((h = digits(&p, 2)) < 0 || h > 23 || *p++ != ':' || (mi = digits(&p, 2)) < 0 || mi > 59)
            return -1;
        if (*p == ':') {
            p++;
            if ((sec = digits(&p, 2)) < 0 || sec > 60)
                return -1;
            if (*p == '.' || *p == ',') {
                double scale = 0.1;
                p++;
                if (*p < '0' || *p > '9')
                    return -1;
                while (*p >= '0' && *p <= '9') {
                    frac += (*p++ - '0') * scale;
                    scale /= 10;
                }
            }
        }
    }
    bool zone = false;
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        zone = true;
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1;
        int oh = digits(&p, 2), om;
        if (oh < 0 || oh > 23)
            return -1;
        if (*p == ':')
            p++;
        if ((om = digits(&p, 2)) < 0 || om > 59)
            return -1;
        zone = true;
        off = sign * (oh * 3600L + om * 60L);
    }
    if (*p)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    struct tm check = tm;
    time_t t = timegm(&check);
    if (t == (time_t)-1 || check.tm_mday != d || check.tm_mon != mo - 1)
        return -1; /* e.g. February 30 */
    if (zone) {
        t -= off;
    } else {
        tm.tm_isdst = -1;
        t = mktime(&tm);
        if (t == (time_t)-1)
            return -1;
    }
    *out = (double)t + frac;
    return 0;
}

void moatctl_iso_time(double t, char *out, size_t outsz)
{
    time_t s = (time_t)t;
    int ms = (int)((t - (double)s) * 1000.0);
    if (ms < 0)
        ms = 0;
    if (ms > 999)
        ms = 999;
    struct tm tm;
    if (!gmtime_r(&s, &tm)) {
        snprintf(out, outsz, "-");
        return;
    }
    snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

void moatctl_local_time(double t, char *out, size_t outsz)
{
    time_t s = (time_t)t;
    struct tm tm;
    if (!localtime_r(&s, &tm) || strftime(out, outsz, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, outsz, "-");
}

void moatctl_print_safe(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    for (; *p; p++) {
        if (*p < 0x20 || *p == 0x7F)
            fputc(*p == '\t' || *p == '\n' || *p == '\r' ? ' ' : '?', f);
        else if (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) { /* C1 controls */
            fputc('?', f);
            p++;
        } else
            fputc(*p, f);
    }
}

char *moatctl_read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 65536, n = 0;
    char *b = xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= max) {
                free(b);
                if (f != stdin)
                    fclose(f);
                errno = EFBIG;
                return NULL;
            }
            cap = cap * 2 > max ? max : cap * 2;
            b = xrealloc(b, cap + 1);
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (bad) {
        free(b);
        errno = EIO;
        return NULL;
    }
    b[n] = '\0';
    *len = n;
    return b;
}

/* ---------------------------------------------------------------- usage and dispatch */
static void usage_cmd(FILE *f, const char *group, const struct moatctl_cmd *c)
{
    char line[300];
    snprintf(line, sizeof line, "%s%s%s %s", group ? group : "", group ? " " : "", c->name,
             c->synopsis ? c->synopsis : "");
    if (strlen(line) > 50)
        fprintf(f, "  %s\n  %-50s %s\n", line, "", c->help);
    else
        fprintf(f, "  %-50s %s\n", line, c->help);
}

static void usage_table(FILE *f, const char *group, const struct moatctl_cmd *t)
{
    for (; t->name; t++) {
        if (t->sub)
            usage_table(f, t->name, t->sub);
        else
            usage_cmd(f, group, t);
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: moatctl [-c FILE] [--json] COMMAND [ARGS...]\n"
               "  -c FILE   node configuration (default ./moat.conf if present, else built-in defaults)\n"
               "  --json    JSON output\n"
               "commands:\n");
    usage_table(f, NULL, moatctl_commands);
    fprintf(f, "exit codes: 0 ok, 1 user error, 2 internal error\n");
}

static const struct moatctl_cmd *find_cmd(const struct moatctl_cmd *t, const char *name)
{
    for (; t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

static int cmd_help(struct moatctl *ctx, int argc, char **argv)
{
    (void)ctx;
    if (argc > 1) {
        const struct moatctl_cmd *c = find_cmd(moatctl_commands, argv[1]);
        if (!c)
            return moatctl_usage("help", "[COMMAND]", "unknown command \"%s\"", argv[1]);
        fprintf(stdout, "usage:\n");
        if (c->sub)
            usage_table(stdout, c->name, c->sub);
        else
            usage_cmd(stdout, NULL, c);
        return MOATCTL_OK;
    }
    usage(stdout);
    return MOATCTL_OK;
}

/* dispatch - run argv[0] from table t (group: the name of the enclosing group) */
static int dispatch(struct moatctl *ctx, const struct moatctl_cmd *t, const char *group, int argc,
                    char **argv)
{
    if (argc < 1) {
        moatctl_error(MOATCTL_USER, "%s: missing subcommand", group);
        fprintf(stderr, "usage:\n");
        usage_table(stderr, group, t);
        return MOATCTL_USER;
    }
    const struct moatctl_cmd *c = find_cmd(t, argv[0]);
    if (!c) {
        if (group) {
            moatctl_error(MOATCTL_USER, "%s: unknown subcommand \"%s\"", group, argv[0]);
            fprintf(stderr, "usage:\n");
            usage_table(stderr, group, t);
        } else {
            moatctl_error(MOATCTL_USER, "unknown command \"%s\" (try: moatctl help)", argv[0]);
        }
        return MOATCTL_USER;
    }
    if (c->sub)
        return dispatch(ctx, c->sub, c->name, argc - 1, argv + 1);
    if (group) {
        /* handlers see "group sub" as their name in messages */
        char name[128];
        snprintf(name, sizeof name, "%s %s", group, c->name);
        char *saved = argv[0];
        argv[0] = name;
        int rc = c->run(ctx, argc, argv);
        argv[0] = saved;
        return rc;
    }
    return c->run(ctx, argc, argv);
}

int main(int argc, char **argv)
{
    struct moatctl ctx;
    memset(&ctx, 0, sizeof ctx);
    log_init("moatctl", false, LOG_LVL_WARN);

    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc)
                return moatctl_error(MOATCTL_USER, "%s needs a file name", a);
            ctx.config_path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            ctx.config_path = a + 9;
        } else if (strncmp(a, "-c", 2) == 0 && a[2]) {
            ctx.config_path = a + 2;
        } else if (strcmp(a, "--json") == 0) {
            ctx.json = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return MOATCTL_OK;
        } else if (a[0] == '-' && a[1]) {
            moatctl_error(MOATCTL_USER, "unknown option \"%s\"", a);
            usage(stderr);
            return MOATCTL_USER;
        } else {
            break;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return MOATCTL_USER;
    }
    /* --json anywhere after the command too */
    int n = 0;
    char **args = xcalloc((size_t)(argc - i + 1), sizeof *args);
    for (int k = i; k < argc; k++) {
        if (strcmp(argv[k], "--json") == 0)
            ctx.json = true;
        else
            args[n++] = argv[k];
    }

    char err[512];
    if (ctx.config_path) {
        if (config_load(ctx.config_path, &ctx.cfg, err, sizeof err) < 0) {
            free(args);
            config_free(&ctx.cfg);
            return moatctl_error(MOATCTL_USER, "%s", err);
        }
    } else if (access("moat.conf", F_OK) == 0) {
        ctx.config_path = "moat.conf";
        if (config_load(ctx.config_path, &ctx.cfg, err, sizeof err) < 0) {
            free(args);
            config_free(&ctx.cfg);
            return moatctl_error(MOATCTL_USER, "%s", err);
        }
    } else {
        config_defaults(&ctx.cfg);
    }

    int rc = dispatch(&ctx, moatctl_commands, NULL, n, args);
    if (fflush(stdout) != 0 && rc == MOATCTL_OK)
        rc = moatctl_error(MOATCTL_INTERNAL, "write error: %s", strerror(errno));
    store_close(ctx.store);
    config_free(&ctx.cfg);
    free(args);
    return rc;
}
