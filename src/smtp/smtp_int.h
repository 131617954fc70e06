/*
 * smtp_int.h - shared between smtp_server.c (listeners, threads, limits)
 * and smtp_session.c (the session state machine). Not for other modules.
 */
#ifndef MOAT_SMTP_INT_H
#define MOAT_SMTP_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "scan/scan.h"
#include "smtp/smtp.h"
#include "smtp/smtp_ratelimit.h"

struct smtp_session;

struct smtp_loop {
    struct smtp_server *srv;
    unsigned index;
    struct event_base *base;
    pthread_t thread;
    struct evconnlistener **listeners;
    size_t nlisteners;
    struct scan_pool *scan;
    struct smtp_session *sessions; /* doubly linked list of live sessions */
    size_t nsessions;
    struct event *shutdown_tick;
    bool shutting_down;
    double shutdown_started;
};

struct smtp_server {
    struct smtp_server_deps d;
    const struct moat_config *cfg;
    struct smtp_loop *loops;
    unsigned nloops;
    struct ratelimit *ratelimit;
    pthread_mutex_t lock;          /* map and per-IP counts */
    struct domain_map *map;
    struct ip_count *ipc;          /* open-addressing table */
    size_t ipc_cap;
    atomic_size_t connections;
    struct scan_zygote *zygote;    /* forks every loop's scan workers; may be NULL */
    struct policy_table *policies; /* tenants' compiled policies (RCPT-time decisions); under lock */
};

/* smtp_server_domains - a referenced snapshot (caller unrefs), may be NULL */
struct domain_map *smtp_server_domains(struct smtp_server *srv);
/* smtp_server_policies - a referenced snapshot (caller unrefs), may be NULL */
struct policy_table *smtp_server_policies(struct smtp_server *srv);
/* smtp_server_conn_open - count a connection; false if over a limit (reply
 * filled with the 421 line) */
bool smtp_server_conn_open(struct smtp_server *srv, const char *ip, char *reply, size_t replysz);
void smtp_server_conn_close(struct smtp_server *srv, const char *ip);

/* smtp_session_start - a new accepted connection on loop (fd owned) */
void smtp_session_start(struct smtp_loop *loop, evutil_socket_t fd, const struct sockaddr *sa, int salen);
/* smtp_session_shutdown_idle - close sessions that are not mid-commit;
 * force: close every session. */
void smtp_session_shutdown(struct smtp_loop *loop, bool force);

#endif
