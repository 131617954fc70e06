/*
 * policy_eval.c - evaluate a compiled policy set over one analysed message.
 *
 *   policy_evaluate           per-recipient dispositions (docs/policy.md)
 *   policy_result_free        frees a result
 *   policy_disposition_same   whether two recipients can share one copy
 *   policy_thread_done        frees the calling thread's scratch
 *
 * Work per message, whatever the number of rules: the facts (virus types
 * per engine, spam levels, detection families, attachment true-type
 * categories, sizes, flags) are folded into bit masks once; each keyword
 * field is scanned once with its direction-wide Vectorscan database, every
 * attachment and archive member name once with the names database, and
 * every extension is looked up once in the direction's sorted extension
 * table. Those scans mark a byte per rule. A rule is then a handful of mask
 * tests, computed at most once per message (recipients share it); only
 * its recipient/sender scope is per recipient (binary searches).
 *
 * Texts handed to Vectorscan must be valid UTF-8 (HS_FLAG_UTF8): mime/
 * guarantees it for the analysis strings, and anything else (attachment
 * bytes, an analysis built elsewhere) is cleaned first. Bounds: header
 * bytes POLICY_MAX_HEADER_SCAN, text attachments POLICY_MAX_ATTACH_SCAN each
 * and POLICY_MAX_ATTACH_SCAN_TOTAL together, removals per recipient
 * POLICY_MAX_REMOVALS.
 */
#include "policy/policy_int.h"

#include <ctype.h>

/* ---------------------------------------------------------------- true types */
struct type_map {
    const char *mime;
    unsigned bits;
};

#define B(x) (1u << (x))
static const struct type_map TYPE_EXACT[] = {
    {"application/x-dosexec", B(PT_EXECUTABLE)},
    {"application/x-executable", B(PT_EXECUTABLE)},
    {"application/x-pie-executable", B(PT_EXECUTABLE)},
    {"application/x-sharedlib", B(PT_EXECUTABLE)},
    {"application/x-mach-binary", B(PT_EXECUTABLE)},
    {"application/x-msdownload", B(PT_EXECUTABLE)},
    {"application/x-msi", B(PT_EXECUTABLE)},
    {"application/vnd.microsoft.portable-executable", B(PT_EXECUTABLE)},
    {"application/x-ms-shortcut", B(PT_EXECUTABLE)},
    {"application/java-archive", B(PT_EXECUTABLE) | B(PT_ARCHIVE)},
    {"application/x-java-applet", B(PT_EXECUTABLE)},
    {"application/x-elf", B(PT_EXECUTABLE)},
    {"text/x-shellscript", B(PT_SCRIPT)},
    {"application/x-shellscript", B(PT_SCRIPT)},
    {"application/x-sh", B(PT_SCRIPT)},
    {"text/x-msdos-batch", B(PT_SCRIPT)},
    {"text/x-python", B(PT_SCRIPT)},
    {"text/x-script.python", B(PT_SCRIPT)},
    {"text/x-perl", B(PT_SCRIPT)},
    {"text/x-php", B(PT_SCRIPT)},
    {"text/x-ruby", B(PT_SCRIPT)},
    {"text/x-tcl", B(PT_SCRIPT)},
    {"text/x-lua", B(PT_SCRIPT)},
    {"text/javascript", B(PT_SCRIPT)},
    {"application/javascript", B(PT_SCRIPT)},
    {"application/x-javascript", B(PT_SCRIPT)},
    {"text/vbscript", B(PT_SCRIPT)},
    {"text/x-vbscript", B(PT_SCRIPT)},
    {"application/x-powershell", B(PT_SCRIPT)},
    {"application/hta", B(PT_SCRIPT)},
    {"application/zip", B(PT_ARCHIVE)},
    {"application/x-zip-compressed", B(PT_ARCHIVE)},
    {"application/x-rar", B(PT_ARCHIVE)},
    {"application/vnd.rar", B(PT_ARCHIVE)},
    {"application/x-rar-compressed", B(PT_ARCHIVE)},
    {"application/x-7z-compressed", B(PT_ARCHIVE)},
    {"application/gzip", B(PT_ARCHIVE)},
    {"application/x-gzip", B(PT_ARCHIVE)},
    {"application/x-bzip2", B(PT_ARCHIVE)},
    {"application/x-xz", B(PT_ARCHIVE)},
    {"application/x-lzma", B(PT_ARCHIVE)},
    {"application/x-lzip", B(PT_ARCHIVE)},
    {"application/zstd", B(PT_ARCHIVE)},
    {"application/x-zstd", B(PT_ARCHIVE)},
    {"application/x-compress", B(PT_ARCHIVE)},
    {"application/x-tar", B(PT_ARCHIVE)},
    {"application/x-gtar", B(PT_ARCHIVE)},
    {"application/x-cpio", B(PT_ARCHIVE)},
    {"application/x-lha", B(PT_ARCHIVE)},
    {"application/x-lzh-compressed", B(PT_ARCHIVE)},
    {"application/x-arj", B(PT_ARCHIVE)},
    {"application/x-ace-compressed", B(PT_ARCHIVE)},
    {"application/vnd.ms-cab-compressed", B(PT_ARCHIVE)},
    {"application/x-archive", B(PT_ARCHIVE)},
    {"application/msword", B(PT_DOCUMENT)},
    {"application/vnd.ms-excel", B(PT_DOCUMENT)},
    {"application/vnd.ms-powerpoint", B(PT_DOCUMENT)},
    {"application/vnd.ms-office", B(PT_DOCUMENT)},
    {"application/vnd.ms-outlook", B(PT_DOCUMENT)},
    {"application/cdfv2", B(PT_DOCUMENT)},
    {"application/x-ole-storage", B(PT_DOCUMENT)},
    {"application/rtf", B(PT_DOCUMENT)},
    {"text/rtf", B(PT_DOCUMENT)},
    {"application/x-hwp", B(PT_DOCUMENT)},
    {"application/vnd.ms-excel.sheet.macroenabled.12", B(PT_DOCUMENT) | B(PT_OFFICE_MACRO)},
    {"application/vnd.ms-word.document.macroenabled.12", B(PT_DOCUMENT) | B(PT_OFFICE_MACRO)},
    {"application/vnd.ms-powerpoint.presentation.macroenabled.12", B(PT_DOCUMENT) | B(PT_OFFICE_MACRO)},
    {"application/pdf", B(PT_PDF)},
    {"text/html", B(PT_HTML)},
    {"application/xhtml+xml", B(PT_HTML)},
    {"application/x-iso9660-image", B(PT_DISK_IMAGE)},
    {"application/x-raw-disk-image", B(PT_DISK_IMAGE)},
    {"application/x-apple-diskimage", B(PT_DISK_IMAGE)},
    {"application/x-virtualbox-vdi", B(PT_DISK_IMAGE)},
    {"application/x-virtualbox-vhd", B(PT_DISK_IMAGE)},
    {"application/x-vhd", B(PT_DISK_IMAGE)},
    {"application/x-vhdx", B(PT_DISK_IMAGE)},
    {"application/x-qemu-disk", B(PT_DISK_IMAGE)},
    {"application/x-vmdk", B(PT_DISK_IMAGE)},
    {"application/x-udf-image", B(PT_DISK_IMAGE)},
    {"application/json", B(PT_TEXT)},
    {"application/xml", B(PT_TEXT)},
    {"application/csv", B(PT_TEXT)},
};

