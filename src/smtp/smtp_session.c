/*
 * smtp_session.c - one inbound SMTP session: the state machine from banner
 * to QUIT on a libevent bufferevent (plain, then OpenSSL after STARTTLS).
 *
 * Commands are read as lines (LF-terminated, a trailing CR stripped; CR
 * elsewhere is refused by the parser) of at most smtp_line_limit bytes.
 * Pipelined commands are processed in order; while a message is being
 * scanned and committed the session stops reading, so replies keep their
 * order. DATA goes through smtp_data (dot-unstuffing, exact end marker,
 * bare CR/LF and long-line detection) straight into the spool file; BDAT
 * chunks are counted bytes checked the same way. The end of a message is:
 * scan (worker pool, deadline) -> commit (fsync + rename) -> "250 2.0.0 Ok:
 * queued as QID". Nothing is acknowledged before it is durable.
 *
 * Limits enforced here: line length, message size (SIZE= and counted),
 * recipients, errors per session, idle / data / whole-session timeouts,
 * rate limits per client IP and per envelope sender (checked at MAIL).
 * Security: input after STARTTLS in the same packet is discarded (no
 * command injection, CVE-2011-0411 class); sender-specified routing and
 * undeclared UTF-8 are refused by smtp_cmd; only verified protected domains
 * are accepted as recipients.
 */
#include "core/core.h"
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_data.h"
#include "smtp/smtp_int.h"

#include <jansson.h>
#include "smtp/smtp_tls.h"
#include "policy/policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#define DATA_CHUNK 16384

enum sess_mode { MODE_CMD, MODE_DATA, MODE_BDAT, MODE_WAIT, MODE_CLOSING };

struct smtp_session {
    struct smtp_session *prev, *next;
    struct smtp_loop *loop;
    struct smtp_server *srv;
    const struct moat_config *cfg;
    struct bufferevent *bev;
    char id[CORE_QID_LEN + 1];
    char ip[INET6_ADDRSTRLEN];
    char helo[256];
    bool greeted, esmtp;
    bool tls;
    char tls_desc[128];
    enum sess_mode mode;
    unsigned errors;
    bool skip_line;           /* discarding the rest of an over-long line */
    struct event *session_timer, *data_timer, *linger;
    unsigned linger_ticks;
    bool dead;                /* connection gone while a commit was in flight */
    /* transaction */
    bool in_mail;
    char qid[CORE_QID_LEN + 1];
    struct smtp_mail_args mail;
    char **rcpts, **orcpts, **rcpt_company;
    size_t nrcpts;
    char last_reject[300];
    unsigned rejected_rcpts;
    unsigned tracked_rejects;  /* of those, recorded in tracking one by one */
    struct domain_map *map;
    struct policy_table *policies; /* snapshot taken at MAIL, like map */
    /* outbound protection: the client is a registered sending server of the
     * envelope sender's verified domain (decided at MAIL); then any
     * recipient is accepted, for that tenant, with the outbound limits */
    bool outbound;
    char out_company[64];
    /* message */
    struct smtp_data data;
    struct spool_incoming *in;
    uint64_t msg_bytes;
    bool too_big, write_failed;
    uint64_t bdat_remaining;
    bool bdat_last, bdat_failed;
    bool scanning;
    uint64_t scan_ticket;
    struct queue_envelope *env; /* being committed */
    struct scan_result scan;    /* its plan is moved to plan below */
    char *plan;                 /* the policy plan of the message (JSON) */
    unsigned variants;          /* rewritten copies beside the spool file */
};

static void session_process(struct smtp_session *s);
static void session_free(struct smtp_session *s);

/* ---------------------------------------------------------------- replies */
static void reply(struct smtp_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct smtp_session *s, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 3)
        n = (int)sizeof line - 3;
    line[n++] = '\r';
    line[n++] = '\n';
    if (s->bev && s->mode != MODE_CLOSING)
        bufferevent_write(s->bev, line, (size_t)n);
}

/* linger_check - after STARTTLS the session's bufferevent is a filter whose
 * "drained" only means the bytes reached the socket bufferevent beneath it:
 * wait (bounded) until that one has written them too, or the last reply
 * (221, 421) would be cut off by the close */
static void linger_check(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_session *s = arg;
    (void)fd;
    (void)what;
    struct bufferevent *under = bufferevent_get_underlying(s->bev);
    if (under && s->linger_ticks == 0 && evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
        /* a clean TLS close (close_notify) after the last reply */
        SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
        if (ssl)
            SSL_shutdown(ssl);
    }
    if (under && (evbuffer_get_length(bufferevent_get_output(under)) > 0 ||
                  evbuffer_get_length(bufferevent_get_output(s->bev)) > 0) &&
        s->linger_ticks++ < 200) {
        struct timeval tv = {0, 10000};
        evtimer_add(s->linger, &tv);
        return;
    }
    session_free(s);
}

static void write_drained(struct bufferevent *bev, void *arg)
{
    struct smtp_session *s = arg;
    bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
    if (bufferevent_get_underlying(bev)) {
        s->linger = evtimer_new(s->loop->base, linger_check, s);
        linger_check(-1, 0, s);
        return;
    }
    session_free(s);
}

static void closing_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    session_free(arg);
}

static void free_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    session_free(arg);
}

