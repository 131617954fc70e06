/*
 * core.h - the one public header of core/: buffers, logging, config, time, IDs.
 *
 * core/ has no dependency on any other Moat module; every other module may use it.
 *   struct buf        length-counted byte buffer with a hard maximum
 *   log_*             one line per event, key=value, untrusted text escaped
 *   core_parse_*      checked number / duration / size parsing
 *   core_qid_new      queue / session IDs
 *   struct moat_config and config_*  the node configuration (see core_config.c)
 */
#ifndef MOAT_CORE_H
#define MOAT_CORE_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---------------------------------------------------------------- buffers */
struct buf {
    char *ptr;
    size_t len;
    size_t cap;
    size_t max; /* hard maximum of len; appends beyond it fail */
};

void buf_init(struct buf *b, size_t max);
/* buf_append - append n bytes; -1 if len would exceed max (buffer unchanged) */
int buf_append(struct buf *b, const void *data, size_t n);
int buf_append_str(struct buf *b, const char *s);
/* buf_printf - append formatted text; -1 when over max or on format error */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* buf_cstr - NUL-terminated view (the terminator is not counted in len) */
const char *buf_cstr(struct buf *b);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);
/* buf_append_utf8 - one code point, UTF-8 encoded (invalid ones as U+FFFD) */
int buf_append_utf8(struct buf *b, uint32_t cp);

/* ---------------------------------------------------------------- UTF-8 (core_utf8.c) */
/* core_utf8_decode - the valid sequence at s (n bytes left): its length and
 * *cp, or 0 when invalid (overlong, surrogate, > U+10FFFF, truncated) */
size_t core_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* core_utf8_next - the code point at s[i] and its length (>= 1); an invalid
 * byte reads as U+FFFD of length 1 */
size_t core_utf8_next(const char *s, size_t len, size_t i, uint32_t *cp);

/* ---------------------------------------------------------------- logging */
enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

void log_init(const char *ident, bool use_syslog, enum log_level min);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
/* log_escape - copy untrusted bytes into out (NUL-terminated), escaping
 * controls, quotes, backslashes and non-ASCII as \xNN, truncating to outsz.
 * Returns out. */
char *log_escape(const char *in, size_t inlen, char *out, size_t outsz);
/* fatal - log and abort; only for broken invariants and out-of-memory */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* xmalloc and friends abort on out-of-memory */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* ---------------------------------------------------------------- parsing */
/* Each returns 0 on success, -1 on a malformed or out-of-range value. */
int core_parse_u64(const char *s, uint64_t max, uint64_t *out);
/* durations: plain seconds or with s/m/h/d suffix */
int core_parse_duration(const char *s, uint64_t *seconds);
/* sizes: bytes or with k/M/G suffix (powers of 1024) */
int core_parse_size(const char *s, uint64_t *bytes);
/* core_strlcpy - bounded copy, always NUL-terminates; returns strlen(src) */
size_t core_strlcpy(char *dst, const char *src, size_t dstsz);
bool core_strcaseeq(const char *a, const char *b);
/* core_memcasemem - the first case-insensitive (ASCII) occurrence of
 * needle[0..n) in hay[0..len), or NULL; hay need not be NUL-terminated */
const char *core_memcasemem(const char *hay, size_t len, const char *needle, size_t n);
/* core_parse_hostport - "host:port" or "[v6]:port"; -1 on error */
int core_parse_hostport(const char *s, char *host, size_t hostsz, uint16_t *port);
/* core_cidr_match - true when the address ip (text) is inside cidr
 * ("192.0.2.0/24", "2001:db8::/32" or a bare address; an IPv4-mapped IPv6
 * ip matches IPv4 ranges); false for anything malformed */
bool core_cidr_match(const char *cidr, const char *ip);

/* ---------------------------------------------------------------- header fields (core_header.c) */
/* core_header_value - the unfolded value of the first field `name` in the
 * header block of msg (first 256 KB), controls removed, cut to outsz - 1;
 * false when absent */
bool core_header_value(const char *msg, size_t len, const char *name, char *out, size_t outsz);

/* ---------------------------------------------------------------- time, IDs */
double core_now(void);          /* CLOCK_REALTIME seconds as double */
double core_monotonic(void);    /* CLOCK_MONOTONIC seconds */
#define CORE_QID_LEN 20
/* core_qid_new - a new unique 20-character upper-case hex ID (time-ordered) */
void core_qid_new(char out[CORE_QID_LEN + 1]);
bool core_qid_valid(const char *s);

