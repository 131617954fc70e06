/*
 * store.h - the one interface to persistent data other than the spool:
 * tenants, domains, policies and lists (the tenant document), message
 * tracking, schema migrations. SQLite (WAL) in data_dir/moat.db is the
 * embedded backend; every function here is backend-neutral so a PostgreSQL
 * backend can follow.
 *
 * Threading: a struct store is one connection, used by one thread at a time.
 * struct domain_map is an immutable, reference-counted snapshot that any
 * thread may read. struct tracker owns a background thread that writes
 * tracking records in batches; its functions are thread-safe and never block
 * on the database.
 *
 * Tenant isolation: every tracking query takes an optional company_id; NULL
 * means operator scope (all tenants), used only by moatctl run by the operator.
 */
#ifndef MOAT_STORE_H
#define MOAT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

struct store;

/* store_open - open (creating if needed) the database named by cfg->database
 * (sqlite: data_dir/moat.db) and apply pending numbered migrations.
 * Returns 0, or -1 with a reason in err. */
int store_open(const struct moat_config *cfg, struct store **out, char *err, size_t errsz);
void store_close(struct store *st);

/* ---------------------------------------------------------------- tenant document */
/* Result codes of import: 0 applied; 1 validation error (err holds the JSON
 * path and reason, e.g. "tenants[0].domains[1].inbound_servers[0].port: must be 1..65535",
 * nothing applied); 2 internal error. Idempotent. trust_domains allows
 * "verified": true (recorded in the audit log); without it, a domain's
 * verified flag is kept as stored (false for new domains). */
int store_import_json(struct store *st, const char *json, size_t len, bool trust_domains, char *err,
                      size_t errsz);
/* store_import_json_report - the same, also reporting what happened (res may be NULL) */
struct store_import_result {
    size_t tenants;          /* tenants in the document */
    size_t changed;          /* tenants created or replaced (0: nothing changed) */
    int64_t config_version;  /* after the import */
};
int store_import_json_report(struct store *st, const char *json, size_t len, bool trust_domains,
                             struct store_import_result *res, char *err, size_t errsz);
/* store_export_json - the document for one tenant (company_id) or all (NULL);
 * NULL with err set if the tenant does not exist. Caller frees. */
char *store_export_json(struct store *st, const char *company_id, char *err, size_t errsz);
/* store_config_version - increases on every change of tenant data; cheap */
int64_t store_config_version(struct store *st);
/* store_domain_set_verified - set a tenant's domain verified flag (the DNS
 * check); 0 done, 1 no such domain for that tenant, -1 error */
int store_domain_set_verified(struct store *st, const char *company_id, const char *domain, bool verified);

/* ---------------------------------------------------------------- tenants and domain verification (store_verify.c) */
/* store_tenant_create - a new tenant (company_id checked: 3-63 letters,
 * digits, hyphens; unique case-insensitively) with Moat's default rules
 * (inactive until a domain of the tenant is verified; docs/policy.md).
 * 0 created; 1 user error in err ("company ID acme is already taken", or
 * the syntax reason); -1 database error. */
int store_tenant_create(struct store *st, const char *company_id, const char *name, const char *admin_email,
                        char *err, size_t errsz);
/* store_domain_add - add domain to the tenant (needs configuration until
 * verified) with one inbound server host[:port] (preference 10). 0; 1 user
 * error in err (no such tenant, bad name, already the tenant's, verified by
 * another tenant); -1 database error. */
int store_domain_add(struct store *st, const char *company_id, const char *domain, const char *server,
                     char *err, size_t errsz);
struct json_t;
/* store_domain_add_settings - store_domain_add with settings (NULL: none):
 * an object whose "inbound_servers" (replacing server) and "outbound" are
 * the tenant document's (docs/store.md), validated the same way; a bad one
 * is a user error naming the field ("inbound_servers[1].port: …") */
int store_domain_add_settings(struct store *st, const char *company_id, const char *domain, const char *server,
                              const struct json_t *settings, char *err, size_t errsz);

/* One tenant's claim on a domain name, with its verification state. */
struct store_domain_claim {
    char company_id[64];
    char domain[256];
    char token[40];          /* moat-verification=<token> */
    char *tenant_name;       /* may be NULL */
    char *admin_email;       /* may be NULL */
    bool verified;
    double verified_at;      /* 0 = unknown */
    char *verified_via;      /* "txt", "mx", "import", or NULL */
    double check_next;       /* when the periodic check runs next (0 = now) */
    double check_last;       /* 0 = never */
    unsigned check_failures; /* consecutive checks without success */
    char *check_result;      /* reason of the last check, or NULL */
    bool record_missing;     /* verified, but the last check found no record (alerted) */
};
void store_domain_claims_free(struct store_domain_claim *c, size_t n);
/* store_domain_claims - the claims on domain (every tenant's, or only
 * company_id's when not NULL), verified first. 0 (*n may be 0) or -1. */
