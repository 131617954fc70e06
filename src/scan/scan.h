/*
 * scan.h - the scan stage: a pool of pre-forked scan worker processes that
 * analyse each message before the 250, and the typed IPC they speak.
 *
 *   scan_ipc_*     frame encoder/decoder (pure; the IPC is input too: short,
 *                  oversize, trailing or unknown data is rejected)
 *   scan_headers_* the header parser run inside the worker (pure)
 *   scan_pool_*    main-process side: spawn workers, dispatch with a
 *                  deadline, replace crashed or hung ones
 *   scan_worker_main  the worker process's loop (`moatd --scan-worker`)
 *   scan_zygote_*  the process that loads the engines once and forks the
 *                  workers (`moatd --scan-zygote`, scan_zygote.c)
 */
#ifndef MOAT_SCAN_H
#define MOAT_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>

#include "core/core.h"

#define SCAN_IPC_VERSION 1
#define SCAN_IPC_FRAME_MAX (1024 * 1024)
#define SCAN_PATH_MAX 1024
#define SCAN_TEXT_MAX 1000
#define SCAN_DETECTIONS_MAX 16384
#define SCAN_COMPANY_MAX 64
#define SCAN_ADDR_MAX 520   /* RFC 5321 path: 64 + 1 + 255, UTF-8 local parts up to 512 */
#define SCAN_IP_MAX 64
#define SCAN_RCPT_MAX 100000
#define SCAN_RCPTS_MAX (640 * 1024)  /* the recipient list ("company\taddress\n" lines) */
#define SCAN_PLAN_MAX (768 * 1024)   /* the policy plan (JSON) */
#define SCAN_VARIANTS_MAX 64         /* rewritten copies of one message */

enum scan_verdict { SCAN_ACCEPT = 0, SCAN_REJECT = 1, SCAN_TEMPFAIL = 2 };

struct scan_request {
    uint64_t id;
    char path[SCAN_PATH_MAX];   /* spool file (read-only for the worker) */
    uint64_t data_len;          /* message bytes from offset 0 */
    char qid[CORE_QID_LEN + 1];
    /* who the message is scanned for (detect_context): the tenant of the
     * first recipient and the envelope; empty when unknown */
    char company_id[SCAN_COMPANY_MAX];
    char mail_from[SCAN_ADDR_MAX];
    char client_ip[SCAN_IP_MAX];
    uint32_t nrcpt;
    uint32_t direction;         /* 0 inbound, 1 outbound (policy_direction) */
    /* every recipient with its tenant, one "company\taddress\n" line each
     * (company empty when unknown); heap, NULL = none (no policy stage).
     * scan_pool_submit copies it; a decoded request owns it
     * (scan_request_clear). */
    char *rcpts;
};

struct scan_result {
    uint64_t id;
    uint32_t verdict;           /* enum scan_verdict */
    char reply[SCAN_TEXT_MAX];  /* SMTP reply for REJECT/TEMPFAIL, "" otherwise */
    char summary[SCAN_TEXT_MAX];/* value of the X-Moat-Scan header */
    char message_id[SCAN_TEXT_MAX];
    char subject[SCAN_TEXT_MAX];
    char from[SCAN_TEXT_MAX];
    uint32_t header_count;
    uint32_t flags;             /* SCAN_FLAG_* */
    /* the detections as a JSON array of {category, name, score, evidence,
     * type?} for tracking; whole entries only, "[]" when none */
    char detections[SCAN_DETECTIONS_MAX];
    /* the policy stage's plan (scan_policy.c, docs/policy.md "In the
     * daemon"): JSON, heap, NULL when no policy ran; and the number of
     * rewritten copies the worker wrote beside the spool file
     * (<path>.v1 .. .vN). A decoded result owns plan (scan_result_clear);
     * the pool frees it after the done callback returns. */
    char *plan;
    uint32_t variants;
};

#define SCAN_FLAG_MALFORMED 1u  /* header block broken or over limits */

/* scan_request_clear / scan_result_clear - free the heap fields (rcpts,
 * plan) and set them to NULL */
void scan_request_clear(struct scan_request *r);
void scan_result_clear(struct scan_result *r);

/* encode: -1 if a string is over its limit; else the frame length */
long scan_ipc_encode_request(const struct scan_request *r, unsigned char *out, size_t outsz);
long scan_ipc_encode_result(const struct scan_result *r, unsigned char *out, size_t outsz);
/* scan_ipc_frame_len - from the first 4 bytes: the whole frame's length, or
 * -1 if it is shorter than a header or over SCAN_IPC_FRAME_MAX */
long scan_ipc_frame_len(const unsigned char *p, size_t len);
/* decode a complete frame; 0 or -1 (malformed, wrong type/version, unknown
 * or duplicate field, missing field, trailing bytes) */
int scan_ipc_decode_request(const unsigned char *p, size_t len, struct scan_request *r);
int scan_ipc_decode_result(const unsigned char *p, size_t len, struct scan_result *r);

