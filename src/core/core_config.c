/*
 * core_config.c - the node configuration file (moat.conf).
 *
 * One table (config_table) declares every key once: its type, default, minimum
 * and maximum and a one-line description. It drives defaults, parsing,
 * validation (`moatd --check`), config_dump and docs/configuration.md.
 * Format: `key = value` lines, `#` comments, blank lines. An unknown key or a
 * bad value is an error naming file:line. Lines are limited to 4096 bytes.
 */
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

enum config_type { CT_STRING, CT_DURATION, CT_SIZE, CT_COUNT, CT_RATE };

struct config_entry {
    const char *name;
    enum config_type type;
    size_t offset;
    const char *def;
    uint64_t min, max;
    const char *doc;
};

#define OFF(f) offsetof(struct moat_config, f)
#define DAY (86400ULL)

static const struct config_entry config_table[] = {
    {"hostname", CT_STRING, OFF(hostname), "", 0, 253, "name in the SMTP banner, Received headers and HELO (default: system hostname)"},
    {"service_domain", CT_STRING, OFF(service_domain), "in.moat.localhost", 1, 253, "tenant MX hosts are <company-id>.<service_domain>"},
    {"smtp_listen", CT_STRING, OFF(smtp_listen), "127.0.0.1:2525", 1, 1024, "inbound SMTP listeners, comma-separated host:port"},
    {"console_url", CT_STRING, OFF(console_url), "", 0, 512, "the console's address as administrators reach it, for the links in onboarding mails (e.g. https://moat.example.com); empty: http(s)://<hostname>:<port of http_listen>"},
    {"http_listen", CT_STRING, OFF(http_listen), "127.0.0.1:8080", 1, 1024, "console, REST API and click endpoint"},
    {"data_dir", CT_STRING, OFF(data_dir), "./var", 1, 1024, "spool, database, quarantine"},
    {"database", CT_STRING, OFF(database), "sqlite", 1, 1024, "sqlite (file in data_dir) or a postgresql:// URL"},
    {"tls_cert", CT_STRING, OFF(tls_cert), "", 0, 1024, "STARTTLS certificate (PEM); empty: self-signed one generated in data_dir"},
    {"tls_key", CT_STRING, OFF(tls_key), "", 0, 1024, "private key of tls_cert (PEM)"},
    {"dns_server", CT_STRING, OFF(dns_server), "", 0, 300, "host:port of the DNS server to use; empty: system resolver"},
    {"dns_timeout_ms", CT_COUNT, OFF(dns_timeout_ms), "3000", 100, 60000, "DNS: milliseconds to wait for one answer before retrying (c-ares, src/dns)"},
    {"dns_tries", CT_COUNT, OFF(dns_tries), "2", 1, 10, "DNS: tries per server before a lookup is a temporary failure"},
    {"domain_check_min", CT_DURATION, OFF(domain_check_min), "1m", 1, DAY, "pending domains: first re-check of the ownership records (doubles after each failed check)"},
    {"domain_check_max", CT_DURATION, OFF(domain_check_max), "1d", 1, 30 * DAY, "pending domains: longest delay between ownership checks"},
    {"domain_recheck", CT_DURATION, OFF(domain_recheck), "1d", 1, 30 * DAY, "verified domains: how often the ownership record is checked again (a missing one alerts the admin)"},
    {"relay_host", CT_STRING, OFF(relay_host), "", 0, 300, "host:port smarthost for mail to domains Moat does not protect (DSNs); empty: MX lookup"},
    {"log", CT_STRING, OFF(log_target), "stderr", 1, 16, "stderr or syslog"},
    {"scan_header", CT_STRING, OFF(scan_header), "X-Moat-Scan", 1, 64, "name of the verdict header added to delivered mail"},
    {"queue_lifetime", CT_DURATION, OFF(queue_lifetime), "10d", 1, 60 * DAY, "how long undeliverable mail is retried before a DSN"},
    {"retry_min", CT_DURATION, OFF(retry_min), "1m", 1, DAY, "first retry delay (doubles each attempt)"},
    {"retry_max", CT_DURATION, OFF(retry_max), "1h", 1, DAY, "longest delay between delivery attempts"},
    {"limit_in_ip", CT_RATE, OFF(limit_in_ip), "3600/1m", 0, 0, "inbound messages per connecting IP per window"},
    {"limit_in_sender", CT_RATE, OFF(limit_in_sender), "200/1m", 0, 0, "inbound messages per envelope sender per window"},
    {"limit_out_ip", CT_RATE, OFF(limit_out_ip), "1000/5m", 0, 0, "outbound messages per connecting IP per window"},
    {"limit_out_sender", CT_RATE, OFF(limit_out_sender), "500/10m", 0, 0, "outbound messages per envelope sender per window"},
    {"limit_block", CT_DURATION, OFF(limit_block), "5m", 1, DAY, "how long a source over a rate limit gets 4xx"},
    {"message_size_limit", CT_SIZE, OFF(message_size_limit), "150M", 1024, 2ULL * 1024 * 1024 * 1024, "largest accepted message (bytes)"},
    {"recipient_limit", CT_COUNT, OFF(recipient_limit), "500", 1, 100000, "recipients per message"},
    {"quarantine_retention", CT_DURATION, OFF(quarantine_retention), "30d", 3600, 3650 * DAY, "how long quarantined mail is kept (moatd purges hourly; also `moatctl quarantine purge`)"},
    {"tracking_retention", CT_DURATION, OFF(tracking_retention), "90d", 3600, 3650 * DAY, "how long message tracking is kept"},
    {"smtp_max_connections", CT_COUNT, OFF(smtp_max_connections), "2000", 1, 1000000, "simultaneous inbound SMTP connections in total"},
    {"smtp_max_connections_per_ip", CT_COUNT, OFF(smtp_max_connections_per_ip), "50", 1, 1000000, "simultaneous inbound SMTP connections per client IP"},
    {"smtp_idle_timeout", CT_DURATION, OFF(smtp_idle_timeout), "5m", 1, DAY, "inbound: longest wait for the next command or data"},
    {"smtp_session_timeout", CT_DURATION, OFF(smtp_session_timeout), "30m", 1, DAY, "inbound: longest whole SMTP session"},
    {"smtp_data_timeout", CT_DURATION, OFF(smtp_data_timeout), "10m", 1, DAY, "inbound: longest DATA/BDAT transfer of one message"},
    {"smtp_max_errors", CT_COUNT, OFF(smtp_max_errors), "10", 1, 1000, "errors in one session before it is closed (421)"},
    {"smtp_line_limit", CT_COUNT, OFF(smtp_line_limit), "2048", 512, 65536, "longest SMTP command line (bytes)"},
    {"smtp_threads", CT_COUNT, OFF(smtp_threads), "0", 0, 256, "event-loop threads; 0 = one per core"},
    {"scan_workers", CT_COUNT, OFF(scan_workers), "0", 0, 256, "scan worker processes; 0 = two per core"},
    {"scan_timeout", CT_DURATION, OFF(scan_timeout), "60s", 1, 3600, "deadline for scanning one message"},
    {"scan_memory_limit", CT_SIZE, OFF(scan_memory_limit), "1G", 64ULL * 1024 * 1024, 64ULL * 1024 * 1024 * 1024, "address-space limit of a scan worker"},
    {"delivery_concurrency", CT_COUNT, OFF(delivery_concurrency), "20", 1, 1000, "simultaneous connections per destination"},
    {"delivery_timeout", CT_DURATION, OFF(delivery_timeout), "5m", 1, 3600, "outbound: longest wait for one SMTP reply"},
    {"connect_timeout", CT_DURATION, OFF(connect_timeout), "30s", 1, 600, "outbound: longest TCP connect + banner"},
    {"mx_port", CT_COUNT, OFF(mx_port), "25", 1, 65535, "outbound: TCP port of the MX hosts mail is delivered to (25; tests use another)"},
    {"connection_reuse_time", CT_DURATION, OFF(connection_reuse_time), "5s", 0, 600, "outbound: keep an idle connection this long for reuse"},
    {"uribl_zones", CT_STRING, OFF(uribl_zones), "", 0, 1024, "web reputation: DNS URI blocklist zones looked up as <domain>.<zone> (comma-separated, e.g. multi.surbl.org); empty: off"},
    {"uribl_timeout_ms", CT_COUNT, OFF(uribl_timeout_ms), "2000", 100, 30000, "web reputation: milliseconds for all URI blocklist lookups of one message"},
    {"scan_tmp_dir", CT_STRING, OFF(scan_tmp_dir), "auto", 1, 1024, "scan workers' temporary files (libclamav's unpacked archives, normalised HTML): a directory of ours, mode 0700; auto = a private directory in /dev/shm when it is a writable tmpfs (memory: faster), else <data_dir>/tmp"},
    {"clamd_socket", CT_STRING, OFF(clamd_socket), "", 0, 300, "virus scanning through clamd (INSTREAM): its unix socket path or a loopback host:port; empty: libclamav in the scan workers"},
    {"clamd_timeout", CT_DURATION, OFF(clamd_timeout), "30s", 1, 600, "clamd: longest connect + stream + reply for one scanned object"},
    {"clamd_stream_max", CT_SIZE, OFF(clamd_stream_max), "25M", 1024 * 1024, 4ULL * 1024 * 1024 * 1024 - 1, "clamd: largest object streamed (keep at most clamd's StreamMaxLength); larger ones are scan_exclusion"},
    {"http_threads", CT_COUNT, OFF(http_threads), "4", 1, 64, "HTTP: threads of the console / REST API server (libmicrohttpd thread pool)"},
    {"http_tls", CT_STRING, OFF(http_tls), "off", 1, 8, "HTTP: on = HTTPS on http_listen with tls_cert/tls_key (or the generated self-signed certificate); off = plain HTTP (loopback or behind a TLS proxy)"},
    {"http_session_idle", CT_DURATION, OFF(http_session_idle), "30m", 60, DAY, "HTTP: a console session ends after this long without a request"},
    {"http_session_lifetime", CT_DURATION, OFF(http_session_lifetime), "12h", 300, 30 * DAY, "HTTP: a console session ends this long after login, whatever its activity"},
    {"http_login_failures", CT_COUNT, OFF(http_login_failures), "5", 1, 1000, "HTTP: consecutive failed logins that lock an account"},
    {"http_lockout", CT_DURATION, OFF(http_lockout), "15m", 1, DAY, "HTTP: how long a locked account refuses every login"},
};