int store_domain_claims(struct store *st, const char *domain, const char *company_id,
                        struct store_domain_claim **out, size_t *n);
/* store_domain_due - claims whose periodic check is due (check_next <= now):
 * pending ones and those verified through DNS (not the operator's
 * import --trust-domains), oldest first, at most limit. 0 or -1. */
int store_domain_due(struct store *st, double now, size_t limit, struct store_domain_claim **out, size_t *n);

/* store_domain_check_soon - make the claim due now: moatd's checker runs it
 * within a second (the console's asynchronous "Verify"). 0, 1 no such
 * claim, -1 error. */
int store_domain_check_soon(struct store *st, const char *company_id, const char *domain);

enum store_check { STORE_CHECK_OK = 0, STORE_CHECK_FAIL, STORE_CHECK_TEMP };
enum store_check_change {
    STORE_CHANGE_NONE = 0,
    STORE_CHANGE_VERIFIED,        /* the claim became verified now */
    STORE_CHANGE_TAKEN,           /* proof found, but another tenant verified the name first */
    STORE_CHANGE_RECORD_MISSING,  /* verified domain, record gone (first time: alert) */
    STORE_CHANGE_RECORD_RESTORED, /* the record is back */
};
/* store_domain_check_done - record the outcome of a DNS check of the
 * tenant's claim (method "txt"/"mx" when OK, reason for humans, next check
 * time). In one transaction: the state columns; on a new verification the
 * verified flag, the audit log (actor), the tenant's default rules
 * activated when it is the tenant's first verified domain (*first), and
 * config_version + 1. A verified domain is never unverified by a check.
 * 0 (with *change), 1 no such claim, -1 database error. */
int store_domain_check_done(struct store *st, const char *company_id, const char *domain, enum store_check outcome,
                            const char *method, const char *reason, double next, const char *actor,
                            enum store_check_change *change, bool *first);

/* ---------------------------------------------------------------- domains (routing) */
enum domain_tls { DOMAIN_TLS_OPPORTUNISTIC = 0, DOMAIN_TLS_REQUIRED, DOMAIN_TLS_NONE };

struct domain_server {
    char host[256];
    uint16_t port;
    uint32_t preference;
};

struct domain_entry {
    char *name;          /* lower-case ASCII (IDNs as punycode) */
    char *company_id;
    bool verified;
    enum domain_tls tls;
    struct domain_server *servers;
    size_t nservers;
    char **recipients;   /* sorted lower-case addresses; NULL = no recipient list */
    size_t nrecipients;
    bool outbound_enabled;
    char **sending_servers; /* CIDRs / IPs allowed to relay out (providers expanded) */
    size_t nsending_servers;
    char *verification_token; /* value of the moat-verification= TXT record */
};

struct domain_map;

/* store_domain_map_load - snapshot of every domain (refcount 1), or NULL */
struct domain_map *store_domain_map_load(struct store *st);
void domain_map_ref(struct domain_map *m);
void domain_map_unref(struct domain_map *m);
/* domain_map_find - case-insensitive exact match (a trailing dot is NOT
 * stripped), or NULL. Borrowed while the caller holds a reference. When
 * several tenants have added the same name, the verified claim is returned. */
const struct domain_entry *domain_map_find(const struct domain_map *m, const char *domain);
/* domain_entry_has_recipient - true when the domain has no recipient list or
 * addr (case-insensitive) is on it */
bool domain_entry_has_recipient(const struct domain_entry *d, const char *addr);
/* domain_entry_sends_from - outbound protection: d is verified, has outbound
 * enabled, and ip (text) is one of its sending servers (IPs/CIDRs, provider
 * names expanded from data/lists/sending-providers.txt at load) */
bool domain_entry_sends_from(const struct domain_entry *d, const char *ip);

/* ---------------------------------------------------------------- writing style */
#define STORE_STYLE_MAX (64 * 1024)   /* bytes per profile */
#define STORE_STYLE_PER_TENANT 5000   /* as many as high-profile users */
/* store_style_put - save or replace the profile of address (lower-case) in
 * the tenant; config_version + 1. 0, or -1 with err (no such tenant, too
 * many, too big, database error). */
int store_style_put(struct store *st, const char *company_id, const char *address, const unsigned char *blob,
                    size_t len, char *err, size_t errsz);
typedef void (*store_style_fn)(const char *address, const unsigned char *blob, size_t len, void *arg);
/* store_style_each - fn for every profile of the tenant (borrowed during the
 * call), in address order; -1 on a database error */
