/*
 * smtp_server.c - listeners, event-loop threads and connection limits of
 * the inbound SMTP server (see smtp.h).
 *
 * Each loop thread binds its own SO_REUSEPORT listener for every address in
 * smtp_listen, so the kernel spreads connections over the threads with no
 * shared accept lock. Connection counts (total and per client IP) are
 * shared: an atomic total and a small mutex-protected table. The routing
 * snapshot (domain_map) is swapped under the same mutex and handed out by
 * reference, so a reload never blocks a session.
 */
#include "core/core.h"
#include "smtp/smtp_int.h"
#include "policy/policy.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>


struct ip_count {
    char ip[INET6_ADDRSTRLEN];
    uint32_t n;
    bool used;
};

static uint64_t ip_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* ipc_slot - the slot of ip (existing or free); the table is never full
 * because it has twice as many slots as the connection limit */
static struct ip_count *ipc_slot(struct smtp_server *srv, const char *ip)
{
    size_t j = ip_hash(ip) & (srv->ipc_cap - 1);
    struct ip_count *tomb = NULL;
    for (size_t k = 0; k < srv->ipc_cap; k++, j = (j + 1) & (srv->ipc_cap - 1)) {
        struct ip_count *e = &srv->ipc[j];
        if (e->used && strcmp(e->ip, ip) == 0)
            return e;
        if (!e->used && e->n == 0 && e->ip[0] == '\0')
            return tomb ? tomb : e;
        if (!e->used && !tomb)
            tomb = e;
    }
    return tomb;
}

bool smtp_server_conn_open(struct smtp_server *srv, const char *ip, char *reply, size_t replysz)
{
    size_t total = atomic_fetch_add(&srv->connections, 1) + 1;
    if (total > srv->cfg->smtp_max_connections) {
        atomic_fetch_sub(&srv->connections, 1);
        snprintf(reply, replysz, "421 4.3.2 Too many connections, try again later\r\n");
        return false;
    }
    pthread_mutex_lock(&srv->lock);
    struct ip_count *e = ipc_slot(srv, ip);
    if (!e || (e->used && e->n >= srv->cfg->smtp_max_connections_per_ip)) {
        pthread_mutex_unlock(&srv->lock);
        atomic_fetch_sub(&srv->connections, 1);
        snprintf(reply, replysz, "421 4.7.0 Too many connections from your address, try again later\r\n");
        return false;
    }
    if (!e->used) {
        e->used = true;
        e->n = 0;
        core_strlcpy(e->ip, ip, sizeof e->ip);
    }
    e->n++;
    pthread_mutex_unlock(&srv->lock);
    return true;
}

void smtp_server_conn_close(struct smtp_server *srv, const char *ip)
{
    pthread_mutex_lock(&srv->lock);
    struct ip_count *e = ipc_slot(srv, ip);
    if (e && e->used && --e->n == 0)
        e->used = false; /* stays a tombstone (ip kept) for probing */
    pthread_mutex_unlock(&srv->lock);
    atomic_fetch_sub(&srv->connections, 1);
}

struct domain_map *smtp_server_domains(struct smtp_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    struct domain_map *m = srv->map;
    if (m)
        domain_map_ref(m);
    pthread_mutex_unlock(&srv->lock);
    return m;
}

void smtp_server_set_domains(struct smtp_server *srv, struct domain_map *map)
{
    if (map)
        domain_map_ref(map);
    pthread_mutex_lock(&srv->lock);
    struct domain_map *old = srv->map;
    srv->map = map;
    pthread_mutex_unlock(&srv->lock);
    if (old)
        domain_map_unref(old);
}

struct policy_table *smtp_server_policies(struct smtp_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    struct policy_table *t = policy_table_ref(srv->policies);
    pthread_mutex_unlock(&srv->lock);
    return t;
}

