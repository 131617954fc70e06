/*
 * deliver_client.c - the outbound SMTP client: one delivery attempt per
 * deliver_submit, on the caller's libevent loop.
 *
 *   deliver_client_new / _free   a client bound to one event_base
 *   deliver_submit               start an attempt (callback later, once)
 *   deliver_client_busy          attempts not yet reported
 *   deliver_order_servers        preference order with random load sharing
 *
 * An attempt: candidates (the route's servers, or the MX hosts of a domain
 * looked up through the client's c-ares resolver, deliver_dns.c) in
 * preference order, equal preferences shuffled; each host's addresses (IP
 * literals directly, names through the resolver) are tried in turn. Connect failure, timeout, a non-2xx
 * greeting, 421, a lost connection before end of data, "TLS required but
 * not offered" or a failed handshake move on to the next address/host; if
 * all fail, every open recipient gets DELIVER_TEMP with the last reason.
 *
 * Dialogue: EHLO (HELO on 5xx), STARTTLS per policy (opportunistic: when
 * offered, and a failed handshake reconnects in clear; required: never
 * continue in clear - certificates are NOT verified yet, see tls_start;
 * none: never), EHLO again, MAIL FROM (SIZE=, BODY=8BITMIME, SMTPUTF8,
 * ENVID= when offered/requested), RCPT per recipient, DATA when at least one
 * recipient was accepted. With PIPELINING, MAIL + RCPTs + DATA go in one
 * write. The body (prepend + [offset, offset+length) of the spool fd) is
 * streamed from the file in BODY_CHUNK pieces, refilled when the output
 * buffer drains below BODY_LOW (never more than BODY_HIGH + a chunk queued),
 * dot-stuffed, ended with CRLF.CRLF.
 *
 * Connection reuse: after a clean transaction the connection is parked for
 * connection_reuse_time, keyed by "host:port/tls-policy"; the next attempt
 * to any of its candidates takes it and sends RSET first. A reused
 * connection that fails before end of data is dropped and the attempt starts
 * over with fresh connections. Concurrency: at most delivery_concurrency
 * attempts per destination (the route: MX domain, or the set of servers,
 * with the TLS policy); the rest wait in a FIFO.
 *
 * Ownership: the client copies the request (fd is dup'ed) and owns every
 * attempt, connection and DNS job. The outcome passed to the callback is
 * borrowed for the duration of the call. Callbacks may submit again and
 * may free the client.
 *
 * Limits: reply lines REPLY_LINE_MAX bytes, REPLY_LINES_MAX lines per
 * reply; connect_timeout for connect + greeting; delivery_timeout for each
 * reply and for each stall while sending the body. Violations are
 * DELIVER_TEMP.
 *
 * Security: addresses with control bytes or angle brackets are refused at
 * submit (no command injection); server replies are sanitised (controls and
 * non-ASCII become '?') before they reach results, and escaped in logs; data
 * received together with the 220 to STARTTLS aborts the connection (response
 * injection, CVE-2011-0411 class). The process should ignore SIGPIPE.
 */
#include "core/core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "deliver/deliver.h"
#include "deliver/deliver_int.h"
#include "smtp/smtp_cmd.h"

#define REPLY_LINE_MAX 2048
#define REPLY_LINES_MAX 100
#define BODY_CHUNK (64 * 1024)
#define BODY_HIGH (256 * 1024)
#define BODY_LOW (64 * 1024)
#define QUIT_TIMEOUT 5
#define RCPTS_MAX 100000

enum conn_state {
    CS_CONNECTING,
    CS_GREETING,
    CS_EHLO,
    CS_HELO,
    CS_STARTTLS,
    CS_TLS,
    CS_RSET,
    CS_MAIL,
    CS_RCPT,
    CS_DATA,
    CS_BODY,
    CS_DOT,
    CS_DOT_EMPTY,
    CS_IDLE,
    CS_QUIT,
};

static const char *const state_names[] = {
    "connect", "greeting", "EHLO",         "HELO",        "STARTTLS",    "TLS handshake", "RSET", "MAIL FROM",
    "RCPT TO", "DATA",     "message body", "end of data", "end of data", "idle",          "QUIT",
};

struct attempt;

struct conn {
    struct deliver_client *c;
    TAILQ_ENTRY(conn) entry; /* c->idle or c->closing; unlinked while an attempt owns it */
    bool listed;
    struct attempt *a;
    struct bufferevent *bev;
    struct event *timer;
    enum conn_state state;
    char key[300]; /* "host:port/policy" for reuse */
    char host[256];
    char server[300]; /* "host:port [ip]" */
    char tls[128];
    bool tls_on;
    bool cap_pipelining, cap_starttls, cap_8bitmime, cap_smtputf8, cap_dsn, cap_size;
    bool reused;
    bool broken; /* never park or QUIT politely */
    /* the reply being read */
    int rcode;
    size_t rlines;
    char rtext[512];
    size_t rlen;
    char renh[16];
};

struct dest {
    TAILQ_ENTRY(dest) entry;
    char *key;
    size_t active;
    TAILQ_HEAD(, attempt) waiting;
};

struct attempt {
    struct deliver_client *c;
    TAILQ_ENTRY(attempt) entry;  /* c->attempts */
    TAILQ_ENTRY(attempt) qentry; /* dest->waiting */
    struct dest *dest;
    bool running;
    struct event *ev_start;
    deliver_done_fn done;
    void *arg;
    /* the request, copied */
    char *qid;
    int fd;
    off_t offset;
    uint64_t length;
    char *prepend;
    size_t prepend_len;
    char *sender;
    char **rcpts;
    size_t nrcpts;
    bool smtputf8, eightbit;
    char *envid;
    enum domain_tls tls;
    char *mx_domain;
    uint16_t mx_port;
    /* candidates */
    struct domain_server *cands;
    size_t ncands, cand_next;
    bool implicit_mx;
    const struct domain_server *cur;
    struct sockaddr_storage addr[DELIVER_ADDR_MAX];
    socklen_t addrlen[DELIVER_ADDR_MAX];
    size_t naddr, addr_next;
    bool skip_tls; /* reconnect to the current address in clear */
    bool cache_tried;
    bool restarted; /* a reused connection failed once already */
    struct dns_job *job;
    struct conn *conn;
    /* results */
    struct deliver_rcpt_result *res;
    bool *decided, *accepted;
    size_t *sent;
    size_t nsent, replies, naccepted;
    bool mail_ok, pipelined, rset_done;
    char server[300];
    char tlsdesc[128];
    int last_code;
    char last_enh[16];
    char last_reason[512];
    /* body */
    uint64_t body_off;
    bool prepend_done, bol;
    uint64_t written;
    char last2[2];
};

struct deliver_client {
    struct event_base *base;
    const struct moat_config *cfg;
    SSL_CTX *ssl_ctx;
    bool own_ctx;
    TAILQ_HEAD(, attempt) attempts;
    size_t nattempts;
    TAILQ_HEAD(, dest) dests;
    TAILQ_HEAD(, conn) idle, closing;
    TAILQ_HEAD(, dns_job) jobs;
    struct dns_resolver *resolver; /* MX and address lookups on this loop */
    char *chunk;
    bool freeing;
};

static int conn_on_reply(struct conn *cn);
static void attempt_next(struct attempt *a);
static void attempt_finish(struct attempt *a);
static void trans_begin(struct conn *cn);
static int body_fill(struct conn *cn);
static void conn_quit(struct conn *cn);

