/*
 * quarantine.h - quarantined messages: one compressed, checksummed copy per
 * tenant and recipient under data_dir/quarantine/, indexed in the store
 * (store_quarantine.c), released through the delivery queue.
 *
 * Why a module of its own rather than inside store/ or queue/: a quarantined
 * copy is neither tenant configuration (the store holds only its index row)
 * nor a queued message (it is never retried or expired by the queue
 * manager); it joins both - the file beside the spool, the row in the store,
 * the release into the queue - and both moatd (the acceptance commit, the
 * retention purge) and moatctl (list, show, release, delete, purge) use it.
 *
 * File: data_dir/quarantine/<id[0..1]>/<id>, mode 0600:
 *   "MOATQZ1 <size: 16 hex> <sha256 of the message: 64 hex>\n" + zlib stream
 * written to data_dir/quarantine/tmp/, fdatasync'ed, renamed into place, the
 * directory fsync'ed, and only then indexed. Reading checks the header
 * against the index row, inflates to exactly the indexed size and compares
 * the SHA-256: a damaged file is reported (QUARANTINE_CORRUPT), never
 * delivered. An id is 32 lower-case hex digits from getrandom (128 bits),
 * checked before it becomes part of a path, so no id can name another file.
 *
 * Release hook: the policy engine must re-run "the rules that follow
 * quarantine" before a released message is delivered (PRODUCT.md §4; the
 * seed: a released message may be quarantined again or deleted by later
 * rules). quarantine_release calls opts->after_quarantine (when set) with
 * the verified message, the index row (rule, rule_order = the execution
 * order to resume after: policy_envelope.release / resume_after) and the
 * envelope about to be queued; it may rewrite the message or the envelope,
 * or take the message over (QUARANTINE_AFTER_STOP: e.g. quarantined again,
 * deleted). Without a hook the stored copy is delivered as it is.
 */
#ifndef MOAT_QUARANTINE_H
#define MOAT_QUARANTINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "queue/queue.h"
#include "store/store.h"

/* the largest message kept: message_size_limit's maximum plus Moat's headers */
#define QUARANTINE_MESSAGE_MAX ((size_t)2 * 1024 * 1024 * 1024 + 1024 * 1024)
#define QUARANTINE_FIELD_MAX 998 /* subject / From / reason kept in the index */
#define QUARANTINE_PURGE_BATCH 1000
#define QUARANTINE_DETECTIONS_MAX (256 * 1024) /* the detections JSON kept in the index */

enum quarantine_status {
    QUARANTINE_OK = 0,
    QUARANTINE_NOT_FOUND, /* no such id in the caller's scope */
    QUARANTINE_RELEASED,  /* released already */
    QUARANTINE_CORRUPT,   /* the stored copy is missing or damaged */
    QUARANTINE_INVALID,   /* bad arguments (id syntax, missing field, too big) */
    QUARANTINE_ERROR,     /* I/O, database or queue failure */
};
/* quarantine_status_text - "not found", "already released", ... */
const char *quarantine_status_text(enum quarantine_status s);
/* quarantine_id_valid - 32 lower-case hex digits */
bool quarantine_id_valid(const char *id);

struct quarantine;
/* quarantine_open - data_dir/quarantine (created 0700) with the store st
 * (borrowed; one thread at a time, like the store). NULL with err. */
struct quarantine *quarantine_open(const char *data_dir, struct store *st, char *err, size_t errsz);
void quarantine_close(struct quarantine *q);

/* What quarantine_put records besides the bytes. company_id, qid, rcpt and
 * sender are required; header_from / subject NULL are read from the
 * message's header block; time 0 = now; direction NULL = "inbound". */
struct quarantine_put_info {
    const char *company_id, *qid, *rcpt, *sender;
    const char *header_from, *subject;
    const char *rule;       /* e.g. "Spam or Phish" */
    unsigned rule_order;    /* the rule's execution order (policy) */
    const char *reason;     /* e.g. "Spam or Phish: spam (0.98)" */
    const char *detections; /* JSON array, as in tracking */
    const char *scan;       /* the verdict summary (X-Moat-Scan) */
    const char *direction;
    const char *orcpt, *envid, *client_ip, *helo;
    bool smtputf8, eightbit;
    double time;
};

