/*
 * detect_webrep.c - web reputation (category "web_reputation"): the
 * message's URLs against block and allow lists.
 *
 *   detect_webrep_init / _run / _shutdown   the detector (detect_int.h)
 *   webrep_list_match                       one URL against one list
 *
 * Lists, in order of precedence:
 *   1. the tenant's url_blocked list (detect_context): beats everything
 *      -> "url-blocked-tenant", score 1.0
 *   2. the tenant's url_approved list: the URL is not looked at further
 *   3. the shipped data/lists/url-blocklist.txt -> "url-blocklist", 0.9
 *      (Moat's test host moat-test-blocked.example and the public test
 *      entries of other reputation services; no fetched data)
 *   4. DNS URI blocklists (uribl_zones, off by default): the registrable
 *      domain (or reversed IPv4) of each URL host looked up as
 *      <name>.<zone> A; an answer in 127.0.0.0/8 other than 127.255.255.x
 *      (the services' "refused / bad query" codes) -> "uribl", 0.8
 * An entry without '/' is a domain (matches the host and its subdomains);
 * with '/' it is a URL prefix compared with the normalised URL without
 * its scheme (or with it, when the entry has one), case-insensitively.
 *
 * Limits: WEBREP_MAX_ENTRIES shipped entries, MIME_MAX_URLS URLs per
 * message (mime/'s cap), WEBREP_MAX_DNS_DOMAINS distinct names looked up per
 * message, WEBREP_MAX_ZONES zones, and uribl_timeout_ms for all lookups of
 * one message together (each query's resolver timeout is what is left of
 * it, one try). A lookup that fails or times out is not a listing; a
 * budget that runs out is recorded as a scan_exclusion.
 *
 * The lookups block the scan worker (each worker scans one message at a
 * time); they go to cfg->dns_server when set, else the system resolver.
 */
#include "core/core.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>

#include "detect/detect_int.h"

#define WEBREP_MAX_ENTRIES 100000
#define WEBREP_MAX_ZONES 8
#define WEBREP_ANSWER_MAX 4096

static char **entries;
static size_t nentries;
static bool loaded;
static char load_err[300];
static char zones[WEBREP_MAX_ZONES][256];
static size_t nzones;
static uint64_t timeout_ms = 2000;
static char dns_server[300];

static void entry_line(char *s, void *arg)
{
    (void)arg;
    if (nentries >= WEBREP_MAX_ENTRIES || strchr(s, ' ') || strchr(s, '\t'))
        return;
    entries = xrealloc(entries, (nentries + 1) * sizeof *entries);
    entries[nentries++] = xstrdup(s);
}

/* parse_zones - "a.example, b.example" into zones[]; -1 with err when a
 * zone is not a plausible DNS name */
static int parse_zones(const char *spec, char *err, size_t errsz)
{
    nzones = 0;
    const char *p = spec ? spec : "";
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = 0;
        while (p[n] && p[n] != ',' && p[n] != ' ')
            n++;
        if (!n)
            break;
        if (n >= sizeof zones[0] - 1 || nzones >= WEBREP_MAX_ZONES) {
            snprintf(err, errsz, "uribl_zones: at most %d zones of up to 250 bytes", WEBREP_MAX_ZONES);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            char c = p[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '.' || c == '_')) {
                snprintf(err, errsz, "uribl_zones: '%.*s' is not a DNS zone name", (int)(n < 60 ? n : 60), p);
                return -1;
            }
        }
        memcpy(zones[nzones], p, n);
        zones[nzones][n] = '\0';
        nzones++;
        p += n;
    }
    return 0;
}

int detect_webrep_init(const struct moat_config *cfg, char *err, size_t errsz)
{
    int rc = 0;
    if (cfg) {
        if (parse_zones(cfg->uribl_zones, err, errsz) < 0)
            rc = -1;
        timeout_ms = cfg->uribl_timeout_ms;
        core_strlcpy(dns_server, cfg->dns_server ? cfg->dns_server : "", sizeof dns_server);
    }
    if (loaded)
        return rc;
    loaded = true;
    if (detect_list_read("url-blocklist.txt", entry_line, NULL, load_err, sizeof load_err) < 0) {
        snprintf(err, errsz, "web reputation list: %s", load_err);
        return -1;
    }
    load_err[0] = '\0';
    return rc;
}