int store_style_each(struct store *st, const char *company_id, store_style_fn fn, void *arg);

/* ---------------------------------------------------------------- tracking */
/* One accepted or refused SMTP transaction. Strings may be NULL. */
struct track_message {
    const char *qid;
    double time;
    const char *direction;   /* "inbound" / "outbound" */
    const char *client_ip;
    const char *helo;
    const char *tls;         /* e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384", NULL = none */
    const char *sender;      /* "" for the null sender */
    uint64_t size;
    const char *message_id;
    const char *subject;
    const char *header_from;
    const char *action;      /* "accepted", "rejected", "deferred" (tempfail) */
    const char *reason;      /* for rejections: the reply or "Exceeded limit – message count (by IP address)" */
    const char *scan;        /* the verdict summary (X-Moat-Scan), or NULL */
    const char *detections;  /* JSON array of {category, name, score, evidence, type?}, or NULL */
    const char *const *rcpts;
    const char *const *rcpt_company; /* tenant company_id per recipient (NULL entries ok) */
    size_t nrcpts;
};

/* Per-recipient state changes after acceptance. */
struct track_recipient {
    const char *qid;
    double time;
    const char *rcpt;
    const char *status;      /* queued, delivered, deferred, bounced, expired, deleted */
    const char *server;      /* "host:port [ip]" the attempt went to, or NULL */
    const char *tls;         /* negotiated TLS of the attempt, NULL = none */
    const char *reply;       /* the server's reply or the local reason */
};

struct tracker;
/* tracker_start - background writer with its own connection; NULL on error */
struct tracker *tracker_start(const struct moat_config *cfg, char *err, size_t errsz);
/* tracker_message / tracker_recipient - copy the record into the write queue
 * (bounded: when more than 100000 records wait, new ones are dropped and
 * counted, and a warning is logged - mail flow never waits for tracking) */
void tracker_message(struct tracker *t, const struct track_message *m);
void tracker_recipient(struct tracker *t, const struct track_recipient *r);
/* tracker_event - one more timeline line for a message (policy results,
 * quarantine, release ...); rcpt NULL = the whole message */
struct track_event {
    const char *qid;
    double time;
    const char *rcpt;
    const char *event;       /* short word: "policy", "quarantined", "released" ... */
    const char *detail;      /* human text, e.g. "quarantined (Spam policy)" */
};
void tracker_event(struct tracker *t, const struct track_event *e);
/* tracker_dropped - records dropped so far because the queue was full */
uint64_t tracker_dropped(struct tracker *t);
/* tracker_flush - wait until everything queued so far is written */
void tracker_flush(struct tracker *t);
/* tracker_stop - flush and stop the thread, free t */
void tracker_stop(struct tracker *t);

/* Search. Every filter is optional (NULL / 0). rcpt and sender match
 * case-insensitively, with '*' as a wildcard. action matches the message
 * action or a recipient status. Results newest first, at most limit rows. */
struct track_query {
    const char *company_id;  /* tenant scope; NULL = all (operator) */
    double since, until;
    const char *rcpt;
    const char *sender;
    const char *action;
    const char *subject;     /* substring, case-insensitive */
    const char *qid;
    const char *direction;   /* "inbound" / "outbound"; NULL = both */
    const char *header_from; /* substring of the header From, case-insensitive */
    const char *client_ip;   /* the sending client's address, exactly */
    size_t limit;            /* 0 = 1000 */
};

struct track_row {
    char qid[32];
    double time;
    char *sender, *rcpt, *action, *status, *subject, *client_ip, *server, *reply, *tls, *message_id;
    char *reason;
    char *delivery_tls;      /* TLS of the last delivery attempt to rcpt */
    uint64_t size;
};

/* store_tracking_search - rows into *out (caller frees with
 * store_tracking_rows_free); returns the count or -1 */
long store_tracking_search(struct store *st, const struct track_query *q, struct track_row **out);
void store_tracking_rows_free(struct track_row *rows, long n);
/* store_tracking_timeline - JSON array of every event of one message, in
 * time order (caller frees), or NULL when it does not exist in that scope.
 * Each event: {"time": ISO 8601 UTC, "ts": epoch, "event", "rcpt"?, ...};
 * message-level events (no "rcpt") also carry "qid" and the "recipients"
 * visible in that scope. */
char *store_tracking_timeline(struct store *st, const char *company_id, const char *qid);
/* store_tracking_purge - delete tracking older than before; count or -1 */
long store_tracking_purge(struct store *st, double before);

