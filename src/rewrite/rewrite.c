/*
 * rewrite.c - the "Modify" actions (PRODUCT.md §4) on one message: remove
 * parts, stamp the body, tag the subject, insert header fields.
 *
 *   rewrite_message       all operations, all or nothing (rewrite.h)
 *   rewrite_report_free
 *
 * How: rewrite_mime.c locates the structure as byte ranges; each operation
 * adds edits (replace bytes [start, end) of the input with new bytes); the
 * result is the input with the edits applied in order. So whatever no edit
 * covers - other parts, other header fields, boundaries, preambles - is
 * copied byte for byte, and an operation that fails leaves nothing behind.
 *
 * Operations that change parts (stamp, remove) need the structure to be
 * read the same way by GMime (rw_tree_verify), else the whole call fails:
 * on ambiguous MIME we refuse rather than guess which bytes a client will
 * show. Header operations only need the top header block.
 *
 * Order: removals first (a stamp never goes into a removed part), then the
 * stamps, the subject and the new header fields. Signed mail (S/MIME
 * multipart/signed or signed-data, PGP/MIME, inline "BEGIN PGP SIGNED
 * MESSAGE") gets no tag and no stamp when tag_skip_signed is set; removals
 * still happen (they are a security action; the report says the signature
 * is broken).
 *
 * Limits (rewrite.h): input size, parts, depth, header fields, the sizes of
 * the operations' own texts; the output may grow by at most the input size
 * plus REWRITE_MAX_GROWTH.
 */
#include <gmime/gmime.h>

#include "core/core.h"

#include "rewrite/rewrite_int.h"

#define RW_PGP_SIGNED "-----BEGIN PGP SIGNED MESSAGE-----"
#define RW_MAX_REPORT 4096 /* actions recorded per call */

struct edit {
    size_t start, end;
    char *data;
    size_t len;
    size_t seq;
};

struct ctx {
    struct rw_tree t;
    const struct rewrite_ops *ops;
    struct edit *edits;
    size_t nedits;
    struct rewrite_report *rep;
    bool *removed;      /* per entity: inside a removed part */
    char *err;
    size_t errsz;
};

/* ---------------------------------------------------------------- report and edits */
static void report(struct ctx *c, const char *op, const char *target, bool done, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void report(struct ctx *c, const char *op, const char *target, bool done, const char *fmt, ...)
{
    struct rewrite_report *r = c->rep;
    if (r->nactions >= RW_MAX_REPORT)
        return;
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    r->actions = xrealloc(r->actions, (r->nactions + 1) * sizeof *r->actions);
    struct rewrite_action *a = &r->actions[r->nactions++];
    a->op = xstrdup(op);
    a->target = rw_sanitise(target, strlen(target), false);
    a->done = done;
    a->detail = rw_sanitise(detail, strlen(detail), false);
}

static void add_edit(struct ctx *c, size_t start, size_t end, const char *data, size_t len)
{
    c->edits = xrealloc(c->edits, (c->nedits + 1) * sizeof *c->edits);
    struct edit *e = &c->edits[c->nedits];
    e->start = start;
    e->end = end;
    e->data = xmalloc(len ? len : 1);
    if (len)
        memcpy(e->data, data, len);
    e->len = len;
    e->seq = c->nedits++;
}

static int edit_cmp(const void *a, const void *b)
{
    const struct edit *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    bool xi = x->end == x->start, yi = y->end == y->start; /* insertions first */
    if (xi != yi)
        return xi ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq ? 1 : 0);
}

/* assemble - the input with every edit applied; -1 on overlap or size */
static int assemble(struct ctx *c, struct buf *out)
{
    if (c->nedits)
        qsort(c->edits, c->nedits, sizeof *c->edits, edit_cmp);
    size_t growth = c->t.len < REWRITE_MAX_MESSAGE ? c->t.len : REWRITE_MAX_MESSAGE;
    buf_init(out, c->t.len + growth + REWRITE_MAX_GROWTH);
    size_t pos = 0;
    for (size_t i = 0; i < c->nedits; i++) {
        struct edit *e = &c->edits[i];
        if (e->start < pos) {
            snprintf(c->err, c->errsz, "conflicting modifications at byte %zu", e->start);
            return -1;
        }
        if (buf_append(out, c->t.msg + pos, e->start - pos) < 0 || buf_append(out, e->data, e->len) < 0) {
            snprintf(c->err, c->errsz, "the modified message would be too large");
            return -1;
        }
        pos = e->end;
    }
    if (buf_append(out, c->t.msg + pos, c->t.len - pos) < 0) {
        snprintf(c->err, c->errsz, "the modified message would be too large");
        return -1;
    }
    if (!out->ptr)
        buf_append(out, "", 0);
    buf_cstr(out);
    return 0;
}

static const char *eol(const struct ctx *c)
{
    return c->t.eol;
}

/* ---------------------------------------------------------------- part helpers */
static bool is_text_body(const struct rw_entity *e)
{
    if (strcmp(e->type, "text") != 0 || (strcmp(e->subtype, "plain") != 0 && strcmp(e->subtype, "html") != 0))
        return false;
    if (e->disposition && strcmp(e->disposition, "attachment") == 0)
        return false;
    return e->filename == NULL;
}

/* decode_body - the part's content with its transfer encoding undone;
 * -1 for an encoding we do not know */
