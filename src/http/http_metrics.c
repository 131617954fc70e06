/*
 * http_metrics.c - GET /healthz and GET /metrics (Prometheus text format 0.0.4).
 *
 * /healthz answers 200 {"status": "ok"} when the store answers (503 otherwise).
 * /metrics exposes the process counters of core_metrics.c (messages by
 * direction and verdict, delivery results, rate-limit hits, the scan
 * latency histogram), the queue's size (files in spool/queue and
 * spool/incoming, counted at scrape time), tracking records dropped, and
 * HTTP requests by status class. Neither needs authentication and neither
 * shows tenant data; expose http_listen accordingly.
 */
#include "http/http_int.h"

#include <dirent.h>

void http_api_healthz(struct http_request *r)
{
    int64_t v = store_config_version(r->slot ? r->slot->st : NULL);
    if (v < 0) {
        http_reply_json(r, 503, json_pack("{s:s}", "status", "store unavailable"));
        return;
    }
    http_reply_json(r, 200, json_pack("{s:s,s:I}", "status", "ok", "config_version", (json_int_t)v));
}

/* count_dir - regular entries of dir (not . / ..), or -1 */
static long count_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

void http_api_metrics(struct http_request *r)
{
    struct core_metrics m;
    metric_snapshot(&m);
    struct buf b;
    buf_init(&b, 1024 * 1024);
    buf_append_str(&b, "# HELP moat_messages_total SMTP transactions by direction and verdict (rejected/deferred: "
                       "refused in the session).\n# TYPE moat_messages_total counter\n");
    static const char *const dirs[METRIC_NDIR] = {"inbound", "outbound"};
    for (int d = 0; d < METRIC_NDIR; d++)
        for (int v = 0; v < METRIC_NVERDICT; v++)
            buf_printf(&b, "moat_messages_total{direction=\"%s\",verdict=\"%s\"} %llu\n", dirs[d],
                       metric_verdict_name((enum metric_verdict)v), (unsigned long long)m.messages[d][v]);
    buf_append_str(&b, "# HELP moat_delivery_results_total Delivery results per recipient.\n"
                       "# TYPE moat_delivery_results_total counter\n");
    for (int i = 0; i < METRIC_NDELIVERY; i++)
        buf_printf(&b, "moat_delivery_results_total{result=\"%s\"} %llu\n",
                   metric_delivery_name((enum metric_delivery)i), (unsigned long long)m.delivery[i]);
    buf_append_str(&b, "# HELP moat_ratelimit_hits_total Transactions refused by a rate limit.\n"
                       "# TYPE moat_ratelimit_hits_total counter\n");
    buf_printf(&b, "moat_ratelimit_hits_total{by=\"ip\"} %llu\nmoat_ratelimit_hits_total{by=\"sender\"} %llu\n",
               (unsigned long long)m.ratelimit[METRIC_RL_IP], (unsigned long long)m.ratelimit[METRIC_RL_SENDER]);
    buf_append_str(&b, "# HELP moat_scan_duration_seconds Time from handing a message to a scan worker to its "
                       "verdict.\n# TYPE moat_scan_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < METRIC_SCAN_BUCKETS; i++) {
        cum += m.scan_bucket[i];
        if (i + 1 < METRIC_SCAN_BUCKETS)
            buf_printf(&b, "moat_scan_duration_seconds_bucket{le=\"%g\"} %llu\n", core_metric_scan_bounds[i],
                       (unsigned long long)cum);
        else
            buf_printf(&b, "moat_scan_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    buf_printf(&b, "moat_scan_duration_seconds_sum %.6f\nmoat_scan_duration_seconds_count %llu\n",
               (double)m.scan_sum_us / 1e6, (unsigned long long)m.scan_count);
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/spool/queue", r->srv->d.cfg->data_dir);
    long queued = count_dir(dir);
    snprintf(dir, sizeof dir, "%s/spool/incoming", r->srv->d.cfg->data_dir);
    long incoming = count_dir(dir);
    buf_append_str(&b, "# HELP moat_queue_messages Messages in the spool.\n# TYPE moat_queue_messages gauge\n");
    buf_printf(&b, "moat_queue_messages{state=\"queued\"} %ld\nmoat_queue_messages{state=\"incoming\"} %ld\n",
               queued < 0 ? 0 : queued, incoming < 0 ? 0 : incoming);
    buf_printf(&b, "# HELP moat_tracking_dropped_total Tracking records dropped (writer queue full).\n"
                   "# TYPE moat_tracking_dropped_total counter\nmoat_tracking_dropped_total %llu\n",
               (unsigned long long)tracker_dropped(r->srv->d.tracker));
    buf_append_str(&b, "# HELP moat_http_requests_total HTTP requests by status class.\n"
                       "# TYPE moat_http_requests_total counter\n");
    for (int c = 1; c <= 5; c++)
        buf_printf(&b, "moat_http_requests_total{code=\"%dxx\"} %llu\n", c,
                   (unsigned long long)__atomic_load_n(&r->srv->requests[c], __ATOMIC_RELAXED));
    buf_printf(&b, "# HELP moat_uptime_seconds Seconds since moatd started serving HTTP.\n"
                   "# TYPE moat_uptime_seconds gauge\nmoat_uptime_seconds %.0f\n",
               core_now() - r->srv->started);
    buf_cstr(&b);
    http_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.ptr, b.len);
}
