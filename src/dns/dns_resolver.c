/*
 * dns_resolver.c - c-ares driven by a libevent loop: the resolver every
 * part of moatd uses for MX, TXT, A and AAAA (delivery, domain
 * verification) and moatctl uses on a private loop.
 *
 *   dns_resolver_new / _free   one c-ares channel per loop (one thread)
 *   dns_lookup                 one query; the callback runs on the loop
 *   dns_lookup_host            addresses as getaddrinfo finds them (/etc/hosts, DNS)
 *   dns_resolver_pending       lookups still waiting
 *
 * c-ares tells us (sock_state_cb) which sockets to watch; each gets a
 * libevent event that feeds ares_process_fd, and one timer follows
 * ares_timeout for retransmissions and timeouts (timeout_ms per try, tries
 * per server, then ARES_ETIMEOUT). No search list, no /etc/hosts: the name
 * is queried as given.
 *
 * Callbacks are never run from inside c-ares or dns_lookup: the c-ares
 * callback parses the answer (dns_answer_parse) into the query and
 * activates the query's own zero-delay event, from which the user's
 * callback runs. So a callback may start new lookups or free the resolver.
 *
 * Server: cfg->dns_server "host:port" ("localhost" means 127.0.0.1;
 * "[v6]:port" for IPv6; a bare address means port 53), else the servers of
 * /etc/resolv.conf.
 *
 * Limits: DNS_RECORDS_MAX records per answer, DNS_TXT_MAX bytes per TXT
 * record, DNS_RESOLVER_PENDING_MAX lookups in flight per resolver (beyond
 * that dns_lookup refuses: the callers retry later).
 */
#include "core/core.h"

#include <arpa/inet.h>
#include <ares.h>
#include <pthread.h>
#include <sys/queue.h>

#include "dns/dns.h"

#define DNS_RESOLVER_PENDING_MAX 10000

struct dns_sock {
    ares_socket_t fd;
    struct event *ev;
    short what;
    struct dns_resolver *r;
    LIST_ENTRY(dns_sock) entry;
};

struct dns_query {
    struct dns_resolver *r;
    dns_cb cb;
    void *arg;
    int type;
    char name[DNS_HOST_MAX + 1];
    struct dns_answer ans;
    bool answered;
    struct event *ev; /* runs the user's callback */
    TAILQ_ENTRY(dns_query) entry;
};

struct dns_resolver {
    struct event_base *base;
    ares_channel channel;
    struct event *timer;
    LIST_HEAD(, dns_sock) socks;
    TAILQ_HEAD(, dns_query) queries;
    size_t pending;
    bool destroying;
};

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_init_rc;

static void ares_global_init(void)
{
    ares_init_rc = ares_library_init(ARES_LIB_INIT_ALL);
}

/* timer_update - re-arm the timer from c-ares' next timeout */
static void timer_update(struct dns_resolver *r)
{
    if (r->destroying)
        return;
    struct timeval tv, *t = ares_timeout(r->channel, NULL, &tv);
    if (t)
        evtimer_add(r->timer, t);
    else
        evtimer_del(r->timer);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dns_resolver *r = arg;
    (void)fd;
    (void)what;
    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    timer_update(r);
}

static void sock_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dns_sock *s = arg;
    struct dns_resolver *r = s->r;
    ares_process_fd(r->channel, (what & EV_READ) ? (ares_socket_t)fd : ARES_SOCKET_BAD,
                    (what & EV_WRITE) ? (ares_socket_t)fd : ARES_SOCKET_BAD);
    timer_update(r);
}

/* sock_state - c-ares asks us to watch (or stop watching) a socket */
static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dns_resolver *r = data;
    struct dns_sock *s;
    LIST_FOREACH(s, &r->socks, entry)
    if (s->fd == fd)
        break;
    short what = (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    if (s && what == s->what)
        return;
    if (s) {
        event_free(s->ev);
        s->ev = NULL;
    }
    if (!what) {
        if (s) {
            LIST_REMOVE(s, entry);
            free(s);
        }
        return;
    }
    if (!s) {
        s = xcalloc(1, sizeof *s);
        s->fd = fd;
        s->r = r;
        LIST_INSERT_HEAD(&r->socks, s, entry);
    }
    s->what = what;
    s->ev = event_new(r->base, fd, (short)(what | EV_PERSIST), sock_cb, s);
    if (!s->ev)
        fatal("out of memory");
    event_add(s->ev, NULL);
}

/* deliver_cb - the zero-delay event: hand the answer to the user */
static void deliver_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dns_query *q = arg;
    struct dns_resolver *r = q->r;
    (void)fd;
    (void)what;
    TAILQ_REMOVE(&r->queries, q, entry);
    r->pending--;
    event_free(q->ev);
    q->cb(&q->ans, q->arg);
    dns_answer_clear(&q->ans);
    free(q);
}

