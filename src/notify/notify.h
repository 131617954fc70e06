/*
 * notify.h - messages Moat generates itself: delivery status notifications
 * (RFC 3464 multipart/report) for bounced and expired mail (notify_dsn.c),
 * and notifications made from templates (notify_template.c: "Virus
 * detection", "Attachment deleted", ... in Japanese and English).
 * Pure functions build the message text; the queue injects it
 * (queue_mgr_inject in moatd, queue_ctl_inject from moatctl).
 */
#ifndef MOAT_NOTIFY_H
#define MOAT_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "queue/queue.h"

struct dsn_recipient {
    const char *addr;          /* the final recipient */
    const char *orcpt;         /* original recipient as received (ORCPT) or NULL */
    bool failed;               /* true: action=failed (5.x.x); false: delayed (4.x.x) */
    const char *status;        /* enhanced status, e.g. "5.1.1"; NULL derives 5.0.0 / 4.0.0 */
    const char *remote_mta;    /* host that answered, or NULL */
    const char *diagnostic;    /* "smtp; 550 5.1.1 No such user" or a local reason */
    double last_attempt;
};

struct dsn_info {
    const char *reporting_mta; /* our hostname */
    const char *qid;           /* the original message's queue ID */
    const char *envid;         /* ENVID or NULL */
    const char *sender;        /* original envelope sender = the DSN's recipient */
    double arrival;
    const struct dsn_recipient *rcpts;
    size_t nrcpts;
    /* the original message (headers only are returned: RET=HDRS behaviour by
     * default, to bound size); bytes, CRLF line ends */
    const char *original;
    size_t original_len;
};

/* notify_dsn_build - append a complete RFC 5322 message (headers with CRLF,
 * From: MAILER-DAEMON@reporting_mta, Auto-Submitted: auto-replied, a
 * human-readable part in English and Japanese, message/delivery-status, and
 * text/rfc822-headers of the original) to out. Returns 0 or -1 (out too small). */
int notify_dsn_build(const struct dsn_info *info, struct buf *out);

/* ---------------------------------------------------------------- templates */
/* Variables: %NAME% in a template's subject and body; "%%" is a percent
 * sign; an unknown %WORD% is left as it is. */
enum notify_var {
    NOTIFY_VAR_SENDER = 0,   /* the original envelope sender */
    NOTIFY_VAR_RECIPIENTS,   /* its recipients, ", "-separated */
    NOTIFY_VAR_SUBJECT,      /* its subject (decoded, UTF-8) */
    NOTIFY_VAR_RULE,         /* the rule that sent the notification */
    NOTIFY_VAR_DETECTIONS,   /* detection names, e.g. "Eicar-Test-Signature" */
    NOTIFY_VAR_DATE,         /* when the message arrived */
    NOTIFY_VAR_QID,          /* its queue ID */
    NOTIFY_VAR_TENANT,       /* the tenant's company name */
    NOTIFY_VAR_QUARANTINE_ID,
    NOTIFY_VAR_ATTACHMENTS,  /* names of deleted attachments */
    NOTIFY_VAR_SIZE,         /* message size */
    NOTIFY_VAR_SIZE_LIMIT,
    NOTIFY_VAR_REASON,       /* why, in words */
    NOTIFY_VAR_DOMAIN,       /* domain mails: the domain name */
    NOTIFY_VAR_MX_HOST,      /* the tenant's MX host <company-id>.<service_domain> */
    NOTIFY_VAR_TXT_RECORD,   /* moat-verification=<token> */
    NOTIFY_VAR_COMPANY_ID,
    NOTIFY_VAR_LINK,         /* onboarding mails: the one-time link */
    NOTIFY_VAR_EXPIRES,      /* when that link stops working */
    NOTIFY_VAR_EMAIL,        /* the address the mail is about */
    NOTIFY_VAR_USER_NAME,    /* end-user mails: the account's display name (or its address) */
    NOTIFY_VAR_CODE,         /* the password-set code */
    NOTIFY_VAR_EUC_URL,      /* the End User Console: <console_url>/euc/ */
    NOTIFY_NVARS
};
#define NOTIFY_VALUE_MAX 4096          /* one variable's value, bytes (cut at a character) */
#define NOTIFY_TEMPLATE_MAX (64 * 1024) /* a template file or text */
#define NOTIFY_SUBJECT_MAX 600         /* the rendered subject, bytes before encoding */
#define NOTIFY_RCPTS_MAX 100           /* recipients of one notification */

