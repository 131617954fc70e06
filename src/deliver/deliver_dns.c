/*
 * deliver_dns.c - MX and address lookups for the delivery client, in
 * helper threads so the event loop never blocks on DNS.
 *
 *   dns_job_new / dns_job_free    a lookup request and its result
 *   dns_job_start                 run it in a detached thread; the thread
 *                                 writes the job pointer to the client's pipe
 *   dns_job_abandon               give up a running job (shutdown)
 *   dns_job_run                   the lookup, synchronously
 *
 * MX: libresolv res_nquery + ns_initparse on a private resolver state, so
 * cfg->dns_server (an IPv4 "host:port", for tests a fake server on
 * 127.0.0.1) can be used without touching the process-wide resolver.
 * Addresses: with dns_server set, A and AAAA through the same resolver;
 * otherwise getaddrinfo (honours /etc/hosts and nsswitch).
 *
 * Limits: DELIVER_MX_MAX MX hosts (lowest preferences kept),
 * DELIVER_ADDR_MAX addresses per host, DNS answers up to 64 KB, resolver
 * timeout 3 s x 2 tries per server.
 *
 * Security: DNS data is untrusted: names are expanded with dn_expand
 * (bounded), lower-cased, checked to be LDH host names; anything else is
 * skipped.
 */
#include "core/core.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>

#include "deliver/deliver_int.h"

#define DNS_ANSWER_MAX 65536

struct dns_job *dns_job_new(enum dns_job_kind kind, const char *name, uint16_t port, const char *server,
                            int notify_fd)
{
    struct dns_job *job = xcalloc(1, sizeof *job);
    job->kind = kind;
    core_strlcpy(job->name, name, sizeof job->name);
    job->port = port;
    core_strlcpy(job->server, server ? server : "", sizeof job->server);
    job->notify_fd = notify_fd;
    pthread_mutex_init(&job->lock, NULL);
    return job;
}

void dns_job_free(struct dns_job *job)
{
    if (!job)
        return;
    pthread_mutex_destroy(&job->lock);
    free(job);
}

/* host_name_ok - a plausible LDH host name (the MX target must not be an
 * address literal or carry odd bytes into logs and SNI) */
static bool host_name_ok(const char *h)
{
    size_t n = strlen(h), label = 0;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = h[i];
        if (ch == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
            return false;
        if (++label > 63)
            return false;
    }
    return true;
}

/* resolver_open - a private resolver state, pointed at job->server when set */
static int resolver_open(struct dns_job *job, struct __res_state *st)
{
    memset(st, 0, sizeof *st);
    if (res_ninit(st) != 0) {
        snprintf(job->err, sizeof job->err, "resolver initialisation failed");
        return -1;
    }
    st->retrans = 3;
    st->retry = 2;
    st->options &= ~(unsigned long)(RES_DNSRCH | RES_DEFNAMES);
    if (job->server[0]) {
        char host[256];
        uint16_t port = 53;
        struct in_addr a;
        if (core_parse_hostport(job->server, host, sizeof host, &port) < 0)
            core_strlcpy(host, job->server, sizeof host);
        if (inet_pton(AF_INET, host, &a) != 1) {
            snprintf(job->err, sizeof job->err, "dns_server must be an IPv4 address:port");
            res_nclose(st);
            return -1;
        }
        memset(&st->nsaddr_list[0], 0, sizeof st->nsaddr_list[0]);
        st->nsaddr_list[0].sin_family = AF_INET;
        st->nsaddr_list[0].sin_addr = a;
        st->nsaddr_list[0].sin_port = htons(port);
        st->nscount = 1;
    }
    return 0;
}

/* query - res_nquery into ans; returns the answer length or -1 with
 * job->status / job->err set from the resolver's h_errno */
static int query(struct dns_job *job, struct __res_state *st, int type, unsigned char *ans)
{
    int n = res_nquery(st, job->name, ns_c_in, type, ans, DNS_ANSWER_MAX);
    const char *tname = type == ns_t_mx ? "MX" : type == ns_t_a ? "A" : "AAAA";
    if (n >= 0)
        return n > DNS_ANSWER_MAX ? DNS_ANSWER_MAX : n;
    switch (st->res_h_errno) {
    case HOST_NOT_FOUND:
        job->status = DNS_NOTFOUND;
        snprintf(job->err, sizeof job->err, "Host or domain name not found (%s %s: NXDOMAIN)", tname,
                 job->name);
        break;
    case NO_DATA:
        job->status = DNS_NODATA;
        snprintf(job->err, sizeof job->err, "no %s record for %s", tname, job->name);
        break;
    default:
        job->status = DNS_TEMP;
        snprintf(job->err, sizeof job->err, "DNS lookup of %s %s failed (%s)", tname, job->name,
                 st->res_h_errno == TRY_AGAIN ? "server failure or timeout" : "no recovery");
        break;
    }
    return -1;
}

