/*
 * detect_int.h - the detector interface inside detect/ (not for other modules).
 * To add a detector: implement these three functions in detect_<name>.c,
 * declare them here, and add one line to the table in detect.c.
 */
#ifndef MOAT_DETECT_INT_H
#define MOAT_DETECT_INT_H

#include <sys/socket.h>

#include "detect/detect.h"

struct detector {
    const char *name;
    int (*init)(const struct moat_config *cfg, char *err, size_t errsz); /* may be NULL */
    /* ctx is never NULL here (detect_run passes an empty one) */
    void (*run)(struct analysis *a, const char *msg, size_t len, const struct detect_context *ctx);
    void (*shutdown)(void); /* may be NULL */
};

/* declarations of each detector's functions go below */

/* detect_virus.c - libclamav signatures and malware heuristics */
int detect_virus_init(const struct moat_config *cfg, char *err, size_t errsz);
void detect_virus_run(struct analysis *a, const char *msg, size_t len, const struct detect_context *ctx);
void detect_virus_shutdown(void);
/* detect_virus_type - the detection type of a virus detection (PRODUCT.md's
 * three; docs/detection.md): "mass_mailing" when the signature name is a
 * mass-mailing worm's, else "cleanable" when found in a removable part
 * (in_part), else "non_mass_mailing" */
const char *detect_virus_type(const char *name, bool in_part);

/* detect_clamd.c - clamd INSTREAM client used by detect_virus.c when
 * clamd_socket is set */
struct clamd_target {
    struct sockaddr_storage sa;
    socklen_t salen;
    char name[320]; /* the clamd_socket text, for reasons */
};
enum clamd_verdict { CLAMD_CLEAN, CLAMD_FOUND, CLAMD_ERROR };
/* clamd_target_parse - NULL, or the reason spec is not a usable clamd_socket */
const char *clamd_target_parse(const char *spec, struct clamd_target *t);
/* clamd_scan - stream len bytes to clamd; out gets the signature name
 * (CLAMD_FOUND) or the reason (CLAMD_ERROR: refused, timed out, over
 * stream_max, clamd's ERROR, an unparsable reply) */
enum clamd_verdict clamd_scan(const struct clamd_target *t, const void *data, size_t len, unsigned timeout_ms,
                              uint64_t stream_max, char *out, size_t outsz);

/* detect_spam.c - spam score (classifier + rules) and the spam/phishing test
 * strings; detect_spam_model.c - tokenizer, features, model file, trainer
 * (also used by `moatctl train` and the unit tests) */
int detect_spam_init(const struct moat_config *cfg, char *err, size_t errsz);
void detect_spam_run(struct analysis *a, const char *msg, size_t len, const struct detect_context *ctx);
void detect_spam_shutdown(void);

/* spam levels: caught at a level when spam_score >= its threshold */
#define SPAM_T_LOWEST 0.99
#define SPAM_T_LOW 0.97
#define SPAM_T_MODERATE 0.93 /* < 0.1 % FP on both validation splits (docs/detection.md) */
#define SPAM_T_HIGH 0.8
#define SPAM_T_HIGHEST 0.6
struct spam_level {
    const char *name;
    double threshold;
};
extern const struct spam_level spam_levels[5]; /* lowest .. highest */
/* spam_level_matched - the least sensitive level that catches score, or NULL */
const char *spam_level_matched(double score);

#define SPAM_MAX_FEATURES 4000 /* features per message */
#define SPAM_MODEL_BITS 20     /* default: 2^20 weights, 2 MB */
struct spam_model;
struct spam_trainer;
typedef void (*spam_emit_fn)(char kind, const char *tok, size_t n, void *arg);
/* spam_tokenize - words (ASCII lower-cased) with kind prefix, word pairs ('b'
 * when prefix is 'w'), CJK character bigrams ('c' for body text, else prefix) */
void spam_tokenize(const char *text, size_t len, char prefix, spam_emit_fn emit, void *arg);
/* spam_extract - every token of an analysis (see detect_spam_model.c) */
void spam_extract(const struct analysis *a, spam_emit_fn emit, void *arg);
uint32_t spam_hash(char kind, const char *tok, size_t n);
/* spam_features - sorted unique feature hashes, at most max */
size_t spam_features(const struct analysis *a, uint32_t *out, size_t max);
struct spam_model *spam_model_new(unsigned bits); /* NULL if bits not in 16..24 */
void spam_model_free(struct spam_model *m);
double spam_model_score(const struct spam_model *m, const uint32_t *f, size_t n);
/* spam_model_logit - the same score as a logit (no saturation: rule bonuses
 * add to it and the ranking of confident scores is kept) */
