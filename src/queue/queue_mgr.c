/*
 * queue_mgr.c - the delivery queue manager: one thread with its own event
 * loop that owns every committed message until it is delivered, bounced or
 * expired.
 *
 * Index: all entries in one array (a message is found by queue ID with a
 * linear scan - the control commands are rare); a FIFO of entries ready
 * now; deferred entries are picked up by a one-second tick. An attempt
 * groups the unfinished recipients by domain and submits one delivery per
 * group (deliver/ enforces per-destination concurrency and reuses
 * connections). Results are appended to the status file before the next
 * step, so a crash repeats at most the attempt in progress (a duplicate,
 * never a loss). Back-off: retry_min doubling up to retry_max; after
 * queue_lifetime the remaining recipients bounce with 4.4.7. A DSN
 * (notify/) goes to the sender for bounced recipients - never for the null
 * sender or for a DSN, so there are no bounce loops. At most
 * MAX_IN_FLIGHT attempts run at once (memory and descriptors stay bounded
 * when a large queue is flushed).
 *
 * Also serves the control socket data_dir/moatd.sock (owner-only) for
 * `moatctl queue list|flush|delete` and PICKUP <qid>: a message that
 * moatctl committed into queue/ itself (quarantine release, notification).
 */
#include "core/core.h"
#include "deliver/deliver.h"
#include "notify/notify.h"
#include "queue/queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <jansson.h>

#define MAX_IN_FLIGHT 512
#define CTL_LINE_MAX 256

enum rcpt_state { R_PENDING = 0, R_DELIVERED, R_BOUNCED, R_HELD /* deleted or quarantined by the policy */ };

struct rcpt_info {
    enum rcpt_state state;
    char last_reply[512];
    char status[16];
    char remote[300];
    double last_attempt;
    bool reported;        /* included in a DSN already */
    bool persisted;       /* its final state is in the status file */
};

struct qentry {
    struct queue_mgr *qm;
    struct queue_envelope *env;
    struct rcpt_info *r;
    unsigned attempts;
    double next_attempt;
    bool in_flight, ready, deleted;
    int pending;          /* delivery groups outstanding in this attempt */
    int fd;               /* open during an attempt */
    int *vfd;             /* the rewritten copies' files during an attempt (env->variants) */
    struct queue_plan_rcpt *plan; /* the policy's outcome per recipient, or NULL */
    struct qentry *next_ready;
};

struct group_ctx {
    struct qentry *e;
    size_t *idx;          /* recipient indexes of this group */
    size_t n;
};

struct queue_mgr {
    const struct moat_config *cfg;
    struct spool *sp;
    struct tracker *tr;
    SSL_CTX *client_ctx;
    struct event_base *base;
    pthread_t thread;
    bool running;
    struct deliver_client *dc;
    struct event *tick, *wake;
    struct evconnlistener *ctl;
    char ctl_path[1100];
    pthread_mutex_t lock;       /* incoming submissions, map */
    struct queue_envelope **incoming;
    size_t nincoming, capincoming;
    struct domain_map *map;
    struct qentry **all;
    size_t nall, capall;
    struct qentry *ready_head, *ready_tail;
    size_t in_flight;
    bool stopping;
    struct queue_plan_ctx plan_ctx;
};

static void entry_attempt(struct qentry *e);

/* ---------------------------------------------------------------- index */
static void entry_add(struct queue_mgr *qm, struct qentry *e)
{
    if (qm->nall == qm->capall) {
        qm->capall = qm->capall ? qm->capall * 2 : 256;
        qm->all = xrealloc(qm->all, qm->capall * sizeof *qm->all);
    }
    qm->all[qm->nall++] = e;
}

static void ready_push(struct queue_mgr *qm, struct qentry *e)
{
    if (e->ready || e->in_flight || e->deleted)
        return;
    e->ready = true;
    e->next_ready = NULL;
    if (qm->ready_tail)
        qm->ready_tail->next_ready = e;
    else
        qm->ready_head = e;
    qm->ready_tail = e;
}

static void entry_close_files(struct qentry *e)
{
    if (e->fd >= 0)
        close(e->fd);
    e->fd = -1;
    for (unsigned k = 0; e->vfd && k < e->env->variants; k++)
        if (e->vfd[k] >= 0)
            close(e->vfd[k]);
    free(e->vfd);
    e->vfd = NULL;
}

static void entry_free(struct qentry *e)
{
    entry_close_files(e);
    queue_plan_free(e->plan, e->env->nrcpts);
    queue_envelope_free(e->env);
    free(e->env);
    free(e->r);
    free(e);
}

/* entry_remove - drop from the index and the spool */
static void entry_remove(struct queue_mgr *qm, struct qentry *e)
{
    for (size_t i = 0; i < qm->nall; i++) {
        if (qm->all[i] == e) {
            qm->all[i] = qm->all[--qm->nall];
            break;
        }
    }
    if (e->ready) {
        struct qentry **pp = &qm->ready_head, *prev = NULL;
        while (*pp && *pp != e) {
            prev = *pp;
            pp = &(*pp)->next_ready;
        }
        if (*pp) {
            *pp = e->next_ready;
            if (qm->ready_tail == e)
                qm->ready_tail = prev;
        }
    }
    spool_remove(qm->sp, e->env->qid);
    entry_free(e);
}