static const char *type_name(int type)
{
    switch (type) {
    case DNS_T_A:
        return "A";
    case DNS_T_AAAA:
        return "AAAA";
    case DNS_T_MX:
        return "MX";
    case DNS_T_TXT:
        return "TXT";
    default:
        return "?";
    }
}

/* query_cb - c-ares finished a query (or gave up on it) */
static void query_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct dns_query *q = arg;
    (void)timeouts;
    struct dns_answer *a = &q->ans;
    if (status == ARES_SUCCESS && abuf && alen > 0) {
        dns_answer_parse(q->type, abuf, (size_t)alen, a);
    } else {
        dns_answer_clear(a);
        a->type = q->type;
        switch (status) {
        case ARES_ENOTFOUND:
            a->result = DNS_RESULT_NXDOMAIN;
            break;
        case ARES_ENODATA:
            a->result = DNS_RESULT_NODATA;
            break;
        default:
            a->result = DNS_RESULT_TEMP;
            break;
        }
    }
    if (a->result == DNS_RESULT_NXDOMAIN)
        snprintf(a->err, sizeof a->err, "%s %s: NXDOMAIN (the name does not exist)", type_name(q->type), q->name);
    else if (a->result == DNS_RESULT_NODATA && !a->err[0])
        snprintf(a->err, sizeof a->err, "%s %s: no such record", type_name(q->type), q->name);
    else if (a->result == DNS_RESULT_TEMP && status != ARES_SUCCESS)
        snprintf(a->err, sizeof a->err, "%s %s: temporary DNS failure (%s)", type_name(q->type), q->name,
                 status == ARES_EDESTRUCTION || status == ARES_ECANCELLED ? "cancelled" : ares_strerror(status));
    else if (a->result == DNS_RESULT_TEMP && !a->err[0])
        snprintf(a->err, sizeof a->err, "%s %s: malformed DNS answer", type_name(q->type), q->name);
    q->answered = true;
    if (!q->r->destroying)
        event_active(q->ev, EV_TIMEOUT, 1);
}

struct dns_resolver *dns_resolver_new(struct event_base *base, const char *server, unsigned timeout_ms,
                                      unsigned tries, char *err, size_t errsz)
{
    pthread_once(&ares_once, ares_global_init);
    if (ares_init_rc != ARES_SUCCESS) {
        snprintf(err, errsz, "c-ares initialisation failed: %s", ares_strerror(ares_init_rc));
        return NULL;
    }
    struct dns_resolver *r = xcalloc(1, sizeof *r);
    r->base = base;
    LIST_INIT(&r->socks);
    TAILQ_INIT(&r->queries);
    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
    o.timeout = (int)(timeout_ms ? timeout_ms : 3000);
    o.tries = (int)(tries ? tries : 2);
    o.sock_state_cb = sock_state;
    o.sock_state_cb_data = r;
    int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
    int rc = ares_init_options(&r->channel, &o, mask);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errsz, "c-ares: %s", ares_strerror(rc));
        free(r);
        return NULL;
    }
    if (server && server[0]) {
        char host[256], csv[300];
        uint16_t port = 53;
        struct in6_addr b6;
        struct in_addr b4;
        if (inet_pton(AF_INET, server, &b4) == 1 || inet_pton(AF_INET6, server, &b6) == 1) {
            core_strlcpy(host, server, sizeof host); /* a bare address: port 53 */
        } else if (core_parse_hostport(server, host, sizeof host, &port) < 0) {
            snprintf(err, errsz, "dns_server %s: expected host:port", server);
            goto fail;
        }
        if (strcasecmp(host, "localhost") == 0)
            core_strlcpy(host, "127.0.0.1", sizeof host);
        struct in6_addr a6;
        struct in_addr a4;
        if (inet_pton(AF_INET, host, &a4) == 1)
            snprintf(csv, sizeof csv, "%s:%u", host, (unsigned)port);
        else if (inet_pton(AF_INET6, host, &a6) == 1)
            snprintf(csv, sizeof csv, "[%s]:%u", host, (unsigned)port);
        else {
            snprintf(err, errsz, "dns_server %s: the host must be an IP address", server);
            goto fail;
        }
        rc = ares_set_servers_ports_csv(r->channel, csv);
        if (rc != ARES_SUCCESS) {
            snprintf(err, errsz, "dns_server %s: %s", server, ares_strerror(rc));
            goto fail;
        }
    }
    r->timer = evtimer_new(base, timer_cb, r);
    if (!r->timer)
        fatal("out of memory");
    return r;
fail:
    ares_destroy(r->channel);
    free(r);
    return NULL;
}