static int decode_body(const struct ctx *c, const struct rw_entity *e, struct buf *out)
{
    const char *p = c->t.msg + e->body_start;
    size_t n = e->body_end - e->body_start;
    buf_init(out, n + 16);
    const char *cte = e->cte;
    if (!cte || strcmp(cte, "7bit") == 0 || strcmp(cte, "8bit") == 0 || strcmp(cte, "binary") == 0) {
        buf_append(out, p, n);
    } else if (strcmp(cte, "base64") == 0) {
        rw_base64_decode(p, n, out);
    } else if (strcmp(cte, "quoted-printable") == 0) {
        rw_qp_decode(p, n, out);
    } else {
        return -1;
    }
    buf_cstr(out);
    return 0;
}

static bool has_inline_pgp(const char *s, size_t n)
{
    size_t ml = strlen(RW_PGP_SIGNED);
    for (size_t i = 0; i + ml <= n; i++) {
        if ((i == 0 || s[i - 1] == '\n') && memcmp(s + i, RW_PGP_SIGNED, ml) == 0)
            return true;
        const char *nl = memchr(s + i, '\n', n - i);
        if (!nl)
            break;
        i = (size_t)(nl - s);
    }
    return false;
}

/* message_signed - S/MIME or PGP signed, outside attached messages */
static bool message_signed(struct ctx *c)
{
    for (size_t i = 0; i < c->t.n; i++) {
        const struct rw_entity *e = &c->t.e[i];
        if (e->in_message || !e->type)
            continue;
        if (strcmp(e->type, "multipart") == 0 && strcmp(e->subtype, "signed") == 0)
            return true;
        if (strcmp(e->type, "application") == 0 &&
            (strcmp(e->subtype, "pkcs7-mime") == 0 || strcmp(e->subtype, "x-pkcs7-mime") == 0) &&
            e->smime_type && strcmp(e->smime_type, "signed-data") == 0)
            return true;
        if (strcmp(e->type, "text") == 0 && strcmp(e->subtype, "plain") == 0 && e->first_child < 0 &&
            e->body_end > e->body_start) {
            struct buf d;
            if (decode_body(c, e, &d) == 0 && has_inline_pgp(d.ptr ? d.ptr : "", d.len)) {
                buf_free(&d);
                return true;
            }
            buf_free(&d);
        }
    }
    return false;
}

static bool inside_signed(const struct ctx *c, int idx)
{
    for (int p = c->t.e[idx].parent; p >= 0; p = c->t.e[p].parent)
        if (strcmp(c->t.e[p].type, "multipart") == 0 && strcmp(c->t.e[p].subtype, "signed") == 0)
            return true;
    return false;
}

/* to_eol - s with every \n as the given line ending, appended */
static void append_lines(struct buf *b, const char *s, const char *le)
{
    for (; *s; s++) {
        if (*s == '\n')
            buf_append_str(b, le);
        else
            buf_append(b, s, 1);
    }
}

/* eol_follows - the part's content is followed by the line ending that
 * belongs to the next boundary (else, as for an empty part, the boundary
 * line starts right at body_end and new content must end in a line ending) */
static bool eol_follows(const struct ctx *c, const struct rw_entity *e)
{
    size_t p = e->body_end;
    const char *m = c->t.msg;
    return p < c->t.len && (m[p] == '\n' || (m[p] == '\r' && p + 1 < c->t.len && m[p + 1] == '\n'));
}

/* gap_end - where the bytes GMime leaves between a part's content and the
 * next boundary line end: body_end itself normally; after a line ending
 * that is not the one GMime takes off (an LF line before a CR LF boundary
 * line: GMime drops two bytes, the LF and the character before it) the
 * start of the boundary line - a replacement then covers that gap too */
static size_t gap_end(const struct ctx *c, const struct rw_entity *e)
{
    size_t p = e->body_end;
    const char *m = c->t.msg;
    if (p >= c->t.len || eol_follows(c, e) || (p == e->body_start && (p == 0 || m[p - 1] == '\n')))
        return p;
    const char *nl = memchr(m + p, '\n', c->t.len - p);
    return nl ? (size_t)(nl - m) + 1 : c->t.len;
}

/* end_line - make a replacement body end in a line ending when the bytes
 * after it need one (a boundary line must start a line) */
static void end_line(const struct ctx *c, const struct rw_entity *e, struct buf *b, const char *le)
{
    if (e->body_end < c->t.len && !eol_follows(c, e) && (!b->len || b->ptr[b->len - 1] != '\n'))
        buf_append_str(b, le);
}

