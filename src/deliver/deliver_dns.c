/*
 * deliver_dns.c - MX and address lookups for the delivery client, on the
 * client's own event loop through the c-ares resolver (src/dns).
 *
 *   dns_job_new / dns_job_free    a lookup request and its result
 *   dns_job_start                 start it on a resolver; job->done(job)
 *                                 runs on the loop when it is answered
 *   dns_job_abandon               give up a started job (shutdown): it is
 *                                 freed when the resolver answers or is freed
 *
 * MX: the MX records of the domain (dns_server when configured, else the
 * system's resolvers), hosts checked and lower-cased by dns_answer_parse;
 * "MX 0 ." alone is the RFC 7505 null MX. Addresses: with dns_server set, A
 * and AAAA queries at once; otherwise c-ares' getaddrinfo (/etc/hosts, then
 * DNS), as the system resolver would. Temporary failures (SERVFAIL, timeout)
 * stay apart from NXDOMAIN and "no such record" so delivery retries rather
 * than bounces.
 *
 * Limits: DELIVER_MX_MAX MX hosts (lowest preferences kept),
 * DELIVER_ADDR_MAX addresses per host; resolver timeout dns_timeout_ms x
 * dns_tries per server.
 */
#include "core/core.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "deliver/deliver_int.h"

struct dns_job *dns_job_new(enum dns_job_kind kind, const char *name, uint16_t port, void (*done)(struct dns_job *))
{
    struct dns_job *job = xcalloc(1, sizeof *job);
    job->kind = kind;
    core_strlcpy(job->name, name, sizeof job->name);
    job->port = port;
    job->done = done;
    return job;
}

void dns_job_free(struct dns_job *job)
{
    free(job);
}

/* finish - one more answer came; when the last one is in, hand the job over */
static void finish(struct dns_job *job)
{
    if (--job->waiting > 0)
        return;
    if (job->abandoned) {
        dns_job_free(job);
        return;
    }
    job->done(job);
}

static void mx_cb(const struct dns_answer *a, void *arg)
{
    struct dns_job *job = arg;
    switch (a->result) {
    case DNS_RESULT_OK:
        if (a->nmx == 0 && a->null_mx) {
            job->status = DNS_NULLMX;
            snprintf(job->err, sizeof job->err, "Domain %s does not accept mail (null MX)", job->name);
            break;
        }
        /* the DELIVER_MX_MAX lowest preferences */
        struct dns_mx mx[DNS_RECORDS_MAX];
        size_t n = a->nmx;
        memcpy(mx, a->mx, n * sizeof mx[0]);
        dns_mx_sort(mx, n, NULL);
        for (size_t i = 0; i < n && job->nmx < DELIVER_MX_MAX; i++) {
            struct domain_server *s = &job->mx[job->nmx++];
            core_strlcpy(s->host, mx[i].host, sizeof s->host);
            s->port = job->port;
            s->preference = mx[i].preference;
        }
        job->status = DNS_OK;
        break;
    case DNS_RESULT_NXDOMAIN:
        job->status = DNS_NOTFOUND;
        snprintf(job->err, sizeof job->err, "Host or domain name not found (MX %s: NXDOMAIN)", job->name);
        break;
    case DNS_RESULT_NODATA:
        /* no MX (or only unusable ones): the domain itself, RFC 5321 5.1 */
        job->status = DNS_NODATA;
        snprintf(job->err, sizeof job->err, "no usable MX record for %s", job->name);
        break;
    default:
        job->status = DNS_TEMP;
        snprintf(job->err, sizeof job->err, "DNS lookup of MX %s failed (%s)", job->name, a->err);
        break;
    }
    finish(job);
}

/* add_addrs - the answer's addresses with the job's port */
static void add_addrs(struct dns_job *job, const struct dns_answer *a)
{
    for (size_t i = 0; i < a->naddr && job->naddr < DELIVER_ADDR_MAX; i++) {
        struct sockaddr_storage *ss = &job->addr[job->naddr];
        memcpy(ss, &a->addr[i], a->addrlen[i]);
        if (ss->ss_family == AF_INET)
            ((struct sockaddr_in *)ss)->sin_port = htons(job->port);
        else if (ss->ss_family == AF_INET6)
            ((struct sockaddr_in6 *)ss)->sin6_port = htons(job->port);
        else
            continue;
        bool dup = false;
        for (size_t k = 0; k < job->naddr && !dup; k++)
            dup = job->addrlen[k] == a->addrlen[i] && memcmp(&job->addr[k], ss, a->addrlen[i]) == 0;
        if (!dup)
            job->addrlen[job->naddr++] = a->addrlen[i];
    }
}

/* addr_cb - an A, AAAA or getaddrinfo answer; the job's status is decided
 * when the last one is in: any address wins, then a temporary failure,
 * then NXDOMAIN, then "no address" */
static void addr_cb(const struct dns_answer *a, void *arg)
{
    struct dns_job *job = arg;
    add_addrs(job, a);
    if (a->result == DNS_RESULT_TEMP) {
        job->any_temp = true;
        core_strlcpy(job->err, a->err, sizeof job->err);
    } else if (a->result == DNS_RESULT_NXDOMAIN) {
        job->any_nx = true;
    }
    if (job->waiting == 1) {
        if (job->naddr > 0) {
            job->status = DNS_OK;
            job->err[0] = '\0';
        } else if (job->any_temp) {
            job->status = DNS_TEMP;
            char e[sizeof job->err];
            core_strlcpy(e, job->err, sizeof e);
            snprintf(job->err, sizeof job->err, "DNS lookup of %s failed (%s)", job->name, e);
        } else {
            job->status = job->any_nx ? DNS_NOTFOUND : DNS_NODATA;
            snprintf(job->err, sizeof job->err, "Host or domain name not found (no address for %s)", job->name);
        }
    }
    finish(job);
}

int dns_job_start(struct dns_job *job, struct dns_resolver *r, bool system_addresses)
{
    job->status = DNS_TEMP;
    job->err[0] = '\0';
    if (job->kind == DNS_JOB_MX) {
        job->waiting = 1;
        return dns_lookup(r, job->name, DNS_T_MX, mx_cb, job);
    }
    if (system_addresses) {
        job->waiting = 1;
        return dns_lookup_host(r, job->name, addr_cb, job);
    }
    job->waiting = 2;
    if (dns_lookup(r, job->name, DNS_T_A, addr_cb, job) < 0)
        return -1;
    if (dns_lookup(r, job->name, DNS_T_AAAA, addr_cb, job) < 0) {
        /* the A answer still comes and finishes the job */
        job->any_temp = true;
        snprintf(job->err, sizeof job->err, "AAAA %s: too many lookups in flight", job->name);
        job->waiting--;
    }
    return 0;
}

void dns_job_abandon(struct dns_job *job)
{
    job->abandoned = true;
}
