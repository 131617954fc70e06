/*
 * notify_domain.c - the mails about a tenant's domain and its
 * administrators (PRODUCT.md §1): "domain activated" when its ownership is
 * verified (the MX and TXT records to set and the next steps), "record
 * missing" when a verified domain's verification record disappears (mail
 * keeps flowing; the administrator is alerted once), and the onboarding
 * mails: the first administrator's login mail with the one-time link that
 * sets the password (admin-setup) and the wizard's e-mail confirmation link
 * (email-confirm).
 *
 *   notify_bilingual_prepare   one template pair rendered as one mail, and its envelope
 *   notify_domain_prepare      the domain and onboarding mails
 *   notify_utc_date            "2026-01-01 09:00:00 UTC"
 *
 * notify_enduser.c uses the same bilingual form for the End User Console's
 * password-set mail.
 *
 * Templates: data/templates/domain-activated.{ja,en}.txt,
 * domain-record-missing, admin-setup and email-confirm (same format as the rule
 * notifications). One mail carries both languages, Japanese first, so the
 * tenant needs no language setting. Rendering and the envelope are
 * notify_prepare's (null sender, never bounced, loop guard headers).
 */
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "notify/notify.h"
#include "notify/notify_int.h"

/* load_file - a template file of dir by stem and language */
static int load_file(const char *stem, const char *lang, struct notify_template *t, char *err, size_t errsz)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.%s.txt", notify_template_dir(), stem, lang);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0 || sb.st_size > NOTIFY_TEMPLATE_MAX) {
        snprintf(err, errsz, "%s: %s", path, fd < 0 ? strerror(errno) : "unreadable or too large");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char *text = xmalloc((size_t)sb.st_size + 1);
    ssize_t n = read(fd, text, (size_t)sb.st_size);
    close(fd);
    int rc = -1;
    if (n == (ssize_t)sb.st_size)
        rc = notify_template_parse(text, (size_t)n, t, err, errsz);
    else
        snprintf(err, errsz, "%s: short read", path);
    free(text);
    return rc;
}

int notify_bilingual_prepare(const char *stem, const struct notify_vars *vars, const char *to, const char *hostname,
                             struct buf *out, struct queue_envelope *env, char *err, size_t errsz)
{
    struct notify_template ja, en;
    memset(&ja, 0, sizeof ja);
    memset(&en, 0, sizeof en);
    memset(env, 0, sizeof *env);
    if (load_file(stem, "ja", &ja, err, errsz) < 0 || load_file(stem, "en", &en, err, errsz) < 0) {
        notify_template_free(&ja);
        notify_template_free(&en);
        return -1;
    }
    struct notify_template both = {.name = (char *)stem, .lang = (char *)"ja"};
    size_t sl = strlen(ja.subject) + strlen(en.subject) + 4;
    both.subject = xmalloc(sl);
    snprintf(both.subject, sl, "%s / %s", ja.subject, en.subject);
    static const char sep[] = "\n\n------------------------------------------------------------------------\n"
                              "(English follows)\n\n";
    size_t bl = strlen(ja.body) + strlen(en.body) + sizeof sep;
    both.body = xmalloc(bl);
    snprintf(both.body, bl, "%s%s%s", ja.body, sep, en.body);
    const char *rcpt[1] = {to};
    struct notify_message m = {.tpl = &both, .vars = vars, .hostname = hostname, .to = rcpt, .nto = 1};
    int rc = notify_prepare(&m, out, env);
    if (rc < 0)
        snprintf(err, errsz, "cannot render the %s mail to %s", stem, to ? to : "(none)");
    free(both.subject);
    free(both.body);
    notify_template_free(&ja);
    notify_template_free(&en);
    return rc;
}

void notify_utc_date(double t, char *out, size_t outsz)
{
    time_t secs = (time_t)t;
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(out, outsz, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

int notify_domain_prepare(const struct notify_domain_info *info, struct buf *out, struct queue_envelope *env,
                          char *err, size_t errsz)
{
    static const char *const stems[] = {"domain-activated", "domain-record-missing", "admin-setup",
                                        "email-confirm"};
    const char *stem = (unsigned)info->kind < sizeof stems / sizeof stems[0] ? stems[info->kind] : stems[0];
    char txt[128], date[64];
    snprintf(txt, sizeof txt, "%s%s", "moat-verification=", info->token ? info->token : "");
    notify_utc_date(core_now(), date, sizeof date);
    struct notify_vars vars;
    memset(&vars, 0, sizeof vars);
    vars.v[NOTIFY_VAR_DOMAIN] = info->domain;
    vars.v[NOTIFY_VAR_MX_HOST] = info->mx_host;
    vars.v[NOTIFY_VAR_TXT_RECORD] = txt;
    vars.v[NOTIFY_VAR_COMPANY_ID] = info->company_id;
    vars.v[NOTIFY_VAR_TENANT] = info->tenant_name && info->tenant_name[0] ? info->tenant_name : info->company_id;
    vars.v[NOTIFY_VAR_DATE] = date;
    vars.v[NOTIFY_VAR_REASON] = info->reason;
    vars.v[NOTIFY_VAR_LINK] = info->link;
    vars.v[NOTIFY_VAR_EXPIRES] = info->expires;
    vars.v[NOTIFY_VAR_EMAIL] = info->email;
    return notify_bilingual_prepare(stem, &vars, info->to, info->hostname, out, env, err, errsz);
}