/* ---------------------------------------------------------------- helpers */

static const char *policy_name(enum domain_tls t)
{
    return t == DOMAIN_TLS_REQUIRED ? "required" : t == DOMAIN_TLS_NONE ? "none" : "opportunistic";
}

/* valid_path - an address we may put between angle brackets: bounded, no
 * control bytes (CR/LF would inject commands); spaces and brackets can be
 * legal inside a quoted local part, so they pass. Empty only when allowed
 * (null sender). */
static bool valid_path(const char *s, bool allow_empty)
{
    size_t n;
    if (!s)
        return false;
    n = strlen(s);
    if ((n == 0 && !allow_empty) || n > SMTP_PATH_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            return false;
    }
    return true;
}

/* valid_host - a server or MX domain name / literal: printable, no spaces */
static bool valid_host(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* valid_envid - xtext as received: printable ASCII without '=' or space */
static bool valid_envid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SMTP_ENVID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '=')
            return false;
    return true;
}

/* ip_literal - host is an IPv4/IPv6 literal ("[...]" and "IPv6:" allowed);
 * fills sa with port. */
static bool ip_literal(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    char h[256];
    size_t n = core_strlcpy(h, host, sizeof h);
    char *p = h;
    if (n >= sizeof h)
        return false;
    if (p[0] == '[' && n > 2 && p[n - 1] == ']') {
        p[n - 1] = '\0';
        p++;
    }
    if (strncasecmp(p, "IPv6:", 5) == 0)
        p += 5;
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, p, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        *len = sizeof *sin;
        return true;
    }
    if (inet_pton(AF_INET6, p, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        *len = sizeof *sin6;
        return true;
    }
    return false;
}

/* textf - snprintf into a fixed field where truncation is acceptable */
static void textf(char *out, size_t outsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void textf(char *out, size_t outsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, outsz, fmt, ap);
    va_end(ap);
}

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t outsz)
{
    if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)outsz);
    else
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)outsz);
}

static uint32_t rand_u32(void)
{
    uint32_t r;
    evutil_secure_rng_get_bytes(&r, sizeof r);
    return r;
}

void deliver_order_servers(struct domain_server *s, size_t n)
{
    /* stable insertion sort by preference (n is small) */
    for (size_t i = 1; i < n; i++) {
        struct domain_server tmp = s[i];
        size_t j = i;
        while (j > 0 && s[j - 1].preference > tmp.preference) {
            s[j] = s[j - 1];
            j--;
        }
        s[j] = tmp;
    }
    /* Fisher-Yates within each run of equal preference */
    for (size_t start = 0; start < n;) {
        size_t end = start + 1;
        while (end < n && s[end].preference == s[start].preference)
            end++;
        for (size_t i = end - 1; i > start; i--) {
            size_t j = start + rand_u32() % (i - start + 1);
            struct domain_server tmp = s[i];
            s[i] = s[j];
            s[j] = tmp;
        }
        start = end;
    }
}

/* sanitize_reply - untrusted reply text for results: controls and
 * non-ASCII become '?' */
static void sanitize_append(char *dst, size_t dstsz, size_t *len, const char *src, size_t n)
{
    for (size_t i = 0; i < n && *len + 1 < dstsz; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[(*len)++] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
    }
    dst[*len] = '\0';
}

/* ---------------------------------------------------------------- results */

/* decide_status - recipient i gets a final result for this attempt */
static void decide_status(struct attempt *a, size_t i, enum deliver_status st, int code, const char *enh,
                          const char *text)
{
    struct deliver_rcpt_result *r = &a->res[i];
    r->status = st;
    r->code = code;
    core_strlcpy(r->enhanced, enh ? enh : "", sizeof r->enhanced);
    core_strlcpy(r->reply, text ? text : "", sizeof r->reply);
    a->decided[i] = true;
    a->accepted[i] = false;
}

/* decide - the status follows the reply code (2xx ok, 5xx perm, else temp) */
static void decide(struct attempt *a, size_t i, int code, const char *enh, const char *text)
{
    enum deliver_status st = DELIVER_TEMP;
    if (code >= 200 && code < 300)
        st = DELIVER_OK;
    else if (code >= 500 && code < 600)
        st = DELIVER_PERM;
    decide_status(a, i, st, code, enh, text);
}

/* decide_from_reply - from the connection's current reply */
static void decide_from_reply(struct attempt *a, size_t i, const struct conn *cn)
{
    decide(a, i, cn->rcode, cn->renh, cn->rtext);
}

static void decide_accepted(struct attempt *a, int code, const char *enh, const char *text)
{
    for (size_t i = 0; i < a->nrcpts; i++)
        if (a->accepted[i])
            decide(a, i, code, enh, text);
    a->naccepted = 0;
}

static void set_last(struct attempt *a, int code, const char *enh, const char *reason)
{
    a->last_code = code;
    core_strlcpy(a->last_enh, enh ? enh : "", sizeof a->last_enh);
    core_strlcpy(a->last_reason, reason, sizeof a->last_reason);
}

/* ---------------------------------------------------------------- connections */

static void conn_arm(struct conn *cn, uint64_t seconds)
{
    struct timeval tv = {.tv_sec = (time_t)seconds, .tv_usec = 0};
    evtimer_add(cn->timer, &tv);
}

static void conn_unlist(struct conn *cn)
{
    if (!cn->listed)
        return;
    if (cn->state == CS_IDLE)
        TAILQ_REMOVE(&cn->c->idle, cn, entry);
    else
        TAILQ_REMOVE(&cn->c->closing, cn, entry);
    cn->listed = false;
}

/* conn_destroy - close at once and free (no QUIT) */
static void conn_destroy(struct conn *cn)
{
    conn_unlist(cn);
    if (cn->a && cn->a->conn == cn)
        cn->a->conn = NULL;
    if (cn->bev)
        bufferevent_free(cn->bev);
    if (cn->timer)
        event_free(cn->timer);
    free(cn);
}