static struct qentry *entry_new(struct queue_mgr *qm, struct queue_envelope *env)
{
    struct qentry *e = xcalloc(1, sizeof *e);
    e->qm = qm;
    e->env = env;
    e->r = xcalloc(env->nrcpts, sizeof *e->r);
    e->fd = -1;
    e->next_attempt = 0;
    return e;
}

/* ---------------------------------------------------------------- tracking */
static void track_rcpt(struct queue_mgr *qm, struct qentry *e, size_t i, const char *status, const char *server,
                       const char *tls, const char *replytext)
{
    struct track_recipient t = {
        .qid = e->env->qid,
        .time = core_now(),
        .rcpt = e->env->rcpts[i],
        .status = status,
        .server = server && server[0] ? server : NULL,
        .tls = tls && tls[0] ? tls : NULL,
        .reply = replytext,
    };
    tracker_recipient(qm->tr, &t);
}

/* ---------------------------------------------------------------- policy plan */
/* plan_inject - a generated message (notification, BCC copy) into the
 * queue: durable, indexed, tracked as outbound mail of its own */
static int plan_inject(void *arg, const char *data, size_t len, struct queue_envelope *env, const char *why)
{
    struct queue_mgr *qm = arg;
    if (!core_qid_valid(env->qid) || env->nrcpts == 0 || spool_commit_sync(qm->sp, data, len, env) < 0)
        return -1;
    struct queue_envelope *copy = queue_envelope_dup(env);
    struct qentry *d = entry_new(qm, copy);
    entry_add(qm, d);
    ready_push(qm, d);
    struct track_message tm = {.qid = copy->qid, .time = copy->arrival, .direction = "outbound",
                               .sender = copy->sender, .size = copy->data_len, .subject = copy->subject,
                               .action = "accepted", .reason = why, .scan = copy->scan_summary,
                               .rcpts = (const char *const *)copy->rcpts, .nrcpts = copy->nrcpts};
    tracker_message(qm->tr, &tm);
    return 0;
}

/* set_aside - a queue file that cannot be used goes to spool/corrupt/ with
 * its copies: never delivered unfiltered, never lost */
static void set_aside(struct queue_mgr *qm, const struct queue_envelope *env, const char *why)
{
    char src[1200], dst[1200];
    for (unsigned k = 0; k <= env->variants; k++) {
        if (k) {
            snprintf(src, sizeof src, "%s/%s.v%u", spool_queue_dir(qm->sp), env->qid, k);
            snprintf(dst, sizeof dst, "%s/spool/corrupt/%s.v%u", qm->cfg->data_dir, env->qid, k);
        } else {
            snprintf(src, sizeof src, "%s/%s", spool_queue_dir(qm->sp), env->qid);
            snprintf(dst, sizeof dst, "%s/spool/corrupt/%s", qm->cfg->data_dir, env->qid);
        }
        rename(src, dst);
    }
    log_error("queue message set aside qid=%s path=%s/spool/corrupt/%s reason=\"%s\"", env->qid, qm->cfg->data_dir,
              env->qid, why);
}

/* entry_index - put a committed message into the index: first the one-time
 * part of its policy plan (quarantine, delete, notify, BCC), then delivery
 * of the rest. done: recipients finished before a restart (or NULL). */
static void entry_index(struct queue_mgr *qm, struct queue_envelope *env, const bool *done, unsigned attempts)
{
    struct qentry *e = entry_new(qm, env);
    e->attempts = attempts;
    bool *finished = xcalloc(env->nrcpts ? env->nrcpts : 1, sizeof *finished);
    if (done)
        memcpy(finished, done, env->nrcpts * sizeof *finished);
    if (env->plan) {
        char err[200];
        bool sends = false;
        e->plan = queue_plan_parse(env, &sends, err, sizeof err);
        if (!e->plan) {
            set_aside(qm, env, err);
            spool_remove(qm->sp, env->qid); /* status file only: the data moved */
            entry_free(e);
            free(finished);
            return;
        }
        bool holds = false;
        for (size_t i = 0; i < env->nrcpts; i++)
            holds |= e->plan[i].action != PLAN_DELIVER && !finished[i];
        /* most messages: every recipient delivered, nothing to send */
        if (holds || sends) {
            bool notified = sends && spool_status_has(spool_status_dir(qm->sp), env->qid, "notified");
            queue_plan_execute(&qm->plan_ctx, env, e->plan, finished, notified);
        }
    }
    size_t pending = 0;
    for (size_t i = 0; i < env->nrcpts; i++) {
        if (finished[i]) {
            e->r[i].state = e->plan && e->plan[i].action != PLAN_DELIVER ? R_HELD : R_DELIVERED;
            e->r[i].persisted = true;
        } else {
            pending++;
        }
    }
    free(finished);
    entry_add(qm, e);
    if (!pending) {
        log_info("queue done qid=%s (nothing to deliver)", env->qid);
        entry_remove(qm, e);
        return;
    }
    ready_push(qm, e);
}