/* session_close - send a last reply (may be NULL), then close once written */
static void session_close(struct smtp_session *s, const char *last)
{
    if (s->mode == MODE_CLOSING)
        return;
    if (last)
        reply(s, "%s", last);
    s->mode = MODE_CLOSING;
    if (s->scanning) {
        scan_pool_cancel(s->loop->scan, s->scan_ticket);
        s->scanning = false;
    }
    bufferevent_disable(s->bev, EV_READ);
    if (s->env) {
        /* a commit is in flight: commit_done frees; no callback until then */
        s->dead = true;
        bufferevent_setcb(s->bev, NULL, NULL, NULL, NULL);
        return;
    }
    if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0 && bufferevent_get_underlying(s->bev)) {
        /* TLS: the filter may have passed the last reply on already; it is
         * written when the socket bufferevent beneath has drained */
        bufferevent_setcb(s->bev, NULL, NULL, NULL, NULL);
        s->linger = evtimer_new(s->loop->base, linger_check, s);
        struct timeval tv = {0, 1000};
        evtimer_add(s->linger, &tv);
    } else if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
        /* nothing left to send: no callback may run before free_later */
        bufferevent_setcb(s->bev, NULL, NULL, NULL, NULL);
        bufferevent_disable(s->bev, EV_READ | EV_WRITE);
        struct timeval zero = {0, 0};
        event_base_once(s->loop->base, -1, EV_TIMEOUT, free_later, s, &zero);
    } else {
        /* freed by whichever comes first: drained, error/EOF or timeout */
        bufferevent_setcb(s->bev, NULL, write_drained, closing_event, s);
        bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
        bufferevent_enable(s->bev, EV_WRITE);
    }
}

/* client_error - count an error; after smtp_max_errors close with 421 */
static bool client_error(struct smtp_session *s)
{
    if (++s->errors >= s->cfg->smtp_max_errors) {
        log_info("smtp too many errors session=%s client=%s", s->id, s->ip);
        session_close(s, "421 4.7.0 Too many errors, closing connection");
        return true;
    }
    return false;
}

/* ---------------------------------------------------------------- transaction */
static void transaction_reset(struct smtp_session *s)
{
    for (size_t i = 0; i < s->nrcpts; i++) {
        free(s->rcpts[i]);
        free(s->orcpts[i]);
        free(s->rcpt_company[i]);
    }
    free(s->rcpts);
    free(s->orcpts);
    free(s->rcpt_company);
    s->rcpts = s->orcpts = s->rcpt_company = NULL;
    s->nrcpts = 0;
    s->in_mail = false;
    s->outbound = false;
    s->out_company[0] = '\0';
    free(s->plan);
    s->plan = NULL;
    s->variants = 0;
    s->qid[0] = '\0';
    s->last_reject[0] = '\0';
    s->rejected_rcpts = 0;
    s->tracked_rejects = 0;
    if (s->in) {
        spool_incoming_abort(s->in);
        s->in = NULL;
    }
    if (s->map) {
        domain_map_unref(s->map);
        s->map = NULL;
    }
    policy_table_unref(s->policies);
    s->policies = NULL;
    s->msg_bytes = 0;
    s->too_big = s->write_failed = false;
    s->bdat_remaining = 0;
    s->bdat_last = s->bdat_failed = false;
    if (s->data_timer)
        event_del(s->data_timer);
}

/* track_refusal - record a refused transaction in message tracking */
static void track_refusal(struct smtp_session *s, const char *reason)
{
    struct track_message m;
    memset(&m, 0, sizeof m);
    m.qid = s->qid[0] ? s->qid : NULL;
    char qid[CORE_QID_LEN + 1];
    if (!m.qid) {
        core_qid_new(qid);
        m.qid = qid;
    }
    m.time = core_now();
    m.direction = s->outbound ? "outbound" : "inbound";
    m.client_ip = s->ip;
    m.helo = s->helo;
    m.tls = s->tls ? s->tls_desc : NULL;
    m.sender = s->in_mail ? s->mail.path.addr : NULL;
    m.action = "rejected";
    m.reason = reason;
    m.rcpts = (const char *const *)s->rcpts;
    m.rcpt_company = (const char *const *)s->rcpt_company;
    m.nrcpts = s->nrcpts;
    tracker_message(s->srv->d.tracker, &m);
}

/* track_rcpt_refusal - one recipient refused for its tenant's reasons
 * (blocked sender): its own tracking record, visible to that tenant */
static void track_rcpt_refusal(struct smtp_session *s, const char *rcpt, const char *company, const char *reason)
{
    struct track_message m;
    memset(&m, 0, sizeof m);
    char qid[CORE_QID_LEN + 1];
    core_qid_new(qid);
    m.qid = qid;
    m.time = core_now();
    m.direction = s->outbound ? "outbound" : "inbound";
    m.client_ip = s->ip;
    m.helo = s->helo;
    m.tls = s->tls ? s->tls_desc : NULL;
    m.sender = s->in_mail ? s->mail.path.addr : NULL;
    m.action = "rejected";
    m.reason = reason;
    const char *rcpts[1] = {rcpt}, *companies[1] = {company};
    m.rcpts = rcpts;
    m.rcpt_company = companies;
    m.nrcpts = 1;
    tracker_message(s->srv->d.tracker, &m);
    s->tracked_rejects++;
}