static void conn_send(struct conn *cn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_send(struct conn *cn, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(bufferevent_get_output(cn->bev), fmt, ap);
    va_end(ap);
    conn_arm(cn, cn->c->cfg->delivery_timeout);
}

/* conn_fail - this server did not work out. Before end of data the attempt
 * moves on to the next address/server; after it, the accepted recipients
 * are deferred (the message may or may not have been taken). polite: send
 * QUIT before closing (the server is still talking SMTP). */
static void conn_fail(struct conn *cn, bool polite, int code, const char *enh, const char *reason)
{
    struct attempt *a = cn->a;
    char esc_server[400], esc_reason[700], esc_qid[80];
    bool after_dot = cn->state == CS_DOT;
    bool reused = cn->reused;
    log_info("deliver attempt qid=%s server=%s result=%s code=%d reason=%s",
             log_escape(a->qid, strlen(a->qid), esc_qid, sizeof esc_qid),
             log_escape(cn->server, strlen(cn->server), esc_server, sizeof esc_server),
             after_dot ? "deferred" : "failover", code,
             log_escape(reason, strlen(reason), esc_reason, sizeof esc_reason));
    core_strlcpy(a->server, cn->server, sizeof a->server);
    core_strlcpy(a->tlsdesc, cn->tls, sizeof a->tlsdesc);
    set_last(a, code, enh, reason);
    a->conn = NULL;
    cn->a = NULL;
    if (polite && !cn->broken)
        conn_quit(cn);
    else
        conn_destroy(cn);
    if (after_dot) {
        decide_accepted(a, code >= 400 && code < 500 ? code : 0, enh, reason);
        attempt_finish(a);
        return;
    }
    bool open = false;
    for (size_t i = 0; i < a->nrcpts; i++) {
        a->accepted[i] = false;
        open |= !a->decided[i];
    }
    a->naccepted = 0;
    if (!open) {
        attempt_finish(a); /* every recipient already has its answer */
        return;
    }
    if (reused && !a->restarted) {
        /* a stale cached connection: start over with fresh ones */
        a->restarted = true;
        a->cand_next = 0;
        a->naddr = a->addr_next = 0;
    }
    attempt_next(a);
}

/* conn_fail_reply - conn_fail with the current reply as the reason */
static void conn_fail_reply(struct conn *cn, bool polite)
{
    char reason[600];
    snprintf(reason, sizeof reason, "%s (in reply to %s)", cn->rtext, state_names[cn->state]);
    if (cn->rcode == 421)
        polite = false;
    conn_fail(cn, polite, cn->rcode, cn->renh, reason);
}

/* conn_park - keep a clean connection for reuse, or QUIT it */
static void conn_park(struct conn *cn)
{
    struct deliver_client *c = cn->c;
    cn->a = NULL;
    if (cn->broken) {
        conn_destroy(cn);
        return;
    }
    if (c->freeing || c->cfg->connection_reuse_time == 0) {
        conn_quit(cn);
        return;
    }
    bufferevent_setwatermark(cn->bev, EV_WRITE, 0, 0);
    cn->state = CS_IDLE;
    cn->reused = false;
    TAILQ_INSERT_TAIL(&c->idle, cn, entry);
    cn->listed = true;
    conn_arm(cn, c->cfg->connection_reuse_time);
}

/* conn_quit - say goodbye; the connection closes on the reply, EOF or timeout */
static void conn_quit(struct conn *cn)
{
    struct deliver_client *c = cn->c;
    conn_unlist(cn);
    cn->a = NULL;
    if (c->freeing || cn->broken) {
        conn_destroy(cn);
        return;
    }
    cn->state = CS_QUIT;
    TAILQ_INSERT_TAIL(&c->closing, cn, entry);
    cn->listed = true;
    evbuffer_add(bufferevent_get_output(cn->bev), "QUIT\r\n", 6);
    uint64_t t = c->cfg->delivery_timeout < QUIT_TIMEOUT ? c->cfg->delivery_timeout : QUIT_TIMEOUT;
    conn_arm(cn, t);
}

/* parse_ehlo_line - one capability line of an EHLO reply */
static void parse_ehlo_line(struct conn *cn, const char *text, size_t len)
{
    char kw[32];
    size_t n = 0;
    while (n < len && n < sizeof kw - 1 && text[n] != ' ') {
        kw[n] = text[n];
        n++;
    }
    kw[n] = '\0';
    if (strcasecmp(kw, "PIPELINING") == 0)
        cn->cap_pipelining = true;
    else if (strcasecmp(kw, "STARTTLS") == 0)
        cn->cap_starttls = true;
    else if (strcasecmp(kw, "8BITMIME") == 0)
        cn->cap_8bitmime = true;
    else if (strcasecmp(kw, "SMTPUTF8") == 0)
        cn->cap_smtputf8 = true;
    else if (strcasecmp(kw, "DSN") == 0)
        cn->cap_dsn = true;
    else if (strcasecmp(kw, "SIZE") == 0)
        cn->cap_size = true;
}

static void caps_reset(struct conn *cn)
{
    cn->cap_pipelining = cn->cap_starttls = cn->cap_8bitmime = false;
    cn->cap_smtputf8 = cn->cap_dsn = cn->cap_size = false;
}

/* reply_line - one line from the server. Returns 0 to keep reading, -1
 * when the caller must stop (the connection may be gone). */
static int reply_line(struct conn *cn, const char *line, size_t len)
{
    int code;
    bool last;
    const char *text;
    size_t tl;
    if (cn->state == CS_CONNECTING) {
        /* data proves the connection is up: libevent may run the read
         * callback before it reports BEV_EVENT_CONNECTED when the greeting
         * arrives in the same poll round as the connect completion */
        cn->state = CS_GREETING;
    }
    if (cn->state == CS_IDLE) {
        conn_destroy(cn); /* the server talks out of turn (e.g. 421 timeout) */
        return -1;
    }
    if (cn->state == CS_QUIT) {
        conn_destroy(cn);
        return -1;
    }
    if (smtp_reply_parse_line(line, len, &code, &last, &text, &tl) < 0 ||
        (cn->rlines > 0 && code != cn->rcode)) {
        cn->broken = true;
        conn_fail(cn, false, 0, "4.5.0", "malformed reply from server");
        return -1;
    }
    if (cn->rlines == 0) {
        cn->rcode = code;
        cn->rlen = 0;
        cn->rtext[0] = '\0';
        cn->renh[0] = '\0';
        smtp_reply_enhanced(code, text, tl, cn->renh, sizeof cn->renh);
    }
    if (++cn->rlines > REPLY_LINES_MAX) {
        cn->broken = true;
        conn_fail(cn, false, 0, "4.5.0", "reply from server has too many lines");
        return -1;
    }
    if (cn->rlen)
        sanitize_append(cn->rtext, sizeof cn->rtext, &cn->rlen, " ", 1);
    sanitize_append(cn->rtext, sizeof cn->rtext, &cn->rlen, text, tl);
    if ((cn->state == CS_EHLO) && cn->rlines > 1)
        parse_ehlo_line(cn, text, tl);
    if (!last)
        return 0;
    cn->rlines = 0;
    return conn_on_reply(cn);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *cn = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char line[REPLY_LINE_MAX + 1];
    for (;;) {
        size_t eol = 0;
        struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_CRLF);
        if (p.pos < 0) {
            if (evbuffer_get_length(in) > REPLY_LINE_MAX) {
                cn->broken = true;
                if (cn->a)
                    conn_fail(cn, false, 0, "4.5.0", "reply line from server too long");
                else
                    conn_destroy(cn);
            }
            return;
        }
        if ((size_t)p.pos > REPLY_LINE_MAX) {
            cn->broken = true;
            if (cn->a)
                conn_fail(cn, false, 0, "4.5.0", "reply line from server too long");
            else
                conn_destroy(cn);
            return;
        }
        evbuffer_remove(in, line, (size_t)p.pos);
        evbuffer_drain(in, eol);
        if (reply_line(cn, line, (size_t)p.pos) < 0)
            return;
        if (cn->bev != bev)
            return; /* upgraded to TLS: the old input must be empty (checked) */
    }
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *cn = arg;
    (void)bev;
    if (cn->state == CS_BODY) {
        conn_arm(cn, cn->c->cfg->delivery_timeout); /* progress */
        body_fill(cn);
    } else if (cn->state == CS_DOT) {
        conn_arm(cn, cn->c->cfg->delivery_timeout); /* all sent: now the final reply */
    }
}

