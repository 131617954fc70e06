/*
 * dns_check.c - what happens with a domain ownership check: the store
 * update, the log line, the mails; and moatd's periodic checker.
 *
 *   dns_check_apply                      one result -> store, log, mail
 *   dns_check_verify_now                 "Verify": check a claim now (moatctl, console)
 *   dns_checker_start / dns_checker_stop the checker thread of moatd
 *
 * Schedule: a pending domain is checked at once after it is added (its
 * check_next is 0), then after domain_check_min, doubling after each failed
 * or inconclusive check up to domain_check_max. A domain verified through
 * DNS is checked again every domain_recheck; a failed re-check never
 * unverifies it (mail keeps flowing): the first one is logged, audited and
 * mailed to the tenant's address, and a temporary failure is retried with
 * the back-off. A proof found for a name another tenant verified first
 * changes nothing and is checked again only after domain_check_max.
 *
 * The checker thread owns its event loop, c-ares resolver and store
 * connection; it starts at most DNS_CHECK_BATCH checks at a time and reads
 * the numeric configuration live (SIGHUP).
 */
#include "core/core.h"

#include <pthread.h>

#include "dns/dns.h"
#include "notify/notify.h"
#include "queue/queue.h"
#include "store/store.h"

#define DNS_CHECK_BATCH 32

/* send_mail - the activation / record-missing mail of claim c */
static void send_mail(const struct dns_check_ctx *x, const struct store_domain_claim *c, enum notify_domain_kind kind,
                      const char *mx_host, const char *reason)
{
    if (!x->inject)
        return;
    if (!c->admin_email || !c->admin_email[0]) {
        log_warn("dns domain mail not sent company=%s domain=%s reason=\"the tenant has no admin_email\"",
                 c->company_id, c->domain);
        return;
    }
    struct notify_domain_info info = {.kind = kind,
                                      .company_id = c->company_id,
                                      .tenant_name = c->tenant_name,
                                      .domain = c->domain,
                                      .mx_host = mx_host,
                                      .token = c->token,
                                      .to = c->admin_email,
                                      .hostname = x->cfg->hostname,
                                      .reason = reason};
    struct buf out;
    struct queue_envelope env;
    char err[512];
    buf_init(&out, 1024 * 1024);
    if (notify_domain_prepare(&info, &out, &env, err, sizeof err) < 0) {
        log_error("dns domain mail failed company=%s domain=%s reason=\"%s\"", c->company_id, c->domain, err);
    } else if (x->inject(out.ptr, out.len, &env, x->inject_arg) < 0) {
        log_error("dns domain mail not queued company=%s domain=%s", c->company_id, c->domain);
    } else {
        log_info("dns domain mail queued qid=%s company=%s domain=%s kind=%s", env.qid, c->company_id, c->domain,
                 kind == NOTIFY_DOMAIN_ACTIVATED ? "activated" : "record_missing");
    }
    queue_envelope_free(&env);
    buf_free(&out);
}

int dns_check_apply(const struct dns_check_ctx *x, const struct store_domain_claim *c,
                    const struct dns_verify_result *res, int *change, bool *first)
{
    const struct moat_config *cfg = x->cfg;
    double now = core_now();
    enum store_check outcome = res->outcome == DNS_VERIFY_OK     ? STORE_CHECK_OK
                               : res->outcome == DNS_VERIFY_FAIL ? STORE_CHECK_FAIL
                                                                 : STORE_CHECK_TEMP;
    double next;
    if (outcome == STORE_CHECK_OK || (c->verified && outcome == STORE_CHECK_FAIL))
        next = now + (double)cfg->domain_recheck;
    else
        next = now + dns_backoff(c->check_failures, (double)cfg->domain_check_min, (double)cfg->domain_check_max);
    enum store_check_change ch;
    char reason[600];
    log_escape(res->reason, strlen(res->reason), reason, sizeof reason);
    int rc = store_domain_check_done(x->st, c->company_id, c->domain, outcome, res->method, res->reason, next,
                                     x->actor, &ch, first);
    if (rc != 0) {
        log_error("dns domain check not recorded company=%s domain=%s", c->company_id, c->domain);
        return -1;
    }
    if (ch == STORE_CHANGE_TAKEN) {
        /* retried rarely: only if the other tenant gives the name up */
        store_domain_check_done(x->st, c->company_id, c->domain, STORE_CHECK_FAIL, NULL,
                                "already verified by another tenant", now + (double)cfg->domain_check_max,
                                x->actor, &ch, first);
        ch = STORE_CHANGE_TAKEN;
    }
    *change = (int)ch;
    char mx_host[300];
    if (dns_mx_host(c->company_id, cfg->service_domain, mx_host, sizeof mx_host) < 0)
        mx_host[0] = '\0';
    switch (ch) {
    case STORE_CHANGE_VERIFIED:
        log_info("dns domain verified company=%s domain=%s via=%s first=%s", c->company_id, c->domain,
                 res->method ? res->method : "dns", *first ? "yes" : "no");
        send_mail(x, c, NOTIFY_DOMAIN_ACTIVATED, mx_host, NULL);
        break;
    case STORE_CHANGE_TAKEN:
        log_warn("dns domain already verified by another tenant company=%s domain=%s", c->company_id, c->domain);
        break;
    case STORE_CHANGE_RECORD_MISSING:
        log_warn("dns domain record missing company=%s domain=%s reason=\"%s\" (mail still accepted)",
                 c->company_id, c->domain, reason);
        send_mail(x, c, NOTIFY_DOMAIN_RECORD_MISSING, mx_host, res->reason);
        break;
    case STORE_CHANGE_RECORD_RESTORED:
        log_info("dns domain record restored company=%s domain=%s", c->company_id, c->domain);
        break;
    default:
        log_info("dns domain check company=%s domain=%s verified=%s result=%s next_in=%.0fs reason=\"%s\"",
                 c->company_id, c->domain, c->verified ? "yes" : "no",
                 outcome == STORE_CHECK_OK ? "ok" : outcome == STORE_CHECK_FAIL ? "fail" : "temp", next - now,
                 reason);
        break;
    }
    return 0;
}

