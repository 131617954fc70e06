/*
 * detect_bec.c - business email compromise: someone posing as an executive
 * or a partner to get money moved (docs/detection.md "BEC").
 *
 *   detect_bec_init / _run / _shutdown   the detector (detect_int.h)
 *
 * Identity signals (each with a weight):
 *   a high-profile user's display name on an external address       0.6
 *   a high-profile user's own address with a foreign envelope sender 0.4
 *   a sender domain that looks like an own or high-profile domain    0.5
 *   Reply-To diverting to a look-alike domain                        0.5
 *   Reply-To diverting to a free-mail domain (data/lists/freemail.txt) 0.35
 *   a free-mail sender (only counts together with pressure language) 0.2
 * Pressure: the summed weights of data/lists/bec-phrases.txt phrases in the
 * subject and text (payment, urgency, secrecy; English and Japanese).
 *
 * Detections (the names the policy criterion "bec" lists):
 *   engine         identity >= 0.5 and pressure >= 0.5 (score 0.75..1)
 *   probable       identity >= 0.3, or any identity with pressure >= 0.5
 *   writing_style  mail under a high-profile user's name or address whose
 *                  text is far from the user's style profile
 *                  (detect_style.c; ctx->style_profiles)
 * Outbound mail (ctx->outbound) is not judged. Without tenant data only the
 * Reply-To and free-mail signals can fire.
 */
#include "core/core.h"

#include "detect/detect_int.h"

#define BEC_ENGINE_IDENTITY 0.5
#define BEC_ENGINE_PRESSURE 0.5
#define BEC_PROBABLE_IDENTITY 0.3

static char lists_err[300];
static bool lists_ok;

int detect_bec_init(const struct moat_config *cfg, char *err, size_t errsz)
{
    (void)cfg;
    if (lists_ok)
        return 0;
    if (ident_lists_load(lists_err, sizeof lists_err) < 0) {
        snprintf(err, errsz, "BEC lists: %s", lists_err);
        return -1;
    }
    lists_ok = true;
    return 0;
}

void detect_bec_shutdown(void)
{
    ident_lists_free();
    lists_ok = false;
}

struct bec_identity {
    double weight;
    struct buf why;
    const struct detect_hp_user *user; /* whose name or address the mail uses */
    bool user_by_address;
};