static void tls_record(struct conn *cn)
{
    SSL *ssl = bufferevent_openssl_get_ssl(cn->bev);
    if (!ssl)
        return;
    const SSL_CIPHER *ciph = SSL_get_current_cipher(ssl);
    snprintf(cn->tls, sizeof cn->tls, "%s %s", SSL_get_version(ssl),
             ciph ? SSL_CIPHER_get_name(ciph) : "unknown");
}

static void tls_failed(struct conn *cn, const char *why)
{
    struct attempt *a = cn->a;
    char reason[300];
    unsigned long e = bufferevent_get_openssl_error(cn->bev);
    if (e) {
        char es[160];
        ERR_error_string_n(e, es, sizeof es);
        snprintf(reason, sizeof reason, "TLS handshake failed: %s", es);
    } else {
        snprintf(reason, sizeof reason, "TLS handshake failed: %s", why);
    }
    cn->broken = true;
    if (a->tls == DOMAIN_TLS_OPPORTUNISTIC && a->addr_next > 0) {
        /* try the same address again, in clear */
        a->skip_tls = true;
        a->addr_next--;
    }
    conn_fail(cn, false, 0, "4.7.5", reason);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *cn = arg;
    char reason[300];
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        /* (a CONNECTED that comes after the greeting was read is ignored) */
        if (cn->state == CS_CONNECTING) {
            cn->state = CS_GREETING; /* connect_timeout keeps running until the greeting */
        } else if (cn->state == CS_TLS) {
            tls_record(cn);
            cn->tls_on = true;
            caps_reset(cn);
            cn->state = CS_EHLO;
            conn_send(cn, "EHLO %s\r\n", cn->c->cfg->hostname);
        }
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
        return;
    if (!cn->a) {
        conn_destroy(cn); /* idle or quitting */
        return;
    }
    if (cn->state == CS_TLS) {
        tls_failed(cn, (what & BEV_EVENT_EOF) ? "connection closed" : "error");
        return;
    }
    cn->broken = true;
    if (cn->state == CS_CONNECTING) {
        int err = EVUTIL_SOCKET_ERROR();
        snprintf(reason, sizeof reason, "connect failed: %s",
                 err ? evutil_socket_error_to_string(err) : "error");
        conn_fail(cn, false, 0, "4.4.1", reason);
        return;
    }
    snprintf(reason, sizeof reason, "lost connection with %s during %s", cn->host, state_names[cn->state]);
    conn_fail(cn, false, 0, "4.4.2", reason);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *cn = arg;
    char reason[300];
    (void)fd;
    (void)what;
    if (!cn->a) {
        if (cn->state == CS_IDLE)
            conn_quit(cn);
        else
            conn_destroy(cn);
        return;
    }
    cn->broken = true;
    if (cn->state == CS_TLS) {
        tls_failed(cn, "timeout");
        return;
    }
    if (cn->state == CS_CONNECTING)
        snprintf(reason, sizeof reason, "connect to %s timed out", cn->host);
    else if (cn->state == CS_BODY)
        snprintf(reason, sizeof reason, "timeout sending the message body to %s", cn->host);
    else
        snprintf(reason, sizeof reason, "timeout waiting for %s reply from %s",
                 cn->state == CS_GREETING ? "greeting" : state_names[cn->state], cn->host);
    conn_fail(cn, false, 0, cn->state == CS_CONNECTING ? "4.4.1" : "4.4.2", reason);
}

/* conn_open - start a TCP connection to one address of the current
 * candidate; -1 (reason recorded) if it could not even start */
static int conn_open(struct attempt *a, const struct sockaddr_storage *ss, socklen_t sslen)
{
    struct deliver_client *c = a->c;
    char ip[INET6_ADDRSTRLEN];
    struct conn *cn = xcalloc(1, sizeof *cn);
    cn->c = c;
    cn->a = a;
    cn->state = CS_CONNECTING;
    core_strlcpy(cn->host, a->cur->host, sizeof cn->host);
    addr_text(ss, ip, sizeof ip);
    textf(cn->server, sizeof cn->server, "%s:%u [%s]", a->cur->host, (unsigned)a->cur->port, ip);
    snprintf(cn->key, sizeof cn->key, "%s:%u/%s", a->cur->host, (unsigned)a->cur->port, policy_name(a->tls));
    cn->timer = evtimer_new(c->base, conn_timer_cb, cn);
    cn->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!cn->timer || !cn->bev) {
        set_last(a, 0, "4.3.0", "out of resources creating a connection");
        conn_destroy(cn);
        return -1;
    }
    /* Callbacks are installed only after the connect call: when libevent
     * cannot even create the socket it reports the error synchronously to
     * the event callback and then returns -1; later failures arrive
     * deferred, by which time the callbacks are set. */
    if (bufferevent_socket_connect(cn->bev, (const struct sockaddr *)ss, (int)sslen) < 0) {
        char reason[300];
        int err = EVUTIL_SOCKET_ERROR();
        textf(reason, sizeof reason, "connect to %s failed: %s", cn->server,
              evutil_socket_error_to_string(err));
        set_last(a, 0, "4.4.1", reason);
        conn_destroy(cn);
        return -1;
    }
    bufferevent_setcb(cn->bev, conn_read_cb, conn_write_cb, conn_event_cb, cn);
    bufferevent_enable(cn->bev, EV_READ | EV_WRITE);
    a->conn = cn;
    core_strlcpy(a->server, cn->server, sizeof a->server);
    a->tlsdesc[0] = '\0';
    conn_arm(cn, c->cfg->connect_timeout);
    return 0;
}

/* tls_start - wrap the connection in TLS (client side). Certificates are
 * not verified, also under the "required" policy: required means "never in
 * clear" for now; verification (DANE / MTA-STS / a CA store) is to come. */
static void tls_start(struct conn *cn)
{
    struct deliver_client *c = cn->c;
    SSL *ssl = SSL_new(c->ssl_ctx);
    struct sockaddr_storage ss;
    socklen_t sl;
    if (!ssl) {
        cn->broken = true;
        conn_fail(cn, false, 0, "4.7.5", "TLS: cannot create a session");
        return;
    }
    SSL_set_min_proto_version(ssl, TLS1_2_VERSION);
    SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    if (!ip_literal(cn->host, 0, &ss, &sl))
        SSL_set_tlsext_host_name(ssl, cn->host);
    struct bufferevent *tbev = bufferevent_openssl_filter_new(
        c->base, cn->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!tbev) {
        SSL_free(ssl);
        cn->broken = true;
        conn_fail(cn, false, 0, "4.7.5", "TLS: cannot start the handshake");
        return;
    }
    /* the filter moves data into the socket bufferevent only while that is
     * below its high-water mark: without one, the whole body would pile up
     * there, encrypted, regardless of our own BODY_HIGH */
    bufferevent_setwatermark(cn->bev, EV_WRITE, BODY_LOW, BODY_HIGH);
    cn->bev = tbev;
    bufferevent_openssl_set_allow_dirty_shutdown(tbev, 1);
    bufferevent_setcb(tbev, conn_read_cb, conn_write_cb, conn_event_cb, cn);
    bufferevent_enable(tbev, EV_READ | EV_WRITE);
    cn->state = CS_TLS;
    conn_arm(cn, c->cfg->delivery_timeout);
}