/* ---------------------------------------------------------------- metrics (core_metrics.c) */
/* Process-wide counters for GET /metrics: relaxed atomic adds, no locks.
 * Label values are fixed enums so the exposition is bounded. */
enum metric_dir { METRIC_DIR_INBOUND, METRIC_DIR_OUTBOUND, METRIC_NDIR };
enum metric_verdict {
    METRIC_V_CLEAN, METRIC_V_VIRUS, METRIC_V_SPAM, METRIC_V_PHISHING, METRIC_V_GRAYMAIL, METRIC_V_BEC,
    METRIC_V_WEB_REPUTATION, METRIC_V_SOCIAL_ENGINEERING, METRIC_V_CONTENT, METRIC_V_SCAN_EXCLUSION,
    METRIC_V_REJECTED, METRIC_V_DEFERRED, METRIC_NVERDICT
};
enum metric_delivery { METRIC_D_DELIVERED, METRIC_D_DEFERRED, METRIC_D_BOUNCED, METRIC_D_EXPIRED, METRIC_D_OTHER,
                       METRIC_NDELIVERY };
enum metric_ratelimit { METRIC_RL_IP, METRIC_RL_SENDER, METRIC_NRATELIMIT };
#define METRIC_SCAN_BUCKETS 13 /* upper bounds in core_metric_scan_bounds, the last is +Inf */
extern const double core_metric_scan_bounds[METRIC_SCAN_BUCKETS];
struct core_metrics {
    uint64_t messages[METRIC_NDIR][METRIC_NVERDICT];
    uint64_t delivery[METRIC_NDELIVERY];
    uint64_t ratelimit[METRIC_NRATELIMIT];
    uint64_t scan_bucket[METRIC_SCAN_BUCKETS]; /* not cumulative: one bucket per observation */
    uint64_t scan_count;
    uint64_t scan_sum_us;
};
/* metric_message - one tracked SMTP transaction: direction, action
 * ("accepted" / "rejected" / "deferred"), the verdict summary (first word
 * of X-Moat-Scan, NULL = clean) and the refusal reason (rate limits) */
void metric_message(const char *direction, const char *action, const char *scan, const char *reason);
/* metric_delivery - a recipient status change after acceptance */
void metric_delivery(const char *status);
/* metric_scan_latency - seconds from submission to the scan's answer */
void metric_scan_latency(double seconds);
/* metric_snapshot - a consistent-enough copy of every counter */
void metric_snapshot(struct core_metrics *out);
/* metric_verdict_name / metric_delivery_name - label values */
const char *metric_verdict_name(enum metric_verdict v);
const char *metric_delivery_name(enum metric_delivery d);

/* ---------------------------------------------------------------- config */
struct rate_limit {
    uint32_t count;  /* messages allowed per window; 0 = unlimited */
    uint32_t window; /* seconds */
} __attribute__((aligned(8)));

