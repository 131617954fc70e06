/*
 * detect_social.c - social engineering: header anomalies typical of targeted
 * attacks (docs/detection.md "Social engineering").
 *
 *   detect_social_run   the detector (detect_int.h); lists from detect_ident.c
 *
 * Signals (weights add up; a detection needs SOCIAL_REPORT, so a single weak
 * signal never reports on its own):
 *   internal-display-name  an own-domain address or domain in the display
 *                          name of an external sender                   0.45
 *   display-address        another address in the display name          0.3
 *   helo-impersonation     the client that handed us the mail named
 *                          itself in an own domain (topmost Received)    0.4
 *   own-domain-from        own domain in From on inbound mail whose
 *                          envelope sender is foreign                    0.25
 *   envelope-mismatch      From and envelope sender (Return-Path) in
 *                          different organisations                      0.15
 *   reply-to-mismatch      Reply-To in another organisation than From    0.15
 *   mass-urgent            many recipients (envelope or To+Cc >= 10), not
 *                          a reply, urgent language (bec-phrases.txt
 *                          [urgency])                                   0.4
 * The name of the detection is the strongest signal's. Moat keeps no sender
 * history in the detectors, so "first-time sender" is approximated by "not a
 * reply" (no In-Reply-To/References). Outbound mail is not judged.
 */
#include "core/core.h"

#include "detect/detect_int.h"

#define SOCIAL_REPORT 0.4
#define SOCIAL_MANY_RCPTS 10

struct social {
    double sum, best;
    const char *name;
    struct buf why;
};

