/*
 * detect_graymail.c - graymail: bulk mail the recipient once asked for
 * (newsletters, marketing, social-network notifications), which policy may
 * file away rather than block (docs/detection.md "Graymail").
 *
 *   detect_graymail_run   the detector (detect_int.h)
 *
 * Signals, each counted once with its weight:
 *   List-Unsubscribe 0.35 (+0.15 with List-Unsubscribe-Post one-click),
 *   Precedence: bulk/junk 0.3 (list 0.1), List-Id 0.15, a bulk-mailer
 *   fingerprint (ESP headers such as X-Mailgun-*, X-SES-Outgoing,
 *   Feedback-ID, X-MC-User, X-SG-EID, X-Campaign*, or an X-Mailer of a
 *   marketing tool) 0.35, a tracking pixel 0.25, unsubscribe wording or an
 *   unsubscribe link 0.25, a social-network sender domain 0.5.
 * A message is graymail when the sum reaches GRAY_REPORT (two signals at
 * least, except a social-network sender plus one more); the score is the
 * sum capped at 1. Discussion mailing lists (List-Post, or Mailman's
 * X-BeenThere) count only their marketing signals.
 * Names: social-notification (social-network sender), marketing (an ESP
 * fingerprint or a tracking pixel), else newsletter.
 *
 * Tracking pixels: remote images whose URL looks like an open tracker
 * (/open, /track, pixel, beacon, /o/..., .gif with an id query) or <img>
 * tags of 1x1 / hidden size in the raw HTML (plain or quoted-printable; a
 * base64 HTML part is seen only through its URLs).
 */
#include "core/core.h"

#include "detect/detect_int.h"

#define GRAY_REPORT 0.5
#define GRAY_RAW_MAX (2 * 1024 * 1024) /* raw bytes searched for 1x1 <img> */

static const char *const social_domains[] = {
    "facebookmail.com", "facebook.com",  "linkedin.com", "twitter.com",  "x.com",      "instagram.com",
    "line.me",          "tiktok.com",    "pinterest.com", "redditmail.com", "reddit.com", "quora.com",
    "tumblr.com",       "snapchat.com",  "discord.com",  "threads.net",  "meetup.com", "nextdoor.com",
    "mixi.jp",          "ameba.jp",      "note.com",     "youtube.com",  "plus.google.com", "myspace.com",
    "xing.com",         "vk.com",        "mastodon.social", "bsky.app", "flickr.com", "strava.com",
};

/* header names (prefix match when ending in '*') of e-mail service providers
 * and marketing tools */
static const char *const esp_headers[] = {
    "X-Mailgun-*",   "X-SES-Outgoing", "X-SES-*",      "Feedback-ID",   "X-MC-User",     "X-Mandrill-User",
    "X-SG-EID",      "X-SG-ID",        "X-SendGrid-*", "X-Campaign*",   "X-CampaignID",  "X-Mailjet-*",
    "X-MJ-*",        "X-Marketo*",     "X-MarketoID",  "X-SFMC-Stack",  "X-Report-Abuse", "X-CSA-Complaints",
    "X-MSFBL",       "X-Emarsys*",     "X-rpcampaign", "X-Newsletter*", "X-Bulkmail",    "X-Mailer-RecptId",
    "X-Klaviyo*",    "X-HubSpot*",     "X-Sib-*",      "X-Mailin-*",    "X-CMAE-*",      "X-Listmember",
    "X-ICPINFO",     "X-eC-messenger-mid", "X-Cuenote*", "X-Blastmail*", "X-MailPublisher*",
};
static const char *const bulk_mailers[] = {
    "mailchimp",   "sendinblue", "brevo",     "constant contact", "campaign monitor", "exacttarget",
    "salesforce marketing", "hubspot", "benchmark email", "blastmail", "配配メール", "willmail",
    "cuenote",     "mailpublisher", "acmailer", "eloqua", "responsys", "klaviyo", "icontact",
    "getresponse", "aweber",     "phplist",   "mailerlite", "sendy", "mautic", "mailpoet", "marketo",
    "emarsys",     "mailmagazine", "mag2", "まぐまぐ", "bownow", "synergy!", "pardot", "acoustic",
};
static const char *const unsub_words[] = {
    "unsubscribe", "opt out", "opt-out", "manage your preferences", "email preferences",
    "manage subscription", "配信停止", "配信解除", "購読解除", "配信を停止", "メール配信の停止",
    "配信の停止", "メルマガ", "メールマガジン", "配信設定",
};
static const char *const pixel_paths[] = {
    "/open",  "/track", "pixel", "beacon", "/o/", "/wf/open", "/e/o/", "/trk", "open.aspx", "/imp?",
    "/t.gif", "/o.gif", "spacer.gif", "/1x1", "mailtrack", "/op/",
};

