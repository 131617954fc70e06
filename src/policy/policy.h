/*
 * policy.h - the rule engine (PRODUCT.md §4, docs/policy.md): one tenant's
 * policies compiled once into an immutable set, then evaluated as a pure
 * function of (set, analysis, envelope) into one disposition per recipient.
 *
 *   policy_compile           tenant document JSON -> struct policy_set
 *   policy_set_ref / _unref  the set is shared read-only between threads
 *   policy_evaluate          analysis + envelope -> per-recipient dispositions
 *   policy_result_free       frees what policy_evaluate filled in
 *   policy_sender_blocked    the blocked-senders list alone (RCPT-time refusal)
 *   policy_sender_approved   the approved-senders list alone
 *   policy_execution_order   the order Moat runs a tenant's policies in
 *   policy_pattern_check     one keyword pattern as the engine compiles it
 *
 * Ownership: a result borrows strings (rule names, tags, header values,
 * templates, addresses of change_recipient/bcc) from its set: keep a
 * reference to the set until the result is freed. Recipient addresses are
 * copied. The set never changes after compilation; evaluation may run in
 * any number of threads at once (each thread keeps its own Vectorscan
 * scratch; policy_thread_done releases it).
 */
#ifndef MOAT_POLICY_H
#define MOAT_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mime/mime.h"

/* Limits. The store refuses documents beyond them first (docs/store.md);
 * compilation checks again because the JSON may come from elsewhere. */
#define POLICY_MAX_RULES 1000                          /* per tenant, both directions */
#define POLICY_MAX_LIST 5000                           /* approved / blocked senders, each */
#define POLICY_MAX_DOMAINS 1000                        /* the tenant's domains ("organization") */
#define POLICY_MAX_WHO 5000                            /* addresses in one recipients/senders list */
#define POLICY_MAX_ITEMS 1000                          /* extensions, names, keywords per rule */
#define POLICY_MAX_PATTERN 1024                        /* bytes of one keyword pattern */
#define POLICY_MAX_NOTIFY 32                           /* notifications per rule, and "to" per one */
#define POLICY_MAX_RCPTS 1000                          /* recipients evaluated per message */
#define POLICY_MAX_HEADER_SCAN (256 * 1024)            /* header bytes searched by keywords */
#define POLICY_MAX_ATTACH_SCAN (1024 * 1024)           /* bytes of one text attachment searched */
#define POLICY_MAX_ATTACH_SCAN_TOTAL (4 * 1024 * 1024) /* ... of all attachments */
#define POLICY_MAX_REMOVALS 1000                       /* attachment removals per recipient */
#define POLICY_ADDR_MAX 320                            /* a normalised address */

/* A phishing criterion matches a "phishing" detection scoring at least this
 * (the same value as PHISH_T_MATCH in src/detect/detect_int.h, which policy/
 * does not include: detect/ reports, policy decides - docs/detection.md). */
#define POLICY_PHISH_MATCH 0.5

enum policy_direction { POLICY_INBOUND = 0, POLICY_OUTBOUND = 1 };

/* Intercept actions; a disposition has exactly one. */
enum policy_intercept {
    POLICY_INTERCEPT_NONE = 0,    /* do not intercept: deliver */
    POLICY_INTERCEPT_DELETE,      /* delete the entire message */
    POLICY_INTERCEPT_DELIVER_NOW, /* deliver, skipping all further rules */
    POLICY_INTERCEPT_QUARANTINE,
    POLICY_INTERCEPT_CHANGE_RECIPIENT, /* deliver to new_recipient instead */
};

/* "none", "delete", "deliver_now", "quarantine", "change_recipient" */
const char *policy_intercept_name(enum policy_intercept i);

struct policy_set;

/* policy_compile - compile one tenant: json is the `moatctl export` text
 * for that tenant ({"tenants": [ONE]}) or the tenant object itself. Returns
 * NULL with a reason in err on a document it cannot use (names the policy
 * and, for a pattern, Vectorscan's reason). The set starts with one
 * reference. */
struct policy_set *policy_compile(const char *json, size_t len, char *err, size_t errsz);
/* policy_compile_tenant - the same from a parsed tenant object (borrowed) */
struct policy_set *policy_compile_tenant(const json_t *tenant, char *err, size_t errsz);
struct policy_set *policy_set_ref(struct policy_set *set);
void policy_set_unref(struct policy_set *set);

/* number of rules of a direction, and the name of the rule at a 1-based
 * execution order (NULL when out of range) */
size_t policy_rule_count(const struct policy_set *set, enum policy_direction dir);
const char *policy_rule_name(const struct policy_set *set, enum policy_direction dir, unsigned order);

/* policy_execution_order - for a JSON array of canonical policies (the
 * tenant document's "policies"), write each policy's 1-based execution
 * order within its direction to order[i] (n entries; disabled policies are
 * numbered too). Returns 0, or -1 when n does not match the array. */
int policy_execution_order(const json_t *policies, unsigned *order, size_t n);

/* policy_pattern_check - NULL when pattern compiles as a keyword ("(?i)"
 * prefix: ignore case), else Vectorscan's reason written to why */
const char *policy_pattern_check(const char *pattern, char *why, size_t whysz);

/* policy_sender_blocked - the sender address (or its *@domain) or the
 * client IP (v4/v6, CIDRs) is in the tenant's blocked senders. Either may
 * be NULL or empty. */
bool policy_sender_blocked(const struct policy_set *set, const char *sender, const char *client_ip);
bool policy_sender_approved(const struct policy_set *set, const char *sender, const char *client_ip);