#define CONFIG_N (sizeof config_table / sizeof config_table[0])

static const struct config_entry *config_find(const char *key)
{
    for (size_t i = 0; i < CONFIG_N; i++)
        if (strcmp(config_table[i].name, key) == 0)
            return &config_table[i];
    return NULL;
}

/* config_apply - set one entry from text; NULL or the reason */
static const char *config_apply(struct moat_config *cfg, const struct config_entry *e, const char *v)
{
    char *base = (char *)cfg + e->offset;
    uint64_t n;
    switch (e->type) {
    case CT_STRING: {
        size_t len = strlen(v);
        if (len < e->min)
            return "must not be empty";
        if (len > e->max)
            return "value too long";
        for (const char *p = v; *p; p++)
            if ((unsigned char)*p < 0x20)
                return "control character in value";
        char **s = (char **)(void *)base;
        free(*s);
        *s = xstrdup(v);
        return NULL;
    }
    case CT_DURATION:
        if (core_parse_duration(v, &n) < 0)
            return "not a duration (number with optional s, m, h or d)";
        break;
    case CT_SIZE:
        if (core_parse_size(v, &n) < 0)
            return "not a size (number with optional k, M or G)";
        break;
    case CT_COUNT:
        if (core_parse_u64(v, UINT64_MAX, &n) < 0)
            return "not a number";
        break;
    case CT_RATE: {
        char num[32];
        const char *slash = strchr(v, '/');
        uint64_t c, w;
        if (!slash || (size_t)(slash - v) >= sizeof num)
            return "not a rate (COUNT/WINDOW, e.g. 200/1m)";
        memcpy(num, v, (size_t)(slash - v));
        num[slash - v] = '\0';
        if (core_parse_u64(num, 100000000, &c) < 0 || core_parse_duration(slash + 1, &w) < 0 ||
            w == 0 || w > 7 * DAY)
            return "not a rate (COUNT/WINDOW, e.g. 200/1m; window 1s..7d)";
        struct rate_limit *r = (struct rate_limit *)(void *)base;
        r->count = (uint32_t)c;
        r->window = (uint32_t)w;
        return NULL;
    }
    }
    if (n < e->min)
        return "value below the minimum";
    if (n > e->max)
        return "value above the maximum";
    *(uint64_t *)(void *)base = n;
    return NULL;
}

