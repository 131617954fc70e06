/*
 * core_metrics.c - the process-wide counters behind GET /metrics.
 *
 *   metric_message        a tracked SMTP transaction (direction, verdict, rate limits)
 *   metric_delivery       a recipient's delivery result
 *   metric_scan_latency   one scan's latency (histogram)
 *   metric_snapshot       copy every counter (the HTTP server formats them)
 *
 * Why here: every module may count (core/ depends on nothing), and the
 * counters are fed from the places every message already passes (the
 * tracker, the scan pool), so mail flow pays one relaxed atomic add per
 * event and no lock. Label values are fixed enums: the exposition cannot
 * grow with input.
 */
#include "core/core.h"

static struct core_metrics counters;

const double core_metric_scan_bounds[METRIC_SCAN_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                             1,     2.5,  5,     10,   30,  0 /* +Inf */};

static const char *const verdict_names[METRIC_NVERDICT] = {
    "clean", "virus",          "spam",    "phishing",       "graymail", "bec", "web_reputation",
    "social_engineering", "content", "scan_exclusion", "rejected", "deferred",
};
static const char *const delivery_names[METRIC_NDELIVERY] = {"delivered", "deferred", "bounced", "expired",
                                                             "other"};

static void add(uint64_t *c, uint64_t n)
{
    __atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

const char *metric_verdict_name(enum metric_verdict v)
{
    return v < METRIC_NVERDICT ? verdict_names[v] : "unknown";
}

const char *metric_delivery_name(enum metric_delivery d)
{
    return d < METRIC_NDELIVERY ? delivery_names[d] : "unknown";
}

/* verdict_of - the first category word of a verdict summary ("spam, virus; detections=...") */
static enum metric_verdict verdict_of(const char *scan)
{
    if (!scan || !scan[0])
        return METRIC_V_CLEAN;
    size_t n = strcspn(scan, ",; ");
    for (int v = 0; v < METRIC_V_REJECTED; v++)
        if (strlen(verdict_names[v]) == n && strncmp(scan, verdict_names[v], n) == 0)
            return (enum metric_verdict)v;
    return METRIC_V_CLEAN;
}

void metric_message(const char *direction, const char *action, const char *scan, const char *reason)
{
    enum metric_dir d = direction && strcmp(direction, "outbound") == 0 ? METRIC_DIR_OUTBOUND : METRIC_DIR_INBOUND;
    enum metric_verdict v;
    if (action && strcmp(action, "rejected") == 0)
        v = METRIC_V_REJECTED;
    else if (action && strcmp(action, "deferred") == 0)
        v = METRIC_V_DEFERRED;
    else
        v = verdict_of(scan);
    add(&counters.messages[d][v], 1);
    if (reason && strncmp(reason, "Exceeded limit", 14) == 0)
        add(&counters.ratelimit[strstr(reason, "by IP address") ? METRIC_RL_IP : METRIC_RL_SENDER], 1);
}

void metric_delivery(const char *status)
{
    if (!status)
        return;
    enum metric_delivery d = METRIC_D_OTHER;
    for (int i = 0; i < METRIC_D_OTHER; i++)
        if (strcmp(status, delivery_names[i]) == 0)
            d = (enum metric_delivery)i;
    if (strcmp(status, "queued") == 0)
        return; /* not a result */
    add(&counters.delivery[d], 1);
}

void metric_scan_latency(double seconds)
{
    if (!(seconds >= 0)) /* also NaN */
        seconds = 0;
    size_t b = METRIC_SCAN_BUCKETS - 1;
    for (size_t i = 0; i + 1 < METRIC_SCAN_BUCKETS; i++) {
        if (seconds <= core_metric_scan_bounds[i]) {
            b = i;
            break;
        }
    }
    add(&counters.scan_bucket[b], 1);
    add(&counters.scan_count, 1);
    add(&counters.scan_sum_us, seconds > 1e6 ? (uint64_t)1e12 : (uint64_t)(seconds * 1e6));
}

void metric_snapshot(struct core_metrics *out)
{
    uint64_t *dst = (uint64_t *)(void *)out;
    uint64_t *src = (uint64_t *)(void *)&counters;
    for (size_t i = 0; i < sizeof counters / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}
