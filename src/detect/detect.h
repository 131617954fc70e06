/*
 * detect.h - the detectors (issue 4): each reads the analysis (and the raw
 * message) and adds detections and the spam score to it. They run in the
 * scan worker processes and in `moatctl scan`, after mime_analyse.
 *
 * detect.c keeps the table of detectors; each detector lives in its own
 * file (detect_virus.c, detect_spam.c, ...) and is declared in
 * detect_int.h. A detector never fails the scan: an engine error becomes a
 * `scan_exclusion` detection with the reason as evidence.
 */
#ifndef MOAT_DETECT_H
#define MOAT_DETECT_H

#include <stddef.h>

#include "core/core.h"
#include "mime/mime.h"

/* The tenant and envelope a message is scanned for (all optional: NULL /
 * 0 when unknown, e.g. `moatctl scan` without --tenant). Borrowed by
 * detect_run for the duration of the call. Domains are lower-case A-labels. */
struct style_profile; /* detect_style.c: a high-profile user's writing style */
struct detect_hp_user {
    const char *name;     /* display name, e.g. "Taro Yamada" */
    const char *address;  /* lower-case addr-spec */
};
struct detect_context {
    const char *const *own_domains;       /* the tenant's domains */
    size_t nown_domains;
    const char *const *hp_domains;        /* tenant's high-profile domains (partners, banks...) */
    size_t nhp_domains;
    const struct detect_hp_user *hp_users;
    size_t nhp_users;
    const char *const *url_blocked;       /* tenant web reputation lists: domains (any */
    size_t nurl_blocked;                  /* subdomain matches) or URL prefixes */
    const char *const *url_approved;
    size_t nurl_approved;
    const char *mail_from;                /* envelope sender ("" for <>) */
    const char *client_ip;
    size_t nrcpt;                         /* envelope recipients */
    bool outbound;                        /* from the tenant's own sending servers */
    const struct style_profile *const *style_profiles; /* writing-style profiles of high-profile */
    size_t nstyle_profiles;                            /* users, keyed by their address */
};

/* The tenant half of a detect_context, from the tenant's configuration
 * document (detect_tenant.c). from_json: the `moatctl export` JSON; with
 * company_id NULL the document must hold exactly one tenant. NULL with err
 * on bad input. The context borrows from t until detect_tenant_free. */
struct detect_tenant;
struct detect_tenant *detect_tenant_from_json(const char *json, size_t len, const char *company_id, char *err,
                                              size_t errsz);
void detect_tenant_context(const struct detect_tenant *t, struct detect_context *ctx);
const char *const *detect_tenant_passwords(const struct detect_tenant *t, size_t *n);
const char *detect_tenant_company(const struct detect_tenant *t);
/* detect_tenant_add_style - add a writing-style profile (the blob of
 * `moatctl style learn`, validated strictly); 0 or -1 with err */
int detect_tenant_add_style(struct detect_tenant *t, const unsigned char *blob, size_t len, char *err,
                            size_t errsz);
void detect_tenant_free(struct detect_tenant *t);

/* detect_set_tmpdir - where libclamav writes its temporary files (before
 * detect_init; default: TMPDIR) */
void detect_set_tmpdir(const char *dir);
/* detect_init - load every engine once per process (signatures, models);
 * 0, or -1 with err (the caller logs it; detection then runs degraded and
 * says so in scan_exclusion detections) */
int detect_init(const struct moat_config *cfg, char *err, size_t errsz);
/* detect_run - every detector on one message; msg/len is the raw message */
void detect_run(struct analysis *a, const char *msg, size_t len, const struct detect_context *ctx);
void detect_shutdown(void);
/* detect_spam_levels - the spam_levels bits a spam score reaches (bit i:
 * mime_spam_level_names[i]) */
unsigned detect_spam_levels(double score);

/* style_profile_load - a profile written by `moatctl style learn`; NULL with
 * err (bad magic/version/dimensions/checksum). Caller frees. */
struct style_profile *style_profile_load(const char *path, char *err, size_t errsz);
void style_profile_free(struct style_profile *p);
const char *style_profile_address(const struct style_profile *p); /* lower-case */

#endif