static const struct type_map TYPE_PREFIX[] = {
    {"application/vnd.openxmlformats-officedocument.", B(PT_DOCUMENT)},
    {"application/vnd.oasis.opendocument.", B(PT_DOCUMENT)},
    {"image/", B(PT_IMAGE)},
    {"audio/", B(PT_AUDIO)},
    {"video/", B(PT_VIDEO)},
    {"text/", B(PT_TEXT)},
};

/* policy_type_of - the categories of a libmagic MIME type (parameters such
 * as "; charset=" ignored, case-insensitive); 0 when none fits */
unsigned policy_type_of(const char *mime)
{
    char t[128];
    size_t n = 0;
    if (!mime)
        return 0;
    while (mime[n] && mime[n] != ';' && mime[n] != ' ' && n < sizeof t - 1) {
        t[n] = (char)tolower((unsigned char)mime[n]);
        n++;
    }
    t[n] = '\0';
    for (size_t i = 0; i < sizeof TYPE_EXACT / sizeof *TYPE_EXACT; i++)
        if (strcmp(t, TYPE_EXACT[i].mime) == 0)
            return TYPE_EXACT[i].bits;
    for (size_t i = 0; i < sizeof TYPE_PREFIX / sizeof *TYPE_PREFIX; i++)
        if (strncmp(t, TYPE_PREFIX[i].mime, strlen(TYPE_PREFIX[i].mime)) == 0)
            return TYPE_PREFIX[i].bits;
    return 0;
}

static unsigned att_types(const struct mime_attachment *at)
{
    return policy_type_of(at->true_type) | (at->macros ? B(PT_OFFICE_MACRO) : 0);
}

static unsigned member_types(const struct mime_member *m)
{
    return policy_type_of(m->true_type) | (m->macros ? B(PT_OFFICE_MACRO) : 0);
}

/* ---------------------------------------------------------------- text helpers */
/* utf8_valid_len - length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

static bool utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* ASCII runs a word at a time */
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = utf8_seq(p + i, n - i);
        if (!l)
            return false;
        i += l;
    }
    return true;
}

/* utf8_clean - copy of s with every invalid byte replaced by '?' (caller frees) */
static char *utf8_clean(const char *s, size_t n)
{
    char *o = xmalloc(n ? n : 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t l = utf8_seq(p + i, n - i);
        if (!l) {
            o[i++] = '?';
            continue;
        }
        memcpy(o + i, p + i, l);
        i += l;
    }
    return o;
}