/* notify_var_find - index of a variable name ("sender" / "SENDER"), or -1 */
int notify_var_find(const char *name);
/* notify_var_name - "SENDER", ... */
const char *notify_var_name(enum notify_var v);

struct notify_vars {
    const char *v[NOTIFY_NVARS]; /* NULL = empty */
};

struct notify_template {
    char *name;    /* display name, e.g. "Virus detection" */
    char *lang;    /* "ja" / "en" */
    char *subject; /* with variables */
    char *body;    /* UTF-8, LF or CRLF line ends */
};
void notify_template_free(struct notify_template *t);

/* the shipped default templates: display name and file stem
 * (data/templates/<stem>.<lang>.txt); ended by a NULL name */
struct notify_default {
    const char *name, *stem;
};
extern const struct notify_default notify_defaults[];

/* notify_template_dir - $MOAT_TEMPLATE_DIR, else MOAT_DATADIR/templates */
const char *notify_template_dir(void);

/* notify_template_load - the template called name (display name or file
 * stem, case-insensitive) in lang ("ja" or "en"): first from the tenant's
 * own list (tenant, ntenant; the tenant document's "notification_templates"
 * may provide it), else the shipped file in dir (NULL: notify_template_dir).
 * *out gets owned copies. 0, or -1 with err (unknown template or language,
 * unreadable or malformed file). */
int notify_template_load(const char *name, const char *lang, const struct notify_template *tenant, size_t ntenant,
                         const char *dir, struct notify_template *out, char *err, size_t errsz);
/* notify_templates_from_json - the tenant document's
 * "notification_templates" ([{name, lang, subject, body}], borrowed) as an
 * owned array for notify_template_load; returns the count. Free with
 * notify_templates_free. (A tenant template found only in the other
 * language than asked is used rather than none.) */
struct json_t;
size_t notify_templates_from_json(const struct json_t *arr, struct notify_template **out);
void notify_templates_free(struct notify_template *t, size_t n);

/* notify_template_parse - "Subject: ...\n\nbody" (leading '#' lines are
 * comments) into out; 0 or -1 with err */
int notify_template_parse(const char *text, size_t len, struct notify_template *out, char *err, size_t errsz);

struct notify_message {
    const struct notify_template *tpl;
    const struct notify_vars *vars;
    const char *hostname;         /* service hostname: From domain, Message-ID */
    const char *tenant_name;      /* From display name (may be NULL) */
    const char *const *to;        /* recipient addresses */
    size_t nto;                   /* 1..NOTIFY_RCPTS_MAX */
    const char *qid;              /* the notification's own queue ID */
    const char *original;         /* original message (its header block is attached), or NULL */
    size_t original_len;
    double date;                  /* 0 = now */
};

/* notify_render_text - the template's subject (one line, controls removed,
 * cut to subjectsz - 1 at a character) and body (appended, UTF-8, LF line
 * ends) with the variables replaced: what a preview shows. 0 or -1. */
int notify_render_text(const struct notify_template *tpl, const struct notify_vars *vars, char *subject,
                       size_t subjectsz, struct buf *body);

/* notify_render - append the complete message (CRLF): Received, From
 * "<tenant> <postmaster@hostname>", To, Subject (RFC 2047 when not ASCII),
 * Date, Message-ID, Auto-Submitted: auto-generated, X-Moat-Notification,
 * MIME UTF-8 text (base64), and with an original a multipart/mixed with its
 * headers as text/rfc822-headers. Variable values have controls removed
 * (no header injection) and invalid UTF-8 replaced. 0 or -1. */
int notify_render(const struct notify_message *m, struct buf *out);

