/* test_deliver.c - unit tests for deliver/: server ordering, and the SMTP
 * client against in-process fake SMTP servers and a fake DNS server on
 * 127.0.0.1 (same event loop). Every dialogue checks the exact bytes the
 * fake server received. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/core.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "deliver/deliver.h"

/* ================================================================ fake SMTP server */

struct rule {
    const char *prefix; /* case-insensitive command prefix */
    const char *reply;  /* CRLF-ended reply text, or STALL / CLOSE / STARTTLS / STARTTLS-BROKEN */
};

struct fsrv;

struct fconn {
    struct fsrv *s;
    struct bufferevent *bev;
    bool data;
    bool closing;
};

struct fsrv {
    struct event_base *base;
    struct evconnlistener *lis;
    uint16_t port;
    const char *greeting;     /* NULL: never greet (stall) */
    const char *ehlo;         /* full EHLO reply; NULL: a default without extensions */
    const struct rule *rules; /* tried before the defaults */
    const char *data_reply;   /* after the end of data; NULL: "250 2.0.0 Ok: queued\r\n" */
    SSL_CTX *tls;
    struct buf log; /* every byte received, in order, TLS decrypted */
    int nconns;
    int max_batch; /* most command lines taken from one read */
    int quits;
    struct fconn *conns[16];
};

static void fconn_free(struct fconn *fc)
{
    struct fsrv *s = fc->s;
    for (int i = 0; i < 16; i++)
        if (s->conns[i] == fc)
            s->conns[i] = NULL;
    bufferevent_free(fc->bev);
    free(fc);
}

static void fsrv_write(struct fconn *fc, const char *text)
{
    bufferevent_write(fc->bev, text, strlen(text));
}

static void fconn_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        fconn_free(arg);
}

static void fconn_written(struct bufferevent *bev, void *arg)
{
    struct fconn *fc = arg;
    (void)bev;
    if (fc->closing)
        fconn_free(fc);
}

static void fconn_read(struct bufferevent *bev, void *arg);

/* fconn_reply - answer one command line (no CRLF); false if fc is gone or
 * reading must stop */
static bool fconn_reply(struct fconn *fc, const char *line)
{
    struct fsrv *s = fc->s;
    const char *reply = NULL;
    if (fc->data) {
        if (strcmp(line, ".") != 0)
            return true;
        fc->data = false;
        reply = s->data_reply ? s->data_reply : "250 2.0.0 Ok: queued\r\n";
    } else {
        for (const struct rule *r = s->rules; r && r->prefix; r++)
            if (strncasecmp(line, r->prefix, strlen(r->prefix)) == 0) {
                reply = r->reply;
                break;
            }
        if (!reply) {
            if (strncasecmp(line, "EHLO", 4) == 0)
                reply = s->ehlo ? s->ehlo : "250 fake.test\r\n";
            else if (strncasecmp(line, "HELO", 4) == 0)
                reply = "250 fake.test\r\n";
            else if (strncasecmp(line, "MAIL", 4) == 0)
                reply = "250 2.1.0 Ok\r\n";
            else if (strncasecmp(line, "RCPT", 4) == 0)
                reply = "250 2.1.5 Ok\r\n";
            else if (strncasecmp(line, "DATA", 4) == 0)
                reply = "354 End data with <CR><LF>.<CR><LF>\r\n";
            else if (strncasecmp(line, "RSET", 4) == 0)
                reply = "250 2.0.0 Ok\r\n";
            else if (strncasecmp(line, "QUIT", 4) == 0) {
                s->quits++;
                fsrv_write(fc, "221 2.0.0 Bye\r\n");
                fc->closing = true;
                return false;
            } else
                reply = "502 5.5.2 Error: command not recognized\r\n";
        }
    }
    if (strcmp(reply, "STALL") == 0)
        return true;
    if (strcmp(reply, "CLOSE") == 0) {
        fconn_free(fc);
        return false;
    }
    if (strcmp(reply, "STARTTLS-BROKEN") == 0) {
        fsrv_write(fc, "220 2.0.0 Ready to start TLS\r\n");
        fc->closing = true; /* then hang up instead of a handshake */
        return false;
    }
    if (strcmp(reply, "STARTTLS") == 0) {
        fsrv_write(fc, "220 2.0.0 Ready to start TLS\r\n");
        SSL *ssl = SSL_new(s->tls);
        struct bufferevent *t =
            bufferevent_openssl_filter_new(s->base, fc->bev, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                           BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        assert_non_null(t);
        bufferevent_openssl_set_allow_dirty_shutdown(t, 1);
        fc->bev = t;
        bufferevent_setcb(t, fconn_read, fconn_written, fconn_event, fc);
        bufferevent_enable(t, EV_READ | EV_WRITE);
        return false;
    }
    if (strncmp(reply, "354", 3) == 0)
        fc->data = true;
    fsrv_write(fc, reply);
    return true;
}

static void fconn_read(struct bufferevent *bev, void *arg)
{
    struct fconn *fc = arg;
    struct fsrv *s = fc->s;
    struct evbuffer *in = bufferevent_get_input(bev);
    int batch = 0;
    char *line;
    size_t n;
    while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT)) != NULL) {
        buf_append(&s->log, line, n);
        buf_append(&s->log, "\r\n", 2);
        if (!fc->data)
            batch++;
        if (batch > s->max_batch)
            s->max_batch = batch;
        bool more = fconn_reply(fc, line);
        free(line);
        if (!more)
            return;
    }
}

static void fsrv_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen,
                        void *arg)
{
    struct fsrv *s = arg;
    (void)lis;
    (void)sa;
    (void)salen;
    struct fconn *fc = calloc(1, sizeof *fc);
    fc->s = s;
    fc->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(fc->bev, fconn_read, fconn_written, fconn_event, fc);
    bufferevent_enable(fc->bev, EV_READ | EV_WRITE);
    s->nconns++;
    for (int i = 0; i < 16; i++)
        if (!s->conns[i]) {
            s->conns[i] = fc;
            break;
        }
    if (s->greeting)
        fsrv_write(fc, s->greeting);
}

static void fsrv_start(struct fsrv *s, struct event_base *base)
{
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    s->base = base;
    buf_init(&s->log, 64 * 1024 * 1024);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->lis = evconnlistener_new_bind(base, fsrv_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                     (struct sockaddr *)&sin, sizeof sin);
    assert_non_null(s->lis);
    getsockname(evconnlistener_get_fd(s->lis), (struct sockaddr *)&sin, &sl);
    s->port = ntohs(sin.sin_port);
}

static void fsrv_stop(struct fsrv *s)
{
    for (int i = 0; i < 16; i++)
        if (s->conns[i])
            fconn_free(s->conns[i]);
    evconnlistener_free(s->lis);
    buf_free(&s->log);
}

/* dead_port - a loopback port with nobody listening */
static uint16_t dead_port(void)
{
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    close(fd);
    return ntohs(sin.sin_port);
}

/* ================================================================ threaded fake server */

/* A blocking one-connection SMTP server in its own thread that greets the
 * moment it accepts: with the client's loop paused, the greeting and the
 * connect completion reach the client in the same poll round. */
struct tsrv {
    int lfd;
    uint16_t port;
    pthread_t thread;
    struct buf log;
};

static void *tsrv_main(void *arg)
{
    struct tsrv *t = arg;
    int fd = accept(t->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    ssize_t w = write(fd, "220 fast.test ESMTP\r\n", 21);
    char in[4096], line[1024];
    size_t ll = 0;
    bool data = false;
    for (;;) {
        ssize_t n = read(fd, in, sizeof in);
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (ll < sizeof line - 1)
                line[ll++] = in[i];
            if (in[i] != '\n')
                continue;
            line[ll] = '\0';
            buf_append(&t->log, line, ll);
            const char *r = NULL;
            if (data) {
                if (strcmp(line, ".\r\n") == 0) {
                    data = false;
                    r = "250 2.0.0 Ok\r\n";
                }
            } else if (strncmp(line, "DATA", 4) == 0) {
                data = true;
                r = "354 go\r\n";
            } else if (strncmp(line, "QUIT", 4) == 0) {
                w = write(fd, "221 bye\r\n", 9);
                close(fd);
                (void)w;
                return NULL;
            } else {
                r = "250 ok\r\n";
            }
            if (r)
                w = write(fd, r, strlen(r));
            ll = 0;
        }
    }
    (void)w;
    close(fd);
    return NULL;
}

