/*
 * moatd.c - the gateway daemon's main: parse arguments and configuration,
 * open the store, spool and tracker, start the queue manager and the SMTP
 * server, then wait for signals (SIGTERM/SIGINT: graceful stop; SIGHUP:
 * reload tenant data and the routing snapshot). The tenant data version is
 * also polled every second, so `moatctl import` takes effect without a
 * signal. Hourly: the tracking and quarantine retention purges and expired
 * console sessions. The domain checker thread (src/dns/dns_check.c)
 * verifies pending domains. The HTTP server (console, REST API, /metrics)
 * starts before the SMTP listeners and stops first. With
 * --scan-worker it runs as a scan worker process instead.
 *
 *   moatd -c FILE [--check] [--version]
 */
#include "core/core.h"
#include "dns/dns.h"
#include "http/http.h"
#include "quarantine/quarantine.h"
#include "queue/queue.h"
#include "scan/scan.h"
#include "policy/policy.h"
#include "smtp/smtp.h"
#include "smtp/smtp_tls.h"
#include "store/store.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <sys/resource.h>

#include <event2/thread.h>

static volatile sig_atomic_t got_term, got_hup;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        got_hup = 1;
    else
        got_term = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: moatd -c FILE [--check] | moatd --print-config [-c FILE]\n");
}

static void emit_row(const char *key, const char *value, const char *doc, void *arg)
{
    (void)arg;
    printf("| `%s` | `%s` | %s |\n", key, value, doc);
}

/* reload_domains - load a fresh routing snapshot into both consumers */
static int reload_domains(struct store *st, struct smtp_server *srv, struct queue_mgr *qm)
{
    struct domain_map *m = store_domain_map_load(st);
    if (!m) {
        log_error("config reload failed: cannot load domains");
        return -1;
    }
    smtp_server_set_domains(srv, m);
    queue_mgr_set_domains(qm, m);
    domain_map_unref(m);
    /* the tenants' policies, for the decisions taken before the scan */
    char err[512];
    char *doc = store_export_json(st, NULL, err, sizeof err);
    struct policy_table *pt = doc ? policy_table_build(doc, strlen(doc), err, sizeof err) : NULL;
    free(doc);
    if (!pt)
        log_error("policies not loaded: %s", err);
    else if (err[0])
        log_error("policies: a tenant left out: %s", err);
    if (pt) {
        smtp_server_set_policies(srv, pt);
        policy_table_unref(pt);
    }
    return 0;
}

