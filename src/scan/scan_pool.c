/*
 * scan_pool.c - the main-process side of the scan stage.
 *
 * Owns a fixed number of worker processes (forked by the scan zygote, which
 * has the engines loaded already; or, without a zygote or when it fails,
 * posix_spawn of `moatd --scan-worker` with the worker's end of a
 * socketpair on fd 3), a FIFO of
 * waiting requests (bounded by max_backlog: beyond it submit fails and the
 * session answers 451 4.3.2 - back-pressure, not collapse), and a deadline
 * per request. A worker that dies, sends a malformed frame, or misses its
 * deadline is killed (SIGKILL), reaped and replaced; its request completes
 * as SCAN_TEMPFAIL. Callbacks always run from the event loop, never inside
 * scan_pool_submit. One pool per event loop: no locking.
 */
#include "core/core.h"
#include "scan/scan.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

extern char **environ;

struct scan_job {
    struct scan_job *next;
    uint64_t ticket;
    struct scan_request req;
    scan_done_fn done;
    void *arg;
    bool cancelled;
    double submitted; /* core_monotonic() at submission: the latency metric */
};

struct scan_worker {
    struct scan_pool *pool;
    pid_t pid;
    struct bufferevent *bev;
    struct event *deadline;
    struct scan_job *job;    /* in progress, or NULL */
    double spawned;
    bool forked;             /* the zygote's child: kill, never waitpid */
};

struct scan_pool {
    struct event_base *base;
    struct scan_pool_opts o;
    char *exe, *config_path;
    struct scan_worker *workers;
    struct scan_job *head, *tail;
    size_t backlog;
    uint64_t next_ticket;
    struct event *kick;      /* deferred dispatch */
    struct event *respawn;
    bool freeing;
    unsigned char *frame;    /* request encoding buffer (SCAN_IPC_FRAME_MAX) */
};

static void worker_spawn(struct scan_worker *w);
static void pool_dispatch(struct scan_pool *p);

/* job_complete - run a job's callback (unless cancelled) and free it */
static void job_complete(struct scan_job *j, const struct scan_result *res)
{
    if (!j->cancelled) {
        metric_scan_latency(core_monotonic() - j->submitted);
        j->done(j->arg, res);
    }
    scan_request_clear(&j->req);
    free(j);
}

static void job_tempfail(struct scan_job *j, const char *why)
{
    struct scan_result res;
    memset(&res, 0, sizeof res);
    res.id = j->req.id;
    res.verdict = SCAN_TEMPFAIL;
    snprintf(res.reply, sizeof res.reply, "451 4.3.0 Temporary scanning failure, try again later");
    log_warn("scan failed qid=%s reason=%s", j->req.qid, why);
    job_complete(j, &res);
}

/* worker_kill - stop a worker, fail its job, schedule a replacement */
static void worker_kill(struct scan_worker *w, const char *why)
{
    struct scan_job *j = w->job;
    w->job = NULL;
    if (w->bev) {
        bufferevent_free(w->bev);
        w->bev = NULL;
    }
    if (w->deadline)
        event_del(w->deadline);
    if (w->pid > 0) {
        /* a forked worker that closed its socket has exited and may be reaped
         * by the zygote already: its pid could be reused, so no signal then */
        if (!w->forked || strcmp(why, "worker exited") != 0)
            kill(w->pid, SIGKILL);
        int status;
        while (!w->forked && waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
            ;
        log_warn("scan worker stopped pid=%d reason=%s", (int)w->pid, why);
        w->pid = -1;
    }
    if (j)
        job_tempfail(j, why);
    if (!w->pool->freeing) {
        struct timeval tv = {0, 100000}; /* a crash loop must not spin */
        event_add(w->pool->respawn, &tv);
    }
}

static void worker_read(struct bufferevent *bev, void *arg)
{
    struct scan_worker *w = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t have = evbuffer_get_length(in);
        if (have < 4)
            return;
        unsigned char hdr[4];
        evbuffer_copyout(in, hdr, 4);
        long n = scan_ipc_frame_len(hdr, 4);
        if (n < 0) {
            worker_kill(w, "malformed frame");
            return;
        }
        if (have < (size_t)n)
            return;
        unsigned char *frame = evbuffer_pullup(in, n);
        struct scan_result res;
        int rc = scan_ipc_decode_result(frame, (size_t)n, &res);
        evbuffer_drain(in, (size_t)n);
        if (rc < 0 || !w->job || res.id != w->job->req.id) {
            worker_kill(w, "malformed or unexpected result");
            return;
        }
        struct scan_job *j = w->job;
        w->job = NULL;
        event_del(w->deadline);
        job_complete(j, &res);
        scan_result_clear(&res);
        pool_dispatch(w->pool);
        if (!w->bev)
            return;
    }
}

static void worker_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    worker_kill(arg, "worker exited");
}

static void worker_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_kill(arg, "deadline exceeded");
}

