/*
 * policy_int.h - the compiled form of a tenant's policies, shared by
 * policy_compile.c (builds it) and policy_eval.c (reads it).
 *
 * Every per-rule question is answered at evaluation time from per-message
 * facts computed once (bit masks, a byte per rule for the shared text
 * scans), so a rule costs a few mask tests whatever its lists hold.
 */
#ifndef MOAT_POLICY_INT_H
#define MOAT_POLICY_INT_H

#include <hs/hs.h>

#include "core/core.h"
#include "policy/policy.h"

/* criteria families = execution classes, in execution order */
enum policy_class { PCLASS_VIRUS = 0, PCLASS_SCAN_EXCLUSION, PCLASS_CONTENT, PCLASS_SPAM, PCLASS_N };

/* virus detection types (bits) */
#define PV_CLEANABLE 1u
#define PV_MASS 2u
#define PV_NONMASS 4u
/* which engine found it: signatures always count, heuristics by option */
enum { PVK_SIGNATURE = 0, PVK_HEURISTIC, PVK_MACRO, PVK_SCRIPT, PVK_DEEP, PVK_N };

/* scan exclusion bits */
#define PSX_ARCHIVE_LIMITS 1u
#define PSX_ENCRYPTED 2u
#define PSX_MALFORMED 4u
#define PSX_SCAN_FAILURE 8u

/* keyword fields */
enum { PKW_SUBJECT = 0, PKW_BODY, PKW_HEADERS, PKW_ATTACHMENTS, PKW_N };

/* attachment true-type categories (docs/store.md), bit i = policy_type_names[i] */
enum {
    PT_EXECUTABLE = 0,
    PT_SCRIPT,
    PT_ARCHIVE,
    PT_DOCUMENT,
    PT_OFFICE_MACRO,
    PT_PDF,
    PT_IMAGE,
    PT_AUDIO,
    PT_VIDEO,
    PT_HTML,
    PT_TEXT,
    PT_DISK_IMAGE,
    PT_N
};
extern const char *const policy_type_names[PT_N + 1];
unsigned policy_type_of(const char *mime_type); /* category bits of a libmagic type */

/* who a rule covers */
enum who_kind { WHO_LIST = 0, WHO_ANY, WHO_ORGANIZATION };
struct who {
    enum who_kind kind;
    char **addrs; /* normalised addresses, sorted */
    size_t naddrs;
    char **domains; /* from *@domain, normalised, sorted */
    size_t ndomains;
};

struct ipnet {
    int family; /* 4 or 6 */
    unsigned char a[16];
    unsigned prefix;
};

struct senderlist {
    struct who who; /* kind WHO_LIST */
    struct ipnet *nets;
    size_t nnets;
};

struct notify_spec {
    const char *template_name;
    const char **to;
    size_t nto;
};

struct rule {
    char *name;
    unsigned order;  /* 1-based within its direction */
    size_t position; /* index in the document's policies */
    enum policy_direction dir;
    enum policy_class cls;
    bool enabled;
    struct who rcpts, senders, ex_rcpts, ex_senders;

    /* criteria */
    bool has_virus, has_spam, has_content, has_scanx;
    unsigned virus_types; /* PV_* */
    unsigned virus_kinds; /* 1 << PVK_* enabled */
    int spam_level;       /* 0..4, -1 unset */
    bool phishing, graymail, web_reputation, social_engineering;
    unsigned bec;   /* 1: engine, 2: writing_style, 4: probable */
    unsigned types; /* 1 << PT_* */
    bool password_protected;
    bool att_size_set, msg_size_set;
    uint64_t att_size_over, msg_size_over;
    long recipients_over; /* -1 unset */
    char **exts;          /* sorted */
    size_t nexts;
    size_t nnames;      /* name patterns (in the set's names database) */
    unsigned kw_fields; /* 1 << PKW_* that some keyword searches */
    size_t nkeywords;
    unsigned scanx; /* PSX_* */

    /* actions */
    enum policy_intercept intercept;
    char *change_recipient;
    bool clean, delete_attachments;
    char *xh_name, *xh_value;
    char *stamp_text, *stamp_html;
    char *tag;
    bool tag_skip_signed;
    struct notify_spec *notify;
    size_t nnotify;
    char *bcc;
};

/* one extension -> rule table entry (sorted by ext) */
struct ext_entry {
    const char *ext;
    unsigned rule; /* index in dirset.rules */
};

struct dirset {
    struct rule *rules; /* in execution order */
    size_t nrules;
    hs_database_t *kw[PKW_N]; /* keyword databases: id -> kw_rule[id] */
    unsigned *kw_rule[PKW_N];
    size_t nkw[PKW_N];
    hs_database_t *names; /* attachment name patterns: id -> names_rule[id] */
    unsigned *names_rule;
    size_t nnames;
    struct ext_entry *exts; /* all rules' extensions */
    size_t nexts;
};

struct policy_set {
    int refs;        /* atomic */
    uint64_t serial; /* process-unique, for the per-thread scratch */
    char *admin_email;
    char **domains; /* the tenant's, normalised, sorted */
    size_t ndomains;
    struct senderlist approved, blocked;
    struct dirset dir[2];
    char **strings; /* every string the rules own (freed together) */
    size_t nstrings, capstrings;
};

/* addresses (policy_compile.c) */
int policy_norm_domain(const char *in, size_t len, char *out, size_t outsz);
int policy_norm_address(const char *in, char *out, size_t outsz);
bool policy_sorted_has(char *const *arr, size_t n, const char *s);
bool policy_who_has(const struct who *w, const char *addr, const struct policy_set *set);
bool policy_list_has(const struct senderlist *l, const char *addr, const char *ip);
int policy_rule_class(bool virus, bool scanx, bool content, bool spam);
unsigned policy_intercept_rank(enum policy_intercept i);
unsigned policy_hs_flags(const char **pattern);

#endif
