/*
 * smtp.h - the inbound SMTP server: one libevent loop per thread (one per
 * core by default), each with its own SO_REUSEPORT listeners, sessions and
 * scan worker pool. Sessions stream DATA/BDAT into the spool, have each
 * message scanned before the reply, commit it durably, and only then answer
 * 250 with the queue ID.
 */
#ifndef MOAT_SMTP_H
#define MOAT_SMTP_H

#include <openssl/ssl.h>

#include "core/core.h"
#include "queue/queue.h"
#include "store/store.h"

struct smtp_server;

struct smtp_server_deps {
    const struct moat_config *cfg;
    const char *config_path;   /* passed to scan workers */
    const char *exe;           /* moatd binary, for scan workers */
    SSL_CTX *tls;              /* server context; NULL disables STARTTLS */
    struct spool *spool;
    struct tracker *tracker;
    struct queue_mgr *queue;
};

struct smtp_server *smtp_server_new(const struct smtp_server_deps *deps, char *err, size_t errsz);
/* smtp_server_start - bind listeners and start the loop threads; -1 + err */
int smtp_server_start(struct smtp_server *srv, char *err, size_t errsz);
/* smtp_server_set_domains - new routing snapshot (a reference is taken) */
void smtp_server_set_domains(struct smtp_server *srv, struct domain_map *map);
/* smtp_server_set_policies - new policy table (a reference is taken) */
struct policy_table;
void smtp_server_set_policies(struct smtp_server *srv, struct policy_table *t);
/* smtp_server_stop - stop accepting; let in-flight messages finish
 * (bounded), close sessions with 421, join the threads */
void smtp_server_stop(struct smtp_server *srv);
void smtp_server_free(struct smtp_server *srv);

#endif