/* after_hello - EHLO/HELO done: STARTTLS per policy, or the transaction */
static void after_hello(struct conn *cn)
{
    struct attempt *a = cn->a;
    if (!cn->tls_on && a->tls != DOMAIN_TLS_NONE) {
        if (cn->cap_starttls && !(a->tls == DOMAIN_TLS_OPPORTUNISTIC && a->skip_tls)) {
            cn->state = CS_STARTTLS;
            conn_send(cn, "STARTTLS\r\n");
            return;
        }
        if (a->tls == DOMAIN_TLS_REQUIRED) {
            conn_fail(cn, true, 0, "4.7.4", "TLS required but not offered");
            return;
        }
    }
    trans_begin(cn);
}

/* trans_begin - RSET on a reused connection, then MAIL (+ RCPTs + DATA
 * when pipelining) */
static void trans_begin(struct conn *cn)
{
    struct attempt *a = cn->a;
    struct evbuffer *out = bufferevent_get_output(cn->bev);
    if (cn->reused && !a->rset_done) {
        cn->state = CS_RSET;
        conn_send(cn, "RSET\r\n");
        return;
    }
    if (a->smtputf8 && !cn->cap_smtputf8) {
        for (size_t i = 0; i < a->nrcpts; i++)
            if (!a->decided[i])
                decide_status(a, i, DELIVER_PERM, 0, "5.6.7", "5.6.7 SMTPUTF8 not supported by the server");
        attempt_finish(a);
        return;
    }
    a->nsent = a->replies = a->naccepted = 0;
    for (size_t i = 0; i < a->nrcpts; i++) {
        a->accepted[i] = false;
        if (!a->decided[i])
            a->sent[a->nsent++] = i;
    }
    if (a->nsent == 0) {
        attempt_finish(a);
        return;
    }
    a->mail_ok = false;
    a->pipelined = cn->cap_pipelining;
    evbuffer_add_printf(out, "MAIL FROM:<%s>", a->sender);
    if (cn->cap_size)
        evbuffer_add_printf(out, " SIZE=%llu", (unsigned long long)(a->length + a->prepend_len));
    if (a->eightbit && cn->cap_8bitmime)
        evbuffer_add_printf(out, " BODY=8BITMIME");
    if (a->smtputf8)
        evbuffer_add_printf(out, " SMTPUTF8");
    if (a->envid && cn->cap_dsn)
        evbuffer_add_printf(out, " ENVID=%s", a->envid);
    evbuffer_add(out, "\r\n", 2);
    if (a->pipelined) {
        for (size_t k = 0; k < a->nsent; k++)
            evbuffer_add_printf(out, "RCPT TO:<%s>\r\n", a->rcpts[a->sent[k]]);
        evbuffer_add(out, "DATA\r\n", 6);
    }
    cn->state = CS_MAIL;
    conn_arm(cn, cn->c->cfg->delivery_timeout);
}

/* stuff - append dot-stuffed bytes to out, tracking line starts and the
 * last two bytes of the stream (for the final CRLF) */
static void stuff(struct attempt *a, struct evbuffer *out, const char *p, size_t n)
{
    if (n == 0)
        return;
    if (n >= 2) {
        a->last2[0] = p[n - 2];
        a->last2[1] = p[n - 1];
    } else {
        a->last2[0] = a->last2[1];
        a->last2[1] = p[0];
    }
    a->written += n;
    while (n) {
        if (a->bol && *p == '.')
            evbuffer_add(out, ".", 1);
        /* one evbuffer_add per run of lines up to a line that starts with
         * '.' (or the end of the chunk), not one per line */
        size_t seg = n;
        bool bol = false;
        for (const char *q = p, *nl; (nl = memchr(q, '\n', n - (size_t)(q - p))) != NULL; q = nl + 1) {
            size_t after = (size_t)(nl - p) + 1;
            if (after == n || p[after] == '.') {
                seg = after;
                bol = true;
                break;
            }
        }
        evbuffer_add(out, p, seg);
        a->bol = bol;
        p += seg;
        n -= seg;
    }
}

/* body_fill - queue more of the message; -1 if the attempt ended */
static int body_fill(struct conn *cn)
{
    struct attempt *a = cn->a;
    struct evbuffer *out = bufferevent_get_output(cn->bev);
    while (cn->state == CS_BODY && evbuffer_get_length(out) < BODY_HIGH) {
        if (!a->prepend_done) {
            a->prepend_done = true;
            if (a->prepend_len)
                stuff(a, out, a->prepend, a->prepend_len);
            continue;
        }
        if (a->body_off < a->length) {
            uint64_t left = a->length - a->body_off;
            size_t want = left < BODY_CHUNK ? (size_t)left : BODY_CHUNK;
            ssize_t r = pread(a->fd, cn->c->chunk, want, a->offset + (off_t)a->body_off);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                char reason[200];
                snprintf(reason, sizeof reason, "local error reading the queued message: %s",
                         r < 0 ? strerror(errno) : "unexpected end of file");
                log_error("deliver read failed qid=%s reason=%s", a->qid, r < 0 ? strerror(errno) : "eof");
                cn->broken = true;
                decide_accepted(a, 0, "4.3.0", reason);
                attempt_finish(a);
                return -1;
            }
            stuff(a, out, cn->c->chunk, (size_t)r);
            a->body_off += (uint64_t)r;
            continue;
        }
        /* end of data: the message must end with CRLF before the dot */
        if (a->written && !(a->last2[0] == '\r' && a->last2[1] == '\n'))
            evbuffer_add(out, a->last2[1] == '\r' ? "\n" : "\r\n", a->last2[1] == '\r' ? 1 : 2);
        evbuffer_add(out, ".\r\n", 3);
        cn->state = CS_DOT;
        bufferevent_setwatermark(cn->bev, EV_WRITE, 0, 0);
    }
    return 0;
}

/* body_start - after 354; -1 if the attempt ended */
static int body_start(struct conn *cn)
{
    struct attempt *a = cn->a;
    a->body_off = 0;
    a->prepend_done = false;
    a->bol = true;
    a->written = 0;
    a->last2[0] = a->last2[1] = '\0';
    cn->state = CS_BODY;
    bufferevent_setwatermark(cn->bev, EV_WRITE, BODY_LOW, 0);
    conn_arm(cn, cn->c->cfg->delivery_timeout);
    return body_fill(cn);
}

/* conn_on_reply - a complete reply arrived; drive the dialogue. Returns 0
 * to keep reading, -1 to stop (connection gone or replaced). */