/* rcpt_addr - where recipient i's copy goes (a changed recipient, or itself) */
static const char *rcpt_addr(const struct qentry *e, size_t i)
{
    return e->plan && e->plan[i].deliver_to ? e->plan[i].deliver_to : e->env->rcpts[i];
}

/* copy_fd - the open file of copy k (0: the message) and its length */
static int copy_fd(struct qentry *e, unsigned k, uint64_t *len)
{
    if (k == 0) {
        *len = e->env->data_len;
        return e->fd;
    }
    if (k > e->env->variants)
        return -1;
    if (!e->vfd) {
        e->vfd = xmalloc(e->env->variants * sizeof *e->vfd);
        for (unsigned i = 0; i < e->env->variants; i++)
            e->vfd[i] = -1;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.v%u", spool_queue_dir(e->qm->sp), e->env->qid, k);
    if (e->vfd[k - 1] < 0)
        e->vfd[k - 1] = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (e->vfd[k - 1] < 0 || fstat(e->vfd[k - 1], &st) < 0)
        return -1;
    *len = (uint64_t)st.st_size;
    return e->vfd[k - 1];
}

/* ---------------------------------------------------------------- DSN */
/* read_headers - the original header block (bounded) for the DSN */
static char *read_headers(struct qentry *e, size_t *len)
{
    size_t max = e->env->data_len < 65536 ? (size_t)e->env->data_len : 65536;
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", spool_queue_dir(e->qm->sp), e->env->qid);
    char *p = xmalloc(max + 1);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? pread(fd, p, max, 0) : -1;
    if (fd >= 0)
        close(fd);
    if (n < 0)
        n = 0;
    p[n] = '\0';
    char *end = strstr(p, "\r\n\r\n");
    *len = end ? (size_t)(end - p) + 2 : (size_t)n;
    return p;
}

/* send_dsn - queue a DSN to the sender for recipients in state R_BOUNCED
 * that have not been reported (reported[i] false) */
static void send_dsn(struct queue_mgr *qm, struct qentry *e, const bool *include)
{
    struct queue_envelope *env = e->env;
    if (env->sender[0] == '\0' || env->is_dsn) {
        log_info("queue no dsn qid=%s reason=%s", env->qid, env->is_dsn ? "message is a dsn" : "null sender");
        return;
    }
    struct dsn_recipient *dr = xcalloc(env->nrcpts, sizeof *dr);
    size_t n = 0;
    char diag[env->nrcpts ? env->nrcpts : 1][600];
    for (size_t i = 0; i < env->nrcpts; i++) {
        if (!include[i])
            continue;
        snprintf(diag[n], sizeof diag[n], "%s", e->r[i].last_reply);
        dr[n].addr = env->rcpts[i];
        dr[n].orcpt = env->orcpts ? env->orcpts[i] : NULL;
        dr[n].failed = true;
        dr[n].status = e->r[i].status[0] ? e->r[i].status : NULL;
        dr[n].remote_mta = e->r[i].remote[0] ? e->r[i].remote : NULL;
        dr[n].diagnostic = diag[n];
        dr[n].last_attempt = e->r[i].last_attempt ? e->r[i].last_attempt : core_now();
        n++;
    }
    size_t hlen;
    char *hdrs = read_headers(e, &hlen);
    struct dsn_info info = {
        .reporting_mta = qm->cfg->hostname,
        .qid = env->qid,
        .envid = env->envid,
        .sender = env->sender,
        .arrival = env->arrival,
        .rcpts = dr,
        .nrcpts = n,
        .original = hdrs,
        .original_len = hlen,
    };
    struct buf msg;
    buf_init(&msg, 4 * 1024 * 1024);
    char date[64];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    struct queue_envelope denv;
    memset(&denv, 0, sizeof denv);
    core_qid_new(denv.qid);
    buf_printf(&msg, "Received: by %s (Moat) id %s; %s\r\n", qm->cfg->hostname, denv.qid, date);
    if (notify_dsn_build(&info, &msg) == 0) {
        char *rcpt = env->sender;
        denv.arrival = core_now();
        denv.sender = "";
        denv.rcpts = &rcpt;
        denv.nrcpts = 1;
        denv.is_dsn = true;
        denv.smtputf8 = env->smtputf8;
        denv.scan_summary = "generated";
        denv.subject = "Undelivered Mail Returned to Sender";
        if (spool_commit_sync(qm->sp, msg.ptr, msg.len, &denv) == 0) {
            struct queue_envelope *copy = queue_envelope_dup(&denv);
            struct qentry *d = entry_new(qm, copy);
            entry_add(qm, d);
            ready_push(qm, d);
            const char *one[] = {rcpt};
            struct track_message tm2 = {.qid = denv.qid, .time = denv.arrival, .direction = "outbound",
                                        .sender = "", .size = copy->data_len,
                                        .subject = "Undelivered Mail Returned to Sender",
                                        .action = "accepted", .reason = "delivery status notification",
                                        .rcpts = one, .nrcpts = 1};
            tracker_message(qm->tr, &tm2);
            log_info("queue dsn qid=%s original=%s nrcpt=%zu", denv.qid, env->qid, n);
        } else {
            log_error("queue cannot queue dsn original=%s", env->qid);
        }
    }
    buf_free(&msg);
    free(hdrs);
    free(dr);
}

/* ---------------------------------------------------------------- attempts */
static double backoff(const struct moat_config *cfg, unsigned attempts)
{
    double d = (double)cfg->retry_min;
    for (unsigned i = 1; i < attempts && d < (double)cfg->retry_max; i++)
        d *= 2;
    return d > (double)cfg->retry_max ? (double)cfg->retry_max : d;
}

/* attempt_finished - every group of this attempt reported */
static void attempt_finished(struct queue_mgr *qm, struct qentry *e)
{
    e->in_flight = false;
    qm->in_flight--;
    entry_close_files(e);
    e->attempts++;
    size_t pending = 0;
    bool *bounce = xcalloc(e->env->nrcpts, sizeof *bounce);
    bool any_bounce = false;
    for (size_t i = 0; i < e->env->nrcpts; i++) {
        if (e->r[i].state == R_PENDING)
            pending++;
    }
    double now = core_now();
    bool expired = pending && (e->deleted || now - e->env->arrival >= (double)qm->cfg->queue_lifetime);
    for (size_t i = 0; i < e->env->nrcpts; i++) {
        if (e->r[i].state == R_BOUNCED && !e->r[i].reported) {
            bounce[i] = true; /* bounced in this attempt */
            any_bounce = true;
        }
        if (expired && !e->deleted && e->r[i].state == R_PENDING) {
            char prev[512];
            core_strlcpy(prev, e->r[i].last_reply, sizeof prev);
            snprintf(e->r[i].last_reply, sizeof e->r[i].last_reply,
                     "4.4.7 message expired after %llu seconds in the queue; last error: %s",
                     (unsigned long long)qm->cfg->queue_lifetime, prev[0] ? prev : "none");
            core_strlcpy(e->r[i].status, "4.4.7", sizeof e->r[i].status);
            e->r[i].state = R_BOUNCED;
            bounce[i] = true;
            any_bounce = true;
            track_rcpt(qm, e, i, "expired", NULL, NULL, e->r[i].last_reply);
        }
    }
    if (any_bounce)
        send_dsn(qm, e, bounce);
    for (size_t i = 0; i < e->env->nrcpts; i++)
        if (bounce[i])
            e->r[i].reported = true;
    free(bounce);
    if (e->deleted) {
        for (size_t i = 0; i < e->env->nrcpts; i++)
            if (e->r[i].state == R_PENDING)
                track_rcpt(qm, e, i, "deleted", NULL, NULL, "deleted by the administrator");
        log_info("queue deleted qid=%s", e->env->qid);
        entry_remove(qm, e);
        return;
    }
    if (!pending || expired) {
        log_info("queue done qid=%s attempts=%u", e->env->qid, e->attempts);
        entry_remove(qm, e);
        return;
    }
    /* the message stays queued: record progress so a restart neither
     * repeats finished recipients nor forgets the attempt count (a message
     * finished in one attempt never needs a status file) */
    struct buf st;
    buf_init(&st, 64 * (e->env->nrcpts + 1));
    for (size_t i = 0; i < e->env->nrcpts; i++) {
        if (e->r[i].state != R_PENDING && !e->r[i].persisted) {
            buf_printf(&st, "done %zu\n", i);
            e->r[i].persisted = true;
        }
    }
    buf_printf(&st, "attempt %u\n", e->attempts);
    spool_status_append(qm->sp, e->env->qid, buf_cstr(&st));
    buf_free(&st);
    e->next_attempt = now + backoff(qm->cfg, e->attempts);
    log_info("queue deferred qid=%s pending=%zu attempts=%u next_in=%.0fs", e->env->qid, pending, e->attempts,
             e->next_attempt - now);
}

static void group_done(void *arg, const struct deliver_outcome *out)
{
    struct group_ctx *g = arg;
    struct qentry *e = g->e;
    struct queue_mgr *qm = e->qm;
    for (size_t k = 0; k < g->n && k < out->nrcpts; k++) {
        size_t i = g->idx[k];
        const struct deliver_rcpt_result *rr = &out->rcpt[k];
        struct rcpt_info *ri = &e->r[i];
        ri->last_attempt = core_now();
        core_strlcpy(ri->remote, out->server, sizeof ri->remote);
        if (rr->code)
            snprintf(ri->last_reply, sizeof ri->last_reply, "%d %s", rr->code, rr->reply);
        else
            core_strlcpy(ri->last_reply, rr->reply, sizeof ri->last_reply);
        switch (rr->status) {
        case DELIVER_OK:
            ri->state = R_DELIVERED;
            track_rcpt(qm, e, i, "delivered", out->server, out->tls, ri->last_reply);
            break;
        case DELIVER_PERM:
            ri->state = R_BOUNCED;
            core_strlcpy(ri->status, rr->enhanced[0] ? rr->enhanced : "5.0.0", sizeof ri->status);
            track_rcpt(qm, e, i, "bounced", out->server, out->tls, ri->last_reply);
            break;
        default:
            track_rcpt(qm, e, i, "deferred", out->server, out->tls, ri->last_reply);
            break;
        }
    }
    free(g->idx);
    free(g);
    if (--e->pending == 0)
        attempt_finished(qm, e);
}

static const char *rcpt_domain(const char *addr)
{
    const char *at = strrchr(addr, '@');
    return at ? at + 1 : "";
}

/* entry_attempt - start one delivery attempt for every pending recipient */
static void entry_attempt(struct qentry *e)
{
    struct queue_mgr *qm = e->qm;
    struct queue_envelope *env = e->env;
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", spool_queue_dir(qm->sp), env->qid);
    e->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (e->fd < 0) {
        log_error("queue cannot open qid=%s error=\"%s\"; dropping from the index", env->qid, strerror(errno));
        entry_remove(qm, e);
        return;
    }
    e->in_flight = true;
    qm->in_flight++;
    e->pending = 1; /* guard while submitting */
    pthread_mutex_lock(&qm->lock);
    struct domain_map *map = qm->map;
    if (map)
        domain_map_ref(map);
    pthread_mutex_unlock(&qm->lock);
    char prepend[1200];
    snprintf(prepend, sizeof prepend, "%s: %s\r\n", qm->cfg->scan_header,
             env->scan_summary ? env->scan_summary : "unscanned");
    bool *grouped = xcalloc(env->nrcpts, sizeof *grouped);
    for (size_t i = 0; i < env->nrcpts; i++) {
        if (e->r[i].state != R_PENDING || grouped[i])
            continue;
        if (e->plan && e->plan[i].action != PLAN_DELIVER) {
            /* a quarantine that failed when the message was indexed */
            if (queue_plan_hold(&qm->plan_ctx, env, e->plan, i) == 0) {
                e->r[i].state = R_HELD;
                e->r[i].persisted = true;
            }
            continue;
        }
        unsigned var = e->plan ? e->plan[i].variant : 0;
        const char *dom = rcpt_domain(rcpt_addr(e, i));
        uint64_t data_len = 0;
        int fd = copy_fd(e, var, &data_len);
        struct group_ctx *g = xcalloc(1, sizeof *g);
        g->e = e;
        g->idx = xcalloc(env->nrcpts, sizeof *g->idx);
        const char **rcpts = xcalloc(env->nrcpts, sizeof *rcpts);
        for (size_t j = i; j < env->nrcpts; j++) {
            if (e->r[j].state == R_PENDING && !grouped[j] && (!e->plan || e->plan[j].action == PLAN_DELIVER) &&
                (e->plan ? e->plan[j].variant : 0) == var && strcasecmp(rcpt_domain(rcpt_addr(e, j)), dom) == 0) {
                grouped[j] = true;
                g->idx[g->n] = j;
                rcpts[g->n++] = rcpt_addr(e, j);
            }
        }
        struct deliver_request req;
        memset(&req, 0, sizeof req);
        req.qid = env->qid;
        req.fd = fd;
        req.offset = 0;
        req.length = data_len;
        req.prepend = prepend;
        req.prepend_len = strlen(prepend);
        req.sender = env->sender;
        req.rcpts = rcpts;
        req.nrcpts = g->n;
        req.smtputf8 = env->smtputf8;
        req.eightbit = env->eightbit;
        req.envid = env->envid;
        const struct domain_entry *d = map ? domain_map_find(map, dom) : NULL;
        struct domain_server relay;
        if (d) {
            req.route.servers = d->servers;
            req.route.nservers = d->nservers;
            req.route.tls = d->tls;
        } else if (qm->cfg->relay_host[0] &&
                   core_parse_hostport(qm->cfg->relay_host, relay.host, sizeof relay.host, &relay.port) == 0) {
            relay.preference = 0;
            req.route.servers = &relay;
            req.route.nservers = 1;
            req.route.tls = DOMAIN_TLS_OPPORTUNISTIC;
        } else {
            req.route.mx_domain = dom;
            req.route.tls = DOMAIN_TLS_OPPORTUNISTIC;
            req.route.port = (uint16_t)qm->cfg->mx_port;
        }
        e->pending++;
        if (fd < 0 || deliver_submit(qm->dc, &req, group_done, g) < 0) {
            /* invalid request: report every recipient of the group as deferred */
            e->pending--;
            for (size_t k = 0; k < g->n; k++) {
                struct rcpt_info *ri = &e->r[g->idx[k]];
                core_strlcpy(ri->last_reply, "local error: delivery request rejected", sizeof ri->last_reply);
                track_rcpt(qm, e, g->idx[k], "deferred", NULL, NULL, ri->last_reply);
            }
            free(g->idx);
            free(g);
        }
        free(rcpts);
    }
    free(grouped);
    if (map)
        domain_map_unref(map);
    if (--e->pending == 0)
        attempt_finished(qm, e);
}

/* run_ready - start attempts for ready entries, within MAX_IN_FLIGHT */
static void run_ready(struct queue_mgr *qm)
{
    while (qm->ready_head && qm->in_flight < MAX_IN_FLIGHT && !qm->stopping) {
        struct qentry *e = qm->ready_head;
        qm->ready_head = e->next_ready;
        if (!qm->ready_head)
            qm->ready_tail = NULL;
        e->ready = false;
        entry_attempt(e);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct queue_mgr *qm = arg;
    (void)fd;
    (void)what;
    double now = core_now();
    for (size_t i = 0; i < qm->nall; i++) {
        struct qentry *e = qm->all[i];
        if (!e->in_flight && !e->ready && e->next_attempt <= now)
            ready_push(qm, e);
    }
    run_ready(qm);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct queue_mgr *qm = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&qm->lock);
    struct queue_envelope **in = qm->incoming;
    size_t n = qm->nincoming;
    qm->incoming = NULL;
    qm->nincoming = qm->capincoming = 0;
    pthread_mutex_unlock(&qm->lock);
    for (size_t i = 0; i < n; i++)
        entry_index(qm, in[i], NULL, 0);
    free(in);
    run_ready(qm);
}

/* ---------------------------------------------------------------- control socket */
static json_t *entry_json(const struct qentry *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(e->env->qid));
    json_object_set_new(o, "arrival", json_real(e->env->arrival));
    json_object_set_new(o, "sender", json_string(e->env->sender));
    json_object_set_new(o, "size", json_integer((json_int_t)e->env->data_len));
    json_object_set_new(o, "attempts", json_integer(e->attempts));
    json_object_set_new(o, "next_attempt", json_real(e->next_attempt));
    json_object_set_new(o, "in_flight", json_boolean(e->in_flight));
    json_t *rs = json_array();
    for (size_t i = 0; i < e->env->nrcpts; i++) {
        json_t *r = json_object();
        json_object_set_new(r, "address", json_string(e->env->rcpts[i]));
        json_object_set_new(r, "status", json_string(e->r[i].state == R_PENDING     ? "pending"
                                                     : e->r[i].state == R_DELIVERED ? "delivered"
                                                     : e->r[i].state == R_HELD      ? "held by policy"
                                                                                    : "bounced"));
        json_object_set_new(r, "last_reply", json_string(e->r[i].last_reply));
        json_array_append_new(rs, r);
    }
    json_object_set_new(o, "recipients", rs);
    return o;
}