static void tsrv_start(struct tsrv *t)
{
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    buf_init(&t->log, 1 << 20);
    t->lfd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(t->lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(t->lfd, 4), 0);
    getsockname(t->lfd, (struct sockaddr *)&sin, &sl);
    t->port = ntohs(sin.sin_port);
    assert_int_equal(pthread_create(&t->thread, NULL, tsrv_main, t), 0);
}

/* ================================================================ fake DNS server */

struct fdns {
    int fd;
    struct event *ev;
    uint16_t port;
    int queries;
};

static size_t dns_put_name(unsigned char *p, const char *name)
{
    size_t o = 0;
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        p[o++] = (unsigned char)l;
        memcpy(p + o, name, l);
        o += l;
        name += l;
        if (*name == '.')
            name++;
    }
    p[o++] = 0;
    return o;
}

static void fdns_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fdns *d = arg;
    unsigned char q[512], r[1024];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    (void)what;
    ssize_t n = recvfrom(fd, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
    if (n < 17)
        return;
    d->queries++;
    /* question name */
    char name[256];
    size_t o = 12, nl = 0;
    while (o < (size_t)n && q[o]) {
        size_t l = q[o++];
        if (nl)
            name[nl++] = '.';
        memcpy(name + nl, q + o, l);
        nl += l;
        o += l;
    }
    name[nl] = '\0';
    o++;
    int qtype = (q[o] << 8) | q[o + 1];
    size_t qend = o + 4;
    for (size_t i = 0; i < nl; i++)
        if (name[i] >= 'A' && name[i] <= 'Z')
            name[i] = (char)(name[i] - 'A' + 'a');

    int rcode = 0, an = 0;
    size_t w = qend;
    memcpy(r, q, qend);
    /* zone: mx.test MX 10 mail.mx.test; mail.mx.test A 127.0.0.1;
     * null.test MX 0 .; plain.test (no MX) A 127.0.0.1; everything else NXDOMAIN */
    const char *mx_target = NULL;
    int mx_pref = 0;
    bool a_loop = false, exists = true;
    if (strcmp(name, "mx.test") == 0) {
        if (qtype == 15) {
            mx_target = "mail.mx.test";
            mx_pref = 10;
        }
    } else if (strcmp(name, "null.test") == 0) {
        if (qtype == 15)
            mx_target = "";
    } else if (strcmp(name, "mail.mx.test") == 0 || strcmp(name, "plain.test") == 0) {
        a_loop = qtype == 1;
    } else {
        exists = false;
    }
    if (!exists)
        rcode = 3;
    if (mx_target) {
        unsigned char *p = r + w;
        p[0] = 0xC0;
        p[1] = 0x0C;
        p[2] = 0;
        p[3] = 15;
        p[4] = 0;
        p[5] = 1;
        p[6] = p[7] = p[8] = 0;
        p[9] = 60;
        size_t rdl = 2 + dns_put_name(p + 12 + 2, mx_target);
        p[10] = (unsigned char)(rdl >> 8);
        p[11] = (unsigned char)rdl;
        p[12] = (unsigned char)(mx_pref >> 8);
        p[13] = (unsigned char)mx_pref;
        w += 12 + rdl;
        an++;
    }
    if (a_loop) {
        unsigned char *p = r + w;
        static const unsigned char rr[] = {0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1};
        memcpy(p, rr, sizeof rr);
        w += sizeof rr;
        an++;
    }
    r[2] = 0x81; /* QR, RD */
    r[3] = (unsigned char)(0x80 | rcode);
    r[4] = 0;
    r[5] = 1;
    r[6] = 0;
    r[7] = (unsigned char)an;
    r[8] = r[9] = r[10] = r[11] = 0;
    sendto(fd, r, w, 0, (struct sockaddr *)&from, fl);
}

static void fdns_start(struct fdns *d, struct event_base *base)
{
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    d->fd = socket(AF_INET, SOCK_DGRAM, 0);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(d->fd, (struct sockaddr *)&sin, sizeof sin), 0);
    getsockname(d->fd, (struct sockaddr *)&sin, &sl);
    d->port = ntohs(sin.sin_port);
    evutil_make_socket_nonblocking(d->fd);
    d->ev = event_new(base, d->fd, EV_READ | EV_PERSIST, fdns_cb, d);
    event_add(d->ev, NULL);
}

static void fdns_stop(struct fdns *d)
{
    event_free(d->ev);
    close(d->fd);
}

/* ================================================================ harness */

struct result {
    int calls;
    int order;
    char qid[32];
    size_t nrcpts;
    struct deliver_rcpt_result rcpt[8];
    char server[300];
    char tls[128];
};

static struct event_base *base;
static struct moat_config cfg;
static bool in_submit;
static int pending;
static int call_seq;
static bool (*until_fn)(void *);
static void *until_arg;

static void done_cb(void *arg, const struct deliver_outcome *out)
{
    struct result *r = arg;
    assert_false(in_submit); /* never from inside deliver_submit */
    r->calls++;
    r->order = ++call_seq;
    core_strlcpy(r->qid, out->qid, sizeof r->qid);
    r->nrcpts = out->nrcpts;
    for (size_t i = 0; i < out->nrcpts && i < 8; i++)
        r->rcpt[i] = out->rcpt[i];
    core_strlcpy(r->server, out->server, sizeof r->server);
    core_strlcpy(r->tls, out->tls, sizeof r->tls);
    if (--pending == 0 && !until_fn)
        event_base_loopbreak(base);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    /* also without until_fn: a loopbreak from done_cb is lost when the
     * callback ran before the loop started (libevent clears the flag) */
    if (pending <= 0 && (!until_fn || until_fn(until_arg)))
        event_base_loopbreak(base);
}

static bool timed_out;
static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    timed_out = true;
    event_base_loopbreak(base);
}

/* run - the loop until every callback came (and until(arg) holds, if given) */
static void run(bool (*until)(void *), void *arg)
{
    struct timeval dl = {.tv_sec = 20}, tk = {.tv_usec = 5000};
    struct event *deadline = evtimer_new(base, deadline_cb, NULL);
    struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
    until_fn = until;
    until_arg = arg;
    timed_out = false;
    evtimer_add(deadline, &dl);
    evtimer_add(tick, &tk);
    event_base_dispatch(base);
    event_free(deadline);
    event_free(tick);
    until_fn = NULL;
    assert_false(timed_out);
}

static bool srv_quit(void *arg)
{
    return ((struct fsrv *)arg)->quits > 0;
}

/* spool - a temp file holding junk + message + junk; *off is where it starts */
static int spool(const char *msg, size_t len, off_t *off)
{
    char path[] = "/tmp/moat-deliver-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, "JUNK!", 5), 5);
    assert_int_equal(write(fd, msg, len), (ssize_t)len);
    assert_int_equal(write(fd, "TRAILING JUNK", 13), 13);
    *off = 5;
    return fd;
}

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    config_defaults(&cfg);
    assert_null(config_set(&cfg, "hostname", "client.test"));
    assert_null(config_set(&cfg, "delivery_timeout", "5"));
    assert_null(config_set(&cfg, "connect_timeout", "5"));
    assert_null(config_set(&cfg, "connection_reuse_time", "0"));
    call_seq = 0;
    pending = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    config_free(&cfg);
    /* let libevent run the finalizers of bufferevents freed at the end of
     * the test (a TLS connection's close): otherwise they leak at exit */
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    event_base_free(base);
    return 0;
}

