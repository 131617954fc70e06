/*
 * deliver_int.h - internals shared by the files of deliver/: name
 * resolution on the client's loop (deliver_dns.c, over src/dns) for the
 * client (deliver_client.c). Not for use outside deliver/.
 */
#ifndef MOAT_DELIVER_INT_H
#define MOAT_DELIVER_INT_H

#include <stdbool.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "deliver/deliver.h"
#include "dns/dns.h"

#define DELIVER_MX_MAX 20  /* MX hosts used per domain (lowest preferences) */
#define DELIVER_ADDR_MAX 8 /* addresses tried per host */

enum dns_job_kind { DNS_JOB_MX, DNS_JOB_ADDR };

enum dns_status {
    DNS_OK = 0,
    DNS_TEMP,     /* SERVFAIL, timeout, unreachable resolver: try again later */
    DNS_NOTFOUND, /* NXDOMAIN */
    DNS_NODATA,   /* the name exists, no record of that type */
    DNS_NULLMX,   /* RFC 7505 "MX 0 ." */
};

/*
 * One lookup, on the client's loop through its c-ares resolver. The client
 * fills the input, calls dns_job_start, and gets done(job) on the loop once
 * every answer is in (never from inside dns_job_start); the client owns the
 * job again then. dns_job_abandon hands a started job to the resolver side,
 * which frees it when its answers arrive or the resolver is freed.
 */
struct dns_job {
    /* input */
    enum dns_job_kind kind;
    char name[256];
    uint16_t port; /* put into the returned addresses */
    void (*done)(struct dns_job *job);
    /* output */
    enum dns_status status;
    char err[512];
    struct domain_server mx[DELIVER_MX_MAX]; /* DNS_JOB_MX: by preference */
    size_t nmx;
    struct sockaddr_storage addr[DELIVER_ADDR_MAX];
    socklen_t addrlen[DELIVER_ADDR_MAX];
    size_t naddr;
    /* loop side */
    void *owner;
    TAILQ_ENTRY(dns_job) entry;
    /* in flight */
    int waiting;
    bool any_temp, any_nx;
    bool abandoned;
};

/* dns_job_new - a zeroed job (caller frees with dns_job_free) */
struct dns_job *dns_job_new(enum dns_job_kind kind, const char *name, uint16_t port, void (*done)(struct dns_job *));
void dns_job_free(struct dns_job *job);
/* dns_job_start - start the lookups on r (system_addresses: addresses
 * through getaddrinfo semantics, /etc/hosts first, for the system
 * resolver); 0, or -1 (nothing started: the job is still the caller's) */
int dns_job_start(struct dns_job *job, struct dns_resolver *r, bool system_addresses);
/* dns_job_abandon - the loop gives up a started job (shutdown) */
void dns_job_abandon(struct dns_job *job);

#endif
