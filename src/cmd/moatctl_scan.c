/*
 * moatctl_scan.c - `moatctl scan FILE.eml...`: analyse messages offline.
 *
 * One file: the analysis as indented JSON. Several: one compact JSON object
 * per line (JSON Lines) with a "file" key first. No daemon: the same
 * mime_analyse and detectors the scan workers run. With --tenant, the
 * tenant's settings are read from the store (as the workers do), and
 * --mail-from / --client-ip / --rcpts give the envelope the detectors see.
 * --timing adds "scan_ms" and "scan_cpu_ms" after "file" in JSON Lines: the
 * wall and CPU time of mime_analyse + detect_run + the JSON of that message
 * (bench/run-scan-bench).
 * Exit 0 whatever the verdict, 1 if a file cannot be read
 * (the others are still analysed; the reason goes to stderr), 2 on an
 * internal error. Files are read whole, up to MOATCTL_SCAN_MAX bytes.
 */
#include "cmd/moatctl.h"

#include <errno.h>
#include <getopt.h>

#include "mime/mime.h"
#include "detect/detect.h"
#include "store/store.h"
#include "scan/scan.h"

#define MOATCTL_SCAN_MAX (256ULL * 1024 * 1024)

/* with_file - the compact document with "file" as its first key (and
 * "scan_ms", "scan_cpu_ms" next when ms >= 0) */
static char *with_file(const char *file, const char *doc, double ms, double cpu_ms)
{
    struct buf b;
    char *esc;
    buf_init(&b, (size_t)-1);
    /* doc is a JSON object "{...}": splice the key in front */
    size_t fl = strlen(file);
    esc = xmalloc(fl * 6 + 3);
    size_t k = 0;
    esc[k++] = '"';
    for (size_t i = 0; i < fl; i++) {
        unsigned char c = (unsigned char)file[i];
        if (c == '"' || c == '\\') {
            esc[k++] = '\\';
            esc[k++] = (char)c;
        } else if (c < 0x20) {
            k += (size_t)snprintf(esc + k, 7, "\\u%04x", c);
        } else {
            esc[k++] = (char)c;
        }
    }
    esc[k++] = '"';
    esc[k] = '\0';
    buf_printf(&b, "{\"file\":%s", esc);
    if (ms >= 0)
        buf_printf(&b, ",\"scan_ms\":%.3f,\"scan_cpu_ms\":%.3f", ms, cpu_ms);
    buf_printf(&b, "%s%s", strcmp(doc, "{}") == 0 ? "" : ",", doc + 1);
    free(esc);
    return b.ptr;
}

/* cpu_seconds - CPU time of this process (the scan runs in one thread) */
static double cpu_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int moatctl_cmd_scan(struct moatctl *ctx, int argc, char **argv)
{
    static const char synopsis[] =
        "[--tenant ID] [--mail-from ADDR] [--client-ip IP] [--rcpts N] [--timing] FILE.eml...";
    static const struct option opts[] = {{"tenant", required_argument, NULL, 't'},
                                         {"mail-from", required_argument, NULL, 'f'},
                                         {"client-ip", required_argument, NULL, 'i'},
                                         {"rcpts", required_argument, NULL, 'n'},
                                         {"timing", no_argument, NULL, 'T'},
                                         {NULL, 0, NULL, 0}};
    int code = MOATCTL_OK, c;
    const char *tenant_id = NULL;
    bool timing = false;
    struct detect_context dctx = {.mail_from = "", .client_ip = ""};
    moatctl_getopt_reset();
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == 't') {
            tenant_id = optarg;
        } else if (c == 'f') {
            dctx.mail_from = optarg;
        } else if (c == 'i') {
            dctx.client_ip = optarg;
        } else if (c == 'n') {
            char *end;
            errno = 0;
            unsigned long n = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || n > 100000 || optarg[0] == '-')
                return moatctl_usage("scan", synopsis, "--rcpts must be a number 0..100000");
            dctx.nrcpt = (size_t)n;
        } else if (c == 'T') {
            timing = true;
        } else if (c == ':') {
            return moatctl_usage("scan", synopsis, "option %s needs a value", argv[optind - 1]);
        } else {
            return moatctl_usage("scan", synopsis, "unknown option \"%s\"", argv[optind - 1]);
        }
    }
    argv += optind - 1;
    argc -= optind - 1;
    if (argc < 2)
        return moatctl_usage("scan", synopsis, "no message file given");
    struct mime_limits lim;
    mime_limits_default(&lim);
    char err[600];
    struct detect_tenant *tenant = NULL;
    if (tenant_id) {
        struct store *st = moatctl_store(ctx, &code);
        if (!st)
            return code;
        tenant = scan_tenant_load(st, tenant_id, err, sizeof err);
        if (!tenant)
            return moatctl_error(MOATCTL_USER, "scan: %s", err);
        detect_tenant_context(tenant, &dctx);
        lim.passwords = detect_tenant_passwords(tenant, &lim.npasswords);
    }
    if (detect_init(&ctx->cfg, err, sizeof err) < 0)
        moatctl_error(MOATCTL_OK, "scan: detection runs degraded: %s", err);
    bool lines = argc > 2;
    for (int i = 1; i < argc; i++) {
        size_t len;
        char *msg = moatctl_read_file(argv[i], MOATCTL_SCAN_MAX, &len);
        if (!msg) {
            moatctl_error(MOATCTL_USER, "scan: cannot read %s: %s", argv[i],
                          errno == EFBIG ? "file too large" : strerror(errno));
            code = MOATCTL_USER;
            continue;
        }
        double t0 = core_monotonic(), c0 = cpu_seconds();
        struct analysis *a = mime_analyse(msg, len, &lim);
        if (a)
            detect_run(a, msg, len, &dctx);
        free(msg);
        char *doc = a ? analysis_to_json(a, !lines) : NULL;
        analysis_free(a);
        double ms = timing ? (core_monotonic() - t0) * 1000.0 : -1.0;
        double cpu_ms = timing ? (cpu_seconds() - c0) * 1000.0 : -1.0;
        if (!doc) {
            detect_tenant_free(tenant);
            return moatctl_error(MOATCTL_INTERNAL, "scan: %s: out of memory", argv[i]);
        }
        if (lines) {
            char *l = with_file(argv[i], doc, ms, cpu_ms);
            fputs(l, stdout);
            fputc('\n', stdout);
            free(l);
        } else {
            fputs(doc, stdout);
            fputc('\n', stdout);
        }
        free(doc);
    }
    detect_tenant_free(tenant);
    if (fflush(stdout) != 0)
        return moatctl_error(MOATCTL_INTERNAL, "scan: cannot write the output");
    return code;
}