static int conn_on_reply(struct conn *cn)
{
    struct attempt *a = cn->a;
    int code = cn->rcode;
    bool ok = code >= 200 && code < 300;
    conn_arm(cn, cn->c->cfg->delivery_timeout);
    switch (cn->state) {
    case CS_GREETING:
        if (!ok) {
            conn_fail_reply(cn, true);
            return -1;
        }
        cn->state = CS_EHLO;
        caps_reset(cn);
        conn_send(cn, "EHLO %s\r\n", cn->c->cfg->hostname);
        return 0;
    case CS_EHLO:
        if (ok) {
            after_hello(cn);
            return -1;
        }
        if (code >= 500 && code < 600) {
            caps_reset(cn);
            cn->state = CS_HELO;
            conn_send(cn, "HELO %s\r\n", cn->c->cfg->hostname);
            return 0;
        }
        conn_fail_reply(cn, true);
        return -1;
    case CS_HELO:
        if (!ok) {
            conn_fail_reply(cn, true);
            return -1;
        }
        after_hello(cn);
        return -1;
    case CS_STARTTLS:
        if (code == 220) {
            if (evbuffer_get_length(bufferevent_get_input(cn->bev)) > 0) {
                cn->broken = true;
                conn_fail(cn, false, 0, "4.5.0", "unexpected data after the reply to STARTTLS");
                return -1;
            }
            tls_start(cn);
            return -1;
        }
        if (a->tls == DOMAIN_TLS_REQUIRED || code == 421) {
            conn_fail_reply(cn, true);
            return -1;
        }
        trans_begin(cn); /* opportunistic: carry on in clear */
        return -1;
    case CS_RSET:
        if (!ok) {
            conn_fail_reply(cn, false);
            return -1;
        }
        a->rset_done = true;
        trans_begin(cn);
        return -1;
    case CS_MAIL:
        if (code == 421) {
            conn_fail_reply(cn, false);
            return -1;
        }
        a->mail_ok = ok;
        if (!ok)
            for (size_t k = 0; k < a->nsent; k++)
                decide_from_reply(a, a->sent[k], cn);
        if (a->pipelined) {
            cn->state = CS_RCPT;
            return 0;
        }
        if (!ok) {
            attempt_finish(a);
            return -1;
        }
        cn->state = CS_RCPT;
        conn_send(cn, "RCPT TO:<%s>\r\n", a->rcpts[a->sent[0]]);
        return 0;
    case CS_RCPT: {
        if (code == 421) {
            conn_fail_reply(cn, false);
            return -1;
        }
        size_t i = a->sent[a->replies++];
        if (a->mail_ok) {
            if (ok) {
                a->accepted[i] = true;
                a->naccepted++;
            } else {
                decide_from_reply(a, i, cn);
            }
        }
        if (a->replies < a->nsent) {
            if (!a->pipelined)
                conn_send(cn, "RCPT TO:<%s>\r\n", a->rcpts[a->sent[a->replies]]);
            return 0;
        }
        if (a->pipelined) {
            cn->state = CS_DATA;
            return 0;
        }
        if (a->naccepted == 0) {
            attempt_finish(a);
            return -1;
        }
        cn->state = CS_DATA;
        conn_send(cn, "DATA\r\n");
        return 0;
    }
    case CS_DATA:
        if (code == 354) {
            if (a->naccepted > 0 && a->mail_ok) {
                return body_start(cn);
            }
            cn->state = CS_DOT_EMPTY; /* pipelined DATA after all RCPTs failed */
            conn_send(cn, ".\r\n");
            return 0;
        }
        if (code == 421 && a->naccepted > 0) {
            conn_fail_reply(cn, false);
            return -1;
        }
        if (code == 421)
            cn->broken = true;
        if (a->naccepted > 0)
            decide_accepted(a, ok ? 451 : code, cn->renh, cn->rtext);
        attempt_finish(a);
        return -1;
    case CS_BODY:
        /* a reply before we finished sending: the server gave up on us */
        cn->broken = true;
        decide_accepted(a, ok ? 451 : code, cn->renh, cn->rtext);
        attempt_finish(a);
        return -1;
    case CS_DOT:
        if (code == 421)
            cn->broken = true;
        decide_accepted(a, code, cn->renh, cn->rtext);
        attempt_finish(a);
        return -1;
    case CS_DOT_EMPTY:
        attempt_finish(a);
        return -1;
    default:
        conn_destroy(cn);
        return -1;
    }
}

/* ---------------------------------------------------------------- attempts */

static void dest_pump(struct dest *d, struct deliver_client *c)
{
    while (d->active < c->cfg->delivery_concurrency && !TAILQ_EMPTY(&d->waiting)) {
        struct attempt *a = TAILQ_FIRST(&d->waiting);
        TAILQ_REMOVE(&d->waiting, a, qentry);
        a->running = true;
        d->active++;
        event_active(a->ev_start, EV_TIMEOUT, 1);
    }
}

static void dest_release(struct deliver_client *c, struct dest *d)
{
    if (d->active == 0 && TAILQ_EMPTY(&d->waiting)) {
        TAILQ_REMOVE(&c->dests, d, entry);
        free(d->key);
        free(d);
    }
}

static void attempt_free(struct attempt *a)
{
    if (a->ev_start)
        event_free(a->ev_start);
    if (a->fd >= 0)
        close(a->fd);
    free(a->qid);
    free(a->prepend);
    free(a->sender);
    for (size_t i = 0; i < a->nrcpts; i++)
        free(a->rcpts[i]);
    free(a->rcpts);
    free(a->envid);
    free(a->mx_domain);
    free(a->cands);
    free(a->res);
    free(a->decided);
    free(a->accepted);
    free(a->sent);
    free(a);
}

static const char *status_name(enum deliver_status s)
{
    return s == DELIVER_OK ? "ok" : s == DELIVER_PERM ? "perm" : "temp";
}

/* attempt_finish - report and free. Must be the last thing a caller does
 * with a, its connection and (because the callback may free it) c. */
static void attempt_finish(struct attempt *a)
{
    struct deliver_client *c = a->c;
    struct deliver_outcome out;
    char eq[80], er[300], es[400], et[200], ex[700];

    /* open recipients: DELIVER_TEMP with the last reason. A 4xx keeps its
     * code (reply = the server's text); any other server reply (a 5xx
     * greeting is a reason to try later, not to bounce) becomes a local
     * reason that quotes the code. */
    char enh[16], reason[600];
    int code = 0;
    core_strlcpy(enh, a->last_enh[0] ? a->last_enh : "4.4.1", sizeof enh);
    if (enh[0] == '5')
        enh[0] = '4';
    if (a->last_code >= 400 && a->last_code < 500) {
        code = a->last_code;
        core_strlcpy(reason, a->last_reason, sizeof reason);
    } else if (a->last_code) {
        snprintf(reason, sizeof reason, "%d %s", a->last_code, a->last_reason);
    } else {
        core_strlcpy(reason, a->last_reason[0] ? a->last_reason : "no server could be reached",
                     sizeof reason);
    }
    for (size_t i = 0; i < a->nrcpts; i++)
        if (!a->decided[i])
            decide_status(a, i, DELIVER_TEMP, code, enh, reason);
    if (a->conn) {
        struct conn *cn = a->conn;
        a->conn = NULL;
        core_strlcpy(a->server, cn->server, sizeof a->server);
        core_strlcpy(a->tlsdesc, cn->tls, sizeof a->tlsdesc);
        conn_park(cn);
    }
    if (a->job) {
        TAILQ_REMOVE(&c->jobs, a->job, entry);
        dns_job_abandon(a->job);
        a->job = NULL;
    }
    TAILQ_REMOVE(&c->attempts, a, entry);
    c->nattempts--;
    if (a->dest) {
        if (a->running)
            a->dest->active--;
        else
            TAILQ_REMOVE(&a->dest->waiting, a, qentry);
        if (!c->freeing)
            dest_pump(a->dest, c);
        dest_release(c, a->dest);
        a->dest = NULL;
    }
    log_escape(a->qid, strlen(a->qid), eq, sizeof eq);
    log_escape(a->server, strlen(a->server), es, sizeof es);
    log_escape(a->tlsdesc, strlen(a->tlsdesc), et, sizeof et);
    for (size_t i = 0; i < a->nrcpts; i++) {
        const struct deliver_rcpt_result *r = &a->res[i];
        log_info("deliver attempt qid=%s rcpt=%s server=%s tls=%s result=%s code=%d status=%s reply=%s", eq,
                 log_escape(a->rcpts[i], strlen(a->rcpts[i]), er, sizeof er), es[0] ? es : "-",
                 et[0] ? et : "-", status_name(r->status), r->code, r->enhanced[0] ? r->enhanced : "-",
                 log_escape(r->reply, strlen(r->reply), ex, sizeof ex));
    }
    memset(&out, 0, sizeof out);
    out.qid = a->qid;
    out.rcpt = a->res;
    out.nrcpts = a->nrcpts;
    core_strlcpy(out.server, a->server, sizeof out.server);
    core_strlcpy(out.tls, a->tlsdesc, sizeof out.tls);
    a->done(a->arg, &out);
    attempt_free(a);
}

