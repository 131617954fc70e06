/*
 * dns.h - asynchronous DNS (c-ares on a libevent loop) and domain ownership
 * verification.
 *
 *   dns_resolver_new / _free    a c-ares channel driven by an event_base,
 *                               pointed at cfg->dns_server or the system resolver
 *   dns_lookup                  one TXT, MX, A or AAAA query; the callback runs
 *                               once, on the loop, with a struct dns_answer
 *   dns_answer_parse            raw answer bytes -> struct dns_answer (pure)
 *   dns_verify_start            the ownership check of one domain (TXT token or
 *                               MX pointing at the tenant's MX host)
 *   dns_verify_sync             the same on a private loop (moatctl)
 *   dns_* pure helpers          back-off, tokens, MX host names, MX order,
 *                               (unit-tested)
 *
 * Results keep a temporary failure (SERVFAIL, timeout, refused, malformed
 * answer: try again later) apart from "not found" (NXDOMAIN) and "no data"
 * (the name exists without a record of that type): a verification never
 * succeeds or definitively fails on a temporary failure, and delivery
 * retries rather than bounces.
 */
#ifndef MOAT_DNS_H
#define MOAT_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "core/core.h"

#define DNS_T_A 1
#define DNS_T_MX 15
#define DNS_T_TXT 16
#define DNS_T_AAAA 28

#define DNS_RECORDS_MAX 64   /* records kept per answer (MX: the lowest preferences) */
#define DNS_TXT_MAX 4096     /* bytes of one TXT record (its strings joined) */
#define DNS_HOST_MAX 254     /* a host name plus NUL */

enum dns_result {
    DNS_RESULT_OK = 0,   /* at least one record of the type (MX: see null_mx) */
    DNS_RESULT_NXDOMAIN, /* the name does not exist */
    DNS_RESULT_NODATA,   /* the name exists, no record of the type */
    DNS_RESULT_TEMP,     /* SERVFAIL, timeout, refused, malformed: try again later */
};

struct dns_mx {
    char host[DNS_HOST_MAX]; /* lower-case, no trailing dot */
    uint16_t preference;
};

/* One answer. Owned by the resolver during the callback (copy what you keep). */
struct dns_answer {
    enum dns_result result;
    int type;
    char err[256];                /* human reason when not OK */
    struct dns_mx mx[DNS_RECORDS_MAX];
    size_t nmx;
    bool null_mx;                 /* RFC 7505 "MX 0 ." (and nothing usable besides) */
    char *txt[DNS_RECORDS_MAX];   /* each TXT record, strings joined, NUL-terminated */
    size_t ntxt;
    struct sockaddr_storage addr[DNS_RECORDS_MAX]; /* A / AAAA, port 0 */
    socklen_t addrlen[DNS_RECORDS_MAX];
    size_t naddr;
};
void dns_answer_clear(struct dns_answer *a);

/* dns_answer_parse - a raw DNS response (len bytes) for a query of type
 * into *out (cleared first; free with dns_answer_clear). Only records of
 * that type and class IN in the answer section count; MX hosts that are not
 * plausible host names are skipped. Returns out->result. Pure; fuzzed. */
enum dns_result dns_answer_parse(int type, const unsigned char *buf, size_t len, struct dns_answer *out);

struct dns_resolver;
typedef void (*dns_cb)(const struct dns_answer *ans, void *arg);

/* dns_resolver_new - a resolver on base. server: "host:port" (IPv4, [IPv6]
 * or host "localhost"), NULL/"" = the system's /etc/resolv.conf. timeout_ms
 * per try, tries per server. NULL with err. */
struct dns_resolver *dns_resolver_new(struct event_base *base, const char *server, unsigned timeout_ms,
                                      unsigned tries, char *err, size_t errsz);
/* dns_resolver_free - cancel every pending lookup (their callbacks run with
 * DNS_RESULT_TEMP "cancelled") and free */
void dns_resolver_free(struct dns_resolver *r);
/* dns_lookup - start one query for name (no search list; a trailing dot is
 * allowed). cb runs exactly once on the loop, never before dns_lookup
 * returns. 0, or -1 (bad name: cb is not called). */
int dns_lookup(struct dns_resolver *r, const char *name, int type, dns_cb cb, void *arg);
/* dns_lookup_host - the addresses of a host name as the system resolver
 * would find them (c-ares getaddrinfo: /etc/hosts, then DNS A and AAAA);
 * the answer's type is DNS_T_A, addrs of both families. 0 or -1. */
int dns_lookup_host(struct dns_resolver *r, const char *name, dns_cb cb, void *arg);
/* dns_resolver_pending - lookups not yet answered */
size_t dns_resolver_pending(const struct dns_resolver *r);

/* ---------------------------------------------------------------- verification */
enum dns_verify_outcome {
    DNS_VERIFY_OK = 0,   /* verified (method says how) */
    DNS_VERIFY_FAIL,     /* the records are definitively absent or wrong */
    DNS_VERIFY_TEMP,     /* a lookup failed temporarily: unknown, check again */
};