struct policy_envelope {
    const char *sender;       /* MAIL FROM, "" for the null sender */
    const char *client_ip;    /* may be NULL */
    const char *const *rcpts; /* RCPT TO addresses */
    size_t nrcpts;            /* 1..POLICY_MAX_RCPTS */
    enum policy_direction direction;
    bool release;          /* a quarantine release: the blocked
                            * senders are not applied again and only
                            * the rules after resume_after run */
    unsigned resume_after; /* with release: the execution order of
                            * the rule that quarantined (0: a sender
                            * list) */
};

/* trace of one rule for one recipient (tracking: "rule evaluated") */
enum policy_outcome {
    POLICY_NOT_MATCHED = 0,
    POLICY_MATCHED,
    POLICY_SKIPPED_APPROVED, /* only spam-filter criteria, approved sender */
};

struct policy_trace {
    const char *rule; /* rule name; "Blocked senders" / "Approved senders" */
    unsigned order;   /* execution order, 0 for the sender lists */
    enum policy_outcome outcome;
    enum policy_intercept intercept; /* the rule's intercept (when matched) */
    const char *text;                /* "not matched", "matched: quarantine (virus: X)", ...
                                      * (static, or owned by the result) */
};

enum policy_removal_kind { POLICY_REMOVE_MATCHING = 0, POLICY_REMOVE_INFECTED };
#define POLICY_WHOLE_ATTACHMENT SIZE_MAX

struct policy_removal { /* delete_attachments / clean */
    size_t attachment;  /* index in analysis->attachments */
    size_t member;      /* index in its members (what matched), or POLICY_WHOLE_ATTACHMENT */
    enum policy_removal_kind kind;
    const char *rule;
    char reason[160]; /* "extension exe", "true type executable", "virus Eicar" */
};

struct policy_x_header {
    const char *name, *value, *rule;
};
struct policy_stamp {
    const char *text, *html, *rule;
}; /* either may be NULL */
struct policy_tag {
    const char *tag, *rule;
};
struct policy_notify {
    const char *template_name;
    const char *const *to; /* "admin", "sender", "recipient" or addresses */
    size_t nto;
    const char *rule;
};
struct policy_bcc {
    const char *address, *rule;
};

struct policy_disposition {
    char *rcpt; /* as given in the envelope (copy) */
    enum policy_intercept intercept;
    const char *intercept_rule; /* NULL when no rule intercepted */
    unsigned intercept_order;   /* execution order of that rule (0: sender list) */
    const char *new_recipient;  /* POLICY_INTERCEPT_CHANGE_RECIPIENT only */
    bool clean;                 /* a matched rule asked to clean malware */
    bool tag_skipped_signed;    /* a tag was not added: the message is signed */
    struct policy_removal *removals;
    size_t nremovals;
    struct policy_x_header *x_headers;
    size_t nx_headers;
    struct policy_stamp *stamps;
    size_t nstamps;
    struct policy_tag *tags;
    size_t ntags;
    struct policy_notify *notify;
    size_t nnotify;
    struct policy_bcc *bcc;
    size_t nbcc;
    struct policy_trace *trace; /* the rules evaluated for this recipient, in order */
    size_t ntrace;
};

struct policy_result {
    struct policy_disposition *rcpts; /* one per envelope recipient, same order */
    size_t nrcpts;
    bool sender_blocked, sender_approved;
    char **texts; /* trace texts of matched rules (one per rule, shared) */
    size_t ntexts;
};

/* policy_evaluate - the rules of env->direction over one analysed message.
 * Pure: reads set, a and env, writes res (which the caller frees with
 * policy_result_free, also after a failure). Returns 0, or -1 when env is
 * unusable (no or too many recipients). */
int policy_evaluate(const struct policy_set *set, const struct analysis *a, const struct policy_envelope *env,
                    struct policy_result *res);
void policy_result_free(struct policy_result *res);

/* policy_disposition_same - two recipients get the same message and the same
 * treatment (so one copy can serve both): same intercept, target and
 * modifications; traces and notifications are not compared */
bool policy_disposition_same(const struct policy_disposition *x, const struct policy_disposition *y);

/* ---------------------------------------------------------------- carrying out (policy_apply.c) */
/* policy_disposition_modifies - d changes the message (tags, headers,
 * stamps, removals) */
bool policy_disposition_modifies(const struct policy_disposition *d);
/* policy_apply_modifications - d's modifications applied to msg (the
 * message a was analysed from) into out (initialised here; caller
 * buf_free); 0, or -1 with err (out empty: keep the original) */
struct buf;
int policy_apply_modifications(const struct policy_disposition *d, const struct analysis *a, const char *msg,
                               size_t len, struct buf *out, char *err, size_t errsz);
/* policy_message_lang - "ja" when the message's subject or text is
 * Japanese, else "en" (notes and notifications follow it) */
const char *policy_message_lang(const struct analysis *a);

/* policy_thread_done - free the calling thread's Vectorscan scratch */
void policy_thread_done(void);

/* ---------------------------------------------------------------- tenants (policy_table.c) */
/* Every tenant's set by company ID, for the main process. build: from the
 * `moatctl export` document of all tenants; a tenant that does not compile
 * is left out and the first such problem is written to err (err is "" when
 * all compiled); NULL only when the document itself is unusable. find: the
 * tenant's set, borrowed while the table is held (case-insensitive). */
struct policy_table;
struct policy_table *policy_table_build(const char *json, size_t len, char *err, size_t errsz);
struct policy_set *policy_table_find(const struct policy_table *t, const char *company_id);
struct policy_table *policy_table_ref(struct policy_table *t);
void policy_table_unref(struct policy_table *t);

#endif
