/*
 * scan_worker.c - the scan worker process (`moatd --scan-worker`).
 *
 * Started by scan_pool with its end of a socketpair on fd 3. Loops: read one
 * request frame, map the spool file read-only, analyse, write one result
 * frame. The analysis is mime_analyse's (src/mime); the result carries its
 * decoded Message-ID/Subject/From and "clean[; flags=...]" as the summary.
 * Untrusted message content is only ever parsed here, under resource
 * limits (CPU seconds per message, address space - except under ASan, which
 * needs a huge reservation - open files, no core dumps). A worker that
 * misbehaves is killed and replaced by the pool; it never sees the network.
 *
 * MOAT_SCAN_DEBUG_TRIGGERS in the environment (tests only): a Subject of
 * "MOAT-TEST-CRASH" aborts the worker, "MOAT-TEST-HANG" hangs it.
 */
#include "core/core.h"
#include "mime/mime.h"
#include "scan/scan.h"
#include "detect/detect.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* read_full / write_full - whole-buffer blocking I/O; -1 on EOF or error */
static int read_full(int fd, unsigned char *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void set_limits(const struct moat_config *cfg)
{
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = 0;
    setrlimit(RLIMIT_CORE, &rl);
    rl.rlim_cur = rl.rlim_max = 64;
    setrlimit(RLIMIT_NOFILE, &rl);
#if !defined(__SANITIZE_ADDRESS__)
#if defined(__has_feature)
#if !__has_feature(address_sanitizer)
    rl.rlim_cur = rl.rlim_max = cfg->scan_memory_limit;
    setrlimit(RLIMIT_AS, &rl);
#endif
#else
    rl.rlim_cur = rl.rlim_max = cfg->scan_memory_limit;
    setrlimit(RLIMIT_AS, &rl);
#endif
#endif
    (void)cfg;
}

/* copy_text - a bounded copy cut at a UTF-8 character boundary, control
 * characters as spaces (these strings go into headers and logs) */
static void copy_text(char *dst, size_t dstsz, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= dstsz) {
        n = dstsz - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++)
        dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7F ? ' ' : src[i];
    dst[n] = '\0';
}

/* summarise - fill the result from the analysis: decoded Message-ID,
 * Subject and From, the malformed bit, and "clean[; flags=a,b]" */
static void summarise(const struct analysis *a, struct scan_result *res)
{
    if (a->message_id)
        copy_text(res->message_id, sizeof res->message_id, a->message_id);
    if (a->subject)
        copy_text(res->subject, sizeof res->subject, a->subject);
    for (size_t i = 0; i < a->nheaders; i++)
        if (strcasecmp(a->headers[i].name, "From") == 0) {
            copy_text(res->from, sizeof res->from, a->headers[i].value);
            break;
        }
    struct buf b;
    buf_init(&b, sizeof res->summary - 1);
    buf_append_str(&b, "clean");
    for (size_t i = 0, n = 0; i < a->nflags; i++) {
        bool seen = false;
        for (size_t k = 0; k < i; k++)
            seen |= strcmp(a->flags[k].name, a->flags[i].name) == 0;
        if (seen)
            continue;
        if (strcmp(a->flags[i].name, "malformed") == 0)
            res->flags |= SCAN_FLAG_MALFORMED;
        buf_printf(&b, "%s%s", n++ ? "," : "; flags=", a->flags[i].name);
    }
    copy_text(res->summary, sizeof res->summary, buf_cstr(&b));
    buf_free(&b);
}

/* analyse - run the analysis of one message */
static void analyse(const struct scan_request *req, const struct moat_config *cfg, bool triggers,
                    struct scan_result *res)
{
    int fd = open(req->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size < req->data_len) {
        res->verdict = SCAN_TEMPFAIL;
        snprintf(res->reply, sizeof res->reply, "451 4.3.0 Temporary scanning failure");
        if (fd >= 0)
            close(fd);
        return;
    }
    size_t maplen = req->data_len;
    const char *msg = "";
    void *map = NULL;
    if (maplen) {
        map = mmap(NULL, maplen, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            close(fd);
            res->verdict = SCAN_TEMPFAIL;
            snprintf(res->reply, sizeof res->reply, "451 4.3.0 Temporary scanning failure");
            return;
        }
        msg = map;
    }
    close(fd);
    /* the raw header block: header count and the header-level malformed bit */
    scan_headers_parse(msg, maplen < SCAN_HEADER_MAX_BLOCK ? maplen : SCAN_HEADER_MAX_BLOCK, res);
    struct mime_limits lim;
    mime_limits_default(&lim);
    struct analysis *a = mime_analyse(msg, maplen, &lim);
    if (a)
        detect_run(a, msg, maplen, NULL);
    if (map)
        munmap(map, maplen);
    if (!a) {
        res->verdict = SCAN_TEMPFAIL;
        snprintf(res->reply, sizeof res->reply, "451 4.3.0 Temporary scanning failure");
        return;
    }
    bool headers_malformed = res->flags & SCAN_FLAG_MALFORMED;
    summarise(a, res);
    if (headers_malformed && !(res->flags & SCAN_FLAG_MALFORMED))
        res->flags |= SCAN_FLAG_MALFORMED;
    analysis_free(a);
    if (triggers && strcmp(res->subject, "MOAT-TEST-CRASH") == 0)
        abort();
    if (triggers && strcmp(res->subject, "MOAT-TEST-HANG") == 0)
        for (;;)
            pause();
    res->verdict = SCAN_ACCEPT;
    (void)cfg;
}

int scan_worker_main(int fd, const struct moat_config *cfg)
{
    static unsigned char frame[SCAN_IPC_FRAME_MAX];
    bool triggers = getenv("MOAT_SCAN_DEBUG_TRIGGERS") != NULL;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN); /* the parent decides when we stop */
    signal(SIGHUP, SIG_IGN);
    char err[600];
    if (detect_init(cfg, err, sizeof err) < 0)
        log_error("scan worker: detection runs degraded: %s", err);
    set_limits(cfg);
    for (;;) {
        struct scan_request req;
        struct scan_result res;
        if (read_full(fd, frame, 4) < 0)
            return 0; /* parent closed: normal end */
        long n = scan_ipc_frame_len(frame, 4);
        if (n < 0 || read_full(fd, frame + 4, (size_t)n - 4) < 0 ||
            scan_ipc_decode_request(frame, (size_t)n, &req) < 0) {
            log_error("scan worker: malformed request from parent");
            return 1;
        }
        memset(&res, 0, sizeof res);
        res.id = req.id;
        analyse(&req, cfg, triggers, &res);
        long m = scan_ipc_encode_result(&res, frame, sizeof frame);
        if (m < 0 || write_full(fd, frame, (size_t)m) < 0)
            return 1;
    }
}