int dns_check_verify_now(const struct dns_check_ctx *x, const char *domain, const char *company_id,
                         struct dns_check_report *rep)
{
    memset(rep, 0, sizeof *rep);
    char name[256];
    core_strlcpy(name, domain, sizeof name);
    size_t nl = strlen(name);
    while (nl > 0 && name[nl - 1] == '.')
        name[--nl] = '\0';
    for (char *p = name; *p; p++)
        *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    struct store_domain_claim *c = NULL;
    size_t n = 0;
    if (store_domain_claims(x->st, name, company_id, &c, &n) < 0) {
        snprintf(rep->reason, sizeof rep->reason, "database error");
        return -1;
    }
    char esc[300];
    log_escape(name, strlen(name), esc, sizeof esc);
    if (n == 0) {
        snprintf(rep->reason, sizeof rep->reason, "%s is not a domain of %s", esc, company_id ? company_id : "any tenant");
        store_domain_claims_free(c, n);
        return 1;
    }
    if (!company_id && n > 1 && !c[0].verified) {
        snprintf(rep->reason, sizeof rep->reason, "several tenants have added %s: name the tenant", esc);
        store_domain_claims_free(c, n);
        return 1;
    }
    struct store_domain_claim *me = &c[0];
    core_strlcpy(rep->company_id, me->company_id, sizeof rep->company_id);
    core_strlcpy(rep->domain, me->domain, sizeof rep->domain);
    rep->was_verified = me->verified;
    char mx[300];
    if (dns_mx_host(me->company_id, x->cfg->service_domain, mx, sizeof mx) < 0) {
        snprintf(rep->reason, sizeof rep->reason, "the MX host name is too long");
        store_domain_claims_free(c, n);
        return 1;
    }
    if (dns_verify_sync(x->cfg->dns_server, (unsigned)x->cfg->dns_timeout_ms, (unsigned)x->cfg->dns_tries,
                        me->domain, me->token, mx, &rep->res) < 0) {
        snprintf(rep->reason, sizeof rep->reason, "%s", rep->res.reason);
        store_domain_claims_free(c, n);
        return -1;
    }
    if (dns_check_apply(x, me, &rep->res, &rep->change, &rep->first) < 0) {
        snprintf(rep->reason, sizeof rep->reason, "cannot record the result");
        store_domain_claims_free(c, n);
        return -1;
    }
    /* the state now (moatd's checker may have verified it meanwhile) */
    rep->verified = rep->change == STORE_CHANGE_VERIFIED || me->verified;
    struct store_domain_claim *after = NULL;
    size_t nafter = 0;
    if (store_domain_claims(x->st, me->domain, me->company_id, &after, &nafter) == 0 && nafter == 1)
        rep->verified = after[0].verified;
    store_domain_claims_free(after, nafter);
    if (rep->change == STORE_CHANGE_TAKEN)
        snprintf(rep->reason, sizeof rep->reason, "%s is already verified by another tenant", me->domain);
    else if (me->verified && rep->res.outcome != DNS_VERIFY_OK)
        snprintf(rep->reason, sizeof rep->reason, "verified earlier, but now %s (mail is still accepted)",
                 rep->res.reason);
    else
        snprintf(rep->reason, sizeof rep->reason, "%s", rep->res.reason);
    store_domain_claims_free(c, n);
    return 0;
}