/* ---------------------------------------------------------------- commands */
static void cmd_helo(struct smtp_session *s, const struct smtp_cmd *c, bool ehlo)
{
    char name[256];
    enum smtp_cmd_err e = smtp_parse_helo(c->arg, c->arglen, name, sizeof name);
    if (e != SMTP_CMD_OK) {
        reply(s, "501 5.5.4 %s requires a domain name", ehlo ? "EHLO" : "HELO");
        client_error(s);
        return;
    }
    /* printable ASCII only: it is written into the Received header */
    for (char *p = name; *p; p++)
        if (*p < 0x21 || *p > 0x7e || *p == '(' || *p == ')')
            *p = '?';
    core_strlcpy(s->helo, name, sizeof s->helo);
    transaction_reset(s);
    s->greeted = true;
    s->esmtp = ehlo;
    if (!ehlo) {
        reply(s, "250 %s", s->cfg->hostname);
        return;
    }
    struct buf b;
    buf_init(&b, 4096);
    buf_printf(&b, "250-%s\r\n250-PIPELINING\r\n250-SIZE %llu\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
                   "250-ENHANCEDSTATUSCODES\r\n",
               s->cfg->hostname, (unsigned long long)s->cfg->message_size_limit);
    if (!s->tls && s->srv->d.tls)
        buf_append_str(&b, "250-STARTTLS\r\n");
    buf_append_str(&b, "250-DSN\r\n250 CHUNKING\r\n");
    bufferevent_write(s->bev, b.ptr, b.len);
    buf_free(&b);
}

static void tls_event(struct bufferevent *bev, short what, void *arg);
static void session_read(struct bufferevent *bev, void *arg);
static void session_event(struct bufferevent *bev, short what, void *arg);