/* store_tracking_stats - the dashboard figures of a period as a JSON object
 * (caller frees), or NULL on error: totals, recipients by status, threats by
 * detection category, top senders / recipients / targeted recipients, and
 * a series of about 24 buckets (store_stats.c). Scope as in search; domain
 * (optional) keeps recipients of that domain only. */
struct track_stats_query {
    const char *company_id; /* NULL = every tenant */
    const char *domain;     /* recipient domain, or NULL */
    double since, until;
};
char *store_tracking_stats(struct store *st, const struct track_stats_query *q);

/* ---------------------------------------------------------------- quarantine index */
/* One quarantined copy: a message for one tenant and one recipient. The
 * bytes live in a file of quarantine/ (src/quarantine); this is its index
 * row. Strings are owned by the row (store_quarantine_item_free). */
#define STORE_QUARANTINE_ID_LEN 32 /* lower-case hex, 128 random bits */
struct store_quarantine_item {
    char id[STORE_QUARANTINE_ID_LEN + 1];
    char *company_id;
    char qid[CORE_QID_LEN + 1];    /* the original message's queue ID */
    double time;                   /* when it was quarantined */
    char *rcpt;                    /* the recipient this copy is for */
    char *sender;                  /* envelope sender ("" = null sender) */
    char *header_from, *subject;   /* may be NULL */
    uint64_t size;                 /* message bytes (uncompressed) */
    uint64_t stored_size;          /* bytes of the compressed file */
    char sha256[65];               /* of the message bytes, hex */
    char *rule;                    /* the rule that quarantined, e.g. "Spam or Phish" */
    unsigned rule_order;           /* its execution order (0: a sender list) */
    char *reason;                  /* "Spam or Phish: spam (0.98)" */
    char *detections;              /* JSON array (tracking's format), may be NULL */
    char *scan;                    /* the verdict summary (X-Moat-Scan), may be NULL */
    char *direction;               /* "inbound" / "outbound" */
    /* the envelope needed for release */
    char *orcpt, *envid, *client_ip, *helo; /* may be NULL */
    bool smtputf8, eightbit;
    /* release state */
    double released;               /* 0: not released */
    char released_qid[CORE_QID_LEN + 1];
    bool release_done;             /* the released copy is in the queue */
};
void store_quarantine_item_free(struct store_quarantine_item *it);

/* store_quarantine_insert - add the row (id, company_id, qid, rcpt, sender,
 * sha256 required); 0 or -1 */
int store_quarantine_insert(struct store *st, const struct store_quarantine_item *it);
/* store_quarantine_get - the row with id in the tenant's scope (company_id
 * NULL = operator, every tenant). 0 found, 1 not found (also: another
 * tenant's), -1 error. */
int store_quarantine_get(struct store *st, const char *company_id, const char *id,
                         struct store_quarantine_item *out);

struct store_quarantine_query {
    const char *company_id; /* NULL = every tenant (operator) */
    const char *rcpt;       /* exact, case-insensitive; NULL = all */
    double since, until;    /* 0 = open */
    size_t limit;           /* 0 = 1000 */
};
/* store_quarantine_list - newest first into *out (caller frees with
 * store_quarantine_items_free); the count or -1 */
long store_quarantine_list(struct store *st, const struct store_quarantine_query *q,
                           struct store_quarantine_item **out);
void store_quarantine_items_free(struct store_quarantine_item *items, long n);

/* store_quarantine_claim - start a release: marks the row released (time
 * now, new_qid) unless it already is. A claim whose copy never reached the
 * queue (release_done still 0, e.g. after a crash) may be taken again after
 * STORE_QUARANTINE_CLAIM_STALE seconds. 0 claimed, 1 not found, 2 already
 * released, -1 error. */
#define STORE_QUARANTINE_CLAIM_STALE 300
int store_quarantine_claim(struct store *st, const char *company_id, const char *id, const char *new_qid,
                           double now);
/* store_quarantine_release_done - the claimed copy is durable in the queue
 * (done = true), or the claim is undone (done = false); 0 or -1 */
int store_quarantine_release_done(struct store *st, const char *id, bool done);
/* store_quarantine_delete - remove the row in the tenant's scope; 0 deleted,
 * 1 not found, -1 error */
int store_quarantine_delete(struct store *st, const char *company_id, const char *id);
/* store_quarantine_expired - ids of rows quarantined before `before`
 * (oldest first, at most max) into ids[][STORE_QUARANTINE_ID_LEN + 1];
 * the count or -1 */
long store_quarantine_expired(struct store *st, double before, char (*ids)[STORE_QUARANTINE_ID_LEN + 1],
                              size_t max);
/* store_quarantine_exists - 1 a row with id exists, 0 not, -1 error */
int store_quarantine_exists(struct store *st, const char *id);