static struct domain_server srv(uint16_t port, uint32_t pref)
{
    struct domain_server d;
    memset(&d, 0, sizeof d);
    core_strlcpy(d.host, "127.0.0.1", sizeof d.host);
    d.port = port;
    d.preference = pref;
    return d;
}

static void submit(struct deliver_client *c, struct deliver_request *req, struct result *r)
{
    in_submit = true;
    assert_int_equal(deliver_submit(c, req, done_cb, r), 0);
    in_submit = false;
    pending++;
}

#define expect_log(s, expect) expect_log_at(s, expect, __LINE__)
static void expect_log_at(struct fsrv *s, const char *expect, int line)
{
    const char *got = buf_cstr(&s->log);
    if (strcmp(got, expect) != 0) {
        fprintf(stderr, "--- line %d: expected\n%s--- got\n%s---\n", line, expect, got);
        fail();
    }
}

/* ================================================================ tests */

static void test_order_servers(void **state)
{
    (void)state;
    int first[5] = {0};
    for (int run_i = 0; run_i < 300; run_i++) {
        struct domain_server s[5] = {srv(1, 20), srv(2, 10), srv(3, 10), srv(4, 30), srv(5, 10)};
        deliver_order_servers(s, 5);
        for (int i = 1; i < 5; i++)
            assert_true(s[i - 1].preference <= s[i].preference);
        assert_int_equal(s[3].port, 1);
        assert_int_equal(s[4].port, 4);
        first[s[0].port - 1]++;
    }
    /* load sharing: each of the three preference-10 servers comes first sometimes */
    assert_true(first[1] > 30 && first[2] > 30 && first[4] > 30);
    assert_int_equal(first[0] + first[3], 0);
    deliver_order_servers(NULL, 0);
}

static const char msg1[] = "Subject: test\r\n"
                           "\r\n"
                           ".leading dot\r\n"
                           "line\r\n"
                           "..two dots\r\n"
                           ".\r\n"
                           "no final newline";

static void test_pipelined_mixed(void **state)
{
    (void)state;
    static const struct rule rules[] = {
        {"RCPT TO:<bad@", "550 5.1.1 <bad@b.test>: Recipient address rejected\r\n"},
        {"RCPT TO:<temp@", "451 4.2.0 try later\r\n"},
        {NULL, NULL},
    };
    struct fsrv s = {.greeting = "220 fake.test ESMTP\r\n",
                     .ehlo = "250-fake.test\r\n250-PIPELINING\r\n250-SIZE 10000000\r\n250-8BITMIME\r\n"
                             "250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n",
                     .rules = rules,
                     .data_reply = "250-2.0.0 first line\r\n250 2.0.0 Ok: queued as ABC\r\n"};
    fsrv_start(&s, base);
    struct deliver_client *c = deliver_client_new(base, &cfg, NULL);
    assert_non_null(c);
    off_t off;
    int fd = spool(msg1, sizeof msg1 - 1, &off);
    struct domain_server servers[1] = {srv(s.port, 10)};
    const char *rcpts[] = {"ok1@b.test", "bad@b.test", "temp@b.test", "ok2@b.test"};
    static const char prepend[] = "Received: from x by y; id Q1\r\n";
    struct deliver_request req = {.qid = "Q1",
                                  .fd = fd,
                                  .offset = off,
                                  .length = sizeof msg1 - 1,
                                  .prepend = prepend,
                                  .prepend_len = sizeof prepend - 1,
                                  .sender = "s@a.test",
                                  .rcpts = rcpts,
                                  .nrcpts = 4,
                                  .eightbit = true,
                                  .envid = "ENV+2B1",
                                  .route = {.servers = servers, .nservers = 1}};
    struct result r = {0};
    submit(c, &req, &r);
    close(fd); /* the client has its own dup */
    assert_int_equal(r.calls, 0);
    assert_int_equal(deliver_client_busy(c), 1);
    run(srv_quit, &s);
    assert_int_equal(r.calls, 1);
    assert_int_equal(deliver_client_busy(c), 0);
    assert_string_equal(r.qid, "Q1");
    assert_int_equal(r.nrcpts, 4);
    assert_int_equal(r.rcpt[0].status, DELIVER_OK);
    assert_int_equal(r.rcpt[0].code, 250);
    assert_string_equal(r.rcpt[0].enhanced, "2.0.0");
    assert_string_equal(r.rcpt[0].reply, "2.0.0 first line 2.0.0 Ok: queued as ABC");
    assert_int_equal(r.rcpt[1].status, DELIVER_PERM);
    assert_int_equal(r.rcpt[1].code, 550);
    assert_string_equal(r.rcpt[1].enhanced, "5.1.1");
    assert_string_equal(r.rcpt[1].reply, "5.1.1 <bad@b.test>: Recipient address rejected");
    assert_int_equal(r.rcpt[2].status, DELIVER_TEMP);
    assert_int_equal(r.rcpt[2].code, 451);
    assert_int_equal(r.rcpt[3].status, DELIVER_OK);
    char want_server[64];
    snprintf(want_server, sizeof want_server, "127.0.0.1:%u [127.0.0.1]", s.port);
    assert_string_equal(r.server, want_server);
    assert_string_equal(r.tls, "");

    char expect[2048];
    snprintf(expect, sizeof expect,
             "EHLO client.test\r\n"
             "MAIL FROM:<s@a.test> SIZE=%zu BODY=8BITMIME ENVID=ENV+2B1\r\n"
             "RCPT TO:<ok1@b.test>\r\n"
             "RCPT TO:<bad@b.test>\r\n"
             "RCPT TO:<temp@b.test>\r\n"
             "RCPT TO:<ok2@b.test>\r\n"
             "DATA\r\n"
             "Received: from x by y; id Q1\r\n"
             "Subject: test\r\n"
             "\r\n"
             "..leading dot\r\n"
             "line\r\n"
             "...two dots\r\n"
             "..\r\n"
             "no final newline\r\n"
             ".\r\n"
             "QUIT\r\n",
             sizeof msg1 - 1 + sizeof prepend - 1);
    expect_log(&s, expect);
    assert_true(s.max_batch >= 2); /* MAIL, RCPTs and DATA in one go */
    deliver_client_free(c);
    fsrv_stop(&s);
}

static void test_no_pipelining_all_rejected(void **state)
{
    (void)state;
    static const struct rule rules[] = {{"RCPT", "550 5.1.1 no such user\r\n"}, {NULL, NULL}};
    struct fsrv s = {
        .greeting = "220 fake.test ESMTP\r\n", .ehlo = "250-fake.test\r\n250 SIZE\r\n", .rules = rules};
    fsrv_start(&s, base);
    struct deliver_client *c = deliver_client_new(base, &cfg, NULL);
    off_t off;
    int fd = spool("x\r\n", 3, &off);
    struct domain_server servers[1] = {srv(s.port, 0)};
    const char *rcpts[] = {"a@b.test", "c@d.test"};
    struct deliver_request req = {.qid = "Q2",
                                  .fd = fd,
                                  .offset = off,
                                  .length = 3,
                                  .sender = "",
                                  .rcpts = rcpts,
                                  .nrcpts = 2,
                                  .eightbit = true,
                                  .envid = "E",
                                  .route = {.servers = servers, .nservers = 1}};
    struct result r = {0};
    submit(c, &req, &r);
    run(srv_quit, &s);
    assert_int_equal(r.rcpt[0].status, DELIVER_PERM);
    assert_int_equal(r.rcpt[1].status, DELIVER_PERM);
    assert_string_equal(r.rcpt[1].reply, "5.1.1 no such user");
    /* no PIPELINING: one command per read; no 8BITMIME/DSN offered: no
     * BODY/ENVID; no accepted recipient: no DATA */
    expect_log(&s, "EHLO client.test\r\n"
                   "MAIL FROM:<> SIZE=3\r\n"
                   "RCPT TO:<a@b.test>\r\n"
                   "RCPT TO:<c@d.test>\r\n"
                   "QUIT\r\n");
    assert_int_equal(s.max_batch, 1);
    close(fd);
    deliver_client_free(c);
    fsrv_stop(&s);
}