/* utf8_cut - largest length <= n that does not split a sequence */
static size_t utf8_cut(const char *s, size_t n)
{
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

static const char *base_name(const char *path)
{
    const char *b = path ? strrchr(path, '/') : NULL;
    return b ? b + 1 : (path ? path : "");
}

/* ext_of - lower-case extension of a file name into out ("" when none) */
static const char *ext_of(const char *name, char *out, size_t outsz)
{
    const char *dot = name ? strrchr(name, '.') : NULL;
    out[0] = '\0';
    if (!dot || !dot[1] || strlen(dot + 1) >= outsz)
        return out;
    size_t i = 0;
    for (const char *p = dot + 1; *p; p++)
        out[i++] = (char)tolower((unsigned char)*p);
    out[i] = '\0';
    return out;
}

static const char *att_ext(const struct mime_attachment *at, char *buf, size_t bufsz)
{
    if (at->extension && *at->extension && strlen(at->extension) < bufsz) {
        size_t i = 0;
        for (const char *p = at->extension; *p; p++)
            buf[i++] = (char)tolower((unsigned char)*p);
        buf[i] = '\0';
        return buf;
    }
    return ext_of(at->filename, buf, bufsz);
}

/* ---------------------------------------------------------------- scratch */
static __thread hs_scratch_t *tl_scratch;
static __thread uint64_t tl_serial;

/* scratch_for - a scratch large enough for every database of the set */
static hs_scratch_t *scratch_for(const struct policy_set *s)
{
    if (tl_serial == s->serial)
        return tl_scratch;
    for (int d = 0; d < 2; d++) {
        for (int f = 0; f < PKW_N; f++)
            if (s->dir[d].kw[f] && hs_alloc_scratch(s->dir[d].kw[f], &tl_scratch) != HS_SUCCESS)
                fatal("policy: cannot allocate Vectorscan scratch");
        if (s->dir[d].names && hs_alloc_scratch(s->dir[d].names, &tl_scratch) != HS_SUCCESS)
            fatal("policy: cannot allocate Vectorscan scratch");
    }
    tl_serial = s->serial;
    return tl_scratch;
}

void policy_thread_done(void)
{
    hs_free_scratch(tl_scratch);
    tl_scratch = NULL;
    tl_serial = 0;
}

/* ---------------------------------------------------------------- facts */
enum why {
    W_NONE = 0,
    W_VIRUS,
    W_SCANX,
    W_TYPE,
    W_PASSWORD,
    W_ATT_SIZE,
    W_MSG_SIZE,
    W_RCPTS,
    W_EXT,
    W_NAME,
    W_KEYWORD,
    W_SPAM,
    W_PHISH,
    W_GRAYMAIL,
    W_WEBREP,
    W_SOCIAL,
    W_BEC
};

enum { ST_UNKNOWN = 0, ST_NO, ST_YES, ST_SKIPPED };

struct facts {
    const struct analysis *a;
    const struct dirset *d;
    size_t nrcpts;
    bool approved;
    unsigned virus[PVK_N];
    unsigned spam_levels, bec, scanx, types;
    bool phishing, graymail, webrep, social, encrypted;
    uint64_t max_att;
    unsigned char *hit_ext, *hit_name, *hit_kw[PKW_N];
    unsigned char *state, *why, *why_field;
    char **text; /* per rule: its "matched: ..." trace text, made once */
    unsigned char *mem;
    hs_scratch_t *scratch;
};

struct hit_ctx {
    unsigned char *hit;
    const unsigned *rule_of;
    long want; /* >= 0: only report whether this rule hit */
    bool found;
    unsigned first_id;
};

static int on_hit(unsigned id, unsigned long long from, unsigned long long to, unsigned flags, void *arg)
{
    struct hit_ctx *h = arg;
    (void)from, (void)to, (void)flags;
    if (h->want >= 0) {
        if (h->rule_of[id] == (unsigned)h->want) {
            h->found = true;
            h->first_id = id;
            return 1; /* stop */
        }
        return 0;
    }
    h->hit[h->rule_of[id]] = 1;
    return 0;
}

/* scan - one text through db (cleaned first when not valid UTF-8) */
static void scan(hs_database_t *db, hs_scratch_t *sc, const char *s, size_t n, struct hit_ctx *h)
{
    if (!db || !s || n > UINT32_MAX)
        return;
    if (utf8_valid(s, n)) {
        hs_scan(db, s, (unsigned)n, 0, sc, on_hit, h);
        return;
    }
    char *c = utf8_clean(s, n);
    hs_scan(db, c, (unsigned)n, 0, sc, on_hit, h);
    free(c);
}

static bool is_text_type(const char *t)
{
    return t &&
           (strncmp(t, "text/", 5) == 0 || (policy_type_of(t) & (B(PT_TEXT) | B(PT_HTML) | B(PT_SCRIPT))));
}

/* scan_keywords - each keyword field once */
static void scan_keywords(struct facts *f)
{
    const struct dirset *d = f->d;
    const struct analysis *a = f->a;
    struct hit_ctx h = {.want = -1};
    if (d->kw[PKW_SUBJECT] && a->subject) {
        h.hit = f->hit_kw[PKW_SUBJECT];
        h.rule_of = d->kw_rule[PKW_SUBJECT];
        scan(d->kw[PKW_SUBJECT], f->scratch, a->subject, strlen(a->subject), &h);
    }
    if (d->kw[PKW_BODY] && a->text) {
        h.hit = f->hit_kw[PKW_BODY];
        h.rule_of = d->kw_rule[PKW_BODY];
        scan(d->kw[PKW_BODY], f->scratch, a->text, a->text_len ? a->text_len : strlen(a->text), &h);
    }
    if (d->kw[PKW_HEADERS] && a->nheaders) {
        struct buf b;
        buf_init(&b, POLICY_MAX_HEADER_SCAN);
        for (size_t i = 0; i < a->nheaders; i++) {
            const char *n = a->headers[i].name ? a->headers[i].name : "";
            const char *v = a->headers[i].value ? a->headers[i].value : "";
            size_t room = b.max - b.len, need = strlen(n) + strlen(v) + 3;
            if (need > room) {
                /* the last header that fits in part, cut on a character */
                if (room > strlen(n) + 3) {
                    buf_printf(&b, "%s: ", n);
                    size_t vl = utf8_cut(v, room - strlen(n) - 3);
                    buf_append(&b, v, vl);
                }
                break;
            }
            buf_printf(&b, "%s: %s\n", n, v);
        }
        h.hit = f->hit_kw[PKW_HEADERS];
        h.rule_of = d->kw_rule[PKW_HEADERS];
        scan(d->kw[PKW_HEADERS], f->scratch, b.ptr, b.len, &h);
        buf_free(&b);
    }
    if (d->kw[PKW_ATTACHMENTS]) {
        size_t total = 0;
        h.hit = f->hit_kw[PKW_ATTACHMENTS];
        h.rule_of = d->kw_rule[PKW_ATTACHMENTS];
        for (size_t i = 0; i < a->nattachments && total < POLICY_MAX_ATTACH_SCAN_TOTAL; i++) {
            const struct mime_attachment *at = &a->attachments[i];
            if (!at->data || !is_text_type(at->true_type))
                continue;
            size_t n = at->size > POLICY_MAX_ATTACH_SCAN ? POLICY_MAX_ATTACH_SCAN : (size_t)at->size;
            if (n > POLICY_MAX_ATTACH_SCAN_TOTAL - total)
                n = POLICY_MAX_ATTACH_SCAN_TOTAL - total;
            scan(d->kw[PKW_ATTACHMENTS], f->scratch, (const char *)at->data, n, &h);
            total += n;
        }
    }
}

/* mark_ext - every rule listing extension e */
static void mark_ext(struct facts *f, const char *e)
{
    const struct dirset *d = f->d;
    if (!*e || !d->nexts)
        return;
    size_t lo = 0, hi = d->nexts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(d->exts[mid].ext, e) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < d->nexts && strcmp(d->exts[lo].ext, e) == 0; lo++)
        f->hit_ext[d->exts[lo].rule] = 1;
}

