/*
 * fuzz_policy.c - libFuzzer target for the rule engine (src/policy/): the
 * input bytes drive a generator of a tenant document (up to 12 rules with
 * every criterion family and action, sender lists, scopes drawn from pools
 * plus bytes of the input), an analysis (detections, attachments with
 * archive members, flags, spam levels, texts that may be invalid UTF-8) and
 * an envelope (1..6 recipients, either direction, quarantine release).
 * Property: compilation either fails with a message or gives a set whose
 * evaluation never crashes and yields exactly one valid intercept per
 * recipient (a change of recipient always with its address; an intercept
 * always names its rule; the trace follows the execution order).
 */
#include "core/core.h"

#include <jansson.h>

#include "fuzz.h"
#include "policy/policy.h"

struct gen {
    const uint8_t *p;
    size_t n, i;
};

static unsigned g_byte(struct gen *g)
{
    return g->i < g->n ? g->p[g->i++] : 0;
}

static unsigned g_pick(struct gen *g, unsigned n)
{
    return n ? g_byte(g) % n : 0;
}

static bool g_bool(struct gen *g)
{
    return g_byte(g) & 1;
}

/* g_text - up to max raw input bytes (any bytes, NUL-terminated copy) */
static char *g_text(struct gen *g, size_t max)
{
    size_t n = g_pick(g, (unsigned)max + 1);
    if (n > g->n - g->i)
        n = g->n - g->i;
    char *s = xmalloc(n + 1);
    memcpy(s, g->p + g->i, n);
    s[n] = '\0';
    g->i += n;
    return s;
}

#define PICK(g, arr) (arr)[g_pick((g), sizeof(arr) / sizeof *(arr))]

static const char *const ADDRS[] = {"a@acme.test",   "B@ACME.TEST",   "c@xn--bcher-kva.test",
                                    "d@bücher.test", "e@other.test",  "*@acme.test",
                                    "*@other.test",  "*@Bücher.test", "x@evil.test"};
static const char *const SENDERS[] = {"a@acme.test", "s@other.test",  "x@evil.test", "",     "<q@other.test>",
                                      "weird",       "u@bücher.test", "@",           "a@b@c"};
static const char *const LIST_ENTRIES[] = {"*@evil.test",         "x@evil.test", "203.0.113.0/24",
                                           "2001:db8::/32",       "192.0.2.1",   "*@other.test",
                                           "::ffff:10.0.0.0/104", "0.0.0.0/0"};
static const char *const IPS[] = {"203.0.113.5", "2001:db8::1", "192.0.2.1", "::ffff:10.1.2.3", "bogus", ""};
static const char *const EXTS[] = {"exe", "zip", "js", "pdf", "docm", "tar.gz"};
static const char *const NAMES[] = {"*.exe", "invoice*", "?", "*", "a[b]c(d).*", "**?*?**", "請求書*.pdf"};
static const char *const TYPES[] = {"executable",   "script", "archive", "document",
                                    "office_macro", "pdf",    "image",   "audio",
                                    "video",        "html",   "text",    "disk_image"};
static const char *const PATTERNS[] = {"(?i)invoice", "請求書",       "^From: .*evil",    "x+y",     "a|b|c",
                                       "\\d{3,5}",    "(?i)ｔｅｓｔ", "[[:alpha:]]+end$", "inv(oice"};
static const char *const FIELDS[] = {"subject", "body", "headers", "attachments"};
static const char *const INTERCEPTS[] = {"none", "delete", "deliver_now", "quarantine", "change_recipient"};
static const char *const LEVELS[] = {"lowest", "low", "moderate", "high", "highest"};
static const char *const BEC[] = {"engine", "writing_style", "probable"};
static const char *const SCANX[] = {"archive_limits", "encrypted", "malformed", "scan_failure"};
static const char *const CATS[] = {
    "virus",   "spam",           "phishing", "graymail", "bec", "web_reputation", "social_engineering",
    "content", "scan_exclusion", "other"};
static const char *const DNAMES[] = {"Eicar",
                                     "Heuristics.Macro",
                                     "Heuristics.Executable",
                                     "Heuristics.RiskyType",
                                     "Heuristics.HTMLSmuggling",
                                     "engine",
                                     "probable",
                                     "writing_style",
                                     "x"};