static void test_helo_fallback_and_data_reject(void **state)
{
    (void)state;
    static const struct rule rules[] = {{"EHLO", "502 5.5.2 Error: command not recognized\r\n"},
                                        {NULL, NULL}};
    struct fsrv s = {.greeting = "220-fake.test ESMTP\r\n220 second greeting line\r\n",
                     .rules = rules,
                     .data_reply = "554 5.7.1 content rejected\r\n"};
    fsrv_start(&s, base);
    struct deliver_client *c = deliver_client_new(base, &cfg, NULL);
    off_t off;
    int fd = spool("a\r\n", 3, &off);
    struct domain_server servers[1] = {srv(s.port, 0)};
    const char *rcpts[] = {"a@b.test"};
    struct deliver_request req = {.qid = "Q3",
                                  .fd = fd,
                                  .offset = off,
                                  .length = 3,
                                  .sender = "s@a.test",
                                  .rcpts = rcpts,
                                  .nrcpts = 1,
                                  .route = {.servers = servers, .nservers = 1}};
    struct result r = {0};
    submit(c, &req, &r);
    run(srv_quit, &s);
    assert_int_equal(r.rcpt[0].status, DELIVER_PERM);
    assert_int_equal(r.rcpt[0].code, 554);
    assert_string_equal(r.rcpt[0].enhanced, "5.7.1");
    expect_log(&s, "EHLO client.test\r\n"
                   "HELO client.test\r\n"
                   "MAIL FROM:<s@a.test>\r\n"
                   "RCPT TO:<a@b.test>\r\n"
                   "DATA\r\n"
                   "a\r\n"
                   ".\r\n"
                   "QUIT\r\n");
    close(fd);
    deliver_client_free(c);
    fsrv_stop(&s);
}

static void test_server_closes(void **state)
{
    (void)state;
    static const struct rule rules[] = {{"RCPT", "CLOSE"}, {NULL, NULL}};
    struct fsrv s = {.greeting = "220 fake.test ESMTP\r\n", .rules = rules};
    fsrv_start(&s, base);
    struct deliver_client *c = deliver_client_new(base, &cfg, NULL);
    off_t off;
    int fd = spool("a\r\n", 3, &off);
    struct domain_server servers[1] = {srv(s.port, 0)};
    const char *rcpts[] = {"a@b.test", "b@b.test"};
    struct deliver_request req = {.qid = "Q4",
                                  .fd = fd,
                                  .offset = off,
                                  .length = 3,
                                  .sender = "s@a.test",
                                  .rcpts = rcpts,
                                  .nrcpts = 2,
                                  .route = {.servers = servers, .nservers = 1}};
    struct result r = {0};
    submit(c, &req, &r);
    run(NULL, NULL);
    assert_int_equal(r.calls, 1);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(r.rcpt[i].status, DELIVER_TEMP);
        assert_int_equal(r.rcpt[i].code, 0);
        assert_non_null(strstr(r.rcpt[i].reply, "lost connection"));
    }
    expect_log(&s, "EHLO client.test\r\nMAIL FROM:<s@a.test>\r\nRCPT TO:<a@b.test>\r\n");
    close(fd);
    deliver_client_free(c);
    fsrv_stop(&s);
}

static void test_timeouts(void **state)
{
    (void)state;
    assert_null(config_set(&cfg, "connect_timeout", "1"));
    assert_null(config_set(&cfg, "delivery_timeout", "1"));
    /* a server that never greets */
    struct fsrv s1 = {.greeting = NULL};
    /* a server that never answers the end of data */
    struct fsrv s2 = {.greeting = "220 fake.test ESMTP\r\n", .data_reply = "STALL"};
    fsrv_start(&s1, base);
    fsrv_start(&s2, base);
    struct deliver_client *c = deliver_client_new(base, &cfg, NULL);
    off_t off;
    int fd = spool("a\r\n", 3, &off);
    struct domain_server sv1[1] = {srv(s1.port, 0)}, sv2[1] = {srv(s2.port, 0)};
    const char *rcpts[] = {"a@b.test"};
    struct deliver_request req = {.qid = "Q5",
                                  .fd = fd,
                                  .offset = off,
                                  .length = 3,
                                  .sender = "s@a.test",
                                  .rcpts = rcpts,
                                  .nrcpts = 1,
                                  .route = {.servers = sv1, .nservers = 1}};
    struct result r1 = {0}, r2 = {0};
    submit(c, &req, &r1);
    req.route.servers = sv2;
    submit(c, &req, &r2);
    double t0 = core_monotonic();
    run(NULL, NULL);
    double dt = core_monotonic() - t0;
    assert_true(dt >= 0.9 && dt < 4.0);
    assert_int_equal(r1.rcpt[0].status, DELIVER_TEMP);
    assert_non_null(strstr(r1.rcpt[0].reply, "timeout waiting for greeting"));
    assert_int_equal(r2.rcpt[0].status, DELIVER_TEMP);
    assert_non_null(strstr(r2.rcpt[0].reply, "timeout waiting for end of data"));
    expect_log(&s1, "");
    expect_log(&s2, "EHLO client.test\r\nMAIL FROM:<s@a.test>\r\nRCPT TO:<a@b.test>\r\nDATA\r\na\r\n.\r\n");
    close(fd);
    deliver_client_free(c);
    fsrv_stop(&s1);
    fsrv_stop(&s2);
}

static void test_failover(void **state)
{
    (void)state;
    struct fsrv busy = {.greeting = "554 5.3.2 busy, go away\r\n"};
    struct fsrv good = {.greeting = "220 good.test ESMTP\r\n"};
    struct fsrv t421 = {.greeting = "220 t421.test ESMTP\r\n",
                        .rules =
                            (const struct rule[]){{"MAIL", "421 4.3.2 shutting down\r\n"}, {NULL, NULL}}};
    fsrv_start(&busy, base);
    fsrv_start(&good, base);
    fsrv_start(&t421, base);
    struct deliver_client *c = deliver_client_new(base, &cfg, NULL);
    off_t off;
    int fd = spool("a\r\n", 3, &off);
    uint16_t dead = dead_port();
    struct domain_server servers[4] = {srv(good.port, 40), srv(busy.port, 20), srv(dead, 10),
                                       srv(t421.port, 30)};
    const char *rcpts[] = {"a@b.test"};
    struct deliver_request req = {.qid = "Q6",
                                  .fd = fd,
                                  .offset = off,
                                  .length = 3,
                                  .sender = "s@a.test",
                                  .rcpts = rcpts,
                                  .nrcpts = 1,
                                  .route = {.servers = servers, .nservers = 4}};
    struct result r = {0};
    submit(c, &req, &r);
    run(srv_quit, &good);
    assert_int_equal(r.rcpt[0].status, DELIVER_OK);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%u [127.0.0.1]", good.port);
    assert_string_equal(r.server, want);
    assert_int_equal(busy.nconns, 1);
    assert_int_equal(t421.nconns, 1);
    expect_log(&t421, "EHLO client.test\r\nMAIL FROM:<s@a.test>\r\n");
    expect_log(
        &good,
        "EHLO client.test\r\nMAIL FROM:<s@a.test>\r\nRCPT TO:<a@b.test>\r\nDATA\r\na\r\n.\r\nQUIT\r\n");

    /* nothing works: every recipient deferred with the last reason */
    struct domain_server bad[2] = {srv(dead, 10), srv(busy.port, 20)};
    req.route.servers = bad;
    req.route.nservers = 2;
    struct result r2 = {0};
    submit(c, &req, &r2);
    run(NULL, NULL);
    assert_int_equal(r2.rcpt[0].status, DELIVER_TEMP);
    assert_int_equal(r2.rcpt[0].code, 0);
    assert_string_equal(r2.rcpt[0].reply, "554 5.3.2 busy, go away (in reply to greeting)");
    assert_string_equal(r2.rcpt[0].enhanced, "4.3.2");
    snprintf(want, sizeof want, "127.0.0.1:%u [127.0.0.1]", busy.port);
    assert_string_equal(r2.server, want);

    struct domain_server only_dead[1] = {srv(dead, 10)};
    req.route.servers = only_dead;
    req.route.nservers = 1;
    struct result r3 = {0};
    submit(c, &req, &r3);
    run(NULL, NULL);
    assert_int_equal(r3.rcpt[0].status, DELIVER_TEMP);
    assert_non_null(strstr(r3.rcpt[0].reply, "onnect"));
    assert_string_equal(r3.rcpt[0].enhanced, "4.4.1");
    close(fd);
    deliver_client_free(c);
    fsrv_stop(&busy);
    fsrv_stop(&good);
    fsrv_stop(&t421);
}