void dns_resolver_free(struct dns_resolver *r)
{
    if (!r)
        return;
    /* every unanswered query gets its callback from ares_destroy (cancelled) */
    r->destroying = true;
    ares_destroy(r->channel);
    struct dns_query *q;
    while ((q = TAILQ_FIRST(&r->queries))) {
        TAILQ_REMOVE(&r->queries, q, entry);
        event_free(q->ev);
        if (!q->answered) {
            dns_answer_clear(&q->ans);
            q->ans.type = q->type;
            q->ans.result = DNS_RESULT_TEMP;
            snprintf(q->ans.err, sizeof q->ans.err, "%s %s: lookup cancelled", type_name(q->type), q->name);
        }
        q->cb(&q->ans, q->arg);
        dns_answer_clear(&q->ans);
        free(q);
    }
    struct dns_sock *s;
    while ((s = LIST_FIRST(&r->socks))) {
        LIST_REMOVE(s, entry);
        if (s->ev)
            event_free(s->ev);
        free(s);
    }
    if (r->timer)
        event_free(r->timer);
    free(r);
}

int dns_lookup(struct dns_resolver *r, const char *name, int type, dns_cb cb, void *arg)
{
    size_t n = strlen(name);
    if (n == 0 || n > DNS_HOST_MAX - 1 || r->destroying || r->pending >= DNS_RESOLVER_PENDING_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] <= 0x20 || (unsigned char)name[i] >= 0x7f)
            return -1;
    if (type != DNS_T_A && type != DNS_T_AAAA && type != DNS_T_MX && type != DNS_T_TXT)
        return -1;
    struct dns_query *q = xcalloc(1, sizeof *q);
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    q->type = type;
    core_strlcpy(q->name, name, sizeof q->name);
    q->ev = event_new(r->base, -1, 0, deliver_cb, q);
    if (!q->ev)
        fatal("out of memory");
    TAILQ_INSERT_TAIL(&r->queries, q, entry);
    r->pending++;
    /* may call query_cb at once (e.g. no usable server): deferred by q->ev */
    ares_query(r->channel, name, 1 /* C_IN */, type, query_cb, q);
    timer_update(r);
    return 0;
}

/* host_cb - c-ares getaddrinfo finished */
static void host_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct dns_query *q = arg;
    struct dns_answer *a = &q->ans;
    (void)timeouts;
    dns_answer_clear(a);
    a->type = DNS_T_A;
    if (status == ARES_SUCCESS && res) {
        for (struct ares_addrinfo_node *n = res->nodes; n && a->naddr < DNS_RECORDS_MAX; n = n->ai_next) {
            if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) || !n->ai_addr ||
                n->ai_addrlen > sizeof a->addr[0])
                continue;
            memcpy(&a->addr[a->naddr], n->ai_addr, n->ai_addrlen);
            a->addrlen[a->naddr++] = (socklen_t)n->ai_addrlen;
        }
        a->result = a->naddr ? DNS_RESULT_OK : DNS_RESULT_NODATA;
    } else if (status == ARES_ENOTFOUND || status == ARES_ENONAME) {
        a->result = DNS_RESULT_NXDOMAIN;
    } else if (status == ARES_ENODATA) {
        a->result = DNS_RESULT_NODATA;
    } else {
        a->result = DNS_RESULT_TEMP;
    }
    if (res)
        ares_freeaddrinfo(res);
    if (a->result == DNS_RESULT_TEMP)
        snprintf(a->err, sizeof a->err, "host %s: temporary DNS failure (%s)", q->name,
                 status == ARES_EDESTRUCTION || status == ARES_ECANCELLED ? "cancelled" : ares_strerror(status));
    else if (a->result != DNS_RESULT_OK)
        snprintf(a->err, sizeof a->err, "host %s: no address", q->name);
    q->answered = true;
    if (!q->r->destroying)
        event_active(q->ev, EV_TIMEOUT, 1);
}

int dns_lookup_host(struct dns_resolver *r, const char *name, dns_cb cb, void *arg)
{
    size_t n = strlen(name);
    if (n == 0 || n > DNS_HOST_MAX - 1 || r->destroying || r->pending >= DNS_RESOLVER_PENDING_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] <= 0x20 || (unsigned char)name[i] >= 0x7f)
            return -1;
    struct dns_query *q = xcalloc(1, sizeof *q);
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    q->type = DNS_T_A;
    core_strlcpy(q->name, name, sizeof q->name);
    q->ev = event_new(r->base, -1, 0, deliver_cb, q);
    if (!q->ev)
        fatal("out of memory");
    TAILQ_INSERT_TAIL(&r->queries, q, entry);
    r->pending++;
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    ares_getaddrinfo(r->channel, name, NULL, &hints, host_cb, q);
    timer_update(r);
    return 0;
}

size_t dns_resolver_pending(const struct dns_resolver *r)
{
    return r->pending;
}