/* inject_mail - the DNS checker's mails go through the queue manager */
static int inject_mail(const char *data, size_t len, struct queue_envelope *env, void *arg)
{
    return queue_mgr_inject(arg, data, len, env);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    bool check = false, worker = false, zygote = false, print = false;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'C'},
        {"scan-worker", no_argument, NULL, 'W'},  {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {"print-config", no_argument, NULL, 'P'},
        {"scan-zygote", no_argument, NULL, 'Z'},  {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config_path = optarg;
            break;
        case 'C':
            check = true;
            break;
        case 'W':
            worker = true;
            break;
        case 'Z':
            zygote = true;
            break;
        case 'V':
            printf("moatd 0.1.0\n");
            return 0;
        case 'P':
            print = true;
            break;
        default:
            usage();
            return 1;
        }
    }
    struct moat_config cfg;
    char err[1024];
    if (print && optind == argc) {
        /* every key with its (or the file's) value: the configuration reference */
        if (config_path ? config_load(config_path, &cfg, err, sizeof err) < 0 : (config_defaults(&cfg), 0)) {
            fprintf(stderr, "moatd: %s\n", err);
            config_free(&cfg);
            return 1;
        }
        printf("| key | value | meaning |\n|---|---|---|\n");
        config_dump(&cfg, emit_row, NULL);
        config_free(&cfg);
        return 0;
    }
    if (!config_path || optind != argc) {
        usage();
        return 1;
    }
    if (config_load(config_path, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "moatd: %s\n", err);
        config_free(&cfg);
        return 1;
    }
    if (check) {
        printf("moatd: %s: configuration OK\n", config_path);
        config_free(&cfg);
        return 0;
    }
    log_init(worker || zygote ? "moatd-scan" : "moatd", strcmp(cfg.log_target, "syslog") == 0, LOG_LVL_INFO);
    if (worker || zygote) {
        int rc = zygote ? scan_zygote_main(3, &cfg) : scan_worker_main(3, &cfg);
        config_free(&cfg);
        return rc;
    }

    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "moatd: cannot find own executable\n");
        return 2;
    }
    exe[n] = '\0';
    char abs_config[PATH_MAX];
    if (!realpath(config_path, abs_config))
        core_strlcpy(abs_config, config_path, sizeof abs_config);

    /* before any event_base exists: the loops are woken from other threads
     * (queue submissions, commit completions), which needs libevent's locks */
    if (evthread_use_pthreads() < 0) {
        fprintf(stderr, "moatd: libevent threading unavailable\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    int rc = 2;
    struct store *st = NULL;
    struct quarantine *qr = NULL; /* the retention purge (main loop) */
    struct tracker *tr = NULL;
    struct spool *sp = NULL;
    struct queue_mgr *qm = NULL;
    struct smtp_server *srv = NULL;
    struct dns_checker *checker = NULL;
    struct http_server *web = NULL;
    SSL_CTX *server_ctx = NULL, *client_ctx = NULL;
    char scan_tmp[1024] = "";

    if (store_open(&cfg, &st, err, sizeof err) < 0) {
        log_error("cannot open store: %s", err);
        goto out;
    }
    if (!(qr = quarantine_open(cfg.data_dir, st, err, sizeof err))) {
        log_error("cannot open the quarantine: %s", err);
        goto out;
    }
    if (!(tr = tracker_start(&cfg, err, sizeof err))) {
        log_error("cannot start tracking: %s", err);
        goto out;
    }
    if (!(sp = spool_open(cfg.data_dir, 16, err, sizeof err))) {
        log_error("cannot open spool: %s", err);
        goto out;
    }
    /* the scan workers' temporary directory: emptied of what a killed
     * worker left, before any worker starts (scan_tmpdir.c) */
    if (scan_tmpdir_resolve(&cfg, scan_tmp, sizeof scan_tmp) == 0) {
        scan_tmpdir_prepare(scan_tmp);
        log_info("scan temporary directory %s", scan_tmp);
    } else {
        log_warn("scan_tmp_dir %s is not a usable directory of ours: libclamav uses TMPDIR", cfg.scan_tmp_dir);
        scan_tmp[0] = '\0';
    }
    if (!(server_ctx = smtp_tls_server_ctx(&cfg, err, sizeof err))) {
        log_error("TLS unavailable: %s", err);
        goto out;
    }
    client_ctx = smtp_tls_client_ctx();
    qm = queue_mgr_new(&cfg, sp, tr, client_ctx);
    struct smtp_server_deps deps = {
        .cfg = &cfg, .config_path = abs_config, .exe = exe, .tls = server_ctx,
        .spool = sp, .tracker = tr, .queue = qm,
    };
    if (!(srv = smtp_server_new(&deps, err, sizeof err))) {
        log_error("%s", err);
        goto out;
    }
    if (reload_domains(st, srv, qm) < 0)
        goto out;
    if (queue_mgr_start(qm) < 0) {
        log_error("cannot start the queue manager");
        goto out;
    }
    if (!(checker = dns_checker_start(&cfg, inject_mail, qm, err, sizeof err))) {
        log_error("cannot start the domain checker: %s", err);
        queue_mgr_stop(qm);
        goto out;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    /* read before the listeners open: a change made once clients can see
     * moatd (tests import right after the banner) must not be missed */
    int64_t version = store_config_version(st);
    struct http_deps hdeps = {.cfg = &cfg, .tracker = tr, .queue = qm};
    if (!(web = http_server_start(&hdeps, err, sizeof err))) {
        log_error("http: %s", err);
        goto stop;
    }
    if (smtp_server_start(srv, err, sizeof err) < 0) {
        log_error("%s", err);
        goto stop;
    }
    log_info("moatd started hostname=%s data_dir=%s", cfg.hostname, cfg.data_dir);
    double last_purge = 0;
    while (!got_term) {
        usleep(200000);
        if (got_hup) {
            got_hup = 0;
            log_info("reloading on SIGHUP");
            if (config_reload(&cfg, abs_config, err, sizeof err) < 0)
                log_error("config reload failed, keeping the running configuration: %s", err);
            reload_domains(st, srv, qm);
            version = store_config_version(st);
            continue;
        }
        int64_t v = store_config_version(st);
        if (v != version) {
            version = v;
            log_info("tenant configuration changed version=%lld", (long long)v);
            reload_domains(st, srv, qm);
        }
        double now = core_now();
        if (now - last_purge > 3600) {
            last_purge = now;
            long purged = store_tracking_purge(st, now - (double)cfg.tracking_retention);
            if (purged > 0)
                log_info("tracking purged rows=%ld", purged);
            if (qr && quarantine_purge(qr, now - (double)cfg.quarantine_retention) < 0)
                log_error("quarantine purge failed");
            if (store_session_purge(st, now - (double)cfg.http_session_idle,
                                    now - (double)cfg.http_session_lifetime) < 0)
                log_error("session purge failed");
        }
    }
    log_info("stopping");
    rc = 0;
stop:
    http_server_stop(web);
    smtp_server_stop(srv);
    dns_checker_stop(checker);
    queue_mgr_stop(qm);
out:
    smtp_server_free(srv);
    queue_mgr_free(qm);
    spool_close(sp);
    if (tr)
        tracker_stop(tr);
    quarantine_close(qr);
    store_close(st);
    if (server_ctx)
        SSL_CTX_free(server_ctx);
    if (client_ctx)
        SSL_CTX_free(client_ctx);
    if (scan_tmp[0])
        scan_tmpdir_remove(scan_tmp);
    log_info("stopped");
    config_free(&cfg);
    return rc;
}