static void add_signal(struct bec_identity *id, double w, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add_signal(struct bec_identity *id, double w, const char *fmt, ...)
{
    char t[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t, sizeof t, fmt, ap);
    va_end(ap);
    id->weight += w;
    buf_printf(&id->why, "%s%s", id->why.len ? "; " : "", t);
}

/* envelope_domain - the envelope sender's domain (context, else Return-Path) */
static const char *envelope_domain(const struct analysis *a, const struct detect_context *ctx)
{
    if (ctx->mail_from && *ctx->mail_from)
        return ident_domain(ctx->mail_from);
    if (a->nreturn_path && a->return_path[0].address)
        return ident_domain(a->return_path[0].address);
    return "";
}

/* identity - every identity signal of the message into id */
static void identity(const struct analysis *a, const struct detect_context *ctx, struct bec_identity *id)
{
    const struct mime_address *from = a->nfrom ? &a->from[0] : NULL;
    const char *faddr = from && from->address ? from->address : "";
    const char *fdom = ident_domain(faddr);
    bool external = *fdom && !ident_is_own(ctx, fdom);
    for (size_t i = 0; from && from->name && i < ctx->nhp_users; i++) {
        const struct detect_hp_user *u = &ctx->hp_users[i];
        if (!u->name || !ident_name_match(from->name, u->name))
            continue;
        if (u->address && strcasecmp(u->address, faddr) == 0)
            break; /* the user's own address: judged below */
        if (external) {
            add_signal(id, 0.6, "display name '%s' of high-profile user on external address %s%s", from->name,
                       faddr, ident_freemail(fdom) ? " (free mail)" : "");
            id->user = u;
        }
        break;
    }
    for (size_t i = 0; *faddr && i < ctx->nhp_users && !id->user; i++) {
        const struct detect_hp_user *u = &ctx->hp_users[i];
        if (!u->address || strcasecmp(u->address, faddr) != 0)
            continue;
        id->user = u;
        id->user_by_address = true;
        const char *env = envelope_domain(a, ctx);
        if (*env && !ident_same_org(env, fdom) && !ident_is_own(ctx, env))
            add_signal(id, 0.4, "address %s of high-profile user with foreign envelope sender domain %s", faddr, env);
    }
    const char *like = ident_lookalike(fdom, ctx->own_domains, ctx->nown_domains);
    const char *whose = "own";
    if (!like) {
        like = ident_lookalike(fdom, ctx->hp_domains, ctx->nhp_domains);
        whose = "high-profile";
    }
    if (like && !ident_freemail(fdom))
        add_signal(id, 0.5, "sender domain %s looks like %s domain %s", fdom, whose, like);
    const struct mime_address *rt = a->nreply_to ? &a->reply_to[0] : NULL;
    const char *rdom = rt && rt->address ? ident_domain(rt->address) : "";
    if (*rdom && *fdom && !ident_same_org(rdom, fdom)) {
        const char *rlike = ident_lookalike(rdom, ctx->own_domains, ctx->nown_domains);
        if (!rlike)
            rlike = ident_lookalike(rdom, ctx->hp_domains, ctx->nhp_domains);
        if (rlike)
            add_signal(id, 0.5, "Reply-To %s diverts to a look-alike of %s (From %s)", rt->address, rlike, faddr);
        else if (ident_freemail(rdom))
            add_signal(id, 0.35, "Reply-To %s diverts to free-mail domain %s (From %s)", rt->address, rdom, faddr);
    }
}

/* style_check - the writing_style detection for mail under a user's identity */
static void style_check(struct analysis *a, const struct detect_context *ctx, const struct detect_hp_user *u)
{
    const struct style_profile *p = NULL;
    for (size_t i = 0; u->address && i < ctx->nstyle_profiles && !p; i++)
        if (ctx->style_profiles[i] && strcasecmp(style_profile_address(ctx->style_profiles[i]), u->address) == 0)
            p = ctx->style_profiles[i];
    if (!p || style_profile_messages(p) < STYLE_MIN_MESSAGES)
        return;
    struct style_sample *s = xmalloc(sizeof *s);
    style_sample_of(a, s);
    if (s->nchars >= STYLE_MIN_CHARS) {
        struct buf why;
        buf_init(&why, 1500);
        buf_printf(&why, "text under the identity of %s ", u->address);
        size_t mark = why.len;
        double d = style_distance(p, s, NULL);
        if (d > STYLE_THRESHOLD) {
            why.len = mark;
            buf_printf(&why, "has style distance %.2f (threshold %.2f) from the profile learnt from %u messages: ", d,
                       STYLE_THRESHOLD, style_profile_messages(p));
            style_distance(p, s, &why);
            double score = 0.5 + (d - STYLE_THRESHOLD);
            analysis_add_detection(a, "bec", "writing_style", score > 1 ? 1 : score, buf_cstr(&why));
        }
        buf_free(&why);
    }
    free(s);
}

void detect_bec_run(struct analysis *a, const char *msg, size_t len, const struct detect_context *ctx)
{
    (void)msg;
    (void)len;
    if (ctx->outbound)
        return;
    struct bec_identity id = {.weight = 0};
    buf_init(&id.why, 2000);
    identity(a, ctx, &id);
    const char *fdom = a->nfrom && a->from[0].address ? ident_domain(a->from[0].address) : "";
    char *norm = xmalloc(IDENT_MAX_TEXT);
    size_t n = ident_subject_text(a, norm, IDENT_MAX_TEXT);
    struct buf pw;
    buf_init(&pw, 600);
    size_t nphr = 0;
    double pressure = ident_phrases(norm, n, IDENT_PHRASE_PAYMENT | IDENT_PHRASE_URGENCY | IDENT_PHRASE_SECRECY,
                                    &pw, &nphr);
    free(norm);
    if (id.weight == 0 && pressure >= BEC_ENGINE_PRESSURE && ident_freemail(fdom))
        add_signal(&id, 0.2, "sender on free-mail domain %s", fdom);
    const char *name = NULL;
    double score = 0;
    if (id.weight >= BEC_ENGINE_IDENTITY && pressure >= BEC_ENGINE_PRESSURE) {
        name = "engine";
        score = 0.5 + 0.25 * (id.weight > 1 ? 1 : id.weight) + 0.25 * (pressure > 1 ? 1 : pressure);
    } else if (id.weight >= BEC_PROBABLE_IDENTITY || (id.weight > 0 && pressure >= BEC_ENGINE_PRESSURE)) {
        name = "probable";
        score = 0.2 + 0.3 * (id.weight > 1 ? 1 : id.weight) + 0.2 * (pressure > 1 ? 1 : pressure);
    }
    if (name) {
        if (nphr)
            buf_printf(&id.why, "; payment-pressure language %s (weight %.2f)", buf_cstr(&pw), pressure);
        analysis_add_detection(a, "bec", name, score, buf_cstr(&id.why));
    }
    if (id.user)
        style_check(a, ctx, id.user);
    buf_free(&pw);
    buf_free(&id.why);
}