double spam_model_logit(const struct spam_model *m, const uint32_t *f, size_t n);
/* spam_model_logistic / spam_model_fisher - the two halves of the score
 * alone (logistic regression; Robinson/Fisher chi-square combiner), in [0, 1] */
double spam_model_logistic(const struct spam_model *m, const uint32_t *f, size_t n);
double spam_model_fisher(const struct spam_model *m, const uint32_t *f, size_t n);
double spam_model_weight(const struct spam_model *m, uint32_t h);
void spam_model_counts(const struct spam_model *m, uint32_t *nspam, uint32_t *nham);
unsigned char *spam_model_serialise(const struct spam_model *m, size_t *len);
struct spam_model *spam_model_parse(const unsigned char *p, size_t len, char *err, size_t errsz);
int spam_model_save(const struct spam_model *m, const char *path, char *err, size_t errsz);
struct spam_model *spam_model_load(const char *path, char *err, size_t errsz);
/* detect_spam_set_model - replace the process' model (tests); takes ownership */
void detect_spam_set_model(struct spam_model *m);
struct spam_trainer *spam_trainer_new(unsigned bits);
void spam_trainer_add(struct spam_trainer *t, const struct analysis *a, bool spam);
size_t spam_trainer_count(const struct spam_trainer *t);
struct spam_model *spam_trainer_finish(struct spam_trainer *t, unsigned epochs);
void spam_trainer_free(struct spam_trainer *t);

/* detect_ident.c - identity and language helpers for the BEC, social
 * engineering and graymail detectors (addresses, organisational domains,
 * look-alike domains, display-name matching, data/lists/ phrase lists) */
#define IDENT_MAX_NAME 256      /* display names are compared up to this many bytes */
#define IDENT_PHRASE_PAYMENT 1u /* bec-phrases.txt classes */
#define IDENT_PHRASE_URGENCY 2u
#define IDENT_PHRASE_SECRECY 4u
#define IDENT_MAX_TEXT (64 * 1024) /* subject + text looked at for phrases */
const char *ident_domain(const char *addr); /* after the last '@', or "" */
bool ident_domain_in(const char *domain, const char *const *list, size_t n); /* equal or subdomain */
bool ident_is_own(const struct detect_context *ctx, const char *domain);
void ident_org_domain(const char *domain, char *out, size_t outsz);
bool ident_same_org(const char *d1, const char *d2);
/* ident_lookalike - the list entry domain imitates (not being it), or NULL */
const char *ident_lookalike(const char *domain, const char *const *list, size_t n);
/* ident_name_match - display name is the person's name (see detect_ident.c) */
bool ident_name_match(const char *display, const char *name);
uint32_t ident_fold(uint32_t cp); /* full-width ASCII, ASCII case, spaces */
/* ident_norm_text - folded copy for phrase matching (NUL-terminated); length */
size_t ident_norm_text(const char *in, size_t len, char *out, size_t outsz);
/* ident_subject_text - subject + " " + text, folded, into out */
size_t ident_subject_text(const struct analysis *a, char *out, size_t outsz);
int ident_lists_load(char *err, size_t errsz); /* once per process; -1 with err */
void ident_lists_free(void);
bool ident_freemail(const char *domain);
/* ident_phrases - sum of weights of the phrases of cls_mask in norm; up to
 * four matched phrases quoted into why, their number added to *count */
double ident_phrases(const char *norm, size_t len, unsigned cls_mask, struct buf *why, size_t *count);

/* detect_bec.c - BEC (engine / probable / writing_style) */
int detect_bec_init(const struct moat_config *cfg, char *err, size_t errsz);
void detect_bec_run(struct analysis *a, const char *msg, size_t len, const struct detect_context *ctx);
void detect_bec_shutdown(void);
/* detect_social.c - social engineering (header anomalies of targeted attacks) */
void detect_social_run(struct analysis *a, const char *msg, size_t len, const struct detect_context *ctx);
/* detect_graymail.c - newsletters, marketing, social-network notifications */
void detect_graymail_run(struct analysis *a, const char *msg, size_t len, const struct detect_context *ctx);