/* ---------------------------------------------------------------- removal */
static void note_body(struct ctx *c, const struct rw_entity *e, const char *reason, struct buf *b)
{
    bool ja = c->ops->removal_note_lang && strcmp(c->ops->removal_note_lang, "ja") == 0;
    char *name = e->filename ? rw_sanitise(e->filename, strlen(e->filename), false) : NULL;
    char *why = rw_sanitise(reason ? reason : "", reason ? strlen(reason) : 0, false);
    struct buf t;
    buf_init(&t, 3 * REWRITE_MAX_OP_TEXT + 4096);
    if (ja) {
        buf_printf(&t, "このメッセージの一部は Moat により削除されました。\n");
        buf_printf(&t, "削除されたもの: %s (%s/%s、パート %s)\n", name ? name : "(名前なし)", e->type, e->subtype,
                   e->path);
        buf_printf(&t, "理由: %s\n", *why ? why : "ポリシーによる削除");
    } else {
        buf_printf(&t, "Moat removed a part of this message.\n");
        buf_printf(&t, "Removed: %s (%s/%s, part %s)\n", name ? name : "(no name)", e->type, e->subtype, e->path);
        buf_printf(&t, "Reason: %s\n", *why ? why : "removed by policy");
    }
    buf_init(b, 8 * t.len + 1024);
    const char *le = eol(c);
    const char *text = buf_cstr(&t);
    bool plain = rw_is_ascii(text, t.len) && t.len < 900;
    buf_printf(b, "Content-Type: text/plain; charset=%s%s", plain ? "us-ascii" : "utf-8", le);
    buf_printf(b, "Content-Transfer-Encoding: %s%s", plain ? "7bit" : "base64", le);
    buf_printf(b, "Content-Disposition: inline%s", le);
    buf_printf(b, "Content-Description: %s%s", ja ? "removed part" : "removed part", le);
    buf_append_str(b, le);
    if (plain) {
        append_lines(b, text, le);
    } else {
        struct buf u;
        buf_init(&u, t.len + 16);
        append_lines(&u, text, le);
        rw_base64_encode((const unsigned char *)u.ptr, u.len, le, b);
        buf_free(&u);
    }
    /* the line ending before the next boundary belongs to the boundary */
    size_t ll = strlen(le);
    if (b->len >= ll && memcmp(b->ptr + b->len - ll, le, ll) == 0 && eol_follows(c, e))
        b->len -= ll;
    free(name);
    free(why);
    buf_free(&t);
}

static void remove_part(struct ctx *c, int idx, const char *reason)
{
    struct rw_entity *e = &c->t.e[idx];
    struct buf note;
    note_body(c, e, reason, &note);
    /* note = its header fields, a blank line, its body */
    const char *le = eol(c);
    size_t ll = strlen(le);
    const char *sep = NULL;
    for (size_t i = 0; i + 2 * ll <= note.len; i++)
        if (memcmp(note.ptr + i, le, ll) == 0 && memcmp(note.ptr + i + ll, le, ll) == 0) {
            sep = note.ptr + i;
            break;
        }
    size_t hlen = (size_t)(sep - note.ptr) + ll; /* the fields with their line endings */
    size_t gend = gap_end(c, e);
    if (gend != e->body_end && note.len && note.ptr[note.len - 1] != '\n')
        buf_append_str(&note, le);
    if (!e->message_top) {
        add_edit(c, e->start, gend, note.ptr, note.len);
    } else {
        /* the top entity of a message: its header block is the message's;
         * replace only its Content-* fields, then the body */
        struct buf h;
        buf_init(&h, note.len + 64);
        bool has_mv = false;
        for (size_t i = 0; i < e->nfields; i++) {
            struct rw_field *f = &e->fields[i];
            if (f->colon - f->start >= 8 && strncasecmp(c->t.msg + f->start, "Content-", 8) == 0)
                add_edit(c, f->start, f->end, "", 0);
            has_mv |= rw_field_is(&c->t, f, "MIME-Version");
        }
        if (e->hdr_end == c->t.len && e->hdr_end > 0 && c->t.msg[e->hdr_end - 1] != '\n')
            buf_append_str(&h, le);
        if (!has_mv && idx == 0)
            buf_printf(&h, "MIME-Version: 1.0%s", le);
        buf_append(&h, note.ptr, hlen);
        bool blank = e->body_start > e->hdr_end && e->body_start <= c->t.len &&
                     (e->body_start != e->hdr_end);
        if (!blank || e->hdr_end == c->t.len)
            buf_append_str(&h, le); /* the header block had no blank line */
        add_edit(c, e->hdr_end, e->hdr_end, h.ptr, h.len);
        const char *body = note.ptr + hlen + ll;
        size_t blen = note.len - hlen - ll;
        size_t bstart = blank ? e->body_start : e->hdr_end;
        add_edit(c, bstart, gend, body, blen);
        buf_free(&h);
    }
    buf_free(&note);
}

static void do_removals(struct ctx *c)
{
    const struct rewrite_ops *o = c->ops;
    int *targets = xcalloc(o->nremove + 1, sizeof *targets);
    for (size_t i = 0; i < o->nremove; i++) {
        const char *path = o->remove[i].part_path ? o->remove[i].part_path : "";
        targets[i] = rw_tree_find(&c->t, path);
        if (targets[i] >= 0)
            c->removed[targets[i]] = true;
    }
    /* inherit: a part inside a removed part is removed with it */
    for (size_t i = 0; i < c->t.n; i++)
        if (c->t.e[i].parent >= 0 && c->removed[c->t.e[i].parent])
            c->removed[i] = true;
    for (size_t i = 0; i < o->nremove; i++) {
        const char *path = o->remove[i].part_path ? o->remove[i].part_path : "";
        int idx = targets[i];
        if (idx < 0) {
            report(c, "remove", path, false, "no such part");
            continue;
        }
        int anc = -1;
        for (int p = c->t.e[idx].parent; p >= 0; p = c->t.e[p].parent)
            for (size_t j = 0; j < o->nremove; j++)
                if (targets[j] == p)
                    anc = p;
        bool dup = false;
        for (size_t j = 0; j < i; j++)
            dup |= targets[j] == idx;
        if (anc >= 0 || dup) {
            report(c, "remove", path, true, "removed with part %s", anc >= 0 ? c->t.e[anc].path : path);
            continue;
        }
        remove_part(c, idx, o->remove[i].reason);
        const struct rw_entity *e = &c->t.e[idx];
        report(c, "remove", path, true, "%s/%s%s%s replaced by a note%s", e->type, e->subtype,
               e->filename ? " " : "", e->filename ? e->filename : "",
               inside_signed(c, idx) ? " (the signature no longer verifies)" : "");
    }
    free(targets);
}