void smtp_server_set_policies(struct smtp_server *srv, struct policy_table *t)
{
    policy_table_ref(t);
    pthread_mutex_lock(&srv->lock);
    struct policy_table *old = srv->policies;
    srv->policies = t;
    pthread_mutex_unlock(&srv->lock);
    policy_table_unref(old);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    smtp_session_start(arg, fd, sa, salen);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    int e = EVUTIL_SOCKET_ERROR();
    log_warn("smtp accept failed error=\"%s\"", evutil_socket_error_to_string(e));
}

struct smtp_server *smtp_server_new(const struct smtp_server_deps *deps, char *err, size_t errsz)
{
    /* the caller has called evthread_use_pthreads() before creating any base */
    struct smtp_server *srv = xcalloc(1, sizeof *srv);
    srv->d = *deps;
    srv->cfg = deps->cfg;
    pthread_mutex_init(&srv->lock, NULL);
    size_t cap = 64;
    while (cap < srv->cfg->smtp_max_connections * 2)
        cap *= 2;
    srv->ipc_cap = cap;
    srv->ipc = xcalloc(cap, sizeof *srv->ipc);
    srv->ratelimit = ratelimit_memory_new(200000);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    srv->nloops = srv->cfg->smtp_threads ? (unsigned)srv->cfg->smtp_threads : (unsigned)(ncpu > 0 ? ncpu : 1);
    srv->loops = xcalloc(srv->nloops, sizeof *srv->loops);
    return srv;
}

/* port_taken - true when another socket is bound to the address (a bind
 * without SO_REUSEPORT fails with EADDRINUSE) */
static bool port_taken(const struct sockaddr *sa, int salen)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        return false;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    bool taken = bind(fd, sa, (socklen_t)salen) < 0 && errno == EADDRINUSE;
    close(fd);
    return taken;
}

/* bind_listeners - one listener per address in smtp_listen on this loop */
static int bind_listeners(struct smtp_loop *lp, char *err, size_t errsz)
{
    char list[1100];
    core_strlcpy(list, lp->srv->cfg->smtp_listen, sizeof list);
    char *save = NULL;
    for (char *item = strtok_r(list, ", ", &save); item; item = strtok_r(NULL, ", ", &save)) {
        char host[256];
        uint16_t port;
        struct sockaddr_storage ss;
        int sslen = sizeof ss;
        char spec[300];
        if (core_parse_hostport(item, host, sizeof host, &port) < 0) {
            snprintf(err, errsz, "smtp_listen: bad address '%s'", item);
            return -1;
        }
        snprintf(spec, sizeof spec, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
        memset(&ss, 0, sizeof ss);
        if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen) < 0) {
            snprintf(err, errsz, "smtp_listen: '%s' is not an IP address and port", item);
            return -1;
        }
        /* SO_REUSEPORT would let a second moatd (or any process of this
         * user) share the port and take part of the connections: the first
         * loop first checks that nobody else is bound there */
        if (lp->index == 0 && port_taken((struct sockaddr *)&ss, sslen)) {
            snprintf(err, errsz, "cannot listen on %s: address already in use", item);
            return -1;
        }
        struct evconnlistener *l = evconnlistener_new_bind(
            lp->base, on_accept, lp,
            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT, 1024,
            (struct sockaddr *)&ss, sslen);
        if (!l) {
            snprintf(err, errsz, "cannot listen on %s: %s", item, strerror(errno));
            return -1;
        }
        evconnlistener_set_error_cb(l, on_accept_error);
        lp->listeners = xrealloc(lp->listeners, (lp->nlisteners + 1) * sizeof *lp->listeners);
        lp->listeners[lp->nlisteners++] = l;
    }
    if (lp->nlisteners == 0) {
        snprintf(err, errsz, "smtp_listen: no address");
        return -1;
    }
    return 0;
}