/* detect_style.c - writing-style profiles of high-profile users */
#define STYLE_VERSION 1
#define STYLE_NGRAMS 512        /* hashed character-trigram buckets */
#define STYLE_NFW 96            /* English function words + Japanese particles */
#define STYLE_NPUNCT 20         /* punctuation/layout classes */
#define STYLE_NGREET 12         /* greeting classes */
#define STYLE_NSIGN 12          /* sign-off classes */
#define STYLE_MAX_ADDR 320
#define STYLE_MIN_CHARS 150     /* non-space characters of own text to learn or judge */
#define STYLE_MIN_MESSAGES 5    /* a profile is used from this many messages */
#define STYLE_MAX_MESSAGES 1000000
#define STYLE_THRESHOLD 0.38    /* distance above which mail is flagged (calibrated) */
struct style_sample {
    double ngram[STYLE_NGRAMS], fw[STYLE_NFW], punct[STYLE_NPUNCT];
    double nchars, nwords, sent_mean;
    unsigned greet, sign;
};
struct style_profile {
    char address[STYLE_MAX_ADDR + 1];
    uint32_t nmsgs;
    double nchars, nwords, sent_sum, sent_sq;
    float ngram[STYLE_NGRAMS], fw[STYLE_NFW], punct[STYLE_NPUNCT]; /* sums of counts */
    uint32_t greet[STYLE_NGREET], sign[STYLE_NSIGN];
};
void style_sample_of(const struct analysis *a, struct style_sample *s);
struct style_profile *style_profile_new(const char *address);
/* style_profile_add - learn one sample; false when too short or full */
bool style_profile_add(struct style_profile *p, const struct style_sample *s);
unsigned style_profile_messages(const struct style_profile *p);
/* style_distance - [0, 1]; the per-feature parts are described into why */
double style_distance(const struct style_profile *p, const struct style_sample *s, struct buf *why);
unsigned char *style_profile_serialise(const struct style_profile *p, size_t *len);
struct style_profile *style_profile_parse(const unsigned char *p, size_t len, char *err, size_t errsz);
int style_profile_save(const struct style_profile *p, const char *path, char *err, size_t errsz);

/* detect_phish.c - phishing signals (docs/detection.md "Phishing"); its
 * list and domain helpers are shared with detect_webrep.c */
#define PHISH_T_MATCH 0.5 /* a policy matches "phishing" when a phishing detection scores >= this */
int detect_phish_init(const struct moat_config *cfg, char *err, size_t errsz);
void detect_phish_run(struct analysis *a, const char *msg, size_t len, const struct detect_context *ctx);
void detect_phish_shutdown(void);
const char *detect_lists_dir(void); /* $MOAT_LISTS_DIR, else MOAT_DATADIR/lists */
/* detect_list_read - call line() for each non-comment line of a list file
 * (trimmed, '#' comments removed, lines over 2 KB skipped); -1 with err */
int detect_list_read(const char *name, void (*line)(char *s, void *arg), void *arg, char *err, size_t errsz);
size_t detect_registrable(const char *host, char *out, size_t outsz); /* "a.b.co.jp" -> "b.co.jp" */
bool detect_host_in(const char *host, const char *domain); /* equal or a subdomain */
size_t phish_skeleton(const char *s, char *out, size_t outsz); /* confusable skeleton */
size_t phish_edit_distance(const char *a, const char *b);     /* SIZE_MAX over 63 bytes */
bool phish_ip_host(const char *h); /* IPv4 in any numeric form, or IPv6 */

/* detect_webrep.c - web reputation: tenant and shipped URL lists, URI DNSBLs */
#define WEBREP_TEST_URL "http://moat-test-blocked.example/" /* always blocked (data/lists/url-blocklist.txt) */
#define WEBREP_MAX_DNS_DOMAINS 20 /* names looked up per message */
int detect_webrep_init(const struct moat_config *cfg, char *err, size_t errsz);
void detect_webrep_run(struct analysis *a, const char *msg, size_t len, const struct detect_context *ctx);
void detect_webrep_shutdown(void);
/* webrep_list_match - u matches an entry of list (domain or URL prefix) */
bool webrep_list_match(const char *const *list, size_t n, const struct mime_url *u, const char **entry);

#endif