/* parse_answers - walk the answer section; for MX fill job->mx, for A/AAAA
 * job->addr. Returns the number of records of type found, -1 if malformed. */
static int parse_answers(struct dns_job *job, const unsigned char *ans, int len, int type, bool *nullmx)
{
    ns_msg msg;
    ns_rr rr;
    int found = 0;
    if (ns_initparse(ans, len, &msg) < 0)
        return -1;
    int count = ns_msg_count(msg, ns_s_an);
    for (int i = 0; i < count; i++) {
        if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
            return -1;
        if ((int)ns_rr_type(rr) != type || ns_rr_class(rr) != ns_c_in)
            continue;
        const unsigned char *rd = ns_rr_rdata(rr);
        size_t rdlen = ns_rr_rdlen(rr);
        if (type == ns_t_mx) {
            char host[NS_MAXDNAME];
            if (rdlen < 3)
                continue;
            unsigned pref = ns_get16(rd);
            if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), rd + 2, host, sizeof host) < 0)
                continue;
            found++;
            size_t hl = strlen(host);
            if (hl > 0 && host[hl - 1] == '.')
                host[--hl] = '\0';
            if (hl == 0) {
                if (pref == 0)
                    *nullmx = true;
                continue;
            }
            for (size_t k = 0; k < hl; k++)
                if (host[k] >= 'A' && host[k] <= 'Z')
                    host[k] = (char)(host[k] - 'A' + 'a');
            if (!host_name_ok(host))
                continue;
            /* keep the DELIVER_MX_MAX best */
            size_t slot = job->nmx;
            if (job->nmx == DELIVER_MX_MAX) {
                size_t worst = 0;
                for (size_t k = 1; k < job->nmx; k++)
                    if (job->mx[k].preference > job->mx[worst].preference)
                        worst = k;
                if (job->mx[worst].preference <= pref)
                    continue;
                slot = worst;
            } else {
                job->nmx++;
            }
            core_strlcpy(job->mx[slot].host, host, sizeof job->mx[slot].host);
            job->mx[slot].port = job->port;
            job->mx[slot].preference = pref;
        } else {
            found++;
            if (job->naddr == DELIVER_ADDR_MAX)
                continue;
            struct sockaddr_storage *ss = &job->addr[job->naddr];
            memset(ss, 0, sizeof *ss);
            if (type == ns_t_a && rdlen == 4) {
                struct sockaddr_in *sin = (struct sockaddr_in *)ss;
                sin->sin_family = AF_INET;
                sin->sin_port = htons(job->port);
                memcpy(&sin->sin_addr, rd, 4);
                job->addrlen[job->naddr++] = sizeof *sin;
            } else if (type == ns_t_aaaa && rdlen == 16) {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons(job->port);
                memcpy(&sin6->sin6_addr, rd, 16);
                job->addrlen[job->naddr++] = sizeof *sin6;
            }
        }
    }
    return found;
}

/* lookup_mx - MX records of job->name */
static void lookup_mx(struct dns_job *job, unsigned char *ans)
{
    struct __res_state st;
    bool nullmx = false;
    if (resolver_open(job, &st) < 0) {
        job->status = DNS_TEMP;
        return;
    }
    int n = query(job, &st, ns_t_mx, ans);
    if (n >= 0) {
        int found = parse_answers(job, ans, n, ns_t_mx, &nullmx);
        if (found < 0) {
            job->status = DNS_TEMP;
            snprintf(job->err, sizeof job->err, "malformed DNS answer for MX %s", job->name);
        } else if (nullmx && job->nmx == 0) {
            job->status = DNS_NULLMX;
            snprintf(job->err, sizeof job->err, "Domain %s does not accept mail (null MX)", job->name);
        } else if (job->nmx == 0) {
            /* only CNAMEs or unusable targets: as if there were no MX */
            job->status = DNS_NODATA;
            snprintf(job->err, sizeof job->err, "no usable MX record for %s", job->name);
        } else {
            job->status = DNS_OK;
        }
    }
    res_nclose(&st);
}