/* ctl_pickup - index a message another process committed into queue/
 * (queue_ctl_inject); idempotent */
static void ctl_pickup(struct queue_mgr *qm, const char *qid, json_t *res)
{
    char path[1200], err[256];
    if (!core_qid_valid(qid)) {
        json_object_set_new(res, "error", json_string("not a queue ID"));
        return;
    }
    for (size_t i = 0; i < qm->nall; i++) {
        if (strcmp(qm->all[i]->env->qid, qid) == 0) {
            json_object_set_new(res, "picked_up", json_string(qid));
            return;
        }
    }
    snprintf(path, sizeof path, "%s/%s", spool_queue_dir(qm->sp), qid);
    struct queue_envelope *env = xcalloc(1, sizeof *env);
    if (spool_read_envelope(path, env, err, sizeof err) < 0 || strcmp(env->qid, qid) != 0) {
        queue_envelope_free(env);
        free(env);
        json_object_set_new(res, "error", json_string("no such message in the spool"));
        return;
    }
    size_t nrcpts = env->nrcpts;
    entry_index(qm, env, NULL, 0);
    run_ready(qm);
    (void)nrcpts;
    log_info("queue picked up qid=%s nrcpt=%zu", qid, nrcpts);
    json_object_set_new(res, "picked_up", json_string(qid));
}