static void test_connection_reuse(void **state)
{
    (void)state;
    assert_null(config_set(&cfg, "connection_reuse_time", "5"));
    assert_null(config_set(&cfg, "delivery_concurrency", "1"));
    struct fsrv s = {.greeting = "220 fake.test ESMTP\r\n", .ehlo = "250-fake.test\r\n250 PIPELINING\r\n"};
    fsrv_start(&s, base);
    struct deliver_client *c = deliver_client_new(base, &cfg, NULL);
    off_t off;
    int fd = spool("m\r\n", 3, &off);
    struct domain_server servers[1] = {srv(s.port, 0)};
    const char *rcpts1[] = {"one@b.test"}, *rcpts2[] = {"two@b.test"};
    struct deliver_request req = {.qid = "Q7",
                                  .fd = fd,
                                  .offset = off,
                                  .length = 3,
                                  .sender = "s@a.test",
                                  .rcpts = rcpts1,
                                  .nrcpts = 1,
                                  .envid = "", /* "" = none */
                                  .route = {.servers = servers, .nservers = 1}};
    struct result r1 = {0}, r2 = {0};
    submit(c, &req, &r1);
    req.qid = "Q8";
    req.rcpts = rcpts2;
    submit(c, &req, &r2); /* waits: concurrency 1 for this destination */
    assert_int_equal(deliver_client_busy(c), 2);
    run(NULL, NULL);
    assert_int_equal(r1.rcpt[0].status, DELIVER_OK);
    assert_int_equal(r2.rcpt[0].status, DELIVER_OK);
    assert_true(r1.order < r2.order);
    assert_string_equal(r2.qid, "Q8");
    assert_int_equal(s.nconns, 1);
    expect_log(&s, "EHLO client.test\r\n"
                   "MAIL FROM:<s@a.test>\r\nRCPT TO:<one@b.test>\r\nDATA\r\nm\r\n.\r\n"
                   "RSET\r\n"
                   "MAIL FROM:<s@a.test>\r\nRCPT TO:<two@b.test>\r\nDATA\r\nm\r\n.\r\n");
    close(fd);
    deliver_client_free(c); /* closes the idle connection */
    fsrv_stop(&s);
}

static void test_reuse_stale_connection(void **state)
{
    (void)state;
    assert_null(config_set(&cfg, "connection_reuse_time", "5"));
    /* the server drops the connection when it sees RSET: the second attempt
     * starts over on a fresh connection (EHLO again, no RSET) */
    static const struct rule rules[] = {{"RSET", "CLOSE"}, {NULL, NULL}};
    struct fsrv s = {.greeting = "220 fake.test ESMTP\r\n", .rules = rules};
    fsrv_start(&s, base);
    struct deliver_client *c = deliver_client_new(base, &cfg, NULL);
    off_t off;
    int fd = spool("m\r\n", 3, &off);
    struct domain_server servers[1] = {srv(s.port, 0)};
    const char *rcpts[] = {"one@b.test"};
    struct deliver_request req = {.qid = "Q14",
                                  .fd = fd,
                                  .offset = off,
                                  .length = 3,
                                  .sender = "s@a.test",
                                  .rcpts = rcpts,
                                  .nrcpts = 1,
                                  .route = {.servers = servers, .nservers = 1}};
    struct result r1 = {0}, r2 = {0};
    submit(c, &req, &r1);
    run(NULL, NULL);
    submit(c, &req, &r2);
    run(NULL, NULL);
    assert_int_equal(r1.rcpt[0].status, DELIVER_OK);
    assert_int_equal(r2.rcpt[0].status, DELIVER_OK);
    assert_int_equal(s.nconns, 2);
    expect_log(&s, "EHLO client.test\r\nMAIL FROM:<s@a.test>\r\nRCPT TO:<one@b.test>\r\nDATA\r\nm\r\n.\r\n"
                   "RSET\r\n"
                   "EHLO client.test\r\nMAIL FROM:<s@a.test>\r\nRCPT TO:<one@b.test>\r\nDATA\r\nm\r\n.\r\n");
    close(fd);
    deliver_client_free(c);
    fsrv_stop(&s);
}

static void test_421_mid_transaction(void **state)
{
    (void)state;
    /* server A rejects one recipient for good, then says 421: only the
     * recipient still open is retried on server B */
    static const struct rule ra[] = {
        {"RCPT TO:<bad@", "550 5.1.1 unknown\r\n"}, {"RCPT TO:<ok@", "421 4.4.5 too busy\r\n"}, {NULL, NULL}};
    struct fsrv a = {.greeting = "220 a.test ESMTP\r\n", .rules = ra};
    struct fsrv b = {.greeting = "220 b.test ESMTP\r\n"};
    fsrv_start(&a, base);
    fsrv_start(&b, base);
    struct deliver_client *c = deliver_client_new(base, &cfg, NULL);
    off_t off;
    int fd = spool("m\r\n", 3, &off);
    struct domain_server servers[2] = {srv(a.port, 1), srv(b.port, 2)};
    const char *rcpts[] = {"bad@b.test", "ok@b.test"};
    struct deliver_request req = {.qid = "Q15",
                                  .fd = fd,
                                  .offset = off,
                                  .length = 3,
                                  .sender = "s@a.test",
                                  .rcpts = rcpts,
                                  .nrcpts = 2,
                                  .route = {.servers = servers, .nservers = 2}};
    struct result r = {0};
    submit(c, &req, &r);
    run(srv_quit, &b);
    assert_int_equal(r.rcpt[0].status, DELIVER_PERM);
    assert_int_equal(r.rcpt[0].code, 550);
    assert_int_equal(r.rcpt[1].status, DELIVER_OK);
    expect_log(&a,
               "EHLO client.test\r\nMAIL FROM:<s@a.test>\r\nRCPT TO:<bad@b.test>\r\nRCPT TO:<ok@b.test>\r\n");
    expect_log(
        &b, "EHLO client.test\r\nMAIL FROM:<s@a.test>\r\nRCPT TO:<ok@b.test>\r\nDATA\r\nm\r\n.\r\nQUIT\r\n");
    close(fd);
    deliver_client_free(c);
    fsrv_stop(&a);
    fsrv_stop(&b);
}

/* free the client from inside a callback: the other attempt ends at once */
static struct deliver_client *free_me;
static struct result *free_other;
static void done_free_cb(void *arg, const struct deliver_outcome *out)
{
    done_cb(arg, out);
    deliver_client_free(free_me);
    free_me = NULL;
    assert_int_equal(free_other->calls, 1);
    assert_string_equal(free_other->rcpt[0].reply, "shutting down");
    pending = 0;
    event_base_loopbreak(base);
}