static void cmd_starttls(struct smtp_session *s, const struct smtp_cmd *c)
{
    if (s->tls || !s->srv->d.tls) {
        reply(s, "503 5.5.1 TLS not available");
        client_error(s);
        return;
    }
    if (c->arglen) {
        reply(s, "501 5.5.4 Syntax: STARTTLS");
        client_error(s);
        return;
    }
    SSL *ssl = SSL_new(s->srv->d.tls);
    if (!ssl) {
        reply(s, "454 4.7.0 TLS not available due to temporary reason");
        return;
    }
    reply(s, "220 2.0.0 Ready to start TLS");
    /* anything the client pipelined after STARTTLS is discarded */
    struct evbuffer *in = bufferevent_get_input(s->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    transaction_reset(s);
    s->greeted = false;
    struct bufferevent *tb = bufferevent_openssl_filter_new(s->loop->base, s->bev, ssl,
                                                            BUFFEREVENT_SSL_ACCEPTING,
                                                            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!tb) {
        SSL_free(ssl);
        session_close(s, NULL);
        return;
    }
    s->bev = tb;
    bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
    bufferevent_setcb(tb, session_read, NULL, tls_event, s);
    struct timeval idle = {(time_t)s->cfg->smtp_idle_timeout, 0};
    bufferevent_set_timeouts(tb, &idle, &idle);
    bufferevent_enable(tb, EV_READ | EV_WRITE);
    s->mode = MODE_WAIT; /* until the handshake completes */
}

static void tls_event(struct bufferevent *bev, short what, void *arg)
{
    struct smtp_session *s = arg;
    if (what & BEV_EVENT_CONNECTED) {
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        s->tls = true;
        smtp_tls_describe(ssl, s->tls_desc, sizeof s->tls_desc);
        log_info("smtp tls session=%s client=%s tls=\"%s\"", s->id, s->ip, s->tls_desc);
        bufferevent_setcb(bev, session_read, NULL, session_event, s);
        s->mode = MODE_CMD;
        session_process(s);
        return;
    }
    session_event(bev, what, arg);
}

/* rate_check - the per-IP and per-sender limits; false when refused */
static bool rate_check(struct smtp_session *s, const char *sender)
{
    char key[SMTP_PATH_MAX + 16];
    double now = core_now();
    const struct moat_config *cfg = s->cfg;
    const char *dir = s->outbound ? "out" : "in";
    snprintf(key, sizeof key, "%s-ip:%s", dir, s->ip);
    if (!ratelimit_hit(s->srv->ratelimit, key, s->outbound ? &cfg->limit_out_ip : &cfg->limit_in_ip,
                       cfg->limit_block, now)) {
        reply(s, "451 4.7.1 Exceeded limit - message count (by IP address), try again later");
        log_info("smtp rate limited session=%s client=%s by=ip", s->id, s->ip);
        track_refusal(s, "Exceeded limit – message count (by IP address)");
        return false;
    }
    snprintf(key, sizeof key, "%s-from:%s", dir, sender);
    for (char *p = key; *p; p++)
        *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    if (!ratelimit_hit(s->srv->ratelimit, key, s->outbound ? &cfg->limit_out_sender : &cfg->limit_in_sender,
                       cfg->limit_block, now)) {
        reply(s, "451 4.7.1 Exceeded limit - message count (by e-mail address), try again later");
        log_info("smtp rate limited session=%s client=%s by=sender", s->id, s->ip);
        track_refusal(s, "Exceeded limit – message count (by e-mail address)");
        return false;
    }
    return true;
}

/* outbound_check - outbound protection (PRODUCT.md §2): the envelope
 * sender's domain is verified, has outbound enabled, and the client is one
 * of its sending servers. Shared provider ranges (Microsoft 365, Google
 * Workspace) make the sender's domain part of the proof; the null sender
 * never relays. */
static void outbound_check(struct smtp_session *s)
{
    s->outbound = false;
    s->out_company[0] = '\0';
    if (s->mail.path.null || !s->mail.path.domain[0] || s->mail.path.domain_literal || !s->map)
        return;
    const struct domain_entry *d = domain_map_find(s->map, s->mail.path.domain);
    if (!domain_entry_sends_from(d, s->ip))
        return;
    s->outbound = true;
    core_strlcpy(s->out_company, d->company_id, sizeof s->out_company);
    log_info("smtp outbound session=%s client=%s company=%s", s->id, s->ip, d->company_id);
}

static void cmd_mail(struct smtp_session *s, const struct smtp_cmd *c)
{
    if (!s->greeted) {
        reply(s, "503 5.5.1 Send HELO/EHLO first");
        client_error(s);
        return;
    }
    if (s->in_mail) {
        reply(s, "503 5.5.1 Nested MAIL command");
        client_error(s);
        return;
    }
    struct smtp_mail_args m;
    enum smtp_cmd_err e = smtp_parse_mail(c->arg, c->arglen, &m);
    if (e != SMTP_CMD_OK) {
        reply(s, "%s", smtp_cmd_err_reply(e));
        client_error(s);
        return;
    }
    if (!s->esmtp && (m.has_size || m.smtputf8 || m.body != SMTP_BODY_7BIT || m.ret || m.envid[0])) {
        reply(s, "555 5.5.4 ESMTP parameters need EHLO");
        client_error(s);
        return;
    }
    if (m.body == SMTP_BODY_BINARYMIME) {
        reply(s, "555 5.5.4 BINARYMIME not supported");
        client_error(s);
        return;
    }
    if (m.has_size && m.size > s->cfg->message_size_limit) {
        reply(s, "552 5.3.4 Message size exceeds fixed limit");
        return;
    }
    s->mail = m;
    core_qid_new(s->qid);
    s->in_mail = true;
    s->map = smtp_server_domains(s->srv);
    s->policies = smtp_server_policies(s->srv);
    outbound_check(s);
    if (!rate_check(s, m.path.null ? "<>" : m.path.addr)) {
        transaction_reset(s);
        return;
    }
    reply(s, "250 2.1.0 Ok");
}

static void rcpt_reject(struct smtp_session *s, const char *line)
{
    reply(s, "%s", line);
    core_strlcpy(s->last_reject, line, sizeof s->last_reject);
    s->rejected_rcpts++;
    client_error(s);
}

/* rcpt_add - accept the recipient for company (a repeated one once) */
static void rcpt_add(struct smtp_session *s, const struct smtp_rcpt_args *r, const char *company)
{
    for (size_t i = 0; i < s->nrcpts; i++) {
        if (strcasecmp(s->rcpts[i], r->path.addr) == 0) {
            reply(s, "250 2.1.5 Ok");
            return;
        }
    }
    s->rcpts = xrealloc(s->rcpts, (s->nrcpts + 1) * sizeof *s->rcpts);
    s->orcpts = xrealloc(s->orcpts, (s->nrcpts + 1) * sizeof *s->orcpts);
    s->rcpt_company = xrealloc(s->rcpt_company, (s->nrcpts + 1) * sizeof *s->rcpt_company);
    s->rcpts[s->nrcpts] = xstrdup(r->path.addr);
    s->orcpts[s->nrcpts] = r->orcpt[0] ? xstrdup(r->orcpt) : NULL;
    s->rcpt_company[s->nrcpts] = xstrdup(company);
    s->nrcpts++;
    reply(s, "250 2.1.5 Ok");
}

static void cmd_rcpt(struct smtp_session *s, const struct smtp_cmd *c)
{
    if (!s->in_mail) {
        reply(s, "503 5.5.1 Need MAIL command");
        client_error(s);
        return;
    }
    struct smtp_rcpt_args r;
    enum smtp_cmd_err e = smtp_parse_rcpt(c->arg, c->arglen, s->mail.smtputf8, &r);
    if (e != SMTP_CMD_OK) {
        rcpt_reject(s, smtp_cmd_err_reply(e));
        return;
    }
    if (s->nrcpts >= s->cfg->recipient_limit) {
        reply(s, "452 4.5.3 Too many recipients");
        return;
    }
    if (s->outbound) {
        /* a registered sending server relays for its tenant to anyone with a
         * domain (no address literals: delivery goes by MX) */
        if (!r.path.domain[0] || r.path.domain_literal) {
            rcpt_reject(s, "550 5.1.3 Recipient address must have a domain name");
            return;
        }
        rcpt_add(s, &r, s->out_company);
        return;
    }
    const struct domain_entry *d = NULL;
    if (r.path.domain[0] && !r.path.domain_literal && s->map)
        d = domain_map_find(s->map, r.path.domain);
    if (!d || !d->verified) {
        char esc[300];
        log_escape(r.path.addr, strlen(r.path.addr), esc, sizeof esc);
        log_info("smtp relay denied session=%s client=%s rcpt=%s", s->id, s->ip, esc);
        rcpt_reject(s, "550 5.7.1 Relay access denied");
        return;
    }
    if (!domain_entry_has_recipient(d, r.path.addr)) {
        rcpt_reject(s, "550 5.1.1 Recipient address rejected: User unknown");
        return;
    }
    /* the recipient's tenant blocks this sender (address, *@domain, or the
     * client's IP/CIDR): the sender alone decides, so refuse now */
    const struct policy_set *ps = policy_table_find(s->policies, d->company_id);
    if (ps && policy_sender_blocked(ps, s->mail.path.null ? "" : s->mail.path.addr, s->ip)) {
        char esc[300];
        log_escape(r.path.addr, strlen(r.path.addr), esc, sizeof esc);
        log_info("smtp sender blocked session=%s client=%s rcpt=%s company=%s", s->id, s->ip, esc, d->company_id);
        static const char blocked[] = "550 5.7.1 Sender address rejected: blocked by the recipient's policy";
        rcpt_reject(s, blocked);
        track_rcpt_refusal(s, r.path.addr, d->company_id, "Blocked sender (recipient's policy)");
        return;
    }
    rcpt_add(s, &r, d->company_id);
}

/* rfc5322_date - "Sat, 28 Nov 2026 04:30:00 +0000" */
static void rfc5322_date(char *out, size_t outsz)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outsz, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* message_begin - open the spool file and write our Received header */
static bool message_begin(struct smtp_session *s)
{
    char date[64];
    s->in = spool_incoming_open(s->srv->d.spool, s->qid);
    if (!s->in) {
        reply(s, "451 4.3.0 Local error in processing, try again later");
        return false;
    }
    const char *proto = s->mail.smtputf8 ? "UTF8SMTP" : (s->esmtp ? "ESMTP" : "SMTP");
    rfc5322_date(date, sizeof date);
    struct buf b;
    buf_init(&b, 4096);
    buf_printf(&b, "Received: from %s ([%s])\r\n\tby %s (Moat) with %s%s id %s", s->helo, s->ip,
               s->cfg->hostname, proto, s->tls ? "S" : "", s->qid);
    if (s->tls)
        buf_printf(&b, "\r\n\t(using %s)", s->tls_desc);
    if (s->nrcpts == 1)
        buf_printf(&b, "\r\n\tfor <%s>", s->rcpts[0]);
    buf_printf(&b, ";\r\n\t%s\r\n", date);
    int rc = spool_incoming_write(s->in, b.ptr, b.len);
    buf_free(&b);
    if (rc < 0) {
        reply(s, "451 4.3.0 Local error in processing, try again later");
        spool_incoming_abort(s->in);
        s->in = NULL;
        return false;
    }
    s->msg_bytes = 0;
    s->too_big = s->write_failed = false;
    struct timeval tv = {(time_t)s->cfg->smtp_data_timeout, 0};
    event_add(s->data_timer, &tv);
    return true;
}

static void cmd_data(struct smtp_session *s, const struct smtp_cmd *c)
{
    if (!s->in_mail) {
        reply(s, "503 5.5.1 Need MAIL command");
        client_error(s);
        return;
    }
    if (s->nrcpts == 0) {
        reply(s, "554 5.5.1 No valid recipients");
        client_error(s);
        return;
    }
    if (c->arglen) {
        reply(s, "501 5.5.4 Syntax: DATA");
        client_error(s);
        return;
    }
    if (s->in) {
        reply(s, "503 5.5.1 BDAT in progress, DATA not allowed");
        client_error(s);
        return;
    }
    if (!message_begin(s))
        return;
    smtp_data_init(&s->data, true);
    s->mode = MODE_DATA;
    reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void cmd_bdat(struct smtp_session *s, const struct smtp_cmd *c)
{
    uint64_t size;
    bool last;
    enum smtp_cmd_err e = smtp_parse_bdat(c->arg, c->arglen, UINT64_MAX / 2, &size, &last);
    if (e != SMTP_CMD_OK) {
        /* the chunk length is unknown: the stream cannot be resynchronised */
        session_close(s, "501 5.5.4 Syntax: BDAT size [LAST]; closing connection");
        return;
    }
    s->bdat_remaining = size;
    s->bdat_last = last;
    s->mode = MODE_BDAT;
    if (!s->in_mail || s->nrcpts == 0) {
        s->bdat_failed = true; /* consume the chunk, then refuse */
        return;
    }
    if (!s->in) {
        if (!message_begin(s)) {
            s->bdat_failed = true;
            s->errors++;
            return;
        }
        smtp_data_init(&s->data, false);
    }
}

static void dispatch(struct smtp_session *s, const char *line, size_t len)
{
    struct smtp_cmd c;
    enum smtp_cmd_err e = smtp_cmd_parse(line, len, &c);
    if (e != SMTP_CMD_OK) {
        reply(s, "%s", smtp_cmd_err_reply(e));
        client_error(s);
        return;
    }
    switch (c.verb) {
    case SMTP_VERB_HELO:
        cmd_helo(s, &c, false);
        break;
    case SMTP_VERB_EHLO:
        cmd_helo(s, &c, true);
        break;
    case SMTP_VERB_STARTTLS:
        cmd_starttls(s, &c);
        break;
    case SMTP_VERB_MAIL:
        cmd_mail(s, &c);
        break;
    case SMTP_VERB_RCPT:
        cmd_rcpt(s, &c);
        break;
    case SMTP_VERB_DATA:
        cmd_data(s, &c);
        break;
    case SMTP_VERB_BDAT:
        cmd_bdat(s, &c);
        break;
    case SMTP_VERB_RSET:
        if (s->in_mail && s->nrcpts == 0 && s->rejected_rcpts > s->tracked_rejects)
            track_refusal(s, s->last_reject);
        transaction_reset(s);
        reply(s, "250 2.0.0 Ok");
        break;
    case SMTP_VERB_NOOP:
        reply(s, "250 2.0.0 Ok");
        break;
    case SMTP_VERB_QUIT:
        if (s->in_mail && s->nrcpts == 0 && s->rejected_rcpts > s->tracked_rejects)
            track_refusal(s, s->last_reject);
        transaction_reset(s);
        session_close(s, "221 2.0.0 Bye");
        break;
    case SMTP_VERB_VRFY:
        reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
        break;
    case SMTP_VERB_EXPN:
        reply(s, "502 5.5.1 EXPN not available");
        break;
    case SMTP_VERB_HELP:
        reply(s, "214 2.0.0 See RFC 5321");
        break;
    case SMTP_VERB_AUTH:
        reply(s, "502 5.5.1 AUTH not available");
        client_error(s);
        break;
    default:
        reply(s, "500 5.5.2 Command unrecognized");
        client_error(s);
        break;
    }
}

/* ---------------------------------------------------------------- end of message */
/* track_plan - the rules evaluated for each recipient, on its timeline: one
 * event per recipient ("Virus: not matched; Spam: matched: ..."); for a
 * message to very many recipients, once per distinct trace (bounded) */
#define TRACK_PLAN_EVENTS 1000
static void track_plan(struct smtp_session *s, const struct queue_envelope *env)
{
    json_t *plan = env->plan ? json_loads(env->plan, 0, NULL) : NULL;
    json_t *rs = json_object_get(plan, "rcpts"), *traces = json_object_get(plan, "traces");
    bool per_rcpt = env->nrcpts <= TRACK_PLAN_EVENTS;
    size_t n = per_rcpt ? json_array_size(rs) : json_array_size(traces);
    struct buf line;
    buf_init(&line, 16384);
    for (size_t i = 0; i < n && i < (per_rcpt ? env->nrcpts : 100); i++) {
        json_t *tr = per_rcpt ? json_array_get(traces, (size_t)json_integer_value(
                                                           json_object_get(json_array_get(rs, i), "t")))
                              : json_array_get(traces, i);
        line.len = 0;
        if (!per_rcpt)
            buf_printf(&line, "(rule set %zu of the recipients) ", i + 1);
        size_t before = line.len;
        for (size_t k = 0; k < json_array_size(tr); k++) {
            const char *t = json_string_value(json_array_get(tr, k));
            if (t)
                buf_printf(&line, "%s%s", line.len > before ? "; " : "", t);
        }
        if (line.len == before)
            continue;
        struct track_event ev = {.qid = env->qid,
                                 .time = env->arrival,
                                 .rcpt = per_rcpt ? env->rcpts[i] : NULL,
                                 .event = "policy",
                                 .detail = buf_cstr(&line)};
        tracker_event(s->srv->d.tracker, &ev);
    }
    buf_free(&line);
    json_decref(plan);
}

static void commit_done(void *arg, bool ok)
{
    struct smtp_session *s = arg;
    struct queue_envelope *env = s->env;
    s->env = NULL;
    if (ok) {
        struct track_message m;
        memset(&m, 0, sizeof m);
        m.qid = env->qid;
        m.time = env->arrival;
        m.direction = s->outbound ? "outbound" : "inbound";
        m.client_ip = s->ip;
        m.helo = s->helo;
        m.tls = s->tls ? s->tls_desc : NULL;
        m.sender = env->sender;
        m.size = env->data_len;
        m.message_id = s->scan.message_id;
        m.subject = s->scan.subject;
        m.header_from = s->scan.from;
        m.action = "accepted";
        m.scan = s->scan.summary;
        m.detections = s->scan.detections;
        m.rcpts = (const char *const *)env->rcpts;
        m.rcpt_company = (const char *const *)s->rcpt_company;
        m.nrcpts = env->nrcpts;
        tracker_message(s->srv->d.tracker, &m);
        track_plan(s, env);
        /* after tracking, so the message row exists before any delivery result */
        queue_mgr_submit(s->srv->d.queue, env);
        log_info("smtp accepted session=%s qid=%s client=%s size=%llu nrcpt=%zu", s->id, env->qid, s->ip,
                 (unsigned long long)env->data_len, env->nrcpts);
        reply(s, "250 2.0.0 Ok: queued as %s", env->qid);
    } else {
        reply(s, "451 4.3.0 Local error in processing, try again later");
    }
    /* env's strings were borrowed from the session: free the shell only */
    free(env);
    if (s->dead) {
        s->mode = MODE_CLOSING;
        session_free(s);
        return;
    }
    transaction_reset(s);
    s->mode = MODE_CMD;
    bufferevent_enable(s->bev, EV_READ);
    session_process(s);
}

static void scan_done(void *arg, const struct scan_result *res)
{
    struct smtp_session *s = arg;
    s->scanning = false;
    s->scan = *res;
    s->scan.plan = NULL; /* the pool frees it: keep a copy */
    free(s->plan);
    s->plan = res->plan && res->verdict == SCAN_ACCEPT ? xstrdup(res->plan) : NULL;
    s->variants = s->plan ? res->variants : 0;
    if (res->verdict != SCAN_ACCEPT) {
        reply(s, "%s", res->reply[0] ? res->reply : "451 4.3.0 Temporary scanning failure, try again later");
        track_refusal(s, res->reply);
        transaction_reset(s);
        s->mode = MODE_CMD;
        bufferevent_enable(s->bev, EV_READ);
        session_process(s);
        return;
    }
    /* the envelope borrows the session's strings until commit_done */
    struct queue_envelope *env = xcalloc(1, sizeof *env);
    core_strlcpy(env->qid, s->qid, sizeof env->qid);
    env->arrival = core_now();
    env->sender = s->mail.path.null ? "" : s->mail.path.addr;
    env->rcpts = s->rcpts;
    env->orcpts = s->orcpts;
    env->nrcpts = s->nrcpts;
    env->client_ip = s->ip;
    env->helo = s->helo;
    env->tls = s->tls ? s->tls_desc : NULL;
    env->envid = s->mail.envid[0] ? s->mail.envid : NULL;
    env->smtputf8 = s->mail.smtputf8;
    env->eightbit = s->mail.body == SMTP_BODY_8BITMIME;
    env->scan_summary = s->scan.summary;
    env->message_id = s->scan.message_id;
    env->subject = s->scan.subject;
    env->plan = s->plan;
    env->variants = s->variants;
    s->env = env;
    struct spool_incoming *in = s->in;
    s->in = NULL;
    spool_commit(s->srv->d.spool, in, env, s->loop->base, commit_done, s);
}

/* message_end - the client finished sending the message */
static void message_end(struct smtp_session *s)
{
    event_del(s->data_timer);
    s->mode = MODE_CMD;
    const char *refuse = NULL;
    if (s->data.flags & (SMTP_DATA_BARE_LF | SMTP_DATA_BARE_CR))
        refuse = "550 5.5.2 Message contains bare CR or LF line endings (RFC 5321 2.3.8)";
    else if (s->data.flags & SMTP_DATA_LONG_LINE)
        refuse = "550 5.5.2 Message contains a line longer than 998 characters";
    else if (s->too_big)
        refuse = "552 5.3.4 Message size exceeds fixed limit";
    else if (s->write_failed || spool_incoming_flush(s->in) < 0)
        refuse = "451 4.3.0 Local error in processing, try again later";
    if (refuse) {
        reply(s, "%s", refuse);
        log_info("smtp refused session=%s qid=%s client=%s reply=\"%.40s\"", s->id, s->qid, s->ip, refuse);
        track_refusal(s, refuse);
        transaction_reset(s);
        return;
    }
    struct scan_request req;
    memset(&req, 0, sizeof req);
    core_strlcpy(req.path, spool_incoming_path(s->in), sizeof req.path);
    req.data_len = spool_incoming_size(s->in);
    core_strlcpy(req.qid, s->qid, sizeof req.qid);
    if (s->nrcpts && strlen(s->rcpt_company[0]) < sizeof req.company_id)
        core_strlcpy(req.company_id, s->rcpt_company[0], sizeof req.company_id);
    if (!s->mail.path.null && strlen(s->mail.path.addr) < sizeof req.mail_from)
        core_strlcpy(req.mail_from, s->mail.path.addr, sizeof req.mail_from);
    core_strlcpy(req.client_ip, s->ip, sizeof req.client_ip);
    req.nrcpt = (uint32_t)s->nrcpts;
    req.direction = s->outbound ? 1 : 0;
    /* every recipient with its tenant, for the policy stage */
    struct buf rl;
    buf_init(&rl, SCAN_RCPTS_MAX);
    bool fits = true;
    for (size_t i = 0; i < s->nrcpts && fits; i++)
        fits = buf_printf(&rl, "%s\t%s\n", s->rcpt_company[i] ? s->rcpt_company[i] : "", s->rcpts[i]) == 0;
    if (!fits) {
        buf_free(&rl);
        reply(s, "452 4.5.3 Too many recipients for one message, send the rest separately");
        transaction_reset(s);
        return;
    }
    req.rcpts = (char *)buf_cstr(&rl);
    spool_incoming_spare(s->in);
    int submitted = scan_pool_submit(s->loop->scan, &req, scan_done, s, &s->scan_ticket);
    buf_free(&rl);
    if (submitted < 0) {
        reply(s, "451 4.3.2 System busy, try again later");
        log_warn("smtp scan backlog full session=%s qid=%s", s->id, s->qid);
        transaction_reset(s);
        return;
    }
    s->scanning = true;
    s->mode = MODE_WAIT;
    bufferevent_disable(s->bev, EV_READ);
}

/* store_bytes - message bytes after unstuffing/checking: count, bound, spool */
static void store_bytes(struct smtp_session *s, const char *p, size_t n)
{
    if (!n || s->too_big || s->write_failed)
        return;
    if (s->cfg->message_size_limit - s->msg_bytes < n) {
        s->too_big = true;
        return;
    }
    s->msg_bytes += n;
    if (spool_incoming_write(s->in, p, n) < 0)
        s->write_failed = true;
}

/* feed_data - DATA mode: returns false when more input is needed */
static bool feed_data(struct smtp_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    char out[DATA_CHUNK + 2];
    size_t avail = evbuffer_get_length(in);
    if (avail == 0)
        return false;
    size_t take = avail < DATA_CHUNK ? avail : DATA_CHUNK;
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)take);
    size_t olen;
    size_t used = smtp_data_feed(&s->data, p, take, out, &olen);
    store_bytes(s, out, olen);
    evbuffer_drain(in, used);
    if (s->data.done)
        message_end(s);
    return true;
}