/* scan_attachments - types, sizes, encryption, extensions and names */
static void scan_attachments(struct facts *f)
{
    const struct analysis *a = f->a;
    const struct dirset *d = f->d;
    struct hit_ctx h = {.hit = f->hit_name, .rule_of = d->names_rule, .want = -1};
    char e[64];
    for (size_t i = 0; i < a->nattachments; i++) {
        const struct mime_attachment *at = &a->attachments[i];
        f->types |= att_types(at);
        f->encrypted |= at->encrypted;
        if (at->size > f->max_att)
            f->max_att = at->size;
        mark_ext(f, att_ext(at, e, sizeof e));
        if (d->names && at->filename)
            scan(d->names, f->scratch, at->filename, strlen(at->filename), &h);
        for (size_t j = 0; j < at->nmembers; j++) {
            const struct mime_member *m = &at->members[j];
            const char *bn = base_name(m->path);
            f->types |= member_types(m);
            f->encrypted |= m->encrypted;
            mark_ext(f, ext_of(bn, e, sizeof e));
            if (d->names && *bn)
                scan(d->names, f->scratch, bn, strlen(bn), &h);
        }
    }
}

static unsigned virus_kind(const char *name)
{
    if (!name || strncmp(name, "Heuristics.", 11) != 0)
        return PVK_SIGNATURE;
    if (strcmp(name, "Heuristics.Macro") == 0)
        return PVK_MACRO;
    if (strcmp(name, "Heuristics.RiskyType") == 0)
        return PVK_SCRIPT;
    if (strcmp(name, "Heuristics.HTMLSmuggling") == 0)
        return PVK_DEEP;
    return PVK_HEURISTIC;
}

static unsigned virus_type_bit(const char *type)
{
    if (!type)
        return PV_CLEANABLE | PV_MASS | PV_NONMASS; /* untyped: whatever the rule asks */
    if (strcmp(type, "cleanable") == 0)
        return PV_CLEANABLE;
    if (strcmp(type, "mass_mailing") == 0)
        return PV_MASS;
    if (strcmp(type, "non_mass_mailing") == 0)
        return PV_NONMASS;
    return PV_CLEANABLE | PV_MASS | PV_NONMASS;
}

static bool cat_is(const struct detection *dt, const char *c)
{
    return dt->category && strcmp(dt->category, c) == 0;
}

static unsigned bec_bit(const char *name)
{
    static const char *const names[] = {"engine", "writing_style", "probable"};
    for (unsigned i = 0; name && i < 3; i++)
        if (strcmp(name, names[i]) == 0)
            return 1u << i;
    return 0;
}

/* facts_detections - detections and flags into masks */
static void facts_detections(struct facts *f)
{
    const struct analysis *a = f->a;
    for (size_t i = 0; i < a->ndetections; i++) {
        const struct detection *dt = &a->detections[i];
        if (cat_is(dt, "virus"))
            f->virus[virus_kind(dt->name)] |= virus_type_bit(dt->type);
        else if (cat_is(dt, "phishing") && dt->score >= POLICY_PHISH_MATCH)
            f->phishing = true;
        else if (cat_is(dt, "graymail"))
            f->graymail = true;
        else if (cat_is(dt, "web_reputation"))
            f->webrep = true;
        else if (cat_is(dt, "social_engineering"))
            f->social = true;
        else if (cat_is(dt, "bec"))
            f->bec |= bec_bit(dt->name);
        else if (cat_is(dt, "scan_exclusion"))
            f->scanx |= PSX_SCAN_FAILURE;
    }
    for (size_t i = 0; i < a->nflags; i++) {
        const char *n = a->flags[i].name ? a->flags[i].name : "";
        if (strcmp(n, "archive_limits") == 0)
            f->scanx |= PSX_ARCHIVE_LIMITS;
        else if (strcmp(n, "encrypted") == 0)
            f->scanx |= PSX_ENCRYPTED;
        else if (strcmp(n, "malformed") == 0)
            f->scanx |= PSX_MALFORMED;
    }
    f->spam_levels = a->spam_levels & 0x1f;
}