/* attempt_fail_all - end the attempt with one result for every open rcpt */
static void attempt_fail_all(struct attempt *a, enum deliver_status st, const char *enh, const char *reason)
{
    for (size_t i = 0; i < a->nrcpts; i++)
        if (!a->decided[i])
            decide_status(a, i, st, 0, enh, reason);
    attempt_finish(a);
}

/* cache_take - an idle connection to one of the candidates, or NULL */
static struct conn *cache_take(struct attempt *a)
{
    struct deliver_client *c = a->c;
    char key[300];
    for (size_t k = 0; k < a->ncands; k++) {
        snprintf(key, sizeof key, "%s:%u/%s", a->cands[k].host, (unsigned)a->cands[k].port,
                 policy_name(a->tls));
        struct conn *cn;
        TAILQ_FOREACH(cn, &c->idle, entry)
        {
            if (strcmp(cn->key, key) == 0) {
                conn_unlist(cn);
                evtimer_del(cn->timer);
                return cn;
            }
        }
    }
    return NULL;
}

static void job_done(struct dns_job *job);

static void job_submit(struct attempt *a, enum dns_job_kind kind, const char *name, uint16_t port)
{
    struct deliver_client *c = a->c;
    struct dns_job *job = dns_job_new(kind, name, port, job_done);
    job->owner = a;
    if (dns_job_start(job, c->resolver, !c->cfg->dns_server[0]) < 0) {
        dns_job_free(job);
        attempt_fail_all(a, DELIVER_TEMP, "4.3.0", "cannot start a DNS lookup");
        return;
    }
    a->job = job;
    TAILQ_INSERT_TAIL(&c->jobs, job, entry);
}

/* attempt_next - connect to the next address, resolve the next host, or
 * give up with the last reason */
static void attempt_next(struct attempt *a)
{
    if (!a->cache_tried) {
        a->cache_tried = true;
        struct conn *cn = cache_take(a);
        if (cn) {
            cn->a = a;
            cn->reused = true;
            a->conn = cn;
            a->rset_done = false;
            core_strlcpy(a->server, cn->server, sizeof a->server);
            core_strlcpy(a->tlsdesc, cn->tls, sizeof a->tlsdesc);
            trans_begin(cn);
            return;
        }
    }
    for (;;) {
        if (a->addr_next < a->naddr) {
            size_t k = a->addr_next++;
            if (conn_open(a, &a->addr[k], a->addrlen[k]) == 0)
                return;
            continue;
        }
        if (a->cand_next >= a->ncands) {
            attempt_finish(a); /* every open recipient: DELIVER_TEMP, the last reason */
            return;
        }
        a->cur = &a->cands[a->cand_next++];
        a->skip_tls = false;
        a->naddr = a->addr_next = 0;
        if (ip_literal(a->cur->host, a->cur->port, &a->addr[0], &a->addrlen[0])) {
            a->naddr = 1;
            continue;
        }
        job_submit(a, DNS_JOB_ADDR, a->cur->host, a->cur->port);
        return;
    }
}

/* attempt_dns_done - a lookup for a came back */
static void attempt_dns_done(struct attempt *a, struct dns_job *job)
{
    if (job->kind == DNS_JOB_MX) {
        switch (job->status) {
        case DNS_OK:
            a->cands = xcalloc(job->nmx, sizeof *a->cands);
            memcpy(a->cands, job->mx, job->nmx * sizeof *a->cands);
            a->ncands = job->nmx;
            deliver_order_servers(a->cands, a->ncands);
            break;
        case DNS_NODATA: /* RFC 5321 5.1: the domain itself, as an implicit MX */
            a->cands = xcalloc(1, sizeof *a->cands);
            core_strlcpy(a->cands[0].host, a->mx_domain, sizeof a->cands[0].host);
            a->cands[0].port = a->mx_port;
            a->ncands = 1;
            a->implicit_mx = true;
            break;
        case DNS_NULLMX:
            attempt_fail_all(a, DELIVER_PERM, "5.1.10", job->err);
            return;
        case DNS_NOTFOUND:
            attempt_fail_all(a, DELIVER_PERM, "5.1.2", job->err);
            return;
        default:
            attempt_fail_all(a, DELIVER_TEMP, "4.4.3", job->err);
            return;
        }
        attempt_next(a);
        return;
    }
    if (job->status == DNS_OK) {
        memcpy(a->addr, job->addr, sizeof a->addr);
        memcpy(a->addrlen, job->addrlen, sizeof a->addrlen);
        a->naddr = job->naddr;
        a->addr_next = 0;
    } else if (a->implicit_mx && (job->status == DNS_NOTFOUND || job->status == DNS_NODATA)) {
        attempt_fail_all(a, DELIVER_PERM, "5.1.2", job->err);
        return;
    } else {
        set_last(a, 0, "4.4.3", job->err);
    }
    attempt_next(a);
}

/* job_done - a lookup of an attempt came back (on the loop; the attempt's
 * callback may free the client, so nothing of it is touched afterwards) */
static void job_done(struct dns_job *job)
{
    struct attempt *a = job->owner;
    TAILQ_REMOVE(&a->c->jobs, job, entry);
    a->job = NULL;
    attempt_dns_done(a, job);
    dns_job_free(job);
}

static void attempt_start_cb(evutil_socket_t fd, short what, void *arg)
{
    struct attempt *a = arg;
    (void)fd;
    (void)what;
    if (a->mx_domain) {
        job_submit(a, DNS_JOB_MX, a->mx_domain, a->mx_port);
        return;
    }
    deliver_order_servers(a->cands, a->ncands);
    attempt_next(a);
}

/* dest_key - the concurrency bucket of a route */
static char *dest_key(const struct deliver_request *req, uint16_t mxport)
{
    struct buf b;
    buf_init(&b, SIZE_MAX);
    if (req->route.mx_domain) {
        buf_printf(&b, "mx/%s/%u/", policy_name(req->route.tls), (unsigned)mxport);
        for (const char *p = req->route.mx_domain; *p; p++) {
            char ch = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
            buf_append(&b, &ch, 1);
        }
    } else {
        buf_printf(&b, "srv/%s", policy_name(req->route.tls));
        for (size_t i = 0; i < req->route.nservers; i++)
            buf_printf(&b, "/%s:%u:%u", req->route.servers[i].host, (unsigned)req->route.servers[i].port,
                       (unsigned)req->route.servers[i].preference);
    }
    char *k = xstrdup(buf_cstr(&b));
    buf_free(&b);
    return k;
}