/* ---------------------------------------------------------------- the checker thread */
struct dns_checker {
    const struct moat_config *cfg;
    struct event_base *base;
    struct event *tick;
    struct dns_resolver *res;
    struct store *st;
    struct dns_check_ctx ctx;
    pthread_t thread;
    size_t inflight;
};

struct check_job {
    struct dns_checker *c;
    struct store_domain_claim claim; /* strings owned */
};

static void job_free(struct check_job *j)
{
    free(j->claim.tenant_name);
    free(j->claim.admin_email);
    free(j->claim.verified_via);
    free(j->claim.check_result);
    free(j);
}

static void job_done(const struct dns_verify_result *res, void *arg)
{
    struct check_job *j = arg;
    int change;
    bool first;
    j->c->inflight--;
    if (j->c->st)
        dns_check_apply(&j->c->ctx, &j->claim, res, &change, &first);
    job_free(j);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dns_checker *c = arg;
    (void)fd;
    (void)what;
    if (c->inflight > 0)
        return;
    struct store_domain_claim *due = NULL;
    size_t n = 0;
    if (store_domain_due(c->st, core_now(), DNS_CHECK_BATCH, &due, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        char mx_host[300];
        struct check_job *j = xcalloc(1, sizeof *j);
        j->c = c;
        j->claim = due[i];
        /* the strings move into the job */
        due[i].tenant_name = due[i].admin_email = due[i].verified_via = due[i].check_result = NULL;
        if (dns_mx_host(j->claim.company_id, c->cfg->service_domain, mx_host, sizeof mx_host) < 0 ||
            dns_verify_start(c->res, j->claim.domain, j->claim.token, mx_host, job_done, j) < 0) {
            struct dns_verify_result r = {.outcome = DNS_VERIFY_TEMP};
            snprintf(r.reason, sizeof r.reason, "cannot start the DNS lookups");
            int change;
            bool first;
            dns_check_apply(&c->ctx, &j->claim, &r, &change, &first);
            job_free(j);
            continue;
        }
        c->inflight++;
    }
    store_domain_claims_free(due, n);
}

static void *checker_main(void *arg)
{
    struct dns_checker *c = arg;
    event_base_dispatch(c->base);
    return NULL;
}

struct dns_checker *dns_checker_start(const struct moat_config *cfg, dns_inject_fn inject, void *inject_arg,
                                      char *err, size_t errsz)
{
    struct dns_checker *c = xcalloc(1, sizeof *c);
    c->cfg = cfg;
    if (!(c->base = event_base_new())) {
        snprintf(err, errsz, "cannot create the DNS checker's event loop");
        free(c);
        return NULL;
    }
    if (!(c->res = dns_resolver_new(c->base, cfg->dns_server, (unsigned)cfg->dns_timeout_ms,
                                    (unsigned)cfg->dns_tries, err, errsz)))
        goto fail;
    if (store_open(cfg, &c->st, err, errsz) < 0)
        goto fail;
    c->ctx = (struct dns_check_ctx){
        .cfg = cfg, .st = c->st, .inject = inject, .inject_arg = inject_arg, .actor = "moatd"};
    c->tick = event_new(c->base, -1, EV_PERSIST, tick_cb, c);
    struct timeval tv = {1, 0};
    if (!c->tick || event_add(c->tick, &tv) < 0) {
        snprintf(err, errsz, "cannot start the DNS checker's timer");
        goto fail;
    }
    if (pthread_create(&c->thread, NULL, checker_main, c) != 0) {
        snprintf(err, errsz, "cannot start the DNS checker thread");
        goto fail;
    }
    return c;
fail:
    if (c->tick)
        event_free(c->tick);
    dns_resolver_free(c->res);
    store_close(c->st);
    event_base_free(c->base);
    free(c);
    return NULL;
}

void dns_checker_stop(struct dns_checker *c)
{
    if (!c)
        return;
    event_base_loopbreak(c->base);
    pthread_join(c->thread, NULL);
    /* lookups still in flight are cancelled: their results are not recorded */
    struct store *st = c->st;
    c->st = NULL;
    dns_resolver_free(c->res);
    event_free(c->tick);
    event_base_free(c->base);
    store_close(st);
    free(c);
}