static void test_free_from_callback_and_hostname(void **state)
{
    (void)state;
    struct fsrv stall = {.greeting = NULL};
    struct fsrv good = {.greeting = "220 good.test ESMTP\r\n"};
    fsrv_start(&stall, base);
    fsrv_start(&good, base);
    free_me = deliver_client_new(base, &cfg, NULL);
    off_t off;
    int fd = spool("m\r\n", 3, &off);
    struct domain_server sv_stall[1] = {srv(stall.port, 0)};
    /* a host name: resolved with getaddrinfo in a helper thread */
    struct domain_server sv_good[1] = {srv(good.port, 0)};
    core_strlcpy(sv_good[0].host, "localhost", sizeof sv_good[0].host);
    const char *rcpts[] = {"a@b.test"};
    struct deliver_request req = {.qid = "Q16",
                                  .fd = fd,
                                  .offset = off,
                                  .length = 3,
                                  .sender = "s@a.test",
                                  .rcpts = rcpts,
                                  .nrcpts = 1,
                                  .route = {.servers = sv_stall, .nservers = 1}};
    struct result r_stall = {0}, r_good = {0};
    free_other = &r_stall;
    submit(free_me, &req, &r_stall);
    req.route.servers = sv_good;
    in_submit = true;
    assert_int_equal(deliver_submit(free_me, &req, done_free_cb, &r_good), 0);
    in_submit = false;
    pending += 1;
    run(NULL, NULL);
    assert_null(free_me);
    assert_int_equal(r_good.rcpt[0].status, DELIVER_OK);
    char want[64];
    snprintf(want, sizeof want, "localhost:%u [127.0.0.1]", good.port);
    assert_string_equal(r_good.server, want);
    assert_int_equal(r_stall.calls, 1);
    close(fd);
    fsrv_stop(&stall);
    fsrv_stop(&good);
}

/* expected_stuffing - the DATA bytes for msg */
static void expected_stuffing(const char *msg, size_t len, struct buf *out)
{
    bool bol = true;
    for (size_t i = 0; i < len; i++) {
        if (bol && msg[i] == '.')
            buf_append(out, ".", 1);
        buf_append(out, &msg[i], 1);
        bol = msg[i] == '\n';
    }
    if (len && !(len >= 2 && msg[len - 2] == '\r' && msg[len - 1] == '\n'))
        buf_append(out, "\r\n", 2);
    buf_append(out, ".\r\n", 3);
}

static void test_large_body_streamed(void **state)
{
    (void)state;
    struct fsrv s = {.greeting = "220 fake.test ESMTP\r\n"};
    fsrv_start(&s, base);
    struct deliver_client *c = deliver_client_new(base, &cfg, NULL);
    /* 3 MB: many chunks and watermark refills; dots at line starts, and
     * lines that straddle the 64 KB chunk boundaries */
    struct buf m;
    buf_init(&m, 8 * 1024 * 1024);
    buf_append_str(&m, "Subject: big\r\n\r\n");
    for (int i = 0; m.len < 3 * 1024 * 1024; i++) {
        if (i % 7 == 0)
            buf_printf(&m, ".dot line %d %0*d\r\n", i, i % 300, 0);
        else
            buf_printf(&m, "line %d %0*d\r\n", i, (i * 37) % 900, 0);
    }
    buf_append_str(&m, ".\r\n");
    off_t off;
    int fd = spool(m.ptr, m.len, &off);
    struct domain_server servers[1] = {srv(s.port, 0)};
    const char *rcpts[] = {"a@b.test"};
    struct deliver_request req = {.qid = "Q9",
                                  .fd = fd,
                                  .offset = off,
                                  .length = m.len,
                                  .sender = "s@a.test",
                                  .rcpts = rcpts,
                                  .nrcpts = 1,
                                  .route = {.servers = servers, .nservers = 1}};
    struct result r = {0};
    submit(c, &req, &r);
    run(srv_quit, &s);
    assert_int_equal(r.rcpt[0].status, DELIVER_OK);
    struct buf want;
    buf_init(&want, 16 * 1024 * 1024);
    buf_append_str(&want, "EHLO client.test\r\nMAIL FROM:<s@a.test>\r\nRCPT TO:<a@b.test>\r\nDATA\r\n");
    expected_stuffing(m.ptr, m.len, &want);
    buf_append_str(&want, "QUIT\r\n");
    assert_int_equal(s.log.len, want.len);
    assert_memory_equal(s.log.ptr, want.ptr, want.len);
    buf_free(&want);
    buf_free(&m);
    close(fd);
    deliver_client_free(c);
    fsrv_stop(&s);
}

/* make_server_ctx - a TLS server context with a fresh self-signed cert */
static SSL_CTX *make_server_ctx(void)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    assert_non_null(pkey);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pkey);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"fake.test", -1, -1, 0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, pkey), 1);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return ctx;
}