static json_t *ctl_command(struct queue_mgr *qm, const char *cmd)
{
    json_t *res = json_object();
    if (strcmp(cmd, "LIST") == 0) {
        json_t *a = json_array();
        for (size_t i = 0; i < qm->nall; i++)
            json_array_append_new(a, entry_json(qm->all[i]));
        json_object_set_new(res, "queue", a);
    } else if (strcmp(cmd, "FLUSH") == 0) {
        size_t n = 0;
        for (size_t i = 0; i < qm->nall; i++) {
            struct qentry *e = qm->all[i];
            if (!e->in_flight) {
                e->next_attempt = 0;
                ready_push(qm, e);
                n++;
            }
        }
        run_ready(qm);
        json_object_set_new(res, "flushed", json_integer((json_int_t)n));
    } else if (strncmp(cmd, "DELETE ", 7) == 0) {
        const char *qid = cmd + 7;
        struct qentry *e = NULL;
        for (size_t i = 0; i < qm->nall && !e; i++)
            if (strcmp(qm->all[i]->env->qid, qid) == 0)
                e = qm->all[i];
        if (!e) {
            json_object_set_new(res, "error", json_string("no such message in the queue"));
        } else if (e->in_flight) {
            e->deleted = true; /* removed when the attempt ends */
            json_object_set_new(res, "deleted", json_string(qid));
        } else {
            for (size_t i = 0; i < e->env->nrcpts; i++)
                if (e->r[i].state == R_PENDING)
                    track_rcpt(qm, e, i, "deleted", NULL, NULL, "deleted by the administrator");
            log_info("queue deleted qid=%s", qid);
            entry_remove(qm, e);
            json_object_set_new(res, "deleted", json_string(qid));
        }
    } else if (strncmp(cmd, "PICKUP ", 7) == 0) {
        ctl_pickup(qm, cmd + 7, res);
    } else {
        json_object_set_new(res, "error", json_string("unknown command"));
    }
    return res;
}

