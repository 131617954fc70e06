/*
 * deliver_int.h - internals shared by the files of deliver/: name
 * resolution in helper threads (deliver_dns.c) for the client
 * (deliver_client.c). Not for use outside deliver/.
 */
#ifndef MOAT_DELIVER_INT_H
#define MOAT_DELIVER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "deliver/deliver.h"

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
 * One lookup, run in a detached helper thread. The loop side fills the
 * input, calls dns_job_start, and later reads the job pointer from the
 * client's notification pipe. Ownership: the loop owns the job until
 * dns_job_start; then the thread holds it until it has written the pointer
 * (done) - after that the loop owns it again. dns_job_abandon hands a job
 * that the loop no longer wants to whichever side finishes last.
 */
struct dns_job {
    /* input */
    enum dns_job_kind kind;
    char name[256];
    uint16_t port;    /* put into the returned addresses */
    char server[300]; /* cfg->dns_server ("host:port") or "" */
    int notify_fd;    /* write end of the client's pipe */
    /* output */
    enum dns_status status;
    char err[512];
    struct domain_server mx[DELIVER_MX_MAX]; /* DNS_JOB_MX: unordered */
    size_t nmx;
    struct sockaddr_storage addr[DELIVER_ADDR_MAX];
    socklen_t addrlen[DELIVER_ADDR_MAX];
    size_t naddr;
    /* loop side */
    void *owner;
    TAILQ_ENTRY(dns_job) entry;
    /* hand-over */
    pthread_mutex_t lock;
    bool done, abandoned;
};

/* dns_job_new - a zeroed job (caller frees with dns_job_free) */
struct dns_job *dns_job_new(enum dns_job_kind kind, const char *name, uint16_t port, const char *server,
                            int notify_fd);
void dns_job_free(struct dns_job *job);
/* dns_job_start - run the lookup in a new detached thread; -1 if no thread
 * could be created (the job is still the caller's) */
int dns_job_start(struct dns_job *job);
/* dns_job_abandon - the loop gives up a started job (shutdown) */
void dns_job_abandon(struct dns_job *job);
/* dns_job_run - the lookup itself, synchronously (used by the thread) */
void dns_job_run(struct dns_job *job);

#endif