void config_defaults(struct moat_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < CONFIG_N; i++) {
        const char *why = config_apply(cfg, &config_table[i], config_table[i].def);
        if (why && config_table[i].type != CT_STRING)
            fatal("config default of %s invalid: %s", config_table[i].name, why);
        if (why) { /* empty string default */
            char **s = (char **)(void *)((char *)cfg + config_table[i].offset);
            *s = xstrdup(config_table[i].def);
        }
    }
    if (cfg->hostname[0] == '\0') {
        char h[256] = "localhost";
        if (gethostname(h, sizeof h - 1) < 0)
            core_strlcpy(h, "localhost", sizeof h);
        h[sizeof h - 1] = '\0';
        free(cfg->hostname);
        cfg->hostname = xstrdup(h);
    }
}

const char *config_set(struct moat_config *cfg, const char *key, const char *value)
{
    const struct config_entry *e = config_find(key);
    if (!e)
        return "unknown key";
    return config_apply(cfg, e, value);
}

/* trim - strip leading/trailing blanks in place */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

const char *config_clamd_socket_check(const char *v)
{
    char host[256];
    uint16_t port;
    unsigned char addr[16];
    if (v[0] == '\0')
        return NULL;
    if (v[0] == '/')
        return strlen(v) < 108 ? NULL : "socket path longer than 107 bytes"; /* sun_path */
    if (core_parse_hostport(v, host, sizeof host, &port) < 0)
        return "neither an absolute unix socket path nor host:port";
    if (strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0)
        return NULL;
    if (inet_pton(AF_INET, host, addr) == 1 && addr[0] == 127)
        return NULL;
    /* INSTREAM is unauthenticated cleartext carrying customer mail */
    return "the host must be loopback (127.0.0.0/8, ::1 or localhost)";
}