struct dns_verify_result {
    enum dns_verify_outcome outcome;
    const char *method;  /* "txt" / "mx" when OK, else NULL */
    char reason[512];    /* for logs, moatctl and the console */
};
typedef void (*dns_verify_cb)(const struct dns_verify_result *res, void *arg);

#define DNS_TOKEN_HEX 32 /* a verification token: 32 lower-case hex digits (128 bits) */
#define DNS_TXT_PREFIX "moat-verification="

/* dns_verify_start - look up the TXT and MX records of domain at once;
 * verified when a TXT record is exactly "moat-verification=<token>" or an MX
 * record points at mx_host. cb runs once on the loop. 0 or -1. */
int dns_verify_start(struct dns_resolver *r, const char *domain, const char *token, const char *mx_host,
                     dns_verify_cb cb, void *arg);
/* dns_verify_sync - the same on a private event loop (blocking; moatctl).
 * server/timeout as for dns_resolver_new. 0, or -1 when no resolver could
 * be made (res->reason says why). */
int dns_verify_sync(const char *server, unsigned timeout_ms, unsigned tries, const char *domain,
                    const char *token, const char *mx_host, struct dns_verify_result *res);

/* ---------------------------------------------------------------- checks (dns_check.c) */
/* What moatctl domain verify, moatd's periodic checker and the console do
 * with a verification result: record it in the store, log it, and queue
 * the activation or "record missing" mail through inject. */
struct store;
struct store_domain_claim;
struct queue_envelope;
/* inject - queue a generated message durably (queue_mgr_inject in moatd,
 * queue_ctl_inject in moatctl); 0 or -1 */
typedef int (*dns_inject_fn)(const char *data, size_t len, struct queue_envelope *env, void *arg);
struct dns_check_ctx {
    const struct moat_config *cfg;
    struct store *st;
    dns_inject_fn inject; /* NULL: no mail */
    void *inject_arg;
    const char *actor;    /* audit log: "moatd", "moatctl" */
};
/* dns_check_apply - record res for claim c (next check time from the
 * back-off), mail the tenant's address on a verification or a missing
 * record. *change and *first as store_domain_check_done. 0 or -1 (store error). */
int dns_check_apply(const struct dns_check_ctx *x, const struct store_domain_claim *c,
                    const struct dns_verify_result *res, int *change, bool *first);

/* dns_check_verify_now - "Verify" (moatctl domain verify, the console):
 * the claim of company_id on domain (company_id NULL: the only pending
 * claim, or the verified one), checked now on a private loop and applied
 * as dns_check_apply. Blocking (up to dns_tries x dns_timeout_ms x 2). 0
 * with *rep filled; 1 user error (rep->reason: not a domain of the tenant,
 * several tenants' claims); -1 internal error (rep->reason). */
struct dns_check_report {
    char company_id[64];
    char domain[256];
    bool verified;                /* the claim's state after the check */
    bool was_verified;            /* before it */
    int change;                   /* enum store_check_change */
    bool first;                   /* the tenant's default rules were activated */
    struct dns_verify_result res; /* the check itself */
    char reason[700];             /* for humans */
};
int dns_check_verify_now(const struct dns_check_ctx *x, const char *domain, const char *company_id,
                         struct dns_check_report *rep);

/* The periodic checker in moatd: its own thread, event loop, resolver and
 * store connection; every second it starts the checks that are due
 * (pending domains with back-off domain_check_min..domain_check_max,
 * DNS-verified ones every domain_recheck). */
struct dns_checker;
struct dns_checker *dns_checker_start(const struct moat_config *cfg, dns_inject_fn inject, void *inject_arg,
                                      char *err, size_t errsz);
void dns_checker_stop(struct dns_checker *c);

/* ---------------------------------------------------------------- pure helpers */
/* dns_backoff - seconds until the next check after failures consecutive
 * failed checks: min doubled per failure, at most max */
double dns_backoff(unsigned failures, double min, double max);
/* dns_token_check - true for 32 lower-case hex digits */
bool dns_token_check(const char *token);
/* dns_mx_host - "<company-id>.<service_domain>" lower-cased into out; -1 when it does not fit */
int dns_mx_host(const char *company_id, const char *service_domain, char *out, size_t outsz);
/* dns_txt_match - among TXT records: 1 one is exactly moat-verification=token
 * (case-insensitive prefix, exact token, surrounding blanks ignored), 2 a
 * moat-verification= record with another token exists, 0 none */
int dns_txt_match(char *const *txt, size_t ntxt, const char *token);
/* dns_mx_match - true when an MX host equals mx_host (case-insensitive,
 * trailing dots ignored) */
bool dns_mx_match(const struct dns_mx *mx, size_t nmx, const char *mx_host);
/* dns_mx_sort - RFC 5321 5.1 order: ascending preference; equal preferences
 * shuffled with rnd (a random source; NULL = keep their order) */
void dns_mx_sort(struct dns_mx *mx, size_t nmx, uint32_t (*rnd)(void));
/* dns_host_name_ok - a plausible LDH host name (lower-case, labels 1..63, at most 253) */
bool dns_host_name_ok(const char *h);

#endif