static void facts_init(struct facts *f, const struct policy_set *s, const struct analysis *a,
                       const struct policy_envelope *env, bool approved)
{
    memset(f, 0, sizeof *f);
    f->a = a;
    f->d = &s->dir[env->direction];
    f->nrcpts = env->nrcpts;
    f->approved = approved;
    size_t n = f->d->nrules ? f->d->nrules : 1;
    f->mem = xcalloc(n, 5 + PKW_N);
    f->text = xcalloc(n, sizeof *f->text);
    f->hit_ext = f->mem;
    f->hit_name = f->mem + n;
    f->state = f->mem + 2 * n;
    f->why = f->mem + 3 * n;
    f->why_field = f->mem + 4 * n;
    for (int k = 0; k < PKW_N; k++)
        f->hit_kw[k] = f->mem + (5 + (size_t)k) * n;
    if (!f->d->nrules)
        return;
    f->scratch = scratch_for(s);
    facts_detections(f);
    scan_attachments(f);
    scan_keywords(f);
}

/* rule_state - whether rule ri matches the message (message-level: the
 * same for every recipient it covers), cached */
static unsigned rule_state(struct facts *f, size_t ri)
{
    const struct rule *r = &f->d->rules[ri];
    if (f->state[ri] != ST_UNKNOWN)
        return f->state[ri];
    enum why w = W_NONE;
    if (r->has_virus) {
        for (int k = 0; k < PVK_N && !w; k++)
            if ((r->virus_kinds & (1u << k)) && (f->virus[k] & r->virus_types))
                w = W_VIRUS;
    }
    if (!w && r->has_scanx && (f->scanx & r->scanx))
        w = W_SCANX;
    if (!w && r->has_content) {
        if (r->types & f->types)
            w = W_TYPE;
        else if (r->password_protected && f->encrypted)
            w = W_PASSWORD;
        else if (r->att_size_set && f->max_att > r->att_size_over)
            w = W_ATT_SIZE;
        else if (r->msg_size_set && f->a->size > r->msg_size_over)
            w = W_MSG_SIZE;
        else if (r->recipients_over >= 0 && f->nrcpts > (size_t)r->recipients_over)
            w = W_RCPTS;
        else if (f->hit_ext[ri])
            w = W_EXT;
        else if (f->hit_name[ri])
            w = W_NAME;
        else {
            for (int k = 0; k < PKW_N && !w; k++)
                if (f->hit_kw[k][ri]) {
                    w = W_KEYWORD;
                    f->why_field[ri] = (unsigned char)k;
                }
        }
    }
    bool skipped = false;
    if (!w && r->has_spam) {
        if (f->approved)
            skipped = true;
        else if (r->spam_level >= 0 && (f->spam_levels & (1u << r->spam_level)))
            w = W_SPAM;
        else if (r->phishing && f->phishing)
            w = W_PHISH;
        else if (r->bec & f->bec)
            w = W_BEC;
        else if (r->graymail && f->graymail)
            w = W_GRAYMAIL;
        else if (r->web_reputation && f->webrep)
            w = W_WEBREP;
        else if (r->social_engineering && f->social)
            w = W_SOCIAL;
    }
    f->why[ri] = (unsigned char)w;
    if (w)
        f->state[ri] = ST_YES;
    else if (skipped && !r->has_virus && !r->has_content && !r->has_scanx)
        f->state[ri] = ST_SKIPPED;
    else
        f->state[ri] = ST_NO;
    return f->state[ri];
}

static const struct detection *first_detection(const struct analysis *a, const char *cat, const char *name)
{
    for (size_t i = 0; i < a->ndetections; i++)
        if (cat_is(&a->detections[i], cat) &&
            (!name || (a->detections[i].name && strcmp(a->detections[i].name, name) == 0)))
            return &a->detections[i];
    return NULL;
}

/* why_text - the criterion that matched, for the trace */
static void why_text(const struct facts *f, size_t ri, char *out, size_t outsz)
{
    const struct rule *r = &f->d->rules[ri];
    const struct analysis *a = f->a;
    const struct detection *dt = NULL;
    static const char *const fields[] = {"subject", "body", "headers", "attachments"};
    static const char *const scanx[] = {"archive limits", "encrypted", "malformed", "scan failure"};
    out[0] = '\0';
    switch ((enum why)f->why[ri]) {
    case W_VIRUS:
        for (size_t i = 0; i < a->ndetections && !dt; i++) {
            const struct detection *x = &a->detections[i];
            if (cat_is(x, "virus") && (r->virus_kinds & (1u << virus_kind(x->name))) &&
                (virus_type_bit(x->type) & r->virus_types))
                dt = x;
        }
        snprintf(out, outsz, "virus: %.100s", dt && dt->name ? dt->name : "?");
        break;
    case W_SCANX:
        for (int i = 0; i < 4; i++)
            if (f->scanx & r->scanx & (1u << i)) {
                snprintf(out, outsz, "scan exclusion: %s", scanx[i]);
                break;
            }
        break;
    case W_TYPE:
        for (int i = 0; i < PT_N; i++)
            if (f->types & r->types & (1u << i)) {
                snprintf(out, outsz, "attachment type %s", policy_type_names[i]);
                break;
            }
        break;
    case W_PASSWORD:
        snprintf(out, outsz, "password-protected attachment");
        break;
    case W_ATT_SIZE:
        snprintf(out, outsz, "attachment larger than %llu bytes", (unsigned long long)r->att_size_over);
        break;
    case W_MSG_SIZE:
        snprintf(out, outsz, "message larger than %llu bytes", (unsigned long long)r->msg_size_over);
        break;
    case W_RCPTS:
        snprintf(out, outsz, "more than %ld recipients", r->recipients_over);
        break;
    case W_EXT:
        snprintf(out, outsz, "attachment extension");
        break;
    case W_NAME:
        snprintf(out, outsz, "attachment name");
        break;
    case W_KEYWORD:
        snprintf(out, outsz, "keyword in %s", fields[f->why_field[ri] % PKW_N]);
        break;
    case W_SPAM:
        snprintf(out, outsz, "spam: level %s, score %.2f",
                 r->spam_level >= 0 ? mime_spam_level_names[r->spam_level] : "?", a->spam_score);
        break;
    case W_PHISH:
        dt = first_detection(a, "phishing", NULL);
        snprintf(out, outsz, "phishing: %.100s", dt && dt->name ? dt->name : "?");
        break;
    case W_BEC: {
        static const char *const b[] = {"engine", "writing_style", "probable"};
        for (int i = 0; i < 3; i++)
            if (r->bec & f->bec & (1u << i)) {
                snprintf(out, outsz, "BEC: %s", b[i]);
                break;
            }
        break;
    }
    case W_GRAYMAIL:
        dt = first_detection(a, "graymail", NULL);
        snprintf(out, outsz, "graymail: %.100s", dt && dt->name ? dt->name : "?");
        break;
    case W_WEBREP:
        dt = first_detection(a, "web_reputation", NULL);
        snprintf(out, outsz, "web reputation: %.100s", dt && dt->name ? dt->name : "?");
        break;
    case W_SOCIAL:
        dt = first_detection(a, "social_engineering", NULL);
        snprintf(out, outsz, "social engineering: %.100s", dt && dt->name ? dt->name : "?");
        break;
    default:
        break;
    }
}