/* ---------------------------------------------------------------- stamp */
static void html_escape(struct buf *b, const char *s, const char *le)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            buf_append_str(b, "&lt;");
            break;
        case '>':
            buf_append_str(b, "&gt;");
            break;
        case '&':
            buf_append_str(b, "&amp;");
            break;
        case '"':
            buf_append_str(b, "&quot;");
            break;
        case '\n':
            buf_append_str(b, "<br>");
            buf_append_str(b, le);
            break;
        default:
            buf_append(b, s, 1);
        }
    }
}

/* ncr_ascii - UTF-8 s with every non-ASCII character as &#xHEX; */
static void ncr_ascii(struct buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = core_utf8_next(s, n, i, &cp);
        if (cp < 0x80)
            buf_append(b, s + i, 1);
        else
            buf_printf(b, "&#x%X;", (unsigned)cp);
        i += k;
    }
}

/* find_ci - first occurrence of the ASCII word w (case-insensitive) in s
 * at or after from that starts a tag; in ISO-2022 text only where the
 * shift state is ASCII. last: the last occurrence instead. SIZE_MAX if none. */
static size_t find_tag(const char *s, size_t n, const char *w, bool stateful, bool last)
{
    size_t wl = strlen(w), found = SIZE_MAX;
    for (size_t i = 0; i + wl <= n; i++) {
        if (s[i] != '<' || strncasecmp(s + i, w, wl) != 0)
            continue;
        char after = i + wl < n ? s[i + wl] : '>';
        if (!(after == '>' || after == ' ' || after == '\t' || after == '\r' || after == '\n' || after == '/'))
            continue;
        if (stateful && !rw_iso2022_ascii_at(s, n, i))
            continue;
        found = i;
        if (!last)
            break;
    }
    return found;
}

/* tag_end - the byte after the '>' closing the tag at i (quotes skipped) */
static size_t tag_end(const char *s, size_t n, size_t i)
{
    char q = 0;
    for (size_t k = i + 1; k < n; k++) {
        if (q) {
            if (s[k] == q)
                q = 0;
        } else if (s[k] == '"' || s[k] == '\'') {
            q = s[k];
        } else if (s[k] == '>') {
            return k + 1;
        }
    }
    return SIZE_MAX;
}

/* html_position - where the stamp goes in the decoded HTML */
static size_t html_position(const char *s, size_t n, bool bottom, bool stateful)
{
    if (bottom) {
        size_t p = find_tag(s, n, "</body", stateful, true);
        if (p == SIZE_MAX)
            p = find_tag(s, n, "</html", stateful, true);
        return p == SIZE_MAX ? n : p;
    }
    static const char *const after[] = {"<body", "</head", "<html", "<!doctype"};
    for (size_t k = 0; k < sizeof after / sizeof after[0]; k++) {
        size_t p = find_tag(s, n, after[k], stateful, false);
        if (p == SIZE_MAX)
            continue;
        size_t e = tag_end(s, n, p);
        if (e != SIZE_MAX)
            return e;
    }
    return 0;
}