static const char *const VTYPES[] = {"cleanable", "mass_mailing", "non_mass_mailing", "bogus"};
static const char *const MIMES[] = {"application/zip",
                                    "application/x-dosexec",
                                    "text/plain",
                                    "image/png",
                                    "application/pdf; charset=binary",
                                    "application/vnd.ms-excel.sheet.macroEnabled.12",
                                    "video/mp4",
                                    "text/html",
                                    NULL};
static const char *const FILES[] = {"a.exe",   "Invoice.ZIP", "請求書.pdf", "noext",
                                    ".hidden", "x.",          "dir/y.js",   ""};
static const char *const FLAGS[] = {"archive_limits", "encrypted", "malformed", "other"};

static json_t *g_strings(struct gen *g, const char *const *pool, size_t npool, size_t max)
{
    json_t *a = json_array();
    size_t n = g_pick(g, (unsigned)max + 1);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(pool[g_pick(g, (unsigned)npool)]));
    return a;
}

static json_t *g_who(struct gen *g, bool org_ok)
{
    switch (g_pick(g, 4)) {
    case 0:
        return json_string("any");
    case 1:
        return json_string(org_ok ? "organization" : "any");
    default:
        return g_strings(g, ADDRS, sizeof ADDRS / sizeof *ADDRS, 4);
    }
}

static json_t *g_policy(struct gen *g, int i)
{
    json_t *p = json_object(), *c = json_object(), *a = json_object();
    char name[32];
    snprintf(name, sizeof name, "r%d", i);
    json_object_set_new(p, "name", json_string(name));
    json_object_set_new(p, "direction", json_string(g_pick(g, 4) == 0 ? "outbound" : "inbound"));
    json_object_set_new(p, "enabled", json_boolean(g_pick(g, 5) != 0));
    if (g_bool(g))
        json_object_set_new(p, "recipients", g_who(g, true));
    if (g_bool(g))
        json_object_set_new(p, "senders", g_who(g, true));
    if (g_bool(g))
        json_object_set_new(p, "exclude_recipients", g_strings(g, ADDRS, sizeof ADDRS / sizeof *ADDRS, 2));
    if (g_bool(g))
        json_object_set_new(p, "exclude_senders", g_strings(g, ADDRS, sizeof ADDRS / sizeof *ADDRS, 2));
    unsigned fam = g_byte(g);
    if (fam & 1) {
        json_t *v = json_object();
        if (g_bool(g))
            json_object_set_new(v, "types", g_strings(g, VTYPES, 3, 3));
        json_object_set_new(v, "heuristics", json_boolean(g_bool(g)));
        json_object_set_new(v, "macros", json_boolean(g_bool(g)));
        json_object_set_new(v, "scripts", json_boolean(g_bool(g)));
        json_object_set_new(v, "deep_analysis", json_boolean(g_bool(g)));
        json_object_set_new(c, "virus", v);
    }
    if (fam & 2) {
        json_t *s = json_object();
        if (g_bool(g))
            json_object_set_new(s, "level", json_string(PICK(g, LEVELS)));
        json_object_set_new(s, "phishing", json_boolean(g_bool(g)));
        json_object_set_new(s, "graymail", json_boolean(g_bool(g)));
        json_object_set_new(s, "web_reputation", json_boolean(g_bool(g)));
        json_object_set_new(s, "social_engineering", json_boolean(g_bool(g)));
        json_object_set_new(s, "bec", g_strings(g, BEC, 3, 3));
        json_object_set_new(c, "spam", s);
    }
    if (fam & 4) {
        json_t *o = json_object();
        json_object_set_new(o, "attachment_extensions", g_strings(g, EXTS, sizeof EXTS / sizeof *EXTS, 3));
        json_object_set_new(o, "attachment_names", g_strings(g, NAMES, sizeof NAMES / sizeof *NAMES, 3));
        json_object_set_new(o, "attachment_types", g_strings(g, TYPES, sizeof TYPES / sizeof *TYPES, 3));
        if (g_bool(g))
            json_object_set_new(o, "attachment_size_over", json_integer(g_byte(g) * 100));
        if (g_bool(g))
            json_object_set_new(o, "message_size_over", json_string(g_bool(g) ? "1k" : "10M"));
        if (g_bool(g))
            json_object_set_new(o, "recipients_over", json_integer(g_pick(g, 5)));
        json_object_set_new(o, "password_protected", json_boolean(g_bool(g)));
        json_t *kws = json_array();
        size_t nk = g_pick(g, 4);
        for (size_t k = 0; k < nk; k++) {
            json_t *kw = json_object();
            if (g_pick(g, 4) == 0) {
                /* a literal from the input, escaped so it stays a valid pattern */
                char *t = g_text(g, 12), esc[64];
                size_t o2 = 0;
                for (const char *q = t; *q && o2 < sizeof esc - 3; q++)
                    if ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9'))
                        esc[o2++] = *q;
                esc[o2] = '\0';
                free(t);
                json_object_set_new(kw, "pattern", json_string(o2 ? esc : "zz"));
            } else {
                json_object_set_new(kw, "pattern", json_string(PICK(g, PATTERNS)));
            }
            if (g_bool(g))
                json_object_set_new(kw, "in", g_strings(g, FIELDS, 4, 3));
            json_array_append_new(kws, kw);
        }
        json_object_set_new(o, "keywords", kws);
        json_object_set_new(c, "content", o);
    }
    if (fam & 8)
        json_object_set_new(c, "scan_exclusion", g_strings(g, SCANX, 4, 3));
    json_object_set_new(p, "criteria", c);
    const char *ic = PICK(g, INTERCEPTS);
    json_object_set_new(a, "intercept", json_string(ic));
    if (strcmp(ic, "change_recipient") == 0 && g_pick(g, 8))
        json_object_set_new(a, "change_recipient", json_string("redirect@acme.test"));
    json_object_set_new(a, "clean", json_boolean(g_bool(g)));
    json_object_set_new(a, "delete_attachments", json_boolean(g_bool(g)));
    if (g_bool(g))
        json_object_set_new(a, "tag_subject", json_string(g_bool(g) ? "Spam:" : "[!]"));
    json_object_set_new(a, "tag_skip_signed", json_boolean(g_bool(g)));
    if (g_bool(g))
        json_object_set_new(a, "x_header", json_pack("{s:s,s:s}", "name", "X-Moat-Rule", "value", name));
    if (g_bool(g))
        json_object_set_new(a, "stamp", json_pack("{s:s,s:n}", "text", "stamp", "html"));
    if (g_bool(g))
        json_object_set_new(
            a, "notify",
            json_pack("[{s:s,s:[s,s]}]", "template", "Rule triggered", "to", "admin", "recipient"));
    if (g_bool(g))
        json_object_set_new(a, "bcc", json_string("audit@acme.test"));
    json_object_set_new(p, "actions", a);
    return p;
}

