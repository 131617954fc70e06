/*
 * dns_verify.c - domain ownership verification (PRODUCT.md §1): a domain
 * is proven to belong to a tenant by a TXT record
 * "moat-verification=<token>" (the domain's own token) or by an MX record
 * pointing at the tenant's MX host <company-id>.<service_domain>.
 *
 *   dns_verify_start   both lookups at once on a resolver; one callback
 *   dns_verify_sync    the same on a private loop (moatctl domain verify)
 *
 * Outcome rules: either proof present -> DNS_VERIFY_OK, even if the other
 * lookup failed. Neither present and a lookup failed temporarily (SERVFAIL,
 * timeout) -> DNS_VERIFY_TEMP: nothing is concluded, the domain stays as it
 * is. Otherwise DNS_VERIFY_FAIL with what was found (no record, NXDOMAIN, a
 * moat-verification record with another token, MX elsewhere). Whether a
 * claim may become verified at all (another tenant verified the name first)
 * is the store's decision, not this file's.
 */
#include "core/core.h"

#include "dns/dns.h"

struct verify {
    dns_verify_cb cb;
    void *arg;
    char domain[DNS_HOST_MAX + 1];
    char token[DNS_TOKEN_HEX + 1];
    char mx_host[DNS_HOST_MAX + 1];
    int waiting;
    /* what came back */
    enum dns_result txt_res, mx_res;
    int txt_match; /* dns_txt_match */
    bool mx_match;
    char txt_err[256], mx_err[256];
    char mx_seen[128]; /* the first MX host, for the reason */
};

static void verify_finish(struct verify *v)
{
    struct dns_verify_result res;
    memset(&res, 0, sizeof res);
    if (v->txt_match == 1) {
        res.outcome = DNS_VERIFY_OK;
        res.method = "txt";
        snprintf(res.reason, sizeof res.reason, "TXT record %s%s found", DNS_TXT_PREFIX, v->token);
    } else if (v->mx_match) {
        res.outcome = DNS_VERIFY_OK;
        res.method = "mx";
        snprintf(res.reason, sizeof res.reason, "MX record points to %s", v->mx_host);
    } else if (v->txt_res == DNS_RESULT_TEMP || v->mx_res == DNS_RESULT_TEMP) {
        res.outcome = DNS_VERIFY_TEMP;
        snprintf(res.reason, sizeof res.reason, "DNS lookup failed, will retry: %s",
                 v->txt_res == DNS_RESULT_TEMP ? v->txt_err : v->mx_err);
    } else {
        res.outcome = DNS_VERIFY_FAIL;
        const char *txt;
        char mx[300];
        switch (v->txt_res) {
        case DNS_RESULT_NXDOMAIN:
            txt = "the domain does not exist (NXDOMAIN)";
            break;
        case DNS_RESULT_NODATA:
            txt = "no TXT record";
            break;
        default:
            txt = v->txt_match == 2 ? "a moat-verification TXT record with a different token"
                                    : "no moat-verification TXT record";
            break;
        }
        if (v->mx_res == DNS_RESULT_OK && v->mx_seen[0])
            snprintf(mx, sizeof mx, "MX points to %s, not %s", v->mx_seen, v->mx_host);
        else if (v->mx_res == DNS_RESULT_OK)
            snprintf(mx, sizeof mx, "null MX, not %s", v->mx_host);
        else
            snprintf(mx, sizeof mx, "no MX record pointing to %s", v->mx_host);
        snprintf(res.reason, sizeof res.reason, "not verified: %s; %s (add TXT \"%s%s\" or MX %s)", txt, mx,
                 DNS_TXT_PREFIX, v->token, v->mx_host);
    }
    v->cb(&res, v->arg);
    free(v);
}

static void txt_cb(const struct dns_answer *a, void *arg)
{
    struct verify *v = arg;
    v->txt_res = a->result;
    core_strlcpy(v->txt_err, a->err, sizeof v->txt_err);
    if (a->result == DNS_RESULT_OK)
        v->txt_match = dns_txt_match(a->txt, a->ntxt, v->token);
    if (--v->waiting == 0)
        verify_finish(v);
}

static void mx_cb(const struct dns_answer *a, void *arg)
{
    struct verify *v = arg;
    v->mx_res = a->result;
    core_strlcpy(v->mx_err, a->err, sizeof v->mx_err);
    if (a->result == DNS_RESULT_OK) {
        v->mx_match = dns_mx_match(a->mx, a->nmx, v->mx_host);
        if (a->nmx)
            core_strlcpy(v->mx_seen, a->mx[0].host, sizeof v->mx_seen);
    }
    if (--v->waiting == 0)
        verify_finish(v);
}

int dns_verify_start(struct dns_resolver *r, const char *domain, const char *token, const char *mx_host,
                     dns_verify_cb cb, void *arg)
{
    if (strlen(domain) > DNS_HOST_MAX || strlen(token) > DNS_TOKEN_HEX || strlen(mx_host) > DNS_HOST_MAX)
        return -1;
    struct verify *v = xcalloc(1, sizeof *v);
    v->cb = cb;
    v->arg = arg;
    core_strlcpy(v->domain, domain, sizeof v->domain);
    core_strlcpy(v->token, token, sizeof v->token);
    core_strlcpy(v->mx_host, mx_host, sizeof v->mx_host);
    v->waiting = 2;
    if (dns_lookup(r, domain, DNS_T_TXT, txt_cb, v) < 0) {
        free(v);
        return -1;
    }
    if (dns_lookup(r, domain, DNS_T_MX, mx_cb, v) < 0) {
        /* the TXT callback still comes: count the MX as a temporary failure */
        v->mx_res = DNS_RESULT_TEMP;
        snprintf(v->mx_err, sizeof v->mx_err, "MX %s: too many lookups in flight", domain);
        v->waiting--;
    }
    return 0;
}

struct sync_state {
    struct dns_verify_result *res;
    struct event_base *base;
    bool done;
};

static void sync_cb(const struct dns_verify_result *res, void *arg)
{
    struct sync_state *s = arg;
    *s->res = *res;
    s->done = true;
    event_base_loopbreak(s->base);
}

int dns_verify_sync(const char *server, unsigned timeout_ms, unsigned tries, const char *domain,
                    const char *token, const char *mx_host, struct dns_verify_result *res)
{
    memset(res, 0, sizeof *res);
    struct event_base *base = event_base_new();
    if (!base) {
        snprintf(res->reason, sizeof res->reason, "cannot create an event loop");
        return -1;
    }
    char err[256];
    struct dns_resolver *r = dns_resolver_new(base, server, timeout_ms, tries, err, sizeof err);
    if (!r) {
        snprintf(res->reason, sizeof res->reason, "%s", err);
        event_base_free(base);
        return -1;
    }
    struct sync_state s = {.res = res, .base = base};
    int rc = 0;
    if (dns_verify_start(r, domain, token, mx_host, sync_cb, &s) < 0) {
        snprintf(res->reason, sizeof res->reason, "cannot look up %s", domain);
        rc = -1;
    }
    while (rc == 0 && !s.done)
        if (event_base_loop(base, EVLOOP_ONCE) < 0)
            break;
    if (rc == 0 && !s.done) {
        res->outcome = DNS_VERIFY_TEMP;
        snprintf(res->reason, sizeof res->reason, "DNS lookup did not complete");
    }
    dns_resolver_free(r);
    event_base_free(base);
    return rc;
}