/* ---------------------------------------------------------------- dispositions */
#define PUSH(arr, n)                                                                                         \
    (((n) & ((n)-1)) == 0 ? ((arr) = xrealloc((arr), ((n) ? (n)*2 : 1) * sizeof *(arr))) : (arr),            \
     memset(&(arr)[(n)], 0, sizeof *(arr)), &(arr)[(n)++])

static struct policy_trace *trace_add(struct policy_disposition *p, const char *rule, unsigned order,
                                      enum policy_outcome o, enum policy_intercept ic)
{
    struct policy_trace *t = PUSH(p->trace, p->ntrace);
    t->rule = rule;
    t->order = order;
    t->outcome = o;
    t->intercept = ic;
    return t;
}

static void removal_add(struct policy_disposition *p, size_t att, size_t member, enum policy_removal_kind k,
                        const char *rule, const char *reason)
{
    for (size_t i = 0; i < p->nremovals; i++)
        if (p->removals[i].attachment == att && p->removals[i].member == member)
            return;
    if (p->nremovals >= POLICY_MAX_REMOVALS)
        return;
    struct policy_removal *r = PUSH(p->removals, p->nremovals);
    r->attachment = att;
    r->member = member;
    r->kind = k;
    r->rule = rule;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
}

/* virus_attachment - the attachment a virus detection's evidence names
 * ("<file> (...)" or "<file>/<member> (...)"), or SIZE_MAX */
static size_t virus_attachment(const struct analysis *a, const struct detection *dt)
{
    const char *ev = dt->evidence;
    size_t best = SIZE_MAX, bestlen = 0;
    for (size_t i = 0; ev && i < a->nattachments; i++) {
        const char *fn = a->attachments[i].filename;
        size_t n = fn ? strlen(fn) : 0;
        if (n && n > bestlen && strncmp(ev, fn, n) == 0 && (ev[n] == '/' || ev[n] == ' ' || ev[n] == '\0')) {
            best = i;
            bestlen = n;
        }
    }
    return best;
}

/* remove_infected - the attachments holding a virus the rule looks for */
static void remove_infected(struct policy_disposition *p, const struct facts *f, const struct rule *r,
                            enum policy_removal_kind k)
{
    const struct analysis *a = f->a;
    for (size_t i = 0; i < a->ndetections; i++) {
        const struct detection *dt = &a->detections[i];
        if (!cat_is(dt, "virus") || !(r->virus_kinds & (1u << virus_kind(dt->name))) ||
            !(virus_type_bit(dt->type) & r->virus_types))
            continue;
        size_t at = virus_attachment(a, dt);
        if (at == SIZE_MAX)
            continue;
        char why[160];
        snprintf(why, sizeof why, "virus %.120s", dt->name ? dt->name : "?");
        removal_add(p, at, POLICY_WHOLE_ATTACHMENT, k, r->name, why);
    }
}

/* name_hits - file name bn matches one of rule ri's name patterns */
static bool name_hits(const struct facts *f, size_t ri, const char *bn)
{
    const struct dirset *d = f->d;
    struct hit_ctx h = {.rule_of = d->names_rule, .want = (long)ri};
    if (!d->names || !bn || !*bn || !f->hit_name[ri])
        return false;
    scan(d->names, f->scratch, bn, strlen(bn), &h);
    return h.found;
}

/* file_reason - why one attachment or member is matched by the rule's
 * attachment conditions, or NULL */
static const char *file_reason(const struct facts *f, size_t ri, const char *name, const char *ext,
                               unsigned types, uint64_t size, bool enc, char *buf, size_t bufsz)
{
    const struct rule *r = &f->d->rules[ri];
    if (r->types & types) {
        for (int i = 0; i < PT_N; i++)
            if (r->types & types & (1u << i)) {
                snprintf(buf, bufsz, "true type %s", policy_type_names[i]);
                return buf;
            }
    }
    if (*ext && r->nexts && policy_sorted_has(r->exts, r->nexts, ext)) {
        snprintf(buf, bufsz, "extension %.60s", ext);
        return buf;
    }
    if (r->nnames && name_hits(f, ri, name)) {
        snprintf(buf, bufsz, "name %.100s", name);
        return buf;
    }
    if (r->password_protected && enc) {
        snprintf(buf, bufsz, "password-protected");
        return buf;
    }
    if (r->att_size_set && size > r->att_size_over) {
        snprintf(buf, bufsz, "size %llu over %llu bytes", (unsigned long long)size,
                 (unsigned long long)r->att_size_over);
        return buf;
    }
    return NULL;
}