void detect_webrep_shutdown(void)
{
    for (size_t i = 0; i < nentries; i++)
        free(entries[i]);
    free(entries);
    entries = NULL;
    nentries = 0;
    nzones = 0;
    loaded = false;
}

/* url_without_scheme - "http://a.example/x" -> "a.example/x" */
static const char *url_without_scheme(const char *url)
{
    const char *s = strstr(url, "://");
    return s ? s + 3 : url;
}

bool webrep_list_match(const char *const *list, size_t n, const struct mime_url *u, const char **entry)
{
    for (size_t i = 0; i < n; i++) {
        const char *e = list[i];
        if (!e || !*e)
            continue;
        bool match;
        if (strchr(e, '/')) {
            const char *url = strstr(e, "://") ? u->url : url_without_scheme(u->url);
            match = strncasecmp(url, e, strlen(e)) == 0;
        } else {
            match = detect_host_in(u->host, e) || (u->host_unicode && detect_host_in(u->host_unicode, e));
        }
        if (match) {
            if (entry)
                *entry = e;
            return true;
        }
    }
    return false;
}

/* dnsbl_name - the name looked up for a host: its registrable domain, or
 * the reversed octets of an IPv4 address; false when there is none */
static bool dnsbl_name(const char *host, char *out, size_t outsz)
{
    struct in_addr in;
    if (strchr(host, ':') || host[0] == '[')
        return false;
    if (phish_ip_host(host)) {
        if (!inet_aton(host, &in))
            return false;
        uint32_t a = ntohl(in.s_addr);
        snprintf(out, outsz, "%u.%u.%u.%u", a & 255, (a >> 8) & 255, (a >> 16) & 255, a >> 24);
        return true;
    }
    detect_registrable(host, out, outsz);
    if (!strchr(out, '.'))
        return false;
    for (const char *p = out; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_'))
            return false; /* not an LDH name: nothing to ask */
    return true;
}

/* resolver_open - a private resolver state (dns_server when set) */
static int resolver_open(struct __res_state *st, unsigned timeout_s)
{
    memset(st, 0, sizeof *st);
    if (res_ninit(st) != 0)
        return -1;
    st->retrans = (int)(timeout_s ? timeout_s : 1);
    st->retry = 1;
    st->options &= ~(unsigned long)(RES_DNSRCH | RES_DEFNAMES);
    if (dns_server[0]) {
        char host[256];
        uint16_t port = 53;
        struct in_addr a;
        if (core_parse_hostport(dns_server, host, sizeof host, &port) < 0)
            core_strlcpy(host, dns_server, sizeof host);
        if (inet_pton(AF_INET, host, &a) != 1) {
            res_nclose(st);
            return -1;
        }
        memset(&st->nsaddr_list[0], 0, sizeof st->nsaddr_list[0]);
        st->nsaddr_list[0].sin_family = AF_INET;
        st->nsaddr_list[0].sin_addr = a;
        st->nsaddr_list[0].sin_port = htons(port);
        st->nscount = 1;
    }
    return 0;
}

/* listed - one A query; true when the answer is a listing code, the code
 * in code */
static bool listed(struct __res_state *st, const char *qname, char *code, size_t codesz)
{
    unsigned char ans[WEBREP_ANSWER_MAX];
    int n = res_nquery(st, qname, ns_c_in, ns_t_a, ans, sizeof ans);
    if (n < 0)
        return false;
    if (n > (int)sizeof ans)
        n = sizeof ans;
    ns_msg msg;
    ns_rr rr;
    if (ns_initparse(ans, n, &msg) < 0)
        return false;
    int count = ns_msg_count(msg, ns_s_an);
    for (int i = 0; i < count && i < 32; i++) {
        if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
            return false;
        if (ns_rr_type(rr) != ns_t_a || ns_rr_rdlen(rr) != 4)
            continue;
        const unsigned char *ip = ns_rr_rdata(rr);
        if (ip[0] != 127 || (ip[1] == 255 && ip[2] == 255))
            continue;
        snprintf(code, codesz, "%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
        return true;
    }
    return false;
}

/* check_uribl - the DNS blocklists over the message's (unapproved) URLs */
static void check_uribl(struct analysis *a, const struct detect_context *ctx)
{
    char names[WEBREP_MAX_DNS_DOMAINS][256];
    size_t nnames = 0;
    bool capped = false;
    for (size_t i = 0; i < a->nurls; i++) {
        const struct mime_url *u = &a->urls[i];
        char name[256];
        if (!u->host || !dnsbl_name(u->host, name, sizeof name) ||
            webrep_list_match(ctx->url_approved, ctx->nurl_approved, u, NULL))
            continue;
        bool dup = false;
        for (size_t k = 0; k < nnames && !dup; k++)
            dup = strcmp(names[k], name) == 0;
        if (dup)
            continue;
        if (nnames >= WEBREP_MAX_DNS_DOMAINS) {
            capped = true;
            break;
        }
        core_strlcpy(names[nnames++], name, sizeof names[0]);
    }
    if (!nnames)
        return;
    double start = core_monotonic(), budget = (double)timeout_ms / 1000.0;
    bool out_of_time = false;
    size_t hits = 0;
    for (size_t z = 0; z < nzones && !out_of_time; z++)
        for (size_t k = 0; k < nnames && hits < 5; k++) {
            double left = budget - (core_monotonic() - start);
            if (left <= 0) {
                out_of_time = true;
                break;
            }
            struct __res_state st;
            if (resolver_open(&st, (unsigned)(left + 0.999)) < 0) {
                analysis_add_detection(a, "scan_exclusion", "uribl-unavailable", 0,
                                       "URI blocklist lookups skipped: resolver could not be set up");
                return;
            }
            char qname[NS_MAXDNAME], code[32];
            snprintf(qname, sizeof qname, "%s.%s", names[k], zones[z]);
            if (listed(&st, qname, code, sizeof code)) {
                char ev[600];
                snprintf(ev, sizeof ev, "%s is listed in the URI blocklist %s (answer %s)", names[k],
                         zones[z], code);
                analysis_add_detection(a, "web_reputation", "uribl", 0.8, ev);
                hits++;
            }
            res_nclose(&st);
        }
    if (out_of_time || capped) {
        char ev[200];
        snprintf(ev, sizeof ev, "URI blocklist lookups incomplete: %s",
                 out_of_time ? "uribl_timeout_ms reached" : "more than 20 domains; the rest not looked up");
        analysis_add_detection(a, "scan_exclusion", "uribl-incomplete", 0, ev);
    }
}

void detect_webrep_run(struct analysis *a, const char *msg, size_t len, const struct detect_context *ctx)
{
    (void)msg;
    (void)len;
    if (load_err[0])
        analysis_add_detection(a, "scan_exclusion", "webrep-list-missing", 0, load_err);
    size_t shown = 0;
    for (size_t i = 0; i < a->nurls; i++) {
        const struct mime_url *u = &a->urls[i];
        const char *e = NULL;
        const char *name = NULL, *list = NULL;
        double score = 0;
        if (!u->host)
            continue;
        if (webrep_list_match(ctx->url_blocked, ctx->nurl_blocked, u, &e)) {
            name = "url-blocked-tenant";
            list = "your blocked URL list";
            score = 1.0;
        } else if (webrep_list_match(ctx->url_approved, ctx->nurl_approved, u, NULL)) {
            continue;
        } else if (webrep_list_match((const char *const *)entries, nentries, u, &e)) {
            name = "url-blocklist";
            list = "Moat's URL block list";
            score = 0.9;
        }
        if (!name)
            continue;
        if (shown++ >= 10)
            break; /* enough evidence; the verdict is already made */
        char ev[700], c1[300], c2[200];
        size_t n = strlen(u->url);
        snprintf(c1, sizeof c1, "%.*s%s", (int)(n > 200 ? 200 : n), u->url, n > 200 ? "..." : "");
        n = strlen(e);
        snprintf(c2, sizeof c2, "%.*s", (int)(n > 150 ? 150 : n), e);
        snprintf(ev, sizeof ev, "URL %s matches '%s' in %s", c1, c2, list);
        analysis_add_detection(a, "web_reputation", name, score, ev);
    }
    if (nzones)
        check_uribl(a, ctx);
}