/* notify_prepare - a new queue ID, notify_render into out, and env filled
 * for queuing (owned: queue_envelope_free): the null sender, the
 * recipients, is_dsn (never bounced: no DSN loop), scan summary "generated
 * notification". Notifications are queued directly, never through SMTP and
 * the scan, so no rule can match them and notify about them again. */
int notify_prepare(const struct notify_message *m, struct buf *out, struct queue_envelope *env);

/* ---------------------------------------------------------------- domain mails (notify_domain.c) */
enum notify_domain_kind {
    NOTIFY_DOMAIN_ACTIVATED = 0, /* ownership verified: records to set, next steps */
    NOTIFY_DOMAIN_RECORD_MISSING, /* a verified domain's record disappeared */
    NOTIFY_ADMIN_SETUP,           /* the first administrator's login mail: set a password */
    NOTIFY_EMAIL_CONFIRM,         /* the wizard's e-mail confirmation link */
};
struct notify_domain_info {
    enum notify_domain_kind kind;
    const char *company_id, *tenant_name, *domain, *mx_host, *token;
    const char *to;       /* the tenant's address */
    const char *hostname; /* service hostname (From, Message-ID) */
    const char *reason;   /* what the check found (record missing) */
    const char *link;     /* onboarding mails: the one-time link */
    const char *expires;  /* and when it expires */
    const char *email;    /* the account's address */
};
/* notify_domain_prepare - the bilingual (Japanese, then English) mail of
 * templates data/templates/domain-activated / domain-record-missing
 * .{ja,en}.txt, rendered and with its envelope (as notify_prepare). 0, or
 * -1 with err. */
int notify_domain_prepare(const struct notify_domain_info *info, struct buf *out, struct queue_envelope *env,
                          char *err, size_t errsz);

/* notify_bilingual_prepare - one mail in both languages (Japanese, then
 * English) from data/templates/<stem>.{ja,en}.txt with vars, to one address,
 * rendered with its envelope (as notify_prepare). 0, or -1 with err. */
int notify_bilingual_prepare(const char *stem, const struct notify_vars *vars, const char *to, const char *hostname,
                             struct buf *out, struct queue_envelope *env, char *err, size_t errsz);

/* ---------------------------------------------------------------- end-user mails (notify_enduser.c) */
struct notify_enduser_info {
    const char *company_id, *tenant_name;
    const char *to, *name;    /* the account's address and display name (may be "") */
    const char *code;         /* the password-set code */
    double expires;           /* when it stops working */
    const char *hostname;     /* service hostname (From, Message-ID) */
    const char *console_url;  /* the console's address (onboard_console_url); the End User
                               * Console is its /euc/; NULL: https://<hostname> */
};
/* notify_enduser_prepare - the "set your password" mail of a new End User
 * Console account (data/templates/enduser-password.{ja,en}.txt) with the
 * verification code. 0, or -1 with err. */
int notify_enduser_prepare(const struct notify_enduser_info *info, struct buf *out, struct queue_envelope *env,
                           char *err, size_t errsz);
/* inject - queue a generated message durably (queue_mgr_inject in moatd,
 * queue_ctl_inject in moatctl); 0 or -1 */
typedef int (*notify_inject_fn)(const char *data, size_t len, struct queue_envelope *env, void *arg);
struct store;
struct store_enduser;
/* notify_enduser_send - the account's password-set mail: when the tenant's
 * End User Console is on with local accounts and the account is enabled, a
 * fresh code (store_enduser_code_new, 30 minutes) mailed through inject
 * (NULL: none available); console_url as in notify_enduser_info. 0 queued;
 * 1 not sent by the rules, -1 failed:
 * the reason in why. */
int notify_enduser_send(struct store *st, const struct moat_config *cfg, const char *console_url,
                        const struct store_enduser *u, notify_inject_fn inject, void *arg, char *why, size_t whysz);

/* notify_is_generated - the header block of msg marks it as automatic
 * (X-Moat-Notification, or Auto-Submitted other than "no", RFC 3834): the
 * policy must send no notification about it (loop guard for generated mail
 * that comes back in through SMTP). */
bool notify_is_generated(const char *msg, size_t len);

#endif