/* remove_matching - delete_attachments: the attachments (or what inside
 * them) the rule's attachment conditions match */
static void remove_matching(struct policy_disposition *p, const struct facts *f, size_t ri)
{
    const struct rule *r = &f->d->rules[ri];
    const struct analysis *a = f->a;
    char e[64], why[160];
    if (f->why[ri] == W_VIRUS)
        remove_infected(p, f, r, POLICY_REMOVE_MATCHING);
    if (!r->has_content)
        return;
    for (size_t i = 0; i < a->nattachments; i++) {
        const struct mime_attachment *at = &a->attachments[i];
        const char *fn = at->filename ? at->filename : "";
        if (file_reason(f, ri, fn, att_ext(at, e, sizeof e), att_types(at), at->size, at->encrypted, why,
                        sizeof why)) {
            removal_add(p, i, POLICY_WHOLE_ATTACHMENT, POLICY_REMOVE_MATCHING, r->name, why);
            continue;
        }
        for (size_t j = 0; j < at->nmembers; j++) {
            const struct mime_member *m = &at->members[j];
            const char *bn = base_name(m->path);
            if (file_reason(f, ri, bn, ext_of(bn, e, sizeof e), member_types(m), m->size, m->encrypted, why,
                            sizeof why)) {
                char full[160];
                snprintf(full, sizeof full, "%.100s: %s", m->path ? m->path : bn, why);
                removal_add(p, i, j, POLICY_REMOVE_MATCHING, r->name, full);
                break; /* the attachment goes as a whole */
            }
        }
    }
}

/* apply - a matched rule's modifications and monitoring */
static void apply(struct policy_disposition *p, const struct facts *f, size_t ri)
{
    const struct rule *r = &f->d->rules[ri];
    if (r->clean) {
        p->clean = true;
        remove_infected(p, f, r, POLICY_REMOVE_INFECTED);
    }
    if (r->delete_attachments)
        remove_matching(p, f, ri);
    if (r->xh_name) {
        struct policy_x_header *x = PUSH(p->x_headers, p->nx_headers);
        *x = (struct policy_x_header){r->xh_name, r->xh_value, r->name};
    }
    if (r->stamp_text || r->stamp_html) {
        struct policy_stamp *s = PUSH(p->stamps, p->nstamps);
        *s = (struct policy_stamp){r->stamp_text, r->stamp_html, r->name};
    }
    if (r->tag) {
        if (r->tag_skip_signed && (f->a->signed_smime || f->a->signed_pgp)) {
            p->tag_skipped_signed = true;
        } else {
            bool dup = false;
            for (size_t i = 0; i < p->ntags; i++)
                dup |= strcmp(p->tags[i].tag, r->tag) == 0;
            if (!dup) {
                struct policy_tag *t = PUSH(p->tags, p->ntags);
                *t = (struct policy_tag){r->tag, r->name};
            }
        }
    }
    for (size_t i = 0; i < r->nnotify; i++) {
        struct policy_notify *n = PUSH(p->notify, p->nnotify);
        *n = (struct policy_notify){r->notify[i].template_name, r->notify[i].to, r->notify[i].nto, r->name};
    }
    if (r->bcc) {
        bool dup = false;
        for (size_t i = 0; i < p->nbcc; i++)
            dup |= strcasecmp(p->bcc[i].address, r->bcc) == 0;
        if (!dup) {
            struct policy_bcc *b = PUSH(p->bcc, p->nbcc);
            *b = (struct policy_bcc){r->bcc, r->name};
        }
    }
}

/* mods_text - what a matched rule without an intercept did, for the trace */
static const char *mods_text(const struct rule *r, const struct analysis *a)
{
    if (r->clean)
        return "cleaned";
    if (r->delete_attachments)
        return "attachments deleted";
    if (r->tag)
        return r->tag_skip_signed && (a->signed_smime || a->signed_pgp) ? "tag skipped (signed)"
                                                                        : "subject tagged";
    if (r->stamp_text || r->stamp_html)
        return "stamp inserted";
    if (r->xh_name)
        return "x-header inserted";
    if (r->nnotify)
        return "notified";
    if (r->bcc)
        return "bcc";
    return "not intercepted";
}

/* applies - rule r covers this recipient and sender */
static bool applies(const struct policy_set *s, const struct rule *r, const char *rcpt, const char *sender)
{
    if (!policy_who_has(&r->rcpts, rcpt, s))
        return false;
    if (r->senders.kind != WHO_ANY && (!*sender || !policy_who_has(&r->senders, sender, s)))
        return false;
    if (policy_who_has(&r->ex_rcpts, rcpt, s))
        return false;
    return !(*sender && policy_who_has(&r->ex_senders, sender, s));
}