/* ---------------------------------------------------------------- headers */
#define SCAN_HEADER_MAX_COUNT 1000
#define SCAN_HEADER_MAX_LINE 65536  /* one (unfolded) header field */
#define SCAN_HEADER_MAX_BLOCK (1024 * 1024)

/* scan_headers_parse - parse the RFC 5322 header block at the start of msg,
 * filling message_id, subject, from (raw values, unfolded, control chars
 * dropped), header_count and SCAN_FLAG_MALFORMED when the block is broken
 * (no blank line, over the limits, a line that is not a field). Our own
 * Received header, which precedes the client's data, is counted too. */
void scan_headers_parse(const char *msg, size_t len, struct scan_result *r);

/* ---------------------------------------------------------------- pool */
struct scan_pool;
typedef void (*scan_done_fn)(void *arg, const struct scan_result *res);

struct scan_zygote;

struct scan_pool_opts {
    struct scan_zygote *zygote; /* fork workers from it; NULL (or when it fails): spawn them */
    const char *exe;           /* path of the moatd binary to exec with --scan-worker */
    const char *config_path;   /* passed on to the worker */
    unsigned workers;
    unsigned timeout;          /* seconds */
    size_t max_backlog;        /* queued requests beyond which submit fails */
};

struct scan_pool *scan_pool_new(struct event_base *base, const struct scan_pool_opts *o);
/* scan_pool_submit - 0, or -1 when the backlog is full (caller answers 451
 * 4.3.2). done is called exactly once on the pool's loop, never inside
 * submit; a crashed or timed-out worker gives SCAN_TEMPFAIL. Returns a
 * ticket for scan_pool_cancel. */
int scan_pool_submit(struct scan_pool *p, const struct scan_request *req, scan_done_fn done, void *arg,
                     uint64_t *ticket);
/* scan_pool_cancel - the requester went away: done will not be called */
void scan_pool_cancel(struct scan_pool *p, uint64_t ticket);
void scan_pool_free(struct scan_pool *p);

/* scan_tmpdir_resolve - the scan workers' temporary directory for cfg
 * (scan_tmp_dir; "auto": a private /dev/shm directory when /dev/shm is a
 * writable tmpfs, else <data_dir>/tmp), created if missing, checked to be
 * ours (mode 0700, not a symlink); 0, or -1 when no such directory can be
 * had (libclamav then uses TMPDIR). scan_tmpdir.c */
int scan_tmpdir_resolve(const struct moat_config *cfg, char *out, size_t outsz);
/* scan_tmpdir_prepare - empty dir (moatd at start: a killed worker's leftovers) */
void scan_tmpdir_prepare(const char *dir);
/* scan_tmpdir_remove - remove an automatic /dev/shm directory if it is empty */
void scan_tmpdir_remove(const char *dir);

/* scan_worker_main - load the engines, then serve requests on fd until the
 * parent closes it (0) or a protocol error (1) */
int scan_worker_main(int fd, const struct moat_config *cfg);
/* scan_worker_serve - the request loop, engines already loaded (the zygote's
 * forked workers) */
int scan_worker_serve(int fd, const struct moat_config *cfg);

/* scan_tenant_load - a tenant's detection settings from the store (its
 * document and writing-style profiles), as the workers use them; NULL with
 * err. Caller frees with detect_tenant_free. */
struct store;
struct detect_tenant;
struct detect_tenant *scan_tenant_load(struct store *st, const char *company_id, char *err, size_t errsz);

/* ---------------------------------------------------------------- policy stage */
/* scan_policy_run - in a worker, after detection: evaluate the rules of each
 * recipient's tenant (req->rcpts; nothing when NULL), write the rewritten
 * copies beside req->path and set res->plan / res->variants (scan_policy.c
 * documents the plan). On a plan that cannot be built res becomes a
 * TEMPFAIL. st may be NULL (every recipient then gets "none"). */
struct analysis;
void scan_policy_run(struct store *st, const struct scan_request *req, const struct analysis *a, const char *msg,
                     size_t len, struct scan_result *res);
/* scan_policy_clear - drop the cached rule sets */
void scan_policy_clear(void);

/* ---------------------------------------------------------------- zygote */
/* scan_zygote_start - spawn `exe --scan-zygote -c config_path`; NULL (logged)
 * if it cannot be started. Thread-safe after start. */
struct scan_zygote *scan_zygote_start(const char *exe, const char *config_path);
/* scan_zygote_fork - a new worker: our end of its socket (CLOEXEC, blocking)
 * and its pid (not our child: kill it, never wait for it); -1 on failure */
int scan_zygote_fork(struct scan_zygote *z, pid_t *pid);
/* scan_zygote_stop - close the control socket and reap the zygote (its
 * workers end when their sockets close) */
void scan_zygote_stop(struct scan_zygote *z);
/* scan_zygote_main - the zygote process on control fd */
int scan_zygote_main(int fd, const struct moat_config *cfg);

#endif