static void *loop_thread(void *arg)
{
    struct smtp_loop *lp = arg;
    event_base_loop(lp->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

int smtp_server_start(struct smtp_server *srv, char *err, size_t errsz)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned workers = srv->cfg->scan_workers ? (unsigned)srv->cfg->scan_workers
                                              : (unsigned)(2 * (ncpu > 0 ? ncpu : 1));
    /* engines loaded once, shared by all workers; without it each worker
     * loads its own (slower, more memory, but still correct) */
    srv->zygote = scan_zygote_start(srv->d.exe, srv->d.config_path);
    for (unsigned i = 0; i < srv->nloops; i++) {
        struct smtp_loop *lp = &srv->loops[i];
        lp->srv = srv;
        lp->index = i;
        lp->base = event_base_new();
        if (!lp->base) {
            snprintf(err, errsz, "event_base_new failed");
            return -1;
        }
        if (bind_listeners(lp, err, errsz) < 0)
            return -1;
        struct scan_pool_opts o = {
            .zygote = srv->zygote,
            .exe = srv->d.exe,
            .config_path = srv->d.config_path,
            .workers = workers / srv->nloops + (i < workers % srv->nloops ? 1 : 0),
            .timeout = (unsigned)srv->cfg->scan_timeout,
            .max_backlog = 4096,
        };
        lp->scan = scan_pool_new(lp->base, &o);
    }
    for (unsigned i = 0; i < srv->nloops; i++)
        if (pthread_create(&srv->loops[i].thread, NULL, loop_thread, &srv->loops[i]) != 0)
            fatal("cannot start smtp thread");
    log_info("smtp listening on %s threads=%u scan_workers=%u", srv->cfg->smtp_listen, srv->nloops, workers);
    return 0;
}

/* shutdown_tick - on the loop: close idle sessions, exit when none remain
 * (or force after 10 seconds) */
static void shutdown_tick(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_loop *lp = arg;
    (void)fd;
    (void)what;
    if (!lp->shutting_down) {
        lp->shutting_down = true;
        lp->shutdown_started = core_monotonic();
        for (size_t i = 0; i < lp->nlisteners; i++)
            evconnlistener_free(lp->listeners[i]);
        lp->nlisteners = 0;
    }
    bool force = core_monotonic() - lp->shutdown_started > 10;
    smtp_session_shutdown(lp, force);
    if (lp->nsessions == 0 || core_monotonic() - lp->shutdown_started > 12) {
        event_base_loopexit(lp->base, NULL);
        return;
    }
    struct timeval tv = {0, 100000};
    event_add(lp->shutdown_tick, &tv);
}

void smtp_server_stop(struct smtp_server *srv)
{
    for (unsigned i = 0; i < srv->nloops; i++) {
        struct smtp_loop *lp = &srv->loops[i];
        if (!lp->base)
            continue;
        lp->shutdown_tick = evtimer_new(lp->base, shutdown_tick, lp);
        struct timeval zero = {0, 0};
        event_add(lp->shutdown_tick, &zero);
    }
    for (unsigned i = 0; i < srv->nloops; i++)
        if (srv->loops[i].thread)
            pthread_join(srv->loops[i].thread, NULL);
}

void smtp_server_free(struct smtp_server *srv)
{
    if (!srv)
        return;
    for (unsigned i = 0; i < srv->nloops; i++) {
        struct smtp_loop *lp = &srv->loops[i];
        for (size_t k = 0; k < lp->nlisteners; k++)
            evconnlistener_free(lp->listeners[k]);
        free(lp->listeners);
        scan_pool_free(lp->scan);
        if (lp->shutdown_tick)
            event_free(lp->shutdown_tick);
        if (lp->base)
            event_base_free(lp->base);
    }
    free(srv->loops);
    scan_zygote_stop(srv->zygote);
    if (srv->map)
        domain_map_unref(srv->map);
    policy_table_unref(srv->policies);
    ratelimit_free(srv->ratelimit);
    free(srv->ipc);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}