struct moat_config {
    char *hostname;
    char *service_domain;
    char *smtp_listen;
    char *http_listen;
    char *data_dir;
    char *database;
    char *tls_cert;
    char *tls_key;
    char *dns_server;
    char *relay_host;        /* optional smarthost for mail to non-protected domains (DSNs) */
    char *log_target;        /* stderr | syslog */
    char *scan_header;       /* X-Moat-Scan */
    uint64_t queue_lifetime; /* seconds */
    uint64_t retry_min, retry_max;
    struct rate_limit limit_in_ip, limit_in_sender, limit_out_ip, limit_out_sender;
    uint64_t limit_block;
    uint64_t message_size_limit;
    uint64_t recipient_limit;
    uint64_t quarantine_retention, tracking_retention;
    uint64_t smtp_max_connections, smtp_max_connections_per_ip;
    uint64_t smtp_idle_timeout, smtp_session_timeout, smtp_data_timeout;
    uint64_t smtp_max_errors;
    uint64_t smtp_line_limit;     /* command line length (bytes, without CRLF) */
    uint64_t smtp_threads;        /* event loops; 0 = one per core */
    uint64_t scan_workers;        /* scan worker processes; 0 = one per core */
    uint64_t scan_timeout;
    uint64_t scan_memory_limit;
    uint64_t delivery_concurrency;  /* connections per destination */
    uint64_t delivery_timeout;      /* per SMTP client command */
    uint64_t connect_timeout;
    uint64_t connection_reuse_time; /* keep idle outbound connections */
    char *uribl_zones;              /* DNS URI blocklist zones, comma-separated; "" = off */
    uint64_t uribl_timeout_ms;      /* all URI blocklist lookups of one message */
    char *console_url;              /* links in onboarding mails; "": from hostname and http_listen */
    char *scan_tmp_dir;             /* libclamav's temporary files; "auto": /dev/shm if tmpfs, else data_dir/tmp */
    char *clamd_socket;             /* "": libclamav in-process; else clamd's unix socket or loopback host:port */
    uint64_t clamd_timeout;         /* seconds for one clamd INSTREAM exchange */
    uint64_t clamd_stream_max;      /* largest object streamed to clamd (its StreamMaxLength) */
    uint64_t mx_port;                                           /* outbound: port of MX hosts */
    uint64_t dns_timeout_ms, dns_tries;                         /* c-ares: per try, tries per server */
    uint64_t domain_check_min, domain_check_max, domain_recheck; /* domain ownership checks (seconds) */
    uint64_t http_threads;          /* libmicrohttpd thread pool */
    char *http_tls;                 /* "on": HTTPS; "off": plain HTTP */
    uint64_t http_session_idle, http_session_lifetime; /* console session timeouts (seconds) */
    uint64_t http_login_failures;   /* consecutive failures that lock an account */
    uint64_t http_lockout;          /* seconds a locked account stays locked */
};

/* config_defaults - fill cfg with every default (caller later config_free) */
void config_defaults(struct moat_config *cfg);
/* config_load - defaults, then the file; on error -1 and err names file:line */
int config_load(const char *path, struct moat_config *cfg, char *err, size_t errsz);
/* config_set - set one key from its text value; NULL or a reason */
const char *config_set(struct moat_config *cfg, const char *key, const char *value);
/* config_reload - re-read path; apply every key that can change while
 * running to live (numbers: limits, timeouts, retry schedule); log keys that
 * need a restart. On error -1 with err naming file:line, live unchanged. */
int config_reload(struct moat_config *live, const char *path, char *err, size_t errsz);
void config_free(struct moat_config *cfg);
/* config_clamd_socket_check - NULL when v is a valid clamd_socket value (empty,
 * an absolute unix socket path, or a loopback IP literal / localhost with
 * :port), else the reason */
const char *config_clamd_socket_check(const char *v);
/* config_dump - print every key = value (for --check -v and the docs) */
void config_dump(const struct moat_config *cfg, void (*emit)(const char *key, const char *value, const char *doc, void *arg), void *arg);

#include "core/banned.h"
/* ---------------------------------------------------------------- CSV (core_csv.c) */
#define CORE_CSV_FIELD_MAX 4096 /* bytes of one field */
#define CORE_CSV_FIELDS_MAX 64  /* fields of one record, at most */
enum core_csv_rc { CORE_CSV_OK = 0, CORE_CSV_END, CORE_CSV_ERR_QUOTE, CORE_CSV_ERR_LONG, CORE_CSV_ERR_FIELDS,
                   CORE_CSV_ERR_NUL };
struct core_csv {
    const char *p;        /* the data (borrowed) */
    size_t len, pos;
    unsigned line;        /* first line of the record just read (1-based) */
    unsigned next_line;
    char *scratch;        /* the fields of the last record, NUL-terminated */
    size_t used, cap;
};
/* core_csv_init - read data[0..len) (a UTF-8 BOM is skipped); core_csv_free
 * releases the scratch space */
void core_csv_init(struct core_csv *c, const char *data, size_t len);
void core_csv_free(struct core_csv *c);
/* core_csv_next - the next non-blank record: up to maxf fields into fields
 * (valid until the next call), *nf their count; CORE_CSV_END after the last;
 * an error at c->line (the reader cannot continue after one) */
enum core_csv_rc core_csv_next(struct core_csv *c, char **fields, size_t maxf, size_t *nf);
const char *core_csv_strerror(enum core_csv_rc rc);
/* core_csv_field - append v (NULL = empty) as one field followed by "," or
 * CRLF (last): quoted when needed, a leading = + - @ made inert with '; 0 or
 * -1 when b is full */
int core_csv_field(struct buf *b, const char *v, bool last);

#endif