/* per-tenant totals (the dashboard) */
struct store_quarantine_stats {
    char company_id[64];
    uint64_t count, released;   /* rows, of which released */
    uint64_t bytes, stored_bytes; /* message bytes, compressed file bytes */
};
/* store_quarantine_stats - one entry per tenant with quarantined mail
 * (company_id NULL = all tenants) into *out (caller frees); count or -1 */
long store_quarantine_stats(struct store *st, const char *company_id, struct store_quarantine_stats **out);

/* ---------------------------------------------------------------- accounts (store_accounts.c) */
/* Console / REST API accounts: operators (company_id "", every tenant) and
 * tenant administrators, with a role. The store keeps only hashes of
 * secrets: argon2id password strings (made by the caller), SHA-256 of
 * session IDs, API tokens and recovery codes. scope: a company_id limits
 * every lookup to that tenant (another tenant's object is "not found");
 * NULL = operator scope. */
#define STORE_EMAIL_MAX 254
#define STORE_COMPANY_MAX 63
#define STORE_PWHASH_MAX 127
#define STORE_HASH_HEX 64 /* SHA-256, lower-case hex */
struct store_account {
    int64_t id;
    char email[STORE_EMAIL_MAX + 1];        /* lower-cased */
    char company_id[STORE_COMPANY_MAX + 1]; /* "" = operator */
    bool full;                              /* role "full" (else "read-only") */
    bool disabled;
    char pwhash[STORE_PWHASH_MAX + 1];      /* crypto_pwhash_str */
    char totp_secret[64];                   /* base32; "" = none; set but !totp_enabled = enrolment pending */
    bool totp_enabled;
    int64_t totp_last_step;                 /* last TOTP time step accepted (replay guard) */
    unsigned failures;                      /* consecutive failed logins */
    double locked_until, last_login, created;
};
/* store_account_add - a new account (a->id set); 0, 1 user error in err
 * (address taken, no such tenant), -1 internal */
int store_account_add(struct store *st, struct store_account *a, char *err, size_t errsz);
/* store_account_get / _find - by id in scope / by e-mail (any tenant, for
 * login): 0 found, 1 not found, -1 error */
int store_account_get(struct store *st, const char *scope, int64_t id, struct store_account *out);
int store_account_find(struct store *st, const char *email, struct store_account *out);
/* store_account_list - every account in scope, by e-mail (caller frees *out); count or -1 */
long store_account_list(struct store *st, const char *scope, struct store_account **out);
/* store_account_update - write role, disabled, pwhash and the TOTP fields of a->id; 0 or -1 */
int store_account_update(struct store *st, const struct store_account *a);
/* store_account_delete - 0 deleted (sessions and recovery codes with it), 1 not found, -1 */
int store_account_delete(struct store *st, const char *scope, int64_t id);
/* store_account_login_failed - count a failure; at max_failures the account
 * is locked until now + lockout (failures restart). 1 now locked, 0, -1 */
int store_account_login_failed(struct store *st, int64_t id, double now, unsigned max_failures, double lockout);
/* store_account_login_ok - failures reset, last_login = now; 0 or -1 */
int store_account_login_ok(struct store *st, int64_t id, double now);
/* store_account_totp_step - accept TOTP time step `step` only if later than
 * the last one accepted (a code is never accepted twice): 0 accepted, 1 replay, -1 */
int store_account_totp_step(struct store *st, int64_t id, int64_t step);
/* recovery codes: store_recovery_set replaces them (hashes: n x 64 hex);
 * store_recovery_use marks one used: 0 used now, 1 unknown or used before, -1;
 * store_recovery_left counts the unused ones (or -1) */
int store_recovery_set(struct store *st, int64_t id, const char (*hashes)[STORE_HASH_HEX + 1], size_t n);
int store_recovery_use(struct store *st, int64_t id, const char *hash, double now);
long store_recovery_left(struct store *st, int64_t id);

/* ---------------------------------------------------------------- onboarding (store_onboard.c) */
/* One-time tokens mailed to an account (hash = SHA-256 hex of the token):
 * purpose "setup" (the first-password link of the login mail) or "email"
 * (the wizard's confirmation link; email = the address it confirms). A new
 * token replaces the account's unused ones of the same purpose. 0 or -1. */
int store_onboard_token_new(struct store *st, int64_t account_id, const char *purpose, const char *email,
                            const char *hash, double now, double expires);
/* store_onboard_token_use - redeem: 0 (account_id, email set; the token is
 * used now), 1 unknown, used or expired, -1 */
int store_onboard_token_use(struct store *st, const char *purpose, const char *hash, double now, int64_t *account_id,
                            char *email, size_t emailsz);