static void add(struct social *s, const char *name, double w, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void add(struct social *s, const char *name, double w, const char *fmt, ...)
{
    char t[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t, sizeof t, fmt, ap);
    va_end(ap);
    s->sum += w;
    if (w > s->best) {
        s->best = w;
        s->name = name;
    }
    buf_printf(&s->why, "%s%s", s->why.len ? "; " : "", t);
}

static const char *header(const struct analysis *a, const char *name)
{
    for (size_t i = 0; i < a->nheaders; i++)
        if (a->headers[i].name && strcasecmp(a->headers[i].name, name) == 0)
            return a->headers[i].value ? a->headers[i].value : "";
    return NULL;
}

/* display_domain - an own domain named in the display name ("ceo@example.test",
 * "Example.test IT desk"): the domain, or NULL */
static const char *display_domain(const char *name, const struct detect_context *ctx)
{
    char low[IDENT_MAX_NAME];
    size_t n = strnlen(name, sizeof low - 1);
    for (size_t i = 0; i < n; i++)
        low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    low[n] = '\0';
    for (size_t i = 0; i < ctx->nown_domains; i++) {
        const char *d = ctx->own_domains[i];
        size_t dl = d ? strlen(d) : 0;
        if (dl < 4)
            continue;
        for (const char *p = strstr(low, d); p; p = strstr(p + 1, d)) {
            char before = p == low ? ' ' : p[-1], after = p[dl];
            bool lb = !((before >= 'a' && before <= 'z') || (before >= '0' && before <= '9') || before == '-');
            bool rb = !((after >= 'a' && after <= 'z') || (after >= '0' && after <= '9') || after == '-');
            if (lb && rb)
                return d;
        }
    }
    return NULL;
}

/* display_same_org - the domain after '@' in a display name is in fdom's organisation */
static bool display_same_org(const char *p, const char *fdom)
{
    char d[256];
    size_t n = 0;
    while (p[n] && n + 1 < sizeof d && p[n] != ' ' && p[n] != '>' && p[n] != ')' && p[n] != '"' && p[n] != '\'')
        n++;
    memcpy(d, p, n);
    d[n] = '\0';
    return ident_same_org(d, fdom);
}

/* helo_of - the name after "from " in a Received value, into out */
static bool helo_of(const char *rcv, char *out, size_t outsz)
{
    while (*rcv == ' ' || *rcv == '\t')
        rcv++;
    if (strncasecmp(rcv, "from ", 5) != 0)
        return false;
    rcv += 5;
    while (*rcv == ' ')
        rcv++;
    size_t n = 0;
    while (rcv[n] && rcv[n] != ' ' && rcv[n] != '(' && rcv[n] != ';' && n + 1 < outsz) {
        char c = rcv[n];
        out[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    out[n] = '\0';
    return n > 0;
}

void detect_social_run(struct analysis *a, const char *msg, size_t len, const struct detect_context *ctx)
{
    (void)msg;
    (void)len;
    if (ctx->outbound)
        return;
    struct social s = {.sum = 0};
    buf_init(&s.why, 2500);
    const struct mime_address *from = a->nfrom ? &a->from[0] : NULL;
    const char *faddr = from && from->address ? from->address : "";
    const char *fdom = ident_domain(faddr);
    bool external = *fdom && !ident_is_own(ctx, fdom);
    const char *env = ctx->mail_from && *ctx->mail_from
                          ? ident_domain(ctx->mail_from)
                          : a->nreturn_path && a->return_path[0].address ? ident_domain(a->return_path[0].address) : "";
    bool env_foreign = *env && !ident_is_own(ctx, env);

    if (from && from->name && *from->name) {
        const char *dd = external ? display_domain(from->name, ctx) : NULL;
        const char *at = strchr(from->name, '@');
        if (dd)
            add(&s, "internal-display-name", 0.45, "display name '%s' names own domain %s on external address %s",
                from->name, dd, faddr);
        else if (at && at != from->name && at[1] && !strcasestr(from->name, faddr) && !display_same_org(at + 1, fdom))
            add(&s, "display-address", 0.3, "display name '%s' shows another address than the real one %s",
                from->name, faddr);
    }
    if (ctx->nown_domains) {
        const char *top = header(a, "Received");
        char helo[256];
        if (top && helo_of(top, helo, sizeof helo) && ident_domain_in(helo, ctx->own_domains, ctx->nown_domains) &&
            env_foreign)
            add(&s, "helo-impersonation", 0.4, "the sending client named itself %s (own domain) in Received", helo);
        if (!external && *fdom && env_foreign)
            add(&s, "own-domain-from", 0.25, "own domain in From %s on inbound mail with envelope sender domain %s",
                faddr, env);
    }
    if (*fdom && *env && !ident_same_org(fdom, env) && external)
        add(&s, "envelope-mismatch", 0.15, "From domain %s differs from envelope sender domain %s", fdom, env);
    const char *rdom = a->nreply_to && a->reply_to[0].address ? ident_domain(a->reply_to[0].address) : "";
    if (*rdom && *fdom && !ident_same_org(rdom, fdom))
        add(&s, "reply-to-mismatch", 0.15, "Reply-To domain %s differs from From domain %s", rdom, fdom);
    size_t nrcpt = ctx->nrcpt > a->nto + a->ncc ? ctx->nrcpt : a->nto + a->ncc;
    if (nrcpt >= SOCIAL_MANY_RCPTS && !header(a, "In-Reply-To") && !header(a, "References")) {
        char *norm = xmalloc(IDENT_MAX_TEXT);
        size_t n = ident_subject_text(a, norm, IDENT_MAX_TEXT);
        struct buf w;
        buf_init(&w, 500);
        if (ident_phrases(norm, n, IDENT_PHRASE_URGENCY, &w, NULL) > 0)
            add(&s, "mass-urgent", 0.4, "%zu recipients, not a reply, urgent language %s", nrcpt, buf_cstr(&w));
        buf_free(&w);
        free(norm);
    }
    if (s.sum >= SOCIAL_REPORT && s.name)
        analysis_add_detection(a, "social_engineering", s.name, s.sum > 1 ? 1 : s.sum, buf_cstr(&s.why));
    buf_free(&s.why);
}
