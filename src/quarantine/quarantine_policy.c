/*
 * quarantine_policy.c - "the rules that follow quarantine" (PRODUCT.md §4;
 * the seed: a released message continues through the policy): the
 * after_quarantine hook of quarantine_release (quarantine.h).
 *
 * The released copy is analysed again (mime/, content criteria) and given
 * back the verdict it had when it was quarantined (the detections and the
 * spam score stored with it, so no engine has to be loaded and the verdict
 * cannot differ from the one the administrator saw); then the tenant's
 * rules after the one that quarantined run for its recipient
 * (policy_evaluate with release / resume_after):
 *   delete            the copy is dropped (the release reports why)
 *   quarantine        a new quarantined copy (the later rule), not delivered
 *   change_recipient  delivered to the new address
 *   modifications     applied (policy_apply_modifications) before queuing
 * Notifications and BCC copies of the later rules are not sent again for a
 * release. Tenant rules that cannot be loaded, or a modification that fails,
 * leave the copy as it was stored: the administrator asked for delivery.
 */
#include "core/core.h"
#include "detect/detect.h"
#include "mime/mime.h"
#include "policy/policy.h"
#include "quarantine/quarantine.h"

#include <jansson.h>

/* restore_verdict - the stored detections and spam score into a */
static void restore_verdict(struct analysis *a, const struct store_quarantine_item *it)
{
    json_t *dets = it->detections ? json_loads(it->detections, 0, NULL) : NULL;
    size_t i;
    json_t *d;
    json_array_foreach(dets, i, d)
    {
        const char *cat = json_string_value(json_object_get(d, "category"));
        const char *name = json_string_value(json_object_get(d, "name"));
        const char *type = json_string_value(json_object_get(d, "type"));
        if (!cat || !name)
            continue;
        struct detection *x = analysis_add_detection(a, cat, name, json_number_value(json_object_get(d, "score")),
                                                     json_string_value(json_object_get(d, "evidence")));
        if (x && type && !x->type)
            x->type = xstrdup(type);
    }
    json_decref(dets);
    const char *sp = it->scan ? strstr(it->scan, "spam=") : NULL;
    if (sp) {
        char *end;
        double v = strtod(sp + 5, &end);
        if (end != sp + 5 && v >= 0 && v <= 1) {
            a->spam_scored = true;
            a->spam_score = v;
            a->spam_levels = detect_spam_levels(v);
        }
    }
}

enum quarantine_after quarantine_policy_after(void *arg, const struct store_quarantine_item *it, struct buf *msg,
                                              struct queue_envelope *env, char *why, size_t whysz)
{
    struct quarantine_policy *qp = arg;
    char err[600];
    char *doc = store_export_json(qp->st, it->company_id, err, sizeof err);
    json_t *root = doc ? json_loads(doc, 0, NULL) : NULL;
    free(doc);
    json_t *t = root ? json_array_get(json_object_get(root, "tenants"), 0) : NULL;
    struct policy_set *set = t ? policy_compile_tenant(t, err, sizeof err) : NULL;
    json_decref(root);
    if (!set) {
        log_warn("quarantine release id=%s: rules after quarantine not run: %s", it->id, t ? err : "no tenant");
        return QUARANTINE_AFTER_DELIVER;
    }
    struct analysis *a = mime_analyse(msg->ptr ? msg->ptr : "", msg->len, NULL);
    enum quarantine_after after = QUARANTINE_AFTER_DELIVER;
    struct policy_result res;
    memset(&res, 0, sizeof res);
    const char *rcpt = it->rcpt;
    struct policy_envelope penv = {.sender = it->sender,
                                   .client_ip = it->client_ip,
                                   .rcpts = &rcpt,
                                   .nrcpts = 1,
                                   .direction = it->direction && strcmp(it->direction, "outbound") == 0
                                                    ? POLICY_OUTBOUND
                                                    : POLICY_INBOUND,
                                   .release = true,
                                   .resume_after = it->rule_order};
    if (!a)
        goto out;
    restore_verdict(a, it);
    if (policy_evaluate(set, a, &penv, &res) < 0 || res.nrcpts != 1)
        goto out;
    const struct policy_disposition *d = &res.rcpts[0];
    const char *rule = d->intercept_rule ? d->intercept_rule : "?";
    if (d->intercept == POLICY_INTERCEPT_DELETE) {
        snprintf(why, whysz, "deleted by the rule \"%s\" after the release", rule);
        after = QUARANTINE_AFTER_STOP;
        goto out;
    }
    if (policy_disposition_modifies(d)) {
        struct buf out;
        buf_init(&out, msg->max);
        if (policy_apply_modifications(d, a, msg->ptr ? msg->ptr : "", msg->len, &out, err, sizeof err) == 0) {
            struct buf old = *msg;
            *msg = out;
            buf_free(&old);
        } else {
            log_warn("quarantine release id=%s: modification skipped: %s", it->id, err);
        }
    }
    if (d->intercept == POLICY_INTERCEPT_QUARANTINE) {
        char id[STORE_QUARANTINE_ID_LEN + 1];
        struct quarantine_put_info info = {.company_id = it->company_id,
                                           .qid = it->qid,
                                           .rcpt = it->rcpt,
                                           .sender = it->sender,
                                           .rule = d->intercept_rule,
                                           .rule_order = d->intercept_order,
                                           .reason = d->intercept_rule,
                                           .detections = it->detections,
                                           .scan = it->scan,
                                           .direction = it->direction,
                                           .orcpt = it->orcpt,
                                           .envid = it->envid,
                                           .client_ip = it->client_ip,
                                           .helo = it->helo,
                                           .smtputf8 = it->smtputf8,
                                           .eightbit = it->eightbit};
        if (quarantine_put(qp->q, &info, msg->ptr ? msg->ptr : "", msg->len, id, err, sizeof err) !=
            QUARANTINE_OK) {
            /* keep the administrator's decision rather than lose the copy */
            log_error("quarantine release id=%s: quarantining again failed (%s): delivered", it->id, err);
            goto out;
        }
        snprintf(why, whysz, "quarantined again by the rule \"%s\" after the release (id %s)", rule, id);
        after = QUARANTINE_AFTER_STOP;
        goto out;
    }
    if (d->intercept == POLICY_INTERCEPT_CHANGE_RECIPIENT && d->new_recipient && env->nrcpts == 1) {
        free(env->rcpts[0]);
        env->rcpts[0] = xstrdup(d->new_recipient);
        if (env->orcpts) {
            free(env->orcpts[0]);
            env->orcpts[0] = NULL;
        }
    }
out:
    policy_result_free(&res);
    analysis_free(a);
    policy_set_unref(set);
    return after;
}