/* dns_server_check - empty, or an IP address (or localhost) with a port:
 * the resolver (src/dns) talks to it as given, no name lookup for it */
static const char *dns_server_check(const char *v)
{
    char host[256];
    uint16_t port;
    unsigned char addr[16];
    if (v[0] == '\0')
        return NULL;
    if (inet_pton(AF_INET, v, addr) == 1 || inet_pton(AF_INET6, v, addr) == 1)
        return NULL; /* port 53 */
    if (core_parse_hostport(v, host, sizeof host, &port) < 0)
        return "expected host:port (an IP address or localhost, e.g. 127.0.0.1:53 or [::1]:53)";
    if (strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1)
        return NULL;
    return "the host must be an IP address or localhost";
}

int config_load(const char *path, struct moat_config *cfg, char *err, size_t errsz)
{
    char line[4098];
    unsigned lineno = 0;
    config_defaults(cfg);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n') {
            snprintf(err, errsz, "%s:%u: line too long", path, lineno);
            goto fail;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errsz, "%s:%u: expected key = value", path, lineno);
            goto fail;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        const char *why = config_set(cfg, key, val);
        if (why) {
            char k[80];
            log_escape(key, strlen(key), k, sizeof k);
            snprintf(err, errsz, "%s:%u: %s: %s", path, lineno, k, why);
            goto fail;
        }
    }
    if (ferror(f)) {
        snprintf(err, errsz, "%s: read error", path);
        goto fail;
    }
    fclose(f);
    if (cfg->retry_min > cfg->retry_max) {
        snprintf(err, errsz, "%s: retry_min is larger than retry_max", path);
        return -1;
    }
    if (strcmp(cfg->log_target, "stderr") != 0 && strcmp(cfg->log_target, "syslog") != 0) {
        snprintf(err, errsz, "%s: log: must be stderr or syslog", path);
        return -1;
    }
    const char *why = config_clamd_socket_check(cfg->clamd_socket);
    if (why) {
        snprintf(err, errsz, "%s: clamd_socket: %s", path, why);
        return -1;
    }
    if (strcmp(cfg->http_tls, "on") != 0 && strcmp(cfg->http_tls, "off") != 0) {
        snprintf(err, errsz, "%s: http_tls: must be on or off", path);
        return -1;
    }
    if ((why = dns_server_check(cfg->dns_server))) {
        snprintf(err, errsz, "%s: dns_server: %s", path, why);
        return -1;
    }
    if ((cfg->tls_cert[0] == '\0') != (cfg->tls_key[0] == '\0')) {
        snprintf(err, errsz, "%s: tls_cert and tls_key must be set together", path);
        return -1;
    }
    return 0;