static bool name_match(const char *h, const char *pat)
{
    size_t n = strlen(pat);
    if (pat[n - 1] == '*')
        return strncasecmp(h, pat, n - 1) == 0;
    return strcasecmp(h, pat) == 0;
}

static bool has_ci(const char *hay, size_t len, const char *needle)
{
    return core_memcasemem(hay, len, needle, strlen(needle)) != NULL;
}

struct gray {
    double sum;
    struct buf why;
};

static void add(struct gray *g, double w, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(struct gray *g, double w, const char *fmt, ...)
{
    char t[500];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t, sizeof t, fmt, ap);
    va_end(ap);
    g->sum += w;
    buf_printf(&g->why, "%s%s", g->why.len ? "; " : "", t);
}

/* raw_pixel - an <img> of width/height 0 or 1 in the raw message (plain or
 * quoted-printable HTML) */
static bool raw_pixel(const char *msg, size_t len)
{
    if (len > GRAY_RAW_MAX)
        len = GRAY_RAW_MAX;
    static const char *const sizes[] = {"width=\"1\"", "width=3d\"1\"", "width='1'", "width=1 ", "width=\"0\"",
                                        "width=3d\"0\"", "height=\"1\"", "height=3d\"1\"", "height=1 ",
                                        "height=\"0\"", "height=3d\"0\"", "width:1px", "width: 1px"};
    for (const char *p = msg; p && p + 4 < msg + len; p++) {
        p = memchr(p, '<', (size_t)(msg + len - p));
        if (!p || (size_t)(msg + len - p) < 4)
            break;
        if (strncasecmp(p + 1, "img", 3) != 0)
            continue;
        const char *end = memchr(p, '>', (size_t)(msg + len - p));
        size_t tl = end ? (size_t)(end - p) : (size_t)(msg + len - p);
        if (tl > 1000)
            tl = 1000;
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
            if (has_ci(p, tl, sizes[i]))
                return true;
    }
    return false;
}