/* meta_charset - the charset of <meta charset=...> or http-equiv content */
static bool meta_charset(const char *s, size_t n, char *out, size_t outsz)
{
    size_t lim = n < 4096 ? n : 4096;
    for (size_t i = 0; i + 8 < lim; i++) {
        if (strncasecmp(s + i, "charset=", 8) != 0)
            continue;
        size_t k = i + 8;
        while (k < lim && (s[k] == '"' || s[k] == '\'' || s[k] == ' '))
            k++;
        size_t m = 0;
        while (k < lim && m < outsz - 1 &&
               ((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z') || (s[k] >= '0' && s[k] <= '9') ||
                s[k] == '-' || s[k] == '_' || s[k] == '.' || s[k] == ':'))
            out[m++] = s[k++];
        out[m] = '\0';
        return m > 0;
    }
    return false;
}

static bool has_esc(const char *s, size_t n)
{
    return memchr(s, 0x1B, n) != NULL;
}

/* content_type_with_charset - the part's Content-Type field with charset
 * set to cs (other parameters kept), ending in the line ending */
static void content_type_with_charset(struct ctx *c, const struct rw_entity *e, const char *cs, struct buf *b)
{
    GMimeContentType *ct = NULL;
    if (e->ct_field >= 0) {
        char *v = rw_field_value(&c->t, &e->fields[e->ct_field]);
        ct = g_mime_content_type_parse(NULL, v);
        free(v);
    }
    if (!ct)
        ct = g_mime_content_type_new(e->type, e->subtype);
    g_mime_content_type_set_parameter(ct, "charset", cs);
    char *enc = g_mime_content_type_encode(ct, NULL);
    buf_append_str(b, "Content-Type:");
    for (const char *p = enc; *p; p++) {
        if (*p == '\n')
            buf_append_str(b, eol(c));
        else if (*p != '\r')
            buf_append(b, p, 1);
    }
    if (!b->len || b->ptr[b->len - 1] != '\n')
        buf_append_str(b, eol(c));
    g_free(enc);
    g_object_unref(ct);
}

/* stamp_part - the stamp into one text part; NULL when done, else why not */
static const char *stamp_part(struct ctx *c, int idx, char *why, size_t whysz)
{
    struct rw_entity *e = &c->t.e[idx];
    const struct rewrite_ops *o = c->ops;
    bool html = strcmp(e->subtype, "html") == 0;
    const char *text = html ? (o->stamp_html ? o->stamp_html : o->stamp_text)
                            : (o->stamp_text ? o->stamp_text : o->stamp_html);
    if (e->nct > 1 || e->ncte > 1)
        return "duplicate Content-Type or Content-Transfer-Encoding";
    if (gap_end(c, e) != e->body_end)
        return "mixed line endings before the next boundary";
    struct buf d;
    if (decode_body(c, e, &d) < 0) {
        buf_free(&d);
        snprintf(why, whysz, "unknown transfer encoding %s", e->cte);
        return why;
    }
    const char *data = d.ptr ? d.ptr : "";
    size_t n = d.len;
    /* the charset the text is in, and the one it will be declared in */
    char meta[64];
    const char *label = e->charset;
    if (!label && html && meta_charset(data, n, meta, sizeof meta))
        label = meta;
    const char *cs = rw_charset_iconv(label ? label : "us-ascii");
    char *new_label = NULL; /* set when the charset parameter changes */
    if (!cs) {
        buf_free(&d);
        snprintf(why, whysz, "unknown charset %.64s", label);
        return why;
    }
    if (strcmp(cs, "ASCII") == 0 && !rw_is_ascii(data, n)) {
        if (g_utf8_validate(data, (gssize)n, NULL)) {
            cs = "UTF-8", new_label = xstrdup("utf-8");
        } else {
            buf_free(&d);
            return "8-bit text without a usable charset";
        }
    } else if (strcmp(cs, "ASCII") == 0 && has_esc(data, n)) {
        cs = "ISO-2022-JP"; /* undeclared JIS, as old Japanese mailers send it */
    }
    bool stateful = rw_charset_stateful(cs);
    const char *body_eol = memmem(data, n, "\r\n", 2) ? "\r\n" : (memchr(data, '\n', n) ? "\n" : eol(c));
    struct buf work; /* the decoded text, converted to UTF-8 if it has to be */
    buf_init(&work, 2 * n + 64);
    buf_append(&work, data, n);
    /* the stamp as UTF-8 in the part's shape */
    char *clean = rw_sanitise(text, strlen(text), true);
    struct buf ins;
    buf_init(&ins, 8 * strlen(clean) + 256);
    if (html) {
        buf_append_str(&ins, "<div class=\"moat-stamp\">");
        html_escape(&ins, clean, body_eol);
        buf_append_str(&ins, "</div>");
        buf_append_str(&ins, body_eol);
    } else {
        append_lines(&ins, clean, body_eol);
    }
    free(clean);
    buf_cstr(&ins);
    /* ins in the part's charset: as is, or (HTML) with character references,
     * or else the part becomes UTF-8 */
    struct buf enc;
    buf_init(&enc, 4 * ins.len + 64);
    bool compatible = rw_charset_ascii_compatible(cs);
    if (compatible && rw_convert("UTF-8", cs, ins.ptr, ins.len, &enc) == 0) {
        /* fits */
    } else if (compatible && html) {
        buf_reset(&enc);
        ncr_ascii(&enc, ins.ptr, ins.len);
    } else {
        buf_reset(&enc);
        buf_reset(&work);
        if (strcmp(cs, "UTF-8") == 0 || rw_convert(cs, "UTF-8", data, n, &work) < 0) {
            buf_free(&d), buf_free(&work), buf_free(&ins), buf_free(&enc);
            free(new_label);
            snprintf(why, whysz, "the text is not valid %.64s and the stamp does not fit it", cs);
            return why;
        }
        buf_append(&enc, ins.ptr, ins.len);
        cs = "UTF-8";
        stateful = false;
        free(new_label);
        new_label = xstrdup("utf-8");
    }
    buf_cstr(&work);
    /* where it goes */
    const char *w = work.ptr ? work.ptr : "";
    size_t wn = work.len;
    size_t pos = html ? html_position(w, wn, o->stamp_bottom, stateful) : (o->stamp_bottom ? wn : 0);
    struct buf nt;
    buf_init(&nt, wn + enc.len + 64);
    buf_append(&nt, w, pos);
    if (stateful && !rw_iso2022_ascii_at(w, wn, pos))
        buf_append_str(&nt, "\x1b(B");
    if (!html && o->stamp_bottom) {
        if (wn && w[wn - 1] != '\n')
            buf_append_str(&nt, body_eol);
        if (wn)
            buf_append_str(&nt, body_eol);
        buf_append(&nt, enc.ptr, enc.len);
        buf_append_str(&nt, body_eol);
    } else if (!html) {
        buf_append(&nt, enc.ptr, enc.len);
        buf_append_str(&nt, body_eol);
        buf_append_str(&nt, body_eol);
    } else {
        buf_append(&nt, enc.ptr, enc.len);
    }
    buf_append(&nt, w + pos, wn - pos);
    /* transfer encoding */
    const char *cte = e->cte;
    bool raw = !cte || strcmp(cte, "7bit") == 0 || strcmp(cte, "8bit") == 0 || strcmp(cte, "binary") == 0;
    bool to_qp = raw && (!cte || strcmp(cte, "7bit") == 0) && !rw_is_ascii(enc.ptr ? enc.ptr : "", enc.len);
    const char *raw_body = c->t.msg + e->body_start;
    size_t raw_n = e->body_end - e->body_start;
    const char *enc_eol = memmem(raw_body, raw_n, "\r\n", 2) ? "\r\n" : (memchr(raw_body, '\n', raw_n) ? "\n" : eol(c));
    bool ends_nl = raw_n && raw_body[raw_n - 1] == '\n';
    struct buf body;
    buf_init(&body, 2 * nt.len + 256);
    if (raw && !to_qp) {
        buf_append(&body, nt.ptr, nt.len);
    } else if (cte && strcmp(cte, "base64") == 0) {
        rw_base64_encode((const unsigned char *)nt.ptr, nt.len, enc_eol, &body);
        size_t el = strlen(enc_eol);
        if (!ends_nl && body.len >= el)
            body.len -= el;
    } else {
        rw_qp_encode((const unsigned char *)nt.ptr, nt.len, enc_eol, &body);
    }
    end_line(c, e, &body, enc_eol);
    /* header fields that change */
    struct buf hdr;
    buf_init(&hdr, 4096);
    if (new_label) {
        content_type_with_charset(c, e, new_label, &hdr);
        if (e->ct_field >= 0) {
            add_edit(c, e->fields[e->ct_field].start, e->fields[e->ct_field].end, hdr.ptr, hdr.len);
            buf_reset(&hdr);
        }
    }
    if (to_qp) {
        struct buf f;
        buf_init(&f, 128);
        buf_printf(&f, "Content-Transfer-Encoding: quoted-printable%s", eol(c));
        if (e->cte_field >= 0)
            add_edit(c, e->fields[e->cte_field].start, e->fields[e->cte_field].end, f.ptr, f.len);
        else
            buf_append(&hdr, f.ptr, f.len);
        buf_free(&f);
    }
    if (hdr.len) {
        struct buf h2;
        buf_init(&h2, hdr.len + 8);
        if (e->hdr_end == c->t.len && e->hdr_end > 0 && c->t.msg[e->hdr_end - 1] != '\n')
            buf_append_str(&h2, eol(c));
        buf_append(&h2, hdr.ptr, hdr.len);
        if (e->hdr_end >= c->t.len && e->body_start >= c->t.len)
            buf_append_str(&h2, eol(c)); /* headers only: the blank line before the new body */
        add_edit(c, e->hdr_end, e->hdr_end, h2.ptr, h2.len);
        buf_free(&h2);
    } else if (e->hdr_end >= c->t.len && e->body_start >= c->t.len && body.len) {
        struct buf h2;
        buf_init(&h2, 8);
        if (e->hdr_end > 0 && c->t.msg[e->hdr_end - 1] != '\n')
            buf_append_str(&h2, eol(c));
        buf_append_str(&h2, eol(c));
        add_edit(c, e->hdr_end, e->hdr_end, h2.ptr, h2.len);
        buf_free(&h2);
    }
    add_edit(c, e->body_start, e->body_end, body.ptr ? body.ptr : "", body.len);
    buf_free(&hdr);
    buf_free(&body);
    buf_free(&nt);
    buf_free(&enc);
    buf_free(&ins);
    buf_free(&work);
    buf_free(&d);
    if (new_label)
        snprintf(why, whysz, "charset now %s", new_label);
    else
        why[0] = '\0';
    free(new_label);
    return NULL;
}

static void do_stamps(struct ctx *c)
{
    size_t done = 0;
    for (size_t i = 0; i < c->t.n; i++) {
        struct rw_entity *e = &c->t.e[i];
        if (e->first_child >= 0 || strcmp(e->type, "multipart") == 0 || e->in_message || c->removed[i] ||
            !is_text_body(e))
            continue;
        char why[256];
        const char *r = stamp_part(c, (int)i, why, sizeof why);
        if (r) {
            report(c, "stamp", e->path, false, "%s", r);
        } else {
            report(c, "stamp", e->path, true, "%s/%s %s%s%s", e->type, e->subtype,
                   c->ops->stamp_bottom ? "bottom" : "top", *why ? ", " : "", why);
            done++;
        }
    }
    if (!done)
        report(c, "stamp", "message", false, "no text/plain or text/html body part was stamped");
}

/* ---------------------------------------------------------------- subject */
/* needs_encoding_tag - a tag that cannot stand in a header as itself */
static bool needs_encoding_tag(const char *tag)
{
    return !rw_is_ascii(tag, strlen(tag)) || strstr(tag, "=?") != NULL;
}

/* starts_with_tag - the decoded subject already begins with the tag */
static bool starts_with_tag(const char *subject, const char *tag)
{
    while (*subject == ' ' || *subject == '\t')
        subject++;
    size_t n = strlen(tag);
    return g_ascii_strncasecmp(subject, tag, n) == 0;
}

static void tag_field(struct ctx *c, const struct rw_field *f, const char *tag)
{
    const char *m = c->t.msg;
    const char *le = eol(c);
    /* rest: the original value from its first non-blank character */
    size_t i = f->colon + 1;
    for (;;) {
        while (i < f->end && (m[i] == ' ' || m[i] == '\t'))
            i++;
        size_t k = i;
        if (k < f->end && m[k] == '\r')
            k++;
        if (k < f->end && m[k] == '\n' && k + 1 < f->end && (m[k + 1] == ' ' || m[k + 1] == '\t')) {
            i = k + 1;
            continue;
        }
        break;
    }
    size_t rest_end = f->end, fe = f->end;
    while (rest_end > i && (m[rest_end - 1] == '\n' || m[rest_end - 1] == '\r'))
        rest_end--;
    const char *field_eol = fe > rest_end ? m + rest_end : "";
    size_t field_eol_len = fe - rest_end;
    bool rest_empty = rest_end == i;
    bool rest_encoded = !rest_empty && rest_end - i >= 2 && m[i] == '=' && m[i + 1] == '?';
    struct buf out;
    buf_init(&out, 2 * (f->end - f->start) + 8 * strlen(tag) + 256);
    buf_append(&out, m + f->start, f->colon + 1 - f->start);
    size_t col = f->colon + 1 - f->start;
    bool plain_tag = !needs_encoding_tag(tag);
    if (plain_tag) {
        buf_append(&out, " ", 1);
        buf_append_str(&out, tag);
        col += 1 + strlen(tag);
    } else {
        struct buf w, t;
        buf_init(&w, 16 * strlen(tag) + 64);
        buf_init(&t, strlen(tag) + 2);
        buf_append_str(&t, tag);
        if (rest_encoded)
            buf_append(&t, " ", 1); /* white space between encoded words does not count */
        size_t nw = rw_encoded_words(&w, t.ptr, t.len, col + 1 < 78 ? 78 - col - 1 : 0);
        const char *p = w.ptr;
        for (size_t k = 0; k < nw; k++) {
            size_t l = strlen(p);
            if (k > 0 && col + 1 + l > 78) {
                buf_append_str(&out, le);
                col = 0;
            }
            buf_append(&out, " ", 1);
            buf_append(&out, p, l);
            col += 1 + l;
            p += l + 1;
        }
        buf_free(&w);
        buf_free(&t);
    }
    if (!rest_empty) {
        const char *nl = memchr(m + i, '\n', rest_end - i);
        size_t first = nl ? (size_t)(nl - (m + i)) : rest_end - i;
        if (first && m[i + first - 1] == '\r')
            first--;
        if (col + 1 + first > 78)
            buf_append_str(&out, le);
        buf_append(&out, " ", 1);
        buf_append(&out, m + i, rest_end - i);
    }
    buf_append(&out, field_eol, field_eol_len);
    add_edit(c, f->start, f->end, out.ptr, out.len);
    buf_free(&out);
}

static void do_subject(struct ctx *c, bool is_signed)
{
    const struct rewrite_ops *o = c->ops;
    char *tag = rw_sanitise(o->subject_tag, strlen(o->subject_tag), false);
    const struct rw_entity *top = &c->t.e[0];
    if (!*tag) {
        report(c, "subject_tag", "Subject", false, "empty tag");
    } else if (is_signed && o->tag_skip_signed) {
        report(c, "subject_tag", "Subject", false, "signed message: not tagged");
    } else {
        size_t nsubj = 0, tagged = 0;
        for (size_t i = 0; i < top->nfields; i++) {
            const struct rw_field *f = &top->fields[i];
            if (!rw_field_is(&c->t, f, "Subject"))
                continue;
            nsubj++;
            char *v = rw_field_value(&c->t, f);
            char *d = rw_header_decode(v);
            free(v);
            bool already = starts_with_tag(d, tag);
            g_free(d);
            if (already)
                continue;
            tag_field(c, f, tag);
            tagged++;
        }
        if (!nsubj) {
            struct buf h;
            buf_init(&h, 16 * strlen(tag) + 256);
            if (top->hdr_end == c->t.len && top->hdr_end > 0 && c->t.msg[top->hdr_end - 1] != '\n')
                buf_append_str(&h, eol(c));
            rw_header_field(&h, "Subject", tag, eol(c));
            add_edit(c, top->hdr_end, top->hdr_end, h.ptr, h.len);
            buf_free(&h);
            report(c, "subject_tag", "Subject", true, "no Subject: one added with the tag");
        } else if (!tagged) {
            report(c, "subject_tag", "Subject", false, "already tagged");
        } else {
            report(c, "subject_tag", "Subject", true, "tagged");
        }
    }
    free(tag);
}

/* header_position - after Moat's own Received field when it is the first
 * field (smtp/ writes "Received: from ... by HOST (Moat) with ..."), else
 * before the first field */
static size_t header_position(struct ctx *c)
{
    const struct rw_entity *top = &c->t.e[0];
    if (!top->nfields)
        return top->start;
    const struct rw_field *f = &top->fields[0];
    if (rw_field_is(&c->t, f, "Received")) {
        char *v = rw_field_value(&c->t, f);
        bool ours = strstr(v, "(Moat)") != NULL;
        free(v);
        if (ours)
            return f->end;
    }
    return f->start;
}

static void do_headers(struct ctx *c)
{
    const struct rewrite_ops *o = c->ops;
    size_t pos = header_position(c);
    struct buf h;
    buf_init(&h, REWRITE_MAX_OP_HEADERS * 16 * REWRITE_MAX_OP_TEXT + 4096);
    if (pos == c->t.len && pos > 0 && c->t.msg[pos - 1] != '\n')
        buf_append_str(&h, eol(c));
    for (size_t i = 0; i < o->nheaders; i++) {
        char *v = rw_sanitise(o->headers[i].value ? o->headers[i].value : "",
                              o->headers[i].value ? strlen(o->headers[i].value) : 0, false);
        rw_header_field(&h, o->headers[i].name, v, eol(c));
        report(c, "header", o->headers[i].name, true, "inserted");
        free(v);
    }
    if (h.len)
        add_edit(c, pos, pos, h.ptr, h.len);
    buf_free(&h);
}

/* ---------------------------------------------------------------- entry */
static bool valid_field_name(const char *n)
{
    if (!n || !*n || strlen(n) > 76)
        return false;
    for (const char *p = n; *p; p++)
        if ((unsigned char)*p <= 32 || (unsigned char)*p >= 127 || *p == ':')
            return false;
    return true;
}

static bool text_ok(const char *s)
{
    return !s || strlen(s) <= REWRITE_MAX_OP_TEXT;
}

/* check_ops - NULL when the operations are well-formed, else why */
static const char *check_ops(const struct rewrite_ops *o)
{
    if (!text_ok(o->subject_tag) || !text_ok(o->stamp_text) || !text_ok(o->stamp_html))
        return "tag or stamp longer than REWRITE_MAX_OP_TEXT";
    if (o->nheaders > REWRITE_MAX_OP_HEADERS || (o->nheaders && !o->headers))
        return "too many header fields to insert";
    for (size_t i = 0; i < o->nheaders; i++) {
        if (!valid_field_name(o->headers[i].name))
            return "invalid header field name";
        if (!text_ok(o->headers[i].value))
            return "header value longer than REWRITE_MAX_OP_TEXT";
    }
    if (o->nremove > REWRITE_MAX_OP_REMOVALS || (o->nremove && !o->remove))
        return "too many parts to remove";
    for (size_t i = 0; i < o->nremove; i++)
        if (!text_ok(o->remove[i].reason) || !text_ok(o->remove[i].part_path))
            return "removal reason longer than REWRITE_MAX_OP_TEXT";
    if (o->removal_note_lang && strcmp(o->removal_note_lang, "en") != 0 && strcmp(o->removal_note_lang, "ja") != 0)
        return "removal_note_lang must be \"en\" or \"ja\"";
    return NULL;
}

int rewrite_message(const char *msg, size_t len, const struct rewrite_ops *ops, struct buf *out,
                    struct rewrite_report *rep, char *err, size_t errsz)
{
    memset(rep, 0, sizeof *rep);
    buf_init(out, 0);
    if (!ops || (!msg && len)) {
        snprintf(err, errsz, "no message or no operations");
        return -1;
    }
    if (len > REWRITE_MAX_MESSAGE) {
        snprintf(err, errsz, "message larger than %llu bytes", (unsigned long long)REWRITE_MAX_MESSAGE);
        return -1;
    }
    const char *why = check_ops(ops);
    if (why) {
        snprintf(err, errsz, "%s", why);
        return -1;
    }
    struct ctx c = {.ops = ops, .rep = rep, .err = err, .errsz = errsz};
    char perr[256] = "";
    bool parsed = rw_tree_parse(&c.t, msg ? msg : "", len, perr, sizeof perr) == 0;
    if (!parsed) {
        snprintf(err, errsz, "%s", perr);
        return -1;
    }
    bool structural = ops->nremove || ops->stamp_text || ops->stamp_html;
    int rc = -1;
    if (c.t.truncated && (structural || (ops->subject_tag && ops->tag_skip_signed))) {
        snprintf(err, errsz, "%s", perr);
        goto done;
    }
    if (structural) {
        rw_tree_verify(&c.t);
        if (!c.t.consistent) {
            snprintf(err, errsz, "ambiguous MIME structure (%s): parts not changed", c.t.why);
            goto done;
        }
    }
    c.removed = xcalloc(c.t.n + 1, sizeof *c.removed);
    rep->is_signed = message_signed(&c);
    if (ops->nremove)
        do_removals(&c);
    if (ops->stamp_text || ops->stamp_html) {
        if (rep->is_signed && ops->tag_skip_signed)
            report(&c, "stamp", "message", false, "signed message: not stamped");
        else
            do_stamps(&c);
    }
    if (ops->subject_tag)
        do_subject(&c, rep->is_signed);
    if (ops->nheaders)
        do_headers(&c);
    if (assemble(&c, out) < 0) {
        buf_free(out);
        goto done;
    }
    rep->changed = c.nedits > 0;
    rc = 0;
done:
    if (rc < 0) {
        rewrite_report_free(rep);
        buf_free(out);
    }
    for (size_t i = 0; i < c.nedits; i++)
        free(c.edits[i].data);
    free(c.edits);
    free(c.removed);
    rw_tree_free(&c.t);
    return rc;
}

void rewrite_report_free(struct rewrite_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nactions; i++) {
        free(r->actions[i].op);
        free(r->actions[i].target);
        free(r->actions[i].detail);
    }
    free(r->actions);
    memset(r, 0, sizeof *r);
}