/* store_onboard_token_last - when the account's latest token of purpose was
 * issued (0: never; tokens expired a month ago are forgotten); 0 or -1 */
int store_onboard_token_last(struct store *st, int64_t account_id, const char *purpose, double *created);
/* store_tenant_name - the tenant's company name (its company ID when it has
 * none): 0, 1 no such tenant, -1 */
int store_tenant_name(struct store *st, const char *company_id, char *name, size_t namesz);
#define STORE_NAME_MAX 100
struct store_profile {
    char last_name[STORE_NAME_MAX * 4 + 1], first_name[STORE_NAME_MAX * 4 + 1]; /* UTF-8 */
    double email_confirmed, wizard_done; /* 0 = not yet */
    int wizard_step;                     /* the wizard's current step, 0..STORE_WIZARD_STEPS - 1 */
    bool exists;                         /* the account has a profile: it came in through onboarding */
};
/* the provisioning wizard's steps: profile, company ID, domain, done */
#define STORE_WIZARD_STEPS 4
/* store_profile_get - the account's profile (all empty when it has none); 0 or -1 */
int store_profile_get(struct store *st, int64_t account_id, struct store_profile *p);
/* store_profile_set - names (both non-NULL to set), wizard_done (1 done
 * now, 0 not done, -1 unchanged) and wizard_step (0..STORE_WIZARD_STEPS - 1,
 * -1 unchanged); 0 or -1 */
int store_profile_set(struct store *st, int64_t account_id, const char *last_name, const char *first_name,
                      int wizard_done, int wizard_step, double now);
/* store_profile_confirm - email is confirmed: it becomes the account's
 * address; 0, 1 another account has that address, -1 */
int store_profile_confirm(struct store *st, int64_t account_id, const char *email, double now);

struct store_session {
    char id_hash[STORE_HASH_HEX + 1]; /* SHA-256 of the cookie value */
    int64_t account_id;
    char csrf[64];
    double created, last_seen;
};
int store_session_add(struct store *st, const struct store_session *s, const char *client_ip);
/* store_session_get - 0 found, 1 not, -1 */
int store_session_get(struct store *st, const char *id_hash, struct store_session *out);
int store_session_touch(struct store *st, const char *id_hash, double now);
int store_session_delete(struct store *st, const char *id_hash);
/* store_session_delete_account - every session of an account (password
 * change, disable, delete); except_hash (may be NULL) is kept */
int store_session_delete_account(struct store *st, int64_t account_id, const char *except_hash);
/* store_session_purge - sessions idle since idle_before or created before created_before; count or -1 */
long store_session_purge(struct store *st, double idle_before, double created_before);

struct store_token {
    int64_t id;
    char hash[STORE_HASH_HEX + 1];
    char name[65];
    char company_id[STORE_COMPANY_MAX + 1]; /* "" = operator */
    bool full, disabled;
    double created, last_used;
    char created_by[STORE_EMAIL_MAX + 16];
};
/* store_token_add - t->id set; 0, 1 user error in err (no such tenant), -1 */
int store_token_add(struct store *st, struct store_token *t, char *err, size_t errsz);
int store_token_find(struct store *st, const char *hash, struct store_token *out);
long store_token_list(struct store *st, const char *scope, struct store_token **out);
/* store_token_set_disabled / _delete - 0 done, 1 not found (in scope), -1 */
int store_token_set_disabled(struct store *st, const char *scope, int64_t id, bool disabled);
int store_token_delete(struct store *st, const char *scope, int64_t id);
int store_token_touch(struct store *st, int64_t id, double now);

/* store_tenant_exists - 1 yes, 0 no, -1 error */
int store_tenant_exists(struct store *st, const char *company_id);
/* store_tenant_list - company IDs (caller frees each and the array); count or -1 */
long store_tenant_list(struct store *st, char ***out);
/* tenant security settings: TOTP required for its administrators */
/* two-factor authentication required for the tenant's administrators (company_id "" or NULL:
 * for the operators) */
int store_tenant_totp_required(struct store *st, const char *company_id); /* 1, 0, -1 */
int store_tenant_set_totp_required(struct store *st, const char *company_id, bool required);

/* ---------------------------------------------------------------- end users (store_enduser.c) */
/* End User Console accounts of a tenant (PRODUCT.md §7): data, not
 * configuration (never in the tenant document). The address must be in one
 * of the tenant's verified domains. Passwords are argon2id strings made by
 * the caller (NULL until the user sets one); the password-set code is kept
 * as SHA-256 only, valid STORE_EUSER_CODE_TTL seconds, for
 * STORE_EUSER_CODE_TRIES wrong tries. scope: as for accounts (a
 * company_id, or NULL = every tenant). */