void detect_graymail_run(struct analysis *a, const char *msg, size_t len, const struct detect_context *ctx)
{
    if (ctx->outbound)
        return;
    struct gray g = {.sum = 0};
    buf_init(&g.why, 2000);
    bool unsub = false, post = false, listid = false, discussion = false, esp = false, pixel = false;
    const char *prec = NULL, *esp_what = NULL;
    for (size_t i = 0; i < a->nheaders; i++) {
        const char *h = a->headers[i].name, *v = a->headers[i].value ? a->headers[i].value : "";
        if (!h)
            continue;
        if (strcasecmp(h, "List-Unsubscribe") == 0)
            unsub = true;
        else if (strcasecmp(h, "List-Unsubscribe-Post") == 0)
            post = true;
        else if (strcasecmp(h, "List-Id") == 0)
            listid = true;
        else if (strcasecmp(h, "List-Post") == 0 || strcasecmp(h, "X-BeenThere") == 0 ||
                 strcasecmp(h, "X-Mailman-Version") == 0)
            discussion = true;
        else if (strcasecmp(h, "Precedence") == 0 && !prec)
            prec = v;
        if (!esp) {
            for (size_t k = 0; k < sizeof esp_headers / sizeof *esp_headers; k++)
                if (name_match(h, esp_headers[k])) {
                    esp = true;
                    esp_what = h;
                    break;
                }
            if (!esp && (strcasecmp(h, "X-Mailer") == 0 || strcasecmp(h, "User-Agent") == 0))
                for (size_t k = 0; k < sizeof bulk_mailers / sizeof *bulk_mailers; k++)
                    if (has_ci(v, strlen(v), bulk_mailers[k])) {
                        esp = true;
                        esp_what = bulk_mailers[k];
                        break;
                    }
        }
    }
    if (unsub && !discussion)
        add(&g, post ? 0.5 : 0.35, "List-Unsubscribe%s header", post ? " with one-click List-Unsubscribe-Post" : "");
    else if (post)
        add(&g, 0.15, "List-Unsubscribe-Post header");
    if (prec && (has_ci(prec, strlen(prec), "bulk") || has_ci(prec, strlen(prec), "junk")))
        add(&g, 0.3, "Precedence: %.20s", prec);
    else if (prec && has_ci(prec, strlen(prec), "list") && !discussion)
        add(&g, 0.1, "Precedence: list");
    if (listid && !discussion)
        add(&g, 0.15, "List-Id header");
    if (esp)
        add(&g, 0.35, "bulk-mailer fingerprint %.60s", esp_what);
    const char *pixel_url = NULL;
    for (size_t i = 0; i < a->nurls && !pixel_url; i++) {
        const struct mime_url *u = &a->urls[i];
        if (!u->source || strcmp(u->source, "html_img") != 0 || !u->url)
            continue;
        for (size_t k = 0; k < sizeof pixel_paths / sizeof *pixel_paths && !pixel_url; k++) {
            const char *path = strchr(u->url + (strncmp(u->url, "http", 4) == 0 ? 8 : 0), '/');
            if (path && has_ci(path, strlen(path), pixel_paths[k]))
                pixel_url = u->url;
        }
    }
    if (pixel_url) {
        pixel = true;
        add(&g, 0.25, "tracking image %.120s", pixel_url);
    } else if (raw_pixel(msg, len)) {
        pixel = true;
        add(&g, 0.25, "1x1 or hidden remote image in the HTML");
    }
    const char *word = NULL;
    size_t tl = a->text ? a->text_len : 0;
    if (tl > IDENT_MAX_TEXT)
        tl = IDENT_MAX_TEXT;
    for (size_t k = 0; k < sizeof unsub_words / sizeof *unsub_words && !word && tl; k++)
        if (has_ci(a->text, tl, unsub_words[k]))
            word = unsub_words[k];
    for (size_t i = 0; i < a->nurls && !word; i++)
        if (a->urls[i].text && (has_ci(a->urls[i].text, strlen(a->urls[i].text), "unsubscribe") ||
                                strstr(a->urls[i].text, "配信停止") || strstr(a->urls[i].text, "配信解除")))
            word = a->urls[i].text;
    if (word && (!discussion || esp || pixel))
        add(&g, 0.25, "unsubscribe wording '%.60s'", word);
    const char *fdom = a->nfrom && a->from[0].address ? ident_domain(a->from[0].address) : "";
    const char *social = NULL;
    for (size_t k = 0; k < sizeof social_domains / sizeof *social_domains && !social; k++)
        if (ident_domain_in(fdom, &social_domains[k], 1))
            social = social_domains[k];
    if (social)
        add(&g, 0.5, "sender domain %s is a social network", fdom);
    if (g.sum >= GRAY_REPORT && (social ? g.sum > 0.5 : true)) {
        const char *name = social ? "social-notification" : esp || pixel ? "marketing" : "newsletter";
        analysis_add_detection(a, "graymail", name, g.sum > 1 ? 1 : g.sum, buf_cstr(&g.why));
    }
    buf_free(&g.why);
}