static void test_starttls(void **state)
{
    (void)state;
    SSL_CTX *sctx = make_server_ctx();
    static const struct rule tls_rules[] = {{"STARTTLS", "STARTTLS"}, {NULL, NULL}};
    struct fsrv s = {.greeting = "220 fake.test ESMTP\r\n",
                     .ehlo = "250-fake.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
                     .rules = tls_rules,
                     .tls = sctx};
    fsrv_start(&s, base);
    struct deliver_client *c = deliver_client_new(base, &cfg, NULL);
    off_t off;
    int fd = spool("Subject: tls\r\n\r\n.secret\r\n", 25, &off);
    struct domain_server servers[1] = {srv(s.port, 0)};
    const char *rcpts[] = {"a@b.test"};
    struct deliver_request req = {
        .qid = "Q10",
        .fd = fd,
        .offset = off,
        .length = 25,
        .sender = "s@a.test",
        .rcpts = rcpts,
        .nrcpts = 1,
        .route = {.servers = servers, .nservers = 1, .tls = DOMAIN_TLS_OPPORTUNISTIC}};
    struct result r = {0};
    submit(c, &req, &r);
    run(srv_quit, &s);
    assert_int_equal(r.rcpt[0].status, DELIVER_OK);
    assert_true(strncmp(r.tls, "TLSv1.3 TLS_", 12) == 0);
    expect_log(&s, "EHLO client.test\r\nSTARTTLS\r\n"
                   "EHLO client.test\r\nMAIL FROM:<s@a.test>\r\nRCPT TO:<a@b.test>\r\nDATA\r\n"
                   "Subject: tls\r\n\r\n..secret\r\n.\r\nQUIT\r\n");

    /* policy none: STARTTLS offered but never used */
    buf_reset(&s.log);
    s.quits = 0;
    req.route.tls = DOMAIN_TLS_NONE;
    struct result r2 = {0};
    submit(c, &req, &r2);
    run(srv_quit, &s);
    assert_int_equal(r2.rcpt[0].status, DELIVER_OK);
    assert_string_equal(r2.tls, "");
    expect_log(&s, "EHLO client.test\r\nMAIL FROM:<s@a.test>\r\nRCPT TO:<a@b.test>\r\nDATA\r\n"
                   "Subject: tls\r\n\r\n..secret\r\n.\r\nQUIT\r\n");

    /* required, and the server does not offer it */
    struct fsrv plain = {.greeting = "220 plain.test ESMTP\r\n",
                         .ehlo = "250-plain.test\r\n250 PIPELINING\r\n"};
    fsrv_start(&plain, base);
    struct domain_server sp[1] = {srv(plain.port, 0)};
    req.route.servers = sp;
    req.route.tls = DOMAIN_TLS_REQUIRED;
    struct result r3 = {0};
    submit(c, &req, &r3);
    run(srv_quit, &plain);
    assert_int_equal(r3.rcpt[0].status, DELIVER_TEMP);
    assert_string_equal(r3.rcpt[0].reply, "TLS required but not offered");
    expect_log(&plain, "EHLO client.test\r\nQUIT\r\n");

    /* opportunistic, the handshake fails: reconnect and deliver in clear */
    static const struct rule broken_rules[] = {{"STARTTLS", "STARTTLS-BROKEN"}, {NULL, NULL}};
    struct fsrv broken = {.greeting = "220 broken.test ESMTP\r\n",
                          .ehlo = "250-broken.test\r\n250 STARTTLS\r\n",
                          .rules = broken_rules};
    fsrv_start(&broken, base);
    struct domain_server sb[1] = {srv(broken.port, 0)};
    req.route.servers = sb;
    req.route.tls = DOMAIN_TLS_OPPORTUNISTIC;
    struct result r4 = {0};
    submit(c, &req, &r4);
    run(srv_quit, &broken);
    assert_int_equal(r4.rcpt[0].status, DELIVER_OK);
    assert_string_equal(r4.tls, "");
    assert_int_equal(broken.nconns, 2);
    expect_log(&broken, "EHLO client.test\r\nSTARTTLS\r\n"
                        "EHLO client.test\r\nMAIL FROM:<s@a.test>\r\nRCPT TO:<a@b.test>\r\nDATA\r\n"
                        "Subject: tls\r\n\r\n..secret\r\n.\r\nQUIT\r\n");
    /* response injection: data pipelined behind the 220 to STARTTLS */
    static const struct rule rinj[] = {{"STARTTLS", "220 go ahead\r\n250 injected\r\n"}, {NULL, NULL}};
    struct fsrv inj = {
        .greeting = "220 inj.test ESMTP\r\n", .ehlo = "250-inj.test\r\n250 STARTTLS\r\n", .rules = rinj};
    fsrv_start(&inj, base);
    struct domain_server si[1] = {srv(inj.port, 0)};
    req.route.servers = si;
    struct result r8 = {0};
    submit(c, &req, &r8);
    run(NULL, NULL);
    assert_int_equal(r8.rcpt[0].status, DELIVER_TEMP);
    assert_string_equal(r8.rcpt[0].reply, "unexpected data after the reply to STARTTLS");
    expect_log(&inj, "EHLO client.test\r\nSTARTTLS\r\n");
    fsrv_stop(&inj);

    /* STARTTLS refused (454): opportunistic carries on in clear */
    static const struct rule r454[] = {{"STARTTLS", "454 4.7.0 TLS not available\r\n"}, {NULL, NULL}};
    struct fsrv no_tls = {
        .greeting = "220 notls.test ESMTP\r\n", .ehlo = "250-notls.test\r\n250 STARTTLS\r\n", .rules = r454};
    fsrv_start(&no_tls, base);
    struct domain_server sn[1] = {srv(no_tls.port, 0)};
    req.route.servers = sn;
    struct result r5 = {0};
    submit(c, &req, &r5);
    run(srv_quit, &no_tls);
    assert_int_equal(r5.rcpt[0].status, DELIVER_OK);
    expect_log(&no_tls,
               "EHLO client.test\r\nSTARTTLS\r\nMAIL FROM:<s@a.test>\r\nRCPT TO:<a@b.test>\r\nDATA\r\n"
               "Subject: tls\r\n\r\n..secret\r\n.\r\nQUIT\r\n");
    /* ... and required gives up */
    req.route.tls = DOMAIN_TLS_REQUIRED;
    struct result r6 = {0};
    buf_reset(&no_tls.log);
    no_tls.quits = 0;
    submit(c, &req, &r6);
    run(srv_quit, &no_tls);
    assert_int_equal(r6.rcpt[0].status, DELIVER_TEMP);
    assert_int_equal(r6.rcpt[0].code, 454);
    assert_string_equal(r6.rcpt[0].reply, "4.7.0 TLS not available (in reply to STARTTLS)");
    expect_log(&no_tls, "EHLO client.test\r\nSTARTTLS\r\nQUIT\r\n");

    /* required and offered; a 3 MB body through the TLS filter */
    struct buf m;
    buf_init(&m, 8 * 1024 * 1024);
    buf_append_str(&m, "Subject: big tls\r\n\r\n");
    for (int i = 0; m.len < 3 * 1024 * 1024; i++)
        buf_printf(&m, "%sline %d %0*d\r\n", i % 5 ? "" : ".", i, (i * 31) % 700, 0);
    off_t off2;
    int fd2 = spool(m.ptr, m.len, &off2);
    buf_reset(&s.log);
    s.quits = 0;
    req.route.servers = servers;
    req.fd = fd2;
    req.offset = off2;
    req.length = m.len;
    struct result r7 = {0};
    submit(c, &req, &r7);
    run(srv_quit, &s);
    assert_int_equal(r7.rcpt[0].status, DELIVER_OK);
    assert_true(strncmp(r7.tls, "TLSv1.3 ", 8) == 0);
    struct buf want;
    buf_init(&want, 16 * 1024 * 1024);
    buf_append_str(&want, "EHLO client.test\r\nSTARTTLS\r\nEHLO client.test\r\nMAIL FROM:<s@a.test>\r\n"
                          "RCPT TO:<a@b.test>\r\nDATA\r\n");
    expected_stuffing(m.ptr, m.len, &want);
    buf_append_str(&want, "QUIT\r\n");
    assert_int_equal(s.log.len, want.len);
    assert_memory_equal(s.log.ptr, want.ptr, want.len);
    buf_free(&want);
    buf_free(&m);
    close(fd2);

    close(fd);
    deliver_client_free(c);
    fsrv_stop(&s);
    fsrv_stop(&plain);
    fsrv_stop(&broken);
    fsrv_stop(&no_tls);
    SSL_CTX_free(sctx);
}

static void test_smtputf8_and_limits(void **state)
{
    (void)state;
    struct fsrv s = {.greeting = "220 fake.test ESMTP\r\n", .ehlo = "250-fake.test\r\n250 8BITMIME\r\n"};
    fsrv_start(&s, base);
    struct deliver_client *c = deliver_client_new(base, &cfg, NULL);
    off_t off;
    int fd = spool("a\r\n", 3, &off);
    struct domain_server servers[1] = {srv(s.port, 0)};
    const char *rcpts[] = {"ユーザー@b.test", "x@b.test"};
    struct deliver_request req = {.qid = "Q11",
                                  .fd = fd,
                                  .offset = off,
                                  .length = 3,
                                  .sender = "s@a.test",
                                  .rcpts = rcpts,
                                  .nrcpts = 2,
                                  .smtputf8 = true,
                                  .route = {.servers = servers, .nservers = 1}};
    struct result r = {0};
    submit(c, &req, &r);
    run(srv_quit, &s);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(r.rcpt[i].status, DELIVER_PERM);
        assert_string_equal(r.rcpt[i].enhanced, "5.6.7");
        assert_string_equal(r.rcpt[i].reply, "5.6.7 SMTPUTF8 not supported by the server");
    }
    expect_log(&s, "EHLO client.test\r\nQUIT\r\n");

    /* a reply line over 2048 bytes, and a reply of 101 lines */
    char *longline = malloc(3000);
    memset(longline, 'x', 3000);
    memcpy(longline, "250 ", 4);
    memcpy(longline + 2997, "\r\n", 3);
    struct rule r_long[] = {{"MAIL", longline}, {NULL, NULL}};
    struct fsrv s2 = {.greeting = "220 fake.test ESMTP\r\n", .rules = r_long};
    struct buf many;
    buf_init(&many, 1 << 20);
    for (int i = 0; i < 100; i++)
        buf_append_str(&many, "250-more\r\n");
    buf_append_str(&many, "250 end\r\n");
    struct rule r_many[] = {{"MAIL", buf_cstr(&many)}, {NULL, NULL}};
    struct fsrv s3 = {.greeting = "220 fake.test ESMTP\r\n", .rules = r_many};
    fsrv_start(&s2, base);
    fsrv_start(&s3, base);
    struct domain_server sv2[1] = {srv(s2.port, 0)}, sv3[1] = {srv(s3.port, 0)};
    req.smtputf8 = false;
    req.rcpts = (const char *[]){"x@b.test"};
    req.nrcpts = 1;
    req.route.servers = sv2;
    struct result r2 = {0}, r3 = {0};
    submit(c, &req, &r2);
    req.route.servers = sv3;
    submit(c, &req, &r3);
    run(NULL, NULL);
    assert_int_equal(r2.rcpt[0].status, DELIVER_TEMP);
    assert_string_equal(r2.rcpt[0].reply, "reply line from server too long");
    assert_int_equal(r3.rcpt[0].status, DELIVER_TEMP);
    assert_string_equal(r3.rcpt[0].reply, "reply from server has too many lines");
    free(longline);
    buf_free(&many);
    close(fd);
    deliver_client_free(c);
    fsrv_stop(&s);
    fsrv_stop(&s2);
    fsrv_stop(&s3);
}