int deliver_submit(struct deliver_client *c, const struct deliver_request *req, deliver_done_fn done,
                   void *arg)
{
    if (!c || !req || !done || c->freeing)
        return -1;
    if (req->fd < 0 || req->offset < 0 || !req->rcpts || req->nrcpts == 0 || req->nrcpts > RCPTS_MAX)
        return -1;
    if (req->prepend_len && !req->prepend)
        return -1;
    if (!valid_path(req->sender, true))
        return -1;
    for (size_t i = 0; i < req->nrcpts; i++)
        if (!valid_path(req->rcpts[i], false))
            return -1;
    if (req->envid && req->envid[0] && !valid_envid(req->envid))
        return -1;
    bool mx = req->route.mx_domain != NULL;
    if (mx == (req->route.servers != NULL && req->route.nservers > 0))
        return -1;
    if (mx && (strlen(req->route.mx_domain) > 253 || !valid_host(req->route.mx_domain)))
        return -1;
    for (size_t i = 0; !mx && i < req->route.nservers; i++) {
        const char *h = req->route.servers[i].host;
        if (memchr(h, '\0', sizeof req->route.servers[i].host) == NULL || !valid_host(h))
            return -1;
    }
    int fd = fcntl(req->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return -1;

    struct attempt *a = xcalloc(1, sizeof *a);
    a->c = c;
    a->fd = fd;
    a->done = done;
    a->arg = arg;
    a->qid = xstrdup(req->qid ? req->qid : "");
    a->offset = req->offset;
    a->length = req->length;
    if (req->prepend_len) {
        a->prepend = xmalloc(req->prepend_len);
        memcpy(a->prepend, req->prepend, req->prepend_len);
        a->prepend_len = req->prepend_len;
    }
    a->sender = xstrdup(req->sender);
    a->nrcpts = req->nrcpts;
    a->rcpts = xcalloc(req->nrcpts, sizeof *a->rcpts);
    for (size_t i = 0; i < req->nrcpts; i++)
        a->rcpts[i] = xstrdup(req->rcpts[i]);
    a->smtputf8 = req->smtputf8;
    a->eightbit = req->eightbit;
    a->envid = req->envid && req->envid[0] ? xstrdup(req->envid) : NULL;
    a->tls = req->route.tls;
    a->mx_port = req->route.port ? req->route.port : 25;
    if (mx) {
        a->mx_domain = xstrdup(req->route.mx_domain);
    } else {
        a->cands = xcalloc(req->route.nservers, sizeof *a->cands);
        memcpy(a->cands, req->route.servers, req->route.nservers * sizeof *a->cands);
        a->ncands = req->route.nservers;
        for (size_t i = 0; i < a->ncands; i++)
            if (a->cands[i].port == 0)
                a->cands[i].port = 25;
    }
    a->res = xcalloc(a->nrcpts, sizeof *a->res);
    a->decided = xcalloc(a->nrcpts, sizeof *a->decided);
    a->accepted = xcalloc(a->nrcpts, sizeof *a->accepted);
    a->sent = xcalloc(a->nrcpts, sizeof *a->sent);
    a->ev_start = evtimer_new(c->base, attempt_start_cb, a);
    if (!a->ev_start) {
        attempt_free(a);
        return -1;
    }

    char *key = dest_key(req, a->mx_port);
    struct dest *d;
    TAILQ_FOREACH(d, &c->dests, entry)
    if (strcmp(d->key, key) == 0)
        break;
    if (!d) {
        d = xcalloc(1, sizeof *d);
        d->key = key;
        TAILQ_INIT(&d->waiting);
        TAILQ_INSERT_TAIL(&c->dests, d, entry);
    } else {
        free(key);
    }
    a->dest = d;
    TAILQ_INSERT_TAIL(&d->waiting, a, qentry);
    TAILQ_INSERT_TAIL(&c->attempts, a, entry);
    c->nattempts++;
    dest_pump(d, c); /* only activates events: the work starts on the loop */
    return 0;
}

size_t deliver_client_busy(const struct deliver_client *c)
{
    return c ? c->nattempts : 0;
}

struct deliver_client *deliver_client_new(struct event_base *base, const struct moat_config *cfg,
                                          SSL_CTX *client_ctx)
{
    if (!base || !cfg)
        return NULL;
    char err[300];
    struct dns_resolver *res =
        dns_resolver_new(base, cfg->dns_server, (unsigned)cfg->dns_timeout_ms, (unsigned)cfg->dns_tries, err, sizeof err);
    if (!res) {
        log_error("deliver: no resolver: %s", err);
        return NULL;
    }
    struct deliver_client *c = xcalloc(1, sizeof *c);
    c->base = base;
    c->cfg = cfg;
    c->resolver = res;
    TAILQ_INIT(&c->attempts);
    TAILQ_INIT(&c->dests);
    TAILQ_INIT(&c->idle);
    TAILQ_INIT(&c->closing);
    TAILQ_INIT(&c->jobs);
    c->chunk = xmalloc(BODY_CHUNK);
    if (client_ctx) {
        c->ssl_ctx = client_ctx;
    } else {
        c->ssl_ctx = SSL_CTX_new(TLS_client_method());
        c->own_ctx = true;
        if (c->ssl_ctx) {
            SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
            SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_NONE, NULL);
        }
    }
    if (!c->ssl_ctx) {
        deliver_client_free(c);
        return NULL;
    }
    return c;
}

void deliver_client_free(struct deliver_client *c)
{
    struct attempt *a;
    struct conn *cn;
    if (!c || c->freeing)
        return;
    c->freeing = true;
    while ((a = TAILQ_FIRST(&c->attempts)) != NULL) {
        if (a->conn) {
            struct conn *x = a->conn;
            a->conn = NULL;
            x->a = NULL;
            conn_destroy(x);
        }
        for (size_t i = 0; i < a->nrcpts; i++)
            if (a->accepted[i]) {
                a->accepted[i] = false;
                a->decided[i] = false;
            }
        set_last(a, 0, "4.3.2", "shutting down");
        attempt_fail_all(a, DELIVER_TEMP, "4.3.2", "shutting down");
    }
    while ((cn = TAILQ_FIRST(&c->idle)) != NULL) {
        if (!cn->tls_on && cn->bev) {
            /* best effort goodbye; the loop will not run for us again */
            int fd = bufferevent_getfd(cn->bev);
            if (fd >= 0) {
                ssize_t w = send(fd, "QUIT\r\n", 6, MSG_NOSIGNAL | MSG_DONTWAIT);
                (void)w;
            }
        }
        conn_destroy(cn);
    }
    while ((cn = TAILQ_FIRST(&c->closing)) != NULL)
        conn_destroy(cn);
    struct dns_job *job;
    while ((job = TAILQ_FIRST(&c->jobs)) != NULL) {
        TAILQ_REMOVE(&c->jobs, job, entry);
        dns_job_abandon(job);
    }
    /* abandoned jobs are freed as the resolver cancels their lookups */
    dns_resolver_free(c->resolver);
    struct dest *d;
    while ((d = TAILQ_FIRST(&c->dests)) != NULL) {
        TAILQ_REMOVE(&c->dests, d, entry);
        free(d->key);
        free(d);
    }
    if (c->own_ctx && c->ssl_ctx)
        SSL_CTX_free(c->ssl_ctx);
    free(c->chunk);
    free(c);
}