static void ctl_read(struct bufferevent *bev, void *arg)
{
    struct queue_mgr *qm = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n;
    char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
    if (!line) {
        if (evbuffer_get_length(in) > CTL_LINE_MAX)
            bufferevent_free(bev);
        return;
    }
    json_t *res = n <= CTL_LINE_MAX ? ctl_command(qm, line) : json_pack("{s:s}", "error", "line too long");
    free(line);
    char *text = json_dumps(res, JSON_COMPACT);
    json_decref(res);
    bufferevent_write(bev, text, strlen(text));
    bufferevent_write(bev, "\n", 1);
    free(text);
    bufferevent_disable(bev, EV_READ);
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
}

static void ctl_written(struct bufferevent *bev, void *arg)
{
    (void)arg;
    if (!(bufferevent_get_enabled(bev) & EV_READ))
        bufferevent_free(bev);
}

static void ctl_event(struct bufferevent *bev, short what, void *arg)
{
    (void)what;
    (void)arg;
    bufferevent_free(bev);
}

static void ctl_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    struct queue_mgr *qm = arg;
    struct bufferevent *bev = bufferevent_socket_new(qm->base, fd, BEV_OPT_CLOSE_ON_FREE);
    struct timeval tv = {10, 0};
    bufferevent_set_timeouts(bev, &tv, &tv);
    bufferevent_setcb(bev, ctl_read, ctl_written, ctl_event, qm);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static int ctl_listen(struct queue_mgr *qm)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    snprintf(qm->ctl_path, sizeof qm->ctl_path, "%s/moatd.sock", qm->cfg->data_dir);
    if (strlen(qm->ctl_path) >= sizeof sun.sun_path) {
        log_warn("queue control socket path too long path=%s", qm->ctl_path);
        return -1;
    }
    core_strlcpy(sun.sun_path, qm->ctl_path, sizeof sun.sun_path);
    unlink(qm->ctl_path);
    mode_t old = umask(077);
    qm->ctl = evconnlistener_new_bind(qm->base, ctl_accept, qm, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
                                      (struct sockaddr *)&sun, sizeof sun);
    umask(old);
    if (!qm->ctl) {
        log_warn("queue control socket unavailable path=%s error=\"%s\"", qm->ctl_path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- lifecycle */
struct queue_mgr *queue_mgr_new(const struct moat_config *cfg, struct spool *sp, struct tracker *tr,
                                SSL_CTX *client_ctx)
{
    struct queue_mgr *qm = xcalloc(1, sizeof *qm);
    qm->cfg = cfg;
    qm->sp = sp;
    qm->tr = tr;
    qm->client_ctx = client_ctx;
    pthread_mutex_init(&qm->lock, NULL);
    qm->base = event_base_new();
    if (!qm->base)
        fatal("queue: event_base_new failed");
    qm->dc = deliver_client_new(qm->base, cfg, client_ctx);
    qm->plan_ctx.cfg = cfg;
    qm->plan_ctx.sp = sp;
    qm->plan_ctx.tracker = tr;
    qm->plan_ctx.inject = plan_inject;
    qm->plan_ctx.inject_arg = qm;
    qm->tick = event_new(qm->base, -1, EV_PERSIST, on_tick, qm);
    qm->wake = event_new(qm->base, -1, 0, on_wake, qm);
    return qm;
}

/* recover - rebuild the index from the spool; discard unacknowledged files */
static void recover(struct queue_mgr *qm)
{
    char dir[1100], path[1300], err[256];
    snprintf(dir, sizeof dir, "%s/spool/incoming", qm->cfg->data_dir);
    DIR *d = opendir(dir);
    size_t dropped = 0, loaded = 0, corrupt = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (unlink(path) == 0)
            dropped++;
    }
    if (d)
        closedir(d);
    d = opendir(spool_queue_dir(qm->sp));
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", spool_queue_dir(qm->sp), de->d_name);
        const char *dot = strchr(de->d_name, '.');
        if (dot && (size_t)(dot - de->d_name) == CORE_QID_LEN && dot[1] == 'v') {
            /* a rewritten copy: kept while its message is queued */
            char main_path[1300];
            snprintf(main_path, sizeof main_path, "%s/%.*s", spool_queue_dir(qm->sp), CORE_QID_LEN, de->d_name);
            if (access(main_path, F_OK) < 0 && errno == ENOENT)
                unlink(path);
            continue;
        }
        struct queue_envelope *env = xcalloc(1, sizeof *env);
        if (!core_qid_valid(de->d_name) || spool_read_envelope(path, env, err, sizeof err) < 0 ||
            strcmp(env->qid, de->d_name) != 0) {
            char dst[1300];
            snprintf(dst, sizeof dst, "%s/spool/corrupt/%s", qm->cfg->data_dir, de->d_name);
            rename(path, dst);
            log_error("queue corrupt spool file moved path=%s reason=\"%s\"", dst, err);
            free(env);
            corrupt++;
            continue;
        }
        bool *done = xcalloc(env->nrcpts, sizeof *done);
        unsigned attempts = 0;
        spool_status_load(spool_status_dir(qm->sp), env->qid, done, env->nrcpts, &attempts);
        entry_index(qm, env, done, attempts);
        free(done);
        loaded++;
    }
    if (d)
        closedir(d);
    log_info("queue recovered messages=%zu discarded_unacknowledged=%zu corrupt=%zu", loaded, dropped, corrupt);
}