/* feed_bdat - BDAT mode: returns false when more input is needed */
static bool feed_bdat(struct smtp_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    char out[DATA_CHUNK + 2];
    size_t avail = evbuffer_get_length(in);
    if (s->bdat_remaining > 0) {
        if (avail == 0)
            return false;
        size_t take = avail < DATA_CHUNK ? avail : DATA_CHUNK;
        if (take > s->bdat_remaining)
            take = (size_t)s->bdat_remaining;
        const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)take);
        if (!s->bdat_failed && s->in) {
            size_t olen;
            smtp_data_feed(&s->data, p, take, out, &olen);
            store_bytes(s, out, olen);
        }
        evbuffer_drain(in, take);
        s->bdat_remaining -= take;
        if (s->bdat_remaining > 0)
            return true;
    }
    /* chunk complete */
    s->mode = MODE_CMD;
    if (s->bdat_failed) {
        if (!s->in_mail || s->nrcpts == 0) {
            reply(s, "503 5.5.1 Need MAIL and RCPT before BDAT");
            client_error(s);
        }
        transaction_reset(s);
        return true;
    }
    if (!s->bdat_last) {
        reply(s, "250 2.0.0 %llu octets received", (unsigned long long)s->msg_bytes);
        return true;
    }
    smtp_data_finish(&s->data);
    message_end(s);
    return true;
}