#define STORE_EUSER_MAX 100000          /* accounts per tenant */
#define STORE_EUSER_NAME_MAX 128        /* display name, bytes */
#define STORE_EUSER_CODE_TTL 1800.0     /* 30 minutes */
#define STORE_EUSER_CODE_TRIES 5
#define STORE_EUSER_CODE_LEN 11         /* "XXXXX-XXXXX" */
#define STORE_EUSER_IMPORT_MAX 10000    /* data rows of one CSV import */
#define STORE_EUSER_CSV_MAX (2 * 1024 * 1024) /* bytes of one CSV import */
#define STORE_EUSER_ERRORS_MAX 100      /* row errors reported by one import */
struct store_enduser {
    int64_t id;
    char company_id[STORE_COMPANY_MAX + 1];
    char email[STORE_EMAIL_MAX + 1];    /* lower-cased */
    char name[STORE_EUSER_NAME_MAX + 1];
    bool enabled;
    bool password_set;
    char pwhash[STORE_PWHASH_MAX + 1];  /* "" = none yet */
    double created, last_login;         /* 0 = never */
    double code_sent;                   /* last password-set code made (0 = none) */
    double code_expires;                /* 0 = no code pending */
};

/* store_enduser_password_weak - the End User Console password rules: 8-32
 * characters (UTF-8), at least one lower-case letter, one upper-case
 * letter and one digit, no leading or trailing space, no control
 * characters. NULL when acceptable, else the reason. Pure. */
const char *store_enduser_password_weak(const char *pw);
/* store_enduser_address - check and normalise (lower-case) an end user's
 * address: NULL when valid (written to out), else the reason. Pure: the
 * domain check against the tenant is the store's. */
const char *store_enduser_address(const char *in, char *out, size_t outsz);
/* store_enduser_name - NULL when name is an acceptable display name (UTF-8,
 * no control characters, at most STORE_EUSER_NAME_MAX bytes) */
const char *store_enduser_name(const char *name);

/* store_enduser_add - a new enabled/disabled account (u->company_id, email,
 * name, enabled in; id and created out). 0; 1 user error in err (bad
 * address, not a verified domain of the tenant, exists already, tenant
 * full, no such tenant); -1 database error. */
int store_enduser_add(struct store *st, struct store_enduser *u, char *err, size_t errsz);
/* store_enduser_get - by id in scope: 0, 1 not found (or another tenant's), -1 */
int store_enduser_get(struct store *st, const char *scope, int64_t id, struct store_enduser *out);
/* store_enduser_find - by address in the tenant: 0, 1 not found, -1 */
int store_enduser_find(struct store *st, const char *company_id, const char *email, struct store_enduser *out);
struct store_enduser_query {
    const char *company_id; /* required */
    const char *search;     /* substring of address or name, case-insensitive; NULL = all */
    size_t offset, limit;   /* limit 0 = all */
};
/* store_enduser_list - by address into *out (caller frees); count or -1;
 * *total (may be NULL) = the matches without offset/limit */
long store_enduser_list(struct store *st, const struct store_enduser_query *q, struct store_enduser **out,
                        long *total);
/* store_enduser_count - the tenant's accounts, or -1 */
long store_enduser_count(struct store *st, const char *company_id);
/* store_enduser_update - set enabled and name of id in scope: 0, 1 not found, -1 */
int store_enduser_update(struct store *st, const char *scope, int64_t id, bool enabled, const char *name);
/* store_enduser_delete - 0 deleted, 1 not found, -1 */
int store_enduser_delete(struct store *st, const char *scope, int64_t id);

/* store_enduser_code_new - a fresh password-set code for id in scope (any
 * earlier one stops working), valid STORE_EUSER_CODE_TTL from now: written
 * to code ("XXXXX-XXXXX", for the mail only; the store keeps its hash).
 * 0, 1 not found, -1. */
int store_enduser_code_new(struct store *st, const char *scope, int64_t id, double now,
                           char code[STORE_EUSER_CODE_LEN + 1]);
enum store_code_result {
    STORE_CODE_OK = 0,     /* accepted (and used up) */
    STORE_CODE_WRONG,      /* does not match (one try counted) */
    STORE_CODE_EXPIRED,    /* too old, or too many wrong tries: ask for a new one */
    STORE_CODE_NONE,       /* no such account or no code pending */
    STORE_CODE_DISABLED,   /* the account is disabled */
    STORE_CODE_ERROR,      /* database error */
};
/* store_enduser_code_use - check a password-set code of the tenant's user
 * email (case, spaces and hyphens ignored); when it matches, the code is
 * used up and pwhash (argon2id, may be NULL = only verify) becomes the
 * password, in one transaction. The End User Console's "set password". */