/* eval_rcpt - the rules in execution order for one recipient */
static void eval_rcpt(const struct policy_set *s, struct facts *f, const struct policy_envelope *env,
                      const char *sender, struct policy_disposition *p)
{
    char rcpt[POLICY_ADDR_MAX + 1];
    if (policy_norm_address(p->rcpt, rcpt, sizeof rcpt) < 0)
        core_strlcpy(rcpt, p->rcpt, sizeof rcpt);
    const struct dirset *d = f->d;
    size_t start = env->release ? env->resume_after : 0;
    for (size_t ri = start; ri < d->nrules; ri++) {
        const struct rule *r = &d->rules[ri];
        if (!r->enabled || !applies(s, r, rcpt, sender))
            continue;
        unsigned st = rule_state(f, ri);
        if (st == ST_NO) {
            trace_add(p, r->name, r->order, POLICY_NOT_MATCHED, r->intercept)->text = "not matched";
            continue;
        }
        if (st == ST_SKIPPED) {
            trace_add(p, r->name, r->order, POLICY_SKIPPED_APPROVED, r->intercept)->text =
                "skipped: approved sender";
            continue;
        }
        if (!f->text[ri]) {
            char why[160];
            why_text(f, ri, why, sizeof why);
            if (asprintf(&f->text[ri], "matched: %s (%s)",
                         r->intercept != POLICY_INTERCEPT_NONE ? policy_intercept_name(r->intercept)
                                                               : mods_text(r, f->a),
                         why) < 0)
                fatal("policy: out of memory");
        }
        trace_add(p, r->name, r->order, POLICY_MATCHED, r->intercept)->text = f->text[ri];
        apply(p, f, ri);
        if (r->intercept != POLICY_INTERCEPT_NONE) {
            p->intercept = r->intercept;
            p->intercept_rule = r->name;
            p->intercept_order = r->order;
            p->new_recipient = r->change_recipient;
            return; /* terminal, or deliver now: the rest is skipped */
        }
    }
}

int policy_evaluate(const struct policy_set *s, const struct analysis *a, const struct policy_envelope *env,
                    struct policy_result *res)
{
    memset(res, 0, sizeof *res);
    if (!s || !a || !env || !env->rcpts || env->nrcpts == 0 || env->nrcpts > POLICY_MAX_RCPTS ||
        (unsigned)env->direction > 1)
        return -1;
    char sender[POLICY_ADDR_MAX + 1] = "";
    if (env->sender && *env->sender && policy_norm_address(env->sender, sender, sizeof sender) < 0)
        core_strlcpy(sender, env->sender, sizeof sender);
    bool inbound = env->direction == POLICY_INBOUND;
    res->sender_blocked = inbound && !env->release && policy_list_has(&s->blocked, sender, env->client_ip);
    res->sender_approved =
        inbound && !res->sender_blocked && policy_list_has(&s->approved, sender, env->client_ip);
    res->nrcpts = env->nrcpts;
    res->rcpts = xcalloc(env->nrcpts, sizeof *res->rcpts);
    struct facts f;
    facts_init(&f, s, a, env, res->sender_approved);
    for (size_t i = 0; i < env->nrcpts; i++) {
        struct policy_disposition *p = &res->rcpts[i];
        p->rcpt = xstrdup(env->rcpts[i] ? env->rcpts[i] : "");
        if (res->sender_blocked) {
            trace_add(p, "Blocked senders", 0, POLICY_MATCHED, POLICY_INTERCEPT_QUARANTINE)->text =
                "matched: quarantine (blocked sender)";
            p->intercept = POLICY_INTERCEPT_QUARANTINE;
            p->intercept_rule = "Blocked senders";
            continue;
        }
        if (res->sender_approved)
            trace_add(p, "Approved senders", 0, POLICY_MATCHED, POLICY_INTERCEPT_NONE)->text =
                "matched: spam filter skipped (approved sender)";
        eval_rcpt(s, &f, env, sender, p);
    }
    /* the texts made go to the result */
    size_t nd = f.d->nrules;
    for (size_t i = 0; i < nd; i++)
        if (f.text[i])
            *PUSH(res->texts, res->ntexts) = f.text[i];
    free(f.text);
    free(f.mem);
    return 0;
}

void policy_result_free(struct policy_result *res)
{
    if (!res)
        return;
    for (size_t i = 0; i < res->nrcpts && res->rcpts; i++) {
        struct policy_disposition *p = &res->rcpts[i];
        free(p->rcpt);
        free(p->removals);
        free(p->x_headers);
        free(p->stamps);
        free(p->tags);
        free(p->notify);
        free(p->bcc);
        free(p->trace);
    }
    free(res->rcpts);
    for (size_t i = 0; i < res->ntexts; i++)
        free(res->texts[i]);
    free(res->texts);
    memset(res, 0, sizeof *res);
}

static bool str_same(const char *x, const char *y)
{
    return x == y || (x && y && strcmp(x, y) == 0);
}

bool policy_disposition_same(const struct policy_disposition *x, const struct policy_disposition *y)
{
    if (x->intercept != y->intercept || !str_same(x->new_recipient, y->new_recipient) ||
        x->clean != y->clean || x->nremovals != y->nremovals || x->nx_headers != y->nx_headers ||
        x->nstamps != y->nstamps || x->ntags != y->ntags || x->nbcc != y->nbcc)
        return false;
    for (size_t i = 0; i < x->nremovals; i++)
        if (x->removals[i].attachment != y->removals[i].attachment ||
            x->removals[i].member != y->removals[i].member)
            return false;
    for (size_t i = 0; i < x->nx_headers; i++)
        if (!str_same(x->x_headers[i].name, y->x_headers[i].name) ||
            !str_same(x->x_headers[i].value, y->x_headers[i].value))
            return false;
    for (size_t i = 0; i < x->nstamps; i++)
        if (!str_same(x->stamps[i].text, y->stamps[i].text) ||
            !str_same(x->stamps[i].html, y->stamps[i].html))
            return false;
    for (size_t i = 0; i < x->ntags; i++)
        if (!str_same(x->tags[i].tag, y->tags[i].tag))
            return false;
    for (size_t i = 0; i < x->nbcc; i++)
        if (!str_same(x->bcc[i].address, y->bcc[i].address))
            return false;
    return true;
}
