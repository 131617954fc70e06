/*
 * deliver.h - relay one queued message to a destination over SMTP (the
 * client side), on a libevent loop: server selection by preference with
 * load sharing and failover, STARTTLS (opportunistic / required / none),
 * connection reuse, a per-destination connection limit, per-recipient
 * results. MX lookup for domains Moat does not protect (DSNs, outbound).
 *
 * The queue manager owns scheduling and retries; this module performs one
 * attempt per deliver_submit and reports what happened, exactly once,
 * through the callback on the same event loop.
 */
#ifndef MOAT_DELIVER_H
#define MOAT_DELIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "core/core.h"
#include "store/store.h"

/* Where to deliver. servers: candidates with preferences (lowest first; equal
 * preferences are tried in random order; ones that fail to connect or greet
 * are skipped to the next). mx_domain set instead of servers: look up the MX
 * records of that domain (falling back to its A/AAAA, RFC 5321 5.1). */
struct deliver_route {
    const struct domain_server *servers;
    size_t nservers;
    const char *mx_domain;
    enum domain_tls tls;
    uint16_t port;                /* port of MX hosts (mx_domain only); 0 = 25 */
};

/* The message: bytes [offset, offset+length) of fd are the RFC 5322 message
 * with CRLF line ends, not dot-stuffed (the client stuffs for DATA). prepend
 * (may be NULL) is sent first - the Received and scan headers, CRLF-ended. */
struct deliver_request {
    const char *qid;
    int fd;
    off_t offset;
    uint64_t length;
    const char *prepend;
    size_t prepend_len;
    const char *sender;           /* "" = null sender */
    const char *const *rcpts;
    size_t nrcpts;
    bool smtputf8;                /* request SMTPUTF8 (needs server support) */
    bool eightbit;                /* BODY=8BITMIME when the server offers it */
    const char *envid;            /* DSN ENVID to pass on, or NULL */
    struct deliver_route route;
};

enum deliver_status {
    DELIVER_OK = 0,   /* recipient accepted by the server after end of data */
    DELIVER_TEMP,     /* 4xx, connection failure, timeout: retry later */
    DELIVER_PERM,     /* 5xx: bounce now */
};

struct deliver_rcpt_result {
    enum deliver_status status;
    int code;                     /* SMTP reply code, 0 when no reply (connection) */
    char enhanced[16];            /* "5.1.1" or "" */
    char reply[512];              /* the server's reply text or the local reason */
};
/* reply: when code != 0, the server's text after the code (lines of a
 * multi-line reply joined by spaces, control and non-ASCII bytes as '?'),
 * so "code reply" reads as the reply; when code == 0, a self-contained
 * local reason (it quotes a server's code itself if one was involved). */

struct deliver_outcome {
    const char *qid;
    struct deliver_rcpt_result *rcpt; /* nrcpts entries, same order as the request */
    size_t nrcpts;
    char server[300];             /* "host:port [ip]" of the last server tried, or "" */
    char tls[128];                /* "TLSv1.3 TLS_AES_256_GCM_SHA384" or "" */
};

typedef void (*deliver_done_fn)(void *arg, const struct deliver_outcome *out);

struct deliver_client;

/* deliver_client_new - a client bound to one event loop. cfg supplies the
 * HELO hostname, timeouts, delivery_concurrency, connection_reuse_time and
 * dns_server. client_ctx is used for STARTTLS (borrowed). */
struct deliver_client *deliver_client_new(struct event_base *base, const struct moat_config *cfg,
                                          SSL_CTX *client_ctx);
/* deliver_submit - start one attempt. The request is copied; fd is dup'ed.
 * done is called exactly once, later, on the client's loop (never from inside
 * deliver_submit). Returns 0, or -1 if the request is invalid. */
int deliver_submit(struct deliver_client *c, const struct deliver_request *req, deliver_done_fn done,
                   void *arg);
/* deliver_client_busy - attempts in flight (for back-pressure / shutdown) */
size_t deliver_client_busy(const struct deliver_client *c);
/* deliver_client_free - close idle connections; in-flight attempts end with
 * DELIVER_TEMP "shutting down" before it returns */
void deliver_client_free(struct deliver_client *c);

/* deliver_order_servers - sort by preference (lowest first), shuffling
 * servers of equal preference (load sharing); what an attempt does with
 * its candidates */
void deliver_order_servers(struct domain_server *servers, size_t n);

#endif
