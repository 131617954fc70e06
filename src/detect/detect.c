/*
 * detect.c - runs the detectors of detect_int.h in a fixed order (see
 * detect.h). The order matters only for evidence readability: malware
 * first, then content signals, then the spam score that may use them.
 */
#include "core/core.h"
#include "detect/detect_int.h"

static const struct detector detectors[] = {
    /* {"virus", detect_virus_init, detect_virus_run, detect_virus_shutdown}, ... */
    {"virus", detect_virus_init, detect_virus_run, detect_virus_shutdown},
    {"spam", detect_spam_init, detect_spam_run, detect_spam_shutdown},
    {"phishing", detect_phish_init, detect_phish_run, detect_phish_shutdown},
    {"web_reputation", detect_webrep_init, detect_webrep_run, detect_webrep_shutdown},
    {"bec", detect_bec_init, detect_bec_run, detect_bec_shutdown},
    {"social_engineering", NULL, detect_social_run, NULL},
    {"graymail", NULL, detect_graymail_run, NULL},
    {NULL, NULL, NULL, NULL},
};

int detect_init(const struct moat_config *cfg, char *err, size_t errsz)
{
    int rc = 0;
    for (const struct detector *d = detectors; d->name; d++) {
        char e[512];
        if (d->init && d->init(cfg, e, sizeof e) < 0) {
            snprintf(err, errsz, "%s: %s", d->name, e);
            rc = -1;
        }
    }
    return rc;
}

void detect_run(struct analysis *a, const char *msg, size_t len, const struct detect_context *ctx)
{
    static const struct detect_context none;
    if (!ctx)
        ctx = &none;
    for (const struct detector *d = detectors; d->name; d++)
        d->run(a, msg, len, ctx);
    a->spam_levels = a->spam_scored ? detect_spam_levels(a->spam_score) : 0;
}

unsigned detect_spam_levels(double score)
{
    unsigned bits = 0;
    for (unsigned i = 0; i < 5; i++)
        if (score >= spam_levels[i].threshold)
            bits |= 1u << i;
    return bits;
}

void detect_shutdown(void)
{
    for (const struct detector *d = detectors; d->name; d++)
        if (d->shutdown)
            d->shutdown();
}
