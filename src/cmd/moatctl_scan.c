/*
 * moatctl_scan.c - `moatctl scan FILE.eml...`: analyse messages offline.
 *
 * One file: the analysis as indented JSON. Several: one compact JSON object
 * per line (JSON Lines) with a "file" key first. No daemon, no store: the
 * same mime_analyse the scan workers run. The verdict is the analysis'
 * (detectors come later); exit 0 whatever it is, 1 if a file cannot be read
 * (the others are still analysed; the reason goes to stderr), 2 on an
 * internal error. Files are read whole, up to MOATCTL_SCAN_MAX bytes.
 */
#include "cmd/moatctl.h"

#include <errno.h>

#include "mime/mime.h"
#include "detect/detect.h"

#define MOATCTL_SCAN_MAX (256ULL * 1024 * 1024)

/* with_file - the compact document with "file" as its first key */
static char *with_file(const char *file, const char *doc)
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
    buf_printf(&b, "{\"file\":%s%s%s", esc, strcmp(doc, "{}") == 0 ? "" : ",", doc + 1);
    free(esc);
    return b.ptr;
}

int moatctl_cmd_scan(struct moatctl *ctx, int argc, char **argv)
{
    static const char synopsis[] = "FILE.eml...";
    int code = MOATCTL_OK;
    if (argc < 2)
        return moatctl_usage("scan", synopsis, "no message file given");
    for (int i = 1; i < argc; i++)
        if (argv[i][0] == '-' && argv[i][1] == '-')
            return moatctl_usage("scan", synopsis, "unknown option %s", argv[i]);
    struct mime_limits lim;
    mime_limits_default(&lim);
    char err[600];
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
        struct analysis *a = mime_analyse(msg, len, &lim);
        if (a)
            detect_run(a, msg, len, NULL);
        free(msg);
        char *doc = a ? analysis_to_json(a, !lines) : NULL;
        analysis_free(a);
        if (!doc)
            return moatctl_error(MOATCTL_INTERNAL, "scan: %s: out of memory", argv[i]);
        if (lines) {
            char *l = with_file(argv[i], doc);
            fputs(l, stdout);
            fputc('\n', stdout);
            free(l);
        } else {
            fputs(doc, stdout);
            fputc('\n', stdout);
        }
        free(doc);
    }
    if (fflush(stdout) != 0)
        return moatctl_error(MOATCTL_INTERNAL, "scan: cannot write the output");
    (void)ctx;
    return code;
}