/* lookup_addr_res - A and AAAA through the private resolver */
static void lookup_addr_res(struct dns_job *job, unsigned char *ans)
{
    struct __res_state st;
    bool unused = false;
    enum dns_status first = DNS_OK;
    char firsterr[sizeof job->err];
    if (resolver_open(job, &st) < 0) {
        job->status = DNS_TEMP;
        return;
    }
    static const int types[] = {ns_t_a, ns_t_aaaa};
    for (size_t t = 0; t < 2; t++) {
        job->status = DNS_OK;
        int n = query(job, &st, types[t], ans);
        if (n >= 0 && parse_answers(job, ans, n, types[t], &unused) < 0) {
            job->status = DNS_TEMP;
            snprintf(job->err, sizeof job->err, "malformed DNS answer for %s", job->name);
        }
        if (t == 0) {
            first = job->status;
            memcpy(firsterr, job->err, sizeof firsterr);
            if (first == DNS_NOTFOUND)
                break; /* NXDOMAIN: no AAAA either */
        }
    }
    res_nclose(&st);
    if (job->naddr > 0) {
        job->status = DNS_OK;
        job->err[0] = '\0';
    } else if (first == DNS_TEMP || job->status == DNS_TEMP) {
        job->status = DNS_TEMP;
        if (first == DNS_TEMP)
            memcpy(job->err, firsterr, sizeof job->err);
    } else {
        job->status = first == DNS_NOTFOUND ? DNS_NOTFOUND : DNS_NODATA;
        snprintf(job->err, sizeof job->err, "Host or domain name not found (no address for %s)", job->name);
    }
}

/* lookup_addr_gai - getaddrinfo (system resolver, /etc/hosts) */
static void lookup_addr_gai(struct dns_job *job)
{
    struct addrinfo hints, *res = NULL;
    char port[8];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port, sizeof port, "%u", (unsigned)job->port);
    int rc = getaddrinfo(job->name, port, &hints, &res);
    if (rc != 0) {
        job->status = (rc == EAI_NONAME || rc == EAI_NODATA) ? DNS_NOTFOUND : DNS_TEMP;
        snprintf(job->err, sizeof job->err, "%s: %s",
                 job->status == DNS_NOTFOUND ? "Host or domain name not found" : "address lookup failed",
                 gai_strerror(rc));
        return;
    }
    for (struct addrinfo *ai = res; ai && job->naddr < DELIVER_ADDR_MAX; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || ai->ai_addrlen > sizeof job->addr[0])
            continue;
        bool dup = false;
        for (size_t k = 0; k < job->naddr; k++)
            if (job->addrlen[k] == ai->ai_addrlen && memcmp(&job->addr[k], ai->ai_addr, ai->ai_addrlen) == 0)
                dup = true;
        if (dup)
            continue;
        memcpy(&job->addr[job->naddr], ai->ai_addr, ai->ai_addrlen);
        job->addrlen[job->naddr++] = (socklen_t)ai->ai_addrlen;
    }
    freeaddrinfo(res);
    job->status = job->naddr ? DNS_OK : DNS_NODATA;
    if (!job->naddr)
        snprintf(job->err, sizeof job->err, "Host or domain name not found (no address for %s)", job->name);
}

void dns_job_run(struct dns_job *job)
{
    job->status = DNS_TEMP;
    job->err[0] = '\0';
    if (job->kind == DNS_JOB_ADDR && !job->server[0]) {
        lookup_addr_gai(job);
        return;
    }
    unsigned char *ans = xmalloc(DNS_ANSWER_MAX);
    if (job->kind == DNS_JOB_MX)
        lookup_mx(job, ans);
    else
        lookup_addr_res(job, ans);
    free(ans);
}

/* dns_thread - run the job, then hand it back through the pipe (or free it
 * when the loop has abandoned it) */
static void *dns_thread(void *arg)
{
    struct dns_job *job = arg;
    dns_job_run(job);
    pthread_mutex_lock(&job->lock);
    if (job->abandoned) {
        pthread_mutex_unlock(&job->lock);
        dns_job_free(job);
        return NULL;
    }
    job->done = true;
    ssize_t w;
    do
        w = write(job->notify_fd, &job, sizeof job);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)sizeof job)
        log_error("deliver dns notify write failed errno=%d", errno);
    pthread_mutex_unlock(&job->lock);
    return NULL;
}

int dns_job_start(struct dns_job *job)
{
    pthread_t t;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return -1;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int rc = pthread_create(&t, &attr, dns_thread, job);
    pthread_attr_destroy(&attr);
    return rc == 0 ? 0 : -1;
}

void dns_job_abandon(struct dns_job *job)
{
    pthread_mutex_lock(&job->lock);
    if (job->done) {
        /* the pointer sits unread in the pipe, which the caller closes */
        pthread_mutex_unlock(&job->lock);
        dns_job_free(job);
        return;
    }
    job->abandoned = true;
    pthread_mutex_unlock(&job->lock);
}