/* g_analysis - a message; strings are owned by keep[] */
struct owned {
    char *s[64];
    size_t n;
};

static char *own(struct owned *o, char *s)
{
    if (o->n < sizeof o->s / sizeof *o->s)
        o->s[o->n++] = s;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gen g = {data, size, 0};
    json_t *t = json_object();
    json_object_set_new(t, "company_id", json_string("acme"));
    json_object_set_new(t, "admin_email", json_string("admin@acme.test"));
    json_object_set_new(t, "domains",
                        json_pack("[{s:s},{s:s}]", "name", "acme.test", "name", "xn--bcher-kva.test"));
    json_t *pols = json_array();
    int np = (int)g_pick(&g, 13);
    for (int i = 0; i < np; i++)
        json_array_append_new(pols, g_policy(&g, i));
    json_object_set_new(t, "policies", pols);
    json_object_set_new(t, "approved_senders", g_strings(&g, LIST_ENTRIES, 8, 3));
    json_object_set_new(t, "blocked_senders", g_strings(&g, LIST_ENTRIES, 8, 3));
    char err[512];
    struct policy_set *set = policy_compile_tenant(t, err, sizeof err);
    json_decref(t);
    if (!set) {
        if (!err[0])
            fatal("fuzz_policy: compile failed without a message");
        return 0;
    }

    struct owned o = {.n = 0};
    struct analysis a;
    struct detection det[8];
    struct mime_attachment att[4];
    struct mime_member mem[4][3];
    struct mime_header hdr[3];
    struct mime_flag fl[3];
    memset(&a, 0, sizeof a);
    memset(att, 0, sizeof att);
    memset(mem, 0, sizeof mem);
    a.subject = own(&o, g_text(&g, 40));
    a.text = own(&o, g_text(&g, 200));
    a.text_len = strlen(a.text);
    a.size = g_byte(&g) * 97;
    a.spam_levels = g_byte(&g);
    a.signed_pgp = g_bool(&g);
    a.nheaders = g_pick(&g, 4);
    for (size_t i = 0; i < a.nheaders; i++)
        hdr[i] = (struct mime_header){(char *)"From", own(&o, g_text(&g, 30))};
    a.headers = hdr;
    a.ndetections = g_pick(&g, 9);
    for (size_t i = 0; i < a.ndetections; i++) {
        det[i] = (struct detection){(char *)PICK(&g, CATS), (char *)PICK(&g, DNAMES), g_byte(&g) / 255.0,
                                    (char *)PICK(&g, FILES), g_bool(&g) ? (char *)PICK(&g, VTYPES) : NULL};
    }
    a.detections = det;
    a.nattachments = g_pick(&g, 5);
    for (size_t i = 0; i < a.nattachments; i++) {
        struct mime_attachment *x = &att[i];
        x->filename = g_bool(&g) ? (char *)PICK(&g, FILES) : NULL;
        x->extension = g_bool(&g) ? (char *)PICK(&g, EXTS) : NULL;
        x->true_type = (char *)PICK(&g, MIMES);
        x->size = g_byte(&g) * 1000u;
        x->encrypted = g_bool(&g);
        x->macros = g_bool(&g);
        if (g_bool(&g)) {
            x->data = (unsigned char *)own(&o, g_text(&g, 60));
            x->size = strlen((char *)x->data);
        }
        x->members = mem[i];
        x->nmembers = g_pick(&g, 4);
        for (size_t j = 0; j < x->nmembers; j++) {
            mem[i][j].path = (char *)PICK(&g, FILES);
            mem[i][j].true_type = (char *)PICK(&g, MIMES);
            mem[i][j].encrypted = g_bool(&g);
            mem[i][j].size = g_byte(&g);
        }
    }
    a.attachments = att;
    a.nflags = g_pick(&g, 4);
    for (size_t i = 0; i < a.nflags; i++)
        fl[i] = (struct mime_flag){(char *)PICK(&g, FLAGS), (char *)"r"};
    a.flags = fl;

    const char *rcpts[6];
    struct policy_envelope env = {
        .sender = PICK(&g, SENDERS),
        .client_ip = g_bool(&g) ? PICK(&g, IPS) : NULL,
        .rcpts = rcpts,
        .nrcpts = 1 + g_pick(&g, 6),
        .direction = g_pick(&g, 3) == 0 ? POLICY_OUTBOUND : POLICY_INBOUND,
        .release = g_pick(&g, 4) == 0,
        .resume_after = g_pick(&g, 14),
    };
    for (size_t i = 0; i < env.nrcpts; i++)
        rcpts[i] = PICK(&g, ADDRS);
    (void)policy_sender_blocked(set, env.sender, env.client_ip);

    struct policy_result res;
    if (policy_evaluate(set, &a, &env, &res) != 0 || res.nrcpts != env.nrcpts)
        fatal("fuzz_policy: evaluation failed");
    for (size_t i = 0; i < res.nrcpts; i++) {
        const struct policy_disposition *d = &res.rcpts[i];
        if ((unsigned)d->intercept > POLICY_INTERCEPT_CHANGE_RECIPIENT)
            fatal("fuzz_policy: bad intercept");
        if ((d->intercept == POLICY_INTERCEPT_CHANGE_RECIPIENT) != (d->new_recipient != NULL))
            fatal("fuzz_policy: change_recipient without its address");
        if ((d->intercept != POLICY_INTERCEPT_NONE) != (d->intercept_rule != NULL))
            fatal("fuzz_policy: intercept without its rule");
        unsigned last = 0;
        size_t nterm = 0;
        for (size_t k = 0; k < d->ntrace; k++) {
            const struct policy_trace *tr = &d->trace[k];
            if (tr->order && tr->order <= last)
                fatal("fuzz_policy: trace out of execution order");
            last = tr->order ? tr->order : last;
            if (tr->outcome == POLICY_MATCHED && tr->intercept != POLICY_INTERCEPT_NONE)
                nterm++;
        }
        if (nterm > 1 || (nterm == 1) != (d->intercept != POLICY_INTERCEPT_NONE))
            fatal("fuzz_policy: not exactly one intercept");
        if (!policy_disposition_same(d, d))
            fatal("fuzz_policy: disposition differs from itself");
    }
    policy_result_free(&res);
    policy_set_unref(set);
    for (size_t i = 0; i < o.n; i++)
        free(o.s[i]);
    return 0;
}