/* quarantine_put - store data (the message as it would have been queued,
 * Moat's Received header first) for one tenant and recipient: file durable
 * first, then the index row. The new id into id_out. */
enum quarantine_status quarantine_put(struct quarantine *q, const struct quarantine_put_info *info,
                                      const char *data, size_t len, char id_out[STORE_QUARANTINE_ID_LEN + 1],
                                      char *err, size_t errsz);

/* quarantine_load - the row (caller frees with store_quarantine_item_free)
 * and the verified message bytes (appended to msg, whose max must allow the
 * size) of id in company_id's scope (NULL = operator). */
enum quarantine_status quarantine_load(struct quarantine *q, const char *company_id, const char *id,
                                       struct store_quarantine_item *item, struct buf *msg, char *err,
                                       size_t errsz);

/* ---------------------------------------------------------------- release */
enum quarantine_after {
    QUARANTINE_AFTER_DELIVER = 0, /* queue msg for env (possibly changed) */
    QUARANTINE_AFTER_STOP,        /* the hook disposed of the message (why says how) */
};
/* quarantine_after_fn - "the rules that follow quarantine" (see the top of
 * this file). msg and env may be changed; env->rcpts may be replaced
 * (allocated with xmalloc/xstrdup: queue_envelope_free frees them). */
typedef enum quarantine_after (*quarantine_after_fn)(void *arg, const struct store_quarantine_item *item,
                                                     struct buf *msg, struct queue_envelope *env, char *why,
                                                     size_t whysz);
/* quarantine_inject_fn - make (data, env) durable in the delivery queue and
 * hand it to the queue manager: queue_ctl_inject from moatctl,
 * queue_mgr_inject inside moatd. 0 once durable, -1 on failure. */
typedef int (*quarantine_inject_fn)(void *arg, const char *data, size_t len, struct queue_envelope *env);

struct quarantine_release_opts {
    quarantine_after_fn after_quarantine; /* NULL: deliver the stored copy */
    void *after_arg;
    quarantine_inject_fn inject; /* required */
    void *inject_arg;
    struct tracker *tracker; /* NULL: no tracking events */
    const char *actor;       /* who released, for the timeline */
};

/* quarantine_release - deliver the stored copy of id to its recipient
 * through the queue: verify, claim the row (a second release gets
 * QUARANTINE_RELEASED), run the hook, inject (durable before this returns
 * QUARANTINE_OK), mark done, record "released" on the original message's
 * timeline and the new message in tracking. new_qid: the queued copy's ID
 * ("" when the hook stopped it). */
enum quarantine_status quarantine_release(struct quarantine *q, const char *company_id, const char *id,
                                          const struct quarantine_release_opts *opts,
                                          char new_qid[CORE_QID_LEN + 1], char *err, size_t errsz);

/* ---------------------------------------------------------------- the rules after quarantine (quarantine_policy.c) */
struct quarantine_policy {
    struct store *st;      /* the tenant's rules are read from it */
    struct quarantine *q;  /* where a later quarantine rule puts its copy */
};
/* quarantine_policy_after - an after_quarantine hook (arg: struct
 * quarantine_policy *): the tenant's rules after the one that quarantined,
 * with the verdict stored with the copy */
enum quarantine_after quarantine_policy_after(void *arg, const struct store_quarantine_item *it, struct buf *msg,
                                              struct queue_envelope *env, char *why, size_t whysz);

/* quarantine_delete - remove the row and its file (tenant scope) */
enum quarantine_status quarantine_delete(struct quarantine *q, const char *company_id, const char *id,
                                         char *err, size_t errsz);

/* quarantine_purge - delete every copy quarantined before `before` (rows
 * and files) and files without a row older than that (left by a crash
 * between file and index); the number of rows removed, or -1 */
long quarantine_purge(struct quarantine *q, double before);

#endif