enum store_code_result store_enduser_code_use(struct store *st, const char *company_id, const char *email,
                                              const char *code, const char *pwhash, double now);
/* store_enduser_login_ok - last_login = now; 0 or -1 */
int store_enduser_login_ok(struct store *st, int64_t id, double now);

/* One row of a CSV import, checked and normalised by the caller. */
struct store_enduser_row {
    unsigned line;              /* in the file, for errors */
    const char *email;          /* normalised */
    const char *name;           /* NULL: keep (existing) / "" (new) */
    int enabled;                /* -1: keep (existing) / enabled (new) */
};
struct store_enduser_row_error {
    unsigned line;
    char error[200];
};
struct store_enduser_import {
    size_t created, updated, unchanged;
    int64_t *created_ids;       /* the new accounts (caller frees) */
    struct store_enduser_row_error *errors; /* at most STORE_EUSER_ERRORS_MAX (caller frees) */
    size_t nerrors;             /* errors found (may be more than kept) */
};
/* store_enduser_import - apply rows to the tenant in one transaction: new
 * addresses created, existing ones updated (name / enabled when given);
 * nothing else is touched. Each row's domain and the tenant's limit are
 * checked first: with any error nothing is applied (res->errors). 0
 * applied; 1 rejected (errors); -1 database error. */
int store_enduser_import(struct store *st, const char *company_id, const struct store_enduser_row *rows, size_t n,
                         struct store_enduser_import *res);
void store_enduser_import_free(struct store_enduser_import *res);
/* store_enduser_csv_parse - a CSV file (at most STORE_EUSER_CSV_MAX bytes)
 * into checked rows: a header row naming the columns email (required),
 * name, enabled (password_set, created, last_login of an export are
 * ignored), then one account per line; addresses normalised, duplicates
 * refused, at most STORE_EUSER_IMPORT_MAX rows. 0 with *out (free with
 * store_enduser_rows_free), or 1 with the errors by line in res. Pure. */
int store_enduser_csv_parse(const char *csv, size_t len, struct store_enduser_row **out, size_t *nout,
                            struct store_enduser_import *res);
void store_enduser_rows_free(struct store_enduser_row *rows, size_t n);
/* store_enduser_csv_write - the accounts as CSV (header email, name,
 * enabled, password_set, created, last_login; quoted and formula-safe by
 * core_csv_field) appended to b; 0 or -1 when b is full. Pure. */
int store_enduser_csv_write(struct buf *b, const struct store_enduser *u, size_t n);

/* End User Console settings of a tenant: the tenant document's
 * "end_user_console" (store_doc.c validates it). */
struct store_euc {
    bool enabled, local_accounts, enforce_2fa;
    char categories[8][24];     /* quarantine categories shown to users */
    size_t ncategories;
};
/* store_euc_categories - the accepted quarantine category names, NULL-ended */
extern const char *const store_euc_categories[];
struct json_t;
/* store_euc_validate - in (an object; NULL = the defaults) checked and
 * canonical (every key, defaults filled in) into *canon (caller decrefs);
 * 0, or -1 with the reason ("enabled: must be true or false") in err */
int store_euc_validate(const struct json_t *in, struct json_t **canon, char *err, size_t errsz);
/* store_euc_default - the canonical default settings (caller decrefs) */
struct json_t *store_euc_default(void);
/* store_euc_get - the tenant's settings as canonical JSON (caller decrefs)
 * into *out, and parsed into e (may be NULL). 0, 1 no such tenant, -1 */
int store_euc_get(struct store *st, const char *company_id, struct json_t **out, struct store_euc *e);
/* store_euc_set - replace the tenant's settings with canon (from
 * store_euc_validate); config_version + 1 and an audit row (actor) when
 * they change. 0, 1 no such tenant, -1 */
int store_euc_set(struct store *st, const char *company_id, const struct json_t *canon, const char *actor);

/* ---------------------------------------------------------------- audit log */
/* store_audit_add - one row (who, what, which tenant, details) in its own transaction; 0 or -1 */
int store_audit_add(struct store *st, const char *actor, const char *action, const char *company_id,
                    const char *detail);
struct store_audit_entry {
    int64_t id;
    double time;
    char *actor, *action, *company_id, *detail; /* company_id / detail may be NULL */
};
/* store_audit_list - newest first, in scope (a tenant sees its own rows),
 * since/until 0 = open, limit 0 = 1000; caller frees with store_audit_free */
long store_audit_list(struct store *st, const char *scope, double since, double until, size_t limit,
                      struct store_audit_entry **out);
void store_audit_free(struct store_audit_entry *e, long n);

#endif