static void worker_spawn(struct scan_worker *w)
{
    struct scan_pool *p = w->pool;
    int sv[2];
    pid_t pid;
    int zfd = scan_zygote_fork(p->o.zygote, &pid);
    if (zfd >= 0) {
        w->forked = true;
        sv[0] = zfd;
        goto ready;
    }
    w->forked = false;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        log_error("scan pool: socketpair: %s", strerror(errno));
        return;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
    char *argv[] = {p->exe, "--scan-worker", "-c", p->config_path, NULL};
    int rc = posix_spawn(&pid, p->exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    if (rc != 0) {
        log_error("scan pool: spawn %s: %s", p->exe, strerror(rc));
        close(sv[0]);
        return;
    }
ready:
    evutil_make_socket_nonblocking(sv[0]);
    w->pid = pid;
    w->spawned = core_monotonic();
    w->bev = bufferevent_socket_new(p->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(w->bev, worker_read, NULL, worker_event, w);
    bufferevent_enable(w->bev, EV_READ);
}

static void pool_respawn(evutil_socket_t fd, short what, void *arg)
{
    struct scan_pool *p = arg;
    (void)fd;
    (void)what;
    for (unsigned i = 0; i < p->o.workers; i++)
        if (p->workers[i].pid <= 0)
            worker_spawn(&p->workers[i]);
    pool_dispatch(p);
}

/* pool_dispatch - give waiting jobs to idle workers */
static void pool_dispatch(struct scan_pool *p)
{
    for (unsigned i = 0; i < p->o.workers && p->head; i++) {
        struct scan_worker *w = &p->workers[i];
        if (w->pid <= 0 || w->job || !w->bev)
            continue;
        struct scan_job *j = p->head;
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        p->backlog--;
        if (j->cancelled) {
            scan_request_clear(&j->req);
            free(j);
            i--;
            continue;
        }
        long n = scan_ipc_encode_request(&j->req, p->frame, SCAN_IPC_FRAME_MAX);
        if (n < 0) {
            job_tempfail(j, "request too large");
            i--;
            continue;
        }
        w->job = j;
        bufferevent_write(w->bev, p->frame, (size_t)n);
        struct timeval tv = {(time_t)p->o.timeout, 0};
        event_add(w->deadline, &tv);
    }
}

static void pool_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pool_dispatch(arg);
}

struct scan_pool *scan_pool_new(struct event_base *base, const struct scan_pool_opts *o)
{
    struct scan_pool *p = xcalloc(1, sizeof *p);
    p->base = base;
    p->o = *o;
    p->exe = xstrdup(o->exe);
    p->config_path = xstrdup(o->config_path);
    if (p->o.workers == 0)
        p->o.workers = 1;
    p->workers = xcalloc(p->o.workers, sizeof *p->workers);
    p->frame = xmalloc(SCAN_IPC_FRAME_MAX);
    p->kick = event_new(base, -1, 0, pool_kick, p);
    p->respawn = event_new(base, -1, 0, pool_respawn, p);
    for (unsigned i = 0; i < p->o.workers; i++) {
        p->workers[i].pool = p;
        p->workers[i].pid = -1;
        p->workers[i].deadline = event_new(base, -1, 0, worker_deadline, &p->workers[i]);
        worker_spawn(&p->workers[i]);
    }
    return p;
}

int scan_pool_submit(struct scan_pool *p, const struct scan_request *req, scan_done_fn done, void *arg,
                     uint64_t *ticket)
{
    if (p->backlog >= p->o.max_backlog)
        return -1;
    struct scan_job *j = xcalloc(1, sizeof *j);
    j->req = *req;
    j->req.rcpts = req->rcpts ? xstrdup(req->rcpts) : NULL;
    j->done = done;
    j->arg = arg;
    j->ticket = ++p->next_ticket;
    j->submitted = core_monotonic();
    j->req.id = j->ticket;
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->backlog++;
    *ticket = j->ticket;
    event_active(p->kick, 0, 0);
    return 0;
}

void scan_pool_cancel(struct scan_pool *p, uint64_t ticket)
{
    for (struct scan_job *j = p->head; j; j = j->next)
        if (j->ticket == ticket)
            j->cancelled = true;
    for (unsigned i = 0; i < p->o.workers; i++)
        if (p->workers[i].job && p->workers[i].job->ticket == ticket)
            p->workers[i].job->cancelled = true;
}

void scan_pool_free(struct scan_pool *p)
{
    if (!p)
        return;
    p->freeing = true;
    for (unsigned i = 0; i < p->o.workers; i++) {
        struct scan_worker *w = &p->workers[i];
        if (w->pid > 0)
            worker_kill(w, "shutdown");
        event_free(w->deadline);
    }
    while (p->head) {
        struct scan_job *j = p->head;
        p->head = j->next;
        job_tempfail(j, "shutdown");
    }
    event_free(p->kick);
    event_free(p->respawn);
    free(p->workers);
    free(p->frame);
    free(p->exe);
    free(p->config_path);
    free(p);
}