/* read_command - one command line from the input; false when none yet */
static bool read_command(struct smtp_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t limit = (size_t)s->cfg->smtp_line_limit;
    struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
    if (eol.pos < 0) {
        size_t have = evbuffer_get_length(in);
        if (have > limit) {
            evbuffer_drain(in, have);
            if (!s->skip_line) {
                s->skip_line = true;
                reply(s, "500 5.5.2 Line too long");
                client_error(s);
            }
        }
        return false;
    }
    size_t len = (size_t)eol.pos;
    if (s->skip_line) {
        evbuffer_drain(in, len + 1);
        s->skip_line = false;
        return true;
    }
    if (len > limit + 1) {
        evbuffer_drain(in, len + 1);
        reply(s, "500 5.5.2 Line too long");
        client_error(s);
        return true;
    }
    char line[65538];
    evbuffer_remove(in, line, len + 1);
    if (len && line[len - 1] == '\r')
        len--;
    dispatch(s, line, len);
    return true;
}

static void session_process(struct smtp_session *s)
{
    for (;;) {
        bool progress;
        switch (s->mode) {
        case MODE_CMD:
            progress = read_command(s);
            break;
        case MODE_DATA:
            progress = feed_data(s);
            break;
        case MODE_BDAT:
            progress = feed_bdat(s);
            break;
        default:
            return;
        }
        if (!progress)
            return;
    }
}