fail:
    fclose(f);
    return -1;
}

/* needs_restart - keys whose new value takes effect only at the next start:
 * strings (shared by pointer across threads), listener and sizing keys */
static bool needs_restart(const struct config_entry *e)
{
    static const char *const fixed[] = {"smtp_threads",      "scan_workers",  "smtp_max_connections",
                                        "scan_memory_limit", "clamd_timeout", "clamd_stream_max",
                                        "http_threads"};
    if (e->type == CT_STRING)
        return true;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strcmp(e->name, fixed[i]) == 0)
            return true;
    return false;
}

int config_reload(struct moat_config *live, const char *path, char *err, size_t errsz)
{
    struct moat_config fresh;
    if (config_load(path, &fresh, err, errsz) < 0) {
        config_free(&fresh);
        return -1;
    }
    for (size_t i = 0; i < CONFIG_N; i++) {
        const struct config_entry *e = &config_table[i];
        char *dst = (char *)live + e->offset;
        const char *src = (const char *)&fresh + e->offset;
        if (needs_restart(e)) {
            bool changed = e->type == CT_STRING
                               ? strcmp(*(char *const *)(const void *)dst, *(char *const *)(const void *)src) != 0
                               : *(const uint64_t *)(const void *)dst != *(const uint64_t *)(const void *)src;
            if (changed)
                log_warn("config reload key=%s changed but takes effect only after a restart", e->name);
            continue;
        }
        /* one aligned 64-bit store per key (a rate is two u32 in 8 aligned
         * bytes): readers on other threads see the old or the new value */
        __atomic_store_n((uint64_t *)(void *)dst, *(const uint64_t *)(const void *)src, __ATOMIC_RELAXED);
    }
    config_free(&fresh);
    return 0;
}

void config_free(struct moat_config *cfg)
{
    for (size_t i = 0; i < CONFIG_N; i++) {
        if (config_table[i].type == CT_STRING) {
            char **s = (char **)(void *)((char *)cfg + config_table[i].offset);
            free(*s);
            *s = NULL;
        }
    }
}

void config_dump(const struct moat_config *cfg,
                 void (*emit)(const char *key, const char *value, const char *doc, void *arg), void *arg)
{
    char v[1100];
    for (size_t i = 0; i < CONFIG_N; i++) {
        const struct config_entry *e = &config_table[i];
        const char *base = (const char *)cfg + e->offset;
        switch (e->type) {
        case CT_STRING:
            snprintf(v, sizeof v, "%s", *(char *const *)(const void *)base);
            break;
        case CT_RATE: {
            const struct rate_limit *r = (const struct rate_limit *)(const void *)base;
            snprintf(v, sizeof v, "%u/%us", r->count, r->window);
            break;
        }
        default:
            snprintf(v, sizeof v, "%llu", (unsigned long long)*(const uint64_t *)(const void *)base);
        }
        emit(e->name, v, e->doc, arg);
    }
}