static void *queue_thread(void *arg)
{
    struct queue_mgr *qm = arg;
    event_base_loop(qm->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

int queue_mgr_start(struct queue_mgr *qm)
{
    recover(qm);
    ctl_listen(qm);
    struct timeval one = {1, 0};
    event_add(qm->tick, &one);
    event_active(qm->wake, 0, 0);
    if (pthread_create(&qm->thread, NULL, queue_thread, qm) != 0)
        return -1;
    qm->running = true;
    return 0;
}

void queue_mgr_set_domains(struct queue_mgr *qm, struct domain_map *map)
{
    if (map)
        domain_map_ref(map);
    pthread_mutex_lock(&qm->lock);
    struct domain_map *old = qm->map;
    qm->map = map;
    pthread_mutex_unlock(&qm->lock);
    if (old)
        domain_map_unref(old);
}

void queue_mgr_submit(struct queue_mgr *qm, const struct queue_envelope *env)
{
    struct queue_envelope *copy = queue_envelope_dup(env);
    pthread_mutex_lock(&qm->lock);
    if (qm->nincoming == qm->capincoming) {
        qm->capincoming = qm->capincoming ? qm->capincoming * 2 : 64;
        qm->incoming = xrealloc(qm->incoming, qm->capincoming * sizeof *qm->incoming);
    }
    qm->incoming[qm->nincoming++] = copy;
    pthread_mutex_unlock(&qm->lock);
    event_active(qm->wake, 0, 0);
}

int queue_mgr_inject(struct queue_mgr *qm, const char *data, size_t len, struct queue_envelope *env)
{
    if (!core_qid_valid(env->qid) || env->nrcpts == 0)
        return -1;
    if (spool_commit_sync(qm->sp, data, len, env) < 0)
        return -1;
    queue_mgr_submit(qm, env);
    return 0;
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct queue_mgr *qm = arg;
    (void)fd;
    (void)what;
    qm->stopping = true;
    /* in-flight attempts end as deferred; their callbacks run inside */
    deliver_client_free(qm->dc);
    qm->dc = NULL;
    event_base_loopexit(qm->base, NULL);
}

void queue_mgr_stop(struct queue_mgr *qm)
{
    if (!qm->running)
        return;
    struct timeval zero = {0, 0};
    event_base_once(qm->base, -1, EV_TIMEOUT, stop_cb, qm, &zero);
    pthread_join(qm->thread, NULL);
    qm->running = false;
}

void queue_mgr_free(struct queue_mgr *qm)
{
    if (!qm)
        return;
    if (qm->dc)
        deliver_client_free(qm->dc);
    if (qm->ctl) {
        evconnlistener_free(qm->ctl);
        unlink(qm->ctl_path);
    }
    for (size_t i = 0; i < qm->nall; i++)
        entry_free(qm->all[i]);
    free(qm->all);
    queue_plan_ctx_close(&qm->plan_ctx);
    for (size_t i = 0; i < qm->nincoming; i++) {
        queue_envelope_free(qm->incoming[i]);
        free(qm->incoming[i]);
    }
    free(qm->incoming);
    if (qm->map)
        domain_map_unref(qm->map);
    event_free(qm->tick);
    event_free(qm->wake);
    event_base_free(qm->base);
    pthread_mutex_destroy(&qm->lock);
    free(qm);
}