static void session_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    session_process(arg);
}

static void session_event(struct bufferevent *bev, short what, void *arg)
{
    struct smtp_session *s = arg;
    (void)bev;
    if (s->dead)
        return; /* commit_done frees */
    if (what & BEV_EVENT_TIMEOUT) {
        if (s->mode == MODE_CLOSING) {
            session_free(s);
            return;
        }
        log_info("smtp idle timeout session=%s client=%s", s->id, s->ip);
        bufferevent_enable(s->bev, EV_WRITE);
        session_close(s, "421 4.4.2 Idle timeout, closing connection");
        return;
    }
    /* EOF or error: the client is gone */
    if (s->in_mail && s->nrcpts == 0 && s->rejected_rcpts)
        track_refusal(s, s->last_reject);
    if (s->env) {
        s->mode = MODE_CLOSING;
        s->dead = true;
        bufferevent_setcb(s->bev, NULL, NULL, NULL, NULL);
        bufferevent_disable(s->bev, EV_READ | EV_WRITE);
        return;
    }
    if (s->mode == MODE_CLOSING) {
        session_free(s);
        return;
    }
    s->mode = MODE_CLOSING;
    if (s->scanning) {
        scan_pool_cancel(s->loop->scan, s->scan_ticket);
        s->scanning = false;
    }
    session_free(s);
}

