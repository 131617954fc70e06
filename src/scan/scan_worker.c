/*
 * scan_worker.c - the scan worker process (`moatd --scan-worker`).
 *
 * Started by scan_pool with its end of a socketpair on fd 3. Loops: read one
 * request frame, map the spool file read-only, analyse, write one result
 * frame. Untrusted message content is only ever parsed here, under resource
 * limits (CPU seconds per message, address space - except under ASan, which
 * needs a huge reservation - open files, no core dumps). A worker that
 * misbehaves is killed and replaced by the pool; it never sees the network.
 *
 * MOAT_SCAN_DEBUG_TRIGGERS in the environment (tests only): a Subject of
 * "MOAT-TEST-CRASH" aborts the worker, "MOAT-TEST-HANG" hangs it.
 */
#include "core/core.h"
#include "scan/scan.h"

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
    size_t maplen = req->data_len < SCAN_HEADER_MAX_BLOCK ? req->data_len : SCAN_HEADER_MAX_BLOCK;
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
    scan_headers_parse(msg, maplen, res);
    if (map)
        munmap(map, maplen);
    if (triggers && strcmp(res->subject, "MOAT-TEST-CRASH") == 0)
        abort();
    if (triggers && strcmp(res->subject, "MOAT-TEST-HANG") == 0)
        for (;;)
            pause();
    res->verdict = SCAN_ACCEPT;
    snprintf(res->summary, sizeof res->summary, "clean%s",
             (res->flags & SCAN_FLAG_MALFORMED) ? " (malformed headers)" : "");
    (void)cfg;
}

int scan_worker_main(int fd, const struct moat_config *cfg)
{
    static unsigned char frame[SCAN_IPC_FRAME_MAX];
    bool triggers = getenv("MOAT_SCAN_DEBUG_TRIGGERS") != NULL;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN); /* the parent decides when we stop */
    signal(SIGHUP, SIG_IGN);
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