static void test_mx_lookup(void **state)
{
    (void)state;
    struct fdns dns;
    fdns_start(&dns, base);
    char ds[64];
    snprintf(ds, sizeof ds, "127.0.0.1:%u", dns.port);
    assert_null(config_set(&cfg, "dns_server", ds));
    struct fsrv s = {.greeting = "220 mx.test ESMTP\r\n"};
    fsrv_start(&s, base);
    struct deliver_client *c = deliver_client_new(base, &cfg, NULL);
    off_t off;
    int fd = spool("a\r\n", 3, &off);
    const char *rcpts[] = {"a@mx.test"};
    struct deliver_request req = {.qid = "Q12",
                                  .fd = fd,
                                  .offset = off,
                                  .length = 3,
                                  .sender = "s@a.test",
                                  .rcpts = rcpts,
                                  .nrcpts = 1,
                                  .route = {.mx_domain = "mx.test", .port = s.port}};
    struct result r[4] = {{0}};
    submit(c, &req, &r[0]);
    req.route.mx_domain = "null.test";
    submit(c, &req, &r[1]);
    req.route.mx_domain = "nx.test";
    submit(c, &req, &r[2]);
    req.route.mx_domain = "plain.test"; /* no MX: its A record */
    submit(c, &req, &r[3]);
    run(NULL, NULL);
    char want[80];
    snprintf(want, sizeof want, "mail.mx.test:%u [127.0.0.1]", s.port);
    assert_int_equal(r[0].rcpt[0].status, DELIVER_OK);
    assert_string_equal(r[0].server, want);
    assert_int_equal(r[1].rcpt[0].status, DELIVER_PERM);
    assert_string_equal(r[1].rcpt[0].enhanced, "5.1.10");
    assert_non_null(strstr(r[1].rcpt[0].reply, "null MX"));
    assert_int_equal(r[2].rcpt[0].status, DELIVER_PERM);
    assert_non_null(strstr(r[2].rcpt[0].reply, "not found"));
    assert_int_equal(r[3].rcpt[0].status, DELIVER_OK);
    snprintf(want, sizeof want, "plain.test:%u [127.0.0.1]", s.port);
    assert_string_equal(r[3].server, want);
    assert_true(dns.queries >= 5);
    close(fd);
    deliver_client_free(c);
    fsrv_stop(&s);
    fdns_stop(&dns);
}

static void test_greeting_before_connected_event(void **state)
{
    (void)state;
    struct tsrv t;
    tsrv_start(&t);
    struct deliver_client *c = deliver_client_new(base, &cfg, NULL);
    off_t off;
    int fd = spool("m\r\n", 3, &off);
    struct domain_server servers[1] = {srv(t.port, 0)};
    const char *rcpts[] = {"a@b.test"};
    struct deliver_request req = {.qid = "Q17",
                                  .fd = fd,
                                  .offset = off,
                                  .length = 3,
                                  .sender = "s@a.test",
                                  .rcpts = rcpts,
                                  .nrcpts = 1,
                                  .route = {.servers = servers, .nservers = 1}};
    struct result r = {0};
    submit(c, &req, &r);
    event_base_loop(base, EVLOOP_NONBLOCK); /* starts the attempt: connect() */
    usleep(200 * 1000);                     /* the server accepts and greets meanwhile */
    run(NULL, NULL);
    assert_int_equal(r.rcpt[0].status, DELIVER_OK);
    close(fd);
    deliver_client_free(c);
    /* libevent closes a freed bufferevent's socket in a finalizer that runs
     * on the loop: once it has, the server thread sees EOF and ends */
    event_base_loop(base, EVLOOP_NONBLOCK);
    pthread_join(t.thread, NULL);
    /* QUIT may or may not have left before the free: compare up to the dot */
    static const char want[] = "EHLO client.test\r\nMAIL FROM:<s@a.test>\r\nRCPT TO:<a@b.test>\r\n"
                               "DATA\r\nm\r\n.\r\n";
    assert_true(t.log.len >= sizeof want - 1);
    assert_memory_equal(t.log.ptr, want, sizeof want - 1);
    close(t.lfd);
    buf_free(&t.log);
}

static void test_submit_invalid_and_shutdown(void **state)
{
    (void)state;
    struct fsrv s = {.greeting = NULL}; /* stalls: the attempt is in flight when we free */
    fsrv_start(&s, base);
    struct deliver_client *c = deliver_client_new(base, &cfg, NULL);
    off_t off;
    int fd = spool("a\r\n", 3, &off);
    struct domain_server servers[1] = {srv(s.port, 0)};
    const char *good[] = {"a@b.test"};
    const char *inject[] = {"a@b.test>\r\nRCPT TO:<evil@x.test"};
    struct deliver_request req = {.qid = "Q13",
                                  .fd = fd,
                                  .offset = off,
                                  .length = 3,
                                  .sender = "s@a.test",
                                  .rcpts = good,
                                  .nrcpts = 1,
                                  .route = {.servers = servers, .nservers = 1}};
    struct result r = {0};
    struct deliver_request bad = req;
    bad.rcpts = inject;
    assert_int_equal(deliver_submit(c, &bad, done_cb, &r), -1);
    bad = req;
    bad.sender = "s@a.test\r\nRSET";
    assert_int_equal(deliver_submit(c, &bad, done_cb, &r), -1);
    bad = req;
    bad.nrcpts = 0;
    assert_int_equal(deliver_submit(c, &bad, done_cb, &r), -1);
    bad = req;
    bad.route.mx_domain = "x.test"; /* both servers and an MX domain */
    assert_int_equal(deliver_submit(c, &bad, done_cb, &r), -1);
    bad = req;
    bad.route.nservers = 0;
    assert_int_equal(deliver_submit(c, &bad, done_cb, &r), -1);
    bad = req;
    bad.fd = -1;
    assert_int_equal(deliver_submit(c, &bad, done_cb, &r), -1);
    bad = req;
    bad.envid = "a b";
    assert_int_equal(deliver_submit(c, &bad, done_cb, &r), -1);
    bad = req;
    bad.route.mx_domain = "evil.test\r\nX";
    bad.route.servers = NULL;
    assert_int_equal(deliver_submit(c, &bad, done_cb, &r), -1);
    assert_int_equal(deliver_client_busy(c), 0);

    submit(c, &req, &r);
    /* let it connect and wait for the greeting, then shut down */
    struct timeval tv = {.tv_usec = 200000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    assert_int_equal(r.calls, 0);
    assert_int_equal(s.nconns, 1);
    deliver_client_free(c);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.rcpt[0].status, DELIVER_TEMP);
    assert_string_equal(r.rcpt[0].reply, "shutting down");
    close(fd);
    fsrv_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_servers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_mixed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_pipelining_all_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_helo_fallback_and_data_reject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reuse_stale_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_421_mid_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_from_callback_and_hostname, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_body_streamed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_starttls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_smtputf8_and_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mx_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_greeting_before_connected_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_invalid_and_shutdown, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