static void session_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_session *s = arg;
    (void)fd;
    (void)what;
    log_info("smtp session timeout session=%s client=%s", s->id, s->ip);
    session_close(s, "421 4.4.2 Session time limit exceeded, closing connection");
}

static void data_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_session *s = arg;
    (void)fd;
    (void)what;
    if (s->mode != MODE_DATA && s->mode != MODE_BDAT)
        return;
    log_info("smtp data timeout session=%s client=%s", s->id, s->ip);
    session_close(s, "421 4.4.2 Data transfer time limit exceeded, closing connection");
}

static void session_free(struct smtp_session *s)
{
    transaction_reset(s);
    if (s->bev)
        bufferevent_free(s->bev);
    event_free(s->session_timer);
    event_free(s->data_timer);
    if (s->linger)
        event_free(s->linger);
    smtp_server_conn_close(s->srv, s->ip);
    if (s->prev)
        s->prev->next = s->next;
    else
        s->loop->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->loop->nsessions--;
    log_debug("smtp disconnected session=%s client=%s", s->id, s->ip);
    free(s);
}

void smtp_session_start(struct smtp_loop *loop, evutil_socket_t fd, const struct sockaddr *sa, int salen)
{
    struct smtp_server *srv = loop->srv;
    char ip[INET6_ADDRSTRLEN] = "unknown";
    (void)salen;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, ip, sizeof ip);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, ip, sizeof ip);
    char why[128];
    if (loop->shutting_down || !smtp_server_conn_open(srv, ip, why, sizeof why)) {
        if (loop->shutting_down)
            snprintf(why, sizeof why, "421 4.3.2 Service shutting down\r\n");
        ssize_t w = send(fd, why, strlen(why), MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)w;
        evutil_closesocket(fd);
        log_info("smtp connection refused client=%s reason=limit", ip);
        return;
    }
    struct smtp_session *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->srv = srv;
    s->cfg = srv->cfg;
    core_qid_new(s->id);
    core_strlcpy(s->ip, ip, sizeof s->ip);
    s->bev = bufferevent_socket_new(loop->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!s->bev) {
        evutil_closesocket(fd);
        smtp_server_conn_close(srv, ip);
        free(s);
        return;
    }
    s->next = loop->sessions;
    if (loop->sessions)
        loop->sessions->prev = s;
    loop->sessions = s;
    loop->nsessions++;
    s->session_timer = evtimer_new(loop->base, session_timeout, s);
    s->data_timer = evtimer_new(loop->base, data_timeout, s);
    struct timeval st = {(time_t)s->cfg->smtp_session_timeout, 0};
    evtimer_add(s->session_timer, &st);
    struct timeval idle = {(time_t)s->cfg->smtp_idle_timeout, 0};
    bufferevent_set_timeouts(s->bev, &idle, &idle);
    bufferevent_setcb(s->bev, session_read, NULL, session_event, s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    log_debug("smtp connected session=%s client=%s", s->id, ip);
    reply(s, "220 %s ESMTP Moat", s->cfg->hostname);
}

void smtp_session_shutdown(struct smtp_loop *loop, bool force)
{
    struct smtp_session *s = loop->sessions, *next;
    for (; s; s = next) {
        next = s->next;
        if (s->mode == MODE_CLOSING)
            continue;
        if (!force && (s->mode == MODE_WAIT || s->mode == MODE_DATA || s->mode == MODE_BDAT))
            continue;
        session_close(s, "421 4.3.2 Service shutting down, try again later");
    }
}
